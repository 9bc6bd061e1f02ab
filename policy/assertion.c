/*
 * Client assertions (RFC 7523), checked as Entra's token endpoint checks them:
 *
 *   - an application's own assertion (iss = sub = its client id), signed with
 *     one of its certificates and found by the certificate's thumbprint in the
 *     header (x5t, SHA-1, from MSAL Python; x5t#S256, SHA-256, from MSAL Node);
 *   - a federated one: a token from another issuer (a Kubernetes service
 *     account, a CI system) that one of the application's federated
 *     credentials accepts by issuer, audience and subject, signed with one of
 *     the issuer's keys.
 *
 * Only public keys are held here; nothing in an assertion is secret beyond
 * the fact that it is one, and it is never logged.
 */
#include <cjson/cJSON.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_buf.h"
#include "pol.h"

#define KID_MAX       128

struct cert {
    unsigned char sha1[20], sha256[32]; /* of the DER certificate */
    int64_t not_before, not_after;      /* its validity, which Entra gives the key credential */
    EVP_PKEY *key;
};

struct issuer_key {
    char kid[KID_MAX]; /* "" when the JWK names none */
    EVP_PKEY *key;
};

struct federated {
    char issuer[POL_FEDERATED_FIELD_MAX + 1];
    char subject[POL_FEDERATED_FIELD_MAX + 1];
    char audience[POL_FEDERATED_FIELD_MAX + 1];
    struct issuer_key keys[POL_JWKS_KEYS_MAX];
    size_t n_keys;
};

struct pol_creds {
    struct cert certs[POL_CREDS_CERTS_MAX];
    size_t n_certs;
    struct federated *federated;
    size_t n_federated;
};

static enum kv_status bad(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum kv_status bad(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return KV_ERR_BAD_PARAM;
}

static void federated_clear(struct federated *f)
{
    for (size_t i = 0; i < f->n_keys; i++)
        EVP_PKEY_free(f->keys[i].key);
    f->n_keys = 0;
}

void pol_creds_free(struct pol_creds *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->n_certs; i++)
        EVP_PKEY_free(c->certs[i].key);
    for (size_t i = 0; i < c->n_federated; i++)
        federated_clear(&c->federated[i]);
    free(c->federated);
    free(c);
}

size_t pol_creds_count(const struct pol_creds *c, size_t *n_federated)
{
    if (n_federated != NULL)
        *n_federated = c ? c->n_federated : 0;
    return c ? c->n_certs : 0;
}

static void hex_upper(const unsigned char *b, size_t n, char *out);

int pol_creds_certificate_at(const struct pol_creds *c, size_t i, char thumbprint[41],
                             int64_t *not_before, int64_t *not_after)
{
    if (c == NULL || i >= c->n_certs)
        return 0;
    hex_upper(c->certs[i].sha1, sizeof(c->certs[i].sha1), thumbprint);
    *not_before = c->certs[i].not_before;
    *not_after = c->certs[i].not_after;
    return 1;
}

int pol_creds_federated_at(const struct pol_creds *c, size_t i, const char **issuer,
                           const char **subject, const char **audience)
{
    if (c == NULL || i >= c->n_federated)
        return 0;
    *issuer = c->federated[i].issuer;
    *subject = c->federated[i].subject;
    *audience = c->federated[i].audience;
    return 1;
}

static enum kv_status creds_get(struct pol_creds **c)
{
    if (*c == NULL)
        *c = calloc(1, sizeof(**c));
    return *c ? KV_OK : KV_ERR_NOMEM;
}

static const char *find(const char *hay, const char *end, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; p != NULL && (size_t)(end - p) >= n;
         p = memchr(p + 1, needle[0], (size_t)(end - p - 1)))
        if (memcmp(p, needle, n) == 0)
            return p;
    return NULL;
}

/* An ASN.1 time as Unix seconds. */
static int asn1_seconds(const ASN1_TIME *t, int64_t *out)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    *out = (int64_t)timegm(&tm);
    return 1;
}

/* One PEM certificate block into a registered certificate. */
static enum kv_status read_cert(const char *pem, size_t len, size_t nth, struct cert *out,
                                char *err, size_t cap)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    if (bio == NULL)
        return KV_ERR_NOMEM;
    X509 *x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (x == NULL)
        return bad(err, cap, "certificate %zu is not a readable X.509 certificate", nth);
    enum kv_status st = KV_OK;
    unsigned char *der = NULL;
    int der_len = i2d_X509(x, &der);
    out->key = X509_get_pubkey(x);
    if (der_len <= 0 || out->key == NULL) {
        st = KV_ERR_NOMEM;
    } else if (!asn1_seconds(X509_get0_notBefore(x), &out->not_before) ||
               !asn1_seconds(X509_get0_notAfter(x), &out->not_after)) {
        st = bad(err, cap, "certificate %zu has unreadable validity dates", nth);
    } else if (!EVP_PKEY_is_a(out->key, "RSA")) {
        st = bad(err, cap,
                 "certificate %zu does not hold an RSA key (Entra signs and checks "
                 "client assertions with RSA certificates only)",
                 nth);
    } else if (EVP_Digest(der, (size_t)der_len, out->sha1, NULL, EVP_sha1(), NULL) != 1 ||
               EVP_Digest(der, (size_t)der_len, out->sha256, NULL, EVP_sha256(), NULL) != 1) {
        st = KV_ERR_NOMEM;
    }
    OPENSSL_free(der);
    X509_free(x);
    if (st != KV_OK) {
        EVP_PKEY_free(out->key);
        out->key = NULL;
    }
    return st;
}

enum kv_status pol_creds_add_certificates(struct pol_creds **creds, const char *pem, size_t len,
                                          size_t *added, char *err, size_t cap)
{
    static const char begin[] = "-----BEGIN CERTIFICATE-----";
    static const char end[] = "-----END CERTIFICATE-----";
    struct cert found[POL_CREDS_CERTS_MAX];
    size_t n = 0, have = *creds ? (*creds)->n_certs : 0;
    enum kv_status st = KV_OK;
    const char *stop = pem + len;
    *added = 0;
    for (const char *p = find(pem, stop, begin); p != NULL && st == KV_OK;
         p = find(p, stop, begin)) {
        const char *e = find(p, stop, end);
        if (e == NULL) {
            st = bad(err, cap, "certificate %zu has no -----END CERTIFICATE----- line", n + 1);
        } else if (have + n >= POL_CREDS_CERTS_MAX) {
            st = bad(err, cap, "more than %d certificates", POL_CREDS_CERTS_MAX);
        } else {
            e += sizeof(end) - 1;
            st = read_cert(p, (size_t)(e - p), n + 1, &found[n], err, cap);
            n += st == KV_OK;
            p = e;
        }
    }
    if (st == KV_OK && n == 0)
        st = bad(err, cap, "no certificate (a -----BEGIN CERTIFICATE----- block) found");
    if (st == KV_OK)
        st = creds_get(creds);
    if (st != KV_OK) {
        for (size_t i = 0; i < n; i++)
            EVP_PKEY_free(found[i].key);
        return st;
    }
    memcpy(&(*creds)->certs[have], found, n * sizeof(found[0]));
    (*creds)->n_certs += n;
    *added = n;
    return KV_OK;
}

/* ---- federated issuers' keys (JWKS) ------------------------------------------------------ */

static const struct {
    const char *crv, *group;
    size_t coord; /* bytes of x and of y */
} curves[] = {
    {"P-256", "prime256v1", 32},
    {"P-384", "secp384r1", 48},
    {"P-521", "secp521r1", 66},
};

static enum kv_status member_b64url(const cJSON *k, const char *name, struct kv_buf *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(k, name);
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0')
        return KV_ERR_BAD_PARAM;
    return kv_b64url_decode(v->valuestring, out) == KV_ERR_NOMEM ? KV_ERR_NOMEM
           : out->len == 0                                       ? KV_ERR_BAD_PARAM
                                                                 : KV_OK;
}

static enum kv_status pkey_from(const char *type, OSSL_PARAM *params, EVP_PKEY **out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    enum kv_status st = KV_ERR_BAD_PARAM;
    *out = NULL;
    if (ctx == NULL)
        return KV_ERR_NOMEM;
    if (EVP_PKEY_fromdata_init(ctx) == 1 &&
        EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) == 1) {
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL);
        st = check == NULL                       ? KV_ERR_NOMEM
             : EVP_PKEY_public_check(check) == 1 ? KV_OK
                                                 : KV_ERR_BAD_PARAM;
        EVP_PKEY_CTX_free(check);
        if (st != KV_OK) {
            EVP_PKEY_free(*out);
            *out = NULL;
        }
    }
    EVP_PKEY_CTX_free(ctx);
    return st;
}

static enum kv_status rsa_jwk(const cJSON *k, EVP_PKEY **out)
{
    struct kv_buf n = {0}, e = {0};
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    enum kv_status st = member_b64url(k, "n", &n);
    if (st == KV_OK)
        st = member_b64url(k, "e", &e);
    if (st == KV_OK && (n.len < 256 || n.len > 2048 || e.len > 8))
        st = KV_ERR_BAD_PARAM; /* 2048 to 16384 bits, as Entra takes */
    if (st == KV_OK) {
        st = KV_ERR_NOMEM;
        bn_n = BN_bin2bn(n.data, (int)n.len, NULL);
        bn_e = BN_bin2bn(e.data, (int)e.len, NULL);
        bld = OSSL_PARAM_BLD_new();
        if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
            (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
            st = pkey_from("RSA", params, out);
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    kv_buf_free(&n);
    kv_buf_free(&e);
    return st;
}

static enum kv_status ec_jwk(const cJSON *k, EVP_PKEY **out)
{
    const cJSON *crv = cJSON_GetObjectItemCaseSensitive(k, "crv");
    size_t c = 0;
    while (c < sizeof(curves) / sizeof(curves[0]) &&
           !(cJSON_IsString(crv) && strcmp(crv->valuestring, curves[c].crv) == 0))
        c++;
    if (c == sizeof(curves) / sizeof(curves[0]))
        return KV_ERR_BAD_PARAM;
    struct kv_buf x = {0}, y = {0};
    enum kv_status st = member_b64url(k, "x", &x);
    if (st == KV_OK)
        st = member_b64url(k, "y", &y);
    if (st == KV_OK && (x.len != curves[c].coord || y.len != curves[c].coord))
        st = KV_ERR_BAD_PARAM;
    if (st == KV_OK) {
        unsigned char point[1 + 2 * 66];
        point[0] = 0x04; /* uncompressed */
        memcpy(point + 1, x.data, x.len);
        memcpy(point + 1 + x.len, y.data, y.len);
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)curves[c].group,
                                             0),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, point, 1 + 2 * x.len),
            OSSL_PARAM_construct_end(),
        };
        st = pkey_from("EC", params, out);
    }
    kv_buf_free(&x);
    kv_buf_free(&y);
    return st;
}

/* One JWK of an issuer's JWKS. Encryption keys are left out (*out stays NULL). */
static enum kv_status issuer_key(const cJSON *k, size_t nth, struct issuer_key *out, char *err,
                                 size_t cap)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(k, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "kid");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(k, "use");
    out->key = NULL;
    if (!cJSON_IsObject(k) || !cJSON_IsString(kty))
        return bad(err, cap, "key %zu of the jwks is not a JWK with a kty", nth);
    if (kid != NULL && (!cJSON_IsString(kid) || strlen(kid->valuestring) >= KID_MAX))
        return bad(err, cap, "key %zu of the jwks: kid must be a string of at most %d bytes", nth,
                   KID_MAX - 1);
    if (use != NULL && !cJSON_IsString(use))
        return bad(err, cap, "key %zu of the jwks: use must be a string", nth);
    if (use != NULL && strcmp(use->valuestring, "sig") != 0)
        return KV_OK;
    snprintf(out->kid, sizeof(out->kid), "%s", kid ? kid->valuestring : "");
    enum kv_status st;
    if (strcmp(kty->valuestring, "RSA") == 0)
        st = rsa_jwk(k, &out->key);
    else if (strcmp(kty->valuestring, "EC") == 0)
        st = ec_jwk(k, &out->key);
    else
        return bad(err, cap, "key %zu of the jwks has kty '%.16s'; RSA and EC are read", nth,
                   kty->valuestring);
    if (st == KV_ERR_BAD_PARAM)
        return bad(err, cap,
                   "key %zu of the jwks is not a valid public %s key (RSA: n of 2048 to 16384 "
                   "bits and e; EC: crv P-256, P-384 or P-521 and its x and y)",
                   nth, kty->valuestring);
    return st;
}

static enum kv_status check_field(const char *name, const char *v, char *err, size_t cap)
{
    if (v == NULL || v[0] == '\0')
        return bad(err, cap, "'%s' is required", name);
    if (strlen(v) > POL_FEDERATED_FIELD_MAX)
        return bad(err, cap, "'%s' is longer than %d bytes", name, POL_FEDERATED_FIELD_MAX);
    return KV_OK;
}

enum kv_status pol_creds_add_federated(struct pol_creds **creds, const char *issuer,
                                       const char *subject, const char *audience, const char *jwks,
                                       size_t jwks_len, char *err, size_t cap)
{
    enum kv_status st = check_field("issuer", issuer, err, cap);
    if (st == KV_OK)
        st = check_field("subject", subject, err, cap);
    if (st == KV_OK)
        st = check_field("audience", audience, err, cap);
    if (st != KV_OK)
        return st;
    if (*creds != NULL && (*creds)->n_federated >= POL_CREDS_FEDERATED_MAX)
        return bad(err, cap, "more than %d federated credentials", POL_CREDS_FEDERATED_MAX);
    for (size_t i = 0; *creds != NULL && i < (*creds)->n_federated; i++) {
        const struct federated *o = &(*creds)->federated[i];
        if (strcmp(o->issuer, issuer) == 0 && strcmp(o->subject, subject) == 0)
            return bad(err, cap,
                       "a federated credential with this issuer and subject is "
                       "already there (Entra keeps one)");
    }
    cJSON *doc = cJSON_ParseWithLength(jwks, jwks_len);
    const cJSON *keys = doc ? cJSON_GetObjectItemCaseSensitive(doc, "keys") : NULL;
    if (!cJSON_IsArray(keys)) {
        cJSON_Delete(doc);
        return bad(err, cap, "'jwks' must be a JWKS document: {\"keys\": [...]}");
    }
    struct federated *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        cJSON_Delete(doc);
        return KV_ERR_NOMEM;
    }
    snprintf(f->issuer, sizeof(f->issuer), "%s", issuer);
    snprintf(f->subject, sizeof(f->subject), "%s", subject);
    snprintf(f->audience, sizeof(f->audience), "%s", audience);
    const cJSON *k;
    size_t nth = 0;
    cJSON_ArrayForEach(k, keys)
    {
        nth++;
        if (f->n_keys == POL_JWKS_KEYS_MAX) {
            st = bad(err, cap, "the jwks has more than %d signing keys", POL_JWKS_KEYS_MAX);
            break;
        }
        st = issuer_key(k, nth, &f->keys[f->n_keys], err, cap);
        if (st != KV_OK)
            break;
        f->n_keys += f->keys[f->n_keys].key != NULL;
    }
    cJSON_Delete(doc);
    if (st == KV_OK && f->n_keys == 0)
        st = bad(err, cap, "the jwks holds no signing key");
    if (st == KV_OK)
        st = creds_get(creds);
    if (st == KV_OK) {
        struct federated *grown =
            realloc((*creds)->federated, ((*creds)->n_federated + 1) * sizeof(*grown));
        if (grown == NULL) {
            st = KV_ERR_NOMEM;
        } else {
            (*creds)->federated = grown;
            grown[(*creds)->n_federated++] = *f;
            f->n_keys = 0; /* the keys are the credential's now */
        }
    }
    federated_clear(f);
    free(f);
    return st;
}

/* ---- checking an assertion --------------------------------------------------------------- */

struct jws {
    cJSON *header, *claims;
    struct kv_buf sig;
    const char *signed_part; /* header.claims, as sent */
    size_t signed_len;
};

static void jws_clear(struct jws *j)
{
    cJSON_Delete(j->header);
    cJSON_Delete(j->claims);
    kv_buf_free(&j->sig);
}

static cJSON *json_part(const char *b64)
{
    struct kv_buf raw = {0};
    if (b64[0] == '\0' || kv_b64url_decode(b64, &raw) != KV_OK)
        return NULL;
    cJSON *doc = cJSON_ParseWithLength((const char *)raw.data, raw.len);
    kv_buf_free(&raw);
    if (doc != NULL && !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    return doc;
}

/* Split a compact JWS and decode its parts. Returns NULL, or what is wrong. */
static const char *jws_parse(const char *text, struct jws *j)
{
    size_t len = strlen(text);
    if (len >= POL_ASSERTION_MAX)
        return "the assertion is too long";
    char *parts = strdup(text);
    if (parts == NULL)
        return "out of memory";
    char *dot1 = strchr(parts, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    const char *why = NULL;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        why = "the assertion is not a JWS in compact form (three parts)";
    } else {
        *dot1 = *dot2 = '\0';
        j->header = json_part(parts);
        j->claims = json_part(dot1 + 1);
        if (j->header == NULL || j->claims == NULL)
            why = "the assertion's header or claims are not base64url JSON objects";
        else if (dot2[1] == '\0' || kv_b64url_decode(dot2 + 1, &j->sig) != KV_OK)
            why = "the assertion's signature is not base64url";
        j->signed_part = text;
        j->signed_len = (size_t)(dot2 - parts);
    }
    free(parts);
    return why;
}

static const char *str_member(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A NumericDate claim: 1 and its value, 0 when absent, -1 when not a number. */
static int date_member(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 1;
}

enum sig_alg { RS, PS, ES };

static const struct {
    const char *name;
    enum sig_alg kind;
    int bits; /* of the digest */
} algs[] = {
    {"RS256", RS, 256}, {"RS384", RS, 384}, {"RS512", RS, 512},
    {"PS256", PS, 256}, {"PS384", PS, 384}, {"PS512", PS, 512},
    {"ES256", ES, 256}, {"ES384", ES, 384}, {"ES512", ES, 512},
};

static const EVP_MD *digest_of(int bits)
{
    return bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : EVP_sha512();
}

/* JOSE's r||s into DER, which OpenSSL verifies. */
static int ecdsa_der(const struct kv_buf *sig, unsigned char **der, int *der_len)
{
    if (sig->len % 2 != 0 || sig->len > 2 * 66)
        return 0;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig->data, (int)sig->len / 2, NULL);
    BIGNUM *v = BN_bin2bn(sig->data + sig->len / 2, (int)sig->len / 2, NULL);
    if (s == NULL || r == NULL || v == NULL || ECDSA_SIG_set0(s, r, v) != 1) {
        BN_free(r);
        BN_free(v);
        ECDSA_SIG_free(s);
        return 0;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(s, der);
    ECDSA_SIG_free(s);
    return *der_len > 0;
}

/* Whether @p key verifies the JWS's signature under algorithm @p a. */
static int signature_ok(const struct jws *j, size_t a, EVP_PKEY *key)
{
    int is_rsa = EVP_PKEY_is_a(key, "RSA"), ok = 0;
    if ((algs[a].kind == ES) == is_rsa)
        return 0;
    if (algs[a].kind == ES) {
        /* ES256 on P-256, ES384 on P-384, ES512 on P-521 */
        int curve_bits = algs[a].bits == 512 ? 521 : algs[a].bits;
        if (EVP_PKEY_get_bits(key) != curve_bits ||
            j->sig.len != 2 * (size_t)((curve_bits + 7) / 8))
            return 0;
    }
    const unsigned char *sig = j->sig.data;
    unsigned char *der = NULL;
    int sig_len = (int)j->sig.len;
    if (algs[a].kind == ES && !ecdsa_der(&j->sig, &der, &sig_len))
        return 0;
    if (der != NULL)
        sig = der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (md != NULL && EVP_DigestVerifyInit(md, &pctx, digest_of(algs[a].bits), NULL, key) == 1 &&
        (algs[a].kind != PS ||
         (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
          EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)))
        ok = EVP_DigestVerify(md, sig, (size_t)sig_len, (const unsigned char *)j->signed_part,
                              j->signed_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

static void hex_upper(const unsigned char *b, size_t n, char *out)
{
    static const char digits[] = "0123456789ABCDEF";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = '\0';
}

/* The application's own assertion: a certificate's key by its thumbprint. */
static enum pol_assertion by_certificate(const struct pol_creds *c, const struct jws *j, size_t a,
                                         const char *const *endpoints, size_t n_endpoints,
                                         int64_t now, struct pol_assertion_info *info)
{
    if (algs[a].kind == ES || algs[a].bits != 256) {
        info->detail = "a certificate's assertion is signed with RS256 or PS256";
        return POL_ASSERTION_MALFORMED;
    }
    const char *t256 = str_member(j->header, "x5t#S256"), *t1 = str_member(j->header, "x5t");
    struct kv_buf tp = {0};
    size_t want = t256 ? 32 : 20;
    if ((t256 == NULL && t1 == NULL) || kv_b64url_decode(t256 ? t256 : t1, &tp) != KV_OK ||
        tp.len != want) {
        kv_buf_free(&tp);
        return POL_ASSERTION_NO_THUMBPRINT;
    }
    hex_upper(tp.data, tp.len, info->key_id);
    const struct cert *found = NULL;
    for (size_t i = 0; c != NULL && i < c->n_certs && found == NULL; i++)
        if (memcmp(t256 ? c->certs[i].sha256 : c->certs[i].sha1, tp.data, tp.len) == 0)
            found = &c->certs[i];
    kv_buf_free(&tp);
    if (found == NULL)
        return POL_ASSERTION_KEY_NOT_FOUND;
    if (!signature_ok(j, a, found->key))
        return POL_ASSERTION_BAD_SIGNATURE;
    info->key_start = found->not_before;
    info->key_end = found->not_after;
    if (now < found->not_before || now > found->not_after)
        return POL_ASSERTION_KEY_EXPIRED;
    /* the endpoint as the client called it: go-autorest's adal names it with its query
     * (".../oauth2/token?api-version=1.0"), which Entra takes */
    size_t n = strcspn(info->aud, "?#");
    for (size_t i = 0; i < n_endpoints; i++)
        if (strncmp(info->aud, endpoints[i], n) == 0 && endpoints[i][n] == '\0')
            return POL_ASSERTION_OK;
    return POL_ASSERTION_AUDIENCE;
}

/* Whether the assertion's aud (a string or an array of them) holds @p want. */
static int has_audience(const cJSON *claims, const char *want)
{
    const cJSON *aud = cJSON_GetObjectItemCaseSensitive(claims, "aud"), *v;
    if (cJSON_IsString(aud))
        return strcmp(aud->valuestring, want) == 0;
    if (!cJSON_IsArray(aud))
        return 0;
    cJSON_ArrayForEach(v, aud)
    {
        if (cJSON_IsString(v) && strcmp(v->valuestring, want) == 0)
            return 1;
    }
    return 0;
}

/* A federated assertion: issuer, then audience, then subject, then the issuer's key. */
static enum pol_assertion by_federation(const struct pol_creds *c, const struct jws *j, size_t a,
                                        struct pol_assertion_info *info)
{
    /* the nearest miss is the one reported: issuer, then audience, then subject */
    enum pol_assertion nearest = POL_ASSERTION_NO_ISSUER;
    const struct federated *f = NULL;
    for (size_t i = 0; c != NULL && i < c->n_federated && f == NULL; i++) {
        const struct federated *o = &c->federated[i];
        enum pol_assertion miss = strcmp(o->issuer, info->iss) != 0 ? POL_ASSERTION_NO_ISSUER
                                  : !has_audience(j->claims, o->audience)
                                      ? POL_ASSERTION_NO_AUDIENCE
                                  : strcmp(o->subject, info->sub) != 0 ? POL_ASSERTION_NO_SUBJECT
                                                                       : POL_ASSERTION_OK;
        if (miss == POL_ASSERTION_OK)
            f = o;
        else if (miss > nearest)
            nearest = miss;
    }
    if (f == NULL)
        return nearest;
    const char *kid = str_member(j->header, "kid");
    snprintf(info->key_id, sizeof(info->key_id), "%s", kid ? kid : "");
    int found = 0;
    for (size_t i = 0; i < f->n_keys; i++) {
        if (kid != NULL && f->keys[i].kid[0] != '\0' && strcmp(kid, f->keys[i].kid) != 0)
            continue;
        found = 1;
        if (signature_ok(j, a, f->keys[i].key))
            return POL_ASSERTION_OK;
    }
    return found ? POL_ASSERTION_BAD_SIGNATURE : POL_ASSERTION_KEY_NOT_FOUND;
}

enum pol_assertion pol_assertion_check(const struct pol_identity *id, const char *assertion,
                                       const char *const *endpoints, size_t n_endpoints,
                                       int64_t now, struct pol_assertion_info *info)
{
    struct jws j = {0};
    memset(info, 0, sizeof(*info));
    info->detail = jws_parse(assertion, &j);
    enum pol_assertion res = POL_ASSERTION_MALFORMED;
    const char *alg = j.header ? str_member(j.header, "alg") : NULL;
    size_t a = 0;
    while (alg != NULL && a < sizeof(algs) / sizeof(algs[0]) && strcmp(alg, algs[a].name) != 0)
        a++;
    const char *iss = j.claims ? str_member(j.claims, "iss") : NULL;
    const char *sub = j.claims ? str_member(j.claims, "sub") : NULL;
    const cJSON *aud = j.claims ? cJSON_GetObjectItemCaseSensitive(j.claims, "aud") : NULL;
    if (cJSON_IsArray(aud))
        aud = cJSON_GetArrayItem(aud, 0);
    int has_nbf = 0, has_exp = 0;
    if (info->detail != NULL) {
        /* as parsed */
    } else if (alg == NULL || a == sizeof(algs) / sizeof(algs[0])) {
        info->detail = "the header's alg is not one of RS256, RS384, RS512, PS256, PS384, "
                       "PS512, ES256, ES384, ES512";
    } else if (iss == NULL || sub == NULL || !cJSON_IsString(aud)) {
        info->detail = "the claims iss, sub and aud are required strings";
    } else if ((has_nbf = date_member(j.claims, "nbf", &info->nbf)) < 0 ||
               (has_exp = date_member(j.claims, "exp", &info->exp)) < 0) {
        info->detail = "the claims nbf and exp must be NumericDates";
    } else {
        snprintf(info->iss, sizeof(info->iss), "%s", iss);
        snprintf(info->sub, sizeof(info->sub), "%s", sub);
        snprintf(info->aud, sizeof(info->aud), "%s", aud->valuestring);
        info->federated = strcmp(iss, id->client_id) != 0 || strcmp(sub, id->client_id) != 0;
        res = !info->federated ? by_certificate(id->creds, &j, a, endpoints, n_endpoints, now, info)
                               : by_federation(id->creds, &j, a, info);
        if (res == POL_ASSERTION_OK && (!has_exp || now >= info->exp + POL_ASSERTION_SKEW ||
                                        (has_nbf && now < info->nbf - POL_ASSERTION_SKEW)))
            res = POL_ASSERTION_TIME;
    }
    jws_clear(&j);
    return res;
}
