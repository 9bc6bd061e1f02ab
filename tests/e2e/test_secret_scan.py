"""Secret hygiene: after a run that imports keys whose private parts are known
(RSA, EC and oct JWKs made here with `cryptography`) and uses them (wrap and
unwrap, sign and verify, encrypt and decrypt, backup, purge and restore,
rotate, delete and recover, a restart, refused imports that carry the private
parts), none of those parts appears anywhere kvmock writes or answers:

- the server's log (stdout and stderr, at --log-level debug);
- the audit log, read through GET /admin/audit (every page) and through
  `kvmock audit --data DIR`;
- the files of the data folder (the LMDB file and the rest);
- the bodies of every answer the run got.

Every private component (RSA d, p, q, dp, dq, qi; EC d; oct k) is looked for
as raw bytes, base64url and base64 (each at the three alignments a value can
have inside a longer encoding), and hex in both cases. Each form is cut into
consecutive 16-byte (text: 24-character) pieces, and any piece found is a
leak, so a copy of half a component is found too.

The scanner checks itself: a needle of each form planted into each source's
real bytes must be found (and half of one)."""
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    Kvmock, Runner, check, eq, parse_args, b64url, unb64url, int_bytes)

from cryptography.hazmat.primitives.asymmetric import ec, rsa  # noqa: E402

API = "api-version=7.4"
PIECE_BYTES = 16
PIECE_CHARS = 24


# ---- needles ----------------------------------------------------------------------------

def forms(value):
    """{form name: bytes} of one private component."""
    out = {"raw": value, "hex": value.hex().encode(), "HEX": value.hex().upper().encode()}
    for k in range(3):
        # inside a longer encoding, the value starts at some offset mod 3: the
        # whole 3-byte groups from offset k on encode the same way for one k
        part = value[k:k + (len(value) - k) // 3 * 3]
        out[f"base64url+{k}"] = base64.urlsafe_b64encode(part).rstrip(b"=")
        out[f"base64+{k}"] = base64.b64encode(part).rstrip(b"=")
    return out


def pieces(form, data):
    size = PIECE_BYTES if form == "raw" else PIECE_CHARS
    return [data[i:i + size] for i in range(0, len(data) - size + 1, size)]


class Scanner:
    def __init__(self, components):
        """components: {label: bytes}."""
        self.needles = []  # (label, form, piece)
        for label, value in components.items():
            for form, data in forms(value).items():
                for p in pieces(form, data):
                    self.needles.append((label, form, p))

    def scan(self, data):
        """[(label, form)] of every component and form with a piece in data."""
        found = set()
        for label, form, p in self.needles:
            if (label, form) not in found and p in data:
                found.add((label, form))
        return sorted(found)


# ---- the run ----------------------------------------------------------------------------

def main():
    args = parse_args()
    runner = Runner()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rn = rsa_key.private_numbers()
    ec_key = ec.generate_private_key(ec.SECP256R1())
    ecn = ec_key.private_numbers()
    ec_d = int_bytes(ecn.private_value, 32)
    oct_k = secrets.token_bytes(32)
    components = {
        "RSA d": int_bytes(rn.d), "RSA p": int_bytes(rn.p), "RSA q": int_bytes(rn.q),
        "RSA dp": int_bytes(rn.dmp1), "RSA dq": int_bytes(rn.dmq1), "RSA qi": int_bytes(rn.iqmp),
        "EC d": ec_d, "oct k": oct_k,
    }
    rsa_jwk = {"kty": "RSA", "n": b64url(int_bytes(rn.public_numbers.n)),
               "e": b64url(int_bytes(rn.public_numbers.e)), "d": b64url(int_bytes(rn.d)),
               "p": b64url(int_bytes(rn.p)), "q": b64url(int_bytes(rn.q)),
               "dp": b64url(int_bytes(rn.dmp1)), "dq": b64url(int_bytes(rn.dmq1)),
               "qi": b64url(int_bytes(rn.iqmp))}
    ec_jwk = {"kty": "EC", "crv": "P-256", "x": b64url(int_bytes(ecn.public_numbers.x, 32)),
              "y": b64url(int_bytes(ecn.public_numbers.y, 32)), "d": b64url(ec_d)}
    oct_jwk = {"kty": "oct", "k": b64url(oct_k)}
    scanner = Scanner(components)
    answers = []  # every answer body of the run
    sources = {}  # name -> bytes, filled at the end of the run
    state = {}

    with Kvmock(args.kvmock, extra_args=["--log-level", "debug"]) as kv:

        def call(method, path, body=None, want=200):
            st, _, resp = kv.https(method, path, body)
            answers.append(resp)
            if want is not None:
                eq(st, want, f"{method} {path}: {resp[:300]!r}")
            return resp

        def call_json(method, path, body=None, want=200):
            return json.loads(call(method, path, body, want))

        def version_of(doc):
            return doc["key"]["kid"].rsplit("/", 1)[1]

        def op(name, version, what, body):
            return call_json("POST", f"/keys/{name}/{version}/{what}?{API}", body)

        def use_keys(tag):
            """Wrap/unwrap, sign/verify, encrypt/decrypt with each key's current version."""
            for name in ("rsa-known", "ec-known", "oct-known"):
                ver = version_of(call_json("GET", f"/keys/{name}?{API}"))
                digest = hashlib.sha256(f"{tag} {name}".encode()).digest()
                if name == "rsa-known":
                    dek = secrets.token_bytes(32)
                    ct = op(name, ver, "wrapkey", {"alg": "RSA-OAEP-256", "value": b64url(dek)})
                    pt = op(name, ver, "unwrapkey", {"alg": "RSA-OAEP-256", "value": ct["value"]})
                    eq(unb64url(pt["value"]), dek, f"{tag}: RSA unwrap")
                    sig = op(name, ver, "sign", {"alg": "PS256", "value": b64url(digest)})
                    v = op(name, ver, "verify", {"alg": "PS256", "digest": b64url(digest),
                                                 "value": sig["value"]})
                    eq(v["value"], True, f"{tag}: RSA verify")
                    # a ciphertext that does not decrypt: the refusal too
                    call("POST", f"/keys/{name}/{ver}/decrypt?{API}",
                         {"alg": "RSA-OAEP", "value": b64url(b"\x01" * 256)}, want=400)
                elif name == "ec-known":
                    sig = op(name, ver, "sign", {"alg": "ES256", "value": b64url(digest)})
                    v = op(name, ver, "verify", {"alg": "ES256", "digest": b64url(digest),
                                                 "value": sig["value"]})
                    eq(v["value"], True, f"{tag}: EC verify")
                else:
                    dek = secrets.token_bytes(32)
                    ct = op(name, ver, "wrapkey", {"alg": "A256KW", "value": b64url(dek)})
                    pt = op(name, ver, "unwrapkey", {"alg": "A256KW", "value": ct["value"]})
                    eq(unb64url(pt["value"]), dek, f"{tag}: oct unwrap")
                    enc = op(name, ver, "encrypt", {"alg": "A256GCM", "value": b64url(digest)})
                    dec = op(name, ver, "decrypt", {"alg": "A256GCM", "value": enc["value"],
                                                    "iv": enc["iv"], "tag": enc["tag"]})
                    eq(unb64url(dec["value"]), digest, f"{tag}: oct decrypt")

        @runner.test
        def import_and_use_known_keys():
            call("PUT", f"/keys/rsa-known?{API}", {"key": rsa_jwk})
            call("PUT", f"/keys/rsa-known?{API}", {"key": rsa_jwk})  # a second version
            call("PUT", f"/keys/ec-known?{API}", {"key": ec_jwk})
            call("PUT", f"/keys/oct-known?{API}", {"key": oct_jwk})
            for body in answers[-4:]:
                for part in (b'"d"', b'"p"', b'"q"', b'"dp"', b'"dq"', b'"qi"', b'"k"'):
                    check(part not in body, f"an import answer names {part}: {body[:200]!r}")
            use_keys("first")

        @runner.test
        def refused_imports_that_carry_private_parts():
            bad_qi = dict(rsa_jwk, qi=b64url(int_bytes(rn.iqmp ^ 1)))
            call("PUT", f"/keys/refused?{API}", {"key": bad_qi}, want=400)
            stray = dict(rsa_jwk, d=rsa_jwk["d"][:-3] + "*" + rsa_jwk["d"][-2:])
            call("PUT", f"/keys/refused?{API}", {"key": stray}, want=400)
            bad_ec = dict(ec_jwk, d=b64url(int_bytes((ecn.private_value + 1) % (1 << 256), 32)))
            call("PUT", f"/keys/refused?{API}", {"key": bad_ec}, want=400)
            short = dict(oct_jwk, k=b64url(oct_k[:31]))
            call("PUT", f"/keys/refused?{API}", {"key": short}, want=400)
            # a body that is not JSON, with the private part inside
            st, _, body = kv.https("PUT", f"/keys/refused?{API}",
                                   b'{"key": {"kty": "RSA", "d": "' + rsa_jwk["d"].encode() + b'"',
                                   headers={"Content-Type": "application/json"})
            answers.append(body)
            eq(st, 400, body[:300])

        @runner.test
        def backup_purge_restore():
            for name in ("rsa-known", "ec-known", "oct-known"):
                blob = call_json("POST", f"/keys/{name}/backup?{API}")["value"]
                state[name] = blob
                call("DELETE", f"/keys/{name}?{API}")
                call("DELETE", f"/deletedkeys/{name}?{API}", want=204)
                call("POST", f"/keys/restore?{API}", {"value": blob})
            use_keys("restored")

        @runner.test
        def delete_recover_rotate():
            call("DELETE", f"/keys/ec-known?{API}")
            call("GET", f"/deletedkeys/ec-known?{API}")
            call("POST", f"/deletedkeys/ec-known/recover?{API}")
            deadline = time.time() + 10
            while kv.https("GET", f"/keys/ec-known?{API}")[0] != 200 and time.time() < deadline:
                time.sleep(0.1)
            for name in ("rsa-known", "ec-known", "oct-known"):
                call("POST", f"/keys/{name}/rotate?{API}")
            use_keys("rotated")

        @runner.test
        def after_a_restart():
            kv.restart()  # the keys are opened from the seal again
            call("POST", f"/keys/restore?{API}", {"value": state["rsa-known"]}, want=409)
            use_keys("restarted")
            # the restored old versions open too
            versions = json.loads(call("GET", f"/keys/rsa-known/versions?{API}"))["value"]
            check(len(versions) >= 3, f"versions of rsa-known: {len(versions)}")
            dek = secrets.token_bytes(32)
            for item in versions:
                ver = item["kid"].rsplit("/", 1)[1]
                ct = op("rsa-known", ver, "wrapkey", {"alg": "RSA1_5", "value": b64url(dek)})
                pt = op("rsa-known", ver, "unwrapkey", {"alg": "RSA1_5", "value": ct["value"]})
                eq(unb64url(pt["value"]), dek)

        @runner.test
        def collect_the_audit_log_through_the_server():
            pages = []
            path = "/admin/audit?maxresults=50"
            records = 0
            while path:
                st, _, body = kv.http("GET", path)
                eq(st, 200, body[:300])
                pages.append(body)
                doc = json.loads(body)
                records += len(doc["value"])
                link = doc.get("nextLink")
                path = link[link.index("/admin/"):] if link else None
            check(len(pages) > 1, f"the audit log is paged: {len(pages)} page(s)")
            check(records > 50, f"{records} audit records")
            ops = b"".join(pages)
            for name in (b"KeyImport", b"KeyUnwrap", b"KeySign", b"KeyBackup", b"KeyRestore",
                         b"KeyRotate", b"KeyRecover", b"KeyPurge"):
                check(name in ops, f"{name.decode()} is in the audit log")
            sources["audit (GET /admin/audit)"] = ops
            state["audit records"] = records

        @runner.test
        def stop_and_collect_every_source():
            kv.stop()
            # the log of every run of this server, the audit log read from the
            # file, and every file of the data folder
            with open(kv.log_path, "rb") as f:
                sources["server log"] = f.read()
            out = subprocess.run([kv.binary, "audit", "--data", kv.data_dir],
                                 capture_output=True, timeout=60)
            eq(out.returncode, 0, f"kvmock audit: {out.stderr[:300]!r}")
            sources["audit (kvmock audit)"] = out.stdout + out.stderr
            check(out.stdout.count(b"\n") >= state.get("audit records", 1),
                  "kvmock audit has every record")
            for root, _, files in os.walk(kv.data_dir):
                for name in files:
                    path = os.path.join(root, name)
                    with open(path, "rb") as f:
                        sources[f"data file {os.path.relpath(path, kv.data_dir)}"] = f.read()
            check("data file kvmock.mdb" in sources, f"the LMDB file: {sorted(sources)}")
            sources["answers"] = b"\n".join(answers)

        @runner.test
        def the_scanner_finds_a_needle_planted_in_each_source_in_each_form():
            value = components["RSA q"]
            for source, data in sorted(sources.items()):
                for form, needle in forms(value).items():
                    at = len(data) // 2
                    found = scanner.scan(data[:at] + b"prefix" + needle + b"suffix" + data[at:])
                    check(("RSA q", form) in found,
                          f"a {form} copy of RSA q planted in {source} was not found: {found}")
                # half a component is found too
                half = forms(value)["base64url+1"]
                half = half[len(half) // 4:len(half) // 4 + len(half) // 2]
                check(scanner.scan(data[:100] + half + data[100:]) != [],
                      f"half a base64url copy in {source} was not found")
            print(f"  {len(sources)} sources x {len(forms(value))} forms planted and found",
                  flush=True)

        @runner.test
        def no_private_part_anywhere():
            total = 0
            for source, data in sorted(sources.items()):
                found = scanner.scan(data)
                total += len(data)
                print(f"  {source}: {len(data)} bytes, "
                      f"{'nothing found' if not found else found}", flush=True)
                check(found == [], f"private key parts in {source}: {found}")
            print(f"  {len(scanner.needles)} pieces of {len(components)} components "
                  f"({', '.join(components)}) looked for in {total} bytes", flush=True)

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
