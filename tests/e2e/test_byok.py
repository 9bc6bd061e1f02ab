"""Bring your own key (BYOK) end to end: keys made here with `cryptography`, wrapped for a
key exchange key (KEK) of a premium vault as Microsoft's "Bring your own key
specification" says, imported through Debian's Python SDK (azure-keyvault-keys 4.8.0b3,
JsonWebKey's `t`) and raw HTTP (`key_hsm`), and each imported key proven to be the local one.

A KEK is an RSA-HSM key (2048, 3072 and 4096 bits here) whose only key operation is
'import'. The transfer blob is {"schema_version", "header": {"kid", "alg": "dir", "enc"},
"ciphertext", "generator"}; its ciphertext is an AES key under RSA-OAEP (SHA-1 for
CKM_RSA_AES_KEY_WRAP, SHA-256 / SHA-384 for RSA_AES_KEY_WRAP_256 / _384, MGF1 the same)
followed by the target key (PKCS#8 DER for RSA and EC, the raw bytes for oct) under AES
key wrap with padding (RFC 5649).

Proven:
- RSA-HSM 2048 and 3072, EC-HSM P-256, P-384 and P-521 and oct-HSM 256 imported with
  CKM_RSA_AES_KEY_WRAP, an RSA-HSM key with RSA_AES_KEY_WRAP_256 and an EC-HSM key with
  RSA_AES_KEY_WRAP_384, through the SDK: the public parts are the local key's, and an
  operation kvmock performs with its copy checks out here (RSA: PS256 signed there and
  verified here, RSA-OAEP-256 encrypted here and decrypted there; EC: signed there and
  verified here; oct: A256KW wrapped there and unwrapped here); a flipped signature does
  not verify (the checks can fail). The answer and GET carry no private part.
- Raw HTTP: key_ops, attributes and tags of the request are kept; AES-128 and AES-192
  wrapping keys are accepted.
- The KEK stays import-only: encrypt and wrapKey with it are 403 Forbidden
  (KeyOperationForbidden), and it keeps serving more imports.
- The refusals, each 400 BadParameter with Key Vault's message (or 403 on a standard
  vault), each leaving the target name absent (GET 404), one leaving an existing key's
  versions as they were: a KEK that is missing, of another vault (by its kid's host), a
  software RSA key, an EC or oct key, with key_ops other than ['import'], disabled or
  deleted; a blob wrapped for another KEK, tampered, with the wrong enc, an AES key of 20
  bytes, holding an EC key for an RSA-HSM request or a P-256 key for crv P-384, an oct key
  of 20 bytes; a kty without -HSM; malformed key_hsm, blob, header, alg, enc and
  ciphertext; a hardware key into a standard vault.
- The kid's host and version: the KEK's kid as kvmock gave it works; a kid without a
  version means the KEK's current version (a blob for the older version then does not
  open, and still opens under that version's own kid).
- kvmock's log (at --log-level debug) holds none of the AES keys, the targets' private
  bytes (PKCS#8 DER and components; raw, hex, base64 and base64url), the ciphertexts or
  the key_hsm blobs, and no sanitizer report.
"""
import hashlib
import json
import os
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    Kvmock, Runner, check, eq, parse_args, b64url, unb64url, int_bytes, TENANT, APP,
    SANITIZER_MARKS)
from test_secret_scan import Scanner, pieces  # noqa: E402  (its search for private bytes)

from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from cryptography.hazmat.primitives.keywrap import (  # noqa: E402
    aes_key_unwrap, aes_key_wrap_with_padding)

from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.keys import JsonWebKey, KeyClient, KeyOperation, KeyType  # noqa: E402
from azure.keyvault.keys.crypto import (  # noqa: E402
    CryptographyClient, EncryptionAlgorithm, SignatureAlgorithm)

API = "7.4"
CKM = "CKM_RSA_AES_KEY_WRAP"
ENCS = {CKM: hashes.SHA1, "RSA_AES_KEY_WRAP_256": hashes.SHA256,
        "RSA_AES_KEY_WRAP_384": hashes.SHA384}
CURVES = {"P-256": (ec.SECP256R1, hashes.SHA256, SignatureAlgorithm.es256),
          "P-384": (ec.SECP384R1, hashes.SHA384, SignatureAlgorithm.es384),
          "P-521": (ec.SECP521R1, hashes.SHA512, SignatureAlgorithm.es512)}
PREMIUM = {"family": "A", "name": "premium"}
STANDARD = {"family": "A", "name": "standard"}

MSG_KEK = ("The key exchange key named in the key transfer blob (header.kid) must be a key of "
           "this vault of type RSA-HSM, enabled, whose only key operation is 'import'.")
MSG_BLOB = ("The key transfer blob (key_hsm) could not be opened with its key exchange key, or "
            "it does not hold a private key of the type (and curve) of the request.")
MSG_KTY = "The parameter 'key.kty' must be RSA-HSM, EC-HSM or oct-HSM with key_hsm."
MSG_HSM_B64 = "The parameter 'key.key_hsm' must be base64url of a key transfer blob."
MSG_HSM_SHAPE = ("The parameter 'key.key_hsm' is not a key transfer blob: it needs header.kid "
                 "and ciphertext.")
MSG_HSM_ALG = "The parameter 'key.key_hsm' must name header.alg 'dir'."
MSG_HSM_ENC = ("The parameter 'key.key_hsm' must name header.enc CKM_RSA_AES_KEY_WRAP, "
               "RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384.")
MSG_HSM_CT = "The parameter 'key.key_hsm' must carry its ciphertext in base64url."
MSG_KEY_SIZE = "The key size is not supported for this key type."
MSG_STANDARD = "Hardware key operation not allowed on standard vault"
MSG_OP_FORBIDDEN = "Operation {} is not permitted on this key."


# ---- local keys and blobs ---------------------------------------------------------------

class Target:
    """A key made here: its kind, its private key object (RSA, EC) and the bytes a blob
    carries (PKCS#8 DER, or the oct key's bytes)."""

    def __init__(self, kty, param):
        self.kty, self.crv, self.priv = kty, None, None
        if kty == "RSA-HSM":
            self.priv = rsa.generate_private_key(public_exponent=65537, key_size=param)
        elif kty == "EC-HSM":
            self.crv = param
            self.priv = ec.generate_private_key(CURVES[param][0]())
        if self.priv is not None:
            self.plain = self.priv.private_bytes(serialization.Encoding.DER,
                                                 serialization.PrivateFormat.PKCS8,
                                                 serialization.NoEncryption())
        else:
            self.plain = secrets.token_bytes(param)

    def private_parts(self):
        """{label: bytes} of every private value, for the search of the log."""
        out = {"PKCS#8" if self.priv else "oct k": self.plain}
        if isinstance(self.priv, rsa.RSAPrivateKey):
            pn = self.priv.private_numbers()
            out.update({"d": int_bytes(pn.d), "p": int_bytes(pn.p), "q": int_bytes(pn.q),
                        "dp": int_bytes(pn.dmp1), "dq": int_bytes(pn.dmq1),
                        "qi": int_bytes(pn.iqmp)})
        elif isinstance(self.priv, ec.EllipticCurvePrivateKey):
            size = (self.priv.curve.key_size + 7) // 8
            out["d"] = int_bytes(self.priv.private_numbers().private_value, size)
        return out


def rsa_public(n, e):
    """An RSA public key from n and e as bytes or base64url text."""
    def num(v):
        return int.from_bytes(unb64url(v) if isinstance(v, str) else v, "big")
    return rsa.RSAPublicNumbers(num(e), num(n)).public_key()


def main():
    args = parse_args()
    runner = Runner()
    config = {
        "tenantId": TENANT,
        "identities": [APP],
        "vaults": [
            {"name": "premium", "properties": {"sku": PREMIUM, "accessPolicies": [
                {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]}},
            {"name": "premium2", "properties": {"sku": PREMIUM, "accessPolicies": [
                {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]}},
            {"name": "standard", "properties": {"sku": STANDARD, "accessPolicies": [
                {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]}},
        ],
    }
    with Kvmock(args.kvmock, config=config, extra_args=["--log-level", "debug"]) as kv:
        kv.apply_env()
        run(kv, runner)
    sys.exit(runner.exit_code())


def run(kv, runner):
    P = kv.https_port
    tok = {}
    secret_parts = {}  # label -> private bytes sent to kvmock (for the log search)
    key_hsms = []      # every key_hsm text sent

    def token():
        if "t" not in tok:
            tok["t"] = kv.token()
        return tok["t"]

    def host(vault):
        return f"{vault}.vault.localhost:{P}"

    def call(method, path, body=None, vault="premium"):
        """Raw HTTPS to a vault; (status, parsed body or None)."""
        sep = "&" if "?" in path else "?"
        st, _, resp = kv.https(method, f"{path}{sep}api-version={API}", body, host=host(vault),
                               token=token())
        return st, (json.loads(resp) if resp else None)

    def ok(method, path, body=None, vault="premium"):
        st, doc = call(method, path, body, vault)
        eq(st, 200, f"{method} {path} on {vault}: {doc}")
        return doc

    def refused(answer, status, code, message, what, inner=None):
        st, doc = answer
        eq(st, status, f"{what}: {doc}")
        err = (doc or {}).get("error", {})
        eq(err.get("code"), code, f"{what}: {doc}")
        eq(err.get("message"), message, f"{what}: message")
        if inner is not None:
            eq(err.get("innererror", {}).get("code"), inner, f"{what}: {doc}")

    def absent(name, vault="premium"):
        st, doc = call("GET", f"/keys/{name}", vault=vault)
        eq(st, 404, f"{name} on {vault} must not exist: {doc}")

    def path_of(kid):
        """/keys/NAME/VERSION of a kid."""
        return kid.split(f":{P}", 1)[1]

    cred = ManagedIdentityCredential()
    client = KeyClient(kv.vault_url("premium"), cred)
    standard = KeyClient(kv.vault_url("standard"), cred)
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}-{counter[0]}"

    # ---- KEKs and blobs -------------------------------------------------------------------

    def make_kek(name, vault="premium", kty="RSA-HSM", size=2048, ops=("import",), crv=None):
        """POST /keys/NAME/create; {"kid", "pub", "doc"} (pub None for a key not RSA)."""
        body = {"kty": kty, "key_ops": list(ops)}
        if kty.startswith("RSA"):
            body["key_size"] = size
        if crv:
            body["crv"] = crv
        doc = ok("POST", f"/keys/{name}/create", body, vault)
        k = doc["key"]
        eq(sorted(k["key_ops"]), sorted(ops), f"{name}: key_ops")
        pub = rsa_public(k["n"], k["e"]) if kty.startswith("RSA") else None
        return {"kid": k["kid"], "pub": pub, "doc": doc}

    def blob(kek, plain, enc=CKM, kid=None, aes=None, oaep=None, ct=None, label="blob"):
        """The transfer blob's JSON bytes: @plain wrapped for @kek as @enc says (oaep: the
        hash actually used, when it lies; ct: a ciphertext made elsewhere), the header
        naming @kid (default the KEK's)."""
        aes = secrets.token_bytes(32) if aes is None else aes
        h = ENCS[oaep or enc]
        if ct is None:
            ct = kek["pub"].encrypt(aes, padding.OAEP(padding.MGF1(h()), h(), None))
            ct += aes_key_wrap_with_padding(aes, plain)
        head = {"kid": kek["kid"] if kid is None else kid, "alg": "dir", "enc": enc}
        doc = {"schema_version": "1.0.0", "header": head, "ciphertext": b64url(ct),
               "generator": "kvmock e2e test_byok.py"}
        n = len(secret_parts)
        secret_parts[f"{label} {n}: AES key"] = aes
        secret_parts[f"{label} {n}: ciphertext"] = ct
        data = json.dumps(doc).encode()
        key_hsms.append(b64url(data))
        return data

    def remember(label, target):
        for part, value in target.private_parts().items():
            secret_parts[f"{label}: {part} {len(secret_parts)}"] = value

    def body_of(kty, data, crv=None, key_ops=None, **extra):
        key = {"kty": kty, "key_hsm": data if isinstance(data, str) else b64url(data)}
        if crv:
            key["crv"] = crv
        if key_ops is not None:
            key["key_ops"] = key_ops
        body = {"key": key}
        body.update(extra)
        return body

    def put(name, kty, data, vault="premium", **kw):
        return call("PUT", f"/keys/{name}", body_of(kty, data, **kw), vault)

    # ---- proofs -----------------------------------------------------------------------------

    def same_public(key, target, what):
        """An SDK KeyVaultKey's (or a REST JWK's) public part is the target's."""
        jwk = key.key if hasattr(key, "key") else None

        def get(name):
            v = getattr(jwk, name) if jwk is not None else key.get(name)
            return unb64url(v) if isinstance(v, str) else v

        if target.kty == "RSA-HSM":
            pn = target.priv.public_key().public_numbers()
            eq(get("n"), int_bytes(pn.n), f"{what}: n")
            eq(get("e"), int_bytes(pn.e), f"{what}: e")
        elif target.kty == "EC-HSM":
            pn = target.priv.public_key().public_numbers()
            size = (target.priv.curve.key_size + 7) // 8
            crv = jwk.crv if jwk is not None else key.get("crv")
            eq(crv, target.crv, f"{what}: crv")
            eq((get("x"), get("y")), (int_bytes(pn.x, size), int_bytes(pn.y, size)),
               f"{what}: x, y")
        for private in ("d", "p", "q", "dp", "dq", "qi", "k", "t"):
            check(not get(private), f"{what}: a private part {private!r} in the answer")
        if jwk is None:
            check("key_hsm" not in key, f"{what}: key_hsm in the answer")

    def prove(key, target, what):
        """An operation kvmock performs with the imported key checks out here."""
        if target.kty == "RSA-HSM":
            cc = CryptographyClient(key, cred)
            pub = target.priv.public_key()
            msg = secrets.token_bytes(50)
            digest = hashlib.sha256(msg).digest()
            sig = cc.sign(SignatureAlgorithm.ps256, digest).signature
            pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
            pub.verify(sig, msg, pss, hashes.SHA256())  # raises InvalidSignature
            bad = bytes([sig[0] ^ 1]) + sig[1:]
            try:
                pub.verify(bad, msg, pss, hashes.SHA256())
                raise AssertionError(f"{what}: a flipped PS256 signature verified")
            except InvalidSignature:
                pass
            secret = secrets.token_bytes(32)
            ct = pub.encrypt(secret, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(),
                                                  None))
            eq(cc.decrypt(EncryptionAlgorithm.rsa_oaep_256, ct).plaintext, secret,
               f"{what}: kvmock decrypts what the local public key encrypted")
        elif target.kty == "EC-HSM":
            cc = CryptographyClient(key, cred)
            _, h, alg = CURVES[target.crv]
            size = (target.priv.curve.key_size + 7) // 8
            msg = secrets.token_bytes(50)
            sig = cc.sign(alg, hashlib.new(h.name, msg).digest()).signature
            eq(len(sig), 2 * size, f"{what}: an r || s signature")
            pub = target.priv.public_key()
            r, s = int.from_bytes(sig[:size], "big"), int.from_bytes(sig[size:], "big")
            pub.verify(encode_dss_signature(r, s), msg, ec.ECDSA(h()))
            try:
                pub.verify(encode_dss_signature(r, s ^ 1), msg, ec.ECDSA(h()))
                raise AssertionError(f"{what}: a flipped {alg} signature verified")
            except InvalidSignature:
                pass
        else:
            # raw: the SDK would try its local provider for an oct key, which has no k here
            dek = secrets.token_bytes(32)
            wrapped = ok("POST", f"{path_of(key.id)}/wrapkey",
                         {"alg": "A256KW", "value": b64url(dek)})["value"]
            eq(aes_key_unwrap(target.plain, unb64url(wrapped)), dek,
               f"{what}: the local bytes unwrap what kvmock's A256KW wrapped")

    # ================================================================= the KEKs ========

    keks = {}

    @runner.test
    def keks_are_import_only_rsa_hsm_keys():
        # through the SDK, as a user following the BYOK guide would
        for size in (2048, 3072, 4096):
            k = client.create_rsa_key(f"kek{size}", size=size, hardware_protected=True,
                                      key_operations=[KeyOperation.import_key])
            eq(k.key_type, KeyType.rsa_hsm, "kty")
            eq(k.key_operations, ["import"], "key_ops")
            eq(len(k.key.n) * 8, size, "modulus size")
            keks[size] = {"kid": k.id, "pub": rsa_public(k.key.n, k.key.e)}
        eq(keks[2048]["kid"].split("/keys/")[0], f"https://{host('premium')}", "the kid's host")

    # ====================================================== imports through the SDK =====

    def sdk_case(label, kty, param, enc, kek_size, give_crv=True):
        def fn():
            target = Target(kty, param)
            remember(label, target)
            name = fresh(label)
            data = blob(keks[kek_size], target.plain, enc, label=label)
            jwk = JsonWebKey(kty=kty, t=data, crv=target.crv if give_crv else None)
            key = client.import_key(name, jwk, tags={"byok": label})
            eq(key.name, name, "name")
            eq(key.key_type, kty, "kty")
            eq(key.properties.tags, {"byok": label}, "tags")
            eq(key.properties.enabled, True, "enabled")
            same_public(key, target, label)
            got = ok("GET", f"/keys/{name}")
            eq(got["key"]["kid"], key.id, "GET: the imported version")
            eq(got["key"]["kty"], kty, "GET: kty")
            same_public(got["key"], target, f"{label} (GET)")
            prove(key, target, label)
        fn.__name__ = f"sdk_import_{label.replace('-', '_')}_{enc.lower()}_kek{kek_size}"
        return fn

    for case in (("rsa2048", "RSA-HSM", 2048, CKM, 2048),
                 ("rsa3072", "RSA-HSM", 3072, CKM, 3072),
                 ("ec-p256", "EC-HSM", "P-256", CKM, 4096),
                 ("ec-p384", "EC-HSM", "P-384", CKM, 2048),
                 ("ec-p521", "EC-HSM", "P-521", CKM, 3072),
                 ("oct256", "oct-HSM", 32, CKM, 4096),
                 ("rsa2048", "RSA-HSM", 2048, "RSA_AES_KEY_WRAP_256", 3072),
                 ("ec-p384", "EC-HSM", "P-384", "RSA_AES_KEY_WRAP_384", 4096)):
        runner.test(sdk_case(*case))

    # an EC key without crv in the request: the blob's curve
    runner.test(sdk_case("ec-p521-nocrv", "EC-HSM", "P-521", CKM, 2048, give_crv=False))

    # ========================================================= raw HTTP imports ========

    @runner.test
    def raw_import_keeps_key_ops_attributes_and_tags():
        target = Target("RSA-HSM", 2048)
        remember("raw", target)
        exp = 4102444800  # 2100-01-01
        st, doc = put("raw-rsa", "RSA-HSM", blob(keks[2048], target.plain, label="raw"),
                      key_ops=["verify", "sign", "verify"],
                      attributes={"enabled": False, "exp": exp},
                      tags={"team": "byok"})
        eq(st, 200, doc)
        eq(doc["key"]["kty"], "RSA-HSM", "kty")
        eq(doc["key"]["key_ops"], ["verify", "sign"], "key_ops as asked: in order, each once")
        eq((doc["attributes"]["enabled"], doc["attributes"]["exp"]), (False, exp), "attributes")
        eq(doc["tags"], {"team": "byok"}, "tags")
        same_public(doc["key"], target, "raw RSA")
        eq(ok("GET", "/keys/raw-rsa")["key"], doc["key"], "GET: the same key")
        # AES-128 and AES-192 wrapping keys (the spec's tools use AES-256)
        for size in (16, 24):
            t = Target("oct-HSM", 32)
            remember(f"aes{size}", t)
            data = blob(keks[3072], t.plain, "RSA_AES_KEY_WRAP_256",
                        aes=secrets.token_bytes(size), label=f"aes{size}")
            st, doc = put(f"raw-aes{size}", "oct-HSM", data, key_ops=["wrapKey", "unwrapKey"])
            eq(st, 200, f"AES-{size * 8}: {doc}")
            eq((doc["key"]["kty"], doc["key"]["key_ops"]), ("oct-HSM", ["wrapKey", "unwrapKey"]),
               "oct-HSM, its key_ops")
            check("k" not in doc["key"], "no k in the answer")
            dek = secrets.token_bytes(24)
            wrapped = ok("POST", f"{path_of(doc['key']['kid'])}/wrapkey",
                         {"alg": "A256KW", "value": b64url(dek)})["value"]
            eq(aes_key_unwrap(t.plain, unb64url(wrapped)), dek, f"AES-{size * 8}: the key")

    @runner.test
    def the_kek_stays_import_only_and_usable():
        for size, kek in keks.items():
            path = path_of(kek["kid"])
            for op, body in (
                    ("encrypt", {"alg": "RSA-OAEP", "value": b64url(b"x" * 16)}),
                    ("wrapKey", {"alg": "RSA-OAEP-256", "value": b64url(b"k" * 32)}),
                    ("decrypt", {"alg": "RSA-OAEP", "value": b64url(b"\0" * (size // 8))}),
                    ("sign", {"alg": "RS256", "value": b64url(b"d" * 32)})):
                refused(call("POST", f"{path}/{op.lower()}", body), 403, "Forbidden",
                        MSG_OP_FORBIDDEN.format(op), f"{op} with KEK {size}",
                        inner="KeyOperationForbidden")
            doc = ok("GET", path)
            eq(doc["key"]["key_ops"], ["import"], "the KEK's key_ops unchanged")
            eq(doc["attributes"]["enabled"], True, "enabled")
            # and it still imports, again and again
            for i in range(2):
                t = Target("EC-HSM", "P-256")
                remember("again", t)
                st, doc = put(fresh("again"), "EC-HSM", blob(kek, t.plain, label="again"),
                              crv="P-256")
                eq(st, 200, f"import {i} with KEK {size} after the refused operations: {doc}")
                same_public(doc["key"], t, "again")

    # ============================================================== refusals ========

    ec_target = Target("EC-HSM", "P-256")
    remember("refusals", ec_target)

    def refused_import(name, kty, data, status, code, message, what, vault="premium", **kw):
        refused(put(name, kty, data, vault, **kw), status, code, message, what)
        absent(name, vault)

    @runner.test
    def refused_kek_missing_or_not_a_kek_url():
        kek = keks[2048]
        version = kek["kid"].rsplit("/", 1)[1]
        base = f"https://{host('premium')}/keys"
        for kid, what in ((f"{base}/nokek/{version}", "no such KEK name"),
                          (f"{base}/nokek", "no such KEK name, no version"),
                          (f"{base}/kek2048/{'0' * 32}", "no such KEK version"),
                          ("kek2048", "a name, not a key identifier"),
                          (f"http://{host('premium')}/keys/kek2048/{version}", "http"),
                          (f"{base}/kek2048/{version}/extra", "a path beyond the version"),
                          (f"https://premium.example.com/keys/kek2048/{version}",
                           "the vault's name on another host"),
                          (f"https://premium-x.vault.localhost:{kv.https_port}/keys/kek2048/"
                           f"{version}", "another vault's host")):
            refused_import(fresh("kek-missing"), "EC-HSM",
                           blob(kek, ec_target.plain, kid=kid), 400, "BadParameter", MSG_KEK, what)

    @runner.test
    def refused_kek_with_other_key_ops():
        kek = make_kek("kek-wide", ops=("import", "wrapKey"))
        data = blob(kek, ec_target.plain)
        refused_import("t-wide", "EC-HSM", data, 400, "BadParameter", MSG_KEK,
                       "KEK with key_ops import and wrapKey")
        # its key_ops narrowed to import: the same blob imports (the key_ops were the fault)
        eq(ok("PATCH", "/keys/kek-wide", {"key_ops": ["import"]})["key"]["key_ops"], ["import"],
           "narrowed")
        st, doc = put("t-wide", "EC-HSM", data)
        eq(st, 200, f"the same blob once the KEK is import-only: {doc}")
        same_public(doc["key"], ec_target, "t-wide")
        kek2 = make_kek("kek-noimport", ops=("encrypt", "decrypt"))
        refused_import("t-noimport", "EC-HSM", blob(kek2, ec_target.plain), 400, "BadParameter",
                       MSG_KEK, "KEK without import")

    @runner.test
    def refused_kek_that_is_a_software_rsa_key():
        kek = make_kek("kek-soft", kty="RSA")
        eq(kek["doc"]["key"]["kty"], "RSA", "a software key")
        refused_import("t-soft", "EC-HSM", blob(kek, ec_target.plain), 400, "BadParameter",
                       MSG_KEK, "KEK of kty RSA (software)")

    @runner.test
    def refused_kek_that_is_not_rsa():
        kek = keks[2048]
        for name, kty, crv in (("kek-ec", "EC-HSM", "P-256"), ("kek-oct", "oct-HSM", None)):
            ops = ["sign", "verify"] if kty == "EC-HSM" else ["wrapKey", "unwrapKey"]
            k = make_kek(name, kty=kty, ops=ops, crv=crv)
            # a blob wrapped for an RSA KEK but naming this key
            refused_import(fresh("t-notrsa"), "EC-HSM", blob(kek, ec_target.plain, kid=k["kid"]),
                           400, "BadParameter", MSG_KEK, f"KEK of kty {kty}")

    @runner.test
    def refused_kek_disabled_or_deleted():
        kek = make_kek("kek-off")
        data = blob(kek, ec_target.plain)
        ok("PATCH", "/keys/kek-off", {"attributes": {"enabled": False}})
        refused_import("t-off", "EC-HSM", data, 400, "BadParameter", MSG_KEK, "disabled KEK")
        ok("PATCH", "/keys/kek-off", {"attributes": {"enabled": True}})
        eq(put("t-off", "EC-HSM", data)[0], 200, "the same blob once the KEK is enabled again")
        gone = make_kek("kek-gone")
        data = blob(gone, ec_target.plain)
        ok("DELETE", "/keys/kek-gone")
        refused_import("t-gone", "EC-HSM", data, 400, "BadParameter", MSG_KEK, "deleted KEK")

    @runner.test
    def refused_kek_of_another_vault():
        other = make_kek("kek-other", vault="premium2")
        data = blob(other, ec_target.plain)
        refused_import("t-other", "EC-HSM", data, 400, "BadParameter", MSG_KEK,
                       "the KEK of premium2, into premium")
        st, doc = put("t-other", "EC-HSM", data, vault="premium2")
        eq(st, 200, f"the same blob into premium2: {doc}")
        # the same KEK name in both vaults: the kid's host decides, not the name. A blob
        # for premium's key naming premium2's (without a version: each has a current one)
        here = make_kek("kek-shared")
        make_kek("kek-shared", vault="premium2")
        there = f"https://{host('premium2')}/keys/kek-shared"
        refused_import("t-shared", "EC-HSM", blob(here, ec_target.plain, kid=there), 400,
                       "BadParameter", MSG_KEK, "kid on premium2's host, premium's key")
        eq(put("t-shared", "EC-HSM", blob(here, ec_target.plain))[0], 200,
           "the same wrapping with premium's kid")

    @runner.test
    def refused_blob_that_does_not_open():
        kek = keks[2048]
        other = make_kek("kek-b")  # another RSA-HSM 2048 KEK
        plain = ec_target.plain
        aes = secrets.token_bytes(32)
        good = kek["pub"].encrypt(aes, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(),
                                                    None)) + aes_key_wrap_with_padding(aes, plain)
        secret_parts["refusals: AES key"] = aes

        def flip(data, i):
            return data[:i] + bytes([data[i] ^ 0x40]) + data[i + 1:]

        # a 20-byte "AES key" (kvmock takes 16, 24 or 32)
        aes20 = secrets.token_bytes(20)
        secret_parts["refusals: AES-160"] = aes20
        odd = kek["pub"].encrypt(aes20, padding.OAEP(padding.MGF1(hashes.SHA1()), hashes.SHA1(),
                                                     None)) + aes_key_wrap_with_padding(aes, plain)
        cases = (
            (blob(other, plain, kid=kek["kid"]), "wrapped for another KEK of the vault"),
            (blob(keks[3072], plain, kid=kek["kid"]), "wrapped for a 3072-bit KEK"),
            (blob(kek, plain, ct=flip(good, 10)), "RSA part tampered"),
            (blob(kek, plain, ct=flip(good, 256 + 20)), "key wrap part tampered"),
            (blob(kek, plain, ct=flip(good, len(good) - 1)), "last byte tampered"),
            (blob(kek, plain, ct=good[:-8]), "truncated by a block"),
            (blob(kek, plain, ct=good[:256]), "the RSA part only"),
            (blob(kek, plain, "RSA_AES_KEY_WRAP_256", oaep=CKM), "SHA-1 wrapped, enc says 256"),
            (blob(kek, plain, CKM, oaep="RSA_AES_KEY_WRAP_256"), "SHA-256 wrapped, enc says CKM"),
            (blob(kek, plain, "RSA_AES_KEY_WRAP_384", oaep="RSA_AES_KEY_WRAP_256"),
             "SHA-256 wrapped, enc says 384"),
            (blob(kek, plain, ct=odd), "a 20-byte AES key"),
        )
        for data, what in cases:
            refused_import(fresh("t-blob"), "EC-HSM", data, 400, "BadParameter", MSG_BLOB, what,
                           crv="P-256")
        # the untouched ciphertext imports (the cases above differ only in their fault)
        st, doc = put(fresh("t-blob"), "EC-HSM", blob(kek, plain, ct=good), crv="P-256")
        eq(st, 200, f"the untampered blob: {doc}")
        same_public(doc["key"], ec_target, "untampered")
        # through the SDK: the same answer
        try:
            client.import_key("t-blob-sdk", JsonWebKey(kty=KeyType.ec_hsm,
                                                       t=blob(kek, plain, ct=flip(good, 300))))
            raise AssertionError("the SDK imported a tampered blob")
        except HttpResponseError as e:
            eq(e.status_code, 400, "SDK: status")
            err = json.loads(e.response.text())["error"]
            eq((err["code"], err["message"]), ("BadParameter", MSG_BLOB), "SDK: the error")
        absent("t-blob-sdk")

    @runner.test
    def refused_blob_of_another_type_or_curve():
        kek = keks[2048]
        rsa_target = Target("RSA-HSM", 2048)
        p384 = Target("EC-HSM", "P-384")
        remember("type", rsa_target)
        remember("type", p384)
        cases = (
            (ec_target, "RSA-HSM", {}, "an EC blob as RSA-HSM"),
            (rsa_target, "EC-HSM", {}, "an RSA blob as EC-HSM"),
            (ec_target, "EC-HSM", {"crv": "P-384"}, "a P-256 blob with crv P-384"),
            (p384, "EC-HSM", {"crv": "P-256"}, "a P-384 blob with crv P-256"),
            (ec_target, "EC-HSM", {"crv": "P-256K"}, "a P-256 blob with crv P-256K"),
        )
        for target, kty, kw, what in cases:
            refused_import(fresh("t-type"), kty, blob(kek, target.plain), 400, "BadParameter",
                           MSG_BLOB, what, **kw)
        # an oct key of 20 bytes (Key Vault's are 128, 192 or 256 bits)
        short = Target("oct-HSM", 20)
        remember("oct20", short)
        refused_import("t-oct20", "oct-HSM", blob(kek, short.plain), 400, "BadParameter",
                       MSG_KEY_SIZE, "an oct key of 20 bytes")

    @runner.test
    def refused_malformed_requests():
        kek = keks[2048]
        good = blob(kek, ec_target.plain)
        doc = json.loads(good)

        def variant(**changes):
            d = json.loads(good)
            for k, v in changes.items():
                if k in ("kid", "alg", "enc"):
                    if v is None:
                        d["header"].pop(k)
                    else:
                        d["header"][k] = v
                elif v is None:
                    d.pop(k)
                else:
                    d[k] = v
            return json.dumps(d).encode()

        for kty in ("RSA", "EC", "oct"):
            refused_import(fresh("t-kty"), kty, good, 400, "BadParameter", MSG_KTY, f"kty {kty}")
        cases = (
            ("***", MSG_HSM_B64, "key_hsm not base64url"),
            (7, MSG_HSM_B64, "key_hsm a number"),
            (b64url(b"not json"), MSG_HSM_SHAPE, "not JSON"),
            (b64url(b"[1, 2]"), MSG_HSM_SHAPE, "a JSON array"),
            (variant(header=None), MSG_HSM_SHAPE, "no header"),
            (variant(kid=None), MSG_HSM_SHAPE, "no header.kid"),
            (variant(ciphertext=None), MSG_HSM_SHAPE, "no ciphertext"),
            (variant(alg=None), MSG_HSM_ALG, "no header.alg"),
            (variant(alg="RSA-OAEP"), MSG_HSM_ALG, "alg RSA-OAEP"),
            (variant(enc=None), MSG_HSM_ENC, "no header.enc"),
            (variant(enc="A256KW"), MSG_HSM_ENC, "enc A256KW"),
            (variant(enc="ckm_rsa_aes_key_wrap"), MSG_HSM_ENC, "enc in lower case"),
            (variant(ciphertext="!!" + doc["ciphertext"]), MSG_HSM_CT, "ciphertext not base64url"),
        )
        for data, message, what in cases:
            name = fresh("t-shape")
            body = body_of("EC-HSM", "")
            body["key"]["key_hsm"] = data if isinstance(data, (str, int)) else b64url(data)
            refused(call("PUT", f"/keys/{name}", body), 400, "BadParameter", message, what)
            absent(name)
        # the blob itself was good
        eq(put(fresh("t-shape"), "EC-HSM", good)[0], 200, "the unaltered blob")

    @runner.test
    def refused_hardware_key_into_a_standard_vault():
        kek = keks[2048]
        # a standard vault holds no hardware key, so no KEK: its answer is the vault's, not
        # the KEK's (the blob is wrapped for a premium KEK but names the standard vault)
        std_kid = f"https://{host('standard')}/keys/kek"
        refused_import("t-std", "EC-HSM", blob(kek, ec_target.plain, kid=std_kid), 403,
                       "Forbidden", MSG_STANDARD, "a kid on the standard vault", vault="standard")
        # a software RSA key of the standard vault with key_ops import: still refused 403
        soft = make_kek("kek-soft", vault="standard", kty="RSA")
        refused_import("t-std-soft", "EC-HSM", blob(soft, ec_target.plain), 403, "Forbidden",
                       MSG_STANDARD, "a software KEK of the standard vault", vault="standard")
        rsa_target = Target("RSA-HSM", 2048)
        remember("standard", rsa_target)
        try:
            standard.import_key("t-std-sdk", JsonWebKey(
                kty=KeyType.rsa_hsm, t=blob(kek, rsa_target.plain, kid=std_kid)))
            raise AssertionError("the SDK imported a hardware key into a standard vault")
        except HttpResponseError as e:
            eq(e.status_code, 403, f"SDK: {e.message}")
            err = json.loads(e.response.text())["error"]
            eq((err["code"], err["message"]), ("Forbidden", MSG_STANDARD), "SDK: the error")
        absent("t-std-sdk", "standard")

    @runner.test
    def a_refusal_adds_no_version_to_an_existing_key():
        kek = keks[2048]
        first = put("t-exists", "EC-HSM", blob(kek, ec_target.plain))
        eq(first[0], 200, first[1])
        before = ok("GET", "/keys/t-exists/versions")["value"]
        eq(len(before), 1, "one version")
        for data, what in ((blob(kek, ec_target.plain, kid=kek["kid"] + "x"), "a bad kid"),
                           (blob(kek, ec_target.plain, enc="RSA_AES_KEY_WRAP_384", oaep=CKM),
                            "the wrong enc")):
            st, doc = put("t-exists", "EC-HSM", data)
            eq(st, 400, f"{what}: {doc}")
        eq(ok("GET", "/keys/t-exists/versions")["value"], before, "the versions as they were")
        eq(ok("GET", "/keys/t-exists")["key"]["kid"], first[1]["key"]["kid"], "the current one")

    # ============================================================ the kid ========

    @runner.test
    def the_kid_as_kvmock_gave_it_and_without_version():
        v1 = make_kek("kek-rot")
        check(v1["kid"].startswith(f"https://premium.vault.localhost:{P}/keys/kek-rot/"),
              v1["kid"])
        t = Target("RSA-HSM", 2048)
        remember("kid", t)
        st, doc = put("t-kid-v1", "RSA-HSM", blob(v1, t.plain))
        eq(st, 200, f"the kid as kvmock gave it: {doc}")
        same_public(doc["key"], t, "t-kid-v1")
        versionless = v1["kid"].rsplit("/", 1)[0]
        st, doc = put("t-kid-nov", "RSA-HSM", blob(v1, t.plain, kid=versionless))
        eq(st, 200, f"without a version, one version: {doc}")
        # a second version of the KEK becomes the current one
        v2 = make_kek("kek-rot")
        check(v2["kid"] != v1["kid"], "a new version")
        st, doc = put("t-kid-v2", "RSA-HSM", blob(v2, t.plain, kid=versionless))
        eq(st, 200, f"without a version: the current (second) version: {doc}")
        refused_import("t-kid-old", "RSA-HSM", blob(v1, t.plain, kid=versionless), 400,
                       "BadParameter", MSG_BLOB, "for the first version, named without version")
        st, doc = put("t-kid-old", "RSA-HSM", blob(v1, t.plain))
        eq(st, 200, f"for the first version under its own kid: {doc}")
        same_public(doc["key"], t, "t-kid-old")

    # ============================================================ the log ========

    @runner.test
    def no_private_bytes_in_the_log():
        check(len(secret_parts) > 60, f"{len(secret_parts)} secrets collected")
        check(len(key_hsms) > 50, f"{len(key_hsms)} blobs collected")
        kv.stop()
        with open(kv.log_path, "rb") as f:
            log = f.read()
        check(b'"operation":"KeyImport"' in log, "the log holds the imports")
        scanner = Scanner(secret_parts)
        hsm_needles = [p for text in key_hsms for p in pieces("base64url", text.encode())]

        def scan(data):
            found = scanner.scan(data)
            return found + [("key_hsm", p) for p in hsm_needles if p in data]

        aes = next(v for k, v in secret_parts.items() if k.endswith("AES key"))
        for planted in (b"<" + aes.hex().encode() + b">",
                        b"x" + b64url(next(iter(secret_parts.values())))[3:60].encode() + b"y",
                        b" " + key_hsms[0][40:90].encode() + b" "):
            check(scan(log + planted), f"the search finds a planted piece {planted[:20]!r}")
        eq(scan(log), [], "private bytes in kvmock's log")
        for mark in SANITIZER_MARKS:
            check(mark.encode() not in log, mark)

    runner.run_collected()


if __name__ == "__main__":
    main()
