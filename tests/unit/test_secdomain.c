/* A Managed HSM's security domain (keystore/secdomain.c), opened here as a client would:
 * each share decrypted with its certificate's private key (JWE, RSA-OAEP-256 and
 * A256CBC-HS512), any quorum of shares rebuilding one master key (Lagrange over GF(257)),
 * and the domain datum decrypted under the key SP 800-108 derives from it. Refused
 * inputs (too few or many certificates, a quorum out of range, a certificate that is not
 * one or holds no RSA key of 2048 bits) give nothing.
 *
 * The upload: an HSM's transfer key (the same on every ask, another HSM's another, none for
 * what is no live HSM), a restore blob made for it (testsd.h) of another HSM's domain, after
 * which the HSM's downloads carry that domain; refused blobs change nothing; and purging
 * the HSM takes its transfer key and its uploaded domain with it. */
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
#include "testsd.h"

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
    testsd_kdf(master, 32, tag ? tag : "", cek);
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

/* The transfer key of @p hsm: its JWK text (cJSON_free()). */
static char *transfer(const char *hsm)
{
    char *jwk = NULL;
    CHECK_ST(ks_hsm_transfer_key(env, hsm, &jwk), KV_OK);
    return jwk;
}

/* @p hsm's domain, as a download of it opens. */
static void domain_of(const char *hsm, unsigned char out[32])
{
    char *sd = NULL;
    const char *why = NULL;
    static const int use[2] = {2, 0};
    memset(out, 0, 32);
    CHECK_ST(ks_hsm_security_domain(env, hsm, certs, 3, 2, &sd, &why), KV_OK);
    if (sd != NULL)
        open_domain(sd, use, 2, out);
    cJSON_free(sd);
}

static void make_hsm(const char *name)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7, .hsm = 1, .premium = 1};
    snprintf(v.name, sizeof(v.name), "%s", name);
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
}

/* Upload @p blob into @p hsm: its status, and @p want_why when refused. */
static void upload(const char *hsm, const char *blob, enum kv_status want, const char *want_why)
{
    const char *why = NULL;
    CHECK_ST(ks_hsm_security_domain_upload(env, hsm, blob, blob ? strlen(blob) : 0, &why), want);
    if (want_why != NULL && (why == NULL || strstr(why, want_why) == NULL)) {
        fprintf(stderr, "upload into %s: why %s, want %s\n", hsm, why ? why : "(none)", want_why);
        check_failures++;
    }
}

/* @p blob with the character at @p at of member @p path's string changed. */
static char *tampered(const char *blob, const char *what, size_t at)
{
    cJSON *doc = cJSON_Parse(blob);
    cJSON *item =
        strcmp(what, "enc_key") == 0
            ? cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "WrappedKey"), "enc_key")
            : cJSON_GetObjectItem(
                  cJSON_GetArrayItem(
                      cJSON_GetObjectItem(cJSON_GetObjectItem(doc, "EncData"), "data"), 0),
                  "compact_jwe");
    char *s = strdup(cJSON_GetStringValue(item));
    size_t n = strlen(s);
    s[at % n] = s[at % n] == 'A' ? 'B' : 'A';
    cJSON_SetValuestring(item, s);
    free(s);
    char *out = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    return out;
}

static void uploads(void)
{
    /* no transfer key for what is no live HSM, nor for a vault */
    char *jwk = NULL;
    CHECK_ST(ks_hsm_transfer_key(env, "up1", &jwk), KV_ERR_VAULT_NOT_FOUND);
    struct ks_vault vault = {.soft_delete = 1, .retention_days = 7};
    snprintf(vault.name, sizeof(vault.name), "upvault");
    CHECK_ST(ks_vault_create(env, &vault), KV_OK);
    CHECK_ST(ks_hsm_transfer_key(env, "upvault", &jwk), KV_ERR_VAULT_NOT_FOUND);
    CHECK(jwk == NULL);
    make_hsm("up1");
    make_hsm("up2");
    /* one transfer key per HSM, the same on each ask (any case of the name), a JWK of its
     * certificate's RSA key */
    char *t1 = transfer("up1"), *again = transfer("UP1"), *t2 = transfer("up2");
    if (t1 == NULL || again == NULL || t2 == NULL)
        return;
    CHECK_STR(again, t1);
    CHECK(strcmp(t1, t2) != 0);
    cJSON *k = cJSON_Parse(t1);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k, "kty")), "RSA");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k, "alg")), "RSA-OAEP-256");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k, "use")), "enc");
    CHECK(cJSON_GetObjectItem(k, "d") == NULL && cJSON_GetObjectItem(k, "p") == NULL);
    const char *x5c = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(k, "x5c"), 0));
    unsigned char der[4096];
    size_t der_len = 0;
    CHECK(x5c != NULL && sodium_base642bin(der, sizeof(der), x5c, strlen(x5c), NULL, &der_len, NULL,
                                           sodium_base64_VARIANT_ORIGINAL) == 0);
    unsigned char thumb[32];
    crypto_hash_sha256(thumb, der, der_len);
    char *s256 = testsd_b64u(thumb, 32);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(k, "x5t#S256")), s256);
    free(s256);
    const unsigned char *p = der;
    X509 *cert = d2i_X509(NULL, &p, (long)der_len);
    BIGNUM *n = NULL;
    CHECK(cert != NULL && X509_verify(cert, X509_get0_pubkey(cert)) == 1 &&
          EVP_PKEY_get_bits(X509_get0_pubkey(cert)) == 2048 &&
          EVP_PKEY_get_bn_param(X509_get0_pubkey(cert), "n", &n) == 1);
    struct kv_buf nb = {0};
    CHECK_ST(kv_b64url_decode(cJSON_GetStringValue(cJSON_GetObjectItem(k, "n")), &nb), KV_OK);
    CHECK(n != NULL && nb.len == (size_t)BN_num_bytes(n));
    unsigned char nbin[512];
    CHECK(n != NULL && BN_bn2bin(n, nbin) == (int)nb.len && memcmp(nbin, nb.data, nb.len) == 0);
    kv_buf_free(&nb);
    BN_free(n);
    X509_free(cert);
    cJSON_Delete(k);

    /* up1's domain uploaded into up2: up2's downloads carry it since */
    unsigned char d1[32], d2[32], got[32];
    domain_of("up1", d1);
    domain_of("up2", d2);
    CHECK(memcmp(d1, d2, 32) != 0);
    int yes = -1;
    CHECK_ST(ks_hsm_security_domain_uploaded(env, "up2", &yes), KV_OK);
    CHECK(yes == 0);
    char *blob = testsd_blob(t2, "kvmock-domain", d1, 32);
    CHECK(blob != NULL);

    /* refused, and nothing changes */
    const char *shape = "needs its restore blob in 'value'";
    upload("up2", NULL, KV_ERR_BAD_PARAM, shape);
    upload("up2", "not json", KV_ERR_BAD_PARAM, shape);
    upload("up2",
           "{\"EncData\":{\"data\":[]},\"WrappedKey\":{\"enc_key\":\"a\",\"x5t_256\":\"b\"}}",
           KV_ERR_BAD_PARAM, shape);
    upload("up2",
           "{\"EncData\":{\"data\":[{\"compact_jwe\":1,\"tag\":\"t\"}]},"
           "\"WrappedKey\":{\"enc_key\":\"a\",\"x5t_256\":\"b\"}}",
           KV_ERR_BAD_PARAM, shape);
    upload("up2", "{\"EncData\":{\"data\":[{\"compact_jwe\":\"a\",\"tag\":\"t\"}]}}",
           KV_ERR_BAD_PARAM, shape);
    upload("up1", blob, KV_ERR_BAD_PARAM, "wrapped for another transfer key"); /* up2's */
    make_hsm("up3");                                                           /* none asked */
    upload("up3", blob, KV_ERR_BAD_PARAM, "wrapped for another transfer key");
    upload("nohsm", blob, KV_ERR_VAULT_NOT_FOUND, NULL);
    for (size_t at = 20; at < 400; at += 97) {
        char *bad = tampered(blob, "enc_key", at), *bad2 = tampered(blob, "compact_jwe", at);
        upload("up2", bad, KV_ERR_BAD_PARAM, "does not open");
        upload("up2", bad2, KV_ERR_BAD_PARAM, "does not open");
        cJSON_free(bad);
        cJSON_free(bad2);
    }
    char *other_tag = testsd_blob(t2, "another-domain", d1, 32);
    char *short_one = testsd_blob(t2, "kvmock-domain", d1, 31);
    upload("up2", other_tag, KV_ERR_BAD_PARAM, "holds no kvmock managed HSM's security domain");
    upload("up2", short_one, KV_ERR_BAD_PARAM, "holds no kvmock managed HSM's security domain");
    cJSON_free(other_tag);
    cJSON_free(short_one);
    CHECK_ST(ks_hsm_security_domain_uploaded(env, "up2", &yes), KV_OK);
    CHECK(yes == 0);
    domain_of("up2", got);
    CHECK(memcmp(got, d2, 32) == 0);

    /* taken */
    upload("up2", blob, KV_OK, NULL);
    CHECK_ST(ks_hsm_security_domain_uploaded(env, "up2", &yes), KV_OK);
    CHECK(yes == 1);
    domain_of("up2", got);
    CHECK(memcmp(got, d1, 32) == 0);
    domain_of("up1", got);
    CHECK(memcmp(got, d1, 32) == 0);
    char *t2_after = transfer("up2");
    CHECK(t2_after != NULL && strcmp(t2_after, t2) == 0);
    cJSON_free(t2_after);

    /* deleted, it keeps both; purged, both go: a new HSM of the name starts afresh */
    CHECK_ST(ks_vault_soft_delete(env, "up2", NULL, NULL), KV_OK);
    CHECK_ST(ks_hsm_transfer_key(env, "up2", &jwk), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_recover(env, "up2", 1, &vault), KV_OK);
    domain_of("up2", got);
    CHECK(memcmp(got, d1, 32) == 0);
    CHECK_ST(ks_vault_soft_delete(env, "up2", NULL, NULL), KV_OK);
    CHECK_ST(ks_deleted_vault_purge(env, "up2", 1, NULL, 0, NULL), KV_OK);
    make_hsm("up2");
    CHECK_ST(ks_hsm_security_domain_uploaded(env, "up2", &yes), KV_OK);
    CHECK(yes == 0);
    domain_of("up2", got);
    CHECK(memcmp(got, d2, 32) == 0);
    char *t2_new = transfer("up2");
    CHECK(t2_new != NULL && strcmp(t2_new, t2) != 0);
    upload("up2", blob, KV_ERR_BAD_PARAM, "wrapped for another transfer key");
    cJSON_free(t2_new);
    cJSON_free(blob);
    cJSON_free(t1);
    cJSON_free(again);
    cJSON_free(t2);
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
        uploads();
        ks_close(env);
    }
    for (int i = 0; i < NCERTS; i++) {
        EVP_PKEY_free(keys[i]);
        kv_buf_free(&certs[i]);
    }
    check_remove_dir(dir);
    CHECK_DONE();
}
