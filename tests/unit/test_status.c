/* The status table: every status has an HTTP status, a code and a message. */
#include <string.h>

#include "check.h"
#include "kv_status.h"

static void row(enum kv_status st, int http, const char *code, const char *inner)
{
    const struct kv_status_info *i = kv_status_info(st);
    if (i->http_status != http) {
        fprintf(stderr, "%s: http %d, want %d\n", kv_status_name(st), i->http_status, http);
        check_failures++;
    }
    CHECK_STR(i->code, code);
    if (inner == NULL)
        CHECK(i->inner_code == NULL);
    else
        CHECK_STR(i->inner_code, inner);
    CHECK(i->message != NULL && i->message[0] != '\0');
}

int main(void)
{
    for (int st = KV_OK; st < KV_STATUS_COUNT; st++) {
        const struct kv_status_info *i = kv_status_info((enum kv_status)st);
        CHECK(i != NULL && i->code != NULL && i->message != NULL);
        CHECK(i->http_status >= 200 && i->http_status < 600);
        CHECK(strncmp(kv_status_name((enum kv_status)st), "KV_", 3) == 0);
        /* client errors must never be 5xx: the SDKs retry those with back-off */
        if (st >= KV_ERR_BAD_PARAM && st <= KV_ERR_SKR_IMMUTABLE)
            CHECK(i->http_status == 400);
    }
    row(KV_ERR_BAD_PARAM, 400, "BadParameter", NULL);
    row(KV_ERR_API_VERSION_BAD, 400, "BadParameter", NULL);
    row(KV_ERR_UNAUTHORIZED, 401, "Unauthorized", NULL);
    row(KV_ERR_ACCESS_DENIED, 403, "Forbidden", "AccessDenied");
    row(KV_ERR_FIREWALL_DENIED, 403, "Forbidden", "ForbiddenByFirewall");
    row(KV_ERR_PUBLIC_DISABLED, 403, "Forbidden", "ForbiddenByConnection");
    row(KV_ERR_RBAC_DENIED, 403, "Forbidden", "ForbiddenByRbac");
    row(KV_ERR_KEY_OP_FORBIDDEN, 403, "Forbidden", "KeyOperationForbidden");
    /* secure key release: Key Vault's AKV.SKR codes lead its messages */
    row(KV_ERR_SKR_PREMIUM, 400, "BadParameter", NULL);
    row(KV_ERR_SKR_IMMUTABLE, 400, "BadParameter", NULL);
    CHECK(strncmp(kv_status_info(KV_ERR_SKR_NO_POLICY)->message, "AKV.SKR.1004: ", 14) == 0);
    CHECK(strncmp(kv_status_info(KV_ERR_SKR_EXPORTABLE_CHANGE)->message, "AKV.SKR.1014: ", 14) ==
          0);
    row(KV_ERR_SKR_ATTESTATION, 403, "Forbidden", NULL);
    row(KV_ERR_HSM_STANDARD, 403, "Forbidden", NULL);
    row(KV_ERR_KEY_NOT_EXPORTABLE, 403, "Forbidden", NULL);
    row(KV_ERR_RELEASE_POLICY_CHANGED, 409, "Conflict", NULL);
    row(KV_ERR_KEY_NOT_FOUND, 404, "KeyNotFound", NULL);
    row(KV_ERR_VAULT_NOT_FOUND, 404, "VaultNotFound", NULL);
    row(KV_ERR_ROUTE_NOT_FOUND, 404, "NotFound", NULL);
    row(KV_ERR_METHOD_NOT_ALLOWED, 405, "MethodNotAllowed", NULL);
    row(KV_ERR_KEY_DELETED_RECOVERABLE, 409, "Conflict", "ObjectIsDeletedButRecoverable");
    /* the management plane speaks Resource Manager's codes */
    row(KV_ERR_ARM_UNAUTHORIZED, 401, "InvalidAuthenticationToken", NULL);
    row(KV_ERR_ARM_FORBIDDEN, 403, "AuthorizationFailed", NULL);
    row(KV_ERR_ARM_NOT_FOUND, 404, "ResourceNotFound", NULL);
    row(KV_ERR_ARM_NO_SUBSCRIPTION, 404, "SubscriptionNotFound", NULL);
    row(KV_ERR_ARM_NO_LOCATION, 400, "LocationRequired", NULL);
    row(KV_ERR_ARM_NO_GROUP, 404, "ResourceGroupNotFound", NULL);
    row(KV_ERR_ARM_GROUP_LOCATION, 409, "InvalidResourceGroupLocation", NULL);
    row(KV_ERR_ARM_VAULT_EXISTS, 409, "VaultAlreadyExists", NULL);
    row(KV_ERR_ARM_VAULT_NAME, 400, "VaultNameNotValid", NULL);
    row(KV_ERR_ARM_ROLE_EXISTS, 409, "RoleAssignmentExists", NULL);
    row(KV_ERR_ARM_ROLE_UPDATE, 400, "RoleAssignmentUpdateNotPermitted", NULL);
    row(KV_ERR_ARM_ROLE_ID, 400, "InvalidRoleAssignmentId", NULL);
    row(KV_ERR_ARM_NO_ROLE_DEFINITION, 404, "RoleDefinitionDoesNotExist", NULL);
    row(KV_ERR_ARM_NO_ROLE_ASSIGNMENT, 404, "RoleAssignmentNotFound", NULL);
    row(KV_ERR_ARM_TOKEN_AUDIENCE, 401, "InvalidAuthenticationTokenAudience", NULL);
    row(KV_ERR_ARM_RBAC_DENIED, 400, "ForbiddenByRbac", NULL);
    row(KV_ERR_ARM_TOKEN_TENANT, 401, "InvalidAuthenticationTokenTenant", NULL);
    row(KV_ERR_ARM_PRINCIPAL_TYPE, 400, "UnmatchedPrincipalType", NULL);
    CHECK(kv_status_info(KV_ERR_NOMEM)->http_status == 500);
    /* out-of-range values map to something printable */
    CHECK(kv_status_info((enum kv_status)9999) != NULL);
    CHECK(kv_status_name((enum kv_status)9999) != NULL);
    CHECK_DONE();
}
