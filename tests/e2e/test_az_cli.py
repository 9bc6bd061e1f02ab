"""The Azure CLI (Debian's azure-cli) against kvmock, unmodified: the cloud comes
from kvmock's /metadata/endpoints (ARM_CLOUD_METADATA_URL), `az login --identity`
gets its token from kvmock's managed-identity endpoint and lists kvmock's
subscription, `az keyvault` manages vaults (create, show, list, set-policy,
update, delete, list-deleted, show-deleted, recover, purge), and `az rest` drives the data plane.
`az login --service-principal` signs in as CI pipelines do, with a certificate
(MSAL's RS256 assertion with x5t, and with x5c) and with a federated token (an
OIDC issuer's JWT this test signs), against identities whose clientCertificates
and federatedCredentials the test generates before kvmock starts.
Raw HTTP checks the answers
the CLI does not show: the metadata's two shapes, the subscription and tenant
lists, generic resources, status codes and error bodies.

Debian's azure-cli 2.45 cannot run `az keyvault key ...` at all (its package
lacks azure.keyvault.v7_0 and fails before sending a request), so the keys go
through `az rest`, as the README says."""
import datetime
import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT, APP  # noqa: E402

SUB = "00000000-0000-0000-0000-000000000000"
READER = {"name": "reader", "objectId": "0a000000-0000-4000-8000-0000000000b1",
          "clientId": "0c000000-0000-4000-8000-0000000000b1"}
# Service principals of CI pipelines: one signs in with a certificate (and may manage),
# one with a federated token. Their credentials are made at run time (make_credentials).
CI_CERT = {"name": "ci-cert", "objectId": "0a000000-0000-4000-8000-0000000000c1",
           "clientId": "0c000000-0000-4000-8000-0000000000c1", "manage": True}
CI_OIDC = {"name": "ci-oidc", "objectId": "0a000000-0000-4000-8000-0000000000c2",
           "clientId": "0c000000-0000-4000-8000-0000000000c2"}
OIDC_ISSUER = "https://ci.kvmock.test/oidc"
OIDC_SUBJECT = "repo:kvmock/kvmock:ref:refs/heads/main"
OIDC_AUDIENCE = "api://AzureADTokenExchange"
CONFIG = {"tenantId": TENANT, "identities": [APP, READER, CI_CERT, CI_OIDC]}
MGMT = "https://management.azure.com"
ARM_API = "api-version=2023-07-01"
SUB_API = "api-version=2022-12-01"


def self_signed(folder, name):
    """A new RSA key and its self-signed certificate in one PEM file, as `az login
    --service-principal --password` takes it; (path, the certificate's SHA-1 hex)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .sign(key, hashes.SHA256()))
    path = os.path.join(folder, f"{name}.pem")
    with open(path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return path, cert.fingerprint(hashes.SHA1()).hex().upper()


def make_credentials(folder):
    """Give CI_CERT a certificate (the key + certificate PEM file az signs with: kvmock
    ignores the key) and CI_OIDC a federated credential with the issuer's public key;
    the issuer's private key (to sign federated tokens) and its kid."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    CI_CERT["clientCertificates"] = self_signed(folder, "ci-cert")[0]
    issuer_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    kid = "ci-oidc-key-1"
    pub = issuer_key.public_key().public_numbers()
    jwk = {"kty": "RSA", "use": "sig", "alg": "RS256", "kid": kid,
           "n": b64url(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
           "e": b64url(pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big"))}
    CI_OIDC["federatedCredentials"] = [{"name": "ci-main", "issuer": OIDC_ISSUER,
                                        "subject": OIDC_SUBJECT, "audiences": [OIDC_AUDIENCE],
                                        "jwks": {"keys": [jwk]}}]
    return issuer_key, kid


def federated_token(key, kid, subject=OIDC_SUBJECT, lifetime=600):
    """A JWT as a CI's OIDC issuer signs it (RS256, with kid) for Entra's token exchange."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", "kid": kid}
    claims = {"iss": OIDC_ISSUER, "sub": subject, "aud": OIDC_AUDIENCE, "iat": now,
              "nbf": now, "exp": now + lifetime, "jti": str(uuid.uuid4())}
    signing_input = (b64url(json.dumps(header).encode()) + "."
                     + b64url(json.dumps(claims).encode()))
    sig = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return signing_input + "." + b64url(sig)


def seed_msal_instance_discovery(az_config_dir, base):
    """az's MSAL (1.21) asks login.microsoftonline.com's instance discovery about any
    sign-in host it does not know (the README's limit of `az login --service-principal`).
    Offline, put the answers into az's MSAL HTTP cache (AZURE_CONFIG_DIR/msal_http_cache.bin,
    a pickled dict that MSAL's ThrottledHttpClient reads before any GET, kept 24 h), as the
    discovery would answer for an allowed host: tenant discovery at kvmock's
    openid-configuration. Everything else az sends then goes to kvmock."""
    import requests  # az's own dependency: MSAL caches requests' responses

    def answer(doc):
        resp = requests.models.Response()
        resp.status_code = 200
        resp.encoding = "utf-8"
        resp.headers["Content-Type"] = "application/json; charset=utf-8"
        resp._content = json.dumps(doc).encode()
        return resp

    def sha(raw):
        return hashlib.sha256(repr(raw).encode()).hexdigest()

    discovery = "https://login.microsoftonline.com/common/discovery/instance"
    metadata = [{"preferred_network": "localhost", "preferred_cache": "localhost",
                 "aliases": ["localhost"]}]
    # Authority(): the authority's host without its port, then its path
    params = {"authorization_endpoint": f"https://localhost/{TENANT}/oauth2/v2.0/authorize",
              "api-version": "1.0"}
    authority = answer({"tenant_discovery_endpoint":
                        f"{base}/{TENANT}/v2.0/.well-known/openid-configuration",
                        "api-version": "1.1", "metadata": metadata})
    # acquire_token_silent(): the aliases of the public cloud's hosts
    aliases_url = (f"{discovery}?api-version=1.1&authorization_endpoint="
                   "https://login.microsoftonline.com/common/oauth2/authorize")
    entries = {f"GET {discovery} hash={sha(params)} 2xx": authority,
               f"GET {aliases_url} hash={sha('')} 2xx": answer({"metadata": metadata})}
    now = int(time.time())
    expires = now + 24 * 3600
    cache = dict(entries)
    cache["_index_"] = ([[expires, now, k] for k in sorted(entries)],
                        {k: [expires, now] for k in entries})
    with open(os.path.join(az_config_dir, "msal_http_cache.bin"), "wb") as f:
        pickle.dump(cache, f)


def main():
    args = parse_args()
    runner = Runner()
    az_bin = shutil.which("az")
    check(az_bin is not None, "az is not installed (scripts/install-deps.sh --test installs "
                              "Debian's azure-cli)")
    config_dir = tempfile.mkdtemp(prefix="kvmock-az-")
    cred_dir = tempfile.mkdtemp(prefix="credentials-", dir=config_dir)
    issuer_key, issuer_kid = make_credentials(cred_dir)
    with Kvmock(args.kvmock, config=CONFIG) as kv:
        P = kv.https_port
        base = f"https://localhost:{P}"
        env = kv.az_env(config_dir)

        def az(*argv, ok=True):
            """Run az with kvmock's cloud; the parsed JSON output (None when empty)."""
            proc = subprocess.run([az_bin, *argv, "--output", "json"], env=env,
                                  capture_output=True, text=True, timeout=120)
            if ok and proc.returncode != 0:
                raise AssertionError(f"az {' '.join(argv)} exited {proc.returncode}:\n"
                                     f"{proc.stderr[-3000:]}")
            if not ok:
                return proc
            return json.loads(proc.stdout) if proc.stdout.strip() else None

        def arm(method, path, token=True, body=None):
            tok = kv.token(MGMT) if token is True else token
            st, _, resp = kv.https(method, path, body, token=tok)
            return st, (json.loads(resp) if resp else None)

        # ---- raw HTTP: what az reads, exactly ----------------------------------------------

        @runner.test
        def cloud_metadata_needs_no_token_and_names_kvmock():
            st, _, body = kv.https("GET", "/metadata/endpoints?api-version=2022-09-01", token=None)
            eq(st, 200, body)
            clouds = json.loads(body)
            eq(len(clouds), 1, clouds)
            c = clouds[0]
            eq(c["name"], "kvmock")
            eq(c["resourceManager"], f"{base}/")
            eq(c["authentication"]["loginEndpoint"], f"{base}/")
            eq(c["authentication"]["audiences"][0], "https://management.core.windows.net/")
            check("https://management.azure.com/" in c["authentication"]["audiences"], c)
            eq(c["suffixes"]["keyVaultDns"], f"vault.localhost:{P}")
            # the first shape, which `az cloud register --endpoint-resource-manager` reads,
            # also under the double slash msrestazure sends
            for path in ("/metadata/endpoints?api-version=2015-01-01",
                         "//metadata/endpoints?api-version=2015-01-01"):
                st, _, body = kv.https("GET", path, token=None)
                eq(st, 200, body)
                doc = json.loads(body)
                eq(doc["authentication"]["loginEndpoint"], f"{base}/")
                check(doc["galleryEndpoint"] and doc["graphEndpoint"], doc)
            st, err = arm("GET", "/metadata/endpoints", token=None)
            eq(st, 400, err)
            eq(err["error"]["code"], "BadRequest")
            check("api-version" in err["error"]["message"], err)

        @runner.test
        def subscriptions_are_listed_to_who_may_manage():
            st, doc = arm("GET", f"/subscriptions?{SUB_API}")
            eq(st, 200, doc)
            eq(len(doc["value"]), 1, doc)
            s = doc["value"][0]
            eq(s["id"], f"/subscriptions/{SUB}")
            eq(s["subscriptionId"], SUB)
            eq(s["tenantId"], TENANT)
            eq(s["state"], "Enabled")
            eq(s["displayName"], "kvmock")
            st, one = arm("GET", f"/subscriptions/{SUB}?{SUB_API}")
            eq((st, one), (200, s))
            # an identity without `manage` has no role on it: an empty list, as ARM answers
            reader = kv.token(MGMT, client_id=READER["clientId"])
            eq(arm("GET", f"/subscriptions?{SUB_API}", token=reader), (200, {"value": []}))
            st, err = arm("GET", f"/subscriptions/{SUB}?{SUB_API}", token=reader)
            eq(st, 404, err)
            eq(err["error"]["code"], "SubscriptionNotFound")
            other = "11111111-2222-4333-8444-555555555555"
            st, err = arm("GET", f"/subscriptions/{other}?{SUB_API}")
            eq(st, 404, err)
            eq(err["error"]["code"], "SubscriptionNotFound")
            check(other in err["error"]["message"], err)

        @runner.test
        def subscriptions_refuse_bad_calls():
            st, err = arm("GET", f"/subscriptions?{SUB_API}", token=None)
            eq(st, 401, err)
            eq(err["error"]["code"], "InvalidAuthenticationToken")
            st, err = arm("GET", f"/subscriptions?{SUB_API}", token=kv.token())  # a vault token
            eq(st, 401, err)
            st, err = arm("GET", "/subscriptions?api-version=1999-01-01")
            eq(st, 400, err)
            eq(err["error"]["code"], "BadRequest")
            st, err = arm("DELETE", f"/subscriptions/{SUB}?{SUB_API}")
            eq(st, 405, err)

        @runner.test
        def tenants_list_the_callers_tenant():
            for token in (kv.token(MGMT), kv.token(MGMT, client_id=READER["clientId"])):
                st, doc = arm("GET", f"/tenants?{SUB_API}", token=token)
                eq(st, 200, doc)
                eq([t["tenantId"] for t in doc["value"]], [TENANT])
                eq(doc["value"][0]["id"], f"/tenants/{TENANT}")

        @runner.test
        def vaults_as_generic_resources():
            path = f"/subscriptions/{SUB}/resources"
            st, doc = arm("GET", f"{path}?$filter=resourceType%20eq%20%27Microsoft.KeyVault%2F"
                                 f"vaults%27&api-version=2015-11-01")
            eq(st, 200, doc)
            default = [r for r in doc["value"] if r["name"] == "default"]
            eq(len(default), 1, doc)
            eq(default[0]["type"], "Microsoft.KeyVault/vaults")
            eq(default[0]["id"], f"/subscriptions/{SUB}/resourceGroups/kvmock/providers/"
                                 f"Microsoft.KeyVault/vaults/default")
            # the id leads to the vault
            st, vault = arm("GET", f"{default[0]['id']}?{ARM_API}")
            eq(st, 200, vault)
            eq(vault["properties"]["vaultUri"], f"https://default.vault.localhost:{P}/")
            st, doc = arm("GET", f"{path}?$filter=resourceType%20eq%20%27Microsoft.Compute%2F"
                                 f"virtualMachines%27&api-version=2021-04-01")
            eq((st, doc), (200, {"value": []}))
            for bad in ("tagName eq 'x'", "resourceType eq '", "resourceType eq 'a'b'",
                        "resourceType eq 'Microsoft.KeyVault/vaults", "", "'" * 3000):
                q = urllib.parse.quote(bad)
                st, err = arm("GET", f"{path}?$filter={q}&api-version=2021-04-01")
                eq(st, 400, (bad[:40], err))
                eq(err["error"]["code"], "BadRequest")
            st, doc = arm("GET", f"{path}?$filter=RESOURCETYPE%20EQ%20%27microsoft.keyvault%2F"
                                 f"VAULTS%27&api-version=2021-04-01")
            eq(st, 200, doc)
            check("default" in [r["name"] for r in doc["value"]], doc)
            # a group's resources: the configuration file's vaults are in group kvmock
            st, doc = arm("GET", f"/subscriptions/{SUB}/resourceGroups/kvmock/resources?"
                                 f"api-version=2021-04-01")
            eq(st, 200, doc)
            check(any(r["id"] == f"/subscriptions/{SUB}/resourceGroups/kvmock/providers/"
                                 "Microsoft.KeyVault/vaults/default" for r in doc["value"]), doc)
            st, doc = arm("GET", f"/subscriptions/{SUB}/resourceGroups/any/resources?"
                                 f"api-version=2021-04-01")
            eq((st, doc["value"]), (200, []), doc)
            # the vaults of the subscription, whole
            st, doc = arm("GET", f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/vaults?{ARM_API}")
            eq(st, 200, doc)
            check(any(v["name"] == "default" and "vaultUri" in v["properties"]
                      for v in doc["value"]), doc)
            # kvmock has no managed HSMs
            for p in (f"/subscriptions/{SUB}/providers/Microsoft.KeyVault/deletedManagedHSMs",
                      f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/managedHSMs"):
                eq(arm("GET", f"{p}?{ARM_API}"), (200, {"value": []}))
            reader = kv.token(MGMT, client_id=READER["clientId"])
            st, err = arm("GET", f"{path}?api-version=2021-04-01", token=reader)
            eq(st, 403, err)
            eq(err["error"]["code"], "AuthorizationFailed")

        # ---- the CLI itself -------------------------------------------------------------

        @runner.test
        def az_login_with_the_managed_identity():
            az("cloud", "set", "--name", "kvmock")
            accounts = az("login", "--identity")
            eq([a["id"] for a in accounts], [SUB], accounts)
            eq(accounts[0]["tenantId"], TENANT)
            eq(accounts[0]["environmentName"], "kvmock")
            show = az("account", "show")
            eq(show["id"], SUB)
            eq(show["user"]["type"], "servicePrincipal")
            cloud = az("cloud", "show")
            eq(cloud["endpoints"]["resourceManager"], f"{base}/")
            eq(cloud["suffixes"]["keyvaultDns"], f".vault.localhost:{P}")

        @runner.test
        def az_cloud_register_reads_the_metadata():
            # the other way in: register a cloud from its Resource Manager URL alone
            other = dict(env, AZURE_CONFIG_DIR=tempfile.mkdtemp(prefix="kvmock-az-", dir=config_dir))
            other.pop("ARM_CLOUD_METADATA_URL")
            cmd = [az_bin, "cloud", "register", "--name", "kvmock2", "--endpoint-resource-manager",
                   f"{base}/", "--suffix-keyvault-dns", f".vault.localhost:{P}"]
            proc = subprocess.run(cmd, env=other, capture_output=True, text=True, timeout=120)
            eq(proc.returncode, 0, proc.stderr[-3000:])
            proc = subprocess.run([az_bin, "cloud", "show", "--name", "kvmock2", "--output", "json"],
                                  env=other, capture_output=True, text=True, timeout=120)
            eq(proc.returncode, 0, proc.stderr[-3000:])
            ends = json.loads(proc.stdout)["endpoints"]
            eq(ends["activeDirectory"], f"{base}/")
            eq(ends["activeDirectoryResourceId"], "https://management.core.windows.net/")
            # the older shape it reads names no Microsoft Graph, which az keyvault create
            # needs (the README says so); the README's --cloud-config registration names it
            eq(ends.get("microsoftGraphResourceId"), None)
            config = {"endpoints": {"resourceManager": f"{base}/",
                                    "microsoftGraphResourceId": "https://graph.microsoft.com/"},
                      "suffixes": {"keyvaultDns": f".vault.localhost:{P}"}}
            for argv in (["cloud", "register", "--name", "kvmock3", "--cloud-config",
                          json.dumps(config)],
                         ["cloud", "set", "--name", "kvmock3"],
                         ["login", "--identity"],
                         ["keyvault", "create", "--name", "regv", "--resource-group", "reg-rg",
                          "--location", "westeurope", "--no-self-perms"]):
                proc = subprocess.run([az_bin, *argv, "--output", "json"], env=other,
                                      capture_output=True, text=True, timeout=120)
                eq(proc.returncode, 0, (argv, proc.stderr[-3000:]))
            eq(json.loads(proc.stdout)["name"], "regv")

        def az_in_a_fresh_config(discovery_cached=False):
            """A run(*argv) -> (rc, stdout, stderr) in a fresh AZURE_CONFIG_DIR on kvmock's
            cloud; with discovery_cached, MSAL's instance discovery answered from its cache
            (seed_msal_instance_discovery)."""
            other = dict(env, AZURE_CONFIG_DIR=tempfile.mkdtemp(prefix="kvmock-az-", dir=config_dir))

            def run(*argv):
                proc = subprocess.run([az_bin, *argv, "--output", "json"], env=other,
                                      capture_output=True, text=True, timeout=120)
                return proc.returncode, proc.stdout, proc.stderr

            eq(run("cloud", "set", "--name", "kvmock")[0], 0)
            if discovery_cached:
                seed_msal_instance_discovery(other["AZURE_CONFIG_DIR"], base)
            return run

        @runner.test
        def az_login_as_a_user_assigned_identity():
            # --username picks the identity (client_id= on the token endpoint); one that may
            # not manage sees no subscription, so only a tenant-level login is possible
            run = az_in_a_fresh_config()
            rc, _, err = run("login", "--identity", "--username", READER["clientId"])
            check(rc != 0 and "subscriptions" in err.lower(), err[-2000:])
            rc, out, err = run("login", "--identity", "--username", READER["clientId"],
                               "--allow-no-subscriptions")
            eq(rc, 0, err[-2000:])
            eq(json.loads(out)[0]["tenantId"], TENANT)
            rc, out, err = run("account", "get-access-token", "--resource", "https://vault.azure.net")
            eq(rc, 0, err[-2000:])
            claims = json.loads(unb64url(json.loads(out)["accessToken"].split(".")[1]))
            eq((claims["oid"], claims["appid"]), (READER["objectId"], READER["clientId"]))

        @runner.test
        def az_token_is_one_kvmock_accepts():
            tok = az("account", "get-access-token", "--resource", "https://vault.azure.net")
            eq(tok["tenant"], TENANT)
            st, _, body = kv.https("GET", "/keys?api-version=7.4", token=tok["accessToken"],
                                   host=f"default.vault.localhost:{P}")
            eq(st, 200, body)

        @runner.test
        def az_rest_drives_the_data_plane():
            url = f"https://default.vault.localhost:{P}/keys/az-cmk"
            key = az("rest", "--method", "post", "--url", f"{url}/create?api-version=7.4",
                     "--resource", "https://vault.azure.net",
                     "--body", json.dumps({"kty": "RSA", "key_size": 2048}))
            check(key["key"]["kid"].startswith(f"{url}/"), key)
            dek = os.urandom(32)
            kid = key["key"]["kid"]
            wrapped = az("rest", "--method", "post", "--url", f"{kid}/wrapkey?api-version=7.4",
                         "--resource", "https://vault.azure.net",
                         "--body", json.dumps({"alg": "RSA-OAEP-256", "value": b64url(dek)}))
            plain = az("rest", "--method", "post", "--url", f"{url}//unwrapkey?api-version=7.4",
                       "--resource", "https://vault.azure.net",
                       "--body", json.dumps({"alg": "RSA-OAEP-256", "value": wrapped["value"]}))
            eq(unb64url(plain["value"]), dek)
            # an error reaches the user with Key Vault's code
            proc = az("rest", "--method", "get", "--url", f"{url}-missing?api-version=7.4",
                      "--resource", "https://vault.azure.net", ok=False)
            check(proc.returncode != 0 and "KeyNotFound" in proc.stderr, proc.stderr[-2000:])

        @runner.test
        def az_keyvault_manages_vaults():
            made = az("keyvault", "create", "--name", "azv", "--resource-group", "rg",
                      "--location", "westeurope", "--no-self-perms", "--tags", "team=payments")
            eq(made["name"], "azv")
            eq(made["tags"], {"team": "payments"})
            eq(made["location"], "westeurope")
            eq(made["properties"]["vaultUri"], f"https://azv.vault.localhost:{P}/")
            eq(made["properties"]["accessPolicies"], [])
            # without a resource group az finds the vault through the generic resources
            shown = az("keyvault", "show", "--name", "azv")
            eq((shown["name"], shown["location"]), ("azv", "westeurope"))
            check({"azv", "default"} <= {v["name"] for v in az("keyvault", "list")})
            # no policy yet: the vault refuses the identity
            url = f"https://azv.vault.localhost:{P}/keys/k1/create?api-version=7.4"
            body = json.dumps({"kty": "EC", "crv": "P-256"})
            proc = az("rest", "--method", "post", "--url", url, "--resource",
                      "https://vault.azure.net", "--body", body, ok=False)
            check(proc.returncode != 0 and "Forbidden" in proc.stderr, proc.stderr[-2000:])
            check("key vault 'azv;location=westeurope'" in proc.stderr, proc.stderr[-2000:])
            pol = az("keyvault", "set-policy", "--name", "azv", "--object-id", APP["objectId"],
                     "--key-permissions", "get", "create", "list")
            eq([p["objectId"] for p in pol["properties"]["accessPolicies"]], [APP["objectId"]])
            key = az("rest", "--method", "post", "--url", url, "--resource",
                     "https://vault.azure.net", "--body", body)
            eq(key["key"]["crv"], "P-256")
            # update: under RBAC the access policy no longer lets the identity in
            upd = az("keyvault", "update", "--name", "azv", "--enable-rbac-authorization", "true")
            eq(upd["properties"]["enableRbacAuthorization"], True)
            proc = az("rest", "--method", "get", "--url",
                      f"https://azv.vault.localhost:{P}/keys/k1?api-version=7.4",
                      "--resource", "https://vault.azure.net", ok=False)
            check(proc.returncode != 0 and "ForbiddenByRbac" in proc.stderr, proc.stderr[-2000:])
            upd = az("keyvault", "update", "--name", "azv", "--enable-rbac-authorization", "false")
            eq(upd["properties"]["enableRbacAuthorization"], False)
            # az's update is a GET and a PUT of the whole vault: the tags go along
            eq(upd["tags"], {"team": "payments"})
            upd = az("keyvault", "update", "--name", "azv", "--set", "tags.tier=1")
            eq(upd["tags"], {"team": "payments", "tier": "1"})
            eq(az("keyvault", "show", "--name", "azv")["tags"], {"team": "payments", "tier": "1"})
            # the firewall as az sets it: rules for loopback, then deny by default
            az("keyvault", "network-rule", "add", "--name", "azv", "--ip-address", "127.0.0.1")
            added = az("keyvault", "network-rule", "add", "--name", "azv", "--ip-address", "::1")
            eq(added["properties"]["networkAcls"]["ipRules"],
               [{"value": "127.0.0.1/32"}, {"value": "::1/128"}])
            upd = az("keyvault", "update", "--name", "azv", "--default-action", "Deny")
            eq(upd["properties"]["networkAcls"]["defaultAction"], "Deny")
            listed = az("keyvault", "network-rule", "list", "--name", "azv")
            eq(listed["ipRules"], [{"value": "127.0.0.1/32"}, {"value": "::1/128"}])
            got = az("rest", "--method", "get", "--url",
                     f"https://azv.vault.localhost:{P}/keys/k1?api-version=7.4",
                     "--resource", "https://vault.azure.net")
            eq(got["key"]["kid"], key["key"]["kid"])
            az("keyvault", "network-rule", "remove", "--name", "azv", "--ip-address", "127.0.0.1/32")
            az("keyvault", "network-rule", "remove", "--name", "azv", "--ip-address", "::1/128")
            proc = az("rest", "--method", "get", "--url",
                      f"https://azv.vault.localhost:{P}/keys/k1?api-version=7.4",
                      "--resource", "https://vault.azure.net", ok=False)
            check(proc.returncode != 0 and "ForbiddenByFirewall" in proc.stderr, proc.stderr[-2000:])
            upd = az("keyvault", "update", "--name", "azv", "--default-action", "Allow")
            eq(upd["properties"]["networkAcls"]["defaultAction"], "Allow")
            upd = az("keyvault", "update", "--name", "azv", "--public-network-access", "Disabled")
            eq(upd["properties"]["publicNetworkAccess"], "Disabled")
            proc = az("rest", "--method", "get", "--url",
                      f"https://azv.vault.localhost:{P}/keys/k1?api-version=7.4",
                      "--resource", "https://vault.azure.net", ok=False)
            check(proc.returncode != 0 and "ForbiddenByConnection" in proc.stderr, proc.stderr[-2000:])
            upd = az("keyvault", "update", "--name", "azv", "--public-network-access", "Enabled")
            eq(upd["properties"]["publicNetworkAccess"], "Enabled")

            az("keyvault", "delete", "--name", "azv")
            check("azv" not in {v["name"] for v in az("keyvault", "list")})
            deleted = az("keyvault", "list-deleted")
            eq([d["name"] for d in deleted], ["azv"])
            eq(az("keyvault", "show-deleted", "--name", "azv")["properties"]["vaultId"],
               f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/azv")
            eq(deleted[0]["properties"]["location"], "westeurope")
            back = az("keyvault", "recover", "--name", "azv")
            eq((back["name"], back["location"]), ("azv", "westeurope"))
            got = az("rest", "--method", "get", "--url",
                     f"https://azv.vault.localhost:{P}/keys/k1?api-version=7.4",
                     "--resource", "https://vault.azure.net")
            eq(got["key"]["kid"], key["key"]["kid"])
            az("keyvault", "delete", "--name", "azv")
            az("keyvault", "purge", "--name", "azv")
            eq(az("keyvault", "list-deleted"), [])

        @runner.test
        def az_group_holds_vaults():
            eq(az("group", "exists", "--name", "team-rg"), False)
            made = az("group", "create", "--name", "team-rg", "--location", "northeurope",
                      "--tags", "cost=1")
            eq((made["name"], made["location"], made["tags"]), ("team-rg", "northeurope", {"cost": "1"}))
            eq(made["id"], f"/subscriptions/{SUB}/resourceGroups/team-rg")
            eq(made["properties"]["provisioningState"], "Succeeded")
            eq(az("group", "exists", "--name", "team-rg"), True)
            eq(az("group", "show", "--name", "TEAM-RG")["name"], "team-rg")
            check("team-rg" in {g["name"] for g in az("group", "list")})
            # without --location, az takes the group's
            vault = az("keyvault", "create", "--name", "teamv", "--resource-group", "team-rg",
                       "--no-self-perms")
            eq(vault["location"], "northeurope")
            eq(vault["id"], f"/subscriptions/{SUB}/resourceGroups/team-rg/providers/"
                            "Microsoft.KeyVault/vaults/teamv")
            eq([v["name"] for v in az("keyvault", "list", "--resource-group", "team-rg")], ["teamv"])
            # another group does not hold it
            proc = az("keyvault", "show", "--name", "teamv", "--resource-group", "rg", ok=False)
            check(proc.returncode != 0 and "ResourceNotFound" in proc.stderr, proc.stderr[-2000:])
            # a group moves nowhere
            proc = az("group", "create", "--name", "team-rg", "--location", "westeurope", ok=False)
            check(proc.returncode != 0 and "InvalidResourceGroupLocation" in proc.stderr,
                  proc.stderr[-2000:])
            # deleting the group deletes its vaults (soft delete: they can be recovered)
            az("group", "delete", "--name", "team-rg", "--yes")
            eq(az("group", "exists", "--name", "team-rg"), False)
            check("teamv" not in {v["name"] for v in az("keyvault", "list")})
            eq([d["name"] for d in az("keyvault", "list-deleted")], ["teamv"])
            az("keyvault", "purge", "--name", "teamv")

        @runner.test
        def az_rest_assigns_a_role_on_an_rbac_vault():
            made = az("keyvault", "create", "--name", "azrbac", "--resource-group", "rg",
                      "--location", "westeurope", "--enable-rbac-authorization", "true")
            eq(made["properties"]["enableRbacAuthorization"], True)
            keys = f"https://azrbac.vault.localhost:{P}/keys"
            create = ["rest", "--method", "post", "--url", f"{keys}/k/create?api-version=7.4",
                      "--resource", "https://vault.azure.net", "--body", '{"kty": "RSA"}']
            proc = az(*create, ok=False)
            check(proc.returncode != 0 and "ForbiddenByRbac" in proc.stderr, proc.stderr[-2000:])
            # `az role` is broken in Debian's package; the same PUT through az rest
            scope = made["id"]
            officer = (f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/"
                       "14b46e9e-c2b7-41b4-b07b-48a6ebf60603")  # Key Vault Crypto Officer
            ra = az("rest", "--method", "put", "--url",
                    f"{base}{scope}/providers/Microsoft.Authorization/roleAssignments/"
                    "5d3c1a2b-0000-4000-8000-00000000a2a1?api-version=2022-04-01",
                    "--body", json.dumps({"properties": {"roleDefinitionId": officer,
                                                         "principalId": APP["objectId"]}}))
            eq(ra["properties"]["principalId"], APP["objectId"])
            key = az(*create)
            check(key["key"]["kid"].startswith(f"{keys}/k/"), key)

        # ---- service principals: certificate and federated token ----------------------------

        def vault_token_claims(run):
            rc, out, err = run("account", "get-access-token", "--resource", "https://vault.azure.net")
            eq(rc, 0, err[-2000:])
            tok = json.loads(out)
            eq(tok["tenant"], TENANT)
            return json.loads(unb64url(tok["accessToken"].split(".")[1])), tok["accessToken"]

        @runner.test
        def az_login_with_a_client_certificate():
            run = az_in_a_fresh_config(discovery_cached=True)
            pem = CI_CERT["clientCertificates"]
            rc, out, err = run("login", "--service-principal", "--username", CI_CERT["clientId"],
                               "--password", pem, "--tenant", TENANT)
            eq(rc, 0, err[-2000:])
            accounts = json.loads(out)
            eq([a["id"] for a in accounts], [SUB], accounts)
            eq(accounts[0]["user"], {"name": CI_CERT["clientId"], "type": "servicePrincipal"})
            eq((accounts[0]["cloudName"], accounts[0]["tenantId"]), ("kvmock", TENANT), accounts)
            claims, _ = vault_token_claims(run)
            eq((claims["oid"], claims["appid"], claims["tid"]),
               (CI_CERT["objectId"], CI_CERT["clientId"], TENANT))
            # a pipeline's work: a vault, a policy for itself, a key through the data plane
            rc, out, err = run("keyvault", "create", "--name", "cicert", "--resource-group", "rg",
                               "--location", "westeurope", "--no-self-perms")
            eq(rc, 0, err[-2000:])
            eq(json.loads(out)["properties"]["vaultUri"], f"https://cicert.vault.localhost:{P}/")
            rc, out, err = run("keyvault", "set-policy", "--name", "cicert", "--object-id",
                               CI_CERT["objectId"], "--key-permissions", "create", "get")
            eq(rc, 0, err[-2000:])
            url = f"https://cicert.vault.localhost:{P}/keys/ci-key"
            rc, out, err = run("rest", "--method", "post", "--url", f"{url}/create?api-version=7.4",
                               "--resource", "https://vault.azure.net",
                               "--body", json.dumps({"kty": "RSA", "key_size": 2048}))
            eq(rc, 0, err[-2000:])
            kid = json.loads(out)["key"]["kid"]
            check(kid.startswith(f"{url}/"), kid)
            rc, out, err = run("rest", "--method", "get", "--url", f"{kid}?api-version=7.4",
                               "--resource", "https://vault.azure.net")
            eq(rc, 0, err[-2000:])
            eq(json.loads(out)["key"]["kid"], kid)
            for cmd in (("delete",), ("purge",)):
                rc, _, err = run("keyvault", *cmd, "--name", "cicert")
                eq(rc, 0, err[-2000:])
            # --use-cert-sn-issuer: MSAL also sends the certificate chain (x5c header)
            run = az_in_a_fresh_config(discovery_cached=True)
            rc, out, err = run("login", "--service-principal", "--username", CI_CERT["clientId"],
                               "--password", pem, "--tenant", TENANT, "--use-cert-sn-issuer")
            eq(rc, 0, err[-2000:])
            eq([a["id"] for a in json.loads(out)], [SUB])
            claims, _ = vault_token_claims(run)
            eq((claims["oid"], claims["appid"]), (CI_CERT["objectId"], CI_CERT["clientId"]))

        @runner.test
        def az_login_with_a_federated_token():
            run = az_in_a_fresh_config(discovery_cached=True)
            jwt = federated_token(issuer_key, issuer_kid)
            login = ("login", "--service-principal", "--username", CI_OIDC["clientId"],
                     "--federated-token", jwt, "--tenant", TENANT)
            # CI_OIDC may not manage: it sees no subscription
            rc, _, err = run(*login)
            check(rc != 0 and "subscriptions" in err.lower(), err[-2000:])
            rc, out, err = run(*login, "--allow-no-subscriptions")
            eq(rc, 0, err[-2000:])
            accounts = json.loads(out)
            eq([a["tenantId"] for a in accounts], [TENANT], accounts)
            eq(accounts[0]["user"], {"name": CI_OIDC["clientId"], "type": "servicePrincipal"})
            claims, token = vault_token_claims(run)
            eq((claims["oid"], claims["appid"], claims["tid"]),
               (CI_OIDC["objectId"], CI_OIDC["clientId"], TENANT))
            # kvmock takes the token; without a policy the vault refuses this identity
            st, _, body = kv.https("GET", "/keys?api-version=7.4", token=token,
                                   host=f"default.vault.localhost:{P}")
            eq(st, 403, body)
            check(CI_OIDC["objectId"] in body.decode(), body)

        @runner.test
        def az_login_refuses_unregistered_credentials():
            # a certificate kvmock does not know for this client
            other_pem, thumb = self_signed(cred_dir, "not-registered")
            run = az_in_a_fresh_config(discovery_cached=True)
            rc, out, err = run("login", "--service-principal", "--username", CI_CERT["clientId"],
                               "--password", other_pem, "--tenant", TENANT)
            check(rc != 0 and "AADSTS700027" in err, (rc, out, err[-2000:]))
            check(thumb in err, (thumb, err[-2000:]))
            # a federated token of the right issuer and audience, for another subject
            run = az_in_a_fresh_config(discovery_cached=True)
            jwt = federated_token(issuer_key, issuer_kid,
                                  subject="repo:kvmock/kvmock:pull_request")
            rc, out, err = run("login", "--service-principal", "--username", CI_OIDC["clientId"],
                               "--federated-token", jwt, "--tenant", TENANT,
                               "--allow-no-subscriptions")
            check(rc != 0 and "AADSTS700213" in err, (rc, out, err[-2000:]))
            check("repo:kvmock/kvmock:pull_request" in err, err[-2000:])

        @runner.test
        def audited():
            ops = {(r["operationName"], r["properties"]["httpStatusCode"])
                   for r in kv.audit_records()}
            for want in (("SubscriptionList", 200), ("SubscriptionGet", 404), ("TenantList", 200),
                         ("ResourceList", 200), ("ManagedHsmList", 200), ("VaultPut", 201),
                         ("ResourceGroupPut", 201), ("ResourceGroupDelete", 200)):
                check(want in ops, f"{want} audited")

        try:
            runner.run_collected()
        finally:
            shutil.rmtree(config_dir, ignore_errors=True)
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
