#!/usr/bin/env node
// The key-operation matrix through the official JS SDK's CryptographyClient,
// checked against node:crypto: RSA 2048/3072 (RSA-OAEP, RSA-OAEP-256, RSA1_5
// encrypt/decrypt and wrap/unwrap; RS/PS 256/384/512), EC P-256/P-256K/
// P-384/P-521 (ES256/ES256K/ES384/ES512), oct and oct-HSM 128/192/256
// (A*KW, CKM_AES_KEY_WRAP(_PAD), A*GCM, A*CBC, A*CBCPAD, HS256/384/512),
// getRandomBytes, and the negative cases (wrong algorithm for the key: 400
// BadParameter; a wrong signature verifies false). The JS counterpart of
// test_crypto_matrix.py.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/crypto.test.mjs --kvmock build/kvmock
//
// Every operation runs through three kinds of CryptographyClient:
//   id     new CryptographyClient(key.id, cred): the SDK GETs the key, then
//          does locally what it can (RSA-OAEP and RSA1_5 encrypt/wrap,
//          RS/PS verifyData) and sends the rest to kvmock;
//   key    new CryptographyClient(keyVaultKey, cred): the same without the GET;
//   remote a KeyVaultKey-shaped object without key material: every
//          operation goes to kvmock (asserted with a request recorder).
// Keys with known private parts (imported from node:crypto) let every result
// be checked byte for byte in both directions.
//
// The script is both the driver (starts kvmock, stops it and checks a clean
// exit) and, with --child, the scenario (see helpers.mjs).

import assert from "node:assert/strict";
import {
  constants as cc, createCipheriv, createDecipheriv, createHash, createHmac, createPrivateKey, createPublicKey,
  generateKeyPairSync, privateDecrypt, publicEncrypt, randomBytes, sign as nodeSign, verify as nodeVerify,
} from "node:crypto";
import { fileURLToPath } from "node:url";
import {
  b64url, errorBody, expectRestError, isChild, jwkToSdk, makeRecorder, makeReporter, runDriver, runScenario,
  sameBytes, scenarioEnv,
} from "./helpers.mjs";

if (!isChild()) {
  await runDriver({ script: fileURLToPath(import.meta.url) });
} else {
  runScenario("[crypto]", scenario);
}

const HASH = { 256: "sha256", 384: "sha384", 512: "sha512" };
const CURVES = {
  // SDK/Key Vault name: [node:crypto curve and JWK crv, algorithm, hash, coordinate size, an algorithm of another curve]
  "P-256": ["P-256", "ES256", "sha256", 32, "ES384"],
  "P-256K": ["secp256k1", "ES256K", "sha256", 32, "ES256"],
  "P-384": ["P-384", "ES384", "sha384", 48, "ES256"],
  "P-521": ["P-521", "ES512", "sha512", 66, "ES384"],
};
const RSA_ENC = ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"];
const RSA_SIG = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];
const ALL_OPS = ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"];

/** RSA decryption with node:crypto for the three Key Vault paddings. */
function rsaDecrypt(privateKey, alg, ct) {
  if (alg === "RSA-OAEP") return privateDecrypt({ key: privateKey, padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha1" }, ct);
  if (alg === "RSA-OAEP-256") return privateDecrypt({ key: privateKey, padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, ct);
  // Node 20 refuses RSA_PKCS1_PADDING for private decryption (CVE-2023-46809):
  // decrypt without padding and check/strip the PKCS #1 v1.5 type 2 block here.
  const em = privateDecrypt({ key: privateKey, padding: cc.RSA_NO_PADDING }, ct);
  assert.equal(em[0], 0x00, "PKCS#1 v1.5: leading 0x00");
  assert.equal(em[1], 0x02, "PKCS#1 v1.5: block type 2");
  const sep = em.indexOf(0x00, 2);
  assert.ok(sep >= 10, `PKCS#1 v1.5: at least 8 non-zero padding bytes (separator at ${sep})`);
  return em.subarray(sep + 1);
}
function rsaEncrypt(publicKey, alg, pt) {
  if (alg === "RSA1_5") return publicEncrypt({ key: publicKey, padding: cc.RSA_PKCS1_PADDING }, pt);
  return publicEncrypt({ key: publicKey, padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: alg === "RSA-OAEP" ? "sha1" : "sha256" }, pt);
}
function rsaSigOpts(key, alg) {
  const pss = alg.startsWith("PS");
  return pss ? { key, padding: cc.RSA_PKCS1_PSS_PADDING, saltLength: Number(alg.slice(2)) / 8 } : { key, padding: cc.RSA_PKCS1_PADDING };
}
/** The SDK key's public half as a node:crypto KeyObject (from the public JWK). */
function publicKeyOf(key) {
  if (key.key.kty.startsWith("RSA")) return createPublicKey({ key: { kty: "RSA", n: b64url(key.key.n), e: b64url(key.key.e) }, format: "jwk" });
  const crv = CURVES[key.key.crv][0];
  return createPublicKey({ key: { kty: "EC", crv, x: b64url(key.key.x), y: b64url(key.key.y) }, format: "jwk" });
}
const flip = (buf) => { const b = Buffer.from(buf); b[b.length >> 1] ^= 0x01; return b; };

async function scenario() {
  const { ManagedIdentityCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[crypto]");
  const cred = new ManagedIdentityCredential();
  const client = new KeyClient(env.vaultUrl("default"), cred, rec.options());

  const kinds = (key) => ({
    id: new CryptographyClient(key.id, cred, rec.options()),
    key: new CryptographyClient(key, cred, rec.options()),
    remote: new CryptographyClient({ id: key.id, name: key.name, properties: { ...key.properties }, key: undefined, keyOperations: undefined }, cred, rec.options()),
  });
  /** Run fn; for the remote kind assert exactly one POST .../{op} reached kvmock with 200. */
  async function op(kind, key, opName, fn) {
    const since = rec.exchanges.length;
    const r = await fn();
    if (kind === "remote") {
      const hits = rec.find(since, "POST", `${new URL(key.id).pathname}/${opName}`);
      assert.equal(hits.length, 1, `${opName}: one POST reached kvmock (saw ${rec.describe(since)})`);
      assert.equal(hits[0].status, 200, `${opName}: status`);
      // (A verify answer is {"value": bool} only, as in Key Vault.)
      if (opName !== "verify") assert.equal(JSON.parse(hits[0].body).kid, key.id, `${opName}: kid in the answer`);
    }
    return r;
  }

  // ------------------------------------------------------------------ RSA ----

  const rsaKeys = {};
  await group("import RSA 2048 and 3072 (node:crypto keys) and create RSA 2048 on kvmock", async () => {
    for (const bits of [2048, 3072]) {
      const pair = generateKeyPairSync("rsa", { modulusLength: bits });
      const k = await client.importKey(`rsa${bits}`, jwkToSdk(pair.privateKey.export({ format: "jwk" })));
      assert.equal(k.key.n.length, bits / 8, "modulus size");
      assert.equal(k.key.d, undefined, "no private part returned");
      assert.deepEqual([...k.keyOperations].sort(), ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"], "default key_ops of an imported RSA key");
      rsaKeys[bits] = { key: k, priv: pair.privateKey, pub: pair.publicKey };
    }
    const created = await client.createRsaKey("rsa2048-created", { keySize: 2048 });
    rsaKeys.created = { key: created, priv: null, pub: publicKeyOf(created) };
  });

  for (const which of ["2048", "3072", "created"]) {
    for (const alg of RSA_ENC) {
      for (const [enc, dec, encOp, decOp] of [["encrypt", "decrypt", "encrypt", "decrypt"], ["wrapKey", "unwrapKey", "wrapkey", "unwrapkey"]]) {
        await group(`RSA ${which} ${alg} ${enc}/${dec}`, async () => {
          const { key, priv, pub } = rsaKeys[which] ?? assert.fail("key missing (an earlier group failed)");
          const size = key.key.n.length;
          for (const [kind, c] of Object.entries(kinds(key))) {
            const pt = randomBytes(32);
            const e = await op(kind, key, encOp, () => enc === "encrypt" ? c.encrypt(alg, pt) : c.wrapKey(alg, pt));
            assert.equal(e.result.length, size, `${kind}: ciphertext is modulus-sized`);
            assert.equal(e.algorithm, alg, `${kind}: algorithm`);
            assert.equal(e.keyID, key.id, `${kind}: keyID`);
            if (priv) sameBytes(rsaDecrypt(priv, alg, e.result), pt, `${kind}: node:crypto decrypts the ${enc} result`);
            const d = await op(kind, key, decOp, () => dec === "decrypt" ? c.decrypt(alg, e.result) : c.unwrapKey(alg, e.result));
            sameBytes(d.result, pt, `${kind}: ${dec} of the ${enc} result`);
          }
          // node:crypto encrypts with the public JWK, kvmock decrypts.
          const pt = randomBytes(48);
          const ct = rsaEncrypt(pub, alg, pt);
          const c = kinds(key).remote;
          const d = await op("remote", key, decOp, () => dec === "decrypt" ? c.decrypt(alg, ct) : c.unwrapKey(alg, ct));
          sameBytes(d.result, pt, `kvmock ${dec}s what node:crypto encrypted`);
        });
      }
    }
    await group(`RSA ${which} sign/verify RS/PS 256/384/512`, async () => {
      const { key, priv, pub } = rsaKeys[which] ?? assert.fail("key missing (an earlier group failed)");
      for (const alg of RSA_SIG) {
        const hash = HASH[alg.slice(2)];
        const data = randomBytes(200);
        const digest = createHash(hash).update(data).digest();
        for (const [kind, c] of Object.entries(kinds(key))) {
          const s = await op(kind, key, "sign", () => c.sign(alg, digest));
          assert.equal(s.result.length, key.key.n.length, `${alg} ${kind}: signature is modulus-sized`);
          assert.ok(nodeVerify(hash, data, rsaSigOpts(pub, alg), s.result), `${alg} ${kind}: node:crypto verifies kvmock's signature with the public JWK`);
          const v = await op(kind, key, "verify", () => c.verify(alg, digest, s.result));
          assert.equal(v.result, true, `${alg} ${kind}: verify`);
          const bad = await op(kind, key, "verify", () => c.verify(alg, digest, flip(s.result)));
          assert.equal(bad.result, false, `${alg} ${kind}: a wrong signature verifies false`);
          const sd = await c.signData(alg, data);
          assert.ok(nodeVerify(hash, data, rsaSigOpts(pub, alg), sd.result), `${alg} ${kind}: signData verifies in node:crypto`);
          if (kind === "remote" || alg.startsWith("RS")) {
            // (Local verifyData, done by the id/key kinds, checks PS signatures
            // with PKCS #1 v1.5 padding in @azure/keyvault-keys 4.10.2: skipped for PS.)
            const vd = await c.verifyData(alg, data, sd.result);
            assert.equal(vd.result, true, `${alg} ${kind}: verifyData`);
            assert.equal((await c.verifyData(alg, data, flip(sd.result))).result, false, `${alg} ${kind}: verifyData of a wrong signature`);
          }
        }
        if (priv) {
          const local = nodeSign(hash, data, rsaSigOpts(priv, alg));
          const v = await op("remote", key, "verify", () => kinds(key).remote.verify(alg, digest, local));
          assert.equal(v.result, true, `${alg}: kvmock verifies node:crypto's signature`);
        }
      }
    });
  }

  await group("RSA: wrong algorithm or input for the key -> 400 BadParameter", async () => {
    const { key } = rsaKeys[2048] ?? assert.fail("key missing");
    const c = kinds(key).remote;
    await expectRestError(c.encrypt({ algorithm: "A128GCM", plaintext: randomBytes(16) }), 400, "BadParameter", "A128GCM with an RSA key");
    await expectRestError(c.wrapKey("A256KW", randomBytes(32)), 400, "BadParameter", "A256KW with an RSA key");
    await expectRestError(c.sign("ES256", randomBytes(32)), 400, "BadParameter", "ES256 with an RSA key");
    await expectRestError(c.sign("RS256", randomBytes(31)), 400, "BadParameter", "RS256 with a 31-byte digest");
    await expectRestError(c.unwrapKey("RSA-OAEP", randomBytes(256)), 400, "BadParameter", "unwrap of a random ciphertext");
  });

  // ------------------------------------------------------------------- EC ----

  for (const [crv, [nodeCrv, alg, hash, size, otherAlg]] of Object.entries(CURVES)) {
    await group(`EC ${crv} ${alg}: created and imported keys, sign on kvmock / verify in node:crypto and back`, async () => {
      const created = await client.createEcKey(`ec-${crv}`, { curve: crv });
      assert.equal(created.key.crv, crv, "crv");
      assert.equal(created.key.x.length, size, "x size");
      const pair = generateKeyPairSync("ec", { namedCurve: nodeCrv });
      const jwk = pair.privateKey.export({ format: "jwk" });
      const imported = await client.importKey(`ec-${crv}-imported`, jwkToSdk({ ...jwk, crv }));
      assert.equal(imported.key.crv, crv, "imported crv");
      sameBytes(imported.key.x, Buffer.from(jwk.x, "base64url"), "imported x");
      for (const key of [created, imported]) {
        const pub = publicKeyOf(key);
        for (const [kind, c] of Object.entries(kinds(key))) {
          const data = randomBytes(100);
          const digest = createHash(hash).update(data).digest();
          const s = await op(kind, key, "sign", () => c.sign(alg, digest));
          assert.equal(s.result.length, 2 * size, `${key.name} ${kind}: raw R||S signature`);
          assert.ok(nodeVerify(hash, data, { key: pub, dsaEncoding: "ieee-p1363" }, s.result), `${key.name} ${kind}: node:crypto verifies with the public JWK`);
          assert.equal((await op(kind, key, "verify", () => c.verify(alg, digest, s.result))).result, true, `${key.name} ${kind}: verify`);
          assert.equal((await op(kind, key, "verify", () => c.verify(alg, digest, flip(s.result)))).result, false, `${key.name} ${kind}: a wrong signature verifies false`);
          const sd = await c.signData(alg, data);
          assert.ok(nodeVerify(hash, data, { key: pub, dsaEncoding: "ieee-p1363" }, sd.result), `${key.name} ${kind}: signData`);
          assert.equal((await c.verifyData(alg, data, sd.result)).result, true, `${key.name} ${kind}: verifyData`);
        }
      }
      const data = randomBytes(64);
      const local = nodeSign(hash, data, { key: pair.privateKey, dsaEncoding: "ieee-p1363" });
      const c = kinds(imported).remote;
      assert.equal((await c.verify(alg, createHash(hash).update(data).digest(), local)).result, true, "kvmock verifies node:crypto's signature");
      await expectRestError(c.sign(otherAlg, createHash(HASH[otherAlg.slice(2, 5)]).update(data).digest()), 400, "BadParameter", `${otherAlg} with a ${crv} key`);
      await expectRestError(c.sign("RS256", createHash("sha256").update(data).digest()), 400, "BadParameter", `RS256 with an EC key`);
      // encrypt is not among an EC key's key_ops: refused before the algorithm is looked at.
      const err = await expectRestError(c.encrypt("RSA-OAEP", randomBytes(16)), 403, "Forbidden", "encrypt with an EC key");
      assert.equal(errorBody(err, rec).error?.innererror?.code, "KeyOperationForbidden", "innererror KeyOperationForbidden");
    });
  }

  // ------------------------------------------------------------------ oct ----

  const GCM_ALGS = (bits) => [`A${bits}GCM`];
  for (const hsm of [false, true]) {
    for (const bits of [128, 192, 256]) {
      const kty = hsm ? "oct-HSM" : "oct";
      await group(`${kty} ${bits} (createOctKey): key wrap, GCM, CBC, CBCPAD, HS round trips`, async () => {
        const key = await client.createOctKey(`${kty}-${bits}`, { keySize: bits, hsm, keyOps: ALL_OPS });
        assert.equal(key.keyType, kty, "keyType");
        assert.deepEqual([...key.keyOperations].sort(), [...ALL_OPS].sort(), "keyOps as created");
        assert.equal(key.key.k, undefined, "the key bytes are never returned");
        for (const [kind, c] of Object.entries(kinds(key))) {
          if (kind === "id") continue; // the id kind adds a GET only; the key kind covers the same path
          for (const alg of [`A${bits}KW`, "CKM_AES_KEY_WRAP", "CKM_AES_KEY_WRAP_PAD"]) {
            const cek = randomBytes(alg.endsWith("PAD") ? 21 : 32);
            const w = await op(kind, key, "wrapkey", () => c.wrapKey(alg, cek));
            assert.equal(w.result.length, alg.endsWith("PAD") ? 32 : 40, `${alg} ${kind}: wrapped length`);
            sameBytes((await op(kind, key, "unwrapkey", () => c.unwrapKey(alg, w.result))).result, cek, `${alg} ${kind}: unwrap`);
          }
          for (const alg of GCM_ALGS(bits)) {
            const pt = randomBytes(45);
            const aad = Buffer.from("kvmock additional data");
            const e = await op(kind, key, "encrypt", () => c.encrypt({ algorithm: alg, plaintext: pt, additionalAuthenticatedData: aad }));
            assert.equal(e.iv?.length, 12, `${alg} ${kind}: a 12-byte iv is returned`);
            assert.equal(e.authenticationTag?.length, 16, `${alg} ${kind}: a 16-byte tag is returned`);
            sameBytes(e.additionalAuthenticatedData, aad, `${alg} ${kind}: aad echoed`);
            assert.equal(e.result.length, pt.length, `${alg} ${kind}: ciphertext length`);
            const d = await op(kind, key, "decrypt", () => c.decrypt({ algorithm: alg, ciphertext: e.result, iv: e.iv, authenticationTag: e.authenticationTag, additionalAuthenticatedData: aad }));
            sameBytes(d.result, pt, `${alg} ${kind}: decrypt`);
            await expectRestError(c.decrypt({ algorithm: alg, ciphertext: e.result, iv: e.iv, authenticationTag: flip(e.authenticationTag), additionalAuthenticatedData: aad }), 400, "BadParameter", `${alg} ${kind}: a wrong tag`);
            await expectRestError(c.decrypt({ algorithm: alg, ciphertext: e.result, iv: e.iv, authenticationTag: e.authenticationTag, additionalAuthenticatedData: Buffer.from("other") }), 400, "BadParameter", `${alg} ${kind}: other aad`);
          }
          for (const alg of [`A${bits}CBC`, `A${bits}CBCPAD`]) {
            const pad = alg.endsWith("PAD");
            const pt = randomBytes(pad ? 45 : 48);
            const iv = randomBytes(16);
            const e = await op(kind, key, "encrypt", () => c.encrypt({ algorithm: alg, plaintext: pt, iv }));
            sameBytes(e.iv, iv, `${alg} ${kind}: the supplied iv is used`);
            assert.equal(e.result.length, pad ? 48 : 48, `${alg} ${kind}: ciphertext length`);
            sameBytes((await op(kind, key, "decrypt", () => c.decrypt({ algorithm: alg, ciphertext: e.result, iv }))).result, pt, `${alg} ${kind}: decrypt`);
            const e2 = await op(kind, key, "encrypt", () => c.encrypt({ algorithm: alg, plaintext: pt }));
            assert.equal(e2.iv?.length, 16, `${alg} ${kind}: without an iv, a 16-byte iv is returned`);
            assert.ok(!Buffer.from(e2.iv).equals(iv), `${alg} ${kind}: a fresh iv`);
            sameBytes((await op(kind, key, "decrypt", () => c.decrypt({ algorithm: alg, ciphertext: e2.result, iv: e2.iv }))).result, pt, `${alg} ${kind}: decrypt with the returned iv`);
          }
          for (const alg of ["HS256", "HS384", "HS512"]) {
            const msg = randomBytes(77);
            const s = await op(kind, key, "sign", () => c.sign(alg, msg));
            assert.equal(s.result.length, Number(alg.slice(2)) / 8, `${alg} ${kind}: MAC length`);
            assert.equal((await op(kind, key, "verify", () => c.verify(alg, msg, s.result))).result, true, `${alg} ${kind}: verify`);
            assert.equal((await op(kind, key, "verify", () => c.verify(alg, msg, flip(s.result)))).result, false, `${alg} ${kind}: a wrong MAC verifies false`);
          }
        }
        const c = kinds(key).remote;
        const other = bits === 128 ? 256 : 128;
        await expectRestError(c.wrapKey(`A${other}KW`, randomBytes(32)), 400, "BadParameter", `A${other}KW with a ${bits}-bit key`);
        await expectRestError(c.encrypt({ algorithm: `A${other}GCM`, plaintext: randomBytes(16) }), 400, "BadParameter", `A${other}GCM with a ${bits}-bit key`);
        await expectRestError(c.wrapKey("RSA-OAEP", randomBytes(32)), 400, "BadParameter", "RSA-OAEP with an oct key");
        await expectRestError(c.sign("RS256", randomBytes(32)), 400, "BadParameter", "RS256 with an oct key");
      });
    }
  }

  for (const bits of [128, 192, 256]) {
    await group(`oct ${bits} imported with known bytes: every result equals node:crypto's`, async () => {
      const k = randomBytes(bits / 8);
      const key = await client.importKey(`oct-known-${bits}`, { kty: "oct", k: new Uint8Array(k), keyOps: ALL_OPS });
      assert.equal(key.keyType, "oct", "keyType");
      assert.equal(key.key.k, undefined, "k not returned");
      const hsmKey = await client.importKey(`oct-hsm-known-${bits}`, { kty: "oct", k: new Uint8Array(k), keyOps: ALL_OPS }, { hardwareProtected: true });
      assert.equal(hsmKey.keyType, "oct-HSM", "hardwareProtected: oct-HSM");
      for (const target of [key, hsmKey]) {
        const c = kinds(target).key;
        const wrapName = `id-aes${bits}-wrap`;
        // AES key wrap is deterministic: kvmock's output equals node:crypto's.
        for (const [alg, cipher, iv, len] of [[`A${bits}KW`, wrapName, Buffer.from("A6A6A6A6A6A6A6A6", "hex"), 32],
          ["CKM_AES_KEY_WRAP", wrapName, Buffer.from("A6A6A6A6A6A6A6A6", "hex"), 24],
          ["CKM_AES_KEY_WRAP_PAD", `${wrapName}-pad`, Buffer.from("A65959A6", "hex"), 21]]) {
          const cek = randomBytes(len);
          const w = await c.wrapKey(alg, cek);
          const ci = createCipheriv(cipher, k, iv);
          sameBytes(w.result, Buffer.concat([ci.update(cek), ci.final()]), `${target.keyType} ${alg}: kvmock's wrap equals node:crypto's`);
          const cek2 = randomBytes(len);
          const ci2 = createCipheriv(cipher, k, iv);
          const local = Buffer.concat([ci2.update(cek2), ci2.final()]);
          sameBytes((await c.unwrapKey(alg, local)).result, cek2, `${target.keyType} ${alg}: kvmock unwraps node:crypto's wrap`);
        }
        // GCM both ways.
        const gcm = `A${bits}GCM`;
        const pt = randomBytes(50);
        const aad = randomBytes(20);
        const e = await c.encrypt({ algorithm: gcm, plaintext: pt, additionalAuthenticatedData: aad });
        const dg = createDecipheriv(`aes-${bits}-gcm`, k, e.iv);
        dg.setAAD(aad);
        dg.setAuthTag(Buffer.from(e.authenticationTag));
        sameBytes(Buffer.concat([dg.update(e.result), dg.final()]), pt, `${target.keyType} ${gcm}: node:crypto decrypts kvmock's ciphertext`);
        const iv = randomBytes(12);
        const cg = createCipheriv(`aes-${bits}-gcm`, k, iv);
        cg.setAAD(aad);
        const ct = Buffer.concat([cg.update(pt), cg.final()]);
        sameBytes((await c.decrypt({ algorithm: gcm, ciphertext: ct, iv, authenticationTag: cg.getAuthTag(), additionalAuthenticatedData: aad })).result, pt,
          `${target.keyType} ${gcm}: kvmock decrypts node:crypto's ciphertext`);
        // CBC and CBCPAD: deterministic for a given iv.
        for (const pad of [false, true]) {
          const alg = `A${bits}CBC${pad ? "PAD" : ""}`;
          const data = randomBytes(pad ? 37 : 32);
          const civ = randomBytes(16);
          const nc = createCipheriv(`aes-${bits}-cbc`, k, civ);
          nc.setAutoPadding(pad);
          const want = Buffer.concat([nc.update(data), nc.final()]);
          sameBytes((await c.encrypt({ algorithm: alg, plaintext: data, iv: civ })).result, want, `${target.keyType} ${alg}: kvmock's ciphertext equals node:crypto's`);
          sameBytes((await c.decrypt({ algorithm: alg, ciphertext: want, iv: civ })).result, data, `${target.keyType} ${alg}: kvmock decrypts node:crypto's ciphertext`);
          const e2 = await c.encrypt({ algorithm: alg, plaintext: data });
          const nd = createDecipheriv(`aes-${bits}-cbc`, k, e2.iv);
          nd.setAutoPadding(pad);
          sameBytes(Buffer.concat([nd.update(e2.result), nd.final()]), data, `${target.keyType} ${alg}: node:crypto decrypts with kvmock's generated iv`);
        }
        // HMAC.
        for (const alg of ["HS256", "HS384", "HS512"]) {
          const msg = randomBytes(60);
          const want = createHmac(HASH[alg.slice(2)], k).update(msg).digest();
          sameBytes((await c.sign(alg, msg)).result, want, `${target.keyType} ${alg}: kvmock's MAC equals node:crypto's HMAC`);
          assert.equal((await c.verify(alg, msg, want)).result, true, `${target.keyType} ${alg}: kvmock verifies node:crypto's HMAC`);
          assert.equal((await c.verify(alg, msg, flip(want))).result, false, `${target.keyType} ${alg}: a wrong MAC verifies false`);
        }
      }
      // The SDK's local AES provider (a JsonWebKey with k: CBCPAD only) agrees with kvmock.
      const localClient = new CryptographyClient({ kty: "oct", k: new Uint8Array(k), keyOps: ["encrypt", "decrypt"] });
      const data = randomBytes(33);
      const civ = randomBytes(16);
      const le = await localClient.encrypt({ algorithm: `A${bits}CBCPAD`, plaintext: data, iv: civ });
      sameBytes((await kinds(key).remote.decrypt({ algorithm: `A${bits}CBCPAD`, ciphertext: le.result, iv: civ })).result, data,
        `kvmock decrypts the SDK's local A${bits}CBCPAD ciphertext`);
    });
  }

  // ------------------------------------------------------------------ rng ----

  await group("KeyClient.getRandomBytes(32)", async () => {
    const a = await client.getRandomBytes(32);
    const b = await client.getRandomBytes(32);
    assert.ok(a instanceof Uint8Array, "a Uint8Array");
    assert.equal(a.length, 32, "32 bytes");
    assert.equal(b.length, 32, "32 bytes");
    assert.ok(!Buffer.from(a).equals(Buffer.from(b)), "two calls differ");
    await expectRestError(client.getRandomBytes(0), 400, "BadParameter", "count 0");
  });

  return summary();
}
