/*
 * The key lifecycle in the keystore: active -> deleted -> recovered or purged,
 * retention arithmetic and recovery levels, purge protection, automatic purge,
 * update, import, rotate and its policy, backup/restore, a Managed HSM's full backup and
 * its full and selective restores.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ks.h"
#include "kv_buf.h"
#include "seal.h"
#include "store.h"
#include "testkeyops.h"

static char dir[] = "/tmp/kvmock-life-XXXXXX";
static struct ks_env *env;

static void put_vault(const char *name, int soft_delete, int days, int pp)
{
    struct ks_vault v = {.soft_delete = soft_delete, .retention_days = days,
                         .purge_protection = pp};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
}

static struct ks_key *create(const char *vault, const char *name, enum ks_kty kty)
{
    struct ks_create p = {.kty = kty, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, vault, name, &p, &k), KV_OK);
    return k;
}

static void recovery_levels(void)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 90};
    int days = -1;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "Recoverable+Purgeable");
    CHECK(days == 90);
    v.purge_protection = 1;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "Recoverable");
    v.retention_days = 7;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "CustomizedRecoverable");
    CHECK(days == 7);
    v.purge_protection = 0;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "CustomizedRecoverable+Purgeable");
    v.soft_delete = 0;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "Purgeable");
    CHECK(days == 0);
}

static void delete_recover_purge(void)
{
    put_vault("soft", 1, 10, 0);
    struct ks_key *k1 = create("soft", "cmk", KS_KTY_RSA);
    struct ks_key *k2 = create("soft", "cmk", KS_KTY_RSA);
    struct ks_key *d = NULL, *g = NULL;
    if (k1 == NULL || k2 == NULL)
        goto out;

    CHECK_ST(ks_deleted_get(env, "soft", "cmk", &g), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_deleted_recover(env, "soft", "cmk", &g), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_deleted_purge(env, "soft", "cmk"), KV_ERR_DELETED_KEY_NOT_FOUND);

    int64_t before = ks_now();
    CHECK_ST(ks_key_delete(env, "soft", "CMK", &d), KV_OK);
    if (d != NULL) {
        CHECK_STR(d->version, k2->version);
        CHECK(d->deleted_date >= before && d->deleted_date <= ks_now());
        CHECK(d->scheduled_purge == d->deleted_date + 10 * 86400);
        CHECK_STR(d->recovery_level, "CustomizedRecoverable+Purgeable");
        CHECK(d->recoverable_days == 10);
    }
    /* deleted: not gettable, not listed, not usable, name not reusable */
    CHECK_ST(ks_key_get(env, "soft", "cmk", NULL, &g), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "soft", "cmk", k1->version, &g), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_delete(env, "soft", "cmk", &g), KV_ERR_KEY_NOT_FOUND);
    struct ks_key_page *page = NULL;
    CHECK_ST(ks_key_list(env, "soft", NULL, 25, &page), KV_OK);
    CHECK(page != NULL && page->count == 0);
    ks_key_page_free(page);
    page = NULL;
    struct ks_create again = {.kty = KS_KTY_EC, .attrs = {.enabled = 1}};
    CHECK_ST(ks_key_create(env, "soft", "cmk", &again, &g), KV_ERR_KEY_DELETED_RECOVERABLE);
    CHECK(g == NULL);

    /* the deleted key is visible as deleted */
    CHECK_ST(ks_deleted_get(env, "soft", "cmk", &g), KV_OK);
    CHECK(g != NULL && g->scheduled_purge == d->scheduled_purge);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_deleted_list(env, "soft", NULL, 25, &page), KV_OK);
    CHECK(page != NULL && page->count == 1 && page->items[0]->deleted_date != 0);
    ks_key_page_free(page);
    page = NULL;

    /* recover brings back every version unchanged */
    CHECK_ST(ks_deleted_recover(env, "soft", "cmk", &g), KV_OK);
    CHECK(g != NULL && strcmp(g->version, k2->version) == 0 && g->deleted_date == 0);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_key_get(env, "soft", "cmk", k1->version, &g), KV_OK);
    CHECK(g != NULL && g->pub.n.len == k1->pub.n.len &&
          memcmp(g->pub.n.data, k1->pub.n.data, g->pub.n.len) == 0);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_deleted_get(env, "soft", "cmk", &g), KV_ERR_DELETED_KEY_NOT_FOUND);

    /* delete again and purge: the name is free */
    ks_key_free(d);
    d = NULL;
    CHECK_ST(ks_key_delete(env, "soft", "cmk", &d), KV_OK);
    CHECK_ST(ks_deleted_purge(env, "soft", "cmk"), KV_OK);
    CHECK_ST(ks_deleted_get(env, "soft", "cmk", &g), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "soft", "cmk", k1->version, &g), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_create(env, "soft", "cmk", &again, &g), KV_OK);
    ks_key_free(g);
out:
    ks_key_free(d);
    ks_key_free(k1);
    ks_key_free(k2);
}

static void purge_protection_and_expiry(void)
{
    put_vault("pp", 1, 7, 1);
    struct ks_key *k = create("pp", "cmk", KS_KTY_EC), *d = NULL, *g = NULL;
    CHECK_ST(ks_key_delete(env, "pp", "cmk", &d), KV_OK);
    CHECK(d != NULL && strcmp(d->recovery_level, "CustomizedRecoverable") == 0);
    CHECK_ST(ks_deleted_purge(env, "pp", "cmk"), KV_ERR_PURGE_PROTECTED);
    CHECK_ST(ks_deleted_get(env, "pp", "cmk", &g), KV_OK); /* nothing removed */
    ks_key_free(g);
    g = NULL;

    /* shortly before the scheduled purge it is still there; at it, gone (30 s before: the
     * clock's own seconds run on between the move and the read, and must not reach it) */
    ks_clock_advance(d->scheduled_purge - ks_now() - 30);
    CHECK_ST(ks_deleted_get(env, "pp", "cmk", &g), KV_OK);
    ks_key_free(g);
    g = NULL;
    ks_clock_advance(30);
    CHECK_ST(ks_deleted_get(env, "pp", "cmk", &g), KV_ERR_DELETED_KEY_NOT_FOUND);
    size_t purged = 0, rotated = 0;
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(purged == 1 && rotated == 0);
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(purged == 0);
    /* the name is free again */
    struct ks_key *n = create("pp", "cmk", KS_KTY_EC);
    CHECK(n != NULL);
    ks_key_free(n);
    ks_key_free(k);
    ks_key_free(d);
}

static void no_soft_delete(void)
{
    put_vault("hard", 0, 90, 0);
    struct ks_key *k = create("hard", "tmp", KS_KTY_OCT), *d = NULL, *g = NULL;
    CHECK_ST(ks_key_delete(env, "hard", "tmp", &d), KV_OK);
    CHECK(d != NULL && d->deleted_date == 0 && strcmp(d->recovery_level, "Purgeable") == 0);
    CHECK_ST(ks_deleted_get(env, "hard", "tmp", &g), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "hard", "tmp", NULL, &g), KV_ERR_KEY_NOT_FOUND);
    ks_key_free(k);
    ks_key_free(d);
}

/* Wrap @p p->value with version @p version of soft/upd inside its window, move the window
 * with @p outside, then check that a wrap is refused with @p refused and that the value
 * still unwraps. */
static void unwrap_outside_window(const char *version, const struct ks_op_params *p,
                                  const struct ks_update *outside, enum kv_status refused)
{
    struct ks_update valid = {.nbf_set = 1, .nbf = 0, .exp_set = 1, .exp = 0};
    struct ks_key *u = NULL;
    struct ks_op_result wrapped = {0}, r = {0};
    CHECK_ST(ks_key_update(env, "soft", "upd", version, &valid, &u), KV_OK);
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_key_op(env, "soft", "upd", version, KS_OP_WRAP, p, &wrapped), KV_OK);
    CHECK_ST(ks_key_update(env, "soft", "upd", version, outside, &u), KV_OK);
    ks_key_free(u);
    CHECK_ST(ks_key_op(env, "soft", "upd", version, KS_OP_WRAP, p, &r), refused);
    struct ks_op_params back = {.alg = p->alg, .value = {wrapped.value.data, wrapped.value.len}};
    CHECK_ST(ks_key_op(env, "soft", "upd", version, KS_OP_UNWRAP, &back, &r), KV_OK);
    CHECK(r.value.len == p->value.len && memcmp(r.value.data, p->value.data, p->value.len) == 0);
    ks_op_result_clear(&r);
    ks_op_result_clear(&wrapped);
}

static void update(void)
{
    struct ks_key *k1 = create("soft", "upd", KS_KTY_RSA);
    struct ks_key *k2 = create("soft", "upd", KS_KTY_RSA), *u = NULL;
    if (k1 == NULL || k2 == NULL)
        goto out;
    char *names[] = {"env"}, *values[] = {"test"};
    struct ks_update up = {.enabled_set = 1, .enabled = 0, .exp_set = 1, .exp = 4102444800,
                           .ops_set = 1, .ops = KS_OP_WRAP | KS_OP_UNWRAP, .tags_set = 1,
                           .tags = {1, names, values}};
    ks_clock_advance(5);
    CHECK_ST(ks_key_update(env, "soft", "upd", k1->version, &up, &u), KV_OK);
    if (u != NULL) {
        CHECK(!u->attrs.enabled && u->attrs.exp == 4102444800);
        CHECK(u->ops == (KS_OP_WRAP | KS_OP_UNWRAP));
        CHECK(u->tags.count == 1 && strcmp(u->tags.values[0], "test") == 0);
        CHECK(u->attrs.updated > u->attrs.created);
    }
    ks_key_free(u);
    u = NULL;
    /* only that version changed */
    CHECK_ST(ks_key_get(env, "soft", "upd", NULL, &u), KV_OK);
    CHECK(u != NULL && u->attrs.enabled && u->tags.count == 0);
    ks_key_free(u);
    u = NULL;

    /* disabled, not yet valid and expired versions refuse operations */
    unsigned char secret[32] = {1};
    struct ks_op_params p = {.alg = KS_ALG_RSA_OAEP, .value = {secret, sizeof(secret)}};
    struct ks_op_result r = {0};
    CHECK_ST(ks_key_op(env, "soft", "upd", k1->version, KS_OP_WRAP, &p, &r),
             KV_ERR_KEY_DISABLED);
    struct ks_update nbf = {.enabled_set = 1, .enabled = 1, .nbf_set = 1, .nbf = ks_now() + 100};
    CHECK_ST(ks_key_update(env, "soft", "upd", k1->version, &nbf, &u), KV_OK);
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_key_op(env, "soft", "upd", k1->version, KS_OP_WRAP, &p, &r),
             KV_ERR_KEY_NOT_YET_VALID);
    struct ks_update exp = {.nbf_set = 1, .nbf = 0, .exp_set = 1, .exp = ks_now()};
    CHECK_ST(ks_key_update(env, "soft", "upd", k1->version, &exp, &u), KV_OK);
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_key_op(env, "soft", "upd", k1->version, KS_OP_WRAP, &p, &r), KV_ERR_KEY_EXPIRED);
    /* outside the window, what the version wrapped while valid still unwraps */
    struct ks_update expired = {.exp_set = 1, .exp = ks_now() - 1};
    struct ks_update early = {.exp_set = 1, .exp = 0, .nbf_set = 1, .nbf = ks_now() + 100};
    unwrap_outside_window(k1->version, &p, &expired, KV_ERR_KEY_EXPIRED);
    unwrap_outside_window(k1->version, &p, &early, KV_ERR_KEY_NOT_YET_VALID);
    /* the current version is unaffected */
    CHECK_ST(ks_key_op(env, "soft", "upd", NULL, KS_OP_WRAP, &p, &r), KV_OK);
    ks_op_result_clear(&r);
    CHECK_ST(ks_key_update(env, "soft", "nosuch", NULL, &exp, &u), KV_ERR_KEY_NOT_FOUND);
out:
    ks_key_free(k1);
    ks_key_free(k2);
}

static void rotate_and_policy(void)
{
    struct ks_create p = {.kty = KS_KTY_RSA, .size_bits = 3072, .exponent = 3,
                          .ops = KS_OP_WRAP | KS_OP_UNWRAP, .ops_set = 1,
                          .attrs = {.enabled = 1}};
    struct ks_key *k = NULL, *r = NULL;
    CHECK_ST(ks_key_create(env, "soft", "rot", &p, &k), KV_OK);
    struct ks_rotation_policy pol;
    CHECK_ST(ks_rotation_policy_get(env, "soft", "rot", &pol), KV_OK);
    CHECK(!pol.is_set);

    struct ks_rotation_policy in = {.expiry = "P60D", .expiry_s = 60 * 86400, .n_actions = 1,
                                    .actions = {{.rotate = 1, .after_create = "P30D",
                                                 .after_create_s = 30 * 86400}}};
    CHECK_ST(ks_rotation_policy_set(env, "soft", "rot", &in, &pol), KV_OK);
    CHECK(pol.is_set && pol.created > 0 && pol.updated >= pol.created);
    CHECK_ST(ks_rotation_policy_get(env, "soft", "rot", &pol), KV_OK);
    CHECK(pol.is_set && pol.n_actions == 1 && pol.actions[0].rotate &&
          strcmp(pol.actions[0].after_create, "P30D") == 0 && pol.expiry_s == 60 * 86400);

    /* a manual rotation keeps type, size, exponent and ops, and applies the expiry */
    CHECK_ST(ks_key_rotate(env, "soft", "rot", &r), KV_OK);
    if (r != NULL && k != NULL) {
        CHECK(strcmp(r->version, k->version) != 0);
        CHECK(r->pub.size_bits == 3072 && r->pub.e.len == 1 && r->pub.e.data[0] == 3);
        CHECK(r->ops == (KS_OP_WRAP | KS_OP_UNWRAP));
        CHECK(r->attrs.exp == r->attrs.created + 60 * 86400);
    }
    /* the trigger: 30 days after the current version was created */
    size_t purged = 0, rotated = 0;
    ks_clock_advance(29 * 86400);
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(rotated == 0);
    ks_clock_advance(1 * 86400);
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(rotated == 1);
    struct ks_key_page *page = NULL;
    CHECK_ST(ks_key_list_versions(env, "soft", "rot", NULL, 25, &page), KV_OK);
    CHECK(page != NULL && page->count == 3);
    ks_key_page_free(page);
    CHECK_ST(ks_key_rotate(env, "soft", "nosuch", &r), KV_ERR_KEY_NOT_FOUND);
    ks_key_free(k);
    ks_key_free(r);
}

static void backup_restore(void)
{
    struct ks_key *k1 = create("soft", "bk", KS_KTY_RSA);
    struct ks_key *k2 = create("soft", "bk", KS_KTY_RSA), *r = NULL, *d = NULL;
    struct kv_buf blob = {0};
    if (k1 == NULL || k2 == NULL)
        goto out;
    unsigned char secret[32];
    randombytes_buf(secret, sizeof(secret));
    struct ks_op_params p = {.alg = KS_ALG_RSA_OAEP_256, .value = {secret, sizeof(secret)}};
    struct ks_op_result w = {0}, u = {0};
    CHECK_ST(ks_key_op(env, "soft", "bk", k1->version, KS_OP_WRAP, &p, &w), KV_OK);

    CHECK_ST(ks_key_backup(env, "soft", "bk", &blob), KV_OK);
    CHECK(blob.len > 0);
    /* restoring over a live key conflicts */
    CHECK_ST(ks_key_restore(env, "soft", blob.data, blob.len, NULL, &r), KV_ERR_KEY_EXISTS);
    /* a soft-deleted name conflicts too */
    CHECK_ST(ks_key_delete(env, "soft", "bk", &d), KV_OK);
    char name[KS_NAME_MAX + 1];
    CHECK_ST(ks_key_restore(env, "soft", blob.data, blob.len, name, &r),
             KV_ERR_KEY_DELETED_RECOVERABLE);
    CHECK(strcmp(name, "bk") == 0); /* the blob's name, for the refusal's message */
    CHECK_ST(ks_deleted_purge(env, "soft", "bk"), KV_OK);
    /* a corrupt blob is refused, naming nothing */
    blob.data[blob.len / 2] ^= 1;
    CHECK_ST(ks_key_restore(env, "soft", blob.data, blob.len, name, &r), KV_ERR_BAD_BACKUP);
    CHECK(name[0] == '\0');
    blob.data[blob.len / 2] ^= 1;
    CHECK_ST(ks_key_restore(env, "soft", blob.data, 10, NULL, &r), KV_ERR_BAD_BACKUP);
    /* restored into another vault: same versions, old ciphertext unwraps */
    CHECK_ST(ks_key_restore(env, "paged", blob.data, blob.len, NULL, &r), KV_OK);
    CHECK(r != NULL && strcmp(r->version, k2->version) == 0);
    struct ks_op_params q = {.alg = KS_ALG_RSA_OAEP_256, .value = w.value};
    CHECK_ST(ks_key_op(env, "paged", "bk", k1->version, KS_OP_UNWRAP, &q, &u), KV_OK);
    CHECK(u.value.len == 32 && memcmp(u.value.data, secret, 32) == 0);
    ks_op_result_clear(&u);
    ks_op_result_clear(&w);
out:
    kv_buf_free(&blob);
    ks_key_free(k1);
    ks_key_free(k2);
    ks_key_free(r);
    ks_key_free(d);
}

/* key_ops keep the client's order through update, rotate, the sweep's rotation, delete and
 * backup/restore. */
static void key_ops_order(void)
{
    put_vault("ordered", 1, 7, 0);
    struct ks_create p = {.kty = KS_KTY_RSA, .ops_set = 1, .attrs = {.enabled = 1}};
    ko_parse(KO_TERRAFORM, 6, &p.ops, &p.ops_order);
    struct ks_key *k1 = NULL, *k2 = NULL, *u = NULL, *r = NULL, *g = NULL;
    struct kv_buf blob = {0};
    CHECK_ST(ks_key_create(env, "ordered", "tf", &p, &k1), KV_OK);
    CHECK_ST(ks_key_create(env, "ordered", "tf", &p, &k2), KV_OK);
    if (k1 == NULL || k2 == NULL)
        goto out;
    KO_CHECK(k2, KO_TERRAFORM_TEXT);

    /* an update of the current version with another order answers and keeps that one */
    const char *uw[] = {"unwrapKey", "wrapKey"};
    struct ks_update up = {.ops_set = 1};
    ko_parse(uw, 2, &up.ops, &up.ops_order);
    CHECK_ST(ks_key_update(env, "ordered", "tf", NULL, &up, &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_key_get(env, "ordered", "tf", NULL, &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;
    /* only that version: the first keeps its own */
    CHECK_ST(ks_key_get(env, "ordered", "tf", k1->version, &u), KV_OK);
    KO_CHECK(u, KO_TERRAFORM_TEXT);
    ks_key_free(u);
    u = NULL;
    /* the same set in the fixed order leaves none of the old order behind */
    const char *wu[] = {"wrapKey", "unwrapKey"};
    ko_parse(wu, 2, &up.ops, &up.ops_order);
    CHECK_ST(ks_key_update(env, "ordered", "tf", NULL, &up, &u), KV_OK);
    KO_CHECK(u, "wrapKey,unwrapKey");
    ks_key_free(u);
    u = NULL;
    ko_parse(uw, 2, &up.ops, &up.ops_order);
    CHECK_ST(ks_key_update(env, "ordered", "tf", NULL, &up, &u), KV_OK);
    ks_key_free(u);
    u = NULL;
    /* an update without key_ops keeps them and their order */
    struct ks_update en = {.enabled_set = 1, .enabled = 1};
    CHECK_ST(ks_key_update(env, "ordered", "tf", NULL, &en, &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;

    /* a rotation's new version keeps the current version's order */
    CHECK_ST(ks_key_rotate(env, "ordered", "tf", &r), KV_OK);
    CHECK(r != NULL && strcmp(r->version, k2->version) != 0);
    KO_CHECK(r, "unwrapKey,wrapKey");
    /* so does the sweep's */
    struct ks_rotation_policy in = {
        .n_actions = 1,
        .actions = {{.rotate = 1, .after_create = "P30D", .after_create_s = 30 * 86400}}};
    struct ks_rotation_policy pol;
    CHECK_ST(ks_rotation_policy_set(env, "ordered", "tf", &in, &pol), KV_OK);
    size_t purged = 0, rotated = 0;
    ks_clock_advance(30 * 86400);
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(rotated >= 1);
    CHECK_ST(ks_key_get(env, "ordered", "tf", NULL, &u), KV_OK);
    CHECK(u != NULL && r != NULL && strcmp(u->version, r->version) != 0);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;

    /* backup, delete (the deleted key shows them), purge, restore: every version as it was */
    CHECK_ST(ks_key_backup(env, "ordered", "tf", &blob), KV_OK);
    CHECK_ST(ks_key_delete(env, "ordered", "tf", &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_deleted_get(env, "ordered", "tf", &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_deleted_purge(env, "ordered", "tf"), KV_OK);
    CHECK_ST(ks_key_restore(env, "ordered", blob.data, blob.len, NULL, &g), KV_OK);
    KO_CHECK(g, "unwrapKey,wrapKey");
    CHECK_ST(ks_key_get(env, "ordered", "tf", k1->version, &u), KV_OK);
    KO_CHECK(u, KO_TERRAFORM_TEXT);
    ks_key_free(u);
    u = NULL;
    CHECK_ST(ks_key_get(env, "ordered", "tf", r != NULL ? r->version : "", &u), KV_OK);
    KO_CHECK(u, "unwrapKey,wrapKey");
out:
    kv_buf_free(&blob);
    ks_key_free(k1);
    ks_key_free(k2);
    ks_key_free(u);
    ks_key_free(r);
    ks_key_free(g);
}

static void cleanup(void)
{
    check_remove_dir(dir);
}

/* A Managed HSM's backup goes back to a Managed HSM, a vault's to a vault; a refused restore
 * writes nothing. */
static void backup_kinds(void)
{
    struct ks_vault h = {.soft_delete = 1, .retention_days = 7, .premium = 1, .hsm = 1};
    snprintf(h.name, sizeof(h.name), "hsm");
    snprintf(h.tenant_id, sizeof(h.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &h), KV_OK);
    put_vault("vlt", 1, 7, 0);
    struct ks_key *hk = create("hsm", "hk", KS_KTY_RSA), *vk = create("vlt", "vk", KS_KTY_EC);
    struct kv_buf hb = {0}, vb = {0};
    struct ks_key *r = NULL;
    CHECK(hk != NULL && hk->hsm); /* an HSM's key is a hardware key */
    CHECK(vk != NULL && !vk->hsm);
    CHECK_ST(ks_key_backup(env, "hsm", "hk", &hb), KV_OK);
    CHECK_ST(ks_key_backup(env, "vlt", "vk", &vb), KV_OK);
    CHECK_ST(ks_key_restore(env, "vlt", hb.data, hb.len, NULL, &r), KV_ERR_BACKUP_KIND);
    CHECK_ST(ks_key_restore(env, "hsm", vb.data, vb.len, NULL, &r), KV_ERR_BACKUP_KIND);
    CHECK_ST(ks_key_get(env, "vlt", "hk", NULL, &r), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "hsm", "vk", NULL, &r), KV_ERR_KEY_NOT_FOUND);
    /* into another HSM it goes, as into another vault */
    snprintf(h.name, sizeof(h.name), "hsm2");
    CHECK_ST(ks_vault_put(env, &h), KV_OK);
    CHECK_ST(ks_key_restore(env, "hsm2", hb.data, hb.len, NULL, &r), KV_OK);
    CHECK(r != NULL && r->hsm && strcmp(r->version, hk->version) == 0);
    ks_key_free(r);
    ks_key_free(hk);
    ks_key_free(vk);
    kv_buf_free(&hb);
    kv_buf_free(&vb);
}

/* ---- a Managed HSM's full backup, full restore and selective restore ------------------------ */

static void put_hsm(const char *name, int pp)
{
    struct ks_vault h = {
        .soft_delete = 1, .retention_days = 7, .purge_protection = pp, .premium = 1, .hsm = 1};
    snprintf(h.name, sizeof(h.name), "%s", name);
    snprintf(h.tenant_id, sizeof(h.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &h), KV_OK);
}

static size_t add(char *out, size_t cap, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static size_t add(char *out, size_t cap, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (len < cap) {
        int n = vsnprintf(out + len, cap - len, fmt, ap);
        len = n < 0 ? cap : len + (size_t)n;
    }
    va_end(ap);
    return len < cap ? len : cap;
}

/* What vault @p vault holds: each live key with its current version and every version, then
 * each soft-deleted key. */
static void vault_state(const char *vault, char *out, size_t cap)
{
    struct ks_key_page *page = NULL, *vp = NULL;
    enum kv_status st = ks_key_list(env, vault, NULL, KS_PAGE_MAX, &page);
    size_t len = add(out, cap, 0, "%s:", kv_status_name(st));
    for (size_t i = 0; st == KV_OK && i < page->count; i++) {
        const struct ks_key *k = page->items[i];
        enum kv_status vs = ks_key_list_versions(env, vault, k->name, NULL, KS_PAGE_MAX, &vp);
        len = add(out, cap, len, " %s=%s[%s", k->name, k->version, kv_status_name(vs));
        for (size_t j = 0; vs == KV_OK && j < vp->count; j++)
            len = add(out, cap, len, " %s", vp->items[j]->version);
        len = add(out, cap, len, "]");
        ks_key_page_free(vp);
        vp = NULL;
    }
    ks_key_page_free(page);
    page = NULL;
    st = ks_deleted_list(env, vault, NULL, KS_PAGE_MAX, &page);
    len = add(out, cap, len, " | deleted %s:", kv_status_name(st));
    for (size_t i = 0; st == KV_OK && i < page->count; i++)
        len = add(out, cap, len, " %s", page->items[i]->name);
    ks_key_page_free(page);
}

/* What the HSM backup test made in "fullhsm" before the backup, to find again after a restore. */
struct hsm_fixture {
    struct ks_key *a1, *a2, *b;             /* Alpha's two versions; beta */
    struct ks_op_result wrapped, signature; /* by Alpha's first version; by beta */
    unsigned char secret[32], digest[32];
};

/* After a full restore of the backup into @p vault: exactly Alpha (both versions) and beta,
 * as they were, and their material works. */
static void hsm_restored(const char *vault, const struct hsm_fixture *f)
{
    struct ks_key_page *page = NULL;
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_list(env, vault, NULL, KS_PAGE_MAX, &page), KV_OK);
    CHECK(page != NULL && page->count == 2);
    if (page != NULL && page->count == 2) {
        CHECK_STR(page->items[0]->name, "Alpha"); /* its casing kept */
        CHECK_STR(page->items[0]->version, f->a2->version);
        CHECK_STR(page->items[1]->name, "beta");
        CHECK_STR(page->items[1]->version, f->b->version);
    }
    ks_key_page_free(page);
    page = NULL;
    CHECK_ST(ks_key_list_versions(env, vault, "alpha", NULL, KS_PAGE_MAX, &page), KV_OK);
    CHECK(page != NULL && page->count == 2);
    for (size_t i = 0; page != NULL && i < page->count; i++)
        CHECK(strcmp(page->items[i]->version, f->a1->version) == 0 ||
              strcmp(page->items[i]->version, f->a2->version) == 0);
    ks_key_page_free(page);
    page = NULL;
    CHECK_ST(ks_key_list_versions(env, vault, "beta", NULL, KS_PAGE_MAX, &page), KV_OK);
    CHECK(page != NULL && page->count == 1);
    ks_key_page_free(page);
    /* the first version's public key, and what it wrapped unwraps */
    CHECK_ST(ks_key_get(env, vault, "alpha", f->a1->version, &k), KV_OK);
    CHECK(k != NULL && k->hsm && k->pub.n.len == f->a1->pub.n.len &&
          memcmp(k->pub.n.data, f->a1->pub.n.data, k->pub.n.len) == 0);
    ks_key_free(k);
    k = NULL;
    struct ks_op_params up = {.alg = KS_ALG_RSA_OAEP_256, .value = f->wrapped.value};
    struct ks_op_result r = {0};
    CHECK_ST(ks_key_op(env, vault, "alpha", f->a1->version, KS_OP_UNWRAP, &up, &r), KV_OK);
    CHECK(r.value.len == 32 && memcmp(r.value.data, f->secret, 32) == 0);
    ks_op_result_clear(&r);
    /* beta: its tags, its rotation policy, its public key; its old signature verifies, and so
     * does a new one */
    CHECK_ST(ks_key_get(env, vault, "beta", NULL, &k), KV_OK);
    CHECK(k != NULL && k->tags.count == 1 && strcmp(k->tags.names[0], "env") == 0 &&
          strcmp(k->tags.values[0], "prod") == 0);
    CHECK(k != NULL && k->pub.x.len == f->b->pub.x.len &&
          memcmp(k->pub.x.data, f->b->pub.x.data, k->pub.x.len) == 0);
    ks_key_free(k);
    struct ks_rotation_policy pol;
    CHECK_ST(ks_rotation_policy_get(env, vault, "beta", &pol), KV_OK);
    CHECK(pol.is_set && strcmp(pol.expiry, "P90D") == 0 && pol.n_actions == 1 &&
          !pol.actions[0].rotate && pol.actions[0].before_expiry_s == 30 * 86400);
    struct ks_op_params vp = {.alg = KS_ALG_ES256,
                              .value = f->signature.value,
                              .digest = {(unsigned char *)f->digest, 32}};
    CHECK_ST(ks_key_op(env, vault, "beta", NULL, KS_OP_VERIFY, &vp, &r), KV_OK);
    CHECK(r.verified);
    ks_op_result_clear(&r);
    struct ks_op_params sp = {.alg = KS_ALG_ES256, .value = {(unsigned char *)f->digest, 32}};
    struct ks_op_result s = {0};
    CHECK_ST(ks_key_op(env, vault, "beta", NULL, KS_OP_SIGN, &sp, &s), KV_OK);
    vp.value = s.value;
    CHECK_ST(ks_key_op(env, vault, "beta", NULL, KS_OP_VERIFY, &vp, &r), KV_OK);
    CHECK(r.verified);
    ks_op_result_clear(&r);
    ks_op_result_clear(&s);
}

static const char hsm_backup_ad[] = "kvmock hsm backup"; /* keys.c's associated data */

/* The document of a full backup blob (test only: holds plain material). */
static cJSON *hsm_blob_open(const struct kv_buf *blob)
{
    struct kv_buf plain = {0};
    CHECK_ST(ks_unseal(env->root_key, hsm_backup_ad, sizeof(hsm_backup_ad), blob->data, blob->len,
                       &plain),
             KV_OK);
    cJSON *doc = cJSON_ParseWithLength((const char *)plain.data, plain.len);
    CHECK(doc != NULL);
    kv_buf_wipe(&plain);
    return doc;
}

/* Seal @p doc (freed) as a full backup blob would be. */
static void hsm_blob_seal(cJSON *doc, struct kv_buf *out)
{
    char *text = cJSON_PrintUnformatted(doc);
    CHECK(text != NULL);
    if (text != NULL) {
        CHECK_ST(ks_seal(env->root_key, hsm_backup_ad, sizeof(hsm_backup_ad), (unsigned char *)text,
                         strlen(text), out),
                 KV_OK);
        sodium_memzero(text, strlen(text));
    }
    cJSON_free(text);
    cJSON_Delete(doc);
}

/* A full restore of @p blob into "fullhsm" refused with @p want, changing nothing. */
static void hsm_refused(const struct kv_buf *blob, const char *only, enum kv_status want,
                        const char *why)
{
    char before[4096], after[4096];
    size_t versions = 99;
    vault_state("fullhsm", before, sizeof(before));
    enum kv_status st =
        ks_hsm_restore(env, "fullhsm", blob->data, blob->len, only, NULL, 0, &versions);
    if (st != want)
        fprintf(stderr, "%s: ks_hsm_restore gave %s, want %s\n", why, kv_status_name(st),
                kv_status_name(want));
    CHECK(st == want);
    CHECK(versions == 0);
    vault_state("fullhsm", after, sizeof(after));
    CHECK_STR(after, before);
}

static void hsm_full_backup(void)
{
    char before[4096], after[4096];
    struct hsm_fixture f = {0};
    struct kv_buf full = {0}, empty = {0}, one = {0}, bad = {0};
    struct ks_key *k = NULL;
    size_t keys = 99, versions = 99;
    put_hsm("fullhsm", 0);
    put_hsm("fullhsm2", 1); /* purge protection: a full restore removes its keys all the same */
    put_hsm("fullhsm3", 0);
    put_hsm("fullhsm4", 0);
    put_vault("fullstd", 1, 7, 0);

    /* Alpha with two versions; beta with tags and a rotation policy; gamma soft-deleted */
    f.a1 = create("fullhsm", "Alpha", KS_KTY_RSA);
    CHECK_ST(ks_key_rotate(env, "fullhsm", "alpha", &f.a2), KV_OK);
    char *tn[] = {"env"}, *tv[] = {"prod"};
    struct ks_create bp = {.kty = KS_KTY_EC, .attrs = {.enabled = 1}, .tags = {1, tn, tv}};
    CHECK_ST(ks_key_create(env, "fullhsm", "beta", &bp, &f.b), KV_OK);
    struct ks_rotation_policy in = {.expiry = "P90D",
                                    .expiry_s = 90 * 86400,
                                    .n_actions = 1,
                                    .actions = {{.before_expiry = "P30D",
                                                 .before_expiry_s = 30 * 86400}}},
                              pol;
    CHECK_ST(ks_rotation_policy_set(env, "fullhsm", "beta", &in, &pol), KV_OK);
    k = create("fullhsm", "gamma", KS_KTY_OCT);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_delete(env, "fullhsm", "gamma", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    k = create("fullstd", "stdkey", KS_KTY_EC);
    ks_key_free(k);
    k = NULL;
    if (f.a1 == NULL || f.a2 == NULL || f.b == NULL)
        goto out;
    randombytes_buf(f.secret, sizeof(f.secret));
    randombytes_buf(f.digest, sizeof(f.digest));
    struct ks_op_params wp = {.alg = KS_ALG_RSA_OAEP_256, .value = {f.secret, 32}};
    CHECK_ST(ks_key_op(env, "fullhsm", "alpha", f.a1->version, KS_OP_WRAP, &wp, &f.wrapped), KV_OK);
    struct ks_op_params sp = {.alg = KS_ALG_ES256, .value = {f.digest, 32}};
    CHECK_ST(ks_key_op(env, "fullhsm", "beta", NULL, KS_OP_SIGN, &sp, &f.signature), KV_OK);

    /* the backup: the live keys only; of an HSM only */
    CHECK_ST(ks_hsm_backup(env, "fullhsm", NULL, &full, &keys), KV_OK);
    CHECK(keys == 2 && full.len > 0);
    CHECK_ST(ks_hsm_backup(env, "fullhsm", NULL, &one, NULL), KV_OK); /* keys may be NULL */
    kv_buf_free(&one);
    keys = 99;
    CHECK_ST(ks_hsm_backup(env, "fullstd", NULL, &one, &keys), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_hsm_backup(env, "nosuch", NULL, &one, &keys), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_hsm_backup(env, "", NULL, &one, &keys), KV_ERR_VAULT_NOT_FOUND);
    CHECK(one.data == NULL && keys == 99);
    CHECK_ST(ks_vault_soft_delete(env, "fullhsm3", NULL, NULL), KV_OK);
    CHECK_ST(ks_hsm_backup(env, "fullhsm3", NULL, &one, &keys), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_hsm_backup(env, "fullhsm4", NULL, &empty, &keys), KV_OK); /* an empty HSM's */
    CHECK(keys == 0);

    /* a full restore into the same HSM, after a key was added and one deleted: exactly the
     * backed-up keys, the added one and the soft-deleted gamma gone for good */
    k = create("fullhsm", "extra", KS_KTY_EC);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_delete(env, "fullhsm", "alpha", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_hsm_restore(env, "fullhsm", full.data, full.len, NULL, NULL, 0, &versions), KV_OK);
    CHECK(versions == 3);
    hsm_restored("fullhsm", &f);
    CHECK_ST(ks_key_get(env, "fullhsm", "extra", NULL, &k), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_deleted_get(env, "fullhsm", "extra", &k), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_deleted_get(env, "fullhsm", "gamma", &k), KV_ERR_DELETED_KEY_NOT_FOUND);
    vault_state("fullhsm", after, sizeof(after));
    CHECK(strstr(after, "| deleted KV_OK:") != NULL &&
          strcmp(strstr(after, "| deleted KV_OK:"), "| deleted KV_OK:") == 0);
    /* the restored rotation policy is the sweep's to look at: a sweep runs */
    size_t purged = 0, rotated = 0;
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);

    /* into another HSM, whose purge-protected deleted key and live key go */
    k = create("fullhsm2", "old", KS_KTY_EC);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_delete(env, "fullhsm2", "old", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_deleted_purge(env, "fullhsm2", "old"), KV_ERR_PURGE_PROTECTED);
    k = create("fullhsm2", "other", KS_KTY_OCT);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_hsm_restore(env, "fullhsm2", full.data, full.len, NULL, NULL, 0, &versions), KV_OK);
    CHECK(versions == 3);
    hsm_restored("fullhsm2", &f);
    CHECK_ST(ks_deleted_get(env, "fullhsm2", "old", &k), KV_ERR_DELETED_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "fullhsm2", "other", NULL, &k), KV_ERR_KEY_NOT_FOUND);

    /* a selective restore brings back that key alone, and refuses a name in use */
    k = create("fullhsm", "extra2", KS_KTY_EC);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_delete(env, "fullhsm", "beta", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_deleted_purge(env, "fullhsm", "beta"), KV_OK);
    vault_state("fullhsm", before, sizeof(before));
    CHECK(strstr(before, "beta") == NULL);
    CHECK_ST(ks_hsm_restore(env, "fullhsm", full.data, full.len, "BETA", NULL, 0, &versions),
             KV_OK);
    CHECK(versions == 1);
    CHECK_ST(ks_key_get(env, "fullhsm", "beta", NULL, &k), KV_OK);
    CHECK(k != NULL && strcmp(k->version, f.b->version) == 0 && k->tags.count == 1);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_rotation_policy_get(env, "fullhsm", "beta", &pol), KV_OK);
    CHECK(pol.is_set && strcmp(pol.expiry, "P90D") == 0);
    {
        /* the others as they were: what was there before, and beta */
        char want[4096];
        vault_state("fullhsm", after, sizeof(after));
        const char *extra2 = strstr(before, " extra2=");
        CHECK(extra2 != NULL);
        if (extra2 != NULL) {
            struct ks_key_page *vp = NULL;
            CHECK_ST(ks_key_list_versions(env, "fullhsm", "beta", NULL, KS_PAGE_MAX, &vp), KV_OK);
            snprintf(want, sizeof(want), "%.*s beta=%s[KV_OK %s]%s", (int)(extra2 - before), before,
                     f.b->version, vp != NULL ? vp->items[0]->version : "", extra2);
            ks_key_page_free(vp);
            CHECK_STR(after, want);
        }
    }
    hsm_refused(&full, "alpha", KV_ERR_KEY_EXISTS, "selective, live");
    CHECK_ST(ks_key_delete(env, "fullhsm", "alpha", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    hsm_refused(&full, "Alpha", KV_ERR_KEY_DELETED_RECOVERABLE, "selective, soft-deleted");
    CHECK_ST(ks_deleted_recover(env, "fullhsm", "alpha", &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    hsm_refused(&full, "gamma", KV_ERR_KEY_NOT_FOUND, "selective, not in the backup");
    hsm_refused(&full, "extra2", KV_ERR_KEY_NOT_FOUND, "selective, not in the backup");
    hsm_refused(&full, "no_such", KV_ERR_KEY_NOT_FOUND, "selective, not a key name");

    /* bad blobs change nothing */
    full.data[full.len / 2] ^= 1;
    hsm_refused(&full, NULL, KV_ERR_BAD_BACKUP, "tampered");
    hsm_refused(&full, "beta", KV_ERR_BAD_BACKUP, "tampered, selective");
    full.data[full.len / 2] ^= 1;
    struct kv_buf cut = {full.data, 10};
    hsm_refused(&cut, NULL, KV_ERR_BAD_BACKUP, "cut short");
    CHECK_ST(ks_key_backup(env, "fullhsm", "alpha", &one), KV_OK);
    hsm_refused(&one, NULL, KV_ERR_BAD_BACKUP, "a key's backup");
    hsm_refused(&one, "alpha", KV_ERR_BAD_BACKUP, "a key's backup, selective");
    kv_buf_free(&one);
    char name[KS_NAME_MAX + 1];
    vault_state("fullhsm", before, sizeof(before));
    CHECK_ST(ks_key_restore(env, "fullhsm", full.data, full.len, name, &k), KV_ERR_BAD_BACKUP);
    CHECK(name[0] == '\0');
    CHECK_ST(ks_key_restore(env, "fullhsm2", full.data, full.len, name, &k), KV_ERR_BAD_BACKUP);
    vault_state("fullhsm", after, sizeof(after));
    CHECK_STR(after, before);
    /* documents that are no full backup, sealed as one: refused whole, though a full restore
     * removes every key first in the transaction it aborts */
    cJSON *doc = hsm_blob_open(&full);
    cJSON *second = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "keys"), 1);
    cJSON *rec = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(second, "versions"), 0), "record");
    CHECK(rec != NULL);
    cJSON_ReplaceItemInObjectCaseSensitive(rec, "kty", cJSON_CreateString("bogus"));
    hsm_blob_seal(doc, &bad);
    hsm_refused(&bad, NULL, KV_ERR_BAD_BACKUP, "a record that does not read back");
    kv_buf_free(&bad);
    doc = hsm_blob_open(&full);
    cJSON *keys_doc = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    cJSON_AddItemToArray(keys_doc, cJSON_Duplicate(cJSON_GetArrayItem(keys_doc, 0), 1));
    hsm_blob_seal(doc, &bad);
    hsm_refused(&bad, NULL, KV_ERR_BAD_BACKUP, "a key twice");
    kv_buf_free(&bad);
    doc = hsm_blob_open(&full);
    cJSON_DeleteItemFromObjectCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "keys"), 1), "current");
    hsm_blob_seal(doc, &bad);
    hsm_refused(&bad, NULL, KV_ERR_BAD_BACKUP, "a key without its current version");
    hsm_refused(&bad, "alpha", KV_ERR_BAD_BACKUP, "a key without its current version");
    kv_buf_free(&bad);
    doc = hsm_blob_open(&full);
    cJSON_ReplaceItemInObjectCaseSensitive(doc, "format",
                                           cJSON_CreateString("kvmock-key-backup-1"));
    hsm_blob_seal(doc, &bad);
    hsm_refused(&bad, NULL, KV_ERR_BAD_BACKUP, "another format");
    kv_buf_free(&bad);
    doc = hsm_blob_open(&full);
    cJSON_DeleteItemFromObjectCaseSensitive(
        cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(doc, "keys"), 0), "managedHsm");
    hsm_blob_seal(doc, &bad);
    hsm_refused(&bad, NULL, KV_ERR_BAD_BACKUP, "a vault's key");
    kv_buf_free(&bad);

    /* only into a Managed HSM that exists */
    vault_state("fullstd", before, sizeof(before));
    CHECK_ST(ks_hsm_restore(env, "fullstd", full.data, full.len, NULL, NULL, 0, &versions),
             KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_hsm_restore(env, "fullstd", full.data, full.len, "beta", NULL, 0, &versions),
             KV_ERR_VAULT_NOT_FOUND);
    vault_state("fullstd", after, sizeof(after));
    CHECK_STR(after, before);
    CHECK(strstr(after, "stdkey") != NULL);
    CHECK_ST(ks_hsm_restore(env, "nosuch", full.data, full.len, NULL, NULL, 0, &versions),
             KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_hsm_restore(env, "fullhsm3", full.data, full.len, NULL, NULL, 0, &versions),
             KV_ERR_VAULT_NOT_FOUND);
    CHECK(versions == 0);

    /* an empty HSM's backup, restored in full, leaves none */
    CHECK_ST(ks_hsm_restore(env, "fullhsm2", empty.data, empty.len, NULL, NULL, 0, &versions),
             KV_OK);
    CHECK(versions == 0);
    vault_state("fullhsm2", after, sizeof(after));
    CHECK_STR(after, "KV_OK: | deleted KV_OK:");
out:
    kv_buf_free(&full);
    kv_buf_free(&empty);
    ks_op_result_clear(&f.wrapped);
    ks_op_result_clear(&f.signature);
    ks_key_free(f.a1);
    ks_key_free(f.a2);
    ks_key_free(f.b);
}

static enum kv_status count_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                               void *arg)
{
    (void)key;
    (void)key_len;
    (void)val;
    (void)val_len;
    ++*(size_t *)arg;
    return KV_OK;
}

/* Another layer's text kept with a full backup's keys, and its changes written with a full
 * restore's in one transaction: all or nothing. */
static void hsm_backup_access(void)
{
    struct kv_buf with = {0}, without = {0};
    char *text = (char *)"x", before[4096], after[4096];
    size_t versions = 0, n = 0;
    put_hsm("acchsm", 0);
    struct ks_key *k = create("acchsm", "acc", KS_KTY_EC);
    ks_key_free(k);
    CHECK_ST(ks_hsm_backup(env, "acchsm", "{\"roles\":[\"a\\\"b\"]}", &with, NULL), KV_OK);
    CHECK_ST(ks_hsm_backup(env, "acchsm", NULL, &without, NULL), KV_OK);
    CHECK_ST(ks_hsm_backup_access(env, with.data, with.len, &text), KV_OK);
    CHECK_STR(text != NULL ? text : "(null)", "{\"roles\":[\"a\\\"b\"]}");
    free(text);
    CHECK_ST(ks_hsm_backup_access(env, without.data, without.len, &text), KV_OK);
    CHECK(text == NULL);
    if (with.len > 0)
        with.data[with.len / 2] ^= 1;
    CHECK_ST(ks_hsm_backup_access(env, with.data, with.len, &text), KV_ERR_BAD_BACKUP);
    CHECK(text == NULL);

    /* the ops are written with the keys */
    struct ks_record_op ops[2] = {{KS_TABLE_JOBS, "acc-1", 5, "one", 3},
                                  {KS_TABLE_JOBS, "acc-2", 5, "two", 3}};
    CHECK_ST(ks_hsm_restore(env, "acchsm", without.data, without.len, NULL, ops, 2, &versions),
             KV_OK);
    CHECK(versions == 1);
    CHECK_ST(ks_record_scan(env, KS_TABLE_JOBS, "acc-", 4, NULL, 0, count_fn, &n), KV_OK);
    CHECK(n == 2);
    /* a malformed op: nothing is written, neither the keys nor the other op */
    k = create("acchsm", "later", KS_KTY_EC);
    ks_key_free(k);
    vault_state("acchsm", before, sizeof(before));
    struct ks_record_op bad[2] = {{KS_TABLE_JOBS, "acc-3", 5, "three", 5},
                                  {KS_TABLE_JOBS, "acc-4", 0, "four", 4}};
    CHECK_ST(ks_hsm_restore(env, "acchsm", without.data, without.len, NULL, bad, 2, &versions),
             KV_ERR_BAD_PARAM);
    vault_state("acchsm", after, sizeof(after));
    CHECK_STR(after, before);
    n = 0;
    CHECK_ST(ks_record_scan(env, KS_TABLE_JOBS, "acc-", 4, NULL, 0, count_fn, &n), KV_OK);
    CHECK(n == 2);
    kv_buf_free(&with);
    kv_buf_free(&without);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    CHECK(mkdtemp(dir) != NULL);
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    if (env != NULL) {
        put_vault("paged", 1, 90, 0);
        recovery_levels();
        delete_recover_purge();
        purge_protection_and_expiry();
        no_soft_delete();
        update();
        rotate_and_policy();
        backup_restore();
        key_ops_order();
        backup_kinds();
        hsm_full_backup();
        hsm_backup_access();
        ks_close(env);
    }
    cleanup();
    CHECK_DONE();
}
