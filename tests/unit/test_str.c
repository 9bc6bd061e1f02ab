/* Unit tests for common/str.c: joining with cuts, UUID text, UTC time text. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "kv_str.h"

/* What snprintf into @p cap bytes gives for @p full: its first cap - 1 bytes. */
static const char *cut(char *buf, const char *full, size_t cap)
{
    size_t n = strlen(full) < cap - 1 ? strlen(full) : cap - 1;
    memcpy(buf, full, n);
    buf[n] = '\0';
    return buf;
}

static void join(void)
{
    char out[16];
    CHECK(kv_str_join(out, sizeof(out), "https://", "h", "/k/", "v", NULL) == 1);
    CHECK_STR(out, "https://h/k/v");
    CHECK(kv_str_join(out, sizeof(out), NULL) == 1);
    CHECK_STR(out, "");
    CHECK(kv_str_join(out, sizeof(out), "", "", NULL) == 1);
    CHECK_STR(out, "");

    /* cut where snprintf cuts, at every length around the buffer's size */
    for (size_t n = 0; n < 40; n++) {
        char piece[41], full[64], want[64];
        memset(piece, 'x', n);
        piece[n] = '\0';
        snprintf(full, sizeof(full), "ab%sc", piece);
        int fits = strlen(full) < sizeof(out);
        CHECK(kv_str_join(out, sizeof(out), "ab", piece, "c", NULL) == fits);
        CHECK_STR(out, cut(want, full, sizeof(out)));
        /* a piece after the cut adds nothing */
        snprintf(full, sizeof(full), "ab%scd", piece);
        CHECK(kv_str_join(out, sizeof(out), "ab", piece, "c", "d", NULL) ==
              (strlen(full) < sizeof(out)));
        CHECK_STR(out, cut(want, full, sizeof(out)));
    }
    char one[1];
    CHECK(kv_str_join(one, sizeof(one), "a", NULL) == 0);
    CHECK_STR(one, "");

    /* the first piece cut to n bytes, as %.*s */
    char big[64], want[64];
    const char *uri = "/keys/abc?api-version=7.4";
    for (size_t n = 0; n < 30; n++) {
        CHECK(kv_str_join_n(big, sizeof(big), uri, n, "|", NULL) == 1);
        snprintf(want, sizeof(want), "%.*s|", (int)n, uri);
        CHECK_STR(big, want);
    }
    CHECK(kv_str_join_n(out, sizeof(out), uri, 100, NULL) == 0);
    CHECK_STR(out, cut(want, uri, sizeof(out)));
}

static void uuid(void)
{
    unsigned char b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (unsigned char)(i * 17 + 0x0a);
    char out[37], want[37];
    kv_str_uuid(out, b);
    snprintf(want, sizeof(want),
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    CHECK_STR(out, want);
    CHECK(strlen(out) == 36);
    CHECK(kv_str_is_uuid(out));
    CHECK(kv_str_is_uuid("5D3C1A2B-0000-4000-8000-0000000005B1"));
    CHECK(!kv_str_is_uuid(""));
    CHECK(!kv_str_is_uuid("kv-role-assignment"));
    CHECK(!kv_str_is_uuid("5d3c1a2b-0000-4000-8000-0000000005b"));   /* one digit short */
    CHECK(!kv_str_is_uuid("5d3c1a2b-0000-4000-8000-0000000005b10")); /* one too many */
    CHECK(!kv_str_is_uuid("5d3c1a2b00000-4000-8000-0000000005b1"));  /* a dash missing */
    CHECK(!kv_str_is_uuid("5d3c1a2g-0000-4000-8000-0000000005b1"));  /* not hex */
    CHECK(!kv_str_is_uuid("{5d3c1a2b-0000-4000-8000-0000000005b1}"));

    /* small letters in place; region names as Resource Manager writes them */
    char text[] = "MiXeD-Case/ID";
    kv_str_lower(text);
    CHECK_STR(text, "mixed-case/id");
    char region[16];
    kv_str_region("West US 2", region, sizeof(region));
    CHECK_STR(region, "westus2");
    kv_str_region("North Europe and more", region, 8);
    CHECK_STR(region, "northeu");
    kv_str_region("  ", region, sizeof(region));
    CHECK_STR(region, "");
}

static void utc(void)
{
    /* what strftime writes, at the epoch, at leap days and at the ends of years */
    const long long times[] = {0,          951782400,  951868799, 1709164800,
                               1796285940, 4102444799, 253402300799LL};
    for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
        char out[21], want[32];
        time_t t = (time_t)times[i];
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(want, sizeof(want), "%Y-%m-%dT%H:%M:%SZ", &tm);
        kv_str_utc(out, times[i]);
        CHECK_STR(out, want);
    }
    char out[21];
    kv_str_utc(out, 253402300800LL); /* year 10000 */
    CHECK_STR(out, "0000-01-01T00:00:00Z");
    kv_str_utc(out, -62167219201LL); /* before year 0 */
    CHECK_STR(out, "0000-01-01T00:00:00Z");
}

int main(void)
{
    join();
    uuid();
    utc();
    CHECK_DONE();
}
