/*
 * Backup restore (ks_key_restore) into a store in a temporary folder whose
 * root key is fixed (DATA/root.key written before ks_open), so that real
 * backup blobs can be seeds. The first input byte picks the shape:
 *   0: the rest is the blob as a client would send it (most fail to unseal);
 *   1: the rest is a backup document: it is sealed with the store's root key
 *      first (as ks_key_backup does, keys.c), so restore_check, the re-sealing
 *      and the stored records are reached with arbitrary JSON.
 * A restored key is then read back: every version by id, and one operation
 * on the current version (sign or wrap, whichever its type allows), then
 * deleted (the vault has soft delete off, so the delete purges it).
 * Invariants: a restored key's current version answers; every listed version
 * answers; the delete succeeds.
 *
 * FUZZ_RESTORE_SEEDS=DIR writes seeds (real backups of RSA, EC and oct keys,
 * sealed and as documents) into DIR and exits.
 */
#include <lmdb.h>
#include <sys/stat.h>

#include "fuzz_common.h"
#include "kv_file.h"
#include "ks.h"
#include "seal.h"
#include "store.h"

static struct ks_env *env;
static char dir[128];
static const char backup_ad[] = "kvmock key backup"; /* keys.c: sizeof, with the NUL */
#define VAULT "v"

static void cleanup(void)
{
    ks_close(env);
    fuzz_rmtree(dir);
}

static void write_file(const char *d, const char *name, unsigned char tag, const void *p, size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", d, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(&tag, 1, 1, f) != 1 || fwrite(p, 1, n, f) != n || fclose(f) != 0)
        abort();
}

static void make_seeds(const char *out)
{
    struct {
        const char *name;
        struct ks_create c;
    } keys[] = {
        {"rsa",
         {.kty = KS_KTY_RSA, .size_bits = 2048, .exponent = 65537, .ops = KS_OP_ALL, .ops_set = 0}},
        {"ec", {.kty = KS_KTY_EC, .crv = KS_CRV_P256, .ops = KS_OP_ALL, .ops_set = 0}},
        {"oct", {.kty = KS_KTY_OCT, .size_bits = 256, .ops = KS_OP_ALL, .ops_set = 0}},
    };
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        keys[i].c.attrs.enabled = 1;
        struct ks_key *k = NULL;
        if (ks_key_create(env, VAULT, keys[i].name, &keys[i].c, &k) != KV_OK)
            abort();
        ks_key_free(k);
        if (i == 0) { /* a second version */
            if (ks_key_rotate(env, VAULT, keys[i].name, &k) != KV_OK)
                abort();
            ks_key_free(k);
        }
        struct kv_buf blob = {0}, plain = {0};
        if (ks_key_backup(env, VAULT, keys[i].name, &blob) != KV_OK ||
            ks_unseal(env->root_key, backup_ad, sizeof(backup_ad), blob.data, blob.len, &plain) !=
                KV_OK)
            abort();
        char name[64];
        snprintf(name, sizeof(name), "blob-%s", keys[i].name);
        write_file(out, name, 0, blob.data, blob.len);
        snprintf(name, sizeof(name), "doc-%s", keys[i].name);
        write_file(out, name, 1, plain.data, plain.len);
        kv_buf_free(&blob);
        kv_buf_wipe(&plain);
        if (ks_key_delete(env, VAULT, keys[i].name, &k) != KV_OK)
            abort();
        ks_key_free(k);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    snprintf(dir, sizeof(dir), "%s", fuzz_tmpdir("restore"));
    unsigned char root[KS_ROOT_KEY_LEN];
    memset(root, 0x4b, sizeof(root)); /* fixed, so that seeds made once open every run */
    char path[256];
    snprintf(path, sizeof(path), "%s/root.key", dir);
    if (kv_file_write_atomic(path, root, sizeof(root), 0600) != KV_OK)
        abort();
    struct ks_open_opts opts = {.data_dir = dir};
    if (ks_open(&opts, &env) != KV_OK)
        abort();
    mdb_env_set_flags(env->env, MDB_NOSYNC, 1); /* speed: durability is not under test here */
    struct ks_vault v = {.name = VAULT, .tenant_id = "t", .soft_delete = 0, .retention_days = 7};
    if (ks_vault_put(env, &v) != KV_OK)
        abort();
    atexit(cleanup);
    if (getenv("FUZZ_RESTORE_SEEDS") != NULL) {
        make_seeds(getenv("FUZZ_RESTORE_SEEDS"));
        exit(0);
    }
    return 0;
}

static void exercise(const struct ks_key *cur)
{
    /* every version answers */
    char skip[KS_SKIPTOKEN_MAX] = "";
    size_t seen = 0;
    for (;;) {
        struct ks_key_page *page = NULL;
        FUZZ_ASSERT(ks_key_list_versions(env, VAULT, cur->name, skip[0] ? skip : NULL, KS_PAGE_MAX,
                                         &page) == KV_OK);
        for (size_t i = 0; i < page->count; i++) {
            struct ks_key *k = NULL;
            FUZZ_ASSERT(ks_key_get(env, VAULT, cur->name, page->items[i]->version, &k) == KV_OK);
            ks_key_free(k);
            seen++;
        }
        snprintf(skip, sizeof(skip), "%s", page->next);
        ks_key_page_free(page);
        if (skip[0] == '\0')
            break;
    }
    FUZZ_ASSERT(seen >= 1);
    /* one operation with the current version: unseals and parses its material */
    static const unsigned char digest[32] = {7};
    struct ks_op_params p = {.value = {(unsigned char *)digest, sizeof(digest)}};
    unsigned op = KS_OP_SIGN;
    p.alg = cur->kty == KS_KTY_RSA  ? KS_ALG_RS256
            : cur->kty == KS_KTY_EC ? KS_ALG_ES256
                                    : KS_ALG_A256KW;
    if (cur->kty == KS_KTY_OCT)
        op = KS_OP_WRAP;
    struct ks_op_result r = {0};
    (void)ks_key_op(env, VAULT, cur->name, NULL, op, &p, &r);
    ks_op_result_clear(&r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    struct kv_buf blob = {0};
    if (data[0] & 1) {
        if (ks_seal(env->root_key, backup_ad, sizeof(backup_ad), data + 1, size - 1, &blob) !=
            KV_OK)
            abort();
    } else if (kv_buf_dup(data + 1, size - 1, &blob) != KV_OK) {
        abort();
    }
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_restore(env, VAULT, blob.data, blob.len, NULL, &k);
    kv_buf_free(&blob);
    if (st != KV_OK) {
        FUZZ_ASSERT(k == NULL);
        return 0;
    }
    FUZZ_ASSERT(k != NULL);
    struct ks_key *again = NULL;
    FUZZ_ASSERT(ks_key_get(env, VAULT, k->name, NULL, &again) == KV_OK);
    FUZZ_ASSERT(strcmp(again->version, k->version) == 0);
    ks_key_free(again);
    exercise(k);
    struct ks_key *gone = NULL;
    FUZZ_ASSERT(ks_key_delete(env, VAULT, k->name, &gone) == KV_OK);
    ks_key_free(gone);
    ks_key_free(k);
    return 0;
}
