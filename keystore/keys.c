/* Key records and versions: create, get, list, list versions, key operations.
 *
 * Records are JSON text. A version record (db `keys`, key vault\0name\0version)
 * holds the public JWK parts, attributes, tags, key_ops (a bit set, "ops", and the
 * client's order of it, "ops_order", left out when it is the fixed order) and the sealed
 * private material; a head record (db `heads`, key vault\0name) names the current
 * version and the deleted state. Names in LMDB keys are lowercase, so lookups
 * are case-insensitive; records keep the original casing.
 */
#include <cjson/cJSON.h>
#include <limits.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "crypto.h"
#include "kv_json.h"
#include "kv_log.h"
#include "kv_str.h"
#include "store.h"
#include "vaults.h"

#define LOC_MAX (KS_VAULT_NAME_MAX + 1 + KS_NAME_MAX + 1 + KS_VERSION_LEN + 1)

/** A record location: vault\0name\0version (the version part may be absent). */
struct loc {
    char bytes[LOC_MAX];
    size_t head_len; /**< length of vault\0name */
    size_t len;      /**< length with \0version, when a version is set */
};

static void lower(char *dst, const char *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? (char)(src[i] - 'A' + 'a') : src[i];
}

/* Build vault\0name; the caller checked the lengths. */
static void loc_init(struct loc *l, const char *vault, const char *name)
{
    size_t vl = strlen(vault), nl = strlen(name);
    lower(l->bytes, vault, vl);
    l->bytes[vl] = '\0';
    lower(l->bytes + vl + 1, name, nl);
    l->head_len = vl + 1 + nl;
    l->len = l->head_len;
}

static void loc_set_version(struct loc *l, const char *version)
{
    l->bytes[l->head_len] = '\0';
    memcpy(l->bytes + l->head_len + 1, version, KS_VERSION_LEN);
    l->len = l->head_len + 1 + KS_VERSION_LEN;
}

/* The location of a head from its key in `heads` or `sweep`. @return 0 when it cannot be one. */
static int loc_of_head(struct loc *l, const MDB_val *k)
{
    if (k->mv_size >= LOC_MAX)
        return 0;
    memcpy(l->bytes, k->mv_data, k->mv_size);
    l->head_len = l->len = k->mv_size;
    return 1;
}

static int version_valid(const char *v)
{
    size_t n = 0;
    for (; v[n]; n++) {
        char c = v[n];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
            return 0;
    }
    return n == KS_VERSION_LEN;
}

/* A version as stored: 32 lowercase hex characters (backups must carry them so). */
static int version_lower(const char *v)
{
    if (!version_valid(v))
        return 0;
    for (const char *p = v; *p; p++) {
        if (*p >= 'A' && *p <= 'F')
            return 0;
    }
    return 1;
}

static void new_version(char out[KS_VERSION_LEN + 1])
{
    unsigned char raw[KS_VERSION_LEN / 2];
    randombytes_buf(raw, sizeof(raw));
    sodium_bin2hex(out, KS_VERSION_LEN + 1, raw, sizeof(raw));
}

/* ---- small JSON helpers ---------------------------------------------------- */

static int64_t jint(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    /* in range before the cast: a record from a backup blob is input */
    if (!cJSON_IsNumber(v) || !(v->valuedouble > -9.0e18 && v->valuedouble < 9.0e18))
        return 0;
    return (int64_t)v->valuedouble;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The order of a key_ops as a record holds it: 0 (the fixed order) when absent, as in the
 * records of kvmock before it kept the order, or when it is no 32-bit number. */
static uint32_t jorder(const cJSON *o)
{
    int64_t v = jint(o, "ops_order");
    return v > 0 && v <= (int64_t)UINT32_MAX ? (uint32_t)v : 0;
}

/* The order to keep for the set @p ops given as @p order: the codes of its operations as
 * they are shown, each once; 0 when that is the fixed order, which is then left out of the
 * record. */
static uint32_t order_kept(unsigned ops, uint32_t order)
{
    unsigned list[KS_OPS_MAX], set = 0;
    size_t n = ks_keyops_list(ops, order, list);
    uint32_t kept = 0;
    int fixed = 1;
    for (size_t i = 0; i < n; i++) {
        ks_keyops_add(&set, &kept, list[i]);
        fixed &= i == 0 || list[i] > list[i - 1];
    }
    return fixed ? 0 : kept;
}

static enum kv_status jbuf(const cJSON *o, const char *name, struct kv_buf *out)
{
    const char *s = jstr(o, name);
    if (s == NULL) {
        out->data = NULL;
        out->len = 0;
        return KV_OK;
    }
    return kv_b64url_decode(s, out) == KV_OK ? KV_OK : KV_ERR_STORE;
}

/* ---- keys ----------------------------------------------------------------------- */

void ks_release_policy_clear(struct ks_release_policy *rp)
{
    free(rp->content_type);
    free(rp->data);
    memset(rp, 0, sizeof(*rp));
}

static enum kv_status release_policy_copy(const struct ks_release_policy *src,
                                          struct ks_release_policy *dst)
{
    memset(dst, 0, sizeof(*dst));
    if (src == NULL || !src->set)
        return KV_OK;
    const char *ct = src->content_type != NULL && src->content_type[0] != '\0'
                         ? src->content_type
                         : KS_RELEASE_POLICY_CONTENT_TYPE;
    dst->content_type = strdup(ct);
    dst->data = strdup(src->data != NULL ? src->data : "");
    if (dst->content_type == NULL || dst->data == NULL) {
        ks_release_policy_clear(dst);
        return KV_ERR_NOMEM;
    }
    dst->set = 1;
    dst->immutable = src->immutable;
    return KV_OK;
}

/* A release policy as a version record keeps it: {"ct", "data", "imm"}. */
static enum kv_status release_policy_from_json(const cJSON *o, struct ks_release_policy *out)
{
    struct ks_release_policy rp = {0};
    if (o == NULL)
        return KV_OK;
    const char *ct = jstr(o, "ct"), *data = jstr(o, "data");
    if (!cJSON_IsObject(o) || ct == NULL || data == NULL)
        return KV_ERR_STORE;
    rp.set = 1;
    rp.immutable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "imm"));
    rp.content_type = (char *)ct;
    rp.data = (char *)data;
    return release_policy_copy(&rp, out);
}

void ks_key_free(struct ks_key *k)
{
    if (k == NULL)
        return;
    ks_pub_clear(&k->pub);
    ks_tags_clear(&k->tags);
    ks_release_policy_clear(&k->release_policy);
    free(k);
}

void ks_key_page_free(struct ks_key_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++)
        ks_key_free(p->items[i]);
    free(p->items);
    free(p);
}

static void set_recovery(struct ks_key *k, const struct ks_vault *v)
{
    k->recovery_level = ks_vault_recovery_level(v, &k->recoverable_days);
}

/* Parse a version record into a new key. */
static enum kv_status key_from_record(const MDB_val *val, const char *version,
                                      const struct ks_vault *vault, struct ks_key **out)
{
    enum kv_status st = KV_ERR_STORE;
    cJSON *o = cJSON_ParseWithLength(val->mv_data, val->mv_size);
    struct ks_key *k = calloc(1, sizeof(*k));
    if (k == NULL) {
        st = KV_ERR_NOMEM;
        goto out;
    }
    if (o == NULL)
        goto out;
    const char *name = jstr(o, "name"), *kty = jstr(o, "kty"), *crv = jstr(o, "crv");
    if (name == NULL || kty == NULL || ks_kty_parse(kty, &k->kty, &k->hsm) != KV_OK)
        goto out;
    snprintf(k->name, sizeof(k->name), "%s", name);
    snprintf(k->version, sizeof(k->version), "%s", version);
    k->ops = (unsigned)jint(o, "ops");
    k->ops_order = jorder(o);
    k->attrs.enabled = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabled"));
    k->attrs.exportable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "exportable"));
    k->attrs.nbf = jint(o, "nbf");
    k->attrs.exp = jint(o, "exp");
    k->attrs.created = jint(o, "created");
    k->attrs.updated = jint(o, "updated");
    k->pub.size_bits = (int)jint(o, "bits");
    if (crv != NULL && ks_crv_parse(crv, &k->pub.crv) != KV_OK)
        goto out;
    if (jbuf(o, "n", &k->pub.n) != KV_OK || jbuf(o, "e", &k->pub.e) != KV_OK ||
        jbuf(o, "x", &k->pub.x) != KV_OK || jbuf(o, "y", &k->pub.y) != KV_OK)
        goto out;
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(o, "tags");
    if (cJSON_IsObject(tags)) {
        st = ks_tags_from_json(tags, &k->tags);
        if (st != KV_OK)
            goto out;
    }
    st = release_policy_from_json(cJSON_GetObjectItemCaseSensitive(o, "rp"), &k->release_policy);
    if (st != KV_OK)
        goto out;
    set_recovery(k, vault);
    *out = k;
    k = NULL;
    st = KV_OK;
out:
    ks_key_free(k);
    cJSON_Delete(o);
    return st;
}

/* A head record: current version, deleted state and rotation policy. */
struct head {
    char name[KS_NAME_MAX + 1];
    char current[KS_VERSION_LEN + 1];
    int64_t deleted_date;
    int64_t scheduled_purge;
    struct ks_rotation_policy policy;
};

enum head_state { HEAD_LIVE, HEAD_DELETED, HEAD_GONE };

/* A soft-deleted key whose scheduled purge date has passed is gone, whether or
 * not a sweep has removed its records yet. */
static enum head_state head_state(const struct head *h, int64_t now)
{
    if (h->deleted_date == 0)
        return HEAD_LIVE;
    return now >= h->scheduled_purge ? HEAD_GONE : HEAD_DELETED;
}

static void policy_from_json(const cJSON *o, struct ks_rotation_policy *p)
{
    memset(p, 0, sizeof(*p));
    if (!cJSON_IsObject(o))
        return;
    p->is_set = 1;
    snprintf(p->expiry, sizeof(p->expiry), "%s", jstr(o, "expiry") ? jstr(o, "expiry") : "");
    p->expiry_s = jint(o, "expiry_s");
    p->created = jint(o, "created");
    p->updated = jint(o, "updated");
    const cJSON *a;
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(o, "actions"))
    {
        if (p->n_actions == KS_POLICY_ACTIONS_MAX)
            break;
        struct ks_lifetime_action *la = &p->actions[p->n_actions++];
        la->rotate = jint(a, "rotate") != 0;
        snprintf(la->after_create, sizeof(la->after_create), "%s",
                 jstr(a, "ac") ? jstr(a, "ac") : "");
        la->after_create_s = jint(a, "ac_s");
        snprintf(la->before_expiry, sizeof(la->before_expiry), "%s",
                 jstr(a, "be") ? jstr(a, "be") : "");
        la->before_expiry_s = jint(a, "be_s");
    }
}

static cJSON *policy_to_json(const struct ks_rotation_policy *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *actions = o ? cJSON_AddArrayToObject(o, "actions") : NULL;
    if (actions == NULL || !cJSON_AddStringToObject(o, "expiry", p->expiry) ||
        !cJSON_AddNumberToObject(o, "expiry_s", (double)p->expiry_s) ||
        !cJSON_AddNumberToObject(o, "created", (double)p->created) ||
        !cJSON_AddNumberToObject(o, "updated", (double)p->updated))
        goto fail;
    for (size_t i = 0; i < p->n_actions; i++) {
        const struct ks_lifetime_action *la = &p->actions[i];
        cJSON *a = cJSON_CreateObject();
        if (a == NULL || !cJSON_AddItemToArray(actions, a) ||
            !cJSON_AddNumberToObject(a, "rotate", la->rotate) ||
            !cJSON_AddStringToObject(a, "ac", la->after_create) ||
            !cJSON_AddNumberToObject(a, "ac_s", (double)la->after_create_s) ||
            !cJSON_AddStringToObject(a, "be", la->before_expiry) ||
            !cJSON_AddNumberToObject(a, "be_s", (double)la->before_expiry_s))
            goto fail;
    }
    return o;
fail:
    cJSON_Delete(o);
    return NULL;
}

static enum kv_status head_read(struct ks_txn *tx, const struct loc *l, struct head *out)
{
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_heads, l->bytes, l->head_len, &v);
    if (st != KV_OK)
        return st;
    if (ks_memo_get(tx->env->head_memo, l->bytes, l->head_len, v.mv_data, v.mv_size, out))
        return KV_OK;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (o == NULL)
        return KV_ERR_STORE;
    const char *name = jstr(o, "name"), *cur = jstr(o, "current");
    st = KV_ERR_STORE;
    if (name != NULL && cur != NULL && strlen(cur) == KS_VERSION_LEN) {
        memset(out, 0, sizeof(*out));
        snprintf(out->name, sizeof(out->name), "%s", name);
        memcpy(out->current, cur, KS_VERSION_LEN + 1);
        out->deleted_date = jint(o, "deleted");
        out->scheduled_purge = jint(o, "purge");
        policy_from_json(cJSON_GetObjectItemCaseSensitive(o, "policy"), &out->policy);
        ks_memo_put(tx->env->head_memo, l->bytes, l->head_len, v.mv_data, v.mv_size, out);
        st = KV_OK;
    }
    cJSON_Delete(o);
    return st;
}

struct ks_memo *ks_head_memo_new(size_t slots)
{
    return ks_memo_new(slots, sizeof(struct head), NULL, NULL);
}

/* Whether the sweep has to look at a key: deleted (its purge date will come)
 * or with a rotation policy that rotates. The `sweep` table holds exactly
 * these heads, so a sweep reads them and not every key of the store. */
static int sweep_wanted(const struct head *h)
{
    if (h->deleted_date != 0 || h->scheduled_purge != 0)
        return 1;
    for (size_t i = 0; h->policy.is_set && i < h->policy.n_actions; i++)
        if (h->policy.actions[i].rotate)
            return 1;
    return 0;
}

static enum kv_status sweep_mark(struct ks_txn *tx, const struct loc *l, const struct head *h)
{
    if (sweep_wanted(h))
        return ks_txn_put(tx, tx->env->db_sweep, l->bytes, l->head_len, "", 0);
    return ks_txn_del(tx, tx->env->db_sweep, l->bytes, l->head_len);
}

static enum kv_status head_write(struct ks_txn *tx, const struct loc *l, const struct head *h)
{
    enum kv_status st = KV_ERR_NOMEM;
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    /* a live key's head leaves out its deleted and purge dates (0) */
    if (o == NULL || !cJSON_AddStringToObject(o, "name", h->name) ||
        !cJSON_AddStringToObject(o, "current", h->current) ||
        (h->deleted_date != 0 &&
         !cJSON_AddNumberToObject(o, "deleted", (double)h->deleted_date)) ||
        (h->scheduled_purge != 0 &&
         !cJSON_AddNumberToObject(o, "purge", (double)h->scheduled_purge)))
        goto out;
    if (h->policy.is_set) {
        cJSON *pol = policy_to_json(&h->policy);
        if (pol == NULL || !cJSON_AddItemToObject(o, "policy", pol)) {
            cJSON_Delete(pol);
            goto out;
        }
    }
    json = cJSON_PrintUnformatted(o);
    if (json == NULL)
        goto out;
    st = ks_txn_put(tx, tx->env->db_heads, l->bytes, l->head_len, json, strlen(json));
    if (st == KV_OK)
        st = sweep_mark(tx, l, h);
out:
    cJSON_Delete(o);
    cJSON_free(json);
    return st;
}

/* Remove a key for good: every version record, the head, and cached material. */
static enum kv_status purge_records(struct ks_txn *tx, const struct loc *l)
{
    char prefix[LOC_MAX];
    memcpy(prefix, l->bytes, l->head_len);
    prefix[l->head_len] = '\0';
    size_t plen = l->head_len + 1;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_keys, &cur) != 0)
        return KV_ERR_STORE;
    int rc;
    for (;;) {
        MDB_val k = {plen, prefix}, v;
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc != 0 || k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        ks_cache_remove(tx->env->cache, k.mv_data, k.mv_size);
        rc = mdb_cursor_del(cur, 0);
        if (rc == MDB_MAP_FULL)
            tx->map_full = 1;
        if (rc != 0)
            break;
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND)
        return KV_ERR_STORE;
    enum kv_status st = ks_txn_del(tx, tx->env->db_sweep, l->bytes, l->head_len);
    return st != KV_OK ? st : ks_txn_del(tx, tx->env->db_heads, l->bytes, l->head_len);
}

/* ---- create -------------------------------------------------------------------- */

static unsigned default_ops(enum ks_kty kty)
{
    switch (kty) {
    case KS_KTY_RSA:
        return KS_OP_ENCRYPT | KS_OP_DECRYPT | KS_OP_SIGN | KS_OP_VERIFY | KS_OP_WRAP |
               KS_OP_UNWRAP;
    case KS_KTY_EC:
        return KS_OP_SIGN | KS_OP_VERIFY;
    case KS_KTY_OCT:
        return KS_OP_ENCRYPT | KS_OP_DECRYPT | KS_OP_WRAP | KS_OP_UNWRAP;
    }
    return 0;
}

/* Build the JSON text of a version record. */
static void put_b64(struct kv_json *j, const char *name, const struct kv_buf *b)
{
    if (b->len > 0)
        kv_json_b64url(j, name, b->data, b->len);
}

/* A version's record. It is written on every create, so it goes through the
 * JSON writer rather than a cJSON tree; readers parse it with cJSON. */
static enum kv_status record_json(const struct ks_key *k, const struct kv_buf *sealed,
                                  char **out)
{
    const char *crv = ks_crv_name(k->pub.crv);
    struct kv_json j;
    kv_json_init(&j);
    /* Members at their default (false, 0, no tags) are left out: every reader
     * takes a missing member as its default, and a smaller record fits more
     * versions in a page. */
    kv_json_open(&j, NULL, '{');
    kv_json_str(&j, "name", k->name);
    kv_json_str(&j, "kty", ks_kty_name(k->kty, k->hsm));
    kv_json_int(&j, "ops", k->ops);
    if (k->ops_order != 0)
        kv_json_int(&j, "ops_order", k->ops_order);
    kv_json_bool(&j, "enabled", k->attrs.enabled);
    if (k->attrs.exportable)
        kv_json_bool(&j, "exportable", 1);
    if (k->attrs.nbf != 0)
        kv_json_int(&j, "nbf", k->attrs.nbf);
    if (k->attrs.exp != 0)
        kv_json_int(&j, "exp", k->attrs.exp);
    kv_json_int(&j, "created", k->attrs.created);
    kv_json_int(&j, "updated", k->attrs.updated);
    kv_json_int(&j, "bits", k->pub.size_bits);
    if (crv != NULL)
        kv_json_str(&j, "crv", crv);
    put_b64(&j, "n", &k->pub.n);
    put_b64(&j, "e", &k->pub.e);
    put_b64(&j, "x", &k->pub.x);
    put_b64(&j, "y", &k->pub.y);
    put_b64(&j, "sealed", sealed);
    if (k->tags.count > 0) {
        kv_json_open(&j, "tags", '{');
        for (size_t i = 0; i < k->tags.count; i++)
            kv_json_str(&j, k->tags.names[i], k->tags.values[i]);
        kv_json_close(&j, '}');
    }
    if (k->release_policy.set) {
        kv_json_open(&j, "rp", '{');
        kv_json_str(&j, "ct", k->release_policy.content_type);
        kv_json_str(&j, "data", k->release_policy.data);
        if (k->release_policy.immutable)
            kv_json_bool(&j, "imm", 1);
        kv_json_close(&j, '}');
    }
    kv_json_close(&j, '}');
    *out = kv_json_take(&j, NULL);
    return *out != NULL ? KV_OK : KV_ERR_NOMEM;
}

struct create_arg {
    const char *vault;
    struct loc *l;
    struct ks_key *key; /* filled: name, version, pub, attrs, tags, ops */
    const char *record;
    int existing_only; /* rotate: the key must exist and be live */
    int new_only;      /* create if absent: a live key is KV_ERR_KEY_EXISTS */
    const char *if_current; /* NULL, or only while this is the current version */
};

static enum kv_status create_fn(struct ks_txn *tx, void *arg)
{
    struct create_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    /* The sku decides which keys a vault makes. A rotation adds a version to a key the
     * vault holds, whatever its sku has become since: else a key whose rotation policy
     * rotates would fail at every sweep, and hold up the sweep's other work. */
    if (!vault.premium && !a->existing_only) {
        if (a->key->attrs.exportable)
            return KV_ERR_SKR_PREMIUM;
        if (a->key->hsm)
            return KV_ERR_HSM_STANDARD;
    }
    struct head h;
    st = head_read(tx, a->l, &h);
    if (st != KV_OK && st != KV_ERR_KEY_NOT_FOUND)
        return st;
    if (st == KV_OK) {
        switch (head_state(&h, ks_now())) {
        case HEAD_LIVE:
            if (a->new_only)
                return KV_ERR_KEY_EXISTS;
            break;
        case HEAD_DELETED:
            return a->existing_only ? KV_ERR_KEY_NOT_FOUND : KV_ERR_KEY_DELETED_RECOVERABLE;
        case HEAD_GONE:
            if (a->existing_only)
                return KV_ERR_KEY_NOT_FOUND;
            st = purge_records(tx, a->l);
            if (st != KV_OK)
                return st;
            st = KV_ERR_KEY_NOT_FOUND;
            break;
        }
    }
    /* A rotation the sweep found due is done once: when the version it judged is no longer
     * the current one (another sweep or a client rotated the key since), the key the sweep
     * saw is not there any more. */
    if (st == KV_OK && a->if_current != NULL && strcmp(h.current, a->if_current) != 0)
        return KV_ERR_KEY_NOT_FOUND;
    if (st == KV_ERR_KEY_NOT_FOUND) {
        if (a->existing_only)
            return st;
        memset(&h, 0, sizeof(h));
        snprintf(h.name, sizeof(h.name), "%s", a->key->name);
    }
    memcpy(h.current, a->key->version, KS_VERSION_LEN + 1);
    st = ks_txn_put(tx, tx->env->db_keys, a->l->bytes, a->l->len, a->record, strlen(a->record));
    if (st == KV_OK)
        st = head_write(tx, a->l, &h);
    if (st == KV_OK)
        set_recovery(a->key, &vault);
    return st;
}

static enum kv_status tags_copy(const struct ks_tags *src, struct ks_tags *dst)
{
    struct ks_tags t = {0};
    if (src->count == 0) {
        *dst = t;
        return KV_OK;
    }
    t.names = calloc(src->count, sizeof(char *));
    t.values = calloc(src->count, sizeof(char *));
    if (t.names == NULL || t.values == NULL)
        goto fail;
    for (size_t i = 0; i < src->count; i++) {
        t.names[i] = strdup(src->names[i]);
        t.values[i] = strdup(src->values[i]);
        t.count++;
        if (t.names[i] == NULL || t.values[i] == NULL)
            goto fail;
    }
    *dst = t;
    return KV_OK;
fail:
    ks_tags_clear(&t);
    free(t.names);
    free(t.values);
    return KV_ERR_NOMEM;
}

/* ---- parsed versions, remembered by their record bytes (memo.h) ------------------- */

static int key_copy(void *dst, const void *src)
{
    const struct ks_key *s = src;
    struct ks_key *d = dst;
    *d = *s;
    memset(&d->pub.n, 0, sizeof(d->pub.n));
    memset(&d->pub.e, 0, sizeof(d->pub.e));
    memset(&d->pub.x, 0, sizeof(d->pub.x));
    memset(&d->pub.y, 0, sizeof(d->pub.y));
    memset(&d->tags, 0, sizeof(d->tags));
    memset(&d->release_policy, 0, sizeof(d->release_policy));
    const struct kv_buf *from[] = {&s->pub.n, &s->pub.e, &s->pub.x, &s->pub.y};
    struct kv_buf *to[] = {&d->pub.n, &d->pub.e, &d->pub.x, &d->pub.y};
    for (size_t i = 0; i < 4; i++) {
        if (from[i]->len > 0 && kv_buf_dup(from[i]->data, from[i]->len, to[i]) != KV_OK) {
            ks_pub_clear(&d->pub);
            return -1;
        }
    }
    if (tags_copy(&s->tags, &d->tags) != KV_OK) {
        ks_pub_clear(&d->pub);
        return -1;
    }
    if (release_policy_copy(&s->release_policy, &d->release_policy) != KV_OK) {
        ks_pub_clear(&d->pub);
        ks_tags_clear(&d->tags);
        return -1;
    }
    return 0;
}

static void key_clear(void *obj)
{
    struct ks_key *k = obj;
    ks_pub_clear(&k->pub);
    ks_tags_clear(&k->tags);
    ks_release_policy_clear(&k->release_policy);
}

struct ks_memo *ks_key_memo_new(size_t slots)
{
    return ks_memo_new(slots, sizeof(struct ks_key), key_copy, key_clear);
}

/* key_from_record(), through the memo: a version read again skips the parsing. */
static enum kv_status key_read(struct ks_env *env, const MDB_val *val, const char *version,
                               const struct ks_vault *vault, struct ks_key **out)
{
    size_t vlen = strlen(version);
    struct ks_key *k = calloc(1, sizeof(*k));
    if (k != NULL && ks_memo_get(env->key_memo, version, vlen, val->mv_data, val->mv_size, k)) {
        set_recovery(k, vault);
        *out = k;
        return KV_OK;
    }
    free(k);
    enum kv_status st = key_from_record(val, version, vault, out);
    if (st == KV_OK)
        ks_memo_put(env->key_memo, version, vlen, val->mv_data, val->mv_size, *out);
    return st;
}

struct vault_takes_arg {
    const char *vault;
    int hsm_key;     /* a hardware key that is not exportable (those get AKV.SKR's answers) */
    int managed_hsm; /* out: the vault is a Managed HSM, whose every key is a hardware key */
};

/* Whether the vault exists and takes the key (create_fn decides again, when it writes). */
static enum kv_status vault_takes_fn(struct ks_txn *tx, void *arg)
{
    struct vault_takes_arg *a = arg;
    struct ks_vault v;
    enum kv_status st = ks_vault_read(tx, a->vault, &v);
    a->managed_hsm = st == KV_OK && v.hsm;
    return st == KV_OK && a->hsm_key && !v.premium ? KV_ERR_HSM_STANDARD : st;
}

/* What a new version is made of, besides its material. */
struct version_spec {
    enum ks_kty kty;
    int hsm;
    unsigned ops;
    uint32_t ops_order; /* 0: the fixed order */
    struct ks_attrs attrs;
    const struct ks_tags *tags;
    int existing_only;
    int new_only;
    const struct ks_release_policy *release_policy; /* NULL: none */
    const char *if_current;                         /* as in struct create_arg */
};

/* Secure key release's rules for a new version, those that need no vault. A new version
 * of an exportable key that names no policy takes its current version's, as the policy
 * is required only of a key's first version; @p inherited then holds it. */
static enum kv_status release_rules(struct ks_env *env, const char *vault, const char *name,
                                    struct version_spec *spec, struct ks_key **inherited)
{
    if (spec->attrs.exportable && spec->hsm &&
        (spec->release_policy == NULL || !spec->release_policy->set) &&
        ks_key_get(env, vault, name, NULL, inherited) == KV_OK) {
        if ((*inherited)->attrs.exportable && (*inherited)->release_policy.set)
            spec->release_policy = &(*inherited)->release_policy;
    }
    int has_policy = spec->release_policy != NULL && spec->release_policy->set;
    if (!spec->attrs.exportable)
        return has_policy ? KV_ERR_SKR_POLICY_NOT_EXPORTABLE : KV_OK;
    if (!spec->hsm)
        return KV_ERR_SKR_NOT_HSM;
    return has_policy ? KV_OK : KV_ERR_SKR_NO_POLICY;
}

/* Seal material @p m (consumed) and store it as a new version of vault/name. */
static enum kv_status store_version(struct ks_env *env, const char *vault, const char *name,
                                    struct ks_material *m, const struct version_spec *spec,
                                    struct ks_key **out)
{
    struct kv_buf priv = {0}, sealed = {0};
    char *record = NULL;
    struct loc l;
    enum kv_status st = KV_ERR_NOMEM;
    struct ks_key *k = calloc(1, sizeof(*k));
    if (k == NULL)
        goto out;
    st = ks_material_public(m, &k->pub);
    if (st != KV_OK)
        goto out;
    snprintf(k->name, sizeof(k->name), "%s", name);
    new_version(k->version);
    k->kty = spec->kty;
    k->hsm = spec->hsm;
    k->ops = spec->ops;
    k->ops_order = order_kept(spec->ops, spec->ops_order);
    k->attrs = spec->attrs;
    k->attrs.created = k->attrs.updated = ks_now();
    st = tags_copy(spec->tags, &k->tags);
    if (st == KV_OK)
        st = release_policy_copy(spec->release_policy, &k->release_policy);
    if (st != KV_OK)
        goto out;

    loc_init(&l, vault, name);
    loc_set_version(&l, k->version);
    st = ks_material_serialize(m, &priv);
    if (st != KV_OK)
        goto out;
    st = ks_seal(env->root_key, l.bytes, l.len, priv.data, priv.len, &sealed);
    if (st != KV_OK)
        goto out;
    st = record_json(k, &sealed, &record);
    if (st != KV_OK)
        goto out;

    struct create_arg a = {.vault = vault,
                           .l = &l,
                           .key = k,
                           .record = record,
                           .existing_only = spec->existing_only,
                           .new_only = spec->new_only,
                           .if_current = spec->if_current};
    st = ks_txn_write(env, create_fn, &a);
    if (st != KV_OK)
        goto out;
    /* The cache fills on use, not on create: keys made in bulk and never used
     * (tests, labs) would otherwise hold memory up to the cache's capacity. */
    *out = k;
    k = NULL;
out:
    ks_material_free(m);
    kv_buf_wipe(&priv);
    kv_buf_free(&sealed);
    free(record);
    ks_key_free(k);
    return st;
}

enum kv_status ks_key_create(struct ks_env *env, const char *vault, const char *name,
                             const struct ks_create *p, struct ks_key **out)
{
    if (!ks_key_name_valid(name))
        return KV_ERR_BAD_KEY_NAME;
    /* Refuse an unknown vault, or one that takes no such key, before spending seconds on
     * an RSA key. */
    struct vault_takes_arg takes = {vault, p->hsm && !p->attrs.exportable, 0};
    enum kv_status st = ks_txn_read(env, vault_takes_fn, &takes);
    if (st != KV_OK)
        return st;
    /* a Managed HSM answers a request for RSA, EC or oct with RSA-HSM, EC-HSM or oct-HSM */
    struct version_spec spec = {.kty = p->kty,
                                .hsm = p->hsm || takes.managed_hsm,
                                .ops = p->ops_set ? p->ops : default_ops(p->kty),
                                .ops_order = p->ops_set ? p->ops_order : 0,
                                .attrs = p->attrs,
                                .tags = &p->tags,
                                .new_only = p->new_only,
                                .release_policy = p->release_policy};
    struct ks_key *current = NULL;
    st = release_rules(env, vault, name, &spec, &current);
    if (st != KV_OK) {
        ks_key_free(current);
        return st;
    }
    int bits = p->size_bits;
    if (bits == 0)
        bits = p->kty == KS_KTY_OCT ? 256 : 2048;
    struct ks_material *m = NULL;
    st = ks_material_generate(p->kty, bits, p->exponent ? p->exponent : 65537,
                              p->crv != KS_CRV_NONE ? p->crv : KS_CRV_P256, &m);
    if (st == KV_OK)
        st = store_version(env, vault, name, m, &spec, out);
    ks_key_free(current);
    return st;
}

static enum kv_status byok_open(struct ks_env *env, const char *vault, const struct ks_byok *b,
                                struct ks_jwk *jwk);

enum kv_status ks_key_import(struct ks_env *env, const char *vault, const char *name,
                             const struct ks_import *p, struct ks_key **out)
{
    if (!ks_key_name_valid(name))
        return KV_ERR_BAD_KEY_NAME;
    /* a hardware key in a standard vault is refused before its key is built or unwrapped,
     * as a create's is */
    struct vault_takes_arg takes = {vault, p->hsm && !p->attrs.exportable, 0};
    enum kv_status st = ks_txn_read(env, vault_takes_fn, &takes);
    if (st != KV_OK)
        return st;
    struct version_spec spec = {.kty = p->jwk.kty,
                                .hsm = p->hsm || takes.managed_hsm,
                                .ops = p->ops_set ? p->ops : default_ops(p->jwk.kty),
                                .ops_order = p->ops_set ? p->ops_order : 0,
                                .attrs = p->attrs,
                                .tags = &p->tags,
                                .release_policy = p->release_policy};
    struct ks_key *current = NULL;
    st = release_rules(env, vault, name, &spec, &current);
    struct ks_material *m = NULL;
    struct ks_jwk opened = {.kty = p->jwk.kty, .crv = p->jwk.crv};
    if (st == KV_OK && p->byok != NULL)
        st = byok_open(env, vault, p->byok, &opened);
    if (st == KV_OK)
        st = ks_material_from_jwk(p->byok != NULL ? &opened : &p->jwk, &m);
    ks_jwk_wipe(&opened);
    if (st == KV_OK)
        st = store_version(env, vault, name, m, &spec, out);
    ks_key_free(current);
    return st;
}

/* ---- get ------------------------------------------------------------------------- */

struct get_arg {
    const char *vault;
    struct loc *l;
    const char *version; /* NULL or "" = current */
    struct ks_key *key;  /* out */
};

/* Resolve the live head and the version to read; sets the version in the loc. */
static enum kv_status resolve_version(struct ks_txn *tx, struct loc *l, const char *version,
                                      char resolved[KS_VERSION_LEN + 1])
{
    struct head h;
    enum kv_status st = head_read(tx, l, &h);
    if (st != KV_OK)
        return st;
    if (head_state(&h, ks_now()) != HEAD_LIVE)
        return KV_ERR_KEY_NOT_FOUND;
    if (version == NULL || version[0] == '\0') {
        memcpy(resolved, h.current, KS_VERSION_LEN + 1);
    } else {
        if (!version_valid(version))
            return KV_ERR_KEY_NOT_FOUND;
        lower(resolved, version, KS_VERSION_LEN);
        resolved[KS_VERSION_LEN] = '\0';
    }
    loc_set_version(l, resolved);
    return KV_OK;
}

static enum kv_status get_fn(struct ks_txn *tx, void *arg)
{
    struct get_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    char version[KS_VERSION_LEN + 1];
    st = resolve_version(tx, a->l, a->version, version);
    if (st != KV_OK)
        return st;
    MDB_val v;
    st = ks_txn_get(tx, tx->env->db_keys, a->l->bytes, a->l->len, &v);
    if (st != KV_OK)
        return st;
    return key_read(tx->env, &v, version, &vault, &a->key);
}

static int names_fit(const char *vault, const char *name)
{
    return strlen(vault) <= KS_VAULT_NAME_MAX && strlen(name) <= KS_NAME_MAX && name[0] != '\0';
}

enum kv_status ks_key_get(struct ks_env *env, const char *vault, const char *name,
                          const char *version, struct ks_key **out)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct get_arg a = {vault, &l, version, NULL};
    enum kv_status st = ks_txn_read(env, get_fn, &a);
    if (st == KV_OK)
        *out = a.key;
    return st;
}

/* ---- lists ----------------------------------------------------------------------- */

struct list_arg {
    const char *vault;
    const char *name; /* NULL: list keys; else list this key's versions */
    int deleted;      /* list soft-deleted keys instead of live ones */
    const unsigned char *after;
    size_t after_len;
    int max;
    struct ks_key_page *page;
};

static enum kv_status page_add(struct ks_key_page *p, struct ks_key *k, int max)
{
    if (p->items == NULL) {
        p->items = calloc((size_t)max, sizeof(*p->items));
        if (p->items == NULL) {
            ks_key_free(k);
            return KV_ERR_NOMEM;
        }
    }
    p->items[p->count++] = k;
    return KV_OK;
}

/* Read a head record from a list scan. @return 1 when it is in the wanted state. */
static int head_listed(const MDB_val *v, int deleted, struct head *h)
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    const char *cur = o ? jstr(o, "current") : NULL;
    int ok = cur != NULL && strlen(cur) == KS_VERSION_LEN;
    if (ok) {
        memset(h, 0, sizeof(*h));
        memcpy(h->current, cur, KS_VERSION_LEN + 1);
        h->deleted_date = jint(o, "deleted");
        h->scheduled_purge = jint(o, "purge");
        ok = head_state(h, ks_now()) == (deleted ? HEAD_DELETED : HEAD_LIVE);
    }
    cJSON_Delete(o);
    return ok;
}

/* Read the item a list entry stands for, or set *item to NULL to skip the entry. */
static enum kv_status list_item(struct ks_txn *tx, const struct list_arg *a,
                                const struct ks_vault *vault, const MDB_val *k, const MDB_val *v,
                                size_t prefix_len, struct ks_key **item)
{
    size_t rest = k->mv_size - prefix_len;
    const char *suffix = (const char *)k->mv_data + prefix_len;
    char version[KS_VERSION_LEN + 1];
    *item = NULL;
    if (a->name != NULL) {
        /* A version of the key. */
        if (rest != KS_VERSION_LEN)
            return KV_OK;
        memcpy(version, suffix, KS_VERSION_LEN);
        version[KS_VERSION_LEN] = '\0';
        return key_read(tx->env, v, version, vault, item);
    }
    /* A key: its head, if in the wanted state, names the current version. */
    struct head h;
    if (rest > KS_NAME_MAX || memchr(suffix, 0, rest) != NULL || !head_listed(v, a->deleted, &h))
        return KV_OK;
    memcpy(version, h.current, KS_VERSION_LEN + 1);
    struct loc kl;
    memcpy(kl.bytes, k->mv_data, k->mv_size);
    kl.head_len = k->mv_size;
    loc_set_version(&kl, version);
    MDB_val rv;
    enum kv_status st = ks_txn_get(tx, tx->env->db_keys, kl.bytes, kl.len, &rv);
    if (st == KV_OK)
        st = key_read(tx->env, &rv, version, vault, item);
    if (st == KV_OK && a->deleted) {
        (*item)->deleted_date = h.deleted_date;
        (*item)->scheduled_purge = h.scheduled_purge;
    }
    return st;
}

static enum kv_status list_fn(struct ks_txn *tx, void *arg)
{
    struct list_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;

    struct loc l;
    loc_init(&l, a->vault, a->name ? a->name : "");
    MDB_dbi dbi = tx->env->db_heads;
    size_t prefix_len = strlen(vault.name) + 1; /* vault\0 */
    if (a->name != NULL) {
        struct head h;
        st = head_read(tx, &l, &h);
        if (st != KV_OK)
            return st;
        if (head_state(&h, ks_now()) != HEAD_LIVE)
            return KV_ERR_KEY_NOT_FOUND;
        dbi = tx->env->db_keys;
        l.bytes[l.head_len] = '\0';
        prefix_len = l.head_len + 1; /* vault\0name\0 */
    }

    /* Start at prefix + after, so a page never scans from the start. */
    char start[LOC_MAX + KS_NAME_MAX];
    memcpy(start, l.bytes, prefix_len);
    memcpy(start + prefix_len, a->after, a->after_len);
    MDB_val k = {prefix_len + a->after_len, start}, v;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, dbi, &cur) != 0)
        return KV_ERR_STORE;

    char last[KS_NAME_MAX + 1];
    size_t last_len = 0;
    int more = 0;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < prefix_len || memcmp(k.mv_data, l.bytes, prefix_len) != 0)
            break;
        size_t rest = k.mv_size - prefix_len;
        if (rest == a->after_len && memcmp((char *)k.mv_data + prefix_len, a->after, rest) == 0)
            continue; /* the token's own entry ended the previous page */
        struct ks_key *item = NULL;
        st = list_item(tx, a, &vault, &k, &v, prefix_len, &item);
        if (st != KV_OK || item == NULL)
            continue;
        if (a->page->count == (size_t)a->max) {
            ks_key_free(item);
            more = 1;
            break;
        }
        st = page_add(a->page, item, a->max);
        last_len = rest < sizeof(last) ? rest : sizeof(last);
        memcpy(last, (char *)k.mv_data + prefix_len, last_len);
    }
    mdb_cursor_close(cur);
    if (st != KV_OK)
        return st;
    if (rc != 0 && rc != MDB_NOTFOUND)
        return KV_ERR_STORE;
    a->page->next[0] = '\0';
    if (more)
        sodium_bin2hex(a->page->next, sizeof(a->page->next), (unsigned char *)last, last_len);
    return KV_OK;
}

static enum kv_status list_common(struct ks_env *env, const char *vault, const char *name,
                                  int deleted, const char *skiptoken, int max,
                                  struct ks_key_page **out)
{
    if (max < 1 || max > KS_PAGE_MAX)
        return KV_ERR_BAD_MAXRESULTS;
    if (strlen(vault) > KS_VAULT_NAME_MAX)
        return KV_ERR_VAULT_NOT_FOUND;
    if (name != NULL && !names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    unsigned char after[KS_NAME_MAX + 1];
    size_t after_len = 0;
    if (skiptoken != NULL && skiptoken[0] != '\0') {
        size_t tl = strlen(skiptoken);
        const char *end = NULL;
        if (tl > 2 * KS_NAME_MAX || tl % 2 != 0 ||
            sodium_hex2bin(after, sizeof(after), skiptoken, tl, NULL, &after_len, &end) != 0 ||
            end != skiptoken + tl || after_len == 0 || memchr(after, 0, after_len) != NULL)
            return KV_ERR_BAD_SKIPTOKEN;
    }
    struct ks_key_page *page = calloc(1, sizeof(*page));
    if (page == NULL)
        return KV_ERR_NOMEM;
    struct list_arg a = {vault, name, deleted, after, after_len, max, page};
    enum kv_status st = ks_txn_read(env, list_fn, &a);
    if (st != KV_OK) {
        ks_key_page_free(page);
        return st;
    }
    *out = page;
    return KV_OK;
}

enum kv_status ks_key_list(struct ks_env *env, const char *vault, const char *skiptoken, int max,
                           struct ks_key_page **out)
{
    return list_common(env, vault, NULL, 0, skiptoken, max, out);
}

enum kv_status ks_deleted_list(struct ks_env *env, const char *vault, const char *skiptoken,
                               int max, struct ks_key_page **out)
{
    return list_common(env, vault, NULL, 1, skiptoken, max, out);
}

enum kv_status ks_key_list_versions(struct ks_env *env, const char *vault, const char *name,
                                    const char *skiptoken, int max, struct ks_key_page **out)
{
    return list_common(env, vault, name, 0, skiptoken, max, out);
}

/* ---- key operations ------------------------------------------------------------ */

struct op_arg {
    const char *vault;
    struct loc *l;
    const char *version;
    unsigned op;
    enum ks_kty kty;
    char resolved[KS_VERSION_LEN + 1];
    char stored_name[KS_NAME_MAX + 1];
    struct kv_buf sealed; /* copied out of the map when the cache misses */
    int need_sealed;
    unsigned key_ops; /* out: the version's key_ops */
    int hsm;          /* out: a hardware key */
};

/* The operations a key's nbf/exp window limits. As in Key Vault, a version outside it
 * still decrypts, unwraps and verifies: what was made while it was valid stays readable,
 * and a key can be tried before its nbf. */
#define DATED_OPS (KS_OP_ENCRYPT | KS_OP_WRAP | KS_OP_SIGN)

static enum kv_status op_fn(struct ks_txn *tx, void *arg)
{
    struct op_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    st = resolve_version(tx, a->l, a->version, a->resolved);
    if (st != KV_OK)
        return st;
    MDB_val v;
    st = ks_txn_get(tx, tx->env->db_keys, a->l->bytes, a->l->len, &v);
    if (st != KV_OK)
        return st;
    struct ks_key *k = NULL;
    st = key_read(tx->env, &v, a->resolved, &vault, &k);
    if (st != KV_OK)
        return st;
    a->kty = k->kty;
    a->key_ops = k->ops;
    a->hsm = k->hsm;
    kv_str_join(a->stored_name, sizeof(a->stored_name), k->name, NULL);
    int64_t now = ks_now();
    if ((k->ops & a->op) == 0)
        st = KV_ERR_KEY_OP_FORBIDDEN;
    else if (!k->attrs.enabled)
        st = KV_ERR_KEY_DISABLED;
    else if ((a->op & DATED_OPS) && k->attrs.nbf != 0 && now < k->attrs.nbf)
        st = KV_ERR_KEY_NOT_YET_VALID;
    else if ((a->op & DATED_OPS) && k->attrs.exp != 0 && now >= k->attrs.exp)
        st = KV_ERR_KEY_EXPIRED;
    ks_key_free(k);
    if (st == KV_OK && a->need_sealed) {
        /* only on a miss of the material cache: the sealed part is not memoized */
        cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        st = o != NULL ? jbuf(o, "sealed", &a->sealed) : KV_ERR_STORE;
        cJSON_Delete(o);
    }
    return st;
}


enum kv_status ks_key_op(struct ks_env *env, const char *vault, const char *name,
                         const char *version, unsigned op, const struct ks_op_params *params,
                         struct ks_op_result *out)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct op_arg a = {.vault = vault, .l = &l, .version = version, .op = op};
    enum kv_status st = ks_txn_read(env, op_fn, &a);
    if (st != KV_OK)
        return st;

    struct ks_cache_ref *ref = ks_cache_get(env->cache, l.bytes, l.len);
    if (ref == NULL) {
        /* Cache miss: read the sealed material again and open it. */
        a.need_sealed = 1;
        st = ks_txn_read(env, op_fn, &a);
        if (st != KV_OK)
            goto out;
        struct kv_buf plain = {0};
        struct ks_material *m = NULL;
        st = ks_unseal(env->root_key, l.bytes, l.len, a.sealed.data, a.sealed.len, &plain);
        if (st == KV_OK)
            st = ks_material_deserialize(a.kty, plain.data, plain.len, &m);
        kv_buf_wipe(&plain);
        if (st != KV_OK)
            goto out;
        ref = ks_cache_put(env->cache, l.bytes, l.len, m);
        if (ref == NULL) {
            st = KV_ERR_NOMEM;
            goto out;
        }
    }
    struct ks_op_result res = {0};
    st = ks_material_op(ks_cache_material(ref), op, params, &res);
    if (st == KV_OK) {
        memcpy(res.version, a.resolved, sizeof(res.version));
        memcpy(res.name, a.stored_name, sizeof(res.name));
        *out = res;
    }
out:
    ks_cache_release(env->cache, ref);
    kv_buf_free(&a.sealed);
    return st;
}

/* Bring your own key: the key of @p b's blob, opened with the key exchange key it names,
 * into @p jwk's parts. The KEK is a live version of an RSA-HSM key of the same vault,
 * enabled, whose only operation is import, as Key Vault's BYOK requires. */
static enum kv_status byok_open(struct ks_env *env, const char *vault, const struct ks_byok *b,
                                struct ks_jwk *jwk)
{
    if (!names_fit(vault, b->kek_name))
        return KV_ERR_BYOK_KEK;
    struct loc l;
    loc_init(&l, vault, b->kek_name);
    struct op_arg a = {
        .vault = vault, .l = &l, .version = b->kek_version, .op = KS_OP_IMPORT, .need_sealed = 1};
    enum kv_status st = ks_txn_read(env, op_fn, &a);
    if (st == KV_ERR_KEY_NOT_FOUND || st == KV_ERR_KEY_OP_FORBIDDEN || st == KV_ERR_KEY_DISABLED ||
        (st == KV_OK && (a.kty != KS_KTY_RSA || !a.hsm || a.key_ops != KS_OP_IMPORT)))
        st = KV_ERR_BYOK_KEK;
    struct kv_buf plain = {0};
    struct ks_material *kek = NULL;
    if (st == KV_OK)
        st = ks_unseal(env->root_key, l.bytes, l.len, a.sealed.data, a.sealed.len, &plain);
    if (st == KV_OK)
        st = ks_material_deserialize(a.kty, plain.data, plain.len, &kek);
    kv_buf_wipe(&plain);
    if (st == KV_OK)
        st = ks_material_byok_open(kek, b->enc, &b->ciphertext, jwk);
    ks_material_free(kek);
    kv_buf_free(&a.sealed);
    return st;
}

/* ---- secure key release ------------------------------------------------------------- */

struct release_arg {
    const char *vault;
    struct loc *l;
    const char *version;
    const char *policy;
    char resolved[KS_VERSION_LEN + 1];
    struct ks_key *key;   /* out */
    struct kv_buf sealed; /* out */
};

static enum kv_status release_fn(struct ks_txn *tx, void *arg)
{
    struct release_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st == KV_OK)
        st = resolve_version(tx, a->l, a->version, a->resolved);
    MDB_val v;
    if (st == KV_OK)
        st = ks_txn_get(tx, tx->env->db_keys, a->l->bytes, a->l->len, &v);
    if (st == KV_OK)
        st = key_read(tx->env, &v, a->resolved, &vault, &a->key);
    if (st != KV_OK)
        return st;
    const struct ks_key *k = a->key;
    int64_t now = ks_now();
    if (!k->attrs.exportable || !k->release_policy.set)
        return KV_ERR_KEY_NOT_EXPORTABLE;
    if (!k->attrs.enabled)
        return KV_ERR_KEY_DISABLED;
    if (k->attrs.nbf != 0 && now < k->attrs.nbf)
        return KV_ERR_KEY_NOT_YET_VALID;
    if (k->attrs.exp != 0 && now >= k->attrs.exp)
        return KV_ERR_KEY_EXPIRED;
    if (a->policy == NULL || strcmp(a->policy, k->release_policy.data) != 0)
        return KV_ERR_RELEASE_POLICY_CHANGED;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    st = o != NULL ? jbuf(o, "sealed", &a->sealed) : KV_ERR_STORE;
    cJSON_Delete(o);
    return st;
}

enum kv_status ks_key_release(struct ks_env *env, const char *vault, const char *name,
                              const char *version, const char *policy, enum ks_release_enc enc,
                              const struct kv_buf *n, const struct kv_buf *e, struct ks_key **key,
                              struct kv_buf *wrapped)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    if (ks_release_enc_name(enc) == NULL)
        return KV_ERR_BAD_PARAM;
    struct loc l;
    loc_init(&l, vault, name);
    struct release_arg a = {.vault = vault, .l = &l, .version = version, .policy = policy};
    struct kv_buf plain = {0};
    struct ks_material *m = NULL;
    enum kv_status st = ks_txn_read(env, release_fn, &a);
    if (st == KV_OK)
        st = ks_unseal(env->root_key, l.bytes, l.len, a.sealed.data, a.sealed.len, &plain);
    if (st == KV_OK)
        st = ks_material_deserialize(a.key->kty, plain.data, plain.len, &m);
    kv_buf_wipe(&plain);
    if (st == KV_OK)
        st = ks_material_release(m, enc, n, e, wrapped);
    ks_material_free(m);
    kv_buf_free(&a.sealed);
    if (st == KV_OK) {
        *key = a.key;
        a.key = NULL;
    }
    ks_key_free(a.key);
    return st;
}

/* ---- delete, deleted keys, recover, purge ---------------------------------------- */

/* Read the current version record of a head into a key. */
static enum kv_status current_key(struct ks_txn *tx, struct loc *l, const struct head *h,
                                  const struct ks_vault *vault, struct ks_key **out)
{
    loc_set_version(l, h->current);
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_keys, l->bytes, l->len, &v);
    if (st == KV_ERR_KEY_NOT_FOUND)
        st = KV_ERR_STORE; /* a head always names a stored version */
    if (st != KV_OK)
        return st;
    return key_read(tx->env, &v, h->current, vault, out);
}

enum lifecycle_op { LC_DELETE, LC_GET_DELETED, LC_RECOVER, LC_PURGE };

struct lifecycle_arg {
    const char *vault;
    struct loc *l;
    enum lifecycle_op op;
    struct ks_key *key; /* out */
};

static enum kv_status lifecycle_fn(struct ks_txn *tx, void *arg)
{
    struct lifecycle_arg *a = arg;
    ks_key_free(a->key); /* a write's body runs again when its batch met a full map */
    a->key = NULL;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    struct head h;
    st = head_read(tx, a->l, &h);
    if (st != KV_OK && st != KV_ERR_KEY_NOT_FOUND)
        return st;
    enum head_state hs = st == KV_OK ? head_state(&h, ks_now()) : HEAD_GONE;

    if (a->op == LC_DELETE) {
        if (hs != HEAD_LIVE)
            return KV_ERR_KEY_NOT_FOUND;
        st = current_key(tx, a->l, &h, &vault, &a->key);
        if (st != KV_OK)
            return st;
        if (!vault.soft_delete)
            return purge_records(tx, a->l);
        h.deleted_date = ks_now();
        h.scheduled_purge = h.deleted_date + (int64_t)vault.retention_days * 86400;
        a->key->deleted_date = h.deleted_date;
        a->key->scheduled_purge = h.scheduled_purge;
        return head_write(tx, a->l, &h);
    }

    if (hs != HEAD_DELETED)
        return KV_ERR_DELETED_KEY_NOT_FOUND;
    switch (a->op) {
    case LC_GET_DELETED:
        st = current_key(tx, a->l, &h, &vault, &a->key);
        if (st == KV_OK) {
            a->key->deleted_date = h.deleted_date;
            a->key->scheduled_purge = h.scheduled_purge;
        }
        return st;
    case LC_RECOVER:
        h.deleted_date = h.scheduled_purge = 0;
        st = head_write(tx, a->l, &h);
        if (st == KV_OK)
            st = current_key(tx, a->l, &h, &vault, &a->key);
        return st;
    case LC_PURGE:
        if (vault.purge_protection)
            return KV_ERR_PURGE_PROTECTED;
        return purge_records(tx, a->l);
    default:
        return KV_ERR_INTERNAL;
    }
}

static enum kv_status lifecycle(struct ks_env *env, const char *vault, const char *name,
                                enum lifecycle_op op, struct ks_key **out)
{
    if (!names_fit(vault, name))
        return op == LC_DELETE ? KV_ERR_KEY_NOT_FOUND : KV_ERR_DELETED_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct lifecycle_arg a = {vault, &l, op, NULL};
    enum kv_status st = op == LC_GET_DELETED ? ks_txn_read(env, lifecycle_fn, &a)
                                             : ks_txn_write(env, lifecycle_fn, &a);
    if (st == KV_OK && out != NULL) {
        *out = a.key;
        a.key = NULL;
    }
    ks_key_free(a.key);
    return st;
}

enum kv_status ks_key_delete(struct ks_env *env, const char *vault, const char *name,
                             struct ks_key **out)
{
    return lifecycle(env, vault, name, LC_DELETE, out);
}

enum kv_status ks_deleted_get(struct ks_env *env, const char *vault, const char *name,
                              struct ks_key **out)
{
    return lifecycle(env, vault, name, LC_GET_DELETED, out);
}

enum kv_status ks_deleted_recover(struct ks_env *env, const char *vault, const char *name,
                                  struct ks_key **out)
{
    return lifecycle(env, vault, name, LC_RECOVER, out);
}

enum kv_status ks_deleted_purge(struct ks_env *env, const char *vault, const char *name)
{
    return lifecycle(env, vault, name, LC_PURGE, NULL);
}

/* ---- update -------------------------------------------------------------------------- */

struct update_arg {
    const char *vault;
    struct loc *l;
    const char *version;
    const struct ks_update *u;
    struct ks_key *key; /* out */
};

/* Replace a member, or add it: records leave out members at their default. The name is
 * copied here, and only then is the tree changed: cJSON 1.7.15's ReplaceItemInObject does
 * not check its own copy of the name, so out of memory it put in a member without one,
 * which the record then kept (as "") and the real member lost. */
static int replace_item(cJSON *o, const char *name, cJSON *item)
{
    if (item == NULL)
        return 0;
    size_t len = strlen(name) + 1;
    char *key = cJSON_malloc(len);
    if (key == NULL) {
        cJSON_Delete(item);
        return 0;
    }
    memcpy(key, name, len);
    item->string = key; /* a new item: it had no name */
    item->type &= ~cJSON_StringIsConst;
    cJSON *old = cJSON_GetObjectItemCaseSensitive(o, name);
    /* neither call allocates */
    if (old != NULL ? cJSON_ReplaceItemViaPointer(o, old, item) : cJSON_AddItemToArray(o, item))
        return 1;
    cJSON_Delete(item);
    return 0;
}

static int replace_number(cJSON *o, const char *name, double value)
{
    return replace_item(o, name, cJSON_CreateNumber(value));
}

static enum kv_status update_fn(struct ks_txn *tx, void *arg)
{
    struct update_arg *a = arg;
    ks_key_free(a->key); /* as in lifecycle_fn() */
    a->key = NULL;
    const struct ks_update *u = a->u;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    char version[KS_VERSION_LEN + 1];
    st = resolve_version(tx, a->l, a->version, version);
    if (st != KV_OK)
        return st;
    MDB_val v;
    st = ks_txn_get(tx, tx->env->db_keys, a->l->bytes, a->l->len, &v);
    if (st != KV_OK)
        return st;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    char *json = NULL;
    if (o == NULL)
        return KV_ERR_STORE;
    /* Secure key release: exportable is fixed at creation, and an immutable policy too. */
    int exportable = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "exportable"));
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(o, "rp");
    if (u->exportable_set && u->exportable != exportable)
        st = KV_ERR_SKR_EXPORTABLE_CHANGE;
    else if (u->release_policy != NULL && !exportable)
        st = KV_ERR_SKR_POLICY_NOT_EXPORTABLE;
    else if (u->release_policy != NULL && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rp, "imm")))
        st = KV_ERR_SKR_IMMUTABLE;
    if (st != KV_OK) {
        cJSON_Delete(o);
        return st;
    }
    st = KV_ERR_NOMEM;
    int ok = 1;
    if (u->release_policy != NULL) {
        const struct ks_release_policy *np = u->release_policy;
        cJSON *item = cJSON_CreateObject();
        ok = item != NULL &&
             cJSON_AddStringToObject(item, "ct",
                                     np->content_type != NULL && np->content_type[0] != '\0'
                                         ? np->content_type
                                         : KS_RELEASE_POLICY_CONTENT_TYPE) != NULL &&
             cJSON_AddStringToObject(item, "data", np->data != NULL ? np->data : "") != NULL &&
             (!np->immutable || cJSON_AddTrueToObject(item, "imm") != NULL);
        if (!ok)
            cJSON_Delete(item);
        else
            ok = replace_item(o, "rp", item);
    }
    if (ok && u->enabled_set)
        ok = replace_item(o, "enabled", cJSON_CreateBool(u->enabled));
    if (ok && u->nbf_set)
        ok = replace_number(o, "nbf", (double)u->nbf);
    if (ok && u->exp_set)
        ok = replace_number(o, "exp", (double)u->exp);
    if (ok && u->ops_set)
        ok = replace_number(o, "ops", (double)u->ops);
    if (ok && u->ops_set) {
        /* the new key_ops' own order; none left of the old when it is the fixed order */
        uint32_t order = order_kept(u->ops, u->ops_order);
        if (order != 0)
            ok = replace_number(o, "ops_order", (double)order);
        else
            cJSON_DeleteItemFromObjectCaseSensitive(o, "ops_order");
    }
    if (ok && u->tags_set)
        ok = replace_item(o, "tags", ks_tags_to_json(&u->tags));
    if (ok)
        ok = replace_number(o, "updated", (double)ks_now());
    if (ok)
        json = cJSON_PrintUnformatted(o);
    if (json != NULL) {
        st = ks_txn_put(tx, tx->env->db_keys, a->l->bytes, a->l->len, json, strlen(json));
        if (st == KV_OK) {
            MDB_val nv = {strlen(json), json};
            st = key_from_record(&nv, version, &vault, &a->key);
        }
    }
    cJSON_free(json);
    cJSON_Delete(o);
    return st;
}

enum kv_status ks_key_update(struct ks_env *env, const char *vault, const char *name,
                             const char *version, const struct ks_update *u, struct ks_key **out)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct update_arg a = {vault, &l, version, u, NULL};
    enum kv_status st = ks_txn_write(env, update_fn, &a);
    if (st == KV_OK) {
        *out = a.key;
        a.key = NULL;
    }
    ks_key_free(a.key);
    return st;
}

/* ---- rotation policy and rotate --------------------------------------------------------- */

struct policy_arg {
    const char *vault;
    struct loc *l;
    const struct ks_rotation_policy *in; /* NULL: read */
    struct ks_rotation_policy out;
};

static enum kv_status policy_fn(struct ks_txn *tx, void *arg)
{
    struct policy_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    struct head h;
    st = head_read(tx, a->l, &h);
    if (st != KV_OK)
        return st;
    if (head_state(&h, ks_now()) != HEAD_LIVE)
        return KV_ERR_KEY_NOT_FOUND;
    if (a->in != NULL) {
        int64_t created = h.policy.is_set ? h.policy.created : ks_now();
        h.policy = *a->in;
        h.policy.is_set = 1;
        h.policy.created = created;
        h.policy.updated = ks_now();
        st = head_write(tx, a->l, &h);
    }
    a->out = h.policy;
    return st;
}

static enum kv_status policy_common(struct ks_env *env, const char *vault, const char *name,
                                    const struct ks_rotation_policy *in,
                                    struct ks_rotation_policy *out)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct policy_arg a = {vault, &l, in, {0}};
    enum kv_status st =
        in ? ks_txn_write(env, policy_fn, &a) : ks_txn_read(env, policy_fn, &a);
    if (st == KV_OK)
        *out = a.out;
    return st;
}

enum kv_status ks_rotation_policy_get(struct ks_env *env, const char *vault, const char *name,
                                      struct ks_rotation_policy *out)
{
    return policy_common(env, vault, name, NULL, out);
}

enum kv_status ks_rotation_policy_set(struct ks_env *env, const char *vault, const char *name,
                                      const struct ks_rotation_policy *in,
                                      struct ks_rotation_policy *out)
{
    return policy_common(env, vault, name, in, out);
}

/* The public exponent of an RSA key as a number. */
static unsigned long exponent_of(const struct ks_pub *pub)
{
    unsigned long e = 0;
    for (size_t i = 0; i < pub->e.len && i < sizeof(e); i++)
        e = (e << 8) | pub->e.data[i];
    return e;
}

/* Add a version to vault/name like its current one; with @p if_current, only while that
 * is still the current version (else KV_ERR_KEY_NOT_FOUND). */
static enum kv_status rotate(struct ks_env *env, const char *vault, const char *name,
                             const char *if_current, struct ks_key **out)
{
    struct ks_key *cur = NULL;
    struct ks_rotation_policy pol;
    enum kv_status st = ks_key_get(env, vault, name, NULL, &cur);
    if (st == KV_OK)
        st = ks_rotation_policy_get(env, vault, name, &pol);
    if (st != KV_OK) {
        ks_key_free(cur);
        return st;
    }
    /* an imported key may have an exponent kvmock does not generate: its new version
     * gets the usual one */
    unsigned long e = exponent_of(&cur->pub);
    struct ks_material *m = NULL;
    st = ks_material_generate(cur->kty, cur->pub.size_bits, e == 3 ? 3 : 65537, cur->pub.crv, &m);
    if (st == KV_OK) {
        struct version_spec spec = {.kty = cur->kty,
                                    .hsm = cur->hsm,
                                    .ops = cur->ops,
                                    .ops_order = cur->ops_order,
                                    .tags = &cur->tags,
                                    .existing_only = 1};
        spec.attrs.enabled = 1;
        spec.attrs.exportable = cur->attrs.exportable;
        spec.release_policy = &cur->release_policy;
        spec.if_current = if_current;
        if (pol.is_set && pol.expiry_s > 0)
            spec.attrs.exp = ks_now() + pol.expiry_s;
        st = store_version(env, vault, cur->name, m, &spec, out);
    }
    ks_key_free(cur);
    return st;
}

enum kv_status ks_key_rotate(struct ks_env *env, const char *vault, const char *name,
                             struct ks_key **out)
{
    return rotate(env, vault, name, NULL, out);
}

/* ---- backup and restore --------------------------------------------------------------- */

/*
 * A key's backup document: {"format", "name", "current", "versions": [{"version", "record"}],
 * "policy" (when set), "managedHsm" (true for a Managed HSM's key)}, its records as stored but
 * with their material plain ("material") instead of sealed to their location ("sealed"): the
 * blob's own seal keeps it. ks_key_backup's blob holds one; a Managed HSM's full backup
 * (ks_hsm_backup) holds {"format", "keys": [one per live key]}, under other associated data.
 */
#define BACKUP_FORMAT     "kvmock-key-backup-1"
#define HSM_BACKUP_FORMAT "kvmock-hsm-backup-1"
/* The first guess at a backup document's printed size: this much per key, plus per
 * version its material's text and this much for the rest of its record. */
#define BACKUP_PRINT_BASE    1024
#define BACKUP_PRINT_VERSION 2048
static const char backup_ad[] = "kvmock key backup";
static const char hsm_backup_ad[] = "kvmock hsm backup";

/* Append to @p versions every version record of the key at @p l, as stored:
 * {"version", "record"}. */
static enum kv_status versions_read(struct ks_txn *tx, const struct loc *l, cJSON *versions)
{
    char prefix[LOC_MAX];
    memcpy(prefix, l->bytes, l->head_len);
    prefix[l->head_len] = '\0';
    size_t plen = l->head_len + 1;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_keys, &cur) != 0)
        return KV_ERR_STORE;
    enum kv_status st = KV_OK;
    MDB_val k = {plen, prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != plen + KS_VERSION_LEN || memcmp(k.mv_data, prefix, plen) != 0)
            break;
        cJSON *item = cJSON_CreateObject();
        cJSON *rec = cJSON_ParseWithLength(v.mv_data, v.mv_size);
        char version[KS_VERSION_LEN + 1];
        memcpy(version, (char *)k.mv_data + plen, KS_VERSION_LEN);
        version[KS_VERSION_LEN] = '\0';
        if (item == NULL || rec == NULL || !cJSON_AddItemToArray(versions, item)) {
            cJSON_Delete(item); /* not in the array: ours to free */
            cJSON_Delete(rec);
            st = KV_ERR_NOMEM;
            break;
        }
        if (!cJSON_AddStringToObject(item, "version", version) ||
            !cJSON_AddItemToObject(item, "record", rec)) {
            cJSON_Delete(rec);
            st = KV_ERR_NOMEM;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (st == KV_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = KV_ERR_STORE;
    return st;
}

/* The backup document of the key at @p l, whose head @p h is live, read inside @p tx, with
 * its records as stored (sealed: key_doc_unseal() makes them plain). */
static enum kv_status key_doc_read(struct ks_txn *tx, const struct loc *l, const struct head *h,
                                   int managed_hsm, cJSON **out)
{
    enum kv_status st = KV_ERR_NOMEM;
    cJSON *doc = cJSON_CreateObject();
    cJSON *versions = doc ? cJSON_AddArrayToObject(doc, "versions") : NULL;
    if (versions == NULL || !cJSON_AddStringToObject(doc, "format", BACKUP_FORMAT) ||
        !cJSON_AddStringToObject(doc, "name", h->name) ||
        !cJSON_AddStringToObject(doc, "current", h->current) ||
        (managed_hsm && !cJSON_AddTrueToObject(doc, "managedHsm")))
        goto out;
    if (h->policy.is_set) {
        cJSON *pol = policy_to_json(&h->policy);
        if (pol == NULL || !cJSON_AddItemToObject(doc, "policy", pol)) {
            cJSON_Delete(pol);
            goto out;
        }
    }
    st = versions_read(tx, l, versions);
    if (st == KV_OK) {
        *out = doc;
        doc = NULL;
    }
out:
    cJSON_Delete(doc); /* sealed records only: nothing to wipe */
    return st;
}

struct backup_arg {
    const char *vault;
    struct loc *l; /* ks_key_backup: the key */
    cJSON *doc;    /* ks_key_backup: out, the key's document */
    cJSON *keys;   /* ks_hsm_backup: the full backup's "keys", filled */
    size_t count;  /* ks_hsm_backup: out, how many keys */
};

static enum kv_status backup_fn(struct ks_txn *tx, void *arg)
{
    struct backup_arg *a = arg;
    struct ks_vault vault;
    struct head h;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st == KV_OK)
        st = head_read(tx, a->l, &h);
    if (st != KV_OK)
        return st;
    if (head_state(&h, ks_now()) != HEAD_LIVE)
        return KV_ERR_KEY_NOT_FOUND;
    return key_doc_read(tx, a->l, &h, vault.hsm, &a->doc);
}

/* Every live key of a Managed HSM, in name order: the heads under vault\0. */
static enum kv_status hsm_backup_fn(struct ks_txn *tx, void *arg)
{
    struct backup_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    if (!vault.hsm)
        return KV_ERR_VAULT_NOT_FOUND;
    size_t plen = strlen(vault.name) + 1; /* vault\0 */
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_heads, &cur) != 0)
        return KV_ERR_STORE;
    int64_t now = ks_now();
    MDB_val k = {plen, vault.name}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size < plen || memcmp(k.mv_data, vault.name, plen) != 0)
            break;
        size_t rest = k.mv_size - plen;
        struct loc l;
        struct head h;
        cJSON *doc = NULL;
        if (rest == 0 || rest > KS_NAME_MAX || memchr((char *)k.mv_data + plen, 0, rest) != NULL ||
            !loc_of_head(&l, &k))
            continue; /* no key's head */
        /* a head that does not read fails the backup: one left out would go unnoticed */
        st = head_read(tx, &l, &h);
        if (st != KV_OK || head_state(&h, now) != HEAD_LIVE)
            continue;
        st = key_doc_read(tx, &l, &h, 1, &doc);
        if (st == KV_OK && !cJSON_AddItemToArray(a->keys, doc)) {
            cJSON_Delete(doc);
            st = KV_ERR_NOMEM;
        }
        a->count += st == KV_OK;
    }
    mdb_cursor_close(cur);
    if (st == KV_OK && rc != 0 && rc != MDB_NOTFOUND)
        st = KV_ERR_STORE;
    return st;
}

/* Swap a record's sealed material between "sealed" (bound to a location) and
 * "material" (plain, only ever inside a sealed backup). */
static enum kv_status reseal(struct ks_env *env, cJSON *rec, const struct loc *from,
                             const struct loc *to)
{
    struct kv_buf in = {0}, plain = {0}, out = {0};
    char *text = NULL;
    enum kv_status st;
    if (from != NULL) {
        st = jbuf(rec, "sealed", &in);
        if (st == KV_OK)
            st = ks_unseal(env->root_key, from->bytes, from->len, in.data, in.len, &plain);
        if (st == KV_OK && kv_b64url_encode(plain.data, plain.len, &text) != KV_OK)
            st = KV_ERR_NOMEM;
        if (st == KV_OK) {
            cJSON_DeleteItemFromObjectCaseSensitive(rec, "sealed");
            if (!cJSON_AddStringToObject(rec, "material", text))
                st = KV_ERR_NOMEM;
        }
    } else {
        const char *m = jstr(rec, "material");
        st = m != NULL ? kv_b64url_decode(m, &plain) : KV_ERR_BAD_BACKUP;
        if (st != KV_OK && st != KV_ERR_NOMEM)
            st = KV_ERR_BAD_BACKUP;
        if (st == KV_OK)
            st = ks_seal(env->root_key, to->bytes, to->len, plain.data, plain.len, &out);
        if (st == KV_OK && kv_b64url_encode(out.data, out.len, &text) != KV_OK)
            st = KV_ERR_NOMEM;
        if (st == KV_OK) {
            cJSON *mat = cJSON_GetObjectItemCaseSensitive(rec, "material");
            sodium_memzero(mat->valuestring, strlen(mat->valuestring));
            cJSON_DeleteItemFromObjectCaseSensitive(rec, "material");
            if (!cJSON_AddStringToObject(rec, "sealed", text))
                st = KV_ERR_NOMEM;
        }
    }
    if (text != NULL)
        sodium_memzero(text, strlen(text));
    free(text);
    kv_buf_free(&in);
    kv_buf_wipe(&plain);
    kv_buf_free(&out);
    return st;
}

/* Turn the records of key document @p doc, read from vault @p vault, plain for a backup
 * (reseal()); adds to @p hint the room its versions take printed. */
static enum kv_status key_doc_unseal(struct ks_env *env, const char *vault, cJSON *doc,
                                     size_t *hint)
{
    struct loc l;
    loc_init(&l, vault, jstr(doc, "name"));
    cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "versions"))
    {
        struct loc vl = l;
        loc_set_version(&vl, jstr(item, "version"));
        cJSON *rec = cJSON_GetObjectItemCaseSensitive(item, "record");
        enum kv_status st = reseal(env, rec, &vl, NULL);
        if (st != KV_OK)
            return st;
        *hint += BACKUP_PRINT_VERSION + strlen(jstr(rec, "material"));
    }
    return KV_OK;
}

/* Seal the plain material of key document @p doc (checked by restore_check()) to the
 * locations of its versions in vault @p vault (reseal()), before the write that restores it. */
static enum kv_status key_doc_reseal(struct ks_env *env, const char *vault, cJSON *doc)
{
    struct loc l;
    loc_init(&l, vault, jstr(doc, "name"));
    cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "versions"))
    {
        struct loc vl = l;
        loc_set_version(&vl, jstr(item, "version"));
        enum kv_status st =
            reseal(env, cJSON_GetObjectItemCaseSensitive(item, "record"), NULL, &vl);
        if (st != KV_OK)
            return st;
    }
    return KV_OK;
}

/* Wipe every "material" string of one key's backup document. */
static void key_doc_wipe(const cJSON *doc)
{
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "versions"))
    {
        cJSON *m = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(item, "record"), "material");
        if (cJSON_IsString(m))
            sodium_memzero(m->valuestring, strlen(m->valuestring));
    }
}

/* Wipe every "material" string of a backup document, a key's or a full backup's (those of
 * each of its "keys"), then free it. NULL is a no-op. */
static void backup_doc_free(cJSON *doc)
{
    const cJSON *key;
    key_doc_wipe(doc);
    cJSON_ArrayForEach(key, cJSON_GetObjectItemCaseSensitive(doc, "keys"))
    {
        key_doc_wipe(key);
    }
    cJSON_Delete(doc);
}

/* Print a backup document into a buffer of our own. cJSON_PrintUnformatted
 * grows its buffer by reallocation and frees the outgrown copies, which hold
 * the plain material, unwiped; here a buffer too small is wiped and freed and
 * a larger one tried. The first try has @p hint bytes. The caller wipes *out
 * over its capacity *cap. */
static enum kv_status backup_print(cJSON *doc, size_t hint, char **out, size_t *cap)
{
    for (size_t n = hint;; n *= 2) {
        if (n > INT_MAX)
            return KV_ERR_NOMEM;
        char *buf = malloc(n);
        if (buf == NULL)
            return KV_ERR_NOMEM;
        /* no allocation inside: it fails only when the text does not fit */
        if (cJSON_PrintPreallocated(doc, buf, (int)n, 0)) {
            *out = buf;
            *cap = n;
            return KV_OK;
        }
        sodium_memzero(buf, n);
        free(buf);
    }
}

/* Print backup document @p doc (backup_print(), first with @p hint bytes) and seal the text
 * under the root key with associated data @p ad into @p out. */
static enum kv_status backup_seal(struct ks_env *env, cJSON *doc, size_t hint, const char *ad,
                                  size_t ad_len, struct kv_buf *out)
{
    char *text = NULL;
    size_t cap = 0;
    enum kv_status st = backup_print(doc, hint, &text, &cap);
    if (st == KV_OK)
        st = ks_seal(env->root_key, ad, ad_len, (unsigned char *)text, strlen(text), out);
    if (text != NULL)
        sodium_memzero(text, cap);
    free(text);
    return st;
}

enum kv_status ks_key_backup(struct ks_env *env, const char *vault, const char *name,
                             struct kv_buf *out)
{
    if (!names_fit(vault, name))
        return KV_ERR_KEY_NOT_FOUND;
    struct loc l;
    loc_init(&l, vault, name);
    struct backup_arg a = {.vault = vault, .l = &l};
    size_t hint = BACKUP_PRINT_BASE;
    enum kv_status st = ks_txn_read(env, backup_fn, &a);
    if (st == KV_OK)
        st = key_doc_unseal(env, vault, a.doc, &hint);
    if (st == KV_OK)
        st = backup_seal(env, a.doc, hint, backup_ad, sizeof(backup_ad), out);
    backup_doc_free(a.doc);
    return st;
}

enum kv_status ks_hsm_backup(struct ks_env *env, const char *vault, const char *access,
                             struct kv_buf *out, size_t *keys)
{
    if (strlen(vault) > KS_VAULT_NAME_MAX)
        return KV_ERR_VAULT_NOT_FOUND;
    enum kv_status st = KV_ERR_NOMEM;
    struct backup_arg a = {.vault = vault};
    size_t hint = BACKUP_PRINT_BASE;
    cJSON *doc = cJSON_CreateObject(), *key;
    if (doc == NULL || !cJSON_AddStringToObject(doc, "format", HSM_BACKUP_FORMAT) ||
        (access != NULL && !cJSON_AddStringToObject(doc, "access", access)) ||
        (a.keys = cJSON_AddArrayToObject(doc, "keys")) == NULL)
        goto out;
    if (access != NULL)
        hint += strlen(access) * 2; /* escaped once more */
    st = ks_txn_read(env, hsm_backup_fn, &a);
    cJSON_ArrayForEach(key, a.keys)
    {
        if (st != KV_OK)
            break;
        hint += BACKUP_PRINT_BASE;
        st = key_doc_unseal(env, vault, key, &hint);
    }
    if (st == KV_OK)
        st = backup_seal(env, doc, hint, hsm_backup_ad, sizeof(hsm_backup_ad), out);
    if (st == KV_OK && keys != NULL)
        *keys = a.count;
out:
    backup_doc_free(doc);
    return st;
}

/* Open a backup blob sealed with associated data @p ad into its document (whose plain
 * material the caller wipes: backup_doc_free()). */
static enum kv_status backup_open(struct ks_env *env, const char *ad, size_t ad_len,
                                  const unsigned char *blob, size_t len, cJSON **out)
{
    struct kv_buf plain = {0};
    enum kv_status st = ks_unseal(env->root_key, ad, ad_len, blob, len, &plain);
    if (st != KV_OK)
        return st == KV_ERR_NOMEM ? st : KV_ERR_BAD_BACKUP;
    cJSON *doc = cJSON_ParseWithLength((const char *)plain.data, plain.len);
    if (doc == NULL) /* out of memory, or not JSON: only a second failure says which */
        doc = cJSON_ParseWithLength((const char *)plain.data, plain.len);
    kv_buf_wipe(&plain);
    if (doc == NULL)
        return KV_ERR_BAD_BACKUP;
    *out = doc;
    return KV_OK;
}

/* Whether a key may be restored at @p l, inside @p tx: not while a key of the name is live
 * (KV_ERR_KEY_EXISTS) or soft-deleted (KV_ERR_KEY_DELETED_RECOVERABLE). The records of one
 * past its purge date go first. */
static enum kv_status restore_target(struct ks_txn *tx, const struct loc *l)
{
    struct head h;
    enum kv_status st = head_read(tx, l, &h);
    if (st == KV_ERR_KEY_NOT_FOUND)
        return KV_OK;
    if (st != KV_OK)
        return st;
    switch (head_state(&h, ks_now())) {
    case HEAD_LIVE:
        return KV_ERR_KEY_EXISTS;
    case HEAD_DELETED:
        return KV_ERR_KEY_DELETED_RECOVERABLE;
    default:
        return purge_records(tx, l);
    }
}

/* Write key document @p doc (checked by restore_check(), which filled @p h; its material
 * resealed to @p l's versions by key_doc_reseal()) at @p l inside @p tx: every version
 * record, then the head. Every version must read back as a key of @p vault, else
 * KV_ERR_BAD_BACKUP, and the caller's transaction is aborted: nothing is restored. Adds the
 * versions written to @p versions. */
static enum kv_status key_doc_write(struct ks_txn *tx, const struct ks_vault *vault,
                                    const struct loc *l, const cJSON *doc, const struct head *h,
                                    size_t *versions)
{
    enum kv_status st;
    const cJSON *item;
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(doc, "versions"))
    {
        struct loc vl = *l;
        loc_set_version(&vl, jstr(item, "version"));
        /* sealed again: no plain material in the record any more */
        char *json = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(item, "record"));
        if (json == NULL)
            return KV_ERR_NOMEM;
        /* every version must read back as a key, or nothing is restored */
        struct ks_key *check = NULL;
        MDB_val rv = {strlen(json), json};
        st = key_from_record(&rv, jstr(item, "version"), vault, &check);
        if (st == KV_ERR_STORE) /* out of memory, or a bad record: a second try says which */
            st = key_from_record(&rv, jstr(item, "version"), vault, &check);
        if (st == KV_OK && check->hsm && !vault->premium)
            st = KV_ERR_HSM_STANDARD;
        ks_key_free(check);
        if (st == KV_OK)
            st = ks_txn_put(tx, tx->env->db_keys, vl.bytes, vl.len, json, strlen(json));
        else if (st == KV_ERR_STORE)
            st = KV_ERR_BAD_BACKUP;
        cJSON_free(json);
        if (st != KV_OK)
            return st;
        (*versions)++;
    }
    return head_write(tx, l, h);
}

struct restore_arg {
    const char *vault;
    struct loc *l;
    cJSON *doc;
    struct head head;
    struct ks_key *key; /* out */
};

static enum kv_status restore_fn(struct ks_txn *tx, void *arg)
{
    struct restore_arg *a = arg;
    ks_key_free(a->key); /* as in lifecycle_fn() */
    a->key = NULL;
    struct ks_vault vault;
    size_t versions = 0;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    /* a vault's backup goes back to a vault, a Managed HSM's to a Managed HSM */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(a->doc, "managedHsm")) != vault.hsm)
        return KV_ERR_BACKUP_KIND;
    st = restore_target(tx, a->l);
    if (st == KV_OK)
        st = key_doc_write(tx, &vault, a->l, a->doc, &a->head, &versions);
    if (st == KV_OK)
        st = current_key(tx, a->l, &a->head, &vault, &a->key);
    return st;
}

/* The head a key document restores (one restore_check() accepted). */
static void key_doc_head(const cJSON *doc, struct head *h)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", jstr(doc, "name"));
    memcpy(h->current, jstr(doc, "current"), KS_VERSION_LEN + 1);
    policy_from_json(cJSON_GetObjectItemCaseSensitive(doc, "policy"), &h->policy);
}

/* Check a backup document's shape; fills the head it restores. */
static enum kv_status restore_check(const cJSON *doc, struct head *h)
{
    const char *format = jstr(doc, "format"), *name = jstr(doc, "name"),
               *current = jstr(doc, "current");
    const cJSON *versions = cJSON_GetObjectItemCaseSensitive(doc, "versions");
    if (format == NULL || strcmp(format, BACKUP_FORMAT) != 0 || name == NULL ||
        !ks_key_name_valid(name) || current == NULL || !version_lower(current) ||
        !cJSON_IsArray(versions) || cJSON_GetArraySize(versions) < 1)
        return KV_ERR_BAD_BACKUP;
    int has_current = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, versions)
    {
        const char *v = jstr(item, "version");
        const cJSON *rec = cJSON_GetObjectItemCaseSensitive(item, "record");
        if (v == NULL || !version_lower(v) || !cJSON_IsObject(rec) ||
            jstr(rec, "material") == NULL)
            return KV_ERR_BAD_BACKUP;
        const char *rname = jstr(rec, "name");
        if (rname == NULL || strcasecmp(rname, name) != 0)
            return KV_ERR_BAD_BACKUP;
        has_current |= strcmp(v, current) == 0;
    }
    if (!has_current)
        return KV_ERR_BAD_BACKUP;
    key_doc_head(doc, h);
    return KV_OK;
}

enum kv_status ks_key_restore(struct ks_env *env, const char *vault, const unsigned char *blob,
                              size_t len, char name[KS_NAME_MAX + 1], struct ks_key **out)
{
    cJSON *doc = NULL;
    struct restore_arg a = {vault, NULL, NULL, {{0}}, NULL};
    struct loc l;
    if (name != NULL)
        name[0] = '\0';
    enum kv_status st = backup_open(env, backup_ad, sizeof(backup_ad), blob, len, &doc);
    if (st == KV_OK)
        st = restore_check(doc, &a.head);
    if (st != KV_OK)
        goto out;
    if (name != NULL)
        kv_str_join(name, KS_NAME_MAX + 1, a.head.name, NULL);
    if (strlen(vault) > KS_VAULT_NAME_MAX) {
        st = KV_ERR_VAULT_NOT_FOUND;
        goto out;
    }
    loc_init(&l, vault, a.head.name);
    st = key_doc_reseal(env, vault, doc);
    if (st != KV_OK)
        goto out;
    a.l = &l;
    a.doc = doc;
    st = ks_txn_write(env, restore_fn, &a);
    if (st == KV_OK) {
        *out = a.key;
        a.key = NULL;
    }
out:
    ks_key_free(a.key);
    backup_doc_free(doc);
    return st;
}

/* Check a full backup's shape: its format, and each key document's (restore_check()), a
 * Managed HSM's key. With @p only, *sel is the document of the key a selective restore takes,
 * or NULL when the backup holds none of that name. */
static enum kv_status hsm_restore_check(const cJSON *doc, const char *only, cJSON **keys,
                                        cJSON **sel)
{
    const char *format = jstr(doc, "format");
    cJSON *list = cJSON_GetObjectItemCaseSensitive(doc, "keys");
    if (format == NULL || strcmp(format, HSM_BACKUP_FORMAT) != 0 || !cJSON_IsArray(list))
        return KV_ERR_BAD_BACKUP;
    cJSON *item, *found = NULL;
    cJSON_ArrayForEach(item, list)
    {
        struct head h;
        if (!cJSON_IsObject(item) || restore_check(item, &h) != KV_OK ||
            !cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "managedHsm")))
            return KV_ERR_BAD_BACKUP;
        if (only != NULL && found == NULL && strcasecmp(h.name, only) == 0)
            found = item;
    }
    *keys = list;
    *sel = found;
    return KV_OK;
}

struct hsm_restore_arg {
    const char *vault;
    const cJSON *keys; /* the backup's key documents, their material resealed to the vault */
    int selective;     /* restore only one key... */
    const cJSON *sel;  /* ...this one (NULL: the backup holds none of the name) */
    const struct ks_record_op *ops; /* another layer's changes, after the keys */
    size_t n_ops;
    size_t versions; /* out */
};

static enum kv_status hsm_restore_fn(struct ks_txn *tx, void *arg)
{
    struct hsm_restore_arg *a = arg;
    a->versions = 0; /* a write's body runs again when its batch met a full map */
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    if (!vault.hsm)
        return KV_ERR_VAULT_NOT_FOUND;
    if (a->selective && a->sel == NULL)
        return KV_ERR_KEY_NOT_FOUND;
    /* a full restore: first every key of the HSM goes, whatever its state (and the material
     * cached for it, and its entries in the sweep table) */
    if (!a->selective)
        st = ks_vault_keys_purge(tx, vault.name);
    const cJSON *doc;
    cJSON_ArrayForEach(doc, a->keys)
    {
        if (st != KV_OK)
            break;
        if (a->selective && doc != a->sel)
            continue;
        struct head h;
        struct loc l;
        key_doc_head(doc, &h); /* checked by hsm_restore_check() */
        loc_init(&l, vault.name, h.name);
        st = restore_target(tx, &l);
        /* after a full restore's wipe only a key of the backup can hold the name: two of one
         * name make no backup */
        if (!a->selective && (st == KV_ERR_KEY_EXISTS || st == KV_ERR_KEY_DELETED_RECOVERABLE))
            st = KV_ERR_BAD_BACKUP;
        if (st == KV_OK)
            st = key_doc_write(tx, &vault, &l, doc, &h, &a->versions);
    }
    return st == KV_OK ? ks_records_apply_tx(tx, a->ops, a->n_ops) : st;
}

enum kv_status ks_hsm_backup_access(struct ks_env *env, const unsigned char *blob, size_t len,
                                    char **out)
{
    cJSON *doc = NULL, *keys, *sel;
    *out = NULL;
    enum kv_status st = backup_open(env, hsm_backup_ad, sizeof(hsm_backup_ad), blob, len, &doc);
    if (st == KV_OK)
        st = hsm_restore_check(doc, NULL, &keys, &sel);
    const cJSON *access = cJSON_GetObjectItemCaseSensitive(doc, "access");
    if (st == KV_OK && access != NULL && !cJSON_IsString(access))
        st = KV_ERR_BAD_BACKUP;
    if (st == KV_OK && access != NULL && (*out = strdup(access->valuestring)) == NULL)
        st = KV_ERR_NOMEM;
    backup_doc_free(doc);
    return st;
}

enum kv_status ks_hsm_restore(struct ks_env *env, const char *vault, const unsigned char *blob,
                              size_t len, const char *only, const struct ks_record_op *ops,
                              size_t n_ops, size_t *versions)
{
    cJSON *doc = NULL, *keys = NULL, *sel = NULL, *key;
    if (versions != NULL)
        *versions = 0;
    enum kv_status st = backup_open(env, hsm_backup_ad, sizeof(hsm_backup_ad), blob, len, &doc);
    if (st == KV_OK)
        st = hsm_restore_check(doc, only, &keys, &sel);
    if (st != KV_OK)
        goto out;
    if (strlen(vault) > KS_VAULT_NAME_MAX) {
        st = KV_ERR_VAULT_NOT_FOUND;
        goto out;
    }
    /* sealed to their new locations before the write, as ks_key_restore() does */
    cJSON_ArrayForEach(key, keys)
    {
        if (only != NULL && key != sel)
            continue;
        st = key_doc_reseal(env, vault, key);
        if (st != KV_OK)
            goto out;
    }
    struct hsm_restore_arg a = {vault, keys, only != NULL, sel, ops, n_ops, 0};
    st = ks_txn_write(env, hsm_restore_fn, &a);
    if (st == KV_OK && versions != NULL)
        *versions = a.versions;
out:
    backup_doc_free(doc);
    return st;
}

/* ---- the sweep: scheduled purges and rotation triggers ---------------------------------- */

struct sweep_item {
    char vault[KS_VAULT_NAME_MAX + 1];
    char name[KS_NAME_MAX + 1];
    char current[KS_VERSION_LEN + 1]; /* a rotation: the version found due */
    int purge;                        /* 1: purge; 0: rotate */
};

struct sweep_arg {
    struct sweep_item *items;
    size_t count, cap;
};

/* Whether a live key's Rotate trigger has passed. */
static int rotation_due(struct ks_txn *tx, const MDB_val *hk, const struct head *h, int64_t now)
{
    const struct ks_lifetime_action *rot = NULL;
    for (size_t i = 0; i < h->policy.n_actions; i++) {
        if (h->policy.actions[i].rotate)
            rot = &h->policy.actions[i];
    }
    if (!h->policy.is_set || rot == NULL)
        return 0;
    struct loc l;
    memcpy(l.bytes, hk->mv_data, hk->mv_size);
    l.head_len = hk->mv_size;
    loc_set_version(&l, h->current);
    MDB_val v;
    if (ks_txn_get(tx, tx->env->db_keys, l.bytes, l.len, &v) != KV_OK)
        return 0;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    int64_t created = jint(o, "created"), exp = jint(o, "exp");
    cJSON_Delete(o);
    if (rot->after_create_s > 0)
        return created + rot->after_create_s <= now;
    if (rot->before_expiry_s > 0 && exp != 0)
        return exp - rot->before_expiry_s <= now;
    return 0;
}

/* The due purges and rotations among the heads of the `sweep` table. */
static enum kv_status sweep_scan_fn(struct ks_txn *tx, void *arg)
{
    struct sweep_arg *a = arg;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_sweep, &cur) != 0)
        return KV_ERR_STORE;
    int64_t now = ks_now();
    MDB_val k, v;
    enum kv_status st = KV_OK;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *kb = k.mv_data;
        const char *sep = memchr(kb, '\0', k.mv_size);
        if (sep == NULL || (size_t)(sep - kb) > KS_VAULT_NAME_MAX ||
            k.mv_size - (size_t)(sep - kb) - 1 > KS_NAME_MAX)
            continue;
        struct loc l;
        struct head h;
        if (!loc_of_head(&l, &k) || head_read(tx, &l, &h) != KV_OK)
            continue;
        enum head_state hs = head_state(&h, now);
        int purge = hs == HEAD_GONE;
        if (!purge && !(hs == HEAD_LIVE && rotation_due(tx, &k, &h, now)))
            continue;
        if (a->count == a->cap) {
            size_t ncap = a->cap ? a->cap * 2 : 16;
            struct sweep_item *n = realloc(a->items, ncap * sizeof(*n));
            if (n == NULL) {
                st = KV_ERR_NOMEM;
                break;
            }
            a->items = n;
            a->cap = ncap;
        }
        struct sweep_item *it = &a->items[a->count++];
        snprintf(it->vault, sizeof(it->vault), "%.*s", (int)(sep - kb), kb);
        snprintf(it->name, sizeof(it->name), "%s", h.name);
        memcpy(it->current, h.current, sizeof(it->current));
        it->purge = purge;
    }
    mdb_cursor_close(cur);
    return st;
}

int ks_sweep_index_current(struct ks_txn *tx, size_t last_txnid)
{
    MDB_val v;
    uint64_t id;
    if (ks_txn_get(tx, tx->env->db_sweep, KS_SWEEP_CLOSED, KS_SWEEP_CLOSED_LEN, &v) != KV_OK ||
        v.mv_size != sizeof(id))
        return 0;
    memcpy(&id, v.mv_data, sizeof(id));
    return id == (uint64_t)last_txnid;
}

enum kv_status ks_sweep_index_closed(struct ks_txn *tx)
{
    uint64_t id = (uint64_t)mdb_txn_id(tx->txn);
    return ks_txn_put(tx, tx->env->db_sweep, KS_SWEEP_CLOSED, KS_SWEEP_CLOSED_LEN, &id, sizeof(id));
}

enum kv_status ks_sweep_index_fill(struct ks_txn *tx)
{
    if (mdb_drop(tx->txn, tx->env->db_sweep, 0) != 0)
        return KV_ERR_STORE;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_heads, &cur) != 0)
        return KV_ERR_STORE;
    MDB_val k, v;
    enum kv_status st = KV_OK;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; rc == 0 && st == KV_OK; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        struct loc l;
        struct head h;
        if (loc_of_head(&l, &k) && head_read(tx, &l, &h) == KV_OK && sweep_wanted(&h))
            st = ks_txn_put(tx, tx->env->db_sweep, l.bytes, l.head_len, "", 0);
    }
    mdb_cursor_close(cur);
    if (st == KV_OK && rc != MDB_NOTFOUND)
        st = KV_ERR_STORE;
    return st;
}

struct purge_due_arg {
    const struct sweep_item *item;
};

static enum kv_status purge_due_fn(struct ks_txn *tx, void *arg)
{
    const struct sweep_item *it = ((struct purge_due_arg *)arg)->item;
    struct loc l;
    loc_init(&l, it->vault, it->name);
    struct head h;
    enum kv_status st = head_read(tx, &l, &h);
    if (st != KV_OK)
        return st == KV_ERR_KEY_NOT_FOUND ? KV_OK : st;
    if (head_state(&h, ks_now()) != HEAD_GONE)
        return KV_OK; /* changed since the scan */
    return purge_records(tx, &l);
}

enum kv_status ks_sweep(struct ks_env *env, size_t *purged, size_t *rotated)
{
    struct sweep_arg a = {0};
    size_t np = 0, nr = 0;
    enum kv_status first_failure = KV_OK;
    enum kv_status st = ks_vault_sweep(env, &np); /* deleted vaults past their date */
    if (st == KV_OK)
        st = ks_txn_read(env, sweep_scan_fn, &a);
    /* One item that fails does not hold up the others: each is its own transaction, and
     * the first failure is returned after all were tried (the next sweep tries it again). */
    for (size_t i = 0; st == KV_OK && i < a.count; i++) {
        const struct sweep_item *it = &a.items[i];
        enum kv_status one;
        if (it->purge) {
            struct purge_due_arg pa = {it};
            one = ks_txn_write(env, purge_due_fn, &pa);
            np += one == KV_OK;
        } else {
            struct ks_key *k = NULL;
            one = rotate(env, it->vault, it->name, it->current, &k);
            ks_key_free(k);
            nr += one == KV_OK;
            /* deleted or rotated since the scan, or its vault is in the deleted state */
            if (one == KV_ERR_KEY_NOT_FOUND || one == KV_ERR_VAULT_NOT_FOUND)
                one = KV_OK;
        }
        if (one != KV_OK) {
            kv_log(KV_LOG_WARN, "sweep: %s of key '%s' in vault '%s' failed: %s",
                   it->purge ? "purge" : "rotation", it->name, it->vault, kv_status_name(one));
            if (first_failure == KV_OK)
                first_failure = one;
        }
    }
    if (st == KV_OK)
        st = first_failure;
    free(a.items);
    if (purged != NULL)
        *purged = np;
    if (rotated != NULL)
        *rotated = nr;
    return st;
}

/* ---- whole vaults ---------------------------------------------------------------------- */

enum kv_status ks_vault_keys_purge(struct ks_txn *tx, const char *lname)
{
    size_t plen = strlen(lname) + 1;
    MDB_cursor *cur = NULL;
    for (;;) {
        /* the first head of the vault, again after each purge */
        if (mdb_cursor_open(tx->txn, tx->env->db_heads, &cur) != 0)
            return KV_ERR_STORE;
        MDB_val k = {plen, (void *)lname}, v;
        int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        struct loc l;
        int found = rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, lname, plen) == 0 &&
                    loc_of_head(&l, &k);
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return KV_ERR_STORE;
        if (!found)
            return KV_OK;
        enum kv_status st = purge_records(tx, &l);
        if (st != KV_OK)
            return st;
    }
}

static enum kv_status vault_delete_fn(struct ks_txn *tx, void *arg)
{
    const char *name = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, name, &vault);
    if (st == KV_OK)
        st = ks_vault_keys_purge(tx, vault.name);
    if (st == KV_OK)
        st = ks_secdomain_purge(tx, vault.name);
    if (st != KV_OK)
        return st;
    return ks_txn_del(tx, tx->env->db_vaults, vault.name, strlen(vault.name));
}

enum kv_status ks_vault_delete(struct ks_env *env, const char *name)
{
    if (!ks_vault_name_valid(name))
        return KV_ERR_VAULT_NOT_FOUND;
    return ks_txn_write(env, vault_delete_fn, (void *)name);
}

struct vault_list_arg {
    const char *after; /* lowercase; "" = from the start */
    char (*names)[KS_VAULT_NAME_MAX + 1];
    size_t cap, count;
};

static enum kv_status vault_list_fn(struct ks_txn *tx, void *arg)
{
    struct vault_list_arg *a = arg;
    MDB_cursor *cur = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_vaults, &cur) != 0)
        return KV_ERR_STORE;
    size_t alen = strlen(a->after);
    MDB_val k = {alen, (void *)a->after}, v;
    for (int rc = mdb_cursor_get(cur, &k, &v, alen ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (memchr(k.mv_data, '\0', k.mv_size) != NULL)
            continue; /* a deleted vault's or a group's record (vaults.c, groups.c) */
        if (alen && k.mv_size == alen && memcmp(k.mv_data, a->after, alen) == 0)
            continue; /* the names after it */
        if (a->count < a->cap && k.mv_size <= KS_VAULT_NAME_MAX) {
            memcpy(a->names[a->count], k.mv_data, k.mv_size);
            a->names[a->count][k.mv_size] = '\0';
        }
        a->count++;
    }
    mdb_cursor_close(cur);
    return KV_OK;
}

size_t ks_vault_list(struct ks_env *env, char (*names)[KS_VAULT_NAME_MAX + 1], size_t cap)
{
    return ks_vault_list_from(env, NULL, names, cap);
}

size_t ks_vault_list_from(struct ks_env *env, const char *after,
                          char (*names)[KS_VAULT_NAME_MAX + 1], size_t cap)
{
    char lafter[KS_VAULT_NAME_MAX + 1] = "";
    if (after != NULL && after[0] != '\0' && ks_vault_lower(after, lafter) == 0)
        return 0; /* not a vault name: the list is empty (see ks.h) */
    struct vault_list_arg a = {lafter, names, cap, 0};
    if (ks_txn_read(env, vault_list_fn, &a) != KV_OK)
        return 0;
    return a.count;
}

struct count_arg {
    const char *vault;
    size_t live, deleted;
};

/* Count the vault's heads without reading them, then take out the deleted ones
 * and those past their purge date, which are all in the `sweep` table: a count
 * parses the few deleted and rotating keys, not every key of the vault. */
static enum kv_status count_fn(struct ks_txn *tx, void *arg)
{
    struct count_arg *a = arg;
    char prefix[KS_VAULT_NAME_MAX + 2];
    size_t plen = strlen(a->vault) + 1;
    lower(prefix, a->vault, plen - 1);
    prefix[plen - 1] = '\0';
    MDB_cursor *heads = NULL, *sweep = NULL;
    if (mdb_cursor_open(tx->txn, tx->env->db_heads, &heads) != 0)
        return KV_ERR_STORE;
    if (mdb_cursor_open(tx->txn, tx->env->db_sweep, &sweep) != 0) {
        mdb_cursor_close(heads);
        return KV_ERR_STORE;
    }
    size_t all = 0, gone = 0;
    MDB_val k = {plen, prefix}, v;
    for (int rc = mdb_cursor_get(heads, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
         rc = mdb_cursor_get(heads, &k, &v, MDB_NEXT))
        all++;
    int64_t now = ks_now();
    k = (MDB_val){plen, prefix};
    for (int rc = mdb_cursor_get(sweep, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size >= plen && memcmp(k.mv_data, prefix, plen) == 0;
         rc = mdb_cursor_get(sweep, &k, &v, MDB_NEXT)) {
        struct loc l;
        struct head h;
        if (!loc_of_head(&l, &k) || head_read(tx, &l, &h) != KV_OK)
            continue;
        enum head_state hs = head_state(&h, now);
        a->deleted += hs == HEAD_DELETED;
        gone += hs == HEAD_GONE;
    }
    mdb_cursor_close(heads);
    mdb_cursor_close(sweep);
    a->live = all - a->deleted - gone;
    return KV_OK;
}

enum kv_status ks_vault_key_count(struct ks_env *env, const char *name, size_t *live,
                                  size_t *deleted)
{
    struct count_arg a = {name, 0, 0};
    if (strlen(name) > KS_VAULT_NAME_MAX)
        return KV_ERR_VAULT_NOT_FOUND;
    enum kv_status st = ks_txn_read(env, count_fn, &a);
    *live = a.live;
    *deleted = a.deleted;
    return st;
}
