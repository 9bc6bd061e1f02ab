/*
 * The audit log: one record per audited call, in the shape of Key Vault's
 * AuditEvent diagnostic log, appended to the keystore's audit table.
 * Records name callers, vaults, key ids and results; never tokens, bodies or
 * key material.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kv_log.h"
#include "srv.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "NoContent";
    case 400: return "BadRequest";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "NotFound";
    case 405: return "MethodNotAllowed";
    case 409: return "Conflict";
    default: return status >= 500 ? "InternalServerError" : "Other";
    }
}

void srv_audit(struct srv_req *req)
{
    if (req->operation == NULL || req->audited)
        return;
    req->audited = 1;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t duration = (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000 - req->start_ms;

    char when[32], uri[SRV_HOST_MAX + 600], id[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
    time_t t = (time_t)ks_now();
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    snprintf(uri, sizeof(uri), "%s://%s%.512s", req->is_https ? "https" : "http", req->host,
             req->ri->local_uri_raw);
    id[0] = '\0';
    if (req->key_name[0] != '\0')
        snprintf(id, sizeof(id), "https://%s/keys/%s%s%s", req->host, req->key_name,
                 req->version[0] ? "/" : "", req->version);

    cJSON *o = cJSON_CreateObject();
    cJSON *identity = o ? cJSON_AddObjectToObject(o, "identity") : NULL;
    cJSON *claim = identity ? cJSON_AddObjectToObject(identity, "claim") : NULL;
    cJSON *props = o ? cJSON_AddObjectToObject(o, "properties") : NULL;
    char *text = NULL;
    int ok = claim && props && cJSON_AddStringToObject(o, "time", when) &&
             cJSON_AddStringToObject(o, "category", "AuditEvent") &&
             cJSON_AddStringToObject(o, "operationName", req->operation) &&
             cJSON_AddStringToObject(o, "resultType",
                                     req->status >= 200 && req->status < 300 ? "Success"
                                                                             : "Failure") &&
             cJSON_AddStringToObject(o, "resultSignature", reason(req->status)) &&
             cJSON_AddNumberToObject(o, "durationMs", (double)duration) &&
             cJSON_AddStringToObject(o, "callerIpAddress", req->ri->remote_addr) &&
             cJSON_AddStringToObject(o, "correlationId", req->request_id) &&
             cJSON_AddStringToObject(claim, "oid", req->who.oid) &&
             cJSON_AddStringToObject(claim, "appid", req->who.appid) &&
             cJSON_AddStringToObject(claim, "tid", req->who.tid) &&
             cJSON_AddStringToObject(props, "id", id) &&
             cJSON_AddNumberToObject(props, "httpStatusCode", req->status) &&
             cJSON_AddStringToObject(props, "requestUri", uri) &&
             cJSON_AddBoolToObject(props, "isAccessPolicyMatch", req->policy_match) &&
             cJSON_AddStringToObject(props, "vault", req->vault);
    if (ok)
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text == NULL ||
        ks_record_append(req->srv->ks, KS_TABLE_AUDIT, text, strlen(text), NULL) != KV_OK)
        kv_log(KV_LOG_WARN, "request %s: audit record not written", req->request_id);
    cJSON_free(text);
}

/* ---- reading ---------------------------------------------------------------------------- */

struct page_arg {
    cJSON *value;
    int max, count;
    unsigned char next[8];
    int more;
};

static enum kv_status page_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                              void *arg)
{
    struct page_arg *a = arg;
    if (a->count == a->max) {
        if (key_len == 8)
            memcpy(a->next, key, 8);
        a->more = 1;
        return KV_ERR_BAD_PARAM; /* stops the scan; not an error for the caller */
    }
    cJSON *rec = cJSON_ParseWithLength(val, val_len);
    if (rec != NULL && !cJSON_AddItemToArray(a->value, rec)) {
        cJSON_Delete(rec);
        return KV_ERR_NOMEM;
    }
    a->count++;
    return KV_OK;
}

void srv_audit_page(struct srv_req *req)
{
    const char *m = srv_query_get(req, "maxresults");
    const char *token = srv_query_get(req, "$skiptoken");
    int max = AUDIT_PAGE_DEFAULT;
    if (m != NULL) {
        char *end = NULL;
        long v = strtol(m, &end, 10);
        if (m[0] == '\0' || *end != '\0' || v < 1 || v > AUDIT_PAGE_MAX) {
            srv_send_error(req, KV_ERR_BAD_MAXRESULTS, "maxresults must be 1 to 1000.");
            return;
        }
        max = (int)v;
    }
    unsigned char from[8];
    if (token != NULL) {
        char *end = NULL;
        unsigned long long seq = strtoull(token, &end, 10);
        if (token[0] == '\0' || *end != '\0' || seq == 0) {
            srv_send_error(req, KV_ERR_BAD_SKIPTOKEN, NULL);
            return;
        }
        for (int i = 0; i < 8; i++)
            from[i] = (unsigned char)(seq >> (56 - 8 * i));
    }
    cJSON *doc = cJSON_CreateObject();
    struct page_arg a = {doc ? cJSON_AddArrayToObject(doc, "value") : NULL, max, 0, {0}, 0};
    if (a.value == NULL) {
        cJSON_Delete(doc);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    enum kv_status st = ks_record_scan(req->srv->ks, KS_TABLE_AUDIT, NULL, 0,
                                       token ? from : NULL, 8, page_fn, &a);
    if (st != KV_OK && !(st == KV_ERR_BAD_PARAM && a.more)) {
        cJSON_Delete(doc);
        srv_send_error(req, st, NULL);
        return;
    }
    int ok;
    if (a.more) {
        unsigned long long seq = 0;
        for (int i = 0; i < 8; i++)
            seq = (seq << 8) | a.next[i];
        char link[SRV_HOST_MAX + 96];
        snprintf(link, sizeof(link), "http://%s/admin/audit?maxresults=%d&$skiptoken=%llu",
                 req->host, max, seq);
        ok = cJSON_AddStringToObject(doc, "nextLink", link) != NULL;
    } else {
        ok = cJSON_AddNullToObject(doc, "nextLink") != NULL;
    }
    srv_send_json(req, 200, ok ? doc : (cJSON_Delete(doc), NULL));
}

static enum kv_status dump_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                              void *arg)
{
    (void)key;
    (void)key_len;
    (void)arg;
    fwrite(val, 1, val_len, stdout);
    fputc('\n', stdout);
    return KV_OK;
}

int srv_audit_dump(const char *data_dir)
{
    struct ks_env *ks = NULL;
    struct ks_open_opts opts = {.data_dir = data_dir};
    char path[4096];
    snprintf(path, sizeof(path), "%s/kvmock.mdb", data_dir);
    if (access(path, R_OK) != 0 || ks_open(&opts, &ks) != KV_OK) {
        fprintf(stderr, "kvmock audit: cannot open the data folder '%s'\n", data_dir);
        return 1;
    }
    enum kv_status st = ks_record_scan(ks, KS_TABLE_AUDIT, NULL, 0, NULL, 0, dump_fn, NULL);
    ks_close(ks);
    return st == KV_OK ? 0 : 1;
}
