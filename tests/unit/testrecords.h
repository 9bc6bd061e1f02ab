/* Counting the records of other layers' tables (ks_record_scan), for the keystore's and the
 * fault-injection tests. */
#ifndef KV_TESTRECORDS_H
#define KV_TESTRECORDS_H

#include <stddef.h>

#include "check.h"
#include "ks.h"

static inline enum kv_status tr_tally(const void *key, size_t key_len, const void *val,
                                      size_t val_len, void *arg)
{
    (void)key;
    (void)key_len;
    (void)val;
    (void)val_len;
    ++*(size_t *)arg;
    return KV_OK;
}

/* How many records of table @p t have keys starting with @p prefix (NULL: all). */
static inline size_t tr_count(struct ks_env *env, enum ks_table t, const void *prefix, size_t len)
{
    size_t n = 0;
    CHECK_ST(ks_record_scan(env, t, prefix, len, NULL, 0, tr_tally, &n), KV_OK);
    return n;
}

#endif
