/* The route table and its matcher: SDK path quirks, literal segments, 404 vs 405. */
#include <string.h>

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

int main(void)
{
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
