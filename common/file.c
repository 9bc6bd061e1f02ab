#include "kv_file.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kv_log.h"

static int write_all(int fd, const unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int read_all(int fd, unsigned char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

enum kv_status kv_file_write_atomic(const char *path, const void *data, size_t len, unsigned mode)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
        return KV_ERR_STORE;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0) {
        kv_log(KV_LOG_ERROR, "cannot create %s: %s", tmp, strerror(errno));
        return KV_ERR_STORE;
    }
    int bad = fchmod(fd, (mode_t)mode) != 0 || write_all(fd, data, len) != 0 || fsync(fd) != 0;
    if (close(fd) != 0)
        bad = 1;
    if (bad || rename(tmp, path) != 0) {
        kv_log(KV_LOG_ERROR, "cannot write %s: %s", path, strerror(errno));
        unlink(tmp);
        return KV_ERR_STORE;
    }
    return KV_OK;
}

enum kv_status kv_secret_file(const char *path, unsigned char *out, size_t len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
        unsigned char *fresh = malloc(len);
        if (fresh == NULL)
            return KV_ERR_STORE;
        randombytes_buf(fresh, len);
        enum kv_status st = kv_file_write_atomic(path, fresh, len, 0600);
        if (st == KV_OK)
            memcpy(out, fresh, len);
        sodium_memzero(fresh, len);
        free(fresh);
        return st;
    }
    if (fd < 0) {
        kv_log(KV_LOG_ERROR, "cannot open %s: %s", path, strerror(errno));
        return KV_ERR_STORE;
    }
    struct stat sb;
    enum kv_status st = KV_ERR_STORE;
    if (fstat(fd, &sb) != 0) {
        kv_log(KV_LOG_ERROR, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if ((sb.st_mode & 077) != 0) {
        kv_log(KV_LOG_ERROR, "%s is readable by others (mode %03o); it must be 0600", path,
               (unsigned)(sb.st_mode & 0777));
        goto out;
    }
    if (sb.st_size != (off_t)len || read_all(fd, out, len) != 0) {
        kv_log(KV_LOG_ERROR, "%s is not a %zu-byte secret", path, len);
        sodium_memzero(out, len);
        goto out;
    }
    st = KV_OK;
out:
    close(fd);
    return st;
}

enum kv_status kv_file_read(const char *path, size_t max, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return KV_ERR_STORE;
    enum kv_status st = KV_ERR_STORE;
    char *buf = NULL;
    size_t cap = 0, len = 0;
    for (;;) {
        if (len + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 4096;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                st = KV_ERR_NOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (len > max)
            goto out;
        if (n == 0)
            break;
    }
    if (ferror(f))
        goto out;
    buf[len] = '\0';
    *out = buf;
    buf = NULL;
    if (out_len)
        *out_len = len;
    st = KV_OK;
out:
    free(buf);
    fclose(f);
    return st;
}
