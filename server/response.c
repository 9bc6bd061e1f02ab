/* Responses: JSON bodies, errors and the Key Vault challenge. */
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_ip.h"
#include "kv_log.h"
#include "kv_str.h"
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

/* The Date header's value; formatted once a second per thread. */
static const char *http_date(void)
{
    static __thread time_t last = -1;
    static __thread char text[40];
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

/* Response headers being written; `over` once they do not fit. */
struct head {
    char buf[SRV_HOST_MAX * 2 + 1024];
    size_t len;
    int over;
};

static void hput(struct head *h, const char *s)
{
    size_t n = strlen(s);
    if (h->over || n >= sizeof(h->buf) - h->len) {
        h->over = 1;
        return;
    }
    memcpy(h->buf + h->len, s, n);
    h->len += n;
}

static void hput_num(struct head *h, size_t v)
{
    char text[24], *p = text + sizeof(text);
    *--p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    hput(h, p);
}

/* One header line; nothing when @p value is NULL. */
static void hline(struct head *h, const char *name, const char *value)
{
    if (value == NULL)
        return;
    hput(h, name);
    hput(h, ": ");
    hput(h, value);
    hput(h, "\r\n");
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

    struct head h;
    h.len = 0;
    h.over = 0;
    hput(&h, "HTTP/");
    hput(&h, req->ri->http_version ? req->ri->http_version : "1.0");
    hput(&h, " ");
    hput_num(&h, (size_t)http_status);
    hput(&h, " ");
    hput(&h, mg_get_response_code_text(req->conn, http_status));
    hput(&h, "\r\n");
    hline(&h, "Content-Type", content_type);
    if (http_status != 204) { /* RFC 9110 8.6: a 204 carries no Content-Length */
        hput(&h, "Content-Length: ");
        hput_num(&h, len);
        hput(&h, "\r\n");
    }
    hput(&h, "Cache-Control: no-cache\r\n");
    hline(&h, "x-ms-request-id", req->request_id);
    if (req->client_request_id[0] != '\0')
        hline(&h, "x-ms-client-request-id", req->client_request_id);
    hput(&h, "x-ms-keyvault-service-version: kvmock\r\n");
    if (req->data_plane) { /* the address a vault's firewall rule must name */
        const char *addr = kv_ip_unmapped(req->ri->remote_addr);
        int v6 = strchr(addr, ':') != NULL;
        hput(&h, v6 ? "x-ms-keyvault-network-info: conn_type=Ipv6;addr="
                    : "x-ms-keyvault-network-info: conn_type=Ipv4;addr=");
        hput(&h, addr);
        hput(&h, v6 ? ";act_addr_fam=InterNetworkV6;\r\n" : ";act_addr_fam=InterNetwork;\r\n");
    }
    if (req->region[0] != '\0')
        hline(&h, "x-ms-keyvault-region", req->region);
    hline(&h, "WWW-Authenticate", challenge);
    if (req->async_operation != NULL) { /* a job has ended already: a second is enough */
        hline(&h, "Azure-AsyncOperation", req->async_operation);
        hput(&h, "Retry-After: 1\r\n");
    }
    hline(&h, "Date", http_date());
    hline(&h, "Connection", keep_alive(req) ? "keep-alive" : "close");
    hput(&h, "\r\n");
    if (h.over) {
        kv_log(KV_LOG_ERROR, "request %s: response headers do not fit", req->request_id);
        return;
    }
    size_t n = h.len;
    /* RFC 9110 9.3.2: the answer to HEAD is the headers of a GET's, without the body */
    if (strcmp(req->ri->request_method, "HEAD") == 0)
        len = 0;
    char *one = len > 0 && len <= SEND_COPY_MAX ? malloc(n + len) : NULL;
    if (one != NULL) {
        memcpy(one, h.buf, n);
        memcpy(one + n, body, len);
        mg_write(req->conn, one, n + len);
        sodium_memzero(one, n + len); /* the body may be unwrapped key bytes */
        free(one);
        return;
    }
    mg_write(req->conn, h.buf, n);
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

void srv_send_json_text(struct srv_req *req, int http_status, struct kv_json *j)
{
    size_t len = 0;
    char *text = kv_json_take(j, &len);
    if (text == NULL) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    srv_send_raw(req, http_status, "application/json; charset=utf-8", text, len);
    sodium_memzero(text, len);
    free(text);
}

void srv_base_url(const struct srv_req *req, char *out, size_t cap)
{
    kv_str_join(out, cap, req->is_https ? "https://" : "http://", req->host, NULL);
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
    /* the audit record's resultDescription */
    snprintf(req->error, sizeof(req->error), "%s", message ? message : info->message);
    if (info->inner_code != NULL) {
        cJSON *inner = cJSON_AddObjectToObject(err, "innererror");
        cJSON_AddStringToObject(inner, "code", info->inner_code);
    }
    char *text = cJSON_PrintUnformatted(doc);
    cJSON_Delete(doc);
    static const char fallback[] =
        "{\"error\":{\"code\":\"InternalServerError\",\"message\":\"Out of memory.\"}}";
    const char *body = text ? text : fallback;

    /* Every 401 carries a challenge (RFC 9110 15.5.2): Key Vault's names its authority and
     * resource; Resource Manager's is the one its SDKs' challenge parsers know */
    char challenge[SRV_HOST_MAX + 192];
    const char *shown = NULL;
    if (st == KV_ERR_UNAUTHORIZED) {
        snprintf(challenge, sizeof(challenge),
                 "Bearer authorization=\"https://login.microsoftonline.com/%s\", "
                 "resource=\"%s\"",
                 pol_tenant(req->srv->pol), req->resource);
        shown = challenge;
    } else if (info->http_status == 401) {
        shown = srv_header(req, "Authorization") == NULL
                    ? "Bearer authorization_uri=\"https://login.windows.net/\", "
                      "error=\"invalid_token\", error_description=\"The authentication failed "
                      "because of missing 'Authorization' header.\""
                    : "Bearer authorization_uri=\"https://login.windows.net/\", "
                      "error=\"invalid_token\", error_description=\"The access token is "
                      "invalid.\"";
    }
    send_response(req, info->http_status, "application/json; charset=utf-8", shown, body,
                  strlen(body));
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
