/* Policy-internal definitions shared by the policy sources. */
#ifndef POL_INTERNAL_H
#define POL_INTERNAL_H

#include <pthread.h>
#include <sodium.h>

#include "pol.h"

#define POL_SECRET_LEN crypto_auth_hmacsha256_KEYBYTES

/* Tokens whose signature verified, with their claims (token.c). */
#define POL_TOKEN_CACHE_SLOTS 256
#define POL_TOKEN_CACHE_LEN 2048 /**< longer tokens are verified every time */
struct pol_token_slot {
    pthread_mutex_t mu;
    size_t len; /**< 0: empty */
    char token[POL_TOKEN_CACHE_LEN];
    struct pol_claims claims;
};

struct pol_ctx {
    char tenant_id[POL_ID_MAX];
    struct pol_token_slot *token_cache; /**< POL_TOKEN_CACHE_SLOTS slots */
    unsigned char *secret; /**< sodium_malloc'd token signing key */
    struct pol_identity *ids;
    size_t n_ids;

    /* Access policies and role assignments: LMDB is the truth, these arrays a
     * snapshot that the evaluator reads under the read lock. */
    struct ks_env *ks;
    pthread_rwlock_t lock;
    struct pol_access_policy *policies;
    size_t n_policies;
    struct pol_role_assignment *roles;
    size_t n_roles;
    /* Custom role definitions (roledefs.c), in GUID order, under the same lock. */
    struct pol_role_def *defs;
    size_t n_defs;

    /* Attestation authorities trusted for secure key release (release.c): set up with the
     * configuration, before any request, and read without a lock. */
    struct pol_authority *authorities;
    size_t n_authorities;
};

/* ---- custom role definitions (roledefs.c) ---- */

/** @brief Whether a role table key is a custom role definition's (else an assignment's). */
int pol_defs_record(const void *key, size_t key_len);
/** The size of a custom role definition's key in the role table. */
#define POL_DEF_KEY_MAX (5 + POL_ID_MAX)
/** @brief The role table key of custom role definition @p guid (lowercase). @return its
 * length. */
size_t pol_def_key(const char *guid, char out[POL_DEF_KEY_MAX]);
/** @brief Append the definition of record @p val to @p defs (a record that cannot be read
 * is skipped). @return KV_OK or KV_ERR_NOMEM. */
enum kv_status pol_defs_load(const void *val, size_t len, struct pol_role_def **defs,
                             size_t *n) KV_MUST_CHECK;
/** @brief The definitions after Managed HSM @p hsm's are replaced by @p add: a new array
 * (release with free() alone) whose entries share their docs with the current ones and
 * with @p add, which stays the caller's until pol_defs_install() takes it. Lock held.
 * @return KV_OK or KV_ERR_NOMEM. */
enum kv_status pol_defs_next(const struct pol_ctx *ctx, const char *hsm,
                             const struct pol_role_def *add, size_t n_add,
                             struct pol_role_def **out, size_t *n) KV_MUST_CHECK;
/** @brief Make @p next (pol_defs_next()'s) the definitions: @p hsm's current ones and the
 * old array are freed, and @p next's entries (the docs of @p add included) are the
 * context's from now on. Write lock held; cannot fail. */
void pol_defs_install(struct pol_ctx *ctx, const char *hsm, struct pol_role_def *next, size_t n);
/** @brief What custom definition @p guid grants on keys (0: none such). Lock held. */
pol_perms pol_def_perms_locked(const struct pol_ctx *ctx, const char *guid);
/** @brief Whether custom definition @p guid exists, of Managed HSM @p hsm ("": Resource
 * Manager's). Lock held. */
int pol_def_exists_locked(const struct pol_ctx *ctx, const char *guid, const char *hsm);

/** @brief Whether @p text names the role @p name (any case), or its GUID @p id (any case;
 * alone, or ending a roleDefinitionId path) (acl.c). */
int pol_role_text_is(const char *text, const char *name, const char *id);

/* ---- Managed HSM's local roles (hsm.c) ---- */

/** @brief A local role's name, GUID and grant; NULL (0) for any other role. */
const char *pol_hsm_role_name(enum pol_role role);
const char *pol_hsm_role_id(enum pol_role role);
pol_perms pol_hsm_role_perms(enum pol_role role);

/** @brief Free the trusted attestation authorities (release.c). */
void pol_release_free_authorities(struct pol_ctx *ctx);

#endif
