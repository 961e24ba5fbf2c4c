/**
 * @file sse_route.h
 * @brief The route table (docs/api.md) and the parser that validates a path
 *        below the prefix before any other code sees it.
 */
#ifndef SSE_ROUTE_H
#define SSE_ROUTE_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>

typedef enum {
    SSE_ROUTE_MAKE_ID,
    SSE_ROUTE_REGISTER,
    SSE_ROUTE_DISCONNECT,
    SSE_ROUTE_LIST,
    SSE_ROUTE_CLEAR,
    SSE_ROUTE_CLEANUP,
    SSE_ROUTE_LISTEN,
    SSE_ROUTE_NOTIFY_COMPLETIONS,
    SSE_ROUTE_NOTIFY_LISTENERS,
    SSE_ROUTE_COUNT
} sse_route_e;

/** Methods, as a bit set independent of httpd's M_* numbers. */
#define SSE_METHOD_GET  0x1
#define SSE_METHOD_PUT  0x2
#define SSE_METHOD_POST 0x4

/** What a route's argument must be. */
typedef enum {
    SSE_ARG_NAME,
    SSE_ARG_ID,
    SSE_ARG_KEY,
    SSE_ARG_TASKID
} sse_arg_e;

#define SSE_ROUTE_MAX_ARGS 2

typedef struct {
    const char *name;           /**< first path segment */
    int nargs;
    sse_arg_e args[SSE_ROUTE_MAX_ARGS];
    unsigned int methods;       /**< SSE_METHOD_* allowed */
    const char *allow;          /**< the Allow header for 405 */
} sse_route_def_t;

/** A parsed request path. */
typedef struct {
    sse_route_e route;
    const sse_route_def_t *def;
    const char *args[SSE_ROUTE_MAX_ARGS];
    const char *error;          /**< one-line reason when APR_EINVAL */
} sse_route_t;

/**
 * Look up the route named by the first segment of @a path (the path below
 * the prefix, already percent-decoded).
 * @return the definition, or NULL when no route has that name
 */
const sse_route_def_t *sse_route_find(const char *path);

/**
 * Parse and validate @a path (below the prefix, percent-decoded).
 * @param p    pool for the argument strings
 * @param path e.g. "listen/alice_XXXX/news"
 * @param out  the route and its arguments; out->error on APR_EINVAL
 * @return APR_SUCCESS; APR_ENOENT if no route has that name; APR_EINVAL if
 *         the route exists but its arguments are malformed
 */
apr_status_t sse_route_parse(apr_pool_t *p, const char *path,
                             sse_route_t *out);

#endif /* SSE_ROUTE_H */
