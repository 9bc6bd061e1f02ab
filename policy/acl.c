/*
 * Access policies and role assignments: kept in the keystore's LMDB tables,
 * mirrored in memory, and the evaluator pol_allowed() over that snapshot.
 *
 * Writers change LMDB first and the snapshot second, under the write lock;
 * the evaluator takes the read lock and allocates nothing.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "kv_str.h"

/* ---- permissions and roles ------------------------------------------------------------ */

/* The key permissions entry @p index of the key list's table grants ("all": every one). */
static pol_perms entry_perms(unsigned index)
{
    return index < POL_PERM_COUNT ? (pol_perms)1u << index : POL_PERMS_ALL;
}

enum kv_status pol_perm_parse(const char *name, pol_perms *out)
{
    struct pol_perm_list l = {0};
    enum kv_status st = pol_list_add(&l, POL_LIST_KEYS, name);
    if (st == KV_OK)
        *out = entry_perms(l.name[0]);
    return st;
}

#define BIT(p) ((pol_perms)1u << (p))

/* Resource Manager's permission names of each list (its KeyPermissions, SecretPermissions,
 * CertificatePermissions and StoragePermissions). The key list's first POL_PERM_COUNT
 * names are the enum pol_perm's, in its order. */
static const char *const secret_names[] = {"all",    "get",     "list",    "set",  "delete",
                                           "backup", "restore", "recover", "purge"};
static const char *const certificate_names[] = {
    "all",        "get",           "list",           "delete",     "create",
    "import",     "update",        "managecontacts", "getissuers", "listissuers",
    "setissuers", "deleteissuers", "manageissuers",  "recover",    "purge",
    "backup",     "restore"};
static const char *const storage_names[] = {
    "all",   "get",    "list",    "delete", "set",     "update", "regeneratekey", "recover",
    "purge", "backup", "restore", "setsas", "listsas", "getsas", "deletesas"};

const char *pol_list_name(enum pol_list list)
{
    static const char *const names[POL_LIST_COUNT] = {"keys", "secrets", "certificates", "storage"};
    return (unsigned)list < POL_LIST_COUNT ? names[list] : "unknown";
}

const char *pol_list_noun(enum pol_list list)
{
    static const char *const nouns[POL_LIST_COUNT] = {"key", "secret", "certificate", "storage"};
    return (unsigned)list < POL_LIST_COUNT ? nouns[list] : "unknown";
}

const char *pol_list_entry(enum pol_list list, unsigned index)
{
    switch (list) {
    case POL_LIST_KEYS:
        return index < POL_PERM_COUNT    ? pol_perm_name((enum pol_perm)index)
               : index == POL_PERM_COUNT ? "all"
                                         : NULL;
    case POL_LIST_SECRETS:
        return index < sizeof(secret_names) / sizeof(*secret_names) ? secret_names[index] : NULL;
    case POL_LIST_CERTIFICATES:
        return index < sizeof(certificate_names) / sizeof(*certificate_names)
                   ? certificate_names[index]
                   : NULL;
    case POL_LIST_STORAGE:
        return index < sizeof(storage_names) / sizeof(*storage_names) ? storage_names[index] : NULL;
    default:
        return NULL;
    }
}

static int list_has(const struct pol_perm_list *l, unsigned index)
{
    for (unsigned i = 0; i < l->n; i++) {
        if (l->name[i] == index)
            return 1;
    }
    return 0;
}

enum kv_status pol_list_add(struct pol_perm_list *l, enum pol_list list, const char *name)
{
    const char *entry;
    for (unsigned i = 0; (entry = pol_list_entry(list, i)) != NULL; i++) {
        if (strcasecmp(entry, name) != 0)
            continue;
        if (!list_has(l, i) && l->n < POL_LIST_MAX)
            l->name[l->n++] = (unsigned char)i;
        return KV_OK;
    }
    return KV_ERR_BAD_PARAM;
}

void pol_policy_settle(struct pol_access_policy *p)
{
    struct pol_perm_list *l = &p->lists[POL_LIST_KEYS];
    if (l->n == 0) {
        for (unsigned i = 0; i < POL_PERM_COUNT; i++) {
            if (p->keys & BIT(i))
                l->name[l->n++] = (unsigned char)i;
        }
        return;
    }
    p->keys = 0;
    for (unsigned i = 0; i < l->n; i++)
        p->keys |= entry_perms(l->name[i]);
}

/* Whether @p p lists no permission at all. */
static int policy_empty(const struct pol_access_policy *p)
{
    for (int k = 0; k < POL_LIST_COUNT; k++) {
        if (p->lists[k].n != 0)
            return 0;
    }
    return 1;
}

static const struct {
    const char *name;
    const char *id;
    pol_perms perms;
} roles[POL_ROLE_COUNT] = {
    [POL_ROLE_ADMINISTRATOR] = {"Key Vault Administrator", "00482a5a-887f-4fb3-b363-3b7fe8e74483",
                                POL_PERMS_ALL},
    [POL_ROLE_CRYPTO_OFFICER] = {"Key Vault Crypto Officer",
                                 "14b46e9e-c2b7-41b4-b07b-48a6ebf60603", POL_PERMS_ALL},
    /* keys/read, update, backup and the cryptographic actions */
    [POL_ROLE_CRYPTO_USER] = {"Key Vault Crypto User", "12338af0-0e69-4776-bea7-57ae8d297424",
                              BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST) | BIT(POL_KEYS_UPDATE) |
                                  BIT(POL_KEYS_BACKUP) | BIT(POL_KEYS_ENCRYPT) |
                                  BIT(POL_KEYS_DECRYPT) | BIT(POL_KEYS_WRAP) |
                                  BIT(POL_KEYS_UNWRAP) | BIT(POL_KEYS_SIGN) |
                                  BIT(POL_KEYS_VERIFY)},
    /* keys/read, wrap and unwrap: what a customer-managed-key service needs */
    [POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER] = {"Key Vault Crypto Service Encryption User",
                                                 "e147488a-f6f5-4113-8e2d-b22465e65bf6",
                                                 BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST) |
                                                     BIT(POL_KEYS_WRAP) | BIT(POL_KEYS_UNWRAP)},
    /* metadata only */
    [POL_ROLE_READER] = {"Key Vault Reader", "21090545-7ca7-4776-b22c-e363652d74d2",
                         BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST) |
                             BIT(POL_KEYS_GETROTATIONPOLICY)},
    /* keys/release/action */
    [POL_ROLE_CRYPTO_SERVICE_RELEASE_USER] = {"Key Vault Crypto Service Release User",
                                              "08bbd89e-9f13-488c-ac41-acfcb10c90ab",
                                              BIT(POL_KEYS_RELEASE)},
    /* certificates/read, secrets/getSecret and readMetadata, keys/read */
    [POL_ROLE_CERTIFICATE_USER] = {"Key Vault Certificate User",
                                   "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
                                   BIT(POL_KEYS_GET) | BIT(POL_KEYS_LIST)},
    /* nothing on keys: certificates, secrets, the management plane, role assignments */
    [POL_ROLE_CERTIFICATES_OFFICER] = {"Key Vault Certificates Officer",
                                       "a4417e6f-fecd-4de8-b567-7b0420556985", 0},
    [POL_ROLE_SECRETS_OFFICER] = {"Key Vault Secrets Officer",
                                  "b86a8fe4-44ce-4948-aee5-eccb2c155cd7", 0},
    [POL_ROLE_SECRETS_USER] = {"Key Vault Secrets User", "4633458b-17de-408a-b874-0445c86b69e6",
                               0},
    [POL_ROLE_CONTRIBUTOR] = {"Key Vault Contributor", "f25e0fa2-a7c8-4377-a976-54943a77a395", 0},
    [POL_ROLE_DATA_ACCESS_ADMINISTRATOR] = {"Key Vault Data Access Administrator",
                                            "8b54135c-b56d-4d72-a534-26097cfdc8d8", 0},
};

int pol_role_text_is(const char *text, const char *name, const char *id)
{
    const char *slash = strrchr(text, '/');
    return strcasecmp(text, name) == 0 || strcasecmp(slash ? slash + 1 : text, id) == 0;
}

enum kv_status pol_role_parse(const char *text, enum pol_role *out)
{
    for (int r = 0; r < POL_ROLE_COUNT; r++) {
        if (pol_role_text_is(text, roles[r].name, roles[r].id)) {
            *out = (enum pol_role)r;
            return KV_OK;
        }
    }
    return KV_ERR_BAD_PARAM;
}

const char *pol_role_name(enum pol_role r)
{
    return (unsigned)r < POL_ROLE_COUNT ? roles[r].name
           : pol_role_is_hsm(r)         ? pol_hsm_role_name(r)
                                        : "unknown";
}

const char *pol_role_id(enum pol_role r)
{
    return (unsigned)r < POL_ROLE_COUNT ? roles[r].id
           : pol_role_is_hsm(r)         ? pol_hsm_role_id(r)
                                        : "";
}

pol_perms pol_role_perms(enum pol_role r)
{
    return (unsigned)r < POL_ROLE_COUNT ? roles[r].perms : pol_hsm_role_perms(r);
}

const char *pol_assignment_role_id(const struct pol_role_assignment *r)
{
    return r->role == POL_ROLE_CUSTOM ? r->role_def : pol_role_id(r->role);
}

/* Copy @p len bytes of @p src as a lowercase string into @p dst. */
static int copy_lower(char *dst, size_t cap, const char *src, size_t len)
{
    if (len == 0 || len >= cap)
        return -1;
    for (size_t i = 0; i < len; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
    dst[len] = '\0';
    return 0;
}

/* The broader ARM scopes: /subscriptions/S and /subscriptions/S/resourceGroups/G (a
 * trailing slash allowed). Returns 1 and sets @p group ("" for the subscription) when
 * @p scope is one of them. */
static int broad_scope(const char *scope, char group[KS_GROUP_MAX + 1])
{
    if (strncasecmp(scope, "/subscriptions/", 15) != 0)
        return 0;
    const char *sub = scope + 15, *end = strchr(sub, '/');
    size_t slen = end ? (size_t)(end - sub) : strlen(sub);
    if (slen == 0 || slen >= POL_ID_MAX)
        return 0;
    if (end == NULL || end[1] == '\0') {
        group[0] = '\0';
        return 1;
    }
    if (strncasecmp(end, "/resourceGroups/", 16) != 0)
        return 0;
    const char *g = end + 16;
    size_t glen = strlen(g);
    if (glen > 0 && g[glen - 1] == '/')
        glen--;
    if (glen == 0 || glen > KS_GROUP_MAX || memchr(g, '/', glen) != NULL)
        return 0;
    memcpy(group, g, glen);
    group[glen] = '\0';
    return ks_group_name_valid(group);
}

enum kv_status pol_scope_parse(const char *scope, char vault[KS_VAULT_NAME_MAX + 1],
                               char key[KS_NAME_MAX + 1], char group[KS_GROUP_MAX + 1])
{
    const char *p = scope;
    if (group != NULL) {
        group[0] = '\0';
        if (broad_scope(scope, group)) {
            vault[0] = key[0] = '\0';
            return KV_OK;
        }
        group[0] = '\0';
    }
    /* The ARM form: /subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/... */
    if (strncasecmp(p, "/subscriptions/", 15) == 0) {
        static const char prov[] = "/providers/microsoft.keyvault";
        const char *at = NULL;
        for (const char *q = p; *q && at == NULL; q++) {
            if (strncasecmp(q, prov, sizeof(prov) - 1) == 0)
                at = q;
        }
        if (at == NULL)
            return KV_ERR_BAD_PARAM;
        p = at + sizeof(prov) - 1;
    }
    if (strncasecmp(p, "/vaults/", 8) != 0)
        return KV_ERR_BAD_PARAM;
    p += 8;
    const char *end = strchr(p, '/');
    size_t vlen = end ? (size_t)(end - p) : strlen(p);
    if (copy_lower(vault, KS_VAULT_NAME_MAX + 1, p, vlen) != 0 || !ks_vault_name_valid(vault))
        return KV_ERR_BAD_PARAM;
    key[0] = '\0';
    if (end == NULL || end[1] == '\0')
        return KV_OK;
    if (strncasecmp(end, "/keys/", 6) != 0)
        return KV_ERR_BAD_PARAM;
    const char *k = end + 6;
    size_t klen = strlen(k);
    if (klen > 0 && k[klen - 1] == '/')
        klen--;
    if (klen == 0 || klen > KS_NAME_MAX)
        return KV_ERR_BAD_PARAM;
    memcpy(key, k, klen);
    key[klen] = '\0';
    return ks_key_name_valid(key) ? KV_OK : KV_ERR_BAD_PARAM;
}

/* ---- records ------------------------------------------------------------------------- */

/* LMDB key of an access policy: vault\0tenant\0object\0application\0, lowercase.
 * Every part ends in a NUL, so a key is never a prefix of another. */
static size_t policy_key(const struct pol_access_policy *p, char *out, size_t cap)
{
    const char *parts[] = {p->vault, p->tenant_id, p->object_id, p->application_id};
    size_t len = 0;
    for (size_t i = 0; i < 4; i++) {
        size_t n = strlen(parts[i]);
        if (len + n + 1 > cap)
            return 0;
        for (size_t j = 0; j < n; j++) {
            char c = parts[i][j];
            out[len++] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
        out[len++] = '\0';
    }
    return len;
}

/* A record: the entry's identity and its lists, each name in the order given (a settled
 * entry: its key list names its keys). */
static char *policy_json(const struct pol_access_policy *p)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    int ok = o && cJSON_AddStringToObject(o, "vault", p->vault) &&
             cJSON_AddStringToObject(o, "tenantId", p->tenant_id) &&
             cJSON_AddStringToObject(o, "objectId", p->object_id) &&
             cJSON_AddStringToObject(o, "applicationId", p->application_id);
    for (int k = 0; ok && k < POL_LIST_COUNT; k++) {
        cJSON *arr = cJSON_AddArrayToObject(o, pol_list_name((enum pol_list)k));
        ok = arr != NULL;
        for (unsigned i = 0; ok && i < p->lists[k].n; i++)
            ok = cJSON_AddItemToArray(
                arr, cJSON_CreateString(pol_list_entry((enum pol_list)k, p->lists[k].name[i])));
    }
    if (ok)
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int copy_str(const cJSON *o, const char *name, char *dst, size_t cap, int required)
{
    const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
    if (v == NULL || strlen(v) >= cap)
        return !required && v == NULL ? (dst[0] = '\0', 1) : 0;
    snprintf(dst, cap, "%s", v);
    return 1;
}

static int policy_from_json(const void *val, size_t len, struct pol_access_policy *p)
{
    cJSON *o = cJSON_ParseWithLength(val, len);
    memset(p, 0, sizeof(*p));
    int ok = o && copy_str(o, "vault", p->vault, sizeof(p->vault), 1) &&
             copy_str(o, "tenantId", p->tenant_id, sizeof(p->tenant_id), 1) &&
             copy_str(o, "objectId", p->object_id, sizeof(p->object_id), 1) &&
             copy_str(o, "applicationId", p->application_id, sizeof(p->application_id), 0);
    /* a record of an older kvmock has the key list alone, in Key Vault's order */
    for (int k = 0; ok && k < POL_LIST_COUNT; k++) {
        const cJSON *it;
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(o, pol_list_name((enum pol_list)k)))
        {
            /* a name kvmock never writes has nothing to keep */
            enum kv_status added =
                cJSON_IsString(it) ? pol_list_add(&p->lists[k], (enum pol_list)k, it->valuestring)
                                   : KV_ERR_BAD_PARAM;
            (void)added;
        }
    }
    pol_policy_settle(p);
    cJSON_Delete(o);
    return ok;
}

/* Add string @p v as @p name unless it is empty. */
static int add_nonempty(cJSON *o, const char *name, const char *v)
{
    return v[0] == '\0' || cJSON_AddStringToObject(o, name, v) != NULL;
}

static char *role_json(const struct pol_role_assignment *r)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "id", r->id) &&
        cJSON_AddStringToObject(o, "principalId", r->principal_id) &&
        cJSON_AddStringToObject(o, "role", pol_assignment_role_id(r)) &&
        cJSON_AddStringToObject(o, "vault", r->vault) &&
        cJSON_AddStringToObject(o, "key", r->key) && add_nonempty(o, "group", r->group) &&
        (!r->hsm || cJSON_AddTrueToObject(o, "hsm")) &&
        (!r->hsm_keys || cJSON_AddTrueToObject(o, "hsmKeys")) &&
        add_nonempty(o, "principalType", r->principal_type) &&
        add_nonempty(o, "description", r->description) &&
        cJSON_AddNumberToObject(o, "created", (double)r->created) &&
        cJSON_AddNumberToObject(o, "updated", (double)r->updated) &&
        add_nonempty(o, "createdBy", r->created_by) && add_nonempty(o, "updatedBy", r->updated_by))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* A whole number of seconds, or 0. */
static int64_t seconds(const cJSON *o, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
    double v = cJSON_IsNumber(n) ? n->valuedouble : 0;
    return v >= 0 && v < 253402300800.0 ? (int64_t)v : 0; /* up to the year 9999 */
}

static int role_from_json(const void *val, size_t len, struct pol_role_assignment *r)
{
    cJSON *o = cJSON_ParseWithLength(val, len);
    memset(r, 0, sizeof(*r));
    const char *role = o ? cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "role")) : NULL;
    r->hsm = o != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "hsm"));
    r->hsm_keys = r->hsm && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "hsmKeys"));
    /* a role that is no built-in one is a custom definition's GUID */
    int known = role != NULL && (r->hsm ? pol_hsm_role_parse(role, &r->role) == KV_OK
                                        : pol_role_parse(role, &r->role) == KV_OK);
    if (role != NULL && !known && kv_str_is_uuid(role) &&
        copy_lower(r->role_def, sizeof(r->role_def), role, strlen(role)) == 0) {
        r->role = POL_ROLE_CUSTOM;
        known = 1;
    }
    int ok = o && known && copy_str(o, "id", r->id, sizeof(r->id), 1) &&
             copy_str(o, "principalId", r->principal_id, sizeof(r->principal_id), 1) &&
             copy_str(o, "vault", r->vault, sizeof(r->vault), 1) &&
             copy_str(o, "key", r->key, sizeof(r->key), 0) &&
             copy_str(o, "group", r->group, sizeof(r->group), 0) &&
             copy_str(o, "principalType", r->principal_type, sizeof(r->principal_type), 0) &&
             copy_str(o, "description", r->description, sizeof(r->description), 0) &&
             copy_str(o, "createdBy", r->created_by, sizeof(r->created_by), 0) &&
             copy_str(o, "updatedBy", r->updated_by, sizeof(r->updated_by), 0);
    if (ok) {
        r->created = seconds(o, "created");
        r->updated = seconds(o, "updated");
    }
    cJSON_Delete(o);
    return ok;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* The snapshot being loaded: it replaces the current one only once complete. */
struct load_arg {
    enum ks_table table;
    struct pol_access_policy *policies;
    size_t n_policies;
    struct pol_role_assignment *roles;
    size_t n_roles;
    /* custom role definitions: loaded by reload(), or a batch's next ones (pol_defs_next()) */
    struct pol_role_def *defs;
    size_t n_defs;
};

static enum kv_status load_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                              void *arg)
{
    struct load_arg *a = arg;
    if (a->table == KS_TABLE_ROLES && pol_defs_record(key, key_len))
        return pol_defs_load(val, val_len, &a->defs, &a->n_defs);
    if (a->table == KS_TABLE_POLICIES) {
        struct pol_access_policy p;
        if (!policy_from_json(val, val_len, &p))
            return KV_OK; /* skip what cannot be read */
        struct pol_access_policy *n = realloc(a->policies, (a->n_policies + 1) * sizeof(*n));
        if (n == NULL)
            return KV_ERR_NOMEM;
        a->policies = n;
        a->policies[a->n_policies++] = p;
    } else {
        struct pol_role_assignment r;
        if (!role_from_json(val, val_len, &r))
            return KV_OK;
        struct pol_role_assignment *n = realloc(a->roles, (a->n_roles + 1) * sizeof(*n));
        if (n == NULL)
            return KV_ERR_NOMEM;
        a->roles = n;
        a->roles[a->n_roles++] = r;
    }
    return KV_OK;
}

/* Make @p next the snapshot (the caller holds the write lock); @p next is emptied. */
static void install(struct pol_ctx *c, struct load_arg *next)
{
    free(c->policies);
    free(c->roles);
    c->policies = next->policies;
    c->n_policies = next->n_policies;
    c->roles = next->roles;
    c->n_roles = next->n_roles;
    next->policies = NULL;
    next->roles = NULL;
    next->n_policies = next->n_roles = 0;
}

/* Reload the snapshot from LMDB. The caller holds the write lock. A reload that fails
 * (out of memory) keeps the snapshot it had rather than a part of the new one. */
static enum kv_status reload(struct pol_ctx *c)
{
    struct load_arg a = {.table = KS_TABLE_POLICIES};
    enum kv_status st = ks_record_scan(c->ks, KS_TABLE_POLICIES, NULL, 0, NULL, 0, load_fn, &a);
    if (st == KV_OK) {
        a.table = KS_TABLE_ROLES;
        st = ks_record_scan(c->ks, KS_TABLE_ROLES, NULL, 0, NULL, 0, load_fn, &a);
    }
    if (st != KV_OK) {
        free(a.policies);
        free(a.roles);
        pol_role_defs_free(a.defs, a.n_defs);
        return st;
    }
    install(c, &a);
    pol_role_defs_free(c->defs, c->n_defs);
    c->defs = a.defs;
    c->n_defs = a.n_defs;
    return KV_OK;
}

enum kv_status pol_attach(struct pol_ctx *c, struct ks_env *ks)
{
    pthread_rwlock_wrlock(&c->lock);
    c->ks = ks;
    enum kv_status st = reload(c);
    pthread_rwlock_unlock(&c->lock);
    return st;
}

size_t pol_policy_list(struct pol_ctx *c, const char *vault, struct pol_access_policy *out,
                       size_t cap)
{
    size_t n = 0;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n_policies; i++) {
        if (strcasecmp(c->policies[i].vault, vault) != 0)
            continue;
        if (n < cap)
            out[n] = c->policies[i];
        n++;
    }
    pthread_rwlock_unlock(&c->lock);
    return n;
}

int pol_role_same_scope(const struct pol_role_assignment *a,
                        const struct pol_role_assignment *b)
{
    /* a Managed HSM's "/" and "/keys" reach alike but are two scopes, as it names them */
    return strcasecmp(a->vault, b->vault) == 0 && strcasecmp(a->key, b->key) == 0 &&
           strcasecmp(a->group, b->group) == 0 && a->hsm == b->hsm && a->hsm_keys == b->hsm_keys;
}

int pol_role_same(const struct pol_role_assignment *a, const struct pol_role_assignment *b)
{
    return a->role == b->role && strcasecmp(a->role_def, b->role_def) == 0 &&
           strcasecmp(a->principal_id, b->principal_id) == 0 && pol_role_same_scope(a, b);
}

int pol_principal_type_valid(const char *t)
{
    static const char *const types[] = {"User", "Group", "ServicePrincipal", "ForeignGroup",
                                        "Device"};
    for (size_t i = 0; t[0] != '\0' && i < sizeof(types) / sizeof(types[0]); i++) {
        if (strcmp(t, types[i]) == 0)
            return 1;
    }
    return t[0] == '\0';
}

/* ---- changes ----------------------------------------------------------------------------- */

/*
 * A change is built as a list of record operations first, from the snapshot, and then
 * written in one keystore transaction (with the vault's own write when there is one),
 * all under the write lock: access control never shows half a change, and a change
 * that fails leaves nothing behind.
 */
struct batch {
    struct ks_record_op *ops;
    size_t n, cap;
    /* The snapshot after the change, made before it is written: once the write is
     * committed, installing it cannot fail. Ordered as LMDB orders the records. */
    struct load_arg next;
};

/* Add an operation; the key and value are copied. A NULL @p val deletes (by prefix). */
static enum kv_status batch_add(struct batch *b, enum ks_table table, const void *key,
                                size_t key_len, const char *val)
{
    size_t val_len = val != NULL ? strlen(val) : 0;
    if (b->n == b->cap) {
        size_t cap = b->cap ? 2 * b->cap : 8;
        struct ks_record_op *ops = realloc(b->ops, cap * sizeof(*ops));
        if (ops == NULL)
            return KV_ERR_NOMEM;
        b->ops = ops;
        b->cap = cap;
    }
    char *buf = malloc(key_len + val_len + 1);
    if (buf == NULL)
        return KV_ERR_NOMEM;
    memcpy(buf, key, key_len);
    if (val != NULL)
        memcpy(buf + key_len, val, val_len + 1);
    b->ops[b->n++] =
        (struct ks_record_op){table, buf, key_len, val ? buf + key_len : NULL, val_len};
    return KV_OK;
}

static void batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free((void *)b->ops[i].key); /* the key and value share one block */
    free(b->ops);
    free(b->next.policies);
    free(b->next.roles);
    free(b->next.defs); /* the array alone: its definitions are the context's */
}

/* The role assignments' LMDB key: the lowercase id and its NUL, so that one id is never
 * a prefix of another. @return its length, or 0 when the id does not fit. */
static size_t role_key(const char *id, char out[POL_ID_MAX + 1])
{
    return copy_lower(out, POL_ID_MAX + 1, id, strlen(id)) == 0 ? strlen(out) + 1 : 0;
}

static int policy_valid(const struct pol_access_policy *p)
{
    return ks_vault_name_valid(p->vault) && p->object_id[0] != '\0' && p->tenant_id[0] != '\0';
}

static int role_valid(const struct pol_role_assignment *ra)
{
    /* a vault's or key's scope; else a group's (a valid name) or the subscription's ("") */
    int vault_scope = ra->vault[0] != '\0';
    char key[POL_ID_MAX + 1];
    int custom = ra->role == POL_ROLE_CUSTOM;
    /* a Managed HSM's local assignment names a local role, at the HSM's scope or a key's */
    if (ra->hsm ? !(pol_role_is_hsm(ra->role) || custom) || ra->vault[0] == '\0'
                : pol_role_is_hsm(ra->role) || ra->hsm_keys)
        return 0;
    return ((unsigned)ra->role < POL_ROLE_COUNT || custom || ra->hsm) &&
           (custom ? kv_str_is_uuid(ra->role_def) : ra->role_def[0] == '\0') &&
           ra->principal_id[0] != '\0' && memchr(ra->group, '\0', sizeof(ra->group)) != NULL &&
           (vault_scope
                ? ks_vault_name_valid(ra->vault) && ra->group[0] == '\0'
                : ra->key[0] == '\0' && (ra->group[0] == '\0' || ks_group_name_valid(ra->group))) &&
           (ra->key[0] == '\0' || ks_key_name_valid(ra->key)) &&
           memchr(ra->principal_type, '\0', sizeof(ra->principal_type)) != NULL &&
           pol_principal_type_valid(ra->principal_type) &&
           memchr(ra->description, '\0', sizeof(ra->description)) != NULL &&
           memchr(ra->updated_by, '\0', sizeof(ra->updated_by)) != NULL &&
           role_key(ra->id, key) != 0;
}

/* Whether the change takes role assignment @p r away before it puts any. */
static int role_cleared(const struct pol_acl_change *chg, const struct pol_role_assignment *r)
{
    return chg->clear_roles && strcasecmp(r->vault, chg->vault) == 0;
}

/*
 * Check role assignment @p i of the change against the assignments that stay and the
 * change's earlier ones, as in Azure: one principal, role and scope make one
 * assignment, and an assignment keeps its principal, role and scope. Fill @p rec with
 * the record to store: a new assignment's creation is this update; an existing one's
 * is kept.
 */
static enum kv_status role_check(const struct pol_ctx *c, const struct pol_acl_change *chg,
                                 size_t i, struct pol_role_assignment *rec)
{
    const struct pol_role_assignment *ra = &chg->roles[i];
    *rec = *ra;
    rec->created = ra->updated;
    snprintf(rec->created_by, sizeof(rec->created_by), "%s", ra->updated_by);
    for (size_t j = 0; j < c->n_roles + i; j++) {
        int earlier = j >= c->n_roles;
        const struct pol_role_assignment *r = earlier ? &chg->roles[j - c->n_roles] : &c->roles[j];
        if (!earlier && role_cleared(chg, r))
            continue;
        int same = pol_role_same(r, ra);
        if (strcasecmp(r->id, ra->id) == 0) {
            if (!same)
                return KV_ERR_ARM_ROLE_UPDATE;
            if (!earlier) { /* an update keeps the creation */
                rec->created = r->created;
                snprintf(rec->created_by, sizeof(rec->created_by), "%s", r->created_by);
            }
        } else if (same) {
            return KV_ERR_ARM_ROLE_EXISTS;
        }
    }
    return KV_OK;
}

/* What entry @p p of a change (settled) leaves its identity, from what it had, @p had:
 * @p p's lists become the result and its keys the key permissions they name. */
static void update_policy(enum pol_update kind, const struct pol_access_policy *had,
                          struct pol_access_policy *p)
{
    int none_listed = kind == POL_UPDATE_REMOVE && policy_empty(p); /* takes them all */
    for (int k = 0; k < POL_LIST_COUNT && (kind == POL_UPDATE_ADD || kind == POL_UPDATE_REMOVE);
         k++) {
        const struct pol_perm_list *given = &p->lists[k];
        /* "all" taken away empties its list; another name goes by itself (a list holding
         * "all" keeps it) */
        unsigned all = k == POL_LIST_KEYS ? POL_PERM_COUNT : 0;
        int remove_all = none_listed || list_has(given, all);
        struct pol_perm_list l = {0};
        for (unsigned i = 0; i < had->lists[k].n; i++) {
            unsigned char name = had->lists[k].name[i];
            if (kind == POL_UPDATE_ADD || (!remove_all && !list_has(given, name)))
                l.name[l.n++] = name;
        }
        for (unsigned i = 0; kind == POL_UPDATE_ADD && i < given->n; i++) {
            if (!list_has(&l, given->name[i]))
                l.name[l.n++] = given->name[i];
        }
        p->lists[k] = l;
    }
    p->keys = 0; /* from the key list alone */
    pol_policy_settle(p);
}

static int same_identity(const struct pol_access_policy *a, const struct pol_access_policy *b)
{
    return strcasecmp(a->vault, b->vault) == 0 && strcasecmp(a->tenant_id, b->tenant_id) == 0 &&
           strcasecmp(a->object_id, b->object_id) == 0 &&
           strcasecmp(a->application_id, b->application_id) == 0;
}

/* What identity @p p's entry is before entry @p i of the change: the change's latest
 * earlier entry for it, else the snapshot's (none when the change clears). */
static const struct pol_access_policy *policy_before(const struct pol_ctx *c,
                                                     const struct pol_acl_change *chg,
                                                     const struct pol_access_policy *made, size_t i)
{
    static const struct pol_access_policy none;
    const struct pol_access_policy *p = &chg->policies[i];
    for (size_t j = i; j-- > 0;) {
        if (same_identity(&chg->policies[j], p))
            return &made[j];
    }
    for (size_t j = 0; !chg->clear_policies && j < c->n_policies; j++) {
        if (same_identity(&c->policies[j], p))
            return &c->policies[j];
    }
    return &none;
}

/* LMDB's order: the bytes of the keys, then the shorter first. */
static int key_order(const char *a, size_t alen, const char *b, size_t blen)
{
    int d = memcmp(a, b, alen < blen ? alen : blen);
    return d != 0 ? d : (alen > blen) - (alen < blen);
}

static int policy_order(const void *x, const void *y)
{
    char a[512], b[512];
    size_t alen = policy_key(x, a, sizeof(a)), blen = policy_key(y, b, sizeof(b));
    return key_order(a, alen, b, blen);
}

static int role_order(const void *x, const void *y)
{
    char a[POL_ID_MAX + 1], b[POL_ID_MAX + 1];
    size_t alen = role_key(((const struct pol_role_assignment *)x)->id, a);
    size_t blen = role_key(((const struct pol_role_assignment *)y)->id, b);
    return key_order(a, alen, b, blen);
}

/* Start the next snapshot from the current one, with room for @p more_policies and
 * @p more_roles, leaving out the access policies of a vault the change clears and the
 * role assignments it takes away (@p chg NULL: none). */
static enum kv_status next_begin(const struct pol_ctx *c, const struct pol_acl_change *chg,
                                 size_t more_policies, size_t more_roles, struct load_arg *n)
{
    n->policies = malloc((c->n_policies + more_policies + 1) * sizeof(*n->policies));
    n->roles = malloc((c->n_roles + more_roles + 1) * sizeof(*n->roles));
    if (n->policies == NULL || n->roles == NULL)
        return KV_ERR_NOMEM;
    for (size_t i = 0; i < c->n_policies; i++) {
        if (chg == NULL || !chg->clear_policies || strcasecmp(c->policies[i].vault, chg->vault))
            n->policies[n->n_policies++] = c->policies[i];
    }
    for (size_t i = 0; i < c->n_roles; i++) {
        if (chg == NULL || !role_cleared(chg, &c->roles[i]))
            n->roles[n->n_roles++] = c->roles[i];
    }
    return KV_OK;
}

/* Put access policy @p p into the next snapshot in place of its identity's (@p drop:
 * only take that one out). */
static void next_policy(struct load_arg *n, const struct pol_access_policy *p, int drop)
{
    size_t i = 0;
    while (i < n->n_policies && !same_identity(&n->policies[i], p))
        i++;
    if (i < n->n_policies) /* at most one per identity */
        n->policies[i] = n->policies[--n->n_policies];
    if (!drop)
        n->policies[n->n_policies++] = *p;
}

/* Put role assignment @p r into the next snapshot in place of the one with its id. */
static void next_role(struct load_arg *n, const struct pol_role_assignment *r)
{
    size_t i = 0;
    while (i < n->n_roles && strcasecmp(n->roles[i].id, r->id) != 0)
        i++;
    n->roles[i] = *r;
    if (i == n->n_roles)
        n->n_roles++;
}

static void next_sort(struct load_arg *n)
{
    qsort(n->policies, n->n_policies, sizeof(*n->policies), policy_order);
    qsort(n->roles, n->n_roles, sizeof(*n->roles), role_order);
}

/* Turn @p chg into record operations and the snapshot after them. The caller holds
 * the write lock. */
static enum kv_status build(const struct pol_ctx *c, const struct pol_acl_change *chg,
                            struct batch *b)
{
    char key[512];
    size_t vlen = chg->vault != NULL ? strlen(chg->vault) : 0;
    if (vlen == 0 ? chg->clear_policies || chg->clear_roles || chg->clear_defs || chg->n_policies
                  : copy_lower(key, sizeof(key) - 1, chg->vault, vlen) != 0)
        return KV_ERR_BAD_PARAM;
    for (size_t i = 0; i < chg->n_policies; i++) {
        if (!policy_valid(&chg->policies[i]) || strcasecmp(chg->policies[i].vault, chg->vault) != 0)
            return KV_ERR_BAD_PARAM;
    }
    for (size_t i = 0; i < chg->n_roles; i++) {
        const struct pol_role_assignment *ra = &chg->roles[i];
        /* a custom role the change takes away is not assigned by it */
        if (!role_valid(ra) ||
            (ra->role == POL_ROLE_CUSTOM &&
             (!pol_def_exists_locked(c, ra->role_def, ra->hsm ? ra->vault : "") ||
              (chg->clear_defs && ra->hsm && strcasecmp(ra->vault, chg->vault) == 0))))
            return KV_ERR_BAD_PARAM;
    }
    enum kv_status st = next_begin(c, chg, chg->n_policies, chg->n_roles, &b->next);
    if (st == KV_OK && chg->clear_policies) /* vault\0 is the prefix of its policies' keys */
        st = batch_add(b, KS_TABLE_POLICIES, key, vlen + 1, NULL);
    for (size_t i = 0; st == KV_OK && chg->clear_roles && i < c->n_roles; i++) {
        size_t klen = role_key(c->roles[i].id, key);
        if (role_cleared(chg, &c->roles[i]) && klen != 0)
            st = batch_add(b, KS_TABLE_ROLES, key, klen, NULL);
    }
    for (size_t i = 0; st == KV_OK && chg->clear_defs && i < c->n_defs; i++) {
        if (strcasecmp(c->defs[i].hsm, chg->vault) == 0)
            st = batch_add(b, KS_TABLE_ROLES, key, pol_def_key(c->defs[i].id, key), NULL);
    }
    if (st == KV_OK && chg->clear_defs)
        st = pol_defs_next(c, chg->vault, NULL, 0, &b->next.defs, &b->next.n_defs);
    struct pol_access_policy *made =
        chg->n_policies ? calloc(chg->n_policies, sizeof(*made)) : NULL;
    if (chg->n_policies && made == NULL)
        st = KV_ERR_NOMEM;
    for (size_t i = 0; st == KV_OK && i < chg->n_policies; i++) {
        struct pol_access_policy p = chg->policies[i];
        pol_policy_settle(&p);
        update_policy(chg->kind, policy_before(c, chg, made, i), &p);
        made[i] = p;
        /* an update that leaves an identity no permission removes its entry */
        int drop = chg->kind != POL_UPDATE_SET && policy_empty(&p);
        size_t klen = policy_key(&p, key, sizeof(key));
        char *json = klen && !drop ? policy_json(&p) : NULL;
        if (klen == 0)
            st = KV_ERR_BAD_PARAM;
        else if (!drop && json == NULL)
            st = KV_ERR_NOMEM;
        else
            st = batch_add(b, KS_TABLE_POLICIES, key, klen, json);
        cJSON_free(json);
        next_policy(&b->next, &p, drop);
    }
    free(made);
    for (size_t i = 0; st == KV_OK && i < chg->n_roles; i++) {
        struct pol_role_assignment rec;
        st = role_check(c, chg, i, &rec);
        char *json = st == KV_OK ? role_json(&rec) : NULL;
        if (st == KV_OK && json == NULL)
            st = KV_ERR_NOMEM;
        if (st == KV_OK)
            st = batch_add(b, KS_TABLE_ROLES, key, role_key(rec.id, key), json);
        cJSON_free(json);
        if (st == KV_OK)
            next_role(&b->next, &rec);
    }
    if (st == KV_OK)
        next_sort(&b->next);
    return st;
}

/* Install the snapshot that batch @p b, of a change of vault or Managed HSM @p vault, made
 * (its custom role definitions too, when it took the HSM's away). The caller holds the
 * write lock, and has written the batch. */
static void install_batch(struct pol_ctx *c, const char *vault, struct batch *b)
{
    install(c, &b->next);
    if (b->next.defs != NULL)
        pol_defs_install(c, vault, b->next.defs, b->next.n_defs);
    b->next.defs = NULL;
    b->next.n_defs = 0;
}

/* A vault's write that goes with an access control change (pol_vault_put()). */
struct vault_write {
    const struct ks_vault *v;
    int create;             /* enum ks_vault_write */
    struct ks_group *group; /* not NULL: a new vault, its group made with it if need be */
    int *group_created;
};

/* Write vault @p w->v (when @p w is not NULL) and change @p chg in one transaction, then
 * reload. With @p scope, the change is written only while its scope's vault or group
 * exists. */
static enum kv_status commit(struct pol_ctx *c, const struct vault_write *w,
                             const struct pol_acl_change *chg,
                             const struct pol_role_assignment *scope)
{
    struct batch b = {0};
    pthread_rwlock_wrlock(&c->lock);
    enum kv_status st = build(c, chg, &b);
    if (st == KV_OK && w != NULL && w->group != NULL)
        st = ks_vault_create_in_group(c->ks, w->v, b.ops, b.n, w->group, w->group_created);
    else if (st == KV_OK && w != NULL)
        st = ks_vault_put_with(c->ks, w->v, w->create, b.ops, b.n);
    else if (st == KV_OK && scope != NULL)
        st = ks_record_apply_at(c->ks, scope->vault, scope->hsm, scope->group, b.ops, b.n);
    else if (st == KV_OK)
        st = ks_record_apply(c->ks, b.ops, b.n);
    if (st == KV_OK)
        install_batch(c, chg->vault, &b);
    pthread_rwlock_unlock(&c->lock);
    batch_free(&b);
    return st;
}

/* pol_vault_put() and pol_vault_create_in_group(): the checks, then the commit. */
static enum kv_status vault_commit(struct pol_ctx *c, const struct vault_write *w,
                                   const struct pol_acl_change *chg)
{
    struct pol_acl_change none = {.vault = w->v->name};
    if (chg != NULL && strcasecmp(chg->vault, w->v->name) != 0)
        return KV_ERR_BAD_PARAM;
    /* a Managed HSM's assignments are its local ones, a vault's never are */
    for (size_t i = 0; chg != NULL && i < chg->n_roles; i++) {
        if (chg->roles[i].vault[0] != '\0' && chg->roles[i].hsm != w->v->hsm)
            return KV_ERR_BAD_PARAM;
    }
    return commit(c, w, chg != NULL ? chg : &none, NULL);
}

enum kv_status pol_vault_put(struct pol_ctx *c, const struct ks_vault *v, int create,
                             const struct pol_acl_change *chg)
{
    struct vault_write w = {v, create, NULL, NULL};
    return vault_commit(c, &w, chg);
}

enum kv_status pol_vault_create_in_group(struct pol_ctx *c, const struct ks_vault *v,
                                         const struct pol_acl_change *chg, struct ks_group *group,
                                         int *created)
{
    struct vault_write w = {v, KS_VAULT_CREATE, group, created};
    return vault_commit(c, &w, chg);
}

enum kv_status pol_acl_apply(struct pol_ctx *c, const struct pol_acl_change *chg)
{
    return commit(c, NULL, chg, NULL);
}

enum kv_status pol_vault_delete(struct pol_ctx *c, const char *name, const char *resource_id,
                                struct ks_deleted_vault *out)
{
    struct batch always = {0}, removed = {0};
    struct ks_deleted_vault d;
    struct ks_vault v;
    pthread_rwlock_wrlock(&c->lock);
    /* under the lock, as every vault write takes it: the name stays of this kind */
    enum kv_status got = ks_vault_get(c->ks, name, &v);
    if (got != KV_OK && got != KV_ERR_VAULT_NOT_FOUND) { /* out of memory, or the store */
        pthread_rwlock_unlock(&c->lock);
        return got;
    }
    int hsm = got == KV_OK && v.hsm;
    /* a vault's role assignments are Resource Manager's and go; an HSM's are its own and
     * stay, with its custom roles, until it is purged */
    struct pol_acl_change its_roles = {.vault = name, .clear_roles = !hsm};
    struct pol_acl_change its_policies = {
        .vault = name, .clear_policies = 1, .clear_roles = hsm, .clear_defs = hsm};
    enum kv_status st = build(c, &its_roles, &always);
    if (st == KV_OK)
        st = build(c, &its_policies, &removed);
    if (st == KV_OK)
        st = ks_vault_delete_with(c->ks, name, resource_id, always.ops, always.n, removed.ops,
                                  removed.n, &d);
    if (st == KV_OK && hsm && d.deleted_date == 0) {
        install_batch(c, name, &removed);
        if (out != NULL)
            *out = d;
    } else if (st == KV_OK) {
        /* the roles of the one snapshot; the policies of the other when the vault went */
        struct load_arg *policies_from = d.deleted_date == 0 ? &removed.next : &always.next;
        struct pol_access_policy *keep = always.next.policies;
        size_t n_keep = always.next.n_policies;
        always.next.policies = policies_from->policies;
        always.next.n_policies = policies_from->n_policies;
        policies_from->policies = keep;
        policies_from->n_policies = n_keep;
        install(c, &always.next);
        if (out != NULL)
            *out = d;
    }
    pthread_rwlock_unlock(&c->lock);
    batch_free(&always);
    batch_free(&removed);
    return st;
}

enum kv_status pol_deleted_vault_purge(struct pol_ctx *c, const char *name, int hsm)
{
    struct pol_acl_change kept = {
        .vault = name, .clear_policies = 1, .clear_roles = hsm, .clear_defs = hsm};
    struct batch b = {0};
    int applied = 0;
    pthread_rwlock_wrlock(&c->lock);
    enum kv_status st = build(c, &kept, &b);
    if (st == KV_OK)
        st = ks_deleted_vault_purge(c->ks, name, hsm, b.ops, b.n, &applied);
    if (st == KV_OK && applied)
        install_batch(c, name, &b);
    pthread_rwlock_unlock(&c->lock);
    batch_free(&b);
    return st;
}

typedef char vault_name[KS_VAULT_NAME_MAX + 1];

static int name_cmp(const void *a, const void *b)
{
    return strcasecmp(*(const vault_name *)a, *(const vault_name *)b);
}

/* Keep @p name as the @p n-th of @p all unless it is "" (a group's or the subscription's
 * scope, or Resource Manager's custom role). @return how many are kept now. */
static size_t name_keep(vault_name *all, size_t n, const char *name)
{
    if (name[0] != '\0')
        snprintf(all[n++], sizeof(*all), "%s", name);
    return n;
}

/* The vaults and Managed HSMs that access control names (its access policies', its
 * assignments' and its HSM custom roles'), each once: copied under the read lock, sorted
 * and made unique after it. */
static enum kv_status named_vaults(struct pol_ctx *c, vault_name **names, size_t *n)
{
    *n = 0;
    pthread_rwlock_rdlock(&c->lock);
    size_t cap = c->n_policies + c->n_roles + c->n_defs;
    vault_name *all = malloc((cap ? cap : 1) * sizeof(*all));
    for (size_t i = 0; all != NULL && i < c->n_policies; i++)
        *n = name_keep(all, *n, c->policies[i].vault);
    for (size_t i = 0; all != NULL && i < c->n_roles; i++)
        *n = name_keep(all, *n, c->roles[i].vault);
    for (size_t i = 0; all != NULL && i < c->n_defs; i++)
        *n = name_keep(all, *n, c->defs[i].hsm);
    pthread_rwlock_unlock(&c->lock);
    *names = all;
    if (all == NULL)
        return KV_ERR_NOMEM;
    qsort(all, *n, sizeof(*all), name_cmp);
    size_t kept = 0;
    for (size_t i = 0; i < *n; i++) {
        if (kept == 0 || strcasecmp(all[kept - 1], all[i]) != 0)
            memmove(all[kept++], all[i], sizeof(*all));
    }
    *n = kept;
    return KV_OK;
}

enum kv_status pol_vault_gone(struct pol_ctx *c, const char *name, int *cleared)
{
    struct ks_vault v;
    struct ks_deleted_vault d;
    *cleared = 0;
    /* a first look without the lock: most names are held */
    enum kv_status held = ks_vault_get(c->ks, name, &v);
    if (held == KV_ERR_VAULT_NOT_FOUND)
        held = ks_deleted_vault_get(c->ks, name, &d);
    if (held != KV_ERR_VAULT_NOT_FOUND)
        return held; /* KV_OK: held */
    struct pol_acl_change gone = {
        .vault = name, .clear_policies = 1, .clear_roles = 1, .clear_defs = 1};
    struct batch b = {0};
    pthread_rwlock_wrlock(&c->lock);
    enum kv_status st = build(c, &gone, &b);
    if (st == KV_OK)
        st = ks_record_apply_gone(c->ks, name, b.ops, b.n, cleared);
    if (st == KV_OK && *cleared)
        install_batch(c, name, &b);
    pthread_rwlock_unlock(&c->lock);
    batch_free(&b);
    return st;
}

enum kv_status pol_sweep(struct pol_ctx *c, size_t *cleared)
{
    vault_name *names = NULL;
    size_t n = 0, done = 0;
    enum kv_status st = named_vaults(c, &names, &n);
    for (size_t i = 0; i < n; i++) {
        int one = 0;
        enum kv_status one_st = pol_vault_gone(c, names[i], &one);
        if (st == KV_OK)
            st = one_st; /* the first failure; the other names are still looked at */
        done += (size_t)one;
    }
    free(names);
    if (cleared != NULL)
        *cleared = done;
    return st;
}

enum kv_status pol_policy_put(struct pol_ctx *c, const struct pol_access_policy *p)
{
    struct pol_acl_change chg = {.vault = p->vault, .policies = p, .n_policies = 1};
    return pol_acl_apply(c, &chg);
}

enum kv_status pol_role_put(struct pol_ctx *c, const struct pol_role_assignment *ra)
{
    struct pol_acl_change chg = {.vault = ra->vault, .roles = ra, .n_roles = 1};
    return commit(c, NULL, &chg, ra);
}

/* Remove, in one transaction, the assignments with id @p id (not NULL), else those at
 * group @p group's scope. @return KV_ERR_BAD_PARAM when an id matched none. */
static enum kv_status remove_roles(struct pol_ctx *c, const char *id, const char *group)
{
    struct batch b = {0};
    char key[POL_ID_MAX + 1];
    enum kv_status st = KV_OK;
    pthread_rwlock_wrlock(&c->lock);
    st = next_begin(c, NULL, 0, 0, &b.next);
    b.next.n_roles = 0; /* kept below */
    for (size_t i = 0; st == KV_OK && i < c->n_roles; i++) {
        const struct pol_role_assignment *r = &c->roles[i];
        int hit = id != NULL ? strcasecmp(r->id, id) == 0
                             : r->vault[0] == '\0' && r->group[0] != '\0' &&
                                   strcasecmp(r->group, group) == 0;
        size_t klen = hit ? role_key(r->id, key) : 0;
        if (klen != 0)
            st = batch_add(&b, KS_TABLE_ROLES, key, klen, NULL);
        else
            b.next.roles[b.next.n_roles++] = *r;
    }
    if (st == KV_OK && b.n == 0 && id != NULL)
        st = KV_ERR_BAD_PARAM;
    if (st == KV_OK)
        st = ks_record_apply(c->ks, b.ops, b.n);
    if (st == KV_OK)
        install(c, &b.next);
    pthread_rwlock_unlock(&c->lock);
    batch_free(&b);
    return st;
}

enum kv_status pol_role_remove(struct pol_ctx *c, const char *id)
{
    return remove_roles(c, id, NULL);
}

enum kv_status pol_role_remove_group(struct pol_ctx *c, const char *group)
{
    return group[0] != '\0' ? remove_roles(c, NULL, group) : KV_ERR_BAD_PARAM;
}

size_t pol_role_all(struct pol_ctx *c, struct pol_role_assignment *out, size_t cap)
{
    pthread_rwlock_rdlock(&c->lock);
    size_t n = c->n_roles;
    for (size_t i = 0; i < n && i < cap; i++)
        out[i] = c->roles[i];
    pthread_rwlock_unlock(&c->lock);
    return n;
}

/* Whether assignment @p r reaches vault @p v (whose group is @p group): at the vault's scope
 * or a key's in it, at the group's, or at the subscription's. */
static int reaches(const struct pol_role_assignment *r, const struct ks_vault *v,
                   const char *group)
{
    /* a Managed HSM has its local assignments alone, which reach nothing else */
    if (r->hsm != v->hsm)
        return 0;
    if (r->vault[0] != '\0')
        return strcasecmp(r->vault, v->name) == 0;
    return r->group[0] == '\0' || strcasecmp(r->group, group) == 0;
}

static const char *vault_group(const struct ks_vault *v)
{
    return v->group[0] != '\0' ? v->group : POL_RESOURCE_GROUP;
}

size_t pol_role_list(struct pol_ctx *c, const struct ks_vault *vault,
                     struct pol_role_assignment *out, size_t cap)
{
    size_t n = 0;
    const char *group = vault_group(vault);
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n_roles; i++) {
        if (!reaches(&c->roles[i], vault, group))
            continue;
        if (n < cap)
            out[n] = c->roles[i];
        n++;
    }
    pthread_rwlock_unlock(&c->lock);
    return n;
}

int pol_role_get(struct pol_ctx *c, const char *id, struct pol_role_assignment *out)
{
    int found = 0;
    pthread_rwlock_rdlock(&c->lock);
    for (size_t i = 0; i < c->n_roles && !found; i++) {
        if (strcasecmp(c->roles[i].id, id) == 0) {
            *out = c->roles[i];
            found = 1;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    return found;
}

/* ---- the evaluator ----------------------------------------------------------------------- */

enum kv_status pol_allowed(struct pol_ctx *c, const struct pol_claims *who,
                           const struct ks_vault *vault, const char *key_name, enum pol_perm perm)
{
    if ((unsigned)perm >= POL_PERM_HSM_END)
        return KV_ERR_ACCESS_DENIED;
    /* Tokens only work in their own directory. */
    const char *vault_tenant = vault->tenant_id[0] ? vault->tenant_id : c->tenant_id;
    if (strcasecmp(who->tid, vault_tenant) != 0)
        return KV_ERR_UNAUTHORIZED;

    /* a Managed HSM decides by its local role assignments alone */
    int rbac = vault->rbac || vault->hsm;
    enum kv_status st = rbac ? KV_ERR_RBAC_DENIED : KV_ERR_ACCESS_DENIED;
    const char *group = vault_group(vault);
    pthread_rwlock_rdlock(&c->lock);
    if (rbac) {
        for (size_t i = 0; i < c->n_roles && st != KV_OK; i++) {
            const struct pol_role_assignment *r = &c->roles[i];
            /* the subscription's scope reaches every vault; a group's, those in it */
            if (strcasecmp(r->principal_id, who->oid) != 0 || !reaches(r, vault, group))
                continue;
            /* a vault-scope assignment reaches every key; a key-scope one only its key */
            if (r->key[0] != '\0' && (key_name == NULL || strcasecmp(r->key, key_name) != 0))
                continue;
            pol_perms granted = r->role == POL_ROLE_CUSTOM ? pol_def_perms_locked(c, r->role_def)
                                                           : pol_role_perms(r->role);
            if (granted & BIT(perm))
                st = KV_OK;
        }
    } else {
        for (size_t i = 0; i < c->n_policies && st != KV_OK; i++) {
            const struct pol_access_policy *p = &c->policies[i];
            if (strcasecmp(p->vault, vault->name) != 0 ||
                strcasecmp(p->tenant_id, who->tid) != 0 ||
                strcasecmp(p->object_id, who->oid) != 0)
                continue;
            if (p->application_id[0] != '\0' && strcasecmp(p->application_id, who->appid) != 0)
                continue;
            if (p->keys & BIT(perm))
                st = KV_OK;
        }
    }
    pthread_rwlock_unlock(&c->lock);
    return st;
}

/* ---- a Managed HSM's access control in its full backups ---------------------------------- */

struct access_scan {
    const char *hsm;
    cJSON *assignments, *definitions;
};

/* Keep the records of the HSM's local assignments and custom definitions. */
static enum kv_status access_scan_fn(const void *key, size_t key_len, const void *val,
                                     size_t val_len, void *arg)
{
    struct access_scan *a = arg;
    int def = pol_defs_record(key, key_len);
    cJSON *o = cJSON_ParseWithLength(val, val_len);
    const char *owner =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, def ? "hsm" : "vault"));
    int mine = owner != NULL && strcasecmp(owner, a->hsm) == 0 &&
               (def || cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "hsm")));
    if (!mine) {
        cJSON_Delete(o); /* another scope's, or unreadable: loading skips those too */
        return KV_OK;
    }
    if (!cJSON_AddItemToArray(def ? a->definitions : a->assignments, o)) {
        cJSON_Delete(o);
        return KV_ERR_NOMEM;
    }
    return KV_OK;
}

enum kv_status pol_hsm_access_export(struct pol_ctx *c, const char *hsm, char **out)
{
    *out = NULL;
    cJSON *doc = cJSON_CreateObject();
    struct access_scan a = {hsm, doc ? cJSON_AddArrayToObject(doc, "roleAssignments") : NULL,
                            doc ? cJSON_AddArrayToObject(doc, "roleDefinitions") : NULL};
    enum kv_status st = a.assignments != NULL && a.definitions != NULL ? KV_OK : KV_ERR_NOMEM;
    pthread_rwlock_rdlock(&c->lock);
    if (st == KV_OK)
        st = ks_record_scan(c->ks, KS_TABLE_ROLES, NULL, 0, NULL, 0, access_scan_fn, &a);
    pthread_rwlock_unlock(&c->lock);
    if (st == KV_OK && (*out = cJSON_PrintUnformatted(doc)) == NULL)
        st = KV_ERR_NOMEM;
    cJSON_Delete(doc);
    return st;
}

/* Whether assignment @p r is Managed HSM @p hsm's own. */
static int hsm_local(const struct pol_role_assignment *r, const char *hsm)
{
    return r->hsm && strcasecmp(r->vault, hsm) == 0;
}

/* Set string member @p name of object @p o to @p value (last). Not cJSON's replace, which
 * out of memory leaves a member without a name. */
static int set_member(cJSON *o, const char *name, const char *value)
{
    cJSON *v = cJSON_CreateString(value);
    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (v != NULL && cJSON_AddItemToObject(o, name, v))
        return 1;
    cJSON_Delete(v);
    return 0;
}

/* @p text with every @p from (a GUID) replaced by @p to (one of the same length). */
static void replace_guid(char *text, const char *from, const char *to)
{
    size_t n = strlen(from);
    for (char *p = text; *p != '\0'; p++) {
        if (strncasecmp(p, from, n) == 0)
            memcpy(p, to, n);
    }
}

/* The GUIDs a restore gave the backup's definitions that another scope holds. */
struct guid_map {
    char (*from)[37], (*to)[37];
    size_t n;
};

/* The definitions a restore makes the HSM's, for the next snapshot. */
struct def_list {
    struct pol_role_def *v;
    size_t n;
};

/* Make definition record @p o Managed HSM @p hsm's, add it to the batch and to @p made; its
 * GUID, when another scope holds it, becomes a new one (in @p map, for the assignments). */
static enum kv_status access_put_def(const struct pol_ctx *c, const char *hsm, cJSON *o,
                                     struct guid_map *map, struct def_list *made, struct batch *b)
{
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    cJSON *doc = cJSON_GetObjectItemCaseSensitive(o, "doc");
    if (id == NULL || !kv_str_is_uuid(id) || !cJSON_IsString(doc))
        return KV_ERR_BAD_BACKUP;
    char guid[37], fresh[37];
    snprintf(guid, sizeof(guid), "%s", id);
    kv_str_lower(guid);
    for (size_t i = 0; i < c->n_defs; i++) {
        if (strcmp(c->defs[i].id, guid) == 0 && strcasecmp(c->defs[i].hsm, hsm) != 0) {
            char(*from)[37] = realloc(map->from, (map->n + 1) * sizeof(*from));
            if (from != NULL)
                map->from = from;
            char(*to)[37] = realloc(map->to, (map->n + 1) * sizeof(*to));
            if (to != NULL)
                map->to = to;
            if (from == NULL || to == NULL)
                return KV_ERR_NOMEM;
            kv_str_uuid_random(fresh);
            memcpy(map->from[map->n], guid, sizeof(guid));
            memcpy(map->to[map->n++], fresh, sizeof(fresh));
            replace_guid(doc->valuestring, guid, fresh); /* the answer names it */
            memcpy(guid, fresh, sizeof(guid));
            break;
        }
    }
    if (!set_member(o, "id", guid) || !set_member(o, "hsm", hsm))
        return KV_ERR_NOMEM;
    char *text = cJSON_PrintUnformatted(o), key[POL_DEF_KEY_MAX];
    if (text == NULL)
        return KV_ERR_NOMEM;
    size_t before = made->n;
    enum kv_status st = pol_defs_load(text, strlen(text), &made->v, &made->n); /* as loading */
    if (st == KV_OK && made->n == before) /* out of memory, or unreadable: a second try says */
        st = pol_defs_load(text, strlen(text), &made->v, &made->n);
    if (st == KV_OK && made->n != before + 1)
        st = KV_ERR_BAD_BACKUP; /* a record loading would skip */
    if (st == KV_OK)
        st = batch_add(b, KS_TABLE_ROLES, key, pol_def_key(guid, key), text);
    cJSON_free(text);
    return st;
}

/* Make assignment record @p o Managed HSM @p hsm's and add it to the batch: a new id when
 * another scope holds its id, and its custom role as @p map renamed it. */
static enum kv_status access_put_role(const struct pol_ctx *c, const char *hsm, cJSON *o,
                                      const struct guid_map *map, struct batch *b)
{
    const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "id"));
    const char *role = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "role"));
    if (id == NULL || role == NULL)
        return KV_ERR_BAD_BACKUP;
    for (size_t i = 0; i < map->n; i++) {
        if (strcasecmp(role, map->from[i]) == 0 && !set_member(o, "role", map->to[i]))
            return KV_ERR_NOMEM;
    }
    for (size_t i = 0; i < c->n_roles; i++) {
        char fresh[37];
        if (strcasecmp(c->roles[i].id, id) == 0 && !hsm_local(&c->roles[i], hsm)) {
            kv_str_uuid_random(fresh);
            if (!set_member(o, "id", fresh))
                return KV_ERR_NOMEM;
            break;
        }
    }
    if (!set_member(o, "vault", hsm))
        return KV_ERR_NOMEM;
    char *text = cJSON_PrintUnformatted(o), key[POL_ID_MAX + 1];
    if (text == NULL)
        return KV_ERR_NOMEM;
    struct pol_role_assignment r;
    size_t klen = 0;
    enum kv_status st = KV_ERR_BAD_BACKUP;
    /* out of memory, or unreadable: a second try says which */
    int read = role_from_json(text, strlen(text), &r) || role_from_json(text, strlen(text), &r);
    if (read && r.hsm && (klen = role_key(r.id, key)) != 0)
        st = batch_add(b, KS_TABLE_ROLES, key, klen, text);
    if (st == KV_OK)
        next_role(&b->next, &r);
    cJSON_free(text);
    return st;
}

enum kv_status pol_hsm_access_restore(struct pol_ctx *c, const char *hsm, const char *access,
                                      pol_write_fn write, void *arg)
{
    if (access == NULL) /* a backup that kept none: the HSM's stay as they are */
        return write(NULL, 0, arg);
    cJSON *doc = cJSON_Parse(access), *it;
    if (doc == NULL) /* out of memory, or not JSON: only a second failure says which */
        doc = cJSON_Parse(access);
    cJSON *assignments = cJSON_GetObjectItemCaseSensitive(doc, "roleAssignments");
    cJSON *definitions = cJSON_GetObjectItemCaseSensitive(doc, "roleDefinitions");
    if (!cJSON_IsArray(assignments) || !cJSON_IsArray(definitions)) {
        cJSON_Delete(doc);
        return KV_ERR_BAD_BACKUP;
    }
    struct batch b = {0};
    struct guid_map map = {0};
    struct def_list made = {0};
    struct pol_role_def *defs = NULL; /* the next snapshot's definitions (their docs shared) */
    size_t n_defs = 0;
    char key[POL_DEF_KEY_MAX > POL_ID_MAX + 1 ? POL_DEF_KEY_MAX : POL_ID_MAX + 1];
    struct pol_acl_change clear = {.vault = hsm, .clear_roles = 1}; /* the next snapshot's */
    pthread_rwlock_wrlock(&c->lock);
    enum kv_status st = next_begin(c, &clear, 0, (size_t)cJSON_GetArraySize(assignments), &b.next);
    /* first the HSM's own go, then the backup's are made the HSM's */
    for (size_t i = 0; st == KV_OK && i < c->n_roles; i++) {
        size_t klen = role_key(c->roles[i].id, key);
        if (hsm_local(&c->roles[i], hsm) && klen != 0)
            st = batch_add(&b, KS_TABLE_ROLES, key, klen, NULL);
    }
    for (size_t i = 0; st == KV_OK && i < c->n_defs; i++) {
        if (strcasecmp(c->defs[i].hsm, hsm) == 0)
            st = batch_add(&b, KS_TABLE_ROLES, key, pol_def_key(c->defs[i].id, key), NULL);
    }
    cJSON_ArrayForEach(it, definitions)
    {
        if (st == KV_OK)
            st = cJSON_IsObject(it) ? access_put_def(c, hsm, it, &map, &made, &b)
                                    : KV_ERR_BAD_BACKUP;
    }
    cJSON_ArrayForEach(it, assignments)
    {
        if (st == KV_OK)
            st = cJSON_IsObject(it) ? access_put_role(c, hsm, it, &map, &b) : KV_ERR_BAD_BACKUP;
    }
    /* the snapshot after it is made before the write: once written, nothing can fail */
    if (st == KV_OK) {
        next_sort(&b.next);
        st = pol_defs_next(c, hsm, made.v, made.n, &defs, &n_defs);
    }
    if (st == KV_OK)
        st = write(b.ops, b.n, arg);
    if (st == KV_OK) {
        install(c, &b.next);
        pol_defs_install(c, hsm, defs, n_defs);
        defs = NULL;
        free(made.v); /* its definitions are the context's now */
        made.v = NULL;
        made.n = 0;
    }
    pthread_rwlock_unlock(&c->lock);
    free(defs);
    pol_role_defs_free(made.v, made.n);
    batch_free(&b);
    free(map.from);
    free(map.to);
    cJSON_Delete(doc);
    return st;
}
