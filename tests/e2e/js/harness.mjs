// Start and stop a kvmock binary for an end-to-end test.
//
// startKvmock() runs `kvmock --data <fresh temp dir> --https-port P --http-port Q`
// on free ports, waits for the stdout line that starts with "kvmock ready"
// and for GET http://127.0.0.1:Q/healthz to answer 200.
// stopKvmock() sends SIGTERM, waits for the exit and throws unless the exit
// code is 0 and the output is free of sanitizer reports.

import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, existsSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import http from "node:http";

const READY_TIMEOUT_MS = 90_000;
const STOP_TIMEOUT_MS = 30_000;
const SANITIZER_MARKERS = ["AddressSanitizer", "LeakSanitizer", "runtime error:"];

/** A port that is free on the IPv4 and (where possible) the IPv6 loopback. */
function listenOnce(host, port) {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once("error", reject);
    srv.listen({ host, port, exclusive: true }, () => {
      const p = srv.address().port;
      srv.close(() => resolve(p));
    });
  });
}

export async function freePort(avoid = []) {
  for (let i = 0; i < 50; i++) {
    const p = await listenOnce("127.0.0.1", 0);
    if (avoid.includes(p)) continue;
    try {
      await listenOnce("::1", p);
    } catch (e) {
      if (e.code === "EADDRINUSE") continue;
      // No IPv6 loopback on this machine: the IPv4 check is all we can do.
    }
    return p;
  }
  throw new Error("could not find a free port");
}

/** GET a URL on the HTTP port; resolves {status, body}. */
export function httpGet(url, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { headers, timeout: 10_000 }, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
    });
    req.on("timeout", () => req.destroy(new Error(`timeout: GET ${url}`)));
    req.on("error", reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function launch(bin, dataDir, httpsPort, httpPort, extraArgs, env) {
  const args = ["--data", dataDir, "--https-port", String(httpsPort), "--http-port", String(httpPort), ...extraArgs];
  const proc = spawn(bin, args, { env, stdio: ["ignore", "pipe", "pipe"] });
  const h = {
    bin, args, proc, dataDir, httpsPort, httpPort,
    caPath: join(dataDir, "tls", "ca.pem"),
    httpUrl: `http://127.0.0.1:${httpPort}`,
    readyLine: null,
    out: [],          // interleaved stdout+stderr chunks
    exited: null,     // {code, signal} once the process ended
  };
  h.output = () => h.out.join("");
  h.exitPromise = new Promise((resolve) => {
    proc.on("exit", (code, signal) => { h.exited = { code, signal }; resolve(h.exited); });
    proc.on("error", (err) => { h.out.push(`[spawn error] ${err.message}\n`); h.exited = { code: null, signal: null, error: err }; resolve(h.exited); });
  });
  let stdoutBuf = "";
  h.readyPromise = new Promise((resolve) => {
    proc.stdout.on("data", (c) => {
      const s = c.toString("utf8");
      h.out.push(s);
      stdoutBuf += s;
      let nl;
      while ((nl = stdoutBuf.indexOf("\n")) >= 0) {
        const line = stdoutBuf.slice(0, nl).replace(/\r$/, "");
        stdoutBuf = stdoutBuf.slice(nl + 1);
        if (h.readyLine === null && line.startsWith("kvmock ready")) {
          h.readyLine = line;
          resolve(line);
        }
      }
    });
  });
  proc.stderr.on("data", (c) => h.out.push(c.toString("utf8")));
  return h;
}

async function waitReady(h) {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  // cleared once settled: a pending timer would hold the process for 90 s after the tests
  let timer;
  const timeout = new Promise((r) => { timer = setTimeout(() => r("timeout"), READY_TIMEOUT_MS); });
  const r = await Promise.race([h.readyPromise, h.exitPromise.then(() => "exited"), timeout]);
  clearTimeout(timer);
  if (r === "exited" || h.exited) throw new Error(`kvmock exited before it was ready (${JSON.stringify(h.exited)})`);
  if (r === "timeout") throw new Error(`no "kvmock ready" line within ${READY_TIMEOUT_MS} ms`);
  let last = "";
  while (Date.now() < deadline) {
    try {
      const res = await httpGet(`${h.httpUrl}/healthz`);
      if (res.status === 200) return;
      last = `status ${res.status}`;
    } catch (e) {
      last = e.message;
    }
    if (h.exited) throw new Error(`kvmock exited while waiting for /healthz (${JSON.stringify(h.exited)})`);
    await sleep(200);
  }
  throw new Error(`GET ${h.httpUrl}/healthz did not answer 200 after the ready line (last: ${last})`);
}

/**
 * Start kvmock. Options: bin (path, required), args (extra CLI args), env
 * (extra environment), dataDir (reuse a folder, e.g. for a restart test).
 * Retries with new ports if the process dies before it is ready (port race).
 */
export async function startKvmock({ bin, args = [], env = {}, dataDir } = {}) {
  if (!bin) throw new Error("startKvmock: bin is required");
  if (!existsSync(bin)) throw new Error(`kvmock binary not found: ${bin}`);
  const ownDir = !dataDir;
  const dir = dataDir ?? mkdtempSync(join(tmpdir(), "kvmock-js-"));
  const childEnv = { ...process.env, ...env };
  for (const k of Object.keys(childEnv)) if (k.startsWith("KVMOCK_")) delete childEnv[k];
  Object.assign(childEnv, env);
  let lastErr;
  for (let attempt = 1; attempt <= 3; attempt++) {
    const httpsPort = await freePort();
    const httpPort = await freePort([httpsPort]);
    const h = launch(bin, dir, httpsPort, httpPort, args, childEnv);
    h.ownDir = ownDir;
    try {
      await waitReady(h);
      return h;
    } catch (e) {
      lastErr = e;
      if (!h.exited) {
        h.proc.kill("SIGKILL");
        await h.exitPromise;
      }
      const out = h.output();
      // Only a lost port race is worth another attempt.
      if (!/address already in use|EADDRINUSE|cannot bind|bind/i.test(out) || attempt === 3) {
        e.message += `\n--- kvmock ${h.args.join(" ")} output ---\n${out}--- end of output ---`;
        if (ownDir) rmSync(dir, { recursive: true, force: true });
        throw e;
      }
    }
  }
  throw lastErr;
}

/**
 * SIGTERM, wait, and check a clean exit. Throws an Error describing every
 * problem (exit status, sanitizer reports). Removes a temp data dir it created
 * unless keepData is set or the stop failed.
 */
export async function stopKvmock(h, { keepData = false } = {}) {
  if (!h) return;
  const problems = [];
  if (!h.exited) {
    h.proc.kill("SIGTERM");
    let timer;
    const r = await Promise.race([
      h.exitPromise,
      new Promise((res) => { timer = setTimeout(() => res(null), STOP_TIMEOUT_MS); }),
    ]);
    clearTimeout(timer);
    if (r === null) {
      problems.push(`kvmock did not exit within ${STOP_TIMEOUT_MS} ms of SIGTERM (killed)`);
      h.proc.kill("SIGKILL");
      await h.exitPromise;
    }
  } else {
    problems.push(`kvmock had already exited before SIGTERM: ${JSON.stringify(h.exited)}`);
  }
  // Let the pipes drain.
  await sleep(50);
  const { code, signal } = h.exited;
  if (code !== 0) problems.push(`kvmock exit status: code=${code} signal=${signal} (want code 0)`);
  const out = h.output();
  for (const m of SANITIZER_MARKERS) if (out.includes(m)) problems.push(`kvmock output contains "${m}"`);
  if (problems.length) {
    const err = new Error(`${problems.join("; ")}\n--- kvmock output ---\n${out}--- end of output (data dir kept: ${h.dataDir}) ---`);
    throw err;
  }
  if (h.ownDir && !keepData) rmSync(h.dataDir, { recursive: true, force: true });
}
