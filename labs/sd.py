"""labs/sd.py: a Managed HSM's security domain, the three calls that
`az keyvault security-domain download | init-recovery | upload` make (Debian's
az 2.45 cannot run those three: its packaged azure.keyvault lacks a module they
import; its offline `restore-blob` works and lab 11 uses it).

  python3 labs/sd.py download HSM OUT CERT.cer...
      POST /securitydomain/download with the certificates (PEM) as JSON web
      keys and a quorum of 2: the HSM's security domain, written to OUT
  python3 labs/sd.py transfer-key HSM OUT
      GET /securitydomain/upload: the HSM's transfer key; its certificate is
      written to OUT (PEM), as init-recovery writes it
  python3 labs/sd.py upload HSM BLOB
      POST /securitydomain/upload with the restore blob BLOB, then the upload's
      status (GET /securitydomain/upload/pending)

HSM is a Managed HSM's name (NAME.managedhsm.localhost). It runs as the lab's
default identity (learner), with a token from kvmock's managed-identity
endpoint, through the labs' own calls (labs/checks/labcheck.py). Needs
IDENTITY_HEADER and REQUESTS_CA_BUNDLE (labs/README.md); KVMOCK_HTTPS_PORT and
KVMOCK_HTTP_PORT when kvmock is not on 8443 and 8080.
"""
import base64
import hashlib
import json
import os
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "checks"))
from labcheck import hsm as hsm_call  # noqa: E402  (a call on an HSM's data plane, as the learner)


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def call(method, name, path, body=None):
    """One call on HSM NAME's data plane: (status, JSON answer)."""
    status, answer = hsm_call(name, method, path, body)
    return status, answer or {}


def refused(status, answer):
    err = answer.get("error", {})
    sys.exit(f"HTTP {status} {err.get('code')}: {err.get('message')}")


def jwk(path):
    """A certificate as the Azure CLI sends it for a download."""
    with open(path, "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    der = cert.public_bytes(serialization.Encoding.DER)
    pub = cert.public_key().public_numbers()
    return {"kty": "RSA", "alg": "RSA-OAEP-256", "key_ops": ["verify", "encrypt", "wrapKey"],
            "x5c": [base64.b64encode(der).decode()],
            "x5t#S256": b64url(hashlib.sha256(der).digest()),
            "n": b64url(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
            "e": b64url(pub.e.to_bytes(3, "big"))}


def download(hsm, out, certs):
    status, answer = call("POST", hsm, "/securitydomain/download",
                          {"certificates": [jwk(c) for c in certs], "required": 2})
    if status != 202:
        refused(status, answer)
    with open(out, "w", encoding="utf-8") as f:
        f.write(answer["value"])
    shared = json.loads(answer["value"])["SharedKeys"]
    print(f"HTTP {status}: the security domain of {hsm} is in {out}: "
          f"{len(shared['enc_shares'])} shares, any {shared['required']} of them open it")


def transfer_key(hsm, out):
    status, answer = call("GET", hsm, "/securitydomain/upload")
    if status != 200:
        refused(status, answer)
    key = json.loads(answer["transfer_key"])  # a JSON web key, as text
    der = base64.b64decode(key["x5c"][0])
    cert = x509.load_der_x509_certificate(der)
    with open(out, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    print(f"HTTP {status}: the transfer key of {hsm} ({key['kty']} "
          f"{cert.public_key().key_size} bits, {key['alg']}) is in {out}")


def upload(hsm, blob):
    with open(blob, encoding="utf-8") as f:
        status, answer = call("POST", hsm, "/securitydomain/upload", {"value": f.read()})
    if status != 202:
        refused(status, answer)
    print(f"HTTP {status}: {answer['status']}")
    status, answer = call("GET", hsm, "/securitydomain/upload/pending")
    print(f"HTTP {status}: {answer['status']}: {answer['status_details']}")


def main():
    args = sys.argv[1:]
    if len(args) >= 4 and args[0] == "download":
        download(args[1], args[2], args[3:])
    elif len(args) == 3 and args[0] == "transfer-key":
        transfer_key(args[1], args[2])
    elif len(args) == 3 and args[0] == "upload":
        upload(args[1], args[2])
    else:
        sys.exit(__doc__.split("\n\n")[1])


if __name__ == "__main__":
    main()
