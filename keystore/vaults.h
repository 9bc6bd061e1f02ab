/**
 * @file vaults.h
 * @brief Whole-vault internals shared by keys.c and vaults.c (keystore-internal).
 */
#ifndef KS_VAULTS_H
#define KS_VAULTS_H

#include "store.h"

/**
 * Key prefix of deleted-vault records in the `vaults` database. It starts with a
 * NUL, so no vault name (a C string) can ever look one up, and ks_vault_list()
 * skips every key that holds a NUL.
 */
#define KS_DELETED_VAULT_PREFIX     "\0deleted\0"
#define KS_DELETED_VAULT_PREFIX_LEN 9

/**
 * @brief Remove every key record (heads and versions) of the vault @p lname
 * (lowercase) inside @p tx. The vault record itself is left alone.
 * @return KV_OK, KV_ERR_STORE.
 */
enum kv_status ks_vault_keys_purge(struct ks_txn *tx, const char *lname) KV_MUST_CHECK;

/**
 * @brief Remove what secdomain.c keeps of Managed HSM @p lname (lowercase) inside @p tx: its
 * transfer key and its uploaded security domain. They go with the HSM's record, when it is
 * purged or removed at once, never with its keys alone (a full restore keeps them).
 * @return KV_OK, KV_ERR_STORE.
 */
enum kv_status ks_secdomain_purge(struct ks_txn *tx, const char *lname) KV_MUST_CHECK;

/**
 * @brief Purge the deleted vaults whose scheduled purge date has passed, each with
 * its keys, in one transaction per vault. ks_sweep() calls it.
 * @param[out] purged how many were purged (may be NULL).
 * @return KV_OK or the first failure.
 */
enum kv_status ks_vault_sweep(struct ks_env *env, size_t *purged) KV_MUST_CHECK;

#endif
