"""Lab 1 (vault hygiene): checks the end state against the running kvmock.

python3 labs/checks/01-check.py    (from the root of the clone)
"""
from labcheck import Check, audit, find, vault

check = Check(1)
records = audit()


def gone(name):
    live, _ = vault(name, "GET", "/keys/payments")
    deleted, _ = vault(name, "GET", "/deletedkeys/payments")
    return live == 404 and deleted == 404, f"GET key {live}, GET deleted key {deleted}"


ok, detail = gone("weak")
check(ok and bool(find(records, "KeyDelete", 200, "learner", "weak/payments")),
      'weak: "payments" was deleted and is neither a key nor a deleted key',
      detail if ok else "no successful KeyDelete of weak/payments in the audit log")
check(bool(find(records, "KeyPurge", 403, "learner", "cmk/payments")),
      'cmk: the purge of "payments" was refused (403, purge protection)',
      "no refused KeyPurge of cmk/payments in the audit log: step 6")
check(bool(find(records, "KeyRecover", 200, "learner", "cmk/payments")),
      'cmk: "payments" was recovered', "no KeyRecover of cmk/payments in the audit log: step 8")
ok, detail = gone("cmk")
check(ok, 'cmk: "payments" is gone after its retention: neither a key nor a deleted key',
      detail + ": delete it (step 9) and move the clock past its scheduledPurgeDate")
check.done()
