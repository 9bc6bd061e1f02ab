/*
 * Secure key release (policy/release.c): release policies from untrusted text
 * (pol_release_policy_normalize), attestation tokens (pol_release_check) and JWKS documents
 * (pol_attestation_trust). At start one attestation authority is trusted, with an EC P-256
 * key made here (kid "a1"), and a valid token of it signed. The first input byte picks the
 * shape:
 *   0: the rest is a release policy: normalized, then a release decided by it for the valid
 *      token;
 *   1: the rest is "POLICY\0CLAIMS": the claims are signed ES256 by the authority, so the
 *      conditions and the runtime key are reached;
 *   2: the valid token with bytes replaced (pairs of position, byte), decided by the
 *      default policy;
 *   3: the rest is a JWKS trusted for a new authority (then dropped with its context).
 * Invariants: a normalized policy is its own normal form, and a refused one says
 * "AKV.SKR.1013: ..."; a release is only granted by a policy that normalizes and, for shape
 * 2, for a token whose signed part is the valid token's (nothing forged); a granted release
 * names an RSA key of 2048 to 4096 bits and says no why, a refused one says why; a JWKS is
 * trusted with KV_OK or refused with KV_ERR_BAD_PARAM and a message.
 */
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>

#include "fuzz_common.h"
#include "kv_buf.h"
#include "pol.h"

#define NOW       1800000000
#define AUTHORITY "https://attest.example/"
#define MALFORMED "AKV.SKR.1013: Malformed Key Release Policy - "

static const char *dir;
static struct pol_ctx *ctx;
static EVP_PKEY *authority_key;
static char *valid_token, *default_policy;

static char *b64(const void *data, size_t len)
{
    char *out = NULL;
    if (kv_b64url_encode(data, len, &out) != KV_OK)
        abort();
    return out;
}

/* @p claims (any bytes) signed ES256 by the authority, kid a1. */
static char *sign(const void *claims, size_t len)
{
    static const char header[] = "{\"alg\":\"ES256\",\"kid\":\"a1\",\"typ\":\"JWT\"}";
    char *h = b64(header, strlen(header)), *c = b64(claims, len);
    size_t n = strlen(h) + 1 + strlen(c);
    char *out = malloc(n + 1 + 100);
    if (out == NULL)
        abort();
    snprintf(out, n + 1, "%s.%s", h, c);
    unsigned char der[128], rs[64];
    size_t der_len = sizeof(der);
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    if (m == NULL || EVP_DigestSignInit(m, NULL, EVP_sha256(), NULL, authority_key) != 1 ||
        EVP_DigestSign(m, der, &der_len, (const unsigned char *)out, n) != 1)
        abort();
    EVP_MD_CTX_free(m);
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (s == NULL)
        abort();
    BN_bn2binpad(ECDSA_SIG_get0_r(s), rs, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(s), rs + 32, 32);
    ECDSA_SIG_free(s);
    char *sig = b64(rs, sizeof(rs));
    snprintf(out + n, 1 + 100, ".%s", sig);
    free(sig);
    free(h);
    free(c);
    return out;
}

static void cleanup(void)
{
    pol_free(ctx);
    EVP_PKEY_free(authority_key);
    free(valid_token);
    free(default_policy);
    fuzz_rmtree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    dir = fuzz_tmpdir("release");
    authority_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    EVP_PKEY *runtime = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    if (authority_key == NULL || runtime == NULL || pol_new(dir, "t", &ctx) != KV_OK)
        abort();
    unsigned char pt[65], nb[256];
    size_t pt_len = 0;
    BIGNUM *n = NULL;
    if (EVP_PKEY_get_octet_string_param(authority_key, "encoded-pub-key", pt, sizeof(pt),
                                        &pt_len) != 1 ||
        pt_len != 65 || EVP_PKEY_get_bn_param(runtime, "n", &n) != 1 ||
        BN_bn2binpad(n, nb, sizeof(nb)) != (int)sizeof(nb))
        abort();
    BN_free(n);
    EVP_PKEY_free(runtime);
    char *x = b64(pt + 1, 32), *y = b64(pt + 33, 32), *n64 = b64(nb, sizeof(nb));
    char jwks[512], err[512], claims[1024];
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a1\",\"x\":\"%s\",\"y\":"
             "\"%s\"}]}",
             x, y);
    if (pol_attestation_trust(ctx, AUTHORITY, jwks, strlen(jwks), err, sizeof(err)) != KV_OK)
        abort();
    snprintf(claims, sizeof(claims),
             "{\"iss\":\"" AUTHORITY "\",\"exp\":%d,\"sdk-test\":true,\"svn\":3,"
             "\"x-ms-isolation-tee\":{\"x-ms-attestation-type\":\"sevsnpvm\"},"
             "\"x-ms-runtime\":{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"k\",\"use\":\"enc\","
             "\"e\":\"AQAB\",\"n\":\"%s\"}]}}",
             NOW + 600, n64);
    free(x);
    free(y);
    free(n64);
    valid_token = sign(claims, strlen(claims));
    static const char policy[] =
        "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"https://attest.example\",\"allOf\":"
        "[{\"claim\":\"sdk-test\",\"equals\":true},{\"anyOf\":[{\"claim\":\"x-ms-isolation-tee.x-"
        "ms-attestation-type\",\"equals\":\"sevsnpvm\"},{\"claim\":\"svn\",\"greater\":2}]}]}]}";
    if (pol_release_policy_normalize(policy, strlen(policy), &default_policy, err, sizeof(err)) !=
        KV_OK)
        abort();
    struct pol_release_target t = {0};
    char why[512];
    if (pol_release_check(ctx, default_policy, strlen(default_policy), valid_token, NOW, &t, why,
                          sizeof(why)) != POL_RELEASE_OK)
        abort();
    pol_release_target_clear(&t);
    atexit(cleanup);
    return 0;
}

/* Decide a release and check what any answer must be. */
static enum pol_release decide(const char *policy, size_t len, const char *token)
{
    struct pol_release_target t = {0};
    char why[512];
    memset(why, 'x', sizeof(why));
    enum pol_release r = pol_release_check(ctx, policy, len, token, NOW, &t, why, sizeof(why));
    FUZZ_ASSERT(memchr(why, '\0', sizeof(why)) != NULL);
    if (r == POL_RELEASE_OK) {
        FUZZ_ASSERT(why[0] == '\0');
        FUZZ_ASSERT(t.n.len >= 256 && t.n.len <= 512 && t.n.data[0] != 0);
        FUZZ_ASSERT(t.e.len > 0 && t.e.len <= 8);
        FUZZ_ASSERT(strlen(t.kid) < POL_RELEASE_KID_MAX);
        /* only a policy that normalizes grants anything */
        char *out = NULL, err[512];
        FUZZ_ASSERT(pol_release_policy_normalize(policy, len, &out, err, sizeof(err)) == KV_OK);
        free(out);
    } else {
        FUZZ_ASSERT(why[0] != '\0');
        FUZZ_ASSERT(t.n.data == NULL && t.e.data == NULL);
    }
    pol_release_target_clear(&t);
    return r;
}

static void policy_text(const uint8_t *data, size_t size)
{
    char *out = NULL, err[512] = "";
    enum kv_status st =
        pol_release_policy_normalize((const char *)data, size, &out, err, sizeof(err));
    if (st == KV_OK) {
        FUZZ_ASSERT(out != NULL);
        char *again = NULL;
        FUZZ_ASSERT(pol_release_policy_normalize(out, strlen(out), &again, err, sizeof(err)) ==
                    KV_OK);
        FUZZ_ASSERT(strcmp(out, again) == 0);
        free(again);
    } else {
        FUZZ_ASSERT(st == KV_ERR_BAD_PARAM && out == NULL);
        FUZZ_ASSERT(strncmp(err, MALFORMED, strlen(MALFORMED)) == 0);
    }
    free(out);
    decide((const char *)data, size, valid_token);
}

static void signed_claims(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t plen = nul ? (size_t)(nul - data) : size;
    const uint8_t *claims = nul ? nul + 1 : data + size;
    size_t clen = nul ? size - plen - 1 : 0;
    char *token = sign(claims, clen);
    decide((const char *)data, plen, token);
    free(token);
}

static void mutated(const uint8_t *data, size_t size)
{
    char *t = strdup(valid_token);
    if (t == NULL)
        abort();
    size_t len = strlen(t);
    for (size_t i = 0; i + 1 < size; i += 2) {
        char c = (char)data[i + 1];
        t[(data[i] * 37u + i * 11u) % len] = c == '\0' ? 'A' : c;
    }
    if (decide(default_policy, strlen(default_policy), t) == POL_RELEASE_OK) {
        size_t signed_len = (size_t)(strrchr(valid_token, '.') - valid_token);
        FUZZ_ASSERT(strncmp(t, valid_token, signed_len) == 0 && t[signed_len] == '.');
    }
    free(t);
}

static void jwks_text(const uint8_t *data, size_t size)
{
    struct pol_ctx *c = NULL;
    char err[512] = "";
    if (pol_new(dir, "t", &c) != KV_OK)
        abort();
    enum kv_status st =
        pol_attestation_trust(c, "https://new.example", (const char *)data, size, err, sizeof(err));
    FUZZ_ASSERT(st == KV_OK ? pol_attestation_authority_at(c, 0) != NULL
                            : st == KV_ERR_BAD_PARAM && err[0] != '\0' &&
                                  pol_attestation_authority_at(c, 0) == NULL);
    pol_free(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    switch (data[0] % 4) {
    case 0:
        policy_text(data + 1, size - 1);
        break;
    case 1:
        signed_claims(data + 1, size - 1);
        break;
    case 2:
        mutated(data + 1, size - 1);
        break;
    default:
        jwks_text(data + 1, size - 1);
        break;
    }
    return 0;
}
