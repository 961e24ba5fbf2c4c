/**
 * @file mod_sse_admit.h
 * @brief Admission of stream requests: HTTP/2 downgrade and the bound on
 *        streams that hold worker threads (mod_sse_admit.c). Glue-internal.
 */
#ifndef MOD_SSE_ADMIT_H
#define MOD_SSE_ADMIT_H

#include "mod_sse_mgr_private.h"

/** OK, or the status that sends a stream asked over HTTP/2 back to
 * HTTP/1.1 (SSEHTTP2 downgrade). */
int sse_admit_h2(request_rec *r);

/** OK: the stream may hold this worker thread until its request's pool
 * goes; else sse_admit_refused(). */
int sse_admit_thread(request_rec *r);

/** Log that the bound is reached, set Retry-After: the status, 503. For
 * a connect refused with SSE_ESTREAMS too. */
int sse_admit_refused(request_rec *r);

/** Under prefork, give each registry handle of this child the bound. */
void sse_admit_child_init(server_rec *s);

/** Compute the bound; say at start-up what it and SSEHTTP2 cost. */
void sse_admit_post_config(server_rec *s);

#endif /* MOD_SSE_ADMIT_H */
