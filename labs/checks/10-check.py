"""Lab 10 (Managed HSM): checks the end state against the running kvmock.

python3 labs/checks/10-check.py    (from the root of the clone)

Reads shop-hsm's role assignments, its custom role "Order Unwrapper" and its keys (as
learner: Administrator and Crypto User), compares order-kek with the orders in lab-work,
and finds the refusals and the role changes of the lab in the audit log.
"""
import urllib.parse

import labcheck
from labcheck import Check, IDS, audit, in_order, key_of, read_envelope, who

DEFS = "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"
ADMINISTRATOR = DEFS + "a290e904-7015-4bba-90c8-60543313cdb4"
CRYPTO_USER = DEFS + "21dbd100-6940-42c2-9190-5d6cb909625b"
UNWRAPPER_ID = "11111111-0000-4000-8000-0000000000c1"
UNWRAPPER = DEFS + UNWRAPPER_ID
OFFICER_ASSIGNMENT = "aaaaaaaa-0000-4000-8000-0000000000b1"
SERVICE_ASSIGNMENT = "dddddddd-0000-4000-8000-0000000000b3"
UNWRAPPER_ASSIGNMENT = "dddddddd-0000-4000-8000-0000000000b4"
ACTIONS = "Microsoft.KeyVault/managedHsm/keys/"

check = Check(10)
records = audit()


def hsm(method, path):
    """A call to shop-hsm's data plane as learner."""
    return labcheck.hsm("shop-hsm", method, path)


def assignments(identity):
    """{(scope, roleDefinitionId)} of IDENTITY's assignments in shop-hsm (None on an error)."""
    query = urllib.parse.quote(f"principalId eq '{IDS[identity]['objectId']}'")
    st, doc = hsm("GET", f"/providers/Microsoft.Authorization/roleAssignments?$filter={query}")
    if st != 200 or not doc:
        return None
    return {(a["properties"]["scope"], a["properties"]["roleDefinitionId"]) for a in doc["value"]}


def call(op, status, identity, key):
    return lambda r: (r["operationName"] == op and r["properties"]["httpStatusCode"] == status
                      and who(r) == identity and key_of(r) == "shop-hsm/" + key)


def role(op, name):
    """A successful change of shop-hsm's role assignment NAME."""
    return lambda r: (r["operationName"] == op and r["properties"]["vault"] == "shop-hsm"
                      and r["properties"]["httpStatusCode"] in (200, 201)
                      and r["properties"]["requestUri"].split("?")[0].endswith(
                          "/providers/Microsoft.Authorization/roleAssignments/" + name))


# 1. who holds what
mine = assignments("learner")
check(mine == {("/", ADMINISTRATOR), ("/keys", CRYPTO_USER)},
      "shop-hsm: learner is Administrator at / and Crypto User at /keys, and Crypto Officer no more",
      f"learner's assignments: {sorted(mine) if mine is not None else 'not readable'}: "
      "steps 5, 6 and 13")

st, doc = hsm("GET", f"/providers/Microsoft.Authorization/roleDefinitions/{UNWRAPPER_ID}")
props = doc.get("properties", {}) if st == 200 and doc else {}
allowed = {a.lower() for p in props.get("permissions", []) for a in p.get("dataActions", [])}
denied = [a for p in props.get("permissions", []) for a in p.get("notDataActions", [])]
check(props.get("roleName") == "Order Unwrapper" and props.get("type") == "CustomRole"
      and allowed == {(ACTIONS + "read/action").lower(), (ACTIONS + "unwrap/action").lower()}
      and not denied,
      "shop-hsm: Order Unwrapper allows keys/read/action and keys/unwrap/action, nothing else",
      f"GET: {st}, roleName {props.get('roleName')}, dataActions {sorted(allowed)}: step 10")

theirs = assignments("data-service")
check(theirs == {("/keys/order-kek", UNWRAPPER)},
      "shop-hsm: data-service holds Order Unwrapper at /keys/order-kek, and nothing else",
      f"data-service's assignments: {sorted(theirs) if theirs is not None else 'not readable'}: "
      "steps 9 and 11")

# 2. the keys
st, doc = hsm("GET", "/keys/order-kek")
key = doc.get("key", {}) if st == 200 and doc else {}
keks = [(read_envelope(f"lab-work/{name}") or {}).get("kek")
        for name in ("order-2001.json", "order-2003.json")]
check(key.get("kty") == "RSA-HSM" and keks == [key.get("kid")] * 2,
      "shop-hsm/order-kek: an RSA-HSM key, the KEK of lab-work/order-2001.json and order-2003.json",
      f"GET: {st}, kty {key.get('kty')}, kid {key.get('kid')}; the orders' KEKs: {keks}: "
      "steps 6, 8 and 11")

st, _ = hsm("GET", "/keys/other-kek")
check(st == 404 and in_order(records, call("KeyDelete", 200, "learner", "other-kek"),
                             call("KeyPurge", 403, "learner", "other-kek"),
                             role("RoleAssignmentCreate", OFFICER_ASSIGNMENT),
                             call("KeyPurge", 204, "learner", "other-kek")),
      "shop-hsm/other-kek: deleted and purged, after the Crypto User was refused the purge",
      f"GET other-kek: {st}; expected in the audit log: its delete, a refused purge, the "
      "Crypto Officer's assignment, the purge: steps 12 and 13")

# 3. the refusals
check(in_order(records, call("KeyCreate", 403, "learner", "order-kek"),
               role("RoleAssignmentCreate", OFFICER_ASSIGNMENT),
               call("KeyCreate", 403, "learner", "order-kek"),
               role("RoleAssignmentDelete", OFFICER_ASSIGNMENT),
               call("KeyCreate", 200, "learner", "order-kek")),
      "audit: learner was refused keys/create as Administrator and as Crypto Officer",
      "expected: a refused create, the Crypto Officer's assignment, a refused create, its "
      "deletion, the create: steps 3 to 6")
check(in_order(records, role("RoleAssignmentCreate", SERVICE_ASSIGNMENT),
               call("KeyUnwrap", 200, "data-service", "order-kek"),
               call("KeyWrap", 403, "data-service", "other-kek"),
               role("RoleAssignmentDelete", SERVICE_ASSIGNMENT),
               call("KeyUnwrap", 403, "data-service", "order-kek")),
      "audit: data-service was refused other-kek, then order-kek after the revocation",
      "expected: the key-scoped assignment, an unwrap, a refused wrap with other-kek, the "
      "deletion, a refused unwrap: steps 8 and 9")
check(in_order(records, role("RoleAssignmentCreate", UNWRAPPER_ASSIGNMENT),
               call("KeyUnwrap", 200, "data-service", "order-kek"),
               call("KeyWrap", 403, "data-service", "order-kek")),
      "audit: data-service unwrapped with Order Unwrapper and was refused the wrap",
      "expected: the Order Unwrapper assignment, an unwrap, a refused wrap: step 11")
check.done()
