/* Route table and strict validation of every path segment. */
#include <string.h>

#include <apr_strings.h>

#include "sse_id.h"
#include "sse_route.h"

#define GET_ONLY SSE_METHOD_GET, "GET, HEAD, OPTIONS"
#define PUBLISH (SSE_METHOD_POST | SSE_METHOD_PUT), "POST, PUT, OPTIONS"

static const sse_route_def_t routes[SSE_ROUTE_COUNT] = {
    [SSE_ROUTE_MAKE_ID] = {"make-id", 1, {SSE_ARG_NAME}, GET_ONLY},
    [SSE_ROUTE_REGISTER] = {"register-listener", 1, {SSE_ARG_ID}, GET_ONLY},
    [SSE_ROUTE_DISCONNECT] = {"disconnect-registrant", 1, {SSE_ARG_ID},
                              GET_ONLY},
    [SSE_ROUTE_LIST] = {"list-registrants", 0, {0}, GET_ONLY},
    [SSE_ROUTE_CLEAR] = {"clear-registrants", 0, {0}, GET_ONLY},
    [SSE_ROUTE_CLEANUP] = {"trigger-cleanup", 0, {0}, GET_ONLY},
    [SSE_ROUTE_LISTEN] = {"listen", 2, {SSE_ARG_ID, SSE_ARG_KEY},
                          (SSE_METHOD_PUT | SSE_METHOD_POST),
                          "PUT, POST, OPTIONS"},
    [SSE_ROUTE_NOTIFY_COMPLETIONS] = {"notify-completions", 2,
                                      {SSE_ARG_ID, SSE_ARG_TASKID}, PUBLISH},
    [SSE_ROUTE_NOTIFY_LISTENERS] = {"notify-listeners", 1, {SSE_ARG_KEY},
                                    PUBLISH},
};

static const char *const arg_names[] = {"name", "id", "key", "task id"};

const sse_route_def_t *sse_route_find(const char *path)
{
    apr_size_t len = strcspn(path, "/");
    int i;

    for (i = 0; i < SSE_ROUTE_COUNT; i++) {
        if (strlen(routes[i].name) == len
            && memcmp(routes[i].name, path, len) == 0) {
            return &routes[i];
        }
    }
    return NULL;
}

static const char *check_arg(apr_pool_t *p, sse_arg_e kind, const char *s)
{
    if (*s == '\0') {
        return apr_psprintf(p, "the %s is empty", arg_names[kind]);
    }
    if (kind == SSE_ARG_ID) {
        /* the form only: an id the server did not issue is the registry's
         * to refuse, as unknown (404), whatever its suffix */
        return sse_id_parse(s, NULL) == APR_SUCCESS
                   ? NULL
                   : apr_psprintf(p, "the id must be <name>_<suffix>: a "
                                  "name, '_', then 1 or more of "
                                  "[A-Za-z0-9.~-], %d bytes at most",
                                  SSE_ID_MAX);
    }
    if (!sse_token_valid(s, strlen(s))) {
        return apr_psprintf(p,
                            "the %s must be 1..%d characters of "
                            "[A-Za-z0-9._~-] starting with a letter or digit",
                            arg_names[kind], SSE_TOKEN_MAX);
    }
    return NULL;
}

apr_status_t sse_route_parse(apr_pool_t *p, const char *path,
                             sse_route_t *out)
{
    const char *rest;
    int i;

    memset(out, 0, sizeof(*out));
    out->def = sse_route_find(path);
    if (out->def == NULL) {
        return APR_ENOENT;
    }
    out->route = (sse_route_e)(out->def - routes);
    rest = path + strlen(out->def->name);
    for (i = 0; i < out->def->nargs; i++) {
        apr_size_t len;
        if (*rest != '/') {
            out->error = apr_psprintf(p, "%s needs %d path segment(s)",
                                      out->def->name, out->def->nargs);
            return APR_EINVAL;
        }
        rest++;
        len = strcspn(rest, "/");
        out->args[i] = apr_pstrmemdup(p, rest, len);
        rest += len;
        out->error = check_arg(p, out->def->args[i], out->args[i]);
        if (out->error) {
            return APR_EINVAL;
        }
    }
    if (*rest != '\0') {
        out->error = apr_psprintf(p, "%s takes %d path segment(s)",
                                  out->def->name, out->def->nargs);
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}
