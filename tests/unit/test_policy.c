/*
 * The evaluator: access policies per permission and `all`, application-bound
 * entries, tenant mismatch, RBAC roles and scope inheritance, persistence and
 * revocation; Managed HSM's data actions, local roles and local role assignments.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "check.h"
#include "pol.h"

static char dir[] = "/tmp/kvmock-policy-XXXXXX";

static struct pol_claims who(const char *tid, const char *oid, const char *appid)
{
    struct pol_claims c;
    memset(&c, 0, sizeof(c));
    snprintf(c.tid, sizeof(c.tid), "%s", tid);
    snprintf(c.oid, sizeof(c.oid), "%s", oid);
    snprintf(c.appid, sizeof(c.appid), "%s", appid);
    return c;
}

static struct ks_vault vault(const char *name, int rbac)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 90, .rbac = rbac};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t1");
    return v;
}

/* Vault @p name, stored (role assignments need their scope to exist). */
static void stored_vault(struct ks_env *ks, const char *name)
{
    struct ks_vault v = vault(name, 1);
    CHECK_ST(ks_vault_put(ks, &v), KV_OK);
}

static void stored_group(struct ks_env *ks, const char *name)
{
    struct ks_group g = {.location = "local"};
    snprintf(g.name, sizeof(g.name), "%s", name);
    int created = 0;
    CHECK_ST(ks_group_put(ks, &g, &created), KV_OK);
    CHECK(created);
}

static void expect(struct pol_ctx *c, struct pol_claims w, struct ks_vault v, const char *key,
                   enum pol_perm perm, enum kv_status want)
{
    enum kv_status got = pol_allowed(c, &w, &v, key, perm);
    if (got != want) {
        fprintf(stderr, "oid %s on %s/%s %s: %s, want %s\n", w.oid, v.name, key ? key : "-",
                pol_perm_name(perm), kv_status_name(got), kv_status_name(want));
        check_failures++;
    }
}

/* An identity's whole access policy taken away, as Resource Manager's accessPolicies/remove
 * with no permission listed does. */
static enum kv_status remove_policy(struct pol_ctx *c, const char *vault, const char *tid,
                                    const char *oid)
{
    struct pol_access_policy p = {0};
    snprintf(p.vault, sizeof(p.vault), "%s", vault);
    snprintf(p.tenant_id, sizeof(p.tenant_id), "%s", tid);
    snprintf(p.object_id, sizeof(p.object_id), "%s", oid);
    struct pol_acl_change chg = {
        .vault = vault, .kind = POL_UPDATE_REMOVE, .policies = &p, .n_policies = 1};
    return pol_acl_apply(c, &chg);
}

/* The role assignments at a vault's scope and its keys' taken away. */
static enum kv_status remove_vault_roles(struct pol_ctx *c, const char *vault)
{
    struct pol_acl_change chg = {.vault = vault, .clear_roles = 1};
    return pol_acl_apply(c, &chg);
}

/* The firewall: a trusted service's bypass first, then public network access, then the
 * IP rules of a vault that denies by default. */
static void network(struct pol_ctx *c)
{
    struct pol_identity storage = {.trusted_service = 1};
    snprintf(storage.name, sizeof(storage.name), "storage");
    snprintf(storage.object_id, sizeof(storage.object_id), "o-storage");
    snprintf(storage.client_id, sizeof(storage.client_id), "c-storage");
    CHECK_ST(pol_add_identity(c, &storage), KV_OK);
    struct pol_claims app = who("t1", "o-app", "c-app"), svc = who("t1", "o-storage", "c-storage");
    char *ips[] = {"not a rule", "203.0.113.0/24", "::1/128"};
    struct ks_net_rules rules = {3, ips, 0, NULL}, none = {0};
    struct ks_vault v = vault("walled", 0);
    CHECK_ST(pol_network_allowed(c, &app, &v, NULL, "198.51.100.1"), KV_OK); /* no rules */
    v.net_acls = 1;
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "198.51.100.1"), KV_OK); /* Allow */
    v.net_deny = 1;
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "198.51.100.1"), KV_ERR_FIREWALL_DENIED);
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "203.0.113.9"), KV_OK);
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "::ffff:203.0.113.9"), KV_OK);
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "::1"), KV_OK);
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "::2"), KV_ERR_FIREWALL_DENIED);
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, ""), KV_ERR_FIREWALL_DENIED);
    CHECK_ST(pol_network_allowed(c, &app, &v, &none, "203.0.113.9"), KV_ERR_FIREWALL_DENIED);
    CHECK_ST(pol_network_allowed(c, &app, &v, NULL, "203.0.113.9"), KV_ERR_FIREWALL_DENIED);
    /* bypass AzureServices lets the trusted service through from anywhere, and no one
     * else; bypass None lets no one */
    CHECK_ST(pol_network_allowed(c, &svc, &v, &none, "198.51.100.1"), KV_OK);
    v.net_bypass_none = 1;
    CHECK_ST(pol_network_allowed(c, &svc, &v, &none, "198.51.100.1"), KV_ERR_FIREWALL_DENIED);
    CHECK_ST(pol_network_allowed(c, &svc, &v, &rules, "203.0.113.9"), KV_OK); /* its address */
    /* disabled public access refuses even an address the rules let in; only the trusted
     * service's bypass passes it */
    v.public_network_disabled = 1;
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "203.0.113.9"), KV_ERR_PUBLIC_DISABLED);
    CHECK_ST(pol_network_allowed(c, &svc, &v, &rules, "203.0.113.9"), KV_ERR_PUBLIC_DISABLED);
    v.net_bypass_none = 0;
    CHECK_ST(pol_network_allowed(c, &svc, &v, &rules, "198.51.100.1"), KV_OK);
    v.net_deny = 0;
    CHECK_ST(pol_network_allowed(c, &app, &v, &rules, "203.0.113.9"), KV_ERR_PUBLIC_DISABLED);
}

static void cleanup(void)
{
    check_remove_dir(dir);
}

static struct pol_access_policy ap(const char *vault, const char *oid, pol_perms keys)
{
    struct pol_access_policy p = {.keys = keys};
    snprintf(p.vault, sizeof(p.vault), "%s", vault);
    snprintf(p.tenant_id, sizeof(p.tenant_id), "t1");
    snprintf(p.object_id, sizeof(p.object_id), "%s", oid);
    return p;
}

/* The permissions @p oid has in @p vault's access policies; -1 without an entry. */
static long perms_of(struct pol_ctx *c, const char *vault, const char *oid)
{
    struct pol_access_policy list[16];
    size_t n = pol_policy_list(c, vault, list, 16);
    for (size_t i = 0; i < n && i < 16; i++) {
        if (strcmp(list[i].object_id, oid) == 0)
            return (long)list[i].keys;
    }
    return -1;
}

static int same_policy(const struct pol_access_policy *a, const struct pol_access_policy *b)
{
    return !strcmp(a->vault, b->vault) && !strcmp(a->tenant_id, b->tenant_id) &&
           !strcmp(a->object_id, b->object_id) && !strcmp(a->application_id, b->application_id) &&
           a->keys == b->keys && memcmp(a->lists, b->lists, sizeof(a->lists)) == 0;
}

/* Whether list @p l of @p oid's entry in @p vault names exactly @p want, in its order
 * (a NULL-ended array). */
static int list_is(struct pol_ctx *c, const char *vault, const char *oid, enum pol_list l,
                   const char *const *want)
{
    static struct pol_access_policy all[64];
    size_t n = pol_policy_list(c, vault, all, 64);
    for (size_t i = 0; i < n && i < 64; i++) {
        if (strcmp(all[i].object_id, oid) != 0)
            continue;
        size_t k = 0;
        for (; want[k] != NULL; k++) {
            if (k >= all[i].lists[l].n ||
                strcmp(pol_list_entry(l, all[i].lists[l].name[k]), want[k]) != 0)
                return 0;
        }
        return k == all[i].lists[l].n;
    }
    return 0;
}

static int same_role(const struct pol_role_assignment *a, const struct pol_role_assignment *b)
{
    return !strcmp(a->id, b->id) && pol_role_same(a, b) && a->created == b->created &&
           a->updated == b->updated && !strcmp(a->created_by, b->created_by) &&
           !strcmp(a->updated_by, b->updated_by) && !strcmp(a->description, b->description) &&
           !strcmp(a->principal_type, b->principal_type);
}

/* The snapshot a change installs is the one a reload from the store reads, in order. */
static void same_as_reloaded(struct pol_ctx *c, struct ks_env *ks)
{
    static struct pol_access_policy a[64], b[64];
    static struct pol_role_assignment ra[64], rb[64];
    struct pol_ctx *fresh = NULL;
    CHECK_ST(pol_new(dir, "t1", &fresh), KV_OK);
    if (fresh == NULL)
        return;
    CHECK_ST(pol_attach(fresh, ks), KV_OK);
    const char *vaults[] = {"acl1", "acl2", "cmk", "cmk2"};
    for (size_t v = 0; v < 4; v++) {
        size_t na = pol_policy_list(c, vaults[v], a, 64),
               nb = pol_policy_list(fresh, vaults[v], b, 64);
        CHECK(na == nb && na <= 64);
        for (size_t i = 0; i < na && i < nb && i < 64; i++)
            CHECK(same_policy(&a[i], &b[i]));
    }
    size_t na = pol_role_all(c, ra, 64), nb = pol_role_all(fresh, rb, 64);
    CHECK(na == nb && na <= 64);
    for (size_t i = 0; i < na && i < nb && i < 64; i++)
        CHECK(same_role(&ra[i], &rb[i]));
    pol_free(fresh);
}

#define P(x) ((pol_perms)1u << (x))

/* Changes of access control as one write: a vault with its access policies and role
 * assignments, all or nothing, and the update kinds of Resource Manager's
 * accessPolicies add, replace and remove. */
static void changes(struct pol_ctx *c, struct ks_env *ks)
{
    struct ks_vault v = vault("acl1", 1), got;
    struct pol_access_policy two[] = {ap("acl1", "zed", P(POL_KEYS_GET)),
                                      ap("acl1", "amy", POL_PERMS_ALL)};
    struct pol_role_assignment role = {
        .id = "ra-acl1", .principal_id = "bob", .role = POL_ROLE_CRYPTO_USER, .vault = "acl1"};
    struct pol_acl_change chg = {.vault = "acl1",
                                 .clear_policies = 1,
                                 .clear_roles = 1,
                                 .policies = two,
                                 .n_policies = 2,
                                 .roles = &role,
                                 .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &v, 1, &chg), KV_OK);
    CHECK_ST(ks_vault_get(ks, "acl1", &got), KV_OK);
    CHECK(perms_of(c, "acl1", "zed") == P(POL_KEYS_GET) &&
          perms_of(c, "acl1", "amy") == POL_PERMS_ALL);
    expect(c, who("t1", "bob", ""), v, "k", POL_KEYS_WRAP, KV_OK);
    same_as_reloaded(c, ks);

    /* a change that cannot be made writes nothing: a second assignment of one principal,
     * role and scope under another id, or a vault that exists already */
    struct ks_vault v2 = vault("acl2", 1);
    struct pol_role_assignment twin = role;
    snprintf(twin.id, sizeof(twin.id), "ra-twin");
    struct pol_access_policy one = ap("acl2", "zed", P(POL_KEYS_GET));
    struct pol_acl_change bad = {
        .vault = "acl2", .policies = &one, .n_policies = 1, .roles = &twin, .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &v2, 1, &bad), KV_ERR_ARM_ROLE_EXISTS);
    CHECK_ST(ks_vault_get(ks, "acl2", &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK(perms_of(c, "acl2", "zed") == -1 && !pol_role_get(c, "ra-twin", &twin));
    chg.n_roles = 0;
    CHECK_ST(pol_vault_put(c, &v, 1, &chg), KV_ERR_ARM_VAULT_EXISTS);
    struct pol_acl_change other = {.vault = "acl2", .policies = &one, .n_policies = 1};
    CHECK_ST(pol_vault_put(c, &v, 0, &other), KV_ERR_BAD_PARAM); /* another vault's */
    CHECK(perms_of(c, "acl2", "zed") == -1);

    /* clearing the vault's assignments frees their principal, role and scope for another
     * id in the same change */
    struct pol_acl_change reassign = {
        .vault = "acl1", .clear_roles = 1, .roles = &twin, .n_roles = 1};
    CHECK_ST(pol_acl_apply(c, &reassign), KV_OK);
    CHECK(!pol_role_get(c, "ra-acl1", &role) && pol_role_get(c, "ra-twin", &role));

    /* add, replace, remove: from what the identity has, and from the change's own
     * earlier entries for it */
    struct pol_access_policy upd[] = {ap("acl1", "zed", P(POL_KEYS_LIST)),
                                      ap("acl1", "zed", P(POL_KEYS_SIGN))};
    struct pol_acl_change add = {
        .vault = "acl1", .policies = upd, .n_policies = 2, .kind = POL_UPDATE_ADD};
    CHECK_ST(pol_acl_apply(c, &add), KV_OK);
    CHECK(perms_of(c, "acl1", "zed") == (P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_SIGN)));
    struct pol_acl_change remove = {
        .vault = "acl1", .policies = upd, .n_policies = 1, .kind = POL_UPDATE_REMOVE};
    CHECK_ST(pol_acl_apply(c, &remove), KV_OK);
    CHECK(perms_of(c, "acl1", "zed") == (P(POL_KEYS_GET) | P(POL_KEYS_SIGN)));
    struct pol_access_policy none = ap("acl1", "zed", 0);
    remove.policies = &none; /* no permission listed: all of them, and the entry */
    CHECK_ST(pol_acl_apply(c, &remove), KV_OK);
    CHECK(perms_of(c, "acl1", "zed") == -1 && perms_of(c, "acl1", "amy") == POL_PERMS_ALL);
    struct pol_access_policy amy0 = ap("acl1", "amy", 0);
    struct pol_acl_change replace = {
        .vault = "acl1", .policies = &amy0, .n_policies = 1, .kind = POL_UPDATE_REPLACE};
    CHECK_ST(pol_acl_apply(c, &replace), KV_OK);
    CHECK(perms_of(c, "acl1", "amy") == -1);
    struct pol_acl_change set = {.vault = "acl1", .policies = &amy0, .n_policies = 1};
    CHECK_ST(pol_acl_apply(c, &set), KV_OK); /* stored as given: an entry without permission */
    CHECK(perms_of(c, "acl1", "amy") == 0);
    same_as_reloaded(c, ks);

    /* a vault's deletion takes the role assignments at its scope along, in its own
     * transaction; a soft-deleted vault keeps its access policies, one removed at once
     * does not */
    struct ks_deleted_vault d;
    CHECK_ST(pol_vault_delete(c, "acl1", "id", &d), KV_OK);
    CHECK(d.deleted_date != 0 && !pol_role_get(c, "ra-twin", &role));
    CHECK(perms_of(c, "acl1", "amy") == 0);
    same_as_reloaded(c, ks);
    struct ks_vault hard = vault("acl2", 1);
    hard.soft_delete = 0;
    struct pol_access_policy kept = ap("acl2", "zed", P(POL_KEYS_GET));
    struct pol_role_assignment r2 = {.id = "ra-acl2",
                                     .principal_id = "bob",
                                     .role = POL_ROLE_READER,
                                     .vault = "acl2",
                                     .key = "k"};
    struct pol_acl_change made = {
        .vault = "acl2", .policies = &kept, .n_policies = 1, .roles = &r2, .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &hard, 1, &made), KV_OK);
    CHECK_ST(pol_vault_delete(c, "acl2", NULL, &d), KV_OK);
    CHECK(d.deleted_date == 0 && perms_of(c, "acl2", "zed") == -1 &&
          !pol_role_get(c, "ra-acl2", &r2));
    CHECK_ST(pol_vault_delete(c, "acl2", NULL, &d), KV_ERR_VAULT_NOT_FOUND);
    same_as_reloaded(c, ks);

    /* a purge takes the access policies the deleted vault kept, in its transaction; one
     * refused under purge protection keeps them */
    CHECK(perms_of(c, "acl1", "amy") == 0);
    CHECK_ST(pol_deleted_vault_purge(c, "ACL1", 0), KV_OK);
    CHECK(perms_of(c, "acl1", "amy") == -1);
    same_as_reloaded(c, ks);
    CHECK_ST(pol_deleted_vault_purge(c, "acl1", 0), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(pol_deleted_vault_purge(c, "Bad_Name", 0), KV_ERR_VAULT_NOT_FOUND);
    struct ks_vault guarded = vault("acl3", 1);
    guarded.purge_protection = 1;
    struct pol_access_policy held = ap("acl3", "zed", P(POL_KEYS_GET));
    struct pol_acl_change with_held = {.vault = "acl3", .policies = &held, .n_policies = 1};
    CHECK_ST(pol_vault_put(c, &guarded, 1, &with_held), KV_OK);
    CHECK_ST(pol_vault_delete(c, "acl3", NULL, &d), KV_OK);
    CHECK_ST(pol_deleted_vault_purge(c, "acl3", 0), KV_ERR_PURGE_PROTECTED);
    CHECK(perms_of(c, "acl3", "zed") == P(POL_KEYS_GET));
    same_as_reloaded(c, ks);
}

/* Permission lists as Resource Manager keeps them: every list in the order given, each
 * name once and as Key Vault spells it; kvmock grants from the key list. */
static void lists(struct pol_ctx *c, struct ks_env *ks)
{
    stored_vault(ks, "cmk2");
    struct pol_access_policy p = ap("cmk2", "lia", 0);
    static const char *const keys[] = {"WrapKey", "get", "unwrapkey", "get", NULL};
    for (size_t i = 0; keys[i] != NULL; i++)
        CHECK_ST(pol_list_add(&p.lists[POL_LIST_KEYS], POL_LIST_KEYS, keys[i]), KV_OK);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_SECRETS], POL_LIST_SECRETS, "set"), KV_OK);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_SECRETS], POL_LIST_SECRETS, "Get"), KV_OK);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_CERTIFICATES], POL_LIST_CERTIFICATES, "ManageIssuers"),
             KV_OK);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_STORAGE], POL_LIST_STORAGE, "getsas"), KV_OK);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_SECRETS], POL_LIST_SECRETS, "wrapKey"),
             KV_ERR_BAD_PARAM);
    CHECK_ST(pol_list_add(&p.lists[POL_LIST_KEYS], POL_LIST_KEYS, "set"), KV_ERR_BAD_PARAM);
    struct pol_acl_change set = {.vault = "cmk2", .policies = &p, .n_policies = 1};
    CHECK_ST(pol_acl_apply(c, &set), KV_OK);
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_KEYS,
                  (const char *const[]){"wrapKey", "get", "unwrapKey", NULL}));
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_SECRETS, (const char *const[]){"set", "get", NULL}));
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_CERTIFICATES,
                  (const char *const[]){"manageissuers", NULL}));
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_STORAGE, (const char *const[]){"getsas", NULL}));
    CHECK(perms_of(c, "cmk2", "lia") == (P(POL_KEYS_WRAP) | P(POL_KEYS_GET) | P(POL_KEYS_UNWRAP)));
    same_as_reloaded(c, ks);

    /* add appends what is not there; remove takes the names listed, and "all" its list */
    struct pol_access_policy more = ap("cmk2", "lia", 0);
    CHECK_ST(pol_list_add(&more.lists[POL_LIST_KEYS], POL_LIST_KEYS, "sign"), KV_OK);
    CHECK_ST(pol_list_add(&more.lists[POL_LIST_KEYS], POL_LIST_KEYS, "get"), KV_OK);
    CHECK_ST(pol_list_add(&more.lists[POL_LIST_SECRETS], POL_LIST_SECRETS, "list"), KV_OK);
    struct pol_acl_change add = {
        .vault = "cmk2", .policies = &more, .n_policies = 1, .kind = POL_UPDATE_ADD};
    CHECK_ST(pol_acl_apply(c, &add), KV_OK);
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_KEYS,
                  (const char *const[]){"wrapKey", "get", "unwrapKey", "sign", NULL}));
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_SECRETS,
                  (const char *const[]){"set", "get", "list", NULL}));
    struct pol_access_policy less = ap("cmk2", "lia", 0);
    CHECK_ST(pol_list_add(&less.lists[POL_LIST_KEYS], POL_LIST_KEYS, "get"), KV_OK);
    CHECK_ST(pol_list_add(&less.lists[POL_LIST_SECRETS], POL_LIST_SECRETS, "all"), KV_OK);
    struct pol_acl_change remove = {
        .vault = "cmk2", .policies = &less, .n_policies = 1, .kind = POL_UPDATE_REMOVE};
    CHECK_ST(pol_acl_apply(c, &remove), KV_OK);
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_KEYS,
                  (const char *const[]){"wrapKey", "unwrapKey", "sign", NULL}));
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_SECRETS, (const char *const[]){NULL}));
    CHECK(perms_of(c, "cmk2", "lia") == (P(POL_KEYS_WRAP) | P(POL_KEYS_UNWRAP) | P(POL_KEYS_SIGN)));

    /* an entry left with secret permissions only stays, and grants nothing on keys */
    struct pol_access_policy keys_gone = ap("cmk2", "lia", 0);
    CHECK_ST(pol_list_add(&keys_gone.lists[POL_LIST_KEYS], POL_LIST_KEYS, "all"), KV_OK);
    remove.policies = &keys_gone;
    CHECK_ST(pol_acl_apply(c, &remove), KV_OK);
    CHECK(perms_of(c, "cmk2", "lia") == 0);
    CHECK(list_is(c, "cmk2", "lia", POL_LIST_CERTIFICATES,
                  (const char *const[]){"manageissuers", NULL}));
    expect(c, who("t1", "lia", ""), vault("cmk2", 0), "k", POL_KEYS_WRAP, KV_ERR_ACCESS_DENIED);
    same_as_reloaded(c, ks);

    /* a record an older kvmock wrote names its key permissions alone, in Key Vault's order */
    static const char old[] = "{\"keys\":[\"get\",\"wrapKey\"],\"vault\":\"cmk2\","
                              "\"tenantId\":\"t1\",\"objectId\":\"old\",\"applicationId\":\"\"}";
    static const char old_key[] = "cmk2\0t1\0old\0\0";
    struct ks_record_op op = {KS_TABLE_POLICIES, old_key, sizeof(old_key) - 1, old,
                              sizeof(old) - 1};
    CHECK_ST(ks_record_apply(ks, &op, 1), KV_OK);
    struct pol_ctx *fresh = NULL;
    CHECK_ST(pol_new(dir, "t1", &fresh), KV_OK);
    if (fresh == NULL)
        return;
    CHECK_ST(pol_attach(fresh, ks), KV_OK);
    CHECK(perms_of(fresh, "cmk2", "old") == (P(POL_KEYS_GET) | P(POL_KEYS_WRAP)));
    CHECK(list_is(fresh, "cmk2", "old", POL_LIST_KEYS,
                  (const char *const[]){"get", "wrapKey", NULL}));
    CHECK(list_is(fresh, "cmk2", "old", POL_LIST_SECRETS, (const char *const[]){NULL}));
    pol_free(fresh);
    CHECK_ST(ks_record_apply(
                 ks,
                 &(struct ks_record_op){KS_TABLE_POLICIES, old_key, sizeof(old_key) - 1, NULL, 0},
                 1),
             KV_OK);
}

/* Custom role definitions: what data actions grant (Azure's built-in roles' own data
 * actions give what those roles grant), their life, their names, their use by
 * assignments, evaluation and persistence. */
static void custom_roles(struct pol_ctx *c, struct ks_env *ks)
{
#define KV_KEYS "Microsoft.KeyVault/vaults/keys/"
    static const char *const officer[] = {KV_KEYS "*",
                                          "Microsoft.KeyVault/vaults/keyrotationpolicies/*"};
    static const char *const user[] = {
        KV_KEYS "read",           KV_KEYS "update/action",  KV_KEYS "backup/action",
        KV_KEYS "encrypt/action", KV_KEYS "decrypt/action", KV_KEYS "wrap/action",
        KV_KEYS "unwrap/action",  KV_KEYS "sign/action",    KV_KEYS "verify/action"};
    static const char *const reader[] = {"Microsoft.KeyVault/vaults/*/read",
                                         "Microsoft.KeyVault/vaults/secrets/readMetadata/action"};
    static const char *const admin[] = {"Microsoft.KeyVault/vaults/*"};
    static const char *const secrets[] = {"Microsoft.KeyVault/vaults/secrets/*"};
    CHECK(pol_data_actions_perms(officer, 2, NULL, 0) == pol_role_perms(POL_ROLE_CRYPTO_OFFICER));
    CHECK(pol_data_actions_perms(user, 9, NULL, 0) == pol_role_perms(POL_ROLE_CRYPTO_USER));
    CHECK(pol_data_actions_perms(reader, 2, NULL, 0) == pol_role_perms(POL_ROLE_READER));
    CHECK(pol_data_actions_perms(admin, 1, NULL, 0) == pol_role_perms(POL_ROLE_ADMINISTRATOR));
    CHECK(pol_data_actions_perms(secrets, 1, NULL, 0) == 0);
    /* less the denied ones; any case; '*' anywhere; nothing from a near miss */
    static const char *const deny[] = {KV_KEYS "DELETE", KV_KEYS "purge/*"};
    CHECK(pol_data_actions_perms(officer, 1, deny, 2) ==
          (POL_PERMS_ALL & ~P(POL_KEYS_DELETE) & ~P(POL_KEYS_PURGE) &
           ~P(POL_KEYS_GETROTATIONPOLICY) & ~P(POL_KEYS_SETROTATIONPOLICY)));
    static const char *const odd[] = {"microsoft.keyvault/VAULTS/keys/UNWRAP/action", "*/wrap/*",
                                      KV_KEYS "sign", KV_KEYS "read/x"};
    CHECK(pol_data_actions_perms(odd, 4, NULL, 0) == (P(POL_KEYS_UNWRAP) | P(POL_KEYS_WRAP)));
    static const char *const everything[] = {"*"};
    CHECK(pol_data_actions_perms(everything, 1, everything, 1) == 0);

    /* made, found by id and name, listed */
    static const char *const unwrap_only[] = {KV_KEYS "read", KV_KEYS "unwrap/action"};
    struct pol_role_def def = {.id = "6F1C0E6A-0000-4000-8000-0000000000C1",
                               .name = "CMK Unwrap",
                               .doc = "{\"roleName\":\"CMK Unwrap\"}"},
                        got;
    int created = 0;
    CHECK_ST(pol_role_def_put(c, &def, unwrap_only, 2, NULL, 0, &created), KV_OK);
    CHECK(created);
    CHECK_ST(pol_role_def_get(c,
                              "/providers/Microsoft.Authorization/roleDefinitions/"
                              "6f1c0e6a-0000-4000-8000-0000000000c1",
                              &got),
             KV_OK);
    CHECK_STR(got.id, "6f1c0e6a-0000-4000-8000-0000000000c1");
    CHECK_STR(got.name, "CMK Unwrap");
    CHECK_STR(got.doc, def.doc);
    CHECK(got.perms == (P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_UNWRAP)));
    pol_role_def_clear(&got);
    enum pol_role role;
    char def_id[POL_ID_MAX];
    CHECK_ST(pol_role_resolve(c, "cmk unwrap", &role, def_id), KV_OK);
    CHECK(role == POL_ROLE_CUSTOM && strcmp(def_id, "6f1c0e6a-0000-4000-8000-0000000000c1") == 0);
    CHECK_ST(pol_role_resolve(c, "Key Vault Reader", &role, def_id), KV_OK);
    CHECK(role == POL_ROLE_READER && def_id[0] == '\0');
    CHECK_ST(pol_role_resolve(c, "6f1c0e6a-0000-4000-8000-0000000000c9", &role, def_id),
             KV_ERR_BAD_PARAM);
    /* names are unique in any case, built-in ones included; ids are GUIDs, not built-in */
    struct pol_role_def twin = def;
    snprintf(twin.id, sizeof(twin.id), "6f1c0e6a-0000-4000-8000-0000000000c2");
    snprintf(twin.name, sizeof(twin.name), "CMK UNWRAP");
    CHECK_ST(pol_role_def_put(c, &twin, unwrap_only, 2, NULL, 0, NULL),
             KV_ERR_ARM_ROLE_NAME_EXISTS);
    snprintf(twin.name, sizeof(twin.name), "key vault reader");
    CHECK_ST(pol_role_def_put(c, &twin, unwrap_only, 2, NULL, 0, NULL),
             KV_ERR_ARM_ROLE_NAME_EXISTS);
    struct pol_role_def bad = def;
    snprintf(bad.id, sizeof(bad.id), "not-a-guid");
    CHECK_ST(pol_role_def_put(c, &bad, NULL, 0, NULL, 0, NULL), KV_ERR_BAD_PARAM);
    snprintf(bad.id, sizeof(bad.id), "21090545-7ca7-4776-b22c-e363652d74d2"); /* Reader's */
    CHECK_ST(pol_role_def_put(c, &bad, NULL, 0, NULL, 0, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(pol_role_def_get(c, "6f1c0e6a-0000-4000-8000-0000000000c2", &got),
             KV_ERR_ARM_NO_ROLE_DEFINITION);
    struct pol_role_def *all = NULL;
    size_t n = 0;
    CHECK_ST(pol_role_def_list(c, &all, &n), KV_OK);
    CHECK(n == 1 && all != NULL && strcmp(all[0].name, "CMK Unwrap") == 0);
    pol_role_defs_free(all, n);

    /* assigned and evaluated; replaced: the assignment grants the new actions at once */
    stored_vault(ks, "custv");
    struct ks_vault v = vault("custv", 1);
    struct pol_claims disk = who("t1", "disk", "x");
    struct pol_role_assignment ra = {
        .id = "ra-c", .principal_id = "disk", .role = POL_ROLE_CUSTOM, .vault = "custv"};
    snprintf(ra.role_def, sizeof(ra.role_def), "%s", def_id);
    CHECK_ST(pol_role_resolve(c, "CMK Unwrap", &role, ra.role_def), KV_OK);
    CHECK_ST(pol_role_put(c, &ra), KV_OK);
    CHECK_STR(pol_assignment_role_id(&ra), "6f1c0e6a-0000-4000-8000-0000000000c1");
    char name[POL_ROLE_NAME_MAX];
    pol_assignment_role_name(c, &ra, name, sizeof(name));
    CHECK_STR(name, "CMK Unwrap");
    expect(c, disk, v, "k", POL_KEYS_UNWRAP, KV_OK);
    expect(c, disk, v, "k", POL_KEYS_WRAP, KV_ERR_RBAC_DENIED);
    static const char *const both[] = {KV_KEYS "read", KV_KEYS "*wrap/action"};
    CHECK_ST(pol_role_def_put(c, &def, both, 2, NULL, 0, &created), KV_OK);
    CHECK(!created);
    expect(c, disk, v, "k", POL_KEYS_WRAP, KV_OK);
    /* one principal, role and scope make one assignment, custom roles too */
    struct pol_role_assignment again = ra;
    snprintf(again.id, sizeof(again.id), "ra-c2");
    CHECK_ST(pol_role_put(c, &again), KV_ERR_ARM_ROLE_EXISTS);
    /* an assignment of a definition that does not exist is refused */
    struct pol_role_assignment ghost = ra;
    snprintf(ghost.id, sizeof(ghost.id), "ra-ghost");
    snprintf(ghost.role_def, sizeof(ghost.role_def), "6f1c0e6a-0000-4000-8000-0000000000c9");
    CHECK_ST(pol_role_put(c, &ghost), KV_ERR_BAD_PARAM);

    /* persisted: a new context reads the definition and the assignment's grant */
    struct pol_ctx *fresh = NULL;
    CHECK_ST(pol_new(dir, "t1", &fresh), KV_OK);
    if (fresh != NULL) {
        CHECK_ST(pol_attach(fresh, ks), KV_OK);
        expect(fresh, disk, v, "k", POL_KEYS_WRAP, KV_OK);
        expect(fresh, disk, v, "k", POL_KEYS_SIGN, KV_ERR_RBAC_DENIED);
        struct pol_role_assignment back;
        CHECK(pol_role_get(fresh, "ra-c", &back) && back.role == POL_ROLE_CUSTOM &&
              strcmp(back.role_def, ra.role_def) == 0);
        pol_free(fresh);
    }

    /* deleted only once no assignment uses it */
    CHECK_ST(pol_role_def_delete(c, def.id, &got), KV_ERR_ARM_ROLE_IN_USE);
    CHECK(got.doc == NULL);
    CHECK_ST(pol_role_remove(c, "ra-c"), KV_OK);
    CHECK_ST(pol_role_def_delete(c, def.id, &got), KV_OK);
    CHECK_STR(got.name, "CMK Unwrap");
    pol_role_def_clear(&got);
    CHECK_ST(pol_role_def_delete(c, def.id, NULL), KV_ERR_ARM_NO_ROLE_DEFINITION);
    CHECK_ST(pol_role_def_list(c, &all, &n), KV_OK);
    CHECK(n == 0);
    pol_role_defs_free(all, n);
    CHECK_ST(pol_role_put(c, &ra), KV_ERR_BAD_PARAM);
    expect(c, disk, v, "k", POL_KEYS_UNWRAP, KV_ERR_RBAC_DENIED);
#undef KV_KEYS
}

/* ---- Managed HSM: its data actions, its local roles and their assignments ---------------- */

#define MHSM    "Microsoft.KeyVault/managedHsm/"
#define HSM_ALL                                                                                    \
    ((pol_perms)(((pol_perms)1 << POL_PERM_HSM_END) - 1)) /* every permission an HSM checks */

/* What Managed HSM's data actions give: each one kvmock has a call for gives exactly its
 * permission, '*' and any case match as in custom roles, and the others give nothing. */
static void hsm_actions(void)
{
    static const struct {
        const char *action;
        pol_perms want;
    } each[] = {
        {MHSM "keys/read/action",
         P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_GETROTATIONPOLICY)},
        {MHSM "keys/write/action", P(POL_KEYS_UPDATE) | P(POL_KEYS_SETROTATIONPOLICY)},
        {MHSM "keys/create", P(POL_KEYS_CREATE)},
        {MHSM "keys/delete", P(POL_KEYS_DELETE)},
        {MHSM "keys/import/action", P(POL_KEYS_IMPORT)},
        {MHSM "keys/rotate/action", P(POL_KEYS_ROTATE)},
        {MHSM "keys/release/action", P(POL_KEYS_RELEASE)},
        {MHSM "keys/backup/action", P(POL_KEYS_BACKUP)},
        {MHSM "keys/restore/action", P(POL_KEYS_RESTORE)},
        {MHSM "keys/encrypt/action", P(POL_KEYS_ENCRYPT)},
        {MHSM "keys/decrypt/action", P(POL_KEYS_DECRYPT)},
        {MHSM "keys/wrap/action", P(POL_KEYS_WRAP)},
        {MHSM "keys/unwrap/action", P(POL_KEYS_UNWRAP)},
        {MHSM "keys/sign/action", P(POL_KEYS_SIGN)},
        {MHSM "keys/verify/action", P(POL_KEYS_VERIFY)},
        {MHSM "keys/deletedKeys/read/action", P(POL_HSM_DELETED_READ)},
        {MHSM "keys/deletedKeys/delete", P(POL_KEYS_PURGE)},
        {MHSM "keys/deletedKeys/recover/action", P(POL_KEYS_RECOVER)},
        {MHSM "rng/action", P(POL_HSM_RNG)},
        {MHSM "roleAssignments/read/action", P(POL_HSM_ROLES_READ)},
        {MHSM "roleAssignments/write/action", P(POL_HSM_ROLES_WRITE)},
        {MHSM "roleAssignments/delete/action", P(POL_HSM_ROLES_DELETE)},
        {MHSM "roleDefinitions/read/action", P(POL_HSM_ROLEDEFS_READ)},
        {MHSM "roleDefinitions/write/action", P(POL_HSM_ROLEDEFS_WRITE)},
        {MHSM "roleDefinitions/delete/action", P(POL_HSM_ROLEDEFS_DELETE)},
        {MHSM "backup/start/action", P(POL_HSM_BACKUP_START)},
        {MHSM "backup/status/action", P(POL_HSM_BACKUP_STATUS)},
        {MHSM "restore/start/action", P(POL_HSM_RESTORE_START)},
        {MHSM "restore/status/action", P(POL_HSM_RESTORE_STATUS)},
        {MHSM "settings/read/action", P(POL_HSM_SETTINGS_READ)},
        {MHSM "settings/write/action", P(POL_HSM_SETTINGS_WRITE)},
        {MHSM "securitydomain/download/action", P(POL_HSM_SD_DOWNLOAD)},
        {MHSM "securitydomain/download/read", P(POL_HSM_SD_DOWNLOAD_READ)},
        {MHSM "securitydomain/upload/read", P(POL_HSM_SD_UPLOAD_READ)},
        {MHSM "securitydomain/upload/action", P(POL_HSM_SD_UPLOAD)},
        {MHSM "securitydomain/transferkey/read", P(POL_HSM_SD_TRANSFER_KEY_READ)},
        /* no call of kvmock's needs these */
        {MHSM "keys/export/action", 0},
        {MHSM "keys/derive/action", 0},
        /* near misses, and Key Vault's own spelling of an action */
        {MHSM "keys/wrap", 0},
        {MHSM "keys/read", 0},
        {MHSM "keys/wrap/action/x", 0},
        {"Microsoft.KeyVault/managedHsms/keys/wrap/action", 0},
        {"Microsoft.KeyVault/vaults/keys/wrap/action", 0},
        {"Microsoft.KeyVault/vaults/keys/read", 0},
        {"", 0},
        /* any case; '*' anywhere */
        {"microsoft.keyvault/MANAGEDHSM/Keys/UnWrap/ACTION", P(POL_KEYS_UNWRAP)},
        {"*/wrap/*", P(POL_KEYS_WRAP)},
        {MHSM "roleAssignments/*",
         P(POL_HSM_ROLES_READ) | P(POL_HSM_ROLES_WRITE) | P(POL_HSM_ROLES_DELETE)},
        {MHSM "keys/deletedKeys/*",
         P(POL_HSM_DELETED_READ) | P(POL_KEYS_PURGE) | P(POL_KEYS_RECOVER)},
        {MHSM "keys/*", POL_PERMS_ALL | P(POL_HSM_DELETED_READ)},
        {MHSM "keys/*/action",
         (POL_PERMS_ALL & ~P(POL_KEYS_CREATE) & ~P(POL_KEYS_DELETE) & ~P(POL_KEYS_PURGE)) |
             P(POL_HSM_DELETED_READ)},
        {MHSM "*", HSM_ALL},
        {"*", HSM_ALL},
    };
    for (size_t i = 0; i < sizeof(each) / sizeof(each[0]); i++) {
        pol_perms got = pol_hsm_actions_perms(&each[i].action, 1);
        if (got != each[i].want) {
            fprintf(stderr, "pol_hsm_actions_perms(%s) = %#llx, want %#llx\n", each[i].action,
                    (unsigned long long)got, (unsigned long long)each[i].want);
            check_failures++;
        }
    }
    /* several at once give what each gives; none gives nothing; NULL entries are skipped */
    static const char *const three[] = {MHSM "keys/read/action", NULL, MHSM "rng/action",
                                        MHSM "keys/export/action"};
    CHECK(pol_hsm_actions_perms(three, 4) ==
          (P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_GETROTATIONPOLICY) | P(POL_HSM_RNG)));
    CHECK(pol_hsm_actions_perms(three, 0) == 0);
    /* Key Vault's table does not read Managed HSM's actions */
    static const char *const hsm_wrap[] = {MHSM "keys/wrap/action", MHSM "keys/*"};
    CHECK(pol_data_actions_perms(hsm_wrap, 2, NULL, 0) == 0);
}

static void upper(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)toupper((unsigned char)*s);
}

/* Managed HSM's eight local roles: names, GUIDs, what each grants, how they are parsed, and
 * that they are no Key Vault roles (nor the reverse). */
static void hsm_role_table(struct pol_ctx *c)
{
    const pol_perms read = P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_GETROTATIONPOLICY);
    const pol_perms roles_rwd =
        P(POL_HSM_ROLES_READ) | P(POL_HSM_ROLES_WRITE) | P(POL_HSM_ROLES_DELETE);
    const pol_perms defs = P(POL_HSM_ROLEDEFS_READ), roles_r = P(POL_HSM_ROLES_READ);
    const pol_perms defs_rwd = defs | P(POL_HSM_ROLEDEFS_WRITE) | P(POL_HSM_ROLEDEFS_DELETE);
    const pol_perms backup = P(POL_HSM_BACKUP_START) | P(POL_HSM_BACKUP_STATUS);
    const pol_perms admin_own =
        backup | P(POL_HSM_RESTORE_START) | P(POL_HSM_RESTORE_STATUS) | P(POL_HSM_SETTINGS_READ) |
        P(POL_HSM_SETTINGS_WRITE) | P(POL_HSM_SD_DOWNLOAD) | P(POL_HSM_SD_DOWNLOAD_READ) |
        P(POL_HSM_SD_UPLOAD_READ) | P(POL_HSM_SD_UPLOAD) | P(POL_HSM_SD_TRANSFER_KEY_READ);
    const struct {
        enum pol_role role;
        const char *name, *id;
        pol_perms want;
    } local[] = {
        {POL_ROLE_HSM_ADMINISTRATOR, "Managed HSM Administrator",
         "a290e904-7015-4bba-90c8-60543313cdb4", roles_rwd | defs_rwd | admin_own},
        {POL_ROLE_HSM_CRYPTO_OFFICER, "Managed HSM Crypto Officer",
         "515eb02d-2335-4d2d-92f2-b1cbdf9c3778",
         roles_rwd | defs_rwd | P(POL_HSM_DELETED_READ) | P(POL_KEYS_PURGE) | P(POL_KEYS_RECOVER)},
        {POL_ROLE_HSM_CRYPTO_USER, "Managed HSM Crypto User",
         "21dbd100-6940-42c2-9190-5d6cb909625b",
         (POL_PERMS_ALL & ~P(POL_KEYS_RECOVER) & ~P(POL_KEYS_PURGE)) | P(POL_HSM_RNG) | roles_r |
             defs},
        {POL_ROLE_HSM_POLICY_ADMINISTRATOR, "Managed HSM Policy Administrator",
         "4bd23610-cdcf-4971-bdee-bdc562cc28e4", roles_rwd | defs_rwd},
        {POL_ROLE_HSM_CRYPTO_AUDITOR, "Managed HSM Crypto Auditor",
         "2c18b078-7c48-4d3a-af88-5a3a1b3f82b3", roles_r | defs | read | P(POL_HSM_DELETED_READ)},
        {POL_ROLE_HSM_CRYPTO_SERVICE_RELEASE_USER, "Managed HSM Crypto Service Release User",
         "21dbd100-6940-42c2-9190-5d6cb909625c", P(POL_KEYS_RELEASE)},
        {POL_ROLE_HSM_CRYPTO_SERVICE_ENCRYPTION_USER, "Managed HSM Crypto Service Encryption User",
         "33413926-3206-4cdd-b39a-83574fe37a17", read | P(POL_KEYS_WRAP) | P(POL_KEYS_UNWRAP)},
        {POL_ROLE_HSM_BACKUP_USER, "Managed HSM Backup User",
         "7b127d3c-77bd-4e3e-bbe0-dbb8971fa7f8", P(POL_KEYS_BACKUP) | backup},
    };
    CHECK(sizeof(local) / sizeof(local[0]) == POL_ROLE_HSM_END - POL_ROLE_HSM_FIRST);
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
        enum pol_role r = local[i].role, got = POL_ROLE_READER;
        char text[160], def[POL_ID_MAX];
        CHECK(pol_role_is_hsm(r));
        CHECK_STR(pol_role_name(r), local[i].name);
        CHECK_STR(pol_role_id(r), local[i].id);
        if (pol_role_perms(r) != local[i].want) {
            fprintf(stderr, "pol_role_perms(%s) = %#llx, want %#llx\n", local[i].name,
                    (unsigned long long)pol_role_perms(r), (unsigned long long)local[i].want);
            check_failures++;
        }
        /* the role's own data actions give what it grants */
        const char *const *actions = pol_hsm_role_actions(r);
        size_t n = 0;
        while (actions[n] != NULL)
            n++;
        CHECK(n > 0 && pol_hsm_actions_perms(actions, n) == local[i].want);
        /* parsed by name (any case), by GUID (any case) and by the HSM's roleDefinitionId */
        for (int form = 0; form < 5; form++) {
            if (form == 4)
                snprintf(text, sizeof(text),
                         "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/%s",
                         local[i].id);
            else
                snprintf(text, sizeof(text), "%s", form < 2 ? local[i].name : local[i].id);
            if (form == 1 || form == 3)
                upper(text);
            got = POL_ROLE_READER;
            CHECK_ST(pol_hsm_role_parse(text, &got), KV_OK);
            CHECK(got == r);
        }
        /* ... and never as a Key Vault role, built-in or custom */
        CHECK_ST(pol_role_parse(local[i].name, &got), KV_ERR_BAD_PARAM);
        CHECK_ST(pol_role_parse(local[i].id, &got), KV_ERR_BAD_PARAM);
        CHECK_ST(pol_role_parse(text, &got), KV_ERR_BAD_PARAM);
        CHECK_ST(pol_role_resolve(c, local[i].name, &got, def), KV_ERR_BAD_PARAM);
        CHECK_ST(pol_role_resolve(c, local[i].id, &got, def), KV_ERR_BAD_PARAM);
    }
    /* the Administrator has no key permission at all */
    CHECK((pol_role_perms(POL_ROLE_HSM_ADMINISTRATOR) & POL_PERMS_ALL) == 0);
    /* Key Vault's roles are not local ones, by name, GUID or path */
    enum pol_role got = POL_ROLE_READER;
    for (int r = 0; r < POL_ROLE_COUNT; r++) {
        char text[160];
        CHECK(!pol_role_is_hsm((enum pol_role)r) &&
              pol_hsm_role_actions((enum pol_role)r)[0] == NULL);
        CHECK_ST(pol_hsm_role_parse(pol_role_name((enum pol_role)r), &got), KV_ERR_BAD_PARAM);
        CHECK_ST(pol_hsm_role_parse(pol_role_id((enum pol_role)r), &got), KV_ERR_BAD_PARAM);
        snprintf(text, sizeof(text),
                 "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/%s",
                 pol_role_id((enum pol_role)r));
        CHECK_ST(pol_hsm_role_parse(text, &got), KV_ERR_BAD_PARAM);
    }
    CHECK(got == POL_ROLE_READER); /* left alone on a refusal */
    CHECK(!pol_role_is_hsm(POL_ROLE_CUSTOM) && !pol_role_is_hsm(POL_ROLE_HSM_END));
    static const char *const not_roles[] = {
        "",
        "Managed HSM",
        "Managed HSM Crypto User ",
        "Managed HSM ARM User",
        "770fd66c-6266-4643-9d4e-b616870898d5",
        "Microsoft.KeyVault/providers/Microsoft.Authorization/roleDefinitions/",
        "21dbd100-6940-42c2-9190-5d6cb909625"};
    for (size_t i = 0; i < sizeof(not_roles) / sizeof(not_roles[0]); i++)
        CHECK_ST(pol_hsm_role_parse(not_roles[i], &got), KV_ERR_BAD_PARAM);
}

/* A local assignment of HSM @p hsm. @p scope is "/", "/keys" or a key's name. */
static struct pol_role_assignment local_ra(const char *id, const char *principal,
                                           enum pol_role role, const char *hsm, const char *scope)
{
    struct pol_role_assignment r = {.role = role, .hsm = 1};
    snprintf(r.id, sizeof(r.id), "%s", id);
    snprintf(r.principal_id, sizeof(r.principal_id), "%s", principal);
    snprintf(r.vault, sizeof(r.vault), "%s", hsm);
    if (strcmp(scope, "/keys") == 0)
        r.hsm_keys = 1;
    else if (strcmp(scope, "/") != 0)
        snprintf(r.key, sizeof(r.key), "%s", scope);
    return r;
}

/* Whether the ids of @p list (@p n of them) are exactly those of @p want (NULL-ended), in
 * any order. */
static int ids_are(const struct pol_role_assignment *list, size_t n, const char *const *want)
{
    size_t k = 0;
    for (; want[k] != NULL; k++) {
        int found = 0;
        for (size_t i = 0; i < n; i++)
            found |= strcmp(list[i].id, want[k]) == 0;
        if (!found)
            return 0;
    }
    return k == n;
}

/* What @p who may do on key @p key of @p hsm: exactly @p perms, of every permission. */
static void grants_exactly(struct pol_ctx *c, struct pol_claims w, struct ks_vault hsm,
                           const char *key, pol_perms perms)
{
    for (int p = 0; p < POL_PERM_HSM_END; p++)
        expect(c, w, hsm, key, (enum pol_perm)p, perms & P(p) ? KV_OK : KV_ERR_RBAC_DENIED);
}

/* Local role assignments in Managed HSMs: evaluated alone there (never access policies,
 * never Resource Manager's), reaching nothing else; refused with a role of the other kind;
 * listed per HSM; persisted with their flags. */
static void hsm_assignments(struct pol_ctx *c, struct ks_env *ks)
{
    /* hsm1 made as the configuration makes one, with its administrator, and with rbac 0;
     * hsm2 by the keystore alone */
    struct ks_vault h1 = vault("hsm1", 0), h2 = vault("hsm2", 1), got1, got2;
    h1.hsm = h2.hsm = h1.premium = h2.premium = 1;
    struct pol_role_assignment admin =
        local_ra("la-admin", "hsm-admin", POL_ROLE_HSM_ADMINISTRATOR, "hsm1", "/");
    struct pol_acl_change seed = {.vault = "hsm1", .roles = &admin, .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &h1, KS_VAULT_CREATE, &seed), KV_OK);
    CHECK_ST(ks_vault_put(ks, &h2), KV_OK);
    CHECK_ST(ks_vault_get(ks, "hsm1", &got1), KV_OK);
    CHECK_ST(ks_vault_get(ks, "hsm2", &got2), KV_OK);
    CHECK(got1.hsm == 1 && got1.rbac == 0 && got2.hsm == 1);
    /* a vault of an HSM's name, and the reverse, are refused with what they carry */
    struct ks_vault as_vault = vault("hsm1", 1), as_hsm = vault("cmk2", 1);
    as_hsm.hsm = 1;
    struct pol_role_assignment rm = {
        .id = "ra-hsm-v", .principal_id = "rm-user", .role = POL_ROLE_READER, .vault = "hsm1"};
    struct pol_acl_change with_rm = {.vault = "hsm1", .roles = &rm, .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &as_vault, KS_VAULT_PUT, &with_rm), KV_ERR_ARM_VAULT_EXISTS);
    CHECK_ST(pol_vault_put(c, &as_hsm, KS_VAULT_PUT, NULL), KV_ERR_ARM_VAULT_EXISTS);
    struct pol_role_assignment none;
    CHECK(!pol_role_get(c, "ra-hsm-v", &none));

    struct pol_role_assignment local[] = {
        local_ra("la-user", "hsm-user", POL_ROLE_HSM_CRYPTO_USER, "hsm1", "/"),
        local_ra("la-keys", "hsm-officer", POL_ROLE_HSM_CRYPTO_OFFICER, "hsm1", "/keys"),
        local_ra("la-key", "one-key", POL_ROLE_HSM_CRYPTO_SERVICE_ENCRYPTION_USER, "hsm1", "k1"),
        local_ra("la-audit", "hsm-auditor", POL_ROLE_HSM_CRYPTO_AUDITOR, "hsm1", "/keys"),
        local_ra("la-other", "other-user", POL_ROLE_HSM_CRYPTO_USER, "hsm2", "/"),
    };
    for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++)
        CHECK_ST(pol_role_put(c, &local[i]), KV_OK);
    /* Resource Manager's assignments at the subscription's and kvmock's group's scopes, which
     * reach every vault (hsm1 has no group: it would be kvmock's) */
    struct pol_role_assignment sub = {
        .id = "ra-hsm-sub", .principal_id = "rm-admin", .role = POL_ROLE_ADMINISTRATOR};
    struct pol_role_assignment grp = {.id = "ra-hsm-grp",
                                      .principal_id = "rm-admin",
                                      .role = POL_ROLE_CRYPTO_USER,
                                      .group = POL_RESOURCE_GROUP};
    CHECK_ST(pol_role_put(c, &sub), KV_OK);
    CHECK_ST(pol_role_put(c, &grp), KV_OK);

    const pol_perms user = pol_role_perms(POL_ROLE_HSM_CRYPTO_USER);
    const pol_perms officer = pol_role_perms(POL_ROLE_HSM_CRYPTO_OFFICER);
    const pol_perms auditor = pol_role_perms(POL_ROLE_HSM_CRYPTO_AUDITOR);
    const pol_perms admin_perms = pol_role_perms(POL_ROLE_HSM_ADMINISTRATOR);
    const pol_perms enc = P(POL_KEYS_GET) | P(POL_KEYS_LIST) | P(POL_KEYS_GETROTATIONPOLICY) |
                          P(POL_KEYS_WRAP) | P(POL_KEYS_UNWRAP);
    struct pol_claims u = who("t1", "HSM-USER", "x"), o = who("t1", "hsm-officer", "x"),
                      a = who("t1", "hsm-admin", "x"), k = who("t1", "one-key", "x"),
                      au = who("t1", "hsm-auditor", "x"), other = who("t1", "other-user", "x"),
                      rm_admin = who("t1", "rm-admin", "x");
    /* "/" and "/keys" reach every key, and the HSM itself (no key) */
    grants_exactly(c, u, got1, "k1", user);
    grants_exactly(c, u, got1, NULL, user);
    grants_exactly(c, o, got1, "k2", officer);
    grants_exactly(c, o, got1, NULL, officer);
    grants_exactly(c, au, got1, "k2", auditor);
    grants_exactly(c, a, got1, "k1", admin_perms);
    grants_exactly(c, a, got1, NULL, admin_perms);
    /* a key's scope reaches that key (in any case) and no other, nor the HSM */
    grants_exactly(c, k, got1, "k1", enc);
    grants_exactly(c, k, got1, "K1", enc);
    grants_exactly(c, k, got1, "k2", 0);
    grants_exactly(c, k, got1, NULL, 0);
    /* another HSM's assignment does not reach this one, nor this one's that one */
    grants_exactly(c, other, got1, "k1", 0);
    grants_exactly(c, other, got2, "k1", user);
    grants_exactly(c, u, got2, "k1", 0);
    /* Resource Manager's assignments reach no HSM, though they reach a vault */
    grants_exactly(c, rm_admin, got1, "k1", 0);
    grants_exactly(c, rm_admin, got2, NULL, 0);
    struct ks_vault cmk = vault("cmk", 1);
    expect(c, rm_admin, cmk, "k1", POL_KEYS_PURGE, KV_OK);
    /* a local assignment does not reach a vault, even one the HSM's name were a vault's */
    struct ks_vault named_like = got1;
    named_like.hsm = 0;
    named_like.rbac = 1;
    expect(c, u, named_like, "k1", POL_KEYS_GET, KV_ERR_RBAC_DENIED);
    expect(c, o, named_like, "k1", POL_KEYS_PURGE, KV_ERR_RBAC_DENIED);
    expect(c, rm_admin, named_like, "k1", POL_KEYS_PURGE, KV_OK);
    /* another tenant's token: not even asked */
    expect(c, who("t2", "hsm-user", "x"), got1, "k1", POL_KEYS_GET, KV_ERR_UNAUTHORIZED);
    /* an access policy never grants in an HSM, though hsm1's record has rbac 0 */
    struct pol_access_policy all = ap("hsm1", "policy-user", POL_PERMS_ALL);
    CHECK_ST(pol_policy_put(c, &all), KV_OK);
    struct pol_claims pu = who("t1", "policy-user", "x");
    grants_exactly(c, pu, got1, "k1", 0);
    expect(c, pu, named_like, "k1", POL_KEYS_GET, KV_ERR_RBAC_DENIED);
    named_like.rbac = 0; /* the entry itself grants, where access policies count */
    expect(c, pu, named_like, "k1", POL_KEYS_GET, KV_OK);
    CHECK_ST(remove_policy(c, "hsm1", "t1", "policy-user"), KV_OK);

    /* an assignment of the wrong kind is refused, and nothing is stored */
    struct pol_role_assignment bad[] = {
        local_ra("la-bad1", "x", POL_ROLE_CRYPTO_USER, "hsm1", "/"), /* a Key Vault role */
        local_ra("la-bad2", "x", POL_ROLE_ADMINISTRATOR, "hsm1", "/keys"),
        local_ra("la-bad3", "x", POL_ROLE_CUSTOM, "hsm1", "/"),
        local_ra("la-bad4", "x", POL_ROLE_HSM_CRYPTO_USER, "", "/"), /* no HSM */
        local_ra("la-bad5", "x", POL_ROLE_HSM_CRYPTO_USER, "hsm1", "bad_key"),
        local_ra("la-bad6", "", POL_ROLE_HSM_CRYPTO_USER, "hsm1", "/"),
    };
    snprintf(bad[2].role_def, sizeof(bad[2].role_def), "6f1c0e6a-0000-4000-8000-0000000000c1");
    struct pol_role_assignment rm_bad[] = {
        /* Resource Manager's with a local role, at the HSM's scope or a vault's */
        {.id = "ra-bad1", .principal_id = "x", .role = POL_ROLE_HSM_CRYPTO_USER, .vault = "hsm1"},
        {.id = "ra-bad2", .principal_id = "x", .role = POL_ROLE_HSM_ADMINISTRATOR, .vault = "cmk"},
        {.id = "ra-bad3", .principal_id = "x", .role = POL_ROLE_HSM_BACKUP_USER},
        /* ... or a local assignment's "/keys" flag */
        {.id = "ra-bad4",
         .principal_id = "x",
         .role = POL_ROLE_READER,
         .vault = "cmk",
         .hsm_keys = 1},
    };
    size_t n_before = pol_role_all(c, NULL, 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_ST(pol_role_put(c, &bad[i]), KV_ERR_BAD_PARAM);
        CHECK(!pol_role_get(c, bad[i].id, &none));
    }
    for (size_t i = 0; i < sizeof(rm_bad) / sizeof(rm_bad[0]); i++) {
        CHECK_ST(pol_role_put(c, &rm_bad[i]), KV_ERR_BAD_PARAM);
        CHECK(!pol_role_get(c, rm_bad[i].id, &none));
    }
    struct pol_role_assignment nowhere =
        local_ra("la-nowhere", "x", POL_ROLE_HSM_CRYPTO_USER, "nohsm", "/");
    CHECK_ST(pol_role_put(c, &nowhere), KV_ERR_VAULT_NOT_FOUND);
    /* one principal, role and scope make one assignment here too */
    struct pol_role_assignment twin = local[0];
    snprintf(twin.id, sizeof(twin.id), "la-twin");
    snprintf(twin.principal_id, sizeof(twin.principal_id), "Hsm-User");
    CHECK_ST(pol_role_put(c, &twin), KV_ERR_ARM_ROLE_EXISTS);
    CHECK(pol_role_all(c, NULL, 0) == n_before);
    /* and an assignment keeps its principal, role and scope */
    struct pol_role_assignment moved = local[0];
    moved.role = POL_ROLE_HSM_CRYPTO_AUDITOR;
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    moved = local[0];
    snprintf(moved.key, sizeof(moved.key), "k1");
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    moved = local[0];
    snprintf(moved.vault, sizeof(moved.vault), "hsm2");
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    /* "/" and "/keys" reach alike but are two scopes: the name keeps its own, and the same
     * principal and role may hold both */
    moved = local[0];
    moved.hsm_keys = 1;
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    snprintf(moved.id, sizeof(moved.id), "la-user-keys");
    CHECK_ST(pol_role_put(c, &moved), KV_OK);
    CHECK_ST(pol_role_remove(c, "la-user-keys"), KV_OK);
    /* the scope's record must be of the assignment's kind: a local assignment at a vault,
     * a Resource Manager one at an HSM, or an HSM written with a vault's, is refused */
    struct ks_vault cmk_rec; /* a vault that exists: refused for its kind */
    CHECK_ST(ks_vault_get(ks, "cmk", &cmk_rec), KV_OK);
    struct pol_role_assignment at_vault = local[0];
    snprintf(at_vault.id, sizeof(at_vault.id), "la-at-vault");
    snprintf(at_vault.vault, sizeof(at_vault.vault), "cmk");
    CHECK_ST(pol_role_put(c, &at_vault), KV_ERR_VAULT_NOT_FOUND);
    struct pol_role_assignment at_hsm = {
        .id = "ra-at-hsm", .principal_id = "x", .role = POL_ROLE_READER, .vault = "hsm1"};
    CHECK_ST(pol_role_put(c, &at_hsm), KV_ERR_VAULT_NOT_FOUND);
    struct pol_acl_change mixed = {.vault = "hsm1", .roles = &at_hsm, .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &got1, KS_VAULT_PUT, &mixed), KV_ERR_BAD_PARAM);
    CHECK(!pol_role_get(c, "la-at-vault", &none) && !pol_role_get(c, "ra-at-hsm", &none));
    CHECK_ST(pol_role_put(c, &local[0]), KV_OK); /* the same, put again */
    struct pol_role_assignment back;
    CHECK(pol_role_get(c, "la-user", &back) && back.hsm == 1 && back.hsm_keys == 0 &&
          back.role == POL_ROLE_HSM_CRYPTO_USER && back.key[0] == '\0' &&
          strcmp(back.vault, "hsm1") == 0);

    /* the list of an HSM holds its local assignments alone; a vault's none of them */
    struct pol_role_assignment list[32];
    size_t n = pol_role_list(c, &got1, list, 32);
    CHECK(n <= 32 && ids_are(list, n,
                             (const char *const[]){"la-admin", "la-user", "la-keys", "la-key",
                                                   "la-audit", NULL}));
    n = pol_role_list(c, &got2, list, 32);
    CHECK(n <= 32 && ids_are(list, n, (const char *const[]){"la-other", NULL}));
    n = pol_role_list(c, &cmk, list, 32);
    for (size_t i = 0; i < n && i < 32; i++)
        CHECK(list[i].hsm == 0 && strncmp(list[i].id, "la-", 3) != 0);
    int saw_sub = 0;
    for (size_t i = 0; i < n && i < 32; i++)
        saw_sub |= strcmp(list[i].id, "ra-hsm-sub") == 0;
    CHECK(saw_sub);

    /* the hsm and hsmKeys flags survive a restart */
    struct pol_ctx *fresh = NULL;
    CHECK_ST(pol_new(dir, "t1", &fresh), KV_OK);
    if (fresh != NULL) {
        CHECK_ST(pol_attach(fresh, ks), KV_OK);
        for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
            CHECK(pol_role_get(fresh, local[i].id, &back));
            CHECK(back.hsm == 1 && back.hsm_keys == local[i].hsm_keys &&
                  back.role == local[i].role && strcasecmp(back.vault, local[i].vault) == 0 &&
                  strcmp(back.key, local[i].key) == 0);
        }
        CHECK(pol_role_get(fresh, "la-admin", &back) && back.hsm == 1 && back.hsm_keys == 0 &&
              back.role == POL_ROLE_HSM_ADMINISTRATOR);
        CHECK(pol_role_get(fresh, "ra-hsm-sub", &back) && back.hsm == 0 && back.hsm_keys == 0);
        grants_exactly(fresh, o, got1, "k2", officer);
        grants_exactly(fresh, k, got1, "k1", enc);
        grants_exactly(fresh, k, got1, "k2", 0);
        grants_exactly(fresh, rm_admin, got1, "k1", 0);
        n = pol_role_list(fresh, &got1, list, 32);
        CHECK(n == 5);
        pol_free(fresh);
    }

    /* revoked at once */
    CHECK_ST(pol_role_remove(c, "la-keys"), KV_OK);
    grants_exactly(c, o, got1, "k2", 0);
    CHECK_ST(pol_role_remove(c, "ra-hsm-sub"), KV_OK);
    CHECK_ST(pol_role_remove(c, "ra-hsm-grp"), KV_OK);
}
#undef MHSM
#undef HSM_ALL

/* A full restore's write, standing in for the keystore's: the ops alone, or a failure. */
struct access_write {
    struct ks_env *ks;
    enum kv_status fail; /* KV_OK: write */
    size_t n;            /* out: the ops it was given */
};

static enum kv_status access_write_fn(const struct ks_record_op *ops, size_t n, void *arg)
{
    struct access_write *w = arg;
    w->n = n;
    return w->fail != KV_OK ? w->fail : ks_record_apply(w->ks, ops, n);
}

/* Every local assignment of @p hsm as "principal role scope" lines, sorted: what it holds. */
static void hsm_holdings(struct pol_ctx *c, const char *hsm, char *out, size_t cap)
{
    struct ks_vault v = vault(hsm, 0);
    v.hsm = 1;
    struct pol_role_assignment list[16];
    size_t n = pol_role_list(c, &v, list, 16), len = 0;
    char lines[16][200];
    for (size_t i = 0; i < n && i < 16; i++)
        snprintf(lines[i], sizeof(lines[i]), "%s %s %s%s|", list[i].principal_id,
                 pol_assignment_role_id(&list[i]), list[i].hsm_keys ? "/keys" : "/", list[i].key);
    qsort(lines, n < 16 ? n : 16, sizeof(lines[0]), (int (*)(const void *, const void *))strcmp);
    out[0] = '\0';
    for (size_t i = 0; i < n && i < 16; i++)
        len += (size_t)snprintf(out + len, len < cap ? cap - len : 0, "%s", lines[i]);
}

/* Managed HSM's data action that the tests' custom roles grant */
static const char *const hsm_wrap[] = {"Microsoft.KeyVault/managedHsm/keys/wrap/action"};

/* Put custom role @p def (@p id, @p name) of Managed HSM @p hsm, which grants keys/wrap; and
 * return assignment @p ra_id of it to @p principal at the HSM's "/", not yet made. @p doc
 * is the role's text, which @p def borrows. */
static struct pol_role_assignment hsm_wrap_role(struct pol_ctx *c, struct pol_role_def *def,
                                                const char *id, const char *name, const char *hsm,
                                                const char *doc, const char *ra_id,
                                                const char *principal)
{
    *def = (struct pol_role_def){.doc = (char *)doc};
    snprintf(def->id, sizeof(def->id), "%s", id);
    snprintf(def->name, sizeof(def->name), "%s", name);
    snprintf(def->hsm, sizeof(def->hsm), "%s", hsm);
    CHECK_ST(pol_role_def_put(c, def, hsm_wrap, 1, NULL, 0, NULL), KV_OK);
    struct pol_role_assignment ra = local_ra(ra_id, principal, POL_ROLE_CUSTOM, hsm, "/");
    snprintf(ra.role_def, sizeof(ra.role_def), "%s", def->id);
    return ra;
}

/* A Managed HSM's local assignments and custom roles in its full backups: exported as kept,
 * restored exactly (what came since goes), into the same HSM or another (where ids another
 * scope holds are made anew, and assignments follow their role), all or nothing. */
static void hsm_access_backup(struct pol_ctx *c, struct ks_env *ks)
{
    struct ks_vault b1 = vault("bk1", 0), b2 = vault("bk2", 0);
    b1.hsm = b2.hsm = b1.premium = b2.premium = 1;
    CHECK_ST(ks_vault_put(ks, &b1), KV_OK);
    CHECK_ST(ks_vault_put(ks, &b2), KV_OK);
    struct pol_role_def def;
    struct pol_role_assignment custom = hsm_wrap_role(
        c, &def, "0b0b0b0b-0000-4000-8000-0000000000d1", "wrapper", "bk1",
        "{\"name\":\"0b0b0b0b-0000-4000-8000-0000000000d1\"}", "bk-cust", "bk-wrapper");
    struct pol_role_assignment ras[] = {
        local_ra("bk-admin", "bk-admin", POL_ROLE_HSM_ADMINISTRATOR, "bk1", "/"),
        local_ra("bk-user", "bk-user", POL_ROLE_HSM_CRYPTO_USER, "bk1", "/keys"),
        local_ra("bk-key", "bk-one", POL_ROLE_HSM_CRYPTO_USER, "bk1", "k1"),
        local_ra("bk-other", "bk-other", POL_ROLE_HSM_CRYPTO_USER, "bk2", "/"),
        custom,
    };
    for (size_t i = 0; i < sizeof(ras) / sizeof(ras[0]); i++)
        CHECK_ST(pol_role_put(c, &ras[i]), KV_OK);
    char *text = NULL, before[1024], after[1024], other[1024];
    CHECK_ST(pol_hsm_access_export(c, "BK1", &text), KV_OK);
    CHECK(text != NULL && strstr(text, "bk-user") != NULL && strstr(text, def.id) != NULL &&
          strstr(text, "bk-other") == NULL);
    hsm_holdings(c, "bk1", before, sizeof(before));
    hsm_holdings(c, "bk2", other, sizeof(other));
    const struct pol_claims wrapper = who("t1", "bk-wrapper", "x"),
                            user = who("t1", "bk-user", "x");
    const pol_perms user_perms = pol_role_perms(POL_ROLE_HSM_CRYPTO_USER);

    /* what comes since: one goes, one comes, the custom role goes */
    CHECK_ST(pol_role_remove(c, "bk-user"), KV_OK);
    struct pol_role_assignment late =
        local_ra("bk-late", "bk-late", POL_ROLE_HSM_CRYPTO_USER, "bk1", "/");
    CHECK_ST(pol_role_put(c, &late), KV_OK);
    CHECK_ST(pol_role_remove(c, "bk-cust"), KV_OK);
    CHECK_ST(pol_role_def_delete(c, def.id, NULL), KV_OK);
    hsm_holdings(c, "bk1", after, sizeof(after));
    CHECK(strcmp(after, before) != 0);

    /* a write that fails, and texts that do not read: nothing changes */
    struct access_write w = {ks, KV_ERR_STORE, 0};
    CHECK_ST(pol_hsm_access_restore(c, "bk1", text, access_write_fn, &w), KV_ERR_STORE);
    CHECK(w.n > 0);
    static const char *const bad[] = {
        "{",
        "[]",
        "{\"roleAssignments\":[]}",
        "{\"roleAssignments\":[1],\"roleDefinitions\":[]}",
        "{\"roleAssignments\":[{\"id\":\"x\"}],\"roleDefinitions\":[]}",
        "{\"roleAssignments\":[],\"roleDefinitions\":[{\"id\":\"nope\"}]}"};
    w.fail = KV_OK;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_ST(pol_hsm_access_restore(c, "bk1", bad[i], access_write_fn, &w), KV_ERR_BAD_BACKUP);
    char now[1024];
    hsm_holdings(c, "bk1", now, sizeof(now));
    CHECK_STR(now, after);
    /* a backup that kept none: the write alone, the HSM's as they are */
    w.n = 99;
    CHECK_ST(pol_hsm_access_restore(c, "bk1", NULL, access_write_fn, &w), KV_OK);
    CHECK(w.n == 0);
    hsm_holdings(c, "bk1", now, sizeof(now));
    CHECK_STR(now, after);

    /* restored into the same HSM: exactly as backed up, in effect at once */
    CHECK_ST(pol_hsm_access_restore(c, "bk1", text, access_write_fn, &w), KV_OK);
    hsm_holdings(c, "bk1", now, sizeof(now));
    CHECK_STR(now, before);
    struct pol_role_assignment got;
    CHECK(pol_role_get(c, "bk-user", &got) && !pol_role_get(c, "bk-late", &got));
    expect(c, wrapper, b1, "k9", POL_KEYS_WRAP, KV_OK);
    grants_exactly(c, user, b1, "k9", user_perms);

    /* into another HSM, while bk1 keeps its own: new ids, the custom role a new GUID that
     * its assignment follows; bk2's own assignment goes */
    CHECK_ST(pol_hsm_access_restore(c, "bk2", text, access_write_fn, &w), KV_OK);
    char copy[1024];
    hsm_holdings(c, "bk2", copy, sizeof(copy));
    hsm_holdings(c, "bk1", now, sizeof(now));
    CHECK_STR(now, before);
    CHECK(strstr(copy, "bk-other") == NULL && strstr(copy, "bk-admin ") != NULL &&
          strstr(copy, "bk-user ") != NULL && strstr(copy, def.id) == NULL);
    CHECK(pol_role_get(c, "bk-user", &got) && strcmp(got.vault, "bk1") == 0);
    expect(c, wrapper, b2, "k9", POL_KEYS_WRAP, KV_OK);
    expect(c, wrapper, b2, "k9", POL_KEYS_UNWRAP, KV_ERR_RBAC_DENIED);
    grants_exactly(c, user, b2, "k9", user_perms);
    grants_exactly(c, who("t1", "bk-other", "x"), b2, "k9", 0);
    CHECK(strcmp(other, copy) != 0);
    /* and it all survives a reload from the store */
    struct pol_ctx *again = NULL;
    CHECK_ST(pol_new(dir, "t1", &again), KV_OK);
    CHECK_ST(pol_attach(again, ks), KV_OK);
    hsm_holdings(again, "bk2", now, sizeof(now));
    CHECK_STR(now, copy);
    expect(again, wrapper, b2, "k9", POL_KEYS_WRAP, KV_OK);
    pol_free(again);
    cJSON_free(text);
}

/* Whether custom role definition @p id is kept, in @p c and in a reload from the store. */
static int def_kept(struct pol_ctx *c, struct ks_env *ks, const char *id)
{
    struct pol_role_def d = {0}, r = {0};
    int kept = pol_role_def_get(c, id, &d) == KV_OK;
    struct pol_ctx *fresh = NULL;
    CHECK_ST(pol_new(dir, "t1", &fresh), KV_OK);
    CHECK_ST(fresh ? pol_attach(fresh, ks) : KV_ERR_NOMEM, KV_OK);
    int reloaded = fresh != NULL && pol_role_def_get(fresh, id, &r) == KV_OK;
    CHECK(kept == reloaded);
    pol_role_def_clear(&d);
    pol_role_def_clear(&r);
    pol_free(fresh);
    return kept;
}

/* A Managed HSM through Resource Manager's life: made with its administrators and nothing
 * of a namesake's; soft-deleted, it keeps its local assignments and custom roles, which a
 * recovery brings back in effect; purged (as an HSM, not as a vault), they go with it. */
static void hsm_lifecycle(struct pol_ctx *c, struct ks_env *ks)
{
    struct ks_vault h = vault("lc1", 1);
    h.hsm = h.premium = 1;
    struct pol_role_assignment admin =
        local_ra("lc-admin", "lc-admin", POL_ROLE_HSM_ADMINISTRATOR, "lc1", "/");
    struct pol_acl_change made = {.vault = "lc1",
                                  .clear_policies = 1,
                                  .clear_roles = 1,
                                  .clear_defs = 1,
                                  .roles = &admin,
                                  .n_roles = 1};
    CHECK_ST(pol_vault_put(c, &h, KS_VAULT_CREATE, &made), KV_OK);
    struct pol_role_def def;
    struct pol_role_assignment custom = hsm_wrap_role(
        c, &def, "0c0c0c0c-0000-4000-8000-0000000000e1", "lc-wrapper", "lc1",
        "{\"name\":\"0c0c0c0c-0000-4000-8000-0000000000e1\"}", "lc-cust", "lc-wrapper");
    CHECK_ST(pol_role_put(c, &custom), KV_OK);
    const struct pol_claims wrapper = who("t1", "lc-wrapper", "x");
    expect(c, wrapper, h, "k1", POL_KEYS_WRAP, KV_OK);
    char before[1024], now[1024];
    hsm_holdings(c, "lc1", before, sizeof(before));

    /* soft-deleted: its own access control stays for a recovery */
    struct ks_deleted_vault d;
    CHECK_ST(pol_vault_delete(c, "lc1", "/hsm/lc1", &d), KV_OK);
    CHECK(d.deleted_date != 0 && d.vault.hsm);
    hsm_holdings(c, "lc1", now, sizeof(now));
    CHECK_STR(now, before);
    CHECK(def_kept(c, ks, def.id));
    same_as_reloaded(c, ks);
    struct ks_vault back;
    CHECK_ST(ks_deleted_vault_recover(ks, "lc1", 0, &back), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_deleted_vault_recover(ks, "lc1", 1, &back), KV_OK);
    expect(c, wrapper, back, "k1", POL_KEYS_WRAP, KV_OK);

    /* purged as an HSM: everything of its goes, in the purge's transaction */
    CHECK_ST(pol_vault_delete(c, "lc1", "/hsm/lc1", &d), KV_OK);
    CHECK_ST(pol_deleted_vault_purge(c, "lc1", 0), KV_ERR_VAULT_NOT_FOUND);
    hsm_holdings(c, "lc1", now, sizeof(now));
    CHECK_STR(now, before);
    CHECK_ST(pol_deleted_vault_purge(c, "lc1", 1), KV_OK);
    struct pol_role_assignment got;
    CHECK(!pol_role_get(c, "lc-admin", &got) && !pol_role_get(c, "lc-cust", &got));
    CHECK(!def_kept(c, ks, def.id));
    same_as_reloaded(c, ks);

    /* one purged by the keystore alone (the sweep, at its purge date) leaves its access
     * control behind: a new HSM of the name starts without it, and may not assign a custom
     * role the same change takes away */
    CHECK_ST(pol_vault_put(c, &h, KS_VAULT_CREATE, &made), KV_OK);
    CHECK_ST(pol_role_def_put(c, &def, hsm_wrap, 1, NULL, 0, NULL), KV_OK);
    CHECK_ST(pol_role_put(c, &custom), KV_OK);
    CHECK_ST(pol_vault_delete(c, "lc1", "/hsm/lc1", &d), KV_OK);
    CHECK_ST(ks_deleted_vault_purge(ks, "lc1", 1, NULL, 0, NULL), KV_OK);
    CHECK(pol_role_get(c, "lc-cust", &got) && def_kept(c, ks, def.id));
    struct pol_role_assignment both[] = {admin, custom};
    struct pol_acl_change reuse = made;
    reuse.roles = both;
    reuse.n_roles = 2;
    CHECK_ST(pol_vault_put(c, &h, KS_VAULT_CREATE, &reuse), KV_ERR_BAD_PARAM);
    CHECK(pol_role_get(c, "lc-cust", &got) && def_kept(c, ks, def.id));
    struct pol_role_assignment fresh_admin =
        local_ra("lc-admin2", "lc-admin2", POL_ROLE_HSM_ADMINISTRATOR, "lc1", "/");
    made.roles = &fresh_admin;
    CHECK_ST(pol_vault_put(c, &h, KS_VAULT_CREATE, &made), KV_OK);
    hsm_holdings(c, "lc1", now, sizeof(now));
    CHECK(strstr(now, "lc-admin2 ") != NULL && strstr(now, "lc-wrapper") == NULL &&
          strstr(now, "lc-admin ") == NULL);
    CHECK(!def_kept(c, ks, def.id));
    expect(c, wrapper, h, "k1", POL_KEYS_WRAP, KV_ERR_RBAC_DENIED);
    same_as_reloaded(c, ks);

    /* pol_sweep() removes what the keystore's purge left, once nothing holds the name */
    CHECK_ST(pol_role_def_put(c, &def, hsm_wrap, 1, NULL, 0, NULL), KV_OK);
    CHECK_ST(pol_role_put(c, &custom), KV_OK);
    CHECK_ST(pol_vault_delete(c, "lc1", "/hsm/lc1", &d), KV_OK);
    size_t cleared = 9;
    CHECK_ST(pol_sweep(c, &cleared), KV_OK);
    CHECK(cleared == 0); /* deleted, not gone: kept for a recovery */
    CHECK(pol_role_get(c, "lc-admin2", &got) && pol_role_get(c, "lc-cust", &got));
    CHECK_ST(ks_deleted_vault_purge(ks, "lc1", 1, NULL, 0, NULL), KV_OK);
    CHECK_ST(pol_sweep(c, &cleared), KV_OK);
    CHECK(cleared == 1);
    CHECK(!pol_role_get(c, "lc-admin2", &got) && !pol_role_get(c, "lc-cust", &got));
    CHECK(!def_kept(c, ks, def.id));
    hsm_holdings(c, "lc1", now, sizeof(now));
    CHECK_STR(now, "");
    same_as_reloaded(c, ks);
    /* a vault's access policies: the keystore's purge took their records, the sweep their
     * copies in memory */
    struct ks_vault plain = vault("lc3", 0);
    struct pol_access_policy ap = {.keys = POL_PERMS_ALL};
    snprintf(ap.vault, sizeof(ap.vault), "lc3");
    snprintf(ap.tenant_id, sizeof(ap.tenant_id), "t1");
    snprintf(ap.object_id, sizeof(ap.object_id), "lc3-owner");
    struct pol_acl_change owned = {.vault = "lc3", .policies = &ap, .n_policies = 1};
    CHECK_ST(pol_vault_put(c, &plain, KS_VAULT_CREATE, &owned), KV_OK);
    CHECK_ST(pol_vault_delete(c, "lc3", "/v/lc3", &d), KV_OK);
    CHECK_ST(ks_deleted_vault_purge(ks, "lc3", 0, NULL, 0, NULL), KV_OK);
    struct pol_access_policy listed[4];
    CHECK(pol_policy_list(c, "lc3", listed, 4) == 1);
    CHECK_ST(pol_sweep(c, &cleared), KV_OK);
    CHECK(cleared == 1 && pol_policy_list(c, "lc3", listed, 4) == 0);
    /* names still held keep everything */
    CHECK_ST(pol_sweep(c, &cleared), KV_OK);
    CHECK(cleared == 0);
    same_as_reloaded(c, ks);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    CHECK(mkdtemp(dir) != NULL);
    struct ks_env *ks = NULL;
    struct pol_ctx *c = NULL;
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &ks), KV_OK);
    CHECK_ST(pol_new(dir, "t1", &c), KV_OK);
    if (ks == NULL || c == NULL)
        CHECK_DONE();
    CHECK_ST(pol_attach(c, ks), KV_OK);
    network(c);
    lists(c, ks);
    custom_roles(c, ks);

    /* permission names */
    pol_perms bits = 0;
    CHECK_ST(pol_perm_parse("wrapKey", &bits), KV_OK);
    CHECK(bits == (1u << POL_KEYS_WRAP));
    CHECK_ST(pol_perm_parse("UNWRAPKEY", &bits), KV_OK);
    CHECK_ST(pol_perm_parse("all", &bits), KV_OK);
    CHECK(bits == POL_PERMS_ALL);
    CHECK_ST(pol_perm_parse("fly", &bits), KV_ERR_BAD_PARAM);

    /* which permissions change what a vault holds (their records commit with the change) */
    for (int p = 0; p < POL_PERM_COUNT; p++) {
        int want = p == POL_KEYS_CREATE || p == POL_KEYS_UPDATE || p == POL_KEYS_IMPORT ||
                   p == POL_KEYS_DELETE || p == POL_KEYS_RECOVER || p == POL_KEYS_RESTORE ||
                   p == POL_KEYS_PURGE || p == POL_KEYS_ROTATE || p == POL_KEYS_SETROTATIONPOLICY;
        if (pol_perm_changes_state((enum pol_perm)p) != want) {
            fprintf(stderr, "pol_perm_changes_state(%s) != %d\n", pol_perm_name((enum pol_perm)p), want);
            check_failures++;
        }
    }

    /* a customer-managed-key identity: get, wrapKey, unwrapKey on one vault */
    struct pol_access_policy cmk = {.vault = "cmk", .tenant_id = "t1", .object_id = "app-oid",
                                    .keys = (1u << POL_KEYS_GET) | (1u << POL_KEYS_WRAP) |
                                            (1u << POL_KEYS_UNWRAP)};
    CHECK_ST(pol_policy_put(c, &cmk), KV_OK);
    struct pol_access_policy admin = {.vault = "cmk", .tenant_id = "t1", .object_id = "admin",
                                      .keys = POL_PERMS_ALL};
    CHECK_ST(pol_policy_put(c, &admin), KV_OK);
    /* bound to one application */
    struct pol_access_policy bound = {.vault = "cmk", .tenant_id = "t1", .object_id = "user",
                                      .application_id = "the-app", .keys = POL_PERMS_ALL};
    CHECK_ST(pol_policy_put(c, &bound), KV_OK);

    struct ks_vault v = vault("cmk", 0), other = vault("other", 0);
    struct pol_claims app = who("t1", "APP-OID", "cid"), adm = who("t1", "admin", "x");
    for (int p = 0; p < POL_PERM_COUNT; p++) {
        int granted = p == POL_KEYS_GET || p == POL_KEYS_WRAP || p == POL_KEYS_UNWRAP;
        expect(c, app, v, "k", (enum pol_perm)p, granted ? KV_OK : KV_ERR_ACCESS_DENIED);
        expect(c, adm, v, "k", (enum pol_perm)p, KV_OK);
        expect(c, adm, other, "k", (enum pol_perm)p, KV_ERR_ACCESS_DENIED);
    }
    expect(c, who("t1", "user", "the-app"), v, NULL, POL_KEYS_LIST, KV_OK);
    expect(c, who("t1", "user", "another-app"), v, NULL, POL_KEYS_LIST, KV_ERR_ACCESS_DENIED);
    /* another tenant: not even asked */
    expect(c, who("t2", "admin", "x"), v, "k", POL_KEYS_GET, KV_ERR_UNAUTHORIZED);

    /* listing and revocation */
    struct pol_access_policy list[8];
    CHECK(pol_policy_list(c, "cmk", list, 8) == 3);
    CHECK(pol_policy_list(c, "other", list, 8) == 0);
    CHECK_ST(remove_policy(c, "cmk", "t1", "app-oid"), KV_OK);
    expect(c, app, v, "k", POL_KEYS_UNWRAP, KV_ERR_ACCESS_DENIED);
    expect(c, adm, v, "k", POL_KEYS_UNWRAP, KV_OK);
    /* removing the unbound entry leaves the application-bound one */
    CHECK_ST(remove_policy(c, "cmk", "t1", "user"), KV_OK);
    expect(c, who("t1", "user", "the-app"), v, NULL, POL_KEYS_LIST, KV_OK);
    CHECK_ST(pol_policy_put(c, &cmk), KV_OK);
    expect(c, app, v, "k", POL_KEYS_UNWRAP, KV_OK);

    /* RBAC: access policies no longer count; roles and their scopes do */
    struct ks_vault r = vault("cmk", 1);
    expect(c, adm, r, "k", POL_KEYS_GET, KV_ERR_RBAC_DENIED);
    enum pol_role role;
    CHECK_ST(pol_role_parse("Key Vault Crypto Service Encryption User", &role), KV_OK);
    CHECK(role == POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER);
    CHECK_ST(pol_role_parse("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/"
                            "12338af0-0e69-4776-bea7-57ae8d297424",
                            &role),
             KV_OK);
    CHECK(role == POL_ROLE_CRYPTO_USER);
    CHECK_ST(pol_role_parse("Owner", &role), KV_ERR_BAD_PARAM);
    /* the other built-in Key Vault roles: what they grant on keys */
    CHECK_ST(pol_role_parse("Key Vault Secrets Officer", &role), KV_OK);
    CHECK(role == POL_ROLE_SECRETS_OFFICER && pol_role_perms(role) == 0);
    CHECK_ST(pol_role_parse("4633458b-17de-408a-b874-0445c86b69e6", &role), KV_OK);
    CHECK(role == POL_ROLE_SECRETS_USER && pol_role_perms(role) == 0);
    CHECK_ST(pol_role_parse("Key Vault Certificate User", &role), KV_OK);
    CHECK(pol_role_perms(role) == (((pol_perms)1u << POL_KEYS_GET) | ((pol_perms)1u << POL_KEYS_LIST)));
    CHECK_ST(pol_role_parse("Key Vault Crypto Service Release User", &role), KV_OK);
    CHECK(pol_role_perms(role) == ((pol_perms)1u << POL_KEYS_RELEASE));
    for (int k = POL_ROLE_CERTIFICATES_OFFICER; k < POL_ROLE_COUNT; k++) /* nothing on keys */
        CHECK(pol_role_perms((enum pol_role)k) == 0 && strlen(pol_role_id((enum pol_role)k)) == 36);

    /* an assignment is made only at a scope that exists, decided when it is written */
    struct pol_role_assignment key_scope = {.id = "ra-1", .principal_id = "app-oid",
                                            .role = POL_ROLE_CRYPTO_SERVICE_ENCRYPTION_USER,
                                            .vault = "cmk", .key = "disk"};
    struct pol_role_assignment none;
    CHECK_ST(pol_role_put(c, &key_scope), KV_ERR_VAULT_NOT_FOUND);
    CHECK(!pol_role_get(c, "ra-1", &none) && pol_role_all(c, NULL, 0) == 0);
    stored_vault(ks, "cmk");
    stored_vault(ks, "cmk2");
    CHECK_ST(pol_role_put(c, &key_scope), KV_OK);
    expect(c, app, r, "disk", POL_KEYS_UNWRAP, KV_OK);
    expect(c, app, r, "disk", POL_KEYS_GET, KV_OK);
    expect(c, app, r, "disk", POL_KEYS_DELETE, KV_ERR_RBAC_DENIED);
    expect(c, app, r, "other-key", POL_KEYS_UNWRAP, KV_ERR_RBAC_DENIED); /* no reach */
    expect(c, app, r, NULL, POL_KEYS_LIST, KV_ERR_RBAC_DENIED);         /* vault-level */

    struct pol_role_assignment vault_scope = {.id = "ra-2", .principal_id = "admin",
                                              .role = POL_ROLE_CRYPTO_OFFICER, .vault = "cmk"};
    CHECK_ST(pol_role_put(c, &vault_scope), KV_OK);
    for (int p = 0; p < POL_PERM_COUNT; p++)
        expect(c, adm, r, "any-key", (enum pol_perm)p, KV_OK); /* vault scope reaches keys */
    struct pol_role_assignment reader = {.id = "ra-3", .principal_id = "auditor",
                                         .role = POL_ROLE_READER, .vault = "cmk"};
    CHECK_ST(pol_role_put(c, &reader), KV_OK);
    expect(c, who("t1", "auditor", "x"), r, "k", POL_KEYS_GET, KV_OK);
    expect(c, who("t1", "auditor", "x"), r, "k", POL_KEYS_UNWRAP, KV_ERR_RBAC_DENIED);

    /* a bad assignment is refused */
    struct pol_role_assignment bad = {.id = "ra-9", .principal_id = "x", .role = POL_ROLE_READER,
                                      .vault = "Bad_Vault"};
    CHECK_ST(pol_role_put(c, &bad), KV_ERR_BAD_PARAM);

    /* everything persists: a new context over the same store sees it */
    pol_free(c);
    c = NULL;
    CHECK_ST(pol_new(dir, "t1", &c), KV_OK);
    CHECK_ST(pol_attach(c, ks), KV_OK);
    expect(c, app, r, "disk", POL_KEYS_UNWRAP, KV_OK);
    expect(c, app, v, "k", POL_KEYS_WRAP, KV_OK);
    struct pol_role_assignment got;
    CHECK(pol_role_get(c, "RA-1", &got) && strcmp(got.key, "disk") == 0);

    /* revoking a role takes effect at once */
    CHECK_ST(pol_role_remove(c, "ra-1"), KV_OK);
    expect(c, app, r, "disk", POL_KEYS_UNWRAP, KV_ERR_RBAC_DENIED);
    CHECK_ST(pol_role_remove(c, "ra-1"), KV_ERR_BAD_PARAM);
    CHECK(pol_role_get(c, "ra-2", &got));

    /* scopes */
    char sv[KS_VAULT_NAME_MAX + 1], sk[KS_NAME_MAX + 1];
    CHECK_ST(pol_scope_parse("/vaults/cmk", sv, sk, NULL), KV_OK);
    CHECK(strcmp(sv, "cmk") == 0 && sk[0] == '\0');
    CHECK_ST(pol_scope_parse("/vaults/CMK/keys/Disk", sv, sk, NULL), KV_OK);
    CHECK(strcmp(sv, "cmk") == 0 && strcmp(sk, "Disk") == 0);
    CHECK_ST(pol_scope_parse("/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/"
                             "vaults/cmk/keys/disk",
                             sv, sk, NULL),
             KV_OK);
    CHECK(strcmp(sv, "cmk") == 0 && strcmp(sk, "disk") == 0);
    CHECK_ST(pol_scope_parse("/vaults/cmk/secrets/s", sv, sk, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(pol_scope_parse("/keys/disk", sv, sk, NULL), KV_ERR_BAD_PARAM);
    /* the broader scopes, only when the caller takes a group */
    char sg[KS_GROUP_MAX + 1];
    CHECK_ST(pol_scope_parse("/subscriptions/0/resourceGroups/Team-RG", sv, sk, sg), KV_OK);
    CHECK(sv[0] == '\0' && sk[0] == '\0' && strcmp(sg, "Team-RG") == 0);
    CHECK_ST(pol_scope_parse("/subscriptions/0/resourceGroups/rg/", sv, sk, sg), KV_OK);
    CHECK(strcmp(sg, "rg") == 0);
    CHECK_ST(pol_scope_parse("/subscriptions/0", sv, sk, sg), KV_OK);
    CHECK(sv[0] == '\0' && sk[0] == '\0' && sg[0] == '\0');
    CHECK_ST(pol_scope_parse("/subscriptions/0/resourceGroups/rg/providers/Microsoft.KeyVault/"
                             "vaults/cmk",
                             sv, sk, sg),
             KV_OK);
    CHECK(strcmp(sv, "cmk") == 0 && sg[0] == '\0');
    CHECK_ST(pol_scope_parse("/subscriptions/0", sv, sk, NULL), KV_ERR_BAD_PARAM);
    CHECK_ST(pol_scope_parse("/subscriptions/0/resourceGroups/a%2Fb", sv, sk, sg), KV_ERR_BAD_PARAM);
    CHECK_ST(pol_scope_parse("/subscriptions//resourceGroups/rg", sv, sk, sg), KV_ERR_BAD_PARAM);
    CHECK_ST(pol_scope_parse("/subscriptions/0/locations/x", sv, sk, sg), KV_ERR_BAD_PARAM);

    /* a group's scope reaches the vaults in it (a vault without one is in kvmock's), the
     * subscription's every vault */
    struct ks_vault in_team = vault("teamv", 1), config_vault = vault("cfgv", 1);
    snprintf(in_team.group, sizeof(in_team.group), "Team-RG");
    struct pol_role_assignment group_scope = {.id = "ra-g", .principal_id = "grouper",
                                              .role = POL_ROLE_CRYPTO_USER, .group = "team-rg"};
    CHECK_ST(pol_role_put(c, &group_scope), KV_ERR_ARM_NO_GROUP);
    CHECK(!pol_role_get(c, "ra-g", &none));
    stored_group(ks, "Team-RG");
    stored_group(ks, POL_RESOURCE_GROUP);
    CHECK_ST(pol_role_put(c, &group_scope), KV_OK);
    struct pol_claims grouper = who("t1", "grouper", "x");
    expect(c, grouper, in_team, "k", POL_KEYS_ENCRYPT, KV_OK);
    expect(c, grouper, in_team, "k", POL_KEYS_DELETE, KV_ERR_RBAC_DENIED); /* the role's limit */
    expect(c, grouper, config_vault, "k", POL_KEYS_ENCRYPT, KV_ERR_RBAC_DENIED);
    struct pol_role_assignment kvmock_scope = {.id = "ra-k", .principal_id = "grouper",
                                               .role = POL_ROLE_READER, .group = POL_RESOURCE_GROUP};
    CHECK_ST(pol_role_put(c, &kvmock_scope), KV_OK);
    expect(c, grouper, config_vault, "k", POL_KEYS_GET, KV_OK);
    struct pol_role_assignment sub_scope = {.id = "ra-s", .principal_id = "subber",
                                            .role = POL_ROLE_CRYPTO_OFFICER};
    CHECK_ST(pol_role_put(c, &sub_scope), KV_OK);
    expect(c, who("t1", "subber", "x"), in_team, "k", POL_KEYS_PURGE, KV_OK);
    expect(c, who("t1", "subber", "x"), config_vault, "k", POL_KEYS_CREATE, KV_OK);
    /* ... under RBAC only */
    struct ks_vault policies_vault = vault("polv", 0);
    expect(c, who("t1", "subber", "x"), policies_vault, "k", POL_KEYS_GET, KV_ERR_ACCESS_DENIED);
    /* a broad scope names no key, and a group's scope a valid group */
    struct pol_role_assignment keyless = {.id = "ra-x", .principal_id = "x",
                                          .role = POL_ROLE_READER, .key = "k"};
    CHECK_ST(pol_role_put(c, &keyless), KV_ERR_BAD_PARAM);
    struct pol_role_assignment badgroup = {.id = "ra-y", .principal_id = "x",
                                           .role = POL_ROLE_READER, .group = "a/b"};
    CHECK_ST(pol_role_put(c, &badgroup), KV_ERR_BAD_PARAM);
    struct pol_role_assignment both = {.id = "ra-z", .principal_id = "x", .role = POL_ROLE_READER,
                                       .vault = "cmk", .group = "rg"};
    CHECK_ST(pol_role_put(c, &both), KV_ERR_BAD_PARAM);
    /* they persist */
    pol_free(c);
    c = NULL;
    CHECK_ST(pol_new(dir, "t1", &c), KV_OK);
    CHECK_ST(pol_attach(c, ks), KV_OK);
    expect(c, grouper, in_team, "k", POL_KEYS_ENCRYPT, KV_OK);
    CHECK(pol_role_get(c, "ra-g", &got) && strcmp(got.group, "team-rg") == 0 && got.vault[0] == 0);
    /* the list of what reaches a vault holds the broad scopes too */
    struct pol_role_assignment reach[16];
    size_t nl = pol_role_list(c, &in_team, reach, 16);
    int saw_group = 0, saw_sub = 0, saw_other = 0;
    for (size_t i = 0; i < nl && i < 16; i++) {
        saw_group |= strcmp(reach[i].id, "ra-g") == 0;
        saw_sub |= strcmp(reach[i].id, "ra-s") == 0;
        saw_other |= strcmp(reach[i].id, "ra-k") == 0 || strcmp(reach[i].id, "ra-2") == 0;
    }
    CHECK(nl == 2 && saw_group && saw_sub && !saw_other);
    nl = pol_role_list(c, &r, reach, 16); /* cmk: ra-2, ra-3, kvmock's ra-k, the subscription's */
    CHECK(nl == 4);
    /* deleting the group takes its assignments along, and only those */
    CHECK_ST(pol_role_remove_group(c, "TEAM-RG"), KV_OK);
    expect(c, grouper, in_team, "k", POL_KEYS_ENCRYPT, KV_ERR_RBAC_DENIED);
    CHECK(!pol_role_get(c, "ra-g", &got) && pol_role_get(c, "ra-k", &got) &&
          pol_role_get(c, "ra-s", &got) && pol_role_get(c, "ra-2", &got));
    CHECK_ST(pol_role_remove_group(c, "team-rg"), KV_OK);

    /* one principal, role and scope make one assignment (a principal in any case) ... */
    struct pol_role_assignment again = vault_scope;
    CHECK_ST(pol_role_put(c, &again), KV_OK); /* the same, put again */
    snprintf(again.id, sizeof(again.id), "ra-2b");
    snprintf(again.principal_id, sizeof(again.principal_id), "ADMIN");
    CHECK_ST(pol_role_put(c, &again), KV_ERR_ARM_ROLE_EXISTS);
    CHECK(!pol_role_get(c, "ra-2b", &got));
    again.role = POL_ROLE_READER; /* another role: another assignment */
    CHECK_ST(pol_role_put(c, &again), KV_OK);
    struct pol_role_assignment sub_again = sub_scope;
    snprintf(sub_again.id, sizeof(sub_again.id), "ra-s2");
    CHECK_ST(pol_role_put(c, &sub_again), KV_ERR_ARM_ROLE_EXISTS);
    /* ... and an assignment keeps its principal, role and scope */
    struct pol_role_assignment moved = vault_scope;
    snprintf(moved.principal_id, sizeof(moved.principal_id), "someone-else");
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    moved = vault_scope;
    moved.role = POL_ROLE_READER;
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    moved = vault_scope;
    snprintf(moved.key, sizeof(moved.key), "k");
    CHECK_ST(pol_role_put(c, &moved), KV_ERR_ARM_ROLE_UPDATE);
    CHECK(pol_role_get(c, "ra-2", &got) && strcmp(got.principal_id, "admin") == 0 &&
          got.role == POL_ROLE_CRYPTO_OFFICER && got.key[0] == '\0');

    /* deleting a vault takes the assignments at its and its keys' scopes, and only those */
    struct pol_role_assignment on_key = {.id = "ra-4", .principal_id = "app-oid",
                                         .role = POL_ROLE_CRYPTO_USER, .vault = "cmk",
                                         .key = "disk"};
    CHECK_ST(pol_role_put(c, &on_key), KV_OK);
    struct pol_role_assignment elsewhere = {.id = "ra-5", .principal_id = "app-oid",
                                            .role = POL_ROLE_READER, .vault = "cmk2"};
    CHECK_ST(pol_role_put(c, &elsewhere), KV_OK);
    size_t before = pol_role_all(c, NULL, 0);
    CHECK_ST(remove_vault_roles(c, "CMK"), KV_OK);
    CHECK(!pol_role_get(c, "ra-2", &got) && !pol_role_get(c, "ra-2b", &got) &&
          !pol_role_get(c, "ra-3", &got) && !pol_role_get(c, "ra-4", &got));
    CHECK(pol_role_get(c, "ra-5", &got) && pol_role_get(c, "ra-k", &got) &&
          pol_role_get(c, "ra-s", &got));
    expect(c, adm, r, "any-key", POL_KEYS_GET, KV_ERR_RBAC_DENIED);
    struct pol_role_assignment all[16];
    size_t n_all = pol_role_all(c, all, 16);
    CHECK(n_all == before - 4 && n_all == 3);
    CHECK(pol_role_all(c, all, 1) == 3); /* the count, whatever fits */
    CHECK_ST(remove_vault_roles(c, "cmk"), KV_OK); /* none left: nothing to do */
    CHECK_ST(remove_vault_roles(c, ""), KV_ERR_BAD_PARAM);
    /* the same assignment can now be made again, under a new name */
    snprintf(again.id, sizeof(again.id), "ra-2c");
    CHECK_ST(pol_role_put(c, &again), KV_OK);

    /* what Resource Manager tells about an assignment: made, then updated */
    struct pol_role_assignment told = {.id = "ra-6", .principal_id = "svc",
                                       .role = POL_ROLE_READER, .vault = "cmk2",
                                       .principal_type = "ServicePrincipal",
                                       .description = "first", .updated = 1000,
                                       .updated_by = "maker"};
    CHECK_ST(pol_role_put(c, &told), KV_OK);
    told.updated = 2000;
    snprintf(told.updated_by, sizeof(told.updated_by), "changer");
    snprintf(told.description, sizeof(told.description), "second");
    told.principal_type[0] = '\0';
    CHECK_ST(pol_role_put(c, &told), KV_OK);
    pol_free(c);
    c = NULL;
    CHECK_ST(pol_new(dir, "t1", &c), KV_OK);
    CHECK_ST(pol_attach(c, ks), KV_OK);
    CHECK(pol_role_get(c, "ra-6", &got) && got.created == 1000 && got.updated == 2000 &&
          strcmp(got.created_by, "maker") == 0 && strcmp(got.updated_by, "changer") == 0 &&
          strcmp(got.description, "second") == 0 && got.principal_type[0] == '\0');
    snprintf(told.principal_type, sizeof(told.principal_type), "Robot");
    CHECK_ST(pol_role_put(c, &told), KV_ERR_BAD_PARAM);
    memset(told.description, 'd', sizeof(told.description)); /* no NUL */
    snprintf(told.principal_type, sizeof(told.principal_type), "Group");
    CHECK_ST(pol_role_put(c, &told), KV_ERR_BAD_PARAM);
    CHECK(pol_role_get(c, "ra-6", &got) && strcmp(got.description, "second") == 0);
    changes(c, ks);
    hsm_actions();
    hsm_role_table(c);
    hsm_assignments(c, ks);
    hsm_access_backup(c, ks);
    hsm_lifecycle(c, ks);

    pol_free(c);
    ks_close(ks);
    cleanup();
    CHECK_DONE();
}
