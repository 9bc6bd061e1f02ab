"""Shared harness of the Python end-to-end tests.

Starts a kvmock binary on free ports with a temporary data folder, talks to it
over raw HTTP(S), and stops it with SIGTERM, insisting on exit code 0 and on a
log free of sanitizer reports (AddressSanitizer, LeakSanitizer, UBSan's
"runtime error:"). Standard library only; run with /usr/bin/python3.

    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock) as kv:
        @runner.test
        def something():
            st, hdrs, body = kv.https("GET", "/keys?api-version=7.4")
            eq(st, 200, "list keys")
        runner.run_collected()
    sys.exit(runner.exit_code())

(or `runner.run()`, which runs the collected tests and exits 1 if any failed.)
"""
import argparse
import atexit
import base64
import errno
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
import time
import traceback
import urllib.parse

SANITIZER_MARKS = ("AddressSanitizer", "LeakSanitizer", "runtime error:")

# The tenant of the tests' configuration files, and their default identity, which
# may manage: {"tenantId": TENANT, "identities": [APP, ...]}.
TENANT = "6b766d6f-636b-4000-8000-000000000001"
APP = {"name": "app", "objectId": "0a000000-0000-4000-8000-0000000000a1",
       "clientId": "0c000000-0000-4000-8000-0000000000a1", "default": True, "manage": True}
READY_PREFIX = "kvmock ready"
BIND_FAILURE_MARKS = ("Address already in use", "cannot start the server on ports")

# Every server this process started and has not stopped yet: killed at exit so
# that a crashing test never leaves a kvmock behind. Log folders of servers
# that stopped cleanly are removed at exit too (a failure keeps its log).
_LIVE = set()
_INSTANCES = []


@atexit.register
def _kill_leftovers():
    for proc in list(_LIVE):
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _LIVE.clear()
    for kv in _INSTANCES:
        if kv.proc is None and kv.own_dir:
            shutil.rmtree(kv.data_dir, ignore_errors=True)
        if kv.proc is None and not kv._failed:
            shutil.rmtree(kv._log_dir, ignore_errors=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser()
    p.add_argument("--kvmock", required=True, help="path to the kvmock binary")
    return p.parse_args()


def _ephemeral_low() -> int:
    """The first port the kernel hands out to connect() and bind(0)."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range", encoding="ascii") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _bindable(port) -> bool:
    """Whether a listener could take @port on 127.0.0.1 and ::1 (kvmock binds both)."""
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            with socket.socket(family, socket.SOCK_STREAM) as s:
                s.bind((host, port))
        except OSError as e:
            if family == socket.AF_INET6 and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue  # no IPv6 loopback here
            return False
    return True


def free_port() -> int:
    """A port free on both loopbacks, below the kernel's ephemeral range. A port from
    bind(0) is an ephemeral one: while kvmock is down for a restart on the same ports,
    any outgoing connection on the machine (another test's, under ctest -j) may take it
    as its local port, and the restart then fails to bind."""
    low = _ephemeral_low()
    first = 10000 if low > 12000 else 1024
    for _ in range(500):
        port = random.randrange(first, max(low, first + 1))
        if _bindable(port):
            return port
    raise RuntimeError(f"no free port in {first}..{low - 1}")


# The claim that also names the caller's object id in a management call's audit record,
# as Resource Manager's records name it; every record says "oid", as the token does.
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"


def caller_oid(record):
    """The object id of an audit record's caller, data plane or management."""
    return record["identity"]["claim"]["oid"]


def write(path, data):
    """Write text or bytes to @path, its folders made; returns @path."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return path


def start_refused(binary, work, name, config, wants, files=None, secrets=()):
    """kvmock refuses configuration @config at start (in @work/refused/@name, with @files
    beside it): a non-zero exit (not a signal), no ready line, a message holding every one
    of @wants and none of @secrets, and no sanitizer report (a leak on the refusal's path
    would be one). Returns the output."""
    folder = os.path.join(work, "refused", name)
    for rel, data in (files or {}).items():
        write(os.path.join(folder, rel), data)
    cfg = write(os.path.join(folder, "config.json"), json.dumps(config))
    proc = subprocess.run([binary, "--data", os.path.join(folder, "data"), "--config", cfg,
                           "--https-port", str(free_port()), "--http-port", str(free_port())],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    out = proc.stdout + proc.stderr
    check(proc.returncode > 0, f"{name}: exit code {proc.returncode} (a signal is negative)\n{out}")
    check(READY_PREFIX not in out, f"{name}: {out}")
    for want in wants:
        check(want in out, f"{name}: {want!r} not in:\n{out}")
    for mark in SANITIZER_MARKS:
        check(mark not in out, f"{name}: {out}")
    for secret in secrets:
        check(secret not in out, f"{name}: a secret is in the output")
    return out


# A script that runs Debian's az on each command of a JSON list (argv[1]), all in one Python
# process, as /usr/bin/az (azure.cli.__main__) runs one: AzCli.invoke, without telemetry. One
# process spares each command az's start (about a second). Prints [[exit code, what az
# printed], ...] on its last line.
AZ_IN_ONE_PROCESS = """
import io, json, sys
from azure.cli.core import get_default_cli
results = []
for argv in json.loads(sys.argv[1]):
    out = io.StringIO()
    try:
        code = get_default_cli().invoke(argv + ["--output", "json"], out_file=out)
    except SystemExit as e:
        code = 1 if e.code is None else e.code
    results.append([code, out.getvalue()])
print()
print(json.dumps(results))
"""


# Managed HSM's token audience, and the prefix of its data actions
HSM_AUD = "https://managedhsm.azure.net"
HSM_ACTION = "Microsoft.KeyVault/managedHsm/"


def az_hsm_view(item, group):
    """A managed HSM as Debian's az shows it, as Resource Manager answers it: without az's
    resourceGroup (which must be @group) and its SDK's empty fields, its times as Resource
    Manager writes them."""
    item = dict(item)
    eq(item.pop("resourceGroup"), group, item)
    item["properties"] = {k: v for k, v in item["properties"].items() if v is not None}
    item["systemData"] = {k: v.replace("+00:00", "Z")
                          for k, v in item["systemData"].items() if v is not None}
    return item


def hsm_access_denied(got, action, scope, what=""):
    """Managed HSM's refusal by its local RBAC, whole: @got is (status, headers, parsed body)
    of a call refused @action (after HSM_ACTION) on @scope."""
    st, hdrs, body = got
    eq(st, 403, (what, body))
    eq(body, {"error": {"code": "AccessDenied", "message":
                        f"Not authorized to access {HSM_ACTION}{action} on {scope} "
                        f"(Activity ID: {hdrs['x-ms-request-id']})"}}, what)


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError(f"{msg}: {a!r} != {b!r}" if msg else f"{a!r} != {b!r}")


def b64url(data):
    """Bytes as Key Vault's JSON carries them: unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    """The bytes of an unpadded (or padded) base64url string."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def int_bytes(n, size=None):
    """An integer as big-endian bytes, minimal or left-padded to @size."""
    return n.to_bytes(size or (n.bit_length() + 7) // 8, "big")


class Kvmock:
    """One kvmock server. A context manager: start() on enter, stop() on exit
    (the data folder is removed on that final stop if the harness created it)."""

    def __init__(self, binary, data_dir=None, config=None, extra_args=()):
        """config: a configuration file's path, or the configuration as a dict."""
        self.binary = os.path.abspath(binary)
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kvmock-e2e-")
        self.extra_args = [str(a) for a in extra_args]
        self.https_port = None
        self.http_port = None
        self.identity_header = "kvmock"
        self.ready_line = None
        self.proc = None
        self._log_dir = tempfile.mkdtemp(prefix="kvmock-log-")
        # config: a path, or a dict written as JSON next to the log (removed with it)
        if isinstance(config, dict):
            path = os.path.join(self._log_dir, "config.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(config, f)
            config = path
        self.config = config
        self.log_path = os.path.join(self._log_dir, "kvmock.log")
        self._log_start = 0  # offset in the log where the current run begins
        self._failed = False
        _INSTANCES.append(self)

    @property
    def ca_path(self):
        return os.path.join(self.data_dir, "tls", "ca.pem")

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self._cleanup(keep_log=True)
            raise
        return self

    def __exit__(self, *exc):
        self.stop(final=True)
        return False

    # ---- process -------------------------------------------------------------------------

    def start(self, timeout=30):
        """Start on free ports (the same ones again after a stop), wait for the
        ready line on stdout and for /healthz, raise with the log tail if not."""
        if self.proc is not None:
            raise RuntimeError("kvmock is already running")
        fixed = self.https_port is not None
        for attempt in range(3):
            if not fixed:
                self.https_port = free_port()
                self.http_port = free_port()
                while self.http_port == self.https_port:
                    self.http_port = free_port()
            try:
                self._start_once(timeout)
                return
            except _BindFailure:
                if fixed or attempt == 2:
                    raise RuntimeError("kvmock could not bind its ports\n" + self.log_tail())
                self.https_port = self.http_port = None

    def _start_once(self, timeout):
        cmd = [self.binary, "--data", self.data_dir, "--https-port", str(self.https_port),
               "--http-port", str(self.http_port)]
        if self.config:
            cmd += ["--config", self.config]
        cmd += self.extra_args
        env = dict(os.environ)
        for k in ("KVMOCK_DATA", "KVMOCK_HTTPS_PORT", "KVMOCK_HTTP_PORT", "KVMOCK_CONFIG",
                  "KVMOCK_HOSTNAMES"):
            env.pop(k, None)
        with open(self.log_path, "ab") as log:
            self._log_start = log.tell()
            log.write(f"==== {' '.join(cmd)}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         env=env)
        _LIVE.add(self.proc)
        deadline = time.time() + timeout
        try:
            self.ready_line = self._wait_ready(deadline)
            for field in self.ready_line.split():
                if field.startswith("identity-header="):
                    self.identity_header = field.split("=", 1)[1]
            while True:
                try:
                    if self.http("GET", "/healthz", timeout=5)[0] == 200:
                        return
                except OSError:
                    pass
                if self.proc.poll() is not None:
                    raise RuntimeError(f"kvmock exited with {self.proc.returncode} after its "
                                       f"ready line\n{self.log_tail()}")
                if time.time() > deadline:
                    raise RuntimeError("kvmock /healthz did not answer 200\n" + self.log_tail())
                time.sleep(0.05)
        except BaseException:
            self._kill()
            raise

    def _wait_ready(self, deadline):
        while True:
            for line in self.run_log().splitlines():
                if line.startswith(READY_PREFIX):
                    return line.strip()
            rc = self.proc.poll()
            if rc is not None:
                text = self.run_log()
                if any(m in text for m in BIND_FAILURE_MARKS):
                    raise _BindFailure()
                raise RuntimeError(f"kvmock exited with {rc} before its ready line\n"
                                   + self.log_tail())
            if time.time() > deadline:
                raise RuntimeError("kvmock printed no ready line in time\n" + self.log_tail())
            time.sleep(0.05)

    def run_log(self):
        """The log of the current (or last) run only."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self._log_start)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_tail(self, n=60):
        lines = self.run_log().splitlines()[-n:]
        return f"---- last {len(lines)} lines of {self.log_path}\n" + "\n".join(lines)

    def _kill(self):
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            _LIVE.discard(self.proc)
            self.proc = None

    def stop(self, final=False, timeout=20):
        """SIGTERM and wait; raise AssertionError if the exit code is not 0 or the
        log holds a sanitizer report. final=True also removes what we created."""
        try:
            if self.proc is None:
                return
            proc = self.proc
            proc.send_signal(signal.SIGTERM)
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill()
                self._failed = True
                raise AssertionError(f"kvmock did not stop within {timeout} s of SIGTERM\n"
                                     + self.log_tail(200))
            _LIVE.discard(proc)
            self.proc = None
            text = self.run_log()
            marks = [m for m in SANITIZER_MARKS if m in text]
            if rc != 0 or marks:
                self._failed = True
                print(self.log_tail(200), flush=True)
                raise AssertionError(f"kvmock exited with {rc}, sanitizer reports {marks} "
                                     f"(log tail above, whole log in {self.log_path})")
        finally:
            if final:
                self._cleanup(keep_log=self._failed)

    def _cleanup(self, keep_log):
        self._kill()
        if self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if keep_log:
            print(f"kvmock log kept in {self.log_path}", flush=True)
        else:
            shutil.rmtree(self._log_dir, ignore_errors=True)

    def restart(self):
        """Stop, then start again on the same ports and data folder."""
        self.stop()
        self.start()

    # ---- tokens and URLs -------------------------------------------------------------

    def token(self, resource="https://vault.azure.net", client_id=None) -> str:
        q = {"api-version": "2019-08-01", "resource": resource}
        if client_id:
            q["client_id"] = client_id
        st, _, body = self.http("GET", "/msi/token?" + urllib.parse.urlencode(q),
                                headers={"X-IDENTITY-HEADER": self.identity_header})
        if st != 200:
            raise AssertionError(f"token endpoint answered {st}: {body!r}")
        return json.loads(body)["access_token"]

    def vault_url(self, vault="default") -> str:
        return f"https://{vault}.vault.localhost:{self.https_port}"

    def localhost_url(self) -> str:
        return f"https://localhost:{self.https_port}"

    def advance_clock(self, seconds) -> int:
        st, _, body = self.http("POST", "/admin/clock", {"advanceSeconds": seconds})
        if st != 200:
            raise AssertionError(f"/admin/clock answered {st}: {body!r}")
        return json.loads(body)["now"]

    def audit_records(self, page=1000) -> list:
        """Every audit record, oldest first, through GET /admin/audit (all pages;
        the server commits its queued records before it reads)."""
        records, path = [], f"/admin/audit?maxresults={page}"
        while path:
            st, _, body = self.http("GET", path)
            if st != 200:
                raise AssertionError(f"/admin/audit answered {st}: {body!r}")
            doc = json.loads(body)
            records += doc["value"]
            link = doc["nextLink"]
            path = link[link.index("/admin"):] if link else None
        return records

    def sdk_env(self) -> dict:
        return {
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.http_port}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": self.ca_path,
            "SSL_CERT_FILE": self.ca_path,
        }

    def apply_env(self):
        """Point the Azure SDKs of this process at this server (managed identity
        and CA), and drop variables that would send the credential elsewhere."""
        for k in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                  "AZURE_POD_IDENTITY_AUTHORITY_HOST", "AZURE_FEDERATED_TOKEN_FILE",
                  "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                  "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_USERNAME", "AZURE_PASSWORD",
                  "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy",
                  "ALL_PROXY", "all_proxy"):
            os.environ.pop(k, None)
        os.environ["NO_PROXY"] = "*"
        os.environ.update(self.sdk_env())

    def az_env(self, config_dir) -> dict:
        """The environment for Debian's az against this server: its cloud's metadata from
        kvmock, Cloud Shell's managed identity (MSI_ENDPOINT), the CA, its own config
        folder, and none of this process's Azure or proxy variables."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "ARM_"))
               and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
        env.update({
            "AZURE_CONFIG_DIR": config_dir,
            "ARM_CLOUD_METADATA_URL":
                f"https://localhost:{self.https_port}/metadata/endpoints?api-version=2022-09-01",
            "MSI_ENDPOINT": f"http://127.0.0.1:{self.http_port}/msi/token",
            "MSI_SECRET": self.identity_header,
            "REQUESTS_CA_BUNDLE": self.ca_path,
            "SSL_CERT_FILE": self.ca_path,
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_CORE_NO_COLOR": "true",
            "NO_PROXY": "*",
        })
        return env

    # ---- raw HTTP ------------------------------------------------------------------------

    @staticmethod
    def _encode(body, headers):
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        if isinstance(body, str):
            return body.encode()
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        return json.dumps(body).encode()

    @staticmethod
    def _exchange(conn, method, path, data, headers):
        """Send exactly the given headers (plus Content-Length unless they frame the
        body), return
        (status, {lowercase header: value}, body bytes)."""
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if any(k.lower() in ("content-length", "transfer-encoding") for k in headers):
                pass  # the caller frames the body (twice is a bad request)
            elif data is not None:
                conn.putheader("Content-Length", str(len(data)))
            elif method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", "0")
            conn.endheaders(data)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
        finally:
            conn.close()

    def ssl_context(self):
        return ssl.create_default_context(cafile=self.ca_path)

    def https(self, method, path, body=None, headers=None, host=None, token=True, timeout=60,
              addr="127.0.0.1"):
        """Raw HTTPS, certificate verification on (trusting ca_path), connected to
        `addr` (default 127.0.0.1; "::1" for IPv6) with Host and SNI from `host`
        (default localhost:{https_port}).
        token: True = a fresh default token, a str = that token, None = no header."""
        headers = dict(headers or {})
        host = host or f"localhost:{self.https_port}"
        if not any(k.lower() == "host" for k in headers):
            headers["Host"] = host
        if token is True:
            token = self.token()
        if token:
            headers["Authorization"] = "Bearer " + token
        data = self._encode(body, headers)
        ctx = self.ssl_context()
        name = host[1:host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        port = self.https_port

        class Conn(http.client.HTTPSConnection):
            def connect(inner):
                sock = socket.create_connection((addr, port), timeout=timeout)
                inner.sock = ctx.wrap_socket(sock, server_hostname=name)

        return self._exchange(Conn("127.0.0.1", port, context=ctx, timeout=timeout),
                              method, path, data, headers)

    def az_in_one_process(self, commands):
        """Debian's az on each of @commands (argument lists) in one Python process
        (AZ_IN_ONE_PROCESS), against this server, with a config folder of its own that is
        removed after: (exit codes, each command's JSON output parsed or None, az's
        stderr)."""
        config_dir = tempfile.mkdtemp(prefix="kvmock-az-")
        try:
            env = dict(self.az_env(config_dir), AZ_INSTALLER="DEB")  # as /usr/bin/az sets it
            proc = subprocess.run([sys.executable, "-c", AZ_IN_ONE_PROCESS,
                                   json.dumps(commands)], env=env, stdin=subprocess.DEVNULL,
                                  capture_output=True, text=True, timeout=300)
        finally:
            shutil.rmtree(config_dir, ignore_errors=True)
        eq(proc.returncode, 0, proc.stderr[-3000:])
        results = json.loads(proc.stdout.splitlines()[-1])
        return ([r[0] for r in results],
                [json.loads(r[1]) if r[1].strip() else None for r in results], proc.stderr)

    def hsm_call(self, method, path, body=None, *, name, client_id, api="7.4"):
        """A call on Managed HSM @name's host with a managed identity's token for it (the
        identity of @client_id): (status, headers, parsed body or None)."""
        sep = "&" if "?" in path else "?"
        st, hdrs, resp = self.https(method, f"{path}{sep}api-version={api}", body,
                                    token=self.token(HSM_AUD, client_id=client_id),
                                    host=f"{name}.managedhsm.localhost:{self.https_port}")
        return st, hdrs, (json.loads(resp) if resp else None)

    def http(self, method, path, body=None, headers=None, timeout=60):
        """Raw plain HTTP to 127.0.0.1:{http_port}."""
        headers = dict(headers or {})
        if not any(k.lower() == "host" for k in headers):
            headers["Host"] = f"127.0.0.1:{self.http_port}"
        data = self._encode(body, headers)
        return self._exchange(http.client.HTTPConnection("127.0.0.1", self.http_port,
                                                         timeout=timeout),
                              method, path, data, headers)


class _BindFailure(Exception):
    pass


class Runner:
    """A tiny runner: collect tests with @runner.test (or pass a list to run),
    run them in order, print PASS/FAIL per test with the traceback."""

    def __init__(self):
        self.tests = []
        self.failed = []
        self.ran = 0

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run_tests(self, tests):
        for fn in tests:
            self.ran += 1
            t0 = time.time()
            try:
                fn()
                print(f"PASS {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:  # noqa: BLE001 - report every failure and go on
                self.failed.append(fn.__name__)
                print(f"FAIL {fn.__name__}", flush=True)
                traceback.print_exc(file=sys.stdout)
                sys.stdout.flush()

    def run(self, tests=None, exit=True):
        """Run `tests` (default: the collected ones); then exit 1 if any failed
        (or none ran), 0 otherwise. exit=False only returns that code."""
        self.run_tests(self.tests if tests is None else tests)
        code = self.exit_code()
        if exit:
            sys.exit(code)
        return code

    def run_collected(self):
        """Run the collected tests without exiting; call exit_code() later."""
        self.run_tests(self.tests)

    def exit_code(self):
        print(f"{self.ran - len(self.failed)}/{self.ran} passed"
              + (f"; failed: {', '.join(self.failed)}" if self.failed else ""), flush=True)
        return 1 if self.failed or self.ran == 0 else 0
