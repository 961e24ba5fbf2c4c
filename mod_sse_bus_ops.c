/*
 * SSEBus in the glue, publishing (mod_sse_bus.c draws the whole): this
 * child's pool of Redis connections, the master's replicas, and the
 * operations of mod_sse_ops.c as Redis scripts, a publish happening once
 * even when it is sent again.
 */
#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include <httpd.h>
#include <http_log.h>

#include <apr_reslist.h>
#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_bus.h"
#include "mod_sse_bus_int.h"
#include "src/sse_bus_redis.h"
#include "src/sse_redis_conn.h"

/* per child */
static int down;                    /* Redis failed, not yet back */
static apr_time_t next_try;         /* while down: no connect before */
static volatile apr_uint32_t replicas;  /* the master's, as last seen */
static volatile apr_uint32_t replica_late;

/* ---- connections for publishing --------------------------------------- */

static void went_down(server_rec *s, const char *why)
{
    apr_thread_mutex_lock(sse_bus_glue.state_mu);
    if (!down) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, SSE_LOGNO(00203)
                     "SSEBus %s: %s; requests that need it answer 503 "
                     "until it is back", sse_bus_glue.url->text, why);
    }
    down = 1;
    next_try = sse_clock() + apr_time_from_sec(1);
    apr_thread_mutex_unlock(sse_bus_glue.state_mu);
}

static void came_up(server_rec *s)
{
    apr_thread_mutex_lock(sse_bus_glue.state_mu);
    if (down) {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, 0, s, SSE_LOGNO(00204)
                     "SSEBus %s: reachable again", sse_bus_glue.url->text);
    }
    down = 0;
    apr_thread_mutex_unlock(sse_bus_glue.state_mu);
}

static int may_try(void)
{
    int ok;

    apr_thread_mutex_lock(sse_bus_glue.state_mu);
    ok = !down || sse_clock() >= next_try;
    apr_thread_mutex_unlock(sse_bus_glue.state_mu);
    return ok;
}

/* A connection of the pool, and how far Redis's clock is from ours (for
 * the scripts' deadlines). */
struct sse_conn_t {
    redisContext *c;
    apr_int64_t offset_ms;
    sse_once_t once;            /* its name, and its count of publishes */
};

/* Redis's clock minus ours, in ms, from TIME: the smallest it can be
 * (Redis read its clock at the latest when the answer came), so that a
 * deadline in Redis's clock is never later than meant. */
static int clock_offset(redisContext *c, apr_int64_t *offset)
{
    redisReply *r = redisCommand(c, "TIME");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2
             && r->element[0]->type == REDIS_REPLY_STRING
             && r->element[1]->type == REDIS_REPLY_STRING;

    if (ok) {
        *offset = apr_atoi64(r->element[0]->str) * 1000
                  + apr_atoi64(r->element[1]->str) / 1000 - sse_now_ms();
    }
    freeReplyObject(r);
    return ok;
}

/* ---- replicas --------------------------------------------------------- */

int sse_bus_look_replicas(redisContext *c)
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
 * BUS_REPLICA_MS, or a WAIT refused (an ACL, a proxy), is not waited for
 * until the next look (a second). SSE_EBUS only when the connection
 * failed (*unsure: after the WAIT went out). */
apr_status_t sse_bus_replicated(server_rec *s, redisContext *c,
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
    if (rv != APR_SUCCESS && c->err) {
        return rv;
    }
    if (!acked) {
        __atomic_store_n(&replicas, 0, __ATOMIC_RELAXED);
    }
    if (__atomic_exchange_n(&replica_late, !acked, __ATOMIC_RELAXED)
           != (apr_uint32_t)!acked) {
        ap_log_error(APLOG_MARK, acked ? APLOG_NOTICE : APLOG_WARNING, 0, s,
                     SSE_LOGNO(00216) "SSEBus %s: %s", sse_bus_glue.url->text,
                     acked
                     ? "a replica acknowledges the log again"
                     : "no replica acknowledged the log within 500 ms: "
                       "until one does, a failover may lose or repeat "
                       "events");
    }
    return APR_SUCCESS;
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

apr_status_t sse_bus_conn_make(void **res, void *params, apr_pool_t *p)
{
    server_rec *s = params;
    sse_conn_t *conn;
    char err[256];
    redisContext *c;

    (void)p;
    if (!may_try()) {
        return SSE_EBUS_DOWN;
    }
    c = sse_redis_connect(sse_bus_glue.url, BUS_TIMEOUT_MS, err,
                          sizeof(err));
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
    (void)sse_bus_look_replicas(c);
    conn->c = c;
    conn->once.n = 0;
    name_sender(conn->once.sender);
    *res = conn;
    return APR_SUCCESS;
}

apr_status_t sse_bus_conn_free(void *res, void *params, apr_pool_t *p)
{
    sse_conn_t *conn = res;

    (void)params;
    (void)p;
    redisFree(conn->c);
    free(conn);
    return APR_SUCCESS;
}

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
        if (apr_reslist_acquire(sse_bus_glue.conns, res) != APR_SUCCESS) {
            return SSE_EBUS_DOWN;
        }
        if (!unusable(((sse_conn_t *)*res)->c)) {
            return APR_SUCCESS;
        }
        apr_reslist_invalidate(sse_bus_glue.conns, *res);
    }
    return SSE_EBUS_DOWN;
}

/* Look at the master's replicas again on a pooled connection. */
void sse_bus_refresh_replicas(void)
{
    void *res;

    if (sse_bus_glue.conns && may_try() && acquire(&res) == APR_SUCCESS) {
        if (sse_bus_look_replicas(((sse_conn_t *)res)->c)) {
            apr_reslist_release(sse_bus_glue.conns, res);
        }
        else {
            apr_reslist_invalidate(sse_bus_glue.conns, res);
        }
    }
}

apr_status_t sse_bus_call_begin(server_rec *s, sse_call_t *k)
{
    sse_srv_conf_t *conf = sse_srv_conf(s);
    void *res;

    memset(k, 0, sizeof(*k));
    if (sse_bus_glue.conns == NULL || conf->reg == NULL
        || conf->bus_ns == NULL) {
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
apr_status_t sse_bus_call_end(sse_call_t *k, apr_status_t rv)
{
    if (rv == SSE_EBUS) {
        went_down(k->s, k->err ? k->err : "command failed");
        __atomic_fetch_add(&sse_registry_bus_stats(k->reg)->errors, 1,
                           __ATOMIC_RELAXED);
        apr_reslist_invalidate(sse_bus_glue.conns, k->conn);
        return SSE_EBUS_DOWN;
    }
    came_up(k->s);
    apr_reslist_release(sse_bus_glue.conns, k->conn);
    return rv;
}

#define BUS_CALL(s, k, expr)                                                \
    do {                                                                    \
        apr_status_t rv_ = sse_bus_call_begin((s), &(k));                   \
        return rv_ ? rv_ : sse_bus_call_end(&(k), (expr));                  \
    } while (0)

/* ---- the operations --------------------------------------------------- */

/* ---- publishing, once ----------------------------------------------- */

/* What is published: a notification of key, or a completion for id. */
typedef struct {
    const char *key, *id, *taskid, *payload;
    apr_size_t plen;
} sse_pub_t;

/* Publish; answered once a replica has it (sse_bus_replicated(); with
 * @a fence for a resend, whose answer may come from the first run's record
 * and so from no write of this connection). Once the script answered, it
 * happened: only a connection lost after the WAIT went out (resend) makes
 * it anything but success. */
static apr_status_t pub_run(sse_call_t *k, const sse_pub_t *p, int fence,
                            int *n)
{
    apr_status_t rv;

    if (p->key) {
        rv = sse_rbus_notify(k->c, &k->b, p->key, p->payload, p->plen, n);
    }
    else {
        rv = sse_rbus_complete(k->c, &k->b, p->id, p->taskid, p->payload,
                               p->plen, n);
    }
    if (rv == APR_SUCCESS && *n > 0
        && sse_bus_replicated(k->s, k->c, k->b.ns, fence, k->b.err,
                              k->b.unsure) != APR_SUCCESS && k->unsure) {
        return SSE_EBUS;
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

    while (sse_now_ms() < give_up && !sse_bus_glue.stopping) {
        past_deadline(since);
        if (sse_bus_call_begin(s, &k) == APR_SUCCESS) {
            if (sse_now_ms() >= give_up) {
                sse_bus_call_end(&k, APR_SUCCESS);  /* the record may be gone */
                break;
            }
            k.b.once = &once;
            rv = pub_run(&k, p, 1, n);
            if (rv != SSE_EBUS) {
                return sse_bus_call_end(&k, rv);
            }
            since = k.unsure ? k.b.now_ms : since;
            sse_bus_call_end(&k, rv);
        }
        apr_sleep(apr_time_from_msec(BUS_RESEND_PAUSE_MS));
    }
    ap_log_error(APLOG_MARK, APLOG_ERR, 0, s, SSE_LOGNO(00215)
                 "SSEBus %s: Redis went away while it ran a publish, and no "
                 "master answered within %d ms: whether it was delivered is "
                 "not known", sse_bus_glue.url->text, BUS_RESEND_MS);
    return SSE_EUNSURE;
}

static apr_status_t publish(server_rec *s, const sse_pub_t *p, int *n)
{
    sse_once_t once;
    sse_call_t k;
    apr_status_t rv;

    *n = 0;
    rv = sse_bus_call_begin(s, &k);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    once = k.conn->once;
    once.n = ++k.conn->once.n;
    k.b.once = &once;
    rv = pub_run(&k, p, 0, n);
    if (rv == SSE_EBUS && k.unsure) {
        sse_bus_call_end(&k, rv);
        return resend(s, p, once, k.b.now_ms, n);
    }
    return sse_bus_call_end(&k, rv);
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
apr_interval_time_t sse_bus_touch_every(void)
{
    apr_interval_time_t t = sse_conf_dormant() / 4;

    t = t < apr_time_from_sec(60) ? t : apr_time_from_sec(60);
    return t > sse_conf_heartbeat() ? t : sse_conf_heartbeat();
}

/* A listener counts as connected while its host refreshed it lately:
 * three rounds of the refresh. */
static apr_int64_t active_ms(void)
{
    return 3 * apr_time_as_msec(sse_bus_touch_every()) + BUS_TIMEOUT_MS;
}

apr_status_t sse_bus_list(server_rec *s, apr_pool_t *p, const char **json)
{
    char *out = NULL;
    apr_status_t rv;
    sse_call_t k;

    rv = sse_bus_call_begin(s, &k);
    if (rv == APR_SUCCESS) {
        rv = sse_bus_call_end(&k, sse_rbus_list(k.c, &k.b, p, active_ms(),
                                                &out));
    }
    *json = out;
    return rv;
}

apr_status_t sse_bus_lookup(server_rec *s, const char *id)
{
    sse_call_t k;
    apr_status_t rv = sse_bus_call_begin(s, &k);
    redisReply *r;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    r = redisCommand(k.c, "EXISTS %s:l:%s", k.b.ns, id);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        k.err = r ? "unexpected reply" : k.c->errstr;
        freeReplyObject(r);
        return sse_bus_call_end(&k, SSE_EBUS);
    }
    rv = r->integer ? APR_SUCCESS : APR_ENOENT;
    freeReplyObject(r);
    return sse_bus_call_end(&k, rv);
}

/* Until this host applied the log up to @a seq (its ingest may be a
 * moment behind the script that wrote it). */
static int applied(sse_registry_t *reg, apr_uint64_t seq)
{
    apr_time_t until = sse_clock() + apr_time_from_msec(BUS_WAIT_MS);

    while (sse_registry_bus_floor(reg) <= seq) {
        if (sse_clock() > until) {
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
    rv = sse_bus_call_begin(s, &k);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sse_bus_call_end(&k, sse_rbus_connect(k.c, &k.b, p, id,
                                               (apr_uint32_t)max, active_ms(),
                                               &l, &seq, created));
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

