/**
 * @file pol.h
 * @brief Identities, tokens and authorization.
 *
 * kvmock is its own identity provider: it issues HS256 JWTs for its
 * identities and accepts only tokens it signed. The evaluator pol_allowed()
 * decides whether an authenticated caller may use a permission on a vault.
 * This layer knows nothing of HTTP and does no crypto on keys.
 */
#ifndef POL_H
#define POL_H

#include <stddef.h>
#include <stdint.h>

#include "ks.h"
#include "kv_status.h"

#define POL_ID_MAX 64
#define POL_AUD_MAX 256

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
    POL_PERM_COUNT
};

/** @brief The access-policy spelling of a permission ("wrapKey"). Static string. */
const char *pol_perm_name(enum pol_perm perm);

/** An identity kvmock issues tokens for. */
struct pol_identity {
    char name[POL_ID_MAX];
    char object_id[POL_ID_MAX];
    char client_id[POL_ID_MAX];
    char tenant_id[POL_ID_MAX];
    char resource_id[512];
    char client_secret[256]; /**< "" for managed identities */
    int is_default;
    int manage;
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
 * empty resource_id takes the default user-assigned identity resource id.
 * @return KV_OK, KV_ERR_BAD_PARAM (duplicate object or client id, or a second
 *   default), KV_ERR_NOMEM.
 */
enum kv_status pol_add_identity(struct pol_ctx *ctx, const struct pol_identity *id) KV_MUST_CHECK;

/**
 * @brief Find a managed identity by client id, object id or resource id (at most
 * one non-NULL); with all NULL, the default identity.
 * @return the identity (owned by the context) or NULL.
 */
const struct pol_identity *pol_find_identity(const struct pol_ctx *ctx, const char *client_id,
                                             const char *object_id, const char *resource_id);

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
 * time), `nbf <= now < exp`, and an audience among @p auds (a trailing slash is
 * ignored on both sides).
 * @param[out] out the claims, set only on success.
 * @return KV_OK or KV_ERR_UNAUTHORIZED.
 */
enum kv_status pol_token_verify(const struct pol_ctx *ctx, const char *token, int64_t now,
                                const char *const *auds, size_t n_auds,
                                struct pol_claims *out) KV_MUST_CHECK;

/**
 * @brief Decide whether @p who may use @p perm on @p vault (and, for a key
 * scope, on the key @p key_name, which may be NULL).
 * @return KV_OK, KV_ERR_UNAUTHORIZED (token from another tenant),
 *   KV_ERR_ACCESS_DENIED.
 */
enum kv_status pol_allowed(const struct pol_ctx *ctx, const struct pol_claims *who,
                           const struct ks_vault *vault, const char *key_name,
                           enum pol_perm perm) KV_MUST_CHECK;

#endif
