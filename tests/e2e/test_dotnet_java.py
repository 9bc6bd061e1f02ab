"""The requests the .NET SDK (Azure.Security.KeyVault.Keys, Azure.Identity on MSAL.NET)
and the Java SDK (azure-security-keyvault-keys, azure-identity on MSAL4J) send, replayed
in raw HTTP with their exact methods, paths, headers and bodies, and kvmock's answers
read the way those libraries read them. Neither SDK can run here (no NuGet, no Maven
Central), so what each sends and requires was read in its source:

- the Key Vault challenge: the first request of a client without its body (.NET sends
  no content, Java sets Content-Length: 0); .NET splits the challenge on "," and then on
  "=", keeping pairs of two; Java splits on ", " and then on "=", taking the second part;
  both take the tenant from the first path segment of `authorization` and check the vault
  host (without its port) against the resource's host;
- managed identity: MSAL.NET and MSAL4J's App Service, IMDS, Cloud Shell and Azure ML
  requests. MSAL4J joins AZURE_POD_IDENTITY_AUTHORITY_HOST and the token path with an
  extra slash (//metadata/identity/oauth2/token) and sends Cloud Shell's request as a GET
  with the resource in the query; MSAL.NET reads expires_on and expires_in into one field
  (the later one in the document wins; under 978307200 it is a lifetime), MSAL4J parses
  expires_on with Long.parseLong; older azure-identity for Java asks for the resource
  with a trailing slash;
- client certificates: MSAL.NET signs PS256 with x5t#S256 and writes nbf and exp as
  JSON strings; MSAL4J signs RS256 with x5t#S256 and numbers.
"""
import datetime
import hashlib
import json
import os
import sys
import time
import urllib.parse
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Kvmock, Runner, check, eq, parse_args, b64url, unb64url, TENANT, APP  # noqa: E402

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import padding, rsa  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

CERT_APP = {"name": "cert-app", "objectId": "0a000000-0000-4000-8000-0000000000d1",
            "clientId": "0c000000-0000-4000-8000-0000000000d1"}
JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
# MSAL.NET's and MSAL4J's threshold between a lifetime and a point in time
ABSOLUTE_THRESHOLD = 978307200


def dotnet_challenge(header):
    """Azure.Security.KeyVault's reading: drop "Bearer ", split on ",", then on "=",
    keep pairs of exactly two parts, trim spaces and quotes."""
    check(header.lower().startswith("bearer "), header)
    params = {}
    for pair in header[len("Bearer "):].split(","):
        parts = pair.split("=")
        if len(parts) == 2:
            params[parts[0].strip().strip('"')] = parts[1].strip().strip('"')
    return params


def java_challenge(header):
    """azure-security-keyvault-keys' reading: split on ", ", then on "=" (the second part
    is the value; a pair without "=" would throw)."""
    params = {}
    for pair in header[len("Bearer "):].split(", "):
        parts = pair.strip().split("=")
        check(len(parts) >= 2, f"Java cannot read {pair!r}")
        params[parts[0].replace('"', "")] = parts[1].replace('"', "")
    return params


def dotnet_lifetime(body):
    """MSAL.NET's ManagedIdentityResponse: expires_on and expires_in land in one field,
    the later in the document winning; then GetDurationFromManagedIdentityTimestamp."""
    value = None
    for k, v in json.loads(body, object_pairs_hook=list):
        if k in ("expires_on", "expires_in"):
            value = str(v)
    check(value is not None, body)
    n = int(value)
    return n if n < ABSOLUTE_THRESHOLD else n - int(time.time())


def java_expires_on(body):
    """MSAL4J: expires_on is required and parsed with Long.parseLong."""
    doc = json.loads(body)
    check(doc.get("access_token"), body)
    return int(str(doc["expires_on"]))


def token_from(st, body, what):
    eq(st, 200, f"{what}: {body!r}")
    doc = json.loads(body)
    check(doc.get("access_token"), f"{what}: no access_token")
    check("message" not in doc, f"{what}: a message field")
    eq(doc.get("token_type"), "Bearer", what)
    return doc


def main():
    args = parse_args()
    runner = Runner()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cert-app")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    der = cert.public_bytes(serialization.Encoding.DER)
    config = {"tenantId": TENANT,
              "identities": [APP, dict(CERT_APP, clientCertificates=cert.public_bytes(
                  serialization.Encoding.PEM).decode())]}

    with Kvmock(args.kvmock, config=config) as kv:
        P = kv.https_port
        vault_host = f"default.vault.localhost:{P}"

        def mi_get(path, headers):
            return kv.http("GET", path, headers=dict(headers, Host=f"127.0.0.1:{kv.http_port}"))

        @runner.test
        def challenge_read_by_dotnet_and_java():
            # .NET: the first request without content; Java: Content-Length: 0 set by hand
            body = json.dumps({"kty": "RSA", "key_size": 2048}).encode()
            for label, extra in ((".NET", {}), ("Java", {"Content-Length": "0"})):
                st, hdrs, resp = kv.https("POST", "/keys/k1/create?api-version=7.6", None,
                                          headers=dict({"Content-Type": "application/json",
                                                        "Accept": "application/json"}, **extra),
                                          host=vault_host, token=None)
                eq(st, 401, f"{label}: {resp!r}")
                header = hdrs.get("www-authenticate", "")
                for parse in (dotnet_challenge, java_challenge):
                    c = parse(header)
                    auth = urllib.parse.urlsplit(c.get("authorization", ""))
                    check(auth.scheme == "https" and auth.netloc, f"{label}: {header}")
                    eq(auth.path.split("/")[1], TENANT, "the tenant, first path segment")
                    resource = urllib.parse.urlsplit(c["resource"])
                    check(vault_host.split(":")[0].endswith("." + resource.hostname),
                          f"the challenge-resource check fails: {header}")
                # the token for resource + "/.default" (the Java 1.12 credential adds "/")
                for res in (c["resource"], c["resource"] + "/"):
                    st, _, tb = mi_get("/msi/token?" + urllib.parse.urlencode(
                        {"api-version": "2019-08-01", "resource": res}),
                        {"X-IDENTITY-HEADER": kv.identity_header})
                    tok = token_from(st, tb, "App Service")["access_token"]
                    st, _, resp = kv.https("POST", "/keys/k1/create?api-version=7.6", body,
                                           headers={"Content-Type": "application/json"},
                                           host=vault_host, token=tok)
                    eq(st, 200, f"{label} with {res}: {resp!r}")

        @runner.test
        def msal_dotnet_and_java_app_service():
            q = urllib.parse.urlencode({"api-version": "2019-08-01",
                                        "resource": "https://vault.azure.net"})
            for extra in ({}, {"client_id": APP["clientId"]}, {"object_id": APP["objectId"]}):
                path = "/msi/token?" + q + ("&" + urllib.parse.urlencode(extra) if extra else "")
                st, _, body = mi_get(path, {"X-IDENTITY-HEADER": kv.identity_header})
                token_from(st, body, "App Service")
                check(3000 < dotnet_lifetime(body) <= 3600, body)
                check(java_expires_on(body) > time.time() + 3000, body)

        @runner.test
        def msal_dotnet_imds_and_azure_ml():
            q = urllib.parse.urlencode({"api-version": "2018-02-01",
                                        "resource": "https://vault.azure.net",
                                        "client_id": APP["clientId"]})
            st, _, body = mi_get("/metadata/identity/oauth2/token?" + q,
                                 {"Metadata": "true", "x-client-SKU": "MSAL.CoreCLR",
                                  "x-ms-correlation-id": str(uuid.uuid4())})
            token_from(st, body, "IMDS")
            check(3000 < dotnet_lifetime(body) <= 3600, body)
            # Azure ML: Metadata and secret headers, clientid= (2017-09-01)
            q = urllib.parse.urlencode({"api-version": "2017-09-01",
                                        "resource": "https://vault.azure.net",
                                        "clientid": APP["clientId"]})
            st, _, body = mi_get("/msi/token?" + q,
                                 {"Metadata": "true", "secret": kv.identity_header})
            token_from(st, body, "Azure ML")
            # Azure.Identity's IMDS probe (DefaultAzureCredential): no Metadata header;
            # the 400 is IMDS's, which .NET only retries for 169.254.169.254
            st, _, body = mi_get("/metadata/identity/oauth2/token?api-version=2018-02-01"
                                 "&resource=https%3A%2F%2Fvault.azure.net", {})
            eq(st, 400, body)
            check(b"Identity not found" not in body, body)

        @runner.test
        def msal_java_imds_behind_pod_identity_host():
            # MSAL4J: AZURE_POD_IDENTITY_AUTHORITY_HOST + "/" + "/metadata/identity/oauth2/token"
            q = urllib.parse.urlencode({"api-version": "2018-02-01",
                                        "resource": "https://vault.azure.net"})
            for path in ("//metadata/identity/oauth2/token", "///metadata/identity/oauth2/token"):
                st, _, body = mi_get(path + "?" + q, {"Metadata": "true"})
                token_from(st, body, path)
                check(java_expires_on(body) > time.time() + 3000, body)
            # still IMDS: the Metadata header is required there too
            st, _, body = mi_get("//metadata/identity/oauth2/token?" + q, {})
            eq(st, 400, body)
            # and only that path: other double slashes are not token endpoints
            st, _, body = mi_get("//msi/tokens?" + q, {"Metadata": "true"})
            check(st != 200, body)

        @runner.test
        def msal_java_and_dotnet_cloud_shell():
            # MSAL4J 1.16 and later: GET, Metadata: true, the resource in the query
            st, _, body = mi_get("/msi/token?resource=https%3A%2F%2Fvault.azure.net",
                                 {"Metadata": "true",
                                  "ContentType": "application/x-www-form-urlencoded"})
            token_from(st, body, "Cloud Shell GET")
            check(java_expires_on(body) > time.time() + 3000, body)
            # MSAL.NET and earlier MSAL4J: POST with the form body
            st, _, body = kv.http("POST", "/msi/token", b"resource=https%3A%2F%2Fvault.azure.net",
                                  headers=dict(FORM, Metadata="true"))
            token_from(st, body, "Cloud Shell POST")
            check(3000 < dotnet_lifetime(body) <= 3600, body)
            # without Metadata and without the identity header, still refused
            st, _, body = mi_get("/msi/token?resource=https%3A%2F%2Fvault.azure.net", {})
            eq(st, 400, body)
            st, _, body = mi_get("/msi/token?resource=https%3A%2F%2Fvault.azure.net",
                                 {"Metadata": "false"})
            eq(st, 400, body)
            # a wrong identity header is not saved by Metadata: true
            for wrong in ({"X-IDENTITY-HEADER": "wrong"}, {"secret": "wrong"}):
                st, _, body = mi_get("/msi/token?api-version=2019-08-01"
                                     "&resource=https%3A%2F%2Fvault.azure.net",
                                     dict(wrong, Metadata="true"))
                eq(st, 400, f"{wrong}: {body!r}")

        def assertion(alg, x5t_name, numbers_as_strings):
            endpoint = f"https://localhost:{P}/{TENANT}/oauth2/v2.0/token"
            t = int(time.time())
            claims = {"aud": endpoint, "iss": CERT_APP["clientId"], "sub": CERT_APP["clientId"],
                      "nbf": t, "exp": t + 600, "jti": str(uuid.uuid4())}
            if numbers_as_strings:
                claims["nbf"], claims["exp"] = str(claims["nbf"]), str(claims["exp"])
            digest = hashlib.sha256(der) if x5t_name == "x5t#S256" else hashlib.sha1(der)
            header = {"alg": alg, "typ": "JWT", x5t_name: b64url(digest.digest())}
            signing = (b64url(json.dumps(header, separators=(",", ":")).encode()) + "." +
                       b64url(json.dumps(claims, separators=(",", ":")).encode()))
            pad = (padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
                   if alg == "PS256" else padding.PKCS1v15())
            return signing + "." + b64url(key.sign(signing.encode(), pad, hashes.SHA256()))

        def certificate_token(jwt, what):
            form = {"client_id": CERT_APP["clientId"], "client_assertion_type": JWT_BEARER,
                    "client_assertion": jwt, "scope": "https://vault.azure.net/.default",
                    "grant_type": "client_credentials", "client_info": "1"}
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token",
                                   urllib.parse.urlencode(form).encode(), headers=FORM,
                                   token=None)
            eq(st, 200, f"{what}: {body!r}")
            doc = json.loads(body)
            check(doc.get("access_token") and doc.get("expires_in"), body)
            claims = json.loads(unb64url(doc["access_token"].split(".")[1]))
            eq(claims["oid"], CERT_APP["objectId"], what)

        @runner.test
        def msal_java_certificate_assertion():
            certificate_token(assertion("RS256", "x5t#S256", False), "MSAL4J RS256 x5t#S256")

        @runner.test
        def msal_dotnet_certificate_assertion():
            certificate_token(assertion("PS256", "x5t#S256", True), "MSAL.NET PS256, string dates")
            certificate_token(assertion("RS256", "x5t", True), "MSAL.NET RS256 fallback")
            # a date that is a string but not a number is still refused
            t = assertion("PS256", "x5t#S256", True)
            head, claims, _ = t.split(".")
            doc = json.loads(unb64url(claims))
            doc["exp"] = "soon"
            signing = head + "." + b64url(json.dumps(doc).encode())
            bad = signing + "." + b64url(key.sign(
                signing.encode(), padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256()))
            form = {"client_id": CERT_APP["clientId"], "client_assertion_type": JWT_BEARER,
                    "client_assertion": bad, "scope": "https://vault.azure.net/.default",
                    "grant_type": "client_credentials"}
            st, _, body = kv.https("POST", f"/{TENANT}/oauth2/v2.0/token",
                                   urllib.parse.urlencode(form).encode(), headers=FORM,
                                   token=None)
            check(st in (400, 401) and b"access_token" not in body, body)

        runner.run_collected()
    sys.exit(runner.exit_code())


if __name__ == "__main__":
    main()
