/**
 * @file config.h
 * @brief Command line, environment and the configuration file.
 *
 * Flags win over environment variables, which win over defaults
 * (docs and ../shared/keyvault/interface.md). The configuration file names
 * follow Azure Resource Manager's Key Vault resource.
 */
#ifndef SRV_CONFIG_H
#define SRV_CONFIG_H

#include <stddef.h>

#include "ks.h"
#include "kv_log.h"
#include "kv_status.h"
#include "pol.h"

#define SRV_MAX_HOSTNAMES 32

#define SRV_THREADS_DEFAULT 256 /**< workers unless --threads says */
#define SRV_AUDIT_MAX_DEFAULT 10000 /**< audit records kept unless --audit-max says */
#define SRV_DEFAULT_TENANT "6b766d6f-636b-4000-8000-000000000001"
#define SRV_DEFAULT_OBJECT_ID "6b766d6f-636b-4000-8000-0000000000a1"
#define SRV_DEFAULT_CLIENT_ID "6b766d6f-636b-4000-8000-0000000000c1"

/** Properties a configuration file's vault names (struct srv_config.given). */
enum {
    SRV_GIVEN_ARM = 1u << 0, /**< any kept for Resource Manager: sku, enabledFor*,
                                  publicNetworkAccess, networkAcls */
    SRV_GIVEN_SOFT_DELETE = 1u << 1,
    SRV_GIVEN_RETENTION = 1u << 2,
    SRV_GIVEN_PURGE_PROTECTION = 1u << 3,
    SRV_GIVEN_RBAC = 1u << 4,
};

struct srv_config {
    /* command line and environment */
    char data_dir[4096];
    int https_port, http_port;
    char config_path[4096]; /**< "" when there is none */
    char *hostnames[SRV_MAX_HOSTNAMES];
    size_t n_hostnames;
    enum kv_log_level log_level;
    int ui; /**< --ui on|off (KVMOCK_UI), default on */
    size_t map_size_mib; /**< --map-size (KVMOCK_MAP_SIZE): initial LMDB map in MiB, 0 = default */
    size_t audit_max;    /**< --audit-max (KVMOCK_AUDIT_MAX): audit records kept, 0 = all */
    int threads;         /**< --threads (KVMOCK_THREADS): civetweb worker threads */
    enum ks_sync sync;   /**< --sync (KVMOCK_SYNC): what a write waits for */

    /* the configuration file, or the defaults */
    char tenant_id[POL_ID_MAX];
    char identity_header[256];
    struct pol_identity *identities;
    size_t n_identities;
    struct ks_vault *vaults;
    size_t n_vaults;
    /* per vault: which properties the file names (SRV_GIVEN_*; on an existing vault only
     * those change at a start, the others keep what the store has, the management
     * plane's changes included), and its networkAcls' rule lists, which the vault's
     * net_rules points at when it has any */
    unsigned *given;
    struct ks_net_rules *net_rules;
    /* access policies of the vaults (vault names inside); a vault listed in
     * policies_given has exactly these, else its creator (the default identity)
     * holds every key permission */
    struct pol_access_policy *policies;
    size_t n_policies;
    int *policies_given; /**< per vault */
    struct pol_role_assignment *roles;
    size_t n_roles;
    /** the first of roles are the managed HSMs' initial administrators; the file's
     * roleAssignments follow */
    size_t n_admin_roles;
    /* custom role definitions, made or replaced at every start: id (a GUID, lowercase),
     * roleName, and the properties as the file gives them (owned, checked) */
    struct srv_role_def_cfg {
        char id[POL_ID_MAX];
        char name[POL_ROLE_NAME_MAX];
        struct cJSON *props;
    } * role_defs;
    size_t n_role_defs;
    /* attestation authorities trusted for secure key release: URL and JWKS text (owned) */
    struct srv_authority {
        char *authority;
        char *jwks;
        size_t jwks_len;
    } * authorities;
    size_t n_authorities;
};

/**
 * @brief Read flags, environment and (if named) the configuration file.
 * @param[out] err a message for the user when the result is not KV_OK.
 * @return KV_OK; KV_ERR_BAD_PARAM for bad flags or configuration; KV_ERR_NOMEM.
 *   A `--help` request is KV_ERR_BAD_PARAM with an empty message.
 */
enum kv_status srv_config_load(int argc, char **argv, struct srv_config *cfg, char *err,
                               size_t errcap) KV_MUST_CHECK;

/** @brief Free what srv_config_load() allocated. */
void srv_config_free(struct srv_config *cfg);

/** @brief The usage text. */
extern const char srv_usage[];

#endif
