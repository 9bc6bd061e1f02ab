/*
 * Bring your own key: ks_material_byok_open (keystore-internal, keystore/crypto.h) with a
 * fixed key exchange key (an RSA-2048 key made at start), then ks_material_from_jwk on
 * the parts it gives, as the import does. Random ciphertexts never pass RSA-OAEP, so the
 * harness wraps the input itself, as a key transfer blob does: a fresh AES key under
 * RSA-OAEP for the KEK's public key (SHA-1, SHA-256 or SHA-384 as enc says, MGF1 the
 * same), then the key under AES key wrap with padding (RFC 5649), with OpenSSL EVP.
 * Input: byte 0 = enc (mod 3) and, in (byte 0 / 3) % 8, the mode: 0-4 the blob wraps the
 * rest; 5 the rest is the raw ciphertext (and is also given to a KEK that is not RSA);
 * 6 the RSA block holds an AES key of a length kvmock must refuse (byte 0 / 24 picks it);
 * 7 a wrapped blob with one change (byte 0 / 24: a byte of the RSA block, of the wrapped
 * key's first or last block, the last block cut off, or opened with another enc).
 * Byte 1 = the expected kty (mod 3), crv ((byte 1 / 3) % 5: none, P-256, P-256K, P-384,
 * P-521) and the AES key size ((byte 1 / 15) % 3: 16, 24, 32). The rest is the key the
 * blob carries: a PKCS#8 DER candidate for RSA and EC, the key bytes for oct.
 * Invariants: a refusal is one of byok_open's statuses and leaves every part empty; a
 * changed blob, a bad AES key or a raw ciphertext is refused; KV_OK for RSA/EC means the
 * rest is a PKCS#8 of that type (and the curve asked for, if any) whose parts these are,
 * and ks_material_from_jwk then accepts them (its public part is the parsed one) or
 * refuses with KV_ERR_BAD_JWK, KV_ERR_BAD_KEY_SIZE or KV_ERR_BAD_CURVE; for oct a wrapped
 * key of 16, 24 or 32 bytes opens to exactly those bytes, any other length is
 * KV_ERR_BAD_KEY_SIZE.
 */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "crypto.h"
#include "fuzz_common.h"
#include "ks.h"

static struct ks_material *kek;     /* the key exchange key */
static struct ks_material *not_rsa; /* a KEK that is not RSA */
static EVP_PKEY *kek_pub;           /* its public part, as a blob's maker has it */
static size_t kek_len;              /* modulus bytes */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    struct ks_pub pub = {0};
    if (ks_material_generate(KS_KTY_RSA, 2048, 65537, KS_CRV_NONE, &kek) != KV_OK ||
        ks_material_generate(KS_KTY_EC, 0, 0, KS_CRV_P256, &not_rsa) != KV_OK ||
        ks_material_public(kek, &pub) != KV_OK)
        abort();
    BIGNUM *n = BN_bin2bn(pub.n.data, (int)pub.n.len, NULL);
    BIGNUM *e = BN_bin2bn(pub.e.data, (int)pub.e.len, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (n == NULL || e == NULL || bld == NULL || ctx == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &kek_pub, EVP_PKEY_PUBLIC_KEY, params) != 1)
        abort();
    kek_len = (size_t)EVP_PKEY_get_size(kek_pub);
    if (kek_len != pub.n.len || kek_len != 256)
        abort();
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    BN_free(n);
    BN_free(e);
    ks_pub_clear(&pub);
    return 0;
}

static const EVP_MD *enc_md(enum ks_release_enc enc)
{
    return enc == KS_RELEASE_RSA_AES_KEY_WRAP_256   ? EVP_sha256()
           : enc == KS_RELEASE_RSA_AES_KEY_WRAP_384 ? EVP_sha384()
                                                    : EVP_sha1();
}

static const EVP_CIPHER *wrap_pad(size_t aes_len)
{
    return aes_len == 16   ? EVP_aes_128_wrap_pad()
           : aes_len == 24 ? EVP_aes_192_wrap_pad()
                           : EVP_aes_256_wrap_pad();
}

/*
 * A key transfer blob's ciphertext for the KEK: @p aes_len bytes of a random AES key under
 * RSA-OAEP, then @p plain (@p plen bytes, at least 1) wrapped with a random key of
 * @p wrap_len (16, 24, 32) bytes; the two keys are one unless @p aes_len is not a key size.
 * Into @p out (exact size, for ASan).
 */
static void blob_make(enum ks_release_enc enc, size_t aes_len, size_t wrap_len,
                      const uint8_t *plain, size_t plen, struct kv_buf *out)
{
    unsigned char key[64];
    if (RAND_bytes(key, sizeof(key)) != 1)
        abort();
    size_t wlen = (plen + 7) / 8 * 8 + 8;
    if (kv_buf_alloc(kek_len + wlen, out) != KV_OK)
        abort();
    size_t rsa_len = kek_len;
    const EVP_MD *md = enc_md(enc);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_pkey(NULL, kek_pub, NULL);
    FUZZ_ASSERT(pctx != NULL && EVP_PKEY_encrypt_init(pctx) == 1 &&
                EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
                EVP_PKEY_CTX_set_rsa_oaep_md(pctx, md) == 1 &&
                EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md) == 1 &&
                EVP_PKEY_encrypt(pctx, out->data, &rsa_len, key, aes_len) == 1 &&
                rsa_len == kek_len);
    EVP_PKEY_CTX_free(pctx);
    EVP_CIPHER_CTX *cctx = EVP_CIPHER_CTX_new();
    int l1 = 0, l2 = 0;
    FUZZ_ASSERT(cctx != NULL);
    EVP_CIPHER_CTX_set_flags(cctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
    FUZZ_ASSERT(EVP_EncryptInit_ex(cctx, wrap_pad(wrap_len), NULL, key, NULL) == 1 &&
                EVP_EncryptUpdate(cctx, out->data + kek_len, &l1, plain, (int)plen) == 1 &&
                EVP_EncryptFinal_ex(cctx, out->data + kek_len + l1, &l2) == 1 &&
                (size_t)(l1 + l2) == wlen);
    EVP_CIPHER_CTX_free(cctx);
    OPENSSL_cleanse(key, sizeof(key));
}

static int parts_empty(const struct ks_jwk *j)
{
    const struct kv_buf *b[] = {&j->n,  &j->e,  &j->d, &j->p, &j->q, &j->dp,
                                &j->dq, &j->qi, &j->x, &j->y, &j->k};
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        if (b[i]->len != 0 || b[i]->data != NULL)
            return 0;
    return 1;
}

static int byok_status(enum kv_status st)
{
    return st == KV_ERR_BYOK_KEK || st == KV_ERR_BYOK_BLOB || st == KV_ERR_BAD_KEY_SIZE ||
           st == KV_ERR_CRYPTO || st == KV_ERR_NOMEM;
}

/* Whether big-endian @p a and @p b are the same number (leading zeros aside). */
static int num_eq(const struct kv_buf *a, const struct kv_buf *b)
{
    size_t i = 0, j = 0;
    while (i < a->len && a->data[i] == 0)
        i++;
    while (j < b->len && b->data[j] == 0)
        j++;
    return a->len - i == b->len - j &&
           (a->len == i || memcmp(a->data + i, b->data + j, a->len - i) == 0);
}

/* Whether parameter @p name of @p pkey is the number in @p part. */
static int param_is(const EVP_PKEY *pkey, const char *name, const struct kv_buf *part)
{
    BIGNUM *bn = NULL, *p = NULL;
    int eq = EVP_PKEY_get_bn_param(pkey, name, &bn) == 1 && bn != NULL &&
             (p = BN_bin2bn(part->data != NULL ? part->data : (const unsigned char *)"",
                            (int)part->len, NULL)) != NULL &&
             BN_cmp(bn, p) == 0;
    BN_clear_free(bn);
    BN_clear_free(p);
    return eq;
}

static enum ks_crv crv_of_group(const EVP_PKEY *pkey)
{
    char name[80];
    size_t len = 0;
    if (EVP_PKEY_get_group_name(pkey, name, sizeof(name), &len) != 1)
        return KS_CRV_NONE;
    if (strcmp(name, "prime256v1") == 0 || strcmp(name, "P-256") == 0)
        return KS_CRV_P256;
    if (strcmp(name, "secp256k1") == 0)
        return KS_CRV_P256K;
    if (strcmp(name, "secp384r1") == 0 || strcmp(name, "P-384") == 0)
        return KS_CRV_P384;
    if (strcmp(name, "secp521r1") == 0 || strcmp(name, "P-521") == 0)
        return KS_CRV_P521;
    return KS_CRV_NONE;
}

/* KV_OK for RSA or EC: @p der is a whole PKCS#8 of @p asked's type (and curve), and @p j
 * holds its parts. */
static void check_pkcs8(const uint8_t *der, size_t len, const struct ks_jwk *asked,
                        const struct ks_jwk *j)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    FUZZ_ASSERT(p8 != NULL && p == der + len);
    EVP_PKEY *pkey = EVP_PKCS82PKEY(p8);
    FUZZ_ASSERT(pkey != NULL);
    FUZZ_ASSERT(j->k.len == 0);
    if (asked->kty == KS_KTY_RSA) {
        FUZZ_ASSERT(EVP_PKEY_is_a(pkey, "RSA"));
        FUZZ_ASSERT(param_is(pkey, OSSL_PKEY_PARAM_RSA_N, &j->n) &&
                    param_is(pkey, OSSL_PKEY_PARAM_RSA_E, &j->e) &&
                    param_is(pkey, OSSL_PKEY_PARAM_RSA_D, &j->d) &&
                    param_is(pkey, OSSL_PKEY_PARAM_RSA_FACTOR1, &j->p) &&
                    param_is(pkey, OSSL_PKEY_PARAM_RSA_FACTOR2, &j->q));
        FUZZ_ASSERT(j->x.len == 0 && j->y.len == 0);
    } else {
        FUZZ_ASSERT(EVP_PKEY_is_a(pkey, "EC"));
        enum ks_crv crv = crv_of_group(pkey);
        FUZZ_ASSERT(crv != KS_CRV_NONE && j->crv == crv);
        FUZZ_ASSERT(asked->crv == KS_CRV_NONE || asked->crv == crv);
        FUZZ_ASSERT(param_is(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &j->x) &&
                    param_is(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &j->y) &&
                    param_is(pkey, OSSL_PKEY_PARAM_PRIV_KEY, &j->d));
        FUZZ_ASSERT(j->n.len == 0 && j->e.len == 0 && j->p.len == 0);
    }
    EVP_PKEY_free(pkey);
    PKCS8_PRIV_KEY_INFO_free(p8);
}

/* KV_OK: the import builds the key from the parts, or refuses them as a bad JWK. */
static void check_import(const struct ks_jwk *j)
{
    struct ks_material *m = NULL;
    enum kv_status st = ks_material_from_jwk(j, &m);
    if (j->kty == KS_KTY_OCT)
        FUZZ_ASSERT(st == KV_OK);
    if (st != KV_OK) {
        FUZZ_ASSERT(st == KV_ERR_BAD_JWK || st == KV_ERR_BAD_KEY_SIZE || st == KV_ERR_BAD_CURVE);
        FUZZ_ASSERT(m == NULL);
        return;
    }
    FUZZ_ASSERT(ks_material_kty(m) == j->kty);
    struct ks_pub pub = {0};
    FUZZ_ASSERT(ks_material_public(m, &pub) == KV_OK);
    switch (j->kty) {
    case KS_KTY_RSA:
        FUZZ_ASSERT(num_eq(&pub.n, &j->n) && num_eq(&pub.e, &j->e));
        break;
    case KS_KTY_EC:
        FUZZ_ASSERT(pub.crv == j->crv && num_eq(&pub.x, &j->x) && num_eq(&pub.y, &j->y));
        break;
    default:
        FUZZ_ASSERT(pub.size_bits == (int)(8 * j->k.len));
        break;
    }
    ks_pub_clear(&pub);
    ks_material_free(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const size_t bad_aes[8] = {0, 1, 8, 15, 17, 31, 33, 64};
    enum ks_release_enc enc = (enum ks_release_enc)(data[0] % 3), open_enc = enc;
    unsigned mode = (data[0] / 3u) % 8u, sub = data[0] / 24u;
    struct ks_jwk asked = {.kty = (enum ks_kty)(data[1] % 3),
                           .crv = (enum ks_crv)((data[1] / 3) % 5)};
    size_t aes_len = 16 + 8 * (size_t)((data[1] / 15) % 3);
    const uint8_t *plain = data + 2;
    size_t plen = size - 2;

    struct kv_buf ct = {0};
    int must_refuse = 1; /* a raw, changed or bad-key blob */
    if (mode == 5) {
        /* an exact-size copy, so ASan sees reads past the blob */
        if (kv_buf_dup(plain, plen, &ct) != KV_OK)
            abort();
        struct ks_jwk j = asked;
        FUZZ_ASSERT(ks_material_byok_open(not_rsa, enc, &ct, &j) == KV_ERR_BYOK_KEK);
        FUZZ_ASSERT(parts_empty(&j));
    } else if (plen == 0) {
        /* nothing to wrap (RFC 5649 wraps at least one byte): the RSA block alone */
        blob_make(enc, mode == 6 ? bad_aes[sub % 8] : aes_len, aes_len, (const uint8_t *)"", 1,
                  &ct);
        ct.len = kek_len;
    } else if (mode == 6) {
        blob_make(enc, bad_aes[sub % 8], aes_len, plain, plen, &ct);
    } else {
        blob_make(enc, aes_len, aes_len, plain, plen, &ct);
        must_refuse = mode == 7;
        if (mode == 7) {
            switch (sub % 5) {
            case 0:
                ct.data[sub % kek_len] ^= 0x01;
                break;
            case 1:
                ct.data[kek_len] ^= 0x80;
                break;
            case 2:
                ct.data[ct.len - 1] ^= 0x01;
                break;
            case 3:
                ct.len -= 8;
                break;
            default:
                open_enc = (enum ks_release_enc)((enc + 1) % 3);
                break;
            }
        }
    }

    struct ks_jwk j = asked;
    enum kv_status st = ks_material_byok_open(kek, open_enc, &ct, &j);
    if (st != KV_OK) {
        FUZZ_ASSERT(byok_status(st) && st != KV_ERR_BYOK_KEK);
        FUZZ_ASSERT(parts_empty(&j));
        if (must_refuse)
            FUZZ_ASSERT(st == KV_ERR_BYOK_BLOB);
        else if (asked.kty == KS_KTY_OCT)
            FUZZ_ASSERT(st == KV_ERR_BAD_KEY_SIZE && plen != 16 && plen != 24 && plen != 32);
    } else {
        FUZZ_ASSERT(!must_refuse && plen > 0);
        FUZZ_ASSERT(j.kty == asked.kty);
        if (asked.kty == KS_KTY_OCT) {
            FUZZ_ASSERT(plen == 16 || plen == 24 || plen == 32);
            FUZZ_ASSERT(j.k.len == plen && memcmp(j.k.data, plain, plen) == 0);
            FUZZ_ASSERT(j.n.len == 0 && j.d.len == 0 && j.x.len == 0);
        } else {
            check_pkcs8(plain, plen, &asked, &j);
        }
        check_import(&j);
    }
    ks_jwk_wipe(&j);
    FUZZ_ASSERT(parts_empty(&j));
    kv_buf_free(&ct);
    return 0;
}
