"""kvmock in a container, seen from the host through mapped ports.

Run by scripts/docker-test.sh with Debian's Python and SDK (/usr/bin/python3,
python3-azure), against a container started with ports that differ from the
container's own (e.g. -p 28443:8443 -p 28080:8080):

  test_container.py smoke   --https-port P --http-port Q --ca CA [--hostname NAME]...
  test_container.py persist-put   --https-port P --http-port Q --ca CA --state FILE
  test_container.py persist-check --https-port P --http-port Q --ca CA --state FILE

The environment carries what an application would set for
DefaultAzureCredential: IDENTITY_ENDPOINT=http://127.0.0.1:Q/msi/token,
IDENTITY_HEADER=kvmock, REQUESTS_CA_BUNDLE=CA (the CA fetched from /ca.pem).

smoke:   raw HTTPS (stdlib): /ca.pem, the 401 challenge names the mapped port,
         kid and nextLink use the mapped port on both vault URLs, the
         certificate covers each --hostname; then the SDK with
         DefaultAzureCredential: create, get, list with paging, wrap locally
         with the public key and unwrap on the server, on
         https://default.vault.localhost:P and on https://localhost:P.
persist-put:   creates a key, wraps a secret with it on the server, writes
               key id, wrapped bytes and secret to FILE.
persist-check: (after the container restarted, or a new container on the
               same volume) the key is there with the same version, and the
               server unwraps the old blob to the old secret.
Prints one PASS/FAIL line per check; exits 1 if any failed.
"""
import argparse
import base64
import json
import os
import secrets
import socket
import ssl
import sys
import time
import traceback
import urllib.error
import urllib.request

API = "api-version=7.4"
failures = []


def check(name):
    def wrap(fn):
        t0 = time.time()
        try:
            fn()
            print(f"PASS {name} ({(time.time() - t0) * 1000:.0f} ms)", flush=True)
        except Exception:  # noqa: BLE001 - every failure is reported
            failures.append(name)
            print(f"FAIL {name}:\n{traceback.format_exc()}", flush=True)
        return fn
    return wrap


def eq(got, want, what):
    if got != want:
        raise AssertionError(f"{what}: got {got!r}, want {want!r}")


def ok(cond, what):
    if not cond:
        raise AssertionError(what)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ------------------------------------------------------------ raw HTTP ----

class Raw:
    def __init__(self, args):
        self.P = args.https_port
        self.Q = args.http_port
        self.ca = args.ca
        self.ctx = ssl.create_default_context(cafile=args.ca)
        # Never a proxy: the container is on this machine's loopback.
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=self.ctx))
        self._token = None

    def request(self, method, url, body=None, headers=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with self.opener.open(req, timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def token(self):
        if self._token is None:
            url = (f"http://127.0.0.1:{self.Q}/msi/token?api-version=2019-08-01"
                   "&resource=https%3A%2F%2Fvault.azure.net")
            st, _, body = self.request("GET", url, headers={"X-IDENTITY-HEADER": "kvmock"})
            eq(st, 200, f"GET {url}")
            self._token = json.loads(body)["access_token"]
        return self._token

    def vault(self, method, origin, path, body=None):
        sep = "&" if "?" in path else "?"
        st, hdrs, raw = self.request(method, f"{origin}{path}{sep}{API}", body,
                                     {"Authorization": f"Bearer {self.token()}"})
        return st, hdrs, (json.loads(raw) if raw else None)


def smoke_raw(args):
    raw = Raw(args)
    P, Q = args.https_port, args.http_port
    vhost = f"https://default.vault.localhost:{P}"
    lhost = f"https://localhost:{P}"
    run = secrets.token_hex(3)

    @check("GET /healthz on the mapped HTTP port")
    def _():
        st, _, body = raw.request("GET", f"http://127.0.0.1:{Q}/healthz")
        eq(st, 200, "status")

    @check("GET /ca.pem on the mapped HTTP port is the CA the client trusts")
    def _():
        st, _, body = raw.request("GET", f"http://127.0.0.1:{Q}/ca.pem")
        eq(st, 200, "status")
        with open(args.ca, "rb") as f:
            eq(body.strip(), f.read().strip(), "GET /ca.pem vs the CA file")

    @check("401 challenge names the mapped port (vault.localhost) or vault.azure.net (localhost)")
    def _():
        for origin, resource in ((vhost, f"https://vault.localhost:{P}"),
                                 (lhost, "https://vault.azure.net")):
            st, hdrs, _ = raw.request("GET", f"{origin}/keys?{API}")
            eq(st, 401, f"{origin}: status without a token")
            www = {k.lower(): v for k, v in hdrs.items()}.get("www-authenticate", "")
            ok(f'resource="{resource}"' in www, f"{origin}: WWW-Authenticate {www!r} names {resource}")

    @check("kid and nextLink use the mapped port, on both vault URLs")
    def _():
        for origin in (vhost, lhost):
            for i in range(3):
                name = f"raw-{run}-{i}"
                st, _, j = raw.vault("POST", origin, f"/keys/{name}/create",
                                     {"kty": "EC", "crv": "P-256"})
                eq(st, 200, f"create {name} on {origin}: {j}")
                ok(j["key"]["kid"].startswith(f"{origin}/keys/{name}/"),
                   f"kid {j['key']['kid']} starts with {origin}/keys/{name}/")
            st, _, j = raw.vault("GET", origin, "/keys?maxresults=1")
            eq(st, 200, f"list on {origin}")
            ok(isinstance(j.get("nextLink"), str), f"a nextLink with maxresults=1 and 3+ keys: {j}")
            ok(j["nextLink"].startswith(f"{origin}/keys?"), f"nextLink {j['nextLink']} starts with {origin}/keys?")
            for it in j["value"]:
                ok(it["kid"].startswith(f"{origin}/keys/"), f"listed kid {it['kid']}")

    for name in args.hostname or []:
        @check(f"the server certificate covers {name} (KVMOCK_HOSTNAMES)")
        def _(name=name):
            with socket.create_connection(("127.0.0.1", P), timeout=10) as s:
                with raw.ctx.wrap_socket(s, server_hostname=name) as t:
                    t.sendall(f"GET /healthz HTTP/1.0\r\nHost: {name}:{P}\r\n\r\n".encode())
                    # The handshake above verified the certificate for `name`.
                    line = t.recv(64).split(b"\r\n", 1)[0]
                    ok(line.startswith(b"HTTP/1.") and b" 200" in line, f"GET /healthz as {name}: {line!r}")


# ----------------------------------------------------------------- SDK ----

def sdk_clients(args, origin):
    from azure.identity import DefaultAzureCredential
    from azure.keyvault.keys import KeyClient
    cred = DefaultAzureCredential()
    verify = ".vault." in origin
    return cred, KeyClient(origin, cred, verify_challenge_resource=verify)


def local_wrap(jwk, plaintext):
    """RSA-OAEP-256 with the public key only, as a client does for envelope encryption."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    n = int.from_bytes(jwk.n, "big")
    e = int.from_bytes(jwk.e, "big")
    pub = rsa.RSAPublicNumbers(e, n).public_key()
    return pub.encrypt(plaintext, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                               algorithm=hashes.SHA256(), label=None))


def smoke_sdk(args):
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    P = args.https_port
    run = secrets.token_hex(3)
    for origin in (f"https://default.vault.localhost:{P}", f"https://localhost:{P}"):
        cred, client = sdk_clients(args, origin)
        tag = "vault.localhost" if ".vault." in origin else "localhost"
        name = f"py-{tag.replace('.', '-')}-{run}"
        state = {}

        @check(f"SDK [{tag}] DefaultAzureCredential: create_rsa_key and get_key")
        def _():
            key = client.create_rsa_key(name, size=2048)
            ok(key.id.startswith(f"{origin}/keys/{name}/"), f"key id {key.id}")
            got = client.get_key(name)
            eq(got.id, key.id, "get_key returns the created version")
            state["key"] = key

        @check(f"SDK [{tag}] list_properties_of_keys pages (max_page_size=1) and finds the key")
        def _():
            for i in range(2):
                client.create_ec_key(f"{name}-ec{i}", curve="P-256")
            pages = client.list_properties_of_keys(max_page_size=1).by_page()
            names, n_pages = set(), 0
            for page in pages:
                n_pages += 1
                for p in page:
                    ok(p.id.startswith(f"{origin}/keys/"), f"listed id {p.id}")
                    names.add(p.name)
            ok(n_pages >= 3, f"pages followed through nextLink: {n_pages}")
            ok(name in names and f"{name}-ec1" in names, f"{name} listed: {sorted(names)}")

        @check(f"SDK [{tag}] wrap locally with the public key, unwrap_key on the server")
        def _():
            key = state["key"]
            secret = secrets.token_bytes(32)
            wrapped = local_wrap(key.key, secret)
            crypto = CryptographyClient(key.id, cred, verify_challenge_resource=".vault." in origin)
            res = crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
            eq(res.key, secret, "unwrapped bytes")
            eq(res.key_id, key.id, "unwrap names the key version")
            # and the server's own wrap, unwrapped again
            wr = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, secret)
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wr.encrypted_key).key, secret,
               "wrap_key + unwrap_key round trip")


# --------------------------------------------------------- persistence ----

def persist_put(args):
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    origin = f"https://default.vault.localhost:{args.https_port}"

    @check("persist-put: create a key and wrap a secret on the server")
    def _():
        cred, client = sdk_clients(args, origin)
        name = f"persist-{secrets.token_hex(3)}"
        key = client.create_rsa_key(name, size=2048)
        secret = secrets.token_bytes(32)
        crypto = CryptographyClient(key.id, cred)
        wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, secret).encrypted_key
        with open(args.state, "w") as f:
            json.dump({"name": name, "id": key.id.replace(origin, ""), "secret": b64url(secret),
                       "wrapped": b64url(wrapped)}, f)


def persist_check(args):
    from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
    origin = f"https://default.vault.localhost:{args.https_port}"
    with open(args.state) as f:
        st = json.load(f)

    @check(f"persist-check: key {st['name']} is there with the same version; the old blob unwraps")
    def _():
        cred, client = sdk_clients(args, origin)
        key = client.get_key(st["name"])
        eq(key.id, origin + st["id"], "key id after the restart")
        crypto = CryptographyClient(key.id, cred)
        res = crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, unb64url(st["wrapped"]))
        eq(res.key, unb64url(st["secret"]), "unwrapped secret after the restart")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("command", choices=["smoke", "persist-put", "persist-check"])
    ap.add_argument("--https-port", type=int, required=True)
    ap.add_argument("--http-port", type=int, required=True)
    ap.add_argument("--ca", required=True)
    ap.add_argument("--hostname", action="append")
    ap.add_argument("--state")
    args = ap.parse_args()

    want = {"IDENTITY_ENDPOINT": f"http://127.0.0.1:{args.http_port}/msi/token",
            "IDENTITY_HEADER": None, "REQUESTS_CA_BUNDLE": None}
    for k, v in want.items():
        if not os.environ.get(k) or (v and os.environ[k] != v):
            print(f"FAIL setup: {k} must be set{f' to {v}' if v else ''} (is {os.environ.get(k)!r})")
            return 1
    if args.command != "smoke" and not args.state:
        print("FAIL setup: --state FILE is required")
        return 1

    if args.command == "smoke":
        smoke_raw(args)
        smoke_sdk(args)
    elif args.command == "persist-put":
        persist_put(args)
    else:
        persist_check(args)
    print(f"{args.command}: {'FAILED ' + str(len(failures)) if failures else 'ALL PASSED'}", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
