/* Parsed records, remembered by their bytes: see memo.h. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "memo.h"

struct slot {
    pthread_mutex_t mu;
    unsigned char *rec; /* id bytes, then record bytes */
    size_t id_len, rec_len;
    void *obj; /* NULL: empty */
};

struct ks_memo {
    size_t n, obj_size;
    ks_memo_copy_fn copy;
    ks_memo_clear_fn clear;
    struct slot slots[];
};

static int copy_obj(const struct ks_memo *m, void *dst, const void *src)
{
    if (m->copy != NULL)
        return m->copy(dst, src);
    memcpy(dst, src, m->obj_size);
    return 0;
}

static struct slot *slot_of(struct ks_memo *m, const void *id, size_t id_len)
{
    unsigned h = 2166136261u;
    for (size_t i = 0; i < id_len; i++)
        h = (h ^ ((const unsigned char *)id)[i]) * 16777619u;
    return &m->slots[h % m->n];
}

static void empty(struct ks_memo *m, struct slot *s)
{
    if (s->obj != NULL) {
        if (m->clear != NULL)
            m->clear(s->obj);
        free(s->obj);
    }
    free(s->rec);
    s->obj = NULL;
    s->rec = NULL;
    s->id_len = s->rec_len = 0;
}

struct ks_memo *ks_memo_new(size_t slots, size_t obj_size, ks_memo_copy_fn copy,
                            ks_memo_clear_fn clear)
{
    if (slots == 0)
        return NULL;
    struct ks_memo *m = calloc(1, sizeof(*m) + slots * sizeof(struct slot));
    if (m == NULL)
        return NULL;
    m->n = slots;
    m->obj_size = obj_size;
    m->copy = copy;
    m->clear = clear;
    for (size_t i = 0; i < slots; i++)
        pthread_mutex_init(&m->slots[i].mu, NULL);
    return m;
}

void ks_memo_free(struct ks_memo *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        empty(m, &m->slots[i]);
        pthread_mutex_destroy(&m->slots[i].mu);
    }
    free(m);
}

int ks_memo_get(struct ks_memo *m, const void *id, size_t id_len, const void *rec,
                size_t rec_len, void *out)
{
    struct slot *s = slot_of(m, id, id_len);
    int hit = 0;
    pthread_mutex_lock(&s->mu);
    if (s->obj != NULL && s->id_len == id_len && s->rec_len == rec_len &&
        memcmp(s->rec, id, id_len) == 0 && memcmp(s->rec + id_len, rec, rec_len) == 0)
        hit = copy_obj(m, out, s->obj) == 0;
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
    struct slot *s = slot_of(m, id, id_len);
    pthread_mutex_lock(&s->mu);
    empty(m, s);
    s->rec = bytes;
    s->id_len = id_len;
    s->rec_len = rec_len;
    s->obj = dup;
    pthread_mutex_unlock(&s->mu);
}
