/* The vault properties kvmock keeps for Resource Manager beyond its own: the sku, the
 * enabledFor* switches, publicNetworkAccess and networkAcls (the firewall that
 * pol_network_allowed() applies on the data plane). Read from a management-plane PUT or
 * PATCH body and from the configuration file, and written into a vault's answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_ip.h"
#include "kv_str.h"
#include "srv.h"

/* Whether @p id is a subnet's resource id:
 * /subscriptions/S/resourceGroups/G/providers/Microsoft.Network/virtualNetworks/N/subnets/M */
static int subnet_id_valid(const char *id)
{
    static const char *const words[] = {
        "subscriptions",   NULL, "resourceGroups", NULL, "providers", "Microsoft.Network",
        "virtualNetworks", NULL, "subnets",        NULL};
    const size_t nwords = sizeof(words) / sizeof(words[0]);
    size_t len = strlen(id);
    if (len == 0 || len > KS_VNET_ID_MAX || id[0] != '/')
        return 0;
    const char *p = id + 1;
    for (size_t i = 0; i < nwords; i++) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || (words[i] != NULL && (n != strlen(words[i]) || strncasecmp(p, words[i], n))))
            return 0;
        if ((slash == NULL) != (i == nwords - 1))
            return 0;
        p = slash ? slash + 1 : p + n;
    }
    return 1;
}

/* A string member that must be one of @p a or @p b (either case); sets @p out to 0 for a,
 * 1 for b, and leaves it when the member is absent or null. 0 when it is neither. */
static int one_of(const cJSON *o, const char *name, const char *a, const char *b, int *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (m == NULL || cJSON_IsNull(m))
        return 1;
    if (!cJSON_IsString(m))
        return 0;
    if (strcasecmp(m->valuestring, a) == 0)
        *out = 0;
    else if (strcasecmp(m->valuestring, b) == 0)
        *out = 1;
    else
        return 0;
    return 1;
}

static int bool_member(const cJSON *o, const char *name, int *out)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, name);
    if (m == NULL || cJSON_IsNull(m))
        return 1;
    if (!cJSON_IsBool(m))
        return 0;
    *out = cJSON_IsTrue(m);
    return 1;
}

/* networkAcls' rule lists into @p r; NULL or the reason it is refused (in @p why). */
static const char *parse_rules(const cJSON *acls, struct ks_net_rules *r, char *why, size_t cap)
{
    const cJSON *ips = cJSON_GetObjectItemCaseSensitive(acls, "ipRules");
    const cJSON *vnets = cJSON_GetObjectItemCaseSensitive(acls, "virtualNetworkRules");
    if ((ips != NULL && !cJSON_IsNull(ips) && !cJSON_IsArray(ips)) ||
        (vnets != NULL && !cJSON_IsNull(vnets) && !cJSON_IsArray(vnets)))
        return "properties.networkAcls.ipRules and virtualNetworkRules must be arrays.";
    int nip = cJSON_GetArraySize(ips), nvnet = cJSON_GetArraySize(vnets);
    if (nip > KS_IP_RULES_MAX) {
        snprintf(why, cap, "A vault takes at most %d IP rules; %d were given.", KS_IP_RULES_MAX,
                 nip);
        return why;
    }
    if (nvnet > KS_VNET_RULES_MAX) {
        snprintf(why, cap, "A vault takes at most %d virtual network rules; %d were given.",
                 KS_VNET_RULES_MAX, nvnet);
        return why;
    }
    if ((nip > 0 && (r->ip = calloc((size_t)nip, sizeof(*r->ip))) == NULL) ||
        (nvnet > 0 && (r->vnet = calloc((size_t)nvnet, sizeof(*r->vnet))) == NULL))
        return "";
    const cJSON *it;
    int i = 0;
    cJSON_ArrayForEach(it, ips)
    {
        const char *value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
        struct kv_cidr c;
        if (value == NULL || !kv_cidr_parse(value, &c)) {
            snprintf(why, cap,
                     "Invalid value found at properties.networkAcls.ipRules[%d].value: '%.64s' "
                     "is not an IP address or a CIDR range.",
                     i, value ? value : "");
            return why;
        }
        char canon[KV_CIDR_TEXT_MAX];
        kv_cidr_format(&c, canon);
        int seen = 0; /* "203.0.113.7" and "203.0.113.7/32" are one rule */
        for (size_t j = 0; j < r->ip_count && !seen; j++)
            seen = strcmp(r->ip[j], canon) == 0;
        if (!seen && (r->ip[r->ip_count++] = strdup(canon)) == NULL)
            return "";
        i++;
    }
    i = 0;
    cJSON_ArrayForEach(it, vnets)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        int ignore = 0;
        if (id == NULL || !subnet_id_valid(id) ||
            !bool_member(it, "ignoreMissingVnetServiceEndpoint", &ignore)) {
            snprintf(why, cap,
                     "Invalid value found at properties.networkAcls.virtualNetworkRules[%d]: "
                     "'id' must be a subnet's resource id (/subscriptions/…/resourceGroups/…/"
                     "providers/Microsoft.Network/virtualNetworks/…/subnets/…) and "
                     "'ignoreMissingVnetServiceEndpoint' true or false.",
                     i);
            return why;
        }
        /* Resource Manager answers a subnet's id in lowercase, so one subnet named in
         * two casings is one rule (the first one's ignoreMissingVnetServiceEndpoint) */
        char *lower = strdup(id);
        if (lower == NULL)
            return "";
        kv_str_lower(lower);
        int seen = 0;
        for (size_t j = 0; j < r->vnet_count && !seen; j++)
            seen = strcmp(r->vnet[j].id, lower) == 0;
        if (seen) {
            free(lower);
        } else {
            r->vnet[r->vnet_count].ignore_missing = ignore;
            r->vnet[r->vnet_count++].id = lower;
        }
        i++;
    }
    return NULL;
}

const char srv_vault_props_nomem[] = "Out of memory.";

int srv_policy_lists_parse(const cJSON *perms, int allow_null, struct pol_access_policy *p,
                           enum pol_list *bad_list, const char **bad_name)
{
    for (int l = 0; l < POL_LIST_COUNT; l++) {
        const cJSON *names = cJSON_GetObjectItemCaseSensitive(perms, pol_list_name(l));
        *bad_list = (enum pol_list)l;
        *bad_name = NULL;
        if (names != NULL && !cJSON_IsArray(names) && !(allow_null && cJSON_IsNull(names)))
            return 0;
        const cJSON *k;
        cJSON_ArrayForEach(k, names)
        {
            *bad_name = cJSON_IsString(k) ? k->valuestring : "?";
            if (!cJSON_IsString(k) || pol_list_add(&p->lists[l], l, k->valuestring) != KV_OK)
                return 0;
        }
    }
    pol_policy_settle(p);
    return 1;
}

int srv_vault_arm_prop(const char *name)
{
    static const char *const names[] = {"sku",
                                        "enabledForDeployment",
                                        "enabledForDiskEncryption",
                                        "enabledForTemplateDeployment",
                                        "publicNetworkAccess",
                                        "networkAcls",
                                        NULL};
    for (const char *const *n = names; *n != NULL; n++) {
        if (strcmp(name, *n) == 0)
            return 1;
    }
    return 0;
}

const char *srv_vault_props_parse(const cJSON *props, struct ks_vault *v,
                                  struct ks_net_rules *rules, char *why, size_t cap)
{
    memset(rules, 0, sizeof(*rules));
    v->net_rules = NULL;
    const cJSON *sku = cJSON_GetObjectItemCaseSensitive(props, "sku");
    if (sku != NULL && !cJSON_IsNull(sku)) {
        const char *family = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sku, "family"));
        if (!cJSON_IsObject(sku) || !one_of(sku, "name", "standard", "premium", &v->premium) ||
            (cJSON_GetObjectItemCaseSensitive(sku, "family") != NULL &&
             (family == NULL || strcmp(family, "A") != 0)))
            return "The sku must be {\"family\": \"A\", \"name\": \"standard\" or \"premium\"}.";
    }
    if (!bool_member(props, "enabledForDeployment", &v->for_deployment) ||
        !bool_member(props, "enabledForDiskEncryption", &v->for_disk_encryption) ||
        !bool_member(props, "enabledForTemplateDeployment", &v->for_template_deployment))
        return "enabledForDeployment, enabledForDiskEncryption and enabledForTemplateDeployment "
               "must be true or false.";
    if (!one_of(props, "publicNetworkAccess", "Enabled", "Disabled", &v->public_network_disabled))
        return "publicNetworkAccess must be 'Enabled' or 'Disabled'.";
    const cJSON *acls = cJSON_GetObjectItemCaseSensitive(props, "networkAcls");
    if (acls == NULL || cJSON_IsNull(acls))
        return NULL; /* the vault's stay as they are */
    if (!cJSON_IsObject(acls))
        return "properties.networkAcls must be an object.";
    /* given: the whole rule set is replaced, with Azure's defaults for what it leaves out */
    int deny = 0, bypass_none = 0;
    if (!one_of(acls, "defaultAction", "Allow", "Deny", &deny))
        return "properties.networkAcls.defaultAction must be 'Allow' or 'Deny'.";
    if (!one_of(acls, "bypass", "AzureServices", "None", &bypass_none))
        return "properties.networkAcls.bypass must be 'AzureServices' or 'None'.";
    const char *bad = parse_rules(acls, rules, why, cap);
    if (bad != NULL) {
        ks_net_rules_clear(rules);
        return bad[0] ? bad : srv_vault_props_nomem;
    }
    v->net_acls = 1;
    v->net_deny = deny;
    v->net_bypass_none = bypass_none;
    v->net_rules = rules;
    return NULL;
}

int srv_vault_props_json(struct srv_req *req, cJSON *props, const struct ks_vault *v)
{
    cJSON *sku = cJSON_AddObjectToObject(props, "sku");
    if (sku == NULL || !cJSON_AddStringToObject(sku, "family", "A") ||
        !cJSON_AddStringToObject(sku, "name", v->premium ? "premium" : "standard") ||
        !cJSON_AddBoolToObject(props, "enabledForDeployment", v->for_deployment) ||
        !cJSON_AddBoolToObject(props, "enabledForDiskEncryption", v->for_disk_encryption) ||
        !cJSON_AddBoolToObject(props, "enabledForTemplateDeployment", v->for_template_deployment) ||
        !cJSON_AddStringToObject(props, "publicNetworkAccess",
                                 v->public_network_disabled ? "Disabled" : "Enabled"))
        return 0;
    if (!v->net_acls)
        return 1;
    /* the rule lists a write gave the vault, else the store's */
    struct ks_net_rules rules = {0};
    if (v->net_rules == NULL && ks_vault_net_rules(req->srv->ks, v->name, &rules) != KV_OK)
        return 0;
    cJSON *acls = ks_net_acls_json(v, v->net_rules != NULL ? v->net_rules : &rules);
    int ok = acls != NULL && cJSON_AddItemToObject(props, "networkAcls", acls);
    if (!ok)
        cJSON_Delete(acls);
    ks_net_rules_clear(&rules);
    return ok;
}
