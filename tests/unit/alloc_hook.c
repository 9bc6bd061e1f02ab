/* The counting allocator of the fault-injection and wipe tests (see alloc_hook.h).
 * Linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,
 * --wrap=strdup,--wrap=strndup (tests/CMakeLists.txt). */
#include "alloc_hook.h"

#include <cjson/cJSON.h>
#include <execinfo.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
void __real_free(void *p);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
void __wrap_free(void *p);
char *__wrap_strdup(const char *s);
char *__wrap_strndup(const char *s, size_t n);

/* Masked, so the table does not keep a leaked block reachable for LeakSanitizer. */
#define MASK ((uintptr_t)0xa5a5a5a5a5a5a5a5ULL)
#define TABLE_BITS 19
#define FRAMES 8
#define TABLE_SIZE ((size_t)1 << TABLE_BITS)

struct slot {
    uintptr_t key; /* masked pointer; 0 = empty */
    size_t size;
    unsigned gen;
    int openssl; /* allocated by OpenSSL: its caches are not counted as left behind */
    void *frames[FRAMES];
};

static struct slot *table;
static size_t live;
static size_t live_cur; /* live blocks of the current generation */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long count, fail_at;
static int held; /* ah_hold() */
static int hit;
static unsigned generation = 1;
static void (*free_cb)(const unsigned char *, size_t, enum ah_origin, void *);
/* ah_install_chained(): the program's own OpenSSL allocator, called inside ours */
static CRYPTO_malloc_fn chain_malloc;
static CRYPTO_realloc_fn chain_realloc;
static CRYPTO_free_fn chain_free;
static __thread int in_openssl; /* inside a chained OpenSSL allocator call */

static size_t slot_of(uintptr_t key)
{
    uint64_t h = (uint64_t)key * 0x9e3779b97f4a7c15ULL;
    return (size_t)(h >> (64 - TABLE_BITS));
}

static int table_ready(void)
{
    if (table == NULL)
        table = __real_calloc(TABLE_SIZE, sizeof(*table));
    return table != NULL;
}

static int want_frames;

static void track(void *p, size_t n, int openssl)
{
    if (p == NULL || !table_ready() || live + 1 >= TABLE_SIZE / 2)
        return;
    uintptr_t key = (uintptr_t)p ^ MASK;
    size_t i = slot_of(key);
    while (table[i].key != 0 && table[i].key != key)
        i = (i + 1) & (TABLE_SIZE - 1);
    if (table[i].key == 0)
        live++;
    else if (table[i].gen == generation && !table[i].openssl)
        live_cur--;
    table[i] = (struct slot){key, n, generation, openssl, {0}};
    if (want_frames)
        backtrace(table[i].frames, FRAMES);
    if (!openssl)
        live_cur++;
}

/* Remove @p p; @return 1 and its size when it was tracked. Backward-shift
 * deletion keeps the probe chains intact without tombstones. */
static int untrack(const void *p, size_t *size)
{
    if (p == NULL || table == NULL)
        return 0;
    uintptr_t key = (uintptr_t)p ^ MASK;
    size_t i = slot_of(key);
    while (table[i].key != key) {
        if (table[i].key == 0)
            return 0;
        i = (i + 1) & (TABLE_SIZE - 1);
    }
    *size = table[i].size;
    live--;
    if (table[i].gen == generation && !table[i].openssl)
        live_cur--;
    size_t j = i;
    for (;;) {
        table[i].key = 0;
        for (;;) {
            j = (j + 1) & (TABLE_SIZE - 1);
            if (table[j].key == 0)
                return 1;
            size_t home = slot_of(table[j].key);
            /* can the entry at j move to the hole at i? */
            if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
                break;
        }
        table[i] = table[j];
        i = j;
    }
}

/* Count an allocation; @return 1 when it must fail. */
static int should_fail(void)
{
    if (held)
        return 0;
    count++;
    if (fail_at != 0 && count == fail_at) {
        hit = 1;
        return 1;
    }
    return 0;
}

static void *do_malloc(size_t n, int openssl)
{
    pthread_mutex_lock(&lock);
    void *p = should_fail() ? NULL : __real_malloc(n ? n : 1);
    track(p, n, openssl);
    pthread_mutex_unlock(&lock);
    return p;
}

static void do_free(void *p, enum ah_origin origin, void *caller)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&lock);
    size_t n = 0;
    int known = untrack(p, &n);
    pthread_mutex_unlock(&lock);
    if (known && free_cb != NULL)
        free_cb(p, n, origin, caller);
    __real_free(p);
}

static void *do_realloc(void *p, size_t n, int openssl, void *caller)
{
    if (p == NULL)
        return do_malloc(n, openssl);
    pthread_mutex_lock(&lock);
    if (should_fail()) {
        pthread_mutex_unlock(&lock);
        return NULL;
    }
    size_t old = 0;
    int known = untrack(p, &old);
    pthread_mutex_unlock(&lock);
    /* A realloc leaves the old block's bytes behind: show them to the free hook
     * first, as a free would, when the block moves or shrinks. */
    if (known && free_cb != NULL)
        free_cb(p, old, openssl ? AH_OPENSSL : AH_WRAPPED, caller);
    void *q = __real_realloc(p, n ? n : 1);
    pthread_mutex_lock(&lock);
    track(q != NULL ? q : p, q != NULL ? n : old, openssl);
    pthread_mutex_unlock(&lock);
    return q;
}

void *__wrap_malloc(size_t n)
{
    return do_malloc(n, in_openssl > 0);
}

void *__wrap_calloc(size_t n, size_t size)
{
    if (size != 0 && n > SIZE_MAX / size)
        return NULL;
    void *p = do_malloc(n * size, in_openssl > 0);
    if (p != NULL)
        memset(p, 0, n * size);
    return p;
}

void *__wrap_realloc(void *p, size_t n)
{
    return do_realloc(p, n, in_openssl > 0, __builtin_return_address(0));
}

void __wrap_free(void *p)
{
    do_free(p, in_openssl > 0 ? AH_OPENSSL : AH_WRAPPED, __builtin_return_address(0));
}

char *__wrap_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = do_malloc(n, 0);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

char *__wrap_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *p = do_malloc(len + 1, 0);
    if (p != NULL) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
    if (chain_malloc != NULL) {
        in_openssl++;
        void *p = chain_malloc(n, file, line);
        in_openssl--;
        return p;
    }
    return do_malloc(n, 1);
}

static void *ossl_realloc(void *p, size_t n, const char *file, int line)
{
    if (chain_realloc != NULL) {
        in_openssl++;
        void *q = chain_realloc(p, n, file, line);
        in_openssl--;
        return q;
    }
    return do_realloc(p, n, 1, __builtin_return_address(0));
}

static void ossl_free(void *p, const char *file, int line)
{
    if (chain_free != NULL) {
        in_openssl++;
        chain_free(p, file, line);
        in_openssl--;
        return;
    }
    do_free(p, AH_OPENSSL, __builtin_return_address(0));
}

static void *cjson_malloc(size_t n)
{
    return do_malloc(n, 0);
}

static void cjson_free(void *p)
{
    do_free(p, AH_CJSON, __builtin_return_address(0));
}

void ah_record_frames(int on)
{
    want_frames = on;
}

int ah_install(void)
{
    void *warm[1];
    backtrace(warm, 1); /* loads the unwinder now, not inside an armed run */
    if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) != 1)
        return -1;
    cJSON_Hooks hooks = {cjson_malloc, cjson_free};
    cJSON_InitHooks(&hooks);
    return 0;
}

int ah_install_chained(void)
{
    CRYPTO_malloc_fn m = NULL;
    CRYPTO_realloc_fn r = NULL;
    CRYPTO_free_fn f = NULL;
    CRYPTO_get_mem_functions(&m, &r, &f);
    if (m != CRYPTO_malloc && r != CRYPTO_realloc && f != CRYPTO_free) {
        chain_malloc = m;
        chain_realloc = r;
        chain_free = f;
    }
    return ah_install();
}

int ah_in_openssl(void)
{
    return in_openssl > 0;
}

void ah_arm(unsigned long n)
{
    pthread_mutex_lock(&lock);
    count = 0;
    hit = 0;
    fail_at = n;
    pthread_mutex_unlock(&lock);
}

int ah_disarm(void)
{
    pthread_mutex_lock(&lock);
    fail_at = 0;
    int h = hit;
    pthread_mutex_unlock(&lock);
    return h;
}

void ah_hold(int on)
{
    pthread_mutex_lock(&lock);
    held = on;
    pthread_mutex_unlock(&lock);
}

unsigned long ah_count(void)
{
    return count;
}

unsigned ah_generation_next(void)
{
    pthread_mutex_lock(&lock);
    unsigned g = ++generation;
    live_cur = 0;
    pthread_mutex_unlock(&lock);
    return g;
}

size_t ah_live_since(unsigned gen, int report)
{
    size_t n = 0;
    pthread_mutex_lock(&lock);
    if (!report && gen == generation) {
        n = live_cur;
        pthread_mutex_unlock(&lock);
        return n;
    }
    for (size_t i = 0; table != NULL && i < TABLE_SIZE; i++) {
        if (table[i].key == 0 || table[i].gen < gen || table[i].openssl)
            continue;
        n++;
        if (report) {
            fprintf(stderr, "  live: %zu bytes at %p, allocated at\n", table[i].size,
                    (void *)(table[i].key ^ MASK));
            if (table[i].frames[0] != NULL)
                backtrace_symbols_fd(table[i].frames + 2, FRAMES - 2, 2);
        }
    }
    pthread_mutex_unlock(&lock);
    return n;
}

void ah_on_free(void (*fn)(const unsigned char *p, size_t n, enum ah_origin origin, void *caller))
{
    free_cb = fn;
}
