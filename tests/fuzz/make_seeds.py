#!/usr/bin/python3
"""Write the seed corpora of the fuzz targets into tests/fuzz/corpus/<target>/.

Seeds are small, hand-shaped inputs in each target's input format (see the
comment at the top of each fuzz_*.c). fuzz_restore's seeds (real backups) come
from the target itself: run.sh calls it with FUZZ_RESTORE_SEEDS=DIR; this
script then copies its backup blobs into fuzz_http's restore seeds.
Usage: make_seeds.py [--restore-seeds DIR]"""
import base64
import datetime
import json
import os
import re
import struct
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def testassert_string(name):
    """A string constant of tests/unit/testassert.h (adjacent literals joined)."""
    with open(os.path.join(HERE, "..", "unit", "testassert.h"), encoding="ascii") as f:
        text = f.read()
    body = text[text.index(f"{name}[] ="):]
    body = body[:body.index(";")]
    return "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', body)).encode().decode("unicode_escape")


def testassert_cert_b64():
    """The certificate of tests/unit/testassert.h as x5c holds it (base64 DER, one line)."""
    pem = testassert_string("testassert_cert_pem")
    return "".join(l for l in pem.splitlines() if l and not l.startswith("-----"))


def be(n, size=None):
    size = size or max(1, (n.bit_length() + 7) // 8)
    return n.to_bytes(size, "big")


def pkcs8(key):
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def byok_seeds():
    """fuzz_byok: byte 0 = enc + 3 * mode (0 wrapped, 5 raw, 6 a bad AES key, 7 one change;
    byte 0 / 24 picks the last two's variant), byte 1 = kty + 3 * crv + 15 * AES size
    (kty 0 RSA, 1 EC, 2 oct; crv 0 none, 1 P-256, 2 P-256K, 3 P-384, 4 P-521; AES 16/24/32),
    then the key the blob carries (PKCS#8 DER, or the oct bytes)."""
    RSA_, EC_, OCT = 0, 1, 2

    def seed(name, enc, kty, crv, body, mode=0, sub=0, aes=2):
        write("fuzz_byok", name, bytes([enc + 3 * mode + 24 * sub, kty + 3 * crv + 15 * aes]) + body)

    rsa_der = pkcs8(rsa.generate_private_key(65537, 2048))
    for enc in range(3):
        seed(f"rsa2048-enc{enc}", enc, RSA_, 0, rsa_der, aes=enc)
    seed("rsa2048-as-ec", 0, EC_, 1, rsa_der)
    seed("rsa2048-as-oct", 1, OCT, 0, rsa_der)
    ecs = {}
    for crv, curve in ((1, ec.SECP256R1()), (2, ec.SECP256K1()), (3, ec.SECP384R1()), (4, ec.SECP521R1())):
        ecs[crv] = der = pkcs8(ec.generate_private_key(curve))
        seed(f"ec-{curve.name}", crv % 3, EC_, crv, der, aes=crv % 3)
        seed(f"ec-{curve.name}-any-curve", 2, EC_, 0, der)
    # x and d with a leading zero byte: the parts come without it (big-endian numbers)
    while True:
        k = ec.generate_private_key(ec.SECP256R1())
        if k.private_numbers().public_numbers.x >> 248 == 0 and k.private_numbers().private_value >> 248 != 0:
            break
    seed("ec-secp256r1-short-x", 0, EC_, 1, pkcs8(k))
    while True:
        k = ec.generate_private_key(ec.SECP384R1())
        if k.private_numbers().private_value >> 376 == 0:
            break
    seed("ec-secp384r1-short-d", 1, EC_, 0, pkcs8(k))
    seed("p256-as-p384", 0, EC_, 3, ecs[1])
    seed("p521-as-p256k", 1, EC_, 2, ecs[4])
    seed("p256-as-rsa", 2, RSA_, 0, ecs[1])
    ed = pkcs8(ed25519.Ed25519PrivateKey.generate())
    seed("ed25519-as-ec", 0, EC_, 0, ed)
    seed("ed25519-as-rsa", 1, RSA_, 0, ed)
    for n in (16, 24, 32, 20):
        seed(f"oct{n}", n % 3, OCT, 0, os.urandom(n), aes=(n // 8) % 3)
    seed("oct32-as-ec", 0, EC_, 1, os.urandom(32))
    seed("raw", 0, RSA_, 0, os.urandom(256 + 40), mode=5)
    seed("bad-aes-key", 1, OCT, 0, os.urandom(32), mode=6, sub=3)
    for sub in range(5):
        seed(f"changed-{sub}", sub % 3, EC_, 1, ecs[1], mode=7, sub=sub)


def main():
    restore_dir = None
    if len(sys.argv) == 3 and sys.argv[1] == "--restore-seeds":
        restore_dir = sys.argv[2]

    # ---- base64url
    for i, s in enumerate(["", "AQAB", "aGVsbG8", "a-_b", "AAAA==", "x", "AQAB=", "////", "a+b/",
                           "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo"]):
        write("fuzz_b64url", f"seed{i}", s)

    # ---- tokens: 0 raw, 1 signed "header\0payload", 2 mutations of a valid token
    hdr = '{"alg":"HS256","typ":"JWT"}'
    claims = {"aud": "https://vault.azure.net", "iss": "https://sts.windows.net/t/", "iat": 1699999990,
              "nbf": 1699999990, "exp": 1700003590, "appid": "cid-1", "oid": "oid-1", "tid": "tenant-1"}
    write("fuzz_token", "signed-good", b"\x01" + hdr.encode() + b"\0" + json.dumps(claims).encode())
    write("fuzz_token", "signed-none", b"\x01" + b'{"alg":"none"}\0' + json.dumps(claims).encode())
    for i, (k, v) in enumerate((("nbf", 1800000000), ("exp", 1600000000), ("aud", "https://storage.azure.com"),
                 ("oid", 5), ("exp", "1700003590"), ("aud", "https://vault.localhost:8443/"),
                 ("tid", "x" * 70), ("nbf", 1e300), ("exp", -1e300))):
        c = dict(claims)
        c[k] = v
        write("fuzz_token", f"signed-{k}-{i}", b"\x01" + hdr.encode() + b"\0" + json.dumps(c).encode())
    tok = ".".join([b64url(hdr.encode()), b64url(json.dumps(claims).encode()), b64url(b"\1" * 32)])
    write("fuzz_token", "raw-badsig", b"\x00" + tok.encode())
    write("fuzz_token", "raw-dots", b"\x00a.b.c.d")
    write("fuzz_token", "raw-empty", b"\x00..")
    write("fuzz_token", "mutate", b"\x02" + bytes([5, ord("x"), 200, ord("A"), 250, ord("_")]))

    # ---- client assertions: 0 raw, 1 "header\0claims" (a junk signature), 2 mutations of the
    # valid ones of tests/unit/testassert.h (byte 1 picks), 3 a PEM text / JWKS registered
    client, endpoint = "0c000000-0000-4000-8000-000000000002", "https://localhost:8443/t/oauth2/v2.0/token"
    own = {"aud": endpoint, "iss": client, "sub": client, "exp": 1800000600}
    fed = {"aud": ["api://AzureADTokenExchange"], "iss": "https://issuer.example", "sub": "ci",
           "nbf": 1800000000, "exp": 1800000600}
    for i, (h, c) in enumerate(((
            {"alg": "RS256", "x5t": b64url(b"\1" * 20)}, own),
            ({"alg": "PS256", "x5t#S256": b64url(b"\2" * 32)}, own),
            ({"alg": "ES256", "kid": "e1"}, fed), ({"alg": "RS384"}, fed),
            ({"alg": "ES512", "kid": "e1"}, dict(fed, aud="api://other")),
            ({"alg": "none"}, own), ({"alg": "RS256"}, dict(own, exp="soon")),
            ({"alg": "PS512", "kid": 7}, dict(fed, iss=None)))):
        write("fuzz_assertion", f"signed-{i}", b"\x01" + json.dumps(h).encode() + b"\0"
              + json.dumps(c).encode())
    write("fuzz_assertion", "raw-dots", b"\x00a.b.c")
    write("fuzz_assertion", "raw-parts", b"\x00" + ".".join(
        [b64url(b'{"alg":"RS256"}'), b64url(json.dumps(own).encode()), b64url(b"\0" * 256)]).encode())
    for i, m in enumerate((b"\x00\x05x\x40A", b"\x01\x90_\xf0-", b"\x00", b"\x01\x02.")):
        write("fuzz_assertion", f"mutate-{i}", b"\x02" + m)
    k = ec.generate_private_key(ec.SECP256R1()).public_key().public_numbers()
    write("fuzz_assertion", "jwks-ec", b"\x03" + json.dumps({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "a", "x": b64url(be(k.x, 32)), "y": b64url(be(k.y, 32))}]}).encode())
    r = rsa.generate_private_key(65537, 2048).public_key().public_numbers()
    write("fuzz_assertion", "jwks-rsa", b"\x03" + json.dumps({"keys": [
        {"kty": "RSA", "use": "sig", "n": b64url(be(r.n)), "e": b64url(be(r.e))},
        {"kty": "RSA", "use": "enc", "n": "AQAB", "e": "AQAB"}]}).encode())
    write("fuzz_assertion", "pem", b"\x03-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
          b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")

    # ---- release: 0 policy, 1 "POLICY\0CLAIMS" (claims signed by the target), 2 mutations, 3 JWKS
    policy = {"version": "1.0.0", "anyOf": [{"authority": "https://attest.example/", "allOf": [
        {"claim": "sdk-test", "equals": True},
        {"anyOf": [{"claim": "x-ms-isolation-tee.x-ms-attestation-type", "equals": "sevsnpvm"},
                   {"claim": "svn", "greater": "2"}]}]}]}
    old = {"version": "1.0", "anyOf": [{"authority": "https://attest.example", "anyOf": [
        {"claim": "sdk-test", "condition": "equals", "value": "true"}]}]}
    write("fuzz_release", "policy", b"\x00" + json.dumps(policy).encode())
    write("fuzz_release", "policy-old", b"\x00" + json.dumps(old).encode())
    write("fuzz_release", "policy-bad", b"\x00" + b'{"version":"1.0.0","anyOf":[{"authority":"http://a"}]}')
    rt = rsa.generate_private_key(65537, 2048).public_key().public_numbers()
    runtime = {"keys": [{"kty": "EC", "crv": "P-256", "use": "enc", "x": "AA", "y": "AA"},
                        {"kty": "RSA", "kid": "k", "key_ops": ["encrypt"], "e": b64url(be(rt.e)),
                         "n": b64url(be(rt.n))}]}
    claims = {"iss": "https://attest.example", "exp": 1900000000, "nbf": 1700000000, "sdk-test": True,
              "svn": 3, "x-ms-runtime": runtime}
    write("fuzz_release", "signed", b"\x01" + json.dumps(policy).encode() + b"\0" + json.dumps(claims).encode())
    tee = dict(claims)
    del tee["x-ms-runtime"]
    tee["x-ms-isolation-tee"] = {"x-ms-attestation-type": "sevsnpvm", "x-ms-runtime": runtime}
    write("fuzz_release", "signed-tee", b"\x01" + json.dumps(old).encode() + b"\0" + json.dumps(tee).encode())
    for i, m in enumerate((b"\x05x", b"\x90_\xf0-", b"", b"\x02.")):
        write("fuzz_release", f"mutate-{i}", b"\x02" + m)
    k = ec.generate_private_key(ec.SECP384R1()).public_key().public_numbers()
    write("fuzz_release", "jwks", b"\x03" + json.dumps({"keys": [
        {"kty": "EC", "crv": "P-384", "kid": "a", "x": b64url(be(k.x, 48)), "y": b64url(be(k.y, 48))},
        {"kty": "RSA", "kid": "c", "x5c": [testassert_cert_b64()]}]}).encode())

    byok_seeds()

    # ---- router: method byte, decode-size byte, "PATH[?QUERY]"
    routes = ["/keys?api-version=7.4&maxresults=2", "/keys/name/create?api-version=7.4",
              "/keys/k/0123456789abcdef0123456789abcdef/wrapkey", "/keys/k//unwrapkey",
              "/deletedkeys/k/recover", "/keys/k/versions?$skiptoken=6b&maxresults=25",
              "/keys/%2e%2e/x", "/keys/K%2Dey/rotationpolicy", "/rng?api%2Dversion=7%2E4",
              "/keys/restore", "/keys/k/", "/deletedkeys/k", "/keys/k/v/release",
              "/keys/a+b?x=%zz&y=%2", "/keys/k%00/x"]
    for i, r in enumerate(routes):
        write("fuzz_route", f"seed{i}", bytes([i % 7, 16 + i]) + r.encode())

    # ---- JWK import: kty, crv, then fields n e d p q dp dq qi x y k as u16 length + bytes
    def jwk_seed(kty, crv, fields):
        out = bytes([kty, crv])
        for f in fields:
            out += struct.pack("<H", len(f)) + f
        return out

    key = rsa.generate_private_key(65537, 2048)
    pn, pv = key.private_numbers(), key.private_numbers().public_numbers
    size = 256
    write("fuzz_jwk", "rsa2048", jwk_seed(0, 0, [be(pv.n), be(pv.e), be(pn.d, size), be(pn.p), be(pn.q),
                                                 be(pn.dmp1), be(pn.dmq1), be(pn.iqmp)]))
    write("fuzz_jwk", "rsa2048-bad-d", jwk_seed(0, 0, [be(pv.n), be(pv.e), be(pn.d + 2, size), be(pn.p),
                                                       be(pn.q), be(pn.dmp1), be(pn.dmq1), be(pn.iqmp)]))
    for crv_idx, curve, fs in ((1, ec.SECP256R1(), 32), (2, ec.SECP256K1(), 32), (3, ec.SECP384R1(), 48),
                               (4, ec.SECP521R1(), 66)):
        k = ec.generate_private_key(curve)
        n = k.private_numbers()
        empty = [b""] * 8
        fields = empty[:2] + [be(n.private_value, fs)] + empty[3:] + [
            be(n.public_numbers.x, fs), be(n.public_numbers.y, fs)]
        write("fuzz_jwk", f"ec-{curve.name}", jwk_seed(1, crv_idx, fields))
    for bits in (128, 192, 256):
        write("fuzz_jwk", f"oct{bits}", jwk_seed(2, 0, [b""] * 10 + [os.urandom(bits // 8)]))

    # ---- restore documents (shape only; run.sh adds real backups made by the target)
    doc = {"format": "kvmock-key-backup-1", "name": "k", "current": "0" * 32,
           "versions": [{"version": "0" * 32, "record": {"kty": "oct", "material": b64url(b"k" * 32)}}]}
    write("fuzz_restore", "doc-minimal", b"\x01" + json.dumps(doc).encode())

    # ---- HTTP: template byte, variant byte, body
    T = {"create": 0, "import": 1, "update": 2, "op": 3, "policy": 4, "restore": 5, "rng": 6,
         "entra": 7, "vault": 8, "policies": 9, "role": 10, "msi": 11, "clock": 12, "raw": 13,
         "rawmgmt": 14, "vaultpatch": 15, "group": 16, "grouppatch": 17, "entrav1": 18,
         "armkey": 19, "rolescope": 20, "roledef": 21, "hsmrole": 22, "hsmroledef": 23,
         "hsmcreate": 24, "hsmbackup": 25, "hsmrestore": 26, "hsmsetting": 27,
         "armhsm": 28, "armhsmpatch": 29, "mhsmname": 30, "securitydomain": 31,
         "sdupload": 32, "sdtransferkey": 33}
    ops = ["rsa//wrapkey", "rsa//unwrapkey", "rsa//encrypt", "rsa//decrypt", "rsa//sign",
           "rsa//verify", "ec//sign", "ec//verify", "oct//wrapkey", "oct//unwrapkey", "oct//encrypt",
           "oct//decrypt", "oct//sign", "oct//verify", "rsa//release"]

    def http(name, t, variant, body):
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        write("fuzz_http", name, bytes([T[t], variant]) + body)

    http("create-ec", "create", 0, {"kty": "EC", "crv": "P-384", "key_ops": ["sign", "verify"]})
    http("create-oct", "create", 0, {"kty": "oct", "key_size": 128, "tags": {"a": "b"},
                                     "attributes": {"enabled": True, "exp": 2000000000}})
    http("create-rsa", "create", 0, {"kty": "RSA", "key_size": 2048, "public_exponent": 65537})
    http("import-oct", "import", 0, {"key": {"kty": "oct", "k": b64url(os.urandom(32))}, "Hsm": True})
    ek = ec.generate_private_key(ec.SECP256R1()).private_numbers()
    http("import-ec", "import", 0, {"key": {"kty": "EC", "crv": "P-256",
                                            "x": b64url(be(ek.public_numbers.x, 32)),
                                            "y": b64url(be(ek.public_numbers.y, 32)),
                                            "d": b64url(be(ek.private_value, 32))}})
    http("update", "update", 0, {"attributes": {"enabled": False, "nbf": 1, "exp": 4102444800},
                                 "key_ops": ["sign"], "tags": {"x": "y"}})
    vals = {"wrapkey": {"alg": "RSA-OAEP-256", "value": b64url(b"k" * 32)},
            "unwrapkey": {"alg": "RSA-OAEP", "value": b64url(b"c" * 256)},
            "encrypt": {"alg": "RSA1_5", "value": b64url(b"hello")},
            "decrypt": {"alg": "RSA-OAEP", "value": b64url(b"c" * 256)},
            "sign": {"alg": "PS256", "value": b64url(b"d" * 32)},
            "verify": {"alg": "RS256", "digest": b64url(b"d" * 32), "value": b64url(b"s" * 256)},
            "release": {"target": "x"}}
    for i, op in enumerate(ops):
        kind = op.split("//")[1]
        body = dict(vals[kind])
        if op.startswith("ec"):
            body["alg"] = "ES256"
        if op.startswith("oct"):
            body = {"alg": {"wrapkey": "A256KW", "unwrapkey": "A256KW", "encrypt": "A256GCM",
                            "decrypt": "A256CBCPAD", "sign": "HS256", "verify": "HS256"}[kind],
                    "value": b64url(b"v" * 40), "iv": b64url(b"i" * 16), "tag": b64url(b"t" * 16),
                    "aad": b64url(b"a"), "digest": b64url(b"d" * 32)}
        http(f"op-{op.replace('//', '-')}", "op", i, body)
    http("policy", "policy", 0, {"lifetimeActions": [
        {"trigger": {"timeAfterCreate": "P90D"}, "action": {"type": "Rotate"}},
        {"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
        "attributes": {"expiryTime": "P1Y2M3DT4H5M6S"}})
    http("restore-bad", "restore", 0, {"value": b64url(b"\1" * 80)})
    http("rng", "rng", 0, {"count": 64})
    http("entra", "entra", 0, "grant_type=client_credentials&client_id=6b766d6f-636b-4000-8000-0000000000c1"
         "&client_secret=s3cret&scope=https%3A%2F%2Fvault.azure.net%2F.default")
    http("vault", "vault", 0, {"location": "local", "properties": {
        "tenantId": "6b766d6f-636b-4000-8000-000000000001", "sku": {"family": "A", "name": "standard"},
        "enableSoftDelete": True, "softDeleteRetentionInDays": 7, "enableRbacAuthorization": False,
        "accessPolicies": [{"tenantId": "6b766d6f-636b-4000-8000-000000000001",
                            "objectId": "6b766d6f-636b-4000-8000-0000000000a1",
                            "permissions": {"keys": ["get", "list", "wrapKey"]}}]}})
    for i, kind in enumerate(["add", "replace", "remove"]):
        http(f"policies-{kind}", "policies", i, {"properties": {"accessPolicies": [
            {"tenantId": "6b766d6f-636b-4000-8000-000000000001", "objectId": "o-1",
             "applicationId": "a-1", "permissions": {"keys": ["all"]}}]}})
    http("role", "role", 0, {"properties": {
        "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                            "12338af0-0e69-4776-bea7-57ae8d297424",
        "principalId": "6b766d6f-636b-4000-8000-0000000000a1"}})
    http("msi", "msi", 0, "resource=https%3A%2F%2Fvault.azure.net&client_id=x")
    # Managed HSM fzh (scopes "", "/keys", "/keys/hk", "//")
    for i in range(4):
        http(f"hsm-role-{i}", "hsmrole", i, {"properties": {
            "roleDefinitionId": "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
                                + ("4f4f4f4f-4f4f-4f4f-8f4f-4f4f4f4f4f4f" if i % 2 else
                                   "21dbd100-6940-42c2-9190-5d6cb909625b"),
            "principalId": "6b766d6f-636b-4000-8000-0000000000b1"}})
    http("hsm-roledef", "hsmroledef", 0, {"properties": {
        "roleName": "fz wrap", "description": "d", "type": "CustomRole",
        "permissions": [{"dataActions": ["Microsoft.KeyVault/managedHsm/keys/*"],
                         "notDataActions": ["Microsoft.KeyVault/managedHsm/keys/delete"]},
                        {"actions": [], "dataActions": ["Microsoft.KeyVault/managedHsm/rng/action"]}],
        "assignableScopes": ["/", "/keys"]}})
    http("hsm-create", "hsmcreate", 0, {"kty": "RSA", "key_size": 2048})
    sas = "sv=2021-08-06&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=crdw&sig=fz"
    http("hsm-backup", "hsmbackup", 0, {"storageResourceUri": "https://fz.blob.core.windows.net/c",
                                        "token": sas})
    http("hsm-backup-mi", "hsmbackup", 0, {"storageResourceUri": "https://fz.blob.core.windows.net/c",
                                           "useManagedIdentity": True})
    http("hsm-restore", "hsmrestore", 0, {"sasTokenParameters": {
        "storageResourceUri": "https://fz.blob.core.windows.net/c", "token": sas},
        "folderToRestore": "mhsm-fzh-2026120719000000"})
    http("hsm-restore-key", "hsmrestore", 1, {"sasTokenParameters": {
        "storageResourceUri": "https://fz.blob.core.windows.net/c", "token": sas},
        "folder": "mhsm-fzh-2026120719000000"})
    http("hsm-setting", "hsmsetting", 0, {"value": "true"})
    # Managed HSM fzm through Resource Manager, in group fzg or g
    for i, group in enumerate(["fzg", "g"]):
        http(f"arm-hsm-{group}", "armhsm", i, {
            "location": "westeurope", "sku": {"family": "B", "name": "Custom_B32"},
            "tags": {"env": "fz"}, "properties": {
                "tenantId": "6b766d6f-636b-4000-8000-000000000001",
                "initialAdminObjectIds": ["6b766d6f-636b-4000-8000-0000000000a1"],
                "softDeleteRetentionInDays": 7, "enablePurgeProtection": False,
                "publicNetworkAccess": "Enabled",
                "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow",
                                "ipRules": [{"value": "203.0.113.0/24"}],
                                "virtualNetworkRules": []}}})
        http(f"arm-hsm-patch-{group}", "armhsmpatch", i, {
            "tags": {"owner": "fz"}, "properties": {"enablePurgeProtection": False}})
    http("arm-hsm-recover", "armhsm", 0, {"location": "westeurope",
                                          "properties": {"createMode": "recover"}})
    http("mhsm-name", "mhsmname", 0, {"name": "fzm"})
    # fzh's security domain: three certificates of RSA keys, a quorum of two
    sd_certs = []
    for i in range(3):
        sd_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        sd_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"sd{i}")])
        sd_cert = (x509.CertificateBuilder().subject_name(sd_name).issuer_name(sd_name)
                   .public_key(sd_key.public_key()).serial_number(i + 1)
                   .not_valid_before(datetime.datetime(2026, 1, 1))
                   .not_valid_after(datetime.datetime(2036, 1, 1))
                   .sign(sd_key, hashes.SHA256()))
        sd_certs.append({"kty": "RSA", "alg": "RSA-OAEP-256", "x5c": [
            base64.b64encode(sd_cert.public_bytes(serialization.Encoding.DER)).decode()]})
    http("security-domain", "securitydomain", 0, {"certificates": sd_certs, "required": 2})
    # an upload's restore blob: the shape the Azure CLI makes (wrapped for no key of fzh's)
    jwe = ".".join(b64url(os.urandom(n)) for n in (40, 256, 16, 48, 32))
    http("sd-upload", "sdupload", 0, {"value": json.dumps({
        "EncData": {"data": [{"compact_jwe": jwe, "tag": "kvmock-domain"}], "kdf": "sp108_kdf"},
        "WrappedKey": {"enc_key": jwe, "x5t_256": b64url(os.urandom(32))}})})
    http("sd-transfer-key", "sdtransferkey", 0, b"")
    http("vault-patch", "vaultpatch", 0, {"tags": {"team": "fz", "env": "ci"},
                                          "properties": {"enableRbacAuthorization": False}})
    for i, name in enumerate(["fzg", "g"]):
        http(f"group-{name}", "group", i, {"location": "westeurope", "tags": {"cost": "1"}})
        http(f"group-patch-{name}", "grouppatch", i, {"tags": {"owner": "fz"}})
    http("arm-key", "armkey", 0, {"properties": {"kty": "EC", "curveName": "P-256",
                                                 "keyOps": ["sign", "verify"],
                                                 "attributes": {"enabled": True, "exp": 4102444800}},
                                  "tags": {"purpose": "fz"}})
    # client assertions of tests/unit/testassert.h, for fuzz_http's identity "ci": the
    # federated one is accepted (its exp is in 2027), the application's own names another
    # endpoint as its audience
    own_assertion, federated_assertion = (testassert_string(n) for n in
                                          ("testassert_own_assertion", "testassert_federated_assertion"))
    bearer = "urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
    for i, (path, a) in enumerate((("entra", federated_assertion), ("entra", own_assertion),
                                   ("entrav1", federated_assertion))):
        audience = ("resource=https%3A%2F%2Fvault.azure.net" if path == "entrav1"
                    else "scope=https%3A%2F%2Fvault.azure.net%2F.default")
        http(f"assertion-{i}", path, 0, "grant_type=client_credentials&client_id="
             f"{client}&client_assertion_type={bearer}&client_assertion={a}&{audience}")
    http("entra-v1", "entrav1", 0, "grant_type=client_credentials&client_id="
         "6b766d6f-636b-4000-8000-0000000000c1&client_secret=s3cret"
         "&resource=https%3A%2F%2Fvault.azure.net")
    # secure key release: an exportable key with its policy (the vault is premium), a
    # policy given to a key that is not exportable, and releases of fuzz_http's "skr"
    # (variant 15) with testassert.h's federated assertion as the attestation token
    # (its issuer is a trusted authority; the token meets skr's policy and names no
    # x-ms-runtime key) and with a junk one
    policy = json.dumps({"version": "1.0.0", "anyOf": [{"authority": "https://issuer.example",
                         "allOf": [{"claim": "sub", "equals": "ci"},
                                   {"anyOf": [{"claim": "exp", "greater": 1},
                                              {"claim": "x.y", "exists": True}]}]}]})
    data = base64.urlsafe_b64encode(policy.encode()).rstrip(b"=").decode()
    http("create-exportable", "create", 0, {"kty": "oct-HSM", "key_size": 256,
                                            "attributes": {"exportable": True},
                                            "release_policy": {"data": data, "immutable": True}})
    http("update-policy", "update", 0, {"release_policy": {"data": data,
                                                           "contentType": "application/json"}})
    http("release-skr", "op", 15, {"target": federated_assertion, "nonce": "n\u00e9",
                                   "enc": "RSA_AES_KEY_WRAP_256"})
    http("release-junk", "op", 15, {"target": "e30.e30.AA", "enc": "CKM_RSA_AES_KEY_WRAP"})
    http("clock", "clock", 0, {"advanceSeconds": 86400})
    for variant in range(4):  # the subscription, group g, vault fzv, key rsa
        http(f"rolescope{variant}", "rolescope", variant, {"properties": {
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/"
                                "roleDefinitions/21090545-7ca7-4776-b22c-e363652d74d2",
            "principalId": "0a000000-0000-4000-8000-00000000000%d" % variant}})
    custom = "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/" \
             "2f2f2f2f-2f2f-4f2f-8f2f-2f2f2f2f2f2f"
    for variant, (name, actions) in enumerate([
            ("CMK Unwrap", ["Microsoft.KeyVault/vaults/keys/read",
                            "Microsoft.KeyVault/vaults/keys/unwrap/action"]),
            ("All but purge", ["Microsoft.KeyVault/vaults/*"])]):
        http(f"roledef{variant}", "roledef", variant, {"properties": {
            "roleName": name, "type": "CustomRole", "description": "d",
            "permissions": [{"actions": [], "notActions": [], "dataActions": actions,
                             "notDataActions": ["Microsoft.KeyVault/vaults/keys/purge/action"]}],
            "assignableScopes": ["/subscriptions/s"]}})
    http("rolescope-custom", "rolescope", 2, {"properties": {
        "roleDefinitionId": custom, "principalId": "0a000000-0000-4000-8000-00000000000c"}})
    for i, line in enumerate(["GET /keys?api-version=7.4&maxresults=2 HTTP/1.1",
                              "GET /keys/rsa/versions?api-version=7.4 HTTP/1.1",
                              "DELETE /keys/upd?api-version=7.4 HTTP/1.1",
                              "GET /deletedkeys?api-version=7.4&$skiptoken=00 HTTP/1.1",
                              "POST /keys/rsa/backup?api-version=7.4 HTTP/1.1",
                              "GET /subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/"
                              "vaults?api-version=2023-07-01 HTTP/1.1\r\nX-A: b",
                              "GET /keys/rsa/attestation?api-version=7.6 HTTP/1.1"]):
        http(f"raw{i}", "raw", 0, line)
    for i, line in enumerate(["GET /subscriptions?api-version=2022-12-01 HTTP/1.1",
                              "GET /subscriptions/s/resources?$filter=resourceType%20eq%20%27"
                              "Microsoft.KeyVault%2Fvaults%27&api-version=2015-11-01 HTTP/1.1",
                              "GET //metadata/endpoints?api-version=2015-01-01 HTTP/1.1",
                              "GET /tenants?api-version=2022-12-01 HTTP/1.1",
                              "GET /subscriptions/s/providers/Microsoft.KeyVault/deletedVaults"
                              "?api-version=2023-07-01&$top=1 HTTP/1.1",
                              "GET /subscriptions/s/resourcegroups?api-version=2021-04-01 HTTP/1.1",
                              "HEAD /subscriptions/s/resourcegroups/fzg?api-version=2021-04-01 HTTP/1.1",
                              "DELETE /subscriptions/s/resourcegroups/fzg?api-version=2021-04-01 "
                              "HTTP/1.1",
                              "GET /subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/"
                              "vaults/fzv/keys?api-version=2023-07-01 HTTP/1.1",
                              "GET /subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/"
                              "vaults/fzv/keys/armk/versions?api-version=2023-07-01 HTTP/1.1",
                              "GET /subscriptions/s/resourceGroups/g/providers/Microsoft.Authorization/"
                              "roleAssignments?$filter=atScope()%20and%20assignedTo('x')"
                              "&api-version=2022-04-01 HTTP/1.1",
                              "GET /subscriptions/s/providers/Microsoft.Authorization/roleAssignments"
                              "?$filter=principalId%20eq%20'0a'&api-version=2022-04-01 HTTP/1.1",
                              "GET //subscriptions/s/providers/Microsoft.Authorization/roleDefinitions"
                              "?$filter=roleName%20eq%20'Key%20Vault%20Reader'&api-version=2022-04-01 "
                              "HTTP/1.1",
                              "GET /providers/Microsoft.Authorization/roleDefinitions/"
                              "21090545-7ca7-4776-b22c-e363652d74d2?api-version=2022-04-01 HTTP/1.1",
                              "DELETE /subscriptions/s/providers/Microsoft.Authorization/roleAssignments/"
                              "1f1f1f1f-1f1f-4f1f-8f1f-1f1f1f1f1f1f?api-version=2022-04-01 HTTP/1.1",
                              "DELETE /subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
                              "2f2f2f2f-2f2f-4f2f-8f2f-2f2f2f2f2f2f?api-version=2022-04-01 HTTP/1.1",
                              "GET /subscriptions/s/providers/Microsoft.Authorization/roleDefinitions"
                              "?$filter=type%20eq%20'CustomRole'&api-version=2022-04-01 HTTP/1.1"]):
        http(f"rawmgmt{i}", "rawmgmt", 0, line)

    if restore_dir:
        for name in sorted(os.listdir(restore_dir)):
            with open(os.path.join(restore_dir, name), "rb") as f:
                data = f.read()
            write("fuzz_restore", name, data)
            if name.startswith("blob-"):
                http(f"restore-{name}", "restore", 0, {"value": b64url(data[1:])})


if __name__ == "__main__":
    main()
