// The web view in headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core): after a small customer-managed-key story, the page shows
// the vaults, key versions, the deleted key with its purge date, the access
// policies, role assignments and the audit stream with the denied call
// highlighted, the identities with how each signs in (a managed identity; an
// application's secret, never shown, its certificate's thumbprint and its federated
// credential); the clock button moves kvmock's clock. A screenshot is kept as an
// artifact.
//
//   node tests/ui/ui.test.mjs --kvmock build/kvmock [--screenshot FILE]
import { execFileSync, spawn } from "node:child_process";
import { generateKeyPairSync, X509Certificate } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";

const args = process.argv.slice(2);
const binary = args[args.indexOf("--kvmock") + 1];
const shotArg = args.indexOf("--screenshot");
const screenshot = shotArg >= 0 ? args[shotArg + 1] : join(tmpdir(), "kvmock-ui.png");
assert.ok(binary && args.includes("--kvmock"), "usage: ui.test.mjs --kvmock BINARY");

const TENANT = "6b766d6f-636b-4000-8000-000000000001";
const SERVICE = { name: "disk-service", objectId: "0a000000-0000-4000-8000-0000000000d1",
                  clientId: "0c000000-0000-4000-8000-0000000000d1" };
// an application with a secret, a certificate and a federated credential
const dir = mkdtempSync(join(tmpdir(), "kvmock-ui-"));
execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", join(dir, "ci.key"),
                         "-out", join(dir, "ci.crt"), "-days", "30", "-subj", "/CN=pipeline"],
             { stdio: "ignore" });
const certPem = readFileSync(join(dir, "ci.crt"), "utf8");
const THUMBPRINT = new X509Certificate(certPem).fingerprint.replaceAll(":", "");
const PIPELINE_SECRET = "pipeline-secret-not-for-the-page";
const ciJwk = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey.export({ format: "jwk" });
const PIPELINE = { name: "pipeline", objectId: "0a000000-0000-4000-8000-0000000000c1",
                   clientId: "0c000000-0000-4000-8000-0000000000c1", clientSecret: PIPELINE_SECRET,
                   clientCertificates: "ci.crt",
                   federatedCredentials: [{ issuer: "https://ci.example", subject: "repo:shop/app:ref:refs/heads/main",
                                            jwks: { keys: [{ ...ciJwk, kid: "ci-1" }] } }] };
const config = {
  identities: [{ name: "learner", objectId: "0a000000-0000-4000-8000-0000000000a1",
                 clientId: "0c000000-0000-4000-8000-0000000000a1", default: true }, SERVICE, PIPELINE],
  vaults: [
    { name: "cmk", properties: { softDeleteRetentionInDays: 7, enablePurgeProtection: true,
      sku: { family: "A", name: "premium" },
      accessPolicies: [
        { objectId: "0a000000-0000-4000-8000-0000000000a1", permissions: { keys: ["all"] } },
        { objectId: SERVICE.objectId, permissions: { keys: ["get", "wrapKey", "unwrapKey"] } }] } },
    { name: "rbac", properties: { enableRbacAuthorization: true, networkAcls: {
      defaultAction: "Deny", ipRules: [{ value: "127.0.0.0/8" }, { value: "::1/128" }] } } },
  ],
  roleAssignments: [{ principalId: SERVICE.objectId,
                      roleDefinitionName: "Key Vault Crypto Service Encryption User",
                      scope: "/vaults/rbac/keys/disk" }],
};

const freePort = () => new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => { const { port } = s.address(); s.close(() => resolve(port)); });
});

writeFileSync(join(dir, "config.json"), JSON.stringify(config));
const httpsPort = await freePort();
let httpPort = await freePort();
while (httpPort === httpsPort) httpPort = await freePort();

let output = "";
const server = spawn(binary, ["--data", join(dir, "data"), "--https-port", String(httpsPort),
                              "--http-port", String(httpPort), "--config", join(dir, "config.json")],
                     { stdio: ["ignore", "pipe", "pipe"] });
server.stdout.on("data", (d) => { output += d; });
server.stderr.on("data", (d) => { output += d; });
const exited = new Promise((resolve) => server.on("exit", (code, signal) => resolve({ code, signal })));

async function waitReady() {
  for (let i = 0; i < 300; i++) {
    if (output.includes("kvmock ready")) {
      try {
        if ((await fetch(`http://127.0.0.1:${httpPort}/healthz`)).ok) return;
      } catch { /* not yet */ }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error("kvmock did not start:\n" + output);
}

async function token(clientId, resource = "https://vault.azure.net") {
  const q = new URLSearchParams({ "api-version": "2019-08-01", resource });
  if (clientId) q.set("client_id", clientId);
  const res = await fetch(`http://127.0.0.1:${httpPort}/msi/token?${q}`,
                          { headers: { "X-IDENTITY-HEADER": "kvmock" } });
  assert.equal(res.status, 200);
  return (await res.json()).access_token;
}

// a call on a vault's data plane, or with vaultName null on the management plane
function vault(method, vaultName, path, body, tok) {
  const ca = readFileSync(join(dir, "data", "tls", "ca.pem"));
  const host = vaultName ? `${vaultName}.vault.localhost` : "localhost";
  const api = vaultName ? "7.4" : "2023-07-01";
  return new Promise((resolve, reject) => {
    const data = body ? JSON.stringify(body) : "";
    const req = httpsRequest({ host: "127.0.0.1", port: httpsPort, method,
                               path: `${path}?api-version=${api}`, ca, servername: host,
                               headers: { Host: `${host}:${httpsPort}`,
                                          Authorization: `Bearer ${tok}`,
                                          "Content-Type": "application/json",
                                          "Content-Length": Buffer.byteLength(data) } },
                             (res) => {
                               let text = "";
                               res.on("data", (c) => { text += c; });
                               res.on("end", () => resolve({ status: res.statusCode,
                                                             body: text ? JSON.parse(text) : null }));
                             });
    req.on("error", reject);
    req.end(data);
  });
}

let failed = false;
let browser;
try {
  await waitReady();
  const learner = await token();
  const service = await token(SERVICE.clientId);
  assert.equal((await vault("POST", "cmk", "/keys/disk/create", { kty: "RSA" }, learner)).status, 200);
  assert.equal((await vault("POST", "cmk", "/keys/disk/rotate", null, learner)).status, 200);
  assert.equal((await vault("POST", "cmk", "/keys/old/create", { kty: "EC" }, learner)).status, 200);
  assert.equal((await vault("DELETE", "cmk", "/keys/old", null, learner)).status, 200);
  const releasePolicy = { version: "1.0.0", anyOf: [{ authority: "https://maa.example",
    allOf: [{ claim: "x-ms-attestation-type", equals: "sevsnpvm" }] }] };
  assert.equal((await vault("POST", "cmk", "/keys/kek/create", { kty: "oct-HSM",
    attributes: { exportable: true },
    release_policy: { data: Buffer.from(JSON.stringify(releasePolicy)).toString("base64url"),
                      immutable: true } }, learner)).status, 200);
  const denied = await vault("POST", "cmk", "/keys/other/create", { kty: "RSA" }, service);
  assert.equal(denied.status, 403);
  const arm = await token(undefined, "https://management.azure.com");
  assert.equal((await vault("GET", null, `/subscriptions/${"0".repeat(8)}-0000-0000-0000-${"0".repeat(12)}` +
                            "/providers/Microsoft.KeyVault/vaults", null, arm)).status, 200);

  browser = await chromium.launch({ executablePath: "/usr/bin/chromium",
                                    args: ["--no-sandbox", "--disable-gpu"] });
  const page = await browser.newPage({ viewport: { width: 1300, height: 1400 } });
  await page.goto(`http://127.0.0.1:${httpPort}/ui`);
  const cmk = page.locator('.vault[data-vault="cmk"]');
  await cmk.waitFor();
  // two versions of "disk", one current, and the exportable "kek"
  await page.waitForFunction(() => document.querySelectorAll('.vault[data-vault="cmk"] tr.key-row').length === 3);
  assert.equal(await cmk.locator("tr.key-row", { hasText: "disk" }).filter({ hasText: "(current)" }).count(), 1);
  assert.match(await cmk.locator("tr.key-row", { hasText: "kek" }).textContent(),
    /exportable to https:\/\/maa\.example \(policy immutable\)/);
  assert.equal(await cmk.locator("tr.key-row", { hasText: "disk" }).filter({ hasText: "exportable" }).count(), 0);
  // the deleted key with its scheduled purge date, 7 days after deletion
  const del = cmk.locator("tr.deleted-row", { hasText: "old" });
  assert.equal(await del.count(), 1);
  const [deletedAt, purgeAt] = (await del.locator("td").allTextContents()).slice(1, 3).map(Date.parse);
  assert.equal(purgeAt - deletedAt, 7 * 86400 * 1000);
  // access policies and the role assignment
  assert.equal(await cmk.locator("tr.policy-row", { hasText: "get wrapKey unwrapKey" }).count(), 1);
  const rbac = page.locator('.vault[data-vault="rbac"]');
  assert.equal(await rbac.locator("tr.role-row", { hasText: "Key Vault Crypto Service Encryption User" }).count(), 1);
  assert.match(await cmk.locator(".props").textContent(), /purge protection: on/);
  assert.match(await cmk.locator(".props").textContent(), /network: all networks/);
  assert.match(await rbac.locator(".props").textContent(),
    /network: selected addresses \(127\.0\.0\.0\/8 ::1\/128\)/);
  // the identities and how each signs in; the secret is neither on the page nor in its data
  const ids = page.locator("#identities tr.identity-row");
  assert.equal(await ids.count(), 3);
  assert.match(await ids.filter({ hasText: "disk-service" }).textContent(), /managed identity/);
  assert.match(await ids.filter({ hasText: "learner" }).textContent(), /learner \(default\)/);
  const pipeline = await ids.filter({ hasText: "pipeline" }).textContent();
  assert.match(pipeline, /client secret; certificate [0-9A-F]{40} \(until /);
  assert.ok(pipeline.includes(`certificate ${THUMBPRINT} `), pipeline);
  assert.ok(pipeline.includes("federated: https://ci.example repo:shop/app:ref:refs/heads/main"), pipeline);
  const state = await (await fetch(`http://127.0.0.1:${httpPort}/ui/api/state`)).text();
  assert.ok(!state.includes(PIPELINE_SECRET) && !(await page.content()).includes(PIPELINE_SECRET));
  assert.equal(JSON.parse(state).identities.find((i) => i.name === "pipeline").clientSecret, true);
  // the audit stream: the denied create is highlighted
  await page.waitForSelector("#audit tr.denied");
  const deniedRow = page.locator("#audit tr.denied", { hasText: "KeyCreate" });
  assert.equal(await deniedRow.count(), 1);
  assert.match(await deniedRow.textContent(), /403/);
  assert.ok(await page.locator("#audit tr.audit-row", { hasText: "KeyRotate" }).count() >= 1);
  // the caller of a management call too, whose record names it by Entra's long claim name
  const listRow = page.locator("#audit tr.audit-row", { hasText: "VaultList" });
  assert.equal(await listRow.count(), 1);
  assert.ok((await listRow.textContent()).includes("0a000000-0000-4000-8000-0000000000a1"));
  // the clock: advancing 8 days passes the 7-day retention, the deleted key goes
  const before = await page.locator("#now").textContent();
  await page.fill("#advance-days", "8");
  await page.click("#advance");
  await page.waitForFunction((b) => document.querySelector("#now").textContent !== b, before);
  await page.waitForFunction(() => !document.querySelector('.vault[data-vault="cmk"] tr.deleted-row'));
  await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`PASS web view (screenshot: ${screenshot})`);
} catch (e) {
  failed = true;
  console.error("FAIL web view:", e);
} finally {
  if (browser) await browser.close();
  server.kill("SIGTERM");
  const { code } = await exited;
  const marks = ["AddressSanitizer", "LeakSanitizer", "runtime error:"].filter((m) => output.includes(m));
  if (code !== 0 || marks.length) {
    failed = true;
    console.error(`FAIL kvmock exit ${code}, sanitizer reports ${marks}\n${output.slice(-4000)}`);
  }
  rmSync(dir, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
