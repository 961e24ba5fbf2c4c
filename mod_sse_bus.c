/*
 * SSEBus in the glue: several hosts as one service through one Redis
 * (src/sse_bus.h draws the design, src/sse_bus_redis.h the keys).
 *
 * - Publishing: the operations of mod_sse_ops.c become Redis scripts,
 *   run on a connection from this child's pool (apr_reslist: hiredis
 *   contexts are not thread-safe, so each call takes one of its own).
 *   A failed call answers 503 + Retry-After; its connection is dropped,
 *   and new ones are tried at most once a second while Redis is down.
 *   The outage is logged once, and its end.
 * - Ingesting: one thread per child tries the host's ingest lock (flock
 *   on a file in DefaultRuntimeDir: the kernel releases it when its
 *   holder dies); the one that holds it reads the logs of every registry
 *   with XREAD BLOCK and applies them to the shared rings, then wakes
 *   the children that hold streams. It also refreshes the activity of
 *   this host's streams in Redis and runs the cluster's dormant cleanup.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include <apr_queue.h>
#include <apr_reslist.h>
#include <apr_strings.h>
#include <apr_thread_proc.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_bus.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_ops.h"
#include "src/sse_bus_redis.h"
#include "src/sse_redis_conn.h"

#define BUS_TIMEOUT_MS      2000    /* connect, and each command */
#define BUS_BLOCK_MS        1000    /* XREAD BLOCK */
#define BUS_READ_COUNT      512     /* entries per XREAD and registry */
#define BUS_WAIT_MS         5000    /* a connect waits for its entry */
#define BUS_RESEND_MS       15000   /* a publish whose answer was lost is
                                       sent again this long (a Sentinel
                                       failover takes seconds) */
#define BUS_RESEND_PAUSE_MS 100
#define BUS_REPLICA_MS      500     /* a replica acknowledges within */
#define BUS_LOCK_FILE       "sse_mgr-ingest.lock"
#define BUS_TOUCH_BATCH     64      /* streams per refresh script */

static sse_redis_url_t *bus_url;    /* this generation's SSEBus, or NULL */
static const char *lock_path;

/* per child */
static apr_reslist_t *conns;
static apr_thread_mutex_t *state_mu;
static int down;                    /* Redis failed, not yet back */
static apr_time_t next_try;         /* while down: no connect before */
static volatile int stopping;
static volatile apr_uint32_t replicas;  /* the master's, as last seen */
static volatile apr_uint32_t replica_late;
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

/* ---- configuration ---------------------------------------------------- */

const char *sse_bus_cmd(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    sse_redis_url_t *u;

    (void)dc;
    if (err) {
        return err;
    }
    u = apr_pcalloc(cmd->pool, sizeof(*u));
    if (sse_redis_url_parse(cmd->pool, arg, u, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    bus_url = u;
    return NULL;
}

void sse_bus_pre_config(void)
{
    bus_url = NULL;
}

int sse_bus_on(void)
{
    return bus_url != NULL;
}

/* The namespace of a registry in Redis: the same on every host of the
 * service. The main server's is its SSEPrefix (ServerName differs from
 * host to host when left to the machine's name); a vhost's adds its
 * ServerName, which hosts of one site share. */
static const char *ns_of(apr_pool_t *p, server_rec *vs, int main_server)
{
    sse_srv_conf_t *conf = sse_srv_conf(vs);
    const char *prefix = conf->prefix ? conf->prefix : SSE_DEF_PREFIX;

    return main_server ? apr_pstrcat(p, "sse:", prefix, NULL)
                       : apr_pstrcat(p, "sse:", vs->server_hostname, prefix,
                                     NULL);
}

/* The ingest lock's file, made by the parent for the children to lock. */
static apr_status_t make_lock_file(apr_pool_t *pconf, server_rec *s)
{
    apr_file_t *f;
    apr_status_t rv;

    lock_path = ap_runtime_dir_relative(pconf, BUS_LOCK_FILE);
    rv = apr_file_open(&f, lock_path, APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD
                       | APR_FPROT_WREAD, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00201)
                     "SSEBus: cannot make the ingest lock %s", lock_path);
        return rv;
    }
    apr_file_close(f);
    return APR_SUCCESS;
}

apr_status_t sse_bus_check_config(server_rec *s)
{
    if (bus_url && sse_gconf.secret == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00200)
                     "SSEBus needs SSESecret, the same on every host: ids "
                     "made on one host must check on all");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t sse_bus_post_config(apr_pool_t *pconf, server_rec *s)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        conf->bus_ns = NULL;
        if (bus_url && conf->owner) {
            conf->bus_ns = ns_of(pconf, vs, vs == s);
        }
    }
    for (vs = s->next; bus_url && vs; vs = vs->next) {
        if (!sse_srv_conf(vs)->owner) {
            sse_srv_conf(vs)->bus_ns = sse_srv_conf(s)->bus_ns;
        }
    }
    if (bus_url == NULL) {
        return APR_SUCCESS;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00202)
                 "SSEBus %s: registries share their listeners and events "
                 "with every host on it", bus_url->text);
    return make_lock_file(pconf, s);
}

/* ---- connections for publishing --------------------------------------- */

static void went_down(server_rec *s, const char *why)
{
    apr_thread_mutex_lock(state_mu);
    if (!down) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, SSE_LOGNO(00203)
                     "SSEBus %s: %s; requests that need it answer 503 "
                     "until it is back", bus_url->text, why);
    }
    down = 1;
    next_try = apr_time_now() + apr_time_from_sec(1);
    apr_thread_mutex_unlock(state_mu);
}

static void came_up(server_rec *s)
{
    apr_thread_mutex_lock(state_mu);
    if (down) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00204)
                     "SSEBus %s: reachable again", bus_url->text);
    }
    down = 0;
    apr_thread_mutex_unlock(state_mu);
}

static int may_try(void)
{
    int ok;

    apr_thread_mutex_lock(state_mu);
    ok = !down || apr_time_now() >= next_try;
    apr_thread_mutex_unlock(state_mu);
    return ok;
}

/* A connection of the pool, and how far Redis's clock is from ours (for
 * the scripts' deadlines). */
typedef struct {
    redisContext *c;
    apr_int64_t offset_ms;
    sse_once_t once;            /* its name, and its count of publishes */
} sse_conn_t;

/* Redis's clock minus ours, in ms, from TIME (half a round trip off). */
static int clock_offset(redisContext *c, apr_int64_t *offset)
{
    apr_int64_t before = sse_now_ms();
    redisReply *r = redisCommand(c, "TIME");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
             && r->element[0]->type == REDIS_REPLY_STRING
             && r->element[1]->type == REDIS_REPLY_STRING;

    if (ok) {
        *offset = apr_atoi64(r->element[0]->str) * 1000
                  + apr_atoi64(r->element[1]->str) / 1000
                  - (before + sse_now_ms()) / 2;
    }
    freeReplyObject(r);
    return ok;
}

/* ---- replicas --------------------------------------------------------- */

/* How many replicas the master has, for replicated(). 0: @a c failed. */
static int look_replicas(redisContext *c)
{
    const char *err;
    int n;

    if (sse_rbus_replicas(c, &n, &err) != APR_SUCCESS) {
        return 0;
    }
    __atomic_store_n(&replicas, (apr_uint32_t)n, __ATOMIC_RELAXED);
    return 1;
}

/* Has a replica the writes of @a c (with @a fence: every write Redis made
 * so far)? What the ingest applies and what a publisher is told happened
 * must survive a failover to that replica. Without replicas there is
 * nothing to wait for; one that does not acknowledge within
 * BUS_REPLICA_MS is not waited for until the next look (a second). */
static apr_status_t replicated(server_rec *s, redisContext *c,
                               const char *ns, int fence, const char **err,
                               int *unsure)
{
    apr_status_t rv;
    int acked;

    if (__atomic_load_n(&replicas, __ATOMIC_RELAXED) == 0) {
        return APR_SUCCESS;
    }
    rv = sse_rbus_replicated(c, ns, fence, BUS_REPLICA_MS, &acked, err,
                             unsure);
    if (rv == APR_SUCCESS && !acked) {
        __atomic_store_n(&replicas, 0, __ATOMIC_RELAXED);
    }
    if (rv == APR_SUCCESS
        && __atomic_exchange_n(&replica_late, !acked, __ATOMIC_RELAXED)
           != (apr_uint32_t)!acked) {
        ap_log_error(APLOG_MARK, acked ? APLOG_NOTICE : APLOG_WARNING, 0, s,
                     SSE_LOGNO(00216) "SSEBus %s: %s", bus_url->text, acked
                     ? "a replica acknowledges the log again"
                     : "no replica acknowledged the log within 500 ms: "
                       "until one does, a failover may lose or repeat "
                       "events");
    }
    return rv;
}

/* A random name for a connection's publishes (sse_once_t). */
static void name_sender(char out[17])
{
    unsigned char raw[8];
    int i;

    if (apr_generate_random_bytes(raw, sizeof(raw)) != APR_SUCCESS) {
        apr_uint64_t t = (apr_uint64_t)apr_time_now() ^ (apr_uint64_t)getpid();
        memcpy(raw, &t, sizeof(raw));
    }
    for (i = 0; i < 8; i++) {
        apr_snprintf(out + 2 * i, 3, "%02x", raw[i]);
    }
}

static apr_status_t conn_make(void **res, void *params, apr_pool_t *p)
{
    server_rec *s = params;
    sse_conn_t *conn;
    char err[256];
    redisContext *c;

    (void)p;
    if (!may_try()) {
        return SSE_EBUS_DOWN;
    }
    c = sse_redis_connect(bus_url, BUS_TIMEOUT_MS, err, sizeof(err));
    conn = c ? malloc(sizeof(*conn)) : NULL;
    if (conn == NULL || !clock_offset(c, &conn->offset_ms)) {
        went_down(s, c ? "TIME failed" : err);
        free(conn);
        if (c) {
            redisFree(c);
        }
        return SSE_EBUS_DOWN;
    }
    came_up(s);
    (void)look_replicas(c);
    conn->c = c;
    conn->once.n = 0;
    name_sender(conn->once.sender);
    *res = conn;
    return APR_SUCCESS;
}

static apr_status_t conn_free(void *res, void *params, apr_pool_t *p)
{
    sse_conn_t *conn = res;

    (void)params;
    (void)p;
    redisFree(conn->c);
    free(conn);
    return APR_SUCCESS;
}

/* One operation on the bus: a connection and the arguments every
 * script takes. */
typedef struct {
    server_rec *s;
    sse_registry_t *reg;
    sse_conn_t *conn;
    redisContext *c;
    sse_rbus_t b;
    const char *err;
    int unsure;
} sse_call_t;

/* A script must run this long before its caller gives up on the answer:
 * one that runs later (Redis was stopped) changes nothing. */
#define BUS_DEADLINE_MARGIN_MS  300

/* Has this idle connection failed, or Redis closed it (it stopped, or
 * restarted)? Then a command sent on it would fail with its fate unknown
 * (publish()). */
static int unusable(const redisContext *c)
{
    struct pollfd p = { c->fd, POLLIN | POLLRDHUP, 0 };

    return c->err != 0 || poll(&p, 1, 0) != 0;
}

/* A pooled connection that is still open: one Redis closed is dropped. */
static apr_status_t acquire(void **res)
{
    int tries;

    for (tries = 0; tries < 4; tries++) {
        if (apr_reslist_acquire(conns, res) != APR_SUCCESS) {
            return SSE_EBUS_DOWN;
        }
        if (!unusable(((sse_conn_t *)*res)->c)) {
            return APR_SUCCESS;
        }
        apr_reslist_invalidate(conns, *res);
    }
    return SSE_EBUS_DOWN;
}

static apr_status_t call_begin(server_rec *s, sse_call_t *k)
{
    sse_srv_conf_t *conf = sse_srv_conf(s);
    void *res;

    memset(k, 0, sizeof(*k));
    if (conns == NULL || conf->reg == NULL || conf->bus_ns == NULL) {
        return APR_EGENERAL;
    }
    if (acquire(&res) != APR_SUCCESS) {
        return SSE_EBUS_DOWN;
    }
    k->s = s;
    k->reg = conf->reg;
    k->conn = res;
    k->c = k->conn->c;
    k->b.ns = conf->bus_ns;
    k->b.history = sse_registry_sizes(conf->reg)->history;
    k->b.floor = sse_registry_bus_floor(conf->reg);
    k->b.now_ms = sse_now_ms();
    k->b.deadline_ms = k->b.now_ms + k->conn->offset_ms + BUS_TIMEOUT_MS
                       - BUS_DEADLINE_MARGIN_MS;
    k->b.err = &k->err;
    k->b.unsure = &k->unsure;
    return APR_SUCCESS;
}

/* Give the connection back; a failed one is dropped. */
static apr_status_t call_end(sse_call_t *k, apr_status_t rv)
{
    if (rv == SSE_EBUS) {
        went_down(k->s, k->err ? k->err : "command failed");
        __atomic_fetch_add(&sse_registry_bus_stats(k->reg)->errors, 1,
                           __ATOMIC_RELAXED);
        apr_reslist_invalidate(conns, k->conn);
        return SSE_EBUS_DOWN;
    }
    came_up(k->s);
    apr_reslist_release(conns, k->conn);
    return rv;
}

#define BUS_CALL(s, k, expr)                                                \
    do {                                                                    \
        apr_status_t rv_ = call_begin((s), &(k));                           \
        return rv_ ? rv_ : call_end(&(k), (expr));                          \
    } while (0)

/* ---- the operations --------------------------------------------------- */

/* ---- publishing, once ----------------------------------------------- */

/* What is published: a notification of key, or a completion for id. */
typedef struct {
    const char *key, *id, *taskid, *payload;
    apr_size_t plen;
} sse_pub_t;

/* Publish; answered once a replica has it (replicated()). */
static apr_status_t pub_run(sse_call_t *k, const sse_pub_t *p, int *n)
{
    apr_status_t rv;

    if (p->key) {
        rv = sse_rbus_notify(k->c, &k->b, p->key, p->payload, p->plen, n);
    }
    else {
        rv = sse_rbus_complete(k->c, &k->b, p->id, p->taskid, p->payload,
                               p->plen, n);
    }
    if (rv == APR_SUCCESS && *n > 0) {
        rv = replicated(k->s, k->c, k->b.ns, 0, k->b.err, k->b.unsure);
    }
    return rv;
}

/* Until the script sent at @a since can no longer start (its deadline,
 * in our clock). */
static void past_deadline(apr_int64_t since)
{
    apr_int64_t wait = since + BUS_TIMEOUT_MS - BUS_DEADLINE_MARGIN_MS
                       - sse_now_ms();

    if (wait > 0) {
        apr_sleep(apr_time_from_msec(wait + 1));
    }
}

/* The connection of a publish failed after the publish went out: it may
 * have run (Redis died after running it, and a replica that has it may
 * be the master now). Send it again with the same sse_once_t to whatever
 * master answers, once the first can no longer start: the script answers
 * as the first did if it ran, else runs now. Only when no master answers
 * within BUS_RESEND_MS is the outcome unknown. */
static apr_status_t resend(server_rec *s, const sse_pub_t *p,
                           sse_once_t once, apr_int64_t since, int *n)
{
    apr_int64_t give_up = since + BUS_RESEND_MS;
    sse_call_t k;
    apr_status_t rv;

    while (sse_now_ms() < give_up && !stopping) {
        past_deadline(since);
        if (call_begin(s, &k) == APR_SUCCESS) {
            k.b.once = &once;
            rv = pub_run(&k, p, n);
            if (rv != SSE_EBUS) {
                return call_end(&k, rv);
            }
            since = k.unsure ? k.b.now_ms : since;
            call_end(&k, rv);
        }
        apr_sleep(apr_time_from_msec(BUS_RESEND_PAUSE_MS));
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, SSE_LOGNO(00215)
                 "SSEBus %s: Redis went away while it ran a publish, and no "
                 "master answered within %d ms: whether it was delivered is "
                 "not known", bus_url->text, BUS_RESEND_MS);
    return SSE_EUNSURE;
}

static apr_status_t publish(server_rec *s, const sse_pub_t *p, int *n)
{
    sse_once_t once;
    sse_call_t k;
    apr_status_t rv;

    *n = 0;
    rv = call_begin(s, &k);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    once = k.conn->once;
    once.n = ++k.conn->once.n;
    k.b.once = &once;
    rv = pub_run(&k, p, n);
    if (rv == SSE_EBUS && k.unsure) {
        call_end(&k, rv);
        return resend(s, p, once, k.b.now_ms, n);
    }
    return call_end(&k, rv);
}

apr_status_t sse_bus_notify(server_rec *s, const char *key,
                            const char *payload, apr_size_t plen,
                            int *delivered)
{
    sse_pub_t p = { key, NULL, NULL, payload, plen };

    return publish(s, &p, delivered);
}

apr_status_t sse_bus_complete(server_rec *s, const char *id,
                              const char *taskid, const char *payload,
                              apr_size_t plen, int *delivered)
{
    sse_pub_t p = { NULL, id, taskid, payload, plen };

    return publish(s, &p, delivered);
}

apr_status_t sse_bus_listen(server_rec *s, const char *id, const char *key,
                            int *added)
{
    sse_call_t k;

    *added = 0;
    BUS_CALL(s, k, sse_rbus_listen(k.c, &k.b, id, key, SSE_MAX_KEYS,
                                   added));
}

apr_status_t sse_bus_unregister(server_rec *s, const char *id,
                                apr_int64_t retire_ms)
{
    sse_call_t k;

    BUS_CALL(s, k, sse_rbus_remove(k.c, &k.b, id, retire_ms));
}

apr_status_t sse_bus_clear(server_rec *s, apr_int64_t retire_ms,
                           int *removed)
{
    sse_call_t k;

    *removed = 0;
    BUS_CALL(s, k, sse_rbus_clear(k.c, &k.b, retire_ms, removed));
}

apr_status_t sse_bus_cleanup(server_rec *s, int *removed)
{
    apr_int64_t dormant = apr_time_as_msec(sse_conf_dormant());
    sse_call_t k;

    *removed = 0;
    BUS_CALL(s, k, sse_rbus_cleanup(k.c, &k.b, dormant, removed));
}

/* How often a child refreshes its streams' records: often enough for
 * the dormant cleanup (a quarter of SSEDormantTimeout), at most once a
 * minute, and not more often than SSEHeartbeat. */
static apr_interval_time_t touch_every(void)
{
    apr_interval_time_t t = sse_conf_dormant() / 4;

    t = t < apr_time_from_sec(60) ? t : apr_time_from_sec(60);
    return t > sse_conf_heartbeat() ? t : sse_conf_heartbeat();
}

/* A listener counts as connected while its host refreshed it lately:
 * three rounds of the refresh. */
static apr_int64_t active_ms(void)
{
    return 3 * apr_time_as_msec(touch_every()) + BUS_TIMEOUT_MS;
}

apr_status_t sse_bus_list(server_rec *s, apr_pool_t *p, const char **json)
{
    char *out = NULL;
    apr_status_t rv;
    sse_call_t k;

    rv = call_begin(s, &k);
    if (rv == APR_SUCCESS) {
        rv = call_end(&k, sse_rbus_list(k.c, &k.b, p, active_ms(), &out));
    }
    *json = out;
    return rv;
}

apr_status_t sse_bus_lookup(server_rec *s, const char *id)
{
    sse_call_t k;
    apr_status_t rv = call_begin(s, &k);
    redisReply *r;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    r = redisCommand(k.c, "EXISTS %s:l:%s", k.b.ns, id);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        k.err = r ? "unexpected reply" : k.c->errstr;
        freeReplyObject(r);
        return call_end(&k, SSE_EBUS);
    }
    rv = r->integer ? APR_SUCCESS : APR_ENOENT;
    freeReplyObject(r);
    return call_end(&k, rv);
}

/* Until this host applied the log up to @a seq (its ingest may be a
 * moment behind the script that wrote it). */
static int applied(sse_registry_t *reg, apr_uint64_t seq)
{
    apr_time_t until = apr_time_now() + apr_time_from_msec(BUS_WAIT_MS);

    while (sse_registry_bus_floor(reg) <= seq) {
        if (apr_time_now() > until) {
            return 0;
        }
        apr_sleep(apr_time_from_msec(1));
    }
    return 1;
}

apr_status_t sse_bus_connect(server_rec *s, apr_pool_t *p, const char *id,
                             apr_uint32_t pid, const sse_client_t *client,
                             const apr_uint64_t *last_event_id,
                             sse_hold_t *hold, int *created)
{
    apr_int64_t max = sse_registry_sizes(sse_srv_conf(s)->reg)->max_listeners;
    sse_bus_listener_t l;
    apr_uint64_t seq = 0;
    apr_status_t rv;
    sse_call_t k;

    *created = 0;
    rv = call_begin(s, &k);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = call_end(&k, sse_rbus_connect(k.c, &k.b, p, id, (apr_uint32_t)max,
                                       active_ms(), &l, &seq, created));
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (!applied(k.reg, seq)) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SSE_LOGNO(00205)
                     "SSEBus: this host's ingest did not reach entry %"
                     APR_UINT64_T_FMT " within %d ms", seq, BUS_WAIT_MS);
        return SSE_EBUS_DOWN;
    }
    return sse_registry_bus_connect(k.reg, id, pid, client, sse_now_ms(), &l,
                                    last_event_id, hold);
}

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
           && (rv = call_begin(s, &k)) == APR_SUCCESS) {
        rv = call_end(&k, sse_rbus_touch(k.c, &k.b, p, batch, n));
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

    for (vs = main_s; vs && !stopping; vs = vs->next) {
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

/* Look at the master's replicas again on a pooled connection. */
static void refresh_replicas(void)
{
    void *res;

    if (may_try() && acquire(&res) == APR_SUCCESS) {
        if (look_replicas(((sse_conn_t *)res)->c)) {
            apr_reslist_release(conns, res);
        }
        else {
            apr_reslist_invalidate(conns, res);
        }
    }
}

/* Each child's bus worker: tells Redis the streams that ended here, and
 * refreshes the records of the streams this child holds (touch_every(),
 * and at once after a hole in the log: Redis may have lost them). */
static void *APR_THREAD_FUNC worker_main(apr_thread_t *t, void *baton)
{
    sse_bus_stream_t *batch;
    apr_interval_time_t every = touch_every();
    apr_time_t next_touch = apr_time_now() + every;
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
    while (batch && !stopping) {
        /* APR-util 1.6 has no timed pop: look five times a second */
        while ((rv = apr_queue_trypop(releases, &item)) == APR_SUCCESS) {
            sse_release_t *rel = item;
            if (call_begin(rel->s, &k) == APR_SUCCESS) {
                call_end(&k, sse_rbus_release(k.c, &k.b, rel->id,
                                              rel->serial, rel->sent));
            }
            free(rel);
        }
        if (rv != APR_EAGAIN && rv != APR_EINTR) {
            break;                      /* terminated: the child stops */
        }
        apr_sleep(apr_time_from_msec(BUS_WORKER_TICK_MS));
        if (apr_time_now() >= next_look) {
            refresh_replicas();
            next_look = apr_time_now() + apr_time_from_sec(1);
        }
        due |= new_gap(main_s, &gaps_seen) || apr_time_now() >= next_touch;
        /* one that failed (Redis away) is tried again at the next tick */
        if (due && touch_all(main_s, batch) == APR_SUCCESS) {
            due = 0;
            next_touch = apr_time_now() + every;
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
    apr_time_t until = apr_time_now() + t;

    while (!stopping && apr_time_now() < until) {
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
    for (i = 0; i < n_ended; i++) {
        sse_dispatch_wake_pid(ended[i]);
    }
    sse_dispatch_wake(br->reg);
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
    } while (rv == APR_SUCCESS && n == 500 && !stopping);
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
    apr_time_t now = apr_time_now();
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
                         bus_url->text, br->ns);
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
 * are applied once a replica has them (replicated()): a listener never
 * gets an event that a failover loses. */
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
    while (!stopping) {
        apr_pool_clear(p);
        for (i = 0; i < n; i++) {
            apr_uint64_t next = sse_registry_bus_floor(
                APR_ARRAY_IDX(in->regs, i, sse_bus_reg_t).reg);
            after[i] = next ? next - 1 : 0;
        }
        if (sse_rbus_read(c, n, ns, after, BUS_BLOCK_MS, BUS_READ_COUNT,
                          max_payload, p, got, ngot, &err) != APR_SUCCESS
            || periodic(in, c, &err) != APR_SUCCESS
            || (any(ngot, n) && replicated(in->s, c, ns[0], 1, &err, NULL)
                                != APR_SUCCESS)) {
            ap_log_error(APLOG_MARK, APLOG_WARNING, 0, in->s,
                         SSE_LOGNO(00208) "SSEBus %s: ingest: %s; "
                         "reconnecting", bus_url->text, err ? err : "?");
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
    while (!stopping) {
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
        c = sse_redis_connect(bus_url, BUS_TIMEOUT_MS + BUS_BLOCK_MS, err,
                              sizeof(err));
        if (c == NULL) {
            set_up(in, 0, (apr_uint32_t)getpid());
            nap(backoff);
            backoff = backoff * 2 > apr_time_from_sec(5)
                          ? apr_time_from_sec(5) : backoff * 2;
            continue;
        }
        backoff = apr_time_from_msec(250);
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
    stopping = 1;
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
    rv = apr_file_open(&in->lock, lock_path, APR_FOPEN_READ, 0, pchild);
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

    if (bus_url == NULL) {
        return;
    }
    stopping = 0;
    apr_thread_mutex_create(&state_mu, APR_THREAD_MUTEX_DEFAULT, pchild);
    rv = apr_reslist_create(&conns, 0, 2, 16, apr_time_from_sec(60),
                            conn_make, conn_free, s, pchild);
    if (rv == APR_SUCCESS) {
        apr_reslist_timeout_set(conns, apr_time_from_msec(BUS_TIMEOUT_MS));
    }
    else {
        conns = NULL;
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

/* ---- server-status ---------------------------------------------------- */

void sse_bus_status(request_rec *r, sse_registry_t *reg, int n, int html)
{
    const sse_bus_stats_t *st;
    apr_uint64_t next;

    if (!sse_registry_bus(reg)) {
        return;
    }
    st = sse_registry_bus_stats(reg);
    next = sse_registry_bus_floor(reg);
    if (html) {
        ap_rprintf(r, "<p>SSEBus %s: %s, ingest by process %u, entry %"
                   APR_UINT64_T_FMT " applied, lag %" APR_INT64_T_FMT
                   " ms, %" APR_UINT64_T_FMT " reconnects, %"
                   APR_UINT64_T_FMT " errors, %" APR_UINT64_T_FMT
                   " gaps</p>\n", ap_escape_html(r->pool, bus_url->text),
                   st->up ? "up" : "down", st->ingest_pid,
                   next ? next - 1 : 0, st->lag_ms, st->reconnects,
                   st->errors, st->gaps);
        return;
    }
    ap_rprintf(r, "SSERegistry[%d]BusState: %s\n"
               "SSERegistry[%d]BusIngestPid: %u\n"
               "SSERegistry[%d]BusSeq: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusLagMs: %" APR_INT64_T_FMT "\n"
               "SSERegistry[%d]BusReconnects: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusErrors: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusGaps: %" APR_UINT64_T_FMT "\n",
               n, st->up ? "up" : "down", n, st->ingest_pid,
               n, next ? next - 1 : 0, n, st->lag_ms, n, st->reconnects,
               n, st->errors, n, st->gaps);
}
