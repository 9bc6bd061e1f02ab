/**
 * @file store.h
 * @brief The LMDB environment and its transactions (keystore-internal).
 *
 * One environment, one file (DATA/kvmock.mdb), named databases:
 * `vaults` (name -> properties), `keys` (vault\0name\0version -> version record),
 * `heads` (vault\0name -> current version and deleted state), plus `policies`,
 * `roles` and `audit` for the policy layer, and `backups` and `jobs` for Managed HSM full
 * backups and their jobs (server/hsm_backup.c). Record values are JSON text, or sealed blobs.
 *
 * Transactions never overlap a map resize: every transaction holds the resize
 * lock shared; growing the map after MDB_MAP_FULL takes it exclusively.
 */
#ifndef KS_STORE_H
#define KS_STORE_H

#include <cjson/cJSON.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>

#include "cache.h"
#include "memo.h"
#include "ks.h"
#include "seal.h"

struct ks_env {
    MDB_env *env;
    MDB_dbi db_vaults, db_keys, db_heads;
    MDB_dbi db_sweep; /**< heads the sweep looks at (keys.c ks_sweep_index_fill) */
    MDB_dbi db_secdomain; /**< Managed HSMs' transfer keys and uploaded domains (secdomain.c) */
    int dbs_open;     /**< the named databases are open: ks_close() notes the close */
    MDB_dbi db_tables[KS_TABLE_COUNT]; /**< policies, roles, audit, backups, jobs (records.c) */
    pthread_rwlock_t resize_lock;
    unsigned char *root_key; /**< sodium_malloc'd, KS_ROOT_KEY_LEN bytes */
    struct ks_cache *cache;
    struct ks_memo *vault_memo, *key_memo, *head_memo; /**< parsed records (memo.h) */
    /* writers waiting for the next group commit (store.c ks_txn_write) */
    pthread_mutex_t writers_mu;
    struct ks_writer *writers, **writers_tail;
    int writers_busy;
    /* each thread's reset read transaction (store.c ks_txn_read) */
    pthread_key_t reader_key;
    int reader_key_made;
    pthread_mutex_t readers_mu;
    struct ks_reader *readers; /**< every thread's, for ks_close() */
    /* commits that failed: the data folder could not grow, or another cause (metrics) */
    _Atomic unsigned long long commits_full, commits_failed;
};

/** A transaction in progress. */
struct ks_txn {
    struct ks_env *env;
    MDB_txn *txn;
    int map_full; /**< set by ks_txn_put() and ks_txn_del() when the map filled up */
};

/* Slots of the memos of parsed records (memo.h): the hot set, bounded. */
#define KS_VAULT_MEMO_SLOTS 64
#define KS_KEY_MEMO_SLOTS 256 /**< key versions, and key heads */

/**
 * @brief ks_vault_put() inside @p tx: check and write a vault's properties.
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_PURGE_PROTECTED, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_vault_write(struct ks_txn *tx, const struct ks_vault *vault) KV_MUST_CHECK;

/** @brief Tags from a record's "tags" object (non-string members are skipped).
 * @return KV_OK, KV_ERR_NOMEM. */
enum kv_status ks_tags_from_json(const cJSON *o, struct ks_tags *out) KV_MUST_CHECK;

/** @brief A record's "tags" object; NULL when out of memory. */
cJSON *ks_tags_to_json(const struct ks_tags *t);

/** @brief Whether @p r is within Key Vault's limits, with every IP rule a CIDR range in
 * its canonical text (kv_cidr_format) and every subnet id of 1..KS_VNET_ID_MAX bytes. */
int ks_net_rules_valid(const struct ks_net_rules *r);

/** @brief The rule lists of a record's "networkAcls" object (NULL: none).
 * @return KV_OK, KV_ERR_NOMEM. */
enum kv_status ks_net_rules_from_json(const cJSON *acls, struct ks_net_rules *out) KV_MUST_CHECK;

/** @brief A vault's properties from its record (a live vault's, or the one a deleted
 * vault's record keeps), named @p lname. */
void ks_vault_from_json(const cJSON *o, const char *lname, struct ks_vault *out);

/**
 * @brief Fill the `sweep` table anew from every head (keys.c). ks_open() does it
 * unless the table notes that this kvmock closed the store cleanly and nothing
 * wrote to it since: a store from before the table, one an older kvmock wrote
 * to (which does not keep the table), or one after a crash.
 * @return KV_OK, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_sweep_index_fill(struct ks_txn *tx) KV_MUST_CHECK;

/** The `sweep` table's key of its note of a clean close (the last transaction's
 * id): a key no head can have, as a head's starts with a vault name. */
#define KS_SWEEP_CLOSED     "\0closed"
#define KS_SWEEP_CLOSED_LEN (sizeof(KS_SWEEP_CLOSED) - 1)

/** @brief Whether the `sweep` table's note of a clean close is transaction @p last_txnid. */
int ks_sweep_index_current(struct ks_txn *tx, size_t last_txnid);

/** @brief Note in the `sweep` table that @p tx, the last of a clean close, is the store's last. */
enum kv_status ks_sweep_index_closed(struct ks_txn *tx) KV_MUST_CHECK;

/** @brief The memo of parsed key versions (keys.c). @return NULL when out of memory. */
struct ks_memo *ks_key_memo_new(size_t slots);

/** @brief The memo of parsed key heads (keys.c). @return NULL when out of memory. */
struct ks_memo *ks_head_memo_new(size_t slots);

/** Body of a write transaction; returns KV_OK to commit, anything else to abort. */
typedef enum kv_status (*ks_txn_fn)(struct ks_txn *tx, void *arg);

/**
 * @brief Run @p fn in a write transaction and commit it. Concurrent callers share
 * one commit (group commit), each @p fn in its own nested transaction, so one
 * failing leaves the others alone; @p fn may run on another caller's thread.
 * When the map fills up the transaction is aborted, the map doubled and @p fn
 * run again from the start, so @p fn must not keep side effects outside the
 * transaction between attempts.
 * @return what @p fn returned, or KV_ERR_STORE when begin or commit fails.
 */
enum kv_status ks_txn_write(struct ks_env *env, ks_txn_fn fn, void *arg) KV_MUST_CHECK;

/** @brief ks_group_ensure() inside @p tx (groups.c): @p out and @p created are set only
 * on KV_OK. */
enum kv_status ks_group_ensure_tx(struct ks_txn *tx, const struct ks_group *group,
                                  struct ks_group *out, int *created) KV_MUST_CHECK;

/** @brief ks_record_apply() inside @p tx. */
enum kv_status ks_records_apply_tx(struct ks_txn *tx, const struct ks_record_op *ops,
                                   size_t n) KV_MUST_CHECK;

/**
 * @brief Append records inside @p tx (records.c; ks_record_append_many() is this
 * in a write transaction of its own).
 */
enum kv_status ks_records_append_tx(struct ks_txn *tx, enum ks_table table,
                                    const void *const *vals, const size_t *lens, size_t n,
                                    size_t keep, uint64_t *first_seq) KV_MUST_CHECK;

/**
 * @brief Run @p fn in a read-only transaction. Each thread keeps its transaction
 * handle and its reader slot between reads; a read nested in another gets its own.
 * @return what @p fn returned, or KV_ERR_STORE when begin fails.
 */
enum kv_status ks_txn_read(struct ks_env *env, ks_txn_fn fn, void *arg) KV_MUST_CHECK;

/** @brief mdb_put that records MDB_MAP_FULL. @return KV_OK or KV_ERR_STORE. */
enum kv_status ks_txn_put(struct ks_txn *tx, MDB_dbi dbi, const void *key, size_t key_len,
                          const void *val, size_t val_len) KV_MUST_CHECK;

/**
 * @brief mdb_get. @p out points into the map and is valid until the transaction ends.
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND (no such record) or KV_ERR_STORE.
 */
enum kv_status ks_txn_get(struct ks_txn *tx, MDB_dbi dbi, const void *key, size_t key_len,
                          MDB_val *out) KV_MUST_CHECK;

/** @brief mdb_del. @return KV_OK (also when absent) or KV_ERR_STORE. */
enum kv_status ks_txn_del(struct ks_txn *tx, MDB_dbi dbi, const void *key,
                          size_t key_len) KV_MUST_CHECK;

/** @brief Whether resource group @p name exists. @return KV_OK, KV_ERR_ARM_NO_GROUP,
 *  KV_ERR_STORE. */
enum kv_status ks_group_exists_tx(struct ks_txn *tx, const char *name) KV_MUST_CHECK;

/** @brief Read a vault record inside a transaction. @return KV_OK, KV_ERR_VAULT_NOT_FOUND... */
enum kv_status ks_vault_read(struct ks_txn *tx, const char *name,
                             struct ks_vault *out) KV_MUST_CHECK;

#endif
