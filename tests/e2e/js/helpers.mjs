// Shared pieces of the JS end-to-end tests lifecycle.test.mjs, authz.test.mjs
// and crypto.test.mjs (sdk.test.mjs and scenario.mjs do not use it).
//
// Each of those scripts is its own driver and its own scenario:
//   node X.test.mjs --kvmock BIN      the driver: runDriver() writes the config
//                                     file, starts kvmock (harness.mjs), runs
//                                     the same script again with --child in a
//                                     child node process whose environment
//                                     carries NODE_EXTRA_CA_CERTS (Node reads
//                                     it only at start-up, and the CA exists
//                                     only once kvmock has started), then stops
//                                     kvmock and checks its exit and output.
//   node X.test.mjs --child           the scenario (started by the driver).
//
// Scenario side: scenarioEnv() (ports, URLs, identity header), advanceClock(),
// msiToken(), a request recorder policy, group() reporting and
// expectRestError().

import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import http from "node:http";
import assert from "node:assert/strict";
import { startKvmock, stopKvmock } from "./harness.mjs";

export const here = dirname(fileURLToPath(import.meta.url));
export const DAY = 86400;
const DEFAULT_CHILD_TIMEOUT_MS = 300_000;

// ================================================================ driver ====

function parseDriverArgs(argv, script) {
  const out = { kvmock: process.env.KVMOCK_BIN };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--kvmock") out.kvmock = argv[++i];
    else if (a.startsWith("--kvmock=")) out.kvmock = a.slice("--kvmock=".length);
    else if (a === "-h" || a === "--help") {
      console.log(`usage: node ${script} --kvmock /path/to/kvmock`);
      process.exit(0);
    } else {
      console.error(`unknown argument: ${a}`);
      process.exit(2);
    }
  }
  if (!out.kvmock) {
    console.error(`usage: node ${script} --kvmock /path/to/kvmock`);
    process.exit(2);
  }
  out.kvmock = resolve(out.kvmock);
  return out;
}

/** Every dependency in package.json installed at exactly its pinned version. */
function checkPinned() {
  const pinned = JSON.parse(readFileSync(join(here, "package.json"), "utf8")).dependencies;
  for (const [name, want] of Object.entries(pinned)) {
    const pj = join(here, "node_modules", name, "package.json");
    if (!existsSync(pj)) throw new Error(`${name} is not installed; run: npm ci --prefix ${here}`);
    const got = JSON.parse(readFileSync(pj, "utf8")).version;
    if (got !== want) throw new Error(`${name} is ${got} in node_modules but package.json pins ${want}; run: npm ci --prefix ${here}`);
  }
  return Object.entries(pinned).map(([n, v]) => `${n}@${v}`).join(", ");
}

/** Environment for a scenario child: nothing inherited that could steer the SDK elsewhere. */
function childEnv(kv, extra = {}) {
  const env = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(AZURE_|MSI_|IDENTITY_|IMDS_|KVMOCK_|NODE_EXTRA_CA_CERTS$|NODE_TLS_REJECT_UNAUTHORIZED$|NODE_OPTIONS$)/.test(k)) continue;
    if (/^(https?|all|no)_proxy$/i.test(k)) continue;
    env[k] = v;
  }
  const header = /identity-header=(\S+)/.exec(kv.readyLine ?? "")?.[1] ?? "kvmock";
  return {
    ...env,
    NO_PROXY: "*",
    NODE_EXTRA_CA_CERTS: kv.caPath,
    IDENTITY_ENDPOINT: `http://127.0.0.1:${kv.httpPort}/msi/token`,
    IDENTITY_HEADER: header,
    KVMOCK_HTTPS_PORT: String(kv.httpsPort),
    KVMOCK_HTTP_PORT: String(kv.httpPort),
    KVMOCK_HTTP_URL: kv.httpUrl,
    KVMOCK_READY_LINE: kv.readyLine ?? "",
    KVMOCK_DATA_DIR: kv.dataDir,
    ...extra,
  };
}

function runChild(script, kv, timeoutMs) {
  return new Promise((resolvePromise) => {
    const child = spawn(process.execPath, [script, "--child"], { env: childEnv(kv), stdio: ["ignore", "inherit", "inherit"] });
    const timer = setTimeout(() => {
      console.log(`scenario: timeout after ${timeoutMs} ms, killing it`);
      child.kill("SIGKILL");
    }, timeoutMs);
    child.on("exit", (code, signal) => { clearTimeout(timer); resolvePromise({ code, signal }); });
    child.on("error", (err) => { clearTimeout(timer); resolvePromise({ code: null, signal: null, error: err }); });
  });
}

/**
 * The driver: start kvmock (with `config` written to a temp file and passed
 * as --config, when given), run `script --child`, stop kvmock with SIGTERM
 * (exit code 0, no sanitizer report). Exits the process: 0 if all passed.
 */
export async function runDriver({ script, config, childTimeoutMs = DEFAULT_CHILD_TIMEOUT_MS }) {
  const name = script.split("/").pop();
  const { kvmock } = parseDriverArgs(process.argv.slice(2), name);
  let failures = 0;
  const pass = (what, extra = "") => console.log(`PASS ${what}${extra ? ` (${extra})` : ""}`);
  const fail = (what, err) => { failures++; console.log(`FAIL ${what}: ${err && err.stack ? err.stack : err}`); };
  // Exit explicitly: harness.mjs leaves its ready/stop timeout timers
  // (sleep(90 s) and sleep(30 s) raced against the process) running, which
  // would keep this process alive for up to 90 s after the last check.
  const finish = () => {
    console.log(failures === 0 ? "ALL PASSED" : `FAILED (${failures} failure${failures === 1 ? "" : "s"})`);
    process.exit(failures === 0 ? 0 : 1);
  };

  try {
    console.log(`node ${process.version}; ${checkPinned()}`);
  } catch (e) {
    fail("setup", e);
    return finish();
  }

  let cfgDir;
  const args = [];
  if (config) {
    cfgDir = mkdtempSync(join(tmpdir(), "kvmock-js-cfg-"));
    const cfgPath = join(cfgDir, "kvmock.json");
    writeFileSync(cfgPath, JSON.stringify(config, null, 2));
    args.push("--config", cfgPath);
  }
  let kv;
  try {
    kv = await startKvmock({ bin: kvmock, args });
    pass("harness: kvmock started", `https ${kv.httpsPort}, http ${kv.httpPort}, data ${kv.dataDir}${config ? ", with --config" : ""}`);
  } catch (e) {
    fail("harness: start kvmock", e);
    if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
    return finish();
  }
  try {
    const t0 = Date.now();
    const r = await runChild(script, kv, childTimeoutMs);
    if (r.code === 0) pass(`scenario ${name} --child`, `${((Date.now() - t0) / 1000).toFixed(1)} s`);
    else fail(`scenario ${name} --child`, `child exited with code ${r.code}, signal ${r.signal}${r.error ? `, ${r.error.message}` : ""}`);
  } finally {
    try {
      await stopKvmock(kv);
      pass("harness: kvmock stopped with SIGTERM, exit code 0, no sanitizer reports");
    } catch (e) {
      fail("harness: stop kvmock", e);
    }
    if (cfgDir) rmSync(cfgDir, { recursive: true, force: true });
  }
  return finish();
}

/** True in the scenario process (started by runDriver with --child). */
export const isChild = () => process.argv.includes("--child");

// ============================================================== scenario ====

/** What the driver passes to the scenario child. */
export function scenarioEnv() {
  for (const v of ["NODE_EXTRA_CA_CERTS", "IDENTITY_ENDPOINT", "IDENTITY_HEADER", "KVMOCK_HTTPS_PORT", "KVMOCK_HTTP_URL"]) {
    if (!process.env[v]) {
      console.error(`scenario: ${v} is not set (run the script without --child)`);
      process.exit(2);
    }
  }
  const httpsPort = Number(process.env.KVMOCK_HTTPS_PORT);
  return {
    httpsPort,
    httpPort: Number(process.env.KVMOCK_HTTP_PORT),
    httpUrl: process.env.KVMOCK_HTTP_URL,
    identityHeader: process.env.IDENTITY_HEADER,
    readyLine: process.env.KVMOCK_READY_LINE ?? "",
    caPath: process.env.NODE_EXTRA_CA_CERTS,
    dataDir: process.env.KVMOCK_DATA_DIR,
    vaultUrl: (vault) => `https://${vault}.vault.localhost:${httpsPort}`,
    localhostUrl: `https://localhost:${httpsPort}`,
  };
}

/** Plain HTTP request to the HTTP port; resolves {status, headers, body (text)}. */
export function httpRequest(method, url, { headers = {}, body } = {}) {
  return new Promise((resolvePromise, reject) => {
    const data = body === undefined ? undefined : Buffer.from(typeof body === "string" ? body : JSON.stringify(body));
    const h = { ...headers };
    if (data) {
      if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type")) h["Content-Type"] = "application/json";
      h["Content-Length"] = String(data.length);
    }
    const req = http.request(url, { method, headers: h, timeout: 30_000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolvePromise({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on("error", reject);
    if (data) req.write(data);
    req.end();
  });
}

/** POST /admin/clock {"advanceSeconds": seconds}; returns kvmock's new "now" (epoch seconds). */
export async function advanceClock(env, seconds) {
  const r = await httpRequest("POST", `${env.httpUrl}/admin/clock`, { body: { advanceSeconds: seconds } });
  assert.equal(r.status, 200, `POST /admin/clock {"advanceSeconds": ${seconds}}: ${r.body}`);
  const now = JSON.parse(r.body).now;
  assert.ok(Number.isFinite(now), `/admin/clock answered a number "now": ${r.body}`);
  return now;
}

/** A raw token from the managed-identity endpoint (optionally for a client_id). */
export async function msiToken(env, { resource = "https://vault.azure.net", clientId } = {}) {
  const q = new URLSearchParams({ "api-version": "2019-08-01", resource });
  if (clientId) q.set("client_id", clientId);
  const r = await httpRequest("GET", `${env.httpUrl}/msi/token?${q}`, { headers: { "X-IDENTITY-HEADER": env.identityHeader } });
  assert.equal(r.status, 200, `GET /msi/token: ${r.body}`);
  return JSON.parse(r.body).access_token;
}

export function decodeJwt(token) {
  const parts = token.split(".");
  assert.equal(parts.length, 3, "token is a JWT with three parts");
  return JSON.parse(Buffer.from(parts[1], "base64url").toString("utf8"));
}

/**
 * A pipeline policy that records every exchange the SDK clients make:
 * {method, url (URL), status, body (text), requestBody}. Use
 * clientOptions(recorder) for each client (the SDK mutates the options).
 */
export function makeRecorder() {
  const exchanges = [];
  const policy = {
    name: "kvmockTestRecorder",
    async sendRequest(request, next) {
      const record = (response) => exchanges.push({
        method: request.method,
        url: new URL(request.url),
        status: response.status,
        body: response.bodyAsText ?? "",
        requestBody: typeof request.body === "string" ? request.body : "",
      });
      let response;
      try {
        response = await next(request);
      } catch (e) {
        // Policies further down (core-client's deserialization) may throw
        // on an error status: record the response the error carries.
        if (e && e.response) record(e.response);
        throw e;
      }
      record(response);
      return response;
    },
  };
  return {
    exchanges,
    options: (extra = {}) => ({ additionalPolicies: [{ policy, position: "perCall" }], ...extra }),
    /** Exchanges since index `since` matching method and a path predicate/string. */
    find(since, method, path) {
      return exchanges.slice(since).filter((x) => x.method === method &&
        (typeof path === "string" ? x.url.pathname === path : path.test(x.url.pathname)));
    },
    /** The parsed body of the newest recorded response with this status (or {}). */
    lastBody(status) {
      for (let i = exchanges.length - 1; i >= 0; i--) {
        if (exchanges[i].status !== status) continue;
        try {
          return JSON.parse(exchanges[i].body || "{}");
        } catch {
          return {};
        }
      }
      return {};
    },
    describe(since = 0) {
      return exchanges.slice(since).map((x) => `${x.method} ${x.url.pathname} ${x.status}`).join(", ") || "nothing";
    },
  };
}

/** PASS/FAIL reporting of named check groups; summary() returns the exit code. */
export function makeReporter(tag) {
  const results = [];
  return {
    async group(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        results.push([name, true]);
        console.log(`PASS ${tag} ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        results.push([name, false]);
        console.log(`FAIL ${tag} ${name} (${Date.now() - t0} ms): ${e && e.stack ? e.stack : e}`);
        if (e && e.response?.bodyAsText) console.log(`     response body: ${e.response.bodyAsText}`);
      }
    },
    summary() {
      const failed = results.filter(([, ok]) => !ok);
      console.log(`${tag} ${results.length - failed.length}/${results.length} groups passed` +
        (failed.length ? `; failed: ${failed.map(([n]) => n).join("; ")}` : ""));
      return failed.length || results.length === 0 ? 1 : 0;
    },
  };
}

/**
 * Await `promise`, insist it rejects with a RestError of `status` (and `code`
 * when given, RestError.code = error.code of the body); returns the error.
 */
export async function expectRestError(promise, status, code, what) {
  let err;
  try {
    await promise;
  } catch (e) {
    err = e;
  }
  assert.ok(err, `${what}: expected a rejection with ${status}${code ? ` ${code}` : ""}, but it succeeded`);
  assert.equal(err.name, "RestError", `${what}: expected a RestError, got ${err.name}: ${err.message}`);
  assert.equal(err.statusCode, status, `${what}: statusCode (message: ${err.message})`);
  if (code !== undefined) assert.equal(err.code, code, `${what}: error code (message: ${err.message})`);
  return err;
}

/**
 * The parsed JSON body of a RestError's response. The keyvault-keys client
 * parses error bodies and keeps only code and message on the RestError, so
 * the body comes from the recorder (the newest response with that status).
 */
export function errorBody(err, rec) {
  if (typeof err.response?.bodyAsText === "string") {
    try {
      return JSON.parse(err.response.bodyAsText);
    } catch {
      return {};
    }
  }
  return rec ? rec.lastBody(err.statusCode) : {};
}

export const b64url = (x) => Buffer.from(x).toString("base64url");
export const fromB64url = (s) => Buffer.from(s, "base64url");
export function sameBytes(a, b, msg) {
  const x = Buffer.from(a ?? []);
  const y = Buffer.from(b ?? []);
  assert.ok(x.equals(y), `${msg}: ${x.toString("hex")} != ${y.toString("hex")}`);
}

/** A node:crypto JWK export (base64url strings) as the SDK's JsonWebKey (Uint8Array members). */
export function jwkToSdk(jwk, extra = {}) {
  const out = { kty: jwk.kty };
  for (const [k, v] of Object.entries(jwk)) {
    if (k === "kty") continue;
    out[k] = k === "crv" ? v : new Uint8Array(fromB64url(v));
  }
  return { ...out, ...extra };
}

/** Run the scenario's main() and set the exit code. */
export function runScenario(tag, main) {
  main().then(
    (code) => { process.exitCode = code; },
    (err) => {
      console.log(`FAIL ${tag} unexpected: ${err && err.stack ? err.stack : err}`);
      process.exitCode = 1;
    },
  );
}
