#!/usr/bin/env node
// End-to-end test: the official Azure JS SDK (@azure/keyvault-keys and
// @azure/identity, pinned in package-lock.json) against a kvmock binary.
//
//   npm ci --prefix tests/e2e/js
//   node tests/e2e/js/sdk.test.mjs --kvmock build/kvmock
//
// Starts kvmock on free ports with a temporary data folder, then runs
// scenario.mjs twice in a child node process (Node reads NODE_EXTRA_CA_CERTS
// only at start-up, and the CA only exists once kvmock has started):
//   (a) https://default.vault.localhost:P, challenge-resource check ON
//   (b) https://localhost:P with disableChallengeResourceVerification: true
// Exits non-zero on any failure, including an unclean kvmock shutdown or a
// sanitizer report in its output.

import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { lookup } from "node:dns/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startKvmock, stopKvmock, httpGet } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const SCENARIO_TIMEOUT_MS = 240_000;
const IDENTITY_HEADER = "kvmock";

function parseArgs(argv) {
  const out = { kvmock: process.env.KVMOCK_BIN };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--kvmock") out.kvmock = argv[++i];
    else if (a.startsWith("--kvmock=")) out.kvmock = a.slice("--kvmock=".length);
    else if (a === "-h" || a === "--help") {
      console.log("usage: node sdk.test.mjs --kvmock /path/to/kvmock");
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!out.kvmock) {
    console.error("usage: node sdk.test.mjs --kvmock /path/to/kvmock");
    process.exit(2);
  }
  out.kvmock = resolve(out.kvmock);
  return out;
}

let failures = 0;
function pass(name, extra = "") { console.log(`PASS ${name}${extra ? ` (${extra})` : ""}`); }
function fail(name, err) {
  failures++;
  console.log(`FAIL ${name}: ${err && err.stack ? err.stack : err}`);
}

/** Environment for the scenario child: nothing inherited that could steer the SDK elsewhere. */
function childEnv(kv, extra) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AZURE_|MSI_|IDENTITY_|IMDS_|KVMOCK_|NODE_EXTRA_CA_CERTS$|NODE_TLS_REJECT_UNAUTHORIZED$|NODE_OPTIONS$)/.test(k)) continue;
    if (/^(https?|all|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  return {
    ...env,
    NODE_EXTRA_CA_CERTS: kv.caPath,
    IDENTITY_ENDPOINT: `http://127.0.0.1:${kv.httpPort}/msi/token`,
    IDENTITY_HEADER,
    KVMOCK_HTTPS_PORT: String(kv.httpsPort),
    KVMOCK_HTTP_URL: kv.httpUrl,
    KVMOCK_READY_LINE: kv.readyLine,
    ...extra,
  };
}

function runScenario(kv, mode, vaultUrl) {
  return new Promise((resolvePromise) => {
    const args = [join(here, "scenario.mjs"), "--mode", mode, "--vault-url", vaultUrl];
    const child = spawn(process.execPath, args, {
      env: childEnv(kv, { KVMOCK_MODE: mode, KVMOCK_VAULT_URL: vaultUrl }),
      stdio: ["ignore", "inherit", "inherit"],
    });
    const timer = setTimeout(() => {
      console.log(`scenario ${mode}: timeout after ${SCENARIO_TIMEOUT_MS} ms, killing it`);
      child.kill("SIGKILL");
    }, SCENARIO_TIMEOUT_MS);
    child.on("exit", (code, signal) => { clearTimeout(timer); resolvePromise({ code, signal }); });
    child.on("error", (err) => { clearTimeout(timer); resolvePromise({ code: null, signal: null, error: err }); });
  });
}

async function main() {
  const { kvmock } = parseArgs(process.argv.slice(2));

  if (!existsSync(join(here, "node_modules", "@azure", "keyvault-keys", "package.json")) ||
      !existsSync(join(here, "node_modules", "@azure", "identity", "package.json"))) {
    console.log(`FAIL setup: the pinned npm packages are not installed; run: npm ci --prefix ${here}`);
    return 1;
  }
  const pinned = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).dependencies;
  for (const [name, want] of Object.entries(pinned)) {
    const got = JSON.parse(readFileSync(join(here, "node_modules", name, "package.json"), "utf8")).version;
    if (got !== want) {
      console.log(`FAIL setup: ${name} is ${got} in node_modules but package.json pins ${want}; run: npm ci --prefix ${here}`);
      return 1;
    }
  }
  console.log(`node ${process.version}; ${Object.entries(pinned).map(([n, v]) => `${n}@${v}`).join(", ")}`);

  // Mode (a) needs *.vault.localhost to resolve to the loopback.
  let vaultHostResolves = true;
  try {
    const addrs = await lookup("default.vault.localhost", { all: true });
    const bad = addrs.filter((a) => a.address !== "127.0.0.1" && a.address !== "::1");
    if (addrs.length === 0 || bad.length) throw new Error(`resolves to ${JSON.stringify(addrs)}`);
    pass("setup: default.vault.localhost resolves to loopback", addrs.map((a) => a.address).join(", "));
  } catch (e) {
    vaultHostResolves = false;
    fail("setup: default.vault.localhost must resolve to the loopback (install libnss-myhostname or add an /etc/hosts line)", e);
  }

  let kv;
  try {
    kv = await startKvmock({ bin: kvmock });
    pass("harness: kvmock started", `https ${kv.httpsPort}, http ${kv.httpPort}, data ${kv.dataDir}`);
  } catch (e) {
    fail("harness: start kvmock", e);
    return 1;
  }

  try {
    // The CA file the clients are told to trust, and the same bytes on /ca.pem.
    try {
      if (!existsSync(kv.caPath)) throw new Error(`${kv.caPath} does not exist`);
      const pem = readFileSync(kv.caPath, "utf8");
      if (!pem.includes("-----BEGIN CERTIFICATE-----")) throw new Error(`${kv.caPath} holds no PEM certificate`);
      const res = await httpGet(`${kv.httpUrl}/ca.pem`);
      if (res.status !== 200) throw new Error(`GET /ca.pem: status ${res.status}, want 200`);
      if (res.body.trim() !== pem.trim()) throw new Error("GET /ca.pem differs from DATA/tls/ca.pem");
      pass("harness: DATA/tls/ca.pem exists and equals GET /ca.pem");
    } catch (e) {
      fail("harness: CA certificate", e);
    }

    const modes = [];
    if (vaultHostResolves) modes.push(["a", `https://default.vault.localhost:${kv.httpsPort}`]);
    modes.push(["b", `https://localhost:${kv.httpsPort}`]);
    for (const [mode, url] of modes) {
      console.log(`--- scenario ${mode}: ${url} ---`);
      const r = await runScenario(kv, mode, url);
      if (r.code === 0) pass(`scenario ${mode} (${url})`);
      else fail(`scenario ${mode} (${url})`, `child exited with code ${r.code}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ""}`);
    }
  } finally {
    try {
      await stopKvmock(kv);
      pass("harness: kvmock stopped with SIGTERM, exit code 0, no sanitizer reports");
    } catch (e) {
      fail("harness: stop kvmock", e);
    }
  }
  return failures ? 1 : 0;
}

main().then(
  (code) => {
    console.log(code === 0 ? "ALL PASSED" : `FAILED (${failures} failure${failures === 1 ? "" : "s"})`);
    process.exitCode = code;
  },
  (err) => {
    console.log(`FAIL unexpected: ${err && err.stack ? err.stack : err}`);
    process.exitCode = 1;
  },
);
