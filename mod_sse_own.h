/**
 * @file mod_sse_own.h
 * @brief Parked streams whose socket the dispatcher owns (mod_sse_own.c).
 *        Glue-internal.
 */
#ifndef MOD_SSE_OWN_H
#define MOD_SSE_OWN_H

#include "mod_sse_stream.h"

/** Child start (from sse_park_init): the records and the dispatcher's
 * writing tools. */
apr_status_t sse_own_init(apr_pool_t *pchild);

/** A request's thread: a zeroed record for a stream that may park on
 * @a c. It goes back to the spare records with @a c's pool, unless the
 * dispatcher owns the stream by then (sse_own_close gives it back). */
sse_stream_t *sse_own_record(conn_rec *c);

/** May the dispatcher own @a st's socket: nothing between the stream and
 * the socket but the core output filter (no TLS, no filter that changes
 * bytes), nothing held back, and a record of mod_sse_own? */
int sse_own_possible(const sse_stream_t *st);

/** The thread that holds @a st's connection, which is about to go: keep
 * a duplicate of its descriptor (st->own_fd) and what the stream's log
 * lines need, and keep the record from going with the connection's
 * pool. On success st->c and st->bb are NULL; on failure nothing
 * changed. */
apr_status_t sse_own_leave(sse_stream_t *st);

/* The dispatcher thread's side */

/** After sse_own_leave: the stream writes and reads st->sock itself. */
void sse_own_start(sse_stream_t *st);

/** Take @a st's socket (sse_own_leave, sse_own_start) and free its
 * connection: the MPM counts it gone. On failure nothing changed. */
apr_status_t sse_own_take(sse_stream_t *st);

/** Send st->bb; what the socket does not take is kept (st->kept). */
apr_status_t sse_own_write(sse_stream_t *st);

/** Send what is kept, as far as the socket takes it now. */
apr_status_t sse_own_drain(sse_stream_t *st);

/** Did the client hang up or speak (its socket polled @a ev)? */
apr_status_t sse_own_client_gone(sse_stream_t *st, apr_int16_t ev);

/** Send what is kept once more (never blocking), close the socket, and
 * give the record back. */
void sse_own_close(sse_stream_t *st);

/** Why @a sock polled in error: its SO_ERROR, else APR_EOF. */
apr_status_t sse_own_socket_error(apr_socket_t *sock);

#endif /* MOD_SSE_OWN_H */
