/*
 * The audit writer (server/audit.c): records queued by many threads at once
 * are all committed, each thread's in the order it queued them, whether the
 * writer takes them on its delay, when a batch fills up, on a flush or at stop;
 * the room a burst took is given back after it; and with a full queue the
 * threads wait for the writer instead of the queue growing. A record has Key
 * Vault's fields in Key Vault's forms.
 */
#include <civetweb.h>
#include <cjson/cJSON.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "srv.h"

#define DIR_TEMPLATE "/tmp/kvmock-audit-XXXXXX" /* mkdtemp() fills in the X's */
#define PRODUCERS 4
#define PER_PRODUCER 6000 /* 24000 in all: the writer's queue passes a batch's 4096 records */
#define QUEUE_FIRST (64 << 10)  /* what audit.c allocates for an empty queue */
#define SMALL_QUEUE (256 << 10) /* about 700 records, where a batch is 4096 */
#define SMALL_BURST 3000

struct producer {
    const struct srv *srv;
    int id;
    int first, count;
};

static void *produce(void *arg)
{
    const struct producer *p = arg;
    struct mg_request_info ri = {.request_method = "GET", .local_uri_raw = "/keys/audited"};
    snprintf(ri.remote_addr, sizeof(ri.remote_addr), "127.0.0.%d", p->id);
    for (int i = p->first; i < p->first + p->count; i++) {
        struct srv_req req = {.ri = &ri, .srv = p->srv, .is_https = 1, .status = 200,
                              .operation = "KeyGet"};
        snprintf(req.request_id, sizeof(req.request_id), "%d-%06d", p->id, i);
        snprintf(req.host, sizeof(req.host), "audit.vault.azure.net");
        snprintf(req.vault, sizeof(req.vault), "audit");
        snprintf(req.key_name, sizeof(req.key_name), "audited");
        srv_audit(&req);
    }
    return NULL;
}

/* What the table holds: per producer, how many records and whether in order. */
struct tally {
    int count[PRODUCERS + 1];
    int next[PRODUCERS + 1]; /* the number the producer's next record must carry */
    int out_of_order, malformed;
};

static enum kv_status tally_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                               void *arg)
{
    (void)key;
    (void)key_len;
    struct tally *t = arg;
    cJSON *o = cJSON_ParseWithLength(val, val_len);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "correlationId");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "operationName");
    int producer = -1, seq = -1;
    if (!cJSON_IsString(id) || sscanf(id->valuestring, "%d-%d", &producer, &seq) != 2 ||
        producer < 1 || producer > PRODUCERS || !cJSON_IsString(op) ||
        strcmp(op->valuestring, "KeyGet") != 0) {
        t->malformed++;
    } else {
        t->out_of_order += seq != t->next[producer];
        t->next[producer] = seq + 1;
        t->count[producer]++;
    }
    cJSON_Delete(o);
    return KV_OK;
}

static void tally(struct ks_env *ks, struct tally *t)
{
    memset(t, 0, sizeof(*t));
    CHECK_ST(ks_record_scan(ks, KS_TABLE_AUDIT, NULL, 0, NULL, 0, tally_fn, t), KV_OK);
}

/* The table's last record (malloc()ed), or NULL. */
static enum kv_status one_fn(const void *key, size_t key_len, const void *val, size_t val_len,
                             void *arg)
{
    (void)key;
    (void)key_len;
    cJSON **out = arg;
    cJSON_Delete(*out);
    *out = cJSON_ParseWithLength(val, val_len);
    return KV_OK;
}

static const char *str_at(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static int str_is(const cJSON *o, const char *name, const char *want)
{
    const char *v = str_at(o, name);
    if (v == NULL || strcmp(v, want) != 0) {
        fprintf(stderr, "%s: %s, want %s\n", name, v ? v : "(none)", want);
        return 0;
    }
    return 1;
}

/* One record as Key Vault writes it (learn.microsoft.com/azure/key-vault/general/logging,
 * and records of real vaults): a refused read of a missing key. */
static void record_fields(const char *dir)
{
    struct ks_env *ks = NULL;
    char sub[4200];
    snprintf(sub, sizeof(sub), "%s/fields", dir);
    CHECK(mkdir(sub, 0700) == 0);
    struct ks_open_opts o = {.data_dir = sub};
    CHECK_ST(ks_open(&o, &ks), KV_OK);
    if (ks == NULL)
        return;
    struct srv srv = {.ks = ks};
    struct mg_request_info ri = {.request_method = "GET",
                                 .local_uri_raw = "/keys/missing",
                                 .query_string = "api-version=7.4&x=%2F"};
    snprintf(ri.remote_addr, sizeof(ri.remote_addr), "127.0.0.9");
    char name[] = "api-version", value[] = "7.4";
    struct srv_req req = {
        .ri = &ri, .srv = &srv, .is_https = 1, .status = 404, .operation = "KeyGet"};
    req.query[0] = (struct srv_query){name, value};
    req.nquery = 1;
    snprintf(req.request_id, sizeof(req.request_id), "r-1");
    snprintf(req.host, sizeof(req.host), "audit.vault.azure.net");
    snprintf(req.vault, sizeof(req.vault), "audit");
    snprintf(req.key_name, sizeof(req.key_name), "missing");
    snprintf(req.who.oid, sizeof(req.who.oid), "0b1d0000-0000-4000-8000-000000000001");
    snprintf(req.who.appid, sizeof(req.who.appid), "a9900000-0000-4000-8000-000000000001");
    snprintf(req.who.tid, sizeof(req.who.tid), "71d00000-0000-4000-8000-000000000001");
    req.data_plane = 1;
    req.policy_match = 1;
    srv_audit(&req);
    cJSON *rec = NULL;
    CHECK_ST(ks_record_scan(ks, KS_TABLE_AUDIT, NULL, 0, NULL, 0, one_fn, &rec), KV_OK);
    CHECK(rec != NULL);
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(rec, "properties");
    /* a data-plane record names the caller by the token's oid, appid and tid, as kvmock's
     * interface says */
    const cJSON *claim = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(rec, "identity"), "claim");
    CHECK(str_is(claim, "oid", "0b1d0000-0000-4000-8000-000000000001"));
    CHECK(str_is(claim, "appid", "a9900000-0000-4000-8000-000000000001"));
    CHECK(str_is(claim, "tid", "71d00000-0000-4000-8000-000000000001"));
    CHECK(cJSON_GetArraySize(claim) == 3);
    /* a vault of access policies: whether they allowed the call, and nothing of roles */
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(props, "isAccessPolicyMatch")));
    CHECK(cJSON_GetObjectItemCaseSensitive(props, "isRbacAuthorized") == NULL);
    CHECK(str_is(rec, "resourceId",
                 "/SUBSCRIPTIONS/00000000-0000-0000-0000-000000000000/"
                 "RESOURCEGROUPS/KVMOCK/PROVIDERS/MICROSOFT.KEYVAULT/"
                 "VAULTS/AUDIT"));
    CHECK(str_is(rec, "operationVersion", "7.4"));
    CHECK(str_is(rec, "resultType", "Success"));
    CHECK(str_is(rec, "resultSignature", "Not Found"));
    CHECK(str_at(rec, "durationMs") != NULL); /* a string, as in the storage account */
    CHECK(str_is(props, "requestUri",
                 "https://audit.vault.azure.net/keys/missing?api-version=7.4&x=%2F"));
    cJSON_Delete(rec);

    /* a vault of role assignments: isAccessPolicyMatch as the interface names it, and
     * isRbacAuthorized as Key Vault writes it, both saying whether the call was allowed */
    req.vault_rbac = 1;
    req.policy_match = 0;
    req.audited = 0;
    srv_audit(&req);
    rec = NULL;
    CHECK_ST(ks_record_scan(ks, KS_TABLE_AUDIT, NULL, 0, NULL, 0, one_fn, &rec), KV_OK);
    CHECK(rec != NULL);
    props = cJSON_GetObjectItemCaseSensitive(rec, "properties");
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(props, "isAccessPolicyMatch")));
    CHECK(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(props, "isRbacAuthorized")));
    cJSON_Delete(rec);

    /* a management call's record also names the object id by Entra's long claim name, as
     * Resource Manager's records do, and says nothing of roles */
    req.data_plane = 0;
    req.policy_match = 1;
    req.operation = "VaultGet";
    req.audited = 0;
    srv_audit(&req);
    rec = NULL;
    CHECK_ST(ks_record_scan(ks, KS_TABLE_AUDIT, NULL, 0, NULL, 0, one_fn, &rec), KV_OK);
    CHECK(rec != NULL);
    claim = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(rec, "identity"),
                                             "claim");
    CHECK(str_is(claim, "oid", "0b1d0000-0000-4000-8000-000000000001"));
    CHECK(str_is(claim, SRV_AUDIT_CLAIM_OBJECT_ID, "0b1d0000-0000-4000-8000-000000000001"));
    CHECK(str_is(claim, "appid", "a9900000-0000-4000-8000-000000000001"));
    CHECK(str_is(claim, "tid", "71d00000-0000-4000-8000-000000000001"));
    CHECK(cJSON_GetArraySize(claim) == 4);
    props = cJSON_GetObjectItemCaseSensitive(rec, "properties");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(props, "isAccessPolicyMatch")));
    CHECK(cJSON_GetObjectItemCaseSensitive(props, "isRbacAuthorized") == NULL);
    cJSON_Delete(rec);
    ks_close(ks);
}

static void run_producers(const struct srv *srv, int first, int count)
{
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){srv, i + 1, first, count};
        CHECK(pthread_create(&t[i], NULL, produce, &p[i]) == 0);
    }
    for (int i = 0; i < PRODUCERS; i++)
        pthread_join(t[i], NULL);
}

int main(void)
{
    CHECK(sodium_init() >= 0);
    char dir[] = DIR_TEMPLATE;
    CHECK(mkdtemp(dir) != NULL);
    struct ks_env *ks = NULL;
    struct ks_open_opts o = {.data_dir = dir};
    CHECK_ST(ks_open(&o, &ks), KV_OK);
    struct srv srv = {.ks = ks};
    CHECK_ST(srv_audit_start(ks, 0, 0, &srv.audit), KV_OK);
    if (ks == NULL || srv.audit == NULL)
        return 1;

    /* a burst from four threads: everything is there after a flush, in order */
    run_producers(&srv, 0, PER_PRODUCER);
    srv_audit_flush(srv.audit);
    struct tally t;
    tally(ks, &t);
    CHECK(t.malformed == 0 && t.out_of_order == 0);
    for (int i = 1; i <= PRODUCERS; i++)
        CHECK(t.count[i] == PER_PRODUCER);

    /* a few more, left to the writer's delay */
    run_producers(&srv, PER_PRODUCER, 10);
    for (int waited = 0; waited < 500; waited++) {
        tally(ks, &t);
        if (t.count[1] + t.count[2] + t.count[3] + t.count[4] == PRODUCERS * (PER_PRODUCER + 10))
            break;
        usleep(10 * 1000);
    }
    for (int i = 1; i <= PRODUCERS; i++)
        CHECK(t.count[i] == PER_PRODUCER + 10);

    /* the burst's queues (megabytes) were given back: after one more light
     * round, the writer holds a first allocation for each of its two queues
     * at most */
    run_producers(&srv, PER_PRODUCER + 10, 10);
    srv_audit_flush(srv.audit);
    struct srv_audit_stats stats;
    srv_audit_stats(srv.audit, &stats);
    CHECK(stats.queued == 0 && stats.waits == 0);
    CHECK(stats.bytes <= 2 * QUEUE_FIRST);

    /* and what is queued when the writer stops is committed by the stop */
    run_producers(&srv, PER_PRODUCER + 20, 500);
    srv_audit_stop(srv.audit);
    tally(ks, &t);
    CHECK(t.malformed == 0 && t.out_of_order == 0);
    for (int i = 1; i <= PRODUCERS; i++)
        CHECK(t.count[i] == PER_PRODUCER + 520);

    /* a full queue: the threads wait for the writer (a batch would be 4096
     * records, six times what this queue holds), and nothing is lost */
    CHECK_ST(srv_audit_start(ks, 0, SMALL_QUEUE, &srv.audit), KV_OK);
    if (srv.audit == NULL)
        return 1;
    run_producers(&srv, PER_PRODUCER + 520, SMALL_BURST);
    srv_audit_stats(srv.audit, &stats);
    CHECK(stats.waits > 0);
    CHECK(stats.bytes <= 3 * SMALL_QUEUE); /* the queue, its spare and the one being written */
    srv_audit_flush(srv.audit);
    srv_audit_stats(srv.audit, &stats);
    CHECK(stats.queued == 0);
    /* with nothing more coming, the writer goes idle and gives the burst's room
     * back: at most a first allocation for each of its two queues stays */
    for (int waited = 0; waited < 500 && stats.bytes > 2 * QUEUE_FIRST; waited++) {
        usleep(10 * 1000);
        srv_audit_stats(srv.audit, &stats);
    }
    CHECK(stats.bytes <= 2 * QUEUE_FIRST);
    tally(ks, &t);
    CHECK(t.malformed == 0 && t.out_of_order == 0);
    for (int i = 1; i <= PRODUCERS; i++)
        CHECK(t.count[i] == PER_PRODUCER + 520 + SMALL_BURST);
    srv_audit_stop(srv.audit);

    ks_close(ks);
    record_fields(dir);
    check_remove_dir(dir);
    CHECK_DONE();
}
