/*
 * Prometheus metrics on the HTTP port (GET /metrics): requests by operation
 * and status, a latency histogram, keys per vault, LMDB map usage.
 * Counters are lock-free atomics indexed by small fixed tables.
 */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

/* Operations counted one by one; anything else is "other". */
static const char *const operations[] = {
    "KeyCreate",
    "KeyImport",
    "KeyGet",
    "KeyList",
    "KeyListVersions",
    "KeyUpdate",
    "KeyDelete",
    "KeyGetDeleted",
    "KeyListDeleted",
    "KeyRecover",
    "KeyPurge",
    "KeyBackup",
    "KeyRestore",
    "KeyRotate",
    "KeyRotationPolicyGet",
    "KeyRotationPolicySet",
    "KeyEncrypt",
    "KeyDecrypt",
    "KeySign",
    "KeyVerify",
    "KeyWrap",
    "KeyUnwrap",
    "KeyRelease",
    "KeyGetAttestation",
    "GetRandomBytes",
    "Authentication",
    "VaultPut",
    "VaultPatch",
    "VaultGet",
    "VaultDelete",
    "VaultList",
    "VaultGetDeleted",
    "VaultListDeleted",
    "VaultRecover",
    "VaultPurge",
    "VaultAccessPolicyUpdate",
    "RoleAssignmentPut",
    "RoleAssignmentGet",
    "RoleAssignmentDelete",
    "RoleAssignmentList",
    "RoleDefinitionGet",
    "RoleDefinitionList",
    "RoleDefinitionPut",
    "RoleDefinitionDelete",
    "RoleAssignmentCreate",
    "RoleDefinitionCreate",
    "ResourceGroupPut",
    "ResourceGroupGet",
    "ResourceGroupDelete",
    "ResourceGroupList",
    "VaultKeyPut",
    "VaultKeyGet",
    "VaultKeyList",
    "VaultCheckName",
    "ResourceList",
    "ManagedHsmList",
    "ManagedHsmGet",
    "ManagedHsmWrite",
    "ManagedHsmKeyPut",
    "ManagedHsmKeyGet",
    "ManagedHsmKeyList",
    "FullBackup",
    "FullBackupStatus",
    "FullRestoreOperation",
    "SelectiveKeyRestoreOperation",
    "RestoreStatus",
    "GetSettings",
    "GetSetting",
    "UpdateSetting",
    "SecurityDomainDownload",
    "SecurityDomainDownloadPending",
    "SecurityDomainTransferKey",
    "SecurityDomainUpload",
    "SecurityDomainUploadPending",
    "SubscriptionList",
    "SubscriptionGet",
    "TenantList",
    "other",
};
#define N_OPS (sizeof(operations) / sizeof(operations[0]))

static const int statuses[] = {200, 201, 202, 204, 400, 401, 403, 404, 405, 409, 413, 500, 507, 0};
#define N_STATUS (sizeof(statuses) / sizeof(statuses[0])) /* the last is "other" */

/* upper bounds in microseconds: most answers take well under a millisecond */
static const int64_t buckets_us[] = {100,   250,   500,    1000,   2500,   5000,    10000,
                                     25000, 50000, 100000, 250000, 500000, 1000000, 2500000};
#define N_BUCKETS (sizeof(buckets_us) / sizeof(buckets_us[0]))

static atomic_ullong requests[N_OPS][N_STATUS];
static atomic_ullong latency[N_BUCKETS + 1]; /* the last is +Inf */
static atomic_ullong latency_sum_us, latency_count;

/* The operation's row. A worker thread mostly serves the same operation again
 * (a client's loop), so the last answer is tried first, confirmed by one
 * comparison, before the search of the table. */
static size_t op_index(const char *op)
{
    static _Thread_local size_t last = N_OPS - 1;
    if (op == NULL)
        return N_OPS - 1;
    if (last + 1 < N_OPS && strcmp(op, operations[last]) == 0)
        return last;
    for (size_t i = 0; i + 1 < N_OPS; i++) {
        if (strcmp(op, operations[i]) == 0)
            return last = i;
    }
    return N_OPS - 1;
}

void srv_metrics_record(const struct srv_req *req, int64_t latency_us)
{
    size_t s = N_STATUS - 1;
    for (size_t i = 0; i + 1 < N_STATUS; i++) {
        if (statuses[i] == req->status)
            s = i;
    }
    atomic_fetch_add(&requests[op_index(req->operation)][s], 1);
    size_t b = N_BUCKETS;
    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (latency_us <= buckets_us[i]) {
            b = i;
            break;
        }
    }
    atomic_fetch_add(&latency[b], 1);
    atomic_fetch_add(&latency_sum_us, (unsigned long long)(latency_us > 0 ? latency_us : 0));
    atomic_fetch_add(&latency_count, 1);
}

unsigned long long srv_metrics_answered(void)
{
    return atomic_load(&latency_count);
}

struct text {
    char *buf;
    size_t len, cap;
    int failed;
};

static void add(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void add(struct text *t, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !t->failed; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(t->buf ? t->buf + t->len : NULL, t->buf ? t->cap - t->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = 1;
            return;
        }
        if (t->buf != NULL && t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t ncap = (t->cap + (size_t)n + 1) * 2;
        char *nb = realloc(t->buf, ncap);
        if (nb == NULL) {
            t->failed = 1;
            return;
        }
        t->buf = nb;
        t->cap = ncap;
    }
}

void srv_metrics_page(struct srv_req *req)
{
    struct text t = {0};
    add(&t, "# HELP kvmock_requests_total Requests by operation and HTTP status.\n"
            "# TYPE kvmock_requests_total counter\n");
    for (size_t o = 0; o < N_OPS; o++) {
        for (size_t s = 0; s < N_STATUS; s++) {
            unsigned long long n = atomic_load(&requests[o][s]);
            if (n == 0)
                continue;
            char code[8];
            snprintf(code, sizeof(code), "%d", statuses[s]);
            add(&t, "kvmock_requests_total{operation=\"%s\",status=\"%s\"} %llu\n", operations[o],
                statuses[s] ? code : "other", n);
        }
    }
    add(&t, "# HELP kvmock_request_duration_seconds Request latency.\n"
            "# TYPE kvmock_request_duration_seconds histogram\n");
    unsigned long long cumulative = 0;
    for (size_t b = 0; b <= N_BUCKETS; b++) {
        cumulative += atomic_load(&latency[b]);
        if (b < N_BUCKETS)
            add(&t, "kvmock_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                (double)buckets_us[b] / 1e6, cumulative);
        else
            add(&t, "kvmock_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cumulative);
    }
    add(&t,
        "kvmock_request_duration_seconds_sum %.6f\nkvmock_request_duration_seconds_count %llu\n",
        (double)atomic_load(&latency_sum_us) / 1e6, atomic_load(&latency_count));

    add(&t, "# HELP kvmock_keys Keys per vault and state.\n# TYPE kvmock_keys gauge\n");
    /* every vault, a page of names at a time */
    enum { PAGE = 256 };
    char(*names)[KS_VAULT_NAME_MAX + 1] = calloc(PAGE, sizeof(*names));
    size_t n = names ? ks_vault_list_from(req->srv->ks, NULL, names, PAGE) : 0;
    while (n > 0) {
        size_t got = n < PAGE ? n : PAGE;
        for (size_t i = 0; i < got; i++) {
            size_t live = 0, deleted = 0;
            if (ks_vault_key_count(req->srv->ks, names[i], &live, &deleted) != KV_OK)
                continue;
            add(&t, "kvmock_keys{vault=\"%s\",state=\"live\"} %zu\n", names[i], live);
            add(&t, "kvmock_keys{vault=\"%s\",state=\"deleted\"} %zu\n", names[i], deleted);
        }
        char after[KS_VAULT_NAME_MAX + 1];
        memcpy(after, names[PAGE - 1], sizeof(after));
        n = n > PAGE ? ks_vault_list_from(req->srv->ks, after, names, PAGE) : 0;
    }
    free(names);
    size_t used = 0, size = 0;
    ks_map_usage(req->srv->ks, &used, &size);
    add(&t, "# HELP kvmock_lmdb_map_used_bytes Bytes of the LMDB map in use.\n"
            "# TYPE kvmock_lmdb_map_used_bytes gauge\nkvmock_lmdb_map_used_bytes %zu\n"
            "# HELP kvmock_lmdb_map_size_bytes Current LMDB map size (it grows when full).\n"
            "# TYPE kvmock_lmdb_map_size_bytes gauge\nkvmock_lmdb_map_size_bytes %zu\n",
        used, size);
    unsigned long long full = 0, other = 0;
    ks_commit_failures(req->srv->ks, &full, &other);
    add(&t,
        "# HELP kvmock_store_commit_failures_total Store commits (each of one or more writes) "
        "that failed: the data folder could not grow (full), or another cause.\n"
        "# TYPE kvmock_store_commit_failures_total counter\n"
        "kvmock_store_commit_failures_total{reason=\"full\"} %llu\n"
        "kvmock_store_commit_failures_total{reason=\"other\"} %llu\n",
        full, other);
    struct srv_audit_stats audit;
    srv_audit_stats(req->srv->audit, &audit);
    add(&t, "# HELP kvmock_audit_queue_records Audit records queued and not yet committed.\n"
            "# TYPE kvmock_audit_queue_records gauge\nkvmock_audit_queue_records %llu\n"
            "# HELP kvmock_audit_queue_bytes Memory held by the audit writer's queues.\n"
            "# TYPE kvmock_audit_queue_bytes gauge\nkvmock_audit_queue_bytes %zu\n"
            "# HELP kvmock_audit_queue_waits_total Requests that waited for room in the audit "
            "queue.\n"
            "# TYPE kvmock_audit_queue_waits_total counter\nkvmock_audit_queue_waits_total %llu\n",
        (unsigned long long)audit.queued, audit.bytes, (unsigned long long)audit.waits);
    if (t.failed) {
        free(t.buf);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    srv_send_raw(req, 200, "text/plain; version=0.0.4; charset=utf-8", t.buf, t.len);
    free(t.buf);
}
