/*
 * The audit log: one record per audited call, in the shape of Key Vault's
 * AuditEvent diagnostic log, appended to the keystore's audit table.
 * Records name callers, vaults, key ids and results; never tokens, bodies or
 * key material.
 *
 * Records are committed many per transaction, so an audited call does not
 * wait for a disk sync of its own:
 * - a call that changed state (a 2xx create, import, update, delete, ...)
 *   commits its record before its answer leaves, in the keystore's group commit
 *   (shared with concurrent writes), so an acknowledged change is in the log
 *   even after a crash;
 * - any other record (reads, key operations, refusals) is queued for one writer
 *   thread, which commits the queue at most AUDIT_DELAY_MS later; reading the
 *   log through the server (/admin/audit, the web view) first commits what is
 *   queued, so a client that has an answer finds its record.
 * A state change first waits for the records queued before it to be committed,
 * so that the log keeps the order in which calls were answered: a refusal
 * answered before an access policy was granted comes before the grant.
 * The table keeps the newest `--audit-max` records (0: all).
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "kv_ip.h"
#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

#define AUDIT_PAGE_DEFAULT 100
#define AUDIT_PAGE_MAX 1000
/* A commit of queued records costs the same few disk syncs whatever its size:
 * at 20 k reads a second, committing every 5 ms took a fifth of the throughput
 * of a read-only load (bench/PROFILE.md, fifth round), where committing every
 * 100 ms costs about as little as not syncing at all. */
#define AUDIT_DELAY_MS 100
#define AUDIT_BATCH_MAX 4096 /* records per transaction */
#define AUDIT_QUEUE_FIRST (64 << 10)
/* A drained queue is kept for the next round unless it is larger than this or
 * than four times what its round used: the room a burst or a slow commit made
 * goes back once the load is lighter again, and all of it once the load stops. */
#define AUDIT_QUEUE_KEEP (4 << 20)
/* Bytes queued and not yet taken by the writer beyond which a request waits
 * for the writer's commit: when the disk stalls, requests slow down instead of
 * memory growing without bound. 16 MiB is about 29 000 records of 580 bytes,
 * most of a second at the busiest rate measured (36 k gets/s, bench/RESULTS.md). */
#define AUDIT_QUEUE_MAX_DEFAULT (16 << 20)

/* Queued records, back to back, each with its NUL. The texts are copied in:
 * a record freed by the writer thread would go back to the allocator arena of
 * the thread that built it, taking that arena's lock against the thread's own
 * next request; a copy is freed where it was made. */
struct audit_queue {
    char *bytes;
    size_t len, cap;
    size_t n; /* records */
};

struct srv_audit_log {
    struct ks_env *ks;
    size_t keep;
    size_t max;                /* queued bytes before a request waits */
    pthread_mutex_t mu;
    pthread_cond_t work;       /* to the writer: records queued, someone waits, or stop */
    pthread_cond_t done;       /* from the writer: `committed` moved */
    struct audit_queue queue;  /* what the requests fill */
    struct audit_queue spare;  /* the writer's last, emptied, for the next round */
    uint64_t queued, committed; /* counts of records ever queued / handled */
    uint64_t wanted;            /* the writer commits at once up to here */
    uint64_t waits;             /* requests that waited for room in the queue */
    size_t writing;             /* capacity of the queue the writer is committing */
    struct timespec first_at;   /* when the oldest queued record arrived */
    int stop;
    pthread_t thread;
};

/* An empty queue's room beyond a first allocation goes back: the writer is
 * idle, so a burst is over (under a steady load the queue is not found empty). */
static void release_idle(struct audit_queue *q)
{
    if (q->cap > AUDIT_QUEUE_FIRST) {
        free(q->bytes);
        *q = (struct audit_queue){0};
    }
}

/* Commit every record of @p q, AUDIT_BATCH_MAX to a transaction, and empty it. */
static void commit_queue(struct srv_audit_log *a, struct audit_queue *q)
{
    const void *vals[AUDIT_BATCH_MAX];
    size_t lens[AUDIT_BATCH_MAX];
    const char *at = q->bytes, *end = q->bytes + q->len;
    while (at < end) {
        size_t n = 0;
        for (; n < AUDIT_BATCH_MAX && at < end; n++) {
            vals[n] = at;
            lens[n] = strlen(at);
            at += lens[n] + 1;
        }
        if (ks_record_append_many(a->ks, KS_TABLE_AUDIT, vals, lens, n, a->keep, NULL) != KV_OK)
            kv_log(KV_LOG_WARN, "%zu audit record(s) not written", n);
    }
    q->len = q->n = 0;
}

static int due(const struct srv_audit_log *a, struct timespec *deadline)
{
    if (a->stop || a->wanted > a->committed || a->queue.n >= AUDIT_BATCH_MAX)
        return 1;
    *deadline = a->first_at;
    deadline->tv_nsec += AUDIT_DELAY_MS * 1000000L;
    if (deadline->tv_nsec >= 1000000000L) {
        deadline->tv_sec++;
        deadline->tv_nsec -= 1000000000L;
    }
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > deadline->tv_sec ||
           (now.tv_sec == deadline->tv_sec && now.tv_nsec >= deadline->tv_nsec);
}

static void *writer(void *arg)
{
    struct srv_audit_log *a = arg;
    pthread_mutex_lock(&a->mu);
    for (;;) {
        struct timespec deadline;
        if (a->queue.n == 0) {
            if (a->stop)
                break;
            release_idle(&a->queue);
            release_idle(&a->spare);
            pthread_cond_wait(&a->work, &a->mu);
            continue;
        }
        if (!due(a, &deadline)) {
            pthread_cond_timedwait(&a->work, &a->mu, &deadline);
            continue;
        }
        struct audit_queue batch = a->queue;
        a->queue = a->spare;
        a->spare = (struct audit_queue){0};
        a->writing = batch.cap;
        clock_gettime(CLOCK_MONOTONIC, &a->first_at);
        pthread_mutex_unlock(&a->mu);
        size_t n = batch.n, used = batch.len;
        commit_queue(a, &batch);
        if (batch.cap > AUDIT_QUEUE_KEEP ||
            (batch.cap > AUDIT_QUEUE_FIRST && batch.cap / 4 > used)) {
            /* a burst is over: give its queue back (enqueue starts a new one) */
            free(batch.bytes);
            batch = (struct audit_queue){0};
        }
        pthread_mutex_lock(&a->mu);
        a->spare = batch;
        a->writing = 0;
        a->committed += n;
        pthread_cond_broadcast(&a->done);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

enum kv_status srv_audit_start(struct ks_env *ks, size_t keep, size_t queue_max,
                               struct srv_audit_log **out)
{
    struct srv_audit_log *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return KV_ERR_NOMEM;
    a->ks = ks;
    a->keep = keep;
    a->max = queue_max ? queue_max : AUDIT_QUEUE_MAX_DEFAULT;
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->work, &attr);
    pthread_cond_init(&a->done, NULL);
    pthread_condattr_destroy(&attr);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        pthread_cond_destroy(&a->work);
        pthread_cond_destroy(&a->done);
        pthread_mutex_destroy(&a->mu);
        free(a);
        return KV_ERR_INTERNAL;
    }
    *out = a;
    return KV_OK;
}

void srv_audit_stop(struct srv_audit_log *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    a->stop = 1;
    pthread_cond_signal(&a->work);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL); /* the writer drains the queue first */
    free(a->queue.bytes);
    free(a->spare.bytes);
    pthread_cond_destroy(&a->work);
    pthread_cond_destroy(&a->done);
    pthread_mutex_destroy(&a->mu);
    free(a);
}

/* Wait, with the lock held, until every record up to @p seq is committed. */
static void wait_committed(struct srv_audit_log *a, uint64_t seq)
{
    if (a->committed >= seq)
        return;
    if (a->wanted < seq)
        a->wanted = seq;
    pthread_cond_signal(&a->work);
    while (a->committed < seq)
        pthread_cond_wait(&a->done, &a->mu);
}

void srv_audit_flush(struct srv_audit_log *a)
{
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    wait_committed(a, a->queued);
    pthread_mutex_unlock(&a->mu);
}

void srv_audit_stats(struct srv_audit_log *a, struct srv_audit_stats *out)
{
    *out = (struct srv_audit_stats){0};
    if (a == NULL)
        return;
    pthread_mutex_lock(&a->mu);
    out->queued = a->queued - a->committed;
    out->bytes = a->queue.cap + a->spare.cap + a->writing;
    out->waits = a->waits;
    pthread_mutex_unlock(&a->mu);
}

/* Queue a copy of one record for the writer; @p text is freed. When the queue
 * is full, ask the writer to take it now and wait until it has: the writer is
 * still committing the queue it took before, or the disk would have emptied
 * this one. */
static enum kv_status enqueue(struct srv_audit_log *a, char *text)
{
    size_t len = strlen(text) + 1;
    enum kv_status st = KV_OK;
    int waited = 0;
    pthread_mutex_lock(&a->mu);
    struct audit_queue *q = &a->queue;
    while (q->n > 0 && q->len + len > a->max) {
        a->waits += !waited;
        waited = 1;
        if (a->wanted < a->queued)
            a->wanted = a->queued;
        pthread_cond_signal(&a->work);
        pthread_cond_wait(&a->done, &a->mu);
    }
    if (q->cap - q->len < len) {
        size_t cap = q->cap ? q->cap : AUDIT_QUEUE_FIRST;
        while (cap - q->len < len)
            cap *= 2;
        char *bytes = realloc(q->bytes, cap);
        if (bytes == NULL) {
            st = KV_ERR_NOMEM;
            goto out;
        }
        q->bytes = bytes;
        q->cap = cap;
    }
    if (q->n == 0)
        clock_gettime(CLOCK_MONOTONIC, &a->first_at);
    memcpy(q->bytes + q->len, text, len);
    q->len += len;
    q->n++;
    a->queued++;
    if (q->n == 1 || q->n == AUDIT_BATCH_MAX)
        pthread_cond_signal(&a->work); /* starts the writer's delay, or a full batch */
out:
    pthread_mutex_unlock(&a->mu);
    free(text);
    return st;
}

/* Key Vault's resultSignature: the status's reason phrase (RFC 9110), as "Not Found". */
static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Content Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 507: return "Insufficient Storage";
    default: return status >= 500 ? "Internal Server Error" : "Other";
    }
}

/* Key Vault's resourceId: the vault's Resource Manager id in capitals. A data-plane call
 * names the vault's own group; a management call the subscription and group of its path
 * (kvmock's own for a path without one). */
static void resource_id(const struct srv_req *req, char *out, size_t cap)
{
    const char *sub = POL_SUBSCRIPTION, *group = POL_RESOURCE_GROUP;
    if (req->vault_group[0] != '\0') {
        group = req->vault_group;
    } else if (!req->data_plane && req->nseg >= 2 &&
               strcasecmp(req->seg[0], "subscriptions") == 0) {
        sub = req->seg[1];
        if (req->nseg >= 4 && strcasecmp(req->seg[2], "resourceGroups") == 0)
            group = req->seg[3];
    }
    kv_str_join(out, cap, "/SUBSCRIPTIONS/", sub, "/RESOURCEGROUPS/", group,
                req->hsm ? "/PROVIDERS/MICROSOFT.KEYVAULT/MANAGEDHSMS/"
                         : "/PROVIDERS/MICROSOFT.KEYVAULT/VAULTS/",
                req->vault, NULL);
    for (char *c = out; *c != '\0'; c++)
        *c = (char)toupper((unsigned char)*c);
}

/* Whether the call changes what the store holds when it succeeds: on the data
 * plane, what its route's permission says (key operations are POSTs that change
 * nothing); elsewhere (the management plane), every method but GET and HEAD. */
static int changes_state(const struct srv_req *req)
{
    if (req->operation == NULL)
        return 0;
    if (req->route_def != NULL)
        return pol_perm_changes_state(req->route_def->perm);
    const char *m = req->ri->request_method;
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0;
}

/* Whether the call changed what the store holds: then its record is committed
 * before the answer. */
static int changed_state(const struct srv_req *req)
{
    return req->status >= 200 && req->status < 300 && changes_state(req);
}

/* The status a data-plane state change answers when it succeeds (its route's). */
static int success_status(const struct srv_req *req)
{
    return req->route_def != NULL && req->route_def->ok_status != 0 ? req->route_def->ok_status
                                                                     : 200;
}

/* The AuditEvent record of @p req as if it answered @p status (malloc()ed). */
static char *record_text(const struct srv_req *req, int status)
{
    int64_t duration = (srv_monotonic_us() - req->start_us) / 1000; /* DurationMs */

    char when[21], uri[SRV_HOST_MAX + 1200], id[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
    char rid[SRV_HOST_MAX + KS_GROUP_MAX + KS_VAULT_NAME_MAX + 96], ms[24];
    kv_str_utc(when, ks_now());
    /* the URL as asked, query included (each part cut at a length kept for every record) */
    srv_base_url(req, uri, sizeof(uri));
    size_t at = strlen(uri);
    kv_str_join_n(uri + at, sizeof(uri) - at, req->ri->local_uri_raw, 512, NULL);
    const char *query = req->ri->query_string;
    if (query != NULL && query[0] != '\0') {
        at = strlen(uri);
        kv_str_join(uri + at, sizeof(uri) - at, "?", NULL);
        at = strlen(uri);
        kv_str_join_n(uri + at, sizeof(uri) - at, query, 512, NULL);
    }
    snprintf(ms, sizeof(ms), "%lld", (long long)duration);
    if (req->vault[0] != '\0')
        resource_id(req, rid, sizeof(rid));
    const char *api = srv_query_get(req, "api-version");
    /* the client's User-Agent, cut at a length kept for every record */
    char agent[257];
    const char *ua = srv_header(req, "User-Agent");
    kv_str_join_n(agent, sizeof(agent), ua != NULL ? ua : "", sizeof(agent) - 1, NULL);
    /* properties.id, as Key Vault names the object of the call: a key or one of its
     * versions, a deleted key, the vault for a management call on it; a call about no one
     * object (a list) has none */
    id[0] = '\0';
    int deleted = req->route != NULL && strncmp(req->route, "/deletedkeys/", 13) == 0;
    if (req->key_name[0] != '\0') {
        kv_str_join(id, sizeof(id), "https://", req->host, deleted ? "/deletedkeys/" : "/keys/",
                    req->key_name, req->version[0] ? "/" : "", req->version, NULL);
    } else if (!req->data_plane && req->vault[0] != '\0') {
        char dns[SRV_HOST_MAX];
        if (req->hsm)
            srv_hsm_dns(req, dns, sizeof(dns));
        else
            srv_vault_dns(req, dns, sizeof(dns));
        kv_str_join(id, sizeof(id), "https://", req->vault, ".", dns, "/", NULL);
    }

    /* Written with kv_json: this runs for every request, and a cJSON tree
     * would allocate every member. */
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_str(&j, "time", when);
    if (req->vault[0] != '\0')
        kv_json_str(&j, "resourceId", rid);
    kv_json_str(&j, "category", "AuditEvent");
    kv_json_str(&j, "operationName", req->operation);
    if (api != NULL)
        kv_json_str(&j, "operationVersion", api);
    /* Key Vault's "Success" means the call was answered: a refusal is one too; its status
     * is in resultSignature and properties.httpStatusCode */
    kv_json_str(&j, "resultType", status < 500 ? "Success" : "Failure");
    kv_json_str(&j, "resultSignature", reason(status));
    if (status >= 300 && req->error[0] != '\0')
        kv_json_str(&j, "resultDescription", req->error);
    kv_json_str(&j, "durationMs", ms); /* a string, as Key Vault sends it */
    kv_json_str(&j, "callerIpAddress", kv_ip_unmapped(req->ri->remote_addr));
    /* as in Key Vault: the id the client passed to find its calls again, else kvmock's */
    kv_json_str(&j, "correlationId",
                req->client_request_id[0] ? req->client_request_id : req->request_id);
    kv_json_open(&j, "identity", '{');
    kv_json_open(&j, "claim", '{');
    /* the token's oid, appid and tid in every record, as kvmock's interface names them;
     * a record of Resource Manager's call also names the object id by Entra's long claim
     * name, as Resource Manager's records do */
    kv_json_str(&j, "oid", req->who.oid);
    kv_json_str(&j, "appid", req->who.appid);
    kv_json_str(&j, "tid", req->who.tid);
    if (!req->data_plane)
        kv_json_str(&j, SRV_AUDIT_CLAIM_OBJECT_ID, req->who.oid);
    kv_json_close(&j, '}');
    kv_json_close(&j, '}');
    kv_json_open(&j, "properties", '{');
    if (id[0] != '\0')
        kv_json_str(&j, "id", id);
    kv_json_int(&j, "httpStatusCode", status);
    kv_json_str(&j, "requestUri", uri);
    /* whether the caller's access allowed the call, in every record as kvmock's interface
     * names it; a call to a vault of role assignments also says so as Key Vault does */
    kv_json_bool(&j, "isAccessPolicyMatch", req->policy_match);
    if (req->data_plane && req->vault_rbac)
        kv_json_bool(&j, "isRbacAuthorized", req->policy_match);
    kv_json_str(&j, "vault", req->vault);
    kv_json_str(&j, "requestId", req->request_id);
    if (agent[0] != '\0')
        kv_json_str(&j, "clientInfo", agent);
    kv_json_close(&j, '}');
    kv_json_close(&j, '}');
    return kv_json_take(&j, NULL);
}

static char *attached_record(void *arg, size_t *len)
{
    const struct srv_req *req = arg;
    char *text = record_text(req, success_status(req));
    *len = text ? strlen(text) : 0;
    return text;
}

void srv_audit_attach(struct srv_req *req)
{
    if (!changes_state(req))
        return;
    /* the records of calls answered before this one go first (the queue is
     * empty under a load of state changes alone) */
    srv_audit_flush(req->srv->audit);
    req->attach = (struct ks_attach){
        .table = KS_TABLE_AUDIT,
        .keep = req->srv->audit ? req->srv->audit->keep : 0,
        .build = attached_record,
        .arg = req,
    };
    ks_txn_attach(&req->attach);
}

void srv_audit(struct srv_req *req)
{
    ks_txn_attach(NULL); /* from here on, writes are not the request's state change */
    if (req->operation == NULL || req->audited)
        return;
    req->audited = 1;
    /* committed with the change itself, as the answer it gives now */
    if (req->attach.written && req->status == success_status(req))
        return;
    char *text = record_text(req, req->status);
    enum kv_status st = KV_ERR_NOMEM;
    if (text != NULL && req->srv->audit != NULL && !changed_state(req)) {
        st = enqueue(req->srv->audit, text);
    } else if (text != NULL) {
        /* committed now, in the keystore's next group commit, after the records
         * queued before it */
        srv_audit_flush(req->srv->audit);
        const void *val = text;
        size_t len = strlen(text);
        st = ks_record_append_many(req->srv->ks, KS_TABLE_AUDIT, &val, &len, 1,
                                   req->srv->audit ? req->srv->audit->keep : 0, NULL);
        free(text);
    }
    if (st != KV_OK)
        kv_log(KV_LOG_WARN, "request %s: audit record not written", req->request_id);
}

/* ---- reading ---------------------------------------------------------------------------- */

struct page_arg {
    cJSON *value;
    int max, count;
    unsigned char next[8];
    int more;
    unsigned long long last; /* the sequence number of the last record in the page */
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
    if (key_len == 8) {
        const unsigned char *k = key;
        a->last = 0;
        for (int i = 0; i < 8; i++)
            a->last = (a->last << 8) | k[i];
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
    srv_audit_flush(req->srv->audit); /* what was answered before is in the page */
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
    struct page_arg a = {doc ? cJSON_AddArrayToObject(doc, "value") : NULL, max, 0, {0}, 0, 0};
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
    /* where a reader that follows the log asks next, even on the last page: records are
     * numbered, and the oldest go when the log is full, so a count of records seen is not
     * a position (kvmock's own member; an empty page keeps the token it was asked with) */
    char resume[24];
    if (a.count > 0)
        snprintf(resume, sizeof(resume), "%llu", a.last + 1);
    else
        snprintf(resume, sizeof(resume), "%s", token != NULL ? token : "1");
    if (ok)
        ok = cJSON_AddStringToObject(doc, "resumeToken", resume) != NULL;
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
