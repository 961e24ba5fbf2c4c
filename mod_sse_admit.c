/*
 * Admission of stream requests: which are served here, and on what.
 *
 * - Over HTTP/2 (SSEHTTP2 downgrade, the default) a stream is refused
 *   so that the client retries it over HTTP/1.1, where it parks: in
 *   httpd 2.4 an h2 stream cannot be suspended, so it would hold an h2
 *   worker and its connection an MPM worker for its whole life, and
 *   mod_http2's per-connection limit would stall the page's other
 *   requests (docs/operations.md). mod_http2 resets a stream with
 *   HTTP_1_1_REQUIRED when its response is a 403 carrying the note
 *   "ssl-renegotiate-forbidden" (h2_stream.c, meant for mod_ssl's
 *   renegotiations); that is the one way a module can ask for it.
 * - A stream that cannot park holds its request's worker thread
 *   (prefork, worker, and HTTP/2 with SSEHTTP2 serve): such streams are
 *   bounded (SSEMaxStreamsPerChild) so that ordinary requests always
 *   find a worker.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <ap_mpm.h>

#include <apr_atomic.h>
#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_admit.h"

/* The note mod_http2 (2.4.x, h2_stream.c) answers with HTTP_1_1_REQUIRED */
#define H2_DOWNGRADE_NOTE "ssl-renegotiate-forbidden"

/* Who counts. Under event only a stream that cannot park holds a thread
 * (HTTP/2 with SSEHTTP2 serve): each child counts its own. Under prefork
 * and worker every stream holds one, and the registry counts them under
 * its mutex at connect, all children together: a worker child whose
 * threads are all held stops accepting and the others answer, so what
 * must stay free is a share of all workers, not of each child's. */
static struct {
    int per_child;              /* event: this child counts */
    int bound;                  /* SSEMaxStreamsPerChild in force */
    int total;                  /* prefork, worker: over all children */
    volatile apr_uint32_t held; /* event: this child's, now */
} admit;

static int over_h2(const request_rec *r)
{
    return r->connection->master != NULL
        && r->proto_num >= HTTP_VERSION(2, 0);
}

int sse_admit_h2(request_rec *r)
{
    if (!over_h2(r) || SSE_H2_MODE(sse_srv_conf(r->server))
                       != SSE_H2_DOWNGRADE) {
        return OK;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00164)
                  "stream asked over HTTP/2: the client is told to retry "
                  "over HTTP/1.1 (SSEHTTP2 downgrade)");
    apr_table_setn(r->notes, H2_DOWNGRADE_NOTE,
                   "mod_sse_mgr: event streams are served over HTTP/1.1");
    return HTTP_FORBIDDEN;
}

/* The request's pool goes when its thread is free again, on every path */
static apr_status_t thread_done(void *unused)
{
    (void)unused;
    apr_atomic_dec32(&admit.held);
    return APR_SUCCESS;
}

int sse_admit_thread(request_rec *r)
{
    if (!admit.per_child) {
        return OK;
    }
    if (apr_atomic_inc32(&admit.held) < (apr_uint32_t)admit.bound) {
        apr_pool_cleanup_register(r->pool, NULL, thread_done,
                                  apr_pool_cleanup_null);
        return OK;
    }
    apr_atomic_dec32(&admit.held);
    return sse_admit_refused(r);
}

void sse_admit_child_init(server_rec *s)
{
    for (; s && admit.total > 0; s = s->next) {
        sse_srv_conf_t *conf = sse_srv_conf(s);
        if (conf->owner && conf->reg) {
            sse_registry_set_stream_bound(conf->reg,
                                          (apr_uint32_t)admit.total);
        }
    }
}

int sse_admit_refused(request_rec *r)
{
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SSE_LOGNO(00165)
                  "%d streams already hold worker threads %s "
                  "(SSEMaxStreamsPerChild): refused, so that other "
                  "requests still find a worker",
                  admit.per_child ? admit.bound : admit.total,
                  admit.per_child ? "in this child" : "in all children");
    apr_table_setn(r->err_headers_out, "Retry-After", "5");
    return HTTP_SERVICE_UNAVAILABLE;
}

/* 3/4 of @a of, keeping at least one for other requests. */
static int share(int of)
{
    return of > 4 ? of * 3 / 4 : (of > 1 ? of - 1 : 1);
}

static void log_h2_serve(server_rec *s)
{
    for (; s; s = s->next) {
        if (sse_srv_conf(s)->owner
            && SSE_H2_MODE(sse_srv_conf(s)) == SSE_H2_SERVE) {
            ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00166)
                         "SSEHTTP2 serve: each stream over HTTP/2 holds an "
                         "h2 worker (H2MaxWorkers) and, while any is open, "
                         "its connection holds an MPM worker; mod_http2 "
                         "starts each connection at 6 streams at once and "
                         "lowers that when clients cancel streams, so a "
                         "page with several streams stalls its own "
                         "requests. 'SSEHTTP2 downgrade' moves streams to "
                         "HTTP/1.1, where they park");
        }
    }
}

/* Prefork: a child is one thread, the bound counts children; worker:
 * the bound per child, times the children httpd may run. */
static void compute_bound(int threaded, int async, int threads, int daemons)
{
    int set = sse_gconf.max_thread_streams;

    admit.per_child = async;
    if (threaded == AP_MPMQ_NOT_SUPPORTED) {
        admit.bound = admit.total = set > 0 ? set : share(daemons);
        return;
    }
    admit.bound = set > 0 ? set : share(threads);
    admit.total = async ? 0 : admit.bound * (daemons > 0 ? daemons : 1);
}

void sse_admit_post_config(server_rec *s)
{
    int threaded = AP_MPMQ_NOT_SUPPORTED, threads = 1, daemons = 1;
    int async = 0;
    char where[96];

    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads);
    ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons);
    ap_mpm_query(AP_MPMQ_IS_ASYNC, &async);
    compute_bound(threaded, async, threads, daemons);
    admit.held = 0;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_RUN_MPM) {
        return;                 /* said at start-up, not on every restart */
    }
    if (ap_find_linked_module("mod_http2.c")) {
        log_h2_serve(s);
    }
    if (admit.per_child) {
        apr_snprintf(where, sizeof(where), "%d per child of %d threads",
                     admit.bound, threads);
    }
    else if (threaded == AP_MPMQ_NOT_SUPPORTED) {
        apr_snprintf(where, sizeof(where), "%d in all %d children",
                     admit.total, daemons);
    }
    else {
        apr_snprintf(where, sizeof(where), "%d in all %d children (%d per "
                     "child of %d threads)", admit.total, daemons,
                     admit.bound, threads);
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00167)
                 "streams that hold a worker thread%s: at most %s; more "
                 "get 503 (SSEMaxStreamsPerChild)",
                 async ? " (over HTTP/2 with SSEHTTP2 serve; HTTP/1.1 "
                         "streams park)" : "", where);
}
