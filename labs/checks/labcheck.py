"""What the lab checks share: talk to the running kvmock (standard library
only), read its audit log, and print PASS/FAIL lines.

Ports: 8443 and 8080, or KVMOCK_HTTPS_PORT / KVMOCK_HTTP_PORT when set (the
same variables kvmock reads). Tokens come from kvmock's managed-identity
endpoint ($IDENTITY_HEADER, default "kvmock"); TLS trusts $REQUESTS_CA_BUNDLE,
default ./lab-data/tls/ca.pem. A check only reads: it changes nothing in kvmock.
"""
import http.client
import json
import os
import ssl
import sys
import urllib.parse

LABS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HTTPS = int(os.environ.get("KVMOCK_HTTPS_PORT", "8443"))
HTTP = int(os.environ.get("KVMOCK_HTTP_PORT", "8080"))
ARM = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/labs/providers/"
       "Microsoft.KeyVault/vaults")

with open(os.path.join(LABS, "config.json"), encoding="utf-8") as _f:
    CONFIG = json.load(_f)
IDS = {i["name"]: i for i in CONFIG["identities"]}
NAMES = {i["objectId"]: i["name"] for i in CONFIG["identities"]}


class Check:
    """Collects results; `done()` prints the verdict line and exits."""

    def __init__(self, lab):
        self.lab, self.failed = lab, 0

    def __call__(self, ok, text, detail=""):
        print(("PASS " if ok else "FAIL ") + text + ("" if ok or not detail else f" ({detail})"))
        self.failed += 0 if ok else 1
        return ok

    def done(self):
        print(f"lab {self.lab}: " + ("PASS" if self.failed == 0 else f"FAIL ({self.failed})"))
        sys.exit(1 if self.failed else 0)


def _tls():
    ca = os.environ.get("REQUESTS_CA_BUNDLE", os.path.join("lab-data", "tls", "ca.pem"))
    return ssl.create_default_context(cafile=ca)


def token(resource, identity="learner"):
    query = urllib.parse.urlencode({"api-version": "2019-08-01", "resource": resource,
                                    "client_id": IDS[identity]["clientId"]})
    conn = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=30)
    conn.request("GET", "/msi/token?" + query,
                 headers={"X-IDENTITY-HEADER": os.environ.get("IDENTITY_HEADER", "kvmock")})
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        sys.exit(f"FAIL no token from kvmock on port {HTTP}: {resp.status} {body[:200]!r}")
    return json.loads(body)["access_token"]


def https(method, host, path, body=None, resource=None):
    """(status, JSON or None) of one call on the HTTPS port, as the learner."""
    conn = http.client.HTTPSConnection("127.0.0.1", HTTPS, context=_tls(), timeout=30)
    conn.connect()  # TLS to 127.0.0.1 (in the certificate), Host: says which vault
    headers = {"Host": f"{host}:{HTTPS}",
               "Authorization": "Bearer " + token(resource or f"https://vault.localhost:{HTTPS}")}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    resp = conn.getresponse()
    text = resp.read()
    return resp.status, (json.loads(text) if text.strip() else None)


def hsm(name, method, path, body=None):
    """(status, JSON or None) of a call to Managed HSM NAME's data plane, as the learner
    (api-version 7.4 is added)."""
    sep = "&" if "?" in path else "?"
    return https(method, f"{name}.managedhsm.localhost", f"{path}{sep}api-version=7.4", body,
                 resource="https://managedhsm.azure.net")


def vault(name, method, path):
    """A data-plane call to vault NAME (api-version 7.4 is added)."""
    sep = "&" if "?" in path else "?"
    return https(method, f"{name}.vault.localhost", f"{path}{sep}api-version=7.4")


def arm(method, path):
    """A management-plane call; path starts at /subscriptions or is relative to ARM."""
    full = path if path.startswith("/subscriptions") else ARM + path
    sep = "&" if "?" in full else "?"
    version = "2022-04-01" if "roleAssignments" in full else "2023-07-01"
    return https(method, "localhost", f"{full}{sep}api-version={version}",
                 resource="https://management.azure.com")


def access_policy(vault_name, identity):
    """The key permissions of IDENTITY in VAULT's access policies (None if no entry)."""
    st, doc = arm("GET", "/" + vault_name)
    if st != 200:
        sys.exit(f"FAIL GET vault {vault_name}: {st} {doc}")
    for p in doc["properties"]["accessPolicies"]:
        if p["objectId"] == IDS[identity]["objectId"]:
            return sorted(p["permissions"]["keys"])
    return None


def audit():
    """Every audit record, oldest first, through GET /admin/audit and its nextLink."""
    records, path = [], "/admin/audit?maxresults=1000"
    while path:
        conn = http.client.HTTPConnection("127.0.0.1", HTTP, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            sys.exit(f"FAIL GET /admin/audit: {resp.status} {body[:200]!r}")
        doc = json.loads(body)
        records += doc["value"]
        link = doc.get("nextLink")
        path = link[link.index("/admin"):] if link else None
    return records


def who(record):
    oid = record["identity"]["claim"]["oid"]
    return NAMES.get(oid, oid)


def key_of(record):
    """"vault/key" of a record ("vault" when it names no key)."""
    kid = record["properties"].get("id", "")  # a list's record names no object
    # a key's id, or a deleted key's (…/deletedkeys/NAME)
    kid = kid.replace("/deletedkeys/", "/keys/")
    name = kid.split("/keys/", 1)[1].split("/")[0] if "/keys/" in kid else ""
    return record["properties"]["vault"] + ("/" + name if name else "")


def find(records, op, status=None, identity=None, key=None):
    return [r for r in records if r["operationName"] == op
            and (status is None or r["properties"]["httpStatusCode"] == status)
            and (identity is None or who(r) == identity)
            and (key is None or key_of(r) == key)]


def first(records, pred, start=0):
    """Index of the first of RECORDS from START on that PRED accepts, or None."""
    for i in range(start, len(records)):
        if pred(records[i]):
            return i
    return None


def in_order(records, *preds):
    """True if RECORDS hold matches of PREDS in this order."""
    at = 0
    for pred in preds:
        i = first(records, pred, at)
        if i is None:
            return False
        at = i + 1
    return True


def read_envelope(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return None
