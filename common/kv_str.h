/**
 * @file kv_str.h
 * @brief Bounded text joining without printf, for texts made on every request.
 *
 * Ids, URLs and the request id are built on every request; `snprintf` with
 * `%s` runs glibc's whole format machine (about a thousand instructions a
 * call). These helpers copy the pieces instead. Like `snprintf`, they always
 * end the text with a NUL and cut what does not fit.
 */
#ifndef KV_STR_H
#define KV_STR_H

#include <stddef.h>
#include <stdint.h>

/**
 * @brief Join strings into @p out (@p cap > 0 bytes).
 *
 * The arguments after @p cap are `const char *` pieces, ended by NULL.
 * @return 1 if the whole text fitted, 0 if it was cut.
 */
int kv_str_join(char *out, size_t cap, ...);

/** @brief The same, with the first piece cut to at most @p n1 bytes. */
int kv_str_join_n(char *out, size_t cap, const char *p1, size_t n1, ...);

/**
 * @brief Write @p bytes 16 bytes as a UUID in its 36-character form
 * (lowercase hex, dashes after 4, 6, 8 and 10 bytes) and a NUL into @p out.
 */
void kv_str_uuid(char out[37], const unsigned char bytes[16]);

/** @brief A new random (version 4, RFC 4122 variant) UUID, lowercase, and a NUL into @p out. */
void kv_str_uuid_random(char out[37]);

/** @brief Whether @p s is a UUID in its 36-character form (hex digits of either case). */
int kv_str_is_uuid(const char *s);

/** @brief Turn the ASCII capitals of @p s into small letters, in place. */
void kv_str_lower(char *s);

/**
 * @brief A region's name as Resource Manager writes it, into @p out (at most @p cap bytes
 * with the NUL): its letters and digits, in small letters ("West Europe" is "westeurope").
 */
void kv_str_region(const char *location, char *out, size_t cap);

/**
 * @brief Write UTC time @p t as `YYYY-MM-DDTHH:MM:SSZ` and a NUL into @p out
 * (years 0 to 9999; others are written as 0000-01-01T00:00:00Z).
 */
void kv_str_utc(char out[21], int64_t t);

#endif
