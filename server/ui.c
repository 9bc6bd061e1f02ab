/*
 * The web view on the HTTP port (loopback only, --ui off turns it off):
 * static files embedded at build time (server/ui/, cmake/embed.cmake) and one
 * read-only JSON document of the state. The page polls it and /admin/audit,
 * and moves the clock through /admin/clock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "srv.h"

#define UI_MAX_VAULTS 256
#define UI_MAX_ENTRIES 1024

struct srv_embedded {
    const char *name;
    const unsigned char *data;
    size_t len;
};
extern const struct srv_embedded srv_embedded_files[];

static void send_file(struct srv_req *req, const char *name)
{
    for (const struct srv_embedded *f = srv_embedded_files; f->name != NULL; f++) {
        if (strcmp(f->name, name) != 0)
            continue;
        const char *dot = strrchr(name, '.');
        const char *type = dot && strcmp(dot, ".css") == 0  ? "text/css; charset=utf-8"
                           : dot && strcmp(dot, ".js") == 0 ? "text/javascript; charset=utf-8"
                                                            : "text/html; charset=utf-8";
        srv_send_raw(req, 200, type, (const char *)f->data, f->len);
        return;
    }
    srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
}

/* Every version of every live key of a vault, page by page. */
static int add_keys(struct srv_req *req, const char *vault, cJSON *keys)
{
    char token[KS_SKIPTOKEN_MAX] = "";
    do {
        struct ks_key_page *page = NULL;
        if (ks_key_list(req->srv->ks, vault, token, KS_PAGE_MAX, &page) != KV_OK)
            return 0;
        for (size_t i = 0; i < page->count; i++) {
            const struct ks_key *k = page->items[i];
            cJSON *key = cJSON_CreateObject();
            cJSON *versions = key ? cJSON_AddArrayToObject(key, "versions") : NULL;
            if (versions == NULL || !cJSON_AddItemToArray(keys, key) ||
                !cJSON_AddStringToObject(key, "name", k->name) ||
                !cJSON_AddStringToObject(key, "current", k->version)) {
                ks_key_page_free(page);
                return 0;
            }
            char vtoken[KS_SKIPTOKEN_MAX] = "";
            do {
                struct ks_key_page *vp = NULL;
                if (ks_key_list_versions(req->srv->ks, vault, k->name, vtoken, KS_PAGE_MAX, &vp) !=
                    KV_OK)
                    break;
                for (size_t j = 0; j < vp->count; j++) {
                    const struct ks_key *v = vp->items[j];
                    cJSON *o = cJSON_CreateObject();
                    if (o == NULL || !cJSON_AddItemToArray(versions, o))
                        break;
                    cJSON_AddStringToObject(o, "version", v->version);
                    cJSON_AddStringToObject(o, "kty", ks_kty_name(v->kty, v->hsm));
                    cJSON_AddBoolToObject(o, "enabled", v->attrs.enabled);
                    cJSON_AddNumberToObject(o, "created", (double)v->attrs.created);
                    cJSON_AddNumberToObject(o, "exp", (double)v->attrs.exp);
                    srv_key_ops_json(o, v);
                    /* secure key release: whether it may leave the vault, under what */
                    cJSON_AddBoolToObject(o, "exportable", v->attrs.exportable);
                    if (v->release_policy.set) {
                        cJSON_AddStringToObject(o, "releasePolicy", v->release_policy.data);
                        cJSON_AddBoolToObject(o, "releasePolicyImmutable",
                                              v->release_policy.immutable);
                    }
                }
                snprintf(vtoken, sizeof(vtoken), "%s", vp->next);
                ks_key_page_free(vp);
            } while (vtoken[0] != '\0');
        }
        snprintf(token, sizeof(token), "%s", page->next);
        ks_key_page_free(page);
    } while (token[0] != '\0');
    return 1;
}

static int add_deleted(struct srv_req *req, const char *vault, cJSON *deleted)
{
    char token[KS_SKIPTOKEN_MAX] = "";
    do {
        struct ks_key_page *page = NULL;
        if (ks_deleted_list(req->srv->ks, vault, token, KS_PAGE_MAX, &page) != KV_OK)
            return 0;
        for (size_t i = 0; i < page->count; i++) {
            const struct ks_key *k = page->items[i];
            cJSON *o = cJSON_CreateObject();
            if (o == NULL || !cJSON_AddItemToArray(deleted, o))
                break;
            cJSON_AddStringToObject(o, "name", k->name);
            cJSON_AddNumberToObject(o, "deletedDate", (double)k->deleted_date);
            cJSON_AddNumberToObject(o, "scheduledPurgeDate", (double)k->scheduled_purge);
        }
        snprintf(token, sizeof(token), "%s", page->next);
        ks_key_page_free(page);
    } while (token[0] != '\0');
    return 1;
}

static void add_access(struct srv_req *req, const struct ks_vault *vault, cJSON *policies,
                       cJSON *roles)
{
    /* as many role assignments as reach the vault (each is over a kilobyte), at most
     * UI_MAX_ENTRIES */
    size_t rcap = pol_role_list(req->srv->pol, vault, NULL, 0) + 1;
    rcap = rcap < UI_MAX_ENTRIES ? rcap : UI_MAX_ENTRIES;
    struct pol_access_policy *p = calloc(UI_MAX_ENTRIES, sizeof(*p));
    struct pol_role_assignment *r = calloc(rcap, sizeof(*r));
    if (p == NULL || r == NULL) {
        free(p);
        free(r);
        return;
    }
    size_t np = pol_policy_list(req->srv->pol, vault->name, p, UI_MAX_ENTRIES);
    for (size_t i = 0; i < np && i < UI_MAX_ENTRIES; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON *keys = o ? cJSON_AddArrayToObject(o, "keys") : NULL;
        if (keys == NULL || !cJSON_AddItemToArray(policies, o))
            break;
        cJSON_AddStringToObject(o, "tenantId", p[i].tenant_id);
        cJSON_AddStringToObject(o, "objectId", p[i].object_id);
        cJSON_AddStringToObject(o, "applicationId", p[i].application_id);
        for (int b = 0; b < POL_PERM_COUNT; b++) {
            if (p[i].keys & ((pol_perms)1u << b))
                cJSON_AddItemToArray(keys, cJSON_CreateString(pol_perm_name((enum pol_perm)b)));
        }
    }
    size_t nr = pol_role_list(req->srv->pol, vault, r, rcap);
    for (size_t i = 0; i < nr && i < rcap; i++) {
        char scope[KS_VAULT_NAME_MAX + KS_NAME_MAX + KS_GROUP_MAX + 64];
        if (r[i].vault[0] != '\0')
            snprintf(scope, sizeof(scope), "/vaults/%s%s%s", r[i].vault,
                     r[i].key[0] ? "/keys/" : "", r[i].key);
        else /* a resource group's scope, or the subscription's */
            snprintf(scope, sizeof(scope), "/subscriptions/" POL_SUBSCRIPTION "%s%s",
                     r[i].group[0] ? "/resourceGroups/" : "", r[i].group);
        cJSON *o = cJSON_CreateObject();
        if (o == NULL || !cJSON_AddItemToArray(roles, o))
            break;
        cJSON_AddStringToObject(o, "id", r[i].id);
        cJSON_AddStringToObject(o, "principalId", r[i].principal_id);
        char role[POL_ROLE_NAME_MAX];
        pol_assignment_role_name(req->srv->pol, &r[i], role, sizeof(role));
        cJSON_AddStringToObject(o, "role", role);
        cJSON_AddStringToObject(o, "scope", scope);
    }
    free(p);
    free(r);
}

/* Who can sign in, and with what: never a secret, only whether there is one. */
static int add_identities(struct srv_req *req, cJSON *arr)
{
    for (size_t i = 0; i < pol_identity_count(req->srv->pol); i++) {
        const struct pol_identity *id = pol_identity_at(req->srv->pol, i);
        cJSON *o = cJSON_CreateObject();
        cJSON *certs = o ? cJSON_AddArrayToObject(o, "certificates") : NULL;
        cJSON *feds = o ? cJSON_AddArrayToObject(o, "federatedCredentials") : NULL;
        if (feds == NULL || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            return 0;
        }
        int ok = cJSON_AddStringToObject(o, "name", id->name) &&
                 cJSON_AddStringToObject(o, "objectId", id->object_id) &&
                 cJSON_AddStringToObject(o, "clientId", id->client_id) &&
                 cJSON_AddStringToObject(o, "tenantId", id->tenant_id) &&
                 cJSON_AddBoolToObject(o, "default", id->is_default) &&
                 cJSON_AddBoolToObject(o, "manage", id->manage) &&
                 cJSON_AddBoolToObject(o, "trustedService", id->trusted_service) &&
                 cJSON_AddBoolToObject(o, "clientSecret", id->client_secret[0] != '\0');
        char thumbprint[41];
        int64_t from = 0, to = 0;
        for (size_t c = 0; ok && pol_creds_certificate_at(id->creds, c, thumbprint, &from, &to);
             c++) {
            cJSON *e = cJSON_CreateObject();
            ok = e != NULL && cJSON_AddItemToArray(certs, e) &&
                 cJSON_AddStringToObject(e, "thumbprint", thumbprint) &&
                 cJSON_AddNumberToObject(e, "notBefore", (double)from) &&
                 cJSON_AddNumberToObject(e, "notAfter", (double)to);
            if (!ok && e != NULL && cJSON_GetArrayItem(certs, (int)c) != e)
                cJSON_Delete(e);
        }
        const char *iss, *sub, *aud;
        for (size_t f = 0; ok && pol_creds_federated_at(id->creds, f, &iss, &sub, &aud); f++) {
            cJSON *e = cJSON_CreateObject();
            ok = e != NULL && cJSON_AddItemToArray(feds, e) &&
                 cJSON_AddStringToObject(e, "issuer", iss) &&
                 cJSON_AddStringToObject(e, "subject", sub) &&
                 cJSON_AddStringToObject(e, "audience", aud);
            if (!ok && e != NULL && cJSON_GetArrayItem(feds, (int)f) != e)
                cJSON_Delete(e);
        }
        if (!ok)
            return 0;
    }
    return 1;
}

static void send_state(struct srv_req *req)
{
    char(*names)[KS_VAULT_NAME_MAX + 1] = calloc(UI_MAX_VAULTS, sizeof(*names));
    size_t n = names ? ks_vault_list(req->srv->ks, names, UI_MAX_VAULTS) : 0;
    cJSON *doc = names ? cJSON_CreateObject() : NULL;
    cJSON *vaults = doc ? cJSON_AddArrayToObject(doc, "vaults") : NULL;
    cJSON *identities = doc ? cJSON_AddArrayToObject(doc, "identities") : NULL;
    int ok = vaults != NULL && identities != NULL &&
             cJSON_AddNumberToObject(doc, "now", (double)ks_now()) != NULL &&
             add_identities(req, identities);
    for (size_t i = 0; ok && i < n && i < UI_MAX_VAULTS; i++) {
        struct ks_vault v;
        if (ks_vault_get(req->srv->ks, names[i], &v) != KV_OK)
            continue;
        int days = 0;
        cJSON *o = cJSON_CreateObject();
        cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
        cJSON *keys = o ? cJSON_AddArrayToObject(o, "keys") : NULL;
        cJSON *deleted = o ? cJSON_AddArrayToObject(o, "deletedKeys") : NULL;
        cJSON *policies = o ? cJSON_AddArrayToObject(o, "accessPolicies") : NULL;
        cJSON *roles = o ? cJSON_AddArrayToObject(o, "roleAssignments") : NULL;
        ok = roles != NULL && cJSON_AddItemToArray(vaults, o) &&
             cJSON_AddStringToObject(o, "name", v.name) &&
             cJSON_AddStringToObject(o, "recoveryLevel", ks_vault_recovery_level(&v, &days)) &&
             cJSON_AddBoolToObject(props, "enableSoftDelete", v.soft_delete) &&
             cJSON_AddNumberToObject(props, "softDeleteRetentionInDays", v.retention_days) &&
             cJSON_AddBoolToObject(props, "enablePurgeProtection", v.purge_protection) &&
             cJSON_AddBoolToObject(props, "enableRbacAuthorization", v.rbac) &&
             srv_vault_props_json(req, props, &v) && add_keys(req, v.name, keys) &&
             add_deleted(req, v.name, deleted);
        if (ok)
            add_access(req, &v, policies, roles);
        else if (o != NULL && roles == NULL)
            cJSON_Delete(o);
    }
    free(names);
    if (!ok) {
        cJSON_Delete(doc);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    srv_send_json(req, 200, doc);
}

int srv_ui_endpoint(struct srv_req *req)
{
    if (req->nseg < 1 || strcmp(req->seg[0], "ui") != 0)
        return 0;
    if (!req->srv->ui_enabled) {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, "The web view is off (--ui off).");
        return 1;
    }
    if (!srv_local_only(req)) {
        srv_send_error(req, KV_ERR_ACCESS_DENIED,
                       "The web view answers on loopback only, to a loopback host name, and "
                       "not to another site's page.");
        return 1;
    }
    if (strcmp(req->ri->request_method, "GET") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return 1;
    }
    const char *rest = req->nseg >= 2 ? req->seg[1] : "";
    if (req->nseg <= 2 && (rest[0] == '\0' || strcmp(rest, "index.html") == 0))
        send_file(req, "index.html");
    else if (req->nseg == 2 && (strcmp(rest, "ui.css") == 0 || strcmp(rest, "ui.js") == 0))
        send_file(req, rest);
    else if (req->nseg == 3 && strcmp(rest, "api") == 0 && strcmp(req->seg[2], "state") == 0)
        send_state(req);
    else
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
    return 1;
}
