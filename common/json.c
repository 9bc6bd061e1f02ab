/* The JSON text writer (kv_json.h). */
#include "kv_json.h"

#include <sodium.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_CAP 1024

void kv_json_init(struct kv_json *j)
{
    memset(j, 0, sizeof(*j));
}

void kv_json_free(struct kv_json *j)
{
    if (j->buf != NULL)
        sodium_memzero(j->buf, j->cap);
    free(j->buf);
    kv_json_init(j);
}

static void fail(struct kv_json *j)
{
    kv_json_free(j);
    j->failed = 1;
}

/* Make room for @p n more bytes and the final NUL in a larger block. The old
 * block is zeroed before it is freed: realloc would leave a copy of what was
 * written so far. */
static int grow(struct kv_json *j, size_t n)
{
    if (j->failed)
        return 0;
    size_t cap = j->cap ? j->cap : FIRST_CAP;
    while (cap <= j->len + n) {
        if (cap > SIZE_MAX / 2) {
            fail(j);
            return 0;
        }
        cap *= 2;
    }
    char *b = malloc(cap);
    if (b == NULL) {
        fail(j);
        return 0;
    }
    if (j->buf != NULL) {
        memcpy(b, j->buf, j->len);
        sodium_memzero(j->buf, j->cap);
        free(j->buf);
    }
    j->buf = b;
    j->cap = cap;
    return 1;
}

/* Room for @p n more bytes and the final NUL; the common case inline. A failed
 * writer has cap 0, so it always takes grow(), which refuses. */
static inline int reserve(struct kv_json *j, size_t n)
{
    return j->len + n < j->cap ? 1 : grow(j, n);
}

static void put(struct kv_json *j, const char *s, size_t n)
{
    if (!reserve(j, n))
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

/* Whether any byte of @p w needs an escape: below 0x20, '"' or '\\'. A byte
 * below 0x20 sets its top bit in (w - 0x20 ones) & ~w, a byte equal to b sets
 * it in (x - ones) & ~x with x = w ^ b ones, and a borrow only starts at such
 * a byte, so the answer is exact. */
static int word_needs_escape(uint64_t w)
{
    const uint64_t ones = 0x0101010101010101ULL, tops = 0x8080808080808080ULL;
    uint64_t q = w ^ (0x22 * ones), b = w ^ (0x5C * ones);
    return ((((w - 0x20 * ones) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b)) & tops) != 0;
}

/* A quoted string: quotes, backslashes and control characters escaped, the
 * rest (UTF-8 included) as it is. Room for the worst case (every byte as
 * \u00XX, and a word's slack) is made once. The string goes eight bytes at a
 * time: a last step shorter than eight is padded with 'a' (which needs no
 * escape) for the test, and a step holding a byte that needs an escape is
 * written byte by byte. */
static void put_string(struct kv_json *j, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    const uint64_t pad = 0x6161616161616161ULL;
    size_t n = strlen(s);
    if (n > (SIZE_MAX - 10) / 6) {
        fail(j);
        return;
    }
    if (!reserve(j, 6 * n + 10))
        return;
    char *d = j->buf + j->len;
    *d++ = '"';
    size_t i = 0;
    while (i < n) {
        size_t step = n - i < 8 ? n - i : 8;
        uint64_t w = pad;
        if (step == 8)
            memcpy(&w, s + i, 8); /* inlined as one load */
        else
            memcpy(&w, s + i, step);
        if (!word_needs_escape(w)) {
            memcpy(d, &w, 8); /* the slack past the step is overwritten or unused */
            d += step;
            i += step;
            continue;
        }
        for (size_t end = i + step; i < end; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c >= 0x20 && c != '"' && c != '\\') {
                *d++ = (char)c;
            } else if (c == '"' || c == '\\') {
                *d++ = '\\';
                *d++ = (char)c;
            } else {
                memcpy(d, "\\u00", 4);
                d[4] = hex[c >> 4];
                d[5] = hex[c & 15];
                d += 6;
            }
        }
    }
    *d++ = '"';
    j->len = (size_t)(d - j->buf);
}

/* The comma and the key that come before a value at the current level. */
static void member(struct kv_json *j, const char *key)
{
    if (j->failed)
        return;
    if (j->depth > 0) {
        if (j->had_member[j->depth - 1])
            put(j, ",", 1);
        j->had_member[j->depth - 1] = 1;
    }
    if (key != NULL) {
        put_string(j, key);
        put(j, ":", 1);
    }
}

void kv_json_open(struct kv_json *j, const char *key, char bracket)
{
    member(j, key);
    if (j->failed)
        return;
    if (j->depth == KV_JSON_DEPTH) {
        fail(j);
        return;
    }
    j->had_member[j->depth++] = 0;
    put(j, &bracket, 1);
}

void kv_json_close(struct kv_json *j, char bracket)
{
    if (j->failed)
        return;
    if (j->depth == 0) {
        fail(j);
        return;
    }
    j->depth--;
    put(j, &bracket, 1);
}

void kv_json_str(struct kv_json *j, const char *key, const char *s)
{
    member(j, key);
    if (s == NULL)
        put(j, "null", 4);
    else
        put_string(j, s);
}

void kv_json_int(struct kv_json *j, const char *key, int64_t v)
{
    char text[24], *p = text + sizeof(text);
    /* the magnitude as unsigned: -INT64_MIN does not fit an int64_t */
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    member(j, key);
    put(j, p, (size_t)(text + sizeof(text) - p));
}

void kv_json_bool(struct kv_json *j, const char *key, int v)
{
    member(j, key);
    if (v)
        put(j, "true", 4);
    else
        put(j, "false", 5);
}

/* Unpadded base64url of public bytes, by table: fast, and for public bytes only
 * (libsodium's encoder, used for secrets, avoids lookups indexed by the data). */
static void put_b64url(struct kv_json *j, const unsigned char *in, size_t len)
{
    static const char tab[64] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    if (len > (SIZE_MAX - 8) / 4 * 3) {
        fail(j);
        return;
    }
    if (!reserve(j, (len + 2) / 3 * 4 + 2))
        return;
    char *d = j->buf + j->len;
    *d++ = '"';
    size_t i = 0;
    for (; len - i >= 3; i += 3, d += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        d[0] = tab[v >> 18];
        d[1] = tab[(v >> 12) & 63];
        d[2] = tab[(v >> 6) & 63];
        d[3] = tab[v & 63];
    }
    if (len - i > 0) { /* one or two bytes left: two or three characters */
        uint32_t v = (uint32_t)in[i] << 16 | (len - i == 2 ? (uint32_t)in[i + 1] << 8 : 0);
        *d++ = tab[v >> 18];
        *d++ = tab[(v >> 12) & 63];
        if (len - i == 2)
            *d++ = tab[(v >> 6) & 63];
    }
    *d++ = '"';
    j->len = (size_t)(d - j->buf);
}

void kv_json_b64url(struct kv_json *j, const char *key, const void *data, size_t len)
{
    member(j, key);
    put_b64url(j, data, len);
}

void kv_json_b64url_secret(struct kv_json *j, const char *key, const void *data, size_t len)
{
    member(j, key);
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    if (!reserve(j, cap + 2))
        return;
    j->buf[j->len++] = '"';
    sodium_bin2base64(j->buf + j->len, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    j->len += cap - 1; /* cap counts the NUL */
    j->buf[j->len++] = '"';
}

char *kv_json_take(struct kv_json *j, size_t *len)
{
    /* nothing written is not a JSON text either */
    if (j->failed || j->depth != 0 || j->len == 0 || !reserve(j, 0)) {
        kv_json_free(j);
        return NULL;
    }
    j->buf[j->len] = '\0';
    char *text = j->buf;
    if (len != NULL)
        *len = j->len;
    kv_json_init(j);
    return text;
}
