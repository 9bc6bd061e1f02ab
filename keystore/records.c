/* Records the keystore keeps for other layers: put, delete by prefix, scan, append. */
#include <string.h>

#include "store.h"

struct put_arg {
    MDB_dbi dbi;
    const void *key, *val;
    size_t key_len, val_len;
};

static enum kv_status put_fn(struct ks_txn *tx, void *arg)
{
    struct put_arg *a = arg;
    return ks_txn_put(tx, a->dbi, a->key, a->key_len, a->val, a->val_len);
}

static int table_ok(enum ks_table t)
{
    return (unsigned)t < KS_TABLE_COUNT;
}

enum kv_status ks_record_put(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, const void *val, size_t val_len)
{
    if (!table_ok(table) || key_len == 0 || key_len > 511)
        return KV_ERR_BAD_PARAM;
    struct put_arg a = {env->db_tables[table], key, val, key_len, val_len};
    return ks_txn_write(env, put_fn, &a);
}

struct del_arg {
    MDB_dbi dbi;
    const void *prefix;
    size_t prefix_len;
    size_t deleted;
};

static enum kv_status del_fn(struct ks_txn *tx, void *arg)
{
    struct del_arg *a = arg;
    MDB_cursor *cur = NULL;
    a->deleted = 0;
    if (mdb_cursor_open(tx->txn, a->dbi, &cur) != 0)
        return KV_ERR_STORE;
    int rc;
    for (;;) {
        MDB_val k = {a->prefix_len, (void *)a->prefix}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < a->prefix_len || memcmp(k.mv_data, a->prefix, a->prefix_len))
            break;
        rc = mdb_cursor_del(cur, 0);
        if (rc == MDB_MAP_FULL)
            tx->map_full = 1;
        if (rc != 0)
            break;
        a->deleted++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? KV_OK : KV_ERR_STORE;
}

enum kv_status ks_record_del(struct ks_env *env, enum ks_table table, const void *prefix,
                             size_t prefix_len, size_t *deleted)
{
    if (!table_ok(table) || prefix_len == 0 || prefix_len > 511)
        return KV_ERR_BAD_PARAM;
    struct del_arg a = {env->db_tables[table], prefix, prefix_len, 0};
    enum kv_status st = ks_txn_write(env, del_fn, &a);
    if (st == KV_OK && deleted != NULL)
        *deleted = a.deleted;
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

struct append_arg {
    MDB_dbi dbi;
    const void *val;
    size_t val_len;
    uint64_t seq;
};

static enum kv_status append_fn(struct ks_txn *tx, void *arg)
{
    struct append_arg *a = arg;
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
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return KV_ERR_STORE;
    a->seq = last + 1;
    unsigned char key[8];
    for (int i = 0; i < 8; i++)
        key[i] = (unsigned char)(a->seq >> (56 - 8 * i));
    return ks_txn_put(tx, a->dbi, key, sizeof(key), a->val, a->val_len);
}

enum kv_status ks_record_append(struct ks_env *env, enum ks_table table, const void *val,
                                size_t val_len, uint64_t *seq)
{
    if (!table_ok(table))
        return KV_ERR_BAD_PARAM;
    struct append_arg a = {env->db_tables[table], val, val_len, 0};
    enum kv_status st = ks_txn_write(env, append_fn, &a);
    if (st == KV_OK && seq != NULL)
        *seq = a.seq;
    return st;
}
