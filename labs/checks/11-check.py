"""Lab 11 (disaster recovery): checks the end state against the running kvmock.

python3 labs/checks/11-check.py    (from the root of the clone)

Reads the downloaded security domain's file, shop-hsm-dr's upload status, keys and role
assignments and shop-hsm's order-kek (as learner), and finds the upload refused by
shop-hsm, the one shop-hsm-dr took and the full restore in the audit log.
"""
import json
import urllib.parse

from labcheck import Check, IDS, audit, hsm, in_order

PRIMARY, RECOVERY = "shop-hsm", "shop-hsm-dr"

check = Check(11)
records = audit()


def at(name, op, status):
    """An audit record of HSM NAME's operation OP answered STATUS."""
    return lambda r: (r["operationName"] == op and r["properties"]["httpStatusCode"] == status
                      and r.get("resourceId", "").endswith("/MANAGEDHSMS/" + name.upper()))


# 1. the domain's file
try:
    with open("lab-work/shop-hsm-sd.json", encoding="utf-8") as f:
        shared = json.load(f).get("SharedKeys", {})
except (OSError, ValueError) as e:
    shared = {"error": str(e)}
check(len(shared.get("enc_shares", [])) == 3 and shared.get("required") == 2,
      "lab-work/shop-hsm-sd.json: shop-hsm's security domain, in 3 shares, any 2 of which open it",
      f"{shared.get('error') or str(len(shared.get('enc_shares', []))) + ' shares, required '}"
      f"{shared.get('required', '')}: step 2")

# 2. the upload
st, doc = hsm(RECOVERY, "GET", "/securitydomain/upload/pending")
details = (doc or {}).get("status_details", "")
check(st == 200 and "was uploaded" in details,
      "shop-hsm-dr: a security domain was uploaded into it", f"{st} {details}: step 6")

# 3. the restored key: the same key, the same version
st1, one = hsm(PRIMARY, "GET", "/keys/order-kek")
st2, two = hsm(RECOVERY, "GET", "/keys/order-kek")
k1, k2 = (one or {}).get("key", {}), (two or {}).get("key", {})
version = k2.get("kid", "").rsplit("/", 1)[-1]
check(st1 == st2 == 200 and k1.get("n") and k1.get("n") == k2.get("n")
      and k1.get("kid", "").rsplit("/", 1)[-1] == version,
      f"shop-hsm-dr/order-kek: the same key as shop-hsm/order-kek, version {version}",
      f"GET: {st1} and {st2}, kids {k1.get('kid')} and {k2.get('kid')}: step 7")

# the restored custom role: by its name (kvmock gives it a new id, shop-hsm holding the old)
st, doc = hsm(RECOVERY, "GET", "/providers/Microsoft.Authorization/roleDefinitions")
unwrapper = [d["id"] for d in (doc or {}).get("value", [])
             if d.get("properties", {}).get("roleName") == "Order Unwrapper"]
query = urllib.parse.quote(f"principalId eq '{IDS['data-service']['objectId']}'")
st, doc = hsm(RECOVERY, "GET",
              f"/providers/Microsoft.Authorization/roleAssignments?$filter={query}")
theirs = {(a["properties"]["scope"], a["properties"]["roleDefinitionId"])
          for a in (doc or {}).get("value", [])} if st == 200 else None
check(len(unwrapper) == 1 and theirs == {("/keys/order-kek", unwrapper[0])},
      "shop-hsm-dr: data-service holds Order Unwrapper at /keys/order-kek",
      f"Order Unwrapper there: {unwrapper}; data-service's assignments there: "
      f"{sorted(theirs) if theirs is not None else st}: step 7")

# 4. the audit log
check(in_order(records, at(PRIMARY, "SecurityDomainUpload", 400),
               at(RECOVERY, "SecurityDomainUpload", 202),
               at(RECOVERY, "FullRestoreOperation", 202)),
      "audit: shop-hsm refused the blob, shop-hsm-dr took it, then a full restore",
      "expected: a refused upload to shop-hsm, an upload to shop-hsm-dr, a full restore of "
      "shop-hsm-dr: steps 5 to 7")

check.done()
