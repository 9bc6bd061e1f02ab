"""A Managed HSM's settings, full backup, full restore and selective key restore, end to end:
Debian's unmodified azure-keyvault-administration 4.3.0b2 (KeyVaultSettingsClient,
KeyVaultBackupClient; api-version 7.4-preview.1) and azure-keyvault-keys, with managed
identities from kvmock's token endpoint, and raw HTTP for what the SDKs hide:

- settings: AllowKeyManagementOperationsThroughARM, false until an administrator sets it;
  list, get and update through the SDK; the answers whole; a bad value (400), an unknown
  setting (404) and a caller without settings/read or settings/write (403) change nothing;
  each HSM has its own;
- a full backup (202, Azure-AsyncOperation, the job's body in Managed HSM's member order, its
  folder URL "{container}/mhsm-{name}-{16 digits}") and its job read back; a full restore
  brings back exactly the keys backed up, every version, tags and the same key material
  (a signature made before verifies after), and removes what came since, soft-deleted keys
  included; and exactly the local role assignments and custom roles, in effect at once;
  a selective key restore brings back one purged key; a key that exists, a key the
  backup lacks and a folder with no backup end as Failed jobs with their error;
- a restore into another HSM of the same kvmock, its role assignments those of the backup;
- the SAS token must have an expiry (Managed HSM's own 400 message), a storage URL must be
  one, useManagedIdentity stands for the token; refusals change nothing;
- who may: the Backup User backs up and reads its jobs but may not restore; a Crypto User may
  neither; the administrator may all (403 AccessDenied, Managed HSM's action names);
- jobs are the HSM's and of their kind (404 elsewhere); jobs, backups and settings survive a
  restart; the SAS token is in neither the log nor the data folder;
- the security domain's download and upload (raw HTTP: Debian's az 2.45 cannot run `az
  keyvault security-domain download`, `init-recovery` nor `upload`, as its packaged
  azure.keyvault lacks the module their client imports): a download is 202,
  Azure-AsyncOperation and {"value": the domain}; the domain opened as the Azure CLI opens
  it, with its own code (azure.cli.command_modules.keyvault.security_domain): any quorum of
  the certificates' private keys rebuilds the master key, which opens the domain; two
  downloads carry one HSM's domain, another HSM's differs; and `az keyvault security-domain
  restore-blob` (offline) makes a restore blob of it whose domain is the same; both status
  URLs say Success; refused downloads (too few or many certificates, a quorum out of range,
  no or a bad x5c, an EC or a 1024-bit RSA certificate, one twice) are 400 BadParameter; a
  Crypto User may neither download nor read the status (403);
  the transfer key (GET /securitydomain/upload): a JWK as JSON text, RSA-OAEP-256, its
  self-signed certificate of the same RSA-2048 key in x5c and its SHA-256 thumbprint, no
  private member; the same on every call and after a restart, each HSM its own; the CLI's
  init-recovery code writes its certificate; an upload of hsma's domain, made by
  restore-blob for hsmb's transfer key, into hsmb: 202, Azure-AsyncOperation, the upload's
  status says uploaded, and hsmb's downloads then carry hsma's domain, after a restart too;
  a blob the test made with the CLI's code gives the HSM exactly its domain; refused uploads
  (no blob or a malformed one, one for another transfer key, one that does not open, one
  that holds no kvmock domain) are 400 BadParameter with their message and change nothing;
  a Crypto User may neither upload nor read the transfer key (403); the audit log names the
  calls; neither the wrapped key nor the domain is in the log;
- Resource Manager's managedHSMs/NAME/keys (raw HTTP: Debian's azure-mgmt-keyvault predates
  it) is refused (403) while AllowKeyManagementOperationsThroughARM is false; once true it
  makes, reads and lists the HSM's keys (EC-HSM, no location, keyUri at the HSM's host) as
  the caller's local roles allow (a Crypto Officer is refused keys/read)."""
import base64
import datetime
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HSM_ACTION, HSM_AUD, Kvmock, Runner, b64url, check, eq,  # noqa: E402
                     hsm_access_denied, parse_args, unb64url, TENANT, APP)

from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.administration import KeyVaultBackupClient, KeyVaultSettingsClient
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm, SignatureAlgorithm
# the Azure CLI's own security domain code, which opens a downloaded domain, makes restore
# blobs and writes a transfer key's certificate (init-recovery)
from azure.cli.command_modules.keyvault.custom import security_domain_init_recovery
from azure.cli.command_modules.keyvault.security_domain.jwe import JWE as SDJWE
from azure.cli.command_modules.keyvault.security_domain.security_domain import (
    Datum, SecurityDomainRestoreData)
from azure.cli.command_modules.keyvault.security_domain.shared_secret import SharedSecret
from azure.cli.command_modules.keyvault.security_domain.sp800_108 import KDF
from azure.cli.command_modules.keyvault.security_domain.utils import Utils as SDUtils
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID


def ident(name, n):
    return {"name": name, "objectId": f"0a000000-0000-4000-8000-0000000005{n:02x}",
            "clientId": f"0c000000-0000-4000-8000-0000000005{n:02x}"}


ADMIN = ident("hsm-admin", 1)      # initialAdminObjectIds of both HSMs
MAKER = dict(ident("hsm-maker", 2), manage=True)      # Crypto User at /keys of both
OFFICER = dict(ident("hsm-officer", 3), manage=True)  # Crypto Officer at / of both
BACKUP = ident("hsm-backup", 4)    # Backup User at / of hsma
SUB = "00000000-0000-0000-0000-000000000000"
MGMT = "https://management.azure.com"
ARM_HSMS = f"/subscriptions/{SUB}/resourceGroups/kvmock/providers/Microsoft.KeyVault/managedHSMs"
WRAPPER = ident("hsm-wrapper", 5)  # holds a custom role of hsma's
RA = "/providers/Microsoft.Authorization/roleAssignments"
RD = "/providers/Microsoft.Authorization/roleDefinitions"
DEF_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
SETTING = "AllowKeyManagementOperationsThroughARM"
ACTION = HSM_ACTION
CONTAINER = "https://backups.blob.core.windows.net/mhsm"
SIG = "c2VjcmV0LXNpZ25hdHVyZS1vZi10aGUtc2FzLXRva2Vu"  # must never be kept nor logged
SAS = f"sv=2021-08-06&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=crdw&sig={SIG}"
JOB_MEMBERS = ["status", "statusDetails", "error", "startTime", "endTime", "jobId"]



def sd_cert(key, n):
    """A self-signed certificate of @key, as a customer makes for the security domain."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"security domain {n}")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(n + 1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))


def der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def sd_jwk(pair):
    """A certificate as the Azure CLI sends it for a download."""
    cert = pair[1]
    pub = cert.public_key().public_numbers()
    b64u = SDUtils.security_domain_b64_url_encode
    return {"kty": "RSA", "alg": "RSA-OAEP-256", "key_ops": ["verify", "encrypt", "wrapKey"],
            "x5c": [base64.b64encode(der(cert)).decode()],
            "x5t": b64u(hashlib.sha1(der(cert)).digest()),
            "x5t#S256": b64u(hashlib.sha256(der(cert)).digest()),
            "n": b64u(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
            "e": b64u(pub.e.to_bytes(3, "big"))}


_keys = [rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(4)]
SD_KEYS = [(k, sd_cert(k, i)) for i, k in enumerate(_keys)]
SD_EC = sd_cert(ec.generate_private_key(ec.SECP256R1()), 8)
SD_SMALL = sd_cert(rsa.generate_private_key(public_exponent=65537, key_size=1024), 9)

CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, ADMIN, MAKER, OFFICER, BACKUP, WRAPPER],
    "managedHsms": [
        {"name": "hsma", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]]}},
        {"name": "hsmb", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]]}},
    ],
    "roleAssignments": [
        {"principalId": MAKER["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
         "scope": "/managedHSMs/hsma/keys"},
        {"principalId": MAKER["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
         "scope": "/managedHSMs/hsmb/keys"},
        {"principalId": OFFICER["objectId"], "roleDefinitionName": "Managed HSM Crypto Officer",
         "scope": "/managedHSMs/hsma"},
        {"principalId": OFFICER["objectId"], "roleDefinitionName": "Managed HSM Crypto Officer",
         "scope": "/managedHSMs/hsmb"},
        {"principalId": BACKUP["objectId"], "roleDefinitionName": "Managed HSM Backup User",
         "scope": "/managedHSMs/hsma"},
    ],
}


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port

        def host(name="hsma"):
            return f"{name}.managedhsm.localhost:{P}"

        def url(name="hsma"):
            return f"https://{host(name)}"

        def hsm(method, path, body=None, who=ADMIN, name="hsma", api="7.4"):
            """A raw call on HSM @name as @who: (status, headers, parsed body or None)."""
            return kv.hsm_call(method, path, body, name=name, client_id=who["clientId"], api=api)

        def mi(who):
            return ManagedIdentityCredential(client_id=who["clientId"])

        def denied(got, action, scope="/", what=""):
            hsm_access_denied(got, action, scope, what)

        def refused(got, status, code, message, what=""):
            """An error answered whole. Managed HSM's backup and restore errors carry no
            Activity ID (its access control's do)."""
            st, _, body = got
            eq(st, status, (what, body))
            eq(body, {"error": {"code": code, "message": message}}, what)

        def key_names(name="hsma"):
            return sorted(k.name for k in KeyClient(url(name), mi(MAKER)).list_properties_of_keys())

        def deleted_names(name="hsma"):
            st, _, body = hsm("GET", "/deletedkeys", who=OFFICER, name=name)
            eq(st, 200, body)
            return sorted(k["kid"].rsplit("/", 1)[1] for k in body["value"])

        def versions(key, name="hsma"):
            client = KeyClient(url(name), mi(MAKER))
            return sorted(v.version for v in client.list_properties_of_key_versions(key))

        def job_of(got, kind, what=""):
            """A job's 202 whole, as Managed HSM answers it: the job just started, its status
            URL in Azure-AsyncOperation, Retry-After; then the job as the status URL answers
            it, which is returned."""
            st, hdrs, started = got
            eq(st, 202, (what, started))
            backup = kind == "backup"
            members = JOB_MEMBERS + (["azureStorageBlobContainerUri"] if backup else [])
            eq(list(started), members, what)
            job_id = started["jobId"]
            check(re.fullmatch(r"[0-9a-f]{32}", job_id), started)
            eq(started, dict({"status": "InProgress", "statusDetails": None, "error": None,
                              "startTime": started["startTime"], "endTime": None,
                              "jobId": job_id},
                             **({"azureStorageBlobContainerUri": None} if backup else {})), what)
            eq(hdrs["azure-asyncoperation"], f"{url(kind_host[0])}/{kind}/{job_id}/pending", what)
            eq(hdrs["retry-after"], "1", what)
            st, _, body = hsm("GET", f"/{kind}/{job_id}/pending", name=kind_host[0])
            eq(st, 200, (what, body))
            eq(list(body), members, what)
            eq((body["jobId"], body["startTime"]), (job_id, started["startTime"]), what)
            check(body["startTime"] <= body["endTime"], body)
            return body

        kind_host = ["hsma"]  # the HSM job_of() reads jobs from

        def backup(who=ADMIN, name="hsma", body=None):
            kind_host[0] = name
            return job_of(hsm("POST", "/backup", body or {"storageResourceUri": CONTAINER,
                                                          "token": SAS}, who=who, name=name),
                          "backup")

        def restore(folder, key=None, who=ADMIN, name="hsma"):
            kind_host[0] = name
            sas = {"storageResourceUri": CONTAINER, "token": SAS}
            if key is None:
                got = hsm("PUT", "/restore", {"sasTokenParameters": sas, "folderToRestore": folder},
                          who=who, name=name)
            else:
                got = hsm("PUT", f"/keys/{key}/restore", {"sasTokenParameters": sas,
                                                         "folder": folder}, who=who, name=name)
            return job_of(got, "restore")

        def folder_of(job):
            eq(job["status"], "Succeeded", job)
            folder_url = job["azureStorageBlobContainerUri"]
            check(re.fullmatch(re.escape(CONTAINER) + r"/mhsm-[a-z0-9-]+-\d{16}", folder_url),
                  folder_url)
            return folder_url.rsplit("/", 1)[1]

        # ---- settings --------------------------------------------------------------------------

        @runner.test
        def settings_are_read_and_set_through_the_sdk():
            client = KeyVaultSettingsClient(url(), mi(ADMIN))
            listed = [(s.name, s.value, s.type) for s in client.list_settings()]
            eq(listed, [(SETTING, "false", "boolean")])
            eq(client.get_setting(SETTING).value, "false")
            updated = client.update_setting(SETTING, "true")
            eq((updated.name, updated.value, updated.type), (SETTING, "true", "boolean"))
            eq(client.get_setting(SETTING).value, "true")
            # whole, in Managed HSM's member order
            st, _, body = hsm("GET", "/settings")
            eq(json.dumps(body), json.dumps({"settings": [
                {"name": SETTING, "type": "boolean", "value": "true"}]}))
            st, _, body = hsm("GET", f"/settings/{SETTING.lower()}")  # any case
            eq((st, body), (200, {"name": SETTING, "type": "boolean", "value": "true"}))
            # hsmb has its own
            eq(KeyVaultSettingsClient(url("hsmb"), mi(ADMIN)).get_setting(SETTING).value, "false")
            st, _, body = hsm("PATCH", f"/settings/{SETTING}", {"value": "FALSE"})
            eq((st, body["value"]), (200, "false"))
            eq(client.get_setting(SETTING).value, "false")

        @runner.test
        def refused_settings_calls_change_nothing():
            client = KeyVaultSettingsClient(url(), mi(ADMIN))
            client.update_setting(SETTING, "true")
            for body in ({"value": "yes"}, {"value": True}, {}, {"value": None}):
                refused(hsm("PATCH", f"/settings/{SETTING}", body), 400, "BadParameter",
                        f"The value of setting {SETTING} must be the string 'true' or 'false'.",
                        body)
            missing = f"Setting 'NoSuchSetting' was not found. This managed HSM has the setting " \
                      f"{SETTING}."
            refused(hsm("GET", "/settings/NoSuchSetting"), 404, "SettingNotFound", missing)
            refused(hsm("PATCH", "/settings/NoSuchSetting", {"value": "true"}), 404,
                    "SettingNotFound", missing)
            try:
                client.get_setting("NoSuchSetting")
                raise AssertionError("an unknown setting was found")
            except HttpResponseError as e:
                eq(e.status_code, 404)
            # a Crypto User may neither read nor write them
            denied(hsm("GET", "/settings", who=MAKER), "settings/read/action")
            denied(hsm("GET", f"/settings/{SETTING}", who=MAKER), "settings/read/action")
            denied(hsm("PATCH", f"/settings/{SETTING}", {"value": "false"}, who=MAKER),
                   "settings/write/action")
            eq(client.get_setting(SETTING).value, "true")
            client.update_setting(SETTING, "false")

        # ---- full backup and restore -----------------------------------------------------------

        state = {}

        @runner.test
        def a_full_restore_brings_back_exactly_what_was_backed_up():
            keys = KeyClient(url(), mi(MAKER))
            k1 = keys.create_rsa_key("k1", size=2048)
            keys.create_ec_key("k2", curve="P-256", tags={"team": "blue"})
            keys.rotate_key("k2")
            keys.create_oct_key("gone", size=256)
            keys.begin_delete_key("gone").wait()  # soft-deleted: not in the backup
            digest = bytes(range(32))
            sig = CryptographyClient(k1, mi(MAKER)).sign(SignatureAlgorithm.rs256, digest).signature
            k2_versions = versions("k2")
            eq(len(k2_versions), 2)

            state["holdings"] = holdings()
            poller = KeyVaultBackupClient(url(), mi(ADMIN)).begin_backup(CONTAINER, SAS)
            result = poller.result()
            folder_url = result.folder_url
            check(folder_url.startswith(f"{CONTAINER}/mhsm-hsma-"), folder_url)
            state["folder_url"] = folder_url

            # what comes after: a new key, a deleted one, a changed one
            keys.create_rsa_key("k3", size=2048)
            keys.begin_delete_key("k1").wait()
            keys.update_key_properties("k2", tags={"team": "red"})
            eq(key_names(), ["k2", "k3"])
            eq(deleted_names(), ["gone", "k1"])

            KeyVaultBackupClient(url(), mi(ADMIN)).begin_restore(folder_url, SAS).wait()
            eq(key_names(), ["k1", "k2"])
            eq(deleted_names(), [])  # the HSM is as it was backed up: no deleted key either
            eq(versions("k2"), k2_versions)
            eq(keys.get_key("k2").properties.tags, {"team": "blue"})
            k1_back = keys.get_key("k1")
            eq((k1_back.id, k1_back.key.n), (k1.id, k1.key.n))
            eq(k1_back.key_type, "RSA-HSM")
            # the same material: a signature made before verifies with the restored key
            check(CryptographyClient(k1_back, mi(MAKER)).verify(SignatureAlgorithm.rs256, digest,
                                                                sig).is_valid)
            # and it still signs
            CryptographyClient(f"{url()}/keys/k1", mi(MAKER)).sign(SignatureAlgorithm.rs256,
                                                                   digest)

        def holdings(name="hsma"):
            """HSM @name's local role assignments: (principal, role GUID, scope)."""
            st, _, body = hsm("GET", RA, name=name)
            eq(st, 200, body)
            return sorted((a["properties"]["principalId"],
                           a["properties"]["roleDefinitionId"].rsplit("/", 1)[1],
                           a["properties"]["scope"]) for a in body["value"])

        @runner.test
        def a_full_restore_brings_back_the_role_assignments_and_custom_roles():
            guid = str(uuid.uuid4())
            st, _, body = hsm("PUT", f"{RD}/{guid}", {"properties": {
                "roleName": "wrapper", "permissions": [
                    {"dataActions": [f"{ACTION}keys/wrap/action", f"{ACTION}keys/read/action"]}]}})
            eq(st, 201, body)
            role = body
            st, _, body = hsm("PUT", f"{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": DEF_PREFIX + guid, "principalId": WRAPPER["objectId"]}})
            eq(st, 201, body)
            KeyClient(url(), mi(MAKER)).create_rsa_key("wrapped", size=2048)
            wrap = CryptographyClient(f"{url()}/keys/wrapped", mi(WRAPPER))
            wrap.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, bytes(32))
            before = holdings()
            folder = folder_of(backup())

            # since: the Backup User's and the wrapper's assignments and the custom role go,
            # an officer gets a role
            st, _, body = hsm("GET", RA)
            for a in body["value"]:
                if a["properties"]["principalId"] in (BACKUP["objectId"], WRAPPER["objectId"]):
                    eq(hsm("DELETE", f"{RA}/{a['name']}")[0], 200)
            eq(hsm("DELETE", f"{RD}/{guid}")[0], 200)
            st, _, body = hsm("PUT", f"{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": DEF_PREFIX + "21dbd100-6940-42c2-9190-5d6cb909625b",
                "principalId": OFFICER["objectId"]}})
            eq(st, 201, body)
            check(holdings() != before)
            denied(hsm("POST", "/backup", {"storageResourceUri": CONTAINER, "token": SAS},
                       who=BACKUP), "backup/start/action")

            eq(restore(folder)["status"], "Succeeded")
            eq(holdings(), before)
            st, _, body = hsm("GET", f"{RD}/{guid}")
            eq((st, body), (200, role))
            wrap.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, bytes(32))  # at once
            folder_of(backup(who=BACKUP))
            # the officer's role of since is gone: it may not make keys
            st, _, body = hsm("POST", "/keys/nope/create", {"kty": "EC"}, who=OFFICER)
            eq(st, 403, body)
            eq(hsm("DELETE", "/keys/wrapped", who=MAKER)[0], 200)
            eq(hsm("DELETE", "/deletedkeys/wrapped", who=OFFICER)[0], 204)

        @runner.test
        def a_selective_key_restore_brings_back_one_key():
            folder_url = state["folder_url"]
            folder = folder_url.rsplit("/", 1)[1]
            keys = KeyClient(url(), mi(MAKER))
            before = versions("k2")
            keys.begin_delete_key("k2").wait()
            st, _, _ = hsm("DELETE", "/deletedkeys/k2", who=OFFICER)
            eq(st, 204)
            keys.create_rsa_key("k4", size=2048)
            KeyVaultBackupClient(url(), mi(ADMIN)).begin_restore(folder_url, SAS,
                                                                 key_name="k2").wait()
            eq(key_names(), ["k1", "k2", "k4"])  # k4 stays: only k2 was restored
            eq(versions("k2"), before)
            # raw: the job says how many versions came back
            keys.begin_delete_key("k2").wait()
            eq(hsm("DELETE", "/deletedkeys/k2", who=OFFICER)[0], 204)
            job = restore(folder, key="k2")
            eq((job["status"], job["error"]), ("Succeeded", None))
            eq(job["statusDetails"], "Number of successful key versions restored: 2, "
                                     "Number of key versions could not overwrite: 0")
            # a key that exists, a key the backup lacks: Failed jobs, nothing changed
            job = restore(folder, key="k1")
            eq((job["status"], job["statusDetails"]), ("Failed", None), job)
            eq(list(job["error"]), ["code", "message", "innererror"], job)
            eq(job["error"]["code"], "Conflict", job)
            job = restore(folder, key="k4")
            eq(job["status"], "Failed", job)
            eq(job["error"], {"code": "KeyNotFound", "innererror": None, "message":
                              f"Key k4 is not in the backup in folder {folder_url}."})
            eq(key_names(), ["k1", "k2", "k4"])
            # the SDK sees a Failed job as an error
            try:
                KeyVaultBackupClient(url(), mi(ADMIN)).begin_restore(folder_url, SAS,
                                                                     key_name="k1").wait()
                raise AssertionError("a restore over a live key succeeded")
            except HttpResponseError:
                pass

        @runner.test
        def a_backup_restores_into_another_hsm():
            folder = state["folder_url"].rsplit("/", 1)[1]
            eq(key_names("hsmb"), [])
            job = restore(folder, name="hsmb")
            eq(job["status"], "Succeeded", job)
            eq(key_names("hsmb"), ["k1", "k2"])
            # and hsma's role assignments as they were, its Backup User's included
            eq(holdings("hsmb"), state["holdings"])
            k1 = KeyClient(url("hsmb"), mi(MAKER)).get_key("k1")
            check(k1.id.startswith(f"{url('hsmb')}/keys/k1/"), k1.id)
            CryptographyClient(k1, mi(MAKER)).sign(SignatureAlgorithm.rs256, bytes(32))
            # hsma's jobs are not hsmb's
            kind_host[0] = "hsma"
            st, _, body = hsm("GET", f"/restore/{job['jobId']}/pending", name="hsma")
            eq((st, body["error"]["code"]), (404, "NotFound"), body)

        @runner.test
        def backup_jobs_on_the_wire():
            job = backup()
            eq((job["status"], job["statusDetails"], job["error"]), ("Succeeded", None, None))
            folder_of(job)
            # the status URL is called as given, without an api-version; one given is checked
            path = f"/backup/{job['jobId']}/pending"
            st, _, body = kv.https("GET", path, token=kv.token(HSM_AUD, client_id=ADMIN["clientId"]),
                                   host=host())
            eq((st, json.loads(body)), (200, job))
            st, _, body = hsm("GET", path, api="1.0")
            eq((st, body["error"]["code"]), (400, "BadParameter"), body)
            # useManagedIdentity stands for the token
            folder_of(backup(body={"storageResourceUri": CONTAINER + "/",
                                   "useManagedIdentity": True}))
            # a job of one kind is not the other's; unknown ones are 404
            for path in (f"/restore/{job['jobId']}/pending", "/backup/0123/pending",
                         f"/backup/{'0' * 32}/pending"):
                st, hdrs, body = hsm("GET", path)
                eq(st, 404, (path, body))
                eq(body["error"]["code"], "NotFound", body)
            st, _, body = hsm("GET", f"/backup/{job['jobId']}/pending", name="hsmb")
            eq(st, 404, body)
            # a folder with no backup: a Failed job
            job = restore("mhsm-hsma-2000010100000000")
            eq((job["status"], job["error"]),
               ("Failed", {"code": "BadRequest", "innererror": None, "message":
                           f"No backup was found in folder {CONTAINER}/mhsm-hsma-2000010100000000."}))

        @runner.test
        def refused_backups_and_restores_change_nothing():
            before = key_names()
            expiry = ("The customer provided SAS token is malformed. The SAS token does not "
                      "contain the expiry field")
            for token in ("invalid_sas_token", "sv=1&sig=x", "se=&sig=x", ""):
                refused(hsm("POST", "/backup", {"storageResourceUri": CONTAINER, "token": token}),
                        400, "BadRequest", expiry, token)
            refused(hsm("POST", "/backup", {"storageResourceUri": CONTAINER}), 400, "BadRequest",
                    "Either a SAS token (token) or useManagedIdentity: true is required.")
            storage = ("storageResourceUri must be the URL of a blob storage container, such as "
                       "https://ACCOUNT.blob.core.windows.net/CONTAINER.")
            for uri in ("backups", "ftp://x/y", "https://", "https://a b/c", 7, None):
                refused(hsm("POST", "/backup", {"storageResourceUri": uri, "token": SAS}), 400,
                        "BadRequest", storage, uri)
            st, _, body = hsm("POST", "/backup", [1])
            eq((st, body["error"]["code"]), (400, "BadParameter"), body)
            sas = {"storageResourceUri": CONTAINER, "token": SAS}
            refused(hsm("PUT", "/restore", {"folderToRestore": "x"}), 400, "BadRequest",
                    "sasTokenParameters (storageResourceUri, and token or useManagedIdentity) "
                    "is required.")
            for folder in ("", "a/b", None, "x" * 101):
                refused(hsm("PUT", "/restore", {"sasTokenParameters": sas,
                                                "folderToRestore": folder}),
                        400, "BadRequest", "folderToRestore must name the backup's folder in the "
                                           "storage container.", folder)
            refused(hsm("PUT", "/keys/k1/restore", {"sasTokenParameters": sas, "folderToRestore":
                                                    "x"}),
                    400, "BadRequest", "folder must name the backup's folder in the storage "
                                       "container.")
            refused(hsm("PUT", "/restore", {"sasTokenParameters": {"storageResourceUri": CONTAINER,
                                                                   "token": "x"},
                                            "folderToRestore": "x"}), 400, "BadRequest", expiry)
            eq(key_names(), before)

        @runner.test
        def who_may_back_up_and_restore():
            job = backup(who=BACKUP)  # the Backup User backs up and reads its job
            folder = folder_of(job)
            sas = {"storageResourceUri": CONTAINER, "token": SAS}
            denied(hsm("PUT", "/restore", {"sasTokenParameters": sas, "folderToRestore": folder},
                       who=BACKUP), "restore/start/action")
            denied(hsm("PUT", "/keys/k1/restore", {"sasTokenParameters": sas, "folder": folder},
                       who=BACKUP), "restore/start/action", "/keys")
            restored = restore(folder)  # the administrator's
            denied(hsm("GET", f"/restore/{restored['jobId']}/pending", who=BACKUP),
                   "restore/status/action")
            denied(hsm("POST", "/backup", sas, who=MAKER), "backup/start/action")
            denied(hsm("GET", f"/backup/{job['jobId']}/pending", who=MAKER),
                   "backup/status/action")
            denied(hsm("PUT", "/restore", {"sasTokenParameters": sas, "folderToRestore": folder},
                       who=MAKER), "restore/start/action")
            denied(hsm("POST", "/backup", sas, who=MAKER, name="hsmb"), "backup/start/action")
            # the Backup User's backup restores all the same
            eq(restored["status"], "Succeeded", restored)

        @runner.test
        def resource_manager_reaches_an_hsms_keys_once_the_setting_allows():
            base = f"{ARM_HSMS}/hsmb/keys"

            def arm(method, path, body=None, who=MAKER):
                st, _, resp = kv.https(method, f"{path}?api-version=2023-07-01", body,
                                       token=kv.token(MGMT, client_id=who["clientId"]))
                return st, (json.loads(resp) if resp else None)

            forbidden = (403, {"error": {"code": "Forbidden", "message":
                               "Key management operations through Azure Resource Manager are not "
                               "allowed on managed HSM 'hsmb'. Its administrator allows them with "
                               f"the HSM's setting {SETTING}."}})
            settings = KeyVaultSettingsClient(url("hsmb"), mi(ADMIN))
            settings.update_setting(SETTING, "false")
            before = key_names("hsmb")
            create = {"properties": {"kty": "EC", "curveName": "P-256"}, "tags": {"by": "arm"}}
            eq(arm("GET", base), forbidden)
            eq(arm("GET", f"{base}/k1"), forbidden)
            eq(arm("PUT", f"{base}/armk", create), forbidden)
            eq(key_names("hsmb"), before)

            settings.update_setting(SETTING, "true")
            st, body = arm("PUT", f"{base}/armk", create)
            eq(st, 200, body)
            made = KeyClient(url("hsmb"), mi(MAKER)).get_key("armk")
            eq(made.key_type, "EC-HSM")
            eq(list(body), ["tags", "properties", "id", "name", "type"], body)  # no location
            eq((body["id"], body["name"], body["type"], body["tags"]),
               (f"{base}/armk", "armk", "Microsoft.KeyVault/managedHSMs/keys", {"by": "arm"}))
            props = body["properties"]
            eq((props["kty"], props["curveName"], props["keyUri"], props["keyUriWithVersion"]),
               ("EC-HSM", "P-256", f"{url('hsmb')}/keys/armk", made.id))
            st, body = arm("GET", f"{base}/armk")
            eq((st, body["properties"]["keyUriWithVersion"]), (200, made.id), body)
            st, body = arm("GET", base)
            eq(st, 200, body)
            eq(sorted(k["name"] for k in body["value"]), sorted(before + ["armk"]))
            st, body = arm("GET", f"{base}/armk/versions")
            eq((st, [v["type"] for v in body["value"]]),
               (200, ["Microsoft.KeyVault/managedHSMs/keys/versions"]), body)
            # the caller's local roles decide: a Crypto Officer may not read keys
            st, hdrs, resp = kv.https("GET", f"{base}?api-version=2023-07-01",
                                      token=kv.token(MGMT, client_id=OFFICER["clientId"]))
            eq((st, json.loads(resp)), (403, {"error": {"code": "AccessDenied", "message":
               f"Not authorized to access {ACTION}keys/read/action on /keys "
               f"(Activity ID: {hdrs['x-ms-request-id']})"}}))
            # an unknown HSM, and a vault's path naming the HSM
            st, body = arm("GET", f"{ARM_HSMS}/nohsm/keys")
            eq((st, body["error"]["code"]), (404, "ResourceNotFound"), body)
            st, body = arm("GET", base.replace("managedHSMs", "vaults"))
            eq((st, body["error"]["message"]),
               (404, "The Resource 'Microsoft.KeyVault/vaults/hsmb' under resource group "
                     "'kvmock' was not found."), body)
            settings.update_setting(SETTING, "false")
            eq(arm("GET", base), forbidden)

        @runner.test
        def jobs_backups_and_settings_survive_a_restart_and_the_token_is_kept_nowhere():
            KeyVaultSettingsClient(url("hsmb"), mi(ADMIN)).update_setting(SETTING, "true")
            job = backup()
            folder = folder_of(job)
            kv.restart()
            st, _, body = hsm("GET", f"/backup/{job['jobId']}/pending")
            eq((st, body), (200, job))
            eq(restore(folder)["status"], "Succeeded")
            eq(KeyVaultSettingsClient(url("hsmb"), mi(ADMIN)).get_setting(SETTING).value, "true")
            eq(KeyVaultSettingsClient(url(), mi(ADMIN)).get_setting(SETTING).value, "false")
            with open(kv.log_path, "rb") as f:
                check(SIG.encode() not in f.read(), "the SAS token is in the log")
            for root, _, files in os.walk(kv.data_dir):
                for name in files:
                    with open(os.path.join(root, name), "rb") as f:
                        check(SIG.encode() not in f.read(), f"the SAS token is in {name}")
            # the audit log names the operations and the HSM
            ops = {r["operationName"] for r in kv.audit_records()
                   if "/MANAGEDHSMS/HSMA" in r.get("resourceId", "")}
            for op in ("FullBackup", "FullBackupStatus", "FullRestoreOperation", "RestoreStatus",
                       "SelectiveKeyRestoreOperation", "GetSettings", "UpdateSetting"):
                check(op in ops, (op, sorted(ops)))

        # ---- the security domain ---------------------------------------------------------------

        def download(certs, required=2, who=ADMIN, name="hsma"):
            body = {"certificates": [sd_jwk(c) for c in certs]}
            if required is not None:
                body["required"] = required
            return hsm("POST", "/securitydomain/download", body, who=who, name=name, api="7.2")

        def open_domain(text, keys):
            """The domain secret of security domain @text, opened with private keys @keys
            (indexes into SD_KEYS) as the Azure CLI opens it."""
            shared = json.loads(text)["SharedKeys"]
            shares = []
            for i in keys:
                s256 = SDUtils.security_domain_b64_url_encode(
                    hashlib.sha256(der(SD_KEYS[i][1])).digest())
                item = [x for x in shared["enc_shares"] if x["x5t_256"] == s256]
                eq(len(item), 1, (i, shared))
                share = SDJWE(compact_jwe=item[0]["enc_key"]).decrypt_using_private_key(
                    SD_KEYS[i][0])
                shares.append(SDUtils.convert_to_uint16(share))
            master = SharedSecret.get_plaintext(shares, required=len(keys))
            data = json.loads(text)["EncData"]
            eq((data["kdf"], [d["tag"] for d in data["data"]]), ("sp108_kdf", ["kvmock-domain"]))
            d = data["data"][0]
            plain = SDJWE(d["compact_jwe"]).decrypt_using_bytes(
                KDF.sp800_108(master, label=d["tag"], context="", bit_length=512))
            check(plain is None or len(plain) == 32, plain)
            return plain  # None: its tag did not match (a wrong master key)

        def sd_folder():
            """A new folder holding SD_KEYS's private keys and certificates side by side
            (k{i}.pem, k{i}.cer), as the Azure CLI's restore-blob wants them, and a config
            folder for az (az/)."""
            work = tempfile.mkdtemp(prefix="kvmock-sd-")
            for i, (key, cert) in enumerate(SD_KEYS):
                with open(os.path.join(work, f"k{i}.pem"), "wb") as f:
                    f.write(key.private_bytes(serialization.Encoding.PEM,
                                              serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
                with open(os.path.join(work, f"k{i}.cer"), "wb") as f:
                    f.write(cert.public_bytes(serialization.Encoding.PEM))
            os.mkdir(os.path.join(work, "az"))
            return work

        def restore_blob(work, text, exchange_key, keys=(0, 2)):
            """`az keyvault security-domain restore-blob` (Debian's az, offline) in folder
            @work (sd_folder()): the JSON text of the restore blob of security domain @text,
            opened with the private keys SD_KEYS[@keys] and wrapped for the certificate in PEM
            file @exchange_key."""
            tag = uuid.uuid4().hex
            sd_file, blob = (os.path.join(work, f"{what}-{tag}.json") for what in ("sd", "blob"))
            with open(sd_file, "w") as f:
                f.write(text)
            env = dict(kv.az_env(os.path.join(work, "az")), AZ_INSTALLER="DEB")
            proc = subprocess.run(
                ["az", "keyvault", "security-domain", "restore-blob", "--sd-file", sd_file,
                 "--sd-exchange-key", exchange_key, "--sd-wrapping-keys",
                 *(os.path.join(work, f"k{i}.pem") for i in keys),
                 "--sd-file-restore-blob", blob],
                env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
            eq(proc.returncode, 0, proc.stderr[-2000:])
            with open(blob) as f:
                return f.read()

        @runner.test
        def a_security_domain_download_opens_as_the_cli_opens_it():
            st, hdrs, body = download(SD_KEYS[:3])
            eq(st, 202, body)
            eq((hdrs["azure-asyncoperation"], hdrs["retry-after"]),
               (f"{url()}/securitydomain/download/pending", "1"))
            eq(list(body), ["value"])
            doc = json.loads(body["value"])
            eq(list(doc), ["EncData", "SharedKeys"])
            eq((len(doc["SharedKeys"]["enc_shares"]), doc["SharedKeys"]["key_algorithm"],
                doc["SharedKeys"]["required"]), (3, "shamir_share", 2))
            domain = open_domain(body["value"], [0, 1])
            check(domain is not None, "the domain did not open")
            eq(open_domain(body["value"], [1, 2]), domain)
            eq(open_domain(body["value"], [2, 0]), domain)
            # one share is not enough: the master key it gives opens nothing
            try:
                one = open_domain(body["value"], [1])
            except ValueError:  # a value past a byte's: not even a master key
                one = None
            eq(one, None)
            # another download of hsma, four certificates and a quorum of three: its domain
            st, _, again = download(SD_KEYS, required=3)
            eq(st, 202, again)
            eq(open_domain(again["value"], [3, 1, 0]), domain)
            # hsmb's is another
            st, _, other = download(SD_KEYS[:3], name="hsmb")
            eq(st, 202, other)
            check(open_domain(other["value"], [0, 1]) != domain, "hsmb has hsma's domain")
            # the status URLs
            for path in ("/securitydomain/download/pending", "/securitydomain/upload/pending"):
                st, _, status = hsm("GET", path, api="7.2")
                eq((st, status), (200, {"status": "Success", "status_details":
                                        "The managed HSM is active: its security domain is in "
                                        "place."}), path)
            # the Azure CLI's offline restore-blob opens it with two of the keys and wraps its
            # domain for an exchange key (the fourth certificate)
            work = sd_folder()
            try:
                restored = json.loads(restore_blob(work, body["value"],
                                                   os.path.join(work, "k3.cer")))
                master = SDJWE(restored["WrappedKey"]["enc_key"]).decrypt_using_private_key(
                    SD_KEYS[3][0])
                d = restored["EncData"]["data"][0]
                eq(SDJWE(d["compact_jwe"]).decrypt_using_bytes(
                    KDF.sp800_108(master, label=d["tag"], context="", bit_length=512)), domain)
            finally:
                shutil.rmtree(work, ignore_errors=True)

        @runner.test
        def refused_security_domain_downloads():
            certs = ("The security domain download needs 3 to 10 certificates, each a JSON web key "
                     "with its X.509 certificate in x5c.")
            bad_cert = ("Each certificate (x5c) must be an X.509 certificate with an RSA key of "
                        "at least 2048 bits.")
            quorum = ("The security domain's quorum (required) must be between 2 and the number "
                      "of certificates.")

            def bad(got, message, what):
                st, hdrs, body = got
                eq((st, body), (400, {"error": {"code": "BadParameter", "message": message}}),
                   what)

            bad(download(SD_KEYS[:2]), certs, "two certificates")
            bad(download(SD_KEYS * 3), certs, "twelve certificates")
            bad(hsm("POST", "/securitydomain/download", {"required": 2}, api="7.2"), certs,
                "none")
            bad(hsm("POST", "/securitydomain/download", {"certificates": {}}, api="7.2"), certs,
                "an object")
            bad(download(SD_KEYS[:3], required=1), quorum, "a quorum of one")
            bad(download(SD_KEYS[:3], required=4), quorum, "a quorum above the certificates")
            bad(download(SD_KEYS[:3], required=2.5), "'required' must be an integer.", "2.5")
            jwks = [sd_jwk(c) for c in SD_KEYS[:3]]
            for what, change in (("no x5c", lambda j: j.pop("x5c")),
                                 ("an empty x5c", lambda j: j.update(x5c=[])),
                                 ("not base64", lambda j: j.update(x5c=["@@@@"]))):
                broken = [dict(j) for j in jwks]
                change(broken[2])
                bad(hsm("POST", "/securitydomain/download", {"certificates": broken},
                        api="7.2"), "Each certificate's x5c must hold its X.509 certificate, in "
                                    "base64.", what)
            for what, cert in (("not a certificate", b"0\x03\x02\x01\x01"),
                               ("an EC certificate", der(SD_EC)), ("RSA 1024", der(SD_SMALL))):
                broken = [dict(j) for j in jwks]
                broken[2]["x5c"] = [base64.b64encode(cert).decode()]
                bad(hsm("POST", "/securitydomain/download", {"certificates": broken},
                        api="7.2"), bad_cert, what)
            bad(download([SD_KEYS[0], SD_KEYS[1], SD_KEYS[0]]),
                "The certificates' keys must differ: each holds one share of the security "
                "domain.",
                "one certificate twice")
            # a Crypto User may neither download it nor read its status
            denied(download(SD_KEYS[:3], who=MAKER), "securitydomain/download/action")
            st, hdrs, body = hsm("GET", "/securitydomain/download/pending", who=MAKER, api="7.2")
            denied((st, hdrs, body), "securitydomain/download/read")
            st, hdrs, body = hsm("GET", "/securitydomain/upload/pending", who=MAKER, api="7.2")
            denied((st, hdrs, body), "securitydomain/upload/read")
            # and the audit log names the calls
            ops = {(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in kv.audit_records() if "/MANAGEDHSMS/HSMA" in r.get("resourceId", "")}
            for op in (("SecurityDomainDownload", 202), ("SecurityDomainDownload", 400),
                       ("SecurityDomainDownload", 403), ("SecurityDomainUploadPending", 403)):
                check(op in ops, (op, sorted(ops)))

        # ---- the security domain's upload ------------------------------------------------------
        # Debian's az 2.45 cannot run `az keyvault security-domain init-recovery` nor `upload`
        # (nor download): their client, the vendored azure_keyvault_t1, imports
        # azure.keyvault.http_bearer_challenge_cache, which Debian's azure.keyvault lacks (an
        # ImportError before any call). So: the CLI's own init-recovery code with raw HTTP
        # under it (CliClient), its offline restore-blob, and the upload in raw HTTP.

        ACTIVE = "The managed HSM is active: its security domain is in place."
        UPLOADED = "The security domain was uploaded: the managed HSM holds it."
        NO_BLOB = ("The security domain upload needs its restore blob in 'value': the JSON text "
                   "`az keyvault security-domain restore-blob` makes, with EncData and "
                   "WrappedKey.")
        OTHER_KEY = ("The restore blob is wrapped for another transfer key: get this managed "
                     "HSM's transfer key (GET /securitydomain/upload) and make the blob for it.")
        NO_OPEN = ("The restore blob does not open: its wrapped key does not open with the "
                   "transfer key, or its security domain with the key it wraps.")
        NOT_KVMOCK = "The restore blob holds no kvmock managed HSM's security domain."
        JWK_MEMBERS = ["alg", "e", "key_ops", "kid", "kty", "n", "use", "x5c", "x5t#S256"]

        def transfer_key(name="hsma"):
            """HSM @name's transfer key (GET /securitydomain/upload), checked whole: its JWK
            and its certificate."""
            st, _, body = hsm("GET", "/securitydomain/upload", name=name, api="7.2")
            eq(st, 200, body)
            eq(sorted(body), ["key_format", "transfer_key"], body)
            eq(body["key_format"], "jwk", body)
            check(isinstance(body["transfer_key"], str), body)  # JSON text, as the CLI reads it
            jwk = json.loads(body["transfer_key"])
            eq(sorted(jwk), JWK_MEMBERS, jwk)  # public members only: no d, p, q, dp, dq, qi
            eq((jwk["kty"], jwk["alg"], jwk["use"], jwk["key_ops"]),
               ("RSA", "RSA-OAEP-256", "enc", ["wrapKey", "encrypt"]), jwk)
            check(isinstance(jwk["kid"], str) and jwk["kid"], jwk)
            eq(len(jwk["x5c"]), 1, jwk)
            cert_der = base64.b64decode(jwk["x5c"][0], validate=True)  # standard base64
            cert = x509.load_der_x509_certificate(cert_der)
            eq(der(cert), cert_der)
            # self-signed, of the JWK's own RSA-2048 key
            eq(cert.issuer, cert.subject)
            cert.public_key().verify(cert.signature, cert.tbs_certificate_bytes,
                                     padding.PKCS1v15(), cert.signature_hash_algorithm)
            pub = cert.public_key()
            check(isinstance(pub, rsa.RSAPublicKey), cert)
            eq(pub.key_size, 2048)
            for member in ("n", "e", "x5t#S256"):  # base64url, unpadded
                check(re.fullmatch(r"[A-Za-z0-9_-]+", jwk[member]), (member, jwk[member]))
            eq((int.from_bytes(unb64url(jwk["n"]), "big"), int.from_bytes(unb64url(jwk["e"]),
                                                                           "big")),
               (pub.public_numbers().n, pub.public_numbers().e))
            eq(jwk["x5t#S256"], b64url(hashlib.sha256(cert_der).digest()))
            return jwk, cert

        class CliClient:
            """The Azure CLI's data-plane client as its init-recovery calls it: transfer_key()
            answers GET /securitydomain/upload's body as text."""

            def __init__(self, name):
                self.name = name

            def transfer_key(self, vault_base_url):
                eq(vault_base_url, self.name)
                st, _, body = kv.https("GET", "/securitydomain/upload?api-version=7.2",
                                       token=kv.token(HSM_AUD, client_id=ADMIN["clientId"]),
                                       host=host(self.name))
                eq(st, 200, body)
                return body.decode()

        def init_recovery(name, path):
            """`az keyvault security-domain init-recovery --hsm-name @name --sd-exchange-key
            @path`, the CLI's own code: the HSM's transfer key's certificate in PEM file @path."""
            security_domain_init_recovery(CliClient(name), name, path)
            return path

        def upload(value, who=ADMIN, name="hsma"):
            return hsm("POST", "/securitydomain/upload", {"value": value}, who=who, name=name,
                       api="7.2")

        def sd_status(name, kind="upload"):
            """What HSM @name's /securitydomain/@kind/pending says: its status_details."""
            st, _, body = hsm("GET", f"/securitydomain/{kind}/pending", name=name, api="7.2")
            eq(st, 200, (kind, body))
            eq(sorted(body), ["status", "status_details"], body)
            eq(body["status"], "Success", body)
            return body["status_details"]

        def domain_of(name):
            """The domain secret HSM @name's download carries."""
            st, _, body = download(SD_KEYS[:3], name=name)
            eq(st, 202, body)
            domain = open_domain(body["value"], [0, 1])
            check(domain is not None, "the domain did not open")
            return domain

        def make_blob(cert, data):
            """A restore blob made as the Azure CLI's restore-blob makes one
            (_security_domain_gen_blob), with its own code: each (tag, plaintext) of @data
            encrypted under a key derived from a new master key, the master key wrapped for
            certificate @cert. Its JSON text."""
            blob = SecurityDomainRestoreData()
            blob.enc_data.kdf = "sp108_kdf"
            master = SDUtils.get_random(32)
            for tag, plain in data:
                jwe = SDJWE()
                jwe.encrypt_using_bytes(KDF.sp800_108(master, label=tag, context="",
                                                      bit_length=512),
                                        plain, alg_id="A256CBC-HS512", kid=tag)
                blob.enc_data.data.append(Datum(compact_jwe=jwe.encode_compact(), tag=tag))
            wrapped = SDJWE()
            wrapped.encrypt_using_cert(cert, master)
            blob.wrapped_key.enc_key = wrapped.encode_compact()
            blob.wrapped_key.x5t_256 = b64url(hashlib.sha256(der(cert)).digest())
            return json.dumps(blob.to_json())

        def altered(blob, change):
            """Restore blob @blob (JSON text) after change(its parsed JSON)."""
            doc = json.loads(blob)
            change(doc)
            return json.dumps(doc)

        def flip(compact, part):
            """Compact JWE @compact with the character in the middle of its @part-th part
            (1 its encrypted key, 3 its ciphertext, 4 its tag) changed."""
            parts = compact.split(".")
            i = len(parts[part]) // 2
            parts[part] = parts[part][:i] + ("B" if parts[part][i] == "A" else "A") + \
                parts[part][i + 1:]
            return ".".join(parts)

        @runner.test
        def a_managed_hsm_answers_its_transfer_key():
            jwk, cert = transfer_key("hsma")
            state["transfer_keys"] = {"hsma": jwk}
            # the same on every call; hsmb's is another
            eq(transfer_key("hsma")[0], jwk)
            other, other_cert = transfer_key("hsmb")
            state["transfer_keys"]["hsmb"] = other
            check(other["n"] != jwk["n"], "hsmb has hsma's transfer key")
            check(other["x5t#S256"] != jwk["x5t#S256"], other)
            # the Azure CLI's init-recovery reads it and writes its certificate
            work = tempfile.mkdtemp(prefix="kvmock-sd-")
            try:
                with open(init_recovery("hsmb", os.path.join(work, "hsmb.pem")), "rb") as f:
                    eq(der(x509.load_pem_x509_certificate(f.read())), der(other_cert))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            # a Crypto User may not read either
            for name in ("hsma", "hsmb"):
                denied(hsm("GET", "/securitydomain/upload", who=MAKER, name=name, api="7.2"),
                       "securitydomain/transferkey/read", what=name)
            ops = {(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in kv.audit_records() if "/MANAGEDHSMS/HSMB" in r.get("resourceId", "")}
            for op in (("SecurityDomainTransferKey", 200), ("SecurityDomainTransferKey", 403)):
                check(op in ops, (op, sorted(ops)))

        @runner.test
        def refused_security_domain_uploads_change_nothing():
            before = domain_of("hsmb")
            eq(sd_status("hsmb"), ACTIVE)
            work = sd_folder()
            try:
                st, _, sd = download(SD_KEYS[:3])
                eq(st, 202, sd)
                # hsma's domain wrapped for hsmb's transfer key: the blob hsmb would take
                good = restore_blob(work, sd["value"], init_recovery("hsmb",
                                                                     os.path.join(work, "b.pem")))
                for_hsma = restore_blob(work, sd["value"],
                                        init_recovery("hsma", os.path.join(work, "a.pem")))
                for_customer = restore_blob(work, sd["value"], os.path.join(work, "k3.cer"))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            hsmb_cert = x509.load_der_x509_certificate(
                base64.b64decode(state["transfer_keys"]["hsmb"]["x5c"][0]))

            def bad(value, message, what):
                st, _, body = upload(value, name="hsmb")
                eq((st, body), (400, {"error": {"code": "BadParameter", "message": message}}),
                   what)

            def datum(doc):
                return doc["EncData"]["data"][0]

            # no restore blob
            for what, body in (("no value", {}), ("null", {"value": None}),
                               ("a number", {"value": 7}),
                               ("the blob's JSON, not its text", {"value": json.loads(good)})):
                st, _, got = hsm("POST", "/securitydomain/upload", body, name="hsmb", api="7.2")
                eq((st, got), (400, {"error": {"code": "BadParameter", "message": NO_BLOB}}),
                   what)
            for what, value in (
                    ("not JSON", "not json"), ("an array", "[]"), ("an empty object", "{}"),
                    ("no EncData", altered(good, lambda d: d.pop("EncData"))),
                    ("no WrappedKey", altered(good, lambda d: d.pop("WrappedKey"))),
                    ("no data", altered(good, lambda d: d["EncData"].update(data=[]))),
                    ("data not a list", altered(good, lambda d: d["EncData"].update(data="x"))),
                    ("a datum not an object", altered(good, lambda d: d["EncData"].update(
                        data=[1]))),
                    ("a datum without tag", altered(good, lambda d: datum(d).pop("tag"))),
                    ("a compact_jwe not a string", altered(good, lambda d: datum(d).update(
                        compact_jwe=5))),
                    ("no enc_key", altered(good, lambda d: d["WrappedKey"].pop("enc_key"))),
                    ("an x5t_256 not a string", altered(good, lambda d: d["WrappedKey"].update(
                        x5t_256=5)))):
                bad(value, NO_BLOB, what)
            # wrapped for another key: hsma's transfer key, a customer's certificate
            bad(for_hsma, OTHER_KEY, "for hsma's transfer key")
            bad(for_customer, OTHER_KEY, "for a customer's certificate")
            bad(altered(good, lambda d: d["WrappedKey"].update(
                x5t_256=json.loads(for_hsma)["WrappedKey"]["x5t_256"])), OTHER_KEY,
                "hsma's thumbprint")
            # for hsmb's transfer key, but it does not open
            another = make_blob(hsmb_cert, [("kvmock-domain", SDUtils.get_random(32))])
            for what, change in (
                    ("the wrapped key's encrypted key", lambda d: d["WrappedKey"].update(
                        enc_key=flip(d["WrappedKey"]["enc_key"], 1))),
                    ("the wrapped key's ciphertext", lambda d: d["WrappedKey"].update(
                        enc_key=flip(d["WrappedKey"]["enc_key"], 3))),
                    ("the wrapped key's tag", lambda d: d["WrappedKey"].update(
                        enc_key=flip(d["WrappedKey"]["enc_key"], 4))),
                    ("the wrapped key not a JWE", lambda d: d["WrappedKey"].update(enc_key="x")),
                    ("the domain's ciphertext", lambda d: datum(d).update(
                        compact_jwe=flip(datum(d)["compact_jwe"], 3))),
                    ("the domain's tag", lambda d: datum(d).update(
                        compact_jwe=flip(datum(d)["compact_jwe"], 4))),
                    ("the domain not a JWE", lambda d: datum(d).update(compact_jwe="a.b.c.d.e")),
                    ("another blob's wrapped key", lambda d: d.update(
                        WrappedKey=json.loads(another)["WrappedKey"]))):
                bad(altered(good, change), NO_OPEN, what)
            # it opens, but holds no kvmock HSM's domain
            for what, data in (
                    ("another tag", [("other-domain", SDUtils.get_random(32))]),
                    ("31 bytes", [("kvmock-domain", SDUtils.get_random(31))]),
                    ("64 bytes", [("kvmock-domain", SDUtils.get_random(64))]),
                    ("nothing", [("kvmock-domain", b"")]),
                    ("a datum of another tag too", [("kvmock-domain", SDUtils.get_random(32)),
                                                    ("other-domain", SDUtils.get_random(32))])):
                bad(make_blob(hsmb_cert, data), NOT_KVMOCK, what)
            # a Crypto User may not upload
            denied(upload(good, who=MAKER, name="hsmb"), "securitydomain/upload/action")
            # nothing changed: hsmb holds its own domain, has its transfer key, is active
            eq(domain_of("hsmb"), before)
            eq(sd_status("hsmb"), ACTIVE)
            eq(sd_status("hsmb", "download"), ACTIVE)
            eq(transfer_key("hsmb")[0], state["transfer_keys"]["hsmb"])
            ops = {(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in kv.audit_records() if "/MANAGEDHSMS/HSMB" in r.get("resourceId", "")}
            for op in (("SecurityDomainUpload", 400), ("SecurityDomainUpload", 403)):
                check(op in ops, (op, sorted(ops)))
            check(("SecurityDomainUpload", 202) not in ops, sorted(ops))

        @runner.test
        def an_uploaded_security_domain_is_the_hsms_and_survives_a_restart():
            domain = domain_of("hsma")
            check(domain_of("hsmb") != domain, "hsmb has hsma's domain before the upload")
            work = sd_folder()
            try:
                # the customer's recovery: hsma's domain, downloaded, opened with two of its
                # keys and wrapped for hsmb's transfer key, uploaded to hsmb
                st, _, sd = download(SD_KEYS[:3])
                eq(st, 202, sd)
                blob = restore_blob(work, sd["value"],
                                    init_recovery("hsmb", os.path.join(work, "hsmb.pem")),
                                    keys=(2, 1))
            finally:
                shutil.rmtree(work, ignore_errors=True)
            eq(json.loads(blob)["WrappedKey"]["x5t_256"],
               state["transfer_keys"]["hsmb"]["x5t#S256"])
            st, hdrs, body = upload(blob, name="hsmb")
            eq((st, body), (202, {"status": "InProgress",
                                  "status_details": "The security domain upload has started."}))
            eq((hdrs["azure-asyncoperation"], hdrs["retry-after"]),
               (f"{url('hsmb')}/securitydomain/upload/pending", "1"))
            eq(sd_status("hsmb"), UPLOADED)
            eq(sd_status("hsmb", "download"), ACTIVE)
            eq(sd_status("hsma"), ACTIVE)  # hsma's is unchanged
            # hsmb's downloads now carry hsma's domain, whatever their certificates
            eq(domain_of("hsmb"), domain)
            st, _, again = download(SD_KEYS, required=3, name="hsmb")
            eq(st, 202, again)
            eq(open_domain(again["value"], [3, 0, 2]), domain)
            eq(domain_of("hsma"), domain)
            eq(transfer_key("hsmb")[0], state["transfer_keys"]["hsmb"])  # its own still
            # a refused upload now changes nothing either
            st, _, body = upload(altered(blob, lambda d: d["WrappedKey"].update(
                enc_key=flip(d["WrappedKey"]["enc_key"], 3))), name="hsmb")
            eq((st, body), (400, {"error": {"code": "BadParameter", "message": NO_OPEN}}))
            eq((domain_of("hsmb"), sd_status("hsmb")), (domain, UPLOADED))
            # /metrics counts the security domain's calls by their own names and statuses
            st, _, metrics = kv.http("GET", "/metrics")
            eq(st, 200)
            for op, status in (("SecurityDomainTransferKey", 200), ("SecurityDomainUpload", 202),
                               ("SecurityDomainUpload", 400), ("SecurityDomainUploadPending", 200),
                               ("SecurityDomainDownload", 202)):
                line = f'kvmock_requests_total{{operation="{op}",status="{status}"}}'
                check(line in metrics.decode(), line)

            kv.restart()
            eq(domain_of("hsmb"), domain)
            eq(sd_status("hsmb"), UPLOADED)
            eq(sd_status("hsma"), ACTIVE)
            for name in ("hsma", "hsmb"):
                eq(transfer_key(name)[0], state["transfer_keys"][name], name)
            # neither the wrapped key nor the domain is in the log or the audit records
            audit = json.dumps(kv.audit_records())
            with open(kv.log_path, "rb") as f:
                log = f.read().decode(errors="replace")
            doc = json.loads(blob)
            for what, secret in (("the wrapped key", doc["WrappedKey"]["enc_key"]),
                                 ("the domain's JWE", doc["EncData"]["data"][0]["compact_jwe"]),
                                 ("the domain", domain.hex()),
                                 ("the domain", base64.b64encode(domain).decode()),
                                 ("the domain", b64url(domain))):
                check(secret not in log, f"{what} is in the log")
                check(secret not in audit, f"{what} is in the audit records")
            ops = {(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in kv.audit_records() if "/MANAGEDHSMS/HSMB" in r.get("resourceId", "")}
            for op in (("SecurityDomainTransferKey", 200), ("SecurityDomainUpload", 202),
                       ("SecurityDomainUpload", 400), ("SecurityDomainUploadPending", 200)):
                check(op in ops, (op, sorted(ops)))

        @runner.test
        def an_upload_gives_the_hsm_exactly_the_blobs_domain():
            # a domain the test chose, in a blob made with the CLI's code: hsmb's downloads
            # then carry exactly it (and its second upload replaces its first)
            hsmb_cert = x509.load_der_x509_certificate(
                base64.b64decode(state["transfer_keys"]["hsmb"]["x5c"][0]))
            hsma_domain = domain_of("hsma")
            chosen = bytes(SDUtils.get_random(32))
            st, _, body = upload(make_blob(hsmb_cert, [("kvmock-domain", chosen)]), name="hsmb")
            eq(st, 202, body)
            eq(domain_of("hsmb"), chosen)
            eq(sd_status("hsmb"), UPLOADED)
            eq(domain_of("hsma"), hsma_domain)

        runner.run()


if __name__ == "__main__":
    main()
