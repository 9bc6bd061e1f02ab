/*
 * Secure key release (pol.h): the attestation authorities kvmock trusts, release policies in
 * Key Vault's grammar, and the decision on a release's attestation token.
 *
 * A release policy, as Key Vault stores it:
 *
 *   {"version":"1.0.0","anyOf":[{"authority":"https://...","allOf":[
 *       {"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"},
 *       {"anyOf":[{"claim":"x-ms-sevsnpvm-guestsvn","greater":2}, ...]}, ...]}]}
 *
 * The top level is an anyOf over authority objects; each holds allOf or anyOf over
 * conditions; a condition is a claim and one operator, or a nested allOf/anyOf. Everything
 * here is public (policies, tokens, the authorities' keys): nothing is wiped.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "jose.h"
#include "kv_buf.h"

#define MALFORMED "AKV.SKR.1013: Malformed Key Release Policy - "
#define OPERATORS "equals, notEquals, less, lessOrEquals, greater, greaterOrEquals or exists"

struct pol_authority {
    char url[POL_AUTHORITY_MAX];
    struct jose_key keys[POL_JWKS_KEYS_MAX];
    size_t n_keys;
};

static void say(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void say(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    if (cap == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}

/* An https URL with a host, no white space or control characters. */
static int https_url(const char *s)
{
    if (strncasecmp(s, "https://", 8) != 0 || s[8] == '\0' || strchr("/?#", s[8]) != NULL)
        return 0;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++)
        if (*p <= ' ' || *p == 0x7f)
            return 0;
    return 1;
}

/* Whether two authorities are the same, one trailing slash ignored on either side. */
static int same_authority(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return 0;
    size_t la = strlen(a), lb = strlen(b);
    la -= la > 0 && a[la - 1] == '/';
    lb -= lb > 0 && b[lb - 1] == '/';
    return la == lb && memcmp(a, b, la) == 0;
}

/* ---- trusted attestation authorities --------------------------------------------------- */

void pol_release_free_authorities(struct pol_ctx *ctx)
{
    for (size_t i = 0; i < ctx->n_authorities; i++)
        jose_keys_free(ctx->authorities[i].keys, ctx->authorities[i].n_keys);
    free(ctx->authorities);
    ctx->authorities = NULL;
    ctx->n_authorities = 0;
}

enum kv_status pol_attestation_trust(struct pol_ctx *ctx, const char *authority, const char *jwks,
                                     size_t jwks_len, char *err, size_t cap)
{
    if (authority == NULL || !https_url(authority)) {
        say(err, cap, "the attestation authority must be an https:// URL");
        return KV_ERR_BAD_PARAM;
    }
    if (strlen(authority) >= POL_AUTHORITY_MAX) {
        say(err, cap, "the attestation authority is longer than %d bytes", POL_AUTHORITY_MAX - 1);
        return KV_ERR_BAD_PARAM;
    }
    for (size_t i = 0; i < ctx->n_authorities; i++) {
        if (same_authority(ctx->authorities[i].url, authority)) {
            say(err, cap, "the attestation authority '%s' is already trusted", authority);
            return KV_ERR_BAD_PARAM;
        }
    }
    if (ctx->n_authorities >= POL_AUTHORITIES_MAX) {
        say(err, cap, "more than %d attestation authorities", POL_AUTHORITIES_MAX);
        return KV_ERR_BAD_PARAM;
    }
    struct pol_authority *a = calloc(1, sizeof(*a));
    if (a == NULL)
        return KV_ERR_NOMEM;
    snprintf(a->url, sizeof(a->url), "%s", authority);
    enum kv_status st = jose_jwks_read(jwks, jwks_len, JOSE_JWKS_X5C, a->keys, POL_JWKS_KEYS_MAX,
                                       &a->n_keys, err, cap);
    if (st == KV_OK) {
        struct pol_authority *grown =
            realloc(ctx->authorities, (ctx->n_authorities + 1) * sizeof(*grown));
        if (grown == NULL) {
            st = KV_ERR_NOMEM;
        } else {
            ctx->authorities = grown;
            grown[ctx->n_authorities++] = *a;
            a->n_keys = 0; /* the keys are the context's now */
        }
    }
    jose_keys_free(a->keys, a->n_keys);
    free(a);
    return st;
}

const char *pol_attestation_authority_at(const struct pol_ctx *ctx, size_t i)
{
    return i < ctx->n_authorities ? ctx->authorities[i].url : NULL;
}

/* ---- numbers ------------------------------------------------------------------------------- */

/* A number's text, as cJSON prints it (an integer plainly, else the shortest of 15 or 17
 * significant digits that reads back): the text of a number claim, and of a number in a
 * policy. */
static void num_text(double d, char out[32])
{
    if (d >= -2147483648.0 && d <= 2147483647.0 && d == (double)(int)d) {
        snprintf(out, 32, "%d", (int)d);
        return;
    }
    snprintf(out, 32, "%1.15g", d);
    if (strtod(out, NULL) != d)
        snprintf(out, 32, "%1.17g", d);
}

/* A string that is a JSON number (as "2" or "-1.5e3"), finite. */
static int numeric_text(const char *s, double *out)
{
    const char *p = s;
    p += *p == '-';
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9')
        p += strspn(p, "0123456789");
    else
        return 0;
    if (*p == '.') {
        size_t n = strspn(p + 1, "0123456789");
        if (n == 0)
            return 0;
        p += 1 + n;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        p += *p == '+' || *p == '-';
        size_t n = strspn(p, "0123456789");
        if (n == 0)
            return 0;
        p += n;
    }
    if (*p != '\0')
        return 0;
    *out = strtod(s, NULL);
    return isfinite(*out);
}

/* ---- release policies: grammar and normal form -------------------------------------------- */

enum op { OP_EQUALS, OP_NOT_EQUALS, OP_LESS, OP_LESS_EQ, OP_GREATER, OP_GREATER_EQ, OP_EXISTS };

static const char *const op_names[] = {
    [OP_EQUALS] = "equals",   [OP_NOT_EQUALS] = "notEquals",
    [OP_LESS] = "less",       [OP_LESS_EQ] = "lessOrEquals",
    [OP_GREATER] = "greater", [OP_GREATER_EQ] = "greaterOrEquals",
    [OP_EXISTS] = "exists",
};
#define N_OPS (sizeof(op_names) / sizeof(op_names[0]))

static int op_of(const char *name)
{
    for (size_t i = 0; name != NULL && i < N_OPS; i++)
        if (strcmp(name, op_names[i]) == 0)
            return (int)i;
    return -1;
}

/* Where a policy is being read, for its error messages ("anyOf[0].allOf[2]"). */
struct norm {
    char *err;
    size_t cap;
    char path[200];
    size_t len;
};

static enum kv_status malformed(struct norm *n, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum kv_status malformed(struct norm *n, const char *fmt, ...)
{
    char what[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    say(n->err, n->cap, MALFORMED "%s%s%s", n->path, n->len ? ": " : "", what);
    return KV_ERR_BAD_PARAM;
}

/* Go into member @p name, element @p i of the current place; returns where to come back to. */
static size_t path_push(struct norm *n, const char *name, size_t i)
{
    size_t was = n->len;
    int k = snprintf(n->path + was, sizeof(n->path) - was, "%s%s[%zu]", was ? "." : "", name, i);
    n->len = k < 0 || (size_t)k >= sizeof(n->path) - was ? sizeof(n->path) - 1 : was + (size_t)k;
    return was;
}

static void path_pop(struct norm *n, size_t was)
{
    n->len = was;
    n->path[was] = '\0';
}

/* An object's members: each one of @p names, none twice; found[i] is member names[i]. */
static enum kv_status members(struct norm *n, const cJSON *o, const char *const *names,
                              size_t count, const cJSON **found)
{
    for (size_t i = 0; i < count; i++)
        found[i] = NULL;
    for (const cJSON *m = o->child; m != NULL; m = m->next) {
        size_t i = 0;
        while (i < count && strcmp(m->string, names[i]) != 0)
            i++;
        if (i == count)
            return malformed(n, "unknown property '%.64s'", m->string);
        if (found[i] != NULL)
            return malformed(n, "duplicate property '%.64s'", m->string);
        found[i] = m;
    }
    return KV_OK;
}

/* A new object at the end of array @p list. */
static cJSON *push_object(cJSON *list)
{
    cJSON *o = cJSON_CreateObject();
    if (o != NULL && !cJSON_AddItemToArray(list, o)) {
        cJSON_Delete(o);
        o = NULL;
    }
    return o;
}

static enum kv_status group(struct norm *n, const cJSON *list, const char *name, int depth,
                            cJSON *out);

/* An operator's value in its normal form: equals and notEquals as text, the comparisons as
 * numbers, exists as a boolean. @p name is the member that held it (the operator, or "value"
 * in the older form). */
static enum kv_status op_value(struct norm *n, int op, const char *name, const cJSON *v, cJSON *out)
{
    char text[32];
    double d = 0;
    const cJSON *added = NULL;
    if (op == OP_EQUALS || op == OP_NOT_EQUALS) {
        const char *s = cJSON_IsString(v)  ? v->valuestring
                        : cJSON_IsTrue(v)  ? "true"
                        : cJSON_IsFalse(v) ? "false"
                                           : NULL;
        if (s == NULL && cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
            num_text(v->valuedouble, text);
            s = text;
        }
        if (s == NULL)
            return malformed(n, "'%s' must be a string, a number or a boolean", name);
        added = cJSON_AddStringToObject(out, op_names[op], s);
    } else if (op == OP_EXISTS) {
        if (!cJSON_IsBool(v))
            return malformed(n, "'%s' must be a boolean", name);
        added = cJSON_AddBoolToObject(out, op_names[op], cJSON_IsTrue(v));
    } else {
        if (cJSON_IsNumber(v) && isfinite(v->valuedouble))
            d = v->valuedouble;
        else if (!cJSON_IsString(v) || !numeric_text(v->valuestring, &d))
            return malformed(n, "'%s' must be a number", name);
        num_text(d, text);
        added = cJSON_AddRawToObject(out, op_names[op], text);
    }
    return added != NULL ? KV_OK : KV_ERR_NOMEM;
}

/* One condition of an allOf/anyOf list, appended to @p list in its normal form. */
static enum kv_status condition(struct norm *n, const cJSON *c, int depth, cJSON *list)
{
    if (!cJSON_IsObject(c))
        return malformed(n, "a condition must be an object");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(c, "allOf");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(c, "anyOf");
    if (all != NULL || any != NULL) {
        const char *name = all ? "allOf" : "anyOf";
        if (c->child->next != NULL)
            return malformed(n, "a nested '%s' must be the condition's only property", name);
        cJSON *o = push_object(list);
        return o == NULL ? KV_ERR_NOMEM : group(n, all ? all : any, name, depth + 1, o);
    }
    /* claim, the operators, and the older form's condition and value */
    const char *names[N_OPS + 3] = {"claim"};
    const cJSON *found[N_OPS + 3];
    for (size_t i = 0; i < N_OPS; i++)
        names[1 + i] = op_names[i];
    names[N_OPS + 1] = "condition";
    names[N_OPS + 2] = "value";
    enum kv_status st = members(n, c, names, N_OPS + 3, found);
    if (st != KV_OK)
        return st;
    const cJSON *claim = found[0], *old = found[N_OPS + 1], *value = found[N_OPS + 2];
    if (claim == NULL)
        return malformed(n, "missing 'claim' property");
    if (!cJSON_IsString(claim) || claim->valuestring[0] == '\0')
        return malformed(n, "'claim' must be a non-empty string");
    int op = -1, count = 0;
    for (size_t i = 0; i < N_OPS; i++) {
        if (found[1 + i] != NULL) {
            count++;
            op = (int)i;
        }
    }
    const char *vname = op >= 0 ? op_names[op] : "value";
    if (old != NULL) {
        if (count > 0)
            return malformed(n, "more than one operator ('condition' and '%s')", op_names[op]);
        op = cJSON_IsString(old) ? op_of(old->valuestring) : -1;
        if (op < 0)
            return malformed(n, "'condition' must be one of " OPERATORS);
        if (value == NULL)
            return malformed(n, "missing 'value' property");
    } else {
        if (value != NULL)
            return malformed(n, "'value' without 'condition'");
        if (count == 0)
            return malformed(n, "missing an operator (" OPERATORS ")");
        if (count > 1)
            return malformed(n, "more than one operator");
        value = found[1 + op];
    }
    cJSON *o = push_object(list);
    if (o == NULL || cJSON_AddStringToObject(o, "claim", claim->valuestring) == NULL)
        return KV_ERR_NOMEM;
    return op_value(n, op, vname, value, o);
}

/* An allOf/anyOf list (member @p name, at nesting @p depth), into @p out as that member. */
static enum kv_status group(struct norm *n, const cJSON *list, const char *name, int depth,
                            cJSON *out)
{
    if (depth > POL_RELEASE_DEPTH_MAX)
        return malformed(n, "'%s' nested deeper than %d levels", name, POL_RELEASE_DEPTH_MAX);
    if (!cJSON_IsArray(list) || list->child == NULL)
        return malformed(n, "'%s' must be a non-empty array of conditions", name);
    cJSON *conds = cJSON_AddArrayToObject(out, name);
    if (conds == NULL)
        return KV_ERR_NOMEM;
    size_t i = 0;
    enum kv_status st = KV_OK;
    for (const cJSON *c = list->child; c != NULL && st == KV_OK; c = c->next) {
        size_t was = path_push(n, name, i++);
        st = condition(n, c, depth, conds);
        if (st == KV_OK)
            path_pop(n, was);
    }
    return st;
}

/* One authority object of the top-level anyOf. */
static enum kv_status authority_object(struct norm *n, const cJSON *a, cJSON *list)
{
    static const char *const names[] = {"authority", "allOf", "anyOf"};
    const cJSON *found[3];
    if (!cJSON_IsObject(a))
        return malformed(n, "must be an object with 'authority' and 'allOf' or 'anyOf'");
    enum kv_status st = members(n, a, names, 3, found);
    if (st != KV_OK)
        return st;
    if (found[0] == NULL)
        return malformed(n, "missing 'authority' property");
    if (!cJSON_IsString(found[0]) || !https_url(found[0]->valuestring) ||
        strlen(found[0]->valuestring) >= POL_AUTHORITY_MAX)
        return malformed(n, "'authority' must be an https:// URL of at most %d bytes",
                         POL_AUTHORITY_MAX - 1);
    if (found[1] != NULL && found[2] != NULL)
        return malformed(n, "has both 'allOf' and 'anyOf'");
    if (found[1] == NULL && found[2] == NULL)
        return malformed(n, "missing 'allOf' or 'anyOf' property");
    cJSON *o = push_object(list);
    if (o == NULL || cJSON_AddStringToObject(o, "authority", found[0]->valuestring) == NULL)
        return KV_ERR_NOMEM;
    return found[1] ? group(n, found[1], "allOf", 2, o) : group(n, found[2], "anyOf", 2, o);
}

/* A policy document read and put in its normal form (as a tree, numbers as raw text). */
static enum kv_status policy_tree(const char *doc, size_t len, cJSON **out, char *err, size_t cap)
{
    static const char *const names[] = {"version", "anyOf"};
    struct norm n = {.err = err, .cap = cap};
    const cJSON *found[2];
    cJSON *in = NULL, *res = NULL;
    *out = NULL;
    if (len > POL_RELEASE_POLICY_MAX)
        return malformed(&n, "the policy is longer than %d bytes", POL_RELEASE_POLICY_MAX);
    enum kv_status st = jose_json_parse(doc, len, 1, &in);
    if (st == KV_ERR_BAD_PARAM)
        say(err, cap, MALFORMED "Unable to Json Deserialize the policy object.");
    if (st != KV_OK)
        return st;
    if (!cJSON_IsObject(in)) {
        st = malformed(&n, "the policy must be a JSON object");
        goto out;
    }
    if ((st = members(&n, in, names, 2, found)) != KV_OK)
        goto out;
    const cJSON *version = found[0], *any = found[1];
    st = KV_ERR_BAD_PARAM;
    if (version == NULL)
        malformed(&n, "missing 'version' property");
    else if (!cJSON_IsString(version) || (strcmp(version->valuestring, "1.0.0") != 0 &&
                                          strcmp(version->valuestring, "1.0") != 0))
        malformed(&n, "'version' must be \"1.0.0\" (or the older \"1.0\")");
    else if (any == NULL)
        malformed(&n, "missing 'anyOf' property");
    else if (!cJSON_IsArray(any) || any->child == NULL)
        malformed(&n, "'anyOf' must be a non-empty array of authority objects");
    else
        st = KV_OK;
    if (st != KV_OK)
        goto out;
    cJSON *list = NULL;
    st = KV_ERR_NOMEM;
    if ((res = cJSON_CreateObject()) == NULL ||
        cJSON_AddStringToObject(res, "version", version->valuestring) == NULL ||
        (list = cJSON_AddArrayToObject(res, "anyOf")) == NULL)
        goto out;
    st = KV_OK;
    size_t i = 0;
    for (const cJSON *a = any->child; a != NULL && st == KV_OK; a = a->next) {
        size_t was = path_push(&n, "anyOf", i++);
        st = authority_object(&n, a, list);
        path_pop(&n, was);
    }
    if (st == KV_OK) {
        *out = res;
        res = NULL;
    }
out:
    cJSON_Delete(res);
    cJSON_Delete(in);
    return st;
}

enum kv_status pol_release_policy_normalize(const char *doc, size_t len, char **out, char *err,
                                            size_t cap)
{
    cJSON *tree = NULL;
    enum kv_status st = policy_tree(doc, len, &tree, err, cap);
    if (st != KV_OK)
        return st;
    char *text = cJSON_PrintUnformatted(tree);
    cJSON_Delete(tree);
    if (text == NULL)
        return KV_ERR_NOMEM;
    if (strlen(text) > POL_RELEASE_POLICY_MAX) { /* numbers written out can grow it */
        cJSON_free(text);
        say(err, cap, MALFORMED "the policy is longer than %d bytes", POL_RELEASE_POLICY_MAX);
        return KV_ERR_BAD_PARAM;
    }
    char *copy = strdup(text); /* cJSON's allocator is not necessarily malloc */
    cJSON_free(text);
    if (copy == NULL)
        return KV_ERR_NOMEM;
    *out = copy;
    return KV_OK;
}

/* ---- deciding a release -------------------------------------------------------------------- */

void pol_release_target_clear(struct pol_release_target *t)
{
    kv_buf_free(&t->n);
    kv_buf_free(&t->e);
    t->kid[0] = '\0';
}

/* The value at a dotted claim path ("x-ms-isolation-tee.x-ms-attestation-type"), or NULL. */
static const cJSON *claim_at(const cJSON *claims, const char *path)
{
    const cJSON *cur = claims;
    for (const char *p = path;;) {
        size_t len = strcspn(p, ".");
        const cJSON *hit = NULL;
        for (const cJSON *m = cJSON_IsObject(cur) ? cur->child : NULL; m && !hit; m = m->next)
            if (strncmp(m->string, p, len) == 0 && m->string[len] == '\0')
                hit = m;
        if (hit == NULL || p[len] == '\0')
            return hit;
        cur = hit;
        p += len + 1;
    }
}

/* A claim as text, as equals and notEquals compare it: a string as it is, a boolean "true" or
 * "false", a number its decimal form; NULL for null, objects and arrays. */
static const char *claim_text(const cJSON *v, char buf[32])
{
    if (cJSON_IsString(v))
        return v->valuestring;
    if (cJSON_IsBool(v))
        return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        num_text(v->valuedouble, buf);
        return buf;
    }
    return NULL;
}

/* A claim as a number: a number, or a string that is one. */
static int claim_number(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
        *out = v->valuedouble;
        return 1;
    }
    return cJSON_IsString(v) && numeric_text(v->valuestring, out);
}

static int conditions_met(const cJSON *list, int all, const cJSON *claims, char *why, size_t cap);

/* Whether one condition (of a normalized policy) holds; if not, why. */
static int condition_met(const cJSON *c, const cJSON *claims, char *why, size_t cap)
{
    const cJSON *first = c->child;
    if (first == NULL || first->string == NULL) {
        say(why, cap, "the policy has an empty condition");
        return 0;
    }
    if (strcmp(first->string, "allOf") == 0 || strcmp(first->string, "anyOf") == 0)
        return conditions_met(first, first->string[1] == 'l', claims, why, cap);
    const char *name = jose_str(c, "claim");
    const cJSON *want = first->next;
    int op = want ? op_of(want->string) : -1;
    if (name == NULL || op < 0) {
        say(why, cap, "the policy has a condition without a claim and an operator");
        return 0;
    }
    const cJSON *v = claim_at(claims, name);
    if (op == OP_EXISTS) {
        if ((v != NULL) == cJSON_IsTrue(want))
            return 1;
        say(why, cap, "claim '%.100s' is %sin the token", name, v ? "" : "not ");
        return 0;
    }
    if (v == NULL) {
        say(why, cap, "claim '%.100s' is not in the token", name);
        return 0;
    }
    char buf[32];
    if (op == OP_EQUALS || op == OP_NOT_EQUALS) {
        const char *text = claim_text(v, buf);
        if (text == NULL) {
            say(why, cap, "claim '%.100s' is not a string, a number or a boolean", name);
            return 0;
        }
        int equal = cJSON_IsString(want) && strcmp(text, want->valuestring) == 0;
        if (equal == (op == OP_EQUALS))
            return 1;
        say(why, cap, "claim '%.100s' is %s\"%.100s\"", name, equal ? "" : "not ",
            cJSON_IsString(want) ? want->valuestring : "");
        return 0;
    }
    double have = 0, limit = want->valuestring ? strtod(want->valuestring, NULL) : NAN;
    if (!claim_number(v, &have)) {
        say(why, cap, "claim '%.100s' is not a number", name);
        return 0;
    }
    int met = op == OP_LESS      ? have < limit
              : op == OP_LESS_EQ ? have <= limit
              : op == OP_GREATER ? have > limit
                                 : have >= limit;
    if (met)
        return 1;
    static const char *const relation[] = {
        [OP_LESS] = "less than",
        [OP_LESS_EQ] = "at most",
        [OP_GREATER] = "greater than",
        [OP_GREATER_EQ] = "at least",
    };
    say(why, cap, "claim '%.100s' is not %s %.32s", name, relation[op],
        want->valuestring ? want->valuestring : "");
    return 0;
}

/* Whether every (@p all) or any condition of @p list holds; if not, why. */
static int conditions_met(const cJSON *list, int all, const cJSON *claims, char *why, size_t cap)
{
    char first[400] = "";
    for (const cJSON *c = list->child; c != NULL; c = c->next) {
        char one[400];
        int met = condition_met(c, claims, one, sizeof(one));
        if (met && !all)
            return 1;
        if (!met && all) {
            say(why, cap, "%s", one);
            return 0;
        }
        if (!met && first[0] == '\0')
            snprintf(first, sizeof(first), "%s", one);
    }
    if (all)
        return 1;
    say(why, cap, "no condition of an anyOf is met (the first: %s)", first);
    return 0;
}

/* The target key from one JWK of the token: 1 taken, 0 not fit, -1 out of memory. */
static int target_from(const cJSON *k, struct pol_release_target *t)
{
    const char *kty = jose_str(k, "kty"), *use = jose_str(k, "use");
    const char *n64 = jose_str(k, "n"), *e64 = jose_str(k, "e");
    const cJSON *ops = cJSON_GetObjectItemCaseSensitive(k, "key_ops");
    const cJSON *kid = cJSON_GetObjectItemCaseSensitive(k, "kid"), *o;
    if (!cJSON_IsObject(k) || kty == NULL || strcmp(kty, "RSA") != 0 || n64 == NULL || e64 == NULL)
        return 0;
    int enc = use != NULL && strcmp(use, "enc") == 0;
    if (cJSON_IsArray(ops)) {
        cJSON_ArrayForEach(o, ops)
        {
            enc |= cJSON_IsString(o) && strcmp(o->valuestring, "encrypt") == 0;
        }
    }
    if (!enc ||
        (kid != NULL && (!cJSON_IsString(kid) || strlen(kid->valuestring) >= POL_RELEASE_KID_MAX)))
        return 0;
    struct kv_buf n = {0}, e = {0};
    EVP_PKEY *key = NULL;
    enum kv_status st = kv_b64url_decode(n64, &n);
    if (st == KV_OK)
        st = kv_b64url_decode(e64, &e);
    /* big-endian without leading zeros: 2048 to 4096 bits */
    size_t skip = 0;
    while (st == KV_OK && skip < n.len && n.data[skip] == 0)
        skip++;
    if (st == KV_OK) {
        memmove(n.data, n.data + skip, n.len - skip);
        n.len -= skip;
        for (skip = 0; skip < e.len && e.data[skip] == 0;)
            skip++;
        memmove(e.data, e.data + skip, e.len - skip);
        e.len -= skip;
        size_t bits = n.len * 8;
        for (unsigned top = n.len ? n.data[0] : 0x80; bits > 0 && !(top & 0x80); top <<= 1)
            bits--;
        if (bits < 2048 || bits > 4096 || e.len == 0 || e.len > 8)
            st = KV_ERR_BAD_PARAM;
    }
    if (st == KV_OK) {
        st = jose_rsa_public(&n, &e, &key);
        if (st == KV_ERR_BAD_PARAM) /* OpenSSL does not always say it ran out of memory */
            st = jose_rsa_public(&n, &e, &key);
    }
    EVP_PKEY_free(key);
    if (st != KV_OK) {
        kv_buf_free(&n);
        kv_buf_free(&e);
        return st == KV_ERR_NOMEM ? -1 : 0;
    }
    t->n = n;
    t->e = e;
    snprintf(t->kid, sizeof(t->kid), "%s", kid ? kid->valuestring : "");
    return 1;
}

/* The first RSA key fit for encryption in x-ms-runtime.keys, then (the key a TEE reports
 * of itself) in x-ms-isolation-tee.x-ms-runtime.keys. */
static enum pol_release find_target(const cJSON *claims, struct pol_release_target *t)
{
    const cJSON *lists[] = {claim_at(claims, "x-ms-runtime.keys"),
                            claim_at(claims, "x-ms-isolation-tee.x-ms-runtime.keys")};
    for (size_t i = 0; i < 2; i++) {
        const cJSON *k;
        if (!cJSON_IsArray(lists[i]))
            continue;
        cJSON_ArrayForEach(k, lists[i])
        {
            int got = target_from(k, t);
            if (got != 0)
                return got > 0 ? POL_RELEASE_OK : POL_RELEASE_NOMEM;
        }
    }
    return POL_RELEASE_NO_KEY;
}

static enum pol_release parse_failure(enum jose_parse p, char *why, size_t cap)
{
    switch (p) {
    case JOSE_TOO_LONG:
        say(why, cap, "the attestation token is longer than %d bytes", POL_ATTESTATION_MAX);
        break;
    case JOSE_NOT_COMPACT:
        say(why, cap, "the attestation token is not a JWS in compact form (three parts)");
        break;
    case JOSE_NOT_JSON:
        say(why, cap, "the attestation token's header or claims are not base64url JSON objects");
        break;
    case JOSE_BAD_SIG:
        say(why, cap, "the attestation token's signature is not base64url");
        break;
    default:
        say(why, cap, "out of memory");
        return POL_RELEASE_NOMEM;
    }
    return POL_RELEASE_MALFORMED;
}

enum pol_release pol_release_check(const struct pol_ctx *ctx, const char *policy, size_t policy_len,
                                   const char *token, int64_t now, struct pol_release_target *out,
                                   char *why, size_t cap)
{
    struct jose_jws j = {0};
    cJSON *pol = NULL;
    enum pol_release res = POL_RELEASE_MALFORMED;
    char err[400], detail[400];
    say(why, cap, "%s", "");
    if (token == NULL) {
        say(why, cap, "there is no attestation token");
        return res;
    }
    enum jose_parse parsed = jose_jws_parse(token, POL_ATTESTATION_MAX, &j);
    if (parsed != JOSE_PARSED) {
        res = parse_failure(parsed, why, cap);
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(j.header, "crit") != NULL) {
        /* RFC 7515 4.1.11: extensions the recipient must understand, and kvmock knows none */
        say(why, cap,
            "the token's header names critical extensions (crit), which kvmock does "
            "not understand");
        goto out;
    }
    const char *iss = jose_str(j.claims, "iss");
    if (iss == NULL) {
        say(why, cap, "the attestation token has no 'iss' claim");
        goto out;
    }

    /* the policy's authority objects for this issuer */
    enum kv_status st = policy_tree(policy, policy_len, &pol, err, sizeof(err));
    if (st != KV_OK) {
        res = st == KV_ERR_NOMEM ? POL_RELEASE_NOMEM : POL_RELEASE_DENIED;
        say(why, cap, "the key's release policy is not valid (%s)",
            st == KV_ERR_NOMEM ? "out of memory" : err);
        goto out;
    }
    const cJSON *authorities = cJSON_GetObjectItemCaseSensitive(pol, "anyOf"), *a;
    size_t named = 0;
    cJSON_ArrayForEach(a, authorities)
    {
        named += same_authority(jose_str(a, "authority"), iss);
    }
    if (named == 0) {
        res = POL_RELEASE_NOT_IN_POLICY;
        say(why, cap, "the token's issuer '%.200s' is none of the release policy's authorities",
            iss);
        goto out;
    }
    const struct pol_authority *trusted = NULL;
    for (size_t i = 0; i < ctx->n_authorities && trusted == NULL; i++)
        if (same_authority(ctx->authorities[i].url, iss))
            trusted = &ctx->authorities[i];
    if (trusted == NULL) {
        res = POL_RELEASE_UNREACHABLE;
        say(why, cap,
            "the attestation authority '%.200s' is not one kvmock trusts: it has none of its "
            "keys",
            iss);
        goto out;
    }

    /* its signature, then its time */
    const struct jose_alg *alg = jose_alg(jose_str(j.header, "alg"));
    res = POL_RELEASE_BAD_SIGNATURE;
    if (alg == NULL) {
        say(why, cap,
            "the token's alg is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, "
            "ES384, ES512");
        goto out;
    }
    switch (jose_verify_keys(&j, alg, trusted->keys, trusted->n_keys, jose_str(j.header, "kid"))) {
    case JOSE_VERIFIED:
        break;
    case JOSE_NO_KEY:
        say(why, cap, "no key of the attestation authority '%.200s' has the token's kid", iss);
        goto out;
    case JOSE_BAD_SIGNATURE:
        say(why, cap, "no key of the attestation authority '%.200s' verifies the token's signature",
            iss);
        goto out;
    default:
        res = POL_RELEASE_NOMEM;
        say(why, cap, "out of memory");
        goto out;
    }
    int64_t exp = 0, nbf = 0;
    int has_exp = jose_date(j.claims, "exp", &exp), has_nbf = jose_date(j.claims, "nbf", &nbf);
    res = POL_RELEASE_TIME;
    if (has_exp <= 0 || has_nbf < 0) {
        say(why, cap, "the token's exp is required and exp and nbf must be NumericDates");
        goto out;
    }
    if (now >= exp + POL_ASSERTION_SKEW) {
        say(why, cap, "the token expired at %lld", (long long)exp);
        goto out;
    }
    if (has_nbf && now < nbf - POL_ASSERTION_SKEW) {
        say(why, cap, "the token is not valid before %lld", (long long)nbf);
        goto out;
    }

    /* the conditions of an authority object for this issuer */
    int met = 0;
    detail[0] = '\0';
    cJSON_ArrayForEach(a, authorities)
    {
        if (met || !same_authority(jose_str(a, "authority"), iss))
            continue;
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(a, "allOf");
        int all = list != NULL;
        if (list == NULL)
            list = cJSON_GetObjectItemCaseSensitive(a, "anyOf");
        met = conditions_met(list, all, j.claims, detail[0] ? err : detail,
                             detail[0] ? sizeof(err) : sizeof(detail));
    }
    if (!met) {
        res = POL_RELEASE_DENIED;
        say(why, cap, "the token's claims do not meet the release policy for '%.200s': %s", iss,
            detail);
        goto out;
    }

    /* the key it is released for */
    struct pol_release_target t = {0};
    res = find_target(j.claims, &t);
    if (res == POL_RELEASE_OK)
        *out = t;
    else if (res == POL_RELEASE_NOMEM)
        say(why, cap, "out of memory");
    else
        say(why, cap,
            "the token's x-ms-runtime.keys holds no RSA key of 2048 to 4096 bits for encryption "
            "(use \"enc\" or key_ops \"encrypt\")");
out:
    cJSON_Delete(pol);
    jose_jws_clear(&j);
    return res;
}
