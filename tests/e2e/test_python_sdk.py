"""The core scenario through Debian's real Python SDK (azure-keyvault-keys
4.8.0b3, azure-identity ManagedIdentityCredential from IDENTITY_ENDPOINT and
IDENTITY_HEADER): create RSA and EC keys, read them back, page through
versions and keys, wrap locally and unwrap on the server, wrap on the server,
and the key_ops / not-found errors.

The whole scenario runs twice:
  (a) https://default.vault.localhost:P with the SDK's challenge-resource
      check left on (the default);
  (b) https://localhost:P with verify_challenge_resource=False.

Every SDK client gets a recording pipeline policy (after the auth policy), so
the tests also check what went over the wire: the 401 challenge and its
header, which operations the SDK did locally and which reached the server,
maxresults on list calls, and that nextLink is absolute on the request's host.
"""
import hashlib
import os
import re
import secrets
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError  # noqa: E402
from azure.core.pipeline.policies import SansIOHTTPPolicy  # noqa: E402
from azure.core.rest import HttpRequest  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.keys import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import (  # noqa: E402
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)

VERSION = re.compile(r"^[0-9a-f]{32}$")
RSA_OPS = sorted(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])  # contract §2.1
EC_OPS = sorted(["sign", "verify"])
EC_LEN = {"P-256": 32, "P-256K": 32, "P-384": 48, "P-521": 66}
HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}
WRAP_ALGS = (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5)
PRIVATE = ("d", "p", "q", "dp", "dq", "qi", "k")

# Every key name created in the default vault by this file (both scenarios
# share that vault), to check the key listing exactly.
CREATED = set()


class Recorder(SansIOHTTPPolicy):
    """Records every request the SDK pipeline sends, after the auth policy:
    (method, url, status, WWW-Authenticate, has Authorization)."""

    def __init__(self):
        self.log = []

    def on_response(self, request, response):
        req, resp = request.http_request, response.http_response
        self.log.append((req.method, req.url, resp.status_code,
                         resp.headers.get("WWW-Authenticate"),
                         "Authorization" in req.headers))

    def mark(self):
        return len(self.log)

    def since(self, mark):
        return self.log[mark:]


class RecordingCredential(ManagedIdentityCredential):
    """The real ManagedIdentityCredential, remembering the scopes asked for."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.scopes = []

    def get_token(self, *scopes, **kwargs):
        self.scopes.append(scopes)
        return super().get_token(*scopes, **kwargs)


def path_of(url):
    return urllib.parse.urlsplit(url).path


def query_of(url):
    return urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)


def expect_error(fn, status, code, inner=None, cls=HttpResponseError):
    try:
        fn()
    except cls as e:
        eq(e.status_code, status, f"status ({e.message})")
        check(e.error is not None, f"no Key Vault error body: {e.message}")
        eq(e.error.code, code, "error.code")
        if inner is not None:
            eq((e.error.innererror or {}).get("code"), inner, "error.innererror.code")
        return e
    raise AssertionError(f"expected {status} {code}, the call succeeded")


def scenario(runner, kv, url, prefix, resource, **client_kwargs):
    """Register the scenario's tests for vault URL `url`; `resource` is what the
    401 challenge must name for that host."""
    rec = Recorder()
    cred = RecordingCredential()
    kw = dict(client_kwargs, per_retry_policies=[rec])
    client = KeyClient(url, cred, **kw)
    keys = {}  # name -> KeyVaultKey as created (the latest version)
    tenant = dict(f.split("=", 1) for f in kv.ready_line.split() if "=" in f)["tenant"]

    def crypto(key_or_id):
        return CryptographyClient(key_or_id, cred, **kw)

    def create(kind, name, **kwargs):
        k = getattr(client, f"create_{kind}_key")(prefix + name, **kwargs)
        CREATED.add((prefix + name).lower())
        keys[name] = k
        return k

    def check_bundle(k, name, kty, ops):
        eq(k.name, prefix + name, "name")
        eq(k.key_type, kty, "kty")
        eq(sorted(k.key_operations), ops, f"key_ops of {kty}")
        v = k.properties.version
        check(isinstance(v, str) and VERSION.match(v), f"version {v!r} is not 32 lowercase hex")
        eq(k.id, f"{url}/keys/{prefix}{name}/{v}", "kid")
        eq(k.key.kid, k.id, "key.kid")
        for m in PRIVATE:
            eq(getattr(k.key, m, None), None, f"private JWK member {m} returned")
        p = k.properties
        eq(p.enabled, True, "enabled")
        check(p.created_on is not None and p.created_on.tzinfo is not None, "created")
        eq(p.updated_on, p.created_on, "updated == created on a new key")
        eq(p.recovery_level, "Recoverable+Purgeable", "recoveryLevel of the default vault")
        eq(p.recoverable_days, 90, "recoverableDays of the default vault")
        # Key Vault (api-version 7.3 and later) answers exportable false for a key that is not
        eq(p.exportable, False, "exportable of a key made without it")

    def check_rsa(k, name, size, kty="RSA", e=b"\x01\x00\x01"):
        check_bundle(k, name, kty, RSA_OPS)
        eq(len(k.key.n), size // 8, "modulus length")
        check(k.key.n[0] & 0x80, "modulus has its top bit set")
        eq(k.key.e, e, "public exponent")

    def check_ec(k, name, crv, kty="EC"):
        check_bundle(k, name, kty, EC_OPS)
        eq(k.key.crv, crv, "crv")
        eq(len(k.key.x), EC_LEN[crv], "x length")
        eq(len(k.key.y), EC_LEN[crv], "y length")

    @runner.test
    def challenge_on_the_first_request():
        # the first request to this host carries no body and no token: 401 with
        # the challenge, then the SDK retries with the body and a token
        m = rec.mark()
        k = create("rsa", "rsa2048", size=2048)
        check_rsa(k, "rsa2048", 2048)
        sent = rec.since(m)
        eq(len(sent), 2, f"challenge + retry, got {sent}")
        (m1, u1, s1, www, auth1), (m2, u2, s2, _, auth2) = sent
        eq((m1, path_of(u1), s1, auth1), ("POST", f"/keys/{prefix}rsa2048/create", 401, False))
        eq(www, f'Bearer authorization="https://login.microsoftonline.com/{tenant}", '
                f'resource="{resource}"', "WWW-Authenticate")
        eq((m2, u2, s2, auth2), ("POST", u1, 200, True))
        eq(cred.scopes[0], (resource + "/.default",), "token scope")

    @runner.test
    def rsa_keys():
        check_rsa(create("rsa", "rsa3072", size=3072), "rsa3072", 3072)
        check_rsa(create("rsa", "rsae3", size=2048, public_exponent=3), "rsae3", 2048, e=b"\x03")
        # the built-in vault "default" is premium: it makes hardware keys
        check_rsa(create("rsa", "rsahsm", size=2048, hardware_protected=True), "rsahsm", 2048,
                  kty="RSA-HSM")
        check_rsa(create("rsa", "rsadefault"), "rsadefault", 2048)  # default size 2048
        check(keys["rsa3072"].key.n != keys["rsa2048"].key.n, "distinct moduli")

    @runner.test
    def ec_keys():
        check_ec(create("ec", "ecdefault"), "ecdefault", "P-256")  # default curve P-256
        for crv in ("P-256", "P-256K", "P-384", "P-521"):
            name = "ec" + crv.replace("-", "")
            check_ec(create("ec", name, curve=crv), name, crv)
        check_ec(create("ec", "echsm", curve="P-384", hardware_protected=True), "echsm", "P-384",
                 kty="EC-HSM")
        check(keys["ecP256"].key.x != keys["ecdefault"].key.x, "distinct points")

    @runner.test
    def versions_and_get():
        first = keys["rsa2048"]
        again = create("rsa", "rsa2048", size=2048)
        check_rsa(again, "rsa2048", 2048)
        check(again.properties.version != first.properties.version, "a new version")
        check(again.key.n != first.key.n, "new key material")
        latest = client.get_key(prefix + "rsa2048")
        eq(latest.id, again.id, "get without a version = the latest")
        eq(latest.key.n, again.key.n)
        old = client.get_key(prefix + "rsa2048", first.properties.version)
        eq(old.id, first.id, "get with a version")
        eq(old.key.n, first.key.n)
        eq(old.key.e, first.key.e)
        check_rsa(old, "rsa2048", 2048)
        ec = client.get_key(prefix + "ecP384")
        eq((ec.id, ec.key.x, ec.key.y), (keys["ecP384"].id, keys["ecP384"].key.x,
                                         keys["ecP384"].key.y))
        keys["rsa2048.v1"] = first

    @runner.test
    def list_versions_across_pages():
        made = [create("ec", "paged").properties.version for _ in range(5)]
        m = rec.mark()
        pager = client.list_properties_of_key_versions(prefix + "paged", max_page_size=2).by_page()
        pages, links = [], []
        for page in pager:
            pages.append(list(page))
            links.append(pager.continuation_token)
        eq([len(p) for p in pages], [2, 2, 1], "page sizes with maxresults=2")
        eq(links[-1], None, "no nextLink after the last page")
        for link in links[:-1]:
            check(link.startswith(f"{url}/keys/{prefix}paged/versions?"),
                  f"nextLink {link!r} is absolute on {url}")
        gets = [r for r in rec.since(m) if r[0] == "GET"]
        eq(len(gets), 3, "one GET per page")
        for r in gets:
            eq(query_of(r[1]).get("maxresults"), ["2"], f"maxresults on {r[1]}")
        items = [p for page in pages for p in page]
        eq(sorted(p.version for p in items), sorted(made))
        for p in items:
            eq(p.id, f"{url}/keys/{prefix}paged/{p.version}", "version item kid has the version")
            eq(p.name, prefix + "paged")
            eq(p.enabled, True)
        # default page size (25) across more versions than one page holds
        m = rec.mark()
        more = [create("ec", "paged").properties.version for _ in range(22)]
        pages = list(client.list_properties_of_key_versions(prefix + "paged").by_page())
        pages = [list(p) for p in pages]
        eq([len(p) for p in pages], [25, 2], "27 versions with the default page size")
        eq(sorted(p.version for page in pages for p in page), sorted(made + more))
        gets = [r for r in rec.since(m) if r[0] == "GET"]
        check("maxresults" not in query_of(gets[0][1]), f"no maxresults asked: {gets[0][1]}")
        # a key the vault does not hold has no versions: Key Vault answers 200 with an
        # empty list, not 404
        eq(list(client.list_properties_of_key_versions(prefix + "never-made")), [])

    @runner.test
    def list_keys_across_pages():
        for i in range(27):
            create("ec", f"many{i:02d}")
        pager = client.list_properties_of_keys().by_page()
        pages, links = [], []
        for page in pager:
            pages.append(list(page))
            links.append(pager.continuation_token)
        check(len(pages) >= 2, f"{len(pages)} pages: expected more than one page of 25")
        eq(len(pages[0]), 25, "the default page size")
        check(all(len(p) <= 25 for p in pages), [len(p) for p in pages])
        for link in links[:-1]:
            check(link.startswith(f"{url}/keys?"), f"nextLink {link!r} is absolute on {url}")
        eq(links[-1], None)
        items = [p for page in pages for p in page]
        names = [p.name.lower() for p in items]
        eq(len(names), len(set(names)), "each key listed once")
        eq(set(names), CREATED, "the listing is exactly the keys created")
        for p in items:
            eq(p.version, None, "key list items carry no version")
            eq(p.id, f"{url}/keys/{p.name}", "key list kid")
            eq(p.enabled, True)
        # maxresults on the keys listing too
        pages = [list(p) for p in client.list_properties_of_keys(max_page_size=7).by_page()]
        check(all(len(p) <= 7 for p in pages) and len(pages[0]) == 7, [len(p) for p in pages])
        eq(len(pages), -(-len(CREATED) // 7), "page count with maxresults=7")
        eq(sorted(p.name.lower() for page in pages for p in page), sorted(CREATED))

    @runner.test
    def wrap_locally_then_unwrap_on_the_server():
        for name in ("rsa2048", "rsa3072", "rsahsm", "rsae3"):
            k = client.get_key(prefix + name)
            local = crypto(k)  # holds the public key: wraps locally
            for alg in WRAP_ALGS:
                dek = secrets.token_bytes(32)
                m = rec.mark()
                wrapped = local.wrap_key(alg, dek)
                eq(rec.since(m), [], f"{alg} wrap with a KeyVaultKey stays local")
                eq(wrapped.key_id, k.id)
                eq(len(wrapped.encrypted_key), len(k.key.n), "RSA ciphertext length")
                m = rec.mark()
                out = local.unwrap_key(alg, wrapped.encrypted_key)
                eq(out.key, dek, f"{name} {alg} unwrap")
                eq(out.key_id, k.id)
                posts = [(r[0], path_of(r[1]), r[2]) for r in rec.since(m)]
                eq(posts, [("POST", f"/keys/{prefix}{name}/{k.properties.version}/unwrapkey", 200)],
                   "unwrap went to the server")

    @runner.test
    def crypto_client_from_the_key_id():
        # built from the id only, the SDK first GETs the key; unwrap (a private
        # key operation) always goes to the server
        k = keys["rsa2048.v1"]  # an older version, by its versioned id
        remote = crypto(k.id)
        for alg in WRAP_ALGS:
            dek = secrets.token_bytes(32)
            wrapped = remote.wrap_key(alg, dek)
            eq(wrapped.key_id, k.id)
            m = rec.mark()
            out = crypto(k.id).unwrap_key(alg, wrapped.encrypted_key)
            eq(out.key, dek, f"{alg}")
            eq(out.key_id, k.id)
            paths = [(r[0], path_of(r[1]), r[2]) for r in rec.since(m)]
            check(("POST", f"/keys/{prefix}rsa2048/{k.properties.version}/unwrapkey", 200) in paths,
                  paths)

    @runner.test
    def wrap_on_the_server():
        # the SDK never sends wrapkey for RSA when it has the public key, so
        # drive the server's wrap through the KeyClient pipeline
        for name in ("rsa2048", "rsa3072"):
            k = client.get_key(prefix + name)
            v = k.properties.version
            for alg in WRAP_ALGS:
                dek = secrets.token_bytes(32)
                m = rec.mark()
                resp = client.send_request(HttpRequest(
                    "POST", f"/keys/{prefix}{name}/{v}/wrapkey",
                    json={"alg": str(alg.value), "value": b64url(dek)}))
                eq(resp.status_code, 200, resp.text())
                body = resp.json()
                eq(body["kid"], k.id)
                check("=" not in body["value"], "base64url without padding")
                ct = unb64url(body["value"])
                eq(len(ct), len(k.key.n), "ciphertext length = modulus length")
                eq([(r[0], path_of(r[1]), r[2]) for r in rec.since(m)],
                   [("POST", f"/keys/{prefix}{name}/{v}/wrapkey", 200)])
                eq(crypto(k).unwrap_key(alg, ct).key, dek, f"{name} {alg}")
            # wrapkey on the versionless path uses the current version
            dek = secrets.token_bytes(32)
            resp = client.send_request(HttpRequest(
                "POST", f"/keys/{prefix}{name}//wrapkey",
                json={"alg": "RSA-OAEP-256", "value": b64url(dek)}))
            eq(resp.status_code, 200, resp.text())
            eq(resp.json()["kid"], k.id, "empty version = latest")
            eq(crypto(k).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256,
                                    unb64url(resp.json()["value"])).key, dek)

    @runner.test
    def encrypt_decrypt_rsa():
        k = client.get_key(prefix + "rsa3072")
        local, remote = crypto(k), crypto(k.id)
        for alg in (EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256,
                    EncryptionAlgorithm.rsa1_5):
            data = secrets.token_bytes(48)
            eq(remote.decrypt(alg, local.encrypt(alg, data).ciphertext).plaintext, data, alg)

    @runner.test
    def symmetric_encrypt_decrypt_as_the_sdk_tests_do():
        # the SDK's own test_symmetric_encrypt_and_decrypt: a 200-byte plaintext, so
        # AES-CBC without padding gives it back filled with zero bytes to whole blocks.
        # Each ciphertext is also opened here with the key's bytes, so it was made with
        # the vault's key, by the vault.
        from azure.keyvault.keys import JsonWebKey
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        name, kbytes = prefix + "aes256", secrets.token_bytes(32)
        k = client.import_key(name, JsonWebKey(kty="oct", k=kbytes,
                                               key_ops=["encrypt", "decrypt"]))
        CREATED.add(name.lower())
        remote = crypto(k.id)
        data, iv, aad = secrets.token_bytes(200), secrets.token_bytes(16), b"test"

        def cbc_open(ct, iv):
            d = Cipher(algorithms.AES(kbytes), modes.CBC(iv)).decryptor()
            return d.update(ct) + d.finalize()

        for alg in (EncryptionAlgorithm.a256_gcm, EncryptionAlgorithm.a256_cbc):
            m = rec.mark()
            if alg == EncryptionAlgorithm.a256_gcm:
                e = remote.encrypt(alg, data, additional_authenticated_data=aad)
                eq(e.aad, aad, "GCM echoes aad")
                eq(AESGCM(kbytes).decrypt(e.iv, e.ciphertext + e.tag, aad), data, "GCM, here")
                out = remote.decrypt(alg, e.ciphertext, iv=e.iv, authentication_tag=e.tag,
                                     additional_authenticated_data=aad).plaintext
            else:
                e = remote.encrypt(alg, data, iv=iv, additional_authenticated_data=aad)
                eq((e.iv, e.aad), (iv, None), f"{alg}: iv, no aad")
                eq(cbc_open(e.ciphertext, iv), data + bytes(8), "CBC, here")
                out = remote.decrypt(alg, e.ciphertext, iv=iv).plaintext
            eq([path_of(u).rsplit("/", 1)[1] for _, u, st, _, _ in rec.since(m)
                if st == 200 and path_of(u).endswith(("/encrypt", "/decrypt"))],
               ["encrypt", "decrypt"], f"{alg} on the server")
            eq(e.key_id, k.id)
            eq(out, data + bytes(8) if alg == EncryptionAlgorithm.a256_cbc else data, alg)
        # A256CBCPAD: this SDK (azure-keyvault-keys 4.8.0b3) does it locally, with a key it
        # makes up itself (the bundle of an oct key has no k), so through its pipeline
        for op, body in (("encrypt", {"alg": "A256CBCPAD", "value": b64url(data),
                                      "iv": b64url(iv)}), ("decrypt", None)):
            if op == "decrypt":
                body = {"alg": "A256CBCPAD", "value": ct, "iv": b64url(iv)}
            resp = client.send_request(HttpRequest("POST", f"/keys/{name}//{op}", json=body))
            eq(resp.status_code, 200, resp.text())
            if op == "encrypt":
                ct = resp.json()["value"]
                eq(len(unb64url(ct)), 208, "200 bytes padded to 13 blocks")
                padded = cbc_open(unb64url(ct), iv)
                eq(padded, data + bytes([8]) * 8, "PKCS#7 padding, here")
            else:
                eq(unb64url(resp.json()["value"]), data, "A256CBCPAD decrypted")

    @runner.test
    def sign_on_the_server_verify_locally():
        rsa = client.get_key(prefix + "rsa2048")
        for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            digest = HASHES[alg[2:]](b"message").digest()
            sig = crypto(rsa.id).sign(SignatureAlgorithm(alg), digest).signature
            eq(len(sig), 256, "RSA-2048 signature length")
            check(crypto(rsa).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)
            check(not crypto(rsa).verify(SignatureAlgorithm(alg), digest,
                                         bytes([sig[0] ^ 1]) + sig[1:]).is_valid, alg)
        for crv, alg in (("P256", "ES256"), ("P256K", "ES256K"), ("P384", "ES384"),
                         ("P521", "ES512")):
            k = client.get_key(prefix + "ec" + crv)
            digest = HASHES[alg[2:5]](b"message").digest()
            sig = crypto(k.id).sign(SignatureAlgorithm(alg), digest).signature
            eq(len(sig), 2 * len(k.key.x), "raw R||S")
            check(crypto(k).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)
            check(crypto(k.id).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)

    @runner.test
    def operation_not_in_key_ops():
        k = create("rsa", "signonly", key_operations=["sign", "verify"])
        check_bundle(k, "signonly", "RSA", EC_OPS)
        eq(client.get_key(prefix + "signonly").key_operations, ["sign", "verify"])
        ct = crypto(keys["rsa2048"]).wrap_key(KeyWrapAlgorithm.rsa_oaep, b"k" * 32).encrypted_key
        m = rec.mark()
        expect_error(lambda: crypto(k.id).unwrap_key(KeyWrapAlgorithm.rsa_oaep, ct),
                     403, "Forbidden", "KeyOperationForbidden")
        check(("POST", f"/keys/{prefix}signonly/{k.properties.version}/unwrapkey", 403)
              in [(r[0], path_of(r[1]), r[2]) for r in rec.since(m)], rec.since(m))
        # the SDK refuses the local wrap (key_ops) and falls back to the server
        m = rec.mark()
        expect_error(lambda: crypto(k).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32),
                     403, "Forbidden", "KeyOperationForbidden")
        check(("POST", f"/keys/{prefix}signonly/{k.properties.version}/wrapkey", 403)
              in [(r[0], path_of(r[1]), r[2]) for r in rec.since(m)], rec.since(m))

    @runner.test
    def key_operations_keep_their_order():
        # as Key Vault: in the order they were given (Terraform's azurerm compares them so)
        ops = ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"]
        k = create("rsa", "ordered", key_operations=ops)
        eq(k.key_operations, ops, "create")
        eq(client.get_key(prefix + "ordered").key_operations, ops, "get")
        u = client.update_key_properties(prefix + "ordered", key_operations=["unwrapKey", "wrapKey"])
        eq(u.key_operations, ["unwrapKey", "wrapKey"], "update")
        eq(client.get_key(prefix + "ordered").key_operations, ["unwrapKey", "wrapKey"], "get")

    @runner.test
    def missing_keys():
        e = expect_error(lambda: client.get_key(prefix + "nosuch"), 404, "KeyNotFound",
                         cls=ResourceNotFoundError)
        check(not e.error.innererror, f"KeyNotFound has no innererror: {e.error.innererror}")
        expect_error(lambda: client.get_key(prefix + "rsa2048", "0" * 32), 404, "KeyNotFound",
                     cls=ResourceNotFoundError)
        expect_error(lambda: crypto(f"{url}/keys/{prefix}nosuch/{'1' * 32}").unwrap_key(
            KeyWrapAlgorithm.rsa_oaep, b"x" * 256), 404, "KeyNotFound")

    @runner.test
    def every_token_was_for_the_challenge_resource():
        check(cred.scopes, "the credential was asked for a token")
        eq(set(cred.scopes), {(resource + "/.default",)}, "token scopes")
        statuses = [r[2] for r in rec.log]
        eq(statuses.count(401), 1, "exactly one challenge per host and process")
        check(all(r[4] for r in rec.log[1:]), "every later request carried a token")


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock) as kv:
        kv.apply_env()
        P = kv.https_port
        scenario(runner, kv, kv.vault_url("default"), "a-", f"https://vault.localhost:{P}")
        scenario(runner, kv, kv.localhost_url(), "b-", "https://vault.azure.net",
                 verify_challenge_resource=False)

        @runner.test
        def localhost_without_turning_the_check_off_is_refused_by_the_sdk():
            # documents why (b) needs verify_challenge_resource=False: the
            # challenge for localhost names https://vault.azure.net
            client = KeyClient(f"https://127.0.0.1:{P}", ManagedIdentityCredential())
            try:
                client.get_key("a-rsa2048")
                check(False, "the SDK should refuse the challenge resource")
            except ValueError as e:
                check("does not match the requested domain" in str(e), str(e))

        @runner.test
        def missing_vault():
            rec = Recorder()
            client = KeyClient(kv.vault_url("nosuch"), ManagedIdentityCredential(),
                               per_retry_policies=[rec])
            expect_error(lambda: client.get_key("k"), 404, "VaultNotFound",
                         cls=ResourceNotFoundError)
            eq([r[2] for r in rec.log], [401, 404], "challenge first, then 404 with the token")
            check(f'resource="https://vault.localhost:{P}"' in rec.log[0][3], rec.log[0][3])
            expect_error(lambda: client.create_rsa_key("k"), 404, "VaultNotFound",
                         cls=ResourceNotFoundError)

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
