"""The application of the labs: an order service that encrypts every order
with a fresh data-encryption key (DEK) and keeps that DEK only in wrapped form,
wrapped by a key-encryption key (KEK) in Key Vault (envelope encryption).

It runs as the user-assigned managed identity "data-service" of
labs/config.json, through the unmodified Azure SDK for Python:

  python3 labs/data_service.py encrypt KEK-URL FILE TEXT
      new DEK; encrypt TEXT with it (AES-256-GCM); wrap the DEK with the
      KEK's latest version (RSA-OAEP-256); write FILE (JSON, no plain DEK)
  python3 labs/data_service.py decrypt FILE
      unwrap the DEK with the KEK version that wrapped it; print the text
  python3 labs/data_service.py rewrap FILE KEK-URL
      unwrap the DEK with its old version, wrap it with the KEK's latest
      version, rewrite FILE (the order itself is not re-encrypted)

A refusal by Key Vault prints "refused: HTTP <status> <code> (<inner code>):
<message>" and exits 1. Needs IDENTITY_ENDPOINT, IDENTITY_HEADER and
REQUESTS_CA_BUNDLE (labs/README.md).
"""
import base64
import json
import os
import sys

from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ALG = KeyWrapAlgorithm.rsa_oaep_256
CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json")


def credential():
    """The data-service identity: its client id comes from labs/config.json."""
    with open(CONFIG, encoding="utf-8") as f:
        ids = {i["name"]: i for i in json.load(f)["identities"]}
    return ManagedIdentityCredential(client_id=ids["data-service"]["clientId"])


def b64(data):
    return base64.b64encode(data).decode()


def wrap(kek_url, dek):
    """Wrap with the KEK's latest version; returns (versioned key id, wrapped DEK).
    The SDK first reads the public key (keys/get) and, if it may, wraps locally."""
    result = CryptographyClient(kek_url, credential()).wrap_key(ALG, dek)
    return result.key_id, result.encrypted_key


def unwrap(envelope):
    """Unwrap in Key Vault (the private key never leaves it), with the exact
    version that wrapped the DEK."""
    crypto = CryptographyClient(envelope["kek"], credential())
    return crypto.unwrap_key(ALG, base64.b64decode(envelope["wrapped_dek"])).key


def encrypt(kek_url, path, text):
    dek = AESGCM.generate_key(bit_length=256)
    nonce = os.urandom(12)
    kid, wrapped = wrap(kek_url, dek)
    envelope = {"kek": kid, "alg": ALG.value, "wrapped_dek": b64(wrapped), "nonce": b64(nonce),
                "ciphertext": b64(AESGCM(dek).encrypt(nonce, text.encode(), None))}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(envelope, f, indent=2)
    print(f"{path}: DEK wrapped by {kid}")


def decrypt(path):
    with open(path, encoding="utf-8") as f:
        envelope = json.load(f)
    dek = unwrap(envelope)
    text = AESGCM(dek).decrypt(base64.b64decode(envelope["nonce"]),
                               base64.b64decode(envelope["ciphertext"]), None)
    print(f"{text.decode()} (DEK unwrapped by {envelope['kek']})")


def rewrap(path, kek_url):
    with open(path, encoding="utf-8") as f:
        envelope = json.load(f)
    old = envelope["kek"]
    kid, wrapped = wrap(kek_url, unwrap(envelope))
    envelope.update(kek=kid, wrapped_dek=b64(wrapped))
    with open(path, "w", encoding="utf-8") as f:
        json.dump(envelope, f, indent=2)
    print(f"{path}: DEK re-wrapped, {old} -> {kid}")


def main(argv):
    commands = {"encrypt": (encrypt, 3), "decrypt": (decrypt, 1), "rewrap": (rewrap, 2)}
    if len(argv) < 1 or argv[0] not in commands or len(argv) - 1 != commands[argv[0]][1]:
        sys.exit(__doc__)
    func, _ = commands[argv[0]]
    try:
        func(*argv[1:])
    except HttpResponseError as e:
        try:
            err = json.loads(e.response.text())["error"]
        except (AttributeError, ValueError, KeyError, TypeError):
            err = {"code": "?", "message": str(e)}
        inner = err.get("innererror", {}).get("code")
        print(f"refused: HTTP {e.status_code} {err['code']}{f' ({inner})' if inner else ''}: "
              f"{err['message']}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
