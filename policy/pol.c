/* The policy context, identities and the evaluator. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "kv_file.h"

static const char *const perm_names[POL_PERM_HSM_END] = {
    [POL_KEYS_GET] = "get",
    [POL_KEYS_LIST] = "list",
    [POL_KEYS_CREATE] = "create",
    [POL_KEYS_UPDATE] = "update",
    [POL_KEYS_IMPORT] = "import",
    [POL_KEYS_DELETE] = "delete",
    [POL_KEYS_RECOVER] = "recover",
    [POL_KEYS_BACKUP] = "backup",
    [POL_KEYS_RESTORE] = "restore",
    [POL_KEYS_PURGE] = "purge",
    [POL_KEYS_ENCRYPT] = "encrypt",
    [POL_KEYS_DECRYPT] = "decrypt",
    [POL_KEYS_WRAP] = "wrapKey",
    [POL_KEYS_UNWRAP] = "unwrapKey",
    [POL_KEYS_SIGN] = "sign",
    [POL_KEYS_VERIFY] = "verify",
    [POL_KEYS_RELEASE] = "release",
    [POL_KEYS_ROTATE] = "rotate",
    [POL_KEYS_GETROTATIONPOLICY] = "getrotationpolicy",
    [POL_KEYS_SETROTATIONPOLICY] = "setrotationpolicy",
    [POL_HSM_DELETED_READ] = "keys/deletedKeys/read/action",
    [POL_HSM_RNG] = "rng/action",
    [POL_HSM_ROLES_READ] = "roleAssignments/read/action",
    [POL_HSM_ROLES_WRITE] = "roleAssignments/write/action",
    [POL_HSM_ROLES_DELETE] = "roleAssignments/delete/action",
    [POL_HSM_ROLEDEFS_READ] = "roleDefinitions/read/action",
    [POL_HSM_ROLEDEFS_WRITE] = "roleDefinitions/write/action",
    [POL_HSM_ROLEDEFS_DELETE] = "roleDefinitions/delete/action",
    [POL_HSM_BACKUP_START] = "backup/start/action",
    [POL_HSM_BACKUP_STATUS] = "backup/status/action",
    [POL_HSM_RESTORE_START] = "restore/start/action",
    [POL_HSM_RESTORE_STATUS] = "restore/status/action",
    [POL_HSM_SETTINGS_READ] = "settings/read/action",
    [POL_HSM_SETTINGS_WRITE] = "settings/write/action",
    [POL_HSM_SD_DOWNLOAD] = "securitydomain/download/action",
    [POL_HSM_SD_DOWNLOAD_READ] = "securitydomain/download/read",
    [POL_HSM_SD_UPLOAD_READ] = "securitydomain/upload/read",
    [POL_HSM_SD_UPLOAD] = "securitydomain/upload/action",
    [POL_HSM_SD_TRANSFER_KEY_READ] = "securitydomain/transferkey/read",
};

const char *pol_perm_name(enum pol_perm perm)
{
    return (unsigned)perm < POL_PERM_HSM_END ? perm_names[perm] : "unknown";
}

int pol_perm_changes_state(enum pol_perm perm)
{
    switch (perm) {
    case POL_KEYS_CREATE:
    case POL_KEYS_UPDATE:
    case POL_KEYS_IMPORT:
    case POL_KEYS_DELETE:
    case POL_KEYS_RECOVER:
    case POL_KEYS_RESTORE:
    case POL_KEYS_PURGE:
    case POL_KEYS_ROTATE:
    case POL_KEYS_SETROTATIONPOLICY:
    case POL_HSM_ROLES_WRITE:
    case POL_HSM_ROLES_DELETE:
    case POL_HSM_ROLEDEFS_WRITE:
    case POL_HSM_ROLEDEFS_DELETE:
    case POL_HSM_RESTORE_START:
    case POL_HSM_SETTINGS_WRITE:
    case POL_HSM_SD_UPLOAD:
        return 1;
    default:
        return 0;
    }
}

enum kv_status pol_new(const char *data_dir, const char *tenant_id, struct pol_ctx **out)
{
    enum kv_status st = KV_ERR_NOMEM;
    char path[4096];
    if (sodium_init() < 0)
        return KV_ERR_INTERNAL;
    struct pol_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return KV_ERR_NOMEM;
    if (pthread_rwlock_init(&c->lock, NULL) != 0) {
        free(c);
        return KV_ERR_INTERNAL;
    }
    snprintf(c->tenant_id, sizeof(c->tenant_id), "%s", tenant_id);
    c->token_cache = calloc(POL_TOKEN_CACHE_SLOTS, sizeof(*c->token_cache));
    if (c->token_cache == NULL)
        goto out;
    for (size_t i = 0; i < POL_TOKEN_CACHE_SLOTS; i++)
        pthread_mutex_init(&c->token_cache[i].mu, NULL);
    c->secret = sodium_malloc(POL_SECRET_LEN);
    if (c->secret == NULL)
        goto out;
    st = KV_ERR_STORE;
    if (snprintf(path, sizeof(path), "%s/token.key", data_dir) >= (int)sizeof(path))
        goto out;
    st = kv_secret_file(path, c->secret, POL_SECRET_LEN);
    if (st != KV_OK)
        goto out;
    sodium_mprotect_readonly(c->secret);
    *out = c;
    c = NULL;
out:
    pol_free(c);
    return st;
}

void pol_free(struct pol_ctx *c)
{
    if (c == NULL)
        return;
    if (c->secret != NULL)
        sodium_free(c->secret);
    for (size_t i = 0; i < c->n_ids; i++)
        pol_creds_free(c->ids[i].creds);
    if (c->ids != NULL)
        sodium_memzero(c->ids, c->n_ids * sizeof(*c->ids)); /* client secrets */
    free(c->ids);
    free(c->policies);
    free(c->roles);
    pol_role_defs_free(c->defs, c->n_defs);
    pol_release_free_authorities(c);
    if (c->token_cache != NULL) {
        for (size_t i = 0; i < POL_TOKEN_CACHE_SLOTS; i++)
            pthread_mutex_destroy(&c->token_cache[i].mu);
        free(c->token_cache);
    }
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

const char *pol_tenant(const struct pol_ctx *c)
{
    return c->tenant_id;
}

enum kv_status pol_add_identity(struct pol_ctx *c, struct pol_identity *id)
{
    /* the resource id mi_res_id= finds it by: its own, or the one its name makes */
    char rid[sizeof(id->resource_id)];
    if (id->resource_id[0] != '\0')
        snprintf(rid, sizeof(rid), "%s", id->resource_id);
    else
        snprintf(rid, sizeof(rid),
                 "/subscriptions/" POL_SUBSCRIPTION "/resourceGroups/" POL_RESOURCE_GROUP "/"
                 "providers/Microsoft.ManagedIdentity/userAssignedIdentities/%s",
                 id->name);
    for (size_t i = 0; i < c->n_ids; i++) {
        const struct pol_identity *o = &c->ids[i];
        /* ids are GUIDs, which every lookup matches without regard to case; so are resource
         * ids, names included */
        if (strcasecmp(o->object_id, id->object_id) == 0 ||
            strcasecmp(o->client_id, id->client_id) == 0 || (o->is_default && id->is_default) ||
            strcasecmp(o->resource_id, rid) == 0)
            return KV_ERR_BAD_PARAM;
    }
    struct pol_identity *ids = realloc(c->ids, (c->n_ids + 1) * sizeof(*ids));
    if (ids == NULL)
        return KV_ERR_NOMEM;
    c->ids = ids;
    struct pol_identity *n = &ids[c->n_ids++];
    *n = *id;
    id->creds = NULL; /* the context's now */
    if (n->tenant_id[0] == '\0')
        snprintf(n->tenant_id, sizeof(n->tenant_id), "%s", c->tenant_id);
    memcpy(n->resource_id, rid, sizeof(rid));
    return KV_OK;
}

size_t pol_identity_count(const struct pol_ctx *c)
{
    return c->n_ids;
}

const struct pol_identity *pol_identity_at(const struct pol_ctx *c, size_t i)
{
    return i < c->n_ids ? &c->ids[i] : NULL;
}

int pol_identity_is_app(const struct pol_identity *id)
{
    size_t n_federated = 0;
    return id->client_secret[0] != '\0' ||
           pol_creds_count(id->creds, &n_federated) + n_federated > 0;
}

const struct pol_identity *pol_find_identity(const struct pol_ctx *c, const char *client_id,
                                             const char *object_id, const char *resource_id)
{
    for (size_t i = 0; i < c->n_ids; i++) {
        const struct pol_identity *id = &c->ids[i];
        if (client_id != NULL) {
            if (strcasecmp(id->client_id, client_id) == 0)
                return id;
        } else if (object_id != NULL) {
            if (strcasecmp(id->object_id, object_id) == 0)
                return id;
        } else if (resource_id != NULL) {
            if (strcasecmp(id->resource_id, resource_id) == 0)
                return id;
        } else if (id->is_default) {
            return id;
        }
    }
    return NULL;
}
