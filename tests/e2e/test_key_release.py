"""Secure key release (SKR) end to end: exportable keys with release policies made and
changed through Debian's Python SDK (azure-keyvault-keys 4.8.0b3) and raw HTTP, released
against attestation tokens minted here, and every released key opened and proven.

The attestation authorities kvmock trusts are configured with JWKS this test makes (an
RSA key in a file named relative to the configuration file, EC keys inline, an RSA key
given only by its certificate in x5c); a TEE's RSA key goes into each token's
`x-ms-runtime.keys`. For each release the compact JWS is verified with x5c[0], its chain
to kvmock's CA (and the vault's host name) is checked with `cryptography` and `openssl
verify`, key_hsm is decoded, the AES key is recovered with RSA-OAEP (SHA-1/256/384 as
`enc` says), the key unwrapped with RFC 5649 key wrap, and the material proven to be the
vault key's: RSA and EC by their public numbers and by an operation kvmock performs with
its own copy (encrypt there, decrypt here; sign here, verify there), oct by unwrapping
what kvmock's A256KW/A128KW wrapped and the reverse; imported keys come back as
imported. Also: the create/import/update rules with Key Vault's AKV.SKR messages, the
normalized policy, rotate, backup/restore, soft delete/recover and a restart keeping the
policy, every refusal of the release (token, claims, authorities, target keys, request,
key state, access policies and RBAC), escaping of odd nonces and claims, releases racing
policy updates, the configuration's bad authorities refused at start, and that no
released private key reaches kvmock's log.
"""
import base64
import datetime
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Kvmock, Runner, check, eq, parse_args, b64url, unb64url, int_bytes,  # noqa: E402
                     start_refused, write, TENANT, APP, SANITIZER_MARKS)
from test_secret_scan import Scanner  # noqa: E402  (its search for private bytes)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, hmac, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from cryptography.hazmat.primitives.keywrap import (  # noqa: E402
    aes_key_unwrap, aes_key_unwrap_with_padding, aes_key_wrap)
from cryptography.x509.oid import NameOID  # noqa: E402

from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyReleasePolicy  # noqa: E402
from azure.keyvault.keys import KeyExportEncryptionAlgorithm as Kea  # noqa: E402

API = "7.4"
# the attestation authorities: AUTH's RSA keys in a JWKS file; AUTH2's EC keys inline, the
# authority configured with a trailing slash; AUTH3's RSA key only as a certificate (x5c),
# as Azure Attestation publishes them; UNTRUSTED is named by policies but not configured
AUTH = "https://kvmocke2e.eus.attest.azure.net"
AUTH2 = "https://kvmocke2e2.weu.attest.azure.net"
AUTH3 = "https://kvmocke2e3.neu.attest.azure.net"
UNTRUSTED = "https://untrusted.wus.attest.azure.net"
VERIFY_PREFIX = "Target environment attestation statement cannot be verified."
CONTENT_TYPE = "application/json; charset=utf-8"
MSG_1001 = ("AKV.SKR.1001: The exportable attribute is only supported with premium vaults and "
            "API version >= '7.3-preview'.")
MSG_1004 = "AKV.SKR.1004: Exportable keys must have release policy."
MSG_1005 = "AKV.SKR.1005: Non-exportable keys must not have release policy."
MSG_1013_JSON = ("AKV.SKR.1013: Malformed Key Release Policy - Unable to Json Deserialize the "
                 "policy object.")
MSG_1013 = "AKV.SKR.1013: Malformed Key Release Policy - "
MSG_1014 = "AKV.SKR.1014: Cannot modify the exportable state of a key."
MSG_1020 = "AKV.SKR.1020: Immutable Key Release Policy cannot be modified."
ENCS = {"CKM_RSA_AES_KEY_WRAP": hashes.SHA1, "RSA_AES_KEY_WRAP_256": hashes.SHA256,
        "RSA_AES_KEY_WRAP_384": hashes.SHA384}
CURVES = {"P-256": (ec.SECP256R1, hashes.SHA256, "ES256"),
          "P-384": (ec.SECP384R1, hashes.SHA384, "ES384"),
          "P-521": (ec.SECP521R1, hashes.SHA512, "ES512")}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}

# identities: APP (default, all on every vault); one that may get and release only; one
# with every key permission but release; RBAC: a Crypto Service Release User on one key,
# a Crypto User on the vault
RELEASER = {"name": "releaser", "objectId": "0a000000-0000-4000-8000-0000000005a1",
            "clientId": "0c000000-0000-4000-8000-0000000005a1"}
NO_RELEASE = {"name": "no-release", "objectId": "0a000000-0000-4000-8000-0000000005a2",
              "clientId": "0c000000-0000-4000-8000-0000000005a2"}
RBAC_RELEASER = {"name": "rbac-releaser", "objectId": "0a000000-0000-4000-8000-0000000005a3",
                 "clientId": "0c000000-0000-4000-8000-0000000005a3"}
RBAC_USER = {"name": "rbac-user", "objectId": "0a000000-0000-4000-8000-0000000005a4",
             "clientId": "0c000000-0000-4000-8000-0000000005a4"}
ALL_BUT_RELEASE = ["get", "list", "create", "update", "import", "delete", "recover", "backup",
                   "restore", "encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify",
                   "rotate", "getrotationpolicy", "setrotationpolicy", "purge"]
PREMIUM = {"family": "A", "name": "premium"}
STANDARD = {"family": "A", "name": "standard"}
DROP = object()  # a claim path to remove from a token


# ---- keys, JWKs and JWS ----------------------------------------------------------------

def new_rsa(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def rsa_pub_jwk(key, **extra):
    pub = key.public_key().public_numbers()
    out = {"kty": "RSA", "n": b64url(int_bytes(pub.n)), "e": b64url(int_bytes(pub.e))}
    out.update(extra)
    return out


def ec_pub_jwk(key, **extra):
    pub = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    out = {"kty": "EC", "crv": {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size],
           "x": b64url(int_bytes(pub.x, size)), "y": b64url(int_bytes(pub.y, size))}
    out.update(extra)
    return out


def self_signed(key, cn):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))


def jose_sign(key, alg, data):
    if alg == "HS256":
        h = hmac.HMAC(key, hashes.SHA256())
        h.update(data)
        return h.finalize()
    h = HASHES[alg[2:]]()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
    size = (key.curve.key_size + 7) // 8
    return int_bytes(r, size) + int_bytes(s, size)


def make_jws(header, claims, key, alg):
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
    sig = b"" if alg == "none" else jose_sign(key, alg, signing.encode())
    return signing + "." + b64url(sig)


def set_path(doc, path, value):
    parts = path.split(".")
    for p in parts[:-1]:
        doc = doc.setdefault(p, {})
    if value is DROP:
        doc.pop(parts[-1], None)
    else:
        doc[parts[-1]] = value


def policy_bytes(policy):
    """A policy as a client sends it: pretty JSON, members in whatever order."""
    return json.dumps(policy, indent=2).encode() if isinstance(policy, dict) else policy


def normalized(policy):
    """The policy as Key Vault stores it: compact; version, anyOf; authority, then
    allOf/anyOf; claim, then operator; equals/notEquals values as strings."""
    def text(v):
        return "true" if v is True else "false" if v is False else str(v)

    def cond(c):
        if "claim" in c:
            op = next(k for k in c if k != "claim")
            v = text(c[op]) if op in ("equals", "notEquals") else c[op]
            return {"claim": c["claim"], op: v}
        op = "allOf" if "allOf" in c else "anyOf"
        return {op: [cond(x) for x in c[op]]}

    def auth(a):
        op = "allOf" if "allOf" in a else "anyOf"
        return {"authority": a["authority"], op: [cond(x) for x in a[op]]}

    return json.dumps({"version": policy["version"], "anyOf": [auth(a) for a in policy["anyOf"]]},
                      separators=(",", ":"))


# the policy of most keys: conditions on nested claims, booleans compared as text
MAIN_POLICY = {"anyOf": [{"allOf": [
    {"equals": "sevsnpvm", "claim": "x-ms-attestation-type"},
    {"claim": "x-ms-isolation-tee.x-ms-compliance-status", "equals": "azure-compliant-cvm"},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable", "equals": False},
    {"claim": "sdk-test", "equals": True}], "authority": AUTH}], "version": "1.0.0"}
# the same with a stricter guest SVN
STRICT_POLICY = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "allOf": [
    {"claim": "sdk-test", "equals": True},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn", "greaterOrEquals": 9}]}]}
# every operator, and a nested anyOf
OPS_POLICY = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "allOf": [
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn", "greaterOrEquals": 7},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn", "less": 100},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-vmpl", "lessOrEquals": 0},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-bootloader-svn", "greater": 2},
    {"claim": "x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable", "notEquals": True},
    {"claim": "x-ms-runtime.client-payload.nonce", "exists": True},
    {"anyOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"},
               {"claim": "x-ms-attestation-type", "equals": "tdxvm"}]}]}]}
# several authorities: an untrusted one, AUTH2 (no trailing slash here, one in the
# configuration), AUTH3 with a trailing slash here and anyOf
MULTI_POLICY = {"version": "1.0.0", "anyOf": [
    {"authority": UNTRUSTED, "allOf": [{"claim": "sdk-test", "equals": True}]},
    {"authority": AUTH2, "allOf": [{"claim": "x-ms-attestation-type", "equals": "sevsnpvm"}]},
    {"authority": AUTH3 + "/", "anyOf": [{"claim": "sdk-test", "equals": "yes"},
                                         {"claim": "x-ms-attestation-type", "equals": "tdxvm"}]}]}


def main():
    args = parse_args()
    runner = Runner()
    work = tempfile.mkdtemp(prefix="kvmock-skr-")
    try:
        run(args, runner, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(runner.exit_code())


def run(args, runner, work):
    # ---- the authorities' signing keys and the TEE's keys ----------------------------------
    auth_key, auth_key2 = new_rsa(), new_rsa(3072)
    auth2_p256 = ec.generate_private_key(ec.SECP256R1())
    auth2_p384 = ec.generate_private_key(ec.SECP384R1())
    auth3_key = new_rsa()
    auth3_cert = self_signed(auth3_key, "kvmock e2e attestation signer")
    stranger = new_rsa()  # signs tokens no authority published
    write(os.path.join(work, "jwks", "maa.json"), json.dumps({"keys": [
        rsa_pub_jwk(auth_key, kid="auth-rs-1", use="sig", alg="RS256"),
        rsa_pub_jwk(auth_key2, kid="auth-rs-2")]}))
    auth3_jwks = {"keys": [{"kty": "RSA", "kid": "maa-x5c-1", "x5c": [
        base64.b64encode(auth3_cert.public_bytes(serialization.Encoding.DER)).decode()]}]}

    tee = new_rsa()  # the TEE's encryption key, in x-ms-runtime.keys
    tee_use = new_rsa()  # "use": "enc" rather than key_ops
    tee_3072, tee_4096 = new_rsa(3072), new_rsa(4096)
    tee_small = new_rsa(1024)
    tee_keys = {"tee-enc-1": tee, "tee-use-enc": tee_use, "tee-3072": tee_3072,
                "tee-4096": tee_4096}
    TEE_JWK = rsa_pub_jwk(tee, kid="tee-enc-1", key_ops=["encrypt"])

    config = {
        "tenantId": TENANT,
        "identities": [APP, RELEASER, NO_RELEASE, RBAC_RELEASER, RBAC_USER],
        "attestationAuthorities": [
            {"authority": AUTH, "jwks": "jwks/maa.json"},
            {"authority": AUTH2 + "/", "jwks": {"keys": [
                ec_pub_jwk(auth2_p256, kid="ec-256", use="sig"),
                ec_pub_jwk(auth2_p384, kid="ec-384")]}},
            {"authority": AUTH3, "jwks": auth3_jwks},
        ],
        "vaults": [
            {"name": "premium", "properties": {"sku": PREMIUM, "accessPolicies": [
                {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}},
                {"objectId": RELEASER["objectId"], "permissions": {"keys": ["get", "release"]}},
                {"objectId": NO_RELEASE["objectId"], "permissions": {"keys": ALL_BUT_RELEASE}}]}},
            {"name": "standard", "properties": {"sku": STANDARD}},
            {"name": "nosku", "properties": {}},
            {"name": "rbacp", "properties": {"sku": PREMIUM, "enableRbacAuthorization": True}},
        ],
        "roleAssignments": [
            {"principalId": APP["objectId"], "roleDefinitionName": "Key Vault Crypto Officer",
             "scope": "/vaults/rbacp"},
            {"principalId": RBAC_RELEASER["objectId"],
             "roleDefinitionName": "Key Vault Crypto Service Release User",
             "scope": "/vaults/rbacp/keys/rbac-skr"},
            {"principalId": RBAC_USER["objectId"], "roleDefinitionName": "Key Vault Crypto User",
             "scope": "/vaults/rbacp"},
        ],
    }
    config_path = write(os.path.join(work, "config.json"), json.dumps(config, indent=1))

    released = {}  # label -> private bytes released (PKCS#8 DER, oct bytes, AES keys)

    with Kvmock(args.kvmock, config=config_path, extra_args=["--log-level", "debug"]) as kv:
        kv.apply_env()
        P = kv.https_port
        with open(kv.ca_path, "rb") as f:
            ca_cert = x509.load_pem_x509_certificate(f.read())
        ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
        tokens = {}

        def token(identity=None):
            cid = identity["clientId"] if identity else None
            if cid not in tokens:
                tokens[cid] = kv.token(client_id=cid)
            return tokens[cid]

        def url(vault="premium"):
            return kv.vault_url(vault)

        def call(method, path, body=None, vault="premium", identity=None, api=API):
            """Raw HTTPS to a vault; (status, parsed body or None)."""
            sep = "&" if "?" in path else "?"
            st, _, resp = kv.https(method, f"{path}{sep}api-version={api}", body,
                                   host=f"{vault}.vault.localhost:{P}", token=token(identity))
            return st, (json.loads(resp) if resp else None)

        def ok(method, path, body=None, **kw):
            st, doc = call(method, path, body, **kw)
            eq(st, 200, f"{method} {path}: {doc}")
            return doc

        def refused(answer, status, code, message=None, prefix=None, inner=None, what=""):
            st, doc = answer
            eq(st, status, f"{what}: {doc}")
            err = (doc or {}).get("error", {})
            eq(err.get("code"), code, f"{what}: {doc}")
            if message is not None:
                eq(err.get("message"), message, what)
            if prefix is not None:
                check(err.get("message", "").startswith(prefix),
                      f"{what}: want {prefix!r}..., got {err.get('message')!r}")
            if inner is not None:
                eq(err.get("innererror", {}).get("code"), inner, f"{what}: {doc}")
            return err.get("message", "")

        def sdk_refused(fn, status, code, message=None, prefix=None, what=""):
            try:
                fn()
            except HttpResponseError as e:
                body = json.loads(e.response.text())
                return refused((e.status_code, body), status, code, message, prefix, what=what)
            raise AssertionError(f"{what}: the SDK call succeeded, want {status} {code}")

        def absent(name, vault="premium"):
            st, doc = call("GET", f"/keys/{name}", vault=vault)
            eq(st, 404, f"{name} must not exist: {doc}")

        cred = ManagedIdentityCredential()
        client = KeyClient(url(), cred)
        standard = KeyClient(url("standard"), cred)
        nosku = KeyClient(url("nosku"), cred)

        def rp(policy=MAIN_POLICY, **kw):
            return KeyReleasePolicy(policy_bytes(policy), **kw)

        def attest(over=None, *, key=None, kid="auth-rs-1", alg="RS256", iss=AUTH,
                   runtime=None, header=None):
            """An attestation token as Azure Attestation issues it for an SEV-SNP CVM."""
            now = int(time.time())
            claims = {
                "iss": iss, "iat": now, "nbf": now - 5, "exp": now + 600, "jti": uuid.uuid4().hex,
                "x-ms-ver": "1.0", "x-ms-attestation-type": "sevsnpvm",
                "x-ms-policy-hash": b64url(hashlib.sha256(b"policy").digest()),
                "x-ms-isolation-tee": {
                    "x-ms-attestation-type": "sevsnpvm",
                    "x-ms-compliance-status": "azure-compliant-cvm",
                    "x-ms-sevsnpvm-is-debuggable": False, "x-ms-sevsnpvm-guestsvn": 7,
                    "x-ms-sevsnpvm-vmpl": 0, "x-ms-sevsnpvm-bootloader-svn": 3},
                "sdk-test": True,
                "x-ms-runtime": {"keys": [TEE_JWK] if runtime is None else runtime,
                                 "client-payload": {"nonce": "bm9uY2U"}},
            }
            for path, value in (over or {}).items():
                set_path(claims, path, value)
            head = {"alg": alg, "typ": "JWT", "kid": kid, "jku": iss + "/certs"}
            head.update(header or {})
            head = {k: v for k, v in head.items() if v is not None}
            if key is None:
                key = {"auth-rs-1": auth_key, "auth-rs-2": auth_key2, "ec-256": auth2_p256,
                       "ec-384": auth2_p384, "maa-x5c-1": auth3_key}.get(kid, auth_key)
            return make_jws(head, claims, key, alg)

        def release_raw(name, version="", target=None, enc=None, nonce=None, identity=None,
                        path=None, api=API, vault="premium"):
            body = {"target": attest() if target is None else target}
            if enc is not None:
                body["enc"] = enc
            if nonce is not None:
                body["nonce"] = nonce
            return call("POST", path or f"/keys/{name}/{version}/release", body, vault=vault,
                        identity=identity, api=api)

        # ---- opening a release ------------------------------------------------------------

        def open_jws(value):
            """Verify the JWS with x5c[0] and its chain to kvmock's CA; (header, payload)."""
            parts = value.split(".")
            eq(len(parts), 3, "a compact JWS")
            header = json.loads(unb64url(parts[0]))
            eq(set(header), {"alg", "kid", "x5t", "typ", "x5t#S256", "x5c"}, f"header {header}")
            eq((header["alg"], header["typ"]), ("RS256", "JWT"), "alg and typ")
            eq(len(header["x5c"]), 2, "x5c: the leaf and kvmock's CA")
            leaf_der = base64.b64decode(header["x5c"][0], validate=True)
            eq(base64.b64decode(header["x5c"][1], validate=True), ca_der,
               "x5c[1] is kvmock's CA (DATA/tls/ca.pem)")
            eq(header["kid"], hashlib.sha1(leaf_der).hexdigest().upper(), "kid: SHA-1 of x5c[0]")
            eq(header["x5t"], b64url(hashlib.sha1(leaf_der).digest()), "x5t")
            eq(header["x5t#S256"], b64url(hashlib.sha256(leaf_der).digest()), "x5t#S256")
            leaf = x509.load_der_x509_certificate(leaf_der)
            eq(leaf.issuer, ca_cert.subject, "the leaf's issuer is kvmock's CA")
            ca_cert.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes,
                                        ec.ECDSA(leaf.signature_hash_algorithm))
            now = datetime.datetime.utcnow()
            check(leaf.not_valid_before <= now <= leaf.not_valid_after, "the leaf is valid now")
            # raises InvalidSignature when the payload is not what x5c[0] signed
            leaf.public_key().verify(unb64url(parts[2]), f"{parts[0]}.{parts[1]}".encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
            return header, json.loads(unb64url(parts[1]))

        def unwrap_hsm(key_hsm, enc, target_kid="tee-enc-1"):
            """key_hsm -> (plaintext key material, the AES key that wrapped it)."""
            doc = json.loads(unb64url(key_hsm))
            eq(set(doc), {"schema_version", "header", "ciphertext"}, f"key_hsm {doc}")
            eq(doc["schema_version"], "1.0", "schema_version")
            eq(doc["header"], {"kid": target_kid, "alg": "dir", "enc": enc}, "key_hsm header")
            ct = unb64url(doc["ciphertext"])
            target = tee_keys[target_kid]
            size = target.key_size // 8
            h = ENCS[enc]
            kek = target.decrypt(ct[:size], padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(),
                                                         label=None))
            eq(len(kek), 32, "the wrapping key is AES-256")
            plain = aes_key_unwrap_with_padding(kek, ct[size:])
            eq(len(ct), size + (len(plain) + 7) // 8 * 8 + 8, "ciphertext = OAEP block || KWP")
            return plain, kek

        def get_raw(name, version=""):
            return ok("GET", f"/keys/{name}/{version}")

        def verify_release(value, name, enc="CKM_RSA_AES_KEY_WRAP", version=None, nonce=None,
                           target_kid="tee-enc-1", api=None, vault="premium"):
            """Everything a release's answer must be; returns (payload, private bytes).
            api: the api-version the release was asked with (None: the SDK's)."""
            _, payload = open_jws(value)
            api = api or client.api_version
            eq(set(payload), {"request", "response"}, "payload members")
            want_req = {"api-version": api, "enc": enc,
                        "kid": f"{url(vault)}/keys/{name}" + (f"/{version}" if version else "")}
            if nonce is not None:
                want_req["nonce"] = nonce
            eq(payload["request"], want_req, "the signed request")
            resp = payload["response"]["key"]
            bundle = get_raw(name, version or "") if vault == "premium" else \
                ok("GET", f"/keys/{name}/{version or ''}", vault=vault)
            key = dict(resp["key"])
            hsm = key.pop("key_hsm")
            # Key Vault names the released key's type without -HSM (RSA, EC, oct), as its
            # recorded releases show, though the bundle says RSA-HSM, EC-HSM or oct-HSM
            want_key = dict(bundle["key"], kty=bundle["key"]["kty"].removesuffix("-HSM"))
            check(key["kty"] in ("RSA", "EC", "oct"), f"released kty {key['kty']!r}")
            eq(key, want_key, "the released key's public part is the vault's")
            eq(resp["attributes"], bundle["attributes"], "attributes as GET gives them")
            eq(resp["attributes"]["exportable"], True, "exportable")
            eq(resp["release_policy"], {"data": bundle["release_policy"]["data"],
                                        "immutable": bundle["release_policy"]["immutable"]},
               "release_policy without contentType")
            eq(resp.get("tags"), bundle.get("tags"), "tags")
            eq(set(resp) - {"tags"}, {"key", "attributes", "release_policy"}, "response.key")
            plain, kek = unwrap_hsm(hsm, enc, target_kid)
            prove(bundle, plain, vault)
            released[f"{name} {bundle['key']['kid']} {enc} {len(released)}"] = plain
            released[f"KEK {len(released)}"] = kek
            return payload, plain

        def prove(bundle, plain, vault="premium"):
            """The released material is the vault key's private part."""
            k = bundle["key"]
            kid_path = k["kid"].split(f":{P}", 1)[1]
            if k["kty"] == "RSA-HSM":
                priv = serialization.load_der_private_key(plain, None)
                check(isinstance(priv, rsa.RSAPrivateKey), "PKCS#8 of an RSA key")
                eq(plain, priv.private_bytes(serialization.Encoding.DER,
                                             serialization.PrivateFormat.PKCS8,
                                             serialization.NoEncryption()), "PKCS#8 DER")
                pn = priv.private_numbers()
                eq(int_bytes(pn.public_numbers.n), unb64url(k["n"]), "n")
                eq(pn.public_numbers.e, int.from_bytes(unb64url(k["e"]), "big"), "e")
                eq(pn.p * pn.q, pn.public_numbers.n, "p*q = n")
                # kvmock encrypts with its copy, the released key decrypts
                msg = secrets.token_bytes(32)
                ct = ok("POST", f"{kid_path}/encrypt", {"alg": "RSA-OAEP-256", "value": b64url(msg)},
                        vault=vault)["value"]
                eq(priv.decrypt(unb64url(ct), padding.OAEP(padding.MGF1(hashes.SHA256()),
                                                           hashes.SHA256(), None)), msg,
                   "the released key decrypts what the vault key encrypted")
            elif k["kty"] == "EC-HSM":
                curve, h, alg = CURVES[k["crv"]]
                priv = serialization.load_der_private_key(plain, None)
                check(isinstance(priv, ec.EllipticCurvePrivateKey), "PKCS#8 of an EC key")
                eq(priv.curve.name, curve.name, "curve")
                d = priv.private_numbers().private_value
                pub = ec.derive_private_key(d, curve()).public_key().public_numbers()
                size = (priv.curve.key_size + 7) // 8
                eq((int_bytes(pub.x, size), int_bytes(pub.y, size)),
                   (unb64url(k["x"]), unb64url(k["y"])), "d * G is the vault key's (x, y)")
                # the released key signs, the vault key verifies
                msg = secrets.token_bytes(40)
                r, s = decode_dss_signature(priv.sign(msg, ec.ECDSA(h())))
                digest = hashlib.new(h.name, msg).digest()
                sig = int_bytes(r, size) + int_bytes(s, size)
                got = ok("POST", f"{kid_path}/verify",
                         {"alg": alg, "digest": b64url(digest), "value": b64url(sig)}, vault=vault)
                eq(got["value"], True, "the vault key verifies the released key's signature")
                bad = bytearray(sig)
                bad[-1] ^= 1
                got = ok("POST", f"{kid_path}/verify",
                         {"alg": alg, "digest": b64url(digest), "value": b64url(bytes(bad))},
                         vault=vault)
                eq(got["value"], False, "and not a flipped one (the check can fail)")
            elif k["kty"] == "oct-HSM":
                check(len(plain) in (16, 24, 32), f"oct key of {len(plain)} bytes")
                alg = f"A{len(plain) * 8}KW"
                dek = secrets.token_bytes(32)
                wrapped = ok("POST", f"{kid_path}/wrapkey", {"alg": alg, "value": b64url(dek)},
                             vault=vault)["value"]
                eq(aes_key_unwrap(plain, unb64url(wrapped)), dek,
                   f"the released bytes unwrap what the vault's {alg} wrapped")
                dek2 = secrets.token_bytes(24)
                got = ok("POST", f"{kid_path}/unwrapkey",
                         {"alg": alg, "value": b64url(aes_key_wrap(plain, dek2))}, vault=vault)
                eq(unb64url(got["value"]), dek2, "the vault unwraps what the released bytes wrapped")
            else:
                raise AssertionError(f"unexpected kty {k['kty']}")
            check("d" not in k and "k" not in k, "GET carries no private part")

        def sdk_release(name, **kw):
            return client.release_key(name, attest(), **kw).value

        def create_exportable(name, kind="rsa", policy=MAIN_POLICY, c=None, **kw):
            c = c or client
            args = dict(hardware_protected=True, exportable=True, release_policy=rp(policy))
            args.update(kw)
            if kind == "rsa":
                return c.create_rsa_key(name, **args)
            if kind == "ec":
                return c.create_ec_key(name, **args)
            return c.create_oct_key(name, **args)

        # ======================================================================= rules =====

        @runner.test
        def exportable_needs_a_premium_vault():
            for c, vault in ((standard, "standard"), (nosku, "nosku")):
                for kind in ("rsa", "ec", "oct"):
                    sdk_refused(lambda: create_exportable(f"std-{kind}", kind, c=c), 400,
                                "BadParameter", MSG_1001, what=f"{kind} in {vault}")
                    absent(f"std-{kind}", vault)
                refused(call("POST", "/keys/std-raw/create",
                             {"kty": "RSA-HSM", "attributes": {"exportable": True},
                              "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}},
                             vault=vault), 400, "BadParameter", MSG_1001, what=f"raw {vault}")
                # the same key without exportable: a hardware key, which a standard vault
                # does not make either (a vault of the file without a sku is standard)
                sdk_refused(lambda: c.create_rsa_key("std-plain", hardware_protected=True), 403,
                            "Forbidden", "Hardware key operation not allowed on standard vault",
                            what=f"hardware key in {vault}")
                absent("std-plain", vault)
            # and the same request in the premium vault is not refused
            st, doc = call("POST", "/keys/prem-raw/create",
                           {"kty": "RSA-HSM", "attributes": {"exportable": True},
                            "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}})
            eq(st, 200, doc)
            eq(doc["attributes"]["exportable"], True, "exportable")

        @runner.test
        def exportable_keys_are_hsm_keys():
            for kind, kty in (("rsa", "RSA"), ("ec", "EC"), ("oct", "oct")):
                msg = sdk_refused(lambda: create_exportable(f"soft-{kind}", kind,
                                                            hardware_protected=False),
                                  400, "BadParameter", prefix="AKV.SKR.1006:", what=kty)
                absent(f"soft-{kind}")
                refused(call("POST", f"/keys/soft-raw-{kind}/create",
                             {"kty": kty, "attributes": {"exportable": True},
                              "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}}),
                        400, "BadParameter", msg, what=f"raw {kty}")
                absent(f"soft-raw-{kind}")
            # import: a software key (hsm false) may not be exportable either
            jwk = JsonWebKey(kty="RSA", **{k: v for k, v in jwk_private(new_rsa()).items()
                                           if k != "kty"})
            sdk_refused(lambda: client.import_key("soft-imp", jwk, hardware_protected=False,
                                                  exportable=True, release_policy=rp()),
                        400, "BadParameter", prefix="AKV.SKR.1006:", what="import")
            absent("soft-imp")

        def jwk_private(key):
            """A private key as the SDK's JsonWebKey fields (bytes)."""
            if isinstance(key, rsa.RSAPrivateKey):
                pn = key.private_numbers()
                return {"kty": "RSA", "n": int_bytes(pn.public_numbers.n),
                        "e": int_bytes(pn.public_numbers.e), "d": int_bytes(pn.d),
                        "p": int_bytes(pn.p), "q": int_bytes(pn.q), "dp": int_bytes(pn.dmp1),
                        "dq": int_bytes(pn.dmq1), "qi": int_bytes(pn.iqmp)}
            pn = key.private_numbers()
            size = (key.curve.key_size + 7) // 8
            return {"kty": "EC", "crv": {256: "P-256", 384: "P-384", 521: "P-521"}[key.key_size],
                    "x": int_bytes(pn.public_numbers.x, size),
                    "y": int_bytes(pn.public_numbers.y, size), "d": int_bytes(pn.private_value, size)}

        @runner.test
        def exportable_and_policy_go_together():
            # exportable without a policy: 1004, on create (SDK, raw) and import
            sdk_refused(lambda: client.create_rsa_key("nopol", hardware_protected=True,
                                                      exportable=True),
                        400, "BadParameter", MSG_1004, what="create")
            refused(call("POST", "/keys/nopol/create",
                         {"kty": "EC-HSM", "attributes": {"exportable": True}}),
                    400, "BadParameter", MSG_1004, what="raw create")
            jwk = JsonWebKey(**jwk_private(new_rsa()))
            sdk_refused(lambda: client.import_key("nopol", jwk, hardware_protected=True,
                                                  exportable=True),
                        400, "BadParameter", MSG_1004, what="import")
            absent("nopol")
            # a policy without exportable (absent or false): 1005
            sdk_refused(lambda: client.create_rsa_key("polonly", hardware_protected=True,
                                                      release_policy=rp()),
                        400, "BadParameter", MSG_1005, what="create without exportable")
            sdk_refused(lambda: client.create_rsa_key("polonly", hardware_protected=True,
                                                      exportable=False, release_policy=rp()),
                        400, "BadParameter", MSG_1005, what="create with exportable false")
            sdk_refused(lambda: client.import_key("polonly", jwk, hardware_protected=True,
                                                  release_policy=rp()),
                        400, "BadParameter", MSG_1005, what="import")
            refused(call("POST", "/keys/polonly/create",
                         {"kty": "oct-HSM", "key_size": 256,
                          "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}}),
                    400, "BadParameter", MSG_1005, what="raw oct-HSM")
            absent("polonly")
            # only a key's first version must be given its policy: a new version of an
            # exportable key named with none takes the current version's
            first = create_exportable("inherit", release_policy=rp(STRICT_POLICY))
            st, doc = call("POST", "/keys/inherit/create",
                           {"kty": "RSA-HSM", "attributes": {"exportable": True}})
            eq(st, 200, doc)
            check(doc["key"]["kid"] != first.id, "a new version")
            eq(doc["release_policy"], get_raw("inherit", first.properties.version)["release_policy"],
               "the first version's policy")
            # but not from a key that is not exportable
            client.create_rsa_key("plainfirst", hardware_protected=True)
            refused(call("POST", "/keys/plainfirst/create",
                         {"kty": "RSA-HSM", "attributes": {"exportable": True}}),
                    400, "BadParameter", MSG_1004, what="a new version of a plain key")

        @runner.test
        def exportable_needs_api_version_7_3():
            # Key Vault's 1001 names the condition: api-version 7.3-preview or later
            body = {"kty": "RSA-HSM", "attributes": {"exportable": True},
                    "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}}
            for api in ("2016-10-01", "7.0", "7.1", "7.2"):
                refused(call("POST", "/keys/early/create", body, api=api), 400, "BadParameter",
                        MSG_1001, what=f"create at {api}")
                refused(call("POST", "/keys/early/create",
                             {"kty": "RSA-HSM", "release_policy": body["release_policy"]},
                             api=api), 400, "BadParameter", MSG_1001, what=f"policy at {api}")
            absent("early")
            for api in ("7.3-preview", "7.3"):
                st, doc = call("POST", "/keys/early/create", body, api=api)
                eq(st, 200, (api, doc))
            refused(call("PATCH", "/keys/early", {"release_policy": body["release_policy"]},
                         api="7.2"), 400, "BadParameter", MSG_1001, what="update at 7.2")
            eq(call("PATCH", "/keys/early", {"release_policy": body["release_policy"]})[0], 200,
               "update at the test's own version")
            # and release itself came with 7.3-preview
            for api in ("7.0", "7.2"):
                st, doc = release_raw("early", api=api)
                eq(st, 400, doc)
                check("7.3-preview" in doc["error"]["message"], doc)
            eq(release_raw("early", api="7.3")[0], 200, "release at 7.3")

        @runner.test
        def malformed_policies_are_refused():
            def create(data):
                return call("POST", "/keys/badpol/create",
                            {"kty": "RSA-HSM", "attributes": {"exportable": True},
                             "release_policy": {"data": b64url(data)}})

            good = policy_bytes(MAIN_POLICY)
            for data in (b"not json", good[:-5], b"{\"version\":\"1.0.0\",", b""):
                if data:
                    refused(create(data), 400, "BadParameter", MSG_1013_JSON, what=repr(data[:30]))
            # through the SDK too
            sdk_refused(lambda: create_exportable("badpol", policy=b"{not json}"), 400,
                        "BadParameter", MSG_1013_JSON, what="SDK")

            def grammar(**top):
                doc = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "allOf": [
                    {"claim": "sdk-test", "equals": True}]}]}
                doc.update(top)
                return json.dumps({k: v for k, v in doc.items() if v is not DROP}).encode()

            def one(cond=None, **auth):
                a = {"authority": AUTH, "allOf": [cond or {"claim": "sdk-test", "equals": True}]}
                a.update(auth)
                return grammar(anyOf=[{k: v for k, v in a.items() if v is not DROP}])

            nested = {"claim": "sdk-test", "equals": True}
            for _ in range(12):
                nested = {"allOf": [nested]}
            cases = {
                "an array": b"[]",
                "a string": b"\"policy\"",
                "no anyOf": grammar(anyOf=DROP),
                "anyOf an object": grammar(anyOf={"authority": AUTH}),
                "no version": grammar(version=DROP),
                "no authority": one(authority=DROP),
                "authority a number": one(authority=7),
                "allOf and anyOf": one(anyOf=[{"claim": "sdk-test", "equals": True}]),
                "neither allOf nor anyOf": one(allOf=DROP),
                "no claim": one({"equals": "true"}),
                "unknown operator": one({"claim": "sdk-test", "matches": "t.*"}),
                "two operators": one({"claim": "sdk-test", "equals": "a", "notEquals": "b"}),
                "no operator": one({"claim": "sdk-test"}),
                "an object value": one({"claim": "sdk-test", "equals": {"a": 1}}),
                "nested too deep": one(nested),
            }
            for label, data in cases.items():
                refused(create(data), 400, "BadParameter", prefix=MSG_1013, what=label)
            # data that is not base64url, or missing
            for bad in ({"data": "!!not base64!!"}, {"data": ""}, {}, "text"):
                refused(call("POST", "/keys/badpol/create",
                             {"kty": "RSA-HSM", "attributes": {"exportable": True},
                              "release_policy": bad}), 400, "BadParameter", what=repr(bad))
            absent("badpol")
            # the accepted baseline, so the refusals above are the grammar's
            eq(create(one())[0], 200, "the well-formed policy")

        @runner.test
        def the_policy_is_stored_normalized():
            key = create_exportable("norm")
            want = normalized(MAIN_POLICY)
            # written out by hand, so that a wrong normalized() cannot agree with kvmock
            eq(want, '{"version":"1.0.0","anyOf":[{"authority":"' + AUTH + '","allOf":['
               '{"claim":"x-ms-attestation-type","equals":"sevsnpvm"},'
               '{"claim":"x-ms-isolation-tee.x-ms-compliance-status","equals":"azure-compliant-cvm"},'
               '{"claim":"x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable","equals":"false"},'
               '{"claim":"sdk-test","equals":"true"}]}]}')
            eq(key.properties.exportable, True, "create: exportable")
            eq(key.properties.release_policy.encoded_policy.decode(), want, "create: the policy")
            eq(key.properties.release_policy.content_type, CONTENT_TYPE, "create: contentType")
            eq(key.properties.release_policy.immutable, False, "create: immutable")
            eq(key.key_type, "RSA-HSM", "kty")
            got = client.get_key("norm")
            eq(got.properties.release_policy.encoded_policy.decode(), want, "GET: the policy")
            doc = get_raw("norm")
            eq(doc["release_policy"], {"contentType": CONTENT_TYPE, "data": b64url(want.encode()),
                                       "immutable": False}, "GET: raw release_policy")
            eq(doc["attributes"]["exportable"], True, "GET: attributes.exportable")
            # numbers, operators, nesting; the stored form is compact whatever was sent
            doc = ok("POST", "/keys/norm-ops/create",
                     {"kty": "EC-HSM", "crv": "P-256", "attributes": {"exportable": True},
                      "release_policy": {"data": b64url(policy_bytes(OPS_POLICY)),
                                         "immutable": True, "contentType": CONTENT_TYPE}})
            stored = unb64url(doc["release_policy"]["data"]).decode()
            eq(stored, normalized(OPS_POLICY), "the operators' policy")
            eq(json.loads(stored)["anyOf"][0]["allOf"][3], {"claim": "x-ms-isolation-tee."
               "x-ms-sevsnpvm-bootloader-svn", "greater": 2}, "greater keeps its number")
            eq(doc["release_policy"]["immutable"], True, "immutable")
            eq(doc["release_policy"]["contentType"], CONTENT_TYPE, "contentType")
            numbers = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "anyOf": [
                {"equals": 5, "claim": "svn"}, {"notEquals": False, "claim": "debug"}]}]}
            doc = ok("POST", "/keys/norm-num/create",
                     {"kty": "oct-HSM", "key_size": 256, "attributes": {"exportable": True},
                      "release_policy": {"data": b64url(json.dumps(numbers).encode())}})
            eq(unb64url(doc["release_policy"]["data"]).decode(),
               '{"version":"1.0.0","anyOf":[{"authority":"' + AUTH + '","anyOf":['
               '{"claim":"svn","equals":"5"},{"claim":"debug","notEquals":"false"}]}]}',
               "numbers and booleans as text")
            # a key that is not exportable shows exportable false and no policy
            plain = get_raw(client.create_rsa_key("norm-plain", hardware_protected=True).name)
            check("release_policy" not in plain, plain)
            eq(plain["attributes"].get("exportable", False), False, "not exportable")

        # ==================================================================== releases =====

        @runner.test
        def release_rsa_hsm_with_each_enc():
            key = create_exportable("rsa-skr", size=2048, tags={"team": "skr"})
            version = key.properties.version
            kek = set()
            mats = set()
            # the SDK without an algorithm: no enc sent, the default applies
            payload, plain = verify_release(sdk_release("rsa-skr"), "rsa-skr")
            eq(payload["response"]["key"]["key"]["kid"], key.id, "the released version")
            check("nonce" not in payload["request"], "no nonce when none was sent")
            mats.add(plain)
            for enc, alg in (("CKM_RSA_AES_KEY_WRAP", Kea.ckm_rsa_aes_key_wrap),
                             ("RSA_AES_KEY_WRAP_256", Kea.rsa_aes_key_wrap_256),
                             ("RSA_AES_KEY_WRAP_384", Kea.rsa_aes_key_wrap_384)):
                nonce = f"n-{enc}-{secrets.token_hex(4)}"
                value = client.release_key("rsa-skr", attest(), algorithm=alg, nonce=nonce).value
                payload, plain = verify_release(value, "rsa-skr", enc, nonce=nonce)
                mats.add(plain)
                kek.add(list(released.values())[-1])
                # the versioned form, with the key's version
                value = client.release_key("rsa-skr", attest(), version=version, algorithm=alg).value
                verify_release(value, "rsa-skr", enc, version=version)
                kek.add(list(released.values())[-1])
            eq(len(mats), 1, "every release carries the same private key")
            eq(len(kek), 6, "a fresh AES key for every release")
            # the wrong OAEP hash does not open it: enc really selects the hash
            value = client.release_key("rsa-skr", attest(),
                                       algorithm=Kea.rsa_aes_key_wrap_256).value
            hsm = json.loads(unb64url(open_jws(value)[1]["response"]["key"]["key"]["key_hsm"]))
            ct = unb64url(hsm["ciphertext"])
            try:
                tee.decrypt(ct[:256], padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(), None))
                check(False, "SHA-1 OAEP opened an RSA_AES_KEY_WRAP_256 release")
            except ValueError:
                pass

        @runner.test
        def release_ec_hsm_on_each_curve():
            for crv in CURVES:
                name = f"ec-skr-{crv.lower()}"
                key = create_exportable(name, "ec", curve=crv)
                eq(key.key_type, "EC-HSM", "kty")
                for enc, alg in (("CKM_RSA_AES_KEY_WRAP", None),
                                 ("RSA_AES_KEY_WRAP_384", Kea.rsa_aes_key_wrap_384)):
                    kw = {"algorithm": alg} if alg else {}
                    _, plain = verify_release(client.release_key(name, attest(), **kw).value,
                                              name, enc)

        @runner.test
        def release_oct_hsm():
            for bits in (256, 128):
                name = f"oct-skr-{bits}"
                key = create_exportable(name, "oct", size=bits)
                eq(key.key_type, "oct-HSM", "kty")
                for enc in ENCS:
                    value = client.release_key(name, attest(), algorithm=enc, nonce="oct").value
                    _, plain = verify_release(value, name, enc, nonce="oct")
                    eq(len(plain), bits // 8, "the raw key bytes")

        @runner.test
        def release_imported_keys_gives_them_back():
            rkey = new_rsa()
            imp = client.import_key("imp-rsa", JsonWebKey(**jwk_private(rkey)),
                                    hardware_protected=True, exportable=True, release_policy=rp())
            eq((imp.key_type, imp.properties.exportable), ("RSA-HSM", True), "imported RSA")
            _, plain = verify_release(sdk_release("imp-rsa"), "imp-rsa")
            eq(serialization.load_der_private_key(plain, None).private_numbers(),
               rkey.private_numbers(), "the released RSA key is the imported one")
            ekey = ec.generate_private_key(ec.SECP384R1())
            client.import_key("imp-ec", JsonWebKey(**jwk_private(ekey)), hardware_protected=True,
                              exportable=True, release_policy=rp())
            _, plain = verify_release(sdk_release("imp-ec", algorithm="RSA_AES_KEY_WRAP_256"),
                                      "imp-ec", "RSA_AES_KEY_WRAP_256")
            eq(serialization.load_der_private_key(plain, None).private_numbers().private_value,
               ekey.private_numbers().private_value, "the released EC key is the imported one")
            k = secrets.token_bytes(32)
            st, doc = call("PUT", "/keys/imp-oct",
                           {"key": {"kty": "oct-HSM", "k": b64url(k),
                                    "key_ops": ["wrapKey", "unwrapKey"]},
                            "hsm": True, "attributes": {"exportable": True},
                            "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}})
            eq(st, 200, doc)
            eq(doc["release_policy"]["data"], b64url(normalized(MAIN_POLICY).encode()), "policy")
            _, plain = verify_release(sdk_release("imp-oct"), "imp-oct")
            eq(plain, k, "the released oct bytes are the imported ones")

        @runner.test
        def versionless_and_versioned_urls():
            v1 = create_exportable("vers").properties.version
            v2 = create_exportable("vers").properties.version
            check(v1 != v2, "two versions")
            n1, n2 = get_raw("vers", v1)["key"]["n"], get_raw("vers", v2)["key"]["n"]
            check(n1 != n2, "different material")
            base = f"{url()}/keys/vers"
            # the SDKs' empty version (//), the single-slash form, and each version
            for path, version, latest in (("/keys/vers//release", None, v2),
                                          ("/keys/vers/release", None, v2),
                                          (f"/keys/vers/{v1}/release", v1, v1),
                                          (f"/keys/vers/{v2}/release", v2, v2)):
                st, doc = release_raw("vers", path=path, nonce="abc")
                eq(st, 200, f"{path}: {doc}")
                payload, _ = verify_release(doc["value"], "vers", version=version, nonce="abc",
                                            api=API)
                eq(payload["request"]["kid"], base + (f"/{version}" if version else ""),
                   f"{path}: request.kid as the URL named it")
                eq(payload["response"]["key"]["key"]["kid"], f"{base}/{latest}",
                   f"{path}: response kid")
                eq(payload["response"]["key"]["key"]["n"], n1 if latest == v1 else n2,
                   f"{path}: that version's key")
            # the api-version is the request's
            for api in ("7.3", "7.5"):
                st, doc = release_raw("vers", api=api)
                eq(st, 200, doc)
                verify_release(doc["value"], "vers", api=api)
            # a version that does not exist
            refused(release_raw("vers", "0" * 32), 404, "KeyNotFound", what="unknown version")
            refused(release_raw("nosuchkey"), 404, "KeyNotFound", what="unknown key")

        # ===================================================================== updates =====

        @runner.test
        def update_replaces_a_mutable_policy():
            create_exportable("upd")
            eq(client.release_key("upd", attest()).value.count("."), 2, "released before")
            strict = attest({"x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn": 9})
            key = client.update_key_properties("upd", release_policy=rp(STRICT_POLICY))
            eq(key.properties.release_policy.encoded_policy.decode(), normalized(STRICT_POLICY),
               "update answers the new policy")
            eq(key.properties.exportable, True, "still exportable")
            eq(get_raw("upd")["release_policy"]["data"], b64url(normalized(STRICT_POLICY).encode()),
               "GET gives the new policy")
            # the old token no longer meets it, one with SVN 9 does
            refused(release_raw("upd"), 403, "Forbidden", prefix=VERIFY_PREFIX, what="old claims")
            payload, _ = verify_release(client.release_key("upd", strict).value, "upd")
            eq(unb64url(payload["response"]["key"]["release_policy"]["data"]).decode(),
               normalized(STRICT_POLICY), "the signed policy is the new one")
            # attributes alone keep the policy
            key = client.update_key_properties("upd", tags={"a": "b"})
            eq(key.properties.release_policy.encoded_policy.decode(), normalized(STRICT_POLICY),
               "a tags update keeps the policy")
            # exportable repeated unchanged with a new policy: fine (raw, as .NET sends it)
            doc = ok("PATCH", "/keys/upd/", {
                "attributes": {"exportable": True},
                "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}})
            eq(doc["release_policy"]["data"], b64url(normalized(MAIN_POLICY).encode()), "back to main")
            verify_release(client.release_key("upd", attest()).value, "upd")
            # a malformed policy on update: 1013, nothing changed
            refused(call("PATCH", "/keys/upd", {"release_policy": {"data": b64url(b"{oops")}}),
                    400, "BadParameter", MSG_1013_JSON, what="malformed update")
            eq(get_raw("upd")["release_policy"]["data"], b64url(normalized(MAIN_POLICY).encode()),
               "unchanged")

        @runner.test
        def an_immutable_policy_cannot_change():
            key = create_exportable("imm", "ec", release_policy=rp(immutable=True))
            eq(key.properties.release_policy.immutable, True, "immutable")
            before = get_raw("imm")["release_policy"]
            for policy, label in ((STRICT_POLICY, "another policy"), (MAIN_POLICY, "the same one")):
                sdk_refused(lambda: client.update_key_properties(
                    "imm", release_policy=rp(policy, immutable=True)), 400, "BadParameter",
                    MSG_1020, what=label)
            refused(call("PATCH", "/keys/imm", {"release_policy": {
                "data": b64url(policy_bytes(STRICT_POLICY)), "immutable": False}}),
                400, "BadParameter", MSG_1020, what="raw, making it mutable")
            eq(get_raw("imm")["release_policy"], before, "the policy is unchanged")
            # other updates still work and keep it
            key = client.update_key_properties("imm", tags={"x": "y"})
            eq(key.properties.release_policy.immutable, True, "kept")
            verify_release(sdk_release("imm"), "imm")
            # a mutable policy may become immutable, and is then fixed
            create_exportable("imm2")
            key = client.update_key_properties("imm2",
                                               release_policy=rp(STRICT_POLICY, immutable=True))
            eq((key.properties.release_policy.immutable,
                key.properties.release_policy.encoded_policy.decode()),
               (True, normalized(STRICT_POLICY)), "made immutable")
            sdk_refused(lambda: client.update_key_properties("imm2", release_policy=rp()),
                        400, "BadParameter", MSG_1020, what="after making it immutable")

        @runner.test
        def the_exportable_state_cannot_change():
            create_exportable("exp")
            plain_key = client.create_rsa_key("notexp", hardware_protected=True)
            before = get_raw("exp")["release_policy"]
            refused(call("PATCH", "/keys/exp", {"attributes": {"exportable": False}}), 400,
                    "BadParameter", MSG_1014, what="exportable -> false")
            eq(get_raw("exp")["attributes"]["exportable"], True, "still exportable")
            eq(get_raw("exp")["release_policy"], before, "policy unchanged")
            refused(call("PATCH", "/keys/notexp", {
                "attributes": {"exportable": True},
                "release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}}),
                400, "BadParameter", MSG_1014, what="not exportable -> true")
            # a policy on a key that is not exportable: 1005 (SDK and raw)
            sdk_refused(lambda: client.update_key_properties("notexp", release_policy=rp()),
                        400, "BadParameter", MSG_1005, what="SDK policy on non-exportable")
            refused(call("PATCH", f"/keys/notexp/{plain_key.properties.version}",
                         {"release_policy": {"data": b64url(policy_bytes(MAIN_POLICY))}}),
                    400, "BadParameter", MSG_1005, what="raw, versioned")
            doc = get_raw("notexp")
            check("release_policy" not in doc, doc)
            eq(doc["attributes"].get("exportable", False), False, "still not exportable")
            # repeating the key's own state is fine
            eq(call("PATCH", "/keys/exp", {"attributes": {"exportable": True}})[0], 200, "repeat true")
            eq(call("PATCH", "/keys/notexp", {"attributes": {"exportable": False}})[0], 200,
               "repeat false")

        @runner.test
        def rotate_keeps_exportable_and_the_policy():
            key = create_exportable("rot", release_policy=rp(STRICT_POLICY, immutable=True))
            old = key.properties.version
            _, old_plain = verify_release(client.release_key(
                "rot", attest({"x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn": 9})).value, "rot")
            new = client.rotate_key("rot")
            check(new.properties.version != old, "a new version")
            eq(new.key_type, "RSA-HSM", "kty kept")
            eq(new.properties.exportable, True, "exportable kept")
            eq(new.properties.release_policy.encoded_policy.decode(), normalized(STRICT_POLICY),
               "policy kept")
            eq(new.properties.release_policy.immutable, True, "immutable kept")
            eq(get_raw("rot", new.properties.version)["release_policy"],
               get_raw("rot", old)["release_policy"], "the same release_policy")
            # the new version's policy is enforced, and releases the new material
            refused(release_raw("rot"), 403, "Forbidden", prefix=VERIFY_PREFIX, what="SVN 7")
            good = attest({"x-ms-isolation-tee.x-ms-sevsnpvm-guestsvn": 11})
            payload, new_plain = verify_release(client.release_key("rot", good).value, "rot")
            eq(payload["response"]["key"]["key"]["kid"], new.id, "the latest version")
            check(new_plain != old_plain, "new material")
            _, again = verify_release(client.release_key("rot", good, version=old).value, "rot",
                                      version=old)
            eq(again, old_plain, "the old version still releases its own key")

        @runner.test
        def backup_and_restore_keep_exportable_and_the_policy():
            create_exportable("bak", "ec", curve="P-384",
                              release_policy=rp(OPS_POLICY, immutable=True))
            before = get_raw("bak")
            _, plain = verify_release(sdk_release("bak"), "bak")
            blob = client.backup_key("bak")
            check(plain not in blob and b64url(plain)[:40].encode() not in blob,
                  "the backup does not hold the key in the clear")
            client.begin_delete_key("bak").wait()
            client.purge_deleted_key("bak")
            absent("bak")
            restored = client.restore_key_backup(blob)
            eq(restored.properties.exportable, True, "exportable restored")
            eq(restored.properties.release_policy.encoded_policy.decode(), normalized(OPS_POLICY),
               "policy restored")
            eq(restored.properties.release_policy.immutable, True, "immutable restored")
            after = get_raw("bak")
            eq(after["release_policy"], before["release_policy"], "the same release_policy")
            eq(after["key"], before["key"], "the same key")
            _, again = verify_release(sdk_release("bak"), "bak")
            eq(again, plain, "the restored key releases the same private key")
            sdk_refused(lambda: client.update_key_properties("bak", release_policy=rp()), 400,
                        "BadParameter", MSG_1020, what="still immutable")

        @runner.test
        def soft_delete_recover_and_list():
            create_exportable("sd", "oct", size=256)
            before = get_raw("sd")
            _, plain = verify_release(sdk_release("sd"), "sd")
            client.begin_delete_key("sd").wait()
            refused(release_raw("sd"), 404, "KeyNotFound", what="a deleted key")
            deleted = client.get_deleted_key("sd")
            eq(deleted.properties.exportable, True, "the deleted key is exportable")
            eq(deleted.properties.release_policy.encoded_policy.decode(), normalized(MAIN_POLICY),
               "the deleted key's policy")
            client.begin_recover_deleted_key("sd").wait()
            eq(get_raw("sd")["release_policy"], before["release_policy"], "recovered with its policy")
            _, again = verify_release(sdk_release("sd"), "sd")
            eq(again, plain, "the recovered key releases the same bytes")
            # list items (KeyItem) carry no release policy
            st, doc = call("GET", "/keys?maxresults=25")
            eq(st, 200, doc)
            items = doc["value"]
            check(any(i["kid"].endswith("/keys/sd") for i in items), "sd is listed")
            check(all("release_policy" not in i for i in items), "no release_policy in KeyItem")

        @runner.test
        def special_characters_in_the_nonce_and_the_policy():
            odd = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "allOf": [
                {"claim": 'we"ird\\claim', "equals": "caf\u00e9 \u00fc\u2603"},
                {"claim": "x-ms-custom.\u00e9t\u00e9", "equals": "\u65e5\u672c </script>"}]}]}
            key = create_exportable("odd", release_policy=rp(odd))
            stored = key.properties.release_policy.encoded_policy.decode("utf-8")
            eq(json.loads(stored), json.loads(normalized(odd)), "escaped and Unicode text kept")
            check(" " not in stored.replace("caf\u00e9 \u00fc", "").replace(" </script>", ""),
                  f"compact: {stored}")
            meets = {'we"ird\\claim': "caf\u00e9 \u00fc\u2603",
                     "x-ms-custom": {"\u00e9t\u00e9": "\u65e5\u672c </script>"}}
            nonce = 'a"b\\c\u00e9\n\t\u0001</script>' + "n" * 2000
            payload, _ = verify_release(client.release_key("odd", attest(meets), nonce=nonce).value,
                                        "odd", nonce=nonce)
            eq(payload["request"]["nonce"], nonce, "the nonce, escaped and back, exactly")
            near = dict(meets, **{'we"ird\\claim': "cafe \u00fc\u2603"})
            refused(release_raw("odd", target=attest(near)), 403, "Forbidden", prefix=VERIFY_PREFIX,
                    what="one accent off")

        @runner.test
        def releases_racing_policy_updates():
            """Each release is decided and signed under one policy: with a token that meets
            MAIN_POLICY only, every 200 carries MAIN_POLICY, never the other one."""
            create_exportable("race", "ec")
            target = attest({"exp": int(time.time()) + 900})
            other = {"version": "1.0.0", "anyOf": [{"authority": AUTH, "allOf": [
                {"claim": "sdk-test", "equals": "other"}]}]}
            datas = [b64url(policy_bytes(p)) for p in (MAIN_POLICY, other)]
            tok = token()
            stop = time.time() + 5
            seen = {"ok": 0, "refused": 0, "updates": 0, "wrong": [], "errors": []}

            def one(method, path, body):
                st, _, resp = kv.https(method, f"{path}?api-version={API}", body,
                                       host=f"premium.vault.localhost:{P}", token=tok)
                return st, json.loads(resp) if resp else None

            def releaser():
                while time.time() < stop:
                    st, doc = one("POST", "/keys/race//release", {"target": target})
                    if st == 200:
                        payload = json.loads(unb64url(doc["value"].split(".")[1]))
                        signed = unb64url(payload["response"]["key"]["release_policy"]["data"])
                        if signed.decode() != normalized(MAIN_POLICY):
                            seen["wrong"].append(signed)
                        seen["ok"] += 1
                    elif st == 403 and doc["error"]["message"].startswith(VERIFY_PREFIX):
                        seen["refused"] += 1
                    else:
                        seen["errors"].append((st, doc))

            def updater():
                i = 0
                while time.time() < stop:
                    st, doc = one("PATCH", "/keys/race", {"release_policy": {"data": datas[i % 2]}})
                    if st != 200:
                        seen["errors"].append((st, doc))
                    seen["updates"] += 1
                    i += 1

            threads = [threading.Thread(target=releaser) for _ in range(4)] + \
                      [threading.Thread(target=updater)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            eq(seen["errors"][:3], [], "only 200 and 403 answers")
            eq(seen["wrong"][:1], [], "a release signed under a policy the token does not meet")
            check(seen["ok"] > 5 and seen["refused"] > 5 and seen["updates"] > 5, seen)

        # ==================================================================== refusals =====

        @runner.test
        def attestation_tokens_that_are_refused():
            create_exportable("gate")
            eq(release_raw("gate")[0], 200, "the baseline token is released")
            now = int(time.time())
            h, c, s = attest().split(".")
            claims = json.loads(unb64url(c))
            claims["sdk-test"] = True
            claims["x-ms-isolation-tee"]["x-ms-sevsnpvm-is-debuggable"] = True
            tampered = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
            sig = bytearray(unb64url(s))
            sig[5] ^= 0x40
            cases = {
                "not a JWT": "not-a-jwt",
                "two parts": f"{h}.{c}",
                "garbage parts": "e30.e30.e30",
                "a tampered payload": tampered,
                "a flipped signature": f"{h}.{c}.{b64url(bytes(sig))}",
                "alg none": attest(alg="none"),
                "HS256 keyed with the public key": attest(
                    alg="HS256", key=auth_key.public_key().public_bytes(
                        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)),
                "an unpublished key, a published kid": attest(key=stranger),
                "a kid no authority published": attest(kid="auth-rs-9", key=stranger),
                "AUTH2's key as AUTH's kid": attest(key=auth2_p256, alg="ES256"),
                "RS256 with the second key's kid": attest(kid="auth-rs-2", key=auth_key),
                "expired 10 minutes ago": attest({"exp": now - 600, "iat": now - 1200,
                                                  "nbf": now - 1200}),
                "not valid for an hour": attest({"nbf": now + 3600, "exp": now + 7200}),
                "no exp": attest({"exp": DROP}),
                "a critical header extension": attest(header={"crit": ["exp"]}),
                "an issuer outside the policy (trusted)": attest(iss=AUTH2, kid="ec-256", alg="ES256"),
                "an issuer nobody trusts": attest(iss="https://evil.attest.azure.net", key=stranger),
                "the issuer with two trailing slashes": attest(iss=AUTH + "//"),
                "no iss": attest({"iss": DROP}),
                "debuggable": attest({"x-ms-isolation-tee.x-ms-sevsnpvm-is-debuggable": True}),
                "sdk-test false": attest({"sdk-test": False}),
                "sdk-test as text 'True'": attest({"sdk-test": "True"}),
                "a claim missing": attest({"x-ms-isolation-tee.x-ms-compliance-status": DROP}),
                "the nested object missing": attest({"x-ms-isolation-tee": DROP}),
                "another attestation type": attest({"x-ms-attestation-type": "sgx"}),
                "no x-ms-runtime": attest({"x-ms-runtime": DROP}),
                "no runtime keys": attest(runtime=[]),
                "a signing key only": attest(runtime=[rsa_pub_jwk(tee, kid="s", use="sig")]),
                "key_ops without encrypt": attest(runtime=[rsa_pub_jwk(tee, kid="v",
                                                                       key_ops=["verify"])]),
                "an EC key": attest(runtime=[ec_pub_jwk(auth2_p256, kid="e", use="enc")]),
                "an RSA-1024 key": attest(runtime=[rsa_pub_jwk(tee_small, kid="small",
                                                               key_ops=["encrypt"])]),
            }
            for label, target in cases.items():
                msg = refused(release_raw("gate", target=target), 403, "Forbidden",
                              prefix=VERIFY_PREFIX, what=label)
                check(len(msg) > len(VERIFY_PREFIX) + 5, f"{label}: kvmock says what failed: {msg!r}")
                if target.count(".") == 2 and len(target.split(".")[2]) > 20:
                    check(target.split(".")[2] not in msg, f"{label}: the token is not quoted")
            # the SDK sees the same
            sdk_refused(lambda: client.release_key("gate", attest({"sdk-test": False})), 403,
                        "Forbidden", prefix=VERIFY_PREFIX, what="SDK")
            # within the 5-minute skew is fine, on both sides
            for label, over in (("expired 2 minutes ago", {"exp": now - 120, "iat": now - 700}),
                                ("valid in 2 minutes", {"nbf": now + 120})):
                st, doc = release_raw("gate", target=attest(over))
                eq(st, 200, f"{label}: {doc}")
            # PS256/PS384 and the second RSA key of the JWKS (3072 bits) are fine
            for kid, alg in (("auth-rs-1", "PS256"), ("auth-rs-2", "RS384"), ("auth-rs-2", "PS512")):
                st, doc = release_raw("gate", target=attest(kid=kid, alg=alg))
                eq(st, 200, f"{kid} {alg}: {doc}")
            # the issuer with one trailing slash (the policy has none)
            st, doc = release_raw("gate", target=attest(iss=AUTH + "/"))
            eq(st, 200, f"iss with a slash: {doc}")

        @runner.test
        def claim_operators():
            create_exportable("ops", "oct", size=256, release_policy=rp(OPS_POLICY))
            g = "x-ms-isolation-tee.x-ms-sevsnpvm-"
            cases = [
                ({}, 200),
                ({g + "guestsvn": 6}, 403), ({g + "guestsvn": 99}, 200),
                ({g + "guestsvn": 100}, 403), ({g + "guestsvn": DROP}, 403),
                ({g + "vmpl": 1}, 403), ({g + "vmpl": -1}, 200),
                ({g + "bootloader-svn": 2}, 403), ({g + "bootloader-svn": 2.5}, 200),
                ({g + "is-debuggable": True}, 403), ({g + "is-debuggable": DROP}, 403),
                ({"x-ms-runtime.client-payload.nonce": DROP}, 403),
                ({"x-ms-runtime.client-payload.nonce": ""}, 200),
                ({"x-ms-attestation-type": "tdxvm"}, 200),
                ({"x-ms-attestation-type": "sgx"}, 403),
                ({"x-ms-attestation-type": DROP}, 403),
            ]
            for over, want in cases:
                st, doc = release_raw("ops", target=attest(over))
                eq(st, want, f"{over}: {doc}")
                if want == 200:
                    verify_release(doc["value"], "ops", api=API)
                else:
                    check(doc["error"]["message"].startswith(VERIFY_PREFIX), doc)

        @runner.test
        def authorities():
            create_exportable("multi", "ec", curve="P-256", release_policy=rp(MULTI_POLICY))
            stored = unb64url(get_raw("multi")["release_policy"]["data"]).decode()
            eq(stored, normalized(MULTI_POLICY), "authorities kept as written")
            tdx = {"x-ms-attestation-type": "tdxvm"}
            accepted = {
                # the configuration has AUTH2 with a slash, the policy without
                "AUTH2 ES256, iss without a slash": attest(iss=AUTH2, kid="ec-256", alg="ES256"),
                "AUTH2 ES256, iss with a slash": attest(iss=AUTH2 + "/", kid="ec-256", alg="ES256"),
                "AUTH2 ES384 (its P-384 key)": attest(iss=AUTH2, kid="ec-384", alg="ES384"),
                # AUTH3 publishes only a certificate; anyOf, the policy has the slash
                "AUTH3 RS256 (x5c)": attest(tdx, iss=AUTH3, kid="maa-x5c-1"),
                "AUTH3 PS256 (x5c)": attest(tdx, iss=AUTH3 + "/", kid="maa-x5c-1", alg="PS256"),
                "AUTH3 anyOf, the other member": attest({"sdk-test": "yes"}, iss=AUTH3,
                                                        kid="maa-x5c-1"),
            }
            for label, target in accepted.items():
                st, doc = release_raw("multi", target=target, enc="RSA_AES_KEY_WRAP_256")
                eq(st, 200, f"{label}: {doc}")
                verify_release(doc["value"], "multi", "RSA_AES_KEY_WRAP_256", api=API)
            refusals = {
                "AUTH (not in this policy)": attest(),
                "AUTH2 token under AUTH2's other kid": attest(iss=AUTH2, kid="ec-256", alg="ES384",
                                                              key=auth2_p384),
                "AUTH2 conditions unmet": attest({"x-ms-attestation-type": "sgx"}, iss=AUTH2,
                                                 kid="ec-256", alg="ES256"),
                "AUTH3 anyOf unmet": attest(iss=AUTH3, kid="maa-x5c-1"),
                "AUTH3 signed by another key": attest(tdx, iss=AUTH3, kid="maa-x5c-1",
                                                      key=stranger),
            }
            for label, target in refusals.items():
                refused(release_raw("multi", target=target), 403, "Forbidden",
                        prefix=VERIFY_PREFIX, what=label)
            # the policy names an authority kvmock does not trust, and the token is its
            refused(release_raw("multi", target=attest(iss=UNTRUSTED, key=stranger, kid="u-1")),
                    400, "BadParameter", prefix="AKV.SKR.1012:", what="untrusted authority")
            sdk_refused(lambda: client.release_key("multi", attest(iss=UNTRUSTED, key=stranger)),
                        400, "BadParameter", prefix="AKV.SKR.1012:", what="SDK, untrusted")
            # a key whose only authority is untrusted
            create_exportable("untrusted", policy={"version": "1.0.0", "anyOf": [
                {"authority": UNTRUSTED + "/", "allOf": [{"claim": "sdk-test", "equals": True}]}]})
            refused(release_raw("untrusted", target=attest(iss=UNTRUSTED)), 400, "BadParameter",
                    prefix="AKV.SKR.1012:", what="only an untrusted authority")
            refused(release_raw("untrusted"), 403, "Forbidden", prefix=VERIFY_PREFIX,
                    what="AUTH's token, not in that policy")

        @runner.test
        def the_target_key_chosen():
            create_exportable("tgt")
            sig_only = rsa_pub_jwk(tee_small, kid="sig-only", use="sig")
            small = rsa_pub_jwk(tee_small, kid="small", key_ops=["encrypt"])
            ec_enc = ec_pub_jwk(auth2_p256, kid="ec-enc", use="enc")
            cases = (
                ([rsa_pub_jwk(tee_use, kid="tee-use-enc", use="enc")], "tee-use-enc"),
                ([sig_only, ec_enc, TEE_JWK, rsa_pub_jwk(tee_use, kid="tee-use-enc", use="enc")],
                 "tee-enc-1"),
                ([rsa_pub_jwk(tee_3072, kid="tee-3072", key_ops=["wrapKey", "encrypt"])], "tee-3072"),
                ([rsa_pub_jwk(tee_4096, kid="tee-4096", use="enc")], "tee-4096"),
            )
            for runtime, kid in cases:
                for enc in ("CKM_RSA_AES_KEY_WRAP", "RSA_AES_KEY_WRAP_384"):
                    st, doc = release_raw("tgt", target=attest(runtime=runtime), enc=enc)
                    eq(st, 200, f"{kid}: {doc}")
                    verify_release(doc["value"], "tgt", enc, target_kid=kid, api=API)
            # only unsuitable keys: refused (also the small one first, then nothing)
            for runtime in ([sig_only], [small], [ec_enc, small]):
                refused(release_raw("tgt", target=attest(runtime=runtime)), 403, "Forbidden",
                        prefix=VERIFY_PREFIX, what=str([k["kid"] for k in runtime]))

        @runner.test
        def release_requests_that_are_refused():
            create_exportable("req")
            k = client.create_rsa_key("req-plain", hardware_protected=True)
            for body, what in (({}, "no target"), ({"target": ""}, "empty target"),
                               ({"target": 7}, "a number"),
                               ({"target": attest(), "enc": "RSA_AES_KEY_WRAP_512"}, "bad enc"),
                               ({"target": attest(), "enc": "rsa_aes_key_wrap_256x"}, "bad enc 2"),
                               ({"target": attest(), "enc": 3}, "enc a number"),
                               ({"target": attest(), "nonce": 5}, "nonce a number")):
                refused(call("POST", "/keys/req//release", body), 400, "BadParameter", what=what)
            # a key that is not exportable: 403, whatever the token
            refused(release_raw("req-plain"), 403, "Forbidden", what="not exportable")
            refused(release_raw("req-plain", k.properties.version), 403, "Forbidden",
                    what="not exportable, versioned")
            sdk_refused(lambda: client.release_key("req-plain", attest()), 403, "Forbidden",
                        what="SDK, not exportable")
            # a disabled key: 403; enabled again, released
            client.update_key_properties("req", enabled=False)
            refused(release_raw("req"), 403, "Forbidden", what="disabled")
            sdk_refused(lambda: client.release_key("req", attest()), 403, "Forbidden",
                        what="SDK, disabled")
            client.update_key_properties("req", enabled=True)
            eq(release_raw("req")[0], 200, "enabled again")
            # an expired key (exp in the past): 403
            past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
            client.update_key_properties("req", expires_on=past)
            refused(release_raw("req"), 403, "Forbidden", what="expired key")

        @runner.test
        def access_policies_and_rbac():
            create_exportable("perm")
            # get and release only: released (through the SDK, as that identity)
            rel = KeyClient(url(), ManagedIdentityCredential(client_id=RELEASER["clientId"]))
            verify_release(rel.release_key("perm", attest()).value, "perm")
            st, doc = release_raw("perm", identity=RELEASER)
            eq(st, 200, doc)
            # every permission but release: 403 AccessDenied, before the body is read
            refused(release_raw("perm", identity=NO_RELEASE), 403, "Forbidden",
                    inner="AccessDenied", what="no release permission")
            refused(release_raw("perm", identity=NO_RELEASE, target="garbage"), 403, "Forbidden",
                    inner="AccessDenied", what="no permission, bad token")
            norel = KeyClient(url(), ManagedIdentityCredential(client_id=NO_RELEASE["clientId"]))
            sdk_refused(lambda: norel.release_key("perm", attest()), 403, "Forbidden",
                        what="SDK, no release permission")
            # the same identity may do the rest
            eq(norel.get_key("perm").properties.exportable, True, "no-release may get")
            # RBAC: the release role on one key
            rbac = KeyClient(url("rbacp"), cred)  # Crypto Officer
            create_exportable("rbac-skr", c=rbac)
            create_exportable("rbac-other", c=rbac)
            rr = KeyClient(url("rbacp"), ManagedIdentityCredential(client_id=RBAC_RELEASER["clientId"]))
            verify_release(rr.release_key("rbac-skr", attest()).value, "rbac-skr", vault="rbacp")
            refused(release_raw("rbac-other", identity=RBAC_RELEASER, vault="rbacp"), 403,
                    "Forbidden", inner="ForbiddenByRbac", what="the role is on another key")
            refused(release_raw("rbac-skr", identity=RBAC_USER, vault="rbacp"), 403, "Forbidden",
                    inner="ForbiddenByRbac", what="Crypto User cannot release")
            # the Crypto User may read it (so the refusal is the role's, not the identity's)
            eq(call("GET", "/keys/rbac-skr", vault="rbacp", identity=RBAC_USER)[0], 200, "read")

        @runner.test
        def the_signing_certificate():
            create_exportable("cert")
            header, _ = open_jws(sdk_release("cert"))
            leaf_der = base64.b64decode(header["x5c"][0])
            leaf = x509.load_der_x509_certificate(leaf_der)
            # the CA the HTTP port serves is the one in x5c
            st, _, pem = kv.http("GET", "/ca.pem")
            eq(st, 200, "GET /ca.pem")
            eq(x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER),
               base64.b64decode(header["x5c"][1]), "x5c[1] is /ca.pem")
            eq(leaf.public_key().key_size, 2048, "an RSA-2048 signing key")
            sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            names = sans.get_values_for_type(x509.DNSName)
            check("*.vault.localhost" in names or "default.vault.localhost" in names, names)
            leaf_path = write(os.path.join(work, "leaf.pem"),
                              leaf.public_bytes(serialization.Encoding.PEM))
            for host, good in (("default.vault.localhost", True), ("premium.vault.localhost", True),
                               ("localhost", True), ("kvmock.example.com", False)):
                proc = subprocess.run(["openssl", "verify", "-x509_strict", "-CAfile", kv.ca_path,
                                       "-verify_hostname", host, leaf_path],
                                      capture_output=True, text=True)
                out = proc.stdout + proc.stderr
                eq(proc.returncode == 0 and f"{leaf_path}: OK" in out, good, f"{host}: {out}")
            # a second release is signed by the same certificate; a restart keeps its key
            header2, _ = open_jws(sdk_release("cert"))
            eq(header2["x5c"], header["x5c"], "the same certificate")
            before = get_raw("cert")
            kv.restart()
            eq(get_raw("cert"), before, "exportable and the policy kept across a restart")
            header3, _ = open_jws(client.release_key("cert", attest()).value)
            eq(x509.load_der_x509_certificate(base64.b64decode(header3["x5c"][0])).public_key()
               .public_numbers(), leaf.public_key().public_numbers(), "the key kept across a restart")
            # tampering is detected: the verification above is real
            value = client.release_key("cert", attest()).value
            h, c, s = value.split(".")
            doc = json.loads(unb64url(c))
            doc["request"]["nonce"] = "forged"
            try:
                open_jws(f"{h}.{b64url(json.dumps(doc).encode())}.{s}")
                check(False, "a forged payload verified")
            except Exception as e:  # noqa: BLE001 - InvalidSignature
                check(type(e).__name__ == "InvalidSignature", repr(e))

        @runner.test
        def kvmocks_clock_does_not_move_the_token_window():
            create_exportable("clock")
            kv.advance_clock(2 * 3600)
            tokens.clear()
            st, doc = release_raw("clock")
            eq(st, 200, f"a fresh token after kvmock's clock moved 2 h: {doc}")
            now = int(time.time())
            refused(release_raw("clock", target=attest({"exp": now - 600})), 403, "Forbidden",
                    prefix=VERIFY_PREFIX, what="an expired token is still expired")

        @runner.test
        def no_released_key_in_the_log():
            check(len(released) > 40, f"{len(released)} secrets collected")
            kv.stop()
            with open(kv.log_path, "rb") as f:
                log = f.read()
            check(b"release" in log.lower(), "the log holds the releases")
            planted = b"x" + base64.b64encode(next(iter(released.values())))[3:60] + b"y"
            scanner = Scanner(released)
            check(scanner.scan(planted), "the search finds a planted piece")
            found = scanner.scan(log)
            eq(found, [], "released private keys in kvmock's log")
            for mark in SANITIZER_MARKS:
                check(mark.encode() not in log, mark)

        runner.run_collected()

    # ---- the configuration's attestation authorities, refused at start --------------------

    def start_fails(name, authorities, wants, files=None):
        start_refused(args.kvmock, work, name, {"tenantId": TENANT, "identities": [APP],
                                                "attestationAuthorities": authorities},
                      wants, files)

    good_jwks = {"keys": [rsa_pub_jwk(auth_key, kid="a")]}

    def bad_authorities_are_refused_at_start():
        start_fails("http", [{"authority": "http://plain.attest.azure.net", "jwks": good_jwks}],
                    ["attestationAuthorities[0]"])
        start_fails("missing-file", [{"authority": AUTH, "jwks": "jwks/none.json"}],
                    ["attestationAuthorities[0]",
                     os.path.join(work, "refused", "missing-file", "jwks", "none.json")])
        start_fails("no-jwks", [{"authority": AUTH}], ["attestationAuthorities[0]", "'jwks'"])
        start_fails("twice", [{"authority": AUTH, "jwks": good_jwks},
                              {"authority": AUTH + "/", "jwks": good_jwks}],
                    ["attestationAuthorities[1]"])
        start_fails("oct-key", [{"authority": AUTH, "jwks": {"keys": [
            {"kty": "oct", "k": b64url(b"k" * 32)}]}}], ["attestationAuthorities[0]"])
        start_fails("unknown-field", [{"authority": AUTH, "jwks": good_jwks, "x": 1}],
                    ["attestationAuthorities[0]", "'x'"])

    runner.run_tests([bad_authorities_are_refused_at_start])


if __name__ == "__main__":
    main()
