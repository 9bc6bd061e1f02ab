/* Key records and versions: create, get, list, list versions, key operations.
 *
 * Records are JSON text. A version record (db `keys`, key vault\0name\0version)
 * holds the public JWK parts, attributes, tags, key_ops and the sealed private
 * material; a head record (db `heads`, key vault\0name) names the current
 * version and the deleted state. Names in LMDB keys are lowercase, so lookups
 * are case-insensitive; records keep the original casing.
 */
#include <cjson/cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crypto.h"
#include "store.h"

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
    return cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *name)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : NULL;
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

static int add_b64(cJSON *o, const char *name, const struct kv_buf *b)
{
    if (b->len == 0)
        return 1;
    char *s = NULL;
    if (kv_b64url_encode(b->data, b->len, &s) != KV_OK)
        return 0;
    int ok = cJSON_AddStringToObject(o, name, s) != NULL;
    free(s);
    return ok;
}

/* ---- tags ---------------------------------------------------------------------- */

void ks_tags_clear(struct ks_tags *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->count; i++) {
        free(t->names[i]);
        free(t->values[i]);
    }
    free(t->names);
    free(t->values);
    t->names = t->values = NULL;
    t->count = 0;
}

static enum kv_status tags_from_json(const cJSON *o, struct ks_tags *out)
{
    struct ks_tags t = {0};
    int n = cJSON_GetArraySize(o);
    if (n == 0) {
        *out = t;
        return KV_OK;
    }
    t.names = calloc((size_t)n, sizeof(char *));
    t.values = calloc((size_t)n, sizeof(char *));
    if (t.names == NULL || t.values == NULL)
        goto fail;
    const cJSON *it;
    cJSON_ArrayForEach(it, o)
    {
        if (!cJSON_IsString(it))
            continue;
        t.names[t.count] = strdup(it->string);
        t.values[t.count] = strdup(it->valuestring);
        t.count++;
        if (t.names[t.count - 1] == NULL || t.values[t.count - 1] == NULL)
            goto fail;
    }
    *out = t;
    return KV_OK;
fail:
    ks_tags_clear(&t);
    free(t.names);
    free(t.values);
    return KV_ERR_NOMEM;
}

static cJSON *tags_to_json(const struct ks_tags *t)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; o != NULL && i < t->count; i++) {
        if (cJSON_AddStringToObject(o, t->names[i], t->values[i]) == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
    }
    return o;
}

/* ---- keys ----------------------------------------------------------------------- */

void ks_key_free(struct ks_key *k)
{
    if (k == NULL)
        return;
    ks_pub_clear(&k->pub);
    ks_tags_clear(&k->tags);
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
        st = tags_from_json(tags, &k->tags);
        if (st != KV_OK)
            goto out;
    }
    set_recovery(k, vault);
    *out = k;
    k = NULL;
    st = KV_OK;
out:
    ks_key_free(k);
    cJSON_Delete(o);
    return st;
}

/* A head record: current version and deleted state. */
struct head {
    char name[KS_NAME_MAX + 1];
    char current[KS_VERSION_LEN + 1];
    int64_t deleted_date;
    int64_t scheduled_purge;
};

static enum kv_status head_read(struct ks_txn *tx, const struct loc *l, struct head *out)
{
    MDB_val v;
    enum kv_status st = ks_txn_get(tx, tx->env->db_heads, l->bytes, l->head_len, &v);
    if (st != KV_OK)
        return st;
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (o == NULL)
        return KV_ERR_STORE;
    const char *name = jstr(o, "name"), *cur = jstr(o, "current");
    st = KV_ERR_STORE;
    if (name != NULL && cur != NULL && strlen(cur) == KS_VERSION_LEN) {
        snprintf(out->name, sizeof(out->name), "%s", name);
        memcpy(out->current, cur, KS_VERSION_LEN + 1);
        out->deleted_date = jint(o, "deleted");
        out->scheduled_purge = jint(o, "purge");
        st = KV_OK;
    }
    cJSON_Delete(o);
    return st;
}

static enum kv_status head_write(struct ks_txn *tx, const struct loc *l, const struct head *h)
{
    enum kv_status st = KV_ERR_NOMEM;
    cJSON *o = cJSON_CreateObject();
    char *json = NULL;
    if (o == NULL || !cJSON_AddStringToObject(o, "name", h->name) ||
        !cJSON_AddStringToObject(o, "current", h->current) ||
        !cJSON_AddNumberToObject(o, "deleted", (double)h->deleted_date) ||
        !cJSON_AddNumberToObject(o, "purge", (double)h->scheduled_purge))
        goto out;
    json = cJSON_PrintUnformatted(o);
    if (json == NULL)
        goto out;
    st = ks_txn_put(tx, tx->env->db_heads, l->bytes, l->head_len, json, strlen(json));
out:
    cJSON_Delete(o);
    cJSON_free(json);
    return st;
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
static enum kv_status record_json(const struct ks_key *k, const struct kv_buf *sealed,
                                  char **out)
{
    enum kv_status st = KV_ERR_NOMEM;
    cJSON *o = cJSON_CreateObject();
    cJSON *tags = tags_to_json(&k->tags);
    const char *crv = ks_crv_name(k->pub.crv);
    if (o == NULL || tags == NULL)
        goto out;
    if (!cJSON_AddStringToObject(o, "name", k->name) ||
        !cJSON_AddStringToObject(o, "kty", ks_kty_name(k->kty, k->hsm)) ||
        !cJSON_AddNumberToObject(o, "ops", k->ops) ||
        !cJSON_AddBoolToObject(o, "enabled", k->attrs.enabled) ||
        !cJSON_AddBoolToObject(o, "exportable", k->attrs.exportable) ||
        !cJSON_AddNumberToObject(o, "nbf", (double)k->attrs.nbf) ||
        !cJSON_AddNumberToObject(o, "exp", (double)k->attrs.exp) ||
        !cJSON_AddNumberToObject(o, "created", (double)k->attrs.created) ||
        !cJSON_AddNumberToObject(o, "updated", (double)k->attrs.updated) ||
        !cJSON_AddNumberToObject(o, "bits", k->pub.size_bits) ||
        (crv != NULL && !cJSON_AddStringToObject(o, "crv", crv)) || !add_b64(o, "n", &k->pub.n) ||
        !add_b64(o, "e", &k->pub.e) || !add_b64(o, "x", &k->pub.x) ||
        !add_b64(o, "y", &k->pub.y) || !add_b64(o, "sealed", sealed))
        goto out;
    cJSON_AddItemToObject(o, "tags", tags);
    tags = NULL;
    char *json = cJSON_PrintUnformatted(o);
    if (json == NULL)
        goto out;
    *out = json;
    st = KV_OK;
out:
    cJSON_Delete(tags);
    cJSON_Delete(o);
    return st;
}

struct create_arg {
    const char *vault;
    struct loc *l;
    struct ks_key *key; /* filled: name, version, pub, attrs, tags, ops */
    const char *record;
};

static enum kv_status create_fn(struct ks_txn *tx, void *arg)
{
    struct create_arg *a = arg;
    struct ks_vault vault;
    enum kv_status st = ks_vault_read(tx, a->vault, &vault);
    if (st != KV_OK)
        return st;
    struct head h;
    st = head_read(tx, a->l, &h);
    if (st == KV_OK && h.deleted_date != 0)
        return KV_ERR_KEY_DELETED_RECOVERABLE;
    if (st != KV_OK && st != KV_ERR_KEY_NOT_FOUND)
        return st;
    if (st == KV_ERR_KEY_NOT_FOUND) {
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

static enum kv_status vault_exists_fn(struct ks_txn *tx, void *arg)
{
    struct ks_vault v;
    return ks_vault_read(tx, arg, &v);
}

enum kv_status ks_key_create(struct ks_env *env, const char *vault, const char *name,
                             const struct ks_create *p, struct ks_key **out)
{
    if (!ks_key_name_valid(name))
        return KV_ERR_BAD_KEY_NAME;
    /* Refuse an unknown vault before spending seconds on an RSA key. */
    enum kv_status st = ks_txn_read(env, vault_exists_fn, (void *)vault);
    if (st != KV_OK)
        return st;

    struct ks_material *m = NULL;
    struct kv_buf priv = {0}, sealed = {0};
    char *record = NULL;
    struct loc l;
    struct ks_key *k = calloc(1, sizeof(*k));
    if (k == NULL)
        return KV_ERR_NOMEM;

    int bits = p->size_bits;
    if (bits == 0)
        bits = p->kty == KS_KTY_OCT ? 256 : 2048;
    st = ks_material_generate(p->kty, bits, p->exponent ? p->exponent : 65537,
                              p->crv != KS_CRV_NONE ? p->crv : KS_CRV_P256, &m);
    if (st != KV_OK)
        goto out;
    st = ks_material_public(m, &k->pub);
    if (st != KV_OK)
        goto out;
    snprintf(k->name, sizeof(k->name), "%s", name);
    new_version(k->version);
    k->kty = p->kty;
    k->hsm = p->hsm;
    k->ops = p->ops_set ? p->ops : default_ops(p->kty);
    k->attrs = p->attrs;
    k->attrs.created = k->attrs.updated = ks_now();
    st = tags_copy(&p->tags, &k->tags);
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

    struct create_arg a = {vault, &l, k, record};
    st = ks_txn_write(env, create_fn, &a);
    if (st != KV_OK)
        goto out;
    /* Warm the cache: the new version is likely used next. */
    ks_cache_release(env->cache, ks_cache_put(env->cache, l.bytes, l.len, m));
    m = NULL;
    *out = k;
    k = NULL;
out:
    ks_material_free(m);
    kv_buf_wipe(&priv);
    kv_buf_free(&sealed);
    cJSON_free(record);
    ks_key_free(k);
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
    if (h.deleted_date != 0)
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
    return key_from_record(&v, version, &vault, &a->key);
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

/* Whether a head record is live; sets its current version. */
static int head_live(const MDB_val *v, char current[KS_VERSION_LEN + 1])
{
    cJSON *o = cJSON_ParseWithLength(v->mv_data, v->mv_size);
    const char *cur = o ? jstr(o, "current") : NULL;
    int live = cur != NULL && strlen(cur) == KS_VERSION_LEN && jint(o, "deleted") == 0;
    if (live)
        memcpy(current, cur, KS_VERSION_LEN + 1);
    cJSON_Delete(o);
    return live;
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
        return key_from_record(v, version, vault, item);
    }
    /* A key: its head, if live, names the current version. */
    if (rest > KS_NAME_MAX || memchr(suffix, 0, rest) != NULL || !head_live(v, version))
        return KV_OK;
    struct loc kl;
    memcpy(kl.bytes, k->mv_data, k->mv_size);
    kl.head_len = k->mv_size;
    loc_set_version(&kl, version);
    MDB_val rv;
    enum kv_status st = ks_txn_get(tx, tx->env->db_keys, kl.bytes, kl.len, &rv);
    if (st != KV_OK)
        return st;
    return key_from_record(&rv, version, vault, item);
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
        if (h.deleted_date != 0)
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
                                  const char *skiptoken, int max, struct ks_key_page **out)
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
    struct list_arg a = {vault, name, after, after_len, max, page};
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
    return list_common(env, vault, NULL, skiptoken, max, out);
}

enum kv_status ks_key_list_versions(struct ks_env *env, const char *vault, const char *name,
                                    const char *skiptoken, int max, struct ks_key_page **out)
{
    return list_common(env, vault, name, skiptoken, max, out);
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
};

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
    cJSON *o = cJSON_ParseWithLength(v.mv_data, v.mv_size);
    if (o == NULL)
        return KV_ERR_STORE;
    const char *kty = jstr(o, "kty"), *stored = jstr(o, "name");
    int hsm = 0;
    snprintf(a->stored_name, sizeof(a->stored_name), "%s", stored ? stored : "");
    int64_t now = ks_now(), nbf = jint(o, "nbf"), exp = jint(o, "exp");
    if (kty == NULL || ks_kty_parse(kty, &a->kty, &hsm) != KV_OK)
        st = KV_ERR_STORE;
    else if (((unsigned)jint(o, "ops") & a->op) == 0)
        st = KV_ERR_KEY_OP_FORBIDDEN;
    else if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "enabled")))
        st = KV_ERR_KEY_DISABLED;
    else if (nbf != 0 && now < nbf)
        st = KV_ERR_KEY_NOT_YET_VALID;
    else if (exp != 0 && now >= exp)
        st = KV_ERR_KEY_EXPIRED;
    else if (a->need_sealed)
        st = jbuf(o, "sealed", &a->sealed);
    cJSON_Delete(o);
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
