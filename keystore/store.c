/* The LMDB environment, transactions with map growth, and vault records. */
#include "store.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "crypto.h"
#include "kv_file.h"
#include "kv_log.h"

#define DEFAULT_MAP_SIZE ((size_t)64 << 20)
#define DEFAULT_CACHE_ENTRIES 4096
#define DEFAULT_THREADS 1000
#define SPARE_READERS 64 /* reader slots beyond one per thread: nested reads */

static enum kv_status grow_map(struct ks_env *e);

static enum kv_status open_dbs(struct ks_env *e)
{
retry:;
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(e->env, NULL, 0, &txn) != 0)
        return KV_ERR_STORE;
    int rc = mdb_dbi_open(txn, "vaults", MDB_CREATE, &e->db_vaults);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "keys", MDB_CREATE, &e->db_keys);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "heads", MDB_CREATE, &e->db_heads);
    static const char *const tables[KS_TABLE_COUNT] = {"policies", "roles", "audit", "backups",
                                                       "jobs"};
    for (int t = 0; rc == 0 && t < KS_TABLE_COUNT; t++)
        rc = mdb_dbi_open(txn, tables[t], MDB_CREATE, &e->db_tables[t]);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "sweep", MDB_CREATE, &e->db_sweep);
    if (rc == 0)
        rc = mdb_dbi_open(txn, "secdomain", MDB_CREATE, &e->db_secdomain);
    MDB_envinfo info;
    if (rc == 0)
        rc = mdb_env_info(e->env, &info);
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "cannot open LMDB databases: %s", mdb_strerror(rc));
        mdb_txn_abort(txn);
        return KV_ERR_STORE;
    }
    struct ks_txn tx = {.env = e, .txn = txn};
    if (!ks_sweep_index_current(&tx, info.me_last_txnid)) {
        kv_log(KV_LOG_INFO, "filling the sweep table (the store was not closed by this kvmock)");
        enum kv_status st = ks_sweep_index_fill(&tx);
        if (st != KV_OK) {
            mdb_txn_abort(txn);
            if (tx.map_full && grow_map(e) == KV_OK)
                goto retry;
            kv_log(KV_LOG_ERROR, "cannot fill the sweep table");
            return st;
        }
    }
    rc = mdb_txn_commit(txn);
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "cannot create LMDB databases: %s", mdb_strerror(rc));
        return KV_ERR_STORE;
    }
    e->dbs_open = 1;
    return KV_OK;
}

static enum kv_status note_close_fn(struct ks_txn *tx, void *arg)
{
    (void)arg;
    return ks_sweep_index_closed(tx);
}

/* Note a clean close in the sweep table (ks_sweep_index_fill). */
static void note_close(struct ks_env *e)
{
    if (ks_txn_write(e, note_close_fn, NULL) != KV_OK)
        kv_log(KV_LOG_WARN, "could not note the clean close: the next start reads every key once");
}


/*
 * Read transactions are kept: each thread has one, reset between reads
 * (mdb_txn_reset: with MDB_NOTLS the handle keeps its reader slot, and a
 * reset one pins no pages), and renews it for the next. A read then neither
 * allocates the handle nor takes the reader table's mutex to find a slot, as
 * mdb_txn_begin does; under many connections both were waits in the allocator's
 * and LMDB's locks on every read. A thread's handle is aborted when the thread
 * ends, and by ks_close() for threads still running.
 */
struct ks_reader {
    MDB_txn *txn;
    int busy; /* a read is in it: a nested read begins its own */
    struct ks_env *env;
    struct ks_reader *prev, *next; /* env->readers */
};

static void reader_unlink(struct ks_reader *r)
{
    struct ks_env *e = r->env;
    pthread_mutex_lock(&e->readers_mu);
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        e->readers = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    pthread_mutex_unlock(&e->readers_mu);
}

/* A thread ends: its reader slot goes back to the table. */
static void reader_end(void *arg)
{
    struct ks_reader *r = arg;
    reader_unlink(r);
    mdb_txn_abort(r->txn);
    free(r);
}

/* Keep @p txn, just read, as the calling thread's. @return 0 when it cannot. */
static int reader_keep(struct ks_env *e, MDB_txn *txn)
{
    if (pthread_getspecific(e->reader_key) != NULL)
        return 0; /* a nested read kept its own first */
    struct ks_reader *r = malloc(sizeof(*r));
    if (r == NULL)
        return 0;
    *r = (struct ks_reader){.txn = txn, .env = e};
    if (pthread_setspecific(e->reader_key, r) != 0) {
        free(r);
        return 0;
    }
    mdb_txn_reset(txn);
    pthread_mutex_lock(&e->readers_mu);
    r->next = e->readers;
    if (r->next != NULL)
        r->next->prev = r;
    e->readers = r;
    pthread_mutex_unlock(&e->readers_mu);
    return 1;
}

enum kv_status ks_open(const struct ks_open_opts *opts, struct ks_env **out)
{
    enum kv_status st = KV_ERR_STORE;
    char path[PATH_MAX];
    if (sodium_init() < 0)
        return KV_ERR_INTERNAL;
    struct ks_env *e = calloc(1, sizeof(*e));
    if (e == NULL)
        return KV_ERR_NOMEM;
    pthread_mutex_init(&e->writers_mu, NULL);
    e->writers_tail = &e->writers;
    pthread_mutex_init(&e->readers_mu, NULL);
    if (pthread_rwlock_init(&e->resize_lock, NULL) != 0) {
        free(e);
        return KV_ERR_INTERNAL;
    }
    if (pthread_key_create(&e->reader_key, reader_end) != 0) {
        ks_close(e);
        return KV_ERR_INTERNAL;
    }
    e->reader_key_made = 1;

    e->root_key = sodium_malloc(KS_ROOT_KEY_LEN);
    if (e->root_key == NULL) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    if (snprintf(path, sizeof(path), "%s/root.key", opts->data_dir) >= (int)sizeof(path))
        goto out;
    st = kv_secret_file(path, e->root_key, KS_ROOT_KEY_LEN);
    if (st != KV_OK)
        goto out;
    sodium_mprotect_readonly(e->root_key);

    st = KV_ERR_STORE;
    if (snprintf(path, sizeof(path), "%s/kvmock.mdb", opts->data_dir) >= (int)sizeof(path))
        goto out;
    int rc = mdb_env_create(&e->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(e->env, 16);
    if (rc == 0)
        rc = mdb_env_set_maxreaders(
            e->env, (unsigned)(opts->threads ? opts->threads : DEFAULT_THREADS) + SPARE_READERS);
    if (rc == 0)
        rc = mdb_env_set_mapsize(e->env, opts->map_size ? opts->map_size : DEFAULT_MAP_SIZE);
    if (rc == 0)
        rc = mdb_env_open(e->env, path,
                          MDB_NOSUBDIR | MDB_NOTLS |
                              (opts->sync == KS_SYNC_DATA   ? MDB_NOMETASYNC
                               : opts->sync == KS_SYNC_NONE ? MDB_NOSYNC
                                                            : 0),
                          0600);
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "cannot open LMDB environment %s: %s", path, mdb_strerror(rc));
        goto out;
    }
    /* A map larger than asked (set by an earlier run) is kept: 0 adopts the file's size. */
    (void)mdb_env_set_mapsize(e->env, 0);
    e->cache = ks_cache_new(opts->cache_entries ? opts->cache_entries : DEFAULT_CACHE_ENTRIES);
    e->vault_memo = ks_memo_new(KS_VAULT_MEMO_SLOTS, sizeof(struct ks_vault), NULL, NULL);
    e->key_memo = ks_key_memo_new(KS_KEY_MEMO_SLOTS);
    e->head_memo = ks_head_memo_new(KS_KEY_MEMO_SLOTS);
    if (e->cache == NULL || e->vault_memo == NULL || e->key_memo == NULL ||
        e->head_memo == NULL) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    st = open_dbs(e); /* after the memos: a store from before the sweep table reads its heads */
    if (st != KV_OK)
        goto out;
    *out = e;
    e = NULL;
    st = KV_OK;
out:
    ks_close(e);
    return st;
}

void ks_close(struct ks_env *e)
{
    if (e == NULL)
        return;
    if (e->reader_key_made)
        pthread_key_delete(e->reader_key); /* no thread's end runs reader_end now */
    if (e->dbs_open)
        note_close(e);
    while (e->readers != NULL) {
        struct ks_reader *r = e->readers;
        e->readers = r->next;
        mdb_txn_abort(r->txn);
        free(r);
    }
    pthread_mutex_destroy(&e->readers_mu);
    ks_cache_free(e->cache);
    ks_memo_free(e->vault_memo);
    ks_memo_free(e->key_memo);
    ks_memo_free(e->head_memo);
    if (e->env != NULL)
        mdb_env_close(e->env);
    if (e->root_key != NULL)
        sodium_free(e->root_key); /* sodium_free wipes the memory */
    pthread_rwlock_destroy(&e->resize_lock);
    pthread_mutex_destroy(&e->writers_mu);
    free(e);
}

/* Room the store file needs to be able to take a commit: below it, a failed write is
 * taken for a data folder that cannot grow. */
#define ROOM_NEEDED ((unsigned long long)1 << 20)

/*
 * A commit failed with @p rc: log why and say whether the data folder cannot grow
 * (KV_ERR_STORE_FULL: its file system full, a quota, or a limit on the file's size)
 * or the store failed otherwise (KV_ERR_STORE). LMDB reports a short write as EIO,
 * so an EIO also counts as full when the file system, or the file's size limit,
 * leaves less than ROOM_NEEDED.
 */
static enum kv_status commit_failed(struct ks_env *e, int rc)
{
    int full = rc == ENOSPC || rc == EDQUOT || rc == EFBIG;
    char why[160] = "";
    int fd = -1;
    struct statvfs fs;
    struct stat st;
    struct rlimit lim;
    if ((full || rc == EIO) && mdb_env_get_fd(e->env, &fd) == 0) {
        if (fstatvfs(fd, &fs) == 0 && (unsigned long long)fs.f_bavail * fs.f_frsize < ROOM_NEEDED) {
            full = 1;
            snprintf(why, sizeof(why), " (the data folder's file system has %llu KiB free)",
                     (unsigned long long)fs.f_bavail * fs.f_frsize >> 10);
        } else if (fstat(fd, &st) == 0 && getrlimit(RLIMIT_FSIZE, &lim) == 0 &&
                   lim.rlim_cur != RLIM_INFINITY &&
                   (unsigned long long)st.st_size + ROOM_NEEDED > lim.rlim_cur) {
            full = 1;
            snprintf(why, sizeof(why), " (the store file is %llu KiB, its size limit %llu KiB)",
                     (unsigned long long)st.st_size >> 10, (unsigned long long)lim.rlim_cur >> 10);
        }
    }
    kv_log(KV_LOG_ERROR, "commit failed: %s%s", mdb_strerror(rc), why);
    atomic_fetch_add(full ? &e->commits_full : &e->commits_failed, 1);
    return full ? KV_ERR_STORE_FULL : KV_ERR_STORE;
}

void ks_commit_failures(struct ks_env *e, unsigned long long *full, unsigned long long *other)
{
    *full = atomic_load(&e->commits_full);
    *other = atomic_load(&e->commits_failed);
}

/* Double the map. No transaction is active: the caller holds no resize lock. */
static enum kv_status grow_map(struct ks_env *e)
{
    pthread_rwlock_wrlock(&e->resize_lock);
    MDB_envinfo info;
    int rc = mdb_env_info(e->env, &info);
    if (rc == 0)
        rc = mdb_env_set_mapsize(e->env, info.me_mapsize * 2);
    pthread_rwlock_unlock(&e->resize_lock);
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "cannot grow the LMDB map: %s", mdb_strerror(rc));
        return KV_ERR_STORE;
    }
    kv_log(KV_LOG_INFO, "LMDB map grown to %zu KiB", (size_t)(info.me_mapsize * 2) >> 10);
    return KV_OK;
}

/* One writer waiting in ks_txn_write(); lives on its thread's stack. */
struct ks_writer {
    ks_txn_fn fn;
    void *arg;
    struct ks_attach *attach; /* the thread's attached record, if any */
    int attached;             /* the record went into this writer's child transaction */
    enum kv_status st;
    int done;                 /* its batch ran: st is its result */
    sem_t wake;               /* posted once: done, or it leads the next batch */
    struct ks_writer *next;
};

/* The calling thread's attached record (ks_txn_attach). */
static __thread struct ks_attach *attached;

void ks_txn_attach(struct ks_attach *a)
{
    attached = a;
}

/* Append a writer's attached record in its child transaction, after its body. */
static enum kv_status append_attached(struct ks_txn *tx, struct ks_writer *w)
{
    w->attached = 0;
    if (w->attach == NULL)
        return KV_OK;
    size_t len = 0;
    char *text = w->attach->build(w->attach->arg, &len);
    if (text == NULL)
        return KV_OK; /* nothing attached: the caller writes its record itself */
    const void *val = text;
    enum kv_status st =
        ks_records_append_tx(tx, w->attach->table, &val, &len, 1, w->attach->keep, NULL);
    free(text);
    w->attached = st == KV_OK;
    return st;
}

/* Run one writer's body in a child of @p parent. @return 1 when the map filled up
 * (the child is aborted and the writer must run again after the map grows). */
static int run_child(struct ks_env *e, MDB_txn *parent, struct ks_writer *w)
{
    struct ks_txn tx = {.env = e};
    int rc = mdb_txn_begin(e->env, parent, 0, &tx.txn);
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "cannot begin a write transaction: %s", mdb_strerror(rc));
        w->st = KV_ERR_STORE;
        return 0;
    }
    enum kv_status st = w->fn(&tx, w->arg);
    if (st == KV_OK)
        st = append_attached(&tx, w);
    if (st == KV_OK) {
        rc = mdb_txn_commit(tx.txn);
        if (rc == MDB_MAP_FULL) {
            tx.map_full = 1;
        } else if (rc != 0) {
            st = commit_failed(e, rc);
        }
    } else {
        mdb_txn_abort(tx.txn);
    }
    w->st = st;
    return tx.map_full;
}

/*
 * Run a batch of writers: each in its own child transaction of one parent
 * (a writer that fails leaves the others untouched), then one commit and one
 * sync for all. When the map fills up, the writers before the one that hit it
 * are committed, the map grows, and the rest run in a new parent.
 */
static void run_batch(struct ks_env *e, struct ks_writer *w)
{
    while (w != NULL) {
        struct ks_writer *first = w;
        MDB_txn *parent = NULL;
        pthread_rwlock_rdlock(&e->resize_lock);
        int rc = mdb_txn_begin(e->env, NULL, 0, &parent);
        if (rc != 0) {
            pthread_rwlock_unlock(&e->resize_lock);
            kv_log(KV_LOG_ERROR, "cannot begin a write transaction: %s", mdb_strerror(rc));
            for (; w != NULL; w = w->next)
                w->st = KV_ERR_STORE;
            return;
        }
        int full = 0;
        for (; w != NULL && !full; w = full ? w : w->next)
            full = run_child(e, parent, w);
        rc = mdb_txn_commit(parent);
        if (rc == MDB_MAP_FULL) {
            full = 1;
            w = first; /* nothing of this parent was kept: every writer runs again */
        } else if (rc != 0) {
            enum kv_status failed = commit_failed(e, rc);
            for (struct ks_writer *x = first; x != w; x = x->next)
                if (x->st == KV_OK)
                    x->st = failed;
        }
        pthread_rwlock_unlock(&e->resize_lock);
        if (!full)
            continue;
        enum kv_status st = grow_map(e);
        if (st != KV_OK) {
            for (; w != NULL; w = w->next)
                w->st = st;
            return;
        }
    }
}

/*
 * Group commit: a writer queues itself; if no batch is running it leads,
 * otherwise it sleeps on its own semaphore. A leader takes the whole queue,
 * runs it (run_batch), hands the lead to the first writer queued meanwhile
 * and then wakes the writers of its batch, one post each. Under concurrent
 * writes many share one commit and its disk sync, instead of each waiting for
 * the single LMDB writer and syncing alone; and a batch's end wakes only the
 * threads it concerns, not every waiter to fight over one lock.
 */
static void wait_woken(sem_t *s)
{
    while (sem_wait(s) != 0 && errno == EINTR)
        ;
}

enum kv_status ks_txn_write(struct ks_env *e, ks_txn_fn fn, void *arg)
{
    struct ks_writer me = {fn, arg, attached && !attached->written ? attached : NULL, 0, KV_OK, 0,
                           .next = NULL};
    sem_init(&me.wake, 0, 0);
    pthread_mutex_lock(&e->writers_mu);
    *e->writers_tail = &me;
    e->writers_tail = &me.next;
    int lead = !e->writers_busy;
    e->writers_busy = 1;
    pthread_mutex_unlock(&e->writers_mu);
    if (!lead)
        wait_woken(&me.wake); /* the semaphore orders done, st and the queue */
    if (me.done) {
        sem_destroy(&me.wake);
        return me.st;
    }

    pthread_mutex_lock(&e->writers_mu);
    struct ks_writer *batch = e->writers;
    e->writers = NULL;
    e->writers_tail = &e->writers;
    pthread_mutex_unlock(&e->writers_mu);
    run_batch(e, batch);
    pthread_mutex_lock(&e->writers_mu);
    struct ks_writer *next_leader = e->writers;
    if (next_leader == NULL)
        e->writers_busy = 0;
    pthread_mutex_unlock(&e->writers_mu);
    if (next_leader != NULL)
        sem_post(&next_leader->wake);
    while (batch != NULL) {
        struct ks_writer *next = batch->next; /* a woken writer's frame may go at once */
        if (batch->st == KV_OK && batch->attached)
            batch->attach->written = 1;
        batch->done = 1;
        if (batch != &me)
            sem_post(&batch->wake);
        batch = next;
    }
    sem_destroy(&me.wake);
    return me.st;
}

enum kv_status ks_txn_read(struct ks_env *e, ks_txn_fn fn, void *arg)
{
    struct ks_txn tx = {.env = e};
    struct ks_reader *r = pthread_getspecific(e->reader_key);
    pthread_rwlock_rdlock(&e->resize_lock);
    int rc;
    if (r != NULL && r->busy) {
        r = NULL;
    } else if (r != NULL && mdb_txn_renew(r->txn) != 0) {
        pthread_setspecific(e->reader_key, NULL); /* dropped; the next read keeps a new one */
        reader_end(r);
        r = NULL;
    }
    if (r != NULL) {
        tx.txn = r->txn;
        rc = 0;
    } else {
        rc = mdb_txn_begin(e->env, NULL, MDB_RDONLY, &tx.txn);
    }
    if (rc != 0) {
        pthread_rwlock_unlock(&e->resize_lock);
        kv_log(KV_LOG_ERROR, "cannot begin a read transaction: %s", mdb_strerror(rc));
        return KV_ERR_STORE;
    }
    if (r != NULL)
        r->busy = 1;
    enum kv_status st = fn(&tx, arg);
    if (r != NULL) {
        mdb_txn_reset(tx.txn);
        r->busy = 0;
    } else if (!reader_keep(e, tx.txn)) { /* kept when the thread has none yet */
        mdb_txn_abort(tx.txn);
    }
    pthread_rwlock_unlock(&e->resize_lock);
    return st;
}

enum kv_status ks_txn_put(struct ks_txn *tx, MDB_dbi dbi, const void *key, size_t key_len,
                          const void *val, size_t val_len)
{
    MDB_val k = {key_len, (void *)key}, v = {val_len, (void *)val};
    int rc = mdb_put(tx->txn, dbi, &k, &v, 0);
    if (rc == MDB_MAP_FULL)
        tx->map_full = 1;
    if (rc != 0 && rc != MDB_MAP_FULL)
        kv_log(KV_LOG_ERROR, "write failed: %s", mdb_strerror(rc));
    return rc == 0 ? KV_OK : KV_ERR_STORE;
}

enum kv_status ks_txn_get(struct ks_txn *tx, MDB_dbi dbi, const void *key, size_t key_len,
                          MDB_val *out)
{
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_get(tx->txn, dbi, &k, out);
    if (rc == MDB_NOTFOUND)
        return KV_ERR_KEY_NOT_FOUND;
    if (rc != 0) {
        kv_log(KV_LOG_ERROR, "read failed: %s", mdb_strerror(rc));
        return KV_ERR_STORE;
    }
    return KV_OK;
}

enum kv_status ks_txn_del(struct ks_txn *tx, MDB_dbi dbi, const void *key, size_t key_len)
{
    MDB_val k = {key_len, (void *)key};
    int rc = mdb_del(tx->txn, dbi, &k, NULL);
    if (rc == MDB_MAP_FULL) /* a delete takes pages too: the writer runs again */
        tx->map_full = 1;
    else if (rc != 0 && rc != MDB_NOTFOUND)
        kv_log(KV_LOG_ERROR, "delete failed: %s", mdb_strerror(rc));
    return rc == 0 || rc == MDB_NOTFOUND ? KV_OK : KV_ERR_STORE;
}

/* ---- vaults ------------------------------------------------------------------ */

size_t ks_vault_lower(const char *name, char out[KS_VAULT_NAME_MAX + 1])
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > KS_VAULT_NAME_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        out[i] = (name[i] >= 'A' && name[i] <= 'Z') ? (char)(name[i] - 'A' + 'a') : name[i];
    out[n] = '\0';
    return n;
}

/* ---- tags ---------------------------------------------------------------------- */

void ks_tags_clear(struct ks_tags *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->names[i]);
        free(t->values[i]);
    }
    free(t->names);
    free(t->values);
    t->names = t->values = NULL;
    t->count = 0;
}

enum kv_status ks_tags_from_json(const cJSON *o, struct ks_tags *out)
{
    struct ks_tags t = {0};
    int n = cJSON_GetArraySize(o);
    if (n == 0) {
        *out = t;
        return KV_OK;
    }
    t.names = calloc((size_t)n, sizeof(char *));
    t.values = calloc((size_t)n, sizeof(char *));
    if (t.names == NULL || t.values == NULL)
        goto fail;
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (!cJSON_IsString(it))
            continue;
        t.names[t.count] = strdup(it->string);
        t.values[t.count] = strdup(it->valuestring);
        t.count++;
        if (t.names[t.count - 1] == NULL || t.values[t.count - 1] == NULL)
            goto fail;
    }
    *out = t;
    return KV_OK;
fail:
    ks_tags_clear(&t);
    free(t.names);
    free(t.values);
    return KV_ERR_NOMEM;
}

cJSON *ks_tags_to_json(const struct ks_tags *t)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o != NULL && i < t->count; i++) {
        if (cJSON_AddStringToObject(o, t->names[i], t->values[i]) == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* A vault record's "created" or "modified": {"at": N, "by": "...", "byType": "..."} */
static void change_from_json(const cJSON *o, struct ks_vault_change *out)
{
    const cJSON *at = cJSON_GetObjectItemCaseSensitive(o, "at");
    const char *by = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "by"));
    const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "byType"));
    out->at = cJSON_IsNumber(at) ? (int64_t)at->valuedouble : 0;
    snprintf(out->by, sizeof(out->by), "%s", by ? by : "");
    snprintf(out->by_type, sizeof(out->by_type), "%s", type ? type : "");
}

static int change_to_json(cJSON *o, const char *name, const struct ks_vault_change *c)
{
    if (c->at == 0)
        return 1;
    cJSON *j = cJSON_AddObjectToObject(o, name);
    return j != NULL && cJSON_AddNumberToObject(j, "at", (double)c->at) != NULL &&
           (c->by[0] == '\0' || cJSON_AddStringToObject(j, "by", c->by) != NULL) &&
           (c->by_type[0] == '\0' || cJSON_AddStringToObject(j, "byType", c->by_type) != NULL);
}

void ks_vault_from_json(const cJSON *o, const char *lname, struct ks_vault *out)
{
    struct ks_vault v = {0};
    snprintf(v.name, sizeof(v.name), "%s", lname);
    const char *tid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "tenantId"));
    snprintf(v.tenant_id, sizeof(v.tenant_id), "%s", tid ? tid : "");
    const char *loc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "location"));
    snprintf(v.location, sizeof(v.location), "%s", loc ? loc : "");
    const char *group = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "resourceGroup"));
    snprintf(v.group, sizeof(v.group), "%s", group ? group : "");
    v.soft_delete = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enableSoftDelete"));
    v.purge_protection = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enablePurgeProtection"));
    v.rbac = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enableRbacAuthorization"));
    const char *kind = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "kind"));
    v.hsm = kind != NULL && strcmp(kind, "managedHSM") == 0;
    v.arm_key_ops =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "allowKeyManagementOperationsThroughARM"));
    const char *hsm_sku = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "hsmSku"));
    snprintf(v.hsm_sku, sizeof(v.hsm_sku), "%s", hsm_sku ? hsm_sku : "");
    const cJSON *days = cJSON_GetObjectItemCaseSensitive(o, "softDeleteRetentionInDays");
    v.retention_days = cJSON_IsNumber(days) ? days->valueint : 90;
    const char *sku = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "sku"));
    v.premium = sku != NULL && strcmp(sku, "premium") == 0;
    v.for_deployment = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabledForDeployment"));
    v.for_disk_encryption =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabledForDiskEncryption"));
    v.for_template_deployment =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabledForTemplateDeployment"));
    const char *pna =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "publicNetworkAccess"));
    v.public_network_disabled = pna != NULL && strcmp(pna, "Disabled") == 0;
    const cJSON *acls = cJSON_GetObjectItemCaseSensitive(o, "networkAcls");
    if (cJSON_IsObject(acls)) {
        const char *action =
            cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(acls, "defaultAction"));
        const char *bypass = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(acls, "bypass"));
        v.net_acls = 1;
        v.net_deny = action != NULL && strcmp(action, "Deny") == 0;
        v.net_bypass_none = bypass != NULL && strcmp(bypass, "None") == 0;
    }
    change_from_json(cJSON_GetObjectItemCaseSensitive(o, "created"), &v.created);
    change_from_json(cJSON_GetObjectItemCaseSensitive(o, "modified"), &v.modified);
    *out = v;
}

void ks_vault_copy_arm_props(struct ks_vault *to, const struct ks_vault *from)
{
    to->premium = from->premium;
    memcpy(to->hsm_sku, from->hsm_sku, sizeof(to->hsm_sku));
    to->for_deployment = from->for_deployment;
    to->for_disk_encryption = from->for_disk_encryption;
    to->for_template_deployment = from->for_template_deployment;
    to->public_network_disabled = from->public_network_disabled;
    to->net_acls = from->net_acls;
    to->net_deny = from->net_deny;
    to->net_bypass_none = from->net_bypass_none;
    to->net_rules = NULL;
}

enum kv_status ks_vault_read(struct ks_txn *tx, const char *name, struct ks_vault *out)
{
    char lname[KS_VAULT_NAME_MAX + 1];
    if (ks_vault_lower(name, lname) == 0)
        return KV_ERR_VAULT_NOT_FOUND;
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_vaults, lname, strlen(lname), &v);
    if (st == KV_ERR_KEY_NOT_FOUND)
        return KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK)
        return st;
    if (ks_memo_get(tx->env->vault_memo, lname, strlen(lname), v.mv_data, v.mv_size, out))
        return KV_OK;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (o == NULL)
        return KV_ERR_STORE;
    struct ks_vault vault;
    ks_vault_from_json(o, lname, &vault);
    cJSON_Delete(o);
    ks_memo_put(tx->env->vault_memo, lname, strlen(lname), v.mv_data, v.mv_size, &vault);
    *out = vault;
    return KV_OK;
}

/* ks_vault_write(), with AllowKeyManagementOperationsThroughARM set to *arm_key_ops, or
 * (NULL) kept as stored. */
static enum kv_status vault_write(struct ks_txn *tx, const struct ks_vault *vault,
                                  const int *arm_key_ops)
{
    if (!ks_vault_name_valid(vault->name) || vault->retention_days < 7 ||
        vault->retention_days > 90 || (vault->purge_protection && !vault->soft_delete) ||
        memchr(vault->location, '\0', sizeof(vault->location)) == NULL ||
        memchr(vault->group, '\0', sizeof(vault->group)) == NULL ||
        memchr(vault->hsm_sku, '\0', sizeof(vault->hsm_sku)) == NULL ||
        (!vault->hsm && vault->hsm_sku[0] != '\0') ||
        memchr(vault->modified.by, '\0', sizeof(vault->modified.by)) == NULL ||
        memchr(vault->modified.by_type, '\0', sizeof(vault->modified.by_type)) == NULL ||
        (vault->group[0] != '\0' && !ks_group_name_valid(vault->group)) ||
        (vault->net_rules != NULL && !ks_net_rules_valid(vault->net_rules)) ||
        (!vault->net_acls && (vault->net_deny || vault->net_bypass_none)))
        return KV_ERR_BAD_PARAM;
    struct ks_vault old;
    enum kv_status st = ks_vault_read(tx, vault->name, &old);
    if (st != KV_OK && st != KV_ERR_VAULT_NOT_FOUND)
        return st;
    int exists = st == KV_OK;
    /* A vault's name is not an HSM's, nor the reverse. */
    if (exists && old.hsm != vault->hsm)
        return KV_ERR_ARM_VAULT_EXISTS;
    /* Purge protection cannot be turned off once on. */
    if (st == KV_OK && old.purge_protection && !vault->purge_protection)
        return KV_ERR_PURGE_PROTECTED;
    /* The tags and the network rule lists: the given ones, else the stored ones. */
    cJSON *tags = NULL, *acls = NULL, *rec = NULL;
    struct ks_net_rules kept = {0};
    const struct ks_net_rules *rules = vault->net_rules;
    if (exists && (vault->tags == NULL || (vault->net_acls && rules == NULL))) {
        MDB_val raw;
        st = ks_txn_get(tx, tx->env->db_vaults, vault->name, strlen(vault->name), &raw);
        rec = st == KV_OK ? cJSON_ParseWithLength(raw.mv_data, raw.mv_size) : NULL;
        if (st != KV_OK || rec == NULL)
            return st != KV_OK ? st : KV_ERR_STORE;
    }
    st = KV_OK;
    if (vault->net_acls && rules == NULL && rec != NULL) {
        st = ks_net_rules_from_json(cJSON_GetObjectItemCaseSensitive(rec, "networkAcls"), &kept);
        rules = &kept;
    }
    if (st == KV_OK && vault->net_acls && (acls = ks_net_acls_json(vault, rules)) == NULL)
        st = KV_ERR_NOMEM;
    if (st == KV_OK && vault->tags != NULL && (tags = ks_tags_to_json(vault->tags)) == NULL)
        st = KV_ERR_NOMEM;
    else if (st == KV_OK && vault->tags == NULL && rec != NULL)
        tags = cJSON_DetachItemFromObjectCaseSensitive(rec, "tags");
    cJSON_Delete(rec);
    ks_net_rules_clear(&kept);
    if (st != KV_OK) {
        cJSON_Delete(acls);
        return st;
    }
    st = KV_ERR_NOMEM;
    char *json = NULL;
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "tenantId", vault->tenant_id) ||
        !cJSON_AddBoolToObject(o, "enableSoftDelete", vault->soft_delete) ||
        !cJSON_AddNumberToObject(o, "softDeleteRetentionInDays", vault->retention_days) ||
        !cJSON_AddBoolToObject(o, "enablePurgeProtection", vault->purge_protection) ||
        !cJSON_AddBoolToObject(o, "enableRbacAuthorization", vault->rbac) ||
        (vault->hsm && !cJSON_AddStringToObject(o, "kind", "managedHSM")) ||
        (vault->hsm_sku[0] != '\0' && !cJSON_AddStringToObject(o, "hsmSku", vault->hsm_sku)) ||
        ((arm_key_ops != NULL ? *arm_key_ops : exists && old.arm_key_ops) &&
         !cJSON_AddTrueToObject(o, "allowKeyManagementOperationsThroughARM")) ||
        (vault->location[0] != '\0' && !cJSON_AddStringToObject(o, "location", vault->location)))
        goto out;
    /* the group: the given one, else the stored one */
    const char *group = vault->group[0] != '\0' ? vault->group : (exists ? old.group : "");
    if (group[0] != '\0' && !cJSON_AddStringToObject(o, "resourceGroup", group))
        goto out;
    /* this write's change, else the stored one (a new vault's: now, by kvmock); the
     * first write's stays the creation */
    struct ks_vault_change now = {.at = ks_now()};
    const struct ks_vault_change *modified = vault->modified.at != 0 ? &vault->modified
                                             : exists                ? &old.modified
                                                                     : &now;
    if (!change_to_json(o, "created", exists ? &old.created : modified) ||
        !change_to_json(o, "modified", modified))
        goto out;
    if (tags != NULL && cJSON_GetArraySize(tags) > 0) {
        if (!cJSON_AddItemToObject(o, "tags", tags))
            goto out;
        tags = NULL; /* owned by o */
    }
    /* the rest of Resource Manager's properties, when not their defaults */
    if ((vault->premium && !cJSON_AddStringToObject(o, "sku", "premium")) ||
        (vault->for_deployment && !cJSON_AddTrueToObject(o, "enabledForDeployment")) ||
        (vault->for_disk_encryption && !cJSON_AddTrueToObject(o, "enabledForDiskEncryption")) ||
        (vault->for_template_deployment &&
         !cJSON_AddTrueToObject(o, "enabledForTemplateDeployment")) ||
        (vault->public_network_disabled &&
         !cJSON_AddStringToObject(o, "publicNetworkAccess", "Disabled")))
        goto out;
    if (acls != NULL) {
        if (!cJSON_AddItemToObject(o, "networkAcls", acls))
            goto out;
        acls = NULL; /* owned by o */
    }
    json = cJSON_PrintUnformatted(o);
    if (json != NULL)
        st = ks_txn_put(tx, tx->env->db_vaults, vault->name, strlen(vault->name), json,
                        strlen(json));
out:
    cJSON_Delete(tags);
    cJSON_Delete(acls);
    cJSON_Delete(o);
    cJSON_free(json);
    return st;
}

enum kv_status ks_vault_write(struct ks_txn *tx, const struct ks_vault *vault)
{
    return vault_write(tx, vault, NULL);
}

struct arm_key_ops_arg {
    const char *name;
    int allow;
    struct ks_vault *out;
};

static enum kv_status arm_key_ops_fn(struct ks_txn *tx, void *arg)
{
    struct arm_key_ops_arg *a = arg;
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, a->name, &v);
    if (st == KV_OK && !v.hsm)
        st = KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK)
        return st;
    v.modified.at = 0; /* the tags, network rules and changes stay as stored */
    st = vault_write(tx, &v, &a->allow);
    if (st == KV_OK && a->out != NULL)
        st = ks_vault_read(tx, a->name, a->out);
    return st;
}

enum kv_status ks_hsm_set_arm_key_ops(struct ks_env *env, const char *name, int allow,
                                      struct ks_vault *out)
{
    struct arm_key_ops_arg a = {name, allow != 0, out};
    return ks_txn_write(env, arm_key_ops_fn, &a);
}

static enum kv_status vault_put_fn(struct ks_txn *tx, void *arg)
{
    return ks_vault_write(tx, arg);
}

enum kv_status ks_vault_put(struct ks_env *e, const struct ks_vault *vault)
{
    return ks_txn_write(e, vault_put_fn, (void *)vault);
}

struct vault_get_arg {
    const char *name;
    struct ks_vault *out;
};

static enum kv_status vault_get_fn(struct ks_txn *tx, void *arg)
{
    struct vault_get_arg *a = arg;
    return ks_vault_read(tx, a->name, a->out);
}

enum kv_status ks_vault_get(struct ks_env *e, const char *name, struct ks_vault *out)
{
    struct ks_vault v;
    struct vault_get_arg a = {name, &v};
    enum kv_status st = ks_txn_read(e, vault_get_fn, &a);
    if (st == KV_OK)
        *out = v;
    return st;
}

const char *ks_vault_location(const struct ks_vault *v)
{
    return v->location[0] != '\0' ? v->location : "local";
}

const char *ks_vault_recovery_level(const struct ks_vault *v, int *recoverable_days)
{
    if (!v->soft_delete) {
        *recoverable_days = 0;
        return "Purgeable";
    }
    *recoverable_days = v->retention_days;
    if (v->retention_days >= 90)
        return v->purge_protection ? "Recoverable" : "Recoverable+Purgeable";
    return v->purge_protection ? "CustomizedRecoverable" : "CustomizedRecoverable+Purgeable";
}

void ks_map_usage(struct ks_env *e, size_t *used, size_t *size)
{
    MDB_envinfo info;
    MDB_stat st;
    *used = *size = 0;
    if (mdb_env_info(e->env, &info) == 0 && mdb_env_stat(e->env, &st) == 0) {
        *used = (size_t)(info.me_last_pgno + 1) * st.ms_psize;
        *size = info.me_mapsize;
    }
}
