/* The route table and its matcher: SDK path quirks, literal segments, 404 vs 405. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "check.h"
#include "srv.h"

static char buf[512];
static char *seg[SRV_MAX_SEGMENTS];
static size_t nseg;

/* Split like srv_req_init() does (no decoding needed for these paths). */
static void split(const char *path)
{
    snprintf(buf, sizeof(buf), "%s", path + 1);
    nseg = 0;
    char *p = buf;
    for (;;) {
        seg[nseg++] = p;
        char *slash = strchr(p, '/');
        if (slash == NULL)
            break;
        *slash = '\0';
        p = slash + 1;
    }
}

static const struct srv_route *match(const char *method, const char *path, enum srv_match want,
                                     const char **name, const char **version)
{
    const struct srv_route *route = NULL;
    const char *n = NULL, *v = NULL;
    split(path);
    enum srv_match got =
        srv_route_match(srv_key_routes, srv_key_routes_count, method, seg, nseg, &route, &n, &v);
    if (got != want) {
        fprintf(stderr, "%s %s: match %d, want %d\n", method, path, got, want);
        check_failures++;
        return NULL;
    }
    if (name)
        *name = n;
    if (version)
        *version = v;
    return got == SRV_MATCH_OK ? route : NULL;
}

static void expect(const char *method, const char *path, const char *pattern, const char *name,
                   const char *version)
{
    const char *n = NULL, *v = NULL;
    const struct srv_route *r = match(method, path, SRV_MATCH_OK, &n, &v);
    if (r == NULL)
        return;
    CHECK_STR(r->pattern, pattern);
    if (name == NULL)
        CHECK(n == NULL);
    else
        CHECK_STR(n, name);
    if (version == NULL)
        CHECK(v == NULL || v[0] == '\0');
    else
        CHECK_STR(v, version);
}

/* The matcher's rule, written independently: each segment of the pattern
 * matches one segment of the path ({name}: any non-empty one, {version}: any,
 * a literal: itself without regard to case), and the path may have one empty
 * segment more at the end. */
static int reference_match(const char *pattern)
{
    char pat[128];
    snprintf(pat, sizeof(pat), "%s", pattern + 1);
    size_t i = 0;
    for (char *save = NULL, *p = strtok_r(pat, "/", &save); p != NULL;
         p = strtok_r(NULL, "/", &save), i++) {
        if (i == nseg)
            return 0;
        if (strcmp(p, "{name}") == 0 ? seg[i][0] == '\0'
                                     : strcmp(p, "{version}") != 0 && strcasecmp(p, seg[i]) != 0)
            return 0;
    }
    return i == nseg || (i + 1 == nseg && seg[i][0] == '\0');
}

/* Every path of up to four segments from words of the table (and others),
 * with every method: the route the matcher picks is the first of the table the
 * reference rule matches with that method, 405 when only others do, else 404. */
static void exhaustive(void)
{
    static const char *const words[] = {
        "",          "keys",     "KEYS",        "k1",      "restore", "create", "wrapkey",
        "UnwrapKey", "versions", "deletedkeys", "recover", "rng",     "x"};
    static const char *const methods[] = {"GET", "PUT", "POST", "PATCH", "DELETE", "HEAD"};
    const size_t nw = sizeof(words) / sizeof(words[0]);
    for (size_t len = 1; len <= 4; len++) {
        size_t total = 1;
        for (size_t i = 0; i < len; i++)
            total *= nw;
        for (size_t code = 0; code < total; code++) {
            char path[128] = "";
            for (size_t i = 0, c = code; i < len; i++, c /= nw) {
                strcat(path, "/");
                strcat(path, words[c % nw]);
            }
            for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++) {
                split(path);
                const struct srv_route *want = NULL;
                int other = 0;
                for (size_t r = 0; r < srv_key_routes_count; r++) {
                    if (!reference_match(srv_key_routes[r].pattern))
                        continue;
                    if (strcmp(srv_key_routes[r].method, methods[m]) != 0)
                        other = 1;
                    else if (want == NULL)
                        want = &srv_key_routes[r];
                }
                const struct srv_route *got = NULL;
                const char *nm, *ver;
                enum srv_match st = srv_route_match(srv_key_routes, srv_key_routes_count,
                                                    methods[m], seg, nseg, &got, &nm, &ver);
                enum srv_match st_want = want    ? SRV_MATCH_OK
                                         : other ? SRV_MATCH_BAD_METHOD
                                                 : SRV_MATCH_NO_ROUTE;
                if (st != st_want || (st == SRV_MATCH_OK && got != want)) {
                    fprintf(stderr, "%s %s: match %d, want %d\n", methods[m], path, st, st_want);
                    check_failures++;
                }
            }
        }
    }
}

int main(void)
{
    exhaustive();

    /* plain routes */
    expect("GET", "/keys", "/keys", NULL, NULL);
    expect("GET", "/keys/", "/keys", NULL, NULL);
    expect("POST", "/keys/k1/create", "/keys/{name}/create", "k1", NULL);
    expect("GET", "/keys/k1/versions", "/keys/{name}/versions", "k1", NULL);

    /* empty version, trailing slash and "//" all mean the current version */
    expect("GET", "/keys/k1", "/keys/{name}", "k1", NULL);
    expect("GET", "/keys/k1/", "/keys/{name}", "k1", NULL);
    expect("GET", "/keys/k1/0123456789abcdef0123456789abcdef", "/keys/{name}/{version}", "k1",
           "0123456789abcdef0123456789abcdef");
    expect("POST", "/keys/k1//wrapkey", "/keys/{name}/{version}/wrapkey", "k1", NULL);
    expect("POST", "/keys/k1/abc/unwrapkey", "/keys/{name}/{version}/unwrapkey", "k1", "abc");

    /* operation segments match case-insensitively */
    expect("POST", "/keys/k1/abc/wrapKey", "/keys/{name}/{version}/wrapkey", "k1", "abc");
    expect("POST", "/Keys/k1/abc/UNWRAPKEY", "/keys/{name}/{version}/unwrapkey", "k1", "abc");
    expect("POST", "/keys/k1/abc/encrypt", "/keys/{name}/{version}/encrypt", "k1", "abc");
    expect("POST", "/keys/k1/abc/decrypt", "/keys/{name}/{version}/decrypt", "k1", "abc");
    expect("POST", "/keys/k1/abc/sign", "/keys/{name}/{version}/sign", "k1", "abc");
    expect("POST", "/keys/k1/abc/verify", "/keys/{name}/{version}/verify", "k1", "abc");

    /* literal segments win over {version} */
    const char *n = NULL, *v = NULL;
    const struct srv_route *r = match("GET", "/keys/versions/versions", SRV_MATCH_OK, &n, &v);
    if (r != NULL) {
        CHECK_STR(r->pattern, "/keys/{name}/versions");
        CHECK_STR(n, "versions");
    }

    /* the permission travels with the route */
    r = match("POST", "/keys/k1/abc/wrapkey", SRV_MATCH_OK, NULL, NULL);
    CHECK(r != NULL && r->perm == POL_KEYS_WRAP && r->body == SRV_BODY_JSON);
    r = match("GET", "/keys", SRV_MATCH_OK, NULL, NULL);
    CHECK(r != NULL && r->perm == POL_KEYS_LIST && r->body == SRV_BODY_NONE);
    r = match("POST", "/keys/k1/create", SRV_MATCH_OK, NULL, NULL);
    CHECK(r != NULL && r->perm == POL_KEYS_CREATE);

    /* unknown paths are 404, known paths with another method 405 */
    match("GET", "/secrets", SRV_MATCH_NO_ROUTE, NULL, NULL);
    match("GET", "/keys/k1/abc/wrapkey/extra", SRV_MATCH_NO_ROUTE, NULL, NULL);
    match("GET", "/keys//", SRV_MATCH_NO_ROUTE, NULL, NULL);
    match("POST", "/keys/k1/abc/frobnicate", SRV_MATCH_NO_ROUTE, NULL, NULL);
    match("DELETE", "/keys", SRV_MATCH_BAD_METHOD, NULL, NULL);
    /* GET /keys/k1/create reads a version named "create" (there is none: 404) */
    expect("GET", "/keys/k1/create", "/keys/{name}/{version}", "k1", "create");
    match("GET", "/keys/k1/abc/wrapkey", SRV_MATCH_BAD_METHOD, NULL, NULL);
    match("POST", "/keys/k1/versions", SRV_MATCH_BAD_METHOD, NULL, NULL);

    /* an empty name never matches {name} */
    match("POST", "/keys//create", SRV_MATCH_NO_ROUTE, NULL, NULL);

    /* api-versions the SDKs send are known; others are not */
    CHECK(srv_api_version_known("7.4"));
    CHECK(srv_api_version_known("7.4-preview.1"));
    CHECK(srv_api_version_known("2025-07-01"));
    CHECK(srv_api_version_known("7.0"));
    CHECK(srv_api_version_known("7.6"));
    CHECK(!srv_api_version_known("7.7"));
    CHECK(!srv_api_version_known(""));
    CHECK(!srv_api_version_known("7.4 "));
    CHECK_DONE();
}
