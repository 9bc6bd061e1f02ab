"""Soak: mixed traffic (get, wrap, unwrap, create, delete, recover) from several
concurrent clients at a steady rate for a while, with tokens expiring and
being refreshed. Checks: zero unexpected errors, resident memory at the end
within 10% of what it was after warm-up, no growth in open file descriptors.

  soak.py --kvmock build/kvmock [--seconds 600] [--clients 8] [--rate 200]

The test command runs a 60-second version on the sanitizer build, where it
checks errors and file descriptors (AddressSanitizer's allocator decides RSS
there); the full 10-minute run on a release build also holds RSS to +10%.
"""
import argparse
import base64
import json
import os
import random
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import Kvmock  # noqa: E402

API = "api-version=7.4"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rss_kib(pid, field="RssAnon"):
    """Resident KiB: RssAnon is the heap and stacks; RssFile includes the pages of
    the LMDB file (which holds the growing audit log) and shared libraries."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


class Client(threading.Thread):
    def __init__(self, kv, index, stop, rate, stats):
        super().__init__(daemon=True)
        self.kv, self.index, self.stop, self.rate, self.stats = kv, index, stop, rate, stats
        self.token, self.token_at = None, 0.0
        self.rng = random.Random(index)

    def tok(self):
        # tokens are refreshed every 20 s, as SDKs do before expiry
        if self.token is None or time.time() - self.token_at > 20:
            self.token, self.token_at = self.kv.token(), time.time()
            self.stats["token_refreshes"] += 1
        return self.token

    def call(self, method, path, body=None):
        st, _, data = self.kv.https(method, f"{path}?{API}", body, token=self.tok())
        return st, json.loads(data) if data else None

    def expect(self, what, got, want):
        self.stats["requests"] += 1
        if got not in want:
            self.stats["errors"].append(f"client {self.index} {what}: {got}")

    def run(self):
        name = f"soak-{self.index}"
        st, key = self.call("POST", f"/keys/{name}/create", {"kty": "RSA", "key_size": 2048})
        self.expect("create", st, (200,))
        versions = [key["key"]["kid"].rsplit("/", 1)[1]] if st == 200 else []
        wrapped = []
        interval = 1.0 / self.rate
        while not self.stop.is_set():
            t0 = time.time()
            op = self.rng.choice(["get", "get", "wrap", "wrap", "unwrap", "unwrap", "create",
                                  "cycle"])
            try:
                if op == "get":
                    st, _ = self.call("GET", f"/keys/{name}")
                    self.expect("get", st, (200,))
                elif op == "wrap":
                    data = os.urandom(32)
                    st, body = self.call("POST", f"/keys/{name}//wrapkey",
                                         {"alg": "RSA-OAEP-256", "value": b64(data)})
                    self.expect("wrap", st, (200,))
                    if st == 200:
                        wrapped.append((body["kid"].rsplit("/", 1)[1], body["value"], data))
                        wrapped = wrapped[-20:]
                elif op == "unwrap" and wrapped:
                    version, value, data = self.rng.choice(wrapped)
                    st, body = self.call("POST", f"/keys/{name}/{version}/unwrapkey",
                                         {"alg": "RSA-OAEP-256", "value": value})
                    self.expect("unwrap", st, (200,))
                    if st == 200 and base64.urlsafe_b64decode(body["value"] + "==") != data:
                        self.stats["errors"].append(f"client {self.index}: unwrap mismatch")
                elif op == "create":
                    st, body = self.call("POST", f"/keys/{name}-ec/create", {"kty": "EC"})
                    self.expect("create ec", st, (200,))
                elif op == "cycle":
                    # delete, read it as deleted, recover: the key comes back whole
                    st, _ = self.call("DELETE", f"/keys/{name}-ec")
                    self.expect("delete", st, (200, 404))
                    if st == 200:
                        st, _ = self.call("GET", f"/deletedkeys/{name}-ec")
                        self.expect("get deleted", st, (200,))
                        st, _ = self.call("POST", f"/deletedkeys/{name}-ec/recover")
                        self.expect("recover", st, (200,))
            except OSError as e:
                self.stats["errors"].append(f"client {self.index} {op}: {e}")
            time.sleep(max(0.0, interval - (time.time() - t0)))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--kvmock", required=True)
    p.add_argument("--seconds", type=int, default=600)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--rate", type=float, default=25.0, help="requests per second per client")
    p.add_argument("--max-rss-growth", type=float, default=0.10,
                   help="allowed growth of anonymous RSS after warm-up (negative: report only; "
                        "for sanitizer builds, whose allocator decides RSS)")
    a = p.parse_args()
    stats = {"requests": 0, "errors": [], "token_refreshes": 0}
    # Under AddressSanitizer, freed memory waits in a quarantine of up to 256 MB,
    # which would read as growth; a small one keeps the RSS figure meaningful.
    os.environ["ASAN_OPTIONS"] = os.environ.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=4"
    with Kvmock(a.kvmock, extra_args=["--log-level", "warn"]) as kv:
        pid = kv.proc.pid
        stop = threading.Event()
        clients = [Client(kv, i, stop, a.rate, stats) for i in range(a.clients)]
        for c in clients:
            c.start()
        warmup = min(60, a.seconds // 4)
        time.sleep(warmup)
        rss0, fd0, file0 = rss_kib(pid), fd_count(pid), rss_kib(pid, "RssFile")
        time.sleep(a.seconds - warmup)
        stop.set()
        for c in clients:
            c.join(timeout=30)
        time.sleep(1)
        rss1, fd1, file1 = rss_kib(pid), fd_count(pid), rss_kib(pid, "RssFile")
    growth = (rss1 - rss0) / rss0 if rss0 else 0.0
    print(f"soak: {a.seconds} s, {a.clients} clients, {stats['requests']} requests, "
          f"{stats['token_refreshes']} token refreshes, {len(stats['errors'])} unexpected errors")
    print(f"soak: anonymous RSS after warm-up {rss0} KiB, at the end {rss1} KiB ({growth:+.1%}); "
          f"file-backed RSS {file0} -> {file1} KiB (LMDB pages, audit log included); "
          f"open fds {fd0} -> {fd1}")
    for e in stats["errors"][:20]:
        print("  error:", e)
    rss_ok = a.max_rss_growth < 0 or growth <= a.max_rss_growth
    ok = not stats["errors"] and rss_ok and fd1 <= fd0 and stats["requests"] > 0
    print("PASS soak" if ok else "FAIL soak")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
