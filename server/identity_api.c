/*
 * Managed-identity token endpoints on the HTTP port, in the shapes the Azure
 * identity libraries call:
 *
 *   App Service   GET  /msi/token?api-version=2019-08-01&resource=R   X-IDENTITY-HEADER
 *   Azure ML      GET  /msi/token?api-version=2017-09-01&resource=R   secret
 *   Cloud Shell   POST /msi/token  (form body resource=R)             Metadata: true
 *   IMDS          GET  /metadata/identity/oauth2/token[/]?resource=R  Metadata: true
 *
 * Errors are 400 JSON in the OAuth shape: the libraries read a 400 as "no
 * identity here" and never retry it, unlike a 5xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv_log.h"
#include "srv.h"

#define FORM_MAX 4096

enum mi_flavour { MI_APP_SERVICE, MI_IMDS };

static void send_oauth_error(struct srv_req *req, const char *error, const char *description)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc != NULL && (cJSON_AddStringToObject(doc, "error", error) == NULL ||
                        cJSON_AddStringToObject(doc, "error_description", description) == NULL)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 400, doc);
}

/* The path, without one trailing slash, compared case-insensitively. */
static int raw_path_is(const struct srv_req *req, const char *want)
{
    const char *p = req->ri->local_uri_raw;
    size_t n = strlen(want);
    return strncasecmp(p, want, n) == 0 && (p[n] == '\0' || (p[n] == '/' && p[n + 1] == '\0'));
}

static int header_equals(const struct srv_req *req, const char *name, const char *want)
{
    const char *v = srv_header(req, name);
    if (v == NULL || want[0] == '\0')
        return 0;
    size_t a = strlen(v), b = strlen(want);
    /* constant time over the expected value's length */
    unsigned char diff = (unsigned char)(a != b);
    for (size_t i = 0; i < b; i++)
        diff |= (unsigned char)(i < a ? v[i] ^ want[i] : 1);
    return diff == 0;
}

/* Parameters of a token request: query string, and for Cloud Shell a form body. */
struct mi_params {
    char *form; /* owned copy of the body, split in place */
    const char *resource, *client_id, *object_id, *resource_id;
};

static void form_lookup(struct mi_params *p, char *form)
{
    char *save = NULL;
    for (char *pair = strtok_r(form, "&", &save); pair; pair = strtok_r(NULL, "&", &save)) {
        char *eq = strchr(pair, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        char *v = eq + 1;
        size_t len = strlen(v);
        if (mg_url_decode(v, (int)len, v, (int)len + 1, 1) < 0)
            continue;
        if (strcmp(pair, "resource") == 0)
            p->resource = v;
        else if (strcmp(pair, "client_id") == 0 || strcmp(pair, "clientid") == 0)
            p->client_id = v;
        else if (strcmp(pair, "object_id") == 0)
            p->object_id = v;
        else if (strcmp(pair, "mi_res_id") == 0 || strcmp(pair, "msi_res_id") == 0)
            p->resource_id = v;
    }
}

static void query_lookup(const struct srv_req *req, struct mi_params *p)
{
    p->resource = srv_query_get(req, "resource");
    p->client_id = srv_query_get(req, "client_id");
    if (p->client_id == NULL)
        p->client_id = srv_query_get(req, "clientid");
    p->object_id = srv_query_get(req, "object_id");
    p->resource_id = srv_query_get(req, "mi_res_id");
    if (p->resource_id == NULL)
        p->resource_id = srv_query_get(req, "msi_res_id");
}

static void issue(struct srv_req *req, const struct mi_params *p)
{
    if (p->resource == NULL || p->resource[0] == '\0') {
        send_oauth_error(req, "invalid_request", "The 'resource' parameter is required.");
        return;
    }
    int selectors = (p->client_id != NULL) + (p->object_id != NULL) + (p->resource_id != NULL);
    if (selectors > 1) {
        send_oauth_error(req, "invalid_request",
                         "Give at most one of client_id, object_id and mi_res_id.");
        return;
    }
    const struct pol_identity *id =
        pol_find_identity(req->srv->pol, p->client_id, p->object_id, p->resource_id);
    if (id == NULL) {
        send_oauth_error(req, "invalid_request", "Identity not found");
        return;
    }

    /* The audience is the resource without a trailing "/.default". */
    char aud[POL_AUD_MAX];
    size_t len = strlen(p->resource);
    if (len >= 9 && strcmp(p->resource + len - 9, "/.default") == 0)
        len -= 9;
    if (len >= sizeof(aud)) {
        send_oauth_error(req, "invalid_resource", "The resource is too long.");
        return;
    }
    snprintf(aud, sizeof(aud), "%.*s", (int)len, p->resource);

    char *token = NULL;
    int64_t now = ks_now(), exp = 0;
    if (pol_token_issue(req->srv->pol, id, aud, now, &token, &exp) != KV_OK) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    char expires_on[24], expires_in[24], not_before[24];
    snprintf(expires_on, sizeof(expires_on), "%lld", (long long)exp);
    snprintf(expires_in, sizeof(expires_in), "%lld", (long long)(exp - now));
    snprintf(not_before, sizeof(not_before), "%lld", (long long)now);

    cJSON *doc = cJSON_CreateObject();
    int ok = doc != NULL && cJSON_AddStringToObject(doc, "access_token", token) &&
             cJSON_AddStringToObject(doc, "refresh_token", "") &&
             cJSON_AddStringToObject(doc, "expires_on", expires_on) &&
             cJSON_AddStringToObject(doc, "expires_in", expires_in) &&
             cJSON_AddStringToObject(doc, "ext_expires_in", expires_in) &&
             cJSON_AddStringToObject(doc, "not_before", not_before) &&
             cJSON_AddStringToObject(doc, "resource", aud) &&
             cJSON_AddStringToObject(doc, "token_type", "Bearer") &&
             cJSON_AddStringToObject(doc, "client_id", id->client_id);
    free(token);
    if (!ok) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    kv_log(KV_LOG_DEBUG, "%s token issued to %s for %s", req->request_id, id->name, aud);
    srv_send_json(req, 200, doc);
}

static void app_service(struct srv_req *req)
{
    const char *method = req->ri->request_method;
    const char *secret = req->srv->identity_header;
    struct mi_params p = {0};

    if (strcmp(method, "GET") == 0 && (header_equals(req, "X-IDENTITY-HEADER", secret) ||
                                       header_equals(req, "secret", secret))) {
        query_lookup(req, &p);
        issue(req, &p);
        return;
    }
    if (strcmp(method, "POST") == 0 && header_equals(req, "Metadata", "true")) {
        /* Cloud Shell: the parameters come as a form body. */
        size_t len = 0;
        enum kv_status st = srv_read_body(req, FORM_MAX, &p.form, &len);
        if (st != KV_OK) {
            send_oauth_error(req, "invalid_request", "The request body is too large.");
            return;
        }
        query_lookup(req, &p);
        form_lookup(&p, p.form);
        issue(req, &p);
        free(p.form);
        return;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    send_oauth_error(req, "invalid_request",
                     srv_header(req, "X-IDENTITY-HEADER") || srv_header(req, "secret")
                         ? "The identity header does not match."
                         : "Required header X-IDENTITY-HEADER not specified");
}

static void imds(struct srv_req *req)
{
    struct mi_params p = {0};
    if (strcmp(req->ri->request_method, "GET") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    if (!header_equals(req, "Metadata", "true")) {
        send_oauth_error(req, "invalid_request", "Required metadata header not specified");
        return;
    }
    query_lookup(req, &p);
    issue(req, &p);
}

int srv_identity_endpoint(struct srv_req *req)
{
    if (raw_path_is(req, "/msi/token")) {
        app_service(req);
        return 1;
    }
    if (raw_path_is(req, "/metadata/identity/oauth2/token")) {
        imds(req);
        return 1;
    }
    return 0;
}
