"""The answer on the wire and the audit writer, against a running kvmock.

- Every answer is one well-formed HTTP/1.1 message with Key Vault's headers;
  keep-alive follows the client (many requests on one connection, Connection:
  close, HTTP/1.0), bodies of every size arrive whole.
- A verified token's claims are cached, but every check still runs on every
  request: a token used once is refused after it expires and for another audience.
- Audit records: a state change's record is committed before its answer (the
  LMDB file holds it while the server runs), after the records of the calls
  answered before it, so the log is in answer order; a read's record is in /admin/audit
  as soon as the read was answered; records queued at SIGTERM are committed;
  --audit-max keeps only the newest records. The client's x-ms-client-request-id is
  echoed and is the record's correlationId, as in Key Vault.
- --sync none and data still keep every acknowledged write when kvmock is killed.
"""
import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, TENANT, APP, OBJECT_ID_CLAIM, caller_oid  # noqa: E402

API = "api-version=7.4"
LIMITED = {"name": "limited", "objectId": "0a000000-0000-4000-8000-0000000000b2",
           "clientId": "0c000000-0000-4000-8000-0000000000b2"}


def claims(token):
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def read_response(f):
    """One HTTP response from a buffered socket file: (status line, headers, body)."""
    status = f.readline().decode().rstrip("\r\n")
    headers = {}
    for line in iter(f.readline, b"\r\n"):
        check(line.endswith(b"\r\n"), f"header line ends with CRLF: {line!r}")
        name, _, value = line.decode().rstrip("\r\n").partition(":")
        check(name.lower() not in headers, f"header {name} sent once")
        headers[name.lower()] = value.strip()
    body = f.read(int(headers["content-length"]))
    return status, headers, body


def audit_ops(kv):
    """(operationName, httpStatusCode, key id) of every record, through the server ("" for
    a record of no one object, which has no id)."""
    return [(r["operationName"], r["properties"]["httpStatusCode"], r["properties"].get("id", ""))
            for r in kv.audit_records()]


def audit_ops_since(kv, first):
    """The records after the first `first` ones, through the server (queued ones included)."""
    return kv.audit_records()[first:]


def audit_lines(kv):
    """The audit table as `kvmock audit` reads it from the LMDB file."""
    out = subprocess.run([kv.binary, "audit", "--data", kv.data_dir], check=True,
                         capture_output=True, text=True).stdout.splitlines()
    return [json.loads(line) for line in out]


def main():
    args = parse_args()
    runner = Runner()
    with Kvmock(args.kvmock, config={"tenantId": TENANT, "identities": [APP, LIMITED]}) as kv:
        token = kv.token()
        host = f"default.vault.localhost:{kv.https_port}"

        def tls_socket():
            ctx = kv.ssl_context()
            sock = socket.create_connection(("127.0.0.1", kv.https_port), timeout=30)
            return ctx.wrap_socket(sock, server_hostname="default.vault.localhost")

        def request(method, path, body=b"", version="HTTP/1.1", extra=""):
            return (f"{method} {path} {version}\r\nHost: {host}\r\n"
                    f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
                    f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body

        st, _, body = kv.https("POST", f"/keys/wire/create?{API}", {"kty": "RSA"}, host=host,
                               token=token)
        eq(st, 200, f"create: {body[:200]!r}")
        kid = json.loads(body)["key"]["kid"]

        @runner.test
        def one_connection_many_answers():
            s = tls_socket()
            f = s.makefile("rb")
            big = base64.urlsafe_b64encode(os.urandom(190)).rstrip(b"=").decode()
            ids = []
            for i in range(50):
                # alternate small answers, errors (with the challenge) and larger bodies
                if i % 5 == 4:
                    s.sendall(request("GET", f"/keys/wire?{API}").replace(
                        f"Bearer {token}".encode(), b"Bearer x.y.z"))
                    status, h, body = read_response(f)
                    eq(status, "HTTP/1.1 401 Unauthorized")
                    check(h["www-authenticate"].startswith('Bearer authorization="https://'),
                          h.get("www-authenticate"))
                    eq(h["connection"], "keep-alive")
                    ids.append(h["x-ms-request-id"])
                    continue
                wrap = json.dumps({"alg": "RSA-OAEP", "value": big}).encode()
                s.sendall(request("POST", f"/keys/wire/{kid.rsplit('/', 1)[1]}/wrapkey?{API}",
                                  wrap) if i % 2 else request("GET", f"/keys/wire?{API}"))
                status, h, body = read_response(f)
                eq(status, "HTTP/1.1 200 OK", body[:200])
                eq(h["content-type"], "application/json; charset=utf-8")
                eq(h["cache-control"], "no-cache")
                eq(h["x-ms-keyvault-service-version"], "kvmock")
                eq(h["x-ms-keyvault-region"], "local")  # a vault of the file
                ids.append(h["x-ms-request-id"])
                eq(h["connection"], "keep-alive")
                check(h["date"].endswith(" GMT"), h["date"])
                doc = json.loads(body)
                eq(doc["kid"] if i % 2 else doc["key"]["kid"], kid)
            s.close()
            # request ids: version-4 UUIDs (RFC 9562 section 5.4), one per answer
            uuid4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
            for rid in ids:
                check(uuid4.match(rid), f"x-ms-request-id {rid!r} is a version-4 UUID")
            eq(len(set(ids)), len(ids), "every answer has its own request id")

        @runner.test
        def big_answer_arrives_whole():
            s = tls_socket()
            f = s.makefile("rb")
            s.sendall(request("POST", f"/keys/wire/backup?{API}"))
            status, h, body = read_response(f)
            eq(status, "HTTP/1.1 200 OK")
            eq(len(body), int(h["content-length"]))
            check(len(json.loads(body)["value"]) > 1000, "a backup blob")
            s.close()

        @runner.test
        def connection_close_and_http10_close():
            for version, extra in (("HTTP/1.1", "Connection: close\r\n"), ("HTTP/1.0", "")):
                s = tls_socket()
                f = s.makefile("rb")
                s.sendall(request("GET", f"/keys/wire?{API}", version=version, extra=extra))
                status, h, body = read_response(f)
                check(status.endswith(" 200 OK"), status)
                eq(h["connection"], "close", version)
                eq(f.read(), b"", "the server closed the connection")
                s.close()

        @runner.test
        def a_request_civetweb_cannot_parse_is_not_echoed():
            # a request line with spaces in the URI and a lone CR: the answer's status line
            # once echoed the unparsed rest of the request, CR LF and headers included
            # (tests/fuzz/RESULTS.md F6); a version civetweb does not speak is echoed no more
            for raw, code in ((b'GET /keys/w"RSA", "k": 2048 HTTP/1.1\r\x95X-Evil: 1\r\n', 400),
                              (b"GET /keys/wire HTTP/1.333000000\r\n", 505)):
                s = tls_socket()
                f = s.makefile("rb")
                s.sendall(raw + f"Host: {host}\r\nX-Echo: no\r\n\r\n".encode())
                # civetweb's own error answer: no Content-Length, the body runs to the close
                status = f.readline().decode(errors="replace").rstrip("\r\n")
                h = dict(line.decode(errors="replace").rstrip("\r\n").lower().split(": ", 1)
                         for line in iter(f.readline, b"\r\n"))
                body = f.read()
                check(status.startswith(f"HTTP/1.1 {code} "), status)
                check(not {"x-echo", "x-evil", "host"} & set(h), h)
                eq(h.get("connection"), "close")
                check(body.startswith(f"Error {code}".encode()), body[:100])
                s.close()

        @runner.test
        def cached_token_is_still_checked():
            t = kv.token()
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=t)[0], 200)
            # the same (now cached) token for a resource it was not issued for
            other = kv.https("GET", f"/keys/wire?{API}", host=host,
                             token=kv.token(resource="https://management.azure.com"))
            eq(other[0], 401, "a token for another audience")
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=t)[0], 200, "cached again")
            kv.advance_clock(claims(t)["exp"] - int(time.time()) + 60)
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=t)[0], 401,
               "a cached token past its expiry")
            nonlocal token
            token = kv.token()
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=token)[0], 200)

        @runner.test
        def state_change_is_committed_before_its_answer():
            st, _, _ = kv.https("POST", f"/keys/committed/create?{API}", {"kty": "EC"},
                                host=host, token=token)
            eq(st, 200)
            # read from the LMDB file directly, not through the server (no flush)
            ops = [(r["operationName"], r["properties"].get("id", "")) for r in audit_lines(kv)]
            check(any(op == "KeyCreate" and rid.endswith("/keys/committed") for op, rid in ops),
                  "the create's record is in the file when its answer arrives")

        @runner.test
        def state_changes_are_recorded_once_with_the_status_answered():
            # a change's record commits with the change (ks_txn_attach); a refused change
            # and one answering another status than 200 (a purge: 204) are recorded as answered
            calls = [("POST", f"/keys/once/create?{API}", {"kty": "EC"}, 200, "KeyCreate"),
                     ("POST", f"/keys/once/create?{API}", {"kty": "EC", "crv": "P-7"}, 400,
                      "KeyCreate"),
                     ("PATCH", f"/keys/once?{API}", {"attributes": {"enabled": False}}, 200,
                      "KeyUpdate"),
                     ("DELETE", f"/keys/once?{API}", None, 200, "KeyDelete"),
                     ("DELETE", f"/deletedkeys/once?{API}", None, 204, "KeyPurge"),
                     ("DELETE", f"/deletedkeys/once?{API}", None, 404, "KeyPurge")]
            before = len(audit_lines(kv))
            for method, path, body, want, _ in calls:
                st, hdrs, _ = kv.https(method, path, body, host=host, token=token)
                eq(st, want, f"{method} {path}")
                # RFC 9110 8.6: a 204 carries no Content-Length
                eq("content-length" in hdrs, want != 204, (method, path, hdrs))
            got = [(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in audit_ops_since(kv, before)
                   if r["properties"].get("id", "").endswith(
                       ("/keys/once", "/deletedkeys/once"))]
            # once each, in the order answered: a refusal's record is queued and a change's
            # commits with the change, after the records queued before it
            eq(got, [(op, want) for _, _, _, want, op in calls])

        @runner.test
        def a_grant_comes_after_the_refusals_before_it():
            # lab 5's revocation window: refusals of one identity, then at once (well within
            # the writer's 100 ms) a management change and a data-plane change; the log keeps
            # the order answered, read both through the server and from the file
            other = kv.token(client_id=LIMITED["clientId"])
            mtok = kv.token("https://management.azure.com")
            marks = []
            for i in range(3):
                eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=other)[0], 403)
                entry = {"tenantId": TENANT, "objectId": LIMITED["objectId"],
                         "permissions": {"keys": ["list"]}}
                st, _, body = kv.https(
                    "PUT", f"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/"
                    f"default/accessPolicies/{'add' if i % 2 == 0 else 'remove'}?api-version=2023-07-01",
                    {"properties": {"accessPolicies": [entry]}}, token=mtok)
                eq(st, 200, body)
                eq(kv.https("POST", f"/keys/wire-order-{i}/create?{API}", {"kty": "EC"},
                            host=host, token=other)[0], 403)
                eq(kv.https("POST", f"/keys/wire-order-{i}/create?{API}", {"kty": "EC"},
                            host=host, token=token)[0], 200)
                marks.append(f"/keys/wire-order-{i}")
            want = []
            for i in range(3):
                want += [("KeyGet", 403), ("VaultAccessPolicyUpdate", 200), ("KeyCreate", 403),
                         ("KeyCreate", 200)]
            for records in (kv.audit_records(), audit_lines(kv)):
                got = [(r["operationName"], r["properties"]["httpStatusCode"]) for r in records
                       if caller_oid(r) == LIMITED["objectId"]
                       or r["operationName"] == "VaultAccessPolicyUpdate"
                       or any(m in r["properties"].get("id", "") for m in marks)]
                eq(got[-12:], want)

        @runner.test
        def records_carry_key_vaults_fields_and_forms():
            # Key Vault's AuditEvent records as a storage account or an event hub receives
            # them (learn.microsoft.com/azure/key-vault/general/logging and records quoted
            # from real vaults): resourceId is the vault's ARM id in capitals, operationVersion
            # the api-version asked for, durationMs a string, requestUri the URL with its
            # query, resultSignature the status's reason phrase, resultType "Success" for an
            # answered refusal too, and resultDescription the error's message
            sub = "00000000-0000-0000-0000-000000000000"

            def last():
                return kv.audit_records()[-1]

            st, _, _ = kv.https("GET", f"/keys/wire?{API}", host=host, token=token)
            eq(st, 200)
            r = last()
            eq(r["resourceId"], f"/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/KVMOCK/PROVIDERS/"
                                "MICROSOFT.KEYVAULT/VAULTS/DEFAULT")
            eq((r["operationName"], r["operationVersion"], r["resultType"], r["resultSignature"]),
               ("KeyGet", "7.4", "Success", "OK"))
            check(isinstance(r["durationMs"], str) and r["durationMs"].isdigit(), r["durationMs"])
            check("resultDescription" not in r, r)
            check(r["properties"]["requestUri"].endswith(f"/keys/wire?{API}"), r["properties"])
            eq(r["properties"]["isAccessPolicyMatch"], True)
            check("isRbacAuthorized" not in r["properties"], r["properties"])
            # the caller as kvmock's interface names it: the token's oid, appid and tid
            eq(r["identity"]["claim"],
               {"oid": APP["objectId"], "appid": APP["clientId"], "tid": TENANT})

            st, _, body = kv.https("GET", f"/keys/no-such-key?{API}", host=host, token=token)
            eq(st, 404)
            r = last()
            eq((r["resultType"], r["resultSignature"], r["properties"]["httpStatusCode"]),
               ("Success", "Not Found", 404))
            eq(r["resultDescription"], json.loads(body)["error"]["message"])

            st, _, body = kv.https("POST", f"/keys/wire/create?{API}", {"kty": "XX"}, host=host,
                                   token=token)
            eq(st, 400)
            eq((last()["resultType"], last()["resultSignature"]), ("Success", "Bad Request"))

            other = kv.token(client_id=LIMITED["clientId"])
            st, _, body = kv.https("GET", f"/keys/wire?{API}", host=host, token=other)
            eq(st, 403)
            r = last()
            eq((r["resultType"], r["resultSignature"]), ("Success", "Forbidden"))
            eq(r["resultDescription"], json.loads(body)["error"]["message"])
            eq(r["properties"]["isAccessPolicyMatch"], False)

            st, _, _ = kv.https("GET", f"/keys/wire?api-version=7.5", host=host, token="x.y.z")
            eq(st, 401)
            r = last()
            eq((r["operationName"], r["operationVersion"], r["resultType"], r["resultSignature"]),
               ("Authentication", "7.5", "Success", "Unauthorized"))

            # the management plane: the vault's own group, in capitals
            mtok = kv.token("https://management.azure.com")
            path = ("/subscriptions/" + sub + "/resourceGroups/Wire-RG/providers/"
                    "Microsoft.KeyVault/vaults/wire-rbac")
            check(kv.https("PUT", "/subscriptions/" + sub + "/resourcegroups/Wire-RG"
                           "?api-version=2021-04-01", {"location": "westus2"},
                           token=mtok)[0] in (200, 201))
            st, _, body = kv.https("PUT", f"{path}?api-version=2023-07-01", {
                "location": "westus2", "properties": {
                    "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                    "enableRbacAuthorization": True}}, token=mtok)
            check(st in (200, 201), body)
            r = last()
            eq((r["operationName"], r["operationVersion"], r["resultSignature"]),
               ("VaultPut", "2023-07-01", "Created" if st == 201 else "OK"))
            eq(r["resourceId"], f"/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/WIRE-RG/PROVIDERS/"
                                "MICROSOFT.KEYVAULT/VAULTS/WIRE-RBAC")
            check(r["properties"]["requestUri"].endswith(f"{path}?api-version=2023-07-01"),
                  r["properties"])
            # Resource Manager's record also names the object id by Entra's long claim name
            eq(r["identity"]["claim"], {"oid": APP["objectId"], OBJECT_ID_CLAIM: APP["objectId"],
                                        "appid": APP["clientId"], "tid": TENANT})
            eq(r["properties"]["isAccessPolicyMatch"], True)
            check("isRbacAuthorized" not in r["properties"], r["properties"])

            # an RBAC vault's records say whether a role assignment allowed the call, as
            # Key Vault's isRbacAuthorized and as the interface's isAccessPolicyMatch
            rhost = f"wire-rbac.vault.localhost:{kv.https_port}"
            st, _, body = kv.https("GET", f"/keys?{API}", host=rhost, token=other)
            eq(st, 403, body)
            r = last()
            eq(r["resourceId"], f"/SUBSCRIPTIONS/{sub}/RESOURCEGROUPS/WIRE-RG/PROVIDERS/"
                                "MICROSOFT.KEYVAULT/VAULTS/WIRE-RBAC")
            eq(r["properties"]["isRbacAuthorized"], False)
            eq(r["properties"]["isAccessPolicyMatch"], False)
            reader = "21090545-7ca7-4776-b22c-e363652d74d2"  # Key Vault Reader
            st, _, body = kv.https(
                "PUT", f"{path}/providers/Microsoft.Authorization/roleAssignments/"
                f"{uuid.uuid4()}?api-version=2022-04-01", {"properties": {
                    "roleDefinitionId": f"/subscriptions/{sub}/providers/"
                                        f"Microsoft.Authorization/roleDefinitions/{reader}",
                    "principalId": APP["objectId"], "principalType": "ServicePrincipal"}},
                token=mtok)
            eq(st, 201, body)
            eq(kv.https("GET", f"/keys?{API}", host=rhost, token=token)[0], 200)
            eq((last()["properties"]["isRbacAuthorized"],
                last()["properties"]["isAccessPolicyMatch"]), (True, True))
            # properties.id names the call's object as Key Vault's do: none for a list, the
            # vault's URI for a management call on it, /deletedkeys/ for a deleted key
            check("id" not in r["properties"], r["properties"])
            eq(kv.https("GET", f"{path}?api-version=2023-07-01", token=mtok)[0], 200)
            eq(last()["properties"]["id"], f"https://wire-rbac.vault.localhost:{kv.https_port}/")
            eq(kv.https("GET", f"/deletedkeys/wire?{API}", host=host, token=token)[0], 404)
            eq(last()["properties"]["id"], f"https://{host}/deletedkeys/wire")
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=token)[0], 200)
            eq(last()["properties"]["id"], f"https://{host}/keys/wire")

        @runner.test
        def read_record_is_there_once_answered():
            for _ in range(3):
                eq(kv.https("GET", f"/keys/committed?{API}", host=host, token=token)[0], 200)
                ops = audit_ops(kv)
                eq(ops[-1][:2], ("KeyGet", 200), "the last record is the get just answered")

        @runner.test
        def audit_record_escapes_what_the_client_sent():
            s = tls_socket()
            f = s.makefile("rb")
            s.sendall(request("GET", f'/keys/q"u\\ote?{API}'))
            status, _, _ = read_response(f)
            check(status.startswith("HTTP/1.1 404"), status)
            s.close()
            uris = [r["properties"]["requestUri"] for r in kv.audit_records()]
            check(any(u.endswith(f'/keys/q"u\\ote?{API}') for u in uris),
                  f"the record holds the path as sent: {uris[-1]!r}")

        @runner.test
        def client_request_id_is_echoed_and_audited():
            # as Key Vault: the client's x-ms-client-request-id comes back, and the audit
            # record's correlationId is it; kvmock's own id stays in properties.requestId
            mine = "c0ffee00-1111-4222-8333-444455556666"
            st, hdrs, _ = kv.https("GET", f"/keys/committed?{API}", host=host, token=token,
                                   headers={"x-ms-client-request-id": mine,
                                            "User-Agent": "azsdk-python-keyvault-keys/4.x"})
            eq(st, 200)
            eq(hdrs.get("x-ms-client-request-id"), mine, "echoed")
            rec = kv.audit_records()[-1]
            eq(rec["correlationId"], mine, "correlationId")
            eq(rec["properties"]["requestId"], hdrs.get("x-ms-request-id"), "requestId")
            eq(rec["properties"]["clientInfo"], "azsdk-python-keyvault-keys/4.x", "clientInfo")
            # none, or one that is not 1 to 128 visible characters: not echoed, and the
            # record correlates by kvmock's own id
            for bad in (None, "has space", "x" * 129):
                extra = {} if bad is None else {"x-ms-client-request-id": bad}
                st, hdrs, _ = kv.https("GET", f"/keys/committed?{API}", host=host, token=token,
                                       headers=extra)
                eq(st, 200)
                check("x-ms-client-request-id" not in hdrs, f"{bad!r} not echoed: {hdrs}")
                rec = kv.audit_records()[-1]
                eq(rec["correlationId"], hdrs.get("x-ms-request-id"), f"{bad!r}: correlationId")

        runner.run_collected()

        # Reads queued when the server stops are committed before it exits.
        before = len(audit_lines(kv))
        for _ in range(20):
            eq(kv.https("GET", f"/keys/wire?{API}", host=host, token=token)[0], 200)
        kv.stop()
        after = audit_lines(kv)
        runner.run_tests([lambda: eq(len(after), before + 20, "every read audited by the stop")])
        kv.start()

    # --audit-max keeps the newest records, in order, and the file stops growing.
    with Kvmock(args.kvmock, extra_args=["--audit-max", "30"]) as kv:
        token = kv.token()
        host = f"default.vault.localhost:{kv.https_port}"

        @runner.test
        def audit_max_keeps_the_newest():
            eq(kv.https("POST", f"/keys/capped/create?{API}", {"kty": "oct"}, host=host,
                        token=token)[0], 200)
            for i in range(100):
                eq(kv.https("GET", f"/keys/capped/{'x' * (i % 3)}?{API}", host=host,
                            token=token)[0], 200 if i % 3 == 0 else 404)
            ops = audit_ops(kv)
            eq(len(ops), 30, "records kept")
            eq(ops[-1][:2], ("KeyGet", 200), "the newest is the last get")
            eq([op for op, _, _ in ops].count("KeyCreate"), 0, "the oldest are gone")
            size = os.path.getsize(os.path.join(kv.data_dir, "kvmock.mdb"))
            for i in range(300):
                kv.https("GET", f"/keys/capped?{API}", host=host, token=token)
            audit_ops(kv)
            eq(len(audit_ops(kv)), 30)
            # 300 records take ~130 KiB; with the cap the file stays put, give or take
            # the pages a concurrent reader kept from reuse for a moment
            grown = os.path.getsize(os.path.join(kv.data_dir, "kvmock.mdb")) - size
            check(grown <= 48 * 1024, f"pages of dropped records are reused (grew {grown} B)")

        @runner.test
        def a_reader_following_the_log_sees_each_record_once():
            # as the web view follows it, by resumeToken, while the oldest records are
            # dropped (30 kept): each round's page holds that round's 12 records, no more
            seen = []

            def follow(at):
                st, _, body = kv.http("GET", f"/admin/audit?maxresults=1000&$skiptoken={at}")
                eq(st, 200, body)
                doc = json.loads(body)
                eq(doc["nextLink"], None)
                return [r["properties"]["requestId"] for r in doc["value"]], doc["resumeToken"]

            _, at = follow("1")
            for _ in range(3):
                for _ in range(12):
                    kv.https("GET", f"/keys/capped?{API}", host=host, token=token)
                new, at = follow(at)
                eq(len(new), 12, new)
                seen += new
                eq(follow(at), ([], at), "an empty page keeps its token")
            eq(len(set(seen)), 36, "no record twice")

        @runner.test
        def audit_max_is_checked():
            r = subprocess.run([kv.binary, "--audit-max", "-1"], capture_output=True, text=True)
            eq(r.returncode, 2)
            check("--audit-max must be" in r.stderr, r.stderr)
            # an unknown option: the message, then the whole usage (it was cut short)
            r = subprocess.run([kv.binary, "--bogus", "1"], capture_output=True, text=True)
            usage = subprocess.run([kv.binary, "--help"], capture_output=True, text=True).stdout
            eq(r.returncode, 2)
            check(r.stderr.startswith("kvmock: unknown option '--bogus'"), r.stderr)
            check(r.stderr.rstrip().endswith(usage.rstrip()), r.stderr[-300:])

        runner.run_tests(runner.tests[-2:])
    # --sync none: a write is acknowledged before any sync, yet a killed kvmock
    # loses nothing (the kernel holds the pages); only a system crash could.
    for mode in ("none", "data"):
        with Kvmock(args.kvmock, extra_args=["--sync", mode]) as kv:
            host = f"default.vault.localhost:{kv.https_port}"

            def writes_survive_sigkill():
                token = kv.token()
                kids = []
                for i in range(20):
                    st, _, body = kv.https("POST", f"/keys/s{i}/create?{API}", {"kty": "oct"},
                                           host=host, token=token)
                    eq(st, 200, body[:200])
                    kids.append(json.loads(body)["key"]["kid"])
                kv._kill()  # SIGKILL
                kv.start()
                token = kv.token()
                for i, kid in enumerate(kids):
                    st, _, body = kv.https("GET", f"/keys/s{i}?{API}", host=host, token=token)
                    eq((st, json.loads(body)["key"]["kid"]), (200, kid), f"key s{i}")

            writes_survive_sigkill.__name__ = f"sync_{mode}_writes_survive_sigkill"
            runner.run_tests([writes_survive_sigkill])
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
