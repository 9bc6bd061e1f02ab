"""Lab 2 (least privilege): checks the end state against the running kvmock.

python3 labs/checks/02-check.py    (from the root of the clone)
"""
from labcheck import Check, access_policy, audit, find, read_envelope, who

check = Check(2)
records = audit()

perms = access_policy("cmk", "data-service")
check(perms == ["get", "unwrapKey", "wrapKey"],
      "cmk: data-service has exactly " + ", ".join(perms or ["nothing"]),
      "expected get, unwrapKey, wrapKey: step 4")

env = read_envelope("lab-work/order-1001.json")
check(env is not None and "://cmk.vault.localhost:" in env.get("kek", "")
      and "/keys/orders/" in env.get("kek", ""),
      "lab-work/order-1001.json: a DEK wrapped by cmk/orders",
      "missing or not wrapped by cmk/orders: step 5")

refused = [op for op in ("KeyCreate", "KeyDelete", "KeySign", "KeyList")
           if find(records, op, 403, "data-service")]
check(len(refused) == 4, "data-service was refused create, delete, sign and list (403)",
      f"refusals found: {refused}: step 7")

allowed = sorted({r["operationName"] for r in records if who(r) == "data-service"
                  and 200 <= r["properties"]["httpStatusCode"] < 300})
check(set(allowed) <= {"KeyGet", "KeyWrap", "KeyUnwrap"} and "KeyUnwrap" in allowed,
      "data-service succeeded only at " + ", ".join(allowed or ["nothing"]),
      "expected KeyGet, KeyUnwrap (and KeyWrap if the SDK wrapped in the vault)")

check(bool(find(records, "KeyGet", 403, "reporting-app")), "reporting-app was refused (403)",
      "no refused call by reporting-app in the audit log: step 8")
check.done()
