"""The Python SDK's asynchronous clients (azure.keyvault.keys.aio, its crypto.aio and
azure.identity.aio, over azure-core's aiohttp transport) against kvmock: Debian's
azure-keyvault-keys 4.8.0b3, azure-identity 1.13.0b2, azure-core 1.26.3, aiohttp 3.8.

What it proves, each through the async pipeline:
- credentials: ManagedIdentityCredential (IDENTITY_ENDPOINT/IDENTITY_HEADER, system and
  user-assigned), DefaultAzureCredential choosing the managed identity, and
  ClientSecretCredential against kvmock's Entra-shaped authority; the tokens name the
  identities, and kvmock's audit log names them as the callers;
- TLS trust of the aiohttp transport (Debian's azure-core 1.26.3 with aiohttp 3.8.4):
  every client and credential here passes connection_verify=<kvmock's CA>, with which
  that pair checks the server's certificate (and host name). Without it azure-core hands
  aiohttp ssl=True, which aiohttp 3.8 takes as "do not verify" (aio-libs/aiohttp#6828;
  azure-core 1.29.5 stopped passing it, Azure/azure-sdk-for-python#32540): a child
  process shows that SSL_CERT_FILE and REQUESTS_CA_BUNDLE naming another CA change
  nothing, and connection_verify naming another CA (of the same name) is refused;
- the key lifecycle: RSA, RSA-HSM, EC, EC-HSM and oct-HSM keys (the vault is premium, as
  kvmock's built-in vault "default"), get (current and by version), update, rotate, the
  key and version listings paged with `async for` across several pages, backup/restore,
  delete and recover (the async KeyClient has no begin_delete_key: its delete_key and
  recover_deleted_key run the poller and return its result), get/list deleted, purge,
  random bytes, rotation policy get/update;
- crypto checked against Python's `cryptography`: RSA-OAEP-256 encrypt/decrypt and
  wrap/unwrap, A256KW on an oct-HSM key of known material (compared byte for byte),
  ES256 over a real SHA-256 digest; the server's encrypt, wrap and verify are reached
  through an identity without keys/get (the SDK then does nothing locally);
- errors: ResourceNotFoundError for a missing key, HttpResponseError 403 with Key
  Vault's message for an identity whose access policy lacks the permission;
- concurrency: asyncio.gather of 50 get_key and 50 unwrap_key calls on one client each,
  with many requests in flight over one connection pool;
- every client and credential is closed: an unclosed aiohttp session or connector, an
  unclosed transport or an error reported to the event loop fails the test that left it
  (and a first test shows that an unclosed client is caught).
"""
import asyncio
import gc
import hashlib
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import warnings
from datetime import datetime, timedelta, timezone

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    APP, TENANT, Kvmock, Runner, caller_oid, check, eq, parse_args, unb64url)

import aiohttp  # noqa: E402
from azure.core.exceptions import (  # noqa: E402
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
)
from azure.core.pipeline.policies import AsyncHTTPPolicy, SansIOHTTPPolicy  # noqa: E402
from azure.core.pipeline.transport import AioHttpTransport  # noqa: E402
from azure.identity.aio import (  # noqa: E402
    ClientSecretCredential,
    DefaultAzureCredential,
    ManagedIdentityCredential,
)
from azure.keyvault.keys import (  # noqa: E402
    JsonWebKey,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.keys.aio import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import (  # noqa: E402
    EncryptionAlgorithm,
    KeyWrapAlgorithm,
    SignatureAlgorithm,
)
from azure.keyvault.keys.crypto.aio import CryptographyClient  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.exceptions import InvalidSignature  # noqa: E402
from cryptography.hazmat.primitives import hashes, keywrap, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

PREMIUM = {"family": "A", "name": "premium"}
# an application signing in with a secret: keys get, list and create
CI = {"name": "ci", "objectId": "0a000000-0000-4000-8000-0000000000c1",
      "clientId": "0c000000-0000-4000-8000-0000000000c1", "clientSecret": "aio-secret-1"}
# a user-assigned managed identity that may use keys but not read them (no keys/get):
# the SDK's CryptographyClient then sends every operation to the server
WORKER = {"name": "worker", "objectId": "0a000000-0000-4000-8000-0000000000b1",
          "clientId": "0c000000-0000-4000-8000-0000000000b1"}
CRYPTO_ONLY = ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"]
# vault "default" as kvmock makes it without a file (premium, soft delete for 90 days),
# with access policies for the three identities
CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, CI, WORKER],
    "vaults": [{"name": "default", "properties": {
        "sku": PREMIUM, "enableSoftDelete": True, "softDeleteRetentionInDays": 90,
        "accessPolicies": [
            {"objectId": APP["objectId"], "permissions": {"keys": ["all"]}},
            {"objectId": CI["objectId"], "permissions": {"keys": ["get", "list", "create"]}},
            {"objectId": WORKER["objectId"], "permissions": {"keys": CRYPTO_ONLY}},
        ]}}],
}
VAULT_SCOPE = "https://vault.azure.net/.default"
VERSION = re.compile(r"^[0-9a-f]{32}$")
RSA_OPS = sorted(["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"])
EC_OPS = ["sign", "verify"]
OAEP_256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)

# The child process of the trust check: a KeyClient and a ManagedIdentityCredential as an
# application makes them, with the environment it is given; prints the key id it got, or
# the error.
TRUST_CHILD = r'''
import asyncio, sys
from azure.identity.aio import ManagedIdentityCredential
from azure.keyvault.keys.aio import KeyClient


async def main():
    async with ManagedIdentityCredential() as cred, \
            KeyClient(sys.argv[1], cred, retry_total=0) as client:
        try:
            print((await client.get_key(sys.argv[2])).id)
        except Exception as e:
            print(f"{type(e).__name__}: {e}")


asyncio.run(main())
'''


def write_impostor_ca(path):
    """A self-signed CA named as kvmock's ("kvmock local CA") with another key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kvmock local CA")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    with open(path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))


class Leaks:
    """What an unclosed async resource leaves: ResourceWarnings (aiohttp's "Unclosed client
    session" and "Unclosed connector", asyncio's "unclosed transport"), errors reported to
    the event loop's exception handler, and exceptions raised in finalizers."""

    def __init__(self):
        self.found = []
        self._show = warnings.showwarning
        self._unraisable = sys.unraisablehook

    def install(self):
        warnings.simplefilter("always", ResourceWarning)
        warnings.showwarning = self._warning
        sys.unraisablehook = self._unraisable_hook

    def _warning(self, message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ResourceWarning):
            self.found.append(f"ResourceWarning: {message}")
        self._show(message, category, filename, lineno, file, line)

    def _unraisable_hook(self, unraisable):
        self.found.append(f"unraisable {unraisable.exc_type.__name__}: {unraisable.exc_value}")
        self._unraisable(unraisable)

    def loop_error(self, loop, context):
        self.found.append(f"event loop: {context.get('message')} {context.get('exception')!r}")
        loop.default_exception_handler(context)


LEAKS = Leaks()


def arun(coro):
    """Run a coroutine in a fresh event loop whose exception handler records errors,
    then collect garbage so that finalizers of anything left unclosed run now. Before the
    loop ends, the TLS connections that closed clients shut down are given up to a second
    to finish (their close_notify exchange), as aiohttp's graceful shutdown advises: a
    loop that ends first leaves their sockets open."""
    async def main():
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(LEAKS.loop_error)
        try:
            return await coro
        finally:
            for _ in range(100):
                # the selector loop's socket transports (weakly held until collected)
                sockets = list(getattr(loop, "_transports", {}).values())
                if all(t.is_closing() for t in sockets):
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0)  # their connection_lost callbacks
    try:
        return asyncio.run(main())
    finally:
        gc.collect()


def aio_test(runner):
    """Register an async test: run it with arun() and fail it if it left an unclosed
    resource (or any error reported to its loop) behind."""
    def deco(fn):
        def run():
            before = len(LEAKS.found)
            try:
                arun(fn())
            finally:
                left = LEAKS.found[before:]
                del LEAKS.found[before:]
            check(not left, f"{fn.__name__} left unclosed resources: {left}")
        run.__name__ = fn.__name__
        runner.test(run)
        return fn
    return deco


class Recorder(SansIOHTTPPolicy):
    """(method, path, query, status) of every request the pipeline sent."""

    def __init__(self):
        self.log = []

    def on_response(self, request, response):
        u = urllib.parse.urlsplit(request.http_request.url)
        self.log.append((request.http_request.method, u.path, urllib.parse.parse_qs(u.query),
                         response.http_response.status_code))

    def mark(self):
        return len(self.log)

    def since(self, mark):
        return [(m, p, s) for m, p, _, s in self.log[mark:]]


class InFlight(AsyncHTTPPolicy):
    """Counts the requests in flight through the pipeline and keeps the peak."""

    def __init__(self):
        super().__init__()
        self.now = 0
        self.peak = 0
        self.done = 0

    async def send(self, request):
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            return await self.next.send(request)
        finally:
            self.now -= 1
            self.done += 1


def traced_transport(stats, **kwargs):
    """azure-core's aiohttp transport on a session that counts the TCP connections it
    opens and the times it takes one from its pool again (aiohttp's tracing)."""
    tc = aiohttp.TraceConfig()

    async def created(session, ctx, params):
        stats["created"] += 1

    async def reused(session, ctx, params):
        stats["reused"] += 1

    tc.on_connection_create_end.append(created)
    tc.on_connection_reuseconn.append(reused)
    # the session azure-core would make itself, plus the tracing
    session = aiohttp.ClientSession(trace_configs=[tc], cookie_jar=aiohttp.DummyCookieJar(),
                                    auto_decompress=False, trust_env=True)
    return AioHttpTransport(session=session, session_owner=True, **kwargs)


def claims_of(token):
    return json.loads(unb64url(token.split(".")[1]))


def expect_error(status, code, exc, inner=None, message=None):
    """Check an HttpResponseError caught by the caller against Key Vault's error body."""
    eq(exc.status_code, status, f"status ({exc.message})")
    check(exc.error is not None, f"no Key Vault error body: {exc.message}")
    eq(exc.error.code, code, "error.code")
    if inner is not None:
        eq((exc.error.innererror or {}).get("code"), inner, "error.innererror.code")
    if message is not None:
        eq(exc.error.message, message, "error.message")


async def raises(cls, coro):
    """Await @coro; return the exception of class @cls it raised (fail if none)."""
    try:
        await coro
    except cls as e:
        return e
    raise AssertionError(f"expected {cls.__name__}, the call succeeded")


async def collect(pager):
    """Every item of an AsyncItemPaged, with `async for`."""
    return [item async for item in pager]


async def pages_of(pager):
    """The pages of an AsyncItemPaged (by_page(), each read with `async for`) and the
    continuation token after each."""
    it = pager.by_page()
    pages, links = [], []
    async for page in it:
        pages.append([item async for item in page])
        links.append(it.continuation_token)
    return pages, links


def main():
    args = parse_args()
    runner = Runner()
    aio = aio_test(runner)
    LEAKS.install()
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        kv.apply_env()
        P = kv.https_port
        url = kv.vault_url("default")
        authority = f"https://localhost:{P}"
        created = set()  # every key name made in the vault, for the listings
        state = {}

        # trust kvmock's CA on every connection that uses TLS (see the docstring); the
        # managed identity endpoint is plain HTTP
        tls = {"connection_verify": kv.ca_path}

        def mi(**kw):
            return ManagedIdentityCredential(**kw)

        def ci_cred(secret=CI["clientSecret"], **kw):
            return ClientSecretCredential(TENANT, CI["clientId"], secret, authority=authority,
                                          **dict(tls, **kw))

        def keys(cred, **kw):
            return KeyClient(url, cred, **dict(tls, **kw))

        def crypto(key, cred, **kw):
            return CryptographyClient(key, cred, **dict(tls, **kw))

        def audited(op, path):
            """The callers' object ids of the audit records of @op on @path."""
            return [caller_oid(r) for r in kv.audit_records()
                    if r["operationName"] == op
                    and urllib.parse.urlsplit(r["properties"]["requestUri"]).path == path]

        # ---- the unclosed-resource check itself ------------------------------------------

        @runner.test
        def an_unclosed_client_is_caught():
            async def leak():
                cred = mi()
                client = keys(cred)
                # a request opens the aiohttp sessions of the credential and the client
                await raises(ResourceNotFoundError, client.get_key("never-made"))
            before = len(LEAKS.found)
            arun(leak())
            left = LEAKS.found[before:]
            del LEAKS.found[before:]
            check(any("Unclosed client session" in m for m in left), f"not caught: {left}")

        # ---- credentials -----------------------------------------------------------------

        @aio
        async def managed_identity_credential():
            async with mi() as cred:
                t0 = time.time()
                tok = await cred.get_token(VAULT_SCOPE)
                c = claims_of(tok.token)
                eq((c["oid"], c["appid"], c["tid"], c["aud"]),
                   (APP["objectId"], APP["clientId"], TENANT, "https://vault.azure.net"))
                check(abs(tok.expires_on - (t0 + 3600)) < 120, f"expires_on {tok.expires_on}")
                eq(type(cred._credential).__name__, "AppServiceCredential", "the App Service way")
                async with keys(cred) as client:
                    k = await client.create_rsa_key("mi-made")
                    created.add("mi-made")
                    eq((await client.get_key("mi-made")).id, k.id)
            eq(audited("KeyCreate", "/keys/mi-made/create"), [APP["objectId"]], "KeyCreate caller")
            # a user-assigned identity by its client id
            async with mi(client_id=WORKER["clientId"]) as cred:
                c = claims_of((await cred.get_token(VAULT_SCOPE)).token)
                eq((c["oid"], c["appid"]), (WORKER["objectId"], WORKER["clientId"]))

        @aio
        async def default_azure_credential_picks_the_managed_identity():
            async with DefaultAzureCredential() as cred:
                c = claims_of((await cred.get_token(VAULT_SCOPE)).token)
                eq((c["oid"], c["appid"]), (APP["objectId"], APP["clientId"]))
                chosen = cred._successful_credential
                check(isinstance(chosen, ManagedIdentityCredential), f"chose {chosen!r}")
                async with keys(cred) as client:
                    eq((await client.get_key("mi-made")).name, "mi-made")
            by_client_id = DefaultAzureCredential(managed_identity_client_id=WORKER["clientId"])
            async with by_client_id as cred:
                c = claims_of((await cred.get_token(VAULT_SCOPE)).token)
                eq(c["oid"], WORKER["objectId"], "managed_identity_client_id")
                check(isinstance(cred._successful_credential, ManagedIdentityCredential))

        @aio
        async def client_secret_credential():
            sent = []

            def record(response):  # azure-core's raw_response_hook, on the credential
                u = urllib.parse.urlsplit(response.http_request.url)
                sent.append((response.http_request.method, f"{u.scheme}://{u.netloc}{u.path}",
                             response.http_response.status_code))
            async with ci_cred(raw_response_hook=record) as cred:
                tok = await cred.get_token(VAULT_SCOPE)
                c = claims_of(tok.token)
                eq((c["oid"], c["appid"], c["tid"], c["aud"]),
                   (CI["objectId"], CI["clientId"], TENANT, "https://vault.azure.net"))
                token_request = ("POST", f"{authority}/{TENANT}/oauth2/v2.0/token", 200)
                eq(sent, [token_request], "one token request, no instance discovery")
                async with keys(cred) as client:
                    k = await client.create_ec_key("ci-made")
                    created.add("ci-made")
                    eq((await client.get_key("ci-made")).key.x, k.key.x)
                # one more, for the scope of the vault's challenge (https://vault.localhost:P)
                eq(sent, [token_request] * 2, "tokens are cached per scope")
                await cred.get_token(f"https://vault.localhost:{P}/.default")
                eq(len(sent), 2, "the token for the challenge's scope was cached")
            eq(audited("KeyCreate", "/keys/ci-made/create"), [CI["objectId"]], "KeyCreate caller")
            # the sync credential's instance_discovery=False (README) is accepted too: the
            # async credential of azure-identity 1.13 asks for no instance discovery at all
            async with ci_cred(instance_discovery=False) as cred:
                eq(claims_of((await cred.get_token(VAULT_SCOPE)).token)["oid"], CI["objectId"])
            # a wrong secret: Entra's invalid_client
            async with ci_cred(secret="wrong") as cred:
                e = await raises(ClientAuthenticationError, cred.get_token(VAULT_SCOPE))
                check("invalid_client" in str(e), str(e))

        @aio
        async def tls_trust_of_the_aiohttp_transport():
            work = tempfile.mkdtemp(prefix="kvmock-aio-")
            try:
                impostor = os.path.join(work, "impostor-ca.pem")
                write_impostor_ca(impostor)
                kid = f"{url}/keys/mi-made/"
                # connection_verify naming another CA is refused, by the vault and by the
                # authority, so the certificates are really checked with it
                async with mi() as cred, keys(cred, connection_verify=impostor,
                                              retry_total=0) as client:
                    e = await raises(ServiceRequestError, client.get_key("mi-made"))
                    check("CERTIFICATE_VERIFY_FAILED" in str(e), str(e))
                async with ci_cred(connection_verify=impostor, retry_total=0) as cred:
                    e = await raises(ServiceRequestError, cred.get_token(VAULT_SCOPE))
                    check("CERTIFICATE_VERIFY_FAILED" in str(e), str(e))
                # and kvmock's CA is taken (as in every other test), for both host names
                async with ci_cred() as cred, keys(cred) as client:
                    check((await client.get_key("mi-made")).id.startswith(kid), "vault")
                # without connection_verify nothing is checked: the variables name the
                # impostor, and the child process still reaches kvmock. If this fails, the
                # async clients verify by default now: trust SSL_CERT_FILE, set before the
                # first request, instead of connection_verify
                env = {k: v for k, v in os.environ.items()
                       if k not in ("SSL_CERT_DIR", "CURL_CA_BUNDLE")}
                env.update(SSL_CERT_FILE=impostor, REQUESTS_CA_BUNDLE=impostor)
                proc = subprocess.run(["/usr/bin/python3", "-c", TRUST_CHILD, url, "mi-made"],
                                      env=env, capture_output=True, text=True, timeout=120)
                eq(proc.returncode, 0, proc.stderr[-3000:])
                got = proc.stdout.strip().splitlines()[-1]
                check(got.startswith(kid), f"the default transport refused kvmock: {got}")
            finally:
                shutil.rmtree(work, ignore_errors=True)

        # ---- the key lifecycle ---------------------------------------------------------------

        def check_bundle(k, name, kty, ops):
            eq(k.name, name, "name")
            eq(k.key_type, kty, "kty")
            eq(sorted(k.key_operations), sorted(ops), f"key_ops of {kty}")
            v = k.properties.version
            check(isinstance(v, str) and VERSION.match(v), f"version {v!r}")
            eq(k.id, f"{url}/keys/{name}/{v}", "kid")
            eq(k.key.kid, k.id, "key.kid")
            for m in ("d", "p", "q", "dp", "dq", "qi", "k"):
                eq(getattr(k.key, m, None), None, f"private JWK member {m} returned")
            p = k.properties
            eq(p.enabled, True, "enabled")
            eq(p.updated_on, p.created_on, "updated == created on a new key")
            eq((p.recovery_level, p.recoverable_days), ("Recoverable+Purgeable", 90))
            eq(p.exportable, False, "exportable")

        @aio
        async def create_rsa_ec_and_oct_hsm_keys():
            async with mi() as cred, keys(cred) as client:
                made = {
                    "lc-rsa": await client.create_rsa_key("lc-rsa", size=2048),
                    "lc-rsa-hsm": await client.create_rsa_key("lc-rsa-hsm", size=3072,
                                                              hardware_protected=True),
                    "lc-ec": await client.create_ec_key("lc-ec", curve="P-256"),
                    "lc-ec-hsm": await client.create_ec_key("lc-ec-hsm", curve="P-384",
                                                            hardware_protected=True),
                    "lc-oct": await client.create_oct_key("lc-oct", size=256,
                                                          hardware_protected=True),
                }
            created.update(made)
            state.update(made)
            for name, kty, size in (("lc-rsa", "RSA", 256), ("lc-rsa-hsm", "RSA-HSM", 384)):
                k = made[name]
                check_bundle(k, name, kty, RSA_OPS)
                eq((len(k.key.n), k.key.e), (size, b"\x01\x00\x01"), f"{name} n, e")
                check(k.key.n[0] & 0x80, "modulus has its top bit set")
            for name, kty, crv, size in (("lc-ec", "EC", "P-256", 32),
                                         ("lc-ec-hsm", "EC-HSM", "P-384", 48)):
                k = made[name]
                check_bundle(k, name, kty, EC_OPS)
                eq((k.key.crv, len(k.key.x), len(k.key.y)), (crv, size, size), name)
            check_bundle(made["lc-oct"], "lc-oct", "oct-HSM",
                         ["encrypt", "decrypt", "wrapKey", "unwrapKey"])

        @aio
        async def get_current_and_by_version():
            first = state["lc-rsa"]
            async with mi() as cred, keys(cred) as client:
                second = await client.create_rsa_key("lc-rsa", size=2048)
                check(second.properties.version != first.properties.version, "a new version")
                latest = await client.get_key("lc-rsa")
                eq((latest.id, latest.key.n), (second.id, second.key.n), "current version")
                old = await client.get_key("lc-rsa", first.properties.version)
                eq((old.id, old.key.n, old.key.e), (first.id, first.key.n, first.key.e))
                check(old.key.n != latest.key.n, "new key material")
            state["lc-rsa.v2"] = second

        @aio
        async def update_properties():
            v1 = state["lc-rsa"].properties.version
            expires = datetime(2031, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
            async with mi() as cred, keys(cred) as client:
                u = await client.update_key_properties("lc-rsa", v1, enabled=False,
                                                       expires_on=expires, tags={"team": "aio"},
                                                       key_operations=["verify"])
                eq((u.id, u.properties.enabled, u.properties.expires_on, u.properties.tags,
                    u.key_operations),
                   (state["lc-rsa"].id, False, expires, {"team": "aio"}, ["verify"]))
                check(u.properties.updated_on >= u.properties.created_on, "updated")
                got = await client.get_key("lc-rsa", v1)
                eq((got.properties.enabled, got.properties.tags), (False, {"team": "aio"}))
                current = await client.get_key("lc-rsa")
                cp = current.properties
                eq((cp.version, cp.enabled, cp.tags),
                   (state["lc-rsa.v2"].properties.version, True, None), "other version untouched")
                back = await client.update_key_properties("lc-rsa", v1, enabled=True)
                eq((back.properties.enabled, back.properties.tags), (True, {"team": "aio"}))

        @aio
        async def rotate():
            before = state["lc-ec"]
            async with mi() as cred, keys(cred) as client:
                r = await client.rotate_key("lc-ec")
                check(r.properties.version != before.properties.version, "a new version")
                eq((r.name, r.key_type, r.key.crv), ("lc-ec", "EC", "P-256"), "same type and curve")
                check(r.key.x != before.key.x, "new key material")
                eq((await client.get_key("lc-ec")).id, r.id, "the rotated version is current")
                versions = await collect(client.list_properties_of_key_versions("lc-ec"))
                eq(sorted(p.version for p in versions),
                   sorted([before.properties.version, r.properties.version]))

        @aio
        async def list_versions_across_pages():
            rec = Recorder()
            async with mi() as cred, keys(cred, per_retry_policies=[rec]) as client:
                made = [(await client.create_ec_key("lc-paged")).properties.version
                        for _ in range(5)]
                created.add("lc-paged")
                m = rec.mark()
                pages, links = await pages_of(
                    client.list_properties_of_key_versions("lc-paged", max_page_size=2))
                eq([len(p) for p in pages], [2, 2, 1], "pages of maxresults=2")
                eq(links[-1], None, "no nextLink after the last page")
                for link in links[:-1]:
                    check(link.startswith(f"{url}/keys/lc-paged/versions?"), link)
                gets = [r for r in rec.log[m:] if r[0] == "GET"]
                eq([(r[1], r[2].get("maxresults"), r[3]) for r in gets],
                   [("/keys/lc-paged/versions", ["2"], 200)] * 3, "one GET per page")
                items = [p for page in pages for p in page]
                eq(sorted(p.version for p in items), sorted(made))
                for p in items:
                    eq((p.name, p.id, p.enabled), ("lc-paged", f"{url}/keys/lc-paged/{p.version}",
                                                   True))
                # plain `async for` over the items follows the nextLinks too
                eq(sorted(p.version for p in await collect(
                    client.list_properties_of_key_versions("lc-paged", max_page_size=3))),
                   sorted(made))
                # a key the vault does not hold has no versions: an empty list
                eq(await collect(client.list_properties_of_key_versions("never-made")), [])

        @aio
        async def list_keys_across_pages():
            rec = Recorder()
            async with mi() as cred, keys(cred, per_retry_policies=[rec]) as client:
                m = rec.mark()
                pages, links = await pages_of(client.list_properties_of_keys(max_page_size=3))
                names = [p.name for page in pages for p in page]
                eq(sorted(names), sorted(created), "the listing is exactly the keys made")
                eq([len(p) for p in pages], [3] * (len(created) // 3)
                   + ([len(created) % 3] if len(created) % 3 else []), "pages of maxresults=3")
                check(len(pages) >= 3, f"{len(pages)} pages")
                eq(links[-1], None)
                check(all(link.startswith(f"{url}/keys?") for link in links[:-1]), links)
                eq(len([r for r in rec.log[m:] if r[0] == "GET"]), len(pages), "one GET per page")
                for p in (p for page in pages for p in page):
                    eq((p.version, p.id), (None, f"{url}/keys/{p.name}"), "key list item")
                # default page size (25): one page
                eq(sorted(p.name for p in await collect(client.list_properties_of_keys())),
                   sorted(created))

        @aio
        async def backup_and_restore():
            async with mi() as cred, keys(cred) as client:
                k = await client.create_ec_key("lc-bk", curve="P-256")
                blob = await client.backup_key("lc-bk")
                check(isinstance(blob, bytes) and len(blob) > 64, f"backup of {len(blob)} bytes")
                check(k.key.x not in blob and b"P-256" not in blob, "the blob is sealed")
                e = await raises(ResourceExistsError, client.restore_key_backup(blob))
                eq(e.status_code, 409, "restore over a live key")
                await client.delete_key("lc-bk")
                await client.purge_deleted_key("lc-bk")
                await raises(ResourceNotFoundError, client.get_key("lc-bk"))
                restored = await client.restore_key_backup(blob)
                eq((restored.id, restored.key.x, restored.key.y, restored.key_type),
                   (k.id, k.key.x, k.key.y, "EC"), "restored with its version and material")
                eq((await client.get_key("lc-bk")).id, k.id)
            created.add("lc-bk")

        @aio
        async def delete_get_list_recover_purge():
            rec = Recorder()
            async with mi() as cred, keys(cred, per_retry_policies=[rec]) as client:
                k = await client.create_rsa_key("lc-del")
                m = rec.mark()
                deleted = await client.delete_key("lc-del")  # awaits the SDK's own poller
                eq(rec.since(m), [("DELETE", "/keys/lc-del", 200),
                                  ("GET", "/deletedkeys/lc-del", 200)],
                   "the poller is done at its first GET")
                eq((deleted.name, deleted.id, deleted.key.n),
                   ("lc-del", k.id, k.key.n), "the deleted key")
                eq(deleted.recovery_id, f"{url}/deletedkeys/lc-del")
                eq(deleted.scheduled_purge_date - deleted.deleted_date, timedelta(days=90))
                await raises(ResourceNotFoundError, client.get_key("lc-del"))
                got = await client.get_deleted_key("lc-del")
                eq((got.id, got.key.n, got.recovery_id), (k.id, k.key.n, deleted.recovery_id))
                listed = {d.name: d for d in await collect(client.list_deleted_keys())}
                eq(sorted(listed), ["lc-del"], "the deleted keys")
                eq((listed["lc-del"].recovery_id, listed["lc-del"].deleted_date),
                   (deleted.recovery_id, deleted.deleted_date))
                # soft-deleted, the name cannot be used again
                e = await raises(ResourceExistsError, client.create_rsa_key("lc-del"))
                expect_error(409, "Conflict", e, inner="ObjectIsDeletedButRecoverable")
                m = rec.mark()
                recovered = await client.recover_deleted_key("lc-del")
                eq(rec.since(m), [("POST", "/deletedkeys/lc-del/recover", 200),
                                  ("GET", "/keys/lc-del/", 200)], "recover, then its poller")
                eq((recovered.id, recovered.key.n), (k.id, k.key.n), "the same version back")
                eq((await client.get_key("lc-del")).key.n, k.key.n)
                await raises(ResourceNotFoundError, client.get_deleted_key("lc-del"))
                await client.delete_key("lc-del")
                await client.purge_deleted_key("lc-del")
                await raises(ResourceNotFoundError, client.get_deleted_key("lc-del"))
                await raises(ResourceNotFoundError, client.get_key("lc-del"))
                eq(await collect(client.list_deleted_keys()), [], "nothing left deleted")
                # and the name is free again
                again = await client.create_rsa_key("lc-del")
                check(again.properties.version != k.properties.version, "a new key")
            created.add("lc-del")

        @aio
        async def random_bytes():
            async with mi() as cred, keys(cred) as client:
                a, b = await client.get_random_bytes(32), await client.get_random_bytes(32)
                eq((type(a), len(a), len(b)), (bytes, 32, 32))
                check(a != b, "two draws differ")
                eq(len(await client.get_random_bytes(1)), 1)
                big = await client.get_random_bytes(128)
                eq(len(big), 128)
                check(len(set(big)) > 64, "128 random bytes hold many distinct values")

        @aio
        async def rotation_policy_get_and_update():
            async with mi() as cred, keys(cred) as client:
                k = await client.create_rsa_key("lc-rot")
                created.add("lc-rot")
                default = await client.get_key_rotation_policy("lc-rot")
                eq([(a.action.lower(), a.time_after_create, a.time_before_expiry)
                    for a in default.lifetime_actions], [("notify", None, "P30D")],
                   "the service's default policy")
                eq(default.expires_in, None)
                policy = KeyRotationPolicy(
                    expires_in="P90D",
                    lifetime_actions=[
                        KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate,
                                                  time_after_create="P30D"),
                        KeyRotationLifetimeAction(KeyRotationPolicyAction.notify,
                                                  time_before_expiry="P10D")])
                got = await client.update_key_rotation_policy("lc-rot", policy)
                want = [("rotate", "P30D", None), ("notify", None, "P10D")]
                eq([(a.action.lower(), a.time_after_create, a.time_before_expiry)
                    for a in got.lifetime_actions], want)
                eq(got.expires_in, "P90D")
                check(got.created_on is not None and got.updated_on is not None, "attributes")
                again = await client.get_key_rotation_policy("lc-rot")
                eq([(a.action.lower(), a.time_after_create, a.time_before_expiry)
                    for a in again.lifetime_actions], want)
                eq((again.expires_in, again.id), ("P90D", got.id))
                eq(got.id, f"{url}/keys/lc-rot/rotationpolicy")
                # the policy's expiry applies to the next version
                r = await client.rotate_key("lc-rot")
                check(r.properties.version != k.properties.version)
                eq(r.properties.expires_on - r.properties.created_on, timedelta(days=90))
                # an expiry under 28 days is refused
                e = await raises(HttpResponseError, client.update_key_rotation_policy(
                    "lc-rot", KeyRotationPolicy(expires_in="P10D")))
                eq(e.status_code, 400)

        # ---- crypto --------------------------------------------------------------------------

        def rsa_public(k):
            return rsa.RSAPublicNumbers(int.from_bytes(k.key.e, "big"),
                                        int.from_bytes(k.key.n, "big")).public_key()

        @aio
        async def encrypt_decrypt_rsa_oaep_256():
            alg = EncryptionAlgorithm.rsa_oaep_256
            rec, wrec = Recorder(), Recorder()
            async with mi() as cred, mi(client_id=WORKER["clientId"]) as wcred, \
                    keys(cred) as client:
                k = await client.create_rsa_key("cr-rsa", size=2048)
                created.add("cr-rsa")
                state["cr-rsa"] = k
                v = k.properties.version
                async with crypto(k, cred, per_retry_policies=[rec]) as local, \
                        crypto(k.id, wcred, per_retry_policies=[wrec]) as remote:
                    # `cryptography` encrypts with the public key, the server decrypts
                    data = secrets.token_bytes(64)
                    ct = rsa_public(k).encrypt(data, OAEP_256)
                    m = rec.mark()
                    out = await local.decrypt(alg, ct)
                    eq((out.plaintext, out.key_id, out.algorithm), (data, k.id, alg))
                    eq(rec.since(m), [("POST", f"/keys/cr-rsa/{v}/decrypt", 200)])
                    # the SDK encrypts locally with the key it holds
                    m = rec.mark()
                    e = await local.encrypt(alg, data)
                    eq(rec.since(m), [], "encrypt with a KeyVaultKey stays local")
                    eq((await local.decrypt(alg, e.ciphertext)).plaintext, data)
                    # without keys/get the SDK sends encrypt to the server
                    e1 = await remote.encrypt(alg, data)
                    e2 = await remote.encrypt(alg, data)
                    eq([r[:2] for r in wrec.since(0)],
                       [("GET", f"/keys/cr-rsa/{v}"), ("POST", f"/keys/cr-rsa/{v}/encrypt"),
                        ("POST", f"/keys/cr-rsa/{v}/encrypt")], "get refused, then the server")
                    eq([r[2] for r in wrec.since(0)], [403, 200, 200])
                    eq((e1.key_id, len(e1.ciphertext)), (k.id, 256))
                    check(e1.ciphertext != e2.ciphertext, "OAEP is randomized")
                    eq((await local.decrypt(alg, e1.ciphertext)).plaintext, data)
                    eq((await remote.decrypt(alg, e2.ciphertext)).plaintext, data)
                    # a ciphertext altered by one bit does not decrypt
                    bad = bytes([ct[0] ^ 1]) + ct[1:]
                    err = await raises(HttpResponseError, local.decrypt(alg, bad))
                    eq(err.status_code, 400, err.message)

        @aio
        async def wrap_unwrap_rsa_and_aes():
            k = state["cr-rsa"]
            async with mi() as cred, mi(client_id=WORKER["clientId"]) as wcred, \
                    keys(cred) as client, \
                    crypto(k, cred) as local, \
                    crypto(k.id, wcred) as remote:
                alg = KeyWrapAlgorithm.rsa_oaep_256
                dek = secrets.token_bytes(32)
                # `cryptography` wraps, the server unwraps
                out = await local.unwrap_key(alg, rsa_public(k).encrypt(dek, OAEP_256))
                eq((out.key, out.key_id), (dek, k.id))
                # the server wraps (the worker cannot read the key), the server unwraps
                w = await remote.wrap_key(alg, dek)
                eq((w.key_id, w.algorithm, len(w.encrypted_key)), (k.id, alg, 256))
                eq((await remote.unwrap_key(alg, w.encrypted_key)).key, dek)
                # A256KW on an oct-HSM key of known material: AES key wrap is deterministic,
                # so the server's result must be what `cryptography` computes. Through the
                # worker, which cannot read the key: azure-keyvault-keys 4.8.0b3, given an
                # oct key without "k" (as Key Vault returns every one), wraps locally with
                # a random key of its own instead of asking the server
                aes = secrets.token_bytes(32)
                imported = await client.import_key(
                    "cr-aes", JsonWebKey(kty="oct", k=aes, key_ops=["wrapKey", "unwrapKey"]),
                    hardware_protected=True)
                created.add("cr-aes")
                eq((imported.key_type, imported.key.k), ("oct-HSM", None), "no k returned")
                v = imported.properties.version
                rec = Recorder()
                async with crypto(imported.id, wcred, per_retry_policies=[rec]) as sym:
                    w = await sym.wrap_key(KeyWrapAlgorithm.aes_256, dek)
                    eq(w.encrypted_key, keywrap.aes_key_wrap(aes, dek), "A256KW as RFC 3394")
                    eq(w.key_id, imported.id)
                    other = secrets.token_bytes(24)
                    eq((await sym.unwrap_key(KeyWrapAlgorithm.aes_256,
                                             keywrap.aes_key_wrap(aes, other))).key, other)
                    bad = keywrap.aes_key_wrap(aes, other)
                    err = await raises(HttpResponseError, sym.unwrap_key(
                        KeyWrapAlgorithm.aes_256, bytes([bad[0] ^ 1]) + bad[1:]))
                    eq(err.status_code, 400, err.message)
                    eq([r for r in rec.since(0) if r[0] == "POST"],
                       [("POST", f"/keys/cr-aes/{v}/wrapkey", 200),
                        ("POST", f"/keys/cr-aes/{v}/unwrapkey", 200),
                        ("POST", f"/keys/cr-aes/{v}/unwrapkey", 400)], "all on the server")

        @aio
        async def sign_verify_es256():
            alg = SignatureAlgorithm.es256
            msg = b"a message signed by kvmock through the async SDK"
            digest = hashlib.sha256(msg).digest()
            wrec = Recorder()
            async with mi() as cred, mi(client_id=WORKER["clientId"]) as wcred, \
                    keys(cred) as client:
                k = await client.create_ec_key("cr-ec", curve="P-256")
                created.add("cr-ec")
                v = k.properties.version
                pub = ec.EllipticCurvePublicNumbers(int.from_bytes(k.key.x, "big"),
                                                    int.from_bytes(k.key.y, "big"),
                                                    ec.SECP256R1()).public_key()
                async with crypto(k, cred) as local, \
                        crypto(k.id, wcred, per_retry_policies=[wrec]) as remote:
                    s = await local.sign(alg, digest)
                    eq((s.key_id, s.algorithm, len(s.signature)), (k.id, alg, 64), "raw R||S")
                    r, s_ = int.from_bytes(s.signature[:32], "big"), int.from_bytes(
                        s.signature[32:], "big")
                    der = encode_dss_signature(r, s_)
                    pub.verify(der, msg, ec.ECDSA(hashes.SHA256()))  # raises if invalid
                    try:
                        pub.verify(der, msg + b"!", ec.ECDSA(hashes.SHA256()))
                        check(False, "another message must not verify")
                    except InvalidSignature:
                        pass
                    bad = s.signature[:-1] + bytes([s.signature[-1] ^ 1])
                    # the SDK verifies locally with the key it holds
                    eq(((await local.verify(alg, digest, s.signature)).is_valid,
                        (await local.verify(alg, digest, bad)).is_valid), (True, False))
                    # the server verifies for the worker
                    m = wrec.mark()
                    eq(((await remote.verify(alg, digest, s.signature)).is_valid,
                        (await remote.verify(alg, digest, bad)).is_valid), (True, False))
                    eq([r_ for r_ in wrec.since(m) if r_[0] == "POST"],
                       [("POST", f"/keys/cr-ec/{v}/verify", 200)] * 2, "verified by the server")
                    # and signs for it: a signature `cryptography` accepts
                    s2 = await remote.sign(alg, digest)
                    pub.verify(encode_dss_signature(int.from_bytes(s2.signature[:32], "big"),
                                                    int.from_bytes(s2.signature[32:], "big")),
                               msg, ec.ECDSA(hashes.SHA256()))

        # ---- errors ----------------------------------------------------------------------------

        @aio
        async def missing_key_raises_resource_not_found():
            async with mi() as cred, keys(cred) as client:
                e = await raises(ResourceNotFoundError, client.get_key("nosuch"))
                expect_error(404, "KeyNotFound", e)
                e = await raises(ResourceNotFoundError, client.get_key("cr-rsa", "0" * 32))
                expect_error(404, "KeyNotFound", e)
                e = await raises(ResourceNotFoundError, client.delete_key("nosuch"))
                expect_error(404, "KeyNotFound", e)
                e = await raises(ResourceNotFoundError, client.get_deleted_key("nosuch"))
                expect_error(404, "KeyNotFound", e)
                async with crypto(f"{url}/keys/nosuch/{'1' * 32}", cred) as c:
                    e = await raises(ResourceNotFoundError,
                                     c.unwrap_key(KeyWrapAlgorithm.rsa_oaep, b"x" * 256))
                    expect_error(404, "KeyNotFound", e)

        @aio
        async def forbidden_operation_raises_403():
            def denied(who, perm):
                return (f"The user, group or application 'appid={who['clientId']};"
                        f"oid={who['objectId']}' does not have keys {perm} permission on key "
                        f"vault 'default;location=local'. For help resolving this issue, "
                        f"please see https://go.microsoft.com/fwlink/?linkid=2125287")
            async with mi(client_id=WORKER["clientId"]) as wcred, ci_cred() as ccred, \
                    keys(wcred) as worker, keys(ccred) as ci:
                for perm, call in (("get", lambda: worker.get_key("cr-rsa")),
                                   ("create", lambda: worker.create_rsa_key("worker-made")),
                                   ("list", lambda: collect(worker.list_properties_of_keys()))):
                    e = await raises(HttpResponseError, call())
                    check(not isinstance(e, ResourceNotFoundError), f"{perm}: {type(e)}")
                    expect_error(403, "Forbidden", e, inner="AccessDenied",
                                 message=denied(WORKER, perm))
                e = await raises(HttpResponseError, ci.delete_key("ci-made"))
                expect_error(403, "Forbidden", e, inner="AccessDenied",
                             message=denied(CI, "delete"))
                e = await raises(HttpResponseError, ci.get_key_rotation_policy("ci-made"))
                expect_error(403, "Forbidden", e, inner="AccessDenied",
                             message=denied(CI, "getrotationpolicy"))
                eq((await ci.get_key("ci-made")).name, "ci-made", "nothing was deleted")
                await raises(ResourceNotFoundError, ci.get_key("worker-made"))

        # ---- concurrency -------------------------------------------------------------------

        @aio
        async def fifty_concurrent_get_key_and_unwrap():
            k = state["cr-rsa"]
            pub = rsa_public(k)
            flight = InFlight()
            async with mi() as cred, keys(cred, per_retry_policies=[flight]) as client:
                await client.get_key("cr-rsa")  # the token, once
                flight.peak = flight.done = 0
                got = await asyncio.gather(*(client.get_key("cr-rsa") for _ in range(50)))
                eq([(g.id, g.key.n) for g in got], [(k.id, k.key.n)] * 50, "every get_key")
                eq(flight.done, 50, "one request each")
                check(flight.peak >= 10, f"only {flight.peak} requests were in flight at once")
                # every key of the vault at once
                names = sorted(created)
                many = await asyncio.gather(*(client.get_key(n) for n in names))
                eq([g.name for g in many], names)
            uflight = InFlight()
            stats = {"created": 0, "reused": 0}
            alg = KeyWrapAlgorithm.rsa_oaep_256
            async with mi() as cred, crypto(k, cred, per_retry_policies=[uflight],
                                            transport=traced_transport(stats, **tls)) as c:
                deks = [secrets.token_bytes(32) for _ in range(50)]
                wrapped = [pub.encrypt(d, OAEP_256) for d in deks]
                await c.unwrap_key(alg, wrapped[0])  # the token, once
                uflight.peak = uflight.done = 0
                before = dict(stats)
                out = await asyncio.gather(*(c.unwrap_key(alg, w) for w in wrapped))
                eq([o.key for o in out], deks, "each unwrap gives back its own key")
                eq({o.key_id for o in out}, {k.id})
                eq(uflight.done, 50, "one request each")
                check(uflight.peak >= 10, f"only {uflight.peak} unwraps were in flight at once")
                # one pool opened connections in parallel, never more than requests
                opened = stats["created"] - before["created"]
                check(10 <= opened <= 50, f"{opened} connections for 50 requests: {stats}")

        @aio
        async def kvmock_keeps_the_connections_of_the_default_transport():
            # azure-core's default transport (here without connection_verify, so no
            # certificate is checked) takes its connections from the pool again: kvmock keeps
            # them open. With connection_verify=PATH, azure-core 1.26.3 makes
            # an SSLContext per request, which is part of aiohttp's pool key: no connection is
            # ever taken again, and a burst of requests holds one of kvmock's worker threads
            # (--threads, 256) per request until kvmock's idle timeout closes it. Both work.
            for kw, most in (({}, 1), (tls, 20)):
                stats = {"created": 0, "reused": 0}
                async with mi() as cred, KeyClient(url, cred, transport=traced_transport(
                        stats, **kw)) as client:
                    for _ in range(20):
                        eq((await client.get_key("cr-rsa")).id, state["cr-rsa"].id)
                eq(stats["created"] + stats["reused"], 20, f"{kw}: {stats}")
                check(1 <= stats["created"] <= most, f"{kw}: {stats}")

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
