/* Parsed records, remembered by their bytes: see memo.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memo.h"

/*
 * Two ways per set: records whose ids hash to the same set can both be
 * remembered, and a new one replaces the one used less recently. With one way,
 * two records of a working set that shared a slot evicted each other on every
 * use: a page of 25 keys had two to four such records (bench/PROFILE.md).
 */
#define WAYS 2

struct entry {
    unsigned char *rec; /* id bytes, then record bytes */
    size_t id_len, rec_len;
    void *obj; /* NULL: empty */
};

struct set {
    pthread_mutex_t mu;
    struct entry way[WAYS];
    unsigned recent; /* the way hit or filled last */
};

struct ks_memo {
    size_t n, obj_size; /* sets */
    ks_memo_copy_fn copy;
    ks_memo_clear_fn clear;
    struct set sets[];
};

static int copy_obj(const struct ks_memo *m, void *dst, const void *src)
{
    if (m->copy != NULL)
        return m->copy(dst, src);
    memcpy(dst, src, m->obj_size);
    return 0;
}

static struct set *set_of(struct ks_memo *m, const void *id, size_t id_len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ ((const unsigned char *)id)[i]) * 16777619u;
    return &m->sets[h % m->n];
}

static int same_id(const struct entry *e, const void *id, size_t id_len)
{
    return e->obj != NULL && e->id_len == id_len && memcmp(e->rec, id, id_len) == 0;
}

static void empty(struct ks_memo *m, struct entry *e)
{
    if (e->obj != NULL) {
        if (m->clear != NULL)
            m->clear(e->obj);
        free(e->obj);
    }
    free(e->rec);
    *e = (struct entry){0};
}

struct ks_memo *ks_memo_new(size_t slots, size_t obj_size, ks_memo_copy_fn copy,
                            ks_memo_clear_fn clear)
{
    if (slots == 0)
        return NULL;
    size_t n = (slots + WAYS - 1) / WAYS;
    struct ks_memo *m = calloc(1, sizeof(*m) + n * sizeof(struct set));
    if (m == NULL)
        return NULL;
    m->n = n;
    m->obj_size = obj_size;
    m->copy = copy;
    m->clear = clear;
    for (size_t i = 0; i < n; i++)
        pthread_mutex_init(&m->sets[i].mu, NULL);
    return m;
}

void ks_memo_free(struct ks_memo *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        for (unsigned w = 0; w < WAYS; w++)
            empty(m, &m->sets[i].way[w]);
        pthread_mutex_destroy(&m->sets[i].mu);
    }
    free(m);
}

int ks_memo_get(struct ks_memo *m, const void *id, size_t id_len, const void *rec,
                size_t rec_len, void *out)
{
    struct set *s = set_of(m, id, id_len);
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    for (unsigned w = 0; w < WAYS; w++) {
        const struct entry *e = &s->way[w];
        if (same_id(e, id, id_len) && e->rec_len == rec_len &&
            memcmp(e->rec + id_len, rec, rec_len) == 0) {
            hit = copy_obj(m, out, e->obj) == 0;
            s->recent = w;
            break;
        }
    }
    pthread_mutex_unlock(&s->mu);
    return hit;
}

void ks_memo_put(struct ks_memo *m, const void *id, size_t id_len, const void *rec,
                 size_t rec_len, const void *obj)
{
    unsigned char *bytes = malloc(id_len + rec_len);
    void *dup = calloc(1, m->obj_size);
    if (bytes == NULL || dup == NULL || copy_obj(m, dup, obj) != 0) {
        free(bytes);
        free(dup); /* a failed copy frees what it took */
        return;
    }
    memcpy(bytes, id, id_len);
    memcpy(bytes + id_len, rec, rec_len);
    struct set *s = set_of(m, id, id_len);
    pthread_mutex_lock(&s->mu);
    /* the way that holds this id (its record changed), else an empty one, else
     * the one used less recently */
    unsigned w = WAYS;
    for (unsigned i = 0; i < WAYS && w == WAYS; i++)
        if (same_id(&s->way[i], id, id_len))
            w = i;
    for (unsigned i = 0; i < WAYS && w == WAYS; i++)
        if (s->way[i].obj == NULL)
            w = i;
    if (w == WAYS)
        w = (s->recent + 1) % WAYS;
    empty(m, &s->way[w]);
    s->way[w] = (struct entry){bytes, id_len, rec_len, dup};
    s->recent = w;
    pthread_mutex_unlock(&s->mu);
}
