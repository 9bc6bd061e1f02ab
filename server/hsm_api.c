/*
 * A Managed HSM's own access control, on its data plane (NAME.managedhsm.DOMAIN):
 *
 *   {scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]   GET, PUT, DELETE
 *   {scope}/providers/Microsoft.Authorization/roleDefinitions[/{name}]   GET
 *
 * where {scope} is "/" or "/keys" (the whole HSM) or "/keys/{key}". The SDKs put the
 * scope between the base URL's slash and "/providers", so "///providers" is "/".
 * Assignments are the policy layer's, marked local to the HSM (pol_role_assignment.hsm);
 * the roles are Managed HSM's built-in local ones. The keys API itself is keys_api.c's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

#define DEF_PREFIX "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/"

static void h_assignment_list(struct srv_req *req);
static void h_assignment_get(struct srv_req *req);
static void h_assignment_put(struct srv_req *req);
static void h_assignment_delete(struct srv_req *req);
static void h_definition_list(struct srv_req *req);
static void h_definition_get(struct srv_req *req);

enum {
    ASSIGNMENTS_LIST,
    ASSIGNMENT_GET,
    ASSIGNMENT_PUT,
    ASSIGNMENT_DELETE,
    DEFINITIONS_LIST,
    DEFINITION_GET,
    ROUTE_COUNT
};

static const struct srv_route routes[ROUTE_COUNT] = {
    [ASSIGNMENTS_LIST] = {"RoleAssignmentList", "GET",
                          "{scope}/providers/Microsoft.Authorization/roleAssignments",
                          POL_HSM_ROLES_READ, SRV_BODY_NONE, h_assignment_list},
    [ASSIGNMENT_GET] = {"RoleAssignmentGet", "GET",
                        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                        POL_HSM_ROLES_READ, SRV_BODY_NONE, h_assignment_get},
    [ASSIGNMENT_PUT] = {"RoleAssignmentCreate", "PUT",
                        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                        POL_HSM_ROLES_WRITE, SRV_BODY_JSON, h_assignment_put, 201},
    [ASSIGNMENT_DELETE] = {"RoleAssignmentDelete", "DELETE",
                           "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                           POL_HSM_ROLES_DELETE, SRV_BODY_NONE, h_assignment_delete},
    [DEFINITIONS_LIST] = {"RoleDefinitionList", "GET",
                          "{scope}/providers/Microsoft.Authorization/roleDefinitions",
                          POL_HSM_ROLEDEFS_READ, SRV_BODY_NONE, h_definition_list},
    [DEFINITION_GET] = {"RoleDefinitionGet", "GET",
                        "{scope}/providers/Microsoft.Authorization/roleDefinitions/{name}",
                        POL_HSM_ROLEDEFS_READ, SRV_BODY_NONE, h_definition_get},
};

/* The path's parts: the scope's segments, then providers/Microsoft.Authorization/{kind}
 * and perhaps a name, empty segments left out. */
struct rbac_path {
    const char *scope[2];
    size_t n_scope;
    int definitions;  /* roleDefinitions, else roleAssignments */
    const char *name; /* NULL: the list */
};

/* Split the request's path; 0 when it is no path of the HSM's access control. */
static int parse(const struct srv_req *req, struct rbac_path *p)
{
    const char *seg[SRV_MAX_SEGMENTS];
    size_t n = 0;
    for (size_t i = 0; i < req->nseg; i++) {
        if (req->seg[i][0] != '\0')
            seg[n++] = req->seg[i];
    }
    size_t at = 0;
    while (at < n && strcasecmp(seg[at], "providers") != 0)
        at++;
    if (at == n || at > 2 || n - at < 3 || n - at > 4 ||
        strcasecmp(seg[at + 1], "Microsoft.Authorization") != 0)
        return 0;
    memset(p, 0, sizeof(*p));
    p->n_scope = at;
    for (size_t i = 0; i < at; i++)
        p->scope[i] = seg[i];
    if (strcasecmp(seg[at + 2], "roleDefinitions") == 0)
        p->definitions = 1;
    else if (strcasecmp(seg[at + 2], "roleAssignments") != 0)
        return 0;
    p->name = n - at == 4 ? seg[at + 3] : NULL;
    return 1;
}

int srv_hsm_rbac_path(const struct srv_req *req)
{
    for (size_t i = 0; i < req->nseg; i++) {
        if (strcasecmp(req->seg[i], "providers") == 0)
            return 1;
    }
    return 0;
}

enum srv_match srv_hsm_rbac_match(struct srv_req *req, const struct srv_route **route,
                                  const char **key)
{
    struct rbac_path p;
    /* the scope is "/", "/keys" or "/keys/{name}" */
    if (!parse(req, &p) || (p.n_scope > 0 && strcasecmp(p.scope[0], "keys") != 0))
        return SRV_MATCH_NO_ROUTE;
    const char *m = req->ri->request_method;
    int get = strcmp(m, "GET") == 0;
    const struct srv_route *r = NULL;
    if (p.definitions)
        r = !get ? NULL : p.name ? &routes[DEFINITION_GET] : &routes[DEFINITIONS_LIST];
    else if (p.name == NULL)
        r = get ? &routes[ASSIGNMENTS_LIST] : NULL;
    else
        r = get                        ? &routes[ASSIGNMENT_GET]
            : strcmp(m, "PUT") == 0    ? &routes[ASSIGNMENT_PUT]
            : strcmp(m, "DELETE") == 0 ? &routes[ASSIGNMENT_DELETE]
                                       : NULL;
    if (r == NULL)
        return SRV_MATCH_BAD_METHOD;
    snprintf(req->hsm_item, sizeof(req->hsm_item), "%s", p.name ? p.name : "");
    req->hsm_keys = p.n_scope >= 1;
    *key = p.n_scope == 2 ? p.scope[1] : NULL;
    *route = r;
    return SRV_MATCH_OK;
}

enum pol_perm srv_hsm_perm(const struct srv_route *route)
{
    /* Managed HSM names reading deleted keys and random bytes as actions of their own */
    if (strcmp(route->operation, "KeyGetDeleted") == 0 ||
        strcmp(route->operation, "KeyListDeleted") == 0)
        return POL_HSM_DELETED_READ;
    if (strcmp(route->operation, "GetRandomBytes") == 0)
        return POL_HSM_RNG;
    return route->perm;
}

/* The Managed HSM data action a permission is ("Microsoft.KeyVault/managedHsm/keys/wrap/action").
 */
static void action_name(enum pol_perm perm, char *out, size_t cap)
{
    static const char *const keys[POL_PERM_COUNT] = {
        [POL_KEYS_GET] = "keys/read/action",
        [POL_KEYS_LIST] = "keys/read/action",
        [POL_KEYS_CREATE] = "keys/create",
        [POL_KEYS_UPDATE] = "keys/write/action",
        [POL_KEYS_IMPORT] = "keys/import/action",
        [POL_KEYS_DELETE] = "keys/delete",
        [POL_KEYS_RECOVER] = "keys/deletedKeys/recover/action",
        [POL_KEYS_BACKUP] = "keys/backup/action",
        [POL_KEYS_RESTORE] = "keys/restore/action",
        [POL_KEYS_PURGE] = "keys/deletedKeys/delete",
        [POL_KEYS_ENCRYPT] = "keys/encrypt/action",
        [POL_KEYS_DECRYPT] = "keys/decrypt/action",
        [POL_KEYS_WRAP] = "keys/wrap/action",
        [POL_KEYS_UNWRAP] = "keys/unwrap/action",
        [POL_KEYS_SIGN] = "keys/sign/action",
        [POL_KEYS_VERIFY] = "keys/verify/action",
        [POL_KEYS_RELEASE] = "keys/release/action",
        [POL_KEYS_ROTATE] = "keys/rotate/action",
        [POL_KEYS_GETROTATIONPOLICY] = "keys/read/action",
        [POL_KEYS_SETROTATIONPOLICY] = "keys/write/action",
    };
    const char *a = (unsigned)perm < POL_PERM_COUNT ? keys[perm] : pol_perm_name(perm);
    snprintf(out, cap, "Microsoft.KeyVault/managedHsm/%s", a);
}

/* The scope as the HSM writes it: "/", "/keys" or "/keys/{name}". */
static void scope_text(const struct pol_role_assignment *r, char *out, size_t cap)
{
    if (r->key[0] != '\0')
        snprintf(out, cap, "/keys/%s", r->key);
    else
        snprintf(out, cap, "%s", r->hsm_keys ? "/keys" : "/");
}

/* The request's own scope, as scope_text() writes it. */
static void req_scope(const struct srv_req *req, char *out, size_t cap)
{
    struct pol_role_assignment r = {.hsm_keys = req->hsm_keys};
    snprintf(r.key, sizeof(r.key), "%s", req->key_name);
    scope_text(&r, out, cap);
}

void srv_hsm_denied(struct srv_req *req, enum pol_perm perm)
{
    char action[128], scope[KS_NAME_MAX + 8];
    action_name(perm, action, sizeof(action));
    int rbac = req->route_def >= &routes[0] && req->route_def < &routes[ROUTE_COUNT];
    /* the scope the action was asked at: the access control's own, else the keys' */
    if (rbac)
        req_scope(req, scope, sizeof(scope));
    else
        snprintf(scope, sizeof(scope), "/keys");
    srv_send_errorf(req, KV_ERR_HSM_ACCESS_DENIED,
                    "Not authorized to access %s on %s (Activity ID: %s)", action, scope,
                    req->request_id);
}

/* ---- answers ------------------------------------------------------------------------- */

static cJSON *assignment_json(const struct pol_role_assignment *r)
{
    char scope[KS_NAME_MAX + 8], id[POL_ID_MAX + 64], def[160];
    scope_text(r, scope, sizeof(scope));
    /* the id names no scope, whatever the assignment's */
    snprintf(id, sizeof(id), "/providers/Microsoft.Authorization/roleAssignments/%s", r->id);
    snprintf(def, sizeof(def), DEF_PREFIX "%s", pol_role_id(r->role));
    cJSON *o = cJSON_CreateObject();
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    if (props == NULL || !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "name", r->id) ||
        !cJSON_AddStringToObject(props, "principalId", r->principal_id) ||
        !cJSON_AddStringToObject(props, "roleDefinitionId", def) ||
        !cJSON_AddStringToObject(props, "scope", scope) ||
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleAssignments")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static cJSON *definition_json(enum pol_role role)
{
    char id[160];
    snprintf(id, sizeof(id), DEF_PREFIX "%s", pol_role_id(role));
    cJSON *o = cJSON_CreateObject();
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    cJSON *scopes = props ? cJSON_AddArrayToObject(props, "assignableScopes") : NULL;
    cJSON *perms = props && scopes && cJSON_AddItemToArray(scopes, cJSON_CreateString("/")) &&
                           cJSON_AddStringToObject(props, "description", "")
                       ? cJSON_AddArrayToObject(props, "permissions")
                       : NULL;
    cJSON *perm = perms ? cJSON_CreateObject() : NULL;
    int ok = perm != NULL && cJSON_AddItemToArray(perms, perm);
    if (!ok)
        cJSON_Delete(perm);
    cJSON *data = ok && cJSON_AddArrayToObject(perm, "actions")
                      ? cJSON_AddArrayToObject(perm, "dataActions")
                      : NULL;
    ok = data != NULL;
    for (const char *const *a = pol_hsm_role_actions(role); ok && *a != NULL; a++)
        ok = cJSON_AddItemToArray(data, cJSON_CreateString(*a));
    if (!ok || !cJSON_AddArrayToObject(perm, "notActions") ||
        !cJSON_AddArrayToObject(perm, "notDataActions") ||
        !cJSON_AddStringToObject(props, "roleName", pol_role_name(role)) ||
        !cJSON_AddStringToObject(props, "type", "AKVBuiltInRole") ||
        !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "name", pol_role_id(role)) ||
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* ---- handlers -------------------------------------------------------------------------- */

/* The HSM the request is for (dispatch found it before the route). */
static int this_hsm(struct srv_req *req, struct ks_vault *v)
{
    if (ks_vault_get(req->srv->ks, req->vault, v) != KV_OK || !v->hsm) {
        srv_send_errorf(req, KV_ERR_VAULT_NOT_FOUND, "Vault not found: %s", req->host);
        return 0;
    }
    return 1;
}

/* Whether assignment @p r is at the request's scope ("/" and "/keys" are one). */
static int at_req_scope(const struct srv_req *req, const struct pol_role_assignment *r)
{
    return strcasecmp(r->key, req->key_name) == 0;
}

/* Whether assignment @p r of the HSM shows in a list at the request's scope: at it, or
 * below it unless the filter is atScope(). */
static int listed(const struct srv_req *req, const struct pol_role_assignment *r, int at_scope)
{
    return at_req_scope(req, r) || (!at_scope && req->key_name[0] == '\0');
}

static void h_assignment_list(struct srv_req *req)
{
    struct ks_vault v;
    if (!this_hsm(req, &v))
        return;
    /* $filter: atScope(), or principalId eq '{id}' */
    const char *filter = srv_query_get(req, "$filter");
    int at_scope = 0;
    char principal[POL_ID_MAX] = "";
    if (filter != NULL && filter[0] != '\0') {
        size_t len = strlen(filter);
        if (strcasecmp(filter, "atScope()") == 0)
            at_scope = 1;
        else if (strncasecmp(filter, "principalId eq '", 16) == 0 && len > 17 &&
                 filter[len - 1] == '\'' && len - 17 < sizeof(principal))
            kv_str_join_n(principal, sizeof(principal), filter + 16, len - 17, NULL);
        else {
            srv_send_errorf(req, KV_ERR_BAD_PARAM,
                            "The filter '%.100s' is not supported. Supported filters are "
                            "atScope() and principalId eq '{id}'.",
                            filter);
            return;
        }
    }
    size_t cap = pol_role_list(req->srv->pol, &v, NULL, 0) + 1;
    struct pol_role_assignment *all = calloc(cap, sizeof(*all));
    size_t n = all ? pol_role_list(req->srv->pol, &v, all, cap) : 0;
    n = n < cap ? n : cap;
    cJSON *doc = all ? cJSON_CreateObject() : NULL;
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    int ok = value != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        if (!listed(req, &all[i], at_scope) ||
            (principal[0] && strcasecmp(principal, all[i].principal_id) != 0))
            continue;
        cJSON *item = assignment_json(&all[i]);
        ok = item != NULL && cJSON_AddItemToArray(value, item);
        if (!ok)
            cJSON_Delete(item);
    }
    free(all);
    if (!ok) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

/* Assignment req->hsm_item of this HSM at the request's scope, into @p r; else answer 404. */
static int find_assignment(struct srv_req *req, const struct ks_vault *v,
                           struct pol_role_assignment *r)
{
    if (pol_role_get(req->srv->pol, req->hsm_item, r) && r->hsm &&
        strcasecmp(r->vault, v->name) == 0 && at_req_scope(req, r))
        return 1;
    srv_send_errorf(req, KV_ERR_ARM_NO_ROLE_ASSIGNMENT,
                    "Requested role assignment not found (Activity ID: %s)", req->request_id);
    return 0;
}

static void h_assignment_get(struct srv_req *req)
{
    struct ks_vault v;
    struct pol_role_assignment r;
    if (this_hsm(req, &v) && find_assignment(req, &v, &r))
        srv_send_json(req, 200, assignment_json(&r));
}

static void h_assignment_delete(struct srv_req *req)
{
    struct ks_vault v;
    struct pol_role_assignment r;
    if (!this_hsm(req, &v) || !find_assignment(req, &v, &r))
        return;
    enum kv_status st = pol_role_remove(req->srv->pol, r.id);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "managed HSM %s: role assignment %s deleted by %s", v.name, r.id,
           req->who.oid);
    srv_send_json(req, 200, assignment_json(&r));
}

static void h_assignment_put(struct srv_req *req)
{
    struct ks_vault v;
    if (!this_hsm(req, &v))
        return;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    const char *def =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "roleDefinitionId"));
    const char *principal =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "principalId"));
    if (!cJSON_IsObject(props) || def == NULL || principal == NULL || principal[0] == '\0' ||
        strlen(principal) >= POL_ID_MAX) {
        srv_send_error(req, KV_ERR_BAD_PARAM,
                       "The role assignment needs properties.roleDefinitionId and "
                       "properties.principalId.");
        return;
    }
    if (!kv_str_is_uuid(req->hsm_item)) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role assignment name '%.64s' is not valid: it must be a GUID.",
                        req->hsm_item);
        return;
    }
    struct pol_role_assignment r = {.hsm = 1, .hsm_keys = req->hsm_keys && !req->key_name[0]};
    if (pol_hsm_role_parse(def, &r.role) != KV_OK) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role definition '%.200s' is not a role of this managed HSM.", def);
        return;
    }
    snprintf(r.id, sizeof(r.id), "%s", req->hsm_item);
    kv_str_lower(r.id);
    snprintf(r.principal_id, sizeof(r.principal_id), "%s", principal);
    snprintf(r.vault, sizeof(r.vault), "%s", v.name);
    snprintf(r.key, sizeof(r.key), "%s", req->key_name);
    r.updated = ks_now();
    snprintf(r.updated_by, sizeof(r.updated_by), "%s", req->who.oid);
    enum kv_status st = pol_role_put(req->srv->pol, &r);
    if (st == KV_ERR_ARM_ROLE_EXISTS || st == KV_ERR_ARM_ROLE_UPDATE) {
        srv_send_errorf(req, KV_ERR_ARM_ROLE_EXISTS,
                        "The role assignment already exists. (Activity ID: %s)", req->request_id);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "managed HSM %s: role assignment %s (%s) put by %s", v.name, r.id,
           pol_role_name(r.role), req->who.oid);
    /* 201 even when it was there already: the SDKs take no other answer */
    srv_send_json(req, 201, assignment_json(&r));
}

static void h_definition_list(struct srv_req *req)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    int ok = value != NULL;
    /* in the order a Managed HSM lists them */
    for (int r = POL_ROLE_HSM_END - 1; ok && r >= POL_ROLE_HSM_FIRST; r--) {
        cJSON *item = definition_json((enum pol_role)r);
        ok = item != NULL && cJSON_AddItemToArray(value, item);
        if (!ok)
            cJSON_Delete(item);
    }
    if (!ok) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

static void h_definition_get(struct srv_req *req)
{
    enum pol_role role;
    if (!kv_str_is_uuid(req->hsm_item) || pol_hsm_role_parse(req->hsm_item, &role) != KV_OK) {
        srv_send_errorf(req, KV_ERR_HSM_NO_ROLE_DEFINITION,
                        "Requested role definition not found (Activity ID: %s)", req->request_id);
        return;
    }
    srv_send_json(req, 200, definition_json(role));
}
