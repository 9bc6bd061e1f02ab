/**
 * @file kv_status.h
 * @brief The one status type of kvmock and its table.
 *
 * Every function that can fail returns an `enum kv_status`. One table maps
 * each status to the HTTP status, the Key Vault error code, the optional
 * inner error code and a default message. Only the server's error writer
 * turns a status into a response body; no other code writes status codes.
 */
#ifndef KV_STATUS_H
#define KV_STATUS_H

#define KV_MUST_CHECK __attribute__((warn_unused_result))

enum kv_status {
    KV_OK = 0,

    /* 400 BadParameter */
    KV_ERR_BAD_PARAM,        /**< generic bad input; the caller supplies the message */
    KV_ERR_BAD_JSON,         /**< the body is not valid JSON or not an object */
    KV_ERR_BODY_TOO_LARGE,   /**< the body exceeds the size cap */
    KV_ERR_API_VERSION,      /**< api-version missing */
    KV_ERR_API_VERSION_BAD,  /**< api-version not recognized */
    KV_ERR_BAD_KEY_NAME,     /**< key name does not match ^[0-9a-zA-Z-]{1,127}$ */
    KV_ERR_BAD_KTY,          /**< unknown or unsupported key type */
    KV_ERR_BAD_KEY_SIZE,     /**< key size not allowed for the key type */
    KV_ERR_BAD_CURVE,        /**< unknown curve */
    KV_ERR_BAD_EXPONENT,     /**< RSA public exponent not allowed */
    KV_ERR_BAD_ALG,          /**< unknown algorithm, or one that does not apply to the key */
    KV_ERR_BAD_KEY_OPS,      /**< unknown key operation name */
    KV_ERR_BAD_BASE64,       /**< a binary field is not valid base64url */
    KV_ERR_BAD_INPUT_LENGTH, /**< value, digest, iv or tag of the wrong length */
    KV_ERR_CRYPTO_FAILED,    /**< decrypt or unwrap failed (corrupt ciphertext or tag) */
    KV_ERR_BAD_JWK,          /**< an imported JWK is incomplete or inconsistent */
    KV_ERR_BAD_MAXRESULTS,   /**< maxresults outside 1..25 */
    KV_ERR_BAD_SKIPTOKEN,    /**< $skiptoken is not one kvmock issued */
    KV_ERR_BAD_BACKUP,       /**< a backup blob is corrupt or from another server */
    KV_ERR_BYOK_KEK,  /**< a BYOK blob's key exchange key is not an import-only RSA key here */
    KV_ERR_BYOK_BLOB, /**< a BYOK blob cannot be opened, or holds another kind of key */
    /* secure key release: Key Vault's AKV.SKR codes */
    KV_ERR_SKR_PREMIUM,               /**< exportable key outside a premium vault (AKV.SKR.1001) */
    KV_ERR_SKR_NO_POLICY,             /**< exportable key without a release policy (1004) */
    KV_ERR_SKR_POLICY_NOT_EXPORTABLE, /**< release policy on a non-exportable key (1005) */
    KV_ERR_SKR_NOT_HSM,           /**< exportable key of a software type (RSA, EC, oct) (1006) */
    KV_ERR_SKR_UNREACHABLE,       /**< the policy's attestation authority is unknown (1012) */
    KV_ERR_SKR_EXPORTABLE_CHANGE, /**< an update that changes `exportable` (1014) */
    KV_ERR_SKR_IMMUTABLE,         /**< an update of an immutable release policy (1020) */

    /* 401 */
    KV_ERR_UNAUTHORIZED, /**< no, malformed, expired or foreign bearer token */

    /* 403 Forbidden */
    KV_ERR_ACCESS_DENIED,      /**< access policy denies the permission */
    KV_ERR_RBAC_DENIED,        /**< role assignments deny the data action */
    KV_ERR_FIREWALL_DENIED,    /**< the vault's network rules do not let the client in */
    KV_ERR_PUBLIC_DISABLED,    /**< the vault's public network access is disabled */
    KV_ERR_KEY_OP_FORBIDDEN,   /**< the operation is not in the version's key_ops */
    KV_ERR_KEY_DISABLED,       /**< the key version is disabled */
    KV_ERR_KEY_NOT_YET_VALID,  /**< now is before the version's nbf */
    KV_ERR_KEY_EXPIRED,        /**< now is after the version's exp */
    KV_ERR_PURGE_PROTECTED,    /**< purge refused under purge protection */
    KV_ERR_KEY_NOT_EXPORTABLE, /**< release of a key that is not exportable */
    KV_ERR_SKR_ATTESTATION,    /**< the attestation token does not meet the release policy */
    KV_ERR_HSM_STANDARD,       /**< a hardware key (RSA-HSM, EC-HSM, oct-HSM) in a standard vault */

    /* 404 */
    KV_ERR_KEY_NOT_FOUND,         /**< key or version not found */
    KV_ERR_DELETED_KEY_NOT_FOUND, /**< no deleted key with that name */
    KV_ERR_VAULT_NOT_FOUND,       /**< the Host names a vault that does not exist */
    KV_ERR_ROUTE_NOT_FOUND,       /**< no route matches the path */

    /* 405 */
    KV_ERR_METHOD_NOT_ALLOWED, /**< the path exists but not with this method */

    /* 409 Conflict */
    KV_ERR_KEY_DELETED_RECOVERABLE, /**< the name is soft-deleted */
    KV_ERR_KEY_EXISTS,              /**< restore onto an existing name */
    KV_ERR_RELEASE_POLICY_CHANGED,  /**< a release raced an update of the release policy */

    /* Azure Resource Manager (the management plane) */
    KV_ERR_ARM_BAD_REQUEST,        /**< 400 BadRequest: a management request body or parameter */
    KV_ERR_ARM_UNAUTHORIZED,       /**< 401 InvalidAuthenticationToken */
    KV_ERR_ARM_FORBIDDEN,          /**< 403 AuthorizationFailed: the caller may not manage */
    KV_ERR_ARM_NOT_FOUND,          /**< 404 ResourceNotFound */
    KV_ERR_ARM_CONFLICT,           /**< 409 Conflict */
    KV_ERR_VAULT_DELETED,          /**< 409 ConflictError: a deleted vault holds the name */
    KV_ERR_ARM_NO_DELETED_VAULT,   /**< 400 SoftDeletedVaultDoesNotExist: nothing to recover */
    KV_ERR_ARM_PURGE_NOT_ALLOWED,  /**< 405 MethodNotAllowed: purge under purge protection */
    KV_ERR_ARM_NO_SUBSCRIPTION,    /**< 404 SubscriptionNotFound */
    KV_ERR_ARM_NO_LOCATION,        /**< 400 LocationRequired: a vault PUT without one */
    KV_ERR_ARM_NO_GROUP,           /**< 404 ResourceGroupNotFound */
    KV_ERR_ARM_GROUP_LOCATION,     /**< 409 InvalidResourceGroupLocation: it is elsewhere */
    KV_ERR_ARM_VAULT_EXISTS,       /**< 409 VaultAlreadyExists: another group holds the name */
    KV_ERR_ARM_VAULT_NAME,         /**< 400 VaultNameNotValid: not a name Azure gives a vault */
    KV_ERR_ARM_ROLE_EXISTS,        /**< 409 RoleAssignmentExists: same principal, role, scope */
    KV_ERR_ARM_ROLE_UPDATE,        /**< 400 RoleAssignmentUpdateNotPermitted */
    KV_ERR_ARM_ROLE_ID,            /**< 400 InvalidRoleAssignmentId: the name is not a GUID */
    KV_ERR_ARM_NO_ROLE_DEFINITION, /**< 404 RoleDefinitionDoesNotExist */
    KV_ERR_ARM_NO_ROLE_ASSIGNMENT, /**< 404 RoleAssignmentNotFound (at the scope asked) */
    KV_ERR_ARM_TOKEN_AUDIENCE,     /**< 401 InvalidAuthenticationTokenAudience */
    KV_ERR_ARM_RBAC_DENIED,        /**< 400 ForbiddenByRbac: Key Vault's refusal, through ARM */
    KV_ERR_ARM_TOKEN_TENANT,       /**< 401 InvalidAuthenticationTokenTenant */
    KV_ERR_ARM_PRINCIPAL_TYPE,     /**< 400 UnmatchedPrincipalType */
    KV_ERR_ARM_ROLE_NAME_EXISTS,   /**< 409 RoleDefinitionWithSameNameExists */
    KV_ERR_ARM_ROLE_IN_USE,        /**< 409 RoleDefinitionHasAssignments: deleting a used role */
    KV_ERR_HSM_NO_ROLE_DEFINITION, /**< 404 RoleDefinitionNotFound: a Managed HSM's */
    KV_ERR_HSM_ACCESS_DENIED,      /**< 403 AccessDenied: a Managed HSM's local roles refuse */
    KV_ERR_BACKUP_KIND,       /**< 400 BadParameter: a vault's backup to an HSM, or the reverse */
    KV_ERR_HSM_BAD_REQUEST,   /**< 400 BadRequest: a Managed HSM's backup or restore refused */
    KV_ERR_HSM_JOB_NOT_FOUND, /**< 404 NotFound: no such backup or restore job */
    KV_ERR_HSM_SETTING_NOT_FOUND, /**< 404 SettingNotFound: no such Managed HSM setting */
    KV_ERR_HSM_ARM_KEYS, /**< 403 Forbidden: an HSM's keys through Resource Manager, not allowed */

    /* 500 */
    KV_ERR_NOMEM,    /**< allocation failed */
    KV_ERR_STORE,    /**< LMDB or file system failure */
    KV_ERR_CRYPTO,   /**< an OpenSSL or libsodium call failed unexpectedly */
    KV_ERR_INTERNAL, /**< anything else that is kvmock's fault */

    /* 507 */
    KV_ERR_STORE_FULL, /**< the data folder cannot grow: file system full, quota, file size limit */

    KV_STATUS_COUNT
};

/** One row of the status table. All strings are static. */
struct kv_status_info {
    int http_status;        /**< HTTP status code */
    const char *code;       /**< Key Vault error code, e.g. "BadParameter" */
    const char *inner_code; /**< innererror code, or NULL when there is none */
    const char *message;    /**< default message, used when the caller has no better one */
};

/**
 * @brief Look up a status in the table.
 * @param[in] st any status; an out-of-range value maps to KV_ERR_INTERNAL.
 * @return a pointer to a static row; never NULL.
 */
const struct kv_status_info *kv_status_info(enum kv_status st);

/** @brief The symbolic name of a status ("KV_ERR_BAD_PARAM"), for logs and tests. */
const char *kv_status_name(enum kv_status st);

#endif
