"""Key lifecycle through the real Python SDK: soft delete, recover, purge,
purge protection, update, import, rotate and its policy, backup/restore,
and the customer-managed-key scenario on a purge-protected vault."""
import base64
import json
import os
import secrets
import subprocess
import sys
from datetime import timedelta

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, int_bytes  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import (
    JsonWebKey,
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.crypto import (
    CryptographyClient,
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

PREMIUM = {"family": "A", "name": "premium"}
HSM_REFUSED = "Hardware key operation not allowed on standard vault"
CONFIG = {
    "vaults": [
        {"name": "default", "properties": {"sku": PREMIUM}},
        # a vault of the file without a sku is standard, as `az keyvault create` makes it
        {"name": "cmk", "properties": {"enableSoftDelete": True, "softDeleteRetentionInDays": 7,
                                        "enablePurgeProtection": True}},
        {"name": "nosoft", "properties": {"enableSoftDelete": False}},
    ]
}

DAY = 86400


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        cred = client = cmk = nosoft = None

        def fresh_clients():
            # Tokens expire on kvmock's clock: after it moves, a new credential
            # (with an empty token cache) gets tokens valid at the new time.
            nonlocal cred, client, cmk, nosoft
            cred = ManagedIdentityCredential()
            client = KeyClient(kv.vault_url("default"), cred)
            cmk = KeyClient(kv.vault_url("cmk"), cred)
            nosoft = KeyClient(kv.vault_url("nosoft"), cred)

        fresh_clients()

        @runner.test
        def recovery_levels_follow_the_vault():
            eq(client.create_rsa_key("lv").properties.recovery_level, "Recoverable+Purgeable")
            eq(client.get_key("lv").properties.recoverable_days, 90)
            k = cmk.create_ec_key("lv")
            eq(k.properties.recovery_level, "CustomizedRecoverable")
            eq(k.properties.recoverable_days, 7)
            eq(nosoft.create_ec_key("lv").properties.recovery_level, "Purgeable")

        @runner.test
        def delete_recover_purge():
            k1 = client.create_rsa_key("life")
            k2 = client.create_rsa_key("life")
            deleted = client.begin_delete_key("life").result()
            eq(deleted.name, "life")
            check(deleted.recovery_id.endswith("/deletedkeys/life"), deleted.recovery_id)
            eq(int((deleted.scheduled_purge_date - deleted.deleted_date).total_seconds()), 90 * DAY)
            try:
                client.get_key("life")
                check(False, "a deleted key must not be readable")
            except ResourceNotFoundError:
                pass
            check("life" not in [p.name for p in client.list_properties_of_keys()])
            check("life" in [d.name for d in client.list_deleted_keys()])
            eq(client.get_deleted_key("life").key.n, k2.key.n)
            try:
                client.create_rsa_key("life")
                check(False, "a soft-deleted name must not be reusable")
            except ResourceExistsError as e:
                check("ObjectIsDeletedButRecoverable" in str(e) or e.status_code == 409, str(e))
            recovered = client.begin_recover_deleted_key("life").result()
            eq(recovered.properties.version, k2.properties.version)
            eq(client.get_key("life", k1.properties.version).key.n, k1.key.n)
            client.begin_delete_key("life").wait()
            client.purge_deleted_key("life")
            try:
                client.get_deleted_key("life")
                check(False, "a purged key must be gone")
            except ResourceNotFoundError:
                pass
            client.create_ec_key("life")  # the name is free again

        @runner.test
        def delete_without_soft_delete_purges_at_once():
            nosoft.create_rsa_key("gone")
            deleted = nosoft.begin_delete_key("gone").result()
            eq(deleted.recovery_id, None)
            try:
                nosoft.get_deleted_key("gone")
                check(False, "no soft delete: nothing to get")
            except ResourceNotFoundError:
                pass

        @runner.test
        def update_one_version():
            k1 = client.create_rsa_key("upd")
            k2 = client.create_rsa_key("upd")
            u = client.update_key_properties("upd", k1.properties.version, enabled=False,
                                             tags={"env": "ci"}, key_operations=["wrapKey", "unwrapKey"])
            eq(u.properties.enabled, False)
            eq(u.properties.tags, {"env": "ci"})
            eq(sorted(u.key_operations), ["unwrapKey", "wrapKey"])
            check(u.properties.updated_on >= u.properties.created_on)
            eq(client.get_key("upd", k2.properties.version).properties.enabled, True)
            crypto = CryptographyClient(k1.id, cred)
            try:
                crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, b"\0" * 256)
                check(False, "a disabled version must refuse operations")
            except HttpResponseError as e:
                eq(e.status_code, 403)

        @runner.test
        def versions_outside_their_window_still_decrypt_unwrap_and_verify():
            # Key Vault: outside nbf/exp, decrypt, unwrap and verify still work (no 403), so
            # that what a key protected while valid stays readable; encrypt, wrap and sign
            # are refused
            host = kv.vault_url("default")[len("https://"):]
            late = client.create_rsa_key("dated")
            early = client.create_rsa_key("dated")
            made = {}
            for k in (late, early):
                crypto = CryptographyClient(k.id, cred)
                dek = secrets.token_bytes(32)
                digest = secrets.token_bytes(32)
                made[k.properties.version] = (
                    dek, crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek).encrypted_key,
                    crypto.encrypt(EncryptionAlgorithm.rsa_oaep_256, dek).ciphertext,
                    digest, crypto.sign(SignatureAlgorithm.rs256, digest).signature)
            created = late.properties.created_on
            client.update_key_properties("dated", late.properties.version,
                                         expires_on=created - timedelta(minutes=1))
            client.update_key_properties("dated", early.properties.version,
                                         not_before=created + timedelta(days=1))

            def b64(b):
                return base64.urlsafe_b64encode(b).rstrip(b"=").decode()

            for k, refusal in ((late, "KeyExpired"), (early, "KeyNotYetValid")):
                v = k.properties.version
                dek, wrapped, ciphertext, digest, signature = made[v]
                crypto = CryptographyClient(k.id, cred)
                eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key, dek, refusal)
                eq(crypto.decrypt(EncryptionAlgorithm.rsa_oaep_256, ciphertext).plaintext, dek,
                   refusal)
                # the SDK verifies locally with the public key: ask the server
                st, _, body = kv.https("POST", f"/keys/dated/{v}/verify?api-version=7.5",
                                       {"alg": "RS256", "digest": b64(digest),
                                        "value": b64(signature)}, host=host)
                eq((st, json.loads(body)), (200, {"value": True}), refusal)
                for op, body in (("wrapkey", {"alg": "RSA-OAEP-256", "value": b64(dek)}),
                                 ("encrypt", {"alg": "RSA-OAEP-256", "value": b64(dek)}),
                                 ("sign", {"alg": "RS256", "value": b64(digest)})):
                    st, _, answer = kv.https("POST", f"/keys/dated/{v}/{op}?api-version=7.5",
                                             body, host=host)
                    err = json.loads(answer)["error"]
                    eq((st, err["code"], err["innererror"]["code"]), (403, "Forbidden", refusal),
                       (op, answer))
            # a disabled version refuses them all
            client.update_key_properties("dated", late.properties.version, enabled=False)
            try:
                CryptographyClient(late.id, cred).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256,
                                                             made[late.properties.version][1])
                check(False, "a disabled version must refuse unwrap")
            except HttpResponseError as e:
                eq((e.status_code, e.error.code), (403, "Forbidden"))

        @runner.test
        def import_rsa_ec():
            priv = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            nums = priv.private_numbers()
            jwk = JsonWebKey(kty="RSA", n=int_bytes(nums.public_numbers.n),
                             e=int_bytes(nums.public_numbers.e), d=int_bytes(nums.d),
                             p=int_bytes(nums.p), q=int_bytes(nums.q), dp=int_bytes(nums.dmp1),
                             dq=int_bytes(nums.dmq1), qi=int_bytes(nums.iqmp),
                             key_ops=["wrapKey", "unwrapKey"])
            k = client.import_key("imported-rsa", jwk, hardware_protected=True)
            eq(k.key_type, "RSA-HSM")
            eq(k.key.n, int_bytes(nums.public_numbers.n))
            check(not hasattr(k.key, "d") or k.key.d is None, "no private parts returned")
            # the server unwraps what the local private key's public half wrapped
            from cryptography.hazmat.primitives import hashes
            from cryptography.hazmat.primitives.asymmetric import padding
            data = secrets.token_bytes(32)
            wrapped = priv.public_key().encrypt(data, padding.OAEP(
                mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
            got = CryptographyClient(k.id, cred).unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
            eq(got.key, data)

            ec_priv = ec.generate_private_key(ec.SECP384R1())
            en = ec_priv.private_numbers()
            ejwk = JsonWebKey(kty="EC", crv="P-384", x=en.public_numbers.x.to_bytes(48, "big"),
                              y=en.public_numbers.y.to_bytes(48, "big"),
                              d=en.private_value.to_bytes(48, "big"))
            ek = client.import_key("imported-ec", ejwk)
            eq(ek.key.crv, "P-384")

            # d that does not match n: refused, nothing stored
            bad = JsonWebKey(kty="RSA", n=jwk.n, e=jwk.e, d=int_bytes(nums.d + 2), p=jwk.p,
                             q=jwk.q, dp=jwk.dp, dq=jwk.dq, qi=jwk.qi)
            try:
                client.import_key("imported-bad", bad)
                check(False, "an inconsistent JWK must be refused")
            except HttpResponseError as e:
                eq(e.status_code, 400)
            try:
                client.get_key("imported-bad")
                check(False, "a refused import stores nothing")
            except ResourceNotFoundError:
                pass

        @runner.test
        def rotate_and_policy():
            k = client.create_rsa_key("rot", size=3072)
            default = client.get_key_rotation_policy("rot")
            eq([(a.action.lower(), a.time_before_expiry) for a in default.lifetime_actions],
               [("notify", "P30D")])
            policy = KeyRotationPolicy(
                expires_in="P90D",
                lifetime_actions=[KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate,
                                                            time_after_create="P30D")])
            got = client.update_key_rotation_policy("rot", policy)
            eq(got.expires_in, "P90D")
            eq(got.lifetime_actions[0].time_after_create, "P30D")
            check(got.created_on is not None)
            r = client.rotate_key("rot")
            check(r.properties.version != k.properties.version)
            eq(len(r.key.n), 384)
            eq(int((r.properties.expires_on - r.properties.created_on).total_seconds()), 90 * DAY)
            # an invalid policy is refused: expiry under 28 days
            try:
                client.update_key_rotation_policy("rot", KeyRotationPolicy(expires_in="P10D"))
                check(False, "expiryTime under 28 days must be refused")
            except HttpResponseError as e:
                eq(e.status_code, 400)
            # an imported key whose public exponent kvmock does not generate (17) rotates
            # to a version with 65537, and does not hold up the keys the sweep meets after it
            pem = subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                                  "rsa_keygen_bits:2048", "-pkeyopt", "rsa_keygen_pubexp:17"],
                                 check=True, capture_output=True).stdout
            odd = serialization.load_pem_private_key(pem, password=None).private_numbers()
            eq(odd.public_numbers.e, 17)
            jwk = JsonWebKey(kty="RSA", n=int_bytes(odd.public_numbers.n),
                             e=int_bytes(odd.public_numbers.e), d=int_bytes(odd.d),
                             p=int_bytes(odd.p), q=int_bytes(odd.q), dp=int_bytes(odd.dmp1),
                             dq=int_bytes(odd.dmq1), qi=int_bytes(odd.iqmp))
            eq(client.import_key("a-odd", jwk).key.e, b"\x11")  # sorts before "rot"
            client.update_key_rotation_policy("a-odd", policy)
            # the trigger fires when kvmock's clock passes it
            before = len(list(client.list_properties_of_key_versions("rot")))
            kv.advance_clock(31 * DAY)
            fresh_clients()
            after = len(list(client.list_properties_of_key_versions("rot")))
            eq(after, before + 1)
            eq(len(list(client.list_properties_of_key_versions("a-odd"))), 2)
            eq(client.get_key("a-odd").key.e, b"\x01\x00\x01")

        @runner.test
        def rotation_policy_keeps_a_notify_action():
            # Key Vault adds its Notify action (30 days before expiry) to a policy set
            # without one, as its recordings show (Python 7.3, JS 7.4-preview.1), even
            # with no expiryTime; a Notify the caller gives is kept as given.
            client.create_ec_key("notify")
            rotate = KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate,
                                               time_after_create="P2M")
            got = client.update_key_rotation_policy(
                "notify", KeyRotationPolicy(lifetime_actions=[rotate]))
            eq([(a.action.lower(), a.time_after_create, a.time_before_expiry)
                for a in got.lifetime_actions],
               [("rotate", "P2M", None), ("notify", None, "P30D")])
            eq(got.expires_in, None)
            got = client.get_key_rotation_policy("notify")
            eq([a.action.lower() for a in got.lifetime_actions], ["rotate", "notify"])
            # the policy as read goes back as it is, also with an expiryTime shorter than
            # the added Notify's 30 days
            for expires_in, after in ((None, "P2M"), ("P28D", "P7D")):
                act = KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate,
                                                time_after_create=after)
                got = client.update_key_rotation_policy(
                    "notify", KeyRotationPolicy(expires_in=expires_in, lifetime_actions=[act]))
                again = client.update_key_rotation_policy("notify", got)
                eq([(a.action.lower(), a.time_after_create, a.time_before_expiry)
                    for a in again.lifetime_actions],
                   [("rotate", after, None), ("notify", None, "P30D")])
                eq(again.expires_in, expires_in)
            notify = KeyRotationLifetimeAction(KeyRotationPolicyAction.notify,
                                               time_before_expiry="P60D")
            got = client.update_key_rotation_policy(
                "notify", KeyRotationPolicy(expires_in="P90D", lifetime_actions=[notify]))
            eq([(a.action.lower(), a.time_before_expiry) for a in got.lifetime_actions],
               [("notify", "P60D")])
            # an empty list of actions: the service's Notify alone
            st, _, body = kv.https("PUT", "/keys/notify/rotationpolicy?api-version=7.5",
                                   {"lifetimeActions": [], "attributes": {}})
            eq(st, 200)
            answer = json.loads(body)
            eq(answer["lifetimeActions"],
               [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}])
            check("expiryTime" not in answer["attributes"] and
                  "created" in answer["attributes"], f"attributes: {answer['attributes']}")

        @runner.test
        def backup_restore():
            k = client.create_ec_key("bk", curve="P-256")
            blob = client.backup_key("bk")
            check(b"P-256" not in blob and k.key.x not in blob, "the blob is sealed")
            try:
                client.restore_key_backup(blob)
                check(False, "restore over a live key must conflict")
            except HttpResponseError as e:
                eq(e.status_code, 409)
            client.begin_delete_key("bk").wait()
            client.purge_deleted_key("bk")
            restored = client.restore_key_backup(blob)
            eq(restored.properties.version, k.properties.version)
            eq(restored.key.x, k.key.x)
            try:
                client.restore_key_backup(blob[:-3] + b"xyz")
                check(False, "a corrupt blob must be refused")
            except HttpResponseError as e:
                eq(e.status_code, 400)

        @runner.test
        def hardware_keys_need_a_premium_vault():
            """Key Vault makes RSA-HSM, EC-HSM and oct-HSM keys only in a premium vault: a
            create, an import or a restore into a standard one is 403, and stores nothing."""
            def refused(what, fn, name, vault=cmk):
                try:
                    fn()
                    check(False, f"{what}: a hardware key in a standard vault must be refused")
                except HttpResponseError as e:
                    eq((e.status_code, e.error.code, e.error.message),
                       (403, "Forbidden", HSM_REFUSED), what)
                try:
                    vault.get_key(name)
                    check(False, f"{what}: a refused key is not stored")
                except ResourceNotFoundError:
                    pass

            refused("create RSA-HSM", lambda: cmk.create_rsa_key("hw-rsa", hardware_protected=True),
                    "hw-rsa")
            refused("create EC-HSM", lambda: cmk.create_ec_key("hw-ec", hardware_protected=True),
                    "hw-ec")
            refused("create oct-HSM", lambda: cmk.create_oct_key("hw-oct", hardware_protected=True),
                    "hw-oct")
            refused("RSA-HSM by kty", lambda: cmk.create_key("hw-kty", "RSA-HSM"), "hw-kty")
            priv = ec.generate_private_key(ec.SECP256R1())
            n = priv.private_numbers()
            jwk = JsonWebKey(kty="EC", crv="P-256", x=n.public_numbers.x.to_bytes(32, "big"),
                             y=n.public_numbers.y.to_bytes(32, "big"),
                             d=n.private_value.to_bytes(32, "big"))
            refused("import with Hsm", lambda: cmk.import_key("hw-imp", jwk, hardware_protected=True),
                    "hw-imp")
            # an existing software key gets no hardware version either
            cmk.create_ec_key("hw-later")
            try:
                cmk.create_ec_key("hw-later", hardware_protected=True)
                check(False, "a hardware version of a software key in a standard vault")
            except HttpResponseError as e:
                eq(e.status_code, 403)
            eq(len(list(cmk.list_properties_of_key_versions("hw-later"))), 1)
            # the same keys in a premium vault, and software keys in the standard one
            eq(client.create_rsa_key("hw-rsa", hardware_protected=True).key_type, "RSA-HSM")
            eq(client.import_key("hw-imp", jwk, hardware_protected=True).key_type, "EC-HSM")
            eq(cmk.create_rsa_key("sw-rsa").key_type, "RSA")
            eq(cmk.import_key("sw-imp", jwk).key_type, "EC")
            # a premium vault's hardware key does not restore into a standard vault; a software
            # key does
            refused("restore", lambda: cmk.restore_key_backup(client.backup_key("hw-rsa")), "hw-rsa")
            client.create_ec_key("sw-bk")
            eq(cmk.restore_key_backup(client.backup_key("sw-bk")).key_type, "EC")
            # what this SDK hides: the platform Key Vault names for a hardware key, and none
            # for a software key
            for vault, name, want in (("default", "hw-rsa", "2"), ("cmk", "sw-rsa", None)):
                st, _, body = kv.https("GET", f"/keys/{name}?api-version=7.5",
                                       host=kv.vault_url(vault)[len("https://"):])
                eq((st, json.loads(body)["attributes"].get("hsmPlatform")), (200, want), name)
            # and the whole error body
            st, _, body = kv.https("POST", "/keys/hw-raw/create?api-version=7.4",
                                   {"kty": "EC-HSM", "crv": "P-384"},
                                   host=kv.vault_url("cmk")[len("https://"):])
            eq((st, json.loads(body)), (403, {"error": {"code": "Forbidden",
                                                        "message": HSM_REFUSED}}))

        @runner.test
        def customer_managed_key_scenario():
            fresh_clients()
            v1 = cmk.create_rsa_key("disk", size=2048)
            dek1 = secrets.token_bytes(32)
            w1 = CryptographyClient(v1.id, cred).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek1)
            v2 = cmk.rotate_key("disk")
            dek2 = secrets.token_bytes(32)
            w2 = CryptographyClient(v2.id, cred).wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek2)
            eq(w1.key_id, v1.id)
            eq(w2.key_id, v2.id)

            def unwrap_both():
                eq(CryptographyClient(v1.id, cred).unwrap_key(
                    KeyWrapAlgorithm.rsa_oaep_256, w1.encrypted_key).key, dek1)
                eq(CryptographyClient(v2.id, cred).unwrap_key(
                    KeyWrapAlgorithm.rsa_oaep_256, w2.encrypted_key).key, dek2)

            unwrap_both()
            cmk.begin_delete_key("disk").wait()
            try:
                cmk.purge_deleted_key("disk")
                check(False, "purge protection must refuse the purge")
            except HttpResponseError as e:
                eq(e.status_code, 403)
                check("purge protection" in e.message, e.message)
            check("disk" in [d.name for d in cmk.list_deleted_keys()], "still deleted")
            cmk.begin_recover_deleted_key("disk").wait()
            unwrap_both()
            cmk.begin_delete_key("disk").wait()
            kv.advance_clock(8 * DAY)
            fresh_clients()
            try:
                cmk.get_deleted_key("disk")
                check(False, "8 days past a 7-day retention the key is gone")
            except ResourceNotFoundError:
                pass
            try:
                cmk.get_key("disk", v1.properties.version)
                check(False, "no version survives the purge")
            except ResourceNotFoundError:
                pass

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
