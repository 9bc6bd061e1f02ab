/*
 * kvmock's entry point: read the configuration, open the store, prepare TLS,
 * start civetweb, print the ready line, and stop cleanly on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <malloc.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "kv_file.h"
#include "kv_log.h"
#include "srv.h"
#include "tls.h"

#define CA_PEM_MAX (64 * 1024)
#define SWEEP_INTERVAL_S 30

static atomic_int server_started;

/* civetweb's own messages: failures at start matter, per-connection noise does not. */
static int log_civetweb(const struct mg_connection *conn, const char *message)
{
    (void)conn;
    kv_log(atomic_load(&server_started) ? KV_LOG_DEBUG : KV_LOG_ERROR, "civetweb: %s", message);
    return 1;
}

/* TLS settings civetweb has no option for. OpenSSL's server session cache keeps
 * up to 20480 sessions for 5 minutes by default: under many short connections
 * that is tens of megabytes. TLS 1.3 resumes with stateless tickets anyway. */
static int init_ssl(void *ssl_ctx, void *user_data)
{
    (void)user_data;
    SSL_CTX_sess_set_cache_size(ssl_ctx, 256);
    SSL_CTX_set_timeout(ssl_ctx, 300);
    return 0; /* civetweb goes on with its own set-up */
}

static int mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
        return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(buf, mode) != 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Resource group @p name, made in location "local" unless it exists. */
static enum kv_status ensure_group(struct srv *srv, const char *name)
{
    struct ks_group want = {0}, found;
    snprintf(want.name, sizeof(want.name), "%s", name);
    snprintf(want.location, sizeof(want.location), "local");
    return ks_group_ensure(srv->ks, &want, &found, NULL);
}

/*
 * Write new vault @p put (the configuration's vault @p vi) with its access control, in
 * one transaction: nothing of a purged namesake's, then the configured access policies
 * (or else every key permission for its creator, the default identity, as in the
 * portal) and the role assignments at its scope. A start cut short before that commit
 * finds the vault new again at the next start, and one after it finds it whole.
 */
static enum kv_status create_vault(const struct srv_config *cfg, size_t vi, struct srv *srv,
                                   const struct ks_vault *put)
{
    const char *name = cfg->vaults[vi].name;
    struct pol_access_policy creator = {.keys = POL_PERMS_ALL};
    struct pol_acl_change chg = {
        .vault = name, .clear_policies = 1, .clear_roles = 1, .clear_defs = put->hsm};
    size_t np = 0, nr = 0;
    for (size_t i = 0; i < cfg->n_policies; i++)
        np += strcmp(cfg->policies[i].vault, name) == 0;
    for (size_t r = 0; r < cfg->n_roles; r++)
        nr += strcmp(cfg->roles[r].vault, name) == 0;
    struct pol_access_policy *policies = np ? calloc(np, sizeof(*policies)) : NULL;
    struct pol_role_assignment *roles = nr ? calloc(nr, sizeof(*roles)) : NULL;
    enum kv_status st = KV_OK;
    if ((np && policies == NULL) || (nr && roles == NULL))
        st = KV_ERR_NOMEM;
    for (size_t i = 0, n = 0; st == KV_OK && i < cfg->n_policies; i++) {
        if (strcmp(cfg->policies[i].vault, name) == 0)
            policies[n++] = cfg->policies[i];
    }
    for (size_t r = 0, n = 0; st == KV_OK && r < cfg->n_roles; r++) {
        if (strcmp(cfg->roles[r].vault, name) == 0) {
            roles[n] = cfg->roles[r];
            roles[n++].updated = ks_now(); /* made now, by the configuration ("" its maker) */
        }
    }
    if (!cfg->policies_given[vi]) {
        const struct pol_identity *who = pol_find_identity(srv->pol, NULL, NULL, NULL);
        snprintf(creator.vault, sizeof(creator.vault), "%s", name);
        snprintf(creator.tenant_id, sizeof(creator.tenant_id), "%s", who->tenant_id);
        snprintf(creator.object_id, sizeof(creator.object_id), "%s", who->object_id);
        chg.policies = &creator;
        chg.n_policies = 1;
    } else {
        chg.policies = policies;
        chg.n_policies = np;
    }
    chg.roles = roles;
    chg.n_roles = nr;
    if (st == KV_OK)
        st = pol_vault_put(srv->pol, put, KS_VAULT_PUT, &chg);
    free(policies);
    free(roles);
    return st;
}

enum file_vault { FILE_VAULT_NEW, FILE_VAULT_EXISTS, FILE_VAULT_DELETED };

/*
 * What the file's vault @p i makes of the store's: a new vault, or the existing one with
 * the settings the file names (@p put), or nothing while it is deleted. On a vault that
 * exists, what the file does not name stays as the store has it, the management plane's
 * changes included: the firewall and sku (when the file names none of them) and each of
 * the vault's own settings. @return KV_OK, or KV_ERR_BAD_PARAM (logged) for settings the
 * vault cannot take.
 */
static enum kv_status file_vault(const struct srv_config *cfg, size_t i, struct srv *srv,
                                 struct ks_vault *put, enum file_vault *what)
{
    const struct ks_vault *v = &cfg->vaults[i];
    struct ks_vault old;
    enum kv_status st = ks_vault_get(srv->ks, v->name, &old);
    if (st != KV_OK && st != KV_ERR_VAULT_NOT_FOUND)
        return st;
    int is_new = st == KV_ERR_VAULT_NOT_FOUND;
    struct ks_deleted_vault gone;
    *what = is_new ? FILE_VAULT_NEW : FILE_VAULT_EXISTS;
    if (is_new && ks_deleted_vault_get(srv->ks, v->name, &gone) == KV_OK) {
        /* Deleted through the management plane: it stays deleted until it is
         * recovered (createMode recover) or purged, as in Azure. */
        kv_log(KV_LOG_INFO, "config: vault '%s' is deleted; recover or purge it first", v->name);
        *what = FILE_VAULT_DELETED;
        return KV_OK;
    }
    unsigned given = cfg->given[i];
    *put = *v;
    if (!is_new && !(given & SRV_GIVEN_ARM))
        ks_vault_copy_arm_props(put, &old);
    if (!is_new && !(given & SRV_GIVEN_SOFT_DELETE))
        put->soft_delete = old.soft_delete;
    if (!is_new && !(given & SRV_GIVEN_RETENTION))
        put->retention_days = old.retention_days;
    if (!is_new && !(given & SRV_GIVEN_PURGE_PROTECTION))
        put->purge_protection = old.purge_protection;
    if (!is_new && !(given & SRV_GIVEN_RBAC))
        put->rbac = old.rbac;
    if (!is_new && old.purge_protection && !put->purge_protection) {
        kv_log(KV_LOG_ERROR,
               "config: vault '%s' has purge protection, which cannot be turned off once on",
               v->name);
        return KV_ERR_BAD_PARAM;
    }
    if (put->purge_protection && !put->soft_delete) {
        kv_log(KV_LOG_ERROR, "config: vault '%s' has purge protection, which needs soft delete on",
               v->name);
        return KV_ERR_BAD_PARAM;
    }
    return KV_OK;
}

/*
 * Write the configured identities and vaults into the running state. Access
 * policies and role assignments are seeded when their vault is new: after
 * that, LMDB holds them and the management plane changes them. The identities'
 * credentials move to the policy context.
 */
/* Make or replace custom role definition @p d of the configuration file (as it was made
 * by kvmock itself: no caller; a replaced one keeps its creation). */
static enum kv_status file_role_def(struct srv *srv, const struct srv_role_def_cfg *d)
{
    enum kv_status st = srv_role_def_put(srv, d->id, d->props, NULL, NULL);
    if (st == KV_ERR_ARM_ROLE_NAME_EXISTS)
        kv_log(KV_LOG_ERROR,
               "config: custom role '%s' (%s): a custom role made through the management plane "
               "has its name; delete that one or rename this one",
               d->name, d->id);
    else if (st != KV_OK)
        kv_log(KV_LOG_ERROR, "cannot store custom role '%s': %s", d->name, kv_status_name(st));
    return st;
}

static enum kv_status apply_config(struct srv_config *cfg, struct srv *srv)
{
    for (size_t i = 0; i < cfg->n_identities; i++) {
        enum kv_status st = pol_add_identity(srv->pol, &cfg->identities[i]);
        if (st != KV_OK) {
            kv_log(KV_LOG_ERROR, "config: identity '%s' repeats another identity's ids",
                   cfg->identities[i].name);
            return st;
        }
    }
    for (size_t i = 0; i < cfg->n_authorities; i++) {
        const struct srv_authority *a = &cfg->authorities[i];
        char why[1024] = "";
        enum kv_status st =
            pol_attestation_trust(srv->pol, a->authority, a->jwks, a->jwks_len, why, sizeof(why));
        if (st != KV_OK) {
            kv_log(KV_LOG_ERROR, "config: attestationAuthorities[%zu]: %s", i,
                   why[0] != '\0' ? why : "out of memory");
            return st;
        }
    }
    enum kv_status st = pol_attach(srv->pol, srv->ks);
    if (st != KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot load access policies and role assignments");
        return st;
    }
    /* the file's custom roles, before the assignments that name them */
    for (size_t i = 0; st == KV_OK && i < cfg->n_role_defs; i++)
        st = file_role_def(srv, &cfg->role_defs[i]);
    if (st != KV_OK)
        return st;
    /* Every vault is checked before any is written: a file refused for one of them
     * changes nothing in the data folder. */
    struct ks_vault *puts = calloc(cfg->n_vaults, sizeof(*puts));
    enum file_vault *what = calloc(cfg->n_vaults, sizeof(*what));
    st = cfg->n_vaults == 0 || (puts != NULL && what != NULL) ? KV_OK : KV_ERR_NOMEM;
    for (size_t i = 0; st == KV_OK && i < cfg->n_vaults; i++)
        st = file_vault(cfg, i, srv, &puts[i], &what[i]);
    for (size_t i = 0; st == KV_OK && i < cfg->n_vaults; i++) {
        if (what[i] != FILE_VAULT_DELETED)
            st = what[i] == FILE_VAULT_NEW ? create_vault(cfg, i, srv, &puts[i])
                                           : ks_vault_put(srv->ks, &puts[i]);
        if (st != KV_OK)
            kv_log(KV_LOG_ERROR, "cannot store vault '%s': %s", cfg->vaults[i].name,
                   kv_status_name(st));
    }
    free(puts);
    free(what);
    if (st != KV_OK)
        return st;
    /* The configuration file's vaults are in kvmock's own resource group. Its creation
     * marks a data folder's first start: the file's role assignments at a group's or the
     * subscription's scope are seeded then, as a vault's are when the vault is made (the
     * management plane changes them afterwards, and a restart keeps that). The group is
     * made last, so that a start cut short before it seeds them again (the same
     * assignments: putting them again changes nothing). */
    struct ks_group group;
    st = ks_group_get(srv->ks, POL_RESOURCE_GROUP, &group, NULL);
    int first = st == KV_ERR_ARM_NO_GROUP;
    st = first ? KV_OK : st;
    size_t nr = 0;
    struct pol_role_assignment *roles =
        first && cfg->n_roles ? calloc(cfg->n_roles, sizeof(*roles)) : NULL;
    if (first && cfg->n_roles && roles == NULL)
        st = KV_ERR_NOMEM;
    for (size_t r = 0; st == KV_OK && first && r < cfg->n_roles; r++) {
        if (cfg->roles[r].vault[0] != '\0')
            continue;
        if (cfg->roles[r].group[0] != '\0' &&
            strcasecmp(cfg->roles[r].group, POL_RESOURCE_GROUP) != 0)
            st = ensure_group(srv, cfg->roles[r].group);
        roles[nr] = cfg->roles[r];
        roles[nr++].updated = ks_now();
    }
    struct pol_acl_change chg = {.roles = roles, .n_roles = nr};
    if (st == KV_OK && nr > 0)
        st = pol_acl_apply(srv->pol, &chg);
    free(roles);
    if (st == KV_OK && first)
        st = ensure_group(srv, POL_RESOURCE_GROUP);
    if (st != KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot store the configuration's resource groups and their role "
                             "assignments: %s",
               kv_status_name(st));
        return st;
    }
    return KV_OK;
}

/*
 * One server per data folder: two would each keep their own access control, clock and
 * caches in memory, and answer differently. An exclusive lock on DATA/kvmock.lock, held
 * until the process ends (the kernel drops it on exit or a kill), with the holder's pid
 * in the file for the message. @return the lock's descriptor, or -1 (logged).
 */
static int lock_data_dir(const char *dir)
{
    char path[sizeof(((struct srv_config *)0)->data_dir) + 16];
    snprintf(path, sizeof(path), "%s/kvmock.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) {
        kv_log(KV_LOG_ERROR, "cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[24] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        kv_log(KV_LOG_ERROR, "the data folder '%s' is in use by another kvmock%s%s%s", dir,
               pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "");
        close(fd);
        return -1;
    }
    char pid[24];
    int len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        kv_log(KV_LOG_WARN, "cannot write the pid into '%s'", path);
    return fd;
}

/*
 * Whether @p port can be listened on as civetweb will ("+PORT": IPv6 and IPv4 on one
 * socket, SO_REUSEADDR), tried before anything is written to the data folder: a start
 * refused for a taken port then leaves the folder as it was, without the configuration's
 * vaults. civetweb's own bind still decides (another process may take it in between).
 * @return 0, or the errno of the bind.
 */
static int port_free(int port)
{
    int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int v6 = fd >= 0;
    if (!v6) /* no IPv6 here: civetweb listens on IPv4 alone */
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return 0; /* nothing to learn: civetweb will say */
    int on = 1, off = 0, err = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    struct sockaddr_in6 a6 = {
        .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port), .sin6_addr = IN6ADDR_ANY_INIT};
    struct sockaddr_in a4 = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_ANY)};
    if (v6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    if ((v6 ? bind(fd, (struct sockaddr *)&a6, sizeof(a6))
            : bind(fd, (struct sockaddr *)&a4, sizeof(a4))) != 0 ||
        listen(fd, 1) != 0)
        err = errno;
    close(fd);
    return err;
}

static struct mg_context *start_civetweb(const struct srv_config *cfg, struct srv *srv,
                                         const struct srv_tls_paths *tls)
{
    char ports[64], threads[16];
    snprintf(threads, sizeof(threads), "%d", cfg->threads);
    /* '+' listens on IPv4 and IPv6 at once: *.vault.localhost resolves to ::1 first. */
    snprintf(ports, sizeof(ports), "+%ds,+%d", cfg->https_port, cfg->http_port);
    const char *options[] = {
        "listening_ports", ports,
        "ssl_certificate", tls->server_pem,
        "ssl_protocol_version", "4", /* TLS 1.2 and later */
        "num_threads", threads, /* one per open connection: slow clients must not starve others */
        "enable_keep_alive", "yes",
        "tcp_nodelay", "1", /* headers and body are separate writes: no Nagle stall */
        /* an idle connection's close can meet the next request its client sends at that
         * moment: far beyond any pause between a client's calls (docs/reliability.md, D42) */
        "keep_alive_timeout_ms", "120000",
        "request_timeout_ms", "10000",
        "decode_url", "no", /* the router needs the raw path: "//" is meaningful */
        NULL,
    };
    struct mg_callbacks callbacks;
    memset(&callbacks, 0, sizeof(callbacks));
    callbacks.begin_request = srv_dispatch;
    callbacks.log_message = log_civetweb;
    callbacks.init_ssl = init_ssl;

    struct mg_init_data init = {.callbacks = &callbacks,
                                .user_data = srv,
                                .configuration_options = options};
    char text[256] = "";
    struct mg_error_data error = {.text = text, .text_buffer_size = sizeof(text)};
    struct mg_context *ctx = mg_start2(&init, &error);
    if (ctx == NULL)
        kv_log(KV_LOG_ERROR, "cannot start the server on ports %d and %d: %s", cfg->https_port,
               cfg->http_port, text[0] ? text : "unknown error");
    return ctx;
}

static int run(struct srv_config *cfg)
{
    int rc = 1;
    struct srv srv;
    struct mg_context *ctx = NULL;
    struct srv_tls_paths tls;
    memset(&srv, 0, sizeof(srv));
    srv.https_port = cfg->https_port;
    srv.http_port = cfg->http_port;
    srv.ui_enabled = cfg->ui;
    snprintf(srv.identity_header, sizeof(srv.identity_header), "%s", cfg->identity_header);

    /* A write past a limit on file sizes (ulimit -f) fails with EFBIG, answered as a full
     * data folder, rather than killing the server. */
    signal(SIGXFSZ, SIG_IGN);
    if (mkdir_p(cfg->data_dir, 0700) != 0) {
        kv_log(KV_LOG_ERROR, "cannot create the data folder '%s': %s", cfg->data_dir,
               strerror(errno));
        return 1;
    }
    int lock = lock_data_dir(cfg->data_dir);
    if (lock < 0)
        return 1;
    const int ports[] = {cfg->https_port, cfg->http_port};
    for (size_t i = 0; i < 2; i++) {
        int err = port_free(ports[i]);
        if (err != 0) {
            kv_log(KV_LOG_ERROR, "cannot start the server on ports %d and %d: port %d: %s",
                   cfg->https_port, cfg->http_port, ports[i], strerror(err));
            close(lock);
            return 1;
        }
    }
    /* The clock offset /admin/clock set, so retention and expiry survive a restart. */
    snprintf(srv.clock_path, sizeof(srv.clock_path), "%s/clock.json", cfg->data_dir);
    char *clock_text = NULL;
    if (kv_file_read(srv.clock_path, 256, &clock_text, NULL) == KV_OK) {
        cJSON *c = cJSON_Parse(clock_text);
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(c, "offsetSeconds");
        if (cJSON_IsNumber(off) && off->valuedouble > 0)
            ks_clock_advance((int64_t)off->valuedouble);
        cJSON_Delete(c);
        free(clock_text);
    }
    struct ks_open_opts opts = {
        .data_dir = cfg->data_dir,
        .map_size = cfg->map_size_mib << 20,
        .sync = cfg->sync,
        .threads = (size_t)cfg->threads};
    if (ks_open(&opts, &srv.ks) != KV_OK)
        goto out;
    if (pol_new(cfg->data_dir, cfg->tenant_id, &srv.pol) != KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot load the token signing key in '%s'", cfg->data_dir);
        goto out;
    }
    if (apply_config(cfg, &srv) != KV_OK)
        goto out;
    if (srv_tls_prepare(cfg->data_dir, (const char *const *)cfg->hostnames, cfg->n_hostnames,
                        &tls) != KV_OK)
        goto out;
    if (kv_file_read(tls.ca_pem, CA_PEM_MAX, &srv.ca_pem, &srv.ca_pem_len) != KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot read '%s'", tls.ca_pem);
        goto out;
    }
    if (srv_signer_open(&tls, (const char *const *)cfg->hostnames, cfg->n_hostnames, &srv.signer) !=
        KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot load the key release certificate '%s'", tls.release_pem);
        goto out;
    }

    /* Workers inherit this mask, so only sigwait() below sees the stop signals. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (srv_audit_start(srv.ks, cfg->audit_max, 0, &srv.audit) != KV_OK) {
        kv_log(KV_LOG_ERROR, "cannot start the audit writer");
        goto out;
    }

    /* Start-up's writes freed LMDB's lists of a nested transaction (3 MiB, on
     * the heap): give their pages back before the workers' tables are built. */
    malloc_trim(0);
    ctx = start_civetweb(cfg, &srv, &tls);
    if (ctx == NULL)
        goto out;
    atomic_store(&server_started, 1);

    const struct pol_identity *def = pol_find_identity(srv.pol, NULL, NULL, NULL);
    printf("kvmock ready https=%d http=%d tenant=%s identity=%s identity-header=%s data=%s "
           "ca=%s\n",
           cfg->https_port, cfg->http_port, cfg->tenant_id, def ? def->object_id : "-",
           cfg->identity_header, cfg->data_dir, tls.ca_pem);
    fflush(stdout);

    /* Wait for a stop signal; meanwhile purge and rotate what the clock made due,
     * and when the server goes quiet after serving, give the heap's free pages
     * back to the system (glibc keeps them after a burst; malloc_trim only holds
     * the arena locks while nothing is being served). */
    int sig, ticks = 0;
    unsigned long long served_then = srv_metrics_answered(), served_at_trim = served_then;
    for (;;) {
        struct timespec tick = {.tv_sec = 1};
        sig = sigtimedwait(&stop, NULL, &tick);
        if (sig > 0)
            break;
        if (errno != EAGAIN)
            continue;
        if (++ticks >= SWEEP_INTERVAL_S) {
            ticks = 0;
            if (srv_sweep(&srv) != KV_OK)
                kv_log(KV_LOG_WARN, "periodic sweep did not finish");
        }
        unsigned long long served = srv_metrics_answered();
        if (served == served_then && served != served_at_trim) {
            malloc_trim(0);
            served_at_trim = served;
        }
        served_then = served;
    }
    kv_log(KV_LOG_INFO, "signal %d: stopping", sig);
    rc = 0;
out:
    if (ctx != NULL)
        mg_stop(ctx); /* waits for every in-flight request */
    srv_audit_stop(srv.audit); /* commits the records still queued */
    free(srv.ca_pem);
    srv_signer_free(srv.signer);
    pol_free(srv.pol);
    ks_close(srv.ks);
    close(lock);
    return rc;
}

int main(int argc, char **argv)
{
    /* "kvmock audit [--data DIR]": the audit log as JSON lines */
    if (argc >= 2 && strcmp(argv[1], "audit") == 0) {
        const char *dir = getenv("KVMOCK_DATA") ? getenv("KVMOCK_DATA") : "./kvmock-data";
        if (argc == 4 && strcmp(argv[2], "--data") == 0)
            dir = argv[3];
        else if (argc == 3 && strncmp(argv[2], "--data=", 7) == 0)
            dir = argv[2] + 7;
        else if (argc != 2) {
            fprintf(stderr, "usage: kvmock audit [--data DIR]\n");
            return 2;
        }
        kv_log_set_level(KV_LOG_WARN);
        return srv_audit_dump(dir);
    }
    struct srv_config cfg;
    char err[4096]; /* a message, then the whole usage (about 1.5 KB) */
    enum kv_status st = srv_config_load(argc, argv, &cfg, err, sizeof(err));
    if (st != KV_OK) {
        int help = err[0] == '\0';
        fprintf(help ? stdout : stderr, "%s%s", help ? "" : "kvmock: ", help ? srv_usage : err);
        if (!help && err[strlen(err) - 1] != '\n')
            fputc('\n', stderr);
        srv_config_free(&cfg);
        return help ? 0 : 2;
    }
    kv_log_set_level(cfg.log_level);
#ifdef M_ARENA_MAX
    /* Hundreds of workers: few malloc arenas keep memory from spreading thin. */
    mallopt(M_ARENA_MAX, 2);
#endif
    /* Fixed thresholds instead of glibc's sliding ones. Freeing a large block
     * (an audit queue of up to 16 MiB) would raise both for good, and then the
     * top of a worker arena, which malloc_trim never shrinks, kept up to 32 MiB
     * of freed memory after a burst. 4 MiB keeps the 3 MiB of lists LMDB
     * allocates and frees for every nested write transaction on the heap. */
    mallopt(M_MMAP_THRESHOLD, 4 << 20);
    mallopt(M_TRIM_THRESHOLD, 4 << 20);

    unsigned features = mg_init_library(MG_FEATURES_TLS);
    if (!(features & MG_FEATURES_TLS) || !mg_check_feature(MG_FEATURES_IPV6)) {
        kv_log(KV_LOG_ERROR, "civetweb was built without TLS or IPv6 support");
        srv_config_free(&cfg);
        return 1;
    }
    int rc = run(&cfg);
    mg_exit_library();
    srv_config_free(&cfg);
    return rc;
}
