/**
 * @file sse_registry.h
 * @brief One manager's state in shared memory: listener slots, their
 *        indexes, the event ring and the table of children holding streams.
 *
 * Shared memory layout of one registry (offsets only, never pointers:
 * every process maps the segment at its own address):
 *
 *   sse_reg_header_t   stamp (magic, layout fingerprint, bytes, sizes),
 *                      sizes, secret, next_seq (atomic), stats,
 *                      free-list head, listener count, and the
 *                      registry's own mutex (written once, when it is
 *                      made: sse_registry_own_lock)
 *   uint32 id_bucket[nbuckets]     slot index + 1 of the first slot in the
 *   uint32 name_bucket[nbuckets]   id / name / listen-key hash chains
 *   uint32 key_bucket[nbuckets]    (key chains link key nodes:
 *                                   slot * SSE_MAX_KEYS + k, plus 1)
 *   uint32 retired_bucket[nbuckets]
 *   uint32 client_bucket[nbuckets]  client address -> client entry
 *   sse_retired_t retired[max_listeners]  ids refused for a while (ring)
 *   sse_child_t child[max_children]  pid, streams held, wake flag:
 *                      who to wake
 *   sse_client_rec_t client[2 * max_listeners]  per client address: the
 *                      listeners it made, the streams it holds, its idle
 *                      listeners (a slot references at most two entries:
 *                      its owner and its stream's client, so the table
 *                      never runs out)
 *   sse_slot_t slot[max_listeners]   one listener each
 *   sse_event_t ring[history]        entry of seq s at ring[s % history]
 *
 * Idle lists, so that a full table is made room in O(1): every listener
 * with no stream (SLOT_REGISTERED) is on one of the header's two idle
 * lists (never delivered an event / delivered some), and on its owner's
 * idle list when it has an owner; doubly linked through the slots (slot
 * index + 1), oldest activity at the head. A slot joins at the tail when
 * its stream ends, moves to the tail on activity, leaves when a stream
 * takes it or it is freed.
 *
 * The stamp (sse_registry_stamp_t) opens the header and never moves, so
 * that a build of the module whose records differ can still read it: the
 * segment survives `apachectl graceful` onto a rebuilt module, and the
 * stamp's fingerprint (every record's size, key offsets, the compiled
 * limits and the configured sizes) is checked before any other offset
 * into the segment is computed.
 *
 * Who writes what:
 * - Everything but next_seq is read and written under the registry's
 *   global mutex only, by any child (routes, optional functions, streams)
 *   or the parent (cleanup, reaping a dead child).
 * - next_seq is written under the mutex with a release store after the
 *   entry it publishes is complete; it may be read without the mutex
 *   (acquire) to learn whether anything is new, never to read an entry.
 * - A ring entry is valid for seq s only while entry.seq == s and
 *   s < next_seq; readers copy it out under the mutex.
 * - A child entry's `wake` flag is atomic and needs no mutex: a publisher
 *   sets it (exchange, under the mutex, after the commit) for each child
 *   that holds a target of the entry, and sends that child a wake-up
 *   datagram (after releasing the mutex) only when the flag was clear;
 *   the child's dispatcher clears it (exchange) before it reads next_seq.
 *   So a publish either finds the flag clear and sends, or finds it set
 *   and is seen by the dispatcher's next read (docs/design.md, Delivery).
 *
 * Chains through the ring, so that a read costs what it returns, not the
 * history: every SSE_EV_KEY entry links (prev) to the previous entry of
 * the same key, every SSE_EV_NAME entry to the previous completion of the
 * same name. Their heads are in the slots: each key node's `last` (the
 * newest entry of its key published while the node held it) and the
 * slot's `name_last`. A publish walks its targets anyway (to count them):
 * it takes prev as the newest of their heads, fences, then sets every
 * target's head to the new seq, and commits with next_seq last. A process
 * killed in between leaves heads >= next_seq, which the next holder of
 * the mutex (sse_reg_repair) sets back to the entry's prev. A chain ends
 * at an entry overwritten (seq mismatch) or at or before its reader's
 * floor (the slot's creation, the key's `since`, the resume point).
 */
#ifndef SSE_REGISTRY_H
#define SSE_REGISTRY_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_global_mutex.h>
#include <apr_pools.h>

#include "sse_frame.h"
#include "sse_id.h"

#define SSE_MAX_KEYS 32           /**< listen keys per listener */
#define SSE_SLOT_ALL 0xffffffffu  /**< "every stream" in a routed end */

/** sse_registry_connect: the client holds SSEMaxStreamsPerClient streams */
#define SSE_ECLIENT_STREAMS     (APR_OS_START_USERERR + 170)
/** sse_registry_connect: the client holds its bound of listeners, every
 * one with a live stream */
#define SSE_ECLIENT_LISTENERS   (APR_OS_START_USERERR + 171)

/** sse_registry_connect: the registry's bound on open streams is reached
 * (sse_registry_set_stream_bound) */
#define SSE_ESTREAMS            (APR_OS_START_USERERR + 165)

#define SSE_CLIENT_ADDR_LEN 16

/**
 * Who asks for a stream, and what one such client may hold. Clients are
 * counted by address: an IPv4 address whole, an IPv6 address by its /64
 * prefix (what one host or one home is given).
 */
typedef struct {
    unsigned char addr[SSE_CLIENT_ADDR_LEN];  /**< sse_client_parse() */
    apr_uint32_t max_listeners; /**< listeners it may have made; 0: any */
    apr_uint32_t max_streams;   /**< streams it may hold open; 0: any */
} sse_client_t;

typedef struct sse_registry_t sse_registry_t;

/** Sizes fixed when the segment is created. */
typedef struct {
    apr_uint32_t max_listeners;
    apr_uint32_t history;
    apr_uint32_t max_children;
    apr_uint32_t payload_bytes;     /**< the payloads' byte ring */
} sse_registry_sizes_t;

/** The first bytes of every registry: the same in every build. */
typedef struct {
    apr_uint32_t magic;
    apr_uint32_t unused;        /**< was a hand-bumped version number */
    apr_uint64_t fingerprint;   /**< sse_registry_fingerprint() of sz */
    apr_uint64_t bytes;         /**< sse_registry_size() of sz */
    sse_registry_sizes_t sz;
} sse_registry_stamp_t;

/** Called when taking or releasing the registry mutex fails. */
typedef void sse_lock_error_fn(void *baton, apr_status_t rv,
                               const char *what);

/** Kinds of ring entries. */
typedef enum {
    SSE_EV_NAME = 1,    /**< a completion (task id in data) for every
                             listener of a name (in key) */
    SSE_EV_KEY,         /**< data for every holder of a key */
    SSE_EV_END_SLOT,    /**< end the stream (slot, holder_gen) */
    SSE_EV_END_ALL,     /**< end every stream of this registry */
    SSE_EV_NOP          /**< for no stream (bus: a log entry that changed
                             only the listeners' record) */
} sse_ev_kind_e;

/** One ring entry, in the segment or copied out of it. */
typedef struct {
    apr_uint64_t seq;
    apr_int64_t ms;
    apr_uint64_t prev;      /**< the entry before it in its chain (same
                                 key, or same name), or 0 */
    apr_uint32_t kind;
    apr_uint32_t slot;
    apr_uint32_t slot_gen;
    apr_uint32_t holder_gen;
    apr_uint32_t key_hash;
    apr_uint32_t len;
    apr_uint32_t pay_len;   /**< its payload's bytes (JSON), or 0 */
    apr_uint64_t pay_off;   /**< where they start in the payloads' byte
                                 stream (the ring holds the newest
                                 payload_bytes of it) */
    char key[SSE_TOKEN_MAX + 1];
    char data[SSE_DATA_MAX];
} sse_event_t;

/** What a stream holds: its listener and its place in the sequence. */
typedef struct {
    apr_uint32_t slot;
    apr_uint32_t slot_gen;
    apr_uint32_t holder_gen;
    apr_uint64_t start;     /**< the ring head when it connected: ends
                                 published before it are not for it */
    apr_uint64_t cursor;    /**< the last seq the client has */
    apr_uint64_t missed_from, missed_to;  /**< lost before connect, or 0 */
    apr_uint32_t prev_pid;  /**< process of the stream it took over, or 0 */
    apr_uint64_t serial;    /**< bus: its number in the log, else 0 */
} sse_hold_t;

/** Counters kept in the segment. */
typedef struct {
    apr_uint64_t published;
    apr_uint64_t delivered;
    apr_uint64_t missed;
    apr_uint64_t rejected_full;
    apr_uint64_t repairs;       /**< rebuilds after a crash in the lock */
    apr_uint64_t ended_slow;    /**< streams ended: client not reading */
    apr_uint64_t reclaimed;     /**< listeners without a stream removed to
                                     make room for a new one */
    apr_uint64_t rejected_client;  /**< connects refused: per-client
                                        bound (429) */
    apr_uint64_t payload_written;  /**< payload bytes ever published */
    apr_uint64_t head_seq;      /**< filled by sse_registry_stats: the
                                     next sequence number */
    apr_uint64_t oldest_seq;    /**< ... and the oldest still in the ring */
    apr_uint32_t listeners;
    apr_uint32_t connected;
} sse_stats_t;

/** Streams one process holds, for status pages. */
typedef struct {
    apr_uint32_t pid;
    apr_uint32_t streams;
} sse_child_stat_t;

/**
 * Called under the registry mutex for every stream of process @a pid that
 * an entry targets. Must only do short, non-blocking, local work.
 * @param slot       the listener's slot, or SSE_SLOT_ALL
 * @param holder_gen which stream of that slot
 * @param ev         the entry (kind, seq)
 * @return 1 when the caller copied @a ev for that stream, which will
 *         write it (the slot counts it taken, as sse_registry_fetch
 *         does: the ring overwriting it is then no missed event); else 0
 */
typedef int sse_route_fn(void *baton, apr_uint32_t slot,
                         apr_uint32_t holder_gen, const sse_event_t *ev);

/** Bytes the segment needs for these sizes. */
apr_size_t sse_registry_size(const sse_registry_sizes_t *sz);

/**
 * The layout fingerprint of a registry of these sizes made by this build:
 * a hash of the size of every shared record, the offsets of their key
 * fields, the compiled limits (keys per listener, id, key and data
 * lengths), the configured sizes and the hash function of the chains.
 * Two builds agree on it only if they can share a segment.
 */
apr_uint64_t sse_registry_fingerprint(const sse_registry_sizes_t *sz);

/**
 * Check, reading only its stamp, that the @a avail bytes at @a mem hold a
 * registry of sizes @a sz laid out as this build lays it out.
 * @param stamp out: a copy of the stamp found (zeroed if @a avail is too
 *              small to hold one), for telling what changed
 * @return APR_SUCCESS; APR_EINVAL no registry (magic); APR_EMISMATCH
 *         another fingerprint, or more bytes than @a avail
 */
apr_status_t sse_registry_validate(const void *mem, apr_size_t avail,
                                   const sse_registry_sizes_t *sz,
                                   sse_registry_stamp_t *stamp);

/**
 * Format a fresh registry in @a mem and attach to it.
 * @param first_seq sequence number of the first event (keeps ids of events
 *                  increasing across restarts when taken from the clock)
 */
apr_status_t sse_registry_create(apr_pool_t *p, void *mem,
                                 const sse_registry_sizes_t *sz,
                                 const unsigned char *secret,
                                 apr_uint64_t first_seq,
                                 apr_global_mutex_t *lock,
                                 sse_registry_t **out);

/**
 * Attach to a registry formatted earlier (by this or another process).
 * Its stamp is checked (sse_registry_validate()) before anything else in
 * @a mem is touched.
 * @return APR_SUCCESS, or APR_EINVAL if @a mem holds no registry of these
 *         sizes laid out as this build lays it out
 */
apr_status_t sse_registry_attach(apr_pool_t *p, void *mem,
                                 const sse_registry_sizes_t *sz,
                                 apr_global_mutex_t *lock,
                                 sse_registry_t **out);

/**
 * Give a registry just made (sse_registry_create(), before any other
 * process attaches) a mutex of its own in its segment, taken from then
 * on by every process that attaches to it instead of the APR mutex: a
 * robust, process-shared pthread mutex, as APR's pthread mechanism makes,
 * but without priority inheritance. A contended priority-inheriting
 * mutex is handed by the kernel to the waiter it wakes, and nobody may
 * take it until that waiter runs: holds of a few microseconds then cost
 * each waiter the scheduler's latency, milliseconds on a busy host, and
 * a burst of streams opening keeps every worker thread waiting
 * (docs/design.md, Shared state). This one is released on unlock; a
 * holder that dies in it hands it on, and the dirty mark repairs, as
 * with APR's.
 * @return APR_SUCCESS, or the error of pthread_mutex_init()
 */
apr_status_t sse_registry_own_lock(sse_registry_t *reg);

/**
 * Map into this process's page tables, now, the parts of @a reg that
 * every publish and every delivery touch whoever the listener: the header
 * with the hash tables, the children's table, the ring and the payload
 * bytes. A process that attached to a segment another made faults each
 * page at its first touch (fork copies no page table of a shared
 * mapping): a publish in a fresh child would otherwise pay a fault for
 * every few ring entries it writes. The slots, clients and retired ids,
 * which grow with SSEMaxListeners, are left to fault one listener at a
 * time. The pages already exist (sse_registry_create() wrote them all):
 * this takes no memory.
 * @return APR_SUCCESS, or the error of madvise(MADV_POPULATE_WRITE) after
 *         reading a byte of each page instead (a kernel before 5.14), which
 *         maps them as well
 */
apr_status_t sse_registry_prefault(const sse_registry_t *reg);

/** The sizes the registry was made with. */
const sse_registry_sizes_t *sse_registry_sizes(const sse_registry_t *reg);

/** Replace the id secret (configured SSESecret on a restart). */
void sse_registry_set_secret(sse_registry_t *reg,
                             const unsigned char *secret);

/** Issue an id for @a name: APR_SUCCESS or APR_EINVAL. */
apr_status_t sse_registry_make_id(sse_registry_t *reg, const char *name,
                                  char out[SSE_ID_MAX + 1]);

/** APR_SUCCESS if issued here; APR_EINVAL malformed; APR_EACCES forged. */
apr_status_t sse_registry_check_id(sse_registry_t *reg, const char *id);

/** APR_SUCCESS if @a id has a listener, else APR_ENOENT. */
apr_status_t sse_registry_lookup(sse_registry_t *reg, const char *id);

/**
 * The client key of a textual IP address (what mod_remoteip leaves in
 * useragent_ip): IPv4 as an IPv4-mapped IPv6 address, IPv6 cut to its
 * /64 prefix (an IPv4-mapped IPv6 address counts as its IPv4 address).
 * @return APR_SUCCESS, APR_EINVAL if @a ip is not an address
 */
apr_status_t sse_client_parse(const char *ip,
                              unsigned char addr[SSE_CLIENT_ADDR_LEN]);

/**
 * Register @a id if needed and make the caller (process @a pid) its one
 * stream holder; an earlier stream is told to end.
 *
 * When the id has no listener and no slot is free, a listener with no
 * stream is reclaimed (removed, not retired) for it: the oldest of those
 * that never delivered an event, else the one dormant longest. The same
 * when @a client already made max_listeners listeners: the oldest of its
 * own without a stream goes. A listener with a stream is never taken.
 * @param client who connects, and its bounds; NULL: not counted
 * @param last_event_id resume point given by the client, or NULL: then
 *        the events queued since the listener's last delivered one. Older
 *        than the listener's creation (it was reclaimed or cleaned up and
 *        made again), what lay between is reported missed.
 * @param created out: 1 if the listener was new
 * @return APR_SUCCESS; APR_ENOSPC every slot holds a stream; APR_EAGAIN
 *         child table full; APR_EEXIST the id was retired (disconnected)
 *         and may not return yet; SSE_ECLIENT_STREAMS @a client holds
 *         max_streams streams already (taking over a stream of its own
 *         is not a new one); SSE_ECLIENT_LISTENERS every listener
 *         @a client may make holds a stream. A refusal changes nothing.
 */
apr_status_t sse_registry_connect(sse_registry_t *reg, const char *id,
                                  apr_uint32_t pid,
                                  const sse_client_t *client,
                                  apr_int64_t now_ms,
                                  const apr_uint64_t *last_event_id,
                                  sse_hold_t *hold, int *created);

/** Listeners and open streams of a client address (for tests and status):
 * APR_SUCCESS, or APR_ENOENT when it holds neither. */
apr_status_t sse_registry_client_counts(
    sse_registry_t *reg, const unsigned char addr[SSE_CLIENT_ADDR_LEN],
    apr_uint32_t *listeners, apr_uint32_t *streams);

/**
 * Does this thread hold a registry's mutex now? For assertions: under
 * it, nothing writes to a client, sends a wake-up or runs code that could
 * (the glue checks this where it does I/O, in -DSSE_CHECKS builds).
 */
int sse_registry_lock_held(void);

/**
 * Call @a enter before this process takes any registry mutex and
 * @a leave once it released it (or failed to take it): for what must not
 * happen inside a hold, such as a signal handler that ends the process
 * (the glue blocks them under prefork). NULL, NULL: none.
 */
void sse_registry_set_lock_guard(void (*enter)(void), void (*leave)(void));

/** Sends a wake-up datagram to child @a pid (the glue's; never called
 * under a registry mutex). */
typedef void sse_waker_fn(apr_uint32_t pid);

/**
 * Wake-ups: every publish (notify, completion, a stream told to end, a
 * bus entry applied) raises the wake flag of the children that hold its
 * targets; once the publishing thread releases its last registry mutex,
 * @a fn is called for each of those whose flag was clear (and, should a
 * hold have raised more flags than it can list, for every child that
 * holds streams). NULL: none sent (the flags stay raised). Set once per
 * process, before any publish.
 */
void sse_registry_set_waker(sse_waker_fn *fn);

/**
 * The dispatcher of child @a pid takes its wake-up: it clears the child's
 * flag, and must read the ring's head (sse_registry_head) only after
 * this, so that a publish after the clear sends a datagram and one before
 * it is in what the read sees. @a hint caches the child's entry between
 * calls (start it at 0). No mutex.
 */
void sse_registry_wake_taken(sse_registry_t *reg, apr_uint32_t pid,
                             apr_uint32_t *hint);

/**
 * Report every failure to take or release the mutex to @a fn (the glue
 * logs it): calls whose result carries no status still fail loudly.
 */
void sse_registry_set_lock_error(sse_registry_t *reg, sse_lock_error_fn *fn,
                                 void *baton);

/**
 * The stream ended: the listener stays, resumable from @a sent.
 * @return APR_SUCCESS, or the mutex's error (nothing was recorded)
 */
apr_status_t sse_registry_release(sse_registry_t *reg,
                                  const sse_hold_t *hold, apr_uint64_t sent,
                                  apr_int64_t now_ms);

/**
 * Record that the stream delivered everything up to @a sent, @a count
 * events since its last ack.
 * @param missed_from, missed_to out: events of this listener that were
 *        overwritten in the ring before its stream copied them, not yet
 *        reported (0, 0 when none)
 * @return APR_SUCCESS, or APR_EOF when the stream no longer holds its
 *         listener (taken over or removed): it must end
 */
apr_status_t sse_registry_ack(sse_registry_t *reg, const sse_hold_t *hold,
                              apr_uint64_t sent, int count,
                              apr_int64_t now_ms, apr_uint64_t *missed_from,
                              apr_uint64_t *missed_to);

/**
 * Copy up to @a max events for @a hold with seq > @a after, in order: the
 * first @a max of them; call again from the last one copied for more.
 * Walks the chains of the listener's name and keys, not the ring: it
 * costs its keys plus the listener's entries newer than @a after (all of
 * them, even when more than @a max), never the entries of others.
 * @param n    out: events copied
 * @return APR_SUCCESS, APR_EOF if the stream no longer holds its listener
 */
apr_status_t sse_registry_read(sse_registry_t *reg, const sse_hold_t *hold,
                               apr_uint64_t after, sse_event_t *evs, int max,
                               int *n);

/**
 * Copy the entries of sequence numbers @a seqs for the stream @a hold
 * (those still in the ring; the others are skipped, and counted missed).
 * @param n in: count of seqs; out: events copied (0 if @a hold is stale)
 */
void sse_registry_fetch(sse_registry_t *reg, const sse_hold_t *hold,
                        const apr_uint64_t *seqs, sse_event_t *evs, int *n);

/**
 * Route entries [@a from, @a to) to the streams of process @a pid, calling
 * @a fn under the mutex for each target. Costs the entries of the range
 * still in the ring and their targets; a range that starts before the
 * ring's oldest entry is not walked there.
 * @return the number of entries in the range that were already overwritten
 */
apr_uint64_t sse_registry_route(sse_registry_t *reg, apr_uint64_t from,
                                apr_uint64_t to, apr_uint32_t pid,
                                sse_route_fn *fn, void *baton);

/** The next sequence number (read without the mutex). */
apr_uint64_t sse_registry_head(sse_registry_t *reg);

/** Add a listen key. APR_ENOENT unknown id; APR_ENOSPC too many keys. */
apr_status_t sse_registry_listen(sse_registry_t *reg, const char *id,
                                 const char *key, apr_int64_t now_ms);

/**
 * sse_registry_listen(), and say whether it changed the listener.
 * @param added set to 1 when this call added @a key to the listener, 0
 *        when it held the key already or nothing was added; may be NULL
 */
apr_status_t sse_registry_listen_ex(sse_registry_t *reg, const char *id,
                                    const char *key, apr_int64_t now_ms,
                                    int *added);

/** Publish `notify^key` to every holder of @a key. */
apr_status_t sse_registry_notify_key(sse_registry_t *reg, const char *key,
                                     apr_int64_t now_ms, int *delivered);

/**
 * Publish to every holder of @a key an event that carries @a payload
 * (JSON text, sse_frame_payload(); @a plen bytes, 0: none, as
 * sse_registry_notify_key()). The bytes go to the payloads' ring, the
 * event points at them.
 * @return as sse_registry_notify_key(); APR_ENOSPC if @a plen is more
 *         than a quarter of the payload ring
 */
apr_status_t sse_registry_notify_key_payload(sse_registry_t *reg,
                                             const char *key,
                                             const char *payload,
                                             apr_size_t plen,
                                             apr_int64_t now_ms,
                                             int *delivered);

/**
 * Publish a completion of @a taskid to every listener with the same name
 * as @a id. APR_ENOENT when @a id has no listener.
 */
apr_status_t sse_registry_notify_completion(sse_registry_t *reg,
                                            const char *id,
                                            const char *taskid,
                                            apr_int64_t now_ms,
                                            int *delivered);

/** A completion that carries @a payload, as
 * sse_registry_notify_key_payload(). */
apr_status_t sse_registry_notify_completion_payload(sse_registry_t *reg,
                                                    const char *id,
                                                    const char *taskid,
                                                    const char *payload,
                                                    apr_size_t plen,
                                                    apr_int64_t now_ms,
                                                    int *delivered);

/**
 * Copy the payload of @a ev (pay_len bytes) into @a buf, for the stream
 * of @a hold.
 * @return APR_SUCCESS; APR_EOF when newer payloads have overwritten it:
 *         the event is lost for that stream, and counted missed, for its
 *         listener while @a hold still holds it and in the registry's
 *         stats, as an event the ring overwrote
 */
apr_status_t sse_registry_payload(sse_registry_t *reg,
                                  const sse_hold_t *hold,
                                  const sse_event_t *ev, char *buf);

/**
 * The data line of entry @a ev for the stream of @a recipient: a key's
 * notification as stored; a completion framed with the recipient's id.
 * @param buf  SSE_DATA_MAX bytes of room, used for completions
 * @param data out: the payload (in @a ev or @a buf), @a len its length
 */
apr_status_t sse_registry_event_data(const sse_event_t *ev,
                                     const char *recipient, char *buf,
                                     const char **data, apr_size_t *len);

/**
 * Remove one listener and end its stream; the id is retired (connect
 * refuses it) until @a retire_until_ms. APR_ENOENT if unknown.
 * @param ended_pid out: the process whose stream ends (to wake), or 0
 */
apr_status_t sse_registry_unregister(sse_registry_t *reg, const char *id,
                                     apr_int64_t retire_until_ms,
                                     apr_uint32_t *ended_pid);

/** Remove every listener, retire their ids, end every stream. */
apr_status_t sse_registry_clear(sse_registry_t *reg,
                                apr_int64_t retire_until_ms, int *removed);

/**
 * Remove listeners with no stream and no activity for @a dormant_ms.
 */
apr_status_t sse_registry_cleanup(sse_registry_t *reg, apr_int64_t now_ms,
                                  apr_int64_t dormant_ms, int *removed);

/**
 * Process @a pid is gone: its streams' listeners become resumable (their
 * activity is now, so cleanup gives their clients time to come back) and
 * its wake-up entry is dropped.
 * @return APR_SUCCESS, or APR_EBUSY on a non-blocking handle when the
 *         mutex is taken (try again later)
 */
apr_status_t sse_registry_child_gone(sse_registry_t *reg, apr_uint32_t pid,
                                     apr_int64_t now_ms);

/**
 * Pids of the processes that hold streams now (read without the mutex: a
 * stale answer is covered by the dispatchers' periodic check), from child
 * table entry @a *from on; call again until it returns 0.
 * @param any  1: every process that ever held one (to reach streams just
 *             ended by a clear); 0: those holding streams now
 * @param from in/out: where to go on
 * @return the count written to @a pids (at most @a max)
 */
int sse_registry_holders(sse_registry_t *reg, int any, apr_uint32_t *from,
                         apr_uint32_t *pids, int max);

/**
 * Make this handle only try the mutex, never wait for it: every call then
 * fails with APR_EBUSY while another process holds it. For the parent,
 * which must never block on a child.
 */
void sse_registry_set_nonblocking(sse_registry_t *reg);

/**
 * Make connects through this handle refuse a new stream (SSE_ESTREAMS)
 * while @a max streams of the registry are open, counted under the mutex
 * so that concurrent connects never pass it; taking over an open stream
 * is not a new one. 0: no bound (the default). For where every stream
 * holds a worker of its own (prefork).
 */
void sse_registry_set_stream_bound(sse_registry_t *reg, apr_uint32_t max);

/**
 * The listeners as the JSON object of list-registrants, in slot order.
 * The table is copied a few hundred slots per hold of the mutex (compact
 * records: the fields the JSON shows), so a large table never holds off
 * other requests for long; listeners may come and go between two holds.
 * What the answer promises: a listener present during the whole call is
 * listed, once; one removed during the call may or may not be; one
 * registered after the call began is not; no id is listed twice. Each
 * listener's fields are as they were when its batch was copied.
 * @param out NUL-terminated, allocated from @a p (freed with it)
 */
apr_status_t sse_registry_json(sse_registry_t *reg, apr_pool_t *p,
                               char **out);

/** A copy of the counters, with the ring's head and oldest entry. */
void sse_registry_stats(sse_registry_t *reg, sse_stats_t *st);

/** Count a stream ended because its client stopped reading. */
void sse_registry_count_slow(sse_registry_t *reg);

/**
 * The processes that hold streams now, with how many each.
 * @return the count written to @a out (at most @a max)
 */
int sse_registry_children(sse_registry_t *reg, sse_child_stat_t *out,
                          int max);

#endif /* SSE_REGISTRY_H */
