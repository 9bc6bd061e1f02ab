/* Resource groups: the management plane's containers of vaults.
 *
 * A group's record lives in the `vaults` database under KS_GROUP_PREFIX + its
 * lowercase name. The prefix starts with a NUL, so no vault name can look one up
 * and ks_vault_list() skips it, as it skips deleted vaults. The record is JSON:
 *
 *   {"name": "As-Created", "location": "westeurope", "tags": {...}}
 *
 * Which group a vault is in is the vault's own record ("resourceGroup"); the
 * group's record does not list its vaults. A new vault's group is made in the
 * vault's own transaction when it does not exist (ks_group_ensure_tx()).
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_str.h"
#include "store.h"

#define KS_GROUP_PREFIX     "\0group\0"
#define KS_GROUP_PREFIX_LEN 7
#define GKEY_MAX            (KS_GROUP_PREFIX_LEN + KS_GROUP_MAX)

int ks_group_name_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KS_GROUP_MAX || name[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-' || c == '.' || c == '(' || c == ')' || c >= 0x80;
        if (!ok)
            return 0;
    }
    return 1;
}

/* The record key of group @p name (lowercased; ASCII letters only, as ARM compares
 * names); returns its length, or 0 for a name that is not a group's. */
static size_t gkey(char out[GKEY_MAX], const char *name)
{
    if (!ks_group_name_valid(name))
        return 0;
    size_t n = strlen(name);
    memcpy(out, KS_GROUP_PREFIX, KS_GROUP_PREFIX_LEN);
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        out[KS_GROUP_PREFIX_LEN + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    return KS_GROUP_PREFIX_LEN + n;
}

/* Decode a group record into @p out and, when @p tags is not NULL, its tags. */
static enum kv_status parse_group(const MDB_val *v, struct ks_group *out, struct ks_tags *tags)
{
    cJSON *doc = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "name"));
    const char *loc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "location"));
    if (name == NULL || loc == NULL) {
        cJSON_Delete(doc);
        return KV_ERR_STORE;
    }
    struct ks_group g = {0};
    snprintf(g.name, sizeof(g.name), "%s", name);
    snprintf(g.location, sizeof(g.location), "%s", loc);
    enum kv_status st = KV_OK;
    if (tags != NULL)
        st = ks_tags_from_json(cJSON_GetObjectItemCaseSensitive(doc, "tags"), tags);
    cJSON_Delete(doc);
    if (st == KV_OK)
        *out = g;
    return st;
}

/* ---- put --------------------------------------------------------------------------------- */

struct put_arg {
    const struct ks_group *group;
    int created;
    struct ks_group *existing; /* ks_group_ensure(): an existing group is read here, kept */
};

/* Whether two region names are one region, as Resource Manager writes them
 * (kv_str_region(): "West Europe" is "westeurope"; older kvmocks kept the name as given) */
static int same_location(const char *a, const char *b)
{
    char ra[KS_LOCATION_MAX + 1], rb[KS_LOCATION_MAX + 1];
    kv_str_region(a, ra, sizeof(ra));
    kv_str_region(b, rb, sizeof(rb));
    return strcmp(ra, rb) == 0;
}

static enum kv_status put_fn(struct ks_txn *tx, void *arg)
{
    struct put_arg *a = arg;
    const struct ks_group *g = a->group;
    char k[GKEY_MAX];
    size_t klen = gkey(k, g->name);
    MDB_val old;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, k, klen, &old);
    if (st != KV_OK && st != KV_ERR_KEY_NOT_FOUND)
        return st;
    a->created = st == KV_ERR_KEY_NOT_FOUND;
    if (!a->created && a->existing != NULL)
        return parse_group(&old, a->existing, NULL);
    cJSON *rec =
        a->created ? cJSON_CreateObject() : cJSON_ParseWithLength(old.mv_data, old.mv_size);
    if (rec == NULL)
        return a->created ? KV_ERR_NOMEM : KV_ERR_STORE;
    /* A group stays where it was made, and keeps the name it was made with. */
    const char *loc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(rec, "location"));
    if (!a->created && (loc == NULL || !same_location(loc, g->location))) {
        cJSON_Delete(rec);
        return loc == NULL ? KV_ERR_STORE : KV_ERR_ARM_GROUP_LOCATION;
    }
    st = KV_ERR_NOMEM;
    char *json = NULL;
    int ok = 1;
    if (a->created)
        ok = cJSON_AddStringToObject(rec, "name", g->name) &&
             cJSON_AddStringToObject(rec, "location", g->location);
    if (ok && g->tags != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(rec, "tags");
        cJSON *tags = ks_tags_to_json(g->tags);
        ok = tags != NULL && cJSON_AddItemToObject(rec, "tags", tags);
        if (tags != NULL && !ok)
            cJSON_Delete(tags);
    }
    if (ok)
        json = cJSON_PrintUnformatted(rec);
    if (json != NULL)
        st = ks_txn_put(tx, tx->env->db_vaults, k, klen, json, strlen(json));
    cJSON_free(json);
    cJSON_Delete(rec);
    return st;
}

/* A valid name and a location. */
static int group_valid(const struct ks_group *g)
{
    return ks_group_name_valid(g->name) && memchr(g->location, '\0', sizeof(g->location)) &&
           g->location[0] != '\0';
}

enum kv_status ks_group_put(struct ks_env *env, const struct ks_group *group, int *created)
{
    if (!group_valid(group))
        return KV_ERR_BAD_PARAM;
    struct put_arg a = {group, 0, NULL};
    enum kv_status st = ks_txn_write(env, put_fn, &a);
    if (st == KV_OK && created != NULL)
        *created = a.created;
    return st;
}

enum kv_status ks_group_ensure_tx(struct ks_txn *tx, const struct ks_group *group,
                                  struct ks_group *out, int *created)
{
    if (!group_valid(group))
        return KV_ERR_BAD_PARAM;
    struct ks_group found = {0};
    struct put_arg a = {group, 0, &found};
    enum kv_status st = put_fn(tx, &a);
    if (st == KV_OK) {
        if (a.created) {
            snprintf(found.name, sizeof(found.name), "%s", group->name);
            snprintf(found.location, sizeof(found.location), "%s", group->location);
        }
        *out = found;
        if (created != NULL)
            *created = a.created;
    }
    return st;
}

struct ensure_arg {
    const struct ks_group *group;
    struct ks_group *out;
    int *created;
};

static enum kv_status ensure_fn(struct ks_txn *tx, void *arg)
{
    struct ensure_arg *a = arg;
    return ks_group_ensure_tx(tx, a->group, a->out, a->created);
}

enum kv_status ks_group_ensure(struct ks_env *env, const struct ks_group *group,
                               struct ks_group *out, int *created)
{
    struct ensure_arg a = {group, out, created};
    return ks_txn_write(env, ensure_fn, &a);
}

/* ---- get, list, delete ------------------------------------------------------------------- */

struct get_arg {
    const char *name;
    struct ks_group out;
    struct ks_tags *tags;
};

/* Group @p name's record in @p out. */
static enum kv_status group_record(struct ks_txn *tx, const char *name, MDB_val *out)
{
    char k[GKEY_MAX];
    size_t klen = gkey(k, name);
    enum kv_status st =
        klen ? ks_txn_get(tx, tx->env->db_vaults, k, klen, out) : KV_ERR_KEY_NOT_FOUND;
    return st == KV_ERR_KEY_NOT_FOUND ? KV_ERR_ARM_NO_GROUP : st;
}

enum kv_status ks_group_exists_tx(struct ks_txn *tx, const char *name)
{
    MDB_val v;
    return group_record(tx, name, &v);
}

static enum kv_status get_fn(struct ks_txn *tx, void *arg)
{
    struct get_arg *a = arg;
    MDB_val v;
    enum kv_status st = group_record(tx, a->name, &v);
    return st == KV_OK ? parse_group(&v, &a->out, a->tags) : st;
}

enum kv_status ks_group_get(struct ks_env *env, const char *name, struct ks_group *out,
                            struct ks_tags *tags)
{
    struct ks_tags t = {0};
    struct get_arg a = {name, {{0}}, tags ? &t : NULL};
    enum kv_status st = ks_txn_read(env, get_fn, &a);
    if (st == KV_OK) {
        *out = a.out;
        if (tags != NULL)
            *tags = t;
    } else {
        ks_tags_clear(&t);
    }
    return st;
}

struct list_arg {
    char (*names)[KS_GROUP_MAX + 1];
    size_t cap, count;
};

static enum kv_status list_fn(struct ks_txn *tx, void *arg)
{
    struct list_arg *a = arg;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_vaults, &cur) != 0)
        return KV_ERR_STORE;
    MDB_val k = {KS_GROUP_PREFIX_LEN, KS_GROUP_PREFIX}, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size > KS_GROUP_PREFIX_LEN &&
         memcmp(k.mv_data, KS_GROUP_PREFIX, KS_GROUP_PREFIX_LEN) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        size_t n = k.mv_size - KS_GROUP_PREFIX_LEN;
        if (a->count < a->cap && n <= KS_GROUP_MAX) {
            memcpy(a->names[a->count], (const char *)k.mv_data + KS_GROUP_PREFIX_LEN, n);
            a->names[a->count][n] = '\0';
        }
        a->count++;
    }
    mdb_cursor_close(cur);
    return KV_OK;
}

size_t ks_group_list(struct ks_env *env, char (*names)[KS_GROUP_MAX + 1], size_t cap)
{
    struct list_arg a = {names, cap, 0};
    if (ks_txn_read(env, list_fn, &a) != KV_OK)
        return 0;
    return a.count;
}

static enum kv_status delete_fn(struct ks_txn *tx, void *arg)
{
    char k[GKEY_MAX];
    size_t klen = gkey(k, arg);
    MDB_val v;
    enum kv_status st =
        klen ? ks_txn_get(tx, tx->env->db_vaults, k, klen, &v) : KV_ERR_KEY_NOT_FOUND;
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_ERR_ARM_NO_GROUP : st;
    return ks_txn_del(tx, tx->env->db_vaults, k, klen);
}

enum kv_status ks_group_delete(struct ks_env *env, const char *name)
{
    return ks_txn_write(env, delete_fn, (void *)name);
}
