/*
 * Managed HSM's built-in local roles: their names, GUIDs and data actions, as a Managed
 * HSM lists them (in the reverse order of this table). What each grants is computed once from its
 * data actions (pol_hsm_actions_perms), so the table is the one source of both.
 */
#include <pthread.h>
#include <string.h>

#include "internal.h"

#define HSM        "Microsoft.KeyVault/managedHsm/"
#define ROLE_COUNT (POL_ROLE_HSM_END - POL_ROLE_HSM_FIRST)

static const char *const administrator[] = {
    HSM "roleAssignments/delete/action",
    HSM "roleAssignments/read/action",
    HSM "roleAssignments/write/action",
    HSM "roleDefinitions/read/action",
    HSM "roleDefinitions/write/action",
    HSM "roleDefinitions/delete/action",
    HSM "securitydomain/download/action",
    HSM "securitydomain/download/read",
    HSM "securitydomain/upload/action",
    HSM "securitydomain/upload/read",
    HSM "securitydomain/transferkey/read",
    HSM "backup/start/action",
    HSM "restore/start/action",
    HSM "backup/status/action",
    HSM "restore/status/action",
    HSM "settings/read/action",
    HSM "settings/write/action",
    NULL,
};

static const char *const crypto_officer[] = {
    HSM "roleAssignments/delete/action",
    HSM "roleAssignments/read/action",
    HSM "roleAssignments/write/action",
    HSM "roleDefinitions/read/action",
    HSM "roleDefinitions/write/action",
    HSM "roleDefinitions/delete/action",
    HSM "keys/deletedKeys/read/action",
    HSM "keys/deletedKeys/delete",
    HSM "keys/deletedKeys/recover/action",
    HSM "keys/export/action",
    NULL,
};

static const char *const crypto_user[] = {
    HSM "roleDefinitions/read/action",
    HSM "roleAssignments/read/action",
    HSM "keys/read/action",
    HSM "keys/write/action",
    HSM "keys/delete",
    HSM "keys/create",
    HSM "keys/rotate/action",
    HSM "keys/import/action",
    HSM "keys/release/action",
    HSM "keys/backup/action",
    HSM "keys/restore/action",
    HSM "keys/encrypt/action",
    HSM "keys/decrypt/action",
    HSM "keys/wrap/action",
    HSM "keys/unwrap/action",
    HSM "keys/sign/action",
    HSM "keys/verify/action",
    HSM "keys/derive/action",
    HSM "rng/action",
    NULL,
};

static const char *const policy_administrator[] = {
    HSM "roleDefinitions/read/action",
    HSM "roleDefinitions/write/action",
    HSM "roleDefinitions/delete/action",
    HSM "roleAssignments/read/action",
    HSM "roleAssignments/write/action",
    HSM "roleAssignments/delete/action",
    NULL,
};

static const char *const crypto_auditor[] = {
    HSM "roleAssignments/read/action",
    HSM "roleDefinitions/read/action",
    HSM "keys/read/action",
    HSM "keys/deletedKeys/read/action",
    NULL,
};

static const char *const service_encryption_user[] = {
    HSM "keys/read/action",
    HSM "keys/wrap/action",
    HSM "keys/unwrap/action",
    NULL,
};

static const char *const backup_user[] = {
    HSM "backup/start/action",
    HSM "backup/status/action",
    HSM "keys/backup/action",
    NULL,
};

static const char *const service_release_user[] = {
    HSM "keys/release/action",
    NULL,
};

static const struct {
    const char *name;
    const char *id;
    const char *const *actions;
} roles[ROLE_COUNT] = {
    {"Managed HSM Administrator", "a290e904-7015-4bba-90c8-60543313cdb4", administrator},
    {"Managed HSM Crypto Officer", "515eb02d-2335-4d2d-92f2-b1cbdf9c3778", crypto_officer},
    {"Managed HSM Crypto User", "21dbd100-6940-42c2-9190-5d6cb909625b", crypto_user},
    {"Managed HSM Policy Administrator", "4bd23610-cdcf-4971-bdee-bdc562cc28e4",
     policy_administrator},
    {"Managed HSM Crypto Auditor", "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3", crypto_auditor},
    {"Managed HSM Crypto Service Release User", "21dbd100-6940-42c2-9190-5d6cb909625c",
     service_release_user},
    {"Managed HSM Crypto Service Encryption User", "33413926-3206-4cdd-b39a-83574fe37a17",
     service_encryption_user},
    {"Managed HSM Backup User", "7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8", backup_user},
};

static pol_perms perms[ROLE_COUNT];
static pthread_once_t perms_once = PTHREAD_ONCE_INIT;

static void compute_perms(void)
{
    for (int r = 0; r < ROLE_COUNT; r++) {
        size_t n = 0;
        while (roles[r].actions[n] != NULL)
            n++;
        perms[r] = pol_hsm_actions_perms(roles[r].actions, n);
    }
}

int pol_role_is_hsm(enum pol_role role)
{
    return role >= POL_ROLE_HSM_FIRST && role < POL_ROLE_HSM_END;
}

enum kv_status pol_hsm_role_parse(const char *text, enum pol_role *out)
{
    for (int r = 0; r < ROLE_COUNT; r++) {
        if (pol_role_text_is(text, roles[r].name, roles[r].id)) {
            *out = (enum pol_role)(POL_ROLE_HSM_FIRST + r);
            return KV_OK;
        }
    }
    return KV_ERR_BAD_PARAM;
}

const char *const *pol_hsm_role_actions(enum pol_role role)
{
    static const char *const none[] = {NULL};
    return pol_role_is_hsm(role) ? roles[role - POL_ROLE_HSM_FIRST].actions : none;
}

const char *pol_hsm_role_name(enum pol_role role)
{
    return pol_role_is_hsm(role) ? roles[role - POL_ROLE_HSM_FIRST].name : NULL;
}

const char *pol_hsm_role_id(enum pol_role role)
{
    return pol_role_is_hsm(role) ? roles[role - POL_ROLE_HSM_FIRST].id : NULL;
}

pol_perms pol_hsm_role_perms(enum pol_role role)
{
    if (!pol_role_is_hsm(role))
        return 0;
    pthread_once(&perms_once, compute_perms);
    return perms[role - POL_ROLE_HSM_FIRST];
}
