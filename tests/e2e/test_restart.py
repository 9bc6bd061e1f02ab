"""Restart persistence: keys, versions and tokens survive a restart, and data
wrapped with an old version still unwraps. Secret files stay private."""
import os
import secrets
import stat
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args  # noqa: E402

from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock) as kv:
        kv.apply_env()

        @runner.test
        def everything_survives_a_restart():
            client = KeyClient(kv.vault_url(), ManagedIdentityCredential())
            v1 = client.create_rsa_key("persist")
            v2 = client.create_rsa_key("persist")
            ec = client.create_ec_key("persist-ec", curve="P-384")
            dek = secrets.token_bytes(32)
            wrapped = CryptographyClient(v1.id, ManagedIdentityCredential()).wrap_key(
                KeyWrapAlgorithm.rsa_oaep_256, dek)
            eq(wrapped.key_id, v1.id)
            token = kv.token()
            ready_before = kv.ready_line

            kv.restart()
            check(kv.ready_line.startswith("kvmock ready"), kv.ready_line)
            eq(kv.ready_line, ready_before)  # same ports, tenant, identity

            client = KeyClient(kv.vault_url(), ManagedIdentityCredential())
            eq(client.get_key("persist").id, v2.id)
            eq(client.get_key("persist", v1.properties.version).key.n, v1.key.n)
            eq(client.get_key("persist-ec").key.x, ec.key.x)
            versions = sorted(p.version for p in client.list_properties_of_key_versions("persist"))
            eq(versions, sorted([v1.properties.version, v2.properties.version]))
            unwrapped = CryptographyClient(v1.id, ManagedIdentityCredential()).unwrap_key(
                KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key)
            eq(unwrapped.key, dek)
            # a token issued before the restart is still good after it
            st, _, _ = kv.https("GET", "/keys/persist?api-version=7.4", token=token)
            eq(st, 200)
            # and the CA clients trust did not change
            with open(kv.ca_path, "rb") as f:
                check(f.read().startswith(b"-----BEGIN CERTIFICATE-----"))

        @runner.test
        def secret_files_are_private():
            for root, _, files in os.walk(kv.data_dir):
                for name in files:
                    path = os.path.join(root, name)
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                    if name == "ca.pem":
                        continue
                    eq(mode & 0o077, 0, f"{path} is mode {oct(mode)}")
            for name in ("root.key", "token.key", "kvmock.mdb", "tls/ca.key", "tls/server.pem"):
                check(os.path.exists(os.path.join(kv.data_dir, name)), name)

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
