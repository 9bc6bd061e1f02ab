/*
 * Allocation-failure injection over the keystore paths that handle key
 * material (the SQLite way): for n = 1, 2, ... the n-th allocation of the
 * operation fails, and the operation must give KV_OK or a clean server-side
 * error (KV_ERR_NOMEM, KV_ERR_STORE, KV_ERR_CRYPTO, KV_ERR_INTERNAL), leave no
 * allocation behind, and leave the store as it was; until a run completes
 * without reaching the armed allocation.
 *
 * Every allocator on these paths is counted (tests/unit/alloc_hook.h):
 * kvmock's own and LMDB's (linked statically here, both through --wrap),
 * OpenSSL's and cJSON's (through their hooks). Inside OpenSSL's own work (key
 * generation, JWK import, DER parsing, the key operation: up to thousands of
 * allocations each, RSA keygen costing a second a run) the first WINDOW_HEAD
 * and last WINDOW_TAIL allocations and every WINDOW_STRIDE-th are failed;
 * every allocation outside those windows (kvmock, cJSON, LMDB) is failed,
 * except after an RSA keygen or RSA import check (every AFTER_KEYGEN_STRIDE-th:
 * the EC and oct rows run the same code with every allocation failed).
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK() __lsan_do_recoverable_leak_check()
#else
#define LEAK_CHECK() 0
#endif
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "alloc_hook.h"
#include "check.h"
#include "crypto.h"
#include "ks.h"
#include "kv_buf.h"
#include "seal.h"
#include "store.h"
#include "kv_log.h"
#include "pol.h"
#include "testassert.h"
#include "testcert.h"
#include "testkeys.h"
#include "testrecords.h"
#include "testsd.h"

#define VAULT               "v"
#define WINDOW_HEAD         40
#define WINDOW_TAIL         10
#define WINDOW_STRIDE       23
#define AFTER_KEYGEN_STRIDE 13

static char dir[] = "/tmp/kvmock-faults-XXXXXX";
static struct ks_env *env;
/* Access control over env for the vault ops: made for each run before it (its snapshot
 * lives as long as it, and a run that succeeds replaces it), freed after a run that
 * succeeded was checked, so that the snapshot is not taken for a leak. */
static struct pol_ctx *acl;
static struct testkeys tk;
static struct kv_buf backup_blob; /* of "bk", which is purged before the restore loop */
#define HSM "hsm"                 /* a Managed HSM, for its full backup and restores */
static struct kv_buf hsm_blob;    /* its full backup: h-rsa (2 versions) and h-ec */
static unsigned long iter;        /* distinct names for successful runs */

/* Windows of the run without failures where OpenSSL does the work (key
 * generation, JWK import, DER parsing, the key operation itself), measured by
 * the wrappers below. */
#define MAX_WINDOWS 8
static int measuring;
static size_t n_windows;
static unsigned long win_from[MAX_WINDOWS], win_to[MAX_WINDOWS];

static void window_open(void)
{
    if (measuring && n_windows < MAX_WINDOWS)
        win_from[n_windows] = ah_count() + 1;
}

static void window_close(void)
{
    if (measuring && n_windows < MAX_WINDOWS)
        win_to[n_windows++] = ah_count();
}

#define WRAP(ret, fn, params, args)                                                                \
    ret __real_##fn params;                                                                        \
    ret __wrap_##fn params;                                                                        \
    ret __wrap_##fn params                                                                         \
    {                                                                                              \
        window_open();                                                                             \
        ret r_ = __real_##fn args;                                                                 \
        window_close();                                                                            \
        return r_;                                                                                 \
    }

WRAP(enum kv_status, ks_material_generate,
     (enum ks_kty kty, int size_bits, unsigned long exponent, enum ks_crv crv,
      struct ks_material **out),
     (kty, size_bits, exponent, crv, out))
WRAP(enum kv_status, ks_material_from_jwk, (const struct ks_jwk *jwk, struct ks_material **out),
     (jwk, out))
WRAP(enum kv_status, ks_material_deserialize,
     (enum ks_kty kty, const unsigned char *bytes, size_t len, struct ks_material **out),
     (kty, bytes, len, out))
WRAP(enum kv_status, ks_material_op,
     (const struct ks_material *m, unsigned op, const struct ks_op_params *params,
      struct ks_op_result *out),
     (m, op, params, out))

/* OpenSSL 3.0's X509_sign, when an allocation inside it fails, frees a pointer into a block
 * rather than the block (ASN1_item_sign_ctx, then ASN1_item_d2i_ex: ASan's bad-free). Its
 * allocations are not failed here; every one around it is. */
enum kv_status __real_ks_material_certificate(const struct ks_material *m, const char *cn, int days,
                                              struct kv_buf *der);
enum kv_status __wrap_ks_material_certificate(const struct ks_material *m, const char *cn, int days,
                                              struct kv_buf *der);
enum kv_status __wrap_ks_material_certificate(const struct ks_material *m, const char *cn, int days,
                                              struct kv_buf *der)
{
    ah_hold(1);
    enum kv_status st = __real_ks_material_certificate(m, cn, days, der);
    ah_hold(0);
    return st;
}

/* Whether allocation @p n is failed in turn: every one outside OpenSSL's
 * windows; inside, the first and last few and every WINDOW_STRIDE-th. */
static int tested(int sparse, unsigned long n)
{
    /* after a (slow) RSA key generation or import check, every
     * AFTER_KEYGEN_STRIDE-th only: the same code runs after every EC and oct
     * create or import, where all are failed */
    if (sparse && n_windows > 0 && n > win_to[0] && (n - win_to[0]) % AFTER_KEYGEN_STRIDE != 1)
        return 0;
    for (size_t i = 0; i < n_windows; i++) {
        if (n < win_from[i] || n > win_to[i])
            continue;
        return n - win_from[i] < WINDOW_HEAD || win_to[i] - n < WINDOW_TAIL ||
               (n - win_from[i]) % WINDOW_STRIDE == 0;
    }
    return 1;
}

/* ---- what the store holds for one name ------------------------------------------ */

/* The vault named @p name with its access control, as the store holds it (the vault, a
 * deleted vault of the name, its access policies, the role assignment "ra-NAME") and as
 * the policy layer mirrors it. */
static size_t vault_print(const char *name, char *out, size_t cap)
{
    struct ks_vault v;
    char key[KS_VAULT_NAME_MAX + 8];
    size_t policies = tr_count(env, KS_TABLE_POLICIES, name, strlen(name) + 1);
    snprintf(key, sizeof(key), "ra-%s", name);
    size_t roles = tr_count(env, KS_TABLE_ROLES, key, strlen(key) + 1);
    struct pol_access_policy mirrored[4];
    struct pol_role_assignment ra;
    struct ks_deleted_vault d;
    return (size_t)snprintf(out, cap, "|vault %s, deleted %s, %zu/%zu policies, %zu/%d roles",
                            kv_status_name(ks_vault_get(env, name, &v)),
                            kv_status_name(ks_deleted_vault_get(env, name, &d)), policies,
                            acl ? pol_policy_list(acl, name, mirrored, 4) : 0, roles,
                            acl ? pol_role_get(acl, key, &ra) : 0);
}

/* The Managed HSM HSM as the store holds it: each live key with its versions, and each
 * soft-deleted key. */
static void hsm_print(char *out, size_t cap)
{
    struct ks_key_page *page = NULL, *vp = NULL;
    size_t len = 0;
    enum kv_status st = ks_key_list(env, HSM, NULL, KS_PAGE_MAX, &page);
    len += (size_t)snprintf(out + len, cap - len, "|hsm %s:", kv_status_name(st));
    for (size_t i = 0; st == KV_OK && i < page->count && len < cap; i++) {
        const char *name = page->items[i]->name;
        enum kv_status vs = ks_key_list_versions(env, HSM, name, NULL, KS_PAGE_MAX, &vp);
        len += (size_t)snprintf(out + len, cap - len, " %s=%s", name, kv_status_name(vs));
        for (size_t j = 0; vs == KV_OK && j < vp->count && len < cap; j++)
            len += (size_t)snprintf(out + len, cap - len, ",%s", vp->items[j]->version);
        ks_key_page_free(vp);
        vp = NULL;
    }
    ks_key_page_free(page);
    page = NULL;
    st = ks_deleted_list(env, HSM, NULL, KS_PAGE_MAX, &page);
    if (len < cap)
        len += (size_t)snprintf(out + len, cap - len, ", deleted %s:", kv_status_name(st));
    for (size_t i = 0; st == KV_OK && i < page->count && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, " %s", page->items[i]->name);
    ks_key_page_free(page);
}

/* How many records table `secdomain` holds for HSM @p name: its transfer key, an uploaded
 * domain (keystore/secdomain.c). */
static size_t sd_records(const char *name)
{
    size_t n = 0, plen = strlen(name) + 1;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    CHECK(mdb_txn_begin(env->env, NULL, MDB_RDONLY, &txn) == 0);
    CHECK(txn != NULL && mdb_cursor_open(txn, env->db_secdomain, &cur) == 0);
    MDB_val k = {plen, (void *)name}, v;
    for (int rc = cur ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : 1;
         rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, name, plen) == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        n++;
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    return n;
}

/* A fingerprint of a key: its live versions in order, or its absence; of a vault of that
 * name; and of the Managed HSM. */
static void fingerprint(const char *name, char *out, size_t cap)
{
    struct ks_key_page *page = NULL;
    size_t len = 0;
    out[0] = '\0';
    enum kv_status st = ks_key_list_versions(env, VAULT, name, NULL, KS_PAGE_MAX, &page);
    len += (size_t)snprintf(out + len, cap - len, "%s:", kv_status_name(st));
    for (size_t i = 0; st == KV_OK && i < page->count && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s,", page->items[i]->version);
    ks_key_page_free(page);
    struct ks_key *k = NULL;
    st = ks_key_get(env, VAULT, name, NULL, &k);
    if (len < cap)
        len += (size_t)snprintf(out + len, cap - len, "|%s:%s", kv_status_name(st),
                                st == KV_OK ? k->version : "");
    ks_key_free(k);
    if (len < cap)
        len += vault_print(name, out + len, cap - len);
    /* custom role definitions, stored and mirrored */
    struct pol_role_def *defs = NULL;
    size_t n = 0;
    if (acl != NULL && pol_role_def_list(acl, &defs, &n) != KV_OK)
        n = 9999; /* cannot fail: nothing is armed here */
    pol_role_defs_free(defs, n == 9999 ? 0 : n);
    if (len < cap)
        len += (size_t)snprintf(out + len, cap - len, "|%zu/%zu role definitions",
                                tr_count(env, KS_TABLE_ROLES, "\0def\0", 5), n);
    if (len < cap)
        hsm_print(out + len, cap - len);
    if (len < cap)
        snprintf(out + len, cap - len, "|%zu security domain record(s)", sd_records(name));
}

/* Drop a version's parsed material from the cache, so the next operation opens the seal. */
static void uncache(const char *name, const char *version)
{
    char loc[KS_VAULT_NAME_MAX + KS_NAME_MAX + KS_VERSION_LEN + 3];
    size_t vl = strlen(VAULT), nl = strlen(name);
    memcpy(loc, VAULT, vl + 1);
    memcpy(loc + vl + 1, name, nl + 1);
    memcpy(loc + vl + 1 + nl + 1, version, KS_VERSION_LEN);
    ks_cache_remove(env->cache, loc, vl + 1 + nl + 1 + KS_VERSION_LEN);
}

/* The keystore remembers parsed records (memo.h): a remembered parse is a cache,
 * not a leak, and an empty memo makes every run parse. Slots as in store.h. */
static void memos_free(void)
{
    ks_memo_free(env->vault_memo);
    ks_memo_free(env->key_memo);
    ks_memo_free(env->head_memo);
    env->vault_memo = env->key_memo = env->head_memo = NULL;
}

static void memos_new(void)
{
    env->vault_memo = ks_memo_new(KS_VAULT_MEMO_SLOTS, sizeof(struct ks_vault), NULL, NULL);
    env->key_memo = ks_key_memo_new(KS_KEY_MEMO_SLOTS);
    env->head_memo = ks_head_memo_new(KS_KEY_MEMO_SLOTS);
    if (env->vault_memo == NULL || env->key_memo == NULL || env->head_memo == NULL)
        abort();
}

/* ---- the operations ------------------------------------------------------------------ */

struct op {
    const char *what;
    /* Run once; @p name is where it writes (or what it reads). */
    enum kv_status (*run)(const struct op *op, const char *name);
    /* Make a fresh target name (and set it up when needed); NULL = op->target. */
    void (*prepare)(const struct op *op, char *name, size_t cap);
    void (*after_success)(const struct op *op, const char *name);
    const char *target;
    enum ks_kty kty;
    int size;
    enum ks_alg alg;
    unsigned key_op;
    int sparse; /* RSA create and import: see tested() */
};

static void fresh_name(const struct op *op, char *name, size_t cap)
{
    snprintf(name, cap, "%s-%lu", op->target, ++iter);
}

static enum kv_status run_create(const struct op *op, const char *name)
{
    struct ks_create p = {.kty = op->kty, .size_bits = op->size, .attrs = {.enabled = 1}};
    char *tn = "purpose", *tv = "faults";
    p.tags.count = 1;
    p.tags.names = &tn;
    p.tags.values = &tv;
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_create(env, VAULT, name, &p, &k);
    ks_key_free(k);
    return st;
}

static enum kv_status run_import(const struct op *op, const char *name)
{
    struct ks_import p = {.attrs = {.enabled = 1}};
    p.jwk = op->kty == KS_KTY_RSA ? tk.rsa : op->kty == KS_KTY_EC ? tk.ec : tk.oct;
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_import(env, VAULT, name, &p, &k);
    ks_key_free(k);
    return st;
}

/* Bring your own key: the test EC key wrapped for the import-only KEK "kek" (the test RSA
 * key) as a release wraps it, imported under a new name. */
static struct ks_byok byok = {.kek_name = "kek", .enc = KS_RELEASE_CKM_RSA_AES_KEY_WRAP};

static enum kv_status run_byok(const struct op *op, const char *name)
{
    struct ks_import p = {.jwk = {.kty = op->kty}, .byok = &byok, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_import(env, VAULT, name, &p, &k);
    ks_key_free(k);
    return st;
}

static enum kv_status run_rotate(const struct op *op, const char *name)
{
    (void)op;
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_rotate(env, VAULT, name, &k);
    ks_key_free(k);
    return st;
}

/* The input an operation takes, made with the key's own public half or on the server. */
static struct kv_buf op_input[KS_ALG_COUNT][8];
static struct kv_buf gcm_iv, gcm_tag;

static enum kv_status run_keyop(const struct op *op, const char *name)
{
    struct ks_op_params p = {.alg = op->alg};
    p.value = op_input[op->alg][__builtin_ctz(op->key_op)];
    if (op->key_op == KS_OP_VERIFY)
        p.digest = op_input[op->alg][__builtin_ctz(KS_OP_SIGN)];
    if (op->alg == KS_ALG_A256GCM) {
        p.iv = gcm_iv;
        p.tag = gcm_tag;
    }
    struct ks_op_result r = {0};
    enum kv_status st = ks_key_op(env, VAULT, name, NULL, op->key_op, &p, &r);
    if (st == KV_OK && op->key_op == KS_OP_VERIFY && !r.verified)
        st = KV_ERR_BAD_PARAM; /* a good signature called bad: not a clean answer */
    ks_op_result_clear(&r);
    return st;
}

/* Drop the key from the cache: before a run, so the run opens the seal; after
 * one, because the cache's entry is not a leak. */
static void keyop_uncache(const struct op *op, const char *name)
{
    (void)op;
    struct ks_key *k = NULL;
    if (ks_key_get(env, VAULT, name, NULL, &k) == KV_OK)
        uncache(name, k->version);
    ks_key_free(k);
}

static void keyop_prepare(const struct op *op, char *name, size_t cap)
{
    (void)cap;
    keyop_uncache(op, name);
}

static enum kv_status run_backup(const struct op *op, const char *name)
{
    (void)op;
    struct kv_buf b = {0};
    enum kv_status st = ks_key_backup(env, VAULT, name, &b);
    kv_buf_free(&b);
    return st;
}

static enum kv_status run_restore(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_restore(env, VAULT, backup_blob.data, backup_blob.len, NULL, &k);
    ks_key_free(k);
    return st;
}

static void restore_after(const struct op *op, const char *name)
{
    (void)op;
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_delete(env, VAULT, name, &k), KV_OK); /* soft delete is off: purged */
    ks_key_free(k);
}

/* A Managed HSM's full backup (ks_hsm_backup): both live keys, not the soft-deleted one. */
static enum kv_status run_hsm_backup(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct kv_buf b = {0};
    size_t keys = 0;
    enum kv_status st = ks_hsm_backup(env, HSM, NULL, &b, &keys);
    if (st == KV_OK && (keys != 2 || b.len == 0))
        st = KV_ERR_BAD_PARAM; /* a backup without a key: not a clean answer */
    kv_buf_free(&b);
    return st;
}

static void put_hsm_key(const char *name, const struct ks_jwk *jwk)
{
    struct ks_import p = {.jwk = *jwk, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_import(env, HSM, name, &p, &k), KV_OK);
    ks_key_free(k);
}

/* A restore of hsm_blob, of key @p name alone when op->key_op is set (selective), else
 * full; it must restore op->size key versions. */
static enum kv_status run_hsm_restore(const struct op *op, const char *name)
{
    size_t versions = 0;
    enum kv_status st = ks_hsm_restore(env, HSM, hsm_blob.data, hsm_blob.len,
                                       op->key_op ? name : NULL, NULL, 0, &versions);
    if (st == KV_OK && versions != (size_t)op->size)
        st = KV_ERR_BAD_PARAM;
    return st;
}

/* Before a full restore: a key the backup does not hold, which the restore removes. */
static void hsm_extra(const struct op *op, char *name, size_t cap)
{
    (void)op;
    (void)cap;
    struct ks_key *k = NULL;
    if (ks_key_get(env, HSM, name, NULL, &k) == KV_ERR_KEY_NOT_FOUND)
        put_hsm_key(name, &tk.ec);
    ks_key_free(k);
}

static void hsm_restored(const struct op *op, const char *name)
{
    (void)op;
    char print[1024];
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_get(env, HSM, name, NULL, &k), KV_ERR_KEY_NOT_FOUND);
    hsm_print(print, sizeof(print));
    CHECK(strstr(print, " h-ec=KV_OK,") != NULL && strstr(print, " h-rsa=KV_OK,") != NULL &&
          strstr(print, ", deleted KV_OK:") != NULL && strstr(print, "h-oct") == NULL);
}

/* Before a selective restore: the key is purged. */
static void hsm_key_gone(const struct op *op, char *name, size_t cap)
{
    (void)op;
    (void)cap;
    struct ks_key *k = NULL;
    if (ks_key_delete(env, HSM, name, &k) == KV_OK)
        CHECK_ST(ks_deleted_purge(env, HSM, name), KV_OK);
    ks_key_free(k);
}

/* A vault's firewall: its record written with rule lists, written again keeping them,
 * and the lists read back. */
static enum kv_status run_net_rules(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    char *ips[] = {"203.0.113.0/24", "2001:db8::/32"};
    struct ks_vnet_rule vnets[] = {{"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/"
                                    "virtualNetworks/n/subnets/m",
                                    1}};
    struct ks_net_rules rules = {2, ips, 1, vnets}, got = {0};
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7, .net_acls = 1, .net_deny = 1};
    snprintf(v.name, sizeof(v.name), "fw");
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    v.net_rules = &rules;
    enum kv_status st = ks_vault_put(env, &v);
    v.net_rules = NULL; /* keeps the stored lists */
    if (st == KV_OK)
        st = ks_vault_put(env, &v);
    if (st == KV_OK)
        st = ks_vault_net_rules(env, "fw", &got);
    if (st == KV_OK && (got.ip_count != 2 || got.vnet_count != 1 ||
                        strcmp(got.ip[1], ips[1]) != 0 || strcmp(got.vnet[0].id, vnets[0].id) != 0))
        st = KV_ERR_INTERNAL;
    ks_net_rules_clear(&got);
    return st;
}

/* Client assertions (policy/assertion.c): a certificate and an issuer's JWKS registered, then
 * the application's own RS256 assertion and a federated ES256 one checked (testassert.h). The
 * run without failures must accept both; under a failed allocation a refusal is what a client
 * would see, so any refusal counts as the clean error here: what this checks is that nothing
 * is left behind. */

static enum kv_status run_assertions(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    static const char *const endpoints[] = {TESTASSERT_ENDPOINT};
    struct pol_identity id = {.client_id = TESTASSERT_CLIENT};
    struct pol_assertion_info info;
    enum kv_status st = testassert_register(&id.creds);
    if (st == KV_ERR_BAD_PARAM) /* the configuration's reading, at start: told as bad input */
        st = KV_ERR_NOMEM;
    const char *const assertions[] = {testassert_own_assertion, testassert_federated_assertion};
    for (size_t i = 0; st == KV_OK && i < 2; i++) {
        /* out of memory is said as such: a good assertion is never refused for it */
        enum pol_assertion res =
            pol_assertion_check(&id, assertions[i], endpoints, 1, TESTASSERT_NOW, &info);
        st = res == POL_ASSERTION_OK      ? KV_OK
             : res == POL_ASSERTION_NOMEM ? KV_ERR_NOMEM
                                          : KV_ERR_BAD_PARAM;
    }
    pol_creds_free(id.creds);
    return st;
}

/* Secure key release (policy/release.c): two attestation authorities trusted (an ES256 JWKS,
 * and the RSA certificate of testassert.h published as x5c only), a release policy
 * normalized, and a token of the first authority (made once with Python's cryptography,
 * valid at TESTASSERT_NOW) checked against it, which releases for its runtime RSA key. As for
 * client assertions, a refusal under a failed allocation is the clean error; what this checks
 * is that nothing is left behind. */
#define REL_AUTHORITY "https://attest.example"
static const char rel_jwks[] =
    "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"a1\",\"use\":\"sig\",\"x\":\"EaDDmFWL"
    "v7mbMR30BtuSQvemesMxmFZOr-F5rSCA_dg\",\"y\":\"-jsOuvHjuJc0G0PF0vqdd61QWzsqehG54Sw_OmT4vD0\"}"
    "]}";
static const char rel_token[] =
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImExIiwidHlwIjoiSldUIn0.eyJpc3MiOiJodHRwczovL2F0dGVzdC5leGFtcGxl"
    "LyIsImV4cCI6MTgwMDAwMDYwMCwic2RrLXRlc3QiOnRydWUsIngtbXMtaXNvbGF0aW9uLXRlZSI6eyJ4LW1zLWF0dGVz"
    "dGF0aW9uLXR5cGUiOiJzZXZzbnB2bSJ9LCJzdm4iOjMsIngtbXMtcnVudGltZSI6eyJrZXlzIjpbeyJrdHkiOiJSU0Ei"
    "LCJraWQiOiJmYWtlLXJlbGVhc2Uta2V5IiwidXNlIjoiZW5jIiwiZSI6IkFRQUIiLCJuIjoicXNmNkxTY1ZfejlKQWp5"
    "SkYteTFQVkRMeVMxLTNfcVVpRkVNM3ZhOEplR3p5SktoWW5xVEkybHdEcjhUczVnd2J2cWRwTXY5TU1pSmZGQ1NuVktZ"
    "SmQ0SmllUVNCM1dUd2lMWUdoRnZLZEhSVHh0NGhucVAtM3lUQzZKdWhfQ2FhNGNSUVdFNDItX1pKVGlMaE93VmQyY3J1"
    "Tnk4dlN5RmJyUjhHNXl6RktXQ3dpU3BYTE1JZVhxYkcwRDJtcko0TndSbUZfSW9LUERiSnoydU9Zay12czByVndjanBy"
    "QVpLOW9Gajh3bmpweHRPdzVFaDhHalIzcVp6a3JSTklvUk1oWjNDWjBHMHp3T0dfdHUxc3VJdFBScTFPWmFWcDk5QkRB"
    "VlBnaXRyZUkxYkE3Yko5a1E2TGVucERiWHp1MDNJODdBc0ZCVkNwdlJlSjg3TXZZNnlRIn1dfX0.agBHwlVxwsBuGIV2"
    "Oh0qZ2UzIMHc5elxZEHWU8W3KTb4hQvIC4DGZ2eUyefF9zfFwTT_BT0cqEZIcWLtyldsxw";
static const char rel_policy[] =
    "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"https://attest.example\",\"allOf\":[{"
    "\"claim\":\"sdk-test\",\"equals\":true},{\"anyOf\":[{\"claim\":\"x-ms-isolation-tee.x-ms-"
    "attestation-type\",\"equals\":\"sevsnpvm\"},{\"claim\":\"svn\",\"greater\":\"2\"}]}]}]}";
static char rel_x5c_jwks[4096]; /* made from testassert_cert_pem in main() */

static enum kv_status run_release(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct pol_ctx *ctx = NULL;
    struct pol_release_target t = {0};
    char err[256], why[256], *norm = NULL;
    enum kv_status st = pol_new(dir, "t", &ctx);
    if (st == KV_OK)
        st =
            pol_attestation_trust(ctx, REL_AUTHORITY, rel_jwks, strlen(rel_jwks), err, sizeof(err));
    if (st == KV_OK)
        st = pol_attestation_trust(ctx, "https://x5c.example", rel_x5c_jwks, strlen(rel_x5c_jwks),
                                   err, sizeof(err));
    if (st == KV_OK)
        st = pol_release_policy_normalize(rel_policy, strlen(rel_policy), &norm, err, sizeof(err));
    if (st == KV_OK) {
        enum pol_release r = pol_release_check(ctx, norm, strlen(norm), rel_token, TESTASSERT_NOW,
                                               &t, why, sizeof(why));
        if (r != POL_RELEASE_OK || t.n.len != 256 || strcmp(t.kid, "fake-release-key") != 0)
            st = r == POL_RELEASE_NOMEM ? KV_ERR_NOMEM : KV_ERR_BAD_PARAM;
    }
    pol_release_target_clear(&t);
    free(norm);
    pol_free(ctx);
    /* out of memory is the only clean refusal: a bad key, token or target here is an
     * allocation failure taken for bad input, and reported */
    return st;
}

/* Secure key release in the keystore (VAULT is premium): an exportable create and an
 * import with a policy, a policy replaced, and a release for the recipient below. */
static const char ks_policy[] = "{\"version\":\"1.0.0\",\"anyOf\":[]}";
static struct kv_buf rcpt_n, rcpt_e;

static enum kv_status run_exportable(const struct op *op, const char *name)
{
    struct ks_release_policy rp = {.set = 1, .data = (char *)ks_policy};
    struct ks_key *k = NULL;
    enum kv_status st;
    if (op->kty == KS_KTY_EC) { /* import */
        struct ks_import p = {.jwk = tk.ec,
                              .hsm = 1,
                              .attrs = {.enabled = 1, .exportable = 1},
                              .release_policy = &rp};
        st = ks_key_import(env, VAULT, name, &p, &k);
    } else {
        struct ks_create p = {.kty = op->kty,
                              .hsm = 1,
                              .size_bits = op->size,
                              .attrs = {.enabled = 1, .exportable = 1},
                              .release_policy = &rp};
        st = ks_key_create(env, VAULT, name, &p, &k);
    }
    ks_key_free(k);
    return st;
}

/* An update (of the attributes and tags, or of the release policy), and what it wrote read
 * back: every member of the record must be there, named (out of memory, cJSON's own
 * replace once stored one without its name). */
static enum kv_status run_update(const struct op *op, const char *name)
{
    struct ks_release_policy rp = {
        .set = 1, .content_type = "application/json", .data = (char *)ks_policy};
    char *tn = "purpose", *tv = "faults";
    struct ks_update u = {.enabled_set = 1,
                          .enabled = 1,
                          .exp_set = 1,
                          .exp = 4102444800,
                          .tags_set = 1,
                          .tags = {1, &tn, &tv}};
    if (op->kty == KS_KTY_EC) /* x-ec: its release policy */
        u = (struct ks_update){.release_policy = &rp, .exportable_set = 1, .exportable = 1};
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_update(env, VAULT, name, NULL, &u, &k);
    ks_key_free(k);
    k = NULL;
    if (st == KV_OK)
        st = ks_key_get(env, VAULT, name, NULL, &k);
    if (st == KV_OK &&
        (k->attrs.updated == 0 || k->attrs.created == 0 || !k->attrs.enabled ||
         (op->kty == KS_KTY_EC
              ? !k->release_policy.set || strcmp(k->release_policy.content_type, "application/json")
              : k->attrs.exp != 4102444800 || k->tags.count != 1)))
        st = KV_ERR_BAD_PARAM; /* a record written without a member: not a clean answer */
    ks_key_free(k);
    return st;
}

static enum kv_status run_ks_release(const struct op *op, const char *name)
{
    struct ks_key *k = NULL;
    struct kv_buf wrapped = {0};
    enum kv_status st =
        ks_key_release(env, VAULT, name, NULL, ks_policy, (enum ks_release_enc)op->size, &rcpt_n,
                       &rcpt_e, &k, &wrapped);
    if (st == KV_OK && (k == NULL || wrapped.len <= 256))
        st = KV_ERR_BAD_PARAM; /* not a clean answer */
    ks_key_free(k);
    kv_buf_free(&wrapped);
    return st;
}

static enum kv_status run_seal(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    static const unsigned char ad[] = "v\0seal\0loc";
    struct kv_buf sealed = {0}, plain = {0};
    enum kv_status st =
        ks_seal(env->root_key, ad, sizeof(ad), tk.rsa.d.data, tk.rsa.d.len, &sealed);
    if (st == KV_OK)
        st = ks_unseal(env->root_key, ad, sizeof(ad), sealed.data, sealed.len, &plain);
    if (st == KV_OK && (plain.len != tk.rsa.d.len || memcmp(plain.data, tk.rsa.d.data, plain.len)))
        st = KV_ERR_INTERNAL;
    kv_buf_wipe(&plain);
    kv_buf_free(&sealed);
    return st;
}

/* The role assignment "ra-NAME" at vault @p name's scope. */
static struct pol_role_assignment vault_role(const char *name)
{
    struct pol_role_assignment ra = {.principal_id = "o", .role = POL_ROLE_CRYPTO_USER};
    snprintf(ra.id, sizeof(ra.id), "ra-%s", name);
    snprintf(ra.vault, sizeof(ra.vault), "%s", name);
    return ra;
}

/* A vault made with its access policies and a role assignment, as one write (for the
 * deletion: one without soft delete, whose deletion takes them all). */
static enum kv_status run_vault(const struct op *op, const char *name)
{
    struct ks_vault v = {.soft_delete = op->size == 0, .retention_days = 90, .rbac = 1};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    struct pol_access_policy p = {.tenant_id = "t", .object_id = "o", .keys = POL_PERMS_ALL};
    snprintf(p.vault, sizeof(p.vault), "%s", name);
    struct pol_role_assignment ra = vault_role(name);
    struct pol_acl_change chg = {.vault = name,
                                 .clear_policies = 1,
                                 .clear_roles = 1,
                                 .policies = &p,
                                 .n_policies = 1,
                                 .roles = &ra,
                                 .n_roles = 1};
    return pol_vault_put(acl, &v, 1, &chg);
}

/* A fresh name, and the access control the run changes. */
static void vault_prepare(const struct op *op, char *name, size_t cap)
{
    pol_free(acl);
    acl = NULL;
    CHECK_ST(pol_new(dir, "t", &acl), KV_OK);
    if (acl != NULL)
        CHECK_ST(pol_attach(acl, env), KV_OK);
    fresh_name(op, name, cap);
}

/* After a vault op that succeeded (with nothing armed): the vault and its access control
 * are as @p want says, in the store and in the snapshot, which then goes. */
static void vault_is(const char *name, const char *want)
{
    char print[256];
    vault_print(name, print, sizeof(print));
    CHECK_STR(print, want);
    pol_free(acl);
    acl = NULL;
}

static void vault_made(const struct op *op, const char *name)
{
    (void)op;
    vault_is(name, "|vault KV_OK, deleted KV_ERR_VAULT_NOT_FOUND, 1/1 policies, 1/1 roles");
}

/* A fresh vault without soft delete, with its access control, to be deleted. */
static void vault_to_delete(const struct op *op, char *name, size_t cap)
{
    vault_prepare(op, name, cap);
    CHECK_ST(run_vault(op, name), KV_OK);
}

static enum kv_status run_vault_delete(const struct op *op, const char *name)
{
    (void)op;
    struct ks_deleted_vault d;
    return pol_vault_delete(acl, name, NULL, &d);
}

static void vault_gone(const struct op *op, const char *name)
{
    (void)op;
    vault_is(name, "|vault KV_ERR_VAULT_NOT_FOUND, deleted KV_ERR_VAULT_NOT_FOUND, 0/0 policies, "
                   "0/0 roles");
}

/* A soft-deleted vault that kept its access policies, to be purged with them. */
static void vault_deleted(const struct op *op, char *name, size_t cap)
{
    vault_to_delete(op, name, cap);
    struct ks_deleted_vault d;
    CHECK_ST(pol_vault_delete(acl, name, NULL, &d), KV_OK);
}

static enum kv_status run_vault_purge(const struct op *op, const char *name)
{
    (void)op;
    return pol_deleted_vault_purge(acl, name, 0);
}

/* A vault without access control, where the run puts a role assignment (whose scope must
 * exist when it is written). */
static void vault_for_role(const struct op *op, char *name, size_t cap)
{
    vault_prepare(op, name, cap);
    struct ks_vault v = {.soft_delete = 1, .retention_days = 90, .rbac = 1};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(pol_vault_put(acl, &v, 1, NULL), KV_OK);
}

static enum kv_status run_role_put(const struct op *op, const char *name)
{
    (void)op;
    struct pol_role_assignment ra = vault_role(name);
    return pol_role_put(acl, &ra);
}

static void role_made(const struct op *op, const char *name)
{
    (void)op;
    vault_is(name, "|vault KV_OK, deleted KV_ERR_VAULT_NOT_FOUND, 0/0 policies, 1/1 roles");
}

/* Custom role definitions: made (a fresh GUID) and deleted. */
static char def_guid[37];
static const char *const def_grant[] = {"Microsoft.KeyVault/vaults/keys/read",
                                        "Microsoft.KeyVault/vaults/keys/*wrap/action"};
static const char *const def_deny[] = {"Microsoft.KeyVault/vaults/keys/wrap/action"};

static void def_prepare(const struct op *op, char *name, size_t cap)
{
    vault_prepare(op, name, cap);
    snprintf(def_guid, sizeof(def_guid), "6f1c0e6a-0000-4000-8000-%012lu", iter);
}

static enum kv_status run_def_put(const struct op *op, const char *name)
{
    (void)op;
    struct pol_role_def d = {.doc = "{\"roleName\":\"r\"}"};
    snprintf(d.id, sizeof(d.id), "%s", def_guid);
    snprintf(d.name, sizeof(d.name), "role %s", name);
    int created = 0;
    return pol_role_def_put(acl, &d, def_grant, 2, def_deny, 1, &created);
}

static void def_made(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct pol_role_def d;
    CHECK_ST(pol_role_def_get(acl, def_guid, &d), KV_OK);
    CHECK(d.perms == (((pol_perms)1u << POL_KEYS_GET) | ((pol_perms)1u << POL_KEYS_LIST) |
                      ((pol_perms)1u << POL_KEYS_UNWRAP)));
    pol_role_def_clear(&d);
    pol_free(acl);
    acl = NULL;
}

static void def_to_delete(const struct op *op, char *name, size_t cap)
{
    def_prepare(op, name, cap);
    CHECK_ST(run_def_put(op, name), KV_OK);
}

static enum kv_status run_def_delete(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct pol_role_def d;
    enum kv_status st = pol_role_def_delete(acl, def_guid, &d);
    pol_role_def_clear(&d);
    return st;
}

static void def_gone(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    struct pol_role_def d;
    CHECK_ST(pol_role_def_get(acl, def_guid, &d), KV_ERR_ARM_NO_ROLE_DEFINITION);
    pol_free(acl);
    acl = NULL;
}

/* The access control part of a full restore (its keys' part is "HSM full restore"): the
 * HSM's text, exported while role assignment "ra-NAME" was the HSM's, which the restore
 * brings back. */
static char *hsm_access;

static enum kv_status hsm_access_write(const struct ks_record_op *ops, size_t n, void *arg);

static void hsm_access_prepare(const struct op *op, char *name, size_t cap)
{
    vault_prepare(op, name, cap);
    /* none of the earlier runs' assignments: each run restores one */
    CHECK_ST(pol_hsm_access_restore(acl, HSM, "{\"roleAssignments\":[],\"roleDefinitions\":[]}",
                                    hsm_access_write, NULL),
             KV_OK);
    struct pol_role_assignment ra = {.role = POL_ROLE_HSM_CRYPTO_USER, .hsm = 1};
    snprintf(ra.id, sizeof(ra.id), "ra-%s", name);
    snprintf(ra.principal_id, sizeof(ra.principal_id), "p-%s", name);
    snprintf(ra.vault, sizeof(ra.vault), HSM);
    CHECK_ST(pol_role_put(acl, &ra), KV_OK);
    cJSON_free(hsm_access);
    hsm_access = NULL;
    CHECK_ST(pol_hsm_access_export(acl, HSM, &hsm_access), KV_OK);
    CHECK_ST(pol_role_remove(acl, ra.id), KV_OK);
}

static enum kv_status hsm_access_write(const struct ks_record_op *ops, size_t n, void *arg)
{
    (void)arg;
    return ks_record_apply(env, ops, n);
}

static enum kv_status run_hsm_access_restore(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    return pol_hsm_access_restore(acl, HSM, hsm_access, hsm_access_write, NULL);
}

static void hsm_access_restored(const struct op *op, const char *name)
{
    (void)op;
    char key[KS_NAME_MAX + 8];
    struct pol_role_assignment ra;
    snprintf(key, sizeof(key), "ra-%s", name);
    CHECK(pol_role_get(acl, key, &ra) && ra.hsm && strcmp(ra.vault, HSM) == 0);
    pol_free(acl);
    acl = NULL;
    cJSON_free(hsm_access);
    hsm_access = NULL;
}

/* A Managed HSM through Resource Manager: made with its administrator "ra-NAME" and nothing
 * of a namesake's; soft-deleted, it keeps its assignment and custom role; purged, they go. */
static enum kv_status run_hsm_make(const struct op *op, const char *name)
{
    (void)op;
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7, .hsm = 1, .premium = 1};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    struct pol_role_assignment ra = {.role = POL_ROLE_HSM_ADMINISTRATOR, .hsm = 1};
    snprintf(ra.id, sizeof(ra.id), "ra-%s", name);
    snprintf(ra.principal_id, sizeof(ra.principal_id), "admin");
    snprintf(ra.vault, sizeof(ra.vault), "%s", name);
    struct pol_acl_change chg = {.vault = name,
                                 .clear_policies = 1,
                                 .clear_roles = 1,
                                 .clear_defs = 1,
                                 .roles = &ra,
                                 .n_roles = 1};
    return pol_vault_put(acl, &v, KS_VAULT_CREATE, &chg);
}

/* A custom role of Managed HSM @p name (def_guid). */
static void hsm_def_put(const char *name)
{
    struct pol_role_def d = {.doc = "{\"roleName\":\"r\"}"};
    static const char *const wrap[] = {"Microsoft.KeyVault/managedHsm/keys/wrap/action"};
    snprintf(d.id, sizeof(d.id), "%s", def_guid);
    snprintf(d.name, sizeof(d.name), "role %s", name);
    snprintf(d.hsm, sizeof(d.hsm), "%s", name);
    CHECK_ST(pol_role_def_put(acl, &d, wrap, 1, NULL, 0, NULL), KV_OK);
}

/* A fresh name that a purged HSM's custom role still names, as the keystore's sweep leaves
 * it: the new HSM's creation takes it away. */
static void hsm_leftover(const struct op *op, char *name, size_t cap)
{
    def_prepare(op, name, cap);
    hsm_def_put(name);
}

static void hsm_made(const struct op *op, const char *name)
{
    (void)op;
    struct pol_role_def d;
    CHECK_ST(pol_role_def_get(acl, def_guid, &d), KV_ERR_ARM_NO_ROLE_DEFINITION);
    vault_is(name, "|vault KV_OK, deleted KV_ERR_VAULT_NOT_FOUND, 0/0 policies, 1/1 roles");
}

/* A Managed HSM with its administrator and a custom role, to be deleted. */
static void hsm_to_delete(const struct op *op, char *name, size_t cap)
{
    def_prepare(op, name, cap);
    CHECK_ST(run_hsm_make(op, name), KV_OK);
    hsm_def_put(name);
}

static void hsm_deleted_keeps(const struct op *op, const char *name)
{
    (void)op;
    struct pol_role_def d;
    CHECK_ST(pol_role_def_get(acl, def_guid, &d), KV_OK);
    pol_role_def_clear(&d);
    vault_is(name, "|vault KV_ERR_VAULT_NOT_FOUND, deleted KV_OK, 0/0 policies, 1/1 roles");
}

/* A soft-deleted Managed HSM that kept its access control, to be purged with it. */
static void hsm_deleted(const struct op *op, char *name, size_t cap)
{
    hsm_to_delete(op, name, cap);
    struct ks_deleted_vault d;
    CHECK_ST(pol_vault_delete(acl, name, NULL, &d), KV_OK);
}

static enum kv_status run_hsm_purge(const struct op *op, const char *name)
{
    (void)op;
    return pol_deleted_vault_purge(acl, name, 1);
}

static void hsm_purged(const struct op *op, const char *name)
{
    (void)op;
    struct pol_role_def d;
    CHECK_ST(pol_role_def_get(acl, def_guid, &d), KV_ERR_ARM_NO_ROLE_DEFINITION);
    vault_is(name, "|vault KV_ERR_VAULT_NOT_FOUND, deleted KV_ERR_VAULT_NOT_FOUND, 0/0 policies, "
                   "0/0 roles");
}

/* A deleted Managed HSM that the keystore purged alone (its sweep), leaving its access
 * control for pol_vault_gone(); what failed runs before left is swept first, unarmed. */
static void hsm_swept(const struct op *op, char *name, size_t cap)
{
    hsm_deleted(op, name, cap);
    CHECK_ST(pol_sweep(acl, NULL), KV_OK); /* it is held still: kept */
    CHECK_ST(ks_deleted_vault_purge(env, name, 1, NULL, 0, NULL), KV_OK);
}

static enum kv_status run_acl_sweep(const struct op *op, const char *name)
{
    (void)op;
    int cleared = 0;
    enum kv_status st = pol_vault_gone(acl, name, &cleared);
    return st == KV_OK && !cleared ? KV_ERR_BAD_PARAM : st; /* not a clean answer */
}

/* A security domain of HSM for three certificates, made in main(). */
static struct kv_buf sd_certs[3];

static void sd_cert(struct kv_buf *out)
{
    EVP_PKEY *key = EVP_RSA_gen(2048);
    CHECK(key != NULL && testcert_make(key, 1, out));
    EVP_PKEY_free(key);
}

static enum kv_status run_security_domain(const struct op *op, const char *name)
{
    (void)op;
    (void)name;
    char *sd = NULL;
    const char *why = NULL;
    enum kv_status st = ks_hsm_security_domain(env, HSM, sd_certs, 3, 2, &sd, &why);
    if (st == KV_OK && (sd == NULL || strstr(sd, "\"enc_shares\"") == NULL))
        st = KV_ERR_BAD_PARAM; /* not a clean answer */
    cJSON_free(sd);
    return st;
}

/* A restore blob for HSM "su", of a domain secret, as `az keyvault security-domain
 * restore-blob` makes one; and a fresh Managed HSM. */
static char *sd_blob;

/* A new Managed HSM named @p name. */
static void hsm_new(const char *name)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 7, .hsm = 1, .premium = 1};
    snprintf(v.name, sizeof(v.name), "%s", name);
    CHECK_ST(ks_vault_create(env, &v), KV_OK);
}

static void hsm_fresh(const struct op *op, char *name, size_t cap)
{
    fresh_name(op, name, cap);
    hsm_new(name);
}

/* Drop HSM @p arg's uploaded domain (table `secdomain`, "NAME\0domain"). */
static enum kv_status sd_domain_drop(struct ks_txn *tx, void *arg)
{
    char k[KS_VAULT_NAME_MAX + 8];
    size_t n = strlen(arg);
    memcpy(k, arg, n + 1);
    memcpy(k + n + 1, "domain", 6);
    return ks_txn_del(tx, tx->env->db_secdomain, k, n + 7);
}

/* HSM "su" with its transfer key, as before an upload, and a restore blob made for it. */
static void hsm_before_upload(const struct op *op, char *name, size_t cap)
{
    (void)op;
    snprintf(name, cap, "su");
    if (sd_blob == NULL) {
        hsm_new(name);
        char *jwk = NULL;
        CHECK_ST(ks_hsm_transfer_key(env, name, &jwk), KV_OK);
        unsigned char domain[32];
        randombytes_buf(domain, sizeof(domain));
        sd_blob = jwk != NULL ? testsd_blob(jwk, "kvmock-domain", domain, sizeof(domain)) : NULL;
        CHECK(sd_blob != NULL);
        cJSON_free(jwk);
    }
    CHECK_ST(ks_txn_write(env, sd_domain_drop, name), KV_OK);
    CHECK(sd_records(name) == 1);
}

static enum kv_status run_transfer_key(const struct op *op, const char *name)
{
    (void)op;
    char *jwk = NULL;
    enum kv_status st = ks_hsm_transfer_key(env, name, &jwk);
    if (st == KV_OK && (jwk == NULL || strstr(jwk, "\"x5c\"") == NULL))
        st = KV_ERR_BAD_PARAM; /* not a clean answer */
    cJSON_free(jwk);
    return st;
}

static void transfer_key_made(const struct op *op, const char *name)
{
    (void)op;
    CHECK(sd_records(name) == 1);
}

static enum kv_status run_sd_upload(const struct op *op, const char *name)
{
    (void)op;
    const char *why = NULL;
    return ks_hsm_security_domain_upload(env, name, sd_blob, sd_blob ? strlen(sd_blob) : 0, &why);
}

static void sd_uploaded(const struct op *op, const char *name)
{
    (void)op;
    int yes = 0;
    CHECK_ST(ks_hsm_security_domain_uploaded(env, name, &yes), KV_OK);
    CHECK(yes == 1 && sd_records(name) == 2);
}

static const struct op ops[] = {
    {"create EC P-256", run_create, fresh_name, NULL, "c-ec", KS_KTY_EC, 0, 0, 0},
    {"create oct 256", run_create, fresh_name, NULL, "c-oct", KS_KTY_OCT, 256, 0, 0},
    {"create RSA 2048", run_create, fresh_name, NULL, "c-rsa", KS_KTY_RSA, 2048, 0, 0, 1},
    {"create EC, new version", run_create, NULL, NULL, "ec-existing", KS_KTY_EC, 0, 0, 0},
    {"import RSA 2048", run_import, fresh_name, NULL, "i-rsa", KS_KTY_RSA, 0, 0, 0, 1},
    {"import EC P-256", run_import, fresh_name, NULL, "i-ec", KS_KTY_EC, 0, 0, 0},
    {"import oct 256", run_import, fresh_name, NULL, "i-oct", KS_KTY_OCT, 0, 0, 0},
    {"import RSA, new version", run_import, NULL, NULL, "k-rsa-nv", KS_KTY_RSA, 0, 0, 0, 1},
    {"import EC P-256 by BYOK", run_byok, fresh_name, NULL, "b-ec", KS_KTY_EC, 0, 0, 0, 1},
    {"unwrap RSA-OAEP-256", run_keyop, keyop_prepare, keyop_uncache, "k-rsa", 0, 0,
     KS_ALG_RSA_OAEP_256, KS_OP_UNWRAP},
    {"decrypt RSA-OAEP", run_keyop, keyop_prepare, keyop_uncache, "k-rsa", 0, 0, KS_ALG_RSA_OAEP,
     KS_OP_DECRYPT},
    {"sign PS256", run_keyop, keyop_prepare, keyop_uncache, "k-rsa", 0, 0, KS_ALG_PS256,
     KS_OP_SIGN},
    {"wrap RSA1_5", run_keyop, keyop_prepare, keyop_uncache, "k-rsa", 0, 0, KS_ALG_RSA1_5,
     KS_OP_WRAP},
    {"encrypt RSA-OAEP-256", run_keyop, keyop_prepare, keyop_uncache, "k-rsa", 0, 0,
     KS_ALG_RSA_OAEP_256, KS_OP_ENCRYPT},
    {"sign ES256", run_keyop, keyop_prepare, keyop_uncache, "k-ec", 0, 0, KS_ALG_ES256, KS_OP_SIGN},
    {"verify ES256", run_keyop, keyop_prepare, keyop_uncache, "k-ec", 0, 0, KS_ALG_ES256,
     KS_OP_VERIFY},
    {"unwrap A256KW", run_keyop, keyop_prepare, keyop_uncache, "k-oct", 0, 0, KS_ALG_A256KW,
     KS_OP_UNWRAP},
    {"wrap A256KW", run_keyop, keyop_prepare, keyop_uncache, "k-oct", 0, 0, KS_ALG_A256KW,
     KS_OP_WRAP},
    {"decrypt A256GCM", run_keyop, keyop_prepare, keyop_uncache, "k-oct", 0, 0, KS_ALG_A256GCM,
     KS_OP_DECRYPT},
    {"encrypt A256CBCPAD", run_keyop, keyop_prepare, keyop_uncache, "k-oct", 0, 0,
     KS_ALG_A256CBCPAD, KS_OP_ENCRYPT},
    {"rotate EC", run_rotate, NULL, NULL, "ec-existing", 0, 0, 0, 0},
    {"rotate oct", run_rotate, NULL, NULL, "k-oct2", 0, 0, 0, 0},
    {"backup RSA (2 versions)", run_backup, NULL, NULL, "k-rsa", 0, 0, 0, 0},
    {"backup EC", run_backup, NULL, NULL, "k-ec", 0, 0, 0, 0},
    {"restore RSA (2 versions)", run_restore, NULL, restore_after, "bk", 0, 0, 0, 0},
    {"HSM full backup", run_hsm_backup, NULL, NULL, "-", 0, 0, 0, 0},
    {"HSM selective restore", run_hsm_restore, hsm_key_gone, NULL, "h-ec", 0, 1, 0, 1},
    {"HSM full restore", run_hsm_restore, hsm_extra, hsm_restored, "h-extra", 0, 3, 0, 0},
    {"HSM security domain", run_security_domain, NULL, NULL, "-", 0, 0, 0, 0},
    {"HSM transfer key", run_transfer_key, hsm_fresh, transfer_key_made, "tk", 0, 0, 0, 0, 1},
    {"HSM security domain upload", run_sd_upload, hsm_before_upload, sd_uploaded, "su", 0, 0, 0, 0},
    {"HSM access control restore", run_hsm_access_restore, hsm_access_prepare, hsm_access_restored,
     "hacc", 0, 0, 0, 0},
    {"seal and unseal", run_seal, NULL, NULL, "-", 0, 0, 0, 0},
    {"vault firewall rules", run_net_rules, NULL, NULL, "-", 0, 0, 0, 0},
    {"client assertions", run_assertions, NULL, NULL, "-", 0, 0, 0, 0},
    {"secure key release", run_release, NULL, NULL, "-", 0, 0, 0, 0},
    {"create oct-HSM exportable", run_exportable, fresh_name, NULL, "x-new", KS_KTY_OCT, 256, 0, 0},
    {"import EC-HSM exportable", run_exportable, fresh_name, NULL, "x-imp", KS_KTY_EC, 0, 0, 0},
    {"update attributes and tags", run_update, NULL, NULL, "k-oct2", 0, 0, 0, 0},
    {"replace a release policy", run_update, NULL, NULL, "x-ec", KS_KTY_EC, 0, 0, 0},
    {"release RSA (keystore)", run_ks_release, NULL, NULL, "x-rsa", 0,
     KS_RELEASE_RSA_AES_KEY_WRAP_256, 0, 0},
    {"release EC (keystore)", run_ks_release, NULL, NULL, "x-ec", 0,
     KS_RELEASE_CKM_RSA_AES_KEY_WRAP, 0, 0},
    {"release oct (keystore)", run_ks_release, NULL, NULL, "x-oct", 0,
     KS_RELEASE_RSA_AES_KEY_WRAP_384, 0, 0},
    /* before the ops that leave many vaults: it looks at every name access control names */
    {"access control sweep", run_acl_sweep, hsm_swept, hsm_purged, "hs", 0, 0, 0, 0},
    {"vault with access control", run_vault, vault_prepare, vault_made, "acl", 0, 0, 0, 0},
    {"role assignment at a vault", run_role_put, vault_for_role, role_made, "rol", 0, 0, 0, 0},
    {"vault deletion, its access", run_vault_delete, vault_to_delete, vault_gone, "del", 0, 1, 0,
     0},
    {"deleted vault purge", run_vault_purge, vault_deleted, vault_gone, "pur", 0, 0, 0, 0},
    {"HSM through Resource Manager", run_hsm_make, hsm_leftover, hsm_made, "hm", 0, 0, 0, 0},
    {"HSM deletion keeps its access", run_vault_delete, hsm_to_delete, hsm_deleted_keeps, "hd", 0,
     0, 0, 0},
    {"deleted HSM purge", run_hsm_purge, hsm_deleted, hsm_purged, "hp", 0, 0, 0, 0},
    {"custom role definition", run_def_put, def_prepare, def_made, "def", 0, 0, 0, 0},
    {"custom role deletion", run_def_delete, def_to_delete, def_gone, "dd", 0, 0, 0, 0},
};

/* ---- the loop ------------------------------------------------------------------------- */

static int clean_error(enum kv_status st)
{
    return st == KV_ERR_NOMEM || st == KV_ERR_STORE || st == KV_ERR_CRYPTO || st == KV_ERR_INTERNAL;
}

struct tally {
    unsigned long points, runs, ok_runs;
    unsigned long by_status[KV_STATUS_COUNT];
};

static unsigned long total_points, total_ops;

static void fault_loop(const struct op *op)
{
    char name[KS_NAME_MAX + 1], before[4096], after[4096];
    struct tally t = {0};
    /* one run without failures: how many allocations, and where keygen is */
    snprintf(name, sizeof(name), "%s", op->target);
    if (op->prepare)
        op->prepare(op, name, sizeof(name));
    measuring = 1;
    n_windows = 0;
    ah_arm(0);
    enum kv_status st = op->run(op, name);
    unsigned long clean_count = ah_count();
    measuring = 0;
    CHECK_ST(st, KV_OK);
    if (op->after_success)
        op->after_success(op, name);

    time_t t0 = time(NULL);
    int failures_before = check_failures;
    for (unsigned long n = 1;; n++) {
        if (!tested(op->sparse, n))
            continue;
        snprintf(name, sizeof(name), "%s", op->target);
        if (op->prepare)
            op->prepare(op, name, sizeof(name));
        fingerprint(name, before, sizeof(before));
        memos_free();
        memos_new();
        unsigned gen = ah_generation_next();
        ah_arm(n);
        st = op->run(op, name);
        int hit = ah_disarm();
        t.runs++;
        t.by_status[st < KV_STATUS_COUNT ? st : KV_ERR_INTERNAL]++;
        if ((st == KV_OK || op->run == run_keyop) && op->after_success)
            op->after_success(op, name); /* a key operation may cache the key and then fail */
        memos_free();
        size_t left = ah_live_since(gen, 0);
        if (left != 0) {
            fprintf(stderr, "%s: failing allocation %lu (%s) left %zu block(s):\n", op->what, n,
                    kv_status_name(st), left);
            ah_live_since(gen, 1);
        }
        memos_new();
        if (left != 0) {
            /* again, recording where each block comes from */
            snprintf(name, sizeof(name), "%s", op->target);
            if (op->prepare)
                op->prepare(op, name, sizeof(name));
            memos_free();
            memos_new();
            gen = ah_generation_next();
            ah_record_frames(1);
            ah_arm(n);
            enum kv_status st2 = op->run(op, name);
            ah_disarm();
            ah_record_frames(0);
            if ((st2 == KV_OK || op->run == run_keyop) && op->after_success)
                op->after_success(op, name);
            memos_free();
            /* LMDB keeps the dirty pages it frees on a list of its own for the
             * next transaction: one that needed a new page shows a block left
             * behind that a second run does not leave. What a second run leaves
             * too is a leak. */
            if (ah_live_since(gen, 1) != 0)
                check_failures++;
            else
                fprintf(stderr, "  (not left by a second run: a cache, not counted)\n");
            memos_new();
        }
        if (st != KV_OK) {
            if (!hit || !clean_error(st)) {
                fprintf(stderr, "%s: failing allocation %lu gave %s%s\n", op->what, n,
                        kv_status_name(st), hit ? "" : " without reaching it");
                check_failures++;
            }
            fingerprint(name, after, sizeof(after));
            if (strcmp(before, after) != 0) {
                fprintf(stderr, "%s: failing allocation %lu (%s) changed the store:\n  %s\n  %s\n",
                        op->what, n, kv_status_name(st), before, after);
                check_failures++;
            }
        } else {
            t.ok_runs++;
        }
        if (hit)
            t.points++;
        if (!hit) {
            CHECK_ST(st, KV_OK);
            break;
        }
        if (check_failures - failures_before > 5) {
            fprintf(stderr, "%s: too many failures, next operation\n", op->what);
            break;
        }
    }
    if (LEAK_CHECK()) {
        fprintf(stderr, "%s: LeakSanitizer found leaks (above)\n", op->what);
        check_failures++;
    }
    total_points += t.points;
    total_ops++;
    printf("%-26s %5lu allocations, %5lu failed in turn (%lu runs, %lu s): ", op->what, clean_count,
           t.points, t.runs, (unsigned long)(time(NULL) - t0));
    for (int s = 0; s < KV_STATUS_COUNT; s++)
        if (t.by_status[s])
            printf("%s %lu ", kv_status_name((enum kv_status)s), t.by_status[s]);
    printf("\n");
    fflush(stdout);
}

/* ---- set-up ----------------------------------------------------------------------------- */

static void put_key(const char *name, const struct ks_jwk *jwk)
{
    struct ks_import p = {.jwk = *jwk, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_import(env, VAULT, name, &p, &k), KV_OK);
    ks_key_free(k);
}

/* Make the input of every key operation in the table (with the server, no failures armed). */
static void make_inputs(void)
{
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        const struct op *op = &ops[i];
        if (op->run != run_keyop)
            continue;
        struct kv_buf *in = &op_input[op->alg][__builtin_ctz(op->key_op)];
        if (in->data != NULL || op->key_op == KS_OP_VERIFY)
            continue;
        unsigned enc_op = op->key_op;
        size_t len = 32;
        if (op->key_op == KS_OP_DECRYPT)
            enc_op = KS_OP_ENCRYPT;
        else if (op->key_op == KS_OP_UNWRAP)
            enc_op = KS_OP_WRAP;
        else if (op->key_op == KS_OP_VERIFY)
            enc_op = KS_OP_SIGN;
        struct kv_buf plain = {0};
        CHECK_ST(kv_buf_alloc(len, &plain), KV_OK);
        randombytes_buf(plain.data, len);
        if (enc_op == op->key_op) {
            *in = plain;
            continue;
        }
        struct ks_op_params p = {.alg = op->alg, .value = plain};
        struct ks_op_result r = {0};
        CHECK_ST(ks_key_op(env, VAULT, op->target, NULL, enc_op, &p, &r), KV_OK);
        kv_buf_free(&plain);
        if (op->alg == KS_ALG_A256GCM) {
            gcm_iv = r.iv;
            gcm_tag = r.tag;
            r.iv = r.tag = (struct kv_buf){0};
        }
        *in = r.value;
        r.value = (struct kv_buf){0};
        ks_op_result_clear(&r);
    }
}

int main(void)
{
    if (ah_install() != 0) {
        fprintf(stderr, "OpenSSL allocated before the allocation hooks were installed\n");
        return 1;
    }
    kv_log_set_level((enum kv_log_level) - 1); /* the store logs each failed transaction */
    {
        /* the x5c JWKS: the certificate's PEM body on one line */
        size_t n = (size_t)snprintf(rel_x5c_jwks, sizeof(rel_x5c_jwks),
                                    "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"c\",\"x5c\":[\"");
        const char *body = strchr(testassert_cert_pem, '\n') + 1;
        const char *end = strstr(body, "-----END");
        for (const char *c = body; c < end && n + 8 < sizeof(rel_x5c_jwks); c++)
            if (*c != '\n')
                rel_x5c_jwks[n++] = *c;
        snprintf(rel_x5c_jwks + n, sizeof(rel_x5c_jwks) - n, "\"]}]}");
    }
    if (tk_store_open(dir, VAULT, &env, &tk) != 0) {
        fprintf(stderr, "cannot open the store with the test keys in %s\n", dir);
        return 1;
    }

    /* the keys the operations use */
    put_key("k-rsa", &tk.rsa);
    put_key("k-rsa", &tk.rsa); /* two versions */
    put_key("k-rsa-nv", &tk.rsa);
    put_key("k-ec", &tk.ec);
    put_key("k-oct", &tk.oct);
    put_key("k-oct2", &tk.oct);
    put_key("ec-existing", &tk.ec);
    put_key("bk", &tk.rsa);
    put_key("bk", &tk.rsa);
    CHECK_ST(ks_key_backup(env, VAULT, "bk", &backup_blob), KV_OK);
    struct ks_key *gone = NULL;
    CHECK_ST(ks_key_delete(env, VAULT, "bk", &gone), KV_OK);
    ks_key_free(gone);
    make_inputs();
    for (size_t i = 0; i < 3; i++)
        sd_cert(&sd_certs[i]);
    {
        /* a Managed HSM: h-rsa with two versions and a rotation policy, h-ec, and h-oct
         * soft-deleted; its full backup holds the first two */
        struct ks_vault h = {.soft_delete = 1, .retention_days = 7, .premium = 1, .hsm = 1};
        snprintf(h.name, sizeof(h.name), HSM);
        snprintf(h.tenant_id, sizeof(h.tenant_id), "t");
        CHECK_ST(ks_vault_put(env, &h), KV_OK);
        put_hsm_key("h-rsa", &tk.rsa);
        put_hsm_key("h-rsa", &tk.rsa);
        put_hsm_key("h-ec", &tk.ec);
        put_hsm_key("h-oct", &tk.oct);
        struct ks_rotation_policy in = {.expiry = "P60D",
                                        .expiry_s = 60 * 86400,
                                        .n_actions = 1,
                                        .actions = {{.rotate = 1,
                                                     .after_create = "P30D",
                                                     .after_create_s = 30 * 86400}}},
                                  pol;
        CHECK_ST(ks_rotation_policy_set(env, HSM, "h-rsa", &in, &pol), KV_OK);
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_delete(env, HSM, "h-oct", &k), KV_OK);
        ks_key_free(k);
        size_t keys = 0;
        CHECK_ST(ks_hsm_backup(env, HSM, NULL, &hsm_blob, &keys), KV_OK);
        CHECK(keys == 2);
    }
    {
        /* secure key release: VAULT made premium, exportable keys, a recipient's RSA key */
        struct ks_vault v;
        CHECK_ST(ks_vault_get(env, VAULT, &v), KV_OK);
        v.premium = 1;
        CHECK_ST(ks_vault_put(env, &v), KV_OK);
        struct ks_release_policy rp = {.set = 1, .data = (char *)ks_policy};
        const struct ks_jwk *jwks[] = {&tk.rsa, &tk.ec, &tk.oct};
        const char *names[] = {"x-rsa", "x-ec", "x-oct"};
        for (size_t i = 0; i < 3; i++) {
            struct ks_import p = {.jwk = *jwks[i],
                                  .hsm = 1,
                                  .attrs = {.enabled = 1, .exportable = 1},
                                  .release_policy = &rp};
            struct ks_key *k = NULL;
            CHECK_ST(ks_key_import(env, VAULT, names[i], &p, &k), KV_OK);
            ks_key_free(k);
        }
        rcpt_n = tk.rsa.n; /* the test RSA key's public half stands for the recipient's */
        rcpt_e = tk.rsa.e;
    }
    {
        /* bring your own key: the KEK, and the test EC key wrapped for it */
        struct ks_import p = {
            .jwk = tk.rsa, .hsm = 1, .ops = KS_OP_IMPORT, .ops_set = 1, .attrs = {.enabled = 1}};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_import(env, VAULT, "kek", &p, &k), KV_OK);
        ks_key_free(k);
        struct ks_material *m = NULL;
        CHECK_ST(ks_material_from_jwk(&tk.ec, &m), KV_OK);
        if (m != NULL)
            CHECK_ST(ks_material_release(m, byok.enc, &tk.rsa.n, &tk.rsa.e, &byok.ciphertext),
                     KV_OK);
        ks_material_free(m);
    }
    /* verify ES256 takes a digest and a signature: sign a digest first */
    {
        struct kv_buf digest = {0};
        CHECK_ST(kv_buf_alloc(32, &digest), KV_OK);
        randombytes_buf(digest.data, 32);
        struct ks_op_params p = {.alg = KS_ALG_ES256, .value = digest};
        struct ks_op_result r = {0};
        CHECK_ST(ks_key_op(env, VAULT, "k-ec", NULL, KS_OP_SIGN, &p, &r), KV_OK);
        kv_buf_free(&op_input[KS_ALG_ES256][__builtin_ctz(KS_OP_VERIFY)]);
        op_input[KS_ALG_ES256][__builtin_ctz(KS_OP_VERIFY)] = r.value; /* signature */
        kv_buf_free(&op_input[KS_ALG_ES256][__builtin_ctz(KS_OP_SIGN)]);
        op_input[KS_ALG_ES256][__builtin_ctz(KS_OP_SIGN)] = digest;
        r.value = (struct kv_buf){0};
        ks_op_result_clear(&r);
    }
    if (check_failures)
        CHECK_DONE();

    /* Warm-up: OpenSSL fetches and caches its algorithms, and sets up its
     * per-thread error state, the first time each is used. */
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
        char name[KS_NAME_MAX + 1];
        snprintf(name, sizeof(name), "%s", ops[i].target);
        if (ops[i].prepare)
            ops[i].prepare(&ops[i], name, sizeof(name));
        enum kv_status st = ops[i].run(&ops[i], name);
        if (st != KV_OK && ops[i].run != run_keyop)
            fprintf(stderr, "warm-up %s: %s\n", ops[i].what, kv_status_name(st));
        if (st == KV_OK && ops[i].after_success)
            ops[i].after_success(&ops[i], name);
    }

    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        fault_loop(&ops[i]);
    printf("%lu operations, %lu allocation points failed in turn\n", total_ops, total_points);

    for (size_t i = 0; i < KS_ALG_COUNT; i++)
        for (size_t j = 0; j < 8; j++)
            kv_buf_free(&op_input[i][j]);
    kv_buf_free(&backup_blob);
    kv_buf_free(&hsm_blob);
    for (size_t i = 0; i < 3; i++)
        kv_buf_free(&sd_certs[i]);
    cJSON_free(sd_blob);
    kv_buf_free(&byok.ciphertext);
    kv_buf_free(&gcm_iv);
    kv_buf_free(&gcm_tag);
    tk_free(&tk);
    pol_free(acl);
    ks_close(env);
    check_remove_dir(dir);
    CHECK_DONE();
}
