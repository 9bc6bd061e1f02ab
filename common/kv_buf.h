/**
 * @file kv_buf.h
 * @brief Owned byte buffers and base64url (RFC 4648 §5) conversion.
 *
 * A `struct kv_buf` owns `data` (heap, may be NULL when `len` is 0).
 * Buffers that held key material are released with kv_buf_wipe(), which
 * zeroes them with sodium_memzero() before freeing.
 */
#ifndef KV_BUF_H
#define KV_BUF_H

#include <stddef.h>

#include "kv_status.h"

struct kv_buf {
    unsigned char *data;
    size_t len;
};

/** @brief Free a buffer's data and reset it to empty. NULL is a no-op. */
void kv_buf_free(struct kv_buf *b);

/** @brief Zero a buffer's data, free it and reset it to empty. NULL is a no-op. */
void kv_buf_wipe(struct kv_buf *b);

/**
 * @brief Allocate a buffer of @p len bytes (uninitialised).
 * @param[out] out set only on success; release with kv_buf_free() or kv_buf_wipe().
 * @return KV_OK or KV_ERR_NOMEM.
 */
enum kv_status kv_buf_alloc(size_t len, struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief Copy @p len bytes into a new buffer.
 * @return KV_OK or KV_ERR_NOMEM.
 */
enum kv_status kv_buf_dup(const void *data, size_t len, struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief Decode base64url. Padding (`=`) is accepted and ignored; any other
 * character outside the URL-safe alphabet is an error.
 * @param[in] text NUL-terminated input.
 * @param[out] out set only on success; the caller frees it.
 * @return KV_OK, KV_ERR_BAD_BASE64 or KV_ERR_NOMEM.
 */
enum kv_status kv_b64url_decode(const char *text, struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief Encode bytes as unpadded base64url.
 * @param[out] out a new NUL-terminated string, set only on success; the caller frees it.
 * @return KV_OK or KV_ERR_NOMEM.
 */
enum kv_status kv_b64url_encode(const void *data, size_t len, char **out) KV_MUST_CHECK;

#endif
