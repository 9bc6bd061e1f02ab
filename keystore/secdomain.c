/*
 * A Managed HSM's security domain, as Managed HSM's download gives it (and as the Azure
 * CLI's `az keyvault security-domain restore-blob` / `upload` read it):
 *
 *   {"EncData": {"data": [{"compact_jwe": JWE, "tag": TAG}], "kdf": "sp108_kdf"},
 *    "SharedKeys": {"enc_shares": [{"enc_key": JWE, "x5t_256": S256}, ...],
 *                   "key_algorithm": "shamir_share", "required": M}}
 *
 * A fresh 32-byte master key is split into N Shamir shares over GF(257), one for each of
 * the customer's certificates, any M of which rebuild it. Each share is a list of 16-bit
 * words (x << 9 | y, little-endian), one per byte of the master key, encrypted to its
 * certificate as a compact JWE (RSA-OAEP-256, A256CBC-HS512). The domain itself is one
 * datum: a compact JWE ("dir", A256CBC-HS512) of the HSM's domain secret under the key
 * SP 800-108 (HMAC-SHA512, counter mode) derives from the master key and the datum's tag.
 * The domain secret is derived from the data folder's root key and the HSM's name, so
 * every download of an HSM carries the same one; it is no key's material.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>

#include "ks.h"
#include "seal.h"
#include "store.h"

#define MASTER_LEN 32
#define CEK_LEN    64 /* A256CBC-HS512: the MAC key, then the AES key */
#define DOMAIN_TAG "kvmock-domain"

/* ---- Shamir's secret sharing over GF(257) ----------------------------------------------- */

static unsigned gf_random(void)
{
    return randombytes_uniform(257);
}

/* The shares of @p secret (MASTER_LEN bytes) for x = 1..n, any @p m of which rebuild it:
 * words[i * MASTER_LEN + j] is share x = i + 1 of byte j. */
static void shamir_split(const unsigned char *secret, int n, int m, uint16_t *words)
{
    unsigned coef[10];
    for (size_t j = 0; j < MASTER_LEN; j++) {
        /* a polynomial of degree m - 1 whose constant term is the byte */
        for (int k = 0; k < m - 1; k++)
            coef[k] = gf_random();
        coef[m - 1] = secret[j];
        for (int x = 1; x <= n; x++) {
            unsigned y = 0;
            for (int k = 0; k < m; k++)
                y = (y * (unsigned)x + coef[k]) % 257;
            words[(size_t)(x - 1) * MASTER_LEN + j] = (uint16_t)(((unsigned)x << 9) | y);
        }
    }
    sodium_memzero(coef, sizeof(coef));
}

/* ---- JWE compact, A256CBC-HS512 --------------------------------------------------------- */

/* SP 800-108 in counter mode with HMAC-SHA512, one block: the 64-byte key of @p label. */
static void kdf_sp800_108(const unsigned char *key, size_t key_len, const char *label,
                          unsigned char out[64])
{
    static const unsigned char one[4] = {0, 0, 0, 1}, bits[4] = {0, 0, 2, 0}; /* L = 512 */
    static const unsigned char zero = 0;
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, key, key_len);
    crypto_auth_hmacsha512_update(&st, one, sizeof(one));
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)label, strlen(label));
    crypto_auth_hmacsha512_update(&st, &zero, 1); /* then an empty context */
    crypto_auth_hmacsha512_update(&st, bits, sizeof(bits));
    crypto_auth_hmacsha512_final(&st, out);
    sodium_memzero(&st, sizeof(st));
}

static char *b64url(const void *data, size_t len)
{
    char *s = NULL;
    return kv_b64url_encode(data, len, &s) == KV_OK ? s : NULL;
}

/* A compact JWE of @p plain under content key @p cek, with protected header @p header and
 * (NULL for "dir") the encrypted key @p ekey. NULL when out of memory or OpenSSL fails. */
static char *jwe_compact(const char *header, const unsigned char *ekey, size_t ekey_len,
                         const unsigned char cek[CEK_LEN], const unsigned char *plain,
                         size_t plain_len)
{
    unsigned char iv[16], mac[crypto_auth_hmacsha512_BYTES];
    randombytes_buf(iv, sizeof(iv));
    char *h = b64url(header, strlen(header)), *out = NULL;
    unsigned char *ct = malloc(plain_len + 16);
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len = 0, fin = 0;
    int ok = h != NULL && ct != NULL && ctx != NULL &&
             EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek + 32, iv) == 1 &&
             EVP_EncryptUpdate(ctx, ct, &len, plain, (int)plain_len) == 1 &&
             EVP_EncryptFinal_ex(ctx, ct + len, &fin) == 1;
    if (ok) {
        /* the tag: HMAC-SHA512 of the header's text, the IV, the ciphertext and the
         * header's length in bits, cut to 32 bytes */
        size_t ct_len = (size_t)(len + fin), aad_len = strlen(h);
        unsigned char al[8];
        for (int i = 0; i < 8; i++)
            al[i] = (unsigned char)(((uint64_t)aad_len * 8) >> (56 - 8 * i));
        crypto_auth_hmacsha512_state st;
        crypto_auth_hmacsha512_init(&st, cek, 32);
        crypto_auth_hmacsha512_update(&st, (const unsigned char *)h, aad_len);
        crypto_auth_hmacsha512_update(&st, iv, sizeof(iv));
        crypto_auth_hmacsha512_update(&st, ct, ct_len);
        crypto_auth_hmacsha512_update(&st, al, sizeof(al));
        crypto_auth_hmacsha512_final(&st, mac);
        char *k = ekey != NULL ? b64url(ekey, ekey_len) : NULL, *i = b64url(iv, sizeof(iv)),
             *c = b64url(ct, ct_len), *t = b64url(mac, 32);
        size_t total = strlen(h) + (k ? strlen(k) : 0) + (i ? strlen(i) : 0) + (c ? strlen(c) : 0) +
                       (t ? strlen(t) : 0) + 5;
        if ((ekey == NULL || k != NULL) && i != NULL && c != NULL && t != NULL &&
            (out = malloc(total)) != NULL)
            snprintf(out, total, "%s.%s.%s.%s.%s", h, k ? k : "", i, c, t);
        free(k);
        free(i);
        free(c);
        free(t);
    }
    EVP_CIPHER_CTX_free(ctx);
    free(ct);
    free(h);
    return out;
}

/* ---- the certificates ------------------------------------------------------------------- */

/* The RSA public key (of at least 2048 bits) of DER certificate @p der, or NULL. */
static EVP_PKEY *cert_key(const struct kv_buf *der)
{
    const unsigned char *p = der->data;
    X509 *x = d2i_X509(NULL, &p, (long)der->len);
    EVP_PKEY *k = x != NULL && p == der->data + der->len ? X509_get_pubkey(x) : NULL;
    X509_free(x);
    if (k != NULL && (EVP_PKEY_get_base_id(k) != EVP_PKEY_RSA || EVP_PKEY_get_bits(k) < 2048)) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    return k;
}

/* The compact JWE of @p share (words, little-endian) to certificate key @p key. */
static char *share_jwe(EVP_PKEY *key, const uint16_t *words)
{
    unsigned char plain[2 * MASTER_LEN], cek[CEK_LEN], ekey[1024];
    for (size_t j = 0; j < MASTER_LEN; j++) {
        plain[2 * j] = (unsigned char)(words[j] & 0xff);
        plain[2 * j + 1] = (unsigned char)(words[j] >> 8);
    }
    randombytes_buf(cek, sizeof(cek));
    size_t ekey_len = sizeof(ekey);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    int ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
             EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
             EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
             EVP_PKEY_encrypt(ctx, ekey, &ekey_len, cek, sizeof(cek)) == 1;
    EVP_PKEY_CTX_free(ctx);
    char *jwe = ok ? jwe_compact("{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256CBC-HS512\"}", ekey,
                                 ekey_len, cek, plain, sizeof(plain))
                   : NULL;
    sodium_memzero(plain, sizeof(plain));
    sodium_memzero(cek, sizeof(cek));
    return jwe;
}

/* ---- the document ----------------------------------------------------------------------- */

/* Add the item {"compact_jwe"|"enc_key": @p jwe, second member} to @p arr; takes @p jwe. */
static int add_item(cJSON *arr, const char *jwe_name, char *jwe, const char *name,
                    const char *value)
{
    cJSON *o = jwe != NULL ? cJSON_CreateObject() : NULL;
    int ok = o != NULL && cJSON_AddStringToObject(o, jwe_name, jwe) &&
             cJSON_AddStringToObject(o, name, value) && cJSON_AddItemToArray(arr, o);
    if (!ok)
        cJSON_Delete(o);
    free(jwe);
    return ok;
}

enum kv_status ks_hsm_security_domain(struct ks_env *env, const char *hsm,
                                      const struct kv_buf *certs, size_t n, int required,
                                      char **out, const char **why)
{
    *out = NULL;
    *why = NULL;
    if (n < 3 || n > 10) {
        *why = "The security domain needs 3 to 10 certificates.";
        return KV_ERR_BAD_PARAM;
    }
    if (required < 2 || (size_t)required > n) {
        *why = "The security domain's quorum (required) must be between 2 and the number of "
               "certificates.";
        return KV_ERR_BAD_PARAM;
    }
    EVP_PKEY *keys[10] = {0};
    enum kv_status st = KV_OK;
    for (size_t i = 0; st == KV_OK && i < n; i++) {
        /* out of memory, or not such a certificate: only a second failure says which */
        if ((keys[i] = cert_key(&certs[i])) == NULL && (keys[i] = cert_key(&certs[i])) == NULL) {
            *why = "Each certificate (x5c) must be an X.509 certificate with an RSA key of at "
                   "least 2048 bits.";
            st = KV_ERR_BAD_PARAM;
        }
        for (size_t j = 0; st == KV_OK && j < i; j++) {
            if (EVP_PKEY_eq(keys[j], keys[i]) == 1) { /* two certificates of one key too */
                *why = "The certificates' keys must differ: each holds one share of the security "
                       "domain.";
                st = KV_ERR_BAD_PARAM;
            }
        }
    }
    unsigned char master[MASTER_LEN], domain[32], key[64];
    uint16_t words[10 * MASTER_LEN];
    randombytes_buf(master, sizeof(master));
    /* the HSM's domain secret: its name under the root key, one way */
    char label[KS_VAULT_NAME_MAX + 32];
    snprintf(label, sizeof(label), "kvmock security domain\n%s", hsm);
    crypto_generichash(domain, sizeof(domain), (const unsigned char *)label, strlen(label),
                       env->root_key, KS_ROOT_KEY_LEN);
    cJSON *doc = st == KV_OK ? cJSON_CreateObject() : NULL;
    cJSON *enc = doc ? cJSON_AddObjectToObject(doc, "EncData") : NULL;
    cJSON *data = enc ? cJSON_AddArrayToObject(enc, "data") : NULL;
    int ok = data != NULL;
    if (ok) {
        kdf_sp800_108(master, sizeof(master), DOMAIN_TAG, key);
        char header[96];
        snprintf(header, sizeof(header),
                 "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\",\"kid\":\"%s\"}", DOMAIN_TAG);
        char *jwe = jwe_compact(header, NULL, 0, key, domain, sizeof(domain));
        ok = add_item(data, "compact_jwe", jwe, "tag", DOMAIN_TAG) &&
             cJSON_AddStringToObject(enc, "kdf", "sp108_kdf");
    }
    cJSON *shared = ok ? cJSON_AddObjectToObject(doc, "SharedKeys") : NULL;
    cJSON *shares = shared ? cJSON_AddArrayToObject(shared, "enc_shares") : NULL;
    ok = shares != NULL;
    if (ok)
        shamir_split(master, (int)n, required, words);
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char thumb[crypto_hash_sha256_BYTES];
        crypto_hash_sha256(thumb, certs[i].data, certs[i].len);
        char *s256 = b64url(thumb, sizeof(thumb));
        ok = s256 != NULL && add_item(shares, "enc_key", share_jwe(keys[i], words + i * MASTER_LEN),
                                      "x5t_256", s256);
        free(s256);
    }
    ok = ok && cJSON_AddStringToObject(shared, "key_algorithm", "shamir_share") &&
         cJSON_AddNumberToObject(shared, "required", required);
    if (ok && (*out = cJSON_PrintUnformatted(doc)) == NULL)
        ok = 0;
    if (st == KV_OK && !ok)
        st = KV_ERR_NOMEM;
    sodium_memzero(master, sizeof(master));
    sodium_memzero(domain, sizeof(domain));
    sodium_memzero(key, sizeof(key));
    sodium_memzero(words, sizeof(words));
    cJSON_Delete(doc);
    for (size_t i = 0; i < n && i < 10; i++)
        EVP_PKEY_free(keys[i]);
    return st;
}
