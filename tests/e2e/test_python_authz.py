"""Identities and authorization through the real Python SDK and raw HTTP:
user-assigned managed identities, client credentials against kvmock's
Entra-shaped authority, access policies and RBAC enforced per call,
revocation through the management plane, refused tokens, and the audit log."""
import base64
import json
import os
import secrets
import sys
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT, caller_oid  # noqa: E402

from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential, ManagedIdentityCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

OTHER_TENANT = "6b766d6f-636b-4000-8000-0000000000ff"
APP = {"name": "app", "objectId": "0a000000-0000-4000-8000-000000000001",
       "clientId": "0c000000-0000-4000-8000-000000000001", "default": True}
CI = {"name": "ci", "objectId": "0a000000-0000-4000-8000-000000000002",
      "clientId": "0c000000-0000-4000-8000-000000000002", "clientSecret": "ci-secret-1",
      "manage": True}
DISK = {"name": "disk-service", "objectId": "0a000000-0000-4000-8000-000000000003",
        "clientId": "0c000000-0000-4000-8000-000000000003"}
GUEST = {"name": "guest", "objectId": "0a000000-0000-4000-8000-000000000004",
         "clientId": "0c000000-0000-4000-8000-000000000004", "tenantId": OTHER_TENANT}
# an administrator of another tenant: kvmock's subscription is not its tenant's
GUEST_ADMIN = {"name": "guest-admin", "objectId": "0a000000-0000-4000-8000-000000000005",
               "clientId": "0c000000-0000-4000-8000-000000000005", "tenantId": OTHER_TENANT,
               "manage": True}
ALL = {"keys": ["all"]}
CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, CI, DISK, GUEST, GUEST_ADMIN],
    "vaults": [
        {"name": "cmk", "properties": {"accessPolicies": [
            {"objectId": CI["objectId"], "permissions": ALL},
            {"objectId": DISK["objectId"], "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}},
        ]}},
        {"name": "rbac", "properties": {"enableRbacAuthorization": True}},
    ],
    "roleAssignments": [
        {"principalId": CI["objectId"], "roleDefinitionName": "Key Vault Crypto Officer",
         "scope": "/vaults/rbac"},
        {"principalId": DISK["objectId"],
         "roleDefinitionName": "Key Vault Crypto Service Encryption User",
         "scope": "/vaults/rbac/keys/disk"},
    ],
}
SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults"


def inner_code(err):
    body = json.loads(err.response.text())
    return body["error"].get("innererror", {}).get("code")


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port
        authority = f"https://localhost:{P}"

        def ci_cred():
            # Debian's azure-identity 1.13 names the option instance_discovery=False;
            # later releases call it disable_instance_discovery=True.
            return ClientSecretCredential(TENANT, CI["clientId"], CI["clientSecret"],
                                          authority=authority, instance_discovery=False)

        def disk_cred():
            return ManagedIdentityCredential(client_id=DISK["clientId"])

        def mgmt_token():
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=("grant_type=client_credentials&client_id=" + CI["clientId"]
                                         + "&client_secret=" + CI["clientSecret"]
                                         + "&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
                                         ).encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 200, body)
            return json.loads(body)["access_token"]

        admin = KeyClient(kv.vault_url("cmk"), ci_cred())
        disk_key = admin.create_rsa_key("disk")

        @runner.test
        def client_credentials_work_and_wrong_secrets_do_not():
            eq(admin.get_key("disk").name, "disk")
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=b"grant_type=client_credentials&client_id=" + CI["clientId"].encode()
                                   + b"&client_secret=wrong&scope=https%3A%2F%2Fvault.azure.net%2F.default",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 401)
            eq(json.loads(body)["error"], "invalid_client")
            check("access_token" not in json.loads(body))
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=b"grant_type=client_credentials&client_id=nobody"
                                   b"&client_secret=x&scope=https%3A%2F%2Fvault.azure.net%2F.default",
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 400)
            eq(json.loads(body)["error"], "unauthorized_client")
            # one token is for one resource: Entra refuses a scope naming two (AADSTS70011);
            # the same resource twice is still one
            form = (b"grant_type=client_credentials&client_id=" + CI["clientId"].encode()
                    + b"&client_secret=" + CI["clientSecret"].encode() + b"&scope=")
            two = "https://vault.azure.net/.default https://management.azure.com/.default"
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=form + urllib.parse.quote(two).encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq((st, json.loads(body)["error"]), (400, "invalid_scope"), body)
            eq(json.loads(body)["error_description"],
               f"AADSTS70011: The provided value for the input parameter 'scope' is not valid. "
               f"The scope {two} is not valid.")
            same = "https://vault.azure.net/.default https://vault.azure.net/.default"
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=form + urllib.parse.quote(same).encode(),
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 200, body)

        @runner.test
        def client_secret_basic():
            # RFC 6749 2.3.1, as generic OAuth clients send it: the id and secret, each
            # form-encoded, in an Authorization: Basic header
            def post(auth, extra=b""):
                headers = {"Content-Type": "application/x-www-form-urlencoded"}
                if auth is not None:
                    headers["Authorization"] = "Basic " + base64.b64encode(auth).decode()
                return kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                body=b"grant_type=client_credentials&scope=https%3A%2F%2F"
                                     b"vault.azure.net%2F.default" + extra, headers=headers)

            good = CI["clientId"].encode() + b":" + CI["clientSecret"].encode()
            st, _, body = post(good)
            eq(st, 200, body)
            claims = json.loads(unb64url(json.loads(body)["access_token"].split(".")[1]))
            eq(claims["oid"], CI["objectId"])
            # the body may name the same client, not another, and may not authenticate again
            eq(post(good, b"&client_id=" + CI["clientId"].encode())[0], 200)
            cases = [
                (post(CI["clientId"].encode() + b":wrong"), 401, "invalid_client", "AADSTS7000215"),
                (post(b"no-colon"), 401, "invalid_client", "AADSTS7000215"),
                (post(good, b"&client_id=" + DISK["clientId"].encode()), 400, "invalid_request",
                 "AADSTS50027"),
                (post(good, b"&client_secret=" + CI["clientSecret"].encode()), 400,
                 "invalid_request", "AADSTS50027"),
            ]
            for (st, _, body), status, error, mark in cases:
                eq(st, status, body)
                doc = json.loads(body)
                eq(doc["error"], error, body)
                check(mark in doc["error_description"] and "access_token" not in doc, body)
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=b"grant_type=client_credentials&scope=x%2F.default",
                                   headers={"Authorization": "Basic !!!",
                                            "Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 401, body)
            st, _, body = kv.https("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration",
                                   token=None)
            check("client_secret_basic" in json.loads(body)["token_endpoint_auth_methods_supported"])

        @runner.test
        def access_policy_grants_exactly_get_wrap_unwrap():
            cred = disk_cred()
            client = KeyClient(kv.vault_url("cmk"), cred)
            eq(client.get_key("disk").id, disk_key.id)
            crypto = CryptographyClient(disk_key.id, cred)
            dek = secrets.token_bytes(32)
            wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key, dek)
            for name, action in (("create", lambda: client.create_rsa_key("x")),
                                 ("delete", lambda: client.begin_delete_key("disk")),
                                 ("purge", lambda: client.purge_deleted_key("disk")),
                                 ("list", lambda: list(client.list_properties_of_keys()))):
                try:
                    action()
                    check(False, f"{name} must be refused")
                except HttpResponseError as e:
                    eq(e.status_code, 403, name)
                    eq(e.error.code, "Forbidden", name)
                    eq(inner_code(e), "AccessDenied", name)
                    check(DISK["objectId"] in e.message, e.message)
            eq(admin.get_key("disk").name, "disk")  # nothing was deleted

        @runner.test
        def rbac_key_scope():
            officer = KeyClient(kv.vault_url("rbac"), ci_cred())
            k = officer.create_rsa_key("disk")
            officer.create_rsa_key("other")
            cred = disk_cred()
            crypto = CryptographyClient(k.id, cred)
            dek = secrets.token_bytes(32)
            wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep, dek)
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep, wrapped.encrypted_key).key, dek)
            client = KeyClient(kv.vault_url("rbac"), cred)
            for name, action in (("other key", lambda: client.get_key("other")),
                                 ("create", lambda: client.create_rsa_key("new")),
                                 ("delete", lambda: client.begin_delete_key("disk"))):
                try:
                    action()
                    check(False, f"{name} must be refused")
                except HttpResponseError as e:
                    eq(e.status_code, 403, name)
                    eq(inner_code(e), "ForbiddenByRbac", name)

        @runner.test
        def revoke_and_grant_through_the_management_plane():
            tok = mgmt_token()
            cred = disk_cred()
            crypto = CryptographyClient(disk_key.id, cred)
            wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32).encrypted_key
            entry = {"tenantId": TENANT, "objectId": DISK["objectId"],
                     "permissions": {"keys": ["get", "wrapKey", "unwrapKey"]}}
            st, _, body = kv.https("PUT", f"{ARM}/cmk/accessPolicies/remove?api-version=2023-07-01",
                                   {"properties": {"accessPolicies": [entry]}}, token=tok)
            eq(st, 200, body)
            check(DISK["objectId"] not in body.decode())
            try:
                crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped)
                check(False, "the revoked identity must be refused")
            except HttpResponseError as e:
                eq(e.status_code, 403)
            st, _, body = kv.https("PUT", f"{ARM}/cmk/accessPolicies/add?api-version=2023-07-01",
                                   {"properties": {"accessPolicies": [entry]}}, token=tok)
            eq(st, 200, body)
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key, b"k" * 32)
            # a role assignment removed at runtime stops RBAC access too
            st, _, body = kv.https("GET", f"{ARM}/cmk?api-version=2023-07-01", token=tok)
            eq(st, 200)
            eq(json.loads(body)["properties"]["vaultUri"], f"https://cmk.vault.localhost:{P}/")
            # management needs the manage right: the disk identity has none
            st, _, body = kv.https("GET", f"{ARM}/cmk?api-version=2023-07-01",
                                   token=kv.token("https://management.azure.com",
                                                  client_id=DISK["clientId"]))
            eq(st, 403)
            eq(json.loads(body)["error"]["code"], "AuthorizationFailed")
            # and a vault token is not a management token
            st, _, _ = kv.https("GET", f"{ARM}/cmk?api-version=2023-07-01", token=kv.token())
            eq(st, 401)
            # an identity of another tenant, even one that may manage, gets Resource
            # Manager's 401 for the wrong tenant on the subscription's resources, and sees
            # no subscription
            guest = kv.token("https://management.azure.com", client_id=GUEST_ADMIN["clientId"])
            for method, path, body in (
                    ("GET", f"{ARM}/cmk?api-version=2023-07-01", None),
                    ("PUT", f"{ARM}/cmk/accessPolicies/add?api-version=2023-07-01",
                     {"properties": {"accessPolicies": [entry]}}),
                    ("GET", f"/subscriptions/{SUB}/resourcegroups?api-version=2021-04-01", None)):
                st, _, answer = kv.https(method, path, body, token=guest)
                err = json.loads(answer)["error"]
                eq((st, err["code"]), (401, "InvalidAuthenticationTokenTenant"), (path, answer))
                eq(err["message"], f"The access token is from the wrong issuer "
                                   f"'https://sts.windows.net/{OTHER_TENANT}/'. It must match the "
                                   f"tenant 'https://sts.windows.net/{TENANT}/' associated with "
                                   f"this subscription. Please use the authority (URL) "
                                   f"'https://login.windows.net/{TENANT}' to get the token.")
            st, _, answer = kv.https("GET", "/subscriptions?api-version=2022-12-01", token=guest)
            eq((st, json.loads(answer)["value"]), (200, []))

        @runner.test
        def management_creates_vaults_with_purge_protection():
            tok = mgmt_token()
            body = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "enableSoftDelete": True, "softDeleteRetentionInDays": 7,
                "enablePurgeProtection": True,
                "accessPolicies": [{"tenantId": TENANT, "objectId": CI["objectId"],
                                    "permissions": ALL}]}}
            st, _, resp = kv.https("PUT", f"{ARM}/made?api-version=2023-07-01", body, token=tok)
            check(st in (200, 201), resp)
            client = KeyClient(kv.vault_url("made"), ci_cred())
            k = client.create_ec_key("k")
            eq(k.properties.recovery_level, "CustomizedRecoverable")
            body["properties"]["enablePurgeProtection"] = False
            st, _, resp = kv.https("PUT", f"{ARM}/made?api-version=2023-07-01", body, token=tok)
            eq(st, 400, resp)
            st, _, resp = kv.https("GET", f"{ARM}/made?api-version=2023-07-01", token=tok)
            eq(json.loads(resp)["properties"]["enablePurgeProtection"], True)

        @runner.test
        def roles_at_group_and_subscription_scope_through_the_python_mgmt_sdks():
            # Debian's azure-mgmt-resource, -authorization and -keyvault, unmodified
            from azure.mgmt.authorization import AuthorizationManagementClient
            from azure.mgmt.authorization.models import RoleAssignmentCreateParameters
            from azure.mgmt.keyvault import KeyVaultManagementClient
            from azure.mgmt.resource import ResourceManagementClient
            from azure.core.exceptions import ResourceNotFoundError
            opts = {"base_url": authority, "credential_scopes": ["https://management.azure.com/.default"]}
            rm = ResourceManagementClient(ci_cred(), SUB, **opts)
            am = AuthorizationManagementClient(ci_cred(), SUB, **opts)
            km = KeyVaultManagementClient(ci_cred(), SUB, **opts)
            roles = f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions"
            officer, service = (f"{roles}/14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
                                f"{roles}/e147488a-f6f5-4113-8e2d-b22465e65bf6")
            group = rm.resource_groups.create_or_update("rbac-rg", {"location": "westeurope"})
            eq((group.name, group.location), ("rbac-rg", "westeurope"))
            check(rm.resource_groups.check_existence("rbac-rg"), "the group exists")
            vault = km.vaults.begin_create_or_update("rbac-rg", "grouprbac", {
                "location": "westeurope", "properties": {
                    "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"},
                    "enable_rbac_authorization": True, "soft_delete_retention_in_days": 7}}).result()
            eq(vault.id, f"/subscriptions/{SUB}/resourceGroups/rbac-rg/providers/"
                         "Microsoft.KeyVault/vaults/grouprbac")
            ci_keys = KeyClient(kv.vault_url("grouprbac"), ci_cred())
            try:
                ci_keys.create_rsa_key("k")
                check(False, "no role yet: the create must be refused")
            except HttpResponseError as e:
                eq((e.status_code, inner_code(e)), (403, "ForbiddenByRbac"))
            # Crypto Officer for ci on the whole subscription: every RBAC vault
            sub_ra = am.role_assignments.create(
                f"/subscriptions/{SUB}", "5d3c1a2b-0000-4000-8000-0000000005b1",
                RoleAssignmentCreateParameters(role_definition_id=officer,
                                               principal_id=CI["objectId"],
                                               principal_type="ServicePrincipal"))
            try:
                eq(sub_ra.scope, f"/subscriptions/{SUB}")
                key = ci_keys.create_rsa_key("k")
                KeyClient(kv.vault_url("rbac"), ci_cred()).get_key("disk")  # a configured vault
                # Crypto Service Encryption User for disk-service on the group only
                disk_crypto = CryptographyClient(key.id, disk_cred())
                try:
                    disk_crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
                    check(False, "no role yet for disk-service")
                except HttpResponseError as e:
                    eq(e.status_code, 403)
                group_scope = f"/subscriptions/{SUB}/resourceGroups/rbac-rg"
                am.role_assignments.create(
                    group_scope, "5d3c1a2b-0000-4000-8000-0000000005b2",
                    RoleAssignmentCreateParameters(role_definition_id=service,
                                                   principal_id=DISK["objectId"],
                                                   principal_type="ServicePrincipal"))
                got = am.role_assignments.get(group_scope, "5d3c1a2b-0000-4000-8000-0000000005b2")
                eq((got.principal_id, got.scope), (DISK["objectId"], group_scope))
                # the web view shows both as reaching the vault
                st, _, state = kv.http("GET", "/ui/api/state")
                eq(st, 200)
                vault_state = [x for x in json.loads(state)["vaults"] if x["name"] == "grouprbac"][0]
                eq(sorted(r["scope"] for r in vault_state["roleAssignments"]),
                   [f"/subscriptions/{SUB}", group_scope])
                wrapped = disk_crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, b"k" * 32)
                eq(disk_crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key,
                   b"k" * 32)
                # the group's scope does not reach a vault in another group
                try:
                    KeyClient(kv.vault_url("rbac"), disk_cred()).get_key("other")
                    check(False, "disk-service's group role reaches no other group")
                except HttpResponseError as e:
                    eq(e.status_code, 403)
                # an assignment answers at its own scope only
                try:
                    am.role_assignments.get(f"/subscriptions/{SUB}", "5d3c1a2b-0000-4000-8000-0000000005b2")
                    check(False, "found at the wrong scope")
                except ResourceNotFoundError:
                    pass
                # deleting the group deletes its vault and the assignments at its scope
                rm.resource_groups.begin_delete("rbac-rg").result()
                check(not rm.resource_groups.check_existence("rbac-rg"), "the group is gone")
                try:
                    am.role_assignments.get(group_scope, "5d3c1a2b-0000-4000-8000-0000000005b2")
                    check(False, "the group's assignment outlived the group")
                except ResourceNotFoundError:
                    pass
                check("grouprbac" in [d.name for d in km.vaults.list_deleted()], "soft-deleted")
            finally:
                am.role_assignments.delete(f"/subscriptions/{SUB}", "5d3c1a2b-0000-4000-8000-0000000005b1")
            try:
                am.role_assignments.get(f"/subscriptions/{SUB}", "5d3c1a2b-0000-4000-8000-0000000005b1")
                check(False, "the subscription's assignment was deleted")
            except ResourceNotFoundError:
                pass

        @runner.test
        def keys_through_resource_manager_with_the_python_mgmt_sdk():
            from azure.mgmt.keyvault import KeyVaultManagementClient
            km = KeyVaultManagementClient(ci_cred(), SUB, base_url=authority,
                                          credential_scopes=["https://management.azure.com/.default"])
            km.vaults.begin_create_or_update("keys-rg", "armkv", {
                "location": "northeurope", "properties": {
                    "tenant_id": TENANT, "sku": {"family": "A", "name": "standard"},
                    "access_policies": [{"tenant_id": TENANT, "object_id": CI["objectId"],
                                         "permissions": {"keys": ["get", "list", "wrapKey"]}}]}}).result()
            made = km.keys.create_if_not_exist("keys-rg", "armkv", "cmk", {
                "properties": {"kty": "RSA", "key_size": 3072, "key_ops": ["wrapKey", "unwrapKey"]},
                "tags": {"purpose": "cmk"}})
            eq((made.name, made.kty, made.key_size, made.tags), ("cmk", "RSA", 3072, {"purpose": "cmk"}))
            eq(made.location, "northeurope")
            eq(km.keys.get("keys-rg", "armkv", "cmk").key_uri_with_version, made.key_uri_with_version)
            eq([k.name for k in km.keys.list("keys-rg", "armkv")], ["cmk"])
            versions = [v.name for v in km.keys.list_versions("keys-rg", "armkv", "cmk")]
            eq(versions, [made.key_uri_with_version.rsplit("/", 1)[1]])
            # the data plane's own key: ci's access policy lets it wrap with it
            key = KeyClient(kv.vault_url("armkv"), ci_cred()).get_key("cmk")
            eq(key.id, made.key_uri_with_version)
            wrapped = CryptographyClient(key.id, ci_cred()).wrap_key(KeyWrapAlgorithm.rsa_oaep_256,
                                                                      b"d" * 32)
            eq(len(wrapped.encrypted_key), 384)

        @runner.test
        def refused_tokens_are_401_and_audited():
            good = kv.token(client_id=CI["clientId"])
            parts = good.split(".")
            payload = json.loads(unb64url(parts[1]))
            payload["oid"] = APP["objectId"]
            forged = parts[0] + "." + b64url(json.dumps(payload).encode()) + "." + parts[2]
            none = b64url(b'{"alg":"none","typ":"JWT"}') + "." + parts[1] + "."
            wrong_aud = kv.token("https://storage.azure.com", client_id=CI["clientId"])
            guest = kv.token(f"https://vault.localhost:{P}", client_id=GUEST["clientId"])
            eq(json.loads(unb64url(guest.split(".")[1]))["tid"], OTHER_TENANT)
            host = f"cmk.vault.localhost:{P}"
            before = audit_count(kv)
            for label, tok in (("forged", forged), ("alg none", none), ("audience", wrong_aud),
                               ("other tenant", guest)):
                st, hdrs, body = kv.https("GET", "/keys/disk?api-version=7.4", host=host, token=tok)
                eq(st, 401, label)
                check("www-authenticate" in hdrs, label)
            expired = kv.token(f"https://vault.localhost:{P}", client_id=CI["clientId"])
            kv.advance_clock(3601)
            st, _, _ = kv.https("GET", "/keys/disk?api-version=7.4", host=host, token=expired)
            eq(st, 401, "expired")
            records = kv.audit_records()[before:]
            refusals = [r for r in records if r["properties"]["httpStatusCode"] == 401]
            eq(len(refusals), 5, json.dumps(records, indent=1)[:2000])
            # a token that does not verify is refused as "Authentication"; one from
            # another tenant verifies, reaches the route, and is refused there
            eq(sorted(r["operationName"] for r in refusals),
               ["Authentication"] * 4 + ["KeyGet"])
            for r in refusals:
                # answered, as in Key Vault: the refusal is in resultSignature
                eq((r["resultType"], r["resultSignature"]), ("Success", "Unauthorized"))
                # no part of a token (its resultDescription is the error's message)
                text = json.dumps(r)
                check(not any(part in text for tok in (forged, none, wrong_aud, guest, expired)
                              for part in tok.split(".") if len(part) > 16),
                      "no token in the audit record")

        @runner.test
        def audit_records_allowed_and_denied_calls():
            records = kv.audit_records()
            ops = {(r["operationName"], r["properties"]["httpStatusCode"], caller_oid(r))
                   for r in records}
            check(("KeyUnwrap", 200, DISK["objectId"]) in ops, "unwrap allowed is audited")
            check(("KeyCreate", 403, DISK["objectId"]) in ops, "create denied is audited")
            check(("VaultAccessPolicyUpdate", 200, CI["objectId"]) in ops, "management is audited")
            for r in records:
                eq(r["category"], "AuditEvent")
                check(r["time"].endswith("Z"))
            # the same log from the command line, as JSON lines
            import subprocess
            out = subprocess.run([args.kvmock, "audit", "--data", kv.data_dir], check=True,
                                 capture_output=True, text=True).stdout.splitlines()
            check(len(out) >= len(records), f"{len(out)} lines for {len(records)} records")
            eq(json.loads(out[0])["category"], "AuditEvent")

        runner.run_collected()
    sys.exit(runner.exit_code())


def audit_count(kv):
    return len(kv.audit_records())


if __name__ == "__main__":
    main()
