/* The keys data plane: JSON in, keystore call, JSON out. */
#include <ctype.h>
#include <math.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "kv_str.h"
#include "srv.h"
#include "tls.h"

#define TAGS_MAX 15
#define TAG_NAME_MAX  256 /* Key Vault's limits on a key's tags */
#define TAG_VALUE_MAX 256

/* ---- errors that name the key --------------------------------------------------- */

/* The 409 of a create, an import or a restore whose name a soft-deleted key holds. */
static void send_deleted_recoverable(struct srv_req *req, const char *name)
{
    srv_send_errorf(req, KV_ERR_KEY_DELETED_RECOVERABLE,
                    "Key %s is currently in a deleted but recoverable state, and its name "
                    "cannot be reused; in this state, the key can only be recovered or purged.",
                    name);
}

static void send_key_error(struct srv_req *req, enum kv_status st, const char *op)
{
    char id[KS_NAME_MAX + KS_VERSION_LEN + 2];
    if (req->version[0] != '\0')
        snprintf(id, sizeof(id), "%s/%s", req->key_name, req->version);
    else
        snprintf(id, sizeof(id), "%s", req->key_name);
    switch (st) {
    case KV_ERR_KEY_NOT_FOUND:
        srv_send_errorf(req, st,
                        "A key with (name/id) %s was not found in this key vault. If you "
                        "recently deleted this key you may be able to recover it using the "
                        "correct recovery command. For help resolving this issue, please see "
                        "https://go.microsoft.com/fwlink/?linkid=2125182",
                        id);
        break;
    case KV_ERR_DELETED_KEY_NOT_FOUND:
        srv_send_errorf(req, st, "Deleted Key not found: %s", req->key_name);
        break;
    case KV_ERR_VAULT_NOT_FOUND:
        srv_send_errorf(req, st, "Vault not found: %s", req->vault);
        break;
    case KV_ERR_KEY_OP_FORBIDDEN:
        srv_send_errorf(req, st, "Operation %s is not permitted on this key.", op ? op : "");
        break;
    case KV_ERR_KEY_DISABLED:
        srv_send_errorf(req, st, "Operation %s is not allowed on a disabled key.", op ? op : "");
        break;
    case KV_ERR_KEY_DELETED_RECOVERABLE:
        send_deleted_recoverable(req, req->key_name);
        break;
    case KV_ERR_PURGE_PROTECTED:
        /* Key Vault names the vault and its region on a second line */
        srv_send_errorf(req, st, "%s\r\nVault: %s;location=%s", kv_status_info(st)->message,
                        req->vault, req->region);
        break;
    default:
        srv_send_error(req, st, NULL);
    }
}

/* ---- JSON field readers (a wrong type is a BadParameter naming the field) ------------- */

struct field_error {
    char message[160];
};

static enum kv_status bad_field(struct field_error *fe, const char *name, const char *why)
{
    snprintf(fe->message, sizeof(fe->message), "The parameter '%s' %s.", name, why);
    return KV_ERR_BAD_PARAM;
}

/* An optional integer field. */
static enum kv_status opt_int(const cJSON *o, const char *name, int64_t lo, int64_t hi,
                              int64_t *out, int *present, struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *present = 0;
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < (double)lo ||
        v->valuedouble > (double)hi)
        return bad_field(fe, name, "must be a number in range");
    *out = (int64_t)v->valuedouble; /* fractional seconds are truncated */
    *present = 1;
    return KV_OK;
}

static enum kv_status opt_bool(const cJSON *o, const char *name, int *out, struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsBool(v))
        return bad_field(fe, name, "must be a boolean");
    *out = cJSON_IsTrue(v);
    return KV_OK;
}

/* An optional string field; NULL when absent. */
static enum kv_status opt_string(const cJSON *o, const char *name, const char **out,
                                 struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    *out = NULL;
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsString(v))
        return bad_field(fe, name, "must be a string");
    *out = v->valuestring;
    return KV_OK;
}

/* An optional base64url field, decoded. */
static enum kv_status opt_b64(const cJSON *o, const char *name, struct kv_buf *out,
                              struct field_error *fe)
{
    const char *s = NULL;
    enum kv_status st = opt_string(o, name, &s, fe);
    if (st != KV_OK || s == NULL)
        return st;
    if (kv_b64url_decode(s, out) != KV_OK)
        return bad_field(fe, name, "is not valid base64url");
    return KV_OK;
}

/* A key_ops array: its operations as a set and in the client's order (duplicates once). */
static enum kv_status parse_key_ops(const cJSON *o, unsigned *ops, uint32_t *order, int *set,
                                    struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "key_ops");
    *set = 0;
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsArray(v))
        return bad_field(fe, "key_ops", "must be an array of strings");
    unsigned bits = 0;
    uint32_t seq = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        unsigned op = 0;
        if (!cJSON_IsString(it) || ks_keyop_parse(it->valuestring, &op) != KV_OK)
            return bad_field(fe, "key_ops", "contains an unknown key operation");
        ks_keyops_add(&bits, &seq, op);
    }
    *ops = bits;
    *order = seq;
    *set = 1;
    return KV_OK;
}

static enum kv_status parse_attributes(const cJSON *o, struct ks_attrs *a, struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "attributes");
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsObject(v))
        return bad_field(fe, "attributes", "must be an object");
    int present = 0;
    enum kv_status st = opt_bool(v, "enabled", &a->enabled, fe);
    if (st == KV_OK)
        st = opt_int(v, "nbf", 0, INT64_C(253402300799), &a->nbf, &present, fe);
    if (st == KV_OK)
        st = opt_int(v, "exp", 0, INT64_C(253402300799), &a->exp, &present, fe);
    if (st == KV_OK)
        st = opt_bool(v, "exportable", &a->exportable, fe);
    return st;
}

/* Tags are borrowed from the JSON document: the keystore copies them. */
static enum kv_status parse_tags(const cJSON *o, struct ks_tags *t, struct field_error *fe)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "tags");
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    if (!cJSON_IsObject(v))
        return bad_field(fe, "tags", "must be an object of strings");
    size_t n = (size_t)cJSON_GetArraySize(v);
    if (n > TAGS_MAX)
        return bad_field(fe, "tags", "must have at most 15 entries");
    if (n == 0)
        return KV_OK;
    t->names = calloc(n, sizeof(char *));
    t->values = calloc(n, sizeof(char *));
    if (t->names == NULL || t->values == NULL)
        return KV_ERR_NOMEM;
    const cJSON *it;
    cJSON_ArrayForEach(it, v)
    {
        if (!cJSON_IsString(it) || strlen(it->string) == 0 ||
            strlen(it->string) > TAG_NAME_MAX || strlen(it->valuestring) > TAG_VALUE_MAX)
            return bad_field(fe, "tags",
                             "must map names of 1-256 characters to strings of at "
                             "most 256 characters");
        t->names[t->count] = it->string;
        t->values[t->count] = it->valuestring;
        t->count++;
    }
    return KV_OK;
}

/* Free a tag set whose strings are borrowed. */
static void tags_release_borrowed(struct ks_tags *t)
{
    free(t->names);
    free(t->values);
    t->names = t->values = NULL;
    t->count = 0;
}

enum kv_status srv_key_tags_parse(const cJSON *body, struct ks_tags *out, char *why, size_t cap)
{
    struct field_error fe = {{0}};
    enum kv_status st = parse_tags(body, out, &fe);
    if (st != KV_OK) {
        tags_release_borrowed(out);
        snprintf(why, cap, "%s", fe.message[0] ? fe.message : "The tags could not be read.");
    }
    return st;
}

/* Whether the request's api-version came before secure key release (7.3-preview): the
 * versions kvmock knows that are 2016-10-01 or 7.0-7.2. */
static int before_release(const struct srv_req *req)
{
    const char *v = srv_query_get(req, "api-version");
    return v != NULL && (strcmp(v, "2016-10-01") == 0 ||
                         (v[0] == '7' && v[1] == '.' && v[2] >= '0' && v[2] <= '2'));
}

/* An exportable key, or a release policy, asked for in an api-version older than secure
 * key release: Key Vault's AKV.SKR.1001, which names that condition. */
static int release_too_early(const struct srv_req *req, const cJSON *body, int exportable)
{
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(body, "release_policy");
    return before_release(req) && (exportable || (rp != NULL && !cJSON_IsNull(rp)));
}

/* A release policy (KeyReleasePolicy: {contentType, immutable, data}); `data` is the
 * base64url of the policy document, which the policy layer checks and normalizes. On
 * success @p rp owns its strings and is set when the body has one. Errors are written
 * to @p why (the policy layer's messages run longer than a field error's). */
static enum kv_status parse_release_policy(const cJSON *body, struct ks_release_policy *rp,
                                           char *why, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "release_policy");
    memset(rp, 0, sizeof(*rp));
    if (v == NULL || cJSON_IsNull(v))
        return KV_OK;
    const cJSON *ct = cJSON_GetObjectItemCaseSensitive(v, "contentType");
    const cJSON *imm = cJSON_GetObjectItemCaseSensitive(v, "immutable");
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(v, "data");
    const char *bad = NULL;
    if (!cJSON_IsObject(v))
        bad = "The parameter 'release_policy' must be an object.";
    else if (ct != NULL && !cJSON_IsNull(ct) &&
             (!cJSON_IsString(ct) || strlen(ct->valuestring) >= KS_CONTENT_TYPE_MAX ||
              strncasecmp(ct->valuestring, "application/json", 16) != 0))
        bad = "The parameter 'release_policy.contentType' must be application/json, with or "
              "without a charset.";
    else if (imm != NULL && !cJSON_IsNull(imm) && !cJSON_IsBool(imm))
        bad = "The parameter 'release_policy.immutable' must be a boolean.";
    else if (!cJSON_IsString(data) || data->valuestring[0] == '\0')
        bad = "The parameter 'release_policy.data' is required: the base64url of the policy.";
    if (bad != NULL) {
        snprintf(why, cap, "%s", bad);
        return KV_ERR_BAD_PARAM;
    }
    struct kv_buf doc = {0};
    if (kv_b64url_decode(data->valuestring, &doc) != KV_OK) {
        snprintf(why, cap, "The parameter 'release_policy.data' is not valid base64url.");
        return KV_ERR_BAD_PARAM;
    }
    char *normalized = NULL;
    enum kv_status st =
        pol_release_policy_normalize((const char *)doc.data, doc.len, &normalized, why, cap);
    kv_buf_free(&doc);
    if (st != KV_OK)
        return st;
    rp->content_type =
        strdup(cJSON_IsString(ct) ? ct->valuestring : KS_RELEASE_POLICY_CONTENT_TYPE);
    if (rp->content_type == NULL) {
        free(normalized);
        return KV_ERR_NOMEM;
    }
    rp->data = normalized;
    rp->immutable = cJSON_IsTrue(imm);
    rp->set = 1;
    return KV_OK;
}

/* ---- JSON builders ------------------------------------------------------------------
 * Written with kv_json (no cJSON tree): these answers are the ones given most. */

static void add_b64(struct kv_json *j, const char *name, const struct kv_buf *b)
{
    kv_json_b64url(j, name, b->data, b->len);
}

/* A key's id: the vault URL, /keys/name, and /version unless @p version is NULL. */
static void key_id(const struct srv_req *req, const char *name, const char *version, char *out,
                   size_t cap)
{
    char base[SRV_HOST_MAX + 16];
    srv_base_url(req, base, sizeof(base));
    kv_str_join(out, cap, base, "/keys/", name, version != NULL ? "/" : "",
                version != NULL ? version : "", NULL);
}

/* A key's attributes. @p name_exportable: name exportable even when false, as Key Vault does in
 * a key bundle from api-version 7.3 on. */
static void attributes_json(struct kv_json *j, const struct ks_key *k, int name_exportable)
{
    kv_json_open(j, "attributes", '{');
    kv_json_bool(j, "enabled", k->attrs.enabled);
    if (k->attrs.nbf != 0)
        kv_json_int(j, "nbf", k->attrs.nbf);
    if (k->attrs.exp != 0)
        kv_json_int(j, "exp", k->attrs.exp);
    kv_json_int(j, "created", k->attrs.created);
    kv_json_int(j, "updated", k->attrs.updated);
    kv_json_str(j, "recoveryLevel", k->recovery_level);
    kv_json_int(j, "recoverableDays", k->recoverable_days);
    if (k->attrs.exportable || name_exportable)
        kv_json_bool(j, "exportable", k->attrs.exportable);
    if (k->hsm) /* the platform Key Vault names for its premium vaults' hardware keys */
        kv_json_str(j, "hsmPlatform", "2");
    kv_json_close(j, '}');
}

/* A version's key_ops, in the order its client gave them. */
static void key_ops_json(struct kv_json *j, const struct ks_key *k)
{
    unsigned list[KS_OPS_MAX];
    size_t n = ks_keyops_list(k->ops, k->ops_order, list);
    kv_json_open(j, "key_ops", '[');
    for (size_t i = 0; i < n; i++)
        kv_json_str(j, NULL, ks_keyop_name(list[i]));
    kv_json_close(j, ']');
}

static void tags_json(struct kv_json *j, const struct ks_tags *t)
{
    if (t->count == 0)
        return;
    kv_json_open(j, "tags", '{');
    for (size_t i = 0; i < t->count; i++)
        kv_json_str(j, t->names[i], t->values[i]);
    kv_json_close(j, '}');
}

/* The JsonWebKey of a version: public members only. */
static void jwk_json(struct kv_json *j, const struct srv_req *req, const struct ks_key *k)
{
    char kid[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
    key_id(req, k->name, k->version, kid, sizeof(kid));
    kv_json_open(j, "key", '{');
    key_ops_json(j, k);
    kv_json_str(j, "kid", kid);
    kv_json_str(j, "kty", ks_kty_name(k->kty, k->hsm));
    if (k->kty == KS_KTY_RSA) {
        add_b64(j, "n", &k->pub.n);
        add_b64(j, "e", &k->pub.e);
    }
    if (k->kty == KS_KTY_EC) {
        kv_json_str(j, "crv", ks_crv_name(k->pub.crv));
        add_b64(j, "x", &k->pub.x);
        add_b64(j, "y", &k->pub.y);
    }
    kv_json_close(j, '}');
}

static void deleted_fields(struct kv_json *j, const struct srv_req *req, const struct ks_key *k)
{
    char base[SRV_HOST_MAX + 16], rid[SRV_HOST_MAX + KS_NAME_MAX + 32];
    srv_base_url(req, base, sizeof(base));
    snprintf(rid, sizeof(rid), "%s/deletedkeys/%s", base, k->name);
    kv_json_str(j, "recoveryId", rid);
    kv_json_int(j, "deletedDate", k->deleted_date);
    kv_json_int(j, "scheduledPurgeDate", k->scheduled_purge);
}

/* The release policy of a create, import or update (@p exportable: whether it makes the key
 * exportable), refused in an api-version before secure key release. */
static enum kv_status take_release_policy(const struct srv_req *req, const cJSON *body,
                                          int exportable, struct ks_release_policy *rp, char *why,
                                          size_t cap)
{
    memset(rp, 0, sizeof(*rp));
    if (release_too_early(req, body, exportable))
        return KV_ERR_SKR_PREMIUM;
    return parse_release_policy(body, rp, why, cap);
}

/* A key's release policy as Key Vault returns it: contentType only where asked (@p
 * content_type), the document in base64url, immutable. */
static void release_policy_json(struct kv_json *j, const struct ks_release_policy *rp,
                                int content_type)
{
    if (!rp->set)
        return;
    kv_json_open(j, "release_policy", '{');
    if (content_type)
        kv_json_str(j, "contentType", rp->content_type);
    kv_json_b64url(j, "data", rp->data, strlen(rp->data));
    kv_json_bool(j, "immutable", rp->immutable);
    kv_json_close(j, '}');
}

/* KeyBundle: {key, attributes, tags?, release_policy?}, and a deleted key's members
 * (DeletedKeyBundle). */
static void bundle_json(struct kv_json *j, const struct srv_req *req, const struct ks_key *k)
{
    kv_json_open(j, NULL, '{');
    jwk_json(j, req, k);
    attributes_json(j, k, !before_release(req));
    tags_json(j, &k->tags);
    release_policy_json(j, &k->release_policy, 1);
    if (k->deleted_date != 0)
        deleted_fields(j, req, k);
    kv_json_close(j, '}');
}

/* KeyItem: {kid, attributes, tags?}, and a deleted key's members (DeletedKeyItem). */
static void item_json(struct kv_json *j, const struct srv_req *req, const struct ks_key *k,
                      int with_version)
{
    char kid[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
    key_id(req, k->name, with_version ? k->version : NULL, kid, sizeof(kid));
    kv_json_open(j, NULL, '{');
    kv_json_str(j, "kid", kid);
    attributes_json(j, k, 0);
    tags_json(j, &k->tags);
    if (k->deleted_date != 0)
        deleted_fields(j, req, k);
    kv_json_close(j, '}');
}

/* ---- handlers ------------------------------------------------------------------------- */

/* A KeyBundle, or a DeletedKeyBundle for a deleted key (a key purged at once,
 * without soft delete, has no deletion date and answers a plain KeyBundle). */
static void send_bundle(struct srv_req *req, struct ks_key *k)
{
    struct kv_json j;
    kv_json_init(&j);
    bundle_json(&j, req, k);
    ks_key_free(k);
    srv_send_json_text(req, 200, &j);
}

static void h_create(struct srv_req *req)
{
    struct field_error fe = {{0}};
    struct ks_create p = {.attrs = {.enabled = 1}};
    const char *kty = NULL, *crv = NULL;
    int64_t size = 0, exponent = 0;
    int present = 0;
    const cJSON *body = req->body;

    enum kv_status st = opt_string(body, "kty", &kty, &fe);
    if (st == KV_OK && kty == NULL)
        st = bad_field(&fe, "kty", "is required");
    if (st == KV_OK && ks_kty_parse(kty, &p.kty, &p.hsm) != KV_OK)
        st = bad_field(&fe, "kty", "is not a supported key type");
    if (st == KV_OK)
        st = opt_int(body, "key_size", 0, 65536, &size, &present, &fe);
    if (st == KV_OK)
        st = opt_int(body, "public_exponent", 0, UINT32_MAX, &exponent, &present, &fe);
    if (st == KV_OK)
        st = opt_string(body, "crv", &crv, &fe);
    if (st == KV_OK && crv != NULL && ks_crv_parse(crv, &p.crv) != KV_OK)
        st = bad_field(&fe, "crv", "is not a supported curve");
    if (st == KV_OK)
        st = parse_key_ops(body, &p.ops, &p.ops_order, &p.ops_set, &fe);
    if (st == KV_OK)
        st = parse_attributes(body, &p.attrs, &fe);
    if (st == KV_OK)
        st = parse_tags(body, &p.tags, &fe);
    struct ks_release_policy rp = {0};
    char why[512] = "";
    if (st == KV_OK) {
        st = take_release_policy(req, body, p.attrs.exportable, &rp, why, sizeof(why));
        p.release_policy = &rp;
    }
    if (st != KV_OK) {
        tags_release_borrowed(&p.tags);
        srv_send_error(req, st, why[0] ? why : fe.message[0] ? fe.message : NULL);
        return;
    }
    if (p.kty == KS_KTY_EC && crv == NULL && size != 0) {
        /* A size picks the curve when no crv is given. */
        p.crv = size == 256 ? KS_CRV_P256 : size == 384 ? KS_CRV_P384 : size == 521 ? KS_CRV_P521
                                                                                    : KS_CRV_NONE;
        if (p.crv == KS_CRV_NONE) {
            tags_release_borrowed(&p.tags);
            ks_release_policy_clear(&rp);
            srv_send_error(req, KV_ERR_BAD_KEY_SIZE, NULL);
            return;
        }
    }
    if (p.kty != KS_KTY_EC)
        p.size_bits = (int)size;
    p.exponent = (unsigned long)exponent;

    struct ks_key *k = NULL;
    st = ks_key_create(req->srv->ks, req->vault, req->key_name, &p, &k);
    tags_release_borrowed(&p.tags);
    ks_release_policy_clear(&rp);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

static void h_get(struct srv_req *req)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_get(req->srv->ks, req->vault, req->key_name, req->version, &k);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

/* maxresults: absent = 25; else an integer 1..25. */
static enum kv_status page_size(const struct srv_req *req, int *out)
{
    const char *v = srv_query_get(req, "maxresults");
    if (v == NULL || v[0] == '\0') {
        *out = KS_PAGE_MAX;
        return KV_OK;
    }
    if (strlen(v) > 3 || strspn(v, "0123456789") != strlen(v))
        return KV_ERR_BAD_MAXRESULTS;
    int n = atoi(v);
    if (n < 1 || n > KS_PAGE_MAX)
        return KV_ERR_BAD_MAXRESULTS;
    *out = n;
    return KV_OK;
}

/* {"value": [...], "nextLink": "...|null"} with an absolute next link on our own host. As
 * Key Vault's, the link repeats maxresults only when the request gave it. */
static void send_page(struct srv_req *req, struct ks_key_page *page, const char *path,
                      int with_version, int max)
{
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_open(&j, "value", '[');
    for (size_t i = 0; i < page->count; i++)
        item_json(&j, req, page->items[i], with_version);
    kv_json_close(&j, ']');
    if (page->next[0] != '\0') {
        char base[SRV_HOST_MAX + 16], link[1024], size[24] = "";
        srv_base_url(req, base, sizeof(base));
        const char *api = srv_query_get(req, "api-version"),
                   *asked = srv_query_get(req, "maxresults");
        if (asked != NULL && asked[0] != '\0')
            snprintf(size, sizeof(size), "&maxresults=%d", max);
        /* api-version values are [0-9a-z.-]: safe in a URL as they are. */
        snprintf(link, sizeof(link), "%s%s?api-version=%s&$skiptoken=%s%s", base, path,
                 api ? api : "", page->next, size);
        kv_json_str(&j, "nextLink", link);
    } else {
        kv_json_str(&j, "nextLink", NULL);
    }
    kv_json_close(&j, '}');
    ks_key_page_free(page);
    srv_send_json_text(req, 200, &j);
}

static void h_list(struct srv_req *req)
{
    int max = 0;
    struct ks_key_page *page = NULL;
    enum kv_status st = page_size(req, &max);
    if (st == KV_OK)
        st = ks_key_list(req->srv->ks, req->vault, srv_query_get(req, "$skiptoken"), max, &page);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_page(req, page, "/keys", 0, max);
}

static void h_versions(struct srv_req *req)
{
    int max = 0;
    struct ks_key_page *page = NULL;
    enum kv_status st = page_size(req, &max);
    if (st == KV_OK)
        st = ks_key_list_versions(req->srv->ks, req->vault, req->key_name,
                                  srv_query_get(req, "$skiptoken"), max, &page);
    if (st == KV_ERR_KEY_NOT_FOUND) {
        /* as Key Vault answers for a key it does not hold: no versions, not a 404 */
        page = calloc(1, sizeof(*page));
        st = page != NULL ? KV_OK : KV_ERR_NOMEM;
    }
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    char path[KS_NAME_MAX + 32];
    snprintf(path, sizeof(path), "/keys/%s/versions", req->key_name);
    send_page(req, page, path, 1, max);
}

static int is_gcm(enum ks_alg alg)
{
    return alg == KS_ALG_A128GCM || alg == KS_ALG_A192GCM || alg == KS_ALG_A256GCM;
}

/* The length of the digest an RSA or ECDSA signature algorithm signs; 0 for the others. */
static size_t digest_len(enum ks_alg alg)
{
    switch (alg) {
    case KS_ALG_RS256:
    case KS_ALG_PS256:
    case KS_ALG_ES256:
    case KS_ALG_ES256K:
        return 32;
    case KS_ALG_RS384:
    case KS_ALG_PS384:
    case KS_ALG_ES384:
        return 48;
    case KS_ALG_RS512:
    case KS_ALG_PS512:
    case KS_ALG_ES512:
        return 64;
    default:
        return 0;
    }
}

/* encrypt, decrypt, sign, verify, wrapKey, unwrapKey: one body shape, one result shape. */
static void key_operation(struct srv_req *req, unsigned op)
{
    struct field_error fe = {{0}};
    struct ks_op_params p = {0};
    struct ks_op_result res = {0};
    const char *alg = NULL, *opname = ks_keyop_name(op);
    const cJSON *body = req->body;

    enum kv_status st = opt_string(body, "alg", &alg, &fe);
    if (st == KV_OK && alg == NULL)
        st = bad_field(&fe, "alg", "is required");
    if (st == KV_OK && ks_alg_parse(alg, &p.alg) != KV_OK)
        st = bad_field(&fe, "alg", "is not a supported algorithm");
    if (st == KV_OK)
        st = opt_b64(body, "value", &p.value, &fe);
    if (st == KV_OK && cJSON_GetObjectItemCaseSensitive(body, "value") == NULL)
        st = bad_field(&fe, "value", "is required");
    if (st == KV_OK)
        st = opt_b64(body, "iv", &p.iv, &fe);
    if (st == KV_OK)
        st = opt_b64(body, "aad", &p.aad, &fe);
    if (st == KV_OK)
        st = opt_b64(body, "tag", &p.tag, &fe);
    if (st == KV_OK && op == KS_OP_VERIFY) {
        st = opt_b64(body, "digest", &p.digest, &fe);
        if (st == KV_OK && cJSON_GetObjectItemCaseSensitive(body, "digest") == NULL)
            st = bad_field(&fe, "digest", "is required");
    }
    if (st != KV_OK) {
        srv_send_error(req, st, fe.message[0] ? fe.message : NULL);
        goto out;
    }
    st = ks_key_op(req->srv->ks, req->vault, req->key_name, req->version, op, &p, &res);
    if (st == KV_ERR_BAD_INPUT_LENGTH && op == KS_OP_SIGN && digest_len(p.alg) != 0 &&
        p.value.len != digest_len(p.alg)) {
        /* Key Vault's words for a digest of the wrong length */
        srv_send_errorf(req, st,
                        "Invalid length of 'value': %zu bytes. %s requires %zu bytes, encoded "
                        "with base64url.",
                        p.value.len, alg, digest_len(p.alg));
        goto out;
    }
    if (st != KV_OK) {
        send_key_error(req, st, opname);
        goto out;
    }
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    if (op == KS_OP_VERIFY) {
        kv_json_bool(&j, "value", res.verified);
    } else {
        char kid[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
        key_id(req, res.name, res.version, kid, sizeof(kid));
        kv_json_str(&j, "kid", kid);
        if (op == KS_OP_DECRYPT || op == KS_OP_UNWRAP) /* a plaintext or a key */
            kv_json_b64url_secret(&j, "value", res.value.data, res.value.len);
        else
            add_b64(&j, "value", &res.value);
        if (res.iv.len > 0)
            add_b64(&j, "iv", &res.iv);
        if (res.tag.len > 0)
            add_b64(&j, "tag", &res.tag);
        /* as Key Vault does: a GCM encryption echoes aad; CBC and decryptions do not */
        if (op == KS_OP_ENCRYPT && is_gcm(p.alg) && p.aad.len > 0)
            add_b64(&j, "aad", &p.aad);
    }
    kv_json_close(&j, '}');
    srv_send_json_text(req, 200, &j);
out:
    ks_op_result_clear(&res);
    kv_buf_wipe(&p.value);
    kv_buf_free(&p.iv);
    kv_buf_free(&p.aad);
    kv_buf_free(&p.tag);
    kv_buf_free(&p.digest);
}

static void h_encrypt(struct srv_req *req)
{
    key_operation(req, KS_OP_ENCRYPT);
}

static void h_decrypt(struct srv_req *req)
{
    key_operation(req, KS_OP_DECRYPT);
}

static void h_sign(struct srv_req *req)
{
    key_operation(req, KS_OP_SIGN);
}

static void h_verify(struct srv_req *req)
{
    key_operation(req, KS_OP_VERIFY);
}

static void h_wrap(struct srv_req *req)
{
    key_operation(req, KS_OP_WRAP);
}

static void h_unwrap(struct srv_req *req)
{
    key_operation(req, KS_OP_UNWRAP);
}

/* ---- the lifecycle ------------------------------------------------------------------ */

static void h_delete(struct srv_req *req)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_delete(req->srv->ks, req->vault, req->key_name, &k);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

static void h_deleted_get(struct srv_req *req)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_deleted_get(req->srv->ks, req->vault, req->key_name, &k);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

static void h_deleted_list(struct srv_req *req)
{
    int max = 0;
    struct ks_key_page *page = NULL;
    enum kv_status st = page_size(req, &max);
    if (st == KV_OK)
        st = ks_deleted_list(req->srv->ks, req->vault, srv_query_get(req, "$skiptoken"), max,
                             &page);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_page(req, page, "/deletedkeys", 0, max);
}

static void h_recover(struct srv_req *req)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_deleted_recover(req->srv->ks, req->vault, req->key_name, &k);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

static void h_purge(struct srv_req *req)
{
    enum kv_status st = ks_deleted_purge(req->srv->ks, req->vault, req->key_name);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    srv_send_empty(req, req->route_def->ok_status);
}

static void h_update(struct srv_req *req)
{
    struct field_error fe = {{0}};
    struct ks_update u = {0};
    struct ks_attrs a = {.enabled = -1, .nbf = -1, .exp = -1};
    const cJSON *body = req->body, *attrs = cJSON_GetObjectItemCaseSensitive(body, "attributes");
    int present = 0;

    enum kv_status st = parse_key_ops(body, &u.ops, &u.ops_order, &u.ops_set, &fe);
    if (st == KV_OK && attrs != NULL && !cJSON_IsNull(attrs) && !cJSON_IsObject(attrs))
        st = bad_field(&fe, "attributes", "must be an object");
    if (st == KV_OK && cJSON_IsObject(attrs)) {
        st = opt_bool(attrs, "enabled", &a.enabled, &fe);
        u.enabled_set = a.enabled != -1;
        u.enabled = a.enabled;
        if (st == KV_OK)
            st = opt_int(attrs, "nbf", 0, INT64_C(253402300799), &u.nbf, &u.nbf_set, &fe);
        if (st == KV_OK)
            st = opt_int(attrs, "exp", 0, INT64_C(253402300799), &u.exp, &u.exp_set, &fe);
        (void)present;
    }
    if (st == KV_OK && cJSON_GetObjectItemCaseSensitive(body, "tags") != NULL &&
        !cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(body, "tags"))) {
        u.tags_set = 1;
        st = parse_tags(body, &u.tags, &fe);
    }
    if (st == KV_OK && cJSON_IsObject(attrs)) {
        int exportable = -1;
        st = opt_bool(attrs, "exportable", &exportable, &fe);
        u.exportable_set = exportable != -1;
        u.exportable = exportable;
    }
    struct ks_release_policy rp = {0};
    char why[512] = "";
    if (st == KV_OK) {
        st =
            take_release_policy(req, body, u.exportable_set && u.exportable, &rp, why, sizeof(why));
        if (rp.set)
            u.release_policy = &rp;
    }
    if (st != KV_OK) {
        tags_release_borrowed(&u.tags);
        srv_send_error(req, st, why[0] ? why : fe.message[0] ? fe.message : NULL);
        return;
    }
    struct ks_key *k = NULL;
    st = ks_key_update(req->srv->ks, req->vault, req->key_name, req->version, &u, &k);
    tags_release_borrowed(&u.tags);
    ks_release_policy_clear(&rp);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

/* The private JWK of an import; buffers are decoded into @p j and owned by it. A JWK
 * with key_hsm (@p byok) brings its key in a transfer blob: only its type and curve here. */
static enum kv_status parse_jwk(const cJSON *key, int byok, struct ks_jwk *j,
                                struct field_error *fe)
{
    static const char *const rsa[] = {"n", "e", "d", "p", "q", "dp", "dq", "qi"};
    const char *kty = NULL, *crv = NULL;
    int hsm = 0;
    if (!cJSON_IsObject(key))
        return bad_field(fe, "key", "is required and must be a JSON web key");
    enum kv_status st = opt_string(key, "kty", &kty, fe);
    if (st == KV_OK && (kty == NULL || ks_kty_parse(kty, &j->kty, &hsm) != KV_OK))
        st = bad_field(fe, "key.kty", "is missing or not a supported key type");
    if (st == KV_OK && byok) {
        /* Key Vault's BYOK brings hardware keys only */
        if (!hsm)
            return bad_field(fe, "key.kty", "must be RSA-HSM, EC-HSM or oct-HSM with key_hsm");
        st = opt_string(key, "crv", &crv, fe);
        if (st == KV_OK && crv != NULL && ks_crv_parse(crv, &j->crv) != KV_OK)
            st = bad_field(fe, "key.crv", "is not a supported curve");
        return st;
    }
    if (st == KV_OK && j->kty == KS_KTY_RSA) {
        struct kv_buf *bufs[] = {&j->n, &j->e, &j->d, &j->p, &j->q, &j->dp, &j->dq, &j->qi};
        for (size_t i = 0; st == KV_OK && i < sizeof(rsa) / sizeof(rsa[0]); i++) {
            st = opt_b64(key, rsa[i], bufs[i], fe);
            if (st == KV_OK && bufs[i]->len == 0)
                st = bad_field(fe, "key", "is not a complete RSA private key");
        }
    } else if (st == KV_OK && j->kty == KS_KTY_EC) {
        st = opt_string(key, "crv", &crv, fe);
        if (st == KV_OK && (crv == NULL || ks_crv_parse(crv, &j->crv) != KV_OK))
            st = bad_field(fe, "key.crv", "is missing or not a supported curve");
        if (st == KV_OK)
            st = opt_b64(key, "x", &j->x, fe);
        if (st == KV_OK)
            st = opt_b64(key, "y", &j->y, fe);
        if (st == KV_OK)
            st = opt_b64(key, "d", &j->d, fe);
        if (st == KV_OK && (j->x.len == 0 || j->y.len == 0 || j->d.len == 0))
            st = bad_field(fe, "key", "is not a complete EC private key");
    } else if (st == KV_OK) {
        st = opt_b64(key, "k", &j->k, fe);
        if (st == KV_OK && j->k.len == 0)
            st = bad_field(fe, "key.k", "is required for an oct key");
    }
    return st;
}

/* A key identifier's host, and the key's name and version (none: "") from its path
 * /keys/NAME[/VERSION][/]; 0 when it is not one. */
static int kid_parse(const char *kid, char host[SRV_HOST_MAX], char name[KS_NAME_MAX + 1],
                     char version[KS_VERSION_LEN + 1])
{
    if (strncmp(kid, "https://", 8) != 0)
        return 0;
    const char *h = kid + 8, *path = strchr(h, '/');
    if (path == NULL || path == h || (size_t)(path - h) >= SRV_HOST_MAX ||
        strncmp(path, "/keys/", 6) != 0)
        return 0;
    kv_str_join_n(host, SRV_HOST_MAX, h, (size_t)(path - h), NULL);
    const char *n = path + 6, *slash = strchr(n, '/');
    size_t nlen = slash ? (size_t)(slash - n) : strlen(n);
    const char *v = slash ? slash + 1 : "";
    size_t vlen = strcspn(v, "/");
    if (nlen == 0 || nlen > KS_NAME_MAX || (vlen != 0 && vlen != KS_VERSION_LEN) ||
        (v[vlen] == '/' && v[vlen + 1] != '\0'))
        return 0;
    kv_str_join_n(name, KS_NAME_MAX + 1, n, nlen, NULL);
    kv_str_join_n(version, KS_VERSION_LEN + 1, v, vlen, NULL);
    return 1;
}

/* Whether a key identifier's host names the vault of @p req: its own host, or NAME.vault.*
 * for the vault NAME (NAME.vault.azure.net when kvmock answers under Azure's names). */
static int kid_host_is_vault(const struct srv_req *req, const char *host)
{
    size_t label = strcspn(host, ".");
    return strcasecmp(host, req->host) == 0 ||
           (label == strlen(req->vault) && strncasecmp(host, req->vault, label) == 0 &&
            strncasecmp(host + label, ".vault.", 7) == 0);
}

/*
 * Bring your own key: JsonWebKey's key_hsm is base64url of a key transfer blob, the JSON
 * {"schema_version": "1.0.0", "header": {"kid": the KEK's id, "alg": "dir", "enc":
 * "CKM_RSA_AES_KEY_WRAP" (or RSA_AES_KEY_WRAP_256/_384)}, "ciphertext": base64url,
 * "generator": the tool} (Key Vault's BYOK specification). The KEK must be a key of the
 * vault of the request. @p b's ciphertext is allocated; free it with kv_buf_free().
 */
static enum kv_status parse_byok(const struct srv_req *req, const cJSON *key, struct ks_byok *b,
                                 struct field_error *fe)
{
    struct kv_buf text = {0};
    const char *hsm = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(key, "key_hsm"));
    if (hsm == NULL || kv_b64url_decode(hsm, &text) != KV_OK)
        return bad_field(fe, "key.key_hsm", "must be base64url of a key transfer blob");
    cJSON *blob = cJSON_ParseWithLength((const char *)text.data, text.len);
    kv_buf_free(&text);
    const cJSON *header = cJSON_GetObjectItemCaseSensitive(blob, "header");
    const char *kid = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "kid"));
    const char *alg = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "alg"));
    const char *enc = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(header, "enc"));
    const char *ct = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(blob, "ciphertext"));
    char host[SRV_HOST_MAX];
    enum kv_status st = KV_OK;
    if (!cJSON_IsObject(blob) || kid == NULL || ct == NULL)
        st = bad_field(fe, "key.key_hsm",
                       "is not a key transfer blob: it needs header.kid and ciphertext");
    else if (alg == NULL || strcmp(alg, "dir") != 0)
        st = bad_field(fe, "key.key_hsm", "must name header.alg 'dir'");
    else if (enc == NULL || ks_release_enc_parse(enc, &b->enc) != KV_OK)
        st = bad_field(fe, "key.key_hsm",
                       "must name header.enc CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or "
                       "RSA_AES_KEY_WRAP_384");
    else if (kv_b64url_decode(ct, &b->ciphertext) != KV_OK)
        st = bad_field(fe, "key.key_hsm", "must carry its ciphertext in base64url");
    /* a kid that names no key of this vault leaves the KEK unnamed: the keystore refuses
     * it (KV_ERR_BYOK_KEK) after the checks that come first, the vault's sku among them */
    if (st == KV_OK &&
        (!kid_parse(kid, host, b->kek_name, b->kek_version) || !kid_host_is_vault(req, host)))
        b->kek_name[0] = '\0';
    cJSON_Delete(blob);
    return st;
}

static void h_import(struct srv_req *req)
{
    struct field_error fe = {{0}};
    struct ks_import p = {.attrs = {.enabled = 1}};
    struct ks_byok byok = {0};
    const cJSON *body = req->body, *key = cJSON_GetObjectItemCaseSensitive(body, "key");
    int has_hsm = cJSON_GetObjectItemCaseSensitive(key, "key_hsm") != NULL;
    enum kv_status st = parse_jwk(key, has_hsm, &p.jwk, &fe);
    if (st == KV_OK && has_hsm) {
        st = parse_byok(req, key, &byok, &fe);
        p.byok = &byok;
    }
    if (st == KV_OK)
        st = opt_bool(body, "Hsm", &p.hsm, &fe);
    if (st == KV_OK) {
        int hsm_kty = 0;
        const char *kty = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(key, "kty"));
        enum ks_kty ignored;
        if (kty != NULL && ks_kty_parse(kty, &ignored, &hsm_kty) == KV_OK && hsm_kty)
            p.hsm = 1;
    }
    if (st == KV_OK)
        st = parse_key_ops(key, &p.ops, &p.ops_order, &p.ops_set, &fe);
    if (st == KV_OK)
        st = parse_attributes(body, &p.attrs, &fe);
    if (st == KV_OK)
        st = parse_tags(body, &p.tags, &fe);
    struct ks_release_policy rp = {0};
    char why[512] = "";
    if (st == KV_OK) {
        st = take_release_policy(req, body, p.attrs.exportable, &rp, why, sizeof(why));
        p.release_policy = &rp;
    }
    if (st == KV_OK) {
        struct ks_key *k = NULL;
        st = ks_key_import(req->srv->ks, req->vault, req->key_name, &p, &k);
        if (st == KV_OK)
            send_bundle(req, k);
        else if (st == KV_ERR_BAD_JWK)
            srv_send_error(req, st, "The key is not a valid private key: its parts are missing "
                                    "or do not match.");
        else
            send_key_error(req, st, NULL);
    } else {
        srv_send_error(req, st, why[0] ? why : fe.message[0] ? fe.message : NULL);
    }
    kv_buf_free(&byok.ciphertext);
    ks_jwk_wipe(&p.jwk);
    tags_release_borrowed(&p.tags);
    ks_release_policy_clear(&rp);
}

static void h_rotate(struct srv_req *req)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_rotate(req->srv->ks, req->vault, req->key_name, &k);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_bundle(req, k);
}

/* An ISO 8601 duration ("P90D", "P1Y2M", "PT12H", "P2W") in seconds; years are
 * 365 days and months 30, as a retention calendar. @return 0 or -1. */
static int parse_duration(const char *s, int64_t *out)
{
    int64_t total = 0;
    int in_time = 0, parts = 0;
    if (s == NULL || s[0] != 'P')
        return -1;
    for (const char *p = s + 1; *p;) {
        if (*p == 'T') {
            if (in_time)
                return -1;
            in_time = 1;
            p++;
            continue;
        }
        if (*p < '0' || *p > '9')
            return -1;
        int64_t n = 0;
        while (*p >= '0' && *p <= '9') {
            n = n * 10 + (*p++ - '0');
            if (n > 100000)
                return -1;
        }
        int64_t unit;
        switch (*p++) {
        case 'Y': unit = in_time ? -1 : 365 * 86400; break;
        case 'M': unit = in_time ? 60 : 30 * 86400; break;
        case 'W': unit = in_time ? -1 : 7 * 86400; break;
        case 'D': unit = in_time ? -1 : 86400; break;
        case 'H': unit = in_time ? 3600 : -1; break;
        case 'S': unit = in_time ? 1 : -1; break;
        default: return -1;
        }
        if (unit < 0)
            return -1;
        total += n * unit;
        parts++;
    }
    if (parts == 0)
        return -1;
    *out = total;
    return 0;
}

/* Key Vault's own Notify action: 30 days before expiry. */
#define DEFAULT_NOTIFY   "P30D"
#define DEFAULT_NOTIFY_S (30 * 86400)

/* A vault's policy always has a Notify action: one set without it gets the service's,
 * after the caller's actions, whether or not it has an expiryTime (Key Vault answers so). */
static void add_default_notify(struct ks_rotation_policy *p)
{
    for (size_t i = 0; i < p->n_actions; i++) {
        if (!p->actions[i].rotate)
            return;
    }
    if (p->n_actions == KS_POLICY_ACTIONS_MAX)
        return;
    struct ks_lifetime_action *la = &p->actions[p->n_actions++];
    memset(la, 0, sizeof(*la));
    snprintf(la->before_expiry, sizeof(la->before_expiry), "%s", DEFAULT_NOTIFY);
    la->before_expiry_s = DEFAULT_NOTIFY_S;
}

static enum kv_status parse_policy(const cJSON *body, struct ks_rotation_policy *p,
                                   struct field_error *fe)
{
    const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(body, "attributes");
    const cJSON *actions = cJSON_GetObjectItemCaseSensitive(body, "lifetimeActions");
    memset(p, 0, sizeof(*p));
    if (attrs != NULL && !cJSON_IsNull(attrs)) {
        const char *expiry = NULL;
        if (!cJSON_IsObject(attrs))
            return bad_field(fe, "attributes", "must be an object");
        enum kv_status st = opt_string(attrs, "expiryTime", &expiry, fe);
        if (st != KV_OK)
            return st;
        if (expiry != NULL) {
            if (strlen(expiry) >= sizeof(p->expiry) || parse_duration(expiry, &p->expiry_s) != 0)
                return bad_field(fe, "attributes.expiryTime", "must be an ISO 8601 duration");
            if (p->expiry_s < 28 * 86400)
                return bad_field(fe, "attributes.expiryTime", "must be at least 28 days (P28D)");
            snprintf(p->expiry, sizeof(p->expiry), "%s", expiry);
        }
    }
    if (actions == NULL || cJSON_IsNull(actions)) {
        add_default_notify(p);
        return KV_OK;
    }
    if (!cJSON_IsArray(actions))
        return bad_field(fe, "lifetimeActions", "must be an array");
    int rotates = 0, notifies = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, actions)
    {
        const cJSON *trigger = cJSON_GetObjectItemCaseSensitive(it, "trigger");
        const cJSON *action = cJSON_GetObjectItemCaseSensitive(it, "action");
        const char *type = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(action, "type"));
        if (p->n_actions == KS_POLICY_ACTIONS_MAX)
            return bad_field(fe, "lifetimeActions", "may hold at most one Rotate and one Notify");
        struct ks_lifetime_action *la = &p->actions[p->n_actions];
        if (type != NULL && strcasecmp(type, "Rotate") == 0)
            la->rotate = 1, rotates++;
        else if (type != NULL && strcasecmp(type, "Notify") == 0)
            notifies++;
        else
            return bad_field(fe, "lifetimeActions.action.type", "must be Rotate or Notify");
        if (rotates > 1 || notifies > 1)
            return bad_field(fe, "lifetimeActions", "may hold at most one Rotate and one Notify");
        const char *ac = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(trigger,
                                                                               "timeAfterCreate"));
        const char *be = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(trigger,
                                                                               "timeBeforeExpiry"));
        if (!cJSON_IsObject(trigger) || (ac == NULL) == (be == NULL))
            return bad_field(fe, "lifetimeActions.trigger",
                             "must have exactly one of timeAfterCreate and timeBeforeExpiry");
        const char *d = ac ? ac : be;
        int64_t secs = 0;
        if (strlen(d) >= KS_DURATION_MAX || parse_duration(d, &secs) != 0)
            return bad_field(fe, "lifetimeActions.trigger", "must hold ISO 8601 durations");
        if (secs < 7 * 86400)
            return bad_field(fe, "lifetimeActions.trigger", "must be at least 7 days (P7D)");
        /* A Notify action is taken as Key Vault gives it: its own, 30 days before expiry,
         * comes with a policy that has no expiryTime, or a shorter one, and a client
         * sends it back with the policy it read. A Rotate action must fit the policy. */
        if (ac != NULL) {
            snprintf(la->after_create, sizeof(la->after_create), "%s", ac);
            la->after_create_s = secs;
        } else {
            if (p->expiry_s == 0 && la->rotate)
                return bad_field(fe, "lifetimeActions.trigger",
                                 "timeBeforeExpiry needs attributes.expiryTime");
            snprintf(la->before_expiry, sizeof(la->before_expiry), "%s", be);
            la->before_expiry_s = secs;
        }
        if (la->rotate && p->expiry_s != 0 && secs >= p->expiry_s)
            return bad_field(fe, "lifetimeActions.trigger", "must be shorter than expiryTime");
        p->n_actions++;
    }
    add_default_notify(p);
    return KV_OK;
}

static void send_policy(struct srv_req *req, const struct ks_rotation_policy *p)
{
    char base[SRV_HOST_MAX + 16], id[SRV_HOST_MAX + KS_NAME_MAX + 48];
    srv_base_url(req, base, sizeof(base));
    snprintf(id, sizeof(id), "%s/keys/%s/rotationpolicy", base, req->key_name);
    cJSON *doc = cJSON_CreateObject();
    cJSON *actions = cJSON_AddArrayToObject(doc, "lifetimeActions");
    cJSON *attrs = cJSON_AddObjectToObject(doc, "attributes");
    int ok = doc && actions && attrs && cJSON_AddStringToObject(doc, "id", id);
    if (!p->is_set) {
        /* the service's default: notify 30 days before expiry */
        cJSON *a = cJSON_CreateObject();
        ok = ok && a && cJSON_AddItemToArray(actions, a);
        cJSON *t = ok ? cJSON_AddObjectToObject(a, "trigger") : NULL;
        cJSON *act = ok ? cJSON_AddObjectToObject(a, "action") : NULL;
        ok = ok && t && act && cJSON_AddStringToObject(t, "timeBeforeExpiry", DEFAULT_NOTIFY) &&
             cJSON_AddStringToObject(act, "type", "Notify");
    }
    for (size_t i = 0; ok && p->is_set && i < p->n_actions; i++) {
        const struct ks_lifetime_action *la = &p->actions[i];
        cJSON *a = cJSON_CreateObject();
        ok = a && cJSON_AddItemToArray(actions, a);
        cJSON *t = ok ? cJSON_AddObjectToObject(a, "trigger") : NULL;
        cJSON *act = ok ? cJSON_AddObjectToObject(a, "action") : NULL;
        ok = ok && t && act &&
             (la->after_create[0] ? cJSON_AddStringToObject(t, "timeAfterCreate", la->after_create)
                                  : cJSON_AddStringToObject(t, "timeBeforeExpiry",
                                                            la->before_expiry)) &&
             cJSON_AddStringToObject(act, "type", la->rotate ? "Rotate" : "Notify");
    }
    if (ok && p->is_set) {
        ok = (p->expiry[0] == '\0' || cJSON_AddStringToObject(attrs, "expiryTime", p->expiry)) &&
             cJSON_AddNumberToObject(attrs, "created", (double)p->created) &&
             cJSON_AddNumberToObject(attrs, "updated", (double)p->updated);
    }
    if (!ok) {
        cJSON_Delete(doc);
        srv_send_error(req, KV_ERR_NOMEM, NULL);
        return;
    }
    srv_send_json(req, 200, doc);
}

static void h_policy_get(struct srv_req *req)
{
    struct ks_rotation_policy p;
    enum kv_status st = ks_rotation_policy_get(req->srv->ks, req->vault, req->key_name, &p);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_policy(req, &p);
}

static void h_policy_set(struct srv_req *req)
{
    struct field_error fe = {{0}};
    struct ks_rotation_policy in, out;
    enum kv_status st = parse_policy(req->body, &in, &fe);
    if (st != KV_OK) {
        srv_send_error(req, st, fe.message[0] ? fe.message : NULL);
        return;
    }
    st = ks_rotation_policy_set(req->srv->ks, req->vault, req->key_name, &in, &out);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_policy(req, &out);
}

/* {"value": base64url}; a secret value is encoded in constant time. */
static void send_value(struct srv_req *req, const struct kv_buf *value, int secret)
{
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    if (secret)
        kv_json_b64url_secret(&j, "value", value->data, value->len);
    else
        add_b64(&j, "value", value);
    kv_json_close(&j, '}');
    srv_send_json_text(req, 200, &j);
}

static void h_backup(struct srv_req *req)
{
    struct kv_buf blob = {0};
    enum kv_status st = ks_key_backup(req->srv->ks, req->vault, req->key_name, &blob);
    if (st != KV_OK) {
        send_key_error(req, st, NULL);
        return;
    }
    send_value(req, &blob, 0); /* sealed */
    kv_buf_free(&blob);
}

static void h_restore(struct srv_req *req)
{
    struct field_error fe = {{0}};
    struct kv_buf blob = {0};
    enum kv_status st = opt_b64(req->body, "value", &blob, &fe);
    if (st == KV_OK && blob.len == 0)
        st = bad_field(&fe, "value", "is required");
    if (st != KV_OK) {
        kv_buf_free(&blob);
        srv_send_error(req, st, fe.message);
        return;
    }
    struct ks_key *k = NULL;
    char name[KS_NAME_MAX + 1];
    st = ks_key_restore(req->srv->ks, req->vault, blob.data, blob.len, name, &k);
    kv_buf_free(&blob);
    if (st == KV_OK) {
        send_bundle(req, k);
    } else if (st == KV_ERR_BAD_BACKUP) {
        srv_send_error(req, st, "Backup blob contains invalid or corrupt version.");
    } else if (st == KV_ERR_BACKUP_KIND) {
        srv_send_error(req, st,
                       req->hsm ? "The backup was made in a key vault; a managed HSM restores "
                                  "only backups made in a managed HSM."
                                : "The backup was made in a managed HSM; a key vault restores "
                                  "only backups made in a key vault.");
    } else if (st == KV_ERR_KEY_DELETED_RECOVERABLE) {
        /* the name comes from the blob: a soft-deleted key is named as a create names it */
        send_deleted_recoverable(req, name);
    } else {
        srv_send_error(req, st, NULL);
    }
}

/* POST /rng: random bytes from libsodium's generator. */
static void h_rng(struct srv_req *req)
{
    struct field_error fe = {{0}};
    int64_t count = 0;
    int present = 0;
    enum kv_status st = opt_int(req->body, "count", 1, 128, &count, &present, &fe);
    if (st == KV_OK && !present)
        st = bad_field(&fe, "count", "is required (1 to 128)");
    if (st != KV_OK) {
        srv_send_error(req, st, fe.message[0] ? fe.message : "The parameter 'count' must be 1 to 128.");
        return;
    }
    unsigned char bytes[128];
    randombytes_buf(bytes, (size_t)count);
    struct kv_buf b = {bytes, (size_t)count};
    send_value(req, &b, 1);
    sodium_memzero(bytes, sizeof(bytes));
}

/* Refuse an operation kvmock cannot do on any key, with @p why: once the key is
 * found (a missing key is KeyNotFound first, as for every key route). */
static void refuse_on_key(struct srv_req *req, const char *why)
{
    struct ks_key *k = NULL;
    enum kv_status st = ks_key_get(req->srv->ks, req->vault, req->key_name, req->version, &k);
    ks_key_free(k);
    if (st != KV_OK)
        send_key_error(req, st, NULL);
    else
        srv_send_error(req, KV_ERR_BAD_PARAM, why);
}

/* ---- secure key release ----------------------------------------------------------------- */

#define RELEASE_TRIES 3 /* a release that races updates of the policy decides again */

/* key_hsm: base64url of {"schema_version", "header": {"kid", "alg": "dir", "enc"},
 * "ciphertext"}, as Key Vault sends it and its clients read it. */
static char *key_hsm(const char *target_kid, const char *enc, const struct kv_buf *wrapped)
{
    struct kv_json j;
    size_t len = 0;
    char *out = NULL;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_str(&j, "schema_version", "1.0");
    kv_json_open(&j, "header", '{');
    kv_json_str(&j, "kid", target_kid);
    kv_json_str(&j, "alg", "dir");
    kv_json_str(&j, "enc", enc);
    kv_json_close(&j, '}');
    add_b64(&j, "ciphertext", wrapped);
    kv_json_close(&j, '}');
    char *text = kv_json_take(&j, &len);
    if (text != NULL && kv_b64url_encode(text, len, &out) != KV_OK)
        out = NULL;
    free(text);
    return out;
}

/* The signed statement's payload: what was asked (api-version, enc, the kid as the URL
 * named it, the nonce) and the key, with key_hsm, its attributes and its policy. The key's
 * kty is the plain type (RSA, EC, oct): Key Vault leaves out -HSM there, though the key's
 * bundle has it. */
static char *release_payload(const struct srv_req *req, const struct ks_key *k, const char *enc,
                             const char *nonce, const char *hsm, size_t *len)
{
    char kid[SRV_HOST_MAX + KS_NAME_MAX + KS_VERSION_LEN + 32];
    const char *api = srv_query_get(req, "api-version");
    struct kv_json j;
    kv_json_init(&j);
    kv_json_open(&j, NULL, '{');
    kv_json_open(&j, "request", '{');
    kv_json_str(&j, "api-version", api != NULL ? api : "");
    kv_json_str(&j, "enc", enc);
    key_id(req, k->name, req->version[0] != '\0' ? req->version : NULL, kid, sizeof(kid));
    kv_json_str(&j, "kid", kid);
    if (nonce != NULL)
        kv_json_str(&j, "nonce", nonce);
    kv_json_close(&j, '}');
    kv_json_open(&j, "response", '{');
    kv_json_open(&j, "key", '{');
    kv_json_open(&j, "key", '{');
    key_id(req, k->name, k->version, kid, sizeof(kid));
    kv_json_str(&j, "kid", kid);
    kv_json_str(&j, "kty", ks_kty_name(k->kty, 0));
    key_ops_json(&j, k);
    if (k->kty == KS_KTY_RSA) {
        add_b64(&j, "n", &k->pub.n);
        add_b64(&j, "e", &k->pub.e);
    } else if (k->kty == KS_KTY_EC) {
        kv_json_str(&j, "crv", ks_crv_name(k->pub.crv));
        add_b64(&j, "x", &k->pub.x);
        add_b64(&j, "y", &k->pub.y);
    }
    kv_json_str(&j, "key_hsm", hsm);
    kv_json_close(&j, '}');
    attributes_json(&j, k, 0);
    tags_json(&j, &k->tags);
    release_policy_json(&j, &k->release_policy, 0);
    kv_json_close(&j, '}');
    kv_json_close(&j, '}');
    kv_json_close(&j, '}');
    return kv_json_take(&j, len);
}

/* Answer a refused attestation: Key Vault's message, then what kvmock found wrong (the
 * policy layer's clause, as a sentence). */
static void send_release_refusal(struct srv_req *req, enum pol_release r, const char *clause)
{
    char why[600];
    size_t n = (size_t)snprintf(why, sizeof(why), "%s", clause);
    if (n > 0 && n + 1 < sizeof(why) && why[n - 1] != '.')
        snprintf(why + n, sizeof(why) - n, ".");
    why[0] = (char)toupper((unsigned char)why[0]);
    if (r == POL_RELEASE_NOMEM) {
        srv_send_error(req, KV_ERR_NOMEM, NULL);
    } else if (r == POL_RELEASE_UNREACHABLE) {
        srv_send_errorf(req, KV_ERR_SKR_UNREACHABLE,
                        "AKV.SKR.1012: The specified attestation service cannot be reached. %s",
                        why);
    } else {
        srv_send_errorf(req, KV_ERR_SKR_ATTESTATION,
                        "Target environment attestation statement cannot be verified. %s", why);
    }
}

/* POST /keys/{name}/{version}/release: the key, wrapped for the key the attestation
 * token names, when the token meets the version's release policy. */
static void h_release(struct srv_req *req)
{
    struct field_error fe = {{0}};
    const char *target = NULL, *nonce = NULL, *enc_name = NULL;
    enum ks_release_enc enc = KS_RELEASE_CKM_RSA_AES_KEY_WRAP;
    if (before_release(req)) {
        /* as Key Vault answered release in an api-version that did not have it */
        srv_send_errorf(req, KV_ERR_BAD_PARAM,
                        "Release is not enabled in API version '%.32s': it needs 7.3-preview or "
                        "later.",
                        srv_query_get(req, "api-version"));
        return;
    }
    enum kv_status st = opt_string(req->body, "target", &target, &fe);
    if (st == KV_OK && (target == NULL || target[0] == '\0'))
        st = bad_field(&fe, "target", "is required: the attestation token of the environment");
    if (st == KV_OK)
        st = opt_string(req->body, "nonce", &nonce, &fe);
    if (st == KV_OK)
        st = opt_string(req->body, "enc", &enc_name, &fe);
    if (st == KV_OK && enc_name != NULL && ks_release_enc_parse(enc_name, &enc) != KV_OK)
        st = bad_field(&fe, "enc",
                       "must be CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or "
                       "RSA_AES_KEY_WRAP_384");
    if (st != KV_OK) {
        srv_send_error(req, st, fe.message);
        return;
    }

    struct ks_key *k = NULL, *released = NULL;
    struct kv_buf wrapped = {0};
    struct pol_release_target t = {0};
    char why[512] = "";
    for (int attempt = 0; attempt < RELEASE_TRIES; attempt++) {
        ks_key_free(k);
        k = NULL;
        pol_release_target_clear(&t);
        st = ks_key_get(req->srv->ks, req->vault, req->key_name, req->version, &k);
        if (st == KV_OK && (!k->attrs.exportable || !k->release_policy.set))
            st = KV_ERR_KEY_NOT_EXPORTABLE;
        if (st != KV_OK)
            break;
        enum pol_release r =
            pol_release_check(req->srv->pol, k->release_policy.data, strlen(k->release_policy.data),
                              target, (int64_t)time(NULL), &t, why, sizeof(why));
        if (r != POL_RELEASE_OK) {
            send_release_refusal(req, r, why);
            goto out;
        }
        st = ks_key_release(req->srv->ks, req->vault, req->key_name, k->version,
                            k->release_policy.data, enc, &t.n, &t.e, &released, &wrapped);
        if (st != KV_ERR_RELEASE_POLICY_CHANGED)
            break;
    }
    if (st == KV_ERR_BAD_PARAM) {
        srv_send_error(req, KV_ERR_SKR_ATTESTATION,
                       "Target environment attestation statement cannot be verified. Its "
                       "x-ms-runtime key is not an RSA public key of 2048 to 4096 bits.");
        goto out;
    }
    if (st != KV_OK) {
        send_key_error(req, st, "release");
        goto out;
    }
    const char *enc_text = ks_release_enc_name(enc);
    char *hsm = key_hsm(t.kid, enc_text, &wrapped), *payload = NULL, *jws = NULL;
    size_t len = 0;
    st = KV_ERR_NOMEM;
    if (hsm != NULL)
        payload = release_payload(req, released, enc_text, nonce, hsm, &len);
    if (payload != NULL)
        st = req->srv->signer != NULL ? srv_signer_sign(req->srv->signer, payload, len, &jws)
                                      : KV_ERR_INTERNAL;
    if (st == KV_OK) {
        struct kv_json j;
        kv_json_init(&j);
        kv_json_open(&j, NULL, '{');
        kv_json_str(&j, "value", jws);
        kv_json_close(&j, '}');
        srv_send_json_text(req, 200, &j);
    } else {
        srv_send_error(req, st, NULL);
    }
    free(jws);
    free(payload);
    free(hsm);
out:
    ks_key_free(k);
    ks_key_free(released);
    kv_buf_free(&wrapped);
    pol_release_target_clear(&t);
}

/* GET /keys/{name}/{version}/attestation (7.6): an attestation is the HSM's statement,
 * signed by the HSM's maker, that it made the key; kvmock has no hardware to make one,
 * in its managed HSMs either, and says so. */
static void h_attestation(struct srv_req *req)
{
    refuse_on_key(req, "Key attestation is not supported by kvmock: it is the hardware's "
                       "statement, signed by its maker, that it made the key, and kvmock has no "
                       "such hardware.");
}

/* Literal segments come before {name} and {version} so that they win; the
 * method decides between "POST /keys/restore" and an import named "restore". */
const struct srv_route srv_key_routes[] = {
    {"KeyList", "GET", "/keys", POL_KEYS_LIST, SRV_BODY_NONE, h_list},
    {"KeyRestore", "POST", "/keys/restore", POL_KEYS_RESTORE, SRV_BODY_JSON, h_restore},
    {"KeyCreate", "POST", "/keys/{name}/create", POL_KEYS_CREATE, SRV_BODY_JSON, h_create},
    {"KeyListVersions", "GET", "/keys/{name}/versions", POL_KEYS_LIST, SRV_BODY_NONE, h_versions},
    {"KeyBackup", "POST", "/keys/{name}/backup", POL_KEYS_BACKUP, SRV_BODY_NONE, h_backup},
    {"KeyRotate", "POST", "/keys/{name}/rotate", POL_KEYS_ROTATE, SRV_BODY_NONE, h_rotate},
    {"KeyRotationPolicyGet", "GET", "/keys/{name}/rotationpolicy", POL_KEYS_GETROTATIONPOLICY, SRV_BODY_NONE,
     h_policy_get},
    {"KeyRotationPolicySet", "PUT", "/keys/{name}/rotationpolicy", POL_KEYS_SETROTATIONPOLICY, SRV_BODY_JSON,
     h_policy_set},
    /* the TypeSpec-made clients (@azure/keyvault-keys 4.10) leave the version out */
    {"KeyRelease", "POST", "/keys/{name}/release", POL_KEYS_RELEASE, SRV_BODY_JSON, h_release},
    {"KeyGetAttestation", "GET", "/keys/{name}/attestation", POL_KEYS_GET, SRV_BODY_NONE,
     h_attestation},
    {"KeyGet", "GET", "/keys/{name}", POL_KEYS_GET, SRV_BODY_NONE, h_get},
    {"KeyImport", "PUT", "/keys/{name}", POL_KEYS_IMPORT, SRV_BODY_JSON, h_import},
    {"KeyDelete", "DELETE", "/keys/{name}", POL_KEYS_DELETE, SRV_BODY_NONE, h_delete},
    {"KeyUpdate", "PATCH", "/keys/{name}", POL_KEYS_UPDATE, SRV_BODY_JSON, h_update},
    {"KeyGet", "GET", "/keys/{name}/{version}", POL_KEYS_GET, SRV_BODY_NONE, h_get},
    {"KeyUpdate", "PATCH", "/keys/{name}/{version}", POL_KEYS_UPDATE, SRV_BODY_JSON, h_update},
    {"KeyRelease", "POST", "/keys/{name}/{version}/release", POL_KEYS_RELEASE, SRV_BODY_JSON, h_release},
    {"KeyGetAttestation", "GET", "/keys/{name}/{version}/attestation", POL_KEYS_GET, SRV_BODY_NONE,
     h_attestation},
    {"KeyEncrypt", "POST", "/keys/{name}/{version}/encrypt", POL_KEYS_ENCRYPT, SRV_BODY_JSON, h_encrypt},
    {"KeyDecrypt", "POST", "/keys/{name}/{version}/decrypt", POL_KEYS_DECRYPT, SRV_BODY_JSON, h_decrypt},
    {"KeySign", "POST", "/keys/{name}/{version}/sign", POL_KEYS_SIGN, SRV_BODY_JSON, h_sign},
    {"KeyVerify", "POST", "/keys/{name}/{version}/verify", POL_KEYS_VERIFY, SRV_BODY_JSON, h_verify},
    {"KeyWrap", "POST", "/keys/{name}/{version}/wrapkey", POL_KEYS_WRAP, SRV_BODY_JSON, h_wrap},
    {"KeyUnwrap", "POST", "/keys/{name}/{version}/unwrapkey", POL_KEYS_UNWRAP, SRV_BODY_JSON, h_unwrap},
    {"GetRandomBytes", "POST", "/rng", POL_KEYS_GET, SRV_BODY_JSON, h_rng},
    {"KeyListDeleted", "GET", "/deletedkeys", POL_KEYS_LIST, SRV_BODY_NONE, h_deleted_list},
    {"KeyGetDeleted", "GET", "/deletedkeys/{name}", POL_KEYS_GET, SRV_BODY_NONE, h_deleted_get},
    {"KeyPurge", "DELETE", "/deletedkeys/{name}", POL_KEYS_PURGE, SRV_BODY_NONE, h_purge, 204},
    {"KeyRecover", "POST", "/deletedkeys/{name}/recover", POL_KEYS_RECOVER, SRV_BODY_NONE, h_recover},
};

const size_t srv_key_routes_count = sizeof(srv_key_routes) / sizeof(srv_key_routes[0]);
