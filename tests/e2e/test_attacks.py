"""The attack table: hostile raw HTTP(S) against a running kvmock.

Every row sends something an attacker (or a broken client) could send and
checks two things: the request is refused with the expected status, and the
server keeps serving (a good request with a fresh token answers 200 within a
few seconds after each row). At the end the table is printed as Markdown
(attack, what was sent, what came back, verdict); docs/reliability.md keeps a
copy.

Rows that need a restart (tokens of a removed identity, tokens not yet valid)
restart the same server on the same data folder and ports."""
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url  # noqa: E402

API = "api-version=7.4"
MAIN_TENANT = "6b766d6f-636b-4000-8000-000000000001"
OTHER_TENANT = "0badbeef-0000-4000-8000-00000000beef"
APP = {"name": "app", "objectId": "11111111-1111-4111-8111-111111111111",
       "clientId": "11111111-aaaa-4111-8111-111111111111", "default": True}
GUEST = {"name": "guest", "objectId": "22222222-2222-4222-8222-222222222222",
         "clientId": "22222222-aaaa-4222-8222-222222222222", "tenantId": OTHER_TENANT}
TEMP = {"name": "temp", "objectId": "33333333-3333-4333-8333-333333333333",
        "clientId": "33333333-aaaa-4333-8333-333333333333"}

# Key Vault's 401 messages: no bearer token, and a bearer token that does not verify.
MISSING = "Request is missing a Bearer or PoP token."
INVALID = "The access token is invalid or has expired."

# How long a good request may take after an attack (the required behaviour).
ALIVE_WITHIN_S = 5.0
SLOW_CONNECTIONS = 200


def config(with_temp):
    ids = [APP, GUEST] + ([TEMP] if with_temp else [])
    pols = [{"objectId": APP["objectId"], "permissions": {"keys": ["all"]}}]
    if with_temp:
        pols.append({"objectId": TEMP["objectId"], "permissions": {"keys": ["all"]}})
    return {"tenantId": MAIN_TENANT, "identities": ids,
            "vaults": [{"name": "default", "properties": {"accessPolicies": pols}}]}


def short(data, n=70):
    """A printable, table-safe excerpt of bytes or text."""
    if isinstance(data, (bytes, bytearray)):
        data = data.decode("latin-1")
    data = data.replace("\r", "\\r").replace("\n", "\\n").replace("|", "\\|")
    return data if len(data) <= n else data[:n - 3] + "..."


class Table:
    def __init__(self):
        self.rows = []

    def add(self, attack, sent, got, verdict="refused"):
        self.rows.append((attack, sent, got, verdict))
        print(f"| {attack} | {short(sent, 90)} | {short(got, 90)} | {verdict} |", flush=True)

    def markdown(self):
        out = ["| # | attack | sent | came back | verdict |", "|---|---|---|---|---|"]
        for i, (a, s, g, v) in enumerate(self.rows, 1):
            out.append(f"| {i} | {a} | `{short(s, 90)}` | `{short(g, 90)}` | {v} |")
        return "\n".join(out)


def raw_tls(kv, data, timeout=10, server_hostname="localhost", pause=0.05):
    """Send raw bytes over TLS to the HTTPS port and read until the server closes
    (or the timeout). `data` is bytes, or a list of byte strings sent one after
    another, `pause` seconds apart (each in TLS records of its own).
    Returns (status line, headers text, body, note)."""
    ctx = ssl.create_default_context(cafile=kv.ca_path)
    sock = socket.create_connection(("127.0.0.1", kv.https_port), timeout=timeout)
    s = ctx.wrap_socket(sock, server_hostname=server_hostname)
    out, note = b"", ""
    try:
        for n, piece in enumerate(data if isinstance(data, list) else [data]):
            if n:
                time.sleep(pause)
            s.sendall(piece)
    except (OSError, ssl.SSLError) as e:  # the server may close before reading all
        note = f"send stopped: {type(e).__name__}"
    try:
        while True:
            b = s.recv(65536)
            if not b:
                break
            out += b
            # stop once a full response with Content-Length is in
            if b"\r\n\r\n" in out:
                head, _, body = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(body) >= int(line.split(b":", 1)[1]):
                            raise StopIteration
    except StopIteration:
        pass
    except socket.timeout:
        note = (note + "; " if note else "") + "read timed out"
    except (OSError, ssl.SSLError) as e:
        note = (note + "; " if note else "") + f"closed: {type(e).__name__}"
    finally:
        s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    return lines[0].decode("latin-1"), b"\r\n".join(lines[1:]).decode("latin-1"), body, note


def status_of(line):
    parts = line.split(" ")
    return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def main():
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLSVersion.TLSv1 on purpose
    args = parse_args()
    cfg_dir = tempfile.mkdtemp(prefix="kvmock-attacks-")
    cfg = os.path.join(cfg_dir, "config.json")
    with open(cfg, "w") as f:
        json.dump(config(with_temp=True), f)
    runner = Runner()
    table = Table()
    print("| attack | sent | came back | verdict |\n|---|---|---|---|", flush=True)

    with Kvmock(args.kvmock, config=cfg) as kv:
        P = kv.https_port

        def call(method, path, body=None, token=True, headers=None, host=None):
            return kv.https(method, path, body=body, token=token, headers=headers, host=host)

        def alive(what):
            """The server keeps serving: a good request answers 200 within the limit."""
            t0 = time.time()
            st, _, body = call("GET", f"/keys?{API}", token=kv.token())
            dt = time.time() - t0
            eq(st, 200, f"good request after {what} (body {body[:200]!r})")
            check(dt <= ALIVE_WITHIN_S, f"good request after {what} took {dt:.1f} s")
            check(kv.proc.poll() is None, f"kvmock still running after {what}")

        def refused(attack, sent, resp, statuses, code=None, challenge=False, message=None):
            st, hdrs, body = resp
            got = f"{st} {body[:120].decode(errors='replace')}"
            ok = st in statuses
            if ok and code is not None:
                ok = json.loads(body)["error"]["code"] == code
            if ok and message is not None:
                ok = message in json.loads(body)["error"]["message"]
            if ok and challenge:
                ok = "www-authenticate" in hdrs
                got += " + WWW-Authenticate"
            table.add(attack, sent, got, "refused" if ok else "NOT REFUSED (defect)")
            check(st in statuses, f"{attack}: status {st} not in {statuses}: {body[:300]!r}")
            if code is not None:
                eq(json.loads(body)["error"]["code"], code, attack)
            if message is not None:
                check(message in json.loads(body)["error"]["message"],
                      f"{attack}: message has {message!r}: {body[:300]!r}")
            if challenge:
                check("www-authenticate" in hdrs, f"{attack}: WWW-Authenticate present")
            alive(attack)

        # a key the path attacks must never reach
        st, _, body = call("POST", f"/keys/target/create?{API}", {"kty": "EC"})
        eq(st, 200, body)
        target_x = json.loads(body)["key"]["x"]

        # ---- tokens --------------------------------------------------------------------

        @runner.test
        def no_token():
            refused("no token", f"GET /keys?{API} without Authorization",
                    call("GET", f"/keys?{API}", token=None), {401}, "Unauthorized", True,
                    MISSING)
            # D7: another scheme is no bearer token at all: "missing", not "invalid"
            refused("Basic scheme", "Authorization: Basic YTpi",
                    call("GET", f"/keys?{API}", token=None,
                         headers={"Authorization": "Basic YTpi"}), {401}, "Unauthorized", True,
                    MISSING)

        @runner.test
        def token_from_another_secret():
            # a second kvmock with its own data folder (own token.key), same config:
            # same claims, another signing secret
            with Kvmock(args.kvmock, config=cfg) as other:
                foreign = other.token()
            refused("token signed with another secret", "token from a second kvmock (other DATA/token.key)",
                    call("GET", f"/keys?{API}", token=foreign), {401}, "Unauthorized", True,
                    INVALID)

        @runner.test
        def alg_none():
            good = kv.token()
            h, p, _ = good.split(".")
            none_hdr = b64url(b'{"alg":"none","typ":"JWT"}')
            refused("alg none, empty signature", "{\"alg\":\"none\"}.<valid payload>.",
                    call("GET", f"/keys?{API}", token=f"{none_hdr}.{p}."), {401}, "Unauthorized", True)
            refused("alg none, old signature", "{\"alg\":\"none\"}.<valid payload>.<original sig>",
                    call("GET", f"/keys?{API}", token=f"{none_hdr}.{p}.{good.split('.')[2]}"),
                    {401}, "Unauthorized", True)
            hs512 = b64url(b'{"alg":"HS512","typ":"JWT"}')
            refused("alg HS512 header swap", "{\"alg\":\"HS512\"}.<valid payload>.<original sig>",
                    call("GET", f"/keys?{API}", token=f"{hs512}.{p}.{good.split('.')[2]}"),
                    {401}, "Unauthorized", True)

        @runner.test
        def token_of_another_tenant():
            guest = kv.token(client_id=GUEST["clientId"])
            eq(json.loads(unb64url(guest.split(".")[1]))["tid"], OTHER_TENANT)
            # D7: a token was presented: Key Vault's invalid-issuer message, not "missing"
            refused("token for another tenant", f"token of identity 'guest' (tid {OTHER_TENANT[:8]}...)",
                    call("GET", f"/keys?{API}", token=guest), {401}, "Unauthorized", True,
                    f"AKV10032: Invalid issuer. Expected one of https://sts.windows.net/{MAIN_TENANT}/")

        @runner.test
        def token_for_another_audience():
            refused("token for another audience", "token with aud https://storage.azure.com",
                    call("GET", f"/keys?{API}", token=kv.token("https://storage.azure.com")),
                    {401}, "Unauthorized", True)
            refused("token for the management plane", "token with aud https://management.azure.com",
                    call("GET", f"/keys?{API}", token=kv.token("https://management.azure.com")),
                    {401}, "Unauthorized", True)

        @runner.test
        def oversized_and_malformed_tokens():
            refused("16 KB token", "Authorization: Bearer <16000 x 'a'>",
                    call("GET", f"/keys?{API}", token="a" * 16000), {401, 400, 431})
            good = kv.token()
            refused("token with a 4th segment", "<valid token>.AAAA",
                    call("GET", f"/keys?{API}", token=good + ".AAAA"), {401}, "Unauthorized", True)

        @runner.test
        def expired_token():
            tok = kv.token()
            eq(call("GET", f"/keys?{API}", token=tok)[0], 200)
            kv.advance_clock(3601)
            refused("expired token", "token issued, then clock advanced 3601 s",
                    call("GET", f"/keys?{API}", token=tok), {401}, "Unauthorized", True, INVALID)

        @runner.test
        def not_yet_valid_token():
            # kvmock's clock only moves forward; its offset lives in DATA/clock.json.
            # A token issued after moving it one day ahead has nbf one day in the
            # future for a server on the same data folder (same DATA/token.key) whose
            # clock was not moved: stop, drop the offset, start again.
            kv.advance_clock(86400)
            future = kv.token()
            kv.stop()
            os.unlink(os.path.join(kv.data_dir, "clock.json"))
            kv.start()
            claims = json.loads(unb64url(future.split(".")[1]))
            check(claims["nbf"] > time.time() + 80000, "the token's nbf is a day ahead")
            refused("token not yet valid", "token with nbf = now + 1 day (same token.key, restarted)",
                    call("GET", f"/keys?{API}", token=future), {401}, "Unauthorized", True)

        @runner.test
        def token_of_a_removed_identity():
            tok = kv.token(client_id=TEMP["clientId"])
            eq(call("GET", f"/keys?{API}", token=tok)[0], 200, "temp identity works before")
            with open(cfg, "w") as f:
                json.dump(config(with_temp=False), f)
            try:
                kv.restart()
                refused("token of a removed identity",
                        "token of 'temp', then restart with 'temp' removed from the config",
                        call("GET", f"/keys?{API}", token=tok), {401, 403})
            finally:
                with open(cfg, "w") as f:
                    json.dump(config(with_temp=True), f)

        # ---- paths and queries ---------------------------------------------------------

        @runner.test
        def path_injection():
            tok = kv.token()
            paths = ["/keys/../keys/target", "/keys/%2e%2e/keys/target", "/keys/x/../target",
                     "/keys/x/%2E%2E/target", "/keys/target%00", "/keys/target%00/x",
                     "/keys/target/..", "/keys/./target", "/keys%2ftarget", "/keys/target%2f..",
                     "//keys/target", "/x/../keys/target", "/keys/target%0d%0aX-Injected:%201",
                     "/keys/%2e%2e%2f%2e%2e%2fkeys%2ftarget", "/keys/..%5ctarget"]
            for path in paths:
                st, hdrs, body = call("GET", f"{path}?{API}", token=tok)
                check(st in (400, 404), f"{path}: {st} {body[:200]!r}")
                check(target_x.encode() not in body, f"{path} never returns the key")
                check(not any(k.lower().startswith("x-injected") for k in hdrs),
                      f"{path}: no injected header")
                table.add(f"path `{path}`", f"GET {path}?{API}",
                          f"{st} {json.loads(body)['error']['code']}")
            alive("path injection")
            # a NUL in the query
            st, _, body = call("GET", f"/keys?{API}%00", token=tok)
            eq(st, 400, body)
            table.add("NUL in query", f"GET /keys?{API}%00", f"{st} {json.loads(body)['error']['code']}")
            alive("NUL in query")

        @runner.test
        def bad_percent_escapes():
            # D9: an escape that is not '%' and two hex digits is refused, in the
            # path and in the query, before anything else is read
            for path in ("/keys/ta%zzrget", "/keys/target%2", f"/keys?{API}&x=%zz",
                         f"/keys?{API}&x=%2", f"/keys?{API}&%g0=1"):
                url = path if "?" in path else f"{path}?{API}"
                refused(f"bad escape `{path.split('/keys', 1)[1] or path}`", f"GET {url}",
                        call("GET", url), {400}, "BadParameter")

        @runner.test
        def too_many_segments_and_parameters():
            path = "/keys" + "/a" * 20
            refused("20 path segments", f"GET {path}?{API}",
                    call("GET", f"{path}?{API}"), {400, 404})
            q = "&".join(f"p{i}=1" for i in range(40))
            refused("40 query parameters", f"GET /keys?{API}&p0=1...&p39=1",
                    call("GET", f"/keys?{API}&{q}"), {400}, "BadParameter")

        @runner.test
        def paging_parameters():
            for q in ("maxresults=100000", "maxresults=-1", "maxresults=0", "maxresults=1e1",
                      "$skiptoken=garbage!!", "$skiptoken=-1", "$skiptoken=" + "ab" * 400,
                      "$skiptoken=%00%00"):
                refused(f"`{q[:30]}`", f"GET /keys?{API}&{q}",
                        call("GET", f"/keys?{API}&{q}"), {400}, "BadParameter")

        # ---- headers ----------------------------------------------------------------------

        @runner.test
        def crlf_in_header_values():
            tok = kv.token().encode()
            auth = b"Authorization: Bearer " + tok + b"\r\n"
            req = b"GET /keys?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
            # a bare CR inside a value
            line, hdrs, body, note = raw_tls(kv, req + auth + b"X-A: a\rInjected: 1\r\nConnection: close\r\n\r\n")
            check(status_of(line) == 400, f"bare CR: {line} {body[:100]!r}")
            table.add("bare CR in a header value", "X-A: a\\rInjected: 1", f"{line} {short(body, 40)}")
            alive("bare CR")
            # CRLF inside what a client meant as one value: it ends the header, and the
            # injected line is an ordinary header; it must not change the answer's headers
            line, hdrs, body, note = raw_tls(
                kv, req + auth + b"X-A: a\r\nSet-Cookie: evil=1\r\nConnection: close\r\n\r\n")
            check("set-cookie" not in hdrs.lower(), "request headers are never reflected")
            table.add("CRLF in a header value", "X-A: a\\r\\nSet-Cookie: evil=1",
                      f"{line}, no Set-Cookie reflected", "harmless")
            alive("CRLF header")
            # CRLF smuggling a second Host (a vault switch) after the real one; two
            # Host headers are a bad request (RFC 9112 section 3.2; D8)
            for what, extra in (("CRLF smuggling a 2nd Host", b"X-A: a\r\nHost: cmk.vault.localhost\r\n"),
                                ("two Host headers", b"Host: localhost\r\n")):
                line, hdrs, body, note = raw_tls(kv, req + auth + extra + b"Connection: close\r\n\r\n")
                st = status_of(line)
                ok = st == 400 and json.loads(body or b"{}").get("error", {}).get("code") == "BadParameter"
                check(ok, f"{what}: {line} {body[:200]!r}")
                check(b"cmk.vault.localhost" not in body, "the second Host is not used")
                table.add(what, "Host: localhost ... " + short(extra, 60),
                          f"{line} {short(body, 50)}", "refused" if ok else "NOT REFUSED (defect)")
                alive(what)
            # Content-Length and Transfer-Encoding together
            line, _, body, note = raw_tls(
                kv, b"POST /keys/smuggle/create?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                + auth + b"Transfer-Encoding: chunked\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"
                b"0\r\n\r\nGET /keys/target HTTP/1.1\r\n\r\n")
            check(status_of(line) in (400,), f"CL+TE: {line} {body[:100]!r}")
            eq(call("GET", f"/keys/smuggle?{API}")[0], 404, "nothing created by CL+TE")
            table.add("Content-Length + Transfer-Encoding", "TE: chunked + CL: 40 + smuggled GET",
                      f"{line} {short(body, 50)}", "refused (TE wins, empty body)")
            alive("CL+TE")

        @runner.test
        def oversized_headers():
            tok = kv.token().encode()
            req = (b"GET /keys?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                   + tok + b"\r\n")
            for what, extra in (("one 17 KiB header", b"X-Big: " + b"a" * (17 * 1024) + b"\r\n"),
                                ("200 headers of 100 B (20 KiB)",
                                 b"".join(b"X-H%d: %s\r\n" % (i, b"a" * 100) for i in range(200))),
                                ("1 MiB of header bytes", b"X-Huge: " + b"a" * (1024 * 1024) + b"\r\n")):
                line, _, body, note = raw_tls(kv, req + extra + b"Connection: close\r\n\r\n", timeout=15)
                st = status_of(line)
                check(st in (400, 413, 431) or (st is None and "closed" in note + "send stopped"),
                      f"{what}: {line!r} {note}")
                table.add(f"oversized headers: {what}", f"GET /keys + {what}",
                          f"{line or '(no answer)'} {note}".strip())
                alive(what)

        @runner.test
        def header_bytes():
            # civetweb's scan for the end of the headers, which kvmock patches
            # (cmake/civetweb-header-scan.patch: eight bytes at a time) and must answer
            # as civetweb did: a control character (below 32 but CR and LF, or 127) is
            # a bad request wherever it is, at every offset from a long line's start
            # (every alignment of an eight-byte step); bytes of 128 and above are
            # ordinary; bare LF line ends and headers that arrive in pieces (the end
            # split too) are read to their end.
            tok = kv.token().encode()
            req = (b"GET /keys?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer "
                   + tok + b"\r\n")
            for byte in (0x00, 0x01, 0x1F, 0x7F):
                lines = []
                for offset in range(17):
                    value = b"a" * (100 + offset) + bytes([byte]) + b"b" * 20
                    line, _, body, note = raw_tls(kv, req + b"X-A: " + value + b"\r\nConnection: close\r\n\r\n")
                    check(status_of(line) == 400, f"byte {byte:#04x} at {100 + offset}: {line!r} {body[:100]!r} {note}")
                    lines.append(line)
                table.add(f"control byte {byte:#04x} in a header value",
                          f"X-A: a*100..116 + \\x{byte:02x} + b*20 (17 offsets)",
                          f"{lines[0]} {short(body, 40)} (all 17: {sorted(set(status_of(x) for x in lines))})")
                alive(f"control byte {byte:#04x}")
            value = "é ü 漢字".encode() + b" \x80\xfe\xff"
            line, _, body, note = raw_tls(kv, req + b"X-A: " + value + b"\r\nConnection: close\r\n\r\n")
            eq(status_of(line), 200, f"bytes of 128 and above: {line!r} {body[:200]!r} {note}")
            check(b'"value"' in body, "bytes of 128 and above: the key list is answered")
            table.add("bytes of 128 and above in a header value", "X-A: UTF-8 text + \\x80\\xfe\\xff",
                      f"{line}, answered", "ordinary")
            alive("bytes of 128 and above")
            bare = req.replace(b"\r\n", b"\n") + b"Connection: close\n\n"
            line, _, body, note = raw_tls(kv, bare)
            eq(status_of(line), 200, f"bare LF line ends: {line!r} {body[:200]!r} {note}")
            table.add("bare LF line ends", "GET /keys ...\\n...\\n\\n", f"{line}, answered", "accepted")
            alive("bare LF")
            whole = req + b"X-A: " + b"c" * 3000 + b"\r\nConnection: close\r\n\r\n"
            pieces = [whole[:7], whole[7:900], whole[900:-3], whole[-3:-1], whole[-1:]]
            line, _, body, note = raw_tls(kv, pieces)
            eq(status_of(line), 200, f"headers in 5 pieces: {line!r} {body[:200]!r} {note}")
            table.add("headers in 5 TLS writes, the final CRLFCRLF split", "GET /keys + 3 KB header, 5 writes 50 ms apart",
                      f"{line}, answered", "accepted")
            alive("headers in pieces")

        # ---- bodies ---------------------------------------------------------------------

        @runner.test
        def oversized_bodies():
            huge = b'{"kty":"EC","tags":{"a":"' + b"x" * (1024 * 1024) + b'"}}'
            refused("body > 1 MiB", f"POST /keys/big/create, {len(huge)} B body",
                    call("POST", f"/keys/big/create?{API}", huge), {400}, "BadParameter")
            tok = kv.token().encode()
            line, _, body, note = raw_tls(
                kv, b"POST /keys/big/create?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Authorization: Bearer " + tok + b"\r\nContent-Length: 10737418240\r\n"
                b"Connection: close\r\n\r\n{", timeout=5)
            eq(status_of(line), 400, f"declared 10 GiB: {line}")
            table.add("Content-Length: 10 GiB (1 byte sent)", "POST create, CL 10737418240",
                      f"{line} {short(body, 50)}")
            alive("declared 10 GiB")
            chunk = b"100000\r\n" + b"a" * 0x100000 + b"\r\n"
            line, _, body, note = raw_tls(
                kv, b"POST /keys/big/create?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\n"
                b"Authorization: Bearer " + tok + b"\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n1\r\n{\r\n" + chunk + chunk + b"0\r\n\r\n")
            eq(status_of(line), 400, f"chunked 2 MiB: {line}")
            table.add("chunked body of 2 MiB", "POST create, TE chunked, 2 x 1 MiB chunks",
                      f"{line} {short(body, 50)}")
            alive("chunked 2 MiB")
            eq(call("GET", f"/keys/big?{API}")[0], 404, "nothing created")

        @runner.test
        def deep_json():
            depth = 10000
            for what, body in (
                    ("objects", b'{"kty":"EC","tags":' + b'{"a":' * depth + b"1" + b"}" * depth + b"}"),
                    ("arrays", b'{"kty":"EC","key_ops":' + b"[" * depth + b"]" * depth + b"}")):
                refused(f"JSON nesting depth {depth} ({what})",
                        f"POST /keys/deep/create, {depth} nested {what}",
                        call("POST", f"/keys/deep/create?{API}", body), {400}, "BadParameter")
            refused("JSON with a NUL byte", "POST create {\"kty\":\"EC\\x00\"}",
                    call("POST", f"/keys/deep/create?{API}", b'{"kty":"EC\x00"}'), {400}, "BadParameter")
            eq(call("GET", f"/keys/deep?{API}")[0], 404, "nothing created")

        # ---- connections ----------------------------------------------------------------

        @runner.test
        def slowloris():
            """SLOW_CONNECTIONS TLS clients each send a partial request and hang; a new
            client must still be served within ALIVE_WITHIN_S."""
            ctx = ssl.create_default_context(cafile=kv.ca_path)
            held, lock, stop = [], threading.Lock(), threading.Event()
            handshakes = [0]

            def hang():
                try:
                    s = socket.create_connection(("127.0.0.1", P), timeout=60)
                    s = ctx.wrap_socket(s, server_hostname="localhost")
                    s.sendall(b"GET /keys?" + API.encode() + b" HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
                    with lock:
                        handshakes[0] += 1
                        held.append(s)
                    stop.wait()
                except (OSError, ssl.SSLError):
                    pass

            def server_threads(server):
                with open(f"/proc/{server.proc.pid}/status") as f:
                    return int(next(l for l in f if l.startswith("Threads:")).split()[1])

            # workers start on demand (cmake/civetweb-workers-on-demand.patch): a fresh
            # server runs few threads; during the attack one worker per hanging connection
            with Kvmock(args.kvmock, config=cfg) as fresh:
                fresh_threads = server_threads(fresh)
            tok = kv.token()
            threads = [threading.Thread(target=hang, daemon=True) for _ in range(SLOW_CONNECTIONS)]
            for t in threads:
                t.start()
            time.sleep(3)
            done_before = handshakes[0]
            threads_during = server_threads(kv)
            t0 = time.time()
            try:
                st = call("GET", f"/keys?{API}", token=tok)[0]
            except OSError as e:
                st = type(e).__name__
            dt = time.time() - t0
            stop.set()
            with lock:
                for s in held:
                    s.close()
            for t in threads:
                t.join(timeout=60)
            verdict = "served" if st == 200 and dt <= ALIVE_WITHIN_S else "STARVED"
            table.add(f"slowloris: {SLOW_CONNECTIONS} TLS connections with a partial request",
                      f"{SLOW_CONNECTIONS} x 'GET /keys ... X-Slow: ' then silence "
                      f"({done_before} handshakes done after 3 s)",
                      f"new request: {st} after {dt:.1f} s", verdict)
            check(st == 200 and dt <= ALIVE_WITHIN_S,
                  f"a good request during slowloris answered {st} after {dt:.1f} s "
                  f"(required: 200 within {ALIVE_WITHIN_S} s)")
            check(fresh_threads < 32 and threads_during > done_before,
                  f"server threads: {fresh_threads} in a fresh server, {threads_during} with "
                  f"{done_before} connections hanging (workers must start on demand)")
            alive("slowloris")

        @runner.test
        def idle_keep_alive_connections_give_way():
            """Every worker held by a keep-alive connection between two requests: a new
            connection is served by one of them giving its connection up, not when a
            keep-alive timeout ends (cmake/civetweb-keep-alive-yield.patch). The 8 clients
            send a request every second, under the 120 s timeout, so without that they would
            hold the 8 workers for as long as they run (8 s here), and the new connection
            would wait for them to stop. Exactly one of them is closed for the newcomer."""
            import http.client
            with Kvmock(args.kvmock, config=cfg, extra_args=["--threads", "8"]) as small:
                ctx = ssl.create_default_context(cafile=small.ca_path)
                port = small.https_port
                started, stop = threading.Barrier(9), threading.Event()
                closed, failed, lock = [], [], threading.Lock()

                def healthz(conn):
                    conn.request("GET", "/healthz")
                    r = conn.getresponse()
                    r.read()
                    return r.status

                def keeper(i):
                    conn = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
                    try:
                        ok = healthz(conn) == 200
                    except (OSError, http.client.HTTPException) as e:
                        ok = False
                        with lock:
                            failed.append(f"keeper {i}: {e!r}")
                    started.wait()
                    while ok and not stop.wait(1.0):
                        try:
                            healthz(conn)
                        except (OSError, http.client.HTTPException):
                            with lock:
                                closed.append(i)  # the server gave its worker away
                            break
                    conn.close()

                keepers = [threading.Thread(target=keeper, args=(i,), daemon=True)
                           for i in range(8)]
                for t in keepers:
                    t.start()
                started.wait()
                time.sleep(0.5)  # the 8 connections idle between two requests
                deadline = threading.Timer(8.0, stop.set)
                deadline.start()
                newcomer = http.client.HTTPSConnection("localhost", port, context=ctx, timeout=30)
                st = healthz(newcomer)
                while_running = not stop.is_set()
                newcomer.close()
                time.sleep(1.5)  # each keeper's next request: the one given up fails
                stop.set()
                deadline.cancel()
                for t in keepers:
                    t.join(timeout=30)
                eq(failed, [], "the 8 keep-alive clients' first requests")
                eq(st, 200, "the new connection's request")
                check(while_running, "the new connection was served only after the 8 "
                      "keep-alive clients stopped: no idle worker gave its connection up")
                eq(len(closed), 1, f"keep-alive connections given up: {closed}")

        @runner.test
        def a_kept_alive_connections_partial_request_has_the_request_timeout():
            """A connection kept alive after a request may wait for its next one as long as
            the keep-alive timeout (120 s) allows; once that request's first bytes arrive, it
            has the request timeout (10 s) to finish, as on a new connection, and a client
            that stops halfway loses the connection then, not 120 s later."""
            import http.client
            ctx = ssl.create_default_context(cafile=kv.ca_path)
            conn = http.client.HTTPSConnection("localhost", P, context=ctx, timeout=60)
            conn.request("GET", "/healthz")
            r = conn.getresponse()
            r.read()
            eq(r.status, 200)
            sock = conn.sock
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
            t0 = time.time()
            try:
                while sock.recv(4096):
                    pass  # an answer to the timed-out request, then the close
                end = "closed"
            except (OSError, ssl.SSLError) as e:
                end = type(e).__name__
            waited = time.time() - t0
            conn.close()
            check(end in ("closed", "ConnectionResetError", "SSLEOFError", "SSLZeroReturnError")
                  and waited < 40, f"the half-sent request's connection: {end} after "
                                   f"{waited:.1f} s (the request timeout is 10 s)")
            alive("a kept-alive connection's half-sent request")

        @runner.test
        def old_tls_versions_refused():
            for name, version in (("TLS 1.0", ssl.TLSVersion.TLSv1), ("TLS 1.1", ssl.TLSVersion.TLSv1_1)):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.load_verify_locations(kv.ca_path)
                # let the client offer the old versions, so a failure is the server's refusal
                ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = version
                err = None
                try:
                    with socket.create_connection(("127.0.0.1", P), timeout=10) as sock:
                        with ctx.wrap_socket(sock, server_hostname="localhost") as s:
                            err = f"handshake succeeded with {s.version()}"
                except ssl.SSLError as e:
                    err = e.reason or str(e)
                except OSError as e:
                    err = type(e).__name__
                check(not err.startswith("handshake succeeded"), f"{name}: {err}")
                check("NO_PROTOCOLS_AVAILABLE" not in err, f"{name}: the client refused itself: {err}")
                table.add(f"{name} handshake", f"ClientHello max {name}", f"handshake failed: {err}")
                alive(name)
            # the control: the same client settings with TLS 1.2 connect
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(kv.ca_path)
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            with socket.create_connection(("127.0.0.1", P), timeout=10) as sock:
                with ctx.wrap_socket(sock, server_hostname="localhost") as s:
                    eq(s.version(), "TLSv1.2")

        runner.run_collected()
        print("\n" + table.markdown(), flush=True)
        # the target key is untouched
        st, _, body = call("GET", f"/keys/target?{API}")
        eq(st, 200)
        eq(json.loads(body)["key"]["x"], target_x)
    os.unlink(cfg)
    os.rmdir(cfg_dir)
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
