"""A vault's firewall, as Key Vault has it: networkAcls (default action, IP rules,
virtual network rules, bypass) and publicNetworkAccess, set through the management
plane with Debian's azure-mgmt-keyvault unmodified and in raw HTTP, and enforced on
the data plane against the real key SDK and raw HTTP: the exact 403 bodies, the
client's address over IPv4 and IPv6, nothing changed by a refused call, the audit
record, a trusted service's bypass, bad rules refused with nothing changed, and the
rules kept across PATCH, soft delete and recovery, and restarts (a configured vault's
too), and a firewall set by the configuration file."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, TENANT, APP  # noqa: E402

from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys import KeyClient

# no access policy anywhere, and an identity of another directory
NOBODY = {"name": "nobody", "objectId": "0a000000-0000-4000-8000-0000000000b1",
          "clientId": "0c000000-0000-4000-8000-0000000000b1"}
GUEST = {"name": "guest", "objectId": "0a000000-0000-4000-8000-0000000000b2",
         "clientId": "0c000000-0000-4000-8000-0000000000b2",
         "tenantId": "6b766d6f-636b-4000-8000-0000000000ff"}
# a configured vault with a firewall of its own, and one without
# an Azure service reaching vaults for customer-managed keys, as Azure Storage does
STORAGE = {"name": "storage", "objectId": "0a000000-0000-4000-8000-0000000000b3",
           "clientId": "0c000000-0000-4000-8000-0000000000b3", "trustedService": True}
CONFIG = {"tenantId": TENANT, "identities": [APP, NOBODY, GUEST, STORAGE], "vaults": [
    {"name": "default"},
    {"name": "walled", "properties": {"networkAcls": {
        "defaultAction": "Deny", "ipRules": [{"value": "198.51.100.0/24"}]}}}]}
SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/fw-rg/providers/Microsoft.KeyVault/vaults"
API = "api-version=2023-07-01"
SUBNET = (f"/subscriptions/{SUB}/resourceGroups/net-rg/providers/Microsoft.Network/"
          "virtualNetworks/vnet1/subnets/app")
ALL_KEYS = [{"tenantId": TENANT, "objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]
LOOPBACK = [{"value": "127.0.0.0/8"}, {"value": "::1/128"}]


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port

        def mgmt(method, path, body=None):
            st, _, resp = kv.https(method, f"{path}?{API}", body,
                                   token=kv.token("https://management.azure.com"))
            return st, (json.loads(resp) if resp else None)

        def put_vault(name, **props):
            body = {"tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                    "accessPolicies": ALL_KEYS}
            body.update(props)
            st, out = mgmt("PUT", f"{ARM}/{name}", {"location": "westeurope", "properties": body})
            check(st in (200, 201), out)
            eq(out["id"], f"{ARM}/{name}")
            return out["properties"]

        def patch_vault(name, **props):
            st, out = mgmt("PATCH", f"{ARM}/{name}", {"properties": props})
            eq(st, 200, out)
            eq(out["id"], f"{ARM}/{name}")  # in its own group
            return out["properties"]

        def data(method, vault, path, body=None, token=True, addr="127.0.0.1"):
            st, hdrs, resp = kv.https(method, f"{path}?api-version=7.4", body, token=token,
                                      host=f"{vault}.vault.localhost:{P}", addr=addr)
            return st, hdrs, (json.loads(resp) if resp else None)

        def refused(vault, addr, address_text, location="westeurope"):
            """The exact refusal of a client at `addr` by `vault`'s IP rules."""
            st, hdrs, err = data("POST", vault, "/keys/refused/create", {"kty": "EC"}, addr=addr)
            eq(st, 403, err)
            # as Key Vault's answers, it says where the client was seen
            v6 = ":" in address_text
            eq({k.lower(): v for k, v in hdrs.items()}.get("x-ms-keyvault-network-info"),
               f"conn_type={'Ipv6' if v6 else 'Ipv4'};addr={address_text};"
               f"act_addr_fam={'InterNetworkV6' if v6 else 'InterNetwork'};")
            eq({k.lower(): v for k, v in hdrs.items()}.get("x-ms-keyvault-region"), location)
            eq(err, {"error": {
                "code": "Forbidden",
                "message": "Client address is not authorized and caller is not a trusted "
                           f"service.\r\nClient address: {address_text}\r\nCaller: "
                           f"appid={APP['clientId']};oid={APP['objectId']};"
                           f"iss=https://sts.windows.net/{TENANT}/\r\n"
                           f"Vault: {vault};location={location}",
                "innererror": {"code": "ForbiddenByFirewall"}}})

        def let_in(vault, addr):
            st, _, body = data("GET", vault, "/keys", addr=addr)
            eq(st, 200, body)

        @runner.test
        def firewall_through_the_python_sdks():
            # Debian's azure-mgmt-keyvault (api-version 2022-07-01) and azure-keyvault-keys
            from azure.mgmt.keyvault import KeyVaultManagementClient
            from azure.mgmt.keyvault.models import (AccessPolicyEntry, IPRule, NetworkRuleSet,
                                                    Permissions, Sku, VaultCreateOrUpdateParameters,
                                                    VaultPatchParameters, VaultPatchProperties,
                                                    VaultProperties, VirtualNetworkRule)
            km = KeyVaultManagementClient(ManagedIdentityCredential(), SUB,
                                          base_url=f"https://localhost:{P}",
                                          credential_scopes=["https://management.azure.com/.default"])
            made = km.vaults.begin_create_or_update("fw-rg", "fwpy", VaultCreateOrUpdateParameters(
                location="westeurope", properties=VaultProperties(
                    tenant_id=TENANT, sku=Sku(family="A", name="premium"),
                    enabled_for_disk_encryption=True,
                    access_policies=[AccessPolicyEntry(tenant_id=TENANT, object_id=APP["objectId"],
                                                       permissions=Permissions(keys=["all"]))],
                    network_acls=NetworkRuleSet(
                        default_action="Deny", bypass="AzureServices",
                        ip_rules=[IPRule(value="203.0.113.7"), IPRule(value="203.0.113.7/32"),
                                  IPRule(value="2001:DB8::/32")],
                        virtual_network_rules=[VirtualNetworkRule(id=SUBNET),
                                               VirtualNetworkRule(id=SUBNET.lower(),
                                                                  ignore_missing_vnet_service_endpoint=True)])))).result()
            acls = made.properties.network_acls
            eq((acls.default_action, acls.bypass), ("Deny", "AzureServices"))
            # an address alone is its /32, and the same range twice is one rule
            eq([r.value for r in acls.ip_rules], ["203.0.113.7/32", "2001:db8::/32"])
            # Resource Manager answers a subnet's id in lowercase; one subnet in two
            # casings is one rule
            eq([(r.id, r.ignore_missing_vnet_service_endpoint) for r in acls.virtual_network_rules],
               [(SUBNET.lower(), False)])
            eq(made.properties.sku.name, "premium")
            # systemData, as the SDK reads it
            eq((made.system_data.created_by, made.system_data.created_by_type,
                made.system_data.created_at == made.system_data.last_modified_at),
               (APP["clientId"], "ManagedIdentity", True))
            eq(made.properties.enabled_for_disk_encryption, True)
            eq(made.properties.enabled_for_deployment, False)
            eq(made.properties.public_network_access, "Enabled")
            eq(km.vaults.get("fw-rg", "fwpy").properties.network_acls.ip_rules[0].value,
               "203.0.113.7/32")

            keys = KeyClient(kv.vault_url("fwpy"), ManagedIdentityCredential())
            try:
                keys.create_rsa_key("cmk")
                check(False, "the firewall must refuse the loopback client")
            except HttpResponseError as e:
                body = json.loads(e.response.text())
                eq((e.status_code, body["error"]["code"], body["error"]["innererror"]["code"]),
                   (403, "Forbidden", "ForbiddenByFirewall"))
                check("Client address is not authorized" in body["error"]["message"], body)

            # an update that lets loopback in: the SDK's calls pass, and the refused
            # create had made nothing
            updated = km.vaults.update("fw-rg", "fwpy", VaultPatchParameters(
                properties=VaultPatchProperties(network_acls=NetworkRuleSet(
                    default_action="Deny", ip_rules=[IPRule(value=r["value"]) for r in LOOPBACK]))))
            eq([r.value for r in updated.properties.network_acls.ip_rules],
               ["127.0.0.0/8", "::1/128"])
            eq(updated.properties.network_acls.virtual_network_rules, [])  # replaced whole
            try:
                keys.get_key("cmk")
                check(False, "the refused create made a key")
            except ResourceNotFoundError:
                pass
            key = keys.create_rsa_key("cmk")
            eq(keys.get_key("cmk").id, key.id)
            eq(km.vaults.get("fw-rg", "fwpy").properties.sku.name, "premium")  # kept
            # public network access off, through the SDK's model, and on again
            closed = km.vaults.update("fw-rg", "fwpy", VaultPatchParameters(
                properties=VaultPatchProperties(public_network_access="Disabled")))
            eq(closed.properties.public_network_access, "Disabled")
            try:
                keys.get_key("cmk")
                check(False, "public network access is disabled")
            except HttpResponseError as e:
                body = json.loads(e.response.text())
                eq((e.status_code, body["error"]["innererror"]["code"]), (403, "ForbiddenByConnection"))
            km.vaults.update("fw-rg", "fwpy", VaultPatchParameters(
                properties=VaultPatchProperties(public_network_access="Enabled")))
            eq(keys.get_key("cmk").id, key.id)

        @runner.test
        def refusals_are_key_vaults_and_come_after_authentication():
            put_vault("fwraw", networkAcls={"defaultAction": "Deny",
                                            "ipRules": [{"value": "198.51.100.0/24"}]})
            # no token: the challenge first, as from any vault
            st, hdrs, _ = data("GET", "fwraw", "/keys", token=None)
            eq(st, 401)
            challenge = {k.lower(): v for k, v in hdrs.items()}.get("www-authenticate", "")
            check(challenge.startswith("Bearer authorization="), hdrs)
            refused("fwraw", "127.0.0.1", "127.0.0.1")
            refused("fwraw", "::1", "::1")
            # a token of another directory is refused first (401, as from any vault); a
            # caller the access policies refuse hears of the firewall first
            vault_aud = f"https://vault.localhost:{P}"
            st, _, err = data("GET", "fwraw", "/keys", token=kv.token(vault_aud, GUEST["clientId"]))
            eq((st, err["error"]["code"]), (401, "Unauthorized"), err)
            st, _, err = data("GET", "fwraw", "/keys", token=kv.token(vault_aud, NOBODY["clientId"]))
            eq((st, err["error"]["innererror"]["code"]), (403, "ForbiddenByFirewall"), err)
            check(f"oid={NOBODY['objectId']}" in err["error"]["message"], err)
            # the refusal is audited with the client's address and no policy match
            rec = [r for r in kv.audit_records() if r["properties"]["httpStatusCode"] == 403 and
                   r["properties"].get("vault") == "fwraw"]
            eq(len(rec), 3, rec)
            eq(rec[0]["operationName"], "KeyCreate")
            eq(rec[0]["callerIpAddress"], "127.0.0.1")
            eq(rec[1]["callerIpAddress"], "::1")
            eq(rec[0]["properties"]["isAccessPolicyMatch"], False)

            # a rule lets in its own family's addresses only
            patch_vault("fwraw", networkAcls={"defaultAction": "Deny",
                                              "ipRules": [{"value": "127.0.0.1"}]})
            let_in("fwraw", "127.0.0.1")
            refused("fwraw", "::1", "::1")
            patch_vault("fwraw", networkAcls={"defaultAction": "Deny",
                                              "ipRules": [{"value": "::1"}]})
            let_in("fwraw", "::1")
            refused("fwraw", "127.0.0.1", "127.0.0.1")
            # a virtual network rule lets nobody in: no request comes through one
            patch_vault("fwraw", networkAcls={"defaultAction": "Deny",
                                              "virtualNetworkRules": [{"id": SUBNET}]})
            refused("fwraw", "127.0.0.1", "127.0.0.1")
            # none of the refused creates made a key
            patch_vault("fwraw", networkAcls={"defaultAction": "Allow"})
            st, _, listed = data("GET", "fwraw", "/keys")
            eq((st, listed["value"]), (200, []))

        @runner.test
        def public_network_access_disabled_refuses_everyone():
            put_vault("fwoff", publicNetworkAccess="disabled",
                      networkAcls={"defaultAction": "Deny", "ipRules": LOOPBACK})
            for addr in ("127.0.0.1", "::1"):
                st, _, err = data("GET", "fwoff", "/keys", addr=addr)
                eq(st, 403, err)
                eq(err, {"error": {
                    "code": "Forbidden",
                    "message": "Public network access is disabled and request is not from a "
                               "trusted service nor via an approved private link.\r\nCaller: "
                               f"appid={APP['clientId']};oid={APP['objectId']};"
                               f"iss=https://sts.windows.net/{TENANT}/\r\n"
                               "Vault: fwoff;location=westeurope",
                    "innererror": {"code": "ForbiddenByConnection"}}})
            # the access policies are not asked: the firewall answers for everyone
            st, _, err = data("GET", "fwoff", "/keys",
                              token=kv.token(f"https://vault.localhost:{P}", NOBODY["clientId"]))
            eq((st, err["error"]["innererror"]["code"]), (403, "ForbiddenByConnection"), err)
            # the management plane is not behind the vault's firewall (nor a vault's host)
            st, hdrs, resp = kv.https("GET", f"{ARM}/fwoff?{API}",
                                      token=kv.token("https://management.azure.com"))
            got = json.loads(resp)
            eq(st, 200, got)
            check("x-ms-keyvault-network-info" not in {k.lower() for k in hdrs}, hdrs)
            eq(got["properties"]["publicNetworkAccess"], "Disabled")
            eq(got["properties"]["networkAcls"]["ipRules"], LOOPBACK)
            # a PATCH without networkAcls keeps the rules, which then let loopback in
            props = patch_vault("fwoff", publicNetworkAccess="Enabled")
            eq(props["networkAcls"]["ipRules"], LOOPBACK)
            let_in("fwoff", "127.0.0.1")
            let_in("fwoff", "::1")

        @runner.test
        def a_trusted_service_passes_unless_the_bypass_is_none():
            put_vault("fwtrust", accessPolicies=ALL_KEYS + [
                {"tenantId": TENANT, "objectId": STORAGE["objectId"],
                 "permissions": {"keys": ["get", "list", "wrapKey", "unwrapKey"]}}],
                networkAcls={"defaultAction": "Deny", "bypass": "AzureServices"})
            vault_aud = f"https://vault.localhost:{P}"

            def as_storage(addr="127.0.0.1"):
                return data("GET", "fwtrust", "/keys", addr=addr,
                            token=kv.token(vault_aud, STORAGE["clientId"]))

            for addr in ("127.0.0.1", "::1"):
                st, _, body = as_storage(addr)
                eq(st, 200, body)
            refused("fwtrust", "127.0.0.1", "127.0.0.1")  # everyone else
            # public access disabled: the bypass still lets the trusted service in
            patch_vault("fwtrust", publicNetworkAccess="Disabled")
            st, _, body = as_storage()
            eq(st, 200, body)
            st, _, err = data("GET", "fwtrust", "/keys")
            eq((st, err["error"]["innererror"]["code"]), (403, "ForbiddenByConnection"), err)
            # bypass None: the trusted service is refused like any caller
            patch_vault("fwtrust", publicNetworkAccess="Enabled",
                        networkAcls={"defaultAction": "Deny", "bypass": "None"})
            st, _, err = as_storage()
            eq((st, err["error"]["innererror"]["code"]), (403, "ForbiddenByFirewall"), err)
            check(f"oid={STORAGE['objectId']}" in err["error"]["message"], err)

        @runner.test
        def bad_rules_are_refused_and_change_nothing():
            before = put_vault("fwbad", networkAcls={"defaultAction": "Deny",
                                                     "ipRules": [{"value": "203.0.113.0/24"}]})
            too_many = [{"value": f"203.0.{i // 256}.{i % 256}"} for i in range(1001)]
            bad = [
                ({"networkAcls": {"ipRules": [{"value": "203.0.113.7/33"}]}},
                 "Invalid value found at properties.networkAcls.ipRules[0].value: "
                 "'203.0.113.7/33' is not an IP address or a CIDR range."),
                ({"networkAcls": {"ipRules": [{"value": "10.0.0.0/8"}, {"value": "300.1.2.3"}]}},
                 "Invalid value found at properties.networkAcls.ipRules[1].value: "
                 "'300.1.2.3' is not an IP address or a CIDR range."),
                ({"networkAcls": {"ipRules": [{"address": "10.0.0.0/8"}]}}, "ipRules[0]"),
                ({"networkAcls": {"ipRules": "10.0.0.0/8"}}, "must be arrays"),
                ({"networkAcls": {"ipRules": too_many}},
                 "A vault takes at most 1000 IP rules; 1001 were given."),
                ({"networkAcls": {"virtualNetworkRules": [{"id": "/subscriptions/x/resourceGroups/y"}]}},
                 "virtualNetworkRules[0]"),
                ({"networkAcls": {"virtualNetworkRules": [
                    {"id": SUBNET, "ignoreMissingVnetServiceEndpoint": "yes"}]}},
                 "virtualNetworkRules[0]"),
                ({"networkAcls": {"defaultAction": "Block"}}, "defaultAction must be"),
                ({"networkAcls": {"bypass": "Everything"}}, "bypass must be"),
                ({"networkAcls": "deny"}, "networkAcls must be an object"),
                ({"publicNetworkAccess": "maybe"}, "publicNetworkAccess must be"),
                ({"sku": {"family": "A", "name": "gold"}}, "The sku must be"),
                ({"sku": {"family": "B", "name": "standard"}}, "The sku must be"),
                ({"enabledForDeployment": "yes"}, "must be true or false"),
            ]
            for props, message in bad:
                for method in ("PATCH", "PUT"):
                    body = {"properties": dict(props)}
                    if method == "PUT":
                        body = {"location": "westeurope",
                                "properties": dict(props, tenantId=TENANT, accessPolicies=ALL_KEYS)}
                    st, err = mgmt(method, f"{ARM}/fwbad", body)
                    eq(st, 400, (method, props, err))
                    eq(err["error"]["code"], "BadRequest")
                    check(message in err["error"]["message"], (message, err))
            st, after = mgmt("GET", f"{ARM}/fwbad")
            eq(st, 200, after)
            eq(after["properties"], before)
            refused("fwbad", "127.0.0.1", "127.0.0.1")
            # a new vault refused for its rules is not made
            st, err = mgmt("PUT", f"{ARM}/fwnever", {"location": "westeurope", "properties": {
                "tenantId": TENANT, "networkAcls": {"ipRules": [{"value": "bad"}]}}})
            eq(st, 400, err)
            st, err = mgmt("GET", f"{ARM}/fwnever")
            eq(st, 404, err)

        @runner.test
        def rules_are_kept_across_delete_recover_and_restarts():
            made = put_vault("fwkeep", networkAcls={"defaultAction": "deny", "bypass": "none",
                                                    "ipRules": [{"value": "198.51.100.7"}]},
                             enabledForTemplateDeployment=True)
            eq(made["networkAcls"], {"bypass": "None", "defaultAction": "Deny",
                                     "ipRules": [{"value": "198.51.100.7/32"}],
                                     "virtualNetworkRules": []})
            # Azure's defaults for what a given networkAcls leaves out
            eq(patch_vault("fwkeep", networkAcls={})["networkAcls"],
               {"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [],
                "virtualNetworkRules": []})
            patch_vault("fwkeep", networkAcls=made["networkAcls"])
            # a PUT without networkAcls keeps them, as it keeps the other properties
            eq(put_vault("fwkeep")["networkAcls"], made["networkAcls"])
            st, body = mgmt("DELETE", f"{ARM}/fwkeep")
            eq(st, 200, body)
            st, back = mgmt("PUT", f"{ARM}/fwkeep", {"location": "westeurope",
                                                     "properties": {"createMode": "recover"}})
            eq(st, 200, back)
            eq(back["properties"]["networkAcls"], made["networkAcls"])
            refused("fwkeep", "127.0.0.1", "127.0.0.1")
            # the configured vault: a firewall set through the management plane outlives
            # the restart that applies the configuration file again
            default = f"/subscriptions/{SUB}/resourceGroups/kvmock/providers/Microsoft.KeyVault/vaults/default"
            st, got = mgmt("PATCH", default, {"properties": {
                "networkAcls": {"defaultAction": "Deny", "ipRules": [{"value": "198.51.100.0/24"}]},
                "sku": {"family": "A", "name": "premium"}}})
            eq(st, 200, got)
            refused("default", "127.0.0.1", "127.0.0.1", "local")
            # a vault whose firewall the file sets gets the file's at every start
            refused("walled", "127.0.0.1", "127.0.0.1", "local")
            walled = default.replace("/default", "/walled")
            st, got = mgmt("PATCH", walled, {"properties": {
                "networkAcls": {"defaultAction": "Deny", "ipRules": LOOPBACK}}})
            eq(st, 200, got)
            let_in("walled", "127.0.0.1")
            kv.restart()
            refused("walled", "127.0.0.1", "127.0.0.1", "local")
            refused("default", "127.0.0.1", "127.0.0.1", "local")
            refused("fwkeep", "127.0.0.1", "127.0.0.1")
            st, got = mgmt("GET", default)
            eq((st, got["properties"]["sku"]["name"]), (200, "premium"), got)
            eq(got["properties"]["networkAcls"]["ipRules"], [{"value": "198.51.100.0/24"}])
            st, kept = mgmt("GET", f"{ARM}/fwkeep")
            eq(kept["properties"]["networkAcls"], made["networkAcls"])
            eq(kept["properties"]["enabledForTemplateDeployment"], True)
            # listed vaults answer the same
            st, page = mgmt("GET", ARM)
            listed = {v["name"]: v["properties"] for v in page["value"]}
            eq(listed["fwkeep"]["networkAcls"], made["networkAcls"])

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
