/* Requests: path segments, query parameters, headers and bodies. */
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_str.h"
#include "srv.h"

/* Request ids (x-ms-request-id) are version-4 UUIDs. Their 122 free bits are
 * a key drawn once per process and the count of requests so far, put through
 * a bijection of 62-bit values: an id never repeats within a process (for
 * 2^62 requests), ids of two processes differ, and a request makes no system
 * call for it (libsodium's randombytes_buf is one getrandom() each). An id
 * only names a request; nothing relies on it being unpredictable. */
static uint64_t rid_key[2];
static atomic_uint_fast64_t rid_count;
static pthread_once_t rid_once = PTHREAD_ONCE_INIT;

static void rid_init(void)
{
    randombytes_buf(rid_key, sizeof(rid_key));
}

/* A bijection of [0, 2^62): xor-shifts and multiplications by odd numbers,
 * each invertible modulo 2^62. */
static uint64_t mix62(uint64_t x)
{
    const uint64_t m = (UINT64_C(1) << 62) - 1;
    x &= m;
    x ^= x >> 31;
    x = (x * UINT64_C(0xbf58476d1ce4e5b9)) & m;
    x ^= x >> 29;
    x = (x * UINT64_C(0x94d049bb133111eb)) & m;
    x ^= x >> 32;
    return x;
}

static void request_id(char out[37])
{
    pthread_once(&rid_once, rid_init);
    uint64_t n = atomic_fetch_add_explicit(&rid_count, 1, memory_order_relaxed);
    uint64_t hi = rid_key[0], lo = mix62(n ^ rid_key[1]);
    unsigned char b[16];
    for (int i = 0; i < 8; i++) {
        b[i] = (unsigned char)(hi >> (56 - 8 * i));
        b[8 + i] = (unsigned char)(lo >> (56 - 8 * i));
    }
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40); /* version 4 */
    b[8] = (unsigned char)(b[8] | 0x80);          /* variant 10: lo's top two bits are 0 */
    kv_str_uuid(out, b);
}

static int hex_digit(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Percent-decode @p s in place (form semantics when @p form: '+' is a space).
 * @return 0, or -1 on a bad escape ('%' not followed by two hex digits, which
 * mg_url_decode would pass through as it is) or when the result would contain
 * a NUL byte. */
static int decode_in_place(char *s, int form)
{
    for (const char *p = strchr(s, '%'); p != NULL; p = strchr(p + 1, '%')) {
        if (!hex_digit(p[1]) || !hex_digit(p[2]))
            return -1;
    }
    size_t len = strlen(s);
    int n = mg_url_decode(s, (int)len, s, (int)len + 1, form);
    if (n < 0 || (size_t)n != strlen(s))
        return -1;
    return 0;
}

static enum kv_status split_path(struct srv_req *req, const char *raw)
{
    req->path_buf = strdup(raw);
    if (req->path_buf == NULL)
        return KV_ERR_NOMEM;
    char *p = req->path_buf;
    if (*p == '/')
        p++;
    for (;;) {
        if (req->nseg == SRV_MAX_SEGMENTS)
            return KV_ERR_ROUTE_NOT_FOUND;
        req->seg[req->nseg++] = p;
        char *slash = strchr(p, '/');
        if (slash != NULL)
            *slash = '\0';
        if (decode_in_place(p, 0) != 0)
            return KV_ERR_BAD_PARAM;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    return KV_OK;
}

static enum kv_status split_query(struct srv_req *req, const char *qs)
{
    req->query_buf = strdup(qs);
    if (req->query_buf == NULL)
        return KV_ERR_NOMEM;
    char *save = NULL;
    for (char *pair = strtok_r(req->query_buf, "&", &save); pair != NULL;
         pair = strtok_r(NULL, "&", &save)) {
        if (req->nquery == SRV_MAX_QUERY)
            return KV_ERR_BAD_PARAM;
        char *eq = strchr(pair, '=');
        char *value = eq ? eq + 1 : pair + strlen(pair);
        if (eq != NULL)
            *eq = '\0';
        if (decode_in_place(pair, 1) != 0 || decode_in_place(value, 1) != 0)
            return KV_ERR_BAD_PARAM;
        req->query[req->nquery].name = pair;
        req->query[req->nquery].value = value;
        req->nquery++;
    }
    return KV_OK;
}

int64_t srv_monotonic_us(void)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

enum kv_status srv_req_init(struct srv_req *req, struct mg_connection *conn,
                            const struct srv *srv)
{
    memset(req, 0, sizeof(*req));
    req->conn = conn;
    req->srv = srv;
    req->ri = mg_get_request_info(conn);
    req->is_https = req->ri->is_ssl;
    req->start_us = srv_monotonic_us();

    request_id(req->request_id);
    const char *cid = mg_get_header(conn, "x-ms-client-request-id");
    size_t clen = cid != NULL ? strlen(cid) : 0;
    int visible = clen > 0 && clen <= SRV_CLIENT_REQUEST_ID_MAX;
    for (size_t i = 0; visible && i < clen; i++)
        visible = cid[i] > ' ' && cid[i] < 0x7f;
    if (visible)
        memcpy(req->client_request_id, cid, clen + 1);

    /* The Host as sent, when it looks like one: ids and links are built from it. */
    const char *host = mg_get_header(conn, "Host");
    if (host != NULL && strlen(host) < sizeof(req->host) &&
        strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") ==
            strlen(host))
        memcpy(req->host, host, strlen(host) + 1);

    const char *raw = req->ri->local_uri_raw;
    if (raw == NULL || raw[0] != '/')
        return KV_ERR_ROUTE_NOT_FOUND;
    enum kv_status st = split_path(req, raw);
    if (st == KV_OK && req->ri->query_string != NULL)
        st = split_query(req, req->ri->query_string);
    return st;
}

void srv_req_release(struct srv_req *req)
{
    free(req->path_buf);
    free(req->query_buf);
    cJSON_Delete(req->body);
    req->path_buf = req->query_buf = NULL;
    req->body = NULL;
}

const char *srv_query_get(const struct srv_req *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++) {
        if (strcasecmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    }
    return NULL;
}

const char *srv_header(const struct srv_req *req, const char *name)
{
    return mg_get_header(req->conn, name);
}

/* Whether host[:port] @p h (@p len bytes) names the loopback interface. */
static int loopback_host(const char *h, size_t len)
{
    if (len > 0 && h[0] == '[')
        return len >= 5 && strncmp(h, "[::1]", 5) == 0 && (len == 5 || h[5] == ':');
    size_t n = 0;
    while (n < len && h[n] != ':')
        n++;
    if (n == 9 && strncasecmp(h, "localhost", 9) == 0)
        return 1;
    if (n > 10 && strncasecmp(h + n - 10, ".localhost", 10) == 0)
        return 1;
    unsigned a, b, c, d;
    char tail;
    char ip[16];
    if (n == 0 || n >= sizeof(ip))
        return 0;
    memcpy(ip, h, n);
    ip[n] = '\0';
    return sscanf(ip, "%u.%u.%u.%u%c", &a, &b, &c, &d, &tail) == 4 && a == 127 && b < 256 &&
           c < 256 && d < 256;
}

int srv_local_only(const struct srv_req *req)
{
    const char *ip = req->ri->remote_addr;
    if (!(strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0 ||
          strncmp(ip, "::ffff:127.", 11) == 0))
        return 0;
    const char *host = srv_header(req, "Host");
    if (host != NULL && !loopback_host(host, strlen(host)))
        return 0;
    const char *site = srv_header(req, "Sec-Fetch-Site");
    if (site != NULL && strcasecmp(site, "cross-site") == 0)
        return 0;
    const char *origin = srv_header(req, "Origin");
    if (origin == NULL)
        return 1;
    const char *o = strstr(origin, "://");
    if (o == NULL)
        return 0; /* "null" (a sandboxed or file: page), or not an origin */
    o += 3;
    return loopback_host(o, strcspn(o, "/"));
}

enum kv_status srv_read_body(struct srv_req *req, size_t max, char **out, size_t *out_len)
{
    long long declared = req->ri->content_length;
    if (declared > (long long)max)
        return KV_ERR_BODY_TOO_LARGE;
    size_t cap = declared > 0 ? (size_t)declared + 1 : 4096, len = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return KV_ERR_NOMEM;
    /* RFC 9110 10.1.1: a client that expects 100-continue waits for it (curl a second)
     * before it sends the body */
    const char *expect = srv_header(req, "Expect");
    if (expect != NULL && strcasecmp(expect, "100-continue") == 0 &&
        req->ri->http_version != NULL && strcmp(req->ri->http_version, "1.1") == 0)
        mg_write(req->conn, "HTTP/1.1 100 Continue\r\n\r\n", 25);
    for (;;) {
        if (len + 1 == cap) {
            if (cap > max) {
                free(buf);
                return KV_ERR_BODY_TOO_LARGE;
            }
            size_t ncap = cap * 2 > max + 2 ? max + 2 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                free(buf);
                return KV_ERR_NOMEM;
            }
            buf = nb;
            cap = ncap;
        }
        int n = mg_read(req->conn, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t)n;
        if (len > max) {
            free(buf);
            return KV_ERR_BODY_TOO_LARGE;
        }
    }
    buf[len] = '\0';
    *out = buf;
    if (out_len != NULL)
        *out_len = len;
    return KV_OK;
}

enum kv_status srv_read_json_body(struct srv_req *req)
{
    char *text = NULL;
    size_t len = 0;
    enum kv_status st = srv_read_body(req, SRV_BODY_MAX, &text, &len);
    if (st != KV_OK)
        return st;
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\r' || text[i] == '\n'))
        i++;
    /* cJSON's "require null terminated" wants the NUL inside the length; a NUL
     * inside the body itself is refused first. */
    cJSON *doc = NULL;
    if (i == len)
        doc = cJSON_CreateObject();
    else if (strlen(text) == len)
        doc = cJSON_ParseWithLengthOpts(text, len + 1, NULL, 1);
    free(text);
    if (doc == NULL || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return KV_ERR_BAD_JSON;
    }
    req->body = doc;
    return KV_OK;
}
