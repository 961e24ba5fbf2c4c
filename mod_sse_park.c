/*
 * Parked streams (docs/design.md): on the event MPM a held stream costs
 * no worker thread. Its handler writes the opening; then this child's
 * dispatcher writes its events and heartbeats without blocking, watches
 * its client, and closes it.
 *
 * A plain HTTP/1.x stream ends its request as any other, and as the MPM
 * closes its connection the stream keeps the socket (park_pre_close,
 * mod_sse_own.c). Any other (TLS) returns SUSPENDED: the
 * suspend_connection hook (on the same thread, once the MPM has let go
 * of the request) ends the request and hands the connection over; a
 * second after it parked, one that may be owned by then is.
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
#include "mod_sse_park.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_own.h"

/* After the suspend hook returns, the event MPM still stores into the
 * connection (c->sbh, its own state): a stream is never closed sooner
 * than this after it was parked, so a connect-and-close storm cannot
 * free a connection under the MPM's feet. */
#define SSE_PARK_GRACE      apr_time_from_msec(1000)
#define SSE_CLOSE_POLL      apr_time_from_msec(100)
/* Heartbeats due this soon go out now, with those due already: the
 * dispatcher wakes a few times a second for them, not once a stream,
 * and never polls with a wait epoll would round down to 0 ms (a spin). */
#define SSE_BEAT_SLACK      apr_time_from_msec(50)
/* Sockets taken over per dispatcher pass, at most (each is a dup, two
 * epoll changes and a connection freed) */
#define SSE_TAKES_PER_PASS  256

static struct {
    apr_pollset_t *ps;          /* the dispatcher's: wake-up + parked */
    apr_pool_t *scratch;        /* framing and reads, cleared per stream */
    sse_timer_t *beats;         /* parked streams by next_beat: O(log n)
                                   whatever their deadlines */
    sse_stream_t *closing;      /* ended, waiting out the grace */
    /* parked, oldest first, until the grace is over: then owned if
     * they may be (mod_sse_own.c). APR_RING's sentinel, computed from
     * a static head, is what -Warray-bounds refuses. */
    sse_stream_t *settle_first, *settle_last;
    int parked;
} park;

/* ---- the request's thread ------------------------------------------- */

int sse_park_possible(request_rec *r)
{
    int async = 0;

    /* not a subrequest or an internal redirect: httpd suspends only a
     * request it runs itself (ap_process_async_request) */
    return park.ps != NULL && r->main == NULL && r->prev == NULL
        && r->connection->master == NULL
        && r->connection->cs != NULL
        && ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) == APR_SUCCESS && async;
}

/* The connection of a stream to be owned went without a close the
 * MPM announced (park_pre_close): the stream ends with it. This runs
 * where the MPM clears the pool: on its error paths (a failed
 * apr_pollset_add), the listener thread. */
static apr_status_t handoff_lost(void *data)
{
    sse_stream_t *st = data;

    st->r = NULL;
    sse_stream_finish(st, APR_ECONNABORTED);
    return APR_SUCCESS;
}

/* A plain HTTP/1.x stream the dispatcher may own ends its request as
 * any other (the access log line is written, the request's pool freed)
 * and the MPM closes its connection as any other, recycling its pool:
 * park_pre_close keeps the socket. Any other stream is parked as a
 * connection: SUSPENDED, and park_suspend. */
int sse_park(sse_stream_t *st)
{
    conn_rec *c = st->c;

    ap_set_module_config(c->conn_config, &sse_mgr_module, st);
    if (sse_own_possible(st) && sse_dispatch_may_own()) {
        st->own_at_close = 1;
        apr_pool_cleanup_register(c->pool, st, handoff_lost,
                                  apr_pool_cleanup_null);
        return OK;
    }
    return SUSPENDED;
}

static void say_taken(conn_rec *c, const char *id)
{
    ap_log_cerror(APLOG_MARK, APLOG_DEBUG, 0, c, SSE_LOGNO(00218)
                  "the dispatcher takes the socket of %s's stream over",
                  id);
}

/* The MPM closes the connection of a stream that ended its request
 * (sse_park): the stream leaves it with a duplicate of its descriptor,
 * and the dispatcher owns it from there (mod_sse_own.c). Marked aborted,
 * the connection is closed without the shutdown() of a lingering close
 * (ap_start_lingering_close), which would end the stream too: the MPM
 * closes its descriptor only, and counts the connection gone. */
static int park_pre_close(conn_rec *c)
{
    sse_stream_t *st = ap_get_module_config(c->conn_config,
                                            &sse_mgr_module);
    apr_status_t rv;

    if (st == NULL || !st->own_at_close) {
        return OK;
    }
    ap_set_module_config(c->conn_config, &sse_mgr_module, NULL);
    apr_pool_cleanup_kill(c->pool, st, handoff_lost);
    st->own_at_close = 0;
    st->r = NULL;                       /* the request ended */
    st->scratch = NULL;
    st->scratch_lent = 0;
    /* bytes the socket did not take before the MPM gave up on the
     * connection (its write completion timed out) would be lost: the
     * client resumes instead */
    rv = c->aborted ? APR_ECONNABORTED
       : c->data_in_output_filters ? APR_TIMEUP : sse_own_leave(st);
    if (rv != APR_SUCCESS) {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, c, SSE_LOGNO(00221)
                      "cannot take this stream's socket over: it ends");
        sse_stream_finish(st, rv);      /* the record goes with c->pool */
        return OK;
    }
    say_taken(c, st->id);
    c->aborted = 1;
    sse_dispatch_adopt(st);
    return OK;
}

/* Memory freed while the request was read (the socket's read buffer, a
 * spent pool) waits in the connection's allocator for reuse that will not
 * come: with max_free at its least, taking those blocks and giving them
 * back returns them to the system (Debian's APR maps each block: this is
 * 8 KB less resident per parked stream). From here on nothing on the
 * stream's path takes a block of its own: put() in mod_sse_stream.c.
 * (A stream whose socket is owned at once, sse_park, never gets here:
 * the MPM recycles its connection's pool whole.) */
#define SSE_SPARE_BLOCKS    4

static void release_spare_blocks(apr_allocator_t *a)
{
    apr_memnode_t *node[SSE_SPARE_BLOCKS];
    int i;

    apr_allocator_max_free_set(a, 1);
    for (i = 0; i < SSE_SPARE_BLOCKS; i++) {
        node[i] = apr_allocator_alloc(a, 1);    /* the smallest: 8 KB */
    }
    for (i = 0; i < SSE_SPARE_BLOCKS; i++) {
        if (node[i]) {
            apr_allocator_free(a, node[i]);
        }
    }
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
    /* what the request frees is not kept for this connection */
    apr_allocator_max_free_set(apr_pool_allocator_get(c->pool), 1);
    ap_finalize_request_protocol(st->r);
    ap_process_request_after_handler(st->r);
    release_spare_blocks(apr_pool_allocator_get(c->pool));
    /* ended in the MPM's eyes only when we close it: its counters */
    c->cs->state = CONN_STATE_SUSPENDED;
    st->r = NULL;
    st->scratch = NULL;                 /* was the request's */
    st->scratch_lent = 0;
    st->out = c->output_filters;
    st->bb = apr_brigade_create(c->pool, c->bucket_alloc);
    st->timeout = c->base_server->timeout;
    /* writes never block the dispatcher: sse_park_write() */
    apr_socket_timeout_set(ap_get_conn_socket(c), 0);
    sse_dispatch_adopt(st);
}

/* The event MPM counts parked connections against ThreadsPerChild +
 * idle threads x AsyncRequestWorkerFactor per child, and refuses new
 * connections beyond (docs/design.md): TLS streams, and streams a child
 * holds past its room for owned ones. With every thread idle that is
 * ThreadsPerChild x (1 + the factor). */
int sse_park_mpm_connections(void)
{
    ap_directive_t *d;
    int async = 0, threads = 0, factor = 2;

    if (ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) != APR_SUCCESS || !async
        || ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS) {
        return 0;
    }
    for (d = ap_conftree; d; d = d->next) {
        if (strcasecmp(d->directive, "AsyncRequestWorkerFactor") == 0) {
            factor = atoi(d->args);
        }
    }
    return threads * (1 + (factor > 0 ? factor : 1));
}

/* Say so at start-up when fewer of those fit than SSEMaxListeners
 * allows. */
void sse_park_check_capacity(server_rec *s, int max_listeners)
{
    int per_child = sse_park_mpm_connections();
    int threads = 0, daemons = 0, factor;
    apr_int64_t fit;

    if (per_child == 0
        || ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS
        || threads <= 0) {
        return;
    }
    factor = per_child / threads - 1;
    fit = (apr_int64_t)daemons * per_child;
    if (fit < max_listeners) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00050)
                     "the event MPM takes about %" APR_INT64_T_FMT " "
                     "connections (%d processes x %d threads x (1 + "
                     "AsyncRequestWorkerFactor %d)), fewer than "
                     "SSEMaxListeners %d: streams over TLS count against "
                     "it; raise AsyncRequestWorkerFactor to hold that "
                     "many", fit,
                     daemons, threads,
                     factor, max_listeners);
    }
}

void sse_park_register_hooks(void)
{
    ap_hook_suspend_connection(park_suspend, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_pre_close_connection(park_pre_close, NULL, NULL,
                                 APR_HOOK_MIDDLE);
}

/* ---- the dispatcher's side: heartbeats in next_beat order ------------ */

/* (Re)key @a st at its next_beat: a heartbeat 15 s on, or a blocked
 * stream's deadline Timeout on, in one heap. */
static apr_status_t beat_sync(sse_stream_t *st)
{
    return sse_timer_set(park.beats, &st->beat, st->next_beat);
}

static void beat_remove(sse_stream_t *st)
{
    (void)sse_timer_remove(park.beats, &st->beat);  /* ENOENT: not in */
}

static sse_stream_t *beat_first(void)
{
    sse_timer_entry_t *e = sse_timer_peek(park.beats);

    return e ? SSE_TIMER_OWNER(e, sse_stream_t, beat) : NULL;
}

/* ---- the dispatcher's side: writing without blocking ----------------- */

/* A FLUSH bucket would make the core output filter wait for a full
 * socket; without one, mod_ssl's coalescing filter keeps small writes
 * back. This metadata bucket means nothing to the core but ends the
 * coalesced run, so mod_ssl passes what it holds down at once. */
static apr_status_t push_bucket_read(apr_bucket *b, const char **str,
                                     apr_size_t *len, apr_read_type_e block)
{
    (void)b;
    (void)block;
    *str = NULL;
    *len = 0;
    return APR_SUCCESS;
}

static const apr_bucket_type_t push_bucket_type = {
    "SSE_PUSH", 5, APR_BUCKET_METADATA,
    apr_bucket_destroy_noop, push_bucket_read, apr_bucket_setaside_noop,
    apr_bucket_split_notimpl, apr_bucket_simple_copy
};

static apr_bucket *push_bucket_create(apr_bucket_alloc_t *list)
{
    apr_bucket *b = apr_bucket_alloc(sizeof(*b), list);

    APR_BUCKET_INIT(b);
    b->free = apr_bucket_free;
    b->list = list;
    b->type = &push_bucket_type;
    b->length = 0;
    b->start = 0;
    b->data = NULL;
    return b;
}

/* Send what the core output filter holds, as far as the socket takes it
 * now (a NULL brigade: the event MPM's own write completion call). */
static apr_status_t push(conn_rec *c)
{
    ap_filter_t *f = c->output_filters;

    while (f->next) {
        f = f->next;
    }
    return f->frec->filter_func.out_func(f, NULL);
}

static apr_status_t watch(sse_stream_t *st, apr_int16_t events)
{
    apr_pollset_remove(park.ps, &st->pfd);
    st->pfd.reqevents = events;
    return apr_pollset_add(park.ps, &st->pfd);
}

static apr_status_t due_at(sse_stream_t *st, apr_time_t when)
{
    st->next_beat = when;
    return beat_sync(st);
}

/* Is something the socket did not take still held: in the core output
 * filter, or kept by a stream the dispatcher owns? */
static int held_back(const sse_stream_t *st)
{
    return st->owned ? st->kept != NULL : st->c->data_in_output_filters;
}

/* Pass the brigade through the connection's filters and send what the
 * core output filter then holds, as far as the socket takes it. */
static apr_status_t filter_write(sse_stream_t *st)
{
    conn_rec *c = st->c;
    apr_status_t rv;

    /* after the last bucket: APR_BRIGADE_INSERT_TAIL computes the ring's
     * sentinel from a null pointer, which UBSan reports */
    APR_BUCKET_INSERT_AFTER(APR_BRIGADE_LAST(st->bb),
                            push_bucket_create(c->bucket_alloc));
    rv = ap_pass_brigade(st->out, st->bb);
    if (rv == APR_SUCCESS && !c->aborted) {
        rv = push(c);
    }
    return rv;
}

/* Without a FLUSH bucket the core output filter sets aside what the
 * socket does not take instead of waiting (an owned stream keeps it
 * itself). Then the stream writes no more (at most one batch is held)
 * until the socket drains: the client has Timeout to make progress, as
 * httpd gives any response. */
apr_status_t sse_park_write(sse_stream_t *st)
{
    apr_status_t rv = st->owned ? sse_own_write(st) : filter_write(st);

    if (rv == APR_SUCCESS && held_back(st) && !st->blocked) {
        st->blocked = 1;
        st->next_beat = sse_clock() + st->timeout;
        rv = watch(st, APR_POLLIN | APR_POLLOUT);
    }
    return rv;
}

/* Send what is held back, as far as the socket takes it now. */
static apr_status_t send_held(sse_stream_t *st)
{
    apr_status_t rv;

    if (st->owned) {
        return sse_own_drain(st);
    }
    rv = push(st->c);
    return (rv == APR_SUCCESS && st->c->aborted) ? APR_ECONNABORTED : rv;
}

/* The socket took more: still full, a new Timeout; empty, write on. */
static apr_status_t drained(sse_stream_t *st)
{
    apr_time_t now = sse_clock();
    apr_status_t rv = send_held(st);

    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (held_back(st)) {
        return due_at(st, now + st->timeout);
    }
    st->blocked = 0;
    rv = due_at(st, now + sse_conf_heartbeat());
    if (rv == APR_SUCCESS) {
        rv = watch(st, APR_POLLIN);
    }
    if (rv == APR_SUCCESS) {
        rv = sse_stream_written(st);
    }
    if (rv == APR_SUCCESS && st->catch_up) {
        rv = sse_stream_serve(st);
    }
    return rv == APR_SUCCESS ? beat_sync(st) : rv;
}

/* ---- the dispatcher's side: ending and closing ----------------------- */

static void settle_append(sse_stream_t *st)
{
    st->settle_next = NULL;
    st->settle_prev = park.settle_last;
    *(park.settle_last ? &park.settle_last->settle_next
                       : &park.settle_first) = st;
    park.settle_last = st;
    st->on_settle = 1;
}

static void settle_remove(sse_stream_t *st)
{
    if (!st->on_settle) {
        return;
    }
    *(st->settle_prev ? &st->settle_prev->settle_next
                      : &park.settle_first) = st->settle_next;
    *(st->settle_next ? &st->settle_next->settle_prev
                      : &park.settle_last) = st->settle_prev;
    st->on_settle = 0;
}

static void park_end(sse_stream_t *st, apr_status_t rv)
{
    apr_pollset_remove(park.ps, &st->pfd);
    beat_remove(st);
    settle_remove(st);
    sse_stream_finish(st, rv);
    SSE_ASSERT(!st->on_closing);
    st->on_closing = 1;
    st->close_next = park.closing;
    park.closing = st;
    park.parked--;
}

/* Push what the core output filter still buffers (never blocking), let
 * protocol modules say goodbye, and free the connection: its pool's
 * cleanups close the socket and tell the MPM it is gone. An owned
 * stream has no connection left: its socket closes. */
static void park_close(sse_stream_t *st)
{
    conn_rec *c = st->c;

    SSE_ASSERT(!sse_registry_lock_held());
    if (st->owned) {
        sse_own_close(st);
        return;
    }
    if (!c->aborted) {
        (void)push(c);
    }
    ap_prep_lingering_close(c);
    apr_pool_destroy(c->pool);
}

/* The event MPM clears c->sbh once our suspend hook returned; its one
 * store after that (its own "suspended" mark) is the next instruction.
 * A connection whose sbh is still set is never freed, however long the
 * worker that parked it was held off the CPU; the grace covers the
 * store after it. */
static int mpm_let_go(const conn_rec *c)
{
    return *(void *volatile *)&c->sbh == NULL;
}

static apr_interval_time_t close_due(apr_time_t now)
{
    sse_stream_t **link = &park.closing, *st;

    while ((st = *link) != NULL) {
        if (st->owned || (mpm_let_go(st->c)
                          && now - st->parked_at >= SSE_PARK_GRACE)) {
            *link = st->close_next;
            park_close(st);
        }
        else {
            link = &st->close_next;
        }
    }
    return park.closing ? SSE_CLOSE_POLL : -1;
}

/* ---- the dispatcher's side: owning sockets --------------------------- */

/* Take over @a st's socket and free its connection (mod_sse_own.c); the
 * pollset watches the new descriptor. One that cannot be taken stays a
 * parked connection. */
static void take_socket(sse_stream_t *st)
{
    apr_status_t rv;

    apr_pollset_remove(park.ps, &st->pfd);
    say_taken(st->c, st->id);
    rv = sse_own_take(st);
    if (rv == APR_SUCCESS) {
        st->pfd.p = apr_socket_pool_get(st->sock);
        st->pfd.desc.s = st->sock;
    }
    else {
        ap_log_cerror(APLOG_MARK, APLOG_DEBUG, rv, st->c, SSE_LOGNO(00217)
                      "cannot take this stream's socket over: it stays "
                      "a connection of the MPM's");
    }
    rv = apr_pollset_add(park.ps, &st->pfd);
    if (rv != APR_SUCCESS) {
        park_end(st, rv);
    }
}

/* Streams parked a grace ago (in the order they parked), whose
 * connection the MPM let go of: the dispatcher owns those it may, a
 * few hundred a pass (a reconnect storm must not hold up deliveries).
 * @return how long until the next is due, or -1: none waits. */
static apr_interval_time_t settle_due(apr_time_t now)
{
    sse_stream_t *st;
    int taken = 0, may_own = sse_dispatch_may_own();

    while ((st = park.settle_first) != NULL) {
        if (taken++ == SSE_TAKES_PER_PASS) {
            return apr_time_from_msec(1);
        }
        if (now - st->parked_at < SSE_PARK_GRACE) {
            /* and those parked just after it with it */
            return st->parked_at + SSE_PARK_GRACE - now + SSE_BEAT_SLACK;
        }
        if (!mpm_let_go(st->c)) {
            return SSE_CLOSE_POLL;
        }
        settle_remove(st);
        if (may_own && sse_own_possible(st)) {
            take_socket(st);
        }
    }
    return -1;
}

/* ---- the dispatcher's side: serving ---------------------------------- */

/* After a stream's turn: what it framed but did not send (an error
 * midway) must not go out with the next stream's bytes (owned streams
 * share one brigade), and its scratch memory goes. */
static void done_with(sse_stream_t *st)
{
    apr_brigade_cleanup(st->bb);
    apr_pool_clear(park.scratch);
}

apr_status_t sse_park_init(apr_pool_t *pchild, apr_pollset_t *ps)
{
    apr_status_t rv = sse_timer_create(&park.beats, pchild, 1024);

    if (rv == APR_SUCCESS) {
        rv = apr_pool_create(&park.scratch, pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = sse_own_init(pchild);
    }
    if (rv == APR_SUCCESS) {
        park.ps = ps;           /* from now streams may park */
    }
    return rv;
}

void sse_park_serve(sse_stream_t *st)
{
    apr_status_t rv;

    if (st->on_closing) {
        return;                 /* ended since it was put on the list */
    }
    rv = sse_stream_serve(st);
    if (rv == APR_SUCCESS) {
        rv = beat_sync(st);     /* it wrote: its heartbeat moves on */
    }
    if (rv != APR_SUCCESS) {
        park_end(st, rv);
    }
    done_with(st);
}

void sse_park_adopted(sse_stream_t *st)
{
    apr_status_t rv;

    st->scratch = park.scratch;
    st->parked_at = sse_clock();
    if (st->c == NULL) {
        sse_own_start(st);      /* it left its connection (park_pre_close) */
        st->pfd.p = apr_socket_pool_get(st->sock);
        st->pfd.desc.s = st->sock;
    }
    else {
        st->pfd.p = st->c->pool;
        st->pfd.desc.s = ap_get_conn_socket(st->c);
        settle_append(st);
    }
    st->pfd.desc_type = APR_POLL_SOCKET;
    st->pfd.reqevents = APR_POLLIN;
    st->pfd.client_data = st;
    park.parked++;
    sse_timer_entry_init(&st->beat);
    rv = beat_sync(st);
    if (rv == APR_SUCCESS) {
        rv = apr_pollset_add(park.ps, &st->pfd);
    }
    if (rv != APR_SUCCESS) {
        SSE_STREAM_LOG(st, APLOG_ERR, rv, SSE_LOGNO(00049)
                       "cannot watch a parked stream");
        park_end(st, rv);
        return;
    }
    sse_park_serve(st);         /* what came while it was handed over */
}

void sse_park_event(sse_stream_t *st, apr_int16_t ev)
{
    apr_status_t rv = APR_SUCCESS;

    if (ev & ~APR_POLLOUT) {
        rv = sse_stream_client_gone(st, ev);
    }
    if (rv == APR_SUCCESS && (ev & APR_POLLOUT) && st->blocked) {
        rv = drained(st);
        /* blocked when its grace ended: it may be owned now */
        if (rv == APR_SUCCESS && !st->blocked && !st->owned
            && !st->on_settle && sse_own_possible(st)) {
            settle_append(st);
        }
    }
    if (rv != APR_SUCCESS) {
        park_end(st, rv);
    }
    done_with(st);
}

apr_interval_time_t sse_park_tick(apr_interval_time_t max)
{
    apr_time_t now = sse_clock();
    apr_interval_time_t wait, settle;
    apr_status_t rv;
    sse_stream_t *st;

    while ((st = beat_first()) != NULL
           && st->beat.due <= now + SSE_BEAT_SLACK) {
        /* a blocked stream's next_beat is its deadline */
        rv = st->blocked ? APR_TIMEUP
                         : sse_stream_beat(st, now + SSE_BEAT_SLACK);
        if (rv == APR_SUCCESS) {
            rv = beat_sync(st);
        }
        if (rv != APR_SUCCESS) {
            park_end(st, rv);
        }
        done_with(st);
    }
    wait = close_due(now);
    if (wait < 0 || wait > max) {
        wait = max;
    }
    settle = settle_due(now);
    if (settle >= 0 && settle < wait) {
        wait = settle;
    }
    st = beat_first();          /* settling may have ended one */
    if (st != NULL && st->beat.due - now < wait) {
        wait = st->beat.due - now;
    }
    return wait;
}

int sse_park_end_all(void)
{
    sse_stream_t *st;

    while ((st = beat_first()) != NULL) {
        park_end(st, APR_EOF);
    }
    close_due(sse_clock());
    return park.closing != NULL;
}
