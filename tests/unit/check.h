/* Minimal assertion helpers for kvmock's unit tests. */
#ifndef KV_CHECK_H
#define KV_CHECK_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int check_failures;

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);            \
            check_failures++;                                                                    \
        }                                                                                        \
    } while (0)

#define CHECK_ST(expr, want)                                                                     \
    do {                                                                                         \
        enum kv_status check_st_ = (expr);                                                       \
        if (check_st_ != (want)) {                                                               \
            fprintf(stderr, "%s:%d: %s gave %s, want %s\n", __FILE__, __LINE__, #expr,           \
                    kv_status_name(check_st_), kv_status_name(want));                            \
            check_failures++;                                                                    \
        }                                                                                        \
    } while (0)

#define CHECK_STR(a, b)                                                                          \
    do {                                                                                         \
        const char *check_a_ = (a), *check_b_ = (b);                                             \
        if (check_a_ == NULL || check_b_ == NULL || strcmp(check_a_, check_b_) != 0) {           \
            fprintf(stderr, "%s:%d: \"%s\" != \"%s\"\n", __FILE__, __LINE__,                     \
                    check_a_ ? check_a_ : "(null)", check_b_ ? check_b_ : "(null)");             \
            check_failures++;                                                                    \
        }                                                                                        \
    } while (0)

#define CHECK_DONE()                                                                             \
    do {                                                                                         \
        if (check_failures) {                                                                    \
            fprintf(stderr, "%d check(s) failed\n", check_failures);                             \
            return 1;                                                                            \
        }                                                                                        \
        printf("ok\n");                                                                          \
        return 0;                                                                                \
    } while (0)

/* Remove a test's data folder and the files in it (it holds no sub-folders). */
static inline void check_remove_dir(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char path[512];
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        unlink(path);
    }
    if (d != NULL)
        closedir(d);
    rmdir(dir);
}

#endif
