"""The CI system of lab 7: it signs a short-lived token (a JWT) saying which
pipeline runs, as GitHub Actions' OIDC provider or a Kubernetes cluster does,
and publishes its public key as a JWKS document for Entra (here kvmock) to
check that signature.

  python3 labs/ci_token.py jwks KEY
      the JWKS document of the RSA private key KEY (a PEM file): its public
      key, with a key id (kid, the key's RFC 7638 thumbprint)
  python3 labs/ci_token.py token KEY SUBJECT
      a token signed with KEY (RS256): issuer ISSUER, audience AUDIENCE,
      subject SUBJECT, valid for 10 minutes
  python3 labs/ci_token.py claims < JWT
      the claims of any JWT, or of the access token in a token endpoint's
      JSON answer (not checked: only decoded)

Standard library and `cryptography` (Debian's python3-azure brings it).
"""
import base64
import hashlib
import json
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

ISSUER = "https://ci.shop.example"
AUDIENCE = "api://AzureADTokenExchange"  # what Entra expects of a federated token


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_int(n):
    return b64url(n.to_bytes((n.bit_length() + 7) // 8, "big"))


def load_key(path):
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)


def public_jwk(key):
    numbers = key.public_key().public_numbers()
    jwk = {"e": b64url_int(numbers.e), "kty": "RSA", "n": b64url_int(numbers.n)}
    # RFC 7638: the SHA-256 of the required members, sorted, without spaces
    kid = b64url(hashlib.sha256(json.dumps(jwk, separators=(",", ":")).encode()).digest())
    return {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid, "n": jwk["n"], "e": jwk["e"]}


def jwks(path):
    return {"keys": [public_jwk(load_key(path))]}


def token(path, subject, minutes=10):
    key = load_key(path)
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": public_jwk(key)["kid"]}
    claims = {"iss": ISSUER, "sub": subject, "aud": AUDIENCE,
              "iat": now, "nbf": now, "exp": now + minutes * 60}
    signed = ".".join(b64url(json.dumps(part).encode()) for part in (header, claims))
    signature = key.sign(signed.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signed + "." + b64url(signature)


def claims(text):
    text = text.strip()
    if text.startswith("{"):
        text = json.loads(text)["access_token"]
    payload = text.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def main(argv):
    if argv[:1] == ["jwks"] and len(argv) == 2:
        print(json.dumps(jwks(argv[1]), indent=2))
    elif argv[:1] == ["token"] and len(argv) == 3:
        print(token(argv[1], argv[2]))
    elif argv == ["claims"]:
        print(json.dumps(claims(sys.stdin.read()), indent=2))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
