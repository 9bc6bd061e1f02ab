/*
 * Key material and key operations: generation, public parts, serialisation,
 * JWK import, every algorithm in both directions, known-answer vectors,
 * cross-checks against OpenSSL contexts built here, and the documented
 * status codes for wrong algorithms, wrong lengths and corrupt inputs.
 */
#include <pthread.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "check.h"
#include "crypto.h"

#define N_RSA 3
#define N_EC  4
#define N_OCT 3

static struct ks_material *rsa[N_RSA]; /* 2048/65537, 3072/3, 4096/65537 */
static struct ks_material *ec[N_EC];   /* P-256, P-256K, P-384, P-521 */
static struct ks_material *oct[N_OCT]; /* 128, 192, 256 bits */

static const int rsa_bits[N_RSA] = {2048, 3072, 4096};
static const unsigned long rsa_exp[N_RSA] = {65537, 3, 65537};
static const enum ks_crv ec_crv[N_EC] = {KS_CRV_P256, KS_CRV_P256K, KS_CRV_P384, KS_CRV_P521};
static const size_t ec_field[N_EC] = {32, 32, 48, 66};
static const int ec_bits[N_EC] = {256, 256, 384, 521};
static const enum ks_alg ec_alg[N_EC] = {KS_ALG_ES256, KS_ALG_ES256K, KS_ALG_ES384, KS_ALG_ES512};

/* ---- helpers ------------------------------------------------------------------ */

/** A borrowed view of bytes as a kv_buf. */
static struct kv_buf view(const void *data, size_t len)
{
    return (struct kv_buf){(unsigned char *)data, len};
}

static int buf_eq(const struct kv_buf *a, const struct kv_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static size_t unhex(const char *hex, unsigned char *out, size_t cap)
{
    size_t len = 0;
    CHECK(sodium_hex2bin(out, cap, hex, strlen(hex), NULL, &len, NULL) == 0);
    return len;
}

/** Run one operation with just an algorithm and a value. */
static enum kv_status op1(const struct ks_material *m, unsigned op, enum ks_alg alg,
                          const struct kv_buf *value, struct ks_op_result *out)
{
    struct ks_op_params p = {.alg = alg, .value = *value};
    return ks_material_op(m, op, &p, out);
}

/** Verify @p sig over @p digest; returns verified, or -1 when the call fails. */
static int verify(const struct ks_material *m, enum ks_alg alg, const struct kv_buf *digest,
                  const struct kv_buf *sig)
{
    struct ks_op_params p = {.alg = alg, .value = *sig, .digest = *digest};
    struct ks_op_result r = {0};
    enum kv_status st = ks_material_op(m, KS_OP_VERIFY, &p, &r);
    int v = st == KV_OK ? r.verified : -1;
    ks_op_result_clear(&r);
    return v;
}

/* The serialised EC form (crypto.h): 0x01, the curve's code, the private scalar,
 * the uncompressed public point. Curve codes and OpenSSL group names: */
static const char *const ec_code_group[] = {NULL, "prime256v1", "secp256k1", "secp384r1",
                                            "secp521r1"};
static const size_t ec_code_field[] = {0, 32, 32, 48, 66};

/* An EC key built here from the serialised form, and checked by OpenSSL
 * (public point on the curve and equal to d*G). */
static EVP_PKEY *ec_form_to_pkey(const struct kv_buf *b)
{
    CHECK(b->len > 2 && b->data[0] == 0x01 && b->data[1] >= 1 && b->data[1] <= 4);
    if (b->len <= 2 || b->data[1] < 1 || b->data[1] > 4)
        return NULL;
    size_t fl = ec_code_field[b->data[1]];
    CHECK(b->len == 2 + fl + 1 + 2 * fl && b->data[2 + fl] == 0x04);
    if (b->len != 2 + fl + 1 + 2 * fl)
        return NULL;
    BIGNUM *d = BN_bin2bn(b->data + 2, (int)fl, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, ec_code_group[b->data[1]], 0);
    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, b->data + 2 + fl, 1 + 2 * fl);
    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, d);
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pkey = NULL;
    CHECK(EVP_PKEY_fromdata_init(ctx) == 1 &&
          EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_KEYPAIR, params) == 1);
    EVP_PKEY_CTX *check = pkey ? EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL) : NULL;
    CHECK(check != NULL && EVP_PKEY_check(check) == 1);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(d);
    return pkey;
}

/** An independent OpenSSL view of a material: its serialised form (PKCS#8 DER
 * for RSA, kvmock's own form for EC) parsed here. */
static EVP_PKEY *to_pkey(const struct ks_material *m)
{
    struct kv_buf der = {0};
    CHECK_ST(ks_material_serialize(m, &der), KV_OK);
    EVP_PKEY *pkey = NULL;
    if (ks_material_kty(m) == KS_KTY_EC) {
        pkey = ec_form_to_pkey(&der);
    } else {
        const unsigned char *p = der.data;
        pkey = d2i_AutoPrivateKey(NULL, &p, (long)der.len);
    }
    CHECK(pkey != NULL);
    kv_buf_wipe(&der);
    return pkey;
}

static struct ks_material *reload(const struct ks_material *m)
{
    struct kv_buf ser = {0};
    struct ks_material *copy = NULL;
    CHECK_ST(ks_material_serialize(m, &ser), KV_OK);
    CHECK_ST(ks_material_deserialize(ks_material_kty(m), ser.data, ser.len, &copy), KV_OK);
    kv_buf_wipe(&ser);
    return copy;
}

static int pub_eq(const struct ks_material *a, const struct ks_material *b)
{
    struct ks_pub pa = {0}, pb = {0};
    CHECK_ST(ks_material_public(a, &pa), KV_OK);
    CHECK_ST(ks_material_public(b, &pb), KV_OK);
    int eq = buf_eq(&pa.n, &pb.n) && buf_eq(&pa.e, &pb.e) && buf_eq(&pa.x, &pb.x) &&
             buf_eq(&pa.y, &pb.y) && pa.crv == pb.crv && pa.size_bits == pb.size_bits;
    ks_pub_clear(&pa);
    ks_pub_clear(&pb);
    return eq;
}

/** A BIGNUM parameter of @p pkey as bytes (left-padded to @p pad when non-zero). */
static struct kv_buf bn_bytes(const EVP_PKEY *pkey, const char *name, size_t pad)
{
    BIGNUM *bn = NULL;
    struct kv_buf b = {0};
    CHECK(EVP_PKEY_get_bn_param(pkey, name, &bn) == 1);
    if (bn == NULL)
        return b;
    size_t n = pad != 0 ? pad : (size_t)BN_num_bytes(bn);
    CHECK_ST(kv_buf_alloc(n, &b), KV_OK);
    CHECK(BN_bn2binpad(bn, b.data, (int)n) == (int)n);
    BN_clear_free(bn);
    return b;
}

static void digest_of(const EVP_MD *md, const void *msg, size_t len, unsigned char *out,
                      size_t *out_len)
{
    unsigned int n = 0;
    CHECK(EVP_Digest(msg, len, out, &n, md, NULL) == 1);
    *out_len = n;
}

static const EVP_MD *md_of(enum ks_alg alg)
{
    switch (alg) {
    case KS_ALG_RS384:
    case KS_ALG_PS384:
    case KS_ALG_ES384:
    case KS_ALG_HS384:
        return EVP_sha384();
    case KS_ALG_RS512:
    case KS_ALG_PS512:
    case KS_ALG_ES512:
    case KS_ALG_HS512:
        return EVP_sha512();
    default:
        return EVP_sha256();
    }
}

/** OpenSSL's own verdict on an RSA signature over @p msg (PSS: salt = hash length). */
static int ossl_rsa_verify(EVP_PKEY *pkey, const EVP_MD *md, int pss, const void *msg, size_t len,
                           const struct kv_buf *sig)
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pc = NULL;
    int ok = c != NULL && EVP_DigestVerifyInit(c, &pc, md, NULL, pkey) == 1;
    if (ok && pss)
        ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, EVP_MD_get_size(md)) > 0;
    ok = ok && EVP_DigestVerify(c, sig->data, sig->len, msg, len) == 1;
    EVP_MD_CTX_free(c);
    return ok;
}

/** OpenSSL's own verdict on a raw R||S ECDSA signature over @p msg. */
static int ossl_ecdsa_verify(EVP_PKEY *pkey, const EVP_MD *md, const void *msg, size_t len,
                             const struct kv_buf *raw)
{
    size_t fl = raw->len / 2;
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(raw->data, (int)fl, NULL), *s = BN_bin2bn(raw->data + fl, (int)fl, NULL);
    CHECK(sig != NULL && r != NULL && s != NULL && ECDSA_SIG_set0(sig, r, s) == 1);
    unsigned char *der = NULL;
    int der_len = i2d_ECDSA_SIG(sig, &der);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int ok = der_len > 0 && c != NULL && EVP_DigestVerifyInit(c, NULL, md, NULL, pkey) == 1 &&
             EVP_DigestVerify(c, der, (size_t)der_len, msg, len) == 1;
    EVP_MD_CTX_free(c);
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    return ok;
}

/** RSA encrypt (@p enc) or decrypt with a context built here, not by crypto.c. */
static int ossl_rsa_crypt(EVP_PKEY *pkey, int enc, int pad, const EVP_MD *md,
                          const struct kv_buf *in, unsigned char *out, size_t *out_len)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    int ok = c != NULL && (enc ? EVP_PKEY_encrypt_init(c) : EVP_PKEY_decrypt_init(c)) > 0 &&
             EVP_PKEY_CTX_set_rsa_padding(c, pad) > 0;
    if (ok && md != NULL)
        ok = EVP_PKEY_CTX_set_rsa_oaep_md(c, md) > 0 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, md) > 0;
    if (ok)
        ok = (enc ? EVP_PKEY_encrypt(c, out, out_len, in->data, in->len)
                  : EVP_PKEY_decrypt(c, out, out_len, in->data, in->len)) > 0;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* ---- generation and public parts ---------------------------------------------- */

static void test_generate(void)
{
    for (int i = 0; i < N_RSA; i++) {
        CHECK_ST(ks_material_generate(KS_KTY_RSA, rsa_bits[i], rsa_exp[i], KS_CRV_NONE, &rsa[i]),
                 KV_OK);
        CHECK(rsa[i] != NULL && ks_material_kty(rsa[i]) == KS_KTY_RSA);
        struct ks_pub pub = {0};
        CHECK_ST(ks_material_public(rsa[i], &pub), KV_OK);
        CHECK(pub.size_bits == rsa_bits[i]);
        CHECK(pub.n.len == (size_t)rsa_bits[i] / 8 && pub.n.data[0] >= 0x80);
        if (rsa_exp[i] == 3)
            CHECK(pub.e.len == 1 && pub.e.data[0] == 3);
        else
            CHECK(pub.e.len == 3 && memcmp(pub.e.data, "\x01\x00\x01", 3) == 0);
        CHECK(pub.x.len == 0 && pub.y.len == 0 && pub.crv == KS_CRV_NONE);
        ks_pub_clear(&pub);
        CHECK(pub.n.data == NULL && pub.n.len == 0 && pub.e.data == NULL && pub.size_bits == 0);
    }
    for (int i = 0; i < N_EC; i++) {
        CHECK_ST(ks_material_generate(KS_KTY_EC, 0, 0, ec_crv[i], &ec[i]), KV_OK);
        CHECK(ec[i] != NULL && ks_material_kty(ec[i]) == KS_KTY_EC);
        struct ks_pub pub = {0};
        CHECK_ST(ks_material_public(ec[i], &pub), KV_OK);
        CHECK(pub.crv == ec_crv[i] && pub.size_bits == ec_bits[i]);
        CHECK(pub.x.len == ec_field[i] && pub.y.len == ec_field[i]);
        CHECK(pub.n.len == 0 && pub.e.len == 0);
        ks_pub_clear(&pub);
        CHECK(pub.x.data == NULL && pub.y.data == NULL && pub.crv == KS_CRV_NONE);
        /* OpenSSL's full key check on the new key: the scalar is in [1, n-1], the
         * point is on the curve and equals d*G (ec_form_to_pkey) */
        EVP_PKEY_free(to_pkey(ec[i]));
        /* a second key on the curve has another scalar and point */
        struct ks_material *e2 = NULL;
        struct kv_buf s1 = {0}, s2 = {0};
        CHECK_ST(ks_material_generate(KS_KTY_EC, 0, 0, ec_crv[i], &e2), KV_OK);
        CHECK_ST(ks_material_serialize(ec[i], &s1), KV_OK);
        CHECK_ST(ks_material_serialize(e2, &s2), KV_OK);
        size_t fl = ec_field[i];
        CHECK(s1.len == s2.len && memcmp(s1.data + 2, s2.data + 2, fl) != 0 &&
              memcmp(s1.data + 2 + fl, s2.data + 2 + fl, 1 + 2 * fl) != 0);
        kv_buf_wipe(&s1);
        kv_buf_wipe(&s2);
        ks_material_free(e2);
    }
    for (int i = 0; i < N_OCT; i++) {
        CHECK_ST(ks_material_generate(KS_KTY_OCT, 128 + 64 * i, 0, KS_CRV_NONE, &oct[i]), KV_OK);
        CHECK(oct[i] != NULL && ks_material_kty(oct[i]) == KS_KTY_OCT);
        struct ks_pub pub = {0};
        CHECK_ST(ks_material_public(oct[i], &pub), KV_OK);
        CHECK(pub.size_bits == 128 + 64 * i);
        CHECK(pub.n.len == 0 && pub.e.len == 0 && pub.x.len == 0 && pub.y.len == 0);
        ks_pub_clear(&pub);
    }
    /* two oct keys differ */
    struct kv_buf a = {0}, b = {0};
    CHECK_ST(ks_material_serialize(oct[2], &a), KV_OK);
    struct ks_material *o2 = NULL;
    CHECK_ST(ks_material_generate(KS_KTY_OCT, 256, 0, KS_CRV_NONE, &o2), KV_OK);
    CHECK_ST(ks_material_serialize(o2, &b), KV_OK);
    CHECK(a.len == 32 && b.len == 32 && memcmp(a.data, b.data, 32) != 0);
    kv_buf_wipe(&a);
    kv_buf_wipe(&b);
    ks_material_free(o2);

    /* refused parameters; the output is left alone */
    struct ks_material *m = NULL;
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 1024, 65537, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 2047, 65537, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 8192, 65537, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 2048, 5, KS_CRV_NONE, &m), KV_ERR_BAD_EXPONENT);
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 2048, 65536, KS_CRV_NONE, &m), KV_ERR_BAD_EXPONENT);
    CHECK_ST(ks_material_generate(KS_KTY_RSA, 2048, 0, KS_CRV_NONE, &m), KV_ERR_BAD_EXPONENT);
    CHECK_ST(ks_material_generate(KS_KTY_EC, 0, 0, KS_CRV_NONE, &m), KV_ERR_BAD_CURVE);
    CHECK_ST(ks_material_generate(KS_KTY_EC, 256, 0, (enum ks_crv)42, &m), KV_ERR_BAD_CURVE);
    CHECK_ST(ks_material_generate(KS_KTY_OCT, 64, 0, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate(KS_KTY_OCT, 512, 0, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate(KS_KTY_OCT, 0, 0, KS_CRV_NONE, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_material_generate((enum ks_kty)9, 2048, 65537, KS_CRV_NONE, &m), KV_ERR_BAD_KTY);
    CHECK(m == NULL);
    ks_material_free(NULL);
}

/* ---- serialisation -------------------------------------------------------------- */

static void test_serialize(void)
{
    unsigned char dg[32];
    size_t dg_len = 0;
    digest_of(EVP_sha256(), "round trip", 10, dg, &dg_len);
    struct kv_buf digest = view(dg, dg_len);

    for (int i = 0; i < N_RSA; i++) {
        struct ks_material *copy = reload(rsa[i]);
        CHECK(copy != NULL && ks_material_kty(copy) == KS_KTY_RSA && pub_eq(rsa[i], copy));
        /* sign with the copy, verify with the original and the reverse */
        struct ks_op_result s = {0};
        CHECK_ST(op1(copy, KS_OP_SIGN, KS_ALG_PS256, &digest, &s), KV_OK);
        CHECK(verify(rsa[i], KS_ALG_PS256, &digest, &s.value) == 1);
        ks_op_result_clear(&s);
        CHECK_ST(op1(rsa[i], KS_OP_SIGN, KS_ALG_RS256, &digest, &s), KV_OK);
        CHECK(verify(copy, KS_ALG_RS256, &digest, &s.value) == 1);
        ks_op_result_clear(&s);
        /* wrap with the copy, unwrap with the original */
        struct ks_op_result w = {0}, u = {0};
        CHECK_ST(op1(copy, KS_OP_WRAP, KS_ALG_RSA_OAEP_256, &digest, &w), KV_OK);
        CHECK_ST(op1(rsa[i], KS_OP_UNWRAP, KS_ALG_RSA_OAEP_256, &w.value, &u), KV_OK);
        CHECK(buf_eq(&u.value, &digest));
        ks_op_result_clear(&w);
        ks_op_result_clear(&u);
        ks_material_free(copy);
    }
    for (int i = 0; i < N_EC; i++) {
        struct ks_material *copy = reload(ec[i]);
        CHECK(copy != NULL && ks_material_kty(copy) == KS_KTY_EC && pub_eq(ec[i], copy));
        unsigned char d2[64];
        size_t d2_len = 0;
        digest_of(md_of(ec_alg[i]), "round trip", 10, d2, &d2_len);
        struct kv_buf dgst = view(d2, d2_len);
        struct ks_op_result s = {0};
        CHECK_ST(op1(copy, KS_OP_SIGN, ec_alg[i], &dgst, &s), KV_OK);
        CHECK(verify(ec[i], ec_alg[i], &dgst, &s.value) == 1);
        ks_op_result_clear(&s);
        CHECK_ST(op1(ec[i], KS_OP_SIGN, ec_alg[i], &dgst, &s), KV_OK);
        CHECK(verify(copy, ec_alg[i], &dgst, &s.value) == 1);
        ks_op_result_clear(&s);
        ks_material_free(copy);
    }
    static const enum ks_alg kw[N_OCT] = {KS_ALG_A128KW, KS_ALG_A192KW, KS_ALG_A256KW};
    for (int i = 0; i < N_OCT; i++) {
        struct kv_buf raw = {0};
        CHECK_ST(ks_material_serialize(oct[i], &raw), KV_OK);
        CHECK(raw.len == (size_t)(16 + 8 * i));
        kv_buf_wipe(&raw);
        struct ks_material *copy = reload(oct[i]);
        CHECK(copy != NULL && ks_material_kty(copy) == KS_KTY_OCT && pub_eq(oct[i], copy));
        struct ks_op_result w = {0}, u = {0};
        CHECK_ST(op1(oct[i], KS_OP_WRAP, kw[i], &digest, &w), KV_OK);
        CHECK_ST(op1(copy, KS_OP_UNWRAP, kw[i], &w.value, &u), KV_OK);
        CHECK(buf_eq(&u.value, &digest));
        ks_op_result_clear(&w);
        ks_op_result_clear(&u);
        ks_material_free(copy);
    }

    /* bytes that do not parse, or parse as the wrong type */
    struct kv_buf rsa_der = {0}, ec_der = {0};
    CHECK_ST(ks_material_serialize(rsa[0], &rsa_der), KV_OK);
    CHECK_ST(ks_material_serialize(ec[0], &ec_der), KV_OK);
    struct ks_material *m = NULL;
    const unsigned char junk[] = "this is not DER at all";
    CHECK_ST(ks_material_deserialize(KS_KTY_RSA, junk, sizeof(junk), &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, junk, sizeof(junk), &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_RSA, junk, 0, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, rsa_der.data, rsa_der.len, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_RSA, ec_der.data, ec_der.len, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_RSA, rsa_der.data, rsa_der.len - 1, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_OCT, junk, 20, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_OCT, junk, 0, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize((enum ks_kty)9, junk, 16, &m), KV_ERR_CRYPTO);
    /* trailing bytes after the DER */
    struct kv_buf longer = {0};
    CHECK_ST(kv_buf_alloc(ec_der.len + 1, &longer), KV_OK);
    memcpy(longer.data, ec_der.data, ec_der.len);
    longer.data[ec_der.len] = 0;
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, longer.data, longer.len, &m), KV_ERR_CRYPTO);
    CHECK(m == NULL);
    kv_buf_wipe(&longer);
    /* RSA's serialised form is PKCS#8 (PrivateKeyInfo: version 0 then an AlgorithmIdentifier) */
    CHECK(rsa_der.len > 8 && rsa_der.data[0] == 0x30);
    const unsigned char *p = rsa_der.data;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)rsa_der.len);
    CHECK(p8 != NULL && p == rsa_der.data + rsa_der.len);
    PKCS8_PRIV_KEY_INFO_free(p8);

    /* EC's own form: an unknown curve code, a cut or longer one, a compressed
     * point marker are refused */
    struct kv_buf bad = {0};
    CHECK_ST(kv_buf_dup(ec_der.data, ec_der.len, &bad), KV_OK);
    bad.data[1] = 9;
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, bad.data, bad.len, &m), KV_ERR_CRYPTO);
    bad.data[1] = ec_der.data[1];
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, bad.data, bad.len - 1, &m), KV_ERR_CRYPTO);
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, bad.data, 1, &m), KV_ERR_CRYPTO);
    bad.data[2 + 32] = 0x02; /* ec[0] is P-256: the point starts after 32 bytes of scalar */
    CHECK_ST(ks_material_deserialize(KS_KTY_EC, bad.data, bad.len, &m), KV_ERR_CRYPTO);
    CHECK(m == NULL);
    kv_buf_wipe(&bad);

    /* EC keys stored as PKCS#8 DER (kvmock before the own form) still load */
    for (int i = 0; i < N_EC; i++) {
        EVP_PKEY *pkey = to_pkey(ec[i]);
        PKCS8_PRIV_KEY_INFO *info = pkey ? EVP_PKEY2PKCS8(pkey) : NULL;
        unsigned char *der = NULL;
        int len = info ? i2d_PKCS8_PRIV_KEY_INFO(info, &der) : -1;
        CHECK(len > 0 && der[0] == 0x30);
        struct ks_material *old = NULL;
        if (len > 0)
            CHECK_ST(ks_material_deserialize(KS_KTY_EC, der, (size_t)len, &old), KV_OK);
        CHECK(old != NULL && pub_eq(ec[i], old));
        struct ks_material *again = old ? reload(old) : NULL; /* and is saved in the new form */
        CHECK(again != NULL && pub_eq(ec[i], again));
        ks_material_free(again);
        ks_material_free(old);
        OPENSSL_clear_free(der, len > 0 ? (size_t)len : 0);
        PKCS8_PRIV_KEY_INFO_free(info);
        EVP_PKEY_free(pkey);
    }
    kv_buf_wipe(&rsa_der);
    kv_buf_wipe(&ec_der);
}

/* ---- RSA ---------------------------------------------------------------------- */

static void test_rsa_encrypt(const struct ks_material *m)
{
    struct ks_pub pub = {0};
    CHECK_ST(ks_material_public(m, &pub), KV_OK);
    size_t k = pub.n.len;
    ks_pub_clear(&pub);
    EVP_PKEY *pkey = to_pkey(m);

    static const enum ks_alg algs[] = {KS_ALG_RSA_OAEP, KS_ALG_RSA_OAEP_256, KS_ALG_RSA1_5};
    const size_t overhead[] = {42, 66, 11};
    const EVP_MD *mds[] = {EVP_sha1(), EVP_sha256(), NULL};
    const int pads[] = {RSA_PKCS1_OAEP_PADDING, RSA_PKCS1_OAEP_PADDING, RSA_PKCS1_PADDING};
    unsigned char secret[512], out[512];
    randombytes_buf(secret, sizeof(secret));

    for (int a = 0; a < 3; a++) {
        for (int w = 0; w < 2; w++) {
            unsigned enc = w ? KS_OP_WRAP : KS_OP_ENCRYPT, dec = w ? KS_OP_UNWRAP : KS_OP_DECRYPT;
            struct kv_buf pt = view(secret, 32);
            struct ks_op_result c1 = {0}, c2 = {0}, d = {0};
            CHECK_ST(op1(m, enc, algs[a], &pt, &c1), KV_OK);
            CHECK(c1.value.len == k && c1.iv.len == 0 && c1.tag.len == 0);
            CHECK_ST(op1(m, enc, algs[a], &pt, &c2), KV_OK);
            CHECK(!buf_eq(&c1.value, &c2.value)); /* randomised padding */
            CHECK_ST(op1(m, dec, algs[a], &c1.value, &d), KV_OK);
            CHECK(buf_eq(&d.value, &pt));
            ks_op_result_clear(&d);

            /* OpenSSL, set up here, decrypts ours and we decrypt its */
            size_t out_len = sizeof(out);
            CHECK(ossl_rsa_crypt(pkey, 0, pads[a], mds[a], &c2.value, out, &out_len));
            CHECK(out_len == 32 && memcmp(out, secret, 32) == 0);
            out_len = sizeof(out);
            CHECK(ossl_rsa_crypt(pkey, 1, pads[a], mds[a], &pt, out, &out_len));
            struct kv_buf theirs = view(out, out_len);
            CHECK_ST(op1(m, dec, algs[a], &theirs, &d), KV_OK);
            CHECK(buf_eq(&d.value, &pt));
            ks_op_result_clear(&d);

            /* corrupt ciphertext */
            c1.value.data[k / 2] ^= 0x40;
            enum kv_status st = op1(m, dec, algs[a], &c1.value, &d);
            if (algs[a] == KS_ALG_RSA1_5) /* implicit rejection may give random bytes */
                CHECK(st == KV_ERR_CRYPTO_FAILED || (st == KV_OK && !buf_eq(&d.value, &pt)));
            else
                CHECK_ST(st, KV_ERR_CRYPTO_FAILED);
            ks_op_result_clear(&d);
            /* wrong ciphertext length */
            struct kv_buf shorter = view(c2.value.data, k - 1);
            CHECK_ST(op1(m, dec, algs[a], &shorter, &d), KV_ERR_BAD_INPUT_LENGTH);
            struct kv_buf empty = view(NULL, 0);
            CHECK_ST(op1(m, dec, algs[a], &empty, &d), KV_ERR_BAD_INPUT_LENGTH);
            CHECK(d.value.data == NULL);
            ks_op_result_clear(&c1);
            ks_op_result_clear(&c2);

            /* the longest plaintext, and one byte more */
            struct kv_buf longest = view(secret, k - overhead[a]);
            CHECK_ST(op1(m, enc, algs[a], &longest, &c1), KV_OK);
            CHECK_ST(op1(m, dec, algs[a], &c1.value, &d), KV_OK);
            CHECK(buf_eq(&d.value, &longest));
            ks_op_result_clear(&c1);
            ks_op_result_clear(&d);
            struct kv_buf too_long = view(secret, k - overhead[a] + 1);
            CHECK_ST(op1(m, enc, algs[a], &too_long, &c1), KV_ERR_BAD_INPUT_LENGTH);
        }
    }
    /* the OAEP hashes really differ: SHA-1 ciphertext does not open as OAEP-256 */
    struct kv_buf pt = view(secret, 16);
    struct ks_op_result c = {0}, d = {0};
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_RSA_OAEP, &pt, &c), KV_OK);
    CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_RSA_OAEP_256, &c.value, &d), KV_ERR_CRYPTO_FAILED);
    ks_op_result_clear(&c);
    /* an empty plaintext is a valid OAEP message */
    struct kv_buf empty = view(NULL, 0);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_RSA_OAEP_256, &empty, &c), KV_OK);
    CHECK_ST(op1(m, KS_OP_DECRYPT, KS_ALG_RSA_OAEP_256, &c.value, &d), KV_OK);
    CHECK(d.value.len == 0);
    ks_op_result_clear(&c);
    ks_op_result_clear(&d);
    EVP_PKEY_free(pkey);
}

static void test_rsa_sign(const struct ks_material *m)
{
    EVP_PKEY *pkey = to_pkey(m);
    static const enum ks_alg algs[] = {KS_ALG_RS256, KS_ALG_RS384, KS_ALG_RS512,
                                       KS_ALG_PS256, KS_ALG_PS384, KS_ALG_PS512};
    const char msg[] = "the quick brown fox";
    struct ks_pub pub = {0};
    CHECK_ST(ks_material_public(m, &pub), KV_OK);
    size_t k = pub.n.len;
    ks_pub_clear(&pub);

    for (size_t a = 0; a < sizeof(algs) / sizeof(algs[0]); a++) {
        int pss = algs[a] >= KS_ALG_PS256 && algs[a] <= KS_ALG_PS512;
        unsigned char dg[64];
        size_t dg_len = 0;
        digest_of(md_of(algs[a]), msg, sizeof(msg), dg, &dg_len);
        struct kv_buf digest = view(dg, dg_len);
        struct ks_op_result s1 = {0}, s2 = {0};
        CHECK_ST(op1(m, KS_OP_SIGN, algs[a], &digest, &s1), KV_OK);
        CHECK(s1.value.len == k);
        CHECK(verify(m, algs[a], &digest, &s1.value) == 1);
        /* OpenSSL agrees the signature is over the message with this hash and padding */
        CHECK(ossl_rsa_verify(pkey, md_of(algs[a]), pss, msg, sizeof(msg), &s1.value));
        /* PKCS#1 v1.5 is deterministic; PSS is salted */
        CHECK_ST(op1(m, KS_OP_SIGN, algs[a], &digest, &s2), KV_OK);
        CHECK(pss ? !buf_eq(&s1.value, &s2.value) : buf_eq(&s1.value, &s2.value));
        ks_op_result_clear(&s2);

        /* tampered signature, tampered digest, wrong signature length */
        s1.value.data[5] ^= 0x01;
        CHECK(verify(m, algs[a], &digest, &s1.value) == 0);
        s1.value.data[5] ^= 0x01;
        dg[0] ^= 0x01;
        CHECK(verify(m, algs[a], &digest, &s1.value) == 0);
        dg[0] ^= 0x01;
        struct kv_buf cut = view(s1.value.data, k - 1);
        CHECK(verify(m, algs[a], &digest, &cut) == 0);
        struct kv_buf none = view(NULL, 0);
        CHECK(verify(m, algs[a], &digest, &none) == 0);
        /* the other padding does not verify */
        enum ks_alg other = pss ? algs[a] + 3 : algs[a] - 3; /* PSxxx <-> RSxxx */
        CHECK(verify(m, other, &digest, &s1.value) == 0);

        /* digest of the wrong length */
        struct kv_buf short_dg = view(dg, dg_len - 1);
        CHECK_ST(op1(m, KS_OP_SIGN, algs[a], &short_dg, &s2), KV_ERR_BAD_INPUT_LENGTH);
        struct ks_op_params vp = {.alg = algs[a], .value = s1.value, .digest = short_dg};
        CHECK_ST(ks_material_op(m, KS_OP_VERIFY, &vp, &s2), KV_ERR_BAD_INPUT_LENGTH);
        ks_op_result_clear(&s1);
    }
    /* a raw message in place of a digest */
    struct kv_buf raw = view(msg, sizeof(msg));
    struct ks_op_result r = {0};
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_RS256, &raw, &r), KV_ERR_BAD_INPUT_LENGTH);
    EVP_PKEY_free(pkey);
}

static void test_rsa_bad_alg(const struct ks_material *m)
{
    unsigned char buf[64] = {0};
    struct kv_buf v32 = view(buf, 32);
    struct ks_op_result r = {0};
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_ES256, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_HS256, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_A128GCM, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_A256CBCPAD, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_A128KW, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP, &v32, &r), KV_ERR_BAD_ALG);
    /* right key type, wrong operation */
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_RSA_OAEP, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_RS256, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_PS256, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_NONE, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_COUNT, &v32, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, (enum ks_alg)1000, &v32, &r), KV_ERR_BAD_ALG);
    /* not a key operation at all */
    CHECK_ST(op1(m, KS_OP_EXPORT, KS_ALG_RSA_OAEP, &v32, &r), KV_ERR_INTERNAL);
    CHECK_ST(op1(m, KS_OP_WRAP | KS_OP_ENCRYPT, KS_ALG_RSA_OAEP, &v32, &r), KV_ERR_INTERNAL);
    CHECK(r.value.data == NULL && r.value.len == 0);
}

/* ---- EC ------------------------------------------------------------------------- */

static void test_ec(int i)
{
    const struct ks_material *m = ec[i];
    EVP_PKEY *pkey = to_pkey(m);
    const char msg[] = "jumps over the lazy dog";
    unsigned char dg[64];
    size_t dg_len = 0;
    digest_of(md_of(ec_alg[i]), msg, sizeof(msg), dg, &dg_len);
    struct kv_buf digest = view(dg, dg_len);

    struct ks_op_result s = {0};
    for (int round = 0; round < 8; round++) { /* several, so short R or S get padded */
        CHECK_ST(op1(m, KS_OP_SIGN, ec_alg[i], &digest, &s), KV_OK);
        CHECK(s.value.len == 2 * ec_field[i]);
        CHECK(verify(m, ec_alg[i], &digest, &s.value) == 1);
        CHECK(ossl_ecdsa_verify(pkey, md_of(ec_alg[i]), msg, sizeof(msg), &s.value));
        ks_op_result_clear(&s);
    }
    CHECK_ST(op1(m, KS_OP_SIGN, ec_alg[i], &digest, &s), KV_OK);
    /* tampered R, tampered S, tampered digest */
    s.value.data[3] ^= 0x10;
    CHECK(verify(m, ec_alg[i], &digest, &s.value) == 0);
    s.value.data[3] ^= 0x10;
    s.value.data[s.value.len - 1] ^= 0x10;
    CHECK(verify(m, ec_alg[i], &digest, &s.value) == 0);
    s.value.data[s.value.len - 1] ^= 0x10;
    dg[dg_len - 1] ^= 0x01;
    CHECK(verify(m, ec_alg[i], &digest, &s.value) == 0);
    dg[dg_len - 1] ^= 0x01;
    CHECK(verify(m, ec_alg[i], &digest, &s.value) == 1);
    /* wrong signature lengths verify false; zero R and S verify false */
    struct kv_buf cut = view(s.value.data, s.value.len - 1);
    CHECK(verify(m, ec_alg[i], &digest, &cut) == 0);
    struct kv_buf none = view(NULL, 0);
    CHECK(verify(m, ec_alg[i], &digest, &none) == 0);
    unsigned char zero[2 * 66] = {0};
    struct kv_buf zeros = view(zero, 2 * ec_field[i]);
    CHECK(verify(m, ec_alg[i], &digest, &zeros) == 0);
    /* DER is not accepted where raw R||S is expected */
    ks_op_result_clear(&s);

    /* digest length */
    struct kv_buf short_dg = view(dg, dg_len - 1);
    CHECK_ST(op1(m, KS_OP_SIGN, ec_alg[i], &short_dg, &s), KV_ERR_BAD_INPUT_LENGTH);
    struct ks_op_params vp = {.alg = ec_alg[i], .value = zeros, .digest = short_dg};
    CHECK_ST(ks_material_op(m, KS_OP_VERIFY, &vp, &s), KV_ERR_BAD_INPUT_LENGTH);

    /* every other curve's algorithm, and every non-EC one, is refused */
    for (int j = 0; j < N_EC; j++)
        if (ec_crv[j] != ec_crv[i])
            CHECK_ST(op1(m, KS_OP_SIGN, ec_alg[j], &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_RS256, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_PS256, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_HS256, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_RSA_OAEP, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_RSA_OAEP_256, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_A256KW, &digest, &s), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, ec_alg[i], &digest, &s), KV_ERR_BAD_ALG);
    CHECK(s.value.data == NULL);
    EVP_PKEY_free(pkey);
}

/* ---- oct -------------------------------------------------------------------------- */

static void test_gcm(const struct ks_material *m, enum ks_alg alg)
{
    unsigned char pt_bytes[100], aad_bytes[20];
    randombytes_buf(pt_bytes, sizeof(pt_bytes));
    randombytes_buf(aad_bytes, sizeof(aad_bytes));
    const size_t lens[] = {0, 1, 16, 100};
    for (int with_aad = 0; with_aad < 2; with_aad++) {
        for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
            struct ks_op_params p = {.alg = alg, .value = view(pt_bytes, lens[l])};
            if (with_aad)
                p.aad = view(aad_bytes, sizeof(aad_bytes));
            struct ks_op_result c = {0}, d = {0};
            CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c), KV_OK);
            CHECK(c.value.len == lens[l] && c.iv.len == 12 && c.tag.len == 16);
            struct ks_op_params q = {
                .alg = alg, .value = c.value, .iv = c.iv, .tag = c.tag, .aad = p.aad};
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_OK);
            CHECK(buf_eq(&d.value, &p.value) && d.iv.len == 0 && d.tag.len == 0);
            ks_op_result_clear(&d);

            /* tag, ciphertext, IV and AAD are all authenticated */
            c.tag.data[0] ^= 1;
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_CRYPTO_FAILED);
            c.tag.data[0] ^= 1;
            if (lens[l] > 0) {
                c.value.data[0] ^= 1;
                CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_CRYPTO_FAILED);
                c.value.data[0] ^= 1;
            }
            c.iv.data[11] ^= 1;
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_CRYPTO_FAILED);
            c.iv.data[11] ^= 1;
            q.aad = with_aad ? view(NULL, 0) : view(aad_bytes, 4);
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_CRYPTO_FAILED);
            q.aad = p.aad;
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_OK);
            ks_op_result_clear(&d);

            /* IV and tag sizes */
            q.tag = view(c.tag.data, 12);
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
            q.tag = view(NULL, 0);
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
            q.tag = c.tag;
            q.iv = view(NULL, 0);
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
            unsigned char iv16[16] = {0};
            q.iv = view(iv16, 16);
            CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
            CHECK(d.value.data == NULL);
            ks_op_result_clear(&c);
        }
    }
    /* a fresh IV each time */
    struct ks_op_params p = {.alg = alg, .value = view(pt_bytes, 16)};
    struct ks_op_result c1 = {0}, c2 = {0};
    CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c1), KV_OK);
    CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c2), KV_OK);
    CHECK(!buf_eq(&c1.iv, &c2.iv) && !buf_eq(&c1.value, &c2.value));
    ks_op_result_clear(&c1);
    ks_op_result_clear(&c2);
}

static void test_cbc(const struct ks_material *m, enum ks_alg alg, enum ks_alg alg_pad)
{
    unsigned char pt_bytes[64];
    randombytes_buf(pt_bytes, sizeof(pt_bytes));
    unsigned char iv[16];
    randombytes_buf(iv, sizeof(iv));

    /* no padding: whole blocks, IV made or given */
    for (int given = 0; given < 2; given++) {
        struct ks_op_params p = {.alg = alg, .value = view(pt_bytes, 48)};
        if (given)
            p.iv = view(iv, 16);
        struct ks_op_result c = {0}, d = {0};
        CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c), KV_OK);
        CHECK(c.value.len == 48 && c.iv.len == 16 && c.tag.len == 0);
        if (given)
            CHECK(buf_eq(&c.iv, &p.iv));
        struct ks_op_params q = {.alg = alg, .value = c.value, .iv = c.iv};
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_OK);
        CHECK(buf_eq(&d.value, &p.value));
        ks_op_result_clear(&d);
        q.iv = view(NULL, 0);
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
        q.iv = view(iv, 8);
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
        q.iv = c.iv;
        q.value = view(c.value.data, 47);
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
        ks_op_result_clear(&c);
    }
    /* no padding, a plaintext of part blocks: filled with zero bytes, which its
     * decryption keeps (as Managed HSM does) */
    const size_t part[] = {1, 15, 17, 63};
    for (size_t l = 0; l < sizeof(part) / sizeof(part[0]); l++) {
        size_t whole = (part[l] + 15) / 16 * 16;
        struct ks_op_params p = {.alg = alg, .value = view(pt_bytes, part[l]), .iv = view(iv, 16)};
        struct ks_op_result c = {0}, d = {0};
        CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c), KV_OK);
        CHECK(c.value.len == whole);
        struct ks_op_params q = {.alg = alg, .value = c.value, .iv = c.iv};
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_OK);
        CHECK(d.value.len == whole && memcmp(d.value.data, pt_bytes, part[l]) == 0);
        for (size_t i = part[l]; i < d.value.len; i++)
            CHECK(d.value.data[i] == 0);
        ks_op_result_clear(&c);
        ks_op_result_clear(&d);
    }
    struct ks_op_result r = {0};
    struct ks_op_params bad = {.alg = alg, .value = view(pt_bytes, 16)};
    bad.iv = view(iv, 12);
    CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &bad, &r), KV_ERR_BAD_INPUT_LENGTH);

    /* PKCS#7 padding: any length */
    const size_t lens[] = {0, 1, 15, 16, 17, 64};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        struct ks_op_params p = {.alg = alg_pad, .value = view(pt_bytes, lens[l])};
        struct ks_op_result c = {0}, d = {0};
        CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c), KV_OK);
        CHECK(c.value.len == (lens[l] / 16 + 1) * 16 && c.iv.len == 16);
        struct ks_op_params q = {.alg = alg_pad, .value = c.value, .iv = c.iv};
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_OK);
        CHECK(buf_eq(&d.value, &p.value));
        ks_op_result_clear(&d);
        q.value = view(c.value.data, c.value.len - 1);
        CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
        ks_op_result_clear(&c);
    }
    /* corrupt padding: 16 bytes in gives a full padding block of 0x10; make its last byte
     * 0x11 by flipping the matching bit of the block before */
    struct ks_op_params p = {.alg = alg_pad, .value = view(pt_bytes, 16)};
    struct ks_op_result c = {0}, d = {0};
    CHECK_ST(ks_material_op(m, KS_OP_ENCRYPT, &p, &c), KV_OK);
    CHECK(c.value.len == 32);
    c.value.data[15] ^= 0x01;
    struct ks_op_params q = {.alg = alg_pad, .value = c.value, .iv = c.iv};
    CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_CRYPTO_FAILED);
    q.value = view(NULL, 0);
    CHECK_ST(ks_material_op(m, KS_OP_DECRYPT, &q, &d), KV_ERR_BAD_INPUT_LENGTH);
    CHECK(d.value.data == NULL);
    ks_op_result_clear(&c);
}

/* kvmock's RFC 3394 (its own steps over AES-ECB) against OpenSSL's wrap cipher,
 * the reference, for 2 to 16 semiblocks of key data, both ways. */
static void kw_matches_openssl(const struct ks_material *m, enum ks_alg alg)
{
    struct kv_buf k = {0};
    CHECK_ST(ks_material_serialize(m, &k), KV_OK);
    const EVP_CIPHER *c = k.len == 16   ? EVP_aes_128_wrap()
                          : k.len == 24 ? EVP_aes_192_wrap()
                                        : EVP_aes_256_wrap();
    unsigned char data[128], ref[sizeof(data) + 8];
    for (size_t len = 16; len <= sizeof(data); len += 8) {
        randombytes_buf(data, len);
        EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
        EVP_CIPHER_CTX_set_flags(ctx, EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
        int n = 0, f = 0;
        CHECK(EVP_EncryptInit_ex(ctx, c, NULL, k.data, NULL) == 1 &&
              EVP_EncryptUpdate(ctx, ref, &n, data, (int)len) == 1 &&
              EVP_EncryptFinal_ex(ctx, ref + n, &f) == 1 && (size_t)(n + f) == len + 8);
        EVP_CIPHER_CTX_free(ctx);
        struct kv_buf in = view(data, len), want = view(ref, len + 8);
        struct ks_op_result w = {0}, u = {0};
        CHECK_ST(op1(m, KS_OP_WRAP, alg, &in, &w), KV_OK);
        CHECK(buf_eq(&w.value, &want));
        CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &want, &u), KV_OK);
        CHECK(buf_eq(&u.value, &in));
        ks_op_result_clear(&w);
        ks_op_result_clear(&u);
        /* a change in any semiblock fails the integrity check */
        for (size_t b = 0; b < len + 8; b += 8) {
            ref[b] ^= 0x01;
            CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &want, &u), KV_ERR_CRYPTO_FAILED);
            CHECK(u.value.data == NULL);
            ref[b] ^= 0x01;
        }
    }
    kv_buf_wipe(&k);
}

static void test_kw(const struct ks_material *m, enum ks_alg alg)
{
    kw_matches_openssl(m, alg);
    unsigned char key[64];
    randombytes_buf(key, sizeof(key));
    const size_t lens[] = {16, 24, 32, 64};
    for (size_t l = 0; l < sizeof(lens) / sizeof(lens[0]); l++) {
        struct kv_buf in = view(key, lens[l]);
        struct ks_op_result w = {0}, w2 = {0}, u = {0};
        CHECK_ST(op1(m, KS_OP_WRAP, alg, &in, &w), KV_OK);
        CHECK(w.value.len == lens[l] + 8);
        CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &w.value, &u), KV_OK);
        CHECK(buf_eq(&u.value, &in));
        ks_op_result_clear(&u);
        /* AES-KW is deterministic, and CKM_AES_KEY_WRAP is the same thing */
        CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP, &in, &w2), KV_OK);
        CHECK(buf_eq(&w.value, &w2.value));
        ks_op_result_clear(&w2);
        w.value.data[w.value.len - 1] ^= 0x80;
        CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &w.value, &u), KV_ERR_CRYPTO_FAILED);
        CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP, &w.value, &u), KV_ERR_CRYPTO_FAILED);
        struct kv_buf odd = view(w.value.data, w.value.len - 4);
        CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &odd, &u), KV_ERR_BAD_INPUT_LENGTH);
        CHECK(u.value.data == NULL);
        ks_op_result_clear(&w);
    }
    struct ks_op_result r = {0};
    const size_t bad[] = {0, 8, 12, 20, 33};
    for (size_t l = 0; l < sizeof(bad) / sizeof(bad[0]); l++) {
        struct kv_buf in = view(bad[l] ? key : NULL, bad[l]);
        CHECK_ST(op1(m, KS_OP_WRAP, alg, &in, &r), KV_ERR_BAD_INPUT_LENGTH);
        CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP, &in, &r), KV_ERR_BAD_INPUT_LENGTH);
    }
    struct kv_buf two_blocks = view(key, 16); /* too short to unwrap under RFC 3394 */
    CHECK_ST(op1(m, KS_OP_UNWRAP, alg, &two_blocks, &r), KV_ERR_BAD_INPUT_LENGTH);

    /* RFC 5649: any length, padded to semiblocks */
    const size_t pad_lens[] = {1, 7, 8, 9, 20, 32, 63};
    for (size_t l = 0; l < sizeof(pad_lens) / sizeof(pad_lens[0]); l++) {
        struct kv_buf in = view(key, pad_lens[l]);
        struct ks_op_result w = {0}, u = {0};
        CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &in, &w), KV_OK);
        CHECK(w.value.len == (pad_lens[l] + 7) / 8 * 8 + 8);
        CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &w.value, &u), KV_OK);
        CHECK(buf_eq(&u.value, &in));
        ks_op_result_clear(&u);
        w.value.data[0] ^= 0x01;
        CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &w.value, &u),
                 KV_ERR_CRYPTO_FAILED);
        ks_op_result_clear(&w);
    }
    struct kv_buf none = view(NULL, 0), eight = view(key, 8), seventeen = view(key, 17);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &none, &r), KV_ERR_BAD_INPUT_LENGTH);
    CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &eight, &r),
             KV_ERR_BAD_INPUT_LENGTH);
    CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, &seventeen, &r),
             KV_ERR_BAD_INPUT_LENGTH);
    CHECK(r.value.data == NULL);
}

static void test_hmac(const struct ks_material *m)
{
    static const enum ks_alg algs[] = {KS_ALG_HS256, KS_ALG_HS384, KS_ALG_HS512};
    struct kv_buf key = {0};
    CHECK_ST(ks_material_serialize(m, &key), KV_OK);
    const char data[] = "any length of data, not a digest";
    struct kv_buf in = view(data, sizeof(data));
    for (int a = 0; a < 3; a++) {
        struct ks_op_result s = {0};
        CHECK_ST(op1(m, KS_OP_SIGN, algs[a], &in, &s), KV_OK);
        CHECK(s.value.len == (size_t)EVP_MD_get_size(md_of(algs[a])));
        /* OpenSSL's HMAC of the data with the key gives the same bytes */
        unsigned char mac[64];
        size_t mac_len = 0;
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, EVP_MD_get0_name(md_of(algs[a])), NULL, key.data,
                        key.len, (const unsigned char *)data, sizeof(data), mac, sizeof(mac),
                        &mac_len) != NULL);
        CHECK(mac_len == s.value.len && memcmp(mac, s.value.data, mac_len) == 0);
        CHECK(verify(m, algs[a], &in, &s.value) == 1);
        struct kv_buf other = view(data, sizeof(data) - 1);
        CHECK(verify(m, algs[a], &other, &s.value) == 0);
        s.value.data[0] ^= 1;
        CHECK(verify(m, algs[a], &in, &s.value) == 0);
        s.value.data[0] ^= 1;
        struct kv_buf cut = view(s.value.data, s.value.len - 1);
        CHECK(verify(m, algs[a], &in, &cut) == 0);
        ks_op_result_clear(&s);
        /* empty data is fine */
        struct kv_buf none = view(NULL, 0);
        CHECK_ST(op1(m, KS_OP_SIGN, algs[a], &none, &s), KV_OK);
        CHECK(verify(m, algs[a], &none, &s.value) == 1);
        ks_op_result_clear(&s);
    }
    kv_buf_wipe(&key);
}

static void test_oct(int i)
{
    static const enum ks_alg gcm[] = {KS_ALG_A128GCM, KS_ALG_A192GCM, KS_ALG_A256GCM};
    static const enum ks_alg cbc[] = {KS_ALG_A128CBC, KS_ALG_A192CBC, KS_ALG_A256CBC};
    static const enum ks_alg pad[] = {KS_ALG_A128CBCPAD, KS_ALG_A192CBCPAD, KS_ALG_A256CBCPAD};
    static const enum ks_alg kw[] = {KS_ALG_A128KW, KS_ALG_A192KW, KS_ALG_A256KW};
    const struct ks_material *m = oct[i];
    test_gcm(m, gcm[i]);
    test_cbc(m, cbc[i], pad[i]);
    test_kw(m, kw[i]);
    test_hmac(m);

    /* the other key lengths' AES algorithms, and the wrong operations, are refused */
    unsigned char buf[32] = {0};
    struct kv_buf v = view(buf, 32);
    struct ks_op_result r = {0};
    for (int j = 0; j < N_OCT; j++) {
        if (j == i)
            continue;
        CHECK_ST(op1(m, KS_OP_ENCRYPT, gcm[j], &v, &r), KV_ERR_BAD_ALG);
        CHECK_ST(op1(m, KS_OP_ENCRYPT, cbc[j], &v, &r), KV_ERR_BAD_ALG);
        CHECK_ST(op1(m, KS_OP_DECRYPT, pad[j], &v, &r), KV_ERR_BAD_ALG);
        CHECK_ST(op1(m, KS_OP_WRAP, kw[j], &v, &r), KV_ERR_BAD_ALG);
        CHECK_ST(op1(m, KS_OP_UNWRAP, kw[j], &v, &r), KV_ERR_BAD_ALG);
    }
    CHECK_ST(op1(m, KS_OP_WRAP, gcm[i], &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, kw[i], &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_CKM_AES_KEY_WRAP_PAD, &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, gcm[i], &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_HS256, &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_ENCRYPT, KS_ALG_RSA_OAEP, &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_WRAP, KS_ALG_RSA1_5, &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_RS256, &v, &r), KV_ERR_BAD_ALG);
    CHECK_ST(op1(m, KS_OP_SIGN, KS_ALG_ES256, &v, &r), KV_ERR_BAD_ALG);
    CHECK(r.value.data == NULL);
}

/* ---- known answers ------------------------------------------------------------------ */

static struct ks_material *oct_from_hex(const char *hex)
{
    unsigned char k[32];
    struct ks_jwk jwk = {.kty = KS_KTY_OCT};
    jwk.k = view(k, unhex(hex, k, sizeof(k)));
    struct ks_material *m = NULL;
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
    return m;
}

static void check_kat(const struct ks_material *m, unsigned op, enum ks_alg alg, const char *in_hex,
                      const char *out_hex)
{
    unsigned char in[128], want[128];
    struct kv_buf in_b = view(in, unhex(in_hex, in, sizeof(in)));
    struct kv_buf want_b = view(want, unhex(out_hex, want, sizeof(want)));
    struct ks_op_result r = {0};
    CHECK_ST(op1(m, op, alg, &in_b, &r), KV_OK);
    CHECK(buf_eq(&r.value, &want_b));
    ks_op_result_clear(&r);
}

static void test_known_answers(void)
{
    /* RFC 3394 §4.1: 128-bit key data with a 128-bit KEK */
    struct ks_material *kek = oct_from_hex("000102030405060708090A0B0C0D0E0F");
    const char *data = "00112233445566778899AABBCCDDEEFF";
    const char *wrapped = "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5";
    check_kat(kek, KS_OP_WRAP, KS_ALG_A128KW, data, wrapped);
    check_kat(kek, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP, data, wrapped);
    check_kat(kek, KS_OP_UNWRAP, KS_ALG_A128KW, wrapped, data);
    check_kat(kek, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP, wrapped, data);
    ks_material_free(kek);

    /* RFC 3394 §4.6: 256-bit key data with a 256-bit KEK */
    kek = oct_from_hex("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
    data = "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F";
    wrapped = "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21";
    check_kat(kek, KS_OP_WRAP, KS_ALG_A256KW, data, wrapped);
    check_kat(kek, KS_OP_UNWRAP, KS_ALG_A256KW, wrapped, data);
    ks_material_free(kek);

    /* RFC 5649 §6: 20 and 7 octets of key data with a 192-bit KEK */
    kek = oct_from_hex("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8");
    check_kat(kek, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD,
              "c37b7e6492584340bed12207808941155068f738",
              "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
    check_kat(kek, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD,
              "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a",
              "c37b7e6492584340bed12207808941155068f738");
    check_kat(kek, KS_OP_WRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, "466f7250617369",
              "afbeb0f07dfbf5419200f2ccb50bb24f");
    check_kat(kek, KS_OP_UNWRAP, KS_ALG_CKM_AES_KEY_WRAP_PAD, "afbeb0f07dfbf5419200f2ccb50bb24f",
              "466f7250617369");
    ks_material_free(kek);

    /* NIST SP 800-38A F.2.1: CBC-AES128 with a given IV */
    struct ks_material *k = oct_from_hex("2b7e151628aed2a6abf7158809cf4f3c");
    unsigned char iv[16], pt[32], want[32];
    unhex("000102030405060708090a0b0c0d0e0f", iv, sizeof(iv));
    unhex("6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51", pt, sizeof(pt));
    unhex("7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2", want, sizeof(want));
    struct ks_op_params p = {.alg = KS_ALG_A128CBC, .value = view(pt, 32), .iv = view(iv, 16)};
    struct ks_op_result r = {0};
    CHECK_ST(ks_material_op(k, KS_OP_ENCRYPT, &p, &r), KV_OK);
    struct kv_buf want_b = view(want, 32);
    CHECK(buf_eq(&r.value, &want_b));
    ks_op_result_clear(&r);
    p.value = want_b;
    CHECK_ST(ks_material_op(k, KS_OP_DECRYPT, &p, &r), KV_OK);
    struct kv_buf pt_b = view(pt, 32);
    CHECK(buf_eq(&r.value, &pt_b));
    ks_op_result_clear(&r);
    ks_material_free(k);

    /* GCM spec test case 4: AES-128, 96-bit IV, with AAD (decrypt: encrypt makes its IV) */
    k = oct_from_hex("feffe9928665731c6d6a8f9467308308");
    unsigned char gcm_iv[12], gcm_ct[60], gcm_pt[60], gcm_tag[16], gcm_aad[20];
    unhex("cafebabefacedbaddecaf888", gcm_iv, sizeof(gcm_iv));
    unhex("42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e21d514b25466931c"
          "7d8f6a5aac84aa051ba30b396a0aac973d58e091",
          gcm_ct, sizeof(gcm_ct));
    unhex("d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a721c3c0c95956809532"
          "fcf0e2449a6b525b16aedf5aa0de657ba637b39",
          gcm_pt, sizeof(gcm_pt));
    unhex("5bc94fbc3221a5db94fae95ae7121a47", gcm_tag, sizeof(gcm_tag));
    unhex("feedfacedeadbeeffeedfacedeadbeefabaddad2", gcm_aad, sizeof(gcm_aad));
    struct ks_op_params g = {.alg = KS_ALG_A128GCM,
                             .value = view(gcm_ct, 60),
                             .iv = view(gcm_iv, 12),
                             .tag = view(gcm_tag, 16),
                             .aad = view(gcm_aad, 20)};
    CHECK_ST(ks_material_op(k, KS_OP_DECRYPT, &g, &r), KV_OK);
    struct kv_buf gcm_pt_b = view(gcm_pt, 60);
    CHECK(buf_eq(&r.value, &gcm_pt_b));
    ks_op_result_clear(&r);
    ks_material_free(k);
}

/* ---- JWK import ------------------------------------------------------------------ */

static void test_jwk_rsa(void)
{
    EVP_PKEY *pkey = to_pkey(rsa[0]);
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1};
    struct kv_buf parts[8];
    for (int i = 0; i < 8; i++)
        parts[i] = bn_bytes(pkey, names[i], 0);
    struct ks_jwk jwk = {.kty = KS_KTY_RSA};
    struct kv_buf *slots[8] = {&jwk.n, &jwk.e, &jwk.d, &jwk.p, &jwk.q, &jwk.dp, &jwk.dq, &jwk.qi};
    for (int i = 0; i < 8; i++)
        *slots[i] = parts[i];

    struct ks_material *m = NULL;
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
    CHECK(m != NULL && ks_material_kty(m) == KS_KTY_RSA && pub_eq(m, rsa[0]));
    /* the imported key decrypts what the original encrypted */
    unsigned char secret[32];
    randombytes_buf(secret, sizeof(secret));
    struct kv_buf s = view(secret, 32);
    struct ks_op_result c = {0}, d = {0};
    CHECK_ST(op1(rsa[0], KS_OP_WRAP, KS_ALG_RSA_OAEP, &s, &c), KV_OK);
    CHECK_ST(op1(m, KS_OP_UNWRAP, KS_ALG_RSA_OAEP, &c.value, &d), KV_OK);
    CHECK(buf_eq(&d.value, &s));
    ks_op_result_clear(&c);
    ks_op_result_clear(&d);
    ks_material_free(m);
    m = NULL;

    /* every part is required */
    for (int i = 0; i < 8; i++) {
        struct kv_buf keep = *slots[i];
        *slots[i] = view(NULL, 0);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        *slots[i] = keep;
    }
    /* and each one is checked: change one byte of any of them */
    for (int i = 0; i < 8; i++) {
        unsigned char *b = slots[i]->data + slots[i]->len - 1;
        *b ^= 0x02;
        enum kv_status st = ks_material_from_jwk(&jwk, &m);
        if (st != KV_ERR_BAD_JWK)
            fprintf(stderr, "RSA JWK with part %d changed gave %s\n", i, kv_status_name(st));
        CHECK_ST(st, KV_ERR_BAD_JWK);
        *b ^= 0x02;
    }
    /* p and q from another key */
    EVP_PKEY *other = to_pkey(rsa[2]);
    struct kv_buf op = bn_bytes(other, OSSL_PKEY_PARAM_RSA_FACTOR1, 0);
    struct kv_buf keep = jwk.p;
    jwk.p = op;
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
    jwk.p = keep;
    kv_buf_wipe(&op);
    EVP_PKEY_free(other);
    /* a part longer than the modulus; a modulus longer than 4096 bits */
    unsigned char huge[600];
    memset(huge, 0xff, sizeof(huge));
    keep = jwk.d;
    jwk.d = view(huge, jwk.n.len + 1);
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
    jwk.d = keep;
    keep = jwk.n;
    jwk.n = view(huge, sizeof(huge));
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_KEY_SIZE);
    jwk.n = keep;
    CHECK(m == NULL);
    /* still fine after all that */
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
    ks_material_free(m);
    m = NULL;
    for (int i = 0; i < 8; i++)
        kv_buf_wipe(&parts[i]);
    EVP_PKEY_free(pkey);

    /* a consistent key of a size Key Vault does not take */
    EVP_PKEY *small = EVP_RSA_gen(1024);
    CHECK(small != NULL);
    for (int i = 0; i < 8; i++) {
        parts[i] = bn_bytes(small, names[i], 0);
        *slots[i] = parts[i];
    }
    CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_KEY_SIZE);
    CHECK(m == NULL);
    for (int i = 0; i < 8; i++)
        kv_buf_wipe(&parts[i]);
    EVP_PKEY_free(small);
}

static void test_jwk_ec(void)
{
    for (int i = 0; i < N_EC; i++) {
        size_t fl = ec_field[i];
        EVP_PKEY *pkey = to_pkey(ec[i]);
        struct kv_buf x = bn_bytes(pkey, OSSL_PKEY_PARAM_EC_PUB_X, fl);
        struct kv_buf y = bn_bytes(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, fl);
        struct kv_buf d = bn_bytes(pkey, OSSL_PKEY_PARAM_PRIV_KEY, fl);
        struct ks_jwk jwk = {.kty = KS_KTY_EC, .crv = ec_crv[i], .x = x, .y = y, .d = d};
        struct ks_material *m = NULL;
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
        CHECK(m != NULL && ks_material_kty(m) == KS_KTY_EC && pub_eq(m, ec[i]));
        unsigned char dg[64];
        size_t dg_len = 0;
        digest_of(md_of(ec_alg[i]), "jwk", 3, dg, &dg_len);
        struct kv_buf digest = view(dg, dg_len);
        struct ks_op_result s = {0};
        CHECK_ST(op1(m, KS_OP_SIGN, ec_alg[i], &digest, &s), KV_OK);
        CHECK(verify(ec[i], ec_alg[i], &digest, &s.value) == 1);
        ks_op_result_clear(&s);
        ks_material_free(m);
        m = NULL;

        /* a point off the curve */
        y.data[fl - 1] ^= 0x01;
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        y.data[fl - 1] ^= 0x01;
        /* a private key that does not match the point */
        d.data[fl - 1] ^= 0x01;
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        d.data[fl - 1] ^= 0x01;
        /* another curve's key under this curve's name */
        jwk.crv = ec_crv[(i + 1) % N_EC];
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        jwk.crv = KS_CRV_NONE;
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        jwk.crv = (enum ks_crv)42;
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_CURVE);
        jwk.crv = ec_crv[i];
        /* missing or oversized parts */
        jwk.d = view(NULL, 0);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        jwk.d = d;
        jwk.x = view(NULL, 0);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        unsigned char big[67] = {0};
        memcpy(big + 1, x.data, fl);
        jwk.x = view(big, fl + 1);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        jwk.x = x;
        /* a d of zero and a d of the wrong key */
        unsigned char zero[66] = {0};
        jwk.d = view(zero, fl);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_JWK);
        jwk.d = d;
        CHECK(m == NULL);
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
        ks_material_free(m);

        kv_buf_wipe(&x);
        kv_buf_wipe(&y);
        kv_buf_wipe(&d);
        EVP_PKEY_free(pkey);
    }
}

static void test_jwk_oct(void)
{
    unsigned char k[64];
    randombytes_buf(k, sizeof(k));
    struct ks_material *m = NULL;
    for (size_t len = 16; len <= 32; len += 8) {
        struct ks_jwk jwk = {.kty = KS_KTY_OCT, .k = view(k, len)};
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
        struct ks_pub pub = {0};
        CHECK_ST(ks_material_public(m, &pub), KV_OK);
        CHECK(pub.size_bits == (int)len * 8);
        ks_pub_clear(&pub);
        struct kv_buf raw = {0};
        CHECK_ST(ks_material_serialize(m, &raw), KV_OK);
        CHECK(raw.len == len && memcmp(raw.data, k, len) == 0);
        kv_buf_wipe(&raw);
        ks_material_free(m);
        m = NULL;
    }
    const size_t bad[] = {1, 8, 15, 17, 20, 31, 33, 64};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ks_jwk jwk = {.kty = KS_KTY_OCT, .k = view(k, bad[i])};
        CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_ERR_BAD_KEY_SIZE);
    }
    struct ks_jwk empty = {.kty = KS_KTY_OCT};
    CHECK_ST(ks_material_from_jwk(&empty, &m), KV_ERR_BAD_JWK);
    struct ks_jwk weird = {.kty = (enum ks_kty)9, .k = view(k, 16)};
    CHECK_ST(ks_material_from_jwk(&weird, &m), KV_ERR_BAD_JWK);
    CHECK(m == NULL);
}

/* ---- bring your own key ------------------------------------------------------------ */

static int jwk_empty(const struct ks_jwk *j)
{
    return j->n.len + j->e.len + j->d.len + j->p.len + j->q.len + j->dp.len + j->dq.len +
               j->qi.len + j->x.len + j->y.len + j->k.len ==
           0;
}

/* A key transfer blob's ciphertext is what a release gives (the same envelope): made by
 * ks_material_release for the KEK's public key, opened by ks_material_byok_open with the
 * KEK, it gives back the target's parts. The envelope against an outside implementation
 * is e2e.byok's (Python's cryptography makes the blobs there). */
static void test_byok(void)
{
    const struct ks_material *kek = rsa[0];
    struct ks_pub kp = {0};
    CHECK_ST(ks_material_public(kek, &kp), KV_OK);
    const struct ks_material *targets[] = {rsa[1], ec[0], ec[2], ec[3], oct[2]};
    const enum ks_release_enc encs[] = {KS_RELEASE_CKM_RSA_AES_KEY_WRAP,
                                        KS_RELEASE_RSA_AES_KEY_WRAP_256,
                                        KS_RELEASE_RSA_AES_KEY_WRAP_384};
    for (size_t t = 0; t < sizeof(targets) / sizeof(targets[0]); t++) {
        for (size_t e = 0; e < 3; e++) {
            struct kv_buf ct = {0};
            CHECK_ST(ks_material_release(targets[t], encs[e], &kp.n, &kp.e, &ct), KV_OK);
            struct ks_jwk jwk = {.kty = ks_material_kty(targets[t])};
            CHECK_ST(ks_material_byok_open(kek, encs[e], &ct, &jwk), KV_OK);
            struct ks_material *m = NULL;
            CHECK_ST(ks_material_from_jwk(&jwk, &m), KV_OK);
            ks_jwk_wipe(&jwk);
            CHECK(jwk_empty(&jwk));
            if (m != NULL && ks_material_kty(m) == KS_KTY_OCT) {
                struct kv_buf a = {0}, b = {0};
                CHECK_ST(ks_material_serialize(m, &a), KV_OK);
                CHECK_ST(ks_material_serialize(targets[t], &b), KV_OK);
                CHECK(buf_eq(&a, &b));
                kv_buf_wipe(&a);
                kv_buf_wipe(&b);
            } else {
                CHECK(m != NULL && pub_eq(m, targets[t]));
            }
            ks_material_free(m);

            /* opened with another hash than it was made with */
            struct ks_jwk other = {.kty = ks_material_kty(targets[t])};
            CHECK_ST(ks_material_byok_open(kek, encs[(e + 1) % 3], &ct, &other), KV_ERR_BYOK_BLOB);
            CHECK(jwk_empty(&other));
            /* a changed byte of the wrapped key, then of the wrapped AES key */
            for (size_t at = 0; at < 2; at++) {
                size_t i = at == 0 ? ct.len - 1 : 7;
                ct.data[i] ^= 0x40;
                struct ks_jwk bad = {.kty = ks_material_kty(targets[t])};
                CHECK_ST(ks_material_byok_open(kek, encs[e], &ct, &bad), KV_ERR_BYOK_BLOB);
                CHECK(jwk_empty(&bad));
                ct.data[i] ^= 0x40;
            }
            kv_buf_free(&ct);
        }
    }

    /* another type, or another curve, than the blob holds */
    struct kv_buf ct = {0};
    CHECK_ST(ks_material_release(ec[0], KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &kp.n, &kp.e, &ct), KV_OK);
    struct ks_jwk as_rsa = {.kty = KS_KTY_RSA};
    CHECK_ST(ks_material_byok_open(kek, KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &ct, &as_rsa),
             KV_ERR_BYOK_BLOB);
    struct ks_jwk as_p384 = {.kty = KS_KTY_EC, .crv = KS_CRV_P384};
    CHECK_ST(ks_material_byok_open(kek, KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &ct, &as_p384),
             KV_ERR_BYOK_BLOB);
    struct ks_jwk as_p256 = {.kty = KS_KTY_EC, .crv = KS_CRV_P256};
    CHECK_ST(ks_material_byok_open(kek, KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &ct, &as_p256), KV_OK);
    ks_jwk_wipe(&as_p256);
    /* the wrong key exchange key: another RSA key, or not an RSA key */
    struct ks_jwk wrong = {.kty = KS_KTY_EC};
    CHECK_ST(ks_material_byok_open(rsa[2], KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &ct, &wrong),
             KV_ERR_BYOK_BLOB);
    CHECK_ST(ks_material_byok_open(ec[0], KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &ct, &wrong),
             KV_ERR_BYOK_KEK);
    /* cut short: the RSA block alone, or a wrapped part that is not whole 8-byte blocks */
    struct kv_buf cut = {ct.data, kp.n.len};
    CHECK_ST(ks_material_byok_open(kek, KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &cut, &wrong),
             KV_ERR_BYOK_BLOB);
    cut.len = ct.len - 3;
    CHECK_ST(ks_material_byok_open(kek, KS_RELEASE_CKM_RSA_AES_KEY_WRAP, &cut, &wrong),
             KV_ERR_BYOK_BLOB);
    CHECK(jwk_empty(&wrong));
    kv_buf_free(&ct);
    ks_pub_clear(&kp);
}

/* ---- result handling and threads ------------------------------------------------- */

static void test_result_fields(void)
{
    /* the op fills value/iv/tag/verified, leaves version and name, and on failure nothing */
    struct ks_op_result r = {0};
    memcpy(r.version, "0123456789abcdef0123456789abcdef", KS_VERSION_LEN + 1);
    memcpy(r.name, "kept", 5);
    unsigned char pt[16] = {0};
    struct ks_op_params p = {.alg = KS_ALG_A256GCM, .value = view(pt, 16)};
    CHECK_ST(ks_material_op(oct[2], KS_OP_ENCRYPT, &p, &r), KV_OK);
    CHECK_STR(r.version, "0123456789abcdef0123456789abcdef");
    CHECK_STR(r.name, "kept");
    ks_op_result_clear(&r);
    CHECK(r.value.data == NULL && r.iv.data == NULL && r.tag.data == NULL && r.value.len == 0 &&
          r.verified == 0);
    ks_op_result_clear(NULL);
    ks_pub_clear(NULL);
}

struct thread_arg {
    int ok;
};

static void *worker(void *vp)
{
    struct thread_arg *a = vp;
    unsigned char dg[32], secret[32];
    randombytes_buf(dg, sizeof(dg));
    randombytes_buf(secret, sizeof(secret));
    struct kv_buf digest = view(dg, 32), s = view(secret, 32);
    a->ok = 1;
    for (int i = 0; i < 20; i++) {
        struct ks_op_result sig = {0}, w = {0}, u = {0};
        a->ok &= op1(ec[0], KS_OP_SIGN, KS_ALG_ES256, &digest, &sig) == KV_OK;
        a->ok &= verify(ec[0], KS_ALG_ES256, &digest, &sig.value) == 1;
        a->ok &= op1(rsa[0], KS_OP_WRAP, KS_ALG_RSA_OAEP_256, &s, &w) == KV_OK;
        a->ok &= op1(rsa[0], KS_OP_UNWRAP, KS_ALG_RSA_OAEP_256, &w.value, &u) == KV_OK;
        a->ok &= buf_eq(&u.value, &s);
        ks_op_result_clear(&sig);
        /* RSA contexts are kept per algorithm and operation and shared by threads */
        enum ks_alg rsa_sig = i % 2 ? KS_ALG_PS256 : KS_ALG_RS256;
        a->ok &= op1(rsa[0], KS_OP_SIGN, rsa_sig, &digest, &sig) == KV_OK;
        a->ok &= verify(rsa[0], rsa_sig, &digest, &sig.value) == 1;
        ks_op_result_clear(&sig);
        ks_op_result_clear(&w);
        ks_op_result_clear(&u);
        /* so are AES key wrap contexts, one per direction */
        a->ok &= op1(oct[0], KS_OP_WRAP, KS_ALG_A128KW, &s, &w) == KV_OK;
        a->ok &= op1(oct[0], KS_OP_UNWRAP, KS_ALG_A128KW, &w.value, &u) == KV_OK;
        a->ok &= buf_eq(&u.value, &s);
        ks_op_result_clear(&w);
        ks_op_result_clear(&u);
    }
    return NULL;
}

static void test_threads(void)
{
    enum { N = 4 };
    pthread_t t[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&t[i], NULL, worker, &args[i]) == 0);
    for (int i = 0; i < N; i++) {
        CHECK(pthread_join(t[i], NULL) == 0);
        CHECK(args[i].ok);
    }
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    test_generate();
    test_serialize();
    for (int i = 0; i < N_RSA; i++) {
        test_rsa_encrypt(rsa[i]);
        test_rsa_sign(rsa[i]);
        test_rsa_bad_alg(rsa[i]);
    }
    for (int i = 0; i < N_EC; i++)
        test_ec(i);
    for (int i = 0; i < N_OCT; i++)
        test_oct(i);
    test_known_answers();
    test_jwk_rsa();
    test_jwk_ec();
    test_jwk_oct();
    test_byok();
    test_result_fields();
    test_threads();

    for (int i = 0; i < N_RSA; i++)
        ks_material_free(rsa[i]);
    for (int i = 0; i < N_EC; i++)
        ks_material_free(ec[i]);
    for (int i = 0; i < N_OCT; i++)
        ks_material_free(oct[i]);
    CHECK_DONE();
}
