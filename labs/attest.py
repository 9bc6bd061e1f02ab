"""The attestation service of lab 8, and the confidential VM's side of a key
release. In Azure, a confidential VM proves what it is to Azure Attestation
(MAA), which answers with a signed token (a JWT) describing the VM; Key Vault
checks that token against a key's release policy. Here you sign those tokens
yourself, with a key you make, and tell kvmock to trust it.

  python3 labs/attest.py keys
      the attestation service's signing key (lab-work/attest-key.pem, made on
      first use and kept) and its public half as a JWKS document
      (lab-work/attest-jwks.json, printed)
  python3 labs/attest.py token [--debuggable] [--compliance STATUS] [--key PEM]
      an attestation token for the confidential VM, as MAA signs one after a
      guest attestation: issuer AUTHORITY, valid for 10 minutes, the VM's
      hardware (SEV-SNP), compliance status (azure-compliant-cvm unless told)
      and whether it is debuggable (not unless told), and in x-ms-runtime.keys
      the public half of the VM's own RSA key, lab-work/vm-key.pem (made on
      first use and kept: the key the VM's virtual TPM holds). Signed with
      lab-work/attest-key.pem, or with PEM (an RSA private key) when given.
  python3 labs/attest.py claims < JWT
      the claims of a JWT (only decoded, not checked)
  python3 labs/attest.py open RELEASE
      opens a released key (RELEASE: a file holding the JWS Key Vault answered)
      layer by layer and writes its private key to lab-work/order-kek.pem:
      1. the JWS: its signature, by the certificate in its x5c header, and
         that certificate's issuer, kvmock's CA ($REQUESTS_CA_BUNDLE);
      2. key_hsm, in the payload's response.key.key: JSON whose ciphertext is
         RSA-OAEP(VM key, AES key) followed by AES-KWP(AES key, private key);
      3. RSA-OAEP with lab-work/vm-key.pem gives the 32-byte AES key;
      4. AES key wrap with padding (RFC 5649) gives the key, in PKCS#8.

Standard library and `cryptography` (Debian's python3-azure brings it).
"""
import argparse
import base64
import hashlib
import json
import os
import sys
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap_with_padding

AUTHORITY = "https://sharedeus.eus.attest.azure.net"  # Azure Attestation's shared East US instance
WORK = "lab-work"
ATTEST_KEY = os.path.join(WORK, "attest-key.pem")
ATTEST_JWKS = os.path.join(WORK, "attest-jwks.json")
VM_KEY = os.path.join(WORK, "vm-key.pem")
RELEASED = os.path.join(WORK, "order-kek.pem")
OAEP_HASH = {"CKM_RSA_AES_KEY_WRAP": ("SHA-1", hashes.SHA1),  # the release's enc: OAEP's hash
             "RSA_AES_KEY_WRAP_256": ("SHA-256", hashes.SHA256),
             "RSA_AES_KEY_WRAP_384": ("SHA-384", hashes.SHA384)}


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def new_key(path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return key


def load_key(path):
    try:
        with open(path, "rb") as f:
            return serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError:
        hint = " (python3 labs/attest.py keys makes it)" if path == ATTEST_KEY else ""
        sys.exit(f"labs/attest.py: no {path}{hint}")


def thumbprint(key):
    """The RFC 7638 thumbprint of an RSA key: its key id."""
    numbers = key.public_key().public_numbers()
    jwk = {"e": b64url_int(numbers.e), "kty": "RSA", "n": b64url_int(numbers.n)}
    return b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest())


def public_jwk(key, **members):
    numbers = key.public_key().public_numbers()
    return {"kty": "RSA", **members, "n": b64url_int(numbers.n), "e": b64url_int(numbers.e)}


def keys():
    """The same key on a second run: kvmock knows the JWKS it read when it started."""
    os.makedirs(WORK, exist_ok=True)
    key = load_key(ATTEST_KEY) if os.path.exists(ATTEST_KEY) else new_key(ATTEST_KEY)
    jwks = {"keys": [public_jwk(key, use="sig", alg="RS256", kid=thumbprint(key))]}
    with open(ATTEST_JWKS, "w", encoding="utf-8") as f:
        json.dump(jwks, f, indent=2)
    print(json.dumps(jwks, indent=2))


def token(debuggable=False, compliance="azure-compliant-cvm", signer=ATTEST_KEY, minutes=10):
    """What MAA says about a confidential VM after a guest attestation: the VM
    (azurevm), its isolation (the TEE: AMD SEV-SNP, Azure's verdict on it,
    whether a debugger may read its memory) and the key the VM brought.
    SIGNER: a PEM file's path, or an RSA private key."""
    key = load_key(signer) if isinstance(signer, str) else signer
    os.makedirs(WORK, exist_ok=True)
    vm = load_key(VM_KEY) if os.path.exists(VM_KEY) else new_key(VM_KEY)
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": thumbprint(key)}
    claims = {
        "iss": AUTHORITY, "iat": now, "nbf": now, "exp": now + minutes * 60,
        "x-ms-attestation-type": "azurevm",
        "x-ms-isolation-tee": {
            "x-ms-attestation-type": "sevsnpvm",
            "x-ms-compliance-status": compliance,
            "x-ms-sevsnpvm-is-debuggable": debuggable,
        },
        "x-ms-runtime": {"keys": [public_jwk(vm, kid="TpmEphemeralEncryptionKey",
                                             key_ops=["encrypt"])]},
        "x-ms-ver": "1.0",
    }
    signed = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + b64url(signature)


def claims(text):
    return json.loads(unb64url(text.strip().split(".")[1]))


def issued_by(cert, issuer):
    """Raises unless ISSUER's key signed CERT."""
    key, h = issuer.public_key(), cert.signature_hash_algorithm
    if isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(h))
    else:
        key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(), h)


def open_release(path):
    with open(path, encoding="utf-8") as f:
        jws = f.read().strip()
    head, body, signature = jws.split(".")
    header, payload = json.loads(unb64url(head)), json.loads(unb64url(body))

    # 1. the JWS, signed by the vault's key release certificate
    chain = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in header["x5c"]]
    ca_path = os.environ.get("REQUESTS_CA_BUNDLE", os.path.join("lab-data", "tls", "ca.pem"))
    with open(ca_path, "rb") as f:
        ca = x509.load_pem_x509_certificate(f.read())
    try:
        chain[0].public_key().verify(unb64url(signature), f"{head}.{body}".encode(),
                                     padding.PKCS1v15(), hashes.SHA256())
        for cert, issuer in zip(chain, chain[1:] + [ca]):
            issued_by(cert, issuer)
    except InvalidSignature:
        sys.exit(f"labs/attest.py: {path}: not signed by a certificate of {ca_path}'s CA")
    print(f"1. JWS: {header['alg']}, signature good, by {chain[0].subject.rfc4514_string()}, "
          f"issued by {ca.subject.rfc4514_string()}")
    key = payload["response"]["key"]["key"]
    print(f"   released: {key['kid']} ({key['kty']})")

    # 2. key_hsm
    hsm = json.loads(unb64url(key["key_hsm"]))
    blob = unb64url(hsm["ciphertext"])
    vm = load_key(VM_KEY)
    size = vm.key_size // 8
    print(f"2. key_hsm: schema_version {hsm['schema_version']}, header "
          f"{json.dumps(hsm['header'], separators=(',', ':'))}")
    print(f"   ciphertext: {len(blob)} bytes = {size} (RSA-OAEP) + {len(blob) - size} (AES-KWP)")

    # 3. RSA-OAEP with the VM's key: the AES key
    name, h = OAEP_HASH[hsm["header"]["enc"]]
    try:
        aes_key = vm.decrypt(blob[:size], padding.OAEP(mgf=padding.MGF1(h()), algorithm=h(),
                                                       label=None))
    except ValueError:
        sys.exit(f"labs/attest.py: {path}: not wrapped for {VM_KEY}")
    print(f"3. RSA-OAEP ({name}) with {VM_KEY}: a {len(aes_key)}-byte AES key")

    # 4. AES key wrap with padding: the private key, PKCS#8
    pkcs8 = aes_key_unwrap_with_padding(aes_key, blob[size:])
    private = serialization.load_der_private_key(pkcs8, password=None)
    print(f"4. AES-KWP: {len(pkcs8)} bytes of PKCS#8, an RSA private key of "
          f"{private.key_size} bits")
    with open(os.open(RELEASED, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(private.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
    print(f"wrote {RELEASED}")


def main(argv):
    ap = argparse.ArgumentParser(prog="labs/attest.py", usage=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("keys")
    t = sub.add_parser("token")
    t.add_argument("--debuggable", action="store_true")
    t.add_argument("--compliance", default="azure-compliant-cvm")
    t.add_argument("--key", default=ATTEST_KEY)
    sub.add_parser("claims")
    o = sub.add_parser("open")
    o.add_argument("release")
    args = ap.parse_args(argv)
    if args.command == "keys":
        keys()
    elif args.command == "token":
        print(token(args.debuggable, args.compliance, args.key))
    elif args.command == "claims":
        print(json.dumps(claims(sys.stdin.read()), indent=2))
    else:
        open_release(args.release)


if __name__ == "__main__":
    main(sys.argv[1:])
