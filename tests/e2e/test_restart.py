"""Restart persistence: keys, versions and tokens survive a restart on the same
data folder and ports, and data wrapped with an old version still unwraps with
that version. Files under the data folder that hold secrets are private (0600),
and the LMDB file holds no plaintext private key material."""
import json
import os
import secrets
import stat
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    Kvmock, Runner, check, eq, parse_args, b64url, unb64url, int_bytes, free_port)

from azure.core.exceptions import HttpResponseError  # noqa: E402
from azure.core.rest import HttpRequest  # noqa: E402
from azure.identity import ManagedIdentityCredential  # noqa: E402
from azure.keyvault.keys import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

API = "api-version=7.4"


def main():
    args = parse_args()
    runner = Runner()
    state = {}
    with Kvmock(args.kvmock) as kv:
        kv.apply_env()

        def client():
            return KeyClient(kv.vault_url(), ManagedIdentityCredential())

        def server_wrap(c, key, alg, dek):
            """wrapkey on the server (the SDK's CryptographyClient would wrap
            locally with the public key)."""
            resp = c.send_request(HttpRequest(
                "POST", f"/keys/{key.name}/{key.properties.version}/wrapkey",
                json={"alg": alg, "value": b64url(dek)}))
            eq(resp.status_code, 200, resp.text())
            eq(resp.json()["kid"], key.id, "wrap used the version asked for")
            return unb64url(resp.json()["value"])

        @runner.test
        def before_the_restart():
            c = client()
            v1 = c.create_rsa_key("persist", size=2048)
            v2 = c.create_rsa_key("persist", size=2048)
            check(v1.properties.version != v2.properties.version, "two versions")
            ecv = c.create_ec_key("persist-ec", curve="P-384")
            dek = secrets.token_bytes(32)
            state.update(
                v1=v1, v2=v2, ec=ecv, dek=dek,
                server_ct=server_wrap(c, v1, "RSA-OAEP-256", dek),
                local_ct=CryptographyClient(v1, ManagedIdentityCredential()).wrap_key(
                    KeyWrapAlgorithm.rsa_oaep, dek).encrypted_key,
                token=kv.token(),
                vault_token=kv.token(f"https://vault.localhost:{kv.https_port}"),
                ready=kv.ready_line,
                ports=(kv.https_port, kv.http_port))
            with open(kv.ca_path, "rb") as f:
                state["ca"] = f.read()
            # sanity: the old version unwraps before the restart
            eq(CryptographyClient(v1.id, ManagedIdentityCredential()).unwrap_key(
                KeyWrapAlgorithm.rsa_oaep_256, state["server_ct"]).key, dek)

        @runner.test
        def a_second_server_on_the_same_folder_is_refused():
            # each keeps its access control, clock and caches in memory: two would differ
            before = sorted(os.listdir(kv.data_dir))
            https, http = free_port(), free_port()
            r = subprocess.run([kv.binary, "--data", kv.data_dir, "--https-port", str(https),
                                "--http-port", str(http if http != https else https + 1)],
                               capture_output=True, text=True, timeout=30)
            eq(r.returncode, 1, r.stderr)
            check(f"is in use by another kvmock (pid {kv.proc.pid})" in r.stderr, r.stderr)
            eq(sorted(os.listdir(kv.data_dir)), before)
            eq(kv.http("GET", "/healthz")[0], 200)

        @runner.test
        def a_start_on_a_taken_port_writes_nothing():
            # the configuration's vault must not be stored by a server that never served
            with tempfile.TemporaryDirectory(prefix="kvmock-taken-") as tmp:
                conf = os.path.join(tmp, "kvmock.json")
                with open(conf, "w", encoding="utf-8") as f:
                    json.dump({"vaults": [{"name": "default"}, {"name": "taken"}]}, f)
                data = os.path.join(tmp, "data")
                for https, http, taken in ((kv.https_port, free_port(), kv.https_port),
                                           (free_port(), kv.http_port, kv.http_port)):
                    r = subprocess.run([kv.binary, "--data", data, "--config", conf,
                                        "--https-port", str(https), "--http-port", str(http)],
                                       capture_output=True, text=True, timeout=30)
                    eq(r.returncode, 1, r.stderr)
                    eq(os.listdir(data), ["kvmock.lock"])
                    check(f"port {taken}: Address already in use" in r.stderr, r.stderr)
            eq(kv.http("GET", "/healthz")[0], 200)

        @runner.test
        def restart_on_the_same_folder_and_ports():
            kv.restart()
            eq((kv.https_port, kv.http_port), state["ports"])
            check(kv.ready_line.startswith("kvmock ready"), kv.ready_line)
            eq(kv.ready_line, state["ready"], "same ports, tenant, identity, data and CA")
            with open(kv.ca_path, "rb") as f:
                eq(f.read(), state["ca"], "the CA clients trust is kept")

        @runner.test
        def keys_and_versions_survive():
            c = client()  # a new process-wide client; the challenge is cached by host
            v1, v2, ecv = state["v1"], state["v2"], state["ec"]
            latest = c.get_key("persist")
            eq(latest.id, v2.id, "the latest version is still v2")
            eq(latest.key.n, v2.key.n)
            old = c.get_key("persist", v1.properties.version)
            eq((old.id, old.key.n, old.key.e), (v1.id, v1.key.n, v1.key.e))
            eq(old.properties.created_on, v1.properties.created_on, "created kept")
            e = c.get_key("persist-ec")
            eq((e.id, e.key.crv, e.key.x, e.key.y), (ecv.id, "P-384", ecv.key.x, ecv.key.y))
            versions = {p.version: p.id for p in c.list_properties_of_key_versions("persist")}
            eq(versions, {v1.properties.version: v1.id, v2.properties.version: v2.id})
            names = sorted(p.name for p in c.list_properties_of_keys())
            eq(names, ["persist", "persist-ec"])

        @runner.test
        def an_old_version_still_unwraps():
            v1, v2, dek = state["v1"], state["v2"], state["dek"]
            crypto = CryptographyClient(v1.id, ManagedIdentityCredential())
            out = crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, state["server_ct"])
            eq((out.key, out.key_id), (dek, v1.id))
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, state["local_ct"]).key, dek)
            # v2 is another key: the same ciphertext does not unwrap with it
            try:
                CryptographyClient(v2.id, ManagedIdentityCredential()).unwrap_key(
                    KeyWrapAlgorithm.rsa_oaep_256, state["server_ct"])
                check(False, "unwrap with the wrong version succeeded")
            except HttpResponseError as e:
                eq((e.status_code, e.error.code), (400, "BadParameter"))
            # and new wraps with v1 still work after the restart
            dek2 = secrets.token_bytes(32)
            ct = server_wrap(client(), v1, "RSA1_5", dek2)
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa1_5, ct).key, dek2)

        @runner.test
        def tokens_issued_before_the_restart_still_work():
            st, _, body = kv.https("GET", f"/keys/persist?{API}", token=state["token"])
            eq(st, 200, body[:300])
            eq(json.loads(body)["key"]["kid"], state["v2"].id.replace(
                kv.vault_url(), kv.localhost_url()), "kid on the request's host")
            st, _, body = kv.https("GET", f"/keys/persist/{state['v1'].properties.version}?{API}",
                                   host=f"default.vault.localhost:{kv.https_port}",
                                   token=state["vault_token"])
            eq(st, 200, body[:300])
            eq(json.loads(body)["key"]["kid"], state["v1"].id)
            # a tampered token is still refused
            t = state["token"]
            bad = t[:-2] + ("A" if t[-2] != "A" else "B") + t[-1]
            eq(kv.https("GET", f"/keys/persist?{API}", token=bad)[0], 401)

        @runner.test
        def private_key_material_is_sealed_on_disk():
            # import keys whose private parts we know, make sure they are
            # written (stop flushes everything), and look for them in the files
            rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            nums = rsa_key.private_numbers()
            ec_key = ec.generate_private_key(ec.SECP256R1())
            ec_d = ec_key.private_numbers().private_value.to_bytes(32, "big")
            jwk = {"kty": "RSA", "n": b64url(int_bytes(nums.public_numbers.n)),
                   "e": b64url(int_bytes(nums.public_numbers.e)), "d": b64url(int_bytes(nums.d)),
                   "p": b64url(int_bytes(nums.p)), "q": b64url(int_bytes(nums.q)),
                   "dp": b64url(int_bytes(nums.dmp1)), "dq": b64url(int_bytes(nums.dmq1)),
                   "qi": b64url(int_bytes(nums.iqmp))}
            st, _, body = kv.https("PUT", f"/keys/imported-rsa?{API}", {"key": jwk})
            eq(st, 200, body[:300])
            check('"d"' not in body.decode() and '"p"' not in body.decode(), "no private parts")
            pub = ec_key.public_key().public_numbers()
            st, _, body = kv.https("PUT", f"/keys/imported-ec?{API}", {"key": {
                "kty": "EC", "crv": "P-256", "x": b64url(pub.x.to_bytes(32, "big")),
                "y": b64url(pub.y.to_bytes(32, "big")), "d": b64url(ec_d)}})
            eq(st, 200, body[:300])
            kv.restart()  # everything acknowledged is on disk now
            secrets_ = {"rsa d": int_bytes(nums.d), "rsa p": int_bytes(nums.p),
                        "rsa q": int_bytes(nums.q), "ec d": ec_d}
            secrets_.update({f"{k} (base64url)": b64url(v).encode() for k, v in secrets_.items()})
            for root, _, files in os.walk(kv.data_dir):
                for name in files:
                    path = os.path.join(root, name)
                    with open(path, "rb") as f:
                        data = f.read()
                    for what, needle in secrets_.items():
                        check(needle not in data, f"{what} found in plaintext in {path}")
            # the imported key still works after the restart (it was stored)
            c = client()
            k = c.get_key("imported-rsa")
            eq(k.key.n, int_bytes(nums.public_numbers.n))
            dek = secrets.token_bytes(32)
            eq(CryptographyClient(k.id, ManagedIdentityCredential()).unwrap_key(
                KeyWrapAlgorithm.rsa_oaep, server_wrap(c, k, "RSA-OAEP", dek)).key, dek)

        @runner.test
        def secret_files_are_private():
            seen = []
            for root, _, files in os.walk(kv.data_dir):
                for name in files:
                    path = os.path.join(root, name)
                    rel = os.path.relpath(path, kv.data_dir)
                    seen.append(rel)
                    if rel == os.path.join("tls", "ca.pem"):
                        continue
                    mode = stat.S_IMODE(os.stat(path).st_mode)
                    eq(mode & 0o077, 0, f"{rel} is mode {oct(mode)}")
            for rel in ("root.key", "kvmock.mdb", os.path.join("tls", "ca.pem")):
                check(rel in seen, f"{rel} missing from the data folder: {sorted(seen)}")

        @runner.test
        def the_clock_offset_survives_a_restart():
            ahead = kv.advance_clock(5 * 86400)
            kv.restart()
            now = kv.advance_clock(0)
            check(now >= ahead, f"kvmock's clock went back from {ahead} to {now}")
            check(now < ahead + 600, f"kvmock's clock jumped to {now}")

        runner.run_collected()

    # a configuration refused for one vault writes none of the others
    first = {"vaults": [{"name": "a"}, {"name": "b", "properties": {
        "enablePurgeProtection": True}}]}
    with Kvmock(args.kvmock, config=first) as kv:
        @runner.test
        def a_refused_configuration_changes_nothing():
            kv.stop()
            with open(kv.config) as f:
                good = f.read()
            bad = {"vaults": first["vaults"][:1] + [{"name": "c"}, {
                "name": "b", "properties": {"enablePurgeProtection": False}}]}
            with open(kv.config, "w") as f:
                json.dump(bad, f)
            https, http = free_port(), free_port()
            r = subprocess.run([kv.binary, "--data", kv.data_dir, "--config", kv.config,
                                "--https-port", str(https),
                                "--http-port", str(http if http != https else https + 1)],
                               capture_output=True, text=True, timeout=30)
            eq(r.returncode, 1, r.stderr)
            check("'b' has purge protection, which cannot be turned off" in r.stderr, r.stderr)
            with open(kv.config, "w") as f:
                f.write(good)
            kv.start()
            tok = kv.token("https://management.azure.com")
            arm = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/kvmock/"
                   "providers/Microsoft.KeyVault/vaults")
            eq(kv.https("GET", f"{arm}/c?api-version=2023-07-01", token=tok)[0], 404)
            eq(kv.https("GET", f"{arm}/a?api-version=2023-07-01", token=tok)[0], 200)

        runner.run_tests(runner.tests[-1:])
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
