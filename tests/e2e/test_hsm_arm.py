"""Managed HSMs made, changed, deleted, recovered and purged through Resource Manager, end to
end: raw HTTP, Debian's unmodified azure-mgmt-keyvault 10.1.0 (KeyVaultManagementClient, its
default api-version 2022-07-01), Debian's az 2.45 and, on the new HSMs' data plane,
azure-keyvault-keys and azure-keyvault-administration, with managed identities from
kvmock's token endpoint:

- a PUT makes an HSM in a group it makes too: 200 and the HSM whole (id, name, type,
  location, tags, sku, properties: tenantId, hsmUri, initialAdminObjectIds, networkAcls,
  securityDomainProperties "Active", enableSoftDelete, softDeleteRetentionInDays,
  enablePurgeProtection true when not given, provisioningState "Succeeded", ...; systemData
  by the caller's appid, "ManagedIdentity"); GET (in any case) answers the same; the group's
  and the subscription's lists hold it; a name in capitals is kept in lowercase;
- refused PUTs and PATCHes change nothing (Resource Manager's lists, deleted HSMs and
  vaults, groups, the HSM's local assignments): no location (the vault's 400
  LocationRequired), no properties, no or an empty or a wrong initialAdminObjectIds, a bad
  sku (name, family), enableSoftDelete false, a retention of 6 or 91 or changed, bad names,
  a live vault's name, another group's HSM (409 Conflict), a deleted vault's name (409
  ConflictError), purge protection true -> false, a PATCH of no HSM (404), a recovery of
  none (400 SoftDeletedVaultDoesNotExist);
- the new HSM's data plane at https://NAME.managedhsm.localhost:PORT: the initial
  administrator (an identity of the file, administrator of no HSM of the file) holds
  Managed HSM Administrator at "/" and nothing at the file's HSM; it assigns Managed HSM
  Crypto User at /keys (KeyVaultAccessControlClient) and a custom role; the user makes an
  RSA key with KeyClient (RSA-HSM), wraps and signs;
- PATCH of tags, of purge protection false -> true and of the firewall (networkAcls
  enforced on the HSM's data plane: 403 ForbiddenByFirewall) answered and kept; a PUT
  again replaces the tags and keeps the administrators, ignoring its initialAdminObjectIds;
- DELETE: 200 and no body; then Resource Manager's GET 404 ResourceNotFound, the HSM's
  host 404 as for an unknown HSM, not listed; deletedManagedHSMs lists it (id, name, type,
  properties: mhsmId, location, deletionDate, scheduledPurgeDate = deletion + retention,
  purgeProtectionEnabled, tags, in that order) and GETs it; no vault is there, nor is it in
  deletedVaults; a DELETE again 204; a PUT of the name 409 ConflictError;
  checkMhsmNameAvailability AlreadyExists (and true, AccountNameInvalid);
- createMode "recover": 200 and the HSM as it was; its key, role assignments and custom
  role are back and work (the Crypto User signs and unwraps what it wrapped before);
- purge: 202 and no body, the name free, a new HSM of the name a fresh one (its new
  administrator's assignment alone, no custom role, no key); purge protection on: 405
  MethodNotAllowed and nothing changes; an unknown HSM: 404;
- deleting a resource group soft-deletes its HSMs with its vaults;
- the configuration file's HSM is deleted (location "local" in deletedManagedHSMs), stays
  deleted across a restart (not made again from the file), and recovered answers again
  with its assignments and keys;
- Debian's azure-mgmt-keyvault: begin_create_or_update(...).result(), get,
  list_by_resource_group, begin_update, begin_delete, list_deleted, get_deleted,
  begin_purge_deleted(...).result(), check_mhsm_name_availability;
- Debian's az 2.45: `az keyvault create --hsm-name`, `show --hsm-name`, `delete --hsm-name`,
  `list-deleted --resource-type hsm`, `recover --hsm-name` (az sends createMode "Recover"
  with its model's defaults), `purge --hsm-name` (refused for an HSM with purge protection,
  az's default);
- the audit log names the operations: ManagedHsmPut, ManagedHsmPatch, ManagedHsmDelete,
  ManagedHsmGet, ManagedHsmList, ManagedHsmListDeleted, ManagedHsmGetDeleted,
  ManagedHsmPurge, ManagedHsmCheckName;
- the sweep (kvmock's clock moved past the purge date) purges a deleted HSM, and its local
  role assignments and custom role go with it (the log says so: nothing else shows them)."""
import calendar
import json
import os
import re
import secrets
import shutil
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HSM_ACTION, HSM_AUD, Kvmock, az_hsm_view, Runner,  # noqa: E402
                     b64url, check, eq, hsm_access_denied, parse_args, TENANT, APP)

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.administration import (KeyVaultAccessControlClient, KeyVaultPermission,
                                           KeyVaultRoleScope)
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from azure.mgmt.keyvault import KeyVaultManagementClient
from azure.mgmt.keyvault.models import (CheckMhsmNameAvailabilityParameters, ManagedHsm,
                                        ManagedHsmProperties, ManagedHsmSku)


def ident(name, n):
    return {"name": name, "objectId": f"0a000000-0000-4000-8000-0000000006{n:02x}",
            "clientId": f"0c000000-0000-4000-8000-0000000006{n:02x}"}


ADMIN = ident("arm-admin", 1)      # initialAdminObjectIds of the HSMs made here
USER = ident("arm-user", 2)        # Crypto User at /keys, assigned by ADMIN
CUSTOM = ident("arm-custom", 3)    # holds a custom role of arm-hsm1
OTHER = ident("arm-other", 4)      # the administrator of an HSM made again after a purge
CFG_ADMIN = ident("cfg-admin", 5)  # initialAdminObjectIds of the file's HSM
CFG_USER = ident("cfg-user", 6)    # the file's Crypto User at /keys of the file's HSM
SUB = "00000000-0000-0000-0000-000000000000"
MGMT = "https://management.azure.com"
ARM_API = "api-version=2023-07-01"
RG_API = "api-version=2021-04-01"
DAY = 86400
GROUPS = f"/subscriptions/{SUB}/resourceGroups"
PROVIDER = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault"
SUB_HSMS = f"{PROVIDER}/managedHSMs"
DELETED_HSMS = f"{PROVIDER}/deletedManagedHSMs"
SUB_VAULTS = f"{PROVIDER}/vaults"
DELETED_VAULTS = f"{PROVIDER}/deletedVaults"
CHECK_NAME = f"{PROVIDER}/checkMhsmNameAvailability"
RG = "hsm-rg"  # the group the HSMs are made in (it does not exist before)
RA = "/providers/Microsoft.Authorization/roleAssignments"
RD = "/providers/Microsoft.Authorization/roleDefinitions"
DEF_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
ACTION = HSM_ACTION
ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4"
CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b"
BUILT_IN = 8  # Managed HSM's built-in local roles
STD_SKU = {"family": "B", "name": "Standard_B1"}
OPEN_ACLS = {"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [],
             "virtualNetworkRules": []}

CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, ADMIN, USER, CUSTOM, OTHER, CFG_ADMIN, CFG_USER],
    "vaults": [{"name": "armvault"}],
    "managedHsms": [
        {"name": "cfghsm", "properties": {"initialAdminObjectIds": [CFG_ADMIN["objectId"]]}},
    ],
    "roleAssignments": [
        {"principalId": CFG_USER["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
         "scope": "/managedHSMs/cfghsm/keys"},
    ],
}



def iso(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port

        def tok(who, resource=HSM_AUD):
            return kv.token(resource, client_id=who["clientId"])

        def host(name):
            return f"{name}.managedhsm.localhost:{P}"

        def hsm_url(name):
            return f"https://{host(name)}"

        def hsm(method, path, body=None, who=ADMIN, name="arm-hsm1"):
            """A data plane call on HSM @name as @who: (status, headers, parsed body or None)."""
            return kv.hsm_call(method, path, body, name=name, client_id=who["clientId"])

        def denied(got, action, scope="/keys", what=""):
            hsm_access_denied(got, action, scope, what)

        def gone_host(name):
            """HSM @name's host answers as an unknown HSM's does."""
            st, _, body = hsm("GET", "/keys", who=USER, name=name)
            eq((st, body), (404, {"error": {"code": "VaultNotFound",
                                            "message": f"Vault not found: {host(name)}"}}), name)
            st, _, unknown = hsm("GET", "/keys", who=USER, name="neverhsm")
            eq(unknown["error"]["code"], body["error"]["code"])

        def triples(values):
            return sorted((a["properties"]["principalId"],
                           a["properties"]["roleDefinitionId"][len(DEF_PREFIX):],
                           a["properties"]["scope"]) for a in values)

        def assignments(name="arm-hsm1", who=ADMIN):
            st, _, body = hsm("GET", RA, who=who, name=name)
            eq(st, 200, (name, body))
            return sorted(body["value"], key=lambda a: a["name"])

        def definitions(name="arm-hsm1", who=ADMIN):
            st, _, body = hsm("GET", RD, who=who, name=name)
            eq(st, 200, (name, body))
            return body["value"]

        def mi(who):
            return ManagedIdentityCredential(client_id=who["clientId"])

        def keys(who, name="arm-hsm1"):
            return KeyClient(hsm_url(name), mi(who))

        def access(who=ADMIN, name="arm-hsm1"):
            return KeyVaultAccessControlClient(hsm_url(name), mi(who))

        # ---- Resource Manager ------------------------------------------------------------------

        def arm(method, path, body=None, who=APP, api=ARM_API, raw=False):
            """A Resource Manager call as @who: (status, parsed body or None); raw=True:
            (status, headers, body bytes)."""
            sep = "&" if "?" in path else "?"
            st, hdrs, resp = kv.https(method, f"{path}{sep}{api}", body, token=tok(who, MGMT))
            if raw:
                return st, hdrs, resp
            return st, (json.loads(resp) if resp else None)

        def hsm_path(name, group=RG):
            return f"{GROUPS}/{group}/providers/Microsoft.KeyVault/managedHSMs/{name}"

        def deleted_path(name, location="westeurope"):
            return f"{PROVIDER}/locations/{location}/deletedManagedHSMs/{name}"

        def new_body(admins=(ADMIN["objectId"],), location="westeurope", tags=None, sku=None,
                     **props):
            """A PUT's body: a new HSM of @admins, retention 7 unless @props say otherwise."""
            properties = {"tenantId": TENANT, "initialAdminObjectIds": list(admins),
                          "softDeleteRetentionInDays": 7}
            properties.update(props)
            body = {"location": location, "properties": properties}
            if tags is not None:
                body["tags"] = tags
            if sku is not None:
                body["sku"] = sku
            return body

        def put_hsm(name, group=RG, **kw):
            st, made = arm("PUT", hsm_path(name, group), new_body(**kw))
            eq(st, 200, (name, made))
            return made

        def hsm_json(name, system_data, group=RG, location="westeurope", tags=None,
                     admins=(ADMIN["objectId"],), days=7, purge_protection=True, sku=STD_SKU,
                     acls=OPEN_ACLS, public="Enabled"):
            """An HSM as Resource Manager answers it (test_managed_hsm.py's shape)."""
            return {"id": hsm_path(name, group), "name": name,
                    "type": "Microsoft.KeyVault/managedHSMs", "location": location,
                    "tags": tags or {}, "sku": sku,
                    "properties": {
                        "tenantId": TENANT, "hsmUri": f"{hsm_url(name)}/",
                        "initialAdminObjectIds": list(admins),
                        "networkAcls": acls,
                        "securityDomainProperties": {
                            "activationStatus": "Active",
                            "activationStatusMessage": "Your HSM has been activated and can be "
                                                       "used for cryptographic operations."},
                        "enableSoftDelete": True, "softDeleteRetentionInDays": days,
                        "enablePurgeProtection": purge_protection,
                        "provisioningState": "Succeeded",
                        "statusMessage": "The Managed HSM is provisioned and ready to use.",
                        "publicNetworkAccess": public, "regions": []},
                    "systemData": system_data}

        def by_caller(created, modified=None, who=APP):
            """systemData of an HSM made (at @created) and last changed (at @modified) by
            managed identity @who."""
            return {"createdAt": created, "createdBy": who["clientId"],
                    "createdByType": "ManagedIdentity",
                    "lastModifiedAt": modified or created, "lastModifiedBy": who["clientId"],
                    "lastModifiedByType": "ManagedIdentity"}

        def arm_not_found(name, group=RG):
            return (404, {"error": {"code": "ResourceNotFound", "message":
                                    f"The Resource 'Microsoft.KeyVault/managedHSMs/{name}' under "
                                    f"resource group '{group}' was not found."}})

        def exactly(got, want, what=""):
            """@got is @want, members in the same order."""
            eq(json.dumps(got), json.dumps(want), what)

        def deleted_json(name, mhsm_id, location, deleted_at, days, purge_protection, tags):
            return {"id": deleted_path(name, location), "name": name,
                    "type": "Microsoft.KeyVault/deletedManagedHSMs",
                    "properties": {"mhsmId": mhsm_id, "location": location,
                                   "deletionDate": deleted_at,
                                   "scheduledPurgeDate": time.strftime(
                                       "%Y-%m-%dT%H:%M:%SZ",
                                       time.gmtime(iso(deleted_at) + days * DAY)),
                                   "purgeProtectionEnabled": purge_protection, "tags": tags}}

        def deleted_list():
            st, body = arm("GET", DELETED_HSMS)
            eq(st, 200, body)
            eq(list(body), ["value"], body)
            return body["value"]

        def deleted_names():
            return sorted(d["name"] for d in deleted_list())

        def listed_names(path=SUB_HSMS):
            st, body = arm("GET", path)
            eq(st, 200, body)
            return sorted(h["name"] for h in body["value"])

        def check_name(name):
            st, body = arm("POST", CHECK_NAME, {"name": name})
            eq(st, 200, (name, body))
            return body

        def taken(name, reason="AlreadyExists"):
            body = check_name(name)
            eq((list(body), body["nameAvailable"], body["reason"]),
               (["nameAvailable", "reason", "message"], False, reason), (name, body))
            check(isinstance(body["message"], str) and body["message"], body)

        def error_of(got, status, code, what=""):
            """A Resource Manager refusal: @status, {"error": {"code": @code, "message"}}."""
            st, body = got
            eq(st, status, (what, body))
            eq((list(body), list(body["error"]), body["error"]["code"]),
               (["error"], ["code", "message"], code), (what, body))
            check(isinstance(body["error"]["message"], str) and body["error"]["message"],
                  (what, body))
            return body["error"]["message"]

        def state():
            """What a refused write could have changed: Resource Manager's HSMs, vaults,
            deleted ones and groups, and arm-hsm1's local assignments."""
            return (arm("GET", SUB_HSMS), arm("GET", DELETED_HSMS), arm("GET", SUB_VAULTS),
                    arm("GET", DELETED_VAULTS), arm("GET", GROUPS, api=RG_API),
                    assignments())

        def management(who=APP):
            """Debian's azure-mgmt-keyvault (api-version 2022-07-01) as @who."""
            return KeyVaultManagementClient(mi(who), SUB, base_url=f"https://localhost:{P}",
                                            credential_scopes=[f"{MGMT}/.default"])

        saved = {}  # what later tests need of earlier ones

        # ---- 1. a PUT makes an HSM -------------------------------------------------------------

        @runner.test
        def a_put_makes_an_hsm_and_answers_it_whole():
            eq(arm("GET", f"{GROUPS}/{RG}", api=RG_API)[0], 404)
            before = kv.advance_clock(0)
            st, made = arm("PUT", hsm_path("arm-hsm1"), new_body(
                tags={"env": "ci", "team": "payments"}, sku=STD_SKU))
            eq(st, 200, made)
            after = kv.advance_clock(0)
            created = made["systemData"]["createdAt"]
            check(before <= iso(created) <= after, made["systemData"])
            want = hsm_json("arm-hsm1", by_caller(created), tags={"env": "ci", "team": "payments"})
            eq(made, want)
            saved["hsm1"] = made
            # GET answers the same, by any case of its name and group
            for name, group in (("arm-hsm1", RG), ("ARM-HSM1", RG.upper())):
                eq(arm("GET", hsm_path(name, group)), (200, want), name)
            # the group was made, where the HSM is
            st, group = arm("GET", f"{GROUPS}/{RG}", api=RG_API)
            eq((st, group["name"], group["location"]), (200, RG, "westeurope"), group)
            # the group's list and the subscription's hold it (and the file's HSM)
            eq(arm("GET", f"{GROUPS}/{RG}/providers/Microsoft.KeyVault/managedHSMs"),
               (200, {"value": [want]}))
            st, listed = arm("GET", SUB_HSMS)
            eq(st, 200, listed)
            eq(sorted(h["name"] for h in listed["value"]), ["arm-hsm1", "cfghsm"])
            eq([h for h in listed["value"] if h["name"] == "arm-hsm1"], [want])
            # no vault of that name; the name is taken
            eq(arm("GET", f"{GROUPS}/{RG}/providers/Microsoft.KeyVault/vaults/arm-hsm1")[0], 404)
            taken("arm-hsm1")
            # no sku given: Standard_B1; another sku is echoed; a name in capitals is lowercase
            st, other = arm("PUT", hsm_path("Arm-Sku-C"), new_body(
                sku={"family": "C", "name": "Custom_C42"}, enablePurgeProtection=False))
            eq(st, 200, other)
            eq(other, hsm_json("arm-sku-c", other["systemData"], purge_protection=False,
                               sku={"family": "C", "name": "Custom_C42"}))
            st, plain = arm("PUT", hsm_path("arm-sku-b"), {"location": "westeurope", "properties": {
                "initialAdminObjectIds": [ADMIN["objectId"]], "enablePurgeProtection": False}})
            eq(st, 200, plain)
            eq(plain, hsm_json("arm-sku-b", plain["systemData"], purge_protection=False, days=90))
            for name in ("arm-sku-c", "arm-sku-b"):
                eq(arm("DELETE", hsm_path(name), raw=True)[::2], (200, b""), name)
                eq(arm("POST", f"{deleted_path(name)}/purge", raw=True)[::2], (202, b""), name)
            eq(check_name("arm-sku-c"), {"nameAvailable": True})

        # ---- 2. refused writes change nothing --------------------------------------------------

        @runner.test
        def refused_writes_change_nothing():
            # a vault made and deleted: its name is held
            vault = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "softDeleteRetentionInDays": 7}}
            vpath = f"{GROUPS}/{RG}/providers/Microsoft.KeyVault/vaults/gonevault"
            eq(arm("PUT", vpath, vault)[0], 201)
            eq(arm("DELETE", vpath)[0], 200)
            before = state()
            current = arm("GET", hsm_path("arm-hsm1"))

            def refused(method, path, body, status, code, what, message=None):
                got = arm(method, path, body)
                text = error_of(got, status, code, what)
                if message is not None:
                    check(message in text, (what, text))
                eq(state(), before, f"{what} changed something")
                return got

            new = hsm_path("arm-new")
            # the vault's answer to no location
            no_loc = arm("PUT", f"{GROUPS}/{RG}/providers/Microsoft.KeyVault/vaults/noloc",
                         {"properties": vault["properties"]})
            error_of(no_loc, 400, "LocationRequired", "a vault without location")
            body = new_body()
            del body["location"]
            eq(arm("PUT", new, body), no_loc, "no location")
            eq(state(), before)
            refused("PUT", new, {"location": "westeurope"}, 400, "BadRequest", "no properties")
            refused("PUT", new, {"location": "westeurope", "properties": "x"}, 400, "BadRequest",
                    "properties a string")
            body = new_body()
            del body["properties"]["initialAdminObjectIds"]
            refused("PUT", new, body, 400, "BadRequest", "no initialAdminObjectIds")
            for admins in ([], "0a000000-0000-4000-8000-000000000601", [1], [None]):
                body = new_body()
                body["properties"]["initialAdminObjectIds"] = admins
                refused("PUT", new, body, 400, "BadRequest", f"initialAdminObjectIds {admins!r}")
            for sku in ({"family": "B", "name": "Premium"}, {"name": "standard"},
                        {"family": "C", "name": "Standard_B1"},
                        {"family": "B", "name": "Custom_C42"},
                        {"family": "A", "name": "Custom_B32"}, "Standard_B1"):
                refused("PUT", new, new_body(sku=sku), 400, "BadRequest", f"sku {sku!r}")
            refused("PUT", new, new_body(enableSoftDelete=False), 400, "BadRequest",
                    "enableSoftDelete false")
            for days in (6, 91, 0, "7"):
                refused("PUT", new, new_body(softDeleteRetentionInDays=days), 400, "BadRequest",
                        f"retention {days!r}")
            for name in ("ab", "5hsm", "hsm-", "-hsm", "my--hsm", "bad_name", "x" * 25):
                refused("PUT", hsm_path(name), new_body(), 400, "BadRequest", f"name {name}")
                eq(arm("GET", hsm_path(name))[0], 404, name)
            # a live vault's name (the file's, in its group or another), another group's HSM
            for group, name in (("kvmock", "armvault"), (RG, "armvault"), ("other-rg", "arm-hsm1"),
                                (RG, "cfghsm"), ("other-rg", "ARM-HSM1")):
                refused("PUT", hsm_path(name, group), new_body(), 409, "Conflict",
                        f"{group}/{name}")
            # a deleted vault's name
            refused("PUT", hsm_path("gonevault"), new_body(), 409, "ConflictError",
                    "a deleted vault's name", "already exists in deleted state")
            # purge protection once on stays on; the retention stays
            hsm1 = hsm_path("arm-hsm1")
            refused("PUT", hsm1, new_body(enablePurgeProtection=False), 400, "BadRequest",
                    "PUT purge protection off")
            refused("PATCH", hsm1, {"properties": {"enablePurgeProtection": False}}, 400,
                    "BadRequest", "PATCH purge protection off")
            refused("PUT", hsm1, new_body(softDeleteRetentionInDays=30), 400, "BadRequest",
                    "retention changed")
            # a PATCH of no HSM: none of that name, none in that group
            for group, name in ((RG, "arm-new"), ("other-rg", "arm-hsm1"), ("kvmock", "armvault")):
                refused("PATCH", hsm_path(name, group), {"tags": {"a": "b"}}, 404,
                        "ResourceNotFound", f"PATCH {group}/{name}")
            # a recovery of none
            refused("PUT", new, {"location": "westeurope",
                                 "properties": {"createMode": "recover"}},
                    400, "SoftDeletedVaultDoesNotExist", "recover of none")
            eq(arm("GET", hsm1), current)
            eq(arm("GET", new), arm_not_found("arm-new"))
            eq(arm("GET", f"{GROUPS}/other-rg", api=RG_API)[0], 404)

        # ---- 3. the new HSM's data plane -------------------------------------------------------

        @runner.test
        def the_initial_administrator_runs_the_new_hsm():
            values = assignments()
            eq(triples(values), [(ADMIN["objectId"], ADMINISTRATOR, "/")])
            eq(len(definitions()), BUILT_IN)
            # administrator of the new HSM only: not of the file's
            denied(hsm("GET", RA, name="cfghsm"), "roleAssignments/read/action", "/",
                   "the new HSM's administrator at the file's HSM")
            # it manages assignments, not keys
            denied(hsm("POST", "/keys/nope/create", {"kty": "RSA"}), "keys/create",
                   what="the administrator makes a key")
            acc = access()
            ra = acc.create_role_assignment(KeyVaultRoleScope.KEYS, DEF_PREFIX + CRYPTO_USER,
                                            USER["objectId"])
            eq((ra.properties.principal_id, ra.properties.scope), (USER["objectId"], "/keys"))
            # a custom role: reading keys alone, held by CUSTOM at /keys
            role = acc.set_role_definition(KeyVaultRoleScope.GLOBAL, role_name="Key reader",
                                           permissions=[KeyVaultPermission(
                                               data_actions=[ACTION + "keys/read/action"])])
            acc.create_role_assignment(KeyVaultRoleScope.KEYS, role.id, CUSTOM["objectId"])
            # the user makes a key with the SDK: an RSA request makes RSA-HSM
            made = keys(USER).create_rsa_key("k1", size=2048)
            eq((made.key_type, made.id.startswith(f"{hsm_url('arm-hsm1')}/keys/k1/")),
               ("RSA-HSM", True), made.id)
            dek = secrets.token_bytes(32)
            st, _, wrapped = hsm("POST", "/keys/k1//wrapkey",
                                 {"alg": "RSA-OAEP-256", "value": b64url(dek)}, who=USER)
            eq(st, 200, wrapped)
            digest = secrets.token_bytes(32)
            signed = CryptographyClient(made.id, mi(USER)).sign(SignatureAlgorithm.rs256, digest)
            eq(len(signed.signature), 256)
            eq(keys(CUSTOM).get_key("k1").id, made.id)
            denied(hsm("POST", "/keys/k2/create", {"kty": "RSA"}, who=CUSTOM), "keys/create",
                   what="the custom role makes a key")
            saved.update(key=made, dek=dek, wrapped=wrapped["value"], role=role.name,
                         assignments=assignments(), definitions=definitions())
            eq(len(saved["assignments"]), 3)
            eq(len(saved["definitions"]), BUILT_IN + 1)

        # ---- 4. PATCH and PUT again ------------------------------------------------------------

        @runner.test
        def patch_and_put_again_change_what_they_name():
            path = hsm_path("arm-hsm1")
            st, got = arm("GET", path)
            eq(st, 200, got)
            kv.advance_clock(60)
            st, patched = arm("PATCH", path, {"tags": {"team": "ledger"}})
            eq(st, 200, patched)
            sd = patched["systemData"]
            check(iso(sd["lastModifiedAt"]) >= iso(got["systemData"]["createdAt"]) + 60, sd)
            want = dict(got, tags={"team": "ledger"},
                        systemData=by_caller(got["systemData"]["createdAt"], sd["lastModifiedAt"]))
            eq(patched, want)
            eq(arm("GET", path), (200, want))
            # purge protection off -> on, on an HSM made without it
            made = put_hsm("arm-hsm3", enablePurgeProtection=False)
            eq(made["properties"]["enablePurgeProtection"], False)
            st, on = arm("PATCH", hsm_path("arm-hsm3"),
                         {"properties": {"enablePurgeProtection": True}})
            eq(st, 200, on)
            eq(on["properties"], dict(made["properties"], enablePurgeProtection=True))
            eq((on["tags"], on["name"], on["location"]), ({}, "arm-hsm3", "westeurope"))
            eq(arm("GET", hsm_path("arm-hsm3")), (200, on))
            # the firewall: networkAcls and publicNetworkAccess kept and enforced on the HSM's
            # data plane, with the vault's refusals
            caller = (f"Caller: appid={USER['clientId']};oid={USER['objectId']};"
                      f"iss=https://sts.windows.net/{TENANT}/\r\n"
                      "Vault: arm-hsm1;location=westeurope")
            deny = {"bypass": "None", "defaultAction": "Deny",
                    "ipRules": [{"value": "198.51.100.0/24"}], "virtualNetworkRules": []}
            st, walled = arm("PATCH", path, {"properties": {"networkAcls": deny}})
            eq((st, walled["properties"]["networkAcls"], walled["tags"]),
               (200, deny, {"team": "ledger"}), walled)
            eq(arm("GET", path), (200, walled))
            st, _, err = hsm("GET", "/keys/k1", who=USER)
            eq((st, err), (403, {"error": {
                "code": "Forbidden",
                "message": "Client address is not authorized and caller is not a trusted "
                           f"service.\r\nClient address: 127.0.0.1\r\n{caller}",
                "innererror": {"code": "ForbiddenByFirewall"}}}))
            loopback = dict(deny, ipRules=[{"value": "127.0.0.0/8"}])
            st, off = arm("PATCH", path, {"properties": {"networkAcls": loopback,
                                                         "publicNetworkAccess": "Disabled"}})
            eq((st, off["properties"]["publicNetworkAccess"], off["properties"]["networkAcls"]),
               (200, "Disabled", loopback), off)
            st, _, err = hsm("GET", "/keys/k1", who=USER)
            eq((st, err), (403, {"error": {
                "code": "Forbidden",
                "message": "Public network access is disabled and request is not from a trusted "
                           f"service nor via an approved private link.\r\n{caller}",
                "innererror": {"code": "ForbiddenByConnection"}}}))
            # enabled again: the rules kept let loopback in
            st, on_again = arm("PATCH", path, {"properties": {"publicNetworkAccess": "Enabled"}})
            eq((st, on_again["properties"]["networkAcls"]), (200, loopback), on_again)
            eq(hsm("GET", "/keys/k1", who=USER)[0], 200)
            st, opened = arm("PATCH", path, {"properties": {"networkAcls": OPEN_ACLS}})
            eq((st, opened["properties"]["networkAcls"],
                opened["properties"]["publicNetworkAccess"]), (200, OPEN_ACLS, "Enabled"), opened)
            eq(hsm("GET", "/keys/k1", who=USER)[0], 200)
            # a PUT again: its tags replace the HSM's (none here), its initialAdminObjectIds are
            # ignored: the administrators are the HSM's local assignments
            st, again = arm("PUT", path, new_body(admins=[OTHER["objectId"]]))
            eq(st, 200, again)
            eq(again, dict(opened, tags={}, systemData=again["systemData"]))
            eq(again["properties"]["initialAdminObjectIds"], [ADMIN["objectId"]])
            eq(again["systemData"]["createdAt"], got["systemData"]["createdAt"])
            eq(arm("GET", path), (200, again))
            eq(assignments(), saved["assignments"])
            eq(hsm("GET", RA, who=OTHER)[0], 403)
            saved["hsm1"] = again

        # ---- 5. DELETE -------------------------------------------------------------------------

        @runner.test
        def delete_soft_deletes_the_hsm():
            path = hsm_path("arm-hsm1")
            st, tagged = arm("PATCH", path, {"tags": {"kept": "deleted"}})
            eq(st, 200, tagged)
            saved["hsm1"] = tagged
            before = kv.advance_clock(0)
            st, hdrs, body = arm("DELETE", path, raw=True)
            eq((st, body), (200, b""))
            after = kv.advance_clock(0)
            eq(arm("GET", path), arm_not_found("arm-hsm1"))
            gone_host("arm-hsm1")
            check("arm-hsm1" not in listed_names(), "listed")
            check("arm-hsm1" not in listed_names(
                f"{GROUPS}/{RG}/providers/Microsoft.KeyVault/managedHSMs"), "listed in its group")
            items = [d for d in deleted_list() if d["name"] == "arm-hsm1"]
            eq(len(items), 1, items)
            item = items[0]
            deleted_at = item["properties"]["deletionDate"]
            check(before <= iso(deleted_at) <= after, item)
            exactly(item, deleted_json("arm-hsm1", path, "westeurope", deleted_at, 7, True,
                                       {"kept": "deleted"}))
            st, one = arm("GET", deleted_path("arm-hsm1"))
            eq(st, 200, one)
            exactly(one, item)
            error_of(arm("GET", deleted_path("neverhsm")), 404, "ResourceNotFound", "unknown")
            # no vault: deletedVaults does not list it
            st, dv = arm("GET", DELETED_VAULTS)
            eq(st, 200, dv)
            check("arm-hsm1" not in [v["name"] for v in dv["value"]], dv)
            error_of(arm("GET", f"{PROVIDER}/locations/westeurope/deletedVaults/arm-hsm1"), 404,
                     "ResourceNotFound", "a deleted vault of the name")
            # a DELETE again: none there
            eq(arm("DELETE", path, raw=True)[::2], (204, b""))
            # the name is held
            error_of(arm("PUT", path, new_body()), 409, "ConflictError", "a PUT of the name")
            check("already exists in deleted state" in arm("PUT", path, new_body())[1]["error"]
                  ["message"])
            error_of(arm("PUT", hsm_path("arm-hsm1", "other-rg"), new_body()), 409,
                     "ConflictError", "a PUT of the name in another group")
            taken("arm-hsm1")
            exactly(arm("GET", deleted_path("arm-hsm1"))[1], item)
            # a deleted vault is not a deleted HSM
            check("gonevault" not in deleted_names(), "a deleted vault in deletedManagedHSMs")
            error_of(arm("GET", deleted_path("gonevault")), 404, "ResourceNotFound",
                     "a deleted vault as a deleted HSM")
            # the refused PUT in another group made no group
            eq(arm("GET", f"{GROUPS}/other-rg", api=RG_API)[0], 404,
               "a PUT refused with 409 ConflictError made its resource group")

        @runner.test
        def check_mhsm_name_availability():
            eq(check_name("free-name-1"), {"nameAvailable": True})
            for name in ("cfghsm", "CFGHSM", "armvault", "arm-hsm3", "gonevault"):
                taken(name)
            for name in ("ab", "a--b", "bad_name", "5hsm", "x" * 25):
                taken(name, "AccountNameInvalid")
            error_of(arm("POST", CHECK_NAME, {}), 400, "BadRequest", "no name")

        # ---- 6. recover ------------------------------------------------------------------------

        @runner.test
        def recover_brings_the_hsm_back_with_its_keys_and_roles():
            path = hsm_path("arm-hsm1")
            st, back = arm("PUT", path, {"location": "westeurope",
                                         "properties": {"createMode": "recover"}})
            eq(st, 200, back)
            eq(back, saved["hsm1"])
            eq(arm("GET", path), (200, back))
            check("arm-hsm1" not in deleted_names(), "still deleted")
            error_of(arm("GET", deleted_path("arm-hsm1")), 404, "ResourceNotFound",
                     "the deleted one")
            # its local access control as it was: assignments and the custom role
            eq(assignments(), saved["assignments"])
            eq(definitions(), saved["definitions"])
            # its key: the user unwraps what it wrapped before the delete, and signs
            key = saved["key"]
            again = keys(USER).get_key("k1")
            eq((again.id, again.key.n), (key.id, key.key.n))
            st, _, out = hsm("POST", "/keys/k1//unwrapkey",
                             {"alg": "RSA-OAEP-256", "value": saved["wrapped"]}, who=USER)
            eq((st, out.get("value")), (200, b64url(saved["dek"])), out)
            crypto = CryptographyClient(key.id, mi(USER))
            digest = secrets.token_bytes(32)
            signed = crypto.sign(SignatureAlgorithm.rs256, digest)
            check(crypto.verify(SignatureAlgorithm.rs256, digest, signed.signature).is_valid)
            # the custom role's holder reads, and only reads
            eq(keys(CUSTOM).get_key("k1").id, key.id)
            denied(hsm("DELETE", "/keys/k1", who=CUSTOM), "keys/delete",
                   what="the custom role after the recovery")

        # ---- 7. purge --------------------------------------------------------------------------

        @runner.test
        def purge_frees_the_name_and_a_new_hsm_starts_empty():
            path = hsm_path("arm-hsm2")
            put_hsm("arm-hsm2", enablePurgeProtection=False, tags={"x": "y"})
            eq(hsm("PUT", f"/keys{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": DEF_PREFIX + CRYPTO_USER, "principalId": USER["objectId"]}},
                name="arm-hsm2")[0], 201)
            eq(hsm("PUT", f"{RD}/{uuid.uuid4()}", {"properties": {"roleName": "Gone"}},
                   name="arm-hsm2")[0], 201)
            eq(hsm("POST", "/keys/gone/create", {"kty": "EC"}, who=USER, name="arm-hsm2")[0], 200)
            eq(arm("DELETE", path, raw=True)[::2], (200, b""))
            item = arm("GET", deleted_path("arm-hsm2"))[1]
            eq((item["properties"]["purgeProtectionEnabled"], item["properties"]["tags"]),
               (False, {"x": "y"}), item)
            st, hdrs, body = arm("POST", f"{deleted_path('arm-hsm2')}/purge", raw=True)
            eq((st, body), (202, b""))
            check("arm-hsm2" not in deleted_names(), "listed after the purge")
            error_of(arm("GET", deleted_path("arm-hsm2")), 404, "ResourceNotFound",
                     "GET after the purge")
            error_of(arm("POST", f"{deleted_path('arm-hsm2')}/purge"), 404, "ResourceNotFound",
                     "a purge again")
            error_of(arm("PUT", path, {"location": "westeurope",
                                       "properties": {"createMode": "recover"}}),
                     400, "SoftDeletedVaultDoesNotExist", "recover after the purge")
            eq(arm("GET", path), arm_not_found("arm-hsm2"))
            gone_host("arm-hsm2")
            eq(check_name("arm-hsm2"), {"nameAvailable": True})
            # made again, by another administrator: nothing of the old one
            again = put_hsm("arm-hsm2", admins=[OTHER["objectId"]])
            eq(again, hsm_json("arm-hsm2", again["systemData"], admins=[OTHER["objectId"]]))
            eq(triples(assignments("arm-hsm2", who=OTHER)),
               [(OTHER["objectId"], ADMINISTRATOR, "/")])
            eq(len(definitions("arm-hsm2", who=OTHER)), BUILT_IN)
            eq(hsm("GET", RA, name="arm-hsm2")[0], 403)  # the old administrator
            denied(hsm("GET", "/keys/gone", who=USER, name="arm-hsm2"), "keys/read/action",
                   what="the old user")
            eq(hsm("PUT", f"/keys{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": DEF_PREFIX + CRYPTO_USER, "principalId": OTHER["objectId"]}},
                who=OTHER, name="arm-hsm2")[0], 201)
            eq(list(keys(OTHER, "arm-hsm2").list_properties_of_keys()), [])
            st, _, err = hsm("GET", "/keys/gone", who=OTHER, name="arm-hsm2")
            eq((st, err["error"]["code"]), (404, "KeyNotFound"), err)

        @runner.test
        def purge_protection_refuses_the_purge():
            eq(arm("DELETE", hsm_path("arm-hsm3"), raw=True)[::2], (200, b""))
            before = (arm("GET", DELETED_HSMS), arm("GET", SUB_HSMS))
            item = arm("GET", deleted_path("arm-hsm3"))[1]
            eq(item["properties"]["purgeProtectionEnabled"], True, item)
            error_of(arm("POST", f"{deleted_path('arm-hsm3')}/purge"), 405, "MethodNotAllowed",
                     "purge under purge protection")
            eq((arm("GET", DELETED_HSMS), arm("GET", SUB_HSMS)), before)
            exactly(arm("GET", deleted_path("arm-hsm3"))[1], item)
            taken("arm-hsm3")
            error_of(arm("POST", f"{deleted_path('neverhsm')}/purge"), 404, "ResourceNotFound",
                     "purge of an unknown HSM")
            eq(arm("GET", DELETED_HSMS), before[0])

        # ---- 8. a resource group's deletion ----------------------------------------------------

        @runner.test
        def deleting_a_group_soft_deletes_its_hsms():
            made = put_hsm("Doomed-HSM", group="doomed-rg")
            eq((made["name"], made["id"]), ("doomed-hsm", hsm_path("doomed-hsm", "doomed-rg")))
            vpath = f"{GROUPS}/doomed-rg/providers/Microsoft.KeyVault/vaults/doomedvault"
            eq(arm("PUT", vpath, {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}})[0], 201)
            eq(arm("DELETE", f"{GROUPS}/doomed-rg", api=RG_API)[0], 200)
            eq(arm("GET", f"{GROUPS}/doomed-rg", api=RG_API)[0], 404)
            eq(arm("GET", hsm_path("doomed-hsm", "doomed-rg"))[0], 404)
            gone_host("doomed-hsm")
            st, item = arm("GET", deleted_path("doomed-hsm"))
            eq((st, item["properties"]["mhsmId"]), (200, hsm_path("doomed-hsm", "doomed-rg")),
               item)
            check("doomedvault" in [v["name"] for v in arm("GET", DELETED_VAULTS)[1]["value"]])
            check("doomed-hsm" not in listed_names())

        # ---- 9. the configuration file's HSM ---------------------------------------------------

        @runner.test
        def the_file_s_hsm_stays_deleted_across_a_restart():
            path = hsm_path("cfghsm", "kvmock")
            st, current = arm("GET", path)
            eq(st, 200, current)
            eq(hsm("POST", "/keys/cfgkey/create", {"kty": "RSA"}, who=CFG_USER,
                   name="cfghsm")[0], 200)
            ras = assignments("cfghsm", who=CFG_ADMIN)
            eq(arm("DELETE", path, raw=True)[::2], (200, b""))
            st, item = arm("GET", deleted_path("cfghsm", "local"))
            eq(st, 200, item)
            exactly(item, deleted_json("cfghsm", path, "local",
                                       item["properties"]["deletionDate"], 90, False, {}))
            kv.restart()
            eq(arm("GET", path), arm_not_found("cfghsm", "kvmock"))
            gone_host("cfghsm")
            exactly(arm("GET", deleted_path("cfghsm", "local"))[1], item)
            check("cfghsm" not in listed_names(), "listed after the restart")
            # what the earlier tests left is as it was, the data plane of the HSMs made here too
            eq(arm("GET", hsm_path("arm-hsm1")), (200, saved["hsm1"]))
            eq(assignments(), saved["assignments"])
            eq(definitions(), saved["definitions"])
            eq(keys(USER).get_key("k1").key.n, saved["key"].key.n)
            check("arm-hsm3" in deleted_names())
            st, back = arm("PUT", path, {"location": "local",
                                         "properties": {"createMode": "recover"}})
            eq((st, back), (200, current))
            eq(arm("GET", path), (200, current))
            eq(assignments("cfghsm", who=CFG_ADMIN), ras)
            eq(keys(CFG_USER, "cfghsm").get_key("cfgkey").key_type, "RSA-HSM")
            check("cfghsm" not in deleted_names())

        # ---- 10. Debian's azure-mgmt-keyvault --------------------------------------------------

        @runner.test
        def the_management_sdk_makes_deletes_and_purges_an_hsm():
            km = management()
            check(hasattr(km.managed_hsms, "check_mhsm_name_availability"),
                  dir(km.managed_hsms))
            made = km.managed_hsms.begin_create_or_update("sdk-rg", "sdk-hsm", ManagedHsm(
                location="westeurope", tags={"by": "sdk"},
                sku=ManagedHsmSku(family="B", name="Standard_B1"),
                properties=ManagedHsmProperties(
                    tenant_id=TENANT, initial_admin_object_ids=[ADMIN["objectId"]],
                    soft_delete_retention_in_days=7, enable_purge_protection=False))).result()
            raw = arm("GET", hsm_path("sdk-hsm", "sdk-rg"))[1]
            eq(raw, hsm_json("sdk-hsm", raw["systemData"], group="sdk-rg", tags={"by": "sdk"},
                             purge_protection=False))
            eq((made.id, made.name, made.location, made.tags, made.sku.name, made.sku.family),
               (raw["id"], "sdk-hsm", "westeurope", {"by": "sdk"}, "Standard_B1", "B"))
            p = made.properties
            eq((p.hsm_uri, p.initial_admin_object_ids, p.enable_soft_delete,
                p.soft_delete_retention_in_days, p.enable_purge_protection,
                p.provisioning_state, p.tenant_id),
               (f"{hsm_url('sdk-hsm')}/", [ADMIN["objectId"]], True, 7, False, "Succeeded",
                TENANT))
            eq(made.system_data.created_by, APP["clientId"])
            eq(km.managed_hsms.get("sdk-rg", "sdk-hsm").serialize(keep_readonly=True),
               made.serialize(keep_readonly=True))
            eq([h.name for h in km.managed_hsms.list_by_resource_group("sdk-rg")], ["sdk-hsm"])
            updated = km.managed_hsms.begin_update("sdk-rg", "sdk-hsm", ManagedHsm(
                location="westeurope", tags={"by": "sdk", "step": "update"})).result()
            eq(updated.tags, {"by": "sdk", "step": "update"})
            eq(arm("GET", hsm_path("sdk-hsm", "sdk-rg"))[1]["tags"],
               {"by": "sdk", "step": "update"})
            eq(updated.properties.enable_purge_protection, False)
            eq(km.managed_hsms.check_mhsm_name_availability(
                CheckMhsmNameAvailabilityParameters(name="sdk-hsm")).reason, "AlreadyExists")
            km.managed_hsms.begin_delete("sdk-rg", "sdk-hsm").result()
            try:
                km.managed_hsms.get("sdk-rg", "sdk-hsm")
                raise AssertionError("found after the delete")
            except ResourceNotFoundError as e:
                eq(e.status_code, 404)
            listed = [d for d in km.managed_hsms.list_deleted() if d.name == "sdk-hsm"]
            eq(len(listed), 1, listed)
            one = km.managed_hsms.get_deleted("sdk-hsm", "westeurope")
            eq((one.id, one.type, one.properties.mhsm_id, one.properties.location,
                one.properties.purge_protection_enabled, one.properties.tags),
               (deleted_path("sdk-hsm"), "Microsoft.KeyVault/deletedManagedHSMs",
                hsm_path("sdk-hsm", "sdk-rg"), "westeurope", False,
                {"by": "sdk", "step": "update"}))
            eq((one.properties.scheduled_purge_date - one.properties.deletion_date)
               .total_seconds(), 7 * DAY)
            eq(listed[0].serialize(keep_readonly=True), one.serialize(keep_readonly=True))
            km.managed_hsms.begin_purge_deleted("sdk-hsm", "westeurope").result()
            check("sdk-hsm" not in [d.name for d in km.managed_hsms.list_deleted()])
            free = km.managed_hsms.check_mhsm_name_availability(
                CheckMhsmNameAvailabilityParameters(name="sdk-hsm"))
            eq((free.name_available, free.reason), (True, None))
            try:
                km.managed_hsms.get_deleted("sdk-hsm", "westeurope")
                raise AssertionError("found after the purge")
            except ResourceNotFoundError as e:
                eq((e.status_code, e.error.code), (404, "ResourceNotFound"))

        # ---- 11. Debian's az -------------------------------------------------------------------

        @runner.test
        def az_makes_shows_deletes_recovers_and_purges_hsms():
            check(shutil.which("az") is not None, "az is not installed (scripts/install-deps.sh "
                                                  "--test installs Debian's azure-cli)")
            admin = ADMIN["objectId"]
            commands = [
                ["cloud", "set", "--name", "kvmock"],
                ["login", "--identity"],
                # 2: az's defaults (purge protection on), 3: purge protection off
                ["keyvault", "create", "--hsm-name", "az-hsm1", "-g", "az-rg", "-l", "westeurope",
                 "--administrators", admin, "--retention-days", "7"],
                ["keyvault", "create", "--hsm-name", "az-hsm2", "-g", "az-rg", "-l", "westeurope",
                 "--administrators", admin, "--retention-days", "7",
                 "--enable-purge-protection", "false"],
                ["keyvault", "show", "--hsm-name", "az-hsm1", "-g", "az-rg"],        # 4
                ["keyvault", "delete", "--hsm-name", "az-hsm1", "-g", "az-rg"],      # 5
                ["keyvault", "delete", "--hsm-name", "az-hsm2", "-g", "az-rg"],      # 6
                ["keyvault", "list-deleted", "--resource-type", "hsm"],             # 7
                ["keyvault", "purge", "--hsm-name", "az-hsm1"],                     # 8
                ["keyvault", "recover", "--hsm-name", "az-hsm1"],                   # 9
                ["keyvault", "show", "--hsm-name", "az-hsm1", "-g", "az-rg"],        # 10
                ["keyvault", "purge", "--hsm-name", "az-hsm2"],                     # 11
                ["keyvault", "list-deleted", "--resource-type", "hsm"],             # 12
            ]
            codes, out, stderr = kv.az_in_one_process(commands)
            eq(codes, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], stderr[-4000:])

            def az_view(item):
                return az_hsm_view(item, "az-rg")

            st, hsm1 = arm("GET", hsm_path("az-hsm1", "az-rg"))
            eq(st, 200, hsm1)
            eq(hsm1, hsm_json("az-hsm1", hsm1["systemData"], group="az-rg"))
            eq(az_view(out[2]), dict(hsm1, systemData=az_view(out[2])["systemData"]))
            eq(out[3]["properties"]["enablePurgeProtection"], False)
            eq(az_view(out[4]), hsm1)
            eq((out[5], out[6]), (None, None))
            eq(sorted((d["name"], d["properties"]["purgeProtectionEnabled"]) for d in out[7]
                      if d["name"].startswith("az-")),
               [("az-hsm1", True), ("az-hsm2", False)])
            # purge protection: az reports Resource Manager's 405
            check("MethodNotAllowed" in stderr, stderr[-3000:])
            eq(az_view(out[9]), hsm1)
            eq(az_view(out[10]), hsm1)
            eq(out[11], None)
            eq([d["name"] for d in out[12] if d["name"].startswith("az-")], [])
            eq(check_name("az-hsm2"), {"nameAvailable": True})

        # ---- 12. the audit log -----------------------------------------------------------------

        @runner.test
        def the_audit_log_names_the_operations():
            records = kv.audit_records()

            def ops(path):
                uri = f"https://localhost:{P}{path}"
                return {(r["operationName"], r["properties"]["httpStatusCode"]) for r in records
                        if r["properties"]["requestUri"].split("?")[0] == uri}

            hsm1 = hsm_path("arm-hsm1")
            everything = {(r["operationName"], r["properties"]["httpStatusCode"])
                          for r in records}
            for op in (("ManagedHsmPut", 200), ("ManagedHsmPut", 400), ("ManagedHsmPut", 409),
                       ("ManagedHsmPatch", 200), ("ManagedHsmPatch", 400),
                       ("ManagedHsmPatch", 404),
                       ("ManagedHsmDelete", 200), ("ManagedHsmDelete", 204),
                       ("ManagedHsmGet", 200), ("ManagedHsmGet", 404),
                       ("ManagedHsmList", 200), ("ManagedHsmListDeleted", 200),
                       ("ManagedHsmGetDeleted", 200), ("ManagedHsmGetDeleted", 404),
                       ("ManagedHsmPurge", 202), ("ManagedHsmPurge", 404),
                       ("ManagedHsmPurge", 405), ("ManagedHsmCheckName", 200)):
                check(op in everything, (op, sorted(o for o in everything
                                                    if o[0].startswith("ManagedHsm"))))
            check(("ManagedHsmPut", 200) in ops(hsm1), ops(hsm1))
            eq(ops(f"{deleted_path('arm-hsm2')}/purge"),
               {("ManagedHsmPurge", 202), ("ManagedHsmPurge", 404)})
            eq(ops(f"{deleted_path('arm-hsm3')}/purge"), {("ManagedHsmPurge", 405)})
            eq(ops(DELETED_HSMS), {("ManagedHsmListDeleted", 200)})
            eq(ops(CHECK_NAME), {("ManagedHsmCheckName", 200),
                                         ("ManagedHsmCheckName", 400)})
            # the HSM's records name it
            put = [r for r in records if r["operationName"] == "ManagedHsmPut"
                   and r["properties"]["requestUri"].split("?")[0] ==
                   f"https://localhost:{P}{hsm1}"]
            check(put, "the PUT's records")
            for r in put:
                eq(r["resourceId"], f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/{RG.upper()}/"
                                    "PROVIDERS/MICROSOFT.KEYVAULT/MANAGEDHSMS/ARM-HSM1", r)

        # ---- 13. the sweep --------------------------------------------------------------------
        # (last: the clock's move makes every deleted HSM of the tests above due)

        @runner.test
        def the_sweep_purges_an_hsm_with_its_access_control():
            def swept():
                return [json.loads(line)["msg"] for line in kv.run_log().splitlines()
                        if "access control of" in line]

            kv.advance_clock(7 * 86400 + 1)  # the deleted HSMs of the tests above go first
            before = swept()
            put_hsm("arm-hsm5", enablePurgeProtection=False)
            eq(hsm("PUT", f"/keys{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": DEF_PREFIX + CRYPTO_USER, "principalId": USER["objectId"]}},
                name="arm-hsm5")[0], 201)
            eq(hsm("PUT", f"{RD}/{uuid.uuid4()}", {"properties": {"roleName": "Swept"}},
                   name="arm-hsm5")[0], 201)
            eq(arm("DELETE", hsm_path("arm-hsm5"), raw=True)[::2], (200, b""))
            kv.advance_clock(7 * 86400 + 1)
            error_of(arm("GET", deleted_path("arm-hsm5")), 404, "ResourceNotFound",
                     "GET after its purge date")
            # its assignments and custom role went with it, and the log says so (nothing else
            # shows them once the HSM is gone)
            # (the periodic sweep may have taken a part of it: the lines since are summed)
            cleared = sum(int(re.search(r"access control of (\d+) purged", msg).group(1))
                          for msg in swept()[len(before):])
            eq(cleared, 1, kv.log_tail())

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
