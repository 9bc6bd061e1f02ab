#include "seal.h"

#define SEAL_FORMAT 1
#define NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_LEN crypto_aead_xchacha20poly1305_ietf_ABYTES
#define HEADER_LEN (1 + NONCE_LEN)

enum kv_status ks_seal(const unsigned char *root_key, const void *ad, size_t ad_len,
                       const unsigned char *plain, size_t plain_len, struct kv_buf *out)
{
    struct kv_buf blob;
    if (kv_buf_alloc(HEADER_LEN + plain_len + TAG_LEN, &blob) != KV_OK)
        return KV_ERR_NOMEM;
    blob.data[0] = SEAL_FORMAT;
    randombytes_buf(blob.data + 1, NONCE_LEN);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(blob.data + HEADER_LEN, &clen, plain, plain_len,
                                               ad, ad_len, NULL, blob.data + 1, root_key);
    blob.len = HEADER_LEN + (size_t)clen;
    *out = blob;
    return KV_OK;
}

enum kv_status ks_unseal(const unsigned char *root_key, const void *ad, size_t ad_len,
                         const unsigned char *blob, size_t blob_len, struct kv_buf *out)
{
    if (blob_len < HEADER_LEN + TAG_LEN || blob[0] != SEAL_FORMAT)
        return KV_ERR_CRYPTO;
    struct kv_buf plain;
    if (kv_buf_alloc(blob_len - HEADER_LEN - TAG_LEN, &plain) != KV_OK)
        return KV_ERR_NOMEM;
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data, &plen, NULL, blob + HEADER_LEN,
                                                   blob_len - HEADER_LEN, ad, ad_len, blob + 1,
                                                   root_key) != 0) {
        kv_buf_wipe(&plain);
        return KV_ERR_CRYPTO;
    }
    plain.len = (size_t)plen;
    *out = plain;
    return KV_OK;
}
