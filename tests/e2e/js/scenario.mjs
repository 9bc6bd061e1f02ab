// One pass of the JS SDK scenario against a running kvmock. Started by
// sdk.test.mjs in a child process whose environment carries
// NODE_EXTRA_CA_CERTS (kvmock's CA), IDENTITY_ENDPOINT and IDENTITY_HEADER.
//
//   node scenario.mjs --mode a|b --vault-url URL
//
// mode a: vault URL https://default.vault.localhost:P, the SDK's
//         challenge-resource check left ON (the default).
// mode b: vault URL https://localhost:P with
//         disableChallengeResourceVerification: true.
// Prints one PASS/FAIL line per check group; exits 1 if any group failed.

import assert from "node:assert/strict";
import { randomBytes, createPublicKey, publicEncrypt, constants as cc } from "node:crypto";
import { KeyClient, CryptographyClient } from "@azure/keyvault-keys";
import { ManagedIdentityCredential, DefaultAzureCredential } from "@azure/identity";

// ---------------------------------------------------------------- setup ----

function arg(name) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}
const mode = arg("--mode") ?? process.env.KVMOCK_MODE;
const vaultUrl = (arg("--vault-url") ?? process.env.KVMOCK_VAULT_URL ?? "").replace(/\/+$/, "");
const httpsPort = process.env.KVMOCK_HTTPS_PORT ?? new URL(vaultUrl).port;
const readyLine = process.env.KVMOCK_READY_LINE ?? "";
if (!["a", "b"].includes(mode) || !vaultUrl) {
  console.error("usage: node scenario.mjs --mode a|b --vault-url URL");
  process.exit(2);
}
for (const v of ["NODE_EXTRA_CA_CERTS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER"]) {
  if (!process.env[v]) {
    console.error(`scenario: ${v} is not set`);
    process.exit(2);
  }
}

const verifyOff = mode === "b";
const tag = `[${mode}]`;
const run = randomBytes(3).toString("hex");
const keyName = (what) => `js${mode}-${what}-${run}`;
const credential = new ManagedIdentityCredential();

const DEFAULT_RSA_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"];
const DEFAULT_EC_OPS = ["sign", "verify"];
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "k"];
const VERSION_RE = /^[0-9a-f]{32}$/;

// Every HTTP exchange the SDK clients make (after the 401 challenge dance,
// which happens inside the Key Vault auth policy further down the pipeline).
const exchanges = [];
const recorder = {
  name: "kvmockTestRecorder",
  async sendRequest(request, next) {
    const response = await next(request);
    exchanges.push({
      method: request.method,
      url: new URL(request.url),
      status: response.status,
      body: response.bodyAsText ?? "",
      authorization: request.headers.get("authorization") ?? "",
    });
    return response;
  },
};

/** Fresh options per client: the SDK mutates the object it is given. */
function clientOptions({ verify = !verifyOff } = {}) {
  const o = { additionalPolicies: [{ policy: recorder, position: "perCall" }] };
  if (!verify) o.disableChallengeResourceVerification = true;
  return o;
}
const keyClient = (url = vaultUrl, opts = {}, cred = credential) => new KeyClient(url, cred, clientOptions(opts));
const cryptoClient = (key, cred = credential) => new CryptographyClient(key, cred, clientOptions());

/**
 * A CryptographyClient that cannot do anything locally: built from a
 * KeyVaultKey-shaped object without key material or key_ops, so every
 * operation goes to the server (the SDK checks key_ops and wraps RSA-OAEP
 * and RSA1_5 locally when it has the public key).
 */
function remoteOnlyCryptoClient(key) {
  return cryptoClient({ id: key.id, name: key.name, properties: { ...key.properties }, key: undefined, keyOperations: undefined });
}

const client = keyClient();

// ---------------------------------------------------------- reporting ----

const results = [];
async function group(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push([name, true]);
    console.log(`PASS ${tag} ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    results.push([name, false]);
    console.log(`FAIL ${tag} ${name}: ${e && e.stack ? e.stack : e}`);
  }
}

// ------------------------------------------------------------- helpers ----

const buf = (x) => Buffer.from(x);
const b64url = (x) => Buffer.from(x).toString("base64url");
const fromB64url = (s) => Buffer.from(s, "base64url");
const sameBytes = (a, b, msg) => assert.ok(buf(a).equals(buf(b)), `${msg}: ${buf(a).toString("hex")} != ${buf(b).toString("hex")}`);

async function expectRestError(promise, status, code, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected a rejection with ${status} ${code}, but it succeeded`);
  assert.equal(err.name, "RestError", `${what}: expected a RestError, got ${err.name}: ${err.message}`);
  assert.equal(err.statusCode, status, `${what}: statusCode (message: ${err.message})`);
  assert.equal(err.code, code, `${what}: error code (message: ${err.message})`);
  return err;
}

function checkCommon(key, name, kty, ops) {
  assert.equal(key.name, name, "name");
  assert.equal(key.keyType, kty, "keyType");
  assert.equal(key.key.kty, kty, "key.kty");
  const version = key.properties.version;
  assert.match(version ?? "", VERSION_RE, "version is 32 lowercase hex characters");
  assert.equal(key.id, `${vaultUrl}/keys/${name}/${version}`, "key.id");
  assert.equal(key.key.kid, key.id, "key.kid");
  assert.equal(key.properties.vaultUrl, vaultUrl, "properties.vaultUrl");
  assert.deepEqual([...key.keyOperations].sort(), [...ops].sort(), "keyOperations");
  assert.equal(key.properties.enabled, true, "enabled");
  for (const f of ["createdOn", "updatedOn"]) {
    const d = key.properties[f];
    assert.ok(d instanceof Date && !isNaN(d), `${f} is a date`);
    assert.ok(Math.abs(d.getTime() - Date.now()) < 10 * 60_000, `${f} ${d.toISOString()} is near now`);
  }
  // No config file: vault "default" has 90-day soft delete without purge protection.
  assert.equal(key.properties.recoveryLevel, "Recoverable+Purgeable", "recoveryLevel");
  assert.equal(key.properties.recoverableDays, 90, "recoverableDays");
  for (const m of PRIVATE_MEMBERS) assert.equal(key.key[m], undefined, `private member ${m} must not be returned`);
}

function checkRsa(key, name, bits, ops = DEFAULT_RSA_OPS) {
  checkCommon(key, name, "RSA", ops);
  assert.equal(key.key.n?.length, bits / 8, "modulus length in bytes");
  assert.ok(key.key.n[0] & 0x80, "modulus has its top bit set (no leading zero byte, full size)");
  sameBytes(key.key.e, [1, 0, 1], "public exponent 65537");
}

const EC_SIZES = { "P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66 };
function checkEc(key, name, crv, ops = DEFAULT_EC_OPS) {
  checkCommon(key, name, "EC", ops);
  assert.equal(key.key.crv, crv, "crv");
  assert.equal(key.key.x?.length, EC_SIZES[crv], "x length");
  assert.equal(key.key.y?.length, EC_SIZES[crv], "y length");
}

/** The recorded exchange for a crypto operation path; asserts it is there and was 200. */
function serverOp(kid, op, since) {
  const path = `${new URL(kid).pathname}/${op}`;
  const hits = exchanges.slice(since).filter((x) => x.method === "POST" && x.url.pathname === path);
  assert.equal(hits.length, 1, `exactly one POST ${path} reached the server (saw: ${exchanges.slice(since).map((x) => `${x.method} ${x.url.pathname} ${x.status}`).join(", ") || "nothing"})`);
  assert.equal(hits[0].status, 200, `POST ${path} status`);
  const body = JSON.parse(hits[0].body);
  return body;
}

function rsaPublicKey(key) {
  return createPublicKey({ key: { kty: "RSA", n: b64url(key.key.n), e: b64url(key.key.e) }, format: "jwk" });
}

function decodeJwt(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, "token is a JWT with three parts");
  return JSON.parse(fromB64url(parts[1]).toString("utf8"));
}

// ------------------------------------------------------------ scenario ----

const created = {};   // what -> KeyVaultKey
/** A key made by an earlier group; a clear message if that group failed. */
function need(what) {
  if (!created[what]) throw new Error(`skipped: needs key "${what}" from an earlier group, which failed`);
  return created[what];
}
const allNames = [];

async function main() {
  console.log(`${tag} vault ${vaultUrl}, challenge-resource verification ${verifyOff ? "OFF" : "ON"}, names js${mode}-*-${run}`);

  await group("managed identity token", async () => {
    const resource = verifyOff ? "https://vault.azure.net" : `https://vault.localhost:${httpsPort}`;
    const t = await credential.getToken(`${resource}/.default`);
    assert.ok(t && typeof t.token === "string" && t.token.length > 0, "a token");
    assert.ok(t.expiresOnTimestamp > Date.now() + 60_000, "token expires in the future");
    const c = decodeJwt(t.token);
    for (const claim of ["tid", "oid", "appid", "aud", "iat", "nbf", "exp"]) assert.ok(c[claim] !== undefined, `claim ${claim} present`);
    assert.ok(c.exp * 1000 > Date.now(), "exp in the future");
    assert.ok(c.nbf * 1000 <= Date.now() + 5_000, "nbf not in the future");
    assert.ok(readyLine.includes(c.tid), `ready line names the tenant id ${c.tid}: ${readyLine}`);
    assert.ok(readyLine.includes(c.oid), `ready line names the default identity object id ${c.oid}: ${readyLine}`);
  });

  await group("create RSA 2048 and 3072", async () => {
    for (const bits of [2048, 3072]) {
      const name = keyName(`rsa${bits}`);
      const key = await client.createRsaKey(name, { keySize: bits });
      checkRsa(key, name, bits);
      created[`rsa${bits}`] = key;
      allNames.push(name);
    }
  });

  await group("bearer token audience matches the challenge resource", async () => {
    const withAuth = exchanges.filter((x) => x.authorization.startsWith("Bearer "));
    assert.ok(withAuth.length > 0, "requests carried a bearer token");
    const aud = decodeJwt(withAuth[0].authorization.slice("Bearer ".length)).aud;
    const want = verifyOff ? "https://vault.azure.net" : `https://vault.localhost:${httpsPort}`;
    assert.ok(aud === want || aud === `${want}/`, `aud ${aud} should be ${want}`);
  });

  await group("create EC P-256, P-256K, P-384, P-521 (and default curve)", async () => {
    for (const crv of Object.keys(EC_SIZES)) {
      const name = keyName(`ec-${crv.toLowerCase().replace(/[^a-z0-9]/g, "")}`);
      const key = await client.createEcKey(name, { curve: crv });
      checkEc(key, name, crv);
      created[`ec-${crv}`] = key;
      allNames.push(name);
    }
    const name = keyName("ec-default");
    const key = await client.createKey(name, "EC");
    checkEc(key, name, "P-256");
    allNames.push(name);
  });

  await group("create an existing name again gives a new version", async () => {
    const first = need("rsa2048");
    const name = first.name;
    const second = await client.createRsaKey(name, { keySize: 2048 });
    checkRsa(second, name, 2048);
    assert.notEqual(second.properties.version, first.properties.version, "a new version");
    assert.ok(!buf(second.key.n).equals(buf(first.key.n)), "new key material");
    created.rsa2048v2 = second;
  });

  await group("get key with and without version", async () => {
    const v1 = need("rsa2048");
    const v2 = need("rsa2048v2");
    const latest = await client.getKey(v1.name);
    assert.equal(latest.id, v2.id, "getKey without version returns the newest version");
    sameBytes(latest.key.n, v2.key.n, "latest modulus");
    checkRsa(latest, v1.name, 2048);
    const old = await client.getKey(v1.name, { version: v1.properties.version });
    assert.equal(old.id, v1.id, "getKey with version returns that version");
    sameBytes(old.key.n, v1.key.n, "old modulus");
    checkRsa(old, v1.name, 2048);
    const ec = need("ec-P-384");
    const ecGot = await client.getKey(ec.name, { version: ec.properties.version });
    checkEc(ecGot, ec.name, "P-384");
    sameBytes(ecGot.key.x, ec.key.x, "EC x");
    sameBytes(ecGot.key.y, ec.key.y, "EC y");
    // The SDK asks for the latest version with an empty segment: GET /keys/{name}/
    const emptySeg = exchanges.filter((x) => x.method === "GET" && x.url.pathname === `/keys/${v1.name}/`);
    assert.ok(emptySeg.length >= 1 && emptySeg.every((x) => x.status === 200), "GET /keys/{name}/ (empty version segment) answered 200");
  });

  await group("getKey of a missing name or version: 404 KeyNotFound", async () => {
    await expectRestError(client.getKey(keyName("missing")), 404, "KeyNotFound", "missing name");
    await expectRestError(client.getKey(need("rsa2048").name, { version: "0123456789abcdef0123456789abcdef" }), 404, "KeyNotFound", "missing version");
  });

  await group("list key versions across pages (maxPageSize 2)", async () => {
    const name = keyName("versions");
    const versions = [];
    for (let i = 0; i < 5; i++) versions.push((await client.createEcKey(name, { curve: "P-256" })).properties.version);
    allNames.push(name);
    assert.equal(new Set(versions).size, 5, "five distinct versions");
    const since = exchanges.length;
    const seen = [];
    let pages = 0;
    for await (const page of client.listPropertiesOfKeyVersions(name).byPage({ maxPageSize: 2 })) {
      pages++;
      assert.ok(page.length <= 2, `page ${pages} has ${page.length} items, maxresults was 2`);
      for (const p of page) {
        assert.equal(p.name, name, "item name");
        assert.match(p.version ?? "", VERSION_RE, "item version");
        assert.equal(p.id, `${vaultUrl}/keys/${name}/${p.version}`, "item id carries the version");
        assert.equal(p.enabled, true, "item enabled");
        seen.push(p.version);
      }
    }
    assert.ok(pages > 1, `more than one page (got ${pages})`);
    assert.equal(pages, 3, "5 versions at 2 per page make 3 pages");
    assert.deepEqual([...seen].sort(), [...versions].sort(), "every version listed exactly once");
    const gets = exchanges.slice(since).filter((x) => x.method === "GET");
    assert.ok(gets.length >= 2, "several page requests");
    for (const x of gets) {
      assert.equal(x.url.origin, new URL(vaultUrl).origin, `page request ${x.url.href} stays on the vault's origin (nextLink from Host)`);
      assert.equal(x.status, 200, `page request ${x.url.href}`);
    }
  });

  await group("list keys across pages (maxPageSize 2)", async () => {
    const since = exchanges.length;
    const names = [];
    let pages = 0;
    for await (const page of client.listPropertiesOfKeys().byPage({ maxPageSize: 2 })) {
      pages++;
      assert.ok(page.length <= 2, `page ${pages} has ${page.length} items, maxresults was 2`);
      for (const p of page) {
        assert.equal(p.id, `${vaultUrl}/keys/${p.name}`, "list-keys item id has no version");
        names.push(p.name);
      }
    }
    assert.ok(pages > 1, `more than one page (got ${pages})`);
    assert.equal(new Set(names).size, names.length, `no name listed twice: ${names.join(",")}`);
    for (const n of allNames) assert.ok(names.includes(n), `${n} listed`);
    for (const x of exchanges.slice(since)) {
      assert.equal(x.url.origin, new URL(vaultUrl).origin, `page request ${x.url.href} stays on the vault's origin`);
      assert.equal(x.status, 200, `page request ${x.url.href}`);
    }
  });

  await group("wrap RSA-OAEP (SDK wraps locally) / unwrapKey on the server", async () => {
    const key = need("rsa2048v2");
    const cc1 = cryptoClient(key.id);
    const cek = randomBytes(32);
    const since = exchanges.length;
    const w = await cc1.wrapKey("RSA-OAEP", cek);
    assert.equal(w.result.length, 256, "ciphertext is modulus-sized");
    const u = await cc1.unwrapKey("RSA-OAEP", w.result);
    sameBytes(u.result, cek, "unwrapped CEK");
    const body = serverOp(key.id, "unwrapkey", since);
    assert.equal(body.kid, key.id, "unwrap result kid is the versioned kid");
  });

  await group("wrap RSA-OAEP-256 on the server / unwrapKey", async () => {
    const key = need("rsa2048v2");
    const cc2 = cryptoClient(key.id); // from the id string, not the KeyVaultKey
    const cek = randomBytes(32);
    const since = exchanges.length;
    const w = await cc2.wrapKey("RSA-OAEP-256", cek);
    const wrapBody = serverOp(key.id, "wrapkey", since);
    assert.equal(wrapBody.kid, key.id, "server wrap result kid is the versioned kid");
    assert.equal(w.keyID, key.id, "SDK result keyID");
    assert.match(wrapBody.value, /^[A-Za-z0-9_-]+$/, "wrap value is base64url without padding");
    sameBytes(w.result, fromB64url(wrapBody.value), "SDK result equals the server's value");
    assert.equal(w.result.length, 256, "ciphertext is modulus-sized");
    const since2 = exchanges.length;
    const u = await cc2.unwrapKey("RSA-OAEP-256", w.result);
    sameBytes(u.result, cek, "unwrapped CEK");
    assert.equal(serverOp(key.id, "unwrapkey", since2).kid, key.id, "unwrap kid");
    // A ciphertext made by OpenSSL (Node) with OAEP/SHA-256 unwraps on the server too.
    const cek2 = randomBytes(32);
    const ct = publicEncrypt({ key: rsaPublicKey(key), padding: cc.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, cek2);
    sameBytes((await cc2.unwrapKey("RSA-OAEP-256", ct)).result, cek2, "unwrap of a Node-made RSA-OAEP-256 ciphertext");
  });

  await group("wrap RSA1_5 / unwrapKey", async () => {
    const key = need("rsa3072");
    const c = cryptoClient(key.id);
    const cek = randomBytes(32);
    const w = await c.wrapKey("RSA1_5", cek);
    assert.equal(w.result.length, 384, "ciphertext is modulus-sized");
    sameBytes((await c.unwrapKey("RSA1_5", w.result)).result, cek, "unwrapped CEK");
  });

  await group("server-side wrap with RSA-OAEP, RSA-OAEP-256, RSA1_5 (2048 and 3072) / unwrapKey", async () => {
    for (const what of ["rsa2048v2", "rsa3072"]) {
      const key = need(what);
      const c = remoteOnlyCryptoClient(key);
      for (const alg of ["RSA-OAEP", "RSA-OAEP-256", "RSA1_5"]) {
        const cek = randomBytes(32);
        const since = exchanges.length;
        const w = await c.wrapKey(alg, cek);
        const body = serverOp(key.id, "wrapkey", since);
        assert.equal(body.kid, key.id, `${what} ${alg}: wrap kid`);
        assert.equal(w.result.length, key.key.n.length, `${what} ${alg}: ciphertext is modulus-sized`);
        const u = await c.unwrapKey(alg, w.result);
        sameBytes(u.result, cek, `${what} ${alg}: unwrapped CEK`);
      }
    }
  });

  await group("an old version still unwraps; a version-less kid uses the newest version", async () => {
    const v1 = need("rsa2048");
    const v2 = need("rsa2048v2");
    const c1 = cryptoClient(v1.id);
    const cek = randomBytes(32);
    const w = await c1.wrapKey("RSA-OAEP-256", cek);
    sameBytes((await c1.unwrapKey("RSA-OAEP-256", w.result)).result, cek, "old version unwraps");
    // A client for ".../keys/{name}" (no version) sends ".../keys/{name}//wrapkey".
    const latest = cryptoClient(`${vaultUrl}/keys/${v1.name}`);
    const since = exchanges.length;
    const w2 = await latest.wrapKey("RSA-OAEP-256", cek);
    const wrapHit = exchanges.slice(since).find((x) => x.method === "POST" && x.url.pathname.endsWith("/wrapkey"));
    assert.ok(wrapHit, "the wrap reached the server");
    assert.equal(wrapHit.url.pathname, `/keys/${v1.name}//wrapkey`, "the SDK used an empty version segment");
    assert.equal(wrapHit.status, 200, "empty-version wrap status");
    assert.equal(JSON.parse(wrapHit.body).kid, v2.id, "empty version means the newest version");
    sameBytes((await cryptoClient(v2.id).unwrapKey("RSA-OAEP-256", w2.result)).result, cek, "unwrap with the newest version");
  });

  await group("operation not in key_ops: 403 Forbidden", async () => {
    const name = keyName("signonly");
    const key = await client.createRsaKey(name, { keySize: 2048, keyOps: ["sign", "verify"] });
    allNames.push(name);
    checkRsa(key, name, 2048, ["sign", "verify"]);
    const c = remoteOnlyCryptoClient(key);
    const since = exchanges.length;
    await expectRestError(c.wrapKey("RSA-OAEP-256", randomBytes(32)), 403, "Forbidden", "wrapKey on a sign/verify key");
    const hit = exchanges.slice(since).find((x) => x.method === "POST" && x.url.pathname === `/keys/${name}/${key.properties.version}/wrapkey`);
    assert.ok(hit, "the wrap request reached the server");
    const inner = JSON.parse(hit.body)?.error?.innererror?.code;
    assert.equal(inner, "KeyOperationForbidden", "innererror.code");
    await expectRestError(c.unwrapKey("RSA-OAEP", randomBytes(256)), 403, "Forbidden", "unwrapKey on a sign/verify key");
  });

  await group("unwrap of a corrupt ciphertext: 400 BadParameter", async () => {
    const c = remoteOnlyCryptoClient(need("rsa2048v2"));
    await expectRestError(c.unwrapKey("RSA-OAEP", randomBytes(256)), 400, "BadParameter", "random 256-byte ciphertext");
    await expectRestError(c.unwrapKey("RSA-OAEP-256", randomBytes(17)), 400, "BadParameter", "wrong-length ciphertext");
  });

  if (mode === "a") {
    await group("a vault that does not exist: 404 VaultNotFound", async () => {
      const nosuch = keyClient(`https://nosuch.vault.localhost:${httpsPort}`);
      await expectRestError(nosuch.getKey("anything"), 404, "VaultNotFound", "getKey on nosuch vault");
      await expectRestError(nosuch.createRsaKey("anything", { keySize: 2048 }), 404, "VaultNotFound", "createRsaKey on nosuch vault");
    });
  } else {
    await group("https://localhost without disableChallengeResourceVerification: the SDK refuses the challenge", async () => {
      const strict = keyClient(vaultUrl, { verify: true });
      let err;
      try {
        await strict.getKey(need("rsa2048").name);
      } catch (e) {
        err = e;
      }
      assert.ok(err, "expected the SDK to reject the challenge resource");
      assert.match(String(err.message), /challenge resource 'vault\.azure\.net' does not match/, "challenge names resource https://vault.azure.net");
    });

    await group("DefaultAzureCredential also works", async () => {
      const dac = keyClient(vaultUrl, {}, new DefaultAzureCredential());
      const k = await dac.getKey(need("rsa2048").name);
      assert.equal(k.id, need("rsa2048v2").id, "latest version through DefaultAzureCredential");
    });
  }

  await group("every response: kid/nextLink on the request's origin, no private key members", async () => {
    assert.ok(exchanges.length > 20, "recorded the exchanges");
    const origin = new URL(vaultUrl).origin;
    for (const x of exchanges) {
      if (x.url.origin !== origin || !x.body) continue;
      let j;
      try {
        j = JSON.parse(x.body);
      } catch {
        throw new Error(`${x.method} ${x.url.href} ${x.status}: body is not JSON: ${x.body.slice(0, 200)}`);
      }
      const kids = [];
      if (j.key?.kid) kids.push(j.key.kid);
      if (typeof j.kid === "string") kids.push(j.kid);
      if (Array.isArray(j.value)) for (const it of j.value) if (it?.kid) kids.push(it.kid);
      for (const kid of kids) assert.ok(kid.startsWith(`${vaultUrl}/keys/`), `${x.method} ${x.url.pathname}: kid ${kid} starts with ${vaultUrl}/keys/`);
      if (typeof j.nextLink === "string") assert.ok(j.nextLink.startsWith(`${vaultUrl}/`), `nextLink ${j.nextLink} starts with ${vaultUrl}/`);
      if (j.key) for (const m of PRIVATE_MEMBERS) assert.equal(j.key[m], undefined, `${x.method} ${x.url.pathname}: key.${m} must not be returned`);
      if (j.error) assert.ok(x.status >= 400, `error body only on error status (${x.status})`);
      for (const f of ["created", "updated"]) if (j.attributes && f in j.attributes) assert.ok(Number.isInteger(j.attributes[f]), `attributes.${f} is an integer`);
    }
  });

  const failed = results.filter(([, ok]) => !ok);
  console.log(`${tag} ${results.length - failed.length}/${results.length} groups passed`);
  return failed.length ? 1 : 0;
}

main().then(
  (code) => { process.exitCode = code; },
  (err) => {
    console.log(`FAIL ${tag} unexpected: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  },
);
