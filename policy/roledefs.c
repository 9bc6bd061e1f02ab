/*
 * Custom role definitions: Resource Manager's CustomRole, made through the management
 * plane and kept in the keystore's role table beside the assignments, under keys that
 * start with a NUL (an assignment's key never does):
 *
 *   "\0def\0" + GUID  ->  {"id", "name", "dataActions": [...], "notDataActions": [...],
 *                          "doc": "<the management plane's text of the definition>"}
 *
 * What a definition grants on keys is computed from its data actions when it is made and
 * when it is loaded, so the evaluator (acl.c) reads one mask per custom assignment. The
 * definitions are mirrored in memory, in GUID order, and change under the write lock of
 * the access-control snapshot, as the assignments that name them do.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "kv_str.h"

#define BIT(p) ((pol_perms)1u << (p))

#define DEF_PREFIX     "\0def\0"
#define DEF_PREFIX_LEN 5

/* Azure's data actions on keys (its Microsoft.KeyVault resource provider operations) and
 * the key permissions each one is. */
static const struct {
    const char *action;
    pol_perms perms;
} key_actions[] = {
    {"Microsoft.KeyVault/vaults/keys/read", BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST)},
    {"Microsoft.KeyVault/vaults/keys/update/action", BIT(POL_KEYS_UPDATE)},
    {"Microsoft.KeyVault/vaults/keys/create/action", BIT(POL_KEYS_CREATE)},
    {"Microsoft.KeyVault/vaults/keys/import/action", BIT(POL_KEYS_IMPORT)},
    {"Microsoft.KeyVault/vaults/keys/delete", BIT(POL_KEYS_DELETE)},
    {"Microsoft.KeyVault/vaults/keys/recover/action", BIT(POL_KEYS_RECOVER)},
    {"Microsoft.KeyVault/vaults/keys/backup/action", BIT(POL_KEYS_BACKUP)},
    {"Microsoft.KeyVault/vaults/keys/restore/action", BIT(POL_KEYS_RESTORE)},
    {"Microsoft.KeyVault/vaults/keys/purge/action", BIT(POL_KEYS_PURGE)},
    {"Microsoft.KeyVault/vaults/keys/encrypt/action", BIT(POL_KEYS_ENCRYPT)},
    {"Microsoft.KeyVault/vaults/keys/decrypt/action", BIT(POL_KEYS_DECRYPT)},
    {"Microsoft.KeyVault/vaults/keys/wrap/action", BIT(POL_KEYS_WRAP)},
    {"Microsoft.KeyVault/vaults/keys/unwrap/action", BIT(POL_KEYS_UNWRAP)},
    {"Microsoft.KeyVault/vaults/keys/sign/action", BIT(POL_KEYS_SIGN)},
    {"Microsoft.KeyVault/vaults/keys/verify/action", BIT(POL_KEYS_VERIFY)},
    {"Microsoft.KeyVault/vaults/keys/release/action", BIT(POL_KEYS_RELEASE)},
    {"Microsoft.KeyVault/vaults/keys/rotate/action", BIT(POL_KEYS_ROTATE)},
    {"Microsoft.KeyVault/vaults/keyrotationpolicies/read", BIT(POL_KEYS_GETROTATIONPOLICY)},
    {"Microsoft.KeyVault/vaults/keyrotationpolicies/write", BIT(POL_KEYS_SETROTATIONPOLICY)},
};

/* Managed HSM's data actions (Microsoft.KeyVault/managedHsm/...) and what each one is:
 * key permissions, and its own actions on deleted keys, random bytes, role assignments,
 * full backups and restores, settings, and the security domain's download. */
#define HSM "Microsoft.KeyVault/managedHsm/"
static const struct {
    const char *action;
    pol_perms perms;
} hsm_actions[] = {
    {HSM "keys/read/action",
     BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST) | BIT(POL_KEYS_GETROTATIONPOLICY)},
    {HSM "keys/write/action", BIT(POL_KEYS_UPDATE) | BIT(POL_KEYS_SETROTATIONPOLICY)},
    {HSM "keys/create", BIT(POL_KEYS_CREATE)},
    {HSM "keys/delete", BIT(POL_KEYS_DELETE)},
    {HSM "keys/import/action", BIT(POL_KEYS_IMPORT)},
    {HSM "keys/rotate/action", BIT(POL_KEYS_ROTATE)},
    {HSM "keys/release/action", BIT(POL_KEYS_RELEASE)},
    {HSM "keys/backup/action", BIT(POL_KEYS_BACKUP)},
    {HSM "keys/restore/action", BIT(POL_KEYS_RESTORE)},
    {HSM "keys/encrypt/action", BIT(POL_KEYS_ENCRYPT)},
    {HSM "keys/decrypt/action", BIT(POL_KEYS_DECRYPT)},
    {HSM "keys/wrap/action", BIT(POL_KEYS_WRAP)},
    {HSM "keys/unwrap/action", BIT(POL_KEYS_UNWRAP)},
    {HSM "keys/sign/action", BIT(POL_KEYS_SIGN)},
    {HSM "keys/verify/action", BIT(POL_KEYS_VERIFY)},
    {HSM "keys/deletedKeys/read/action", BIT(POL_HSM_DELETED_READ)},
    {HSM "keys/deletedKeys/delete", BIT(POL_KEYS_PURGE)},
    {HSM "keys/deletedKeys/recover/action", BIT(POL_KEYS_RECOVER)},
    {HSM "rng/action", BIT(POL_HSM_RNG)},
    {HSM "roleAssignments/read/action", BIT(POL_HSM_ROLES_READ)},
    {HSM "roleAssignments/write/action", BIT(POL_HSM_ROLES_WRITE)},
    {HSM "roleAssignments/delete/action", BIT(POL_HSM_ROLES_DELETE)},
    {HSM "roleDefinitions/read/action", BIT(POL_HSM_ROLEDEFS_READ)},
    {HSM "roleDefinitions/write/action", BIT(POL_HSM_ROLEDEFS_WRITE)},
    {HSM "roleDefinitions/delete/action", BIT(POL_HSM_ROLEDEFS_DELETE)},
    {HSM "backup/start/action", BIT(POL_HSM_BACKUP_START)},
    {HSM "backup/status/action", BIT(POL_HSM_BACKUP_STATUS)},
    {HSM "restore/start/action", BIT(POL_HSM_RESTORE_START)},
    {HSM "restore/status/action", BIT(POL_HSM_RESTORE_STATUS)},
    {HSM "settings/read/action", BIT(POL_HSM_SETTINGS_READ)},
    {HSM "settings/write/action", BIT(POL_HSM_SETTINGS_WRITE)},
    {HSM "securitydomain/download/action", BIT(POL_HSM_SD_DOWNLOAD)},
    {HSM "securitydomain/download/read", BIT(POL_HSM_SD_DOWNLOAD_READ)},
    {HSM "securitydomain/upload/read", BIT(POL_HSM_SD_UPLOAD_READ)},
    {HSM "securitydomain/upload/action", BIT(POL_HSM_SD_UPLOAD)},
    {HSM "securitydomain/transferkey/read", BIT(POL_HSM_SD_TRANSFER_KEY_READ)},
};
#undef HSM

/* Whether action @p s matches pattern @p pat: ASCII case ignored, '*' any characters. */
static int action_matches(const char *pat, const char *s)
{
    const char *star = NULL, *resume = NULL;
    while (*s != '\0') {
        if (*pat == '*') {
            star = pat++;
            resume = s;
        } else if (*pat != '\0' && tolower((unsigned char)*pat) == tolower((unsigned char)*s)) {
            pat++;
            s++;
        } else if (star != NULL) {
            pat = star + 1;
            s = ++resume;
        } else {
            return 0;
        }
    }
    while (*pat == '*')
        pat++;
    return *pat == '\0';
}

static int any_matches(const char *const *patterns, size_t n, const char *action)
{
    for (size_t i = 0; i < n; i++) {
        if (patterns[i] != NULL && action_matches(patterns[i], action))
            return 1;
    }
    return 0;
}

pol_perms pol_data_actions_perms(const char *const *grant, size_t n_grant, const char *const *deny,
                                 size_t n_deny)
{
    pol_perms perms = 0;
    for (size_t i = 0; i < sizeof(key_actions) / sizeof(key_actions[0]); i++) {
        if (any_matches(grant, n_grant, key_actions[i].action) &&
            !any_matches(deny, n_deny, key_actions[i].action))
            perms |= key_actions[i].perms;
    }
    return perms;
}

const char *pol_hsm_perm_action(enum pol_perm perm)
{
    for (size_t i = 0; (unsigned)perm < POL_PERM_HSM_END && i < sizeof(hsm_actions) / sizeof(hsm_actions[0]); i++) {
        if (hsm_actions[i].perms & BIT(perm))
            return hsm_actions[i].action;
    }
    return NULL;
}

pol_perms pol_hsm_actions_perms(const char *const *grant, size_t n_grant)
{
    pol_perms perms = 0;
    for (size_t i = 0; i < sizeof(hsm_actions) / sizeof(hsm_actions[0]); i++) {
        if (any_matches(grant, n_grant, hsm_actions[i].action))
            perms |= hsm_actions[i].perms;
    }
    return perms;
}

void pol_role_def_clear(struct pol_role_def *d)
{
    if (d == NULL)
        return;
    free(d->doc);
    d->doc = NULL;
}

void pol_role_defs_free(struct pol_role_def *defs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pol_role_def_clear(&defs[i]);
    free(defs);
}

int pol_defs_record(const void *key, size_t key_len)
{
    return key_len > DEF_PREFIX_LEN && memcmp(key, DEF_PREFIX, DEF_PREFIX_LEN) == 0;
}

/* The GUID of @p text (a GUID, or a path ending in one) in lowercase; 0 when it is none. */
static int guid_of(const char *text, char out[POL_ID_MAX])
{
    const char *slash = strrchr(text, '/');
    const char *guid = slash != NULL ? slash + 1 : text;
    if (!kv_str_is_uuid(guid))
        return 0;
    snprintf(out, POL_ID_MAX, "%s", guid);
    kv_str_lower(out);
    return 1;
}

/* A definition's key in the role table. */
static size_t def_key(const char *guid, char out[DEF_PREFIX_LEN + POL_ID_MAX])
{
    memcpy(out, DEF_PREFIX, DEF_PREFIX_LEN);
    size_t n = strlen(guid);
    memcpy(out + DEF_PREFIX_LEN, guid, n);
    return DEF_PREFIX_LEN + n;
}

size_t pol_def_key(const char *guid, char out[POL_DEF_KEY_MAX])
{
    return def_key(guid, out);
}

/* The strings of array @p a (borrowed from it) into a new array @p out; 0 when @p a is
 * not an array of strings or out of memory. */
static int strings_of(const cJSON *a, const char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (a == NULL)
        return 1;
    if (!cJSON_IsArray(a))
        return 0;
    size_t cap = (size_t)cJSON_GetArraySize(a);
    const char **v = calloc(cap + 1, sizeof(*v));
    if (v == NULL)
        return 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, a)
    {
        if (!cJSON_IsString(it)) {
            free(v);
            return 0;
        }
        v[(*n)++] = it->valuestring;
    }
    *out = v;
    return 1;
}

/* What definition @p d grants: from Resource Manager's data actions, or a Managed HSM's.
 * (Each of an HSM's permissions comes from one data action, so its grant less its deny is
 * what the actions of one take away from the other's.) */
static pol_perms def_perms(const struct pol_role_def *d, const char *const *grant, size_t n_grant,
                           const char *const *deny, size_t n_deny)
{
    if (d->hsm[0] == '\0')
        return pol_data_actions_perms(grant, n_grant, deny, n_deny);
    return pol_hsm_actions_perms(grant, n_grant) & ~pol_hsm_actions_perms(deny, n_deny);
}

/* The record of a definition: what it is made of, the doc included. */
static char *def_record(const struct pol_role_def *d, const char *const *grant, size_t n_grant,
                        const char *const *deny, size_t n_deny)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *g = o ? cJSON_AddArrayToObject(o, "dataActions") : NULL;
    cJSON *x = o ? cJSON_AddArrayToObject(o, "notDataActions") : NULL;
    int ok = g != NULL && x != NULL && cJSON_AddStringToObject(o, "id", d->id) &&
             cJSON_AddStringToObject(o, "name", d->name) &&
             cJSON_AddStringToObject(o, "doc", d->doc) &&
             (d->hsm[0] == '\0' || cJSON_AddStringToObject(o, "hsm", d->hsm));
    for (size_t i = 0; ok && i < n_grant + n_deny; i++) {
        cJSON *s = cJSON_CreateString(i < n_grant ? grant[i] : deny[i - n_grant]);
        ok = s != NULL && cJSON_AddItemToArray(i < n_grant ? g : x, s);
        if (!ok)
            cJSON_Delete(s);
    }
    char *text = ok ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return text;
}

enum kv_status pol_defs_load(const void *val, size_t len, struct pol_role_def **defs, size_t *n)
{
    cJSON *o = cJSON_ParseWithLength(val, len);
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "name"));
    const char *doc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "doc"));
    const char *hsm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "hsm"));
    const char **grant = NULL, **deny = NULL;
    size_t n_grant = 0, n_deny = 0;
    struct pol_role_def d = {0};
    int readable =
        id != NULL && name != NULL && doc != NULL && guid_of(id, d.id) &&
        strlen(name) < sizeof(d.name) && (hsm == NULL || strlen(hsm) < sizeof(d.hsm)) &&
        strings_of(cJSON_GetObjectItemCaseSensitive(o, "dataActions"), &grant, &n_grant) &&
        strings_of(cJSON_GetObjectItemCaseSensitive(o, "notDataActions"), &deny, &n_deny);
    enum kv_status st = KV_OK; /* a record that cannot be read is skipped */
    if (readable) {
        snprintf(d.name, sizeof(d.name), "%s", name);
        snprintf(d.hsm, sizeof(d.hsm), "%s", hsm != NULL ? hsm : "");
        d.perms = def_perms(&d, grant, n_grant, deny, n_deny);
        d.doc = strdup(doc);
        struct pol_role_def *more = realloc(*defs, (*n + 1) * sizeof(**defs));
        if (d.doc == NULL || more == NULL) {
            if (more != NULL)
                *defs = more;
            free(d.doc);
            st = KV_ERR_NOMEM;
        } else {
            *defs = more;
            (*defs)[(*n)++] = d; /* LMDB gives the records in key order: GUID order */
        }
    }
    free(grant);
    free(deny);
    cJSON_Delete(o);
    return st;
}

/* The definition with GUID @p guid (lowercase), or NULL. The caller holds the lock. */
static struct pol_role_def *def_find(const struct pol_ctx *c, const char *guid)
{
    for (size_t i = 0; i < c->n_defs; i++) {
        if (strcmp(c->defs[i].id, guid) == 0)
            return &c->defs[i];
    }
    return NULL;
}

pol_perms pol_def_perms_locked(const struct pol_ctx *c, const char *guid)
{
    const struct pol_role_def *d = def_find(c, guid);
    return d != NULL ? d->perms : 0;
}

int pol_def_exists_locked(const struct pol_ctx *c, const char *guid, const char *hsm)
{
    const struct pol_role_def *d = def_find(c, guid);
    return d != NULL && strcasecmp(d->hsm, hsm) == 0;
}

/* Copy @p from into @p to, the doc as a copy of its own. */
static enum kv_status def_copy(struct pol_role_def *to, const struct pol_role_def *from)
{
    *to = *from;
    to->doc = strdup(from->doc);
    return to->doc != NULL ? KV_OK : KV_ERR_NOMEM;
}

static int guid_order(const void *a, const void *b)
{
    return strcmp(((const struct pol_role_def *)a)->id, ((const struct pol_role_def *)b)->id);
}

enum kv_status pol_defs_next(const struct pol_ctx *c, const char *hsm,
                             const struct pol_role_def *add, size_t n_add,
                             struct pol_role_def **out, size_t *n)
{
    struct pol_role_def *v = malloc((c->n_defs + n_add + 1) * sizeof(*v));
    if (v == NULL)
        return KV_ERR_NOMEM;
    size_t k = 0;
    for (size_t i = 0; i < c->n_defs; i++) {
        if (strcasecmp(c->defs[i].hsm, hsm) != 0)
            v[k++] = c->defs[i];
    }
    if (n_add > 0)
        memcpy(v + k, add, n_add * sizeof(*v));
    *out = v;
    *n = k + n_add;
    return KV_OK;
}

void pol_defs_install(struct pol_ctx *c, const char *hsm, struct pol_role_def *next, size_t n)
{
    for (size_t i = 0; i < c->n_defs; i++) {
        if (strcasecmp(c->defs[i].hsm, hsm) == 0)
            pol_role_def_clear(&c->defs[i]);
    }
    free(c->defs);
    qsort(next, n, sizeof(*next), guid_order);
    c->defs = next;
    c->n_defs = n;
}

enum kv_status pol_role_def_put(struct pol_ctx *c, const struct pol_role_def *def,
                                const char *const *grant, size_t n_grant, const char *const *deny,
                                size_t n_deny, int *created)
{
    struct pol_role_def d = {0};
    enum pol_role builtin;
    int hsm = def->hsm[0] != '\0';
    /* an HSM's roles against its built-in ones, Resource Manager's against Key Vault's */
    if (!guid_of(def->id, d.id) || pol_role_parse(d.id, &builtin) == KV_OK ||
        pol_hsm_role_parse(d.id, &builtin) == KV_OK || (def->name[0] == '\0' && !hsm) ||
        memchr(def->name, '\0', sizeof(def->name)) == NULL ||
        memchr(def->hsm, '\0', sizeof(def->hsm)) == NULL || def->doc == NULL)
        return KV_ERR_BAD_PARAM;
    if (hsm ? pol_hsm_role_parse(def->name, &builtin) == KV_OK
            : pol_role_parse(def->name, &builtin) == KV_OK)
        return KV_ERR_ARM_ROLE_NAME_EXISTS; /* a built-in role's name */
    snprintf(d.name, sizeof(d.name), "%s", def->name);
    snprintf(d.hsm, sizeof(d.hsm), "%s", def->hsm);
    d.perms = def_perms(&d, grant, n_grant, deny, n_deny);
    d.doc = (char *)def->doc; /* borrowed for the record */
    char *rec = def_record(&d, grant, n_grant, deny, n_deny);
    d.doc = rec != NULL ? strdup(def->doc) : NULL;
    if (d.doc == NULL) {
        cJSON_free(rec);
        return KV_ERR_NOMEM;
    }
    char key[DEF_PREFIX_LEN + POL_ID_MAX];
    struct ks_record_op op = {KS_TABLE_ROLES, key, def_key(d.id, key), rec, strlen(rec)};
    pthread_rwlock_wrlock(&c->lock);
    enum kv_status st = KV_OK;
    for (size_t i = 0; i < c->n_defs && st == KV_OK; i++) {
        if (strcmp(c->defs[i].id, d.id) != 0 && strcasecmp(c->defs[i].hsm, d.hsm) == 0 &&
            d.name[0] != '\0' && strcasecmp(c->defs[i].name, d.name) == 0)
            st = KV_ERR_ARM_ROLE_NAME_EXISTS;
    }
    struct pol_role_def *old = st == KV_OK ? def_find(c, d.id) : NULL;
    if (old != NULL && strcmp(old->hsm, d.hsm) != 0) {
        st = KV_ERR_BAD_PARAM; /* the GUID is another scope's role */
        old = NULL;
    }
    /* a new one goes into a new array, made before the write: once the write is committed,
     * nothing can fail */
    struct pol_role_def *next = NULL;
    if (st == KV_OK && old == NULL) {
        next = malloc((c->n_defs + 1) * sizeof(*next));
        if (next == NULL)
            st = KV_ERR_NOMEM;
        else if (c->n_defs != 0)
            memcpy(next, c->defs, c->n_defs * sizeof(*next));
    }
    if (st == KV_OK)
        st = ks_record_apply(c->ks, &op, 1);
    if (st == KV_OK && old != NULL) {
        pol_role_def_clear(old);
        *old = d;
    } else if (st == KV_OK) {
        next[c->n_defs] = d;
        free(c->defs);
        c->defs = next;
        c->n_defs++;
        qsort(c->defs, c->n_defs, sizeof(*c->defs), guid_order);
    } else {
        free(next);
    }
    pthread_rwlock_unlock(&c->lock);
    if (st != KV_OK)
        free(d.doc);
    else if (created != NULL)
        *created = old == NULL;
    cJSON_free(rec);
    return st;
}

enum kv_status pol_role_def_get(struct pol_ctx *c, const char *id, struct pol_role_def *out)
{
    char guid[POL_ID_MAX];
    memset(out, 0, sizeof(*out));
    if (!guid_of(id, guid))
        return KV_ERR_ARM_NO_ROLE_DEFINITION;
    pthread_rwlock_rdlock(&c->lock);
    const struct pol_role_def *d = def_find(c, guid);
    enum kv_status st = d != NULL ? def_copy(out, d) : KV_ERR_ARM_NO_ROLE_DEFINITION;
    pthread_rwlock_unlock(&c->lock);
    if (st != KV_OK)
        memset(out, 0, sizeof(*out));
    return st;
}

enum kv_status pol_role_def_list(struct pol_ctx *c, struct pol_role_def **out, size_t *n)
{
    enum kv_status st = KV_OK;
    *out = NULL;
    *n = 0;
    pthread_rwlock_rdlock(&c->lock);
    struct pol_role_def *v = c->n_defs ? calloc(c->n_defs, sizeof(*v)) : NULL;
    if (c->n_defs && v == NULL)
        st = KV_ERR_NOMEM;
    size_t copied = 0;
    for (; st == KV_OK && copied < c->n_defs; copied++)
        st = def_copy(&v[copied], &c->defs[copied]);
    pthread_rwlock_unlock(&c->lock);
    if (st != KV_OK) {
        pol_role_defs_free(v, copied);
        return st;
    }
    *out = v;
    *n = copied;
    return KV_OK;
}

enum kv_status pol_role_def_delete(struct pol_ctx *c, const char *id, struct pol_role_def *out)
{
    char guid[POL_ID_MAX], key[DEF_PREFIX_LEN + POL_ID_MAX];
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (!guid_of(id, guid))
        return KV_ERR_ARM_NO_ROLE_DEFINITION;
    struct ks_record_op op = {KS_TABLE_ROLES, key, def_key(guid, key), NULL, 0};
    pthread_rwlock_wrlock(&c->lock);
    struct pol_role_def *d = def_find(c, guid);
    enum kv_status st = d != NULL ? KV_OK : KV_ERR_ARM_NO_ROLE_DEFINITION;
    for (size_t i = 0; st == KV_OK && i < c->n_roles; i++) {
        if (c->roles[i].role == POL_ROLE_CUSTOM && strcmp(c->roles[i].role_def, guid) == 0)
            st = KV_ERR_ARM_ROLE_IN_USE;
    }
    if (st == KV_OK && out != NULL)
        st = def_copy(out, d);
    if (st == KV_OK)
        st = ks_record_apply(c->ks, &op, 1);
    if (st == KV_OK) {
        size_t i = (size_t)(d - c->defs);
        pol_role_def_clear(d);
        memmove(&c->defs[i], &c->defs[i + 1], (c->n_defs - i - 1) * sizeof(*c->defs));
        c->n_defs--;
    } else if (out != NULL) {
        pol_role_def_clear(out);
    }
    pthread_rwlock_unlock(&c->lock);
    return st;
}

enum kv_status pol_role_resolve(struct pol_ctx *c, const char *text, enum pol_role *role,
                                char def[POL_ID_MAX])
{
    def[0] = '\0';
    if (pol_role_parse(text, role) == KV_OK)
        return KV_OK;
    char guid[POL_ID_MAX];
    int by_id = guid_of(text, guid);
    enum kv_status st = KV_ERR_BAD_PARAM;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n_defs && st != KV_OK; i++) {
        const struct pol_role_def *d = &c->defs[i];
        if (d->hsm[0] != '\0') /* a Managed HSM's */
            continue;
        if ((by_id && strcmp(d->id, guid) == 0) || strcasecmp(d->name, text) == 0) {
            snprintf(def, POL_ID_MAX, "%s", d->id);
            *role = POL_ROLE_CUSTOM;
            st = KV_OK;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    return st;
}

void pol_assignment_role_name(struct pol_ctx *c, const struct pol_role_assignment *r, char *out,
                              size_t cap)
{
    if (r->role != POL_ROLE_CUSTOM) {
        snprintf(out, cap, "%s", pol_role_name(r->role));
        return;
    }
    pthread_rwlock_rdlock(&c->lock);
    const struct pol_role_def *d = def_find(c, r->role_def);
    snprintf(out, cap, "%s", d != NULL ? d->name : "");
    pthread_rwlock_unlock(&c->lock);
}
