#define _GNU_SOURCE /* memmem */
/*
 * The key store: vaults, versions, paging, key operations, transactions that
 * survive a full map, sealing at rest and persistence across a reopen.
 */
#include <dirent.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "ks.h"
#include "kv_buf.h"
#include "store.h" /* ks_txn_write(), for the group commit */
#include "testkeyops.h"
#include "testrecords.h"

#include <pthread.h>
#include <semaphore.h>

#define DIR_TEMPLATE "/tmp/kvmock-store-XXXXXX" /* mkdtemp() fills in the X's */
static char dir[sizeof(DIR_TEMPLATE)];

static struct ks_env *open_store(size_t map_size)
{
    struct ks_env *env = NULL;
    struct ks_open_opts o = {.data_dir = dir, .map_size = map_size, .cache_entries = 4};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    return env;
}

static void put_vault(struct ks_env *env, const char *name)
{
    struct ks_vault v = {.soft_delete = 1, .retention_days = 90};
    snprintf(v.name, sizeof(v.name), "%s", name);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
}

static struct ks_key *create(struct ks_env *env, const char *vault, const char *name,
                             enum ks_kty kty)
{
    struct ks_create p = {.kty = kty, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_create(env, vault, name, &p, &k), KV_OK);
    return k;
}

static int is_version(const char *v)
{
    if (strlen(v) != 32)
        return 0;
    for (const char *p = v; *p; p++) {
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return 0;
    }
    return 1;
}

/* Whether @p needle occurs anywhere in the files of the data folder. */
static int data_contains(const unsigned char *needle, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/kvmock.mdb", dir);
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return 0;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *all = malloc((size_t)size);
    int found = 0;
    if (all != NULL && fread(all, 1, (size_t)size, f) == (size_t)size)
        found = memmem(all, (size_t)size, needle, len) != NULL;
    free(all);
    fclose(f);
    return found;
}

static void vaults(struct ks_env *env)
{
    struct ks_vault v;
    CHECK_ST(ks_vault_get(env, "nosuch", &v), KV_ERR_VAULT_NOT_FOUND);
    put_vault(env, "default");
    CHECK_ST(ks_vault_get(env, "DEFAULT", &v), KV_OK);
    CHECK_STR(v.name, "default");
    CHECK(v.soft_delete && v.retention_days == 90);
    int days = 0;
    CHECK_STR(ks_vault_recovery_level(&v, &days), "Recoverable+Purgeable");
    CHECK(days == 90);
    struct ks_vault bad = {.name = "Bad_Name", .retention_days = 90};
    CHECK_ST(ks_vault_put(env, &bad), KV_ERR_BAD_PARAM);
}

static void keys(struct ks_env *env)
{
    struct ks_key *k1 = create(env, "default", "Disk-Key", KS_KTY_RSA);
    struct ks_key *k2 = create(env, "default", "disk-key", KS_KTY_RSA); /* same name: new version */
    if (k1 == NULL || k2 == NULL)
        goto out;
    CHECK(is_version(k1->version) && is_version(k2->version));
    CHECK(strcmp(k1->version, k2->version) != 0);
    CHECK_STR(k2->name, "disk-key"); /* names match case-insensitively; each version keeps its spelling */
    CHECK(k1->pub.n.len == 256 && k1->pub.size_bits == 2048);
    CHECK(k1->ops == (KS_OP_ENCRYPT | KS_OP_DECRYPT | KS_OP_SIGN | KS_OP_VERIFY | KS_OP_WRAP |
                      KS_OP_UNWRAP));
    CHECK(k1->attrs.enabled && k1->attrs.created > 0);
    CHECK_STR(k1->recovery_level, "Recoverable+Purgeable");

    /* get: current and explicit versions */
    struct ks_key *g = NULL;
    CHECK_ST(ks_key_get(env, "default", "DISK-KEY", NULL, &g), KV_OK);
    CHECK(g != NULL && strcmp(g->version, k2->version) == 0);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_key_get(env, "default", "disk-key", k1->version, &g), KV_OK);
    CHECK(g != NULL && g->pub.n.len == k1->pub.n.len &&
          memcmp(g->pub.n.data, k1->pub.n.data, g->pub.n.len) == 0);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_key_get(env, "default", "disk-key", "00000000000000000000000000000000", &g),
             KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "default", "disk-key", "not-a-version", &g), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "default", "nosuch", NULL, &g), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_key_get(env, "other", "disk-key", NULL, &g), KV_ERR_VAULT_NOT_FOUND);

    /* key operations on either version; the old one keeps working */
    unsigned char secret[32];
    randombytes_buf(secret, sizeof(secret));
    struct ks_op_params p = {.alg = KS_ALG_RSA_OAEP_256, .value = {secret, sizeof(secret)}};
    struct ks_op_result wrapped = {0}, unwrapped = {0};
    CHECK_ST(ks_key_op(env, "default", "disk-key", k1->version, KS_OP_WRAP, &p, &wrapped), KV_OK);
    CHECK_STR(wrapped.version, k1->version);
    struct ks_op_params q = {.alg = KS_ALG_RSA_OAEP_256, .value = wrapped.value};
    CHECK_ST(ks_key_op(env, "default", "disk-key", k1->version, KS_OP_UNWRAP, &q, &unwrapped),
             KV_OK);
    CHECK(unwrapped.value.len == 32 && memcmp(unwrapped.value.data, secret, 32) == 0);
    ks_op_result_clear(&unwrapped);
    /* the current version cannot unwrap what the old one wrapped */
    CHECK_ST(ks_key_op(env, "default", "disk-key", NULL, KS_OP_UNWRAP, &q, &unwrapped),
             KV_ERR_CRYPTO_FAILED);
    ks_op_result_clear(&unwrapped);
    ks_op_result_clear(&wrapped);

    /* an operation outside key_ops is forbidden */
    struct ks_create sv = {.kty = KS_KTY_RSA, .ops = KS_OP_SIGN | KS_OP_VERIFY, .ops_set = 1,
                          .attrs = {.enabled = 1}};
    struct ks_key *signer = NULL;
    CHECK_ST(ks_key_create(env, "default", "signer", &sv, &signer), KV_OK);
    CHECK_ST(ks_key_op(env, "default", "signer", NULL, KS_OP_WRAP, &p, &wrapped),
             KV_ERR_KEY_OP_FORBIDDEN);
    ks_key_free(signer);

    /* bad parameters change nothing */
    struct ks_create bad = {.kty = KS_KTY_RSA, .size_bits = 1024};
    struct ks_key *nk = NULL;
    CHECK_ST(ks_key_create(env, "default", "weak", &bad, &nk), KV_ERR_BAD_KEY_SIZE);
    CHECK_ST(ks_key_get(env, "default", "weak", NULL, &nk), KV_ERR_KEY_NOT_FOUND);
    struct ks_create ec = {.kty = KS_KTY_EC};
    CHECK_ST(ks_key_create(env, "default", "bad_name", &ec, &nk), KV_ERR_BAD_KEY_NAME);
    CHECK_ST(ks_key_create(env, "nosuch", "k", &ec, &nk), KV_ERR_VAULT_NOT_FOUND);
    CHECK(nk == NULL);

    /* new_only: the first create makes the key, the next finds it and writes nothing */
    struct ks_create once = {.kty = KS_KTY_EC, .attrs = {.enabled = 1}, .new_only = 1};
    struct ks_key *first = NULL;
    CHECK_ST(ks_key_create(env, "default", "once", &once, &first), KV_OK);
    CHECK_ST(ks_key_create(env, "default", "once", &once, &nk), KV_ERR_KEY_EXISTS);
    CHECK(nk == NULL);
    struct ks_key_page *versions = NULL;
    CHECK_ST(ks_key_list_versions(env, "default", "once", NULL, 25, &versions), KV_OK);
    CHECK(versions != NULL && versions->count == 1);
    ks_key_page_free(versions);
    ks_key_free(first);

    /* the store holds the public modulus in the clear (the scan can find things) */
    char *n64 = NULL;
    CHECK_ST(kv_b64url_encode(k1->pub.n.data, k1->pub.n.len, &n64), KV_OK);
    CHECK(n64 != NULL && data_contains((const unsigned char *)n64, strlen(n64)));
    free(n64);
out:
    ks_key_free(k1);
    ks_key_free(k2);
}

static void paging(struct ks_env *env)
{
    put_vault(env, "paged");
    char name[32];
    for (int i = 0; i < 7; i++) {
        snprintf(name, sizeof(name), "ec-%02d", i);
        ks_key_free(create(env, "paged", name, KS_KTY_EC));
    }
    ks_key_free(create(env, "paged", "ec-03", KS_KTY_EC));

    /* keys, three per page, in name order, each once */
    char token[KS_SKIPTOKEN_MAX] = "";
    int seen = 0, pages = 0;
    for (;;) {
        struct ks_key_page *page = NULL;
        CHECK_ST(ks_key_list(env, "paged", token, 3, &page), KV_OK);
        if (page == NULL)
            break;
        pages++;
        CHECK(page->count <= 3);
        for (size_t i = 0; i < page->count; i++) {
            snprintf(name, sizeof(name), "ec-%02d", seen++);
            CHECK_STR(page->items[i]->name, name);
        }
        snprintf(token, sizeof(token), "%s", page->next);
        ks_key_page_free(page);
        if (token[0] == '\0' || pages > 10)
            break;
    }
    CHECK(seen == 7 && pages == 3);

    /* versions of one key, one per page */
    token[0] = '\0';
    seen = 0;
    for (pages = 0; pages < 10; pages++) {
        struct ks_key_page *page = NULL;
        CHECK_ST(ks_key_list_versions(env, "paged", "EC-03", token, 1, &page), KV_OK);
        if (page == NULL)
            break;
        seen += (int)page->count;
        snprintf(token, sizeof(token), "%s", page->next);
        ks_key_page_free(page);
        if (token[0] == '\0')
            break;
    }
    CHECK(seen == 2);

    struct ks_key_page *page = NULL;
    CHECK_ST(ks_key_list(env, "paged", "zz-not-hex", 3, &page), KV_ERR_BAD_SKIPTOKEN);
    CHECK_ST(ks_key_list(env, "paged", NULL, 0, &page), KV_ERR_BAD_MAXRESULTS);
    CHECK_ST(ks_key_list(env, "paged", NULL, 26, &page), KV_ERR_BAD_MAXRESULTS);
    CHECK_ST(ks_key_list_versions(env, "paged", "nosuch", NULL, 3, &page), KV_ERR_KEY_NOT_FOUND);
    CHECK(page == NULL);
    /* an empty vault lists nothing */
    put_vault(env, "empty");
    CHECK_ST(ks_key_list(env, "empty", NULL, 25, &page), KV_OK);
    CHECK(page != NULL && page->count == 0 && page->next[0] == '\0');
    ks_key_page_free(page);
}

/* Many writes into a tiny map: every one lands, the map grows. */
static void map_growth(void)
{
    struct ks_env *env = open_store(64 * 1024);
    if (env == NULL)
        return;
    put_vault(env, "grow");
    char name[32];
    for (int i = 0; i < 60; i++) {
        snprintf(name, sizeof(name), "k%03d", i);
        struct ks_create p = {.kty = KS_KTY_OCT, .attrs = {.enabled = 1}};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_create(env, "grow", name, &p, &k), KV_OK);
        ks_key_free(k);
    }
    ks_close(env);
    env = open_store(0);
    int count = 0;
    char token[KS_SKIPTOKEN_MAX] = "";
    for (int pages = 0; env != NULL && pages < 10; pages++) {
        struct ks_key_page *page = NULL;
        CHECK_ST(ks_key_list(env, "grow", token, 25, &page), KV_OK);
        if (page == NULL)
            break;
        count += (int)page->count;
        snprintf(token, sizeof(token), "%s", page->next);
        ks_key_page_free(page);
        if (token[0] == '\0')
            break;
    }
    CHECK(count == 60);
    ks_close(env);
}

/* Writers whose bodies hand a key back (update, delete and recover, restore) in batches
 * with creates that fill a tiny map: a batch that meets the full map runs its bodies
 * again after the map grows, and each key handed back is the last run's (the sanitizer
 * build's leak check sees any that was dropped). */
struct filler_arg {
    struct ks_env *env;
    int done;
};

static void *filler_thread(void *arg)
{
    struct filler_arg *f = arg;
    char name[32], tag_names[15][8], value[257];
    char *names[15], *values[15];
    memset(value, 'v', 256);
    value[256] = '\0';
    for (int t = 0; t < 15; t++) {
        snprintf(tag_names[t], sizeof(tag_names[t]), "t%02d", t);
        names[t] = tag_names[t];
        values[t] = value;
    }
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof(name), "fill%03d", i);
        struct ks_create p = {
            .kty = KS_KTY_OCT, .attrs = {.enabled = 1}, .tags = {15, names, values}};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_create(f->env, "grow", name, &p, &k), KV_OK);
        ks_key_free(k);
    }
    __atomic_store_n(&f->done, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void bodies_run_again_after_growth(void)
{
    struct ks_env *env = open_store(64 * 1024);
    if (env == NULL)
        return;
    put_vault(env, "grow");
    ks_key_free(create(env, "grow", "upd", KS_KTY_OCT));
    ks_key_free(create(env, "grow", "life", KS_KTY_OCT));
    ks_key_free(create(env, "grow", "back", KS_KTY_OCT));
    struct filler_arg f = {env, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, filler_thread, &f) == 0);
    int rounds = 0;
    for (; !__atomic_load_n(&f.done, __ATOMIC_SEQ_CST); rounds++) {
        struct ks_update u = {.enabled_set = 1, .enabled = rounds % 2};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_update(env, "grow", "upd", NULL, &u, &k), KV_OK);
        ks_key_free(k);
        k = NULL;
        CHECK_ST(ks_key_delete(env, "grow", "life", &k), KV_OK);
        ks_key_free(k);
        k = NULL;
        CHECK_ST(ks_deleted_recover(env, "grow", "life", &k), KV_OK);
        ks_key_free(k);
        k = NULL;
        struct kv_buf blob = {0};
        CHECK_ST(ks_key_backup(env, "grow", "back", &blob), KV_OK);
        CHECK_ST(ks_key_delete(env, "grow", "back", &k), KV_OK);
        ks_key_free(k);
        k = NULL;
        CHECK_ST(ks_deleted_purge(env, "grow", "back"), KV_OK);
        CHECK_ST(ks_key_restore(env, "grow", blob.data, blob.len, NULL, &k), KV_OK);
        ks_key_free(k);
        kv_buf_free(&blob);
    }
    pthread_join(t, NULL);
    CHECK(rounds > 0);
    ks_close(env);
}

/* ---- group commit: concurrent writers share commits, each in its own child ---- */

#define WRITERS 8
#define WRITES 150

struct writer_arg {
    struct ks_env *env;
    int id;
    int wrong; /* statuses other than the expected one */
};

struct put_one {
    MDB_dbi dbi;
    char key[32];
    char val[300];
    int fail; /* the body writes, then fails: the write must not land */
};

static enum kv_status put_one_fn(struct ks_txn *tx, void *arg)
{
    struct put_one *p = arg;
    enum kv_status st = ks_txn_put(tx, p->dbi, p->key, strlen(p->key), p->val, strlen(p->val));
    return st == KV_OK && p->fail ? KV_ERR_BAD_PARAM : st;
}

static void *writer_thread(void *arg)
{
    struct writer_arg *w = arg;
    for (int i = 0; i < WRITES; i++) {
        struct put_one p = {.dbi = w->env->db_tables[KS_TABLE_ROLES], .fail = i % 10 == 3};
        snprintf(p.key, sizeof(p.key), "w%d-%03d", w->id, i);
        memset(p.val, 'a' + w->id, sizeof(p.val) - 1);
        p.val[sizeof(p.val) - 1] = '\0';
        if (ks_txn_write(w->env, put_one_fn, &p) != (p.fail ? KV_ERR_BAD_PARAM : KV_OK))
            w->wrong++;
    }
    return NULL;
}

struct count_arg {
    int count, bad;
};

static enum kv_status count_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                               void *arg)
{
    struct count_arg *c = arg;
    int id = -1, i = -1;
    char k[32];
    snprintf(k, sizeof(k), "%.*s", (int)key_len, (const char *)key);
    if (sscanf(k, "w%d-%d", &id, &i) != 2 || i % 10 == 3 || val_len != 299 ||
        ((const char *)val)[0] != 'a' + id)
        c->bad++;
    c->count++;
    return KV_OK;
}

static void group_commit(void)
{
    /* a small map, so that batches also meet a full map and go on after it grows */
    struct ks_env *env = open_store(64 * 1024);
    if (env == NULL)
        return;
    pthread_t t[WRITERS];
    struct writer_arg w[WRITERS];
    for (int i = 0; i < WRITERS; i++) {
        w[i] = (struct writer_arg){env, i, 0};
        CHECK(pthread_create(&t[i], NULL, writer_thread, &w[i]) == 0);
    }
    int wrong = 0;
    for (int i = 0; i < WRITERS; i++) {
        pthread_join(t[i], NULL);
        wrong += w[i].wrong;
    }
    CHECK(wrong == 0);
    struct count_arg c = {0, 0};
    CHECK_ST(ks_record_scan(env, KS_TABLE_ROLES, "w", 1, NULL, 0, count_fn, &c), KV_OK);
    CHECK(c.bad == 0 && c.count == WRITERS * (WRITES - WRITES / 10));
    ks_close(env);
}

/* ---- records written by earlier versions, with every member spelled out ------------- */

struct rewrite_arg {
    struct ks_env *env;
    const char *vault, *name, *version;
};

/* The `keys` key of @p a's version in @p key (128 bytes); its length. The `heads` key of
 * its key is its start, without the version and the NUL before it. */
static size_t version_key(const struct rewrite_arg *a, char key[128])
{
    size_t vl = strlen(a->vault), nl = strlen(a->name);
    memcpy(key, a->vault, vl + 1);
    memcpy(key + vl + 1, a->name, nl + 1);
    memcpy(key + vl + 1 + nl + 1, a->version, KS_VERSION_LEN);
    return vl + nl + 2 + KS_VERSION_LEN;
}

/* Read @p a's version record into @p v, its key into @p key and the key's length @p kl. */
static enum kv_status version_get(struct ks_txn *tx, const struct rewrite_arg *a, char key[128],
                                  size_t *kl, MDB_val *v)
{
    *kl = version_key(a, key);
    return ks_txn_get(tx, tx->env->db_keys, key, *kl, v);
}

/* Add the members a record now leaves out at their default, as older records have. */
static enum kv_status spell_out_fn(struct ks_txn *tx, void *arg)
{
    struct rewrite_arg *a = arg;
    char key[128];
    size_t kl;
    MDB_val v;
    enum kv_status st = version_get(tx, a, key, &kl, &v);
    if (st != KV_OK)
        return st;
    char rec[4096];
    int n = snprintf(rec, sizeof(rec), "%.*s,\"exportable\":false,\"nbf\":0,\"exp\":0,\"tags\":{}}",
                     (int)v.mv_size - 1, (const char *)v.mv_data);
    if (n <= 0 || (size_t)n >= sizeof(rec))
        return KV_ERR_INTERNAL;
    st = ks_txn_put(tx, tx->env->db_keys, key, kl, rec, (size_t)n);
    if (st != KV_OK)
        return st;
    char head[256];
    n = snprintf(head, sizeof(head),
                 "{\"name\":\"%s\",\"current\":\"%s\",\"deleted\":0,\"purge\":0}", a->name,
                 a->version);
    return ks_txn_put(tx, tx->env->db_heads, key, kl - KS_VERSION_LEN - 1, head, (size_t)n);
}

static void older_records(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    put_vault(env, "old");
    struct ks_key *k = create(env, "old", "spelled", KS_KTY_OCT);
    if (k == NULL) {
        ks_close(env);
        return;
    }
    struct rewrite_arg a = {env, "old", "spelled", k->version};
    CHECK_ST(ks_txn_write(env, spell_out_fn, &a), KV_OK);
    struct ks_key *g = NULL;
    CHECK_ST(ks_key_get(env, "old", "spelled", NULL, &g), KV_OK);
    CHECK(g != NULL && strcmp(g->version, k->version) == 0 && g->attrs.enabled &&
          !g->attrs.exportable && g->attrs.nbf == 0 && g->attrs.exp == 0 && g->tags.count == 0 &&
          g->attrs.created == k->attrs.created && g->ops == k->ops);
    ks_key_free(g);
    /* an update of a record that leaves members out adds them */
    char *names[] = {"env"}, *values[] = {"ci"};
    struct ks_update u = {.tags_set = 1, .tags = {1, names, values}, .nbf_set = 1, .nbf = 1000};
    g = NULL;
    CHECK_ST(ks_key_update(env, "old", "spelled", NULL, &u, &g), KV_OK);
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_key_get(env, "old", "spelled", NULL, &g), KV_OK);
    CHECK(g != NULL && g->tags.count == 1 && strcmp(g->tags.values[0], "ci") == 0 &&
          g->attrs.nbf == 1000);
    ks_key_free(g);
    ks_key_free(k);
    ks_close(env);
}

/* ---- key_ops in the client's order ------------------------------------------------- */

/* Remove the order of a version's record, as kvmock wrote records before it kept one. */
static enum kv_status drop_order_fn(struct ks_txn *tx, void *arg)
{
    struct rewrite_arg *a = arg;
    char key[128];
    size_t kl;
    MDB_val v;
    enum kv_status st = version_get(tx, a, key, &kl, &v);
    if (st != KV_OK)
        return st;
    char rec[4096];
    if (v.mv_size >= sizeof(rec))
        return KV_ERR_INTERNAL;
    memcpy(rec, v.mv_data, v.mv_size);
    rec[v.mv_size] = '\0';
    char *at = strstr(rec, ",\"ops_order\":");
    if (at == NULL)
        return KV_ERR_INTERNAL; /* the version was written with its order */
    char *end = at + strlen(",\"ops_order\":");
    while (*end >= '0' && *end <= '9')
        end++;
    memmove(at, end, strlen(end) + 1);
    return ks_txn_put(tx, tx->env->db_keys, key, kl, rec, strlen(rec));
}

static void key_ops_order(void)
{
    unsigned ops = 0, list[KS_OPS_MAX];
    uint32_t order = 0;
    /* first occurrences in their order, a duplicate once */
    const char *dup[] = {"wrapKey", "encrypt", "wrapKey", "decrypt", "encrypt"};
    ko_parse(dup, 5, &ops, &order);
    CHECK(ops == (KS_OP_WRAP | KS_OP_ENCRYPT | KS_OP_DECRYPT));
    CHECK(ks_keyops_list(ops, order, list) == 3 && list[0] == KS_OP_WRAP &&
          list[1] == KS_OP_ENCRYPT && list[2] == KS_OP_DECRYPT);
    /* all eight, last first: the order fills its 32 bits */
    const char *all[] = {"export", "import", "unwrapKey", "wrapKey",
                         "verify", "sign",   "decrypt",   "encrypt"};
    ko_parse(all, 8, &ops, &order);
    CHECK(ops == KS_OP_ALL && order == 0x12345678u);
    CHECK(ks_keyops_list(ops, order, list) == 8 && list[0] == KS_OP_EXPORT &&
          list[7] == KS_OP_ENCRYPT);
    /* 0 is the fixed order; an order that does not fit its set (from a backup blob, say)
     * still shows the set, each once, and nothing else: its codes of operations outside the
     * set, unknown codes (9-15) and repeats are passed over, and what it leaves out follows
     * in the fixed order */
    CHECK(ks_keyops_list(KS_OP_SIGN | KS_OP_ENCRYPT, 0, list) == 2 && list[0] == KS_OP_ENCRYPT &&
          list[1] == KS_OP_SIGN);
    CHECK(ks_keyops_list(KS_OP_ENCRYPT | KS_OP_SIGN | KS_OP_VERIFY, 0x4f924u, list) == 3 &&
          list[0] == KS_OP_VERIFY && list[1] == KS_OP_ENCRYPT && list[2] == KS_OP_SIGN);
    CHECK(ks_keyops_list(0, 0x21u, list) == 0);

    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    put_vault(env, "ord");
    /* a create with an order answers it, and so do get and both lists */
    struct ks_create p = {.kty = KS_KTY_RSA, .ops_set = 1, .attrs = {.enabled = 1}};
    ko_parse(KO_TERRAFORM, 6, &p.ops, &p.ops_order);
    struct ks_key *k = NULL, *g = NULL;
    struct ks_key_page *page = NULL;
    CHECK_ST(ks_key_create(env, "ord", "tf", &p, &k), KV_OK);
    KO_CHECK(k, KO_TERRAFORM_TEXT);
    CHECK_ST(ks_key_get(env, "ord", "TF", NULL, &g), KV_OK);
    KO_CHECK(g, KO_TERRAFORM_TEXT);
    CHECK(g != NULL && g->ops == (KS_OP_ALL & ~(KS_OP_IMPORT | KS_OP_EXPORT)));
    ks_key_free(g);
    g = NULL;
    CHECK_ST(ks_key_list_versions(env, "ord", "tf", NULL, 25, &page), KV_OK);
    KO_CHECK(page != NULL && page->count == 1 ? page->items[0] : NULL, KO_TERRAFORM_TEXT);
    ks_key_page_free(page);
    page = NULL;
    CHECK_ST(ks_key_list(env, "ord", NULL, 25, &page), KV_OK);
    KO_CHECK(page != NULL && page->count == 1 ? page->items[0] : NULL, KO_TERRAFORM_TEXT);
    ks_key_page_free(page);
    /* the order changes no check: the set's operations work */
    unsigned char secret[32] = {7};
    struct ks_op_params wp = {.alg = KS_ALG_RSA_OAEP, .value = {secret, sizeof(secret)}};
    struct ks_op_result r = {0};
    CHECK_ST(ks_key_op(env, "ord", "tf", NULL, KS_OP_WRAP, &wp, &r), KV_OK);
    ks_op_result_clear(&r);

    /* a key made without key_ops shows its kty's default in the fixed order, as does one
     * whose key_ops were given in the fixed order: neither keeps an order */
    struct ks_key *plain = create(env, "ord", "plain", KS_KTY_RSA);
    KO_CHECK(plain, KO_FIXED_TEXT);
    CHECK(plain != NULL && plain->ops_order == 0);
    const char *fixed[] = {"encrypt", "decrypt", "encrypt"};
    struct ks_create fp = {.kty = KS_KTY_EC, .ops_set = 1, .attrs = {.enabled = 1}};
    ko_parse(fixed, 3, &fp.ops, &fp.ops_order);
    CHECK_ST(ks_key_create(env, "ord", "fixed", &fp, &g), KV_OK);
    KO_CHECK(g, "encrypt,decrypt");
    CHECK(g != NULL && g->ops_order == 0);
    ks_key_free(g);
    g = NULL;

    /* a record written before kvmock kept the order (no ops_order) reads in the fixed
     * order, with the same set */
    if (k != NULL) {
        struct rewrite_arg a = {env, "ord", "tf", k->version};
        CHECK_ST(ks_txn_write(env, drop_order_fn, &a), KV_OK);
        CHECK_ST(ks_key_get(env, "ord", "tf", NULL, &g), KV_OK);
        KO_CHECK(g, KO_FIXED_TEXT);
        CHECK(g != NULL && g->ops == k->ops && g->ops_order == 0);
        ks_key_free(g);
    }
    ks_key_free(plain);
    ks_key_free(k);
    ks_close(env);
}

static void persistence(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_get(env, "default", "disk-key", NULL, &k), KV_OK);
    if (k != NULL) {
        unsigned char secret[16] = "0123456789abcdef";
        struct ks_op_params p = {.alg = KS_ALG_RSA_OAEP, .value = {secret, sizeof(secret)}};
        struct ks_op_result r = {0};
        CHECK_ST(ks_key_op(env, "default", "disk-key", NULL, KS_OP_WRAP, &p, &r), KV_OK);
        ks_op_result_clear(&r);
    }
    ks_key_free(k);
    ks_close(env);

    /* the root key file is private */
    char path[512];
    snprintf(path, sizeof(path), "%s/root.key", dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0077) == 0);

    /* another root key cannot open the sealed material */
    unlink(path);
    env = open_store(0);
    if (env != NULL) {
        unsigned char secret[16] = "0123456789abcdef";
        struct ks_op_params p = {.alg = KS_ALG_RSA_OAEP, .value = {secret, sizeof(secret)}};
        struct ks_op_result r = {0};
        CHECK(ks_key_op(env, "default", "disk-key", NULL, KS_OP_WRAP, &p, &r) != KV_OK);
        ks_op_result_clear(&r);
        ks_close(env);
    }
}

/* Run one part of the test in a data folder of its own, removed afterwards. */
static void in_fresh_dir(void (*part)(void))
{
    CHECK(mkdtemp(strcpy(dir, DIR_TEMPLATE)) != NULL);
    part();
    check_remove_dir(dir);
}

struct log_arg {
    uint64_t first, last;
    size_t count;
    int in_order;
};

static enum kv_status log_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                             void *arg)
{
    struct log_arg *a = arg;
    uint64_t seq = 0;
    for (size_t i = 0; i < key_len; i++)
        seq = (seq << 8) | ((const unsigned char *)key)[i];
    char want[32];
    snprintf(want, sizeof(want), "record %llu", (unsigned long long)seq);
    if (key_len != 8 || val_len != strlen(want) || memcmp(val, want, val_len) != 0 ||
        (a->count > 0 && seq != a->last + 1))
        a->in_order = 0;
    if (a->count++ == 0)
        a->first = seq;
    a->last = seq;
    return KV_OK;
}

/* An append-only log: records under consecutive numbers, appended in batches,
 * the oldest dropped beyond a cap. */
static void record_log(struct ks_env *env)
{
    char texts[64][32];
    const void *vals[64];
    size_t lens[64];
    uint64_t seq = 0, first = 0;
    CHECK_ST(ks_record_append(env, KS_TABLE_AUDIT, "record 1", 8, &seq), KV_OK);
    CHECK(seq == 1);
    for (int batch = 0; batch < 20; batch++) {
        int n = 1 + batch * 3;
        for (int i = 0; i < n; i++) {
            snprintf(texts[i], sizeof(texts[i]), "record %llu", (unsigned long long)(seq + 1 + i));
            vals[i] = texts[i];
            lens[i] = strlen(texts[i]);
        }
        size_t keep = batch < 10 ? 0 : 100;
        CHECK_ST(ks_record_append_many(env, KS_TABLE_AUDIT, vals, lens, (size_t)n, keep, &first),
                 KV_OK);
        CHECK(first == seq + 1);
        seq += (uint64_t)n;
    }
    struct log_arg a = {0, 0, 0, 1};
    CHECK_ST(ks_record_scan(env, KS_TABLE_AUDIT, NULL, 0, NULL, 0, log_fn, &a), KV_OK);
    CHECK(a.in_order && a.count == 100 && a.last == seq && a.first == seq - 99);
    /* a cap alone trims; nothing to append and no cap is a no-op */
    CHECK_ST(ks_record_append_many(env, KS_TABLE_AUDIT, NULL, NULL, 0, 10, NULL), KV_OK);
    CHECK_ST(ks_record_append_many(env, KS_TABLE_AUDIT, NULL, NULL, 0, 0, NULL), KV_OK);
    memset(&a, 0, sizeof(a));
    a.in_order = 1;
    CHECK_ST(ks_record_scan(env, KS_TABLE_AUDIT, NULL, 0, NULL, 0, log_fn, &a), KV_OK);
    CHECK(a.in_order && a.count == 10 && a.last == seq);
    CHECK_ST(ks_record_append_many(env, KS_TABLE_AUDIT, NULL, lens, 1, 0, NULL),
             KV_ERR_BAD_PARAM);
    CHECK_ST(ks_record_append_many(env, KS_TABLE_COUNT, vals, lens, 1, 0, NULL),
             KV_ERR_BAD_PARAM);
}

/* ---- a record attached to a thread's next write (ks_txn_attach) ---------------------- */

static char *build_attached(void *arg, size_t *len)
{
    int *calls = arg;
    (*calls)++;
    char *text = strdup("attached record");
    *len = text ? strlen(text) : 0;
    return text;
}

static char *build_nothing(void *arg, size_t *len)
{
    (void)arg;
    *len = 0;
    return NULL;
}

static enum kv_status refused_fn(struct ks_txn *tx, void *arg)
{
    (void)arg;
    /* what it wrote goes with it */
    CHECK_ST(ks_txn_put(tx, tx->env->db_tables[KS_TABLE_ROLES], "gone", 4, "x", 1), KV_OK);
    return KV_ERR_BAD_PARAM;
}

static enum kv_status attached_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                               void *arg)
{
    (void)key;
    (void)key_len;
    if (val_len == 15 && memcmp(val, "attached record", 15) == 0)
        ++*(size_t *)arg;
    return KV_OK;
}

static size_t attached_count(struct ks_env *env)
{
    size_t n = 0;
    CHECK_ST(ks_record_scan(env, KS_TABLE_AUDIT, NULL, 0, NULL, 0, attached_fn, &n), KV_OK);
    return n;
}

static void *other_thread_write(void *arg)
{
    CHECK_ST(ks_record_put(arg, KS_TABLE_ROLES, "other", 5, "v", 1), KV_OK);
    return NULL;
}

static void attached_records(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    int calls = 0;
    struct ks_attach a = {.table = KS_TABLE_AUDIT, .build = build_attached, .arg = &calls};
    ks_txn_attach(&a);

    /* a write that fails takes its record with it */
    CHECK_ST(ks_txn_write(env, refused_fn, NULL), KV_ERR_BAD_PARAM);
    CHECK(!a.written && attached_count(env) == 0);

    /* another thread's write does not carry this thread's record */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, other_thread_write, env) == 0);
    pthread_join(t, NULL);
    CHECK(!a.written && attached_count(env) == 0);

    /* the next write that succeeds commits it, once */
    CHECK_ST(ks_record_put(env, KS_TABLE_ROLES, "change", 6, "v", 1), KV_OK);
    CHECK(a.written && attached_count(env) == 1);
    CHECK_ST(ks_record_put(env, KS_TABLE_ROLES, "change 2", 8, "v", 1), KV_OK);
    CHECK(attached_count(env) == 1);
    CHECK(calls == 1); /* built only once the body succeeded */

    /* detached, or nothing to attach: the write goes alone */
    ks_txn_attach(NULL);
    CHECK_ST(ks_record_put(env, KS_TABLE_ROLES, "change 3", 8, "v", 1), KV_OK);
    struct ks_attach none = {.table = KS_TABLE_AUDIT, .build = build_nothing};
    ks_txn_attach(&none);
    CHECK_ST(ks_record_put(env, KS_TABLE_ROLES, "change 4", 8, "v", 1), KV_OK);
    CHECK(!none.written && attached_count(env) == 1);

    /* the table's cap applies in the same transaction */
    for (int i = 0; i < 5; i++)
        CHECK_ST(ks_record_append(env, KS_TABLE_AUDIT, "filler", 6, NULL), KV_OK);
    calls = 0;
    struct ks_attach capped = {.table = KS_TABLE_AUDIT, .keep = 3, .build = build_attached,
                               .arg = &calls};
    ks_txn_attach(&capped);
    CHECK_ST(ks_record_put(env, KS_TABLE_ROLES, "change 5", 8, "v", 1), KV_OK);
    ks_txn_attach(NULL);
    size_t total = 0;
    struct log_arg la = {0, 0, 0, 1};
    CHECK_ST(ks_record_scan(env, KS_TABLE_AUDIT, NULL, 0, NULL, 0, log_fn, &la), KV_OK);
    total = la.count;
    CHECK(capped.written && total == 3 && attached_count(env) == 1);
    ks_close(env);
}

/* One record by its exact key, and a record added only where none is. */
static void record_get_add(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    struct kv_buf got = {0};
    CHECK_ST(ks_record_put(env, KS_TABLE_JOBS, "job", 3, "one", 3), KV_OK);
    CHECK_ST(ks_record_put(env, KS_TABLE_JOBS, "jobs", 4, "two", 3), KV_OK);
    CHECK_ST(ks_record_get(env, KS_TABLE_JOBS, "job", 3, &got), KV_OK);
    CHECK(got.len == 3 && memcmp(got.data, "one", 3) == 0);
    kv_buf_free(&got);
    /* the exact key only: neither a prefix nor another table */
    CHECK_ST(ks_record_get(env, KS_TABLE_JOBS, "jo", 2, &got), KV_ERR_KEY_NOT_FOUND);
    CHECK(got.data == NULL && got.len == 0);
    CHECK_ST(ks_record_get(env, KS_TABLE_BACKUPS, "job", 3, &got), KV_ERR_KEY_NOT_FOUND);
    CHECK_ST(ks_record_get(env, KS_TABLE_COUNT, "job", 3, &got), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_record_get(env, KS_TABLE_JOBS, "job", 0, &got), KV_ERR_BAD_PARAM);
    /* an add writes where no record is, and changes nothing where one is */
    CHECK_ST(ks_record_add(env, KS_TABLE_BACKUPS, "f1", 2, "blob", 4), KV_OK);
    CHECK_ST(ks_record_add(env, KS_TABLE_BACKUPS, "f1", 2, "other", 5), KV_ERR_KEY_EXISTS);
    CHECK_ST(ks_record_get(env, KS_TABLE_BACKUPS, "f1", 2, &got), KV_OK);
    CHECK(got.len == 4 && memcmp(got.data, "blob", 4) == 0);
    kv_buf_free(&got);
    CHECK_ST(ks_record_add(env, KS_TABLE_BACKUPS, "f", 1, "", 0), KV_OK); /* a prefix is no key */
    CHECK_ST(ks_record_get(env, KS_TABLE_BACKUPS, "f", 1, &got), KV_OK);
    CHECK(got.len == 0);
    kv_buf_free(&got);
    CHECK_ST(ks_record_add(env, KS_TABLE_COUNT, "f2", 2, "x", 1), KV_ERR_BAD_PARAM);
    ks_close(env);
}

/* Record changes of other layers go in one transaction, with a vault's write or alone:
 * every change or none. */
static void record_batches(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    const struct ks_record_op seed[] = {
        {KS_TABLE_POLICIES, "v1\0a", 4, "1", 1},
        {KS_TABLE_POLICIES, "v1\0b", 4, "2", 1},
        {KS_TABLE_POLICIES, "v10\0a", 5, "3", 1},
        {KS_TABLE_ROLES, "r1", 3, "x", 1},
    };
    CHECK_ST(ks_record_apply(env, seed, 4), KV_OK);
    CHECK(tr_count(env, KS_TABLE_POLICIES, NULL, 0) == 3);

    /* a delete by prefix takes v1's two, not v10's; a put in the same batch stays */
    const struct ks_record_op swap[] = {
        {KS_TABLE_POLICIES, "v1\0", 3, NULL, 0},
        {KS_TABLE_POLICIES, "v1\0c", 4, "4", 1},
    };
    CHECK_ST(ks_record_apply(env, swap, 2), KV_OK);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "v1\0", 3) == 1);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "v10\0", 4) == 1);

    /* a malformed op refuses the whole batch, the ops before it too */
    const struct ks_record_op bad[][2] = {
        {{KS_TABLE_ROLES, "r2", 3, "y", 1}, {KS_TABLE_ROLES, "", 0, "z", 1}},
        {{KS_TABLE_ROLES, "r2", 3, "y", 1}, {KS_TABLE_COUNT, "r3", 3, "z", 1}},
        {{KS_TABLE_ROLES, "r2", 3, "y", 1}, {KS_TABLE_ROLES, NULL, 3, "z", 1}},
        {{KS_TABLE_ROLES, "r2", 3, "y", 1}, {KS_TABLE_ROLES, "r3", 3, NULL, 1}},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK_ST(ks_record_apply(env, bad[i], 2), KV_ERR_BAD_PARAM);
    CHECK(tr_count(env, KS_TABLE_ROLES, NULL, 0) == 1);

    /* a vault and its records: created together */
    struct ks_vault v = {.soft_delete = 1, .retention_days = 90};
    snprintf(v.name, sizeof(v.name), "batched");
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    const struct ks_record_op with[] = {{KS_TABLE_POLICIES, "batched\0o", 9, "p", 1},
                                        {KS_TABLE_ROLES, "rb", 3, "r", 1}};
    CHECK_ST(ks_vault_put_with(env, &v, 1, with, 2), KV_OK);
    struct ks_vault got;
    CHECK_ST(ks_vault_get(env, "batched", &got), KV_OK);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "batched\0", 8) == 1);

    /* a create of a name in use writes none of its records */
    const struct ks_record_op again[] = {{KS_TABLE_POLICIES, "batched\0q", 9, "p", 1}};
    CHECK_ST(ks_vault_put_with(env, &v, 1, again, 1), KV_ERR_ARM_VAULT_EXISTS);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "batched\0", 8) == 1);

    /* records that cannot be written keep the vault from being written */
    struct ks_vault other = v;
    snprintf(other.name, sizeof(other.name), "unwritten");
    CHECK_ST(ks_vault_put_with(env, &other, 1, bad[0], 2), KV_ERR_BAD_PARAM);
    CHECK_ST(ks_vault_get(env, "unwritten", &got), KV_ERR_VAULT_NOT_FOUND);
    CHECK(tr_count(env, KS_TABLE_ROLES, NULL, 0) == 2);

    /* an update with records; a bad vault (retention 3 days) writes neither */
    v.retention_days = 30;
    CHECK_ST(ks_vault_put_with(env, &v, 0, again, 1), KV_OK);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "batched\0", 8) == 2);
    v.retention_days = 3;
    const struct ks_record_op more[] = {{KS_TABLE_POLICIES, "batched\0r", 9, "p", 1}};
    CHECK(ks_vault_put_with(env, &v, 0, more, 1) != KV_OK);
    CHECK(tr_count(env, KS_TABLE_POLICIES, "batched\0", 8) == 2);
    CHECK_ST(ks_vault_get(env, "batched", &got), KV_OK);
    CHECK(got.retention_days == 30);

    /* records written only while their vault or group exists */
    const struct ks_record_op at[] = {{KS_TABLE_ROLES, "ra", 3, "a", 1}};
    CHECK_ST(ks_record_apply_at(env, "nosuchvault", 0, NULL, at, 1), KV_ERR_VAULT_NOT_FOUND);
    CHECK_ST(ks_record_apply_at(env, NULL, 0, "nosuchgroup", at, 1), KV_ERR_ARM_NO_GROUP);
    CHECK_ST(ks_record_apply_at(env, "", 0, "nosuchgroup", at, 1), KV_ERR_ARM_NO_GROUP);
    CHECK(tr_count(env, KS_TABLE_ROLES, "ra", 3) == 0);
    CHECK_ST(ks_record_apply_at(env, "BATCHED", 0, "nosuchgroup", at, 1), KV_OK); /* the vault's */
    /* the vault must be of the kind named: "batched" is no Managed HSM */
    CHECK_ST(ks_record_apply_at(env, "batched", 1, NULL, at, 1), KV_ERR_VAULT_NOT_FOUND);
    CHECK(tr_count(env, KS_TABLE_ROLES, "ra", 3) == 1);
    struct ks_group g = {.name = "Team", .location = "local"};
    int created = 0;
    CHECK_ST(ks_group_put(env, &g, &created), KV_OK);
    const struct ks_record_op at_group[] = {{KS_TABLE_ROLES, "rg", 3, "g", 1}};
    CHECK_ST(ks_record_apply_at(env, NULL, 0, "team", at_group, 1), KV_OK);
    CHECK_ST(ks_record_apply_at(env, NULL, 0, NULL, at_group, 1), KV_OK); /* no condition */
    CHECK(tr_count(env, KS_TABLE_ROLES, "rg", 3) == 1);
    /* a soft-deleted vault is not there */
    struct ks_deleted_vault d;
    CHECK_ST(ks_vault_soft_delete(env, "batched", "", &d), KV_OK);
    CHECK_ST(ks_record_apply_at(env, "batched", 0, NULL, at_group, 1), KV_ERR_VAULT_NOT_FOUND);
    ks_close(env);
}

/* A store that cannot grow (here: a limit on file sizes, as `ulimit -f` sets) refuses
 * writes with KV_ERR_STORE_FULL, keeps answering reads, and takes writes again once
 * there is room. */
static void store_full(void)
{
    struct ks_env *env = open_store(0);
    if (env == NULL)
        return;
    put_vault(env, "full");
    struct rlimit was;
    CHECK(getrlimit(RLIMIT_FSIZE, &was) == 0);
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    char path[sizeof(dir) + 16];
    snprintf(path, sizeof(path), "%s/kvmock.mdb", dir);
    struct stat sb;
    CHECK(stat(path, &sb) == 0);
    struct rlimit lim = {(rlim_t)sb.st_size, was.rlim_max};
    CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
    char val[3000], key[16];
    memset(val, 'v', sizeof(val));
    enum kv_status st = KV_OK;
    int written = 0;
    for (int i = 0; i < 1000 && st == KV_OK; i++) {
        snprintf(key, sizeof(key), "fill-%04d", i);
        st = ks_record_put(env, KS_TABLE_AUDIT, key, strlen(key), val, sizeof(val));
        written += st == KV_OK;
    }
    CHECK_ST(st, KV_ERR_STORE_FULL);
    unsigned long long full = 0, other = 0;
    ks_commit_failures(env, &full, &other);
    CHECK(full == 1 && other == 0);
    CHECK(tr_count(env, KS_TABLE_AUDIT, "fill-", 5) == (size_t)written);
    struct ks_vault got;
    CHECK_ST(ks_vault_get(env, "full", &got), KV_OK);
    CHECK(setrlimit(RLIMIT_FSIZE, &was) == 0);
    signal(SIGXFSZ, old);
    CHECK_ST(ks_record_put(env, KS_TABLE_AUDIT, "after", 5, val, sizeof(val)), KV_OK);
    ks_close(env);
}

/* Vaults, keys, paging and the record log in one store, then that store reopened. */
static void one_store_reopened(void)
{
    struct ks_env *env = open_store(0);
    if (env != NULL) {
        vaults(env);
        keys(env);
        paging(env);
        record_log(env);
        ks_close(env);
    }
    persistence();
}

/* ---- read transactions: each thread keeps one and renews it ---------------------- */

#define READER_THREADS 150 /* many more than the store's reader slots below */

static int read_vault_retention(struct ks_env *env, const char *name)
{
    struct ks_vault v;
    return ks_vault_get(env, name, &v) == KV_OK ? v.retention_days : -1;
}

static void *one_read(void *arg)
{
    struct ks_env *env = arg;
    return read_vault_retention(env, "r") == 90 ? env : NULL;
}

struct nested {
    struct ks_env *env;
    int inner_days;
};

static enum kv_status inner_fn(struct ks_txn *tx, void *arg)
{
    struct nested *n = arg;
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, "r", &v);
    n->inner_days = st == KV_OK ? v.retention_days : -1;
    return st;
}

static enum kv_status outer_fn(struct ks_txn *tx, void *arg)
{
    struct nested *n = arg;
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, "r", &v);
    if (st == KV_OK)
        st = ks_txn_read(n->env, inner_fn, n); /* the thread's kept one is in use */
    if (st == KV_OK)
        st = ks_vault_read(tx, "r", &v); /* the outer one still reads */
    return st;
}

struct parked {
    struct ks_env *env;
    sem_t read, go;
    int ok;
};

static void *read_then_park(void *arg)
{
    struct parked *p = arg;
    p->ok = read_vault_retention(p->env, "r") == 30;
    sem_post(&p->read);
    while (sem_wait(&p->go) != 0)
        ;
    return NULL; /* ends after ks_close(): its kept transaction is already gone */
}

static void kept_readers(void)
{
    struct ks_env *env = NULL;
    struct ks_open_opts o = {.data_dir = dir, .map_size = 64 * 1024, .threads = 2};
    CHECK_ST(ks_open(&o, &env), KV_OK);
    if (env == NULL)
        return;
    put_vault(env, "r");

    /* a thread that ends gives its reader slot back: 2 + 64 slots, 150 threads */
    int failed = 0;
    for (int i = 0; i < READER_THREADS; i += 5) {
        pthread_t t[5];
        for (int k = 0; k < 5; k++)
            CHECK(pthread_create(&t[k], NULL, one_read, env) == 0);
        for (int k = 0; k < 5; k++) {
            void *r = NULL;
            pthread_join(t[k], &r);
            failed += r == NULL;
        }
    }
    CHECK(failed == 0);

    /* a renewed transaction sees what was written since the last read */
    CHECK(read_vault_retention(env, "r") == 90);
    struct ks_vault v = {.soft_delete = 1, .retention_days = 30};
    snprintf(v.name, sizeof(v.name), "r");
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
    CHECK(read_vault_retention(env, "r") == 30);

    /* ... and what was written after the map grew under it */
    for (int i = 0; i < 40; i++) {
        char name[32];
        snprintf(name, sizeof(name), "g%03d", i);
        struct ks_create p = {.kty = KS_KTY_OCT, .attrs = {.enabled = 1}};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_create(env, "r", name, &p, &k), KV_OK);
        ks_key_free(k);
        CHECK_ST(ks_key_get(env, "r", name, NULL, &k), KV_OK);
        CHECK(k != NULL && strcmp(k->name, name) == 0);
        ks_key_free(k);
    }

    /* a read inside a read gets its own transaction */
    struct nested n = {env, 0};
    CHECK_ST(ks_txn_read(env, outer_fn, &n), KV_OK);
    CHECK(n.inner_days == 30);
    CHECK(read_vault_retention(env, "r") == 30);

    /* a thread still running when the store closes: its handle goes with the store */
    struct parked p = {.env = env};
    sem_init(&p.read, 0, 0);
    sem_init(&p.go, 0, 0);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, read_then_park, &p) == 0);
    while (sem_wait(&p.read) != 0)
        ;
    ks_close(env);
    sem_post(&p.go);
    pthread_join(t, NULL);
    CHECK(p.ok);
    sem_destroy(&p.read);
    sem_destroy(&p.go);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    in_fresh_dir(one_store_reopened);
    in_fresh_dir(map_growth);
    in_fresh_dir(bodies_run_again_after_growth);
    in_fresh_dir(group_commit);
    in_fresh_dir(older_records);
    in_fresh_dir(key_ops_order);
    in_fresh_dir(attached_records);
    in_fresh_dir(kept_readers);
    in_fresh_dir(record_batches);
    in_fresh_dir(record_get_add);
    in_fresh_dir(store_full);
    CHECK_DONE();
}
