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
static void h_definition_put(struct srv_req *req);
static void h_definition_delete(struct srv_req *req);

enum {
    ASSIGNMENTS_LIST,
    ASSIGNMENT_GET,
    ASSIGNMENT_PUT,
    ASSIGNMENT_DELETE,
    DEFINITIONS_LIST,
    DEFINITION_GET,
    DEFINITION_PUT,
    DEFINITION_DELETE,
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
    [DEFINITION_PUT] = {"RoleDefinitionCreate", "PUT",
                        "{scope}/providers/Microsoft.Authorization/roleDefinitions/{name}",
                        POL_HSM_ROLEDEFS_WRITE, SRV_BODY_JSON, h_definition_put, 201},
    [DEFINITION_DELETE] = {"RoleDefinitionDelete", "DELETE",
                           "{scope}/providers/Microsoft.Authorization/roleDefinitions/{name}",
                           POL_HSM_ROLEDEFS_DELETE, SRV_BODY_NONE, h_definition_delete},
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
    for (size_t i = 0; i + 1 < req->nseg; i++) {
        if (strcasecmp(req->seg[i], "providers") == 0 &&
            strcasecmp(req->seg[i + 1], "Microsoft.Authorization") == 0)
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
    if (p.definitions && p.name == NULL)
        r = get ? &routes[DEFINITIONS_LIST] : NULL;
    else if (p.definitions)
        r = get                        ? &routes[DEFINITION_GET]
            : strcmp(m, "PUT") == 0    ? &routes[DEFINITION_PUT]
            : strcmp(m, "DELETE") == 0 ? &routes[DEFINITION_DELETE]
                                       : NULL;
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
    char scope[KS_NAME_MAX + 8];
    const char *action = pol_hsm_perm_action(perm);
    int rbac = 0;
    for (size_t i = 0; i < ROUTE_COUNT; i++)
        rbac |= req->route_def == &routes[i];
    /* the scope the action was asked at: the access control's own, the whole HSM's for its
     * settings, backups and restores, else the keys' */
    if (rbac)
        req_scope(req, scope, sizeof(scope));
    else if (srv_hsm_admin_route(req->route_def))
        snprintf(scope, sizeof(scope), "/");
    else
        snprintf(scope, sizeof(scope), "/keys");
    srv_send_errorf(req, KV_ERR_HSM_ACCESS_DENIED,
                    "Not authorized to access %s on %s (Activity ID: %s)",
                    action != NULL ? action : "Microsoft.KeyVault/managedHsm", scope,
                    req->request_id);
}

/* ---- answers ------------------------------------------------------------------------- */

static cJSON *assignment_json(const struct pol_role_assignment *r)
{
    char scope[KS_NAME_MAX + 8], id[POL_ID_MAX + 64], def[160];
    scope_text(r, scope, sizeof(scope));
    /* the id names no scope, whatever the assignment's */
    snprintf(id, sizeof(id), "/providers/Microsoft.Authorization/roleAssignments/%s", r->id);
    snprintf(def, sizeof(def), DEF_PREFIX "%s", pol_assignment_role_id(r));
    /* in Managed HSM's order: id, name, properties, type */
    cJSON *o = cJSON_CreateObject();
    cJSON *props = o != NULL && cJSON_AddStringToObject(o, "id", id) &&
                           cJSON_AddStringToObject(o, "name", r->id)
                       ? cJSON_AddObjectToObject(o, "properties")
                       : NULL;
    if (props == NULL || !cJSON_AddStringToObject(props, "principalId", r->principal_id) ||
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
    cJSON *props = o != NULL && cJSON_AddStringToObject(o, "id", id) &&
                           cJSON_AddStringToObject(o, "name", pol_role_id(role))
                       ? cJSON_AddObjectToObject(o, "properties")
                       : NULL;
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
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* A custom role of this HSM: its definition as answered, from the properties it keeps. */
static cJSON *custom_json(const struct pol_role_def *d)
{
    char id[160];
    snprintf(id, sizeof(id), DEF_PREFIX "%s", d->id);
    cJSON *o = cJSON_CreateObject();
    cJSON *props = cJSON_Parse(d->doc);
    if (o == NULL || props == NULL || !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "name", d->id) ||
        !cJSON_AddItemToObject(o, "properties", props) ||
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions")) {
        if (cJSON_GetObjectItemCaseSensitive(o, "properties") != props)
            cJSON_Delete(props);
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Custom role @p id of HSM @p hsm into @p d (release with pol_role_def_clear()). */
static int custom_role(struct srv_req *req, const char *hsm, const char *id, struct pol_role_def *d)
{
    if (pol_role_def_get(req->srv->pol, id, d) == KV_OK && strcasecmp(d->hsm, hsm) == 0)
        return 1;
    pol_role_def_clear(d);
    return 0;
}

/* The role @p text names (a roleDefinitionId, a GUID or a name) among HSM @p v's: a built-in
 * local role, or one of its custom roles by GUID. Sets @p r's role. */
static int local_role(struct srv_req *req, const struct ks_vault *v, const char *text,
                      struct pol_role_assignment *r)
{
    if (pol_hsm_role_parse(text, &r->role) == KV_OK)
        return 1;
    const char *slash = strrchr(text, '/');
    const char *guid = slash != NULL ? slash + 1 : text;
    struct pol_role_def d;
    if (!kv_str_is_uuid(guid) || !custom_role(req, v->name, guid, &d))
        return 0;
    r->role = POL_ROLE_CUSTOM;
    snprintf(r->role_def, sizeof(r->role_def), "%s", d.id);
    pol_role_def_clear(&d);
    return 1;
}

/* ---- handlers -------------------------------------------------------------------------- */

/* Whether assignment @p r is at the request's scope ("/" and "/keys" are one). */
static int at_req_scope(const struct srv_req *req, const struct pol_role_assignment *r)
{
    return strcasecmp(r->key, req->key_name) == 0;
}

/* Whether assignment @p r of the HSM shows in a list at the request's scope: at it or above
 * it (the whole HSM's), and below it unless the filter is atScope(). */
static int listed(const struct srv_req *req, const struct pol_role_assignment *r, int at_scope)
{
    return r->key[0] == '\0' || at_req_scope(req, r) || (!at_scope && req->key_name[0] == '\0');
}

static void h_assignment_list(struct srv_req *req)
{
    const struct ks_vault *v = req->found; /* dispatch found it, an HSM */
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
    size_t cap = pol_role_list(req->srv->pol, v, NULL, 0) + 1;
    struct pol_role_assignment *all = calloc(cap, sizeof(*all));
    size_t n = all ? pol_role_list(req->srv->pol, v, all, cap) : 0;
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
    srv_arm_send_page(req, doc, ok, NULL); /* no nextLink: one page */
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
    struct pol_role_assignment r;
    if (find_assignment(req, req->found, &r))
        srv_send_json(req, 200, assignment_json(&r));
}

static void h_assignment_delete(struct srv_req *req)
{
    const struct ks_vault *v = req->found;
    struct pol_role_assignment r;
    if (!find_assignment(req, v, &r))
        return;
    enum kv_status st = pol_role_remove(req->srv->pol, r.id);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "managed HSM %s: role assignment %s deleted by %s", v->name, r.id,
           req->who.oid);
    srv_send_json(req, 200, assignment_json(&r));
}

static void h_assignment_put(struct srv_req *req)
{
    const struct ks_vault *v = req->found; /* dispatch found it, an HSM */
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    const char *def =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "roleDefinitionId"));
    const char *principal =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "principalId"));
    if (!cJSON_IsObject(props) || def == NULL || principal == NULL || principal[0] == '\0' ||
        strlen(principal) >= POL_ID_MAX) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role assignment needs properties.roleDefinitionId and "
                        "properties.principalId. (Activity ID: %s)",
                        req->request_id);
        return;
    }
    if (!kv_str_is_uuid(req->hsm_item)) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "Role assignment name must be a GUID (Activity ID: %s)", req->request_id);
        return;
    }
    struct pol_role_assignment r = {.hsm = 1, .hsm_keys = req->hsm_keys && !req->key_name[0]};
    if (!local_role(req, v, def, &r)) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role definition '%.200s' is not a role of this managed HSM. "
                        "(Activity ID: %s)",
                        def, req->request_id);
        return;
    }
    snprintf(r.id, sizeof(r.id), "%s", req->hsm_item);
    kv_str_lower(r.id);
    snprintf(r.principal_id, sizeof(r.principal_id), "%s", principal);
    snprintf(r.vault, sizeof(r.vault), "%s", v->name);
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
    kv_log(KV_LOG_INFO, "managed HSM %s: role assignment %s (%s) put by %s", v->name, r.id,
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
    /* then the HSM's own */
    struct pol_role_def *custom = NULL;
    size_t n = 0;
    ok = ok && pol_role_def_list(req->srv->pol, &custom, &n) == KV_OK;
    for (size_t i = 0; ok && i < n; i++) {
        if (strcasecmp(custom[i].hsm, req->vault) != 0)
            continue;
        cJSON *item = custom_json(&custom[i]);
        ok = item != NULL && cJSON_AddItemToArray(value, item);
        if (!ok)
            cJSON_Delete(item);
    }
    pol_role_defs_free(custom, n);
    srv_arm_send_page(req, doc, ok, NULL);
}

static void definition_not_found(struct srv_req *req)
{
    srv_send_errorf(req, KV_ERR_HSM_NO_ROLE_DEFINITION,
                    "Requested role definition not found (Activity ID: %s)", req->request_id);
}

static void h_definition_get(struct srv_req *req)
{
    enum pol_role role;
    struct pol_role_def d;
    if (!kv_str_is_uuid(req->hsm_item)) {
        definition_not_found(req);
    } else if (pol_hsm_role_parse(req->hsm_item, &role) == KV_OK) {
        srv_send_json(req, 200, definition_json(role));
    } else if (custom_role(req, req->vault, req->hsm_item, &d)) {
        srv_send_json(req, 200, custom_json(&d));
        pol_role_def_clear(&d);
    } else {
        definition_not_found(req);
    }
}

/* A role definition's name must be a GUID, and no built-in role's. */
static int definition_name_ok(struct srv_req *req)
{
    enum pol_role role;
    if (!kv_str_is_uuid(req->hsm_item)) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "Role definition name must be a GUID (Activity ID: %s)", req->request_id);
        return 0;
    }
    if (pol_hsm_role_parse(req->hsm_item, &role) == KV_OK) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "Cannot re-use the name/GUID matching that of a built-in role. Please use "
                        "a unique role ID. (Activity ID: %s)",
                        req->request_id);
        return 0;
    }
    return 1;
}

/* Whether @p a is absent or an array of strings. */
static int strings_or_absent(const cJSON *a)
{
    const cJSON *it;
    if (a == NULL)
        return 1;
    if (!cJSON_IsArray(a))
        return 0;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it))
            return 0;
    }
    return 1;
}

/* Append the strings of @p a to @p out (capacity counted by the caller). */
static void take_strings(const cJSON *a, const char **out, size_t *n)
{
    const cJSON *it;
    cJSON_ArrayForEach(it, a) out[(*n)++] = it->valuestring;
}

/* A custom role's properties as given: NULL when fine, else what is wrong. */
static const char *definition_body_error(const cJSON *props, size_t *n_actions)
{
    static const char *const lists[] = {"actions", "notActions", "dataActions", "notDataActions"};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "roleName");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(props, "description");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(props, "type");
    const cJSON *perms = cJSON_GetObjectItemCaseSensitive(props, "permissions");
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(props, "assignableScopes");
    const cJSON *it;
    *n_actions = 0;
    if (!cJSON_IsObject(props))
        return "The role definition needs its properties.";
    if ((name != NULL && !cJSON_IsString(name)) ||
        (name != NULL && strlen(name->valuestring) >= POL_ROLE_NAME_MAX))
        return "properties.roleName must be a string of at most 255 characters.";
    if (desc != NULL && !cJSON_IsString(desc))
        return "properties.description must be a string.";
    if (type != NULL && !(cJSON_IsString(type) && strcmp(type->valuestring, "CustomRole") == 0))
        return "properties.type of a role definition made here must be CustomRole.";
    if (perms != NULL && !cJSON_IsArray(perms))
        return "properties.permissions must be an array.";
    cJSON_ArrayForEach(it, perms)
    {
        if (!cJSON_IsObject(it))
            return "properties.permissions must hold objects.";
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(it, lists[i]);
            if (!strings_or_absent(list))
                return "A permission's actions, notActions, dataActions and notDataActions "
                       "must be arrays of strings.";
            *n_actions += (size_t)cJSON_GetArraySize(list);
        }
    }
    if (!strings_or_absent(scopes))
        return "properties.assignableScopes must be an array of strings.";
    cJSON_ArrayForEach(it, scopes)
    {
        if (strcmp(it->valuestring, "/") != 0 && strcmp(it->valuestring, "/keys") != 0)
            return "A managed HSM role's assignableScopes are \"/\" and \"/keys\".";
    }
    return NULL;
}

/* The properties kept and answered for a custom role: each list present (empty when not
 * given), assignableScopes ["/"] and type CustomRole when not given. NULL: out of memory. */
static char *definition_doc(const cJSON *props)
{
    static const char *const lists[] = {"actions", "dataActions", "notActions", "notDataActions"};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "roleName");
    const cJSON *desc = cJSON_GetObjectItemCaseSensitive(props, "description");
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(props, "assignableScopes");
    cJSON *o = cJSON_CreateObject();
    cJSON *s = scopes != NULL ? cJSON_Duplicate(scopes, 1)
                              : cJSON_CreateStringArray((const char *[]){"/"}, 1);
    int ok = o != NULL && s != NULL && cJSON_AddItemToObject(o, "assignableScopes", s);
    if (!ok)
        cJSON_Delete(s);
    cJSON *perms = ok && cJSON_AddStringToObject(o, "description", desc ? desc->valuestring : "")
                       ? cJSON_AddArrayToObject(o, "permissions")
                       : NULL;
    ok = perms != NULL;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(props, "permissions"))
    {
        cJSON *p = ok ? cJSON_CreateObject() : NULL;
        ok = p != NULL && cJSON_AddItemToArray(perms, p);
        if (!ok)
            cJSON_Delete(p);
        for (size_t i = 0; ok && i < sizeof(lists) / sizeof(lists[0]); i++) {
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(it, lists[i]);
            cJSON *copy = list != NULL ? cJSON_Duplicate(list, 1) : cJSON_CreateArray();
            ok = copy != NULL && cJSON_AddItemToObject(p, lists[i], copy);
            if (!ok)
                cJSON_Delete(copy);
        }
    }
    char *text = NULL;
    if (ok && cJSON_AddStringToObject(o, "roleName", name ? name->valuestring : "") &&
        cJSON_AddStringToObject(o, "type", "CustomRole"))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static void h_definition_put(struct srv_req *req)
{
    const struct ks_vault *v = req->found;
    if (!definition_name_ok(req))
        return;
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    size_t n_actions = 0;
    const char *bad = definition_body_error(props, &n_actions);
    if (bad != NULL) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM, "%s (Activity ID: %s)", bad, req->request_id);
        return;
    }
    /* every permission entry's dataActions, less every entry's notDataActions */
    const char **grant = calloc(n_actions + 1, sizeof(*grant));
    const char **deny = calloc(n_actions + 1, sizeof(*deny));
    size_t n_grant = 0, n_deny = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(props, "permissions"))
    {
        if (grant != NULL && deny != NULL) {
            take_strings(cJSON_GetObjectItemCaseSensitive(it, "dataActions"), grant, &n_grant);
            take_strings(cJSON_GetObjectItemCaseSensitive(it, "notDataActions"), deny, &n_deny);
        }
    }
    struct pol_role_def def = {.doc = grant && deny ? definition_doc(props) : NULL};
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "roleName");
    snprintf(def.id, sizeof(def.id), "%s", req->hsm_item);
    snprintf(def.name, sizeof(def.name), "%s", name != NULL ? name->valuestring : "");
    snprintf(def.hsm, sizeof(def.hsm), "%s", v->name);
    enum kv_status st =
        def.doc != NULL ? pol_role_def_put(req->srv->pol, &def, grant, n_grant, deny, n_deny, NULL)
                        : KV_ERR_NOMEM;
    free(grant);
    free(deny);
    cJSON_free(def.doc);
    struct pol_role_def made;
    if (st == KV_ERR_ARM_ROLE_NAME_EXISTS)
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "A role definition named '%s' exists already. (Activity ID: %s)", def.name,
                        req->request_id);
    else if (st == KV_ERR_BAD_PARAM)
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role definition name '%s' is in use. Please use a unique role ID. "
                        "(Activity ID: %s)",
                        def.id, req->request_id);
    else if (st != KV_OK)
        srv_send_error(req, st, NULL);
    else if (!custom_role(req, v->name, def.id, &made)) /* deleted meanwhile */
        definition_not_found(req);
    else {
        kv_log(KV_LOG_INFO, "managed HSM %s: custom role %s put by %s", v->name, def.id,
               req->who.oid);
        /* 201 for a replaced one too, as a Managed HSM answers */
        srv_send_json(req, 201, custom_json(&made));
        pol_role_def_clear(&made);
    }
}

static void h_definition_delete(struct srv_req *req)
{
    const struct ks_vault *v = req->found;
    struct pol_role_def d;
    if (!definition_name_ok(req))
        return;
    if (!custom_role(req, v->name, req->hsm_item, &d)) {
        definition_not_found(req);
        return;
    }
    pol_role_def_clear(&d);
    enum kv_status st = pol_role_def_delete(req->srv->pol, req->hsm_item, &d);
    if (st == KV_ERR_ARM_NO_ROLE_DEFINITION) {
        definition_not_found(req);
    } else if (st == KV_ERR_ARM_ROLE_IN_USE) {
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "The role definition is assigned; delete its role assignments first. "
                        "(Activity ID: %s)",
                        req->request_id);
    } else if (st != KV_OK) {
        srv_send_error(req, st, NULL);
    } else {
        kv_log(KV_LOG_INFO, "managed HSM %s: custom role %s deleted by %s", v->name, d.id,
               req->who.oid);
        srv_send_json(req, 200, custom_json(&d));
        pol_role_def_clear(&d);
    }
}
