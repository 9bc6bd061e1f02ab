"""Managed HSMs end to end: raw HTTP and Debian's unmodified Python SDKs (azure-keyvault-keys
4.8.0b3 and azure-keyvault-administration 4.3.0b2, api-version 7.4-preview.1, challenge
resource verification on) against NAME.managedhsm.localhost, with managed identities from
kvmock's token endpoint:

- the HSM's 401 challenge names resource "https://managedhsm.localhost:{port}"; a Key Vault
  token is refused by an HSM and an HSM token by a vault;
- a name is a vault or an HSM: the HSM's name at a vault host, a vault's at an HSM host and
  Resource Manager's vault paths for the HSM are all 404;
- the initial administrator (initialAdminObjectIds) manages the local role assignments but
  may not touch a key (403 AccessDenied, Managed HSM's body and action names);
- KeyVaultAccessControlClient lists the 8 built-in local roles and makes, reads, lists and
  deletes assignments; a Crypto User at /keys makes RSA-HSM, EC-HSM and oct-HSM keys with
  KeyClient (asked for RSA, EC, oct), wraps, unwraps, signs, verifies, rotates, backs up and
  restores; once the assignment is deleted it is refused again;
- an assignment at /keys/k1 reaches k1 only; a list at a key shows the HSM-wide assignments
  ("/", "/keys") and that key's, one at "/" or "/keys" every one, and $filter=atScope() keeps
  those at or above the request's scope;
- a Crypto Officer lists, recovers and purges deleted keys but neither makes nor reads keys;
  a Crypto User does not see or purge deleted keys;
- refused assignment PUTs, GETs and DELETEs (400, 409, 404) change nothing; "///providers"
  is the scope "/"; a PUT repeated is 201 again;
- custom role definitions (KeyVaultAccessControlClient set/get/list/delete_role_definition
  and raw HTTP): a role grants the union of its entries' dataActions less their
  notDataActions (`keys/*` less keys/delete: create and wrap, but 403 keys/delete); a PUT
  again (201) replaces it and changes what its assignments grant at once; the answer in full
  with its defaults (assignableScopes ["/"], empty description, roleName and lists);
- refused definition calls (400: a name that is no GUID, a built-in role's GUID on PUT and
  DELETE, another custom role's or a built-in role's roleName, bodies of the wrong shape,
  assignableScopes other than "/" and "/keys", DELETE while assigned; 404 unknown) change
  nothing; a Crypto User reads but may not write or delete them (403), an officer may;
- a custom role is its HSM's: hsm7 neither finds nor assigns hsm1's, and Resource Manager
  neither lists, reads, deletes, replaces nor assigns it, nor is its custom role an HSM's;
- the audit log names the HSM (resourceId .../MANAGEDHSMS/HSM1), RoleDefinitionCreate and
  RoleDefinitionDelete included;
- an HSM kept 7 days answers CustomizedRecoverable+Purgeable, recoverableDays 7;
- Resource Manager reads the HSMs (raw HTTP, Debian's azure-mgmt-keyvault at 2022-07-01 and
  `az keyvault list --resource-type hsm` / `az keyvault show --hsm-name`): both in the group
  kvmock, whole, none in another group, none deleted; 404 ResourceNotFound for another group,
  a vault's name and an unknown one; Resource Manager's vault calls on an HSM's name change
  nothing (its writes of HSMs: test_hsm_arm.py); the vault lists never show an HSM, and
  .../resources shows both as generic resources, filtered by resourceType; an identity
  without `manage` (the HSM's own administrator) is refused as on vaults;
- initialAdminObjectIds are the principals holding Managed HSM Administrator at "/" now: one
  assigned through the HSM's access control API is listed, deleted it is not (the file's
  administrator's too), one at "/keys" or a key is not;
- the HSM, its keys, the API's assignments and custom roles survive a restart, and the
  file's assignments are not made twice;
- configurations kvmock must refuse at start, naming the problem."""
import calendar
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (HSM_ACTION, HSM_AUD, Kvmock, az_hsm_view, Runner,  # noqa: E402
                     b64url, caller_oid, check, eq, hsm_access_denied, parse_args,
                     start_refused, TENANT, APP)

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.administration import (KeyVaultAccessControlClient, KeyVaultDataAction,
                                           KeyVaultPermission, KeyVaultRoleScope)
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import (CryptographyClient, KeyWrapAlgorithm,
                                        SignatureAlgorithm)
from azure.mgmt.keyvault import KeyVaultManagementClient


def ident(name, n):
    return {"name": name, "objectId": f"0a000000-0000-4000-8000-0000000004{n:02x}",
            "clientId": f"0c000000-0000-4000-8000-0000000004{n:02x}"}


ADMIN = ident("hsm-admin", 1)    # initialAdminObjectIds of both HSMs
USER = ident("hsm-user", 2)      # gets (and loses) assignments through the SDK
MAKER = ident("hsm-maker", 3)    # the file's Crypto User at /keys of both HSMs
OFFICER = ident("hsm-officer", 4)  # the file's Crypto Officer at / of hsm1
SCOPED = ident("hsm-scoped", 5)  # a Crypto User of one key
CUSTOM = ident("hsm-custom", 6)  # holds custom roles of hsm1
UNION = ident("hsm-union", 7)    # holds a custom role of several permission entries
SUB = "00000000-0000-0000-0000-000000000000"
MGMT = "https://management.azure.com"
ARM_VAULTS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults"
ARM_API = "api-version=2023-07-01"
AUTHZ = "api-version=2022-04-01"  # Resource Manager's Microsoft.Authorization
# Resource Manager's managed HSMs: those of the configuration file are in the group kvmock
GROUP = f"/subscriptions/{SUB}/resourceGroups"
ARM_HSMS = f"{GROUP}/kvmock/providers/Microsoft.KeyVault/managedHSMs"
SUB_HSMS = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/managedHSMs"
DELETED_HSMS = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/deletedManagedHSMs"
RA = "/providers/Microsoft.Authorization/roleAssignments"
RD = "/providers/Microsoft.Authorization/roleDefinitions"
DEF_PREFIX = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
ACTION = HSM_ACTION

# Managed HSM's built-in local roles, in the order it lists them
ROLES = [
    ("7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8", "Managed HSM Backup User"),
    ("33413926-3206-4cdd-b39a-83574fe37a17", "Managed HSM Crypto Service Encryption User"),
    ("21dbd100-6940-42c2-9190-5d6cb909625c", "Managed HSM Crypto Service Release User"),
    ("2c18b078-7c48-4d3a-af88-5a3a1b3f82b3", "Managed HSM Crypto Auditor"),
    ("4bd23610-cdcf-4971-bdee-bdc562cc28e4", "Managed HSM Policy Administrator"),
    ("21dbd100-6940-42c2-9190-5d6cb909625b", "Managed HSM Crypto User"),
    ("515eb02d-2335-4d2d-92f2-b1cbdf9c3778", "Managed HSM Crypto Officer"),
    ("a290e904-7015-4bba-90c8-60543313cdb4", "Managed HSM Administrator"),
]
ADMINISTRATOR = "a290e904-7015-4bba-90c8-60543313cdb4"
CRYPTO_OFFICER = "515eb02d-2335-4d2d-92f2-b1cbdf9c3778"
CRYPTO_USER = "21dbd100-6940-42c2-9190-5d6cb909625b"
CRYPTO_AUDITOR = "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3"
GUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
KV_CRYPTO_USER = "12338af0-0e69-4776-bea7-57ae8d297424"  # Key Vault's, not an HSM's

CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, ADMIN, USER, MAKER, OFFICER, SCOPED, CUSTOM, UNION],
    "vaults": [{"name": "vault1", "properties": {"accessPolicies": [
        {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]}}],
    "managedHsms": [
        {"name": "hsm1", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]]}},
        {"name": "hsm7", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]],
                                        "softDeleteRetentionInDays": 7,
                                        "enablePurgeProtection": False,
                                        "enableSoftDelete": True}},
    ],
    "roleAssignments": [
        # Resource Manager's form of the scope, the role by name
        {"principalId": MAKER["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
         "scope": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/"
                  "managedHSMs/hsm1/keys"},
        # the short form, the role by its id
        {"principalId": MAKER["objectId"], "roleDefinitionId": DEF_PREFIX + CRYPTO_USER,
         "scope": "/managedHSMs/hsm7/keys"},
        {"principalId": OFFICER["objectId"], "roleDefinitionName": "Managed HSM Crypto Officer",
         "scope": "/managedHSMs/hsm1"},
    ],
}
# what hsm1 holds from the file: (principal, role, scope)
FILE_ASSIGNMENTS = sorted([(ADMIN["objectId"], ADMINISTRATOR, "/"),
                           (MAKER["objectId"], CRYPTO_USER, "/keys"),
                           (OFFICER["objectId"], CRYPTO_OFFICER, "/")])




def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port

        def host(name="hsm1"):
            return f"{name}.managedhsm.localhost:{P}"

        def hsm_url(name="hsm1"):
            return f"https://{host(name)}"

        def tok(who, resource=HSM_AUD):
            return kv.token(resource, client_id=who["clientId"])

        def hsm(method, path, body=None, who=ADMIN, name="hsm1", api="7.4"):
            """A call on HSM @name as @who: (status, headers, parsed body or None)."""
            return kv.hsm_call(method, path, body, name=name, client_id=who["clientId"], api=api)

        def denied(got, action, scope="/keys", what=""):
            hsm_access_denied(got, action, scope, what)

        def sdk_denied(call, action, scope="/keys", what=""):
            """@call, through an SDK, is refused as denied() has it."""
            try:
                call()
            except HttpResponseError as e:
                eq(e.status_code, 403, what)
                denied((403, {k.lower(): v for k, v in e.response.headers.items()},
                        json.loads(e.response.text())), action, scope, what)
                return
            raise AssertionError(f"{what}: not refused")

        def not_found(got, code, message, what=""):
            st, hdrs, body = got
            eq(st, 404, (what, body))
            eq(body, {"error": {"code": code, "message":
                                f"{message} (Activity ID: {hdrs['x-ms-request-id']})"}}, what)

        def ra_json(name, principal, role, scope):
            return {"id": f"{RA}/{name}", "name": name,
                    "properties": {"principalId": principal, "roleDefinitionId": DEF_PREFIX + role,
                                   "scope": scope},
                    "type": "Microsoft.Authorization/roleAssignments"}

        def assignments(name="hsm1", path=RA):
            st, _, body = hsm("GET", path, name=name)
            eq(st, 200, body)
            eq(list(body), ["value"], body)  # no nextLink
            return sorted(body["value"], key=lambda a: a["name"])

        def triples(values):
            return sorted((a["properties"]["principalId"],
                           a["properties"]["roleDefinitionId"][len(DEF_PREFIX):],
                           a["properties"]["scope"]) for a in values)

        def sdk_triples(values):
            """triples() of the SDK's KeyVaultRoleAssignment objects."""
            return sorted((a.properties.principal_id,
                           a.properties.role_definition_id[len(DEF_PREFIX):],
                           a.properties.scope) for a in values)

        def mi(who):
            return ManagedIdentityCredential(client_id=who["clientId"])

        def keys(who, name="hsm1"):
            return KeyClient(hsm_url(name), mi(who))

        def access(who=ADMIN):
            return KeyVaultAccessControlClient(hsm_url(), mi(who))

        def make_key(name, kty="RSA", who=MAKER, hsm_name="hsm1"):
            st, _, body = hsm("POST", f"/keys/{name}/create", {"kty": kty}, who=who, name=hsm_name)
            eq(st, 200, body)
            return body

        # ---- custom role definitions -----------------------------------------------------------

        def perm_json(actions=(), data=(), not_actions=(), not_data=()):
            """One permission entry of a custom role as the HSM answers it: all four lists."""
            return {"actions": list(actions), "dataActions": list(data),
                    "notActions": list(not_actions), "notDataActions": list(not_data)}

        def rd_json(guid, role_name="", description="", permissions=(), scopes=("/",)):
            """A custom role as the HSM answers it (its defaults: no name, no description,
            no permission, assignable at "/")."""
            return {"id": DEF_PREFIX + guid, "name": guid,
                    "properties": {"assignableScopes": list(scopes), "description": description,
                                   "permissions": list(permissions), "roleName": role_name,
                                   "type": "CustomRole"},
                    "type": "Microsoft.Authorization/roleDefinitions"}

        def exactly(got, want, what=""):
            """@got is @want, keys in the same order (the order the HSM writes them in)."""
            eq(json.dumps(got), json.dumps(want), what)

        def definitions(name="hsm1"):
            st, _, body = hsm("GET", RD, name=name)
            eq(st, 200, body)
            eq(list(body), ["value"], body)  # no nextLink
            return body["value"]

        def put_def(guid, body, who=ADMIN, name="hsm1", scope=""):
            return hsm("PUT", f"{scope}{RD}/{guid}", body, who=who, name=name)

        def new_def(role_name, permissions, who=ADMIN, name="hsm1"):
            """A new custom role of HSM @name from raw permission entries: (guid, answer)."""
            guid = str(uuid.uuid4())
            st, _, body = put_def(guid, {"properties": {
                "roleName": role_name, "permissions": permissions}}, who=who, name=name)
            eq(st, 201, body)
            return guid, body

        def bad_parameter(got, what, message=None):
            """A 400 BadParameter whose message is @message (when given) and ends, as every
            Managed HSM error message does, with the request's Activity ID."""
            st, hdrs, body = got
            eq(st, 400, (what, body))
            eq((list(body), list(body["error"]), body["error"]["code"]),
               (["error"], ["code", "message"], "BadParameter"), (what, body))
            tail = f" (Activity ID: {hdrs['x-ms-request-id']})"
            if message is not None:
                eq(body["error"]["message"], message + tail, what)
            check(body["error"]["message"].endswith(tail), (what, body))

        def sdk_def(d):
            """A KeyVaultRoleDefinition of the SDK as the HSM's JSON has it (rd_json())."""
            return {"id": d.id, "name": d.name,
                    "properties": {"assignableScopes": d.assignable_scopes,
                                   "description": d.description,
                                   "permissions": [perm_json(p.actions, p.data_actions,
                                                             p.not_actions, p.not_data_actions)
                                                   for p in d.permissions],
                                   "roleName": d.role_name, "type": d.role_type},
                    "type": d.type}

        def assign(principal, role, scope="", name="hsm1"):
            """A raw assignment PUT with a fresh name: (status, headers, body)."""
            return hsm("PUT", f"{scope}{RA}/{uuid.uuid4()}", {"properties": {
                "roleDefinitionId": role, "principalId": principal}}, name=name)

        # ---- Resource Manager ------------------------------------------------------------------

        def arm(method, path, body=None, who=APP, api=ARM_API):
            """A Resource Manager call as @who: (status, parsed body or None)."""
            sep = "&" if "?" in path else "?"
            st, _, resp = kv.https(method, f"{path}{sep}{api}", body, token=tok(who, MGMT))
            return st, (json.loads(resp) if resp else None)

        def iso(text):
            return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))

        def hsm_arm(name, system_data, admins=(ADMIN["objectId"],), days=90):
            """Managed HSM @name of the configuration file as Resource Manager answers it."""
            return {"id": f"{ARM_HSMS}/{name}", "name": name,
                    "type": "Microsoft.KeyVault/managedHSMs", "location": "local", "tags": {},
                    "sku": {"family": "B", "name": "Standard_B1"},
                    "properties": {
                        "tenantId": TENANT, "hsmUri": f"{hsm_url(name)}/",
                        "initialAdminObjectIds": list(admins),
                        "networkAcls": {"bypass": "AzureServices", "defaultAction": "Allow",
                                        "ipRules": [], "virtualNetworkRules": []},
                        "securityDomainProperties": {
                            "activationStatus": "Active",
                            "activationStatusMessage": "Your HSM has been activated and can be "
                                                       "used for cryptographic operations."},
                        "enableSoftDelete": True, "softDeleteRetentionInDays": days,
                        "enablePurgeProtection": False, "provisioningState": "Succeeded",
                        "statusMessage": "The Managed HSM is provisioned and ready to use.",
                        "publicNetworkAccess": "Enabled", "regions": []},
                    "systemData": system_data}

        def arm_not_found(name, group="kvmock"):
            return (404, {"error": {"code": "ResourceNotFound", "message":
                                    f"The Resource 'Microsoft.KeyVault/managedHSMs/{name}' under "
                                    f"resource group '{group}' was not found."}})

        def management(who=APP):
            """Debian's azure-mgmt-keyvault (api-version 2022-07-01) as @who."""
            return KeyVaultManagementClient(mi(who), SUB, base_url=f"https://localhost:{P}",
                                            credential_scopes=[f"{MGMT}/.default"])

        def sdk_refused(call, status, code, message=None, what=""):
            """@call, through the management SDK, fails with @status and @code (and @message)."""
            try:
                call()
            except HttpResponseError as e:
                eq((e.status_code, e.error.code), (status, code), what)
                if message is not None:
                    eq(e.error.message, message, what)
                return
            raise AssertionError(f"{what}: not refused")

        # ---- 1. the challenge and the audience -------------------------------------------------

        @runner.test
        def the_challenge_names_the_hsm_resource_and_audiences_are_not_shared():
            st, hdrs, body = kv.https("GET", "/keys?api-version=7.4", token=None, host=host())
            eq(st, 401, body)
            eq(hdrs["www-authenticate"],
               f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
               f'resource="https://managedhsm.localhost:{P}"')
            # a vault's challenge names Key Vault's resource: the two differ
            st, hdrs, _ = kv.https("GET", "/keys?api-version=7.4", token=None,
                                   host=f"vault1.vault.localhost:{P}")
            eq((st, hdrs["www-authenticate"]),
               (401, f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                     f'resource="https://vault.localhost:{P}"'))
            # a Key Vault token on the HSM
            for aud in ("https://vault.azure.net", f"https://vault.localhost:{P}"):
                st, hdrs, body = kv.https("GET", "/keys?api-version=7.4",
                                          token=tok(MAKER, aud), host=host())
                eq(st, 401, (aud, body))
                eq(json.loads(body)["error"]["code"], "Unauthorized", body)
                eq(json.loads(body)["error"]["message"],
                   f"AKV10022: Invalid audience. Expected {HSM_AUD}, found: {aud}.")
                check(hdrs["www-authenticate"].endswith(
                    f'resource="https://managedhsm.localhost:{P}"'), hdrs)
            # an HSM token on a vault
            for aud in (HSM_AUD, f"https://managedhsm.localhost:{P}"):
                st, _, body = kv.https("GET", "/keys?api-version=7.4", token=tok(APP, aud),
                                       host=f"vault1.vault.localhost:{P}")
                eq(st, 401, (aud, body))
                eq(json.loads(body)["error"]["message"],
                   f"AKV10022: Invalid audience. Expected https://vault.azure.net, found: {aud}.")
            # and each host's own tokens work: both HSM audiences
            for aud in (HSM_AUD, f"https://managedhsm.localhost:{P}"):
                st, _, body = kv.https("GET", "/keys?api-version=7.4", token=tok(MAKER, aud),
                                       host=host())
                eq((st, json.loads(body)), (200, {"value": [], "nextLink": None}), aud)
            st, _, body = kv.https("GET", "/keys?api-version=7.4", token=tok(APP, MGMT),
                                   host=host())
            eq(st, 401, body)
            eq(kv.https("GET", "/keys?api-version=7.4", token=tok(APP, "https://vault.azure.net"),
                        host=f"vault1.vault.localhost:{P}")[0], 200)

        # ---- 2. a name is a vault or an HSM ----------------------------------------------------

        @runner.test
        def vault_and_hsm_hosts_are_separate():
            st, _, body = kv.https("GET", "/keys?api-version=7.4",
                                   token=tok(APP, "https://vault.azure.net"),
                                   host=f"hsm1.vault.localhost:{P}")
            eq(st, 404, body)
            eq(json.loads(body)["error"],
               {"code": "VaultNotFound", "message": f"Vault not found: hsm1.vault.localhost:{P}"})
            st, _, body = hsm("GET", "/keys", who=APP, name="vault1")
            eq(st, 404, body)
            eq(body["error"], {"code": "VaultNotFound",
                               "message": f"Vault not found: vault1.managedhsm.localhost:{P}"})
            st, _, body = hsm("GET", RA, name="vault1")
            eq((st, body["error"]["code"]), (404, "VaultNotFound"), body)
            st, _, body = hsm("GET", "/keys", who=APP, name="nohsm")
            eq((st, body["error"]["code"]), (404, "VaultNotFound"), body)
            # Resource Manager's vaults never show the HSM
            mtok = tok(APP, MGMT)
            st, _, body = kv.https("GET", f"{ARM_VAULTS}/hsm1?{ARM_API}", token=mtok)
            eq(st, 404, body)
            eq(json.loads(body)["error"]["code"], "ResourceNotFound", body)
            st, _, body = kv.https("GET", f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/"
                                          f"vaults?{ARM_API}", token=mtok)
            eq(st, 200, body)
            names = [v["name"] for v in json.loads(body)["value"]]
            check("vault1" in names and "hsm1" not in names and "hsm7" not in names, names)
            st, _, body = kv.https("PUT", f"{ARM_VAULTS}/hsm1?{ARM_API}", {
                "location": "westeurope", "properties": {
                    "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                    "accessPolicies": []}}, token=mtok)
            eq(st, 409, body)
            eq(json.loads(body)["error"]["code"], "VaultAlreadyExists", body)
            eq(kv.https("GET", f"{ARM_VAULTS}/hsm1?{ARM_API}", token=mtok)[0], 404)
            # and the HSM is untouched: still an HSM, its assignments still its own
            eq(triples(assignments()), FILE_ASSIGNMENTS)

        # ---- 3. the initial administrator ------------------------------------------------------

        @runner.test
        def the_initial_administrator_manages_roles_but_not_keys():
            values = assignments()
            eq(triples(values), FILE_ASSIGNMENTS)
            for a in values:
                check(GUID.fullmatch(a["name"]), a)
                eq(a, ra_json(a["name"], a["properties"]["principalId"],
                              a["properties"]["roleDefinitionId"][len(DEF_PREFIX):],
                              a["properties"]["scope"]))
            mine = [a for a in values if a["properties"]["principalId"] == ADMIN["objectId"]]
            st, _, one = hsm("GET", f"{RA}/{mine[0]['name']}")
            eq((st, one), (200, mine[0]))
            st, _, defs = hsm("GET", RD)
            eq(st, 200, defs)
            eq([(d["name"], d["properties"]["roleName"]) for d in defs["value"]], ROLES)
            # hsm7 has its own administrator assignment (another name) and MAKER's
            eq(triples(assignments("hsm7")), sorted([(ADMIN["objectId"], ADMINISTRATOR, "/"),
                                                     (MAKER["objectId"], CRYPTO_USER, "/keys")]))
            check(mine[0]["name"] not in [a["name"] for a in assignments("hsm7")])
            # no key at all: not even a read
            make_key("adminseen")
            denied(hsm("POST", "/keys/admin1/create", {"kty": "RSA"}), "keys/create",
                   what="admin create")
            denied(hsm("GET", "/keys/adminseen"), "keys/read/action", what="admin get")
            denied(hsm("GET", "/keys"), "keys/read/action", what="admin list")
            denied(hsm("POST", "/keys/adminseen//wrapkey",
                       {"alg": "RSA-OAEP-256", "value": b64url(b"k" * 32)}),
                   "keys/wrap/action", what="admin wrap")
            denied(hsm("DELETE", "/keys/adminseen"), "keys/delete", what="admin delete")
            denied(hsm("POST", "/rng", {"count": 8}), "rng/action", what="admin rng")
            eq(hsm("GET", "/keys/admin1", who=MAKER)[0], 404)  # nothing was made
            # the refusal reaches the SDK as it is
            sdk_denied(lambda: keys(ADMIN).create_rsa_key("admin2"), "keys/create",
                       what="admin create (SDK)")
            # a principal with no assignment at all reads no assignment either
            denied(hsm("GET", RA, who=USER), "roleAssignments/read/action", "/",
                   what="list by nobody")
            denied(hsm("GET", RD, who=USER), "roleDefinitions/read/action", "/",
                   what="definitions by nobody")

        # ---- 4. the SDKs: access control client and a Crypto User ------------------------------

        @runner.test
        def sdk_assignment_gives_a_crypto_user_the_keys_and_its_deletion_takes_them():
            acc = access()
            defs = list(acc.list_role_definitions(KeyVaultRoleScope.GLOBAL))
            eq([(d.name, d.role_name) for d in defs], ROLES)
            for d in defs:
                eq((d.id, d.role_type, d.type, d.assignable_scopes, d.description),
                   (DEF_PREFIX + d.name, "AKVBuiltInRole",
                    "Microsoft.Authorization/roleDefinitions", ["/"], ""), d.role_name)
                eq(len(d.permissions), 1, d.role_name)
                eq((d.permissions[0].actions, d.permissions[0].not_actions,
                    d.permissions[0].not_data_actions), ([], [], []), d.role_name)
            by_name = {d.role_name: d for d in defs}
            user_def = by_name["Managed HSM Crypto User"]
            user_actions = user_def.permissions[0].data_actions
            for a in ("keys/create", "keys/read/action", "keys/wrap/action", "rng/action"):
                check(ACTION + a in user_actions, (a, user_actions))
            for a in ("keys/deletedKeys/delete", "keys/deletedKeys/read/action"):
                check(ACTION + a not in user_actions, (a, user_actions))
            admin_actions = by_name["Managed HSM Administrator"].permissions[0].data_actions
            check(ACTION + "roleAssignments/write/action" in admin_actions, admin_actions)
            check(not [a for a in admin_actions if a.startswith(ACTION + "keys/")], admin_actions)
            one = acc.get_role_definition(KeyVaultRoleScope.GLOBAL, CRYPTO_USER)
            eq((one.id, one.role_name, one.permissions[0].data_actions),
               (user_def.id, user_def.role_name, user_actions))

            client = keys(USER)
            sdk_denied(lambda: client.create_rsa_key("py-rsa"), "keys/create",
                       what="create before the assignment")
            ra = acc.create_role_assignment(KeyVaultRoleScope.KEYS, user_def.id, USER["objectId"])
            check(GUID.fullmatch(ra.name), ra.name)
            eq((ra.role_assignment_id, ra.type, ra.properties.principal_id,
                ra.properties.role_definition_id, ra.properties.scope),
               (f"{RA}/{ra.name}", "Microsoft.Authorization/roleAssignments", USER["objectId"],
                user_def.id, "/keys"))
            try:
                prefix = f"{hsm_url()}/keys/"
                rsa = client.create_rsa_key("py-rsa")
                ec = client.create_ec_key("py-ec")
                oct_key = client.create_oct_key("py-oct", size=256)
                for k, kty in ((rsa, "RSA-HSM"), (ec, "EC-HSM"), (oct_key, "oct-HSM")):
                    eq(k.key_type, kty, k.name)
                    check(k.id.startswith(f"{prefix}{k.name}/") and
                          len(k.properties.version) == 32, k.id)
                    eq((k.properties.recovery_level, k.properties.recoverable_days),
                       ("Recoverable+Purgeable", 90), k.name)
                eq((rsa.key.e, len(rsa.key.n)), (b"\x01\x00\x01", 256))
                eq(ec.key.crv, "P-256")
                eq(oct_key.key.k, None)
                eq(sorted(p.name for p in client.list_properties_of_keys()),
                   ["adminseen", "py-ec", "py-oct", "py-rsa"])
                # wrap and unwrap: RSA (unwrapping in the HSM) and AES (both in the HSM)
                dek = secrets.token_bytes(32)
                crsa = CryptographyClient(rsa.id, mi(USER))
                wrapped = crsa.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek).encrypted_key
                eq(crsa.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key, dek)
                coct = CryptographyClient(oct_key.id, mi(USER))
                wrapped = coct.wrap_key(KeyWrapAlgorithm.aes_256, dek).encrypted_key
                eq(len(wrapped), 40)
                eq(coct.unwrap_key(KeyWrapAlgorithm.aes_256, wrapped).key, dek)
                # sign and verify
                cec = CryptographyClient(ec.id, mi(USER))
                digest = secrets.token_bytes(32)
                sig = cec.sign(SignatureAlgorithm.es256, digest).signature
                eq(len(sig), 64)
                check(cec.verify(SignatureAlgorithm.es256, digest, sig).is_valid)
                check(not cec.verify(SignatureAlgorithm.es256, bytes(32), sig).is_valid)
                sig = crsa.sign(SignatureAlgorithm.ps256, digest).signature
                check(crsa.verify(SignatureAlgorithm.ps256, digest, sig).is_valid)
                # rotate: a new version, an RSA-HSM key again
                rotated = client.rotate_key("py-rsa")
                check(rotated.properties.version != rsa.properties.version, rotated.id)
                eq(rotated.key_type, "RSA-HSM")
                eq(sorted(p.version for p in client.list_properties_of_key_versions("py-rsa")),
                   sorted([rsa.properties.version, rotated.properties.version]))
                # backup, delete (the user), purge (the officer: a user may not), restore
                blob = client.backup_key("py-ec")
                check(len(blob) > 100, len(blob))
                gone = client.begin_delete_key("py-ec").result()
                eq(gone.recovery_id, f"{hsm_url()}/deletedkeys/py-ec")
                officer = keys(OFFICER)
                officer.purge_deleted_key("py-ec")
                restored = client.restore_key_backup(blob)
                eq((restored.id, restored.key_type, restored.key.x, restored.key.y),
                   (ec.id, "EC-HSM", ec.key.x, ec.key.y))
                check(cec.verify(SignatureAlgorithm.es256, digest,
                                 cec.sign(SignatureAlgorithm.es256, digest).signature).is_valid)
                eq(len(client.get_random_bytes(16)), 16)

                # the assignment, read back and listed
                got = acc.get_role_assignment(KeyVaultRoleScope.KEYS, ra.name)
                eq((got.name, got.properties.scope, got.properties.principal_id,
                    got.properties.role_definition_id),
                   (ra.name, "/keys", USER["objectId"], user_def.id))
                for scope in (KeyVaultRoleScope.KEYS, KeyVaultRoleScope.GLOBAL):
                    listed = list(acc.list_role_assignments(scope))
                    eq(sorted((a.properties.principal_id,
                               a.properties.role_definition_id[len(DEF_PREFIX):],
                               a.properties.scope) for a in listed),
                       sorted(FILE_ASSIGNMENTS + [(USER["objectId"], CRYPTO_USER, "/keys")]),
                       scope)
                # the user may read assignments (its role says so) but not make them
                eq([a.name for a in access(USER).list_role_assignments("/keys")
                    if a.name == ra.name], [ra.name])
                sdk_denied(lambda: access(USER).create_role_assignment(
                    KeyVaultRoleScope.KEYS, user_def.id, SCOPED["objectId"]),
                    "roleAssignments/write/action", "/keys", "a user assigning")
            finally:
                acc.delete_role_assignment(KeyVaultRoleScope.KEYS, ra.name)
            try:
                acc.get_role_assignment(KeyVaultRoleScope.KEYS, ra.name)
                raise AssertionError("the deleted assignment is still there")
            except ResourceNotFoundError as e:
                eq(e.error.code, "RoleAssignmentNotFound")
            eq(triples(assignments()), FILE_ASSIGNMENTS)
            sdk_denied(lambda: client.get_key("py-rsa"), "keys/read/action",
                       what="get after the deletion")
            sdk_denied(lambda: crsa.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped),
                       "keys/unwrap/action", what="unwrap after the deletion")
            sdk_denied(lambda: client.create_rsa_key("py-late"), "keys/create",
                       what="create after the deletion")

        # ---- 5. an assignment at one key -------------------------------------------------------

        @runner.test
        def a_key_scoped_assignment_reaches_that_key_only():
            k1 = make_key("k1")
            make_key("k2")
            acc = access()
            ra = acc.create_role_assignment("/keys/k1", DEF_PREFIX + CRYPTO_USER,
                                            SCOPED["objectId"])
            try:
                eq((ra.properties.scope, ra.role_assignment_id), ("/keys/k1", f"{RA}/{ra.name}"))
                # a list at a key shows the whole HSM's assignments ("/" and "/keys") and
                # that key's; one at "/" or "/keys" shows every assignment of the HSM
                mine = (SCOPED["objectId"], CRYPTO_USER, "/keys/k1")
                eq(sdk_triples(acc.list_role_assignments("/keys/k1")),
                   sorted(FILE_ASSIGNMENTS + [mine]))
                eq(sdk_triples(acc.list_role_assignments("/keys/k2")), FILE_ASSIGNMENTS)
                for scope in ("/", "/keys"):
                    eq(sdk_triples(acc.list_role_assignments(scope)),
                       sorted(FILE_ASSIGNMENTS + [mine]), scope)
                # atScope(): those at or above the request's scope. At "/" (and "/keys", one
                # scope with it) the whole HSM's, not a key's; at a key the whole HSM's and
                # that key's; at another key not this key's
                for path in (RA, f"/keys{RA}", f"//keys/{RA}"):
                    st, _, body = hsm("GET", f"{path}?$filter=atScope()")
                    eq((st, triples(body["value"])), (200, FILE_ASSIGNMENTS), (path, body))
                st, _, body = hsm("GET", f"/keys/k1{RA}?$filter=atScope()")
                eq((st, triples(body["value"])), (200, sorted(FILE_ASSIGNMENTS + [mine])), body)
                st, _, body = hsm("GET", f"/keys/k2{RA}?$filter=atScope()")
                eq((st, triples(body["value"])), (200, FILE_ASSIGNMENTS), body)
                # the key's own, whole, in the list at the key
                at_key = {a["name"]: a for a in assignments(path=f"/keys/k1{RA}")}
                eq(at_key[ra.name], ra_json(ra.name, *mine))
                # read at its own scope only
                eq(acc.get_role_assignment("/keys/k1", ra.name).properties.scope, "/keys/k1")
                not_found(hsm("GET", f"{RA}/{ra.name}"), "RoleAssignmentNotFound",
                          "Requested role assignment not found", "at / instead of /keys/k1")
                not_found(hsm("GET", f"/keys/k2{RA}/{ra.name}"), "RoleAssignmentNotFound",
                          "Requested role assignment not found", "at /keys/k2")
                # its principal reads the assignments at its key (the HSM-wide ones among
                # them), and no others
                eq(sdk_triples(access(SCOPED).list_role_assignments("/keys/k1")),
                   sorted(FILE_ASSIGNMENTS + [mine]))
                sdk_denied(lambda: list(access(SCOPED).list_role_assignments("/")),
                           "roleAssignments/read/action", "/", "list at / by the key's user")
                denied(hsm("GET", f"/keys/k2{RA}", who=SCOPED), "roleAssignments/read/action",
                       "/keys/k2", "list at /keys/k2 by k1's user")
                client = keys(SCOPED)
                got = client.get_key("k1")
                eq((got.id, got.key_type), (k1["key"]["kid"], "RSA-HSM"))
                crypto = CryptographyClient(got.id, mi(SCOPED))
                dek = secrets.token_bytes(32)
                wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, dek).encrypted_key
                eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped).key, dek)
                sdk_denied(lambda: client.get_key("k2"), "keys/read/action", what="get k2")
                denied(hsm("POST", "/keys/k2//unwrapkey",
                           {"alg": "RSA-OAEP", "value": b64url(wrapped)}, who=SCOPED),
                       "keys/unwrap/action", what="unwrap with k2")
                sdk_denied(lambda: client.create_rsa_key("k3"), "keys/create", what="create k3")
                denied(hsm("DELETE", "/keys/k2", who=SCOPED), "keys/delete", what="delete k2")
                eq(hsm("GET", "/keys/k2", who=MAKER)[0], 200)
            finally:
                acc.delete_role_assignment("/keys/k1", ra.name)
            sdk_denied(lambda: keys(SCOPED).get_key("k1"), "keys/read/action",
                       what="k1 after the deletion")

        # ---- 6. deleted keys: the officer's, not the user's ------------------------------------

        @runner.test
        def the_officer_handles_deleted_keys_and_the_user_does_not():
            made = make_key("gone", "EC")
            st, _, body = hsm("DELETE", "/keys/gone", who=MAKER)
            eq(st, 200, body)
            officer, user = keys(OFFICER), keys(MAKER)
            eq([d.name for d in officer.list_deleted_keys()], ["gone"])
            eq(officer.get_deleted_key("gone").id, made["key"]["kid"])
            # the Crypto User: no deleted keys, no purge, no recovery
            sdk_denied(lambda: list(user.list_deleted_keys()), "keys/deletedKeys/read/action",
                       what="user lists deleted keys")
            sdk_denied(lambda: user.get_deleted_key("gone"), "keys/deletedKeys/read/action",
                       what="user gets a deleted key")
            sdk_denied(lambda: user.purge_deleted_key("gone"), "keys/deletedKeys/delete",
                       what="user purges")
            sdk_denied(lambda: user.begin_recover_deleted_key("gone"),
                       "keys/deletedKeys/recover/action", what="user recovers")
            # the officer recovers (its poller's get is refused, which ends it) ...
            back = officer.begin_recover_deleted_key("gone").result()
            eq(back.id, made["key"]["kid"])
            eq(user.get_key("gone").id, made["key"]["kid"])
            eq(list(officer.list_deleted_keys()), [])
            # ... and purges
            eq(hsm("DELETE", "/keys/gone", who=MAKER)[0], 200)
            officer.purge_deleted_key("gone")
            not_found_deleted = hsm("GET", "/deletedkeys/gone", who=OFFICER)
            eq((not_found_deleted[0], not_found_deleted[2]["error"]["code"]),
               (404, "KeyNotFound"), not_found_deleted[2])
            eq(list(officer.list_deleted_keys()), [])
            # but makes and reads no key
            sdk_denied(lambda: officer.create_rsa_key("officer1"), "keys/create",
                       what="officer creates")
            sdk_denied(lambda: officer.get_key("k1"), "keys/read/action", what="officer gets")
            sdk_denied(lambda: list(officer.list_properties_of_keys()), "keys/read/action",
                       what="officer lists")
            denied(hsm("POST", "/keys/k1//sign", {"alg": "RS256", "value": b64url(bytes(32))},
                       who=OFFICER), "keys/sign/action", what="officer signs")

        # ---- 7. refused assignment calls change nothing ----------------------------------------

        @runner.test
        def refused_assignment_calls_change_nothing():
            before = assignments()

            def put(name, body, scope=""):
                return hsm("PUT", f"{scope}{RA}/{name}", body)

            def props(role, principal=USER["objectId"]):
                return {"properties": {"roleDefinitionId": role, "principalId": principal}}

            def refused(got, status, code, what):
                st, hdrs, body = got
                eq((st, body["error"]["code"]), (status, code), (what, body))
                eq(list(body["error"]), ["code", "message"], (what, body))
                eq(assignments(), before, f"{what} changed the assignments")

            g = str(uuid.uuid4())
            refused(put("not-a-guid", props(DEF_PREFIX + CRYPTO_AUDITOR)), 400, "BadParameter",
                    "a name that is no GUID")
            refused(put(g, props(DEF_PREFIX + str(uuid.uuid4()))), 400, "BadParameter",
                    "an unknown role")
            refused(put(g, props("Managed HSM Nobody")), 400, "BadParameter",
                    "an unknown role name")
            refused(put(g, props(DEF_PREFIX + KV_CRYPTO_USER)), 400, "BadParameter",
                    "a Key Vault role's id")
            refused(put(g, props(KV_CRYPTO_USER)), 400, "BadParameter", "a Key Vault role's GUID")
            refused(put(g, props("Key Vault Crypto User")), 400, "BadParameter",
                    "a Key Vault role's name")
            refused(put(g, {}), 400, "BadParameter", "no properties")
            refused(put(g, {"properties": {"principalId": USER["objectId"]}}), 400,
                    "BadParameter", "no roleDefinitionId")
            refused(put(g, {"properties": {"roleDefinitionId": DEF_PREFIX + CRYPTO_AUDITOR}}),
                    400, "BadParameter", "no principalId")
            # the file's officer assignment at "/" under a new name
            refused(put(g, props(DEF_PREFIX + CRYPTO_OFFICER, OFFICER["objectId"])), 409,
                    "RoleAssignmentExists", "a duplicate under a new name")
            st, _, body = put(g, props(DEF_PREFIX + CRYPTO_OFFICER, OFFICER["objectId"]))
            eq(body["error"]["message"].split(" (Activity ID: ")[0],
               "The role assignment already exists.")
            # an existing name with another principal
            refused(put(before[0]["name"], props(DEF_PREFIX + CRYPTO_AUDITOR)), 409,
                    "RoleAssignmentExists", "an existing name for another assignment")
            for method in ("GET", "DELETE"):
                not_found(hsm(method, f"{RA}/{g}"), "RoleAssignmentNotFound",
                          "Requested role assignment not found", f"{method} unknown")
                not_found(hsm(method, f"/keys{RA}/{g}"), "RoleAssignmentNotFound",
                          "Requested role assignment not found", f"{method} unknown at /keys")
            eq(assignments(), before)
            # another HSM's assignment is not this one's to read or delete
            theirs = assignments("hsm7")[0]
            for method in ("GET", "DELETE"):
                not_found(hsm(method, f"{RA}/{theirs['name']}"), "RoleAssignmentNotFound",
                          "Requested role assignment not found", f"{method} of hsm7's")
            eq(assignments("hsm7")[0], theirs)
            for bad in (str(uuid.uuid4()), KV_CRYPTO_USER, "does_not_exist"):
                not_found(hsm("GET", f"{RD}/{bad}"), "RoleDefinitionNotFound",
                          "Requested role definition not found", bad)
            st, _, one = hsm("GET", f"{RD}/{CRYPTO_OFFICER.upper()}")
            eq((st, one["name"], one["properties"]["roleName"]),
               (200, CRYPTO_OFFICER, "Managed HSM Crypto Officer"), one)
            # "///providers/..." is the scope "/", as JS 4.4.0-beta.1 sends it
            eq(assignments(path="//" + RA), before)
            eq(assignments(path="/keys/" + RA), before)
            st, _, defs = hsm("GET", "//" + RD)
            eq((st, [d["name"] for d in defs["value"]]), (200, [r[0] for r in ROLES]), defs)
            made = ra_json(g, USER["objectId"], CRYPTO_AUDITOR, "/")
            for attempt in range(2):  # a PUT repeated is 201 again, and one assignment
                st, _, body = put(g, props(CRYPTO_AUDITOR), scope="//")
                eq((st, body), (201, made), attempt)
            after = assignments()
            eq(after, sorted(before + [made], key=lambda a: a["name"]))
            st, _, body = hsm("GET", f"//{RA}/{g}")
            eq((st, body), (200, made))
            # "/keys" and "/" are one scope for reading and deleting
            st, _, body = hsm("GET", f"/keys{RA}/{g}")
            eq((st, body), (200, made))
            # the same name again with another role: refused, nothing changes
            st, _, body = put(g, props(CRYPTO_USER))
            eq((st, body["error"]["code"]), (409, "RoleAssignmentExists"), body)
            eq(assignments(), after)
            st, _, body = hsm("DELETE", f"///{RA}/{g}")
            eq((st, body), (200, made))
            eq(assignments(), before)
            not_found(hsm("DELETE", f"{RA}/{g}"), "RoleAssignmentNotFound",
                      "Requested role assignment not found", "DELETE again")
            # an unknown filter is refused
            st, _, body = hsm("GET", f"{RA}?$filter=roleName%20eq%20'x'")
            eq((st, body["error"]["code"]), (400, "BadParameter"), body)
            st, _, body = hsm("GET", f"{RA}?$filter=principalId%20eq%20'{OFFICER['objectId']}'")
            eq((st, triples(body["value"])),
               (200, [(OFFICER["objectId"], CRYPTO_OFFICER, "/")]), body)

        # ---- 8. a custom role grants its data actions less its notDataActions ------------------

        @runner.test
        def a_custom_role_grants_what_its_permissions_say():
            acc = access()
            guid, union = str(uuid.uuid4()), None
            made = acc.set_role_definition(
                KeyVaultRoleScope.GLOBAL, name=guid, role_name="Keys but no deletion",
                description="keys/* less keys/delete",
                permissions=[KeyVaultPermission(
                    data_actions=[ACTION + "keys/*"],
                    not_data_actions=[KeyVaultDataAction.DELETE_HSM_KEY])])
            want = rd_json(guid, "Keys but no deletion", "keys/* less keys/delete",
                           [perm_json(data=[ACTION + "keys/*"], not_data=[ACTION + "keys/delete"])])
            undo = []  # (scope, assignment name)
            try:
                eq(sdk_def(made), want)
                eq(sdk_def(acc.get_role_definition(KeyVaultRoleScope.GLOBAL, guid)), want)
                listed = list(acc.list_role_definitions(KeyVaultRoleScope.GLOBAL))
                eq([d.name for d in listed], [r[0] for r in ROLES] + [guid])
                eq(sdk_def(listed[-1]), want)
                ra = acc.create_role_assignment(KeyVaultRoleScope.KEYS, made.id,
                                                CUSTOM["objectId"])
                undo.append(("/keys", ra.name))
                eq((ra.properties.role_definition_id, ra.properties.scope), (made.id, "/keys"))
                # its principal makes keys and wraps with them (in the HSM: raw calls, as the
                # SDK would wrap with an RSA key's public half itself) ...
                client = keys(CUSTOM)
                rsa = client.create_rsa_key("custom-rsa")
                eq(rsa.key_type, "RSA-HSM")
                dek = secrets.token_bytes(32)
                wrap = {"alg": "RSA-OAEP-256", "value": b64url(dek)}
                st, _, wrapped = hsm("POST", "/keys/custom-rsa//wrapkey", wrap, who=CUSTOM)
                eq(st, 200, wrapped)
                st, _, back = hsm("POST", "/keys/custom-rsa//unwrapkey",
                                  {"alg": "RSA-OAEP-256", "value": wrapped["value"]}, who=CUSTOM)
                eq((st, back.get("value")), (200, b64url(dek)), back)
                # ... but may not delete one
                sdk_denied(lambda: client.begin_delete_key("custom-rsa"), "keys/delete",
                           what="delete under keys/* less keys/delete")
                denied(hsm("DELETE", "/keys/custom-rsa", who=CUSTOM), "keys/delete",
                       what="raw delete")
                eq(client.get_key("custom-rsa").id, rsa.id)
                # keys/* is every key action, deleted keys' too, and nothing else
                eq(hsm("GET", "/deletedkeys", who=CUSTOM)[0], 200)
                denied(hsm("POST", "/rng", {"count": 8}, who=CUSTOM), "rng/action",
                       what="rng under keys/*")
                denied(hsm("GET", RA, who=CUSTOM), "roleAssignments/read/action", "/",
                       what="assignments under keys/*")
                denied(hsm("GET", RD, who=CUSTOM), "roleDefinitions/read/action", "/",
                       what="definitions under keys/*")

                # replaced (PUT again: 201) with reading alone: the assignment grants that at once
                st, _, body = put_def(guid, {"properties": {
                    "roleName": "Keys but no deletion", "description": "now reading only",
                    "permissions": [{"dataActions": [ACTION + "keys/read/action"]}]}})
                replaced = rd_json(guid, "Keys but no deletion", "now reading only",
                                   [perm_json(data=[ACTION + "keys/read/action"])])
                eq(st, 201, body)
                exactly(body, replaced)
                exactly(definitions()[-1], replaced)
                eq(client.get_key("custom-rsa").id, rsa.id)
                denied(hsm("POST", "/keys/custom-rsa//wrapkey", wrap, who=CUSTOM),
                       "keys/wrap/action", what="wrap after the replacement")
                sdk_denied(lambda: client.create_rsa_key("custom-late"), "keys/create",
                           what="create after the replacement")
                denied(hsm("GET", "/deletedkeys", who=CUSTOM), "keys/deletedKeys/read/action",
                       what="deleted keys after the replacement")
                eq(hsm("GET", "/keys/custom-late", who=MAKER)[0], 404)
                eq(acc.get_role_assignment(KeyVaultRoleScope.KEYS, ra.name)
                   .properties.role_definition_id, made.id)

                # several permission entries: the union of their dataActions less the union of
                # their notDataActions, whatever the case; notActions take no data action away
                union = acc.set_role_definition(KeyVaultRoleScope.GLOBAL, role_name="Union",
                                                permissions=[
                    KeyVaultPermission(data_actions=[KeyVaultDataAction.READ_HSM_KEY,
                                                     KeyVaultDataAction.SIGN_HSM_KEY]),
                    KeyVaultPermission(data_actions=["microsoft.keyvault/MANAGEDHSM/keys/"
                                                     "verify/ACTION", ACTION + "rng/action"],
                                       not_data_actions=[ACTION + "keys/sign/action"]),
                    KeyVaultPermission(not_actions=[ACTION + "keys/read/action"])])
                check(GUID.fullmatch(union.name), union.name)
                eq(len(union.permissions), 3)
                ra2 = acc.create_role_assignment(KeyVaultRoleScope.GLOBAL, union.id,
                                                 UNION["objectId"])
                undo.append(("/", ra2.name))
                version = rsa.properties.version
                digest = secrets.token_bytes(32)
                sign = {"alg": "PS256", "value": b64url(digest)}
                st, _, signed = hsm("POST", f"/keys/custom-rsa/{version}/sign", sign, who=MAKER)
                eq(st, 200, signed)
                eq(keys(UNION).get_key("custom-rsa").id, rsa.id)
                st, _, verified = hsm("POST", f"/keys/custom-rsa/{version}/verify",
                                      {"alg": "PS256", "digest": b64url(digest),
                                       "value": signed["value"]}, who=UNION)
                eq((st, verified), (200, {"value": True}))
                eq(len(keys(UNION).get_random_bytes(8)), 8)
                denied(hsm("POST", f"/keys/custom-rsa/{version}/sign", sign, who=UNION),
                       "keys/sign/action", what="sign, taken by another entry")
                denied(hsm("POST", "/keys/custom-rsa//wrapkey", wrap, who=UNION),
                       "keys/wrap/action", what="wrap, in no entry")
                sdk_denied(lambda: keys(UNION).create_rsa_key("union-key"), "keys/create",
                           what="create, in no entry")
            finally:
                for scope, name in undo:
                    acc.delete_role_assignment(scope, name)
                for g in [guid] + ([union.name] if union else []):
                    acc.delete_role_definition(KeyVaultRoleScope.GLOBAL, g)
            for g in [guid] + ([union.name] if union else []):
                not_found(hsm("GET", f"{RD}/{g}"), "RoleDefinitionNotFound",
                          "Requested role definition not found", "deleted through the SDK")
            eq([d["name"] for d in definitions()], [r[0] for r in ROLES])
            eq(triples(assignments()), FILE_ASSIGNMENTS)
            sdk_denied(lambda: keys(CUSTOM).get_key("custom-rsa"), "keys/read/action",
                       what="read once the role is gone")

        # ---- 9. a custom role's answer ---------------------------------------------------------

        @runner.test
        def a_custom_role_answers_with_every_field():
            made = []
            try:
                # properties alone: the defaults
                g = str(uuid.uuid4())
                made.append(g)
                st, hdrs, raw = kv.https("PUT", f"{RD}/{g}?api-version=7.4", {"properties": {}},
                                         token=tok(ADMIN), host=host())
                eq(st, 201, raw)
                # compact JSON, keys in the order Managed HSM writes them
                eq(raw.decode(), json.dumps(rd_json(g), separators=(",", ":")))
                eq(hdrs["content-type"], "application/json; charset=utf-8")
                # the SDK with no keywords sends {"properties": {"permissions": []}} and a fresh
                # GUID: the same answer; two roles with no name do not clash
                sdk = access().set_role_definition(KeyVaultRoleScope.GLOBAL)
                made.append(sdk.name)
                check(GUID.fullmatch(sdk.name), sdk.name)
                eq(sdk_def(sdk), rd_json(sdk.name))
                # every field given, PUT at the scope "/keys", type CustomRole said
                g2 = str(uuid.uuid4())
                made.append(g2)
                create_if = "Microsoft.KeyVault/managedHsm/keys/createIfNotExists"
                full = {"properties": {
                    "roleName": "Every field", "description": "all of them", "type": "CustomRole",
                    "permissions": [
                        {"dataActions": [ACTION + "keys/sign/action"]},
                        {"actions": [create_if], "notActions": [],
                         "notDataActions": [ACTION + "keys/verify/action"]},
                        {}],
                    "assignableScopes": ["/keys", "/"]}}
                want = rd_json(g2, "Every field", "all of them",
                               [perm_json(data=[ACTION + "keys/sign/action"]),
                                perm_json(actions=[create_if],
                                          not_data=[ACTION + "keys/verify/action"]),
                                perm_json()],
                               ["/keys", "/"])
                st, _, body = put_def(g2, full, scope="/keys")
                eq(st, 201, body)
                exactly(body, want)
                # read at any scope, its GUID in any case
                for path in (f"{RD}/{g2}", f"/keys{RD}/{g2}", f"//{RD}/{g2.upper()}"):
                    st, _, got = hsm("GET", path)
                    eq(st, 200, (path, got))
                    exactly(got, want, path)
                eq(sdk_def(access().get_role_definition("/keys", g2)), want)
                # listed after the 8 built-in roles
                listed = definitions()
                eq([d["name"] for d in listed[:8]], [r[0] for r in ROLES])
                eq(sorted(listed[8:], key=lambda d: d["name"]),
                   sorted([rd_json(g), rd_json(sdk.name), want], key=lambda d: d["name"]))
                # a PUT replaces the whole definition: what it leaves out takes the defaults
                st, _, body = put_def(g2, {"properties": {"roleName": "Every field"}})
                eq(st, 201, body)
                exactly(body, rd_json(g2, "Every field"))
                exactly(hsm("GET", f"{RD}/{g2}")[2], rd_json(g2, "Every field"))
            finally:
                for g in made:
                    eq(hsm("DELETE", f"{RD}/{g}")[0], 200, g)
            eq([d["name"] for d in definitions()], [r[0] for r in ROLES])

        # ---- 10. refused definition calls change nothing ---------------------------------------

        @runner.test
        def refused_definition_calls_change_nothing():
            g1, first = new_def("Refusals", [{"dataActions": [ACTION + "keys/read/action"]}])
            assigned = None
            try:
                before, ras = definitions(), assignments()

                def refused(got, what, message=None):
                    bad_parameter(got, what, message)
                    eq(definitions(), before, f"{what} changed the definitions")
                    eq(assignments(), ras, f"{what} changed the assignments")

                g = str(uuid.uuid4())
                good = {"properties": {"roleName": "Never made", "permissions": []}}
                for name in ("not-a-guid", "foo%20unique%20value", g[:-1]):
                    refused(put_def(name, good), name, "Role definition name must be a GUID")
                built_in = ("Cannot re-use the name/GUID matching that of a built-in role. "
                            "Please use a unique role ID.")
                for b in (ADMINISTRATOR, CRYPTO_USER.upper()):
                    refused(put_def(b, good), f"PUT {b}", built_in)
                    refused(hsm("DELETE", f"{RD}/{b}"), f"DELETE {b}", built_in)
                eq(hsm("GET", f"{RD}/{ADMINISTRATOR}")[2]["properties"]["type"], "AKVBuiltInRole")
                # a name another custom role of the HSM has (in any case), a built-in role's
                for role_name in ("Refusals", "REFUSALS", "Managed HSM Crypto User",
                                  "Managed HSM Administrator"):
                    refused(put_def(g, {"properties": {"roleName": role_name}}), role_name)
                refused(put_def(g1, {"properties": {"roleName": "Managed HSM Crypto Officer"}}),
                        "renamed to a built-in role's name")
                # bodies of the wrong shape: neither made nor replacing
                for what, props in (
                        ("type AKVBuiltInRole", {"type": "AKVBuiltInRole"}),
                        ("type BuiltInRole", {"type": "BuiltInRole"}),
                        ("type a number", {"type": 1}),
                        ("permissions an object", {"permissions": {"dataActions": []}}),
                        ("permissions a string", {"permissions": ACTION + "keys/read/action"}),
                        ("a permission that is a string",
                         {"permissions": [ACTION + "keys/read/action"]}),
                        ("dataActions a string",
                         {"permissions": [{"dataActions": ACTION + "keys/read/action"}]}),
                        ("a number in notDataActions", {"permissions": [{"notDataActions": [1]}]}),
                        ("null in actions", {"permissions": [{"actions": [None]}]}),
                        ("assignableScopes /vaults", {"assignableScopes": ["/vaults"]}),
                        ("/vaults among assignableScopes", {"assignableScopes": ["/", "/vaults"]}),
                        ("a key's assignable scope", {"assignableScopes": ["/keys/k1"]}),
                        ("assignableScopes a string", {"assignableScopes": "/"}),
                        ("roleName a number", {"roleName": 7}),
                        ("description a list", {"description": ["d"]})):
                    for guid in (g, g1):
                        refused(put_def(guid, {"properties": {"roleName": "Bad body", **props}}),
                                f"{what} ({'new' if guid == g else 'a replacement'})")
                refused(put_def(g, {}), "no properties")
                refused(put_def(g1, {"properties": "Refusals"}), "properties a string")
                not_found(hsm("GET", f"{RD}/{g}"), "RoleDefinitionNotFound",
                          "Requested role definition not found", "the refused new one")
                exactly(hsm("GET", f"{RD}/{g1}")[2], first)

                # assigned (at a key), it is not deleted; once its assignment is gone, it is
                st, _, assigned = assign(USER["objectId"], DEF_PREFIX + g1, "/keys/k1")
                eq(st, 201, assigned)
                ras = assignments()
                refused(hsm("DELETE", f"{RD}/{g1}"), "DELETE while assigned",
                        "The role definition is assigned; delete its role assignments first.")
                eq(hsm("DELETE", f"/keys/k1{RA}/{assigned['name']}")[0], 200)
                assigned = None
                st, _, gone = hsm("DELETE", f"{RD}/{g1}")
                eq(st, 200, gone)
                exactly(gone, first)
                eq(definitions(), [d for d in before if d["name"] != g1])
                for method in ("DELETE", "GET"):
                    not_found(hsm(method, f"{RD}/{g1}"), "RoleDefinitionNotFound",
                              "Requested role definition not found", f"{method} once deleted")
                    not_found(hsm(method, f"{RD}/{g}"), "RoleDefinitionNotFound",
                              "Requested role definition not found", f"{method} of an unknown")
                # and an assignment may no longer name it
                st, _, body = assign(USER["objectId"], DEF_PREFIX + g1)
                eq((st, body["error"]["code"]), (400, "BadParameter"), body)
                eq(triples(assignments()), FILE_ASSIGNMENTS)
            finally:
                if assigned is not None:
                    hsm("DELETE", f"/keys/k1{RA}/{assigned['name']}")
                hsm("DELETE", f"{RD}/{g1}")

        # ---- 11. a custom role is its HSM's own ------------------------------------------------

        @runner.test
        def a_custom_role_is_its_hsm_s_own():
            g, mine = new_def("Shared name", [{"dataActions": [ACTION + "keys/read/action"]}])
            arm, made7, arm_made = str(uuid.uuid4()), None, False
            mtok = tok(APP, MGMT)
            defs_path = f"/subscriptions/{SUB}{RD}"

            def rm(method, path, body=None):
                """Resource Manager's Microsoft.Authorization: (status, parsed body)."""
                sep = "&" if "?" in path else "?"
                st, _, resp = kv.https(method, f"{path}{sep}{AUTHZ}", body, token=mtok)
                return st, (json.loads(resp) if resp else None)

            try:
                before7, ras7 = definitions("hsm7"), assignments("hsm7")
                eq([d["name"] for d in before7], [r[0] for r in ROLES])
                for method in ("GET", "DELETE"):
                    not_found(hsm(method, f"{RD}/{g}", name="hsm7"), "RoleDefinitionNotFound",
                              "Requested role definition not found", f"{method} of hsm1's at hsm7")
                for role in (DEF_PREFIX + g, g):
                    st, _, body = assign(MAKER["objectId"], role, name="hsm7")
                    eq((st, body["error"]["code"]), (400, "BadParameter"), (role, body))
                    eq(assignments("hsm7"), ras7, role)
                # its GUID is taken at hsm7 too; its name is not (names are an HSM's own)
                bad_parameter(put_def(g, {"properties": {"roleName": "Another"}}, name="hsm7"),
                              "hsm1's GUID at hsm7")
                eq(definitions("hsm7"), before7)
                made7, body7 = new_def("Shared name", [], name="hsm7")
                exactly(body7, rd_json(made7, "Shared name"))
                not_found(hsm("GET", f"{RD}/{made7}"), "RoleDefinitionNotFound",
                          "Requested role definition not found", "hsm7's at hsm1")
                exactly(hsm("GET", f"{RD}/{g}")[2], mine)

                # Resource Manager neither lists, reads, deletes, replaces nor assigns it
                st, listed = rm("GET", defs_path)
                eq(st, 200, listed)
                check(not [d for d in listed["value"] if d["name"] in (g, made7)
                           or d["properties"]["roleName"] == "Shared name"], listed)
                st, listed = rm("GET", f"{defs_path}?$filter=roleName%20eq%20'Shared%20name'")
                eq((st, listed), (200, {"value": []}))
                st, body = rm("GET", f"{defs_path}/{g}")
                eq((st, body["error"]["code"]), (404, "RoleDefinitionDoesNotExist"), body)
                eq(rm("DELETE", f"{defs_path}/{g}"), (204, None))
                exactly(hsm("GET", f"{RD}/{g}")[2], mine)
                st, body = rm("PUT", f"{defs_path}/{g}", {"properties": {
                    "roleName": "Taken over", "type": "CustomRole",
                    "permissions": [{"dataActions": ["Microsoft.KeyVault/vaults/keys/read"]}],
                    "assignableScopes": [f"/subscriptions/{SUB}"]}})
                eq(st, 400, body)
                st, body = rm("PUT", f"/subscriptions/{SUB}{RA}/{uuid.uuid4()}", {"properties": {
                    "roleDefinitionId": f"{defs_path}/{g}", "principalId": USER["objectId"]}})
                eq(st, 400, body)
                eq(rm("GET", f"{defs_path}/{g}")[0], 404)
                exactly(hsm("GET", f"{RD}/{g}")[2], mine)
                eq(definitions()[-1], mine)

                # nor is a Resource Manager custom role one of the HSM's
                st, body = rm("PUT", f"{defs_path}/{arm}", {"properties": {
                    "roleName": f"Resource Manager's {arm[:8]}", "description": "",
                    "type": "CustomRole", "permissions": [{
                        "actions": [], "notActions": [], "notDataActions": [],
                        "dataActions": ["Microsoft.KeyVault/vaults/keys/read"]}],
                    "assignableScopes": [f"/subscriptions/{SUB}"]}})
                eq(st, 201, body)
                arm_made = True
                not_found(hsm("GET", f"{RD}/{arm}"), "RoleDefinitionNotFound",
                          "Requested role definition not found", "Resource Manager's at hsm1")
                ras = assignments()
                for role in (DEF_PREFIX + arm, arm, f"{defs_path}/{arm}"):
                    st, _, body = assign(USER["objectId"], role)
                    eq((st, body["error"]["code"]), (400, "BadParameter"), (role, body))
                eq(assignments(), ras)
                bad_parameter(put_def(arm, {"properties": {"roleName": "Taken GUID"}}),
                              "Resource Manager's GUID")
                st, body = rm("GET", f"{defs_path}/{arm}")
                eq((st, body["properties"]["roleName"]), (200, f"Resource Manager's {arm[:8]}"))
            finally:
                if made7 is not None:
                    eq(hsm("DELETE", f"{RD}/{made7}", name="hsm7")[0], 200)
                eq(hsm("DELETE", f"{RD}/{g}")[0], 200)
                if arm_made:
                    eq(rm("DELETE", f"{defs_path}/{arm}")[0], 200)

        # ---- 12. who may write and delete custom roles -----------------------------------------

        @runner.test
        def who_may_write_and_delete_custom_roles():
            g, mine = new_def("Guarded", [{"dataActions": [ACTION + "keys/read/action"]}])
            fresh = str(uuid.uuid4())
            try:
                before = definitions()
                # a Crypto User reads definitions, but writes and deletes none
                st, _, body = hsm("GET", RD, who=MAKER)
                eq((st, body), (200, {"value": before}))
                exactly(hsm("GET", f"{RD}/{g}", who=MAKER)[2], mine)
                for scope in ("", "/keys"):
                    at = scope or "/"
                    denied(put_def(fresh, {"properties": {"roleName": "By a user"}}, who=MAKER,
                                   scope=scope), "roleDefinitions/write/action", at, "a user's PUT")
                    denied(put_def(g, {"properties": {"roleName": "Renamed by a user"}},
                                   who=MAKER, scope=scope), "roleDefinitions/write/action", at,
                           "a user's replacement")
                    denied(hsm("DELETE", f"{scope}{RD}/{g}", who=MAKER),
                           "roleDefinitions/delete/action", at, "a user's DELETE")
                user = access(MAKER)
                sdk_denied(lambda: user.set_role_definition(KeyVaultRoleScope.GLOBAL, name=fresh,
                                                            role_name="By a user"),
                           "roleDefinitions/write/action", "/", "a user's PUT (SDK)")
                sdk_denied(lambda: user.delete_role_definition(KeyVaultRoleScope.GLOBAL, g),
                           "roleDefinitions/delete/action", "/", "a user's DELETE (SDK)")
                eq(definitions(), before)
                # a Crypto Officer writes and deletes them
                st, _, body = put_def(fresh, {"properties": {"roleName": "By the officer"}},
                                      who=OFFICER)
                eq(st, 201, body)
                exactly(body, rd_json(fresh, "By the officer"))
                st, _, body = hsm("DELETE", f"{RD}/{fresh}", who=OFFICER)
                eq(st, 200, body)
                exactly(body, rd_json(fresh, "By the officer"))
                eq(definitions(), before)
            finally:
                eq(hsm("DELETE", f"{RD}/{g}")[0], 200)

        # ---- 13. the audit log -----------------------------------------------------------------

        @runner.test
        def the_audit_log_names_the_hsm():
            g = str(uuid.uuid4())
            st, hdrs, body = hsm("PUT", f"/keys{RA}/{g}", {"properties": {
                "roleDefinitionId": CRYPTO_AUDITOR, "principalId": SCOPED["objectId"]}})
            eq(st, 201, body)
            eq(hsm("DELETE", f"/keys{RA}/{g}")[0], 200)
            # a custom role made and deleted, and a refused PUT of one
            d = str(uuid.uuid4())
            st, def_put, body = put_def(d, {"properties": {"roleName": "Audited"}})
            eq(st, 201, body)
            st, def_del, body = hsm("DELETE", f"{RD}/{d}")
            eq(st, 200, body)
            st, def_refused, body = put_def(d, {"properties": {}}, who=MAKER)
            eq(st, 403, body)
            records = kv.audit_records()
            for hdrs_, op, status, result in (
                    (def_put, "RoleDefinitionCreate", 201, "Success"),
                    (def_del, "RoleDefinitionDelete", 200, "Success"),
                    (def_refused, "RoleDefinitionCreate", 403, "Success")):
                mine = [r for r in records
                        if r["properties"]["requestId"] == hdrs_["x-ms-request-id"]]
                eq(len(mine), 1, (op, mine))
                rec = mine[0]
                eq((rec["operationName"], rec["properties"]["httpStatusCode"], rec["resultType"],
                    rec["properties"]["vault"], rec["properties"]["requestUri"]),
                   (op, status, result, "hsm1", f"https://{host()}{RD}/{d}?api-version=7.4"), rec)
                check(rec["resourceId"].endswith("/PROVIDERS/MICROSOFT.KEYVAULT/MANAGEDHSMS/HSM1"),
                      rec["resourceId"])
            eq(caller_oid([r for r in records if r["properties"]["requestId"] ==
                           def_refused["x-ms-request-id"]][0]), MAKER["objectId"])
            made = [r for r in records if r["operationName"] == "RoleAssignmentCreate"
                    and r["properties"]["requestId"] == hdrs["x-ms-request-id"]]
            eq(len(made), 1, made)
            rec = made[0]
            check(rec["resourceId"].endswith("/PROVIDERS/MICROSOFT.KEYVAULT/MANAGEDHSMS/HSM1"),
                  rec["resourceId"])
            check(rec["resourceId"].startswith(f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/"), rec)
            eq((caller_oid(rec), rec["properties"]["httpStatusCode"], rec["properties"]["vault"],
                rec["resultType"], rec["operationVersion"]),
               (ADMIN["objectId"], 201, "hsm1", "Success", "7.4"), rec)
            eq(rec["properties"]["requestUri"],
               f"https://{host()}/keys{RA}/{g}?api-version=7.4")
            ops = {r["operationName"] for r in records
                   if r.get("resourceId", "").endswith("/MANAGEDHSMS/HSM1")}
            for op in ("RoleAssignmentList", "RoleAssignmentGet", "RoleAssignmentDelete",
                       "RoleDefinitionList", "RoleDefinitionGet", "KeyCreate"):
                check(op in ops, (op, sorted(ops)))
            # a refusal is recorded too, with Managed HSM's message
            refusals = [r for r in records if r["properties"]["httpStatusCode"] == 403
                        and r.get("resourceId", "").endswith("/MANAGEDHSMS/HSM1")]
            check(any(r["resultDescription"].startswith(
                f"Not authorized to access {ACTION}keys/create on /keys") for r in refusals),
                refusals[:3])
            # hsm7's calls name hsm7, a vault's calls a vault
            check(not any(r.get("resourceId", "").endswith("/MANAGEDHSMS/VAULT1")
                          for r in records))

        # ---- 14. recovery level from the retention ---------------------------------------------

        @runner.test
        def a_seven_day_hsm_answers_customized_recoverable():
            body = make_key("r7", "oct", hsm_name="hsm7")
            eq(body["key"]["kty"], "oct-HSM")
            check("k" not in body["key"], body)
            check(body["key"]["kid"].startswith(f"{hsm_url('hsm7')}/keys/r7/"), body)
            attrs = body["attributes"]
            eq((attrs["recoveryLevel"], attrs["recoverableDays"], attrs["exportable"]),
               ("CustomizedRecoverable+Purgeable", 7, False), attrs)
            sdk = keys(MAKER, "hsm7").create_rsa_key("r7rsa")
            eq((sdk.key_type, sdk.properties.recovery_level, sdk.properties.recoverable_days),
               ("RSA-HSM", "CustomizedRecoverable+Purgeable", 7))
            st, _, gone = hsm("DELETE", "/keys/r7", who=MAKER, name="hsm7")
            eq(st, 200, gone)
            eq(gone["recoveryId"], f"{hsm_url('hsm7')}/deletedkeys/r7")
            eq(gone["scheduledPurgeDate"] - gone["deletedDate"], 7 * 86400, gone)
            # hsm1 keeps 90 days
            body = make_key("r90", "EC")
            eq((body["key"]["kty"], body["attributes"]["recoveryLevel"],
                body["attributes"]["recoverableDays"]), ("EC-HSM", "Recoverable+Purgeable", 90))
            # hsm7's keys are not hsm1's
            eq(hsm("GET", "/keys/r7rsa", who=MAKER)[0], 404)

        # ---- 15. Resource Manager reads the HSMs -----------------------------------------------

        @runner.test
        def resource_manager_reads_the_hsms():
            now = kv.advance_clock(0)
            st, listed = arm("GET", SUB_HSMS)
            eq(st, 200, listed)
            eq(list(listed), ["value"], listed)  # one page: no nextLink
            eq([h["name"] for h in listed["value"]], ["hsm1", "hsm7"], listed)
            for h in listed["value"]:
                # made by kvmock itself, from its file: the time alone
                sd = h["systemData"]
                eq((sorted(sd), sd["lastModifiedAt"]),
                   (["createdAt", "lastModifiedAt"], sd["createdAt"]), sd)
                check(iso(sd["createdAt"]) <= now, (sd, now))
            want = [hsm_arm("hsm1", listed["value"][0]["systemData"]),
                    hsm_arm("hsm7", listed["value"][1]["systemData"], days=7)]
            eq(listed["value"], want)
            # the file's group lists both, whatever its case; each is read alone, by any case
            for path in (ARM_HSMS, ARM_HSMS.replace("/kvmock/", "/KVMOCK/")):
                eq(arm("GET", path), (200, {"value": want}), path)
            for one in want:
                for name in (one["name"], one["name"].upper()):
                    eq(arm("GET", f"{ARM_HSMS}/{name}"), (200, one), name)
            # another group holds none; none is deleted
            eq(arm("GET", f"{GROUP}/rg/providers/Microsoft.KeyVault/managedHSMs"),
               (200, {"value": []}))
            eq(arm("GET", DELETED_HSMS), (200, {"value": []}))
            # another group's, a vault's name, an unknown name
            for group, name in (("rg", "hsm1"), ("kvmock", "vault1"), ("kvmock", "nohsm")):
                eq(arm("GET", f"{GROUP}/{group}/providers/Microsoft.KeyVault/managedHSMs/{name}"),
                   arm_not_found(name, group), (group, name))
            st, body = arm("GET", f"{ARM_HSMS}/hsm1", api="api-version=1999-01-01")
            eq((st, body["error"]["code"]), (400, "BadRequest"), body)
            # the hsmUri leads to the HSM
            uri = urllib.parse.urlsplit(want[1]["properties"]["hsmUri"])
            st, _, body = kv.https("GET", f"{uri.path}keys?api-version=7.4", token=tok(MAKER),
                                   host=uri.netloc)
            eq(st, 200, body)
            # the vault lists never show an HSM; Resource Manager's resources show both, as
            # generic resources, and filter them by type
            vault1 = f"{GROUP}/kvmock/providers/Microsoft.KeyVault/vaults/vault1"
            for path in (f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/vaults",
                         f"{GROUP}/kvmock/providers/Microsoft.KeyVault/vaults"):
                st, body = arm("GET", path)
                eq((st, [(v["id"], v["type"]) for v in body["value"]]),
                   (200, [(vault1, "Microsoft.KeyVault/vaults")]), path)
            hsm_resources = [{"id": h["id"], "name": h["name"], "type": h["type"],
                              "location": h["location"], "tags": h["tags"]} for h in want]
            resources = f"/subscriptions/{SUB}/resources"
            by_type = f"{resources}?$filter=resourceType%20eq%20%27Microsoft.KeyVault%2F"
            for path, names in ((resources, ["hsm1", "hsm7", "vault1"]),
                                (f"{GROUP}/kvmock/resources", ["hsm1", "hsm7", "vault1"]),
                                (f"{GROUP}/rg/resources", []),
                                (f"{by_type}vaults%27", ["vault1"]),
                                (f"{by_type}managedHSMs%27", ["hsm1", "hsm7"])):
                st, body = arm("GET", path, api="api-version=2021-04-01")
                eq((st, [r["name"] for r in body["value"]]), (200, names), path)
                for r in body["value"]:
                    if r["name"] == "vault1":
                        eq((r["id"], r["type"]), (vault1, "Microsoft.KeyVault/vaults"), path)
                    else:
                        eq(r, hsm_resources[names.index(r["name"])], path)
            # the audit log names Resource Manager's operations
            records = kv.audit_records()

            def ops(path):
                return {(r["operationName"], r["properties"]["httpStatusCode"]) for r in records
                        if r["properties"]["requestUri"] == f"https://localhost:{P}{path}"}

            eq(ops(f"{SUB_HSMS}?{ARM_API}"), {("ManagedHsmList", 200)})
            eq(ops(f"{ARM_HSMS}/hsm1?{ARM_API}"), {("ManagedHsmGet", 200)})
            eq(ops(f"{GROUP}/rg/providers/Microsoft.KeyVault/managedHSMs/hsm1?{ARM_API}"),
               {("ManagedHsmGet", 404)})
            # and the HSM as the HSM it is: its resource id and its own URL
            got = [r for r in records
                   if r["properties"]["requestUri"] == f"https://localhost:{P}{ARM_HSMS}/hsm1?{ARM_API}"]
            check(got, "the GET's record")
            for r in got:
                eq(r["resourceId"], f"/SUBSCRIPTIONS/{SUB}/RESOURCEGROUPS/KVMOCK/PROVIDERS/"
                                    "MICROSOFT.KEYVAULT/MANAGEDHSMS/HSM1", r)
                eq(r["properties"]["id"], f"https://hsm1.managedhsm.localhost:{P}/", r)

        @runner.test
        def the_management_sdk_reads_the_hsms():
            st, listed = arm("GET", SUB_HSMS)
            eq(st, 200, listed)

            def known(h):
                """Raw answer @h less what the SDK's api-version (2022-07-01) does not know,
                its times in seconds."""
                d = json.loads(json.dumps(h))
                for k in ("securityDomainProperties", "regions"):
                    del d["properties"][k]
                d["systemData"] = {k: iso(v) for k, v in d["systemData"].items()}
                return d

            def sdk_view(h):
                """The SDK's ManagedHsm @h as known() has an answer."""
                d = h.serialize(keep_readonly=True)
                eq(sorted(d["systemData"]), ["createdAt", "lastModifiedAt"], d)
                d["systemData"] = {
                    "createdAt": int(h.system_data.created_at.timestamp()),
                    "lastModifiedAt": int(h.system_data.last_modified_at.timestamp())}
                return d

            want = [known(h) for h in listed["value"]]
            km = management()
            eq([sdk_view(h) for h in km.managed_hsms.list_by_subscription()], want)
            eq([sdk_view(h) for h in km.managed_hsms.list_by_resource_group("kvmock")], want)
            eq(list(km.managed_hsms.list_by_resource_group("rg")), [])
            one = km.managed_hsms.get("kvmock", "hsm7")
            eq(sdk_view(one), want[1])
            eq((one.name, one.properties.hsm_uri, one.properties.soft_delete_retention_in_days,
                one.properties.enable_soft_delete, one.properties.provisioning_state,
                one.sku.family, one.sku.name, one.properties.initial_admin_object_ids),
               ("hsm7", f"{hsm_url('hsm7')}/", 7, True, "Succeeded", "B", "Standard_B1",
                [ADMIN["objectId"]]))
            for group, name in (("rg", "hsm1"), ("kvmock", "vault1"), ("kvmock", "nohsm")):
                try:
                    km.managed_hsms.get(group, name)
                    raise AssertionError(f"{group}/{name} found")
                except ResourceNotFoundError as e:
                    eq((e.status_code, {"error": {"code": e.error.code,
                                                  "message": e.error.message}}),
                       arm_not_found(name, group), (group, name))
            eq(list(km.managed_hsms.list_deleted()), [])
            # its vault lists show no HSM
            eq([v.name for v in km.vaults.list_by_subscription()], ["vault1"])
            eq([v.name for v in km.vaults.list_by_resource_group("kvmock")], ["vault1"])
            eq([(v.name, v.type) for v in km.vaults.list()],
               [("vault1", "Microsoft.KeyVault/vaults")])

        # ---- 16. Resource Manager's vault calls on an HSM's name -------------------------------
        # (creating, changing, deleting, recovering and purging HSMs: test_hsm_arm.py)

        @runner.test
        def vault_calls_on_an_hsm_name_find_no_vault():
            def state():
                """What a write could have changed: Resource Manager's view, the HSMs' local
                assignments, definitions and keys."""
                return (arm("GET", SUB_HSMS), arm("GET", DELETED_HSMS), assignments(),
                        assignments("hsm7"), definitions(), hsm("GET", "/keys", who=MAKER)[2],
                        hsm("GET", "/keys", who=MAKER, name="hsm7")[2])

            before = state()
            # Resource Manager's vault calls on an HSM's name find no vault and change nothing
            vault = f"{GROUP}/kvmock/providers/Microsoft.KeyVault/vaults/hsm1"
            eq(arm("DELETE", vault), (204, None))  # as for any vault that is not there
            for method, path, body in (
                    ("PATCH", vault, {"properties": {"enableRbacAuthorization": True}}),
                    ("PUT", f"{vault}/accessPolicies/add", {"properties": {"accessPolicies": [
                        {"tenantId": TENANT, "objectId": USER["objectId"],
                         "permissions": {"keys": ["all"]}}]}}),
                    ("PUT", f"{vault}/keys/armkey", {"properties": {"kty": "RSA"}}),
                    ("GET", f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/locations/local/"
                            "deletedVaults/hsm1", None),
                    ("POST", f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/locations/local/"
                             "deletedVaults/hsm1/purge", None)):
                st, got = arm(method, path, body)
                eq((st, got["error"]["code"]), (404, "ResourceNotFound"), (method, path, got))
            eq(state(), before)

        @runner.test
        def only_who_may_manage_reads_the_hsms():
            def refused(got, action, scope, what):
                eq(got, (403, {"error": {"code": "AuthorizationFailed", "message": (
                    f"The client '{ADMIN['clientId']}' with object id '{ADMIN['objectId']}' does "
                    f"not have authorization to perform action '{action}' over scope '{scope}' "
                    "or the scope is invalid.")}}), what)

            # the HSM's own administrator may not manage: Resource Manager refuses it the HSMs
            # as it refuses it the vaults
            vaults = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/vaults"
            vault1 = f"{GROUP}/kvmock/providers/Microsoft.KeyVault/vaults/vault1"
            refused(arm("GET", vaults, who=ADMIN), "Microsoft.KeyVault/vaults/read", vaults,
                    "the vaults")
            refused(arm("GET", vault1, who=ADMIN), "Microsoft.KeyVault/vaults/read", vault1,
                    "a vault")
            for path in (SUB_HSMS, ARM_HSMS, f"{ARM_HSMS}/hsm1", f"{ARM_HSMS}/nohsm"):
                refused(arm("GET", path, who=ADMIN), "Microsoft.KeyVault/managedHSMs/read", path,
                        path)
            refused(arm("GET", DELETED_HSMS, who=ADMIN), "Microsoft.KeyVault/deletedManagedHsms/read",
                    DELETED_HSMS, "the deleted HSMs")
            for method in ("PUT", "PATCH"):
                refused(arm(method, f"{ARM_HSMS}/hsm1", {"tags": {}}, who=ADMIN),
                        "Microsoft.KeyVault/managedHSMs/write", f"{ARM_HSMS}/hsm1", method)
            refused(arm("DELETE", f"{ARM_HSMS}/hsm1", who=ADMIN),
                    "Microsoft.KeyVault/managedHSMs/delete", f"{ARM_HSMS}/hsm1", "DELETE")
            refused(arm("DELETE", vault1, who=ADMIN), "Microsoft.KeyVault/vaults/delete", vault1,
                    "a vault's DELETE")
            km = management(ADMIN)
            sdk_refused(lambda: list(km.managed_hsms.list_by_subscription()), 403,
                        "AuthorizationFailed", what="the SDK's list")
            sdk_refused(lambda: km.managed_hsms.get("kvmock", "hsm1"), 403,
                        "AuthorizationFailed", what="the SDK's get")
            # a token for the HSM or a vault, or none
            for aud in (HSM_AUD, "https://vault.azure.net"):
                st, _, body = kv.https("GET", f"{ARM_HSMS}/hsm1?{ARM_API}", token=tok(APP, aud))
                err = json.loads(body)["error"]
                eq((st, err["code"]), (401, "InvalidAuthenticationTokenAudience"), (aud, err))
                check(f"wrong audience or resource '{aud}'" in err["message"], err)
            st, _, body = kv.https("GET", f"{SUB_HSMS}?{ARM_API}", token=None)
            eq((st, json.loads(body)["error"]["code"]), (401, "InvalidAuthenticationToken"), body)
            # the same calls by one who may
            eq(arm("GET", f"{ARM_HSMS}/hsm1")[0], 200)

        # ---- 17. initialAdminObjectIds: the administrators at "/" now --------------------------

        @runner.test
        def initial_admin_object_ids_follow_the_administrators():
            def admins(name="hsm1"):
                """initialAdminObjectIds of HSM @name, sorted; the list says the same."""
                st, one = arm("GET", f"{ARM_HSMS}/{name}")
                eq(st, 200, one)
                ids = one["properties"]["initialAdminObjectIds"]
                eq(len(set(ids)), len(ids), ids)
                st, listed = arm("GET", SUB_HSMS)
                eq([h for h in listed["value"] if h["name"] == name], [one])
                return sorted(ids)

            both = sorted([ADMIN["objectId"], USER["objectId"]])
            eq((admins(), admins("hsm7")), ([ADMIN["objectId"]], [ADMIN["objectId"]]))
            before, acc = assignments(), access()
            first = [a for a in before if a["properties"]["principalId"] == ADMIN["objectId"]]
            eq(len(first), 1, first)
            first = first[0]
            made = []  # (scope, name) of the assignments to delete
            try:
                # an Administrator assigned through the access control API (SDK) at "/"
                ra = acc.create_role_assignment(KeyVaultRoleScope.GLOBAL,
                                                DEF_PREFIX + ADMINISTRATOR, USER["objectId"])
                made.append(("", ra.name))
                eq(admins(), both)
                eq(admins("hsm7"), [ADMIN["objectId"]])
                eq(sorted(management().managed_hsms.get("kvmock", "hsm1")
                          .properties.initial_admin_object_ids), both)
                # an Administrator at "/keys" or at a key, another role at "/": none of them
                for principal, role, scope in ((SCOPED, ADMINISTRATOR, "/keys"),
                                               (CUSTOM, ADMINISTRATOR, "/keys/k1"),
                                               (UNION, CRYPTO_OFFICER, "")):
                    st, _, body = assign(principal["objectId"], role, scope)
                    eq(st, 201, body)
                    made.append((scope, body["name"]))
                eq(admins(), both)
                # the file's administrator's assignment deleted (by the new administrator): it
                # is no longer listed; made again (under its own name), it is
                st, _, body = hsm("DELETE", f"{RA}/{first['name']}", who=USER)
                eq((st, body), (200, first))
                eq(admins(), [USER["objectId"]])
                eq(admins("hsm7"), [ADMIN["objectId"]])
                st, _, body = hsm("PUT", f"{RA}/{first['name']}", {"properties": {
                    "roleDefinitionId": DEF_PREFIX + ADMINISTRATOR,
                    "principalId": ADMIN["objectId"]}}, who=USER)
                eq((st, body), (201, first))
                eq(admins(), both)
                # the new administrator deleted: only the file's again
                eq(hsm("DELETE", f"{RA}/{ra.name}")[0], 200)
                made.remove(("", ra.name))
                eq(admins(), [ADMIN["objectId"]])
            finally:
                # by the file's Crypto Officer, whatever ADMIN holds by now
                if hsm("GET", f"{RA}/{first['name']}", who=OFFICER)[0] == 404:
                    hsm("PUT", f"{RA}/{first['name']}", {"properties": {
                        "roleDefinitionId": DEF_PREFIX + ADMINISTRATOR,
                        "principalId": ADMIN["objectId"]}}, who=OFFICER)
                for scope, name in made:
                    hsm("DELETE", f"{scope}{RA}/{name}", who=OFFICER)
            eq(assignments(), before)
            eq(admins(), [ADMIN["objectId"]])

        # ---- 18. the Azure CLI -----------------------------------------------------------------

        @runner.test
        def az_lists_and_shows_the_hsms():
            az_bin = shutil.which("az")
            check(az_bin is not None, "az is not installed (scripts/install-deps.sh --test "
                                      "installs Debian's azure-cli)")
            commands = [["cloud", "set", "--name", "kvmock"],
                        ["login", "--identity"],
                        ["keyvault", "list", "--resource-type", "hsm"],
                        ["keyvault", "list", "--resource-type", "hsm", "-g", "kvmock"],
                        ["keyvault", "show", "--hsm-name", "hsm1", "-g", "kvmock"],
                        ["keyvault", "list-deleted", "--resource-type", "hsm"],
                        ["keyvault", "show", "--hsm-name", "hsm1", "-g", "rg"]]
            codes, out, stderr = kv.az_in_one_process(commands)
            eq(codes, [0, 0, 0, 0, 0, 0, 3], stderr[-3000:])
            eq([a["id"] for a in out[1]], [SUB])

            def az_view(item):
                return az_hsm_view(item, "kvmock")

            want = arm("GET", SUB_HSMS)[1]["value"]
            eq([az_view(h) for h in out[2]], want)
            eq([az_view(h) for h in out[3]], want)
            eq(az_view(out[4]), want[0])
            eq(out[5], [])
            # a group without it: az's exit code 3 and Resource Manager's message
            eq(out[6], None)
            check(f"(ResourceNotFound) {arm_not_found('hsm1', 'rg')[1]['error']['message']}"
                  in stderr, stderr[-3000:])

        # ---- 19. a restart ---------------------------------------------------------------------

        @runner.test
        def the_hsm_its_keys_and_assignments_survive_a_restart():
            acc = access()
            ra = acc.create_role_assignment(KeyVaultRoleScope.GLOBAL,
                                            DEF_PREFIX + CRYPTO_AUDITOR, USER["objectId"])
            # a custom role, assigned at one key
            custom = acc.set_role_definition(KeyVaultRoleScope.GLOBAL, role_name="Restarted",
                                             permissions=[KeyVaultPermission(
                                                 data_actions=[ACTION + "keys/*"],
                                                 not_data_actions=[ACTION + "keys/delete"])])
            custom_json = hsm("GET", f"{RD}/{custom.name}")[2]
            cra = acc.create_role_assignment("/keys/k1", custom.id, CUSTOM["objectId"])
            # the file's assignments are seeded when the HSM is made, not at every start: one
            # deleted through the API stays deleted
            maker7 = [a for a in assignments("hsm7")
                      if a["properties"]["principalId"] == MAKER["objectId"]]
            eq(len(maker7), 1, maker7)
            eq(hsm("DELETE", f"/keys{RA}/{maker7[0]['name']}", name="hsm7")[0], 200)
            before, before7 = assignments(), assignments("hsm7")
            eq(triples(before),
               sorted(FILE_ASSIGNMENTS + [(USER["objectId"], CRYPTO_AUDITOR, "/"),
                                          (CUSTOM["objectId"], custom.name, "/keys/k1")]))
            eq(triples(before7), [(ADMIN["objectId"], ADMINISTRATOR, "/")])
            k1 = keys(USER).get_key("k1")
            kv.restart()
            eq(assignments(), before)
            eq(assignments("hsm7"), before7)
            got = acc.get_role_assignment(KeyVaultRoleScope.GLOBAL, ra.name)
            eq((got.properties.principal_id, got.properties.scope), (USER["objectId"], "/"))
            # the auditor reads keys, and only reads
            again = keys(USER).get_key("k1")
            eq((again.id, again.key.n), (k1.id, k1.key.n))
            sdk_denied(lambda: keys(USER).create_rsa_key("after"), "keys/create",
                       what="auditor creates")
            eq(keys(MAKER).create_rsa_key("after").key_type, "RSA-HSM")
            # the custom role is as it was, and its assignment grants what it did
            exactly(hsm("GET", f"{RD}/{custom.name}")[2], custom_json)
            eq(definitions()[-1], custom_json)
            eq(keys(CUSTOM).get_key("k1").id, k1.id)
            denied(hsm("DELETE", "/keys/k1", who=CUSTOM), "keys/delete",
                   what="the custom role's notDataActions after a restart")
            sdk_denied(lambda: keys(CUSTOM).get_key("k2"), "keys/read/action",
                       what="another key than the custom role's after a restart")
            acc.delete_role_assignment("/keys/k1", cra.name)
            acc.delete_role_definition(KeyVaultRoleScope.GLOBAL, custom.name)
            st, _, body = kv.https("GET", "/keys?api-version=7.4", token=None, host=host())
            eq(st, 401, body)
            acc.delete_role_assignment(KeyVaultRoleScope.GLOBAL, ra.name)
            kv.restart()
            eq(triples(assignments()), FILE_ASSIGNMENTS)
            eq(assignments("hsm7"), before7)
            not_found(hsm("GET", f"{RD}/{custom.name}"), "RoleDefinitionNotFound",
                      "Requested role definition not found", "the deleted role after a restart")
            eq([d["name"] for d in definitions()], [r[0] for r in ROLES])
            sdk_denied(lambda: keys(USER).get_key("k1"), "keys/read/action",
                       what="get after the deleted assignment and a restart")
            sdk_denied(lambda: keys(CUSTOM).get_key("k1"), "keys/read/action",
                       what="the custom role's principal after a restart")
            sdk_denied(lambda: keys(MAKER, "hsm7").get_key("r7rsa"), "keys/read/action",
                       what="hsm7 after its file assignment was deleted")

        runner.run_collected()

    # ---- 20. configurations refused at start ---------------------------------------------------

    @runner.test
    def configurations_kvmock_refuses():
        work = tempfile.mkdtemp(prefix="kvmock-hsm-refused-")
        hsm = {"name": "hsmx", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]]}}

        def config(**over):
            base = {"tenantId": TENANT, "identities": [APP, ADMIN], "managedHsms": [hsm]}
            base.update(over)
            return base

        try:
            start_refused(args.kvmock, work, "no-admins", config(managedHsms=[
                {"name": "hsmx", "properties": {"softDeleteRetentionInDays": 7}}]),
                ["managed HSM 'hsmx': initialAdminObjectIds must list the object ids"])
            start_refused(args.kvmock, work, "empty-admins", config(managedHsms=[
                {"name": "hsmx", "properties": {"initialAdminObjectIds": []}}]),
                ["managed HSM 'hsmx': initialAdminObjectIds must list the object ids"])
            start_refused(args.kvmock, work, "no-properties", config(managedHsms=[
                {"name": "hsmx"}]), ["initialAdminObjectIds"])
            start_refused(args.kvmock, work, "no-soft-delete", config(managedHsms=[
                {"name": "hsmx", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]],
                                                "enableSoftDelete": False}}]),
                ["managed HSM 'hsmx'", "enableSoftDelete must be true"])
            start_refused(args.kvmock, work, "retention", config(managedHsms=[
                {"name": "hsmx", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]],
                                                "softDeleteRetentionInDays": 6}}]),
                ["softDeleteRetentionInDays must be an integer between 7 and 90"])
            start_refused(args.kvmock, work, "unknown-field", config(managedHsms=[
                {"name": "hsmx", "properties": {"initialAdminObjectIds": [ADMIN["objectId"]],
                                                "sku": "Standard_B1"}}]), ["sku"])
            start_refused(args.kvmock, work, "vault-and-hsm", config(vaults=[{"name": "hsmx"}]),
                          ["'hsmx' names a vault already"])
            start_refused(args.kvmock, work, "hsm-twice", config(managedHsms=[hsm, hsm]),
                          ["'hsmx' names a managed HSM already"])
            start_refused(args.kvmock, work, "key-vault-role", config(roleAssignments=[
                {"principalId": ADMIN["objectId"], "roleDefinitionName": "Key Vault Crypto User",
                 "scope": "/managedHSMs/hsmx/keys"}]),
                ["roleAssignments[0]", "unknown role 'Key Vault Crypto User' "
                                       "(not a Managed HSM role)"])
            start_refused(args.kvmock, work, "key-vault-role-id", config(roleAssignments=[
                {"principalId": ADMIN["objectId"], "roleDefinitionId": KV_CRYPTO_USER,
                 "scope": "/managedHSMs/hsmx"}]),
                [f"unknown role '{KV_CRYPTO_USER}' (not a Managed HSM role)"])
            start_refused(args.kvmock, work, "unknown-hsm", config(roleAssignments=[
                {"principalId": ADMIN["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
                 "scope": "/managedHSMs/nohsm/keys"}]),
                ["roleAssignments[0]", "scope '/managedHSMs/nohsm/keys' must be /managedHSMs/NAME"])
            start_refused(args.kvmock, work, "unknown-hsm-arm", config(roleAssignments=[
                {"principalId": ADMIN["objectId"], "roleDefinitionName": "Managed HSM Crypto User",
                 "scope": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/"
                          "managedHSMs/nohsm"}]),
                ["scope '/subscriptions/", "managedHSMs/nohsm' must be /managedHSMs/NAME"])
            start_refused(args.kvmock, work, "hsm-role-on-vault", config(
                vaults=[{"name": "vaultx", "properties": {"enableRbacAuthorization": True}}],
                roleAssignments=[{"principalId": ADMIN["objectId"],
                                  "roleDefinitionName": "Managed HSM Crypto User",
                                  "scope": "/vaults/vaultx"}]),
                ["roleAssignments[0]", "unknown role 'Managed HSM Crypto User'"])
            start_refused(args.kvmock, work, "admin-twice", config(roleAssignments=[
                {"principalId": ADMIN["objectId"],
                 "roleDefinitionName": "Managed HSM Administrator",
                 "scope": "/managedHSMs/hsmx", "name": str(uuid.uuid4())}]),
                ["roleAssignments[0] repeats an initial administrator of managed HSM 'hsmx'"])
        finally:
            shutil.rmtree(work, ignore_errors=True)

    runner.run_tests(runner.tests[-1:])
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
