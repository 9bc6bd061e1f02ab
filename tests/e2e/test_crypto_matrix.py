"""The key-operation matrix: every (key type, size or curve, algorithm,
operation) cell that Key Vault offers, run on kvmock over raw HTTP and
cross-checked with an independent local implementation (python3-cryptography,
OpenSSL underneath). Keys are imported with known private parts, so each
result is checked byte for byte in both directions: kvmock decrypts what the
local side encrypted and the other way round; signatures made on either side
verify on the other.

  test_crypto_matrix.py --kvmock build/kvmock [--markdown]

--markdown prints the README's compatibility table. Exits 1 if any cell fails.
"""
import hashlib
import hmac
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    Kvmock, parse_args, b64url as b64, unb64url as unb64, int_bytes as ibytes)

from cryptography.hazmat.primitives import hashes, padding as sympad
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import (
    aes_key_unwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap,
    aes_key_wrap_with_padding,
)

API = "api-version=7.4"
HASH = {"256": (hashes.SHA256, hashlib.sha256), "384": (hashes.SHA384, hashlib.sha384),
        "512": (hashes.SHA512, hashlib.sha512)}
CURVES = {"P-256": (ec.SECP256R1, "ES256", 32), "P-256K": (ec.SECP256K1, "ES256K", 32),
          "P-384": (ec.SECP384R1, "ES384", 48), "P-521": (ec.SECP521R1, "ES512", 66)}


class Matrix:
    def __init__(self, kv):
        self.kv = kv
        self.token = kv.token()
        self.cells = []  # (kty, size, alg, op, ok, note)

    def call(self, method, path, body=None):
        import json
        st, _, resp = self.kv.https(method, f"{path}?{API}", body, token=self.token)
        return st, (json.loads(resp) if resp else None)

    def op(self, name, op, body):
        return self.call("POST", f"/keys/{name}//{op}", body)

    def cell(self, kty, size, alg, op, fn):
        try:
            fn()
            self.cells.append((kty, size, alg, op, True, ""))
        except Exception as e:  # noqa: BLE001 - a failing cell is reported, not fatal
            self.cells.append((kty, size, alg, op, False, f"{type(e).__name__}: {e}"))

    def imp(self, name, jwk):
        st, body = self.call("PUT", f"/keys/{name}", {"key": jwk})
        assert st == 200, (st, body)
        assert "d" not in body["key"] and "k" not in body["key"], "no private parts returned"
        return body

    # ---- RSA -------------------------------------------------------------------------------

    def rsa(self, bits):
        priv = rsa.generate_private_key(public_exponent=65537, key_size=bits)
        n = priv.private_numbers()
        name = f"rsa{bits}"
        self.imp(name, {"kty": "RSA", "n": b64(ibytes(n.public_numbers.n)),
                        "e": b64(ibytes(n.public_numbers.e)), "d": b64(ibytes(n.d)),
                        "p": b64(ibytes(n.p)), "q": b64(ibytes(n.q)), "dp": b64(ibytes(n.dmp1)),
                        "dq": b64(ibytes(n.dmq1)), "qi": b64(ibytes(n.iqmp))})
        pads = {"RSA-OAEP": lambda: padding.OAEP(mgf=padding.MGF1(hashes.SHA1()),
                                                  algorithm=hashes.SHA1(), label=None),
                "RSA-OAEP-256": lambda: padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                      algorithm=hashes.SHA256(), label=None),
                "RSA1_5": padding.PKCS1v15}
        for alg, pad in pads.items():
            for enc, dec in (("encrypt", "decrypt"), ("wrapkey", "unwrapkey")):
                def run(alg=alg, pad=pad, enc=enc, dec=dec):
                    data = os.urandom(32)
                    st, body = self.op(name, dec, {"alg": alg,
                                                   "value": b64(priv.public_key().encrypt(data, pad()))})
                    assert st == 200 and unb64(body["value"]) == data, (st, body)
                    st, body = self.op(name, enc, {"alg": alg, "value": b64(data)})
                    assert st == 200, (st, body)
                    assert len(unb64(body["value"])) == bits // 8
                    assert priv.decrypt(unb64(body["value"]), pad()) == data
                self.cell("RSA", bits, alg, f"{enc}/{dec}", run)
        for alg in ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"):
            def run(alg=alg):
                h, hl = HASH[alg[2:]]
                digest = hl(b"kvmock").digest()
                pad = (padding.PKCS1v15() if alg[0] == "R" else
                       padding.PSS(mgf=padding.MGF1(h()), salt_length=h.digest_size))
                st, body = self.op(name, "sign", {"alg": alg, "value": b64(digest)})
                assert st == 200, (st, body)
                priv.public_key().verify(unb64(body["value"]), digest, pad, utils.Prehashed(h()))
                local = priv.sign(digest, pad, utils.Prehashed(h()))
                st, body = self.op(name, "verify", {"alg": alg, "digest": b64(digest),
                                                    "value": b64(local)})
                assert st == 200 and body["value"] is True, (st, body)
                bad = bytes([local[0] ^ 1]) + local[1:]
                st, body = self.op(name, "verify", {"alg": alg, "digest": b64(digest),
                                                    "value": b64(bad)})
                assert st == 200 and body["value"] is False, (st, body)
                st, body = self.op(name, "sign", {"alg": alg, "value": b64(digest[:-1])})
                assert st == 400 and body["error"]["code"] == "BadParameter", (st, body)
            self.cell("RSA", bits, alg, "sign/verify", run)

    # ---- EC --------------------------------------------------------------------------------

    def ec(self, crv):
        curve, alg, size = CURVES[crv]
        priv = ec.generate_private_key(curve())
        n = priv.private_numbers()
        name = "ec" + crv.replace("-", "")
        self.imp(name, {"kty": "EC", "crv": crv, "x": b64(ibytes(n.public_numbers.x, size)),
                        "y": b64(ibytes(n.public_numbers.y, size)),
                        "d": b64(ibytes(n.private_value, size))})

        def run():
            h, hl = HASH[alg[2:5]]
            digest = hl(b"kvmock").digest()
            st, body = self.op(name, "sign", {"alg": alg, "value": b64(digest)})
            assert st == 200, (st, body)
            sig = unb64(body["value"])
            assert len(sig) == 2 * size, "raw R||S"
            der = utils.encode_dss_signature(int.from_bytes(sig[:size], "big"),
                                             int.from_bytes(sig[size:], "big"))
            priv.public_key().verify(der, digest, ec.ECDSA(utils.Prehashed(h())))
            r, s = utils.decode_dss_signature(priv.sign(digest, ec.ECDSA(utils.Prehashed(h()))))
            local = ibytes(r, size) + ibytes(s, size)
            st, body = self.op(name, "verify", {"alg": alg, "digest": b64(digest),
                                                "value": b64(local)})
            assert st == 200 and body["value"] is True, (st, body)
            other = {"ES256": "ES384", "ES256K": "ES256", "ES384": "ES256", "ES512": "ES384"}[alg]
            st, body = self.op(name, "sign", {"alg": other, "value": b64(digest)})
            assert st == 400, ("curve/algorithm mismatch", st, body)
        self.cell("EC", crv, alg, "sign/verify", run)

    # ---- oct -------------------------------------------------------------------------------

    def oct(self, bits):
        key = os.urandom(bits // 8)
        name = f"oct{bits}"
        self.imp(name, {"kty": "oct", "k": b64(key),
                        "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign",
                                    "verify"]})
        st, body = self.call("GET", f"/keys/{name}")
        assert st == 200 and "k" not in body["key"], "get never returns the key bytes"

        def wrap_cell(alg, local_wrap, local_unwrap, length):
            def run():
                data = os.urandom(length)
                st, body = self.op(name, "wrapkey", {"alg": alg, "value": b64(data)})
                assert st == 200, (st, body)
                assert local_unwrap(key, unb64(body["value"])) == data
                st, body = self.op(name, "unwrapkey", {"alg": alg,
                                                       "value": b64(local_wrap(key, data))})
                assert st == 200 and unb64(body["value"]) == data, (st, body)
            self.cell("oct", bits, alg, "wrapKey/unwrapKey", run)

        wrap_cell(f"A{bits}KW", aes_key_wrap, aes_key_unwrap, 32)
        wrap_cell("CKM_AES_KEY_WRAP", aes_key_wrap, aes_key_unwrap, 32)
        wrap_cell("CKM_AES_KEY_WRAP_PAD", aes_key_wrap_with_padding,
                  aes_key_unwrap_with_padding, 21)

        def gcm():
            data, aad = os.urandom(45), b"context"
            st, body = self.op(name, "encrypt", {"alg": f"A{bits}GCM", "value": b64(data),
                                                 "aad": b64(aad)})
            assert st == 200, (st, body)
            iv, tag = unb64(body["iv"]), unb64(body["tag"])
            assert len(iv) == 12 and len(tag) == 16 and unb64(body["aad"]) == aad
            assert AESGCM(key).decrypt(iv, unb64(body["value"]) + tag, aad) == data
            iv = os.urandom(12)
            ct = AESGCM(key).encrypt(iv, data, aad)
            st, body = self.op(name, "decrypt", {"alg": f"A{bits}GCM", "value": b64(ct[:-16]),
                                                 "iv": b64(iv), "tag": b64(ct[-16:]),
                                                 "aad": b64(aad)})
            assert st == 200 and unb64(body["value"]) == data, (st, body)
            st, body = self.op(name, "decrypt", {"alg": f"A{bits}GCM", "value": b64(ct[:-16]),
                                                 "iv": b64(iv), "tag": b64(bytes(16)),
                                                 "aad": b64(aad)})
            assert st == 400, ("a bad tag is refused", st, body)
        self.cell("oct", bits, f"A{bits}GCM", "encrypt/decrypt", gcm)

        for pad in (False, True):
            alg = f"A{bits}CBC" + ("PAD" if pad else "")

            def cbc(alg=alg, pad=pad):
                data = os.urandom(45 if pad else 48)
                iv = os.urandom(16)
                st, body = self.op(name, "encrypt", {"alg": alg, "value": b64(data), "iv": b64(iv)})
                assert st == 200, (st, body)
                dec = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
                plain = dec.update(unb64(body["value"])) + dec.finalize()
                if pad:
                    u = sympad.PKCS7(128).unpadder()
                    plain = u.update(plain) + u.finalize()
                assert plain == data
                padded = data
                if pad:
                    p = sympad.PKCS7(128).padder()
                    padded = p.update(data) + p.finalize()
                enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
                ct = enc.update(padded) + enc.finalize()
                st, body = self.op(name, "decrypt", {"alg": alg, "value": b64(ct), "iv": b64(iv)})
                assert st == 200 and unb64(body["value"]) == data, (st, body)
            self.cell("oct", bits, alg, "encrypt/decrypt", cbc)

        for alg in ("HS256", "HS384", "HS512"):
            def hs(alg=alg):
                data = b"message to authenticate"
                st, body = self.op(name, "sign", {"alg": alg, "value": b64(data)})
                assert st == 200, (st, body)
                want = hmac.new(key, data, HASH[alg[2:]][1]).digest()
                assert unb64(body["value"]) == want
                st, body = self.op(name, "verify", {"alg": alg, "digest": b64(data),
                                                    "value": b64(want)})
                assert st == 200 and body["value"] is True, (st, body)
            self.cell("oct", bits, alg, "sign/verify", hs)

        other = 128 if bits != 128 else 256
        st, body = self.op(name, "wrapkey", {"alg": f"A{other}KW", "value": b64(os.urandom(32))})
        self.cell("oct", bits, f"A{other}KW", "key length mismatch → 400",
                  lambda: (_ for _ in ()).throw(AssertionError((st, body))) if st != 400 else None)


def main():
    markdown = "--markdown" in sys.argv
    if markdown:
        sys.argv.remove("--markdown")
    args = parse_args()
    with Kvmock(args.kvmock) as kv:
        m = Matrix(kv)
        for bits in (2048, 3072, 4096):
            m.rsa(bits)
        for crv in CURVES:
            m.ec(crv)
        for bits in (128, 192, 256):
            m.oct(bits)
        st, body = m.call("POST", "/rng", {"count": 32})
        m.cells.append(("-", "-", "rng", "32 random bytes", st == 200 and len(unb64(body["value"])) == 32,
                        "" if st == 200 else str(body)))
    failed = [c for c in m.cells if not c[4]]
    if markdown:
        print("| key | size/curve | algorithm | operation | result |\n|---|---|---|---|---|")
        for kty, size, alg, op, ok, _ in m.cells:
            print(f"| {kty} | {size} | {alg} | {op} | {'pass' if ok else 'FAIL'} |")
    else:
        for kty, size, alg, op, ok, note in m.cells:
            print(f"{'PASS' if ok else 'FAIL'} {kty:<4} {str(size):<6} {alg:<22} {op}"
                  + (f"  -- {note}" if note else ""))
    print(f"{len(m.cells) - len(failed)}/{len(m.cells)} cells pass", file=sys.stderr)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
