/* Bounded text joining without printf (kv_str.h). */
#include "kv_str.h"

#include <ctype.h>
#include <sodium.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>

/* Append @p n bytes of @p p at *@p len, as many as fit before the final NUL. */
static int add(char *out, size_t cap, size_t *len, const char *p, size_t n)
{
    size_t room = cap - 1 - *len;
    int whole = n <= room;
    if (!whole)
        n = room;
    memcpy(out + *len, p, n);
    *len += n;
    return whole;
}

static int join_rest(char *out, size_t cap, size_t len, int whole, va_list ap)
{
    for (const char *p = va_arg(ap, const char *); p != NULL; p = va_arg(ap, const char *))
        whole &= add(out, cap, &len, p, strlen(p));
    out[len] = '\0';
    return whole;
}

int kv_str_join(char *out, size_t cap, ...)
{
    va_list ap;
    va_start(ap, cap);
    int whole = join_rest(out, cap, 0, 1, ap);
    va_end(ap);
    return whole;
}

int kv_str_join_n(char *out, size_t cap, const char *p1, size_t n1, ...)
{
    size_t len = 0;
    size_t n = strnlen(p1, n1);
    int whole = add(out, cap, &len, p1, n);
    va_list ap;
    va_start(ap, n1);
    whole = join_rest(out, cap, len, whole, ap);
    va_end(ap);
    return whole;
}

void kv_str_uuid(char out[37], const unsigned char bytes[16])
{
    static const char hex[] = "0123456789abcdef";
    char *d = out;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            *d++ = '-';
        *d++ = hex[bytes[i] >> 4];
        *d++ = hex[bytes[i] & 15];
    }
    *d = '\0';
}

void kv_str_uuid_random(char out[37])
{
    unsigned char b[16];
    randombytes_buf(b, sizeof(b));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80); /* variant 10 */
    kv_str_uuid(out, b);
}

int kv_str_is_uuid(const char *s)
{
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        int dash = i == 8 || i == 13 || i == 18 || i == 23;
        int hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
        if (dash ? c != '-' : !hex)
            return 0;
    }
    return s[36] == '\0';
}

static char *digits(char *d, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        d[i] = (char)('0' + v % 10);
        v /= 10;
    }
    return d + n;
}

void kv_str_utc(char out[21], int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (gmtime_r(&tt, &tm) == NULL || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900) {
        memset(&tm, 0, sizeof(tm));
        tm.tm_year = -1900;
        tm.tm_mday = 1;
    }
    char *d = digits(out, tm.tm_year + 1900, 4);
    *d++ = '-';
    d = digits(d, tm.tm_mon + 1, 2);
    *d++ = '-';
    d = digits(d, tm.tm_mday, 2);
    *d++ = 'T';
    d = digits(d, tm.tm_hour, 2);
    *d++ = ':';
    d = digits(d, tm.tm_min, 2);
    *d++ = ':';
    d = digits(d, tm.tm_sec, 2);
    *d++ = 'Z';
    *d = '\0';
}

void kv_str_lower(char *s)
{
    for (; *s != '\0'; s++)
        *s = (char)tolower((unsigned char)*s);
}

void kv_str_region(const char *location, char *out, size_t cap)
{
    size_t n = 0;
    for (const char *c = location; *c != '\0' && n + 1 < cap; c++) {
        if (isalnum((unsigned char)*c))
            out[n++] = (char)tolower((unsigned char)*c);
    }
    out[n] = '\0';
}
