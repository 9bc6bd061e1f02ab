/*
 * Keys on the management plane (Microsoft.KeyVault/vaults/keys and managedHSMs/keys), as
 * ARM templates, Bicep and the management SDKs see them:
 *
 *   PUT  .../vaults/V/keys/K                   create the key if it does not exist
 *   GET  .../vaults/V/keys/K[/versions/VER]    the current version, or one version
 *   GET  .../vaults/V/keys[?$skiptoken=T]      the vault's keys, 25 a page
 *   GET  .../vaults/V/keys/K/versions          a key's versions
 *
 * and the same under .../managedHSMs/H, once the HSM's administrator has set its setting
 * AllowKeyManagementOperationsThroughARM (a Managed HSM does not trust Resource Manager
 * until then). An HSM's key resources have no location, as Azure answers them.
 *
 * A PUT creates the first version of a key that does not exist, and answers an
 * existing key as it is: it never makes a new version nor changes a key, as in
 * Azure. Keys are the data plane's own (the same store, versions and tags); no
 * private material is ever answered. mgmt_api.c routes here after it checked the
 * caller and found the vault. On a vault that uses RBAC, each call also needs the
 * caller's data-plane permission (data_allowed()), as Key Vault grants Resource
 * Manager's calls on the caller's behalf by the caller's role assignments.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

/* The ARM id of the vault @p vault_id's key @p name (and @p version, when not NULL). */
static void key_arm_id(const char *vault_id, const char *name, const char *version, char *out,
                       size_t cap)
{
    if (version != NULL)
        snprintf(out, cap, "%s/keys/%s/versions/%s", vault_id, name, version);
    else
        snprintf(out, cap, "%s/keys/%s", vault_id, name);
}

int srv_key_ops_json(cJSON *o, const struct ks_key *k)
{
    cJSON *arr = cJSON_AddArrayToObject(o, "keyOps");
    unsigned list[KS_OPS_MAX];
    size_t n = ks_keyops_list(k->ops, k->ops_order, list);
    for (size_t i = 0; arr != NULL && i < n; i++) {
        if (!cJSON_AddItemToArray(arr, cJSON_CreateString(ks_keyop_name(list[i]))))
            return 0;
    }
    return arr != NULL;
}

/* A key resource's type, a vault's or an HSM's, of a key or of one version. */
static const char *key_type(const struct ks_vault *v, int as_version)
{
    if (v->hsm)
        return as_version ? "Microsoft.KeyVault/managedHSMs/keys/versions"
                          : "Microsoft.KeyVault/managedHSMs/keys";
    return as_version ? "Microsoft.KeyVault/vaults/keys/versions"
                      : "Microsoft.KeyVault/vaults/keys";
}

/* A Key resource: id, name, type, location (a vault's), tags and properties {attributes, kty,
 * keyOps, keySize or curveName, keyUri, keyUriWithVersion}. @p as_version answers the resource of
 * one version (…/versions/VER); @p brief, the list's short form (attributes, keyUri). */
static cJSON *key_json(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                       const struct ks_key *k, int as_version, int brief)
{
    char id[1400], dns[64], uri[256], uri_version[300];
    key_arm_id(vault_id, k->name, as_version ? k->version : NULL, id, sizeof(id));
    if (v->hsm)
        srv_hsm_dns(req, dns, sizeof(dns));
    else
        srv_vault_dns(req, dns, sizeof(dns));
    snprintf(uri, sizeof(uri), "https://%s.%s/keys/%s", v->name, dns, k->name);
    snprintf(uri_version, sizeof(uri_version), "%s/%s", uri, k->version);
    cJSON *o = cJSON_CreateObject();
    cJSON *tags = o ? cJSON_AddObjectToObject(o, "tags") : NULL;
    cJSON *props = tags ? cJSON_AddObjectToObject(o, "properties") : NULL;
    cJSON *attrs = props ? cJSON_AddObjectToObject(props, "attributes") : NULL;
    int ok = attrs && cJSON_AddStringToObject(o, "id", id) &&
             cJSON_AddStringToObject(o, "name", as_version ? k->version : k->name) &&
             cJSON_AddStringToObject(o, "type", key_type(v, as_version)) &&
             (v->hsm || cJSON_AddStringToObject(o, "location", ks_vault_location(v))) &&
             cJSON_AddBoolToObject(attrs, "enabled", k->attrs.enabled) &&
             cJSON_AddNumberToObject(attrs, "created", (double)k->attrs.created) &&
             cJSON_AddNumberToObject(attrs, "updated", (double)k->attrs.updated) &&
             cJSON_AddStringToObject(attrs, "recoveryLevel", k->recovery_level) &&
             cJSON_AddBoolToObject(attrs, "exportable", k->attrs.exportable) &&
             cJSON_AddStringToObject(props, "keyUri", uri);
    if (ok && k->attrs.nbf != 0)
        ok = cJSON_AddNumberToObject(attrs, "nbf", (double)k->attrs.nbf) != NULL;
    if (ok && k->attrs.exp != 0)
        ok = cJSON_AddNumberToObject(attrs, "exp", (double)k->attrs.exp) != NULL;
    for (size_t i = 0; ok && i < k->tags.count; i++)
        ok = cJSON_AddStringToObject(tags, k->tags.names[i], k->tags.values[i]) != NULL;
    if (ok && !brief) {
        ok = srv_key_ops_json(props, k) &&
             cJSON_AddStringToObject(props, "kty", ks_kty_name(k->kty, k->hsm)) &&
             cJSON_AddStringToObject(props, "keyUriWithVersion", uri_version);
        if (ok && k->kty == KS_KTY_EC)
            ok = cJSON_AddStringToObject(props, "curveName", ks_crv_name(k->pub.crv)) != NULL;
        else if (ok && k->kty == KS_KTY_RSA)
            ok = cJSON_AddNumberToObject(props, "keySize", k->pub.size_bits) != NULL;
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void key_not_found(struct srv_req *req, const struct ks_vault *v, const char *name)
{
    srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND,
                    "The Resource 'Microsoft.KeyVault/%s/%.64s/keys/%.127s' under resource "
                    "group '%.90s' was not found.",
                    v->hsm ? "managedHSMs" : "vaults", v->name, name, req->seg[3]);
}

/* On a vault that uses RBAC, Resource Manager reaches Key Vault on the caller's behalf, and
 * Key Vault grants the call by the caller's data-plane role assignments, as for the caller's
 * own calls: 1 when @p perm is granted on the key @p name (NULL: the vault's keys); else 0,
 * with the refusal sent. Azure answers it 400, with Key Vault's ForbiddenByRbac message naming
 * the caller as KeyVault/ManagementPlane (Azure/bicep#6539, pulumi/pulumi-azure-native#890).
 * A vault under access policies answers 1: there Resource Manager checks only its own roles,
 * which `manage` stands for. */
static int data_allowed(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                        const char *name, enum pol_perm perm)
{
    if (!(v->rbac || v->hsm) || pol_allowed(req->srv->pol, &req->who, v, name, perm) == KV_OK)
        return 1;
    if (v->hsm) { /* the HSM's own refusal, by its local role assignments */
        const char *action = pol_hsm_perm_action(perm);
        srv_send_errorf(req, KV_ERR_HSM_ACCESS_DENIED,
                        "Not authorized to access %s on /keys (Activity ID: %s)",
                        action != NULL ? action : "Microsoft.KeyVault/managedHsm", req->request_id);
        return 0;
    }
    /* the refused data action, on the key or the vault, named as Azure names them */
    char resource[1400], message[2560], region[KS_LOCATION_MAX + 1];
    if (name != NULL)
        key_arm_id(vault_id, name, NULL, resource, sizeof(resource));
    else
        snprintf(resource, sizeof(resource), "%s", vault_id);
    kv_str_lower(resource);
    kv_str_region(ks_vault_location(v), region, sizeof(region));
    snprintf(message, sizeof(message),
             "[ForbiddenByRbac (Forbidden)] Caller is not authorized to perform action on "
             "resource.\r\nIf role assignments, deny assignments or role definitions were changed "
             "recently, please observe propagation time.\r\nCaller: "
             "name=KeyVault/ManagementPlane;appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\n"
             "Action: 'Microsoft.KeyVault/vaults/keys/%s'\r\nResource: '%s'\r\nAssignment: "
             "(not found)\r\nVault: %s;location=%s\r\n",
             req->who.appid, req->who.oid, req->who.tid,
             perm == POL_KEYS_CREATE ? "create/action" : "read", resource, v->name, region);
    srv_send_error(req, KV_ERR_ARM_RBAC_DENIED, message); /* Resource Manager's 400 */
    return 0;
}

/* An int64 member of @p o into @p out (0 when absent); 0 when it is not a whole number. */
static int opt_time(const cJSON *o, const char *name, int64_t *out)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = 0;
    if (n == NULL || cJSON_IsNull(n))
        return 1;
    if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > 253402300799.0 ||
        n->valuedouble != (double)(int64_t)n->valuedouble)
        return 0;
    *out = (int64_t)n->valuedouble;
    return 1;
}

/* The create parameters of a PUT body {properties: {kty, keySize, curveName, keyOps,
 * attributes}, tags}; 0 with @p why set when they are not valid. Tags are borrowed from the
 * body (free tags.names and tags.values only; nothing to free on failure). */
static int parse_create(const cJSON *body, struct ks_create *p, char *why, size_t cap)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(body, "properties");
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(props, "attributes");
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(props, "keySize");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(props, "keyOps");
    const char *kty = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "kty"));
    const cJSON *crv_item = cJSON_GetObjectItemCaseSensitive(props, "curveName");
    const char *crv = cJSON_GetStringValue(crv_item);
    const cJSON *enabled = cJSON_GetObjectItemCaseSensitive(attrs, "enabled");
    memset(p, 0, sizeof(*p));
    p->attrs.enabled = 1;
    if (!cJSON_IsObject(props)) {
        snprintf(why, cap, "The 'properties' object is required.");
        return 0;
    }
    /* a vault keeps RSA and EC keys; oct keys are a managed HSM's */
    if (kty == NULL || ks_kty_parse(kty, &p->kty, &p->hsm) != KV_OK || p->kty == KS_KTY_OCT) {
        snprintf(why, cap, "properties.kty must be one of RSA, RSA-HSM, EC and EC-HSM.");
        return 0;
    }
    if (size != NULL && !cJSON_IsNull(size) &&
        (!cJSON_IsNumber(size) || p->kty != KS_KTY_RSA || size->valuedouble < 0 ||
         size->valuedouble > 65536)) {
        snprintf(why, cap, "properties.keySize is an RSA key's size in bits.");
        return 0;
    }
    p->size_bits = cJSON_IsNumber(size) ? size->valueint : 0;
    if (crv_item != NULL && !cJSON_IsNull(crv_item) &&
        (crv == NULL || p->kty != KS_KTY_EC || ks_crv_parse(crv, &p->crv) != KV_OK)) {
        snprintf(why, cap, "properties.curveName is an EC key's curve: P-256, P-256K, P-384 or "
                           "P-521.");
        return 0;
    }
    if (ops != NULL && !cJSON_IsNull(ops)) {
        const cJSON *op;
        if (!cJSON_IsArray(ops)) {
            snprintf(why, cap, "properties.keyOps must be an array.");
            return 0;
        }
        p->ops_set = 1;
        cJSON_ArrayForEach(op, ops)
        {
            unsigned bit = 0;
            if (!cJSON_IsString(op) || ks_keyop_parse(op->valuestring, &bit) != KV_OK) {
                snprintf(why, cap, "properties.keyOps: '%.40s' is not a key operation.",
                         cJSON_IsString(op) ? op->valuestring : "?");
                return 0;
            }
            ks_keyops_add(&p->ops, &p->ops_order, bit); /* in order, each once */
        }
    }
    if ((attrs != NULL && !cJSON_IsNull(attrs) && !cJSON_IsObject(attrs)) ||
        (enabled != NULL && !cJSON_IsNull(enabled) && !cJSON_IsBool(enabled)) ||
        !opt_time(attrs, "nbf", &p->attrs.nbf) || !opt_time(attrs, "exp", &p->attrs.exp) ||
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(attrs, "exportable"))) {
        snprintf(why, cap,
                 "properties.attributes: enabled is a boolean, nbf and exp are Unix "
                 "times, and exportable keys (with their release policy) are made "
                 "through the data plane.");
        return 0;
    }
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(props, "release_policy");
    if (rp != NULL && !cJSON_IsNull(rp)) {
        snprintf(why, cap,
                 "properties.release_policy: exportable keys (with their release "
                 "policy) are made through the data plane.");
        return 0;
    }
    if (cJSON_IsBool(enabled))
        p->attrs.enabled = cJSON_IsTrue(enabled);
    /* a key's tags, as the data plane takes them */
    return srv_key_tags_parse(body, &p->tags, why, cap) == KV_OK;
}

static void key_put(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                    const char *name)
{
    struct ks_key *k = NULL;
    /* as in Azure, a PUT first reads the key (keys/read), and needs create only to make it */
    if (!data_allowed(req, v, vault_id, name, POL_KEYS_GET))
        return;
    enum kv_status st = ks_key_get(req->srv->ks, v->name, name, NULL, &k);
    if (st == KV_OK) { /* it exists: answered as it is, nothing written */
        srv_send_json(req, 200, key_json(req, v, vault_id, k, 0, 0));
        ks_key_free(k);
        return;
    }
    if (st != KV_ERR_KEY_NOT_FOUND) {
        srv_send_error(req, st, NULL);
        return;
    }
    if (!data_allowed(req, v, vault_id, name, POL_KEYS_CREATE))
        return;
    char why[200] = "";
    struct ks_create p;
    if (srv_read_json_body(req) != KV_OK) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, "The request body is not a JSON object.");
        return;
    }
    if (!parse_create(req->body, &p, why, sizeof(why))) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, why);
        return;
    }
    p.new_only = 1; /* another request may create it meanwhile: then answer that one */
    st = ks_key_create(req->srv->ks, v->name, name, &p, &k);
    free(p.tags.names);
    free(p.tags.values);
    int created = st == KV_OK;
    if (st == KV_ERR_KEY_EXISTS)
        st = ks_key_get(req->srv->ks, v->name, name, NULL, &k);
    switch (st) {
    case KV_OK:
        if (created)
            kv_log(KV_LOG_INFO, "key '%s' created in vault '%s' through Resource Manager by %s",
                   name, v->name, req->who.oid);
        srv_send_json(req, 200, key_json(req, v, vault_id, k, 0, 0));
        break;
    case KV_ERR_BAD_KEY_NAME:
    case KV_ERR_BAD_KEY_SIZE:
    case KV_ERR_BAD_CURVE:
    case KV_ERR_BAD_EXPONENT:
    case KV_ERR_BAD_KTY:
    case KV_ERR_HSM_STANDARD:
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST, "The key '%.127s' cannot be created: %s.",
                        name, kv_status_info(st)->message);
        break;
    case KV_ERR_KEY_DELETED_RECOVERABLE:
        srv_send_errorf(req, KV_ERR_ARM_CONFLICT,
                        "A key named '%.127s' is deleted and can be recovered: recover or purge "
                        "it on the data plane first.",
                        name);
        break;
    default:
        srv_send_error(req, st, NULL);
    }
    ks_key_free(k);
}

/* GET of the keys (@p name NULL) or of one key's versions, a page at a time. */
static void key_list(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                     const char *name)
{
    struct ks_key_page *page = NULL;
    const char *skip = srv_query_get(req, "$skiptoken");
    enum kv_status st =
        name ? ks_key_list_versions(req->srv->ks, v->name, name, skip, KS_PAGE_MAX, &page)
             : ks_key_list(req->srv->ks, v->name, skip, KS_PAGE_MAX, &page);
    if (st == KV_ERR_KEY_NOT_FOUND) {
        key_not_found(req, v, name);
        return;
    }
    cJSON *value = NULL;
    cJSON *doc = srv_arm_page_begin(req, st, &value);
    if (doc == NULL) {
        ks_key_page_free(page);
        return;
    }
    int ok = 1;
    for (size_t i = 0; ok && i < page->count; i++) {
        cJSON *it = key_json(req, v, vault_id, page->items[i], name != NULL, name == NULL);
        ok = it != NULL && cJSON_AddItemToArray(value, it);
        if (!ok)
            cJSON_Delete(it);
    }
    srv_arm_send_page(req, doc, ok, page->next);
    ks_key_page_free(page);
}

void srv_mgmt_vault_keys(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                         const char *name, const char *version, int versions)
{
    const char *method = req->ri->request_method;
    int get = strcmp(method, "GET") == 0;
    if (v->hsm && !v->arm_key_ops) {
        srv_send_errorf(req, KV_ERR_HSM_ARM_KEYS,
                        "Key management operations through Azure Resource Manager are not allowed "
                        "on managed HSM '%s'. Its administrator allows them with the HSM's setting "
                        "AllowKeyManagementOperationsThroughARM.",
                        v->name);
        return;
    }
    if (name == NULL && get) {
        if (data_allowed(req, v, vault_id, NULL, POL_KEYS_LIST))
            key_list(req, v, vault_id, NULL);
    } else if (name != NULL && versions && version == NULL && get) {
        if (data_allowed(req, v, vault_id, name, POL_KEYS_LIST))
            key_list(req, v, vault_id, name);
    } else if (name != NULL && !versions && strcmp(method, "PUT") == 0) {
        key_put(req, v, vault_id, name);
    } else if (name != NULL && get) {
        if (!data_allowed(req, v, vault_id, name, POL_KEYS_GET))
            return;
        struct ks_key *k = NULL;
        enum kv_status st = ks_key_get(req->srv->ks, v->name, name, version, &k);
        if (st == KV_ERR_KEY_NOT_FOUND)
            key_not_found(req, v, version ? version : name);
        else if (st != KV_OK)
            srv_send_error(req, st, NULL);
        else
            srv_send_json(req, 200, key_json(req, v, vault_id, k, version != NULL, 0));
        ks_key_free(k);
    } else {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    }
}
