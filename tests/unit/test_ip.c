/* Unit tests for common/ip.c: CIDR rules parsed, written back and matched. */
#include <string.h>

#include "check.h"
#include "kv_ip.h"

/* @p text parses, and its canonical text is @p canon. */
static void canonical(const char *text, const char *canon)
{
    struct kv_cidr c;
    char out[KV_CIDR_TEXT_MAX];
    CHECK(kv_cidr_parse(text, &c) == 1);
    kv_cidr_format(&c, out);
    CHECK_STR(out, canon);
    /* the canonical text is a fixed point */
    CHECK(kv_cidr_parse(out, &c) == 1);
    kv_cidr_format(&c, out);
    CHECK_STR(out, canon);
}

static void parse(void)
{
    canonical("203.0.113.7", "203.0.113.7/32");
    canonical("203.0.113.7/32", "203.0.113.7/32");
    canonical("203.0.113.0/24", "203.0.113.0/24");
    canonical("203.0.113.7/24", "203.0.113.7/24"); /* bits below the prefix kept */
    canonical("0.0.0.0/0", "0.0.0.0/0");
    canonical("2001:DB8::/32", "2001:db8::/32");
    canonical("::1", "::1/128");
    canonical("::ffff:198.51.100.1", "198.51.100.1/32"); /* IPv4-mapped: IPv4 */
    canonical("::ffff:198.51.100.0/24", "198.51.100.0/24");

    const char *bad[] = {"",
                         "/24",
                         "203.0.113",
                         "203.0.113.256",
                         "203.0.113.7/33",
                         "203.0.113.7/",
                         "203.0.113.7/-1",
                         "203.0.113.7/+8",
                         "203.0.113.7/08",
                         "203.0.113.7/1000",
                         "2001:db8::/129",
                         " 203.0.113.7",
                         "203.0.113.7 ",
                         "203.0.113.7/24/8",
                         "host.example",
                         "2001:db8:::1",
                         "203.0.113.7/2a"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct kv_cidr c;
        memset(&c, 0x5a, sizeof(c));
        CHECK(kv_cidr_parse(bad[i], &c) == 0);
        CHECK(c.prefix == 0 && c.v6 == 0); /* zeroed */
    }
    char long_text[200];
    memset(long_text, '1', sizeof(long_text) - 1);
    long_text[sizeof(long_text) - 1] = '\0';
    struct kv_cidr c;
    CHECK(kv_cidr_parse(long_text, &c) == 0);
}

static int contains(const char *rule, const char *addr)
{
    struct kv_cidr c;
    CHECK(kv_cidr_parse(rule, &c) == 1);
    return kv_cidr_contains(&c, addr);
}

static void match(void)
{
    CHECK(contains("203.0.113.7", "203.0.113.7"));
    CHECK(!contains("203.0.113.7", "203.0.113.8"));
    CHECK(contains("203.0.113.0/24", "203.0.113.255"));
    CHECK(!contains("203.0.113.0/24", "203.0.114.0"));
    CHECK(contains("203.0.113.7/24", "203.0.113.1")); /* bits below the prefix ignored */
    CHECK(contains("10.0.0.0/9", "10.127.255.255"));
    CHECK(!contains("10.0.0.0/9", "10.128.0.0"));
    CHECK(contains("0.0.0.0/0", "198.51.100.1"));
    CHECK(!contains("0.0.0.0/0", "::1"));               /* another family */
    CHECK(contains("127.0.0.0/8", "::ffff:127.0.0.1")); /* a dual-stack socket's IPv4 peer */
    CHECK(contains("::1", "::1"));
    CHECK(!contains("::1", "127.0.0.1"));
    CHECK(contains("2001:db8::/32", "2001:db8:ffff::1"));
    CHECK(!contains("2001:db8::/33", "2001:db8:8000::1"));
    CHECK(contains("::/0", "2001:db8::1"));
    CHECK(!contains("203.0.113.0/24", ""));
    CHECK(!contains("203.0.113.0/24", "203.0.113.0/24")); /* an address, not a range */
    CHECK(!contains("203.0.113.0/24", NULL));
}

static void unmapped(void)
{
    CHECK_STR(kv_ip_unmapped("::ffff:127.0.0.1"), "127.0.0.1");
    CHECK_STR(kv_ip_unmapped("::FFFF:203.0.113.7"), "203.0.113.7");
    CHECK_STR(kv_ip_unmapped("127.0.0.1"), "127.0.0.1");
    CHECK_STR(kv_ip_unmapped("::1"), "::1");
    CHECK_STR(kv_ip_unmapped("::ffff:7f00:1"), "::ffff:7f00:1");
    CHECK_STR(kv_ip_unmapped("::ffff:"), "::ffff:");
    CHECK(kv_ip_unmapped(NULL) == NULL);
}

int main(void)
{
    parse();
    match();
    unmapped();
    CHECK_DONE();
}
