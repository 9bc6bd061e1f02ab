"""Raw HTTP against a running kvmock: what the SDKs hide. Exact status codes,
error bodies, the challenge header byte for byte, path quirks, token checks,
bad input (each followed by a check that nothing changed), and the lifecycle
refusals."""
import json
import os
import socket
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT  # noqa: E402

API = "api-version=7.4"
CONFIG = {
    "vaults": [
        {"name": "default"},
        {"name": "cmk", "properties": {"softDeleteRetentionInDays": 7,
                                        "enablePurgeProtection": True}},
    ]
}


def error_of(body):
    doc = json.loads(body)
    check(set(doc) == {"error"}, f"error body has only 'error': {doc}")
    err = doc["error"]
    check(isinstance(err.get("message"), str) and err["message"], f"error has a message: {doc}")
    return err


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        P = kv.https_port
        vault_host = f"default.vault.localhost:{P}"

        def call(method, path, body=None, host=None, token=True, headers=None):
            return kv.https(method, path, body=body, host=host, token=token, headers=headers)

        def expect_error(resp, status, code, inner=None):
            st, _, body = resp
            eq(st, status, f"status (body {body[:300]!r})")
            err = error_of(body)
            eq(err["code"], code)
            if inner is None:
                check("innererror" not in err, f"no innererror expected: {err}")
            else:
                eq(err.get("innererror", {}).get("code"), inner)
            return err

        def key_names(vault_host_=None):
            st, _, body = call("GET", f"/keys?{API}", host=vault_host_)
            eq(st, 200)
            return sorted(i["kid"].rsplit("/", 1)[1] for i in json.loads(body)["value"])

        # one key to work with
        st, _, body = call("POST", f"/keys/base/create?{API}", {"kty": "RSA", "key_size": 2048})
        eq(st, 200, body)
        base = json.loads(body)

        @runner.test
        def challenge_header_exact():
            st, hdrs, body = call("GET", f"/keys?{API}", host=vault_host, token=None)
            eq(st, 401)
            eq(hdrs["www-authenticate"],
               f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
               f'resource="https://vault.localhost:{P}"')
            eq(json.loads(body), {"error": {"code": "Unauthorized",
                                            "message": "Request is missing a Bearer or PoP token."}})
            eq(hdrs["content-type"], "application/json; charset=utf-8")
            st, hdrs, _ = call("GET", f"/keys?{API}", host=f"localhost:{P}", token=None)
            eq(st, 401)
            eq(hdrs["www-authenticate"],
               f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
               'resource="https://vault.azure.net"')

        @runner.test
        def challenge_comes_before_anything_else():
            # the SDK probe: no token, no body, even on create with bad query
            st, hdrs, _ = call("POST", "/keys/x/create", host=vault_host, token=None,
                               headers={"Content-Length": "0"})
            eq(st, 401)
            check("www-authenticate" in hdrs)
            st, _, _ = call("DELETE", "/nowhere", token=None)
            eq(st, 401)
            # a vault that does not exist challenges too, then 404 with a token
            st, _, _ = call("GET", f"/keys?{API}", host=f"nosuch.vault.localhost:{P}", token=None)
            eq(st, 401)
            expect_error(call("GET", f"/keys?{API}", host=f"nosuch.vault.localhost:{P}",
                              token=kv.token(f"https://vault.localhost:{P}")),
                         404, "VaultNotFound")

        @runner.test
        def token_checks():
            good = kv.token()
            eq(call("GET", f"/keys?{API}", token=good)[0], 200)
            parts = good.split(".")
            payload = json.loads(unb64url(parts[1]))
            for claim in ("tid", "oid", "appid", "aud", "iat", "nbf", "exp"):
                check(claim in payload, f"token carries {claim}")
            eq(payload["tid"], TENANT)
            # tampered payload, forged signature, alg none, wrong audience
            payload["oid"] = "00000000-0000-0000-0000-000000000000"
            forged = parts[0] + "." + b64url(json.dumps(payload).encode()) + "." + parts[2]
            none = b64url(b'{"alg":"none","typ":"JWT"}') + "." + parts[1] + "."
            sig = bytearray(unb64url(parts[2]))
            sig[0] ^= 1
            badsig = parts[0] + "." + parts[1] + "." + b64url(bytes(sig))
            for bad in (forged, none, badsig, "garbage", kv.token("https://management.azure.com")):
                st, hdrs, body = call("GET", f"/keys?{API}", token=bad)
                eq(st, 401, f"token {bad[:20]}... refused")
                check("www-authenticate" in hdrs)
                eq(error_of(body)["code"], "Unauthorized")
            # a token kvmock issued for another resource: Key Vault's AKV10022 names it
            st, _, body = call("GET", f"/keys?{API}", token=kv.token("https://management.azure.com"))
            eq((st, error_of(body)), (401, {
                "code": "Unauthorized",
                "message": "AKV10022: Invalid audience. Expected https://vault.azure.net, "
                           "found: https://management.azure.com."}))
            # and on the management plane, Resource Manager's 401 for a vault token
            st, hdrs, body = call("GET", "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups"
                               "?api-version=2021-04-01",
                               token=good)
            err = error_of(body)
            eq((st, err["code"]), (401, "InvalidAuthenticationTokenAudience"), body)
            # every 401 carries a challenge, Resource Manager's here
            eq(hdrs.get("www-authenticate"), 'Bearer authorization_uri="https://login.windows.net/", '
                                             'error="invalid_token", error_description="The access '
                                             'token is invalid."')
            eq(err["message"], "The access token has been obtained for wrong audience or resource "
                               "'https://vault.azure.net'. It should exactly match with one of the "
                               "allowed audiences 'https://management.core.windows.net/',"
                               "'https://management.core.windows.net','https://management.azure.com/',"
                               "'https://management.azure.com'.")
            # audiences: the challenge resource of the vault host works
            eq(call("GET", f"/keys?{API}", host=vault_host,
                    token=kv.token(f"https://vault.localhost:{P}"))[0], 200)

        @runner.test
        def api_version_rules():
            expect_error(call("GET", "/keys"), 400, "BadParameter")
            err = expect_error(call("GET", "/keys?api-version=9.9"), 400, "BadParameter")
            eq(err["message"], "The specified version (9.9) is not recognized. Consider using the "
                               "latest supported version (2025-07-01).")
            for v in ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "7.4-preview.1",
                      "2016-10-01", "2025-07-01"):
                eq(call("GET", f"/keys?api-version={v}")[0], 200, v)
            # percent-encoded names and values (JS sends api%2Dversion)
            eq(call("GET", "/keys?api%2Dversion=7%2E4")[0], 200)

        @runner.test
        def routes_404_405():
            expect_error(call("GET", f"/secrets?{API}"), 404, "NotFound")
            expect_error(call("GET", f"/keys/base/{base['key']['kid'][-32:]}/wrapkey?{API}"),
                         405, "MethodNotAllowed")
            expect_error(call("DELETE", f"/keys?{API}"), 405, "MethodNotAllowed")

        @runner.test
        def attestation_refused_and_release_of_a_key_that_is_not_exportable():
            # kvmock has no HSM to attest a key: a clear 400 once the key is found (a
            # missing one is 404 first). A key made without exportable cannot be released:
            # 403, whatever the token
            version = base["key"]["kid"].rsplit("/", 1)[1]
            # (the TypeSpec-made clients leave an absent version out: /keys/base/attestation)
            for path in ("/keys/base//attestation", "/keys/base/attestation",
                         f"/keys/base/{version}/attestation"):
                err = expect_error(call("GET", f"{path}?api-version=7.6"), 400, "BadParameter")
                check("attestation" in err["message"], err)
            for path in ("/keys/base//release", "/keys/base/release",
                         f"/keys/base/{version}/release"):
                err = expect_error(call("POST", f"{path}?{API}",
                                        {"target": "eyJhbGciOiJub25lIn0.e30."}), 403, "Forbidden")
                check("not exportable" in err["message"], err)
            expect_error(call("GET", f"/keys/nokey//attestation?api-version=7.6"), 404, "KeyNotFound")
            expect_error(call("POST", f"/keys/nokey//release?{API}", {"target": "x"}),
                         404, "KeyNotFound")
            expect_error(call("POST", f"/keys/base//attestation?api-version=7.6"),
                         405, "MethodNotAllowed")

        @runner.test
        def path_quirks_mean_latest():
            kid = base["key"]["kid"]
            for path in ("/keys/base", "/keys/base/", "/keys/BASE/"):
                st, _, body = call("GET", f"{path}?{API}")
                eq(st, 200, path)
                eq(json.loads(body)["key"]["kid"].rsplit("/", 1)[1], kid.rsplit("/", 1)[1])
            data = os.urandom(32)
            st, _, body = call("POST", f"/keys/base//wrapkey?{API}",
                               {"alg": "RSA-OAEP", "value": b64url(data)})
            eq(st, 200, body)
            eq(json.loads(body)["kid"], kid.replace(f"localhost:{P}", f"localhost:{P}"))

        @runner.test
        def ids_follow_the_host():
            for host in (vault_host, f"127.0.0.1:{P}", f"localhost:{P}"):
                st, _, body = call("GET", f"/keys/base?{API}", host=host,
                                   token=kv.token(f"https://vault.localhost:{P}")
                                   if host == vault_host else True)
                eq(st, 200)
                check(json.loads(body)["key"]["kid"].startswith(f"https://{host}/keys/base/"))
            for i in range(3):
                eq(call("POST", f"/keys/page{i}/create?{API}", {"kty": "EC"})[0], 200)
            st, _, body = call("GET", f"/keys?{API}&maxresults=2", host=f"127.0.0.1:{P}")
            doc = json.loads(body)
            eq(len(doc["value"]), 2)
            link = doc["nextLink"]
            check(link.startswith(f"https://127.0.0.1:{P}/keys?api-version=7.4&$skiptoken="), link)
            check(link.endswith("&maxresults=2"), link)
            seen = [i["kid"] for i in doc["value"]]
            while link:
                st, _, body = call("GET", link[len(f"https://127.0.0.1:{P}"):],
                                   host=f"127.0.0.1:{P}")
                eq(st, 200)
                doc = json.loads(body)
                check(isinstance(doc["value"], list))
                seen += [i["kid"] for i in doc["value"]]
                link = doc["nextLink"]
            eq(len(seen), len(set(seen)))
            eq(sorted(s.rsplit("/", 1)[1] for s in seen), key_names())
            expect_error(call("GET", f"/keys?{API}&maxresults=26"), 400, "BadParameter")
            expect_error(call("GET", f"/keys?{API}&maxresults=0"), 400, "BadParameter")
            expect_error(call("GET", f"/keys?{API}&$skiptoken=zz"), 400, "BadParameter")

        @runner.test
        def next_link_repeats_maxresults_only_when_given():
            # As Key Vault's links: maxresults=N when the client gave it, none otherwise
            # (the service's default page size applies to every page then).
            cmk = f"cmk.vault.localhost:{P}"
            tok = kv.token(f"https://vault.localhost:{P}")
            for _ in range(26):
                eq(call("POST", f"/keys/many/create?{API}", {"kty": "EC"}, host=cmk,
                        token=tok)[0], 200)
            for query, size in (("", 25), ("&maxresults=10", 10)):
                st, _, body = call("GET", f"/keys/many/versions?{API}{query}", host=cmk, token=tok)
                eq(st, 200, body)
                doc = json.loads(body)
                eq(len(doc["value"]), size)
                link = doc["nextLink"]
                check(link.startswith(f"https://{cmk}/keys/many/versions?api-version=7.4&"
                                      "$skiptoken="), link)
                eq(("maxresults=" in link, link.endswith(query)), (bool(query), True), link)
                seen = len(doc["value"])
                while link:
                    st, _, body = call("GET", link[len(f"https://{cmk}"):], host=cmk, token=tok)
                    eq(st, 200, body)
                    doc = json.loads(body)
                    seen += len(doc["value"])
                    link = doc["nextLink"]
                    check(link is None or ("maxresults=" in link) == bool(query), link)
                eq(seen, 26)

        @runner.test
        def bundles_never_carry_private_parts():
            st, _, body = call("GET", f"/keys/base?{API}")
            key = json.loads(body)["key"]
            for member in ("d", "p", "q", "dp", "dq", "qi", "k"):
                check(member not in key, f"{member} not returned")
            eq(key["e"], "AQAB")
            check("=" not in key["n"], "base64url without padding")
            eq(len(unb64url(key["n"])), 256)
            attrs = json.loads(body)["attributes"]
            check(isinstance(attrs["created"], int) and isinstance(attrs["updated"], int))
            # exportable false as Key Vault answers it from api-version 7.3 on; older versions,
            # which came before exportable keys, do not name it
            eq(attrs["exportable"], False)
            st, _, body = call("GET", "/keys/base?api-version=7.2")
            check("exportable" not in json.loads(body)["attributes"], body)
            eq(sorted(key["key_ops"]),
               sorted(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"]))
            st, _, body = call("POST", f"/keys/ec1/create?{API}", {"kty": "EC"})
            eq(json.loads(body)["key"]["crv"], "P-256")
            eq(sorted(json.loads(body)["key"]["key_ops"]), ["sign", "verify"])

        @runner.test
        def bad_input_is_400_and_changes_nothing():
            before = key_names()
            cases = [
                ("POST", "/keys/new1/create", b"{not json"),
                ("POST", "/keys/new1/create", b"[1,2]"),
                ("POST", "/keys/new1/create", {"kty": 5}),
                ("POST", "/keys/new1/create", {"kty": "DSA"}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "key_size": 1024}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "key_size": "2048"}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "public_exponent": 5}),
                ("POST", "/keys/new1/create", {"kty": "EC", "crv": "P-192"}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "key_ops": ["fly"]}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "attributes": {"enabled": "yes"}}),
                ("POST", "/keys/new1/create", {"kty": "RSA", "tags": {"a": 1}}),
                # Key Vault's tags: at most 15, names and values of at most 256 characters
                ("POST", "/keys/new1/create", {"kty": "EC", "tags": {"n" * 257: "v"}}),
                ("POST", "/keys/new1/create", {"kty": "EC", "tags": {"n": "v" * 257}}),
                ("POST", "/keys/new1/create", {"kty": "EC", "tags": {f"t{i}": "" for i in range(16)}}),
                ("POST", "/keys/bad_name/create", {"kty": "RSA"}),
                ("POST", "/keys/" + "a" * 128 + "/create", {"kty": "RSA"}),
                # the REST specification's name pattern is on create, import and rotate
                ("PUT", "/keys/bad_name", {"key": {"kty": "oct", "k": "AAAAAAAAAAAAAAAAAAAAAA"}}),
                ("POST", "/keys/bad_name/rotate", None),
                ("POST", "/keys/" + "a" * 128 + "/rotate", None),
            ]
            for method, path, body in cases:
                expect_error(call(method, f"{path}?{API}", body), 400, "BadParameter")
            # a body over 1 MiB
            huge = b'{"kty":"RSA","tags":{"a":"' + b"x" * (1024 * 1024) + b'"}}'
            expect_error(call("POST", f"/keys/new1/create?{API}", huge), 400, "BadParameter")
            eq(key_names(), before)
            widest = {f"{i:02d}" + "n" * 254: "v" * 256 for i in range(15)}
            st, _, body = call("POST", f"/keys/tagged/create?{API}", {"kty": "EC", "tags": widest})
            eq((st, json.loads(body)["tags"]), (200, widest))

            wrap = f"/keys/base//wrapkey?{API}"
            unwrap = f"/keys/base//unwrapkey?{API}"
            for body in ({"alg": "RSA-OAEP"},                       # no value
                         {"alg": "A256KW", "value": b64url(b"x" * 32)},  # alg for another kty
                         {"alg": "NOPE", "value": b64url(b"x")},
                         {"alg": "RSA-OAEP", "value": "not*base64"},
                         {"alg": "RSA-OAEP", "value": 7}):
                expect_error(call("POST", wrap, body), 400, "BadParameter")
            # wrong-length and corrupt ciphertexts
            expect_error(call("POST", unwrap, {"alg": "RSA-OAEP", "value": b64url(b"x" * 100)}),
                         400, "BadParameter")
            expect_error(call("POST", unwrap, {"alg": "RSA-OAEP", "value": b64url(b"x" * 256)}),
                         400, "BadParameter")
            # the key still works and is unchanged
            st, _, body = call("GET", f"/keys/base?{API}")
            eq(json.loads(body)["key"]["n"], base["key"]["n"])

        @runner.test
        def key_ops_are_enforced():
            st, _, body = call("POST", f"/keys/signer/create?{API}",
                               {"kty": "RSA", "key_ops": ["sign", "verify"]})
            eq(st, 200, body)
            err = expect_error(call("POST", f"/keys/signer//wrapkey?{API}",
                                    {"alg": "RSA-OAEP", "value": b64url(b"k" * 32)}),
                               403, "Forbidden", "KeyOperationForbidden")
            check("wrapKey" in err["message"], err["message"])

        @runner.test
        def key_ops_keep_the_clients_order():
            # Key Vault answers key_ops in the order they were sent (the REST specification's
            # UpdateKey example: ["decrypt","encrypt"] back as sent), and Terraform's azurerm
            # keeps key_opts as an ordered list: an answer in another order is a change in
            # every plan. This is the order of its documentation's example; kvmock's own
            # order, of a key made without key_ops, is encrypt, decrypt, sign, verify,
            # wrapKey, unwrapKey.
            tf = ["decrypt", "encrypt", "sign", "unwrapKey", "verify", "wrapKey"]

            def ops_of(resp, what):
                st, _, body = resp
                eq(st, 200, f"{what}: {body[:300]!r}")
                return json.loads(body)["key"]["key_ops"]

            st, _, body = call("POST", f"/keys/ordered/create?{API}", {"kty": "RSA", "key_ops": tf})
            eq(st, 200, body)
            first = json.loads(body)
            eq(first["key"]["key_ops"], tf, "create")
            v1 = first["key"]["kid"].rsplit("/", 1)[1]
            eq(ops_of(call("GET", f"/keys/ordered?{API}"), "get"), tf, "get")
            eq(ops_of(call("GET", f"/keys/ordered/{v1}?{API}"), "get the version"), tf,
               "get the version")
            # a rotation's new version keeps them
            rotated = ops_of(call("POST", f"/keys/ordered/rotate?{API}"), "rotate")
            eq(rotated, tf, "rotate")
            st, _, body = call("GET", f"/keys/ordered?{API}")
            v2 = json.loads(body)["key"]["kid"].rsplit("/", 1)[1]
            check(v2 != v1, "rotate made a version")
            eq(json.loads(body)["key"]["key_ops"], tf, "the rotated version")
            # backup, delete, purge, restore: every version as it was
            st, _, body = call("POST", f"/keys/ordered/backup?{API}")
            eq(st, 200, body)
            blob = json.loads(body)["value"]
            eq(ops_of(call("DELETE", f"/keys/ordered?{API}"), "delete"), tf, "delete")
            eq(ops_of(call("GET", f"/deletedkeys/ordered?{API}"), "deleted key"), tf,
               "deleted key")
            eq(call("DELETE", f"/deletedkeys/ordered?{API}")[0], 204, "purge")
            eq(ops_of(call("POST", f"/keys/restore?{API}", {"value": blob}), "restore"), tf,
               "restore")
            for v in (v1, v2):
                eq(ops_of(call("GET", f"/keys/ordered/{v}?{API}"), "restored version"), tf,
                   f"restored version {v}")
            # PATCH: the new key_ops, in their order, and none of the old order left
            eq(ops_of(call("PATCH", f"/keys/ordered?{API}", {"key_ops": ["wrapKey", "unwrapKey"]}),
                      "update"), ["wrapKey", "unwrapKey"], "update")
            eq(ops_of(call("GET", f"/keys/ordered?{API}"), "get"), ["wrapKey", "unwrapKey"],
               "after the update")
            # a duplicate is answered once, where it first came
            eq(ops_of(call("PATCH", f"/keys/ordered/{v2}?{API}",
                           {"key_ops": ["unwrapKey", "wrapKey", "unwrapKey"]}), "update"),
               ["unwrapKey", "wrapKey"], "update with a duplicate")
            eq(ops_of(call("GET", f"/keys/ordered/{v1}?{API}"), "the other version"), tf,
               "the other version keeps its own")
            eq(ops_of(call("POST", f"/keys/dup/create?{API}",
                           {"kty": "EC", "key_ops": ["verify", "sign", "verify"]}), "create"),
               ["verify", "sign"], "create with a duplicate")
            # an import keeps its JWK's order
            st, _, body = call("PUT", f"/keys/ordered-aes?{API}",
                               {"key": {"kty": "oct", "k": b64url(os.urandom(32)),
                                        "key_ops": ["unwrapKey", "encrypt", "wrapKey", "decrypt"]}})
            eq(st, 200, body)
            eq(json.loads(body)["key"]["key_ops"], ["unwrapKey", "encrypt", "wrapKey", "decrypt"],
               "import")
            # the checks are the set's: an operation left out is still refused
            expect_error(call("POST", f"/keys/dup//wrapkey?{API}",
                              {"alg": "RSA-OAEP", "value": b64url(b"k" * 32)}),
                         403, "Forbidden", "KeyOperationForbidden")
            # a key made without key_ops answers its kty's default in kvmock's order
            eq(base["key"]["key_ops"], ["encrypt", "decrypt", "sign", "verify", "wrapKey",
                                        "unwrapKey"], "the default")

        @runner.test
        def aes_answers_are_managed_hsms():
            # The key, iv, plaintext and ciphertexts of the Python SDK's recorded
            # test_symmetric_encrypt_and_decrypt against Managed HSM (api-version
            # 2025-07-01): A256CBC fills the plaintext with zero bytes to whole blocks, the
            # answers carry aad only for a GCM encryption, and a decryption answers kid and
            # value alone.
            k = unb64url("4n7QyEUSu9VbavQ00jfBH-ujEYcPgPLC4zZCYPMcgsg")
            pt = (b"5063e6aaa845f150200547944fd199679c98ed6f99da0a0b2dafeaf1f4684496fd532c1c22"
                  b"9968cb9dee44957fcef7ccef59ceda0b362e56bcd78fd3faee5781c623c0bb22b35beabde0"
                  b"664fd30e0e824aba3dd1b0afffc4a3d955ede20cf6a854d52cfd")
            iv, aad = "ibitv7BzReNZiTKgnFF0QQ", b64url(b"test")
            cbc_ct = ("LMKuK63LOzPyZzk-GMl79Lciw-LNxXt5H9zA7ZTgfpIHvM5_XY9h8q0ils-y85LvB-Bj8jx7KmDA"
                      "acxkXIXxrdhHz7c5URCoOh0HrwXW7QqBVnWarK4D04X_2KG2otO0DFTFfuVcs3flnFUF2bAEujPb"
                      "3SA5FHlBLPhDge4elcbWn3XXtJVOzCian2Z3O04xyI_QAZp8Ds4K4XSHtU_P238YWRvcNc399qEY"
                      "ptrlWjHNxxFxxAC4Hc44pAGus3cCJfUmfl8S8IDlUyQKOpqmtA")
            gcm_ct = ("Ah24klwuVjMHHg3zN20nJ02Y103zBVk_MfeETBZN2GIQMRbWt_SW4KVxU2n1aolCDjLppqjzsiHj"
                      "UQCsAota0o_MXB1VdIIYfyhl-U8JfNVr82UM0vDbI4Lw6Adacku9Cxvar_47ciL0P-h574S7mEOf"
                      "qPFaGtjPOkq3jnzxKBQ-MV5aJumm6L2ItXeTuRQ_8qw4ECz5t4yKTwPqEg_VdKAFt09jiVuRlCNu"
                      "aWz2R3GJfMHvvsWgPSQ6fzPXbedSNuGRmjHlVRs")
            st, _, body = call("PUT", f"/keys/aes256?{API}",
                               {"key": {"kty": "oct", "k": b64url(k),
                                        "key_ops": ["encrypt", "decrypt", "wrapKey", "unwrapKey"]}})
            eq(st, 200, body)
            kid = json.loads(body)["key"]["kid"]
            enc, dec = f"/keys/aes256//encrypt?{API}", f"/keys/aes256//decrypt?{API}"

            st, _, body = call("POST", enc, {"alg": "A256CBC", "value": b64url(pt), "iv": iv,
                                             "aad": aad})
            eq(st, 200, body)
            eq(json.loads(body), {"kid": kid, "iv": iv, "value": cbc_ct})
            st, _, body = call("POST", dec, {"alg": "A256CBC", "value": cbc_ct, "iv": iv})
            eq((st, json.loads(body)), (200, {"kid": kid, "value": b64url(pt + bytes(8))}))

            st, _, body = call("POST", enc, {"alg": "A256CBCPAD", "value": b64url(pt),
                                             "iv": iv, "aad": aad})
            eq(st, 200, body)
            # the same blocks but the last, which holds PKCS#7 padding
            eq(json.loads(body), {"kid": kid, "iv": iv,
                                  "value": cbc_ct[:256] + "iqWw_oS3hdD48u_EhIUSvg"})

            st, _, body = call("POST", dec, {"alg": "A256GCM", "value": gcm_ct,
                                             "iv": "g7R9Hdi2pUxlAUMX",
                                             "tag": "gGCZjvAWmsqHBw9M537kAQ", "aad": aad})
            eq((st, json.loads(body)), (200, {"kid": kid, "value": b64url(pt)}))
            st, _, body = call("POST", enc, {"alg": "A256GCM", "value": b64url(pt), "aad": aad})
            eq(st, 200, body)
            doc = json.loads(body)
            eq((sorted(doc), doc["aad"]), (["aad", "iv", "kid", "tag", "value"], aad))

        @runner.test
        def a_digest_of_the_wrong_length_is_key_vaults_error():
            # Key Vault's words, as its users quote them
            st, _, body = call("POST", f"/keys/ec256/create?{API}", {"kty": "EC", "crv": "P-256"})
            eq(st, 200, body)
            for name, alg, n, want in (("base", "RS256", 10, 32), ("base", "PS512", 32, 64),
                                       ("ec256", "ES256", 44, 32)):
                err = expect_error(call("POST", f"/keys/{name}//sign?{API}",
                                        {"alg": alg, "value": b64url(b"d" * n)}),
                                   400, "BadParameter")
                eq(err["message"], f"Invalid length of 'value': {n} bytes. {alg} requires "
                                   f"{want} bytes, encoded with base64url.")

        @runner.test
        def expired_token_after_the_clock_moves():
            tok = kv.token()
            eq(call("GET", f"/keys?{API}", token=tok)[0], 200)
            kv.advance_clock(3601)
            expect_error(call("GET", f"/keys?{API}", token=tok), 401, "Unauthorized")
            eq(call("GET", f"/keys?{API}", token=kv.token())[0], 200)

        def raw(request, wait_for=b"\r\n\r\n", more=None):
            """Send @request on a fresh connection to the HTTP port; return what came
            back by the end of the headers (and, with @more, after sending it)."""
            s = socket.create_connection(("127.0.0.1", kv.http_port), timeout=5)
            try:
                s.sendall(request)
                got = b""
                while wait_for not in got:
                    chunk = s.recv(65536)
                    if not chunk:
                        break
                    got += chunk
                if more is not None:
                    s.sendall(more)
                s.settimeout(0.3)  # anything more the server sent with it
                try:
                    while True:
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        got += chunk
                except socket.timeout:
                    pass
                return got
            finally:
                s.close()

        @runner.test
        def head_expect_and_loopback_only_endpoints():
            # HEAD: the headers of the GET, no body (RFC 9110 9.3.2), also for an error
            for path, status in ((b"/healthz", b"200"), (b"/nowhere", b"404")):
                got = raw(b"HEAD " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head, _, rest = got.partition(b"\r\n\r\n")
                check(head.startswith(b"HTTP/1.1 " + status), got)
                check(b"Content-Length: " in head, head)
                eq(rest, b"", path)
            # Expect: 100-continue: the interim answer comes before the body is sent
            body = b'{"advanceSeconds": 0}'
            got = raw(b"POST /admin/clock HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                      b"application/json\r\nExpect: 100-continue\r\nContent-Length: "
                      + str(len(body)).encode() + b"\r\n\r\n", more=body)
            check(got.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200"), got[:200])
            # the loopback-only endpoints refuse what a web page of another site can send:
            # a cross-site Origin, Sec-Fetch-Site: cross-site, a Host that is not loopback
            # (a DNS name rebound to 127.0.0.1); curl's requests and kvmock's own page pass
            clock = b"POST /admin/clock HTTP/1.1\r\nContent-Length: " + str(len(body)).encode()
            for extra, status in (
                    (b"Host: 127.0.0.1\r\n", b"200"),
                    (b"Host: localhost:8080\r\nOrigin: http://localhost:8080\r\n", b"200"),
                    (b"Host: 127.0.0.1\r\nOrigin: https://evil.example\r\n", b"403"),
                    (b"Host: 127.0.0.1\r\nOrigin: null\r\n", b"403"),
                    (b"Host: 127.0.0.1\r\nSec-Fetch-Site: cross-site\r\n", b"403"),
                    (b"Host: attacker.example:8080\r\n", b"403")):
                got = raw(clock + b"\r\n" + extra + b"Content-Type: text/plain\r\n\r\n" + body)
                check(got.startswith(b"HTTP/1.1 " + status), (extra, got[:300]))
            for host, status in ((b"127.0.0.1", b"200"), (b"rebound.example", b"403")):
                got = raw(b"GET /ui/api/state HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
                check(got.startswith(b"HTTP/1.1 " + status), (host, got[:300]))

        @runner.test
        def a_body_length_read_two_ways_is_refused_and_the_connection_closed():
            # RFC 9112 sections 5.1 and 6.3. Each request's body is a second request; a
            # server that framed the first by one header and a proxy in front that framed
            # it by the other would disagree on where that second request starts.
            inner = b"GET /nowhere HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            n = str(len(inner)).encode()
            chunked = b"0\r\n\r\n" + inner

            def sent(framing, body):
                return raw(b"POST /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing
                           + b"\r\n" + body)

            # the control: a body framed one way only; the second request on the
            # connection is answered as well, so the refusals below can fail
            got = sent(b"Content-Length: 0 \r\n", inner)
            check(got.startswith(b"HTTP/1.1 200") and got.count(b"HTTP/1.1 ") == 2
                  and b"HTTP/1.1 404" in got, got[:600])
            got = sent(b"Transfer-Encoding: chunked\r\n", chunked)
            check(got.count(b"HTTP/1.1 ") == 2 and b"HTTP/1.1 404" in got, got[:600])
            for framing, body in (
                    (b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n", chunked),
                    (b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", chunked),
                    (b"Content-Length: 0\r\nContent-Length: " + n + b"\r\n", inner),
                    (b"Content-Length: 0\r\nContent-Length: 0\r\n", inner),
                    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", chunked),
                    (b"Content-Length : 0\r\n", inner),
                    (b"Content-Length: +0\r\n", inner),
                    (b"Content-Length: 0x\r\n", inner),
                    (b"Content-Length:  0, 0\r\n", inner)):
                got = sent(framing, body)
                check(got.startswith(b"HTTP/1.1 4"), (framing, got[:300]))
                head = got.partition(b"\r\n\r\n")[0]
                check(b"Connection: close" in head, (framing, head))
                eq(got.count(b"HTTP/1.1 "), 1, (framing, got[:600]))

        @runner.test
        def identity_endpoints():
            st, _, body = kv.http("GET", "/msi/token?api-version=2019-08-01&resource=https://vault.azure.net",
                                  headers={"X-IDENTITY-HEADER": kv.identity_header})
            eq(st, 200)
            doc = json.loads(body)
            check("message" not in doc)
            for f in ("access_token", "expires_on", "expires_in", "resource", "token_type", "client_id"):
                check(f in doc, f)
            check(isinstance(doc["expires_on"], str) and doc["expires_on"].isdigit())
            eq(doc["token_type"], "Bearer")
            st, _, body = kv.http("GET", "/msi/token?api-version=2019-08-01&resource=r",
                                  headers={"X-IDENTITY-HEADER": "wrong"})
            eq(st, 400)
            check("access_token" not in json.loads(body))
            eq(json.loads(body)["error_description"], "The identity header does not match.")
            # Azure ML's endpoint takes GETs: a POST with the right header is told so, not
            # that its header does not match
            for header in ("X-IDENTITY-HEADER", "secret"):
                st, _, body = kv.http("POST", "/msi/token",
                                      b"resource=r&api-version=2017-09-01",
                                      headers={header: kv.identity_header,
                                               "Content-Type": "application/x-www-form-urlencoded"})
                eq((st, json.loads(body)["error_description"]),
                   (400, "A request with an identity header is a GET (App Service, Azure ML); "
                         "a POST is Cloud Shell's, with the header 'Metadata: true'."), header)
            st, _, body = kv.http("GET", "/msi/token?api-version=2019-08-01&resource=r&client_id=nobody",
                                  headers={"X-IDENTITY-HEADER": kv.identity_header})
            eq(st, 400)
            st, _, body = kv.http("GET", "/metadata/identity/oauth2/token?resource=r")
            eq(st, 400)
            eq(json.loads(body), {"error": "invalid_request",
                                  "error_description": "Required metadata header not specified"})
            for path in ("/metadata/identity/oauth2/token/", "/METADATA/identity/oauth2/token"):
                st, _, _ = kv.http("GET", path + "?api-version=2018-02-01&resource=r",
                                   headers={"Metadata": "true"})
                eq(st, 200, path)
            st, _, body = kv.http("GET", "/healthz")
            eq(st, 200)
            st, _, body = kv.http("GET", "/ca.pem")
            eq(st, 200)
            check(body.startswith(b"-----BEGIN CERTIFICATE-----"))
            with open(kv.ca_path, "rb") as f:
                eq(f.read(), body)

        @runner.test
        def lifecycle_refusals_change_nothing():
            cmk = f"cmk.vault.localhost:{P}"
            tok = kv.token(f"https://vault.localhost:{P}")

            def c(method, path, body=None):
                return call(method, f"{path}?{API}", body, host=cmk, token=tok)

            eq(c("POST", "/keys/disk/create", {"kty": "RSA"})[0], 200)
            st, _, body = c("POST", "/keys/disk/backup")
            eq(st, 200)
            disk_backup = json.loads(body)["value"]
            st, _, body = c("DELETE", "/keys/disk")
            eq(st, 200)
            deleted = json.loads(body)
            eq(deleted["recoveryId"], f"https://{cmk}/deletedkeys/disk")
            eq(deleted["scheduledPurgeDate"] - deleted["deletedDate"], 7 * 86400)
            eq(deleted["attributes"]["recoveryLevel"], "CustomizedRecoverable")
            eq(deleted["attributes"]["recoverableDays"], 7)
            # purge refused under purge protection; still deleted afterwards
            # Key Vault's answer: no innererror, the vault and its region on a second line
            err = expect_error(c("DELETE", "/deletedkeys/disk"), 403, "Forbidden")
            eq(err["message"], 'Operation "purge" is not allowed because purge protection is '
               'enabled for this vault. Key Vault service will automatically purge it after the '
               'retention period has passed.\r\nVault: cmk;location=local')
            eq(c("GET", "/deletedkeys/disk")[0], 200)
            # name reuse refused; still deleted afterwards
            reused = ("Key disk is currently in a deleted but recoverable state, and its name "
                      "cannot be reused; in this state, the key can only be recovered or purged.")
            err = expect_error(c("POST", "/keys/disk/create", {"kty": "RSA"}), 409, "Conflict",
                               "ObjectIsDeletedButRecoverable")
            eq(err["message"], reused)
            # a restore names the key of its blob the same way
            err = expect_error(c("POST", "/keys/restore", {"value": disk_backup}), 409,
                               "Conflict", "ObjectIsDeletedButRecoverable")
            eq(err["message"], reused)
            expect_error(c("GET", "/keys/disk"), 404, "KeyNotFound")
            eq(c("GET", "/deletedkeys/disk")[0], 200)
            # operations on what is not deleted / not there
            expect_error(c("POST", "/deletedkeys/nosuch/recover"), 404, "KeyNotFound")
            expect_error(c("DELETE", "/keys/nosuch"), 404, "KeyNotFound")
            # recover, then a disabled key refuses operations but reads fine
            eq(c("POST", "/deletedkeys/disk/recover")[0], 200)
            eq(c("PATCH", "/keys/disk", {"attributes": {"enabled": False}})[0], 200)
            expect_error(c("POST", "/keys/disk//wrapkey", {"alg": "RSA-OAEP", "value": b64url(b"k" * 32)}),
                         403, "Forbidden", "KeyDisabled")
            st, _, body = c("GET", "/keys/disk")
            eq(st, 200)
            eq(json.loads(body)["attributes"]["enabled"], False)
            # backup: restore over the live key conflicts; a corrupt blob is 400
            st, _, body = c("POST", "/keys/disk/backup")
            eq(st, 200)
            blob = json.loads(body)["value"]
            expect_error(c("POST", "/keys/restore", {"value": blob}), 409, "Conflict")
            expect_error(c("POST", "/keys/restore", {"value": blob[:-4] + "AAAA"}), 400, "BadParameter")
            expect_error(c("POST", "/keys/restore", {"value": "!!"}), 400, "BadParameter")
            # a rotation policy under 28 days is refused and the old one stays
            expect_error(c("PUT", "/keys/disk/rotationpolicy", {"attributes": {"expiryTime": "P27D"}}),
                         400, "BadParameter")
            st, _, body = c("GET", "/keys/disk/rotationpolicy")
            eq(st, 200)
            eq(json.loads(body)["lifetimeActions"],
               [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}])
            # import of an inconsistent JWK: 400, nothing stored
            jwk = {"kty": "RSA", "n": base["key"]["n"], "e": "AQAB", "d": "AQAB", "p": "AQAB",
                   "q": "AQAB", "dp": "AQAB", "dq": "AQAB", "qi": "AQAB"}
            expect_error(c("PUT", "/keys/imp", {"key": jwk}), 400, "BadParameter")
            expect_error(c("GET", "/keys/imp"), 404, "KeyNotFound")
            # purge happens by itself once the clock passes the scheduled date
            eq(c("DELETE", "/keys/disk")[0], 200)
            kv.advance_clock(8 * 86400)
            tok2 = kv.token(f"https://vault.localhost:{P}")
            st, _, _ = call("GET", f"/deletedkeys/disk?{API}", host=cmk, token=tok2)
            eq(st, 404)

        @runner.test
        def metrics_and_request_logs():
            st, hdrs, body = kv.http("GET", "/metrics")
            eq(st, 200)
            check(hdrs["content-type"].startswith("text/plain"), hdrs["content-type"])
            text = body.decode()
            check('kvmock_requests_total{operation="KeyCreate",status="200"}' in text, text[:500])
            check('kvmock_keys{vault="default",state="live"}' in text)
            # the latency histogram resolves below a millisecond: its bounds from 100 µs,
            # counts that only grow, and a sum in microseconds
            hist = [l.split() for l in text.splitlines()
                    if l.startswith("kvmock_request_duration_seconds")]
            bounds = [h[0].split('le="')[1].rstrip('"}') for h in hist if "_bucket" in h[0]]
            eq(bounds, ["0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01",
                        "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf"])
            counts = [int(h[1]) for h in hist if "_bucket" in h[0]]
            eq(counts, sorted(counts))
            total = {h[0]: float(h[1]) for h in hist if "_bucket" not in h[0]}
            eq(total["kvmock_request_duration_seconds_count"], float(counts[-1]))
            check(0 < total["kvmock_request_duration_seconds_sum"] < counts[-1] * 2.5, total)
            check("kvmock_lmdb_map_used_bytes" in text and "kvmock_lmdb_map_size_bytes" in text)
            for reason in ("full", "other"):  # no write failed here
                check(f'kvmock_store_commit_failures_total{{reason="{reason}"}} 0\n' in text,
                      f"commit failures ({reason}) in:\n{text[-1500:]}")
            gauges = {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
                      if l.startswith("kvmock_audit_queue_")}
            # a server this lightly used has queued some records, never filled the queue
            check(gauges.get("kvmock_audit_queue_bytes", 0) > 0, gauges)
            eq(gauges.get("kvmock_audit_queue_waits_total"), 0.0)
            check(gauges.get("kvmock_audit_queue_records", -1) >= 0, gauges)
            live = [l for l in text.splitlines() if l.startswith('kvmock_keys{vault="default",state="live"}')]
            eq(int(live[0].split()[-1]), len(key_names()))
            # every vault has its gauges, however many there are (names are read a page of
            # 256 at a time): another kvmock with 600
            many = [f"m{i:03d}" for i in range(600)]
            with Kvmock(args.kvmock, config={"vaults": [{"name": n} for n in many]}) as other:
                st, _, body = other.http("GET", "/metrics")
                eq(st, 200)
                got = [l.split('"')[1] for l in body.decode().splitlines()
                       if l.startswith("kvmock_keys{") and 'state="live"' in l]
                eq((len(got), got[:2], got[-2:]), (600, many[:2], many[-2:]))
                eq(got, many)
            # one JSON line per request, with no token or key material in it
            tok = kv.token()
            eq(call("GET", f"/keys/base?{API}", token=tok)[0], 200)
            with open(kv.log_path, encoding="utf-8", errors="replace") as f:
                lines = [json.loads(l) for l in f if l.startswith("{")]
            reqs = [l for l in lines if l.get("msg") == "request"]
            check(reqs, "request lines are logged")
            last = [l for l in reqs if l.get("route") == "/keys/{name}"][-1]
            for field in ("method", "route", "status", "latency_ms", "vault", "oid", "request_id"):
                check(field in last, field)
            eq(last["status"], 200)
            with open(kv.log_path, encoding="utf-8", errors="replace") as f:
                log = f.read()
            check(tok.split(".")[2] not in log, "no token signature in the log")
            check(base["key"]["n"] not in log, "no key material in the log")

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
