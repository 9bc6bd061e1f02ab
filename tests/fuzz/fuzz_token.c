/*
 * JWT verification (pol_token_verify) with a context from pol_new in a
 * temporary folder. The first input byte picks the shape:
 *   0: the rest is the token as sent;
 *   1: the rest is "HEADER-JSON\0PAYLOAD-JSON": both are base64url-encoded and
 *      signed with the context's secret, so the claim parsing behind the
 *      signature check is reached;
 *   2: a valid token with bytes of it replaced (pairs of position, byte).
 * Invariants: an accepted token's claims satisfy nbf <= now < exp and carry
 * one of the audiences; a changed token verifies only if its signed part
 * (header.payload) is unchanged.
 */
#include <sodium.h>

#include "fuzz_common.h"
#include "internal.h"
#include "kv_buf.h"
#include "pol.h"

#define NOW 1700000000
static struct pol_ctx *ctx;
static char *good_token;
static const char *const auds[] = {"https://vault.localhost:8443", "https://vault.azure.net",
                                   "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"};
static char dir[128];

static void cleanup(void)
{
    pol_free(ctx);
    free(good_token);
    fuzz_rmtree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    snprintf(dir, sizeof(dir), "%s", fuzz_tmpdir("token"));
    struct pol_identity app = {
        .name = "app", .object_id = "oid-1", .client_id = "cid-1", .is_default = 1};
    int64_t exp = 0;
    if (pol_new(dir, "tenant-1", &ctx) != KV_OK || pol_add_identity(ctx, &app) != KV_OK ||
        pol_token_issue(ctx, pol_find_identity(ctx, NULL, NULL, NULL), "https://vault.azure.net",
                        NOW - 10, &good_token, &exp) != KV_OK)
        abort();
    atexit(cleanup);
    return 0;
}

static int verify(const char *token, struct pol_claims *cl)
{
    if (pol_token_verify(ctx, token, NOW, auds, 3, cl) != KV_OK)
        return 0;
    FUZZ_ASSERT(cl->nbf <= NOW && NOW < cl->exp);
    int aud_ok = 0;
    for (size_t i = 0; i < 3; i++)
        aud_ok |= strncasecmp(cl->aud, auds[i], strlen(auds[i])) == 0;
    FUZZ_ASSERT(aud_ok);
    return 1;
}

static void signed_shape(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *payload = nul ? nul + 1 : data + size;
    size_t plen = nul ? size - hlen - 1 : 0;
    char *h64 = NULL, *p64 = NULL, *s64 = NULL;
    if (kv_b64url_encode(data, hlen, &h64) != KV_OK ||
        kv_b64url_encode(payload, plen, &p64) != KV_OK)
        abort();
    size_t len = strlen(h64) + 1 + strlen(p64);
    char *tok = malloc(len + 2 + 64);
    if (tok == NULL)
        abort();
    snprintf(tok, len + 1, "%s.%s", h64, p64);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256(mac, (const unsigned char *)tok, len, ctx->secret);
    if (kv_b64url_encode(mac, sizeof(mac), &s64) != KV_OK)
        abort();
    snprintf(tok + len, 2 + 64, ".%s", s64);
    struct pol_claims cl;
    (void)verify(tok, &cl);
    free(tok);
    free(h64);
    free(p64);
    free(s64);
}

static void mutated(const uint8_t *data, size_t size)
{
    char *tok = strdup(good_token);
    size_t len = strlen(tok);
    for (size_t i = 0; i + 1 < size; i += 2) {
        char c = (char)data[i + 1];
        if (c == '\0')
            c = 'A';
        tok[data[i] % len] = c;
    }
    struct pol_claims cl;
    if (verify(tok, &cl)) {
        const char *d2 = strrchr(good_token, '.');
        FUZZ_ASSERT(memcmp(tok, good_token, (size_t)(d2 - good_token)) == 0);
    }
    free(tok);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 3) {
    case 0: {
        char *tok = fuzz_cstr(data + 1, size - 1);
        struct pol_claims cl;
        (void)verify(tok, &cl);
        free(tok);
        break;
    }
    case 1:
        signed_shape(data + 1, size - 1);
        break;
    default:
        mutated(data + 1, size - 1);
        break;
    }
    return 0;
}
