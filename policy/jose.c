/*
 * JOSE for the policy layer (jose.h): the public keys of a JWKS, compact JWS parsing and
 * signature verification, shared by client assertions (assertion.c) and attestation tokens
 * (release.c). Everything here is public: keys, tokens and their claims.
 */
#include "jose.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kv_status jose_bad(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return KV_ERR_BAD_PARAM;
}

/* ---- JSON that cJSON cannot have failed on (RFC 8259, as cJSON 1.7 reads it) -------------- */

struct jv {
    const unsigned char *p, *end;
    int depth;
};

static void jv_space(struct jv *v)
{
    while (v->p < v->end && (*v->p == ' ' || *v->p == '\t' || *v->p == '\n' || *v->p == '\r'))
        v->p++;
}

static int jv_hex4(const unsigned char *p, const unsigned char *end, unsigned *out)
{
    *out = 0;
    if (end - p < 4)
        return 0;
    for (int i = 0; i < 4; i++) {
        unsigned c = p[i];
        unsigned d = c >= '0' && c <= '9'   ? c - '0'
                     : c >= 'a' && c <= 'f' ? c - 'a' + 10
                     : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                            : 16;
        if (d == 16)
            return 0;
        *out = *out << 4 | d;
    }
    return 1;
}

/* The length of the UTF-8 sequence at @p p (not ASCII), 0 when it is not one. */
static size_t jv_utf8(const unsigned char *p, const unsigned char *end)
{
    size_t n = p[0] >= 0xC2 && p[0] <= 0xDF   ? 2
               : p[0] >= 0xE0 && p[0] <= 0xEF ? 3
               : p[0] >= 0xF0 && p[0] <= 0xF4 ? 4
                                              : 0;
    if (n == 0 || (size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xC0) != 0x80)
            return 0;
    if ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] > 0x9F) || /* overlong, UTF-16 */
        (p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] > 0x8F))   /* overlong, > 10FFFF */
        return 0;
    return n;
}

static int jv_string(struct jv *v)
{
    v->p++; /* the opening quote */
    while (v->p < v->end) {
        unsigned c = *v->p;
        if (c == '"') {
            v->p++;
            return 1;
        }
        if (c < 0x20)
            return 0;
        if (c >= 0x80) {
            size_t n = jv_utf8(v->p, v->end);
            if (n == 0)
                return 0;
            v->p += n;
            continue;
        }
        v->p++;
        if (c != '\\')
            continue;
        if (v->p == v->end)
            return 0;
        c = *v->p++;
        if (strchr("\"\\/bfnrt", (int)c) != NULL && c != '\0')
            continue;
        unsigned u, lo;
        if (c != 'u' || !jv_hex4(v->p, v->end, &u) || u == 0 || (u >= 0xDC00 && u <= 0xDFFF))
            return 0; /* cJSON refuses a lone low surrogate; "\u0000" would cut its string */
        v->p += 4;
        if (u >= 0xD800 && u <= 0xDBFF) { /* a high surrogate: its low one must follow */
            if (v->end - v->p < 6 || v->p[0] != '\\' || v->p[1] != 'u' ||
                !jv_hex4(v->p + 2, v->end, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                return 0;
            v->p += 6;
        }
    }
    return 0;
}

static int jv_digits(struct jv *v)
{
    const unsigned char *start = v->p;
    while (v->p < v->end && *v->p >= '0' && *v->p <= '9')
        v->p++;
    return v->p > start;
}

static int jv_number(struct jv *v)
{
    const unsigned char *start = v->p;
    if (*v->p == '-')
        v->p++;
    if (v->p < v->end && *v->p == '0')
        v->p++;
    else if (!jv_digits(v))
        return 0;
    if (v->p < v->end && *v->p == '.') {
        v->p++;
        if (!jv_digits(v))
            return 0;
    }
    if (v->p < v->end && (*v->p == 'e' || *v->p == 'E')) {
        v->p++;
        if (v->p < v->end && (*v->p == '+' || *v->p == '-'))
            v->p++;
        if (!jv_digits(v))
            return 0;
    }
    return v->p - start <= 63; /* cJSON reads at most 63 characters of a number */
}

static int jv_value(struct jv *v);

/* An array or an object, at its bracket. */
static int jv_container(struct jv *v)
{
    unsigned char close = *v->p == '[' ? ']' : '}';
    if (v->depth >= CJSON_NESTING_LIMIT)
        return 0;
    v->depth++;
    v->p++;
    jv_space(v);
    if (v->p < v->end && *v->p == close) {
        v->p++;
        v->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            if (v->p == v->end || *v->p != '"' || !jv_string(v))
                return 0;
            jv_space(v);
            if (v->p == v->end || *v->p != ':')
                return 0;
            v->p++;
        }
        if (!jv_value(v))
            return 0;
        jv_space(v);
        if (v->p == v->end)
            return 0;
        if (*v->p == close) {
            v->p++;
            v->depth--;
            return 1;
        }
        if (*v->p != ',')
            return 0;
        v->p++;
        jv_space(v);
    }
}

static int jv_literal(struct jv *v, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(v->end - v->p) < n || memcmp(v->p, word, n) != 0)
        return 0;
    v->p += n;
    return 1;
}

static int jv_value(struct jv *v)
{
    jv_space(v);
    if (v->p == v->end)
        return 0;
    switch (*v->p) {
    case '"':
        return jv_string(v);
    case '[':
    case '{':
        return jv_container(v);
    case 't':
        return jv_literal(v, "true");
    case 'f':
        return jv_literal(v, "false");
    case 'n':
        return jv_literal(v, "null");
    default:
        return (*v->p == '-' || (*v->p >= '0' && *v->p <= '9')) && jv_number(v);
    }
}

/* Whether @p text is one JSON value, with nothing but white space around it. */
static int json_valid(const char *text, size_t len)
{
    struct jv v = {(const unsigned char *)text, (const unsigned char *)text + len, 0};
    if (!jv_value(&v))
        return 0;
    jv_space(&v);
    return v.p == v.end;
}

enum kv_status jose_json_parse(const char *text, size_t len, int strict, cJSON **out)
{
    *out = NULL;
    if (strict && !json_valid(text, len))
        return KV_ERR_BAD_PARAM;
    cJSON *doc = cJSON_ParseWithLength(text, len);
    if (doc == NULL) /* cJSON does not say why: valid text it failed on is out of memory */
        return strict || json_valid(text, len) ? KV_ERR_NOMEM : KV_ERR_BAD_PARAM;
    *out = doc;
    return KV_OK;
}

/* ---- public keys of a JWKS ----------------------------------------------------------------- */

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

/* Whether OpenSSL's error queue says it ran out of memory: then a refused key is the
 * server's trouble, not a bad key. Empties the queue. */
static int openssl_oom(void)
{
    int oom = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0)
        oom |= ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE;
    return oom;
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
        /* a key whose size OpenSSL could not cache (out of memory) refuses every later
         * signature: it is not kept */
        st = check == NULL                                                  ? KV_ERR_NOMEM
             : EVP_PKEY_get_size(*out) <= 0 || EVP_PKEY_get_bits(*out) <= 0 ? KV_ERR_NOMEM
             : EVP_PKEY_public_check(check) == 1                            ? KV_OK
                                                                            : KV_ERR_BAD_PARAM;
        EVP_PKEY_CTX_free(check);
        if (st != KV_OK) {
            EVP_PKEY_free(*out);
            *out = NULL;
        }
    }
    if (st == KV_ERR_BAD_PARAM && openssl_oom())
        st = KV_ERR_NOMEM;
    ERR_clear_error();
    EVP_PKEY_CTX_free(ctx);
    return st;
}

enum kv_status jose_rsa_public(const struct kv_buf *n, const struct kv_buf *e, EVP_PKEY **out)
{
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    enum kv_status st = KV_ERR_NOMEM;
    *out = NULL;
    bn_n = BN_bin2bn(n->data, (int)n->len, NULL);
    bn_e = BN_bin2bn(e->data, (int)e->len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (bn_n && bn_e && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) &&
        (params = OSSL_PARAM_BLD_to_param(bld)) != NULL)
        st = pkey_from("RSA", params, out);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    return st;
}

static enum kv_status rsa_jwk(const cJSON *k, EVP_PKEY **out)
{
    struct kv_buf n = {0}, e = {0};
    enum kv_status st = member_b64url(k, "n", &n);
    if (st == KV_OK)
        st = member_b64url(k, "e", &e);
    if (st == KV_OK && (n.len < 256 || n.len > 2048 || e.len > 8))
        st = KV_ERR_BAD_PARAM; /* 2048 to 16384 bits, as Entra takes */
    if (st == KV_OK)
        st = jose_rsa_public(&n, &e, out);
    kv_buf_free(&n);
    kv_buf_free(&e);
    return st;
}

/* An RSA key given as a certificate: the public key of x5c[0] (standard base64 DER). */
static enum kv_status x5c_jwk(const cJSON *k, EVP_PKEY **out)
{
    const cJSON *x5c = cJSON_GetObjectItemCaseSensitive(k, "x5c");
    const cJSON *first = cJSON_IsArray(x5c) ? x5c->child : NULL;
    *out = NULL;
    if (!cJSON_IsString(first) || first->valuestring[0] == '\0')
        return KV_ERR_BAD_PARAM;
    size_t b64_len = strlen(first->valuestring), der_len = 0;
    unsigned char *der = malloc(b64_len / 4 * 3 + 3);
    if (der == NULL)
        return KV_ERR_NOMEM;
    enum kv_status st = KV_ERR_BAD_PARAM;
    X509 *x = NULL;
    const unsigned char *p = der;
    if (sodium_base642bin(der, b64_len / 4 * 3 + 3, first->valuestring, b64_len, NULL, &der_len,
                          NULL, sodium_base64_VARIANT_ORIGINAL) == 0 &&
        (x = d2i_X509(NULL, &p, (long)der_len)) != NULL && p == der + der_len &&
        (*out = X509_get_pubkey(x)) != NULL) {
        int bits = EVP_PKEY_get_bits(*out);
        if (bits <= 0 || EVP_PKEY_get_size(*out) <= 0) {
            st = KV_ERR_NOMEM; /* as in pkey_from */
            EVP_PKEY_free(*out);
            *out = NULL;
        } else if (EVP_PKEY_is_a(*out, "RSA") && bits >= 2048 && bits <= 16384) {
            st = KV_OK;
        } else {
            EVP_PKEY_free(*out);
            *out = NULL;
        }
    }
    if (st == KV_ERR_BAD_PARAM && openssl_oom())
        st = KV_ERR_NOMEM;
    ERR_clear_error();
    X509_free(x);
    free(der);
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

/* One JWK of a JWKS. Encryption keys are left out (out->key stays NULL). */
static enum kv_status jwk_key(const cJSON *k, size_t nth, unsigned flags, struct jose_key *out,
                              char *err, size_t cap)
{
    const cJSON *kty = cJSON_GetObjectItemCaseSensitive(k, "kty");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "kid");
    const cJSON *use = cJSON_GetObjectItemCaseSensitive(k, "use");
    out->key = NULL;
    if (!cJSON_IsObject(k) || !cJSON_IsString(kty))
        return jose_bad(err, cap, "key %zu of the jwks is not a JWK with a kty", nth);
    if (kid != NULL && (!cJSON_IsString(kid) || strlen(kid->valuestring) >= JOSE_KID_MAX))
        return jose_bad(err, cap, "key %zu of the jwks: kid must be a string of at most %d bytes",
                        nth, JOSE_KID_MAX - 1);
    if (use != NULL && !cJSON_IsString(use))
        return jose_bad(err, cap, "key %zu of the jwks: use must be a string", nth);
    if (use != NULL && strcmp(use->valuestring, "sig") != 0)
        return KV_OK;
    snprintf(out->kid, sizeof(out->kid), "%s", kid ? kid->valuestring : "");
    enum kv_status st;
    if (strcmp(kty->valuestring, "RSA") == 0 && (flags & JOSE_JWKS_X5C) &&
        cJSON_GetObjectItemCaseSensitive(k, "n") == NULL &&
        cJSON_GetObjectItemCaseSensitive(k, "x5c") != NULL) {
        st = x5c_jwk(k, &out->key);
        if (st == KV_ERR_BAD_PARAM) /* OpenSSL does not always say it ran out of memory */
            st = x5c_jwk(k, &out->key);
        if (st == KV_ERR_BAD_PARAM)
            return jose_bad(err, cap,
                            "key %zu of the jwks: x5c[0] is not a base64 DER certificate of an RSA "
                            "key of 2048 to 16384 bits",
                            nth);
        return st;
    }
    if (strcmp(kty->valuestring, "RSA") == 0)
        st = rsa_jwk(k, &out->key);
    else if (strcmp(kty->valuestring, "EC") == 0)
        st = ec_jwk(k, &out->key);
    else
        return jose_bad(err, cap, "key %zu of the jwks has kty '%.16s'; RSA and EC are read", nth,
                        kty->valuestring);
    if (st == KV_ERR_BAD_PARAM) /* as above: a key refused is built a second time first */
        st = strcmp(kty->valuestring, "RSA") == 0 ? rsa_jwk(k, &out->key) : ec_jwk(k, &out->key);
    if (st == KV_ERR_BAD_PARAM)
        return jose_bad(err, cap,
                        "key %zu of the jwks is not a valid public %s key (RSA: n of 2048 to 16384 "
                        "bits and e; EC: crv P-256, P-384 or P-521 and its x and y)",
                        nth, kty->valuestring);
    return st;
}

void jose_keys_free(struct jose_key *keys, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        EVP_PKEY_free(keys[i].key);
        keys[i].key = NULL;
    }
}

enum kv_status jose_jwks_read(const char *jwks, size_t len, unsigned flags, struct jose_key *keys,
                              size_t max, size_t *n, char *err, size_t cap)
{
    cJSON *doc = NULL;
    enum kv_status st = jose_json_parse(jwks, len, 0, &doc);
    const cJSON *list = doc ? cJSON_GetObjectItemCaseSensitive(doc, "keys") : NULL;
    *n = 0;
    if (st == KV_ERR_NOMEM)
        return st;
    if (!cJSON_IsArray(list)) {
        cJSON_Delete(doc);
        return jose_bad(err, cap, "'jwks' must be a JWKS document: {\"keys\": [...]}");
    }
    const cJSON *k;
    size_t nth = 0, got = 0;
    cJSON_ArrayForEach(k, list)
    {
        nth++;
        if (got == max) {
            st = jose_bad(err, cap, "the jwks has more than %zu signing keys", max);
            break;
        }
        st = jwk_key(k, nth, flags, &keys[got], err, cap);
        if (st != KV_OK)
            break;
        got += keys[got].key != NULL;
    }
    cJSON_Delete(doc);
    if (st == KV_OK && got == 0)
        st = jose_bad(err, cap, "the jwks holds no signing key");
    if (st != KV_OK) {
        jose_keys_free(keys, got);
        return st;
    }
    *n = got;
    return KV_OK;
}

/* ---- compact JWS ---------------------------------------------------------------------------- */

void jose_jws_clear(struct jose_jws *j)
{
    cJSON_Delete(j->header);
    cJSON_Delete(j->claims);
    j->header = j->claims = NULL;
    kv_buf_free(&j->sig);
}

/* One base64url part holding a JSON object. */
static enum jose_parse json_part(const char *b64, cJSON **out)
{
    struct kv_buf raw = {0};
    *out = NULL;
    if (b64[0] == '\0')
        return JOSE_NOT_JSON;
    enum kv_status st = kv_b64url_decode(b64, &raw);
    if (st == KV_OK)
        st = jose_json_parse((const char *)raw.data, raw.len, 0, out);
    kv_buf_free(&raw);
    if (st == KV_ERR_NOMEM)
        return JOSE_NOMEM;
    if (st != KV_OK || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return JOSE_NOT_JSON;
    }
    return JOSE_PARSED;
}

enum jose_parse jose_jws_parse(const char *text, size_t max, struct jose_jws *j)
{
    size_t len = strnlen(text, max + 1);
    if (len > max)
        return JOSE_TOO_LONG;
    char *parts = malloc(len + 1);
    if (parts == NULL)
        return JOSE_NOMEM;
    memcpy(parts, text, len + 1);
    char *dot1 = strchr(parts, '.'), *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    enum jose_parse res = JOSE_PARSED;
    if (dot2 == NULL || strchr(dot2 + 1, '.') != NULL) {
        res = JOSE_NOT_COMPACT;
    } else {
        *dot1 = *dot2 = '\0';
        enum jose_parse h = json_part(parts, &j->header);
        enum jose_parse c = json_part(dot1 + 1, &j->claims);
        enum kv_status st = KV_OK;
        if (h == JOSE_NOMEM || c == JOSE_NOMEM)
            res = JOSE_NOMEM;
        else if (h != JOSE_PARSED || c != JOSE_PARSED)
            res = JOSE_NOT_JSON;
        else if (dot2[1] == '\0' || (st = kv_b64url_decode(dot2 + 1, &j->sig)) != KV_OK)
            res = st == KV_ERR_NOMEM ? JOSE_NOMEM : JOSE_BAD_SIG;
        j->signed_part = text;
        j->signed_len = (size_t)(dot2 - parts);
    }
    free(parts);
    return res;
}

const char *jose_str(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int jose_date(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL)
        return 0;
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15)
        return -1;
    *out = (int64_t)v->valuedouble;
    return 1;
}

int jose_date_or_digits(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v))
        return jose_date(o, name, out);
    const char *s = v->valuestring;
    size_t n = strspn(s, "0123456789");
    if (n == 0 || n > 15 || s[n] != '\0')
        return -1;
    *out = (int64_t)strtoll(s, NULL, 10);
    return 1;
}

/* ---- signatures ------------------------------------------------------------------------------ */

static const struct jose_alg algs[] = {
    {"RS256", JOSE_RS, 256}, {"RS384", JOSE_RS, 384}, {"RS512", JOSE_RS, 512},
    {"PS256", JOSE_PS, 256}, {"PS384", JOSE_PS, 384}, {"PS512", JOSE_PS, 512},
    {"ES256", JOSE_ES, 256}, {"ES384", JOSE_ES, 384}, {"ES512", JOSE_ES, 512},
};

const struct jose_alg *jose_alg(const char *name)
{
    for (size_t a = 0; name != NULL && a < sizeof(algs) / sizeof(algs[0]); a++)
        if (strcmp(name, algs[a].name) == 0)
            return &algs[a];
    return NULL;
}

static const EVP_MD *digest_of(int bits)
{
    return bits == 256 ? EVP_sha256() : bits == 384 ? EVP_sha384() : EVP_sha512();
}

/* JOSE's r||s into DER, which OpenSSL verifies: 1, or -1 out of memory. */
static int ecdsa_der(const struct kv_buf *sig, unsigned char **der, int *der_len)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig->data, (int)sig->len / 2, NULL);
    BIGNUM *v = BN_bin2bn(sig->data + sig->len / 2, (int)sig->len / 2, NULL);
    if (s == NULL || r == NULL || v == NULL || ECDSA_SIG_set0(s, r, v) != 1) {
        BN_free(r);
        BN_free(v);
        ECDSA_SIG_free(s);
        return -1;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(s, der);
    ECDSA_SIG_free(s);
    return *der_len > 0 ? 1 : -1;
}

static int verify_once(const struct jose_jws *j, const struct jose_alg *alg, EVP_PKEY *key)
{
    int is_rsa = EVP_PKEY_is_a(key, "RSA"), ok = 0;
    if ((alg->kind == JOSE_ES) == is_rsa)
        return 0;
    if (alg->kind == JOSE_ES) {
        /* ES256 on P-256, ES384 on P-384, ES512 on P-521 */
        int curve_bits = alg->bits == 512 ? 521 : alg->bits;
        if (EVP_PKEY_get_bits(key) != curve_bits ||
            j->sig.len != 2 * (size_t)((curve_bits + 7) / 8))
            return 0;
    }
    const unsigned char *sig = j->sig.data;
    unsigned char *der = NULL;
    int sig_len = (int)j->sig.len;
    if (alg->kind == JOSE_ES && ecdsa_der(&j->sig, &der, &sig_len) < 0)
        return -1;
    if (der != NULL)
        sig = der;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (md == NULL)
        ok = -1;
    else if (EVP_DigestVerifyInit(md, &pctx, digest_of(alg->bits), NULL, key) == 1 &&
             (alg->kind != JOSE_PS ||
              (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
               EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1)))
        ok = EVP_DigestVerify(md, sig, (size_t)sig_len, (const unsigned char *)j->signed_part,
                              j->signed_len) == 1;
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    return ok;
}

int jose_verify(const struct jose_jws *j, const struct jose_alg *alg, EVP_PKEY *key)
{
    int ok = verify_once(j, alg, key);
    /* a signature refused is checked a second time: OpenSSL does not always say that it
     * ran out of memory */
    return ok == 0 ? verify_once(j, alg, key) : ok;
}

enum jose_verdict jose_verify_keys(const struct jose_jws *j, const struct jose_alg *alg,
                                   const struct jose_key *keys, size_t n, const char *kid)
{
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        if (kid != NULL && keys[i].kid[0] != '\0' && strcmp(kid, keys[i].kid) != 0)
            continue;
        found = 1;
        int ok = jose_verify(j, alg, keys[i].key);
        if (ok != 0)
            return ok > 0 ? JOSE_VERIFIED : JOSE_VERIFY_NOMEM;
    }
    return found ? JOSE_BAD_SIGNATURE : JOSE_NO_KEY;
}
