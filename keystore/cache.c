#include "cache.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"

struct ks_cache_ref {
    struct ks_cache_ref *next; /**< bucket chain */
    struct ks_material *m;
    int refs;    /**< holders, plus one while the entry is in the table */
    size_t ring_slot; /**< index in the eviction ring */
    size_t key_len;
    unsigned char key[];
};

struct ks_cache {
    pthread_mutex_t lock;
    size_t capacity, count, nbuckets;
    struct ks_cache_ref **buckets;
    struct ks_cache_ref **ring; /**< insertion order, for eviction */
    size_t ring_head;
};

static uint64_t hash(const unsigned char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

struct ks_cache *ks_cache_new(size_t capacity)
{
    struct ks_cache *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->capacity = capacity > 0 ? capacity : 1;
    c->nbuckets = 1;
    while (c->nbuckets < c->capacity * 2)
        c->nbuckets <<= 1;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    c->ring = calloc(c->capacity, sizeof(*c->ring));
    if (c->buckets == NULL || c->ring == NULL || pthread_mutex_init(&c->lock, NULL) != 0) {
        free(c->buckets);
        free(c->ring);
        free(c);
        return NULL;
    }
    return c;
}

static void unref(struct ks_cache_ref *e)
{
    if (--e->refs == 0) {
        ks_material_free(e->m);
        free(e);
    }
}

/* Unlink @p e from the table (lock held). */
static void unlink_entry(struct ks_cache *c, struct ks_cache_ref *e)
{
    struct ks_cache_ref **pp = &c->buckets[hash(e->key, e->key_len) & (c->nbuckets - 1)];
    while (*pp != NULL && *pp != e)
        pp = &(*pp)->next;
    if (*pp == e)
        *pp = e->next;
    c->ring[e->ring_slot] = NULL;
    c->count--;
    unref(e);
}

void ks_cache_free(struct ks_cache *c)
{
    if (c == NULL)
        return;
    for (size_t b = 0; b < c->nbuckets; b++) {
        struct ks_cache_ref *e = c->buckets[b];
        while (e != NULL) {
            struct ks_cache_ref *next = e->next;
            unref(e);
            e = next;
        }
    }
    pthread_mutex_destroy(&c->lock);
    free(c->buckets);
    free(c->ring);
    free(c);
}

static struct ks_cache_ref *find(struct ks_cache *c, const void *key, size_t key_len)
{
    struct ks_cache_ref *e = c->buckets[hash(key, key_len) & (c->nbuckets - 1)];
    for (; e != NULL; e = e->next) {
        if (e->key_len == key_len && memcmp(e->key, key, key_len) == 0)
            return e;
    }
    return NULL;
}

struct ks_cache_ref *ks_cache_get(struct ks_cache *c, const void *key, size_t key_len)
{
    pthread_mutex_lock(&c->lock);
    struct ks_cache_ref *e = find(c, key, key_len);
    if (e != NULL)
        e->refs++;
    pthread_mutex_unlock(&c->lock);
    return e;
}

struct ks_cache_ref *ks_cache_put(struct ks_cache *c, const void *key, size_t key_len,
                                  struct ks_material *m)
{
    struct ks_cache_ref *fresh = malloc(sizeof(*fresh) + key_len);
    if (fresh == NULL) {
        ks_material_free(m);
        return NULL;
    }
    fresh->m = m;
    fresh->refs = 2; /* the table and the caller */
    fresh->key_len = key_len;
    memcpy(fresh->key, key, key_len);

    pthread_mutex_lock(&c->lock);
    struct ks_cache_ref *e = find(c, key, key_len);
    if (e != NULL) {
        e->refs++;
        pthread_mutex_unlock(&c->lock);
        ks_material_free(m);
        free(fresh);
        return e;
    }
    /* Evict the oldest entry in the ring slot we are about to take. */
    struct ks_cache_ref *old = c->ring[c->ring_head];
    if (old != NULL)
        unlink_entry(c, old);
    c->ring[c->ring_head] = fresh;
    fresh->ring_slot = c->ring_head;
    c->ring_head = (c->ring_head + 1) % c->capacity;
    size_t b = hash(key, key_len) & (c->nbuckets - 1);
    fresh->next = c->buckets[b];
    c->buckets[b] = fresh;
    c->count++;
    pthread_mutex_unlock(&c->lock);
    return fresh;
}

const struct ks_material *ks_cache_material(const struct ks_cache_ref *ref)
{
    return ref->m;
}

void ks_cache_release(struct ks_cache *c, struct ks_cache_ref *ref)
{
    if (ref == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    unref(ref);
    pthread_mutex_unlock(&c->lock);
}

void ks_cache_remove(struct ks_cache *c, const void *key, size_t key_len)
{
    pthread_mutex_lock(&c->lock);
    struct ks_cache_ref *e = find(c, key, key_len);
    if (e != NULL)
        unlink_entry(c, e);
    pthread_mutex_unlock(&c->lock);
}
