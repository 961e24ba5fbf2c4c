/**
 * @file sse_bus.h
 * @brief The bus: what makes several hosts one service (SSEBus).
 *
 * Without a bus, a registry's own calls append to its ring (sse_registry.h).
 * With one, the cluster's log (a Redis stream, src/sse_bus_redis.c) is the
 * only writer of the ring: every change of the cluster's state is an entry
 * of that log with a sequence number the log gives, and one thread per host
 * applies the entries, in order, to the host's registry with those very
 * numbers (sse_registry_bus_apply). The ring is then the host's copy of the
 * log's newest entries, the same seq on every host, so a client resumes on
 * any host from the id it has; the dispatchers, streams and resume logic
 * are those of a single host.
 *
 * The registry keeps only the listeners whose streams this host holds (a
 * cache, made from the log's record at connect: sse_registry_bus_connect);
 * the record of every listener is in the bus engine. Chains in bus mode
 * also run through per-bucket heads of every key and name, so that a
 * listener whose stream arrives after its events were applied finds them.
 */
#ifndef SSE_BUS_H
#define SSE_BUS_H

#include "sse_registry.h"

/** Kinds of log entries. */
typedef enum {
    SSE_BUS_KEY = 1,    /**< notify a key (key, payload) */
    SSE_BUS_NAME,       /**< a completion (key: the name, data: task id) */
    SSE_BUS_CONNECT,    /**< a stream of id (serial) opened on some host:
                             an older one anywhere ends */
    SSE_BUS_LISTEN,     /**< id added key */
    SSE_BUS_REMOVE,     /**< id removed (retired until retire_ms if set) */
    SSE_BUS_CLEAR       /**< every listener removed and retired */
} sse_bus_kind_e;

/** One entry of the cluster's log, as read from it. Strings are
 * NUL-terminated and were checked by the reader (sse_bus_entry_check). */
typedef struct {
    apr_uint64_t seq;
    apr_int64_t ms;             /**< when it was published */
    int kind;                   /**< sse_bus_kind_e */
    const char *id;             /**< CONNECT, LISTEN, REMOVE */
    const char *key;            /**< KEY, LISTEN: the key; NAME: the name */
    const char *data;           /**< NAME: the task id */
    const char *payload;        /**< KEY, NAME: JSON text, or NULL */
    apr_size_t plen;
    apr_uint64_t serial;        /**< CONNECT: the stream's number */
    apr_int64_t retire_ms;      /**< REMOVE, CLEAR: retired until, or 0 */
} sse_bus_entry_t;

/** What the log's record of a listener says, for a stream that opens on
 * this host. */
typedef struct {
    apr_uint64_t serial;        /**< this stream's number */
    apr_uint64_t created_seq;   /**< events after it are for the listener */
    apr_uint64_t last_seq;      /**< the last one its streams delivered */
    apr_int64_t registered_ms;
    int nkeys;
    const char *keys[SSE_MAX_KEYS];
    apr_uint64_t since[SSE_MAX_KEYS];  /**< events of key k after it */
} sse_bus_listener_t;

/** Counters of the bus, in the segment (server-status). */
typedef struct {
    apr_uint32_t up;            /**< the ingest reads the log now */
    apr_uint32_t ingest_pid;    /**< the process that reads it, or 0 */
    apr_uint64_t applied;       /**< entries applied */
    apr_uint64_t gaps;          /**< times the log had lost entries */
    apr_uint64_t reconnects;
    apr_uint64_t errors;        /**< commands that failed */
    apr_int64_t lag_ms;         /**< last entry: applied - published */
} sse_bus_stats_t;

/**
 * Put this handle in bus mode: its publishes and removals are refused
 * (APR_ENOTIMPL: they go to the log), connects take
 * sse_registry_bus_connect, and the chains run through bucket heads.
 * Every handle of a segment must agree (one configuration).
 */
void sse_registry_set_bus(sse_registry_t *reg, int on);

/** Were the handles of the registry at @a mem (sse_registry_validate()
 * said it is one) in bus mode? A segment made with a bus and one made
 * without do not continue each other: their seqs come from elsewhere. */
int sse_registry_was_bus(const void *mem);

/** Is this handle in bus mode? */
int sse_registry_bus(const sse_registry_t *reg);

/**
 * The lowest seq the log may give next, as far as this host knows: one
 * past the last entry applied, or 0 before the first. The log never goes
 * below it (even when it lost its data), so ids never go back.
 */
apr_uint64_t sse_registry_bus_floor(sse_registry_t *reg);

/**
 * Apply @a n entries of the log, in order, under one hold of the mutex.
 * An entry at or below the last applied is skipped (read twice); one
 * above the next expected means the log lost entries: the ring then
 * starts again at it, and streams that resume from before it are told
 * they missed what lay between.
 * @param ended out: processes whose streams an entry ended (to wake),
 *        room for @a max_ended; *n_ended set (extra ones dropped: their
 *        dispatchers see the end at their periodic check)
 * @return APR_SUCCESS, or the mutex's error (nothing applied)
 */
apr_status_t sse_registry_bus_apply(sse_registry_t *reg,
                                    const sse_bus_entry_t *e, int n,
                                    apr_int64_t now_ms,
                                    apr_uint32_t *ended, int max_ended,
                                    int *n_ended);

/**
 * Open a stream of @a id on this host from the log's record @a l (the
 * log's CONNECT entry for it is applied already): the listener is made
 * in the local table (or refreshed), with its keys and its place in the
 * sequence, and held by process @a pid as sse_registry_connect() does.
 * Events applied before it came are found through the bucket heads.
 * A client resuming from before the ring's oldest entry is told it
 * missed what lies between.
 * @return as sse_registry_connect(); APR_EBUSY when a newer stream of
 *         the id is open here already
 */
apr_status_t sse_registry_bus_connect(sse_registry_t *reg, const char *id,
                                      apr_uint32_t pid,
                                      const sse_client_t *client,
                                      apr_int64_t now_ms,
                                      const sse_bus_listener_t *l,
                                      const apr_uint64_t *last_event_id,
                                      sse_hold_t *hold);

/** A stream this host holds, as the log's record should show it. */
typedef struct {
    char id[SSE_ID_MAX + 1];
    apr_uint64_t serial;
    int nkeys;
    char keys[SSE_MAX_KEYS][SSE_TOKEN_MAX + 1];
    apr_uint64_t since[SSE_MAX_KEYS];
} sse_bus_stream_t;

/**
 * The streams process @a pid holds now, from slot @a *from on (call
 * again until it returns 0): to refresh their activity in the log's
 * records, and to make those records again should Redis have lost them.
 */
int sse_registry_bus_streams(sse_registry_t *reg, apr_uint32_t pid,
                             apr_uint32_t *from, sse_bus_stream_t *out,
                             int max);

/** The bus counters in the segment, to update (by the ingest, without
 * the mutex: single writer) or read (status). */
sse_bus_stats_t *sse_registry_bus_stats(sse_registry_t *reg);

#endif /* SSE_BUS_H */
