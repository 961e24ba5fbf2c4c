/*
 * SSEBus in the glue, each child's threads (mod_sse_bus.c draws the
 * whole): the bus worker, which tells Redis the streams that ended here
 * and refreshes the records of those it holds, and the ingest, which
 * applies the cluster's log to the shared rings in the one process of
 * the host that holds the ingest lock.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <httpd.h>
#include <http_log.h>

#include <apr_queue.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_bus.h"
#include "mod_sse_bus_int.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_ops.h"
#include "src/sse_bus_redis.h"
#include "src/sse_redis_conn.h"

/* per child */
static apr_thread_t *ingest_thread;
static apr_queue_t *releases;       /* sse_release_t, for worker_main */
static apr_thread_t *release_thread;

#define BUS_RELEASES        1024    /* ended streams waiting to be told */
#define BUS_WORKER_TICK_MS  200     /* the worker looks for them this often */

/* A stream that ended, to tell Redis (off the thread that ended it: the
 * dispatcher serves every parked stream and must never wait). */
typedef struct {
    server_rec *s;
    apr_uint64_t serial, sent;
    char id[SSE_ID_MAX + 1];
} sse_release_t;

/* Our threads take no signal: the MPM's handlers (prefork ends a child
 * from its SIGTERM handler, destroying pchild, which joins these very
 * threads) must run on the thread the MPM expects. */
static void no_signals(void)
{
    sigset_t all;

    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, NULL);
}

/* ---- the bus worker --------------------------------------------------- */

void sse_bus_release(server_rec *s, const char *id, const sse_hold_t *hold,
                     apr_uint64_t sent)
{
    sse_release_t *rel;

    if (releases == NULL || (rel = malloc(sizeof(*rel))) == NULL) {
        return;
    }
    rel->s = s;
    rel->serial = hold->serial;
    rel->sent = sent;
    apr_cpystrn(rel->id, id, sizeof(rel->id));
    if (apr_queue_trypush(releases, rel) != APR_SUCCESS) {
        free(rel);      /* Redis that far behind: its cleanup will do */
    }
}

/* This child's streams are active: say so in Redis, a batch at a time
 * (and make their records again should Redis have lost them). Each
 * child tells its own, off the ingest's path. */
static apr_status_t touch(server_rec *s, sse_bus_stream_t *batch)
{
    apr_uint32_t pid = (apr_uint32_t)getpid(), from = 0;
    apr_status_t rv = APR_SUCCESS;
    sse_call_t k;
    apr_pool_t *p;
    int n;

    if (sse_srv_conf(s)->reg == NULL) {
        return APR_SUCCESS;
    }
    apr_pool_create(&p, NULL);
    while (rv == APR_SUCCESS
           && (n = sse_registry_bus_streams(sse_srv_conf(s)->reg, pid, &from,
                                            batch, BUS_TOUCH_BATCH)) > 0
           && (rv = sse_bus_call_begin(s, &k)) == APR_SUCCESS) {
        rv = sse_bus_call_end(&k, sse_rbus_touch(k.c, &k.b, p, batch, n));
        apr_pool_clear(p);
    }
    apr_pool_destroy(p);
    return rv;
}

/* APR_SUCCESS when every registry's streams were refreshed. */
static apr_status_t touch_all(server_rec *main_s, sse_bus_stream_t *batch)
{
    apr_status_t rv = APR_SUCCESS;
    server_rec *vs;

    for (vs = main_s; vs && !sse_bus_glue.stopping; vs = vs->next) {
        if (sse_srv_conf(vs)->owner && sse_srv_conf(vs)->bus_ns
            && touch(vs, batch) != APR_SUCCESS) {
            rv = APR_EGENERAL;
        }
    }
    return rv;
}

/* Has a registry's log had a hole (Redis may have lost its records)
 * since the last look? */
static int new_gap(server_rec *main_s, apr_uint64_t *seen)
{
    apr_uint64_t gaps = 0;
    server_rec *vs;
    int changed;

    for (vs = main_s; vs; vs = vs->next) {
        if (sse_srv_conf(vs)->owner && sse_srv_conf(vs)->bus_ns) {
            gaps += __atomic_load_n(
                &sse_registry_bus_stats(sse_srv_conf(vs)->reg)->gaps,
                __ATOMIC_RELAXED);
        }
    }
    changed = gaps != *seen;
    *seen = gaps;
    return changed;
}

/* Each child's bus worker: tells Redis the streams that ended here, and
 * refreshes the records of the streams this child holds
 * (sse_bus_touch_every(), and at once after a hole in the log: Redis may
 * have lost them). */
static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *baton)
{
    sse_bus_stream_t *batch;
    apr_interval_time_t every = sse_bus_touch_every();
    apr_time_t next_touch = sse_clock() + every;
    apr_time_t next_look = 0;
    server_rec *main_s = baton;
    apr_uint64_t gaps_seen = 0;
    int due = 0;
    apr_status_t rv;
    void *item;
    sse_call_t k;

    no_signals();
    batch = malloc(BUS_TOUCH_BATCH * sizeof(*batch));
    new_gap(main_s, &gaps_seen);
    while (batch && !sse_bus_glue.stopping) {
        /* APR-util 1.6 has no timed pop: look five times a second */
        while ((rv = apr_queue_trypop(releases, &item)) == APR_SUCCESS) {
            sse_release_t *rel = item;
            if (sse_bus_call_begin(rel->s, &k) == APR_SUCCESS) {
                sse_bus_call_end(&k, sse_rbus_release(k.c, &k.b, rel->id,
                                                      rel->serial,
                                                      rel->sent));
            }
            free(rel);
        }
        if (rv != APR_EAGAIN && rv != APR_EINTR) {
            break;                      /* terminated: the child stops */
        }
        apr_sleep(apr_time_from_msec(BUS_WORKER_TICK_MS));
        if (sse_clock() >= next_look) {
            sse_bus_refresh_replicas();
            next_look = sse_clock() + apr_time_from_sec(1);
        }
        due |= new_gap(main_s, &gaps_seen) || sse_clock() >= next_touch;
        /* one that failed (Redis away) is tried again at the next tick */
        if (due && touch_all(main_s, batch) == APR_SUCCESS) {
            due = 0;
            next_touch = sse_clock() + every;
        }
    }
    free(batch);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* ---- the ingest ------------------------------------------------------- */


typedef struct {
    server_rec *s;              /* the owner of the registry */
    sse_registry_t *reg;
    const char *ns;
} sse_bus_reg_t;

typedef struct {
    server_rec *s;
    apr_pool_t *pool;
    apr_array_header_t *regs;   /* sse_bus_reg_t */
    apr_file_t *lock;
    int locked;
    apr_time_t next_cleanup;
} sse_ingest_t;

static void nap(apr_interval_time_t t)
{
    apr_time_t until = sse_clock() + t;

    while (!sse_bus_glue.stopping && sse_clock() < until) {
        apr_sleep(apr_time_from_msec(100));
    }
}

/* What status shows of the ingest: whether it reads the log now, and
 * which process does (0: none). */
static void set_up(sse_ingest_t *in, int up, apr_uint32_t pid)
{
    int i;

    for (i = 0; i < in->regs->nelts; i++) {
        sse_bus_stats_t *st = sse_registry_bus_stats(
            APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t).reg);
        if (st->up && !up) {
            st->reconnects++;
        }
        st->up = (apr_uint32_t)up;
        st->ingest_pid = pid;
    }
}

/* Apply what one XREAD returned for registry @a br, and wake. */
static void apply(sse_ingest_t *in, sse_bus_reg_t *br,
                  const sse_bus_entry_t *e, int n)
{
    apr_uint32_t ended[64];
    int n_ended = 0, i;
    apr_status_t rv;

    rv = sse_registry_bus_apply(br->reg, e, n, sse_now_ms(), ended, 64,
                                &n_ended);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, in->s, SSE_LOGNO(00206)
                     "SSEBus: cannot apply %d entries of %s", n, br->ns);
        return;
    }
    if (n_ended < 0) {
        sse_dispatch_wake_all(br->reg);
    }
    /* the holders of what was applied were woken as the registry's mutex
     * was released (sse_registry_set_waker) */
    for (i = 0; i < n_ended; i++) {
        sse_dispatch_wake_pid(ended[i]);
    }
}

/* The cluster's dormant cleanup, and this host's copies of listeners
 * whose streams ended here long ago. */
static apr_status_t cleanup(sse_ingest_t *in, redisContext *c,
                            sse_bus_reg_t *br, const char **err)
{
    apr_int64_t dormant = apr_time_as_msec(sse_conf_dormant());
    sse_rbus_t b = { .ns = br->ns,
                     .history = sse_registry_sizes(br->reg)->history,
                     .floor = sse_registry_bus_floor(br->reg),
                     .now_ms = sse_now_ms(), .err = err };
    apr_status_t rv;
    int n, total = 0;

    do {
        rv = sse_rbus_cleanup(c, &b, dormant, &n);
        total += n;
    } while (rv == APR_SUCCESS && n == 500 && !sse_bus_glue.stopping);
    sse_registry_cleanup(br->reg, b.now_ms, dormant, &n);
    if (total) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, in->s, SSE_LOGNO(00207)
                     "SSEBus: cleanup removed %d dormant listener(s) from "
                     "%s", total, br->ns);
        sse_op_changed(br->s);
    }
    return rv;
}

static apr_status_t periodic(sse_ingest_t *in, redisContext *c,
                             const char **err)
{
    apr_time_t now = sse_clock();
    apr_status_t rv = APR_SUCCESS;
    int i;

    for (i = 0; rv == APR_SUCCESS && i < in->regs->nelts; i++) {
        sse_bus_reg_t *br = &APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t);
        if (now >= in->next_cleanup) {
            rv = cleanup(in, c, br, err);
        }
    }
    if (now >= in->next_cleanup) {
        apr_interval_time_t ci = sse_gconf.cleanup >= 0
                                     ? sse_gconf.cleanup
                                     : apr_time_from_sec(SSE_DEF_CLEANUP);
        in->next_cleanup = now + (ci > apr_time_from_sec(1)
                                      ? ci : apr_time_from_sec(1));
    }
    return rv;
}

/* Did Redis lose the records this host applied (it restarted empty)?
 * Then every child makes its streams' records again at once (their bus
 * workers watch the gap count), not at their next refresh. */
static void check_lost(sse_ingest_t *in, redisContext *c)
{
    int i;

    for (i = 0; i < in->regs->nelts; i++) {
        sse_bus_reg_t *br = &APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t);
        redisReply *r;
        if (sse_registry_bus_floor(br->reg) == 0) {
            continue;
        }
        r = redisCommand(c, "EXISTS %s:meta", br->ns);
        if (r && r->type == REDIS_REPLY_INTEGER && r->integer == 0) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, in->s,
                         SSE_LOGNO(00214) "SSEBus %s: Redis lost the records "
                         "of %s (restarted without its data): the streams "
                         "open here record their listeners again",
                         sse_bus_glue.url->text, br->ns);
            __atomic_fetch_add(&sse_registry_bus_stats(br->reg)->gaps, 1,
                               __ATOMIC_RELAXED);
        }
        freeReplyObject(r);
    }
}

static int any(const int *ngot, int n)
{
    int i;

    for (i = 0; i < n && ngot[i] == 0; i++) {
    }
    return i < n;
}

/* Read and apply until the connection fails or the child stops. Entries
 * are applied once a replica has them (sse_bus_replicated()): a listener
 * never gets an event that a failover loses. */
static void ingest(sse_ingest_t *in, redisContext *c)
{
    int n = in->regs->nelts, i;
    const char **ns = apr_palloc(in->pool, n * sizeof(*ns));
    apr_uint64_t *after = apr_palloc(in->pool, n * sizeof(*after));
    sse_bus_entry_t **got = apr_palloc(in->pool, n * sizeof(*got));
    int *ngot = apr_palloc(in->pool, n * sizeof(*ngot));
    apr_size_t max_payload = sse_conf_max_message();
    const char *err = NULL;
    apr_pool_t *p;

    apr_pool_create(&p, in->pool);
    for (i = 0; i < n; i++) {
        ns[i] = APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t).ns;
    }
    check_lost(in, c);
    while (!sse_bus_glue.stopping) {
        apr_pool_clear(p);
        for (i = 0; i < n; i++) {
            apr_uint64_t next = sse_registry_bus_floor(
                APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t).reg);
            after[i] = next ? next - 1 : 0;
        }
        if (sse_rbus_read(c, n, ns, after, BUS_BLOCK_MS, BUS_READ_COUNT,
                          max_payload, p, got, ngot, &err) != APR_SUCCESS
            || periodic(in, c, &err) != APR_SUCCESS
            || (any(ngot, n)
                && sse_bus_replicated(in->s, c, ns[0], 1, &err, NULL)
                   != APR_SUCCESS)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, in->s,
                         SSE_LOGNO(00208) "SSEBus %s: ingest: %s; "
                         "reconnecting", sse_bus_glue.url->text,
                         err ? err : "?");
            break;
        }
        for (i = 0; i < n; i++) {
            if (ngot[i]) {
                apply(in, &APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t), got[i],
                      ngot[i]);
            }
        }
    }
    apr_pool_destroy(p);
}

static void *APR_THREAD_FUNC ingest_main(apr_thread_t *t, void *baton)
{
    sse_ingest_t *in = baton;
    apr_interval_time_t backoff = apr_time_from_msec(250);
    char err[256];

    no_signals();
    while (!sse_bus_glue.stopping) {
        redisContext *c;
        if (!in->locked) {
            in->locked = apr_file_lock(in->lock, APR_FLOCK_EXCLUSIVE
                                                 | APR_FLOCK_NONBLOCK)
                         == APR_SUCCESS;
            if (!in->locked) {
                nap(apr_time_from_sec(1));
                continue;
            }
            ap_log_error(APLOG_MARK, APLOG_INFO, 0, in->s, SSE_LOGNO(00209)
                         "SSEBus: this process (%d) ingests the log",
                         (int)getpid());
        }
        c = sse_redis_connect(sse_bus_glue.url, BUS_TIMEOUT_MS + BUS_BLOCK_MS,
                              err, sizeof(err));
        if (c == NULL) {
            set_up(in, 0, (apr_uint32_t)getpid());
            nap(backoff);
            backoff = backoff * 2 > apr_time_from_sec(5)
                          ? apr_time_from_sec(5) : backoff * 2;
            continue;
        }
        backoff = apr_time_from_msec(250);
        (void)sse_bus_look_replicas(c);     /* before applying anything */
        set_up(in, 1, (apr_uint32_t)getpid());
        ingest(in, c);
        redisFree(c);
        set_up(in, 0, (apr_uint32_t)getpid());
    }
    if (in->locked) {
        set_up(in, 0, 0);
        apr_file_unlock(in->lock);
    }
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

static apr_status_t stop_threads(void *data)
{
    apr_status_t rv;

    (void)data;
    sse_bus_glue.stopping = 1;
    if (releases) {
        apr_queue_term(releases);
    }
    if (release_thread) {
        apr_thread_join(&rv, release_thread);
        release_thread = NULL;
    }
    if (ingest_thread) {
        apr_thread_join(&rv, ingest_thread);
        ingest_thread = NULL;
    }
    return APR_SUCCESS;
}

static void start_ingest(apr_pool_t *pchild, server_rec *s)
{
    sse_ingest_t *in = apr_pcalloc(pchild, sizeof(*in));
    server_rec *vs;
    apr_status_t rv;

    in->s = s;
    in->pool = pchild;
    in->regs = apr_array_make(pchild, 4, sizeof(sse_bus_reg_t));
    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        if (conf->owner && conf->reg && conf->bus_ns) {
            sse_bus_reg_t *br = apr_array_push(in->regs);
            br->s = vs;
            br->reg = conf->reg;
            br->ns = conf->bus_ns;
        }
    }
    rv = apr_file_open(&in->lock, sse_bus_glue.lock_path, APR_FOPEN_READ, 0,
                       pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_thread_create(&ingest_thread, NULL, ingest_main, in,
                               pchild);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, SSE_LOGNO(00210)
                     "SSEBus: cannot start this child's ingest thread");
        return;
    }
}

void sse_bus_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (sse_bus_glue.url == NULL) {
        return;
    }
    sse_bus_glue.stopping = 0;
    apr_thread_mutex_create(&sse_bus_glue.state_mu, APR_THREAD_MUTEX_DEFAULT,
                            pchild);
    rv = apr_reslist_create(&sse_bus_glue.conns, 0, 2, 16,
                            apr_time_from_sec(60), sse_bus_conn_make,
                            sse_bus_conn_free, s, pchild);
    if (rv == APR_SUCCESS) {
        apr_reslist_timeout_set(sse_bus_glue.conns,
                                apr_time_from_msec(BUS_TIMEOUT_MS));
    }
    else {
        sse_bus_glue.conns = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, rv, s, SSE_LOGNO(00211)
                     "SSEBus: cannot make this child's connection pool");
    }
    if (apr_queue_create(&releases, BUS_RELEASES, pchild) != APR_SUCCESS
        || apr_thread_create(&release_thread, NULL, worker_main, s,
                             pchild) != APR_SUCCESS) {
        releases = NULL;
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, SSE_LOGNO(00212)
                     "SSEBus: cannot start this child's release thread");
    }
    start_ingest(pchild, s);
    /* runs before pchild's subpools and the threads' pools go */
    apr_pool_pre_cleanup_register(pchild, NULL, stop_threads);
}
