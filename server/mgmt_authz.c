/*
 * Microsoft.Authorization on the management plane, for Key Vault's data-plane roles:
 *
 *   PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleAssignments/{guid}
 *   GET {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=F]
 *   GET {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=F]
 *   PUT|GET|DELETE {scope}/providers/Microsoft.Authorization/roleDefinitions/{guid}
 *
 * A scope is the subscription, a resource group, a vault or a key in it. As in Azure,
 * an assignment is named by a GUID, one principal, role and scope make one assignment
 * (409 RoleAssignmentExists), an assignment's principal, role and scope never change
 * (400 RoleAssignmentUpdateNotPermitted), and a list shows the assignments at, above and
 * below its scope (`atScope()`: at and above). The role definitions are Azure's built-in
 * Key Vault roles, as Azure defines them, and the custom roles made here (directory-wide,
 * names unique in any case); policy/ evaluates what each grants on keys.
 * mgmt_api.c routes here after it checked the caller and the api-version.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

/* ---- role definitions ------------------------------------------------------------------- */

/* The control-plane actions that Azure's Key Vault Administrator, Crypto Officer and
 * Reader roles share. */
#define VAULT_READER_ACTIONS                                                                       \
    "Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",                           \
        "Microsoft.Resources/deployments/*",                                                       \
        "Microsoft.Resources/subscriptions/resourceGroups/read", "Microsoft.Support/*",            \
        "Microsoft.KeyVault/checkNameAvailability/read", "Microsoft.KeyVault/deletedVaults/read",  \
        "Microsoft.KeyVault/locations/*/read", "Microsoft.KeyVault/vaults/*/read",                 \
        "Microsoft.KeyVault/operations/read"

#define ACTIONS_MAX 10

/* The one built-in Key Vault role with a condition: which roles it may assign and remove. */
#define DATA_ROLES                                                                                 \
    "{00482a5a-887f-4fb3-b363-3b7fe8e74483, a4417e6f-fecd-4de8-b567-7b0420556985, "                \
    "14b46e9e-c2b7-41b4-b07b-48a6ebf60603, e147488a-f6f5-4113-8e2d-b22465e65bf6, "                 \
    "12338af0-0e69-4776-bea7-57ae8d297424, 21090545-7ca7-4776-b22c-e363652d74d2, "                 \
    "b86a8fe4-44ce-4948-aee5-eccb2c155cd7, 4633458b-17de-408a-b874-0445c86b69e6}"
#define DATA_ACCESS_CONDITION                                                                      \
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/write'})) OR "                     \
    "(@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "                         \
    "ForAnyOfAnyValues:GuidEquals" DATA_ROLES ")) AND "                                            \
    "((!(ActionMatches{'Microsoft.Authorization/roleAssignments/delete'})) OR "                    \
    "(@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId] "                        \
    "ForAnyOfAnyValues:GuidEquals" DATA_ROLES "))"

/* Azure's definition of each role, in enum pol_role's order (Azure's built-in roles
 * reference, the Security section). */
static const struct {
    const char *description;
    const char *actions[ACTIONS_MAX + 1];
    const char *not_actions[ACTIONS_MAX + 1];
    const char *data_actions[ACTIONS_MAX + 1];
    const char *condition; /* with conditionVersion 2.0 */
} definitions[POL_ROLE_COUNT] = {
    [POL_ROLE_ADMINISTRATOR] =
        {"Perform all data plane operations on a key vault and all objects in it, including "
         "certificates, keys, and secrets. Cannot manage key vault resources or manage role "
         "assignments. Only works for key vaults that use the 'Azure role-based access "
         "control' permission model.",
         {VAULT_READER_ACTIONS, NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/*", NULL},
         NULL},
    [POL_ROLE_CRYPTO_OFFICER] =
        {"Perform any action on the keys of a key vault, except manage permissions. Only works "
         "for key vaults that use the 'Azure role-based access control' permission model.",
         {VAULT_READER_ACTIONS, NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/keys/*", "Microsoft.KeyVault/vaults/keyrotationpolicies/*",
          NULL},
         NULL},
    [POL_ROLE_CRYPTO_USER] =
        {"Perform cryptographic operations using keys. Only works for key vaults that use the "
         "'Azure role-based access control' permission model.",
         {NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/update/action",
          "Microsoft.KeyVault/vaults/keys/backup/action",
          "Microsoft.KeyVault/vaults/keys/encrypt/action",
          "Microsoft.KeyVault/vaults/keys/decrypt/action",
          "Microsoft.KeyVault/vaults/keys/wrap/action",
          "Microsoft.KeyVault/vaults/keys/unwrap/action",
          "Microsoft.KeyVault/vaults/keys/sign/action",
          "Microsoft.KeyVault/vaults/keys/verify/action", NULL},
         NULL},
    [POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER] =
        {"Read metadata of keys and perform wrap/unwrap operations. Only works for key vaults "
         "that use the 'Azure role-based access control' permission model.",
         {"Microsoft.EventGrid/eventSubscriptions/write",
          "Microsoft.EventGrid/eventSubscriptions/read",
          "Microsoft.EventGrid/eventSubscriptions/delete", NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/keys/read", "Microsoft.KeyVault/vaults/keys/wrap/action",
          "Microsoft.KeyVault/vaults/keys/unwrap/action", NULL},
         NULL},
    [POL_ROLE_READER] =
        {"Read metadata of key vaults and its certificates, keys, and secrets. Cannot read "
         "sensitive values such as secret contents or key material. Only works for key vaults "
         "that use the 'Azure role-based access control' permission model.",
         {VAULT_READER_ACTIONS, NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/*/read",
          "Microsoft.KeyVault/vaults/secrets/readMetadata/action", NULL},
         NULL},
    [POL_ROLE_CRYPTO_SERVICE_RELEASE_USER] =
        {"Release keys. Only works for key vaults that use the 'Azure role-based access "
         "control' permission model.",
         {NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/keys/release/action", NULL},
         NULL},
    [POL_ROLE_CERTIFICATE_USER] =
        {"Read certificate contents. Only works for key vaults that use the 'Azure role-based "
         "access control' permission model.",
         {NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/certificates/read",
          "Microsoft.KeyVault/vaults/secrets/getSecret/action",
          "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
          "Microsoft.KeyVault/vaults/keys/read", NULL},
         NULL},
    [POL_ROLE_CERTIFICATES_OFFICER] =
        {"Perform any action on the certificates of a key vault, except manage permissions. "
         "Only works for key vaults that use the 'Azure role-based access control' permission "
         "model.",
         {VAULT_READER_ACTIONS, NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/certificatecas/*", "Microsoft.KeyVault/vaults/certificates/*",
          "Microsoft.KeyVault/vaults/certificatecontacts/write", NULL},
         NULL},
    [POL_ROLE_SECRETS_OFFICER] =
        {"Perform any action on the secrets of a key vault, except manage permissions. Only "
         "works for key vaults that use the 'Azure role-based access control' permission model.",
         {VAULT_READER_ACTIONS, NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/secrets/*", NULL},
         NULL},
    [POL_ROLE_SECRETS_USER] =
        {"Read secret contents. Only works for key vaults that use the 'Azure role-based access "
         "control' permission model.",
         {NULL},
         {NULL},
         {"Microsoft.KeyVault/vaults/secrets/getSecret/action",
          "Microsoft.KeyVault/vaults/secrets/readMetadata/action", NULL},
         NULL},
    [POL_ROLE_CONTRIBUTOR] = {"Lets you manage key vaults, but not access to them.",
                              {"Microsoft.Authorization/*/read", "Microsoft.Insights/alertRules/*",
                               "Microsoft.KeyVault/*", "Microsoft.Resources/deployments/*",
                               "Microsoft.Resources/subscriptions/resourceGroups/read",
                               "Microsoft.Support/*", NULL},
                              {"Microsoft.KeyVault/locations/deletedVaults/purge/action",
                               "Microsoft.KeyVault/hsmPools/*", "Microsoft.KeyVault/managedHsms/*",
                               NULL},
                              {NULL},
                              NULL},
    [POL_ROLE_DATA_ACCESS_ADMINISTRATOR] =
        {"Manage access to Azure Key Vault by adding or removing role assignments for the Key "
         "Vault Administrator, Key Vault Certificates Officer, Key Vault Crypto Officer, Key "
         "Vault Crypto Service Encryption User, Key Vault Crypto User, Key Vault Reader, Key "
         "Vault Secrets Officer, or Key Vault Secrets User roles. Includes an ABAC condition to "
         "constrain role assignments.",
         {"Microsoft.Authorization/roleAssignments/write",
          "Microsoft.Authorization/roleAssignments/delete", "Microsoft.Authorization/*/read",
          "Microsoft.Resources/deployments/*",
          "Microsoft.Resources/subscriptions/resourceGroups/read",
          "Microsoft.Resources/subscriptions/read", "Microsoft.Management/managementGroups/read",
          "Microsoft.Resources/deployments/*", "Microsoft.Support/*",
          "Microsoft.KeyVault/vaults/*/read", NULL},
         {NULL},
         {NULL},
         DATA_ACCESS_CONDITION},
};

/* The subscription a request's path names ("" outside one): ids are given under it. */
static const char *path_subscription(const struct srv_req *req)
{
    return req->nseg >= 2 && strcasecmp(req->seg[0], "subscriptions") == 0 ? req->seg[1] : "";
}

static cJSON *string_array(cJSON *parent, const char *name, const char *const *items)
{
    cJSON *a = cJSON_AddArrayToObject(parent, name);
    for (size_t i = 0; a != NULL && items != NULL && items[i] != NULL; i++) {
        cJSON *s = cJSON_CreateString(items[i]);
        if (s == NULL || !cJSON_AddItemToArray(a, s)) {
            cJSON_Delete(s);
            return NULL;
        }
    }
    return a;
}

static cJSON *definition_json(const struct srv_req *req, enum pol_role role)
{
    char id[300];
    const char *sub = path_subscription(req);
    snprintf(id, sizeof(id), "%s%s/providers/Microsoft.Authorization/roleDefinitions/%s",
             sub[0] ? "/subscriptions/" : "", sub, pol_role_id(role));
    cJSON *o = cJSON_CreateObject();
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    cJSON *perms = props ? cJSON_AddArrayToObject(props, "permissions") : NULL;
    cJSON *p = perms ? cJSON_CreateObject() : NULL;
    static const char *const root[] = {"/", NULL};
    int ok = p != NULL && cJSON_AddItemToArray(perms, p);
    if (!ok)
        cJSON_Delete(p);
    ok = ok && cJSON_AddStringToObject(o, "id", id) &&
         cJSON_AddStringToObject(o, "name", pol_role_id(role)) &&
         cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions") &&
         cJSON_AddStringToObject(props, "roleName", pol_role_name(role)) &&
         cJSON_AddStringToObject(props, "type", "BuiltInRole") &&
         cJSON_AddStringToObject(props, "description", definitions[role].description) &&
         string_array(props, "assignableScopes", root) &&
         string_array(p, "actions", definitions[role].actions) &&
         string_array(p, "notActions", definitions[role].not_actions) &&
         string_array(p, "dataActions", definitions[role].data_actions) &&
         string_array(p, "notDataActions", NULL);
    if (ok && definitions[role].condition != NULL)
        ok = cJSON_AddStringToObject(p, "conditionVersion", "2.0") &&
             cJSON_AddStringToObject(p, "condition", definitions[role].condition);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* "roleName eq 'N'" or "type eq 'T'" (N and T compared in any case) as @p field, @p value;
 * "atScopeAndBelow()" (every definition here is assignable everywhere) as "", "". */
static int definition_filter(const char *f, char field[16], char value[160])
{
    field[0] = value[0] = '\0';
    if (f == NULL || strcmp(f, "atScopeAndBelow()") == 0)
        return 1;
    int end = 0;
    return sscanf(f, "%15[A-Za-z] eq '%159[^']'%n", field, value, &end) == 2 && f[end] == '\0' &&
           (strcmp(field, "roleName") == 0 || strcmp(field, "type") == 0);
}

static cJSON *custom_json(const struct srv_req *req, const struct pol_role_def *d);

static void definitions_list(struct srv_req *req)
{
    const char *filter = srv_query_get(req, "$filter");
    char field[16], value[160];
    if (!definition_filter(filter, field, value)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The $filter '%.200s' is not supported: use roleName eq '{name}', "
                        "type eq '{type}' or atScopeAndBelow().",
                        filter);
        return;
    }
    cJSON *doc = cJSON_CreateObject();
    cJSON *value_list = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    int ok = value_list != NULL;
    for (int r = 0; ok && r < POL_ROLE_COUNT; r++) {
        if ((strcmp(field, "roleName") == 0 && strcasecmp(value, pol_role_name(r)) != 0) ||
            (strcmp(field, "type") == 0 && strcasecmp(value, "BuiltInRole") != 0))
            continue;
        cJSON *d = definition_json(req, (enum pol_role)r);
        ok = d != NULL && cJSON_AddItemToArray(value_list, d);
        if (!ok)
            cJSON_Delete(d);
    }
    struct pol_role_def *custom = NULL;
    size_t n = 0;
    ok = ok && pol_role_def_list(req->srv->pol, &custom, &n) == KV_OK;
    for (size_t i = 0; ok && i < n; i++) {
        if (custom[i].hsm[0] != '\0' || /* a Managed HSM's local role */
            (strcmp(field, "roleName") == 0 && strcasecmp(value, custom[i].name) != 0) ||
            (strcmp(field, "type") == 0 && strcasecmp(value, "CustomRole") != 0))
            continue;
        cJSON *d = custom_json(req, &custom[i]);
        ok = d != NULL && cJSON_AddItemToArray(value_list, d);
        if (!ok)
            cJSON_Delete(d);
    }
    pol_role_defs_free(custom, n);
    if (!ok) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

static void definition_get(struct srv_req *req, const char *id)
{
    for (int r = 0; r < POL_ROLE_COUNT; r++) {
        if (strcasecmp(id, pol_role_id(r)) == 0) {
            srv_send_json(req, 200, definition_json(req, (enum pol_role)r));
            return;
        }
    }
    struct pol_role_def d;
    if (pol_role_def_get(req->srv->pol, id, &d) == KV_OK && d.hsm[0] == '\0') {
        srv_send_json(req, 200, custom_json(req, &d));
        pol_role_def_clear(&d);
        return;
    }
    pol_role_def_clear(&d);
    srv_send_errorf(req, KV_ERR_ARM_NO_ROLE_DEFINITION,
                    "The specified role definition with ID '%.64s' does not exist. kvmock "
                    "knows the built-in Key Vault roles and the custom roles made here.",
                    id);
}

/* ---- custom role definitions ------------------------------------------------------------- */

/* A custom role definition's answer: Resource Manager's id, name and type around the
 * properties kept when it was made. */
static cJSON *custom_json(const struct srv_req *req, const struct pol_role_def *d)
{
    char id[300];
    const char *sub = path_subscription(req);
    snprintf(id, sizeof(id),
             "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
             sub[0] ? sub : POL_SUBSCRIPTION, d->id);
    cJSON *o = cJSON_CreateObject();
    cJSON *props = cJSON_Parse(d->doc);
    if (o == NULL || props == NULL || !cJSON_AddItemToObject(o, "properties", props)) {
        cJSON_Delete(o);
        cJSON_Delete(props);
        return NULL;
    }
    if (!cJSON_AddStringToObject(o, "id", id) || !cJSON_AddStringToObject(o, "name", d->id) ||
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleDefinitions")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* The four action lists of a permissions entry, each an array of strings (absent or null:
 * none). */
static const char *const action_lists[] = {"actions", "notActions", "dataActions",
                                           "notDataActions"};

const char *srv_role_def_bad(const cJSON *props)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(props, "roleName");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(props, "type");
    const cJSON *about = cJSON_GetObjectItemCaseSensitive(props, "description");
    const cJSON *perms = cJSON_GetObjectItemCaseSensitive(props, "permissions");
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive(props, "assignableScopes");
    if (!cJSON_IsObject(props))
        return "The 'properties' object is required.";
    if (!cJSON_IsString(name) || name->valuestring[0] == '\0' ||
        strlen(name->valuestring) >= POL_ROLE_NAME_MAX)
        return "properties.roleName is required: a name of at most 255 characters.";
    if (type != NULL && !cJSON_IsNull(type) &&
        !(cJSON_IsString(type) && strcasecmp(type->valuestring, "CustomRole") == 0))
        return "properties.type must be CustomRole: only custom roles can be made.";
    if (about != NULL && !cJSON_IsNull(about) && !cJSON_IsString(about))
        return "properties.description must be a string.";
    if (!cJSON_IsArray(perms))
        return "properties.permissions must be an array of permissions.";
    const cJSON *p, *it;
    cJSON_ArrayForEach(p, perms)
    {
        if (!cJSON_IsObject(p))
            return "Each of properties.permissions must be an object.";
        for (size_t i = 0; i < sizeof(action_lists) / sizeof(action_lists[0]); i++) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, action_lists[i]);
            if (l != NULL && !cJSON_IsNull(l) && !cJSON_IsArray(l))
                return "The actions, notActions, dataActions and notDataActions of a permission "
                       "must be arrays of strings.";
            const cJSON *items = cJSON_IsArray(l) ? l : NULL;
            cJSON_ArrayForEach(it, items)
            {
                if (!cJSON_IsString(it) || it->valuestring[0] == '\0')
                    return "The actions, notActions, dataActions and notDataActions of a "
                           "permission must be arrays of strings.";
            }
        }
    }
    if (!cJSON_IsArray(scopes) || cJSON_GetArraySize(scopes) == 0)
        return "properties.assignableScopes is required: the scopes the role may be assigned "
               "at.";
    cJSON_ArrayForEach(it, scopes)
    {
        char vault[KS_VAULT_NAME_MAX + 1], key[KS_NAME_MAX + 1], group[KS_GROUP_MAX + 1];
        if (!cJSON_IsString(it) || pol_scope_parse(it->valuestring, vault, key, group) != KV_OK)
            return "Each of properties.assignableScopes must be a subscription, a resource "
                   "group, or a Key Vault vault or key.";
    }
    return NULL;
}

/* Add @p v as @p name, or null when it is empty. */
static int add_or_null(cJSON *o, const char *name, const char *v)
{
    return (v[0] ? cJSON_AddStringToObject(o, name, v) : cJSON_AddNullToObject(o, name)) != NULL;
}

/* The text to keep of a custom role definition: @p props (checked) in Resource Manager's
 * shape, every list present, made now by @p by (NULL: kvmock), keeping the creation of
 * @p old (the one it replaces, or NULL). Fills @p grant and @p deny with the data actions
 * and not-data-actions of every permission (borrowed from @p props; the arrays are the
 * caller's to free). NULL when out of memory. */
static char *role_def_doc(const cJSON *props, const char *by, const struct pol_role_def *old,
                          const char ***grant, size_t *n_grant, const char ***deny, size_t *n_deny)
{
    char now[21];
    kv_str_utc(now, ks_now());
    cJSON *kept = old != NULL ? cJSON_Parse(old->doc) : NULL;
    const char *created_on =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kept, "createdOn"));
    /* a replaced one keeps its creator (null: kvmock's own) */
    const char *creator =
        old != NULL ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(kept, "createdBy"))
                    : by;
    const cJSON *about = cJSON_GetObjectItemCaseSensitive(props, "description");
    const cJSON *perms = cJSON_GetObjectItemCaseSensitive(props, "permissions");
    cJSON *o = cJSON_CreateObject();
    cJSON *list = o ? cJSON_AddArrayToObject(o, "permissions") : NULL;
    cJSON *scopes = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(props, "assignableScopes"), 1);
    if (scopes != NULL && (list == NULL || !cJSON_AddItemToObject(o, "assignableScopes", scopes))) {
        cJSON_Delete(scopes);
        scopes = NULL;
    }
    int ok = scopes != NULL &&
             cJSON_AddStringToObject(
                 o, "roleName", cJSON_GetObjectItemCaseSensitive(props, "roleName")->valuestring) &&
             cJSON_AddStringToObject(o, "type", "CustomRole") &&
             cJSON_AddStringToObject(o, "description",
                                     cJSON_IsString(about) ? about->valuestring : "") &&
             cJSON_AddStringToObject(o, "createdOn", created_on ? created_on : now) &&
             cJSON_AddStringToObject(o, "updatedOn", now) &&
             add_or_null(o, "createdBy", creator != NULL ? creator : "") &&
             add_or_null(o, "updatedBy", by != NULL ? by : "");
    cJSON_Delete(kept);
    size_t cap = 1;
    const cJSON *p, *it;
    cJSON_ArrayForEach(p, perms)
    {
        cap += (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "dataActions")) +
               (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "notDataActions"));
    }
    *grant = calloc(cap, sizeof(**grant));
    *deny = calloc(cap, sizeof(**deny));
    *n_grant = *n_deny = 0;
    ok = ok && *grant != NULL && *deny != NULL;
    const cJSON *entries = ok ? perms : NULL;
    cJSON_ArrayForEach(p, entries)
    {
        cJSON *entry = cJSON_CreateObject();
        ok = ok && entry != NULL && cJSON_AddItemToArray(list, entry);
        if (!ok) {
            cJSON_Delete(entry);
            break;
        }
        for (size_t i = 0; ok && i < sizeof(action_lists) / sizeof(action_lists[0]); i++) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(p, action_lists[i]);
            cJSON *copy = cJSON_IsArray(l) ? cJSON_Duplicate(l, 1) : cJSON_CreateArray();
            ok = copy != NULL && cJSON_AddItemToObject(entry, action_lists[i], copy);
            if (!ok)
                cJSON_Delete(copy);
            const cJSON *actions = ok && i >= 2 && cJSON_IsArray(l) ? l : NULL;
            cJSON_ArrayForEach(it, actions)
            {
                if (i == 2)
                    (*grant)[(*n_grant)++] = it->valuestring;
                else
                    (*deny)[(*n_deny)++] = it->valuestring;
            }
        }
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

enum kv_status srv_role_def_put(const struct srv *srv, const char *id, const cJSON *props,
                                const char *by, int *created)
{
    struct pol_role_def old, def = {0};
    int replaces = pol_role_def_get(srv->pol, id, &old) == KV_OK;
    const char **grant = NULL, **deny = NULL;
    size_t n_grant = 0, n_deny = 0;
    def.doc = role_def_doc(props, by, replaces ? &old : NULL, &grant, &n_grant, &deny, &n_deny);
    if (replaces)
        pol_role_def_clear(&old);
    snprintf(def.id, sizeof(def.id), "%s", id);
    snprintf(def.name, sizeof(def.name), "%s",
             cJSON_GetObjectItemCaseSensitive(props, "roleName")->valuestring);
    enum kv_status st =
        def.doc != NULL ? pol_role_def_put(srv->pol, &def, grant, n_grant, deny, n_deny, created)
                        : KV_ERR_NOMEM;
    free(grant);
    free(deny);
    cJSON_free(def.doc);
    return st;
}

/* Answer 400 when @p id is a built-in role's, which cannot be @p done; 1 when it did. */
static int built_in_refused(struct srv_req *req, const char *id, const char *done)
{
    enum pol_role builtin;
    if (pol_role_parse(id, &builtin) != KV_OK)
        return 0;
    srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                    "The role definition '%s' is the built-in role '%s', which cannot be %s.", id,
                    pol_role_name(builtin), done);
    return 1;
}

/* PUT .../roleDefinitions/{id}: create or replace a custom role. */
static void definition_put(struct srv_req *req, const char *id)
{
    if (!kv_str_is_uuid(id)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The role definition ID '%.64s' is not valid: it must be a GUID.", id);
        return;
    }
    if (built_in_refused(req, id, "changed"))
        return;
    const cJSON *props = srv_read_json_body(req) == KV_OK
                             ? cJSON_GetObjectItemCaseSensitive(req->body, "properties")
                             : NULL;
    const char *bad = srv_role_def_bad(props);
    if (bad != NULL) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST, bad);
        return;
    }
    const char *name = cJSON_GetObjectItemCaseSensitive(props, "roleName")->valuestring;
    int created = 0;
    enum kv_status st = srv_role_def_put(req->srv, id, props, req->who.oid, &created);
    if (st == KV_ERR_ARM_ROLE_NAME_EXISTS) {
        srv_send_errorf(req, st,
                        "A role definition named '%.255s' already exists in this directory; role "
                        "names are unique in any case.",
                        name);
        return;
    }
    if (st == KV_ERR_BAD_PARAM) { /* the body passed: the GUID is a managed HSM's role */
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The role definition ID '%s' is a managed HSM's local role; choose "
                        "another GUID.",
                        id);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "custom role '%s' (%s) %s by %s", name, id,
           created ? "created" : "replaced", req->who.oid);
    struct pol_role_def made;
    if (pol_role_def_get(req->srv->pol, id, &made) != KV_OK) { /* deleted meanwhile */
        srv_send_errorf(req, KV_ERR_ARM_NO_ROLE_DEFINITION,
                        "The role definition '%s' was deleted while it was written.", id);
        return;
    }
    /* 201 for a replaced one too: the REST specification's only answer, and the SDKs
     * take no other */
    srv_send_json(req, 201, custom_json(req, &made));
    pol_role_def_clear(&made);
}

/* DELETE .../roleDefinitions/{id}: a custom role that no assignment uses. */
static void definition_delete(struct srv_req *req, const char *id)
{
    if (built_in_refused(req, id, "deleted"))
        return;
    struct pol_role_def d;
    /* a Managed HSM's local role is none of Resource Manager's */
    enum kv_status st = pol_role_def_get(req->srv->pol, id, &d);
    if (st == KV_OK && d.hsm[0] != '\0')
        st = KV_ERR_ARM_NO_ROLE_DEFINITION;
    pol_role_def_clear(&d);
    if (st == KV_OK)
        st = pol_role_def_delete(req->srv->pol, id, &d);
    if (st == KV_ERR_ARM_NO_ROLE_DEFINITION) {
        srv_send_empty(req, 204);
    } else if (st == KV_ERR_ARM_ROLE_IN_USE) {
        srv_send_errorf(req, st,
                        "There are existing role assignments referencing role '%s'. Delete "
                        "them first.",
                        id);
    } else if (st != KV_OK) {
        srv_send_error(req, st, NULL);
    } else {
        kv_log(KV_LOG_INFO, "custom role '%s' (%s) deleted by %s", d.name, d.id, req->who.oid);
        srv_send_json(req, 200, custom_json(req, &d));
        pol_role_def_clear(&d);
    }
}

/* ---- role assignments ------------------------------------------------------------------- */

static void bad_id(struct srv_req *req, const char *id)
{
    srv_send_errorf(req, KV_ERR_ARM_ROLE_ID,
                    "The role assignment ID '%.64s' is not valid. The role assignment ID must be "
                    "a GUID.",
                    id);
}

static cJSON *assignment_json(const char *scope, const struct pol_role_assignment *r,
                              const char *sub)
{
    char id[1200], def[200];
    snprintf(id, sizeof(id), "%s/providers/Microsoft.Authorization/roleAssignments/%s", scope,
             r->id);
    snprintf(def, sizeof(def),
             "/subscriptions/%s/providers/Microsoft.Authorization/roleDefinitions/%s",
             sub[0] ? sub : POL_SUBSCRIPTION, pol_assignment_role_id(r));
    char created[21], updated[21];
    kv_str_utc(created, r->created);
    kv_str_utc(updated, r->updated);
    cJSON *o = cJSON_CreateObject();
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    /* kvmock's identities are service principals (managed identities, applications): the
     * type of a principal whose assignment did not say */
    const char *type = r->principal_type[0] ? r->principal_type : "ServicePrincipal";
    if (props == NULL || !cJSON_AddStringToObject(o, "id", id) ||
        !cJSON_AddStringToObject(o, "name", r->id) ||
        !cJSON_AddStringToObject(o, "type", "Microsoft.Authorization/roleAssignments") ||
        !cJSON_AddStringToObject(props, "roleDefinitionId", def) ||
        !cJSON_AddStringToObject(props, "principalId", r->principal_id) ||
        !cJSON_AddStringToObject(props, "principalType", type) ||
        !cJSON_AddStringToObject(props, "scope", scope) || !add_or_null(props, "condition", "") ||
        !add_or_null(props, "conditionVersion", "") ||
        !add_or_null(props, "createdOn", r->created ? created : "") ||
        !add_or_null(props, "updatedOn", r->updated ? updated : "") ||
        !add_or_null(props, "createdBy", r->created_by) ||
        !add_or_null(props, "updatedBy", r->updated_by) ||
        !add_or_null(props, "delegatedManagedIdentityResourceId", "") ||
        !add_or_null(props, "description", r->description)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Where a scope is: the vault's or key's, else the group's, else the subscription's. */
struct where {
    char vault[KS_VAULT_NAME_MAX + 1];
    char key[KS_NAME_MAX + 1];
    char group[KS_GROUP_MAX + 1]; /* of the vault, for a vault's or key's scope */
};

/* Whether the vault a scope names (@p vault not "", read into @p v), else its group
 * (@p group not ""), exists as the request's path reaches it: KV_OK, KV_ERR_ARM_NOT_FOUND or
 * KV_ERR_ARM_NO_GROUP. */
static enum kv_status scope_status(struct srv_req *req, const char *vault, const char *group,
                                   struct ks_vault *v)
{
    struct ks_group g;
    if (vault[0] != '\0')
        return ks_vault_get(req->srv->ks, vault, v) == KV_OK && srv_in_path_group(req, v)
                   ? KV_OK
                   : KV_ERR_ARM_NOT_FOUND;
    if (group[0] != '\0' && ks_group_get(req->srv->ks, group, &g, NULL) != KV_OK)
        return KV_ERR_ARM_NO_GROUP;
    return KV_OK;
}

/* Answer scope_status()'s @p st. */
static void scope_not_found(struct srv_req *req, enum kv_status st, const char *vault,
                            const char *group)
{
    if (st == KV_ERR_ARM_NO_GROUP)
        srv_arm_group_not_found(req, group);
    else
        srv_send_errorf(req, KV_ERR_ARM_NOT_FOUND, "The vault '%s' was not found.", vault);
}

/* Parse the request's scope and check that what it names exists; else answer. */
static int scope_find(struct srv_req *req, const char *scope, struct where *w)
{
    memset(w, 0, sizeof(*w));
    if (pol_scope_parse(scope, w->vault, w->key, w->group) != KV_OK) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The scope '%.300s' is not a subscription, resource group, Key Vault "
                        "vault or key.",
                        scope);
        return 0;
    }
    struct ks_vault v;
    enum kv_status st = scope_status(req, w->vault, w->group, &v);
    if (st != KV_OK) {
        scope_not_found(req, st, w->vault, w->group);
        return 0;
    }
    if (w->vault[0] != '\0')
        snprintf(w->group, sizeof(w->group), "%s", srv_vault_group(&v));
    return 1;
}

/* Where assignment @p r is (its vault's group looked up); 0 when its vault is gone. */
static int assignment_where(struct srv_req *req, const struct pol_role_assignment *r,
                            struct where *w)
{
    memset(w, 0, sizeof(*w));
    snprintf(w->vault, sizeof(w->vault), "%s", r->vault);
    snprintf(w->key, sizeof(w->key), "%s", r->key);
    snprintf(w->group, sizeof(w->group), "%s", r->group);
    struct ks_vault v;
    if (r->vault[0] == '\0')
        return 1;
    if (ks_vault_get(req->srv->ks, r->vault, &v) != KV_OK)
        return 0;
    snprintf(w->group, sizeof(w->group), "%s", srv_vault_group(&v));
    return 1;
}

/* Whether scope @p a contains scope @p b (or is it): the subscription contains every
 * scope, a group its vaults, a vault its keys. */
static int contains(const struct where *a, const struct where *b)
{
    if (a->group[0] == '\0')
        return 1; /* the subscription */
    if (strcasecmp(a->group, b->group) != 0)
        return 0;
    if (a->vault[0] == '\0')
        return 1; /* the group */
    if (strcasecmp(a->vault, b->vault) != 0)
        return 0;
    return a->key[0] == '\0' || strcasecmp(a->key, b->key) == 0;
}

static void where_scope(const struct where *w, const char *sub, char *out, size_t cap)
{
    int n = snprintf(out, cap, "/subscriptions/%s", sub[0] ? sub : POL_SUBSCRIPTION);
    if (w->group[0] != '\0' && n > 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, "/resourceGroups/%s", w->group);
    if (w->vault[0] != '\0' && n > 0 && (size_t)n < cap)
        n +=
            snprintf(out + n, cap - (size_t)n, "/providers/Microsoft.KeyVault/vaults/%s", w->vault);
    if (w->key[0] != '\0' && n > 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, "/keys/%s", w->key);
}

/* A list's $filter: "atScope()", "principalId eq '{id}'" or "assignedTo('{id}')", alone
 * or joined by " and ". */
struct assignment_filter {
    int at_scope;
    char principal[POL_ID_MAX];
};

static int assignment_filter(const char *f, struct assignment_filter *out)
{
    memset(out, 0, sizeof(*out));
    while (f != NULL && *f != '\0') {
        int end = 0;
        char id[POL_ID_MAX] = "";
        if (strncmp(f, "atScope()", 9) == 0) {
            out->at_scope = 1;
            end = 9;
        } else if (sscanf(f, "principalId eq '%63[^']'%n", id, &end) == 1 ||
                   sscanf(f, "assignedTo('%63[^']')%n", id, &end) == 1) {
            snprintf(out->principal, sizeof(out->principal), "%s", id);
        } else {
            return 0;
        }
        f += end;
        if (strncmp(f, " and ", 5) == 0 && f[5] != '\0')
            f += 5;
        else if (*f != '\0')
            return 0;
    }
    return 1;
}

static void assignments_list(struct srv_req *req, const char *scope)
{
    const char *filter = srv_query_get(req, "$filter");
    struct assignment_filter af;
    if (!assignment_filter(filter, &af)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The $filter '%.200s' is not supported: use atScope(), "
                        "principalId eq '{id}' or assignedTo('{id}'), joined by 'and'.",
                        filter);
        return;
    }
    struct where at;
    if (!scope_find(req, scope, &at))
        return;
    /* a copy of the assignments: more made between the count and the copy may be left
     * out, as if they had come after the list */
    size_t cap = pol_role_all(req->srv->pol, NULL, 0) + 1;
    struct pol_role_assignment *all = calloc(cap, sizeof(*all));
    size_t n = all ? pol_role_all(req->srv->pol, all, cap) : 0;
    n = n < cap ? n : cap;
    cJSON *doc = all ? cJSON_CreateObject() : NULL;
    cJSON *value = doc ? cJSON_AddArrayToObject(doc, "value") : NULL;
    const char *sub = path_subscription(req);
    int ok = value != NULL;
    for (size_t i = 0; ok && i < n; i++) {
        struct where w;
        char own[1024];
        if (all[i].hsm || /* a Managed HSM's local assignment is none of Resource Manager's */
            (af.principal[0] && strcasecmp(af.principal, all[i].principal_id) != 0) ||
            !assignment_where(req, &all[i], &w) ||
            !(contains(&w, &at) || (!af.at_scope && contains(&at, &w))))
            continue;
        where_scope(&w, sub, own, sizeof(own));
        cJSON *item = assignment_json(own, &all[i], sub);
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

/* GET or DELETE of assignment @p id: it answers only at its own scope, reached through
 * the group its vault is in, as a PUT and a list reach it. */
static void assignment_get_or_delete(struct srv_req *req, const char *scope, const char *id)
{
    struct pol_role_assignment r, at = {0};
    struct ks_vault v;
    int found = pol_role_get(req->srv->pol, id, &r);
    int del = strcmp(req->ri->request_method, "DELETE") == 0;
    if (!found && !kv_str_is_uuid(id)) { /* a configured assignment may have any name */
        bad_id(req, id);
        return;
    }
    if (found && (pol_scope_parse(scope, at.vault, at.key, at.group) != KV_OK ||
                  !pol_role_same_scope(&r, &at) ||
                  (at.vault[0] != '\0' && scope_status(req, at.vault, "", &v) != KV_OK)))
        found = 0;
    if (!found) {
        if (del)
            srv_send_empty(req, 204);
        else
            srv_send_errorf(req, KV_ERR_ARM_NO_ROLE_ASSIGNMENT,
                            "The role assignment '%s' does not exist.", id);
        return;
    }
    if (del) {
        enum kv_status st = pol_role_remove(req->srv->pol, id);
        if (st != KV_OK) {
            srv_send_error(req, st, NULL);
            return;
        }
        kv_log(KV_LOG_INFO, "role assignment %s removed by %s", id, req->who.oid);
    }
    srv_send_json(req, 200, assignment_json(scope, &r, path_subscription(req)));
}

static void assignment_put(struct srv_req *req, const char *scope, const char *id)
{
    struct pol_role_assignment r;
    memset(&r, 0, sizeof(r));
    if (!kv_str_is_uuid(id)) {
        bad_id(req, id);
        return;
    }
    snprintf(r.id, sizeof(r.id), "%s", id);
    struct where at;
    if (!scope_find(req, scope, &at))
        return;
    snprintf(r.vault, sizeof(r.vault), "%s", at.vault);
    snprintf(r.key, sizeof(r.key), "%s", at.key);
    if (at.vault[0] == '\0')
        snprintf(r.group, sizeof(r.group), "%s", at.group);
    enum kv_status st = srv_read_json_body(req);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(req->body, "properties");
    const char *def =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "roleDefinitionId"));
    const char *principal =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(props, "principalId"));
    if (st != KV_OK || def == NULL || principal == NULL || principal[0] == '\0' ||
        strlen(principal) >= sizeof(r.principal_id)) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "properties.roleDefinitionId and properties.principalId are required.");
        return;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(props, "principalType");
    const cJSON *about = cJSON_GetObjectItemCaseSensitive(props, "description");
    const cJSON *condition = cJSON_GetObjectItemCaseSensitive(props, "condition");
    if ((type != NULL && !cJSON_IsNull(type) && !cJSON_IsString(type)) ||
        (about != NULL && !cJSON_IsNull(about) && !cJSON_IsString(about))) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "properties.principalType and properties.description are strings.");
        return;
    }
    if (cJSON_IsString(type)) {
        if (!pol_principal_type_valid(type->valuestring)) {
            srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                            "The principal type '%.40s' is not one of User, Group, "
                            "ServicePrincipal, ForeignGroup and Device.",
                            type->valuestring);
            return;
        }
        snprintf(r.principal_type, sizeof(r.principal_type), "%s", type->valuestring);
    }
    /* kvmock's identities are service principals; Azure checks a stated type against the
     * directory (another principal's type kvmock cannot know, and keeps as stated) */
    if (r.principal_type[0] != '\0' && strcmp(r.principal_type, "ServicePrincipal") != 0 &&
        pol_find_identity(req->srv->pol, NULL, principal, NULL) != NULL) {
        srv_send_errorf(req, KV_ERR_ARM_PRINCIPAL_TYPE,
                        "The PrincipalId '%.64s' has type 'ServicePrincipal' , which is different "
                        "from specified PrinciaplType '%s'.",
                        principal, r.principal_type);
        return;
    }
    if (cJSON_IsString(about) && strlen(about->valuestring) >= sizeof(r.description)) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The description has more than the %zu characters kvmock keeps.",
                        sizeof(r.description) - 1);
        return;
    }
    if (cJSON_IsString(about))
        snprintf(r.description, sizeof(r.description), "%s", about->valuestring);
    /* Azure evaluates a condition on every access the assignment grants; kvmock does not,
     * and an assignment without its condition would grant more than it says */
    if (condition != NULL && !cJSON_IsNull(condition) &&
        !(cJSON_IsString(condition) && condition->valuestring[0] == '\0')) {
        srv_send_error(req, KV_ERR_ARM_BAD_REQUEST,
                       "kvmock does not evaluate role assignment conditions: make the "
                       "assignment without properties.condition.");
        return;
    }
    r.updated = ks_now();
    snprintf(r.updated_by, sizeof(r.updated_by), "%s", req->who.oid);
    if (pol_role_resolve(req->srv->pol, def, &r.role, r.role_def) != KV_OK) {
        srv_send_errorf(req, KV_ERR_ARM_BAD_REQUEST,
                        "The role definition '%.200s' is neither a built-in Key Vault role nor a "
                        "custom role made here.",
                        def);
        return;
    }
    snprintf(r.principal_id, sizeof(r.principal_id), "%s", principal);
    struct pol_role_assignment old;
    int existed = pol_role_get(req->srv->pol, id, &old);
    /* the vault or group was found above; whether it still exists is decided again in
     * the transaction that stores the assignment, as a deletion may have come between */
    st = pol_role_put(req->srv->pol, &r);
    if (st == KV_ERR_ARM_ROLE_EXISTS || st == KV_ERR_ARM_ROLE_UPDATE) {
        srv_send_error(req, st, NULL);
        return;
    }
    if (st == KV_ERR_VAULT_NOT_FOUND || st == KV_ERR_ARM_NO_GROUP) {
        scope_not_found(req, st == KV_ERR_ARM_NO_GROUP ? st : KV_ERR_ARM_NOT_FOUND, r.vault,
                        r.group);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st == KV_ERR_BAD_PARAM ? KV_ERR_ARM_BAD_REQUEST : st, NULL);
        return;
    }
    char role_name[POL_ROLE_NAME_MAX];
    pol_assignment_role_name(req->srv->pol, &r, role_name, sizeof(role_name));
    kv_log(KV_LOG_INFO, "role assignment %s (%s) put by %s", id, role_name, req->who.oid);
    pol_role_get(req->srv->pol, id, &r); /* as stored: an update keeps its creation */
    srv_send_json(req, existed ? 200 : 201, assignment_json(scope, &r, path_subscription(req)));
}

void srv_mgmt_authz(struct srv_req *req, const char *scope, int role_definitions, const char *id)
{
    const char *method = req->ri->request_method;
    int get = strcmp(method, "GET") == 0;
    if (role_definitions) {
        if (get && id == NULL)
            definitions_list(req);
        else if (get)
            definition_get(req, id);
        else if (id != NULL && strcmp(method, "PUT") == 0)
            definition_put(req, id);
        else if (id != NULL && strcmp(method, "DELETE") == 0)
            definition_delete(req, id);
        else
            srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    } else if (id == NULL) {
        if (get)
            assignments_list(req, scope);
        else
            srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    } else if (strlen(id) >= POL_ID_MAX) {
        bad_id(req, id);
    } else if (get || strcmp(method, "DELETE") == 0) {
        assignment_get_or_delete(req, scope, id);
    } else if (strcmp(method, "PUT") == 0) {
        assignment_put(req, scope, id);
    } else {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
    }
}
