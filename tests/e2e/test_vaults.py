"""Soft delete of whole vaults through the ARM-shaped management plane, in raw
HTTP: delete -> the vault's host refuses -> list/get deleted -> recover with
the keys; purge; purge protection until the scheduled purge date (kvmock's
clock moved through /admin/clock); the name a deleted vault holds; vaults
without soft delete; paging; the manage right; the audit log; a restart."""
import calendar
import json
import os
import secrets
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT, APP  # noqa: E402

DISK = {"name": "disk", "objectId": "0a000000-0000-4000-8000-0000000000a2",
        "clientId": "0c000000-0000-4000-8000-0000000000a2"}
CONFIG = {"tenantId": TENANT, "identities": [APP, DISK]}
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

        def put_vault(name, days=7, purge_protection=False, soft_delete=True, mode=None):
            props = {"tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                     "enableSoftDelete": soft_delete, "softDeleteRetentionInDays": days,
                     "accessPolicies": [{"tenantId": TENANT, "objectId": APP["objectId"],
                                         "permissions": {"keys": ["all"]}}]}
            if purge_protection:
                props["enablePurgeProtection"] = True
            if mode:
                props["createMode"] = mode
            return mgmt("PUT", f"{ARM}/{name}?{API}", {"location": "westeurope",
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
            st, _, body = put_vault("loc", days=30)
            eq((st, body["location"]), (200, "northeurope"), body)
            for bad in (7, "", "x" * 65, {"name": "westeurope"}):
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
                               {"properties": {"softDeleteRetentionInDays": 30}})
            eq(st, 200, body)
            eq(body["properties"]["softDeleteRetentionInDays"], 30)
            eq([p["objectId"] for p in body["properties"]["accessPolicies"]], [APP["objectId"]])
            create_key("patched", "k")
            # the PATCH is audited as VaultPatch
            ops = [r["operationName"] for r in kv.audit_records()]
            check("VaultPatch" in ops, ops[-10:])

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

        @runner.test
        def audited():
            records = kv.audit_records()
            ops = {(r["operationName"], r["properties"]["httpStatusCode"]) for r in records}
            for want in (("VaultDelete", 200), ("VaultListDeleted", 200), ("VaultGetDeleted", 200),
                         ("VaultGetDeleted", 404), ("VaultRecover", 200), ("VaultRecover", 400),
                         ("VaultPurge", 200), ("VaultPurge", 405), ("VaultPut", 409),
                         ("VaultListDeleted", 403)):
                check(want in ops, f"{want} audited")

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

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
