"""The application in docker/docker-compose.yml: talks to kvmock by service name.

It does what an application with the Azure SDK does, with the standard
library only, and reads the same environment an SDK application reads:

  KVMOCK_CA_URL       where to fetch kvmock's CA (http://kvmock:8080/ca.pem);
  REQUESTS_CA_BUNDLE  where to keep it (Python SDK: requests trusts this file;
                      Node: NODE_EXTRA_CA_CERTS, read at start, so fetch first);
  IDENTITY_ENDPOINT, IDENTITY_HEADER   App Service-style managed identity
                      (ManagedIdentityCredential / DefaultAzureCredential);
  KEYVAULT_URLS       space-separated vault URLs to exercise.

For each vault URL: the 401 challenge (as the SDK's first, bodiless request
sees it), a token for the challenge's resource, create an RSA key, check
its kid is on the URL the app used, wrap and unwrap on the server.
Exits 0 and prints "app: OK" when every step worked.
"""
import base64
import json
import os
import re
import secrets
import ssl
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

API = "api-version=7.4"


def http(method, url, body=None, headers=None, context=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                         urllib.request.HTTPSHandler(context=context))
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def main():
    env = os.environ
    ca_path = env["REQUESTS_CA_BUNDLE"]
    # 1. the CA, over plain HTTP (kvmock is healthy: compose waited for it)
    for attempt in range(30):
        try:
            st, _, pem = http("GET", env["KVMOCK_CA_URL"])
            if st == 200:
                break
        except OSError as e:
            print(f"app: waiting for {env['KVMOCK_CA_URL']}: {e}", flush=True)
        time.sleep(1)
    else:
        sys.exit("app: no CA")
    with open(ca_path, "wb") as f:
        f.write(pem)
    ctx = ssl.create_default_context(cafile=ca_path)
    print(f"app: CA from {env['KVMOCK_CA_URL']} saved in {ca_path}", flush=True)

    for vault in env["KEYVAULT_URLS"].split():
        # 2. the challenge tells which resource to ask a token for
        st, hdrs, _ = http("GET", f"{vault}/keys?{API}", context=ctx)
        assert st == 401, f"{vault}: {st} without a token"
        resource = re.search(r'resource="([^"]+)"', hdrs["WWW-Authenticate"]).group(1)
        # 3. a token from the managed-identity endpoint, as ManagedIdentityCredential does
        q = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": resource})
        st, _, body = http("GET", f"{env['IDENTITY_ENDPOINT']}?{q}",
                           headers={"X-IDENTITY-HEADER": env["IDENTITY_HEADER"]})
        assert st == 200, f"token: {st} {body[:200]!r}"
        auth = {"Authorization": "Bearer " + json.loads(body)["access_token"]}
        # 4. create, wrap, unwrap
        name = f"app-{secrets.token_hex(3)}"
        st, _, body = http("POST", f"{vault}/keys/{name}/create?{API}",
                           {"kty": "RSA", "key_size": 2048}, auth, ctx)
        assert st == 200, f"create: {st} {body[:300]!r}"
        kid = json.loads(body)["key"]["kid"]
        assert kid.startswith(f"{vault}/keys/{name}/"), f"kid {kid} is not on {vault}"
        secret = secrets.token_bytes(32)
        st, _, body = http("POST", f"{kid}/wrapkey?{API}",
                           {"alg": "RSA-OAEP-256", "value": b64url(secret)}, auth, ctx)
        assert st == 200, f"wrap: {st} {body[:300]!r}"
        wrapped = json.loads(body)["value"]
        st, _, body = http("POST", f"{kid}/unwrapkey?{API}",
                           {"alg": "RSA-OAEP-256", "value": wrapped}, auth, ctx)
        assert st == 200 and json.loads(body)["value"] == b64url(secret), f"unwrap: {st}"
        print(f"app: {vault}: challenge resource {resource}, key {kid}, wrap/unwrap OK", flush=True)
    print("app: OK", flush=True)


if __name__ == "__main__":
    main()
