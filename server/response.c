/* Responses: JSON bodies, errors and the Key Vault challenge. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kv_log.h"
#include "srv.h"

static void send_common(struct srv_req *req, int http_status, const char *content_type,
                        size_t len)
{
    char length[32];
    snprintf(length, sizeof(length), "%zu", len);
    req->status = http_status;
    /* The audit record is written before the answer leaves, so a client that saw
     * the answer finds the record. */
    srv_audit(req);
    mg_response_header_start(req->conn, http_status);
    if (content_type != NULL)
        mg_response_header_add(req->conn, "Content-Type", content_type, -1);
    mg_response_header_add(req->conn, "Content-Length", length, -1);
    mg_response_header_add(req->conn, "Cache-Control", "no-cache", -1);
    mg_response_header_add(req->conn, "x-ms-request-id", req->request_id, -1);
    mg_response_header_add(req->conn, "x-ms-keyvault-service-version", "kvmock", -1);
}

void srv_send_raw(struct srv_req *req, int http_status, const char *content_type,
                  const char *body, size_t len)
{
    send_common(req, http_status, content_type, len);
    mg_response_header_send(req->conn);
    if (len > 0)
        mg_write(req->conn, body, len);
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

    send_common(req, info->http_status, "application/json; charset=utf-8", strlen(body));
    if (st == KV_ERR_UNAUTHORIZED) {
        char challenge[SRV_HOST_MAX + 192];
        snprintf(challenge, sizeof(challenge),
                 "Bearer authorization=\"https://login.microsoftonline.com/%s\", "
                 "resource=\"%s\"",
                 pol_tenant(req->srv->pol), req->resource);
        mg_response_header_add(req->conn, "WWW-Authenticate", challenge, -1);
    }
    mg_response_header_send(req->conn);
    mg_write(req->conn, body, strlen(body));
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
