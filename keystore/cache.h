/**
 * @file cache.h
 * @brief Parsed key material cache (keystore-internal).
 *
 * Maps a version's location (vault\0name\0version) to its parsed material, so
 * an operation does not re-open the seal or re-parse DER each time. Entries
 * are reference counted: a material stays valid while a caller holds it, even
 * if it is evicted meanwhile. Thread-safe.
 */
#ifndef KS_CACHE_H
#define KS_CACHE_H

#include <stddef.h>

struct ks_material;
struct ks_cache;
struct ks_cache_ref; /**< a held entry */

/** @brief Create a cache of at most @p capacity entries. @return NULL when out of memory. */
struct ks_cache *ks_cache_new(size_t capacity);

/** @brief Free the cache and every material no caller holds. NULL is a no-op. */
void ks_cache_free(struct ks_cache *cache);

/**
 * @brief Look up a material and take a reference on it.
 * @return the held entry (release with ks_cache_release()) or NULL when absent.
 */
struct ks_cache_ref *ks_cache_get(struct ks_cache *cache, const void *key, size_t key_len);

/**
 * @brief Insert @p m (the cache takes ownership) and take a reference on the
 * cached material. If another thread inserted the same key first, @p m is freed
 * and that one is returned.
 * @return the held entry (release with ks_cache_release()), or NULL when
 * out of memory (then @p m has been freed).
 */
struct ks_cache_ref *ks_cache_put(struct ks_cache *cache, const void *key, size_t key_len,
                                  struct ks_material *m);

/** @brief The material of a held entry; valid until ks_cache_release(). */
const struct ks_material *ks_cache_material(const struct ks_cache_ref *ref);

/** @brief Drop a reference taken by ks_cache_get() or ks_cache_put(). NULL is a no-op. */
void ks_cache_release(struct ks_cache *cache, struct ks_cache_ref *ref);

/** @brief Remove an entry (e.g. after a purge). Holders keep their reference. */
void ks_cache_remove(struct ks_cache *cache, const void *key, size_t key_len);

#endif
