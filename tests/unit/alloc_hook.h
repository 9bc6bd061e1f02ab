/**
 * @file alloc_hook.h
 * @brief A counting allocator for the fault-injection and wipe tests.
 *
 * Every allocation of the code under test goes through one allocator:
 * - kvmock's own malloc/calloc/realloc/free/strdup/strndup calls, and LMDB's
 *   (linked statically into these tests), through the linker's `--wrap`;
 * - OpenSSL's, through CRYPTO_set_mem_functions() (ah_install() must run
 *   before OpenSSL allocates anything: first thing in main());
 * - cJSON's, through cJSON_InitHooks().
 *
 * libsodium's sodium_malloc (the root key), libc's own internal allocations
 * and the sanitizer runtime are not counted.
 *
 * The allocator keeps a table of live blocks (pointer, size, generation), so
 * the tests can count what an operation left behind, fail the N-th allocation,
 * and look inside a block when it is freed. Pointers in the table are stored
 * masked, so LeakSanitizer still reports a leaked block as unreachable.
 */
#ifndef KV_ALLOC_HOOK_H
#define KV_ALLOC_HOOK_H

#include <stddef.h>

/** @brief Route OpenSSL and cJSON through the allocator. @return 0, or -1 when too late. */
int ah_install(void);

/**
 * @brief As ah_install(), but when the program installed an OpenSSL allocator of
 * its own (kvmock wipes every block OpenSSL frees: keystore/crypto.c), OpenSSL's
 * calls go through it: its malloc/realloc/free calls are counted (as OpenSSL's)
 * and the free hook sees each block after that allocator is done with it.
 * @return 0, or -1 when too late.
 */
int ah_install_chained(void);

/** @brief Whether the calling thread is inside a chained OpenSSL allocator call. */
int ah_in_openssl(void);

/**
 * @brief Arm a failure: the @p n-th allocation from now returns NULL (0 disarms).
 * Also resets the allocation counter and the "hit" flag.
 */
void ah_arm(unsigned long n);

/** @brief Disarm; @return 1 when the armed allocation was reached (and failed). */
int ah_disarm(void);

/**
 * @brief While @p on, allocations are neither counted nor failed: for a call whose own
 * failure paths the test must not enter (a library's bug there).
 */
void ah_hold(int on);

/** @brief Allocations counted since the last ah_arm(). */
unsigned long ah_count(void);

/**
 * @brief Start a new generation: blocks allocated from now on carry it.
 * @return the new generation number.
 */
unsigned ah_generation_next(void);

/**
 * @brief Number of live blocks allocated in generation @p gen or later, not
 * counting OpenSSL's (it keeps caches: its leaks are LeakSanitizer's to find);
 * with @p report, print each one (size and allocating caller) to stderr.
 */
size_t ah_live_since(unsigned gen, int report);

/** @brief Record where each block is allocated (slow; for reports). */
void ah_record_frames(int on);

/** Who freed a block. */
enum ah_origin {
    AH_WRAPPED, /**< kvmock's code or LMDB (the wrapped free) */
    AH_CJSON,   /**< cJSON's free hook (cJSON_Delete, cJSON_free) */
    AH_OPENSSL, /**< OpenSSL's free hook */
};

/**
 * @brief Called with each block as it is freed (before the memory is released),
 * NULL to stop. @p caller is the return address of the free call (AH_WRAPPED).
 */
void ah_on_free(void (*fn)(const unsigned char *p, size_t n, enum ah_origin origin,
                           void *caller));

#endif
