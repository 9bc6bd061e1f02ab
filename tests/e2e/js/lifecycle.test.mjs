#!/usr/bin/env node
// Key lifecycle through the official JS SDK (@azure/keyvault-keys KeyClient
// and CryptographyClient, @azure/identity ManagedIdentityCredential): recovery
// levels per vault, soft delete / recover / purge, purge protection, update,
// import, rotation and rotation policies (with the trigger fired by kvmock's
// clock), backup/restore, and the customer-managed-key scenario on a
// purge-protected vault. The JS counterpart of test_python_lifecycle.py.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/lifecycle.test.mjs --kvmock build/kvmock
//
// The script is both the driver (starts kvmock with a config file, stops it
// and checks a clean exit) and, with --child, the scenario (see helpers.mjs).

import assert from "node:assert/strict";
import { createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, verify as nodeVerify, constants as cc } from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  DAY, advanceClock, decodeJwt, expectRestError, msiToken, errorBody, isChild, jwkToSdk, makeRecorder, makeReporter,
  runDriver, runScenario, sameBytes, scenarioEnv,
} from "./helpers.mjs";

const CONFIG = {
  vaults: [
    { name: "default", properties: { sku: { family: "A", name: "premium" } } },
    // a vault of the file without a sku is standard: it makes no hardware keys
    { name: "cmk", properties: { softDeleteRetentionInDays: 7, enablePurgeProtection: true } },
    { name: "nosoft", properties: { enableSoftDelete: false } },
  ],
};

if (!isChild()) {
  await runDriver({ script: fileURLToPath(import.meta.url), config: CONFIG });
} else {
  runScenario("[lifecycle]", scenario);
}

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[lifecycle]");
  const POLL = { intervalInMs: 100 };

  // Tokens expire on kvmock's clock while the SDK caches them by the real
  // time, so after moving the clock the scenario needs a credential whose
  // cache does not hold the old token. A new ManagedIdentityCredential() is
  // not enough in JS: msal-node keeps ONE token cache for every
  // ManagedIdentityApplication in the process (a static nodeStorage), keyed
  // by identity and resource, so a new credential for the same identity gets
  // the cached, now expired token (kvmock: 401 "The access token is invalid
  // or has expired."). Each clock phase therefore names the same default
  // identity another way: system-assigned, then by client id, then by object
  // id (the MSI endpoint accepts client_id= and object_id=).
  const self = decodeJwt(await msiToken(env));
  const identities = [undefined, { clientId: self.appid }, { objectId: self.oid }];
  let phase = -1;
  let cred, client, cmk, nosoft;
  const fresh = () => {
    phase++;
    assert.ok(phase < identities.length, "no more ways to name the default identity");
    cred = new ManagedIdentityCredential(identities[phase]);
    client = new KeyClient(env.vaultUrl("default"), cred, rec.options());
    cmk = new KeyClient(env.vaultUrl("cmk"), cred, rec.options());
    nosoft = new KeyClient(env.vaultUrl("nosoft"), cred, rec.options());
  };
  const crypto = (key) => new CryptographyClient(key, cred, rec.options());
  fresh();
  const clockMoved = async (seconds) => {
    await advanceClock(env, seconds);
    fresh();
    const t = decodeJwt((await cred.getToken("https://vault.localhost:" + env.httpsPort + "/.default")).token);
    assert.equal(t.oid, self.oid, "the fresh credential is the same default identity");
  };

  const names = async (iter) => {
    const out = [];
    for await (const p of iter) out.push(p.name);
    return out;
  };
  const secondsBetween = (a, b) => Math.round((b.getTime() - a.getTime()) / 1000);

  await group("recoveryLevel and recoverableDays follow the vault", async () => {
    const d = await client.createRsaKey("lv", { keySize: 2048 });
    assert.equal(d.properties.recoveryLevel, "Recoverable+Purgeable", "default: recoveryLevel");
    assert.equal(d.properties.recoverableDays, 90, "default: recoverableDays");
    const got = await client.getKey("lv");
    assert.equal(got.properties.recoveryLevel, "Recoverable+Purgeable", "default: getKey recoveryLevel");
    assert.equal(got.properties.recoverableDays, 90, "default: getKey recoverableDays");
    const c = await cmk.createEcKey("lv", { curve: "P-256" });
    assert.equal(c.properties.recoveryLevel, "CustomizedRecoverable", "cmk (7 days, purge protection): recoveryLevel");
    assert.equal(c.properties.recoverableDays, 7, "cmk: recoverableDays");
    const n = await nosoft.createEcKey("lv", { curve: "P-256" });
    assert.equal(n.properties.recoveryLevel, "Purgeable", "nosoft: recoveryLevel");
    assert.ok(!n.properties.recoverableDays, `nosoft: no recoverableDays (got ${n.properties.recoverableDays})`);
  });

  await group("getKeyAttestation: 400 BadParameter saying why (no HSM); releaseKey of a key that is not exportable: 403; 404 for no key", async () => {
    const k = await client.createRsaKey("att", { keySize: 2048 });
    for (const version of [undefined, k.properties.version]) {
      const err = await expectRestError(client.getKeyAttestation("att", version ? { version } : {}), 400,
        "BadParameter", `getKeyAttestation (version ${version ?? "latest"})`);
      assert.match(err.message, /attestation/, "the message names attestation");
    }
    const rel = await expectRestError(client.releaseKey("att", "eyJhbGciOiJub25lIn0.e30."), 403, "Forbidden", "releaseKey");
    assert.match(rel.message, /release .*not exportable/i, "the message says why");
    await expectRestError(client.getKeyAttestation("no-such-key"), 404, "KeyNotFound", "getKeyAttestation of no key");
  });

  await group("delete (poller), getDeletedKey, listDeletedKeys, name reuse 409, recover, purge 204", async () => {
    const k1 = await client.createRsaKey("life", { keySize: 2048 });
    const k2 = await client.createRsaKey("life", { keySize: 2048 });
    const poller = await client.beginDeleteKey("life", POLL);
    const deleted = await poller.pollUntilDone();
    assert.equal(deleted.name, "life", "deleted name");
    assert.equal(deleted.properties.recoveryId, `${env.vaultUrl("default")}/deletedkeys/life`, "recoveryId");
    assert.ok(deleted.properties.deletedOn instanceof Date, "deletedOn is a date");
    assert.equal(secondsBetween(deleted.properties.deletedOn, deleted.properties.scheduledPurgeDate), 90 * DAY,
      "scheduledPurgeDate = deletedOn + 90 days");
    assert.equal(deleted.id, k2.id, "the deleted key bundle is the newest version");

    await expectRestError(client.getKey("life"), 404, "KeyNotFound", "getKey of a deleted key");
    assert.ok(!(await names(client.listPropertiesOfKeys())).includes("life"), "a deleted key is not listed as a key");
    const deletedNames = [];
    for await (const dk of client.listDeletedKeys()) {
      deletedNames.push(dk.name);
      if (dk.name === "life") {
        assert.equal(dk.properties.recoveryId, deleted.properties.recoveryId, "listed recoveryId");
        assert.ok(dk.properties.scheduledPurgeDate instanceof Date, "listed scheduledPurgeDate");
      }
    }
    assert.ok(deletedNames.includes("life"), `listDeletedKeys includes life (got ${deletedNames.join(",")})`);
    const gd = await client.getDeletedKey("life");
    sameBytes(gd.key.n, k2.key.n, "getDeletedKey returns the newest version's public key");
    assert.equal(gd.properties.recoveryId, deleted.properties.recoveryId, "getDeletedKey recoveryId");

    const err = await expectRestError(client.createRsaKey("life", { keySize: 2048 }), 409, undefined, "create over a soft-deleted name");
    const body = errorBody(err, rec);
    assert.ok(body.error?.code === "ObjectIsDeletedButRecoverable" || body.error?.innererror?.code === "ObjectIsDeletedButRecoverable",
      `409 names ObjectIsDeletedButRecoverable: ${JSON.stringify(body)}`);

    const recovered = await (await client.beginRecoverDeletedKey("life", POLL)).pollUntilDone();
    assert.equal(recovered.properties.version, k2.properties.version, "recovered the newest version");
    sameBytes((await client.getKey("life", { version: k1.properties.version })).key.n, k1.key.n, "older version recovered too");
    await expectRestError(client.getDeletedKey("life"), 404, "KeyNotFound", "getDeletedKey after recovery");

    await (await client.beginDeleteKey("life", POLL)).pollUntilDone();
    const since = rec.exchanges.length;
    await client.purgeDeletedKey("life");
    const purge = rec.find(since, "DELETE", "/deletedkeys/life");
    assert.equal(purge.length, 1, `one DELETE /deletedkeys/life (saw ${rec.describe(since)})`);
    assert.equal(purge[0].status, 204, "purge answers 204");
    assert.equal(purge[0].body, "", "purge answers an empty body");
    await expectRestError(client.getDeletedKey("life"), 404, "KeyNotFound", "getDeletedKey after purge");
    assert.ok(!(await names(client.listDeletedKeys())).includes("life"), "purged key not listed as deleted");
    const again = await client.createEcKey("life", { curve: "P-256" });
    assert.equal(again.keyType, "EC", "the name is free again after the purge");
  });

  await group("vault without soft delete: delete removes at once", async () => {
    await nosoft.createRsaKey("gone", { keySize: 2048 });
    const deleted = await (await nosoft.beginDeleteKey("gone", POLL)).pollUntilDone();
    assert.equal(deleted.name, "gone", "deleted name");
    assert.equal(deleted.properties.recoveryId, undefined, "no recoveryId without soft delete");
    await expectRestError(nosoft.getDeletedKey("gone"), 404, "KeyNotFound", "no deleted key to get");
    await expectRestError(nosoft.getKey("gone"), 404, "KeyNotFound", "no key either");
  });

  await group("updateKeyProperties of one version: enabled, tags, keyOps; disabled refuses crypto with 403", async () => {
    const k1 = await client.createRsaKey("upd", { keySize: 2048 });
    const k2 = await client.createRsaKey("upd", { keySize: 2048 });
    const u = await client.updateKeyProperties("upd", k1.properties.version, {
      enabled: false, tags: { env: "ci", team: "storage" }, keyOps: ["wrapKey", "unwrapKey"],
    });
    assert.equal(u.id, k1.id, "the named version was updated");
    assert.equal(u.properties.enabled, false, "enabled");
    assert.deepEqual(u.properties.tags, { env: "ci", team: "storage" }, "tags");
    assert.deepEqual([...u.keyOperations].sort(), ["unwrapKey", "wrapKey"], "keyOps");
    assert.ok(u.properties.updatedOn >= u.properties.createdOn, "updatedOn >= createdOn");
    const g1 = await client.getKey("upd", { version: k1.properties.version });
    assert.equal(g1.properties.enabled, false, "getKey sees enabled false");
    assert.deepEqual(g1.properties.tags, { env: "ci", team: "storage" }, "getKey sees the tags");
    assert.deepEqual([...g1.keyOperations].sort(), ["unwrapKey", "wrapKey"], "getKey sees keyOps");
    const g2 = await client.getKey("upd", { version: k2.properties.version });
    assert.equal(g2.properties.enabled, true, "the other version is untouched");
    assert.equal(g2.properties.tags, undefined, "the other version has no tags");

    // A ciphertext made locally with the version's public key.
    const cek = randomBytes(32);
    const pubOf = (k) => createPublicKey({ key: { kty: "RSA", n: Buffer.from(k.key.n).toString("base64url"), e: Buffer.from(k.key.e).toString("base64url") }, format: "jwk" });
    const ct = publicEncrypt({ key: pubOf(k1), padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek);
    const c1 = crypto(k1.id);
    const err = await expectRestError(c1.unwrapKey("RSA-OAEP", ct), 403, "Forbidden", "unwrapKey on a disabled version");
    assert.equal(errorBody(err, rec).error?.innererror?.code, "KeyDisabled", "innererror KeyDisabled");
    // The other version works; enabling again makes the first one work.
    const ct2 = publicEncrypt({ key: pubOf(k2), padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, cek);
    sameBytes((await crypto(k2.id).unwrapKey("RSA-OAEP", ct2)).result, cek, "the enabled version unwraps");
    const re = await client.updateKeyProperties("upd", k1.properties.version, { enabled: true });
    assert.equal(re.properties.enabled, true, "enabled again");
    assert.deepEqual(re.properties.tags, { env: "ci", team: "storage" }, "tags kept by an update without tags");
    sameBytes((await crypto(k1.id).unwrapKey("RSA-OAEP", ct)).result, cek, "unwrap after re-enabling");
  });

  await group("importKey: RSA (hardwareProtected -> RSA-HSM; 403 in a standard vault) and EC P-384 from node:crypto JWKs; inconsistent JWK -> 400, nothing stored", async () => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const jwk = privateKey.export({ format: "jwk" });
    const hsmImport = (c, name) => c.importKey(name, jwkToSdk(jwk, { keyOps: ["wrapKey", "unwrapKey"] }), { hardwareProtected: true });
    const refused = await expectRestError(hsmImport(cmk, "imported-rsa"), 403, "Forbidden", "hardware key into a standard vault");
    assert.equal(refused.message, "Hardware key operation not allowed on standard vault", "Key Vault's message");
    await expectRestError(cmk.getKey("imported-rsa"), 404, "KeyNotFound", "a refused import stores nothing");
    await expectRestError(cmk.createKey("hw-oct", "oct-HSM"), 403, "Forbidden", "oct-HSM in a standard vault");
    const k = await hsmImport(client, "imported-rsa");
    assert.equal(k.keyType, "RSA-HSM", "keyType");
    assert.equal(k.properties.hsmPlatform, "2", "hsmPlatform of a hardware key");
    assert.equal(k.key.kty, "RSA-HSM", "key.kty");
    sameBytes(k.key.n, Buffer.from(jwk.n, "base64url"), "modulus");
    sameBytes(k.key.e, Buffer.from(jwk.e, "base64url"), "exponent");
    for (const m of ["d", "p", "q", "dp", "dq", "qi"]) assert.equal(k.key[m], undefined, `private member ${m} not returned`);
    assert.deepEqual([...k.keyOperations].sort(), ["unwrapKey", "wrapKey"], "keyOps as imported");
    const dek = randomBytes(32);
    const wrapped = publicEncrypt({ key: privateKey, padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, dek);
    const u = await crypto(k.id).unwrapKey("RSA-OAEP-256", wrapped);
    sameBytes(u.result, dek, "the server unwraps what node:crypto wrapped with the imported key");
    assert.equal(u.keyID, k.id, "unwrap keyID");

    const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });
    const ejwk = ec.privateKey.export({ format: "jwk" });
    const ek = await client.importKey("imported-ec", jwkToSdk(ejwk));
    assert.equal(ek.keyType, "EC", "EC keyType (no hardwareProtected)");
    assert.equal(ek.properties.hsmPlatform, undefined, "no hsmPlatform for a software key");
    assert.equal(ek.key.crv, "P-384", "crv");
    sameBytes(ek.key.x, Buffer.from(ejwk.x, "base64url"), "x");
    sameBytes(ek.key.y, Buffer.from(ejwk.y, "base64url"), "y");
    assert.equal(ek.key.d, undefined, "d not returned");
    const data = randomBytes(100);
    const sig = await crypto(ek.id).sign("ES384", createHash("sha384").update(data).digest());
    assert.equal(sig.result.length, 96, "ES384 signature is raw R||S, 96 bytes");
    assert.ok(nodeVerify("sha384", data, { key: ec.publicKey, dsaEncoding: "ieee-p1363" }, sig.result),
      "node:crypto verifies the server's ES384 signature with the imported key's public half");

    // d that does not belong to n: refused, and nothing is stored under the name.
    const d = Buffer.from(jwk.d, "base64url");
    d[d.length - 1] ^= 0x02;
    const bad = jwkToSdk({ ...jwk, d: d.toString("base64url") });
    await expectRestError(client.importKey("imported-bad", bad), 400, "BadParameter", "inconsistent RSA JWK");
    await expectRestError(client.getKey("imported-bad"), 404, "KeyNotFound", "a refused import stores nothing");
    assert.ok(!(await names(client.listPropertiesOfKeys())).includes("imported-bad"), "not listed either");
  });

  await group("rotateKey, getKeyRotationPolicy (default), updateKeyRotationPolicy, expiry of rotated versions, trigger on kvmock's clock", async () => {
    const k = await client.createRsaKey("rot", { keySize: 3072 });
    const def = await client.getKeyRotationPolicy("rot");
    assert.deepEqual(def.lifetimeActions?.map((a) => [a.action, a.timeBeforeExpiry, a.timeAfterCreate]),
      [["Notify", "P30D", undefined]], `default policy: ${JSON.stringify(def)}`);
    const set = await client.updateKeyRotationPolicy("rot", {
      expiresIn: "P90D",
      lifetimeActions: [{ action: "Rotate", timeAfterCreate: "P30D" }],
    });
    assert.equal(set.expiresIn, "P90D", "expiresIn");
    assert.deepEqual(set.lifetimeActions?.map((a) => [a.action, a.timeAfterCreate, a.timeBeforeExpiry]),
      [["Rotate", "P30D", undefined], ["Notify", undefined, "P30D"]],
      `lifetimeActions, with Key Vault's own Notify added: ${JSON.stringify(set.lifetimeActions)}`);
    assert.ok(set.createdOn instanceof Date && set.updatedOn instanceof Date, "policy created/updated dates");
    assert.equal(set.id, `${env.vaultUrl("default")}/keys/rot/rotationpolicy`, "policy id");
    const got = await client.getKeyRotationPolicy("rot");
    assert.equal(got.expiresIn, "P90D", "getKeyRotationPolicy sees expiresIn");
    assert.deepEqual(got.lifetimeActions?.map((a) => [a.action, a.timeAfterCreate]), [["Rotate", "P30D"], ["Notify", undefined]], "getKeyRotationPolicy sees the actions");

    const r = await client.rotateKey("rot");
    assert.notEqual(r.properties.version, k.properties.version, "rotation makes a new version");
    assert.equal(r.keyType, "RSA", "same key type");
    assert.equal(r.key.n.length, 384, "same size (3072 bits)");
    assert.ok(!Buffer.from(r.key.n).equals(Buffer.from(k.key.n)), "new key material");
    assert.ok(r.properties.expiresOn instanceof Date, "the rotated version has an expiry");
    assert.equal(secondsBetween(r.properties.createdOn, r.properties.expiresOn), 90 * DAY, "expiresOn = createdOn + 90 days");
    assert.equal((await client.getKey("rot")).id, r.id, "the rotated version is the current one");

    await expectRestError(client.updateKeyRotationPolicy("rot", { expiresIn: "P10D" }), 400, undefined, "expiryTime under 28 days");

    const versions = async () => {
      const out = [];
      for await (const p of client.listPropertiesOfKeyVersions("rot")) out.push(p);
      return out;
    };
    const before = await versions();
    assert.equal(before.length, 2, "two versions before the trigger");
    await clockMoved(31 * DAY);
    const after = await versions();
    assert.equal(after.length, before.length + 1, `the Rotate trigger (30 days after create) made a new version (got ${after.length})`);
    const latest = await client.getKey("rot");
    assert.ok(!before.some((p) => p.id === latest.id), "the current version is the new one");
    assert.equal(secondsBetween(latest.properties.createdOn, latest.properties.expiresOn), 90 * DAY, "the auto-rotated version expires 90 days after creation");
  });

  await group("backupKey / restoreKeyBackup: 409 over a live key, same version after delete+purge, corrupt blob 400", async () => {
    const k = await client.createEcKey("bk", { curve: "P-256" });
    const blob = await client.backupKey("bk");
    assert.ok(blob instanceof Uint8Array && blob.length > 64, "a backup blob");
    assert.ok(!Buffer.from(blob).includes(Buffer.from(k.key.x)), "the blob does not carry the public key in clear");
    assert.ok(!Buffer.from(blob).includes(Buffer.from("P-256")), "the blob is sealed (no curve name in clear)");
    await expectRestError(client.restoreKeyBackup(blob), 409, undefined, "restore over a live key");
    await (await client.beginDeleteKey("bk", POLL)).pollUntilDone();
    await client.purgeDeletedKey("bk");
    await expectRestError(client.getKey("bk"), 404, "KeyNotFound", "gone before the restore");
    const restored = await client.restoreKeyBackup(blob);
    assert.equal(restored.id, k.id, "restored with the same id");
    assert.equal(restored.properties.version, k.properties.version, "same version");
    sameBytes(restored.key.x, k.key.x, "x");
    sameBytes(restored.key.y, k.key.y, "y");
    assert.equal((await client.getKey("bk")).id, k.id, "getKey after restore");
    const corrupt = Buffer.concat([Buffer.from(blob).subarray(0, blob.length - 3), Buffer.from("xyz")]);
    await expectRestError(client.restoreKeyBackup(new Uint8Array(corrupt)), 400, "BadParameter", "corrupt blob");
    await expectRestError(client.restoreKeyBackup(new Uint8Array(randomBytes(200))), 400, "BadParameter", "random bytes as a blob");
  });

  await group("customer-managed key on a purge-protected vault: wrap v1, rotate, wrap v2, delete, purge refused, recover, purged after retention", async () => {
    const v1 = await cmk.createRsaKey("disk", { keySize: 2048 });
    const dek1 = randomBytes(32);
    const w1 = await crypto(v1.id).wrapKey("RSA-OAEP-256", dek1);
    const v2 = await cmk.rotateKey("disk");
    assert.notEqual(v2.properties.version, v1.properties.version, "rotated");
    const dek2 = randomBytes(32);
    const w2 = await crypto(v2.id).wrapKey("RSA-OAEP-256", dek2);
    assert.equal(w1.keyID, v1.id, "wrap 1 names v1");
    assert.equal(w2.keyID, v2.id, "wrap 2 names v2");
    const unwrapBoth = async (when) => {
      sameBytes((await crypto(v1.id).unwrapKey("RSA-OAEP-256", w1.result)).result, dek1, `${when}: DEK 1 with v1`);
      sameBytes((await crypto(v2.id).unwrapKey("RSA-OAEP-256", w2.result)).result, dek2, `${when}: DEK 2 with v2`);
    };
    await unwrapBoth("after rotation");

    const del = await (await cmk.beginDeleteKey("disk", POLL)).pollUntilDone();
    assert.equal(secondsBetween(del.properties.deletedOn, del.properties.scheduledPurgeDate), 7 * DAY, "7-day retention");
    const err = await expectRestError(cmk.purgeDeletedKey("disk"), 403, "Forbidden", "purge under purge protection");
    assert.match(err.message, /purge protection/i, "the message mentions purge protection");
    assert.ok((await names(cmk.listDeletedKeys())).includes("disk"), "still listed as deleted after the refused purge");
    assert.equal((await cmk.getDeletedKey("disk")).id, v2.id, "still there as deleted");

    const rec2 = await (await cmk.beginRecoverDeletedKey("disk", POLL)).pollUntilDone();
    assert.equal(rec2.id, v2.id, "recovered the current version");
    await unwrapBoth("after recovery");

    await (await cmk.beginDeleteKey("disk", POLL)).pollUntilDone();
    await clockMoved(8 * DAY);
    await expectRestError(cmk.getDeletedKey("disk"), 404, "KeyNotFound", "8 days past a 7-day retention");
    await expectRestError(cmk.getKey("disk", { version: v1.properties.version }), 404, "KeyNotFound", "no version survives the purge");
    assert.ok(!(await names(cmk.listDeletedKeys())).includes("disk"), "not listed as deleted");
  });

  return summary();
}
