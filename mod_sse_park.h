/**
 * @file mod_sse_park.h
 * @brief Streams parked on the event MPM (mod_sse_park.c). Glue-internal.
 */
#ifndef MOD_SSE_PARK_H
#define MOD_SSE_PARK_H

#include "mod_sse_stream.h"

/** May this request's stream be parked (event MPM, HTTP/1.x)? */
int sse_park_possible(request_rec *r);

/** The stream's opening is written: park it when the handler returns. */
int sse_park(sse_stream_t *st);

void sse_park_register_hooks(void);

/** Write @a st->bb of a parked stream without blocking: what the socket
 * does not take waits in the core output filter, and the stream is
 * blocked until it drains (or ended after Timeout). */
apr_status_t sse_park_write(sse_stream_t *st);

/** Connections the event MPM lets one child hold: ThreadsPerChild x
 * (1 + AsyncRequestWorkerFactor); 0 under another MPM. */
int sse_park_mpm_connections(void);

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

#endif /* MOD_SSE_PARK_H */
