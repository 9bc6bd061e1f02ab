/*
 * Request bodies and raw requests through the real request path: kvmock's
 * dispatcher (srv_dispatch, the public civetweb callback) runs in-process on
 * loopback ports, HTTPS and HTTP, with a store and a policy context in a
 * temporary folder, as server/main.c sets them up (nothing in server/ is
 * changed). Each input is one request over keep-alive connections:
 *   byte 0  picks the request (route, method, port, token), see templates[];
 *   byte 1  picks a variant (which key, which operation, which policy kind);
 *   the rest is the body (JSON, or a form for the token endpoints). For the
 *           "raw" template the rest is the request line and headers: the
 *           harness appends Host, a valid Authorization and an empty body.
 * Tokens are issued for every input at kvmock's current clock, so moving the
 * clock (POST /admin/clock is one of the templates) never locks the fuzzer out.
 * A key created, imported or restored by an input is deleted after it (the
 * vault has soft delete off), so the state stays small.
 * Invariants: every templated request gets a complete HTTP answer, never a 5xx;
 * a raw request never gets a 5xx other than civetweb's 505 for a bad HTTP version.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <civetweb.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "fuzz_common.h"
#include "kv_file.h"
#include "pol.h"
#include "seal.h"
#include "srv.h"
#include "store.h"
#include "tls.h"
#include "../unit/testassert.h"

#define TENANT "6b766d6f-636b-4000-8000-000000000001"
#define SUB    "/subscriptions/s/resourceGroups/g/providers/Microsoft.KeyVault/vaults/fzv"

enum port { HTTPS, HTTP };
enum tok { TOK_NONE, TOK_VAULT, TOK_MGMT, TOK_HSM };

/* Managed HSM fzh's host: the fuzzer's identity administers it and is its Crypto User */
#define HSM_HOST "fzh.managedhsm.localhost"

struct tmpl {
    const char *method;
    const char *path; /* "%s" takes the variant's word when the template has variants */
    enum port port;
    enum tok tok;
    const char *const *variants;
    const char *extra_header;
    int cleanup; /* delete the key named in the answer's kid after a 2xx */
};

static const char *const key_ops[] = {"rsa//wrapkey",
                                      "rsa//unwrapkey",
                                      "rsa//encrypt",
                                      "rsa//decrypt",
                                      "rsa//sign",
                                      "rsa//verify",
                                      "ec//sign",
                                      "ec//verify",
                                      "oct//wrapkey",
                                      "oct//unwrapkey",
                                      "oct//encrypt",
                                      "oct//decrypt",
                                      "oct//sign",
                                      "oct//verify",
                                      "rsa//release",
                                      "skr//release",
                                      NULL};
static const char *const policy_kinds[] = {"add", "replace", "remove", NULL};
static const char *const groups[] = {"fzg", "g", NULL}; /* g holds vault fzv */
static const char *const role_scopes[] = {"/subscriptions/s", "/subscriptions/s/resourceGroups/g",
                                          SUB, SUB "/keys/rsa", NULL};
static const char *const hsm_scopes[] = {"", "/keys", "/keys/hk", "//", NULL};
static const char *const hsm_restores[] = {"restore", "keys/hk/restore", NULL};
static const char *const hsm_settings[] = {"AllowKeyManagementOperationsThroughARM", "x", NULL};

static const struct tmpl templates[] = {
    {"POST", "/keys/fz/create?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 1},
    {"PUT", "/keys/fz?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 1},
    {"PATCH", "/keys/upd?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 0},
    {"POST", "/keys/%s?api-version=7.4", HTTPS, TOK_VAULT, key_ops, NULL, 0},
    {"PUT", "/keys/rot/rotationpolicy?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 0},
    {"POST", "/keys/restore?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 1},
    {"POST", "/rng?api-version=7.4", HTTPS, TOK_VAULT, NULL, NULL, 0},
    {"POST", "/" TENANT "/oauth2/v2.0/token", HTTPS, TOK_NONE, NULL,
     "Content-Type: application/x-www-form-urlencoded\r\n", 0},
    {"PUT", SUB "?api-version=2023-07-01", HTTPS, TOK_MGMT, NULL, NULL, 0},
    {"PUT", SUB "/accessPolicies/%s?api-version=2023-07-01", HTTPS, TOK_MGMT, policy_kinds, NULL,
     0},
    {"PUT",
     SUB "/providers/Microsoft.Authorization/roleAssignments/"
         "0f0f0f0f-0f0f-4f0f-8f0f-0f0f0f0f0f0f?api-version=2022-04-01",
     HTTPS, TOK_MGMT, NULL, NULL, 0},
    {"POST", "/msi/token", HTTP, TOK_NONE, NULL,
     "Metadata: true\r\nContent-Type: application/x-www-form-urlencoded\r\n", 0},
    {"POST", "/admin/clock", HTTP, TOK_NONE, NULL, NULL, 0},
    {NULL, NULL, HTTPS, TOK_VAULT, NULL, NULL, 0}, /* raw */
    {NULL, NULL, HTTPS, TOK_MGMT, NULL, NULL, 0},  /* raw, with a management token */
    {"PATCH", SUB "?api-version=2023-07-01", HTTPS, TOK_MGMT, NULL, NULL, 0},
    {"PUT", "/subscriptions/s/resourcegroups/%s?api-version=2021-04-01", HTTPS, TOK_MGMT, groups,
     NULL, 0},
    {"PATCH", "/subscriptions/s/resourcegroups/%s?api-version=2021-04-01", HTTPS, TOK_MGMT, groups,
     NULL, 0},
    {"POST", "/" TENANT "/oauth2/token", HTTPS, TOK_NONE, NULL,
     "Content-Type: application/x-www-form-urlencoded\r\n", 0},
    /* one name only: a PUT of an existing key answers it and makes nothing */
    {"PUT", SUB "/keys/armk?api-version=2023-07-01", HTTPS, TOK_MGMT, NULL, NULL, 0},
    /* one name: a second body for it is refused (RoleAssignmentUpdateNotPermitted) or
     * puts it again */
    {"PUT",
     "%s/providers/Microsoft.Authorization/roleAssignments/"
     "1f1f1f1f-1f1f-4f1f-8f1f-1f1f1f1f1f1f?api-version=2022-04-01",
     HTTPS, TOK_MGMT, role_scopes, NULL, 0},
    /* a custom role definition, one name: made, replaced or refused; the role assignment
     * templates may name it */
    {"PUT",
     "%s/providers/Microsoft.Authorization/roleDefinitions/"
     "2f2f2f2f-2f2f-4f2f-8f2f-2f2f2f2f2f2f?api-version=2022-04-01",
     HTTPS, TOK_MGMT, role_scopes, NULL, 0},
    /* Managed HSM fzh: a local role assignment and a custom role of one name each (the
     * assignment may name the custom role), and a key of one name */
    {"PUT",
     "%s/providers/Microsoft.Authorization/roleAssignments/"
     "3f3f3f3f-3f3f-4f3f-8f3f-3f3f3f3f3f3f?api-version=7.5",
     HTTPS, TOK_HSM, hsm_scopes, NULL, 0},
    {"PUT",
     "%s/providers/Microsoft.Authorization/roleDefinitions/"
     "4f4f4f4f-4f4f-4f4f-8f4f-4f4f4f4f4f4f?api-version=7.5",
     HTTPS, TOK_HSM, hsm_scopes, NULL, 0},
    {"POST", "/keys/hk/create?api-version=7.5", HTTPS, TOK_HSM, NULL, NULL, 0},
    /* fzh's full backup, its full or selective restore, and its setting */
    {"POST", "/backup?api-version=7.5", HTTPS, TOK_HSM, NULL, NULL, 0},
    {"PUT", "/%s?api-version=7.5", HTTPS, TOK_HSM, hsm_restores, NULL, 0},
    {"PATCH", "/settings/%s?api-version=7.5", HTTPS, TOK_HSM, hsm_settings, NULL, 0},
    /* Managed HSM fzm through Resource Manager (fzh, which the templates above use, is
     * left alone): made, changed or refused in either group, and the name check */
    {"PUT",
     "/subscriptions/s/resourceGroups/%s/providers/Microsoft.KeyVault/managedHSMs/fzm"
     "?api-version=2023-07-01",
     HTTPS, TOK_MGMT, groups, NULL, 0},
    {"PATCH",
     "/subscriptions/s/resourceGroups/%s/providers/Microsoft.KeyVault/managedHSMs/fzm"
     "?api-version=2023-07-01",
     HTTPS, TOK_MGMT, groups, NULL, 0},
    {"POST",
     "/subscriptions/s/providers/Microsoft.KeyVault/checkMhsmNameAvailability"
     "?api-version=2023-07-01",
     HTTPS, TOK_MGMT, NULL, NULL, 0},
    /* fzh's security domain */
    {"POST", "/securitydomain/download?api-version=7.2", HTTPS, TOK_HSM, NULL, NULL, 0},
    {"POST", "/securitydomain/upload?api-version=7.2", HTTPS, TOK_HSM, NULL, NULL, 0},
    {"GET", "/securitydomain/upload?api-version=7.2", HTTPS, TOK_HSM, NULL, NULL, 0},
};
#define NTEMPLATES (sizeof(templates) / sizeof(templates[0]))

static char dir[128];
static struct srv srv;
static struct mg_context *mg;
static SSL_CTX *client_ctx;
/* an application proving itself with client assertions (tests/unit/testassert.h) */
static struct pol_identity ci = {.name = "ci",
                                 .object_id = "6b766d6f-636b-4000-8000-0000000000a2",
                                 .client_id = TESTASSERT_CLIENT};
static struct pol_identity app = {.name = "app",
                                  .object_id = "6b766d6f-636b-4000-8000-0000000000a1",
                                  .client_id = "6b766d6f-636b-4000-8000-0000000000c1",
                                  .client_secret = "s3cret",
                                  .is_default = 1,
                                  .manage = 1};

/* One keep-alive connection per port. */
struct conn {
    int fd;
    SSL *ssl;
};
static struct conn conns[2] = {{-1, NULL}, {-1, NULL}};

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0)
        abort();
    close(s);
    return ntohs(a.sin_port);
}

static void conn_close(struct conn *c)
{
    if (c->ssl != NULL) {
        SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Whether the call that returned @p rc on @p c was cut short by a signal (libFuzzer's
 * timeout alarm) and is to be made again. Reads errno first: call right after. */
static int interrupted(const struct conn *c, int rc)
{
    if (errno != EINTR)
        return 0;
    if (c->ssl == NULL)
        return rc < 0;
    int e = SSL_get_error(c->ssl, rc);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE;
}

static int conn_open(struct conn *c, enum port p)
{
    int port = p == HTTPS ? srv.https_port : srv.http_port;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    struct timeval tv = {.tv_sec = 30};
    int one = 1;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        fprintf(stderr, "connect to port %d: %s\n", port, strerror(errno));
        conn_close(c);
        return -1;
    }
    if (p == HTTPS) {
        c->ssl = SSL_new(client_ctx);
        SSL_set_fd(c->ssl, c->fd);
        SSL_set_tlsext_host_name(c->ssl, "localhost");
        int rc;
        do
            rc = SSL_connect(c->ssl);
        while (rc != 1 && interrupted(c, rc));
        if (rc != 1) {
            int e = errno;
            fprintf(stderr, "TLS handshake on port %d: SSL error %d, %s\n", port,
                    SSL_get_error(c->ssl, rc), strerror(e));
            conn_close(c);
            return -1;
        }
    }
    return 0;
}

static int conn_write(struct conn *c, const void *p, size_t n)
{
    const char *b = p;
    while (n > 0) {
        int w = c->ssl ? SSL_write(c->ssl, b, (int)n) : (int)send(c->fd, b, n, MSG_NOSIGNAL);
        if (w <= 0 && interrupted(c, w))
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

static int conn_read(struct conn *c, char *p, size_t n)
{
    int r;
    do
        r = c->ssl ? SSL_read(c->ssl, p, (int)n) : (int)recv(c->fd, p, n, 0);
    while (r <= 0 && interrupted(c, r));
    return r;
}

/* Read one response. Returns the status (0 when none arrived); the body in *body. */
static int read_response(struct conn *c, char **body, size_t *body_len, int *closed)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap + 1);
    long content_length = -1;
    char *head_end = NULL;
    *closed = 0;
    for (;;) {
        if (head_end != NULL && content_length >= 0 &&
            len >= (size_t)(head_end + 4 - buf) + (size_t)content_length)
            break;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
        int r = conn_read(c, buf + len, cap - len);
        if (r <= 0) {
            *closed = 1;
            break;
        }
        len += (size_t)r;
        buf[len] = '\0';
        if (head_end == NULL && (head_end = strstr(buf, "\r\n\r\n")) != NULL) {
            char *cl = strcasestr(buf, "\r\nContent-Length:");
            if (cl != NULL && cl < head_end)
                content_length = strtol(cl + 17, NULL, 10);
        }
    }
    buf[len] = '\0';
    /* the status follows the first space: civetweb echoes the request's version, which
     * need not be three characters ("HTTP/1.333000000 505") */
    int status = 0;
    const char *sp = strncmp(buf, "HTTP/", 5) == 0 ? memchr(buf, ' ', len) : NULL;
    if (sp != NULL)
        status = atoi(sp + 1);
    if (head_end != NULL) {
        *body_len = len - (size_t)(head_end + 4 - buf);
        *body = strndup(head_end + 4, *body_len);
    } else {
        *body = strdup("");
        *body_len = 0;
    }
    free(buf);
    return status;
}

static char *issue(const char *aud)
{
    char *tok = NULL;
    int64_t exp = 0;
    if (pol_token_issue(srv.pol, pol_find_identity(srv.pol, NULL, NULL, NULL), aud, ks_now(), &tok,
                        &exp) != KV_OK)
        abort();
    return tok;
}

static void make_key(const char *name, enum ks_kty kty)
{
    struct ks_create c = {.kty = kty,
                          .size_bits = kty == KS_KTY_RSA ? 2048 : 256,
                          .exponent = 65537,
                          .crv = KS_CRV_P256,
                          .attrs = {.enabled = 1}};
    struct ks_key *k = NULL;
    if (ks_key_create(srv.ks, "default", name, &c, &k) != KV_OK)
        abort();
    ks_key_free(k);
}

/* An exportable oct-HSM key whose release policy trusts testassert.h's issuer (trusted as
 * an attestation authority) for tokens with sub "ci": the federated assertion meets it, and
 * is then refused for having no x-ms-runtime key. */
static void make_exportable(void)
{
    static const char doc[] =
        "{\"version\":\"1.0.0\",\"anyOf\":[{\"authority\":\"" TESTASSERT_ISSUER
        "\",\"allOf\":[{\"claim\":\"sub\",\"equals\":\"ci\"}]}]}";
    char err[256];
    char *normalized = NULL;
    if (pol_attestation_trust(srv.pol, TESTASSERT_ISSUER, testassert_jwks, strlen(testassert_jwks),
                              err, sizeof(err)) != KV_OK ||
        pol_release_policy_normalize(doc, strlen(doc), &normalized, err, sizeof(err)) != KV_OK)
        abort();
    struct ks_release_policy rp = {.set = 1, .data = normalized};
    struct ks_create c = {.kty = KS_KTY_OCT,
                          .hsm = 1,
                          .size_bits = 256,
                          .attrs = {.enabled = 1, .exportable = 1},
                          .release_policy = &rp};
    struct ks_key *k = NULL;
    if (ks_key_create(srv.ks, "default", "skr", &c, &k) != KV_OK)
        abort();
    ks_key_free(k);
    free(normalized);
}

/* Managed HSM fzh, whose administrator and Crypto User the fuzzer's identity is. */
static void make_hsm(void)
{
    struct ks_vault h = {.name = "fzh",
                         .tenant_id = TENANT,
                         .soft_delete = 1,
                         .retention_days = 7,
                         .premium = 1,
                         .hsm = 1};
    struct pol_role_assignment admin = {.id = "5f5f5f5f-5f5f-4f5f-8f5f-5f5f5f5f5f5f",
                                        .role = POL_ROLE_HSM_ADMINISTRATOR,
                                        .vault = "fzh",
                                        .hsm = 1};
    struct pol_role_assignment user = admin;
    snprintf(user.id, sizeof(user.id), "6f6f6f6f-6f6f-4f6f-8f6f-6f6f6f6f6f6f");
    user.role = POL_ROLE_HSM_CRYPTO_USER;
    snprintf(admin.principal_id, sizeof(admin.principal_id), "%s", app.object_id);
    snprintf(user.principal_id, sizeof(user.principal_id), "%s", app.object_id);
    if (ks_vault_put(srv.ks, &h) != KV_OK || pol_role_put(srv.pol, &admin) != KV_OK ||
        pol_role_put(srv.pol, &user) != KV_OK)
        abort();
}

static void cleanup(void)
{
    conn_close(&conns[0]);
    conn_close(&conns[1]);
    if (mg != NULL)
        mg_stop(mg);
    SSL_CTX_free(client_ctx);
    free(srv.ca_pem);
    srv_signer_free(srv.signer);
    pol_free(srv.pol);
    ks_close(srv.ks);
    mg_exit_library();
    fuzz_rmtree(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(getenv("FUZZ_HTTP_LOG") ? KV_LOG_DEBUG : KV_LOG_ERROR);
    signal(SIGPIPE, SIG_IGN);
    snprintf(dir, sizeof(dir), "%s", fuzz_tmpdir("http"));
    /* a fixed root key, so that backup blobs in the seed corpus restore */
    unsigned char root[KS_ROOT_KEY_LEN];
    memset(root, 0x4b, sizeof(root));
    char path[256];
    snprintf(path, sizeof(path), "%s/root.key", dir);
    struct ks_open_opts opts = {.data_dir = dir};
    if (kv_file_write_atomic(path, root, sizeof(root), 0600) != KV_OK ||
        ks_open(&opts, &srv.ks) != KV_OK)
        abort();
    mdb_env_set_flags(srv.ks->env, MDB_NOSYNC, 1);
    if (testassert_register(&ci.creds) != KV_OK)
        abort();
    if (pol_new(dir, TENANT, &srv.pol) != KV_OK || pol_add_identity(srv.pol, &app) != KV_OK ||
        pol_add_identity(srv.pol, &ci) != KV_OK || pol_attach(srv.pol, srv.ks) != KV_OK)
        abort();
    /* premium: exportable keys (secure key release) may be made */
    struct ks_vault v = {.name = "default",
                         .tenant_id = TENANT,
                         .soft_delete = 0,
                         .retention_days = 7,
                         .premium = 1};
    struct pol_access_policy p = {.vault = "default", .tenant_id = TENANT, .keys = POL_PERMS_ALL};
    snprintf(p.object_id, sizeof(p.object_id), "%s", app.object_id);
    if (ks_vault_put(srv.ks, &v) != KV_OK || pol_policy_put(srv.pol, &p) != KV_OK)
        abort();
    make_key("rsa", KS_KTY_RSA);
    make_key("ec", KS_KTY_EC);
    make_key("oct", KS_KTY_OCT);
    make_key("upd", KS_KTY_EC);
    make_key("rot", KS_KTY_EC);
    make_exportable();
    make_hsm();

    struct srv_tls_paths tls;
    if (srv_tls_prepare(dir, NULL, 0, &tls) != KV_OK ||
        kv_file_read(tls.ca_pem, 65536, &srv.ca_pem, &srv.ca_pem_len) != KV_OK ||
        srv_signer_open(&tls, NULL, 0, &srv.signer) != KV_OK)
        abort();
    snprintf(srv.identity_header, sizeof(srv.identity_header), "kvmock");
    snprintf(srv.clock_path, sizeof(srv.clock_path), "%s/clock.json", dir);
    srv.https_port = free_port();
    srv.http_port = free_port();

    mg_init_library(MG_FEATURES_TLS);
    char ports[64];
    snprintf(ports, sizeof(ports), "127.0.0.1:%ds,127.0.0.1:%d", srv.https_port, srv.http_port);
    const char *options[] = {"listening_ports",
                             ports,
                             "ssl_certificate",
                             tls.server_pem,
                             "ssl_protocol_version",
                             "4",
                             "num_threads",
                             "4",
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             "60000",
                             "request_timeout_ms",
                             "30000",
                             "decode_url",
                             "no",
                             "tcp_nodelay",
                             "1",
                             NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof(cb));
    cb.begin_request = srv_dispatch;
    struct mg_init_data init = {
        .callbacks = &cb, .user_data = &srv, .configuration_options = options};
    char text[256] = "";
    struct mg_error_data err = {.text = text, .text_buffer_size = sizeof(text)};
    mg = mg_start2(&init, &err);
    if (mg == NULL) {
        fprintf(stderr, "civetweb did not start: %s\n", text);
        abort();
    }
    client_ctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(client_ctx, SSL_VERIFY_NONE, NULL);
    atexit(cleanup);
    return 0;
}

/* The key name in an answer's kid ("https://host/keys/NAME/VERSION"). */
static int kid_name(const char *body, char *name, size_t cap)
{
    const char *kid = strstr(body, "\"kid\":\"");
    const char *k = kid ? strstr(kid, "/keys/") : NULL;
    if (k == NULL)
        return 0;
    k += 6;
    size_t n = strcspn(k, "/\"");
    if (n == 0 || n >= cap)
        return 0;
    memcpy(name, k, n);
    name[n] = '\0';
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const struct tmpl *t = &templates[data[0] % NTEMPLATES];
    const uint8_t *body = data + 2;
    size_t body_len = size - 2;
    int raw = t->method == NULL;

    char path[512];
    if (t->variants != NULL) {
        size_t nv = 0;
        while (t->variants[nv] != NULL)
            nv++;
        const char *at = strstr(t->path, "%s");
        snprintf(path, sizeof(path), "%.*s%s%s", (int)(at - t->path), t->path,
                 t->variants[data[1] % nv], at + 2);
    } else if (!raw) {
        snprintf(path, sizeof(path), "%s", t->path);
    }

    char *tok = t->tok == TOK_NONE ? NULL
                                   : issue(t->tok == TOK_MGMT  ? "https://management.azure.com"
                                           : t->tok == TOK_HSM ? "https://managedhsm.azure.net"
                                                               : "https://vault.azure.net");
    const char *host = t->tok == TOK_HSM ? HSM_HOST : "localhost";
    size_t cap = body_len + 8192;
    char *req = malloc(cap);
    size_t len;
    if (raw) {
        /* the input is the request line and headers; keep it to one request */
        size_t n = body_len;
        const uint8_t *end = memmem(body, body_len, "\r\n\r\n", 4);
        if (end != NULL)
            n = (size_t)(end - body);
        memcpy(req, body, n);
        len = n;
        if (len < 2 || req[len - 2] != '\r' || req[len - 1] != '\n') {
            memcpy(req + len, "\r\n", 2);
            len += 2;
        }
        len += (size_t)snprintf(req + len, cap - len,
                                "Host: localhost\r\nAuthorization: Bearer %s\r\n"
                                "Content-Length: 0\r\nConnection: close\r\n\r\n",
                                tok);
    } else {
        len = (size_t)snprintf(req, cap,
                               "%s %s HTTP/1.1\r\nHost: %s\r\n%s%s%s%s"
                               "Content-Length: %zu\r\n\r\n",
                               t->method, path, host, tok ? "Authorization: Bearer " : "",
                               tok ? tok : "", tok ? "\r\n" : "",
                               t->extra_header ? t->extra_header : "", body_len);
        memcpy(req + len, body, body_len);
        len += body_len;
    }
    free(tok);

    struct conn *c = raw ? &(struct conn){-1, NULL} : &conns[t->port];
    int status = 0, closed = 0;
    char *answer = NULL;
    size_t answer_len = 0;
    for (int attempt = 0; attempt < 2 && status == 0; attempt++) {
        if (c->fd < 0 && conn_open(c, t->port) != 0) {
            fprintf(stderr, "cannot connect to the in-process server\n");
            abort();
        }
        if (conn_write(c, req, len) != 0) {
            conn_close(c);
            continue;
        }
        free(answer);
        answer = NULL;
        status = read_response(c, &answer, &answer_len, &closed);
        if (closed || raw)
            conn_close(c);
        if (raw)
            break;
    }
    free(req);

    if (!raw) {
        if (status == 0 || status >= 500) {
            fprintf(stderr, "template %u: answer %d: %.300s\n", (unsigned)(data[0] % NTEMPLATES),
                    status, answer ? answer : "");
            abort();
        }
    } else if (status >= 500 && status != 505) { /* 505: civetweb refuses an HTTP version */
        fprintf(stderr, "raw request: answer %d: %.300s\n", status, answer ? answer : "");
        abort();
    }
    char name[KS_NAME_MAX + 1];
    if (t->cleanup && status / 100 == 2 && answer != NULL && kid_name(answer, name, sizeof(name)) &&
        strcmp(name, "rsa") != 0 && strcmp(name, "ec") != 0 && strcmp(name, "oct") != 0 &&
        strcmp(name, "upd") != 0 && strcmp(name, "rot") != 0) {
        struct ks_key *gone = NULL;
        (void)ks_key_delete(srv.ks, "default", name, &gone);
        ks_key_free(gone);
    }
    free(answer);
    return 0;
}
