/**
 * @file crypto.c
 * @brief Key material and key operations over OpenSSL 3 EVP (see crypto.h).
 *
 * RSA and EC keys are provider EVP_PKEYs; oct keys are raw bytes. Every
 * operation builds its own contexts, so a material is never written after it
 * is built. Scratch buffers that held plaintext or private material are wiped
 * with sodium_memzero() (through kv_buf_wipe()) or OPENSSL_cleanse().
 *
 * OpenSSL's own scratch copies are wiped too: its DER decoders and encoders
 * (d2i_AutoPrivateKey, EVP_PKEY2PKCS8) and its key checks free buffers that
 * held the private key with a plain OPENSSL_free. So every block OpenSSL frees
 * is zeroed first (wipe_free below), through CRYPTO_set_mem_functions(),
 * installed when the program loads, before OpenSSL allocates anything.
 */
#include "crypto.h"

#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#define OCT_KEY_MAX   32                     /**< longest oct key: AES-256 */
#define GCM_IV_LEN    12                     /**< the IV AES-GCM encrypt makes */
#define GCM_TAG_LEN   16                     /**< the AES-GCM tag */
#define AES_BLOCK_LEN 16                     /**< AES block, and the AES-CBC IV */
#define KW_BLOCK_LEN  8                      /**< the RFC 3394 / RFC 5649 semiblock */
#define EC_FIELD_MAX  66                     /**< P-521 field size in bytes */
#define EC_POINT_MAX  (1 + 2 * EC_FIELD_MAX) /**< an uncompressed SEC1 point */
/** First byte of a serialised EC key in kvmock's own form (PKCS#8 DER starts 0x30). */
#define EC_SERIAL_TAG       0x01
#define RSA_JWK_MAX         513 /**< longest RSA JWK part: a 4096-bit modulus and a zero */
#define OAEP_OVERHEAD(hlen) (2 * (hlen) + 2)
#define PKCS1_OVERHEAD      11
/** Largest input any operation takes: the EVP cipher calls count in int. */
#define OP_INPUT_MAX ((size_t)INT_MAX - 64)

/** An EC curve: its Key Vault name, its OpenSSL group and sizes. */
struct curve {
    enum ks_crv crv;
    const char *group; /**< OpenSSL group name */
    int nid;
    size_t field_len; /**< bytes of a coordinate and of each half of a signature */
    int bits;
    unsigned char code; /**< in serialised keys: never change */
};

static const struct curve curves[] = {
    {KS_CRV_P256, "prime256v1", NID_X9_62_prime256v1, 32, 256, 1},
    {KS_CRV_P256K, "secp256k1", NID_secp256k1, 32, 256, 2},
    {KS_CRV_P384, "secp384r1", NID_secp384r1, 48, 384, 3},
    {KS_CRV_P521, "secp521r1", NID_secp521r1, 66, 521, 4},
};

/* Contexts set up for one algorithm and operation, kept for the next call:
 * creating and configuring an RSA EVP_PKEY_CTX (provider lookups, padding and
 * digest settings) costs about an eighth of an RSA public operation, and an
 * AES context's (key schedule, provider calls: about 2.5 k instructions) a
 * quarter of an A256KW wrap's own work. A material's pool holds contexts of
 * one kind: EVP_PKEY_CTX for RSA, EVP_CIPHER_CTX (AES-ECB, for key wrap) for oct. */
#define CTX_POOL 8
struct ctx_pool {
    pthread_mutex_t mu;
    size_t n;
    struct {
        const void *alg;             /**< what it was set up for: RSA's alg_info, AES's cipher */
        int (*init)(EVP_PKEY_CTX *); /**< RSA: the operation */
        int enc;                     /**< AES: encrypting or decrypting */
        void *ctx;
    } e[CTX_POOL];
};

struct ks_material {
    enum ks_kty kty;
    struct ctx_pool *pool;             /**< RSA and oct: idle contexts (NULL: none kept) */
    EVP_PKEY *pkey;                    /**< RSA, and EC keys that were loaded or imported */
    const struct curve *curve;         /**< EC */
    unsigned char point[EC_POINT_MAX]; /**< EC: the public point, 04 || X || Y, kept
                                          because OpenSSL computes it on every request */
    unsigned char d[EC_FIELD_MAX];     /**< EC: the private scalar, field_len bytes big-endian */
    size_t oct_len;                    /**< oct: 16, 24 or 32 */
    unsigned char oct[OCT_KEY_MAX];    /**< oct key bytes */
};

/** What an algorithm is, as far as dispatch is concerned. */
enum alg_kind {
    KIND_NONE = 0,
    KIND_RSA_ENC, /**< RSA encrypt/decrypt and wrap/unwrap */
    KIND_RSA_SIG, /**< RSASSA-PKCS1-v1_5 and RSASSA-PSS over a digest */
    KIND_ECDSA,   /**< ECDSA over a digest, raw R||S */
    KIND_HMAC,    /**< HMAC over the data */
    KIND_GCM,
    KIND_CBC,
    KIND_CBCPAD,
    KIND_KW,  /**< RFC 3394 */
    KIND_KWP, /**< RFC 5649 */
};

struct alg_info {
    enum alg_kind kind;
    const EVP_MD *(*md)(void); /**< OAEP hash, signature hash or HMAC hash */
    int rsa_pad;               /**< RSA padding mode */
    size_t key_len;            /**< AES: the oct key length it needs; 0 = the key's own */
    enum ks_crv crv;           /**< ECDSA: the curve it needs */
};

static const struct alg_info alg_table[KS_ALG_COUNT] = {
    [KS_ALG_RSA_OAEP] = {KIND_RSA_ENC, EVP_sha1, RSA_PKCS1_OAEP_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_RSA_OAEP_256] = {KIND_RSA_ENC, EVP_sha256, RSA_PKCS1_OAEP_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_RSA1_5] = {KIND_RSA_ENC, NULL, RSA_PKCS1_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_A128GCM] = {KIND_GCM, NULL, 0, 16, KS_CRV_NONE},
    [KS_ALG_A192GCM] = {KIND_GCM, NULL, 0, 24, KS_CRV_NONE},
    [KS_ALG_A256GCM] = {KIND_GCM, NULL, 0, 32, KS_CRV_NONE},
    [KS_ALG_A128CBC] = {KIND_CBC, NULL, 0, 16, KS_CRV_NONE},
    [KS_ALG_A192CBC] = {KIND_CBC, NULL, 0, 24, KS_CRV_NONE},
    [KS_ALG_A256CBC] = {KIND_CBC, NULL, 0, 32, KS_CRV_NONE},
    [KS_ALG_A128CBCPAD] = {KIND_CBCPAD, NULL, 0, 16, KS_CRV_NONE},
    [KS_ALG_A192CBCPAD] = {KIND_CBCPAD, NULL, 0, 24, KS_CRV_NONE},
    [KS_ALG_A256CBCPAD] = {KIND_CBCPAD, NULL, 0, 32, KS_CRV_NONE},
    [KS_ALG_A128KW] = {KIND_KW, NULL, 0, 16, KS_CRV_NONE},
    [KS_ALG_A192KW] = {KIND_KW, NULL, 0, 24, KS_CRV_NONE},
    [KS_ALG_A256KW] = {KIND_KW, NULL, 0, 32, KS_CRV_NONE},
    [KS_ALG_CKM_AES_KEY_WRAP] = {KIND_KW, NULL, 0, 0, KS_CRV_NONE},
    [KS_ALG_CKM_AES_KEY_WRAP_PAD] = {KIND_KWP, NULL, 0, 0, KS_CRV_NONE},
    [KS_ALG_PS256] = {KIND_RSA_SIG, EVP_sha256, RSA_PKCS1_PSS_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_PS384] = {KIND_RSA_SIG, EVP_sha384, RSA_PKCS1_PSS_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_PS512] = {KIND_RSA_SIG, EVP_sha512, RSA_PKCS1_PSS_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_RS256] = {KIND_RSA_SIG, EVP_sha256, RSA_PKCS1_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_RS384] = {KIND_RSA_SIG, EVP_sha384, RSA_PKCS1_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_RS512] = {KIND_RSA_SIG, EVP_sha512, RSA_PKCS1_PADDING, 0, KS_CRV_NONE},
    [KS_ALG_ES256] = {KIND_ECDSA, EVP_sha256, 0, 0, KS_CRV_P256},
    [KS_ALG_ES256K] = {KIND_ECDSA, EVP_sha256, 0, 0, KS_CRV_P256K},
    [KS_ALG_ES384] = {KIND_ECDSA, EVP_sha384, 0, 0, KS_CRV_P384},
    [KS_ALG_ES512] = {KIND_ECDSA, EVP_sha512, 0, 0, KS_CRV_P521},
    [KS_ALG_HS256] = {KIND_HMAC, EVP_sha256, 0, 0, KS_CRV_NONE},
    [KS_ALG_HS384] = {KIND_HMAC, EVP_sha384, 0, 0, KS_CRV_NONE},
    [KS_ALG_HS512] = {KIND_HMAC, EVP_sha512, 0, 0, KS_CRV_NONE},
};

/* ---- OpenSSL's allocator: every block is wiped when it is freed --------------- */

static void *wipe_malloc(size_t n, const char *file, int line)
{
    (void)file;
    (void)line;
    return n != 0 ? malloc(n) : NULL; /* as CRYPTO_malloc: NULL for 0 bytes */
}

static void wipe_free(void *p, const char *file, int line)
{
    (void)file;
    (void)line;
    if (p == NULL)
        return;
    sodium_memzero(p, malloc_usable_size(p));
    free(p);
}

/* Never realloc(): a block that moves would leave its old bytes behind. */
static void *wipe_realloc(void *p, size_t n, const char *file, int line)
{
    if (p == NULL)
        return wipe_malloc(n, file, line);
    if (n == 0) {
        wipe_free(p, file, line);
        return NULL;
    }
    size_t old = malloc_usable_size(p);
    if (n <= old)
        return p; /* the block is large enough already */
    void *q = malloc(n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old);
    wipe_free(p, file, line);
    return q;
}

/* Before main(): CRYPTO_set_mem_functions() only works before OpenSSL's first
 * allocation. A program that installs its own functions later (the unit tests'
 * counting allocator) replaces these. */
__attribute__((constructor)) static void install_wiping_allocator(void)
{
    (void)CRYPTO_set_mem_functions(wipe_malloc, wipe_realloc, wipe_free);
}

/* ---- small helpers ---------------------------------------------------------- */

/**
 * Whether OpenSSL's error queue holds an allocation failure, so that a failed
 * call is the server's trouble (KV_ERR_NOMEM) and not a verdict on the input
 * (a bad JWK, a ciphertext that does not decrypt). Empties the queue.
 */
static int openssl_oom(void)
{
    int oom = 0;
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        if (ERR_GET_REASON(e) == ERR_R_MALLOC_FAILURE)
            oom = 1;
    }
    return oom;
}

/**
 * Whether a freshly built key has its size and bits: OpenSSL caches them when
 * the key is made, and a cache that failed to fill (out of memory) leaves a key
 * whose every later operation is refused for a wrong input length.
 */
static int pkey_usable(const EVP_PKEY *pkey)
{
    return EVP_PKEY_get_size(pkey) > 0 && EVP_PKEY_get_bits(pkey) > 0;
}

/** A non-NULL pointer for OpenSSL calls that are given zero bytes. */
static const unsigned char *bytes_of(const struct kv_buf *b)
{
    static const unsigned char empty[1];
    return b->data != NULL ? b->data : empty;
}

static const struct curve *curve_by_crv(enum ks_crv crv)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (curves[i].crv == crv)
            return &curves[i];
    return NULL;
}

/** The curve of an EC key, from its OpenSSL group name; NULL if not one of ours. */
static const struct curve *curve_of(const EVP_PKEY *pkey)
{
    char name[80];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1)
        return NULL;
    int nid = OBJ_txt2nid(name);
    if (nid == NID_undef)
        nid = EC_curve_nist2nid(name);
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++)
        if (curves[i].nid == nid)
            return &curves[i];
    return NULL;
}

/**
 * Move the first @p used bytes of @p scratch to @p out, leaving @p out exactly
 * @p used bytes long so that a later kv_buf_wipe() covers every byte. The
 * scratch buffer is wiped and reset either way.
 */
static enum kv_status take(struct kv_buf *scratch, size_t used, struct kv_buf *out)
{
    if (used == scratch->len) {
        *out = *scratch;
        *scratch = (struct kv_buf){0};
        return KV_OK;
    }
    enum kv_status st = kv_buf_dup(scratch->data, used, out);
    kv_buf_wipe(scratch);
    return st;
}

static struct ks_material *material_new(enum ks_kty kty)
{
    struct ks_material *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->kty = kty;
    if (kty == KS_KTY_RSA || kty == KS_KTY_OCT) {
        /* without a pool every call sets up its own context, which works too */
        m->pool = calloc(1, sizeof(*m->pool));
        if (m->pool != NULL)
            pthread_mutex_init(&m->pool->mu, NULL);
    }
    return m;
}

/** A BIGNUM from big-endian bytes; @p secret ones live in secure memory. */
static BIGNUM *bn_from(const struct kv_buf *b, int secret)
{
    BIGNUM *bn = secret ? BN_secure_new() : BN_new();
    if (bn == NULL)
        return NULL;
    if (BN_bin2bn(bytes_of(b), (int)b->len, bn) == NULL) {
        BN_clear_free(bn);
        return NULL;
    }
    return bn;
}

/** Keep the public point of an EC key (m->point), uncompressed: 04 || X || Y. */
static enum kv_status keep_point(struct ks_material *m)
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(m->pkey, OSSL_PKEY_PARAM_PUB_KEY, m->point,
                                        sizeof(m->point), &len) != 1 ||
        len != 1 + 2 * m->curve->field_len || m->point[0] != 0x04)
        return openssl_oom() ? KV_ERR_NOMEM : KV_ERR_CRYPTO;
    return KV_OK;
}

/** Keep the private scalar of a loaded EC key (m->d), left-padded to the field size. */
static enum kv_status keep_scalar(struct ks_material *m)
{
    BIGNUM *d = NULL;
    int fl = (int)m->curve->field_len;
    enum kv_status st = KV_OK;
    if (EVP_PKEY_get_bn_param(m->pkey, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1)
        st = openssl_oom() ? KV_ERR_NOMEM : KV_ERR_CRYPTO;
    else if (BN_bn2binpad(d, m->d, fl) != fl)
        st = KV_ERR_CRYPTO;
    BN_clear_free(d);
    return st;
}

/* ---- generation ------------------------------------------------------------- */

static enum kv_status generate_rsa(int bits, unsigned long exponent, struct ks_material **out)
{
    if (bits != 2048 && bits != 3072 && bits != 4096)
        return KV_ERR_BAD_KEY_SIZE;
    if (exponent != 3 && exponent != 65537)
        return KV_ERR_BAD_EXPONENT;

    enum kv_status st = KV_ERR_NOMEM;
    EVP_PKEY_CTX *ctx = NULL;
    BIGNUM *e = NULL;
    struct ks_material *m = material_new(KS_KTY_RSA);
    if (m == NULL)
        goto out;
    e = BN_new();
    if (e == NULL || BN_set_word(e, exponent) != 1)
        goto out;
    st = KV_ERR_CRYPTO;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (ctx == NULL || EVP_PKEY_keygen_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, bits) <= 0 ||
        EVP_PKEY_CTX_set1_rsa_keygen_pubexp(ctx, e) <= 0 || EVP_PKEY_generate(ctx, &m->pkey) <= 0 ||
        !pkey_usable(m->pkey))
        goto out;
    *out = m;
    m = NULL;
    st = KV_OK;
out:
    ks_material_free(m);
    EVP_PKEY_CTX_free(ctx);
    BN_free(e);
    return st;
}

/*
 * Each curve's group, made on first use and kept for the process. Key
 * generation reads it from many threads at once, which OpenSSL allows for a
 * group nobody changes.
 */
static EC_GROUP *curve_groups[sizeof(curves) / sizeof(curves[0])];
static pthread_mutex_t curve_groups_mu = PTHREAD_MUTEX_INITIALIZER;

static const EC_GROUP *group_of(const struct curve *c)
{
    size_t i = (size_t)(c - curves);
    pthread_mutex_lock(&curve_groups_mu);
    if (curve_groups[i] == NULL)
        curve_groups[i] = EC_GROUP_new_by_curve_name_ex(NULL, NULL, c->nid);
    const EC_GROUP *group = curve_groups[i];
    pthread_mutex_unlock(&curve_groups_mu);
    return group;
}

/*
 * A new EC key is its private scalar d, drawn uniformly from [1, n-1] by
 * OpenSSL's private-key generator, and its public point d*G by OpenSSL's
 * constant-time fixed-base multiplication: the two steps of OpenSSL's own EC
 * key generation (and of FIPS 186-4 B.4.2), called directly. A new key is
 * sealed and stored, never used for an operation as it is, so no EVP_PKEY is
 * built for it: making one and reading the scalar and point back out of it
 * cost as much as the multiplication. An operation on such a material builds
 * its EVP_PKEY then (ec_ctx).
 */
static enum kv_status generate_ec(enum ks_crv crv, struct ks_material **out)
{
    const struct curve *c = curve_by_crv(crv);
    if (c == NULL)
        return KV_ERR_BAD_CURVE;

    enum kv_status st = KV_ERR_NOMEM;
    size_t fl = c->field_len;
    const EC_GROUP *group = group_of(c);
    BN_CTX *bnctx = BN_CTX_secure_new();
    BIGNUM *d = BN_secure_new();
    EC_POINT *pub = group != NULL ? EC_POINT_new(group) : NULL;
    struct ks_material *m = material_new(KS_KTY_EC);
    if (group == NULL || bnctx == NULL || d == NULL || pub == NULL || m == NULL)
        goto out;
    m->curve = c;
    st = KV_ERR_CRYPTO;
    do {
        if (BN_priv_rand_range_ex(d, EC_GROUP_get0_order(group), 0, bnctx) != 1)
            goto out;
    } while (BN_is_zero(d));
    BN_set_flags(d, BN_FLG_CONSTTIME);
    if (EC_POINT_mul(group, pub, d, NULL, NULL, bnctx) != 1 ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, m->point, sizeof(m->point),
                           bnctx) != 1 + 2 * fl ||
        BN_bn2binpad(d, m->d, (int)fl) != (int)fl)
        goto out;
    *out = m;
    m = NULL;
    st = KV_OK;
out:
    if (st != KV_OK && openssl_oom())
        st = KV_ERR_NOMEM;
    ks_material_free(m);
    EC_POINT_free(pub);
    BN_clear_free(d);
    BN_CTX_free(bnctx);
    return st;
}

static enum kv_status generate_oct(int bits, struct ks_material **out)
{
    if (bits != 128 && bits != 192 && bits != 256)
        return KV_ERR_BAD_KEY_SIZE;
    struct ks_material *m = material_new(KS_KTY_OCT);
    if (m == NULL)
        return KV_ERR_NOMEM;
    m->oct_len = (size_t)bits / 8;
    randombytes_buf(m->oct, m->oct_len);
    *out = m;
    return KV_OK;
}

enum kv_status ks_material_generate(enum ks_kty kty, int size_bits, unsigned long exponent,
                                    enum ks_crv crv, struct ks_material **out)
{
    enum kv_status st;
    switch (kty) {
    case KS_KTY_RSA:
        st = generate_rsa(size_bits, exponent, out);
        break;
    case KS_KTY_EC:
        st = generate_ec(crv, out);
        break;
    case KS_KTY_OCT:
        st = generate_oct(size_bits, out);
        break;
    default:
        st = KV_ERR_BAD_KTY;
        break;
    }
    if (st != KV_OK)
        ERR_clear_error();
    return st;
}

/* ---- JWK import ------------------------------------------------------------- */

/**
 * Build an EVP_PKEY key pair of @p type from @p params and run OpenSSL's full
 * key check on it (RSA: primes, n = p*q, d, CRT values; EC: point on the curve,
 * private scalar in range, public = d*G).
 */
/*
 * A key of @p type ("RSA", "EC") from @p params, with @p selection (EVP_PKEY_KEYPAIR,
 * EVP_PKEY_PUBLIC_KEY). @return KV_OK, KV_ERR_NOMEM, KV_ERR_CRYPTO (OpenSSL could not set
 * up the import) or KV_ERR_BAD_PARAM (OpenSSL refused the parts).
 */
static enum kv_status pkey_fromdata(const char *type, int selection, const OSSL_PARAM *params,
                                    EVP_PKEY **out)
{
    enum kv_status st = KV_ERR_CRYPTO;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (ctx != NULL && EVP_PKEY_fromdata_init(ctx) > 0)
        st = EVP_PKEY_fromdata(ctx, out, selection, (OSSL_PARAM *)params) > 0 ? KV_OK
             : openssl_oom()                                                  ? KV_ERR_NOMEM
                                                                              : KV_ERR_BAD_PARAM;
    EVP_PKEY_CTX_free(ctx);
    return st;
}

static enum kv_status pkey_from_params_once(const char *type, const OSSL_PARAM *params,
                                            EVP_PKEY **out)
{
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *check = NULL;
    enum kv_status st = pkey_fromdata(type, EVP_PKEY_KEYPAIR, params, &pkey);
    if (st != KV_OK) {
        st = st == KV_ERR_BAD_PARAM ? KV_ERR_BAD_JWK : st;
        goto out;
    }
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (check == NULL) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    if (EVP_PKEY_check(check) != 1) {
        st = openssl_oom() ? KV_ERR_NOMEM : KV_ERR_BAD_JWK;
        goto out;
    }
    if (!pkey_usable(pkey)) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    *out = pkey;
    pkey = NULL;
    st = KV_OK;
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_free(pkey);
    return st;
}

/*
 * OpenSSL does not always say that it ran out of memory: its RSA check reports
 * a primality test that could not allocate as "p not prime", and some import
 * and point checks fail with nothing queued. A key refused as bad is therefore
 * built and checked a second time before it is called bad.
 */
static enum kv_status pkey_from_params(const char *type, const OSSL_PARAM *params, EVP_PKEY **out)
{
    enum kv_status st = pkey_from_params_once(type, params, out);
    if (st == KV_ERR_BAD_JWK)
        st = pkey_from_params_once(type, params, out);
    return st;
}

static enum kv_status jwk_rsa(const struct ks_jwk *jwk, struct ks_material **out)
{
    enum { N_PARTS = 8 };
    const struct kv_buf *parts[N_PARTS] = {&jwk->n, &jwk->e,  &jwk->d,  &jwk->p,
                                           &jwk->q, &jwk->dp, &jwk->dq, &jwk->qi};
    static const char *const names[N_PARTS] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    for (int i = 0; i < N_PARTS; i++)
        if (parts[i]->len == 0)
            return KV_ERR_BAD_JWK;
    if (jwk->n.len > RSA_JWK_MAX)
        return KV_ERR_BAD_KEY_SIZE;
    /* No part is longer than the modulus, which bounds the work of the key check. */
    for (int i = 1; i < N_PARTS; i++)
        if (parts[i]->len > jwk->n.len)
            return KV_ERR_BAD_JWK;

    enum kv_status st = KV_ERR_NOMEM;
    BIGNUM *bn[N_PARTS] = {0};
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    struct ks_material *m = material_new(KS_KTY_RSA);
    if (m == NULL)
        goto out;
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL)
        goto out;
    for (int i = 0; i < N_PARTS; i++) {
        /* n and e are public; everything else lives in secure memory. */
        bn[i] = bn_from(parts[i], i >= 2);
        if (bn[i] == NULL || OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i]) != 1)
            goto out;
    }
    /* Refuse other sizes before the (costly) consistency check. */
    int bits = BN_num_bits(bn[0]);
    if (bits != 2048 && bits != 3072 && bits != 4096) {
        st = KV_ERR_BAD_KEY_SIZE;
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL)
        goto out;
    st = pkey_from_params("RSA", params, &m->pkey);
    if (st != KV_OK)
        goto out;
    *out = m;
    m = NULL;
    st = KV_OK;
out:
    OSSL_PARAM_free(params); /* clears the secure part */
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < N_PARTS; i++)
        BN_clear_free(bn[i]);
    ks_material_free(m);
    return st;
}

/**
 * The EVP_PKEY of an EC key pair on @p c from its private scalar (@p d_len
 * big-endian bytes) and its public point (uncompressed SEC1, 1 + 2 * field_len
 * bytes). A key from outside (@p check) gets OpenSSL's full key check; one
 * kvmock made or serialised itself only has to build.
 */
static enum kv_status ec_pkey(const struct curve *c, const unsigned char *d, size_t d_len,
                              const unsigned char *point, int check, EVP_PKEY **out)
{
    enum kv_status st = KV_ERR_NOMEM;
    struct kv_buf dbuf = {(unsigned char *)d, d_len};
    BIGNUM *bn = bn_from(&dbuf, 1);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pkey = NULL;
    if (bn == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, c->group, 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
                                         1 + 2 * c->field_len) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, bn) != 1)
        goto out;
    params = OSSL_PARAM_BLD_to_param(bld);
    if (params == NULL)
        goto out;
    if (check) {
        st = pkey_from_params("EC", params, out);
        goto out;
    }
    st = pkey_fromdata("EC", EVP_PKEY_KEYPAIR, params, &pkey);
    if (st == KV_OK && !pkey_usable(pkey))
        st = openssl_oom() ? KV_ERR_NOMEM : KV_ERR_CRYPTO;
    if (st != KV_OK) {
        st = st == KV_ERR_BAD_PARAM ? KV_ERR_CRYPTO : st; /* its own store's parts */
        goto out;
    }
    *out = pkey;
    pkey = NULL;
out:
    EVP_PKEY_free(pkey);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(bn);
    return st;
}

/** An EC material on @p c from its parts (see ec_pkey()), with its EVP_PKEY. */
static enum kv_status ec_from_parts(const struct curve *c, const unsigned char *d, size_t d_len,
                                    const unsigned char *point, int check, struct ks_material **out)
{
    size_t fl = c->field_len;
    if (d_len > fl)
        return check ? KV_ERR_BAD_JWK : KV_ERR_CRYPTO;
    struct ks_material *m = material_new(KS_KTY_EC);
    if (m == NULL)
        return KV_ERR_NOMEM;
    m->curve = c;
    memcpy(m->point, point, 1 + 2 * fl);
    memcpy(m->d + (fl - d_len), d, d_len);
    enum kv_status st = ec_pkey(c, d, d_len, point, check, &m->pkey);
    if (st != KV_OK) {
        ks_material_free(m);
        return st;
    }
    *out = m;
    return KV_OK;
}

static enum kv_status jwk_ec(const struct ks_jwk *jwk, struct ks_material **out)
{
    if (jwk->crv == KS_CRV_NONE)
        return KV_ERR_BAD_JWK;
    const struct curve *c = curve_by_crv(jwk->crv);
    if (c == NULL)
        return KV_ERR_BAD_CURVE;
    size_t fl = c->field_len;
    if (jwk->x.len == 0 || jwk->y.len == 0 || jwk->d.len == 0 || jwk->x.len > fl ||
        jwk->y.len > fl || jwk->d.len > fl)
        return KV_ERR_BAD_JWK;

    /* The public point as an uncompressed SEC1 octet string: 04 || X || Y. */
    unsigned char point[EC_POINT_MAX] = {0};
    point[0] = 0x04;
    memcpy(point + 1 + (fl - jwk->x.len), jwk->x.data, jwk->x.len);
    memcpy(point + 1 + fl + (fl - jwk->y.len), jwk->y.data, jwk->y.len);
    return ec_from_parts(c, jwk->d.data, jwk->d.len, point, 1, out);
}

static enum kv_status jwk_oct(const struct ks_jwk *jwk, struct ks_material **out)
{
    if (jwk->k.len == 0)
        return KV_ERR_BAD_JWK;
    if (jwk->k.len != 16 && jwk->k.len != 24 && jwk->k.len != 32)
        return KV_ERR_BAD_KEY_SIZE;
    struct ks_material *m = material_new(KS_KTY_OCT);
    if (m == NULL)
        return KV_ERR_NOMEM;
    m->oct_len = jwk->k.len;
    memcpy(m->oct, jwk->k.data, jwk->k.len);
    *out = m;
    return KV_OK;
}

enum kv_status ks_material_from_jwk(const struct ks_jwk *jwk, struct ks_material **out)
{
    enum kv_status st;
    switch (jwk->kty) {
    case KS_KTY_RSA:
        st = jwk_rsa(jwk, out);
        break;
    case KS_KTY_EC:
        st = jwk_ec(jwk, out);
        break;
    case KS_KTY_OCT:
        st = jwk_oct(jwk, out);
        break;
    default:
        st = KV_ERR_BAD_JWK;
        break;
    }
    if (st != KV_OK)
        ERR_clear_error();
    return st;
}

/* ---- serialisation ---------------------------------------------------------- */

/*
 * An EC key in kvmock's own form: EC_SERIAL_TAG, the curve's code, the private
 * scalar (field_len bytes) and the public point (04 || X || Y). OpenSSL 3's
 * PKCS#8 encoder and decoder cost about 80 and 450 microseconds a key (they
 * look up their implementations on every call); this form costs a few.
 * Keys stored as PKCS#8 by earlier versions still load (ks_material_deserialize).
 */
static enum kv_status ec_serialize(const struct ks_material *m, struct kv_buf *out)
{
    size_t fl = m->curve->field_len;
    struct kv_buf b = {0};
    enum kv_status st = kv_buf_alloc(2 + fl + 1 + 2 * fl, &b);
    if (st != KV_OK)
        return st;
    b.data[0] = EC_SERIAL_TAG;
    b.data[1] = m->curve->code;
    memcpy(b.data + 2, m->d, fl);
    memcpy(b.data + 2 + fl, m->point, 1 + 2 * fl);
    *out = b;
    return KV_OK;
}

static enum kv_status ec_deserialize(const unsigned char *bytes, size_t len,
                                     struct ks_material **out)
{
    const struct curve *c = NULL;
    for (size_t i = 0; len >= 2 && i < sizeof(curves) / sizeof(curves[0]); i++)
        if (curves[i].code == bytes[1])
            c = &curves[i];
    if (c == NULL || len != 2 + c->field_len + 1 + 2 * c->field_len)
        return KV_ERR_CRYPTO;
    const unsigned char *point = bytes + 2 + c->field_len;
    if (point[0] != 0x04)
        return KV_ERR_CRYPTO;
    enum kv_status st = ec_from_parts(c, bytes + 2, c->field_len, point, 0, out);
    if (st != KV_OK)
        ERR_clear_error();
    return st;
}

enum kv_status ks_material_serialize(const struct ks_material *m, struct kv_buf *out)
{
    if (m->kty == KS_KTY_OCT)
        return kv_buf_dup(m->oct, m->oct_len, out);
    if (m->kty == KS_KTY_EC)
        return ec_serialize(m, out);

    enum kv_status st = KV_ERR_CRYPTO;
    struct kv_buf der = {0};
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(m->pkey);
    if (p8 == NULL)
        goto out;
    int len = i2d_PKCS8_PRIV_KEY_INFO(p8, NULL);
    if (len <= 0)
        goto out;
    st = kv_buf_alloc((size_t)len, &der);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    unsigned char *p = der.data;
    if (i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != len)
        goto out;
    *out = der;
    der = (struct kv_buf){0};
    st = KV_OK;
out:
    kv_buf_wipe(&der);
    PKCS8_PRIV_KEY_INFO_free(p8); /* clears the private key octets */
    if (st != KV_OK)
        ERR_clear_error();
    return st;
}

enum kv_status ks_material_deserialize(enum ks_kty kty, const unsigned char *bytes, size_t len,
                                       struct ks_material **out)
{
    if (kty == KS_KTY_EC && len > 0 && bytes[0] == EC_SERIAL_TAG)
        return ec_deserialize(bytes, len, out);
    struct ks_material *m = material_new(kty);
    if (m == NULL)
        return KV_ERR_NOMEM;

    enum kv_status st = KV_ERR_CRYPTO;
    if (kty == KS_KTY_OCT) {
        if (len != 16 && len != 24 && len != 32)
            goto out;
        m->oct_len = len;
        memcpy(m->oct, bytes, len);
    } else if (kty == KS_KTY_RSA || kty == KS_KTY_EC) {
        if (len == 0 || len > LONG_MAX)
            goto out;
        const unsigned char *p = bytes;
        m->pkey = d2i_AutoPrivateKey(NULL, &p, (long)len);
        if (m->pkey == NULL || p != bytes + len || !pkey_usable(m->pkey))
            goto out;
        if (kty == KS_KTY_RSA && !EVP_PKEY_is_a(m->pkey, "RSA"))
            goto out;
        if (kty == KS_KTY_EC) {
            if (!EVP_PKEY_is_a(m->pkey, "EC"))
                goto out;
            m->curve = curve_of(m->pkey);
            if (m->curve == NULL || keep_point(m) != KV_OK || keep_scalar(m) != KV_OK)
                goto out;
        }
    } else {
        goto out;
    }
    *out = m;
    m = NULL;
    st = KV_OK;
out:
    ks_material_free(m);
    if (st != KV_OK)
        ERR_clear_error();
    return st;
}

/* ---- public part -------------------------------------------------------------- */

enum ks_kty ks_material_kty(const struct ks_material *m)
{
    return m->kty;
}

/** A BIGNUM parameter of @p pkey as big-endian bytes, left-padded to @p pad (0 = minimal). */
static enum kv_status bn_param(const EVP_PKEY *pkey, const char *name, size_t pad,
                               struct kv_buf *out)
{
    BIGNUM *bn = NULL;
    struct kv_buf b = {0};
    enum kv_status st = KV_ERR_CRYPTO;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
        goto out;
    size_t n = (size_t)BN_num_bytes(bn);
    if (pad != 0 && n > pad)
        goto out;
    if (pad == 0)
        pad = n;
    st = kv_buf_alloc(pad, &b);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    if (BN_bn2binpad(bn, b.data, (int)pad) != (int)pad)
        goto out;
    *out = b;
    b = (struct kv_buf){0};
    st = KV_OK;
out:
    kv_buf_free(&b);
    BN_free(bn);
    return st;
}

enum kv_status ks_material_public(const struct ks_material *m, struct ks_pub *out)
{
    struct ks_pub pub = {0};
    enum kv_status st = KV_OK;
    switch (m->kty) {
    case KS_KTY_RSA:
        st = bn_param(m->pkey, OSSL_PKEY_PARAM_RSA_N, 0, &pub.n);
        if (st == KV_OK)
            st = bn_param(m->pkey, OSSL_PKEY_PARAM_RSA_E, 0, &pub.e);
        pub.size_bits = EVP_PKEY_get_bits(m->pkey);
        break;
    case KS_KTY_EC: {
        size_t fl = m->curve->field_len;
        st = kv_buf_dup(m->point + 1, fl, &pub.x);
        if (st == KV_OK)
            st = kv_buf_dup(m->point + 1 + fl, fl, &pub.y);
        pub.crv = m->curve->crv;
        pub.size_bits = m->curve->bits;
        break;
    }
    case KS_KTY_OCT:
        pub.size_bits = (int)m->oct_len * 8;
        break;
    default:
        st = KV_ERR_INTERNAL;
        break;
    }
    if (st != KV_OK) {
        ks_pub_clear(&pub);
        ERR_clear_error();
        return st;
    }
    *out = pub;
    return KV_OK;
}

void ks_pub_clear(struct ks_pub *pub)
{
    if (pub == NULL)
        return;
    kv_buf_wipe(&pub->n);
    kv_buf_wipe(&pub->e);
    kv_buf_wipe(&pub->x);
    kv_buf_wipe(&pub->y);
    pub->crv = KS_CRV_NONE;
    pub->size_bits = 0;
}

void ks_op_result_clear(struct ks_op_result *res)
{
    if (res == NULL)
        return;
    kv_buf_wipe(&res->value);
    kv_buf_wipe(&res->iv);
    kv_buf_wipe(&res->tag);
    res->verified = 0;
}

enum kv_status ks_material_certificate(const struct ks_material *m, const char *cn, int days,
                                       struct kv_buf *der)
{
    *der = (struct kv_buf){0};
    if (m->kty != KS_KTY_RSA || m->pkey == NULL)
        return KV_ERR_BAD_ALG;
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    unsigned char serial[8];
    randombytes_buf(serial, sizeof(serial));
    serial[0] &= 0x7f; /* positive */
    BIGNUM *bn = BN_bin2bn(serial, sizeof(serial), NULL);
    int len = 0;
    int ok = x != NULL && name != NULL && bn != NULL && X509_set_version(x, 2) == 1 &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1,
                                        -1, 0) == 1 &&
             BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL &&
             X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
             X509_gmtime_adj(X509_getm_notAfter(x), (long)days * 86400) != NULL &&
             X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
             X509_set_pubkey(x, m->pkey) == 1 && X509_sign(x, m->pkey, EVP_sha256()) > 0 &&
             (len = i2d_X509(x, NULL)) > 0;
    enum kv_status st = ok ? kv_buf_alloc((size_t)len, der) : KV_ERR_CRYPTO;
    if (st == KV_OK) {
        unsigned char *p = der->data;
        if (i2d_X509(x, &p) != len) {
            kv_buf_free(der);
            st = KV_ERR_CRYPTO;
        }
    }
    BN_free(bn);
    X509_NAME_free(name);
    X509_free(x);
    return st;
}

void ks_material_free(struct ks_material *m)
{
    if (m == NULL)
        return;
    if (m->pool != NULL) {
        for (size_t i = 0; i < m->pool->n; i++) {
            if (m->kty == KS_KTY_RSA)
                EVP_PKEY_CTX_free(m->pool->e[i].ctx);
            else
                EVP_CIPHER_CTX_free(m->pool->e[i].ctx); /* cleanses the key schedule */
        }
        pthread_mutex_destroy(&m->pool->mu);
        free(m->pool);
    }
    EVP_PKEY_free(m->pkey);
    sodium_memzero(m, sizeof(*m));
    free(m);
}

/* ---- contexts kept for the next call ---------------------------------------- */

/** An idle context of @p m set up for (@p alg, @p init, @p enc), or NULL. */
static void *pool_take(const struct ks_material *m, const void *alg, int (*init)(EVP_PKEY_CTX *),
                       int enc)
{
    struct ctx_pool *pool = m->pool;
    void *ctx = NULL;
    if (pool == NULL)
        return NULL;
    pthread_mutex_lock(&pool->mu);
    for (size_t i = pool->n; i-- > 0;) {
        if (pool->e[i].alg == alg && pool->e[i].init == init && pool->e[i].enc == enc) {
            ctx = pool->e[i].ctx;
            pool->e[i] = pool->e[--pool->n];
            break;
        }
    }
    pthread_mutex_unlock(&pool->mu);
    return ctx;
}

/** Keep @p ctx for the next call; returns it when the pool is full or absent
 * (the caller frees it then), else NULL. */
static void *pool_give(const struct ks_material *m, const void *alg, int (*init)(EVP_PKEY_CTX *),
                       int enc, void *ctx)
{
    struct ctx_pool *pool = m->pool;
    if (pool == NULL)
        return ctx;
    pthread_mutex_lock(&pool->mu);
    if (pool->n < CTX_POOL) {
        pool->e[pool->n].alg = alg;
        pool->e[pool->n].init = init;
        pool->e[pool->n].enc = enc;
        pool->e[pool->n].ctx = ctx;
        pool->n++;
        ctx = NULL;
    }
    pthread_mutex_unlock(&pool->mu);
    return ctx;
}

/* ---- RSA ---------------------------------------------------------------------- */

/** A context of @p m's key set up for @p ai: padding, OAEP or signature hash, PSS salt. */
static enum kv_status rsa_ctx(const struct ks_material *m, const struct alg_info *ai,
                              int (*init)(EVP_PKEY_CTX *), EVP_PKEY_CTX **out)
{
    EVP_PKEY_CTX *ctx = pool_take(m, ai, init, 0);
    if (ctx != NULL) {
        *out = ctx;
        return KV_OK;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, m->pkey, NULL);
    if (ctx == NULL)
        return KV_ERR_NOMEM;
    const EVP_MD *md = ai->md != NULL ? ai->md() : NULL;
    int ok = init(ctx) > 0 && EVP_PKEY_CTX_set_rsa_padding(ctx, ai->rsa_pad) > 0;
    if (ok && ai->kind == KIND_RSA_ENC && ai->rsa_pad == RSA_PKCS1_OAEP_PADDING)
        ok = EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
    if (ok && ai->kind == KIND_RSA_SIG)
        ok = EVP_PKEY_CTX_set_signature_md(ctx, md) > 0;
    if (ok && ai->kind == KIND_RSA_SIG && ai->rsa_pad == RSA_PKCS1_PSS_PADDING)
        ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) > 0 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) > 0;
    if (!ok) {
        EVP_PKEY_CTX_free(ctx);
        return KV_ERR_CRYPTO;
    }
    *out = ctx;
    return KV_OK;
}

/* Give back a context from rsa_ctx(): kept for the next call after a success,
 * freed after a failure (OpenSSL may have left it half-way) or when the pool is full. */
static void rsa_ctx_done(const struct ks_material *m, const struct alg_info *ai,
                         int (*init)(EVP_PKEY_CTX *), EVP_PKEY_CTX *ctx, int ok)
{
    if (ctx != NULL && ok)
        ctx = pool_give(m, ai, init, 0, ctx);
    EVP_PKEY_CTX_free(ctx);
}

static enum kv_status rsa_encrypt(const struct ks_material *m, const struct alg_info *ai,
                                  const struct kv_buf *in, struct kv_buf *out)
{
    size_t k = (size_t)EVP_PKEY_get_size(m->pkey);
    size_t overhead = ai->rsa_pad == RSA_PKCS1_OAEP_PADDING
                          ? OAEP_OVERHEAD((size_t)EVP_MD_get_size(ai->md()))
                          : PKCS1_OVERHEAD;
    if (in->len + overhead > k)
        return KV_ERR_BAD_INPUT_LENGTH;

    EVP_PKEY_CTX *ctx = NULL;
    struct kv_buf ct = {0};
    enum kv_status st = rsa_ctx(m, ai, EVP_PKEY_encrypt_init, &ctx);
    if (st != KV_OK)
        goto out;
    st = kv_buf_alloc(k, &ct);
    if (st != KV_OK)
        goto out;
    size_t len = k;
    st = KV_ERR_CRYPTO;
    if (EVP_PKEY_encrypt(ctx, ct.data, &len, bytes_of(in), in->len) <= 0 || len > k)
        goto out;
    st = take(&ct, len, out);
out:
    kv_buf_free(&ct);
    rsa_ctx_done(m, ai, EVP_PKEY_encrypt_init, ctx, st == KV_OK);
    return st;
}

static enum kv_status rsa_decrypt(const struct ks_material *m, const struct alg_info *ai,
                                  const struct kv_buf *in, struct kv_buf *out)
{
    size_t k = (size_t)EVP_PKEY_get_size(m->pkey);
    if (in->len != k)
        return KV_ERR_BAD_INPUT_LENGTH;

    EVP_PKEY_CTX *ctx = NULL;
    struct kv_buf pt = {0};
    enum kv_status st = rsa_ctx(m, ai, EVP_PKEY_decrypt_init, &ctx);
    if (st != KV_OK)
        goto out;
    st = kv_buf_alloc(k, &pt);
    if (st != KV_OK)
        goto out;
    size_t len = k;
    st = KV_ERR_CRYPTO_FAILED;
    if (EVP_PKEY_decrypt(ctx, pt.data, &len, in->data, in->len) <= 0 || len > k) {
        /* OpenSSL hides why an RSA decryption failed (no padding oracle), an
         * allocation failure included: a refused ciphertext is tried again. */
        len = k;
        if (openssl_oom())
            st = KV_ERR_NOMEM;
        else if (EVP_PKEY_decrypt(ctx, pt.data, &len, in->data, in->len) <= 0 || len > k)
            st = openssl_oom() ? KV_ERR_NOMEM : KV_ERR_CRYPTO_FAILED;
        else
            st = KV_OK;
        if (st != KV_OK)
            goto out;
    }
    st = take(&pt, len, out);
out:
    kv_buf_wipe(&pt);
    rsa_ctx_done(m, ai, EVP_PKEY_decrypt_init, ctx, st == KV_OK);
    return st;
}

static enum kv_status rsa_sign(const struct ks_material *m, const struct alg_info *ai,
                               const struct kv_buf *digest, struct kv_buf *out)
{
    if (digest->len != (size_t)EVP_MD_get_size(ai->md()))
        return KV_ERR_BAD_INPUT_LENGTH;

    size_t k = (size_t)EVP_PKEY_get_size(m->pkey);
    EVP_PKEY_CTX *ctx = NULL;
    struct kv_buf sig = {0};
    enum kv_status st = rsa_ctx(m, ai, EVP_PKEY_sign_init, &ctx);
    if (st != KV_OK)
        goto out;
    st = kv_buf_alloc(k, &sig);
    if (st != KV_OK)
        goto out;
    size_t len = k;
    st = KV_ERR_CRYPTO;
    if (EVP_PKEY_sign(ctx, sig.data, &len, digest->data, digest->len) <= 0 || len > k)
        goto out;
    st = take(&sig, len, out);
out:
    kv_buf_free(&sig);
    rsa_ctx_done(m, ai, EVP_PKEY_sign_init, ctx, st == KV_OK);
    return st;
}

static enum kv_status rsa_verify(const struct ks_material *m, const struct alg_info *ai,
                                 const struct kv_buf *digest, const struct kv_buf *sig,
                                 int *verified)
{
    if (digest->len != (size_t)EVP_MD_get_size(ai->md()))
        return KV_ERR_BAD_INPUT_LENGTH;
    if (sig->len != (size_t)EVP_PKEY_get_size(m->pkey)) {
        *verified = 0;
        return KV_OK;
    }
    EVP_PKEY_CTX *ctx = NULL;
    enum kv_status st = rsa_ctx(m, ai, EVP_PKEY_verify_init, &ctx);
    if (st != KV_OK)
        return st;
    /* 1 is a valid signature; 0 and the negative "malformed" results are not,
     * unless OpenSSL ran out of memory on the way. */
    int rc = EVP_PKEY_verify(ctx, sig->data, sig->len, digest->data, digest->len);
    rsa_ctx_done(m, ai, EVP_PKEY_verify_init, ctx, rc == 1);
    if (rc < 0 && openssl_oom())
        return KV_ERR_NOMEM;
    *verified = rc == 1;
    ERR_clear_error();
    return KV_OK;
}

/* ---- ECDSA -------------------------------------------------------------------- */

static enum kv_status ec_ctx(const struct ks_material *m, const struct alg_info *ai,
                             int (*init)(EVP_PKEY_CTX *), EVP_PKEY_CTX **out)
{
    /* a key generated in this process has no EVP_PKEY yet (generate_ec) */
    EVP_PKEY *own = NULL;
    if (m->pkey == NULL) {
        enum kv_status st = ec_pkey(m->curve, m->d, m->curve->field_len, m->point, 0, &own);
        if (st != KV_OK)
            return st;
    }
    /* the context holds its own reference to the key */
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, own != NULL ? own : m->pkey, NULL);
    EVP_PKEY_free(own);
    if (ctx == NULL)
        return KV_ERR_NOMEM;
    if (init(ctx) <= 0 || EVP_PKEY_CTX_set_signature_md(ctx, ai->md()) <= 0) {
        EVP_PKEY_CTX_free(ctx);
        return KV_ERR_CRYPTO;
    }
    *out = ctx;
    return KV_OK;
}

static enum kv_status ec_sign(const struct ks_material *m, const struct alg_info *ai,
                              const struct kv_buf *digest, struct kv_buf *out)
{
    if (digest->len != (size_t)EVP_MD_get_size(ai->md()))
        return KV_ERR_BAD_INPUT_LENGTH;

    size_t fl = m->curve->field_len;
    EVP_PKEY_CTX *ctx = NULL;
    ECDSA_SIG *sig = NULL;
    struct kv_buf der = {0}, raw = {0};
    enum kv_status st = ec_ctx(m, ai, EVP_PKEY_sign_init, &ctx);
    if (st != KV_OK)
        goto out;
    size_t der_len = 0;
    st = KV_ERR_CRYPTO;
    if (EVP_PKEY_sign(ctx, NULL, &der_len, digest->data, digest->len) <= 0)
        goto out;
    st = kv_buf_alloc(der_len, &der);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    if (EVP_PKEY_sign(ctx, der.data, &der_len, digest->data, digest->len) <= 0)
        goto out;
    const unsigned char *p = der.data;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL)
        goto out;
    st = kv_buf_alloc(2 * fl, &raw);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    const BIGNUM *r = NULL, *s = NULL;
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, raw.data, (int)fl) != (int)fl ||
        BN_bn2binpad(s, raw.data + fl, (int)fl) != (int)fl)
        goto out;
    *out = raw;
    raw = (struct kv_buf){0};
    st = KV_OK;
out:
    kv_buf_free(&raw);
    kv_buf_free(&der);
    ECDSA_SIG_free(sig);
    EVP_PKEY_CTX_free(ctx);
    return st;
}

static enum kv_status ec_verify(const struct ks_material *m, const struct alg_info *ai,
                                const struct kv_buf *digest, const struct kv_buf *raw,
                                int *verified)
{
    if (digest->len != (size_t)EVP_MD_get_size(ai->md()))
        return KV_ERR_BAD_INPUT_LENGTH;
    size_t fl = m->curve->field_len;
    if (raw->len != 2 * fl) {
        *verified = 0;
        return KV_OK;
    }

    enum kv_status st = KV_ERR_NOMEM;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char *der = NULL;
    BIGNUM *r = BN_bin2bn(raw->data, (int)fl, NULL);
    BIGNUM *s = BN_bin2bn(raw->data + fl, (int)fl, NULL);
    ECDSA_SIG *sig = ECDSA_SIG_new();
    if (r == NULL || s == NULL || sig == NULL || ECDSA_SIG_set0(sig, r, s) != 1)
        goto out;
    r = s = NULL; /* owned by sig now */
    int der_len = i2d_ECDSA_SIG(sig, &der);
    if (der_len <= 0) {
        st = KV_ERR_CRYPTO;
        goto out;
    }
    st = ec_ctx(m, ai, EVP_PKEY_verify_init, &ctx);
    if (st != KV_OK)
        goto out;
    int rc = EVP_PKEY_verify(ctx, der, (size_t)der_len, digest->data, digest->len);
    if (rc < 0 && openssl_oom()) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    *verified = rc == 1;
    st = KV_OK;
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(s);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return st;
}

/* ---- HMAC --------------------------------------------------------------------- */

static enum kv_status hmac(const struct ks_material *m, const struct alg_info *ai,
                           const struct kv_buf *data, unsigned char mac[EVP_MAX_MD_SIZE],
                           size_t *mac_len)
{
    const char *md = EVP_MD_get0_name(ai->md());
    if (EVP_Q_mac(NULL, "HMAC", NULL, md, NULL, m->oct, m->oct_len, bytes_of(data), data->len, mac,
                  EVP_MAX_MD_SIZE, mac_len) == NULL)
        return KV_ERR_CRYPTO;
    return KV_OK;
}

static enum kv_status hmac_sign(const struct ks_material *m, const struct alg_info *ai,
                                const struct kv_buf *data, struct kv_buf *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    enum kv_status st = hmac(m, ai, data, mac, &len);
    if (st == KV_OK)
        st = kv_buf_dup(mac, len, out);
    sodium_memzero(mac, sizeof(mac));
    return st;
}

static enum kv_status hmac_verify(const struct ks_material *m, const struct alg_info *ai,
                                  const struct kv_buf *data, const struct kv_buf *sig,
                                  int *verified)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    size_t len = 0;
    enum kv_status st = hmac(m, ai, data, mac, &len);
    if (st == KV_OK)
        *verified = sig->len == len && CRYPTO_memcmp(mac, sig->data, len) == 0;
    sodium_memzero(mac, sizeof(mac));
    return st;
}

/* ---- AES ---------------------------------------------------------------------- */

/*
 * AES ciphers fetched from OpenSSL's providers once per process. Given a
 * built-in EVP_aes_*() cipher, EVP_CipherInit_ex looks its implementation up
 * again on every call (EVP_CIPHER_fetch, 2.7 k instructions of an A256KW
 * wrap); a fetched one is used as it is. Where a fetch fails, the built-in
 * cipher is used, as before.
 */
enum aes_mode { AES_ECB, AES_CBC, AES_GCM, AES_WRAP_PAD, AES_MODES };
static EVP_CIPHER *aes_fetched[AES_MODES][3];
static pthread_once_t aes_fetched_once = PTHREAD_ONCE_INIT;

static void fetch_aes(void)
{
    static const char *const names[AES_MODES][3] = {
        {"AES-128-ECB", "AES-192-ECB", "AES-256-ECB"},
        {"AES-128-CBC", "AES-192-CBC", "AES-256-CBC"},
        {"AES-128-GCM", "AES-192-GCM", "AES-256-GCM"},
        {"AES-128-WRAP-PAD", "AES-192-WRAP-PAD", "AES-256-WRAP-PAD"}};
    for (int m = 0; m < AES_MODES; m++) {
        for (int k = 0; k < 3; k++)
            aes_fetched[m][k] = EVP_CIPHER_fetch(NULL, names[m][k], NULL);
    }
}

/** The cipher of AES mode @p mode for a 16-, 24- or 32-byte key. */
static const EVP_CIPHER *aes_evp(enum aes_mode mode, size_t key_len)
{
    static const EVP_CIPHER *(*const builtin[AES_MODES][3])(void) = {
        {EVP_aes_128_ecb, EVP_aes_192_ecb, EVP_aes_256_ecb},
        {EVP_aes_128_cbc, EVP_aes_192_cbc, EVP_aes_256_cbc},
        {EVP_aes_128_gcm, EVP_aes_192_gcm, EVP_aes_256_gcm},
        {EVP_aes_128_wrap_pad, EVP_aes_192_wrap_pad, EVP_aes_256_wrap_pad}};
    int k = key_len == 16 ? 0 : key_len == 24 ? 1 : 2;
    pthread_once(&aes_fetched_once, fetch_aes);
    return aes_fetched[mode][k] != NULL ? aes_fetched[mode][k] : builtin[mode][k]();
}

/** The EVP cipher of an AES algorithm kind for a 16-, 24- or 32-byte key. */
static const EVP_CIPHER *aes_cipher(enum alg_kind kind, size_t key_len)
{
    switch (kind) {
    case KIND_GCM:
        return aes_evp(AES_GCM, key_len);
    case KIND_CBC:
    case KIND_CBCPAD:
        return aes_evp(AES_CBC, key_len);
    case KIND_KWP: /* RFC 3394 (KIND_KW) is aes_kw's own */
        return aes_evp(AES_WRAP_PAD, key_len);
    default:
        return NULL;
    }
}

static enum kv_status gcm_encrypt(const struct ks_material *m, const struct ks_op_params *p,
                                  struct ks_op_result *r)
{
    if (p->value.len > OP_INPUT_MAX || p->aad.len > OP_INPUT_MAX)
        return KV_ERR_BAD_INPUT_LENGTH;

    enum kv_status st = KV_ERR_NOMEM;
    EVP_CIPHER_CTX *ctx = NULL;
    struct kv_buf iv = {0}, tag = {0}, ct = {0};
    if (kv_buf_alloc(GCM_IV_LEN, &iv) != KV_OK || kv_buf_alloc(GCM_TAG_LEN, &tag) != KV_OK ||
        kv_buf_alloc(p->value.len, &ct) != KV_OK)
        goto out;
    randombytes_buf(iv.data, iv.len);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    st = KV_ERR_CRYPTO;
    int len = 0, fin = 0;
    if (EVP_EncryptInit_ex(ctx, aes_cipher(KIND_GCM, m->oct_len), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_IV_LEN, NULL) != 1 ||
        EVP_EncryptInit_ex(ctx, NULL, NULL, m->oct, iv.data) != 1)
        goto out;
    if (p->aad.len > 0 && EVP_EncryptUpdate(ctx, NULL, &len, p->aad.data, (int)p->aad.len) != 1)
        goto out;
    len = 0;
    if (p->value.len > 0 &&
        EVP_EncryptUpdate(ctx, ct.data, &len, p->value.data, (int)p->value.len) != 1)
        goto out;
    if (EVP_EncryptFinal_ex(ctx, ct.data + len, &fin) != 1 ||
        (size_t)len + (size_t)fin != p->value.len ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, tag.data) != 1)
        goto out;
    r->value = ct;
    r->iv = iv;
    r->tag = tag;
    ct = iv = tag = (struct kv_buf){0};
    st = KV_OK;
out:
    kv_buf_free(&ct);
    kv_buf_free(&iv);
    kv_buf_free(&tag);
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

static enum kv_status gcm_decrypt(const struct ks_material *m, const struct ks_op_params *p,
                                  struct ks_op_result *r)
{
    if (p->value.len > OP_INPUT_MAX || p->aad.len > OP_INPUT_MAX || p->iv.len != GCM_IV_LEN ||
        p->tag.len != GCM_TAG_LEN)
        return KV_ERR_BAD_INPUT_LENGTH;

    enum kv_status st = KV_ERR_NOMEM;
    EVP_CIPHER_CTX *ctx = NULL;
    struct kv_buf pt = {0};
    unsigned char tag[GCM_TAG_LEN];
    memcpy(tag, p->tag.data, GCM_TAG_LEN); /* the ctrl takes a non-const pointer */
    if (kv_buf_alloc(p->value.len, &pt) != KV_OK)
        goto out;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    st = KV_ERR_CRYPTO;
    int len = 0, fin = 0;
    if (EVP_DecryptInit_ex(ctx, aes_cipher(KIND_GCM, m->oct_len), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, GCM_IV_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, m->oct, p->iv.data) != 1)
        goto out;
    if (p->aad.len > 0 && EVP_DecryptUpdate(ctx, NULL, &len, p->aad.data, (int)p->aad.len) != 1)
        goto out;
    len = 0;
    if (p->value.len > 0 &&
        EVP_DecryptUpdate(ctx, pt.data, &len, p->value.data, (int)p->value.len) != 1)
        goto out;
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, GCM_TAG_LEN, tag) != 1)
        goto out;
    st = KV_ERR_CRYPTO_FAILED;
    if (EVP_DecryptFinal_ex(ctx, pt.data + len, &fin) != 1)
        goto out;
    st = take(&pt, (size_t)len + (size_t)fin, &r->value);
out:
    kv_buf_wipe(&pt);
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

static enum kv_status cbc_crypt(const struct ks_material *m, const struct ks_op_params *p, int pad,
                                int enc, struct ks_op_result *r)
{
    size_t n = p->value.len;
    if (n > OP_INPUT_MAX)
        return KV_ERR_BAD_INPUT_LENGTH;
    /* Every ciphertext is whole blocks. Without padding, as Managed HSM does, a plaintext
     * is filled with zero bytes to whole blocks, and its decryption keeps them. */
    if (!enc && n % AES_BLOCK_LEN != 0)
        return KV_ERR_BAD_INPUT_LENGTH;
    size_t zeros = !pad && enc && n % AES_BLOCK_LEN != 0 ? AES_BLOCK_LEN - n % AES_BLOCK_LEN : 0;
    if (pad && !enc && n == 0)
        return KV_ERR_BAD_INPUT_LENGTH;
    if (p->iv.len != AES_BLOCK_LEN && !(enc && p->iv.len == 0))
        return KV_ERR_BAD_INPUT_LENGTH;

    enum kv_status st = KV_ERR_NOMEM;
    EVP_CIPHER_CTX *ctx = NULL;
    struct kv_buf iv = {0}, buf = {0};
    if (kv_buf_alloc(AES_BLOCK_LEN, &iv) != KV_OK || kv_buf_alloc(n + AES_BLOCK_LEN, &buf) != KV_OK)
        goto out;
    if (p->iv.len == 0)
        randombytes_buf(iv.data, iv.len);
    else
        memcpy(iv.data, p->iv.data, AES_BLOCK_LEN);
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    st = KV_ERR_CRYPTO;
    int len = 0, fin = 0;
    if (EVP_CipherInit_ex(ctx, aes_cipher(KIND_CBC, m->oct_len), NULL, m->oct, iv.data, enc) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx, pad) != 1)
        goto out;
    if (n > 0 && EVP_CipherUpdate(ctx, buf.data, &len, p->value.data, (int)n) != 1)
        goto out;
    if (zeros > 0) {
        static const unsigned char zero[AES_BLOCK_LEN];
        int more = 0;
        if (EVP_CipherUpdate(ctx, buf.data + len, &more, zero, (int)zeros) != 1)
            goto out;
        len += more;
    }
    if (EVP_CipherFinal_ex(ctx, buf.data + len, &fin) != 1) {
        st = enc ? KV_ERR_CRYPTO : KV_ERR_CRYPTO_FAILED; /* bad padding */
        goto out;
    }
    st = take(&buf, (size_t)len + (size_t)fin, &r->value);
    if (st == KV_OK && enc) {
        r->iv = iv;
        iv = (struct kv_buf){0};
    }
out:
    kv_buf_wipe(&buf);
    kv_buf_free(&iv);
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

/* XOR the step counter t of RFC 3394 into a semiblock, big-endian. */
static void kw_xor_t(unsigned char *semiblock, uint64_t t)
{
    for (int q = KW_BLOCK_LEN - 1; q >= 0; q--, t >>= 8)
        semiblock[q] ^= (unsigned char)(t & 0xff);
}

/*
 * RFC 3394 key wrap (A128KW, A192KW, A256KW; the caller checked the length),
 * each step one AES block through EVP's AES-ECB. OpenSSL 3.0's own wrap cipher
 * uses its table-based software AES, where this uses AES-NI when the CPU has
 * it: about a tenth of the instructions, and no key-dependent table lookups.
 * unit.test_crypto checks it against OpenSSL's wrap cipher and RFC 3394's
 * test vectors.
 */
static enum kv_status aes_kw(const struct ks_material *m, int enc, const struct kv_buf *in,
                             struct kv_buf *out)
{
    static const unsigned char kw_iv[KW_BLOCK_LEN] = {0xa6, 0xa6, 0xa6, 0xa6,
                                                      0xa6, 0xa6, 0xa6, 0xa6};
    /* semiblocks of key data */
    size_t n = enc ? in->len / KW_BLOCK_LEN : in->len / KW_BLOCK_LEN - 1;
    const EVP_CIPHER *cipher = aes_evp(AES_ECB, m->oct_len);
    enum kv_status st = KV_ERR_NOMEM;
    struct kv_buf buf = {0}; /* A, then R[1..n] */
    unsigned char block[AES_BLOCK_LEN];
    /* an ECB context keeps nothing between blocks but the key schedule */
    EVP_CIPHER_CTX *ctx = pool_take(m, cipher, NULL, enc);
    if (ctx == NULL) {
        ctx = EVP_CIPHER_CTX_new();
        if (ctx == NULL)
            goto out;
        if (EVP_CipherInit_ex(ctx, cipher, NULL, m->oct, NULL, enc) != 1 ||
            EVP_CIPHER_CTX_set_padding(ctx, 0) != 1) {
            st = KV_ERR_CRYPTO;
            goto out;
        }
    }
    if (kv_buf_alloc((n + 1) * KW_BLOCK_LEN, &buf) != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    unsigned char *a = buf.data, *r = buf.data + KW_BLOCK_LEN;
    if (enc) {
        memcpy(a, kw_iv, KW_BLOCK_LEN);
        memcpy(r, in->data, n * KW_BLOCK_LEN);
    } else {
        memcpy(buf.data, in->data, (n + 1) * KW_BLOCK_LEN);
    }
    for (int step = 0; step < 6; step++) {
        uint64_t j = (uint64_t)(enc ? step : 5 - step);
        for (size_t k = 0; k < n; k++) {
            size_t i = enc ? k : n - 1 - k; /* R[i + 1] */
            uint64_t t = n * j + i + 1;
            unsigned char *ri = r + i * KW_BLOCK_LEN;
            memcpy(block, a, KW_BLOCK_LEN);
            if (!enc)
                kw_xor_t(block, t);
            memcpy(block + KW_BLOCK_LEN, ri, KW_BLOCK_LEN);
            /* one block, padding off: EVP_Cipher, without EVP_CipherUpdate's
             * buffering (positive on success: 1, or the bytes written) */
            if (EVP_Cipher(ctx, block, block, AES_BLOCK_LEN) <= 0)
                goto out;
            memcpy(a, block, KW_BLOCK_LEN);
            if (enc)
                kw_xor_t(a, t);
            memcpy(ri, block + KW_BLOCK_LEN, KW_BLOCK_LEN);
        }
    }
    if (enc) {
        *out = buf;
        buf = (struct kv_buf){0};
        st = KV_OK;
    } else if (sodium_memcmp(a, kw_iv, KW_BLOCK_LEN) != 0) {
        st = KV_ERR_CRYPTO_FAILED; /* the integrity check */
    } else {
        st = kv_buf_dup(r, n * KW_BLOCK_LEN, out);
    }
out:
    sodium_memzero(block, sizeof(block));
    kv_buf_wipe(&buf);
    /* a context that failed a step is not kept; an unwrap that failed its
     * integrity check ran every step and is */
    if (ctx != NULL && (st == KV_OK || st == KV_ERR_CRYPTO_FAILED))
        ctx = pool_give(m, cipher, NULL, enc, ctx);
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

static enum kv_status key_wrap(const struct ks_material *m, enum alg_kind kind, int enc,
                               const struct kv_buf *in, struct kv_buf *out)
{
    size_t n = in->len;
    int ok_len;
    if (kind == KIND_KW) /* RFC 3394: at least two semiblocks of key data */
        ok_len = n % KW_BLOCK_LEN == 0 && n >= (enc ? 2 : 3) * KW_BLOCK_LEN;
    else /* RFC 5649: any non-empty key; the wrapped form is at least two semiblocks */
        ok_len = enc ? n > 0 : n % KW_BLOCK_LEN == 0 && n >= 2 * KW_BLOCK_LEN;
    if (!ok_len || n > OP_INPUT_MAX)
        return KV_ERR_BAD_INPUT_LENGTH;
    if (kind == KIND_KW)
        return aes_kw(m, enc, in, out);

    /* RFC 5649 (with padding): OpenSSL's wrap cipher */
    enum kv_status st = KV_ERR_NOMEM;
    EVP_CIPHER_CTX *ctx = NULL;
    struct kv_buf buf = {0};
    /* Wrapping adds at most 7 bytes of padding and one semiblock. */
    if (kv_buf_alloc(n + 2 * KW_BLOCK_LEN, &buf) != KV_OK)
        goto out;
    ctx = EVP_CIPHER_CTX_new();
    if (ctx == NULL)
        goto out;
    st = KV_ERR_CRYPTO;
    EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_CipherInit_ex(ctx, aes_cipher(kind, m->oct_len), NULL, m->oct, NULL, enc) != 1)
        goto out;
    int len = 0, fin = 0;
    if (EVP_CipherUpdate(ctx, buf.data, &len, in->data, (int)n) != 1 || len <= 0 ||
        EVP_CipherFinal_ex(ctx, buf.data + len, &fin) != 1) {
        st = enc ? KV_ERR_CRYPTO : KV_ERR_CRYPTO_FAILED; /* integrity check failed */
        goto out;
    }
    st = take(&buf, (size_t)len + (size_t)fin, out);
out:
    kv_buf_wipe(&buf);
    EVP_CIPHER_CTX_free(ctx);
    return st;
}

/* ---- dispatch ----------------------------------------------------------------- */

/** Whether algorithms of @p kind serve operation @p op (the table in crypto.h). */
static int op_allows(unsigned op, enum alg_kind kind)
{
    switch (op) {
    case KS_OP_ENCRYPT:
    case KS_OP_DECRYPT:
        return kind == KIND_RSA_ENC || kind == KIND_GCM || kind == KIND_CBC || kind == KIND_CBCPAD;
    case KS_OP_WRAP:
    case KS_OP_UNWRAP:
        return kind == KIND_RSA_ENC || kind == KIND_KW || kind == KIND_KWP;
    case KS_OP_SIGN:
    case KS_OP_VERIFY:
        return kind == KIND_RSA_SIG || kind == KIND_ECDSA || kind == KIND_HMAC;
    default:
        return 0;
    }
}

/** Whether @p ai applies to the key type, curve and size of @p m. */
static int key_allows(const struct ks_material *m, const struct alg_info *ai)
{
    switch (ai->kind) {
    case KIND_RSA_ENC:
    case KIND_RSA_SIG:
        return m->kty == KS_KTY_RSA;
    case KIND_ECDSA:
        return m->kty == KS_KTY_EC && m->curve->crv == ai->crv;
    case KIND_HMAC:
        return m->kty == KS_KTY_OCT;
    case KIND_GCM:
    case KIND_CBC:
    case KIND_CBCPAD:
    case KIND_KW:
    case KIND_KWP:
        return m->kty == KS_KTY_OCT && (ai->key_len == 0 || ai->key_len == m->oct_len);
    default:
        return 0;
    }
}

enum kv_status ks_material_op(const struct ks_material *m, unsigned op,
                              const struct ks_op_params *params, struct ks_op_result *out)
{
    if (op != KS_OP_ENCRYPT && op != KS_OP_DECRYPT && op != KS_OP_SIGN && op != KS_OP_VERIFY &&
        op != KS_OP_WRAP && op != KS_OP_UNWRAP)
        return KV_ERR_INTERNAL;
    if ((unsigned)params->alg >= KS_ALG_COUNT)
        return KV_ERR_BAD_ALG;
    const struct alg_info *ai = &alg_table[params->alg];
    if (!op_allows(op, ai->kind) || !key_allows(m, ai))
        return KV_ERR_BAD_ALG;

    int enc = op == KS_OP_ENCRYPT || op == KS_OP_WRAP;
    struct ks_op_result r = {0};
    enum kv_status st = KV_ERR_INTERNAL;
    switch (ai->kind) {
    case KIND_RSA_ENC:
        st = enc ? rsa_encrypt(m, ai, &params->value, &r.value)
                 : rsa_decrypt(m, ai, &params->value, &r.value);
        break;
    case KIND_RSA_SIG:
        st = op == KS_OP_SIGN ? rsa_sign(m, ai, &params->value, &r.value)
                              : rsa_verify(m, ai, &params->digest, &params->value, &r.verified);
        break;
    case KIND_ECDSA:
        st = op == KS_OP_SIGN ? ec_sign(m, ai, &params->value, &r.value)
                              : ec_verify(m, ai, &params->digest, &params->value, &r.verified);
        break;
    case KIND_HMAC:
        st = op == KS_OP_SIGN ? hmac_sign(m, ai, &params->value, &r.value)
                              : hmac_verify(m, ai, &params->digest, &params->value, &r.verified);
        break;
    case KIND_GCM:
        st = enc ? gcm_encrypt(m, params, &r) : gcm_decrypt(m, params, &r);
        break;
    case KIND_CBC:
    case KIND_CBCPAD:
        st = cbc_crypt(m, params, ai->kind == KIND_CBCPAD, enc, &r);
        break;
    case KIND_KW:
    case KIND_KWP:
        st = key_wrap(m, ai->kind, enc, &params->value, &r.value);
        break;
    default:
        break;
    }
    if (st != KV_OK) {
        ks_op_result_clear(&r);
        ERR_clear_error();
        return st;
    }
    out->value = r.value;
    out->iv = r.iv;
    out->tag = r.tag;
    out->verified = r.verified;
    return KV_OK;
}

/* ---- secure key release ------------------------------------------------------------- */

#define RELEASE_KEK_LEN 32 /* AES-256 */

/* The private key as the release carries it: PKCS#8 DER for RSA and EC, oct's bytes. */
static enum kv_status release_plaintext(const struct ks_material *m, struct kv_buf *out)
{
    if (m->kty == KS_KTY_OCT)
        return kv_buf_dup(m->oct, m->oct_len, out);
    EVP_PKEY *ec = NULL;
    const EVP_PKEY *pkey = m->pkey;
    if (m->kty == KS_KTY_EC) {
        enum kv_status st = ec_pkey(m->curve, m->d, m->curve->field_len, m->point, 0, &ec);
        if (st != KV_OK)
            return st;
        pkey = ec;
    }
    enum kv_status st = KV_ERR_CRYPTO;
    struct kv_buf der = {0};
    PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(pkey);
    int len = p8 != NULL ? i2d_PKCS8_PRIV_KEY_INFO(p8, NULL) : 0;
    if (len > 0) {
        st = kv_buf_alloc((size_t)len, &der);
        unsigned char *p = der.data;
        if (st == KV_OK && i2d_PKCS8_PRIV_KEY_INFO(p8, &p) != len)
            st = KV_ERR_CRYPTO;
    } else if (openssl_oom()) {
        st = KV_ERR_NOMEM;
    }
    if (st == KV_OK) {
        *out = der;
        der = (struct kv_buf){0};
    }
    kv_buf_wipe(&der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(ec);
    ERR_clear_error();
    return st;
}

/* The target's RSA public key, 2048 to 4096 bits. */
static enum kv_status release_target(const struct kv_buf *n, const struct kv_buf *e, EVP_PKEY **out)
{
    BIGNUM *bn = bn_from(n, 0), *be = bn_from(e, 0);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY *pkey = NULL;
    enum kv_status st = KV_ERR_NOMEM;
    if (bn == NULL || be == NULL || bld == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL)
        goto out;
    st = KV_ERR_BAD_PARAM;
    int bits = BN_num_bits(bn);
    if (bits < 2048 || bits > 4096 || BN_is_odd(be) == 0 || BN_is_one(be))
        goto out;
    /* the shape is checked above: a failure from here on is OpenSSL's, not the target's */
    st = pkey_fromdata("RSA", EVP_PKEY_PUBLIC_KEY, params, &pkey);
    if (st == KV_ERR_BAD_PARAM)
        st = KV_ERR_CRYPTO;
    if (st == KV_OK) {
        *out = pkey;
        pkey = NULL;
    }
out:
    EVP_PKEY_free(pkey);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    ERR_clear_error();
    return st;
}

/* The RSA-OAEP hash (and MGF1's) of a release's or a BYOK blob's wrapping. */
static const EVP_MD *wrap_md(enum ks_release_enc enc)
{
    return enc == KS_RELEASE_RSA_AES_KEY_WRAP_256   ? EVP_sha256()
           : enc == KS_RELEASE_RSA_AES_KEY_WRAP_384 ? EVP_sha384()
                                                    : EVP_sha1();
}

enum kv_status ks_material_release(const struct ks_material *m, enum ks_release_enc enc,
                                   const struct kv_buf *n, const struct kv_buf *e,
                                   struct kv_buf *out)
{
    const EVP_MD *md = wrap_md(enc);
    unsigned char kek[RELEASE_KEK_LEN];
    struct kv_buf plain = {0}, res = {0};
    EVP_PKEY *target = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_CIPHER_CTX *cctx = NULL;
    enum kv_status st = release_target(n, e, &target);
    if (st != KV_OK)
        return st;
    randombytes_buf(kek, sizeof(kek));
    st = release_plaintext(m, &plain);
    if (st != KV_OK)
        goto out;
    size_t rsa_len = (size_t)EVP_PKEY_get_size(target);
    size_t kw_len = (plain.len + 7) / 8 * 8 + 8; /* RFC 5649: padded, plus the AIV */
    st = kv_buf_alloc(rsa_len + kw_len, &res);
    if (st != KV_OK)
        goto out;
    st = KV_ERR_CRYPTO;
    size_t got = rsa_len;
    pctx = EVP_PKEY_CTX_new_from_pkey(NULL, target, NULL);
    if (pctx == NULL || EVP_PKEY_encrypt_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0 ||
        EVP_PKEY_encrypt(pctx, res.data, &got, kek, sizeof(kek)) <= 0 || got != rsa_len)
        goto out;
    int l1 = 0, l2 = 0;
    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL)
        goto out;
    EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_EncryptInit_ex(cctx, EVP_aes_256_wrap_pad(), NULL, kek, NULL) != 1 ||
        EVP_EncryptUpdate(cctx, res.data + rsa_len, &l1, plain.data, (int)plain.len) != 1 ||
        EVP_EncryptFinal_ex(cctx, res.data + rsa_len + l1, &l2) != 1 || (size_t)(l1 + l2) != kw_len)
        goto out;
    *out = res;
    res = (struct kv_buf){0};
    st = KV_OK;
out:
    if (st == KV_ERR_CRYPTO && openssl_oom())
        st = KV_ERR_NOMEM;
    sodium_memzero(kek, sizeof(kek));
    kv_buf_wipe(&plain);
    kv_buf_free(&res);
    EVP_CIPHER_CTX_free(cctx);
    EVP_PKEY_CTX_free(pctx);
    EVP_PKEY_free(target);
    ERR_clear_error();
    return st;
}

/* ---- bring your own key (BYOK) ----------------------------------------------------- */

/* One big-endian part of @p pkey into @p out (allocated; wiped by ks_jwk_wipe). */
static enum kv_status byok_part(const EVP_PKEY *pkey, const char *param, struct kv_buf *out)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1 || bn == NULL)
        return openssl_oom() ? KV_ERR_NOMEM : KV_ERR_BYOK_BLOB;
    int len = BN_num_bytes(bn);
    enum kv_status st = kv_buf_alloc(len > 0 ? (size_t)len : 1, out);
    if (st == KV_OK && BN_bn2bin(bn, out->data) != len)
        st = KV_ERR_CRYPTO;
    if (st == KV_OK)
        out->len = (size_t)len;
    BN_clear_free(bn);
    return st;
}

/* The parts of the private key in PKCS#8 DER @p der, into @p out as @p kty's JWK. */
static enum kv_status byok_parts(const struct kv_buf *der, enum ks_kty kty, struct ks_jwk *out)
{
    const unsigned char *p = der->data;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der->len);
    EVP_PKEY *pkey = NULL;
    enum kv_status st = KV_ERR_BYOK_BLOB;
    if (p8 == NULL || p != der->data + der->len || (pkey = EVP_PKCS82PKEY(p8)) == NULL)
        goto out;
    if (kty == KS_KTY_RSA && EVP_PKEY_is_a(pkey, "RSA")) {
        static const char *const names[8] = {
            OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
            OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
            OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
            OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
        struct kv_buf *parts[8] = {&out->n, &out->e,  &out->d,  &out->p,
                                   &out->q, &out->dp, &out->dq, &out->qi};
        st = KV_OK;
        for (int i = 0; st == KV_OK && i < 8; i++)
            st = byok_part(pkey, names[i], parts[i]);
    } else if (kty == KS_KTY_EC && EVP_PKEY_is_a(pkey, "EC")) {
        const struct curve *c = curve_of(pkey);
        if (c == NULL || (out->crv != KS_CRV_NONE && out->crv != c->crv))
            goto out; /* a curve kvmock has not, or not the one asked for */
        out->crv = c->crv;
        st = byok_part(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &out->x);
        if (st == KV_OK)
            st = byok_part(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &out->y);
        if (st == KV_OK)
            st = byok_part(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &out->d);
    }
out:
    if (st == KV_ERR_BYOK_BLOB && openssl_oom())
        st = KV_ERR_NOMEM;
    EVP_PKEY_free(pkey);
    PKCS8_PRIV_KEY_INFO_free(p8);
    ERR_clear_error();
    return st;
}

static enum kv_status byok_open_once(const struct ks_material *kek, enum ks_release_enc enc,
                                     const struct kv_buf *ct, struct ks_jwk *out)
{
    if (kek->kty != KS_KTY_RSA || kek->pkey == NULL)
        return KV_ERR_BYOK_KEK;
    size_t rsa_len = (size_t)EVP_PKEY_get_size(kek->pkey);
    /* the wrapped AES key, then at least one block and the AIV of RFC 5649 */
    if (ct->len < rsa_len + 16 || (ct->len - rsa_len) % 8 != 0)
        return KV_ERR_BYOK_BLOB;
    const EVP_MD *md = wrap_md(enc);
    unsigned char aes[512]; /* an RSA-4096 block at most */
    size_t aes_len = sizeof(aes);
    struct kv_buf plain = {0};
    EVP_CIPHER_CTX *cctx = NULL;
    enum kv_status st = KV_ERR_BYOK_BLOB;
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, kek->pkey, NULL);
    if (pctx == NULL || EVP_PKEY_decrypt_init(pctx) <= 0 ||
        EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) <= 0 ||
        EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) <= 0 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) <= 0) {
        st = openssl_oom() ? KV_ERR_NOMEM : KV_ERR_CRYPTO;
        goto out;
    }
    if (EVP_PKEY_decrypt(pctx, aes, &aes_len, ct->data, rsa_len) <= 0 ||
        (aes_len != 16 && aes_len != 24 && aes_len != 32))
        goto out;
    size_t wrapped = ct->len - rsa_len;
    if (kv_buf_alloc(wrapped, &plain) != KV_OK) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    int l1 = 0, l2 = 0;
    cctx = EVP_CIPHER_CTX_new();
    if (cctx == NULL) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    if (EVP_DecryptInit_ex(cctx, aes_evp(AES_WRAP_PAD, aes_len), NULL, aes, NULL) != 1 ||
        EVP_DecryptUpdate(cctx, plain.data, &l1, ct->data + rsa_len, (int)wrapped) != 1 ||
        EVP_DecryptFinal_ex(cctx, plain.data + l1, &l2) != 1)
        goto out;
    plain.len = (size_t)(l1 + l2);
    if (out->kty == KS_KTY_OCT) {
        st = plain.len == 16 || plain.len == 24 || plain.len == 32
                 ? kv_buf_dup(plain.data, plain.len, &out->k)
                 : KV_ERR_BAD_KEY_SIZE;
    } else {
        st = byok_parts(&plain, out->kty, out);
    }
out:
    if (st == KV_ERR_BYOK_BLOB && openssl_oom())
        st = KV_ERR_NOMEM;
    sodium_memzero(aes, sizeof(aes));
    kv_buf_wipe(&plain);
    EVP_CIPHER_CTX_free(cctx);
    EVP_PKEY_CTX_free(pctx);
    ERR_clear_error();
    if (st != KV_OK)
        ks_jwk_wipe(out);
    return st;
}

/* OpenSSL hides why an RSA decryption failed, an allocation failure included, and a
 * PKCS#8 parse that ran out of memory need not say so: a blob refused once is opened
 * again before it is called bad (as rsa_decrypt and pkey_from_params do). */
enum kv_status ks_material_byok_open(const struct ks_material *kek, enum ks_release_enc enc,
                                     const struct kv_buf *ct, struct ks_jwk *out)
{
    enum ks_crv asked = out->crv; /* a refusal gives @p out back as it came */
    enum kv_status st = byok_open_once(kek, enc, ct, out);
    if (st == KV_ERR_BYOK_BLOB) {
        out->crv = asked;
        st = byok_open_once(kek, enc, ct, out);
    }
    if (st != KV_OK)
        out->crv = asked;
    return st;
}

void ks_jwk_wipe(struct ks_jwk *j)
{
    struct kv_buf *bufs[] = {&j->n,  &j->e,  &j->d, &j->p, &j->q, &j->dp,
                             &j->dq, &j->qi, &j->x, &j->y, &j->k};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++)
        kv_buf_wipe(bufs[i]);
}
