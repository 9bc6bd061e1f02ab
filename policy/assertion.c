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
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jose.h"
#include "kv_buf.h"
#include "pol.h"

struct cert {
    unsigned char sha1[20], sha256[32]; /* of the DER certificate */
    int64_t not_before, not_after;      /* its validity, which Entra gives the key credential */
    EVP_PKEY *key;
};

struct federated {
    char issuer[POL_FEDERATED_FIELD_MAX + 1];
    char subject[POL_FEDERATED_FIELD_MAX + 1];
    char audience[POL_FEDERATED_FIELD_MAX + 1];
    struct jose_key keys[POL_JWKS_KEYS_MAX];
    size_t n_keys;
};

struct pol_creds {
    struct cert certs[POL_CREDS_CERTS_MAX];
    size_t n_certs;
    struct federated *federated;
    size_t n_federated;
};

static void federated_clear(struct federated *f)
{
    jose_keys_free(f->keys, f->n_keys);
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
        return jose_bad(err, cap, "certificate %zu is not a readable X.509 certificate", nth);
    enum kv_status st = KV_OK;
    unsigned char *der = NULL;
    int der_len = i2d_X509(x, &der);
    out->key = X509_get_pubkey(x);
    if (der_len <= 0 || out->key == NULL) {
        st = KV_ERR_NOMEM;
    } else if (!asn1_seconds(X509_get0_notBefore(x), &out->not_before) ||
               !asn1_seconds(X509_get0_notAfter(x), &out->not_after)) {
        st = jose_bad(err, cap, "certificate %zu has unreadable validity dates", nth);
    } else if (!EVP_PKEY_is_a(out->key, "RSA")) {
        st = jose_bad(err, cap,
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
            st = jose_bad(err, cap, "certificate %zu has no -----END CERTIFICATE----- line", n + 1);
        } else if (have + n >= POL_CREDS_CERTS_MAX) {
            st = jose_bad(err, cap, "more than %d certificates", POL_CREDS_CERTS_MAX);
        } else {
            e += sizeof(end) - 1;
            st = read_cert(p, (size_t)(e - p), n + 1, &found[n], err, cap);
            n += st == KV_OK;
            p = e;
        }
    }
    if (st == KV_OK && n == 0)
        st = jose_bad(err, cap, "no certificate (a -----BEGIN CERTIFICATE----- block) found");
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

static enum kv_status check_field(const char *name, const char *v, char *err, size_t cap)
{
    if (v == NULL || v[0] == '\0')
        return jose_bad(err, cap, "'%s' is required", name);
    if (strlen(v) > POL_FEDERATED_FIELD_MAX)
        return jose_bad(err, cap, "'%s' is longer than %d bytes", name, POL_FEDERATED_FIELD_MAX);
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
        return jose_bad(err, cap, "more than %d federated credentials", POL_CREDS_FEDERATED_MAX);
    for (size_t i = 0; *creds != NULL && i < (*creds)->n_federated; i++) {
        const struct federated *o = &(*creds)->federated[i];
        if (strcmp(o->issuer, issuer) == 0 && strcmp(o->subject, subject) == 0)
            return jose_bad(err, cap,
                            "a federated credential with this issuer and subject is "
                            "already there (Entra keeps one)");
    }
    struct federated *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return KV_ERR_NOMEM;
    snprintf(f->issuer, sizeof(f->issuer), "%s", issuer);
    snprintf(f->subject, sizeof(f->subject), "%s", subject);
    snprintf(f->audience, sizeof(f->audience), "%s", audience);
    st = jose_jwks_read(jwks, jwks_len, 0, f->keys, POL_JWKS_KEYS_MAX, &f->n_keys, err, cap);
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

/* What a parse failure of an assertion is called. */
static const char *parse_detail(enum jose_parse p)
{
    switch (p) {
    case JOSE_PARSED:
        return NULL;
    case JOSE_TOO_LONG:
        return "the assertion is too long";
    case JOSE_NOT_COMPACT:
        return "the assertion is not a JWS in compact form (three parts)";
    case JOSE_NOT_JSON:
        return "the assertion's header or claims are not base64url JSON objects";
    case JOSE_BAD_SIG:
        return "the assertion's signature is not base64url";
    default:
        return "out of memory";
    }
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
static enum pol_assertion by_certificate(const struct pol_creds *c, const struct jose_jws *j,
                                         const struct jose_alg *alg, const char *const *endpoints,
                                         size_t n_endpoints, int64_t now,
                                         struct pol_assertion_info *info)
{
    if (alg->kind == JOSE_ES || alg->bits != 256) {
        info->detail = "a certificate's assertion is signed with RS256 or PS256";
        return POL_ASSERTION_MALFORMED;
    }
    const char *t256 = jose_str(j->header, "x5t#S256"), *t1 = jose_str(j->header, "x5t");
    struct kv_buf tp = {0};
    size_t want = t256 ? 32 : 20;
    enum kv_status st =
        t256 == NULL && t1 == NULL ? KV_ERR_BAD_PARAM : kv_b64url_decode(t256 ? t256 : t1, &tp);
    if (st != KV_OK || tp.len != want) {
        kv_buf_free(&tp);
        return st == KV_ERR_NOMEM ? POL_ASSERTION_NOMEM : POL_ASSERTION_NO_THUMBPRINT;
    }
    hex_upper(tp.data, tp.len, info->key_id);
    const struct cert *found = NULL;
    for (size_t i = 0; c != NULL && i < c->n_certs && found == NULL; i++)
        if (memcmp(t256 ? c->certs[i].sha256 : c->certs[i].sha1, tp.data, tp.len) == 0)
            found = &c->certs[i];
    kv_buf_free(&tp);
    if (found == NULL)
        return POL_ASSERTION_KEY_NOT_FOUND;
    int verified = jose_verify(j, alg, found->key);
    if (verified != 1)
        return verified < 0 ? POL_ASSERTION_NOMEM : POL_ASSERTION_BAD_SIGNATURE;
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
static enum pol_assertion by_federation(const struct pol_creds *c, const struct jose_jws *j,
                                        const struct jose_alg *alg, struct pol_assertion_info *info)
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
    const char *kid = jose_str(j->header, "kid");
    snprintf(info->key_id, sizeof(info->key_id), "%s", kid ? kid : "");
    switch (jose_verify_keys(j, alg, f->keys, f->n_keys, kid)) {
    case JOSE_VERIFIED:
        return POL_ASSERTION_OK;
    case JOSE_NO_KEY:
        return POL_ASSERTION_KEY_NOT_FOUND;
    case JOSE_VERIFY_NOMEM:
        return POL_ASSERTION_NOMEM;
    default:
        return POL_ASSERTION_BAD_SIGNATURE;
    }
}

enum pol_assertion pol_assertion_check(const struct pol_identity *id, const char *assertion,
                                       const char *const *endpoints, size_t n_endpoints,
                                       int64_t now, struct pol_assertion_info *info)
{
    struct jose_jws j = {0};
    memset(info, 0, sizeof(*info));
    enum jose_parse parsed = jose_jws_parse(assertion, POL_ASSERTION_MAX - 1, &j);
    info->detail = parse_detail(parsed);
    enum pol_assertion res = parsed == JOSE_NOMEM ? POL_ASSERTION_NOMEM : POL_ASSERTION_MALFORMED;
    const struct jose_alg *alg = j.header ? jose_alg(jose_str(j.header, "alg")) : NULL;
    const char *iss = j.claims ? jose_str(j.claims, "iss") : NULL;
    const char *sub = j.claims ? jose_str(j.claims, "sub") : NULL;
    const cJSON *aud = j.claims ? cJSON_GetObjectItemCaseSensitive(j.claims, "aud") : NULL;
    if (cJSON_IsArray(aud))
        aud = cJSON_GetArrayItem(aud, 0);
    int has_nbf = 0, has_exp = 0;
    if (info->detail != NULL) {
        /* as parsed (or out of memory) */
    } else if (alg == NULL) {
        info->detail = "the header's alg is not one of RS256, RS384, RS512, PS256, PS384, "
                       "PS512, ES256, ES384, ES512";
    } else if (iss == NULL || sub == NULL || !cJSON_IsString(aud)) {
        info->detail = "the claims iss, sub and aud are required strings";
    } else if ((has_nbf = jose_date_or_digits(j.claims, "nbf", &info->nbf)) < 0 ||
               (has_exp = jose_date_or_digits(j.claims, "exp", &info->exp)) < 0) {
        info->detail = "the claims nbf and exp must be NumericDates";
    } else {
        snprintf(info->iss, sizeof(info->iss), "%s", iss);
        snprintf(info->sub, sizeof(info->sub), "%s", sub);
        snprintf(info->aud, sizeof(info->aud), "%s", aud->valuestring);
        info->federated = strcmp(iss, id->client_id) != 0 || strcmp(sub, id->client_id) != 0;
        res = !info->federated
                  ? by_certificate(id->creds, &j, alg, endpoints, n_endpoints, now, info)
                  : by_federation(id->creds, &j, alg, info);
        if (res == POL_ASSERTION_OK && (!has_exp || now >= info->exp + POL_ASSERTION_SKEW ||
                                        (has_nbf && now < info->nbf - POL_ASSERTION_SKEW)))
            res = POL_ASSERTION_TIME;
    }
    jose_jws_clear(&j);
    return res;
}
