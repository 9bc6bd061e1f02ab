#include "kv_log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static volatile int current_level = KV_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void kv_log_set_level(enum kv_log_level level)
{
    current_level = (int)level;
}

int kv_log_parse_level(const char *name, enum kv_log_level *out)
{
    for (int i = 0; i <= KV_LOG_DEBUG; i++) {
        if (strcmp(name, level_names[i]) == 0) {
            *out = (enum kv_log_level)i;
            return 0;
        }
    }
    return -1;
}

int kv_log_enabled(enum kv_log_level level)
{
    return (int)level <= current_level;
}

/* Append @p text to @p out as the inside of a JSON string. */
static size_t json_escape(char *out, size_t cap, const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p && n + 7 < cap; p++) {
        if (*p == '"' || *p == '\\') {
            out[n++] = '\\';
            out[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", *p);
        } else {
            out[n++] = (char)*p;
        }
    }
    out[n] = '\0';
    return n;
}

static void emit(enum kv_log_level level, const char *msg, const char *fields)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32], escaped[2048];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    json_escape(escaped, sizeof(escaped), msg);
    /* One fprintf call per line so that lines from threads do not interleave. */
    fprintf(stderr, "{\"time\":\"%s.%03ldZ\",\"level\":\"%s\",\"msg\":\"%s\"%s%s}\n", stamp,
            ts.tv_nsec / 1000000L, level_names[level], escaped, fields ? "," : "",
            fields ? fields : "");
}

void kv_log(enum kv_log_level level, const char *fmt, ...)
{
    if (!kv_log_enabled(level))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    emit(level, line, NULL);
}

void kv_log_fields(enum kv_log_level level, const char *msg, const char *fields)
{
    if (kv_log_enabled(level))
        emit(level, msg, fields);
}
