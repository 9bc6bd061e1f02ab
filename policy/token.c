/* HS256 JSON Web Tokens signed with kvmock's own secret. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "kv_buf.h"

#define TOKEN_MAX 8192

static const char header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";

static void sign(const struct pol_ctx *c, const char *data, size_t len,
                 unsigned char mac[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256(mac, (const unsigned char *)data, len, c->secret);
}

enum kv_status pol_token_issue(const struct pol_ctx *c, const struct pol_identity *id,
                               const char *aud, int64_t now, char **token, int64_t *expires_on)
{
    enum kv_status st = KV_ERR_NOMEM;
    cJSON *p = cJSON_CreateObject();
    char *payload = NULL, *h64 = NULL, *p64 = NULL, *s64 = NULL, *out = NULL;
    char iss[128];
    int64_t exp = now + POL_TOKEN_LIFETIME;
    snprintf(iss, sizeof(iss), "https://sts.windows.net/%s/", id->tenant_id);
    if (p == NULL || !cJSON_AddStringToObject(p, "aud", aud) ||
        !cJSON_AddStringToObject(p, "iss", iss) ||
        !cJSON_AddNumberToObject(p, "iat", (double)now) ||
        !cJSON_AddNumberToObject(p, "nbf", (double)now) ||
        !cJSON_AddNumberToObject(p, "exp", (double)exp) ||
        !cJSON_AddStringToObject(p, "appid", id->client_id) ||
        !cJSON_AddStringToObject(p, "oid", id->object_id) ||
        !cJSON_AddStringToObject(p, "sub", id->object_id) ||
        !cJSON_AddStringToObject(p, "tid", id->tenant_id) ||
        !cJSON_AddStringToObject(p, "idtyp", "app") || !cJSON_AddStringToObject(p, "ver", "1.0"))
        goto out;
    payload = cJSON_PrintUnformatted(p);
    if (payload == NULL ||
        kv_b64url_encode(header_json, sizeof(header_json) - 1, &h64) != KV_OK ||
        kv_b64url_encode(payload, strlen(payload), &p64) != KV_OK)
        goto out;
    size_t signed_len = strlen(h64) + 1 + strlen(p64);
    out = malloc(signed_len + 1 + 64);
    if (out == NULL)
        goto out;
    snprintf(out, signed_len + 1, "%s.%s", h64, p64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    sign(c, out, signed_len, mac);
    if (kv_b64url_encode(mac, sizeof(mac), &s64) != KV_OK)
        goto out;
    snprintf(out + signed_len, 1 + 64, ".%s", s64);
    *token = out;
    *expires_on = exp;
    out = NULL;
    st = KV_OK;
out:
    cJSON_Delete(p);
    cJSON_free(payload);
    free(h64);
    free(p64);
    free(s64);
    free(out);
    return st;
}

static int copy_claim(const cJSON *o, const char *name, char *dst, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap)
        return 0;
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 1;
}

static int num_claim(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (!cJSON_IsNumber(v) || !(v->valuedouble > -9.0e18 && v->valuedouble < 9.0e18))
        return 0;
    *out = (int64_t)v->valuedouble;
    return 1;
}

/* Compare audiences, ignoring one trailing slash and ASCII case. */
static int aud_equal(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 0 && a[la - 1] == '/')
        la--;
    if (lb > 0 && b[lb - 1] == '/')
        lb--;
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* The header (alg must be HS256) and the claims of a token whose signature verified. */
static enum kv_status parse_claims(const char *token, const char *dot1, const char *dot2,
                                   struct pol_claims *cl)
{
    enum kv_status st = KV_ERR_UNAUTHORIZED;
    struct kv_buf hdr = {0}, body = {0};
    cJSON *h = NULL, *p = NULL;
    char part[TOKEN_MAX];
    memcpy(part, token, (size_t)(dot1 - token));
    part[dot1 - token] = '\0';
    if (kv_b64url_decode(part, &hdr) != KV_OK)
        goto out;
    h = cJSON_ParseWithLength((const char *)hdr.data, hdr.len);
    const cJSON *alg = cJSON_GetObjectItemCaseSensitive(h, "alg");
    if (!cJSON_IsString(alg) || strcmp(alg->valuestring, "HS256") != 0)
        goto out;

    memcpy(part, dot1 + 1, (size_t)(dot2 - dot1 - 1));
    part[dot2 - dot1 - 1] = '\0';
    if (kv_b64url_decode(part, &body) != KV_OK)
        goto out;
    p = cJSON_ParseWithLength((const char *)body.data, body.len);
    if (cJSON_IsObject(p) && copy_claim(p, "oid", cl->oid, sizeof(cl->oid)) &&
        copy_claim(p, "appid", cl->appid, sizeof(cl->appid)) &&
        copy_claim(p, "tid", cl->tid, sizeof(cl->tid)) &&
        copy_claim(p, "aud", cl->aud, sizeof(cl->aud)) && num_claim(p, "iat", &cl->iat) &&
        num_claim(p, "nbf", &cl->nbf) && num_claim(p, "exp", &cl->exp))
        st = KV_OK;
out:
    cJSON_Delete(h);
    cJSON_Delete(p);
    kv_buf_free(&hdr);
    kv_buf_free(&body);
    return st;
}

/* Tokens whose signature verified, with their claims: the same token string
 * again skips the signature check, the decoding and the parsing (a token is
 * exactly what was verified, byte for byte). The slot is chosen by the last
 * characters of the signature, which are random. */
static struct pol_token_slot *slot_of(const struct pol_ctx *c, const char *token, size_t len)
{
    unsigned h = 2166136261u;
    for (size_t i = len > 8 ? len - 8 : 0; i < len; i++)
        h = (h ^ (unsigned char)token[i]) * 16777619u;
    return &c->token_cache[h % POL_TOKEN_CACHE_SLOTS];
}

/* Equality of two strings of @p n bytes in time that depends on @p n only
 * (it says nothing about a cached token's bytes), 8 bytes at a time. */
static int same_bytes(const char *a, const char *b, size_t n)
{
    uint64_t diff = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t x, y;
        memcpy(&x, a + i, 8);
        memcpy(&y, b + i, 8);
        diff |= x ^ y;
    }
    for (; i < n; i++)
        diff |= (unsigned char)(a[i] ^ b[i]);
    return diff == 0;
}

static int cache_get(const struct pol_ctx *c, const char *token, size_t len,
                     struct pol_claims *cl)
{
    struct pol_token_slot *slot = slot_of(c, token, len);
    pthread_mutex_lock(&slot->mu);
    int hit = slot->len == len && same_bytes(slot->token, token, len);
    if (hit)
        *cl = slot->claims;
    pthread_mutex_unlock(&slot->mu);
    return hit;
}

static void cache_put(const struct pol_ctx *c, const char *token, size_t len,
                      const struct pol_claims *cl)
{
    if (len >= POL_TOKEN_CACHE_LEN)
        return;
    struct pol_token_slot *slot = slot_of(c, token, len);
    pthread_mutex_lock(&slot->mu);
    memcpy(slot->token, token, len);
    slot->len = len;
    slot->claims = *cl;
    pthread_mutex_unlock(&slot->mu);
}

enum kv_status pol_token_verify(const struct pol_ctx *c, const char *token, int64_t now,
                                const char *const *auds, size_t n_auds, struct pol_claims *out)
{
    char wrong_aud[POL_AUD_MAX];
    return pol_token_check(c, token, now, auds, n_auds, out, wrong_aud);
}

enum kv_status pol_token_check(const struct pol_ctx *c, const char *token, int64_t now,
                               const char *const *auds, size_t n_auds, struct pol_claims *out,
                               char wrong_aud[POL_AUD_MAX])
{
    enum kv_status st = KV_ERR_UNAUTHORIZED;
    wrong_aud[0] = '\0';
    struct kv_buf sig = {0};
    struct pol_claims cl = {0};
    size_t len = strlen(token);
    const char *dot1 = strchr(token, '.');
    const char *dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (len >= TOKEN_MAX || dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
        goto out;

    if (!cache_get(c, token, len, &cl)) {
        /* The signature first: nothing of an unsigned token is parsed further. */
        if (kv_b64url_decode(dot2 + 1, &sig) != KV_OK ||
            sig.len != crypto_auth_hmacsha256_BYTES)
            goto out;
        if (crypto_auth_hmacsha256_verify(sig.data, (const unsigned char *)token,
                                          (size_t)(dot2 - token), c->secret) != 0)
            goto out;
        if (parse_claims(token, dot1, dot2, &cl) != KV_OK)
            goto out;
        cache_put(c, token, len, &cl);
    }

    /* Checked on every request, cached or not. */
    if (now < cl.nbf || now >= cl.exp)
        goto out;
    /* The identity must still exist, as issued: a removed identity's tokens die with it. */
    const struct pol_identity *id = pol_find_identity(c, NULL, cl.oid, NULL);
    if (id == NULL || strcasecmp(id->client_id, cl.appid) != 0 ||
        strcasecmp(id->tenant_id, cl.tid) != 0)
        goto out;
    for (size_t i = 0; i < n_auds; i++) {
        if (aud_equal(cl.aud, auds[i])) {
            *out = cl;
            st = KV_OK;
            break;
        }
    }
    if (st != KV_OK)
        memcpy(wrong_aud, cl.aud, sizeof(cl.aud));
out:
    kv_buf_free(&sig);
    return st;
}
