/* base64url (RFC 4648 section 5): unpadded output, padded or unpadded input. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kv_buf.h"

static void round_trip(const char *plain, const char *want)
{
    char *enc = NULL;
    CHECK_ST(kv_b64url_encode(plain, strlen(plain), &enc), KV_OK);
    CHECK_STR(enc, want);
    struct kv_buf dec = {0};
    CHECK_ST(kv_b64url_decode(enc ? enc : "", &dec), KV_OK);
    CHECK(dec.len == strlen(plain) && (dec.len == 0 || memcmp(dec.data, plain, dec.len) == 0));
    kv_buf_free(&dec);
    free(enc);
}

static void decodes_to(const char *text, const void *want, size_t want_len)
{
    struct kv_buf dec = {0};
    CHECK_ST(kv_b64url_decode(text, &dec), KV_OK);
    CHECK(dec.len == want_len && (want_len == 0 || memcmp(dec.data, want, want_len) == 0));
    kv_buf_free(&dec);
}

static void rejects(const char *text)
{
    struct kv_buf dec = {0};
    enum kv_status st = kv_b64url_decode(text, &dec);
    if (st != KV_ERR_BAD_BASE64) {
        fprintf(stderr, "decode(\"%s\") = %s, want KV_ERR_BAD_BASE64\n", text, kv_status_name(st));
        check_failures++;
    }
    CHECK(dec.data == NULL && dec.len == 0);
    kv_buf_free(&dec);
}

int main(void)
{
    /* RFC 4648 test vectors, unpadded */
    round_trip("", "");
    round_trip("f", "Zg");
    round_trip("fo", "Zm8");
    round_trip("foo", "Zm9v");
    round_trip("foob", "Zm9vYg");
    round_trip("fooba", "Zm9vYmE");
    round_trip("foobar", "Zm9vYmFy");

    /* the URL-safe alphabet: 0xfb 0xff -> "-_8" */
    const unsigned char odd[] = {0xfb, 0xff};
    char *enc = NULL;
    CHECK_ST(kv_b64url_encode(odd, sizeof(odd), &enc), KV_OK);
    CHECK_STR(enc, "-_8");
    free(enc);
    decodes_to("-_8", odd, sizeof(odd));

    /* padded input is accepted */
    decodes_to("Zg==", "f", 1);
    decodes_to("Zm8=", "fo", 2);

    /* invalid input is refused */
    rejects("Zg=a");
    rejects("+/8");    /* standard alphabet, not URL-safe */
    rejects("Z");      /* impossible length */
    rejects("Zm9v!");  /* bad character */
    rejects("Zm 9v");  /* space */
    CHECK_DONE();
}
