"""Lab 7 (secretless): checks the end state against the running kvmock.

python3 labs/checks/07-check.py    (from the root of the clone)

Signs in as reporting-app the three ways the lab tried: with its old secret
(must be refused), with an assertion signed by lab-work/reporting.pem, and with
CI tokens signed by lab-work/ci-key.pem (the main branch accepted, another
refused). Needs `cryptography` for the signatures (python3-azure brings it).
"""
import http.client
import json
import os
import sys
import time
import urllib.parse
import uuid

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from labcheck import CONFIG, HTTPS, IDS, LABS, Check, _tls, access_policy, audit, find

sys.path.insert(0, LABS)
import ci_token  # noqa: E402  (labs/ci_token.py: the lab's CI system)

APP = IDS["reporting-app"]
TENANT = APP.get("tenantId", CONFIG["tenantId"])
ENDPOINT = f"https://localhost:{HTTPS}/{TENANT}/oauth2/v2.0/token"
MAIN = "repo:shop/reporting:ref:refs/heads/main"
check = Check(7)


def token_request(**form):
    """(status, JSON answer) of a client-credentials request for reporting-app."""
    form = {"grant_type": "client_credentials", "client_id": APP["clientId"],
            "scope": f"https://vault.localhost:{HTTPS}/.default", **form}
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS, context=_tls(), timeout=30)
    conn.request("POST", urllib.parse.urlparse(ENDPOINT).path,
                 body=urllib.parse.urlencode(form),
                 headers={"Host": f"localhost:{HTTPS}",
                          "Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    return resp.status, json.loads(resp.read() or b"{}")


def assertion(jwt):
    return token_request(client_assertion_type="urn:ietf:params:oauth:client-assertion-type:"
                         "jwt-bearer", client_assertion=jwt)


def oid(answer):
    return ci_token.claims(answer["access_token"]).get("oid") if "access_token" in answer else None


def what(status, answer):
    """HTTP status and the first sentence of the error, for a FAIL line."""
    return f"HTTP {status}, " + (answer.get("error_description", "").split(". ")[0] or "a token")


def certificate_assertion(pem_path):
    """What CertificateCredential sends: a JWT about the app itself (iss = sub =
    its client id), for the token endpoint, signed with the certificate's key
    and naming the certificate by its SHA-1 thumbprint (x5t)."""
    with open(pem_path, "rb") as f:
        pem = f.read()
    key = serialization.load_pem_private_key(pem, password=None)
    cert = x509.load_pem_x509_certificate(pem)
    x5t = ci_token.b64url(cert.fingerprint(hashes.SHA1()))
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "x5t": x5t}
    claims = {"iss": APP["clientId"], "sub": APP["clientId"], "aud": ENDPOINT,
              "jti": str(uuid.uuid4()), "nbf": now, "exp": now + 600}
    signed = ".".join(ci_token.b64url(json.dumps(p).encode()) for p in (header, claims))
    return signed + "." + ci_token.b64url(key.sign(signed.encode(), padding.PKCS1v15(),
                                                  hashes.SHA256()))


# 1. no secret left
st, answer = token_request(client_secret=APP["clientSecret"])
check(st == 401 and answer.get("error_description", "").startswith("AADSTS7000215"),
      "reporting-app: its old secret is refused (401 AADSTS7000215)",
      what(st, answer) + ": step 4, delete its clientSecret, restart with lab-work/config.json")

# 2. the certificate
pem = os.path.join("lab-work", "reporting.pem")
if os.path.exists(pem):
    st, answer = assertion(certificate_assertion(pem))
    check(st == 200 and oid(answer) == APP["objectId"],
          "reporting-app: signs in with the certificate of lab-work/reporting.pem",
          what(st, answer) + ": steps 2 and 4")
else:
    check(False, "reporting-app: signs in with the certificate of lab-work/reporting.pem",
          f"no {pem}: step 2")

# 3. the federated credential: the main branch's pipeline only
key = os.path.join("lab-work", "ci-key.pem")
if os.path.exists(key):
    st, answer = assertion(ci_token.token(key, MAIN))
    check(st == 200 and oid(answer) == APP["objectId"],
          f"reporting-app: trusts {ci_token.ISSUER}'s tokens for {MAIN}",
          what(st, answer) + ": steps 3 and 4")
    st, answer = assertion(ci_token.token(key, MAIN.replace("/main", "/check")))
    check(st == 401 and answer.get("error_description", "").startswith("AADSTS700213"),
          "reporting-app: refuses the CI's tokens for another branch (401 AADSTS700213)",
          what(st, answer) + ": the federated credential's subject must be the main branch")
else:
    check(False, f"reporting-app: trusts {ci_token.ISSUER}'s tokens for {MAIN}",
          f"no {key}: step 3")

# 4. read-only on cmk, and used
perms = access_policy("cmk", "reporting-app")
check(perms == ["get", "list"], "cmk: reporting-app may get and list keys, nothing more",
      f"its key permissions: {perms}: step 6")
check(bool(find(audit(), "KeyList", 200, "reporting-app", "cmk")),
      "cmk: reporting-app listed the keys",
      "no KeyList by reporting-app in the audit log: step 6")
check.done()
