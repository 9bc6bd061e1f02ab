/* IP addresses and CIDR ranges (kv_ip.h), over inet_pton/inet_ntop. */
#include "kv_ip.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const unsigned char v4_mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* Parse an address alone; an IPv4-mapped IPv6 address becomes IPv4. */
static int parse_addr(const char *text, struct kv_cidr *out)
{
    memset(out, 0, sizeof(*out));
    if (inet_pton(AF_INET, text, out->addr) == 1)
        return 1;
    unsigned char a6[16];
    if (inet_pton(AF_INET6, text, a6) != 1)
        return 0;
    if (memcmp(a6, v4_mapped, sizeof(v4_mapped)) == 0) {
        memcpy(out->addr, a6 + 12, 4);
        return 1;
    }
    memcpy(out->addr, a6, 16);
    out->v6 = 1;
    return 1;
}

/* Whether the first @p prefix bits of @p a and @p b agree. */
static int same_bits(const unsigned char *a, const unsigned char *b, unsigned prefix)
{
    unsigned whole = prefix / 8, rest = prefix % 8;
    if (memcmp(a, b, whole) != 0)
        return 0;
    if (rest == 0)
        return 1;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[whole] & mask) == (b[whole] & mask);
}

int kv_cidr_parse(const char *text, struct kv_cidr *out)
{
    char addr[INET6_ADDRSTRLEN + 1];
    const char *slash = strchr(text, '/');
    size_t n = slash ? (size_t)(slash - text) : strlen(text);
    struct kv_cidr c;
    if (n == 0 || n >= sizeof(addr))
        goto bad;
    memcpy(addr, text, n);
    addr[n] = '\0';
    if (!parse_addr(addr, &c))
        goto bad;
    unsigned max = c.v6 ? 128 : 32;
    c.prefix = max;
    if (slash != NULL) {
        const char *p = slash + 1;
        /* one to three digits, no sign, no leading zero but "0" itself */
        size_t digits = strspn(p, "0123456789");
        if (digits == 0 || digits > 3 || p[digits] != '\0' || (p[0] == '0' && digits > 1))
            goto bad;
        c.prefix = (unsigned)atoi(p);
        if (c.prefix > max)
            goto bad;
    }
    *out = c;
    return 1;
bad:
    memset(out, 0, sizeof(*out));
    return 0;
}

void kv_cidr_format(const struct kv_cidr *c, char out[KV_CIDR_TEXT_MAX])
{
    char addr[INET6_ADDRSTRLEN];
    if (inet_ntop(c->v6 ? AF_INET6 : AF_INET, c->addr, addr, sizeof(addr)) == NULL)
        addr[0] = '\0';
    snprintf(out, KV_CIDR_TEXT_MAX, "%s/%u", addr, c->prefix);
}

int kv_cidr_contains(const struct kv_cidr *c, const char *addr)
{
    struct kv_cidr a;
    if (addr == NULL || !parse_addr(addr, &a) || a.v6 != c->v6)
        return 0;
    return same_bits(a.addr, c->addr, c->prefix);
}

const char *kv_ip_unmapped(const char *addr)
{
    static const char prefix[] = "::ffff:";
    unsigned char a4[4];
    if (addr != NULL && strncasecmp(addr, prefix, sizeof(prefix) - 1) == 0 &&
        inet_pton(AF_INET, addr + sizeof(prefix) - 1, a4) == 1)
        return addr + sizeof(prefix) - 1;
    return addr;
}
