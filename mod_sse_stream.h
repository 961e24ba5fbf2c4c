/**
 * @file mod_sse_stream.h
 * @brief A stream: its record, shared by its owners in turn (the
 *        handler's thread, the dispatcher), and what it does on whichever
 *        thread runs it (mod_sse_stream.c). Glue-internal.
 */
#ifndef MOD_SSE_STREAM_H
#define MOD_SSE_STREAM_H

#include <util_filter.h>
#include <apr_poll.h>
#include <http_log.h>

#include "mod_sse_mgr_private.h"
#include "src/sse_timer.h"

#define SSE_QUEUE_LEN   64      /* queued seqs per stream before resync */
#define SSE_BATCH       16      /* events copied per lock hold, written
                                   per flush */

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
    conn_rec *c;                /* NULL once owned (the connection ended) */
    ap_filter_t *out;           /* r->output_filters, or c's when parked */
    const char *id;
    server_rec *server;         /* whose registry */
    sse_registry_t *reg;
    sse_local_t *local;         /* opaque: the dispatcher's */
    sse_hold_t hold;
    apr_pollset_t *ps;          /* THREAD mode only */
    apr_bucket_brigade *bb;
    apr_pool_t *scratch;        /* cleared after every batch */
    int scratch_lent;           /* 1, 2: scratch is the request's pool
                                   (a stream about to park): its first
                                   flush leaves it, its second makes
                                   a pool of its own (mod_sse_stream.c) */
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
    sse_timer_entry_t beat;     /* in the dispatcher's heap of parked
                                   streams, due at next_beat */
    int on_closing;             /* ended, on park.closing by close_next:
                                   never served again */
    sse_stream_t *close_next;
    apr_interval_time_t timeout;    /* how long a blocked stream waits */
    int on_settle;              /* parked, on park.settling until it may
                                   be owned */
    sse_stream_t *settle_prev, *settle_next;
    /* owned (mod_sse_own.c): the dispatcher took the socket and the
     * MPM's connection is gone */
    int owned;
    int own_at_close;           /* its request ends as any other; the
                                   socket is kept as the MPM closes
                                   the connection (mod_sse_park.c) */
    int own_fd;                 /* the duplicate, until sse_own_start */
    apr_socket_t *sock;
    apr_memnode_t *kept;        /* what the full socket did not take */
    const char *kept_at;
    apr_size_t kept_len;
    sse_stream_t *free_next;    /* a spare record */
    char id_buf[SSE_ID_MAX + 1];    /* st->id of a record of mod_sse_own */
    char client[64];            /* owned: its client's address and port,
                                   for its log lines */
};

/** Log about @a st: through its connection while it has one, else its
 * server's log; either way with the client's address where httpd puts it
 * (after the status, before the message). */
#define SSE_STREAM_LOG(st, level, rv, ...)                                  \
    do {                                                                   \
        if ((st)->c) {                                                     \
            ap_log_cerror(APLOG_MARK, level, rv, (st)->c, __VA_ARGS__);    \
        }                                                                  \
        else if (APLOG_IS_LEVEL((st)->server, level)) {                    \
            sse_stream_log_owned(APLOG_MARK, level, rv, st, __VA_ARGS__);  \
        }                                                                  \
    } while (0)

/** SSE_STREAM_LOG of a stream without a connection (owned). */
void sse_stream_log_owned(const char *file, int line, int module_index,
                          int level, apr_status_t rv, const sse_stream_t *st,
                          const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));


/** Hold a stream for @a id on this request until it ends. */
int sse_stream_run(request_rec *r, const char *id);


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

#endif /* MOD_SSE_STREAM_H */
