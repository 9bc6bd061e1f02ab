/* Command line, environment and the configuration file. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "kv_file.h"
#include "kv_str.h"
#include "srv.h"
#include "vault_props.h"

#include <sodium.h>

#define CONFIG_FILE_MAX (4 * 1024 * 1024)

const char srv_usage[] =
    "usage: kvmock [--data DIR] [--https-port N] [--http-port N] [--config FILE]\n"
    "              [--hostname NAME]... [--log-level error|warn|info|debug] [--ui on|off]\n"
    "              [--map-size MIB] [--audit-max N] [--threads N] [--sync full|data|none]\n"
    "\n"
    "  --data DIR        state folder (env KVMOCK_DATA, default ./kvmock-data)\n"
    "  --https-port N    Key Vault API port (env KVMOCK_HTTPS_PORT, default 8443)\n"
    "  --http-port N     token endpoints, /healthz, /ca.pem, /admin (env KVMOCK_HTTP_PORT, "
    "default 8080)\n"
    "  --config FILE     tenant, identities and vaults (env KVMOCK_CONFIG)\n"
    "  --hostname NAME   extra name for the TLS certificate; repeatable\n"
    "                    (env KVMOCK_HOSTNAMES, comma-separated)\n"
    "  --log-level L     error, warn, info (default) or debug (env KVMOCK_LOG_LEVEL)\n"
    "  --map-size MIB    initial LMDB map size (env KVMOCK_MAP_SIZE, default 64); it grows\n"
    "                    when full\n"
    "  --audit-max N     keep the newest N audit records (env KVMOCK_AUDIT_MAX, default\n"
    "                    10000; 0 keeps all)\n"
    "  --threads N       worker threads, one per open connection (env KVMOCK_THREADS,\n"
    "                    default 256, 8 to 4096)\n"    "  --sync MODE       what a write waits for (env KVMOCK_SYNC): full (default, survives\n"
    "                    a power loss), data (a system crash may undo the last write) or\n"
    "                    none (only a system crash can lose recent writes)\n"
    "  --ui on|off       the web view at /ui on the HTTP port, loopback only (env KVMOCK_UI,\n"
    "                    default on)\n";

static enum kv_status fail(char *err, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static enum kv_status fail(char *err, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, cap, fmt, ap);
    va_end(ap);
    return KV_ERR_BAD_PARAM;
}

/* ---- flags and environment ---------------------------------------------------------- */

/* A whole decimal number from @p min to @p max. @return 0, or -1 (out untouched). */
static int parse_number(const char *s, long long min, long long max, long long *out)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (s[0] == '\0' || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_port(const char *s, int *out)
{
    long long v;
    if (parse_number(s, 1, 65535, &v) != 0)
        return -1;
    *out = (int)v;
    return 0;
}

static enum kv_status add_hostname(struct srv_config *cfg, const char *name, size_t len,
                                   char *err, size_t cap)
{
    if (len == 0)
        return KV_OK;
    if (len > 253)
        return fail(err, cap, "--hostname '%.*s...' is too long", 32, name);
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        /* '_' as in Compose's container names, which the certificate takes too */
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == ':' || c == '*' || c == '_'))
            return fail(err, cap, "--hostname '%.*s' is not a host name or address", (int)len,
                        name);
    }
    char text[254];
    struct in6_addr a6;
    snprintf(text, sizeof(text), "%.*s", (int)len, name);
    if (memchr(name, ':', len) != NULL && inet_pton(AF_INET6, text, &a6) != 1)
        return fail(err, cap, "--hostname '%s' is not a host name or address", text);
    if (cfg->n_hostnames == SRV_MAX_HOSTNAMES)
        return fail(err, cap, "at most %d host names are supported", SRV_MAX_HOSTNAMES);
    char *copy = strndup(name, len);
    if (copy == NULL)
        return KV_ERR_NOMEM;
    cfg->hostnames[cfg->n_hostnames++] = copy;
    return KV_OK;
}

static enum kv_status set_path(char *dst, size_t dstcap, const char *value, const char *flag,
                               char *err, size_t cap)
{
    if (value[0] == '\0' || strlen(value) >= dstcap)
        return fail(err, cap, "%s needs a path (at most %zu bytes)", flag, dstcap - 1);
    snprintf(dst, dstcap, "%s", value);
    return KV_OK;
}

/* One setting, from a flag or from the environment. */
static enum kv_status apply(struct srv_config *cfg, const char *flag, const char *value,
                            char *err, size_t cap)
{
    if (strcmp(flag, "--data") == 0)
        return set_path(cfg->data_dir, sizeof(cfg->data_dir), value, flag, err, cap);
    if (strcmp(flag, "--config") == 0)
        return set_path(cfg->config_path, sizeof(cfg->config_path), value, flag, err, cap);
    if (strcmp(flag, "--https-port") == 0 || strcmp(flag, "--http-port") == 0) {
        int *port = strcmp(flag, "--https-port") == 0 ? &cfg->https_port : &cfg->http_port;
        if (parse_port(value, port) != 0)
            return fail(err, cap, "%s must be a port number from 1 to 65535, not '%s'", flag,
                        value);
        return KV_OK;
    }
    if (strcmp(flag, "--hostname") == 0) {
        /* the environment form is comma-separated, with or without spaces after the commas
         * ("a.example, b.example") */
        const char *p = value;
        for (;;) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            for (; len > 0 && (*p == ' ' || *p == '\t'); len--)
                p++;
            while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
                len--;
            enum kv_status st = add_hostname(cfg, p, len, err, cap);
            if (st != KV_OK || comma == NULL)
                return st;
            p = comma + 1;
        }
    }
    long long n;
    if (strcmp(flag, "--map-size") == 0) {
        if (parse_number(value, 1, 1024 * 1024, &n) != 0)
            return fail(err, cap, "--map-size must be a size in MiB from 1 to 1048576, not '%s'",
                        value);
        cfg->map_size_mib = (size_t)n;
        return KV_OK;
    }
    if (strcmp(flag, "--audit-max") == 0) {
        if (parse_number(value, 0, 1000000000LL, &n) != 0)
            return fail(err, cap, "--audit-max must be a number of records from 0 to 1000000000, "
                        "not '%s'", value);
        cfg->audit_max = (size_t)n;
        return KV_OK;
    }
    if (strcmp(flag, "--threads") == 0) {
        if (parse_number(value, 8, 4096, &n) != 0)
            return fail(err, cap, "--threads must be a number from 8 to 4096, not '%s'", value);
        cfg->threads = (int)n;
        return KV_OK;
    }
    if (strcmp(flag, "--sync") == 0) {
        static const char *const modes[] = {"full", "data", "none"};
        for (int m = 0; m < 3; m++) {
            if (strcmp(value, modes[m]) == 0) {
                cfg->sync = (enum ks_sync)m;
                return KV_OK;
            }
        }
        return fail(err, cap, "--sync must be full, data or none, not '%s'", value);
    }
    if (strcmp(flag, "--ui") == 0) {
        if (strcmp(value, "on") == 0 || strcmp(value, "off") == 0) {
            cfg->ui = strcmp(value, "on") == 0;
            return KV_OK;
        }
        return fail(err, cap, "--ui must be on or off, not '%s'", value);
    }
    if (strcmp(flag, "--log-level") == 0) {
        if (kv_log_parse_level(value, &cfg->log_level) != 0)
            return fail(err, cap, "--log-level must be error, warn, info or debug, not '%s'",
                        value);
        return KV_OK;
    }
    return fail(err, cap, "unknown option '%s'\n\n%s", flag, srv_usage);
}

static enum kv_status parse_command_line(struct srv_config *cfg, int argc, char **argv,
                                         char *err, size_t cap)
{
    static const struct {
        const char *env, *flag;
    } envs[] = {
        {"KVMOCK_DATA", "--data"},         {"KVMOCK_HTTPS_PORT", "--https-port"},
        {"KVMOCK_HTTP_PORT", "--http-port"}, {"KVMOCK_CONFIG", "--config"},
        {"KVMOCK_HOSTNAMES", "--hostname"}, {"KVMOCK_LOG_LEVEL", "--log-level"},
        {"KVMOCK_UI", "--ui"},             {"KVMOCK_MAP_SIZE", "--map-size"},
        {"KVMOCK_AUDIT_MAX", "--audit-max"}, {"KVMOCK_THREADS", "--threads"},
        {"KVMOCK_SYNC", "--sync"},
    };
    enum kv_status st;

    /* Flags first, so that "--help" and bad flags answer before anything else. */
    int given[sizeof(envs) / sizeof(envs[0])] = {0};
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            err[0] = '\0';
            return KV_ERR_BAD_PARAM;
        }
        char flag[32];
        const char *value;
        const char *eq = strchr(arg, '=');
        if (strncmp(arg, "--", 2) == 0 && eq != NULL && (size_t)(eq - arg) < sizeof(flag)) {
            snprintf(flag, sizeof(flag), "%.*s", (int)(eq - arg), arg);
            value = eq + 1;
        } else {
            snprintf(flag, sizeof(flag), "%s", arg);
            if (i + 1 >= argc)
                return fail(err, cap, "option '%s' needs a value\n\n%s", arg, srv_usage);
            value = argv[++i];
        }
        st = apply(cfg, flag, value, err, cap);
        if (st != KV_OK)
            return st;
        for (size_t e = 0; e < sizeof(envs) / sizeof(envs[0]); e++) {
            if (strcmp(envs[e].flag, flag) == 0)
                given[e] = 1;
        }
    }
    for (size_t e = 0; e < sizeof(envs) / sizeof(envs[0]); e++) {
        const char *v = getenv(envs[e].env);
        if (given[e] || v == NULL || v[0] == '\0')
            continue;
        st = apply(cfg, envs[e].flag, v, err, cap);
        if (st != KV_OK) {
            char why[512];
            snprintf(why, sizeof(why), "%s", err);
            return fail(err, cap, "%s: %s", envs[e].env, why);
        }
    }
    if (cfg->https_port == cfg->http_port)
        return fail(err, cap, "the HTTPS and HTTP ports must differ (both are %d)",
                    cfg->http_port);
    return KV_OK;
}

/* ---- the configuration file ---------------------------------------------------------- */

/* Refuse any member neither in @p allowed nor one @p also (may be NULL) knows, naming it. */
static enum kv_status only_fields_or(const cJSON *o, const char *const *allowed,
                                     int (*also)(const char *), const char *where, char *err,
                                     size_t cap)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, o)
    {
        int known = also != NULL && also(m->string);
        for (const char *const *a = allowed; *a != NULL && !known; a++)
            known = strcmp(m->string, *a) == 0;
        if (!known)
            return fail(err, cap, "config: unknown field '%s' in %s", m->string, where);
    }
    return KV_OK;
}

/* Refuse any member not in @p allowed, naming it. */
static enum kv_status only_fields(const cJSON *o, const char *const *allowed, const char *where,
                                  char *err, size_t cap)
{
    return only_fields_or(o, allowed, NULL, where, err, cap);
}

static enum kv_status get_string(const cJSON *o, const char *name, const char *where, char *dst,
                                 size_t dstcap, int required, char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL) {
        if (required)
            return fail(err, cap, "config: %s needs '%s'", where, name);
        return KV_OK;
    }
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0' || strlen(v->valuestring) >= dstcap)
        return fail(err, cap, "config: '%s' in %s must be a non-empty string of at most %zu bytes",
                    name, where, dstcap - 1);
    snprintf(dst, dstcap, "%s", v->valuestring);
    return KV_OK;
}

static enum kv_status get_bool(const cJSON *o, const char *name, const char *where, int *out,
                               char *err, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL)
        return KV_OK;
    if (!cJSON_IsBool(v))
        return fail(err, cap, "config: '%s' in %s must be true or false", name, where);
    *out = cJSON_IsTrue(v);
    return KV_OK;
}

/* The text of a file the configuration names: a relative path is taken from the
 * configuration file's folder. The caller wipes and frees *text; @p why says what failed,
 * for the caller to name the field. */
static enum kv_status read_named_file(const char *config_path, const char *path, const char *what,
                                      char **text, size_t *len, char *why, size_t cap)
{
    char full[8192];
    const char *slash = strrchr(config_path, '/');
    if (path[0] == '/' || slash == NULL)
        snprintf(full, sizeof(full), "%s", path);
    else
        snprintf(full, sizeof(full), "%.*s/%s", (int)(slash - config_path), config_path, path);
    if (kv_file_read(full, CONFIG_FILE_MAX, text, len) != KV_OK) {
        snprintf(why, cap, "cannot read %s '%.768s'", what, full); /* a path's first 768 bytes */
        return KV_ERR_BAD_PARAM;
    }
    return KV_OK;
}

/* "clientCertificates": PEM texts or paths of PEM files, one string or an array. */
static enum kv_status parse_certificates(const cJSON *v, const char *config_path, const char *where,
                                         struct pol_identity *id, char *err, size_t cap)
{
    const cJSON *one = cJSON_IsString(v) ? v : NULL, *item;
    if (one == NULL && (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0))
        return fail(err, cap,
                    "config: 'clientCertificates' in %s must be a PEM text or a path, "
                    "or a non-empty array of them",
                    where);
    size_t nth = 0;
    for (item = one ? one : v->child; item != NULL; item = one ? NULL : item->next) {
        if (!cJSON_IsString(item))
            return fail(err, cap, "config: clientCertificates[%zu] in %s must be a string", nth,
                        where);
        const char *s = item->valuestring;
        char *text = NULL;
        size_t len = strlen(s), added = 0;
        enum kv_status st = KV_OK;
        char why[1024] = "";
        if (strstr(s, "-----BEGIN") == NULL)
            st = read_named_file(config_path, s, "the certificate file", &text, &len, why,
                                 sizeof(why));
        if (st == KV_OK)
            st = pol_creds_add_certificates(&id->creds, text ? text : s, len, &added, why,
                                            sizeof(why));
        if (text != NULL)
            sodium_memzero(text, len); /* the file may hold a private key too */
        free(text);
        if (st == KV_ERR_BAD_PARAM && why[0] != '\0')
            return fail(err, cap, "config: clientCertificates[%zu] in %s: %s", nth, where, why);
        if (st != KV_OK)
            return st;
        nth++;
    }
    return KV_OK;
}

static enum kv_status parse_federated_one(const cJSON *o, const char *config_path,
                                          const char *where, struct pol_identity *id, char *err,
                                          size_t cap)
{
    static const char *const fields[] = {"name", "issuer",      "subject", "audiences",
                                         "jwks", "description", NULL};
    if (!cJSON_IsObject(o))
        return fail(err, cap, "config: %s must be an object", where);
    enum kv_status st = only_fields(o, fields, where, err, cap);
    if (st != KV_OK)
        return st;
    const cJSON *iss = cJSON_GetObjectItemCaseSensitive(o, "issuer");
    const cJSON *sub = cJSON_GetObjectItemCaseSensitive(o, "subject");
    const cJSON *auds = cJSON_GetObjectItemCaseSensitive(o, "audiences");
    const cJSON *jwks = cJSON_GetObjectItemCaseSensitive(o, "jwks");
    if (!cJSON_IsString(iss) || !cJSON_IsString(sub))
        return fail(err, cap, "config: %s needs 'issuer' and 'subject' strings", where);
    if (auds != NULL &&
        (!cJSON_IsArray(auds) || cJSON_GetArraySize(auds) != 1 || !cJSON_IsString(auds->child)))
        return fail(err, cap,
                    "config: 'audiences' in %s must be an array of one string, as "
                    "in Entra",
                    where);
    if (!cJSON_IsObject(jwks) && !cJSON_IsString(jwks))
        return fail(err, cap,
                    "config: %s needs 'jwks': the issuer's keys, as a JWKS document "
                    "or the path of a file holding one",
                    where);
    char *text = NULL, why[1024] = "";
    size_t len = 0;
    if (cJSON_IsString(jwks))
        st = read_named_file(config_path, jwks->valuestring, "the jwks file", &text, &len, why,
                             sizeof(why));
    else if ((text = cJSON_PrintUnformatted(jwks)) == NULL)
        st = KV_ERR_NOMEM;
    else
        len = strlen(text);
    if (st == KV_OK)
        st = pol_creds_add_federated(&id->creds, iss->valuestring, sub->valuestring,
                                     auds ? auds->child->valuestring : POL_FEDERATED_AUDIENCE, text,
                                     len, why, sizeof(why));
    free(text);
    if (st == KV_ERR_BAD_PARAM && why[0] != '\0')
        return fail(err, cap, "config: %s: %s", where, why);
    return st;
}

static enum kv_status parse_identity_fields(const cJSON *o, const char *config_path,
                                            const char *where, struct pol_identity *id, char *err,
                                            size_t cap)
{
    static const char *const fields[] = {"name",
                                         "objectId",
                                         "clientId",
                                         "clientSecret",
                                         "tenantId",
                                         "resourceId",
                                         "default",
                                         "manage",
                                         "trustedService",
                                         "clientCertificates",
                                         "federatedCredentials",
                                         NULL};
    enum kv_status st = only_fields(o, fields, where, err, cap);
    if (st == KV_OK)
        st = get_string(o, "name", where, id->name, sizeof(id->name), 1, err, cap);
    if (st == KV_OK)
        st = get_string(o, "objectId", where, id->object_id, sizeof(id->object_id), 1, err, cap);
    if (st == KV_OK)
        st = get_string(o, "clientId", where, id->client_id, sizeof(id->client_id), 1, err, cap);
    if (st == KV_OK)
        st = get_string(o, "clientSecret", where, id->client_secret, sizeof(id->client_secret),
                        0, err, cap);
    if (st == KV_OK)
        st = get_string(o, "tenantId", where, id->tenant_id, sizeof(id->tenant_id), 0, err, cap);
    if (st == KV_OK)
        st = get_string(o, "resourceId", where, id->resource_id, sizeof(id->resource_id), 0, err,
                        cap);
    if (st == KV_OK)
        st = get_bool(o, "default", where, &id->is_default, err, cap);
    if (st == KV_OK)
        st = get_bool(o, "manage", where, &id->manage, err, cap);
    if (st == KV_OK)
        st = get_bool(o, "trustedService", where, &id->trusted_service, err, cap);
    const cJSON *certs = cJSON_GetObjectItemCaseSensitive(o, "clientCertificates");
    if (st == KV_OK && certs != NULL)
        st = parse_certificates(certs, config_path, where, id, err, cap);
    const cJSON *feds = cJSON_GetObjectItemCaseSensitive(o, "federatedCredentials"), *f;
    if (st == KV_OK && feds != NULL && !cJSON_IsArray(feds))
        st = fail(err, cap, "config: 'federatedCredentials' in %s must be an array", where);
    size_t nth = 0;
    for (f = st == KV_OK && feds != NULL ? feds->child : NULL; f != NULL && st == KV_OK;
         f = f->next) {
        char fwhere[96];
        snprintf(fwhere, sizeof(fwhere), "%s.federatedCredentials[%zu]", where, nth++);
        st = parse_federated_one(f, config_path, fwhere, id, err, cap);
    }
    return st;
}

static enum kv_status parse_identity(const cJSON *o, size_t i, const char *config_path,
                                     struct pol_identity *id, char *err, size_t cap)
{
    char where[48];
    snprintf(where, sizeof(where), "identities[%zu]", i);
    if (!cJSON_IsObject(o))
        return fail(err, cap, "config: %s must be an object", where);
    enum kv_status st = parse_identity_fields(o, config_path, where, id, err, cap);
    if (st != KV_OK) {
        pol_creds_free(id->creds); /* the identity is not counted: nothing else frees them */
        id->creds = NULL;
    }
    return st;
}

/* Whether the vault properties @p p name one of those kept for Resource Manager. */
static int names_arm_props(const cJSON *p)
{
    const cJSON *m;
    cJSON_ArrayForEach(m, p)
    {
        if (srv_vault_arm_prop(m->string))
            return 1;
    }
    return 0;
}

/* Refuse an unknown member of the Resource Manager objects inside a vault's properties
 * @p p, named @p at in messages (their sku, networkAcls and its rules), as of the properties
 * themselves: a typo such as "defaultActon" would otherwise leave a firewall open without a word.
 * Members of the wrong type are srv_vault_props_parse()'s to refuse. */
static enum kv_status only_arm_fields(const cJSON *p, const char *at, char *err, size_t cap)
{
    static const char *const sku[] = {"family", "name", NULL};
    static const char *const acls[] = {"bypass", "defaultAction", "ipRules", "virtualNetworkRules",
                                       NULL};
    static const char *const ip_rule[] = {"value", NULL};
    static const char *const vnet_rule[] = {"id", "ignoreMissingVnetServiceEndpoint", NULL};
    char where[160];
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(p, "sku");
    snprintf(where, sizeof(where), "%s.sku", at);
    enum kv_status st = cJSON_IsObject(o) ? only_fields(o, sku, where, err, cap) : KV_OK;
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(p, "networkAcls");
    if (st != KV_OK || !cJSON_IsObject(a))
        return st;
    snprintf(where, sizeof(where), "%s.networkAcls", at);
    st = only_fields(a, acls, where, err, cap);
    static const struct {
        const char *list;
        const char *const *fields;
    } lists[] = {{"ipRules", ip_rule}, {"virtualNetworkRules", vnet_rule}};
    for (size_t l = 0; l < sizeof(lists) / sizeof(lists[0]) && st == KV_OK; l++) {
        const cJSON *rule;
        size_t n = 0;
        cJSON_ArrayForEach(rule, cJSON_GetObjectItemCaseSensitive(a, lists[l].list))
        {
            snprintf(where, sizeof(where), "%s.networkAcls.%s[%zu]", at, lists[l].list, n++);
            if (st == KV_OK && cJSON_IsObject(rule))
                st = only_fields(rule, lists[l].fields, where, err, cap);
        }
    }
    return st;
}

/* Entry @p o of a vault or managed HSM list (@p where), with @p fields alone: its name, a
 * valid vault name, into @p name. @p what names the kind in messages. */
static enum kv_status parse_named(const cJSON *o, const char *const *fields, const char *where,
                                  const char *what, char name[KS_VAULT_NAME_MAX + 1], char *err,
                                  size_t cap)
{
    if (!cJSON_IsObject(o))
        return fail(err, cap, "config: %s must be an object", where);
    enum kv_status st = only_fields(o, fields, where, err, cap);
    if (st == KV_OK)
        st = get_string(o, "name", where, name, KS_VAULT_NAME_MAX + 1, 1, err, cap);
    if (st == KV_OK && !ks_vault_name_valid(name))
        return fail(err, cap, "config: %s name '%s' must be 1-24 lowercase letters, digits and '-'",
                    what, name);
    return st;
}

/* softDeleteRetentionInDays of properties @p p, when given, into @p days (7 to 90) of the
 * vault or HSM (@p what) @p name. */
static enum kv_status get_retention(const cJSON *p, const char *what, const char *name, int *days,
                                    char *err, size_t cap)
{
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(p, "softDeleteRetentionInDays");
    if (d == NULL)
        return KV_OK;
    if (!cJSON_IsNumber(d) || d->valuedouble != floor(d->valuedouble) || d->valuedouble < 7 ||
        d->valuedouble > 90)
        return fail(err, cap,
                    "config: %s '%s': softDeleteRetentionInDays must be an integer between 7 "
                    "and 90",
                    what, name);
    *days = (int)d->valuedouble;
    return KV_OK;
}

static enum kv_status parse_vault(const cJSON *o, size_t i, const char *tenant, struct ks_vault *v,
                                  struct ks_net_rules *rules, unsigned *given, char *err,
                                  size_t cap)
{
    static const char *const fields[] = {"name", "properties", NULL};
    static const char *const props[] = {"enableSoftDelete", "softDeleteRetentionInDays",
                                        "enablePurgeProtection", "enableRbacAuthorization",
                                        "accessPolicies", NULL};
    char where[64];
    snprintf(where, sizeof(where), "vaults[%zu]", i);
    enum kv_status st = parse_named(o, fields, where, "vault", v->name, err, cap);
    if (st != KV_OK)
        return st;
    snprintf(v->tenant_id, sizeof(v->tenant_id), "%s", tenant);
    v->soft_delete = 1;
    v->retention_days = 90;

    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "properties");
    if (p == NULL)
        return KV_OK;
    snprintf(where, sizeof(where), "vaults[%zu].properties", i);
    if (!cJSON_IsObject(p))
        return fail(err, cap, "config: %s must be an object", where);
    st = only_fields_or(p, props, srv_vault_arm_prop, where, err, cap);
    if (st == KV_OK)
        st = only_arm_fields(p, where, err, cap);
    if (st == KV_OK)
        st = get_bool(p, "enableSoftDelete", where, &v->soft_delete, err, cap);
    if (st == KV_OK)
        st = get_bool(p, "enablePurgeProtection", where, &v->purge_protection, err, cap);
    if (st == KV_OK)
        st = get_bool(p, "enableRbacAuthorization", where, &v->rbac, err, cap);
    if (st == KV_OK)
        st = get_retention(p, "vault", v->name, &v->retention_days, err, cap);
    if (st != KV_OK)
        return st;
    if (v->purge_protection && !v->soft_delete)
        return fail(err, cap, "config: vault '%s': enablePurgeProtection requires enableSoftDelete",
                    v->name);
    char why[256];
    const char *bad = srv_vault_props_parse(p, v, rules, why, sizeof(why));
    if (bad == srv_vault_props_nomem)
        return KV_ERR_NOMEM;
    if (bad != NULL)
        return fail(err, cap, "config: vault '%s': %s", v->name, bad);
    static const struct {
        const char *name;
        unsigned bit;
    } named[] = {{"enableSoftDelete", SRV_GIVEN_SOFT_DELETE},
                 {"softDeleteRetentionInDays", SRV_GIVEN_RETENTION},
                 {"enablePurgeProtection", SRV_GIVEN_PURGE_PROTECTION},
                 {"enableRbacAuthorization", SRV_GIVEN_RBAC}};
    *given = names_arm_props(p) ? SRV_GIVEN_ARM : 0;
    for (size_t k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
        if (cJSON_GetObjectItemCaseSensitive(p, named[k].name) != NULL)
            *given |= named[k].bit;
    }
    return KV_OK;
}

static enum kv_status add_policy(struct srv_config *cfg, const struct pol_access_policy *p)
{
    struct pol_access_policy *n = realloc(cfg->policies, (cfg->n_policies + 1) * sizeof(*n));
    if (n == NULL)
        return KV_ERR_NOMEM;
    cfg->policies = n;
    cfg->policies[cfg->n_policies++] = *p;
    return KV_OK;
}

static enum kv_status parse_policies(struct srv_config *cfg, const cJSON *vault_json, size_t vi,
                                     char *err, size_t cap)
{
    static const char *const fields[] = {"tenantId", "objectId", "applicationId", "permissions",
                                         NULL};
    static const char *const perm_fields[] = {"keys", "secrets", "certificates", "storage", NULL};
    const struct ks_vault *v = &cfg->vaults[vi];
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(vault_json, "properties");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(props, "accessPolicies");
    if (list == NULL)
        return KV_OK;
    if (!cJSON_IsArray(list))
        return fail(err, cap, "config: vault '%s': accessPolicies must be an array", v->name);
    cfg->policies_given[vi] = 1;
    size_t i = 0;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        char where[96];
        snprintf(where, sizeof(where), "vault '%s' accessPolicies[%zu]", v->name, i++);
        struct pol_access_policy p = {0};
        snprintf(p.vault, sizeof(p.vault), "%s", v->name);
        if (!cJSON_IsObject(o))
            return fail(err, cap, "config: %s must be an object", where);
        enum kv_status st = only_fields(o, fields, where, err, cap);
        if (st == KV_OK)
            st = get_string(o, "objectId", where, p.object_id, sizeof(p.object_id), 1, err, cap);
        if (st == KV_OK)
            st = get_string(o, "applicationId", where, p.application_id,
                            sizeof(p.application_id), 0, err, cap);
        snprintf(p.tenant_id, sizeof(p.tenant_id), "%.*s", (int)sizeof(p.tenant_id) - 1, v->tenant_id);
        if (st == KV_OK)
            st = get_string(o, "tenantId", where, p.tenant_id, sizeof(p.tenant_id), 0, err, cap);
        if (st != KV_OK)
            return st;
        const cJSON *perms = cJSON_GetObjectItemCaseSensitive(o, "permissions");
        if (!cJSON_IsObject(perms))
            return fail(err, cap, "config: %s needs 'permissions'", where);
        st = only_fields(perms, perm_fields, where, err, cap);
        if (st != KV_OK)
            return st;
        /* each list as Resource Manager takes it, kept in its order; kvmock grants keys' */
        enum pol_list bad;
        const char *name;
        if (!srv_policy_lists_parse(perms, 0, &p, &bad, &name))
            return name == NULL ? fail(err, cap, "config: %s: permissions.%s must be an array",
                                       where, pol_list_name(bad))
                                : fail(err, cap, "config: %s: unknown %s permission '%s'", where,
                                       pol_list_noun(bad), name);
        st = add_policy(cfg, &p);
        if (st != KV_OK)
            return st;
    }
    return KV_OK;
}

/* A UUID made from @p text: the same text gives the same one at every start. */
static void stable_uuid(const char *text, char out[37])
{
    unsigned char h[16];
    crypto_generichash(h, sizeof(h), (const unsigned char *)text, strlen(text), NULL, 0);
    kv_str_uuid(out, h);
}

/* roleDefinitions: [{"name": GUID (or "id"; made from the roleName when neither is
 * given), "properties": {"roleName", "description", "permissions", "assignableScopes"}}],
 * custom roles as Resource Manager has them. */
static enum kv_status parse_role_defs(struct srv_config *cfg, const cJSON *list, char *err,
                                      size_t cap)
{
    static const char *const fields[] = {"name", "id", "properties", NULL};
    static const char *const prop_fields[] = {"roleName",    "description",      "type",
                                              "permissions", "assignableScopes", NULL};
    static const char *const perm_fields[] = {"actions", "notActions", "dataActions",
                                              "notDataActions", NULL};
    if (list == NULL)
        return KV_OK;
    if (!cJSON_IsArray(list))
        return fail(err, cap, "config: 'roleDefinitions' must be an array");
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (n == 0)
        return KV_OK;
    cfg->role_defs = calloc(n, sizeof(*cfg->role_defs));
    if (cfg->role_defs == NULL)
        return KV_ERR_NOMEM;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        char where[48], what[64];
        snprintf(where, sizeof(where), "roleDefinitions[%zu]", cfg->n_role_defs);
        snprintf(what, sizeof(what), "roleDefinitions[%zu].properties", cfg->n_role_defs);
        struct srv_role_def_cfg *d = &cfg->role_defs[cfg->n_role_defs];
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(o, "properties");
        if (!cJSON_IsObject(o))
            return fail(err, cap, "config: %s must be an object", where);
        enum kv_status st = only_fields(o, fields, where, err, cap);
        if (st == KV_OK)
            st = get_string(o, "name", where, d->id, sizeof(d->id), 0, err, cap);
        if (st == KV_OK && d->id[0] == '\0')
            st = get_string(o, "id", where, d->id, sizeof(d->id), 0, err, cap);
        if (st == KV_OK && !cJSON_IsObject(props))
            return fail(err, cap, "config: %s needs 'properties', an object", where);
        if (st == KV_OK)
            st = only_fields(props, prop_fields, what, err, cap);
        const cJSON *p, *perms = cJSON_GetObjectItemCaseSensitive(props, "permissions");
        cJSON_ArrayForEach(p, perms)
        {
            if (st == KV_OK && cJSON_IsObject(p))
                st = only_fields(p, perm_fields, what, err, cap);
        }
        if (st != KV_OK)
            return st;
        const char *bad = srv_role_def_bad(props);
        if (bad != NULL)
            return fail(err, cap, "config: %s: %s", where, bad);
        const char *name = cJSON_GetObjectItemCaseSensitive(props, "roleName")->valuestring;
        enum pol_role builtin;
        if (pol_role_parse(name, &builtin) == KV_OK)
            return fail(err, cap, "config: %s: '%s' is a built-in role's name", where, name);
        snprintf(d->name, sizeof(d->name), "%s", name);
        if (d->id[0] == '\0') {
            /* a stable id made from the name, so that restarts keep it */
            char text[POL_ROLE_NAME_MAX + 16];
            snprintf(text, sizeof(text), "kvmock role|%s", name);
            kv_str_lower(text);
            stable_uuid(text, d->id);
        }
        if (!kv_str_is_uuid(d->id) || pol_role_parse(d->id, &builtin) == KV_OK)
            return fail(err, cap,
                        "config: %s: its name '%s' must be a GUID, and no built-in "
                        "role's",
                        where, d->id);
        kv_str_lower(d->id);
        for (size_t j = 0; j < cfg->n_role_defs; j++) {
            if (strcmp(cfg->role_defs[j].id, d->id) == 0 ||
                strcasecmp(cfg->role_defs[j].name, d->name) == 0)
                return fail(err, cap, "config: %s has the name or roleName of roleDefinitions[%zu]",
                            where, j);
        }
        d->props = cJSON_Duplicate(props, 1);
        if (d->props == NULL)
            return KV_ERR_NOMEM;
        cfg->n_role_defs++;
    }
    return KV_OK;
}

/* Role @p text (a name, a GUID or a path ending in one): a built-in role, else one of the
 * file's roleDefinitions. */
static int config_role(const struct srv_config *cfg, const char *text,
                       struct pol_role_assignment *r)
{
    if (pol_role_parse(text, &r->role) == KV_OK)
        return 1;
    const char *slash = strrchr(text, '/');
    const char *guid = slash != NULL ? slash + 1 : text;
    for (size_t i = 0; i < cfg->n_role_defs; i++) {
        if (strcasecmp(cfg->role_defs[i].name, text) == 0 ||
            strcasecmp(cfg->role_defs[i].id, guid) == 0) {
            r->role = POL_ROLE_CUSTOM;
            snprintf(r->role_def, sizeof(r->role_def), "%s", cfg->role_defs[i].id);
            return 1;
        }
    }
    return 0;
}

/* A managed HSM's scope in the file: /managedHSMs/NAME[/keys[/KEY]], or Resource Manager's
 * form of it (.../providers/Microsoft.KeyVault/managedHSMs/NAME...), NAME one of the file's
 * managedHsms. @return 1 and fill @p r's scope when it is one, 0 when it is no HSM's scope,
 * -1 when it is a bad one. */
static int hsm_scope_parse(const struct srv_config *cfg, const char *scope,
                           struct pol_role_assignment *r)
{
    static const char arm[] = "/providers/Microsoft.KeyVault/managedHSMs/";
    const char *p = NULL;
    if (strncasecmp(scope, "/managedHSMs/", 13) == 0)
        p = scope + 13;
    for (const char *q = scope; p == NULL && *q != '\0'; q++) {
        if (strncasecmp(q, arm, sizeof(arm) - 1) == 0)
            p = q + sizeof(arm) - 1;
    }
    if (p == NULL)
        return 0;
    const char *end = strchr(p, '/');
    size_t len = end ? (size_t)(end - p) : strlen(p);
    if (len == 0 || len > KS_VAULT_NAME_MAX)
        return -1;
    kv_str_join_n(r->vault, sizeof(r->vault), p, len, NULL);
    kv_str_lower(r->vault);
    int known = 0;
    for (size_t i = 0; i < cfg->n_vaults; i++)
        known |= cfg->vaults[i].hsm && strcmp(cfg->vaults[i].name, r->vault) == 0;
    if (!known)
        return -1;
    r->hsm = 1;
    r->key[0] = '\0';
    if (end == NULL || strcmp(end, "/") == 0)
        return 1;
    if (strcasecmp(end, "/keys") == 0 || strcasecmp(end, "/keys/") == 0) {
        r->hsm_keys = 1;
        return 1;
    }
    if (strncasecmp(end, "/keys/", 6) != 0 || strlen(end + 6) > KS_NAME_MAX ||
        !ks_key_name_valid(end + 6))
        return -1;
    snprintf(r->key, sizeof(r->key), "%s", end + 6);
    return 1;
}

static enum kv_status parse_roles(struct srv_config *cfg, const cJSON *list, char *err,
                                  size_t cap)
{
    static const char *const fields[] = {"principalId", "roleDefinitionName", "roleDefinitionId",
                                         "scope", "name", "id", NULL};
    if (list == NULL)
        return KV_OK;
    if (!cJSON_IsArray(list))
        return fail(err, cap, "config: 'roleAssignments' must be an array");
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (n == 0)
        return KV_OK;
    /* after the managed HSMs' initial administrators */
    struct pol_role_assignment *more = realloc(cfg->roles, (cfg->n_roles + n) * sizeof(*more));
    if (more == NULL)
        return KV_ERR_NOMEM;
    cfg->roles = more;
    memset(cfg->roles + cfg->n_roles, 0, n * sizeof(*more));
    size_t base = cfg->n_admin_roles;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        char where[48], scope[600] = "", role[160] = "";
        snprintf(where, sizeof(where), "roleAssignments[%zu]", cfg->n_roles - base);
        struct pol_role_assignment *r = &cfg->roles[cfg->n_roles];
        if (!cJSON_IsObject(o))
            return fail(err, cap, "config: %s must be an object", where);
        enum kv_status st = only_fields(o, fields, where, err, cap);
        if (st == KV_OK)
            st = get_string(o, "principalId", where, r->principal_id, sizeof(r->principal_id), 1,
                            err, cap);
        if (st == KV_OK)
            st = get_string(o, "scope", where, scope, sizeof(scope), 1, err, cap);
        if (st == KV_OK)
            st = get_string(o, "roleDefinitionName", where, role, sizeof(role), 0, err, cap);
        if (st == KV_OK && role[0] == '\0')
            st = get_string(o, "roleDefinitionId", where, role, sizeof(role), 0, err, cap);
        if (st == KV_OK)
            st = get_string(o, "name", where, r->id, sizeof(r->id), 0, err, cap);
        if (st == KV_OK && r->id[0] == '\0')
            st = get_string(o, "id", where, r->id, sizeof(r->id), 0, err, cap);
        if (st != KV_OK)
            return st;
        int hsm_scope = hsm_scope_parse(cfg, scope, r);
        if (hsm_scope < 0)
            return fail(err, cap,
                        "config: %s: scope '%s' must be /managedHSMs/NAME, /managedHSMs/NAME/keys "
                        "or /managedHSMs/NAME/keys/KEY, NAME one of the file's managedHsms",
                        where, scope);
        if (hsm_scope && (role[0] == '\0' || pol_hsm_role_parse(role, &r->role) != KV_OK))
            return fail(err, cap, "config: %s: unknown role '%s' (not a Managed HSM role)", where,
                        role);
        if (hsm_scope)
            ; /* a managed HSM's local assignment */
        else if (role[0] == '\0' || !config_role(cfg, role, r))
            return fail(err, cap,
                        "config: %s: unknown role '%s' (neither a built-in Key Vault role nor "
                        "one of the file's roleDefinitions)",
                        where, role);
        if (!hsm_scope && pol_scope_parse(scope, r->vault, r->key, r->group) != KV_OK)
            return fail(err, cap,
                        "config: %s: scope '%s' must be /vaults/NAME, /vaults/NAME/keys/KEY, "
                        "/subscriptions/SUB/resourceGroups/GROUP or /subscriptions/SUB",
                        where, scope);
        if (r->id[0] == '\0') {
            /* a stable id derived from the assignment, so restarts do not duplicate it */
            char text[700];
            snprintf(text, sizeof(text), "%s|%s|%s", r->principal_id, pol_assignment_role_id(r),
                     scope);
            stable_uuid(text, r->id);
        }
        for (size_t j = 0; j < cfg->n_roles; j++) {
            if (pol_role_same(&cfg->roles[j], r) && strcasecmp(cfg->roles[j].id, r->id) != 0)
                return j < base ? fail(err, cap,
                                       "config: %s repeats an initial administrator of managed "
                                       "HSM '%s'",
                                       where, r->vault)
                                : fail(err, cap,
                                       "config: %s gives roleAssignments[%zu]'s principal, role "
                                       "and scope another name: one assignment has one name",
                                       where, j - base);
        }
        cfg->n_roles++;
    }
    return KV_OK;
}

/* attestationAuthorities: [{"authority": URL, "jwks": a JWKS document or a file's path}],
 * the Azure Attestation instances release policies may name. Their keys are checked when
 * the policy layer takes them (main.c). */
static enum kv_status parse_authorities(struct srv_config *cfg, const cJSON *list, char *err,
                                        size_t cap)
{
    static const char *const fields[] = {"authority", "jwks", NULL};
    if (list == NULL)
        return KV_OK;
    if (!cJSON_IsArray(list))
        return fail(err, cap, "config: 'attestationAuthorities' must be an array");
    size_t n = (size_t)cJSON_GetArraySize(list);
    if (n > POL_AUTHORITIES_MAX)
        return fail(err, cap, "config: 'attestationAuthorities' may list at most %d authorities",
                    POL_AUTHORITIES_MAX);
    if (n == 0)
        return KV_OK;
    cfg->authorities = calloc(n, sizeof(*cfg->authorities));
    if (cfg->authorities == NULL)
        return KV_ERR_NOMEM;
    const cJSON *o;
    cJSON_ArrayForEach(o, list)
    {
        char where[64], why[1024] = "";
        snprintf(where, sizeof(where), "attestationAuthorities[%zu]", cfg->n_authorities);
        if (!cJSON_IsObject(o))
            return fail(err, cap, "config: %s must be an object", where);
        enum kv_status st = only_fields(o, fields, where, err, cap);
        if (st != KV_OK)
            return st;
        const cJSON *url = cJSON_GetObjectItemCaseSensitive(o, "authority");
        const cJSON *jwks = cJSON_GetObjectItemCaseSensitive(o, "jwks");
        if (!cJSON_IsString(url))
            return fail(err, cap, "config: %s needs 'authority': the attestation service's URL",
                        where);
        if (!cJSON_IsObject(jwks) && !cJSON_IsString(jwks))
            return fail(err, cap,
                        "config: %s needs 'jwks': the authority's signing keys, as a JWKS "
                        "document or the path of a file holding one",
                        where);
        struct srv_authority *a = &cfg->authorities[cfg->n_authorities];
        if (cJSON_IsString(jwks))
            st = read_named_file(cfg->config_path, jwks->valuestring, "the jwks file", &a->jwks,
                                 &a->jwks_len, why, sizeof(why));
        else if ((a->jwks = cJSON_PrintUnformatted(jwks)) == NULL)
            st = KV_ERR_NOMEM;
        else
            a->jwks_len = strlen(a->jwks);
        if (st == KV_OK && (a->authority = strdup(url->valuestring)) == NULL)
            st = KV_ERR_NOMEM;
        cfg->n_authorities++; /* freed with the configuration, whole or not */
        if (st == KV_ERR_BAD_PARAM && why[0] != '\0')
            return fail(err, cap, "config: %s: %s", where, why);
        if (st != KV_OK)
            return st;
    }
    return KV_OK;
}

/* managedHsms[i]: {"name", "properties": {"initialAdminObjectIds": [...],
 * "enableSoftDelete": true, "softDeleteRetentionInDays", "enablePurgeProtection"}}, as
 * Resource Manager's managedHSMs resource names them. The HSM is one more of cfg->vaults
 * (marked hsm), and each initial administrator a local Managed HSM Administrator at "/",
 * seeded when the HSM is made. */
static enum kv_status parse_hsm(struct srv_config *cfg, const cJSON *o, size_t i, char *err,
                                size_t cap)
{
    static const char *const fields[] = {"name", "properties", NULL};
    static const char *const props[] = {"initialAdminObjectIds", "enableSoftDelete",
                                        "softDeleteRetentionInDays", "enablePurgeProtection", NULL};
    char where[64];
    snprintf(where, sizeof(where), "managedHsms[%zu]", i);
    size_t vi = cfg->n_vaults;
    struct ks_vault *v = &cfg->vaults[vi];
    enum kv_status st = parse_named(o, fields, where, "managed HSM", v->name, err, cap);
    if (st != KV_OK)
        return st;
    for (size_t j = 0; j < vi; j++) {
        if (strcmp(cfg->vaults[j].name, v->name) == 0)
            return fail(err, cap,
                        "config: '%s' names a %s already; a managed HSM needs a name "
                        "of its own",
                        v->name, cfg->vaults[j].hsm ? "managed HSM" : "vault");
    }
    snprintf(v->tenant_id, sizeof(v->tenant_id), "%s", cfg->tenant_id);
    v->hsm = 1;
    v->premium = 1; /* every key of an HSM is a hardware key */
    v->soft_delete = 1;
    v->retention_days = 90;
    cfg->policies_given[vi] = 1; /* none: an HSM has role assignments alone */
    cfg->given[vi] = SRV_GIVEN_SOFT_DELETE | SRV_GIVEN_RETENTION | SRV_GIVEN_PURGE_PROTECTION;

    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "properties");
    snprintf(where, sizeof(where), "managedHsms[%zu].properties", i);
    if (!cJSON_IsObject(p))
        return fail(err, cap, "config: %s must be an object with initialAdminObjectIds", where);
    st = only_fields(p, props, where, err, cap);
    int soft_delete = 1;
    if (st == KV_OK)
        st = get_bool(p, "enableSoftDelete", where, &soft_delete, err, cap);
    if (st == KV_OK)
        st = get_bool(p, "enablePurgeProtection", where, &v->purge_protection, err, cap);
    if (st != KV_OK)
        return st;
    if (!soft_delete)
        return fail(err, cap,
                    "config: managed HSM '%s': soft delete is always on in a managed "
                    "HSM (enableSoftDelete must be true)",
                    v->name);
    st = get_retention(p, "managed HSM", v->name, &v->retention_days, err, cap);
    if (st != KV_OK)
        return st;
    const cJSON *admins = cJSON_GetObjectItemCaseSensitive(p, "initialAdminObjectIds");
    if (!cJSON_IsArray(admins) || cJSON_GetArraySize(admins) == 0)
        return fail(err, cap,
                    "config: managed HSM '%s': initialAdminObjectIds must list the object ids "
                    "of its first administrators",
                    v->name);
    struct pol_role_assignment *more =
        realloc(cfg->roles, (cfg->n_roles + (size_t)cJSON_GetArraySize(admins)) * sizeof(*more));
    if (more == NULL)
        return KV_ERR_NOMEM;
    cfg->roles = more;
    const cJSON *a;
    cJSON_ArrayForEach(a, admins)
    {
        const char *oid = cJSON_GetStringValue(a);
        if (oid == NULL || oid[0] == '\0' || strlen(oid) >= POL_ID_MAX)
            return fail(err, cap,
                        "config: managed HSM '%s': initialAdminObjectIds must hold object ids",
                        v->name);
        struct pol_role_assignment *r = &cfg->roles[cfg->n_roles];
        *r = (struct pol_role_assignment){.hsm = 1, .role = POL_ROLE_HSM_ADMINISTRATOR};
        snprintf(r->principal_id, sizeof(r->principal_id), "%s", oid);
        snprintf(r->vault, sizeof(r->vault), "%s", v->name);
        char text[POL_ID_MAX + KS_VAULT_NAME_MAX + 32];
        snprintf(text, sizeof(text), "%s|%s|/managedHSMs/%s", oid, pol_role_id(r->role), v->name);
        stable_uuid(text, r->id);
        cfg->n_roles++;
    }
    cfg->n_admin_roles = cfg->n_roles;
    cfg->n_vaults++;
    return KV_OK;
}

static enum kv_status parse_file(struct srv_config *cfg, const cJSON *doc, char *err, size_t cap)
{
    static const char *const fields[] = {
        "tenantId",    "identityHeader",  "identities",      "vaults",
        "managedHsms", "roleDefinitions", "roleAssignments", "attestationAuthorities",
        NULL};
    if (!cJSON_IsObject(doc))
        return fail(err, cap, "config: the file must hold a JSON object");
    enum kv_status st = only_fields(doc, fields, "the top level", err, cap);
    if (st == KV_OK)
        st = get_string(doc, "tenantId", "the top level", cfg->tenant_id, sizeof(cfg->tenant_id), 0,
                        err, cap);
    if (st == KV_OK)
        st = get_string(doc, "identityHeader", "the top level", cfg->identity_header,
                        sizeof(cfg->identity_header), 0, err, cap);
    if (st != KV_OK)
        return st;


    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(doc, "identities");
    if (ids != NULL) {
        if (!cJSON_IsArray(ids))
            return fail(err, cap, "config: 'identities' must be an array");
        size_t n = (size_t)cJSON_GetArraySize(ids);
        if (n > 0) {
            cfg->identities = calloc(n, sizeof(*cfg->identities));
            if (cfg->identities == NULL)
                return KV_ERR_NOMEM;
        }
        const cJSON *o;
        cJSON_ArrayForEach(o, ids)
        {
            st = parse_identity(o, cfg->n_identities, cfg->config_path,
                                &cfg->identities[cfg->n_identities], err, cap);
            if (st != KV_OK)
                return st;
            cfg->n_identities++;
        }
    }

    const cJSON *vaults = cJSON_GetObjectItemCaseSensitive(doc, "vaults");
    const cJSON *hsms = cJSON_GetObjectItemCaseSensitive(doc, "managedHsms");
    if (hsms != NULL && !cJSON_IsArray(hsms))
        return fail(err, cap, "config: 'managedHsms' must be an array");
    if (vaults != NULL && !cJSON_IsArray(vaults))
        return fail(err, cap, "config: 'vaults' must be an array");
    if (vaults != NULL || hsms != NULL) {
        /* a Managed HSM is kept as a vault marked as one */
        size_t n = (size_t)cJSON_GetArraySize(vaults) + (size_t)cJSON_GetArraySize(hsms);
        if (n > 0) {
            cfg->vaults = calloc(n, sizeof(*cfg->vaults));
            cfg->policies_given = calloc(n, sizeof(*cfg->policies_given));
            cfg->given = calloc(n, sizeof(*cfg->given));
            cfg->net_rules = calloc(n, sizeof(*cfg->net_rules));
            if (cfg->vaults == NULL || cfg->policies_given == NULL || cfg->given == NULL ||
                cfg->net_rules == NULL)
                return KV_ERR_NOMEM;
        }
        const cJSON *o;
        cJSON_ArrayForEach(o, vaults)
        {
            size_t vi = cfg->n_vaults;
            struct ks_vault *v = &cfg->vaults[vi];
            st = parse_vault(o, vi, cfg->tenant_id, v, &cfg->net_rules[vi], &cfg->given[vi], err,
                             cap);
            if (st != KV_OK)
                return st;
            for (size_t j = 0; j < cfg->n_vaults; j++) {
                if (strcmp(cfg->vaults[j].name, v->name) == 0) {
                    ks_net_rules_clear(&cfg->net_rules[vi]); /* not counted yet */
                    return fail(err, cap, "config: vault '%s' is named twice", v->name);
                }
            }
            cfg->n_vaults++;
            st = parse_policies(cfg, o, cfg->n_vaults - 1, err, cap);
            if (st != KV_OK)
                return st;
        }
        size_t i = 0;
        cJSON_ArrayForEach(o, hsms)
        {
            st = parse_hsm(cfg, o, i++, err, cap);
            if (st != KV_OK)
                return st;
        }
    }
    st = parse_role_defs(cfg, cJSON_GetObjectItemCaseSensitive(doc, "roleDefinitions"), err, cap);
    if (st == KV_OK)
        st = parse_roles(cfg, cJSON_GetObjectItemCaseSensitive(doc, "roleAssignments"), err, cap);
    if (st == KV_OK)
        st = parse_authorities(cfg, cJSON_GetObjectItemCaseSensitive(doc, "attestationAuthorities"),
                               err, cap);
    return st;
}

static enum kv_status load_file(struct srv_config *cfg, char *err, size_t cap)
{
    char *text = NULL;
    size_t len = 0;
    if (kv_file_read(cfg->config_path, CONFIG_FILE_MAX, &text, &len) != KV_OK)
        return fail(err, cap, "config: cannot read '%s'", cfg->config_path);
    const char *end = NULL;
    cJSON *doc = strlen(text) == len ? cJSON_ParseWithLengthOpts(text, len + 1, &end, 1) : NULL;
    enum kv_status st;
    if (doc == NULL) {
        size_t at = end != NULL && end >= text ? (size_t)(end - text) : 0;
        st = fail(err, cap, "config: '%s' is not valid JSON (near byte %zu)", cfg->config_path, at);
    } else {
        st = parse_file(cfg, doc, err, cap);
    }
    cJSON_Delete(doc);
    free(text);
    return st;
}

/* Identities and vaults the file left out, and the rules between them. */
static enum kv_status complete(struct srv_config *cfg, char *err, size_t cap)
{
    if (cfg->n_identities == 0) {
        cfg->identities = calloc(1, sizeof(*cfg->identities));
        if (cfg->identities == NULL)
            return KV_ERR_NOMEM;
        struct pol_identity *id = &cfg->identities[0];
        snprintf(id->name, sizeof(id->name), "default");
        snprintf(id->object_id, sizeof(id->object_id), SRV_DEFAULT_OBJECT_ID);
        snprintf(id->client_id, sizeof(id->client_id), SRV_DEFAULT_CLIENT_ID);
        id->is_default = 1;
        id->manage = 1;
        cfg->n_identities = 1;
    }
    size_t defaults = 0;
    for (size_t i = 0; i < cfg->n_identities; i++)
        defaults += cfg->identities[i].is_default != 0;
    if (defaults > 1)
        return fail(err, cap, "config: only one identity can be the default");
    if (defaults == 0)
        cfg->identities[0].is_default = 1;
    for (size_t i = 0; i < cfg->n_identities; i++) {
        if (cfg->identities[i].is_default)
            cfg->identities[i].manage = 1;
    }

    if (cfg->n_vaults == 0) {
        cfg->vaults = calloc(1, sizeof(*cfg->vaults));
        cfg->policies_given = calloc(1, sizeof(*cfg->policies_given));
        cfg->given = calloc(1, sizeof(*cfg->given)); /* names nothing: a restart keeps all */
        cfg->net_rules = calloc(1, sizeof(*cfg->net_rules));
        if (cfg->vaults == NULL || cfg->policies_given == NULL || cfg->given == NULL ||
            cfg->net_rules == NULL)
            return KV_ERR_NOMEM;
        struct ks_vault *v = &cfg->vaults[0];
        snprintf(v->name, sizeof(v->name), "default");
        snprintf(v->tenant_id, sizeof(v->tenant_id), "%s", cfg->tenant_id);
        v->soft_delete = 1;
        v->retention_days = 90;
        v->premium = 1; /* every key type: hardware keys, exportable keys */
        cfg->n_vaults = 1;
    }
    /* a role at a vault's (or key's) scope is seeded when the file's vault is made: one
     * naming another vault would never be, and a typo would pass unseen */
    for (size_t r = cfg->n_admin_roles; r < cfg->n_roles; r++) {
        const char *vault = cfg->roles[r].vault;
        size_t v = 0;
        while (vault[0] != '\0' && v < cfg->n_vaults && strcmp(cfg->vaults[v].name, vault) != 0)
            v++;
        if (vault[0] != '\0' && v == cfg->n_vaults)
            return fail(err, cap,
                        "config: roleAssignments[%zu]: its scope names vault '%s', which the "
                        "file does not define",
                        r - cfg->n_admin_roles, vault);
        if (vault[0] != '\0' && cfg->vaults[v].hsm != cfg->roles[r].hsm)
            return fail(err, cap,
                        "config: roleAssignments[%zu]: '%s' is a managed HSM; its scopes are "
                        "/managedHSMs/%s[/keys[/KEY]]",
                        r - cfg->n_admin_roles, vault, vault);
    }
    return KV_OK;
}

enum kv_status srv_config_load(int argc, char **argv, struct srv_config *cfg, char *err,
                               size_t errcap)
{
    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->data_dir, sizeof(cfg->data_dir), "./kvmock-data");
    cfg->https_port = 8443;
    cfg->http_port = 8080;
    cfg->log_level = KV_LOG_INFO;
    cfg->ui = 1;
    cfg->audit_max = SRV_AUDIT_MAX_DEFAULT;
    cfg->threads = SRV_THREADS_DEFAULT;
    snprintf(cfg->tenant_id, sizeof(cfg->tenant_id), SRV_DEFAULT_TENANT);
    snprintf(cfg->identity_header, sizeof(cfg->identity_header), "kvmock");
    err[0] = '\0';

    enum kv_status st = parse_command_line(cfg, argc, argv, err, errcap);
    if (st == KV_OK && cfg->config_path[0] != '\0')
        st = load_file(cfg, err, errcap);
    if (st == KV_OK)
        st = complete(cfg, err, errcap);
    if (st == KV_ERR_NOMEM)
        snprintf(err, errcap, "out of memory");
    return st;
}

void srv_config_free(struct srv_config *cfg)
{
    for (size_t i = 0; i < cfg->n_hostnames; i++)
        free(cfg->hostnames[i]);
    for (size_t i = 0; i < cfg->n_identities; i++)
        pol_creds_free(cfg->identities[i].creds);
    if (cfg->identities != NULL)
        explicit_bzero(cfg->identities, cfg->n_identities * sizeof(*cfg->identities));
    free(cfg->identities);
    for (size_t i = 0; cfg->net_rules != NULL && i < cfg->n_vaults; i++)
        ks_net_rules_clear(&cfg->net_rules[i]);
    free(cfg->vaults);
    free(cfg->net_rules);
    free(cfg->given);
    free(cfg->policies);
    free(cfg->policies_given);
    free(cfg->roles);
    for (size_t i = 0; cfg->role_defs != NULL && i < cfg->n_role_defs; i++)
        cJSON_Delete(cfg->role_defs[i].props);
    free(cfg->role_defs);
    for (size_t i = 0; i < cfg->n_authorities; i++) {
        free(cfg->authorities[i].authority);
        free(cfg->authorities[i].jwks);
    }
    free(cfg->authorities);
    memset(cfg, 0, sizeof(*cfg));
}
