/**
 * @file mod_sse_dispatch.h
 * @brief Between the child's dispatcher (mod_sse_dispatch.c) and the
 *        streams it feeds (mod_sse_stream.c). Glue-internal.
 */
#ifndef MOD_SSE_DISPATCH_H
#define MOD_SSE_DISPATCH_H

#include "mod_sse_mgr_private.h"

#define SSE_QUEUE_LEN   64      /* queued seqs per stream before resync */

typedef struct sse_stream_t sse_stream_t;

/** Who runs a stream (changes only under the dispatcher's mutex). */
typedef enum {
    SSE_MODE_THREAD = 0,    /**< its request's thread holds it, woken
                                 through its pollset */
    SSE_MODE_HANDOFF,       /**< event MPM: the handler is returning
                                 SUSPENDED; queue, wake no one */
    SSE_MODE_PARKED         /**< event MPM: the dispatcher owns it */
} sse_mode_e;

struct sse_stream_t {
    request_rec *r;             /* NULL once parked (the request ended) */
    conn_rec *c;
    ap_filter_t *out;           /* r->output_filters, or c's when parked */
    const char *id;
    sse_registry_t *reg;
    sse_local_t *local;         /* opaque: the dispatcher's */
    sse_hold_t hold;
    apr_pollset_t *ps;          /* THREAD mode only */
    apr_bucket_brigade *bb;
    apr_pool_t *scratch;        /* cleared after every batch */
    apr_uint64_t sent;          /* last seq handed to the filters */
    apr_uint64_t written;       /* last seq the socket took: delivered,
                                   and where the listener resumes */
    int unconfirmed;            /* events sent but not yet written */
    apr_time_t next_beat;
    /* under disp.mu: the dispatcher's queue for it, and its lists */
    apr_uint64_t queue[SSE_QUEUE_LEN];
    int qlen;
    int resync;
    int ending;
    sse_mode_e mode;
    sse_stream_t *next;         /* same slot: the local index */
    int on_wake;                /* on disp.to_wake, by wake_next */
    sse_stream_t *wake_next;
    int on_adopt;               /* on disp.adopt, by adopt_next */
    sse_stream_t *adopt_next;
    int on_serve;               /* on disp.serve, by serve_next */
    sse_stream_t *serve_next;
    /* parked: the dispatcher thread's own */
    apr_pollfd_t pfd;
    apr_time_t parked_at;
    int blocked;                /* its socket is full: no writes until
                                   it drains; next_beat is the deadline */
    int catch_up;               /* events came while blocked: send the
                                   ring's backlog from sent once drained */
    sse_stream_t *beat_prev, *beat_next;    /* by next_beat */
    int on_closing;             /* ended, on park.closing by close_next:
                                   never served again */
    sse_stream_t *close_next;
};

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

/** This child's pid, as streams register under it. */
apr_uint32_t sse_dispatch_pid(void);

/** Hand a stream in SSE_MODE_HANDOFF to the dispatcher (suspend hook). */
void sse_dispatch_adopt(sse_stream_t *st);

/** May a stream of @a l start here (a dispatcher runs, not ending)? */
int sse_dispatch_ready(const sse_local_t *l);

/** Does this child end every stream now (the server restarts or stops)?
 * A stream asked for now is sent elsewhere: reconnect, not fail. */
int sse_dispatch_ending(void);

/* mod_sse_stream.c: what a stream does, on whichever thread runs it */

/** Write what the dispatcher queued; @return non-success: end it. */
apr_status_t sse_stream_serve(sse_stream_t *st);

/** Write a heartbeat comment when one is due by @a due_by. */
apr_status_t sse_stream_beat(sse_stream_t *st, apr_time_t due_by);

/** Did the client hang up or speak (its descriptor polled @a ev)?
 * @return APR_SUCCESS if not; else why the stream must end */
apr_status_t sse_stream_client_gone(sse_stream_t *st, apr_int16_t ev);

/** The socket took all that was sent: count it delivered. */
apr_status_t sse_stream_written(sse_stream_t *st);

/** Out of the index, listener resumable; logs how it ended. */
void sse_stream_finish(sse_stream_t *st, apr_status_t rv);

/* mod_sse_park.c: streams parked on the event MPM */

/** May this request's stream be parked (event MPM, HTTP/1.x)? */
int sse_park_possible(request_rec *r);

/** The stream's opening is written: park it when the handler returns. */
int sse_park(sse_stream_t *st);

void sse_park_register_hooks(void);

/** Write @a st->bb of a parked stream without blocking: what the socket
 * does not take waits in the core output filter, and the stream is
 * blocked until it drains (or ended after Timeout). */
apr_status_t sse_park_write(sse_stream_t *st);

/** Parent, at start-up: log when the MPM takes fewer streams than
 * @a max_listeners. */
void sse_park_check_capacity(server_rec *s, int max_listeners);

/* The dispatcher thread's side */
apr_status_t sse_park_init(apr_pool_t *pchild, apr_pollset_t *ps);
void sse_park_adopted(sse_stream_t *st);
void sse_park_event(sse_stream_t *st, apr_int16_t ev);
void sse_park_serve(sse_stream_t *st);
/** Heartbeats and delayed closes; @return ms until next due (≤ max). */
apr_interval_time_t sse_park_tick(apr_interval_time_t max);
/** End every parked stream (stopping); @return how many remain open. */
int sse_park_end_all(void);

#endif /* MOD_SSE_DISPATCH_H */
