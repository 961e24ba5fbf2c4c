/*
 * Step 2 of DESIGN §3: on the event MPM a held stream costs no worker
 * thread. Its handler writes the opening and returns SUSPENDED; the
 * suspend_connection hook (on the same thread, once the MPM has let go
 * of the request) ends the request and hands the connection to this
 * child's dispatcher, which from then on writes its events and
 * heartbeats without blocking, watches its client, and closes it.
 *
 * Everything below "the dispatcher's side" runs on the dispatcher
 * thread only, so the parked streams, their beat list and the scratch
 * pool need no lock of their own.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mpm_common.h>

#include <apr_poll.h>

#include <stdlib.h>
#include <strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_dispatch.h"

/* After the suspend hook returns, the event MPM still stores into the
 * connection (c->sbh, its own state): a stream is never closed sooner
 * than this after it was parked, so a connect-and-close storm cannot
 * free a connection under the MPM's feet. */
#define SSE_PARK_GRACE      apr_time_from_msec(1000)
#define SSE_CLOSE_POLL      apr_time_from_msec(100)

static struct {
    apr_pollset_t *ps;          /* the dispatcher's: wake-up + parked */
    apr_pool_t *scratch;        /* framing and reads, cleared per stream */
    sse_stream_t *beat_head;    /* parked streams by next_beat */
    sse_stream_t *beat_tail;
    sse_stream_t *closing;      /* ended, waiting out the grace */
    int parked;
} park;

/* ---- the request's thread ------------------------------------------- */

int sse_park_possible(request_rec *r)
{
    int async = 0;

    return park.ps != NULL && r->connection->master == NULL
        && r->connection->cs != NULL
        && ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) == APR_SUCCESS && async;
}

int sse_park(sse_stream_t *st)
{
    ap_set_module_config(st->c->conn_config, &sse_mgr_module, st);
    return SUSPENDED;
}

/* The MPM let go of the request (the handler returned SUSPENDED). Finish
 * the request now, so that its pool and its log line do not wait for the
 * stream's end; the connection alone carries the stream from here. */
static void park_suspend(conn_rec *c, request_rec *r)
{
    sse_stream_t *st = ap_get_module_config(c->conn_config,
                                            &sse_mgr_module);

    (void)r;
    if (st == NULL || c->cs == NULL
        || c->cs->state != CONN_STATE_SUSPENDED) {
        return;
    }
    ap_set_module_config(c->conn_config, &sse_mgr_module, NULL);
    /* what the request frees is not kept for this connection's reuse */
    apr_allocator_max_free_set(apr_pool_allocator_get(c->pool), 1);
    ap_finalize_request_protocol(st->r);
    ap_process_request_after_handler(st->r);
    /* ended in the MPM's eyes only when we close it: its counters */
    c->cs->state = CONN_STATE_SUSPENDED;
    st->r = NULL;
    st->scratch = NULL;                 /* was the request's */
    st->out = c->output_filters;
    st->bb = apr_brigade_create(c->pool, c->bucket_alloc);
    /* writes never block the dispatcher: a full socket ends the stream */
    apr_socket_timeout_set(ap_get_conn_socket(c), 0);
    sse_dispatch_adopt(st);
}

/* The event MPM counts parked connections against ThreadsPerChild +
 * idle threads x AsyncRequestWorkerFactor per child, and refuses new
 * connections beyond (DESIGN §3): say so at start-up when fewer streams
 * fit than SSEMaxListeners allows. */
void sse_park_check_capacity(server_rec *s, int max_listeners)
{
    ap_directive_t *d;
    int async = 0, threads = 0, daemons = 0, factor = 2;
    apr_int64_t fit;

    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS || !async
        || ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS) {
        return;
    }
    for (d = ap_conftree; d; d = d->next) {
        if (strcasecmp(d->directive, "AsyncRequestWorkerFactor") == 0) {
            factor = atoi(d->args);
        }
    }
    fit = (apr_int64_t)daemons * threads * (1 + (factor > 0 ? factor : 1));
    if (fit < max_listeners) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00050)
                     "the event MPM takes about %" APR_INT64_T_FMT " "
                     "connections (%d processes x %d threads x (1 + "
                     "AsyncRequestWorkerFactor %d)), fewer than "
                     "SSEMaxListeners %d: raise AsyncRequestWorkerFactor "
                     "to hold that many streams", fit, daemons, threads,
                     factor, max_listeners);
    }
}

void sse_park_register_hooks(void)
{
    ap_hook_suspend_connection(park_suspend, NULL, NULL, APR_HOOK_MIDDLE);
}

/* ---- the dispatcher's side: heartbeats in next_beat order ------------ */

static void beat_remove(sse_stream_t *st)
{
    if (st->beat_prev) {
        st->beat_prev->beat_next = st->beat_next;
    }
    else {
        park.beat_head = st->beat_next;
    }
    if (st->beat_next) {
        st->beat_next->beat_prev = st->beat_prev;
    }
    else {
        park.beat_tail = st->beat_prev;
    }
    st->beat_prev = st->beat_next = NULL;
}

/* From the tail: a stream that just wrote is due last, so this is O(1)
 * but for streams that wrote at nearly the same time. */
static void beat_insert(sse_stream_t *st)
{
    sse_stream_t *p = park.beat_tail;

    while (p && p->next_beat > st->next_beat) {
        p = p->beat_prev;
    }
    st->beat_prev = p;
    st->beat_next = p ? p->beat_next : park.beat_head;
    if (st->beat_next) {
        st->beat_next->beat_prev = st;
    }
    else {
        park.beat_tail = st;
    }
    if (p) {
        p->beat_next = st;
    }
    else {
        park.beat_head = st;
    }
}

/* ---- the dispatcher's side: ending and closing ----------------------- */

static void park_end(sse_stream_t *st, apr_status_t rv)
{
    apr_pollset_remove(park.ps, &st->pfd);
    beat_remove(st);
    sse_stream_finish(st, rv);
    st->work_next = park.closing;
    park.closing = st;
    park.parked--;
}

/* Push what the core output filter still buffers (never blocking), let
 * protocol modules say goodbye, and free the connection: its pool's
 * cleanups close the socket and tell the MPM it is gone. */
static void park_close(sse_stream_t *st)
{
    conn_rec *c = st->c;
    ap_filter_t *f = c->output_filters;

    if (!c->aborted) {
        while (f->next) {
            f = f->next;
        }
        (void)f->frec->filter_func.out_func(f, NULL);
    }
    ap_prep_lingering_close(c);
    apr_pool_destroy(c->pool);
}

static apr_interval_time_t close_due(apr_time_t now)
{
    sse_stream_t **link = &park.closing, *st;

    while ((st = *link) != NULL) {
        if (now - st->parked_at >= SSE_PARK_GRACE) {
            *link = st->work_next;
            park_close(st);
        }
        else {
            link = &st->work_next;
        }
    }
    return park.closing ? SSE_CLOSE_POLL : -1;
}

/* ---- the dispatcher's side: serving ---------------------------------- */

apr_status_t sse_park_init(apr_pool_t *pchild, apr_pollset_t *ps)
{
    park.ps = ps;
    return apr_pool_create(&park.scratch, pchild);
}

void sse_park_serve(sse_stream_t *st)
{
    apr_status_t rv = sse_stream_serve(st);

    if (rv == APR_SUCCESS) {
        beat_remove(st);        /* it wrote: its heartbeat moves on */
        beat_insert(st);
    }
    else {
        park_end(st, rv);
    }
    apr_pool_clear(park.scratch);
}

void sse_park_adopted(sse_stream_t *st)
{
    apr_status_t rv;

    st->scratch = park.scratch;
    st->parked_at = apr_time_now();
    st->pfd.p = st->c->pool;
    st->pfd.desc_type = APR_POLL_SOCKET;
    st->pfd.desc.s = ap_get_conn_socket(st->c);
    st->pfd.reqevents = APR_POLLIN;
    st->pfd.client_data = st;
    park.parked++;
    beat_insert(st);
    rv = apr_pollset_add(park.ps, &st->pfd);
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, rv, st->c, SSE_LOGNO(00049)
                      "cannot watch a parked stream's client");
        park_end(st, rv);
        return;
    }
    sse_park_serve(st);         /* what came while it was handed over */
}

void sse_park_event(sse_stream_t *st, apr_int16_t ev)
{
    apr_status_t rv = sse_stream_client_gone(st, ev);

    if (rv != APR_SUCCESS) {
        park_end(st, rv);
    }
    apr_pool_clear(park.scratch);
}

apr_interval_time_t sse_park_tick(apr_interval_time_t max)
{
    apr_time_t now = apr_time_now();
    apr_interval_time_t wait;
    apr_status_t rv;

    while (park.beat_head && park.beat_head->next_beat <= now) {
        sse_stream_t *st = park.beat_head;
        rv = sse_stream_beat(st);
        if (rv == APR_SUCCESS) {
            beat_remove(st);
            beat_insert(st);
        }
        else {
            park_end(st, rv);
        }
        apr_pool_clear(park.scratch);
    }
    wait = close_due(now);
    if (wait < 0 || wait > max) {
        wait = max;
    }
    if (park.beat_head && park.beat_head->next_beat - now < wait) {
        wait = park.beat_head->next_beat - now;
    }
    return wait;
}

int sse_park_end_all(void)
{
    while (park.beat_head) {
        park_end(park.beat_head, APR_EOF);
    }
    close_due(apr_time_now());
    return park.closing != NULL;
}
