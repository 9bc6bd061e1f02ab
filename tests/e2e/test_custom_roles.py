"""Custom role definitions (Microsoft.Authorization/roleDefinitions PUT, GET, DELETE with
type CustomRole), through raw HTTP, Debian's azure-mgmt-authorization (unmodified) and
Debian's Azure CLI, and what they grant on the keys of an RBAC vault:

- a PUT makes a directory-wide definition (201, the whole answer: every permission list,
  createdOn/By, updatedOn/By), whatever scope it was PUT at, with or without
  properties.type; a PUT again replaces it (201 as well, as Azure's specification and the
  SDKs have it), keeps its creation, and changes at once what its assignments grant;
- a definition is read at any scope and without one, listed beside the 12 built-in Key
  Vault roles, found by `roleName eq` (any case) and `type eq 'CustomRole'|'BuiltInRole'`;
- role assignments name it by id or GUID, and the data plane grants the key operations its
  dataActions name less its notDataActions (case-insensitive, `*` wildcards), refusing the
  others with 403 Forbidden / ForbiddenByRbac; each of the 20 key data actions passes its
  own operations and no other's;
- refusals change nothing: names that are no GUID, bad bodies (400), a built-in role's GUID,
  a roleName already taken, built-in ones included (409 RoleDefinitionWithSameNameExists),
  a caller without `manage` (as for role assignments);
- DELETE: 409 RoleDefinitionHasAssignments while assigned, 200 with the definition, then
  404 and 204, and a built-in role cannot be deleted;
- definitions and their effect survive a restart;
- the configuration file's roleDefinitions are made at a start (by kvmock: createdBy
  null), its role assignments name them, and each start applies the file's again.

Debian's azure-cli 2.45 sends `az role definition create` and `update` (api-version
2018-01-01-preview, no properties.type; update is a PUT of create's output, edited, and
takes 201 only), but fails before sending anything for `az role definition list|delete`
and `az role assignment create` ('...Operations' object has no attribute 'config', the
README's "What does not work"); for those the test checks that nothing was sent, says so,
and sends the same request through `az rest`. A failure after a request reached kvmock
fails the test with az's --debug lines for it."""
import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, b64url, check, eq, parse_args, unb64url, TENANT, APP  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient
from azure.mgmt.authorization.v2022_04_01.models import (Permission, RoleAssignmentCreateParameters,
                                                         RoleDefinition)

# identities without `manage`: the services the custom roles are for
DISK = {"name": "disk", "objectId": "0a000000-0000-4000-8000-0000000000d1",
        "clientId": "0c000000-0000-4000-8000-0000000000d1"}
AUDIT = {"name": "audit", "objectId": "0a000000-0000-4000-8000-0000000000d2",
         "clientId": "0c000000-0000-4000-8000-0000000000d2"}
CONFIG = {"tenantId": TENANT, "identities": [APP, DISK, AUDIT]}
SUB = "00000000-0000-0000-0000-000000000000"
SUB_SCOPE = f"/subscriptions/{SUB}"
AUTHZ = "api-version=2022-04-01"
ARM_API = "api-version=2023-07-01"
KV_API = "api-version=7.4"
MGMT = "https://management.azure.com"
NOBODY = "0a000000-0000-4000-8000-0000000000e1"  # a principal kvmock issues no tokens for
OFFICER = "14b46e9e-c2b7-41b4-b07b-48a6ebf60603"  # Key Vault Crypto Officer
READER = "21090545-7ca7-4776-b22c-e363652d74d2"  # Key Vault Reader
BUILT_IN = {
    "Key Vault Administrator", "Key Vault Crypto Officer", "Key Vault Crypto User",
    "Key Vault Crypto Service Encryption User", "Key Vault Reader",
    "Key Vault Crypto Service Release User", "Key Vault Certificate User",
    "Key Vault Certificates Officer", "Key Vault Secrets Officer", "Key Vault Secrets User",
    "Key Vault Contributor", "Key Vault Data Access Administrator",
}
PROPS = ("roleName", "type", "description", "assignableScopes", "permissions", "createdOn",
         "updatedOn", "createdBy", "updatedBy")


def act(what):
    """A Key Vault data action: act("keys/read") = "Microsoft.KeyVault/vaults/keys/read"."""
    return f"Microsoft.KeyVault/vaults/{what}"


def def_path(guid, scope=SUB_SCOPE):
    return f"{scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


def def_id(guid):
    """A definition's id, as every answer gives it: under the subscription."""
    return def_path(guid)


def group_scope(group):
    return f"{SUB_SCOPE}/resourceGroups/{group}"


def vault_scope(group, vault):
    return f"{group_scope(group)}/providers/Microsoft.KeyVault/vaults/{vault}"


def role_body(name, data_actions, not_data_actions=(), scopes=(SUB_SCOPE,),
              description="made by test_custom_roles"):
    return {"properties": {
        "roleName": name, "description": description, "type": "CustomRole",
        "permissions": [{"actions": [], "notActions": [], "dataActions": list(data_actions),
                         "notDataActions": list(not_data_actions)}],
        "assignableScopes": list(scopes)}}


def unique(prefix):
    return f"{prefix} {secrets.token_hex(4)}"


def utc(text):
    """A createdOn/updatedOn value as an aware datetime (Z or an offset, any fraction)."""
    text = text.replace("Z", "+00:00")
    if "." in text:  # at most 6 digits of a fraction for fromisoformat
        head, rest = text.split(".", 1)
        frac = "".join(c for c in rest if c.isdigit())
        text = f"{head}.{frac[:6].ljust(6, '0')}{rest[len(frac):]}"
    return datetime.datetime.fromisoformat(text)


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port
        base = f"https://localhost:{P}"

        # ---- helpers: management plane ----------------------------------------------------

        def mgmt(method, path, body=None, who=None):
            """A management call as APP (or the identity @who); (status, parsed body). A str
            body is sent as it is, as JSON."""
            tok = kv.token(MGMT, client_id=who["clientId"] if who else None)
            headers = {"Content-Type": "application/json"} if isinstance(body, str) else None
            st, _, resp = kv.https(method, path, body, headers=headers, token=tok)
            return st, (json.loads(resp) if resp else None)

        def custom_filter(expr):
            """The list of definitions at the subscription with $filter @expr."""
            st, got = mgmt("GET", f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions?"
                                  f"$filter={urllib.parse.quote(expr)}&{AUTHZ}")
            eq(st, 200, (expr, got))
            return got["value"]

        def put_def(guid, body, scope=SUB_SCOPE, who=None):
            return mgmt("PUT", f"{def_path(guid, scope)}?{AUTHZ}", body, who)

        def get_def(guid, scope=SUB_SCOPE):
            return mgmt("GET", f"{def_path(guid, scope)}?{AUTHZ}")

        def new_role(prefix, data_actions, not_data_actions=(), scope=SUB_SCOPE):
            """A new custom role with a fresh GUID and name: (guid, name, answer)."""
            guid, name = str(uuid.uuid4()), unique(prefix)
            st, got = put_def(guid, role_body(name, data_actions, not_data_actions), scope)
            eq(st, 201, (name, got))
            return guid, name, got

        def absent(guid):
            st, got = get_def(guid)
            eq((st, got["error"]["code"]), (404, "RoleDefinitionDoesNotExist"), (guid, got))

        def assign(scope, role, principal, expect=201):
            """A role assignment at @scope of @role (a definition id or GUID): its name."""
            name = str(uuid.uuid4())
            st, got = mgmt("PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                                  f"{name}?{AUTHZ}",
                           {"properties": {"roleDefinitionId": role, "principalId": principal,
                                           "principalType": "ServicePrincipal"}})
            eq(st, expect, (role, got))
            return name, got

        def unassign(scope, name):
            st, got = mgmt("DELETE", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                                     f"{name}?{AUTHZ}")
            eq(st, 200, got)

        def make_vault(group, vault):
            """An RBAC vault made through Resource Manager, APP its Crypto Officer, holding
            RSA key "k" (made by APP); the vault's scope."""
            scope = vault_scope(group, vault)
            st, got = mgmt("PUT", f"{scope}?{ARM_API}", {
                "location": "westeurope", "properties": {
                    "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                    "enableRbacAuthorization": True}})
            eq(st, 201, got)
            assign(scope, def_id(OFFICER), APP["objectId"])
            st, got = data(vault, "POST", "/keys/k/create", {"kty": "RSA", "key_size": 2048})
            eq(st, 200, got)
            return scope

        # ---- helpers: data plane ----------------------------------------------------------

        def data(vault, method, path, body=None, who=None):
            """A data-plane call on @vault as APP (or @who); (status, parsed body)."""
            tok = kv.token(client_id=who["clientId"] if who else None)
            sep = "&" if "?" in path else "?"
            st, _, resp = kv.https(method, f"{path}{sep}{KV_API}", body, token=tok,
                                   host=f"{vault}.vault.localhost:{P}")
            return st, (json.loads(resp) if resp else None)

        def granted(got, what):
            st, body = got
            check(st in (200, 201), f"{what}: expected success, got {st} {body}")
            return body

        def refused(got, what):
            st, body = got
            eq(st, 403, (what, body))
            eq((body["error"]["code"], body["error"].get("innererror", {}).get("code")),
               ("Forbidden", "ForbiddenByRbac"), (what, body))

        def wrap(vault, dek, who=None):
            return data(vault, "POST", "/keys/k//wrapkey",
                        {"alg": "RSA-OAEP-256", "value": b64url(dek)}, who)

        def unwrap(vault, wrapped, who=None):
            return data(vault, "POST", "/keys/k//unwrapkey",
                        {"alg": "RSA-OAEP-256", "value": wrapped}, who)

        def sign(vault, who=None):
            return data(vault, "POST", "/keys/k//sign",
                        {"alg": "RS256", "value": b64url(secrets.token_bytes(32))}, who)

        def check_definition(got, guid, name, data_actions, not_data_actions=(),
                             scopes=(SUB_SCOPE,), by=APP):
            """The whole answer for a custom role, as Resource Manager gives it."""
            eq((got["id"], got["name"], got["type"]),
               (def_id(guid), guid, "Microsoft.Authorization/roleDefinitions"), got)
            props = got["properties"]
            for p in PROPS:
                check(p in props, f"properties.{p} missing: {got}")
            eq((props["roleName"], props["type"], props["assignableScopes"]),
               (name, "CustomRole", list(scopes)), got)
            eq(len(props["permissions"]), 1, got)
            perm = props["permissions"][0]
            eq((perm.get("actions"), perm.get("notActions"), perm.get("dataActions"),
                perm.get("notDataActions")),
               ([], [], list(data_actions), list(not_data_actions)), got)
            eq((props["createdBy"], props["updatedBy"]), (by["objectId"], by["objectId"]), got)
            check(utc(props["updatedOn"]) >= utc(props["createdOn"]), got)

        # ---- 1. a custom role on the data plane ------------------------------------------

        @runner.test
        def a_cmk_unwrap_only_role_grants_get_and_unwrap_and_nothing_else():
            scope = make_vault("cmk-rg", "cmkvault")
            guid = str(uuid.uuid4())
            actions = [act("keys/read"), act("keys/unwrap/action")]
            st, got = put_def(guid, role_body("CMK Unwrap Only", actions,
                                              description="Reads keys and unwraps with them."))
            eq(st, 201, got)
            check_definition(got, guid, "CMK Unwrap Only", actions)
            eq(got["properties"]["description"], "Reads keys and unwraps with them.")
            eq(got["properties"]["createdOn"], got["properties"]["updatedOn"])
            # read at the subscription, at another scope and without one: one definition
            for path in (def_path(guid), def_path(guid, scope), def_path(guid, group_scope("cmk-rg")),
                         f"/providers/Microsoft.Authorization/roleDefinitions/{guid}"):
                st, one = mgmt("GET", f"{path}?{AUTHZ}")
                eq((st, one["name"], one["properties"]["roleName"], one["properties"]["type"]),
                   (200, guid, "CMK Unwrap Only", "CustomRole"), (path, one))
                eq(one["properties"]["permissions"], got["properties"]["permissions"], path)
                check(one["id"].endswith(f"/providers/Microsoft.Authorization/roleDefinitions/{guid}"),
                      one)
            st, one = mgmt("GET", f"/providers/Microsoft.Authorization/roleDefinitions/"
                                  f"{uuid.uuid4()}?{AUTHZ}")
            eq((st, one["error"]["code"]), (404, "RoleDefinitionDoesNotExist"), one)
            # no assignment yet: nothing
            dek = secrets.token_bytes(32)
            wrapped = granted(wrap("cmkvault", dek), "wrap as the officer")["value"]
            refused(data("cmkvault", "GET", "/keys/k", who=DISK), "get before the assignment")
            name, ra = assign(scope, def_id(guid), DISK["objectId"])
            eq((ra["properties"]["roleDefinitionId"], ra["properties"]["principalId"],
                ra["properties"]["scope"]), (def_id(guid), DISK["objectId"], scope), ra)
            st, again = mgmt("GET", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                                    f"{name}?{AUTHZ}")
            eq((st, again["properties"]["roleDefinitionId"]), (200, def_id(guid)), again)
            # what the role names, and nothing more
            key = granted(data("cmkvault", "GET", "/keys/k", who=DISK), "get key")
            check(key["key"]["kid"].startswith(f"https://cmkvault.vault.localhost:{P}/keys/k/"), key)
            eq([k["kid"].rsplit("/", 1)[1] for k in
                granted(data("cmkvault", "GET", "/keys", who=DISK), "list keys")["value"]], ["k"])
            plain = granted(unwrap("cmkvault", wrapped, DISK), "unwrapkey")["value"]
            eq(unb64url(plain), dek)
            refused(wrap("cmkvault", dek, DISK), "wrapkey under CMK Unwrap Only")
            refused(sign("cmkvault", DISK), "sign under CMK Unwrap Only")
            refused(data("cmkvault", "POST", "/keys/k2/create", {"kty": "RSA"}, DISK),
                    "create under CMK Unwrap Only")
            # another identity, not assigned, still has nothing
            refused(data("cmkvault", "GET", "/keys/k", who=AUDIT), "get without an assignment")
            unassign(scope, name)
            refused(data("cmkvault", "GET", "/keys/k", who=DISK), "get after the assignment went")

        # ---- 2. notDataActions and wildcards ----------------------------------------------

        @runner.test
        def not_data_actions_and_wildcards():
            scope = make_vault("wild-rg", "wildvault")
            # every key action but delete and purge (named in another case than Azure's)
            allbut, _, got = new_role("Keys But Delete", [act("keys/*")],
                                      ["microsoft.keyvault/VAULTS/keys/DELETE",
                                       act("keys/purge/action")])
            eq(got["properties"]["permissions"][0]["notDataActions"],
               ["microsoft.keyvault/VAULTS/keys/DELETE", act("keys/purge/action")], got)
            ra, _ = assign(scope, def_id(allbut), DISK["objectId"])
            made = granted(data("wildvault", "POST", "/keys/mine/create", {"kty": "EC"}, DISK),
                           "create under keys/*")
            check(made["key"]["kid"].startswith(f"https://wildvault.vault.localhost:{P}/keys/mine/"),
                  made)
            granted(data("wildvault", "GET", "/keys/mine", who=DISK), "get under keys/*")
            granted(sign("wildvault", DISK), "sign under keys/*")
            refused(data("wildvault", "DELETE", "/keys/mine", who=DISK), "delete under notDataActions")
            granted(data("wildvault", "GET", "/keys/mine", who=DISK), "the key is still there")
            # keys/* does not reach the rotation policies (another resource type)
            refused(data("wildvault", "GET", "/keys/mine/rotationpolicy", who=DISK),
                    "rotation policy under keys/*")
            unassign(scope, ra)

            # every read: keys, rotation policies; nothing else
            reads, _, _ = new_role("Vault Reads", [act("*/read")])
            assign(scope, reads, AUDIT["objectId"])  # by GUID alone
            granted(data("wildvault", "GET", "/keys/k", who=AUDIT), "get under */read")
            names = sorted(k["kid"].rsplit("/", 1)[1] for k in
                           granted(data("wildvault", "GET", "/keys", who=AUDIT), "list")["value"])
            eq(names, ["k", "mine"])
            granted(data("wildvault", "GET", "/keys/k/rotationpolicy", who=AUDIT),
                    "get rotation policy under */read")
            refused(data("wildvault", "POST", "/keys/other/create", {"kty": "EC"}, AUDIT),
                    "create under */read")
            refused(data("wildvault", "PUT", "/keys/k/rotationpolicy",
                         {"attributes": {"expiryTime": "P90D"}}, AUDIT),
                    "set rotation policy under */read")
            refused(sign("wildvault", AUDIT), "sign under */read")

            # "*" less one action
            everything, _, _ = new_role("Everything But Sign", ["*"], [act("keys/sign/action")])
            ra, _ = assign(scope, def_id(everything), DISK["objectId"])
            wrapped = granted(wrap("wildvault", b"d" * 32, DISK), "wrap under *")["value"]
            eq(unb64url(granted(unwrap("wildvault", wrapped, DISK), "unwrap under *")["value"]),
               b"d" * 32)
            granted(data("wildvault", "PUT", "/keys/k/rotationpolicy",
                         {"attributes": {"expiryTime": "P90D"}}, DISK), "set rotation policy under *")
            refused(sign("wildvault", DISK), "sign under notDataActions")
            unassign(scope, ra)

        @runner.test
        def every_key_data_action_grants_its_operations_and_no_other():
            # one definition, replaced with each data action in turn: the operations of that
            # action pass the role check (their answer may still be 404, 409 or a 403 that is
            # not the role check's, as for release of a key that is not exportable), the
            # operations of every other action are refused by it
            scope = make_vault("map-rg", "mapvault")

            def as_app(method, path, body=None):
                return granted(data("mapvault", method, path, body), f"{method} {path} as APP")

            digest = secrets.token_bytes(32)
            signature = as_app("POST", "/keys/k//sign", {"alg": "RS256", "value": b64url(digest)})
            encrypted = as_app("POST", "/keys/k//encrypt",
                               {"alg": "RSA-OAEP-256", "value": b64url(b"p" * 16)})
            wrapped = as_app("POST", "/keys/k//wrapkey",
                             {"alg": "RSA-OAEP-256", "value": b64url(b"w" * 32)})
            blob = as_app("POST", "/keys/k/backup")
            from cryptography.hazmat.primitives.asymmetric import ec
            nums = ec.generate_private_key(ec.SECP256R1()).private_numbers()
            jwk = {"kty": "EC", "crv": "P-256", "x": b64url(nums.public_numbers.x.to_bytes(32, "big")),
                   "y": b64url(nums.public_numbers.y.to_bytes(32, "big")),
                   "d": b64url(nums.private_value.to_bytes(32, "big"))}
            policy = {"lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"},
                                           "action": {"type": "Notify"}}],
                      "attributes": {"expiryTime": "P90D"}}
            operations = {
                "keys/read": [("GET", "/keys/k", None), ("GET", "/keys", None)],
                "keys/update/action": [("PATCH", "/keys/k", {"attributes": {"enabled": True}})],
                "keys/create/action": [("POST", "/keys/made/create", {"kty": "EC"})],
                "keys/import/action": [("PUT", "/keys/imported", {"key": jwk})],
                "keys/delete": [("DELETE", "/keys/nosuchkey", None)],
                "keys/recover/action": [("POST", "/deletedkeys/nosuchkey/recover", None)],
                "keys/backup/action": [("POST", "/keys/k/backup", None)],
                "keys/restore/action": [("POST", "/keys/restore", {"value": blob["value"]})],
                "keys/purge/action": [("DELETE", "/deletedkeys/nosuchkey", None)],
                "keys/encrypt/action": [("POST", "/keys/k//encrypt",
                                         {"alg": "RSA-OAEP-256", "value": b64url(b"q" * 16)})],
                "keys/decrypt/action": [("POST", "/keys/k//decrypt",
                                         {"alg": "RSA-OAEP-256", "value": encrypted["value"]})],
                "keys/wrap/action": [("POST", "/keys/k//wrapkey",
                                      {"alg": "RSA-OAEP-256", "value": b64url(b"v" * 32)})],
                "keys/unwrap/action": [("POST", "/keys/k//unwrapkey",
                                        {"alg": "RSA-OAEP-256", "value": wrapped["value"]})],
                "keys/sign/action": [("POST", "/keys/k//sign",
                                      {"alg": "RS256", "value": b64url(digest)})],
                "keys/verify/action": [("POST", "/keys/k//verify",
                                        {"alg": "RS256", "digest": b64url(digest),
                                         "value": signature["value"]})],
                "keys/release/action": [("POST", "/keys/k//release", {"target": "x"})],
                "keys/rotate/action": [("POST", "/keys/k/rotate", None)],
                "keyrotationpolicies/read": [("GET", "/keys/k/rotationpolicy", None)],
                "keyrotationpolicies/write": [("PUT", "/keys/k/rotationpolicy", policy)],
            }
            guid, name, _ = new_role("One Action", [act("keys/read")])
            assign(scope, def_id(guid), DISK["objectId"])
            token = kv.token(client_id=DISK["clientId"])
            problems = []
            for action in operations:
                st, got = put_def(guid, role_body(name, [act(action)]))
                check(st in (200, 201), (action, st, got))  # a replacing PUT's status: test 3's
                for other, ops in operations.items():
                    for method, path, body in ops:
                        st, _, resp = kv.https(method, f"{path}?{KV_API}", body, token=token,
                                               host=f"mapvault.vault.localhost:{P}")
                        err = (json.loads(resp) if resp else {}).get("error", {})
                        rbac = st == 403 and err.get("innererror", {}).get("code") == "ForbiddenByRbac"
                        if other == action and (rbac or st == 401 or st >= 500):
                            problems.append(f"{act(action)}: {method} {path} answered {st} {err}")
                        elif other != action and not rbac:
                            problems.append(f"{act(action)} let {method} {path} ({other}) through: "
                                            f"{st} {err}")
            eq(problems, [], "data actions against operations")

        # ---- 3. an update takes effect at once --------------------------------------------

        @runner.test
        def replacing_a_definition_changes_what_its_assignments_grant():
            scope = make_vault("upd-rg", "updvault")
            guid, name, first = new_role("Unwrapper", [act("keys/read"), act("keys/unwrap/action")])
            assign(scope, def_id(guid), DISK["objectId"])
            dek = secrets.token_bytes(32)
            refused(wrap("updvault", dek, DISK), "wrap before the update")
            kv.advance_clock(61)  # less than a token's life
            wider = [act("keys/read"), act("keys/unwrap/action"), act("keys/wrap/action")]
            st, got = put_def(guid, role_body(name, wider, description="now wraps too"))
            statuses = [st]  # checked last, so that a wrong one does not hide the rest
            check(st in (200, 201), got)
            check_definition(got, guid, name, wider)
            eq(got["properties"]["description"], "now wraps too")
            eq(got["properties"]["createdOn"], first["properties"]["createdOn"], got)
            check(utc(got["properties"]["updatedOn"]) >= utc(first["properties"]["createdOn"])
                  + datetime.timedelta(seconds=60), (first, got))
            st, now = get_def(guid)
            eq((st, now), (200, got))
            # the same assignment wraps now
            wrapped = granted(wrap("updvault", dek, DISK), "wrap after the update")["value"]
            eq(unb64url(granted(unwrap("updvault", wrapped, DISK), "unwrap")["value"]), dek)
            # and a narrower definition takes it away again, at once
            st, got = put_def(guid, role_body(name, [act("keys/wrap/action")]))
            statuses.append(st)
            check(st in (200, 201), got)
            refused(unwrap("updvault", wrapped, DISK), "unwrap after the narrowing")
            refused(data("updvault", "GET", "/keys/k", who=DISK), "get after the narrowing")
            granted(wrap("updvault", dek, DISK), "wrap after the narrowing")
            # a new name is fine for the same definition
            renamed = unique("Wrapper")
            st, got = put_def(guid, role_body(renamed, [act("keys/wrap/action")]))
            statuses.append(st)
            eq((st in (200, 201), got["properties"]["roleName"]), (True, renamed), got)
            eq(custom_filter("roleName eq '%s'" % name), [])
            # Azure answers 201 to a replacing PUT as well: its REST specification lists 201
            # only, and Debian's azure-mgmt-authorization (create_or_update, every
            # api-version) and `az role definition update` raise on any other status
            eq(statuses, [201, 201, 201], "the status of each replacing PUT")

        # ---- 4. refusals change nothing ---------------------------------------------------

        @runner.test
        def refused_definitions_change_nothing():
            guid, name, before = new_role("Refusal Base", [act("keys/read")])
            good = role_body(unique("Refused"), [act("keys/read")])

            def with_props(**changes):
                body = json.loads(json.dumps(good))
                for k, v in changes.items():
                    if v is ...:
                        del body["properties"][k]
                    else:
                        body["properties"][k] = v
                return body

            def with_perm(**changes):
                body = json.loads(json.dumps(good))
                body["properties"]["permissions"][0].update(changes)
                return body

            bad_bodies = [
                ("no roleName", with_props(roleName=...)),
                ("empty roleName", with_props(roleName="")),
                ("roleName not a string", with_props(roleName=7)),
                ("type BuiltInRole", with_props(type="BuiltInRole")),
                ("type Custom", with_props(type="Custom")),
                ("permissions an object", with_props(permissions={"dataActions": [act("keys/read")]})),
                ("permissions a string", with_props(permissions="keys/read")),
                ("dataActions a string", with_perm(dataActions=act("keys/read"))),
                ("dataActions with a number", with_perm(dataActions=[act("keys/read"), 7])),
                ("notDataActions an object", with_perm(notDataActions={"a": act("keys/read")})),
                ("actions with null", with_perm(actions=[None])),
                ("notActions a string", with_perm(notActions="*")),
                ("no assignableScopes", with_props(assignableScopes=...)),
                ("empty assignableScopes", with_props(assignableScopes=[])),
                ("no properties", {"roleName": "x"}),
                ("not JSON", "{"),
            ]
            for what, body in bad_bodies:
                # a new definition: none is made
                fresh = str(uuid.uuid4())
                st, got = put_def(fresh, body)
                eq(st, 400, (what, got))
                check(isinstance(got["error"]["code"], str) and got["error"]["message"], (what, got))
                absent(fresh)
                # a replacement: the old definition stays
                st, got = put_def(guid, body)
                eq(st, 400, (what, "replacing", got))
                eq(get_def(guid), (200, before), what)
            # a name that is no GUID
            for bad in ("cmk-unwrap-only", "1234", str(uuid.uuid4())[:-1] + "g"):
                st, got = put_def(bad, good)
                eq(st, 400, (bad, got))
            # a built-in role's GUID: it stays built in, as it was
            st, reader = get_def(READER)
            eq(st, 200, reader)
            for guid_case in (READER, READER.upper()):
                st, got = put_def(guid_case, role_body("Key Vault Reader", [act("*")]))
                eq(st, 400, (guid_case, got))
                st, got = put_def(guid_case, good)
                eq(st, 400, (guid_case, got))
            eq(get_def(READER), (200, reader))
            # a name another definition has, in any case, built-in names included
            for taken in (name, name.upper(), "Key Vault Reader", "key vault crypto officer"):
                fresh = str(uuid.uuid4())
                st, got = put_def(fresh, role_body(taken, [act("keys/read")]))
                eq((st, got["error"]["code"]), (409, "RoleDefinitionWithSameNameExists"), (taken, got))
                absent(fresh)
            other, _, other_def = new_role("Refusal Other", [act("keys/read")])
            st, got = put_def(other, role_body(name.lower(), [act("keys/read")]))
            eq((st, got["error"]["code"]), (409, "RoleDefinitionWithSameNameExists"), got)
            eq(get_def(other), (200, other_def))
            st, got = put_def(guid, role_body("KEY VAULT READER", [act("keys/read")]))
            eq((st, got["error"]["code"]), (409, "RoleDefinitionWithSameNameExists"), got)
            # a caller without `manage`: refused as a role assignment is, and nothing changes
            ra_st, ra_err = mgmt("PUT", f"{SUB_SCOPE}/providers/Microsoft.Authorization/"
                                        f"roleAssignments/{uuid.uuid4()}?{AUTHZ}",
                                 {"properties": {"roleDefinitionId": def_id(READER),
                                                 "principalId": DISK["objectId"]}}, who=DISK)
            eq((ra_st, ra_err["error"]["code"]), (403, "AuthorizationFailed"), ra_err)
            fresh = str(uuid.uuid4())
            st, got = put_def(fresh, good, who=DISK)
            eq((st, got["error"]["code"]), (ra_st, ra_err["error"]["code"]), got)
            absent(fresh)
            st, got = put_def(guid, role_body(name, [act("*")]), who=DISK)
            eq((st, got["error"]["code"]), (ra_st, ra_err["error"]["code"]), got)
            st, got = mgmt("DELETE", f"{def_path(guid)}?{AUTHZ}", who=DISK)
            eq((st, got["error"]["code"]), (ra_st, ra_err["error"]["code"]), got)
            eq(get_def(guid), (200, before))
            # nothing refused was stored under any name
            listed = {d["properties"]["roleName"] for d in custom_filter("type eq 'CustomRole'")}
            eq(listed & {good["properties"]["roleName"], "KEY VAULT READER", "Key Vault Reader",
                         name.upper()}, set())
            check({name, other_def["properties"]["roleName"]} <= listed, listed)

        # ---- 5. delete --------------------------------------------------------------------

        @runner.test
        def a_definition_in_use_is_not_deleted():
            guid, name, made = new_role("Deletable", [act("keys/read")])
            ra, got = assign(SUB_SCOPE, guid, NOBODY)  # named by its GUID alone
            eq(got["properties"]["roleDefinitionId"], def_id(guid), got)
            st, err = mgmt("DELETE", f"{def_path(guid)}?{AUTHZ}")
            eq((st, err["error"]["code"]), (409, "RoleDefinitionHasAssignments"), err)
            check("existing role assignments" in err["error"]["message"], err)
            eq(get_def(guid), (200, made))
            unassign(SUB_SCOPE, ra)
            st, gone = mgmt("DELETE", f"{def_path(guid)}?{AUTHZ}")
            eq(st, 200, gone)
            eq((gone["id"], gone["name"], gone["properties"]["roleName"],
                gone["properties"]["type"]), (def_id(guid), guid, name, "CustomRole"), gone)
            absent(guid)
            st, again = mgmt("DELETE", f"{def_path(guid)}?{AUTHZ}")
            eq((st, again), (204, None))
            # an assignment naming it, by id or GUID, is refused now; so is an unknown one
            for role in (def_id(guid), guid, def_id(str(uuid.uuid4()))):
                assign(SUB_SCOPE, role, NOBODY, expect=400)
            st, left = mgmt("GET", f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleAssignments?"
                                   f"$filter=principalId%20eq%20'{NOBODY}'&{AUTHZ}")
            eq((st, left["value"]), (200, []), left)
            # its name is free again
            st, got = put_def(str(uuid.uuid4()), role_body(name, [act("keys/read")]))
            eq(st, 201, got)
            # a built-in role is not deleted
            st, before = get_def(READER)
            st, err = mgmt("DELETE", f"{def_path(READER)}?{AUTHZ}")
            check(st in (400, 403), (st, err))
            eq(get_def(READER), (200, before))

        # ---- 6. lists, filters, and the Python SDK ----------------------------------------

        @runner.test
        def lists_filters_and_the_python_sdk():
            one, one_name, _ = new_role("Listed One", [act("keys/read")])
            two, two_name, _ = new_role("Listed Two", [act("keys/sign/action")])
            defs = f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions"

            def listed(filter_=None, scope=SUB_SCOPE):
                q = f"$filter={urllib.parse.quote(filter_)}&" if filter_ else ""
                st, got = mgmt("GET", f"{scope}/providers/Microsoft.Authorization/roleDefinitions?"
                                      f"{q}{AUTHZ}")
                eq(st, 200, (filter_, got))
                return got["value"]

            every = listed()
            by_type = {}
            for d in every:
                by_type.setdefault(d["properties"]["type"], []).append(d)
            eq(set(by_type), {"BuiltInRole", "CustomRole"})
            eq({d["properties"]["roleName"] for d in by_type["BuiltInRole"]}, BUILT_IN)
            eq(len(by_type["BuiltInRole"]), 12)
            customs = {d["name"]: d for d in by_type["CustomRole"]}
            check({one, two} <= set(customs), customs.keys())
            eq(customs[one]["id"], def_id(one))
            for p in PROPS:
                check(p in customs[one]["properties"], (p, customs[one]))
            # filters
            eq([d["name"] for d in listed(f"roleName eq '{one_name.upper()}'")], [one])
            eq([d["name"] for d in listed(f"roleName eq '{two_name}'")], [two])
            only_custom = listed("type eq 'CustomRole'")
            check(all(d["properties"]["type"] == "CustomRole" for d in only_custom), only_custom)
            eq(sorted(d["name"] for d in only_custom), sorted(customs))
            only_built_in = listed("type eq 'BuiltInRole'")
            eq(sorted(d["properties"]["roleName"] for d in only_built_in), sorted(BUILT_IN))
            # at another scope, the same definitions
            st, _ = mgmt("PUT", f"{group_scope('lists-rg')}?api-version=2021-04-01",
                         {"location": "westeurope"})
            eq(st, 201)
            eq(sorted(d["name"] for d in listed(scope=group_scope("lists-rg"))),
               sorted(d["name"] for d in every))
            st, got = mgmt("GET", f"{defs}/{one}?{AUTHZ}")
            eq((st, got), (200, customs[one]))
            # a body without properties.type (as `az role definition create` sends it) and
            # without the permission lists it does not use makes a custom role, every list
            # present in the answer
            body = role_body(unique("Typeless"), [act("keys/read")])
            del body["properties"]["type"]
            body["properties"]["permissions"] = [{"dataActions": [act("keys/read")]}]
            guid = str(uuid.uuid4())
            st, got = put_def(guid, body)
            eq(st, 201, got)
            check_definition(got, guid, body["properties"]["roleName"], [act("keys/read")])

            # the unmodified SDK: create, get, list by name, assign, update, delete
            cred = ManagedIdentityCredential()
            am = AuthorizationManagementClient(cred, SUB, base_url=base,
                                               credential_scopes=[f"{MGMT}/.default"])
            scope = make_vault("sdk-rg", "sdkvault")
            guid, name = str(uuid.uuid4()), unique("SDK Signer")
            made = am.role_definitions.create_or_update(SUB_SCOPE, guid, RoleDefinition(
                role_name=name, description="signs with the vault's keys", role_type="CustomRole",
                permissions=[Permission(data_actions=[act("keys/read"), act("keys/sign/action")])],
                assignable_scopes=[SUB_SCOPE]))
            eq((made.id, made.name, made.type, made.role_name, made.role_type, made.description,
                made.assignable_scopes),
               (def_id(guid), guid, "Microsoft.Authorization/roleDefinitions", name, "CustomRole",
                "signs with the vault's keys", [SUB_SCOPE]))
            eq(len(made.permissions), 1)
            p = made.permissions[0]
            eq((p.actions, p.not_actions, p.data_actions, p.not_data_actions),
               ([], [], [act("keys/read"), act("keys/sign/action")], []))
            got = am.role_definitions.get(scope, guid)  # at another scope
            eq((got.id, got.role_name, got.permissions[0].data_actions),
               (def_id(guid), name, p.data_actions))
            found = list(am.role_definitions.list(SUB_SCOPE, filter=f"roleName eq '{name.lower()}'"))
            eq([d.name for d in found], [guid])
            ra = am.role_assignments.create(scope, str(uuid.uuid4()), RoleAssignmentCreateParameters(
                role_definition_id=made.id, principal_id=DISK["objectId"],
                principal_type="ServicePrincipal"))
            eq((ra.role_definition_id, ra.principal_id, ra.scope), (made.id, DISK["objectId"], scope))
            granted(sign("sdkvault", DISK), "sign under the SDK's role")
            refused(wrap("sdkvault", b"x" * 32, DISK), "wrap under the SDK's role")
            # an update through the SDK (its create_or_update takes 201 only) adds wrap; a
            # failure is raised at the end, so that the deletion is still checked
            update_failure = None
            try:
                updated = am.role_definitions.create_or_update(SUB_SCOPE, guid, RoleDefinition(
                    role_name=name, description="signs and wraps", role_type="CustomRole",
                    permissions=[Permission(data_actions=[act("keys/read"), act("keys/sign/action"),
                                                          act("keys/wrap/action")])],
                    assignable_scopes=[SUB_SCOPE]))
                eq((updated.description, len(updated.permissions[0].data_actions)),
                   ("signs and wraps", 3))
            except HttpResponseError as e:
                update_failure = AssertionError(f"the SDK's update of a definition: {e.message}")
            # the update happened (or the SDK refused its answer only): wrap is granted
            granted(wrap("sdkvault", b"x" * 32, DISK), "wrap after the SDK's update")
            try:
                am.role_definitions.delete(SUB_SCOPE, guid)
                check(False, "a definition in use must not be deleted")
            except HttpResponseError as e:
                eq((e.status_code, e.error.code), (409, "RoleDefinitionHasAssignments"))
            am.role_assignments.delete_by_id(ra.id)
            gone = am.role_definitions.delete(SUB_SCOPE, guid)
            eq((gone.name, gone.role_name, gone.role_type), (guid, name, "CustomRole"))
            try:
                am.role_definitions.get(SUB_SCOPE, guid)
                check(False, "the deleted definition is still there")
            except ResourceNotFoundError as e:
                eq(e.error.code, "RoleDefinitionDoesNotExist")
            eq(am.role_definitions.delete(SUB_SCOPE, guid), None)  # 204
            eq(list(am.role_definitions.list(SUB_SCOPE, filter=f"roleName eq '{name}'")), [])
            if update_failure is not None:
                raise update_failure

        # ---- 7. the Azure CLI -------------------------------------------------------------

        @runner.test
        def az_role_definition_create_update_list_assign_delete():
            az_bin = shutil.which("az")
            check(az_bin is not None, "az is not installed (scripts/install-deps.sh --test "
                                      "installs Debian's azure-cli)")
            config_dir = tempfile.mkdtemp(prefix="kvmock-az-")
            env = kv.az_env(config_dir)
            client_defects = []

            def run(*argv):
                return subprocess.run([az_bin, *argv, "--output", "json"], env=env,
                                      capture_output=True, text=True, timeout=120)

            def http_lines(stderr):
                """az --debug's lines about the requests it sent and their answers."""
                marks = ("Request URL:", "Request method:", "Request body:", "Response status:",
                         "Response content:", "urllib3.connectionpool: https://")
                lines = stderr.splitlines()
                out = []
                for i, line in enumerate(lines):
                    if any(m in line for m in marks):
                        out.append(line)
                        if ("Request body:" in line or "Response content:" in line) and i + 1 < len(lines):
                            out.append(lines[i + 1][:2000])
                return out

            def az(*argv, fallback=None):
                """Run az --debug; its JSON output. When it fails before sending any request,
                in the way Debian's 2.45 is known to (no attribute 'config'), run @fallback (az
                rest with the same request) instead and note it; any other failure fails the
                test with the request lines."""
                proc = run(*argv, "--debug")
                if proc.returncode == 0:
                    return json.loads(proc.stdout) if proc.stdout.strip() else None
                sent = http_lines(proc.stderr)
                kvmock_sent = [line for line in sent if f"localhost:{P}" in line
                               and "/metadata/" not in line and "/msi/" not in line]
                if fallback and not kvmock_sent and "has no attribute 'config'" in proc.stderr:
                    err = [line for line in proc.stderr.splitlines() if "AttributeError" in line]
                    client_defects.append(f"az {' '.join(argv)}: {err[-1] if err else '?'}")
                    return fallback()
                detail = "\n".join(sent) or proc.stderr[-3000:]
                raise AssertionError(f"az {' '.join(argv)} exited {proc.returncode}; its requests:\n"
                                     f"{detail}\n---- stderr tail\n{proc.stderr[-600:]}")

            def rest(method, path, body=None):
                argv = ["rest", "--method", method, "--url", f"{base}{path}"]
                if body is not None:
                    argv += ["--body", json.dumps(body)]
                proc = run(*argv)
                eq(proc.returncode, 0, (method, path, proc.stderr[-2000:]))
                return json.loads(proc.stdout) if proc.stdout.strip() else None

            try:
                eq(run("cloud", "set", "--name", "kvmock").returncode, 0)
                proc = run("login", "--identity")
                eq(proc.returncode, 0, proc.stderr[-2000:])
                scope = make_vault("az-rg", "azrolevault")
                name = unique("AZ Key Signer")
                # az PUTs at assignableScopes[0] (here the vault) under a new GUID, with
                # api-version 2018-01-01-preview and no properties.type
                made = az("role", "definition", "create", "--role-definition", json.dumps({
                    "Name": name, "Description": "signs with the vault's keys", "Actions": [],
                    "DataActions": [act("keys/read"), act("keys/sign/action")],
                    "NotDataActions": [act("keys/delete")],
                    "AssignableScopes": [scope, SUB_SCOPE]}))
                guid = made["name"]
                eq(made["id"], def_id(guid), made)
                eq((made["roleName"], made["roleType"], made["assignableScopes"]),
                   (name, "CustomRole", [scope, SUB_SCOPE]), made)
                eq(made["permissions"][0]["dataActions"], [act("keys/read"), act("keys/sign/action")])
                st, raw = get_def(guid)
                eq((st, raw["properties"]["type"], raw["properties"]["permissions"][0]["notDataActions"]),
                   (200, "CustomRole", [act("keys/delete")]), raw)
                # found by name, and among the custom roles only
                by_name = urllib.parse.quote("roleName eq '%s'" % name)
                by_filter = (f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions?"
                             f"$filter={by_name}&{AUTHZ}")
                found = az("role", "definition", "list", "--name", name,
                           fallback=lambda: rest("get", by_filter)["value"])
                eq([d["name"] for d in found], [guid], found)
                customs = az("role", "definition", "list", "--custom-role-only", "true",
                             fallback=lambda: rest("get", f"{SUB_SCOPE}/providers/Microsoft.Authorization/"
                                                          f"roleDefinitions?$filter=type%20eq%20"
                                                          f"'CustomRole'&{AUTHZ}")["value"])
                check(guid in [d["name"] for d in customs], customs)
                check(all(d.get("roleType", d.get("properties", {}).get("type")) == "CustomRole"
                          for d in customs), customs)
                # assigned by its name on the vault: the identity signs
                refused(sign("azrolevault", DISK), "sign before the assignment")
                ra_name = str(uuid.uuid4())
                ra = az("role", "assignment", "create", "--role", name, "--assignee-object-id",
                        DISK["objectId"], "--assignee-principal-type", "ServicePrincipal",
                        "--scope", scope,
                        fallback=lambda: rest("put", f"{scope}/providers/Microsoft.Authorization/"
                                                     f"roleAssignments/{ra_name}?{AUTHZ}",
                                              {"properties": {"roleDefinitionId": def_id(guid),
                                                              "principalId": DISK["objectId"],
                                                              "principalType": "ServicePrincipal"}}))
                ra_props = ra.get("properties", ra)
                eq((ra_props["roleDefinitionId"], ra_props["principalId"]),
                   (def_id(guid), DISK["objectId"]), ra)
                granted(sign("azrolevault", DISK), "sign under the az-made role")
                refused(data("azrolevault", "DELETE", "/keys/k", who=DISK), "delete under it")
                refused(wrap("azrolevault", b"w" * 32, DISK), "wrap under it")
                # updated as az's users do it: create's output, edited, given back (a PUT of
                # the same GUID at assignableScopes[0]); a failure here is reported at the end
                # so that the deletion below is still tried
                edited = dict(made, description="signs and wraps")
                edited["permissions"] = [dict(made["permissions"][0], dataActions=[
                    act("keys/read"), act("keys/sign/action"), act("keys/wrap/action")])]
                update_failure = None
                try:
                    updated = az("role", "definition", "update", "--role-definition",
                                 json.dumps(edited))
                    eq((updated["name"], updated["description"], updated["roleType"]),
                       (guid, "signs and wraps", "CustomRole"), updated)
                    granted(wrap("azrolevault", b"w" * 32, DISK), "wrap after az's update")
                except AssertionError as e:
                    update_failure = e
                unassign(scope, ra["name"])
                # deleted by name
                az("role", "definition", "delete", "--name", name,
                   fallback=lambda: rest("delete", f"{def_path(guid)}?{AUTHZ}"))
                absent(guid)
                refused(sign("azrolevault", DISK), "sign after the deletion")
                if update_failure is not None:
                    raise update_failure
            finally:
                shutil.rmtree(config_dir, ignore_errors=True)
                for line in client_defects:
                    print(f"NOTE client-side failure of Debian's az, nothing sent; done through "
                          f"az rest instead: {line}", flush=True)

        # ---- 8. a restart -----------------------------------------------------------------

        @runner.test
        def definitions_and_their_effect_survive_a_restart():
            scope = make_vault("rst-rg", "rstvault")
            guid, name, _ = new_role("Restart Wrapper", [act("keys/read"), act("keys/wrap/action")],
                                     [act("keys/unwrap/action")])
            st, made = put_def(guid, role_body(name, [act("keys/*")], [act("keys/unwrap/action")],
                                               description="replaced before the restart"))
            check(st in (200, 201), (st, made))  # the status of a replacing PUT: test 3's
            ra, _ = assign(scope, def_id(guid), DISK["objectId"])
            idle, _, idle_def = new_role("Restart Idle", [act("keys/read")])
            dropped, _, _ = new_role("Restart Dropped", [act("keys/read")])
            eq(mgmt("DELETE", f"{def_path(dropped)}?{AUTHZ}")[0], 200)
            dek = secrets.token_bytes(32)
            wrapped = granted(wrap("rstvault", dek, DISK), "wrap before the restart")["value"]
            refused(unwrap("rstvault", wrapped, DISK), "unwrap before the restart")
            kv.restart()
            eq(get_def(guid), (200, made))
            eq(get_def(idle), (200, idle_def))
            absent(dropped)
            st, got = mgmt("GET", f"{scope}/providers/Microsoft.Authorization/roleAssignments/"
                                  f"{ra}?{AUTHZ}")
            eq((st, got["properties"]["roleDefinitionId"]), (200, def_id(guid)), got)
            granted(wrap("rstvault", dek, DISK), "wrap after the restart")
            granted(data("rstvault", "POST", "/keys/after/create", {"kty": "EC"}, DISK),
                    "create (keys/*) after the restart")
            refused(unwrap("rstvault", wrapped, DISK), "unwrap after the restart")
            # the name is still taken, and the definition still in use
            st, err = put_def(str(uuid.uuid4()), role_body(name.swapcase(), [act("keys/read")]))
            eq((st, err["error"]["code"]), (409, "RoleDefinitionWithSameNameExists"), err)
            st, err = mgmt("DELETE", f"{def_path(guid)}?{AUTHZ}")
            eq((st, err["error"]["code"]), (409, "RoleDefinitionHasAssignments"), err)

        # ---- 9. the configuration file's custom roles ------------------------------------

        @runner.test
        def the_configuration_files_roles_are_made_at_every_start():
            file_role = {"properties": {
                "roleName": "File Unwrapper", "description": "from the file",
                "permissions": [{"dataActions": [act("keys/read"), act("keys/unwrap/action")]}],
                "assignableScopes": [SUB_SCOPE]}}
            config = {"tenantId": TENANT, "identities": [APP, DISK],
                      "vaults": [{"name": "cfgroles",
                                  "properties": {"enableRbacAuthorization": True}}],
                      "roleDefinitions": [file_role],
                      "roleAssignments": [
                          {"principalId": APP["objectId"], "scope": "/vaults/cfgroles",
                           "roleDefinitionName": "Key Vault Crypto Officer"},
                          {"principalId": DISK["objectId"], "scope": "/vaults/cfgroles",
                           "roleDefinitionName": "file unwrapper"}]}
            with Kvmock(args.kvmock, config=config) as kv2:
                def call(method, path, body=None, who=None, host=None, resource=None):
                    tok = kv2.token(resource or f"https://vault.localhost:{kv2.https_port}",
                                    client_id=who["clientId"] if who else None)
                    st, _, resp = kv2.https(method, path, body, token=tok, host=host)
                    return st, (json.loads(resp) if resp else None)

                def on_vault(method, path, body=None, who=None):
                    return call(method, f"{path}?{KV_API}", body, who,
                                host=f"cfgroles.vault.localhost:{kv2.https_port}")

                def the_file_role():
                    st, got = call("GET", f"{SUB_SCOPE}/providers/Microsoft.Authorization/"
                                          "roleDefinitions?$filter=roleName%20eq%20'File%20"
                                          f"Unwrapper'&{AUTHZ}", resource=MGMT)
                    eq((st, len(got["value"])), (200, 1), got)
                    return got["value"][0]

                granted(on_vault("POST", "/keys/k/create", {"kty": "RSA"}), "APP creates")
                st, out = on_vault("POST", "/keys/k//wrapkey",
                                   {"alg": "RSA-OAEP-256", "value": b64url(b"d" * 32)})
                eq(st, 200, out)
                st, back = on_vault("POST", "/keys/k//unwrapkey",
                                    {"alg": "RSA-OAEP-256", "value": out["value"]}, DISK)
                eq((st, unb64url(back["value"])), (200, b"d" * 32), back)
                refused(on_vault("POST", "/keys/k//wrapkey",
                                 {"alg": "RSA-OAEP-256", "value": b64url(b"d" * 32)}, DISK),
                        "wrap by the file's unwrap-only role")
                made = the_file_role()
                props = made["properties"]
                eq((props["type"], props["description"], props["createdBy"], props["updatedBy"],
                    props["permissions"][0]["dataActions"]),
                   ("CustomRole", "from the file", None, None,
                    [act("keys/read"), act("keys/unwrap/action")]), made)
                # changed through the management plane, then the file's again at a start
                body = json.loads(json.dumps(file_role))
                body["properties"]["permissions"][0]["dataActions"].append(act("keys/wrap/action"))
                st, got = call("PUT", f"{SUB_SCOPE}/providers/Microsoft.Authorization/"
                                      f"roleDefinitions/{made['name']}?{AUTHZ}", body,
                               resource=MGMT)
                eq(st, 201, got)
                granted(on_vault("POST", "/keys/k//wrapkey",
                                 {"alg": "RSA-OAEP-256", "value": b64url(b"d" * 32)}, DISK),
                        "wrap once the management plane added it")
                kv2.restart()
                again = the_file_role()
                eq((again["name"], again["properties"]["createdOn"],
                    again["properties"]["permissions"][0]["dataActions"]),
                   (made["name"], props["createdOn"],
                    [act("keys/read"), act("keys/unwrap/action")]), again)
                refused(on_vault("POST", "/keys/k//wrapkey",
                                 {"alg": "RSA-OAEP-256", "value": b64url(b"d" * 32)}, DISK),
                        "wrap after the start that applied the file again")

        runner.run()


if __name__ == "__main__":
    main()
