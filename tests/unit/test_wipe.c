/*
 * Wipe proof: every keystore path that holds plaintext key material wipes it,
 * and no block it frees still holds private key bytes.
 *
 * Each path below (create, import, a key operation on a cache miss, rotate,
 * backup, restore, seal/unseal, refused inputs, secure key release) runs once with two
 * observers:
 *
 * (a) Wipe accounting. The producers of plaintext are wrapped with the
 *     linker's --wrap (ks_unseal's output, ks_material_serialize's output, the
 *     plain input of ks_seal, kv_b64url_encode of plaintext, cJSON strings
 *     made from plaintext or parsed out of it); each such range is registered.
 *     The wiping functions are wrapped too (sodium_memzero, OPENSSL_cleanse,
 *     kv_buf_wipe), counted, and mark the registered ranges they cover. When
 *     the block holding a registered range is freed (the allocator's free
 *     hook, tests/unit/alloc_hook.h), the range must have been wiped.
 * (b) Freed-block scan. Every block freed during the path (kvmock's, LMDB's,
 *     cJSON's and OpenSSL's, realloc's old blocks included) is copied as it
 *     is freed, and the copies are searched for the private components of the
 *     known imported keys (tests/unit/testkeys.h: RSA d, p, q, dp, dq, qi; EC
 *     d; oct k) and of every key the path serialized (so the keys a create or
 *     rotate made are searched too), as raw big-endian bytes, as OpenSSL's
 *     little-endian limbs, as base64url and base64 (at each of the three
 *     alignments a value can have inside a longer encoding) and as hex; any
 *     16-byte window of any of these is a find.
 *
 * The detectors check themselves first: a planted unwiped block of each form
 * and of each allocator must be found, and a plaintext buffer freed without a
 * wipe must be reported; otherwise the test fails.
 */
#include <execinfo.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <sodium.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "alloc_hook.h"
#include "check.h"
#include "crypto.h"
#include "ks.h"
#include "kv_buf.h"
#include "kv_log.h"
#include "seal.h"
#include "store.h"
#include "testkeys.h"

#define VAULT "v"
#define WIN   16 /**< a find is any WIN-byte window of a needle form */

static char dir[] = "/tmp/kvmock-wipe-XXXXXX";
static struct ks_env *env;
static struct testkeys tk;

/* ---- the path being observed ------------------------------------------------------- */

static int active; /* a path runs: register, count and copy */
static int openssl_as_is;
static int self_checking; /* the detectors' self-check: expected reports are not printed */

struct counts {
    unsigned long memzero, cleanse, buf_wipe; /* wipe calls */
    unsigned long ossl_wipes;         /* blocks OpenSSL freed, wiped by kvmock's allocator */
    unsigned long plain, plain_freed; /* plaintext ranges registered, freed wiped */
    unsigned long unwiped;            /* plaintext ranges freed without a wipe */
    unsigned long blocks, bytes;      /* blocks freed and copied */
};
static struct counts cur;

/* Registered plaintext ranges of the running path. */
#define MAX_RANGES 512
struct range {
    const unsigned char *p;
    size_t n;
    const char *what;
    int wiped;
};
static struct range ranges[MAX_RANGES];
static size_t n_ranges;
static int ranges_overflow;

static struct range *range_at(const void *p)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n_ranges; i++)
        if (c >= ranges[i].p && c < ranges[i].p + ranges[i].n)
            return &ranges[i];
    return NULL;
}

static void plain_register(const void *p, size_t n, const char *what)
{
    if (!active || p == NULL || n == 0)
        return;
    struct range *r = range_at(p);
    if (r != NULL && r->p == p && r->n == n) /* registered again (serialize, then seal) */
        return;
    if (n_ranges == MAX_RANGES) {
        ranges_overflow = 1;
        return;
    }
    ranges[n_ranges++] = (struct range){p, n, what, 0};
    cur.plain++;
}

static void mark_wiped(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n_ranges; i++)
        if (ranges[i].p >= c && ranges[i].p + ranges[i].n <= c + n)
            ranges[i].wiped = 1;
}

/* ---- copies of the blocks freed by the running path ------------------------------ */

#define ARENA_SIZE ((size_t)512 << 20)
#define MAX_BLOCKS (1u << 20)
#define FRAMES     10
struct block {
    size_t off, n;
    enum ah_origin origin;
    void *frames[FRAMES]; /* where it was freed */
};
static unsigned char *arena;
static size_t arena_used;
static struct block *blocks;
static size_t n_blocks;
static int arena_overflow;

static void on_free(const unsigned char *p, size_t n, enum ah_origin origin, void *caller)
{
    if (!active)
        return;
    /* (a): plaintext ranges inside this block must have been wiped */
    for (size_t i = 0; i < n_ranges;) {
        if (ranges[i].p >= p && ranges[i].p < p + n) {
            if (ranges[i].wiped) {
                cur.plain_freed++;
            } else {
                cur.unwiped++;
                if (!self_checking)
                    fprintf(stderr, "  plaintext freed without a wipe: %s (%zu bytes)\n",
                            ranges[i].what, ranges[i].n);
            }
            ranges[i] = ranges[--n_ranges];
            continue;
        }
        i++;
    }
    /* (b): keep a copy for the scan */
    cur.blocks++;
    cur.bytes += n;
    if (n_blocks == MAX_BLOCKS || ARENA_SIZE - arena_used < n) {
        arena_overflow = 1;
        return;
    }
    (void)caller;
    memcpy(arena + arena_used, p, n);
    struct block *b = &blocks[n_blocks++];
    *b = (struct block){arena_used, n, origin, {0}};
    backtrace(b->frames, FRAMES);
    arena_used += n;
}

/* ---- the wrappers ------------------------------------------------------------------- */

void __real_sodium_memzero(void *pnt, size_t len);
void __wrap_sodium_memzero(void *pnt, size_t len);
void __wrap_sodium_memzero(void *pnt, size_t len)
{
    if (active) {
        if (ah_in_openssl())
            cur.ossl_wipes++;
        else
            cur.memzero++;
        mark_wiped(pnt, len);
    }
    __real_sodium_memzero(pnt, len);
}

void __real_OPENSSL_cleanse(void *ptr, size_t len);
void __wrap_OPENSSL_cleanse(void *ptr, size_t len);
void __wrap_OPENSSL_cleanse(void *ptr, size_t len)
{
    if (active) {
        cur.cleanse++;
        mark_wiped(ptr, len);
    }
    __real_OPENSSL_cleanse(ptr, len);
}

void __real_kv_buf_wipe(struct kv_buf *b);
void __wrap_kv_buf_wipe(struct kv_buf *b);
void __wrap_kv_buf_wipe(struct kv_buf *b)
{
    if (active)
        cur.buf_wipe++;
    __real_kv_buf_wipe(b);
}

enum kv_status __real_ks_unseal(const unsigned char *root_key, const void *ad, size_t ad_len,
                                const unsigned char *blob, size_t blob_len, struct kv_buf *out);
enum kv_status __wrap_ks_unseal(const unsigned char *root_key, const void *ad, size_t ad_len,
                                const unsigned char *blob, size_t blob_len, struct kv_buf *out);
enum kv_status __wrap_ks_unseal(const unsigned char *root_key, const void *ad, size_t ad_len,
                                const unsigned char *blob, size_t blob_len, struct kv_buf *out)
{
    enum kv_status st = __real_ks_unseal(root_key, ad, ad_len, blob, blob_len, out);
    if (st == KV_OK)
        plain_register(out->data, out->len, "ks_unseal output");
    return st;
}

enum kv_status __real_ks_seal(const unsigned char *root_key, const void *ad, size_t ad_len,
                              const unsigned char *plain, size_t plain_len, struct kv_buf *out);
enum kv_status __wrap_ks_seal(const unsigned char *root_key, const void *ad, size_t ad_len,
                              const unsigned char *plain, size_t plain_len, struct kv_buf *out);
enum kv_status __wrap_ks_seal(const unsigned char *root_key, const void *ad, size_t ad_len,
                              const unsigned char *plain, size_t plain_len, struct kv_buf *out)
{
    plain_register(plain, plain_len, "ks_seal input");
    return __real_ks_seal(root_key, ad, ad_len, plain, plain_len, out);
}

/* Serialized keys of the running path: their private parts are needles too. */
#define MAX_SERIAL 8
static struct {
    enum ks_kty kty;
    unsigned char der[4096];
    size_t len;
} serial[MAX_SERIAL];
static size_t n_serial;

enum kv_status __real_ks_material_serialize(const struct ks_material *m, struct kv_buf *out);
enum kv_status __wrap_ks_material_serialize(const struct ks_material *m, struct kv_buf *out);
enum kv_status __wrap_ks_material_serialize(const struct ks_material *m, struct kv_buf *out)
{
    enum kv_status st = __real_ks_material_serialize(m, out);
    if (st == KV_OK && active) {
        plain_register(out->data, out->len, "ks_material_serialize output");
        if (n_serial < MAX_SERIAL && out->len <= sizeof(serial[0].der)) {
            serial[n_serial].kty = ks_material_kty(m);
            memcpy(serial[n_serial].der, out->data, out->len);
            serial[n_serial++].len = out->len;
        }
    }
    return st;
}

enum kv_status __real_kv_b64url_encode(const void *data, size_t len, char **out);
enum kv_status __wrap_kv_b64url_encode(const void *data, size_t len, char **out);
enum kv_status __wrap_kv_b64url_encode(const void *data, size_t len, char **out)
{
    enum kv_status st = __real_kv_b64url_encode(data, len, out);
    if (st == KV_OK && active && len > 0 && range_at(data) != NULL)
        plain_register(*out, strlen(*out), "base64url of plaintext");
    return st;
}

cJSON *__real_cJSON_AddStringToObject(cJSON *object, const char *name, const char *string);
cJSON *__wrap_cJSON_AddStringToObject(cJSON *object, const char *name, const char *string);
cJSON *__wrap_cJSON_AddStringToObject(cJSON *object, const char *name, const char *string)
{
    cJSON *item = __real_cJSON_AddStringToObject(object, name, string);
    if (item != NULL && active && string != NULL && range_at(string) != NULL)
        plain_register(item->valuestring, strlen(item->valuestring), "cJSON copy of plaintext");
    return item;
}

static void register_strings(const cJSON *o)
{
    for (const cJSON *c = o; c != NULL; c = c->next) {
        if (cJSON_IsString(c) && c->string != NULL && strcmp(c->string, "material") == 0)
            plain_register(c->valuestring, strlen(c->valuestring),
                           "cJSON string parsed from plaintext");
        register_strings(c->child);
    }
}

cJSON *__real_cJSON_ParseWithLength(const char *value, size_t buffer_length);
cJSON *__wrap_cJSON_ParseWithLength(const char *value, size_t buffer_length);
cJSON *__wrap_cJSON_ParseWithLength(const char *value, size_t buffer_length)
{
    cJSON *o = __real_cJSON_ParseWithLength(value, buffer_length);
    if (o != NULL && active && range_at(value) != NULL)
        register_strings(o);
    return o;
}

/* ---- needles ------------------------------------------------------------------------ */

#define MAX_NEEDLES 512
struct needle {
    char label[48]; /* "RSA d", "created EC d", ... */
    const char *form;
};
static struct needle needles[MAX_NEEDLES];
static size_t n_needles;

struct win {
    uint64_t a, b;
    unsigned needle; /* index + 1; 0 = empty */
};
#define WIN_BITS 18
static struct win *wins;
static size_t n_wins;

static size_t win_slot(uint64_t a, uint64_t b)
{
    return (size_t)(((a ^ (b * 0x9e3779b97f4a7c15ULL)) * 0xff51afd7ed558ccdULL) >> (64 - WIN_BITS));
}

static void win_add(const unsigned char *w, unsigned needle)
{
    uint64_t a, b;
    memcpy(&a, w, 8);
    memcpy(&b, w + 8, 8);
    if (n_wins + 1 >= ((size_t)1 << WIN_BITS) / 2)
        abort();
    size_t i = win_slot(a, b);
    while (wins[i].needle != 0) {
        if (wins[i].a == a && wins[i].b == b)
            return;
        i = (i + 1) & (((size_t)1 << WIN_BITS) - 1);
    }
    wins[i] = (struct win){a, b, needle};
    n_wins++;
}

static unsigned win_find(const unsigned char *w)
{
    uint64_t a, b;
    memcpy(&a, w, 8);
    memcpy(&b, w + 8, 8);
    size_t i = win_slot(a, b);
    while (wins[i].needle != 0) {
        if (wins[i].a == a && wins[i].b == b)
            return wins[i].needle;
        i = (i + 1) & (((size_t)1 << WIN_BITS) - 1);
    }
    return 0;
}

static void add_form(const char *label, const char *form, const unsigned char *s, size_t n)
{
    if (n < WIN || n_needles == MAX_NEEDLES)
        return;
    snprintf(needles[n_needles].label, sizeof(needles[0].label), "%s", label);
    needles[n_needles].form = form;
    n_needles++;
    for (size_t i = 0; i + WIN <= n; i++)
        win_add(s + i, (unsigned)n_needles);
}

/* Every form of one private component @p s. */
static void add_secret(const char *label, const unsigned char *s, size_t n)
{
    unsigned char rev[1024];
    char text[2 * 1024 + 8];
    if (n > sizeof(rev))
        abort();
    add_form(label, "raw", s, n);
    for (size_t i = 0; i < n; i++)
        rev[i] = s[n - 1 - i];
    add_form(label, "limbs (little-endian)", rev, n);
    /* inside a longer encoding the value starts at any offset mod 3: the whole
     * groups from offset k on are encoded the same way at one of k = 0, 1, 2 */
    static const int variants[2] = {sodium_base64_VARIANT_URLSAFE_NO_PADDING,
                                    sodium_base64_VARIANT_ORIGINAL_NO_PADDING};
    static const char *const vnames[2][3] = {{"base64url", "base64url (+1)", "base64url (+2)"},
                                             {"base64", "base64 (+1)", "base64 (+2)"}};
    for (int v = 0; v < 2; v++)
        for (size_t k = 0; k < 3 && k < n; k++) {
            size_t m = (n - k) / 3 * 3;
            sodium_bin2base64(text, sizeof(text), s + k, m, variants[v]);
            add_form(label, vnames[v][k], (unsigned char *)text, strlen(text));
        }
    sodium_bin2hex(text, sizeof(text), s, n);
    add_form(label, "hex", (unsigned char *)text, strlen(text));
    for (size_t i = 0; text[i]; i++)
        if (text[i] >= 'a' && text[i] <= 'f')
            text[i] = (char)(text[i] - 'a' + 'A');
    add_form(label, "HEX", (unsigned char *)text, strlen(text));
}

static void add_jwk(const char *who, const struct ks_jwk *j)
{
    struct {
        const char *name;
        const struct kv_buf *b;
    } parts[] = {{"d", &j->d},   {"p", &j->p},   {"q", &j->q}, {"dp", &j->dp},
                 {"dq", &j->dq}, {"qi", &j->qi}, {"k", &j->k}};
    char label[48];
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (parts[i].b->len == 0)
            continue;
        snprintf(label, sizeof(label), "%s %s", who, parts[i].name);
        add_secret(label, parts[i].b->data, parts[i].b->len);
    }
}

/* The private parts of a serialized key (PKCS#8 DER for RSA, kvmock's own EC
 * form, or oct bytes) as needles. */
static void add_serialized(size_t i)
{
    if (serial[i].kty == KS_KTY_OCT) {
        add_secret("serialized oct k", serial[i].der, serial[i].len);
        return;
    }
    if (serial[i].kty == KS_KTY_EC) {
        /* 0x01, curve code, d (field_len bytes), 04 || X || Y */
        size_t fl = (serial[i].len - 3) / 3;
        if (serial[i].len < 6 || serial[i].der[0] != 0x01 || serial[i].len != 3 + 3 * fl) {
            fprintf(stderr, "a serialized EC key is not in kvmock's form\n");
            check_failures++;
            return;
        }
        add_secret("serialized EC d", serial[i].der + 2, fl);
        return;
    }
    const unsigned char *p = serial[i].der;
    EVP_PKEY *pkey = d2i_AutoPrivateKey(NULL, &p, (long)serial[i].len);
    if (pkey == NULL) {
        fprintf(stderr, "a serialized key does not parse\n");
        check_failures++;
        return;
    }
    static const char *const rsa[][2] = {
        {OSSL_PKEY_PARAM_RSA_D, "d"},          {OSSL_PKEY_PARAM_RSA_FACTOR1, "p"},
        {OSSL_PKEY_PARAM_RSA_FACTOR2, "q"},    {OSSL_PKEY_PARAM_RSA_EXPONENT1, "dp"},
        {OSSL_PKEY_PARAM_RSA_EXPONENT2, "dq"}, {OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "qi"}};
    for (size_t j = 0; j < sizeof(rsa) / sizeof(rsa[0]); j++) {
        BIGNUM *bn = NULL;
        unsigned char bytes[1024];
        char label[48];
        if (EVP_PKEY_get_bn_param(pkey, rsa[j][0], &bn) != 1) {
            check_failures++;
            continue;
        }
        int n = BN_bn2bin(bn, bytes);
        BN_clear_free(bn);
        snprintf(label, sizeof(label), "serialized RSA %s", rsa[j][1]);
        add_secret(label, bytes, (size_t)n);
        OPENSSL_cleanse(bytes, sizeof(bytes));
    }
    EVP_PKEY_free(pkey);
}

static const char *origin_name(enum ah_origin o)
{
    return o == AH_WRAPPED ? "kvmock/LMDB" : o == AH_CJSON ? "cJSON" : "OpenSSL";
}

/* Search the copies of the freed blocks; @return the finds (one per block and needle). */
static unsigned long scan(int quiet)
{
    unsigned long finds = 0;
    unsigned char seen[MAX_NEEDLES];
    for (size_t i = 0; i < n_blocks; i++) {
        const struct block *b = &blocks[i];
        memset(seen, 0, n_needles);
        for (size_t off = 0; off + WIN <= b->n; off++) {
            unsigned nd = win_find(arena + b->off + off);
            if (nd == 0 || seen[nd - 1])
                continue;
            seen[nd - 1] = 1;
            finds++;
            if (quiet)
                continue;
            fprintf(stderr, "  freed block of %zu bytes (%s) holds %s as %s; freed at\n", b->n,
                    origin_name(b->origin), needles[nd - 1].label, needles[nd - 1].form);
            backtrace_symbols_fd((void *const *)b->frames + 3, FRAMES - 3, 2);
        }
    }
    return finds;
}

/* ---- running a path ----------------------------------------------------------------- */

static void path_begin(void)
{
    memset(&cur, 0, sizeof(cur));
    n_ranges = 0;
    n_blocks = 0;
    arena_used = 0;
    n_serial = 0;
    ranges_overflow = arena_overflow = 0;
    active = 1;
}

/* End a path: scan, report; @return the finds plus the unwiped plaintext ranges. */
static unsigned long path_end(const char *what, unsigned long min_plain, int quiet)
{
    active = 0;
    /* needles: the known keys, and whatever this path serialized */
    memset(wins, 0, ((size_t)1 << WIN_BITS) * sizeof(*wins));
    n_wins = 0;
    n_needles = 0;
    add_jwk("RSA", &tk.rsa);
    add_jwk("EC", &tk.ec);
    add_jwk("oct", &tk.oct);
    for (size_t i = 0; i < n_serial; i++)
        add_serialized(i);
    if (!quiet && (arena_overflow || ranges_overflow)) {
        fprintf(stderr, "%s: the observer ran out of room\n", what);
        check_failures++;
    }
    unsigned long finds = scan(quiet);
    if (!quiet) {
        printf("%-34s %5lu blocks %8lu bytes freed; %2lu plaintext buffers, %2lu freed wiped, "
               "%lu not; wipes: sodium_memzero %lu, OPENSSL_cleanse %lu, kv_buf_wipe %lu, "
               "OpenSSL frees %lu; %lu secrets found\n",
               what, cur.blocks, cur.bytes, cur.plain, cur.plain_freed, cur.unwiped, cur.memzero,
               cur.cleanse, cur.buf_wipe, cur.ossl_wipes, finds);
        fflush(stdout);
        if (finds != 0 || cur.unwiped != 0) {
            fprintf(stderr,
                    "%s: %lu freed blocks hold private key bytes, %lu plaintext buffers "
                    "were freed unwiped\n",
                    what, finds, cur.unwiped);
            check_failures++;
        }
        if (cur.plain_freed < min_plain) {
            fprintf(stderr, "%s: %lu plaintext buffers freed wiped, want at least %lu\n", what,
                    cur.plain_freed, min_plain);
            check_failures++;
        }
    }
    n_ranges = 0;
    return finds + cur.unwiped;
}

/* ---- set-up helpers ----------------------------------------------------------------- */

static void put_key(const char *name, const struct ks_jwk *jwk)
{
    struct ks_import p = {.jwk = *jwk, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_import(env, VAULT, name, &p, &k), KV_OK);
    ks_key_free(k);
}

static void uncache(const char *name)
{
    struct ks_key *k = NULL;
    if (ks_key_get(env, VAULT, name, NULL, &k) != KV_OK)
        return;
    char loc[KS_VAULT_NAME_MAX + KS_NAME_MAX + KS_VERSION_LEN + 3];
    size_t vl = strlen(VAULT), nl = strlen(name);
    memcpy(loc, VAULT, vl + 1);
    memcpy(loc + vl + 1, name, nl + 1);
    memcpy(loc + vl + 1 + nl + 1, k->version, KS_VERSION_LEN);
    ks_cache_remove(env->cache, loc, vl + 1 + nl + 1 + KS_VERSION_LEN);
    ks_key_free(k);
}

static void delete_key(const char *name)
{
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_delete(env, VAULT, name, &k), KV_OK); /* soft delete is off: purged */
    ks_key_free(k);
}

/* The parsed-record memos are caches: empty them so each path parses its records. */
static void memos_reset(void)
{
    ks_memo_free(env->vault_memo);
    ks_memo_free(env->key_memo);
    ks_memo_free(env->head_memo);
    env->vault_memo = ks_memo_new(64, sizeof(struct ks_vault), NULL, NULL);
    env->key_memo = ks_key_memo_new(1024);
    env->head_memo = ks_head_memo_new(1024);
    if (env->vault_memo == NULL || env->key_memo == NULL || env->head_memo == NULL)
        abort();
}

/* ---- the paths ----------------------------------------------------------------------- */

static void path_create(const char *what, enum ks_kty kty, int bits)
{
    struct ks_create p = {.kty = kty, .size_bits = bits, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_create(env, VAULT, "created", &p, &k), KV_OK);
    ks_key_free(k);
    path_end(what, 1, 0);
    if (n_serial != 1) {
        fprintf(stderr, "%s: the new key was not serialized once\n", what);
        check_failures++;
    }
    delete_key("created");
}

static void path_import(const char *what, const struct ks_jwk *jwk)
{
    memos_reset();
    path_begin();
    put_key("imported", jwk);
    path_end(what, 1, 0);
    delete_key("imported");
}

/* A refused import (RSA with a wrong qi): the parts it read are still wiped. */
static void path_import_refused(void)
{
    struct ks_import p = {.jwk = tk.rsa, .attrs = {.enabled = 1}};
    struct kv_buf qi = {0};
    CHECK_ST(kv_buf_dup(tk.rsa.qi.data, tk.rsa.qi.len, &qi), KV_OK);
    qi.data[qi.len - 1] ^= 1;
    p.jwk.qi = qi;
    struct ks_key *k = NULL;
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_import(env, VAULT, "refused", &p, &k), KV_ERR_BAD_JWK);
    path_end("import RSA refused (bad qi)", 0, 0);
    kv_buf_wipe(&qi);
}

/* A key operation on a cache miss: the seal is opened and the key parsed; then
 * the parsed key is evicted, so its release is observed too. */
static void path_keyop(const char *what, const char *name, enum ks_alg alg, unsigned op,
                       unsigned prep_op)
{
    struct kv_buf in = {0};
    struct kv_buf iv = {0}, tag = {0};
    CHECK_ST(kv_buf_alloc(32, &in), KV_OK);
    randombytes_buf(in.data, in.len);
    if (prep_op != 0) { /* make the input with the public half (or the key) first */
        struct ks_op_params pp = {.alg = alg, .value = in};
        struct ks_op_result r = {0};
        CHECK_ST(ks_key_op(env, VAULT, name, NULL, prep_op, &pp, &r), KV_OK);
        kv_buf_free(&in);
        in = r.value;
        iv = r.iv;
        tag = r.tag;
        r.value = r.iv = r.tag = (struct kv_buf){0};
    }
    uncache(name);
    memos_reset();
    struct ks_op_params p = {.alg = alg, .value = in, .iv = iv, .tag = tag};
    struct ks_op_result r = {0};
    path_begin();
    CHECK_ST(ks_key_op(env, VAULT, name, NULL, op, &p, &r), KV_OK);
    ks_op_result_clear(&r);
    uncache(name);
    path_end(what, 1, 0);
    kv_buf_free(&in);
    kv_buf_free(&iv);
    kv_buf_free(&tag);
}

static void path_rotate(const char *what, const char *name)
{
    struct ks_key *k = NULL;
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_rotate(env, VAULT, name, &k), KV_OK);
    ks_key_free(k);
    path_end(what, 1, 0);
}

static struct kv_buf backups[3];

static void path_backup(const char *what, const char *name, unsigned versions, struct kv_buf *out)
{
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_backup(env, VAULT, name, out), KV_OK);
    /* each version: its unseal, its base64url, the cJSON copy; and the text */
    path_end(what, 3 * versions + 1, 0);
}

static void path_restore(const char *what, const char *name, const struct kv_buf *blob,
                         unsigned versions, enum kv_status want)
{
    struct ks_key *k = NULL;
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_restore(env, VAULT, blob->data, blob->len, NULL, &k), want);
    ks_key_free(k);
    /* the document's unseal; each version: its parsed string, its decoded bytes */
    path_end(what, want == KV_OK ? 1 + 2 * versions : 1, 0);
    if (want == KV_OK)
        delete_key(name);
}

/* Secure key release: an exportable copy of a known key, in the premium vault "p", released
 * for the recipient's RSA key. The unsealed material and the PKCS#8 (or oct bytes) the
 * release wraps are wiped; nothing of the key is left in freed blocks. */
static struct kv_buf target_n, target_e;

static void path_release(const char *what, const char *name, const struct ks_jwk *jwk,
                         enum ks_release_enc enc)
{
    static const char policy[] = "{\"version\":\"1.0.0\",\"anyOf\":[]}";
    struct ks_release_policy rp = {.set = 1, .data = (char *)policy};
    struct ks_import p = {
        .jwk = *jwk, .hsm = 1, .attrs = {.enabled = 1, .exportable = 1}, .release_policy = &rp};
    struct ks_key *k = NULL;
    CHECK_ST(ks_key_import(env, "p", name, &p, &k), KV_OK);
    ks_key_free(k);
    k = NULL;
    struct kv_buf wrapped = {0};
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_release(env, "p", name, NULL, policy, enc, &target_n, &target_e, &k, &wrapped),
             KV_OK);
    ks_key_free(k);
    kv_buf_free(&wrapped); /* the released key, under the recipient's key: not plaintext */
    /* the unsealed material is the registered plaintext; what the release wrapped (PKCS#8,
     * oct bytes) is made inside crypto.c, and the freed-block scan looks for it */
    path_end(what, 1, 0);
}

/* Bring your own key: the key wrapped (outside the path, as a release wraps it) for the
 * import-only KEK "kek" of the premium vault "p" (the known RSA key), imported: the KEK's material,
 * the AES key and the PKCS#8 or oct bytes opened in crypto.c, and the JWK parts made of them, are
 * wiped. */
static void path_byok(const char *what, const struct ks_jwk *jwk, enum ks_release_enc enc)
{
    struct ks_material *m = NULL;
    struct ks_byok b = {.kek_name = "kek", .enc = enc};
    CHECK_ST(ks_material_from_jwk(jwk, &m), KV_OK);
    if (m != NULL)
        CHECK_ST(ks_material_release(m, enc, &tk.rsa.n, &tk.rsa.e, &b.ciphertext), KV_OK);
    ks_material_free(m);
    struct ks_import p = {.jwk = {.kty = jwk->kty}, .byok = &b, .hsm = 1, .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    memos_reset();
    path_begin();
    CHECK_ST(ks_key_import(env, "p", "byok", &p, &k), KV_OK);
    ks_key_free(k);
    path_end(what, 1, 0);
    kv_buf_free(&b.ciphertext);
    k = NULL;
    CHECK_ST(ks_key_delete(env, "p", "byok", &k), KV_OK);
    ks_key_free(k);
}

static void release_setup(void)
{
    struct ks_vault v = {.soft_delete = 0, .retention_days = 7, .premium = 1};
    snprintf(v.name, sizeof(v.name), "p");
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    CHECK_ST(ks_vault_put(env, &v), KV_OK);
    EVP_PKEY *t = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    CHECK(t != NULL && tk_bn(t, OSSL_PKEY_PARAM_RSA_N, 0, &target_n) == 0 &&
          tk_bn(t, OSSL_PKEY_PARAM_RSA_E, 0, &target_e) == 0);
    EVP_PKEY_free(t);
}

static const char backup_ad[] = "kvmock key backup"; /* keys.c's associated data */

/* A backup whose second version's material is cut short by a bad character:
 * the first version is resealed, the second decoded in part, then refused. */
static void make_bad_backup(const struct kv_buf *good, struct kv_buf *bad)
{
    struct kv_buf plain = {0};
    CHECK_ST(ks_unseal(env->root_key, backup_ad, sizeof(backup_ad), good->data, good->len, &plain),
             KV_OK);
    cJSON *doc = cJSON_ParseWithLength((const char *)plain.data, plain.len);
    cJSON *versions = cJSON_GetObjectItemCaseSensitive(doc, "versions");
    cJSON *second = cJSON_GetArrayItem(versions, 1);
    cJSON *rec = cJSON_GetObjectItemCaseSensitive(second, "record");
    cJSON *mat = cJSON_GetObjectItemCaseSensitive(rec, "material");
    if (!cJSON_IsString(mat)) {
        fprintf(stderr, "backup document without a second material\n");
        check_failures++;
        cJSON_Delete(doc);
        kv_buf_wipe(&plain);
        return;
    }
    size_t ml = strlen(mat->valuestring);
    char *cut = malloc(ml + 1);
    memcpy(cut, mat->valuestring, ml + 1);
    cut[(ml - ml / 4) / 4 * 4] = '*'; /* three quarters decode, then a bad character */
    cJSON_ReplaceItemInObjectCaseSensitive(rec, "material", cJSON_CreateString(cut));
    sodium_memzero(cut, ml);
    free(cut);
    char *text = cJSON_PrintUnformatted(doc);
    CHECK_ST(ks_seal(env->root_key, backup_ad, sizeof(backup_ad), (unsigned char *)text,
                     strlen(text), bad),
             KV_OK);
    sodium_memzero(text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(doc);
    kv_buf_wipe(&plain);
}

static void path_seal(void)
{
    static const unsigned char ad[] = "v\0seal\0loc";
    struct kv_buf sealed = {0}, plain = {0};
    path_begin();
    CHECK_ST(ks_seal(env->root_key, ad, sizeof(ad), tk.ec.d.data, tk.ec.d.len, &sealed), KV_OK);
    CHECK_ST(ks_unseal(env->root_key, ad, sizeof(ad), sealed.data, sealed.len, &plain), KV_OK);
    CHECK(plain.len == tk.ec.d.len && memcmp(plain.data, tk.ec.d.data, plain.len) == 0);
    kv_buf_wipe(&plain);
    kv_buf_free(&sealed);
    path_end("seal and unseal EC d", 1, 0);
}

/* A base64url private part that turns bad near its end (a JWK "d" with a stray
 * character): the part decoded so far must not be freed unwiped. */
static void path_b64_refused(void)
{
    char *text = NULL;
    CHECK_ST(kv_b64url_encode(tk.rsa.d.data, tk.rsa.d.len, &text), KV_OK);
    size_t tl = strlen(text);
    text[tl - 3] = '*';
    struct kv_buf out = {0};
    path_begin();
    CHECK_ST(kv_b64url_decode(text, &out), KV_ERR_BAD_BASE64);
    path_end("base64url decode refused (RSA d)", 0, 0);
    sodium_memzero(text, tl);
    free(text);
}

/* ---- the detectors' self-check ----------------------------------------------------- */

static void self_check(void)
{
    int ok = 1;
    self_checking = 1;
    /* (b) a planted block of each form, from each allocator */
    struct {
        const char *form;
        enum ah_origin origin;
    } plant[] = {{"raw", AH_WRAPPED},
                 {"limbs (little-endian)", AH_WRAPPED},
                 {"base64url (+1)", AH_CJSON},
                 {"base64 (+2)", AH_WRAPPED},
                 {"hex", AH_WRAPPED}};
    for (size_t i = 0; i < sizeof(plant) / sizeof(plant[0]); i++) {
        unsigned char bytes[600], rev[300];
        char text[1200];
        size_t n = 0;
        const struct kv_buf *s = &tk.rsa.q;
        if (strcmp(plant[i].form, "raw") == 0) {
            memcpy(bytes, s->data, s->len);
            n = s->len;
        } else if (strcmp(plant[i].form, "limbs (little-endian)") == 0) {
            for (size_t j = 0; j < s->len; j++)
                rev[j] = s->data[s->len - 1 - j];
            memcpy(bytes, rev, s->len);
            n = s->len;
        } else if (strcmp(plant[i].form, "hex") == 0) {
            sodium_bin2hex(text, sizeof(text), s->data, s->len);
            n = strlen(text);
            memcpy(bytes, text, n);
        } else {
            /* the value one or two bytes into a longer encoded text */
            unsigned char in[300] = {0x30, 0x82};
            size_t shift = strstr(plant[i].form, "+1") ? 1 : 2;
            memcpy(in + shift, s->data, s->len);
            int variant = strncmp(plant[i].form, "base64url", 9) == 0
                              ? sodium_base64_VARIANT_URLSAFE_NO_PADDING
                              : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
            sodium_bin2base64(text, sizeof(text), in, s->len + shift, variant);
            n = strlen(text) < 80 ? strlen(text) : 80; /* only a part of it */
            memcpy(bytes, text + 8, n - 8);
            n -= 8;
        }
        path_begin();
        if (plant[i].origin == AH_CJSON) {
            char str[600];
            memcpy(str, bytes, n);
            str[n] = '\0';
            cJSON_Delete(cJSON_CreateString(str));
        } else {
            unsigned char *b = malloc(n + 3);
            memcpy(b + 3, bytes, n);
            free(b);
        }
        unsigned long found = path_end("self-check", 0, 1);
        printf("self-check: a planted %s copy of RSA q freed through %s: %s\n", plant[i].form,
               origin_name(plant[i].origin), found ? "found" : "NOT FOUND");
        ok &= found != 0;
    }
    /* a block OpenSSL frees: wiped by kvmock's allocator (keystore/crypto.c), or,
     * with --openssl-as-is, found */
    {
        path_begin();
        unsigned char *b = OPENSSL_malloc(tk.rsa.dp.len + 64);
        memset(b, 0x11, 64);
        memcpy(b + 64, tk.rsa.dp.data, tk.rsa.dp.len);
        OPENSSL_free(b);
        unsigned long wiped = cur.ossl_wipes;
        unsigned long found = path_end("self-check", 0, 1);
        printf("self-check: a copy of RSA dp freed with OPENSSL_free: %s\n",
               found   ? "found"
               : wiped ? "wiped by kvmock's allocator"
                       : "NOT FOUND, NOT WIPED");
        ok &= openssl_as_is ? found != 0 : wiped == 1 && found == 0;
    }
    /* a wiped block is not a find */
    path_begin();
    unsigned char *b = malloc(tk.ec.d.len);
    memcpy(b, tk.ec.d.data, tk.ec.d.len);
    sodium_memzero(b, tk.ec.d.len);
    free(b);
    unsigned long found = path_end("self-check", 0, 1);
    printf("self-check: a wiped copy of EC d: %s\n", found ? "FOUND" : "not found");
    ok &= found == 0;

    /* (a) plaintext freed without a wipe is reported, with a wipe it is not */
    static const unsigned char ad[] = "self";
    struct kv_buf sealed = {0}, plain = {0};
    CHECK_ST(ks_seal(env->root_key, ad, sizeof(ad), tk.oct.k.data, tk.oct.k.len, &sealed), KV_OK);
    path_begin();
    CHECK_ST(ks_unseal(env->root_key, ad, sizeof(ad), sealed.data, sealed.len, &plain), KV_OK);
    kv_buf_free(&plain); /* the bug: not wiped */
    unsigned long unwiped = cur.unwiped;
    found = path_end("self-check", 0, 1);
    printf("self-check: an unsealed buffer freed without a wipe: %s, its oct k %s\n",
           unwiped ? "reported" : "NOT REPORTED", found ? "found" : "NOT FOUND");
    ok &= unwiped == 1 && found != 0;
    path_begin();
    CHECK_ST(ks_unseal(env->root_key, ad, sizeof(ad), sealed.data, sealed.len, &plain), KV_OK);
    kv_buf_wipe(&plain);
    unwiped = cur.unwiped;
    unsigned long freed_wiped = cur.plain_freed;
    found = path_end("self-check", 0, 1);
    printf("self-check: an unsealed buffer wiped, then freed: %s\n",
           unwiped == 0 && freed_wiped == 1 && found == 0 ? "accepted" : "REPORTED");
    ok &= unwiped == 0 && freed_wiped == 1 && found == 0;
    kv_buf_free(&sealed);
    self_checking = 0;
    if (!ok) {
        fprintf(stderr, "the detectors failed their self-check\n");
        check_failures++;
    }
}

int main(int argc, char **argv)
{
    /* --openssl-as-is: OpenSSL's frees go through the counting allocator only,
     * not through kvmock's wiping one, to show what OpenSSL leaves behind */
    openssl_as_is = argc > 1 && strcmp(argv[1], "--openssl-as-is") == 0;
    if ((openssl_as_is ? ah_install() : ah_install_chained()) != 0) {
        fprintf(stderr, "OpenSSL allocated before the allocation hooks were installed\n");
        return 1;
    }
    kv_log_set_level((enum kv_log_level) - 1);
    arena = mmap(NULL, ARENA_SIZE, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    blocks = mmap(NULL, MAX_BLOCKS * sizeof(*blocks), PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    wins = calloc((size_t)1 << WIN_BITS, sizeof(*wins));
    if (arena == MAP_FAILED || blocks == MAP_FAILED || wins == NULL)
        return 1;
    if (tk_store_open(dir, VAULT, &env, &tk) != 0) {
        fprintf(stderr, "cannot open the store with the test keys in %s\n", dir);
        return 1;
    }
    ah_on_free(on_free);

    self_check();

    /* the keys the operations use: the known keys, imported */
    put_key("k-rsa", &tk.rsa);
    put_key("k-rsa", &tk.rsa); /* two versions */
    put_key("k-ec", &tk.ec);
    put_key("k-oct", &tk.oct);
    put_key("k-oct", &tk.oct);
    put_key("r-ec", &tk.ec);
    put_key("r-oct", &tk.oct);
    put_key("r-rsa", &tk.rsa);
    /* warm-up: OpenSSL fetches its algorithms once */
    path_create("warm-up", KS_KTY_EC, 0);
    if (check_failures)
        fprintf(stderr, "(the warm-up above is counted)\n");

    path_create("create RSA 2048", KS_KTY_RSA, 2048);
    path_create("create EC P-256", KS_KTY_EC, 0);
    path_create("create oct 256", KS_KTY_OCT, 256);
    path_import("import RSA 2048", &tk.rsa);
    path_import("import EC P-256", &tk.ec);
    path_import("import oct 256", &tk.oct);
    path_import_refused();
    path_keyop("unwrap RSA-OAEP-256 (cache miss)", "k-rsa", KS_ALG_RSA_OAEP_256, KS_OP_UNWRAP,
               KS_OP_WRAP);
    path_keyop("decrypt RSA1_5 (cache miss)", "k-rsa", KS_ALG_RSA1_5, KS_OP_DECRYPT, KS_OP_ENCRYPT);
    path_keyop("sign PS256 (cache miss)", "k-rsa", KS_ALG_PS256, KS_OP_SIGN, 0);
    path_keyop("sign ES256 (cache miss)", "k-ec", KS_ALG_ES256, KS_OP_SIGN, 0);
    path_keyop("unwrap A256KW (cache miss)", "k-oct", KS_ALG_A256KW, KS_OP_UNWRAP, KS_OP_WRAP);
    path_keyop("decrypt A256GCM (cache miss)", "k-oct", KS_ALG_A256GCM, KS_OP_DECRYPT,
               KS_OP_ENCRYPT);
    path_keyop("encrypt A256CBCPAD (cache miss)", "k-oct", KS_ALG_A256CBCPAD, KS_OP_ENCRYPT, 0);
    path_rotate("rotate RSA", "r-rsa");
    path_rotate("rotate EC", "r-ec");
    path_rotate("rotate oct", "r-oct");
    path_backup("backup RSA (2 versions)", "k-rsa", 2, &backups[0]);
    path_backup("backup EC", "k-ec", 1, &backups[1]);
    path_backup("backup oct (2 versions)", "k-oct", 2, &backups[2]);
    delete_key("k-rsa");
    delete_key("k-ec");
    delete_key("k-oct");
    path_restore("restore RSA (2 versions)", "k-rsa", &backups[0], 2, KV_OK);
    path_restore("restore EC", "k-ec", &backups[1], 1, KV_OK);
    path_restore("restore oct (2 versions)", "k-oct", &backups[2], 2, KV_OK);
    struct kv_buf bad = {0};
    make_bad_backup(&backups[0], &bad);
    path_restore("restore refused (cut material)", "k-rsa", &bad, 2, KV_ERR_BAD_BACKUP);
    kv_buf_free(&bad);
    path_seal();
    path_b64_refused();
    release_setup();
    path_release("release RSA (CKM_RSA_AES_KEY_WRAP)", "x-rsa", &tk.rsa,
                 KS_RELEASE_CKM_RSA_AES_KEY_WRAP);
    path_release("release EC (RSA_AES_KEY_WRAP_256)", "x-ec", &tk.ec,
                 KS_RELEASE_RSA_AES_KEY_WRAP_256);
    path_release("release oct (RSA_AES_KEY_WRAP_384)", "x-oct", &tk.oct,
                 KS_RELEASE_RSA_AES_KEY_WRAP_384);
    kv_buf_free(&target_n);
    kv_buf_free(&target_e);
    {
        /* bring your own key, into the premium vault "p" */
        struct ks_import kek = {
            .jwk = tk.rsa, .hsm = 1, .ops = KS_OP_IMPORT, .ops_set = 1, .attrs = {.enabled = 1}};
        struct ks_key *k = NULL;
        CHECK_ST(ks_key_import(env, "p", "kek", &kek, &k), KV_OK);
        ks_key_free(k);
    }
    path_byok("import EC P-256 by BYOK", &tk.ec, KS_RELEASE_CKM_RSA_AES_KEY_WRAP);
    path_byok("import oct 256 by BYOK", &tk.oct, KS_RELEASE_RSA_AES_KEY_WRAP_256);
    path_byok("import RSA 2048 by BYOK", &tk.rsa, KS_RELEASE_RSA_AES_KEY_WRAP_384);

    ah_on_free(NULL);
    for (size_t i = 0; i < 3; i++)
        kv_buf_free(&backups[i]);
    tk_free(&tk);
    ks_close(env);
    free(wins);
    check_remove_dir(dir);
    CHECK_DONE();
}
