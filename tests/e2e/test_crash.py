"""Crash consistency: SIGKILL kvmock under load, restart on the same data
folder, and check that nothing it acknowledged is lost.

Each cycle starts build/kvmock (our own subprocess, so it can be killed),
runs worker threads doing creates (RSA 2048, EC P-256, oct 256), oct imports,
rotates, deletes, wraps (RSA, oct) and signs (EC) over keep-alive
connections, and SIGKILLs the server at a random moment. Every 2xx answer is
recorded: the key name, the version, and what was wrapped or signed with it.
After each restart (the LMDB file must open: the server must start):
  - every listed key and deleted key is whole: its current version answers,
    and it has at least one version;
  - every version acknowledged in the cycle just killed answers (live keys by
    version; keys acknowledged as deleted under /deletedkeys).
At the end every deleted key is recovered and every acknowledged version is
checked: it answers by version, unwraps what it wrapped, verifies what it
signed, and imported oct keys still hold the imported bytes (a value wrapped
locally with the imported key unwraps on the server).
A last clean start and SIGTERM stop must exit 0 with no sanitizer report.

Options: --kills N (default 20), --seconds S (load per cycle, mean; default 1.0),
--workers W (default 6), --seed."""
import argparse
import hashlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZER_MARKS, Kvmock, check, eq, free_port, b64url, unb64url  # noqa: E402

API = "api-version=7.4"


class Server:
    """kvmock as our own subprocess, with the harness's flags, so it can be SIGKILLed."""

    def __init__(self, binary, data_dir, log_path):
        self.binary, self.data_dir, self.log_path = binary, data_dir, log_path
        self.proc = None

    def start(self, timeout=60):
        self.https_port, self.http_port = free_port(), free_port()
        while self.http_port == self.https_port:
            self.http_port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KVMOCK_")}
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "--data", self.data_dir, "--https-port", str(self.https_port),
             "--http-port", str(self.http_port), "--log-level", "warn"],
            stdout=subprocess.PIPE, stderr=self.log, env=env)
        line = self.proc.stdout.readline().decode(errors="replace")
        if not line.startswith("kvmock ready"):
            self.proc.wait(timeout=10)
            raise AssertionError(f"kvmock did not start on the killed data folder (exit "
                                 f"{self.proc.returncode}): {line!r}\n{tail(self.log_path)}")
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=5)
                c.request("GET", "/healthz")
                if c.getresponse().status == 200:
                    c.close()
                    break
            except OSError:
                time.sleep(0.05)
        else:
            raise AssertionError("kvmock /healthz did not answer")
        self.ca = os.path.join(self.data_dir, "tls", "ca.pem")
        self.token = self._token()

    def _token(self):
        c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=30)
        q = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": "https://vault.azure.net"})
        c.request("GET", "/msi/token?" + q, headers={"X-IDENTITY-HEADER": "kvmock"})
        r = c.getresponse()
        body = r.read()
        c.close()
        eq(r.status, 200, "token")
        return json.loads(body)["access_token"]

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc.stdout.close()
        self.log.close()
        self.proc = None


def tail(path, n=60):
    try:
        with open(path, "rb") as f:
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class Truncated(http.client.HTTPException):
    """An answer cut short: a status line and nothing else."""


class Client:
    """One keep-alive HTTPS connection to the server (reconnects on demand)."""

    def __init__(self, srv):
        self.srv = srv
        self.ctx = ssl.create_default_context(cafile=srv.ca)
        self.conn = None

    def call(self, method, path, body=None, timeout=30):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.srv.https_port,
                                                    context=self.ctx, timeout=timeout)
            # the certificate names localhost; connect to 127.0.0.1 with that name
            sock = socket.create_connection(("127.0.0.1", self.srv.https_port), timeout=timeout)
            self.conn.sock = self.ctx.wrap_socket(sock, server_hostname="localhost")
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Host": f"localhost:{self.srv.https_port}",
                   "Authorization": "Bearer " + self.srv.token}
        if data is not None:
            headers["Content-Type"] = "application/json"
        elif method in ("POST", "PUT", "PATCH"):
            headers["Content-Length"] = "0"
        try:
            self.conn.request(method, f"{path}?{API}" if "?" not in path else path,
                              body=data, headers=headers)
            r = self.conn.getresponse()
            payload = r.read()
        except Exception:
            self.close()
            raise
        if r.getheader("Content-Length") is None and not payload:
            # a status line and then the end of the stream: the server died while
            # answering (kvmock always sends Content-Length)
            self.close()
            raise Truncated(f"{method} {path}: {r.status} without headers or body")
        return r.status, (json.loads(payload) if payload else None)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class Model:
    """What the server acknowledged."""

    def __init__(self):
        self.lock = threading.Lock()
        self.keys = {}        # name -> {"kty", "versions": [..], "deleted": bool, "k": bytes|None}
        self.wraps = []       # (name, version, alg, plain, wrapped)
        self.sigs = []        # (name, version, alg, digest, signature)
        self.acked = 0
        self.by_op = {}
        self.cycle_versions = []  # (name, version) acknowledged in the current cycle
        self.pending_delete = set()  # names whose delete was sent but not acknowledged
        self.truncated = []  # when answers were cut short (must be after a kill)

    def ack(self, op):
        self.acked += 1
        self.by_op[op] = self.by_op.get(op, 0) + 1

    def live_names(self, kty=None):
        return [n for n, k in self.keys.items()
                if not k["deleted"] and n not in self.pending_delete
                and (kty is None or k["kty"] == kty)]


def version_of(kid):
    return kid.rsplit("/", 1)[1]


def worker(srv, model, rng, wid, cycle, stop, errors):
    cl = Client(srv)
    i = 0
    try:
        while not stop.is_set():
            i += 1
            op = rng.choices(["create", "import", "rotate", "delete", "wrap", "sign"],
                             weights=[4, 1, 2, 1, 5, 2])[0]
            with model.lock:
                live = model.live_names()
                wrappable = [n for n in live if model.keys[n]["kty"] in ("RSA", "oct")]
                ec = model.live_names("EC")
            if op == "create" or (op in ("rotate", "delete") and not live) \
                    or (op == "wrap" and not wrappable) or (op == "sign" and not ec):
                op = "create"
            if op == "create":
                name = f"c{cycle}-w{wid}-{i}"
                kty = rng.choice(["RSA", "EC", "oct"])
                body = {"kty": kty}
                if kty == "RSA":
                    body["key_size"] = 2048
                elif kty == "EC":
                    body["crv"] = "P-256"
                else:
                    body["key_size"] = 256
                st, doc = cl.call("POST", f"/keys/{name}/create", body)
                eq(st, 200, f"create {name}: {doc}")
                with model.lock:
                    model.keys[name] = {"kty": kty, "versions": [version_of(doc["key"]["kid"])],
                                        "deleted": False, "k": None}
                    model.cycle_versions.append((name, version_of(doc["key"]["kid"])))
                    model.ack("create")
            elif op == "import":
                name = f"i{cycle}-w{wid}-{i}"
                k = os.urandom(32)
                st, doc = cl.call("PUT", f"/keys/{name}", {"key": {"kty": "oct", "k": b64url(k)}})
                eq(st, 200, f"import {name}: {doc}")
                with model.lock:
                    model.keys[name] = {"kty": "oct", "versions": [version_of(doc["key"]["kid"])],
                                        "deleted": False, "k": k}
                    model.cycle_versions.append((name, version_of(doc["key"]["kid"])))
                    model.ack("import")
            elif op == "rotate":
                name = rng.choice(live)
                st, doc = cl.call("POST", f"/keys/{name}/rotate")
                if st == 404:  # deleted by an in-flight request of another worker: fine
                    continue
                eq(st, 200, f"rotate {name}: {doc}")
                with model.lock:
                    model.keys[name]["versions"].append(version_of(doc["key"]["kid"]))
                    model.cycle_versions.append((name, version_of(doc["key"]["kid"])))
                    model.ack("rotate")
            elif op == "delete":
                name = rng.choice(live)
                with model.lock:
                    model.pending_delete.add(name)
                st, doc = cl.call("DELETE", f"/keys/{name}")
                if st == 404:
                    continue
                eq(st, 200, f"delete {name}: {doc}")
                with model.lock:
                    model.keys[name]["deleted"] = True
                    model.pending_delete.discard(name)
                    model.ack("delete")
            elif op == "wrap":
                name = rng.choice(wrappable)
                with model.lock:
                    kty = model.keys[name]["kty"]
                    version = rng.choice(model.keys[name]["versions"])
                alg = "RSA-OAEP-256" if kty == "RSA" else "A256KW"
                plain = os.urandom(32)
                st, doc = cl.call("POST", f"/keys/{name}/{version}/wrapkey",
                                  {"alg": alg, "value": b64url(plain)})
                if st in (404, 403):  # deleted meanwhile, or an unacknowledged state
                    continue
                eq(st, 200, f"wrap {name}/{version}: {doc}")
                eq(version_of(doc["kid"]), version)
                with model.lock:
                    model.wraps.append((name, version, alg, plain, unb64url(doc["value"])))
                    model.ack("wrap")
            elif op == "sign":
                name = rng.choice(ec)
                with model.lock:
                    version = rng.choice(model.keys[name]["versions"])
                digest = hashlib.sha256(os.urandom(16)).digest()
                st, doc = cl.call("POST", f"/keys/{name}/{version}/sign",
                                  {"alg": "ES256", "value": b64url(digest)})
                if st in (404, 403):
                    continue
                eq(st, 200, f"sign {name}/{version}: {doc}")
                with model.lock:
                    model.sigs.append((name, version, "ES256", digest, unb64url(doc["value"])))
                    model.ack("sign")
    except Truncated:
        with model.lock:  # checked against the kill time: only a kill may cut an answer
            model.truncated.append(time.time())
    except (OSError, http.client.HTTPException):
        pass  # the server was killed: whatever was in flight is unacknowledged
    except Exception as e:  # noqa: BLE001 - a wrong answer while the server was alive
        if not stop.is_set():
            errors.append(f"worker {wid}, cycle {cycle}, op {op}: {e!r}\n"
                          + traceback.format_exc(limit=3))
    finally:
        cl.close()


def list_all(cl, path):
    items, link = [], path
    while link:
        st, doc = cl.call("GET", link)
        eq(st, 200, f"list {link}: {doc}")
        items += doc["value"]
        nxt = doc.get("nextLink")
        link = nxt[nxt.index("/", len("https://")):] if nxt else None
    return items


def check_whole(srv, failures, where, prefixes=None):
    """No half-present key: every listed key (live or deleted) answers with its
    current version and has at least one version. With @p prefixes, only the
    listed keys whose names start with one of them are fetched (the keys of the
    cycle just killed, including creates that were in flight)."""
    cl = Client(srv)
    names = [i["kid"].rsplit("/", 1)[1] for i in list_all(cl, f"/keys?{API}&maxresults=25")]
    deleted = [i["recoveryId"].rsplit("/", 1)[1]
               for i in list_all(cl, f"/deletedkeys?{API}&maxresults=25")]
    cl.close()

    def live_whole(cl, name):
        st, doc = cl.call("GET", f"/keys/{name}")
        if st != 200 or "kid" not in doc.get("key", {}):
            return f"{where}: listed key {name} answers {st}: {doc}"
        cur = version_of(doc["key"]["kid"])
        vs = [version_of(v["kid"])
              for v in list_all(cl, f"/keys/{name}/versions?{API}&maxresults=25")]
        if not vs or cur not in vs:
            return f"{where}: key {name} current {cur} not among its versions {vs}"
        return None

    def deleted_whole(cl, name):
        st, doc = cl.call("GET", f"/deletedkeys/{name}")
        if st != 200 or "kid" not in doc.get("key", {}):
            return f"{where}: listed deleted key {name} answers {st}: {doc}"
        return None

    def wanted(n):
        return prefixes is None or n.startswith(prefixes)

    failures += parallel(srv, [n for n in names if wanted(n)], live_whole)
    failures += parallel(srv, [n for n in deleted if wanted(n)], deleted_whole)
    return set(names), set(deleted)


def parallel(srv, items, fn, threads=12):
    """Run fn(client, item) over items on several keep-alive connections; collect
    the failure messages (fn returns None when the item is fine)."""
    items = list(items)
    out, lock, it = [], threading.Lock(), iter(items)

    def run():
        cl = Client(srv)
        try:
            while True:
                with lock:
                    item = next(it, None)
                if item is None:
                    return
                msg = fn(cl, item)
                if msg:
                    with lock:
                        out.append(msg)
        finally:
            cl.close()

    ts = [threading.Thread(target=run) for _ in range(min(threads, max(1, len(items))))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kvmock", required=True)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=6)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    rng = random.Random(seed)
    print(f"seed {seed}: {args.kills} kills, ~{args.seconds} s of load each, {args.workers} workers",
          flush=True)
    binary = os.path.abspath(args.kvmock)
    data = tempfile.mkdtemp(prefix="kvmock-crash-")
    log_dir = tempfile.mkdtemp(prefix="kvmock-crash-log-")
    log_path = os.path.join(log_dir, "kvmock.log")
    model = Model()
    failures, errors = [], []
    kills = 0
    lost = 0
    truncated_total = 0
    t_start = time.time()
    srv = Server(binary, data, log_path)
    try:
        srv.start()
        for cycle in range(args.kills):
            stop = threading.Event()
            model.cycle_versions = []
            threads = [threading.Thread(target=worker,
                                        args=(srv, model, random.Random(rng.random()), w, cycle,
                                              stop, errors), daemon=True)
                       for w in range(args.workers)]
            for t in threads:
                t.start()
            time.sleep(rng.uniform(0.3 * args.seconds, 1.7 * args.seconds))
            kill_time = time.time()
            srv.kill()
            kills += 1
            stop.set()
            t_kill = time.time()
            for t in threads:
                t.join(timeout=60)
            t_join = time.time()
            model.pending_delete.clear()
            early = [t for t in model.truncated if t < kill_time]
            if early:
                failures.append(f"cycle {cycle}: {len(early)} answer(s) cut short "
                                f"{kill_time - min(early):.2f} s before the kill")
            truncated_total += len(model.truncated)
            model.truncated = []
            # deletes in flight may have committed: keys whose delete was not acknowledged
            # may be live or deleted; the checks below accept both for them

            srv.start()  # the LMDB file must open after the kill
            t_up = time.time()
            live, deleted = check_whole(srv, failures, f"after kill {kills}",
                                        (f"c{cycle}-", f"i{cycle}-"))

            def acked_present(cl, nv):
                name, version = nv
                if model.keys[name]["deleted"]:
                    return None if name in deleted else \
                        f"after kill {kills}: acknowledged delete of {name} is not under /deletedkeys"
                st, doc = cl.call("GET", f"/keys/{name}/{version}")
                if st == 404 and name in deleted:
                    return None  # an unacknowledged delete committed before the kill
                return None if st == 200 else \
                    f"after kill {kills}: acknowledged {name}/{version} answers {st}: {doc}"

            bad = parallel(srv, model.cycle_versions, acked_present)
            lost += len(bad)
            failures += bad
            # keys the model thinks live but an unacknowledged delete removed
            for name in list(model.keys):
                if not model.keys[name]["deleted"] and name in deleted and name not in live:
                    model.keys[name]["deleted"] = True
            print(f"kill {kills}: {model.acked} acknowledged so far, {len(model.keys)} keys, "
                  f"lost {lost} (join {t_join - t_kill:.1f} s, restart {t_up - t_join:.1f} s, "
                  f"check {time.time() - t_up:.1f} s)", flush=True)

        # ---- the full check -----------------------------------------------------------
        from cryptography.hazmat.primitives.keywrap import aes_key_wrap

        def recover(cl, name):
            st, doc = cl.call("POST", f"/deletedkeys/{name}/recover")
            return None if st == 200 else \
                f"final: recover of acknowledged deleted key {name}: {st} {doc}"

        deleted_names = [n for n, k in model.keys.items() if k["deleted"]]
        bad = parallel(srv, deleted_names, recover)
        recovered = len(deleted_names) - len(bad)

        def get_version(cl, nv):
            st, doc = cl.call("GET", f"/keys/{nv[0]}/{nv[1]}")
            return None if st == 200 else f"final: acknowledged {nv[0]}/{nv[1]} answers {st}: {doc}"

        def imported(cl, name):
            k = model.keys[name]
            plain = os.urandom(32)
            st, doc = cl.call("POST", f"/keys/{name}/{k['versions'][0]}/unwrapkey",
                              {"alg": "A256KW", "value": b64url(aes_key_wrap(k["k"], plain))})
            return None if st == 200 and unb64url(doc["value"]) == plain else \
                f"final: imported key {name} no longer holds its bytes: {st} {doc}"

        def unwrap(cl, w):
            name, version, alg, plain, wrapped = w
            st, doc = cl.call("POST", f"/keys/{name}/{version}/unwrapkey",
                              {"alg": alg, "value": b64url(wrapped)})
            return None if st == 200 and unb64url(doc["value"]) == plain else \
                f"final: {name}/{version} does not unwrap what it wrapped: {st} {doc}"

        def verify(cl, sg):
            name, version, alg, digest, sig = sg
            st, doc = cl.call("POST", f"/keys/{name}/{version}/verify",
                              {"alg": alg, "digest": b64url(digest), "value": b64url(sig)})
            return None if st == 200 and doc.get("value") is True else \
                f"final: {name}/{version} does not verify its signature: {st} {doc}"

        all_versions = [(n, v) for n, k in model.keys.items() for v in k["versions"]]
        versions_checked = len(all_versions)
        bad += parallel(srv, all_versions, get_version)
        bad += parallel(srv, [n for n, k in model.keys.items() if k["k"] is not None], imported)
        bad += parallel(srv, model.wraps, unwrap)
        bad += parallel(srv, model.sigs, verify)
        lost += len(bad)
        failures += bad
        check_whole(srv, failures, "final")
        srv.kill()
    finally:
        if srv.proc is not None:
            srv.kill()

    # a clean start and stop on the same folder: exit 0, no sanitizer report
    kv = Kvmock(binary, data_dir=data)
    kv.start()
    eq(kv.https("GET", f"/keys?{API}")[0], 200)
    kv.stop()
    with open(log_path, "rb") as f:
        text = f.read().decode(errors="replace")
    marks = [m for m in SANITIZER_MARKS if m in text]
    if marks:
        failures.append(f"sanitizer reports in the killed runs: {marks}\n{tail(log_path, 200)}")
    shutil.rmtree(data, ignore_errors=True)
    shutil.rmtree(log_dir, ignore_errors=True)

    ops = ", ".join(f"{k} {v}" for k, v in sorted(model.by_op.items()))
    print(f"\nseed {seed}; kills {kills}; acknowledged operations {model.acked} ({ops}); "
          f"keys {len(model.keys)}; versions checked {versions_checked}; wraps checked "
          f"{len(model.wraps)}; signatures checked {len(model.sigs)}; deleted keys recovered "
          f"{recovered}; answers cut short by a kill {truncated_total}; lost {lost}; "
          f"{time.time() - t_start:.0f} s", flush=True)
    for e in errors:
        print("ERROR", e, flush=True)
    for f in failures:
        print("FAIL", f, flush=True)
    ok = not failures and not errors and lost == 0 and kills == args.kills
    print("PASS crash consistency" if ok else "FAIL crash consistency", flush=True)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
