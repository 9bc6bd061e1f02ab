/* A vault's firewall: public network access and networkAcls (pol_network_allowed). */
#include "kv_ip.h"
#include "pol.h"

enum kv_status pol_network_allowed(const struct pol_ctx *ctx, const struct pol_claims *who,
                                   const struct ks_vault *vault, const struct ks_net_rules *rules,
                                   const char *client)
{
    if (!vault->public_network_disabled && !vault->net_deny)
        return KV_OK;
    /* the bypass is decided first: a trusted service passes both */
    const struct pol_identity *id = pol_find_identity(ctx, NULL, who->oid, NULL);
    if (!vault->net_bypass_none && id != NULL && id->trusted_service)
        return KV_OK;
    if (vault->public_network_disabled)
        return KV_ERR_PUBLIC_DISABLED;
    for (size_t i = 0; rules != NULL && i < rules->ip_count; i++) {
        struct kv_cidr range;
        if (kv_cidr_parse(rules->ip[i], &range) && kv_cidr_contains(&range, client))
            return KV_OK;
    }
    return KV_ERR_FIREWALL_DENIED;
}
