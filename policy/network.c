/* A vault's firewall: public network access and networkAcls (pol_network_allowed). */
#include "kv_ip.h"
#include "pol.h"

/* Whether @p who is an identity marked as a trusted service that @p vault's bypass lets in. */
static int bypassed(const struct pol_ctx *ctx, const struct pol_claims *who,
                    const struct ks_vault *vault)
{
    if (vault->net_bypass_none)
        return 0;
    const struct pol_identity *id = pol_find_identity(ctx, NULL, who->oid, NULL);
    return id != NULL && id->trusted_service;
}

enum kv_status pol_network_allowed(const struct pol_ctx *ctx, const struct pol_claims *who,
                                   const struct ks_vault *vault, const struct ks_net_rules *rules,
                                   const char *client)
{
    if (!vault->public_network_disabled && !vault->net_deny)
        return KV_OK;
    /* an address the rules let in passes without looking the caller up; the bypass, which
     * Azure decides first, lets in the same requests and more */
    for (size_t i = 0; !vault->public_network_disabled && rules != NULL && i < rules->ip_count;
         i++) {
        struct kv_cidr range;
        if (kv_cidr_parse(rules->ip[i], &range) && kv_cidr_contains(&range, client))
            return KV_OK;
    }
    if (bypassed(ctx, who, vault))
        return KV_OK;
    return vault->public_network_disabled ? KV_ERR_PUBLIC_DISABLED : KV_ERR_FIREWALL_DENIED;
}
