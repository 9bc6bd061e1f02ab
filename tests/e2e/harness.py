"""Shared harness of the Python end-to-end tests: start build/kvmock on free
ports with a temporary data folder, talk to it over raw HTTP(S), stop it with
SIGTERM and insist on a clean exit with no sanitizer report."""
import argparse
import http.client
import json
import os
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


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--kvmock", required=True, help="path to the kvmock binary")
    return p.parse_args()


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check(cond, msg="check failed"):
    if not cond:
        raise AssertionError(msg)


def eq(a, b, msg=""):
    if a != b:
        raise AssertionError(f"{msg}: {a!r} != {b!r}" if msg else f"{a!r} != {b!r}")


class Kvmock:
    def __init__(self, binary, data_dir=None, config=None, extra_args=()):
        self.binary = os.path.abspath(binary)
        self.own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="kvmock-e2e-")
        self.config = config
        self.extra_args = list(extra_args)
        self.https_port = None
        self.http_port = None
        self.identity_header = "kvmock"
        self.ready_line = None
        self.proc = None
        self.log_path = os.path.join(tempfile.mkdtemp(prefix="kvmock-log-"), "kvmock.log")

    @property
    def ca_path(self):
        return os.path.join(self.data_dir, "tls", "ca.pem")

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop(final=True)
        return False

    def start(self, timeout=60):
        if self.https_port is None:
            self.https_port, self.http_port = free_port(), free_port()
            while self.http_port == self.https_port:
                self.http_port = free_port()
        cmd = [self.binary, "--data", self.data_dir, "--https-port", str(self.https_port),
               "--http-port", str(self.http_port)]
        if self.config:
            cmd += ["--config", self.config]
        cmd += self.extra_args
        self.log = open(self.log_path, "ab")
        env = dict(os.environ)
        for k in ("KVMOCK_DATA", "KVMOCK_HTTPS_PORT", "KVMOCK_HTTP_PORT", "KVMOCK_CONFIG",
                  "KVMOCK_HOSTNAMES"):
            env.pop(k, None)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self.log, env=env)
        deadline = time.time() + timeout
        line = self.proc.stdout.readline().decode(errors="replace")
        if not line.startswith("kvmock ready"):
            self.proc.wait(timeout=10)
            raise RuntimeError(f"kvmock did not start (exit {self.proc.returncode}): "
                               f"{line!r}\n{self.log_tail()}")
        self.ready_line = line.strip()
        while time.time() < deadline:
            try:
                st, _, _ = self.http("GET", "/healthz")
                if st == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError("kvmock /healthz did not answer\n" + self.log_tail())

    def log_tail(self, n=60):
        try:
            with open(self.log_path, "rb") as f:
                return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, final=False):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("kvmock did not stop within 30 s of SIGTERM\n" + self.log_tail())
            finally:
                self.proc.stdout.close()
                self.log.close()
                self.proc = None
            with open(self.log_path, "rb") as f:
                text = f.read().decode(errors="replace")
            marks = [m for m in SANITIZER_MARKS if m in text]
            if rc != 0 or marks:
                raise AssertionError(f"kvmock exited with {rc}, sanitizer reports {marks}\n"
                                     + self.log_tail(200))
        if final and self.own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self):
        self.stop()
        self.start()

    # ---- tokens and URLs -------------------------------------------------------------

    def token(self, resource="https://vault.azure.net", client_id=None):
        q = {"api-version": "2019-08-01", "resource": resource}
        if client_id:
            q["client_id"] = client_id
        st, _, body = self.http("GET", "/msi/token?" + urllib.parse.urlencode(q),
                                headers={"X-IDENTITY-HEADER": self.identity_header})
        if st != 200:
            raise AssertionError(f"token endpoint answered {st}: {body!r}")
        return json.loads(body)["access_token"]

    def vault_url(self, vault="default"):
        return f"https://{vault}.vault.localhost:{self.https_port}"

    def localhost_url(self):
        return f"https://localhost:{self.https_port}"

    def advance_clock(self, seconds):
        st, _, body = self.http("POST", "/admin/clock", {"advanceSeconds": seconds})
        if st != 200:
            raise AssertionError(f"/admin/clock answered {st}: {body!r}")
        return json.loads(body)["now"]

    def sdk_env(self):
        return {
            "IDENTITY_ENDPOINT": f"http://127.0.0.1:{self.http_port}/msi/token",
            "IDENTITY_HEADER": self.identity_header,
            "REQUESTS_CA_BUNDLE": self.ca_path,
            "SSL_CERT_FILE": self.ca_path,
        }

    def apply_env(self):
        for k in ("MSI_ENDPOINT", "MSI_SECRET", "IDENTITY_SERVER_THUMBPRINT", "IMDS_ENDPOINT",
                  "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET", "AZURE_TENANT_ID",
                  "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
            os.environ.pop(k, None)
        os.environ["NO_PROXY"] = "*"
        os.environ.update(self.sdk_env())

    # ---- raw HTTP ------------------------------------------------------------------------

    @staticmethod
    def _encode(body, headers):
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray)):
            return bytes(body)
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(body).encode()

    @staticmethod
    def _exchange(conn, method, path, data, headers):
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
        finally:
            conn.close()

    def https(self, method, path, body=None, headers=None, host=None, token=True):
        """Raw HTTPS with verification on, connected to 127.0.0.1 with the given Host."""
        headers = dict(headers or {})
        host = host or f"localhost:{self.https_port}"
        headers["Host"] = host
        if token is True:
            token = self.token()
        if token:
            headers["Authorization"] = "Bearer " + token
        data = self._encode(body, headers)
        ctx = ssl.create_default_context(cafile=self.ca_path)
        name = host[1:host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]

        class Conn(http.client.HTTPSConnection):
            def connect(inner):
                sock = socket.create_connection(("127.0.0.1", self.https_port), timeout=60)
                inner.sock = ctx.wrap_socket(sock, server_hostname=name)

        conn = Conn("127.0.0.1", self.https_port, context=ctx, timeout=60)
        return self._exchange_with_host(conn, method, path, data, headers)

    def _exchange_with_host(self, conn, method, path, data, headers):
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            for k, v in headers.items():
                conn.putheader(k, v)
            if data is not None:
                conn.putheader("Content-Length", str(len(data)))
            elif method in ("POST", "PUT", "PATCH"):
                conn.putheader("Content-Length", "0")
            conn.endheaders(data)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
        finally:
            conn.close()

    def http(self, method, path, body=None, headers=None):
        headers = dict(headers or {})
        data = self._encode(body, headers)
        conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=60)
        return self._exchange(conn, method, path, data, headers)


class Runner:
    """A tiny runner: collect tests with @runner.test, run them in order, report."""

    def __init__(self):
        self.tests = []
        self.failed = []
        self.ran = 0

    def test(self, fn):
        self.tests.append(fn)
        return fn

    def run(self, tests):
        for fn in tests:
            self.ran += 1
            t0 = time.time()
            try:
                fn()
                print(f"PASS {fn.__name__} ({time.time() - t0:.1f}s)", flush=True)
            except Exception:  # noqa: BLE001 - report every failure and go on
                self.failed.append(fn.__name__)
                print(f"FAIL {fn.__name__}", flush=True)
                traceback.print_exc()
                sys.stdout.flush()

    def run_collected(self):
        self.run(self.tests)

    def exit_code(self):
        print(f"{self.ran - len(self.failed)}/{self.ran} passed"
              + (f"; failed: {', '.join(self.failed)}" if self.failed else ""), flush=True)
        return 1 if self.failed or self.ran == 0 else 0
