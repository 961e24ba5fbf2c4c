/*
 * One dispatcher per child, and the streams it feeds (DESIGN §3, step 1).
 *
 * Every child binds a Unix datagram socket named after its pid (Linux
 * abstract namespace: nothing on disk, gone with the process). A publisher
 * in any process appends to the ring, releases the lock, and sends one
 * byte to each child that holds streams. The woken dispatcher routes the
 * new ring entries once, under the lock, to this child's streams through
 * a local index (slot -> streams): it queues their sequence numbers and
 * wakes each target's pollset. A stream's handler thread sleeps in that
 * pollset on {its client, the wake-up, its heartbeat timeout}, copies its
 * events out of the ring, and writes them through the output filters.
 * A 1 s tick of the dispatcher covers a lost wake-up.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>

#include <apr_poll.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "mod_sse_mgr_private.h"

#define SSE_QUEUE_LEN   64      /* queued seqs per stream before resync */
#define SSE_BATCH       16      /* events copied per lock hold */
#define SSE_TICK_MS     1000    /* safety net against a lost wake-up */
#define SSE_WAKE_MAX    256     /* children read per pass when waking */

typedef struct sse_stream_t sse_stream_t;

struct sse_stream_t {
    request_rec *r;
    const char *id;
    sse_local_t *local;
    sse_hold_t hold;
    apr_pollset_t *ps;
    apr_bucket_brigade *bb;
    apr_pool_t *scratch;        /* cleared after every batch */
    apr_uint64_t sent;          /* last seq written */
    apr_time_t next_beat;
    /* written by the dispatcher, under disp.mu */
    apr_uint64_t queue[SSE_QUEUE_LEN];
    int qlen;
    int resync;
    int ending;
    int listed;                 /* on the to-wake list */
    sse_stream_t *next;         /* same slot */
    sse_stream_t *wake_next;    /* to-wake list */
};

struct sse_local_t {
    sse_registry_t *reg;
    sse_stream_t **by_slot;
    apr_uint32_t nslots;
    apr_uint64_t cursor;        /* next ring entry to route */
    int nstreams;               /* under disp.mu */
};

static struct {
    apr_thread_mutex_t *mu;     /* the local index, stream queues, and
                                   the to-wake list */
    sse_stream_t *to_wake;      /* filled under the registry lock, woken
                                   after it is released */
    apr_thread_t *thread;
    sse_local_t **locals;
    int nlocals;
    int fd;                     /* this child's wake-up socket */
    volatile int stopping;
    volatile int done;          /* the dispatcher thread has finished */
    apr_uint32_t pid;
} disp = {NULL, NULL, NULL, NULL, 0, -1, 0, 0, 0};

static int send_fd = -1;        /* any process: sends wake-ups */

static socklen_t wake_addr(apr_uint32_t pid, struct sockaddr_un *sa)
{
    int n;

    memset(sa, 0, sizeof(*sa));
    sa->sun_family = AF_UNIX;
    /* sun_path[0] == 0: Linux abstract namespace */
    n = apr_snprintf(sa->sun_path + 1, sizeof(sa->sun_path) - 1,
                     "mod_sse_mgr.%u", pid);
    return (socklen_t)(APR_OFFSETOF(struct sockaddr_un, sun_path) + 1 + n);
}

static void wake_pid(apr_uint32_t pid)
{
    struct sockaddr_un sa;
    socklen_t len = wake_addr(pid, &sa);

    /* non-blocking: a full socket already has a wake-up pending */
    (void)sendto(send_fd, "w", 1, MSG_DONTWAIT, (struct sockaddr *)&sa, len);
}

static void wake_holders(sse_registry_t *reg, int any)
{
    apr_uint32_t pids[SSE_WAKE_MAX], from = 0;
    int i, n;

    while ((n = sse_registry_holders(reg, any, &from, pids,
                                     SSE_WAKE_MAX)) > 0) {
        for (i = 0; i < n; i++) {
            wake_pid(pids[i]);
        }
    }
}

void sse_dispatch_wake(sse_registry_t *reg)
{
    wake_holders(reg, 0);
}

void sse_dispatch_wake_all(sse_registry_t *reg)
{
    wake_holders(reg, 1);
}

void sse_dispatch_wake_pid(apr_uint32_t pid)
{
    if (pid) {
        wake_pid(pid);
    }
}

static apr_status_t close_fd(void *data)
{
    int *fd = data;

    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
    return APR_SUCCESS;
}

/* ---- the dispatcher -------------------------------------------------- */

static void wake_stream(sse_stream_t *st)
{
    apr_pollset_wakeup(st->ps);
}

/* Under disp.mu: wake @a st once the registry lock is released (a
 * wake-up is a pipe write: no I/O under the registry lock). */
static void wake_later(sse_stream_t *st)
{
    if (!st->listed) {
        st->listed = 1;
        st->wake_next = disp.to_wake;
        disp.to_wake = st;
    }
}

static void wake_listed(void)
{
    sse_stream_t *st;

    apr_thread_mutex_lock(disp.mu);
    for (st = disp.to_wake; st; st = st->wake_next) {
        st->listed = 0;
        wake_stream(st);
    }
    disp.to_wake = NULL;
    apr_thread_mutex_unlock(disp.mu);
}

/* Called under the registry lock: local work only, under disp.mu. */
static void on_route(void *baton, apr_uint32_t slot, apr_uint32_t holder_gen,
                     const sse_event_t *ev)
{
    sse_local_t *l = baton;
    apr_uint32_t i;
    sse_stream_t *st;

    apr_thread_mutex_lock(disp.mu);
    for (i = (slot == SSE_SLOT_ALL) ? 0 : slot;
         i < l->nslots && (slot == SSE_SLOT_ALL || i == slot); i++) {
        for (st = l->by_slot[i]; st; st = st->next) {
            if ((slot != SSE_SLOT_ALL && st->hold.holder_gen != holder_gen)
                || ev->seq < st->hold.start) {
                continue;       /* another stream's, or from before it */
            }
            if (ev->kind == SSE_EV_END_SLOT || ev->kind == SSE_EV_END_ALL) {
                st->ending = 1;
            }
            else if (st->qlen < SSE_QUEUE_LEN) {
                st->queue[st->qlen++] = ev->seq;
            }
            else {
                st->resync = 1;
            }
            wake_later(st);
        }
    }
    apr_thread_mutex_unlock(disp.mu);
}

static int trylock_for_a_while(void)
{
    int tries;

    for (tries = 0; tries < 100; tries++) {
        if (apr_thread_mutex_trylock(disp.mu) == APR_SUCCESS) {
            return 1;
        }
        apr_sleep(apr_time_from_msec(10));
    }
    return 0;
}

static void mark_all(sse_local_t *l, int ending)
{
    apr_uint32_t i;
    sse_stream_t *st;

    /* when stopping, never wait for good: the thread that holds disp.mu
     * may be the one a signal is tearing the child down on. Try for a
     * second; streams not woken see disp.stopping at their heartbeat. */
    if (ending ? !trylock_for_a_while()
               : apr_thread_mutex_lock(disp.mu) != APR_SUCCESS) {
        return;
    }
    for (i = 0; i < l->nslots; i++) {
        for (st = l->by_slot[i]; st; st = st->next) {
            if (ending) {
                st->ending = 1;
            }
            else {
                st->resync = 1;
            }
            wake_stream(st);
        }
    }
    apr_thread_mutex_unlock(disp.mu);
}

static int local_streams(sse_local_t *l)
{
    int n;

    apr_thread_mutex_lock(disp.mu);
    n = l->nstreams;
    apr_thread_mutex_unlock(disp.mu);
    return n;
}

static void dispatch_local(sse_local_t *l)
{
    /* head first: a stream indexed after the count below replays every
     * entry before this head itself */
    apr_uint64_t head = sse_registry_head(l->reg);

    if (head != l->cursor && local_streams(l) == 0) {
        l->cursor = head;       /* nothing here to route to */
    }
    if (head != l->cursor) {
        apr_uint64_t lost = sse_registry_route(l->reg, l->cursor, head,
                                               disp.pid, on_route, l);
        wake_listed();
        if (lost) {
            mark_all(l, 0);     /* fell a ring behind: streams rescan */
        }
        l->cursor = head;
    }
}

static int mpm_stopping(void)
{
    int state = AP_MPMQ_RUNNING;

    ap_mpm_query(AP_MPMQ_MPM_STATE, &state);
    return state == AP_MPMQ_STOPPING;
}

static void *APR_THREAD_FUNC dispatcher(apr_thread_t *thd, void *data)
{
    struct pollfd pfd;
    char buf[64];
    int i;

    (void)thd;
    (void)data;
    pfd.fd = disp.fd;
    pfd.events = POLLIN;
    while (!disp.stopping) {
        (void)poll(&pfd, 1, SSE_TICK_MS);
        while (recv(disp.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
            /* drain: one pass serves every wake-up so far */
        }
        if (disp.stopping) {
            break;
        }
        if (mpm_stopping()) {
            /* graceful restart or stop (prefork has no child_stopping
             * for graceful): end the streams, clients resume */
            disp.stopping = 1;
        }
        for (i = 0; i < disp.nlocals; i++) {
            dispatch_local(disp.locals[i]);
        }
    }
    for (i = 0; i < disp.nlocals; i++) {
        mark_all(disp.locals[i], 1);
    }
    disp.done = 1;
    /* return, not apr_thread_exit(): if a bounded join gave up, the
     * child pool (and this thread's pool in it) may be gone already */
    return NULL;
}

void sse_dispatch_child_stopping(apr_pool_t *pchild, int graceful)
{
    (void)pchild;
    (void)graceful;
    if (disp.thread) {
        disp.stopping = 1;
        wake_pid(disp.pid);
    }
}

/* Join the dispatcher before the child pool's memory goes, but never
 * hang a dying child on it: prefork tears down from a signal handler,
 * possibly on a thread that holds a lock the dispatcher waits for. */
static apr_status_t dispatcher_cleanup(void *data)
{
    apr_status_t trv;
    int waited;

    (void)data;
    if (disp.thread) {
        disp.stopping = 1;
        wake_pid(disp.pid);
        for (waited = 0; !disp.done && waited < 200; waited++) {
            apr_sleep(apr_time_from_msec(10));
        }
        if (disp.done) {
            apr_thread_join(&trv, disp.thread);
        }
        disp.thread = NULL;
    }
    return APR_SUCCESS;
}

static apr_status_t bind_wake_socket(apr_pool_t *pchild)
{
    struct sockaddr_un sa;
    socklen_t len = wake_addr(disp.pid, &sa);

    disp.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (disp.fd < 0) {
        return errno;
    }
    apr_pool_cleanup_register(pchild, &disp.fd, close_fd,
                              apr_pool_cleanup_null);
    return bind(disp.fd, (struct sockaddr *)&sa, len) == 0 ? APR_SUCCESS
                                                          : errno;
}

static apr_status_t make_send_socket(apr_pool_t *p)
{
    if (send_fd >= 0) {
        return APR_SUCCESS;
    }
    send_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (send_fd < 0) {
        return errno;
    }
    apr_pool_cleanup_register(p, &send_fd, close_fd, apr_pool_cleanup_null);
    return APR_SUCCESS;
}

apr_status_t sse_dispatch_post_config(apr_pool_t *pconf)
{
    return make_send_socket(pconf);
}

static void make_locals(apr_pool_t *pchild, server_rec *s)
{
    server_rec *vs;
    int owners = 0;

    for (vs = s; vs; vs = vs->next) {
        owners += sse_srv_conf(vs)->owner;
    }
    disp.locals = apr_pcalloc(pchild, sizeof(sse_local_t *) * owners);
    disp.nlocals = 0;
    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        if (conf->owner) {
            sse_local_t *l = apr_pcalloc(pchild, sizeof(*l));
            l->reg = conf->reg;
            l->nslots = sse_registry_sizes(l->reg)->max_listeners;
            l->by_slot = apr_pcalloc(pchild, l->nslots * sizeof(*l->by_slot));
            l->cursor = sse_registry_head(l->reg);
            disp.locals[disp.nlocals++] = l;
        }
    }
    for (vs = s; vs; vs = vs->next) {   /* sharers use the owner's */
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        int i;
        for (i = 0; i < disp.nlocals; i++) {
            if (disp.locals[i]->reg == conf->reg) {
                conf->local = disp.locals[i];
            }
        }
    }
}

apr_status_t sse_dispatch_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    disp.pid = (apr_uint32_t)getpid();
    disp.stopping = 0;
    make_locals(pchild, s);
    rv = apr_thread_mutex_create(&disp.mu, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = bind_wake_socket(pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&disp.thread, NULL, dispatcher, NULL, pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_CRIT, rv, s, SSE_LOGNO(00040)
                     "cannot start the dispatcher: streams of this child "
                     "will not receive events");
        return rv;
    }
    /* pre-cleanup: join before the child pool's memory goes */
    apr_pool_pre_cleanup_register(pchild, NULL, dispatcher_cleanup);
    return APR_SUCCESS;
}

/* ---- streams: the local index ---------------------------------------- */

static void index_add(sse_stream_t *st)
{
    sse_local_t *l = st->local;

    apr_thread_mutex_lock(disp.mu);
    st->next = l->by_slot[st->hold.slot];
    l->by_slot[st->hold.slot] = st;
    l->nstreams++;
    apr_thread_mutex_unlock(disp.mu);
}

static void index_remove(sse_stream_t *st)
{
    sse_stream_t **link;

    apr_thread_mutex_lock(disp.mu);
    for (link = &disp.to_wake; st->listed && *link;
         link = &(*link)->wake_next) {
        if (*link == st) {
            *link = st->wake_next;
            break;
        }
    }
    for (link = &st->local->by_slot[st->hold.slot]; *link;
         link = &(*link)->next) {
        if (*link == st) {
            *link = st->next;
            st->local->nstreams--;
            break;
        }
    }
    apr_thread_mutex_unlock(disp.mu);
}

/* What the dispatcher queued for @a st; returns 1 when it must end. */
static int take(sse_stream_t *st, apr_uint64_t *seqs, int *n, int *resync)
{
    int ending;

    apr_thread_mutex_lock(disp.mu);
    *n = st->qlen;
    memcpy(seqs, st->queue, sizeof(*seqs) * (apr_size_t)st->qlen);
    st->qlen = 0;
    *resync = st->resync;
    st->resync = 0;
    ending = st->ending || disp.stopping;
    apr_thread_mutex_unlock(disp.mu);
    return ending;
}

/* ---- streams: writing ------------------------------------------------ */

static apr_status_t put(sse_stream_t *st, const char *buf, apr_size_t len)
{
    return apr_brigade_write(st->bb, NULL, NULL, buf, len);
}

static apr_status_t flush(sse_stream_t *st)
{
    conn_rec *c = st->r->connection;
    apr_status_t rv;

    APR_BRIGADE_INSERT_TAIL(st->bb,
                            apr_bucket_flush_create(c->bucket_alloc));
    rv = ap_pass_brigade(st->r->output_filters, st->bb);
    apr_brigade_cleanup(st->bb);
    apr_pool_clear(st->scratch);
    st->next_beat = apr_time_now() + sse_conf_heartbeat();
    return (rv == APR_SUCCESS && c->aborted) ? APR_ECONNABORTED : rv;
}

/* Record delivery; tell the client about events of its listener that the
 * ring lost before they could be written (a burst beyond SSEHistory). */
static apr_status_t ack(sse_stream_t *st, int count)
{
    apr_uint64_t from, to;
    apr_size_t len;
    const char *b;
    apr_status_t rv;

    rv = sse_registry_ack(st->local->reg, &st->hold, st->sent, count,
                          sse_now_ms(), &from, &to);
    if (rv != APR_SUCCESS || to == 0) {
        return rv;
    }
    ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, st->r, SSE_LOGNO(00047)
                  "events %" APR_UINT64_T_FMT "..%" APR_UINT64_T_FMT " were "
                  "overwritten before this stream could send them: raise "
                  "SSEHistory", from, to);
    b = sse_frame_missed(st->scratch, from, to, &len);
    rv = put(st, b, len);
    return rv == APR_SUCCESS ? flush(st) : rv;
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
        st->sent = last;        /* delivered only once flushed */
    }
    return (rv == APR_SUCCESS && count) ? ack(st, count) : rv;
}

/* Everything for this listener after st->sent that is still in the ring. */
static apr_status_t write_backlog(sse_stream_t *st)
{
    sse_event_t evs[SSE_BATCH];
    apr_status_t rv;
    int n;

    do {
        rv = sse_registry_read(st->local->reg, &st->hold, st->sent, evs,
                               SSE_BATCH, &n);
        if (rv == APR_SUCCESS && n) {
            rv = write_events(st, evs, n);
        }
    } while (rv == APR_SUCCESS && n == SSE_BATCH);
    return rv;
}

static apr_status_t write_queued(sse_stream_t *st, const apr_uint64_t *seqs,
                                 int n)
{
    sse_event_t evs[SSE_BATCH];
    apr_status_t rv = APR_SUCCESS;
    int i, got;

    for (i = 0; i < n && rv == APR_SUCCESS; i += SSE_BATCH) {
        got = (n - i < SSE_BATCH) ? n - i : SSE_BATCH;
        sse_registry_fetch(st->local->reg, &st->hold, seqs + i, evs, &got);
        rv = write_events(st, evs, got);
    }
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
        ap_log_rerror(APLOG_MARK, APLOG_INFO, 0, st->r, SSE_LOGNO(00048)
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

/* ---- streams: the loop ----------------------------------------------- */

/* The client spoke: a non-blocking read tells "nothing" (a spurious
 * wake-up) from EOF or bytes. An EventSource never sends after its
 * request, so bytes are a client we do not serve further: end the stream
 * and do not read a next request from the middle of them. Never a
 * blocking read: mod_reqtimeout would cut the stream. */
static int client_gone(sse_stream_t *st, apr_int16_t rtnevents)
{
    conn_rec *c = st->r->connection;
    apr_bucket_brigade *in;
    apr_status_t rv;

    if (rtnevents & (APR_POLLERR | APR_POLLNVAL)) {
        return 1;
    }
    in = apr_brigade_create(st->scratch, c->bucket_alloc);
    rv = ap_get_brigade(c->input_filters, in, AP_MODE_READBYTES,
                        APR_NONBLOCK_READ, 4096);
    apr_brigade_destroy(in);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return 0;
    }
    c->keepalive = AP_CONN_CLOSE;
    return 1;
}

static apr_status_t wait_once(sse_stream_t *st)
{
    apr_interval_time_t timeout = st->next_beat - apr_time_now();
    const apr_pollfd_t *fds;
    apr_int32_t num = 0, i;
    apr_status_t rv;

    if (timeout <= 0) {
        rv = put(st, SSE_FRAME_HEARTBEAT, sizeof(SSE_FRAME_HEARTBEAT) - 1);
        return rv == APR_SUCCESS ? flush(st) : rv;
    }
    rv = apr_pollset_poll(st->ps, timeout, &num, &fds);
    if (APR_STATUS_IS_EINTR(rv) || APR_STATUS_IS_TIMEUP(rv)) {
        return APR_SUCCESS;     /* woken, or a heartbeat is due */
    }
    for (i = 0; rv == APR_SUCCESS && i < num; i++) {
        if (client_gone(st, fds[i].rtnevents)) {
            rv = APR_EOF;
        }
    }
    return rv;
}

static apr_status_t stream_loop(sse_stream_t *st)
{
    apr_uint64_t seqs[SSE_QUEUE_LEN];
    apr_status_t rv = APR_SUCCESS;
    int n, resync;

    while (rv == APR_SUCCESS) {
        if (take(st, seqs, &n, &resync)) {
            break;
        }
        if (resync) {
            rv = write_backlog(st);
            if (rv == APR_SUCCESS) {
                rv = ack(st, 0);        /* reports what the lag lost */
            }
        }
        else if (n) {
            rv = write_queued(st, seqs, n);
        }
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

static apr_status_t stream_setup(sse_stream_t *st)
{
    request_rec *r = st->r;
    apr_pollfd_t pfd;
    apr_status_t rv;

    apr_pool_create(&st->scratch, r->pool);
    st->bb = apr_brigade_create(r->pool, r->connection->bucket_alloc);
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

static int reject(request_rec *r, int status, const char *line)
{
    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_rputs(line, r);
    ap_rputs("\n", r);
    return OK;
}

int sse_stream_run(request_rec *r, const char *id)
{
    sse_srv_conf_t *conf = sse_srv_conf(r->server);
    sse_stream_t *st;
    apr_uint64_t last_id = 0;
    apr_status_t rv;
    int has_last = parse_last_id(r, &last_id), created = 0;

    if (has_last < 0) {
        return reject(r, HTTP_BAD_REQUEST, "Last-Event-ID must be a number");
    }
    if (conf->local == NULL || disp.thread == NULL || disp.stopping) {
        apr_table_setn(r->err_headers_out, "Retry-After", "1");
        return reject(r, HTTP_SERVICE_UNAVAILABLE, "not dispatching here");
    }
    st = apr_pcalloc(r->pool, sizeof(*st));
    st->r = r;
    st->id = id;
    st->local = conf->local;
    if ((rv = stream_setup(st)) != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SSE_LOGNO(00041)
                      "cannot set up the stream");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (r->header_only) {
        return OK;
    }
    rv = sse_registry_connect(conf->reg, id, disp.pid,
                              sse_now_ms(),
                              has_last ? &last_id : NULL, &st->hold,
                              &created);
    if (rv == APR_EEXIST) {
        /* EventSource: 204 means "stop reconnecting" */
        ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00046)
                      "refused retired id %s", id);
        r->status = HTTP_NO_CONTENT;
        apr_table_setn(r->headers_out, "Cache-Control", "no-store");
        return OK;
    }
    if (rv == APR_ENOSPC || rv == APR_EAGAIN) {
        ap_log_rerror(APLOG_MARK, APLOG_INFO, rv, r, SSE_LOGNO(00042)
                      "listener table full: SSEMaxListeners reached");
        apr_table_setn(r->err_headers_out, "Retry-After", "10");
        return reject(r, HTTP_SERVICE_UNAVAILABLE,
                      "too many listeners, retry later");
    }
    if (rv != APR_SUCCESS) {
        ap_log_rerror(APLOG_MARK, APLOG_ERR, rv, r, SSE_LOGNO(00043)
                      "cannot register the listener");
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, 0, r, SSE_LOGNO(00044)
                  "stream opened for %s (slot %u, %s, from seq %"
                  APR_UINT64_T_FMT ")", id, st->hold.slot,
                  created ? "new" : "existing", st->hold.cursor);
    /* the stream taken over may be in another child: wake it now */
    sse_dispatch_wake_pid(st->hold.prev_pid);
    if (created) {
        sse_op_changed(r->server);
    }
    st->sent = st->hold.cursor;
    index_add(st);
    rv = stream_open(st, id);
    if (rv == APR_SUCCESS) {
        rv = stream_loop(st);
    }
    index_remove(st);
    sse_registry_release(conf->reg, &st->hold, st->sent,
                         sse_now_ms());
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, SSE_LOGNO(00045)
                  "stream ended for %s after seq %" APR_UINT64_T_FMT, id,
                  st->sent);
    apr_pool_destroy(st->scratch);
    return OK;
}
