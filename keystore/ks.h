/**
 * @file ks.h
 * @brief The key store: vaults, keys and their versions, key operations.
 *
 * The keystore owns the LMDB environment, key records, sealing of private
 * material at rest, key generation and every cryptographic key operation.
 * It knows nothing of HTTP, JSON requests or identities.
 *
 * Conventions:
 * - Every function returns an `enum kv_status`; outputs are set only on KV_OK.
 * - Every API call that reads or writes LMDB is one transaction.
 * - Key names are matched case-insensitively; records keep the original casing.
 * - Objects returned through `**out` are owned by the caller and released with
 *   the matching `_free` function; `_free(NULL)` is a no-op.
 * - No returned object carries private key material.
 */
#ifndef KS_H
#define KS_H

#include <stddef.h>
#include <stdint.h>

#include "kv_buf.h"
#include "kv_status.h"

#define KS_VAULT_NAME_MAX 24 /**< vault names: 1-24 of [0-9a-z-] */
#define KS_NAME_MAX 127      /**< key names: 1-127 of [0-9a-zA-Z-] */
#define KS_VERSION_LEN 32    /**< versions: 32 lowercase hex characters */
#define KS_TENANT_MAX 64
#define KS_PAGE_MAX 25         /**< largest page a list returns */
#define KS_SKIPTOKEN_MAX 300   /**< longest skip token kvmock issues, with the NUL */

/** A Managed HSM's sku name: Standard_B1, Custom_B32, ... */
#define KS_HSM_SKU_MAX 15

/** Key types, without the HSM flag (kept separately). */
enum ks_kty { KS_KTY_RSA = 0, KS_KTY_EC, KS_KTY_OCT };

/** EC curves. */
enum ks_crv { KS_CRV_NONE = 0, KS_CRV_P256, KS_CRV_P256K, KS_CRV_P384, KS_CRV_P521 };

/** Key operations, as bits of a `key_ops` set. */
enum ks_keyop {
    KS_OP_ENCRYPT = 1u << 0,
    KS_OP_DECRYPT = 1u << 1,
    KS_OP_SIGN = 1u << 2,
    KS_OP_VERIFY = 1u << 3,
    KS_OP_WRAP = 1u << 4,
    KS_OP_UNWRAP = 1u << 5,
    KS_OP_IMPORT = 1u << 6,
    KS_OP_EXPORT = 1u << 7,
};
#define KS_OP_ALL 0xffu
#define KS_OPS_MAX 8 /**< operations a key_ops holds at most: each KS_OP_ bit once */

/*
 * A key_ops in the order the client gave it, beside its KS_OP_ bit set (`ops_order` in
 * struct ks_key and the others): a sequence of up to KS_OPS_MAX 4-bit codes, the first in
 * the lowest four bits, each an operation's bit index plus one (1 encrypt ... 8 export), a
 * code 0 ending it. An order of 0 is the fixed order (the KS_OP_ bits from the lowest),
 * that of a key made without key_ops (its kty's default) and of a record written before
 * kvmock kept the order. Checks use the bit set only; the order is what answers show.
 */

/** Algorithms of the key operations (Key Vault's JsonWebKeyEncryptionAlgorithm
 *  and JsonWebKeySignatureAlgorithm). */
enum ks_alg {
    KS_ALG_NONE = 0,
    KS_ALG_RSA_OAEP,
    KS_ALG_RSA_OAEP_256,
    KS_ALG_RSA1_5,
    KS_ALG_A128GCM,
    KS_ALG_A192GCM,
    KS_ALG_A256GCM,
    KS_ALG_A128CBC,
    KS_ALG_A192CBC,
    KS_ALG_A256CBC,
    KS_ALG_A128CBCPAD,
    KS_ALG_A192CBCPAD,
    KS_ALG_A256CBCPAD,
    KS_ALG_A128KW,
    KS_ALG_A192KW,
    KS_ALG_A256KW,
    KS_ALG_CKM_AES_KEY_WRAP,
    KS_ALG_CKM_AES_KEY_WRAP_PAD,
    KS_ALG_PS256,
    KS_ALG_PS384,
    KS_ALG_PS512,
    KS_ALG_RS256,
    KS_ALG_RS384,
    KS_ALG_RS512,
    KS_ALG_ES256,
    KS_ALG_ES256K,
    KS_ALG_ES384,
    KS_ALG_ES512,
    KS_ALG_HS256,
    KS_ALG_HS384,
    KS_ALG_HS512,
    KS_ALG_COUNT
};

/* ---- names (Key Vault's wire spellings) ---------------------------------- */

/** @brief "RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM". Static string. */
const char *ks_kty_name(enum ks_kty kty, int hsm);
/** @brief Parse a kty (case-sensitive, as the service). @return KV_OK or KV_ERR_BAD_KTY. */
enum kv_status ks_kty_parse(const char *name, enum ks_kty *kty, int *hsm) KV_MUST_CHECK;
/** @brief "P-256", "P-256K", "P-384", "P-521"; NULL for KS_CRV_NONE. */
const char *ks_crv_name(enum ks_crv crv);
/** @brief Parse a curve name. @return KV_OK or KV_ERR_BAD_CURVE. */
enum kv_status ks_crv_parse(const char *name, enum ks_crv *crv) KV_MUST_CHECK;
/** @brief The wire name of one operation bit ("wrapKey"); NULL if not a single bit. */
const char *ks_keyop_name(unsigned op);
/** @brief Parse one operation name. @return KV_OK or KV_ERR_BAD_KEY_OPS. */
enum kv_status ks_keyop_parse(const char *name, unsigned *op) KV_MUST_CHECK;
/**
 * @brief Add one operation, as a client's key_ops names it next, to a set and its order:
 * its bit to @p ops and, the first time only, its code to @p order (a duplicate changes
 * nothing). Start from 0 and 0. @p op other than one KS_OP_ bit is ignored.
 */
void ks_keyops_add(unsigned *ops, uint32_t *order, unsigned op);
/**
 * @brief The operations of the set @p ops in the order to show them: those @p order names,
 * in its order, then any others of @p ops in the fixed order. Each bit of @p ops comes
 * once and nothing else comes, whatever @p order holds (0: the fixed order).
 * @param[out] out KS_OPS_MAX slots, filled with single KS_OP_ bits.
 * @return how many slots were filled.
 */
size_t ks_keyops_list(unsigned ops, uint32_t order, unsigned out[KS_OPS_MAX]);
/** @brief The wire name of an algorithm ("RSA-OAEP-256"); NULL for KS_ALG_NONE. */
const char *ks_alg_name(enum ks_alg alg);
/** @brief Parse an algorithm name. @return KV_OK or KV_ERR_BAD_ALG. */
enum kv_status ks_alg_parse(const char *name, enum ks_alg *alg) KV_MUST_CHECK;
/** @brief Whether a key name matches ^[0-9a-zA-Z-]{1,127}$. */
int ks_key_name_valid(const char *name);
/** @brief Whether a vault name matches ^[0-9a-z-]{1,24}$ (lowercase). */
int ks_vault_name_valid(const char *name);
/**
 * @brief Lowercase a vault name into @p out (vault names match case-insensitively).
 * @return its length, or 0 when @p name is NULL, empty or longer than a vault name.
 */
size_t ks_vault_lower(const char *name, char out[KS_VAULT_NAME_MAX + 1]);

/* ---- the clock ------------------------------------------------------------ */

/** @brief kvmock's clock: Unix seconds, the real time plus the advanced offset. */
int64_t ks_now(void);
/** @brief Move kvmock's clock forward by @p seconds (the server persists the offset). */
void ks_clock_advance(int64_t seconds);
/** @brief How far kvmock's clock is ahead of the real time, in seconds. */
int64_t ks_clock_offset(void);

/* ---- environment ------------------------------------------------------------ */

struct ks_env;

/** What a commit waits for before it returns (LMDB's sync modes). */
enum ks_sync {
    KS_SYNC_FULL = 0, /**< data and meta page synced: a commit survives a power loss */
    KS_SYNC_DATA,     /**< data synced, meta page not (MDB_NOMETASYNC): a system crash
                           may undo the last commit; the store stays consistent */
    KS_SYNC_NONE,     /**< nothing synced (MDB_NOSYNC): the OS writes when it likes; a
                           kvmock crash loses nothing, a system crash may lose recent
                           commits */
};

struct ks_open_opts {
    const char *data_dir; /**< folder holding the LMDB files and root.key; must exist */
    size_t map_size;      /**< initial LMDB map size in bytes; 0 = default (64 MiB) */
    size_t cache_entries; /**< parsed-key cache capacity; 0 = default (4096) */
    enum ks_sync sync;    /**< what a commit waits for; 0 = KS_SYNC_FULL */
    size_t threads;       /**< worker threads that will read (each keeps a reader slot;
                               64 more are kept for other threads and nested reads);
                               0 = default (1000) */
};

/**
 * @brief Open (creating on first use) the store in @p opts->data_dir.
 *
 * Creates `DATA/kvmock.mdb` (LMDB, no sub-directory) and the sealing root key
 * `DATA/root.key` (mode 0600) when they do not exist.
 * @param[out] out the environment; release with ks_close().
 * @return KV_OK, KV_ERR_STORE (with a log line naming the cause) or KV_ERR_NOMEM.
 */
enum kv_status ks_open(const struct ks_open_opts *opts, struct ks_env **out) KV_MUST_CHECK;

/** @brief Close the store and wipe the root key. NULL is a no-op. */
void ks_close(struct ks_env *env);

/* ---- records of other layers: access policies, role assignments, audit ------------ */

/** Tables the keystore stores for the policy and server layers, which own
 *  their meaning; the keystore only keeps them durable and transactional. One rule
 *  ties a table to vaults: a key of KS_TABLE_POLICIES begins with its vault's
 *  lowercase name and a NUL, and such records go with the vault whenever a deleted
 *  vault is purged (by a caller, by the sweep, or found past its date on access). */
enum ks_table {
    KS_TABLE_POLICIES = 0,
    KS_TABLE_ROLES,
    KS_TABLE_AUDIT,
    KS_TABLE_BACKUPS, /**< Managed HSM full backups, by storage folder (server/hsm_backup.c) */
    KS_TABLE_JOBS,    /**< Managed HSM backup and restore jobs, by job id */
    KS_TABLE_COUNT
};

/** @brief Store @p val under @p key (replacing). @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_STORE. */
enum kv_status ks_record_put(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, const void *val, size_t val_len) KV_MUST_CHECK;

/** @brief Store @p val under @p key only when no record has that key: the check and the
 * write are one transaction. @return KV_OK, KV_ERR_KEY_EXISTS (nothing written),
 * KV_ERR_BAD_PARAM, KV_ERR_STORE, KV_ERR_STORE_FULL. */
enum kv_status ks_record_add(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, const void *val, size_t val_len) KV_MUST_CHECK;

/** @brief The record of exactly @p key. @param[out] out a copy (kv_buf_free()).
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_BAD_PARAM, KV_ERR_STORE, KV_ERR_NOMEM. */
enum kv_status ks_record_get(struct ks_env *env, enum ks_table table, const void *key,
                             size_t key_len, struct kv_buf *out) KV_MUST_CHECK;

/**
 * One change to a table of another layer. Several go into one transaction, all or
 * none: with ks_record_apply(), or with a vault's own write by ks_vault_put_with().
 */
struct ks_record_op {
    enum ks_table table;
    const void *key; /**< the record's key; for a delete, the prefix of the keys to delete */
    size_t key_len;  /**< 1 to 511 */
    const void *val; /**< the value to store (replacing), or NULL to delete */
    size_t val_len;
};

/**
 * @brief Apply @p ops in order in one transaction: every change or none.
 * @return KV_OK, KV_ERR_BAD_PARAM (an op is malformed: nothing is written), KV_ERR_STORE,
 *   KV_ERR_STORE_FULL.
 */
enum kv_status ks_record_apply(struct ks_env *env, const struct ks_record_op *ops,
                               size_t n) KV_MUST_CHECK;

/**
 * @brief ks_record_apply(), only while vault @p vault exists (not deleted) and is a
 * Managed HSM exactly when @p hsm is set, or, when @p vault is NULL or "", resource group
 * @p group (NULL or "": no condition). The check and the changes are one transaction: a
 * deletion of the vault or group comes wholly before or wholly after them.
 * @return as ks_record_apply(), and KV_ERR_VAULT_NOT_FOUND (none, or of the other kind) or
 *   KV_ERR_ARM_NO_GROUP.
 */
enum kv_status ks_record_apply_at(struct ks_env *env, const char *vault, int hsm, const char *group,
                                  const struct ks_record_op *ops, size_t n) KV_MUST_CHECK;

/** Called for each record of a scan; anything but KV_OK stops the scan and is returned. */
typedef enum kv_status (*ks_record_fn)(const void *key, size_t key_len, const void *val,
                                       size_t val_len, void *arg);

/**
 * @brief Visit, in key order inside one read transaction, the records whose key
 * starts with @p prefix, from the first key >= @p from (NULL: the prefix).
 * The pointers passed to @p fn are valid only during the call.
 */
enum kv_status ks_record_scan(struct ks_env *env, enum ks_table table, const void *prefix,
                              size_t prefix_len, const void *from, size_t from_len,
                              ks_record_fn fn, void *arg) KV_MUST_CHECK;

/**
 * @brief Append a record under the next sequence number (8 bytes, big-endian,
 * starting at 1), so that keys order as appended.
 * @param[out] seq the number used (may be NULL).
 */
enum kv_status ks_record_append(struct ks_env *env, enum ks_table table, const void *val,
                                size_t val_len, uint64_t *seq) KV_MUST_CHECK;

/**
 * @brief Append @p n records in one transaction, under consecutive sequence
 * numbers, then, when @p keep is not 0, delete the oldest records so that at most
 * @p keep remain (a bounded log).
 * @param[out] first_seq the number of the first record appended (may be NULL).
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_STORE.
 */
enum kv_status ks_record_append_many(struct ks_env *env, enum ks_table table,
                                     const void *const *vals, const size_t *lens, size_t n,
                                     size_t keep, uint64_t *first_seq) KV_MUST_CHECK;

/**
 * A record that goes into the same transaction as a state change: attached to
 * the calling thread with ks_txn_attach(), it is built and appended inside the
 * next write transaction of that thread that succeeds, so the change and its
 * record commit together (one commit, one disk sync) or not at all.
 */
struct ks_attach {
    enum ks_table table;
    size_t keep; /**< the table's cap, as for ks_record_append_many() (0: none) */
    /** The record, malloc()ed (freed by the keystore), or NULL for none. It is
     * called inside the transaction, possibly on another thread while the
     * attaching thread waits for the commit. */
    char *(*build)(void *arg, size_t *len);
    void *arg;
    int written; /**< set once the record was committed with a write */
};

/**
 * @brief Attach @p a to the calling thread's next successful write (NULL
 * detaches). The caller keeps @p a alive until it detaches.
 */
void ks_txn_attach(struct ks_attach *a);

/* ---- tags (of a key version, and of a vault) -------------------------------- */

struct ks_tags {
    size_t count;
    char **names;  /**< owned */
    char **values; /**< owned */
};

/** @brief Free the tag strings and reset to empty. */
void ks_tags_clear(struct ks_tags *tags);

/* ---- a vault's network rules (its firewall) ------------------------------------ */

#define KS_IP_RULES_MAX   1000 /**< Key Vault's limit of IP rules a vault */
#define KS_VNET_RULES_MAX 200  /**< and of virtual network rules */
#define KS_VNET_ID_MAX    1024 /**< a subnet's resource id */

struct ks_vnet_rule {
    char *id;           /**< the subnet's resource id, owned */
    int ignore_missing; /**< ignoreMissingVnetServiceEndpoint */
};

/** The rule lists of a vault's networkAcls. */
struct ks_net_rules {
    size_t ip_count;
    char **ip; /**< CIDR ranges in their canonical text (kv_cidr_format), owned */
    size_t vnet_count;
    struct ks_vnet_rule *vnet; /**< owned */
};

/** @brief Free the rules and reset to none. */
void ks_net_rules_clear(struct ks_net_rules *rules);

struct cJSON;
struct ks_vault;

/**
 * @brief A vault's networkAcls in Resource Manager's shape, which is also the shape its
 * record keeps: `{"bypass", "defaultAction", "ipRules": [{"value"}],
 * "virtualNetworkRules": [{"id", "ignoreMissingVnetServiceEndpoint"}]}`, from @p v's
 * flags and the lists @p rules (NULL: none).
 * @return a new cJSON object, or NULL when out of memory.
 */
struct cJSON *ks_net_acls_json(const struct ks_vault *v, const struct ks_net_rules *rules);

/* ---- vaults ----------------------------------------------------------------- */

#define KS_LOCATION_MAX 64 /**< an Azure region's name, e.g. "westeurope" */
#define KS_GROUP_MAX    90 /**< a resource group's name */

#define KS_BY_MAX 64 /**< a caller's client id, as a vault's systemData names it */

/** A change to a vault through Resource Manager, for its answer's systemData. */
struct ks_vault_change {
    int64_t at;             /**< kvmock's clock, Unix seconds; 0 when not known */
    char by[KS_BY_MAX + 1]; /**< the caller's client id; "" when not known */
    char by_type[16];       /**< "Application" or "ManagedIdentity"; "" when not known */
};

struct ks_vault {
    char name[KS_VAULT_NAME_MAX + 1]; /**< lowercase */
    char tenant_id[KS_TENANT_MAX + 1];
    char location[KS_LOCATION_MAX + 1]; /**< as created through ARM; "" when none was given */
    /** The resource group it was created in through ARM, as named then; "" for a vault of
     * the configuration file, which belongs to none. A write with "" keeps the stored one. */
    char group[KS_GROUP_MAX + 1];
    int soft_delete;      /**< enableSoftDelete */
    int retention_days;   /**< softDeleteRetentionInDays, 7..90 */
    int purge_protection; /**< enablePurgeProtection */
    int rbac;             /**< enableRbacAuthorization */
    /** A Managed HSM (answering at NAME.managedhsm.*), not a vault: its keys are reached
     * through its local role assignments alone. One name is a vault's or an HSM's, never
     * both: a write of the other kind over it is KV_ERR_ARM_VAULT_EXISTS. */
    int hsm;
    /** A Managed HSM's setting AllowKeyManagementOperationsThroughARM: Resource Manager may
     * manage its keys. Out only: writes keep the stored one; ks_hsm_set_arm_key_ops()
     * changes it. */
    int arm_key_ops;
    /** A Managed HSM's sku name (Standard_B1, Custom_B32, ...); "" is Standard_B1. Kept as
     * written; a vault's is "". */
    char hsm_sku[KS_HSM_SKU_MAX + 1];
    /** In, for ks_vault_put() and ks_vault_create(): the tags to store, which replace
     * the stored ones; NULL keeps them (a new vault has none). Borrowed. Reads leave it
     * NULL: ks_vault_tags() reads a vault's tags. */
    const struct ks_tags *tags;
    int premium;                 /**< sku "premium" (else "standard") */
    int for_deployment;          /**< enabledForDeployment */
    int for_disk_encryption;     /**< enabledForDiskEncryption */
    int for_template_deployment; /**< enabledForTemplateDeployment */
    int public_network_disabled; /**< publicNetworkAccess "Disabled" */
    /** networkAcls was given; without it the vault has no network rules, and the three
     * below are 0 */
    int net_acls;
    int net_deny;        /**< networkAcls.defaultAction "Deny" (else "Allow") */
    int net_bypass_none; /**< networkAcls.bypass "None" (else "AzureServices") */
    /** In, as @ref tags: the rule lists to store with networkAcls; NULL keeps the stored
     * ones (none without networkAcls). Reads leave it NULL: ks_vault_net_rules() reads
     * them, which only a vault with @ref net_deny needs on a request. */
    const struct ks_net_rules *net_rules;
    /** Who made the vault, and who changed it last (Resource Manager's systemData). In,
     * for writes: @ref modified is this write's change (the first write's is also
     * @ref created, which writes never change); with at 0 the stored ones stay, and a new
     * vault gets the time alone, as one made by kvmock itself (the configuration file). */
    struct ks_vault_change created, modified;
};

/**
 * @brief Copy the properties kvmock keeps for Resource Manager (the sku, the enabledFor*
 * switches, publicNetworkAccess and networkAcls' flags) from @p from to @p to, and set
 * to->net_rules to NULL, so that ks_vault_put() keeps the stored rule lists as well.
 */
void ks_vault_copy_arm_props(struct ks_vault *to, const struct ks_vault *from);

/**
 * @brief Create or replace a vault's properties.
 * @return KV_OK, KV_ERR_BAD_PARAM (bad name or retention, purge protection without
 *   soft delete), KV_ERR_PURGE_PROTECTED (turning purge protection off), KV_ERR_STORE.
 */
enum kv_status ks_vault_put(struct ks_env *env, const struct ks_vault *vault) KV_MUST_CHECK;

/**
 * @brief Read a vault's properties.
 * @param[in] name vault name (matched case-insensitively).
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE.
 */
enum kv_status ks_vault_get(struct ks_env *env, const char *name,
                            struct ks_vault *out) KV_MUST_CHECK;

/**
 * @brief Set Managed HSM @p name's AllowKeyManagementOperationsThroughARM to @p allow,
 * changing nothing else.
 * @param[out] out (may be NULL) the HSM as stored after.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND (none, or a vault), KV_ERR_STORE, KV_ERR_STORE_FULL.
 */
enum kv_status ks_hsm_set_arm_key_ops(struct ks_env *env, const char *name, int allow,
                                      struct ks_vault *out) KV_MUST_CHECK;

/**
 * @brief Read the tags of a vault, or (@p deleted) of a deleted vault as it was deleted.
 * @param[out] out the tags, owned by the caller (ks_tags_clear()); empty when it has none.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_vault_tags(struct ks_env *env, const char *name, int deleted,
                             struct ks_tags *out) KV_MUST_CHECK;

/**
 * @brief Read the rule lists of a vault's networkAcls.
 * @param[out] out the rules, owned by the caller (ks_net_rules_clear()); empty when it
 *   has none.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_vault_net_rules(struct ks_env *env, const char *name,
                                  struct ks_net_rules *out) KV_MUST_CHECK;

/**
 * @brief Delete a vault with every key and version in it, in one transaction.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE.
 */
enum kv_status ks_vault_delete(struct ks_env *env, const char *name) KV_MUST_CHECK;

/**
 * @brief List vault names (at most @p cap, in name order).
 * @return how many vaults there are (may exceed @p cap).
 */
size_t ks_vault_list(struct ks_env *env, char (*names)[KS_VAULT_NAME_MAX + 1], size_t cap);

/**
 * @brief ks_vault_list() from the first name after @p after (NULL or "": from the start;
 * matched case-insensitively; one longer than a vault name lists nothing).
 * @return how many vaults there are from there (may exceed @p cap).
 */
size_t ks_vault_list_from(struct ks_env *env, const char *after,
                          char (*names)[KS_VAULT_NAME_MAX + 1], size_t cap);

/**
 * @brief Count a vault's keys: live ones and soft-deleted ones (scans the vault's heads).
 * @return KV_OK, KV_ERR_STORE.
 */
enum kv_status ks_vault_key_count(struct ks_env *env, const char *name, size_t *live,
                                  size_t *deleted) KV_MUST_CHECK;

/** @brief The LMDB map: bytes in use (pages used x page size) and its current size. */
void ks_map_usage(struct ks_env *env, size_t *used, size_t *size);

/** @brief Commits that failed since the store opened: because the data folder could not
 * grow (@p full: a full file system, a quota, a file size limit), and for other causes. */
void ks_commit_failures(struct ks_env *env, unsigned long long *full, unsigned long long *other);

/** @brief Where @p v is: its location, or "local" for a vault made without one. */
const char *ks_vault_location(const struct ks_vault *v);

/**
 * @brief The recovery level a vault gives its keys ("Recoverable+Purgeable", ...)
 * and the recoverable days (0 without soft delete). Static string.
 */
const char *ks_vault_recovery_level(const struct ks_vault *vault, int *recoverable_days);

/* ---- deleted vaults: soft delete, recover, purge of whole vaults (vaults.c) ---- */

#define KS_RESOURCE_ID_MAX 511 /**< longest resource id kept with a deleted vault */

/** A vault in the deleted state. Its keys are kept, unreachable, until it is
 *  recovered or purged. */
struct ks_deleted_vault {
    struct ks_vault vault;                    /**< the properties it had when deleted */
    char resource_id[KS_RESOURCE_ID_MAX + 1]; /**< the caller's label, e.g. the ARM id */
    int64_t deleted_date;                     /**< kvmock's clock at deletion */
    int64_t scheduled_purge;                  /**< deleted_date + retention days */
};

/**
 * @brief Create a vault, unless a live or a deleted vault holds the name. A deleted
 * vault whose scheduled purge date has passed is purged first and does not hold it.
 * Otherwise as ks_vault_put() (which updates live vaults). The check and the write
 * are one transaction: of two creates of one name, one gets KV_ERR_ARM_VAULT_EXISTS.
 * @return KV_OK, KV_ERR_ARM_VAULT_EXISTS (a live vault has the name),
 *   KV_ERR_VAULT_DELETED (a deleted vault holds it), and the errors of ks_vault_put().
 */
enum kv_status ks_vault_create(struct ks_env *env, const struct ks_vault *vault) KV_MUST_CHECK;

/** How ks_vault_put_with() writes a vault. */
enum ks_vault_write {
    KS_VAULT_UPDATE = -1, /**< the live vault only: KV_ERR_VAULT_NOT_FOUND when it is not */
    KS_VAULT_PUT = 0,     /**< create or replace, as ks_vault_put() */
    KS_VAULT_CREATE = 1,  /**< a new vault only, as ks_vault_create() */
};

/**
 * @brief ks_vault_create() (@p create KS_VAULT_CREATE), ks_vault_put() (KS_VAULT_PUT:
 * create or replace) or an update (KS_VAULT_UPDATE: ks_vault_put() of the live vault), and
 * @p ops, in one transaction: the vault is written only if every op succeeds, and the ops
 * only if the vault is. Another layer's records that belong with the vault (its access
 * policies and role assignments) so never exist without it, nor it without them. An
 * update checks that the vault is live in that transaction: one deleted (soft or not)
 * since the caller read it, or never made, is refused and nothing is written.
 * @return as ks_vault_create() or ks_vault_put(), and as ks_record_apply(); an update,
 *   KV_ERR_VAULT_NOT_FOUND when the vault is not live.
 */
enum kv_status ks_vault_put_with(struct ks_env *env, const struct ks_vault *vault, int create,
                                 const struct ks_record_op *ops, size_t n) KV_MUST_CHECK;

/**
 * @brief ks_vault_put_with() of a new vault (KS_VAULT_CREATE), whose resource group (its
 * `group`, in its location) is made in the same transaction unless a group of that name
 * exists: a create that is refused leaves no group behind, and a vault is never written
 * without its group. The vault is written with the group's name as the group has it (names
 * match in any case).
 * @param[out] group the group as stored, on KV_OK.
 * @param[out] created on KV_OK, 1 when this call made the group (may be NULL).
 * @return as ks_vault_put_with(); KV_ERR_BAD_PARAM also for a bad group name.
 */
struct ks_group;
enum kv_status ks_vault_create_in_group(struct ks_env *env, const struct ks_vault *vault,
                                        const struct ks_record_op *ops, size_t n,
                                        struct ks_group *group, int *created) KV_MUST_CHECK;

/**
 * @brief Delete a vault as Azure does. With soft delete on, the vault moves to
 * the deleted state in one transaction: its host stops answering (ks_vault_get()
 * gives KV_ERR_VAULT_NOT_FOUND), its keys are kept, and it is scheduled for purge
 * at ks_now() + retention days. With soft delete off it is removed at once with
 * every key (as ks_vault_delete()).
 * @param[in] resource_id kept with the deleted vault (NULL: ""); at most
 *   KS_RESOURCE_ID_MAX characters.
 * @param[out] out the deleted vault (may be NULL); deleted_date and scheduled_purge
 *   are 0 when it was removed at once.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_BAD_PARAM (resource id too long),
 *   KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_vault_soft_delete(struct ks_env *env, const char *name,
                                    const char *resource_id,
                                    struct ks_deleted_vault *out) KV_MUST_CHECK;

/**
 * @brief ks_vault_soft_delete(), and in the same transaction @p ops, then, when the
 * vault is removed at once (no soft delete), @p ops_removed: another layer's records
 * that go with the vault (the role assignments at its scope; its access policies,
 * which a soft-deleted vault keeps for its recovery).
 * @return as ks_vault_soft_delete(), and as ks_record_apply().
 */
enum kv_status ks_vault_delete_with(struct ks_env *env, const char *name, const char *resource_id,
                                    const struct ks_record_op *ops, size_t n,
                                    const struct ks_record_op *ops_removed, size_t n_removed,
                                    struct ks_deleted_vault *out) KV_MUST_CHECK;

/**
 * @brief Read a deleted vault. One whose scheduled purge date has passed is
 * purged now and is not found.
 * @param[in] name matched case-insensitively.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND (no such deleted vault), KV_ERR_STORE.
 */
enum kv_status ks_deleted_vault_get(struct ks_env *env, const char *name,
                                    struct ks_deleted_vault *out) KV_MUST_CHECK;

/**
 * @brief List deleted vaults (@p hsm 0) or Managed HSMs (1) in name order, one page,
 * skipping those past their scheduled purge date.
 * @param[in] after NULL or "" for the first page, else the @p next of the previous page.
 * @param[in] max page size, 1..KS_PAGE_MAX.
 * @param[out] out at least @p max entries; @p count of them are set.
 * @param[out] next the name to pass as @p after for the next page; "" on the last page.
 * @return KV_OK, KV_ERR_BAD_SKIPTOKEN, KV_ERR_BAD_MAXRESULTS, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_deleted_vault_list(struct ks_env *env, int hsm, const char *after, int max,
                                     struct ks_deleted_vault *out, size_t *count,
                                     char next[KS_VAULT_NAME_MAX + 1]) KV_MUST_CHECK;

/**
 * @brief Recover a deleted vault (@p hsm 0) or Managed HSM (1) with its keys, as it was
 * when deleted, and in the same transaction its resource group, if that went meanwhile
 * (ks_group_ensure(): in the vault's location).
 * @param[out] out the recovered vault's properties.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND (no such deleted vault of that kind), KV_ERR_ARM_CONFLICT
 *   (a live vault holds the name), KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_deleted_vault_recover(struct ks_env *env, const char *name, int hsm,
                                        struct ks_vault *out) KV_MUST_CHECK;

/**
 * @brief Purge a deleted vault (@p hsm 0) or Managed HSM (1) and every key in it, for good,
 * and in the same transaction
 * @p ops (NULL: none), the other layers' records of the vault, unless a live vault of the
 * name holds them now (then only the deleted vault's record goes).
 * @param[out] applied (may be NULL) whether @p ops were applied.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND (no such deleted vault of that kind),
 *   KV_ERR_PURGE_PROTECTED (purge protection is on and the scheduled purge date has not
 *   come; nothing removed), KV_ERR_STORE, and as ks_record_apply().
 */
enum kv_status ks_deleted_vault_purge(struct ks_env *env, const char *name, int hsm,
                                      const struct ks_record_op *ops, size_t n,
                                      int *applied) KV_MUST_CHECK;

/**
 * @brief Apply @p ops (as ks_record_apply()) only when no vault or Managed HSM, live or
 * deleted, has the name @p name; the check and the changes are one transaction. For the
 * other layers' records of a vault gone for good without them: one purged by the sweep, or
 * found past its purge date on a read (those purges take only its keys and access policies).
 * @param[out] applied whether @p ops were applied (0: the name is held).
 * @return KV_OK, KV_ERR_BAD_PARAM (not a vault's name), and as ks_record_apply().
 */
enum kv_status ks_record_apply_gone(struct ks_env *env, const char *name,
                                    const struct ks_record_op *ops, size_t n,
                                    int *applied) KV_MUST_CHECK;

/* ---- resource groups -------------------------------------------------------- */

/** A resource group: the management plane's container of vaults. */
struct ks_group {
    char name[KS_GROUP_MAX + 1];        /**< as created; matched case-insensitively */
    char location[KS_LOCATION_MAX + 1]; /**< where it was created */
    const struct ks_tags *tags; /**< in, for ks_group_put(): replaces the stored tags; NULL
                                     keeps them. Reads leave it NULL. */
};

/** @brief Whether @p name is a resource group's name: 1..90 letters, digits, '_', '-', '.',
 * '(' and ')' (any UTF-8 letter counts as a letter), not ending in '.'. */
int ks_group_name_valid(const char *name);

/**
 * @brief Create a resource group, or update an existing one's tags.
 * @param[out] created 1 when the group is new (may be NULL).
 * @return KV_OK, KV_ERR_BAD_PARAM (bad name or location), KV_ERR_ARM_GROUP_LOCATION (it
 *   exists in another location; nothing changed), KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_group_put(struct ks_env *env, const struct ks_group *group,
                            int *created) KV_MUST_CHECK;

/**
 * @brief Create resource group @p group unless a group of its name exists, in one write
 * transaction: of concurrent calls for one name, one creates it and the others find it.
 * @param[out] out the group as stored (its name as created, its location).
 * @param[out] created 1 when this call made it (may be NULL).
 * @return KV_OK, KV_ERR_BAD_PARAM (bad name or location), KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_group_ensure(struct ks_env *env, const struct ks_group *group,
                               struct ks_group *out, int *created) KV_MUST_CHECK;

/**
 * @brief Read a resource group, and (@p tags not NULL) its tags, owned by the caller.
 * @return KV_OK, KV_ERR_ARM_NO_GROUP, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_group_get(struct ks_env *env, const char *name, struct ks_group *out,
                            struct ks_tags *tags) KV_MUST_CHECK;

/**
 * @brief List resource groups in name order (lowercase), at most @p cap of them.
 * @return how many there are (may exceed @p cap).
 */
size_t ks_group_list(struct ks_env *env, char (*names)[KS_GROUP_MAX + 1], size_t cap);

/**
 * @brief Remove a resource group's record. Its vaults are the caller's to delete first.
 * @return KV_OK, KV_ERR_ARM_NO_GROUP, KV_ERR_STORE.
 */
enum kv_status ks_group_delete(struct ks_env *env, const char *name) KV_MUST_CHECK;

/* ---- keys ------------------------------------------------------------------ */

struct ks_attrs {
    int enabled;
    int64_t nbf; /**< 0 = not set */
    int64_t exp; /**< 0 = not set */
    int64_t created;
    int64_t updated;
    int exportable;
};

/** Public key material of a version (all buffers owned; empty for oct keys). */
struct ks_pub {
    struct kv_buf n, e; /**< RSA modulus and exponent, big-endian, no leading zeros */
    struct kv_buf x, y; /**< EC point, each padded to the field size */
    enum ks_crv crv;
    int size_bits; /**< RSA modulus bits, EC field bits, oct key bits */
};

/** @brief Free the buffers of @p pub. */
void ks_pub_clear(struct ks_pub *pub);

/** A key version's release policy (secure key release). */
struct ks_release_policy {
    int set;            /**< 0: the version has none */
    int immutable;      /**< once set, the policy cannot be replaced */
    char *content_type; /**< owned; "application/json; charset=utf-8" unless given */
    char *data;         /**< owned: the policy document, as the policy layer normalized it */
};

/** The content type of a release policy that names none (Key Vault's default). */
#define KS_RELEASE_POLICY_CONTENT_TYPE "application/json; charset=utf-8"
#define KS_CONTENT_TYPE_MAX            128 /**< bytes of a release policy's content type */

/** @brief Free the strings of @p rp and reset it to none. */
void ks_release_policy_clear(struct ks_release_policy *rp);

/** One key version as callers see it. Never holds private material. */
struct ks_key {
    char name[KS_NAME_MAX + 1]; /**< original casing */
    char version[KS_VERSION_LEN + 1];
    enum ks_kty kty;
    int hsm;
    unsigned ops;       /**< KS_OP_* bits */
    uint32_t ops_order; /**< the order key_ops are shown in (ks_keyops_list()); 0: fixed */
    struct ks_pub pub;
    struct ks_attrs attrs;
    struct ks_tags tags;
    struct ks_release_policy release_policy; /**< exportable keys only */
    int managed;
    int64_t deleted_date;       /**< 0 while the key is live */
    int64_t scheduled_purge;    /**< 0 while the key is live */
    const char *recovery_level; /**< static, from the vault */
    int recoverable_days;
};

/** @brief Free a key and everything it owns. NULL is a no-op. */
void ks_key_free(struct ks_key *key);

/** Parameters of a create. Zero means "default" for every numeric field. */
struct ks_create {
    enum ks_kty kty;
    int hsm;
    int size_bits;          /**< RSA: 2048/3072/4096 (default 2048); oct: 128/192/256 (256) */
    unsigned long exponent; /**< RSA public exponent: 3 or 65537 (default 65537) */
    enum ks_crv crv;        /**< EC: default P-256 */
    unsigned ops;           /**< KS_OP_* bits; used only when ops_set */
    int ops_set;            /**< 0 = the kty's default key_ops */
    uint32_t ops_order;     /**< the client's order of ops (ks_keyops_add()); 0: fixed */
    struct ks_attrs attrs;  /**< enabled, nbf, exp, exportable; created/updated ignored */
    struct ks_tags tags;    /**< borrowed: copied into the record */
    /** borrowed; NULL or not set for none. An exportable key must have one, and only an
     *  exportable key may: see ks_key_create() */
    const struct ks_release_policy *release_policy;
    int new_only; /**< create the key only if it has no live version: KV_ERR_KEY_EXISTS
                       otherwise, decided in the transaction that would write */
};

/**
 * @brief Create a key, or a new version of an existing one, in one transaction.
 * A hardware key (`hsm`) is made only in a premium vault, as in Key Vault.
 * An exportable key (secure key release) must be of a hardware type (`hsm`), carry a
 * release policy and live in a premium vault; a key that is not exportable carries none.
 * A new version of an exportable key given no policy takes its current version's.
 * @param[out] out the new version; release with ks_key_free().
 * @return KV_OK; KV_ERR_VAULT_NOT_FOUND; KV_ERR_BAD_KEY_NAME, KV_ERR_BAD_KEY_SIZE,
 *   KV_ERR_BAD_CURVE, KV_ERR_BAD_EXPONENT, KV_ERR_BAD_KTY;
 *   KV_ERR_SKR_NOT_HSM, KV_ERR_SKR_NO_POLICY, KV_ERR_SKR_POLICY_NOT_EXPORTABLE,
 *   KV_ERR_SKR_PREMIUM (the vault's sku is standard);
 *   KV_ERR_HSM_STANDARD (a hardware key, the vault's sku standard; checked after the
 *   KV_ERR_SKR_ statuses);
 *   KV_ERR_KEY_DELETED_RECOVERABLE when the name is soft-deleted;
 *   KV_ERR_KEY_EXISTS with new_only when the key exists;
 *   KV_ERR_STORE, KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_key_create(struct ks_env *env, const char *vault, const char *name,
                             const struct ks_create *params, struct ks_key **out) KV_MUST_CHECK;

/**
 * @brief Read one version of a live key.
 * @param[in] version NULL or "" for the current version.
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_get(struct ks_env *env, const char *vault, const char *name,
                          const char *version, struct ks_key **out) KV_MUST_CHECK;

/** One page of a list. */
struct ks_key_page {
    size_t count;
    struct ks_key **items;               /**< owned */
    char next[KS_SKIPTOKEN_MAX];          /**< skip token of the next page; "" on the last page */
};

/** @brief Free a page and its items. NULL is a no-op. */
void ks_key_page_free(struct ks_key_page *page);

/**
 * @brief List the live keys of a vault (their current versions), ordered by name.
 * @param[in] skiptoken NULL or "" for the first page, else a `next` from a previous page.
 * @param[in] max page size, 1..KS_PAGE_MAX.
 * A page starts at the token's position: listing never scans from the start.
 * @return KV_OK, KV_ERR_BAD_SKIPTOKEN, KV_ERR_BAD_MAXRESULTS, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_list(struct ks_env *env, const char *vault, const char *skiptoken,
                           int max, struct ks_key_page **out) KV_MUST_CHECK;

/**
 * @brief List every version of a live key, in creation order.
 * @return as ks_key_list(), plus KV_ERR_KEY_NOT_FOUND.
 */
enum kv_status ks_key_list_versions(struct ks_env *env, const char *vault, const char *name,
                                    const char *skiptoken, int max,
                                    struct ks_key_page **out) KV_MUST_CHECK;

/** Input of a key operation. Buffers are borrowed. */
struct ks_op_params {
    enum ks_alg alg;
    struct kv_buf value;  /**< plaintext, ciphertext, key to wrap, digest to sign, or signature */
    struct kv_buf iv;     /**< AES-CBC/GCM: may be empty */
    struct kv_buf aad;    /**< AES-GCM: may be empty */
    struct kv_buf tag;    /**< AES-GCM decrypt */
    struct kv_buf digest; /**< verify: the digest that was signed */
};

/** Output of a key operation. Buffers are owned by the caller. */
struct ks_op_result {
    struct kv_buf value; /**< ciphertext, plaintext, wrapped or unwrapped key, signature */
    struct kv_buf iv;    /**< AES-CBC/GCM encrypt: the IV used */
    struct kv_buf tag;   /**< AES-GCM encrypt: the tag */
    int verified;        /**< verify: 1 when the signature is valid */
    char version[KS_VERSION_LEN + 1]; /**< the version that did the operation */
    char name[KS_NAME_MAX + 1];       /**< the key's name as stored (original casing) */
};

/** @brief Wipe and free the buffers of @p res. */
void ks_op_result_clear(struct ks_op_result *res);

/**
 * @brief Run a key operation on a version of a live key.
 * @param[in] op one of KS_OP_ENCRYPT, _DECRYPT, _SIGN, _VERIFY, _WRAP, _UNWRAP.
 * @param[in] version NULL or "" for the current version.
 * @return KV_OK; KV_ERR_KEY_NOT_FOUND; KV_ERR_KEY_OP_FORBIDDEN (op not in key_ops);
 *   KV_ERR_KEY_DISABLED; KV_ERR_KEY_NOT_YET_VALID, KV_ERR_KEY_EXPIRED (encrypt, wrap and
 *   sign only: decrypt, unwrap and verify work outside the version's nbf/exp window);
 *   KV_ERR_BAD_ALG, KV_ERR_BAD_INPUT_LENGTH, KV_ERR_CRYPTO_FAILED; KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_op(struct ks_env *env, const char *vault, const char *name,
                         const char *version, unsigned op, const struct ks_op_params *params,
                         struct ks_op_result *out) KV_MUST_CHECK;

/* ---- the lifecycle: delete, recover, purge, update, import, rotate, backup ---- */

/**
 * @brief Delete a key: every version moves to the deleted state in one
 * transaction. With the vault's soft delete off, the key is purged at once.
 * @param[out] out the current version as it was deleted: deleted_date and
 *   scheduled_purge are set when it was soft-deleted, and both 0 when it was purged.
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND, KV_ERR_KEY_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_delete(struct ks_env *env, const char *vault, const char *name,
                             struct ks_key **out) KV_MUST_CHECK;

/**
 * @brief Read a soft-deleted key's current version (deleted_date and scheduled_purge set).
 * A key whose scheduled purge date has passed is gone.
 * @return KV_OK, KV_ERR_DELETED_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_deleted_get(struct ks_env *env, const char *vault, const char *name,
                              struct ks_key **out) KV_MUST_CHECK;

/** @brief List soft-deleted keys, paged like ks_key_list(). */
enum kv_status ks_deleted_list(struct ks_env *env, const char *vault, const char *skiptoken,
                               int max, struct ks_key_page **out) KV_MUST_CHECK;

/**
 * @brief Recover a soft-deleted key with all its versions, unchanged.
 * @param[out] out the current version.
 * @return KV_OK, KV_ERR_DELETED_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_deleted_recover(struct ks_env *env, const char *vault, const char *name,
                                  struct ks_key **out) KV_MUST_CHECK;

/**
 * @brief Purge a soft-deleted key: every version is removed for good.
 * @return KV_OK, KV_ERR_DELETED_KEY_NOT_FOUND, KV_ERR_PURGE_PROTECTED (nothing removed),
 *   KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE.
 */
enum kv_status ks_deleted_purge(struct ks_env *env, const char *vault,
                                const char *name) KV_MUST_CHECK;

/** Changes to one version; only the fields marked set change. */
struct ks_update {
    int enabled_set, enabled;
    int nbf_set;
    int64_t nbf; /**< 0 clears */
    int exp_set;
    int64_t exp; /**< 0 clears */
    int ops_set;
    unsigned ops;
    uint32_t ops_order; /**< with ops: their order (ks_keyops_add()); 0: the fixed order */
    int tags_set;
    struct ks_tags tags; /**< borrowed; replaces the old tags wholesale */
    int exportable_set, exportable; /**< may only repeat the version's own */
    /** borrowed; NULL keeps the version's policy. Only an exportable version has one, and
     *  an immutable one is never replaced. */
    const struct ks_release_policy *release_policy;
};

/**
 * @brief Update the attributes, key_ops or tags of one version and bump `updated`. New
 * key_ops replace the old with their order (ops_order).
 * @param[in] version NULL or "" for the current version.
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_SKR_EXPORTABLE_CHANGE,
 *   KV_ERR_SKR_POLICY_NOT_EXPORTABLE, KV_ERR_SKR_IMMUTABLE (nothing changed),
 *   KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_update(struct ks_env *env, const char *vault, const char *name,
                             const char *version, const struct ks_update *u,
                             struct ks_key **out) KV_MUST_CHECK;

/** A private JWK as raw big-endian bytes (import). Buffers are borrowed. */
struct ks_jwk {
    enum ks_kty kty;
    enum ks_crv crv;
    struct kv_buf n, e, d, p, q, dp, dq, qi; /**< RSA */
    struct kv_buf x, y;                      /**< EC public point (d shared with RSA's d) */
    struct kv_buf k;                         /**< oct */
};

/** @brief Wipe and free a JWK's parts, when its holder allocated them (all of them may be
 *  empty); kty and crv stay. */
void ks_jwk_wipe(struct ks_jwk *j);

/** How a released key is wrapped for its target (KeyReleaseParameters' `enc`), and how a
 *  key transfer blob of bring your own key (BYOK) wraps its key: an
 *  ephemeral AES-256 key under RSA-OAEP with this hash (MGF1 the same), then the key
 *  (PKCS#8 for RSA and EC, the raw bytes for oct) under AES key wrap with padding. */
enum ks_release_enc {
    KS_RELEASE_CKM_RSA_AES_KEY_WRAP = 0, /**< SHA-1; the service's default */
    KS_RELEASE_RSA_AES_KEY_WRAP_256,     /**< SHA-256 */
    KS_RELEASE_RSA_AES_KEY_WRAP_384,     /**< SHA-384 */
};

/** Bring your own key: an imported key that arrives wrapped for a key exchange key (KEK)
 *  of the vault, in a key transfer blob (JsonWebKey's `key_hsm`), as @p enc says. */
struct ks_byok {
    char kek_name[KS_NAME_MAX + 1];
    char kek_version[KS_VERSION_LEN + 1]; /**< "" = the KEK's current version */
    enum ks_release_enc enc;
    struct kv_buf ciphertext; /**< borrowed: the wrapped AES key, then the wrapped key */
};

struct ks_import {
    struct ks_jwk jwk;          /**< with byok: only kty and, if given, crv */
    const struct ks_byok *byok; /**< NULL: the key is jwk's parts */
    int hsm;
    unsigned ops; /**< used only when ops_set */
    int ops_set;
    uint32_t ops_order;    /**< the client's order of ops (ks_keyops_add()); 0: fixed */
    struct ks_attrs attrs; /**< enabled, nbf, exp, exportable */
    struct ks_tags tags;   /**< borrowed */
    const struct ks_release_policy *release_policy; /**< as for ks_key_create() */
};

/**
 * @brief Import a private key as a new version (a new key when the name is new). An
 * exportable one follows ks_key_create()'s rules. With @p p->byok the key is unwrapped
 * first with the key exchange key it names, which must be a live version of an RSA-HSM key
 * of the same vault, enabled, whose only operation is import (KV_ERR_BYOK_KEK otherwise; an
 * empty kek_name names none); a blob that does not open, or holds another type or curve
 * than jwk's, is KV_ERR_BYOK_BLOB. A hardware key (@p p->hsm) in a standard vault is
 * refused (KV_ERR_HSM_STANDARD) before its key is built or unwrapped.
 * @return KV_OK, KV_ERR_BAD_JWK, KV_ERR_BYOK_KEK, KV_ERR_BYOK_BLOB, the KV_ERR_SKR_ statuses of
 * ks_key_create() and its KV_ERR_HSM_STANDARD, KV_ERR_BAD_KEY_SIZE, KV_ERR_BAD_CURVE,
 * KV_ERR_BAD_KEY_NAME, KV_ERR_KEY_DELETED_RECOVERABLE, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE,
 * KV_ERR_NOMEM.
 */
enum kv_status ks_key_import(struct ks_env *env, const char *vault, const char *name,
                             const struct ks_import *p, struct ks_key **out) KV_MUST_CHECK;

/* ---- secure key release --------------------------------------------------------- */

/** @brief The wire name ("CKM_RSA_AES_KEY_WRAP"). Static string. */
const char *ks_release_enc_name(enum ks_release_enc enc);
/** @brief Parse a wire name (case-sensitive). @return KV_OK or KV_ERR_BAD_PARAM. */
enum kv_status ks_release_enc_parse(const char *name, enum ks_release_enc *out) KV_MUST_CHECK;

/**
 * @brief Release a version of a live key: its private material wrapped for the RSA
 * public key (@p n, @p e; 2048-4096 bits) as @p enc says. The caller has decided that
 * the release policy allows it; @p policy is the policy text it decided on, and the
 * release is refused with KV_ERR_RELEASE_POLICY_CHANGED if the version's policy has changed since.
 * @param[in] version NULL or "" for the current version.
 * @param[out] key the version released (with its policy); release with ks_key_free().
 * @param[out] wrapped the RSA-OAEP block, then the AES-wrapped key; kv_buf_free().
 * @return KV_OK; KV_ERR_KEY_NOT_FOUND; KV_ERR_KEY_NOT_EXPORTABLE; KV_ERR_KEY_DISABLED,
 *   KV_ERR_KEY_NOT_YET_VALID, KV_ERR_KEY_EXPIRED; KV_ERR_RELEASE_POLICY_CHANGED;
 *   KV_ERR_BAD_PARAM (target key); KV_ERR_STORE, KV_ERR_CRYPTO, KV_ERR_NOMEM.
 */
enum kv_status ks_key_release(struct ks_env *env, const char *vault, const char *name,
                              const char *version, const char *policy, enum ks_release_enc enc,
                              const struct kv_buf *n, const struct kv_buf *e, struct ks_key **key,
                              struct kv_buf *wrapped) KV_MUST_CHECK;

/**
 * @brief Rotate: add a version with the current version's type, size or curve,
 * exponent (65537 for an imported key's exponent other than 3 or 65537), key_ops (in their
 * order) and tags (and exportable with its release policy). The rotation policy's expiry applies to
 * it. A hardware or exportable key rotates in a vault whose sku became standard after it was made.
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_CRYPTO,
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_key_rotate(struct ks_env *env, const char *vault, const char *name,
                             struct ks_key **out) KV_MUST_CHECK;

#define KS_DURATION_MAX 32
#define KS_POLICY_ACTIONS_MAX 2

/** One lifetime action of a rotation policy. */
struct ks_lifetime_action {
    int rotate; /**< 1: Rotate, 0: Notify */
    char after_create[KS_DURATION_MAX];  /**< ISO 8601 duration or "" */
    int64_t after_create_s;
    char before_expiry[KS_DURATION_MAX]; /**< ISO 8601 duration or "" */
    int64_t before_expiry_s;
};

/** A key's rotation policy. Durations keep the caller's spelling and their seconds. */
struct ks_rotation_policy {
    int is_set; /**< 0: never set; the service's default policy applies */
    char expiry[KS_DURATION_MAX]; /**< expiryTime, "" = none */
    int64_t expiry_s;
    size_t n_actions;
    struct ks_lifetime_action actions[KS_POLICY_ACTIONS_MAX];
    int64_t created, updated;
};

/**
 * @brief Read a live key's rotation policy (is_set 0 when none was set).
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE.
 */
enum kv_status ks_rotation_policy_get(struct ks_env *env, const char *vault, const char *name,
                                      struct ks_rotation_policy *out) KV_MUST_CHECK;

/**
 * @brief Replace a live key's rotation policy (the caller validated it).
 * @param[out] out the stored policy with created/updated.
 * @return as ks_rotation_policy_get().
 */
enum kv_status ks_rotation_policy_set(struct ks_env *env, const char *vault, const char *name,
                                      const struct ks_rotation_policy *in,
                                      struct ks_rotation_policy *out) KV_MUST_CHECK;

/**
 * @brief Back up a live key with every version as one opaque blob, sealed under
 * the root key: it opens only on this kvmock's data folder.
 * @param[out] out release with kv_buf_free().
 * @return KV_OK, KV_ERR_KEY_NOT_FOUND, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_backup(struct ks_env *env, const char *vault, const char *name,
                             struct kv_buf *out) KV_MUST_CHECK;

/**
 * @brief Restore a backup into @p vault with the same version ids.
 * @param[out] name (may be NULL) the blob's key name once the blob opened, also when the
 *   restore is then refused (a name in use, say); "" before.
 * @param[out] out the current version.
 * @return KV_OK; KV_ERR_BAD_BACKUP (corrupt or from another kvmock); KV_ERR_KEY_EXISTS;
 *   KV_ERR_KEY_DELETED_RECOVERABLE; KV_ERR_HSM_STANDARD (a hardware key into a standard
 *   vault); KV_ERR_BACKUP_KIND (a vault's backup into a Managed HSM, or the reverse);
 *   KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_key_restore(struct ks_env *env, const char *vault, const unsigned char *blob,
                              size_t len, char name[KS_NAME_MAX + 1],
                              struct ks_key **out) KV_MUST_CHECK;

/**
 * @brief A security domain of Managed HSM @p hsm, as Managed HSM's download gives it: a
 * fresh master key split into one Shamir share per certificate (any @p required of them
 * rebuild it), each share encrypted to its certificate's RSA key (JWE, RSA-OAEP-256 and
 * A256CBC-HS512), and the HSM's domain secret (the one uploaded into it, else derived from
 * the root key and the HSM's name) encrypted under a key derived from the master key
 * (secdomain.c).
 * @param certs the customer's certificates, DER (3 to 10, RSA keys of 2048 bits or more).
 * @param[out] out the document's JSON text; release with cJSON_free().
 * @param[out] why for KV_ERR_BAD_PARAM, what is wrong (static).
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_security_domain(struct ks_env *env, const char *hsm,
                                      const struct kv_buf *certs, size_t n, int required,
                                      char **out, const char **why) KV_MUST_CHECK;

/**
 * @brief The transfer key of Managed HSM @p hsm, for a security domain upload: an RSA key of
 * 2048 bits with its self-signed certificate, made at the first call and kept (its private
 * key sealed) until the HSM is purged. Every call gives the same one.
 * @param[out] jwk its public key as a JSON web key's text (kty RSA, alg RSA-OAEP-256, use
 *   enc, n, e, its certificate in x5c and x5t#S256); release with cJSON_free().
 * @return KV_OK, KV_ERR_VAULT_NOT_FOUND (no live Managed HSM of the name), KV_ERR_STORE,
 *   KV_ERR_STORE_FULL, KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_transfer_key(struct ks_env *env, const char *hsm, char **jwk) KV_MUST_CHECK;

/**
 * @brief Upload a security domain into Managed HSM @p hsm: @p blob is a restore blob, as
 * `az keyvault security-domain restore-blob` makes it from a downloaded domain (a fresh
 * master key wrapped for the HSM's transfer key, JWE RSA-OAEP-256 and A256CBC-HS512, and the
 * domain's data encrypted under keys SP 800-108 derives from it). Once it opens, the HSM
 * holds its domain: later downloads (ks_hsm_security_domain()) carry it.
 * @param[out] why for KV_ERR_BAD_PARAM, what is wrong (static): not a restore blob, wrapped
 *   for another transfer key (or none was asked for), does not open, or holds no kvmock
 *   HSM's domain. Nothing changes then.
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_VAULT_NOT_FOUND, KV_ERR_STORE, KV_ERR_STORE_FULL,
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_security_domain_upload(struct ks_env *env, const char *hsm, const char *blob,
                                             size_t len, const char **why) KV_MUST_CHECK;

/** @brief Whether a security domain was uploaded into Managed HSM @p hsm (@p yes).
 *  @return KV_OK, KV_ERR_STORE. */
enum kv_status ks_hsm_security_domain_uploaded(struct ks_env *env, const char *hsm,
                                               int *yes) KV_MUST_CHECK;

/**
 * @brief A Managed HSM's full backup: every live key of @p vault (each with every version, its
 * attributes, tags and rotation policy), read in one transaction, as one blob sealed under the
 * root key (as ks_key_backup's; its own associated data, so neither kind of blob opens as the
 * other). Soft-deleted keys are left out.
 * @param access (may be NULL) another layer's text kept with the keys (the HSM's access
 *   control), which ks_hsm_backup_access() gives back.
 * @param[out] out release with kv_buf_free().
 * @param[out] keys (may be NULL) how many keys it holds.
 * @return KV_OK; KV_ERR_VAULT_NOT_FOUND (no such vault, deleted, or not a Managed HSM);
 *   KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_backup(struct ks_env *env, const char *vault, const char *access,
                             struct kv_buf *out, size_t *keys) KV_MUST_CHECK;

/**
 * @brief The text ks_hsm_backup() kept with a full backup's keys.
 * @param[out] out (release with free()) the text, or NULL when the backup kept none.
 * @return KV_OK; KV_ERR_BAD_BACKUP (corrupt, not a full backup, or from another data folder);
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_backup_access(struct ks_env *env, const unsigned char *blob, size_t len,
                                    char **out) KV_MUST_CHECK;

/**
 * @brief Restore a full backup (ks_hsm_backup) into Managed HSM @p vault, which may be another
 * HSM of this data folder than the one backed up (material is resealed to the new location).
 * @p only NULL: a full restore. In ONE write transaction every key of @p vault (live,
 *   soft-deleted, whatever its purge protection) is removed for good, then every key of the
 *   backup is written back with its version ids, attributes, tags and rotation policy. All or
 *   nothing.
 * @p only a key name: a selective restore of that key alone (name compared ASCII
 *   case-insensitively), with the refusals of ks_key_restore(): KV_ERR_KEY_EXISTS when the
 *   name is live, KV_ERR_KEY_DELETED_RECOVERABLE when it is soft-deleted; KV_ERR_KEY_NOT_FOUND
 *   when the backup holds no such key. Other keys are untouched.
 * @param ops, n_ops another layer's changes (the HSM's access control), written in the same
 *   transaction after the keys: all of it or nothing.
 * @param[out] versions (may be NULL) how many key versions were restored (0 on failure).
 * @return KV_OK; KV_ERR_BAD_BACKUP (corrupt, not a full backup, or from another data folder);
 *   KV_ERR_VAULT_NOT_FOUND (none, deleted, or not a Managed HSM); the refusals above;
 *   KV_ERR_HSM_STANDARD (an HSM whose sku is standard, which kvmock never makes: as
 *   ks_key_restore()); KV_ERR_BAD_PARAM (a malformed op); KV_ERR_STORE, KV_ERR_STORE_FULL,
 *   KV_ERR_NOMEM.
 */
enum kv_status ks_hsm_restore(struct ks_env *env, const char *vault, const unsigned char *blob,
                              size_t len, const char *only, const struct ks_record_op *ops,
                              size_t n_ops, size_t *versions) KV_MUST_CHECK;

/**
 * @brief Apply what kvmock's clock has made due: purge deleted vaults (with their
 * keys) and soft-deleted keys past their scheduled purge date, and rotate keys
 * whose Rotate trigger has passed (not in deleted vaults). A trigger rotates its key once,
 * also when sweeps run at once or a client rotates the key meanwhile. Each purge and
 * rotation is its own transaction: one that fails does not stop the others (it is logged,
 * and the next sweep tries it again).
 * @param[out] purged, rotated counts (may be NULL) of what was done; purged counts vaults
 *   and keys.
 * @return KV_OK or the first failure, after every item was tried.
 */
enum kv_status ks_sweep(struct ks_env *env, size_t *purged, size_t *rotated) KV_MUST_CHECK;

#endif
