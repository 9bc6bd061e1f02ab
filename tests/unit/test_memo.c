/* The memo of parsed records: a hit needs the same id and byte-identical record;
 * slots go in sets of two, each replacing its less recently used slot. */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "kv_status.h"
#include "memo.h"

struct obj {
    int value;
    char *text; /* owned: the copy is deep */
};

static int fail_copies;

static int obj_copy(void *dst, const void *src)
{
    const struct obj *s = src;
    struct obj *d = dst;
    if (fail_copies)
        return -1;
    d->value = s->value;
    d->text = strdup(s->text);
    return d->text ? 0 : -1;
}

static void obj_clear(void *p)
{
    free(((struct obj *)p)->text);
}

/* Clear what a hit copied out, so that a later miss leaves nothing to free twice. */
static void drop(struct obj *o)
{
    obj_clear(o);
    o->text = NULL;
}

int main(void)
{
    CHECK(ks_memo_new(0, sizeof(struct obj), obj_copy, obj_clear) == NULL);
    struct ks_memo *m = ks_memo_new(4, sizeof(struct obj), obj_copy, obj_clear);
    CHECK(m != NULL);
    if (m == NULL)
        CHECK_DONE();
    struct obj a = {1, "one"}, out = {0, NULL};
    CHECK(!ks_memo_get(m, "id", 2, "rec-1", 5, &out)); /* empty */
    ks_memo_put(m, "id", 2, "rec-1", 5, &a);
    CHECK(ks_memo_get(m, "id", 2, "rec-1", 5, &out));
    CHECK(out.value == 1 && out.text != NULL && strcmp(out.text, "one") == 0 && out.text != a.text);
    obj_clear(&out);

    /* any other byte, length or id is a miss */
    CHECK(!ks_memo_get(m, "id", 2, "rec-2", 5, &out));
    CHECK(!ks_memo_get(m, "id", 2, "rec-1x", 6, &out));
    CHECK(!ks_memo_get(m, "id", 2, "rec-", 4, &out));
    CHECK(!ks_memo_get(m, "ie", 2, "rec-1", 5, &out));

    /* a put replaces what the slot held; many ids share four slots */
    struct obj b = {2, "two"};
    ks_memo_put(m, "id", 2, "rec-2", 5, &b);
    CHECK(!ks_memo_get(m, "id", 2, "rec-1", 5, &out));
    CHECK(ks_memo_get(m, "id", 2, "rec-2", 5, &out) && out.value == 2);
    obj_clear(&out);
    char id[16];
    int right = 1;
    for (int i = 0; i < 100; i++) {
        snprintf(id, sizeof(id), "k%d", i);
        struct obj o = {i, id};
        ks_memo_put(m, id, strlen(id), id, strlen(id), &o);
        struct obj got = {0, NULL};
        if (!ks_memo_get(m, id, strlen(id), id, strlen(id), &got) || got.value != i)
            right = 0;
        obj_clear(&got);
    }
    CHECK(right);

    /* two slots are one set: two records are both remembered, and a third
     * replaces the one used less recently */
    struct ks_memo *two = ks_memo_new(2, sizeof(struct obj), obj_copy, obj_clear);
    CHECK(two != NULL);
    if (two == NULL)
        CHECK_DONE();
    struct obj x = {10, "x"}, y = {11, "y"}, z = {12, "z"};
    ks_memo_put(two, "x", 1, "rx", 2, &x);
    ks_memo_put(two, "y", 1, "ry", 2, &y);
    CHECK(ks_memo_get(two, "x", 1, "rx", 2, &out) && out.value == 10);
    drop(&out);
    CHECK(ks_memo_get(two, "y", 1, "ry", 2, &out) && out.value == 11);
    drop(&out);
    CHECK(ks_memo_get(two, "x", 1, "rx", 2, &out)); /* x is now the recent one */
    drop(&out);
    ks_memo_put(two, "z", 1, "rz", 2, &z);
    CHECK(!ks_memo_get(two, "y", 1, "ry", 2, &out));
    CHECK(ks_memo_get(two, "x", 1, "rx", 2, &out) && out.value == 10);
    drop(&out);
    CHECK(ks_memo_get(two, "z", 1, "rz", 2, &out) && out.value == 12);
    drop(&out);
    /* a changed record of a remembered id takes that id's slot, not the other */
    struct obj x2 = {20, "x2"};
    ks_memo_put(two, "x", 1, "rx2", 3, &x2);
    CHECK(!ks_memo_get(two, "x", 1, "rx", 2, &out));
    CHECK(ks_memo_get(two, "x", 1, "rx2", 3, &out) && out.value == 20);
    drop(&out);
    CHECK(ks_memo_get(two, "z", 1, "rz", 2, &out) && out.value == 12);
    drop(&out);
    ks_memo_free(two);

    /* a failing copy: no hit on get, nothing stored on put */
    fail_copies = 1;
    CHECK(!ks_memo_get(m, "k99", 3, "k99", 3, &out));
    ks_memo_put(m, "new", 3, "r", 1, &a);
    fail_copies = 0;
    CHECK(!ks_memo_get(m, "new", 3, "r", 1, &out));
    ks_memo_free(m);
    ks_memo_free(NULL);
    CHECK_DONE();
}
