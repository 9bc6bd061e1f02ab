"""Lab 5 (audit): recomputes the answers of steps 3 and 4 from GET /admin/audit
(not from `kvmock audit`, which the lab uses) and compares them with
lab-work/unwraps.txt and lab-work/refused.txt.

python3 labs/checks/05-check.py    (from the root of the clone)
"""
from labcheck import Check, audit, key_of, who

check = Check(5)
records = audit()


def lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return [line.rstrip("\n") for line in f if line.strip()]
    except OSError:
        return None


unwraps = [f"{r['time']} {who(r)} {r['properties']['id']}" for r in records
           if r["operationName"] == "KeyUnwrap" and r["properties"]["httpStatusCode"] == 200]
mine = lines("lab-work/unwraps.txt")
check(mine == unwraps, f"lab-work/unwraps.txt: {len(unwraps)} unwraps, as in the audit log",
      "missing: step 3" if mine is None else
      f"{len(mine)} lines for {len(unwraps)} unwraps in the log: run step 3 again")

refused = {}
for r in records:
    if r["properties"]["httpStatusCode"] in (401, 403):
        refused.setdefault((who(r), key_of(r)), set()).add(r["operationName"])
expected = [f"{w} {k} {' '.join(sorted(ops))}" for (w, k), ops in sorted(refused.items())]
mine = lines("lab-work/refused.txt")
check(mine == expected,
      f"lab-work/refused.txt: {len(expected)} callers and keys with refusals, as in the audit log",
      "missing: step 4" if mine is None else "it differs from the log: run step 4 again")

unwrappers = sorted({line.split()[1] for line in unwraps})
check(unwrappers == ["data-service"], "only data-service unwrapped",
      f"unwrapped by: {', '.join(unwrappers) or 'nobody'}")
check(any(line.startswith("learner cmk/payments ") and "KeyPurge" in line
          for line in (mine or [])),
      "the purge attempt on cmk/payments by learner is in the refusals",
      "not in lab-work/refused.txt: lab 1, step 6")
check.done()
