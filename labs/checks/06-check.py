"""Lab 6 (network): checks the end state against the running kvmock.

python3 labs/checks/06-check.py    (from the root of the clone)
"""
import ipaddress

from labcheck import Check, arm, audit, key_of, who

check = Check(6)
records = audit()

st, doc = arm("GET", "/cmk")
props = doc.get("properties", {}) if st == 200 and doc else {}
acls = props.get("networkAcls") or {}
check(props.get("publicNetworkAccess") == "Enabled" and acls.get("defaultAction") == "Deny",
      "cmk: public network access is enabled, and the firewall denies by default",
      f"publicNetworkAccess {props.get('publicNetworkAccess')!r}, defaultAction "
      f"{acls.get('defaultAction')!r}: steps 2 and 6")

ranges = [ipaddress.ip_network(r["value"], strict=False) for r in acls.get("ipRules", [])]


def let_in(address):
    a = ipaddress.ip_address(address)
    return any(a.version == n.version and a in n for n in ranges)


check(ipaddress.ip_network("203.0.113.0/24") in ranges and let_in("127.0.0.1") and let_in("::1"),
      "cmk: the rules keep the office (203.0.113.0/24) and let in 127.0.0.1 and ::1",
      f"rules: {[str(n) for n in ranges]}: step 5")


def step(pred, start):
    """Index of the first record from START on that PRED accepts, or None."""
    return next((i for i in range(start, len(records)) if pred(records[i])), None)


def patched(r):
    return (r["operationName"] == "VaultPatch" and who(r) == "learner"
            and r["properties"]["httpStatusCode"] == 200
            and r["properties"]["requestUri"].split("?")[0].endswith("/vaults/cmk"))


def unwrap(status):
    return lambda r: (r["operationName"] == "KeyUnwrap" and who(r) == "data-service"
                      and r["properties"]["httpStatusCode"] == status
                      and key_of(r) == "cmk/orders")


# the firewall's first PATCH, a refused unwrap, the PATCH that let the service in, an unwrap
at = step(patched, 0)
for pred in (unwrap(403), patched, unwrap(200)):
    at = None if at is None else step(pred, at + 1)
check(at is not None,
      "cmk: data-service was refused by the firewall, then unwrapped once its network was let in",
      "not found in the audit log in this order: steps 2, 3 and 5")
check.done()
