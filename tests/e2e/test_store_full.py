"""A data folder that cannot grow (a full disk): kvmock refuses the write, keeps
serving, and loses nothing it acknowledged.

How a full disk is simulated, portably and without root: the file-size limit
RLIMIT_FSIZE of the kvmock process. Its store is one LMDB file, DATA/kvmock.mdb,
which grows page by page; with the limit set to the file's size, a write that
needs a new page fails as on a full disk (EFBIG instead of ENOSPC), while
pages LMDB frees and reuses inside the file still work, as they do on a full
disk. The limit is set on the running server with prlimit(2), and given from
exec on (preexec_fn) to cut a first start short. The test does not ignore
SIGXFSZ, whose default action kills the process: kvmock must ignore it itself,
or the first write past the limit kills it.

What is proven:
1. A write that cannot be stored answers HTTP 507 InsufficientStorage
   ("kvmock cannot write to its data folder..."), on the data plane (create,
   update, delete and import of keys) and on the management plane (a vault
   PUT, an access-policy add), and nothing of it is stored; the Python SDK
   raises it with kvmock's message. Reads (get key,
   list keys, /healthz) keep answering 200; /metrics counts the commits refused
   (kvmock_store_commit_failures_total{reason="full"}); the server keeps running and
   stops with exit code 0 and no sanitizer report.
2. When space comes back (the limit lifted), writes succeed again without a
   restart.
3. After a restart, every key whose create was acknowledged is there, none
   whose create got 507, and a key whose delete got 507 is still there.
4. A first start cut short at any point (the limit from 0 to 96 KiB in 4 KiB
   steps, until starts succeed three steps in a row) prints the ready line or
   exits with a non-zero code and an error line, never a signal or a sanitizer
   report; a normal start on that data folder then gives a working setup: the
   access-policy vault "default" lets the default identity create and list
   keys, the RBAC vault "rbac" lets its vault-scope Key Vault Crypto User and the
   subscription-scope Key Vault Reader list keys, and refuses an identity with
   no role (403).
5. A vault PUT or an access-policy add that fails leaves no vault, or the
   policies as they were; one that succeeds (LMDB reused free pages) is whole.

A write that happens to succeed on a full store (free pages reused) is not a
failure: its effect is checked to be complete, the store is filled again and
the write retried, until a 507 comes (a few tries).
"""
import http.client
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (APP, READY_PREFIX, SANITIZER_MARKS, TENANT, Kvmock,  # noqa: E402
                     Runner, b64url, check, free_port, parse_args)

CRYPTO = {"name": "crypto", "objectId": "0a000000-0000-4000-8000-0000000000b2",
          "clientId": "0c000000-0000-4000-8000-0000000000b2"}
READER = {"name": "reader", "objectId": "0a000000-0000-4000-8000-0000000000b3",
          "clientId": "0c000000-0000-4000-8000-0000000000b3"}
IDLE = {"name": "idle", "objectId": "0a000000-0000-4000-8000-0000000000b4",
        "clientId": "0c000000-0000-4000-8000-0000000000b4"}
SUB = "00000000-0000-0000-0000-000000000000"
# "default": access policies, none given, so its creator (the default identity) gets
# every key permission; "rbac": role assignments at the vault's and the subscription's scope.
CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, CRYPTO, READER, IDLE],
    "vaults": [{"name": "default"},
               {"name": "rbac", "properties": {"enableRbacAuthorization": True}}],
    "roleAssignments": [
        {"principalId": CRYPTO["objectId"], "roleDefinitionName": "Key Vault Crypto User",
         "scope": "/vaults/rbac"},
        {"principalId": READER["objectId"], "roleDefinitionName": "Key Vault Reader",
         "scope": f"/subscriptions/{SUB}"},
    ],
}
KV_API = "api-version=7.4"
ARM_API = "api-version=2023-07-01"
ARM_VAULTS = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults"
FULL_CODE = "InsufficientStorage"
FULL_MESSAGE = "kvmock cannot write to its data folder"
KIB = 1024
SWEEP_TOP = 96 * KIB   # the highest limit of a capped first start
SWEEP_STEP = 4 * KIB   # one LMDB page: every point where the store grows
SWEEP_STREAK = 3       # capped starts that succeed in a row before the sweep stops
FILL_MAX = 3000        # big creates before giving up on reaching "full"
TRIES = 6              # fill-then-write rounds before giving up on a 507


def big_tags(mark):
    """15 tags of 250 characters: a key that needs pages of its own (LMDB overflow pages)."""
    return {f"{mark}{n:02}": "x" * 250 for n in range(15)}


def oct_key(tags):
    return {"kty": "oct", "key_size": 256, "tags": tags}


def policy(object_id, perms):
    return {"tenantId": TENANT, "objectId": object_id, "permissions": {"keys": perms}}


def policies_of(vault_doc):
    """A vault's access policies as {objectId: sorted key permissions}."""
    return {p["objectId"]: sorted(k.lower() for k in p["permissions"].get("keys", []))
            for p in vault_doc["properties"]["accessPolicies"]}


def said(st, doc):
    return f"{st} {json.dumps(doc)[:300]}"


def verify_recorded(records, get, part, kind, when):
    """Each of @records ({name: what it holds, or None}) as acknowledged: 404 for None (its
    write got 507, or it was deleted), else 200 and part(doc) equal to what it holds.
    get(name) answers (status, doc); @kind names the objects ("key", "vault")."""
    for name, want in sorted(records.items()):
        st, doc = get(name)
        if want is None:
            check(st == 404, f"{when}: {kind} {name} must not exist (its write got 507 or it "
                             f"was deleted): expected 404, got {said(st, doc)}")
        else:
            check(st == 200, f"{when}: {kind} {name} was acknowledged: expected 200, "
                             f"got {said(st, doc)}")
            same(part(doc), want, f"{when}: {kind} {name}")


def same(got, want, what):
    """@got must equal @want; for dicts the message names the keys that differ."""
    if got == want:
        return
    detail = ""
    if isinstance(got, dict) and isinstance(want, dict):
        detail = (f" (missing {sorted(set(want) - set(got))}, unexpected "
                  f"{sorted(set(got) - set(want))}, different "
                  f"{sorted(k for k in set(got) & set(want) if got[k] != want[k])})")
    raise AssertionError(f"{what}: expected {repr(want)[:300]}, got {repr(got)[:300]}{detail}")


def cap(kv, limit):
    """Limit the running server's files to @limit bytes (None: lift the limit). Only the
    soft limit moves, so that an unprivileged test can lift it again."""
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    resource.prlimit(kv.proc.pid, resource.RLIMIT_FSIZE, (hard if limit is None else limit, hard))


def store_size(kv):
    return os.path.getsize(os.path.join(kv.data_dir, "kvmock.mdb"))


def exit_text(rc):
    if rc is None:
        return "still running"
    if rc < 0:
        try:
            return f"killed by {signal.Signals(-rc).name} (exit status {rc})"
        except ValueError:
            return f"killed by signal {-rc}"
    return f"exit code {rc}"


def refused_full(st, doc, what):
    """@what must have answered 507 InsufficientStorage with kvmock's message."""
    check(st == 507, f"{what}: expected HTTP 507 {FULL_CODE} (the data folder cannot grow), "
                     f"got {said(st, doc)}")
    err = (doc or {}).get("error") or {}
    check(err.get("code") == FULL_CODE,
          f"{what}: expected error code {FULL_CODE!r}, got {err.get('code')!r}")
    check(str(err.get("message", "")).startswith(FULL_MESSAGE),
          f"{what}: expected a message starting with {FULL_MESSAGE!r}, got {err.get('message')!r}")


class Api:
    """Raw calls to one kvmock as one of its identities, answers as (status, JSON or None).
    A server that stopped answering is reported with how it ended (a signal, an exit)."""

    def __init__(self, kv):
        self.kv = kv
        self._tokens = {}
        self._serial = 0

    def unique(self, prefix):
        self._serial += 1
        return f"{prefix}-{self._serial}"

    def _token(self, who, resource_uri):
        if (who["clientId"], resource_uri) not in self._tokens:
            self._tokens[who["clientId"], resource_uri] = self.kv.token(resource_uri,
                                                                        client_id=who["clientId"])
        return self._tokens[who["clientId"], resource_uri]

    def _call(self, method, path, body, host, token):
        try:
            st, _, resp = self.kv.https(method, path, body, host=host, token=token)
        except (OSError, http.client.HTTPException) as e:
            try:  # a server that closed the connection may be dying: let it end
                rc = self.kv.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                rc = None
            raise AssertionError(f"{method} {path}: no answer ({e!r}); kvmock {exit_text(rc)}\n"
                                 + self.kv.log_tail(15)) from None
        try:
            return st, json.loads(resp) if resp else None
        except ValueError:
            return st, {"raw": resp[:300].decode(errors="replace")}

    def data(self, method, path, body=None, vault="default", who=APP):
        return self._call(method, f"{path}?{KV_API}", body,
                          f"{vault}.vault.localhost:{self.kv.https_port}",
                          self._token(who, "https://vault.azure.net"))

    def arm(self, method, path, body=None):
        return self._call(method, f"{ARM_VAULTS}{path}?{ARM_API}", body, None,
                          self._token(APP, "https://management.azure.com"))

    def must(self, want, method, path, body=None, **kw):
        """A call that must answer @want (or one of the statuses in it); returns the JSON."""
        st, doc = (self.arm if kw.pop("arm", False) else self.data)(method, path, body, **kw)
        wanted = want if isinstance(want, tuple) else (want,)
        check(st in wanted, f"{method} {path}: expected {' or '.join(map(str, wanted))}, "
                            f"got {said(st, doc)}")
        return doc

    def alive(self, when):
        rc = self.kv.proc.poll()
        check(rc is None, f"{when}: expected kvmock to keep running, it ended: {exit_text(rc)}\n"
                          + self.kv.log_tail(15))

    def fill(self, keys):
        """Cap the store at its current size, then create big keys until one is refused:
        from then on a write that needs a new page cannot be stored. @keys records what
        each create left ({name: tags, or None for no key})."""
        size = store_size(self.kv)
        cap(self.kv, size)
        for _ in range(FILL_MAX):
            name = self.unique("fill")
            st, doc = self.data("POST", f"/keys/{name}/create", oct_key(big_tags("f")))
            if st == 200:
                keys[name] = big_tags("f")
                continue
            refused_full(st, doc, f"create of key {name} with the store capped at {size} bytes")
            keys[name] = None
            return
        raise AssertionError(f"expected a 507 with the store capped at {size} bytes, but "
                             f"{FILL_MAX} creates of keys with 15 tags of 250 characters all "
                             "succeeded")

    def refused_when_full(self, keys, what, call, stored, unchanged):
        """Fill the store, then make the write call(i). A 507 must have changed nothing
        (unchanged(i)); a success, when LMDB found free pages, must be whole (stored(i)),
        and the round is tried again."""
        for i in range(TRIES):
            self.fill(keys)
            st, doc = call(i)
            if st == 507:
                refused_full(st, doc, f"{what} on a full store")
                print(f"  {what}: 507 on try {i + 1} of {TRIES}", flush=True)
                unchanged(i)
                self.alive(f"after the refused {what}")
                return
            check(st in (200, 201), f"{what} on a full store: expected 507 (or a success when "
                                    f"LMDB reused free pages), got {said(st, doc)}")
            stored(i)
        raise AssertionError(f"{what} on a full store: expected 507, but {TRIES} tries all "
                             "succeeded (LMDB reused free pages every time)")

    def verify_keys(self, keys, when):
        """Every key of @keys as recorded: its tags, or 404 for None."""
        verify_recorded(keys, lambda name: self.data("GET", f"/keys/{name}"),
                        lambda doc: doc.get("tags"), "key", when)


# ---- 4. a first start cut short ---------------------------------------------------------------

def clean_env():
    env = dict(os.environ)
    for k in ("KVMOCK_DATA", "KVMOCK_HTTPS_PORT", "KVMOCK_HTTP_PORT", "KVMOCK_CONFIG",
              "KVMOCK_HOSTNAMES"):
        env.pop(k, None)
    return env


def capped_first_start(binary, data, config, limit):
    """Start kvmock on the new data folder @data with its files limited to @limit bytes
    from exec on; stop it if it gets ready. Returns (outcome, problems), the outcome
    "ready", "exit N", a signal's name or "hung". Its output comes through a pipe: a log
    file would be held to the limit too."""
    hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
    cmd = [binary, "--data", data, "--config", config, "--https-port", str(free_port()),
           "--http-port", str(free_port())]
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env=clean_env(), text=True, errors="replace",
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard)))
    lines, got_ready = [], threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith(READY_PREFIX):
                got_ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    problems = []
    try:
        deadline = time.time() + 30
        while not got_ready.wait(0.02) and proc.poll() is None:
            if time.time() > deadline:
                problems.append("expected the ready line or an exit within 30 s, got neither")
                break
        ready = got_ready.is_set()
        outcome = "ready" if ready else "hung"
        if ready:
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=20)
            if rc != 0:
                problems.append(f"it printed its ready line; on SIGTERM expected exit code 0, "
                                f"got {exit_text(rc)}")
        elif proc.poll() is not None:
            rc = proc.returncode
            outcome = f"exit {rc}" if rc >= 0 else exit_text(rc).split()[2]
            if rc <= 0:
                problems.append(f"expected the ready line or a non-zero exit code, got "
                                f"{exit_text(rc)}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stdout.close()
    text = "\n".join(lines)
    if not ready and '"level":"error"' not in text:
        problems.append("it exited without its ready line: expected an error line, got none")
    marks = [m for m in SANITIZER_MARKS if m in text]
    if marks:
        problems.append(f"expected no sanitizer report, got {marks}")
    if problems:
        problems[-1] += "".join("\n    | " + line for line in lines[-6:])
    return outcome, problems


# (what, identity, vault, method, path, body, expected status)
SETUP_CHECKS = [
    ("the default identity creates a key in vault 'default' (access policies)",
     APP, "default", "POST", "/keys/probe/create", {"kty": "oct", "key_size": 256}, 200),
    ("the default identity lists keys in vault 'default'", APP, "default", "GET", "/keys", None,
     200),
    ("Key Vault Crypto User (vault scope) lists keys in vault 'rbac'", CRYPTO, "rbac", "GET",
     "/keys", None, 200),
    ("Key Vault Reader (subscription scope) lists keys in vault 'rbac'", READER, "rbac", "GET",
     "/keys", None, 200),
    ("an identity without a role lists keys in vault 'rbac'", IDLE, "rbac", "GET", "/keys", None,
     403),
]


def setup_problems(binary, data, config):
    """Start kvmock normally on @data and run SETUP_CHECKS; the checks that fail."""
    problems = []
    try:
        with Kvmock(binary, data_dir=data, config=config) as kv:
            api = Api(kv)
            for what, who, vault, method, path, body, want in SETUP_CHECKS:
                st, doc = api.data(method, path, body, vault=vault, who=who)
                if st != want:
                    problems.append(f"{what}: expected {want}, got {said(st, doc)}")
    except (AssertionError, RuntimeError) as e:
        problems.append(f"the normal start or stop failed: {e}")
    return problems


def main():
    args = parse_args()
    runner = Runner()

    @runner.test
    def data_plane_writes_get_507_and_nothing_is_lost():
        with Kvmock(args.kvmock, config=CONFIG) as kv:
            api, keys = Api(kv), {}
            for name in ["victim"] + [f"doomed-{i}" for i in range(TRIES)]:
                api.must(200, "POST", f"/keys/{name}/create", oct_key(big_tags("a")))
                keys[name] = big_tags("a")

            # (what, method, key name, path after it, body, the key's tags after a success:
            # None for no key)
            writes = [
                ("create of a key", "POST", "made-{i}", "/create",
                 lambda i: oct_key(big_tags("c")), lambda i: big_tags("c")),
                ("update of a key's tags", "PATCH", "victim", "",
                 lambda i: {"tags": big_tags(f"u{i}-")}, lambda i: big_tags(f"u{i}-")),
                ("delete of a key", "DELETE", "doomed-{i}", "", lambda i: None, lambda i: None),
                ("import of a key", "PUT", "imported-{i}", "",
                 lambda i: {"key": {"kty": "oct", "k": b64url(os.urandom(32))},
                            "tags": big_tags("i")},
                 lambda i: big_tags("i")),
            ]
            for what, method, name, rest, body, after in writes:
                def call(i):
                    return api.data(method, f"/keys/{name.format(i=i)}{rest}", body(i))

                def stored(i):
                    keys[name.format(i=i)] = after(i)
                    api.verify_keys({name.format(i=i): after(i)}, f"after a {what} that got 200")

                def unchanged(i):
                    was = keys.setdefault(name.format(i=i), None)
                    api.verify_keys({name.format(i=i): was}, f"after a {what} that got 507")

                api.refused_when_full(keys, what, call, stored, unchanged)

            # what a user of the Python SDK (Debian's python3-azure) sees: the status and
            # kvmock's message, at once for a create (azure-core does not retry a POST's 507)
            kv.apply_env()
            from azure.core.exceptions import HttpResponseError
            from azure.identity import ManagedIdentityCredential
            from azure.keyvault.keys import KeyClient
            client = KeyClient(kv.vault_url(), ManagedIdentityCredential(),
                               verify_challenge_resource=False)
            try:
                for i in range(FILL_MAX):  # free pages inside the file may take a few
                    client.create_oct_key(f"sdk-{i}", tags=big_tags("k"))
                    keys[f"sdk-{i}"] = big_tags("k")
                raise AssertionError(f"expected the SDK to raise on a full store, but {FILL_MAX} "
                                     "creates succeeded")
            except HttpResponseError as e:
                keys[f"sdk-{i}"] = None
                check(e.status_code == 507 and FULL_MESSAGE in str(e),
                      f"the SDK's error: expected 507 and {FULL_MESSAGE!r}, got {e.status_code} "
                      f"{str(e)[:300]!r}")

            # /metrics counts the commits refused for room
            st, _, text = kv.http("GET", "/metrics")
            full = [l for l in text.decode().splitlines()
                    if l.startswith('kvmock_store_commit_failures_total{reason="full"}')]
            check(st == 200 and full and float(full[0].split()[-1]) >= len(writes),
                  f"/metrics: expected kvmock_store_commit_failures_total{{reason=\"full\"}} of "
                  f"at least {len(writes)} (one 507 per kind of write), got {full}")

            # reads go on while the store is full
            api.must(200, "GET", "/keys/victim")
            api.must(200, "GET", "/keys")
            st, _, body = kv.http("GET", "/healthz")
            check(st == 200, f"GET /healthz on a full store: expected 200, got {st} {body[:200]!r}")
            api.alive("after the writes refused on a full store")

            # space comes back: writes work again, without a restart
            cap(kv, None)
            api.must(200, "POST", "/keys/after-space/create", oct_key(big_tags("s")))
            keys["after-space"] = big_tags("s")
            api.must(200, "PATCH", "/keys/victim", {"tags": big_tags("v")})
            keys["victim"] = big_tags("v")
            api.must(200, "POST", "/keys/after-space-gone/create", oct_key(big_tags("s")))
            api.must(200, "DELETE", "/keys/after-space-gone")
            keys["after-space-gone"] = None
            api.verify_keys(keys, "with space back, before the restart")

            kv.restart()
            api.verify_keys(keys, "after a restart")

    @runner.test
    def management_writes_get_507_and_leave_whole_vaults():
        with Kvmock(args.kvmock, config=CONFIG) as kv:
            api, keys = Api(kv), {}
            before = [policy(APP["objectId"], ["get", "list", "create"]),
                      policy(CRYPTO["objectId"], ["get"])]
            api.must((200, 201), "PUT", "/held", {"location": "westeurope", "properties": {
                "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                "accessPolicies": before}}, arm=True)
            def policies(vault):
                return policies_of(api.must(200, "GET", f"/{vault}", arm=True))

            held = policies("held")
            same(held, policies_of({"properties": {"accessPolicies": before}}),
                 "policies of the new vault 'held'")
            made = {}  # vault name -> its policies, or None for no vault

            def many(n):
                """Policies for @n principals kvmock does not know (a vault may name any)."""
                return [policy(str(uuid.uuid4()), ["get", "list"]) for _ in range(n)]

            put_bodies = {}

            def put_vault(i):
                put_bodies[i] = [policy(APP["objectId"], ["get", "list", "create"]),
                                 policy(READER["objectId"], ["list"])] + many(20)
                return api.arm("PUT", f"/full-{i}", {"location": "westeurope", "properties": {
                    "tenantId": TENANT, "sku": {"family": "A", "name": "standard"},
                    "accessPolicies": put_bodies[i]}})

            def vault_whole(i):
                made[f"full-{i}"] = policies_of({"properties": {"accessPolicies": put_bodies[i]}})
                same(policies(f"full-{i}"), made[f"full-{i}"],
                     f"policies of vault full-{i}, whose PUT succeeded")

            def no_vault(i):
                st, doc = api.arm("GET", f"/full-{i}")
                check(st == 404, f"vault full-{i}, whose PUT got 507: expected GET 404, got "
                                 f"{said(st, doc)}")
                made[f"full-{i}"] = None

            api.refused_when_full(keys, "vault PUT with 22 access policies", put_vault,
                                  vault_whole, no_vault)

            added = {}

            def add(i):
                added[i] = many(25)
                return api.arm("PUT", "/held/accessPolicies/add",
                               {"properties": {"accessPolicies": added[i]}})

            def add_whole(i):
                held.update(policies_of({"properties": {"accessPolicies": added[i]}}))
                same(policies("held"), held, "policies of vault 'held' after an add that succeeded")

            def add_undone(i):
                same(policies("held"), held,
                     "policies of vault 'held' after an add of 25 that got 507 (as before it)")

            api.refused_when_full(keys, "access-policy add of 25 entries", add, add_whole,
                                  add_undone)
            api.alive("after the management writes refused on a full store")

            cap(kv, None)
            api.must((200, 201), "PUT", "/held/accessPolicies/add",
                     {"properties": {"accessPolicies": [policy(IDLE["objectId"], ["get"])]}},
                     arm=True)
            held[IDLE["objectId"]] = ["get"]
            kv.restart()
            same(policies("held"), held, "policies of vault 'held' after a restart")
            verify_recorded(made, lambda name: api.arm("GET", f"/{name}"), policies_of,
                            "vault (its access policies)", "after a restart")
            api.verify_keys(keys, "after a restart")

    @runner.test
    def first_start_cut_short_at_any_point_then_a_normal_start_works():
        root = tempfile.mkdtemp(prefix="kvmock-store-full-")
        config = os.path.join(root, "config.json")
        with open(config, "w", encoding="utf-8") as f:
            json.dump(CONFIG, f)
        failures, outcomes, streak = [], [], 0
        try:
            for limit in range(0, SWEEP_TOP + 1, SWEEP_STEP):
                data = os.path.join(root, f"data-{limit // KIB}k")
                outcome, problems = capped_first_start(args.kvmock, data, config, limit)
                outcomes.append(f"{limit // KIB}k:{outcome}")
                problems += setup_problems(args.kvmock, data, config)
                failures += [f"first start capped at {limit // KIB} KiB ({outcome}): {p}"
                             for p in problems]
                shutil.rmtree(data, ignore_errors=True)
                streak = streak + 1 if outcome == "ready" else 0
                if streak == SWEEP_STREAK:
                    break
            print("capped first starts: " + " ".join(outcomes), flush=True)
            check(not failures, f"{len(failures)} failed check(s):\n" + "\n".join(failures))
            check(streak == SWEEP_STREAK,
                  f"expected {SWEEP_STREAK} capped first starts in a row to succeed by "
                  f"{SWEEP_TOP // KIB} KiB (the sweep must cover the whole first start), got "
                  f"{' '.join(outcomes)}")
        finally:
            shutil.rmtree(root, ignore_errors=True)

    runner.run()


if __name__ == "__main__":
    main()
