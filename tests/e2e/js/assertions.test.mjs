#!/usr/bin/env node
// Client assertions on kvmock's Entra-shaped token endpoint through the
// official JS SDK (@azure/identity 4.14.1 over @azure/msal-node 7.2.4), each
// token then used on a vault with @azure/keyvault-keys:
//
//   - ClientCertificateCredential with {certificatePath} (a PEM holding the key
//     then the certificate), with {certificate: pem} and with
//     sendCertificateChain (x5c): MSAL Node signs PS256 with x5t#S256;
//   - WorkloadIdentityCredential (a federated RS256 token with a kid, in a
//     file) and ClientAssertionCredential (an ES256 token, JOSE r||s, from a
//     callback) against the identity's federatedCredentials;
//   - DefaultAzureCredential driven by environment variables in a child
//     process (AZURE_CLIENT_CERTIFICATE_PATH, AZURE_FEDERATED_TOKEN_FILE,
//     AZURE_AUTHORITY_HOST), with and without disableInstanceDiscovery;
//   - Entra's refusals through the SDK (AADSTS700027 for an unregistered
//     certificate, 700213 for a wrong subject, 700024 for an expired token,
//     700211/700212 for a wrong issuer/audience) and over raw HTTPS (exact
//     401 invalid_client answers to a tampered signature, an unregistered
//     thumbprint, a skipped "use":"enc" key, a wrong audience).
//
// The keys come from node:crypto, the X.509 certificates from the openssl
// CLI (Node cannot issue one), the federated tokens are signed here. They
// must exist before kvmock starts (its configuration file names them), so
// the driver makes them in a temporary folder and passes the folder to the
// scenario in ASSERTIONS_E2E_DIR.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/assertions.test.mjs --kvmock build/kvmock
//
// The script is the driver, with --child the scenario (see helpers.mjs), and
// with --dac MODE the DefaultAzureCredential process the scenario starts.
// DAC_DEBUG=1 prints the @azure/identity log of each --dac process.

import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import {
  constants as C, createHash, createPrivateKey, generateKeyPairSync, randomBytes, randomUUID, sign, X509Certificate,
} from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { format } from "node:util";
import {
  b64url, decodeJwt, expectRestError, fromB64url, isChild, makeRecorder, makeReporter, runDriver, runScenario,
  sameBytes, scenarioEnv,
} from "./helpers.mjs";

const TENANT = "6b766d6f-636b-4000-8000-000000000001";
const OTHER_TENANT = "6b766d6f-636b-4000-8000-0000000000ff";
const APP = { name: "app", objectId: "0a000000-0000-4000-8000-0000000000a1", clientId: "0c000000-0000-4000-8000-0000000000a1", default: true };
const CERT_APP = { name: "cert-app", objectId: "0a000000-0000-4000-8000-0000000000a2", clientId: "0c000000-0000-4000-8000-0000000000a2" };
const WORKLOAD = { name: "workload", objectId: "0a000000-0000-4000-8000-0000000000a3", clientId: "0c000000-0000-4000-8000-0000000000a3" };
const K8S = { issuer: "https://kubernetes.default.svc.cluster.local", subject: "system:serviceaccount:default:ci", kid: "k8s-sig-1", encKid: "k8s-enc-1" };
const GH = { issuer: "https://token.actions.githubusercontent.com", subject: "repo:kvmock/kvmock:ref:refs/heads/main", kid: "gh-es256-1" };
const EXCHANGE = "api://AzureADTokenExchange";
const JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const ALL = { keys: ["all"] };
const DIR_ENV = "ASSERTIONS_E2E_DIR";

const script = fileURLToPath(import.meta.url);

if (process.argv.includes("--dac")) {
  await dacProcess(process.argv[process.argv.indexOf("--dac") + 1]);
} else if (!isChild()) {
  await driver();
} else {
  runScenario("[assertions]", scenario);
}

// ================================================================ driver ====

/** Keys (node:crypto) and certificates (openssl) in a fresh folder; returns the config. */
function makeMaterial(dir) {
  const rsaKey = (name) => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const pem = privateKey.export({ type: "pkcs8", format: "pem" });
    writeFileSync(join(dir, `${name}.key`), pem, { mode: 0o600 });
    return pem;
  };
  const openssl = (...args) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "pipe", "pipe"] });
  const selfSigned = (name, cn) => {
    const key = rsaKey(name);
    openssl("req", "-x509", "-new", "-key", `${name}.key`, "-out", `${name}.crt`, "-days", "2", "-sha256", "-subj", `/CN=${cn}`);
    const cert = readFileSync(join(dir, `${name}.crt`), "utf8");
    writeFileSync(join(dir, `${name}.pem`), key + cert, { mode: 0o600 }); // the key, then the certificate
    return cert;
  };
  selfSigned("a", "kvmock e2e cert-app A");
  const certB = selfSigned("b", "kvmock e2e cert-app B");
  selfSigned("stranger", "kvmock e2e unregistered");
  // a chain: leaf signed by a CA; only the leaf is registered for cert-app
  selfSigned("ca", "kvmock e2e CA");
  const leafKey = rsaKey("leaf");
  openssl("req", "-new", "-key", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=kvmock e2e leaf");
  openssl("x509", "-req", "-in", "leaf.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-set_serial", "4097", "-days", "2",
    "-sha256", "-out", "leaf.crt");
  const leaf = readFileSync(join(dir, "leaf.crt"), "utf8");
  writeFileSync(join(dir, "chain.pem"), leafKey + leaf + readFileSync(join(dir, "ca.crt"), "utf8"), { mode: 0o600 });

  // the federated issuers' keys: an RSA signing key (and an encryption key the
  // server must skip) in a JWKS file, an EC P-256 key inline
  const jwk = (pem, extra) => ({ ...createPrivateKey(pem).export({ format: "jwk" }), ...extra });
  const pub = ({ d, p, q, dp, dq, qi, ...rest }) => rest; // eslint-disable-line no-unused-vars
  const k8sSig = rsaKey("k8s-sig");
  const k8sEnc = rsaKey("k8s-enc");
  const gh = generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey.export({ type: "pkcs8", format: "pem" });
  writeFileSync(join(dir, "gh.key"), gh, { mode: 0o600 });
  writeFileSync(join(dir, "k8s-jwks.json"), JSON.stringify({ keys: [
    pub(jwk(k8sEnc, { kid: K8S.encKid, use: "enc", alg: "RSA-OAEP" })),
    pub(jwk(k8sSig, { kid: K8S.kid, use: "sig", alg: "RS256" })),
  ] }));

  return {
    tenantId: TENANT,
    identities: [
      APP,
      { ...CERT_APP, clientCertificates: [join(dir, "a.pem"), certB, leaf] },
      { ...WORKLOAD, federatedCredentials: [
        { name: "k8s", issuer: K8S.issuer, subject: K8S.subject, jwks: join(dir, "k8s-jwks.json") },
        { name: "github", issuer: GH.issuer, subject: GH.subject, audiences: [EXCHANGE],
          jwks: { keys: [pub(jwk(gh, { kid: GH.kid, use: "sig", alg: "ES256" }))] } },
      ] },
    ],
    vaults: [
      { name: "certs", properties: { accessPolicies: [
        { objectId: CERT_APP.objectId, permissions: ALL },
        { objectId: WORKLOAD.objectId, permissions: ALL },
      ] } },
      { name: "closed", properties: { accessPolicies: [{ objectId: APP.objectId, permissions: ALL }] } },
    ],
  };
}

async function driver() {
  const dir = mkdtempSync(join(tmpdir(), "kvmock-js-assert-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  let config;
  try {
    config = makeMaterial(dir);
  } catch (e) {
    console.log(`FAIL setup: keys and certificates in ${dir}: ${e.stack}${e.stderr ? `\n${e.stderr}` : ""}`);
    process.exit(1);
  }
  console.log(`PASS setup: keys (node:crypto) and certificates (${execFileSync("openssl", ["version"]).toString().trim()}) in ${dir}`);
  process.env[DIR_ENV] = dir; // the scenario child inherits it (helpers.mjs passes on all but AZURE_*, KVMOCK_*...)
  await runDriver({ script, config });
}

// ======================================================= shared pieces ====

function material() {
  const dir = process.env[DIR_ENV];
  if (!dir) {
    console.error(`${DIR_ENV} is not set (run the script without --child)`);
    process.exit(2);
  }
  const file = (n) => readFileSync(join(dir, n), "utf8");
  const cert = (n) => new X509Certificate(file(`${n}.crt`));
  return { dir, file, cert, key: (n) => createPrivateKey(file(`${n}.key`)) };
}

const nowS = () => Math.floor(Date.now() / 1000);

/** A compact JWS. alg RS*, PS* (salt = digest length) or ES* (JOSE r||s). */
function signJwt(header, claims, key, alg = header.alg) {
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  const md = `sha${alg.slice(2)}`;
  const opts = alg.startsWith("PS") ? { key, padding: C.RSA_PKCS1_PSS_PADDING, saltLength: C.RSA_PSS_SALTLEN_DIGEST }
    : alg.startsWith("ES") ? { key, dsaEncoding: "ieee-p1363" }
      : key;
  return `${input}.${b64url(sign(md, Buffer.from(input), opts))}`;
}

function federatedToken(m, { iss = K8S.issuer, sub = K8S.subject, aud = EXCHANGE, exp = nowS() + 3600, nbf = nowS() - 5,
  alg = "RS256", kid = K8S.kid, key = "k8s-sig", omitExp = false } = {}) {
  const claims = { iss, sub, aud, iat: nbf, nbf, jti: randomUUID() };
  if (!omitExp) claims.exp = exp;
  return signJwt({ alg, typ: "JWT", ...(kid ? { kid } : {}) }, claims, m.key(key), alg);
}

const thumb256 = (x509) => createHash("sha256").update(x509.raw).digest();
const thumb1 = (x509) => createHash("sha1").update(x509.raw).digest();

function decodePart(jwt, i) {
  return JSON.parse(fromB64url(jwt.split(".")[i]).toString("utf8"));
}

// ============================================================== scenario ====

async function scenario() {
  const { ClientCertificateCredential, WorkloadIdentityCredential, ClientAssertionCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");

  const env = scenarioEnv();
  const m = material();
  const rec = makeRecorder();
  const { group, summary } = makeReporter("[assertions]");
  const authority = env.localhostUrl;
  const tokenPath = `/${TENANT}/oauth2/v2.0/token`;
  const endpoint = `${authority}${tokenPath}`;
  const ca = readFileSync(env.caPath);
  // authorityHost and disableInstanceDiscovery as README documents for ClientSecretCredential
  const idOpts = (extra = {}) => rec.options({ authorityHost: authority, disableInstanceDiscovery: true, ...extra });
  const keys = (vault, cred) => new KeyClient(env.vaultUrl(vault), cred, rec.options());
  const crypto = (key, cred) => new CryptographyClient(key, cred, rec.options());
  const certs = { a: m.cert("a"), b: m.cert("b"), leaf: m.cert("leaf"), ca: m.cert("ca"), stranger: m.cert("stranger") };

  /** The client assertion of each token request recorded since `since`: [{status, header, claims, raw, form}]. */
  const assertionsSince = (since) => rec.find(since, "POST", tokenPath).map((x) => {
    const form = new URLSearchParams(x.requestBody);
    const raw = form.get("client_assertion");
    return { status: x.status, form, raw, header: raw ? decodePart(raw, 0) : null, claims: raw ? decodePart(raw, 1) : null };
  });

  /** The token is the identity's. */
  const checkClaims = (token, who, what) => {
    const c = decodeJwt(token);
    assert.equal(c.oid, who.objectId, `${what}: oid`);
    assert.equal(c.appid, who.clientId, `${what}: appid`);
    assert.equal(c.tid, TENANT, `${what}: tid`);
    return c;
  };

  /** Create a key in vault certs, wrap and unwrap with it, as `cred`. */
  const useOnVault = async (cred, name) => {
    const key = await keys("certs", cred).createRsaKey(name, { keySize: 2048 });
    assert.equal(key.name, name, `created ${name}`);
    const dek = randomBytes(32);
    const c = crypto(key.id, cred);
    const since = rec.exchanges.length;
    const w = await c.wrapKey("RSA-OAEP-256", dek);
    assert.equal(rec.find(since, "POST", `${new URL(key.id).pathname}/wrapkey`).at(-1)?.status, 200,
      `wrapKey went to the vault (saw ${rec.describe(since)})`);
    sameBytes((await c.unwrapKey("RSA-OAEP-256", w.result)).result, dek, `${name}: unwrap gives the key back`);
    return key;
  };

  /** The credential's getToken rejects; returns the error. */
  const rejects = async (cred, what) => {
    let err;
    try {
      await cred.getToken("https://vault.azure.net/.default");
    } catch (e) {
      err = e;
    }
    assert.ok(err, `${what}: expected getToken to throw, but it gave a token`);
    return err;
  };

  await group("ClientCertificateCredential {certificatePath} (key then cert): PS256 + x5t#S256, key create/wrap/unwrap; 403 on a vault without a policy", async () => {
    const cred = new ClientCertificateCredential(TENANT, CERT_APP.clientId, { certificatePath: join(m.dir, "a.pem") }, idOpts());
    const since = rec.exchanges.length;
    const t = await cred.getToken("https://vault.azure.net/.default");
    checkClaims(t.token, CERT_APP, "certificatePath");
    assert.ok(t.expiresOnTimestamp > Date.now() + 60_000, "the token expires in the future");

    const sent = assertionsSince(since);
    assert.equal(sent.length, 1, `one token request (saw ${rec.describe(since)})`);
    const [a] = sent;
    assert.equal(a.status, 200, "answered 200");
    assert.equal(a.form.get("client_assertion_type"), JWT_BEARER, "client_assertion_type");
    assert.equal(a.form.get("client_secret"), null, "no client_secret");
    assert.equal(a.header.alg, "PS256", `MSAL Node signs PS256: ${JSON.stringify(a.header)}`);
    assert.equal(a.header["x5t#S256"], b64url(thumb256(certs.a)), "x5t#S256 is the SHA-256 of certificate A's DER");
    assert.equal(a.header.x5t, undefined, "no SHA-1 x5t");
    assert.equal(a.header.x5c, undefined, "no x5c without sendCertificateChain");
    assert.deepEqual([a.claims.iss, a.claims.sub, a.claims.aud], [CERT_APP.clientId, CERT_APP.clientId, endpoint],
      "iss = sub = the client id, aud = the token endpoint");

    await useOnVault(cred, "cert-path");
    const err = await expectRestError(keys("closed", cred).createRsaKey("nope", { keySize: 2048 }), 403, "Forbidden",
      "create on vault closed (no policy for cert-app)");
    assert.ok(err.message.includes(CERT_APP.objectId), `the 403 names cert-app's object id: ${err.message}`);
  });

  await group("ClientCertificateCredential {certificate: pem string} and sendCertificateChain (x5c: leaf, CA)", async () => {
    const pemB = m.file("b.pem");
    const credB = new ClientCertificateCredential(TENANT, CERT_APP.clientId, { certificate: pemB }, idOpts());
    let since = rec.exchanges.length;
    checkClaims((await credB.getToken("https://vault.azure.net/.default")).token, CERT_APP, "certificate string");
    const [b] = assertionsSince(since);
    assert.equal(b.header["x5t#S256"], b64url(thumb256(certs.b)), "x5t#S256 of certificate B");
    await useOnVault(credB, "cert-string");

    const chain = new ClientCertificateCredential(TENANT, CERT_APP.clientId, { certificatePath: join(m.dir, "chain.pem") },
      idOpts({ sendCertificateChain: true }));
    since = rec.exchanges.length;
    checkClaims((await chain.getToken("https://vault.azure.net/.default")).token, CERT_APP, "sendCertificateChain");
    const [c] = assertionsSince(since);
    assert.equal(c.status, 200, "answered 200");
    assert.equal(c.header["x5t#S256"], b64url(thumb256(certs.leaf)), "x5t#S256 of the leaf");
    assert.deepEqual(c.header.x5c, [certs.leaf.raw.toString("base64"), certs.ca.raw.toString("base64")],
      "x5c carries the leaf then the CA (DER, base64)");
    await useOnVault(chain, "cert-chain");
  });

  await group("WorkloadIdentityCredential: a federated RS256 token with a kid, from a file", async () => {
    const file = join(m.dir, "k8s-token.jwt");
    const jwt = federatedToken(m);
    writeFileSync(file, jwt);
    const cred = new WorkloadIdentityCredential({ tenantId: TENANT, clientId: WORKLOAD.clientId, tokenFilePath: file,
      ...idOpts() });
    const since = rec.exchanges.length;
    checkClaims((await cred.getToken("https://vault.azure.net/.default")).token, WORKLOAD, "WorkloadIdentityCredential");
    const [a] = assertionsSince(since);
    assert.equal(a.status, 200, "answered 200");
    assert.equal(a.raw, jwt, "the SDK sent the file's token as the client assertion");
    assert.equal(a.form.get("client_assertion_type"), JWT_BEARER, "client_assertion_type");
    await useOnVault(cred, "workload-rs256");
  });

  await group("ClientAssertionCredential: a federated ES256 token (JOSE r||s) from a callback", async () => {
    const made = [];
    const cred = new ClientAssertionCredential(TENANT, WORKLOAD.clientId, async () => {
      made.push(federatedToken(m, { iss: GH.issuer, sub: GH.subject, alg: "ES256", kid: GH.kid, key: "gh" }));
      return made.at(-1);
    }, idOpts());
    const since = rec.exchanges.length;
    checkClaims((await cred.getToken("https://vault.azure.net/.default")).token, WORKLOAD, "ClientAssertionCredential");
    assert.ok(made.length >= 1, "the callback was asked for the assertion");
    const [a] = assertionsSince(since);
    assert.equal(a.status, 200, "answered 200");
    assert.ok(made.includes(a.raw), "a token of the callback's was sent");
    assert.equal(a.header.alg, "ES256", "ES256");
    assert.equal(fromB64url(a.raw.split(".")[2]).length, 64, "the signature is r||s, 64 bytes");
    await useOnVault(cred, "workload-es256");
  });

  await group("refusals through the SDK: unregistered certificate AADSTS700027, wrong subject 700213, expired 700024, wrong issuer 700211, wrong audience 700212", async () => {
    let since = rec.exchanges.length;
    const stranger = new ClientCertificateCredential(TENANT, CERT_APP.clientId,
      { certificatePath: join(m.dir, "stranger.pem") }, idOpts());
    const e1 = await rejects(stranger, "a certificate not registered for cert-app");
    assert.match(e1.message, /AADSTS700027/, `unregistered certificate: ${e1.name}: ${e1.message}`);
    const hex = thumb256(certs.stranger).toString("hex").toUpperCase();
    assert.ok(e1.message.includes(hex), `the message names the thumbprint ${hex}: ${e1.message}`);
    assert.deepEqual(assertionsSince(since).map((x) => x.status), [401], `one request answered 401 (saw ${rec.describe(since)})`);

    const viaFile = (jwt, name) => {
      const file = join(m.dir, name);
      writeFileSync(file, jwt);
      return new WorkloadIdentityCredential({ tenantId: TENANT, clientId: WORKLOAD.clientId, tokenFilePath: file, ...idOpts() });
    };
    const wrongSub = "system:serviceaccount:default:intruder";
    const e2 = await rejects(viaFile(federatedToken(m, { sub: wrongSub }), "wrong-sub.jwt"), "a wrong subject");
    assert.match(e2.message, /AADSTS700213/, `wrong subject: ${e2.name}: ${e2.message}`);
    assert.ok(e2.message.includes(`'${wrongSub}'`), `the message names the subject: ${e2.message}`);

    since = rec.exchanges.length;
    const e3 = await rejects(viaFile(federatedToken(m, { exp: nowS() - 3600, nbf: nowS() - 7200 }), "expired.jwt"),
      "an expired federated token");
    assert.match(e3.message, /AADSTS700024/, `expired: ${e3.name}: ${e3.message}`);
    assert.deepEqual(assertionsSince(since).map((x) => x.status), [401], `one request answered 401 (saw ${rec.describe(since)})`);

    const assertion = (opts) => new ClientAssertionCredential(TENANT, WORKLOAD.clientId, async () => federatedToken(m, opts), idOpts());
    const e4 = await rejects(assertion({ iss: "https://issuer.invalid" }), "an unknown issuer");
    assert.match(e4.message, /AADSTS700211/, `unknown issuer: ${e4.message}`);
    assert.ok(e4.message.includes("'https://issuer.invalid'"), `the message names the issuer: ${e4.message}`);
    const e5 = await rejects(assertion({ aud: "api://SomethingElse" }), "a wrong audience");
    assert.match(e5.message, /AADSTS700212/, `wrong audience: ${e5.message}`);
    assert.ok(e5.message.includes("'api://SomethingElse'"), `the message names the audience: ${e5.message}`);
  });

  // ---------------------------------------------------------- raw HTTPS ----

  const post = (path, fields) => new Promise((resolvePromise, reject) => {
    const body = new URLSearchParams(fields).toString();
    const req = https.request({ host: "localhost", port: env.httpsPort, path, method: "POST", ca, timeout: 30_000,
      headers: { "Content-Type": "application/x-www-form-urlencoded", "Content-Length": Buffer.byteLength(body) } }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const text = Buffer.concat(chunks).toString("utf8");
        let json = {};
        try {
          json = JSON.parse(text);
        } catch { /* checked by the caller */ }
        resolvePromise({ status: res.statusCode, text, json });
      });
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: POST ${path}`)));
    req.on("error", reject);
    req.end(body);
  });
  const tokenRequest = (clientId, assertion, { path = tokenPath, extra = { scope: "https://vault.azure.net/.default" } } = {}) =>
    post(path, { grant_type: "client_credentials", client_id: clientId, client_assertion_type: JWT_BEARER,
      client_assertion: assertion, ...extra });
  const own = ({ header = {}, aud = endpoint, key = "a", alg = "PS256", x5 = { "x5t#S256": b64url(thumb256(certs.a)) } } = {}) =>
    signJwt({ alg, typ: "JWT", ...x5, ...header },
      { iss: CERT_APP.clientId, sub: CERT_APP.clientId, aud, iat: nowS(), nbf: nowS(), exp: nowS() + 600, jti: randomUUID() },
      m.key(key), alg);
  const tamper = (jwt) => {
    const [h, c, s] = jwt.split(".");
    const sig = fromB64url(s);
    sig[sig.length >> 1] ^= 0x01;
    return `${h}.${c}.${b64url(sig)}`;
  };
  const refused = (r, code, what, includes = []) => {
    assert.equal(r.status, 401, `${what}: status (${r.text})`);
    assert.equal(r.json.error, "invalid_client", `${what}: error (${r.text})`);
    assert.ok(r.json.error_description?.startsWith(`${code}:`), `${what}: error_description starts with ${code}: ${r.json.error_description}`);
    for (const s of includes) assert.ok(r.json.error_description.includes(s), `${what}: the description has ${s}: ${r.json.error_description}`);
    assert.equal(typeof r.json.correlation_id, "string", `${what}: correlation_id`);
    assert.equal(r.json.access_token, undefined, `${what}: no access_token`);
    assert.ok(!r.text.includes("access_token"), `${what}: no access_token anywhere in the answer`);
  };
  const granted = (r, who, what) => {
    assert.equal(r.status, 200, `${what}: status (${r.text})`);
    assert.equal(r.json.token_type, "Bearer", `${what}: token_type`);
    assert.equal(r.json.expires_in, 3600, `${what}: expires_in`);
    checkClaims(r.json.access_token, who, what);
  };

  await group("raw HTTPS, the application's own assertion: a tampered PS256 signature and the x5t#S256 of an unregistered certificate get 401 invalid_client", async () => {
    const good = own();
    granted(await tokenRequest(CERT_APP.clientId, good), CERT_APP, "the untampered assertion (control)");
    refused(await tokenRequest(CERT_APP.clientId, tamper(good)), "AADSTS700027", "a tampered signature",
      ["did not match", thumb256(certs.a).toString("hex").toUpperCase()]);
    // an unregistered certificate's thumbprint, signed with its own key
    const hex = thumb256(certs.stranger).toString("hex").toUpperCase();
    refused(await tokenRequest(CERT_APP.clientId, own({ key: "stranger", x5: { "x5t#S256": b64url(thumb256(certs.stranger)) } })),
      "AADSTS700027", "the x5t#S256 of an unregistered certificate", ["not registered", `'${hex}'`]);
    // a registered thumbprint over a signature by another key
    refused(await tokenRequest(CERT_APP.clientId, own({ key: "stranger" })), "AADSTS700027",
      "certificate A's thumbprint, signed with another key", ["did not match"]);
    refused(await tokenRequest(CERT_APP.clientId, own({ aud: `${authority}/${TENANT}/oauth2/v2.0/authorize` })),
      "AADSTS700023", "an audience other than the token endpoint");
    const noThumb = await tokenRequest(CERT_APP.clientId, own({ x5: {} }));
    assert.equal(noThumb.status, 401, `no thumbprint: ${noThumb.text}`);
    assert.equal(noThumb.json.error_description,
      "AADSTS50027: Invalid JWT token. No certificate thumbprint specified in token header.", "no thumbprint: the description");
  });

  await group("raw HTTPS, MSAL Python's shape and the v1 endpoint: RS256 with a SHA-1 x5t; x5t#S256 preferred over x5t", async () => {
    granted(await tokenRequest(CERT_APP.clientId, own({ alg: "RS256", key: "b", x5: { x5t: b64url(thumb1(certs.b)) } })),
      CERT_APP, "RS256 + x5t (SHA-1) of certificate B");
    granted(await tokenRequest(CERT_APP.clientId, own({ x5: { "x5t#S256": b64url(thumb256(certs.a)), x5t: b64url(thumb1(certs.stranger)) } })),
      CERT_APP, "x5t#S256 of A beside the x5t of an unregistered certificate");
    const v1 = `/${TENANT}/oauth2/token`;
    const r = await tokenRequest(CERT_APP.clientId, own({ aud: `${authority}${v1}` }),
      { path: v1, extra: { resource: "https://vault.azure.net" } });
    assert.equal(r.status, 200, `v1: ${r.text}`);
    checkClaims(r.json.access_token, CERT_APP, "v1");
    refused(await tokenRequest(CERT_APP.clientId, own({ aud: `${authority}/${OTHER_TENANT}/oauth2/v2.0/token` })), "AADSTS700023",
      "another tenant's token endpoint as the audience", [`'${authority}/${OTHER_TENANT}/oauth2/v2.0/token'`]);
  });

  await group("raw HTTPS, federated assertions: tampered ES256, a skipped use=enc key, an unknown kid, no exp", async () => {
    const es = federatedToken(m, { iss: GH.issuer, sub: GH.subject, alg: "ES256", kid: GH.kid, key: "gh" });
    granted(await tokenRequest(WORKLOAD.clientId, es), WORKLOAD, "the untampered ES256 token (control)");
    refused(await tokenRequest(WORKLOAD.clientId, tamper(es)), "AADSTS700027", "a tampered ES256 signature",
      ["did not match", `'${GH.kid}'`]);
    // the JWKS's "use":"enc" key is not a signing key: a token signed with it and naming it is refused
    refused(await tokenRequest(WORKLOAD.clientId, federatedToken(m, { kid: K8S.encKid, key: "k8s-enc" })), "AADSTS700027",
      "a token signed with the issuer's encryption key", ["The key was not found", `'${K8S.encKid}'`]);
    refused(await tokenRequest(WORKLOAD.clientId, federatedToken(m, { kid: "no-such-kid" })), "AADSTS700027",
      "an unknown kid", ["The key was not found", "'no-such-kid'"]);
    // no kid: every signing key of the credential is tried
    granted(await tokenRequest(WORKLOAD.clientId, federatedToken(m, { kid: null })), WORKLOAD, "a token without a kid");
    refused(await tokenRequest(WORKLOAD.clientId, federatedToken(m, { omitExp: true })), "AADSTS700024", "a token without exp");
    refused(await tokenRequest(WORKLOAD.clientId, federatedToken(m, { nbf: nowS() + 3600, exp: nowS() + 7200 })),
      "AADSTS700024", "a token not yet valid");
    refused(await tokenRequest(CERT_APP.clientId, federatedToken(m)), "AADSTS700211",
      "a federated token for an identity without federated credentials", [`'${K8S.issuer}'`]);
  });

  await group("raw HTTPS, the request's shape: 400 for secret and assertion both, a wrong assertion type, an unknown client", async () => {
    const jwt = own();
    const shape = async (fields, status, error, code, what) => {
      const r = await post(tokenPath, { grant_type: "client_credentials", scope: "https://vault.azure.net/.default", ...fields });
      assert.equal(r.status, status, `${what}: status (${r.text})`);
      assert.equal(r.json.error, error, `${what}: error (${r.text})`);
      assert.ok(r.json.error_description?.startsWith(`${code}:`), `${what}: ${code}: ${r.json.error_description}`);
      assert.equal(r.json.access_token, undefined, `${what}: no access_token`);
    };
    await shape({ client_id: CERT_APP.clientId, client_secret: "x", client_assertion_type: JWT_BEARER, client_assertion: jwt },
      400, "invalid_request", "AADSTS50027", "client_secret and client_assertion");
    await shape({ client_id: CERT_APP.clientId, client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
      client_assertion: jwt }, 400, "invalid_request", "AADSTS50027", "a wrong client_assertion_type");
    await shape({ client_id: CERT_APP.clientId, client_assertion: jwt }, 400, "invalid_request", "AADSTS50027",
      "no client_assertion_type");
    await shape({ client_id: CERT_APP.clientId }, 400, "invalid_request", "AADSTS7000216", "neither secret nor assertion");
    await shape({ client_id: CERT_APP.clientId, client_secret: "guess" }, 401, "invalid_client", "AADSTS7000215",
      "a secret for an identity that has none");
    await shape({ client_id: "0c000000-0000-4000-8000-0000000000ee", client_assertion_type: JWT_BEARER, client_assertion: jwt },
      400, "unauthorized_client", "AADSTS700016", "an unknown client_id");
    await shape({ client_id: APP.clientId, client_assertion_type: JWT_BEARER, client_assertion: jwt },
      400, "unauthorized_client", "AADSTS700016", "an identity with no secret, certificate or federated credential");
  });

  // ------------------------------------------------- DefaultAzureCredential ----

  /** Run this script with --dac MODE and only the given environment; resolves its result. */
  const dac = (mode, azureEnv) => new Promise((resolvePromise, reject) => {
    const base = {};
    for (const [k, v] of Object.entries(process.env)) {
      if (/^(AZURE_|MSI_|IDENTITY_|IMDS_)/.test(k) || /^(https?|all|no)_proxy$/i.test(k)) continue;
      base[k] = v;
    }
    // Nothing may leave the machine: anything not for kvmock goes to a proxy
    // that refuses connections (127.0.0.1:9), which fails fast and offline.
    const childEnv = { ...base, HTTPS_PROXY: "http://127.0.0.1:9", HTTP_PROXY: "http://127.0.0.1:9",
      NO_PROXY: ".localhost,127.0.0.1", ...azureEnv };
    const child = spawn(process.execPath, [script, "--dac", mode], { env: childEnv, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let errOut = "";
    child.stdout.on("data", (c) => { out += c; });
    child.stderr.on("data", (c) => { errOut += c; });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (process.env.DAC_DEBUG) console.log(`--- --dac ${mode} log:\n${errOut}`);
      const line = out.split("\n").find((l) => l.startsWith("DAC-RESULT "));
      if (!line) {
        reject(new Error(`--dac ${mode}: no result (exit ${code}, signal ${signal})\nstdout: ${out}\nstderr: ${errOut}`));
        return;
      }
      resolvePromise(JSON.parse(line.slice("DAC-RESULT ".length)));
    });
  });
  const certEnv = {
    AZURE_TENANT_ID: TENANT, AZURE_CLIENT_ID: CERT_APP.clientId, AZURE_AUTHORITY_HOST: authority,
    AZURE_CLIENT_CERTIFICATE_PATH: join(m.dir, "a.pem"),
  };
  const tokenFile = join(m.dir, "dac-token.jwt");
  const workloadEnv = {
    AZURE_TENANT_ID: TENANT, AZURE_CLIENT_ID: WORKLOAD.clientId, AZURE_AUTHORITY_HOST: authority,
    AZURE_FEDERATED_TOKEN_FILE: tokenFile,
  };

  await group("DefaultAzureCredential from the environment: AZURE_CLIENT_CERTIFICATE_PATH (EnvironmentCredential)", async () => {
    const withOpt = await dac("instance-discovery-off", certEnv);
    assert.equal(withOpt.ok, true, `DefaultAzureCredential({disableInstanceDiscovery: true}): ${JSON.stringify(withOpt)}`);
    assert.equal(withOpt.used, "EnvironmentCredential", "EnvironmentCredential gave the token");
    assert.equal(withOpt.discovery, false, `no instance discovery at login.microsoftonline.com: ${withOpt.requests}`);
    assert.ok(withOpt.kvmockTokenRequests >= 1, `the token came from kvmock's endpoint: ${withOpt.requests}`);
    assert.deepEqual([withOpt.claims.oid, withOpt.claims.appid, withOpt.claims.tid], [CERT_APP.objectId, CERT_APP.clientId, TENANT],
      "the token is cert-app's");
    sameBytes(fromB64url(withOpt.unwrapped), fromB64url(withOpt.dek), "the DAC process created a key, wrapped and unwrapped");
    assert.equal((await keys("certs", new ClientCertificateCredential(TENANT, CERT_APP.clientId,
      { certificatePath: join(m.dir, "a.pem") }, idOpts())).getKey(withOpt.keyName)).name, withOpt.keyName, "its key is in vault certs");

    // Environment variables alone: @azure/identity 4.14.1 reads
    // AZURE_AUTHORITY_HOST (util/authorityHost.js) but has no variable for
    // disableInstanceDiscovery, so MSAL asks login.microsoftonline.com to
    // validate https://localhost:P before anything reaches kvmock. Offline
    // (here: a proxy that refuses) that fails as untrusted_authority, which
    // MSAL reports as endpoints_resolution_error; EnvironmentCredential
    // turns it into an AuthenticationError, which ends the chain.
    const envOnly = await dac("env-only", certEnv);
    assert.equal(envOnly.ok, false, `with the environment alone the SDK must refuse the authority: ${JSON.stringify(envOnly)}`);
    assert.equal(envOnly.name, "AuthenticationError", `EnvironmentCredential's error: ${envOnly.name}: ${envOnly.message}`);
    assert.match(envOnly.message, /endpoints_resolution_error/, `MSAL's endpoints_resolution_error: ${envOnly.message}`);
    assert.ok(envOnly.discovery, `MSAL tried instance discovery at login.microsoftonline.com: ${JSON.stringify(envOnly)}`);
    assert.equal(envOnly.kvmockTokenRequests, 0, "nothing reached kvmock's token endpoint");
  });

  await group("DefaultAzureCredential from the environment: AZURE_FEDERATED_TOKEN_FILE (WorkloadIdentityCredential)", async () => {
    writeFileSync(tokenFile, federatedToken(m));
    const withOpt = await dac("instance-discovery-off", workloadEnv);
    assert.equal(withOpt.ok, true, `DefaultAzureCredential({disableInstanceDiscovery: true}): ${JSON.stringify(withOpt)}`);
    assert.equal(withOpt.used, "WorkloadIdentityCredential", "WorkloadIdentityCredential gave the token");
    assert.equal(withOpt.discovery, false, `no instance discovery at login.microsoftonline.com: ${withOpt.requests}`);
    assert.ok(withOpt.kvmockTokenRequests >= 1, `the token came from kvmock's endpoint: ${withOpt.requests}`);
    assert.deepEqual([withOpt.claims.oid, withOpt.claims.appid, withOpt.claims.tid], [WORKLOAD.objectId, WORKLOAD.clientId, TENANT],
      "the token is workload's");
    sameBytes(fromB64url(withOpt.unwrapped), fromB64url(withOpt.dek), "the DAC process created a key, wrapped and unwrapped");

    // The environment alone: WorkloadIdentityCredential fails instance
    // discovery as above (endpoints_resolution_error, an
    // AuthenticationRequiredError the chain passes over), and the token comes
    // from ManagedIdentityCredential's token-exchange path (AZURE_CLIENT_ID,
    // AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE; tokenExchangeMsi.js sets
    // disableInstanceDiscovery: true), the same federated token, on every
    // getToken after a failed discovery.
    const envOnly = await dac("env-only", workloadEnv);
    assert.equal(envOnly.ok, true, `DefaultAzureCredential() with the environment alone: ${JSON.stringify(envOnly)}`);
    assert.equal(envOnly.used, "ManagedIdentityCredential", "ManagedIdentityCredential (token exchange) gave the token");
    assert.ok(envOnly.discovery, `WorkloadIdentityCredential tried instance discovery first: ${envOnly.requests}`);
    assert.deepEqual([envOnly.claims.oid, envOnly.claims.appid, envOnly.claims.tid], [WORKLOAD.objectId, WORKLOAD.clientId, TENANT],
      "the token is workload's");
    sameBytes(fromB64url(envOnly.unwrapped), fromB64url(envOnly.dek), "the DAC process created a key, wrapped and unwrapped");
  });

  return summary();
}

// ================================================ DefaultAzureCredential ====

/**
 * MODE "env-only": new DefaultAzureCredential(); "instance-discovery-off":
 * new DefaultAzureCredential({disableInstanceDiscovery: true}). Everything
 * else comes from the environment. Prints one line "DAC-RESULT {json}".
 */
async function dacProcess(mode) {
  const { DefaultAzureCredential } = await import("@azure/identity");
  const { KeyClient, CryptographyClient } = await import("@azure/keyvault-keys");
  const { AzureLogger, setLogLevel } = await import("@azure/logger");
  const log = [];
  setLogLevel("info");
  AzureLogger.log = (...args) => log.push(format(...args));
  const requests = [];
  const policy = { name: "dacRecorder", async sendRequest(req, next) { requests.push(req.url); return next(req); } };
  const opts = { additionalPolicies: [{ policy, position: "perCall" }] };
  const cred = new DefaultAzureCredential(mode === "env-only" ? opts : { ...opts, disableInstanceDiscovery: true });
  const result = { mode };
  const used = () => /Result for (\w+): /.exec(log.join("\n"))?.[1] ?? null;
  try {
    const t = await cred.getToken("https://vault.azure.net/.default");
    const vault = `https://certs.vault.localhost:${process.env.KVMOCK_HTTPS_PORT ?? new URL(process.env.AZURE_AUTHORITY_HOST).port}`;
    const keyName = `dac-${process.env.AZURE_CLIENT_CERTIFICATE_PATH ? "cert" : "workload"}-${randomBytes(4).toString("hex")}`;
    const key = await new KeyClient(vault, cred).createRsaKey(keyName, { keySize: 2048 });
    const c = new CryptographyClient(key.id, cred);
    const dek = randomBytes(32);
    const unwrapped = (await c.unwrapKey("RSA-OAEP-256", (await c.wrapKey("RSA-OAEP-256", dek)).result)).result;
    Object.assign(result, { ok: true, claims: decodeJwt(t.token), keyName, dek: b64url(dek), unwrapped: b64url(unwrapped) });
  } catch (e) {
    Object.assign(result, { ok: false, name: e.name, message: e.message });
  }
  Object.assign(result, {
    used: used(),
    discovery: requests.some((u) => u.startsWith("https://login.microsoftonline.com/common/discovery/instance")),
    kvmockTokenRequests: requests.filter((u) => /^https:\/\/localhost:\d+\/[^/]+\/oauth2\/v2\.0\/token/.test(u)).length,
    requests: requests.map((u) => u.split("?")[0]),
  });
  if (process.env.DAC_DEBUG) console.error(log.join("\n"));
  console.log(`DAC-RESULT ${JSON.stringify(result)}`);
  process.exit(0);
}
