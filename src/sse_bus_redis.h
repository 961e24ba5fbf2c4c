/**
 * @file sse_bus_redis.h
 * @brief The Redis engine of the bus (sse_bus.h): the cluster's log and
 *        its record of every listener, in one Redis, through hiredis.
 *
 * Keys of a namespace N (one per registry: the same on every host):
 *
 *   N:meta      hash  seq: the last sequence number given
 *   N:log       stream of entries "<seq>-0" (fields: t kind, k key/name,
 *               d task id, i id, s serial, r retired-until, m ms,
 *               p payload), trimmed to about `history` entries
 *   N:l:<id>    hash  name, created, last, reg (ms), conn (the serial of
 *               its newest stream), open (1 while that stream is open)
 *   N:lk:<id>   hash  key -> the seq at which the listener took it
 *   N:k:<key>   set of ids holding key     N:n:<name> set of ids of name
 *   N:ids       sorted set id -> last activity (ms); hosts refresh it for
 *               the streams they hold (sse_rbus_touch)
 *   N:r:<id>    retired id (expires)
 *
 * Every change is one Lua script (atomic): it updates the record and,
 * when the change is one hosts must see, appends to the log with
 * seq = HINCRBY N:meta seq, never below the caller's floor (the host's
 * next expected seq) and, when N:meta is gone (Redis lost its data),
 * starting again at the caller's clock (microseconds), so that ids never
 * go back. Scripts run by EVALSHA, loaded on NOSCRIPT.
 *
 * Every call takes a connected context (not thread-safe: one caller at a
 * time) and returns APR_SUCCESS, a refusal the caller answers (APR_ENOENT,
 * APR_EEXIST, APR_ENOSPC), or SSE_EBUS: the command failed (connection,
 * timeout, a Redis error); then *err says why and the context should be
 * dropped when sse_redis_must_reconnect() says so.
 */
#ifndef SSE_BUS_REDIS_H
#define SSE_BUS_REDIS_H

#include <hiredis/hiredis.h>

#include "sse_bus.h"

/** A command to Redis failed (see *err). */
#define SSE_EBUS (APR_OS_START_USERERR + 181)

/**
 * What makes a publish happen once when it is sent again: its sender
 * (a connection's random name) and the sender's count of publishes. A
 * publish records the pair with its answer (N:o:<sender>, 60 s); one
 * that finds its own pair recorded answers that instead of publishing.
 */
typedef struct {
    char sender[17];            /**< "" : no record */
    apr_uint64_t n;
} sse_once_t;

/** What every change needs besides its own arguments. */
typedef struct {
    const char *ns;             /**< the namespace */
    apr_uint32_t history;       /**< trim the log to about this */
    apr_uint64_t floor;         /**< sse_registry_bus_floor() */
    apr_int64_t now_ms;
    apr_int64_t deadline_ms;    /**< in Redis's clock: a script that runs
                                     later changes nothing; 0: none */
    const sse_once_t *once;     /**< publishes: NULL for none */
    const char **err;           /**< out, on SSE_EBUS: why (static or
                                     from the pool of the call) */
    int *unsure;                /**< out, on SSE_EBUS (may be NULL): 1 when
                                     the connection failed after the
                                     command went out (it may have run) */
} sse_rbus_t;

/** A notification of @a key, for every listener that holds it in the
 * cluster: *delivered their count; nothing is logged when it is 0.
 * Sent again with the same b->once, it publishes nothing more. */
apr_status_t sse_rbus_notify(redisContext *c, const sse_rbus_t *b,
                             const char *key, const char *payload,
                             apr_size_t plen, int *delivered);

/** A completion of @a taskid for every listener of @a id's name.
 * APR_ENOENT when @a id has no listener. */
apr_status_t sse_rbus_complete(redisContext *c, const sse_rbus_t *b,
                               const char *id, const char *taskid,
                               const char *payload, apr_size_t plen,
                               int *delivered);

/**
 * A stream of @a id opens: the listener is made if it has no record
 * (unless retired: APR_EEXIST; unless the cluster holds @a max listeners
 * each active within @a active_ms: APR_ENOSPC; else the longest
 * inactive is removed for it), given a new serial, and a CONNECT entry
 * ends an older stream wherever it is.
 * @param l out: the record (strings from @a p)
 * @param seq out: the CONNECT entry's seq (apply up to it before holding)
 * @param created out: 1 if the listener was new
 */
apr_status_t sse_rbus_connect(redisContext *c, const sse_rbus_t *b,
                              apr_pool_t *p, const char *id,
                              apr_uint32_t max, apr_int64_t active_ms,
                              sse_bus_listener_t *l, apr_uint64_t *seq,
                              int *created);

/** The stream @a serial of @a id ended after delivering up to @a last. */
apr_status_t sse_rbus_release(redisContext *c, const sse_rbus_t *b,
                              const char *id, apr_uint64_t serial,
                              apr_uint64_t last);

/** Add @a key to @a id (at most @a max keys: APR_ENOSPC; APR_ENOENT no
 * listener); *added 0 when it held it already. */
apr_status_t sse_rbus_listen(redisContext *c, const sse_rbus_t *b,
                             const char *id, const char *key, int max,
                             int *added);

/** Remove @a id, its id retired for @a retire_ms. APR_ENOENT unknown. */
apr_status_t sse_rbus_remove(redisContext *c, const sse_rbus_t *b,
                             const char *id, apr_int64_t retire_ms);

/** Remove every listener, retire their ids for @a retire_ms. */
apr_status_t sse_rbus_clear(redisContext *c, const sse_rbus_t *b,
                            apr_int64_t retire_ms, int *removed);

/** Remove up to 500 listeners without activity for @a dormant_ms (call
 * again while it removes 500). */
apr_status_t sse_rbus_cleanup(redisContext *c, const sse_rbus_t *b,
                              apr_int64_t dormant_ms, int *removed);

/** Mark the listeners of @a n streams open here active now; a record
 * Redis lost (it restarted empty) is made again from the stream's, unless
 * the id was retired meanwhile. @a p for the command's arguments. */
apr_status_t sse_rbus_touch(redisContext *c, const sse_rbus_t *b,
                            apr_pool_t *p, const sse_bus_stream_t *st,
                            int n);

/** Every listener of the cluster as list-registrants' JSON object; a
 * listener counts as connected while its stream is open and its host
 * refreshed it within @a active_ms. */
apr_status_t sse_rbus_list(redisContext *c, const sse_rbus_t *b,
                           apr_pool_t *p, apr_int64_t active_ms,
                           char **json);

/** How many replicas the master says it has (ROLE): *n. */
apr_status_t sse_rbus_replicas(redisContext *c, int *n, const char **err);

/**
 * Wait until a replica acknowledged every write this connection made
 * (WAIT 1), at most @a timeout_ms; with @a fence, write a key of @a ns
 * first (pipelined), which makes "every write" every write Redis made so
 * far: what a reader saw is then on a replica. *acked: 1 if one did.
 * SSE_EBUS and *unsure (if not NULL) when the connection failed.
 */
apr_status_t sse_rbus_replicated(redisContext *c, const char *ns, int fence,
                                 int timeout_ms, int *acked,
                                 const char **err, int *unsure);

/**
 * Read the logs of @a n namespaces after the given seqs, waiting up to
 * @a block_ms for one: at most @a count entries each, checked (an entry
 * that does not parse becomes one with kind 0, applied as nothing).
 * @param after in: per namespace, the last seq applied (0: from the
 *        oldest kept)
 * @param got out: per namespace, its entries (from @a p) and their count
 */
apr_status_t sse_rbus_read(redisContext *c, int n, const char *const *ns,
                           const apr_uint64_t *after, int block_ms,
                           int count, apr_size_t max_payload, apr_pool_t *p,
                           sse_bus_entry_t **got, int *ngot,
                           const char **err);

#endif /* SSE_BUS_REDIS_H */
