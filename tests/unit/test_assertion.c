/* Client assertions: certificates and federated credentials registered, assertions signed
 * here with OpenSSL, and every refusal pol_assertion_check() knows. */
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kv_buf.h"
#include "pol.h"
#include "testjws.h"

#define CLIENT   "0c000000-0000-4000-8000-000000000002"
#define ENDPOINT "https://localhost:8443/tenant-1/oauth2/v2.0/token"
#define ISSUER   "https://kubernetes.default.svc.cluster.local"
#define SUBJECT  "system:serviceaccount:default:ci"
#define NOW      1800000000

static const char *const endpoints[] = {ENDPOINT, "https://localhost:8443/tenant-1/oauth2/token"};

static EVP_PKEY *rsa_key(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

/* A self-signed certificate of @p key valid from @p from to @p to (Unix seconds), as PEM
 * (the caller frees it), and its DER digests. */
static char *certificate(EVP_PKEY *key, time_t from, time_t to, unsigned char sha1[20],
                         unsigned char sha256[32])
{
    X509 *x = testjws_self_signed(key, "ci", from, to);
    char *pem = NULL;
    if (x == NULL)
        return NULL;
    unsigned char *der = NULL;
    int len = i2d_X509(x, &der);
    EVP_Digest(der, (size_t)len, sha1, NULL, EVP_sha1(), NULL);
    EVP_Digest(der, (size_t)len, sha256, NULL, EVP_sha256(), NULL);
    OPENSSL_free(der);
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(bio, x);
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    pem = calloc(1, (size_t)n + 1);
    memcpy(pem, data, (size_t)n);
    BIO_free(bio);
    X509_free(x);
    return pem;
}

/* A certificate valid around NOW. */
static char *self_signed(EVP_PKEY *key, unsigned char sha1[20], unsigned char sha256[32])
{
    return certificate(key, NOW - 86400, NOW + 86400, sha1, sha256);
}

static enum pol_assertion check_one(const struct pol_identity *id, const char *header,
                                    const char *claims, EVP_PKEY *key, const char *alg,
                                    struct pol_assertion_info *info)
{
    char *a = testjws_sign(header, claims, key, alg);
    enum pol_assertion r = pol_assertion_check(id, a, endpoints, 2, NOW, info);
    free(a);
    return r;
}

/* The JWK of an RSA or EC public key, as an issuer publishes it. */
static char *jwk_of(EVP_PKEY *key, const char *kid)
{
    char *out = malloc(2048);
    if (EVP_PKEY_is_a(key, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        EVP_PKEY_get_bn_param(key, "n", &n);
        EVP_PKEY_get_bn_param(key, "e", &e);
        unsigned char nb[512], eb[8];
        int nl = BN_bn2bin(n, nb), el = BN_bn2bin(e, eb);
        char *n64 = testjws_b64(nb, (size_t)nl), *e64 = testjws_b64(eb, (size_t)el);
        snprintf(out, 2048,
                 "{\"kty\":\"RSA\",\"use\":\"sig\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}", kid,
                 n64, e64);
        free(n64);
        free(e64);
        BN_free(n);
        BN_free(e);
    } else {
        unsigned char pt[133];
        size_t len = 0;
        EVP_PKEY_get_octet_string_param(key, "encoded-pub-key", pt, sizeof(pt), &len);
        size_t coord = (len - 1) / 2;
        char *x = testjws_b64(pt + 1, coord), *y = testjws_b64(pt + 1 + coord, coord);
        snprintf(out, 2048,
                 "{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", kid,
                 x, y);
        free(x);
        free(y);
    }
    return out;
}

static void certificates(EVP_PKEY *key, EVP_PKEY *other, EVP_PKEY *ec)
{
    unsigned char sha1[20], sha256[32], osha1[20], osha256[32], esha1[20], esha256[32];
    char *pem = self_signed(key, sha1, sha256);
    char *other_pem = self_signed(other, osha1, osha256);
    char *ec_pem = self_signed(ec, esha1, esha256);
    char err[256];
    size_t added = 0;
    struct pol_identity id = {.name = "ci", .client_id = CLIENT};

    /* a private key beside the certificate is skipped; only certificates are read */
    char both[8192];
    snprintf(both, sizeof(both),
             "-----BEGIN PRIVATE KEY-----\nnot read\n-----END PRIVATE KEY-----\n%s", pem);
    CHECK_ST(pol_creds_add_certificates(&id.creds, both, strlen(both), &added, err, sizeof(err)),
             KV_OK);
    CHECK(added == 1 && pol_creds_count(id.creds, NULL) == 1);
    /* what the web view shows of it: the SHA-1 thumbprint in upper-case hex, its dates */
    char tp[41], want_tp[41];
    int64_t from = 0, to = 0;
    for (int i = 0; i < 20; i++)
        snprintf(want_tp + 2 * i, 3, "%02X", sha1[i]);
    CHECK(pol_creds_certificate_at(id.creds, 0, tp, &from, &to));
    CHECK_STR(tp, want_tp);
    CHECK(from == NOW - 86400 && to == NOW + 86400);
    CHECK(!pol_creds_certificate_at(id.creds, 1, tp, &from, &to));
    CHECK(!pol_creds_certificate_at(NULL, 0, tp, &from, &to));

    /* refusals leave what is there */
    static const char no_cert[] = "-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n";
    CHECK_ST(
        pol_creds_add_certificates(&id.creds, no_cert, strlen(no_cert), &added, err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "no certificate") != NULL);
    static const char broken[] = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    CHECK_ST(
        pol_creds_add_certificates(&id.creds, broken, strlen(broken), &added, err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "certificate 1") != NULL);
    static const char open_end[] = "-----BEGIN CERTIFICATE-----\nAAAA\n";
    CHECK_ST(
        pol_creds_add_certificates(&id.creds, open_end, strlen(open_end), &added, err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK_ST(
        pol_creds_add_certificates(&id.creds, ec_pem, strlen(ec_pem), &added, err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "RSA") != NULL);
    /* two good ones and a bad one: none is added */
    char mixed[16384];
    snprintf(mixed, sizeof(mixed), "%s%s%s", other_pem, other_pem, broken);
    CHECK_ST(pol_creds_add_certificates(&id.creds, mixed, strlen(mixed), &added, err, sizeof(err)),
             KV_ERR_BAD_PARAM);
    CHECK(pol_creds_count(id.creds, NULL) == 1 && added == 0);
    /* at most POL_CREDS_CERTS_MAX */
    struct pol_creds *many = NULL;
    for (int i = 0; i < POL_CREDS_CERTS_MAX; i++)
        CHECK_ST(pol_creds_add_certificates(&many, pem, strlen(pem), &added, err, sizeof(err)),
                 KV_OK);
    CHECK_ST(pol_creds_add_certificates(&many, pem, strlen(pem), &added, err, sizeof(err)),
             KV_ERR_BAD_PARAM);
    pol_creds_free(many);

    struct pol_assertion_info info;
    char x5t[128], hdr[256], claims[512];
    char *t1 = testjws_b64(sha1, 20), *t256 = testjws_b64(sha256, 32), *o1 = testjws_b64(osha1, 20);
    snprintf(claims, sizeof(claims),
             "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"jti\":\"j\",\"nbf\":%d,\"exp\":%d}",
             ENDPOINT, CLIENT, CLIENT, NOW - 10, NOW + 600);

    /* MSAL Python: RS256 with x5t; MSAL Node: PS256 with x5t#S256 */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"x5t\":\"%s\"}", t1);
    CHECK(check_one(&id, hdr, claims, key, "RS256", &info) == POL_ASSERTION_OK);
    CHECK(!info.federated);
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"PS256\",\"x5t#S256\":\"%s\"}", t256);
    CHECK(check_one(&id, hdr, claims, key, "PS256", &info) == POL_ASSERTION_OK);
    /* PS256 signed as RS256 is not accepted, nor the reverse */
    CHECK(check_one(&id, hdr, claims, key, "RS256", &info) == POL_ASSERTION_BAD_SIGNATURE);
    /* signed by another key under the registered thumbprint */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", t1);
    CHECK(check_one(&id, hdr, claims, other, "RS256", &info) == POL_ASSERTION_BAD_SIGNATURE);
    /* the thumbprint of a certificate that is not registered, quoted in hex */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", o1);
    CHECK(check_one(&id, hdr, claims, other, "RS256", &info) == POL_ASSERTION_KEY_NOT_FOUND);
    char hex[41];
    for (int i = 0; i < 20; i++)
        snprintf(hex + 2 * i, 3, "%02X", osha1[i]);
    CHECK_STR(info.key_id, hex);
    /* no thumbprint, or one of the wrong length */
    CHECK(check_one(&id, "{\"alg\":\"RS256\"}", claims, key, "RS256", &info) ==
          POL_ASSERTION_NO_THUMBPRINT);
    snprintf(x5t, sizeof(x5t), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", t256);
    CHECK(check_one(&id, x5t, claims, key, "RS256", &info) == POL_ASSERTION_NO_THUMBPRINT);
    /* only RS256 and PS256 for a certificate */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS512\",\"x5t\":\"%s\"}", t1);
    CHECK(check_one(&id, hdr, claims, key, "RS512", &info) == POL_ASSERTION_MALFORMED);
    CHECK(info.detail != NULL && strstr(info.detail, "RS256 or PS256") != NULL);

    /* the audience must be the token endpoint (v2.0 or v1; a query on it is ignored, as
     * go-autorest's adal sends one) */
    snprintf(hdr, sizeof(hdr), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", t1);
    static const struct {
        const char *aud; /* JSON */
        enum pol_assertion want;
    } auds[] = {
        {"\"https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token\"",
         POL_ASSERTION_AUDIENCE},
        {"[\"https://localhost:8443/tenant-1/oauth2/token\"]", POL_ASSERTION_OK},
        {"\"https://localhost:8443/tenant-1/oauth2/token?api-version=1.0\"", POL_ASSERTION_OK},
        {"\"https://localhost:8443/tenant-1/oauth2/tokens?x\"", POL_ASSERTION_AUDIENCE},
        {"\"https://localhost:8443/tenant-1/oauth2\"", POL_ASSERTION_AUDIENCE},
    };
    for (size_t i = 0; i < sizeof(auds) / sizeof(auds[0]); i++) {
        char c[512];
        snprintf(c, sizeof(c), "{\"aud\":%s,\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}", auds[i].aud,
                 CLIENT, CLIENT, NOW + 600);
        CHECK(check_one(&id, hdr, c, key, "RS256", &info) == auds[i].want);
        if (i == 0)
            CHECK(strstr(info.aud, "login.microsoftonline.com") != NULL);
    }

    /* time: expired, not yet valid, no exp, within the skew */
    static const struct {
        int nbf, exp; /* relative to NOW; 0 leaves the claim out */
        enum pol_assertion want;
    } times[] = {
        {0, -POL_ASSERTION_SKEW - 1, POL_ASSERTION_TIME},
        {0, -POL_ASSERTION_SKEW + 5, POL_ASSERTION_OK},
        {POL_ASSERTION_SKEW + 5, 3600, POL_ASSERTION_TIME},
        {POL_ASSERTION_SKEW - 5, 3600, POL_ASSERTION_OK},
        {0, 0, POL_ASSERTION_TIME},
    };
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char c[512], nbf[32] = "", exp[32] = "";
        if (times[i].nbf)
            snprintf(nbf, sizeof(nbf), ",\"nbf\":%d", NOW + times[i].nbf);
        if (times[i].exp)
            snprintf(exp, sizeof(exp), ",\"exp\":%d", NOW + times[i].exp);
        snprintf(c, sizeof(c), "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\"%s%s}", ENDPOINT,
                 CLIENT, CLIENT, nbf, exp);
        CHECK(check_one(&id, hdr, c, key, "RS256", &info) == times[i].want);
    }
    CHECK(info.exp == 0);
    /* nbf and exp as strings of digits, as MSAL.NET writes them; other strings are not dates */
    char n[16], e[16], quoted_n[24], quoted_e[24], plus_n[24], space_e[24], long_e[32];
    snprintf(n, sizeof(n), "%d", NOW - 10);
    snprintf(e, sizeof(e), "%d", NOW + 600);
    snprintf(quoted_n, sizeof(quoted_n), "\"%s\"", n);
    snprintf(quoted_e, sizeof(quoted_e), "\"%s\"", e);
    snprintf(plus_n, sizeof(plus_n), "\"+%s\"", n);
    snprintf(space_e, sizeof(space_e), "\"%s \"", e);
    snprintf(long_e, sizeof(long_e), "\"1000000%s\"", e); /* 16 digits */
    const struct {
        const char *nbf, *exp;
        enum pol_assertion want;
    } texts[] = {
        {quoted_n, quoted_e, POL_ASSERTION_OK}, {n, quoted_e, POL_ASSERTION_OK},
        {plus_n, e, POL_ASSERTION_MALFORMED},   {n, space_e, POL_ASSERTION_MALFORMED},
        {n, "\"\"", POL_ASSERTION_MALFORMED},   {n, long_e, POL_ASSERTION_MALFORMED},
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        char c[512];
        snprintf(c, sizeof(c),
                 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"nbf\":%s,\"exp\":%s}", ENDPOINT,
                 CLIENT, CLIENT, texts[i].nbf, texts[i].exp);
        CHECK(check_one(&id, hdr, c, key, "RS256", &info) == texts[i].want);
    }

    /* malformed: parts, base64, JSON, claims */
    static const char *const junk[] = {
        "",           "a",         "a.b",
        "a.b.c.d",    "!!.e30.AA", "e30.e30.!!",
        "W10.e30.AA", "e30.e30.",  "eyJhbGciOiJSUzI1NiJ9.e30.AA", /* {"alg":"RS256"} . {} */
    };
    for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
        CHECK(pol_assertion_check(&id, junk[i], endpoints, 2, NOW, &info) ==
              POL_ASSERTION_MALFORMED);
        CHECK(info.detail != NULL);
    }
    CHECK(check_one(&id, "{\"alg\":\"HS256\"}", claims, key, "RS256", &info) ==
          POL_ASSERTION_MALFORMED);
    CHECK(check_one(&id, "{\"alg\":\"none\"}", claims, key, "none", &info) ==
          POL_ASSERTION_MALFORMED);
    snprintf(claims, sizeof(claims),
             "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":\"soon\"}", ENDPOINT, CLIENT,
             CLIENT);
    CHECK(check_one(&id, hdr, claims, key, "RS256", &info) == POL_ASSERTION_MALFORMED);
    char *huge = malloc(POL_ASSERTION_MAX + 10);
    memset(huge, 'A', POL_ASSERTION_MAX + 9);
    huge[POL_ASSERTION_MAX + 9] = '\0';
    huge[100] = huge[200] = '.';
    CHECK(pol_assertion_check(&id, huge, endpoints, 2, NOW, &info) == POL_ASSERTION_MALFORMED);
    free(huge);

    /* a certificate outside its validity dates: Entra's key credential has expired (or has not
     * started); checked after the signature, so its dates are quoted only to the key's holder */
    for (int late = 0; late < 2; late++) {
        unsigned char e1[20], e256[32];
        char *old_pem = late ? certificate(other, NOW - 3 * 86400, NOW - 86400, e1, e256)
                             : certificate(other, NOW + 60, NOW + 86400, e1, e256);
        struct pol_identity dated = {.name = "dated", .client_id = CLIENT};
        CHECK_ST(pol_creds_add_certificates(&dated.creds, old_pem, strlen(old_pem), &added, err,
                                            sizeof(err)),
                 KV_OK);
        char *e64 = testjws_b64(e1, 20), dh[128];
        snprintf(dh, sizeof(dh), "{\"alg\":\"RS256\",\"x5t\":\"%s\"}", e64);
        snprintf(claims, sizeof(claims),
                 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}", ENDPOINT, CLIENT,
                 CLIENT, NOW + 600);
        CHECK(check_one(&dated, dh, claims, other, "RS256", &info) == POL_ASSERTION_KEY_EXPIRED);
        CHECK(info.key_start == (late ? NOW - 3 * 86400 : NOW + 60));
        CHECK(info.key_end == (late ? NOW - 86400 : NOW + 86400));
        CHECK(check_one(&dated, dh, claims, key, "RS256", &info) == POL_ASSERTION_BAD_SIGNATURE);
        free(e64);
        free(old_pem);
        pol_creds_free(dated.creds);
    }

    /* an identity without credentials finds no key */
    struct pol_identity bare = {.name = "bare", .client_id = CLIENT};
    snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}",
             ENDPOINT, CLIENT, CLIENT, NOW + 600);
    CHECK(check_one(&bare, hdr, claims, key, "RS256", &info) == POL_ASSERTION_KEY_NOT_FOUND);

    free(t1);
    free(t256);
    free(o1);
    free(pem);
    free(other_pem);
    free(ec_pem);
    pol_creds_free(id.creds);
}

static void federated(EVP_PKEY *rsa, EVP_PKEY *other, EVP_PKEY *ec)
{
    char *jr = jwk_of(rsa, "rsa-1"), *je = jwk_of(ec, "ec-1");
    char jwks[4096], err[256];
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[%s,%s,{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"x\",\"e\":\"AQAB\"}]}", jr,
             je);
    struct pol_identity id = {.name = "ci", .client_id = CLIENT};
    CHECK_ST(pol_creds_add_federated(&id.creds, ISSUER, SUBJECT, POL_FEDERATED_AUDIENCE, jwks,
                                     strlen(jwks), err, sizeof(err)),
             KV_OK);
    CHECK_ST(pol_creds_add_federated(&id.creds, "https://token.actions.githubusercontent.com",
                                     "repo:org/app:ref:refs/heads/main",
                                     "api://AzureADTokenExchange", jwks, strlen(jwks), err,
                                     sizeof(err)),
             KV_OK);
    size_t nf = 0;
    CHECK(pol_creds_count(id.creds, &nf) == 0 && nf == 2);
    const char *iss = NULL, *sub = NULL, *aud = NULL;
    CHECK(pol_creds_federated_at(id.creds, 1, &iss, &sub, &aud));
    CHECK_STR(iss, "https://token.actions.githubusercontent.com");
    CHECK_STR(sub, "repo:org/app:ref:refs/heads/main");
    CHECK_STR(aud, "api://AzureADTokenExchange");
    CHECK(!pol_creds_federated_at(id.creds, 2, &iss, &sub, &aud));
    CHECK(!pol_creds_federated_at(NULL, 0, &iss, &sub, &aud));

    /* refusals */
    CHECK_ST(pol_creds_add_federated(&id.creds, ISSUER, SUBJECT, "a", jwks, strlen(jwks), err,
                                     sizeof(err)),
             KV_ERR_BAD_PARAM); /* issuer and subject once */
    CHECK(strstr(err, "already") != NULL);
    static const char *const bad_jwks[] = {
        "[]",
        "{\"keys\":{}}",
        "{\"keys\":[]}",
        "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256K\",\"x\":\"AAAA\",\"y\":\"AAAA\"}]}",
        "{\"keys\":[{\"kty\":\"RSA\",\"use\":\"enc\",\"n\":\"AQAB\",\"e\":\"AQAB\"}]}",
        "{\"keys\":[7]}",
        "not json",
    };
    for (size_t i = 0; i < sizeof(bad_jwks) / sizeof(bad_jwks[0]); i++) {
        err[0] = '\0';
        CHECK_ST(pol_creds_add_federated(&id.creds, "https://other", SUBJECT, "a", bad_jwks[i],
                                         strlen(bad_jwks[i]), err, sizeof(err)),
                 KV_ERR_BAD_PARAM);
        CHECK(err[0] != '\0');
    }
    /* a point off the curve */
    char off[512];
    snprintf(off, sizeof(off),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE",
             "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE");
    CHECK_ST(pol_creds_add_federated(&id.creds, "https://other", SUBJECT, "a", off, strlen(off),
                                     err, sizeof(err)),
             KV_ERR_BAD_PARAM);
    char big[700];
    memset(big, 'i', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK_ST(
        pol_creds_add_federated(&id.creds, big, SUBJECT, "a", jwks, strlen(jwks), err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK_ST(
        pol_creds_add_federated(&id.creds, "", SUBJECT, "a", jwks, strlen(jwks), err, sizeof(err)),
        KV_ERR_BAD_PARAM);
    CHECK(pol_creds_count(id.creds, &nf) == 0 && nf == 2);

    struct pol_assertion_info info;
    char claims[1024];
    snprintf(claims, sizeof(claims),
             "{\"aud\":[\"api://AzureADTokenExchange\"],\"iss\":\"%s\",\"sub\":\"%s\","
             "\"nbf\":%d,\"exp\":%d}",
             ISSUER, SUBJECT, NOW - 5, NOW + 3600);
    CHECK(check_one(&id, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims, rsa, "RS256", &info) ==
          POL_ASSERTION_OK);
    CHECK(info.federated);
    CHECK(check_one(&id, "{\"alg\":\"PS384\",\"kid\":\"rsa-1\"}", claims, rsa, "PS384", &info) ==
          POL_ASSERTION_OK);
    CHECK(check_one(&id, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", claims, ec, "ES256", &info) ==
          POL_ASSERTION_OK);
    /* without a kid every key is tried */
    CHECK(check_one(&id, "{\"alg\":\"ES256\"}", claims, ec, "ES256", &info) == POL_ASSERTION_OK);
    /* an RSA key's kid with an EC signature, another signer, an unknown kid */
    CHECK(check_one(&id, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", claims, ec, "ES256", &info) ==
          POL_ASSERTION_BAD_SIGNATURE);
    CHECK(check_one(&id, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims, other, "RS256", &info) ==
          POL_ASSERTION_BAD_SIGNATURE);
    CHECK(check_one(&id, "{\"alg\":\"RS256\",\"kid\":\"gone\"}", claims, rsa, "RS256", &info) ==
          POL_ASSERTION_KEY_NOT_FOUND);
    CHECK_STR(info.key_id, "gone");

    /* matching: issuer, then audience, then subject; the nearest miss is reported */
    static const struct {
        const char *iss, *sub, *aud;
        enum pol_assertion want;
    } miss[] = {
        {"https://kubernetes.default.svc.cluster.local/", SUBJECT, "api://AzureADTokenExchange",
         POL_ASSERTION_NO_ISSUER},
        {ISSUER, SUBJECT, "api://other", POL_ASSERTION_NO_AUDIENCE},
        {ISSUER, "system:serviceaccount:default:CI", "api://AzureADTokenExchange",
         POL_ASSERTION_NO_SUBJECT},
        {"https://token.actions.githubusercontent.com", "repo:org/app:ref:refs/heads/main",
         "api://AzureADTokenExchange", POL_ASSERTION_OK},
    };
    for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
        snprintf(claims, sizeof(claims),
                 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}", miss[i].aud,
                 miss[i].iss, miss[i].sub, NOW + 60);
        CHECK(check_one(&id, "{\"alg\":\"RS256\"}", claims, rsa, "RS256", &info) == miss[i].want);
    }
    CHECK_STR(info.sub, "repo:org/app:ref:refs/heads/main");
    snprintf(claims, sizeof(claims), "{\"aud\":\"a\",\"iss\":\"%s\",\"sub\":\"s\",\"exp\":%d}",
             ISSUER, NOW + 60);
    CHECK(check_one(&id, "{\"alg\":\"RS256\"}", claims, rsa, "RS256", &info) ==
          POL_ASSERTION_NO_AUDIENCE);
    CHECK_STR(info.aud, "a");
    /* expired */
    snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}",
             POL_FEDERATED_AUDIENCE, ISSUER, SUBJECT, NOW - 3600);
    CHECK(check_one(&id, "{\"alg\":\"RS256\"}", claims, rsa, "RS256", &info) == POL_ASSERTION_TIME);

    /* the client id as issuer makes it the application's own, whatever the key */
    snprintf(claims, sizeof(claims), "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"exp\":%d}",
             ENDPOINT, CLIENT, CLIENT, NOW + 60);
    CHECK(check_one(&id, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", claims, rsa, "RS256", &info) ==
          POL_ASSERTION_NO_THUMBPRINT);

    free(jr);
    free(je);
    pol_creds_free(id.creds);
}

int main(void)
{
    EVP_PKEY *key = rsa_key(), *other = rsa_key();
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    CHECK(key != NULL && other != NULL && ec != NULL);
    if (key != NULL && other != NULL && ec != NULL) {
        certificates(key, other, ec);
        federated(key, other, ec);
    }
    pol_creds_free(NULL);
    CHECK(pol_creds_count(NULL, NULL) == 0);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    EVP_PKEY_free(ec);
    CHECK_DONE();
}
