/* The vault a request is for, from its Host header. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "kv_str.h"
#include "srv.h"

int srv_host_is_hsm(const char *host)
{
    const char *dot = strchr(host, '.');
    return dot != NULL && dot != host && strncasecmp(dot, ".managedhsm.", 12) == 0 &&
           dot[12] != '\0' && dot[12] != ':';
}

enum kv_status srv_resolve_vault(struct srv_req *req)
{
    /* srv_req_init keeps a Host that fits and has only host characters */
    const char *host = req->host;
    if (host[0] == '\0')
        return KV_ERR_BAD_PARAM;

    /* Split host name and port: "[v6]:port", "name:port" or "name". */
    char name[SRV_HOST_MAX];
    const char *port = NULL;
    if (host[0] == '[') {
        const char *close = strchr(host, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            return KV_ERR_BAD_PARAM;
        kv_str_join_n(name, sizeof(name), host, (size_t)(close - host + 1), NULL);
        port = close[1] == ':' ? close + 2 : NULL;
    } else {
        const char *colon = strchr(host, ':');
        if (colon != NULL && strchr(colon + 1, ':') != NULL)
            return KV_ERR_BAD_PARAM;
        kv_str_join_n(name, sizeof(name), host, colon ? (size_t)(colon - host) : strlen(host),
                      NULL);
        port = colon ? colon + 1 : NULL;
    }
    if (port != NULL) {
        if (port[0] == '\0' || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port))
            return KV_ERR_BAD_PARAM;
    }
    for (char *p = name; *p; p++) {
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    }

    /* NAME.vault.DOMAIN names vault NAME, NAME.managedhsm.DOMAIN Managed HSM NAME;
     * anything else is the default vault. */
    const char *dot = strchr(name, '.');
    req->hsm = srv_host_is_hsm(name);
    if (dot != NULL && dot != name &&
        ((strncmp(dot, ".vault.", 7) == 0 && dot[7] != '\0') || req->hsm)) {
        size_t label = (size_t)(dot - name);
        if (label <= KS_VAULT_NAME_MAX)
            kv_str_join_n(req->vault, sizeof(req->vault), name, label, NULL);
        else
            req->vault[0] = '\0'; /* no such vault can exist */
        kv_str_join(req->resource, sizeof(req->resource), "https://", dot + 1, port ? ":" : "",
                    port ? port : "", NULL);
    } else {
        kv_str_join(req->vault, sizeof(req->vault), "default", NULL);
        kv_str_join(req->resource, sizeof(req->resource), "https://vault.azure.net", NULL);
    }
    return KV_OK;
}

/* The DNS suffix of @p service ("vault", "managedhsm") as the client sees it. */
static void service_dns(const struct srv_req *req, const char *service, char *out, size_t cap)
{
    /* a client that reaches kvmock as Azure's Resource Manager reaches its vaults under
     * Azure's names too; any other, at kvmock's own */
    if (strcasecmp(req->host, "management.azure.com") == 0 ||
        strcasecmp(req->host, "management.azure.com:443") == 0)
        snprintf(out, cap, "%s.azure.net", service);
    else
        snprintf(out, cap, "%s.localhost:%d", service, req->srv->https_port);
}

void srv_vault_dns(const struct srv_req *req, char *out, size_t cap)
{
    service_dns(req, "vault", out, cap);
}

void srv_hsm_dns(const struct srv_req *req, char *out, size_t cap)
{
    service_dns(req, "managedhsm", out, cap);
}
