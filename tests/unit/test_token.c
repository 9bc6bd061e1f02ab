/* Tokens: issue and verify, tampering, expiry, audience, persistence of the secret. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "kv_buf.h"
#include "pol.h"

static const char *const vault_auds[] = {"https://vault.localhost:8443", "https://vault.azure.net"};

static enum kv_status verify(struct pol_ctx *c, const char *tok, int64_t now)
{
    struct pol_claims cl;
    return pol_token_verify(c, tok, now, vault_auds, 2, &cl);
}

int main(void)
{
    char dir[] = "/tmp/kvmock-token-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    struct pol_ctx *c = NULL;
    CHECK_ST(pol_new(dir, "tenant-1", &c), KV_OK);
    if (c == NULL)
        CHECK_DONE();

    char path[256];
    snprintf(path, sizeof(path), "%s/token.key", dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);

    struct pol_identity app = {.name = "app", .object_id = "oid-1", .client_id = "cid-1",
                               .is_default = 1};
    struct pol_identity guest = {.name = "guest", .object_id = "oid-2", .client_id = "cid-2",
                                 .tenant_id = "tenant-2"};
    CHECK_ST(pol_add_identity(c, &app), KV_OK);
    CHECK_ST(pol_add_identity(c, &guest), KV_OK);
    struct pol_identity dup = {.name = "dup", .object_id = "oid-1", .client_id = "cid-9"};
    CHECK_ST(pol_add_identity(c, &dup), KV_ERR_BAD_PARAM);
    /* ids match without regard to case, so one that differs only in case repeats another */
    struct pol_identity upper = {.name = "upper", .object_id = "OID-1", .client_id = "cid-8"};
    CHECK_ST(pol_add_identity(c, &upper), KV_ERR_BAD_PARAM);
    struct pol_identity upper_client = {.name = "uc", .object_id = "oid-7", .client_id = "CID-2"};
    CHECK_ST(pol_add_identity(c, &upper_client), KV_ERR_BAD_PARAM);
    /* a name makes the default resource id mi_res_id= finds: "Guest" would make guest's
     * (resource ids match without regard to case), and so would an explicit one */
    struct pol_identity same_name = {.name = "Guest", .object_id = "oid-6", .client_id = "cid-6"};
    CHECK_ST(pol_add_identity(c, &same_name), KV_ERR_BAD_PARAM);
    CHECK(same_name.resource_id[0] == '\0'); /* a refused identity is left as it came */
    struct pol_identity same_rid = {
        .name = "other", .object_id = "oid-5", .client_id = "cid-5",
        .resource_id = "/subscriptions/" POL_SUBSCRIPTION "/resourceGroups/" POL_RESOURCE_GROUP
                       "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/guest"};
    CHECK_ST(pol_add_identity(c, &same_rid), KV_ERR_BAD_PARAM);

    /* in the order added */
    CHECK(pol_identity_count(c) == 2);
    CHECK(pol_identity_at(c, 1) != NULL && strcmp(pol_identity_at(c, 1)->name, "guest") == 0);
    CHECK(pol_identity_at(c, 2) == NULL);

    /* lookup by each selector, and the default */
    const struct pol_identity *id = pol_find_identity(c, NULL, NULL, NULL);
    CHECK(id != NULL && strcmp(id->name, "app") == 0);
    id = pol_find_identity(c, "cid-2", NULL, NULL);
    CHECK(id != NULL && strcmp(id->name, "guest") == 0 && strcmp(id->tenant_id, "tenant-2") == 0);
    id = pol_find_identity(c, NULL, "oid-2", NULL);
    CHECK(id != NULL && strcmp(id->name, "guest") == 0);
    CHECK(pol_find_identity(c, "nobody", NULL, NULL) == NULL);
    id = pol_find_identity(c, NULL, NULL, NULL);
    CHECK(id != NULL && strstr(id->resource_id, "/userAssignedIdentities/app") != NULL);

    /* a good token verifies and carries its claims */
    char *tok = NULL;
    int64_t exp = 0, now = 1700000000;
    CHECK_ST(pol_token_issue(c, pol_find_identity(c, NULL, NULL, NULL), "https://vault.azure.net",
                             now, &tok, &exp),
             KV_OK);
    CHECK(exp == now + POL_TOKEN_LIFETIME);
    struct pol_claims cl;
    memset(&cl, 0, sizeof(cl));
    CHECK_ST(pol_token_verify(c, tok, now + 10, vault_auds, 2, &cl), KV_OK);
    CHECK_STR(cl.oid, "oid-1");
    CHECK_STR(cl.appid, "cid-1");
    CHECK_STR(cl.tid, "tenant-1");

    /* expiry and not-before */
    CHECK_ST(verify(c, tok, exp), KV_ERR_UNAUTHORIZED);
    CHECK_ST(verify(c, tok, exp - 1), KV_OK);
    CHECK_ST(verify(c, tok, now - 1), KV_ERR_UNAUTHORIZED);

    /* every single-character change is refused */
    size_t len = strlen(tok);
    char *bad = strdup(tok);
    int all_refused = 1;
    for (size_t i = 0; i < len; i += 3) {
        char saved = bad[i];
        bad[i] = saved == 'A' ? 'B' : 'A';
        if (bad[i] != saved && verify(c, bad, now) == KV_OK)
            all_refused = 0;
        bad[i] = saved;
    }
    CHECK(all_refused);
    free(bad);
    CHECK_ST(verify(c, "", now), KV_ERR_UNAUTHORIZED);
    CHECK_ST(verify(c, "a.b", now), KV_ERR_UNAUTHORIZED);
    CHECK_ST(verify(c, "a.b.c.d", now), KV_ERR_UNAUTHORIZED);

    /* an unsigned ("alg":"none") token with the same payload is refused */
    const char *dot2 = strrchr(tok, '.');
    char *none = NULL;
    CHECK_ST(kv_b64url_encode("{\"alg\":\"none\",\"typ\":\"JWT\"}", 26, &none), KV_OK);
    const char *dot1 = strchr(tok, '.');
    char forged[4096];
    snprintf(forged, sizeof(forged), "%s%.*s.", none, (int)(dot2 - dot1), dot1);
    CHECK_ST(verify(c, forged, now), KV_ERR_UNAUTHORIZED);
    free(none);

    /* audiences: trailing slash ignored, other audiences refused */
    char *tok2 = NULL;
    CHECK_ST(pol_token_issue(c, pol_find_identity(c, NULL, NULL, NULL),
                             "https://vault.localhost:8443/", now, &tok2, &exp),
             KV_OK);
    CHECK_ST(verify(c, tok2, now), KV_OK);
    free(tok2);
    CHECK_ST(pol_token_issue(c, pol_find_identity(c, NULL, NULL, NULL),
                             "https://management.azure.com", now, &tok2, &exp),
             KV_OK);
    CHECK_ST(verify(c, tok2, now), KV_ERR_UNAUTHORIZED);
    free(tok2);

    /* Verified claims are cached by signature; every check still runs on a hit:
     * a token seen for the vault is refused for another audience, and tokens
     * that evict each other from the cache's slots all still verify. */
    const char *const other_auds[] = {"https://management.azure.com"};
    CHECK_ST(verify(c, tok, now), KV_OK);
    CHECK_ST(pol_token_verify(c, tok, now, other_auds, 1, &cl), KV_ERR_UNAUTHORIZED);
    /* refused for its audience alone, the token's audience is told; for anything else,
     * nothing is */
    char wrong_aud[POL_AUD_MAX] = "x";
    CHECK_ST(pol_token_check(c, tok, now, other_auds, 1, &cl, wrong_aud), KV_ERR_UNAUTHORIZED);
    CHECK(strcmp(wrong_aud, "https://vault.azure.net") == 0);
    CHECK_ST(pol_token_check(c, tok, now, vault_auds, 2, &cl, wrong_aud), KV_OK);
    CHECK(wrong_aud[0] == '\0');
    CHECK_ST(pol_token_check(c, tok, now + 2 * POL_TOKEN_LIFETIME, other_auds, 1, &cl, wrong_aud),
             KV_ERR_UNAUTHORIZED);
    CHECK(wrong_aud[0] == '\0');
    CHECK_ST(pol_token_check(c, "garbage", now, other_auds, 1, &cl, wrong_aud),
             KV_ERR_UNAUTHORIZED);
    CHECK(wrong_aud[0] == '\0');
    char *many[600];
    int all_ok = 1;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 600; i++) {
            if (round == 0 && pol_token_issue(c, pol_find_identity(c, NULL, NULL, NULL),
                                              "https://vault.azure.net", now + i, &many[i],
                                              &exp) != KV_OK) {
                many[i] = NULL;
                all_ok = 0;
                continue;
            }
            memset(&cl, 0, sizeof(cl));
            if (many[i] == NULL || verify(c, many[i], now + i) != KV_OK ||
                pol_token_verify(c, many[i], now + i, vault_auds, 2, &cl) != KV_OK ||
                cl.iat != now + i || strcmp(cl.oid, "oid-1") != 0)
                all_ok = 0;
        }
    }
    CHECK(all_ok);
    for (int i = 0; i < 600; i++)
        free(many[i]);

    /* the secret persists: a new context verifies the old token */
    pol_free(c);
    c = NULL;
    CHECK_ST(pol_new(dir, "tenant-1", &c), KV_OK);
    if (c != NULL) {
        /* same secret, but the identity is gone: its tokens are refused */
        CHECK_ST(verify(c, tok, now), KV_ERR_UNAUTHORIZED);
        CHECK_ST(pol_add_identity(c, &app), KV_OK);
        CHECK_ST(verify(c, tok, now), KV_OK);
    }

    /* another data folder has another secret */
    char dir2[] = "/tmp/kvmock-token-XXXXXX";
    CHECK(mkdtemp(dir2) != NULL);
    struct pol_ctx *c2 = NULL;
    CHECK_ST(pol_new(dir2, "tenant-1", &c2), KV_OK);
    if (c2 != NULL) {
        CHECK_ST(pol_add_identity(c2, &app), KV_OK);
        CHECK_ST(verify(c2, tok, now), KV_ERR_UNAUTHORIZED);
    }
    pol_free(c2);
    snprintf(path, sizeof(path), "%s/token.key", dir2);
    unlink(path);
    rmdir(dir2);

    free(tok);
    pol_free(c);
    snprintf(path, sizeof(path), "%s/token.key", dir);
    unlink(path);
    rmdir(dir);
    CHECK_DONE();
}
