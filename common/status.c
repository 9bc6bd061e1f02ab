#include "kv_status.h"

#include <stddef.h>

#define ROW(st, http, code, inner, msg) [st] = {http, code, inner, msg}

static const struct kv_status_info table[KV_STATUS_COUNT] = {
    ROW(KV_OK, 200, "OK", NULL, "OK"),

    ROW(KV_ERR_BAD_PARAM, 400, "BadParameter", NULL, "The request is invalid."),
    ROW(KV_ERR_BAD_JSON, 400, "BadParameter", NULL, "The request body is not a valid JSON object."),
    ROW(KV_ERR_BODY_TOO_LARGE, 400, "BadParameter", NULL,
        "The request body is larger than the allowed maximum of 1048576 bytes."),
    ROW(KV_ERR_API_VERSION, 400, "BadParameter", NULL,
        "The api-version query parameter is required. Consider using the latest supported "
        "version (2025-07-01)."),
    ROW(KV_ERR_API_VERSION_BAD, 400, "BadParameter", NULL,
        "The specified version is not recognized. Consider using the latest supported version "
        "(2025-07-01)."),
    ROW(KV_ERR_BAD_KEY_NAME, 400, "BadParameter", NULL,
        "The key name is invalid. A key name must be 1-127 characters: letters, digits and "
        "dashes."),
    ROW(KV_ERR_BAD_KTY, 400, "BadParameter", NULL, "The key type (kty) is not supported."),
    ROW(KV_ERR_BAD_KEY_SIZE, 400, "BadParameter", NULL,
        "The key size is not supported for this key type."),
    ROW(KV_ERR_BAD_CURVE, 400, "BadParameter", NULL,
        "The curve (crv) is not supported for this key type."),
    ROW(KV_ERR_BAD_EXPONENT, 400, "BadParameter", NULL,
        "The RSA public exponent is not supported."),
    ROW(KV_ERR_BAD_ALG, 400, "BadParameter", NULL,
        "The algorithm (alg) is not supported for this key."),
    ROW(KV_ERR_BAD_KEY_OPS, 400, "BadParameter", NULL, "The key operation is not recognized."),
    ROW(KV_ERR_BAD_BASE64, 400, "BadParameter", NULL, "A value is not valid base64url."),
    ROW(KV_ERR_BAD_INPUT_LENGTH, 400, "BadParameter", NULL,
        "The length of the input is not valid for this key and algorithm."),
    ROW(KV_ERR_CRYPTO_FAILED, 400, "BadParameter", NULL,
        "The operation failed: the ciphertext or the tag is not valid for this key."),
    ROW(KV_ERR_BAD_JWK, 400, "BadParameter", NULL,
        "The JSON Web Key is incomplete or inconsistent."),
    ROW(KV_ERR_BAD_MAXRESULTS, 400, "BadParameter", NULL,
        "The value of maxresults must be an integer from 1 to 25."),
    ROW(KV_ERR_BAD_SKIPTOKEN, 400, "BadParameter", NULL, "The $skiptoken is not valid."),
    ROW(KV_ERR_BAD_BACKUP, 400, "BadParameter", NULL,
        "The backup blob is corrupt or was not produced by this service."),
    ROW(KV_ERR_BYOK_KEK, 400, "BadParameter", NULL,
        "The key exchange key named in the key transfer blob (header.kid) must be a key of "
        "this vault of type RSA-HSM, enabled, whose only key operation is 'import'."),
    ROW(KV_ERR_BYOK_BLOB, 400, "BadParameter", NULL,
        "The key transfer blob (key_hsm) could not be opened with its key exchange key, or it "
        "does not hold a private key of the type (and curve) of the request."),
    ROW(KV_ERR_SKR_PREMIUM, 400, "BadParameter", NULL,
        "AKV.SKR.1001: The exportable attribute is only supported with premium vaults and API "
        "version >= '7.3-preview'."),
    ROW(KV_ERR_SKR_NO_POLICY, 400, "BadParameter", NULL,
        "AKV.SKR.1004: Exportable keys must have release policy."),
    ROW(KV_ERR_SKR_POLICY_NOT_EXPORTABLE, 400, "BadParameter", NULL,
        "AKV.SKR.1005: Non-exportable keys must not have release policy."),
    ROW(KV_ERR_SKR_NOT_HSM, 400, "BadParameter", NULL,
        "AKV.SKR.1006: Exportable keys must be hardware-protected keys (RSA-HSM, EC-HSM or "
        "oct-HSM)."),
    ROW(KV_ERR_SKR_UNREACHABLE, 400, "BadParameter", NULL,
        "AKV.SKR.1012: The specified attestation service cannot be reached."),
    ROW(KV_ERR_SKR_EXPORTABLE_CHANGE, 400, "BadParameter", NULL,
        "AKV.SKR.1014: Cannot modify the exportable state of a key."),
    ROW(KV_ERR_SKR_IMMUTABLE, 400, "BadParameter", NULL,
        "AKV.SKR.1020: Immutable Key Release Policy cannot be modified."),

    ROW(KV_ERR_UNAUTHORIZED, 401, "Unauthorized", NULL,
        "Request is missing a Bearer or PoP token."),

    ROW(KV_ERR_ACCESS_DENIED, 403, "Forbidden", "AccessDenied",
        "The caller does not have the required permission on this key vault."),
    ROW(KV_ERR_RBAC_DENIED, 403, "Forbidden", "ForbiddenByRbac",
        "Caller is not authorized to perform this action by role assignments."),
    ROW(KV_ERR_FIREWALL_DENIED, 403, "Forbidden", "ForbiddenByFirewall",
        "Client address is not authorized and caller is not a trusted service."),
    ROW(KV_ERR_PUBLIC_DISABLED, 403, "Forbidden", "ForbiddenByConnection",
        "Public network access is disabled and request is not from a trusted service nor via "
        "an approved private link."),
    ROW(KV_ERR_KEY_OP_FORBIDDEN, 403, "Forbidden", "KeyOperationForbidden",
        "The operation is not permitted on this key."),
    ROW(KV_ERR_KEY_DISABLED, 403, "Forbidden", "KeyDisabled",
        "The operation is not allowed on a disabled key."),
    ROW(KV_ERR_KEY_NOT_YET_VALID, 403, "Forbidden", "KeyNotYetValid",
        "The operation is not allowed before the key's activation date (nbf)."),
    ROW(KV_ERR_KEY_EXPIRED, 403, "Forbidden", "KeyExpired",
        "The operation is not allowed on an expired key."),
    ROW(KV_ERR_PURGE_PROTECTED, 403, "Forbidden", NULL,
        "Operation \"purge\" is not allowed because purge protection is enabled for this vault. "
        "Key Vault service will automatically purge it after the retention period has passed."),
    ROW(KV_ERR_KEY_NOT_EXPORTABLE, 403, "Forbidden", NULL,
        "Operation release is not allowed on a key that is not exportable."),
    ROW(KV_ERR_SKR_ATTESTATION, 403, "Forbidden", NULL,
        "Target environment attestation statement cannot be verified."),
    /* Key Vault's wording, as the Azure CLI prints it */
    ROW(KV_ERR_HSM_STANDARD, 403, "Forbidden", NULL,
        "Hardware key operation not allowed on standard vault"),

    ROW(KV_ERR_KEY_NOT_FOUND, 404, "KeyNotFound", NULL, "The key was not found in this key vault."),
    ROW(KV_ERR_DELETED_KEY_NOT_FOUND, 404, "KeyNotFound", NULL, "Deleted Key not found."),
    ROW(KV_ERR_VAULT_NOT_FOUND, 404, "VaultNotFound", NULL, "The vault was not found."),
    ROW(KV_ERR_ROUTE_NOT_FOUND, 404, "NotFound", NULL,
        "The requested resource path was not found."),

    ROW(KV_ERR_METHOD_NOT_ALLOWED, 405, "MethodNotAllowed", NULL,
        "The HTTP method is not allowed on this resource."),

    ROW(KV_ERR_KEY_DELETED_RECOVERABLE, 409, "Conflict", "ObjectIsDeletedButRecoverable",
        "The key is currently in a deleted but recoverable state, and its name cannot be "
        "reused; in this state, the key can only be recovered or purged."),
    ROW(KV_ERR_KEY_EXISTS, 409, "Conflict", NULL, "A key with this name already exists."),
    ROW(KV_ERR_RELEASE_POLICY_CHANGED, 409, "Conflict", NULL,
        "The key's release policy was changed while the key was being released. Try again."),

    ROW(KV_ERR_ARM_BAD_REQUEST, 400, "BadRequest", NULL, "The request is not valid."),
    ROW(KV_ERR_ARM_UNAUTHORIZED, 401, "InvalidAuthenticationToken", NULL,
        "The access token is missing, invalid, expired, or not for https://management.azure.com."),
    ROW(KV_ERR_ARM_FORBIDDEN, 403, "AuthorizationFailed", NULL,
        "The client does not have authorization to perform this action."),
    ROW(KV_ERR_ARM_NOT_FOUND, 404, "ResourceNotFound", NULL, "The resource was not found."),
    ROW(KV_ERR_ARM_CONFLICT, 409, "Conflict", NULL, "The request conflicts with the resource."),
    ROW(KV_ERR_VAULT_DELETED, 409, "ConflictError", NULL,
        "A vault with the same name already exists in deleted state. You need to either recover "
        "or purge existing key vault. Follow this link "
        "https://go.microsoft.com/fwlink/?linkid=2149745 for more information on soft delete."),
    ROW(KV_ERR_ARM_NO_DELETED_VAULT, 400, "SoftDeletedVaultDoesNotExist", NULL,
        "A soft deleted vault with the given name does not exist. Ensure that the name for the "
        "vault that is being attempted to recover is in a recoverable state."),
    ROW(KV_ERR_ARM_PURGE_NOT_ALLOWED, 405, "MethodNotAllowed", NULL,
        "Operation 'DeletedVaultPurge' is not allowed."),
    ROW(KV_ERR_ARM_NO_SUBSCRIPTION, 404, "SubscriptionNotFound", NULL,
        "The subscription could not be found."),
    ROW(KV_ERR_ARM_NO_LOCATION, 400, "LocationRequired", NULL,
        "The location property is required for this definition."),
    ROW(KV_ERR_ARM_NO_GROUP, 404, "ResourceGroupNotFound", NULL,
        "The resource group could not be found."),
    ROW(KV_ERR_ARM_GROUP_LOCATION, 409, "InvalidResourceGroupLocation", NULL,
        "The resource group already exists in another location."),
    ROW(KV_ERR_ARM_VAULT_EXISTS, 409, "VaultAlreadyExists", NULL,
        "The vault name is already in use. Vault names are globally unique."),
    ROW(KV_ERR_ARM_VAULT_NAME, 400, "VaultNameNotValid", NULL,
        "A vault's name must be between 3-24 alphanumeric characters. The name must begin with "
        "a letter, end with a letter or digit, and not contain consecutive hyphens."),
    ROW(KV_ERR_ARM_ROLE_EXISTS, 409, "RoleAssignmentExists", NULL,
        "The role assignment already exists."),
    ROW(KV_ERR_ARM_ROLE_UPDATE, 400, "RoleAssignmentUpdateNotPermitted", NULL,
        "Tenant ID, application ID, principal ID, and scope are not allowed to be updated."),
    ROW(KV_ERR_ARM_ROLE_ID, 400, "InvalidRoleAssignmentId", NULL,
        "The role assignment ID is not valid. The role assignment ID must be a GUID."),
    ROW(KV_ERR_ARM_NO_ROLE_DEFINITION, 404, "RoleDefinitionDoesNotExist", NULL,
        "The specified role definition does not exist."),
    ROW(KV_ERR_ARM_NO_ROLE_ASSIGNMENT, 404, "RoleAssignmentNotFound", NULL,
        "The role assignment does not exist."),
    ROW(KV_ERR_ARM_TOKEN_AUDIENCE, 401, "InvalidAuthenticationTokenAudience", NULL,
        "The access token has been obtained for wrong audience or resource."),
    ROW(KV_ERR_ARM_RBAC_DENIED, 400, "ForbiddenByRbac", NULL,
        "Caller is not authorized to perform action on resource."),
    ROW(KV_ERR_ARM_TOKEN_TENANT, 401, "InvalidAuthenticationTokenTenant", NULL,
        "The access token is from the wrong issuer."),
    ROW(KV_ERR_ARM_PRINCIPAL_TYPE, 400, "UnmatchedPrincipalType", NULL,
        "The principal's type is different from the specified principal type."),
    ROW(KV_ERR_ARM_ROLE_NAME_EXISTS, 409, "RoleDefinitionWithSameNameExists", NULL,
        "A custom role with the same name already exists in this directory."),
    ROW(KV_ERR_ARM_ROLE_IN_USE, 409, "RoleDefinitionHasAssignments", NULL,
        "There are existing role assignments referencing role."),

    ROW(KV_ERR_NOMEM, 500, "InternalServerError", NULL, "The server ran out of memory."),
    ROW(KV_ERR_STORE, 500, "InternalServerError", NULL, "The key store failed."),
    ROW(KV_ERR_CRYPTO, 500, "InternalServerError", NULL, "A cryptographic operation failed."),
    ROW(KV_ERR_INTERNAL, 500, "InternalServerError", NULL, "An internal error occurred."),
    /* kvmock's own condition, which Key Vault never meets: 507 says what it is. The SDKs
     * retry it, then report this message: @azure/core-rest-pipeline as a 500; azure-core
     * for Python for GET, PUT and DELETE only, where it retries a 500 for POST and PATCH
     * too (so a create or an update that cannot be stored fails at once) */
    ROW(KV_ERR_STORE_FULL, 507, "InsufficientStorage", NULL,
        "kvmock cannot write to its data folder: its file system is full, or the store file "
        "reached a limit on its size. Nothing was changed."),
};

#define NAME(st) [st] = #st

static const char *const names[KV_STATUS_COUNT] = {
    NAME(KV_OK),
    NAME(KV_ERR_BAD_PARAM),
    NAME(KV_ERR_BAD_JSON),
    NAME(KV_ERR_BODY_TOO_LARGE),
    NAME(KV_ERR_API_VERSION),
    NAME(KV_ERR_API_VERSION_BAD),
    NAME(KV_ERR_BAD_KEY_NAME),
    NAME(KV_ERR_BAD_KTY),
    NAME(KV_ERR_BAD_KEY_SIZE),
    NAME(KV_ERR_BAD_CURVE),
    NAME(KV_ERR_BAD_EXPONENT),
    NAME(KV_ERR_BAD_ALG),
    NAME(KV_ERR_BAD_KEY_OPS),
    NAME(KV_ERR_BAD_BASE64),
    NAME(KV_ERR_BAD_INPUT_LENGTH),
    NAME(KV_ERR_CRYPTO_FAILED),
    NAME(KV_ERR_BAD_JWK),
    NAME(KV_ERR_BAD_MAXRESULTS),
    NAME(KV_ERR_BAD_SKIPTOKEN),
    NAME(KV_ERR_BAD_BACKUP),
    NAME(KV_ERR_BYOK_KEK),
    NAME(KV_ERR_BYOK_BLOB),
    NAME(KV_ERR_SKR_PREMIUM),
    NAME(KV_ERR_SKR_NO_POLICY),
    NAME(KV_ERR_SKR_POLICY_NOT_EXPORTABLE),
    NAME(KV_ERR_SKR_NOT_HSM),
    NAME(KV_ERR_SKR_UNREACHABLE),
    NAME(KV_ERR_SKR_EXPORTABLE_CHANGE),
    NAME(KV_ERR_SKR_IMMUTABLE),
    NAME(KV_ERR_UNAUTHORIZED),
    NAME(KV_ERR_ACCESS_DENIED),
    NAME(KV_ERR_RBAC_DENIED),
    NAME(KV_ERR_FIREWALL_DENIED),
    NAME(KV_ERR_PUBLIC_DISABLED),
    NAME(KV_ERR_KEY_OP_FORBIDDEN),
    NAME(KV_ERR_KEY_DISABLED),
    NAME(KV_ERR_KEY_NOT_YET_VALID),
    NAME(KV_ERR_KEY_EXPIRED),
    NAME(KV_ERR_PURGE_PROTECTED),
    NAME(KV_ERR_KEY_NOT_EXPORTABLE),
    NAME(KV_ERR_SKR_ATTESTATION),
    NAME(KV_ERR_HSM_STANDARD),
    NAME(KV_ERR_KEY_NOT_FOUND),
    NAME(KV_ERR_DELETED_KEY_NOT_FOUND),
    NAME(KV_ERR_VAULT_NOT_FOUND),
    NAME(KV_ERR_ROUTE_NOT_FOUND),
    NAME(KV_ERR_METHOD_NOT_ALLOWED),
    NAME(KV_ERR_KEY_DELETED_RECOVERABLE),
    NAME(KV_ERR_KEY_EXISTS),
    NAME(KV_ERR_RELEASE_POLICY_CHANGED),
    NAME(KV_ERR_ARM_BAD_REQUEST),
    NAME(KV_ERR_ARM_UNAUTHORIZED),
    NAME(KV_ERR_ARM_FORBIDDEN),
    NAME(KV_ERR_ARM_NOT_FOUND),
    NAME(KV_ERR_ARM_CONFLICT),
    NAME(KV_ERR_VAULT_DELETED),
    NAME(KV_ERR_ARM_NO_DELETED_VAULT),
    NAME(KV_ERR_ARM_PURGE_NOT_ALLOWED),
    NAME(KV_ERR_ARM_NO_SUBSCRIPTION),
    NAME(KV_ERR_ARM_NO_LOCATION),
    NAME(KV_ERR_ARM_NO_GROUP),
    NAME(KV_ERR_ARM_GROUP_LOCATION),
    NAME(KV_ERR_ARM_VAULT_EXISTS),
    NAME(KV_ERR_ARM_VAULT_NAME),
    NAME(KV_ERR_ARM_ROLE_EXISTS),
    NAME(KV_ERR_ARM_ROLE_UPDATE),
    NAME(KV_ERR_ARM_ROLE_ID),
    NAME(KV_ERR_ARM_NO_ROLE_DEFINITION),
    NAME(KV_ERR_ARM_NO_ROLE_ASSIGNMENT),
    NAME(KV_ERR_ARM_TOKEN_AUDIENCE),
    NAME(KV_ERR_ARM_RBAC_DENIED),
    NAME(KV_ERR_ARM_TOKEN_TENANT),
    NAME(KV_ERR_ARM_PRINCIPAL_TYPE),
    NAME(KV_ERR_ARM_ROLE_NAME_EXISTS),
    NAME(KV_ERR_ARM_ROLE_IN_USE),
    NAME(KV_ERR_NOMEM),
    NAME(KV_ERR_STORE),
    NAME(KV_ERR_CRYPTO),
    NAME(KV_ERR_INTERNAL),
    NAME(KV_ERR_STORE_FULL),
};

const struct kv_status_info *kv_status_info(enum kv_status st)
{
    if ((unsigned)st >= KV_STATUS_COUNT)
        st = KV_ERR_INTERNAL;
    return &table[st];
}

const char *kv_status_name(enum kv_status st)
{
    if ((unsigned)st >= KV_STATUS_COUNT)
        return "KV_STATUS_UNKNOWN";
    return names[st];
}
