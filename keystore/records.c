/* Records the keystore keeps for other layers: put, delete by prefix, scan, append. */
#include <stdlib.h>
#include <string.h>

#include "kv_log.h"
#include "store.h"

static int table_ok(enum ks_table t)
{
    return (unsigned)t < KS_TABLE_COUNT;
}

static int op_ok(const struct ks_record_op *op)
{
    return table_ok(op->table) && op->key != NULL && op->key_len > 0 && op->key_len <= 511 &&
           (op->val != NULL || op->val_len == 0);
}

/* Delete the records of @p dbi whose key starts with @p prefix. */
static enum kv_status del_prefix(struct ks_txn *tx, MDB_dbi dbi, const void *prefix,
                                 size_t prefix_len)
{
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, dbi, &cur) != 0)
        return KV_ERR_STORE;
    int rc;
    for (;;) {
        MDB_val k = {prefix_len, (void *)prefix}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < prefix_len || memcmp(k.mv_data, prefix, prefix_len))
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc == MDB_MAP_FULL)
            tx->map_full = 1;
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? KV_OK : KV_ERR_STORE;
}

enum kv_status ks_records_apply_tx(struct ks_txn *tx, const struct ks_record_op *ops, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!op_ok(&ops[i]))
            return KV_ERR_BAD_PARAM; /* before any change: the batch is all or nothing */
    }
    enum kv_status st = KV_OK;
    for (size_t i = 0; i < n && st == KV_OK; i++) {
        MDB_dbi dbi = tx->env->db_tables[ops[i].table];
        st = ops[i].val != NULL
                 ? ks_txn_put(tx, dbi, ops[i].key, ops[i].key_len, ops[i].val, ops[i].val_len)
                 : del_prefix(tx, dbi, ops[i].key, ops[i].key_len);
    }
    return st;
}

struct apply_arg {
    const char *vault, *group; /* what must exist: see ks_record_apply_at() */
    int hsm;                   /* the vault is a Managed HSM */
    const struct ks_record_op *ops;
    size_t n;
};

static enum kv_status apply_fn(struct ks_txn *tx, void *arg)
{
    struct apply_arg *a = arg;
    struct ks_vault v;
    enum kv_status st = KV_OK;
    if (a->vault != NULL && a->vault[0] != '\0') {
        st = ks_vault_read(tx, a->vault, &v);
        if (st == KV_OK && v.hsm != a->hsm)
            st = KV_ERR_VAULT_NOT_FOUND;
    } else if (a->group != NULL && a->group[0] != '\0')
        st = ks_group_exists_tx(tx, a->group);
    return st == KV_OK ? ks_records_apply_tx(tx, a->ops, a->n) : st;
}

enum kv_status ks_record_apply(struct ks_env *env, const struct ks_record_op *ops, size_t n)
{
    struct apply_arg a = {NULL, NULL, 0, ops, n};
    return n == 0 ? KV_OK : ks_txn_write(env, apply_fn, &a);
}

enum kv_status ks_record_apply_at(struct ks_env *env, const char *vault, int hsm, const char *group,
                                  const struct ks_record_op *ops, size_t n)
{
    struct apply_arg a = {vault, group, hsm != 0, ops, n};
    return ks_txn_write(env, apply_fn, &a);
}

enum kv_status ks_record_put(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, const void *val, size_t val_len)
{
    struct ks_record_op op = {table, key, key_len, val != NULL ? val : "", val_len};
    return ks_record_apply(env, &op, 1);
}

struct add_arg {
    const struct ks_record_op *op;
};

static enum kv_status add_fn(struct ks_txn *tx, void *arg)
{
    const struct ks_record_op *op = ((struct add_arg *)arg)->op;
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_tables[op->table], op->key, op->key_len, &v);
    if (st == KV_OK)
        return KV_ERR_KEY_EXISTS;
    return st == KV_ERR_KEY_NOT_FOUND ? ks_records_apply_tx(tx, op, 1) : st;
}

enum kv_status ks_record_add(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, const void *val, size_t val_len)
{
    struct ks_record_op op = {table, key, key_len, val != NULL ? val : "", val_len};
    if (!op_ok(&op))
        return KV_ERR_BAD_PARAM;
    struct add_arg a = {&op};
    return ks_txn_write(env, add_fn, &a);
}

struct get_arg {
    enum ks_table table;
    const void *key;
    size_t key_len;
    struct kv_buf *out;
};

static enum kv_status get_fn(struct ks_txn *tx, void *arg)
{
    struct get_arg *a = arg;
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_tables[a->table], a->key, a->key_len, &v);
    if (st != KV_OK)
        return st;
    a->out->data = malloc(v.mv_size > 0 ? v.mv_size : 1);
    if (a->out->data == NULL)
        return KV_ERR_NOMEM;
    memcpy(a->out->data, v.mv_data, v.mv_size);
    a->out->len = v.mv_size;
    return KV_OK;
}

enum kv_status ks_record_get(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, struct kv_buf *out)
{
    out->data = NULL;
    out->len = 0;
    struct ks_record_op op = {table, key, key_len, NULL, 0};
    if (!op_ok(&op))
        return KV_ERR_BAD_PARAM;
    struct get_arg a = {table, key, key_len, out};
    enum kv_status st = ks_txn_read(env, get_fn, &a);
    if (st != KV_OK)
        kv_buf_free(out);
    return st;
}

struct scan_arg {
    MDB_dbi dbi;
    const void *prefix, *from;
    size_t prefix_len, from_len;
    ks_record_fn fn;
    void *arg;
};

static enum kv_status scan_fn(struct ks_txn *tx, void *arg)
{
    struct scan_arg *a = arg;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, a->dbi, &cur) != 0)
        return KV_ERR_STORE;
    MDB_val k, v;
    int rc;
    if (a->from != NULL) {
        k.mv_size = a->from_len;
        k.mv_data = (void *)a->from;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else if (a->prefix_len > 0) {
        k.mv_size = a->prefix_len;
        k.mv_data = (void *)a->prefix;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    enum kv_status st = KV_OK;
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < a->prefix_len || memcmp(k.mv_data, a->prefix, a->prefix_len) != 0)
            break;
        st = a->fn(k.mv_data, k.mv_size, v.mv_data, v.mv_size, a->arg);
    }
    mdb_cursor_close(cur);
    if (st == KV_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = KV_ERR_STORE;
    return st;
}

enum kv_status ks_record_scan(struct ks_env *env, enum ks_table table, const void *prefix,
                              size_t prefix_len, const void *from, size_t from_len,
                              ks_record_fn fn, void *arg)
{
    if (!table_ok(table))
        return KV_ERR_BAD_PARAM;
    struct scan_arg a = {env->db_tables[table], prefix ? prefix : "", from, prefix_len,
                         from_len, fn, arg};
    return ks_txn_read(env, scan_fn, &a);
}

struct append_many_arg {
    MDB_dbi dbi;
    const void *const *vals;
    const size_t *lens;
    size_t n, keep;
    uint64_t first;
};

/* Appends at the right edge with MDB_APPEND (full pages, no split in the middle),
 * then drops the oldest records beyond the cap: their pages go back to LMDB's
 * free list and are reused, so the table keeps a bounded size in the map. */
static enum kv_status append_many_fn(struct ks_txn *tx, void *arg)
{
    struct append_many_arg *a = arg;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, a->dbi, &cur) != 0)
        return KV_ERR_STORE;
    MDB_val k, v;
    uint64_t last = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
    if (rc == 0 && k.mv_size == 8) {
        const unsigned char *b = k.mv_data;
        for (int i = 0; i < 8; i++)
            last = (last << 8) | b[i];
    } else if (rc != MDB_NOTFOUND) {
        mdb_cursor_close(cur);
        return KV_ERR_STORE;
    }
    a->first = last + 1;
    rc = 0;
    for (size_t i = 0; i < a->n && rc == 0; i++) {
        unsigned char key[8];
        uint64_t seq = last + 1 + i;
        for (int j = 0; j < 8; j++)
            key[j] = (unsigned char)(seq >> (56 - 8 * j));
        k.mv_size = sizeof(key);
        k.mv_data = key;
        v.mv_size = a->lens[i];
        v.mv_data = (void *)a->vals[i];
        rc = mdb_cursor_put(cur, &k, &v, MDB_APPEND);
    }
    MDB_stat stat;
    if (rc == 0 && a->keep > 0 && (rc = mdb_stat(tx->txn, a->dbi, &stat)) == 0) {
        for (size_t extra = stat.ms_entries > a->keep ? stat.ms_entries - a->keep : 0;
             extra > 0 && rc == 0; extra--) {
            rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
            if (rc == 0)
                rc = mdb_cursor_del(cur, 0);
        }
    }
    mdb_cursor_close(cur);
    if (rc == MDB_MAP_FULL)
        tx->map_full = 1;
    else if (rc != 0)
        kv_log(KV_LOG_ERROR, "append failed: %s", mdb_strerror(rc));
    return rc == 0 ? KV_OK : KV_ERR_STORE;
}

enum kv_status ks_records_append_tx(struct ks_txn *tx, enum ks_table table,
                                    const void *const *vals, const size_t *lens, size_t n,
                                    size_t keep, uint64_t *first_seq)
{
    if (!table_ok(table) || (n > 0 && (vals == NULL || lens == NULL)))
        return KV_ERR_BAD_PARAM;
    struct append_many_arg a = {tx->env->db_tables[table], vals, lens, n, keep, 0};
    enum kv_status st = append_many_fn(tx, &a);
    if (st == KV_OK && first_seq != NULL)
        *first_seq = a.first;
    return st;
}

enum kv_status ks_record_append_many(struct ks_env *env, enum ks_table table,
                                     const void *const *vals, const size_t *lens, size_t n,
                                     size_t keep, uint64_t *first_seq)
{
    if (!table_ok(table) || (n > 0 && (vals == NULL || lens == NULL)))
        return KV_ERR_BAD_PARAM;
    if (n == 0 && keep == 0)
        return KV_OK;
    struct append_many_arg a = {env->db_tables[table], vals, lens, n, keep, 0};
    enum kv_status st = ks_txn_write(env, append_many_fn, &a);
    if (st == KV_OK && first_seq != NULL)
        *first_seq = a.first;
    return st;
}

enum kv_status ks_record_append(struct ks_env *env, enum ks_table table, const void *val,
                                size_t val_len, uint64_t *seq)
{
    return ks_record_append_many(env, table, &val, &val_len, 1, 0, seq);
}
