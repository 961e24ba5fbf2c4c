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

struct sse_stream_t {
    request_rec *r;
    const char *id;
    sse_registry_t *reg;
    sse_local_t *local;         /* opaque: the dispatcher's */
    sse_hold_t hold;
    apr_pollset_t *ps;
    apr_bucket_brigade *bb;
    apr_pool_t *scratch;        /* cleared after every batch */
    apr_uint64_t sent;          /* last seq written */
    apr_time_t next_beat;
    /* written by the dispatcher, under disp.mu */
    apr_uint64_t queue[SSE_QUEUE_LEN];
    int qlen;
    int resync;
    int ending;
    int listed;                 /* on the to-wake list */
    sse_stream_t *next;         /* same slot */
    sse_stream_t *wake_next;    /* to-wake list */
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

/** May a stream of @a l start here (a dispatcher runs, not stopping)? */
int sse_dispatch_ready(const sse_local_t *l);

#endif /* MOD_SSE_DISPATCH_H */
