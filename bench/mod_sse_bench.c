/*
 * mod_sse_bench: publish through mod_sse_mgr's optional functions, with no
 * HTTP request per message, to show what HTTP costs apart (bench/ only;
 * never load it on a real server).
 *
 *   GET /bench/fanout?key=K&n=M
 *       sse_mgr_notify_listeners(K) M times back to back
 *   POST /bench/completions?n=N   body: N lines, line i the id of listener
 *       i (or empty)
 *       sse_mgr_notify_completions(id_i, "c<i>.<t>") for each, timed; the
 *       task id carries its send time t (CLOCK_MONOTONIC ns) so that the
 *       receiving client measures the latency of each one
 *
 * One text line answers: rv (the last failure, or 0), n, errors,
 * delivered, t0 (CLOCK_MONOTONIC ns before the first call), elapsed_ns and
 * the rate. <Location /bench/> SetHandler sse-bench </Location>
 */
#include <string.h>
#include <time.h>

#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>

#include <apr_strings.h>

#include "include/mod_sse_mgr.h"

#define BENCH_MAX_N     200000
#define BENCH_ARG_MAX   40
#define BENCH_BODY_MAX  (BENCH_MAX_N * 100)

static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_listeners) *notify_listeners;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_completions) *notify_completions;

typedef struct {
    apr_status_t rv;
    int n, errors;
    long delivered;
    apr_int64_t t0, elapsed;
    apr_int64_t cpu;            /* the calling thread's CPU in the loop */
} bench_result_t;

static void retrieve(void)
{
    notify_listeners = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners);
    notify_completions =
        APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_completions);
}

static apr_int64_t clock_ns(clockid_t clk)
{
    struct timespec ts;

    clock_gettime(clk, &ts);
    return (apr_int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static apr_int64_t mono_ns(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

/* What the loop cost its thread, apart from the time others ran: on a
 * shared machine the rate (calls / elapsed) also counts the cores it
 * did not get. */
static apr_int64_t cpu_ns(void)
{
    return clock_ns(CLOCK_THREAD_CPUTIME_ID);
}

/* The value of `name` in the query: [A-Za-z0-9._~-], at most
 * BENCH_ARG_MAX bytes, else NULL. */
static const char *arg(request_rec *r, const char *name)
{
    const char *p = r->args;
    apr_size_t nlen = strlen(name), len;

    while (p && *p) {
        if (strncmp(p, name, nlen) == 0 && p[nlen] == '=') {
            p += nlen + 1;
            len = strspn(p, "abcdefghijklmnopqrstuvwxyz"
                         "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._~-");
            if (len == 0 || len > BENCH_ARG_MAX
                || (p[len] != '\0' && p[len] != '&')) {
                return NULL;
            }
            return apr_pstrmemdup(r->pool, p, len);
        }
        p = strchr(p, '&');
        p = p ? p + 1 : NULL;
    }
    return NULL;
}

static int count_arg(request_rec *r)
{
    const char *v = arg(r, "n");
    int n = v ? atoi(v) : 0;

    return (n >= 1 && n <= BENCH_MAX_N) ? n : 0;
}

static void fanout(request_rec *r, const char *key, bench_result_t *res)
{
    int i, d;

    res->t0 = mono_ns();
    for (i = 0; i < res->n; i++) {
        apr_status_t rv = notify_listeners(r->server, key, &d);
        if (rv != APR_SUCCESS) {
            res->rv = rv;
            res->errors++;
        }
        else {
            res->delivered += d;
        }
    }
    res->elapsed = mono_ns() - res->t0;
}

/* The request body, whole, at most BENCH_BODY_MAX bytes; NULL if larger
 * or unreadable. */
static char *read_body(request_rec *r)
{
    apr_size_t len = 0, cap = 65536;
    char *buf = apr_palloc(r->pool, cap + 1);
    long got;

    if (ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK) != OK) {
        return NULL;
    }
    if (ap_should_client_block(r)) {
        while ((got = ap_get_client_block(r, buf + len, cap - len)) > 0) {
            len += (apr_size_t)got;
            if (len == cap) {
                char *bigger;
                if (cap * 2 > BENCH_BODY_MAX) {
                    return NULL;
                }
                bigger = apr_palloc(r->pool, cap * 2 + 1);
                memcpy(bigger, buf, len);
                buf = bigger;
                cap *= 2;
            }
        }
        if (got < 0) {
            return NULL;
        }
    }
    buf[len] = '\0';
    return buf;
}

/* Line i of the body is the id of listener i, or empty. */
static const char **split_ids(request_rec *r, char *body, int n)
{
    const char **ids = apr_pcalloc(r->pool, sizeof(*ids) * n);
    char *line = body, *nl;
    int i;

    for (i = 0; i < n && line && *line; i++) {
        nl = strchr(line, '\n');
        if (nl) {
            *nl = '\0';
        }
        ids[i] = *line ? line : NULL;
        line = nl ? nl + 1 : NULL;
    }
    return ids;
}

static void completions(request_rec *r, const char **ids,
                        bench_result_t *res)
{
    char taskid[64];
    int i, d;

    res->cpu = cpu_ns();
    res->t0 = mono_ns();
    for (i = 0; i < res->n; i++) {
        apr_status_t rv = APR_EINVAL;
        apr_snprintf(taskid, sizeof(taskid), "c%d.%" APR_INT64_T_FMT, i,
                     mono_ns());
        if (ids[i]) {
            rv = notify_completions(r->server, ids[i], taskid, &d);
        }
        if (rv != APR_SUCCESS) {
            res->rv = rv;
            res->errors++;
        }
        else {
            res->delivered += d;
        }
    }
    res->elapsed = mono_ns() - res->t0;
    res->cpu = cpu_ns() - res->cpu;
}

static int handler(request_rec *r)
{
    bench_result_t res;
    const char *what;

    if (strcmp(r->handler, "sse-bench")) {
        return DECLINED;
    }
    if (!notify_listeners || !notify_completions) {
        return HTTP_SERVICE_UNAVAILABLE;    /* mod_sse_mgr not loaded */
    }
    memset(&res, 0, sizeof(res));
    res.n = count_arg(r);
    what = strrchr(r->uri, '/');
    if (res.n == 0 || what == NULL) {
        return HTTP_BAD_REQUEST;
    }
    if (!strcmp(what, "/fanout") && r->method_number == M_GET
        && arg(r, "key")) {
        fanout(r, arg(r, "key"), &res);
    }
    else if (!strcmp(what, "/completions") && r->method_number == M_POST) {
        char *body = read_body(r);
        if (body == NULL) {
            return HTTP_REQUEST_ENTITY_TOO_LARGE;
        }
        completions(r, split_ids(r, body, res.n), &res);
    }
    else {
        return HTTP_NOT_FOUND;
    }
    ap_set_content_type(r, "text/plain");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rprintf(r, "rv=%d n=%d errors=%d delivered=%ld t0=%" APR_INT64_T_FMT
               " elapsed_ns=%" APR_INT64_T_FMT " per_s=%.0f cpu_ns=%"
               APR_INT64_T_FMT "\n", res.rv,
               res.n, res.errors, res.delivered, res.t0, res.elapsed,
               res.elapsed ? res.n * 1e9 / (double)res.elapsed : 0.0,
               res.cpu);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_optional_fn_retrieve(retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(sse_bench) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks,
    AP_MODULE_FLAG_NONE
};
