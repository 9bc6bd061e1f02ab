/* base64url: decode arbitrary text; whatever decodes re-encodes to text that
 * decodes to the same bytes; arbitrary bytes round-trip through encode/decode. */
#include "fuzz_common.h"
#include "kv_buf.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct kv_buf out = {0};
    if (kv_b64url_decode(text, &out) == KV_OK) {
        FUZZ_ASSERT(out.len <= strlen(text) / 4 * 3 + 2);
        char *again = NULL;
        FUZZ_ASSERT(kv_b64url_encode(out.data, out.len, &again) == KV_OK);
        struct kv_buf back = {0};
        FUZZ_ASSERT(kv_b64url_decode(again, &back) == KV_OK);
        FUZZ_ASSERT(back.len == out.len &&
                    (out.len == 0 || memcmp(back.data, out.data, out.len) == 0));
        kv_buf_free(&back);
        free(again);
    }
    kv_buf_free(&out);
    free(text);

    /* the bytes themselves */
    char *enc = NULL;
    FUZZ_ASSERT(kv_b64url_encode(data, size, &enc) == KV_OK);
    FUZZ_ASSERT(strchr(enc, '=') == NULL && strchr(enc, '+') == NULL && strchr(enc, '/') == NULL);
    struct kv_buf dec = {0};
    FUZZ_ASSERT(kv_b64url_decode(enc, &dec) == KV_OK);
    FUZZ_ASSERT(dec.len == size && (size == 0 || memcmp(dec.data, data, size) == 0));
    kv_buf_free(&dec);
    free(enc);
    return 0;
}
