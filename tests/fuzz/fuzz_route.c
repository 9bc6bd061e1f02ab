/*
 * The router and the path/query decoding, split the way server/request.c
 * does it (its split functions are static): the raw path is cut at '/', each
 * segment percent-decoded with civetweb's mg_url_decode (a NUL in the result
 * is refused), at most SRV_MAX_SEGMENTS; the query is cut at '&' and '=' and
 * decoded with form semantics. The segments go through srv_route_match over
 * the real key route table.
 * Input: byte 0 picks the method, byte 1 a destination size for an extra
 * bounded mg_url_decode, the rest is "PATH[?QUERY]".
 * Invariants: a match names the route's method; {name} is non-empty and
 * {version} is one of the segments; mg_url_decode never writes past its
 * destination and always terminates it.
 */
#include <civetweb.h>

#include "fuzz_common.h"
#include "ks.h"
#include "srv.h"

static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "get"};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    kv_log_set_level(KV_LOG_ERROR);
    return 0;
}

static int decode_in_place(char *s, int form)
{
    size_t len = strlen(s);
    int n = mg_url_decode(s, (int)len, s, (int)len + 1, form);
    return n < 0 || (size_t)n != strlen(s) ? -1 : 0;
}

static void route(const char *method, char *path)
{
    char *seg[SRV_MAX_SEGMENTS];
    size_t nseg = 0;
    char *p = path;
    if (*p != '/')
        return; /* request.c refuses a path that does not start with '/' */
    p++;
    for (;;) {
        if (nseg == SRV_MAX_SEGMENTS)
            return;
        seg[nseg++] = p;
        char *slash = strchr(p, '/');
        if (slash != NULL)
            *slash = '\0';
        if (decode_in_place(p, 0) != 0)
            return;
        if (slash == NULL)
            break;
        p = slash + 1;
    }
    const struct srv_route *r = NULL;
    const char *name = NULL, *version = NULL;
    enum srv_match m = srv_route_match(srv_key_routes, srv_key_routes_count, method, seg, nseg, &r,
                                       &name, &version);
    if (m != SRV_MATCH_OK)
        return;
    FUZZ_ASSERT(r != NULL && strcmp(r->method, method) == 0);
    if (strstr(r->pattern, "{name}") != NULL) {
        FUZZ_ASSERT(name != NULL && name[0] != '\0');
        (void)ks_key_name_valid(name);
    } else {
        FUZZ_ASSERT(name == NULL);
    }
    if (version != NULL) {
        int found = 0;
        for (size_t i = 0; i < nseg; i++)
            found |= seg[i] == version;
        FUZZ_ASSERT(found);
    }
}

static void query(char *qs)
{
    char *save = NULL;
    size_t n = 0;
    for (char *pair = strtok_r(qs, "&", &save); pair != NULL; pair = strtok_r(NULL, "&", &save)) {
        if (n++ == SRV_MAX_QUERY)
            return;
        char *eq = strchr(pair, '=');
        char *value = eq ? eq + 1 : pair + strlen(pair);
        if (eq != NULL)
            *eq = '\0';
        if (decode_in_place(pair, 1) != 0 || decode_in_place(value, 1) != 0)
            return;
        if (strcasecmp(pair, "api-version") == 0)
            (void)srv_api_version_known(value);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const char *method = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
    size_t dst_len = data[1];
    char *text = fuzz_cstr(data + 2, size - 2);

    /* mg_url_decode into a small exact-size heap buffer: ASan sees any overrun */
    char *dst = malloc(dst_len + 1);
    if (dst == NULL)
        abort();
    int n = mg_url_decode(text, (int)strlen(text), dst, (int)dst_len, data[0] & 1);
    if (dst_len > 0) {
        FUZZ_ASSERT(n < (int)dst_len);
        FUZZ_ASSERT(n < 0 || memchr(dst, '\0', dst_len) != NULL);
    }
    free(dst);

    char *q = strchr(text, '?');
    if (q != NULL)
        *q++ = '\0';
    route(method, text);
    if (q != NULL)
        query(q);
    free(text);
    return 0;
}
