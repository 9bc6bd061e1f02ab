/* Soft delete of whole vaults: the deleted state, recovery, purge and the scheduled purge.
 *
 * A deleted vault's record lives in the `vaults` database under
 * KS_DELETED_VAULT_PREFIX + name. ks_vault_read() looks names up as C strings,
 * so it never finds such a record: the vault's host answers VaultNotFound at once,
 * and ks_vault_list() skips it. The record is JSON:
 *
 *   {"vault": <the vault's own record, verbatim>, "resourceId": "...",
 *    "deletionDate": N, "scheduledPurgeDate": N}
 *
 * The vault's keys stay where they are (heads and keys under name\0...), untouched,
 * until a recovery puts the vault record back or a purge removes them with it.
 *
 * Every change here is one write transaction that checks what it changes (a
 * create looks for a deleted vault of the same name in the transaction that
 * writes the vault), so no lock beyond LMDB's single writer is needed.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "vaults.h"

#define DKEY_MAX (KS_DELETED_VAULT_PREFIX_LEN + KS_VAULT_NAME_MAX)

/* Lowercase @p name into @p out; 0 when it is not a vault name. */
static int norm_name(const char *name, char out[KS_VAULT_NAME_MAX + 1])
{
    return ks_vault_lower(name, out) != 0 && ks_vault_name_valid(out);
}

/* The deleted-vault record key of the lowercase name @p lname; returns its length. */
static size_t dkey(char out[DKEY_MAX], const char *lname)
{
    size_t n = strlen(lname);
    memcpy(out, KS_DELETED_VAULT_PREFIX, KS_DELETED_VAULT_PREFIX_LEN);
    memcpy(out + KS_DELETED_VAULT_PREFIX_LEN, lname, n);
    return KS_DELETED_VAULT_PREFIX_LEN + n;
}

static int64_t jnum(const cJSON *o, const char *name)
{
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(n) ? (int64_t)n->valuedouble : 0;
}

/* Decode a deleted-vault record. */
static enum kv_status parse_deleted(const MDB_val *v, const char *lname,
                                    struct ks_deleted_vault *out)
{
    cJSON *doc = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    const cJSON *vault = cJSON_GetObjectItemCaseSensitive(doc, "vault");
    if (!cJSON_IsObject(vault)) {
        cJSON_Delete(doc);
        return KV_ERR_STORE;
    }
    struct ks_deleted_vault d;
    memset(&d, 0, sizeof(d));
    ks_vault_from_json(vault, lname, &d.vault);
    const char *rid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(doc, "resourceId"));
    snprintf(d.resource_id, sizeof(d.resource_id), "%s", rid ? rid : "");
    d.deleted_date = jnum(doc, "deletionDate");
    d.scheduled_purge = jnum(doc, "scheduledPurgeDate");
    cJSON_Delete(doc);
    *out = d;
    return KV_OK;
}

/* Read the deleted vault @p lname inside @p tx: KV_ERR_VAULT_NOT_FOUND when there is none. */
static enum kv_status read_deleted(struct ks_txn *tx, const char *lname,
                                   struct ks_deleted_vault *out)
{
    char k[DKEY_MAX];
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, k, dkey(k, lname), &v);
    if (st == KV_ERR_KEY_NOT_FOUND)
        return KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK)
        return st;
    return parse_deleted(&v, lname, out);
}

static int due(const struct ks_deleted_vault *d, int64_t now)
{
    return d->scheduled_purge <= now;
}

/* Make the resource group of vault @p v (its group, in its location) unless one of that
 * name exists, in @p tx; @p g gets it as stored, and @p in_group (may be NULL) the vault with
 * the group's name as that has it. */
static enum kv_status group_for(struct ks_txn *tx, const struct ks_vault *v, struct ks_group *g,
                                int *created, struct ks_vault *in_group)
{
    struct ks_group want = {0};
    snprintf(want.name, sizeof(want.name), "%s", v->group);
    snprintf(want.location, sizeof(want.location), "%s", ks_vault_location(v));
    enum kv_status st = ks_group_ensure_tx(tx, &want, g, created);
    if (st == KV_OK && in_group != NULL) {
        *in_group = *v;
        snprintf(in_group->group, sizeof(in_group->group), "%s", g->name);
    }
    return st;
}

/* ---- delete ------------------------------------------------------------------------------ */

struct delete_arg {
    const char *lname;
    const char *resource_id;
    const struct ks_record_op *ops, *ops_removed;
    size_t n_ops, n_removed;
    struct ks_deleted_vault out;
};

static enum kv_status delete_vault(struct ks_txn *tx, struct delete_arg *a);

/* The vault's deletion, then the other layers' records that go with it. */
static enum kv_status delete_fn(struct ks_txn *tx, void *arg)
{
    struct delete_arg *a = arg;
    enum kv_status st = delete_vault(tx, a);
    if (st == KV_OK)
        st = ks_records_apply_tx(tx, a->ops, a->n_ops);
    if (st == KV_OK && a->out.deleted_date == 0)
        st = ks_records_apply_tx(tx, a->ops_removed, a->n_removed);
    return st;
}

static enum kv_status delete_vault(struct ks_txn *tx, struct delete_arg *a)
{
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, a->lname, &v);
    if (st != KV_OK)
        return st;
    memset(&a->out, 0, sizeof(a->out));
    a->out.vault = v;
    snprintf(a->out.resource_id, sizeof(a->out.resource_id), "%s", a->resource_id);
    if (!v.soft_delete) {
        st = ks_vault_keys_purge(tx, a->lname);
        if (st == KV_OK)
            st = ks_secdomain_purge(tx, a->lname);
        return st == KV_OK ? ks_txn_del(tx, tx->env->db_vaults, a->lname, strlen(a->lname)) : st;
    }
    MDB_val raw;
    st = ks_txn_get(tx, tx->env->db_vaults, a->lname, strlen(a->lname), &raw);
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_ERR_VAULT_NOT_FOUND : st;
    a->out.deleted_date = ks_now();
    a->out.scheduled_purge = a->out.deleted_date + (int64_t)v.retention_days * 86400;
    st = KV_ERR_NOMEM;
    char *json = NULL;
    cJSON *doc = cJSON_CreateObject();
    cJSON *vault = cJSON_ParseWithLength(raw.mv_data, raw.mv_size);
    if (vault != NULL && !cJSON_IsObject(vault)) {
        st = KV_ERR_STORE;
        goto out;
    }
    if (doc == NULL || vault == NULL || !cJSON_AddItemToObject(doc, "vault", vault))
        goto out;
    vault = NULL; /* owned by doc now */
    if (!cJSON_AddStringToObject(doc, "resourceId", a->out.resource_id) ||
        !cJSON_AddNumberToObject(doc, "deletionDate", (double)a->out.deleted_date) ||
        !cJSON_AddNumberToObject(doc, "scheduledPurgeDate", (double)a->out.scheduled_purge))
        goto out;
    json = cJSON_PrintUnformatted(doc);
    if (json == NULL)
        goto out;
    char k[DKEY_MAX];
    st = ks_txn_put(tx, tx->env->db_vaults, k, dkey(k, a->lname), json, strlen(json));
    if (st == KV_OK)
        st = ks_txn_del(tx, tx->env->db_vaults, a->lname, strlen(a->lname));
out:
    cJSON_Delete(vault);
    cJSON_Delete(doc);
    cJSON_free(json);
    return st;
}

enum kv_status ks_vault_soft_delete(struct ks_env *env, const char *name, const char *resource_id,
                                    struct ks_deleted_vault *out)
{
    return ks_vault_delete_with(env, name, resource_id, NULL, 0, NULL, 0, out);
}

enum kv_status ks_vault_delete_with(struct ks_env *env, const char *name, const char *resource_id,
                                    const struct ks_record_op *ops, size_t n,
                                    const struct ks_record_op *ops_removed, size_t n_removed,
                                    struct ks_deleted_vault *out)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(name, lname))
        return KV_ERR_VAULT_NOT_FOUND;
    if (resource_id == NULL)
        resource_id = "";
    if (strlen(resource_id) > KS_RESOURCE_ID_MAX)
        return KV_ERR_BAD_PARAM;
    struct delete_arg a = {.lname = lname,
                           .resource_id = resource_id,
                           .ops = ops,
                           .ops_removed = ops_removed,
                           .n_ops = n,
                           .n_removed = n_removed};
    enum kv_status st = ks_txn_write(env, delete_fn, &a);
    if (st == KV_OK && out != NULL)
        *out = a.out;
    return st;
}

/* ---- purge ------------------------------------------------------------------------------- */

struct purge_arg {
    const char *lname;
    int only_due; /* the sweep: purge only when the scheduled date has passed */
    int kind;     /* a Managed HSM (1), a vault (0), either (-1) */
    int purged;
    /* the other layers' records of the vault, which go with its keys */
    const struct ks_record_op *ops;
    size_t n_ops;
    int applied; /* out: whether they went */
};

/* Remove the deleted vault @p a->lname, its keys and its access policies inside @p tx. */
static enum kv_status purge_deleted(struct ks_txn *tx, struct purge_arg *a)
{
    /* A live vault of the same name shares the key records (and the other layers'):
     * they are its own now, so only the deleted record goes. */
    struct ks_vault live;
    enum kv_status st = ks_vault_read(tx, a->lname, &live);
    if (st == KV_ERR_VAULT_NOT_FOUND) {
        /* the access policies kept for its recovery (ks.h, enum ks_table) */
        struct ks_record_op policies = {KS_TABLE_POLICIES, a->lname, strlen(a->lname) + 1, NULL, 0};
        st = ks_vault_keys_purge(tx, a->lname);
        if (st == KV_OK)
            st = ks_secdomain_purge(tx, a->lname);
        if (st == KV_OK)
            st = ks_records_apply_tx(tx, &policies, 1);
        if (st == KV_OK)
            st = ks_records_apply_tx(tx, a->ops, a->n_ops);
        a->applied = st == KV_OK;
    }
    if (st != KV_OK)
        return st;
    char k[DKEY_MAX];
    return ks_txn_del(tx, tx->env->db_vaults, k, dkey(k, a->lname));
}

static enum kv_status purge_fn(struct ks_txn *tx, void *arg)
{
    struct purge_arg *a = arg;
    struct ks_deleted_vault d;
    a->purged = a->applied = 0;
    enum kv_status st = read_deleted(tx, a->lname, &d);
    if (st != KV_OK)
        return st;
    if (a->kind >= 0 && d.vault.hsm != a->kind)
        return KV_ERR_VAULT_NOT_FOUND; /* the other kind's */
    int64_t now = ks_now();
    if (a->only_due && !due(&d, now))
        return KV_OK; /* recovered or changed since the scan */
    if (d.vault.purge_protection && !due(&d, now))
        return KV_ERR_PURGE_PROTECTED;
    st = purge_deleted(tx, a);
    a->purged = st == KV_OK;
    return st;
}

/* Purge @p lname when its scheduled purge date has passed (checked in the transaction). */
static enum kv_status purge_if_due(struct ks_env *env, const char *lname, int *purged)
{
    struct purge_arg a = {.lname = lname, .only_due = 1, .kind = -1};
    enum kv_status st = ks_txn_write(env, purge_fn, &a);
    if (purged != NULL)
        *purged = st == KV_OK && a.purged;
    return st == KV_ERR_VAULT_NOT_FOUND ? KV_OK : st;
}

enum kv_status ks_deleted_vault_purge(struct ks_env *env, const char *name, int hsm,
                                      const struct ks_record_op *ops, size_t n, int *applied)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (applied != NULL)
        *applied = 0;
    if (!norm_name(name, lname))
        return KV_ERR_VAULT_NOT_FOUND;
    struct purge_arg a = {.lname = lname, .kind = hsm != 0, .ops = ops, .n_ops = n};
    enum kv_status st = ks_txn_write(env, purge_fn, &a);
    if (st == KV_OK && applied != NULL)
        *applied = a.applied;
    return st;
}

struct gone_arg {
    const char *lname;
    const struct ks_record_op *ops;
    size_t n_ops;
    int applied;
};

static enum kv_status gone_fn(struct ks_txn *tx, void *arg)
{
    struct gone_arg *a = arg;
    struct ks_vault live;
    struct ks_deleted_vault d;
    a->applied = 0;
    enum kv_status st = ks_vault_read(tx, a->lname, &live);
    if (st == KV_ERR_VAULT_NOT_FOUND)
        st = read_deleted(tx, a->lname, &d);
    if (st != KV_ERR_VAULT_NOT_FOUND)
        return st; /* KV_OK: the name is held, and its records with it */
    a->applied = 1;
    return ks_records_apply_tx(tx, a->ops, a->n_ops);
}

enum kv_status ks_record_apply_gone(struct ks_env *env, const char *name,
                                    const struct ks_record_op *ops, size_t n, int *applied)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    *applied = 0;
    if (!norm_name(name, lname))
        return KV_ERR_BAD_PARAM;
    struct gone_arg a = {lname, ops, n, 0};
    enum kv_status st = ks_txn_write(env, gone_fn, &a);
    if (st == KV_OK)
        *applied = a.applied;
    return st;
}

/* ---- get and list -------------------------------------------------------------------------- */

struct get_arg {
    const char *lname;
    struct ks_deleted_vault out;
};

static enum kv_status get_fn(struct ks_txn *tx, void *arg)
{
    struct get_arg *a = arg;
    return read_deleted(tx, a->lname, &a->out);
}

enum kv_status ks_deleted_vault_get(struct ks_env *env, const char *name,
                                    struct ks_deleted_vault *out)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(name, lname))
        return KV_ERR_VAULT_NOT_FOUND;
    struct get_arg a = {.lname = lname};
    enum kv_status st = ks_txn_read(env, get_fn, &a);
    if (st == KV_OK && due(&a.out, ks_now())) {
        /* gone: purge it now rather than at the next sweep */
        st = purge_if_due(env, lname, NULL);
        return st == KV_OK ? KV_ERR_VAULT_NOT_FOUND : st;
    }
    if (st == KV_OK)
        *out = a.out;
    return st;
}

struct list_arg {
    const char *after; /* lowercase name or "" */
    int hsm;           /* list the deleted Managed HSMs (1) or vaults (0) */
    int max;
    struct ks_deleted_vault *out;
    size_t count;
    char next[KS_VAULT_NAME_MAX + 1];
};

/* Called for each deleted vault a walk visits, in name order.
 * @return 1 to go on, 0 to stop, -1 when out of memory (the walk fails). */
typedef int (*deleted_fn)(const struct ks_deleted_vault *d, int64_t now, void *arg);

/* Visit the deleted vaults whose name sorts after @p after ("" for all). */
static enum kv_status walk_deleted(struct ks_txn *tx, const char *after, deleted_fn fn, void *arg)
{
    char start[DKEY_MAX + 1];
    size_t slen = dkey(start, after);
    if (after[0] != '\0')
        start[slen++] = '\0'; /* the first key after the given name's own */
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_vaults, &cur) != 0)
        return KV_ERR_STORE;
    int64_t now = ks_now();
    int go = 1;
    MDB_val k = {slen, start}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && go == 1; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size <= KS_DELETED_VAULT_PREFIX_LEN || k.mv_size > DKEY_MAX ||
            memcmp(k.mv_data, KS_DELETED_VAULT_PREFIX, KS_DELETED_VAULT_PREFIX_LEN) != 0)
            break;
        char lname[KS_VAULT_NAME_MAX + 1];
        size_t n = k.mv_size - KS_DELETED_VAULT_PREFIX_LEN;
        memcpy(lname, (const char *)k.mv_data + KS_DELETED_VAULT_PREFIX_LEN, n);
        lname[n] = '\0';
        struct ks_deleted_vault d;
        if (parse_deleted(&v, lname, &d) == KV_OK)
            go = fn(&d, now, arg);
    }
    mdb_cursor_close(cur);
    if (go < 0)
        return KV_ERR_NOMEM;
    return go == 1 && rc != 0 && rc != MDB_NOTFOUND ? KV_ERR_STORE : KV_OK;
}

static int list_one(const struct ks_deleted_vault *d, int64_t now, void *arg)
{
    struct list_arg *a = arg;
    if (due(d, now) || d->vault.hsm != a->hsm)
        return 1; /* gone (the sweep removes it), or the other kind's */
    if (a->count == (size_t)a->max) {
        /* one more exists: the page ends at the previous one */
        snprintf(a->next, sizeof(a->next), "%s", a->out[a->count - 1].vault.name);
        return 0;
    }
    a->out[a->count++] = *d;
    return 1;
}

static enum kv_status list_fn(struct ks_txn *tx, void *arg)
{
    struct list_arg *a = arg;
    return walk_deleted(tx, a->after, list_one, a);
}

enum kv_status ks_deleted_vault_list(struct ks_env *env, int hsm, const char *after, int max,
                                     struct ks_deleted_vault *out, size_t *count,
                                     char next[KS_VAULT_NAME_MAX + 1])
{
    char lafter[KS_VAULT_NAME_MAX + 1] = "";
    if (max < 1 || max > KS_PAGE_MAX)
        return KV_ERR_BAD_MAXRESULTS;
    if (after != NULL && after[0] != '\0' && !norm_name(after, lafter))
        return KV_ERR_BAD_SKIPTOKEN;
    struct list_arg a = {.after = lafter, .hsm = hsm != 0, .max = max, .out = out};
    enum kv_status st = ks_txn_read(env, list_fn, &a);
    if (st != KV_OK)
        return st;
    *count = a.count;
    snprintf(next, KS_VAULT_NAME_MAX + 1, "%s", a.next);
    return KV_OK;
}

/* ---- recover ------------------------------------------------------------------------------- */

struct recover_arg {
    const char *lname;
    int hsm;
    struct ks_vault out;
};

static enum kv_status recover_fn(struct ks_txn *tx, void *arg)
{
    struct recover_arg *a = arg;
    char k[DKEY_MAX];
    size_t klen = dkey(k, a->lname);
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, k, klen, &v);
    if (st == KV_ERR_KEY_NOT_FOUND)
        return KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK)
        return st;
    struct ks_deleted_vault d;
    st = parse_deleted(&v, a->lname, &d);
    if (st != KV_OK)
        return st;
    if (due(&d, ks_now()) || d.vault.hsm != a->hsm)
        return KV_ERR_VAULT_NOT_FOUND; /* gone (the caller purges it), or the other kind's */
    struct ks_vault live;
    st = ks_vault_read(tx, a->lname, &live);
    if (st == KV_OK)
        return KV_ERR_ARM_CONFLICT;
    if (st != KV_ERR_VAULT_NOT_FOUND)
        return st;
    cJSON *doc = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    char *json = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(doc, "vault"));
    cJSON_Delete(doc);
    if (json == NULL)
        return KV_ERR_NOMEM;
    st = ks_txn_put(tx, tx->env->db_vaults, a->lname, strlen(a->lname), json, strlen(json));
    cJSON_free(json);
    if (st == KV_OK)
        st = ks_txn_del(tx, tx->env->db_vaults, k, klen);
    /* its group comes back with it, if it went in the meantime (a vault of the configuration
     * file has none) */
    struct ks_group g;
    if (st == KV_OK && d.vault.group[0] != '\0')
        st = group_for(tx, &d.vault, &g, NULL, NULL);
    if (st == KV_OK)
        a->out = d.vault;
    return st;
}

enum kv_status ks_deleted_vault_recover(struct ks_env *env, const char *name, int hsm,
                                        struct ks_vault *out)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(name, lname))
        return KV_ERR_VAULT_NOT_FOUND;
    struct recover_arg a = {.lname = lname, .hsm = hsm != 0};
    enum kv_status st = ks_txn_write(env, recover_fn, &a);
    if (st == KV_ERR_VAULT_NOT_FOUND && purge_if_due(env, lname, NULL) != KV_OK)
        st = KV_ERR_STORE;
    if (st == KV_OK)
        *out = a.out;
    return st;
}

/* ---- tags -------------------------------------------------------------------------------- */

struct tags_arg {
    const char *lname;
    int deleted;
    struct ks_tags out;
};

static enum kv_status tags_fn(struct ks_txn *tx, void *arg)
{
    struct tags_arg *a = arg;
    char k[DKEY_MAX];
    size_t klen = a->deleted ? dkey(k, a->lname) : strlen(a->lname);
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, a->deleted ? k : a->lname, klen, &v);
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_ERR_VAULT_NOT_FOUND : st;
    cJSON *doc = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    /* a deleted vault's record keeps the vault's own under "vault" */
    const cJSON *vault = a->deleted ? cJSON_GetObjectItemCaseSensitive(doc, "vault") : doc;
    if (!cJSON_IsObject(vault)) {
        cJSON_Delete(doc);
        return KV_ERR_STORE;
    }
    st = ks_tags_from_json(cJSON_GetObjectItemCaseSensitive(vault, "tags"), &a->out);
    cJSON_Delete(doc);
    return st;
}

enum kv_status ks_vault_tags(struct ks_env *env, const char *name, int deleted, struct ks_tags *out)
{
    struct tags_arg a = {.deleted = deleted};
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(name, lname))
        return KV_ERR_VAULT_NOT_FOUND;
    a.lname = lname;
    enum kv_status st = ks_txn_read(env, tags_fn, &a);
    if (st == KV_OK)
        *out = a.out;
    else
        ks_tags_clear(&a.out);
    return st;
}

/* ---- create ---------------------------------------------------------------------------------- */

struct create_arg {
    const char *lname;
    const struct ks_vault *vault;
    int create; /* enum ks_vault_write */
    const struct ks_record_op *ops;
    size_t n_ops;
    struct ks_group *group; /* ks_vault_create_in_group(): the vault's group, made if need be */
    int group_created;
};

/* A deleted vault holds its name until its scheduled purge date; one past that
 * date is purged here, in the transaction that creates the new vault. An update
 * applies only while the vault is live: a deletion committed since the caller read it
 * is not undone. */
static enum kv_status create_fn(struct ks_txn *tx, void *arg)
{
    struct create_arg *a = arg;
    struct ks_vault live;
    if (a->create == KS_VAULT_UPDATE) {
        enum kv_status st = ks_vault_read(tx, a->lname, &live);
        if (st == KV_OK)
            st = ks_vault_write(tx, a->vault);
        return st == KV_OK ? ks_records_apply_tx(tx, a->ops, a->n_ops) : st;
    }
    enum kv_status st = a->create ? ks_vault_read(tx, a->lname, &live) : KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_ERR_VAULT_NOT_FOUND)
        return st == KV_OK ? KV_ERR_ARM_VAULT_EXISTS : st;
    struct ks_deleted_vault d;
    st = a->create ? read_deleted(tx, a->lname, &d) : KV_ERR_VAULT_NOT_FOUND;
    if (st == KV_OK && !due(&d, ks_now()))
        return KV_ERR_VAULT_DELETED;
    struct purge_arg due_one = {.lname = a->lname};
    if (st == KV_OK)
        st = purge_deleted(tx, &due_one);
    else if (st == KV_ERR_VAULT_NOT_FOUND)
        st = KV_OK;
    struct ks_vault in_group;
    const struct ks_vault *v = a->vault;
    if (st == KV_OK && a->group != NULL) {
        st = group_for(tx, a->vault, a->group, &a->group_created, &in_group);
        v = &in_group;
    }
    if (st == KV_OK)
        st = ks_vault_write(tx, v);
    return st == KV_OK ? ks_records_apply_tx(tx, a->ops, a->n_ops) : st;
}

enum kv_status ks_vault_put_with(struct ks_env *env, const struct ks_vault *vault, int create,
                                 const struct ks_record_op *ops, size_t n)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(vault->name, lname))
        return KV_ERR_BAD_PARAM;
    struct create_arg a = {lname, vault, create, ops, n};
    return ks_txn_write(env, create_fn, &a);
}

enum kv_status ks_vault_create_in_group(struct ks_env *env, const struct ks_vault *vault,
                                        const struct ks_record_op *ops, size_t n,
                                        struct ks_group *group, int *created)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (!norm_name(vault->name, lname))
        return KV_ERR_BAD_PARAM;
    struct ks_group g;
    struct create_arg a = {lname, vault, KS_VAULT_CREATE, ops, n, &g, 0};
    enum kv_status st = ks_txn_write(env, create_fn, &a);
    if (st == KV_OK) {
        *group = g;
        if (created != NULL)
            *created = a.group_created;
    }
    return st;
}

enum kv_status ks_vault_create(struct ks_env *env, const struct ks_vault *vault)
{
    return ks_vault_put_with(env, vault, KS_VAULT_CREATE, NULL, 0);
}

/* ---- the sweep ------------------------------------------------------------------------------- */

struct sweep_arg {
    char (*names)[KS_VAULT_NAME_MAX + 1];
    size_t count, cap;
};

static int sweep_one(const struct ks_deleted_vault *d, int64_t now, void *arg)
{
    struct sweep_arg *a = arg;
    if (!due(d, now))
        return 1;
    if (a->count == a->cap) {
        size_t ncap = a->cap ? a->cap * 2 : 8;
        char(*nn)[KS_VAULT_NAME_MAX + 1] = realloc(a->names, ncap * sizeof(*nn));
        if (nn == NULL)
            return -1;
        a->names = nn;
        a->cap = ncap;
    }
    snprintf(a->names[a->count++], KS_VAULT_NAME_MAX + 1, "%s", d->vault.name);
    return 1;
}

static enum kv_status sweep_scan_fn(struct ks_txn *tx, void *arg)
{
    return walk_deleted(tx, "", sweep_one, arg);
}

enum kv_status ks_vault_sweep(struct ks_env *env, size_t *purged)
{
    struct sweep_arg a = {0};
    size_t np = 0;
    enum kv_status st = ks_txn_read(env, sweep_scan_fn, &a);
    for (size_t i = 0; st == KV_OK && i < a.count; i++) {
        int one = 0;
        st = purge_if_due(env, a.names[i], &one);
        np += (size_t)one;
    }
    free(a.names);
    if (purged != NULL)
        *purged = np;
    return st;
}
