/**
 * @file srv.h
 * @brief The server: shared state, requests and responses.
 *
 * Request path (docs/architecture.md): civetweb calls srv_dispatch(), which
 * resolves the vault from the Host header, authenticates the bearer token
 * (policy/), matches the route table, checks api-version and asks the
 * evaluator for the route's permission, and only then reads the body and
 * calls the handler, which calls the keystore. Handlers never write status
 * codes by hand: they return an `enum kv_status`, and srv_send_error() is the
 * one function that writes error bodies.
 */
#ifndef SRV_H
#define SRV_H

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stddef.h>

#include "ks.h"
#include "kv_json.h"
#include "kv_status.h"
#include "pol.h"
#include "vault_props.h"

#define SRV_BODY_MAX (1024 * 1024) /**< request body cap */
#define SRV_HOST_MAX 256
#define SRV_MAX_QUERY 32
#define SRV_MAX_SEGMENTS 16

struct srv_signer;

/** State shared by every request. Read-only once the server runs. */
struct srv {
    struct ks_env *ks;
    struct pol_ctx *pol;
    char identity_header[256]; /**< the X-IDENTITY-HEADER / MSI secret value */
    char *ca_pem;              /**< contents of DATA/tls/ca.pem, served at /ca.pem */
    size_t ca_pem_len;
    int https_port, http_port;
    int ui_enabled; /**< the web view at /ui on the HTTP port */
    char clock_path[4200]; /**< DATA/clock.json: the clock's offset, kept across restarts */
    struct srv_audit_log *audit; /**< the audit writer (audit.c); NULL: write directly */
    struct srv_signer *signer;   /**< signs released keys (tls.h); NULL: release refused */
};

struct srv_query {
    char *name;  /**< percent-decoded */
    char *value; /**< percent-decoded */
};

#define SRV_CLIENT_REQUEST_ID_MAX 128

/** One request being handled. Lives on the worker thread's stack. */
struct srv_req {
    struct mg_connection *conn;
    const struct mg_request_info *ri;
    const struct srv *srv;
    int is_https;
    char request_id[37];
    /** The client's x-ms-client-request-id, echoed and audited as Key Vault does; "" when it
     * sent none or one that is not 1 to SRV_CLIENT_REQUEST_ID_MAX visible ASCII characters */
    char client_request_id[SRV_CLIENT_REQUEST_ID_MAX + 1];

    /* the path split into raw segments (not collapsed: "a//b" has an empty one) */
    char *path_buf;
    char *seg[SRV_MAX_SEGMENTS];
    size_t nseg;

    char *query_buf;
    struct srv_query query[SRV_MAX_QUERY];
    size_t nquery;

    /* the Host header, the vault it names and its challenge resource */
    char host[SRV_HOST_MAX];
    char vault[KS_VAULT_NAME_MAX + 1];
    char resource[SRV_HOST_MAX + 16];
    int hsm;        /**< the Host names a Managed HSM (NAME.managedhsm.DOMAIN) */
    /** the vault (or HSM) the data plane found for the request, read before its route; set
     * while its handler runs, else NULL */
    const struct ks_vault *found;
    int data_plane; /**< a Key Vault API request: its answers say where the client was seen */
    char region[KS_LOCATION_MAX + 1]; /**< the vault's location, once found ("": not yet) */

    struct pol_claims who; /**< set once the token verified */
    /** a token kvmock issued, refused only for this audience ("": not so refused) */
    char wrong_aud[POL_AUD_MAX];
    char key_name[KS_NAME_MAX + 1];
    char version[KS_VERSION_LEN + 1];
    /* a Managed HSM's access control: the assignment or definition named ("": a list),
     * and whether the scope was "/keys" (a key's is key_name) */
    char hsm_item[POL_ID_MAX];
    int hsm_keys;

    cJSON *body; /**< parsed JSON body (object), or NULL when the route has none */
    /** an answer's Azure-AsyncOperation header (a Managed HSM's backup or restore job), or
     * NULL */
    const char *async_operation;

    /* for the audit log */
    int status;            /**< the HTTP status sent, 0 until a response is sent */
    int64_t start_us;      /**< when the request arrived (monotonic, microseconds) */
    const char *operation; /**< the audit operation name, NULL = not audited */
    const char *route;     /**< the matched route pattern, for the request log */
    const struct srv_route *route_def; /**< the matched data-plane route, NULL elsewhere */
    int policy_match;      /**< the caller's access was checked and granted */
    int vault_rbac;        /**< the vault authorizes by role assignments (data plane) */
    /** the vault's resource group, once found on the data plane ("": the path's) */
    char vault_group[KS_GROUP_MAX + 1];
    char error[512];       /**< the message of the error answered ("": none) */
    int audited;           /**< the audit record has been written */
    struct ks_attach attach; /**< a state change's record, committed with the change */
};

/* ---- requests (request.c) ------------------------------------------------------ */

/**
 * @brief Fill the request from civetweb's view: split the raw path into
 * segments and percent-decode each; decode query names and values.
 * @return KV_OK, KV_ERR_BAD_PARAM (bad escape, NUL, too many segments or
 *   parameters), KV_ERR_NOMEM. The caller always calls srv_req_release().
 */
enum kv_status srv_req_init(struct srv_req *req, struct mg_connection *conn,
                            const struct srv *srv) KV_MUST_CHECK;

/** @brief The monotonic clock in microseconds (a request's start and its latency). */
int64_t srv_monotonic_us(void);

/** @brief Free what srv_req_init() and the handlers allocated. */
void srv_req_release(struct srv_req *req);

/** @brief The decoded value of query parameter @p name (case-insensitive), or NULL. */
const char *srv_query_get(const struct srv_req *req, const char *name);

/** @brief A request header's value, or NULL. */
const char *srv_header(const struct srv_req *req, const char *name);

/**
 * @brief Whether a request for the loopback-only endpoints (the web view, /admin) may be
 * answered: it comes from a loopback address, names a loopback host (localhost, *.localhost,
 * 127.x.x.x, [::1]; so a web page cannot reach them through a DNS name it rebound), and is
 * not a browser's request from another site's page (its Origin is a loopback host, and
 * Sec-Fetch-Site is not cross-site). curl and the SDKs send neither header.
 */
int srv_local_only(const struct srv_req *req);

/**
 * @brief Read the body (looping, chunked or not) up to SRV_BODY_MAX and parse it
 * as a JSON object into req->body. An empty body gives an empty object.
 * @return KV_OK, KV_ERR_BODY_TOO_LARGE, KV_ERR_BAD_JSON, KV_ERR_NOMEM.
 */
enum kv_status srv_read_json_body(struct srv_req *req) KV_MUST_CHECK;

/**
 * @brief Read the raw body up to @p max bytes (NUL-terminated).
 * @param[out] out a new buffer the caller frees.
 * @return KV_OK, KV_ERR_BODY_TOO_LARGE, KV_ERR_NOMEM.
 */
enum kv_status srv_read_body(struct srv_req *req, size_t max, char **out,
                             size_t *out_len) KV_MUST_CHECK;

/* ---- responses (response.c) ------------------------------------------------------ */

/** @brief Send @p body (consumed) as JSON with HTTP status @p http_status. */
void srv_send_json(struct srv_req *req, int http_status, cJSON *body);

/**
 * @brief Send the text of @p j as JSON (an out-of-memory error if the writer
 * failed); the text is zeroed and freed after sending.
 */
void srv_send_json_text(struct srv_req *req, int http_status, struct kv_json *j);

/** @brief Send a body with a content type (the body is copied to the socket). */
void srv_send_raw(struct srv_req *req, int http_status, const char *content_type,
                  const char *body, size_t len);

/** @brief Send an empty response (e.g. 204). */
void srv_send_empty(struct srv_req *req, int http_status);

/**
 * @brief The one function that writes error bodies:
 * `{"error":{"code","message"[,"innererror":{"code"}]}}` with the status and
 * codes from the status table. A 401 also carries the Key Vault challenge.
 * @param[in] message NULL for the table's default message.
 */
void srv_send_error(struct srv_req *req, enum kv_status st, const char *message);

/** @brief srv_send_error() with a printf-style message. */
void srv_send_errorf(struct srv_req *req, enum kv_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/**
 * @brief The base URL a client reached this request on: "https://" + Host.
 * @param[out] out buffer of at least SRV_HOST_MAX + 16 bytes.
 */
void srv_base_url(const struct srv_req *req, char *out, size_t cap);

/* ---- vault host resolution (vaulthost.c) ------------------------------------------- */

/**
 * @brief Resolve the vault and the challenge resource from the Host header:
 * `NAME.vault.DOMAIN[:port]` is vault NAME with resource `https://vault.DOMAIN[:port]`,
 * `NAME.managedhsm.DOMAIN[:port]` Managed HSM NAME (req->hsm) with resource
 * `https://managedhsm.DOMAIN[:port]`; any other host is vault `default` with resource
 * `https://vault.azure.net`.
 * @return KV_OK or KV_ERR_BAD_PARAM (missing or malformed Host).
 */
enum kv_status srv_resolve_vault(struct srv_req *req) KV_MUST_CHECK;

/** @brief Whether host name @p host (a port may follow) is `NAME.managedhsm.DOMAIN`. */
int srv_host_is_hsm(const char *host);

/**
 * @brief The DNS suffix of the vaults as the client sees them: "vault.azure.net" for a client
 * that reached kvmock as Azure's Resource Manager (management.azure.com), else kvmock's own
 * "vault.localhost:PORT". Vault URIs in management answers are "https://NAME." + this.
 */
void srv_vault_dns(const struct srv_req *req, char *out, size_t cap);

/** @brief srv_vault_dns() for the managed HSMs: "managedhsm.azure.net" or kvmock's own. */
void srv_hsm_dns(const struct srv_req *req, char *out, size_t cap);

/* ---- dispatch (dispatch.c) ----------------------------------------------------------- */

/** @brief civetweb's begin_request callback: handles every request. */
int srv_dispatch(struct mg_connection *conn);

/**
 * @brief What kvmock's clock made due: the keystore's sweep (ks_sweep(): expired deleted
 * keys and vaults purged, keys rotated), then the access control of the vaults it purged
 * (pol_sweep()). Every 30 s (main.c) and after `/admin/clock`.
 * @return KV_OK, or the first failure (logged by the caller; the next sweep tries again).
 */
enum kv_status srv_sweep(const struct srv *srv) KV_MUST_CHECK;

/* ---- handlers ------------------------------------------------------------------------ */

/** A route handler. The dispatcher has authenticated, authorised and parsed. */
typedef void (*srv_handler)(struct srv_req *req);

/** @brief Whether the route needs a JSON body read before the handler runs. */
enum srv_body { SRV_BODY_NONE = 0, SRV_BODY_JSON };

struct srv_route {
    const char *operation; /**< the audit log's operationName, e.g. "KeyUnwrap" */
    const char *method;
    const char *pattern; /**< e.g. "/keys/{name}/{version}/wrapkey" */
    enum pol_perm perm;  /**< the access-policy permission the route needs */
    enum srv_body body;
    srv_handler handler;
    int ok_status; /**< the status a success answers, when not 200 (a purge: 204) */
};

/** Outcome of matching a request against the route table. */
enum srv_match { SRV_MATCH_OK, SRV_MATCH_NO_ROUTE, SRV_MATCH_BAD_METHOD };

/**
 * @brief Find the route for a method and decoded path segments. Literal segments
 * match case-insensitively and win over parameters; `{version}` may be empty
 * (the current version), and one trailing empty segment is ignored.
 * @param[out] route the route on SRV_MATCH_OK.
 * @param[out] name, version pointers into @p seg on SRV_MATCH_OK (NULL if absent).
 */
enum srv_match srv_route_match(const struct srv_route *table, size_t n, const char *method,
                               char *const *seg, size_t nseg, const struct srv_route **route,
                               const char **name, const char **version);

/* ---- a Managed HSM's access control (hsm_api.c) --------------------------------------- */

/** @brief Whether the path is one of a Managed HSM's access control (it names
 * providers/Microsoft.Authorization). */
int srv_hsm_rbac_path(const struct srv_req *req);

/**
 * @brief Match the path as `{scope}/providers/Microsoft.Authorization/{roleAssignments|
 * roleDefinitions}[/{name}]`: set req->hsm_item and req->hsm_keys, and @p key to the
 * scope's key name (NULL for "/" and "/keys").
 */
enum srv_match srv_hsm_rbac_match(struct srv_req *req, const struct srv_route **route,
                                  const char **key);

/** @brief The permission @p route needs in a Managed HSM (its own names for reading
 * deleted keys and for random bytes; else the route's). */
enum pol_perm srv_hsm_perm(const struct srv_route *route);

/** @brief Answer a Managed HSM's 403 for a call that needed @p perm. */
void srv_hsm_denied(struct srv_req *req, enum pol_perm perm);

/* ---- a Managed HSM's settings, full backup and restore (hsm_admin.c) ------------------- */

/**
 * @brief Match the path against a Managed HSM's own routes (settings, backup, restore and
 * their jobs): set req->hsm_item to the setting or job named, and @p key to the key of a
 * selective key restore (else NULL).
 */
enum srv_match srv_hsm_admin_match(struct srv_req *req, const struct srv_route **route,
                                   const char **key);

/** @brief Whether the path is a backup's or restore's job status URL ({backup|restore}/{job}/
 * pending), which clients call as given, without an api-version. */
int srv_hsm_job_path(const struct srv_req *req);

/** @brief Whether @p route is one of the whole HSM's (settings, backup, full restore, jobs);
 * a selective key restore is a key's. */
int srv_hsm_admin_route(const struct srv_route *route);

/** The data-plane route table (keys_api.c). */
extern const struct srv_route srv_key_routes[];
extern const size_t srv_key_routes_count;

/** @brief Managed-identity token endpoints on the HTTP port (identity_api.c).
 * @return 1 when the request was one of them and has been answered. */
int srv_identity_endpoint(struct srv_req *req);

/** @brief The Entra-shaped client-credentials authority on the HTTPS port
 * (identity_api.c). @return 1 when the request was for it and has been answered. */
int srv_entra_endpoint(struct srv_req *req);

/** @brief The management plane (Azure Resource Manager paths on the HTTPS port,
 * mgmt_api.c). @return 1 when the request was for it and has been answered. */
int srv_mgmt_endpoint(struct srv_req *req);

/**
 * @brief A key's "tags" in @p body, checked as the data plane checks them (at most 15,
 * names of 1-512 characters, values of at most 256), as strings borrowed from @p body:
 * free out->names and out->values only (keys_api.c).
 * @return KV_OK; else KV_ERR_BAD_PARAM or KV_ERR_NOMEM with @p why set and @p out empty.
 */
enum kv_status srv_key_tags_parse(const cJSON *body, struct ks_tags *out, char *why, size_t cap);

/**
 * @brief A management-plane list's next link: the request's own URL with `$skiptoken` set to
 * @p token (URL-safe), every other query parameter ($top, $filter, api-version) kept as
 * the client sent it (mgmt_api.c).
 */
void srv_arm_next_link(const struct srv_req *req, const char *token, char *out, size_t cap);

/**
 * @brief Begin a management-plane list page after the keystore's answer @p st: the
 * document, its "value" array in @p value; NULL once the error is answered (400 for a
 * $skiptoken that is not valid, @p st's own, or out of memory) (mgmt_api.c).
 */
cJSON *srv_arm_page_begin(struct srv_req *req, enum kv_status st, cJSON **value);

/**
 * @brief Answer a management-plane list page, taking @p doc ({"value": [...]}): with a
 * `nextLink` to @p next when it is not NULL or empty; out of memory when @p ok is 0 (a part
 * of the page could not be built) (mgmt_api.c).
 */
void srv_arm_send_page(struct srv_req *req, cJSON *doc, int ok, const char *next);

/* ---- the management plane's shared pieces (mgmt_api.c), for mgmt_hsm.c ---- */

/** @brief The resource group the request's path names, or NULL (mgmt_api.c). */
const char *srv_arm_path_group(const struct srv_req *req);

/** @brief Add the tags @p known, or (NULL) those of vault or HSM @p name read from the store
 * (@p deleted: as it was deleted), to @p o as "tags". @return 0 when out of memory. */
int srv_arm_add_tags(struct srv_req *req, cJSON *o, const char *name, int deleted,
                     const struct ks_tags *known);

/** @brief A body's "tags", checked against Resource Manager's rules, as strings borrowed from
 * @p o in @p out (free out->names and out->values). @return 0 when it answered 400. */
int srv_arm_parse_tags(struct srv_req *req, const cJSON *o, struct ks_tags *out);

/** @brief Check the shape of a vault's or managed HSM's PUT or PATCH body (a PUT's location
 * and properties object, a PATCH's properties if any, createMode "default" or "recover"),
 * and read a PUT's location into @p location. @return 0 when it answered 400. */
int srv_arm_body_ok(struct srv_req *req, int patch, char location[KS_LOCATION_MAX + 1]);

/** @brief A PUT body's "location", as Resource Manager answers it, in @p out.
 * @return 0 when it answered 400. */
int srv_arm_put_location(struct srv_req *req, char out[KS_LOCATION_MAX + 1]);

/** @brief Add the systemData of vault or HSM @p v to @p o. @return 0 when out of memory. */
int srv_arm_add_system_data(cJSON *o, const struct ks_vault *v);

/** @brief This request's change to a vault or HSM, for its systemData: now, by the caller. */
void srv_arm_caller_change(const struct srv_req *req, struct ks_vault_change *out);

/** @brief Whether Azure gives a new vault or managed HSM the name @p name: 3-24 letters,
 * digits and dashes, a letter first, a letter or digit last, no two dashes in a row. */
int srv_arm_name_valid(const char *name);

/**
 * @brief The start of a vault's or managed HSM's PUT or PATCH: @p v's Resource Manager part
 * from the body and the resource as it is (@p old; NULL for a new one): its tags (the
 * body's, which replace its own; none for a PUT without them; kept by a PATCH without
 * them), name, this change and its creation, its group (@p group for a new one) and place
 * (@p location for a new one), its tenant (the body's properties.tenantId, else its own,
 * else kvmock's).
 * @param[out] tags the body's tags, which v->tags may point at (free tags->names and
 *   tags->values).
 * @return 0 when it answered 400 (bad tags).
 */
int srv_arm_resource_fill(struct srv_req *req, int patch, const struct ks_vault *old,
                          const char *name, const char *group, const char *location,
                          struct ks_vault *v, struct ks_tags *tags);

/** What srv_arm_write() read for its answer: the tags and rule lists a write kept. */
struct srv_arm_kept {
    struct ks_tags tags;
    struct ks_net_rules rules;
};

/**
 * @brief The end of a vault's or managed HSM's PUT or PATCH: @p v written with access
 * control change @p chg, a new one (only while the name is free) with its group, made if
 * need be in the same transaction (pol_vault_create_in_group()), an existing one only while
 * it lives (pol_vault_put()). On KV_OK, v->group is the group's name as the group has it,
 * and v->tags and v->net_rules show what it holds (the body's, else @p kept).
 * @return as pol_vault_put(), and the reads' errors.
 *   Release @p kept with srv_arm_kept_free() in any case.
 */
enum kv_status srv_arm_write(struct srv_req *req, struct ks_vault *v, int exists,
                             const struct pol_acl_change *chg, struct srv_arm_kept *kept);

void srv_arm_kept_free(struct srv_arm_kept *kept);

/**
 * @brief Recover deleted vault (@p hsm 0) or managed HSM (1) @p name into @p out, its group
 * made again if it went meanwhile. @return 1; 0 when it answered (400
 * SoftDeletedVaultDoesNotExist with message @p none, NULL for the status's own, when there
 * is no such deleted one).
 */
int srv_arm_recover(struct srv_req *req, const char *name, int hsm, const char *none,
                    struct ks_vault *out);

/** @brief Delete vault or managed HSM @p v as Resource Manager's DELETE does (pol_vault_delete()).
 * @return as pol_vault_delete(). */
enum kv_status srv_arm_delete(struct srv_req *req, const struct ks_vault *v);

/** @brief Managed HSM @p v's Resource Manager id, in the request's subscription. */
void srv_hsm_arm_id(const struct srv_req *req, const struct ks_vault *v, char *out, size_t cap);

/** @brief Whether @p v is a managed HSM that the path's group (or the subscription) holds. */
int srv_hsm_in_path_group(const struct srv_req *req, const struct ks_vault *v);

/* ---- managed HSMs on the management plane (mgmt_hsm.c); the caller has authorized the
 * request and checked its api-version ---- */

/** What a managed HSM's name must be, as a refusal says it (mgmt_hsm.c). */
extern const char srv_hsm_name_rules[];

/** @brief PUT, PATCH, GET or DELETE of managed HSM @p name (.../managedHSMs/NAME). */
void srv_mgmt_hsm(struct srv_req *req, const char *name);

/** @brief GET .../managedHSMs: every managed HSM of the subscription or the path's group. */
void srv_mgmt_hsm_list(struct srv_req *req);

/** @brief Answer 404 ResourceGroupNotFound for group @p name (mgmt_api.c). */
void srv_arm_group_not_found(struct srv_req *req, const char *name);

/** @brief A vault's resource group: the one it was created in; POL_RESOURCE_GROUP for a
 * vault of the configuration file (mgmt_api.c). */
const char *srv_vault_group(const struct ks_vault *v);

/** @brief Whether the request's path (of one vault, or a scope in it) reaches vault @p v:
 * through its own group; a vault of the configuration file through any group
 * (mgmt_api.c). */
int srv_in_path_group(const struct srv_req *req, const struct ks_vault *v);

/**
 * @brief Microsoft.Authorization (mgmt_authz.c): role assignments at @p scope (a
 * subscription, resource group, vault or key; @p id NULL: the list) or, with
 * @p role_definitions, the built-in Key Vault role definitions and the custom ones. The
 * caller has authorized the request and checked its api-version.
 */
void srv_mgmt_authz(struct srv_req *req, const char *scope, int role_definitions,
                    const char *id);

/**
 * @brief Check a custom role definition's properties (Resource Manager's roleName, type,
 * description, permissions and assignableScopes), for a PUT and for the configuration
 * file. @return NULL when they are well formed, else why not (a static string).
 */
const char *srv_role_def_bad(const cJSON *props);

/**
 * @brief Make or replace custom role definition @p id (a GUID) from @p props, checked with
 * srv_role_def_bad(), as made now by @p by (an object id; NULL: kvmock itself, for the
 * configuration file); a replaced one keeps its creation.
 * @param[out] created whether it is new (may be NULL).
 * @return as pol_role_def_put(), and KV_ERR_NOMEM.
 */
enum kv_status srv_role_def_put(const struct srv *srv, const char *id, const cJSON *props,
                                const char *by, int *created) KV_MUST_CHECK;

/**
 * @brief Add a version's key_ops to @p o as "keyOps", in the order its client gave them
 * (Resource Manager's key resources and the web view). @return 0 when out of memory.
 */
int srv_key_ops_json(cJSON *o, const struct ks_key *k);

/**
 * @brief Microsoft.KeyVault/vaults/keys (mgmt_keys.c): PUT (create if absent) or GET of key
 * @p name (@p version: one version), the vault's keys (@p name NULL) or, with @p versions,
 * a key's versions. The caller has authorized the request and found vault @p v, whose
 * resource id is @p vault_id.
 */
void srv_mgmt_vault_keys(struct srv_req *req, const struct ks_vault *v, const char *vault_id,
                         const char *name, const char *version, int versions);

/**
 * @brief Authenticate the request's bearer token for one of @p auds.
 * @return KV_OK (req->who set) or KV_ERR_UNAUTHORIZED (req->wrong_aud set when the
 *   audience was the token's only fault).
 */
enum kv_status srv_authenticate(struct srv_req *req, const char *const *auds,
                                size_t n_auds) KV_MUST_CHECK;

/** The claim that also names the caller's object id in a management call's audit record,
 * as Resource Manager's records do (every record says "oid", as the token). */
#define SRV_AUDIT_CLAIM_OBJECT_ID "http://schemas.microsoft.com/identity/claims/objectidentifier"

/**
 * @brief Append the request's audit record (audit.c): operation, caller, vault,
 * key id, status. Called as the response starts; does nothing when
 * req->operation is NULL or the record was written. A call that changed state
 * returns once its record is committed; other records are committed by the
 * writer within a few milliseconds. Never records secrets.
 */
void srv_audit(struct srv_req *req);

/**
 * @brief Before a data-plane handler runs: a call that changes state gets its
 * success record attached to the thread's next keystore write (ks_txn_attach),
 * so that the change and its record commit together. srv_audit() detaches it,
 * and writes the record itself when the attached one was not committed or the
 * answer is not the success it described.
 */
void srv_audit_attach(struct srv_req *req);

/**
 * @brief Start the audit writer: one thread that commits queued records in
 * batches to the audit table, keeping at most @p keep records (0: all). A
 * request whose record would take the queue past @p queue_max bytes (0: 16 MiB)
 * waits until the writer takes the queue.
 * @return KV_OK, KV_ERR_NOMEM, KV_ERR_INTERNAL.
 */
enum kv_status srv_audit_start(struct ks_env *ks, size_t keep, size_t queue_max,
                               struct srv_audit_log **out) KV_MUST_CHECK;

/** What the audit writer holds (for /metrics). */
struct srv_audit_stats {
    uint64_t queued; /**< records queued and not yet committed */
    size_t bytes;    /**< memory held by the queues, the one being committed included */
    uint64_t waits;  /**< requests that waited for room in the queue */
};

/** @brief Fill @p out; all zero when @p audit is NULL. */
void srv_audit_stats(struct srv_audit_log *audit, struct srv_audit_stats *out);

/** @brief Commit every record queued so far, then return. NULL is a no-op. */
void srv_audit_flush(struct srv_audit_log *audit);

/** @brief Commit what is queued and stop the writer. NULL is a no-op. */
void srv_audit_stop(struct srv_audit_log *audit);

/**
 * @brief GET /admin/audit on the HTTP port: records oldest first, paged with
 * maxresults (1-1000, default 100) and an absolute nextLink.
 */
void srv_audit_page(struct srv_req *req);

/** @brief Print every audit record of a data folder as JSON lines (`kvmock audit`). */
int srv_audit_dump(const char *data_dir);

/** @brief The web view (ui.c). @return 1 when the request was for it and has been answered. */
int srv_ui_endpoint(struct srv_req *req);

/** @brief Count a finished request in the metrics (metrics.c). */
void srv_metrics_record(const struct srv_req *req, int64_t latency_us);

/** @brief How many requests have been answered since start. */
unsigned long long srv_metrics_answered(void);

/** @brief GET /metrics on the HTTP port, in Prometheus text format. */
void srv_metrics_page(struct srv_req *req);

/** @brief Whether an api-version value is one kvmock accepts. */
int srv_api_version_known(const char *v);

#endif
