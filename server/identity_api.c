/*
 * Managed-identity token endpoints on the HTTP port, in the shapes the Azure
 * identity libraries call:
 *
 *   App Service   GET  /msi/token?api-version=2019-08-01&resource=R   X-IDENTITY-HEADER
 *   Azure ML      GET  /msi/token?api-version=2017-09-01&resource=R   secret
 *   Cloud Shell   POST /msi/token  (form body resource=R)             Metadata: true
 *                 GET  /msi/token?resource=R  (MSAL4J)                Metadata: true
 *   IMDS          GET  /metadata/identity/oauth2/token[/]?resource=R  Metadata: true
 *                 (also //metadata/..., as MSAL4J builds it from AZURE_POD_IDENTITY_AUTHORITY_HOST)
 *
 * and, on the HTTPS port, an Entra-shaped client-credentials authority for
 * identities with a client secret, certificates or federated credentials
 * (srv_entra_endpoint()):
 *
 *   GET  /{tenant}/v2.0/.well-known/openid-configuration
 *   GET  /{tenant}/discovery/v2.0/keys
 *   GET  /common/discovery/instance    MSAL's instance discovery (for a client that reaches
 *                                      kvmock as login.microsoftonline.com)
 *   POST /{tenant}/oauth2/v2.0/token   grant_type=client_credentials, client_id,
 *                                      client_secret or client_assertion_type=
 *                                      urn:ietf:params:oauth:client-assertion-type:jwt-bearer
 *                                      and client_assertion, scope=R/.default
 *   POST /{tenant}/oauth2/token        the same in Entra's v1 shape, resource=R
 *
 * Errors are 400 JSON in the OAuth shape: the libraries read a 400 as "no
 * identity here" and never retry it, unlike a 5xx.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sodium.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

#define FORM_MAX 4096
#define TOKEN_FORM_MAX POL_ASSERTION_MAX /* a client assertion may carry its chain (x5c) */
#define JWT_BEARER     "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

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

/* The path, without one trailing slash, compared case-insensitively. With @p extra_slashes,
 * the path may start with more than one slash. */
static int raw_path_is(const struct srv_req *req, const char *want, int extra_slashes)
{
    const char *p = req->ri->local_uri_raw;
    while (extra_slashes && p[0] == '/' && p[1] == '/')
        p++;
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
    const char *grant_type, *client_secret, *scope;
    const char *assertion_type, *assertion;
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
        else if (strcmp(pair, "grant_type") == 0)
            p->grant_type = v;
        else if (strcmp(pair, "client_secret") == 0)
            p->client_secret = v;
        else if (strcmp(pair, "scope") == 0)
            p->scope = v;
        else if (strcmp(pair, "client_assertion_type") == 0)
            p->assertion_type = v;
        else if (strcmp(pair, "client_assertion") == 0)
            p->assertion = v;
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
    /* Cloud Shell as MSAL4J asks it: a GET with the parameters in the query. A request that
     * names an identity header must still name the right one. */
    if (strcmp(method, "GET") == 0 && header_equals(req, "Metadata", "true") &&
        srv_header(req, "X-IDENTITY-HEADER") == NULL && srv_header(req, "secret") == NULL) {
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
    const char *why = "Required header X-IDENTITY-HEADER not specified";
    if (strcmp(method, "POST") == 0 &&
        (header_equals(req, "X-IDENTITY-HEADER", secret) || header_equals(req, "secret", secret)))
        why = "A request with an identity header is a GET (App Service, Azure ML); a POST is "
              "Cloud Shell's, with the header 'Metadata: true'.";
    else if (srv_header(req, "X-IDENTITY-HEADER") || srv_header(req, "secret"))
        why = "The identity header does not match.";
    send_oauth_error(req, "invalid_request", why);
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
    if (raw_path_is(req, "/msi/token", 0)) {
        app_service(req);
        return 1;
    }
    /* MSAL4J joins AZURE_POD_IDENTITY_AUTHORITY_HOST and the path with one slash too many */
    if (raw_path_is(req, "/metadata/identity/oauth2/token", 1)) {
        imds(req);
        return 1;
    }
    return 0;
}

/* ---- the Entra-shaped client-credentials authority (HTTPS port) ---------------------------- */

static void send_aad_error(struct srv_req *req, int status, const char *error,
                           const char *description)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc != NULL && (cJSON_AddStringToObject(doc, "error", error) == NULL ||
                        cJSON_AddStringToObject(doc, "error_description", description) == NULL ||
                        cJSON_AddStringToObject(doc, "correlation_id", req->request_id) == NULL)) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, status, doc);
}

static void openid_configuration(struct srv_req *req, const char *tenant)
{
    char base[SRV_HOST_MAX + 16 + POL_ID_MAX], v[SRV_HOST_MAX + 200];
    srv_base_url(req, base, sizeof(base) - POL_ID_MAX);
    size_t len = strlen(base);
    snprintf(base + len, sizeof(base) - len, "/%s", tenant);
    cJSON *doc = cJSON_CreateObject();
    cJSON *grants = doc ? cJSON_AddArrayToObject(doc, "grant_types_supported") : NULL;
    int ok = grants != NULL && cJSON_AddItemToArray(grants, cJSON_CreateString("client_credentials"));
    static const struct {
        const char *name, *suffix;
    } endpoints[] = {
        {"token_endpoint", "/oauth2/v2.0/token"},
        {"authorization_endpoint", "/oauth2/v2.0/authorize"},
        {"device_authorization_endpoint", "/oauth2/v2.0/devicecode"},
        {"end_session_endpoint", "/oauth2/v2.0/logout"},
        {"jwks_uri", "/discovery/v2.0/keys"},
        {"issuer", "/v2.0"},
    };
    cJSON *methods =
        doc ? cJSON_AddArrayToObject(doc, "token_endpoint_auth_methods_supported") : NULL;
    ok = ok && methods != NULL &&
         cJSON_AddItemToArray(methods, cJSON_CreateString("client_secret_post")) &&
         cJSON_AddItemToArray(methods, cJSON_CreateString("client_secret_basic")) &&
         cJSON_AddItemToArray(methods, cJSON_CreateString("private_key_jwt"));
    for (size_t i = 0; ok && i < sizeof(endpoints) / sizeof(endpoints[0]); i++) {
        snprintf(v, sizeof(v), "%s%s", base, endpoints[i].suffix);
        ok = cJSON_AddStringToObject(doc, endpoints[i].name, v) != NULL;
    }
    ok = ok && cJSON_AddStringToObject(doc, "tenant_region_scope", "WW") &&
         cJSON_AddStringToObject(doc, "cloud_instance_name", "kvmock");
    srv_send_json(req, 200, ok ? doc : (cJSON_Delete(doc), NULL));
}

/* Whether every space-separated item of @p scope after the first (of length @p n) is the
 * first again: a token is for one resource. */
static int one_resource(const char *scope, size_t n)
{
    for (const char *s = scope + n; *s != '\0';) {
        while (*s == ' ')
            s++;
        size_t len = strcspn(s, " ");
        if (len != 0 && (len != n || strncmp(s, scope, n) != 0))
            return 0;
        s += len;
    }
    return 1;
}

/* The token's audience from a v2.0 request's scope ("R/.default") or a v1 request's
 * resource. Returns 0 and answers the error when there is none. */
static int requested_audience(struct srv_req *req, const struct mi_params *p, int v1, char *aud,
                              size_t size)
{
    if (v1) {
        if (p->resource == NULL || p->resource[0] == '\0') {
            send_aad_error(req, 400, "invalid_request",
                           "AADSTS900144: The request body must contain the following "
                           "parameter: 'resource'.");
            return 0;
        }
        if (strlen(p->resource) >= size) {
            send_aad_error(req, 400, "invalid_resource", "AADSTS500011: The resource is too long.");
            return 0;
        }
        snprintf(aud, size, "%s", p->resource);
        return 1;
    }
    /* the first scope names the audience; the whole list must end in one too */
    size_t all = p->scope ? strlen(p->scope) : 0;
    const char *space = all ? strchr(p->scope, ' ') : NULL;
    size_t n = space ? (size_t)(space - p->scope) : all;
    if (all < 10 || strcmp(p->scope + all - 9, "/.default") != 0 || n < 10 ||
        strncmp(p->scope + n - 9, "/.default", 9) != 0 || n - 9 >= size) {
        send_aad_error(req, 400, "invalid_scope",
                       "AADSTS1002012: The scope must be a resource followed by /.default.");
        return 0;
    }
    if (!one_resource(p->scope, n)) { /* Entra's words: one token, one resource */
        char why[600];
        snprintf(why, sizeof(why),
                 "AADSTS70011: The provided value for the input parameter 'scope' is not valid. "
                 "The scope %.400s is not valid.",
                 p->scope);
        send_aad_error(req, 400, "invalid_scope", why);
        return 0;
    }
    snprintf(aud, size, "%.*s", (int)(n - 9), p->scope);
    return 1;
}

/* Entra's timestamps: 2024-10-02T22:05:03.0000000Z. */
static void iso_time(int64_t t, char *out, size_t size)
{
    char utc[21];
    kv_str_utc(utc, t); /* 2024-10-02T22:05:03Z */
    snprintf(out, size, "%.19s.0000000Z", utc);
}

/* A key credential's date as Entra quotes it: 02/07/2021 17:00:39 (UTC). */
static void us_time(int64_t t, char *out, size_t size)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (gmtime_r(&tt, &tm) == NULL || strftime(out, size, "%m/%d/%Y %H:%M:%S", &tm) == 0)
        snprintf(out, size, "%lld", (long long)t);
}

/* Entra's answer to a refused client assertion. */
static void send_assertion_error(struct srv_req *req, const struct pol_identity *id,
                                 enum pol_assertion res, const struct pol_assertion_info *info,
                                 const char *endpoint, int64_t now)
{
    static const char fic_hint[] =
        "Please note that the matching is done using a case-sensitive comparison. Check your "
        "federated identity credential Subject, Audience and Issuer against the presented "
        "assertion (kvmock: the identity's federatedCredentials in its configuration file).";
    char msg[2560], a[40], b[40], c[40];
    switch (res) {
    case POL_ASSERTION_OK:
        return;
    case POL_ASSERTION_NOMEM: /* the server's fault: not the client's assertion */
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    case POL_ASSERTION_MALFORMED:
        snprintf(msg, sizeof(msg), "AADSTS50027: Invalid JWT token: %s.",
                 info->detail ? info->detail : "malformed");
        break;
    case POL_ASSERTION_NO_THUMBPRINT:
        snprintf(msg, sizeof(msg),
                 "AADSTS50027: Invalid JWT token. No certificate thumbprint "
                 "specified in token header.");
        break;
    case POL_ASSERTION_KEY_NOT_FOUND:
        if (info->federated)
            snprintf(msg, sizeof(msg),
                     "AADSTS700027: Client assertion contains an invalid signature. [Reason - "
                     "The key was not found., Key id used by the issuer: '%s', Please see the "
                     "jwks of the federated credential for issuer '%s' of app Id '%s'.]",
                     info->key_id, info->iss, id->client_id);
        else
            snprintf(msg, sizeof(msg),
                     "AADSTS700027: The certificate with identifier used to sign the client "
                     "assertion is not registered on application. [Reason - The key was not "
                     "found., Thumbprint of key used by client: '%s', Please see the "
                     "clientCertificates of app Id '%s' in kvmock's configuration file.]",
                     info->key_id, id->client_id);
        break;
    case POL_ASSERTION_BAD_SIGNATURE:
        snprintf(msg, sizeof(msg),
                 "AADSTS700027: Client assertion contains an invalid signature. [Reason - The "
                 "provided signature value did not match the expected signature value., %s: "
                 "'%s']",
                 info->federated ? "Key id used by the issuer" : "Thumbprint of key used by client",
                 info->key_id);
        break;
    case POL_ASSERTION_KEY_EXPIRED:
        us_time(info->key_start, a, sizeof(a));
        us_time(info->key_end, b, sizeof(b));
        snprintf(msg, sizeof(msg),
                 "AADSTS700027: Client assertion contains an invalid signature. [Reason - The key "
                 "used is expired., Thumbprint of key used by client: '%s', Found key 'Start=%s, "
                 "End=%s']",
                 info->key_id, a, b);
        break;
    case POL_ASSERTION_AUDIENCE:
        snprintf(msg, sizeof(msg),
                 "AADSTS700023: Client assertion audience claim does not match Realm issuer. "
                 "The assertion's audience is '%s'; the token endpoint is '%s'.",
                 info->aud, endpoint);
        break;
    case POL_ASSERTION_TIME:
        iso_time(now, a, sizeof(a));
        iso_time(info->nbf, b, sizeof(b));
        iso_time(info->exp, c, sizeof(c));
        snprintf(msg, sizeof(msg),
                 "AADSTS700024: Client assertion is not within its valid time range. Current "
                 "time: %s, assertion valid from %s, expiry time of assertion %s.",
                 a, b, info->exp ? c : "(none)");
        break;
    case POL_ASSERTION_NO_ISSUER:
    case POL_ASSERTION_NO_AUDIENCE:
    case POL_ASSERTION_NO_SUBJECT: {
        /* in pol.h's order: issuer, audience, subject */
        static const struct {
            int code;
            const char *what;
        } fic[] = {{700211, "issuer"}, {700212, "audience"}, {700213, "subject"}};
        const char *const values[] = {info->iss, info->aud, info->sub};
        size_t k = (size_t)(res - POL_ASSERTION_NO_ISSUER);
        snprintf(msg, sizeof(msg),
                 "AADSTS%d: No matching federated identity record found for presented "
                 "assertion %s '%s'. %s",
                 fic[k].code, fic[k].what, values[k], fic_hint);
        break;
    }
    }
    send_aad_error(req, 401, "invalid_client", msg);
}

/* Whether the client proved who it is, with its secret or a client assertion. Answers the
 * error when not. */
static int client_authenticated(struct srv_req *req, const char *tenant, const struct mi_params *p,
                                const struct pol_identity *id)
{
    static const char missing[] = "AADSTS7000216: 'client_assertion', 'client_secret' or "
                                  "'request' is required for the 'client_credentials' grant type.";
    if (p->assertion == NULL && p->assertion_type == NULL) {
        size_t want = strlen(id->client_secret);
        if (p->client_secret == NULL) {
            send_aad_error(req, 400, "invalid_request", missing);
            return 0;
        }
        if (want == 0 || strlen(p->client_secret) != want ||
            sodium_memcmp(p->client_secret, id->client_secret, want) != 0) {
            send_aad_error(req, 401, "invalid_client",
                           "AADSTS7000215: Invalid client secret provided.");
            return 0;
        }
        return 1;
    }
    if (p->client_secret != NULL) {
        send_aad_error(req, 400, "invalid_request",
                       "AADSTS50027: A request gives either a client_secret or a "
                       "client_assertion, not both.");
        return 0;
    }
    if (p->assertion_type == NULL || strcmp(p->assertion_type, JWT_BEARER) != 0) {
        send_aad_error(req, 400, "invalid_request",
                       "AADSTS50027: client_assertion_type must be " JWT_BEARER ".");
        return 0;
    }
    if (p->assertion == NULL || p->assertion[0] == '\0') {
        send_aad_error(req, 400, "invalid_request", missing);
        return 0;
    }
    /* The application's own assertion names the token endpoint as its audience, by the
     * tenant in the path or the identity's own tenant, in v2.0's or v1's shape. */
    char base[SRV_HOST_MAX + 16], urls[4][SRV_HOST_MAX + 16 + POL_ID_MAX + 24];
    const char *endpoints[4];
    size_t n = 0;
    srv_base_url(req, base, sizeof(base));
    for (int t = 0; t < 2; t++) {
        const char *tid = t == 0 ? tenant : id->tenant_id;
        if (t == 1 && strcasecmp(tid, tenant) == 0)
            break;
        snprintf(urls[n], sizeof(urls[n]), "%s/%s/oauth2/v2.0/token", base, tid);
        endpoints[n] = urls[n];
        n++;
        snprintf(urls[n], sizeof(urls[n]), "%s/%s/oauth2/token", base, tid);
        endpoints[n] = urls[n];
        n++;
    }
    /* the assertion is signed against the wall clock, not kvmock's (POST /admin/clock) */
    int64_t now = (int64_t)time(NULL);
    struct pol_assertion_info info;
    enum pol_assertion res = pol_assertion_check(id, p->assertion, endpoints, n, now, &info);
    if (res != POL_ASSERTION_OK) {
        kv_log(KV_LOG_DEBUG, "%s client assertion for %s refused (%d)", req->request_id, id->name,
               (int)res);
        send_assertion_error(req, id, res, &info, endpoints[0], now);
        return 0;
    }
    return 1;
}

/* client_secret_basic (RFC 6749 2.3.1): "Authorization: Basic base64(id:secret)", each part
 * form-encoded, into @p buf, and p's client id and secret pointing into it. Returns 0 and
 * answers the error when the header is there but not usable, or when the body authenticates
 * the client as well; 1 otherwise. */
static int basic_client(struct srv_req *req, struct mi_params *p, char *buf, size_t size)
{
    const char *h = srv_header(req, "Authorization");
    if (h == NULL || strncasecmp(h, "Basic ", 6) != 0)
        return 1;
    size_t n = 0;
    char *colon = NULL;
    if (sodium_base642bin((unsigned char *)buf, size - 1, h + 6, strlen(h + 6), NULL, &n, NULL,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        (buf[n] = '\0', colon = strchr(buf, ':')) == NULL || strlen(buf) != n) {
        send_aad_error(req, 401, "invalid_client",
                       "AADSTS7000215: The client credentials in the Authorization header are "
                       "not base64(client_id:client_secret).");
        return 0;
    }
    *colon = '\0';
    char *id = buf, *secret = colon + 1;
    if (mg_url_decode(id, (int)strlen(id), id, (int)strlen(id) + 1, 1) < 0 ||
        mg_url_decode(secret, (int)strlen(secret), secret, (int)strlen(secret) + 1, 1) < 0 ||
        (p->client_id != NULL && strcmp(p->client_id, id) != 0) || p->client_secret != NULL ||
        p->assertion != NULL) {
        send_aad_error(req, 400, "invalid_request",
                       "AADSTS50027: The client authenticates once: in the Authorization header "
                       "or in the body, and the client_id of both must agree.");
        return 0;
    }
    p->client_id = id;
    p->client_secret = secret;
    return 1;
}

/* POST /{tenant}/oauth2/v2.0/token (MSAL) or /{tenant}/oauth2/token (v1: ADAL, go-autorest's
 * adal), grant_type=client_credentials. v1 names the audience with resource= and answers
 * its times as strings, with expires_on and resource. */
static void client_credentials(struct srv_req *req, const char *tenant, int v1)
{
    struct mi_params p = {0};
    size_t len = 0;
    if (strcmp(req->ri->request_method, "POST") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    if (srv_read_body(req, TOKEN_FORM_MAX, &p.form, &len) != KV_OK) {
        send_aad_error(req, 400, "invalid_request", "AADSTS900144: The request body is too large.");
        return;
    }
    form_lookup(&p, p.form);
    char basic[1024];
    if (!basic_client(req, &p, basic, sizeof(basic))) {
        sodium_memzero(basic, sizeof(basic));
        if (p.form != NULL)
            sodium_memzero(p.form, len);
        free(p.form);
        return;
    }
    const struct pol_identity *id =
        p.client_id ? pol_find_identity(req->srv->pol, p.client_id, NULL, NULL) : NULL;
    int is_app = id != NULL && pol_identity_is_app(id);
    char aud[POL_AUD_MAX];
    if (p.grant_type == NULL || strcmp(p.grant_type, "client_credentials") != 0) {
        send_aad_error(req, 400, "unsupported_grant_type",
                       "AADSTS70003: The app requested an unsupported grant type; only "
                       "client_credentials is served.");
    } else if (!is_app) {
        send_aad_error(req, 400, "unauthorized_client",
                       "AADSTS700016: Application with the given identifier was not found in the "
                       "directory.");
    } else if (strcasecmp(tenant, id->tenant_id) != 0 && strcasecmp(tenant, "organizations") != 0) {
        send_aad_error(req, 400, "invalid_request",
                       "AADSTS90002: The application does not belong to this tenant.");
    } else if (client_authenticated(req, tenant, &p, id) &&
               requested_audience(req, &p, v1, aud, sizeof(aud))) {
        char *token = NULL;
        int64_t now = ks_now(), exp = 0;
        if (pol_token_issue(req->srv->pol, id, aud, now, &token, &exp) != KV_OK) {
            srv_send_error(req, KV_ERR_NOMEM, NULL);
        } else {
            char expires_in[24], expires_on[24], not_before[24];
            snprintf(expires_in, sizeof(expires_in), "%lld", (long long)(exp - now));
            snprintf(expires_on, sizeof(expires_on), "%lld", (long long)exp);
            snprintf(not_before, sizeof(not_before), "%lld", (long long)now);
            cJSON *doc = cJSON_CreateObject();
            int ok = doc && cJSON_AddStringToObject(doc, "token_type", "Bearer");
            if (v1)
                ok = ok && cJSON_AddStringToObject(doc, "expires_in", expires_in) &&
                     cJSON_AddStringToObject(doc, "ext_expires_in", expires_in) &&
                     cJSON_AddStringToObject(doc, "expires_on", expires_on) &&
                     cJSON_AddStringToObject(doc, "not_before", not_before) &&
                     cJSON_AddStringToObject(doc, "resource", aud);
            else
                ok = ok && cJSON_AddNumberToObject(doc, "expires_in", (double)(exp - now)) &&
                     cJSON_AddNumberToObject(doc, "ext_expires_in", (double)(exp - now));
            ok = ok && cJSON_AddStringToObject(doc, "access_token", token);
            sodium_memzero(token, strlen(token));
            free(token);
            kv_log(KV_LOG_DEBUG, "%s token issued to %s for %s", req->request_id, id->name, aud);
            srv_send_json(req, 200, ok ? doc : (cJSON_Delete(doc), NULL));
        }
    }
    if (p.form != NULL)
        sodium_memzero(p.form, len); /* it held the secret or the assertion */
    free(p.form);
    sodium_memzero(basic, sizeof(basic));
}

/* GET /{tenant}/discovery/instance?authorization_endpoint=URL: the instance discovery MSAL
 * asks login.microsoftonline.com for before it trusts an authority it does not know, and for
 * the aliases of one it does. Only a client that reaches kvmock under that name asks kvmock:
 * the authority is then kvmock, and its discovery document is kvmock's own. */
static void instance_discovery(struct srv_req *req)
{
    if (strcmp(req->ri->request_method, "GET") != 0) {
        srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        return;
    }
    /* https://HOST[:PORT]/TENANT/oauth2/v2.0/authorize: the authority's host and tenant */
    const char *ep = srv_query_get(req, "authorization_endpoint");
    const char *host = ep && strncmp(ep, "https://", 8) == 0 ? ep + 8 : NULL;
    size_t host_len = host ? strcspn(host, "/") : 0;
    const char *tenant = host && host[host_len] == '/' ? host + host_len + 1 : NULL;
    size_t tenant_len = tenant ? strcspn(tenant, "/") : 0;
    if (host_len == 0 || host_len >= SRV_HOST_MAX || tenant_len == 0 || tenant_len >= POL_ID_MAX) {
        send_aad_error(req, 400, "invalid_instance",
                       "AADSTS50049: Unknown or invalid instance: give authorization_endpoint, "
                       "https://HOST/TENANT/oauth2/v2.0/authorize.");
        return;
    }
    char base[SRV_HOST_MAX + 16], url[SRV_HOST_MAX + POL_ID_MAX + 64], authority[SRV_HOST_MAX];
    srv_base_url(req, base, sizeof(base));
    snprintf(url, sizeof(url), "%s/%.*s/v2.0/.well-known/openid-configuration", base,
             (int)tenant_len, tenant);
    snprintf(authority, sizeof(authority), "%.*s", (int)host_len, host);
    cJSON *doc = cJSON_CreateObject();
    cJSON *meta = doc ? cJSON_AddArrayToObject(doc, "metadata") : NULL;
    cJSON *entry = cJSON_CreateObject();
    cJSON *aliases = entry ? cJSON_AddArrayToObject(entry, "aliases") : NULL;
    int ok = meta != NULL && aliases != NULL &&
             cJSON_AddStringToObject(doc, "tenant_discovery_endpoint", url) &&
             cJSON_AddStringToObject(doc, "api-version", "1.1") &&
             cJSON_AddStringToObject(entry, "preferred_network", authority) &&
             cJSON_AddStringToObject(entry, "preferred_cache", authority) &&
             cJSON_AddItemToArray(aliases, cJSON_CreateString(authority)) &&
             cJSON_AddItemToArray(meta, entry);
    if (!ok && (meta == NULL || entry != cJSON_GetArrayItem(meta, 0)))
        cJSON_Delete(entry);
    srv_send_json(req, 200, ok ? doc : (cJSON_Delete(doc), NULL));
}

int srv_entra_endpoint(struct srv_req *req)
{
    if (req->nseg < 2 || req->seg[0][0] == '\0' || strlen(req->seg[0]) >= POL_ID_MAX)
        return 0;
    const char *tenant = req->seg[0];
    const char *s1 = req->seg[1], *s2 = req->nseg > 2 ? req->seg[2] : "";
    if (req->nseg == 4 && strcmp(s1, "oauth2") == 0 && strcmp(s2, "v2.0") == 0 &&
        strcmp(req->seg[3], "token") == 0) {
        client_credentials(req, tenant, 0);
        return 1;
    }
    if (req->nseg == 3 && strcmp(s1, "discovery") == 0 && strcmp(s2, "instance") == 0) {
        instance_discovery(req);
        return 1;
    }
    if (req->nseg == 3 && strcmp(s1, "oauth2") == 0 && strcmp(s2, "token") == 0) {
        client_credentials(req, tenant, 1);
        return 1;
    }
    if (req->nseg == 4 && strcmp(s1, "v2.0") == 0 && strcmp(s2, ".well-known") == 0 &&
        strcmp(req->seg[3], "openid-configuration") == 0) {
        openid_configuration(req, tenant);
        return 1;
    }
    if (req->nseg == 4 && strcmp(s1, "discovery") == 0 && strcmp(s2, "v2.0") == 0 &&
        strcmp(req->seg[3], "keys") == 0) {
        /* kvmock's tokens are HMAC-signed: there is no public key to publish */
        cJSON *doc = cJSON_CreateObject();
        if (doc != NULL && cJSON_AddArrayToObject(doc, "keys") == NULL) {
            cJSON_Delete(doc);
            doc = NULL;
        }
        srv_send_json(req, 200, doc);
        return 1;
    }
    return 0;
}
