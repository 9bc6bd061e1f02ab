"""Lab 9 (bring your own key): checks the end state against the running kvmock.

python3 labs/checks/09-check.py    (from the root of the clone)

Reads skr's key exchange key invoice-kek and the imported key invoice-signing, compares
the latter with the shop's public key (lab-work/invoice.pub.pem), looks for private keys
left in lab-work, and finds the import in the audit log.
Needs `cryptography` (python3-azure brings it).
"""
import base64
import glob

from cryptography.hazmat.primitives import serialization

from labcheck import Check, audit, find, vault

check = Check(9)


def b64int(text):
    return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")


# 1. the KEK
st, doc = vault("skr", "GET", "/keys/invoice-kek")
key = doc.get("key", {}) if st == 200 and doc else {}
check(key.get("kty") == "RSA-HSM" and key.get("key_ops") == ["import"],
      "skr/invoice-kek: an RSA-HSM key whose only operation is import",
      f"GET: {st}, kty {key.get('kty')}, key_ops {key.get('key_ops')}: step 1")

# 2. the imported key, against the shop's public key
st, doc = vault("skr", "GET", "/keys/invoice-signing")
key = doc.get("key", {}) if st == 200 and doc else {}
try:
    with open("lab-work/invoice.pub.pem", "rb") as f:
        mine = serialization.load_pem_public_key(f.read()).public_numbers()
    same = st == 200 and (mine.x, mine.y) == (b64int(key.get("x", "")), b64int(key.get("y", "")))
    why = f"GET: {st}, kty {key.get('kty')}, crv {key.get('crv')}, same point {same}: steps 2 to 4"
except (OSError, ValueError) as e:
    same, why = False, f"lab-work/invoice.pub.pem: {e}: step 2"
check(same and key.get("kty") == "EC-HSM" and key.get("crv") == "P-256",
      "skr/invoice-signing: an EC-HSM P-256 key, the one of lab-work/invoice.pub.pem", why)

# 3. what must not stay behind
left = [p for p in ("lab-work/aes.key", "lab-work/invoice.pem", "lab-work/invoice.der")
        if glob.glob(p)]
check(not left, "lab-work: no private key of the shop left in the clear",
      f"still there: {', '.join(left)}: steps 3 and 5")

# 4. the audit log
check(bool(find(audit(), "KeyImport", 200, "learner", "skr/invoice-signing")),
      "audit: learner imported skr/invoice-signing", "no such KeyImport record: step 4")
check.done()
