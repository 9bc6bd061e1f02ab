/**
 * @file kv_json.h
 * @brief A JSON text writer for answers and records built on every request.
 *
 * cJSON builds a tree (an allocation per member) and then prints it; the
 * answers kvmock gives most often (key bundles, key operation results, list
 * pages, audit records) are written straight into one growing buffer
 * instead. Members are written in the order of the calls; commas, quoting
 * and string escaping are the writer's. After an allocation failure every
 * further call does nothing and kv_json_take() returns NULL, so a caller
 * checks once, at the end.
 *
 *     struct kv_json j;
 *     kv_json_init(&j);
 *     kv_json_open(&j, NULL, '{');
 *     kv_json_str(&j, "kid", kid);
 *     kv_json_open(&j, "attributes", '{');
 *     kv_json_bool(&j, "enabled", 1);
 *     kv_json_close(&j, '}');
 *     kv_json_close(&j, '}');
 *     size_t len;
 *     char *text = kv_json_take(&j, &len);   // NULL when out of memory
 */
#ifndef KV_JSON_H
#define KV_JSON_H

#include <stddef.h>
#include <stdint.h>

/** Objects and arrays nested deeper than this make the text invalid (failed). */
#define KV_JSON_DEPTH 16

struct kv_json {
    char *buf;
    size_t len, cap;
    int failed; /**< out of memory or nesting too deep: the text is lost */
    unsigned depth;
    unsigned char had_member[KV_JSON_DEPTH]; /**< per level: a comma goes before the next */
};

/** @brief Start an empty text. */
void kv_json_init(struct kv_json *j);

/** @brief Zero and free the text (answers may hold unwrapped or decrypted bytes). */
void kv_json_free(struct kv_json *j);

/**
 * @brief Open an object (@p bracket '{') or array ('['), as member @p key of
 * the enclosing object, or as an array element / the top value when @p key is NULL.
 */
void kv_json_open(struct kv_json *j, const char *key, char bracket);

/** @brief Close the innermost object ('}') or array (']'). */
void kv_json_close(struct kv_json *j, char bracket);

/** @brief A string member (escaped as JSON requires); NULL @p s writes null. */
void kv_json_str(struct kv_json *j, const char *key, const char *s);

/** @brief An integer member, printed exactly. */
void kv_json_int(struct kv_json *j, const char *key, int64_t v);

/** @brief A boolean member. */
void kv_json_bool(struct kv_json *j, const char *key, int v);

/** @brief Public bytes (a modulus, a ciphertext) as an unpadded base64url string member. */
void kv_json_b64url(struct kv_json *j, const char *key, const void *data, size_t len);

/**
 * @brief Secret bytes (an unwrapped key, a plaintext) as an unpadded base64url
 * string member, encoded in constant time (libsodium): no table lookup
 * indexed by a secret.
 */
void kv_json_b64url_secret(struct kv_json *j, const char *key, const void *data, size_t len);

/**
 * @brief The finished text, NUL-terminated; the caller owns it (free(), after
 * zeroing when it held secrets). The writer is empty afterwards.
 * @param[out] len its length, may be NULL.
 * @return the text, or NULL when any call failed (then nothing is owned).
 */
char *kv_json_take(struct kv_json *j, size_t *len);

#endif
