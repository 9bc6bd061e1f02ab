"""Client assertions on kvmock's Entra-shaped token endpoint: an application's own
certificates (CertificateCredential with a path, with bytes, with its chain in x5c;
EnvironmentCredential and DefaultAzureCredential from AZURE_CLIENT_CERTIFICATE_PATH)
and federated credentials (ClientAssertionCredential, and the workload-identity
token file through ManagedIdentityCredential and DefaultAzureCredential), each token
then used on the vault with the key SDK, access policies applying to the identity;
in raw HTTP every refusal of the error table (status, error, AADSTS code, what it
quotes, never a token), PS256 with x5t#S256, ES256, the clock skew, the v1 endpoint,
the body limit; the configuration's bad certificates and JWKS refused at start with
the field named; and the certificate file's private key never in the log or an answer.

The certificates, keys, JWKS and assertions are made here with `cryptography`; the
configuration file is written beside them so that its relative paths are exercised.
"""
import datetime
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
import uuid
from contextlib import contextmanager

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Kvmock, Runner, check, eq, parse_args, b64url, unb64url,  # noqa: E402
                     start_refused, write, TENANT, APP)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from azure.core.exceptions import ClientAuthenticationError, HttpResponseError  # noqa: E402
from azure.identity import (CertificateCredential, ClientAssertionCredential,  # noqa: E402
                            DefaultAzureCredential, EnvironmentCredential,
                            ManagedIdentityCredential)
from azure.keyvault.keys import KeyClient  # noqa: E402
from azure.keyvault.keys.crypto import CryptographyClient, KeyWrapAlgorithm  # noqa: E402

# an application that proves itself with certificates only (no secret)
CERT_APP = {"name": "cert-app", "objectId": "0a000000-0000-4000-8000-0000000000c1",
            "clientId": "0c000000-0000-4000-8000-0000000000c1"}
# a workload with federated credentials only
WORKLOAD = {"name": "workload", "objectId": "0a000000-0000-4000-8000-0000000000c2",
            "clientId": "0c000000-0000-4000-8000-0000000000c2"}
# an application with a client secret, and a managed identity with neither
SECRET_APP = {"name": "secret-app", "objectId": "0a000000-0000-4000-8000-0000000000c3",
              "clientId": "0c000000-0000-4000-8000-0000000000c3", "clientSecret": "s3cret-c3"}
MANAGED = {"name": "managed", "objectId": "0a000000-0000-4000-8000-0000000000c4",
           "clientId": "0c000000-0000-4000-8000-0000000000c4"}

K8S_ISS = "https://kubernetes.default.svc.cluster.local"
K8S_SUB = "system:serviceaccount:default:ci"
K8S_AUD = "api://AzureADTokenExchange"  # the default audience: the credential names none
GH_ISS = "https://token.actions.githubusercontent.com"
GH_SUB = "repo:contoso/app:ref:refs/heads/main"
GH_AUD = "api://custom-exchange"

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
VAULT_SCOPE = "https://vault.azure.net/.default"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
HASHES = {"256": hashes.SHA256, "384": hashes.SHA384, "512": hashes.SHA512}


# ---- certificates, keys, JWKS and JWS -------------------------------------------------------

def new_rsa(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def self_signed(key, cn, from_days=-1, to_days=30):
    """A certificate valid from from_days to to_days around now."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now + datetime.timedelta(days=from_days))
            .not_valid_after(now + datetime.timedelta(days=to_days))
            .sign(key, hashes.SHA256()))


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def cert_der(cert):
    return cert.public_bytes(serialization.Encoding.DER)


def jwk(key, kid=None, **extra):
    """The public JWK of an RSA or EC private key."""
    pub = key.public_key().public_numbers()
    if isinstance(key, rsa.RSAPrivateKey):
        out = {"kty": "RSA", "n": b64url(pub.n.to_bytes((pub.n.bit_length() + 7) // 8, "big")),
               "e": b64url(pub.e.to_bytes((pub.e.bit_length() + 7) // 8, "big"))}
    else:
        size = (key.curve.key_size + 7) // 8
        out = {"kty": "EC", "crv": {256: "P-256", 384: "P-384", 521: "P-521"}[key.curve.key_size],
               "x": b64url(pub.x.to_bytes(size, "big")), "y": b64url(pub.y.to_bytes(size, "big"))}
    if kid is not None:
        out["kid"] = kid
    out.update(extra)
    return out


def sign(key, alg, data):
    h = HASHES[alg[2:]]()
    if alg.startswith("RS"):
        return key.sign(data, padding.PKCS1v15(), h)
    if alg.startswith("PS"):
        return key.sign(data, padding.PSS(mgf=padding.MGF1(h), salt_length=h.digest_size), h)
    r, s = decode_dss_signature(key.sign(data, ec.ECDSA(h)))
    size = (key.curve.key_size + 7) // 8
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")  # JOSE: r || s


def jws(header, claims, key, alg):
    head = dict(header, alg=alg)
    signing = b64url(json.dumps(head).encode()) + "." + b64url(json.dumps(claims).encode())
    return signing + "." + b64url(sign(key, alg, signing.encode()))


def claims_for(iss, sub, aud, over=None):
    """An assertion's claims, valid for 10 minutes; `over` replaces (None: removes) some."""
    now = int(time.time())
    out = {"iss": iss, "sub": sub, "aud": aud, "jti": str(uuid.uuid4()),
           "iat": now, "nbf": now - 5, "exp": now + 600}
    out.update(over or {})
    return {k: v for k, v in out.items() if v is not None}


def jwt_claims(token):
    return json.loads(unb64url(token.split(".")[1]))


@contextmanager
def environment(set_vars, drop=()):
    """os.environ with `set_vars` set and `drop` removed, restored afterwards."""
    saved = dict(os.environ)
    try:
        for k in drop:
            os.environ.pop(k, None)
        os.environ.update(set_vars)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def main():
    args = parse_args()
    runner = Runner()
    work = tempfile.mkdtemp(prefix="kvmock-assertions-")
    try:
        run(args, runner, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(runner.exit_code())


def run(args, runner, work):
    # the application's certificate, its key first in the same PEM file, as
    # AZURE_CLIENT_CERTIFICATE_PATH takes it
    app_key = new_rsa()
    app_cert = self_signed(app_key, "cert-app")
    app_pem = key_pem(app_key) + cert_pem(app_cert)
    app_pem_path = write(os.path.join(work, "certs", "cert-app.pem"), app_pem)
    # a second certificate of the application, given inline in the configuration
    second_key = new_rsa()
    second_cert = self_signed(second_key, "cert-app-2")
    # two more of its certificates: one expired yesterday, one valid only from tomorrow
    expired_key, early_key = new_rsa(), new_rsa()
    expired_cert = self_signed(expired_key, "cert-app-expired", -10, -1)
    early_cert = self_signed(early_key, "cert-app-early", 1, 30)
    # a certificate registered nowhere
    stray_key = new_rsa()
    stray_cert = self_signed(stray_key, "stray")

    # the federated issuers' keys: Kubernetes' RSA key inline, GitHub's EC key in a file
    k8s_key = new_rsa()
    k8s_enc_key = new_rsa()  # published for encryption: not a signing key
    gh_key = ec.generate_private_key(ec.SECP256R1())
    k8s_jwks = {"keys": [jwk(k8s_key, "k8s-1", use="sig", alg="RS256"),
                         jwk(k8s_enc_key, "k8s-enc", use="enc")]}
    write(os.path.join(work, "jwks", "github.json"),
          json.dumps({"keys": [jwk(gh_key, "gh-1", use="sig", alg="ES256")]}))

    cert_app = dict(CERT_APP, clientCertificates=["certs/cert-app.pem",
                                                  cert_pem(second_cert).decode(),
                                                  cert_pem(expired_cert).decode()
                                                  + cert_pem(early_cert).decode()])
    workload = dict(WORKLOAD, federatedCredentials=[
        {"name": "k8s", "issuer": K8S_ISS, "subject": K8S_SUB, "jwks": k8s_jwks,
         "description": "the cluster's service account"},
        {"name": "github", "issuer": GH_ISS, "subject": GH_SUB, "audiences": [GH_AUD],
         "jwks": "jwks/github.json"}])
    all_keys = {"keys": ["all"]}
    config = {
        "tenantId": TENANT,
        "identities": [APP, cert_app, workload, SECRET_APP, MANAGED],
        "vaults": [
            {"name": "certs", "properties": {"accessPolicies": [
                {"objectId": APP["objectId"], "permissions": all_keys},
                {"objectId": CERT_APP["objectId"], "permissions": all_keys},
                {"objectId": WORKLOAD["objectId"], "permissions": all_keys}]}},
            {"name": "closed", "properties": {"accessPolicies": [
                {"objectId": APP["objectId"], "permissions": all_keys}]}},
        ],
    }
    config_path = write(os.path.join(work, "config.json"), json.dumps(config, indent=1))

    with Kvmock(args.kvmock, config=config_path, extra_args=["--log-level", "debug"]) as kv:
        kv.apply_env()
        P = kv.https_port
        authority = f"https://localhost:{P}"
        v2_url = f"{authority}/{TENANT}/oauth2/v2.0/token"
        v1_url = f"{authority}/{TENANT}/oauth2/token"
        answers = []  # every token endpoint answer's body, checked for the private key
        accepted = []  # assertions kvmock took: none is in its log

        def post_token(form, path=f"/{TENANT}/oauth2/v2.0/token"):
            body = form if isinstance(form, bytes) else urllib.parse.urlencode(form).encode()
            st, hdrs, resp = kv.https("POST", path, body, headers=FORM, token=None)
            answers.append(resp)
            return st, hdrs, resp

        def assertion_form(assertion, client_id, **extra):
            form = {"grant_type": "client_credentials", "client_id": client_id,
                    "scope": VAULT_SCOPE, "client_assertion_type": JWT_BEARER,
                    "client_assertion": assertion}
            form.update(extra)
            return {k: v for k, v in form.items() if v is not None}

        def issued(form, identity, path=f"/{TENANT}/oauth2/v2.0/token"):
            """The token endpoint issues a token to `identity`; its claims."""
            st, _, resp = post_token(form, path)
            eq(st, 200, resp)
            doc = json.loads(resp)
            eq(doc["token_type"], "Bearer")
            claims = jwt_claims(doc["access_token"])
            eq((claims["oid"], claims["appid"], claims["tid"]),
               (identity["objectId"], identity["clientId"], TENANT), "the token's identity")
            if isinstance(form, dict) and "client_assertion" in form:
                accepted.append(form["client_assertion"])
            return doc, claims

        def refused(form, status, error, prefix, quoted=(), path=f"/{TENANT}/oauth2/v2.0/token"):
            """The exact refusal: status, error, description's AADSTS prefix, what it
            quotes; the OAuth error shape and never a token."""
            st, hdrs, resp = post_token(form, path)
            doc = json.loads(resp)
            eq(st, status, f"{prefix} {resp!r}")
            eq(doc.get("error"), error, resp)
            desc = doc.get("error_description", "")
            check(desc.startswith(prefix), f"want {prefix!r}, got {desc!r}")
            for q in quoted:
                check(q in desc, f"{q!r} not quoted in {desc!r}")
            check(doc.get("correlation_id"), resp)
            check("access_token" not in doc and b"access_token" not in resp, resp)
            check(hdrs.get("content-type", "").startswith("application/json"), hdrs)
            return desc

        def own(key=app_key, cert=app_cert, alg="RS256", thumbprint="x5t", header=None,
                client=CERT_APP, aud=v2_url, **over):
            """The application's own assertion, as MSAL makes it."""
            head = dict(header or {}, typ="JWT")
            der = cert_der(cert)
            if thumbprint == "x5t":
                head["x5t"] = b64url(hashlib.sha1(der).digest())
            elif thumbprint == "x5t#S256":
                head["x5t#S256"] = b64url(hashlib.sha256(der).digest())
            cid = client["clientId"]
            return jws(head, claims_for(cid, cid, aud, over), key, alg)

        def federated(key=k8s_key, alg="RS256", kid="k8s-1", iss=K8S_ISS, sub=K8S_SUB,
                      aud=K8S_AUD, **over):
            head = {"typ": "JWT"}
            if kid is not None:
                head["kid"] = kid
            return jws(head, claims_for(iss, sub, aud, over), key, alg)

        def cert_credential(**kw):
            # Debian's azure-identity 1.13 names the option instance_discovery=False
            return CertificateCredential(TENANT, CERT_APP["clientId"], authority=authority,
                                         instance_discovery=False, **kw)

        def use_vault(cred, identity, key_name):
            """The credential's token names `identity`, which creates and uses a key in
            the vault whose policy names it, and is refused by the one that does not."""
            tok = cred.get_token(VAULT_SCOPE).token
            eq((jwt_claims(tok)["oid"], jwt_claims(tok)["appid"]),
               (identity["objectId"], identity["clientId"]))
            keys = KeyClient(kv.vault_url("certs"), cred)
            key = keys.create_rsa_key(key_name, size=2048)
            eq(keys.get_key(key_name).id, key.id)
            crypto = CryptographyClient(key, cred)
            dek = os.urandom(32)
            wrapped = crypto.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, dek).encrypted_key
            eq(crypto.unwrap_key(KeyWrapAlgorithm.rsa_oaep_256, wrapped).key, dek)
            try:
                KeyClient(kv.vault_url("closed"), cred).create_rsa_key(key_name)
                check(False, "the vault without a policy for the identity must refuse it")
            except HttpResponseError as e:
                eq(e.status_code, 403, e.message)
                eq(json.loads(e.response.text())["error"]["innererror"]["code"], "AccessDenied")
                check(identity["objectId"] in e.message, e.message)
            return key

        # ---- the SDK: certificates ----------------------------------------------------

        @runner.test
        def certificate_credential_from_a_path():
            use_vault(cert_credential(certificate_path=app_pem_path), CERT_APP, "by-path")
            # kvmock's openid configuration says it takes private_key_jwt
            st, _, body = kv.https("GET", f"/{TENANT}/v2.0/.well-known/openid-configuration",
                                   token=None)
            eq(st, 200, body)
            check("private_key_jwt" in json.loads(body)["token_endpoint_auth_methods_supported"],
                  body)

        @runner.test
        def certificate_credential_with_its_chain_and_from_bytes():
            # x5c in the header (MSAL sends the PEM certificates of the file)
            use_vault(cert_credential(certificate_path=app_pem_path, send_certificate_chain=True),
                      CERT_APP, "with-chain")
            with open(app_pem_path, "rb") as f:
                use_vault(cert_credential(certificate_data=f.read()), CERT_APP, "from-bytes")
            # the second certificate, registered inline in the configuration, works too
            second = write(os.path.join(work, "second.pem"),
                           key_pem(second_key) + cert_pem(second_cert))
            use_vault(cert_credential(certificate_path=second), CERT_APP, "second-cert")
            # and a certificate registered nowhere does not: Entra's error through the SDK
            stray = write(os.path.join(work, "stray.pem"), key_pem(stray_key) + cert_pem(stray_cert))
            try:
                cert_credential(certificate_path=stray).get_token(VAULT_SCOPE)
                check(False, "an unregistered certificate must not get a token")
            except ClientAuthenticationError as e:
                check("AADSTS700027" in e.message, e.message)
                check(stray_cert.fingerprint(hashes.SHA1()).hex().upper() in e.message, e.message)

        @runner.test
        def environment_and_default_credentials_from_the_certificate_path():
            env = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": CERT_APP["clientId"],
                   "AZURE_CLIENT_CERTIFICATE_PATH": app_pem_path,
                   "AZURE_AUTHORITY_HOST": authority}
            with environment(env):
                # azure-identity 1.13.0b2 reads the authority from AZURE_AUTHORITY_HOST; MSAL
                # 1.21 would ask login.microsoftonline.com to discover a host it does not
                # know, so instance_discovery=False is passed (the credentials hand it on)
                cred = EnvironmentCredential(instance_discovery=False)
                eq(type(cred._credential).__name__, "CertificateCredential")
                use_vault(cred, CERT_APP, "from-env")
                use_vault(DefaultAzureCredential(instance_discovery=False), CERT_APP,
                          "from-default")

        # ---- the SDK: federated credentials ---------------------------------------------

        @runner.test
        def client_assertion_credential_with_federated_tokens():
            calls = []

            def github_token():
                calls.append(1)
                return federated(gh_key, "ES256", "gh-1", GH_ISS, GH_SUB, GH_AUD)

            # 1.13.0b2's ClientAssertionCredential takes no keyword argument (its
            # GetTokenMixin hands them to object.__init__: TypeError), so the authority
            # comes from AZURE_AUTHORITY_HOST, as its AadClient reads it
            with environment({"AZURE_AUTHORITY_HOST": authority}):
                use_vault(ClientAssertionCredential(TENANT, WORKLOAD["clientId"], github_token),
                          WORKLOAD, "federated-es256")
                check(calls, "the credential asked for the assertion")
                use_vault(ClientAssertionCredential(TENANT, WORKLOAD["clientId"],
                                                    lambda: federated()),
                          WORKLOAD, "federated-rs256")
                # a subject no credential has: Entra's error through the SDK
                try:
                    ClientAssertionCredential(
                        TENANT, WORKLOAD["clientId"],
                        lambda: federated(sub="system:serviceaccount:prod:x")).get_token(VAULT_SCOPE)
                    check(False, "a federated token of another subject must not get a token")
                except ClientAuthenticationError as e:
                    check("AADSTS700213" in e.message, e.message)
                    check("'system:serviceaccount:prod:x'" in e.message, e.message)

        @runner.test
        def workload_identity_token_file():
            token_file = write(os.path.join(work, "sa", "token"), federated())
            env = {"AZURE_TENANT_ID": TENANT, "AZURE_CLIENT_ID": WORKLOAD["clientId"],
                   "AZURE_FEDERATED_TOKEN_FILE": token_file, "AZURE_AUTHORITY_HOST": authority}
            # 1.13.0b2's ManagedIdentityCredential exchanges the token file when
            # AZURE_AUTHORITY_HOST, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE are set
            # and no managed identity endpoint is (apply_env set App Service's)
            drop = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "MSI_SECRET",
                    "IMDS_ENDPOINT", "AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_SECRET")
            with environment(env, drop):
                cred = ManagedIdentityCredential()
                eq(type(cred._credential).__name__, "TokenExchangeCredential")
                use_vault(cred, WORKLOAD, "workload")
                use_vault(DefaultAzureCredential(exclude_cli_credential=True,
                                                 exclude_powershell_credential=True,
                                                 exclude_shared_token_cache_credential=True),
                          WORKLOAD, "workload-default")

        # ---- raw HTTP: what is taken -----------------------------------------------------

        @runner.test
        def own_assertions_accepted():
            cid = CERT_APP["clientId"]
            # RS256 with x5t, as MSAL Python signs
            issued(assertion_form(own(), cid), CERT_APP)
            # PS256 with x5t#S256, as MSAL Node signs; x5t#S256 wins over a wrong x5t
            issued(assertion_form(own(alg="PS256", thumbprint="x5t#S256"), cid), CERT_APP)
            wrong_sha1 = {"x5t": b64url(hashlib.sha1(cert_der(stray_cert)).digest())}
            issued(assertion_form(own(alg="PS256", thumbprint="x5t#S256", header=wrong_sha1), cid),
                   CERT_APP)
            # the inline (second) certificate, and aud as the array's only member
            issued(assertion_form(own(second_key, second_cert), cid), CERT_APP)
            issued(assertion_form(own(aud=[v2_url]), cid), CERT_APP)
            # exp 100 s ago and nbf 100 s ahead are within the 300 s of skew
            now = int(time.time())
            issued(assertion_form(own(exp=now - 100, nbf=now - 700), cid), CERT_APP)
            issued(assertion_form(own(nbf=now + 100), cid), CERT_APP)
            # no nbf at all is fine
            issued(assertion_form(own(nbf=None), cid), CERT_APP)
            # through "organizations", the endpoint may name the identity's own tenant
            issued(assertion_form(own(), cid), CERT_APP, path="/organizations/oauth2/v2.0/token")
            issued(assertion_form(own(aud=f"{authority}/organizations/oauth2/v2.0/token"), cid),
                   CERT_APP, path="/organizations/oauth2/v2.0/token")

        @runner.test
        def v1_endpoint_takes_an_assertion_for_its_own_url():
            form = assertion_form(own(aud=v1_url), CERT_APP["clientId"], scope=None,
                                  resource="https://vault.azure.net")
            doc, claims = issued(form, CERT_APP, path=f"/{TENANT}/oauth2/token")
            eq(doc["resource"], "https://vault.azure.net")
            check(claims["aud"].startswith("https://vault."), claims)
            # the token works on the vault
            st, _, body = kv.https("GET", "/keys?api-version=7.4", token=doc["access_token"],
                                   host=f"certs.vault.localhost:{P}")
            eq(st, 200, body)
            # go-autorest's adal names the endpoint with its query (since 8953326)
            form = assertion_form(own(aud=v1_url + "?api-version=1.0"), CERT_APP["clientId"],
                                  scope=None, resource="https://vault.azure.net")
            issued(form, CERT_APP, path=f"/{TENANT}/oauth2/token?api-version=1.0")
            # but a query does not make another path the endpoint
            bad_aud = f"{authority}/{TENANT}/oauth2/authorize?api-version=1.0"
            refused(assertion_form(own(aud=bad_aud), CERT_APP["clientId"], scope=None,
                                   resource="https://vault.azure.net"),
                    401, "invalid_client", "AADSTS700023:", [bad_aud],
                    path=f"/{TENANT}/oauth2/token")

        @runner.test
        def federated_assertions_accepted():
            wid = WORKLOAD["clientId"]
            issued(assertion_form(federated(), wid), WORKLOAD)
            # ES256 (JOSE r||s) against the JWKS file, with the credential's own audience
            issued(assertion_form(federated(gh_key, "ES256", "gh-1", GH_ISS, GH_SUB, GH_AUD), wid),
                   WORKLOAD)
            # no kid: every key of the issuer is tried; aud may be an array holding it
            issued(assertion_form(federated(kid=None, aud=["other", K8S_AUD]), wid), WORKLOAD)
            # PS256 and RS512 with the same RSA key
            issued(assertion_form(federated(alg="PS256"), wid), WORKLOAD)
            issued(assertion_form(federated(alg="RS512"), wid), WORKLOAD)
            # the endpoint's aud is not required of a federated assertion; the v1 shape too
            issued(assertion_form(federated(), wid, scope=None, resource="https://vault.azure.net"),
                   WORKLOAD, path=f"/{TENANT}/oauth2/token")

        # ---- raw HTTP: the error table ---------------------------------------------------

        @runner.test
        def request_shape_errors():
            cid = CERT_APP["clientId"]
            base = {"grant_type": "client_credentials", "client_id": cid, "scope": VAULT_SCOPE}
            # neither a secret nor an assertion
            refused(base, 400, "invalid_request", "AADSTS7000216:")
            refused(dict(base, client_assertion_type=JWT_BEARER), 400, "invalid_request",
                    "AADSTS7000216:")
            # both
            refused(assertion_form(own(), cid, client_secret="s3cret-c3"), 400, "invalid_request",
                    "AADSTS50027:")
            refused(assertion_form(own(), SECRET_APP["clientId"], client_secret="s3cret-c3"), 400,
                    "invalid_request", "AADSTS50027:")
            # the assertion type missing or wrong
            refused(assertion_form(own(), cid, client_assertion_type=None), 400, "invalid_request",
                    "AADSTS50027:")
            refused(assertion_form(own(), cid, client_assertion_type="urn:x:jwt"), 400,
                    "invalid_request", "AADSTS50027:")

        @runner.test
        def secrets_never_open_a_certificate_only_identity():
            cid = CERT_APP["clientId"]
            for secret in ("", "wrong", "s3cret-c3"):
                refused({"grant_type": "client_credentials", "client_id": cid, "scope": VAULT_SCOPE,
                         "client_secret": secret}, 401, "invalid_client", "AADSTS7000215:")
            for secret in ("", "wrong"):
                refused({"grant_type": "client_credentials", "client_id": WORKLOAD["clientId"],
                         "scope": VAULT_SCOPE, "client_secret": secret},
                        401, "invalid_client", "AADSTS7000215:")
            # and a secret identity's wrong secret, while its right one works
            form = {"grant_type": "client_credentials", "client_id": SECRET_APP["clientId"],
                    "scope": VAULT_SCOPE, "client_secret": "wrong"}
            refused(form, 401, "invalid_client", "AADSTS7000215:")
            issued(dict(form, client_secret=SECRET_APP["clientSecret"]), SECRET_APP)

        @runner.test
        def unknown_clients():
            for cid in ("0c000000-0000-4000-8000-0000000000ff", MANAGED["clientId"]):
                refused(assertion_form(own(), cid), 400, "unauthorized_client", "AADSTS700016:")
                refused({"grant_type": "client_credentials", "client_id": cid, "scope": VAULT_SCOPE,
                         "client_secret": "x"}, 400, "unauthorized_client", "AADSTS700016:")

        @runner.test
        def malformed_assertions():
            cid = CERT_APP["clientId"]
            good = own()
            h, c, s = good.split(".")
            head = json.loads(unb64url(h))
            bad = {
                "two parts": f"{h}.{c}",
                "four parts": f"{good}.{s}",
                "bad base64": f"{h}.{c}!!.{s}",
                "claims not JSON": f"{h}.{b64url(b'not json')}.{s}",
                "header a JSON array": f"{b64url(b'[1]')}.{c}.{s}",
                "empty signature": f"{h}.{c}.",
                "unknown alg": b64url(json.dumps(dict(head, alg="HS256")).encode()) + f".{c}.{s}",
                "alg none": b64url(json.dumps(dict(head, alg="none")).encode()) + f".{c}.",
                "no alg": b64url(json.dumps({"typ": "JWT", "x5t": head["x5t"]}).encode())
                + f".{c}.{s}",
            }
            for label, claims in (("no iss", {"iss": None}), ("no sub", {"sub": None}),
                                  ("no aud", {"aud": None}), ("exp a string", {"exp": "soon"}),
                                  ("nbf a string", {"nbf": "now"})):
                bad[label] = own(**claims)
            for label, assertion in bad.items():
                desc = refused(assertion_form(assertion, cid), 401, "invalid_client",
                               "AADSTS50027: Invalid JWT token: ")
                check(len(desc) > len("AADSTS50027: Invalid JWT token: "), f"{label}: {desc}")
            # a certificate's assertion without a thumbprint
            refused(assertion_form(own(thumbprint=None), cid), 401, "invalid_client",
                    "AADSTS50027: Invalid JWT token. No certificate thumbprint specified in "
                    "token header.")
            # ... or with an algorithm Entra does not take for it
            for alg, key in (("RS384", app_key), ("RS512", app_key), ("PS512", app_key),
                             ("ES256", ec.generate_private_key(ec.SECP256R1()))):
                desc = refused(assertion_form(own(key=key, alg=alg), cid), 401, "invalid_client",
                               "AADSTS50027:")
                check("RS256 or PS256" in desc, desc)

        @runner.test
        def signatures_and_thumbprints():
            cid = CERT_APP["clientId"]
            # a thumbprint of no registered certificate, quoted in upper-case hex
            sha1_hex = stray_cert.fingerprint(hashes.SHA1()).hex().upper()
            sha256_hex = stray_cert.fingerprint(hashes.SHA256()).hex().upper()
            eq(sha1_hex, hashlib.sha1(cert_der(stray_cert)).hexdigest().upper())
            refused(assertion_form(own(stray_key, stray_cert), cid), 401, "invalid_client",
                    "AADSTS700027: The certificate with identifier", [f"'{sha1_hex}'"])
            refused(assertion_form(own(stray_key, stray_cert, thumbprint="x5t#S256"), cid), 401,
                    "invalid_client", "AADSTS700027: The certificate with identifier",
                    [f"'{sha256_hex}'"])
            # the registered certificate's thumbprint over another key's signature
            desc = refused(assertion_form(own(key=stray_key), cid), 401, "invalid_client",
                           "AADSTS700027: Client assertion contains an invalid signature. "
                           "[Reason - The provided signature value did not match")
            check(app_cert.fingerprint(hashes.SHA1()).hex().upper() in desc, desc)
            # a registered certificate outside its validity dates: Entra's key credential has
            # expired (or not started), its dates quoted as Entra quotes them
            for k, c in ((expired_key, expired_cert), (early_key, early_cert)):
                refused(assertion_form(own(k, c), cid), 401, "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature. "
                        "[Reason - The key used is expired.",
                        [f"'{c.fingerprint(hashes.SHA1()).hex().upper()}'",
                         "Found key 'Start=" + c.not_valid_before.strftime("%m/%d/%Y %H:%M:%S")
                         + ", End=" + c.not_valid_after.strftime("%m/%d/%Y %H:%M:%S") + "'"])
            # a payload changed after signing (its sub and iss still the client's)
            h, c, s = own().split(".")
            claims = json.loads(unb64url(c))
            claims["exp"] += 3600
            tampered = f"{h}.{b64url(json.dumps(claims).encode())}.{s}"
            refused(assertion_form(tampered, cid), 401, "invalid_client",
                    "AADSTS700027: Client assertion contains an invalid signature. "
                    "[Reason - The provided signature value did not match")
            # a signature flipped in its last byte
            sig = bytearray(unb64url(s))
            sig[-1] ^= 1
            refused(assertion_form(f"{h}.{c}.{b64url(bytes(sig))}", cid), 401, "invalid_client",
                    "AADSTS700027: Client assertion contains an invalid signature.")

        @runner.test
        def audience_and_time_of_own_assertions():
            cid = CERT_APP["clientId"]
            now = int(time.time())
            for aud in ("https://login.microsoftonline.com/" + TENANT + "/oauth2/v2.0/token",
                        f"https://localhost:{P + 1}/{TENANT}/oauth2/v2.0/token",
                        f"{authority}/6b766d6f-636b-4000-8000-0000000000ff/oauth2/v2.0/token",
                        f"{authority}/{TENANT}/oauth2/v2.0/authorize"):
                refused(assertion_form(own(aud=aud), cid), 401, "invalid_client",
                        "AADSTS700023: Client assertion audience claim does not match Realm issuer.",
                        [aud])
            for label, over in (("expired an hour ago", {"exp": now - 3600, "nbf": now - 4000}),
                                ("expired 301 s ago", {"exp": now - 310, "nbf": now - 900}),
                                ("not yet valid", {"nbf": now + 3600, "exp": now + 4000}),
                                ("no exp", {"exp": None})):
                refused(assertion_form(own(**over), cid), 401, "invalid_client",
                        "AADSTS700024: Client assertion is not within its valid time range.")
            # kvmock's own clock (POST /admin/clock) does not move the assertion's window
            kv.advance_clock(7200)
            issued(assertion_form(own(), cid), CERT_APP)

        @runner.test
        def federated_refusals():
            wid = WORKLOAD["clientId"]
            now = int(time.time())
            hint = "case-sensitive"
            d = refused(assertion_form(federated(iss="https://issuer.example"), wid), 401,
                        "invalid_client", "AADSTS700211:", ["issuer 'https://issuer.example'", hint])
            # matching is exact and case-sensitive
            refused(assertion_form(federated(iss=K8S_ISS.upper()), wid), 401, "invalid_client",
                    "AADSTS700211:", [f"'{K8S_ISS.upper()}'"])
            refused(assertion_form(federated(iss=K8S_ISS + "/"), wid), 401, "invalid_client",
                    "AADSTS700211:", [f"'{K8S_ISS}/'"])
            refused(assertion_form(federated(aud="api://Other"), wid), 401, "invalid_client",
                    "AADSTS700212:", ["audience 'api://Other'"])
            # the GitHub credential wants its own audience, not the default one
            refused(assertion_form(federated(gh_key, "ES256", "gh-1", GH_ISS, GH_SUB, K8S_AUD), wid),
                    401, "invalid_client", "AADSTS700212:", [f"'{K8S_AUD}'"])
            refused(assertion_form(federated(sub="system:serviceaccount:default:CI"), wid), 401,
                    "invalid_client", "AADSTS700213:",
                    ["subject 'system:serviceaccount:default:CI'"])
            # an issuer's key by a kid it does not publish, and its encryption key
            for kid in ("k8s-2", "k8s-enc"):
                key = k8s_enc_key if kid == "k8s-enc" else k8s_key
                refused(assertion_form(federated(key=key, kid=kid), wid), 401, "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature. "
                        "[Reason - The key was not found., Key id used by the issuer: "
                        f"'{kid}'", [K8S_ISS])
            # the right kid over another key's signature; an EC signature for an RSA key
            for label, assertion in (
                    ("another key", federated(key=k8s_enc_key)),
                    ("ES256 for an RSA key", federated(gh_key, "ES256", "k8s-1")),
                    ("RS256 for an EC key", federated(k8s_key, "RS256", "gh-1", GH_ISS, GH_SUB,
                                                      GH_AUD)),
                    ("no kid, no key of the issuer's", federated(key=k8s_enc_key, kid=None))):
                refused(assertion_form(assertion, wid), 401, "invalid_client",
                        "AADSTS700027: Client assertion contains an invalid signature. "
                        "[Reason - The provided signature value did not match")
            # a federated token out of its time, or without exp
            for over in ({"exp": now - 3600, "nbf": now - 4000}, {"nbf": now + 3600},
                         {"exp": None}):
                refused(assertion_form(federated(**over), wid), 401, "invalid_client",
                        "AADSTS700024:")
            # an identity with certificates only has no federated credential at all
            refused(assertion_form(federated(), CERT_APP["clientId"]), 401, "invalid_client",
                    "AADSTS700211:", [f"'{K8S_ISS}'"])
            # and the workload has no certificate: its "own" assertion finds none
            refused(assertion_form(own(client=WORKLOAD), wid), 401, "invalid_client",
                    "AADSTS700027: The certificate with identifier")
            check(hint in d, d)

        @runner.test
        def body_limit():
            cid = CERT_APP["clientId"]
            # a body of just over 32 KiB is refused before anything is read of it
            big = own(header={"x5c": ["A" * (33 * 1024)]})
            body = urllib.parse.urlencode(assertion_form(big, cid)).encode()
            check(len(body) > 32 * 1024, len(body))
            refused(body, 400, "invalid_request", "AADSTS900144:")
            # a body under the limit is read whole: its assertion, last, after 30 KiB
            small = urllib.parse.urlencode(assertion_form(own(), cid)).encode()
            body = b"pad=" + b"x" * (31 * 1024 - len(small)) + b"&" + small
            check(30 * 1024 < len(body) < 32 * 1024, len(body))
            st, _, resp = post_token(body)
            eq(st, 200, resp)
            # an assertion carrying a long chain in x5c is read whole: over 20 KiB is fine
            long = own(header={"x5c": ["A" * (20 * 1024)]})
            check(len(long) > 20 * 1024, len(long))
            issued(assertion_form(long, cid), CERT_APP)

        # ---- secrets ------------------------------------------------------------------------

        @runner.test
        def the_private_key_is_never_logged_or_answered():
            pem_lines = [ln for ln in key_pem(app_key).decode().splitlines()
                         if ln and not ln.startswith("-----")]
            check(len(pem_lines) > 20, pem_lines)
            d_hex = format(app_key.private_numbers().d, "x")
            with open(kv.log_path, "rb") as f:
                log = f.read().decode(errors="replace")
            check("client assertion for cert-app refused" in log, "the log holds the refusals")
            haystacks = {"log": log, "answers": b"\n".join(answers).decode(errors="replace")}
            for name, text in haystacks.items():
                flat = text.replace("\n", "")
                for ln in pem_lines:
                    check(ln not in text, f"a line of the private key is in the {name}")
                check("".join(pem_lines[1:4]) not in flat, f"the private key is in the {name}")
                check(d_hex not in text.lower(), f"the private exponent is in the {name}")
                check("PRIVATE KEY" not in text, f"a private key block is in the {name}")
            # nor is any accepted assertion (their signatures) in the log
            check(len(accepted) > 10, len(accepted))
            for a in accepted:
                check(a.rsplit(".", 1)[1] not in log, "an assertion is in the log")

        runner.run_collected()

    # ---- the configuration's refusals (each its own start) -------------------------------

    ec_key = ec.generate_private_key(ec.SECP256R1())
    ec_cert = self_signed(ec_key, "ec")
    small_key = new_rsa(1024)

    def with_identity(**fields):
        ident = dict(CERT_APP, **fields)
        return {"tenantId": TENANT, "identities": [APP, ident]}

    def with_federated(**fields):
        cred = {"name": "k8s", "issuer": K8S_ISS, "subject": K8S_SUB,
                "jwks": {"keys": [jwk(k8s_key, "k8s-1")]}}
        cred.update(fields)
        cred = {k: v for k, v in cred.items() if v is not None}
        return with_identity(federatedCredentials=[cred])

    def bad_certificates_are_refused_at_start():
        # a path is taken from the configuration file's folder; the message names the field
        # and the file it tried
        start_refused(args.kvmock, work, "missing-file",
                      with_identity(clientCertificates="certs/missing.pem"),
                      ["config: clientCertificates[0] in identities[1]: cannot read the certificate file",
                       os.path.join(work, "refused", "missing-file", "certs", "missing.pem")])
        key_lines = [ln for ln in key_pem(app_key).decode().splitlines()
                     if ln and not ln.startswith("-----")]
        start_refused(args.kvmock, work, "key-only", with_identity(clientCertificates="key.pem"),
                      ["clientCertificates[0] in identities[1]", "no certificate"],
                      files={"key.pem": key_pem(app_key)}, secrets=key_lines)
        start_refused(args.kvmock, work, "key-only-inline",
                      with_identity(clientCertificates=[cert_pem(app_cert).decode(),
                                                        key_pem(app_key).decode()]),
                      ["clientCertificates[1] in identities[1]", "no certificate"],
                      secrets=key_lines)
        start_refused(args.kvmock, work, "ec-cert",
                      with_identity(clientCertificates="ec.pem"),
                      ["clientCertificates[0] in identities[1]", "RSA"],
                      files={"ec.pem": key_pem(ec_key) + cert_pem(ec_cert)})
        start_refused(args.kvmock, work, "not-a-cert",
                      with_identity(clientCertificates="-----BEGIN CERTIFICATE-----\nAAAA\n"
                                                       "-----END CERTIFICATE-----\n"),
                      ["clientCertificates[0] in identities[1]", "X.509"])

    def bad_federated_credentials_are_refused_at_start():
        where = "identities[1].federatedCredentials[0]"
        start_refused(args.kvmock, work, "no-jwks", with_federated(jwks=None), [where, "'jwks'"])
        start_refused(args.kvmock, work, "oct-key",
                      with_federated(jwks={"keys": [{"kty": "oct", "k": b64url(b"k" * 32)}]}),
                      [where, "'oct'"])
        start_refused(args.kvmock, work, "two-audiences",
                      with_federated(audiences=["api://AzureADTokenExchange", "api://other"]),
                      [where, "'audiences'"])
        start_refused(args.kvmock, work, "unknown-field", with_federated(claimsMatchingExpression="x"),
                      [where, "unknown field 'claimsMatchingExpression'"])
        start_refused(args.kvmock, work, "missing-jwks-file", with_federated(jwks="jwks/none.json"),
                      [f"config: {where}: cannot read the jwks file",
                       os.path.join(work, "refused", "missing-jwks-file", "jwks", "none.json")])
        start_refused(args.kvmock, work, "rsa-1024",
                      with_federated(jwks={"keys": [jwk(small_key, "small")]}), [where, "2048"])
        start_refused(args.kvmock, work, "no-subject", with_federated(subject=None),
                      [where, "'subject'"])

    runner.run_tests([bad_certificates_are_refused_at_start,
                      bad_federated_credentials_are_refused_at_start])


if __name__ == "__main__":
    main()
