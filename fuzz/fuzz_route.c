/*
 * Fuzz sse_route_parse() against a reference parser written here from
 * SPEC §2, independently of src/sse_route.c and src/sse_id.c.
 *
 * Input: a path below the prefix, as the glue hands it over (percent-
 * decoded, NUL-terminated: bytes after a NUL are not part of it).
 *
 * Properties, for every input:
 * - the status is APR_SUCCESS, APR_EINVAL or APR_ENOENT, and the same
 *   one the reference parser gives; on success the arguments are the
 *   reference's, byte for byte;
 * - the route found is sse_route_find()'s, and ENOENT has none;
 * - an EINVAL reason is one non-empty line of printable ASCII, so a 400
 *   body never reflects a hostile byte;
 * - a parsed path rebuilds from its route name and arguments exactly.
 */
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "ref.h"
#include "src/sse_id.h"
#include "src/sse_route.h"

enum { K_NAME, K_ID, K_KEY, K_TASKID };

static const struct {
    const char *name;
    sse_route_e route;
    int nargs;
    int kinds[2];
} ref_routes[] = {
    {"make-id", SSE_ROUTE_MAKE_ID, 1, {K_NAME}},
    {"register-listener", SSE_ROUTE_REGISTER, 1, {K_ID}},
    {"disconnect-registrant", SSE_ROUTE_DISCONNECT, 1, {K_ID}},
    {"list-registrants", SSE_ROUTE_LIST, 0, {0}},
    {"clear-registrants", SSE_ROUTE_CLEAR, 0, {0}},
    {"trigger-cleanup", SSE_ROUTE_CLEANUP, 0, {0}},
    {"listen", SSE_ROUTE_LISTEN, 2, {K_ID, K_KEY}},
    {"notify-completions", SSE_ROUTE_NOTIFY_COMPLETIONS, 2,
     {K_ID, K_TASKID}},
    {"notify-listeners", SSE_ROUTE_NOTIFY_LISTENERS, 1, {K_KEY}},
};
#define NREF ((int)(sizeof(ref_routes) / sizeof(ref_routes[0])))

typedef struct {
    apr_status_t rv;
    int route;                  /* index in ref_routes, -1 for none */
    int nargs;
    const char *args[2];
} ref_result_t;

static void ref_parse(apr_pool_t *p, const char *path, ref_result_t *out)
{
    const char *seg[4];
    size_t seglen[4];
    int nseg = 0, i;
    const char *s = path;

    memset(out, 0, sizeof(*out));
    out->route = -1;
    for (;;) {                  /* up to 4 segments; more is too many */
        const char *slash = strchr(s, '/');
        if (nseg < 4) {
            seg[nseg] = s;
            seglen[nseg] = slash ? (size_t)(slash - s) : strlen(s);
        }
        nseg++;
        if (!slash) {
            break;
        }
        s = slash + 1;
    }
    for (i = 0; i < NREF; i++) {
        if (strlen(ref_routes[i].name) == seglen[0]
            && memcmp(ref_routes[i].name, seg[0], seglen[0]) == 0) {
            out->route = i;
        }
    }
    if (out->route < 0) {
        out->rv = APR_ENOENT;
        return;
    }
    out->rv = APR_EINVAL;
    if (nseg - 1 != ref_routes[out->route].nargs) {
        return;
    }
    for (i = 0; i < nseg - 1; i++) {
        int kind = ref_routes[out->route].kinds[i];
        const char *a = seg[i + 1];
        size_t n = seglen[i + 1];
        if (kind == K_ID ? !ref_id(a, n) : !ref_token(a, n)) {
            return;
        }
        out->args[i] = apr_pstrmemdup(p, a, n);
    }
    out->nargs = nseg - 1;
    out->rv = APR_SUCCESS;
}

static int printable_line(const char *s)
{
    if (s == NULL || *s == '\0') {
        return 0;
    }
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e) {
            return 0;
        }
    }
    return 1;
}

static void check_success(apr_pool_t *p, const char *path,
                          const sse_route_t *r, const ref_result_t *ref)
{
    const char *rebuilt = r->def->name;
    int i;

    FUZZ_CHECK(r->error == NULL, "success with a reason: %s", r->error);
    for (i = 0; i < SSE_ROUTE_MAX_ARGS; i++) {
        if (i < ref->nargs) {
            FUZZ_CHECK(r->args[i] && strcmp(r->args[i], ref->args[i]) == 0,
                       "arg %d is \"%s\", the reference says \"%s\"", i,
                       r->args[i] ? r->args[i] : "(null)", ref->args[i]);
            FUZZ_CHECK(strlen(r->args[i]) <= SSE_ID_MAX,
                       "arg %d longer than any id", i);
            rebuilt = apr_pstrcat(p, rebuilt, "/", r->args[i], NULL);
        }
        else {
            FUZZ_CHECK(r->args[i] == NULL, "arg %d set past nargs", i);
        }
    }
    FUZZ_CHECK(strcmp(rebuilt, path) == 0, "\"%s\" rebuilds as \"%s\"",
               path, rebuilt);
}

static void fuzz_init(apr_pool_t *global)
{
    (void)global;
}

static void fuzz_one(apr_pool_t *p, const uint8_t *data, size_t size)
{
    const char *path = apr_pstrmemdup(p, (const char *)data, size);
    const sse_route_def_t *found = sse_route_find(path);
    ref_result_t ref;
    sse_route_t r;
    apr_status_t rv;

    ref_parse(p, path, &ref);
    memset(&r, 0x5a, sizeof(r));        /* every field must be set */
    rv = sse_route_parse(p, path, &r);
    FUZZ_CHECK(rv == ref.rv, "status %d, the reference says %d", rv, ref.rv);
    if (rv == APR_ENOENT) {
        FUZZ_CHECK(r.def == NULL && found == NULL, "ENOENT with a route");
        return;
    }
    FUZZ_CHECK(r.def != NULL && r.def == found, "not sse_route_find()'s");
    FUZZ_CHECK(strcmp(r.def->name, ref_routes[ref.route].name) == 0
                   && r.route == ref_routes[ref.route].route
                   && r.def->nargs == ref_routes[ref.route].nargs,
               "route %s, the reference says %s", r.def->name,
               ref_routes[ref.route].name);
    if (rv == APR_EINVAL) {
        FUZZ_CHECK(printable_line(r.error),
                   "the reason is not one line of printable ASCII");
        return;
    }
    check_success(p, path, &r, &ref);
}
