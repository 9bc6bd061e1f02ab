"""The core scenario through Debian's real Python SDK (azure-keyvault-keys with
ManagedIdentityCredential from IDENTITY_ENDPOINT/IDENTITY_HEADER): create RSA
and EC keys, read them back, page through versions and keys, wrap locally and
unwrap on the server, and every algorithm of the crypto client. Run twice:
through https://default.vault.localhost:P with the challenge-resource check
on, and through https://localhost:P with it off."""
import hashlib
import os
import re
import secrets
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)

VERSION = re.compile(r"^[0-9a-f]{32}$")
RSA_OPS = ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"]
HASHES = {"256": hashlib.sha256, "384": hashlib.sha384, "512": hashlib.sha512}


def scenario(runner, kv, url, prefix, **client_kwargs):
    cred = ManagedIdentityCredential()
    client = KeyClient(url, cred, **client_kwargs)

    def crypto(key_or_id):
        return CryptographyClient(key_or_id, cred, **client_kwargs)

    @runner.test
    def create_and_get_rsa():
        for size in (2048, 3072):
            k = client.create_rsa_key(f"{prefix}rsa{size}", size=size)
            eq(k.key_type, "RSA")
            eq(len(k.key.n), size // 8)
            eq(k.key.e, b"\x01\x00\x01")
            eq(sorted(k.key_operations), RSA_OPS)
            check(VERSION.match(k.properties.version), k.properties.version)
            eq(k.id, f"{url}/keys/{prefix}rsa{size}/{k.properties.version}")
            g = client.get_key(f"{prefix}rsa{size}")
            eq(g.id, k.id)
            eq(g.key.n, k.key.n)
            check(getattr(g.key, "d", None) is None, "no private parts")
        hsm = client.create_rsa_key(f"{prefix}rsahsm", size=2048, hardware_protected=True,
                                    public_exponent=3)
        eq(hsm.key_type, "RSA-HSM")
        eq(hsm.key.e, b"\x03")

    @runner.test
    def create_ec_curves():
        for crv, length in (("P-256", 32), ("P-256K", 32), ("P-384", 48), ("P-521", 66)):
            k = client.create_ec_key(f"{prefix}ec{crv.replace('-', '')}", curve=crv)
            eq(k.key_type, "EC")
            eq(k.key.crv, crv)
            eq(len(k.key.x), length)
            eq(len(k.key.y), length)
            eq(sorted(k.key_operations), ["sign", "verify"])
        eq(client.create_ec_key(f"{prefix}echsm", hardware_protected=True).key_type, "EC-HSM")

    @runner.test
    def versions_and_paging():
        name = f"{prefix}paged"
        made = [client.create_ec_key(name).properties.version for _ in range(3)]
        eq(client.get_key(name).properties.version, made[-1])
        eq(client.get_key(name, made[0]).properties.version, made[0])
        pages = list(client.list_properties_of_key_versions(name, max_page_size=2).by_page())
        check(len(pages) >= 2, f"{len(pages)} pages")
        eq(sorted(p.version for page in pages for p in page), sorted(made))
        for i in range(27):
            client.create_ec_key(f"{prefix}many{i:02d}")
        pages = list(client.list_properties_of_keys().by_page())
        check(len(pages) >= 2, "more than one page of 25")
        names = [p.name for page in pages for p in page]
        eq(len(names), len(set(names)))
        for i in range(27):
            check(f"{prefix}many{i:02d}" in names)

    @runner.test
    def wrap_locally_unwrap_on_the_server():
        k = client.get_key(f"{prefix}rsa2048")
        local = crypto(k)  # has the public key: wraps locally
        remote = crypto(k.id)  # only the id: every operation goes to the server
        for alg in (KeyWrapAlgorithm.rsa_oaep, KeyWrapAlgorithm.rsa_oaep_256, KeyWrapAlgorithm.rsa1_5):
            dek = secrets.token_bytes(32)
            wrapped = local.wrap_key(alg, dek)
            eq(remote.unwrap_key(alg, wrapped.encrypted_key).key, dek, alg)
            wrapped = remote.wrap_key(alg, dek)
            eq(wrapped.key_id, k.id)
            eq(remote.unwrap_key(alg, wrapped.encrypted_key).key, dek, alg)

    @runner.test
    def encrypt_decrypt_rsa():
        k = client.get_key(f"{prefix}rsa3072")
        local, remote = crypto(k), crypto(k.id)
        for alg in (EncryptionAlgorithm.rsa_oaep, EncryptionAlgorithm.rsa_oaep_256,
                    EncryptionAlgorithm.rsa1_5):
            data = secrets.token_bytes(48)
            eq(remote.decrypt(alg, local.encrypt(alg, data).ciphertext).plaintext, data, alg)

    @runner.test
    def sign_on_the_server_verify_locally():
        rsa = client.get_key(f"{prefix}rsa2048")
        for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            digest = HASHES[alg[2:]](b"message").digest()
            sig = crypto(rsa.id).sign(SignatureAlgorithm(alg), digest).signature
            check(crypto(rsa).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)
            check(not crypto(rsa).verify(SignatureAlgorithm(alg), digest,
                                         bytes([sig[0] ^ 1]) + sig[1:]).is_valid, alg)
        for crv, alg in (("P256", "ES256"), ("P256K", "ES256K"), ("P384", "ES384"),
                         ("P521", "ES512")):
            k = client.get_key(f"{prefix}ec{crv}")
            digest = HASHES[alg[2:5]](b"message").digest()
            sig = crypto(k.id).sign(SignatureAlgorithm(alg), digest).signature
            eq(len(sig), 2 * len(k.key.x), "raw R||S")
            check(crypto(k).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)
            # the server's verify agrees
            check(crypto(k.id).verify(SignatureAlgorithm(alg), digest, sig).is_valid, alg)

    @runner.test
    def key_ops_and_missing_keys():
        k = client.create_rsa_key(f"{prefix}signonly", key_operations=["sign", "verify"])
        try:
            crypto(k.id).wrap_key(KeyWrapAlgorithm.rsa_oaep, b"k" * 32)
            check(False, "wrapKey is not in key_ops")
        except HttpResponseError as e:
            eq(e.status_code, 403)
            eq(e.error.code, "Forbidden")
        try:
            client.get_key(f"{prefix}nosuch")
            check(False, "a missing key")
        except ResourceNotFoundError as e:
            eq(e.error.code, "KeyNotFound")


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock) as kv:
        kv.apply_env()
        scenario(runner, kv, kv.vault_url("default"), "a-")
        scenario(runner, kv, kv.localhost_url(), "b-", verify_challenge_resource=False)

        @runner.test
        def missing_vault():
            client = KeyClient(kv.vault_url("nosuch"), ManagedIdentityCredential())
            try:
                client.get_key("k")
                check(False, "the vault does not exist")
            except HttpResponseError as e:
                eq(e.status_code, 404)
                eq(e.error.code, "VaultNotFound")

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
