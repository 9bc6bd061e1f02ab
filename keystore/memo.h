/**
 * @file memo.h
 * @brief Parsed records, remembered by their bytes (keystore-internal).
 *
 * Reading a record from LMDB is cheap; parsing its JSON is not. A memo keeps,
 * per slot, the bytes of one record and what they parsed to. A lookup gives
 * the parsed object only when the record's bytes are exactly the remembered
 * ones, so nothing is ever stale and nothing has to be invalidated when a
 * record changes. Thread-safe. Slots go in sets of two, chosen by a hash of
 * the record's id; a new record takes the less recently used slot of its set.
 */
#ifndef KS_MEMO_H
#define KS_MEMO_H

#include <stddef.h>

/** Copy a parsed object into @p dst (deep). @return 0, or -1 when out of memory,
 *  leaving nothing owned in @p dst. */
typedef int (*ks_memo_copy_fn)(void *dst, const void *src);
/** Free what a copy owns (not the object's own memory). */
typedef void (*ks_memo_clear_fn)(void *obj);

struct ks_memo;

/**
 * @brief Create a memo of @p slots slots holding objects of @p obj_size bytes.
 * With @p copy and @p clear NULL the objects are plain data, copied with memcpy.
 * @return NULL when out of memory.
 */
struct ks_memo *ks_memo_new(size_t slots, size_t obj_size, ks_memo_copy_fn copy,
                            ks_memo_clear_fn clear);

/** @brief Free the memo and what it holds. NULL is a no-op. */
void ks_memo_free(struct ks_memo *m);

/**
 * @brief Copy into @p out the object remembered for record @p id whose bytes are
 * exactly @p rec.
 * @return 1 on a hit, 0 on a miss (or when the copy ran out of memory).
 */
int ks_memo_get(struct ks_memo *m, const void *id, size_t id_len, const void *rec,
                size_t rec_len, void *out);

/** @brief Remember that record @p id with bytes @p rec parses to @p obj (copied). */
void ks_memo_put(struct ks_memo *m, const void *id, size_t id_len, const void *rec,
                 size_t rec_len, const void *obj);

#endif
