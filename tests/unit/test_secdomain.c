/* A Managed HSM's security domain (keystore/secdomain.c), opened here as a client would:
 * each share decrypted with its certificate's private key (JWE, RSA-OAEP-256 and
 * A256CBC-HS512), any quorum of shares rebuilding one master key (Lagrange over GF(257)),
 * and the domain datum decrypted under the key SP 800-108 derives from it. Refused
 * inputs (too few or many certificates, a quorum out of range, a certificate that is not
 * one or holds no RSA key of 2048 bits) give nothing. */
#include <cjson/cJSON.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "ks.h"
#include "kv_buf.h"
#include "testcert.h"

static char dir[] = "/tmp/kvmock-sd-XXXXXX";
static struct ks_env *env;

#define NCERTS 4

static EVP_PKEY *keys[NCERTS];
static struct kv_buf certs[NCERTS];

/* A self-signed certificate of @p key with serial number @p serial, DER, into @p out. */
static void make_cert(EVP_PKEY *key, long serial, struct kv_buf *out)
{
    CHECK(testcert_make(key, serial, out));
}

static EVP_PKEY *rsa_key(int bits)
{
    EVP_PKEY *k = EVP_RSA_gen((unsigned)bits);
    CHECK(k != NULL);
    return k;
}

/* The five parts of compact JWE @p jwe, decoded (the header as text). 0 when malformed. */
static int jwe_parts(const char *jwe, char **header_b64, struct kv_buf part[5])
{
    const char *p = jwe;
    for (int i = 0; i < 5; i++) {
        const char *dot = i < 4 ? strchr(p, '.') : p + strlen(p);
        if (dot == NULL)
            return 0;
        char *piece = strndup(p, (size_t)(dot - p));
        if (i == 0)
            *header_b64 = strdup(piece);
        if (piece[0] == '\0')
            part[i] = (struct kv_buf){0};
        else
            CHECK_ST(kv_b64url_decode(piece, &part[i]), KV_OK);
        free(piece);
        p = dot + 1;
    }
    return 1;
}

/* Open A256CBC-HS512 under @p cek: the plaintext into @p out, 0 when the tag is wrong. */
static int open_cbc_hs512(const char *header_b64, struct kv_buf part[5],
                          const unsigned char cek[64], struct kv_buf *out)
{
    uint64_t bits = (uint64_t)strlen(header_b64) * 8;
    unsigned char al[8], mac[64];
    for (int i = 0; i < 8; i++)
        al[i] = (unsigned char)(bits >> (56 - 8 * i));
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, cek, 32);
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)header_b64, strlen(header_b64));
    crypto_auth_hmacsha512_update(&st, part[2].data, part[2].len);
    crypto_auth_hmacsha512_update(&st, part[3].data, part[3].len);
    crypto_auth_hmacsha512_update(&st, al, 8);
    crypto_auth_hmacsha512_final(&st, mac);
    if (part[4].len != 32 || sodium_memcmp(mac, part[4].data, 32) != 0 || part[2].len != 16)
        return 0;
    CHECK_ST(kv_buf_alloc(part[3].len + 16, out), KV_OK);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    int ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek + 32, part[2].data) == 1 &&
             EVP_DecryptUpdate(ctx, out->data, &len, part[3].data, (int)part[3].len) == 1 &&
             EVP_DecryptFinal_ex(ctx, out->data + len, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    out->len = (size_t)(len + fin);
    return ok;
}

static void parts_free(char *header_b64, struct kv_buf part[5])
{
    free(header_b64);
    for (int i = 0; i < 5; i++)
        kv_buf_free(&part[i]);
}

/* Share @p jwe opened with private key @p key: 32 words. */
static int open_share(const char *jwe, EVP_PKEY *key, uint16_t words[32])
{
    char *h = NULL;
    struct kv_buf part[5] = {{0}}, plain = {0};
    int ok = jwe_parts(jwe, &h, part);
    unsigned char cek[512];
    size_t cek_len = sizeof(cek);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    ok = ok && ctx != NULL && EVP_PKEY_decrypt_init(ctx) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
         EVP_PKEY_decrypt(ctx, cek, &cek_len, part[1].data, part[1].len) == 1 && cek_len == 64 &&
         open_cbc_hs512(h, part, cek, &plain) && plain.len == 64;
    EVP_PKEY_CTX_free(ctx);
    for (int j = 0; ok && j < 32; j++)
        words[j] = (uint16_t)(plain.data[2 * j] | (plain.data[2 * j + 1] << 8));
    if (ok) {
        cJSON *hdr = NULL;
        struct kv_buf raw = {0};
        CHECK_ST(kv_b64url_decode(h, &raw), KV_OK);
        hdr = cJSON_ParseWithLength((const char *)raw.data, raw.len);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(hdr, "alg")), "RSA-OAEP-256");
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(hdr, "enc")), "A256CBC-HS512");
        cJSON_Delete(hdr);
        kv_buf_free(&raw);
    }
    kv_buf_free(&plain);
    parts_free(h, part);
    return ok;
}

static unsigned gf_pow(unsigned x, unsigned e)
{
    unsigned r = 1;
    for (; e; e--)
        r = r * x % 257;
    return r;
}

/* The master key from @p m shares (their words), by Lagrange at 0 over GF(257). */
static void rebuild(uint16_t shares[][32], int m, unsigned char out[32])
{
    for (int j = 0; j < 32; j++) {
        unsigned secret = 0;
        for (int i = 0; i < m; i++) {
            unsigned xi = shares[i][j] >> 9, yi = shares[i][j] & 0x1ff, num = 1, den = 1;
            for (int k = 0; k < m; k++) {
                if (k == i)
                    continue;
                unsigned xk = shares[k][j] >> 9;
                num = num * xk % 257;
                den = den * ((xk + 257 - xi) % 257) % 257;
            }
            secret = (secret + yi * num % 257 * gf_pow(den, 255)) % 257;
        }
        CHECK(secret < 256);
        out[j] = (unsigned char)secret;
    }
}

/* Open security domain @p text with private keys @p use (indexes into keys[], @p m of
 * them): the domain secret into @p domain. */
static void open_domain(const char *text, const int *use, int m, unsigned char domain[32])
{
    cJSON *doc = cJSON_Parse(text);
    cJSON *shares = cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "SharedKeys"), "enc_shares");
    uint16_t words[NCERTS][32];
    for (int u = 0; u < m; u++) {
        unsigned char thumb[32];
        crypto_hash_sha256(thumb, certs[use[u]].data, certs[use[u]].len);
        char *s256 = NULL;
        CHECK_ST(kv_b64url_encode(thumb, sizeof(thumb), &s256), KV_OK);
        const cJSON *it, *mine = NULL;
        cJSON_ArrayForEach(it, shares)
        {
            if (s256 && strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(it, "x5t_256")), s256) == 0)
                mine = it;
        }
        free(s256);
        CHECK(mine != NULL && open_share(cJSON_GetStringValue(cJSON_GetObjectItem(mine, "enc_key")),
                                         keys[use[u]], words[u]));
    }
    unsigned char master[32], cek[64];
    rebuild(words, m, master);
    const cJSON *datum =
        cJSON_GetArrayItem(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "EncData"), "data"), 0);
    const char *tag = cJSON_GetStringValue(cJSON_GetObjectItem(datum, "tag"));
    CHECK_STR(tag, "kvmock-domain");
    /* SP 800-108, counter mode, HMAC-SHA512, one block of 512 bits */
    static const unsigned char one[4] = {0, 0, 0, 1}, l512[4] = {0, 0, 2, 0}, zero = 0;
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, master, 32);
    crypto_auth_hmacsha512_update(&st, one, 4);
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)(tag ? tag : ""),
                                  tag ? strlen(tag) : 0);
    crypto_auth_hmacsha512_update(&st, &zero, 1);
    crypto_auth_hmacsha512_update(&st, l512, 4);
    crypto_auth_hmacsha512_final(&st, cek);
    char *h = NULL;
    struct kv_buf part[5] = {{0}}, plain = {0};
    const char *jwe = cJSON_GetStringValue(cJSON_GetObjectItem(datum, "compact_jwe"));
    CHECK(jwe != NULL && jwe_parts(jwe, &h, part) && part[1].len == 0 &&
          open_cbc_hs512(h, part, cek, &plain) && plain.len == 32);
    if (plain.len == 32)
        memcpy(domain, plain.data, 32);
    kv_buf_free(&plain);
    parts_free(h, part);
    cJSON_Delete(doc);
}

static void downloads(void)
{
    char *a = NULL, *b = NULL, *other = NULL;
    const char *why = NULL;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", certs, 3, 2, &a, &why), KV_OK);
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", certs, 4, 3, &b, &why), KV_OK);
    CHECK_ST(ks_hsm_security_domain(env, "hsm2", certs, 3, 3, &other, &why), KV_OK);
    if (a == NULL || b == NULL || other == NULL)
        return;
    cJSON *doc = cJSON_Parse(a);
    cJSON *shared = cJSON_GetObjectItem(doc, "SharedKeys");
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(shared, "enc_shares")) == 3);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(shared, "key_algorithm")), "shamir_share");
    CHECK(cJSON_GetNumberValue(cJSON_GetObjectItem(shared, "required")) == 2);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "EncData"), "kdf")),
              "sp108_kdf");
    cJSON_Delete(doc);
    /* every pair of a's shares rebuilds one master key, which opens one domain; b's any
     * three of four; hsm1's domain is the same in both downloads, hsm2's another */
    static const int pairs[3][2] = {{0, 1}, {1, 2}, {0, 2}};
    unsigned char first[32], got[32];
    open_domain(a, pairs[0], 2, first);
    for (int p = 1; p < 3; p++) {
        open_domain(a, pairs[p], 2, got);
        CHECK(memcmp(got, first, 32) == 0);
    }
    static const int triples[2][3] = {{0, 1, 2}, {3, 1, 0}};
    for (int t = 0; t < 2; t++) {
        open_domain(b, triples[t], 3, got);
        CHECK(memcmp(got, first, 32) == 0);
    }
    open_domain(other, triples[0], 3, got);
    CHECK(memcmp(got, first, 32) != 0);
    cJSON_free(a);
    cJSON_free(b);
    cJSON_free(other);
}

static void refused(void)
{
    char *out = NULL;
    const char *why = NULL;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", certs, 2, 2, &out, &why), KV_ERR_BAD_PARAM);
    CHECK(out == NULL && why != NULL);
    struct kv_buf many[11];
    for (int i = 0; i < 11; i++)
        many[i] = certs[i % NCERTS];
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", many, 11, 2, &out, &why), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", certs, 3, 1, &out, &why), KV_ERR_BAD_PARAM);
    struct kv_buf twice[3] = {certs[0], certs[1], certs[0]};
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", twice, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    /* another certificate of a key already given */
    struct kv_buf again = {0};
    make_cert(keys[0], 2, &again);
    CHECK(again.len != certs[0].len || memcmp(again.data, certs[0].data, again.len) != 0);
    twice[2] = again;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", twice, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    kv_buf_free(&again);
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", certs, 3, 4, &out, &why), KV_ERR_BAD_PARAM);
    /* a certificate that is not one, one of an EC key, one of a 1024-bit RSA key */
    EVP_PKEY *ec = EVP_EC_gen("P-256"), *small = rsa_key(1024);
    struct kv_buf bad[3] = {certs[0], certs[1], {0}};
    unsigned char junk[] = {0x30, 0x03, 0x02, 0x01, 0x01};
    bad[2] = (struct kv_buf){.data = junk, .len = sizeof(junk)};
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", bad, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    struct kv_buf ec_cert = {0}, small_cert = {0};
    make_cert(ec, 1, &ec_cert);
    make_cert(small, 1, &small_cert);
    bad[2] = ec_cert;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", bad, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    bad[2] = small_cert;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", bad, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    /* a certificate with bytes after it */
    struct kv_buf longer = {0};
    CHECK_ST(kv_buf_alloc(certs[2].len + 1, &longer), KV_OK);
    memcpy(longer.data, certs[2].data, certs[2].len);
    longer.data[certs[2].len] = 0;
    bad[2] = longer;
    CHECK_ST(ks_hsm_security_domain(env, "hsm1", bad, 3, 2, &out, &why), KV_ERR_BAD_PARAM);
    CHECK(out == NULL);
    kv_buf_free(&longer);
    kv_buf_free(&ec_cert);
    kv_buf_free(&small_cert);
    EVP_PKEY_free(ec);
    EVP_PKEY_free(small);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    CHECK(mkdtemp(dir) != NULL);
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    for (int i = 0; i < NCERTS; i++) {
        keys[i] = rsa_key(2048);
        make_cert(keys[i], 1, &certs[i]);
    }
    if (env != NULL) {
        downloads();
        refused();
        ks_close(env);
    }
    for (int i = 0; i < NCERTS; i++) {
        EVP_PKEY_free(keys[i]);
        kv_buf_free(&certs[i]);
    }
    check_remove_dir(dir);
    CHECK_DONE();
}
