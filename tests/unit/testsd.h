/* A Managed HSM security domain's restore blob, made as the Azure CLI's `az keyvault
 * security-domain restore-blob` makes it, for the unit tests of the upload
 * (keystore/secdomain.c): written here from the formats, apart from the keystore's code.
 *
 *   {"EncData": {"data": [{"compact_jwe": JWE("dir"), "tag": TAG}], "kdf": "sp108_kdf"},
 *    "WrappedKey": {"enc_key": JWE(RSA-OAEP-256), "x5t_256": S256 of the transfer cert}}
 */
#ifndef KV_TESTSD_H
#define KV_TESTSD_H

#include <cjson/cJSON.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_buf.h"

/* SP 800-108 in counter mode with HMAC-SHA512, one block of 512 bits, empty context. */
static inline void testsd_kdf(const unsigned char *key, size_t key_len, const char *label,
                              unsigned char out[64])
{
    static const unsigned char one[4] = {0, 0, 0, 1}, l512[4] = {0, 0, 2, 0}, zero = 0;
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, key, key_len);
    crypto_auth_hmacsha512_update(&st, one, 4);
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)label, strlen(label));
    crypto_auth_hmacsha512_update(&st, &zero, 1);
    crypto_auth_hmacsha512_update(&st, l512, 4);
    crypto_auth_hmacsha512_final(&st, out);
}

/* base64url of @p len bytes, or NULL. */
static inline char *testsd_b64u(const void *data, size_t len)
{
    char *s = NULL;
    return kv_b64url_encode(data, len, &s) == KV_OK ? s : NULL;
}

/* A compact JWE, A256CBC-HS512 under @p cek (the MAC key, then the AES key), with header
 * @p header and encrypted key @p ekey (NULL: "dir"). NULL on failure. */
static inline char *testsd_jwe(const char *header, const unsigned char cek[64],
                               const unsigned char *ekey, size_t ekey_len,
                               const unsigned char *plain, size_t len)
{
    unsigned char iv[16], ct[256], mac[64];
    if (len + 16 > sizeof(ct))
        return NULL;
    randombytes_buf(iv, sizeof(iv));
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    int ok = ctx != NULL && EVP_EncryptInit_ex(ctx, EVP_aes_256_cbc(), NULL, cek + 32, iv) == 1 &&
             EVP_EncryptUpdate(ctx, ct, &n, plain, (int)len) == 1 &&
             EVP_EncryptFinal_ex(ctx, ct + n, &fin) == 1;
    EVP_CIPHER_CTX_free(ctx);
    char *h = testsd_b64u(header, strlen(header)), *out = NULL;
    if (!ok || h == NULL) {
        free(h);
        return NULL;
    }
    uint64_t bits = (uint64_t)strlen(h) * 8;
    unsigned char al[8];
    for (int i = 0; i < 8; i++)
        al[i] = (unsigned char)(bits >> (56 - 8 * i));
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, cek, 32);
    crypto_auth_hmacsha512_update(&st, (const unsigned char *)h, strlen(h));
    crypto_auth_hmacsha512_update(&st, iv, sizeof(iv));
    crypto_auth_hmacsha512_update(&st, ct, (size_t)(n + fin));
    crypto_auth_hmacsha512_update(&st, al, 8);
    crypto_auth_hmacsha512_final(&st, mac);
    char *k = ekey != NULL ? testsd_b64u(ekey, ekey_len) : strdup(""),
         *i = testsd_b64u(iv, sizeof(iv)), *c = testsd_b64u(ct, (size_t)(n + fin)),
         *t = testsd_b64u(mac, 32);
    if (k != NULL && i != NULL && c != NULL && t != NULL) {
        size_t cap = strlen(h) + strlen(k) + strlen(i) + strlen(c) + strlen(t) + 5;
        if ((out = malloc(cap)) != NULL)
            snprintf(out, cap, "%s.%s.%s.%s.%s", h, k, i, c, t);
    }
    free(h);
    free(k);
    free(i);
    free(c);
    free(t);
    return out;
}

/* The restore blob of domain datum @p plain (@p len bytes, tag @p tag) for transfer key
 * @p jwk (the JSON web key's text, its certificate in x5c): a fresh master key wrapped for
 * the certificate's RSA key. NULL on failure. */
static inline char *testsd_blob(const char *jwk, const char *tag, const unsigned char *plain,
                                size_t len)
{
    cJSON *key = cJSON_Parse(jwk);
    const char *x5c = cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(key, "x5c"), 0));
    unsigned char der[4096], master[32], cek[64], dkey[64], ekey[512];
    size_t der_len = 0, ekey_len = sizeof(ekey);
    int ok = x5c != NULL && sodium_base642bin(der, sizeof(der), x5c, strlen(x5c), NULL, &der_len,
                                              NULL, sodium_base64_VARIANT_ORIGINAL) == 0;
    const unsigned char *p = der;
    X509 *cert = ok ? d2i_X509(NULL, &p, (long)der_len) : NULL;
    EVP_PKEY_CTX *ctx = cert != NULL ? EVP_PKEY_CTX_new(X509_get0_pubkey(cert), NULL) : NULL;
    randombytes_buf(master, sizeof(master));
    randombytes_buf(cek, sizeof(cek));
    ok = ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1 &&
         EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1 &&
         EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1 &&
         EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1 &&
         EVP_PKEY_encrypt(ctx, ekey, &ekey_len, cek, sizeof(cek)) == 1;
    EVP_PKEY_CTX_free(ctx);
    X509_free(cert);
    cJSON_Delete(key);
    if (!ok)
        return NULL;
    unsigned char thumb[32];
    crypto_hash_sha256(thumb, der, der_len);
    testsd_kdf(master, sizeof(master), tag, dkey);
    char header[160];
    snprintf(header, sizeof(header), "{\"alg\":\"dir\",\"enc\":\"A256CBC-HS512\",\"kid\":\"%s\"}",
             tag);
    char *wrapped = testsd_jwe("{\"alg\":\"RSA-OAEP-256\",\"enc\":\"A256CBC-HS512\",\"kid\":"
                               "\"not used\"}",
                               cek, ekey, ekey_len, master, sizeof(master));
    char *datum = testsd_jwe(header, dkey, NULL, 0, plain, len), *s256 = testsd_b64u(thumb, 32);
    char *out = NULL;
    cJSON *doc = cJSON_CreateObject(), *enc = cJSON_AddObjectToObject(doc, "EncData");
    cJSON *data = cJSON_AddArrayToObject(enc, "data"), *item = cJSON_CreateObject();
    cJSON *wk = cJSON_AddObjectToObject(doc, "WrappedKey");
    if (wrapped != NULL && datum != NULL && s256 != NULL && item != NULL &&
        cJSON_AddStringToObject(item, "compact_jwe", datum) &&
        cJSON_AddStringToObject(item, "tag", tag) && cJSON_AddItemToArray(data, item)) {
        item = NULL;
        if (cJSON_AddStringToObject(enc, "kdf", "sp108_kdf") &&
            cJSON_AddStringToObject(wk, "enc_key", wrapped) &&
            cJSON_AddStringToObject(wk, "x5t_256", s256))
            out = cJSON_PrintUnformatted(doc);
    }
    cJSON_Delete(item);
    cJSON_Delete(doc);
    free(wrapped);
    free(datum);
    free(s256);
    sodium_memzero(master, sizeof(master));
    sodium_memzero(cek, sizeof(cek));
    sodium_memzero(dkey, sizeof(dkey));
    return out;
}

#endif
