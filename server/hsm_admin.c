/*
 * A Managed HSM's administration on its data plane (NAME.managedhsm.DOMAIN), beside its
 * keys (keys_api.c) and its access control (hsm_api.c):
 *
 *   GET   /settings, /settings/{name}     its settings; PATCH /settings/{name} sets one
 *   POST  /backup                         a full backup: 202 and its job
 *   PUT   /restore                        a full restore from a backup's folder
 *   PUT   /keys/{name}/restore            one key from a backup's folder
 *   GET   /backup/{job}/pending, /restore/{job}/pending   a job
 *   POST  /securitydomain/download        a security domain (keystore secdomain.c): 202
 *   GET   /securitydomain/upload        its transfer key; POST: upload a security domain
 *   GET   /securitydomain/{download|upload}/pending        the HSM's activation, an upload
 *
 * kvmock reaches no storage account. A full backup (the keys, and the HSM's local role
 * assignments and custom roles) is kept in kvmock's own store (table `backups`), sealed,
 * under the folder URL it answers: the storage URL given, then
 * "/mhsm-NAME-YYYYMMDDHHMMSSff" as Managed HSM names its folders. A restore names that
 * folder again, from any HSM of this data folder. The SAS token is checked as Managed HSM
 * checks it (it must have an expiry) and then dropped: it is never stored nor logged.
 * A job runs to its end before the 202 answers; the 202 shows it as Managed HSM's does, just
 * started ("InProgress"), and sends clients to its status URL, which answers how it ended from
 * its record (table `jobs`), also after a restart. Clients see a failed job there, as with
 * Managed HSM: an SDK takes a first answer that has ended as the operation's end, failed or
 * not. Retry-After is 1 second (Managed HSM's is 10): the job has ended already.
 *
 * kvmock's HSMs are active from the start: a security domain download gives the HSM's
 * security domain, encrypted to the customer's certificates, and changes nothing; both
 * status URLs say the HSM is active (the Azure CLI reads the upload's after a download).
 * An upload gives an HSM another's domain, as for a disaster recovery: the customer gets the
 * HSM's transfer key, wraps a downloaded domain for it (`az keyvault security-domain
 * restore-blob`), and uploads that; the HSM's later downloads carry the uploaded domain.
 */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_log.h"
#include "kv_str.h"
#include "srv.h"

#define SETTING_ARM    "AllowKeyManagementOperationsThroughARM"
#define STORAGE_MAX    400 /* a storage URL's length */
#define FOLDER_MAX     100 /* a folder's name */
#define JOB_ID_LEN     32
#define FOLDER_URL_MAX (STORAGE_MAX + 1 + FOLDER_MAX + 1)

static void h_settings(struct srv_req *req);
static void h_setting_get(struct srv_req *req);
static void h_setting_update(struct srv_req *req);
static void h_backup(struct srv_req *req);
static void h_restore(struct srv_req *req);
static void h_job(struct srv_req *req);
static void h_sd_download(struct srv_req *req);
static void h_sd_transfer_key(struct srv_req *req);
static void h_sd_upload(struct srv_req *req);
static void h_sd_download_status(struct srv_req *req);
static void h_sd_upload_status(struct srv_req *req);

enum { KEY_RESTORE = 0, ROUTE_COUNT = 13 };

static const struct srv_route routes[ROUTE_COUNT] = {
    [KEY_RESTORE] = {"SelectiveKeyRestoreOperation", "PUT", "/keys/{name}/restore",
                     POL_HSM_RESTORE_START, SRV_BODY_JSON, h_restore, 202},
    {"GetSettings", "GET", "/settings", POL_HSM_SETTINGS_READ, SRV_BODY_NONE, h_settings},
    {"GetSetting", "GET", "/settings/{name}", POL_HSM_SETTINGS_READ, SRV_BODY_NONE, h_setting_get},
    {"UpdateSetting", "PATCH", "/settings/{name}", POL_HSM_SETTINGS_WRITE, SRV_BODY_JSON,
     h_setting_update},
    {"FullBackup", "POST", "/backup", POL_HSM_BACKUP_START, SRV_BODY_JSON, h_backup, 202},
    {"FullBackupStatus", "GET", "/backup/{name}/pending", POL_HSM_BACKUP_STATUS, SRV_BODY_NONE,
     h_job},
    {"FullRestoreOperation", "PUT", "/restore", POL_HSM_RESTORE_START, SRV_BODY_JSON, h_restore,
     202},
    {"RestoreStatus", "GET", "/restore/{name}/pending", POL_HSM_RESTORE_STATUS, SRV_BODY_NONE,
     h_job},
    {"SecurityDomainDownload", "POST", "/securitydomain/download", POL_HSM_SD_DOWNLOAD,
     SRV_BODY_JSON, h_sd_download, 202},
    {"SecurityDomainDownloadPending", "GET", "/securitydomain/download/pending",
     POL_HSM_SD_DOWNLOAD_READ, SRV_BODY_NONE, h_sd_download_status},
    {"SecurityDomainUploadPending", "GET", "/securitydomain/upload/pending", POL_HSM_SD_UPLOAD_READ,
     SRV_BODY_NONE, h_sd_upload_status},
    {"SecurityDomainTransferKey", "GET", "/securitydomain/upload", POL_HSM_SD_TRANSFER_KEY_READ,
     SRV_BODY_NONE, h_sd_transfer_key},
    {"SecurityDomainUpload", "POST", "/securitydomain/upload", POL_HSM_SD_UPLOAD, SRV_BODY_JSON,
     h_sd_upload, 202},
};

enum srv_match srv_hsm_admin_match(struct srv_req *req, const struct srv_route **route,
                                   const char **key)
{
    const char *name = NULL, *version = NULL;
    enum srv_match m = srv_route_match(routes, ROUTE_COUNT, req->ri->request_method, req->seg,
                                       req->nseg, route, &name, &version);
    if (m != SRV_MATCH_OK)
        return m;
    *key = NULL;
    if (*route == &routes[KEY_RESTORE])
        *key = name; /* a key's name, checked and scoped as the keys API's */
    else
        kv_str_join(req->hsm_item, sizeof(req->hsm_item), name != NULL ? name : "", NULL);
    return SRV_MATCH_OK;
}

int srv_hsm_job_path(const struct srv_req *req)
{
    size_t n = req->nseg;
    if (n == 4 && req->seg[3][0] == '\0')
        n = 3;
    return n == 3 &&
           (strcasecmp(req->seg[0], "backup") == 0 || strcasecmp(req->seg[0], "restore") == 0) &&
           req->seg[1][0] != '\0' && strcasecmp(req->seg[2], "pending") == 0;
}

int srv_hsm_admin_route(const struct srv_route *route)
{
    for (size_t i = 0; i < ROUTE_COUNT; i++) {
        if (route == &routes[i])
            return i != KEY_RESTORE;
    }
    return 0;
}

/* ---- settings ---------------------------------------------------------------------- */

/* One setting, in the member order Managed HSM answers. */
static cJSON *setting_json(const struct ks_vault *v)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "name", SETTING_ARM) ||
        !cJSON_AddStringToObject(o, "type", "boolean") ||
        !cJSON_AddStringToObject(o, "value", v->arm_key_ops ? "true" : "false")) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static void h_settings(struct srv_req *req)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *list = doc != NULL ? cJSON_AddArrayToObject(doc, "settings") : NULL;
    if (list == NULL || !cJSON_AddItemToArray(list, setting_json(req->found))) {
        cJSON_Delete(doc);
        doc = NULL;
    }
    srv_send_json(req, 200, doc);
}

/* Whether the path names a setting there is; if not, the answer is sent. */
static int setting_known(struct srv_req *req)
{
    if (strcasecmp(req->hsm_item, SETTING_ARM) == 0)
        return 1;
    srv_send_errorf(req, KV_ERR_HSM_SETTING_NOT_FOUND,
                    "Setting '%.64s' was not found. This managed HSM has the setting " SETTING_ARM
                    ".",
                    req->hsm_item);
    return 0;
}

static void h_setting_get(struct srv_req *req)
{
    if (setting_known(req))
        srv_send_json(req, 200, setting_json(req->found));
}

static void h_setting_update(struct srv_req *req)
{
    if (!setting_known(req))
        return;
    const char *value = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req->body, "value"));
    int allow = value != NULL && strcasecmp(value, "true") == 0;
    if (value == NULL || (!allow && strcasecmp(value, "false") != 0)) {
        srv_send_error(req, KV_ERR_BAD_PARAM,
                       "The value of setting " SETTING_ARM " must be the string 'true' or "
                       "'false'.");
        return;
    }
    struct ks_vault v;
    enum kv_status st = ks_hsm_set_arm_key_ops(req->srv->ks, req->found->name, allow, &v);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    srv_send_json(req, 200, setting_json(&v));
}

/* ---- the storage a backup names ------------------------------------------------------ */

/* Whether a SAS token has an expiry field (se=), as Managed HSM requires. */
static int sas_has_expiry(const char *token)
{
    const char *p = token[0] == '?' ? token + 1 : token;
    while (*p != '\0') {
        if (strncmp(p, "se=", 3) == 0 && p[3] != '\0' && p[3] != '&')
            return 1;
        const char *amp = strchr(p, '&');
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return 0;
}

/* The storage container of @p o ({storageResourceUri, token | useManagedIdentity}), without
 * its trailing slashes. 0 when refused: the answer is sent. */
static int storage_parse(struct srv_req *req, const cJSON *o, char out[STORAGE_MAX + 1])
{
    const char *uri =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "storageResourceUri"));
    const cJSON *token = cJSON_GetObjectItemCaseSensitive(o, "token");
    int identity = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "useManagedIdentity"));
    size_t n = uri != NULL ? strlen(uri) : 0;
    while (n > 0 && uri[n - 1] == '/')
        n--;
    int scheme =
        n > 8 && (strncasecmp(uri, "https://", 8) == 0 || strncasecmp(uri, "http://", 7) == 0);
    for (size_t i = 0; scheme && i < n; i++)
        scheme = (unsigned char)uri[i] > 0x20 && (unsigned char)uri[i] < 0x7f;
    if (!scheme || n > STORAGE_MAX) {
        srv_send_error(req, KV_ERR_HSM_BAD_REQUEST,
                       "storageResourceUri must be the URL of a blob storage container, such as "
                       "https://ACCOUNT.blob.core.windows.net/CONTAINER.");
        return 0;
    }
    if (!identity && !cJSON_IsString(token)) {
        srv_send_error(req, KV_ERR_HSM_BAD_REQUEST,
                       "Either a SAS token (token) or useManagedIdentity: true is required.");
        return 0;
    }
    if (!identity && !sas_has_expiry(token->valuestring)) {
        srv_send_error(req, KV_ERR_HSM_BAD_REQUEST,
                       "The customer provided SAS token is malformed. The SAS token does not "
                       "contain the expiry field");
        return 0;
    }
    memcpy(out, uri, n);
    out[n] = '\0';
    return 1;
}

/* ---- jobs ---------------------------------------------------------------------------- */

/* A job's answer: {status, statusDetails, error, startTime, endTime, jobId[,
 * azureStorageBlobContainerUri]} in Managed HSM's order. @p folder_url NULL: a restore's.
 * @p started: as it was when it started (InProgress; no details, error, end nor folder). */
static cJSON *job_json(const char *id, enum kv_status st, const char *message, const char *details,
                       int64_t start, const char *folder_url, int started)
{
    cJSON *o = cJSON_CreateObject(), *err = NULL;
    const char *status = started ? "InProgress" : st == KV_OK ? "Succeeded" : "Failed";
    if (started) {
        details = NULL;
        st = KV_OK; /* no error yet */
    }
    if (o == NULL || !cJSON_AddStringToObject(o, "status", status) ||
        (details != NULL ? !cJSON_AddStringToObject(o, "statusDetails", details)
                         : !cJSON_AddNullToObject(o, "statusDetails")))
        goto fail;
    if (st == KV_OK) {
        if (!cJSON_AddNullToObject(o, "error"))
            goto fail;
    } else {
        err = cJSON_AddObjectToObject(o, "error");
        if (err == NULL || !cJSON_AddStringToObject(err, "code", kv_status_info(st)->code) ||
            !cJSON_AddStringToObject(err, "message",
                                     message != NULL ? message : kv_status_info(st)->message) ||
            !cJSON_AddNullToObject(err, "innererror"))
            goto fail;
    }
    if (!cJSON_AddNumberToObject(o, "startTime", (double)start) ||
        (started ? !cJSON_AddNullToObject(o, "endTime")
                 : !cJSON_AddNumberToObject(o, "endTime", (double)ks_now())) ||
        !cJSON_AddStringToObject(o, "jobId", id))
        goto fail;
    if (folder_url != NULL &&
        (st == KV_OK && !started
             ? !cJSON_AddStringToObject(o, "azureStorageBlobContainerUri", folder_url)
             : !cJSON_AddNullToObject(o, "azureStorageBlobContainerUri")))
        goto fail;
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

/* Keep job @p answer (the HSM's, of kind "backup" or "restore": how it ended) and send
 * @p started (the job as it started) with 202 and the job's status URL. Both are freed. */
static void job_answer(struct srv_req *req, const char *kind, const char *id, cJSON *answer,
                       cJSON *started)
{
    cJSON *rec = cJSON_CreateObject();
    char *text = NULL;
    enum kv_status st = KV_ERR_NOMEM;
    if (answer != NULL && rec != NULL && cJSON_AddStringToObject(rec, "hsm", req->found->name) &&
        cJSON_AddStringToObject(rec, "kind", kind) &&
        cJSON_AddItemReferenceToObject(rec, "answer", answer) &&
        (text = cJSON_PrintUnformatted(rec)) != NULL)
        st = ks_record_put(req->srv->ks, KS_TABLE_JOBS, id, JOB_ID_LEN, text, strlen(text));
    cJSON_free(text);
    cJSON_Delete(rec);
    cJSON_Delete(answer);
    if (st == KV_OK && started == NULL)
        st = KV_ERR_NOMEM;
    if (st != KV_OK) {
        cJSON_Delete(started);
        srv_send_error(req, st, NULL);
        return;
    }
    char base[SRV_HOST_MAX + 16], url[SRV_HOST_MAX + 64];
    srv_base_url(req, base, sizeof(base));
    kv_str_join(url, sizeof(url), base, "/", kind, "/", id, "/pending", NULL);
    req->async_operation = url;
    srv_send_json(req, 202, started);
    req->async_operation = NULL;
}

static void new_job_id(char out[JOB_ID_LEN + 1])
{
    unsigned char raw[JOB_ID_LEN / 2];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, JOB_ID_LEN + 1, raw, sizeof(raw));
}

/* The answer of job @p id of Managed HSM @p hsm and of @p kind, or NULL (none such). */
static enum kv_status job_find(struct srv_req *req, const char *id, const char *kind,
                               cJSON **answer)
{
    struct kv_buf rec = {0};
    *answer = NULL;
    enum kv_status st = strlen(id) == JOB_ID_LEN
                            ? ks_record_get(req->srv->ks, KS_TABLE_JOBS, id, JOB_ID_LEN, &rec)
                            : KV_ERR_KEY_NOT_FOUND;
    if (st == KV_ERR_KEY_NOT_FOUND)
        return KV_OK;
    cJSON *o = st == KV_OK ? cJSON_ParseWithLength((const char *)rec.data, rec.len) : NULL;
    kv_buf_free(&rec);
    if (st == KV_OK && o == NULL)
        st = KV_ERR_NOMEM;
    const char *hsm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "hsm"));
    const char *k = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, "kind"));
    if (hsm != NULL && k != NULL && strcmp(hsm, req->found->name) == 0 && strcmp(k, kind) == 0)
        *answer = cJSON_DetachItemFromObjectCaseSensitive(o, "answer");
    cJSON_Delete(o);
    return st;
}

/* GET /{backup|restore}/{job}/pending: a job of this HSM, of that kind. */
static void h_job(struct srv_req *req)
{
    const char *id = req->hsm_item;
    const char *kind =
        strcmp(req->route_def->operation, "FullBackupStatus") == 0 ? "backup" : "restore";
    cJSON *answer = NULL;
    enum kv_status st = job_find(req, id, kind, &answer);
    if (st != KV_OK)
        srv_send_error(req, st, NULL);
    else if (answer == NULL)
        srv_send_errorf(req, KV_ERR_HSM_JOB_NOT_FOUND, "No %s job '%.64s' was found.", kind, id);
    else
        srv_send_json(req, 200, answer);
}

/* ---- backup and restore -------------------------------------------------------------- */

/* Keep @p blob under a new folder of @p storage: "mhsm-NAME-YYYYMMDDHHMMSSff" (the next
 * hundredth of a second's when another backup took that one). */
static enum kv_status backup_keep(struct srv_req *req, const char *storage,
                                  const struct kv_buf *blob, char folder_url[FOLDER_URL_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    time_t now = (time_t)ks_now();
    struct tm tm;
    gmtime_r(&now, &tm);
    long cs = ts.tv_nsec / 10000000;
    enum kv_status st = KV_ERR_KEY_EXISTS;
    for (int tries = 0; st == KV_ERR_KEY_EXISTS && tries < 1000; tries++, cs++) {
        if (cs > 99) { /* past the second: the next folder names the next second's 00 */
            now++;
            gmtime_r(&now, &tm);
            cs = 0;
        }
        char stamp[96];
        snprintf(stamp, sizeof(stamp), "%04d%02d%02d%02d%02d%02d%02ld", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, cs);
        kv_str_join(folder_url, FOLDER_URL_MAX, storage, "/mhsm-", req->found->name, "-", stamp,
                    NULL);
        st = ks_record_add(req->srv->ks, KS_TABLE_BACKUPS, folder_url, strlen(folder_url),
                           blob->data, blob->len);
    }
    return st == KV_ERR_KEY_EXISTS ? KV_ERR_INTERNAL : st;
}

static void h_backup(struct srv_req *req)
{
    char storage[STORAGE_MAX + 1], folder_url[FOLDER_URL_MAX], id[JOB_ID_LEN + 1];
    if (!storage_parse(req, req->body, storage))
        return;
    int64_t start = ks_now();
    struct kv_buf blob = {0};
    size_t keys = 0;
    char *access = NULL; /* its local role assignments and custom roles, kept with its keys */
    enum kv_status st = pol_hsm_access_export(req->srv->pol, req->found->name, &access);
    if (st == KV_OK)
        st = ks_hsm_backup(req->srv->ks, req->found->name, access, &blob, &keys);
    cJSON_free(access);
    if (st == KV_OK)
        st = backup_keep(req, storage, &blob, folder_url);
    kv_buf_free(&blob);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "request %s: managed HSM %s: full backup of %zu key(s) to %s",
           req->request_id, req->found->name, keys, folder_url);
    new_job_id(id);
    job_answer(req, "backup", id, job_json(id, KV_OK, NULL, NULL, start, folder_url, 0),
               job_json(id, KV_OK, NULL, NULL, start, folder_url, 1));
}

/* A full restore's write: the keys, and the access control's changes @p ops with them. */
struct restore_write {
    struct srv_req *req;
    const struct kv_buf *blob;
    size_t *versions;
};

static enum kv_status restore_write_fn(const struct ks_record_op *ops, size_t n, void *arg)
{
    struct restore_write *w = arg;
    return ks_hsm_restore(w->req->srv->ks, w->req->found->name, w->blob->data, w->blob->len, NULL,
                          ops, n, w->versions);
}

/* PUT /restore {sasTokenParameters, folderToRestore} and PUT /keys/{name}/restore
 * {sasTokenParameters, folder}: restore the folder's backup, wholly or one key of it. */
static void h_restore(struct srv_req *req)
{
    int selective = req->route_def == &routes[KEY_RESTORE];
    char storage[STORAGE_MAX + 1], folder_url[FOLDER_URL_MAX], id[JOB_ID_LEN + 1];
    const cJSON *sas = cJSON_GetObjectItemCaseSensitive(req->body, "sasTokenParameters");
    const char *folder = cJSON_GetStringValue(
        cJSON_GetObjectItemCaseSensitive(req->body, selective ? "folder" : "folderToRestore"));
    if (!cJSON_IsObject(sas)) {
        srv_send_error(req, KV_ERR_HSM_BAD_REQUEST,
                       "sasTokenParameters (storageResourceUri, and token or "
                       "useManagedIdentity) is required.");
        return;
    }
    if (!storage_parse(req, sas, storage))
        return;
    if (folder == NULL || folder[0] == '\0' || strlen(folder) > FOLDER_MAX ||
        strchr(folder, '/') != NULL) {
        srv_send_errorf(req, KV_ERR_HSM_BAD_REQUEST,
                        "%s must name the backup's folder in the storage container.",
                        selective ? "folder" : "folderToRestore");
        return;
    }
    int64_t start = ks_now();
    kv_str_join(folder_url, sizeof(folder_url), storage, "/", folder, NULL);
    struct kv_buf blob = {0};
    enum kv_status st =
        ks_record_get(req->srv->ks, KS_TABLE_BACKUPS, folder_url, strlen(folder_url), &blob);
    if (st != KV_OK && st != KV_ERR_KEY_NOT_FOUND) {
        srv_send_error(req, st, NULL);
        return;
    }
    char message[FOLDER_URL_MAX + KS_NAME_MAX + 64], details[160];
    const char *why = NULL, *said = NULL;
    size_t versions = 0;
    if (st == KV_ERR_KEY_NOT_FOUND) {
        st = KV_ERR_HSM_BAD_REQUEST;
        snprintf(message, sizeof(message), "No backup was found in folder %s.", folder_url);
        why = message;
    } else if (selective) {
        st = ks_hsm_restore(req->srv->ks, req->found->name, blob.data, blob.len, req->key_name,
                            NULL, 0, &versions);
        if (st == KV_ERR_KEY_NOT_FOUND) {
            snprintf(message, sizeof(message), "Key %s is not in the backup in folder %s.",
                     req->key_name, folder_url);
            why = message;
        }
    } else { /* the keys and the access control the backup kept, in one transaction */
        char *access = NULL;
        struct restore_write w = {req, &blob, &versions};
        st = ks_hsm_backup_access(req->srv->ks, blob.data, blob.len, &access);
        if (st == KV_OK)
            st = pol_hsm_access_restore(req->srv->pol, req->found->name, access, restore_write_fn,
                                        &w);
        free(access);
    }
    kv_buf_free(&blob);
    if (st == KV_OK && selective) {
        snprintf(details, sizeof(details),
                 "Number of successful key versions restored: %zu, Number of key versions could "
                 "not overwrite: 0",
                 versions);
        said = details;
    }
    if (st == KV_ERR_NOMEM || st == KV_ERR_STORE || st == KV_ERR_STORE_FULL) {
        srv_send_error(req, st, NULL); /* kvmock's own failure, not the job's */
        return;
    }
    kv_log(KV_LOG_INFO, "request %s: managed HSM %s: %s restore from %s: %s (%zu key versions)",
           req->request_id, req->found->name, selective ? "selective key" : "full", folder_url,
           kv_status_info(st)->code, versions);
    new_job_id(id);
    job_answer(req, "restore", id, job_json(id, st, why, said, start, NULL, 0),
               job_json(id, st, why, said, start, NULL, 1));
}

/* ---- the security domain ------------------------------------------------------------- */

/* The answer to a security domain download or upload (@p op): 202 with @p answer (taken),
 * its status URL in Azure-AsyncOperation; or @p st's error, @p why for a bad parameter. */
static void sd_answer(struct srv_req *req, enum kv_status st, const char *why, cJSON *answer,
                      const char *op)
{
    if (st != KV_OK) {
        cJSON_Delete(answer);
        srv_send_error(req, st, st == KV_ERR_BAD_PARAM ? why : NULL);
        return;
    }
    kv_log(KV_LOG_INFO, "managed HSM '%s': security domain %s by %s", req->found->name, op,
           req->who.oid);
    char base[SRV_HOST_MAX + 16], url[SRV_HOST_MAX + 64];
    srv_base_url(req, base, sizeof(base));
    kv_str_join(url, sizeof(url), base, "/securitydomain/", op, "/pending", NULL);
    req->async_operation = url;
    srv_send_json(req, 202, answer);
    req->async_operation = NULL;
}

/* POST /securitydomain/download {"certificates": [JWK with x5c, ...], "required": M}: 202
 * and {"value": the security domain's JSON text}. */
static void h_sd_download(struct srv_req *req)
{
    const cJSON *certs = cJSON_GetObjectItemCaseSensitive(req->body, "certificates"), *c;
    const cJSON *required = cJSON_GetObjectItemCaseSensitive(req->body, "required");
    int n = cJSON_GetArraySize(certs), quorum = 2;
    if (!cJSON_IsArray(certs) || n < 3 || n > 10) {
        srv_send_error(req, KV_ERR_BAD_PARAM,
                       "The security domain download needs 3 to 10 certificates, each a JSON web "
                       "key with its X.509 certificate in x5c.");
        return;
    }
    if (required != NULL && !cJSON_IsNull(required)) {
        if (!cJSON_IsNumber(required) || required->valuedouble != (double)required->valueint) {
            srv_send_error(req, KV_ERR_BAD_PARAM, "'required' must be an integer.");
            return;
        }
        quorum = required->valueint;
    }
    struct kv_buf der[10] = {{0}};
    size_t i = 0;
    enum kv_status st = KV_OK;
    cJSON_ArrayForEach(c, certs)
    {
        const char *b64 =
            cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(c, "x5c"), 0));
        size_t len = b64 != NULL ? strlen(b64) : 0, got = 0;
        if (st == KV_OK && (b64 == NULL || len == 0))
            st = KV_ERR_BAD_PARAM;
        if (st == KV_OK && kv_buf_alloc(len / 4 * 3 + 3, &der[i]) != KV_OK)
            st = KV_ERR_NOMEM;
        if (st == KV_OK && sodium_base642bin(der[i].data, len / 4 * 3 + 3, b64, len, NULL, &got,
                                             NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
            st = KV_ERR_BAD_PARAM;
        if (st == KV_OK)
            der[i].len = got;
        i++;
    }
    char *sd = NULL;
    const char *why = st == KV_ERR_BAD_PARAM ? "Each certificate's x5c must hold its X.509 "
                                               "certificate, in base64."
                                             : NULL;
    if (st == KV_OK)
        st = ks_hsm_security_domain(req->srv->ks, req->found->name, der, (size_t)n, quorum, &sd,
                                    &why);
    for (size_t k = 0; k < i; k++)
        kv_buf_free(&der[k]);
    cJSON *answer = st == KV_OK ? cJSON_CreateObject() : NULL;
    if (st == KV_OK && (answer == NULL || !cJSON_AddStringToObject(answer, "value", sd)))
        st = KV_ERR_NOMEM;
    cJSON_free(sd);
    sd_answer(req, st, why, answer, "download");
}

/* A security domain operation's status: it ended, with @p details. */
static void sd_status(struct srv_req *req, const char *details)
{
    cJSON *o = cJSON_CreateObject();
    if (o == NULL || !cJSON_AddStringToObject(o, "status", "Success") ||
        !cJSON_AddStringToObject(o, "status_details", details)) {
        cJSON_Delete(o);
        o = NULL;
    }
    srv_send_json(req, 200, o);
}

#define SD_ACTIVE "The managed HSM is active: its security domain is in place."

/* GET /securitydomain/download/pending: the HSM is active. */
static void h_sd_download_status(struct srv_req *req)
{
    sd_status(req, SD_ACTIVE);
}

/* GET /securitydomain/upload: the HSM's transfer key, {"key_format": "jwk", "transfer_key":
 * the JSON web key's text}: a string, as Managed HSM answers it and the Azure CLI reads it. */
static void h_sd_transfer_key(struct srv_req *req)
{
    char *jwk = NULL;
    enum kv_status st = ks_hsm_transfer_key(req->srv->ks, req->found->name, &jwk);
    cJSON *o = st == KV_OK ? cJSON_CreateObject() : NULL;
    if (st == KV_OK && (o == NULL || !cJSON_AddStringToObject(o, "key_format", "jwk") ||
                        !cJSON_AddStringToObject(o, "transfer_key", jwk)))
        st = KV_ERR_NOMEM;
    cJSON_free(jwk);
    if (st != KV_OK) {
        cJSON_Delete(o);
        srv_send_error(req, st, NULL);
        return;
    }
    srv_send_json(req, 200, o);
}

/* POST /securitydomain/upload {"value": a restore blob's JSON text}: the HSM takes the
 * domain (keystore secdomain.c). 202, the upload just started as Managed HSM shows it; it has
 * ended by then, and its status URL says so. */
static void h_sd_upload(struct srv_req *req)
{
    const char *blob = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(req->body, "value"));
    const char *why = NULL;
    enum kv_status st = ks_hsm_security_domain_upload(req->srv->ks, req->found->name, blob,
                                                      blob != NULL ? strlen(blob) : 0, &why);
    cJSON *o = st == KV_OK ? cJSON_CreateObject() : NULL;
    if (st == KV_OK &&
        (o == NULL || !cJSON_AddStringToObject(o, "status", "InProgress") ||
         !cJSON_AddStringToObject(o, "status_details", "The security domain upload has started.")))
        st = KV_ERR_NOMEM;
    sd_answer(req, st, why, o, "upload");
}

/* GET /securitydomain/upload/pending: an upload has ended, or the HSM is active. */
static void h_sd_upload_status(struct srv_req *req)
{
    int uploaded = 0;
    enum kv_status st = ks_hsm_security_domain_uploaded(req->srv->ks, req->found->name, &uploaded);
    if (st != KV_OK) {
        srv_send_error(req, st, NULL);
        return;
    }
    sd_status(req,
              uploaded ? "The security domain was uploaded: the managed HSM holds it." : SD_ACTIVE);
}
