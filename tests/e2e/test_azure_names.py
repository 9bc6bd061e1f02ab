"""kvmock reached under Azure's own names, as a client whose resolver sends
login.microsoftonline.com, management.azure.com and *.vault.azure.net (port 443) to
kvmock sees it: /etc/hosts lines and a published port 443 in a CI job, here a
sitecustomize.py that maps those names for the Python process it is loaded in,
and for Node.js a preloaded module that sends its TLS connections to those names
to kvmock (the SDKs and az are not changed; only where a name leads is).

kvmock's certificate covers those names (--hostname). The clients then need no
option at all: DefaultAzureCredential() with a client certificate from the
environment (Debian's azure-identity 1.13, and @azure/identity), and KeyClient on
https://NAME.vault.azure.net;
`az login --service-principal` with a certificate on az's own AzureCloud, then the
management plane. MSAL's instance discovery (GET /common/discovery/instance) is
answered by kvmock, and checked raw.

A Managed HSM the same way, at https://cmk-hsm.managedhsm.azure.net (--hostname
'*.managedhsm.azure.net'): KeyClient with DefaultAzureCredential; `az keyvault show
--hsm-name`, and `az rest --resource https://managedhsm.azure.net` for a key, a full backup
and its restore (Debian's az 2.45 runs neither `az keyvault key` nor its HSM `role`,
`backup` and `restore` commands: its packaged SDKs lack the API versions they ask for)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, unb64url, TENANT, APP  # noqa: E402

NAMES = ["login.microsoftonline.com", "management.azure.com", "cmk.vault.azure.net",
         "cmk-hsm.managedhsm.azure.net"]
HSM_URL = "https://cmk-hsm.managedhsm.azure.net"
SAS = "sv=2021-08-06&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=crdw&sig=bm90LWEtcmVhbC1zaWc"
CI = {"name": "pipeline", "objectId": "0a000000-0000-4000-8000-0000000000e1",
      "clientId": "0c000000-0000-4000-8000-0000000000e1", "manage": True}
SUB = "00000000-0000-0000-0000-000000000000"

# Loaded by every Python process started with PYTHONPATH=<its folder>: the names above,
# on port 443, resolve to kvmock's HTTPS port on 127.0.0.1; anything else as before.
SITECUSTOMIZE = '''
import os
import socket

_names = set(os.environ["KVMOCK_AZURE_NAMES"].split(","))
_port = int(os.environ["KVMOCK_AZURE_PORT"])
_real = socket.getaddrinfo


def _getaddrinfo(host, port, *args, **kwargs):
    if isinstance(host, bytes):
        host = host.decode()
    if host in _names and str(port) in ("443", "https"):
        return _real("127.0.0.1", _port, *args, **kwargs)
    return _real(host, port, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo
'''

# The same for Node.js (node --require): the TLS connections to those names go to kvmock's
# port, still checked against the name (SNI and the certificate).
PRELOAD_JS = '''
const tls = require("tls");
const names = new Set(process.env.KVMOCK_AZURE_NAMES.split(","));
const port = Number(process.env.KVMOCK_AZURE_PORT);
const connect = tls.connect;
tls.connect = function (...args) {
  const opts = args.find((a) => a && typeof a === "object");
  if (opts && names.has(opts.host) && Number(opts.port || 443) === 443) {
    opts.servername = opts.servername || opts.host;
    opts.host = "127.0.0.1";
    opts.port = port;
  }
  return connect.apply(this, args);
};
'''

JS_SCRIPT = '''
const { DefaultAzureCredential } = require("@azure/identity");
const { KeyClient, CryptographyClient } = require("@azure/keyvault-keys");
const { randomBytes } = require("crypto");
(async () => {
  const cred = new DefaultAzureCredential();
  const client = new KeyClient("https://cmk.vault.azure.net", cred);
  const key = await client.createRsaKey("from-node");
  const crypto = new CryptographyClient(key, cred);
  const dek = randomBytes(32);
  const wrapped = await crypto.wrapKey("RSA-OAEP-256", dek);
  const back = await crypto.unwrapKey("RSA-OAEP-256", wrapped.result);
  if (!Buffer.from(back.result).equals(dek)) throw new Error("unwrap gave other bytes");
  const token = (await cred.getToken("https://vault.azure.net/.default")).token;
  console.log(JSON.stringify({ kid: key.id, token }));
})().catch((e) => { console.error(e); process.exit(1); });
'''

SDK_SCRIPT = '''
import json, secrets
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm

cred = DefaultAzureCredential()
client = KeyClient("https://cmk.vault.azure.net", cred)
key = client.create_rsa_key("by-name")
crypto = CryptographyClient(key, cred)
dek = secrets.token_bytes(32)
wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek)
assert crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped.encrypted_key).key == dek
token = cred.get_token("https://vault.azure.net/.default").token
print(json.dumps({"kid": key.id, "names": [k.name for k in client.list_properties_of_keys()],
                  "token": token}))
'''

# A Managed HSM by its Azure name: the challenge names https://managedhsm.azure.net, which the
# SDK's challenge-resource check compares with the HSM's own domain
HSM_SCRIPT = '''
import json
from azure.identity import DefaultAzureCredential
from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm

cred = DefaultAzureCredential()
key = KeyClient("https://cmk-hsm.managedhsm.azure.net", cred).create_ec_key("hsm-by-name")
sig = CryptographyClient(key, cred).sign(SignatureAlgorithm.es256, bytes(32))
print(json.dumps({"kid": key.id, "kty": key.key_type, "alg": sig.algorithm}))
'''


def make_certificate(work):
    key, crt, pem = (os.path.join(work, n) for n in ("ci.key", "ci.crt", "ci.pem"))
    proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                           key, "-out", crt, "-days", "30", "-subj", "/CN=pipeline"],
                          capture_output=True, text=True, timeout=60)
    check(proc.returncode == 0, proc.stderr)
    with open(key, encoding="ascii") as k, open(crt, encoding="ascii") as c, \
            open(pem, "w", encoding="ascii") as out:
        cert = c.read()
        out.write(k.read() + cert)
    return pem, cert


def main():
    args = parse_args()
    runner = Runner()
    work = tempfile.mkdtemp(prefix="kvmock-names-")
    pem, cert = make_certificate(work)
    with open(os.path.join(work, "sitecustomize.py"), "w", encoding="utf-8") as f:
        f.write(SITECUSTOMIZE)
    config = {"tenantId": TENANT, "identities": [APP, dict(CI, clientCertificates=cert)],
              "vaults": [{"name": "cmk", "properties": {"accessPolicies": [
                  {"objectId": CI["objectId"], "permissions": {"keys": ["all"]}}]}}],
              "managedHsms": [{"name": "cmk-hsm", "properties": {
                  "initialAdminObjectIds": [CI["objectId"]]}}],
              "roleAssignments": [{"principalId": CI["objectId"],
                                   "roleDefinitionName": "Managed HSM Crypto User",
                                   "scope": "/managedHSMs/cmk-hsm/keys"}]}
    # the vaults by a wildcard, as a CI job would name them
    hostnames = ["--hostname", "login.microsoftonline.com", "--hostname", "management.azure.com",
                 "--hostname", "*.vault.azure.net", "--hostname", "*.managedhsm.azure.net"]
    with Kvmock(args.kvmock, config=config, extra_args=hostnames) as kv:
        # only what a CI job would set: the identity, and trust in kvmock's CA
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("AZURE_", "MSI_", "IDENTITY_", "IMDS_", "REQUESTS_CA"))
               and k.lower() not in ("https_proxy", "http_proxy", "all_proxy")}
        env.update({"PYTHONPATH": work, "KVMOCK_AZURE_NAMES": ",".join(NAMES),
                    "KVMOCK_AZURE_PORT": str(kv.https_port), "REQUESTS_CA_BUNDLE": kv.ca_path,
                    "NO_PROXY": "*"})

        @runner.test
        def instance_discovery_answers_for_kvmock():
            q = urllib.parse.urlencode({
                "api-version": "1.1",
                "authorization_endpoint": f"https://localhost/{TENANT}/oauth2/v2.0/authorize"})
            st, _, body = kv.https("GET", f"/common/discovery/instance?{q}", token=None,
                                   host="login.microsoftonline.com")
            eq(st, 200, body)
            doc = json.loads(body)
            eq(doc["tenant_discovery_endpoint"],
               f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration")
            eq(doc["metadata"], [{"preferred_network": "localhost", "preferred_cache": "localhost",
                                  "aliases": ["localhost"]}])
            st, _, body = kv.https("GET", "/common/discovery/instance?api-version=1.1",
                                   token=None)
            eq(st, 400, body)
            eq(json.loads(body)["error"], "invalid_instance")
            st, _, _ = kv.https("POST", f"/common/discovery/instance?{q}", token=None)
            eq(st, 405)

        # the pipeline's identity, by its certificate, for DefaultAzureCredential
        sdk_env = dict(env, AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CI["clientId"],
                       AZURE_CLIENT_CERTIFICATE_PATH=pem)

        def python(script, script_env=sdk_env):
            """Run @script with Debian's Python: what its last line printed, parsed."""
            proc = subprocess.run(["/usr/bin/python3", "-c", script], env=script_env,
                                  capture_output=True, text=True, timeout=300, cwd=work)
            eq(proc.returncode, 0, proc.stderr[-4000:])
            return json.loads(proc.stdout.strip().splitlines()[-1])

        @runner.test
        def default_credential_and_key_client_under_azure_names():
            out = python(SDK_SCRIPT)
            check(out["kid"].startswith("https://cmk.vault.azure.net/keys/by-name/"), out["kid"])
            eq(out["names"], ["by-name"])
            claims = json.loads(unb64url(out["token"].split(".")[1]))
            eq((claims["oid"], claims["appid"], claims["tid"]),
               (CI["objectId"], CI["clientId"], TENANT))
            # kvmock's own authority (https://localhost:P), which MSAL does not know: it asks
            # login.microsoftonline.com's instance discovery first, and kvmock answers it
            local = dict(sdk_env, AZURE_AUTHORITY_HOST=f"https://localhost:{kv.https_port}")
            before = kv.log_tail(100000).count("/common/discovery/instance")
            python(SDK_SCRIPT.replace("by-name", "local"), local)
            check(kv.log_tail(100000).count("/common/discovery/instance") > before,
                  "MSAL did not ask kvmock's instance discovery")
            # without the names mapped, nothing reaches kvmock: the same run fails
            plain = dict(sdk_env)
            del plain["PYTHONPATH"]
            proc = subprocess.run(["/usr/bin/python3", "-c", SDK_SCRIPT], env=plain,
                                  capture_output=True, text=True, timeout=300, cwd=work)
            check(proc.returncode != 0, proc.stdout[-2000:])

        @runner.test
        def a_managed_hsm_under_its_azure_name():
            out = python(HSM_SCRIPT)
            check(out["kid"].startswith(f"{HSM_URL}/keys/hsm-by-name/"), out["kid"])
            eq((out["kty"], out["alg"]), ("EC-HSM", "ES256"))
            # the challenge names Managed HSM's own resource
            st, hdrs, _ = kv.https("GET", "/keys?api-version=7.4", token=None,
                                   host="cmk-hsm.managedhsm.azure.net")
            eq((st, hdrs["www-authenticate"]),
               (401, f'Bearer authorization="https://login.microsoftonline.com/{TENANT}", '
                     'resource="https://managedhsm.azure.net"'))

        @runner.test
        def javascript_default_credential_under_azure_names():
            js = os.path.join(os.path.dirname(os.path.abspath(__file__)), "js", "node_modules")
            check(os.path.isdir(os.path.join(js, "@azure", "identity")),
                  "npm ci --prefix tests/e2e/js first (the test command does)")
            for name, text in (("preload.cjs", PRELOAD_JS), ("names.cjs", JS_SCRIPT)):
                with open(os.path.join(work, name), "w", encoding="utf-8") as f:
                    f.write(text)
            js_env = dict(env, NODE_PATH=js, NODE_EXTRA_CA_CERTS=kv.ca_path,
                          AZURE_TENANT_ID=TENANT, AZURE_CLIENT_ID=CI["clientId"],
                          AZURE_CLIENT_CERTIFICATE_PATH=pem)
            proc = subprocess.run(["node", "--require", os.path.join(work, "preload.cjs"),
                                   os.path.join(work, "names.cjs")], env=js_env,
                                  capture_output=True, text=True, timeout=300, cwd=work)
            eq(proc.returncode, 0, proc.stderr[-4000:])
            out = json.loads(proc.stdout.strip().splitlines()[-1])
            check(out["kid"].startswith("https://cmk.vault.azure.net/keys/from-node/"), out["kid"])
            claims = json.loads(unb64url(out["token"].split(".")[1]))
            eq((claims["oid"], claims["appid"]), (CI["objectId"], CI["clientId"]))

        @runner.test
        def az_login_on_azure_cloud():
            az_env = dict(env, AZURE_CONFIG_DIR=os.path.join(work, "az"),
                          AZURE_CORE_COLLECT_TELEMETRY="false",
                          AZURE_CORE_SURVEY_MESSAGE="false")

            def az(*argv):
                proc = subprocess.run(["az", *argv, "--output", "json"], env=az_env,
                                      capture_output=True, text=True, timeout=180, cwd=work)
                eq(proc.returncode, 0, f"az {' '.join(argv)}: {proc.stderr[-3000:]}")
                return json.loads(proc.stdout) if proc.stdout.strip() else None

            eq(az("cloud", "show")["name"], "AzureCloud")
            accounts = az("login", "--service-principal", "--username", CI["clientId"],
                          "--password", pem, "--tenant", TENANT)
            eq([(a["id"], a["tenantId"], a["user"]["name"]) for a in accounts],
               [(SUB, TENANT, CI["clientId"])])
            vault = az("keyvault", "show", "--name", "cmk", "--resource-group", "kvmock")
            eq(vault["name"], "cmk")
            eq(vault["properties"]["vaultUri"], "https://cmk.vault.azure.net/")
            # a key as a Resource Manager resource names its URI under the same name
            key = az("rest", "--method", "get", "--url",
                     f"https://management.azure.com/subscriptions/{SUB}/resourceGroups/kvmock/"
                     "providers/Microsoft.KeyVault/vaults/cmk/keys/by-name?api-version=2023-07-01")
            eq(key["properties"]["keyUri"], "https://cmk.vault.azure.net/keys/by-name")
            tok = az("account", "get-access-token", "--resource", "https://vault.azure.net")
            claims = json.loads(unb64url(tok["accessToken"].split(".")[1]))
            eq(claims["oid"], CI["objectId"])

            # a Managed HSM: Resource Manager by --hsm-name, the data plane by az rest with
            # Managed HSM's resource
            hsm = az("keyvault", "show", "--hsm-name", "cmk-hsm")
            eq(hsm["properties"]["hsmUri"], f"{HSM_URL}/")

            def hsm_rest(method, path, body=None):
                argv = ["rest", "--method", method, "--resource", "https://managedhsm.azure.net",
                        "--url", f"{HSM_URL}{path}?api-version=7.4"]
                return az(*argv, *(["--body", json.dumps(body)] if body is not None else []))

            key = hsm_rest("post", "/keys/az-hsm/create", {"kty": "RSA", "key_size": 2048})
            check(key["key"]["kid"].startswith(f"{HSM_URL}/keys/az-hsm/"), key)
            eq(key["key"]["kty"], "RSA-HSM")
            storage = {"storageResourceUri": "https://cibackups.blob.core.windows.net/mhsm",
                       "token": SAS}
            job = hsm_rest("post", "/backup", storage)
            eq(job["status"], "InProgress", job)
            job = hsm_rest("get", f"/backup/{job['jobId']}/pending")
            eq(job["status"], "Succeeded", job)
            folder_url = job["azureStorageBlobContainerUri"]
            check(folder_url.startswith("https://cibackups.blob.core.windows.net/mhsm/"
                                        "mhsm-cmk-hsm-"), job)
            hsm_rest("delete", "/keys/az-hsm")
            job = hsm_rest("put", "/restore", {"sasTokenParameters": storage,
                                               "folderToRestore": folder_url.rsplit("/", 1)[1]})
            eq(hsm_rest("get", f"/restore/{job['jobId']}/pending")["status"], "Succeeded")
            eq(hsm_rest("get", "/keys/az-hsm")["key"]["kid"], key["key"]["kid"])

        runner.run_collected()
    shutil.rmtree(work, ignore_errors=True)
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
