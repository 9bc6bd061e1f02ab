/**
 * @file seal.h
 * @brief Sealing of private key material at rest (keystore-internal).
 *
 * A sealed blob is `format(1) || nonce(24) || XChaCha20-Poly1305 ciphertext+tag`
 * under the root key, with the record's location as associated data, so a
 * sealed value moved to another record does not open.
 */
#ifndef KS_SEAL_H
#define KS_SEAL_H

#include <sodium.h>

#include "kv_buf.h"

#define KS_ROOT_KEY_LEN crypto_aead_xchacha20poly1305_ietf_KEYBYTES

/**
 * @brief Seal @p plain under @p root_key with associated data @p ad.
 * @param[out] out the blob; the caller frees it with kv_buf_free().
 * @return KV_OK or KV_ERR_NOMEM.
 */
enum kv_status ks_seal(const unsigned char *root_key, const void *ad, size_t ad_len,
                       const unsigned char *plain, size_t plain_len,
                       struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief Open a blob made by ks_seal().
 * @param[out] out the plaintext; the caller must release it with kv_buf_wipe().
 * @return KV_OK, KV_ERR_CRYPTO (wrong key, wrong associated data or corrupt), KV_ERR_NOMEM.
 */
enum kv_status ks_unseal(const unsigned char *root_key, const void *ad, size_t ad_len,
                         const unsigned char *blob, size_t blob_len,
                         struct kv_buf *out) KV_MUST_CHECK;

#endif
