/**
 * @file kv_log.h
 * @brief Leveled logging to standard error.
 *
 * Never pass key material, tokens or secrets to these functions.
 */
#ifndef KV_LOG_H
#define KV_LOG_H

enum kv_log_level { KV_LOG_ERROR = 0, KV_LOG_WARN, KV_LOG_INFO, KV_LOG_DEBUG };

/** @brief Set the most verbose level that is printed (default KV_LOG_INFO). */
void kv_log_set_level(enum kv_log_level level);

/**
 * @brief Parse "error", "warn", "info" or "debug".
 * @return 0 and sets @p out, or -1 for an unknown name.
 */
int kv_log_parse_level(const char *name, enum kv_log_level *out);

/** @brief Whether messages at @p level are printed. */
int kv_log_enabled(enum kv_log_level level);

/** @brief Print one line, prefixed with the time and the level, when @p level is enabled. */
void kv_log(enum kv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * @brief Log one JSON line with extra members: @p fields is the inside of a JSON
 * object (`"status":200,"vault":"default"`), already escaped, or NULL.
 */
void kv_log_fields(enum kv_log_level level, const char *msg, const char *fields);

#endif
