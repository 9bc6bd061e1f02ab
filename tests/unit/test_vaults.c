/*
 * Soft delete of whole vaults in the keystore (vaults.c): the deleted state,
 * the name it holds, recovery with the keys, purge and purge protection, the
 * scheduled purge by the sweep and on access, paging, and persistence; Managed HSMs'
 * records and their hardware keys.
 */
#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "ks.h"
#include "testrecords.h"

#define DAY 86400

static char dir[] = "/tmp/kvmock-vaults-XXXXXX";
static struct ks_env *env;

static struct ks_vault vault(const char *name, int soft_delete, int days, int pp)
{
    struct ks_vault v = {
        .soft_delete = soft_delete, .retention_days = days, .purge_protection = pp};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    return v;
}

static void put_vault(const char *name, int soft_delete, int days, int pp)
{
    struct ks_vault v = vault(name, soft_delete, days, pp);
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
}

/* Create an oct key (fast) and return its version in @p version. */
static void create_key(const char *v, const char *name, char version[KS_VERSION_LEN + 1])
{
    struct ks_create p = {.kty = KS_KTY_OCT, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, v, name, &p, &k), KV_OK);
    snprintf(version, KS_VERSION_LEN + 1, "%s", k ? k->version : "");
    ks_key_free(k);
}

static int listed(const char *name)
{
    char names[64][KS_VAULT_NAME_MAX + 1];
    size_t n = ks_vault_list(env, names, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        if (strcmp(names[i], name) == 0)
            return 1;
    }
    return 0;
}

static enum kv_status key_get(const char *v, const char *name, const char *version)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_get(env, v, name, version, &k);
    ks_key_free(k);
    return st;
}

static void delete_then_recover(void)
{
    char ver[KS_VERSION_LEN + 1];
    put_vault("sv", 1, 7, 0);
    create_key("sv", "cmk", ver);
    struct ks_deleted_vault d;
    int64_t before = ks_now();
    CHECK_ST(ks_vault_soft_delete(env, "SV", "/subscriptions/s/resourceGroups/g/v/sv", &d), KV_OK);
    CHECK(d.deleted_date >= before && d.deleted_date <= ks_now());
    CHECK(d.scheduled_purge == d.deleted_date + 7 * DAY);
    CHECK_STR(d.vault.name, "sv");

    /* the vault is gone for the data plane, and its keys with it */
    struct ks_vault v;
    CHECK_ST(ks_vault_get(env, "sv", &v), KV_ERR_VAULT_NOT_FOUND);
    CHECK(!listed("sv"));
    CHECK(listed("other"));
    CHECK(key_get("sv", "cmk", NULL) != KV_OK);
    size_t live = 9, deleted = 9;
    CHECK_ST(ks_vault_key_count(env, "sv", &live, &deleted), KV_OK);
    CHECK(live == 1); /* the key records are kept */

    /* it holds its name */
    struct ks_vault again = vault("sv", 1, 90, 0);
    CHECK_ST(ks_vault_create(env, &again), KV_ERR_VAULT_DELETED);
    CHECK_ST(ks_vault_get(env, "sv", &v), KV_ERR_VAULT_NOT_FOUND);

    struct ks_deleted_vault g;
    CHECK_ST(ks_deleted_vault_get(env, "sv", &g), KV_OK);
    CHECK_STR(g.resource_id, "/subscriptions/s/resourceGroups/g/v/sv");
    CHECK(g.deleted_date == d.deleted_date && g.scheduled_purge == d.scheduled_purge);
    CHECK(g.vault.soft_delete && g.vault.retention_days == 7 && !g.vault.purge_protection);

    /* a second delete finds no live vault */
    CHECK_ST(ks_vault_soft_delete(env, "sv", NULL, NULL), KV_ERR_VAULT_NOT_FOUND);

    struct ks_vault r;
    CHECK_ST(ks_deleted_vault_recover(env, "sv", 0, &r), KV_OK);
    CHECK_STR(r.name, "sv");
    CHECK(r.retention_days == 7 && r.soft_delete);
    CHECK_ST(ks_vault_get(env, "sv", &v), KV_OK);
    CHECK(v.retention_days == 7);
    CHECK(listed("sv"));
    CHECK_ST(key_get("sv", "cmk", ver), KV_OK);
    CHECK_ST(ks_deleted_vault_get(env, "sv", &g), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_recover(env, "sv", 0, &r), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_purge(env, "sv", 0, NULL, 0, NULL), KV_ERR_VAULT_NOT_FOUND);
}

static void without_soft_delete(void)
{
    char ver[KS_VERSION_LEN + 1];
    put_vault("hard", 0, 7, 0);
    create_key("hard", "k", ver);
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "hard", "id", &d), KV_OK);
    CHECK(d.deleted_date == 0 && d.scheduled_purge == 0);
    struct ks_deleted_vault g;
    CHECK_ST(ks_deleted_vault_get(env, "hard", &g), KV_ERR_VAULT_NOT_FOUND);
    /* the name is free and nothing of the old vault comes back */
    put_vault("hard", 0, 7, 0);
    CHECK_ST(key_get("hard", "k", NULL), KV_ERR_KEY_NOT_FOUND);
}

static void purge_and_protection(void)
{
    char ver[KS_VERSION_LEN + 1];
    put_vault("open", 1, 7, 0);
    create_key("open", "k", ver);
    CHECK_ST(ks_vault_soft_delete(env, "open", "id", NULL), KV_OK);
    CHECK_ST(ks_deleted_vault_purge(env, "open", 0, NULL, 0, NULL), KV_OK);
    struct ks_deleted_vault g;
    CHECK_ST(ks_deleted_vault_get(env, "open", &g), KV_ERR_VAULT_NOT_FOUND);
    put_vault("open", 1, 7, 0);
    CHECK_ST(key_get("open", "k", NULL), KV_ERR_KEY_NOT_FOUND);

    put_vault("locked", 1, 7, 1);
    create_key("locked", "k", ver);
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "locked", "id", &d), KV_OK);
    CHECK(d.vault.purge_protection);
    CHECK_ST(ks_deleted_vault_purge(env, "locked", 0, NULL, 0, NULL), KV_ERR_PURGE_PROTECTED);
    /* shortly before the purge date, still protected: 30 s before it, so that the clock's
     * own seconds, which run on between the move and the purge, cannot reach the date */
    ks_clock_advance(d.scheduled_purge - ks_now() - 30);
    CHECK_ST(ks_deleted_vault_purge(env, "locked", 0, NULL, 0, NULL), KV_ERR_PURGE_PROTECTED);
    CHECK_ST(ks_deleted_vault_get(env, "locked", &g), KV_OK); /* nothing was removed */
    ks_clock_advance(30);
    CHECK_ST(ks_deleted_vault_purge(env, "locked", 0, NULL, 0, NULL), KV_OK);
    put_vault("locked", 1, 7, 1);
    CHECK_ST(key_get("locked", "k", NULL), KV_ERR_KEY_NOT_FOUND);
}

static void scheduled_purge(void)
{
    char ver[KS_VERSION_LEN + 1];
    /* by the sweep */
    put_vault("swept", 1, 7, 1);
    create_key("swept", "k", ver);
    struct ks_rotation_policy in = {
        .n_actions = 1, .actions = {{.rotate = 1, .after_create = "P1D", .after_create_s = DAY}}};
    struct ks_rotation_policy pol;
    CHECK_ST(ks_rotation_policy_set(env, "swept", "k", &in, &pol), KV_OK);
    /* access policies kept for a recovery, and one of a vault whose name it begins */
    static const char its[] = "swept\0oid", other[] = "swept2\0oid";
    struct ks_record_op policies[] = {{KS_TABLE_POLICIES, its, sizeof(its) - 1, "{}", 2},
                                      {KS_TABLE_POLICIES, other, sizeof(other) - 1, "{}", 2}};
    CHECK_ST(ks_record_apply(env, policies, 2), KV_OK);
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "swept", "id", &d), KV_OK);
    /* a rotation due in a deleted vault neither runs nor stops the sweep */
    ks_clock_advance(2 * DAY);
    size_t purged = 9, rotated = 9;
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(purged == 0 && rotated == 0);
    struct ks_deleted_vault g;
    CHECK_ST(ks_deleted_vault_get(env, "swept", &g), KV_OK);
    ks_clock_advance(d.scheduled_purge - ks_now());
    CHECK_ST(ks_sweep(env, &purged, &rotated), KV_OK);
    CHECK(purged == 1);
    CHECK_ST(ks_deleted_vault_get(env, "swept", &g), KV_ERR_VAULT_NOT_FOUND);
    size_t live = 9, deleted = 9;
    CHECK_ST(ks_vault_key_count(env, "swept", &live, &deleted), KV_OK);
    CHECK(live == 0 && deleted == 0); /* the keys went with it */
    CHECK(tr_count(env, KS_TABLE_POLICIES, "swept", 6) == 0); /* and its access policies */
    CHECK(tr_count(env, KS_TABLE_POLICIES, "swept2", 7) == 1);

    /* on access: a get, a create and a recover find it gone */
    put_vault("lapsed", 1, 7, 0);
    create_key("lapsed", "k", ver);
    CHECK_ST(ks_record_apply(
                 env, &(struct ks_record_op){KS_TABLE_POLICIES, "lapsed\0oid", 10, "{}", 2}, 1),
             KV_OK);
    CHECK_ST(ks_vault_soft_delete(env, "lapsed", "id", &d), KV_OK);
    ks_clock_advance(7 * DAY);
    struct ks_vault r;
    CHECK_ST(ks_deleted_vault_recover(env, "lapsed", 0, &r), KV_ERR_VAULT_NOT_FOUND);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "lapsed", 7) == 0);
    CHECK_ST(ks_vault_key_count(env, "lapsed", &live, &deleted), KV_OK);
    CHECK(live == 0);
    put_vault("lapsed", 1, 7, 0);
    CHECK_ST(key_get("lapsed", "k", NULL), KV_ERR_KEY_NOT_FOUND);
}

static void paging(void)
{
    const char *names[] = {"pa", "pb", "pc"};
    for (size_t i = 0; i < 3; i++) {
        put_vault(names[i], 1, 90, 0);
        CHECK_ST(ks_vault_soft_delete(env, names[i], "id", NULL), KV_OK);
    }
    struct ks_deleted_vault page[KS_PAGE_MAX];
    size_t n = 0;
    char next[KS_VAULT_NAME_MAX + 1];
    CHECK_ST(ks_deleted_vault_list(env, 0, NULL, 2, page, &n, next), KV_OK);
    CHECK(n == 2);
    if (n == 2) {
        CHECK_STR(page[0].vault.name, "pa");
        CHECK_STR(page[1].vault.name, "pb");
    }
    CHECK_STR(next, "pb");
    CHECK_ST(ks_deleted_vault_list(env, 0, next, 2, page, &n, next), KV_OK);
    CHECK(n == 1 && strcmp(page[0].vault.name, "pc") == 0);
    CHECK_STR(next, "");
    CHECK_ST(ks_deleted_vault_list(env, 0, "NOT A NAME", 2, page, &n, next), KV_ERR_BAD_SKIPTOKEN);
    CHECK_ST(ks_deleted_vault_list(env, 0, NULL, 0, page, &n, next), KV_ERR_BAD_MAXRESULTS);
}

/* A vault keeps the location it was made in through an update, a soft delete, a
 * recovery and a reopen (persists() below); one made without a location has none. */
static void location_is_kept(void)
{
    struct ks_vault v = vault("where", 1, 7, 0), got;
    snprintf(v.location, sizeof(v.location), "westeurope");
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "where", &got), KV_OK);
    CHECK_STR(got.location, "westeurope");
    CHECK_STR(ks_vault_location(&got), "westeurope");
    got.rbac = 1;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    CHECK_ST(ks_vault_get(env, "where", &got), KV_OK);
    CHECK_STR(got.location, "westeurope");
    CHECK(got.rbac);
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "where", "id", &d), KV_OK);
    CHECK_STR(d.vault.location, "westeurope");
    CHECK_ST(ks_deleted_vault_get(env, "where", &d), KV_OK);
    CHECK_STR(d.vault.location, "westeurope");
    CHECK_ST(ks_deleted_vault_recover(env, "where", 0, &got), KV_OK);
    CHECK_STR(got.location, "westeurope");
    CHECK_ST(ks_vault_get(env, "other", &got), KV_OK);
    CHECK_STR(got.location, "");
    CHECK_STR(ks_vault_location(&got), "local");
    /* a location that fills the field to its last byte is refused, not cut */
    struct ks_vault full = vault("full", 1, 7, 0);
    memset(full.location, 'x', sizeof(full.location));
    CHECK_ST(ks_vault_create(env, &full), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_vault_get(env, "full", &got), KV_ERR_VAULT_NOT_FOUND);
}

/* Check that @p name (deleted or live) has exactly the one tag @p tag = @p value, or no
 * tags when @p tag is NULL. */
static void check_tags(const char *name, int deleted, const char *tag, const char *value)
{
    struct ks_tags t = {0};
    CHECK_ST(ks_vault_tags(env, name, deleted, &t), KV_OK);
    CHECK(t.count == (tag ? 1u : 0u));
    if (tag != NULL && t.count == 1) {
        CHECK_STR(t.names[0], tag);
        CHECK_STR(t.values[0], value);
    }
    ks_tags_clear(&t);
}

static void tags_are_kept(void)
{
    char *names[] = {"team"}, *values[] = {"payments"}, *values2[] = {"ledger"};
    struct ks_tags tags = {1, names, values}, tags2 = {1, names, values2}, none = {0};
    struct ks_vault v = vault("tagged", 1, 7, 0), got;
    v.tags = &tags;
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    check_tags("tagged", 0, "team", "payments");
    check_tags("TAGGED", 0, "team", "payments");
    /* a write without tags keeps them; reads never hand out a pointer */
    CHECK_ST(ks_vault_get(env, "tagged", &got), KV_OK);
    CHECK(got.tags == NULL);
    got.rbac = 1;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    check_tags("tagged", 0, "team", "payments");
    got.tags = &tags2;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    check_tags("tagged", 0, "team", "ledger");
    /* a deleted vault keeps them, and its recovery brings them back */
    CHECK_ST(ks_vault_soft_delete(env, "tagged", "id", NULL), KV_OK);
    struct ks_tags t = {0};
    CHECK_ST(ks_vault_tags(env, "tagged", 0, &t), KV_ERR_VAULT_NOT_FOUND);
    check_tags("tagged", 1, "team", "ledger");
    CHECK_ST(ks_deleted_vault_recover(env, "tagged", 0, &got), KV_OK);
    check_tags("tagged", 0, "team", "ledger");
    CHECK_ST(ks_vault_tags(env, "tagged", 1, &t), KV_ERR_VAULT_NOT_FOUND);
    /* empty tags replace them; a vault without any has none */
    got.tags = &none;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    check_tags("tagged", 0, NULL, NULL);
    check_tags("other", 0, NULL, NULL);
    CHECK_ST(ks_vault_tags(env, "nosuchvault", 0, &t), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_tags(env, "", 0, &t), KV_ERR_VAULT_NOT_FOUND);
    CHECK(t.count == 0 && t.names == NULL);
}

static void resource_groups(void)
{
    CHECK(ks_group_name_valid("rg"));
    CHECK(ks_group_name_valid("My_Group-1.(x)"));
    CHECK(ks_group_name_valid("gr\xc3\xbcppe"));
    CHECK(!ks_group_name_valid(""));
    CHECK(!ks_group_name_valid("ends."));
    CHECK(!ks_group_name_valid("a/b"));
    CHECK(!ks_group_name_valid("a b"));
    char longest[KS_GROUP_MAX + 2];
    memset(longest, 'g', sizeof(longest) - 1);
    longest[KS_GROUP_MAX] = '\0';
    CHECK(ks_group_name_valid(longest));
    longest[KS_GROUP_MAX] = 'g';
    longest[KS_GROUP_MAX + 1] = '\0';
    CHECK(!ks_group_name_valid(longest));

    char *names[] = {"cost"}, *values[] = {"1"};
    struct ks_tags tags = {1, names, values}, t = {0};
    struct ks_group g = {.name = "Team-RG", .location = "westeurope", .tags = &tags}, got;
    int created = 0;
    CHECK_ST(ks_group_put(env, &g, &created), KV_OK);
    CHECK(created);
    CHECK_ST(ks_group_get(env, "team-rg", &got, &t), KV_OK);
    CHECK_STR(got.name, "Team-RG"); /* the name as created, found in any case */
    CHECK_STR(got.location, "westeurope");
    CHECK(got.tags == NULL);
    CHECK(t.count == 1 && strcmp(t.values[0], "1") == 0);
    ks_tags_clear(&t);
    /* again, in another case and without tags: no change, not created */
    struct ks_group again = {.name = "TEAM-rg", .location = "WestEurope"};
    CHECK_ST(ks_group_put(env, &again, &created), KV_OK);
    CHECK(!created);
    CHECK_ST(ks_group_get(env, "Team-RG", &got, &t), KV_OK);
    CHECK_STR(got.name, "Team-RG");
    CHECK(t.count == 1);
    ks_tags_clear(&t);
    /* a region's name with spaces (as older kvmocks kept a display name) is the same region */
    struct ks_group spaced = {.name = "team-rg", .location = " West Europe"};
    CHECK_ST(ks_group_put(env, &spaced, NULL), KV_OK);
    struct ks_group prefix = {.name = "team-rg", .location = "west"};
    CHECK_ST(ks_group_put(env, &prefix, NULL), KV_ERR_ARM_GROUP_LOCATION);
    /* a group stays where it was made */
    struct ks_group moved = {.name = "team-rg", .location = "northeurope"};
    CHECK_ST(ks_group_put(env, &moved, NULL), KV_ERR_ARM_GROUP_LOCATION);
    CHECK_ST(ks_group_get(env, "team-rg", &got, NULL), KV_OK);
    CHECK_STR(got.location, "westeurope");
    struct ks_group bad = {.name = "a/b", .location = "westeurope"}, nowhere = {.name = "x"};
    CHECK_ST(ks_group_put(env, &bad, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_group_put(env, &nowhere, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_group_get(env, "a/b", &got, NULL), KV_ERR_ARM_NO_GROUP);
    /* made unless it exists: an existing group is answered as it is, wherever asked for */
    CHECK_ST(ks_group_ensure(env, &moved, &got, &created), KV_OK);
    CHECK(!created);
    CHECK_STR(got.name, "Team-RG");
    CHECK_STR(got.location, "westeurope");
    CHECK_ST(ks_group_get(env, "team-rg", &got, &t), KV_OK);
    CHECK(t.count == 1 && strcmp(got.location, "westeurope") == 0); /* unchanged */
    ks_tags_clear(&t);
    struct ks_group fresh = {.name = "Made-Once", .location = "local"};
    CHECK_ST(ks_group_ensure(env, &fresh, &got, &created), KV_OK);
    CHECK(created);
    CHECK_STR(got.name, "Made-Once");
    CHECK_STR(got.location, "local");
    CHECK_ST(ks_group_ensure(env, &bad, &got, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_group_ensure(env, &nowhere, &got, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_group_delete(env, "made-once"), KV_OK);

    /* groups are listed in name order, and are not vaults */
    struct ks_group other = {.name = "alpha", .location = "westeurope"};
    CHECK_ST(ks_group_put(env, &other, NULL), KV_OK);
    char list[8][KS_GROUP_MAX + 1];
    CHECK(ks_group_list(env, list, 8) == 2);
    CHECK_STR(list[0], "alpha");
    CHECK_STR(list[1], "team-rg");
    CHECK(!listed("alpha") && !listed("team-rg"));

    /* a vault keeps its group; a write that names none keeps it */
    struct ks_vault v = vault("grouped", 1, 7, 0), gv;
    snprintf(v.group, sizeof(v.group), "Team-RG");
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "grouped", &gv), KV_OK);
    CHECK_STR(gv.group, "Team-RG");
    gv.group[0] = '\0';
    gv.rbac = 1;
    CHECK_ST(ks_vault_put(env, &gv), KV_OK);
    CHECK_ST(ks_vault_get(env, "grouped", &gv), KV_OK);
    CHECK_STR(gv.group, "Team-RG");
    /* a create finds the name taken by a live vault, in the transaction that would write */
    struct ks_vault twice = vault("grouped", 1, 7, 0);
    snprintf(twice.group, sizeof(twice.group), "alpha");
    CHECK_ST(ks_vault_create(env, &twice), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_get(env, "grouped", &gv), KV_OK);
    CHECK_STR(gv.group, "Team-RG");
    struct ks_vault badgroup = vault("badgroup", 1, 7, 0);
    snprintf(badgroup.group, sizeof(badgroup.group), "no/such");
    CHECK_ST(ks_vault_create(env, &badgroup), KV_ERR_BAD_PARAM);

    /* a list can start after any name, and never shows a group's record */
    char all[64][KS_VAULT_NAME_MAX + 1], rest[64][KS_VAULT_NAME_MAX + 1];
    size_t nall = ks_vault_list(env, all, 64);
    CHECK(nall >= 3 && nall <= 64);
    size_t nrest = ks_vault_list_from(env, "GROUPED", rest, 64);
    size_t at = 0;
    while (at < nall && strcmp(all[at], "grouped") != 0)
        at++;
    CHECK(at < nall && nrest == nall - at - 1);
    for (size_t i = 0; i < nrest && at + 1 + i < nall; i++)
        CHECK_STR(rest[i], all[at + 1 + i]);
    CHECK(ks_vault_list_from(env, "zzzz", rest, 64) == 0);
    CHECK(ks_vault_list_from(env, "", rest, 64) == nall);
    CHECK(ks_vault_list_from(env, "a-name-longer-than-24-chars", rest, 64) == 0);

    CHECK_ST(ks_group_delete(env, "ALPHA"), KV_OK);
    CHECK_ST(ks_group_delete(env, "alpha"), KV_ERR_ARM_NO_GROUP);
    CHECK_ST(ks_group_get(env, "alpha", &got, NULL), KV_ERR_ARM_NO_GROUP);
    CHECK(ks_group_list(env, list, 8) == 1);
}

/* A record of another layer's, for a vault: whether it is stored. */
static int record_kept(const char *key, size_t len)
{
    struct kv_buf b = {0};
    enum kv_status st = ks_record_get(env, KS_TABLE_POLICIES, key, len, &b);
    kv_buf_free(&b);
    return st == KV_OK;
}

/* ks_vault_create_in_group(): a new vault and its group in one transaction, so a refused
 * create leaves no group; and a recovered vault's group comes back in its transaction. */
static void groups_made_with_vaults(void)
{
    struct ks_group g, got;
    int created = -1;
    struct ks_vault v = vault("ingroup", 1, 7, 0), r;
    snprintf(v.group, sizeof(v.group), "New-RG");
    snprintf(v.location, sizeof(v.location), "northeurope");
    struct ks_record_op op = {KS_TABLE_POLICIES, "ingroup\0p", 9, "{}", 2};
    CHECK_ST(ks_vault_create_in_group(env, &v, &op, 1, &g, &created), KV_OK);
    CHECK(created == 1);
    CHECK_STR(g.name, "New-RG");
    CHECK_STR(g.location, "northeurope");
    CHECK_ST(ks_group_get(env, "new-rg", &got, NULL), KV_OK);
    CHECK_STR(got.location, "northeurope");
    CHECK(record_kept("ingroup\0p", 9));
    /* a group of the name in another case is the one: the vault takes its name */
    struct ks_vault second = vault("ingroup2", 1, 7, 0);
    snprintf(second.group, sizeof(second.group), "NEW-rg");
    snprintf(second.location, sizeof(second.location), "westus");
    CHECK_ST(ks_vault_create_in_group(env, &second, NULL, 0, &g, &created), KV_OK);
    CHECK(created == 0);
    CHECK_STR(g.name, "New-RG");
    CHECK_STR(g.location, "northeurope");
    CHECK_ST(ks_vault_get(env, "ingroup2", &r), KV_OK);
    CHECK_STR(r.group, "New-RG");
    CHECK_STR(r.location, "westus");

    /* refused creates make no group and write no record */
    struct ks_vault taken = vault("ingroup", 1, 7, 0);
    snprintf(taken.group, sizeof(taken.group), "Taken-RG");
    struct ks_record_op stray = {KS_TABLE_POLICIES, "ingroup\0q", 9, "{}", 2};
    CHECK_ST(ks_vault_create_in_group(env, &taken, &stray, 1, &g, &created),
             KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_group_get(env, "taken-rg", &got, NULL), KV_ERR_ARM_NO_GROUP);
    CHECK(!record_kept("ingroup\0q", 9));
    CHECK_ST(ks_vault_soft_delete(env, "ingroup2", "", NULL), KV_OK);
    struct ks_vault held = vault("ingroup2", 1, 7, 0);
    snprintf(held.group, sizeof(held.group), "Held-RG");
    CHECK_ST(ks_vault_create_in_group(env, &held, NULL, 0, &g, &created), KV_ERR_VAULT_DELETED);
    CHECK_ST(ks_group_get(env, "held-rg", &got, NULL), KV_ERR_ARM_NO_GROUP);
    struct ks_vault badly = vault("badly", 1, 7, 0);
    snprintf(badly.group, sizeof(badly.group), "no/such");
    CHECK_ST(ks_vault_create_in_group(env, &badly, NULL, 0, &g, &created), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_vault_get(env, "badly", &r), KV_ERR_VAULT_NOT_FOUND);

    /* the group went while the vault was deleted: recovery brings it back, where the vault is */
    CHECK_ST(ks_vault_soft_delete(env, "ingroup", "", NULL), KV_OK);
    CHECK_ST(ks_group_delete(env, "new-rg"), KV_OK);
    CHECK_ST(ks_deleted_vault_recover(env, "ingroup2", 0, &r), KV_OK);
    CHECK_ST(ks_group_get(env, "new-rg", &got, NULL), KV_OK);
    CHECK_STR(got.name, "New-RG");
    CHECK_STR(got.location, "westus");
    CHECK_ST(ks_deleted_vault_recover(env, "ingroup", 0, &r), KV_OK);
    CHECK_STR(r.group, "New-RG");
    CHECK_ST(ks_group_get(env, "new-rg", &got, NULL), KV_OK);
    CHECK_STR(got.location, "westus"); /* found, not made again */
    CHECK_ST(ks_vault_delete(env, "ingroup"), KV_OK);
    CHECK_ST(ks_vault_delete(env, "ingroup2"), KV_OK);
    CHECK_ST(ks_group_delete(env, "new-rg"), KV_OK);
}

/* The network rules: flags with the vault, the lists apart; kept, replaced, refused. */
static void network_rules(void)
{
    char *ips[] = {"203.0.113.0/24", "2001:db8::/32"}, *bad_ip[] = {"203.0.113.7"};
    struct ks_vnet_rule vnets[] = {{"/subscriptions/s/resourceGroups/g/providers/"
                                    "Microsoft.Network/virtualNetworks/n/subnets/m",
                                    1}};
    struct ks_net_rules rules = {2, ips, 1, vnets}, one = {1, ips, 0, NULL};
    struct ks_vault v = vault("walled", 1, 7, 0), got;
    v.premium = v.for_disk_encryption = v.public_network_disabled = 1;
    v.net_acls = v.net_deny = v.net_bypass_none = 1;
    v.net_rules = &rules;
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "walled", &got), KV_OK);
    CHECK(got.premium && got.for_disk_encryption && !got.for_deployment &&
          !got.for_template_deployment && got.public_network_disabled);
    CHECK(got.net_acls && got.net_deny && got.net_bypass_none && got.net_rules == NULL);
    struct ks_net_rules r = {0};
    CHECK_ST(ks_vault_net_rules(env, "WALLED", &r), KV_OK);
    CHECK(r.ip_count == 2 && r.vnet_count == 1);
    if (r.ip_count == 2 && r.vnet_count == 1) {
        CHECK_STR(r.ip[0], "203.0.113.0/24");
        CHECK_STR(r.ip[1], "2001:db8::/32");
        CHECK_STR(r.vnet[0].id, vnets[0].id);
        CHECK(r.vnet[0].ignore_missing == 1);
    }
    ks_net_rules_clear(&r);
    CHECK(r.ip == NULL && r.ip_count == 0 && r.vnet == NULL);

    /* a write without lists keeps them, with the flags it gives */
    got.net_deny = 0;
    got.public_network_disabled = 0;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    CHECK_ST(ks_vault_get(env, "walled", &got), KV_OK);
    CHECK(got.net_acls && !got.net_deny && !got.public_network_disabled && got.premium);
    CHECK_ST(ks_vault_net_rules(env, "walled", &r), KV_OK);
    CHECK(r.ip_count == 2 && r.vnet_count == 1);
    ks_net_rules_clear(&r);
    /* given lists replace them */
    got.net_rules = &one;
    CHECK_ST(ks_vault_put(env, &got), KV_OK);
    CHECK_ST(ks_vault_net_rules(env, "walled", &r), KV_OK);
    CHECK(r.ip_count == 1 && r.vnet_count == 0);
    ks_net_rules_clear(&r);

    /* refused, and nothing changes: a rule not in canonical text, too many rules, flags
     * without networkAcls */
    struct ks_net_rules not_canonical = {1, bad_ip, 0, NULL};
    struct ks_net_rules too_many = {KS_IP_RULES_MAX + 1, ips, 0, NULL};
    struct ks_vault w = got;
    w.net_rules = &not_canonical;
    CHECK_ST(ks_vault_put(env, &w), KV_ERR_BAD_PARAM);
    w.net_rules = &too_many;
    CHECK_ST(ks_vault_put(env, &w), KV_ERR_BAD_PARAM);
    w.net_rules = NULL;
    w.net_acls = 0;
    w.net_deny = 1;
    CHECK_ST(ks_vault_put(env, &w), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_vault_net_rules(env, "walled", &r), KV_OK);
    CHECK(r.ip_count == 1);
    CHECK_STR(r.ip_count ? r.ip[0] : "", "203.0.113.0/24");
    ks_net_rules_clear(&r);

    /* without networkAcls the vault has no rules; copying the properties carries them */
    struct ks_vault plain = vault("walled", 1, 7, 0);
    ks_vault_copy_arm_props(&plain, &got);
    CHECK(plain.premium && plain.net_acls && plain.net_rules == NULL);
    CHECK_ST(ks_vault_put(env, &plain), KV_OK);
    CHECK_ST(ks_vault_net_rules(env, "walled", &r), KV_OK);
    CHECK(r.ip_count == 1);
    ks_net_rules_clear(&r);
    plain = vault("walled", 1, 7, 0);
    CHECK_ST(ks_vault_put(env, &plain), KV_OK);
    CHECK_ST(ks_vault_get(env, "walled", &got), KV_OK);
    CHECK(!got.net_acls && !got.premium);
    CHECK_ST(ks_vault_net_rules(env, "walled", &r), KV_OK);
    CHECK(r.ip_count == 0 && r.vnet_count == 0);
    CHECK_ST(ks_vault_net_rules(env, "nosuchvault", &r), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_net_rules(env, "", &r), KV_ERR_VAULT_NOT_FOUND);
}

/* An update (ks_vault_put_with(), create < 0) applies only while the vault is live: one
 * that was deleted (soft or hard) or never made is refused in the write's transaction,
 * and nothing of it is written, neither the vault nor the records that go with it. */
static void update_needs_a_live_vault(void)
{
    static const char key[] = "upd\0x", val[] = "{}";
    struct ks_record_op op = {KS_TABLE_POLICIES, key, sizeof(key) - 1, val, sizeof(val) - 1};
    struct ks_vault v = vault("upd", 1, 7, 0), got;
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    /* live: the update applies */
    v.rbac = 1;
    CHECK_ST(ks_vault_put_with(env, &v, -1, &op, 1), KV_OK);
    CHECK_ST(ks_vault_get(env, "upd", &got), KV_OK);
    CHECK(got.rbac == 1);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "upd", 4) == 1);
    CHECK_ST(ks_record_apply(env, &(struct ks_record_op){KS_TABLE_POLICIES, "upd", 4, NULL, 0}, 1),
             KV_OK);
    /* soft-deleted: refused; the deleted record stays, no live vault comes back */
    CHECK_ST(ks_vault_soft_delete(env, "upd", "id", NULL), KV_OK);
    v.rbac = 0;
    CHECK_ST(ks_vault_put_with(env, &v, -1, &op, 1), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_put_with(env, &v, -1, NULL, 0), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_get(env, "upd", &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK(!listed("upd"));
    CHECK_ST(ks_deleted_vault_get(env, "upd", &d), KV_OK);
    CHECK(d.vault.rbac == 1); /* as it was deleted */
    CHECK(tr_count(env, KS_TABLE_POLICIES, "upd", 4) == 0);
    /* and it recovers as it was deleted */
    CHECK_ST(ks_deleted_vault_recover(env, "upd", 0, &got), KV_OK);
    CHECK(got.rbac == 1);
    /* never made: refused, nothing written */
    struct ks_vault never = vault("nevermade", 1, 7, 0);
    CHECK_ST(ks_vault_put_with(env, &never, -1, &op, 1), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_get(env, "nevermade", &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_get(env, "nevermade", &d), KV_ERR_VAULT_NOT_FOUND);
    CHECK(!listed("nevermade"));
    CHECK(tr_count(env, KS_TABLE_POLICIES, "upd", 4) == 0);
    /* removed at once (no soft delete): refused as well, nothing comes back */
    struct ks_vault hard = vault("updhard", 0, 7, 0);
    CHECK_ST(ks_vault_create(env, &hard), KV_OK);
    CHECK_ST(ks_vault_soft_delete(env, "updhard", "id", &d), KV_OK);
    CHECK(d.deleted_date == 0);
    CHECK_ST(ks_vault_put_with(env, &hard, -1, NULL, 0), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_vault_get(env, "updhard", &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK(!listed("updhard"));
    /* a put (create 0) still creates or replaces, as the configuration file's vaults need */
    CHECK_ST(ks_vault_put_with(env, &hard, 0, NULL, 0), KV_OK);
    CHECK_ST(ks_vault_get(env, "updhard", &got), KV_OK);
}

static struct ks_vault_change change(int64_t at, const char *by, const char *type)
{
    struct ks_vault_change c = {.at = at};
    snprintf(c.by, sizeof(c.by), "%s", by);
    snprintf(c.by_type, sizeof(c.by_type), "%s", type);
    return c;
}

static void check_change(const struct ks_vault_change *c, int64_t at, const char *by,
                         const char *type)
{
    CHECK(c->at == at);
    CHECK_STR(c->by, by);
    CHECK_STR(c->by_type, type);
}

/* systemData: the first write's change is the creation, a later write's the last change,
 * and a write without one (the configuration file at a start) keeps both */
static void changes_are_stamped(void)
{
    struct ks_vault v = vault("stamped", 1, 7, 0), got;
    v.modified = change(1000, "app-1", "Application");
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "stamped", &got), KV_OK);
    check_change(&got.created, 1000, "app-1", "Application");
    check_change(&got.modified, 1000, "app-1", "Application");
    v.modified = change(2000, "mi-2", "ManagedIdentity");
    v.created = change(5, "forged", "Application"); /* never written */
    CHECK_ST(ks_vault_put_with(env, &v, KS_VAULT_UPDATE, NULL, 0), KV_OK);
    CHECK_ST(ks_vault_get(env, "stamped", &got), KV_OK);
    check_change(&got.created, 1000, "app-1", "Application");
    check_change(&got.modified, 2000, "mi-2", "ManagedIdentity");
    v.modified = change(0, "", "");
    v.rbac = 1;
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "stamped", &got), KV_OK);
    CHECK(got.rbac == 1);
    check_change(&got.created, 1000, "app-1", "Application");
    check_change(&got.modified, 2000, "mi-2", "ManagedIdentity");
    /* kept through soft delete and recovery */
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "stamped", "id", NULL), KV_OK);
    CHECK_ST(ks_deleted_vault_get(env, "stamped", &d), KV_OK);
    check_change(&d.vault.modified, 2000, "mi-2", "ManagedIdentity");
    CHECK_ST(ks_deleted_vault_recover(env, "stamped", 0, &got), KV_OK);
    check_change(&got.created, 1000, "app-1", "Application");
    CHECK_ST(ks_vault_get(env, "stamped", &got), KV_OK);
    check_change(&got.modified, 2000, "mi-2", "ManagedIdentity");
    /* a vault kvmock makes itself: the time alone */
    struct ks_vault mine = vault("stampedbykvmock", 1, 7, 0);
    int64_t before = ks_now();
    CHECK_ST(ks_vault_put(env, &mine), KV_OK);
    CHECK_ST(ks_vault_get(env, "stampedbykvmock", &got), KV_OK);
    CHECK(got.created.at >= before && got.created.at <= ks_now());
    check_change(&got.modified, got.created.at, "", "");
    CHECK_STR(got.created.by, "");
    /* a change that does not fit its fields is refused */
    memset(v.modified.by_type, 'x', sizeof(v.modified.by_type));
    v.modified.at = 3000;
    CHECK_ST(ks_vault_put(env, &v), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_vault_get(env, "stamped", &got), KV_OK);
    check_change(&got.modified, 2000, "mi-2", "ManagedIdentity");
}

/* A Managed HSM is a vault record marked as one: it reads back so (through a soft delete and
 * a recovery too), one name is a vault's or an HSM's and never changes kind, and every key
 * an HSM makes is a hardware key. */
static void managed_hsms(void)
{
    struct ks_vault h = vault("hsm1", 1, 7, 0), got;
    h.hsm = h.premium = 1;
    CHECK_ST(ks_vault_put(env, &h), KV_OK);
    CHECK_ST(ks_vault_get(env, "HSM1", &got), KV_OK);
    CHECK(got.hsm == 1 && got.premium == 1 && got.soft_delete == 1 && got.retention_days == 7 &&
          got.rbac == 0);
    CHECK_ST(ks_vault_put(env, &h), KV_OK); /* put again as what it is */
    CHECK_ST(ks_vault_get(env, "other", &got), KV_OK);
    CHECK(got.hsm == 0);

    /* a vault over the HSM's name, by any write, is refused; nothing of it is written */
    static const char key[] = "hsm1\0x", val[] = "{}";
    struct ks_record_op op = {KS_TABLE_POLICIES, key, sizeof(key) - 1, val, sizeof(val) - 1};
    struct ks_vault v = vault("hsm1", 1, 90, 0);
    v.rbac = 1;
    CHECK_ST(ks_vault_put(env, &v), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_create(env, &v), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_put_with(env, &v, KS_VAULT_UPDATE, &op, 1), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_put_with(env, &v, KS_VAULT_PUT, &op, 1), KV_ERR_ARM_VAULT_EXISTS);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "hsm1", 5) == 0);
    CHECK_ST(ks_vault_get(env, "hsm1", &got), KV_OK);
    CHECK(got.hsm == 1 && got.premium == 1 && got.retention_days == 7 && got.rbac == 0);
    /* and an HSM over a vault's name */
    struct ks_vault over = vault("other", 1, 7, 0);
    over.hsm = over.premium = over.rbac = 1;
    CHECK_ST(ks_vault_put(env, &over), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_create(env, &over), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_put_with(env, &over, KS_VAULT_UPDATE, NULL, 0), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(ks_vault_get(env, "other", &got), KV_OK);
    CHECK(got.hsm == 0 && got.retention_days == 90 && got.rbac == 0 && got.premium == 0);

    /* RSA, EC and oct asked for make RSA-HSM, EC-HSM and oct-HSM in an HSM, with the
     * recovery level of its retention; in a vault they stay software keys */
    static const struct {
        enum ks_kty kty;
        const char *name, *wire;
    } kinds[] = {
        {KS_KTY_RSA, "r", "RSA-HSM"}, {KS_KTY_EC, "e", "EC-HSM"}, {KS_KTY_OCT, "o", "oct-HSM"}};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        struct ks_create p = {.kty = kinds[i].kty, .attrs = {.enabled = 1}};
        struct ks_key *k = NULL, *again = NULL;
        CHECK_ST(ks_key_create(env, "hsm1", kinds[i].name, &p, &k), KV_OK);
        CHECK(k != NULL && k->hsm == 1 && k->kty == kinds[i].kty);
        CHECK_STR(k ? ks_kty_name(k->kty, k->hsm) : NULL, kinds[i].wire);
        CHECK_ST(ks_key_get(env, "hsm1", kinds[i].name, NULL, &again), KV_OK);
        CHECK(again != NULL && again->hsm == 1 && again->kty == kinds[i].kty);
        CHECK_STR(again ? again->recovery_level : NULL, "CustomizedRecoverable+Purgeable");
        CHECK(again != NULL && again->recoverable_days == 7);
        ks_key_free(k);
        ks_key_free(again);
    }
    struct ks_create soft = {.kty = KS_KTY_OCT, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, "other", "soft", &soft, &k), KV_OK);
    CHECK(k != NULL && k->hsm == 0);
    CHECK_STR(k ? ks_kty_name(k->kty, k->hsm) : NULL, "oct");
    ks_key_free(k);
    k = NULL;
    /* a new version in the HSM is a hardware key too; a default retention gives Key Vault's
     * default recovery level */
    struct ks_vault h2 = vault("hsm2", 1, 90, 0);
    h2.hsm = h2.premium = 1;
    snprintf(h2.hsm_sku, sizeof(h2.hsm_sku), "Custom_B32");
    CHECK_ST(ks_vault_create(env, &h2), KV_OK);
    /* a vault has no HSM sku */
    struct ks_vault skued = vault("skued", 1, 90, 0);
    snprintf(skued.hsm_sku, sizeof(skued.hsm_sku), "Standard_B1");
    CHECK_ST(ks_vault_create(env, &skued), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_key_create(env, "hsm2", "o", &soft, &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_create(env, "hsm2", "o", &soft, &k), KV_OK);
    CHECK(k != NULL && k->hsm == 1);
    ks_key_free(k);
    k = NULL;
    CHECK_ST(ks_key_get(env, "hsm2", "o", NULL, &k), KV_OK);
    CHECK(k != NULL && k->hsm == 1 && k->recoverable_days == 90);
    CHECK_STR(k ? k->recovery_level : NULL, "Recoverable+Purgeable");
    ks_key_free(k);

    /* soft-deleted and recovered, it is still an HSM, and holds its name from vaults */
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "hsm2", "id", &d), KV_OK);
    CHECK(d.vault.hsm == 1);
    CHECK_ST(ks_deleted_vault_get(env, "hsm2", &d), KV_OK);
    CHECK(d.vault.hsm == 1 && d.vault.premium == 1);
    struct ks_vault v2 = vault("hsm2", 1, 90, 0);
    CHECK_ST(ks_vault_create(env, &v2), KV_ERR_VAULT_DELETED);
    /* deleted HSMs are not deleted vaults: listed, recovered and purged apart */
    struct ks_deleted_vault page[KS_PAGE_MAX];
    size_t n = 0;
    char next[KS_VAULT_NAME_MAX + 1];
    CHECK_ST(ks_deleted_vault_list(env, 1, NULL, KS_PAGE_MAX, page, &n, next), KV_OK);
    CHECK(n == 1 && strcmp(page[0].vault.name, "hsm2") == 0 && next[0] == '\0');
    CHECK_ST(ks_deleted_vault_list(env, 0, NULL, KS_PAGE_MAX, page, &n, next), KV_OK);
    for (size_t i = 0; i < n; i++)
        CHECK(strcmp(page[i].vault.name, "hsm2") != 0);
    CHECK_ST(ks_deleted_vault_recover(env, "hsm2", 0, &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_purge(env, "hsm2", 0, NULL, 0, NULL), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_get(env, "hsm2", &d), KV_OK);
    CHECK_ST(ks_deleted_vault_recover(env, "hsm2", 1, &got), KV_OK);
    CHECK(got.hsm == 1);
    CHECK_STR(got.hsm_sku, "Custom_B32");
    CHECK_ST(ks_vault_get(env, "hsm2", &got), KV_OK);
    CHECK(got.hsm == 1 && got.premium == 1);
    CHECK_ST(ks_vault_put(env, &v2), KV_ERR_ARM_VAULT_EXISTS);
}

static void persists(void)
{
    ks_close(env);
    env = NULL;
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    if (env == NULL)
        return;
    struct ks_deleted_vault g;
    CHECK_ST(ks_deleted_vault_get(env, "pb", &g), KV_OK);
    CHECK_STR(g.resource_id, "id");
    struct ks_vault v;
    CHECK_ST(ks_vault_get(env, "pb", &v), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_recover(env, "pb", 0, &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "pb", &v), KV_OK);
    CHECK_ST(ks_vault_get(env, "where", &v), KV_OK);
    CHECK_STR(v.location, "westeurope");
    CHECK_ST(ks_vault_get(env, "grouped", &v), KV_OK);
    CHECK_STR(v.group, "Team-RG");
    CHECK_ST(ks_vault_get(env, "stamped", &v), KV_OK);
    check_change(&v.created, 1000, "app-1", "Application");
    check_change(&v.modified, 2000, "mi-2", "ManagedIdentity");
    CHECK_ST(ks_vault_get(env, "hsm1", &v), KV_OK);
    CHECK(v.hsm == 1 && v.premium == 1 && v.retention_days == 7);
    CHECK_ST(ks_vault_get(env, "other", &v), KV_OK);
    CHECK(v.hsm == 0);
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_get(env, "hsm1", "e", NULL, &k), KV_OK);
    CHECK(k != NULL && k->hsm == 1 && k->kty == KS_KTY_EC);
    ks_key_free(k);
    struct ks_group group;
    CHECK_ST(ks_group_get(env, "team-rg", &group, NULL), KV_OK);
    CHECK_STR(group.location, "westeurope");
}

static void cleanup(void)
{
    check_remove_dir(dir);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    CHECK(mkdtemp(dir) != NULL);
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    if (env != NULL) {
        put_vault("other", 1, 90, 0);
        delete_then_recover();
        without_soft_delete();
        purge_and_protection();
        scheduled_purge();
        paging();
        location_is_kept();
        tags_are_kept();
        network_rules();
        update_needs_a_live_vault();
        changes_are_stamped();
        resource_groups();
        groups_made_with_vaults();
        managed_hsms();
        persists();
        ks_close(env);
    }
    cleanup();
    CHECK_DONE();
}
