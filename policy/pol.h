/**
 * @file pol.h
 * @brief Identities, tokens and authorization.
 *
 * kvmock is its own identity provider: it issues HS256 JWTs for its
 * identities and accepts only tokens it signed. The evaluator pol_allowed()
 * decides whether an authenticated caller may use a permission on a vault.
 * It also checks the client assertions (RFC 7523) an application proves itself
 * with instead of a secret: a certificate's, or a federated issuer's token.
 * This layer knows nothing of HTTP and does no crypto on a vault's keys.
 */
#ifndef POL_H
#define POL_H

#include <stddef.h>
#include <stdint.h>

#include "ks.h"
#include "kv_status.h"

#define POL_ID_MAX 64
#define POL_PRINCIPAL_TYPE_MAX 24 /**< "ServicePrincipal" and the other principal types */
#define POL_DESCRIPTION_MAX 1024  /**< a role assignment's description, with its NUL */
#define POL_AUD_MAX 256
/** The one subscription kvmock lists (management paths accept any). */
#define POL_SUBSCRIPTION "00000000-0000-0000-0000-000000000000"
/** The resource group of kvmock's own resources (management paths accept any). */
#define POL_RESOURCE_GROUP "kvmock"

/** Key permissions of an access policy, one per data-plane route family. */
enum pol_perm {
    POL_KEYS_GET = 0,
    POL_KEYS_LIST,
    POL_KEYS_CREATE,
    POL_KEYS_UPDATE,
    POL_KEYS_IMPORT,
    POL_KEYS_DELETE,
    POL_KEYS_RECOVER,
    POL_KEYS_BACKUP,
    POL_KEYS_RESTORE,
    POL_KEYS_PURGE,
    POL_KEYS_ENCRYPT,
    POL_KEYS_DECRYPT,
    POL_KEYS_WRAP,
    POL_KEYS_UNWRAP,
    POL_KEYS_SIGN,
    POL_KEYS_VERIFY,
    POL_KEYS_RELEASE,
    POL_KEYS_ROTATE,
    POL_KEYS_GETROTATIONPOLICY,
    POL_KEYS_SETROTATIONPOLICY,
    POL_PERM_COUNT,
    /* Managed HSM's own data actions, which its local roles grant beside the key
     * permissions above (no access policy names them) */
    POL_HSM_DELETED_READ = POL_PERM_COUNT, /**< keys/deletedKeys/read: get and list deleted keys */
    POL_HSM_RNG,                           /**< rng: random bytes */
    POL_HSM_ROLES_READ,                    /**< roleAssignments/read */
    POL_HSM_ROLES_WRITE,                   /**< roleAssignments/write */
    POL_HSM_ROLES_DELETE,                  /**< roleAssignments/delete */
    POL_HSM_ROLEDEFS_READ,                 /**< roleDefinitions/read */
    POL_HSM_ROLEDEFS_WRITE,                /**< roleDefinitions/write */
    POL_HSM_ROLEDEFS_DELETE,               /**< roleDefinitions/delete */
    POL_HSM_BACKUP_START,                  /**< backup/start: a full backup */
    POL_HSM_BACKUP_STATUS,                 /**< backup/status: a full backup's job */
    POL_HSM_RESTORE_START,                 /**< restore/start: a full or selective key restore */
    POL_HSM_RESTORE_STATUS,                /**< restore/status: a restore's job */
    POL_HSM_SETTINGS_READ,                 /**< settings/read */
    POL_HSM_SETTINGS_WRITE,                /**< settings/write */
    POL_HSM_SD_DOWNLOAD,                   /**< securitydomain/download/action */
    POL_HSM_SD_DOWNLOAD_READ,              /**< securitydomain/download/read: its status */
    POL_HSM_SD_UPLOAD_READ,                /**< securitydomain/upload/read: its status */
    POL_HSM_SD_UPLOAD,                     /**< securitydomain/upload/action */
    POL_HSM_SD_TRANSFER_KEY_READ,          /**< securitydomain/transferkey/read: for an upload */
    POL_PERM_HSM_END
};

/** @brief The access-policy spelling of a permission ("wrapKey"). Static string. */
const char *pol_perm_name(enum pol_perm perm);

/**
 * @brief Whether a call that needs @p perm changes what the vault holds when it
 * succeeds (create, import, update, delete, recover, restore, purge, rotate,
 * set the rotation policy); reads and key operations do not.
 */
int pol_perm_changes_state(enum pol_perm perm);

/** An identity kvmock issues tokens for. */
struct pol_creds;

struct pol_identity {
    char name[POL_ID_MAX];
    char object_id[POL_ID_MAX];
    char client_id[POL_ID_MAX];
    char tenant_id[POL_ID_MAX];
    char resource_id[512];
    char client_secret[256]; /**< "" for managed identities */
    /** certificates and federated credentials (client assertions), or NULL; owned by the
     * holder of the identity: pol_add_identity() takes them */
    struct pol_creds *creds;
    int is_default;
    int manage;
    /** stands for a trusted Azure service (as Azure Storage or SQL reach a vault for a
     * customer-managed key): a vault's firewall lets it through unless its bypass is None */
    int trusted_service;
};

/** Claims of a verified token. */
struct pol_claims {
    char oid[POL_ID_MAX];
    char appid[POL_ID_MAX];
    char tid[POL_ID_MAX];
    char aud[POL_AUD_MAX];
    int64_t iat, nbf, exp;
};

struct pol_ctx;

/**
 * @brief Create the policy context: loads or creates the token signing secret
 * `DATA/token.key` (mode 0600), so tokens stay valid across a restart.
 * @param[in] tenant_id the main tenant, used by identities that name none.
 * @param[out] out release with pol_free().
 * @return KV_OK, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status pol_new(const char *data_dir, const char *tenant_id,
                       struct pol_ctx **out) KV_MUST_CHECK;

/** @brief Free the context and wipe the signing secret. NULL is a no-op. */
void pol_free(struct pol_ctx *ctx);

/** @brief The main tenant id. */
const char *pol_tenant(const struct pol_ctx *ctx);

/**
 * @brief Add an identity (copied). An empty tenant_id takes the main tenant; an
 * empty resource_id takes the default user-assigned identity resource id. On
 * success the context owns @p id->creds and @p id->creds is set to NULL.
 * @return KV_OK, KV_ERR_BAD_PARAM (duplicate object, client or resource id, the
 *   default one included, so two names that differ only in case; or a second default),
 *   KV_ERR_NOMEM.
 */
enum kv_status pol_add_identity(struct pol_ctx *ctx, struct pol_identity *id) KV_MUST_CHECK;

/** @brief How many identities the context holds; pol_identity_at() reads them in order. */
size_t pol_identity_count(const struct pol_ctx *ctx);

/** @brief The @p i-th identity (owned by the context), or NULL past the end. */
const struct pol_identity *pol_identity_at(const struct pol_ctx *ctx, size_t i);

/**
 * @brief Find a managed identity by client id, object id or resource id (at most
 * one non-NULL); with all NULL, the default identity.
 * @return the identity (owned by the context) or NULL.
 */
const struct pol_identity *pol_find_identity(const struct pol_ctx *ctx, const char *client_id,
                                             const char *object_id, const char *resource_id);

/**
 * @brief Whether @p id is an application: it has a client secret, certificates or
 * federated credentials, and Entra's client-credentials endpoint serves it. The other
 * identities are managed identities.
 */
int pol_identity_is_app(const struct pol_identity *id);

/**
 * @brief Issue a token for @p id with audience @p aud, valid from @p now for
 * POL_TOKEN_LIFETIME seconds.
 * @param[out] token a new string; the caller frees it.
 * @param[out] expires_on Unix seconds.
 * @return KV_OK, KV_ERR_NOMEM.
 */
enum kv_status pol_token_issue(const struct pol_ctx *ctx, const struct pol_identity *id,
                               const char *aud, int64_t now, char **token,
                               int64_t *expires_on) KV_MUST_CHECK;

#define POL_TOKEN_LIFETIME 3600

/**
 * @brief Verify a bearer token: HS256 signature under kvmock's secret (constant
 * time), `nbf <= now < exp`, an audience among @p auds (a trailing slash is
 * ignored on both sides), and an identity that still exists with the token's
 * object id, client id and tenant.
 * @param[out] out the claims, set only on success.
 * @return KV_OK or KV_ERR_UNAUTHORIZED.
 */
enum kv_status pol_token_verify(const struct pol_ctx *ctx, const char *token, int64_t now,
                                const char *const *auds, size_t n_auds,
                                struct pol_claims *out) KV_MUST_CHECK;

/**
 * @brief pol_token_verify(), and when a token kvmock issued is refused only for its
 * audience (signed, in its time, of an existing identity), that audience in
 * @p wrong_aud (else ""): a client that asked for a token for another resource is told so.
 */
enum kv_status pol_token_check(const struct pol_ctx *ctx, const char *token, int64_t now,
                               const char *const *auds, size_t n_auds, struct pol_claims *out,
                               char wrong_aud[POL_AUD_MAX]) KV_MUST_CHECK;

/* ---- access policies and role assignments ----------------------------------------- */

/** A set of key permissions: bit ((pol_perms)1 << enum pol_perm). */
typedef uint64_t pol_perms;
#define POL_PERMS_ALL ((pol_perms)((1u << POL_PERM_COUNT) - 1))

/**
 * @brief Parse an access-policy permission name, case-insensitively ("wrapKey",
 * "unwrapkey", "all").
 * @return KV_OK or KV_ERR_BAD_PARAM.
 */
enum kv_status pol_perm_parse(const char *name, pol_perms *out) KV_MUST_CHECK;

/** The permission lists of an access policy, as Resource Manager names them. */
enum pol_list {
    POL_LIST_KEYS = 0,
    POL_LIST_SECRETS,
    POL_LIST_CERTIFICATES,
    POL_LIST_STORAGE,
    POL_LIST_COUNT
};

#define POL_LIST_MAX 24 /**< names in one list: each name of the longest list once */

/** One permission list as the client gave it: its names' order, each once, by their
 * index in the list's table of Key Vault's names (pol_list_entry()). */
struct pol_perm_list {
    unsigned char n;
    unsigned char name[POL_LIST_MAX];
};

/** "keys", "secrets", "certificates" or "storage". */
const char *pol_list_name(enum pol_list list);

/** What one of @p list's permissions is, for messages: "key", "secret", "certificate",
 * "storage". */
const char *pol_list_noun(enum pol_list list);

/** Name @p index of @p list's table, as Key Vault spells it ("wrapKey", "getsas"), or NULL. */
const char *pol_list_entry(enum pol_list list, unsigned index);

/**
 * @brief Append permission @p name (any case) to @p l unless it is there.
 * @return KV_OK, or KV_ERR_BAD_PARAM when @p name is not one of @p list's.
 */
enum kv_status pol_list_add(struct pol_perm_list *l, enum pol_list list,
                            const char *name) KV_MUST_CHECK;

/**
 * An access policy entry of a vault (Azure's accessPolicies[] item). Its lists are kept
 * as given and answered so; kvmock grants from @p keys, the key permissions they name. An
 * entry made with @p keys alone (its key list empty) shows them in Key Vault's order.
 */
struct pol_access_policy {
    char vault[KS_VAULT_NAME_MAX + 1];
    char tenant_id[POL_ID_MAX];
    char object_id[POL_ID_MAX];
    char application_id[POL_ID_MAX]; /**< "" = any application */
    pol_perms keys;
    struct pol_perm_list lists[POL_LIST_COUNT];
};

/** @brief Make @p p's key list and its @p keys agree: the list from @p keys when the
 * list is empty, else @p keys from the list. */
void pol_policy_settle(struct pol_access_policy *p);

/** The built-in Key Vault roles. The ones after POL_ROLE_READER grant little or nothing on
 * keys (they are for secrets, certificates or the management plane); kvmock keeps their
 * assignments so that deployments which make them work as in Azure. */
enum pol_role {
    POL_ROLE_ADMINISTRATOR = 0,
    POL_ROLE_CRYPTO_OFFICER,
    POL_ROLE_CRYPTO_USER,
    POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER,
    POL_ROLE_READER,
    POL_ROLE_CRYPTO_SERVICE_RELEASE_USER, /**< keys/release only */
    POL_ROLE_CERTIFICATE_USER,            /**< keys/read among certificate rights */
    POL_ROLE_CERTIFICATES_OFFICER,
    POL_ROLE_SECRETS_OFFICER,
    POL_ROLE_SECRETS_USER,
    POL_ROLE_CONTRIBUTOR,               /**< the management plane, no data access */
    POL_ROLE_DATA_ACCESS_ADMINISTRATOR, /**< role assignments, no data access */
    POL_ROLE_COUNT,
    /** a custom role definition (pol_role_def): the assignment's role_def names it */
    POL_ROLE_CUSTOM = POL_ROLE_COUNT,
    /* Managed HSM's built-in local roles: assignable in a Managed HSM only, and the only
     * roles there */
    POL_ROLE_HSM_FIRST,
    POL_ROLE_HSM_ADMINISTRATOR = POL_ROLE_HSM_FIRST, /**< role assignments, no keys */
    POL_ROLE_HSM_CRYPTO_OFFICER, /**< deleted keys and role assignments, no other key use */
    POL_ROLE_HSM_CRYPTO_USER,
    POL_ROLE_HSM_POLICY_ADMINISTRATOR,
    POL_ROLE_HSM_CRYPTO_AUDITOR,
    POL_ROLE_HSM_CRYPTO_SERVICE_RELEASE_USER,
    POL_ROLE_HSM_CRYPTO_SERVICE_ENCRYPTION_USER,
    POL_ROLE_HSM_BACKUP_USER,
    POL_ROLE_HSM_END
};

/** @brief Whether @p role is one of Managed HSM's local roles. */
int pol_role_is_hsm(enum pol_role role);

/**
 * @brief Parse one of Managed HSM's local roles by name ("Managed HSM Crypto User"), by
 * GUID or by a roleDefinitionId path ending in the GUID.
 * @return KV_OK or KV_ERR_BAD_PARAM.
 */
enum kv_status pol_hsm_role_parse(const char *text, enum pol_role *out) KV_MUST_CHECK;

/** @brief Managed HSM's data actions of local role @p role (NULL-terminated static list). */
const char *const *pol_hsm_role_actions(enum pol_role role);

/**
 * @brief Parse a role by name ("Key Vault Crypto User"), by role definition id
 * (GUID) or by a roleDefinitionId path ending in the GUID.
 * @return KV_OK or KV_ERR_BAD_PARAM.
 */
enum kv_status pol_role_parse(const char *text, enum pol_role *out) KV_MUST_CHECK;
/** @brief The role's name (a built-in or a local role). Static string. */
const char *pol_role_name(enum pol_role role);
/** @brief The role definition GUID (a built-in or a local role). Static string. */
const char *pol_role_id(enum pol_role role);
/** @brief The permissions a role's data actions grant (a built-in or a local role). */
pol_perms pol_role_perms(enum pol_role role);

/** A role assignment at the scope of a key, a vault, a resource group or the subscription:
 * the broader scopes reach every vault in them. */
struct pol_role_assignment {
    char id[POL_ID_MAX]; /**< the assignment's name (a GUID) */
    char principal_id[POL_ID_MAX];
    enum pol_role role;
    char role_def[POL_ID_MAX];         /**< POL_ROLE_CUSTOM: the definition's GUID; else "" */
    char vault[KS_VAULT_NAME_MAX + 1]; /**< "" = a group's or the subscription's scope */
    char key[KS_NAME_MAX + 1];         /**< "" = the whole vault */
    char group[KS_GROUP_MAX + 1];      /**< a group's scope (vault ""); "" otherwise */
    /** 1: a Managed HSM's local assignment (vault is the HSM; its role a local one), which
     * Resource Manager never lists; 0: Resource Manager's */
    int hsm;
    /** a local assignment at the HSM's "/keys" scope (the same reach as "/", named apart) */
    int hsm_keys;
    /* What Resource Manager tells about an assignment; none of it decides access. */
    char principal_type[POL_PRINCIPAL_TYPE_MAX]; /**< see pol_principal_type_valid(); "" = unsaid */
    char description[POL_DESCRIPTION_MAX];       /**< "" = none */
    int64_t created, updated; /**< kvmock's clock; 0 = unknown (made by an older kvmock) */
    char created_by[POL_ID_MAX], updated_by[POL_ID_MAX]; /**< object ids; "" = the config */
};

/** @brief An assignment's role definition GUID: a built-in role's, or its custom one's. */
const char *pol_assignment_role_id(const struct pol_role_assignment *r);

#define POL_ROLE_NAME_MAX 256 /**< a custom role's roleName, its NUL included */

/**
 * A custom role definition (Resource Manager's CustomRole), directory-wide as in Azure.
 * kvmock evaluates what its data actions grant on keys; the rest of it (its actions,
 * assignable scopes and description) the management plane keeps as @ref doc.
 */
struct pol_role_def {
    char id[POL_ID_MAX];          /**< its GUID, in lowercase */
    char name[POL_ROLE_NAME_MAX]; /**< roleName: no other role, built-in or custom, has it */
    pol_perms perms;              /**< what it grants on keys: pol_data_actions_perms() */
    char *doc;                    /**< the management plane's text of it; owned */
    /** "": Resource Manager's, directory-wide; else the Managed HSM whose local role it is:
     * its data actions are Managed HSM's (pol_hsm_actions_perms()), its name is unique among
     * that HSM's roles (an HSM's may be empty), and only that HSM's assignments name it */
    char hsm[KS_VAULT_NAME_MAX + 1];
};

/**
 * @brief The key permissions that data actions @p grant, less @p deny, give (Azure's
 * dataActions and notDataActions: "Microsoft.KeyVault/vaults/keys/unwrap/action"; ASCII
 * case ignored, '*' matches any characters). Data actions on anything but keys give none.
 */
pol_perms pol_data_actions_perms(const char *const *grant, size_t n_grant, const char *const *deny,
                                 size_t n_deny);

/**
 * @brief What Managed HSM's data actions @p grant give ("Microsoft.KeyVault/managedHsm/keys/
 * wrap/action"; case ignored, '*' wildcards): key permissions and the POL_HSM_* actions.
 * Actions kvmock has no call for (the security domain's upload and transfer key, export,
 * derive) give nothing.
 */
pol_perms pol_hsm_actions_perms(const char *const *grant, size_t n_grant);

/** @brief The Managed HSM data action that grants @p perm
 * ("Microsoft.KeyVault/managedHsm/keys/wrap/action"), static; NULL for none. */
const char *pol_hsm_perm_action(enum pol_perm perm);

/**
 * @brief Create or replace custom role definition @p def->id (a GUID that is no built-in
 * role's) named @p def->name, Resource Manager's or (@p def->hsm) a Managed HSM's: a
 * definition does not move between the two (KV_ERR_BAD_PARAM). Its permissions are those
 * @p grant less @p deny give, and
 * @p def->doc is copied. A replaced definition's assignments grant the new permissions at
 * once.
 * @param[out] created 1 when it is new (may be NULL).
 * @return KV_OK, KV_ERR_BAD_PARAM (an id that is no GUID or a built-in role's, an empty
 *   name or one too long, no doc), KV_ERR_ARM_ROLE_NAME_EXISTS (another role, built-in or
 *   custom, has the name, in any case), KV_ERR_NOMEM, KV_ERR_STORE, KV_ERR_STORE_FULL.
 */
enum kv_status pol_role_def_put(struct pol_ctx *ctx, const struct pol_role_def *def,
                                const char *const *grant, size_t n_grant, const char *const *deny,
                                size_t n_deny, int *created) KV_MUST_CHECK;

/**
 * @brief Copy custom role definition @p id (its GUID, or a path ending in it) into @p out
 * (release with pol_role_def_clear()).
 * @return KV_OK, KV_ERR_ARM_NO_ROLE_DEFINITION, KV_ERR_NOMEM.
 */
enum kv_status pol_role_def_get(struct pol_ctx *ctx, const char *id,
                                struct pol_role_def *out) KV_MUST_CHECK;

/**
 * @brief Copy the custom role definitions, in GUID order, into @p out (each released with
 * pol_role_def_clear()).
 * @param[out] n how many were copied.
 * @return KV_OK, KV_ERR_NOMEM (nothing copied).
 */
enum kv_status pol_role_def_list(struct pol_ctx *ctx, struct pol_role_def **out,
                                 size_t *n) KV_MUST_CHECK;

/**
 * @brief Delete custom role definition @p id, unless a role assignment uses it.
 * @param[out] out the deleted definition (may be NULL; release with pol_role_def_clear()).
 * @return KV_OK, KV_ERR_ARM_NO_ROLE_DEFINITION, KV_ERR_ARM_ROLE_IN_USE, KV_ERR_NOMEM,
 *   KV_ERR_STORE.
 */
enum kv_status pol_role_def_delete(struct pol_ctx *ctx, const char *id,
                                   struct pol_role_def *out) KV_MUST_CHECK;

/** @brief Free what @p d owns (its doc); NULL is a no-op. */
void pol_role_def_clear(struct pol_role_def *d);

/** @brief pol_role_def_clear() each of @p n definitions, then free the array. */
void pol_role_defs_free(struct pol_role_def *defs, size_t n);

/**
 * @brief pol_role_parse(), and else a custom role definition by GUID, by a path ending in
 * it or by name (in any case): @p role is POL_ROLE_CUSTOM and @p def its GUID.
 * @return KV_OK or KV_ERR_BAD_PARAM (no such role).
 */
enum kv_status pol_role_resolve(struct pol_ctx *ctx, const char *text, enum pol_role *role,
                                char def[POL_ID_MAX]) KV_MUST_CHECK;

/**
 * @brief The name of assignment @p r's role (a custom one's as it is now; "" when it is
 * gone) into @p out.
 */
void pol_assignment_role_name(struct pol_ctx *ctx, const struct pol_role_assignment *r, char *out,
                              size_t cap);

/** @brief Whether @p type is a principal type an assignment may name ("" = unsaid). */
int pol_principal_type_valid(const char *type);

/** @brief Whether two assignments have one scope (names compared in any case). */
int pol_role_same_scope(const struct pol_role_assignment *a,
                        const struct pol_role_assignment *b);

/** @brief Whether two assignments are one: the same principal, role and scope. */
int pol_role_same(const struct pol_role_assignment *a, const struct pol_role_assignment *b);

/**
 * @brief Parse a scope: "/vaults/V[/keys/K]" or the ARM form
 * "/subscriptions/S/resourceGroups/G/providers/Microsoft.KeyVault/vaults/V[/keys/K]";
 * with @p group not NULL also "/subscriptions/S/resourceGroups/G" (vault "", the group
 * in @p group) and "/subscriptions/S" (all three "").
 * @return KV_OK or KV_ERR_BAD_PARAM.
 */
enum kv_status pol_scope_parse(const char *scope, char vault[KS_VAULT_NAME_MAX + 1],
                               char key[KS_NAME_MAX + 1],
                               char group[KS_GROUP_MAX + 1]) KV_MUST_CHECK;

/**
 * @brief Keep access policies and role assignments in @p ks (tables
 * KS_TABLE_POLICIES and KS_TABLE_ROLES) and load them into memory.
 * @return KV_OK, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status pol_attach(struct pol_ctx *ctx, struct ks_env *ks) KV_MUST_CHECK;

/** How the access policies of a change meet the ones their identities have. */
enum pol_update {
    POL_UPDATE_SET = 0, /**< stored as given, also with no permission */
    POL_UPDATE_ADD,     /**< their permissions are added to the identity's */
    POL_UPDATE_REPLACE, /**< they replace the identity's permissions */
    POL_UPDATE_REMOVE,  /**< their permissions are taken away (none listed: all) */
};

/**
 * A change to access control that takes effect as one: written in one keystore
 * transaction (with the vault's own write, for pol_vault_put()) and mirrored at once,
 * so that no request sees a part of it and a change that fails leaves nothing.
 */
struct pol_acl_change {
    /** The vault whose access policies or role assignments change; NULL or "" for a
     * change of role assignments at a group's or the subscription's scope only. */
    const char *vault;
    int clear_policies; /**< the vault's access policies go first */
    int clear_roles;    /**< the role assignments at its scope and its keys' go first */
    /** The custom role definitions of Managed HSM @ref vault go first (a new HSM's: none of
     * a namesake's; a purged one's) */
    int clear_defs;
    /** Then these access policies of the vault, in order: stored, or, with an update
     * kind other than POL_UPDATE_SET that leaves an identity no permission, removed. */
    const struct pol_access_policy *policies;
    size_t n_policies;
    enum pol_update kind;
    /** And these role assignments are made, each as pol_role_put() makes one (but
     * whether their scope exists is the caller's to know). */
    const struct pol_role_assignment *roles;
    size_t n_roles;
};

/**
 * @brief Write vault @p v as ks_vault_put_with() does with @p create (KS_VAULT_CREATE,
 * KS_VAULT_PUT, or KS_VAULT_UPDATE: only while the vault is live), and its access control
 * change @p chg (NULL: none; its vault must be @p v's) in one transaction.
 * @return KV_OK, KV_ERR_BAD_PARAM, the errors of ks_vault_put_with() and pol_role_put().
 */
enum kv_status pol_vault_put(struct pol_ctx *ctx, const struct ks_vault *v, int create,
                             const struct pol_acl_change *chg) KV_MUST_CHECK;

/**
 * @brief pol_vault_put() of a new vault (KS_VAULT_CREATE) with ks_vault_create_in_group():
 * its resource group is made in the same transaction unless it exists.
 * @param[out] group the group as stored, on KV_OK.
 * @param[out] created on KV_OK, 1 when this call made the group (may be NULL).
 * @return as pol_vault_put().
 */
enum kv_status pol_vault_create_in_group(struct pol_ctx *ctx, const struct ks_vault *v,
                                         const struct pol_acl_change *chg, struct ks_group *group,
                                         int *created) KV_MUST_CHECK;

/** @brief Apply access control change @p chg alone. @return as pol_vault_put(). */
enum kv_status pol_acl_apply(struct pol_ctx *ctx, const struct pol_acl_change *chg) KV_MUST_CHECK;

/**
 * @brief Delete vault @p name as ks_vault_soft_delete() does, and in the same transaction
 * the role assignments at its scope and its keys' (Azure deletes them, and recovery does
 * not bring them back) and, when the vault is removed at once (no soft delete), its
 * access policies (a soft-deleted vault keeps them for its recovery). A Managed HSM keeps
 * its local role assignments and custom role definitions, which are its own, for its
 * recovery: they go when it is purged.
 * @return as ks_vault_soft_delete().
 */
enum kv_status pol_vault_delete(struct pol_ctx *ctx, const char *name, const char *resource_id,
                                struct ks_deleted_vault *out) KV_MUST_CHECK;

/**
 * @brief Remove the access control of vault or Managed HSM @p name if it is gone for good
 * without it: purged by the keystore alone (its sweep at the purge date, or a read that
 * found it past it), which takes only its keys and access policy records. When no vault or
 * HSM, live or deleted, holds the name, its access policies, the role assignments at its
 * scope and its keys', and an HSM's custom roles go, in one transaction with that check
 * (ks_record_apply_gone()).
 * @param[out] cleared 1 when they went.
 * @return KV_OK (also when the name is held), KV_ERR_BAD_PARAM, KV_ERR_NOMEM, KV_ERR_STORE.
 */
enum kv_status pol_vault_gone(struct pol_ctx *ctx, const char *name, int *cleared) KV_MUST_CHECK;

/**
 * @brief pol_vault_gone() for each name that access control names (access policies,
 * assignments, HSM custom roles), each in its own transaction.
 * @param[out] cleared how many names were cleared (may be NULL).
 * @return KV_OK, or the first failure (each name is looked at; one that failed waits for
 *   the next sweep).
 */
enum kv_status pol_sweep(struct pol_ctx *ctx, size_t *cleared) KV_MUST_CHECK;

/**
 * @brief Purge deleted vault (@p hsm 0) or Managed HSM (1) @p name as
 * ks_deleted_vault_purge() does, and in the same transaction what it kept for a recovery:
 * a vault's access policies, an HSM's local role assignments and custom role definitions.
 * @return as ks_deleted_vault_purge().
 */
enum kv_status pol_deleted_vault_purge(struct pol_ctx *ctx, const char *name,
                                       int hsm) KV_MUST_CHECK;

/**
 * @brief Managed HSM @p hsm's local role assignments and custom role definitions, as kept,
 * in one JSON text for its full backups (pol_hsm_access_restore() takes it back).
 * @param[out] out release with cJSON_free().
 * @return KV_OK, KV_ERR_STORE, KV_ERR_NOMEM.
 */
enum kv_status pol_hsm_access_export(struct pol_ctx *ctx, const char *hsm,
                                     char **out) KV_MUST_CHECK;

/** Writes @p ops, with the writer's own changes, in one transaction: all or nothing. */
typedef enum kv_status (*pol_write_fn)(const struct ks_record_op *ops, size_t n, void *arg);

/**
 * @brief Make Managed HSM @p hsm's local role assignments and custom role definitions
 * exactly those of @p access (pol_hsm_access_export()'s text, perhaps another HSM's; NULL:
 * the backup kept none, and they stay as they are). The changes go to @p write, which writes them
 * with its own (a full restore's keys) in one transaction; they take effect once it succeeded,
 * before any other call is decided. An assignment or definition whose id another scope holds (the
 * backup was another HSM's, which still has them) gets a new one, and the assignments follow their
 * definition's.
 * @return KV_OK; KV_ERR_BAD_BACKUP (@p access does not read as such a text); what @p write
 *   returns; KV_ERR_NOMEM.
 */
enum kv_status pol_hsm_access_restore(struct pol_ctx *ctx, const char *hsm, const char *access,
                                      pol_write_fn write, void *arg) KV_MUST_CHECK;

/** @brief Add or replace (same vault, tenant, object and application) an access policy. */
enum kv_status pol_policy_put(struct pol_ctx *ctx,
                              const struct pol_access_policy *p) KV_MUST_CHECK;

/**
 * @brief Copy a vault's access policies into @p out (at most @p cap).
 * @return how many the vault has (may exceed @p cap).
 */
size_t pol_policy_list(struct pol_ctx *ctx, const char *vault, struct pol_access_policy *out,
                       size_t cap);

/**
 * @brief Add a role assignment, or put one again (same id): its description and
 * principal type may change, and it keeps its creation time and creator. As in Azure, one
 * principal, role and scope make one assignment, and an assignment's principal, role
 * and scope never change. The caller sets @p ra's `updated` and `updated_by`; a new
 * assignment takes them as its creation too. It is stored only while its scope exists
 * (its vault, or its resource group), decided in the transaction that writes it: a
 * deletion of the vault or group, which removes the assignments at its scope, comes
 * wholly before (and this one is refused) or wholly after (and removes it too).
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_ARM_ROLE_EXISTS (another id has this principal,
 *   role and scope), KV_ERR_ARM_ROLE_UPDATE (the id has another principal, role or scope),
 *   KV_ERR_VAULT_NOT_FOUND, KV_ERR_ARM_NO_GROUP, KV_ERR_NOMEM, KV_ERR_STORE.
 */
enum kv_status pol_role_put(struct pol_ctx *ctx,
                            const struct pol_role_assignment *ra) KV_MUST_CHECK;

/** @brief Remove a role assignment. @return KV_OK, KV_ERR_BAD_PARAM (no such id), KV_ERR_STORE. */
enum kv_status pol_role_remove(struct pol_ctx *ctx, const char *id) KV_MUST_CHECK;

/** @brief Remove the role assignments at a resource group's scope, as deleting the group
 * does. @return KV_OK (also when there were none), KV_ERR_STORE. */
enum kv_status pol_role_remove_group(struct pol_ctx *ctx, const char *group) KV_MUST_CHECK;

/** @brief Copy every role assignment into @p out (at most @p cap).
 * @return how many there are (may exceed @p cap). */
size_t pol_role_all(struct pol_ctx *ctx, struct pol_role_assignment *out, size_t cap);

/**
 * @brief Copy the role assignments that reach @p vault into @p out: at its scope or a key's
 * in it, at its resource group's (POL_RESOURCE_GROUP for a vault without one) and at the
 * subscription's.
 * @return how many there are (may exceed @p cap).
 */
size_t pol_role_list(struct pol_ctx *ctx, const struct ks_vault *vault,
                     struct pol_role_assignment *out, size_t cap);

/** @brief Find a role assignment by id. @return 1 and fill @p out when found. */
int pol_role_get(struct pol_ctx *ctx, const char *id, struct pol_role_assignment *out);

/**
 * @brief Decide whether a data-plane request of @p who from the address @p client (as
 * the socket reports it) passes @p vault's network rules, as Key Vault's firewall
 * decides before it looks at permissions. An identity marked as a trusted service
 * passes unless the vault's bypass is None. Otherwise: with public network access
 * disabled nothing passes (kvmock has no private links); a vault that denies by
 * default lets in an address in one of @p rules' IP ranges; virtual network rules
 * never match, as no request comes through a virtual network.
 * @param rules the vault's rule lists (ks_vault_net_rules()); may be NULL when the
 *   vault does not deny by default.
 * @return KV_OK, KV_ERR_PUBLIC_DISABLED, KV_ERR_FIREWALL_DENIED.
 */
enum kv_status pol_network_allowed(const struct pol_ctx *ctx, const struct pol_claims *who,
                                   const struct ks_vault *vault, const struct ks_net_rules *rules,
                                   const char *client);

/**
 * @brief Decide whether @p who may use @p perm on @p vault, and for a key scope
 * on the key @p key_name (may be NULL). Under access policies, an entry for the
 * caller's tenant and object id (and application id, when the entry names one)
 * must grant the permission. Under RBAC, a role assignment to the caller at the
 * key's, the vault's, its resource group's (POL_RESOURCE_GROUP for a vault without
 * one) or the subscription's scope must grant it.
 * @return KV_OK, KV_ERR_UNAUTHORIZED (token from another tenant),
 *   KV_ERR_ACCESS_DENIED, KV_ERR_RBAC_DENIED.
 */
enum kv_status pol_allowed(struct pol_ctx *ctx, const struct pol_claims *who,
                           const struct ks_vault *vault, const char *key_name,
                           enum pol_perm perm) KV_MUST_CHECK;

/* ---- client assertions (RFC 7523): certificates and federated credentials ----------------- */

#define POL_CREDS_CERTS_MAX     16  /**< certificates of one identity */
#define POL_CREDS_FEDERATED_MAX 20  /**< federated credentials of one identity, as in Entra */
#define POL_FEDERATED_FIELD_MAX 600 /**< issuer, subject and audience, in bytes, as in Entra */
#define POL_JWKS_KEYS_MAX       16  /**< keys of one federated issuer */
#define POL_ASSERTION_SKEW      300 /**< seconds of clock skew allowed around nbf and exp */
#define POL_ASSERTION_MAX       32768 /**< bytes of an assertion (x5c may carry a chain) */
/** The audience a federated credential expects when it names none (Entra's default). */
#define POL_FEDERATED_AUDIENCE "api://AzureADTokenExchange"

/** @brief Free an identity's credentials. NULL is a no-op. */
void pol_creds_free(struct pol_creds *creds);

/**
 * @brief Register every certificate (each `-----BEGIN CERTIFICATE-----` block) of a PEM
 * text, as an application registration holds the public part of its certificates. Other
 * blocks (a private key kept in the same file) are not read. @p *creds is created when NULL.
 * @param[out] added how many certificates the text held (at least one on KV_OK).
 * @param[out] err a message on KV_ERR_BAD_PARAM.
 * @return KV_OK, KV_ERR_BAD_PARAM (no certificate, a block that is not one, or more than
 *   POL_CREDS_CERTS_MAX), KV_ERR_NOMEM.
 */
enum kv_status pol_creds_add_certificates(struct pol_creds **creds, const char *pem, size_t len,
                                          size_t *added, char *err, size_t cap) KV_MUST_CHECK;

/**
 * @brief Register a federated credential: an assertion whose `iss`, `sub` and `aud` are
 * these (compared exactly, as Entra does) and whose signature one of the issuer's keys
 * verifies. kvmock cannot fetch an issuer's keys, so they are given as the issuer publishes
 * them: a JWKS document (`{"keys": [...]}`; RSA keys, and EC keys on P-256, P-384, P-521).
 * @p *creds is created when NULL.
 * @param[out] err a message on KV_ERR_BAD_PARAM.
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status pol_creds_add_federated(struct pol_creds **creds, const char *issuer,
                                       const char *subject, const char *audience, const char *jwks,
                                       size_t jwks_len, char *err, size_t cap) KV_MUST_CHECK;

/** @brief How many certificates and federated credentials @p creds holds (NULL: none). */
size_t pol_creds_count(const struct pol_creds *creds, size_t *n_federated);

/**
 * @brief The @p i-th certificate's SHA-1 thumbprint (hex, upper case, as Entra and the
 * portal show it) and validity. @return 0 past the end.
 */
int pol_creds_certificate_at(const struct pol_creds *creds, size_t i, char thumbprint[41],
                             int64_t *not_before, int64_t *not_after);

/**
 * @brief The @p i-th federated credential's issuer, subject and audience (owned by
 * @p creds). @return 0 past the end.
 */
int pol_creds_federated_at(const struct pol_creds *creds, size_t i, const char **issuer,
                           const char **subject, const char **audience);

/** Why a client assertion was refused (the token endpoint answers Entra's error for each).
 * The federated misses come last, in this order: nearer misses compare greater. */
enum pol_assertion {
    POL_ASSERTION_OK = 0,
    POL_ASSERTION_MALFORMED,     /**< not a JWS with JSON header and claims; see detail */
    POL_ASSERTION_NO_THUMBPRINT, /**< a certificate's assertion without x5t or x5t#S256 */
    POL_ASSERTION_KEY_NOT_FOUND, /**< no registered certificate or issuer key matches */
    POL_ASSERTION_BAD_SIGNATURE, /**< the key was found, the signature does not verify */
    POL_ASSERTION_KEY_EXPIRED,   /**< signed by a certificate outside its validity dates */
    POL_ASSERTION_AUDIENCE,      /**< a certificate's assertion not meant for this endpoint */
    POL_ASSERTION_TIME,          /**< now is outside nbf..exp (with POL_ASSERTION_SKEW) */
    POL_ASSERTION_NO_ISSUER,     /**< no federated credential has the assertion's issuer */
    POL_ASSERTION_NO_AUDIENCE,   /**< ... with that issuer, none has its audience */
    POL_ASSERTION_NO_SUBJECT,    /**< ... with that issuer and audience, none has its subject */
    POL_ASSERTION_NOMEM,         /**< out of memory: nothing is known of the assertion */
};

/** What a refused assertion's error message quotes. No part of it is secret. */
struct pol_assertion_info {
    const char *detail; /**< POL_ASSERTION_MALFORMED: what is wrong (static text) */
    int federated;      /**< taken for a federated assertion (not the application's own) */
    char key_id[130];   /**< the thumbprint (hex, upper case) or the issuer key's kid */
    char iss[POL_FEDERATED_FIELD_MAX + 1];
    char sub[POL_FEDERATED_FIELD_MAX + 1];
    char aud[POL_FEDERATED_FIELD_MAX + 1]; /**< the first audience */
    int64_t nbf, exp;                      /**< 0 when absent */
    int64_t key_start, key_end;            /**< POL_ASSERTION_KEY_EXPIRED: the certificate's */
};

/**
 * @brief Check a client assertion presented by @p id. An assertion whose `iss` and `sub`
 * are the identity's client id is the application's own, signed with one of its
 * certificates (RS256 or PS256, found by `x5t` or `x5t#S256`) within its validity dates,
 * and its `aud` must be one
 * of @p endpoints (the token endpoint's URLs; a query string on `aud` is ignored). Any other
 * assertion is a federated one, matched against the identity's federated credentials. Either way
 * `exp` is required and
 * @p now must lie between `nbf` and `exp`.
 * @param[out] info what the error message quotes; always set.
 */
enum pol_assertion pol_assertion_check(const struct pol_identity *id, const char *assertion,
                                       const char *const *endpoints, size_t n_endpoints,
                                       int64_t now, struct pol_assertion_info *info);

/* ---- secure key release: release policies and attestation tokens (release.c) --------------
 *
 * An exportable key carries a release policy (Key Vault's grammar): a list of attestation
 * authorities (Azure Attestation instances), each with conditions on the claims of a token
 * it signed. A release presents such a token; the key is released, wrapped for the RSA key
 * the token names in `x-ms-runtime.keys`, when an authority of the policy signed it and
 * its claims meet that authority's conditions. kvmock fetches nothing: the authorities it
 * trusts, with their signing keys, come from the configuration. */

#define POL_RELEASE_POLICY_MAX 32768 /**< bytes of a release policy document */
#define POL_ATTESTATION_MAX    65536 /**< bytes of an attestation token */
#define POL_AUTHORITIES_MAX    16    /**< attestation authorities kvmock trusts */
#define POL_AUTHORITY_MAX      512   /**< bytes of an authority's URL */
#define POL_RELEASE_KID_MAX    256   /**< bytes of the target key's kid */
#define POL_RELEASE_DEPTH_MAX  8     /**< nesting of anyOf/allOf in a policy */

/**
 * @brief Trust an attestation authority: tokens whose `iss` is @p authority (one trailing
 * slash ignored on either side) are verified with a key of @p jwks, the document the
 * authority publishes at its `jwks_uri` (`{"keys": [...]}`: RSA keys by `n`/`e` or by
 * `x5c`, EC keys on P-256, P-384, P-521; RS, PS and ES signatures).
 * @param[out] err a message on KV_ERR_BAD_PARAM (an authority that is not an https URL,
 *   one already trusted, a bad JWKS, more than POL_AUTHORITIES_MAX).
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status pol_attestation_trust(struct pol_ctx *ctx, const char *authority, const char *jwks,
                                     size_t jwks_len, char *err, size_t cap) KV_MUST_CHECK;

/** @brief The @p i-th trusted authority's URL as given, or NULL past the end. */
const char *pol_attestation_authority_at(const struct pol_ctx *ctx, size_t i);

/**
 * @brief Check a release policy against Key Vault's grammar and write it as Key Vault
 * stores and returns it: compact JSON; "version" then "anyOf"; in each authority object
 * "authority" then its "allOf" or "anyOf"; in each condition "claim" then its operator;
 * the values of `equals` and `notEquals` as strings.
 * @param[out] out the normalized text (malloc()ed, NUL-terminated), set on KV_OK.
 * @param[out] err on KV_ERR_BAD_PARAM, Key Vault's message: "AKV.SKR.1013: Malformed Key
 *   Release Policy - Unable to Json Deserialize the policy object." for text that is not
 *   JSON, else "AKV.SKR.1013: Malformed Key Release Policy - " and what is wrong.
 * @return KV_OK, KV_ERR_BAD_PARAM, KV_ERR_NOMEM.
 */
enum kv_status pol_release_policy_normalize(const char *doc, size_t len, char **out, char *err,
                                            size_t cap) KV_MUST_CHECK;

/** The key a release is wrapped for: the first RSA key of the token's `x-ms-runtime.keys`
 *  whose `use` is "enc" or whose `key_ops` holds "encrypt". */
struct pol_release_target {
    struct kv_buf n, e;            /**< big-endian, owned */
    char kid[POL_RELEASE_KID_MAX]; /**< its `kid`, "" when it has none */
};

/** @brief Free the buffers of @p t. */
void pol_release_target_clear(struct pol_release_target *t);

/** What a release's attestation token came to. */
enum pol_release {
    POL_RELEASE_OK = 0,
    POL_RELEASE_MALFORMED,     /**< not a signed JWT, or over POL_ATTESTATION_MAX */
    POL_RELEASE_NOT_IN_POLICY, /**< its issuer is none of the policy's authorities */
    POL_RELEASE_UNREACHABLE,   /**< the policy names its issuer, but kvmock does not trust
                                    that authority (it can fetch no keys) */
    POL_RELEASE_BAD_SIGNATURE, /**< no key of the authority verifies it (or no key has its
                                    kid, or its alg is not RS/PS/ES) */
    POL_RELEASE_TIME,          /**< no `exp`, or @p now outside `nbf`-`exp` with
                                    POL_ASSERTION_SKEW seconds of skew */
    POL_RELEASE_DENIED,        /**< its claims do not meet the authority's conditions */
    POL_RELEASE_NO_KEY,        /**< no RSA key (2048-4096 bits) fit for encryption */
    POL_RELEASE_NOMEM,
};

/**
 * @brief Decide a release: whether @p token, an attestation token, meets @p policy (a
 * text pol_release_policy_normalize() wrote), and which key the release is wrapped for.
 * The token's `iss` picks the policy's authority object (a trailing slash ignored); the
 * authority must be trusted (pol_attestation_trust()) and one of its keys must verify
 * the token; then the object's conditions are evaluated on the token's claims: a claim
 * is a dotted path through objects, a missing one fails its condition, `equals` and
 * `notEquals` compare text (a boolean claim is "true" or "false", a number its decimal
 * form), `less`, `lessOrEquals`, `greater` and `greaterOrEquals` compare numbers,
 * `exists` tests presence; `allOf` needs every condition, `anyOf` one.
 * @param[in] now Unix seconds (the real clock: tokens come from outside kvmock).
 * @param[out] out the target key, set on POL_RELEASE_OK.
 * @param[out] why on a refusal, a sentence saying what failed (quoting no secret), always
 *   NUL-terminated.
 */
enum pol_release pol_release_check(const struct pol_ctx *ctx, const char *policy, size_t policy_len,
                                   const char *token, int64_t now, struct pol_release_target *out,
                                   char *why, size_t cap);

#endif
