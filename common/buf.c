#include "kv_buf.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

void kv_buf_free(struct kv_buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

void kv_buf_wipe(struct kv_buf *b)
{
    if (b == NULL)
        return;
    if (b->data != NULL)
        sodium_memzero(b->data, b->len);
    kv_buf_free(b);
}

enum kv_status kv_buf_alloc(size_t len, struct kv_buf *out)
{
    unsigned char *p = malloc(len > 0 ? len : 1);
    if (p == NULL)
        return KV_ERR_NOMEM;
    out->data = p;
    out->len = len;
    return KV_OK;
}

enum kv_status kv_buf_dup(const void *data, size_t len, struct kv_buf *out)
{
    struct kv_buf b;
    if (kv_buf_alloc(len, &b) != KV_OK)
        return KV_ERR_NOMEM;
    if (len > 0)
        memcpy(b.data, data, len);
    *out = b;
    return KV_OK;
}

enum kv_status kv_b64url_decode(const char *text, struct kv_buf *out)
{
    size_t tlen = strlen(text);
    /* Strip trailing padding: the unpadded variant rejects '='. */
    while (tlen > 0 && text[tlen - 1] == '=')
        tlen--;
    if (tlen % 4 == 1)
        return KV_ERR_BAD_BASE64;
    size_t cap = tlen / 4 * 3 + 3;
    struct kv_buf b;
    if (kv_buf_alloc(cap, &b) != KV_OK)
        return KV_ERR_NOMEM;
    size_t bin_len = 0;
    const char *end = NULL;
    if (sodium_base642bin(b.data, cap, text, tlen, NULL, &bin_len, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != text + tlen) {
        /* the part before the bad character is decoded already: it may be a
         * private key's (a JWK's d), so wipe the whole buffer */
        kv_buf_wipe(&b);
        return KV_ERR_BAD_BASE64;
    }
    b.len = bin_len;
    *out = b;
    return KV_OK;
}

enum kv_status kv_b64url_encode(const void *data, size_t len, char **out)
{
    size_t cap = sodium_base64_encoded_len(len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = malloc(cap);
    if (s == NULL)
        return KV_ERR_NOMEM;
    sodium_bin2base64(s, cap, data, len, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    *out = s;
    return KV_OK;
}
