#!/usr/bin/env node
// Secure key release through the official JS SDK (@azure/keyvault-keys, pinned
// in package-lock.json):
//
//   - createRsaKey / createEcKey with {hsm: true, exportable: true,
//     releasePolicy: {encodedPolicy}}: the key is exportable and its policy
//     comes back as Key Vault stores it (compact, ordered, equals as text);
//   - releaseKey(name, token, {algorithm, nonce, version}) of an RSA-HSM key
//     with the default enc and each of CKM_RSA_AES_KEY_WRAP,
//     RSA_AES_KEY_WRAP_256 and RSA_AES_KEY_WRAP_384, and of an EC-HSM P-256
//     key: the JWS is verified with x5c[0] and x5c[0] against kvmock's CA and
//     the vault's host name (X509Certificate), key_hsm is opened with
//     node:crypto (privateDecrypt with the enc's oaepHash, then
//     id-aes256-wrap-pad, RFC 5649) and the PKCS#8 key proven to be the
//     vault key's (RSA: n and e, and a signature the vault's public key
//     verifies; EC: d * G is the vault key's x and y);
//   - two refusals: a token whose claims miss the policy (403 Forbidden,
//     "Target environment attestation statement cannot be verified. ...")
//     and a key that is not exportable (403 Forbidden).
//
// The attestation authority's key and the TEE's key are made by the driver
// (node:crypto) before kvmock starts, since the configuration names the
// authority's JWKS; the scenario reads them from the folder in SKR_E2E_DIR
// and mints the attestation tokens itself.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/key_release.test.mjs --kvmock build/kvmock

import assert from "node:assert/strict";
import {
  constants as C, createDecipheriv, createECDH, createHash, createPrivateKey, createPublicKey, generateKeyPairSync,
  privateDecrypt, randomBytes, randomUUID, sign, verify, X509Certificate,
} from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  b64url, errorBody, expectRestError, fromB64url, isChild, makeRecorder, makeReporter, runDriver, runScenario,
  scenarioEnv,
} from "./helpers.mjs";

const AUTH = "https://kvmockjs.eus.attest.azure.net";
const AUTH_KID = "js-maa-1";
const TEE_KID = "js-tee-enc";
const DIR_ENV = "SKR_E2E_DIR";
const VERIFY_PREFIX = "Target environment attestation statement cannot be verified.";
const OAEP_HASH = { CKM_RSA_AES_KEY_WRAP: "sha1", RSA_AES_KEY_WRAP_256: "sha256", RSA_AES_KEY_WRAP_384: "sha384" };
const POLICY = {
  anyOf: [{
    allOf: [
      { equals: "sevsnpvm", claim: "x-ms-isolation-tee.x-ms-attestation-type" },
      { claim: "sdk-test", equals: true },
    ],
    authority: AUTH,
  }],
  version: "1.0.0",
};
// written out by hand: what Key Vault stores for POLICY
const NORMALIZED = `{"version":"1.0.0","anyOf":[{"authority":"${AUTH}","allOf":[` +
  `{"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"},{"claim":"sdk-test","equals":"true"}]}]}`;

const script = fileURLToPath(import.meta.url);

if (!isChild()) {
  await driver();
} else {
  runScenario("[key_release]", scenario);
}

// ================================================================ driver ====

async function driver() {
  const dir = mkdtempSync(join(tmpdir(), "kvmock-js-skr-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const pem = (bits) => generateKeyPairSync("rsa", { modulusLength: bits }).privateKey.export({ type: "pkcs8", format: "pem" });
  const auth = pem(2048);
  writeFileSync(join(dir, "auth.pem"), auth, { mode: 0o600 });
  writeFileSync(join(dir, "tee.pem"), pem(2048), { mode: 0o600 });
  const { kty, n, e } = createPublicKey(auth).export({ format: "jwk" });
  process.env[DIR_ENV] = dir; // the scenario child inherits it
  await runDriver({
    script,
    config: {
      attestationAuthorities: [{ authority: AUTH, jwks: { keys: [{ kty, n, e, kid: AUTH_KID, use: "sig" }] } }],
      vaults: [{ name: "premium", properties: { sku: { family: "A", name: "premium" } } }],
    },
  });
}

// ============================================================== scenario ====

function material() {
  const dir = process.env[DIR_ENV];
  if (!dir) {
    console.error(`${DIR_ENV} is not set (run the script without --child)`);
    process.exit(2);
  }
  return { auth: createPrivateKey(readFileSync(join(dir, "auth.pem"))), tee: createPrivateKey(readFileSync(join(dir, "tee.pem"))) };
}

/** An attestation token as Azure Attestation issues one, signed RS256 by the authority. */
function attestationToken(m, over = {}) {
  const now = Math.floor(Date.now() / 1000);
  const { kty, n, e } = createPublicKey(m.tee).export({ format: "jwk" });
  const claims = {
    iss: AUTH, iat: now, nbf: now - 5, exp: now + 600, jti: randomUUID(),
    "x-ms-attestation-type": "sevsnpvm",
    "x-ms-isolation-tee": { "x-ms-attestation-type": "sevsnpvm", "x-ms-sevsnpvm-is-debuggable": false },
    "sdk-test": true,
    "x-ms-runtime": { keys: [{ kty, n, e, kid: TEE_KID, key_ops: ["encrypt"] }] },
    ...over,
  };
  const header = { alg: "RS256", typ: "JWT", kid: AUTH_KID, jku: `${AUTH}/certs` };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  return `${input}.${b64url(sign("sha256", Buffer.from(input), m.auth))}`;
}

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, KnownKeyExportEncryptionAlgorithm } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const m = material();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[key_release]");
  const client = new KeyClient(env.vaultUrl("premium"), new ManagedIdentityCredential(), rec.options());
  const ca = new X509Certificate(readFileSync(env.caPath));
  const releasePolicy = () => ({ encodedPolicy: new TextEncoder().encode(JSON.stringify(POLICY, null, 2)) });
  const b64 = (u8) => Buffer.from(u8).toString("base64url");

  /** The release's JWS verified and opened: {header, payload, plain (the key's private bytes)}. */
  const openRelease = (value, enc) => {
    const parts = value.split(".");
    assert.equal(parts.length, 3, "a compact JWS");
    const header = JSON.parse(fromB64url(parts[0]).toString("utf8"));
    assert.deepEqual([header.alg, header.typ, header.x5c?.length], ["RS256", "JWT", 2], `header ${JSON.stringify(header)}`);
    const leaf = new X509Certificate(Buffer.from(header.x5c[0], "base64"));
    assert.equal(header.kid, createHash("sha1").update(leaf.raw).digest("hex").toUpperCase(), "kid: SHA-1 of x5c[0]");
    assert.equal(header.x5t, createHash("sha1").update(leaf.raw).digest("base64url"), "x5t");
    assert.equal(header["x5t#S256"], createHash("sha256").update(leaf.raw).digest("base64url"), "x5t#S256");
    assert.ok(verify("sha256", Buffer.from(`${parts[0]}.${parts[1]}`), leaf.publicKey, fromB64url(parts[2])),
      "x5c[0] verifies the JWS signature");
    assert.ok(Buffer.from(header.x5c[1], "base64").equals(ca.raw), "x5c[1] is kvmock's CA");
    assert.ok(leaf.checkIssued(ca) && leaf.verify(ca.publicKey), "the leaf is issued and signed by kvmock's CA");
    assert.ok(leaf.checkHost("premium.vault.localhost"), `the leaf is valid for the vault's host: ${leaf.subjectAltName}`);
    assert.ok(new Date(leaf.validFrom) <= new Date() && new Date() <= new Date(leaf.validTo), "the leaf is valid now");
    const payload = JSON.parse(fromB64url(parts[1]).toString("utf8"));
    const hsm = JSON.parse(fromB64url(payload.response.key.key.key_hsm).toString("utf8"));
    assert.equal(hsm.schema_version, "1.0", "key_hsm schema_version");
    assert.deepEqual(hsm.header, { kid: TEE_KID, alg: "dir", enc }, "key_hsm header");
    const ct = fromB64url(hsm.ciphertext);
    const kek = privateDecrypt({ key: m.tee, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[enc] }, ct.subarray(0, 256));
    assert.equal(kek.length, 32, "an AES-256 key");
    const d = createDecipheriv("id-aes256-wrap-pad", kek, Buffer.from("A65959A6", "hex"));
    const plain = Buffer.concat([d.update(ct.subarray(256)), d.final()]);
    assert.equal(ct.length, 256 + Math.ceil(plain.length / 8) * 8 + 8, "OAEP block || RFC 5649 wrap");
    return { header, payload, plain };
  };

  /** The payload's request and key agree with what was asked and what the vault holds. */
  const checkPayload = (payload, key, { enc, nonce, version, since }) => {
    const sent = rec.find(since, "POST", /\/release$/);
    assert.equal(sent.length, 1, `one release request (saw ${rec.describe(since)})`);
    const kidUrl = `${env.vaultUrl("premium")}/keys/${key.name}${version ? `/${version}` : ""}`;
    assert.equal(sent[0].url.pathname, `${new URL(kidUrl).pathname}/release`, "the SDK's path");
    const want = { "api-version": sent[0].url.searchParams.get("api-version"), enc, kid: kidUrl };
    if (nonce !== undefined) want.nonce = nonce;
    assert.deepEqual(payload.request, want, "the signed request");
    const k = payload.response.key;
    assert.equal(k.key.kid, key.id, "the released version");
    // the released key's type without -HSM, as Key Vault's recorded releases show
    assert.equal(k.key.kty, key.keyType.replace(/-HSM$/, ""), "kty");
    assert.equal(k.attributes.exportable, true, "attributes.exportable");
    assert.deepEqual(k.release_policy, { data: Buffer.from(NORMALIZED).toString("base64url"), immutable: false },
      "the signed release_policy");
    return k.key;
  };

  await group("createRsaKey({hsm, exportable, releasePolicy}): exportable, the policy stored normalized", async () => {
    const key = await client.createRsaKey("rsa-js", { hsm: true, keySize: 2048, exportable: true, releasePolicy: releasePolicy() });
    assert.equal(key.keyType, "RSA-HSM", "kty");
    assert.equal(key.properties.exportable, true, "exportable");
    assert.equal(Buffer.from(key.properties.releasePolicy.encodedPolicy).toString("utf8"), NORMALIZED, "the policy");
    assert.equal(key.properties.releasePolicy.contentType, "application/json; charset=utf-8", "contentType");
    assert.equal(key.properties.releasePolicy.immutable, false, "immutable");
    const got = await client.getKey("rsa-js");
    assert.equal(Buffer.from(got.properties.releasePolicy.encodedPolicy).toString("utf8"), NORMALIZED, "GET: the policy");
  });

  const keks = new Set();
  let rsaPlain;
  for (const [label, algorithm, enc] of [
    ["no algorithm (the default)", undefined, "CKM_RSA_AES_KEY_WRAP"],
    ["CkmRsaAesKeyWrap", KnownKeyExportEncryptionAlgorithm.CkmRsaAesKeyWrap, "CKM_RSA_AES_KEY_WRAP"],
    ["RsaAesKeyWrap256", KnownKeyExportEncryptionAlgorithm.RsaAesKeyWrap256, "RSA_AES_KEY_WRAP_256"],
    ["RsaAesKeyWrap384", KnownKeyExportEncryptionAlgorithm.RsaAesKeyWrap384, "RSA_AES_KEY_WRAP_384"],
  ]) {
    await group(`releaseKey RSA-HSM, ${label}: JWS, chain, key_hsm unwrapped, the vault key's private key`, async () => {
      const key = await client.getKey("rsa-js");
      const nonce = algorithm ? `nonce-${randomUUID()}` : undefined;
      // versionless with a nonce; the versioned form with the default enc
      const opts = algorithm ? { algorithm, nonce } : { version: key.properties.version };
      const since = rec.exchanges.length;
      const { value } = await client.releaseKey("rsa-js", attestationToken(m), opts);
      const sent = JSON.parse(rec.find(since, "POST", /\/release$/)[0].requestBody);
      assert.equal(sent.enc, algorithm, "enc as the SDK sent it");
      const { payload, plain } = openRelease(value, enc);
      const released = checkPayload(payload, key, { enc, nonce, version: opts.version, since });
      assert.equal(released.n, b64(key.key.n), "n");
      assert.equal(released.e, b64(key.key.e), "e");
      const priv = createPrivateKey({ key: plain, format: "der", type: "pkcs8" });
      const jwk = priv.export({ format: "jwk" });
      assert.deepEqual([jwk.kty, jwk.n, jwk.e], ["RSA", b64(key.key.n), b64(key.key.e)], "the PKCS#8 key's n and e are the vault key's");
      // the released private key signs, the vault key's public key verifies
      const vaultPub = createPublicKey({ key: { kty: "RSA", n: b64(key.key.n), e: b64(key.key.e) }, format: "jwk" });
      const msg = randomBytes(48);
      assert.ok(verify("sha256", msg, vaultPub, sign("sha256", msg, priv)), "the private key matches the vault key");
      if (rsaPlain) assert.ok(plain.equals(rsaPlain), "every release carries the same key");
      rsaPlain = plain;
      const kek = privateDecrypt({ key: m.tee, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: OAEP_HASH[enc] },
        fromB64url(JSON.parse(fromB64url(payload.response.key.key.key_hsm)).ciphertext).subarray(0, 256)).toString("hex");
      assert.ok(!keks.has(kek), "a fresh AES key for each release");
      keks.add(kek);
    });
  }

  await group("createEcKey P-256 hsm exportable; releaseKey RSA_AES_KEY_WRAP_256: d * G is the vault key's point", async () => {
    const key = await client.createEcKey("ec-js", { hsm: true, curve: "P-256", exportable: true, releasePolicy: releasePolicy() });
    assert.deepEqual([key.keyType, key.properties.exportable], ["EC-HSM", true], "EC-HSM, exportable");
    const since = rec.exchanges.length;
    const { value } = await client.releaseKey("ec-js", attestationToken(m),
      { algorithm: KnownKeyExportEncryptionAlgorithm.RsaAesKeyWrap256, nonce: "ec" });
    const { payload, plain } = openRelease(value, "RSA_AES_KEY_WRAP_256");
    const released = checkPayload(payload, key, { enc: "RSA_AES_KEY_WRAP_256", nonce: "ec", since });
    assert.deepEqual([released.crv, released.x, released.y], ["P-256", b64(key.key.x), b64(key.key.y)], "crv, x, y");
    const jwk = createPrivateKey({ key: plain, format: "der", type: "pkcs8" }).export({ format: "jwk" });
    assert.equal(jwk.crv, "P-256", "a P-256 key");
    const ecdh = createECDH("prime256v1");
    ecdh.setPrivateKey(fromB64url(jwk.d));
    const point = ecdh.getPublicKey();
    assert.equal(point[0], 4, "uncompressed point");
    assert.deepEqual([b64(point.subarray(1, 33)), b64(point.subarray(33))], [b64(key.key.x), b64(key.key.y)],
      "d * G is the vault key's (x, y)");
  });

  await group("refused: a token whose claims do not meet the policy (403 Forbidden)", async () => {
    const err = await expectRestError(client.releaseKey("rsa-js", attestationToken(m, { "sdk-test": false })), 403, "Forbidden",
      "release with sdk-test false");
    const msg = errorBody(err, rec).error?.message ?? err.message;
    assert.ok(msg.startsWith(VERIFY_PREFIX) && msg.length > VERIFY_PREFIX.length + 5, `message: ${msg}`);
    // the same call with the claim met succeeds: the refusal was the claim's
    assert.ok((await client.releaseKey("rsa-js", attestationToken(m))).value, "released with sdk-test true");
  });

  await group("refused: a key that is not exportable (403 Forbidden)", async () => {
    const key = await client.createRsaKey("plain-js", { hsm: true });
    assert.notEqual(key.properties.exportable, true, "not exportable");
    assert.equal(key.properties.releasePolicy, undefined, "no release policy");
    await expectRestError(client.releaseKey("plain-js", attestationToken(m)), 403, "Forbidden", "release of a non-exportable key");
  });

  return summary();
}
