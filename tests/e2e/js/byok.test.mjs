#!/usr/bin/env node
// Bring your own key (BYOK) through the official JS SDK (@azure/keyvault-keys,
// pinned in package-lock.json):
//
//   - createRsaKey("kek", {hsm: true, keyOps: ["import"]}) in a premium vault:
//     the key exchange key (KEK), an RSA-HSM key whose only operation is import;
//   - an RSA-2048 key and an EC P-256 key made here with node:crypto, each
//     wrapped for the KEK as Microsoft's BYOK specification says: a fresh
//     AES-256 key under RSA-OAEP (oaepHash sha1, enc CKM_RSA_AES_KEY_WRAP),
//     then the PKCS#8 DER key under AES key wrap with padding (RFC 5649,
//     "id-aes256-wrap-pad" with the IV A65959A6), in the transfer blob
//     {schema_version, header: {kid, alg: "dir", enc}, ciphertext, generator};
//   - importKey(name, {kty: "RSA-HSM" | "EC-HSM", t: blob}): the SDK sends the
//     blob as key_hsm (base64url); the imported key's public part is the local
//     key's, and a signature kvmock makes with it (PS256, ES256, through
//     CryptographyClient) verifies here with the local public key (and a
//     flipped one does not);
//   - the KEK refuses decrypt (403 Forbidden) and keeps importing; a tampered
//     blob is refused (400 BadParameter, Key Vault's message), the name left
//     absent.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/byok.test.mjs --kvmock build/kvmock

import assert from "node:assert/strict";
import {
  constants as C, createCipheriv, createHash, createPublicKey, generateKeyPairSync, publicEncrypt, randomBytes, verify,
} from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  b64url, errorBody, expectRestError, isChild, makeRecorder, makeReporter, runDriver, runScenario,
  scenarioEnv,
} from "./helpers.mjs";

const MSG_BLOB = "The key transfer blob (key_hsm) could not be opened with its key exchange key, or " +
  "it does not hold a private key of the type (and curve) of the request.";
const RFC5649_IV = Buffer.from("A65959A6", "hex");

const script = fileURLToPath(import.meta.url);

if (!isChild()) {
  await runDriver({
    script,
    config: { vaults: [{ name: "premium", properties: { sku: { family: "A", name: "premium" } } }] },
  });
} else {
  runScenario("[byok]", scenario);
}

/**
 * The transfer blob's bytes: @p der wrapped for the KEK (a KeyVaultKey) as
 * CKM_RSA_AES_KEY_WRAP says; {blob, ciphertext}.
 */
function transferBlob(kek, der) {
  const aes = randomBytes(32);
  const pub = createPublicKey({ key: { kty: "RSA", n: b64url(kek.key.n), e: b64url(kek.key.e) }, format: "jwk" });
  const wrappedAes = publicEncrypt({ key: pub, padding: C.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, aes);
  const c = createCipheriv("id-aes256-wrap-pad", aes, RFC5649_IV);
  const wrappedKey = Buffer.concat([c.update(der), c.final()]);
  assert.equal(wrappedAes.length, 256, "an RSA-2048 OAEP block");
  assert.equal(wrappedKey.length, Math.ceil(der.length / 8) * 8 + 8, "an RFC 5649 wrap");
  const ciphertext = Buffer.concat([wrappedAes, wrappedKey]);
  const doc = {
    schema_version: "1.0.0",
    header: { kid: kek.id, alg: "dir", enc: "CKM_RSA_AES_KEY_WRAP" },
    ciphertext: b64url(ciphertext),
    generator: "kvmock e2e byok.test.mjs",
  };
  return { blob: Buffer.from(JSON.stringify(doc)), ciphertext };
}

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[byok]");
  const cred = new ManagedIdentityCredential();
  const client = new KeyClient(env.vaultUrl("premium"), cred, rec.options());
  const b64 = (u8) => Buffer.from(u8).toString("base64url");
  let kek;

  /** importKey with t; checks what the SDK sent. */
  const importByok = async (name, kty, blob, extra = {}) => {
    const since = rec.exchanges.length;
    const key = await client.importKey(name, { kty, t: new Uint8Array(blob), ...extra });
    const sent = rec.find(since, "PUT", `/keys/${name}`);
    assert.equal(sent.length, 1, `one PUT /keys/${name} (saw ${rec.describe(since)})`);
    const body = JSON.parse(sent[0].requestBody);
    assert.equal(body.key.kty, kty, "the SDK sent kty");
    assert.equal(body.key.key_hsm, blob.toString("base64url"), "the SDK sent t as key_hsm, base64url");
    assert.equal(key.name, name, "name");
    assert.equal(key.keyType, kty, "kty");
    for (const p of ["d", "p", "q", "dp", "dq", "qi", "k", "t"]) assert.equal(key.key[p], undefined, `no ${p} in the answer`);
    return key;
  };

  /** A signature by kvmock through CryptographyClient; asserts it was kvmock's. */
  const remoteSign = async (key, alg, digest) => {
    const since = rec.exchanges.length;
    const crypto = new CryptographyClient(key, cred, rec.options());
    const { result } = await crypto.sign(alg, digest);
    assert.equal(rec.find(since, "POST", `${new URL(key.id).pathname}/sign`).length, 1,
      `kvmock signed (saw ${rec.describe(since)})`);
    return Buffer.from(result);
  };

  await group("createRsaKey({hsm, keyOps: [import]}): the key exchange key", async () => {
    kek = await client.createRsaKey("kek", { hsm: true, keySize: 2048, keyOps: ["import"] });
    assert.equal(kek.keyType, "RSA-HSM", "kty");
    assert.deepEqual(kek.keyOperations, ["import"], "key_ops");
    assert.equal(kek.key.n.length, 256, "2048 bits");
    assert.ok(kek.id.startsWith(`${env.vaultUrl("premium")}/keys/kek/`), `kid ${kek.id}`);
  });

  await group("importKey RSA-HSM with t: the local key (n, e; PS256 signed by kvmock verifies here)", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const { blob } = transferBlob(kek, privateKey.export({ type: "pkcs8", format: "der" }));
    const key = await importByok("byok-rsa", "RSA-HSM", blob);
    const local = publicKey.export({ format: "jwk" });
    assert.deepEqual([b64(key.key.n), b64(key.key.e)], [local.n, local.e], "n and e are the local key's");
    const got = await client.getKey("byok-rsa");
    assert.equal(got.id, key.id, "GET: the imported version");
    assert.deepEqual([b64(got.key.n), got.keyType], [local.n, "RSA-HSM"], "GET: n, kty");
    const msg = randomBytes(64);
    const sig = await remoteSign(key, "PS256", createHash("sha256").update(msg).digest());
    const pss = { key: publicKey, padding: C.RSA_PKCS1_PSS_PADDING, saltLength: 32 };
    assert.ok(verify("sha256", msg, pss, sig), "the local public key verifies kvmock's PS256 signature");
    sig[10] ^= 1;
    assert.ok(!verify("sha256", msg, pss, sig), "and not a flipped one");
  });

  await group("importKey EC-HSM P-256 with t: the local key (x, y; ES256 signed by kvmock verifies here)", async () => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const { blob } = transferBlob(kek, privateKey.export({ type: "pkcs8", format: "der" }));
    const key = await importByok("byok-ec", "EC-HSM", blob, { crv: "P-256" });
    const local = publicKey.export({ format: "jwk" });
    assert.deepEqual([key.key.crv, b64(key.key.x), b64(key.key.y)], ["P-256", local.x, local.y], "crv, x and y are the local key's");
    const msg = randomBytes(64);
    const sig = await remoteSign(key, "ES256", createHash("sha256").update(msg).digest());
    assert.equal(sig.length, 64, "r || s");
    const ecdsa = { key: publicKey, dsaEncoding: "ieee-p1363" };
    assert.ok(verify("sha256", msg, ecdsa, sig), "the local public key verifies kvmock's ES256 signature");
    sig[40] ^= 1;
    assert.ok(!verify("sha256", msg, ecdsa, sig), "and not a flipped one");
  });

  await group("the KEK stays import-only; a tampered blob is refused and stores nothing", async () => {
    const since = rec.exchanges.length;
    // a client that knows no key_ops (the SDK checks them itself when it has them): decrypt
    // needs the private key, so kvmock answers it
    const crypto = new CryptographyClient({ id: kek.id, name: kek.name, properties: { ...kek.properties }, key: undefined,
      keyOperations: undefined }, cred, rec.options());
    await expectRestError(crypto.decrypt("RSA-OAEP", randomBytes(256)), 403, "Forbidden", "decrypt with the KEK");
    assert.ok(rec.find(since, "POST", /\/keys\/kek\/[0-9a-f]{32}\/decrypt$/).length >= 1, `kvmock refused (${rec.describe(since)})`);
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
    const { blob, ciphertext } = transferBlob(kek, privateKey.export({ type: "pkcs8", format: "der" }));
    ciphertext[ciphertext.length - 3] ^= 0x20;
    const doc = JSON.parse(blob.toString("utf8"));
    doc.ciphertext = b64url(ciphertext);
    const err = await expectRestError(client.importKey("byok-bad", { kty: "EC-HSM", t: Buffer.from(JSON.stringify(doc)) }),
      400, "BadParameter", "a tampered blob");
    assert.equal(errorBody(err, rec).error?.message ?? err.message, MSG_BLOB, "the message");
    await expectRestError(client.getKey("byok-bad"), 404, "KeyNotFound", "nothing stored");
    // the KEK still imports
    const again = await importByok("byok-again", "EC-HSM", transferBlob(kek, privateKey.export({ type: "pkcs8", format: "der" })).blob);
    assert.equal(again.keyType, "EC-HSM", "imported after the refusals");
    assert.equal(again.key.x.length, 32, "a P-256 point");
  });

  return summary();
}
