/* A vault's network rules: the rule lists of its networkAcls, kept in the vault's
 * record as Resource Manager names them:
 *
 *   "networkAcls": {"bypass": "AzureServices" | "None", "defaultAction": "Allow" | "Deny",
 *                   "ipRules": [{"value": "203.0.113.0/24"}, ...],
 *                   "virtualNetworkRules": [{"id": "...", "ignoreMissingVnetServiceEndpoint": b}]}
 *
 * The flags (bypass, defaultAction) are read with the rest of the vault into struct
 * ks_vault, which every data-plane request reads through the memo; the lists are read
 * only by ks_vault_net_rules(), when a request meets a vault that denies by default. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "kv_ip.h"
#include "store.h"

void ks_net_rules_clear(struct ks_net_rules *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->ip_count; i++)
        free(r->ip[i]);
    for (size_t i = 0; i < r->vnet_count; i++)
        free(r->vnet[i].id);
    free(r->ip);
    free(r->vnet);
    memset(r, 0, sizeof(*r));
}

int ks_net_rules_valid(const struct ks_net_rules *r)
{
    if (r->ip_count > KS_IP_RULES_MAX || r->vnet_count > KS_VNET_RULES_MAX)
        return 0;
    for (size_t i = 0; i < r->ip_count; i++) {
        struct kv_cidr c;
        char canon[KV_CIDR_TEXT_MAX];
        if (r->ip[i] == NULL || !kv_cidr_parse(r->ip[i], &c))
            return 0;
        kv_cidr_format(&c, canon);
        if (strcmp(canon, r->ip[i]) != 0)
            return 0;
    }
    for (size_t i = 0; i < r->vnet_count; i++) {
        const char *id = r->vnet[i].id;
        if (id == NULL || id[0] == '\0' || strlen(id) > KS_VNET_ID_MAX)
            return 0;
    }
    return 1;
}

/* A new object at the end of @p array; NULL when out of memory. */
static cJSON *append_object(cJSON *array)
{
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && !cJSON_AddItemToArray(array, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

cJSON *ks_net_acls_json(const struct ks_vault *v, const struct ks_net_rules *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *ips = o ? cJSON_AddArrayToObject(o, "ipRules") : NULL;
    cJSON *vnets = o ? cJSON_AddArrayToObject(o, "virtualNetworkRules") : NULL;
    int ok = vnets &&
             cJSON_AddStringToObject(o, "bypass", v->net_bypass_none ? "None" : "AzureServices") &&
             cJSON_AddStringToObject(o, "defaultAction", v->net_deny ? "Deny" : "Allow");
    for (size_t i = 0; ok && r != NULL && i < r->ip_count; i++) {
        cJSON *rule = append_object(ips);
        ok = rule && cJSON_AddStringToObject(rule, "value", r->ip[i]);
    }
    for (size_t i = 0; ok && r != NULL && i < r->vnet_count; i++) {
        cJSON *rule = append_object(vnets);
        ok = rule && cJSON_AddStringToObject(rule, "id", r->vnet[i].id) &&
             cJSON_AddBoolToObject(rule, "ignoreMissingVnetServiceEndpoint",
                                   r->vnet[i].ignore_missing);
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

enum kv_status ks_net_rules_from_json(const cJSON *acls, struct ks_net_rules *out)
{
    struct ks_net_rules r = {0};
    const cJSON *ips = cJSON_GetObjectItemCaseSensitive(acls, "ipRules");
    const cJSON *vnets = cJSON_GetObjectItemCaseSensitive(acls, "virtualNetworkRules");
    int nip = cJSON_GetArraySize(ips), nvnet = cJSON_GetArraySize(vnets);
    if ((nip > 0 && (r.ip = calloc((size_t)nip, sizeof(*r.ip))) == NULL) ||
        (nvnet > 0 && (r.vnet = calloc((size_t)nvnet, sizeof(*r.vnet))) == NULL))
        goto nomem;
    const cJSON *it;
    cJSON_ArrayForEach(it, ips)
    {
        const char *value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "value"));
        if (value == NULL)
            continue;
        if ((r.ip[r.ip_count] = strdup(value)) == NULL)
            goto nomem;
        r.ip_count++;
    }
    cJSON_ArrayForEach(it, vnets)
    {
        const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(it, "id"));
        if (id == NULL)
            continue;
        if ((r.vnet[r.vnet_count].id = strdup(id)) == NULL)
            goto nomem;
        r.vnet[r.vnet_count].ignore_missing =
            cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "ignoreMissingVnetServiceEndpoint"));
        r.vnet_count++;
    }
    *out = r;
    return KV_OK;
nomem:
    ks_net_rules_clear(&r);
    return KV_ERR_NOMEM;
}

struct rules_arg {
    const char *lname;
    struct ks_net_rules out;
};

static enum kv_status rules_fn(struct ks_txn *tx, void *arg)
{
    struct rules_arg *a = arg;
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, a->lname, strlen(a->lname), &v);
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_ERR_VAULT_NOT_FOUND : st;
    cJSON *doc = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (doc == NULL)
        return KV_ERR_STORE;
    ks_net_rules_clear(&a->out); /* a retried read starts again */
    st = ks_net_rules_from_json(cJSON_GetObjectItemCaseSensitive(doc, "networkAcls"), &a->out);
    cJSON_Delete(doc);
    return st;
}

enum kv_status ks_vault_net_rules(struct ks_env *env, const char *name, struct ks_net_rules *out)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (ks_vault_lower(name, lname) == 0 || !ks_vault_name_valid(lname))
        return KV_ERR_VAULT_NOT_FOUND;
    struct rules_arg a = {.lname = lname};
    enum kv_status st = ks_txn_read(env, rules_fn, &a);
    if (st == KV_OK)
        *out = a.out;
    else
        ks_net_rules_clear(&a.out);
    return st;
}
