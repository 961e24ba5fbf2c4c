/**
 * @file mod_sse_dispatch.h
 * @brief The child's dispatcher (mod_sse_dispatch.c): wake-ups between
 *        processes, the local index of this child's streams, and their
 *        queues. Glue-internal.
 */
#ifndef MOD_SSE_DISPATCH_H
#define MOD_SSE_DISPATCH_H

#include "mod_sse_stream.h"

apr_status_t sse_dispatch_post_config(apr_pool_t *pconf, server_rec *s);
apr_status_t sse_dispatch_child_init(apr_pool_t *pchild, server_rec *s);
void sse_dispatch_child_stopping(apr_pool_t *pchild, int graceful);

/** Event MPM: a draining child (told to stop while the server runs on)
 * stays until the clients of its streams leave, even once the MPM
 * counts no connection of its own (mod_sse_own.c); register after
 * every other cleanup of the child pool that the streams need. */
void sse_dispatch_keep_draining(apr_pool_t *pchild);
/** Parent, at start-up: log when httpd may stop children with streams. */
void sse_dispatch_check_mpm(server_rec *s);
/** Wake every process that has held streams of @a reg (after a clear). */
void sse_dispatch_wake_all(sse_registry_t *reg);
/** Wake process @a pid (0: none), e.g. the holder of a stream just ended. */
void sse_dispatch_wake_pid(apr_uint32_t pid);
/** Hold a stream for @a id on this request until it ends. */
int sse_stream_run(request_rec *r, const char *id);

/** Put @a st in its registry's index: from now on it is routed to. */
void sse_dispatch_attach(sse_stream_t *st);

/** Take @a st out of the index (and the to-wake list) before it goes. */
void sse_dispatch_detach(sse_stream_t *st);

/**
 * What the dispatcher queued for @a st since the last call.
 * @param seqs out: SSE_QUEUE_LEN room; @a n how many
 * @param resync out: the queue overflowed, read the ring instead
 * @return 1 when the stream must end
 */
int sse_dispatch_take(sse_stream_t *st, apr_uint64_t *seqs, int *n,
                      int *resync);

/**
 * A parked stream's entries @a seqs (@a n of them) as the dispatcher
 * copied them while routing (the registry counted them taken then), into
 * @a evs. Dispatcher thread only.
 * @return 1 if it had every one; 0: fetch them from the ring
 */
int sse_dispatch_copies(const sse_stream_t *st, const apr_uint64_t *seqs,
                        int n, sse_event_t *evs);

/** This child's pid, as streams register under it. */
apr_uint32_t sse_dispatch_pid(void);

/** Hand a stream in SSE_MODE_HANDOFF to the dispatcher (suspend hook). */
void sse_dispatch_adopt(sse_stream_t *st);

/** May a stream of @a l start here (a dispatcher runs, not ending)? */
int sse_dispatch_ready(const sse_local_t *l);

/** Does this child end every stream now (the server restarts or stops)?
 * A stream asked for now is sent elsewhere: reconnect, not fail. */
int sse_dispatch_ending(void);

/** Has this child room for one more stream within its descriptor limit
 * (RLIMIT_NOFILE, less a margin for its other descriptors)? When not,
 * it says so (notice SSE00219, at most once a minute). */
int sse_dispatch_room(server_rec *s);

/** May the dispatcher take one more stream's socket over? Not once the
 * child is within the MPM's own connection limit of its descriptor
 * room: streams it accepts then stay connections of the MPM's, which
 * stops accepting in this child at its limit, and new connections go
 * to other children (the event MPM does not share them out evenly). */
int sse_dispatch_may_own(void);

#endif /* MOD_SSE_DISPATCH_H */
