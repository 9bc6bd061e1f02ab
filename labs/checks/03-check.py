"""Lab 3 (rotation): checks the end state against the running kvmock.

python3 labs/checks/03-check.py    (from the root of the clone)
"""
import sys

from labcheck import Check, read_envelope, vault

check = Check(3)

st, versions = vault("cmk", "GET", "/keys/orders/versions")
if st != 200:
    sys.exit(f"FAIL cmk/orders: GET versions answered {st}: do lab 2 first")
n = len(versions["value"])
check(n >= 3, f"cmk/orders has {n} versions", "expected 3: steps 2 and 6")

st, policy = vault("cmk", "GET", "/keys/orders/rotationpolicy")
rotate = [a["trigger"].get("timeAfterCreate") for a in (policy or {}).get("lifetimeActions", [])
          if a.get("action", {}).get("type", "").lower() == "rotate"]
expiry = (policy or {}).get("attributes", {}).get("expiryTime")
check(rotate == ["P30D"] and expiry == "P90D",
      "cmk/orders: the rotation policy rotates 30 days after creation (P30D), "
      "new versions expire after P90D", f"policy is {policy}: step 5")

st, newest = vault("cmk", "GET", "/keys/orders")
attrs = newest["attributes"]
check(attrs.get("exp") is not None and attrs["exp"] - attrs["created"] == 90 * 86400,
      "cmk/orders: the newest version was made by the policy (it expires 90 days after its "
      "creation)", f"attributes {attrs}: move the clock 31 days forward (step 6)")
newest_version = newest["key"]["kid"].rsplit("/", 1)[1]

for path in ("lab-work/order-1001.json", "lab-work/order-1002.json"):
    env = read_envelope(path)
    kek = (env or {}).get("kek", "")
    check(kek.endswith("/keys/orders/" + newest_version),
          f"{path}: the DEK is wrapped by the newest version",
          f"wrapped by {kek or 'nothing'}: step 9")
check.done()
