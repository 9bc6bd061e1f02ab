/*
 * Client assertions (pol_assertion_check) against an identity holding the
 * certificate and the federated issuer's JWKS of tests/unit/testassert.h, and
 * the registration of certificates and JWKS from untrusted text. The first
 * input byte picks the shape:
 *   0: the rest is the assertion as sent;
 *   1: the rest is "HEADER-JSON\0CLAIMS-JSON": both are base64url-encoded and
 *      given a 256-byte signature of the next bytes, so the header and claim
 *      checks behind the parsing are reached;
 *   2: one of the two valid assertions (byte 1 picks) with bytes replaced
 *      (pairs of position, byte);
 *   3: the rest is registered as a PEM text of certificates, then as a JWKS.
 * Invariants: an accepted assertion's signed part (header.claims) is one of
 * the valid assertions' (nothing can be forged); a registration gives KV_OK
 * with at least one certificate or key, or KV_ERR_BAD_PARAM with a message.
 */
#include "fuzz_common.h"
#include "kv_buf.h"
#include "pol.h"
#include "../unit/testassert.h"

static struct pol_identity id = {.name = "ci", .client_id = TESTASSERT_CLIENT};
static const char *const endpoints[] = {TESTASSERT_ENDPOINT};
static const char *const good[] = {testassert_own_assertion, testassert_federated_assertion};

static void cleanup(void)
{
    pol_creds_free(id.creds);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    if (testassert_register(&id.creds) != KV_OK)
        abort();
    struct pol_assertion_info info;
    for (size_t i = 0; i < 2; i++)
        if (pol_assertion_check(&id, good[i], endpoints, 1, TESTASSERT_NOW, &info) !=
            POL_ASSERTION_OK)
            abort();
    atexit(cleanup);
    return 0;
}

static void check(const char *assertion)
{
    struct pol_assertion_info info;
    if (pol_assertion_check(&id, assertion, endpoints, 1, TESTASSERT_NOW, &info) !=
        POL_ASSERTION_OK)
        return;
    const char *dot = strrchr(assertion, '.');
    int known = 0;
    for (size_t i = 0; i < 2 && dot != NULL; i++) {
        size_t n = (size_t)(dot - assertion);
        known |= strncmp(assertion, good[i], n) == 0 && good[i][n] == '.';
    }
    FUZZ_ASSERT(known);
}

static void signed_shape(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t hlen = nul ? (size_t)(nul - data) : size;
    const uint8_t *claims = nul ? nul + 1 : data + size;
    size_t clen = nul ? size - hlen - 1 : 0;
    unsigned char sig[256];
    for (size_t i = 0; i < sizeof(sig); i++)
        sig[i] = clen > 0 ? claims[i % clen] : (unsigned char)i;
    char *h64 = NULL, *c64 = NULL, *s64 = NULL;
    if (kv_b64url_encode(data, hlen, &h64) != KV_OK ||
        kv_b64url_encode(claims, clen, &c64) != KV_OK ||
        kv_b64url_encode(sig, sizeof(sig), &s64) != KV_OK)
        abort();
    size_t len = strlen(h64) + strlen(c64) + strlen(s64) + 3;
    char *a = malloc(len);
    if (a == NULL)
        abort();
    snprintf(a, len, "%s.%s.%s", h64, c64, s64);
    check(a);
    free(a);
    free(h64);
    free(c64);
    free(s64);
}

static void mutated(const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    char *a = strdup(good[data[0] % 2]);
    size_t len = strlen(a);
    for (size_t i = 1; i + 1 < size; i += 2) {
        char c = (char)data[i + 1];
        a[data[i] * 7 % len] = c == '\0' ? 'A' : c;
    }
    check(a);
    free(a);
}

static void registered(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct pol_creds *creds = NULL;
    char err[256] = "";
    size_t added = 0, nf = 0;
    enum kv_status st = pol_creds_add_certificates(&creds, text, size, &added, err, sizeof(err));
    FUZZ_ASSERT(st == KV_OK ? added > 0 && pol_creds_count(creds, NULL) == added
                            : st == KV_ERR_BAD_PARAM && err[0] != '\0' && creds == NULL);
    err[0] = '\0';
    st = pol_creds_add_federated(&creds, "https://i", "s", "a", text, size, err, sizeof(err));
    (void)pol_creds_count(creds, &nf);
    FUZZ_ASSERT(st == KV_OK ? nf == 1 : st == KV_ERR_BAD_PARAM && err[0] != '\0' && nf == 0);
    pol_creds_free(creds);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0: {
        char *a = fuzz_cstr(data + 1, size - 1);
        check(a);
        free(a);
        break;
    }
    case 1:
        signed_shape(data + 1, size - 1);
        break;
    case 2:
        mutated(data + 1, size - 1);
        break;
    default:
        registered(data + 1, size - 1);
        break;
    }
    return 0;
}
