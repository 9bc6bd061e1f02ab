/**
 * @file kv_ip.h
 * @brief IP addresses and CIDR ranges, as a vault's firewall rules name them.
 *
 * A rule is an IPv4 or IPv6 address with an optional prefix length
 * ("203.0.113.7", "203.0.113.0/24", "2001:db8::/32"). Its canonical text is the
 * address and the prefix ("203.0.113.7/32"), which is what Resource Manager
 * answers for an address given alone. Bits below the prefix are kept as given
 * ("203.0.113.7/24" stays so) and ignored when matching. An IPv4 address written as an
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, as a dual-stack socket reports
 * an IPv4 peer) is that IPv4 address.
 */
#ifndef KV_IP_H
#define KV_IP_H

#include <stddef.h>

#define KV_CIDR_TEXT_MAX 50 /**< "ffff:…:ffff/128" and a NUL fit */

struct kv_cidr {
    int v6;                 /**< 1 for IPv6, 0 for IPv4 */
    unsigned char addr[16]; /**< network address (IPv4 in the first 4 bytes), host bits 0 */
    unsigned prefix;        /**< 0..32 or 0..128 */
};

/**
 * @brief Parse a rule. Anything that is not an address, a prefix beyond the
 * family's length (32 or 128), or text around them is refused.
 * @return 1 when @p text is a rule, 0 otherwise (@p out is then zeroed).
 */
int kv_cidr_parse(const char *text, struct kv_cidr *out);

/** @brief Write the canonical text of @p c ("a.b.c.d/n" or "v6/n") into @p out. */
void kv_cidr_format(const struct kv_cidr *c, char out[KV_CIDR_TEXT_MAX]);

/**
 * @brief Whether the address @p addr (text, as a socket reports its peer)
 * lies in @p c. An address that does not parse lies in no range.
 */
int kv_cidr_contains(const struct kv_cidr *c, const char *addr);

/**
 * @brief The address @p addr as Key Vault reports a client's: an IPv4-mapped IPv6
 * address (`::ffff:203.0.113.7`, as a dual-stack socket reports an IPv4 peer) as its
 * IPv4 address, a pointer into @p addr; any other text as it is.
 */
const char *kv_ip_unmapped(const char *addr);

#endif
