"""The Azure SDK for Go against kvmock, unmodified: Debian's
golang-github-azure-azure-sdk-for-go (Key Vault 7.1 data plane, the
Microsoft.KeyVault 2019-09-01 management client, resource groups, role definitions
and assignments) and go-autorest's
authorizers, as a Go program would use them. The Go tests are in go/; this
driver builds them once and runs them under each way a Go program signs in:

- managed identity, App Service 2017 style (MSI_ENDPOINT, MSI_SECRET), the
  default identity and, with AZURE_CLIENT_ID, a user-assigned one;
- client credentials on Entra's v1 endpoint (/{tenant}/oauth2/token with
  resource=), the cloud described by a file (AZURE_ENVIRONMENT=AzureStackCloud,
  AZURE_ENVIRONMENT_FILEPATH), as for any cloud that is not Azure's own: with a
  client secret, and with a client certificate (AZURE_CERTIFICATE_PATH, a PKCS#12
  file; adal signs an RS256 assertion for the v1 endpoint).

Raw HTTP checks what the SDK hides: the v1 token answer's exact shape and
its errors, and the cloud metadata in the shape go-autorest asks for."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, unb64url, TENANT, APP, caller_oid  # noqa: E402

GO_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go")
# Debian installs the SDK and its dependencies as GOPATH sources.
GOPATH = "/usr/share/gocode"
READER = {"name": "reader", "objectId": "0a000000-0000-4000-8000-0000000000c1",
          "clientId": "0c000000-0000-4000-8000-0000000000c1"}
CI = {"name": "ci", "objectId": "0a000000-0000-4000-8000-0000000000c2",
      "clientId": "0c000000-0000-4000-8000-0000000000c2", "clientSecret": "go-ci-secret",
      "manage": True}
# its clientCertificates are made at start (make_certificate)
CERT = {"name": "ci-cert", "objectId": "0a000000-0000-4000-8000-0000000000c3",
        "clientId": "0c000000-0000-4000-8000-0000000000c3"}
ALL = {"keys": ["all"]}
CONFIG = {
    "tenantId": TENANT,
    "identities": [APP, READER, CI, CERT],
    "vaults": [{"name": "default", "properties": {"accessPolicies": [
        {"objectId": APP["objectId"], "permissions": ALL},
        {"objectId": CI["objectId"], "permissions": ALL},
        {"objectId": CERT["objectId"], "permissions": ALL},
        {"objectId": READER["objectId"], "permissions": {"keys": ["get", "list"]}},
    ]}}],
}
PFX_PASSWORD = "go-cert-password"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def build_go_tests(out_dir, cache_dir):
    """Compile the Go tests into one binary (go test -c), in GOPATH mode, with Go's
    build cache in cache_dir."""
    go = shutil.which("go")
    check(go is not None, "go is not installed (scripts/install-deps.sh --test installs "
                          "golang-go and golang-github-azure-azure-sdk-for-go-dev)")
    check(os.path.isdir(os.path.join(GOPATH, "src/github.com/Azure/azure-sdk-for-go")),
          "Debian's golang-github-azure-azure-sdk-for-go-dev is not installed")
    binary = os.path.join(out_dir, "kvmock-go.test")
    env = dict(os.environ, GO111MODULE="off", GOPATH=GOPATH, GOFLAGS="", GOCACHE=cache_dir)
    proc = subprocess.run([go, "test", "-c", "-o", binary, "."], cwd=GO_DIR, env=env,
                          capture_output=True, text=True, timeout=600)
    check(proc.returncode == 0, f"go test -c failed:\n{proc.stdout}\n{proc.stderr}")
    return binary


def make_certificate(work):
    """A self-signed RSA certificate for CERT: its PEM goes in the configuration, its key and
    certificate in a PKCS#12 file as go-autorest reads it (golang.org/x/crypto/pkcs12 reads
    only the legacy SHA-1/3DES encryption)."""
    key, crt, pfx = (os.path.join(work, n) for n in ("ci.key", "ci.crt", "ci.pfx"))
    for cmd in (["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                 "-out", crt, "-days", "30", "-subj", "/CN=ci-cert"],
                ["openssl", "pkcs12", "-export", "-inkey", key, "-in", crt, "-out", pfx,
                 "-passout", "pass:" + PFX_PASSWORD, "-certpbe", "PBE-SHA1-3DES",
                 "-keypbe", "PBE-SHA1-3DES", "-macalg", "sha1"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        check(proc.returncode == 0, f"{cmd[:2]}: {proc.stderr}")
    with open(crt, encoding="ascii") as f:
        CERT["clientCertificates"] = f.read()
    return pfx


def main():
    args = parse_args()
    runner = Runner()
    work = tempfile.mkdtemp(prefix="kvmock-go-")
    try:
        pfx = make_certificate(work)
        # the build cache lives beside kvmock's binary, in the build folder
        binary = build_go_tests(work, os.path.join(os.path.dirname(os.path.abspath(args.kvmock)),
                                                   "go-cache"))
        with Kvmock(args.kvmock, config=CONFIG) as kv:
            run_all(runner, kv, binary, work, pfx)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(runner.exit_code())


def run_all(runner, kv, binary, work, pfx):
    P = kv.https_port
    arm = f"https://localhost:{P}/"
    cloud_file = os.path.join(work, "cloud.json")
    with open(cloud_file, "w", encoding="utf-8") as f:
        # go-autorest's Environment, as Azure Stack users write it
        json.dump({"name": "kvmock", "activeDirectoryEndpoint": arm,
                   "resourceManagerEndpoint": arm, "tokenAudience": "https://management.azure.com/",
                   "keyVaultDNSSuffix": f"vault.localhost:{P}",
                   "resourceIdentifiers": {"keyVault": "https://vault.azure.net"}}, f)
    base_env = {k: v for k, v in os.environ.items()
                if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "KVMOCK_"))
                and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
    base_env.update({
        "SSL_CERT_FILE": kv.ca_path,
        "KVMOCK_VAULT_URL": kv.vault_url("default"),
        "KVMOCK_ARM_URL": arm,
        "KVMOCK_RG": "go-rg",
        "AZURE_TENANT_ID": TENANT,
        "NO_PROXY": "*",
    })
    msi = {"MSI_ENDPOINT": f"http://127.0.0.1:{kv.http_port}/msi/token",
           "MSI_SECRET": kv.identity_header, "KVMOCK_OBJECT_ID": APP["objectId"]}
    client_secret = {"AZURE_CLIENT_ID": CI["clientId"], "AZURE_CLIENT_SECRET": CI["clientSecret"],
                     "AZURE_ENVIRONMENT": "AzureStackCloud",
                     "AZURE_ENVIRONMENT_FILEPATH": cloud_file,
                     "KVMOCK_OBJECT_ID": CI["objectId"]}

    def go_tests(extra, pattern):
        """Run the Go tests matching pattern; each Go test is one PASS/FAIL here."""
        env = dict(base_env, **extra)
        proc = subprocess.run([binary, "-test.v", "-test.count=1", "-test.run", pattern],
                              env=env, capture_output=True, text=True, timeout=600, cwd=work)
        print(proc.stdout + proc.stderr, flush=True)
        passed = [line.split()[2] for line in proc.stdout.splitlines()
                  if line.startswith("--- PASS: ")]
        check(proc.returncode == 0, f"go tests {pattern} failed (output above)")
        check(passed, f"no Go test matched {pattern}")
        return passed

    @runner.test
    def managed_identity_keys_crypto_lifecycle():
        eq(sorted(go_tests(msi, "^(TestKeys|TestECAndImport|TestDeleteRecoverPurgeBackup)$")),
           ["TestDeleteRecoverPurgeBackup", "TestECAndImport", "TestKeys"])

    @runner.test
    def managed_identity_manages_vaults():
        eq(sorted(go_tests(msi, "^(TestARM|TestRBAC|TestFirewall)$")),
           ["TestARM", "TestFirewall", "TestRBAC"])

    @runner.test
    def user_assigned_identity_is_held_to_its_policy():
        before = len(kv.audit_records())
        eq(go_tests(dict(msi, AZURE_CLIENT_ID=READER["clientId"]), "^TestDenied$"), ["TestDenied"])
        # the token was the reader's: its refusal and its list are audited as the reader's
        ops = {(r["operationName"], r["properties"]["httpStatusCode"], caller_oid(r))
               for r in kv.audit_records()[before:]}
        check(("KeyCreate", 403, READER["objectId"]) in ops, ops)
        check(("KeyList", 200, READER["objectId"]) in ops, ops)

    @runner.test
    def client_credentials_through_a_cloud_file():
        before = len(kv.audit_records())
        eq(sorted(go_tests(client_secret, "^(TestKeys|TestARM|TestRBAC)$")),
           ["TestARM", "TestKeys", "TestRBAC"])
        # every call was the client's own, on its data plane and on Resource Manager
        who = {(r["operationName"], caller_oid(r)) for r in kv.audit_records()[before:]}
        check(("KeyCreate", CI["objectId"]) in who and ("VaultPut", CI["objectId"]) in who, who)
        eq({oid for _, oid in who}, {CI["objectId"]})

    @runner.test
    def client_certificate_through_a_cloud_file():
        before = len(kv.audit_records())
        certificate = dict(client_secret, AZURE_CLIENT_ID=CERT["clientId"],
                           AZURE_CERTIFICATE_PATH=pfx, AZURE_CERTIFICATE_PASSWORD=PFX_PASSWORD,
                           KVMOCK_OBJECT_ID=CERT["objectId"])
        del certificate["AZURE_CLIENT_SECRET"]
        eq(go_tests(certificate, "^TestKeys$"), ["TestKeys"])
        who = {(r["operationName"], caller_oid(r)) for r in kv.audit_records()[before:]}
        check(("KeyCreate", CERT["objectId"]) in who, who)
        eq({oid for _, oid in who}, {CERT["objectId"]})
        # the same file with another identity's client id: its certificate is not registered
        other = dict(certificate, AZURE_CLIENT_ID=CI["clientId"])
        proc = subprocess.run([binary, "-test.v", "-test.count=1", "-test.run", "^TestKeys$"],
                              env=dict(base_env, **other), capture_output=True, text=True,
                              timeout=600, cwd=work)
        check(proc.returncode != 0 and "AADSTS700027" in proc.stdout + proc.stderr,
              (proc.stdout + proc.stderr)[-3000:])

    def v1_token(form):
        return kv.https("POST", f"/{TENANT}/oauth2/token", token=None,
                        body=urllib.parse.urlencode(form).encode(), headers=FORM)

    @runner.test
    def v1_token_answer_has_entra_shape():
        st, _, body = v1_token({"grant_type": "client_credentials", "client_id": CI["clientId"],
                                "client_secret": CI["clientSecret"],
                                "resource": "https://vault.azure.net"})
        eq(st, 200, body)
        doc = json.loads(body)
        eq(sorted(doc), sorted(["token_type", "expires_in", "ext_expires_in", "expires_on",
                                "not_before", "resource", "access_token"]))
        eq(doc["token_type"], "Bearer")
        eq(doc["resource"], "https://vault.azure.net")
        for field in ("expires_in", "expires_on", "not_before"):
            check(isinstance(doc[field], str) and doc[field].isdigit(), f"{field}: {doc[field]!r}")
        eq(int(doc["expires_on"]) - int(doc["not_before"]), int(doc["expires_in"]))
        claims = json.loads(unb64url(doc["access_token"].split(".")[1]))
        eq(claims["aud"], "https://vault.azure.net")
        eq(claims["appid"], CI["clientId"])
        eq(claims["oid"], CI["objectId"])
        eq(claims["tid"], TENANT)
        # and the token opens the vault
        st, _, _ = kv.https("GET", "/keys?api-version=7.1", token=doc["access_token"],
                            host=f"default.vault.localhost:{P}")
        eq(st, 200)

    @runner.test
    def v1_token_errors_name_the_problem():
        good = {"grant_type": "client_credentials", "client_id": CI["clientId"],
                "client_secret": CI["clientSecret"], "resource": "https://vault.azure.net"}
        cases = [
            ({k: v for k, v in good.items() if k != "resource"}, 400, "invalid_request", "'resource'"),
            (dict(good, client_secret="wrong"), 401, "invalid_client", "AADSTS7000215"),
            (dict(good, client_id=READER["clientId"]), 400, "unauthorized_client", "AADSTS700016"),
            (dict(good, grant_type="password"), 400, "unsupported_grant_type", "AADSTS70003"),
            (dict(good, resource="https://" + "x" * 600), 400, "invalid_resource", "AADSTS500011"),
        ]
        for form, status, error, mark in cases:
            st, _, body = v1_token(form)
            eq(st, status, body)
            doc = json.loads(body)
            eq(doc["error"], error, body)
            check(mark in doc["error_description"], doc["error_description"])
            check("access_token" not in doc and CI["clientSecret"] not in body.decode(), body)
        st, _, body = kv.https("POST", "/00000000-0000-4000-8000-00000000dead/oauth2/token",
                               token=None, body=urllib.parse.urlencode(good).encode(), headers=FORM)
        eq(st, 400, body)
        eq(json.loads(body)["error"], "invalid_request")
        st, _, _ = kv.https("GET", f"/{TENANT}/oauth2/token", token=None)
        eq(st, 405)

    @runner.test
    def v2_scope_must_name_one_resource():
        for scope in ("ab c/.default", "https://vault.azure.net c/.default", "/.default"):
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token", token=None,
                                   body=urllib.parse.urlencode({
                                       "grant_type": "client_credentials",
                                       "client_id": CI["clientId"],
                                       "client_secret": CI["clientSecret"],
                                       "scope": scope}).encode(), headers=FORM)
            eq(st, 400, f"{scope}: {body}")
            eq(json.loads(body)["error"], "invalid_scope", scope)

    @runner.test
    def cloud_metadata_answers_go_autorest_version():
        st, _, body = kv.https("GET", "/metadata/endpoints?api-version=1.0", token=None)
        eq(st, 200, body)
        doc = json.loads(body)
        check(isinstance(doc, dict), "api-version 1.0 answers one object")
        eq(doc["authentication"]["loginEndpoint"], arm)
        check(doc["authentication"]["audiences"], "no audiences")

    runner.run_collected()


if __name__ == "__main__":
    main()
