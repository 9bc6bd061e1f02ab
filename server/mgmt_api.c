/*
 * The management plane, in Azure Resource Manager's shapes, on the HTTPS port:
 *
 *   {PUT,PATCH,GET,HEAD,DELETE} /subscriptions/S/resourcegroups/G   (and GET of the list)
 *   {PUT,PATCH,GET,DELETE} /subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/V
 *   GET              /subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults
 *   PUT              .../vaults/V/accessPolicies/{add|replace|remove}
 *   {PUT,GET}        .../vaults/V/keys[/K[/versions[/VER]]]  (mgmt_keys.c)
 *   GET              /subscriptions/S/providers/Microsoft.KeyVault/deletedVaults
 *   GET              /subscriptions/S/providers/Microsoft.KeyVault/locations/L/deletedVaults/V
 *   POST             .../locations/L/deletedVaults/V/purge
 *   POST             /subscriptions/S/providers/Microsoft.KeyVault/checkNameAvailability
 *   {PUT,GET,DELETE} {scope}/providers/Microsoft.Authorization/roleAssignments/ID
 *   {PUT,GET,DELETE} {scope}/providers/Microsoft.Authorization/roleDefinitions/ID
 *   GET              /subscriptions[/S], /tenants     (what `az login` lists)
 *   GET              /subscriptions/S[/resourceGroups/G]/resources, .../vaults
 *   {PUT,PATCH,GET,DELETE} .../managedHSMs/N, the lists of managedHSMs and deletedManagedHSMs,
 *                    .../locations/L/deletedManagedHSMs/N[/purge], checkMhsmNameAvailability
 *                    (routed and authorized here, answered by mgmt_hsm.c)
 *   GET              /metadata/endpoints              (the cloud's endpoints, no token)
 *
 * Any subscription and location is accepted. A vault is in the resource group it was
 * created in (one that does not exist yet is created with it); the configuration
 * file's vaults are in POL_RESOURCE_GROUP, and answer through any group's path too.
 * Deleting a group deletes its vaults. Callers need a token
 * for https://management.azure.com from an identity with `manage`; the lists of
 * subscriptions and tenants answer any identity (an empty list of subscriptions
 * to one that may not manage), and the cloud metadata needs no token.
 *
 * Deleting a vault with soft delete on moves it to the deleted state (keystore
 * vaults.c); PUT with properties.createMode "recover" brings it back.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

#define MAX_POLICIES 1024

/* Resource Manager's limits on a resource's tags */
#define TAGS_MAX      50
#define TAG_NAME_MAX  512
#define TAG_VALUE_MAX 256

static const char *const arm_api_versions[] = {
    "2015-06-01",         "2016-10-01",         "2018-02-14",         "2018-02-14-preview",
    "2019-09-01",         "2020-04-01-preview", "2021-04-01-preview", "2021-06-01-preview",
    "2021-10-01",         "2021-11-01-preview", "2022-02-01-preview", "2022-07-01",
    "2022-11-01",         "2023-02-01",         "2023-07-01",         "2023-08-01-preview",
    "2024-04-01-preview", "2024-11-01",         "2024-12-01-preview", "2025-05-01",
    "2026-02-01",         "2026-03-01-preview", "2026-04-01",         "2026-04-01-preview",
    "2026-05-15-preview",
};

static const char *const authz_api_versions[] = {
    "2015-07-01",         "2018-01-01-preview", "2018-09-01-preview", "2020-03-01-preview",
    "2020-04-01-preview", "2020-08-01-preview", "2020-10-01",         "2020-10-01-preview",
    "2021-04-01-preview", "2022-01-01-preview", "2022-03-01",         "2022-04-01",
    "2022-05-01-preview",
};

static int known(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++) {
        if (strcmp(v, list[i]) == 0)
            return 1;
    }
    return 0;
}

/* Whether the request's api-version is one of @p list; else answer 400 naming @p what
 * ("Microsoft.KeyVault (use 2023-07-01)") and return 0. */
static int api_version_ok_n(struct srv_req *req, const char *const *list, size_t n,
                            const char *what)
{
    if (known(srv_query_get(req, "api-version"), list, n))
        return 1;
    srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                    "The api-version is missing or not supported for %s.", what);
    return 0;
}
#define API_VERSION_OK(req, list, what) \
    api_version_ok_n((req), (list), sizeof(list) / sizeof((list)[0]), (what))
#define KEYVAULT_API "Microsoft.KeyVault (use 2023-07-01)"

/* ---- authentication and the caller's right to manage ------------------------------------ */

/* Whether the authenticated caller is an identity with `manage` (its token's tenant is its
 * own: pol_token_check() made sure). */
static int may_manage(const struct srv_req *req)
{
    const struct pol_identity *id = pol_find_identity(req->srv->pol, NULL, req->who.oid, NULL);
    return id != NULL && id->manage;
}

/* A token for Resource Manager, verified; else 401 answered. Its audience is Azure's
 * Resource Manager, or kvmock's own endpoint as the request reached it: the newer
 * management SDKs (@azure/arm-keyvault 5) ask for "{endpoint}/.default", as Resource
 * Manager is its own audience in Azure. */
static enum kv_status authenticate(struct srv_req *req)
{
    char self[SRV_HOST_MAX + 16];
    srv_base_url(req, self, sizeof(self));
    const char *auds[] = {"https://management.azure.com", "https://management.core.windows.net",
                          self};
    if (srv_authenticate(req, auds, 3) == KV_OK)
        return KV_OK;
    if (req->wrong_aud[0] != '\0') /* Resource Manager's words */
        srv_send_errorf(req, KV_ERR_ARM_TOKEN_AUDIENCE,
                        "The access token has been obtained for wrong audience or resource "
                        "'%s'. It should exactly match with one of the allowed audiences "
                        "'https://management.core.windows.net/','https://management.core."
                        "windows.net','https://management.azure.com/','https://"
                        "management.azure.com'.",
                        req->wrong_aud);
    else
        srv_send_error(req, KV_ERR_ARM_UNAUTHORIZED, NULL);
    return KV_ERR_ARM_UNAUTHORIZED;
}

static enum kv_status authorize(struct srv_req *req, const char *action, const char *scope)
{
    if (authenticate(req) != KV_OK)
        return KV_ERR_ARM_UNAUTHORIZED;
    const char *tenant = pol_tenant(req->srv->pol);
    if (strcasecmp(req->who.tid, tenant) != 0) { /* kvmock's one subscription is its tenant's */
        srv_send_errorf(req, KV_ERR_ARM_TOKEN_TENANT,
                        "The access token is from the wrong issuer 'https://sts.windows.net/%s/'. "
                        "It must match the tenant 'https://sts.windows.net/%s/' associated with "
                        "this subscription. Please use the authority (URL) "
                        "'https://login.windows.net/%s' to get the token.",
                        req->who.tid, tenant, tenant);
        return KV_ERR_ARM_UNAUTHORIZED;
    }
    if (!may_manage(req)) {
        srv_send_errorf(req, KV_ERR_ARM_FORBIDDEN,
                        "The client '%s' with object id '%s' does not have authorization to "
                        "perform action '%s' over scope '%.300s' or the scope is invalid.",
                        req->who.appid, req->who.oid, action, scope);
        return KV_ERR_ARM_FORBIDDEN;
    }
    req->policy_match = 1;
    return KV_OK;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

/* An accessPolicies[] item: each permission list in the order it was given (storage's
 * only when it names any, as Resource Manager leaves it out otherwise). */
static cJSON *policy_json(const struct pol_access_policy *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *perms = o ? cJSON_AddObjectToObject(o, "permissions") : NULL;
    int ok = perms && cJSON_AddStringToObject(o, "tenantId", p->tenant_id) &&
             cJSON_AddStringToObject(o, "objectId", p->object_id);
    if (ok && p->application_id[0] != '\0')
        ok = cJSON_AddStringToObject(o, "applicationId", p->application_id) != NULL;
    for (int k = 0; ok && k < POL_LIST_COUNT; k++) {
        const struct pol_perm_list *l = &p->lists[k];
        if (k == POL_LIST_STORAGE && l->n == 0)
            continue;
        cJSON *arr = cJSON_AddArrayToObject(perms, pol_list_name((enum pol_list)k));
        ok = arr != NULL;
        for (unsigned i = 0; ok && i < l->n; i++)
            ok = cJSON_AddItemToArray(
                arr, cJSON_CreateString(pol_list_entry((enum pol_list)k, l->name[i])));
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *policies_json(struct srv_req *req, const char *vault)
{
    struct pol_access_policy *list = calloc(MAX_POLICIES, sizeof(*list));
    size_t n = list ? pol_policy_list(req->srv->pol, vault, list, MAX_POLICIES) : 0;
    cJSON *arr = list ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; arr != NULL && i < n && i < MAX_POLICIES; i++) {
        cJSON *p = policy_json(&list[i]);
        if (p == NULL || !cJSON_AddItemToArray(arr, p)) {
            cJSON_Delete(p);
            cJSON_Delete(arr);
            arr = NULL;
        }
    }
    free(list);
    return arr;
}

/* The vault's ARM id: the request's subscription and resource group (kvmock keeps
 * neither: any are accepted), or kvmock's own group for a subscription-wide list. */
/* The resource group a request's path names, or NULL. */
const char *srv_arm_path_group(const struct srv_req *req)
{
    return req->nseg >= 4 && strcasecmp(req->seg[2], "resourceGroups") == 0 ? req->seg[3] : NULL;
}

/* A vault's resource group: the one it was created in; POL_RESOURCE_GROUP for a vault of
 * the configuration file. */
const char *srv_vault_group(const struct ks_vault *v)
{
    return v->group[0] != '\0' ? v->group : POL_RESOURCE_GROUP;
}

/* Whether the path (of one vault) reaches vault @p v: through its own group; a vault of
 * the configuration file through any group, as before kvmock kept groups. */
int srv_in_path_group(const struct srv_req *req, const struct ks_vault *v)
{
    const char *group = srv_arm_path_group(req);
    /* a Managed HSM is no vault of Resource Manager's vaults */
    return !v->hsm && (v->group[0] == '\0' || group == NULL || strcasecmp(v->group, group) == 0);
}

/* What vault_list() lists: the vaults, or generic resources (vaults, managed HSMs, or
 * both) */
enum listing { LIST_VAULTS, LIST_RESOURCES, LIST_RESOURCE_VAULTS, LIST_RESOURCE_HSMS };

/* Whether list @p what of the path's group (or of the subscription) shows vault or HSM @p v. */
static int listed_in_path_group(const struct srv_req *req, const struct ks_vault *v,
                                enum listing what)
{
    const char *group = srv_arm_path_group(req);
    int kind = what == LIST_RESOURCES ||
               (v->hsm ? what == LIST_RESOURCE_HSMS : what != LIST_RESOURCE_HSMS);
    return kind && (group == NULL || strcasecmp(srv_vault_group(v), group) == 0);
}

static void vault_id(const struct srv_req *req, const struct ks_vault *v, char *out, size_t cap)
{
    snprintf(out, cap, "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/vaults/%s",
             req->seg[1], srv_vault_group(v), v->name);
}

/* vault_id() of a managed HSM. */
void srv_hsm_arm_id(const struct srv_req *req, const struct ks_vault *v, char *out, size_t cap)
{
    snprintf(out, cap,
             "/subscriptions/%s/resourceGroups/%s/providers/Microsoft.KeyVault/managedHSMs/%s",
             req->seg[1], srv_vault_group(v), v->name);
}

int srv_hsm_in_path_group(const struct srv_req *req, const struct ks_vault *v)
{
    const char *group = srv_arm_path_group(req);
    return v->hsm && (group == NULL || strcasecmp(srv_vault_group(v), group) == 0);
}

/* Add @p known, or (NULL) the tags of vault @p name read from the store (@p deleted: as
 * it was deleted), to @p o as "tags". */
int srv_arm_add_tags(struct srv_req *req, cJSON *o, const char *name, int deleted,
                     const struct ks_tags *known)
{
    struct ks_tags t = {0};
    cJSON *tags = cJSON_AddObjectToObject(o, "tags");
    int ok =
        tags != NULL && (known != NULL || ks_vault_tags(req->srv->ks, name, deleted, &t) == KV_OK);
    const struct ks_tags *shown = known != NULL ? known : &t;
    for (size_t i = 0; ok && i < shown->count; i++)
        ok = cJSON_AddStringToObject(tags, shown->names[i], shown->values[i]) != NULL;
    ks_tags_clear(&t);
    return ok;
}

/* The generic resource of a vault or managed HSM (GET .../resources): id, name, type,
 * location, tags (v->tags when set, as a write gave them, else read). */
static cJSON *vault_resource_json(struct srv_req *req, const struct ks_vault *v)
{
    char id[1024];
    if (v->hsm)
        srv_hsm_arm_id(req, v, id, sizeof(id));
    else
        vault_id(req, v, id, sizeof(id));
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "name", v->name) ||
        !cJSON_AddStringToObject(
            o, "type", v->hsm ? "Microsoft.KeyVault/managedHSMs" : "Microsoft.KeyVault/vaults") ||
        !cJSON_AddStringToObject(o, "location", ks_vault_location(v)) ||
        !srv_arm_add_tags(req, o, v->name, 0, v->tags)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The "tags" of a request body, checked against Resource Manager's rules, as borrowed
 * strings in @p out (free out->names and out->values, not the strings). Returns 0 and
 * answers 400 when they break a rule. */
int srv_arm_parse_tags(struct srv_req *req, const cJSON *o, struct ks_tags *out)
{
    memset(out, 0, sizeof(*out));
    int n = cJSON_GetArraySize(o);
    if (!cJSON_IsObject(o)) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The 'tags' must be an object of strings.");
        return 0;
    }
    if (n > TAGS_MAX) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The resource has %d tags; at most %d are allowed.", n, TAGS_MAX);
        return 0;
    }
    out->names = calloc((size_t)n + 1, sizeof(char *));
    out->values = calloc((size_t)n + 1, sizeof(char *));
    if (out->names == NULL || out->values == NULL) {
        free(out->names);
        free(out->values);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return 0;
    }
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        const char *bad = NULL;
        size_t len = strlen(it->string);
        if (!cJSON_IsString(it))
            bad = "has a value that is not a string";
        else if (len == 0 || len > TAG_NAME_MAX)
            bad = "is empty or longer than 512 characters";
        else if (strlen(it->valuestring) > TAG_VALUE_MAX)
            bad = "has a value longer than 256 characters";
        else if (strpbrk(it->string, "<>%&\\?/") != NULL)
            bad = "has reserved characters '<,>,%,&,\\,?,/'";
        for (size_t i = 0; bad == NULL && i < len; i++)
            if ((unsigned char)it->string[i] < 0x20)
                bad = "has control characters";
        if (bad != NULL) {
            srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST, "The tag name '%.64s' %s.", it->string,
                            bad);
            free(out->names);
            free(out->values);
            memset(out, 0, sizeof(*out));
            return 0;
        }
        out->names[out->count] = it->string;
        out->values[out->count] = it->valuestring;
        out->count++;
    }
    return 1;
}

/* Resource Manager's systemData of vault @p v: who made it and who changed it last, and
 * when, as far as kvmock knows (nothing for a vault of an older kvmock not changed since) */
int srv_arm_add_system_data(cJSON *o, const struct ks_vault *v)
{
    static const char *const names[2][3] = {
        {"createdAt", "createdBy", "createdByType"},
        {"lastModifiedAt", "lastModifiedBy", "lastModifiedByType"}};
    const struct ks_vault_change *changes[2] = {&v->created, &v->modified};
    if (v->created.at == 0 && v->modified.at == 0)
        return 1;
    cJSON *sd = cJSON_AddObjectToObject(o, "systemData");
    int ok = sd != NULL;
    for (size_t i = 0; ok && i < 2; i++) {
        const struct ks_vault_change *c = changes[i];
        char when[32];
        if (c->at == 0)
            continue;
        kv_str_utc(when, c->at);
        ok = cJSON_AddStringToObject(sd, names[i][0], when) &&
             (c->by[0] == '\0' || cJSON_AddStringToObject(sd, names[i][1], c->by)) &&
             (c->by_type[0] == '\0' || cJSON_AddStringToObject(sd, names[i][2], c->by_type));
    }
    return ok;
}

/* This request's change to a vault, for its systemData: now, by the caller. */
void srv_arm_caller_change(const struct srv_req *req, struct ks_vault_change *out)
{
    const struct pol_identity *id = pol_find_identity(req->srv->pol, req->who.appid, NULL, NULL);
    memset(out, 0, sizeof(*out));
    out->at = ks_now();
    snprintf(out->by, sizeof(out->by), "%s", req->who.appid);
    if (id != NULL)
        snprintf(out->by_type, sizeof(out->by_type), "%s",
                 pol_identity_is_app(id) ? "Application" : "ManagedIdentity");
}

/* A vault: its generic resource with the sku and the properties. Its tags and network
 * rule lists are v->tags and v->net_rules when set (a write's, as written), else read:
 * a vault deleted since @p v was read has none to read, and gives NULL. */
static cJSON *vault_json(struct srv_req *req, const struct ks_vault *v)
{
    char dns[64], uri[128];
    srv_vault_dns(req, dns, sizeof(dns));
    snprintf(uri, sizeof(uri), "https://%s.%s/", v->name, dns);
    cJSON *o = vault_resource_json(req, v);
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    cJSON *policies = props ? policies_json(req, v->name) : NULL;
    if (policies != NULL && !cJSON_AddItemToObject(props, "accessPolicies", policies)) {
        cJSON_Delete(policies);
        policies = NULL;
    }
    int ok = policies && srv_vault_props_json(req, props, v) &&
             cJSON_AddStringToObject(props, "tenantId", v->tenant_id) &&
             cJSON_AddStringToObject(props, "vaultUri", uri) &&
             cJSON_AddBoolToObject(props, "enableSoftDelete", v->soft_delete) &&
             cJSON_AddNumberToObject(props, "softDeleteRetentionInDays", v->retention_days) &&
             cJSON_AddBoolToObject(props, "enableRbacAuthorization", v->rbac) &&
             cJSON_AddStringToObject(props, "provisioningState", "Succeeded");
    if (ok && v->purge_protection)
        ok = cJSON_AddBoolToObject(props, "enablePurgeProtection", 1) != NULL;
    if (ok)
        ok = srv_arm_add_system_data(o, v);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Parse one accessPolicies[] entry of a request. */
static enum kv_status parse_policy(const cJSON *o, const char *vault, const char *tenant,
                                   struct pol_access_policy *p, char *why, size_t cap)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->vault, sizeof(p->vault), "%s", vault);
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "tenantId"));
    const char *oid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "objectId"));
    const char *app = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "applicationId"));
    const cJSON *perms = cJSON_GetObjectItemCaseSensitive(o, "permissions");
    if (!cJSON_IsObject(o) || oid == NULL || oid[0] == '\0' || strlen(oid) >= POL_ID_MAX ||
        (t != NULL && strlen(t) >= POL_ID_MAX) || (app != NULL && strlen(app) >= POL_ID_MAX) ||
        !cJSON_IsObject(perms)) {
        snprintf(why, cap, "An access policy needs objectId and permissions.");
        return KV_ERR_ARM_BAD_REQUEST;
    }
    snprintf(p->tenant_id, sizeof(p->tenant_id), "%s", t ? t : tenant);
    snprintf(p->object_id, sizeof(p->object_id), "%s", oid);
    snprintf(p->application_id, sizeof(p->application_id), "%s", app ? app : "");
    /* every list kept as given, in its order; kvmock grants from the key list */
    enum pol_list bad;
    const char *name;
    if (!srv_policy_lists_parse(perms, 1, p, &bad, &name)) {
        if (name == NULL)
            snprintf(why, cap, "permissions.%s must be an array.", pol_list_name(bad));
        else
            snprintf(why, cap, "Invalid %s permission '%.64s'.", pol_list_noun(bad), name);
        return KV_ERR_ARM_BAD_REQUEST;
    }
    return KV_OK;
}

/* ---- vaults --------------------------------------------------------------------------------- */

/* PUT .../vaults/V with properties.createMode "recover": the deleted vault comes back
 * as it was, with its keys and access policies; the other properties are ignored. */
static void vault_recover(struct srv_req *req, const char *name)
{
    req->operation = "VaultRecover";
    struct ks_vault v;
    if (srv_arm_recover(req, name, 0, NULL, &v))
        srv_send_json(req, 200, vault_json(req, &v));
}

int srv_arm_recover(struct srv_req *req, const char *name, int hsm, const char *none,
                    struct ks_vault *out)
{
    enum kv_status st = ks_deleted_vault_recover(req->srv->ks, name, hsm, out);
    if (st == KV_ERR_VAULT_NOT_FOUND || st == KV_ERR_ARM_CONFLICT) {
        srv_send_error(req, KV_ERR_ARM_NO_DELETED_VAULT, none);
        return 0;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return 0;
    }
    kv_log(KV_LOG_INFO, "%s '%s' recovered by %s", hsm ? "managed HSM" : "vault", name,
           req->who.oid);
    return 1;
}

static void vault_not_found(struct srv_req *req, const char *name)
{
    srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                    "The Resource 'Microsoft.KeyVault/vaults/%.64s' under resource group "
                    "'%.90s' was not found.",
                    name, req->seg[3]);
}

/* A PUT body's "location", which every PUT of a resource names, as ARM requires, in
 * @p out as Resource Manager answers it (kv_str_region(): "West Europe" is "westeurope").
 * 0 when it answered 400. */
int srv_arm_put_location(struct srv_req *req, char out[KS_LOCATION_MAX + 1])
{
    const cJSON *loc = cJSON_GetObjectItemCaseSensitive(req->body, "location");
    const char *location = cJSON_GetStringValue(loc);
    if (loc == NULL || cJSON_IsNull(loc)) {
        srv_send_error(req, KV_ERR_ARM_NO_LOCATION, NULL);
        return 0;
    }
    if (location != NULL && strlen(location) <= KS_LOCATION_MAX)
        kv_str_region(location, out, KS_LOCATION_MAX + 1);
    if (location == NULL || strlen(location) > KS_LOCATION_MAX || out[0] == '\0') {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "The 'location' must be a region's name of at most 64 characters.");
        return 0;
    }
    return 1;
}

/* Whether @p name is one Azure gives a new vault: 3-24 letters, digits and dashes, a letter
 * first, a letter or digit last, no two dashes in a row (letters of either case). */
int srv_arm_name_valid(const char *name)
{
    size_t n = strlen(name);
    if (n < 3 || n > KS_VAULT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        int digit = c >= '0' && c <= '9';
        if (!(letter || digit || c == '-') || (i == 0 && !letter) ||
            (i == n - 1 && c == '-') || (c == '-' && name[i + 1] == '-'))
            return 0;
    }
    return 1;
}

/* Answer 400 VaultNameNotValid for @p name, with Azure's message. */
static void vault_name_not_valid(struct srv_req *req, const char *name)
{
    srv_send_errorf(req, KV_ERR_ARM_VAULT_NAME,
                    "The vault name '%.64s' is invalid. %s Follow this link for more "
                    "information: https://go.microsoft.com/fwlink/?linkid=2147742",
                    name, kv_status_info(KV_ERR_ARM_VAULT_NAME)->message);
}

int srv_arm_body_ok(struct srv_req *req, int patch, char location[KS_LOCATION_MAX + 1])
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    location[0] = '\0';
    if (!patch && !srv_arm_put_location(req, location))
        return 0;
    if (patch ? props != NULL && !cJSON_IsNull(props) && !cJSON_IsObject(props)
              : !cJSON_IsObject(props)) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       patch ? "The 'properties' must be an object."
                             : "The 'properties' object is required.");
        return 0;
    }
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(props, "createMode");
    if (mode != NULL && !cJSON_IsNull(mode) &&
        (!cJSON_IsString(mode) || (strcasecmp(mode->valuestring, "default") != 0 &&
                                   strcasecmp(mode->valuestring, "recover") != 0))) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "properties.createMode must be 'default' or 'recover'.");
        return 0;
    }
    return 1;
}

int srv_arm_resource_fill(struct srv_req *req, int patch, const struct ks_vault *old,
                          const char *name, const char *group, const char *location,
                          struct ks_vault *v, struct ks_tags *tags)
{
    const cJSON *tags_in = cJSON_GetObjectItemCaseSensitive(req->body, "tags");
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    memset(tags, 0, sizeof(*tags));
    if (tags_in != NULL && !cJSON_IsNull(tags_in)) {
        if (!srv_arm_parse_tags(req, tags_in, tags))
            return 0;
        v->tags = tags;
    } else if (!patch) {
        v->tags = tags; /* none */
    }
    snprintf(v->name, sizeof(v->name), "%s", name);
    srv_arm_caller_change(req, &v->modified);
    v->created = old != NULL ? old->created : v->modified; /* as the write keeps it */
    /* an existing one keeps its group, which its answer names */
    snprintf(v->group, sizeof(v->group), "%s", old != NULL ? old->group : group);
    /* it stays where it was made (one of the configuration file has no place yet) */
    snprintf(v->location, sizeof(v->location), "%s",
             old != NULL && (patch || old->location[0] != '\0') ? old->location : location);
    const char *tenant = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "tenantId"));
    snprintf(v->tenant_id, sizeof(v->tenant_id), "%s",
             tenant && strlen(tenant) < sizeof(v->tenant_id) ? tenant
             : old != NULL                                   ? old->tenant_id
                                                             : pol_tenant(req->srv->pol));
    return 1;
}

enum kv_status srv_arm_write(struct srv_req *req, struct ks_vault *v, int exists,
                             const struct pol_acl_change *chg, struct srv_arm_kept *kept)
{
    enum kv_status st = KV_OK;
    memset(kept, 0, sizeof(*kept));
    /* The answer shows it as written, not as read again after the write (a deletion right
     * after it would leave nothing to read): the tags and network rule lists the body
     * gives, else its own as they are now, which the write keeps. */
    if (st == KV_OK && exists && v->tags == NULL)
        st = ks_vault_tags(req->srv->ks, v->name, 0, &kept->tags);
    if (st == KV_OK && exists && v->net_acls && v->net_rules == NULL)
        st = ks_vault_net_rules(req->srv->ks, v->name, &kept->rules);
    /* An update applies only while it is live, checked as it writes: a deletion committed
     * since it was read is not undone. A new one's group comes into being with it, in its
     * transaction, if need be (kvmock does not ask for the group first, as Azure does), so a
     * refused one leaves none. */
    struct ks_group made;
    int created = 0;
    if (st == KV_OK && exists)
        st = pol_vault_put(req->srv->pol, v, KS_VAULT_UPDATE, chg);
    else if (st == KV_OK)
        st = pol_vault_create_in_group(req->srv->pol, v, chg, &made, &created);
    if (st == KV_OK && !exists)
        snprintf(v->group, sizeof(v->group), "%s", made.name);
    if (st == KV_OK && created)
        kv_log(KV_LOG_INFO, "resource group '%s' created for %s '%s' by %s", made.name,
               v->hsm ? "managed HSM" : "vault", v->name, req->who.oid);
    if (st == KV_OK && v->tags == NULL)
        v->tags = &kept->tags;
    if (st == KV_OK && v->net_acls && v->net_rules == NULL)
        v->net_rules = &kept->rules;
    return st;
}

void srv_arm_kept_free(struct srv_arm_kept *kept)
{
    ks_tags_clear(&kept->tags);
    ks_net_rules_clear(&kept->rules);
}

/* The answer to a write that would turn purge protection off. */
static const char purge_protection_stays[] =
    "The property \"enablePurgeProtection\" cannot be set to false. Enabling the purge "
    "protection for a vault is an irreversible action.";

/* PUT (create or replace) or, with @p patch, PATCH (change what the body names) a vault.
 * A PUT needs a location and properties, and its tags replace the vault's (none given,
 * none kept), as Resource Manager replaces a whole resource; a PATCH changes only what
 * it names, of a vault that exists. */
static void vault_put(struct srv_req *req, const char *path_name, int patch)
{
    char why[256] = "", name[KS_VAULT_NAME_MAX + 1];
    enum kv_status st = srv_read_json_body(req);
    if (st != KV_OK) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The request body is not a JSON object.");
        return;
    }
    /* names match in any case, and vaults keep theirs in lowercase, as their hosts have it */
    if (ks_vault_lower(path_name, name) == 0 || !ks_vault_name_valid(name)) {
        if (patch)
            vault_not_found(req, path_name);
        else
            vault_name_not_valid(req, path_name);
        return;
    }
    char location[KS_LOCATION_MAX + 1];
    if (!srv_arm_body_ok(req, patch, location))
        return;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(props, "createMode");
    if (!patch && cJSON_IsString(mode) && strcasecmp(mode->valuestring, "recover") == 0) {
        vault_recover(req, name);
        return;
    }
    struct ks_vault old, v = {0};
    int exists = ks_vault_get(req->srv->ks, name, &old) == KV_OK;
    const char *group = srv_arm_path_group(req);
    if ((patch && !exists) || (patch && !srv_in_path_group(req, &old))) {
        vault_not_found(req, name);
        return;
    }
    if (!exists && !srv_arm_name_valid(path_name)) {
        vault_name_not_valid(req, path_name);
        return;
    }
    if (exists && !srv_in_path_group(req, &old)) {
        srv_send_errorf(req, KV_ERR_ARM_VAULT_EXISTS,
                        "The vault name '%.64s' is already in use. Vault names are globally "
                        "unique so it is possible that the name is already taken.", name);
        return;
    }
    if (!exists && !ks_group_name_valid(group)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST, "The resource group name '%.100s' is invalid.",
                        group ? group : "");
        return;
    }
    struct ks_tags tags = {0};
    if (!srv_arm_resource_fill(req, patch, exists ? &old : NULL, name, group, location, &v, &tags))
        return;
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(props, "enableSoftDelete");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(props, "softDeleteRetentionInDays");
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(props, "enablePurgeProtection");
    const cJSON *rbac = cJSON_GetObjectItemCaseSensitive(props, "enableRbacAuthorization");
    v.soft_delete =
        sd == NULL || cJSON_IsNull(sd) ? (exists ? old.soft_delete : 1) : cJSON_IsTrue(sd);
    v.retention_days = cJSON_IsNumber(days) ? days->valueint : (exists ? old.retention_days : 90);
    v.purge_protection = cJSON_IsBool(pp) ? cJSON_IsTrue(pp) : (exists && old.purge_protection);
    v.rbac = cJSON_IsBool(rbac) ? cJSON_IsTrue(rbac) : (exists && old.rbac);
    if (exists) /* what the body does not name stays as it was */
        ks_vault_copy_arm_props(&v, &old);
    struct ks_net_rules rules = {0};
    const char *bad = NULL;
    if ((days != NULL && !cJSON_IsNull(days) && !cJSON_IsNumber(days)) || v.retention_days < 7 ||
        v.retention_days > 90)
        bad = "softDeleteRetentionInDays must be an integer between 7 and 90.";
    else if (v.purge_protection && !v.soft_delete)
        bad = "enablePurgeProtection requires enableSoftDelete.";
    /* as in Azure, the property takes only true: false is refused even for a new vault,
     * and one left out keeps what the vault has */
    else if (cJSON_IsFalse(pp))
        bad = purge_protection_stays;
    /* as in Azure, soft delete once on stays on, with the retention it was given */
    else if (exists && old.soft_delete && !v.soft_delete)
        bad = "The property \"enableSoftDelete\" cannot be set to false. Enabling the soft "
              "delete for a vault is an irreversible action.";
    else if (exists && old.soft_delete && v.retention_days != old.retention_days)
        bad = "The property \"softDeleteRetentionInDays\" has been set already and it cannot "
              "be modified.";
    else
        bad = srv_vault_props_parse(props, &v, &rules, why, sizeof(why));
    /* The access policies in the body replace the vault's, all checked first. */
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(props, "accessPolicies");
    if (bad == NULL && list != NULL && !cJSON_IsNull(list) && !cJSON_IsArray(list))
        bad = "accessPolicies must be an array.";
    size_t n = cJSON_IsArray(list) ? (size_t)cJSON_GetArraySize(list) : 0;
    struct pol_access_policy *policies = bad == NULL && n ? calloc(n, sizeof(*policies)) : NULL;
    if (bad != NULL || (n && policies == NULL)) {
        free(tags.names);
        free(tags.values);
        ks_net_rules_clear(&rules);
        if (bad != NULL && bad != srv_vault_props_nomem)
            srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, bad);
        else
            srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    size_t i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        st = parse_policy(o, name, v.tenant_id, &policies[i++], why, sizeof(why));
        if (st != KV_OK)
            break;
    }
    /* The vault and its access policies are one write. A new vault starts with no access
     * policies but the body's, whatever a purged namesake left, and no role assignments
     * (a store of an older kvmock kept a deleted vault's). */
    struct pol_acl_change chg = {.vault = v.name,
                                 .clear_policies = cJSON_IsArray(list) || !exists,
                                 .clear_roles = !exists,
                                 .policies = policies,
                                 .n_policies = n};
    struct srv_arm_kept kept = {0};
    if (st == KV_OK)
        st = srv_arm_write(req, &v, exists, &chg, &kept);
    free(policies);
    if (st == KV_ERR_ARM_VAULT_EXISTS) { /* another request created it meanwhile */
        srv_send_errorf(req, st,
                        "The vault name '%.64s' is already in use: another request created it "
                        "while this one ran.",
                        name);
    } else if (st == KV_ERR_VAULT_NOT_FOUND) { /* deleted meanwhile: nothing was written */
        vault_not_found(req, name);
    } else if (st == KV_ERR_PURGE_PROTECTED) { /* another request turned it on meanwhile */
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, purge_protection_stays);
    } else if (st != KV_OK) {
        int told =
            st == KV_ERR_ARM_BAD_REQUEST || st == KV_ERR_VAULT_DELETED || st == KV_ERR_STORE_FULL;
        srv_send_error(req, told ? st : KV_ERR_INTERNAL, why[0] ? why : NULL);
    } else {
        kv_log(KV_LOG_INFO, "vault '%s' %s by %s", name, exists ? "updated" : "created",
               req->who.oid);
        srv_send_json(req, exists ? 200 : 201, vault_json(req, &v));
    }
    free(tags.names);
    free(tags.values);
    srv_arm_kept_free(&kept);
    ks_net_rules_clear(&rules);
}

static void vault_get(struct srv_req *req, const char *name)
{
    struct ks_vault v;
    if (ks_vault_get(req->srv->ks, name, &v) != KV_OK || !srv_in_path_group(req, &v)) {
        vault_not_found(req, name);
        return;
    }
    cJSON *doc = vault_json(req, &v);
    /* its tags and rules are read after it: a vault deleted in between has none */
    if (doc == NULL && ks_vault_get(req->srv->ks, name, &v) == KV_ERR_VAULT_NOT_FOUND)
        vault_not_found(req, name);
    else
        srv_send_json(req, 200, doc);
}

enum kv_status srv_arm_delete(struct srv_req *req, const struct ks_vault *v)
{
    char id[1024];
    if (v->hsm)
        srv_hsm_arm_id(req, v, id, sizeof(id));
    else
        vault_id(req, v, id, sizeof(id));
    struct ks_deleted_vault d;
    /* A vault removed at once takes its access policies along; a deleted one
     * keeps them for its recovery (they go when it is purged). The role assignments at
     * its scope go either way, as in Azure: recovery does not bring them back. */
    enum kv_status st = pol_vault_delete(req->srv->pol, v->name, id, &d);
    if (st == KV_OK)
        kv_log(KV_LOG_INFO, "%s '%s' %s by %s", v->hsm ? "managed HSM" : "vault", v->name,
               d.deleted_date ? "soft-deleted" : "deleted", req->who.oid);
    return st;
}

static void vault_delete(struct srv_req *req, const char *name)
{
    struct ks_vault v;
    enum kv_status st = ks_vault_get(req->srv->ks, name, &v);
    if (st == KV_OK && !srv_in_path_group(req, &v))
        st = KV_ERR_VAULT_NOT_FOUND; /* not in this group: nothing to delete here */
    if (st == KV_OK)
        st = srv_arm_delete(req, &v);
    if (st == KV_ERR_VAULT_NOT_FOUND) {
        srv_send_empty(req, 204);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st == KV_ERR_BAD_PARAM ? KV_ERR_ARM_BAD_REQUEST : st, NULL);
        return;
    }
    srv_send_empty(req, 200);
}

void srv_arm_next_link(const struct srv_req *req, const char *token, char *out, size_t cap)
{
    char base[SRV_HOST_MAX + 16];
    srv_base_url(req, base, sizeof(base));
    int len = snprintf(out, cap, "%s%s?", base, req->ri->local_uri_raw);
    const char *q = req->ri->query_string ? req->ri->query_string : "";
    while (*q && len > 0 && (size_t)len < cap) {
        const char *amp = strchr(q, '&');
        size_t n = amp ? (size_t)(amp - q) : strlen(q);
        if (strncmp(q, "$skiptoken=", 11) != 0 && strncasecmp(q, "%24skiptoken=", 13) != 0)
            len += snprintf(out + len, cap - (size_t)len, "%.*s&", (int)n, q);
        q += n + (amp != NULL);
    }
    if (len > 0 && (size_t)len < cap)
        snprintf(out + len, cap - (size_t)len, "%%24skiptoken=%s", token);
}

/* The vaults, as vaults or as generic resources (with or instead of the managed HSMs, as
 * @p what says): of the path's group, or of the subscription. Pages of $top (at most and by
 * default 256), in name order: a group's page reads on past other groups' vaults until it
 * is full (only the last page may hold fewer, even none when the vaults after the previous
 * page are all other groups'). */
static void vault_list(struct srv_req *req, enum listing what)
{
    const char *top = srv_query_get(req, "$top"), *skip = srv_query_get(req, "$skiptoken");
    long max = 256;
    if (top != NULL) {
        char *end = NULL;
        max = strtol(top, &end, 10);
        if (end == top || *end != '\0' || max < 1) {
            srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "$top must be a positive integer.");
            return;
        }
        max = max < 256 ? max : 256;
    }
    if (skip != NULL && !ks_vault_name_valid(skip)) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The $skiptoken is not valid.");
        return;
    }
    char(*names)[KS_VAULT_NAME_MAX + 1] = calloc((size_t)max, sizeof(*names));
    cJSON *doc = names ? cJSON_CreateObject() : NULL;
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    char after[KS_VAULT_NAME_MAX + 1], token[KS_VAULT_NAME_MAX + 1] = "";
    snprintf(after, sizeof(after), "%s", skip != NULL ? skip : "");
    size_t listed = 0;
    for (int done = value == NULL; !done;) {
        size_t n = ks_vault_list_from(req->srv->ks, after, names, (size_t)max);
        size_t take = n < (size_t)max ? n : (size_t)max;
        for (size_t i = 0; i < take && !done; i++) {
            struct ks_vault v;
            if (ks_vault_get(req->srv->ks, names[i], &v) != KV_OK ||
                !listed_in_path_group(req, &v, what))
                continue;
            cJSON *item = what != LIST_VAULTS ? vault_resource_json(req, &v) : vault_json(req, &v);
            if (item != NULL)
                cJSON_AddItemToArray(value, item);
            if (++listed == (size_t)max) { /* full: the next page starts after this one */
                if (i + 1 < n)
                    snprintf(token, sizeof(token), "%s", names[i]);
                done = 1;
            }
        }
        if (!done && n > take)
            snprintf(after, sizeof(after), "%s", names[take - 1]);
        else
            done = 1;
    }
    srv_arm_send_page(req, doc, value != NULL, token[0] != '\0' ? token : NULL);
    free(names);
}

/* PUT .../accessPolicies/{add|replace|remove} */
static void access_policies(struct srv_req *req, const char *name, const char *kind)
{
    char why[256] = "";
    struct ks_vault v;
    if (ks_vault_get(req->srv->ks, name, &v) != KV_OK || !srv_in_path_group(req, &v)) {
        srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                        "The Resource 'Microsoft.KeyVault/vaults/%.64s' was not found.", name);
        return;
    }
    int add = strcasecmp(kind, "add") == 0, replace = strcasecmp(kind, "replace") == 0;
    if (!add && !replace && strcasecmp(kind, "remove") != 0) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "The operation kind must be add, replace or remove.");
        return;
    }
    enum kv_status st = srv_read_json_body(req);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(req->body, "properties"), "accessPolicies");
    if (st != KV_OK || !cJSON_IsArray(list)) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "properties.accessPolicies is required.");
        return;
    }
    /* every entry is checked before anything changes, and the change is one write */
    size_t n = (size_t)cJSON_GetArraySize(list);
    struct pol_access_policy *given = n ? calloc(n, sizeof(*given)) : NULL;
    if (n && given == NULL) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    size_t i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        st = parse_policy(o, name, v.tenant_id, &given[i++], why, sizeof(why));
        if (st != KV_OK) {
            free(given);
            srv_send_error(req, st, why);
            return;
        }
    }
    struct pol_acl_change chg = {.vault = v.name,
                                 .policies = given,
                                 .n_policies = n,
                                 .kind = add       ? POL_UPDATE_ADD
                                         : replace ? POL_UPDATE_REPLACE
                                                   : POL_UPDATE_REMOVE};
    st = pol_acl_apply(req->srv->pol, &chg);
    free(given);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "vault '%s' access policies: %s by %s", name, kind, req->who.oid);
    /* Azure's answer names no operation kind: its id ends in ".../accessPolicies/" and it
     * has no name (the REST specification's Vaults_UpdateAccessPolicy example) */
    char id[1100];
    vault_id(req, &v, id, sizeof(id) - 40);
    size_t len = strlen(id);
    snprintf(id + len, sizeof(id) - len, "/accessPolicies/");
    cJSON *doc = cJSON_CreateObject();
    cJSON *props = doc ? cJSON_AddObjectToObject(doc, "properties") : NULL;
    cJSON *policies = props ? policies_json(req, name) : NULL;
    if (policies == NULL || !cJSON_AddStringToObject(doc, "id", id) ||
        !cJSON_AddStringToObject(doc, "type", "Microsoft.KeyVault/vaults/accessPolicies") ||
        !cJSON_AddItemToObject(props, "accessPolicies", policies)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

static int seg_is(const struct srv_req *req, size_t i, const char *want);

/* .../{vaults|managedHSMs}/V/keys[/K[/versions[/VER]]]: the path's shape, and the vault or
 * HSM, checked here; mgmt_keys.c does the rest. */
static void vault_keys(struct srv_req *req, int hsm)
{
    size_t n = req->nseg;
    int shape = seg_is(req, 2, "resourceGroups") && seg_is(req, 4, "providers") &&
                seg_is(req, 5, "Microsoft.KeyVault") &&
                seg_is(req, 6, hsm ? "managedHSMs" : "vaults") &&
                (n == 9 || n == 10 || ((n == 11 || n == 12) && seg_is(req, 10, "versions")));
    if (!shape) {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
        return;
    }
    struct ks_vault v;
    if (ks_vault_get(req->srv->ks, req->seg[7], &v) != KV_OK ||
        !(hsm ? srv_hsm_in_path_group(req, &v) : srv_in_path_group(req, &v))) {
        if (hsm)
            srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                            "The Resource 'Microsoft.KeyVault/managedHSMs/%.64s' under resource "
                            "group '%.90s' was not found.",
                            req->seg[7], req->seg[3]);
        else
            vault_not_found(req, req->seg[7]);
        return;
    }
    char id[1024];
    if (hsm)
        srv_hsm_arm_id(req, &v, id, sizeof(id));
    else
        vault_id(req, &v, id, sizeof(id));
    srv_mgmt_vault_keys(req, &v, id, n >= 10 ? req->seg[9] : NULL, n == 12 ? req->seg[11] : NULL,
                        n >= 11);
}

/* ---- deleted vaults ---------------------------------------------------------------------- */

/* A DeletedVault: id, name, type and properties {vaultId, location, deletionDate,
 * scheduledPurgeDate, tags, purgeProtectionEnabled}; a DeletedManagedHsm's properties are
 * {mhsmId, location, deletionDate, scheduledPurgeDate, purgeProtectionEnabled, tags}, as the
 * REST specification's examples order them. @p location stands in for one made without one. */
static cJSON *deleted_json(struct srv_req *req, const struct ks_deleted_vault *d,
                           const char *location)
{
    int hsm = d->vault.hsm;
    if (d->vault.location[0] != '\0')
        location = d->vault.location; /* where it was made, whatever the path says */
    char id[1024], when[32], purge[32];
    snprintf(id, sizeof(id), "/subscriptions/%s/providers/Microsoft.KeyVault/locations/%.64s/%s/%s",
             req->seg[1], location, hsm ? "deletedManagedHSMs" : "deletedVaults", d->vault.name);
    kv_str_utc(when, d->deleted_date);
    kv_str_utc(purge, d->scheduled_purge);
    cJSON *o = cJSON_CreateObject(), *props = NULL;
    int ok = o != NULL && cJSON_AddStringToObject(o, "id", id) &&
             cJSON_AddStringToObject(o, "name", d->vault.name) &&
             cJSON_AddStringToObject(o, "type",
                                     hsm ? "Microsoft.KeyVault/deletedManagedHSMs"
                                         : "Microsoft.KeyVault/deletedVaults") &&
             (props = cJSON_AddObjectToObject(o, "properties")) != NULL &&
             cJSON_AddStringToObject(props, hsm ? "mhsmId" : "vaultId", d->resource_id) &&
             cJSON_AddStringToObject(props, "location", location) &&
             cJSON_AddStringToObject(props, "deletionDate", when) &&
             cJSON_AddStringToObject(props, "scheduledPurgeDate", purge);
    if (ok && hsm)
        ok = cJSON_AddBoolToObject(props, "purgeProtectionEnabled", d->vault.purge_protection) &&
             srv_arm_add_tags(req, props, d->vault.name, 1, NULL);
    else if (ok)
        ok = srv_arm_add_tags(req, props, d->vault.name, 1, NULL) &&
             cJSON_AddBoolToObject(props, "purgeProtectionEnabled", d->vault.purge_protection);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void deleted_not_found(struct srv_req *req, const char *name, int hsm)
{
    srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                    "The Resource 'Microsoft.KeyVault/%s/%.64s' under subscription '%.64s' was "
                    "not found.",
                    hsm ? "deletedManagedHSMs" : "deletedVaults", name, req->seg[1]);
}

/* GET /subscriptions/S/providers/Microsoft.KeyVault/deletedVaults[?$top=N&$skiptoken=T], or
 * (@p hsm) .../deletedManagedHSMs */
static void deleted_list(struct srv_req *req, int hsm)
{
    const char *top = srv_query_get(req, "$top");
    const char *skip = srv_query_get(req, "$skiptoken");
    int max = KS_PAGE_MAX;
    if (top != NULL) {
        char *end = NULL;
        long n = strtol(top, &end, 10);
        if (end == top || *end != '\0' || n < 1) {
            srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "$top must be a positive integer.");
            return;
        }
        max = n < KS_PAGE_MAX ? (int)n : KS_PAGE_MAX;
    }
    struct ks_deleted_vault page[KS_PAGE_MAX];
    size_t n = 0;
    char next[KS_VAULT_NAME_MAX + 1];
    cJSON *value = NULL;
    cJSON *doc = srv_arm_page_begin(
        req, ks_deleted_vault_list(req->srv->ks, hsm, skip, max, page, &n, next), &value);
    if (doc == NULL)
        return;
    int ok = 1;
    for (size_t i = 0; ok && i < n; i++) {
        cJSON *it = deleted_json(req, &page[i], "local");
        ok = it != NULL && cJSON_AddItemToArray(value, it);
        if (!ok)
            cJSON_Delete(it);
    }
    srv_arm_send_page(req, doc, ok, next);
}

/* GET .../locations/L/deletedVaults/V, or (@p hsm) .../deletedManagedHSMs/V */
static void deleted_get(struct srv_req *req, const char *location, const char *name, int hsm)
{
    struct ks_deleted_vault d;
    enum kv_status st = ks_deleted_vault_get(req->srv->ks, name, &d);
    if (st == KV_ERR_VAULT_NOT_FOUND || (st == KV_OK && d.vault.hsm != hsm)) {
        deleted_not_found(req, name, hsm);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    srv_send_json(req, 200, deleted_json(req, &d, location));
}

/* POST .../locations/L/deletedVaults/V/purge, or (@p hsm) .../deletedManagedHSMs/V/purge: a
 * long-running operation in Azure; kvmock purges at once and answers with no body (a
 * vault's 200, an HSM's 202, as the REST specification has them), which the SDK pollers
 * take as done. */
static void deleted_purge(struct srv_req *req, const char *name, int hsm)
{
    enum kv_status st = pol_deleted_vault_purge(req->srv->pol, name, hsm);
    if (st == KV_ERR_VAULT_NOT_FOUND) {
        deleted_not_found(req, name, hsm);
        return;
    }
    if (st == KV_ERR_PURGE_PROTECTED && hsm) {
        srv_send_error(req, KV_ERR_ARM_PURGE_NOT_ALLOWED,
                       "Operation 'DeletedManagedHsmPurge' is not allowed: the managed HSM has "
                       "purge protection, and its scheduled purge date has not come.");
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st == KV_ERR_PURGE_PROTECTED ? KV_ERR_ARM_PURGE_NOT_ALLOWED : st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "deleted %s '%s' purged by %s", hsm ? "managed HSM" : "vault", name,
           req->who.oid);
    srv_send_empty(req, hsm ? 202 : 200);
}

/* /subscriptions/S/providers/Microsoft.KeyVault/deletedVaults and
 * /subscriptions/S/providers/Microsoft.KeyVault/locations/L/deletedVaults/V[/purge] */
/* POST /subscriptions/S/providers/Microsoft.KeyVault/checkNameAvailability
 * {"name": N, "type": "Microsoft.KeyVault/vaults"}, or (@p hsm) .../checkMhsmNameAvailability
 * {"name": N}: whether a vault or managed HSM could take the name. A live or a deleted vault
 * or HSM holds it: in kvmock they share one namespace. */
static void check_name(struct srv_req *req, int hsm)
{
    if (srv_read_json_body(req) != KV_OK) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The request body is not a JSON object.");
        return;
    }
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req->body, "name"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req->body, "type"));
    if (name == NULL ||
        (!hsm && (type == NULL || strcasecmp(type, "Microsoft.KeyVault/vaults") != 0))) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       hsm ? "The body needs the managed HSM's 'name'."
                           : "The body needs a 'name' and the 'type' Microsoft.KeyVault/vaults.");
        return;
    }
    char lname[KS_VAULT_NAME_MAX + 1], message[400] = "";
    const char *reason = NULL;
    struct ks_vault v;
    struct ks_deleted_vault d;
    ks_vault_lower(name, lname); /* names match in any case */
    if (!srv_arm_name_valid(name)) {
        reason = "AccountNameInvalid";
        snprintf(message, sizeof(message), "The %s name '%.64s' is invalid. %s",
                 hsm ? "managed HSM" : "vault", name,
                 hsm ? srv_hsm_name_rules : kv_status_info(KV_ERR_ARM_VAULT_NAME)->message);
    } else if (ks_vault_get(req->srv->ks, lname, &v) == KV_OK ||
               ks_deleted_vault_get(req->srv->ks, lname, &d) == KV_OK) {
        reason = "AlreadyExists";
        snprintf(message, sizeof(message),
                 hsm ? "The name '%s' is already in use, by a managed HSM or a vault, or held by "
                       "a deleted one until it is purged."
                     : "The vault name '%s' is already in use. Vault names are globally unique "
                       "so it is possible that the name is already taken, or held by a deleted "
                       "vault until it is purged.",
                 lname);
    }
    cJSON *doc = cJSON_CreateObject();
    int ok = doc && cJSON_AddBoolToObject(doc, "nameAvailable", reason == NULL);
    if (ok && reason != NULL)
        ok = cJSON_AddStringToObject(doc, "reason", reason) &&
             cJSON_AddStringToObject(doc, "message", message);
    srv_send_json(req, 200, ok ? doc : (cJSON_Delete(doc), NULL));
}

/* .../checkMhsmNameAvailability and .../locations/L/deletedManagedHSMs/N[/purge]; 0 when
 * the path is neither. */
static int deleted_hsms_endpoint(struct srv_req *req, const char *scope)
{
    const char *method = req->ri->request_method;
    if (req->nseg == 5 && seg_is(req, 4, "checkMhsmNameAvailability")) {
        req->operation = "ManagedHsmCheckName";
        if (authorize(req, "Microsoft.KeyVault/checkMhsmNameAvailability/read", scope) != KV_OK ||
            !API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
            return 1;
        if (strcmp(method, "POST") == 0)
            check_name(req, 1);
        else
            srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return 1;
    }
    int purge = req->nseg == 9 && seg_is(req, 8, "purge");
    if (!((req->nseg == 8 || purge) && seg_is(req, 4, "locations") &&
          seg_is(req, 6, "deletedManagedHSMs")))
        return 0;
    snprintf(req->vault, sizeof(req->vault), "%.*s", KS_VAULT_NAME_MAX, req->seg[7]);
    req->hsm = 1; /* audited as the HSM's */
    req->operation = purge ? "ManagedHsmPurge" : "ManagedHsmGetDeleted";
    if (authorize(req,
                  purge ? "Microsoft.KeyVault/locations/deletedManagedHsms/purge/action"
                        : "Microsoft.KeyVault/locations/deletedManagedHsms/read",
                  scope) != KV_OK ||
        !API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
        return 1;
    if (purge && strcmp(method, "POST") == 0)
        deleted_purge(req, req->seg[7], 1);
    else if (!purge && strcmp(method, "GET") == 0)
        deleted_get(req, req->seg[5], req->seg[7], 1);
    else
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    return 1;
}

static void deleted_vaults_endpoint(struct srv_req *req, const char *scope)
{
    const char *method = req->ri->request_method;
    if (deleted_hsms_endpoint(req, scope))
        return;
    if (req->nseg == 5 && seg_is(req, 4, "checkNameAvailability")) {
        req->operation = "VaultCheckName";
        if (authorize(req, "Microsoft.KeyVault/checkNameAvailability/read", scope) != KV_OK ||
            !API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
            return;
        if (strcmp(method, "POST") == 0)
            check_name(req, 0);
        else
            srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    int list = req->nseg == 5 && seg_is(req, 4, "deletedVaults");
    int one = (req->nseg == 8 || req->nseg == 9) && seg_is(req, 4, "locations") &&
              seg_is(req, 6, "deletedVaults") && (req->nseg == 8 || seg_is(req, 8, "purge"));
    if (one)
        snprintf(req->vault, sizeof(req->vault), "%.*s", KS_VAULT_NAME_MAX, req->seg[7]);
    req->operation = list ? "VaultListDeleted" : req->nseg == 9 ? "VaultPurge" : "VaultGetDeleted";
    if (authorize(req,
                  req->nseg == 9 ? "Microsoft.KeyVault/locations/deletedVaults/purge/action"
                                 : "Microsoft.KeyVault/deletedVaults/read",
                  scope) != KV_OK)
        return;
    if (!list && !one) {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
        return;
    }
    if (!API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
        return;
    if (list && strcmp(method, "GET") == 0)
        deleted_list(req, 0);
    else if (req->nseg == 8 && strcmp(method, "GET") == 0)
        deleted_get(req, req->seg[5], req->seg[7], 0);
    else if (req->nseg == 9 && strcmp(method, "POST") == 0)
        deleted_purge(req, req->seg[7], 0);
    else
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
}

/* ---- what the Azure CLI asks of Resource Manager: cloud metadata, subscriptions, tenants ----- */

static const char *const subscription_api_versions[] = {
    "2016-06-01", "2018-06-01", "2019-06-01", "2019-11-01", "2020-01-01",
    "2021-01-01", "2022-01-01", "2022-09-01", "2022-12-01",
};

/* 1.0 (go-autorest's EnvironmentFromURL) and 2015-01-01 answer ARM's first shape (one
 * object); the later versions a list of clouds. */
static const char *const metadata_api_versions[] = {
    "1.0", "2015-01-01", "2018-01-01", "2019-05-01", "2020-06-01", "2022-09-01",
};

/* GET /metadata/endpoints: where this cloud's Resource Manager, sign-in and vaults are
 * (`az cloud register --endpoint-resource-manager`, ARM_CLOUD_METADATA_URL). No token. */
static void cloud_metadata(struct srv_req *req)
{
    if (!API_VERSION_OK(req, metadata_api_versions, "the cloud's metadata (use 2022-09-01)"))
        return;
    char base[SRV_HOST_MAX + 16], dns[64], hsm_dns[64];
    srv_base_url(req, base, sizeof(base) - 1);
    size_t len = strlen(base);
    snprintf(base + len, sizeof(base) - len, "/");
    srv_vault_dns(req, dns, sizeof(dns));
    srv_hsm_dns(req, hsm_dns, sizeof(hsm_dns));
    const char *version = srv_query_get(req, "api-version");
    int first_shape = strcmp(version, "1.0") == 0 || strcmp(version, "2015-01-01") == 0;
    cJSON *cloud = cJSON_CreateObject();
    cJSON *auth = cloud ? cJSON_AddObjectToObject(cloud, "authentication") : NULL;
    cJSON *auds = auth ? cJSON_AddArrayToObject(auth, "audiences") : NULL;
    int ok = auds && cJSON_AddStringToObject(auth, "loginEndpoint", base) &&
             cJSON_AddItemToArray(auds,
                                  cJSON_CreateString("https://management.core.windows.net/")) &&
             cJSON_AddItemToArray(auds, cJSON_CreateString("https://management.azure.com/"));
    if (ok && first_shape) {
        ok = cJSON_AddStringToObject(cloud, "galleryEndpoint", base) &&
             cJSON_AddStringToObject(cloud, "graphEndpoint", "https://graph.windows.net/");
    } else if (ok) {
        cJSON *suffixes = cJSON_AddObjectToObject(cloud, "suffixes");
        ok = suffixes && cJSON_AddStringToObject(cloud, "name", "kvmock") &&
             cJSON_AddStringToObject(cloud, "resourceManager", base) &&
             cJSON_AddStringToObject(cloud, "gallery", base) &&
             cJSON_AddStringToObject(cloud, "graph", "https://graph.windows.net/") &&
             cJSON_AddStringToObject(cloud, "graphAudience", "https://graph.windows.net/") &&
             cJSON_AddStringToObject(cloud, "microsoftGraphResourceId",
                                     "https://graph.microsoft.com/") &&
             cJSON_AddStringToObject(auth, "tenant", "common") &&
             cJSON_AddStringToObject(auth, "identityProvider", "AAD") &&
             cJSON_AddStringToObject(suffixes, "keyVaultDns", dns) &&
             cJSON_AddStringToObject(suffixes, "mhsmDns", hsm_dns);
    }
    cJSON *doc = cloud;
    if (ok && !first_shape) {
        doc = cJSON_CreateArray();
        ok = doc != NULL && cJSON_AddItemToArray(doc, cloud);
        if (!ok)
            cJSON_Delete(doc); /* without the cloud, deleted below */
    }
    if (!ok) {
        cJSON_Delete(cloud);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

static cJSON *subscription_json(const struct srv_req *req)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *policies = o ? cJSON_AddObjectToObject(o, "subscriptionPolicies") : NULL;
    if (policies == NULL ||
        !cJSON_AddStringToObject(o, "id", "/subscriptions/" POL_SUBSCRIPTION) ||
        !cJSON_AddStringToObject(o, "subscriptionId", POL_SUBSCRIPTION) ||
        !cJSON_AddStringToObject(o, "tenantId", pol_tenant(req->srv->pol)) ||
        !cJSON_AddStringToObject(o, "displayName", "kvmock") ||
        !cJSON_AddStringToObject(o, "state", "Enabled") ||
        !cJSON_AddStringToObject(o, "authorizationSource", "RoleBased") ||
        !cJSON_AddArrayToObject(o, "managedByTenants") ||
        !cJSON_AddStringToObject(policies, "locationPlacementId", "Public_2014-09-01") ||
        !cJSON_AddStringToObject(policies, "quotaId", "PayAsYouGo_2014-09-01") ||
        !cJSON_AddStringToObject(policies, "spendingLimit", "Off")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Send {"value": [@p item]}: an empty list when @p want is 0; a failed allocation when
 * @p want is set and @p item is NULL. Takes @p item. */
static void send_list(struct srv_req *req, int want, cJSON *item)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    if (value == NULL || (want && (item == NULL || !cJSON_AddItemToArray(value, item)))) {
        cJSON_Delete(item);
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

/* GET /subscriptions[/{id}] and GET /tenants, with a management token. kvmock has one
 * subscription, in the main tenant, and lists it to the identities that may manage;
 * the others get an empty list, as ARM lists only what a caller has a role on. */
static void subscriptions_and_tenants(struct srv_req *req)
{
    int tenants = seg_is(req, 0, "tenants");
    req->operation = tenants           ? "TenantList"
                     : req->nseg == 1 ? "SubscriptionList"
                                      : "SubscriptionGet";
    if (authenticate(req) != KV_OK)
        return;
    req->policy_match = 1;
    if (strcmp(req->ri->request_method, "GET") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    if (!API_VERSION_OK(req, subscription_api_versions, "Microsoft.Resources (use 2022-12-01)"))
        return;
    if (tenants) {
        char id[POL_ID_MAX + 16];
        snprintf(id, sizeof(id), "/tenants/%s", req->who.tid);
        cJSON *t = cJSON_CreateObject();
        if (t != NULL && (!cJSON_AddStringToObject(t, "id", id) ||
                          !cJSON_AddStringToObject(t, "tenantId", req->who.tid) ||
                          !cJSON_AddStringToObject(t, "tenantCategory", "Home") ||
                          !cJSON_AddStringToObject(t, "displayName", "kvmock") ||
                          !cJSON_AddStringToObject(t, "tenantType", "AAD"))) {
            cJSON_Delete(t);
            t = NULL;
        }
        send_list(req, 1, t);
        return;
    }
    int mine = may_manage(req) && strcasecmp(req->who.tid, pol_tenant(req->srv->pol)) == 0;
    if (req->nseg == 1) {
        send_list(req, mine, mine ? subscription_json(req) : NULL);
    } else if (mine && strcasecmp(req->seg[1], POL_SUBSCRIPTION) == 0) {
        cJSON *o = subscription_json(req);
        if (o == NULL)
            srv_send_error(req, KV_ERR_NOMEM, NULL);
        else
            srv_send_json(req, 200, o);
    } else {
        srv_send_errorf(req, KV_ERR_ARM_NO_SUBSCRIPTION,
                        "The subscription '%.64s' could not be found.", req->seg[1]);
    }
}

static const char *const resources_api_versions[] = {
    "2015-11-01", "2016-09-01", "2019-05-01", "2019-07-01", "2019-10-01", "2020-06-01",
    "2020-10-01", "2021-01-01", "2021-04-01", "2022-09-01", "2023-07-01", "2024-03-01",
    "2024-07-01", "2024-11-01", "2025-04-01",
};

/* GET .../resources[?$filter=resourceType eq 'T']: kvmock's resources are its vaults and
 * managed HSMs.
 * Other filters are refused rather than answered wrongly. The api-version is
 * Microsoft.Resources', or the Key Vault one that @azure/arm-keyvault sends for its
 * vaults.list when its client's api-version is set. */
static void generic_resources(struct srv_req *req)
{
    if (!known(srv_query_get(req, "api-version"), arm_api_versions,
               sizeof(arm_api_versions) / sizeof(arm_api_versions[0])) &&
        !API_VERSION_OK(req, resources_api_versions, "Microsoft.Resources (use 2021-04-01)"))
        return;
    const char *filter = srv_query_get(req, "$filter");
    static const char prefix[] = "resourceType eq '", vaults[] = "Microsoft.KeyVault/vaults",
                      hsms[] = "Microsoft.KeyVault/managedHSMs";
    size_t plen = sizeof(prefix) - 1, flen = filter ? strlen(filter) : 0;
    if (filter == NULL) {
        vault_list(req, LIST_RESOURCES);
        return;
    }
    /* resourceType eq 'T', T without quotes */
    if (flen <= plen || strncasecmp(filter, prefix, plen) != 0 || filter[flen - 1] != '\'' ||
        memchr(filter + plen, '\'', flen - plen - 1) != NULL) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "kvmock filters resources by type only: $filter=resourceType eq '...'.");
        return;
    }
    size_t tlen = flen - plen - 1;
    if (tlen == sizeof(vaults) - 1 && strncasecmp(filter + plen, vaults, tlen) == 0)
        vault_list(req, LIST_RESOURCE_VAULTS);
    else if (tlen == sizeof(hsms) - 1 && strncasecmp(filter + plen, hsms, tlen) == 0)
        vault_list(req, LIST_RESOURCE_HSMS);
    else
        send_list(req, 0, NULL);
}

/* The lists that span a subscription or a resource group: GET .../resources, the vaults
 * of a subscription, and the managed HSMs (and the deleted ones: none). Returns 0 when the
 * path is not one of them. */
static int collection(struct srv_req *req, const char *scope)
{
    size_t n = req->nseg;
    int group = n >= 4 && seg_is(req, 2, "resourceGroups");
    size_t at = group ? 4 : 2; /* where "resources" or "providers" is */
    int resources = n == at + 1 && seg_is(req, at, "resources");
    int kv = n == at + 3 && seg_is(req, at, "providers") &&
             seg_is(req, at + 1, "Microsoft.KeyVault");
    int vaults = kv && !group && seg_is(req, at + 2, "vaults");
    int hsms = kv && (seg_is(req, at + 2, "managedHSMs") ||
                      (!group && seg_is(req, at + 2, "deletedManagedHSMs")));
    if (!resources && !vaults && !hsms)
        return 0;
    int deleted_hsms = hsms && seg_is(req, at + 2, "deletedManagedHSMs");
    req->operation = deleted_hsms ? "ManagedHsmListDeleted"
                     : hsms       ? "ManagedHsmList"
                     : resources  ? "ResourceList"
                                  : "VaultList";
    if (authorize(req,
                  deleted_hsms ? "Microsoft.KeyVault/deletedManagedHsms/read"
                  : hsms       ? "Microsoft.KeyVault/managedHSMs/read"
                  : resources  ? "Microsoft.Resources/subscriptions/resources/read"
                               : "Microsoft.KeyVault/vaults/read",
                  scope) != KV_OK)
        return 1;
    if (strcmp(req->ri->request_method, "GET") != 0)
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    else if (resources)
        generic_resources(req);
    else if (!API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
        ; /* answered */
    else if (deleted_hsms)
        deleted_list(req, 1);
    else if (hsms)
        srv_mgmt_hsm_list(req);
    else
        vault_list(req, LIST_VAULTS);
    return 1;
}

/* ---- resource groups --------------------------------------------------------------------------- */

static cJSON *group_json(const struct srv_req *req, const struct ks_group *g,
                         const struct ks_tags *t)
{
    char id[200];
    snprintf(id, sizeof(id), "/subscriptions/%s/resourceGroups/%s", req->seg[1], g->name);
    cJSON *o = cJSON_CreateObject();
    cJSON *tags = o ? cJSON_AddObjectToObject(o, "tags") : NULL;
    cJSON *props = tags ? cJSON_AddObjectToObject(o, "properties") : NULL;
    int ok = props && cJSON_AddStringToObject(o, "id", id) &&
             cJSON_AddStringToObject(o, "name", g->name) &&
             cJSON_AddStringToObject(o, "type", "Microsoft.Resources/resourceGroups") &&
             cJSON_AddStringToObject(o, "location", g->location) &&
             cJSON_AddStringToObject(props, "provisioningState", "Succeeded");
    for (size_t i = 0; ok && i < t->count; i++)
        ok = cJSON_AddStringToObject(tags, t->names[i], t->values[i]) != NULL;
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

void srv_arm_group_not_found(struct srv_req *req, const char *name)
{
    srv_send_errorf(req, KV_ERR_ARM_NO_GROUP, "Resource group '%.100s' could not be found.", name);
}

cJSON *srv_arm_page_begin(struct srv_req *req, enum kv_status st, cJSON **value)
{
    if (st == KV_ERR_BAD_SKIPTOKEN) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The $skiptoken is not valid.");
        return NULL;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return NULL;
    }
    cJSON *doc = cJSON_CreateObject();
    *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    if (*value == NULL) {
        cJSON_Delete(doc);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return NULL;
    }
    return doc;
}

void srv_arm_send_page(struct srv_req *req, cJSON *doc, int ok, const char *next)
{
    if (ok && next != NULL && next[0] != '\0') {
        char link[2048];
        srv_arm_next_link(req, next, link, sizeof(link)); /* skip tokens are URL-safe */
        ok = cJSON_AddStringToObject(doc, "nextLink", link) != NULL;
    }
    if (!ok) {
        cJSON_Delete(doc);
        doc = NULL; /* answered as out of memory */
    }
    srv_send_json(req, 200, doc);
}

/* Answer group @p name with @p status: 200, or 201 when just created. */
static void group_answer(struct srv_req *req, const char *name, int status)
{
    struct ks_group g;
    struct ks_tags t = {0};
    enum kv_status st = ks_group_get(req->srv->ks, name, &g, &t);
    if (st == KV_ERR_ARM_NO_GROUP)
        srv_arm_group_not_found(req, name);
    else if (st != KV_OK)
        srv_send_error(req, st, NULL);
    else
        srv_send_json(req, status, group_json(req, &g, &t));
    ks_tags_clear(&t);
}

/* PUT (create, or replace the tags) or PATCH (the tags it names) a resource group. */
static void group_put(struct srv_req *req, const char *name, int patch)
{
    if (srv_read_json_body(req) != KV_OK) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The request body is not a JSON object.");
        return;
    }
    struct ks_group g = {0}, old;
    int exists = ks_group_get(req->srv->ks, name, &old, NULL) == KV_OK;
    if (patch && !exists) {
        srv_arm_group_not_found(req, name);
        return;
    }
    char location[KS_LOCATION_MAX + 1];
    if (patch)
        snprintf(location, sizeof(location), "%s", old.location);
    else if (!srv_arm_put_location(req, location))
        return;
    if (!ks_group_name_valid(name)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "Resource group name '%.100s' is invalid: 1-90 letters, digits, '_', '-', "
                        "'.', '(' and ')', not ending in '.'.", name);
        return;
    }
    snprintf(g.name, sizeof(g.name), "%s", name);
    snprintf(g.location, sizeof(g.location), "%s", location);
    const cJSON *tags_in = cJSON_GetObjectItemCaseSensitive(req->body, "tags");
    struct ks_tags tags = {0};
    if (tags_in != NULL && !cJSON_IsNull(tags_in) && !srv_arm_parse_tags(req, tags_in, &tags))
        return;
    if (!patch || (tags_in != NULL && !cJSON_IsNull(tags_in)))
        g.tags = &tags; /* a PUT replaces them: none given, none kept */
    int created = 0;
    enum kv_status st = ks_group_put(req->srv->ks, &g, &created);
    free(tags.names);
    free(tags.values);
    if (st == KV_ERR_ARM_GROUP_LOCATION)
        srv_send_errorf(req, st,
                        "Invalid resource group location '%.64s'. The Resource group already "
                        "exists in location '%.64s'.",
                        location, old.location);
    else if (st != KV_OK)
        srv_send_error(req, st, NULL);
    else
        group_answer(req, name, created ? 201 : 200);
}

/* DELETE a resource group: its vaults and managed HSMs first (each as its DELETE does it),
 * then the group. */
static void group_delete(struct srv_req *req, const char *name)
{
    struct ks_group g;
    enum kv_status st = ks_group_get(req->srv->ks, name, &g, NULL);
    if (st == KV_ERR_ARM_NO_GROUP) {
        srv_arm_group_not_found(req, name);
        return;
    }
    char(*names)[KS_VAULT_NAME_MAX + 1] = st == KV_OK ? calloc(256, sizeof(*names)) : NULL;
    if (st == KV_OK && names == NULL)
        st = KV_ERR_NOMEM;
    /* every vault and HSM, a page of names at a time, after the last name of the page before */
    char after[KS_VAULT_NAME_MAX + 1] = "";
    for (size_t n = 256; st == KV_OK && n == 256;) {
        n = ks_vault_list_from(req->srv->ks, after, names, 256);
        n = n < 256 ? n : 256;
        for (size_t i = 0; st == KV_OK && i < n; i++) {
            struct ks_vault v;
            if (ks_vault_get(req->srv->ks, names[i], &v) == KV_OK &&
                strcasecmp(srv_vault_group(&v), name) == 0)
                st = srv_arm_delete(req, &v);
        }
        if (n > 0)
            snprintf(after, sizeof(after), "%s", names[n - 1]);
    }
    free(names);
    /* the group first, its assignments after: a role PUT that stores one in between finds
     * the group gone and takes it back (mgmt_authz.c) */
    if (st == KV_OK)
        st = ks_group_delete(req->srv->ks, name);
    if (st == KV_OK)
        st = pol_role_remove_group(req->srv->pol, name);
    if (st != KV_OK && st != KV_ERR_ARM_NO_GROUP) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "resource group '%s' deleted by %s", name, req->who.oid);
    srv_send_empty(req, 200);
}

static void group_list(struct srv_req *req)
{
    char(*names)[KS_GROUP_MAX + 1] = calloc(256, sizeof(*names));
    size_t n = names ? ks_group_list(req->srv->ks, names, 256) : 0;
    cJSON *doc = names ? cJSON_CreateObject() : NULL;
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    for (size_t i = 0; value != NULL && i < n && i < 256; i++) {
        struct ks_group g;
        struct ks_tags t = {0};
        if (ks_group_get(req->srv->ks, names[i], &g, &t) == KV_OK) {
            cJSON *item = group_json(req, &g, &t);
            if (item != NULL)
                cJSON_AddItemToArray(value, item);
        }
        ks_tags_clear(&t);
    }
    free(names);
    srv_send_json(req, 200, value ? doc : (cJSON_Delete(doc), NULL));
}

/* /subscriptions/S/resourcegroups[/G]: what `az group` and the resources clients ask for. */
static void groups_endpoint(struct srv_req *req, const char *scope)
{
    const char *method = req->ri->request_method;
    int one = req->nseg == 4, get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    int del = strcmp(method, "DELETE") == 0;
    req->operation = !one ? "ResourceGroupList"
                     : get ? "ResourceGroupGet"
                     : del ? "ResourceGroupDelete"
                           : "ResourceGroupPut";
    if (authorize(req, get ? "Microsoft.Resources/subscriptions/resourceGroups/read"
                     : del ? "Microsoft.Resources/subscriptions/resourceGroups/delete"
                           : "Microsoft.Resources/subscriptions/resourceGroups/write",
                  scope) != KV_OK)
        return;
    if (!API_VERSION_OK(req, resources_api_versions, "Microsoft.Resources (use 2021-04-01)"))
        return;
    const char *name = one ? req->seg[3] : NULL;
    struct ks_group g;
    if (!one && strcmp(method, "GET") == 0 && srv_query_get(req, "$filter") != NULL)
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "kvmock lists resource groups unfiltered.");
    else if (!one && strcmp(method, "GET") == 0)
        group_list(req);
    else if (one && strcmp(method, "GET") == 0)
        group_answer(req, name, 200);
    else if (one && strcmp(method, "HEAD") == 0)
        srv_send_empty(req, ks_group_get(req->srv->ks, name, &g, NULL) == KV_OK ? 204 : 404);
    else if (one && (strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0))
        group_put(req, name, strcmp(method, "PATCH") == 0);
    else if (one && del)
        group_delete(req, name);
    else
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* The raw path up to the segment @p upto (exclusive), joined again. */
static void join(const struct srv_req *req, size_t upto, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < upto && len + 1 < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "/%s", req->seg[i]);
}

static int seg_is(const struct srv_req *req, size_t i, const char *want)
{
    return i < req->nseg && strcasecmp(req->seg[i], want) == 0;
}

int srv_mgmt_endpoint(struct srv_req *req)
{
    /* Clients that join an endpoint ending in "/" with a path or a scope that starts with
     * one send "//subscriptions/...": msrestazure's "/metadata/endpoints", the Go SDK's
     * "/{scope}/providers/...". Resource Manager reads them as one "/". */
    if (req->nseg > 1 && req->seg[0][0] == '\0' &&
        (seg_is(req, 1, "subscriptions") || seg_is(req, 1, "providers") ||
         seg_is(req, 1, "metadata") || seg_is(req, 1, "tenants"))) {
        memmove(&req->seg[0], &req->seg[1], (req->nseg - 1) * sizeof(req->seg[0]));
        req->nseg--;
    }
    /* {scope}/providers/Microsoft.Authorization/roleAssignments[/{id}] and
     * .../roleDefinitions[/{id}] (mgmt_authz.c) */
    for (size_t i = 0; i + 2 < req->nseg; i++) {
        if (!seg_is(req, i, "providers") || !seg_is(req, i + 1, "Microsoft.Authorization"))
            continue; /* every data-plane request passes here: one comparison a segment */
        int defs = seg_is(req, i + 2, "roleDefinitions");
        if (!defs && !seg_is(req, i + 2, "roleAssignments"))
            continue;
        const char *method = req->ri->request_method;
        const char *id = i + 4 == req->nseg ? req->seg[i + 3] : NULL;
        int put = strcmp(method, "PUT") == 0, del = strcmp(method, "DELETE") == 0;
        char scope[1024], action[64];
        join(req, i, scope, sizeof(scope));
        req->operation = defs         ? (id == NULL ? "RoleDefinitionList"
                                         : put      ? "RoleDefinitionPut"
                                         : del      ? "RoleDefinitionDelete"
                                                    : "RoleDefinitionGet")
                         : id == NULL ? "RoleAssignmentList"
                         : put        ? "RoleAssignmentPut"
                         : del        ? "RoleAssignmentDelete"
                                      : "RoleAssignmentGet";
        snprintf(action, sizeof(action), "Microsoft.Authorization/%s/%s",
                 defs ? "roleDefinitions" : "roleAssignments",
                 put ? "write" : del ? "delete" : "read");
        if (authorize(req, action, scope) != KV_OK)
            return 1;
        if (!API_VERSION_OK(req, authz_api_versions, "Microsoft.Authorization (use 2022-04-01)"))
            return 1;
        if (i + 4 < req->nseg) {
            srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
            return 1;
        }
        srv_mgmt_authz(req, scope, defs, id);
        return 1;
    }
    if (req->nseg == 2 && seg_is(req, 0, "metadata") && seg_is(req, 1, "endpoints") &&
        strcmp(req->ri->request_method, "GET") == 0) {
        cloud_metadata(req);
        return 1;
    }
    if ((req->nseg == 1 && seg_is(req, 0, "tenants")) ||
        ((req->nseg == 1 || req->nseg == 2) && seg_is(req, 0, "subscriptions"))) {
        subscriptions_and_tenants(req);
        return 1;
    }
    if (!seg_is(req, 0, "subscriptions"))
        return 0;

    char scope[1024];
    join(req, req->nseg, scope, sizeof(scope));
    const char *method = req->ri->request_method;
    if ((req->nseg == 3 || req->nseg == 4) && seg_is(req, 2, "resourceGroups")) {
        groups_endpoint(req, scope);
        return 1;
    }
    if (collection(req, scope))
        return 1;
    if (req->nseg >= 5 && seg_is(req, 2, "providers") && seg_is(req, 3, "Microsoft.KeyVault")) {
        deleted_vaults_endpoint(req, scope);
        return 1;
    }
    if (req->nseg >= 8)
        snprintf(req->vault, sizeof(req->vault), "%.*s", KS_VAULT_NAME_MAX, req->seg[7]);
    if (req->nseg == 8 && seg_is(req, 2, "resourceGroups") && seg_is(req, 4, "providers") &&
        seg_is(req, 5, "Microsoft.KeyVault") && seg_is(req, 6, "managedHSMs")) {
        int get = strcmp(method, "GET") == 0, del = strcmp(method, "DELETE") == 0;
        req->operation = get                            ? "ManagedHsmGet"
                         : del                          ? "ManagedHsmDelete"
                         : strcmp(method, "PATCH") == 0 ? "ManagedHsmPatch"
                                                        : "ManagedHsmPut";
        req->hsm = 1; /* audited as the HSM's */
        if (authorize(req,
                      get   ? "Microsoft.KeyVault/managedHSMs/read"
                      : del ? "Microsoft.KeyVault/managedHSMs/delete"
                            : "Microsoft.KeyVault/managedHSMs/write",
                      scope) == KV_OK &&
            API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
            srv_mgmt_hsm(req, req->seg[7]);
        return 1;
    }
    int keys = req->nseg >= 9 && seg_is(req, 8, "keys");
    if (keys) {
        int put = strcmp(method, "PUT") == 0, one = req->nseg == 10 || req->nseg == 12;
        int hsm = seg_is(req, 6, "managedHSMs");
        req->hsm = hsm; /* an HSM's are audited as the HSM's */
        req->operation = hsm ? (put   ? "ManagedHsmKeyPut"
                                : one ? "ManagedHsmKeyGet"
                                      : "ManagedHsmKeyList")
                             : (put   ? "VaultKeyPut"
                                : one ? "VaultKeyGet"
                                      : "VaultKeyList");
        if (authorize(req,
                      hsm ? (put ? "Microsoft.KeyVault/managedHSMs/keys/write"
                                 : "Microsoft.KeyVault/managedHSMs/keys/read")
                          : (put ? "Microsoft.KeyVault/vaults/keys/write"
                                 : "Microsoft.KeyVault/vaults/keys/read"),
                      scope) == KV_OK &&
            API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
            vault_keys(req, hsm);
        return 1;
    }
    req->operation = req->nseg == 10                  ? "VaultAccessPolicyUpdate"
                     : req->nseg == 7                 ? "VaultList"
                     : strcmp(method, "PUT") == 0     ? "VaultPut"
                     : strcmp(method, "PATCH") == 0   ? "VaultPatch"
                     : strcmp(method, "DELETE") == 0  ? "VaultDelete"
                                                      : "VaultGet";
    if (authorize(req,
                  strcmp(method, "GET") == 0      ? "Microsoft.KeyVault/vaults/read"
                  : strcmp(method, "DELETE") == 0 ? "Microsoft.KeyVault/vaults/delete"
                                                  : "Microsoft.KeyVault/vaults/write",
                  scope) != KV_OK)
        return 1;
    if (!(req->nseg >= 7 && seg_is(req, 2, "resourceGroups") && seg_is(req, 4, "providers") &&
          seg_is(req, 5, "Microsoft.KeyVault") && seg_is(req, 6, "vaults"))) {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
        return 1;
    }
    if (!API_VERSION_OK(req, arm_api_versions, KEYVAULT_API))
        return 1;
    if (req->nseg == 7 && strcmp(method, "GET") == 0) {
        vault_list(req, LIST_VAULTS);
    } else if (req->nseg == 8 && strcmp(method, "PUT") == 0) {
        vault_put(req, req->seg[7], 0);
    } else if (req->nseg == 8 && strcmp(method, "PATCH") == 0) {
        vault_put(req, req->seg[7], 1);
    } else if (req->nseg == 8 && strcmp(method, "GET") == 0) {
        vault_get(req, req->seg[7]);
    } else if (req->nseg == 8 && strcmp(method, "DELETE") == 0) {
        vault_delete(req, req->seg[7]);
    } else if (req->nseg == 10 && seg_is(req, 8, "accessPolicies") && strcmp(method, "PUT") == 0) {
        access_policies(req, req->seg[7], req->seg[9]);
    } else if (req->nseg == 8 || (req->nseg == 10 && seg_is(req, 8, "accessPolicies"))) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    } else {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
    }
    return 1;
}
