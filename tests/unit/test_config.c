/* Flags, environment and the configuration file, with their error messages. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "config.h"
#include "kv_str.h"
#include "testassert.h"

static char err[1024];
static char cfg_path[] = "/tmp/kvmock-config-XXXXXX";

static enum kv_status load(struct srv_config *cfg, const char *json, int argc, char **argv)
{
    if (json != NULL) {
        FILE *f = fopen(cfg_path, "w");
        fputs(json, f);
        fclose(f);
    }
    return srv_config_load(argc, argv, cfg, err, sizeof(err));
}

/* A config file must be refused with a message containing @p want. */
static void refused(const char *json, const char *want)
{
    struct srv_config cfg;
    char *argv[] = {"kvmock", "--config", cfg_path, NULL};
    enum kv_status st = load(&cfg, json, 3, argv);
    if (st != KV_ERR_BAD_PARAM || strstr(err, want) == NULL) {
        fprintf(stderr, "config %s: got %s \"%s\", want \"%s\"\n", json, kv_status_name(st), err,
                want);
        check_failures++;
    }
    srv_config_free(&cfg);
}

/* A configuration of two Key Vault Reader assignments for principal "p", at @p a and @p b. */
static enum kv_status two_readers(struct srv_config *cfg, const char *a, const char *b)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"roleAssignments\":["
             "{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Vault Reader\",\"scope\":\"%s\"},"
             "{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Vault Reader\",\"scope\":\"%s\"}]}",
             a, b);
    char *argv[] = {"kvmock", "--config", cfg_path, NULL};
    return load(cfg, json, 3, argv);
}

/* Custom role definitions of the file: their ids (given, or made from the name and the
 * same at every start), the assignments that name them, and the refusals. */
static void role_definitions(void)
{
#define PERMS  "\"permissions\":[{\"dataActions\":[\"Microsoft.KeyVault/vaults/keys/read\"]}]"
#define SCOPES "\"assignableScopes\":[\"/subscriptions/s\"]"
    struct srv_config cfg;
    char *argv[] = {"kvmock", "--config", cfg_path, NULL};
    static const char two[] =
        "{\"vaults\":[{\"name\":\"v\"},{\"name\":\"w\"}],\"roleDefinitions\":["
        "{\"name\":\"6F1C0E6A-0000-4000-8000-0000000000C1\",\"properties\":{"
        "\"roleName\":\"CMK Reader\"," PERMS "," SCOPES "}},"
        "{\"properties\":{\"roleName\":\"Key Lister\",\"description\":\"d\","
        "\"type\":\"CustomRole\"," PERMS "," SCOPES "}}],"
        "\"roleAssignments\":["
        "{\"principalId\":\"p\",\"roleDefinitionName\":\"cmk reader\",\"scope\":\"/vaults/v\"},"
        "{\"principalId\":\"p\",\"roleDefinitionId\":\"/subscriptions/s/providers/"
        "Microsoft.Authorization/roleDefinitions/6f1c0e6a-0000-4000-8000-0000000000c1\","
        "\"scope\":\"/vaults/w\"},"
        "{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Lister\",\"scope\":\"/vaults/v\"}]}";
    CHECK_ST(load(&cfg, two, 3, argv), KV_OK);
    CHECK(cfg.n_role_defs == 2 && cfg.n_roles == 3);
    char made[POL_ID_MAX] = "";
    if (cfg.n_role_defs == 2 && cfg.n_roles == 3) {
        CHECK_STR(cfg.role_defs[0].id, "6f1c0e6a-0000-4000-8000-0000000000c1");
        CHECK_STR(cfg.role_defs[1].name, "Key Lister");
        CHECK(kv_str_is_uuid(cfg.role_defs[1].id));
        snprintf(made, sizeof(made), "%s", cfg.role_defs[1].id);
        CHECK(cfg.roles[0].role == POL_ROLE_CUSTOM && cfg.roles[1].role == POL_ROLE_CUSTOM);
        CHECK_STR(cfg.roles[0].role_def, cfg.role_defs[0].id);
        CHECK_STR(cfg.roles[1].role_def, cfg.role_defs[0].id);
        CHECK_STR(cfg.roles[2].role_def, made);
    }
    srv_config_free(&cfg);
    /* the id made from the name is the same at the next start */
    CHECK_ST(load(&cfg, two, 3, argv), KV_OK);
    CHECK(cfg.n_role_defs == 2 && strcmp(cfg.role_defs[1].id, made) == 0);
    srv_config_free(&cfg);
    refused("{\"roleDefinitions\":{}}", "'roleDefinitions' must be an array");
    refused("{\"roleDefinitions\":[{\"name\":\"x\"}]}", "needs 'properties'");
    refused("{\"roleDefinitions\":[{\"properties\":{\"roleName\":\"r\"," PERMS "," SCOPES
            ",\"assignableScope\":[]}}]}",
            "unknown field 'assignableScope' in roleDefinitions[0].properties");
    refused("{\"roleDefinitions\":[{\"properties\":{\"roleName\":\"r\",\"permissions\":[{"
            "\"dataAction\":[]}]," SCOPES "}}]}",
            "unknown field 'dataAction' in roleDefinitions[0].properties");
    refused("{\"roleDefinitions\":[{\"properties\":{\"roleName\":\"r\"," PERMS "}}]}",
            "roleDefinitions[0]: properties.assignableScopes is required");
    refused("{\"roleDefinitions\":[{\"properties\":{\"roleName\":\"Key Vault Reader\"," PERMS
            "," SCOPES "}}]}",
            "'Key Vault Reader' is a built-in role's name");
    refused("{\"roleDefinitions\":[{\"name\":\"r1\",\"properties\":{\"roleName\":\"r\"," PERMS
            "," SCOPES "}}]}",
            "its name 'r1' must be a GUID");
    refused("{\"roleDefinitions\":[{\"properties\":{\"roleName\":\"r\"," PERMS "," SCOPES
            "}},{\"properties\":{\"roleName\":\"R\"," PERMS "," SCOPES "}}]}",
            "roleDefinitions[1] has the name or roleName of roleDefinitions[0]");
    refused("{\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":\"CMK Reader\","
            "\"scope\":\"/vaults/v\"}]}",
            "unknown role 'CMK Reader'");
#undef PERMS
#undef SCOPES
}

/* An identity's certificates and federated credentials: PEM text or files beside the
 * configuration, JWKS inline or in a file, and the refusals, which name the field. */
static void client_assertions(void)
{
    char pem_path[64], jwks_path[64], json[8192];
    snprintf(pem_path, sizeof(pem_path), "%s.pem", cfg_path);
    snprintf(jwks_path, sizeof(jwks_path), "%s.jwks", cfg_path);
    FILE *f = fopen(pem_path, "w");
    fprintf(f, "-----BEGIN PRIVATE KEY-----\nnever read\n-----END PRIVATE KEY-----\n%s",
            testassert_cert_pem);
    fclose(f);
    f = fopen(jwks_path, "w");
    fputs(testassert_jwks, f);
    fclose(f);
    const char *pem_name = strrchr(pem_path, '/') + 1, *jwks_name = strrchr(jwks_path, '/') + 1;

    /* a path relative to the configuration file, an inline JWKS and a JWKS file */
    snprintf(json, sizeof(json),
             "{\"identities\":[{\"name\":\"ci\",\"objectId\":\"o\",\"clientId\":\"c\","
             "\"clientCertificates\":\"%s\",\"federatedCredentials\":["
             "{\"name\":\"a\",\"issuer\":\"https://i\",\"subject\":\"s\",\"jwks\":%s},"
             "{\"issuer\":\"https://i\",\"subject\":\"t\",\"audiences\":[\"api://x\"],"
             "\"description\":\"d\",\"jwks\":\"%s\"}]}]}",
             pem_name, testassert_jwks, jwks_name);
    struct srv_config cfg;
    char *argv[] = {"kvmock", "--config", cfg_path, NULL};
    CHECK_ST(load(&cfg, json, 3, argv), KV_OK);
    size_t nf = 0;
    CHECK(cfg.n_identities == 1 && pol_creds_count(cfg.identities[0].creds, &nf) == 1 && nf == 2);
    srv_config_free(&cfg);

    /* the PEM text itself, in an array, next to an absolute path */
    char inline_pem[4096];
    size_t o = 0;
    for (const char *p = testassert_cert_pem; *p && o + 3 < sizeof(inline_pem); p++) {
        if (*p == '\n') {
            inline_pem[o++] = '\\';
            inline_pem[o++] = 'n';
        } else {
            inline_pem[o++] = *p;
        }
    }
    inline_pem[o] = '\0';
    snprintf(json, sizeof(json),
             "{\"identities\":[{\"name\":\"ci\",\"objectId\":\"o\",\"clientId\":\"c\","
             "\"clientCertificates\":[\"%s\",\"%s\"]}]}",
             inline_pem, pem_path);
    CHECK_ST(load(&cfg, json, 3, argv), KV_OK);
    CHECK(cfg.n_identities == 1 && pol_creds_count(cfg.identities[0].creds, NULL) == 2);
    srv_config_free(&cfg);

#define IDENT "{\"identities\":[{\"name\":\"a\",\"objectId\":\"o\",\"clientId\":\"c\","
    refused(IDENT "\"clientCertificates\":\"no-such.pem\"}]}",
            "clientCertificates[0] in identities[0]: cannot read the certificate file "
            "'/tmp/no-such.pem'");
    refused(IDENT "\"clientCertificates\":7}]}", "'clientCertificates' in identities[0] must be");
    refused(IDENT "\"clientCertificates\":[]}]}", "must be a PEM text or a path");
    refused(IDENT "\"clientCertificates\":[7]}]}", "clientCertificates[0] in identities[0] must");
    refused(IDENT "\"clientCertificates\":\"-----BEGIN PRIVATE KEY-----\\nx\\n\"}]}",
            "clientCertificates[0] in identities[0]: no certificate");
    refused(IDENT "\"federatedCredentials\":{}}]}", "'federatedCredentials' in identities[0]");
    refused(IDENT "\"federatedCredentials\":[7]}]}",
            "identities[0].federatedCredentials[0] must be an object");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"subject\":\"s\"}]}]}",
            "identities[0].federatedCredentials[0] needs 'jwks'");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"jwks\":{}}]}]}",
            "needs 'issuer' and 'subject'");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"subject\":\"s\",\"audiences\":"
                  "[\"a\",\"b\"],\"jwks\":{}}]}]}",
            "must be an array of one string");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"subject\":\"s\",\"x\":1}]}]}",
            "unknown field 'x' in identities[0].federatedCredentials[0]");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"subject\":\"s\",\"jwks\":"
                  "{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}}]}]}",
            "federatedCredentials[0]: key 1 of the jwks has kty 'oct'");
    refused(IDENT "\"federatedCredentials\":[{\"issuer\":\"i\",\"subject\":\"s\",\"jwks\":"
                  "\"no-such.jwks\"}]}]}",
            "identities[0].federatedCredentials[0]: cannot read the jwks file '/tmp/no-such.jwks'");
    /* certificates read, then a federated credential refused: nothing is left behind */
    snprintf(json, sizeof(json),
             IDENT "\"clientCertificates\":\"%s\",\"federatedCredentials\":[{\"issuer\":\"i\","
                   "\"subject\":\"s\",\"jwks\":{\"keys\":[]}}]}]}",
             pem_name);
    refused(json, "holds no signing key");
    /* the second identity refused after the first one's credentials were read */
    snprintf(json, sizeof(json),
             IDENT "\"clientCertificates\":\"%s\"},{\"name\":\"b\",\"objectId\":\"p\","
                   "\"clientId\":\"d\",\"clientCertificates\":\"-----BEGIN CERTIFICATE-----\"}]}",
             pem_name);
    refused(json, "clientCertificates[0] in identities[1]");
#undef IDENT
    unlink(pem_path);
    unlink(jwks_path);
}

/* Managed HSMs of the file: each one more of cfg->vaults, marked as an HSM, with a local
 * Managed HSM Administrator per initialAdminObjectIds entry (an id that is the same at every
 * start); local role assignments at their scopes; the refusals, which name the problem. */
static void managed_hsms(void)
{
    struct srv_config cfg;
    char *argv[] = {"kvmock", "--config", cfg_path, NULL};
    static const char good[] =
        "{\"tenantId\":\"t-1\",\"vaults\":[{\"name\":\"v\"}],\"managedHsms\":["
        "{\"name\":\"hsm1\",\"properties\":{\"initialAdminObjectIds\":[\"a1\",\"a2\"],"
        "\"softDeleteRetentionInDays\":7,\"enablePurgeProtection\":true,"
        "\"enableSoftDelete\":true}},"
        "{\"name\":\"hsm2\",\"properties\":{\"initialAdminObjectIds\":[\"a1\"]}}],"
        "\"roleAssignments\":["
        "{\"principalId\":\"u1\",\"roleDefinitionName\":\"Managed HSM Crypto User\","
        "\"scope\":\"/managedHSMs/hsm1\"},"
        "{\"principalId\":\"u2\",\"roleDefinitionId\":\"515eb02d-2335-4d2d-92f2-b1cbdf9c3778\","
        "\"scope\":\"/managedHSMs/HSM1/keys\"},"
        "{\"principalId\":\"u3\",\"roleDefinitionId\":\"Microsoft.KeyVault/providers/"
        "Microsoft.Authorization/roleDefinitions/33413926-3206-4cdd-b39a-83574fe37a17\","
        "\"scope\":\"/managedHSMs/hsm1/keys/Disk-1\"},"
        "{\"principalId\":\"u4\",\"roleDefinitionName\":\"managed hsm backup user\",\"scope\":"
        "\"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/managedHSMs/hsm2/keys/"
        "k\"},"
        "{\"principalId\":\"u5\",\"roleDefinitionName\":\"Managed HSM Crypto Auditor\",\"scope\":"
        "\"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/managedHSMs/hsm2\"},"
        "{\"principalId\":\"a1\",\"roleDefinitionName\":\"Managed HSM Administrator\","
        "\"scope\":\"/managedHSMs/hsm1\"},"
        "{\"principalId\":\"u6\",\"roleDefinitionName\":\"Key Vault Reader\","
        "\"scope\":\"/vaults/v\"}]}";
    CHECK_ST(load(&cfg, good, 3, argv), KV_OK);
    if (cfg.n_vaults != 3 || cfg.n_roles != 10) {
        fprintf(stderr, "managed HSMs: %zu vaults, %zu roles (%s)\n", cfg.n_vaults, cfg.n_roles,
                err);
        check_failures++;
        srv_config_free(&cfg);
        return;
    }
    const struct ks_vault *v = &cfg.vaults[0], *h1 = &cfg.vaults[1], *h2 = &cfg.vaults[2];
    CHECK(strcmp(v->name, "v") == 0 && v->hsm == 0);
    CHECK_STR(h1->name, "hsm1");
    CHECK(h1->hsm == 1 && h1->premium == 1 && h1->soft_delete == 1 && h1->retention_days == 7 &&
          h1->purge_protection == 1);
    CHECK_STR(h1->tenant_id, "t-1");
    CHECK_STR(h2->name, "hsm2");
    CHECK(h2->hsm == 1 && h2->premium == 1 && h2->soft_delete == 1 && h2->retention_days == 90 &&
          h2->purge_protection == 0);
    /* an HSM has no access policies: the file's (none) are all it has */
    CHECK(cfg.policies_given[1] && cfg.policies_given[2]);
    /* the initial administrators come first, one per id and HSM */
    static const char *const admins[][2] = {{"a1", "hsm1"}, {"a2", "hsm1"}, {"a1", "hsm2"}};
    char ids[10][POL_ID_MAX];
    for (size_t i = 0; i < 10; i++)
        snprintf(ids[i], sizeof(ids[i]), "%s", cfg.roles[i].id);
    for (size_t i = 0; i < 3; i++) {
        const struct pol_role_assignment *r = &cfg.roles[i];
        CHECK(r->hsm == 1 && r->hsm_keys == 0 && r->role == POL_ROLE_HSM_ADMINISTRATOR &&
              r->key[0] == '\0' && r->group[0] == '\0' && kv_str_is_uuid(r->id));
        CHECK_STR(r->principal_id, admins[i][0]);
        CHECK_STR(r->vault, admins[i][1]);
    }
    CHECK(strcmp(ids[0], ids[1]) != 0 && strcmp(ids[0], ids[2]) != 0 &&
          strcmp(ids[1], ids[2]) != 0);
    /* the file's assignments: "/", "/keys", a key's scope, Resource Manager's forms */
    static const struct {
        const char *principal, *vault, *key;
        enum pol_role role;
        int hsm, hsm_keys;
    } want[] = {
        {"u1", "hsm1", "", POL_ROLE_HSM_CRYPTO_USER, 1, 0},
        {"u2", "hsm1", "", POL_ROLE_HSM_CRYPTO_OFFICER, 1, 1},
        {"u3", "hsm1", "Disk-1", POL_ROLE_HSM_CRYPTO_SERVICE_ENCRYPTION_USER, 1, 0},
        {"u4", "hsm2", "k", POL_ROLE_HSM_BACKUP_USER, 1, 0},
        {"u5", "hsm2", "", POL_ROLE_HSM_CRYPTO_AUDITOR, 1, 0},
        {"a1", "hsm1", "", POL_ROLE_HSM_ADMINISTRATOR, 1, 0},
        {"u6", "v", "", POL_ROLE_READER, 0, 0},
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        const struct pol_role_assignment *r = &cfg.roles[3 + i];
        if (strcmp(r->principal_id, want[i].principal) != 0 || strcmp(r->vault, want[i].vault) ||
            strcmp(r->key, want[i].key) != 0 || r->role != want[i].role || r->hsm != want[i].hsm ||
            r->hsm_keys != want[i].hsm_keys || r->group[0] != '\0' || !kv_str_is_uuid(r->id)) {
            fprintf(stderr, "roles[%zu]: %s %s/%s role %d hsm %d keys %d, want %s %s/%s %d %d %d\n",
                    3 + i, r->principal_id, r->vault, r->key, (int)r->role, r->hsm, r->hsm_keys,
                    want[i].principal, want[i].vault, want[i].key, (int)want[i].role, want[i].hsm,
                    want[i].hsm_keys);
            check_failures++;
        }
    }
    /* an initial administrator given again as the file's assignment is one assignment */
    CHECK_STR(cfg.roles[8].id, cfg.roles[0].id);
    srv_config_free(&cfg);
    /* the same ids at the next start */
    CHECK_ST(load(&cfg, good, 3, argv), KV_OK);
    CHECK(cfg.n_roles == 10);
    for (size_t i = 0; i < 10 && i < cfg.n_roles; i++)
        CHECK_STR(cfg.roles[i].id, ids[i]);
    srv_config_free(&cfg);

#define HSM_A(props) "{\"managedHsms\":[{\"name\":\"h\",\"properties\":{" props "}}]}"
#define ADM          "\"initialAdminObjectIds\":[\"a\"]"
    refused("{\"managedHsms\":{}}", "'managedHsms' must be an array");
    refused("{\"managedHsms\":[7]}", "managedHsms[0] must be an object");
    refused("{\"managedHsms\":[{\"name\":\"h\"}]}",
            "managedHsms[0].properties must be an object with initialAdminObjectIds");
    refused(HSM_A(""), "managed HSM 'h': initialAdminObjectIds must list the object ids");
    refused(HSM_A("\"initialAdminObjectIds\":[]"),
            "managed HSM 'h': initialAdminObjectIds must list the object ids");
    refused(HSM_A("\"initialAdminObjectIds\":\"a\""),
            "managed HSM 'h': initialAdminObjectIds must list the object ids");
    refused(HSM_A("\"initialAdminObjectIds\":[7]"),
            "managed HSM 'h': initialAdminObjectIds must hold object ids");
    refused(HSM_A("\"initialAdminObjectIds\":[\"a\",\"\"]"),
            "managed HSM 'h': initialAdminObjectIds must hold object ids");
    refused(HSM_A(ADM ",\"enableSoftDelete\":false"),
            "managed HSM 'h': soft delete is always on in a managed HSM (enableSoftDelete must "
            "be true)");
    refused(HSM_A(ADM ",\"enableSoftDelete\":\"yes\""),
            "'enableSoftDelete' in managedHsms[0].properties must be true or false");
    refused(HSM_A(ADM ",\"enablePurgeProtection\":1"),
            "'enablePurgeProtection' in managedHsms[0].properties must be true or false");
    static const char *const days[] = {"6", "91", "0", "7.5", "\"30\"", "-7"};
    for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
        char json[256];
        snprintf(json, sizeof(json), HSM_A(ADM ",\"softDeleteRetentionInDays\":%s"), days[i]);
        refused(json, "managed HSM 'h': softDeleteRetentionInDays must be an integer between 7 "
                      "and 90");
    }
    refused("{\"managedHsms\":[{\"name\":\"h\",\"sku\":{},\"properties\":{" ADM "}}]}",
            "unknown field 'sku' in managedHsms[0]");
    refused(HSM_A(ADM ",\"enableRbacAuthorization\":true"),
            "unknown field 'enableRbacAuthorization' in managedHsms[0].properties");
    refused(HSM_A(ADM ",\"initialAdminObjectIDs\":[\"a\"]"),
            "unknown field 'initialAdminObjectIDs' in managedHsms[0].properties");
    refused("{\"managedHsms\":[{\"name\":\"Bad_Name\",\"properties\":{" ADM "}}]}",
            "managed HSM name 'Bad_Name' must be 1-24 lowercase letters, digits and '-'");
    /* one name, one vault or HSM */
    refused("{\"vaults\":[{\"name\":\"h\"}],\"managedHsms\":[{\"name\":\"h\",\"properties\":{" ADM
            "}}]}",
            "'h' names a vault already; a managed HSM needs a name of its own");
    refused("{\"managedHsms\":[{\"name\":\"h\",\"properties\":{" ADM "}},{\"name\":\"h\","
            "\"properties\":{" ADM "}}]}",
            "'h' names a managed HSM already; a managed HSM needs a name of its own");

    /* the file's assignments at an HSM's scope */
#define HSM_RA(role, scope)                                                                        \
    "{\"vaults\":[{\"name\":\"v\"}],\"managedHsms\":[{\"name\":\"h\",\"properties\":{" ADM "}}],"  \
    "\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":\"" role "\","             \
    "\"scope\":\"" scope "\"}]}"
#define SCOPE_MSG(scope)                                                                           \
    "roleAssignments[0]: scope '" scope "' must be /managedHSMs/NAME, /managedHSMs/NAME/keys or "  \
    "/managedHSMs/NAME/keys/KEY, NAME one of the file's managedHsms"
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/nohsm"),
            SCOPE_MSG("/managedHSMs/nohsm"));
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/v"), SCOPE_MSG("/managedHSMs/v"));
    refused(HSM_RA("Managed HSM Crypto User",
                   "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/managedHSMs/"
                   "nohsm/keys"),
            "roleAssignments[0]: scope '/subscriptions/s/resourceGroups/g/providers/"
            "Microsoft.KeyVault/managedHSMs/nohsm/keys' must be /managedHSMs/NAME");
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/h/keys/bad_key"),
            SCOPE_MSG("/managedHSMs/h/keys/bad_key"));
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/h/keys/a/b"),
            SCOPE_MSG("/managedHSMs/h/keys/a/b"));
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/h/secrets"),
            SCOPE_MSG("/managedHSMs/h/secrets"));
    refused(HSM_RA("Managed HSM Crypto User", "/managedHSMs/"), SCOPE_MSG("/managedHSMs/"));
    refused(HSM_RA("Key Vault Crypto User", "/managedHSMs/h"),
            "roleAssignments[0]: unknown role 'Key Vault Crypto User' (not a Managed HSM role)");
    refused(HSM_RA("12338af0-0e69-4776-bea7-57ae8d297424", "/managedHSMs/h/keys"),
            "roleAssignments[0]: unknown role '12338af0-0e69-4776-bea7-57ae8d297424' (not a "
            "Managed HSM role)");
    refused(HSM_RA("Managed HSM Crypto User", "/vaults/v"),
            "roleAssignments[0]: unknown role 'Managed HSM Crypto User' (neither a built-in Key "
            "Vault role nor one of the file's roleDefinitions)");
    /* an initial administrator given again under another name (Resource Manager's form of
     * the scope derives another one) */
    refused("{\"managedHsms\":[{\"name\":\"h\",\"properties\":{" ADM "}}],"
            "\"roleAssignments\":[{\"principalId\":\"A\",\"roleDefinitionId\":"
            "\"a290e904-7015-4bba-90c8-60543313cdb4\",\"scope\":\"/subscriptions/s/"
            "resourceGroups/g/providers/Microsoft.KeyVault/managedHSMs/h\"}]}",
            "roleAssignments[0] repeats an initial administrator of managed HSM 'h'");
    /* an HSM is no vault: a vault's scope naming one is refused, not stored to no effect */
    refused("{\"managedHsms\":[{\"name\":\"h\",\"properties\":{" ADM "}}],"
            "\"roleAssignments\":[{\"principalId\":\"q\",\"roleDefinitionName\":"
            "\"Key Vault Reader\",\"scope\":\"/vaults/h\"}]}",
            "config: roleAssignments[0]: 'h' is a managed HSM; its scopes are "
            "/managedHSMs/h[/keys[/KEY]]");
#undef HSM_RA
#undef SCOPE_MSG
#undef HSM_A
#undef ADM
}

int main(void)
{
    int fd = mkstemp(cfg_path);
    CHECK(fd >= 0);
    close(fd);
    unsetenv("KVMOCK_DATA");
    unsetenv("KVMOCK_HTTPS_PORT");
    unsetenv("KVMOCK_HTTP_PORT");
    unsetenv("KVMOCK_CONFIG");
    unsetenv("KVMOCK_HOSTNAMES");
    unsetenv("KVMOCK_LOG_LEVEL");

    /* defaults: one tenant, one default identity, one vault "default" */
    struct srv_config cfg;
    char *argv0[] = {"kvmock", NULL};
    CHECK_ST(load(&cfg, NULL, 1, argv0), KV_OK);
    CHECK_STR(cfg.data_dir, "./kvmock-data");
    CHECK(cfg.https_port == 8443 && cfg.http_port == 8080);
    CHECK_STR(cfg.tenant_id, SRV_DEFAULT_TENANT);
    CHECK_STR(cfg.identity_header, "kvmock");
    CHECK(cfg.n_identities == 1 && cfg.identities[0].is_default && cfg.identities[0].manage);
    CHECK(cfg.n_vaults == 1 && strcmp(cfg.vaults[0].name, "default") == 0);
    CHECK(cfg.vaults[0].soft_delete && cfg.vaults[0].retention_days == 90 &&
          !cfg.vaults[0].purge_protection && cfg.vaults[0].premium); /* every key type */
    srv_config_free(&cfg);

    /* flags, both spellings, and the environment under them */
    setenv("KVMOCK_HTTP_PORT", "9090", 1);
    setenv("KVMOCK_HTTPS_PORT", "9443", 1);
    setenv("KVMOCK_HOSTNAMES", "kvmock,kv.example", 1);
    char *argv1[] = {"kvmock", "--data", "/tmp/x", "--https-port=10443", "--hostname", "extra",
                     "--log-level", "debug", NULL};
    CHECK_ST(load(&cfg, NULL, 8, argv1), KV_OK);
    CHECK_STR(cfg.data_dir, "/tmp/x");
    CHECK(cfg.https_port == 10443 && cfg.http_port == 9090);
    CHECK(cfg.n_hostnames == 1 && strcmp(cfg.hostnames[0], "extra") == 0);
    CHECK(cfg.log_level == KV_LOG_DEBUG);
    srv_config_free(&cfg);
    CHECK_ST(load(&cfg, NULL, 1, argv0), KV_OK);
    CHECK(cfg.n_hostnames == 2 && strcmp(cfg.hostnames[1], "kv.example") == 0);
    CHECK(cfg.https_port == 9443);
    srv_config_free(&cfg);
    unsetenv("KVMOCK_HTTP_PORT");
    unsetenv("KVMOCK_HTTPS_PORT");
    unsetenv("KVMOCK_HOSTNAMES");

    /* bad flags */
    char *argv2[] = {"kvmock", "--https-port", "0", NULL};
    CHECK_ST(load(&cfg, NULL, 3, argv2), KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "--https-port") != NULL);
    srv_config_free(&cfg);
    char *argv3[] = {"kvmock", "--frobnicate", "1", NULL};
    CHECK_ST(load(&cfg, NULL, 3, argv3), KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "--frobnicate") != NULL);
    srv_config_free(&cfg);
    /* host names: '_' as Compose names containers, as the certificate takes them; one
     * with ':' only when it is an IPv6 address */
    char *names_ok[] = {"kvmock", "--hostname", "proj_kvmock_1,::1,fd00::7", NULL};
    CHECK_ST(load(&cfg, NULL, 3, names_ok), KV_OK);
    CHECK(cfg.n_hostnames == 3);
    srv_config_free(&cfg);
    /* KVMOCK_HOSTNAMES as people write lists: spaces after the commas are not part of a name */
    char *names_spaced[] = {"kvmock", "--hostname", "a.example, b.example ,\tc", NULL};
    CHECK_ST(load(&cfg, NULL, 3, names_spaced), KV_OK);
    CHECK(cfg.n_hostnames == 3 && strcmp(cfg.hostnames[0], "a.example") == 0 &&
          strcmp(cfg.hostnames[1], "b.example") == 0 && strcmp(cfg.hostnames[2], "c") == 0);
    srv_config_free(&cfg);
    char *names_bad[] = {"kvmock", "--hostname", "host:name", NULL};
    CHECK_ST(load(&cfg, NULL, 3, names_bad), KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "'host:name' is not a host name or address") != NULL);
    srv_config_free(&cfg);
    char *argv4[] = {"kvmock", "--data", NULL};
    CHECK_ST(load(&cfg, NULL, 2, argv4), KV_ERR_BAD_PARAM);
    srv_config_free(&cfg);
    char *argv6[] = {"kvmock", "--map-size", "2", "--ui", "off", NULL};
    CHECK_ST(load(&cfg, NULL, 5, argv6), KV_OK);
    CHECK(cfg.map_size_mib == 2 && cfg.ui == 0);
    srv_config_free(&cfg);
    char *argv7[] = {"kvmock", "--map-size", "0", NULL};
    CHECK_ST(load(&cfg, NULL, 3, argv7), KV_ERR_BAD_PARAM);
    CHECK(strstr(err, "--map-size") != NULL);
    srv_config_free(&cfg);
    /* worker threads and the audit cap: defaults, flags, environment, range */
    char *argv8[] = {"kvmock", NULL};
    CHECK_ST(load(&cfg, NULL, 1, argv8), KV_OK);
    CHECK(cfg.threads == 256 && cfg.audit_max == 10000 && cfg.sync == KS_SYNC_FULL);
    srv_config_free(&cfg);
    char *argv9[] = {"kvmock", "--threads", "64", "--audit-max", "0", "--sync", "none", NULL};
    CHECK_ST(load(&cfg, NULL, 7, argv9), KV_OK);
    CHECK(cfg.threads == 64 && cfg.audit_max == 0 && cfg.sync == KS_SYNC_NONE);
    srv_config_free(&cfg);
    setenv("KVMOCK_THREADS", "32", 1);
    setenv("KVMOCK_AUDIT_MAX", "500", 1);
    setenv("KVMOCK_SYNC", "data", 1);
    CHECK_ST(load(&cfg, NULL, 1, argv8), KV_OK);
    CHECK(cfg.threads == 32 && cfg.audit_max == 500 && cfg.sync == KS_SYNC_DATA);
    srv_config_free(&cfg);
    unsetenv("KVMOCK_THREADS");
    unsetenv("KVMOCK_AUDIT_MAX");
    unsetenv("KVMOCK_SYNC");
    const char *bad_values[][2] = {{"--threads", "4"}, {"--threads", "5000"}, {"--threads", "x"},
                                   {"--audit-max", "-1"}, {"--audit-max", "1e3"},
                                   {"--sync", "fast"}, {"--sync", ""}};
    for (size_t i = 0; i < sizeof(bad_values) / sizeof(bad_values[0]); i++) {
        char *argvb[] = {"kvmock", (char *)bad_values[i][0], (char *)bad_values[i][1], NULL};
        CHECK_ST(load(&cfg, NULL, 3, argvb), KV_ERR_BAD_PARAM);
        CHECK(strstr(err, bad_values[i][0]) != NULL);
        srv_config_free(&cfg);
    }
    char *argv5[] = {"kvmock", "--help", NULL};
    CHECK_ST(load(&cfg, NULL, 2, argv5), KV_ERR_BAD_PARAM);
    CHECK(err[0] == '\0');
    srv_config_free(&cfg);

    /* a full configuration file */
    char *argvc[] = {"kvmock", "--config", cfg_path, NULL};
    CHECK_ST(load(&cfg,
                  "{\"tenantId\":\"t-1\",\"identityHeader\":\"s3cret\","
                  "\"identities\":[{\"name\":\"app\",\"objectId\":\"o1\",\"clientId\":\"c1\","
                  "\"trustedService\":true},"
                  "{\"name\":\"ci\",\"objectId\":\"o2\",\"clientId\":\"c2\",\"default\":true,"
                  "\"clientSecret\":\"x\",\"manage\":true}],"
                  "\"vaults\":[{\"name\":\"cmk\",\"properties\":{\"enableSoftDelete\":true,"
                  "\"softDeleteRetentionInDays\":7,\"enablePurgeProtection\":true}},"
                  "{\"name\":\"plain\",\"properties\":{\"enableSoftDelete\":false}}]}",
                  3, argvc),
             KV_OK);
    if (cfg.n_vaults != 2) {
        fprintf(stderr, "full config refused: %s\n", err);
        CHECK_DONE();
    }
    CHECK_STR(cfg.tenant_id, "t-1");
    CHECK_STR(cfg.identity_header, "s3cret");
    CHECK(cfg.n_identities == 2 && !cfg.identities[0].is_default && cfg.identities[1].is_default);
    CHECK(cfg.identities[0].trusted_service && !cfg.identities[1].trusted_service);
    CHECK(cfg.n_vaults == 2);
    CHECK(cfg.vaults[0].retention_days == 7 && cfg.vaults[0].purge_protection);
    CHECK_STR(cfg.vaults[0].tenant_id, "t-1");
    CHECK(!cfg.vaults[1].soft_delete);
    CHECK(!cfg.vaults[0].premium && !cfg.vaults[1].premium); /* a file's vault: standard */
    srv_config_free(&cfg);

    /* access policies and role assignments */
    CHECK_ST(
        load(
            &cfg,
            "{\"tenantId\":\"t-1\",\"vaults\":[{\"name\":\"cmk\",\"properties\":{"
            "\"accessPolicies\":[{\"objectId\":\"o1\",\"permissions\":{\"keys\":[\"get\","
            "\"WrapKey\",\"unwrapKey\"],\"secrets\":[\"Get\",\"list\"]}}]}},{\"name\":\"open\"},"
            "{\"name\":\"rb\",\"properties\":{\"enableRbacAuthorization\":true}}],"
            "\"roleAssignments\":[{\"principalId\":\"o1\",\"roleDefinitionName\":"
            "\"Key Vault Crypto Service Encryption User\",\"scope\":\"/vaults/rb/keys/disk\"},"
            "{\"principalId\":\"o2\",\"roleDefinitionId\":\"14b46e9e-c2b7-41b4-b07b-48a6ebf60603\","
            "\"scope\":\"/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/"
            "rb\"}]}",
            3, argvc),
        KV_OK);
    CHECK(cfg.n_policies == 1 && strcmp(cfg.policies[0].vault, "cmk") == 0);
    CHECK(cfg.policies[0].keys ==
          ((1u << POL_KEYS_GET) | (1u << POL_KEYS_WRAP) | (1u << POL_KEYS_UNWRAP)));
    CHECK_STR(cfg.policies[0].tenant_id, "t-1");
    /* every list kept in its order, as Resource Manager keeps it */
    CHECK(cfg.policies[0].lists[POL_LIST_KEYS].n == 3 &&
          cfg.policies[0].lists[POL_LIST_KEYS].name[1] == POL_KEYS_WRAP);
    CHECK(cfg.policies[0].lists[POL_LIST_SECRETS].n == 2 &&
          strcmp(pol_list_entry(POL_LIST_SECRETS, cfg.policies[0].lists[POL_LIST_SECRETS].name[0]),
                 "get") == 0);
    CHECK(cfg.policies_given[0] && !cfg.policies_given[1]);
    CHECK(cfg.vaults[2].rbac);
    /* what each vault names, so that a restart changes only that on an existing vault */
    CHECK(cfg.given[0] == 0 && cfg.given[1] == 0 && cfg.given[2] == SRV_GIVEN_RBAC);
    CHECK(cfg.n_roles == 2);
    CHECK(cfg.roles[0].role == POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER);
    CHECK_STR(cfg.roles[0].key, "disk");
    CHECK(cfg.roles[1].role == POL_ROLE_CRYPTO_OFFICER && cfg.roles[1].key[0] == '\0');
    CHECK(strlen(cfg.roles[0].id) == 36 && strcmp(cfg.roles[0].id, cfg.roles[1].id) != 0);
    srv_config_free(&cfg);

    /* the firewall and the other properties kept for Resource Manager, as an ARM body has
     * them; a vault that names none of them keeps the store's (given without SRV_GIVEN_ARM) */
    {
        char *argv[] = {"kvmock", "--config", cfg_path, NULL};
        CHECK_ST(load(&cfg,
                      "{\"vaults\":[{\"name\":\"walled\",\"properties\":{\"sku\":{\"family\":"
                      "\"A\",\"name\":\"premium\"},\"publicNetworkAccess\":\"Disabled\","
                      "\"networkAcls\":{\"defaultAction\":\"Deny\",\"ipRules\":[{\"value\":"
                      "\"127.0.0.1\"},{\"value\":\"::1/128\"}]}}},{\"name\":\"plain\"}]}",
                      3, argv),
                 KV_OK);
        CHECK(cfg.n_vaults == 2);
        if (cfg.n_vaults == 2) {
            const struct ks_vault *w = &cfg.vaults[0];
            CHECK(w->premium && w->public_network_disabled && w->net_acls && w->net_deny &&
                  !w->net_bypass_none && cfg.given[0] == SRV_GIVEN_ARM);
            CHECK(w->net_rules == &cfg.net_rules[0] && cfg.net_rules[0].ip_count == 2);
            if (cfg.net_rules[0].ip_count == 2) {
                CHECK_STR(cfg.net_rules[0].ip[0], "127.0.0.1/32");
                CHECK_STR(cfg.net_rules[0].ip[1], "::1/128");
            }
            CHECK(!cfg.vaults[1].net_acls && cfg.vaults[1].net_rules == NULL && cfg.given[1] == 0);
        }
        srv_config_free(&cfg);
    }

    /* the rules, each with a message naming the problem */
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"softDeleteRetentionInDays\":6}}]}",
            "between 7 and 90");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"softDeleteRetentionInDays\":91}}]}",
            "between 7 and 90");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"enableSoftDelete\":false,"
            "\"enablePurgeProtection\":true}}]}",
            "requires enableSoftDelete");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"networkAcls\":{\"ipRules\":"
            "[{\"value\":\"10.0.0.0/33\"}]}}}]}",
            "vault 'v': Invalid value found at properties.networkAcls.ipRules[0].value");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"publicNetworkAccess\":\"off\"}}]}",
            "vault 'v': publicNetworkAccess must be");
    /* refused after its rules were read: they are freed (the sanitizer build checks) */
    refused("{\"vaults\":[{\"name\":\"v\"},{\"name\":\"v\",\"properties\":{\"networkAcls\":"
            "{\"ipRules\":[{\"value\":\"10.0.0.0/8\"}]}}}]}",
            "vault 'v' is named twice");
    refused("{\"tenantID\":\"x\"}", "unknown field 'tenantID'");
    refused("{\"vaults\":[{\"name\":\"v\",\"colour\":1}]}", "unknown field 'colour'");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"softDelete\":true}}]}",
            "unknown field 'softDelete'");
    refused("{\"identities\":[{\"name\":\"a\",\"objectId\":\"o\",\"clientId\":\"c\",\"x\":1}]}",
            "unknown field 'x'");
    /* inside the Resource Manager objects too: a misspelt defaultAction would leave the
     * firewall open without a word */
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"networkAcls\":"
            "{\"defaultActon\":\"Deny\"}}}]}",
            "unknown field 'defaultActon' in vaults[0].properties.networkAcls");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"sku\":"
            "{\"family\":\"A\",\"nmae\":\"premium\"}}}]}",
            "unknown field 'nmae' in vaults[0].properties.sku");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"networkAcls\":{\"ipRules\":"
            "[{\"value\":\"10.0.0.1\"},{\"value\":\"10.0.0.2\",\"action\":\"Allow\"}]}}}]}",
            "unknown field 'action' in vaults[0].properties.networkAcls.ipRules[1]");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"networkAcls\":"
            "{\"virtualNetworkRules\":[{\"id\":\"/subscriptions/s/resourceGroups/g/providers/"
            "Microsoft.Network/virtualNetworks/n/subnets/m\",\"ignoreMissingVnetServiceEndpiont\":"
            "true}]}}}]}",
            "unknown field 'ignoreMissingVnetServiceEndpiont' in "
            "vaults[0].properties.networkAcls.virtualNetworkRules[0]");
    {
        /* every field Resource Manager's models name is taken */
        struct srv_config all;
        char *args[] = {"kvmock", "--config", cfg_path, NULL};
        CHECK_ST(load(&all,
                      "{\"vaults\":[{\"name\":\"v\",\"properties\":{"
                      "\"sku\":{\"family\":\"A\",\"name\":\"premium\"},\"networkAcls\":{"
                      "\"bypass\":\"None\",\"defaultAction\":\"Deny\","
                      "\"ipRules\":[{\"value\":\"10.0.0.1\"}],\"virtualNetworkRules\":[{\"id\":"
                      "\"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                      "virtualNetworks/n/subnets/m\",\"ignoreMissingVnetServiceEndpoint\":true}]}}}]}",
                      3, args),
                 KV_OK);
        CHECK(all.n_vaults == 1 && all.vaults[0].premium && all.vaults[0].net_deny);
        /* a subnet's id is kept in lowercase, as Resource Manager answers it */
        CHECK(all.net_rules[0].vnet_count == 1);
        CHECK_STR(all.net_rules[0].vnet[0].id, "/subscriptions/s/resourcegroups/g/providers/"
                                               "microsoft.network/virtualnetworks/n/subnets/m");
        srv_config_free(&all);
    }
    refused("{\"identities\":[{\"name\":\"a\",\"objectId\":\"o\"}]}", "needs 'clientId'");
    refused("{\"identities\":[{\"name\":\"a\",\"objectId\":\"o\",\"clientId\":\"c\","
            "\"trustedService\":\"yes\"}]}",
            "'trustedService' in identities[0] must be true or false");
    refused("{\"identities\":[{\"name\":\"a\",\"objectId\":\"o\",\"clientId\":\"c\","
            "\"default\":true},{\"name\":\"b\",\"objectId\":\"p\",\"clientId\":\"d\","
            "\"default\":true}]}",
            "only one identity");
    refused("{\"vaults\":[{\"name\":\"Bad_Name\"}]}", "vault name");
    refused("{\"vaults\":[{\"name\":\"v\"},{\"name\":\"v\"}]}", "named twice");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"enableSoftDelete\":\"yes\"}}]}",
            "true or false");
    refused("{\"vaults\": [", "not valid JSON");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"accessPolicies\":[{\"objectId\":\"o\","
            "\"permissions\":{\"keys\":[\"fly\"]}}]}}]}",
            "unknown key permission 'fly'");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"accessPolicies\":[{\"objectId\":\"o\","
            "\"permissions\":{\"keys\":[\"get\"],\"secrets\":[\"wrapKey\"]}}]}}]}",
            "unknown secret permission 'wrapKey'");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"accessPolicies\":[{\"objectId\":\"o\","
            "\"permissions\":{\"certificates\":\"get\"}}]}}]}",
            "permissions.certificates must be an array");
    refused("{\"vaults\":[{\"name\":\"v\",\"properties\":{\"accessPolicies\":[{\"objectId\":\"o\"}]"
            "}}]}",
            "needs 'permissions'");
    refused("{\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":\"Owner\","
            "\"scope\":\"/vaults/v\"}]}",
            "unknown role 'Owner'");
    refused(
        "{\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Vault Reader\","
        "\"scope\":\"/secrets/v\"}]}",
        "scope '/secrets/v'");
    /* one principal, role and scope make one assignment: two names for one are refused;
     * the same assignment twice (one derived name) is one */
    refused("{\"roleAssignments\":["
            "{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Vault Reader\","
            "\"scope\":\"/vaults/v\",\"name\":\"5d3c1a2b-0000-4000-8000-000000000001\"},"
            "{\"principalId\":\"P\",\"roleDefinitionId\":\"21090545-7ca7-4776-b22c-e363652d74d2\","
            "\"scope\":\"/vaults/V/\"}]}",
            "roleAssignments[1] gives roleAssignments[0]'s principal, role and scope another name");
    /* a resource group's and the subscription's scope */
    struct srv_config broad;
    CHECK_ST(two_readers(&broad, "/subscriptions/s/resourceGroups/CI-rg", "/subscriptions/s"),
             KV_OK);
    CHECK(broad.n_roles == 2 && strcmp(broad.roles[0].group, "CI-rg") == 0 &&
          broad.roles[0].vault[0] == '\0' && broad.roles[1].group[0] == '\0' &&
          broad.roles[1].vault[0] == '\0' && broad.roles[1].key[0] == '\0' &&
          strcmp(broad.roles[0].id, broad.roles[1].id) != 0);
    srv_config_free(&broad);
    refused("{\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":\"Key Vault Reader\","
            "\"scope\":\"/subscriptions/s/resourceGroups/a%2Fb\"}]}",
            "must be /vaults/NAME");
    struct srv_config twice;
    CHECK_ST(two_readers(&twice, "/vaults/default", "/vaults/default"), KV_OK);
    CHECK(twice.n_roles == 2 && strcmp(twice.roles[0].id, twice.roles[1].id) == 0);
    srv_config_free(&twice);
    /* a vault's scope must name a vault of the file (the built-in one without vaults) */
    refused("{\"roleAssignments\":[{\"principalId\":\"p\",\"roleDefinitionName\":"
            "\"Key Vault Reader\",\"scope\":\"/vaults/nosuchvault/keys/k\"}]}",
            "roleAssignments[0]: its scope names vault 'nosuchvault', which the file does not "
            "define");
    refused("[]", "JSON object");
    client_assertions();
    role_definitions();
    managed_hsms();
    unlink(cfg_path);
    refused(NULL, "cannot read");
    CHECK_DONE();
}
