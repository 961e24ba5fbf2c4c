/*
 * One dispatcher per child (docs/design.md); the streams it feeds are
 * mod_sse_stream.c.
 *
 * Every child binds a wake-up socket (mod_sse_wake.c). A publisher in any
 * process appends to the ring, raises the wake flag of each child that
 * holds a target, releases the lock, and sends one byte to those whose
 * flag was clear (sse_registry_set_waker). The dispatcher clears its flag
 * before it reads the ring's head: until then no publisher sends it
 * another byte, and what they append is in that read. It routes the
 * new ring entries once, under the lock, to this child's streams through
 * a local index (slot -> streams): it queues their sequence numbers and
 * wakes each target once the lock is released: a stream on its request's
 * thread through its pollset (THREAD mode), a parked one (event MPM,
 * mod_sse_park.c) by serving it here. A 1 s tick covers a lost wake-up.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <scoreboard.h>

#include <apr_atomic.h>
#include <apr_general.h>
#include <apr_poll.h>
#include <apr_signal.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_wake.h"
#include "mod_sse_park.h"

#define SSE_TICK_MS     1000    /* safety net against a lost wake-up */
#define SSE_COPIES      64      /* entries copied while routing, per pass
                                   and registry */

struct sse_local_t {
    sse_registry_t *reg;
    sse_stream_t **by_slot;
    apr_uint32_t nslots;
    apr_uint64_t cursor;        /* next ring entry to route */
    apr_uint32_t wake_hint;     /* this child's entry in the registry's
                                   child table, as last found */
    /* the dispatcher thread's own: entries copied out while routing, for
     * parked streams to write without taking the lock again (seq
     * ascending; a copy is of its seq for good, so one from an earlier
     * pass is as right as a new one) */
    sse_event_t *copy;
    int ncopies;
    int nstreams;               /* under disp.mu */
};

/* How the child's streams fare (the dispatcher thread moves it on):
 *   RUNNING  - streams come and go;
 *   DRAINING - httpd told this child to stop while the server runs on
 *              (idle-server maintenance, MaxConnectionsPerChild): like
 *              any connection httpd is finishing, its streams stay until
 *              their clients leave, and new ones may still open here;
 *   ENDING   - the server restarts or stops, or the child must stop at
 *              once: every stream ends (clients resume elsewhere) and one
 *              that opens or is handed over now ends at once. The
 *              dispatcher runs on until the child pool goes, after every
 *              worker thread (so every handler that could hand a stream
 *              over) has finished: no stream is handed to no one. */
typedef enum {
    SSE_DISP_RUNNING = 0,
    SSE_DISP_DRAINING,
    SSE_DISP_ENDING
} sse_disp_state_e;

static struct {
    apr_thread_mutex_t *mu;     /* the local index, stream queues, and
                                   the to-wake list */
    sse_stream_t *to_wake;      /* filled under the registry lock, woken
                                   after it is released */
    sse_stream_t *adopt;        /* handed over, to be parked */
    sse_stream_t *serve;        /* parked streams with work */
    apr_thread_t *thread;
    apr_pollset_t *ps;          /* the wake-up socket and parked streams */
    sse_local_t **locals;
    int nlocals;
    int fd;                     /* this child's wake-up socket */
    volatile sse_disp_state_e state;
    volatile int end_now;       /* child_stopping, not graceful */
    volatile int told;          /* child_stopping ran */
    volatile int exit;          /* the child pool goes: thread returns */
    volatile int done;          /* the dispatcher thread has finished */
    apr_uint32_t pid;
    pid_t ppid;                 /* the parent that started this child */
    const char *pidfile;        /* PidFile; NULL: cannot tell a stop */
    ino_t pidfile_ino;
    apr_time_t next_check;      /* draining: next look at the server */
    int room;                   /* streams the descriptor limit leaves
                                   room for; 0: no limit */
    int own_max;                /* streams up to which sockets are taken
                                   over (room less the MPM's connection
                                   limit); 0: no limit, -1: none */
    volatile apr_uint32_t full_said;    /* when SSE00219 was last said,
                                           in seconds of sse_clock(); 0:
                                           never */
} disp;
void sse_dispatch_wake_all(sse_registry_t *reg)
{
    sse_wake_holders(reg, 1);
}

void sse_dispatch_wake_pid(apr_uint32_t pid)
{
    if (pid) {
        sse_wake_pid(pid);
    }
}

/* ---- the dispatcher -------------------------------------------------- */

/* Under disp.mu. A parked stream is served by the dispatcher once the
 * mutex is released (serving takes the registry lock); one being handed
 * over is served when it is adopted. */
static void wake_stream(sse_stream_t *st)
{
    SSE_ASSERT(!sse_registry_lock_held());   /* a pipe write: I/O */
    if (st->mode == SSE_MODE_THREAD) {
        apr_pollset_wakeup(st->ps);
    }
    else if (st->mode == SSE_MODE_PARKED && !st->on_serve) {
        st->on_serve = 1;
        st->serve_next = disp.serve;
        disp.serve = st;
    }
}

/* Under disp.mu: wake @a st once the registry lock is released (a
 * wake-up is a pipe write: no I/O under the registry lock). */
static void wake_later(sse_stream_t *st)
{
    if (!st->on_wake) {
        st->on_wake = 1;
        st->wake_next = disp.to_wake;
        disp.to_wake = st;
    }
}

static void wake_listed(void)
{
    sse_stream_t *st;

    apr_thread_mutex_lock(disp.mu);
    for (st = disp.to_wake; st; st = st->wake_next) {
        st->on_wake = 0;
        wake_stream(st);
    }
    disp.to_wake = NULL;
    apr_thread_mutex_unlock(disp.mu);
}

/* Under the registry lock and disp.mu, on the dispatcher thread: copy
 * @a ev for parked stream @a st, just queued, if it will write it in its
 * first batch (not blocked, not catching up: sse_stream_serve writes
 * that batch whole). @return 1 if it has a copy. */
static int copy_for(sse_local_t *l, const sse_stream_t *st,
                    const sse_event_t *ev)
{
    if (st->mode != SSE_MODE_PARKED || st->blocked || st->catch_up
        || st->resync || st->ending || st->qlen > SSE_BATCH) {
        return 0;
    }
    if (l->ncopies && l->copy[l->ncopies - 1].seq == ev->seq) {
        return 1;               /* copied for another stream */
    }
    if (l->ncopies == SSE_COPIES) {
        return 0;
    }
    l->copy[l->ncopies++] = *ev;
    return 1;
}

static const sse_event_t *find_copy(const sse_local_t *l, apr_uint64_t seq)
{
    int lo = 0, hi = l->ncopies;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (l->copy[mid].seq < seq) {
            lo = mid + 1;
        }
        else {
            hi = mid;
        }
    }
    return (lo < l->ncopies && l->copy[lo].seq == seq) ? &l->copy[lo]
                                                        : NULL;
}

int sse_dispatch_copies(const sse_stream_t *st, const apr_uint64_t *seqs,
                        int n, sse_event_t *evs)
{
    const sse_event_t *e;
    int i;

    if (st->mode != SSE_MODE_PARKED) {
        return 0;               /* another thread's: the copies are not */
    }
    for (i = 0; i < n; i++) {
        if ((e = find_copy(st->local, seqs[i])) == NULL) {
            return 0;
        }
        evs[i] = *e;
    }
    return 1;
}

/* Called under the registry lock: local work only, under disp.mu. */
static int on_route(void *baton, apr_uint32_t slot, apr_uint32_t holder_gen,
                    const sse_event_t *ev)
{
    sse_local_t *l = baton;
    apr_uint32_t i;
    sse_stream_t *st;
    int took = 0;

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
                took |= copy_for(l, st, ev);
            }
            else {
                st->resync = 1;
            }
            wake_later(st);
        }
    }
    apr_thread_mutex_unlock(disp.mu);
    return took;
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
     * second; streams not woken see the ENDING state at their heartbeat. */
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

/* Route what the ring gained since this child's cursor. The wake-up is
 * taken only when the dispatcher is about to sleep (take_wakes()): until
 * then the child's flag stays raised and publishers send no datagram. */
static void dispatch_local(sse_local_t *l)
{
    /* head first: a stream indexed after the count below replays every
     * entry before this head itself */
    apr_uint64_t head = sse_registry_head(l->reg);

    if (head != l->cursor && local_streams(l) == 0) {
        l->cursor = head;       /* nothing here to route to */
    }
    if (head != l->cursor) {
        apr_uint64_t lost;
        l->ncopies = 0;
        lost = sse_registry_route(l->reg, l->cursor, head,
                                               disp.pid, on_route, l);
        wake_listed();
        if (lost) {
            mark_all(l, 0);     /* fell a ring behind: streams rescan */
        }
        l->cursor = head;
    }
}

/* Before the dispatcher sleeps: clear each flag, then read the head (a
 * publish after the clear sends a datagram; one before it is below the
 * head read here). @return 1 if a publish came meanwhile: no sleep. */
static int take_wakes(void)
{
    int i, more = 0;

    for (i = 0; i < disp.nlocals; i++) {
        sse_local_t *l = disp.locals[i];
        sse_registry_wake_taken(l->reg, disp.pid, &l->wake_hint);
        more |= sse_registry_head(l->reg) != l->cursor;
    }
    return more;
}

/* Worker and event say STOPPING before they close their connections and
 * run child_stopping, which tells a drain from an immediate stop: until
 * that hook has run, the stop is not classified. Prefork runs the hook
 * only as it exits, and stops gracefully without it. */
static int told_to_stop(void)
{
    int state = AP_MPMQ_RUNNING, threaded = 0;

    if (disp.told) {
        return 1;
    }
    ap_mpm_query(AP_MPMQ_MPM_STATE, &state);
    if (state != AP_MPMQ_STOPPING) {
        return 0;               /* every pass until a stop: one query */
    }
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    return threaded == AP_MPMQ_NOT_SUPPORTED;
}

/* Told to stop, does the whole server go (restart or stop), or only this
 * child (idle-server maintenance, MaxConnectionsPerChild)? A restart
 * moves the scoreboard's generation on before it tells the children; a
 * graceful stop removes the PidFile just after (so this is asked again
 * each second while draining); a parent that is gone means the same. */
static int server_going_away(void)
{
    int gen = 0;
    struct stat sb;

    if (ap_mpm_query(AP_MPMQ_GENERATION, &gen) != APR_SUCCESS
        || ap_scoreboard_image == NULL
        || gen != ap_scoreboard_image->global->running_generation
        || getppid() != disp.ppid || disp.pidfile == NULL) {
        return 1;
    }
    return stat(disp.pidfile, &sb) != 0 || sb.st_ino != disp.pidfile_ino;
}

static int all_streams(void)
{
    int i, n = 0;

    for (i = 0; i < disp.nlocals; i++) {
        n += local_streams(disp.locals[i]);
    }
    return n;
}

static void enter_ending(void)
{
    int i;

    apr_thread_mutex_lock(disp.mu);
    disp.state = SSE_DISP_ENDING;   /* no stream starts here from now */
    apr_thread_mutex_unlock(disp.mu);
    for (i = 0; i < disp.nlocals; i++) {
        mark_all(disp.locals[i], 1);
    }
}

static void update_state(void)
{
    apr_time_t now;

    if (disp.state == SSE_DISP_ENDING) {
        return;
    }
    if (disp.end_now) {
        enter_ending();
        return;
    }
    now = sse_clock();
    if (!told_to_stop()
        || (disp.state == SSE_DISP_DRAINING && now < disp.next_check)) {
        return;
    }
    disp.next_check = now + apr_time_from_sec(1);
    if (server_going_away()) {
        enter_ending();
    }
    else if (disp.state == SSE_DISP_RUNNING) {
        disp.state = SSE_DISP_DRAINING;
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, ap_server_conf,
                     SSE_LOGNO(00140) "httpd told this child to stop while "
                     "the server runs on (idle-server maintenance or "
                     "MaxConnectionsPerChild): its %d streams stay until "
                     "their clients leave, and end at a restart or stop",
                     all_streams());
    }
}

/* Take what the suspend hooks handed over out from under disp.mu: from
 * now on the dispatcher owns these streams (PARKED). */
static sse_stream_t *take_adopted(void)
{
    sse_stream_t *all, *st;

    apr_thread_mutex_lock(disp.mu);
    all = disp.adopt;
    disp.adopt = NULL;
    for (st = all; st; st = st->adopt_next) {
        SSE_ASSERT(st->on_adopt && st->mode == SSE_MODE_HANDOFF);
        st->on_adopt = 0;
        st->mode = SSE_MODE_PARKED;
    }
    apr_thread_mutex_unlock(disp.mu);
    return all;
}

static void run_adopted(void)
{
    sse_stream_t *st, *next;

    for (st = take_adopted(); st; st = next) {
        next = st->adopt_next;
        sse_park_adopted(st);
    }
}

/* The parked streams that have work, out from under disp.mu. */
static sse_stream_t *take_to_serve(void)
{
    sse_stream_t *all, *st;

    apr_thread_mutex_lock(disp.mu);
    all = disp.serve;
    disp.serve = NULL;
    for (st = all; st; st = st->serve_next) {
        SSE_ASSERT(st->on_serve && st->mode == SSE_MODE_PARKED);
        st->on_serve = 0;
    }
    apr_thread_mutex_unlock(disp.mu);
    return all;
}

static void run_to_serve(void)
{
    sse_stream_t *st, *next;

    for (st = take_to_serve(); st; st = next) {
        next = st->serve_next;
        sse_park_serve(st);     /* one ended meanwhile is skipped */
    }
}

static void poll_once(int busy)
{
    apr_interval_time_t timeout;
    const apr_pollfd_t *fds;
    apr_int32_t num = 0, i;
    char buf[64];

    timeout = sse_park_tick(apr_time_from_msec(SSE_TICK_MS));
    if (apr_pollset_poll(disp.ps, busy ? 0 : timeout, &num, &fds)
        != APR_SUCCESS) {
        num = 0;
    }
    for (i = 0; i < num; i++) {
        if (fds[i].client_data == NULL) {
            while (recv(disp.fd, buf, sizeof(buf), MSG_DONTWAIT) > 0) {
                /* drain: one pass serves every wake-up so far */
            }
        }
        else {
            sse_park_event(fds[i].client_data, fds[i].rtnevents);
        }
    }
}

static void end_everything(void)
{
    int waited;

    if (disp.state != SSE_DISP_ENDING) {
        enter_ending();
    }
    run_adopted();
    run_to_serve();
    /* parked streams close after their grace: a second at most */
    for (waited = 0; sse_park_end_all() && waited < 15; waited++) {
        apr_sleep(apr_time_from_msec(100));
    }
}

/* Signals are for the child's main thread: prefork tears the child down
 * from a SIGTERM handler, which must never run on this thread (it would
 * wait for itself in dispatcher_cleanup). */
static void block_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGWINCH,
                               SIGALRM, SIGCHLD, SIGPIPE};
    apr_size_t i;

    for (i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        apr_signal_block(sigs[i]);
    }
}

static void *APR_THREAD_FUNC dispatcher(apr_thread_t *thd, void *data)
{
    int i, busy = 0;

    (void)thd;
    (void)data;
    block_signals();
    while (!disp.exit) {
        poll_once(busy);
        update_state();
        /* ending: what is handed over or served now ends at once */
        run_adopted();
        for (i = 0; i < disp.nlocals && disp.state != SSE_DISP_ENDING;
             i++) {
            dispatch_local(disp.locals[i]);
        }
        run_to_serve();
        if (disp.state == SSE_DISP_ENDING) {
            (void)sse_park_end_all();
        }
        busy = disp.state != SSE_DISP_ENDING && take_wakes();
    }
    end_everything();
    disp.done = 1;
    /* return, not apr_thread_exit(): if a bounded join gave up, the
     * child pool (and this thread's pool in it) may be gone already */
    return NULL;
}

void sse_dispatch_child_stopping(apr_pool_t *pchild, int graceful)
{
    (void)pchild;
    if (disp.thread) {
        /* graceful: the dispatcher finds out whether the server goes */
        if (!graceful) {
            disp.end_now = 1;
        }
        disp.told = 1;
        sse_wake_pid(disp.pid);
    }
}

/* Join the dispatcher before the child pool's memory goes. Under worker
 * and event this runs once every worker thread has been joined: no one
 * holds a lock the dispatcher may wait for, and the join is unbounded.
 * Prefork tears a child down from its SIGTERM handler, on the thread that
 * runs requests (the dispatcher blocks the signal), which may hold
 * disp.mu (never the registry lock: the ending signals wait while it is
 * held, mod_sse_state.c): then the dispatcher can be waiting for that
 * lock, and will be until the process exits. A prefork dispatcher has no
 * parked streams and no long work, so one that has not finished within
 * the wait is blocked on this thread's lock: it will not touch memory
 * again, and the pool may go. */
static apr_status_t dispatcher_cleanup(void *data)
{
    apr_status_t trv;
    int waited, threaded = 0;

    (void)data;
    if (disp.thread == NULL) {
        return APR_SUCCESS;
    }
    disp.exit = 1;
    sse_wake_pid(disp.pid);
    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    if (threaded == AP_MPMQ_NOT_SUPPORTED) {
        for (waited = 0; !disp.done && waited < 200; waited++) {
            apr_sleep(apr_time_from_msec(10));
        }
    }
    if (threaded != AP_MPMQ_NOT_SUPPORTED || disp.done) {
        apr_thread_join(&trv, disp.thread);
    }
    disp.thread = NULL;
    return APR_SUCCESS;
}

/* The event MPM ends a child that it told to stop once it counts no
 * connection of the child's; streams the dispatcher owns are none of
 * its. Draining, the child stays here, its dispatcher serving them,
 * until their clients leave, or the server restarts or stops (ENDING).
 * A dispatcher told to stop but not yet out of RUNNING moves on within
 * its tick. Prefork, which runs this from a signal handler, parks
 * nothing. */
static apr_status_t keep_draining(void *data)
{
    (void)data;
    while (disp.thread != NULL && !disp.done
           && disp.state != SSE_DISP_ENDING && all_streams() > 0) {
        apr_sleep(apr_time_from_msec(100));
    }
    return APR_SUCCESS;
}

void sse_dispatch_keep_draining(apr_pool_t *pchild)
{
    int async = 0;

    if (disp.thread != NULL
        && ap_mpm_query(AP_MPMQ_IS_ASYNC, &async) == APR_SUCCESS && async) {
        apr_pool_pre_cleanup_register(pchild, NULL, keep_draining);
    }
}

/* One epoll set for the wake-up socket and every parked stream: only the
 * dispatcher thread touches it, so no copies and no lock (NOCOPY). */
static apr_status_t make_pollset(apr_pool_t *pchild)
{
    static apr_pollfd_t wake;
    apr_socket_t *sock = NULL;
    apr_os_sock_t fd = disp.fd;
    apr_status_t rv;

    rv = apr_pollset_create_ex(&disp.ps, 1024, pchild, APR_POLLSET_NOCOPY,
                               APR_POLLSET_EPOLL);
    if (rv == APR_SUCCESS) {
        rv = apr_os_sock_put(&sock, &fd, pchild);
    }
    if (rv == APR_SUCCESS) {
        memset(&wake, 0, sizeof(wake));
        wake.p = pchild;
        wake.desc_type = APR_POLL_SOCKET;
        wake.desc.s = sock;
        wake.reqevents = APR_POLLIN;
        rv = apr_pollset_add(disp.ps, &wake);
    }
    return rv == APR_SUCCESS ? sse_park_init(pchild, disp.ps) : rv;
}

apr_status_t sse_dispatch_post_config(apr_pool_t *pconf, server_rec *s)
{
    return sse_wake_post_config(pconf, s);
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
            l->copy = apr_palloc(pchild, SSE_COPIES * sizeof(*l->copy));
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

/* Threaded MPMs stop whichever child reads their message when idle
 * threads exceed MaxSpareThreads; on event, children full of parked
 * streams look idle. Such a child drains (update_state) and so may linger:
 * say at start-up what lets it happen, with the numbers. */
void sse_dispatch_check_mpm(server_rec *s)
{
    int threaded = 0, spare = 0, threads = 0, daemons = 0, conns = 0;

    if (ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded) != APR_SUCCESS
        || threaded == AP_MPMQ_NOT_SUPPORTED
        || ap_mpm_query(AP_MPMQ_MAX_SPARE_THREADS, &spare) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_MAX_THREADS, &threads) != APR_SUCCESS
        || ap_mpm_query(AP_MPMQ_MAX_DAEMONS, &daemons) != APR_SUCCESS) {
        return;
    }
    ap_mpm_query(AP_MPMQ_MAX_REQUESTS_DAEMON, &conns);
    if (spare < threads * daemons) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00142)
                     "httpd may stop idle children that hold streams "
                     "(MaxSpareThreads %d < %d threads in %d children): such "
                     "a child keeps its streams until their clients leave, "
                     "so it may stay after its threads are gone. "
                     "MaxSpareThreads %d keeps every child", spare,
                     threads * daemons, daemons, threads * daemons);
    }
    if (conns > 0) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00147)
                     "MaxConnectionsPerChild %d: a child that reaches it "
                     "keeps its streams until their clients leave", conns);
    }
}

/* What tells a graceful stop of the server from a stop of this child
 * alone: the PidFile, which the stop removes. */
static void note_pidfile(apr_pool_t *pchild, server_rec *s)
{
    struct stat sb;

    disp.ppid = getppid();
    disp.pidfile = ap_pid_fname ? ap_server_root_relative(pchild,
                                                          ap_pid_fname)
                                : NULL;
    if (disp.pidfile && stat(disp.pidfile, &sb) == 0) {
        disp.pidfile_ino = sb.st_ino;
        return;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, errno, s, SSE_LOGNO(00141)
                 "cannot read the PidFile %s: this child ends its streams "
                 "whenever httpd tells it to stop",
                 disp.pidfile ? disp.pidfile : "(none)");
    disp.pidfile = NULL;
}

/* Every stream holds a descriptor. The event MPM stops a child from
 * accepting once the connections it counts reach its limit, but owned
 * streams are no longer counted (mod_sse_own.c): without a bound of its
 * own a child full of streams would accept until accept() fails with
 * EMFILE, which makes the MPM stop the child. Leave a margin for its
 * other descriptors (listeners, logs, requests, the bus). */
static void note_fd_limit(void)
{
    struct rlimit rl;

    disp.room = 0;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
        && rl.rlim_cur < (rlim_t)(1 << 30)) {
        int cur = (int)rl.rlim_cur;
        disp.room = cur - (64 + cur / 32);
        if (disp.room < 1) {
            disp.room = 1;
        }
    }
    disp.own_max = 0;
    if (disp.room > 0) {
        disp.own_max = disp.room - sse_park_mpm_connections();
        if (disp.own_max <= 0) {
            disp.own_max = -1;
        }
    }
}

int sse_dispatch_may_own(void)
{
    return disp.own_max == 0
        || (disp.own_max > 0 && all_streams() < disp.own_max);
}

int sse_dispatch_room(server_rec *s)
{
    apr_uint32_t now, said;
    int n;

    if (disp.room == 0 || (n = all_streams()) < disp.room) {
        return 1;
    }
    now = (apr_uint32_t)apr_time_sec(sse_clock());
    said = disp.full_said;
    /* the monotonic clock may read under a minute (just booted) */
    if ((said == 0 || now - said >= 60)
        && apr_atomic_cas32(&disp.full_said, now, said) == said) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00219)
                     "this child holds %d streams, all that its descriptor "
                     "limit leaves room for (RLIMIT_NOFILE less a margin): "
                     "new streams here are told to reconnect, which lands "
                     "them on another child. Raise the limit (ulimit -n, "
                     "APACHE_ULIMIT_MAX_FILES, LimitNOFILE) or run more "
                     "children", n);
    }
    return 0;
}

apr_status_t sse_dispatch_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    disp.pid = (apr_uint32_t)getpid();
    note_fd_limit();
    disp.state = SSE_DISP_RUNNING;
    note_pidfile(pchild, s);
    make_locals(pchild, s);
    rv = apr_thread_mutex_create(&disp.mu, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = sse_wake_bind(pchild, disp.pid, &disp.fd);
    }
    if (rv == APR_SUCCESS) {
        rv = make_pollset(pchild);
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

/* ---- the local index of this child's streams ------------------------- */

void sse_dispatch_attach(sse_stream_t *st)
{
    sse_local_t *l = st->local;

    apr_thread_mutex_lock(disp.mu);
    st->next = l->by_slot[st->hold.slot];
    l->by_slot[st->hold.slot] = st;
    l->nstreams++;
    apr_thread_mutex_unlock(disp.mu);
}

void sse_dispatch_detach(sse_stream_t *st)
{
    sse_stream_t **link;

    apr_thread_mutex_lock(disp.mu);
    for (link = &disp.to_wake; st->on_wake && *link;
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

int sse_dispatch_take(sse_stream_t *st, apr_uint64_t *seqs, int *n, int *resync)
{
    int ending;

    apr_thread_mutex_lock(disp.mu);
    *n = st->qlen;
    memcpy(seqs, st->queue, sizeof(*seqs) * (apr_size_t)st->qlen);
    st->qlen = 0;
    *resync = st->resync;
    st->resync = 0;
    ending = st->ending || disp.state == SSE_DISP_ENDING;
    apr_thread_mutex_unlock(disp.mu);
    return ending;
}

void sse_dispatch_adopt(sse_stream_t *st)
{
    apr_thread_mutex_lock(disp.mu);
    SSE_ASSERT(st->mode == SSE_MODE_HANDOFF && !st->on_adopt);
    st->on_adopt = 1;
    st->adopt_next = disp.adopt;
    disp.adopt = st;
    apr_thread_mutex_unlock(disp.mu);
    sse_wake_pid(disp.pid);
}

apr_uint32_t sse_dispatch_pid(void)
{
    return disp.pid;
}

int sse_dispatch_ready(const sse_local_t *l)
{
    return l != NULL && disp.thread != NULL
        && disp.state != SSE_DISP_ENDING;
}

int sse_dispatch_ending(void)
{
    return disp.thread != NULL && disp.state == SSE_DISP_ENDING;
}
