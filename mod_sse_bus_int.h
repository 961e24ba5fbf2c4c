/**
 * @file mod_sse_bus_int.h
 * @brief What the files of SSEBus's glue share (mod_sse_bus.c,
 *        mod_sse_bus_ops.c, mod_sse_bus_threads.c): the bus's timings,
 *        the generation's and the child's state, and a call on a pooled
 *        connection. The rest of the glue includes mod_sse_bus.h only.
 */
#ifndef MOD_SSE_BUS_INT_H
#define MOD_SSE_BUS_INT_H

#include <apr_reslist.h>
#include <apr_thread_mutex.h>

#include "mod_sse_mgr_private.h"
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

/** The state the bus's glue files share. Defined in mod_sse_bus.c; the
 * generation's part is written by the configuration in the parent, the
 * child's part by sse_bus_child_init() (mod_sse_bus_threads.c) before
 * the child's threads start. */
typedef struct {
    sse_redis_url_t *url;       /* this generation's SSEBus, or NULL */
    const char *lock_path;      /* the ingest lock's file */
    /* per child */
    apr_reslist_t *conns;       /* sse_conn_t, for publishing */
    apr_thread_mutex_t *state_mu;   /* guards mod_sse_bus_ops.c's
                                       down and next_try */
    volatile int stopping;      /* the child's threads are to end */
} sse_bus_glue_t;

extern sse_bus_glue_t sse_bus_glue;

/** A connection of the pool (mod_sse_bus_ops.c). */
typedef struct sse_conn_t sse_conn_t;

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

/* The functions below are defined in mod_sse_bus_ops.c. */

/** apr_reslist's constructor of the pool's connections (@a params: the
 * main server); SSE_EBUS_DOWN while Redis is down. */
apr_status_t sse_bus_conn_make(void **res, void *params, apr_pool_t *p);

/** apr_reslist's destructor of the pool's connections. */
apr_status_t sse_bus_conn_free(void *res, void *params, apr_pool_t *p);

/** Start a call for @a s's registry in @a k, on a pooled connection:
 * APR_EGENERAL without a bus or a registry, SSE_EBUS_DOWN without a
 * connection. Each call that succeeded ends with sse_bus_call_end(). */
apr_status_t sse_bus_call_begin(server_rec *s, sse_call_t *k);

/** End the call @a k whose command returned @a rv: the connection goes
 * back to the pool, or is dropped when @a rv is SSE_EBUS (then
 * SSE_EBUS_DOWN is returned). Otherwise returns @a rv. */
apr_status_t sse_bus_call_end(sse_call_t *k, apr_status_t rv);

/** Has a replica the writes of @a c (with @a fence: every write Redis
 * made so far)? APR_SUCCESS at once without replicas; SSE_EBUS, with
 * *err and *unsure (may be NULL), when @a c failed. */
apr_status_t sse_bus_replicated(server_rec *s, redisContext *c,
                                const char *ns, int fence, const char **err,
                                int *unsure);

/** Look at the master's replicas again on a pooled connection. */
void sse_bus_refresh_replicas(void);

/** How many replicas the master of @a c has, for sse_bus_replicated()
 * (ROLE). 0: @a c failed. */
int sse_bus_look_replicas(redisContext *c);

/** How often a child refreshes its streams' records in Redis. */
apr_interval_time_t sse_bus_touch_every(void);

#endif /* MOD_SSE_BUS_INT_H */
