/* Route matching over a table of {method, pattern, permission, handler}. */
#include <string.h>
#include <strings.h>

#include "srv.h"

/*
 * Whether @p pattern surely does not match: its last segment is literal and
 * differs from the path's last segment (the one before a trailing empty one).
 * Patterns of one method mostly differ in their last segment, and this tells
 * them apart without walking the others. 0 when unsure (a pattern ending in a
 * placeholder or '/'): the walk below decides, and this never contradicts it.
 * A match consumes the pattern's k segments, with nothing or one empty segment
 * after them, and its last literal equals path segment k, a non-empty one: the
 * last, or the one before an empty last.
 */
static int surely_differs(const char *pattern, char *const *seg, size_t nseg)
{
    const char *slash = strrchr(pattern, '/');
    const char *last = slash != NULL ? slash + 1 : pattern;
    if (last[0] == '\0' || last[0] == '{' || nseg == 0)
        return 0;
    const char *t = seg[nseg - 1];
    if (t[0] == '\0') {
        if (nseg < 2)
            return 1; /* the literal would have to be empty */
        t = seg[nseg - 2];
    }
    return strcasecmp(last, t) != 0;
}

/* Match one pattern against the segments (the last literal first). Returns 1 on a match. */
static int match_pattern(const char *pattern, char *const *seg, size_t nseg, const char **name,
                         const char **version)
{
    const char *p = pattern;
    size_t i = 0;
    *name = *version = NULL;
    if (surely_differs(pattern, seg, nseg))
        return 0;
    if (*p == '/')
        p++;
    while (*p != '\0') {
        const char *end = strchr(p, '/');
        size_t plen = end ? (size_t)(end - p) : strlen(p);
        if (i == nseg)
            return 0;
        const char *s = seg[i];
        if (plen == 6 && strncmp(p, "{name}", 6) == 0) {
            if (s[0] == '\0')
                return 0;
            *name = s;
        } else if (plen == 9 && strncmp(p, "{version}", 9) == 0) {
            *version = s; /* may be empty: the current version */
        } else if (strlen(s) != plen || strncasecmp(p, s, plen) != 0) {
            return 0;
        }
        i++;
        p = end ? end + 1 : p + plen;
    }
    /* All segments used, or only one trailing empty segment left ("/keys/"). */
    return i == nseg || (i + 1 == nseg && seg[i][0] == '\0');
}

enum srv_match srv_route_match(const struct srv_route *table, size_t n, const char *method,
                               char *const *seg, size_t nseg, const struct srv_route **route,
                               const char **name, const char **version)
{
    /* The routes of the request's method first, in table order (the method is
     * the cheaper test); the others only to tell a path that exists for
     * another method (405) from one that does not (404). */
    for (size_t i = 0; i < n; i++) {
        const char *nm, *ver;
        if (strcmp(table[i].method, method) != 0 ||
            !match_pattern(table[i].pattern, seg, nseg, &nm, &ver))
            continue;
        *route = &table[i];
        *name = nm;
        *version = ver;
        return SRV_MATCH_OK;
    }
    for (size_t i = 0; i < n; i++) {
        const char *nm, *ver;
        if (match_pattern(table[i].pattern, seg, nseg, &nm, &ver))
            return SRV_MATCH_BAD_METHOD;
    }
    return SRV_MATCH_NO_ROUTE;
}
