/*
 * A stream held open on its request's thread (THREAD mode): it
 * sleeps in a pollset on {its client, the dispatcher's wake-up, its next
 * heartbeat}, copies the entries the dispatcher queued for it out of the
 * ring, frames them and writes them through the output filters. The
 * dispatcher that feeds it is mod_sse_dispatch.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <httpd.h>
#include <http_config.h>
#include <http_connection.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>

#include <apr_poll.h>
#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_stream.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_park.h"
#include "mod_sse_own.h"
#include "mod_sse_ops.h"
#include "mod_sse_handler.h"
#include "mod_sse_admit.h"
#include "mod_sse_bus.h"


/* ---- writing --------------------------------------------------------- */

/* @a buf lives in st->scratch or is static. A stream that parks sends it
 * as a POOL bucket: apr_brigade_write would take an 8 KB block from the
 * connection's allocator for every write, and a parked connection keeps
 * none spare (Debian's APR: an mmap and a munmap each). Should the core
 * output filter still hold the bucket when scratch is cleared, APR copies
 * it then. */
static apr_status_t put(sse_stream_t *st, const char *buf, apr_size_t len)
{
    if (st->mode == SSE_MODE_THREAD) {
        return apr_brigade_write(st->bb, NULL, NULL, buf, len);
    }
    APR_BUCKET_INSERT_AFTER(APR_BRIGADE_LAST(st->bb),
                            apr_bucket_pool_create(buf, len, st->scratch,
                                                   st->bb->bucket_alloc));
    return APR_SUCCESS;
}

/* A stream about to park frames its opening bytes in its request's pool,
 * which goes at park time: a pool of its own would be one more block
 * mapped and unmapped per stream. Only a backlog, flushed batch after
 * batch, needs one it can clear. */
static void scratch_done(sse_stream_t *st)
{
    if (st->scratch_lent == 0) {
        apr_pool_clear(st->scratch);
    }
    else if (st->scratch_lent++ == 2) {
        apr_pool_create(&st->scratch, st->r->pool);
        st->scratch_lent = 0;
    }
}

/* A stream on its own thread waits (up to Timeout) for the client to
 * take the bytes; a parked one must not block its dispatcher. */
static apr_status_t flush(sse_stream_t *st)
{
    conn_rec *c = st->c;        /* NULL: owned, mod_sse_own.c */
    apr_status_t rv;

    SSE_ASSERT(!sse_registry_lock_held());   /* no I/O under the lock */
    if (!st->blocked) {
        st->next_beat = sse_clock() + sse_conf_heartbeat();
    }
    if (st->mode == SSE_MODE_PARKED) {
        rv = sse_park_write(st);
    }
    else {
        rv = ap_fflush(st->out, st->bb);
    }
    apr_brigade_cleanup(st->bb);
    scratch_done(st);
    return (rv == APR_SUCCESS && c && c->aborted) ? APR_ECONNABORTED : rv;
}

/* Record delivery; tell the client about events of its listener that the
 * ring lost before they could be written (a burst beyond SSEHistory). */
static apr_status_t ack(sse_stream_t *st, int count)
{
    apr_uint64_t from, to;
    apr_size_t len;
    const char *b;
    apr_status_t rv;

    rv = sse_registry_ack(st->reg, &st->hold, st->written, count,
                          sse_now_ms(), &from, &to);
    if (rv != APR_SUCCESS || to == 0) {
        return rv;
    }
    SSE_STREAM_LOG(st, APLOG_INFO, 0, SSE_LOGNO(00047)
                  "events %" APR_UINT64_T_FMT "..%" APR_UINT64_T_FMT " were "
                  "overwritten before this stream could send them: raise "
                  "SSEHistory", from, to);
    b = sse_frame_missed(st->scratch, from, to, &len);
    rv = put(st, b, len);
    return rv == APR_SUCCESS ? flush(st) : rv;
}

/* Delivered means written to the socket. A parked stream whose socket is
 * full holds its last batch in the core output filter (blocked): those
 * events count, and the listener's resume point moves past them, only
 * once the socket took them (sse_park: drained), so a stream ended while
 * blocked is resumed before them. */
static apr_status_t confirm(sse_stream_t *st, int count)
{
    st->unconfirmed += count;
    if (st->blocked) {
        return APR_SUCCESS;
    }
    count = st->unconfirmed;
    st->unconfirmed = 0;
    st->written = st->sent;
    return ack(st, count);
}

void sse_stream_log_owned(const char *file, int line, int module_index,
                          int level, apr_status_t rv, const sse_stream_t *st,
                          const char *fmt, ...)
{
    char msg[HUGE_STRING_LEN];
    va_list ap;

    va_start(ap, fmt);
    apr_vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    ap_log_error_(file, line, module_index, level, rv, st->server,
                  "[client %s] %s", st->client, msg);
}

apr_status_t sse_stream_written(sse_stream_t *st)
{
    return confirm(st, 0);
}

/* An event with a payload: a named event, framed with the payload copied
 * out of its ring; one whose payload newer ones overwrote is reported
 * missed, like an event the history lost. */
static apr_status_t put_payload_event(sse_stream_t *st, const sse_event_t *ev)
{
    char *payload = apr_palloc(st->scratch, ev->pay_len);
    apr_status_t rv = sse_registry_payload(st->reg, &st->hold, ev,
                                           payload);
    apr_size_t len = 0;
    const char *b;

    if (rv == APR_EOF) {
        SSE_STREAM_LOG(st, APLOG_INFO, 0, SSE_LOGNO(00173)
                      "the payload of event %" APR_UINT64_T_FMT " was "
                      "overwritten before this stream could send it: "
                      "raise SSEHistory", ev->seq);
        b = sse_frame_missed(st->scratch, ev->seq, ev->seq, &len);
        return put(st, b, len);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    b = ev->kind == SSE_EV_NAME
        ? sse_frame_completed_payload(st->scratch, ev->seq, ev->ms, st->id,
                                      ev->data, payload, ev->pay_len, &len)
        : sse_frame_notify_payload(st->scratch, ev->seq, ev->key, payload,
                                   ev->pay_len, &len);
    return b ? put(st, b, len) : APR_EINVAL;
}

/* Frame and write the events not yet sent; flush; record delivery. */
static apr_status_t write_events(sse_stream_t *st, const sse_event_t *evs,
                                 int n)
{
    apr_status_t rv = APR_SUCCESS;
    apr_uint64_t last = st->sent;
    int i, count = 0;

    for (i = 0; i < n && rv == APR_SUCCESS; i++) {
        char buf[SSE_DATA_MAX];
        const char *data, *b;
        apr_size_t len;
        if (evs[i].seq <= last || evs[i].kind == SSE_EV_END_SLOT
            || evs[i].kind == SSE_EV_END_ALL) {
            continue;
        }
        if (evs[i].pay_len) {
            rv = put_payload_event(st, &evs[i]);
            last = evs[i].seq;
            count++;
            continue;
        }
        rv = sse_registry_event_data(&evs[i], st->id, buf, &data, &len);
        if (rv == APR_SUCCESS) {
            b = sse_frame_event(st->scratch, evs[i].seq, data, len, &len);
            rv = put(st, b, len);
        }
        last = evs[i].seq;
        count++;
    }
    if (rv == APR_SUCCESS && count) {
        rv = flush(st);
    }
    if (rv == APR_SUCCESS) {
        st->sent = last;
    }
    return (rv == APR_SUCCESS && count) ? confirm(st, count) : rv;
}

/* Everything for this listener after st->sent that is still in the
 * ring; a blocked stream stops and takes the rest up once drained. */
static apr_status_t write_backlog(sse_stream_t *st)
{
    sse_event_t evs[SSE_BATCH];
    apr_status_t rv;
    int n;

    do {
        rv = sse_registry_read(st->reg, &st->hold, st->sent, evs,
                               SSE_BATCH, &n);
        if (rv == APR_SUCCESS && n) {
            rv = write_events(st, evs, n);
        }
    } while (rv == APR_SUCCESS && n == SSE_BATCH && !st->blocked);
    st->catch_up = st->blocked;
    return rv;
}

static apr_status_t write_queued(sse_stream_t *st, const apr_uint64_t *seqs,
                                 int n)
{
    sse_event_t evs[SSE_BATCH];
    apr_status_t rv = APR_SUCCESS;
    int i, got;

    for (i = 0; i < n && rv == APR_SUCCESS && !st->blocked; i += SSE_BATCH) {
        got = (n - i < SSE_BATCH) ? n - i : SSE_BATCH;
        if (!sse_dispatch_copies(st, seqs + i, got, evs)) {
            sse_registry_fetch(st->reg, &st->hold, seqs + i, evs, &got);
        }
        rv = write_events(st, evs, got);
    }
    st->catch_up = st->blocked;
    return rv;
}

/* retry:, the registered event (its id is the resume point, so the id
 * sequence the client sees never goes back), missed, backlog. */
static apr_status_t stream_open(sse_stream_t *st, const char *id)
{
    char data[SSE_DATA_MAX];
    apr_size_t len;
    apr_status_t rv;
    const char *b;

    b = sse_frame_retry(st->scratch, SSE_RETRY_MS, &len);
    rv = put(st, b, len);
    if (rv == APR_SUCCESS) {
        rv = sse_frame_data("registered", id, data, &len);
    }
    if (rv == APR_SUCCESS) {
        b = sse_frame_event(st->scratch, st->sent, data, len, &len);
        rv = put(st, b, len);
    }
    if (rv == APR_SUCCESS && st->hold.missed_to) {
        ap_log_cerror(APLOG_MARK, APLOG_INFO, 0, st->c, SSE_LOGNO(00048)
                      "events %" APR_UINT64_T_FMT "..%" APR_UINT64_T_FMT
                      " of this listener left the history before it came "
                      "back: raise SSEHistory", st->hold.missed_from,
                      st->hold.missed_to);
        b = sse_frame_missed(st->scratch, st->hold.missed_from,
                             st->hold.missed_to, &len);
        rv = put(st, b, len);
    }
    if (rv == APR_SUCCESS) {
        rv = flush(st);
    }
    return rv == APR_SUCCESS ? write_backlog(st) : rv;
}

/* ---- what every stream does, on whichever thread runs it ------------ */

/* The client spoke: a non-blocking read tells "nothing" (a spurious
 * wake-up) from EOF or bytes. An EventSource never sends after its
 * request, so bytes are a client we do not serve further: end the stream
 * and do not read a next request from the middle of them. Never a
 * blocking read: mod_reqtimeout would cut the stream. */
apr_status_t sse_stream_client_gone(sse_stream_t *st, apr_int16_t rtnevents)
{
    conn_rec *c = st->c;
    apr_bucket_brigade *in;
    apr_status_t rv;

    if (st->owned) {
        return sse_own_client_gone(st, rtnevents);
    }
    /* the kernel ended the connection (TCP_USER_TIMEOUT gives ETIMEDOUT
     * when sent bytes stay unacknowledged: a client that stopped reading
     * or vanished), or the peer reset it */
    if (rtnevents & (APR_POLLERR | APR_POLLNVAL)) {
        return c->master ? APR_EOF
                         : sse_own_socket_error(ap_get_conn_socket(c));
    }
    in = apr_brigade_create(st->scratch, c->bucket_alloc);
    rv = ap_get_brigade(c->input_filters, in, AP_MODE_READBYTES,
                        APR_NONBLOCK_READ, 4096);
    apr_brigade_destroy(in);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return APR_SUCCESS;
    }
    c->keepalive = AP_CONN_CLOSE;
    return (rv == APR_SUCCESS) ? APR_EOF : rv;
}

apr_status_t sse_stream_beat(sse_stream_t *st, apr_time_t due_by)
{
    apr_status_t rv;

    if (st->next_beat > due_by) {
        return APR_SUCCESS;
    }
    rv = put(st, SSE_FRAME_HEARTBEAT, sizeof(SSE_FRAME_HEARTBEAT) - 1);
    return rv == APR_SUCCESS ? flush(st) : rv;
}

apr_status_t sse_stream_serve(sse_stream_t *st)
{
    apr_uint64_t seqs[SSE_QUEUE_LEN];
    apr_status_t rv = APR_SUCCESS;
    int n, resync;

    if (sse_dispatch_take(st, seqs, &n, &resync)) {
        return APR_EOF;
    }
    if (st->blocked) {
        st->catch_up |= (resync || n);  /* the ring keeps them */
        return APR_SUCCESS;
    }
    if (resync || st->catch_up) {
        rv = write_backlog(st);
        if (rv == APR_SUCCESS) {
            rv = confirm(st, 0);        /* reports what the lag lost */
        }
    }
    else if (n) {
        rv = write_queued(st, seqs, n);
    }
    return rv;
}

void sse_stream_finish(sse_stream_t *st, apr_status_t rv)
{
    sse_dispatch_detach(st);
    if (APR_STATUS_IS_TIMEUP(rv) || APR_STATUS_IS_ETIMEDOUT(rv)) {
        sse_registry_count_slow(st->reg);   /* not reading: Timeout or
                                               TCP_USER_TIMEOUT */
    }
    /* resumable after what the socket took, not what the filters hold */
    sse_registry_release(st->reg, &st->hold, st->written, sse_now_ms());
    if (st->hold.serial) {
        sse_bus_release(st->server, st->id, &st->hold, st->written);
    }
    SSE_STREAM_LOG(st, APLOG_DEBUG, rv, SSE_LOGNO(00045)
                  "stream ended for %s after seq %" APR_UINT64_T_FMT
                  " (%d sent but not written)", st->id, st->written,
                  st->unconfirmed);
}

/* ---- THREAD mode: the request's thread holds the stream --------------- */

/* An HTTP/2 stream has no descriptor to poll: mod_http2 marks its
 * connection aborted when the client's connection goes (not when the
 * client resets the stream: that shows at the next write). Looked at
 * this often, the stream ends (and frees its h2 worker, and the client's
 * connection, which mod_http2 holds until its streams are done) within
 * this instead of at its next heartbeat. */
#define SSE_ABORT_CHECK     apr_time_from_msec(250)

static apr_status_t wait_once(sse_stream_t *st)
{
    apr_interval_time_t timeout = st->next_beat - sse_clock();
    const apr_pollfd_t *fds;
    apr_int32_t num = 0, i;
    apr_status_t rv;

    if (timeout <= 0) {
        return sse_stream_beat(st, sse_clock());
    }
    if (st->c->master != NULL && timeout > SSE_ABORT_CHECK) {
        timeout = SSE_ABORT_CHECK;
    }
    rv = apr_pollset_poll(st->ps, timeout, &num, &fds);
    if (APR_STATUS_IS_EINTR(rv) || APR_STATUS_IS_TIMEUP(rv)) {
        /* woken, or a heartbeat is due */
        return st->c->aborted ? APR_ECONNABORTED : APR_SUCCESS;
    }
    for (i = 0; rv == APR_SUCCESS && i < num; i++) {
        rv = sse_stream_client_gone(st, fds[i].rtnevents);
    }
    return rv;
}

static apr_status_t stream_loop(sse_stream_t *st)
{
    apr_status_t rv = APR_SUCCESS;

    while (rv == APR_SUCCESS) {
        rv = sse_stream_serve(st);
        if (rv == APR_SUCCESS) {
            rv = wait_once(st);
        }
    }
    return rv;
}

/* A peer that vanished without FIN or RST (host gone, cable pulled) would
 * hold the stream until TCP gives up retransmitting (~15 min): let the
 * kernel end it once sent bytes stay unacknowledged for a heartbeat
 * period plus Timeout. */
static void limit_unacked(request_rec *r)
{
    apr_socket_t *sock = ap_get_conn_socket(r->connection);
    apr_os_sock_t fd;
    unsigned int ms = (unsigned int)apr_time_as_msec(
        sse_conf_heartbeat() + r->server->timeout);

    if (sock && apr_os_sock_get(&fd, sock) == APR_SUCCESS) {
        (void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
    }
}

/* THREAD mode sleeps in a pollset on its client and its wake-up. */
static apr_status_t thread_pollset(sse_stream_t *st)
{
    request_rec *r = st->r;
    apr_pollfd_t pfd;
    apr_status_t rv;

    rv = apr_pollset_create(&st->ps, 1, r->pool, APR_POLLSET_WAKEABLE);
    memset(&pfd, 0, sizeof(pfd));
    /* HTTP/2 may give no descriptor (a GET's stream has no input): then
     * a failed write or heartbeat is how a gone client shows */
    if (rv == APR_SUCCESS
        && ap_get_pollfd_from_conn(r->connection, &pfd, NULL) == APR_SUCCESS
        && (pfd.desc_type == APR_POLL_SOCKET
            || pfd.desc_type == APR_POLL_FILE)) {
        pfd.p = r->pool;
        pfd.reqevents = APR_POLLIN;
        pfd.client_data = st;
        rv = apr_pollset_add(st->ps, &pfd);
    }
    return rv;
}

static apr_status_t stream_setup(sse_stream_t *st)
{
    request_rec *r = st->r;
    apr_status_t rv = APR_SUCCESS;

    st->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
    if (st->mode == SSE_MODE_THREAD) {
        apr_pool_create(&st->scratch, r->pool);
        rv = thread_pollset(st);
    }
    else {
        st->scratch = r->pool;          /* scratch_done() */
        st->scratch_lent = 1;
        /* a parked stream's body ends with its connection: no chunking,
         * so the request can be finished at park time (docs/design.md) */
        r->connection->keepalive = AP_CONN_CLOSE;
    }
    if (rv == APR_SUCCESS && r->connection->master == NULL) {
        limit_unacked(r);
    }
    ap_set_content_type(r, "text/event-stream");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    apr_table_setn(r->headers_out, "X-Accel-Buffering", "no");
    /* nothing may buffer the stream */
    apr_table_setn(r->subprocess_env, "no-gzip", "1");
    apr_table_setn(r->subprocess_env, "no-brotli", "1");
    return rv;
}

/* Last-Event-ID header, else ?last_event_id=; digits only. */
static int parse_last_id(request_rec *r, apr_uint64_t *out)
{
    const char *v = apr_table_get(r->headers_in, "Last-Event-ID");
    char *end;

    if (v == NULL && r->args
        && strncmp(r->args, "last_event_id=", 14) == 0) {
        v = r->args + 14;
    }
    if (v == NULL) {
        return 0;
    }
    if (*v < '0' || *v > '9' || strlen(v) > 20) {
        return -1;
    }
    errno = 0;
    *out = (apr_uint64_t)apr_strtoi64(v, &end, 10);
    return (*end == '\0' && errno == 0) ? 1 : -1;
}

/* This child is going (restart, stop), or has no descriptors to spare:
 * an empty stream, which an EventSource answers by reconnecting after
 * `retry:` (a 503 would make it give up for good), to a child of the new
 * generation, or another. */
static int reconnect_elsewhere(request_rec *r)
{
    apr_size_t len;

    ap_set_content_type(r, "text/event-stream");
    apr_table_setn(r->headers_out, "Cache-Control", "no-cache");
    r->connection->keepalive = AP_CONN_CLOSE;
    if (!r->header_only) {
        ap_rputs(sse_frame_retry(r->pool, SSE_RETRY_MS, &len), r);
    }
    return OK;
}

/* The client as the per-client bounds count it: r->useragent_ip (what
 * mod_remoteip gives), an IPv6 address by its /64. NULL when it is no
 * address (a connection over a Unix socket): then not counted. */
static const sse_client_t *client_of(request_rec *r, sse_client_t *client)
{
    if (sse_client_parse(r->useragent_ip, client->addr) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00172)
                      "client address '%s' is not an IP address: no "
                      "per-client bound applies", r->useragent_ip);
        return NULL;
    }
    client->max_listeners = (apr_uint32_t)sse_conf_listeners_per_client();
    client->max_streams = (apr_uint32_t)sse_conf_streams_per_client();
    return client;
}

/* A per-client bound: 429, and a line that says whom and which. */
static int too_many(request_rec *r, apr_status_t rv)
{
    const char *who = apr_pstrcat(r->pool, r->useragent_ip,
                                  strchr(r->useragent_ip, ':') ? " (its /64)"
                                                               : "", NULL);

    if (rv == SSE_ECLIENT_STREAMS) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SSE_LOGNO(00170)
                      "client %s holds %d streams open: "
                      "SSEMaxStreamsPerClient reached, refused (429)", who,
                      sse_conf_streams_per_client());
    }
    else {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, r, SSE_LOGNO(00171)
                      "client %s made %d listeners, each with a stream "
                      "open: SSEMaxListenersPerClient reached, refused "
                      "(429)", who, sse_conf_listeners_per_client());
    }
    apr_table_setn(r->err_headers_out, "Retry-After",
                   SSE_CLIENT_RETRY_AFTER);
    return sse_respond_text(r, HTTP_TOO_MANY_REQUESTS,
                            "too many streams from this address, retry "
                            "later");
}

/* SSEMaxStreamsPerChild reached (sse_admit_refused() said so). */
static int thread_bound(request_rec *r, int status)
{
    return sse_respond_text(r, status, "too many streams hold worker "
                            "threads here, retry later");
}

/* The answer to a connect the registry refused. */
static int refused(request_rec *r, apr_status_t rv, const char *id)
{
    if (rv == APR_EEXIST) {
        /* EventSource: 204 means "stop reconnecting" */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00046)
                      "refused retired id %s", id);
        r->status = HTTP_NO_CONTENT;
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        return OK;
    }
    if (rv == SSE_ECLIENT_STREAMS || rv == SSE_ECLIENT_LISTENERS) {
        return too_many(r, rv);
    }
    if (rv == SSE_ESTREAMS) {
        return thread_bound(r, sse_admit_refused(r));
    }
    if (rv == SSE_EBUS_DOWN || rv == APR_EBUSY) {
        apr_table_setn(r->err_headers_out, "Retry-After",
                       SSE_BUS_RETRY_AFTER);
        return sse_respond_text(r, HTTP_SERVICE_UNAVAILABLE,
                                "the cluster's bus is unavailable, retry "
                                "later");
    }
    if (rv == APR_ENOSPC || rv == APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, SSE_LOGNO(00042)
                      "listener table full: SSEMaxListeners reached");
        apr_table_setn(r->err_headers_out, "Retry-After", "10");
        return sse_respond_text(r, HTTP_SERVICE_UNAVAILABLE,
                                "too many listeners, retry later");
    }
    ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SSE_LOGNO(00043)
                  "cannot register the listener");
    return HTTP_INTERNAL_SERVER_ERROR;
}

int sse_stream_run(request_rec *r, const char *id)
{
    sse_srv_conf_t *conf = sse_srv_conf(r->server);
    sse_client_t client;
    sse_stream_t *st;
    apr_uint64_t last_id = 0;
    apr_status_t rv;
    int has_last = parse_last_id(r, &last_id), created = 0, status;

    if ((status = sse_admit_h2(r)) != OK) {
        return status;
    }
    if (has_last < 0) {
        return sse_respond_text(r, HTTP_BAD_REQUEST,
                                "Last-Event-ID must be a number");
    }
    if ((!sse_dispatch_ready(conf->local) && sse_dispatch_ending())
        || !sse_dispatch_room(r->server)) {
        return reconnect_elsewhere(r);
    }
    if (!sse_dispatch_ready(conf->local)) {
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return sse_respond_text(r, HTTP_SERVICE_UNAVAILABLE,
                                "not dispatching here");
    }
    if (sse_park_possible(r)) {
        /* outlives the request, which ends when the stream parks, and
         * may outlive the connection (mod_sse_own.c); the route took
         * only ids of at most SSE_ID_MAX */
        st = sse_own_record(r->connection);
        st->id = st->id_buf;
        apr_cpystrn(st->id_buf, id, sizeof(st->id_buf));
        st->mode = SSE_MODE_HANDOFF;
    }
    else if ((status = sse_admit_thread(r)) != OK) {
        return thread_bound(r, status);
    }
    else {
        st = apr_pcalloc(r->pool, sizeof(*st));
        st->id = id;
    }
    st->r = r;
    st->c = r->connection;
    st->out = r->output_filters;
    st->reg = conf->reg;
    st->local = conf->local;
    if ((rv = stream_setup(st)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SSE_LOGNO(00041)
                      "cannot set up the stream");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->header_only) {
        return OK;
    }
    st->server = r->server;
    if (sse_bus_on()) {
        rv = sse_bus_connect(r->server, r->pool, id, sse_dispatch_pid(),
                             client_of(r, &client),
                             has_last ? &last_id : NULL, &st->hold, &created);
    }
    else {
        rv = sse_registry_connect(conf->reg, id, sse_dispatch_pid(),
                                  client_of(r, &client), sse_now_ms(),
                                  has_last ? &last_id : NULL, &st->hold,
                                  &created);
    }
    if (rv != APR_SUCCESS) {
        return refused(r, rv, id);
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00044)
                  "stream opened for %s (slot %u, %s, from seq %"
                  APR_UINT64_T_FMT ")", id, st->hold.slot,
                  created ? "new" : "existing", st->hold.cursor);
    /* the stream taken over may be in another child: wake it now */
    sse_dispatch_wake_pid(st->hold.prev_pid);
    /* a listener reclaimed to make room is only ever reclaimed for a new
     * one: this one notification tells both changes */
    if (created) {
        sse_op_changed(r->server);
    }
    st->sent = st->written = st->hold.cursor;
    sse_dispatch_attach(st);
    rv = stream_open(st, id);
    if (rv == APR_SUCCESS && st->mode == SSE_MODE_HANDOFF) {
        return sse_park(st);
    }
    if (rv == APR_SUCCESS) {
        rv = stream_loop(st);
    }
    sse_stream_finish(st, rv);
    if (!st->scratch_lent) {
        apr_pool_destroy(st->scratch);
    }
    return OK;
}
