"""Lab 8 (secure key release): checks the end state against the running kvmock.

python3 labs/checks/08-check.py    (from the root of the clone)

Reads the vault skr and its key order-kek, then asks for releases as
data-service, the way the lab's VM does, with tokens signed by
lab-work/attest-key.pem (a compliant VM released to; a debuggable one and one
that is not azure-compliant-cvm refused) and by a key of its own (refused).
Needs `cryptography` (python3-azure brings it).
"""
import http.client
import json
import os
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from labcheck import HTTPS, LABS, Check, _tls, access_policy, arm, audit, find, token, vault

sys.path.insert(0, LABS)
import attest  # noqa: E402  (labs/attest.py: the lab's attestation service)

KEY = "/keys/order-kek"
check = Check(8)


def b64int(text):
    return int.from_bytes(attest.unb64url(text), "big")


def release(target):
    """(status, JSON answer) of a release of order-kek's latest version, as data-service."""
    bearer = token(f"https://vault.localhost:{HTTPS}", "data-service")
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS, context=_tls(), timeout=30)
    conn.connect()  # TLS to 127.0.0.1 (in the certificate), Host: says which vault
    conn.request("POST", KEY + "//release?api-version=7.4", body=json.dumps({"target": target}),
                 headers={"Host": f"skr.vault.localhost:{HTTPS}", "Content-Type": "application/json",
                          "Authorization": "Bearer " + bearer})
    resp = conn.getresponse()
    text = resp.read()
    return resp.status, (json.loads(text) if text.strip() else {})


def released_n(answer):
    """The modulus of the key a release answered (the JWS's payload), or None."""
    try:
        payload = json.loads(attest.unb64url(answer["value"].split(".")[1]))
        return b64int(payload["response"]["key"]["key"]["n"])
    except (KeyError, IndexError, ValueError):
        return None


def refused(status, answer):
    message = answer.get("error", {}).get("message", "")
    return status == 403 and message.startswith("Target environment attestation statement")


# 1. the vault
st, doc = arm("GET", "/skr")
props = doc.get("properties", {}) if st == 200 and doc else {}
check(props.get("sku", {}).get("name") == "premium" and props.get("enablePurgeProtection") is True,
      "skr: a premium vault with purge protection",
      f"GET skr: {st}, sku {props.get('sku')}, purge protection "
      f"{props.get('enablePurgeProtection')}: step 2" if st == 200 else f"GET skr: {st}: step 2")
if st != 200:
    check.done()
perms = access_policy("skr", "data-service")
check(perms == ["release"], "skr: data-service may release keys, nothing more",
      f"its key permissions: {perms}: step 2")

# 2. the key
st, doc = vault("skr", "GET", KEY)
key = doc.get("key", {}) if st == 200 and doc else {}
attrs = doc.get("attributes", {}) if st == 200 and doc else {}
rp = doc.get("release_policy", {}) if st == 200 and doc else {}
try:
    policy = json.loads(attest.unb64url(rp.get("data", "")))
except ValueError:
    policy = {}
conditions = {c.get("claim"): c.get("equals") for a in policy.get("anyOf", [])
              if a.get("authority") == attest.AUTHORITY for c in a.get("allOf", [])}
wanted = {"x-ms-isolation-tee.x-ms-attestation-type": "sevsnpvm",
          "x-ms-isolation-tee.x-ms-compliance-status": "azure-compliant-cvm",
          "x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable": "false"}
check(key.get("kty") == "RSA-HSM" and attrs.get("exportable") is True
      and rp.get("immutable") is True and conditions == wanted,
      "skr/order-kek: an exportable RSA-HSM key with an immutable release policy",
      f"GET: {st}, kty {key.get('kty')}, exportable {attrs.get('exportable')}, immutable "
      f"{rp.get('immutable')}, conditions {conditions}: steps 3 and 6")
if st != 200:
    check.done()
vault_n = b64int(key["n"])

# 3. releases, as the VM asks for them
if os.path.exists(attest.ATTEST_KEY):
    st, answer = release(attest.token())
    check(st == 200 and released_n(answer) == vault_n,
          f"skr/order-kek: released to a compliant VM attested by {attest.ATTEST_KEY}",
          f"HTTP {st} {answer.get('error', {}).get('message', '')}: steps 1 to 4")
    rogue = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    outcomes = [release(attest.token(debuggable=True)),
                release(attest.token(compliance="azure-noncompliant-cvm")),
                release(attest.token(signer=rogue))]
    check(all(refused(*o) for o in outcomes),
          "skr/order-kek: refused to a debuggable VM, a non-compliant one and another signer",
          "answers: " + ", ".join(f"HTTP {s}" for s, _ in outcomes) + ": the policy of step 3")
else:
    check(False, f"skr/order-kek: released to a compliant VM attested by {attest.ATTEST_KEY}",
          f"no {attest.ATTEST_KEY}: step 1")

# 4. the key in the VM's hands
pem = os.path.join("lab-work", "order-kek.pem")
try:
    with open(pem, "rb") as f:
        mine = serialization.load_pem_private_key(f.read(), password=None)
    ok, why = mine.public_key().public_numbers().n == vault_n, "another key: step 4"
except FileNotFoundError:
    ok, why = False, f"no {pem}: step 4"
except (OSError, ValueError) as e:
    ok, why = False, f"{pem}: {e}: step 4"
check(ok, "lab-work/order-kek.pem: the private key of skr/order-kek", why)

# 5. the audit log
records = audit()
check(bool(find(records, "KeyRelease", 200, "data-service", "skr/order-kek"))
      and bool(find(records, "KeyRelease", 403, "data-service", "skr/order-kek")),
      "audit: data-service released skr/order-kek, and was refused",
      "no such KeyRelease records: steps 4 and 5")
check.done()
