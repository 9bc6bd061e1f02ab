/* Key Vault's wire spellings of key types, curves, operations and algorithms. */
#include "ks.h"

#include <stdatomic.h>
#include <string.h>
#include <time.h>

static const char *const kty_names[3][2] = {
    [KS_KTY_RSA] = {"RSA", "RSA-HSM"},
    [KS_KTY_EC] = {"EC", "EC-HSM"},
    [KS_KTY_OCT] = {"oct", "oct-HSM"},
};

const char *ks_kty_name(enum ks_kty kty, int hsm)
{
    if ((unsigned)kty > KS_KTY_OCT)
        return NULL;
    return kty_names[kty][hsm ? 1 : 0];
}

enum kv_status ks_kty_parse(const char *name, enum ks_kty *kty, int *hsm)
{
    for (int t = KS_KTY_RSA; t <= KS_KTY_OCT; t++) {
        for (int h = 0; h < 2; h++) {
            if (strcmp(name, kty_names[t][h]) == 0) {
                *kty = (enum ks_kty)t;
                *hsm = h;
                return KV_OK;
            }
        }
    }
    return KV_ERR_BAD_KTY;
}

static const char *const crv_names[] = {
    [KS_CRV_NONE] = NULL,      [KS_CRV_P256] = "P-256", [KS_CRV_P256K] = "P-256K",
    [KS_CRV_P384] = "P-384",   [KS_CRV_P521] = "P-521",
};

const char *ks_crv_name(enum ks_crv crv)
{
    if ((unsigned)crv > KS_CRV_P521)
        return NULL;
    return crv_names[crv];
}

enum kv_status ks_crv_parse(const char *name, enum ks_crv *crv)
{
    for (int c = KS_CRV_P256; c <= KS_CRV_P521; c++) {
        if (strcmp(name, crv_names[c]) == 0) {
            *crv = (enum ks_crv)c;
            return KV_OK;
        }
    }
    /* The Python SDK's local EC support also spells secp256k1 this way. */
    if (strcmp(name, "SECP256K1") == 0) {
        *crv = KS_CRV_P256K;
        return KV_OK;
    }
    return KV_ERR_BAD_CURVE;
}

static const char *const op_names[] = {"encrypt",   "decrypt", "sign",   "verify",
                                       "wrapKey",   "unwrapKey", "import", "export"};

const char *ks_keyop_name(unsigned op)
{
    for (unsigned i = 0; i < 8; i++) {
        if (op == (1u << i))
            return op_names[i];
    }
    return NULL;
}

enum kv_status ks_keyop_parse(const char *name, unsigned *op)
{
    for (unsigned i = 0; i < 8; i++) {
        if (strcmp(name, op_names[i]) == 0) {
            *op = 1u << i;
            return KV_OK;
        }
    }
    return KV_ERR_BAD_KEY_OPS;
}

/* The bit index of a single KS_OP_ bit, or -1. */
static int op_index(unsigned op)
{
    for (int i = 0; i < KS_OPS_MAX; i++) {
        if (op == (1u << i))
            return i;
    }
    return -1;
}

void ks_keyops_add(unsigned *ops, uint32_t *order, unsigned op)
{
    int i = op_index(op);
    if (i < 0 || (*ops & op) != 0)
        return;
    /* each new operation is a new bit, so at most KS_OPS_MAX codes: the last fills the word */
    int n = 0;
    while (n < KS_OPS_MAX && ((*order >> (4 * n)) & 0xfu) != 0)
        n++;
    if (n < KS_OPS_MAX)
        *order |= (uint32_t)(i + 1) << (4 * n);
    *ops |= op;
}

size_t ks_keyops_list(unsigned ops, uint32_t order, unsigned out[KS_OPS_MAX])
{
    unsigned done = 0;
    size_t n = 0;
    for (int s = 0; s < KS_OPS_MAX; s++) {
        unsigned code = (order >> (4 * s)) & 0xfu;
        if (code == 0)
            break;
        unsigned op = code <= KS_OPS_MAX ? 1u << (code - 1) : 0;
        if ((ops & op) != 0 && (done & op) == 0) {
            out[n++] = op;
            done |= op;
        }
    }
    for (int i = 0; i < KS_OPS_MAX; i++) {
        unsigned op = 1u << i;
        if ((ops & op) != 0 && (done & op) == 0)
            out[n++] = op;
    }
    return n;
}

static const char *const alg_names[KS_ALG_COUNT] = {
    [KS_ALG_NONE] = NULL,
    [KS_ALG_RSA_OAEP] = "RSA-OAEP",
    [KS_ALG_RSA_OAEP_256] = "RSA-OAEP-256",
    [KS_ALG_RSA1_5] = "RSA1_5",
    [KS_ALG_A128GCM] = "A128GCM",
    [KS_ALG_A192GCM] = "A192GCM",
    [KS_ALG_A256GCM] = "A256GCM",
    [KS_ALG_A128CBC] = "A128CBC",
    [KS_ALG_A192CBC] = "A192CBC",
    [KS_ALG_A256CBC] = "A256CBC",
    [KS_ALG_A128CBCPAD] = "A128CBCPAD",
    [KS_ALG_A192CBCPAD] = "A192CBCPAD",
    [KS_ALG_A256CBCPAD] = "A256CBCPAD",
    [KS_ALG_A128KW] = "A128KW",
    [KS_ALG_A192KW] = "A192KW",
    [KS_ALG_A256KW] = "A256KW",
    [KS_ALG_CKM_AES_KEY_WRAP] = "CKM_AES_KEY_WRAP",
    [KS_ALG_CKM_AES_KEY_WRAP_PAD] = "CKM_AES_KEY_WRAP_PAD",
    [KS_ALG_PS256] = "PS256",
    [KS_ALG_PS384] = "PS384",
    [KS_ALG_PS512] = "PS512",
    [KS_ALG_RS256] = "RS256",
    [KS_ALG_RS384] = "RS384",
    [KS_ALG_RS512] = "RS512",
    [KS_ALG_ES256] = "ES256",
    [KS_ALG_ES256K] = "ES256K",
    [KS_ALG_ES384] = "ES384",
    [KS_ALG_ES512] = "ES512",
    [KS_ALG_HS256] = "HS256",
    [KS_ALG_HS384] = "HS384",
    [KS_ALG_HS512] = "HS512",
};

const char *ks_alg_name(enum ks_alg alg)
{
    if ((unsigned)alg >= KS_ALG_COUNT)
        return NULL;
    return alg_names[alg];
}

enum kv_status ks_alg_parse(const char *name, enum ks_alg *alg)
{
    for (int a = KS_ALG_NONE + 1; a < KS_ALG_COUNT; a++) {
        if (strcmp(name, alg_names[a]) == 0) {
            *alg = (enum ks_alg)a;
            return KV_OK;
        }
    }
    return KV_ERR_BAD_ALG;
}

static int name_chars_valid(const char *name, size_t max, int upper_ok)
{
    size_t n = 0;
    for (const char *p = name; *p; p++, n++) {
        char c = *p;
        int ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' ||
                 (upper_ok && c >= 'A' && c <= 'Z');
        if (!ok || n >= max)
            return 0;
    }
    return n > 0;
}

int ks_key_name_valid(const char *name)
{
    return name_chars_valid(name, KS_NAME_MAX, 1);
}

int ks_vault_name_valid(const char *name)
{
    return name_chars_valid(name, KS_VAULT_NAME_MAX, 0);
}

/* ---- the clock ---------------------------------------------------------------- */

static _Atomic int64_t clock_offset;

int64_t ks_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec + atomic_load(&clock_offset);
}

void ks_clock_advance(int64_t seconds)
{
    atomic_fetch_add(&clock_offset, seconds);
}

int64_t ks_clock_offset(void)
{
    return atomic_load(&clock_offset);
}

static const char *const release_encs[] = {
    [KS_RELEASE_CKM_RSA_AES_KEY_WRAP] = "CKM_RSA_AES_KEY_WRAP",
    [KS_RELEASE_RSA_AES_KEY_WRAP_256] = "RSA_AES_KEY_WRAP_256",
    [KS_RELEASE_RSA_AES_KEY_WRAP_384] = "RSA_AES_KEY_WRAP_384",
};

const char *ks_release_enc_name(enum ks_release_enc enc)
{
    return (unsigned)enc < sizeof(release_encs) / sizeof(release_encs[0]) ? release_encs[enc]
                                                                          : NULL;
}

enum kv_status ks_release_enc_parse(const char *name, enum ks_release_enc *out)
{
    for (size_t i = 0; name != NULL && i < sizeof(release_encs) / sizeof(release_encs[0]); i++) {
        if (strcmp(name, release_encs[i]) == 0) {
            *out = (enum ks_release_enc)i;
            return KV_OK;
        }
    }
    return KV_ERR_BAD_PARAM;
}
