/*
 * Managed HSMs on the management plane, in Resource Manager's shapes. mgmt_api.c routes and
 * authorizes the requests, and answers the deleted ones' list, get and purge and the name
 * check as it answers the vaults'; these answer the rest:
 *
 *   {PUT,PATCH,GET,DELETE} /subscriptions/S/resourceGroups/G/providers/
 *                          Microsoft.KeyVault/managedHSMs/N
 *   GET  /subscriptions/S[/resourceGroups/G]/providers/Microsoft.KeyVault/managedHSMs
 *
 * An HSM is a vault of the keystore marked hsm. One made here gets its initial
 * administrators as local Managed HSM Administrators at "/", and nothing of a purged
 * namesake's (keys, role assignments, custom roles). Soft delete is always on: a deleted
 * HSM keeps its keys, local role assignments, custom roles and settings until it is
 * recovered (PUT with createMode "recover") or purged. kvmock's HSMs are active at once:
 * a security domain download (hsm_admin.c) is not needed first.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

/* Managed HSM's skus: name and family */
static const char *const skus[][2] = {
    {"Standard_B1", "B"}, {"Custom_B32", "B"}, {"Custom_B6", "B"},
    {"Custom_C42", "C"},  {"Custom_C10", "C"},
};

static const char *sku_name(const struct ks_vault *v)
{
    return v->hsm_sku[0] != '\0' ? v->hsm_sku : skus[0][0];
}

static const char *sku_family(const char *name)
{
    for (size_t i = 0; i < sizeof(skus) / sizeof(skus[0]); i++) {
        if (strcmp(skus[i][0], name) == 0)
            return skus[i][1];
    }
    return "B";
}

const char srv_hsm_name_rules[] =
    "A managed HSM's name must be between 3-24 alphanumeric characters. The name must begin "
    "with a letter, end with a letter or digit, and not contain consecutive hyphens.";

static void hsm_not_found(struct srv_req *req, const char *name)
{
    srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                    "The Resource 'Microsoft.KeyVault/managedHSMs/%.64s' under resource group "
                    "'%.90s' was not found.",
                    name, req->seg[3]);
}

/* The HSM's networkAcls: its own (its rule lists v->net_rules when a write gave them, else
 * read), or Resource Manager's defaults. */
static cJSON *network_json(struct srv_req *req, const struct ks_vault *v)
{
    if (!v->net_acls) {
        cJSON *acls = cJSON_CreateObject();
        if (acls == NULL || !cJSON_AddStringToObject(acls, "bypass", "AzureServices") ||
            !cJSON_AddStringToObject(acls, "defaultAction", "Allow") ||
            !cJSON_AddArrayToObject(acls, "ipRules") ||
            !cJSON_AddArrayToObject(acls, "virtualNetworkRules")) {
            cJSON_Delete(acls);
            return NULL;
        }
        return acls;
    }
    struct ks_net_rules rules = {0};
    if (v->net_rules == NULL && ks_vault_net_rules(req->srv->ks, v->name, &rules) != KV_OK)
        return NULL;
    cJSON *acls = ks_net_acls_json(v, v->net_rules != NULL ? v->net_rules : &rules);
    ks_net_rules_clear(&rules);
    return acls;
}

/* Managed HSM @p v as Resource Manager answers it. Its initialAdminObjectIds are the
 * principals that hold Managed HSM Administrator at its scope "/" now. Its tags are
 * v->tags when set (a write's), else read. */
static cJSON *hsm_json(struct srv_req *req, const struct ks_vault *v)
{
    char id[1024], dns[64], uri[160];
    srv_hsm_arm_id(req, v, id, sizeof(id));
    srv_hsm_dns(req, dns, sizeof(dns));
    snprintf(uri, sizeof(uri), "https://%s.%s/", v->name, dns);
    size_t cap = pol_role_list(req->srv->pol, v, NULL, 0) + 1;
    struct pol_role_assignment *roles = calloc(cap, sizeof(*roles));
    size_t n = roles != NULL ? pol_role_list(req->srv->pol, v, roles, cap) : 0;
    n = n < cap ? n : cap;
    cJSON *o = cJSON_CreateObject();
    int ok = o != NULL && cJSON_AddStringToObject(o, "id", id) &&
             cJSON_AddStringToObject(o, "name", v->name) &&
             cJSON_AddStringToObject(o, "type", "Microsoft.KeyVault/managedHSMs") &&
             cJSON_AddStringToObject(o, "location", ks_vault_location(v)) &&
             srv_arm_add_tags(req, o, v->name, 0, v->tags);
    cJSON *sku = ok ? cJSON_AddObjectToObject(o, "sku") : NULL;
    cJSON *props = sku ? cJSON_AddObjectToObject(o, "properties") : NULL;
    ok = props != NULL && cJSON_AddStringToObject(sku, "family", sku_family(sku_name(v))) &&
         cJSON_AddStringToObject(sku, "name", sku_name(v)) &&
         cJSON_AddStringToObject(props, "tenantId", v->tenant_id) &&
         cJSON_AddStringToObject(props, "hsmUri", uri);
    cJSON *admins = ok ? cJSON_AddArrayToObject(props, "initialAdminObjectIds") : NULL;
    cJSON *acls = admins ? network_json(req, v) : NULL;
    if (acls != NULL && !cJSON_AddItemToObject(props, "networkAcls", acls)) {
        cJSON_Delete(acls);
        acls = NULL;
    }
    cJSON *sd = acls ? cJSON_AddObjectToObject(props, "securityDomainProperties") : NULL;
    ok = roles != NULL && sd != NULL && cJSON_AddBoolToObject(props, "enableSoftDelete", 1) &&
         cJSON_AddNumberToObject(props, "softDeleteRetentionInDays", v->retention_days) &&
         cJSON_AddBoolToObject(props, "enablePurgeProtection", v->purge_protection) &&
         cJSON_AddStringToObject(props, "provisioningState", "Succeeded") &&
         cJSON_AddStringToObject(props, "statusMessage",
                                 "The Managed HSM is provisioned and ready to use.") &&
         cJSON_AddStringToObject(props, "publicNetworkAccess",
                                 v->public_network_disabled ? "Disabled" : "Enabled") &&
         cJSON_AddStringToObject(sd, "activationStatus", "Active") &&
         cJSON_AddStringToObject(sd, "activationStatusMessage",
                                 "Your HSM has been activated and can be used for "
                                 "cryptographic operations.") &&
         cJSON_AddArrayToObject(props, "regions") && srv_arm_add_system_data(o, v);
    for (size_t i = 0; ok && i < n; i++) {
        if (roles[i].role == POL_ROLE_HSM_ADMINISTRATOR && roles[i].key[0] == '\0' &&
            !roles[i].hsm_keys)
            ok = cJSON_AddItemToArray(admins, cJSON_CreateString(roles[i].principal_id));
    }
    free(roles);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void srv_mgmt_hsm_list(struct srv_req *req)
{
    char(*names)[KS_VAULT_NAME_MAX + 1] = calloc(256, sizeof(*names));
    cJSON *doc = names ? cJSON_CreateObject() : NULL;
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    int ok = value != NULL;
    char after[KS_VAULT_NAME_MAX + 1] = "";
    for (size_t n = 256; ok && n == 256;) {
        n = ks_vault_list_from(req->srv->ks, after, names, 256);
        n = n < 256 ? n : 256;
        for (size_t i = 0; ok && i < n; i++) {
            struct ks_vault v;
            if (ks_vault_get(req->srv->ks, names[i], &v) != KV_OK ||
                !srv_hsm_in_path_group(req, &v))
                continue;
            cJSON *item = hsm_json(req, &v);
            ok = item != NULL && cJSON_AddItemToArray(value, item);
            if (!ok)
                cJSON_Delete(item);
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", names[n - 1]);
    }
    free(names);
    srv_arm_send_page(req, doc, ok, NULL);
}

/* ---- create, update, recover ------------------------------------------------------------ */

/* The body's top-level sku: its name into @p out (kept when there is none). 0 when it
 * answered 400. */
static int parse_sku(struct srv_req *req, char out[KS_HSM_SKU_MAX + 1])
{
    const cJSON *sku = cJSON_GetObjectItemCaseSensitive(req->body, "sku");
    if (sku == NULL || cJSON_IsNull(sku))
        return 1;
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(sku, "name"));
    const cJSON *family = cJSON_GetObjectItemCaseSensitive(sku, "family");
    for (size_t i = 0; cJSON_IsObject(sku) && name != NULL && i < sizeof(skus) / sizeof(skus[0]);
         i++) {
        if (strcmp(skus[i][0], name) != 0)
            continue;
        if (family != NULL && !cJSON_IsNull(family) &&
            !(cJSON_IsString(family) && strcmp(family->valuestring, skus[i][1]) == 0))
            break;
        snprintf(out, KS_HSM_SKU_MAX + 1, "%s", name);
        return 1;
    }
    srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                   "The sku must be {\"family\": \"B\", \"name\": \"Standard_B1\", "
                   "\"Custom_B32\" or \"Custom_B6\"} or {\"family\": \"C\", \"name\": "
                   "\"Custom_C42\" or \"Custom_C10\"}.");
    return 0;
}

/* The body's initialAdminObjectIds as local Managed HSM Administrators of new HSM
 * @p name at "/", in @p out (free it). NULL when they are not a non-empty list of object
 * ids (the reason in @p why), or out of memory (@p why ""). */
static struct pol_role_assignment *initial_admins(const struct srv_req *req, const char *name,
                                                  const cJSON *props, size_t *n, const char **why)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(props, "initialAdminObjectIds"), *it;
    *n = 0;
    *why = "properties.initialAdminObjectIds must list the object ids of the managed HSM's "
           "first administrators.";
    int count = cJSON_GetArraySize(ids);
    if (!cJSON_IsArray(ids) || count == 0 || count > 64)
        return NULL;
    cJSON_ArrayForEach(it, ids)
    {
        if (!cJSON_IsString(it) || it->valuestring[0] == '\0' ||
            strlen(it->valuestring) >= POL_ID_MAX)
            return NULL;
    }
    *why = "";
    struct pol_role_assignment *roles = calloc((size_t)count, sizeof(*roles));
    if (roles == NULL)
        return NULL;
    cJSON_ArrayForEach(it, ids)
    {
        size_t j = 0;
        while (j < *n && strcasecmp(roles[j].principal_id, it->valuestring) != 0)
            j++;
        if (j < *n)
            continue; /* one assignment for an id named twice */
        struct pol_role_assignment *r = &roles[(*n)++];
        kv_str_uuid_random(r->id);
        r->hsm = 1;
        r->role = POL_ROLE_HSM_ADMINISTRATOR;
        snprintf(r->principal_id, sizeof(r->principal_id), "%s", it->valuestring);
        snprintf(r->vault, sizeof(r->vault), "%s", name);
        r->updated = ks_now();
        snprintf(r->updated_by, sizeof(r->updated_by), "%s", req->who.oid);
    }
    return roles;
}

/* PUT .../managedHSMs/N with properties.createMode "recover": the deleted HSM comes back
 * as it was, with its keys, local access control and settings. */
static void hsm_recover(struct srv_req *req, const char *name)
{
    struct ks_vault v;
    if (!srv_arm_recover(req, name, 1,
                         "A soft deleted managed HSM with the given name does not exist. Ensure "
                         "that the name for the managed HSM that is being attempted to recover "
                         "is in a recoverable state.",
                         &v))
        return;
    srv_send_json(req, 200, hsm_json(req, &v));
}

/* A vault's properties, which are no Managed HSM's */
static const char *vault_only_property(const cJSON *props)
{
    static const char *const names[] = {"sku",
                                        "enabledForDeployment",
                                        "enabledForDiskEncryption",
                                        "enabledForTemplateDeployment",
                                        "accessPolicies",
                                        "enableRbacAuthorization"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        const cJSON *m = cJSON_GetObjectItemCaseSensitive(props, names[i]);
        if (m != NULL && !cJSON_IsNull(m))
            return names[i];
    }
    return NULL;
}

/* Check a PUT's or PATCH's properties and fill @p v's (the HSM to write; @p old when it
 * exists) from them: soft delete, retention, purge protection, the firewall. 0 when it
 * answered 400. */
static int hsm_props(struct srv_req *req, const cJSON *props, int exists,
                     const struct ks_vault *old, struct ks_vault *v, struct ks_net_rules *rules)
{
    char why[256] = "";
    const char *bad = NULL, *other = vault_only_property(props);
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(props, "enableSoftDelete");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(props, "softDeleteRetentionInDays");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(props, "enablePurgeProtection");
    v->hsm = v->premium = v->soft_delete = 1;
    v->retention_days = cJSON_IsNumber(days) ? days->valueint : exists ? old->retention_days : 90;
    /* the REST specification's default for a new HSM: on */
    v->purge_protection = cJSON_IsBool(pp) ? cJSON_IsTrue(pp) : !exists || old->purge_protection;
    if (other != NULL) {
        snprintf(why, sizeof(why), "properties.%s is a vault's property, not a managed HSM's.",
                 other);
        bad = why;
    } else if (sd != NULL && !cJSON_IsNull(sd) && !cJSON_IsTrue(sd)) {
        bad = "Soft delete is always enabled on a managed HSM: enableSoftDelete must be true.";
    } else if (pp != NULL && !cJSON_IsNull(pp) && !cJSON_IsBool(pp)) {
        bad = "enablePurgeProtection must be true or false.";
    } else if ((days != NULL && !cJSON_IsNull(days) &&
                (!cJSON_IsNumber(days) || days->valuedouble != (double)days->valueint)) ||
               v->retention_days < 7 || v->retention_days > 90) {
        bad = "softDeleteRetentionInDays must be an integer between 7 and 90.";
    } else if (exists && v->retention_days != old->retention_days) {
        bad = "The property \"softDeleteRetentionInDays\" has been set already and it cannot be "
              "modified.";
    } else if (exists && old->purge_protection && !v->purge_protection) {
        bad = "The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge "
              "protection for a managed HSM is an irreversible action.";
    } else {
        bad = srv_vault_props_parse(props, v, rules, why, sizeof(why));
    }
    if (bad == srv_vault_props_nomem) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return 0;
    }
    if (bad != NULL) {
        ks_net_rules_clear(rules);
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, bad);
        return 0;
    }
    return 1;
}

/* PUT (create or replace what the body names) or, with @p patch, PATCH a managed HSM. A
 * PUT needs a location and properties, and a new HSM its initialAdminObjectIds; its tags
 * replace the HSM's (none given, none kept). Both answer 200 with the HSM. */
static void hsm_put(struct srv_req *req, const char *path_name, int patch)
{
    char name[KS_VAULT_NAME_MAX + 1], location[KS_LOCATION_MAX + 1] = "";
    if (srv_read_json_body(req) != KV_OK) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The request body is not a JSON object.");
        return;
    }
    /* names match in any case, and HSMs keep theirs in lowercase, as their hosts have it */
    int named = ks_vault_lower(path_name, name) != 0 && ks_vault_name_valid(name);
    if (patch && !named) {
        hsm_not_found(req, path_name);
        return;
    }
    if (!srv_arm_body_ok(req, patch, location))
        return;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(props, "createMode");
    if (!patch && named && cJSON_IsString(mode) && strcasecmp(mode->valuestring, "recover") == 0) {
        hsm_recover(req, name);
        return;
    }
    struct ks_vault old, v = {0};
    int exists = named && ks_vault_get(req->srv->ks, name, &old) == KV_OK;
    int here = exists && srv_hsm_in_path_group(req, &old);
    const char *group = srv_arm_path_group(req);
    if (patch && !here) {
        hsm_not_found(req, name);
        return;
    }
    if (!exists && (!named || !srv_arm_name_valid(path_name))) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST, "The managed HSM name '%.64s' is invalid. %s",
                        path_name, srv_hsm_name_rules);
        return;
    }
    if (exists && !here) {
        srv_send_errorf(req, KV_ERR_ARM_CONFLICT,
                        "The name '%s' is already in use by %s. Managed HSM names are globally "
                        "unique, and in kvmock a vault's and a managed HSM's are one namespace.",
                        name, old.hsm ? "a managed HSM of another resource group" : "a vault");
        return;
    }
    if (!exists && !ks_group_name_valid(group)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST, "The resource group name '%.100s' is invalid.",
                        group ? group : "");
        return;
    }
    snprintf(v.hsm_sku, sizeof(v.hsm_sku), "%s", exists ? old.hsm_sku : "");
    if (!parse_sku(req, v.hsm_sku))
        return;
    if (exists && strcmp(sku_name(&v), sku_name(&old)) != 0) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The sku of managed HSM '%s' is %s and cannot be changed.", name,
                        sku_name(&old));
        return;
    }
    struct ks_tags tags = {0};
    if (!srv_arm_resource_fill(req, patch, exists ? &old : NULL, name, group, location, &v, &tags))
        return;
    if (exists)
        ks_vault_copy_arm_props(&v, &old);
    struct ks_net_rules rules = {0};
    struct pol_role_assignment *admins = NULL;
    size_t n_admins = 0;
    const char *why = NULL;
    int ok = hsm_props(req, props, exists, &old, &v, &rules);
    if (ok && !exists && (admins = initial_admins(req, name, props, &n_admins, &why)) == NULL) {
        srv_send_error(req, why[0] != '\0' ? KV_ERR_ARM_BAD_REQUEST : KV_ERR_NOMEM,
                       why[0] != '\0' ? why : NULL);
        ok = 0;
    }
    /* A new HSM has none of a purged namesake's access control, and its administrators. */
    struct pol_acl_change chg = {.vault = v.name,
                                 .clear_policies = 1,
                                 .clear_roles = 1,
                                 .clear_defs = 1,
                                 .roles = admins,
                                 .n_roles = n_admins};
    struct srv_arm_kept kept = {0};
    enum kv_status st = ok ? srv_arm_write(req, &v, exists, exists ? NULL : &chg, &kept) : KV_OK;
    free(admins);
    if (!ok) {
        ;                                       /* answered */
    } else if (st == KV_ERR_ARM_VAULT_EXISTS) { /* made meanwhile, by another request */
        srv_send_errorf(req, KV_ERR_ARM_CONFLICT,
                        "The name '%s' is already in use: another request took it while this "
                        "one ran.",
                        name);
    } else if (st == KV_ERR_VAULT_DELETED) {
        srv_send_errorf(req, st,
                        "A managed HSM or vault with the same name '%s' already exists in "
                        "deleted state. You need to either recover or purge it.",
                        name);
    } else if (st == KV_ERR_VAULT_NOT_FOUND) { /* deleted meanwhile: nothing was written */
        hsm_not_found(req, name);
    } else if (st == KV_ERR_PURGE_PROTECTED) { /* another request turned it on meanwhile */
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "The property \"enablePurgeProtection\" cannot be set to false.");
    } else if (st != KV_OK) {
        int told = st == KV_ERR_ARM_BAD_REQUEST || st == KV_ERR_STORE_FULL || st == KV_ERR_NOMEM;
        srv_send_error(req, told ? st : KV_ERR_INTERNAL, NULL);
    } else {
        kv_log(KV_LOG_INFO, "managed HSM '%s' %s by %s", name, exists ? "updated" : "created",
               req->who.oid);
        srv_send_json(req, 200, hsm_json(req, &v));
    }
    free(tags.names);
    free(tags.values);
    srv_arm_kept_free(&kept);
    ks_net_rules_clear(&rules);
}

void srv_mgmt_hsm(struct srv_req *req, const char *name)
{
    const char *method = req->ri->request_method;
    struct ks_vault v;
    if (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0) {
        hsm_put(req, name, strcmp(method, "PATCH") == 0);
        return;
    }
    int found = ks_vault_get(req->srv->ks, name, &v) == KV_OK && srv_hsm_in_path_group(req, &v);
    if (strcmp(method, "GET") == 0) {
        if (found)
            srv_send_json(req, 200, hsm_json(req, &v));
        else
            hsm_not_found(req, name);
    } else if (strcmp(method, "DELETE") == 0) {
        /* soft delete is always on: it keeps its keys and access control for a recovery */
        enum kv_status st = found ? srv_arm_delete(req, &v) : KV_ERR_VAULT_NOT_FOUND;
        if (st == KV_ERR_VAULT_NOT_FOUND)
            srv_send_empty(req, 204);
        else if (st != KV_OK)
            srv_send_error(req, st, NULL);
        else
            srv_send_empty(req, 200);
    } else {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    }
}
