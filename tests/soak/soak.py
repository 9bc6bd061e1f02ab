"""Soak: mixed traffic (get, wrap, unwrap, create, delete, recover, purge) from
several concurrent clients at a steady rate for a while, with tokens expiring
and being refreshed. Checks: zero unexpected errors, no growth in open file
descriptors, and no growth of anonymous memory once the run is steady.

  soak.py --kvmock build/kvmock [--seconds 600] [--clients 8] [--rate 25]

The memory check separates a leak from bounded structures filling (memos, the
parsed-key cache, worker threads started on demand, the allocator's arenas),
which can take minutes at this rate: after a warm-up of a quarter of the run,
anonymous RSS is sampled every few seconds, and the median of the last third
of the samples may exceed the median of the first third by at most
--max-rss-growth (10 %). A leak grows for the whole run and shows between the two;
a cache that is full by the first third does not. The data stay bounded too:
each client purges its EC key after 32 versions and starts it again.

The test command runs a 60-second version on the sanitizer build, where it
checks errors and file descriptors (AddressSanitizer's allocator decides RSS
there); the full 10-minute run on a release build also checks memory.
"""
import argparse
import base64
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import Kvmock  # noqa: E402

API = "api-version=7.4"
EC_VERSIONS = 32  # a client purges its EC key after this many versions
SAMPLE_EVERY = 5  # seconds between memory samples


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def rss_kib(pid, field="RssAnon"):
    """Resident KiB: RssAnon is the heap and stacks; RssFile includes the pages of
    the LMDB file (which holds the growing audit log) and shared libraries.
    (Any number field of /proc/PID/status: "Threads" too.)"""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def audit_queue_kib(kv):
    """What the audit writer's queues hold (KiB), from /metrics: beside RSS, so
    that growth can be told apart from the queues making room after a slow commit."""
    st, _, body = kv.http("GET", "/metrics")
    for line in body.decode().splitlines() if st == 200 else []:
        if line.startswith("kvmock_audit_queue_bytes "):
            return int(line.split()[1]) // 1024
    return -1


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
        st, _ = self.call("POST", f"/keys/{name}/create", {"kty": "RSA", "key_size": 2048})
        self.expect("create", st, (200,))
        wrapped = []
        ec_versions = 0
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
                    if ec_versions >= EC_VERSIONS:
                        # delete and purge: all versions go, and the name is free again
                        st, _ = self.call("DELETE", f"/keys/{name}-ec")
                        self.expect("delete before purge", st, (200,))
                        st, _ = self.call("DELETE", f"/deletedkeys/{name}-ec")
                        self.expect("purge", st, (204,))
                        st, _ = self.call("GET", f"/keys/{name}-ec")
                        self.expect("get purged", st, (404,))
                        ec_versions = 0
                    st, body = self.call("POST", f"/keys/{name}-ec/create", {"kty": "EC"})
                    self.expect("create ec", st, (200,))
                    ec_versions += st == 200
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
                   help="allowed growth of anonymous RSS from the first third of the samples "
                        "after warm-up to the last third (negative: report only; for sanitizer "
                        "builds, whose allocator decides RSS)")
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
        start = time.time()
        time.sleep(a.seconds / 4)
        fd0, file0 = fd_count(pid), rss_kib(pid, "RssFile")
        samples, threads, queues = [], [], []
        while time.time() - start < a.seconds:
            samples.append(rss_kib(pid))
            threads.append(rss_kib(pid, "Threads"))
            queues.append(audit_queue_kib(kv))
            time.sleep(min(SAMPLE_EVERY, max(0.0, a.seconds - (time.time() - start))))
        stop.set()
        for c in clients:
            c.join(timeout=30)
        time.sleep(1)
        fd1, file1 = fd_count(pid), rss_kib(pid, "RssFile")
    third = max(1, len(samples) // 3)
    first, last = statistics.median(samples[:third]), statistics.median(samples[-third:])
    growth = (last - first) / first if first else 0.0
    print(f"soak: {a.seconds} s, {a.clients} clients, {stats['requests']} requests, "
          f"{stats['token_refreshes']} token refreshes, {len(stats['errors'])} unexpected errors")
    print(f"soak: anonymous RSS after warm-up, {len(samples)} samples every {SAMPLE_EVERY} s: "
          f"{min(samples)}..{max(samples)} KiB; median of the first third {first:.0f} KiB, "
          f"of the last third {last:.0f} KiB ({growth:+.1%}); "
          f"file-backed RSS {file0} -> {file1} KiB (LMDB pages, audit log included); "
          f"open fds {fd0} -> {fd1}")
    print(f"soak: beside those samples, threads {threads[0]} -> {threads[-1]} "
          f"({min(threads)}..{max(threads)}), audit queues {queues[0]} -> {queues[-1]} KiB "
          f"({min(queues)}..{max(queues)})")
    for e in stats["errors"][:20]:
        print("  error:", e)
    rss_ok = a.max_rss_growth < 0 or growth <= a.max_rss_growth
    ok = not stats["errors"] and rss_ok and fd1 <= fd0 and stats["requests"] > 0
    print("PASS soak" if ok else "FAIL soak")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
