/*
 * JWK import: ks_material_from_jwk (keystore-internal, keystore/crypto.h)
 * on arbitrary field bytes, as the import handler passes them after base64url
 * decoding. Input: byte 0 = kty (RSA, EC, oct), byte 1 = curve, then the
 * fields n, e, d, p, q, dp, dq, qi, x, y, k, each as a little-endian 16-bit
 * length and that many bytes (missing fields are empty).
 * Invariants for an accepted key: its public part can be read; it serialises
 * and deserialises to the same public part; a signature it makes verifies
 * (RSA PS256, EC with the curve's algorithm, oct HS256), and an oct key
 * unwraps what it wrapped.
 */
#include "crypto.h"
#include "fuzz_common.h"
#include "ks.h"

#define NFIELDS 11

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    return 0;
}

static int buf_eq(const struct kv_buf *a, const struct kv_buf *b)
{
    return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

static void op_roundtrip(const struct ks_material *m, enum ks_kty kty, enum ks_crv crv)
{
    static const unsigned char digest[64] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    struct ks_op_params p = {0};
    struct ks_op_result r = {0}, v = {0};
    size_t dlen = 32;
    switch (kty) {
    case KS_KTY_RSA:
        p.alg = KS_ALG_PS256;
        break;
    case KS_KTY_EC:
        p.alg = crv == KS_CRV_P256    ? KS_ALG_ES256
                : crv == KS_CRV_P256K ? KS_ALG_ES256K
                : crv == KS_CRV_P384  ? KS_ALG_ES384
                                      : KS_ALG_ES512;
        dlen = p.alg == KS_ALG_ES384 ? 48 : p.alg == KS_ALG_ES512 ? 64 : 32;
        break;
    default:
        p.alg = KS_ALG_HS256;
        break;
    }
    p.value.data = (unsigned char *)digest;
    p.value.len = dlen;
    enum kv_status st = ks_material_op(m, KS_OP_SIGN, &p, &r);
    if (kty == KS_KTY_OCT && st == KV_ERR_BAD_ALG)
        return; /* HMAC may not apply to every oct size */
    FUZZ_ASSERT(st == KV_OK);
    struct ks_op_params q = {.alg = p.alg, .value = r.value, .digest = p.value};
    FUZZ_ASSERT(ks_material_op(m, KS_OP_VERIFY, &q, &v) == KV_OK);
    FUZZ_ASSERT(v.verified == 1);
    ks_op_result_clear(&r);
    ks_op_result_clear(&v);

    if (kty == KS_KTY_OCT) {
        static const unsigned char cek[32] = {42};
        struct ks_pub pub = {0};
        FUZZ_ASSERT(ks_material_public(m, &pub) == KV_OK);
        enum ks_alg kw = pub.size_bits == 128   ? KS_ALG_A128KW
                         : pub.size_bits == 192 ? KS_ALG_A192KW
                                                : KS_ALG_A256KW;
        ks_pub_clear(&pub);
        struct ks_op_params w = {.alg = kw, .value = {(unsigned char *)cek, sizeof(cek)}};
        FUZZ_ASSERT(ks_material_op(m, KS_OP_WRAP, &w, &r) == KV_OK);
        struct ks_op_params u = {.alg = kw, .value = r.value};
        FUZZ_ASSERT(ks_material_op(m, KS_OP_UNWRAP, &u, &v) == KV_OK);
        FUZZ_ASSERT(v.value.len == sizeof(cek) && memcmp(v.value.data, cek, sizeof(cek)) == 0);
        ks_op_result_clear(&r);
        ks_op_result_clear(&v);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct ks_jwk j;
    memset(&j, 0, sizeof(j));
    j.kty = (enum ks_kty)(data[0] % 3);
    j.crv = (enum ks_crv)(data[1] % 5);
    struct kv_buf *f[NFIELDS] = {&j.n,  &j.e,  &j.d, &j.p, &j.q, &j.dp,
                                 &j.dq, &j.qi, &j.x, &j.y, &j.k};
    size_t off = 2;
    for (size_t i = 0; i < NFIELDS && off + 2 <= size; i++) {
        size_t len = (size_t)data[off] | ((size_t)data[off + 1] << 8);
        off += 2;
        if (len > size - off)
            len = size - off;
        /* an exact-size copy, so ASan sees reads past a field */
        if (len > 0 && kv_buf_dup(data + off, len, f[i]) != KV_OK)
            abort();
        off += len;
    }

    struct ks_material *m = NULL;
    if (ks_material_from_jwk(&j, &m) == KV_OK) {
        FUZZ_ASSERT(ks_material_kty(m) == j.kty);
        struct ks_pub pub = {0}, pub2 = {0};
        FUZZ_ASSERT(ks_material_public(m, &pub) == KV_OK);
        struct kv_buf ser = {0};
        FUZZ_ASSERT(ks_material_serialize(m, &ser) == KV_OK);
        struct ks_material *m2 = NULL;
        FUZZ_ASSERT(ks_material_deserialize(j.kty, ser.data, ser.len, &m2) == KV_OK);
        FUZZ_ASSERT(ks_material_public(m2, &pub2) == KV_OK);
        FUZZ_ASSERT(buf_eq(&pub.n, &pub2.n) && buf_eq(&pub.e, &pub2.e) && buf_eq(&pub.x, &pub2.x) &&
                    buf_eq(&pub.y, &pub2.y) && pub.size_bits == pub2.size_bits);
        op_roundtrip(m, j.kty, pub.crv);
        ks_pub_clear(&pub);
        ks_pub_clear(&pub2);
        kv_buf_wipe(&ser);
        ks_material_free(m2);
        ks_material_free(m);
    }
    for (size_t i = 0; i < NFIELDS; i++)
        kv_buf_wipe(f[i]);
    return 0;
}
