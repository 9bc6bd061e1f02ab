/*
 * The sweep's table: it holds exactly the heads the sweep has to look at
 * (deleted keys and keys whose rotation policy rotates), every write of a
 * head keeps it so, and a store written before the table existed gets it
 * filled when it is opened, as does one that something else wrote to after
 * this kvmock last closed it. Key counts take their deleted keys from it.
 */
#include <lmdb.h>
#include <pthread.h>
#include <stdint.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "ks.h"
#include "store.h" /* the sweep table, to count what it holds */

#define DIR_TEMPLATE "/tmp/kvmock-sweep-XXXXXX" /* mkdtemp() fills in the X's */
#define PLAIN_KEYS   20

static char dir[sizeof(DIR_TEMPLATE)];

static struct ks_env *open_store(void)
{
    struct ks_env *env = NULL;
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    return env;
}

/* Heads in the table (not its note of a clean close, whose key starts with NUL). */
static enum kv_status count_fn(struct ks_txn *tx, void *arg)
{
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_sweep, &cur) != 0)
        return KV_ERR_STORE;
    size_t n = 0;
    MDB_val k, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        n += k.mv_size > 0 && ((const char *)k.mv_data)[0] != '\0';
    mdb_cursor_close(cur);
    *(size_t *)arg = n;
    return KV_OK;
}

static size_t in_table(struct ks_env *env)
{
    size_t n = (size_t)-1;
    CHECK_ST(ks_txn_read(env, count_fn, &n), KV_OK);
    return n;
}

static void create(struct ks_env *env, const char *name)
{
    struct ks_create p = {.kty = KS_KTY_OCT, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, "sw", name, &p, &k), KV_OK);
    ks_key_free(k);
}

static void set_policy(struct ks_env *env, const char *name, int rotate)
{
    struct ks_rotation_policy in = {
        .n_actions = 1,
        .actions = {{.rotate = rotate, .after_create = "P30D", .after_create_s = 30 * 86400}}};
    if (!rotate) {
        /* a notification only: nothing for the sweep to do */
        in.expiry_s = 60 * 86400;
        snprintf(in.expiry, sizeof(in.expiry), "P60D");
    }
    struct ks_rotation_policy out;
    CHECK_ST(ks_rotation_policy_set(env, "sw", name, &in, &out), KV_OK);
}

static void delete_key(struct ks_env *env, const char *name)
{
    struct ks_key *d = NULL;
    CHECK_ST(ks_key_delete(env, "sw", name, &d), KV_OK);
    ks_key_free(d);
}

/* A write transaction on the store with LMDB itself, as another program's. */
static MDB_env *raw_begin(MDB_txn **txn)
{
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/kvmock.mdb", dir);
    MDB_env *e = NULL;
    CHECK(mdb_env_create(&e) == 0);
    CHECK(mdb_env_set_maxdbs(e, 8) == 0);
    CHECK(mdb_env_open(e, path, MDB_NOSUBDIR, 0600) == 0);
    CHECK(mdb_txn_begin(e, NULL, 0, txn) == 0);
    return e;
}

static void raw_commit(MDB_env *e, MDB_txn *txn)
{
    CHECK(mdb_txn_commit(txn) == 0);
    mdb_env_close(e);
}

/* Whether the table notes a clean close at the store's last transaction. */
static int close_noted(void)
{
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_envinfo info;
    MDB_env *e = raw_begin(&txn);
    CHECK(mdb_dbi_open(txn, "sweep", 0, &dbi) == 0);
    CHECK(mdb_env_info(e, &info) == 0);
    MDB_val k = {KS_SWEEP_CLOSED_LEN, KS_SWEEP_CLOSED}, v;
    uint64_t id = 0;
    if (mdb_get(txn, dbi, &k, &v) == 0 && v.mv_size == sizeof(id))
        memcpy(&id, v.mv_data, sizeof(id));
    mdb_txn_abort(txn);
    mdb_env_close(e);
    return id != 0 && id == (uint64_t)info.me_last_txnid;
}

/* Take the table out, as a store from before it would be. */
static void drop_table(void)
{
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_env *e = raw_begin(&txn);
    CHECK(mdb_dbi_open(txn, "sweep", 0, &dbi) == 0);
    CHECK(mdb_drop(txn, dbi, 1) == 0);
    CHECK(mdb_dbi_open(txn, "sweep", 0, &dbi) == MDB_NOTFOUND);
    raw_commit(e, txn);
}

/* Take one head out of the table, as an older kvmock's delete would leave it;
 * with @p note, also write the note of a clean close, as if this kvmock had
 * closed the store right after. */
static void forget(const char *vault, const char *name, int note)
{
    char key[64];
    size_t vlen = strlen(vault), klen = vlen + 1 + strlen(name);
    memcpy(key, vault, vlen + 1);
    memcpy(key + vlen + 1, name, strlen(name));
    MDB_txn *txn = NULL;
    MDB_dbi dbi;
    MDB_env *e = raw_begin(&txn);
    CHECK(mdb_dbi_open(txn, "sweep", 0, &dbi) == 0);
    MDB_val k = {klen, key};
    CHECK(mdb_del(txn, dbi, &k, NULL) == 0);
    if (note) {
        uint64_t id = mdb_txn_id(txn);
        MDB_val nk = {KS_SWEEP_CLOSED_LEN, KS_SWEEP_CLOSED}, nv = {sizeof(id), &id};
        CHECK(mdb_put(txn, dbi, &nk, &nv, 0) == 0);
    }
    raw_commit(e, txn);
}

/* Close @p env, forget plain01 as forget() does, and open the store again. */
static struct ks_env *reopen_forgetting(struct ks_env *env, int note)
{
    ks_close(env);
    forget("sw", "plain01", note);
    return open_store();
}

static size_t versions(struct ks_env *env, const char *name)
{
    struct ks_key_page *page = NULL;
    CHECK_ST(ks_key_list_versions(env, "sw", name, NULL, 25, &page), KV_OK);
    size_t n = page != NULL ? page->count : 0;
    ks_key_page_free(page);
    return n;
}

static void *sweep_thread(void *arg)
{
    CHECK_ST(ks_sweep(arg, NULL, NULL), KV_OK);
    return NULL;
}

/* Two sweeps at once (the periodic one and one after the clock moved) rotate a due key
 * once: the second finds the version it judged due is no longer the current one. An
 * RSA key, whose new material takes long enough to make that both sweeps scan before
 * either writes. */
static void sweeps_at_once_rotate_once(struct ks_env *env)
{
    struct ks_create p = {.kty = KS_KTY_RSA, .size_bits = 2048, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, "sw", "twice", &p, &k), KV_OK);
    ks_key_free(k);
    set_policy(env, "twice", 1);
    CHECK_ST(ks_sweep(env, NULL, NULL), KV_OK); /* what was due before is done */
    for (size_t round = 1; round <= 3; round++) {
        ks_clock_advance(31 * 86400);
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            CHECK(pthread_create(&t[i], NULL, sweep_thread, env) == 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        CHECK(versions(env, "twice") == 1 + round);
    }
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    memcpy(dir, DIR_TEMPLATE, sizeof(DIR_TEMPLATE));
    CHECK(mkdtemp(dir) != NULL);
    struct ks_env *env = open_store();
    if (env == NULL)
        return 1;
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7};
    snprintf(v.name, sizeof(v.name), "sw");
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);

    /* plain keys are not in it; a deleted key and a rotating one are */
    char name[16];
    for (int i = 0; i < PLAIN_KEYS; i++) {
        snprintf(name, sizeof(name), "plain%02d", i);
        create(env, name);
    }
    create(env, "gone");
    create(env, "rot");
    create(env, "note");
    CHECK(in_table(env) == 0);
    delete_key(env, "gone");
    set_policy(env, "rot", 1);
    set_policy(env, "note", 0);
    CHECK(in_table(env) == 2);

    /* recovered, it leaves; deleted again and purged, it leaves */
    struct ks_key *r = NULL;
    CHECK_ST(ks_deleted_recover(env, "sw", "gone", &r), KV_OK);
    ks_key_free(r);
    CHECK(in_table(env) == 1);
    delete_key(env, "gone");
    CHECK(in_table(env) == 2);
    CHECK_ST(ks_deleted_purge(env, "sw", "gone"), KV_OK);
    CHECK(in_table(env) == 1);

    /* a rotation keeps a rotating key in it; a policy that stops rotating takes it out */
    r = NULL;
    CHECK_ST(ks_key_rotate(env, "sw", "rot", &r), KV_OK);
    ks_key_free(r);
    CHECK(in_table(env) == 1);
    set_policy(env, "rot", 0);
    CHECK(in_table(env) == 0);
    set_policy(env, "rot", 1);
    delete_key(env, "plain00");
    CHECK(in_table(env) == 2);
    /* the counts /metrics shows take the deleted keys from the table */
    size_t live = 0, deleted = 0;
    CHECK_ST(ks_vault_key_count(env, "sw", &live, &deleted), KV_OK);
    CHECK(live == PLAIN_KEYS + 1 && deleted == 1); /* the plain ones but one, rot and note */
    ks_close(env);
    CHECK(close_noted()); /* so the next open trusts the table */

    /* a store from before the table: opening it fills the table from the heads,
     * and the sweep finds what is due in it */
    drop_table();
    env = open_store();
    if (env == NULL)
        return 1;
    CHECK(in_table(env) == 2);
    size_t purged = 0, rotated = 0;
    ks_clock_advance(31 * 86400);
    /* past its purge date, not yet swept: neither live nor deleted */
    CHECK_ST(ks_vault_key_count(env, "sw", &live, &deleted), KV_OK);
    CHECK(live == PLAIN_KEYS + 1 && deleted == 0);
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(purged == 1 && rotated == 1);
    CHECK(in_table(env) == 1); /* the rotating key stays: its next rotation will come */

    /* after a write by something else (an older kvmock), the next open fills
     * the table again; after this kvmock's own clean close it does not */
    delete_key(env, "plain01");
    CHECK(in_table(env) == 2);
    env = reopen_forgetting(env, 0);
    if (env == NULL)
        return 1;
    CHECK(in_table(env) == 2);
    env = reopen_forgetting(env, 1);
    if (env == NULL)
        return 1;
    CHECK(in_table(env) == 1); /* trusted: what this test took out stays out */
    sweeps_at_once_rotate_once(env);
    ks_close(env);

    check_remove_dir(dir);
    CHECK_DONE();
}
