"""Resource faults: an unusable data folder or a corrupt store gives a clear
start-up error and a non-zero exit, never a crash; a tiny LMDB map that
fills up under concurrent writes grows, and every acknowledged write is there."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, free_port, parse_args  # noqa: E402

CRASH_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:", "Segmentation fault")


def start_fails(binary, data_dir, want):
    """kvmock must refuse to start with a message containing `want`."""
    proc = subprocess.run([binary, "--data", data_dir, "--https-port", str(free_port()),
                           "--http-port", str(free_port())],
                          capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    check(proc.returncode not in (0,) and proc.returncode > 0,
          f"exit code {proc.returncode} (a signal is negative)\n{out}")
    check("kvmock ready" not in out, out)
    check(want in out, f"{want!r} not in:\n{out}")
    for mark in CRASH_MARKS:
        check(mark not in out, out)


def main():
    args = parse_args()
    runner = Runner()
    work = tempfile.mkdtemp(prefix="kvmock-faults-")

    @runner.test
    def data_folder_cannot_be_created():
        blocker = os.path.join(work, "a-file")
        with open(blocker, "w") as f:
            f.write("not a folder")
        start_fails(args.kvmock, os.path.join(blocker, "data"), "cannot create the data folder")

    @runner.test
    def corrupt_store():
        data = os.path.join(work, "corrupt")
        os.makedirs(data)
        with open(os.path.join(data, "kvmock.mdb"), "wb") as f:
            f.write(os.urandom(64 * 1024))
        start_fails(args.kvmock, data, "cannot open LMDB environment")

    @runner.test
    def config_that_turns_purge_protection_off_is_refused():
        data = os.path.join(work, "pp")
        cfg = os.path.join(work, "pp.json")
        with open(cfg, "w") as f:
            json.dump({"vaults": [{"name": "v", "properties": {"enablePurgeProtection": True}}]}, f)
        with Kvmock(args.kvmock, data_dir=data, config=cfg):
            pass
        with open(cfg, "w") as f:
            json.dump({"vaults": [{"name": "v", "properties": {"enablePurgeProtection": False}}]}, f)
        proc = subprocess.run([args.kvmock, "--data", data, "--config", cfg,
                               "--https-port", str(free_port()), "--http-port", str(free_port())],
                              capture_output=True, text=True, timeout=60)
        check(proc.returncode > 0, proc.stderr)
        check("cannot be turned off" in proc.stderr, proc.stderr)

    @runner.test
    def tiny_map_grows_under_concurrent_writes():
        with Kvmock(args.kvmock, extra_args=["--map-size", "1", "--log-level", "warn"]) as kv:
            acked, errors = [], []

            def writer(i):
                tok = kv.token()
                for j in range(60):
                    body = {"kty": "oct", "key_size": 256,
                            "tags": {f"t{n}": "x" * 200 for n in range(10)}}
                    st, _, resp = kv.https("POST", f"/keys/w{i}-{j}/create?api-version=7.4", body,
                                           token=tok)
                    if st == 200:
                        acked.append(json.loads(resp)["key"]["kid"])
                    else:
                        errors.append((st, resp[:200]))

            threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            eq(errors, [], "every write succeeds")
            eq(len(acked), 240)
            st, _, body = kv.http("GET", "/metrics")
            size = [l for l in body.decode().splitlines() if l.startswith("kvmock_lmdb_map_size_bytes")]
            check(int(size[0].split()[-1]) > 1 << 20, f"the map grew: {size}")
            kv.restart()
            tok = kv.token()
            for kid in acked:
                path = kid.split(str(kv.https_port), 1)[1]
                st, _, _ = kv.https("GET", f"{path}?api-version=7.4", token=tok)
                eq(st, 200, kid)

    runner.run_collected()
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
