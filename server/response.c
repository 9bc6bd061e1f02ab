/* Responses: JSON bodies, errors and the Key Vault challenge. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_log.h"
#include "srv.h"

/* Bodies up to this size are copied behind the headers and sent in one write. */
#define SEND_COPY_MAX (256 * 1024)

/* civetweb's rule: the client's Connection header if it sent one, else HTTP/1.1
 * keeps the connection. */
static int keep_alive(const struct srv_req *req)
{
    const char *c = srv_header(req, "Connection");
    if (c == NULL)
        return req->ri->http_version != NULL && strcmp(req->ri->http_version, "1.1") == 0;
    for (const char *p = c; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        size_t n = strcspn(p, " ,");
        if (n == 10 && strncasecmp(p, "keep-alive", 10) == 0)
            return 1;
        p += n;
    }
    return 0;
}

/*
 * Every answer leaves in one write (one TLS record, one TCP segment when it
 * fits): status line, headers and body formatted into one buffer. civetweb's
 * own header functions write each line separately. The audit record is
 * written first, so a client that saw the answer finds the record.
 */
static void send_response(struct srv_req *req, int http_status, const char *content_type,
                          const char *challenge, const char *body, size_t len)
{
    req->status = http_status;
    srv_audit(req);

    char date[64];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    char head[SRV_HOST_MAX * 2 + 1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/%s %d %s\r\n"
                     "%s%s%s"
                     "Content-Length: %zu\r\n"
                     "Cache-Control: no-cache\r\n"
                     "x-ms-request-id: %s\r\n"
                     "x-ms-keyvault-service-version: kvmock\r\n"
                     "%s%s%s"
                     "Date: %s\r\n"
                     "Connection: %s\r\n\r\n",
                     req->ri->http_version ? req->ri->http_version : "1.0", http_status,
                     mg_get_response_code_text(req->conn, http_status),
                     content_type ? "Content-Type: " : "", content_type ? content_type : "",
                     content_type ? "\r\n" : "", len, req->request_id,
                     challenge ? "WWW-Authenticate: " : "", challenge ? challenge : "",
                     challenge ? "\r\n" : "", date, keep_alive(req) ? "keep-alive" : "close");
    if (n < 0 || (size_t)n >= sizeof(head)) {
        kv_log(KV_LOG_ERROR, "request %s: response headers do not fit", req->request_id);
        return;
    }
    char *one = len > 0 && len <= SEND_COPY_MAX ? malloc((size_t)n + len) : NULL;
    if (one != NULL) {
        memcpy(one, head, (size_t)n);
        memcpy(one + n, body, len);
        mg_write(req->conn, one, (size_t)n + len);
        free(one);
        return;
    }
    mg_write(req->conn, head, (size_t)n);
    if (len > 0)
        mg_write(req->conn, body, len);
}

void srv_send_raw(struct srv_req *req, int http_status, const char *content_type,
                  const char *body, size_t len)
{
    send_response(req, http_status, content_type, NULL, body, len);
}

void srv_send_empty(struct srv_req *req, int http_status)
{
    srv_send_raw(req, http_status, NULL, NULL, 0);
}

void srv_send_json(struct srv_req *req, int http_status, cJSON *body)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    cJSON_Delete(body);
    if (text == NULL) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    srv_send_raw(req, http_status, "application/json; charset=utf-8", text, strlen(text));
    cJSON_free(text);
}

void srv_base_url(const struct srv_req *req, char *out, size_t cap)
{
    snprintf(out, cap, "%s://%s", req->is_https ? "https" : "http", req->host);
}

void srv_send_error(struct srv_req *req, enum kv_status st, const char *message)
{
    const struct kv_status_info *info = kv_status_info(st);
    if (info->http_status >= 500)
        kv_log(KV_LOG_ERROR, "request %s failed: %s", req->request_id, kv_status_name(st));

    /* Built by hand so that a failing allocation still yields a body. */
    cJSON *doc = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(err, "code", info->code);
    cJSON_AddStringToObject(err, "message", message ? message : info->message);
    if (info->inner_code != NULL) {
        cJSON *inner = cJSON_AddObjectToObject(err, "innererror");
        cJSON_AddStringToObject(inner, "code", info->inner_code);
    }
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    static const char fallback[] =
        "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"Out of memory.\"}}";
    const char *body = text ? text : fallback;

    char challenge[SRV_HOST_MAX + 192];
    if (st == KV_ERR_UNAUTHORIZED)
        snprintf(challenge, sizeof(challenge),
                 "Bearer authorization=\"https://login.microsoftonline.com/%s\", "
                 "resource=\"%s\"",
                 pol_tenant(req->srv->pol), req->resource);
    send_response(req, info->http_status, "application/json; charset=utf-8",
                  st == KV_ERR_UNAUTHORIZED ? challenge : NULL, body, strlen(body));
    cJSON_free(text);
}

void srv_send_errorf(struct srv_req *req, enum kv_status st, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    srv_send_error(req, st, message);
}
