/*
 * The request path. Every request enters here (civetweb's begin_request
 * callback). On the HTTPS port the order is fixed, because the SDKs depend on
 * it: the first request of a client carries neither token nor body and must
 * get the 401 challenge before anything is parsed or validated.
 *
 *   Host -> bearer token -> vault -> api-version -> route -> permission
 *        -> JSON body -> handler -> keystore
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_file.h"
#include "kv_ip.h"
#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

/* Every api-version an SDK, az or a REST client is known to send for keys. */
static const char *const api_versions[] = {
    "2016-10-01",    "7.0",           "7.1",           "7.2",
    "7.3",           "7.3-preview",   "7.4",           "7.4-preview.1",
    "7.5",           "7.5-preview.1", "7.6",           "7.6-preview.1",
    "7.6-preview.2", "2025-06-01-preview", "2025-07-01-preview", "2025-07-01",
    "2026-01-01-preview",
};

#define LATEST_API_VERSION "2025-07-01"

/* Key Vault's first-party application id, a valid audience besides the URL. */
#define KEYVAULT_APP_ID "cfa8b339-82a2-471a-a3c9-0fc0be7a4093"

int srv_api_version_known(const char *v)
{
    for (size_t i = 0; i < sizeof(api_versions) / sizeof(api_versions[0]); i++) {
        if (strcmp(v, api_versions[i]) == 0)
            return 1;
    }
    return 0;
}

static int path_is(const struct srv_req *req, const char *a, const char *b)
{
    return req->nseg >= 1 && strcasecmp(req->seg[0], a) == 0 &&
           ((b == NULL && req->nseg == 1) ||
            (b != NULL && req->nseg == 2 && strcasecmp(req->seg[1], b) == 0));
}

static void send_health(struct srv_req *req)
{
    cJSON *doc = cJSON_CreateObject();
    if (doc != NULL && cJSON_AddStringToObject(doc, "status", "ok") == NULL) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

/* ---- the Key Vault data plane (HTTPS) ---------------------------------------------- */

enum kv_status srv_authenticate(struct srv_req *req, const char *const *auds, size_t n_auds)
{
    const char *auth = srv_header(req, "Authorization");
    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0)
        return KV_ERR_UNAUTHORIZED;
    const char *token = auth + 7;
    while (*token == ' ')
        token++;
    return pol_token_check(req->srv->pol, token, ks_now(), auds, n_auds, &req->who, req->wrong_aud);
}

/* The audience a token for this host must have: Key Vault's or Managed HSM's. */
static const char *service_audience(const struct srv_req *req)
{
    return req->hsm ? "https://managedhsm.azure.net" : "https://vault.azure.net";
}

static enum kv_status authenticate(struct srv_req *req)
{
    const char *auds[] = {req->resource, service_audience(req), KEYVAULT_APP_ID};
    return srv_authenticate(req, auds, sizeof(auds) / sizeof(auds[0]) - (req->hsm ? 1 : 0));
}

static enum kv_status check_api_version(struct srv_req *req)
{
    const char *v = srv_query_get(req, "api-version");
    if (v == NULL || v[0] == '\0') {
        srv_send_error(req, KV_ERR_API_VERSION, NULL);
        return KV_ERR_API_VERSION;
    }
    if (!srv_api_version_known(v)) {
        srv_send_errorf(req, KV_ERR_API_VERSION_BAD,
                        "The specified version (%.64s) is not recognized. Consider using the "
                        "latest supported version (" LATEST_API_VERSION ").",
                        v);
        return KV_ERR_API_VERSION_BAD;
    }
    return KV_OK;
}

/* Copy the name and version segments the route matched, checking their form. */
static enum kv_status take_name_version(struct srv_req *req, const struct srv_route *route,
                                        const char *name, const char *version)
{
    if (name != NULL) {
        if (!ks_key_name_valid(name)) {
            /* the REST specification gives the name's pattern on these three routes */
            if (route->perm == POL_KEYS_CREATE || route->perm == POL_KEYS_IMPORT ||
                route->perm == POL_KEYS_ROTATE) {
                srv_send_errorf(req, KV_ERR_BAD_KEY_NAME,
                                "The request URI contains an invalid name: %.160s", name);
                return KV_ERR_BAD_KEY_NAME;
            }
            /* No key can have this name, so it is simply not found. */
            srv_send_errorf(req, KV_ERR_KEY_NOT_FOUND,
                            "A key with (name/id) %.160s was not found in this key vault.",
                            name);
            return KV_ERR_KEY_NOT_FOUND;
        }
        kv_str_join(req->key_name, sizeof(req->key_name), name, NULL);
    }
    if (version != NULL && version[0] != '\0') {
        if (strlen(version) > KS_VERSION_LEN) {
            srv_send_errorf(req, KV_ERR_KEY_NOT_FOUND,
                            "A key with (name/id) %s/%.64s was not found in this key vault.",
                            req->key_name, version);
            return KV_ERR_KEY_NOT_FOUND;
        }
        kv_str_join(req->version, sizeof(req->version), version, NULL);
    }
    return KV_OK;
}

/* Key Vault's firewall, which decides before the permissions. Its refusals name the
 * client's address, the caller and the vault, as Key Vault's do. */
static enum kv_status firewall(struct srv_req *req, const struct ks_vault *vault)
{
    struct ks_net_rules rules = {0};
    enum kv_status st =
        vault->net_deny ? ks_vault_net_rules(req->srv->ks, vault->name, &rules) : KV_OK;
    if (st == KV_OK)
        st = pol_network_allowed(req->srv->pol, &req->who, vault, &rules, req->ri->remote_addr);
    ks_net_rules_clear(&rules);
    if (st == KV_ERR_FIREWALL_DENIED)
        srv_send_errorf(req, st,
                        "Client address is not authorized and caller is not a trusted "
                        "service.\r\nClient address: %s\r\nCaller: appid=%s;oid=%s;"
                        "iss=https://sts.windows.net/%s/\r\nVault: %s;location=%s",
                        kv_ip_unmapped(req->ri->remote_addr), req->who.appid, req->who.oid,
                        req->who.tid, vault->name, req->region);
    else if (st == KV_ERR_PUBLIC_DISABLED)
        srv_send_errorf(req, st,
                        "Public network access is disabled and request is not from a trusted "
                        "service nor via an approved private link.\r\nCaller: appid=%s;oid=%s;"
                        "iss=https://sts.windows.net/%s/\r\nVault: %s;location=%s",
                        req->who.appid, req->who.oid, req->who.tid, vault->name, req->region);
    else if (st != KV_OK)
        srv_send_error(req, st, NULL);
    return st;
}

static void vault_api(struct srv_req *req)
{
    req->data_plane = 1;
    if (srv_resolve_vault(req) != KV_OK) {
        snprintf(req->resource, sizeof(req->resource), "https://vault.azure.net");
        srv_send_error(req, KV_ERR_BAD_PARAM, "The Host header is missing or malformed.");
        return;
    }
    if (authenticate(req) != KV_OK) {
        const char *auth = srv_header(req, "Authorization");
        if (auth != NULL)
            req->operation = "Authentication"; /* a refused token is audited; a probe is not */
        /* Key Vault: no bearer token at all (none, or another scheme) is "missing";
         * a bearer token that does not verify is "invalid". */
        int bearer = auth != NULL && strncasecmp(auth, "Bearer ", 7) == 0;
        if (req->wrong_aud[0] != '\0') /* Key Vault's words, naming its own audience */
            srv_send_errorf(req, KV_ERR_UNAUTHORIZED,
                            "AKV10022: Invalid audience. Expected %s, found: %s.",
                            service_audience(req), req->wrong_aud);
        else
            srv_send_error(req, KV_ERR_UNAUTHORIZED,
                           bearer ? "The access token is invalid or has expired." : NULL);
        return;
    }

    struct ks_vault vault;
    enum kv_status st = req->vault[0] ? ks_vault_get(req->srv->ks, req->vault, &vault)
                                      : KV_ERR_VAULT_NOT_FOUND;
    if (st == KV_OK && vault.hsm != req->hsm) /* a vault's name at an HSM's host, or back */
        st = KV_ERR_VAULT_NOT_FOUND;
    if (st != KV_OK) {
        if (st == KV_ERR_VAULT_NOT_FOUND)
            srv_send_errorf(req, st, "Vault not found: %s", req->host);
        else
            srv_send_error(req, st, NULL);
        return;
    }
    /* only letters and digits: nothing else can reach a header */
    kv_str_region(ks_vault_location(&vault), req->region, sizeof(req->region));
    snprintf(req->vault_group, sizeof(req->vault_group), "%s", srv_vault_group(&vault));
    req->vault_rbac = vault.rbac || vault.hsm; /* an HSM has role assignments alone */
    /* a job's status URL, as an HSM gives it in Azure-AsyncOperation, has no api-version */
    int job_url = vault.hsm && srv_hsm_job_path(req) && srv_query_get(req, "api-version") == NULL;
    if (!job_url && check_api_version(req) != KV_OK)
        return;

    const struct srv_route *route = NULL;
    const char *name = NULL, *version = NULL;
    enum srv_match match = SRV_MATCH_NO_ROUTE;
    if (vault.hsm && srv_hsm_rbac_path(req)) {
        match = srv_hsm_rbac_match(req, &route, &name);
    } else {
        /* an HSM's own routes first; the keys API's where they have none for the method */
        if (vault.hsm)
            match = srv_hsm_admin_match(req, &route, &name);
        if (match != SRV_MATCH_OK) {
            enum srv_match keys =
                srv_route_match(srv_key_routes, srv_key_routes_count, req->ri->request_method,
                                req->seg, req->nseg, &route, &name, &version);
            if (keys != SRV_MATCH_NO_ROUTE || match == SRV_MATCH_NO_ROUTE)
                match = keys;
        }
    }
    switch (match) {
    case SRV_MATCH_OK:
        break;
    case SRV_MATCH_BAD_METHOD:
        srv_send_errorf(req, KV_ERR_METHOD_NOT_ALLOWED,
                        "The requested resource does not support http method '%.16s'.",
                        req->ri->request_method);
        return;
    case SRV_MATCH_NO_ROUTE:
    default:
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
        return;
    }
    req->operation = route->operation;
    req->route = route->pattern;
    req->route_def = route;
    if (take_name_version(req, route, name, version) != KV_OK)
        return;

    enum pol_perm perm = vault.hsm ? srv_hsm_perm(route) : route->perm;
    st = pol_allowed(req->srv->pol, &req->who, &vault, req->key_name[0] ? req->key_name : NULL,
                     perm);
    /* the firewall decides after the token's directory and before the permissions */
    if (st != KV_ERR_UNAUTHORIZED && (vault.public_network_disabled || vault.net_deny) &&
        firewall(req, &vault) != KV_OK)
        return;
    if (st == KV_ERR_ACCESS_DENIED) {
        srv_send_errorf(req, st,
                        "The user, group or application 'appid=%s;oid=%s' does not have keys %s "
                        "permission on key vault '%s;location=%s'. For help resolving this "
                        "issue, please see https://go.microsoft.com/fwlink/?linkid=2125287",
                        req->who.appid, req->who.oid, pol_perm_name(route->perm), vault.name,
                        req->region);
        return;
    }
    if (st == KV_ERR_RBAC_DENIED && vault.hsm) {
        srv_hsm_denied(req, perm);
        return;
    }
    if (st == KV_ERR_RBAC_DENIED) {
        srv_send_errorf(req, st,
                        "Caller is not authorized to perform action on resource. If role "
                        "assignments, deny assignments or role definitions were changed recently, "
                        "please observe propagation time. Caller: appid=%s;oid=%s. Action: "
                        "'keys/%s'. Vault: %s;location=%s.",
                        req->who.appid, req->who.oid, pol_perm_name(route->perm), vault.name,
                        req->region);
        return;
    }
    if (st == KV_ERR_UNAUTHORIZED) {
        /* a valid token of another directory: Key Vault names both issuers */
        const char *tenant = vault.tenant_id[0] ? vault.tenant_id : pol_tenant(req->srv->pol);
        srv_send_errorf(req, st,
                        "AKV10032: Invalid issuer. Expected one of https://sts.windows.net/%s/, "
                        "found https://sts.windows.net/%s/.",
                        tenant, req->who.tid);
        return;
    }
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    req->policy_match = 1;

    if (route->body == SRV_BODY_JSON) {
        st = srv_read_json_body(req);
        if (st != KV_OK) {
            srv_send_error(req, st, NULL);
            return;
        }
    }
    srv_audit_attach(req);
    req->found = &vault;
    route->handler(req);
    req->found = NULL;
    ks_txn_attach(NULL); /* a handler that sent nothing: srv_audit() did not detach */
}

enum kv_status srv_sweep(const struct srv *srv)
{
    size_t purged = 0, rotated = 0, cleared = 0;
    enum kv_status st = ks_sweep(srv->ks, &purged, &rotated);
    /* after the keystore's, which may have purged vaults: their access control goes too */
    enum kv_status pst = pol_sweep(srv->pol, &cleared);
    if (purged + rotated + cleared > 0)
        kv_log(KV_LOG_INFO,
               "sweep: %zu deleted key(s) or vault(s) purged, %zu key(s) rotated; "
               "access control of %zu purged vault(s) removed",
               purged, rotated, cleared);
    return st != KV_OK ? st : pst;
}

/* ---- the HTTP port: health, CA certificate, token endpoints, admin ----------------- */

static void admin_clock(struct srv_req *req)
{
    enum kv_status st = srv_read_json_body(req);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(req->body, "advanceSeconds");
    if (!cJSON_IsNumber(n) || n->valuedouble < 0 || n->valuedouble > 100.0 * 365 * 86400 ||
        n->valuedouble != (double)(int64_t)n->valuedouble) {
        srv_send_error(req, KV_ERR_BAD_PARAM,
                       "'advanceSeconds' must be a non-negative integer number of seconds.");
        return;
    }
    ks_clock_advance((int64_t)n->valuedouble);
    char offset[64];
    int len = snprintf(offset, sizeof(offset), "{\"offsetSeconds\":%lld}\n",
                       (long long)ks_clock_offset());
    if (kv_file_write_atomic(req->srv->clock_path, offset, (size_t)len, 0600) != KV_OK)
        kv_log(KV_LOG_WARN, "cannot keep the clock offset in %s", req->srv->clock_path);
    /* What the new time made due happens before the answer. */
    if (srv_sweep(req->srv) != KV_OK)
        kv_log(KV_LOG_WARN, "sweep after the clock moved did not finish");
    cJSON *doc = cJSON_CreateObject();
    if (doc != NULL && cJSON_AddNumberToObject(doc, "now", (double)ks_now()) == NULL) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    kv_log(KV_LOG_INFO, "clock advanced by %lld s", (long long)n->valuedouble);
    srv_send_json(req, 200, doc);
}

static void http_port(struct srv_req *req)
{
    const char *method = req->ri->request_method;
    if (path_is(req, "healthz", NULL)) {
        send_health(req);
    } else if (path_is(req, "metrics", NULL) && strcmp(method, "GET") == 0) {
        srv_metrics_page(req);
    } else if (path_is(req, "ca.pem", NULL) && strcmp(method, "GET") == 0) {
        srv_send_raw(req, 200, "application/x-pem-file", req->srv->ca_pem, req->srv->ca_pem_len);
    } else if (srv_identity_endpoint(req) || srv_ui_endpoint(req)) {
        /* answered */
    } else if (path_is(req, "admin", "clock") || path_is(req, "admin", "audit")) {
        int clock = strcasecmp(req->seg[1], "clock") == 0;
        if (!srv_local_only(req))
            srv_send_error(req, KV_ERR_ACCESS_DENIED,
                           "Admin endpoints answer on loopback only, to a loopback host name, "
                           "and not to another site's page.");
        else if (strcmp(method, clock ? "POST" : "GET") != 0)
            srv_send_error(req, KV_ERR_METHOD_NOT_ALLOWED, NULL);
        else if (clock)
            admin_clock(req);
        else
            srv_audit_page(req);
    } else {
        srv_send_error(req, KV_ERR_ROUTE_NOT_FOUND, NULL);
    }
}

/* One JSON log line per request, and the metrics: no bodies, tokens or keys. */
static void log_request(struct srv_req *req)
{
    int64_t us = srv_monotonic_us() - req->start_us;
    srv_metrics_record(req, us);
    if (!kv_log_enabled(KV_LOG_INFO))
        return;
    cJSON *o = cJSON_CreateObject();
    char *text = NULL;
    if (o && cJSON_AddStringToObject(o, "method", req->ri->request_method) &&
        cJSON_AddStringToObject(o, "route", req->route ? req->route : "-") &&
        cJSON_AddStringToObject(o, "operation", req->operation ? req->operation : "-") &&
        cJSON_AddNumberToObject(o, "status", req->status) &&
        cJSON_AddNumberToObject(o, "latency_ms", (double)us / 1000.0) &&
        cJSON_AddStringToObject(o, "vault", req->vault) &&
        cJSON_AddStringToObject(o, "oid", req->who.oid) &&
        cJSON_AddStringToObject(o, "request_id", req->request_id) &&
        (req->client_request_id[0] == '\0' ||
         cJSON_AddStringToObject(o, "client_request_id", req->client_request_id)))
        text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (text != NULL && strlen(text) > 2) {
        text[strlen(text) - 1] = '\0'; /* the members, without the braces */
        kv_log_fields(KV_LOG_INFO, "request", text + 1);
    }
    cJSON_free(text);
}

/* How many Host headers the request carries (civetweb keeps each one). */
static int host_headers(const struct srv_req *req)
{
    int n = 0;
    for (int i = 0; i < req->ri->num_headers; i++) {
        if (strcasecmp(req->ri->http_headers[i].name, "Host") == 0)
            n++;
    }
    return n;
}

int srv_dispatch(struct mg_connection *conn)
{
    const struct srv *srv = mg_get_user_data(mg_get_context(conn));
    struct srv_req req;
    enum kv_status st = srv_req_init(&req, conn, srv);
    req.route = req.ri->local_uri_raw; /* a route pattern replaces it once matched */
    if (kv_log_enabled(KV_LOG_DEBUG))
        kv_log(KV_LOG_DEBUG, "%s %s %s%s", req.request_id, req.ri->request_method,
               req.is_https ? "https " : "http ", req.ri->local_uri_raw);
    if (st == KV_OK && host_headers(&req) > 1) {
        /* RFC 9112 section 3.2: more than one Host is a bad request */
        snprintf(req.resource, sizeof(req.resource), "https://vault.azure.net");
        srv_send_error(&req, KV_ERR_BAD_PARAM, "The request has more than one Host header.");
    } else if (st != KV_OK) {
        snprintf(req.resource, sizeof(req.resource), "https://vault.azure.net");
        srv_send_error(&req, st, NULL);
    } else if (req.is_https && path_is(&req, "healthz", NULL)) {
        send_health(&req);
    } else if (req.is_https && srv_entra_endpoint(&req)) {
        /* answered */
    } else if (req.is_https && srv_host_is_hsm(req.host)) {
        vault_api(&req); /* a Managed HSM's own role assignments are not Resource Manager's */
    } else if (req.is_https && srv_mgmt_endpoint(&req)) {
        /* answered */
    } else if (req.is_https) {
        vault_api(&req);
    } else {
        http_port(&req);
    }
    log_request(&req);
    srv_req_release(&req);
    return 1;
}
