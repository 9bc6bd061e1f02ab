/**
 * @file kv_file.h
 * @brief Small file helpers: secret files and atomic writes.
 */
#ifndef KV_FILE_H
#define KV_FILE_H

#include <stddef.h>

#include "kv_status.h"

/**
 * @brief Load a secret of exactly @p len bytes from @p path, or create the file
 * with fresh random bytes (mode 0600) when it does not exist.
 *
 * A file of the wrong size, or one readable by group or others, is refused.
 * @param[out] out @p len bytes; the caller wipes them when done.
 * @return KV_OK or KV_ERR_STORE (a log line names the cause).
 */
enum kv_status kv_secret_file(const char *path, unsigned char *out, size_t len) KV_MUST_CHECK;

/**
 * @brief Write @p len bytes to @p path atomically (temp file, fsync, rename) with @p mode.
 * @return KV_OK or KV_ERR_STORE.
 */
enum kv_status kv_file_write_atomic(const char *path, const void *data, size_t len,
                                    unsigned mode) KV_MUST_CHECK;

/**
 * @brief Read a whole file (at most @p max bytes) into a new NUL-terminated buffer.
 * @param[out] out the contents, set only on success; the caller frees it.
 * @param[out] out_len its length without the NUL (may be NULL).
 * @return KV_OK, KV_ERR_STORE (missing, unreadable or too large) or KV_ERR_NOMEM.
 */
enum kv_status kv_file_read(const char *path, size_t max, char **out,
                            size_t *out_len) KV_MUST_CHECK;

#endif
