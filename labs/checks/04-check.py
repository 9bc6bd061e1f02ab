"""Lab 4 (revocation): checks the end state against the running kvmock.

python3 labs/checks/04-check.py    (from the root of the clone)
"""
from labcheck import Check, access_policy, arm, audit, first, in_order, key_of, who

ASSIGNMENT = "dddddddd-0000-4000-8000-0000000000a1"

check = Check(4)
records = audit()


def mgmt(kind):
    return lambda r: (r["operationName"] == "VaultAccessPolicyUpdate" and who(r) == "learner"
                      and r["properties"]["httpStatusCode"] == 200
                      and r["properties"]["requestUri"].split("?")[0].endswith(f"/cmk/accessPolicies/{kind}"))


def call(op, status, key):
    return lambda r: (r["operationName"] == op and who(r) == "data-service"
                      and r["properties"]["httpStatusCode"] == status and key_of(r) == key)


check(in_order(records, mgmt("remove"), call("KeyUnwrap", 403, "cmk/orders"), mgmt("add"),
               call("KeyUnwrap", 200, "cmk/orders")),
      "cmk: data-service's access was removed, refused at once (403 on unwrap), and restored",
      "expected in the audit log: accessPolicies/remove, a refused unwrap, accessPolicies/add, "
      "an unwrap: steps 2-4")
perms = access_policy("cmk", "data-service")
check(perms == ["get", "unwrapKey", "wrapKey"],
      "cmk: data-service has " + ", ".join(perms or ["nothing"]) + " again",
      "expected get, unwrapKey, wrapKey: step 4")


def role(op, status):
    return lambda r: (r["operationName"] == op and r["properties"]["httpStatusCode"] == status
                      and r["properties"]["requestUri"].split("?")[0].endswith(
                          f"/vaults/rbac/keys/reports/providers/Microsoft.Authorization/"
                          f"roleAssignments/{ASSIGNMENT}"))


check(in_order(records, role("RoleAssignmentPut", 201), call("KeyUnwrap", 200, "rbac/reports"),
               role("RoleAssignmentDelete", 200)),
      "rbac: the key-scoped role assignment was created, used, and deleted",
      "expected in the audit log: the PUT at key scope, an unwrap with reports, the DELETE: "
      "steps 6-8")
check(first(records, call("KeyWrap", 403, "rbac/billing")) is not None,
      "rbac: data-service was refused on billing (outside the assignment's scope)",
      "no refused wrap on rbac/billing: step 7")
st, _ = arm("GET", f"/rbac/providers/Microsoft.Authorization/roleAssignments/{ASSIGNMENT}")
check(st == 404 and in_order(records, role("RoleAssignmentDelete", 200), call("KeyUnwrap", 403, "rbac/reports")),
      "rbac: data-service has no role assignment left, and was refused after the delete",
      f"GET of the assignment answered {st}: step 8")
check.done()
