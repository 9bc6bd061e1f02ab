"""Soft delete of whole vaults through the ARM-shaped management plane, in raw
HTTP: delete -> the vault's host refuses -> list/get deleted -> recover with
the keys; purge; purge protection until the scheduled purge date (kvmock's
clock moved through /admin/clock); the name a deleted vault holds; vaults
without soft delete; paging; the manage right; the audit log; a restart."""
import calendar
import http.client
import json
import os
import secrets
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT, APP  # noqa: E402

DISK = {"name": "disk", "objectId": "0a000000-0000-4000-8000-0000000000a2",
        "clientId": "0c000000-0000-4000-8000-0000000000a2"}
OPS = {"name": "ops", "objectId": "0a000000-0000-4000-8000-0000000000a3",
       "clientId": "0c000000-0000-4000-8000-0000000000a3", "clientSecret": "ops-secret",
       "manage": True}
CONFIG = {"tenantId": TENANT, "identities": [APP, DISK, OPS]}
SUB = "00000000-0000-0000-0000-000000000000"
ARM = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults"
DELETED = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault"
API = "api-version=2023-07-01"
DAY = 86400


def iso(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        P = kv.https_port

        def mgmt(method, path, body=None, token=None):
            tok = token or kv.token("https://management.azure.com")
            st, hdrs, resp = kv.https(method, path, body, token=tok)
            return st, hdrs, (json.loads(resp) if resp else None)

        def put_vault(name, days=7, purge_protection=False, soft_delete=True, mode=None,
                      location="westeurope"):
            props = {"tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                     "enableSoftDelete": soft_delete, "softDeleteRetentionInDays": days,
                     "accessPolicies": [{"tenantId": TENANT, "objectId": APP["objectId"],
                                         "permissions": {"keys": ["all"]}}]}
            if purge_protection:
                props["enablePurgeProtection"] = True
            if mode:
                props["createMode"] = mode
            return mgmt("PUT", f"{ARM}/{name}?{API}", {"location": location,
                                                        "properties": props})

        def data(method, vault, path, body=None):
            st, _, resp = kv.https(method, f"{path}?api-version=7.4", body,
                                   host=f"{vault}.vault.localhost:{P}")
            return st, (json.loads(resp) if resp else None)

        def create_key(vault, name):
            st, key = data("POST", vault, f"/keys/{name}/create", {"kty": "RSA"})
            eq(st, 200, key)
            return key

        def wrap(vault, name, dek):
            st, out = data("POST", vault, f"/keys/{name}//wrapkey",
                           {"alg": "RSA-OAEP-256", "value": b64url(dek)})
            eq(st, 200, out)
            return out["value"]

        def unwrap(vault, name, wrapped):
            st, out = data("POST", vault, f"/keys/{name}//unwrapkey",
                           {"alg": "RSA-OAEP-256", "value": wrapped})
            eq(st, 200, out)
            return unb64url(out["value"])

        def deleted_names():
            names, path = [], f"{DELETED}/deletedVaults?{API}"
            while path:
                st, _, page = mgmt("GET", path)
                eq(st, 200, page)
                names += [v["name"] for v in page["value"]]
                link = page.get("nextLink")
                path = link[link.index("/subscriptions"):] if link else None
            return names

        def unknown_vault_answer():
            return data("GET", "neverexisted", "/keys/k")

        @runner.test
        def system_data_names_who_made_and_changed_a_vault():
            # an application (client credentials) makes it, a managed identity changes it
            form = urllib.parse.urlencode({
                "grant_type": "client_credentials", "client_id": OPS["clientId"],
                "client_secret": OPS["clientSecret"],
                "scope": "https://management.azure.com/.default"}).encode()
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", form, token=None,
                                   headers={"Content-Type": "application/x-www-form-urlencoded"})
            eq(st, 200, body)
            ops = json.loads(body)["access_token"]
            before = kv.advance_clock(0)
            st, _, made = mgmt("PUT", f"{ARM}/stamped?{API}", {
                "location": "westeurope", "properties": {"tenantId": TENANT}}, token=ops)
            eq(st, 201, made)
            sd = made["systemData"]
            eq((sd["createdBy"], sd["createdByType"], sd["lastModifiedBy"],
                sd["lastModifiedByType"]),
               (OPS["clientId"], "Application", OPS["clientId"], "Application"))
            created = iso(sd["createdAt"])
            check(before <= created <= kv.advance_clock(0), sd)
            eq(sd["lastModifiedAt"], sd["createdAt"])
            st, _, got = mgmt("GET", f"{ARM}/stamped?{API}")
            eq(got["systemData"], sd)
            # a later change: the creation stays
            kv.advance_clock(DAY)
            st, _, changed = mgmt("PATCH", f"{ARM}/stamped?{API}",
                                  {"properties": {"enableRbacAuthorization": True}})
            eq(st, 200, changed)
            eq(changed["systemData"], {
                "createdAt": sd["createdAt"], "createdBy": OPS["clientId"],
                "createdByType": "Application",
                "lastModifiedAt": changed["systemData"]["lastModifiedAt"],
                "lastModifiedBy": APP["clientId"], "lastModifiedByType": "ManagedIdentity"})
            check(iso(changed["systemData"]["lastModifiedAt"]) >= created + DAY, changed)
            # lists, a restart, delete and recover keep it
            st, _, page = mgmt("GET", f"{ARM}?{API}")
            eq([v["systemData"] for v in page["value"] if v["name"] == "stamped"],
               [changed["systemData"]])
            kv.restart()
            eq(mgmt("GET", f"{ARM}/stamped?{API}")[2]["systemData"], changed["systemData"])
            eq(mgmt("DELETE", f"{ARM}/stamped?{API}")[0], 200)
            st, _, back = mgmt("PUT", f"{ARM}/stamped?{API}", {
                "location": "westeurope", "properties": {"createMode": "recover"}})
            eq((st, back["systemData"]), (200, changed["systemData"]), back)
            # a vault of the configuration file: made by kvmock itself, the time alone
            default = (f"/subscriptions/{SUB}/resourceGroups/kvmock/providers/"
                       f"Microsoft.KeyVault/vaults/default?{API}")
            st, _, mine = mgmt("GET", default)
            eq((st, sorted(mine["systemData"])), (200, ["createdAt", "lastModifiedAt"]), mine)

        @runner.test
        def delete_recover_round_trip():
            st, _, body = put_vault("sdv")
            eq(st, 201, body)
            key = create_key("sdv", "cmk")
            dek = secrets.token_bytes(32)
            wrapped = wrap("sdv", "cmk", dek)
            before = kv.advance_clock(0)

            st, _, body = mgmt("DELETE", f"{ARM}/sdv?{API}")
            eq(st, 200, body)
            # the host answers as for a vault that never existed
            st, err = data("GET", "sdv", "/keys/cmk")
            ust, uerr = unknown_vault_answer()
            eq((st, err["error"]["code"]), (ust, uerr["error"]["code"]))
            eq(st, 404)
            eq(err["error"]["code"], "VaultNotFound")
            st, _, body = mgmt("GET", f"{ARM}/sdv?{API}")
            eq(st, 404, body)
            st, _, body = mgmt("GET", f"{ARM}?{API}")
            check("sdv" not in [v["name"] for v in body["value"]], body)

            check("sdv" in deleted_names(), "listed as deleted")
            st, _, d = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/sdv?{API}")
            eq(st, 200, d)
            eq(d["name"], "sdv")
            eq(d["type"], "Microsoft.KeyVault/deletedVaults")
            eq(d["id"], f"{DELETED}/locations/westeurope/deletedVaults/sdv")
            props = d["properties"]
            eq(props["vaultId"], f"{ARM}/sdv")
            eq(props["location"], "westeurope")
            eq(props["tags"], {})  # made without tags
            eq(props["purgeProtectionEnabled"], False)
            deleted = iso(props["deletionDate"])
            check(before <= deleted <= before + 60, props)
            eq(iso(props["scheduledPurgeDate"]), deleted + 7 * DAY)

            # the name is held: a create is refused as Azure refuses it
            st, _, body = put_vault("sdv")
            eq(st, 409, body)
            eq(body["error"]["code"], "ConflictError")
            check("already exists in deleted state" in body["error"]["message"], body)
            # and so in a group that does not exist: the refusal makes no group
            groups = f"/subscriptions/{SUB}/resourcegroups"
            st, _, body = mgmt("PUT", f"{groups}/unmade-rg/providers/Microsoft.KeyVault/vaults/"
                                      f"sdv?{API}", {"location": "westeurope",
                                                     "properties": {"tenantId": TENANT}})
            eq((st, body["error"]["code"]), (409, "ConflictError"), body)
            eq(mgmt("HEAD", f"{groups}/unmade-rg?api-version=2021-04-01")[0], 404)

            st, _, body = put_vault("sdv", days=30, mode="recover")
            eq(st, 200, body)
            eq(body["name"], "sdv")
            eq(body["location"], "westeurope")  # where it was made
            eq(body["properties"]["softDeleteRetentionInDays"], 7)  # as it was
            eq(body["properties"]["vaultUri"], f"https://sdv.vault.localhost:{P}/")
            st, got = data("GET", "sdv", "/keys/cmk")
            eq(st, 200, got)
            eq(got["key"]["kid"], key["key"]["kid"])
            eq(unwrap("sdv", "cmk", wrapped), dek)
            check("sdv" not in deleted_names())
            st, _, body = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/sdv?{API}")
            eq(st, 404, body)

        @runner.test
        def a_vault_keeps_its_location():
            st, _, body = mgmt("PUT", f"{ARM}/loc?{API}", {"location": "northeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}})
            eq((st, body["location"]), (201, "northeurope"), body)
            st, _, body = mgmt("GET", f"{ARM}/loc?{API}")
            eq((st, body["location"]), (200, "northeurope"), body)
            # an update names another region: the vault stays where it is, as in Azure
            st, _, body = put_vault("loc", days=90)
            eq((st, body["location"]), (200, "northeurope"), body)
            # a region's display name answers as Resource Manager names it
            st, _, body = put_vault("locshown", location="West Europe")
            eq((st, body["location"]), (201, "westeurope"), body)
            st, _, body = mgmt("GET", f"{ARM}/locshown?{API}")
            eq((st, body["location"]), (200, "westeurope"), body)
            for bad in (7, "", "   ", "x" * 65, {"name": "westeurope"}):
                st, _, body = mgmt("PUT", f"{ARM}/badloc?{API}", {"location": bad, "properties": {
                    "tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}})
                eq(st, 400, body)
                eq(body["error"]["code"], "BadRequest")
                check("location" in body["error"]["message"], body)
            for body in ({"properties": {"tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}},
                         {"location": None, "properties": {}}):
                st, _, err = mgmt("PUT", f"{ARM}/badloc?{API}", body)
                eq(st, 400, err)
                eq(err["error"]["code"], "LocationRequired")
            eq(mgmt("GET", f"{ARM}/badloc?{API}")[0], 404)

        @runner.test
        def tags_are_kept_replaced_by_put_and_patched():
            base = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "softDeleteRetentionInDays": 7}}
            st, _, body = mgmt("PUT", f"{ARM}/tagged?{API}", dict(base, tags={"team": "payments",
                                                                               "env": "ci"}))
            eq((st, body["tags"]), (201, {"team": "payments", "env": "ci"}), body)
            st, _, body = mgmt("GET", f"{ARM}/tagged?{API}")
            eq((st, body["tags"]), (200, {"team": "payments", "env": "ci"}), body)
            st, _, body = mgmt("GET", f"/subscriptions/{SUB}/resources?$filter="
                                      "resourceType%20eq%20'Microsoft.KeyVault%2Fvaults'&"
                                      "api-version=2021-04-01")
            eq(st, 200, body)
            eq([r["tags"] for r in body["value"] if r["name"] == "tagged"],
               [{"team": "payments", "env": "ci"}])
            # PATCH: the tags it names replace the vault's; the rest stays
            st, _, body = mgmt("PATCH", f"{ARM}/tagged?{API}", {"tags": {"team": "ledger"}})
            eq((st, body["tags"]), (200, {"team": "ledger"}), body)
            eq(body["properties"]["softDeleteRetentionInDays"], 7)
            eq(body["location"], "westeurope")
            # PATCH of a property keeps the tags
            st, _, body = mgmt("PATCH", f"{ARM}/tagged?{API}",
                               {"properties": {"enableRbacAuthorization": True}})
            eq((st, body["tags"], body["properties"]["enableRbacAuthorization"]),
               (200, {"team": "ledger"}, True), body)
            # a deleted vault shows its tags, and its recovery keeps them
            eq(mgmt("DELETE", f"{ARM}/tagged?{API}")[0], 200)
            st, _, d = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/tagged?{API}")
            eq((st, d["properties"]["tags"]), (200, {"team": "ledger"}), d)
            st, _, body = mgmt("PUT", f"{ARM}/tagged?{API}", {"location": "westeurope", "properties": {
                "createMode": "recover"}})
            eq((st, body["tags"]), (200, {"team": "ledger"}), body)
            # PUT replaces the whole resource: no tags given, none kept
            st, _, body = mgmt("PUT", f"{ARM}/tagged?{API}", base)
            eq((st, body["tags"]), (200, {}), body)
            eq(mgmt("GET", f"{ARM}/tagged?{API}")[2]["tags"], {})

        @runner.test
        def bad_tags_are_refused_and_change_nothing():
            base = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}}
            st, _, body = mgmt("PUT", f"{ARM}/badtags?{API}", dict(base, tags={"keep": "me"}))
            eq(st, 201, body)
            bad = [
                (["a"], "object"),
                ({"n": 1}, "not a string"),
                ({"a/b": "x"}, "reserved characters"),
                ({"a%b": "x"}, "reserved characters"),
                ({"": "x"}, "empty"),
                ({"n" * 513: "x"}, "512"),
                ({"n": "v" * 257}, "256"),
                ({"t%d" % i: "x" for i in range(51)}, "at most 50"),
            ]
            for tags, why in bad:
                for method, name in (("PUT", "badtags"), ("PATCH", "badtags"), ("PUT", "newtags")):
                    body = dict(base, tags=tags) if method == "PUT" else {"tags": tags}
                    st, _, err = mgmt(method, f"{ARM}/{name}?{API}", body)
                    eq(st, 400, (method, name, tags, err))
                    eq(err["error"]["code"], "BadRequest", err)
                    check(why in err["error"]["message"], (why, err))
            eq(mgmt("GET", f"{ARM}/badtags?{API}")[2]["tags"], {"keep": "me"})
            eq(mgmt("GET", f"{ARM}/newtags?{API}")[0], 404)
            # the limits themselves are allowed
            ok = {"t%d" % i: "v" * 256 for i in range(49)}
            ok["n" * 512] = ""
            st, _, body = mgmt("PATCH", f"{ARM}/badtags?{API}", {"tags": ok})
            eq((st, body["tags"]), (200, ok), str(body)[:300])

        @runner.test
        def access_policies_keep_every_list_as_given():
            # Resource Manager keeps an access policy's lists as the client gave them: secret,
            # certificate and storage permissions too (Terraform's and az's access policies
            # name them), each list in its order; kvmock grants from the key list
            def disk_perms(vault):
                return [p["permissions"] for p in vault["properties"]["accessPolicies"]
                        if p["objectId"] == DISK["objectId"]][0]

            entry = {"tenantId": TENANT, "objectId": DISK["objectId"], "permissions": {
                "keys": ["WrapKey", "get", "unwrapkey", "get"],
                "secrets": ["set", "Get"], "certificates": ["ManageIssuers", "list"],
                "storage": ["getsas"]}}
            st, _, body = mgmt("PUT", f"{ARM}/listsv?{API}", {"location": "westeurope",
                               "properties": {"tenantId": TENANT,
                                              "sku": {"family": "A", "name": "standard"},
                                              "accessPolicies": [entry, {
                                                  "tenantId": TENANT, "objectId": APP["objectId"],
                                                  "permissions": {"keys": ["all"]}}]}})
            eq(st, 201, body)
            want = {"keys": ["wrapKey", "get", "unwrapKey"], "secrets": ["set", "get"],
                    "certificates": ["manageissuers", "list"], "storage": ["getsas"]}
            eq(disk_perms(body), want)
            eq(disk_perms(mgmt("GET", f"{ARM}/listsv?{API}")[2]), want)
            # "all" stays "all", as given
            eq([p["permissions"] for p in body["properties"]["accessPolicies"]
                if p["objectId"] == APP["objectId"]],
               [{"keys": ["all"], "secrets": [], "certificates": []}])
            # add appends what is not there yet; remove takes away what it names, and
            # "all" its whole list; storage is left out once empty, as Azure answers
            add = {"properties": {"accessPolicies": [{"tenantId": TENANT, "objectId": DISK["objectId"],
                   "permissions": {"keys": ["sign", "get"], "secrets": ["list"]}}]}}
            st, _, body = mgmt("PUT", f"{ARM}/listsv/accessPolicies/add?{API}", add)
            eq(st, 200, body)
            # Azure's answer names no operation kind (the REST specification's example)
            eq((body["id"], body["type"], "name" in body),
               (f"{ARM}/listsv/accessPolicies/", "Microsoft.KeyVault/vaults/accessPolicies", False))
            eq(disk_perms(body),
               dict(want, keys=["wrapKey", "get", "unwrapKey", "sign"],
                    secrets=["set", "get", "list"]))
            remove = {"properties": {"accessPolicies": [{"tenantId": TENANT,
                      "objectId": DISK["objectId"], "permissions": {"keys": ["get"],
                                                               "storage": ["all"]}}]}}
            st, _, body = mgmt("PUT", f"{ARM}/listsv/accessPolicies/remove?{API}", remove)
            eq(st, 200, body)
            eq(disk_perms(body),
               {"keys": ["wrapKey", "unwrapKey", "sign"], "secrets": ["set", "get", "list"],
                "certificates": ["manageissuers", "list"]})
            # the key list is what the data plane grants
            tok = kv.token(client_id=DISK["clientId"])
            host = f"listsv.vault.localhost:{P}"
            st, _, resp = kv.https("POST", "/keys/k/create?api-version=7.4", {"kty": "RSA"},
                                   host=host)
            eq(st, 200, resp)
            version = json.loads(resp)["key"]["kid"].rsplit("/", 1)[1]
            eq(kv.https("GET", "/keys/k?api-version=7.4", host=host, token=tok)[0], 403)
            st, _, resp = kv.https("POST", f"/keys/k/{version}/sign?api-version=7.4",
                                   {"alg": "RS256", "value": "A" * 43}, host=host, token=tok)
            eq(st, 200, resp)
            # a name a list does not know is refused, naming it, and changes nothing
            for lst, name in (("secrets", "wrapKey"), ("certificates", "fly"), ("keys", "set")):
                bad = {"properties": {"accessPolicies": [{"tenantId": TENANT,
                       "objectId": DISK["objectId"], "permissions": {lst: [name]}}]}}
                st, _, err = mgmt("PUT", f"{ARM}/listsv/accessPolicies/add?{API}", bad)
                eq((st, err["error"]["code"]), (400, "BadRequest"), err)
                noun = {"secrets": "secret", "certificates": "certificate", "keys": "key"}[lst]
                eq(err["error"]["message"], f"Invalid {noun} permission '{name}'.")
            eq(disk_perms(mgmt("GET", f"{ARM}/listsv?{API}")[2])["keys"],
               ["wrapKey", "unwrapKey", "sign"])

        @runner.test
        def patch_needs_a_vault_and_a_well_formed_body():
            st, _, err = mgmt("PATCH", f"{ARM}/nosuchvault?{API}", {"tags": {"a": "b"}})
            eq((st, err["error"]["code"]), (404, "ResourceNotFound"), err)
            check("nosuchvault" in err["error"]["message"], err)
            eq(mgmt("GET", f"{ARM}/nosuchvault?{API}")[0], 404)
            eq(put_vault("patched")[0], 201)
            st, _, err = mgmt("PATCH", f"{ARM}/patched?{API}", {"properties": "x"})
            eq((st, err["error"]["code"]), (400, "BadRequest"), err)
            st, _, err = mgmt("PATCH", f"{ARM}/patched?{API}",
                              {"properties": {"softDeleteRetentionInDays": 3}})
            eq((st, err["error"]["code"]), (400, "BadRequest"), err)
            # a PATCH needs no location, and keeps the access policies it does not name
            st, _, body = mgmt("PATCH", f"{ARM}/patched?{API}",
                               {"properties": {"enableRbacAuthorization": False}})
            eq(st, 200, body)
            eq(body["properties"]["softDeleteRetentionInDays"], 7)
            eq([p["objectId"] for p in body["properties"]["accessPolicies"]], [APP["objectId"]])
            create_key("patched", "k")
            # the PATCH is audited as VaultPatch
            ops = [r["operationName"] for r in kv.audit_records()]
            check("VaultPatch" in ops, ops[-10:])

        @runner.test
        def soft_delete_and_its_retention_cannot_be_undone():
            eq(put_vault("keepsd", days=7)[0], 201)
            for method, body, prop in (
                    ("PATCH", {"properties": {"enableSoftDelete": False}}, "enableSoftDelete"),
                    ("PATCH", {"properties": {"softDeleteRetentionInDays": 30}},
                     "softDeleteRetentionInDays"),
                    ("PUT", None, "softDeleteRetentionInDays")):
                if body is None:
                    st, _, err = put_vault("keepsd", days=90)
                else:
                    st, _, err = mgmt(method, f"{ARM}/keepsd?{API}", body)
                eq((st, err["error"]["code"]), (400, "BadRequest"), err)
                check(f'"{prop}"' in err["error"]["message"], err)
            st, _, body = mgmt("GET", f"{ARM}/keepsd?{API}")
            eq((body["properties"]["enableSoftDelete"], body["properties"]["softDeleteRetentionInDays"]),
               (True, 7), body)
            # the same values again are no change; a vault without soft delete may turn it on,
            # with the retention it chooses then
            eq(put_vault("keepsd", days=7)[0], 200)
            eq(put_vault("nosd", soft_delete=False)[0], 201)
            st, _, body = mgmt("PATCH", f"{ARM}/nosd?{API}", {"properties": {
                "enableSoftDelete": True, "softDeleteRetentionInDays": 30}})
            eq((st, body["properties"]["softDeleteRetentionInDays"]), (200, 30), body)
            eq(mgmt("PATCH", f"{ARM}/nosd?{API}",
                    {"properties": {"softDeleteRetentionInDays": 7}})[0], 400)

        @runner.test
        def purge_protection_takes_only_true():
            # Azure refuses false even for a new vault (the property cannot be set to false),
            # and a vault without purge protection keeps it off when the property is left out
            message = ('The property "enablePurgeProtection" cannot be set to false. Enabling '
                       'the purge protection for a vault is an irreversible action.')
            body = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "enablePurgeProtection": False}}
            st, _, err = mgmt("PUT", f"{ARM}/ppfalse?{API}", body)
            eq((st, err["error"]), (400, {"code": "BadRequest", "message": message}), err)
            eq(mgmt("GET", f"{ARM}/ppfalse?{API}")[0], 404)  # not made
            eq(put_vault("ppfalse")[0], 201)
            st, _, err = mgmt("PATCH", f"{ARM}/ppfalse?{API}",
                              {"properties": {"enablePurgeProtection": False}})
            eq((st, err["error"]["message"]), (400, message), err)
            st, _, got = mgmt("GET", f"{ARM}/ppfalse?{API}")
            check("enablePurgeProtection" not in got["properties"], got)  # absent, as in Azure
            st, _, got = mgmt("PATCH", f"{ARM}/ppfalse?{API}",
                              {"properties": {"enablePurgeProtection": True}})
            eq((st, got["properties"]["enablePurgeProtection"]), (200, True), got)

        @runner.test
        def resource_groups_hold_vaults():
            GROUPS = f"/subscriptions/{SUB}/resourcegroups"
            RAPI = "api-version=2021-04-01"
            # kvmock's own group holds the configuration file's vaults
            st, _, g = mgmt("GET", f"{GROUPS}/kvmock?{RAPI}")
            eq((st, g["location"]), (200, "local"), g)
            st, _, g = mgmt("PUT", f"{GROUPS}/Team-RG?{RAPI}", {"location": "northeurope",
                                                               "tags": {"cost": "1"}})
            eq(st, 201, g)
            eq(g, {"id": f"/subscriptions/{SUB}/resourceGroups/Team-RG", "name": "Team-RG",
                   "type": "Microsoft.Resources/resourceGroups", "location": "northeurope",
                   "tags": {"cost": "1"}, "properties": {"provisioningState": "Succeeded"}})
            eq(mgmt("HEAD", f"{GROUPS}/team-rg?{RAPI}")[0], 204)
            eq(mgmt("HEAD", f"{GROUPS}/nogroup?{RAPI}")[0], 404)
            st, _, err = mgmt("GET", f"{GROUPS}/nogroup?{RAPI}")
            eq((st, err["error"]["code"]), (404, "ResourceGroupNotFound"), err)
            check("nogroup" in err["error"]["message"], err)
            # PUT again: same place, tags replaced; PATCH: only the tags it names
            st, _, g = mgmt("PUT", f"{GROUPS}/team-rg?{RAPI}", {"location": "North Europe"})
            eq((st, g["name"], g["tags"], g["location"]), (200, "Team-RG", {}, "northeurope"), g)
            st, _, g = mgmt("PATCH", f"{GROUPS}/team-rg?{RAPI}", {"tags": {"owner": "x"}})
            eq((st, g["tags"], g["location"]), (200, {"owner": "x"}, "northeurope"), g)
            for method, path, body, status, code in (
                    ("PUT", "team-rg", {"location": "westeurope"}, 409, "InvalidResourceGroupLocation"),
                    ("PUT", "new-rg", {}, 400, "LocationRequired"),
                    ("PUT", "bad%2Fname", {"location": "westeurope"}, 400, "BadRequest"),
                    ("PUT", "ends.", {"location": "westeurope"}, 400, "BadRequest"),
                    ("PUT", "new-rg", {"location": "westeurope", "tags": {"a/b": "c"}}, 400,
                     "BadRequest"),
                    ("PATCH", "nogroup", {"tags": {}}, 404, "ResourceGroupNotFound"),
                    ("DELETE", "nogroup", None, 404, "ResourceGroupNotFound")):
                st, _, err = mgmt(method, f"{GROUPS}/{path}?{RAPI}", body)
                eq((st, err["error"]["code"]), (status, code), (method, path, err))
            eq(mgmt("GET", f"{GROUPS}/new-rg?{RAPI}")[0], 404)
            eq(mgmt("GET", f"{GROUPS}/team-rg?{RAPI}")[2]["location"], "northeurope")
            st, _, lst = mgmt("GET", f"{GROUPS}?{RAPI}")
            check({"kvmock", "Team-RG"} <= {g["name"] for g in lst["value"]}, lst)
            st, _, err = mgmt("GET", f"{GROUPS}?api-version=1999-01-01")
            eq((st, err["error"]["code"]), (400, "BadRequest"), err)

            # a vault is in the group it was made in, and only there
            IN = f"/subscriptions/{SUB}/resourceGroups/team-rg/providers/Microsoft.KeyVault/vaults"
            body = {"location": "northeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "accessPolicies": [{"tenantId": TENANT, "objectId": APP["objectId"],
                                    "permissions": {"keys": ["all"]}}]}}
            st, _, v = mgmt("PUT", f"{IN}/grouped?{API}", body)
            eq((st, v["id"]), (201, f"/subscriptions/{SUB}/resourceGroups/Team-RG/providers/"
                                    "Microsoft.KeyVault/vaults/grouped"), v)
            create_key("grouped", "k")
            st, _, err = mgmt("GET", f"{ARM}/grouped?{API}")
            eq((st, err["error"]["code"]), (404, "ResourceNotFound"), err)
            st, _, err = mgmt("PUT", f"{ARM}/grouped?{API}", body)
            eq((st, err["error"]["code"]), (409, "VaultAlreadyExists"), err)
            eq(mgmt("PATCH", f"{ARM}/grouped?{API}", {"tags": {}})[0], 404)
            eq(mgmt("DELETE", f"{ARM}/grouped?{API}")[0], 204)  # nothing of that name there
            eq(data("GET", "grouped", "/keys/k")[0], 200)
            st, _, lst = mgmt("GET", f"{IN}?{API}")
            eq([x["name"] for x in lst["value"]], ["grouped"])
            check("grouped" not in [x["name"] for x in mgmt("GET", f"{ARM}?{API}")[2]["value"]])
            # the configuration file's vaults still answer through any group
            eq(mgmt("GET", f"{IN}/default?{API}")[0], 200)
            # a vault made in a group that does not exist yet brings it along
            AUTO = f"/subscriptions/{SUB}/resourceGroups/auto-rg/providers/Microsoft.KeyVault/vaults"
            eq(mgmt("PUT", f"{AUTO}/autov?{API}", body)[0], 201)
            eq(mgmt("GET", f"{GROUPS}/auto-rg?{RAPI}")[2]["location"], "northeurope")
            st, _, err = mgmt("PUT", f"/subscriptions/{SUB}/resourceGroups/bad%2Fg/providers/"
                                     f"Microsoft.KeyVault/vaults/badg?{API}", body)
            eq((st, err["error"]["code"]), (400, "BadRequest"), err)

            # deleting a group deletes its vaults, each as a vault DELETE does
            eq(mgmt("DELETE", f"{GROUPS}/TEAM-RG?{RAPI}")[0], 200)
            eq(mgmt("GET", f"{GROUPS}/team-rg?{RAPI}")[0], 404)
            eq(data("GET", "grouped", "/keys/k")[0], 404)
            check("grouped" in deleted_names())
            eq(mgmt("GET", f"{AUTO}/autov?{API}")[0], 200)  # another group's vault stays
            st, _, d = mgmt("GET", f"{DELETED}/locations/northeurope/deletedVaults/grouped?{API}")
            eq(d["properties"]["vaultId"], f"/subscriptions/{SUB}/resourceGroups/Team-RG/providers/"
                                          "Microsoft.KeyVault/vaults/grouped")
            # recovering the vault brings its group back
            st, _, v = mgmt("PUT", f"{IN}/grouped?{API}", dict(body, properties={"createMode": "recover"}))
            eq((st, v["id"]), (200, f"/subscriptions/{SUB}/resourceGroups/Team-RG/providers/"
                                    "Microsoft.KeyVault/vaults/grouped"), v)
            eq(mgmt("GET", f"{GROUPS}/team-rg?{RAPI}")[2]["location"], "northeurope")
            eq(data("GET", "grouped", "/keys/k")[0], 200)
            ops = [r["operationName"] for r in kv.audit_records()]
            check({"ResourceGroupPut", "ResourceGroupGet", "ResourceGroupDelete",
                   "ResourceGroupList"} <= set(ops), ops[-20:])
            metrics = kv.http("GET", "/metrics")[2].decode()
            for line in ('operation="ResourceGroupPut",status="201"',
                         'operation="ResourceGroupDelete",status="200"',
                         'operation="VaultPatch",status="404"',
                         'operation="VaultRecover",status="200"'):
                check(line in metrics, line)

        @runner.test
        def keys_through_resource_manager():
            eq(put_vault("armkeys")[0], 201)
            KEYS = f"{ARM}/armkeys/keys"
            body = {"properties": {"kty": "RSA", "keySize": 3072, "keyOps": ["wrapKey", "unwrapKey"],
                                   "attributes": {"enabled": True, "exp": 4102444800}},
                    "tags": {"purpose": "cmk"}}
            st, _, k = mgmt("PUT", f"{KEYS}/cmk?{API}", body)
            eq(st, 200, k)
            eq((k["id"], k["name"], k["type"], k["location"], k["tags"]),
               (f"{ARM}/armkeys/keys/cmk", "cmk", "Microsoft.KeyVault/vaults/keys", "westeurope",
                {"purpose": "cmk"}))
            props = k["properties"]
            eq((props["kty"], props["keySize"], props["keyOps"]), ("RSA", 3072, ["wrapKey", "unwrapKey"]))
            eq(props["keyUri"], f"https://armkeys.vault.localhost:{P}/keys/cmk")
            version = props["keyUriWithVersion"].rsplit("/", 1)[1]
            eq(len(version), 32)
            eq((props["attributes"]["enabled"], props["attributes"]["exp"]), (True, 4102444800))
            eq(props["attributes"]["recoveryLevel"], "CustomizedRecoverable+Purgeable")
            check(not ({"n", "e", "d", "p", "q"} & set(props)), "no key material")
            # the data plane has the same key, and wraps with it
            st, dk = data("GET", "armkeys", "/keys/cmk")
            eq((st, dk["key"]["kid"]), (200, props["keyUriWithVersion"]), dk)
            dek = secrets.token_bytes(32)
            eq(unwrap("armkeys", "cmk", wrap("armkeys", "cmk", dek)), dek)
            # a second PUT answers the key as it is: no new version, nothing changed
            st, _, again = mgmt("PUT", f"{KEYS}/cmk?{API}",
                                {"properties": {"kty": "EC", "curveName": "P-384"}})
            eq((st, again["properties"]["keyUriWithVersion"], again["properties"]["kty"]),
               (200, props["keyUriWithVersion"], "RSA"), again)
            # a hardware key needs a premium vault, as on the data plane
            hsm = {"properties": {"kty": "EC-HSM", "curveName": "P-384"}}
            st, _, err = mgmt("PUT", f"{KEYS}/ec?{API}", hsm)
            eq((st, err["error"]), (400, {"code": "BadRequest", "message": "The key 'ec' cannot be "
                                          "created: Hardware key operation not allowed on "
                                          "standard vault."}), err)
            eq(data("GET", "armkeys", "/keys/ec")[0], 404)
            st, _, up = mgmt("PATCH", f"{ARM}/armkeys?{API}",
                             {"properties": {"sku": {"family": "A", "name": "premium"}}})
            eq((st, up["properties"]["sku"]["name"]), (200, "premium"), up)
            st, _, ec = mgmt("PUT", f"{KEYS}/ec?{API}", hsm)
            eq((st, ec["properties"]["kty"], ec["properties"]["curveName"]), (200, "EC-HSM", "P-384"), ec)
            check("keySize" not in ec["properties"], ec)
            # one version, the versions, the list
            st, _, one = mgmt("GET", f"{KEYS}/cmk/versions/{version}?{API}")
            eq((st, one["name"], one["type"], one["id"]),
               (200, version, "Microsoft.KeyVault/vaults/keys/versions",
                f"{ARM}/armkeys/keys/cmk/versions/{version}"), one)
            st, second = data("POST", "armkeys", "/keys/cmk/create", {"kty": "RSA"})
            eq(st, 200, second)
            st, _, vs = mgmt("GET", f"{KEYS}/cmk/versions?{API}")
            eq(sorted(v["name"] for v in vs["value"]),
               sorted([version, second["key"]["kid"].rsplit("/", 1)[1]]))
            st, _, cur = mgmt("GET", f"{KEYS}/cmk?{API}")
            eq(cur["properties"]["keyUriWithVersion"], second["key"]["kid"])
            for i in range(27):
                create_key("armkeys", f"many{i:02d}")
            st, _, page = mgmt("GET", f"{KEYS}?{API}")
            eq((st, len(page["value"])), (200, 25), page)
            check(all(set(x["properties"]) == {"attributes", "keyUri"} for x in page["value"]), page)
            link = page["nextLink"]
            check(link.startswith(f"https://localhost:{P}{ARM}/armkeys/keys?api-version="), link)
            st, _, page2 = mgmt("GET", link[link.index("/subscriptions"):])
            eq(st, 200, page2)
            names = [x["name"] for x in page["value"] + page2["value"]]
            eq(len(names), len(set(names)))
            check({"cmk", "ec", "many00", "many26"} <= set(names), names)
            # errors, and nothing made
            for path, bad, status, code in (
                    (f"{KEYS}/k1", {"properties": {"kty": "oct"}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "RSA", "keySize": 1000}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "RSA", "curveName": "P-256"}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "EC", "keyOps": ["fly"]}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "RSA", "attributes": {"exportable": True}}},
                     400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "RSA-HSM",
                                                   "release_policy": {"data": "e30"}}},
                     400, "BadRequest"),
                    (f"{KEYS}/bad_name", {"properties": {"kty": "RSA"}}, 400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "EC"}, "tags": {f"t{i}": "v" for i in range(16)}},
                     400, "BadRequest"),
                    (f"{KEYS}/k1", {"properties": {"kty": "EC"}, "tags": {"n": 5}}, 400, "BadRequest"),
                    (f"{ARM}/nosuchvault/keys/k1", {"properties": {"kty": "RSA"}}, 404, "ResourceNotFound")):
                st, _, err = mgmt("PUT", f"{path}?{API}", bad)
                eq((st, err["error"]["code"]), (status, code), (path, bad, err))
            eq(data("GET", "armkeys", "/keys/k1")[0], 404)
            st, _, err = mgmt("GET", f"{KEYS}/k1?{API}")
            eq((st, err["error"]["code"]), (404, "ResourceNotFound"), err)
            eq(mgmt("GET", f"{KEYS}/cmk/versions/{'0' * 32}?{API}")[0], 404)
            eq(mgmt("DELETE", f"{KEYS}/cmk?{API}")[0], 405)
            # a soft-deleted name is held
            eq(data("DELETE", "armkeys", "/keys/ec")[0], 200)
            st, _, err = mgmt("PUT", f"{KEYS}/ec?{API}", {"properties": {"kty": "EC"}})
            eq((st, err["error"]["code"]), (409, "Conflict"), err)
            # PUTs of one new key at once make one key with one version, and all answer it
            import threading
            tok, answers = kv.token("https://management.azure.com"), []

            def put_key():
                st, _, resp = kv.https("PUT", f"{KEYS}/raced?{API}",
                                       {"properties": {"kty": "EC", "curveName": "P-256"}}, token=tok)
                answers.append((st, json.loads(resp)))

            threads = [threading.Thread(target=put_key) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            eq({st for st, _ in answers}, {200}, answers)
            eq(len({a["properties"]["keyUriWithVersion"] for _, a in answers}), 1, answers)
            st, _, vs = mgmt("GET", f"{KEYS}/raced/versions?{API}")
            eq((st, len(vs["value"])), (200, 1), vs)
            # the management right is needed
            st, _, err = mgmt("GET", f"{KEYS}?{API}", token=kv.token("https://management.azure.com",
                                                                      client_id=DISK["clientId"]))
            eq((st, err["error"]["code"]), (403, "AuthorizationFailed"), err)

        @runner.test
        def resource_manager_keys_keep_the_order_of_key_ops():
            # Terraform's azurerm and ARM templates compare keyOps as an ordered list: the
            # key's resource answers them in the order of the PUT, as the data plane does
            eq(put_vault("armorder")[0], 201)
            KEYS = f"{ARM}/armorder/keys"
            tf = ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"]
            st, _, k = mgmt("PUT", f"{KEYS}/tf?{API}",
                            {"properties": {"kty": "RSA", "keyOps": tf + ["encrypt"]}})
            eq(st, 200, k)
            eq(k["properties"]["keyOps"], tf, "PUT: in order, a duplicate once")
            version = k["properties"]["keyUriWithVersion"].rsplit("/", 1)[1]
            st, _, got = mgmt("GET", f"{KEYS}/tf?{API}")
            eq((st, got["properties"]["keyOps"]), (200, tf), got)
            st, _, one = mgmt("GET", f"{KEYS}/tf/versions/{version}?{API}")
            eq((st, one["properties"]["keyOps"]), (200, tf), one)
            # a second PUT answers the key as it is, its order too
            st, _, again = mgmt("PUT", f"{KEYS}/tf?{API}",
                                {"properties": {"kty": "RSA", "keyOps": ["sign"]}})
            eq((st, again["properties"]["keyOps"]), (200, tf), again)
            # the data plane answers the same order
            st, dk = data("GET", "armorder", "/keys/tf")
            eq((st, dk["key"]["key_ops"]), (200, tf), dk)
            # a key made through the data plane with an order shows it here, and a PATCH's
            # new order too
            st, made = data("POST", "armorder", "/keys/dp/create",
                            {"kty": "EC", "key_ops": ["verify", "sign"]})
            eq(st, 200, made)
            st, _, dp = mgmt("GET", f"{KEYS}/dp?{API}")
            eq((st, dp["properties"]["keyOps"]), (200, ["verify", "sign"]), dp)
            eq(data("PATCH", "armorder", "/keys/dp", {"key_ops": ["sign", "verify"]})[0], 200)
            st, _, dp = mgmt("GET", f"{KEYS}/dp?{API}")
            eq((st, dp["properties"]["keyOps"]), (200, ["sign", "verify"]), dp)
            # without keyOps: the kty's default in kvmock's order, as before
            st, _, ec = mgmt("PUT", f"{KEYS}/plain?{API}", {"properties": {"kty": "RSA"}})
            eq((st, ec["properties"]["keyOps"]),
               (200, ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]), ec)

        @runner.test
        def name_availability():
            CHECK = f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/checkNameAvailability?{API}"
            eq(put_vault("takenname")[0], 201)
            eq(put_vault("gonename")[0], 201)
            eq(mgmt("DELETE", f"{ARM}/gonename?{API}")[0], 200)
            for name, available, reason in (("freename", True, None), ("takenname", False, "AlreadyExists"),
                                            ("TAKENNAME", False, "AlreadyExists"),
                                            ("gonename", False, "AlreadyExists"),  # deleted, not purged
                                            ("default", False, "AlreadyExists"),
                                            ("ab", False, "AccountNameInvalid"),
                                            ("bad_name", False, "AccountNameInvalid"),
                                            ("x" * 25, False, "AccountNameInvalid"),
                                            ("5vault", False, "AccountNameInvalid"),
                                            ("vault-", False, "AccountNameInvalid"),
                                            ("my--vault", False, "AccountNameInvalid"),
                                            ("My-Vault-9", True, None)):
                st, _, doc = mgmt("POST", CHECK, {"name": name, "type": "Microsoft.KeyVault/vaults"})
                eq((st, doc["nameAvailable"], doc.get("reason")), (200, available, reason), (name, doc))
                check(available or doc["message"], doc)
            for bad in ({"name": "x"}, {"type": "Microsoft.KeyVault/vaults"},
                        {"name": "abc", "type": "Microsoft.Storage/storageAccounts"}):
                st, _, err = mgmt("POST", CHECK, bad)
                eq((st, err["error"]["code"]), (400, "BadRequest"), err)
            eq(mgmt("GET", CHECK)[0], 405)

        @runner.test
        def a_new_vault_takes_azures_names():
            # 3-24 letters, digits and dashes, a letter first, a letter or digit last, no two
            # dashes in a row; Azure's code and message (seen in its deployment errors)
            for name in ("ab", "5vault", "vault-", "-vault", "my--vault", "bad_name", "x" * 25):
                st, _, err = put_vault(name)
                eq((st, err["error"]["code"]), (400, "VaultNameNotValid"), (name, err))
                eq(err["error"]["message"],
                   f"The vault name '{name}' is invalid. A vault's name must be between 3-24 "
                   "alphanumeric characters. The name must begin with a letter, end with a "
                   "letter or digit, and not contain consecutive hyphens. Follow this link for "
                   "more information: https://go.microsoft.com/fwlink/?linkid=2147742")
                eq(mgmt("GET", f"{ARM}/{name}?{API}")[0], 404, name)
            # either case: the vault is its lowercase name, as its host has it
            st, _, made = put_vault("My-Vault-9")
            eq((st, made["name"]), (201, "my-vault-9"), made)
            eq(made["properties"]["vaultUri"], f"https://my-vault-9.vault.localhost:{P}/")
            st, _, got = mgmt("PATCH", f"{ARM}/MY-VAULT-9?{API}", {"tags": {"a": "b"}})
            eq((st, got["name"], got["tags"]), (200, "my-vault-9", {"a": "b"}), got)
            st, _, err = mgmt("PATCH", f"{ARM}/my--vault?{API}", {"tags": {}})
            eq((st, err["error"]["code"]), (404, "ResourceNotFound"), err)

        @runner.test
        def recover_needs_a_deleted_vault():
            st, _, body = put_vault("nothere", mode="recover")
            eq(st, 400, body)
            eq(body["error"]["code"], "SoftDeletedVaultDoesNotExist")
            st, _, body = mgmt("GET", f"{ARM}/nothere?{API}")
            eq(st, 404, body)
            st, _, body = put_vault("nothere", mode="restore")
            eq(st, 400, body)

        @runner.test
        def purge_removes_the_vault_and_its_keys():
            eq(put_vault("sdp")[0], 201)
            create_key("sdp", "cmk")
            eq(mgmt("DELETE", f"{ARM}/sdp?{API}")[0], 200)
            st, hdrs, body = mgmt("POST", f"{DELETED}/locations/westeurope/deletedVaults/sdp/purge?{API}")
            eq(st, 200, body)
            check("sdp" not in deleted_names())
            st, _, body = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/sdp?{API}")
            eq(st, 404, body)
            eq(body["error"]["code"], "ResourceNotFound")
            st, _, body = mgmt("POST", f"{DELETED}/locations/westeurope/deletedVaults/sdp/purge?{API}")
            eq(st, 404, body)
            st, _, body = put_vault("sdp", mode="recover")
            eq(st, 400, body)
            # the name is free, and nothing of the old vault comes back
            eq(put_vault("sdp")[0], 201)
            st, err = data("GET", "sdp", "/keys/cmk")
            eq(st, 404, err)
            eq(err["error"]["code"], "KeyNotFound")

        @runner.test
        def purge_protection_holds_until_the_scheduled_purge_date():
            eq(put_vault("sdpp", purge_protection=True)[0], 201)
            create_key("sdpp", "cmk")
            eq(mgmt("DELETE", f"{ARM}/sdpp?{API}")[0], 200)
            path = f"{DELETED}/locations/westeurope/deletedVaults/sdpp"
            st, _, d = mgmt("GET", f"{path}?{API}")
            eq(d["properties"]["purgeProtectionEnabled"], True)
            due = iso(d["properties"]["scheduledPurgeDate"])
            st, _, body = mgmt("POST", f"{path}/purge?{API}")
            eq(st, 405, body)
            eq(body["error"]["code"], "MethodNotAllowed")
            eq(body["error"]["message"], "Operation 'DeletedVaultPurge' is not allowed.")
            now = kv.advance_clock(0)
            kv.advance_clock(due - now - 120)
            st, _, body = mgmt("POST", f"{path}/purge?{API}")
            eq(st, 405, body)
            eq(mgmt("GET", f"{path}?{API}")[0], 200)  # still there, still recoverable
            eq(put_vault("sdpp")[0], 409)
            kv.advance_clock(121)  # past the date: the sweep purges it
            st, _, body = mgmt("GET", f"{path}?{API}")
            eq(st, 404, body)
            check("sdpp" not in deleted_names())
            eq(put_vault("sdpp", purge_protection=True)[0], 201)
            eq(data("GET", "sdpp", "/keys/cmk")[0], 404)

        @runner.test
        def without_soft_delete_the_vault_goes_at_once():
            eq(put_vault("hard", soft_delete=False)[0], 201)
            create_key("hard", "cmk")
            eq(mgmt("DELETE", f"{ARM}/hard?{API}")[0], 200)
            check("hard" not in deleted_names())
            eq(mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/hard?{API}")[0], 404)
            eq(put_vault("hard", soft_delete=False)[0], 201)
            eq(data("GET", "hard", "/keys/cmk")[0], 404)
            # deleting what does not exist is 204, as ARM answers
            eq(mgmt("DELETE", f"{ARM}/neverexisted?{API}")[0], 204)

        @runner.test
        def list_is_paged():
            for name in ("pga", "pgb", "pgc"):
                eq(put_vault(name)[0], 201)
                eq(mgmt("DELETE", f"{ARM}/{name}?{API}")[0], 200)
            st, _, page = mgmt("GET", f"{DELETED}/deletedVaults?{API}&$top=1")
            eq(st, 200, page)
            eq(len(page["value"]), 1)
            check(page["nextLink"].startswith(f"https://localhost:{P}/subscriptions/"), page)
            names = deleted_names()
            for name in ("pga", "pgb", "pgc"):
                eq(names.count(name), 1, names)
            eq(names, sorted(names))
            st, _, body = mgmt("GET", f"{DELETED}/deletedVaults?{API}&$skiptoken=NOT%20A%20NAME")
            eq(st, 400, body)
            st, _, body = mgmt("GET", f"{DELETED}/deletedVaults")
            eq(st, 400, body)

        @runner.test
        def one_name_created_at_once_from_two_groups_goes_to_one():
            import threading
            tok = kv.token("https://management.azure.com")
            body = {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"}}}
            for attempt in range(3):
                name, results = f"race{attempt}", []

                def put(group):
                    path = (f"/subscriptions/{SUB}/resourceGroups/{group}/providers/"
                            f"Microsoft.KeyVault/vaults/{name}?{API}")
                    st, _, resp = kv.https("PUT", path, body, token=tok)
                    results.append((group, st, json.loads(resp)))

                threads = [threading.Thread(target=put, args=(f"race-g{i % 4}",)) for i in range(8)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                created = [(g, r) for g, st, r in results if st == 201]
                eq(len(created), 1, [(g, st) for g, st, _ in results])
                winner = created[0][0]
                for group, st, resp in results:
                    if group.lower() != winner.lower():  # another group: never this vault
                        eq((st, resp["error"]["code"]), (409, "VaultAlreadyExists"), resp)
                    else:
                        check(st in (200, 201) or (st == 409 and resp["error"]["code"] ==
                                                   "VaultAlreadyExists"), (st, resp))
                st, _, got = mgmt("GET", f"/subscriptions/{SUB}/resourceGroups/{winner}/providers/"
                                         f"Microsoft.KeyVault/vaults/{name}?{API}")
                eq((st, got["id"].split("/")[4]), (200, winner), got)

        @runner.test
        def vault_lists_are_paged():
            for i in range(7):
                eq(put_vault(f"vp{i}")[0], 201)

            def follow(path, top=None):
                names, pages = [], 0
                while path:
                    st, _, page = mgmt("GET", path)
                    eq(st, 200, page)
                    names += [x["name"] for x in page["value"]]
                    pages += 1
                    # a group's page reads on past other groups' vaults (the
                    # configuration's "default" is in group kvmock) until it is full
                    if top and page.get("nextLink"):
                        eq(len(page["value"]), top, (pages, page["value"]))
                    link = page.get("nextLink")
                    path = link[link.index("/subscriptions"):] if link else None
                    check(link is None or link.startswith(f"https://localhost:{P}/subscriptions/"), link)
                return names, pages

            whole, pages = follow(f"{ARM}?{API}")
            eq(pages, 1)
            check({f"vp{i}" for i in range(7)} <= set(whole), whole)
            paged, pages = follow(f"{ARM}?{API}&$top=3", 3)
            eq(paged, whole)
            check(pages >= 3, pages)
            # a generic resources list keeps its $filter from page to page
            RES = (f"/subscriptions/{SUB}/resources?$filter=resourceType%20eq%20"
                   "%27Microsoft.KeyVault%2Fvaults%27&api-version=2021-04-01")
            everywhere, _ = follow(RES)
            paged, pages = follow(RES + "&$top=2", 2)
            eq(paged, everywhere)
            check(pages >= 4, pages)
            for bad in ("$top=0", "$top=x", "$skiptoken=NOT%20A%20NAME"):
                st, _, err = mgmt("GET", f"{ARM}?{API}&{bad}")
                eq((st, err["error"]["code"]), (400, "BadRequest"), (bad, err))

        @runner.test
        def manage_right_is_required():
            tok = kv.token("https://management.azure.com", client_id=DISK["clientId"])
            for method, path in (("GET", f"{DELETED}/deletedVaults?{API}"),
                                 ("GET", f"{DELETED}/locations/westeurope/deletedVaults/pga?{API}"),
                                 ("POST", f"{DELETED}/locations/westeurope/deletedVaults/pga/purge?{API}")):
                st, _, body = mgmt(method, path, token=tok)
                eq(st, 403, body)
                eq(body["error"]["code"], "AuthorizationFailed")
            check("pga" in deleted_names(), "nothing was purged")
            st, _, _ = kv.https("GET", f"{DELETED}/deletedVaults?{API}", token=kv.token())
            eq(st, 401)
            # a token for kvmock's own endpoint is one for Resource Manager (the newer
            # management SDKs ask for "{endpoint}/.default"); another host's is not
            for aud, want in ((f"https://localhost:{P}", 200), (f"https://localhost:{P}/", 200),
                              ("https://localhost:1", 401), ("https://example.com", 401)):
                st, _, body = kv.https("GET", f"{DELETED}/deletedVaults?{API}", token=kv.token(aud))
                eq(st, want, (aud, body))

        @runner.test
        def published_api_versions_are_accepted():
            """Every published Microsoft.KeyVault api-version, the newest previews included
            (as the README lists them); another is Resource Manager's 400."""
            for version in ("2015-06-01", "2018-02-14-preview", "2019-09-01",
                            "2020-04-01-preview", "2023-07-01", "2025-05-01", "2026-02-01",
                            "2026-03-01-preview", "2026-04-01", "2026-04-01-preview",
                            "2026-05-15-preview"):
                st, _, body = mgmt("GET", f"{ARM}/default?api-version={version}")
                eq((st, body["name"]), (200, "default"), version)
            for version in ("2026-05-01", "2023-07-01-preview", ""):
                st, _, body = mgmt("GET", f"{ARM}/default?api-version={version}")
                eq((st, body["error"]["code"]), (400, "BadRequest"), version)

        @runner.test
        def audited():
            records = kv.audit_records()
            ops = {(r["operationName"], r["properties"]["httpStatusCode"]) for r in records}
            for want in (("VaultDelete", 200), ("VaultListDeleted", 200), ("VaultGetDeleted", 200),
                         ("VaultGetDeleted", 404), ("VaultRecover", 200), ("VaultRecover", 400),
                         ("VaultPurge", 200), ("VaultPurge", 405), ("VaultPut", 409),
                         ("VaultListDeleted", 403), ("VaultCheckName", 200)):
                check(want in ops, f"{want} audited")

        @runner.test
        def answers_name_the_vaults_region():
            """x-ms-keyvault-region, as Key Vault sends it: the vault's location as a region's
            name (its letters and digits, lowercase); "local" for a vault of the file."""
            def region(vault):
                st, hdrs, _ = kv.https("GET", "/keys?api-version=7.4",
                                       host=f"{vault}.vault.localhost:{P}")
                eq(st, 200)
                check("x-injected" not in hdrs, hdrs)
                return hdrs.get("x-ms-keyvault-region")

            eq(region("default"), "local")
            for name, location, want in (("regionv", "West US 2", "westus2"),
                                         ("regione", "westeurope", "westeurope"),
                                         ("regionx", "x\r\nx-injected: 1", "xxinjected1")):
                eq(put_vault(name, location=location)[0], 201)
                eq(region(name), want, location)
            # no vault, no region
            st, hdrs, _ = kv.https("GET", "/keys?api-version=7.4",
                                   host=f"novault.vault.localhost:{P}")
            eq((st, hdrs.get("x-ms-keyvault-region")), (404, None))

            # Key Vault's refusals name the vault's region the same way
            # ("'kv;location=westus2'", never the "West US 2" a PUT gave).
            def refusal(vault, props):
                body = {"location": "West US 2",
                        "properties": dict({"tenantId": TENANT,
                                            "sku": {"family": "A", "name": "standard"}},
                                           **props)}
                eq(mgmt("PUT", f"{ARM}/{vault}?{API}", body)[0], 201, vault)
                st, _, resp = kv.https("GET", "/keys?api-version=7.4",
                                       host=f"{vault}.vault.localhost:{P}")
                eq(st, 403, (vault, resp))
                return json.loads(resp)["error"]["message"]

            msg = refusal("regionap", {"accessPolicies": []})
            check("does not have keys list permission on key vault 'regionap;location=westus2'."
                  in msg, msg)
            msg = refusal("regionrb", {"enableRbacAuthorization": True})
            check(msg.endswith("Vault: regionrb;location=westus2."), msg)
            msg = refusal("regionfw", {"accessPolicies": [], "networkAcls": {
                "defaultAction": "Deny", "ipRules": [{"value": "198.51.100.0/24"}]}})
            check(msg.endswith("\r\nVault: regionfw;location=westus2"), msg)
            msg = refusal("regionpn", {"accessPolicies": [], "publicNetworkAccess": "Disabled"})
            check(msg.endswith("\r\nVault: regionpn;location=westus2"), msg)
            # Resource Manager's key calls on an RBAC vault quote Key Vault's refusal
            st, _, got = mgmt("GET", f"{ARM}/regionrb/keys/k1?{API}")
            eq(st, 400, got)
            check(got["error"]["message"].endswith("\r\nVault: regionrb;location=westus2\r\n"),
                  got)

        # A PATCH with many firewall rules takes long enough to parse and write that a
        # DELETE sent with it lands in between its read of the vault and its write.
        MANY_RULES = {"properties": {"networkAcls": {
            "defaultAction": "Allow", "bypass": "AzureServices",
            "ipRules": [{"value": f"10.{i // 256}.{i % 256}.0/24"} for i in range(1000)]}}}

        def race(name, first, second, delay):
            """Send `first` and, `delay` seconds later, `second` (each (method, body)) to
            vault `name` on connections opened beforehand; return both answers, each
            (status, parsed body or None)."""
            tok = kv.token("https://management.azure.com")
            path = f"{ARM}/{name}?{API}"
            conns = []
            for _ in range(2):
                c = http.client.HTTPSConnection("localhost", P, context=kv.ssl_context(),
                                                timeout=60)
                c.connect()
                conns.append(c)
            out = [None, None]

            def send(i, method, body, wait):
                time.sleep(wait)
                conns[i].request(method, path, body=json.dumps(body) if body else None,
                                 headers={"Authorization": "Bearer " + tok,
                                          "Content-Type": "application/json"})
                r = conns[i].getresponse()
                text = r.read()
                out[i] = (r.status, json.loads(text) if text else None)

            threads = [threading.Thread(target=send, args=(0, *first, 0)),
                       threading.Thread(target=send, args=(1, *second, delay))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            for c in conns:
                c.close()
            return out

        def patch_time():
            """How long a PATCH with MANY_RULES takes here (sanitized builds are slower): the
            races below send their second request 0 to 1.4 times that after the first."""
            check(put_vault("racetime")[0] in (200, 201))
            t0 = time.monotonic()
            eq(mgmt("PATCH", f"{ARM}/racetime?{API}", MANY_RULES)[0], 200)
            return time.monotonic() - t0

        @runner.test
        def a_patch_racing_a_delete_never_undoes_it():
            step = patch_time() / 5
            for i in range(24):
                name, soft = f"undo{i}", i % 4 != 3  # some removed at once, without soft delete
                eq(put_vault(name, soft_delete=soft)[0], 201)
                (pst, pbody), (dst, dbody) = race(name, ("PATCH", MANY_RULES), ("DELETE", None),
                                                  step * (i % 8))
                # the PATCH came wholly before the DELETE (200, answering the vault it
                # wrote) or after it (404, as for a vault that does not exist); never 500
                check(pst in (200, 404), (name, pst, pbody))
                if pst == 200:
                    eq(len(pbody["properties"]["networkAcls"]["ipRules"]), 1000, name)
                else:
                    eq(pbody["error"]["code"], "ResourceNotFound", (name, pbody))
                eq(dst, 200, (name, dbody))
                # and the DELETE, answered 200, stays done: no live vault next to the deleted
                # one (or, without soft delete, none at all)
                live = mgmt("GET", f"{ARM}/{name}?{API}")[0]
                gone = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/{name}?{API}")[0]
                eq((live, gone), (404, 200 if soft else 404), (name, pst))
                eq(data("GET", name, "/keys")[0], 404, name)
                if soft:
                    eq(put_vault(name, mode="recover")[0], 200, name)

        @runner.test
        def a_get_racing_a_delete_answers_the_vault_or_404():
            for i in range(16):
                name = f"getdel{i}"
                eq(put_vault(name)[0], 201)
                eq(mgmt("PATCH", f"{ARM}/{name}?{API}", MANY_RULES)[0], 200)
                get_time = time.monotonic()
                eq(mgmt("GET", f"{ARM}/{name}?{API}")[0], 200)
                get_time = time.monotonic() - get_time
                (gst, gbody), (dst, _) = race(name, ("GET", None), ("DELETE", None),
                                              get_time / 4 * (i % 6))
                eq(dst, 200, name)
                check(gst in (200, 404), (name, gst, gbody))
                if gst == 200:
                    eq(len(gbody["properties"]["networkAcls"]["ipRules"]), 1000, name)

        @runner.test
        def a_patch_racing_purge_protection_is_refused_not_failed():
            step = patch_time() / 5
            for i in range(8):
                name = f"ppon{i}"
                eq(put_vault(name)[0], 201)
                on = {"properties": {"enablePurgeProtection": True}}
                (rst, rbody), (pst, pbody) = race(name, ("PATCH", MANY_RULES), ("PATCH", on),
                                                  step * (i % 8))
                eq(pst, 200, (name, pbody))
                # the rules' PATCH read the vault without purge protection: written after
                # it was turned on, it would turn it off, which is refused as a PATCH that
                # asks for that is (400), never 500
                check(rst in (200, 400), (name, rst, rbody))
                if rst == 400:
                    eq(rbody["error"]["code"], "BadRequest", (name, rbody))
                    check("enablePurgeProtection" in rbody["error"]["message"], rbody)
                st, _, body = mgmt("GET", f"{ARM}/{name}?{API}")
                eq((st, body["properties"].get("enablePurgeProtection")), (200, True), body)

        @runner.test
        def the_deleted_state_survives_a_restart():
            eq(put_vault("sdr")[0], 201)
            create_key("sdr", "cmk")
            dek = secrets.token_bytes(32)
            wrapped = wrap("sdr", "cmk", dek)
            eq(mgmt("DELETE", f"{ARM}/sdr?{API}")[0], 200)
            st, _, before = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/sdr?{API}")
            eq(st, 200, before)
            kv.restart()
            st, _, after = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/sdr?{API}")
            eq(st, 200, after)
            eq(after, before)
            eq(after["properties"]["location"], "westeurope")
            eq(data("GET", "sdr", "/keys/cmk")[0], 404)
            eq(put_vault("sdr")[0], 409)
            eq(put_vault("sdr", mode="recover")[0], 200)
            eq(unwrap("sdr", "cmk", wrapped), dek)

        @runner.test
        def a_deleted_config_vault_stays_deleted_across_a_restart():
            # "default" comes from the configuration: a restart must not bring it back
            create_key("default", "keep")
            eq(mgmt("DELETE", f"{ARM}/default?{API}")[0], 200)
            kv.restart()
            eq(data("GET", "default", "/keys/keep")[0], 404)
            st, _, body = mgmt("GET", f"{DELETED}/locations/westeurope/deletedVaults/default?{API}")
            eq(st, 200, body)
            eq(put_vault("default", mode="recover")[0], 200)
            eq(data("GET", "default", "/keys/keep")[0], 200)
            kv.restart()
            eq(data("GET", "default", "/keys/keep")[0], 200)

        @runner.test
        def a_restart_keeps_what_the_management_plane_set_on_the_built_in_vault():
            # no vault in the file: the built-in "default" is seeded once; a restart keeps
            # its settings as the management plane left them, purge protection included
            # (which used to stop the next start)
            path = f"{ARM}/default?{API}"
            st, _, v = mgmt("PATCH", path, {"properties": {"enableRbacAuthorization": True,
                                                           "enablePurgeProtection": True}})
            eq(st, 200, v)
            kv.restart()
            st, _, v = mgmt("GET", path)
            eq(st, 200, v)
            eq((v["properties"]["enableRbacAuthorization"],
                v["properties"].get("enablePurgeProtection"),
                v["properties"]["softDeleteRetentionInDays"]), (True, True, 90), v)
            st, _, v = mgmt("PATCH", path, {"properties": {"enableRbacAuthorization": False}})
            eq((st, v["properties"]["enableRbacAuthorization"]), (200, False), v)

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
