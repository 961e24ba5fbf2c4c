/*
 * The HTTP routes (docs/api.md): claim the URL, check method and arguments,
 * call one operation, answer. A table and a dispatch; the work is in
 * mod_sse_ops.c and, for streams, mod_sse_dispatch.c.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_handler.h"
#include "mod_sse_ops.h"
#include "mod_sse_stream.h"
#include "src/sse_route.h"
#include "mod_sse_bus.h"

#define SSE_NOTE_ROUTE "sse-mgr-route"
#define SSE_BODY_MAX   4096     /* no route reads a body: a small one is
                                   dropped, a larger one refused */

/* Claim only the routes we know, so other modules (the demo's submit-task)
 * can serve their own paths under the same prefix. */
int sse_translate(request_rec *r)
{
    sse_srv_conf_t *conf = sse_srv_conf(r->server);
    apr_size_t plen;

    if (conf->reg == NULL || conf->prefix == NULL || r->proxyreq) {
        return DECLINED;
    }
    plen = strlen(conf->prefix);
    if (strncmp(r->uri, conf->prefix, plen) != 0
        || sse_route_find(r->uri + plen) == NULL) {
        return DECLINED;
    }
    r->handler = SSE_HANDLER;
    r->filename = apr_pstrcat(r->pool, SSE_HANDLER ":", r->uri, NULL);
    apr_table_setn(r->notes, SSE_NOTE_ROUTE, "1");
    return OK;
}

/* No file behind our URLs: skip the directory walk. <Location> sections,
 * and so `Require`, still apply. */
int sse_map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, SSE_NOTE_ROUTE) ? OK : DECLINED;
}

/* ---- responses ------------------------------------------------------- */

static int respond(request_rec *r, int status, const char *type,
                   const char *body)
{
    r->status = status;
    ap_set_content_type(r, type);
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

static int text(request_rec *r, int status, const char *line)
{
    return respond(r, status, "text/plain; charset=utf-8",
                   status < 300 ? line : apr_pstrcat(r->pool, line, "\n",
                                                     NULL));
}

int sse_respond_text(request_rec *r, int status, const char *line)
{
    return text(r, status, line);
}

static int delivered(request_rec *r, int n)
{
    return respond(r, HTTP_OK, "application/json",
                   apr_psprintf(r->pool, "{\"delivered\": %d}", n));
}

/* An operation's status as an HTTP answer: the only place codes map. */
static int fail(request_rec *r, apr_status_t rv, const char *what)
{
    switch (rv) {
    case APR_ENOENT:
        return text(r, HTTP_NOT_FOUND, apr_pstrcat(r->pool, "unknown ",
                                                   what, NULL));
    case APR_EINVAL:
        return text(r, HTTP_BAD_REQUEST, apr_pstrcat(r->pool, "invalid ",
                                                     what, NULL));
    case SSE_EBUS_DOWN:
        apr_table_setn(r->err_headers_out, "Retry-After",
                       SSE_BUS_RETRY_AFTER);
        return text(r, HTTP_SERVICE_UNAVAILABLE,
                    "the cluster's bus is unavailable, retry later");
    case SSE_EUNSURE:
        return text(r, HTTP_GATEWAY_TIME_OUT,
                    "the cluster's bus went away while it ran this publish: "
                    "it may have been delivered");
    case APR_ENOSPC:
        return text(r, HTTP_BAD_REQUEST,
                    apr_psprintf(r->pool, "too many listen keys for this "
                                 "id (at most %d)", SSE_MAX_KEYS));
    default:
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SSE_LOGNO(00030)
                      "%s failed", r->uri);
        return text(r, HTTP_INTERNAL_SERVER_ERROR, "internal error");
    }
}

/* ---- routes ---------------------------------------------------------- */

/* What a publish carries (len 0: no body). */
typedef struct {
    char *data;
    apr_size_t len;
} body_t;

typedef int route_fn(request_rec *r, const sse_route_t *rt,
                     const body_t *body);

static int do_make_id(request_rec *r, const sse_route_t *rt,
                      const body_t *body)
{
    const char *id;
    apr_status_t rv = sse_op_make_id(r->server, r->pool, rt->args[0], &id);

    (void)body;
    return rv ? fail(r, rv, "name") : text(r, HTTP_OK, id);
}

static int do_register(request_rec *r, const sse_route_t *rt,
                       const body_t *body)
{
    (void)body;
    return sse_stream_run(r, rt->args[0]);
}

static int do_disconnect(request_rec *r, const sse_route_t *rt,
                         const body_t *body)
{
    apr_status_t rv = sse_op_unregister(r->server, rt->args[0]);

    (void)body;
    return rv ? fail(r, rv, "id") : text(r, HTTP_OK, "ok");
}

static int do_list(request_rec *r, const sse_route_t *rt,
                   const body_t *body)
{
    const char *json;
    apr_status_t rv = sse_op_listeners_json(r->server, r->pool, &json);

    (void)body;
    (void)rt;
    return rv ? fail(r, rv, "registry")
              : respond(r, HTTP_OK, "application/json", json);
}

static int do_clear(request_rec *r, const sse_route_t *rt,
                    const body_t *body)
{
    apr_status_t rv = sse_op_unregister_all(r->server);

    (void)body;
    (void)rt;
    return rv ? fail(r, rv, "registry") : text(r, HTTP_OK, "ok");
}

static int do_cleanup(request_rec *r, const sse_route_t *rt,
                      const body_t *body)
{
    apr_status_t rv = sse_op_cleanup(r->server, NULL);

    (void)body;
    (void)rt;
    return rv ? fail(r, rv, "registry") : text(r, HTTP_OK, "ok");
}

static int do_listen(request_rec *r, const sse_route_t *rt,
                     const body_t *body)
{
    apr_status_t rv = sse_op_listen(r->server, rt->args[0], rt->args[1]);

    (void)body;
    return rv ? fail(r, rv, "id") : text(r, HTTP_OK, "ok");
}

static int is_json(request_rec *r)
{
    const char *ct = apr_table_get(r->headers_in, "Content-Type");

    return ct && ap_cstr_casecmpn(ct, "application/json", 16) == 0
           && (ct[16] == '\0' || ct[16] == ';' || ct[16] == ' ');
}

/* The body as a payload: 400 with the parser's reason, 413 when more
 * than SSEMaxMessage as JSON. DECLINED: go on with @a pl. */
static int payload_of(request_rec *r, const body_t *body, sse_payload_t *pl)
{
    const char *reason = NULL;
    apr_status_t rv = sse_op_payload(r->pool, body->data, body->len,
                                     is_json(r), pl, &reason);

    if (rv == APR_EINVAL) {
        return text(r, HTTP_BAD_REQUEST, reason);
    }
    if (rv == APR_ENOSPC) {
        return text(r, HTTP_REQUEST_ENTITY_TOO_LARGE, reason);
    }
    return rv ? fail(r, rv, "payload") : DECLINED;
}

/* notify-completions and notify-listeners: the body as a payload, then
 * the publish. */
static int do_publish(request_rec *r, const sse_route_t *rt,
                      const body_t *body)
{
    sse_payload_t pl;
    int n = 0, status = payload_of(r, body, &pl);
    int completion = rt->route == SSE_ROUTE_NOTIFY_COMPLETIONS;
    apr_status_t rv;

    if (status != DECLINED) {
        return status;
    }
    rv = completion ? sse_op_complete(r->server, rt->args[0], rt->args[1],
                                      &pl, &n)
                    : sse_op_notify(r->server, rt->args[0], &pl, &n);
    return rv ? fail(r, rv, completion ? "id" : "key") : delivered(r, n);
}

static route_fn *const route_fns[SSE_ROUTE_COUNT] = {
    [SSE_ROUTE_MAKE_ID] = do_make_id,
    [SSE_ROUTE_REGISTER] = do_register,
    [SSE_ROUTE_DISCONNECT] = do_disconnect,
    [SSE_ROUTE_LIST] = do_list,
    [SSE_ROUTE_CLEAR] = do_clear,
    [SSE_ROUTE_CLEANUP] = do_cleanup,
    [SSE_ROUTE_LISTEN] = do_listen,
    [SSE_ROUTE_NOTIFY_COMPLETIONS] = do_publish,
    [SSE_ROUTE_NOTIFY_LISTENERS] = do_publish,
};

static unsigned int method_bit(const request_rec *r)
{
    switch (r->method_number) {
    case M_GET:
        return SSE_METHOD_GET;
    case M_PUT:
        return SSE_METHOD_PUT;
    case M_POST:
        return SSE_METHOD_POST;
    default:
        return 0;
    }
}

static int preflight(request_rec *r, const sse_route_def_t *def)
{
    apr_table_setn(r->headers_out, "Allow", def->allow);
    apr_table_setn(r->headers_out, "Access-Control-Allow-Methods",
                   def->allow);
    apr_table_setn(r->headers_out, "Access-Control-Allow-Headers",
                   "Content-Type, Last-Event-ID, Cache-Control");
    apr_table_setn(r->headers_out, "Access-Control-Max-Age", "600");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    r->status = HTTP_NO_CONTENT;
    return OK;
}

static int too_large(request_rec *r, apr_size_t max)
{
    r->connection->keepalive = AP_CONN_CLOSE;   /* leave the rest unread */
    return text(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                apr_psprintf(r->pool, "request body too large (at most %"
                             APR_SIZE_T_FMT " bytes)", max));
}

/* Read a body of at most @a max bytes into @a body; refuse a larger one
 * (announced, or chunked) without reading it all. DECLINED: go on. */
static int read_body(request_rec *r, apr_size_t max, body_t *body)
{
    apr_size_t room;
    long n;
    int status = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);

    body->data = NULL;
    body->len = 0;
    if (status != OK) {
        return status;
    }
    if (r->remaining > (apr_off_t)max) {
        return too_large(r, max);
    }
    if (!ap_should_client_block(r)) {
        return DECLINED;
    }
    room = (r->remaining > 0 ? (apr_size_t)r->remaining : max) + 1;
    body->data = apr_palloc(r->pool, room);
    while (body->len < room
           && (n = ap_get_client_block(r, body->data + body->len,
                                       room - body->len)) > 0) {
        body->len += (apr_size_t)n;
        if (body->len > max) {
            return too_large(r, max);
        }
    }
    return (body->len < room && n < 0) ? HTTP_BAD_REQUEST : DECLINED;
}

/* Publishes carry a payload (SSEMaxMessage); no other route reads a body,
 * and a small one is dropped. */
static apr_size_t body_max(const sse_route_t *rt)
{
    return (rt->route == SSE_ROUTE_NOTIFY_COMPLETIONS
            || rt->route == SSE_ROUTE_NOTIFY_LISTENERS)
           ? sse_conf_max_message() : SSE_BODY_MAX;
}

/* An issued id is checked before any route touches the registry, so a
 * forged one costs a MAC and nothing else. */
static int check_ids(request_rec *r, const sse_route_t *rt)
{
    int i;

    for (i = 0; i < rt->def->nargs; i++) {
        if (rt->def->args[i] == SSE_ARG_ID
            && sse_op_check_id(r->server, rt->args[i]) != APR_SUCCESS) {
            return fail(r, APR_ENOENT, "id");
        }
    }
    return DECLINED;
}

/* Access-Control-Allow-Origin, in err_headers_out so that error answers
 * carry it too: "*" or the one origin configured as such; of several, the
 * request's Origin when it is one of them (and none otherwise). */
static void allow_origin(request_rec *r, const sse_srv_conf_t *conf)
{
    const char *origin, *allowed = SSE_DEF_ORIGIN;
    int i;

    if (conf->origins && conf->origins->nelts > 1) {
        origin = apr_table_get(r->headers_in, "Origin");
        apr_table_mergen(r->err_headers_out, "Vary", "Origin");
        for (i = 0, allowed = NULL; origin && i < conf->origins->nelts; i++) {
            if (!strcmp(origin, APR_ARRAY_IDX(conf->origins, i,
                                              const char *))) {
                allowed = origin;
            }
        }
    }
    else if (conf->origins) {
        allowed = APR_ARRAY_IDX(conf->origins, 0, const char *);
    }
    if (allowed) {
        apr_table_setn(r->err_headers_out, "Access-Control-Allow-Origin",
                       allowed);
    }
}

int sse_handler(request_rec *r)
{
    sse_srv_conf_t *conf = sse_srv_conf(r->server);
    sse_route_t rt;
    body_t body;
    apr_status_t rv;
    int status;

    /* only requests our translate_name claimed: a SetHandler sse-mgr
     * elsewhere would point below a prefix the URI does not have */
    if (r->handler == NULL || strcmp(r->handler, SSE_HANDLER) != 0
        || apr_table_get(r->notes, SSE_NOTE_ROUTE) == NULL) {
        return DECLINED;
    }
    allow_origin(r, conf);
    rv = sse_route_parse(r->pool, r->uri + strlen(conf->prefix), &rt);
    if (rv == APR_ENOENT) {
        return HTTP_NOT_FOUND;
    }
    if (r->method_number == M_OPTIONS) {
        return preflight(r, rt.def);
    }
    if ((method_bit(r) & rt.def->methods) == 0) {
        apr_table_setn(r->err_headers_out, "Allow", rt.def->allow);
        return text(r, HTTP_METHOD_NOT_ALLOWED,
                    apr_pstrcat(r->pool, rt.def->name, " allows ",
                                rt.def->allow, NULL));
    }
    if (rv == APR_SUCCESS
        && (status = read_body(r, body_max(&rt), &body)) != DECLINED) {
        return status;
    }
    if (rv == APR_EINVAL) {
        return text(r, HTTP_BAD_REQUEST, rt.error);
    }
    if ((status = check_ids(r, &rt)) != DECLINED) {
        return status;
    }
    return route_fns[rt.route](r, &rt, &body);
}
