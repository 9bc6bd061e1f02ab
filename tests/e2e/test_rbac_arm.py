"""Role definitions and role assignments through Microsoft.Authorization, as Azure
answers them, driven by Debian's azure-mgmt-authorization (unmodified) and raw HTTP:
the built-in Key Vault role definitions and their lookup by name, assignment lists at
every scope with atScope(), principalId and assignedTo() filters, one assignment per
principal, role and scope (409 RoleAssignmentExists), immutable assignments (400
RoleAssignmentUpdateNotPermitted), GUID names (400 InvalidRoleAssignmentId), the
assignments at a vault's scope going with the vault (recovery does not restore them), and
Resource Manager's key calls on an RBAC vault held to the caller's data roles."""
import json
import os
import secrets
import sys
import threading
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, TENANT, APP  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
from azure.mgmt.keyvault import KeyVaultManagementClient

DISK = {"name": "disk", "objectId": "0a000000-0000-4000-8000-0000000000d1",
        "clientId": "0c000000-0000-4000-8000-0000000000d1"}
# an operator: manages vaults through Resource Manager, and holds no data role of its own
OPS = {"name": "ops", "objectId": "0a000000-0000-4000-8000-0000000000b1",
       "clientId": "0c000000-0000-4000-8000-0000000000b1", "manage": True}
CONFIG = {"tenantId": TENANT, "identities": [APP, DISK, OPS]}
SUB = "00000000-0000-0000-0000-000000000000"
AUTHZ = "api-version=2022-04-01"
NOBODY = "0a000000-0000-4000-8000-0000000000e1"  # a principal kvmock issues no tokens for
ROLES = {
    "Key Vault Administrator": "00482a5a-887f-4fb3-b363-3b7fe8e74483",
    "Key Vault Crypto Officer": "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
    "Key Vault Crypto User": "12338af0-0e69-4776-bea7-57ae8d297424",
    "Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
    "Key Vault Reader": "21090545-7ca7-4776-b22c-e363652d74d2",
    "Key Vault Crypto Service Release User": "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
    "Key Vault Certificate User": "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
    "Key Vault Certificates Officer": "a4417e6f-fecd-4de8-b567-7b0420556985",
    "Key Vault Secrets Officer": "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
    "Key Vault Secrets User": "4633458b-17de-408a-b874-0445c86b69e6",
    "Key Vault Contributor": "f25e0fa2-a7c8-4377-a976-54943a77a395",
    "Key Vault Data Access Administrator": "8b54135c-b56d-4d72-a534-26097cfdc8d8",
}


def group_scope(group):
    return f"/subscriptions/{SUB}/resourceGroups/{group}"


def vault_scope(group, vault):
    return f"{group_scope(group)}/providers/Microsoft.KeyVault/vaults/{vault}"


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        authority = f"https://localhost:{kv.https_port}"
        opts = {"base_url": authority, "credential_scopes": ["https://management.azure.com/.default"]}
        app_cred = ManagedIdentityCredential()
        disk_cred = ManagedIdentityCredential(client_id=DISK["clientId"])
        am = AuthorizationManagementClient(app_cred, SUB, **opts)
        km = KeyVaultManagementClient(app_cred, SUB, **opts)

        def mgmt(method, path, body=None):
            tok = kv.token("https://management.azure.com")
            st, _, resp = kv.https(method, path, body, token=tok)
            return st, (json.loads(resp) if resp else None)

        def make_vault(group, name, soft_delete=True):
            return km.vaults.begin_create_or_update(group, name, {
                "location": "westeurope", "properties": {
                    "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"},
                    "enable_rbac_authorization": True, "enable_soft_delete": soft_delete,
                    "soft_delete_retention_in_days": 7}}).result()

        def role_id(name):
            # how scripts find a role: by name, through the role definitions
            found = list(am.role_definitions.list(f"/subscriptions/{SUB}",
                                                  filter=f"roleName eq '{name}'"))
            eq(len(found), 1, name)
            return found[0].id

        def assign(scope, role, principal, name=None):
            # The SDK's model says principal_type "User" unless told; Azure then refuses a
            # service principal (UnmatchedPrincipalType), as kvmock does for its identities
            return am.role_assignments.create(
                scope, name or str(uuid.uuid4()),
                RoleAssignmentCreateParameters(role_definition_id=role_id(role),
                                               principal_id=principal,
                                               principal_type="ServicePrincipal"))

        def names(assignments):
            return sorted(a.name for a in assignments)

        @runner.test
        def every_api_version_of_the_installed_management_sdk_reads_a_vault():
            # Debian's azure-mgmt-keyvault carries models for older api-versions, previews
            # among them; a script pinned to one still reads the vault through it
            make_vault("versions-rg", "versions")
            for version in ("2016-10-01", "2018-02-14", "2019-09-01", "2020-04-01-preview",
                            "2021-04-01-preview", "2021-06-01-preview", "2021-10-01",
                            "2022-07-01"):
                client = KeyVaultManagementClient(app_cred, SUB, api_version=version, **opts)
                got = client.vaults.get("versions-rg", "versions")
                eq((got.name, got.properties.tenant_id), ("versions", TENANT), version)

        @runner.test
        def role_definitions_are_the_built_in_key_vault_roles():
            defs = list(am.role_definitions.list(f"/subscriptions/{SUB}"))
            eq(sorted((d.role_name, d.name) for d in defs), sorted(ROLES.items()))
            for d in defs:
                eq(d.id, f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                         f"roleDefinitions/{d.name}")
                eq((d.type, d.role_type, d.assignable_scopes),
                   ("Microsoft.Authorization/roleDefinitions", "BuiltInRole", ["/"]))
                check(d.description.endswith(".") and "Key Vault" in d.description.title(),
                      d.description)
            by_name = {d.role_name: d for d in defs}
            eq(by_name["Key Vault Crypto Service Encryption User"].permissions[0].data_actions,
               ["Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
                "Microsoft.KeyVault/vaults/keys/unwrap/action"])
            eq(len(by_name["Key Vault Crypto User"].permissions[0].data_actions), 9)
            eq(by_name["Key Vault Crypto Officer"].permissions[0].data_actions,
               ["Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*"])
            eq(by_name["Key Vault Crypto User"].permissions[0].actions, [])
            eq(by_name["Key Vault Secrets User"].permissions[0].data_actions,
               ["Microsoft.KeyVault/vaults/secrets/getSecret/action",
                "Microsoft.KeyVault/vaults/secrets/readMetadata/action"])
            eq(by_name["Key Vault Contributor"].permissions[0].not_actions,
               ["Microsoft.KeyVault/locations/deletedVaults/purge/action",
                "Microsoft.KeyVault/hsmPools/*", "Microsoft.KeyVault/managedHsms/*"])
            # the SDK's model has no place for a role's condition: raw
            st, body = mgmt("GET", f"/providers/Microsoft.Authorization/roleDefinitions/"
                                   f"{ROLES['Key Vault Data Access Administrator']}?{AUTHZ}")
            perm = body["properties"]["permissions"][0]
            eq((st, perm["conditionVersion"]), (200, "2.0"), body)
            check(perm["condition"].count(ROLES["Key Vault Crypto Officer"]) == 2, perm["condition"])
            # looked up by name (any case), by type, by id, and at another scope
            found = list(am.role_definitions.list(f"/subscriptions/{SUB}",
                                                  filter="roleName eq 'key vault crypto user'"))
            eq([d.name for d in found], [ROLES["Key Vault Crypto User"]])
            eq(len(list(am.role_definitions.list(f"/subscriptions/{SUB}",
                                                 filter="type eq 'BuiltInRole'"))), len(ROLES))
            eq(list(am.role_definitions.list(f"/subscriptions/{SUB}", filter="type eq 'CustomRole'")),
               [])
            eq(list(am.role_definitions.list(f"/subscriptions/{SUB}", filter="roleName eq 'Owner'")),
               [])
            got = am.role_definitions.get(group_scope("any"), ROLES["Key Vault Reader"])
            eq((got.role_name, got.permissions[0].data_actions),
               ("Key Vault Reader", ["Microsoft.KeyVault/vaults/*/read",
                                     "Microsoft.KeyVault/vaults/secrets/readMetadata/action"]))
            got = am.role_definitions.get_by_id(
                f"/providers/Microsoft.Authorization/roleDefinitions/{ROLES['Key Vault Administrator']}")
            eq((got.id, got.role_name),
               (f"/providers/Microsoft.Authorization/roleDefinitions/{ROLES['Key Vault Administrator']}",
                "Key Vault Administrator"))
            try:
                am.role_definitions.get(f"/subscriptions/{SUB}", "8e3af657-a8ff-443c-a75c-2fe8c4bcb635")
                check(False, "kvmock has no Owner role")
            except ResourceNotFoundError as e:
                eq(e.error.code, "RoleDefinitionDoesNotExist")
            # raw: an unsupported filter; built-in definitions cannot change, and a custom
            # one without its properties is refused (test_custom_roles.py: custom roles)
            st, body = mgmt("GET", f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                   f"roleDefinitions?$filter=roleName%20ne%20'x'&{AUTHZ}")
            eq((st, body["error"]["code"]), (400, "BadRequest"), body)
            for name in (uuid.uuid4(), ROLES["Key Vault Reader"]):
                st, body = mgmt("PUT", f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                       f"roleDefinitions/{name}?{AUTHZ}", {"properties": {}})
                eq((st, body["error"]["code"]), (400, "BadRequest"), body)
            st, body = mgmt("DELETE", f"/subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                      f"roleDefinitions/{ROLES['Key Vault Reader']}?{AUTHZ}")
            eq((st, body["error"]["code"]), (400, "BadRequest"), body)
            # a scope joined to an endpoint that ends in "/" (the Go SDK sends "//subscriptions")
            st, body = mgmt("GET", f"//subscriptions/{SUB}/providers/Microsoft.Authorization/"
                                   f"roleDefinitions?{AUTHZ}")
            eq((st, len(body["value"])), (200, len(ROLES)), body)

        @runner.test
        def the_other_key_vault_roles_grant_on_keys_what_azure_grants():
            make_vault("roles-rg", "rolesvault")
            scope = vault_scope("roles-rg", "rolesvault")
            officer = assign(scope, "Key Vault Crypto Officer", APP["objectId"])
            key = KeyClient(kv.vault_url("rolesvault"), app_cred).create_rsa_key("k")
            disk_keys = KeyClient(kv.vault_url("rolesvault"), disk_cred)
            disk_crypto = CryptographyClient(key.id, disk_cred)

            def refused(action, what):
                try:
                    action()
                    check(False, f"{what} must be refused")
                except HttpResponseError as e:
                    eq((e.status_code, e.error.code), (403, "Forbidden"), what)

            made = []
            try:
                # secrets, certificates and the management plane: nothing on keys
                for role in ("Key Vault Secrets Officer", "Key Vault Secrets User",
                             "Key Vault Certificates Officer", "Key Vault Contributor",
                             "Key Vault Data Access Administrator"):
                    made.append(assign(scope, role, DISK["objectId"]))
                    refused(lambda: disk_keys.get_key("k"), f"get under {role}")
                # Certificate User reads keys, and no more
                made.append(assign(scope, "Key Vault Certificate User", DISK["objectId"]))
                eq(disk_keys.get_key("k").id, key.id)
                refused(lambda: disk_crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"x" * 256),
                        "unwrap under Certificate User")
                # Crypto Service Release User may ask for a release (refused then for what
                # this key is: not exportable, rather than by the roles), and nothing else
                release = f"/keys/k/{key.properties.version}/release?api-version=7.4"
                st, _, body = kv.https("POST", release, {"target": "x"},
                                       host=f"rolesvault.vault.localhost:{kv.https_port}",
                                       token=kv.token(client_id=DISK["clientId"]))
                eq((st, json.loads(body)["error"]["innererror"]["code"]), (403, "ForbiddenByRbac"),
                   body)
                made.append(assign(scope, "Key Vault Crypto Service Release User", DISK["objectId"]))
                st, _, body = kv.https("POST", release, {"target": "x"},
                                       host=f"rolesvault.vault.localhost:{kv.https_port}",
                                       token=kv.token(client_id=DISK["clientId"]))
                eq(st, 403, body)
                check("not exportable" in json.loads(body)["error"]["message"], body)
                check("innererror" not in json.loads(body)["error"], body)
            finally:
                for a in made + [officer]:
                    am.role_assignments.delete_by_id(a.id)

        @runner.test
        def assignment_lists_at_every_scope_with_filters():
            make_vault("lists-rg", "lists")
            make_vault("lists-other", "listsother")
            key = f"{vault_scope('lists-rg', 'lists')}/keys/k"
            made = {
                "sub": assign(f"/subscriptions/{SUB}", "Key Vault Reader", NOBODY),
                "group": assign(group_scope("lists-rg"), "Key Vault Crypto User", DISK["objectId"]),
                "vault": assign(vault_scope("lists-rg", "lists"),
                                "Key Vault Crypto Service Encryption User", DISK["objectId"]),
                "key": assign(key, "Key Vault Crypto Officer", NOBODY),
                "other": assign(vault_scope("lists-other", "listsother"), "Key Vault Reader",
                                DISK["objectId"]),
            }
            try:
                n = {k: v.name for k, v in made.items()}

                def want(*keys):
                    return sorted(n[k] for k in keys)

                eq(made["key"].scope, key)
                eq(names(am.role_assignments.list_for_subscription()),
                   want("sub", "group", "vault", "key", "other"))
                eq(names(am.role_assignments.list_for_subscription(filter="atScope()")), want("sub"))
                eq(names(am.role_assignments.list_for_resource_group("lists-rg")),
                   want("sub", "group", "vault", "key"))
                eq(names(am.role_assignments.list_for_resource_group("lists-rg", filter="atScope()")),
                   want("sub", "group"))
                eq(names(am.role_assignments.list_for_resource(
                    "lists-rg", "Microsoft.KeyVault", "vaults", "lists")),
                   want("sub", "group", "vault", "key"))
                eq(names(am.role_assignments.list_for_resource(
                    "lists-rg", "Microsoft.KeyVault", "vaults", "lists", filter="atScope()")),
                   want("sub", "group", "vault"))
                eq(names(am.role_assignments.list_for_scope(key)), want("sub", "group", "vault", "key"))
                eq(names(am.role_assignments.list_for_subscription(
                    filter=f"principalId eq '{DISK['objectId']}'")), want("group", "vault", "other"))
                eq(names(am.role_assignments.list_for_scope(
                    vault_scope("lists-rg", "lists"), filter=f"atScope() and assignedTo('{NOBODY}')")),
                   want("sub"))
                # each item names its own scope and role
                listed = {a.name: a for a in am.role_assignments.list_for_scope(key)}
                eq(listed[n["vault"]].scope, vault_scope("lists-rg", "lists"))
                eq(listed[n["group"]].scope, group_scope("lists-rg"))
                eq(listed[n["sub"]].scope, f"/subscriptions/{SUB}")
                check(listed[n["key"]].role_definition_id.endswith(ROLES["Key Vault Crypto Officer"]))
                eq(listed[n["vault"]].principal_id, DISK["objectId"])
                # raw: what does not exist, and filters kvmock does not know
                base = "/providers/Microsoft.Authorization/roleAssignments"
                st, body = mgmt("GET", f"{vault_scope('lists-rg', 'nosuchvault')}{base}?{AUTHZ}")
                eq((st, body["error"]["code"]), (404, "ResourceNotFound"), body)
                st, body = mgmt("GET", f"{vault_scope('lists-other', 'lists')}{base}?{AUTHZ}")
                eq((st, body["error"]["code"]), (404, "ResourceNotFound"), body)  # another group's
                st, body = mgmt("GET", f"{group_scope('nosuchgroup')}{base}?{AUTHZ}")
                eq((st, body["error"]["code"]), (404, "ResourceGroupNotFound"), body)
                # one assignment, through another group's path: not there, and a DELETE
                # there leaves it in place
                for scope in (vault_scope("lists-other", "lists"),
                              f"{vault_scope('lists-other', 'lists')}/keys/k"):
                    one = n["vault"] if "/keys/" not in scope else n["key"]
                    st, body = mgmt("GET", f"{scope}{base}/{one}?{AUTHZ}")
                    eq((st, body["error"]["code"]), (404, "RoleAssignmentNotFound"), (scope, body))
                    st, body = mgmt("DELETE", f"{scope}{base}/{one}?{AUTHZ}")
                    eq(st, 204, (scope, body))
                eq(am.role_assignments.get(vault_scope("lists-rg", "lists"), n["vault"]).name,
                   n["vault"])
                eq(am.role_assignments.get(key, n["key"]).name, n["key"])
                for bad in ("principalId%20eq%20x", "atScope()%20or%20atScope()", "roleName%20eq%20'x'",
                            "atScope()%20and%20"):
                    st, body = mgmt("GET", f"/subscriptions/{SUB}{base}?$filter={bad}&{AUTHZ}")
                    eq((st, body["error"]["code"]), (400, "BadRequest"), (bad, body))
                st, body = mgmt("POST", f"/subscriptions/{SUB}{base}?{AUTHZ}", {})
                eq(st, 405, body)
            finally:
                for a in made.values():
                    am.role_assignments.delete_by_id(a.id)
            eq(list(am.role_assignments.list_for_subscription()), [])

        @runner.test
        def one_principal_role_and_scope_make_one_assignment():
            make_vault("one-rg", "onevault")
            scope = vault_scope("one-rg", "onevault")
            first = assign(scope, "Key Vault Crypto User", DISK["objectId"])
            path = f"{scope}/providers/Microsoft.Authorization/roleAssignments"
            body = {"properties": {"roleDefinitionId": first.role_definition_id,
                                   "principalId": DISK["objectId"]}}
            try:
                # the same PUT again is fine; the same assignment under another name is not
                st, got = mgmt("PUT", f"{path}/{first.name}?{AUTHZ}", body)
                eq((st, got["name"]), (200, first.name), got)
                try:
                    assign(scope, "Key Vault Crypto User", DISK["objectId"])
                    check(False, "a second name for one assignment must be refused")
                except HttpResponseError as e:
                    eq((e.status_code, e.error.code, e.error.message),
                       (409, "RoleAssignmentExists", "The role assignment already exists."))
                # another role for the same principal at the same scope is another assignment
                other = assign(scope, "Key Vault Reader", DISK["objectId"])
                am.role_assignments.delete_by_id(other.id)
                # an assignment keeps its principal, role and scope
                changes = [
                    (path, {"properties": {"roleDefinitionId": first.role_definition_id,
                                           "principalId": NOBODY}}),
                    (path, {"properties": {"roleDefinitionId": role_id("Key Vault Reader"),
                                           "principalId": DISK["objectId"]}}),
                    (f"{scope}/keys/k/providers/Microsoft.Authorization/roleAssignments", body),
                    (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments", body),
                ]
                for where, change in changes:
                    st, got = mgmt("PUT", f"{where}/{first.name}?{AUTHZ}", change)
                    eq((st, got["error"]["code"]), (400, "RoleAssignmentUpdateNotPermitted"), got)
                    eq(got["error"]["message"], "Tenant ID, application ID, principal ID, and "
                                                "scope are not allowed to be updated.")
                now = am.role_assignments.get(scope, first.name)
                eq((now.principal_id, now.role_definition_id, now.scope),
                   (DISK["objectId"], first.role_definition_id, scope))
                eq(names(am.role_assignments.list_for_scope(scope)), [first.name])
                # names are GUIDs
                for method in ("PUT", "GET", "DELETE"):
                    st, got = mgmt(method, f"{path}/kv-role-assignment?{AUTHZ}",
                                   body if method == "PUT" else None)
                    eq((st, got["error"]["code"]), (400, "InvalidRoleAssignmentId"), (method, got))
                    eq(got["error"]["message"], "The role assignment ID 'kv-role-assignment' is "
                                                "not valid. The role assignment ID must be a GUID.")
                # eight PUTs of one new assignment under eight names at once: one is made
                results = []
                racers = [threading.Thread(target=lambda: results.append(mgmt(
                    "PUT", f"{path}/{uuid.uuid4()}?{AUTHZ}",
                    {"properties": {"roleDefinitionId": role_id("Key Vault Reader"),
                                    "principalId": NOBODY}})[0])) for _ in range(8)]
                for t in racers:
                    t.start()
                for t in racers:
                    t.join()
                eq(sorted(results), [201] + [409] * 7)
                eq(len([a for a in am.role_assignments.list_for_scope(scope)
                        if a.principal_id == NOBODY]), 1)
            finally:
                for a in am.role_assignments.list_for_scope(scope):
                    am.role_assignments.delete_by_id(a.id)

        @runner.test
        def assignments_carry_principal_type_description_and_times():
            make_vault("meta-rg", "metavault")
            scope = vault_scope("meta-rg", "metavault")
            name = str(uuid.uuid4())
            made = am.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
                role_definition_id=role_id("Key Vault Crypto Service Encryption User"),
                principal_id=DISK["objectId"], principal_type="ServicePrincipal",
                description="the disk service's CMK"))
            try:
                eq((made.principal_type, made.description, made.created_by, made.updated_by),
                   ("ServicePrincipal", "the disk service's CMK", APP["objectId"], APP["objectId"]))
                eq(made.created_on, made.updated_on)
                eq((made.condition, made.condition_version), (None, None))
                # an update may change the description, and keeps the creation
                kv.advance_clock(120)  # less than the tokens' life: the SDK keeps its token
                again = am.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
                    role_definition_id=made.role_definition_id, principal_id=DISK["objectId"],
                    principal_type="ServicePrincipal", description="rotated yearly"))
                eq((again.description, again.created_on), ("rotated yearly", made.created_on))
                later = (again.updated_on - made.created_on).total_seconds()
                check(120 <= later < 130, later)
                got = am.role_assignments.get(scope, name)
                eq((got.description, got.created_on, got.updated_on),
                   ("rotated yearly", made.created_on, again.updated_on))
                eq(next(a for a in am.role_assignments.list_for_scope(scope) if a.name == name)
                   .description, "rotated yearly")
                # the SDK's default type, "User", for one of kvmock's identities (service
                # principals): refused as Azure refuses it, and nothing changes
                try:
                    am.role_assignments.create(scope, name, RoleAssignmentCreateParameters(
                        role_definition_id=made.role_definition_id, principal_id=DISK["objectId"],
                        description="as a user"))
                    check(False, "a service principal stated as a User must be refused")
                except HttpResponseError as e:
                    eq((e.status_code, e.error.code), (400, "UnmatchedPrincipalType"))
                    check(f"The PrincipalId '{DISK['objectId']}' has type 'ServicePrincipal'"
                          in e.error.message, e.error.message)
                # a principal kvmock does not know keeps the type it was given
                other = am.role_assignments.create(scope, str(uuid.uuid4()),
                                                   RoleAssignmentCreateParameters(
                                                       role_definition_id=made.role_definition_id,
                                                       principal_id=NOBODY))
                eq(other.principal_type, "User")
                am.role_assignments.delete_by_id(other.id)
                # what kvmock refuses: an unknown principal type, a condition it would not
                # evaluate, a description longer than it keeps; none changes the assignment
                path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{name}?{AUTHZ}"
                base = {"roleDefinitionId": made.role_definition_id, "principalId": DISK["objectId"]}
                for extra, words in (({"principalType": "Robot"}, "principal type 'Robot'"),
                                     ({"principalType": 7}, "are strings"),
                                     ({"condition": "@Resource[x] StringEquals 'y'",
                                       "conditionVersion": "2.0"}, "conditions"),
                                     ({"description": "d" * 1024}, "1023 characters")):
                    st, body = mgmt("PUT", path, {"properties": dict(base, **extra)})
                    eq((st, body["error"]["code"]), (400, "BadRequest"), (extra, body))
                    check(words in body["error"]["message"], body)
                eq(am.role_assignments.get(scope, name).description, "rotated yearly")
            finally:
                am.role_assignments.delete(scope, name)

        @runner.test
        def a_vaults_role_assignments_go_with_the_vault():
            make_vault("gone-rg", "gonevault")
            scope = vault_scope("gone-rg", "gonevault")
            officer = assign(scope, "Key Vault Crypto Officer", APP["objectId"])
            service = assign(f"{scope}/keys/cmk", "Key Vault Crypto Service Encryption User",
                             DISK["objectId"])
            broad = assign(group_scope("gone-rg"), "Key Vault Reader", NOBODY)
            try:
                key = KeyClient(kv.vault_url("gonevault"), app_cred).create_rsa_key("cmk")
                disk = CryptographyClient(key.id, disk_cred)
                dek = secrets.token_bytes(32)
                wrapped = disk.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek).encrypted_key
                # soft delete, then recover: the vault and its key come back, its roles do not
                km.vaults.delete("gone-rg", "gonevault")
                eq(names(am.role_assignments.list_for_subscription()), [broad.name])
                km.vaults.begin_create_or_update("gone-rg", "gonevault", {
                    "location": "westeurope", "properties": {
                        "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"},
                        "create_mode": "recover"}}).result()
                eq(names(am.role_assignments.list_for_scope(scope)), [broad.name])
                for gone in (officer, service):
                    try:
                        am.role_assignments.get_by_id(gone.id)
                        check(False, "the vault's assignment outlived its deletion")
                    except ResourceNotFoundError:
                        pass
                try:
                    disk.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
                    check(False, "the key's role went with the vault")
                except HttpResponseError as e:
                    eq(e.status_code, 403)
                # made again, as after a recovery in Azure: new names, no conflict
                assign(f"{scope}/keys/cmk", "Key Vault Crypto Service Encryption User",
                       DISK["objectId"])
                eq(disk.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key, dek)
                # a vault without soft delete, deleted and made again, starts with none
                make_vault("gone-rg", "hardvault", soft_delete=False)
                assign(vault_scope("gone-rg", "hardvault"), "Key Vault Reader", DISK["objectId"])
                km.vaults.delete("gone-rg", "hardvault")
                make_vault("gone-rg", "hardvault", soft_delete=False)
                eq(names(am.role_assignments.list_for_scope(vault_scope("gone-rg", "hardvault"))),
                   [broad.name])
                try:
                    KeyClient(kv.vault_url("hardvault"), disk_cred).get_key("x")
                    check(False, "no role on the new vault")
                except HttpResponseError as e:
                    eq(e.status_code, 403)
            finally:
                for a in am.role_assignments.list_for_subscription():
                    am.role_assignments.delete_by_id(a.id)

        @runner.test
        def role_puts_racing_a_vault_or_group_delete_leave_no_assignment_behind():
            # PUTs at a vault's scope while the vault is deleted: each either came first (the
            # deletion removed it) or found no vault (404); none survives into the recovery
            leftovers = []
            for round_ in range(6):
                name = f"race{round_}"
                make_vault("race-rg", name)
                scope = vault_scope("race-rg", name)
                reader = role_id("Key Vault Reader")
                statuses = []

                def put(i):
                    statuses.append(mgmt("PUT", f"{scope}/providers/Microsoft.Authorization/"
                                                f"roleAssignments/{uuid.uuid4()}?{AUTHZ}",
                                         {"properties": {"roleDefinitionId": reader,
                                                         "principalId": f"0a000000-0000-4000-8000-"
                                                                        f"00000000f{round_}{i:02d}"}})[0])

                threads = [threading.Thread(target=put, args=(i,)) for i in range(12)]
                threads.insert(6, threading.Thread(target=lambda: km.vaults.delete("race-rg", name)))
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                check(set(statuses) <= {201, 404}, statuses)
                km.vaults.begin_create_or_update("race-rg", name, {
                    "location": "westeurope", "properties": {
                        "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"},
                        "create_mode": "recover"}}).result()
                leftovers += [a.name for a in am.role_assignments.list_for_scope(scope, filter="atScope()")
                              if a.scope == scope]
            eq(leftovers, [])
            # the same at a resource group's scope, racing the group's DELETE
            for round_ in range(4):
                group = f"race-group{round_}"
                st, body = mgmt("PUT", f"{group_scope(group)}?api-version=2021-04-01",
                                {"location": "westeurope"})
                eq(st, 201, body)
                statuses = []

                def put_at_group(i):
                    statuses.append(mgmt("PUT", f"{group_scope(group)}/providers/Microsoft.Authorization/"
                                                f"roleAssignments/{uuid.uuid4()}?{AUTHZ}",
                                         {"properties": {"roleDefinitionId": role_id("Key Vault Reader"),
                                                         "principalId": f"0a000000-0000-4000-8000-"
                                                                        f"00000000e{round_}{i:02d}"}})[0])

                threads = [threading.Thread(target=put_at_group, args=(i,)) for i in range(12)]
                threads.insert(6, threading.Thread(
                    target=lambda: mgmt("DELETE", f"{group_scope(group)}?api-version=2021-04-01")))
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                check(set(statuses) <= {201, 404}, statuses)
                st, body = mgmt("PUT", f"{group_scope(group)}?api-version=2021-04-01",
                                {"location": "westeurope"})
                eq(st, 201, body)
                leftovers += [a.name for a in am.role_assignments.list_for_resource_group(
                    group, filter="atScope()") if a.scope == group_scope(group)]
            eq(leftovers, [])

        @runner.test
        def the_config_files_broad_scopes_are_seeded_at_the_first_start():
            # another kvmock, whose file gives disk Crypto Officer on the subscription and
            # Reader on a group the file names; they are seeded when its data folder is new
            config = dict(CONFIG, roleAssignments=[
                {"principalId": DISK["objectId"], "roleDefinitionName": "Key Vault Crypto Officer",
                 "scope": f"/subscriptions/{SUB}"},
                {"principalId": DISK["objectId"], "roleDefinitionName": "Key Vault Reader",
                 "scope": group_scope("ci-rg")}])
            with Kvmock(args.kvmock, config=config) as kv2:
                tok = kv2.token("https://management.azure.com")

                def mgmt2(method, path, body=None):
                    st, _, resp = kv2.https(method, path, body, token=tok)
                    return st, (json.loads(resp) if resp else None)

                base = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleAssignments"
                st, body = mgmt2("GET", f"{base}?{AUTHZ}")
                eq(st, 200, body)
                eq(sorted(a["properties"]["scope"] for a in body["value"]),
                   sorted([f"/subscriptions/{SUB}", group_scope("ci-rg")]))
                st, body = mgmt2("GET", f"{group_scope('ci-rg')}?api-version=2021-04-01")
                eq((st, body["location"]), (200, "local"), body)  # the file's group was made
                # an RBAC vault made later through Resource Manager is reached
                st, body = mgmt2("PUT", f"{vault_scope('later-rg', 'latervault')}?api-version=2023-07-01",
                                 {"location": "westeurope", "properties": {
                                     "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                                     "enableRbacAuthorization": True}})
                eq(st, 201, body)
                disk_tok = kv2.token(client_id=DISK["clientId"])
                st, _, body = kv2.https("POST", "/keys/k/create?api-version=7.4", {"kty": "RSA"},
                                        host=f"latervault.vault.localhost:{kv2.https_port}",
                                        token=disk_tok)
                eq(st, 200, body)
                # removed through the management plane: a restart does not seed it again
                sub_one = next(a for a in mgmt2("GET", f"{base}?$filter=atScope()&{AUTHZ}")[1]["value"])
                st, _ = mgmt2("DELETE", f"{sub_one['id']}?{AUTHZ}")
                eq(st, 200)
                kv2.restart()
                tok = kv2.token("https://management.azure.com")
                st, body = mgmt2("GET", f"{base}?{AUTHZ}")
                eq([a["properties"]["scope"] for a in body["value"]], [group_scope("ci-rg")])
                st, _, body = kv2.https("POST", "/keys/k2/create?api-version=7.4", {"kty": "RSA"},
                                        host=f"latervault.vault.localhost:{kv2.https_port}",
                                        token=kv2.token(client_id=DISK["clientId"]))
                eq(st, 403, body)

        @runner.test
        def resource_manager_key_calls_on_an_rbac_vault_need_the_callers_data_roles():
            # Resource Manager reaches Key Vault on the caller's behalf, and on an RBAC vault
            # Key Vault grants the call by the caller's data-plane roles (Azure/bicep#6539,
            # pulumi/pulumi-azure-native#890): `manage` alone reads and makes no key
            make_vault("armkeys-rg", "armrbac")
            scope = vault_scope("armkeys-rg", "armrbac")
            keys = f"{scope}/keys"
            api = "api-version=2023-07-01"
            new_key = {"properties": {"kty": "RSA", "keySize": 2048}}
            ops_cred = ManagedIdentityCredential(client_id=OPS["clientId"])
            ops_km = KeyVaultManagementClient(ops_cred, SUB, **opts)
            app_keys = KeyClient(kv.vault_url("armrbac"), app_cred)

            def ops(method, path, body=None):
                tok = kv.token("https://management.azure.com", client_id=OPS["clientId"])
                st, _, resp = kv.https(method, path, body, token=tok)
                return st, (json.loads(resp) if resp else None)

            def refused(method, path, action, resource, what, body=None):
                # Azure answers 400 with Key Vault's refusal, ForbiddenByRbac, the caller named
                # as Resource Manager acting for it
                st, got = ops(method, f"{path}?{api}", body)
                eq(st, 400, (what, got))
                eq(got["error"]["code"], "ForbiddenByRbac", (what, got))
                msg = got["error"]["message"]
                check(msg.startswith("[ForbiddenByRbac (Forbidden)] Caller is not authorized to "
                                     "perform action on resource.\r\n"), (what, msg))
                for line in (f"Caller: name=KeyVault/ManagementPlane;appid={OPS['clientId']};"
                             f"oid={OPS['objectId']};iss=https://sts.windows.net/{TENANT}/",
                             f"Action: 'Microsoft.KeyVault/vaults/keys/{action}'",
                             f"Resource: '{resource.lower()}'", "Assignment: (not found)",
                             "Vault: armrbac;location=westeurope"):
                    check(f"\r\n{line}\r\n" in msg, (what, line, msg))

            made = [assign(scope, "Key Vault Crypto Officer", APP["objectId"])]
            try:
                existing = app_keys.create_rsa_key("existing", size=2048)
                version = existing.properties.version
                # no data role: every key call is refused, the existence check first
                for method, path, action, resource in (
                        ("PUT", f"{keys}/armkey", "read", f"{keys}/armkey"),
                        ("PUT", f"{keys}/existing", "read", f"{keys}/existing"),
                        ("GET", f"{keys}/existing", "read", f"{keys}/existing"),
                        ("GET", f"{keys}/nosuchkey", "read", f"{keys}/nosuchkey"),
                        ("GET", f"{keys}/existing/versions", "read", f"{keys}/existing"),
                        ("GET", f"{keys}/existing/versions/{version}", "read", f"{keys}/existing"),
                        ("GET", keys, "read", scope)):
                    refused(method, path, action, resource, f"{method} {path} without a role",
                            new_key if method == "PUT" else None)
                try:
                    ops_km.keys.create_if_not_exist("armkeys-rg", "armrbac", "sdkkey", new_key)
                    check(False, "keys.create_if_not_exist without a data role must be refused")
                except HttpResponseError as e:
                    eq(e.status_code, 400)
                    check("ForbiddenByRbac" in e.message, e.message)
                eq(sorted(k.name for k in app_keys.list_properties_of_keys()), ["existing"])
                # a role that reads keys but makes none: reads work, a new key is refused
                made.append(assign(scope, "Key Vault Crypto User", OPS["objectId"]))
                st, got = ops("GET", f"{keys}/existing?{api}")
                eq((st, got["properties"]["keyUriWithVersion"]), (200, existing.id), got)
                st, got = ops("GET", f"{keys}?{api}")
                eq((st, [k["name"] for k in got["value"]]), (200, ["existing"]), got)
                st, got = ops("GET", f"{keys}/existing/versions?{api}")
                eq((st, [k["name"] for k in got["value"]]), (200, [version]), got)
                st, got = ops("GET", f"{keys}/existing/versions/{version}?{api}")
                eq((st, got["name"]), (200, version), got)
                st, got = ops("GET", f"{keys}/nosuchkey?{api}")
                eq((st, got["error"]["code"]), (404, "ResourceNotFound"), got)
                st, got = ops("PUT", f"{keys}/existing?{api}", new_key)  # answered as it is
                eq((st, got["properties"]["keyUriWithVersion"]), (200, existing.id), got)
                refused("PUT", f"{keys}/armkey", "create/action", f"{keys}/armkey",
                        "PUT of a new key under Crypto User", new_key)
                eq(sorted(k.name for k in app_keys.list_properties_of_keys()), ["existing"])
                # Crypto Officer on one key: that key may be made, the vault's keys not listed
                made.append(assign(f"{keys}/scoped", "Key Vault Crypto Officer", OPS["objectId"]))
                am.role_assignments.delete_by_id(made.pop(1).id)
                st, got = ops("PUT", f"{keys}/scoped?{api}", new_key)
                eq((st, got["name"]), (200, "scoped"), got)
                refused("GET", keys, "read", scope, "list with a key's role only")
                refused("PUT", f"{keys}/armkey", "read", f"{keys}/armkey",
                        "PUT of another key with a key's role only", new_key)
                # Crypto Officer on the vault: the same calls work, through the SDK as well
                made.append(assign(scope, "Key Vault Crypto Officer", OPS["objectId"]))
                st, got = ops("PUT", f"{keys}/armkey?{api}", new_key)
                eq((st, got["name"], got["properties"]["kty"]), (200, "armkey", "RSA"), got)
                eq(app_keys.get_key("armkey").id, got["properties"]["keyUriWithVersion"])
                sdk = ops_km.keys.create_if_not_exist("armkeys-rg", "armrbac", "sdkkey", new_key)
                eq((sdk.name, ops_km.keys.get("armkeys-rg", "armrbac", "sdkkey").key_uri_with_version),
                   ("sdkkey", sdk.key_uri_with_version))
                eq(sorted(k.name for k in ops_km.keys.list("armkeys-rg", "armrbac")),
                   ["armkey", "existing", "scoped", "sdkkey"])
            finally:
                for a in made:
                    am.role_assignments.delete_by_id(a.id)
            # a vault under access policies: Resource Manager's own roles (`manage`) are
            # enough, as before, though no access policy names the caller
            st, got = ops("PUT", f"{vault_scope('armkeys-rg', 'armpolicy')}?{api}",
                          {"location": "westeurope", "properties": {
                              "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                              "accessPolicies": []}})
            eq(st, 201, got)
            policy_keys = f"{vault_scope('armkeys-rg', 'armpolicy')}/keys"
            st, got = ops("PUT", f"{policy_keys}/armkey?{api}", new_key)
            eq((st, got["name"]), (200, "armkey"), got)
            eq(ops("GET", f"{policy_keys}/armkey?{api}")[0], 200)
            st, got = ops("GET", f"{policy_keys}?{api}")
            eq((st, [k["name"] for k in got["value"]]), (200, ["armkey"]), got)

        @runner.test
        def the_audit_log_and_metrics_name_the_new_operations():
            ops = {r["operationName"] for r in kv.audit_records()}
            for op in ("RoleDefinitionList", "RoleDefinitionGet", "RoleDefinitionPut",
                       "RoleDefinitionDelete", "RoleAssignmentList", "RoleAssignmentPut",
                       "RoleAssignmentDelete", "RoleAssignmentGet", "VaultKeyPut", "VaultKeyGet",
                       "VaultKeyList"):
                check(op in ops, op)
            st, _, metrics = kv.http("GET", "/metrics")
            eq(st, 200)
            for op in ("RoleAssignmentList", "RoleDefinitionPut", "RoleDefinitionDelete"):
                check(f'operation="{op}",status="400"' in metrics.decode() or
                      f'operation="{op}",status="200"' in metrics.decode(), op)

        runner.run()


if __name__ == "__main__":
    main()
