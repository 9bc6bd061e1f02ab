/* The JSON text writer: escaping, numbers, base64url, nesting, and failure. */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kv_buf.h"
#include "kv_json.h"

/* Take the text and compare it; NULL @p want means the writer must have failed. */
static void text_is(struct kv_json *j, const char *want)
{
    size_t len = 0;
    char *text = kv_json_take(j, &len);
    if (want == NULL) {
        CHECK(text == NULL);
    } else {
        CHECK_STR(text, want);
        CHECK(text == NULL || len == strlen(text));
    }
    free(text);
    /* the writer is empty and usable again */
    CHECK(j->buf == NULL && j->len == 0 && j->depth == 0 && !j->failed);
}

static void strings(void)
{
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_str(&j, "plain", "abc");
    kv_json_str(&j, "quote\"key", "a\"b\\c/d");
    kv_json_str(&j, "ctl", "\x01\n\t\x1f");
    kv_json_str(&j, "utf8", "caf\xc3\xa9 \xe2\x82\xac");
    kv_json_str(&j, "empty", "");
    kv_json_str(&j, "none", NULL);
    kv_json_close(&j, '}');
    text_is(&j,
            "{\"plain\":\"abc\",\"quote\\\"key\":\"a\\\"b\\\\c/d\",\"ctl\":\"\\u0001\\u000a"
            "\\u0009\\u001f\",\"utf8\":\"caf\xc3\xa9 \xe2\x82\xac\",\"empty\":\"\",\"none\":null}");

    /* what cJSON reads back is what was written, for every byte 1..255 */
    char all[256];
    for (int i = 1; i < 256; i++)
        all[i - 1] = (char)i;
    all[255] = '\0';
    kv_json_init(&j);
    kv_json_open(&j, NULL, '[');
    kv_json_str(&j, NULL, all);
    kv_json_close(&j, ']');
    char *text = kv_json_take(&j, NULL);
    cJSON *doc = text ? cJSON_Parse(text) : NULL;
    CHECK(cJSON_IsArray(doc) && cJSON_GetArraySize(doc) == 1);
    const cJSON *s = cJSON_GetArrayItem(doc, 0);
    CHECK(cJSON_IsString(s) && strcmp(s->valuestring, all) == 0);
    cJSON_Delete(doc);
    free(text);

    /* Strings go eight bytes at a time, a shorter last step padded: every
     * byte 1..255 at every offset of every length up to three steps gives the
     * text a byte-by-byte escaper gives. */
    for (int c = 1; c < 256; c++) {
        for (size_t len = 1; len <= 24; len++) {
            for (size_t at = 0; at < len; at++) {
                char in[40], want[160];
                memset(in, 'a', sizeof(in));
                in[at] = (char)c;
                in[len] = '\0';
                size_t w = 0;
                want[w++] = '"';
                for (size_t i = 0; in[i] != '\0'; i++) {
                    unsigned char b = (unsigned char)in[i];
                    if (b == '"' || b == '\\') {
                        want[w++] = '\\';
                        want[w++] = (char)b;
                    } else if (b < 0x20) {
                        w += (size_t)sprintf(want + w, "\\u%04x", b);
                    } else {
                        want[w++] = (char)b;
                    }
                }
                want[w++] = '"';
                want[w] = '\0';
                kv_json_init(&j);
                kv_json_str(&j, NULL, in);
                text_is(&j, want);
            }
        }
    }
}

static void numbers_and_nesting(void)
{
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_int(&j, "zero", 0);
    kv_json_int(&j, "neg", -42);
    kv_json_int(&j, "max", INT64_MAX);
    kv_json_int(&j, "min", INT64_MIN);
    kv_json_bool(&j, "t", 1);
    kv_json_bool(&j, "f", 0);
    kv_json_open(&j, "arr", '[');
    kv_json_int(&j, NULL, 1);
    kv_json_open(&j, NULL, '{');
    kv_json_close(&j, '}');
    kv_json_open(&j, NULL, '[');
    kv_json_close(&j, ']');
    kv_json_str(&j, NULL, "x");
    kv_json_close(&j, ']');
    kv_json_open(&j, "obj", '{');
    kv_json_str(&j, "k", "v");
    kv_json_close(&j, '}');
    kv_json_close(&j, '}');
    text_is(&j, "{\"zero\":0,\"neg\":-42,\"max\":9223372036854775807,"
                "\"min\":-9223372036854775808,\"t\":true,\"f\":false,"
                "\"arr\":[1,{},[],\"x\"],\"obj\":{\"k\":\"v\"}}");
}

/* Both encoders give kv_b64url_encode's text, for every length up to 300 and
 * for long inputs (the buffer grows while writing). */
static void base64url(void)
{
    static unsigned char bytes[100001];
    randombytes_buf(bytes, sizeof(bytes));
    size_t lens[300 + 4] = {5000, 49152, 49153, 100001};
    for (size_t i = 4; i < sizeof(lens) / sizeof(lens[0]); i++)
        lens[i] = i - 4;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        char *want = NULL;
        CHECK_ST(kv_b64url_encode(bytes, lens[i], &want), KV_OK);
        size_t wl = want ? strlen(want) : 0;
        char *expect = malloc(2 * wl + 16);
        snprintf(expect, 2 * wl + 16, "[\"%s\",\"%s\"]", want ? want : "", want ? want : "");
        struct kv_json j;
        kv_json_init(&j);
        kv_json_open(&j, NULL, '[');
        kv_json_b64url(&j, NULL, bytes, lens[i]);
        kv_json_b64url_secret(&j, NULL, bytes, lens[i]);
        kv_json_close(&j, ']');
        text_is(&j, expect);
        free(expect);
        free(want);
    }
}

/* Unbalanced or too deep text, or nothing at all, is no JSON text: NULL. */
static void failures(void)
{
    struct kv_json j;
    kv_json_init(&j);
    text_is(&j, NULL); /* nothing written */

    kv_json_open(&j, NULL, '{');
    text_is(&j, NULL); /* not closed */

    kv_json_close(&j, '}');
    kv_json_str(&j, "after", "a failure"); /* ignored once failed */
    text_is(&j, NULL);

    for (int i = 0; i <= KV_JSON_DEPTH; i++)
        kv_json_open(&j, NULL, '[');
    CHECK(j.failed);
    for (int i = 0; i <= KV_JSON_DEPTH; i++)
        kv_json_close(&j, ']');
    text_is(&j, NULL);

    /* the deepest allowed nesting is fine */
    for (int i = 0; i < KV_JSON_DEPTH; i++)
        kv_json_open(&j, NULL, '[');
    for (int i = 0; i < KV_JSON_DEPTH; i++)
        kv_json_close(&j, ']');
    text_is(&j, "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]");

    /* freeing a half-written text is allowed */
    kv_json_open(&j, NULL, '{');
    kv_json_str(&j, "k", "v");
    kv_json_free(&j);
    CHECK(j.buf == NULL && j.len == 0);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    strings();
    numbers_and_nesting();
    base64url();
    failures();
    CHECK_DONE();
}
