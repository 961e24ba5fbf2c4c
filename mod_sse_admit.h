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
 * goes; else 503, with Retry-After set. */
int sse_admit_thread(request_rec *r);

/** Compute the bound; say at start-up what it and SSEHTTP2 cost. */
void sse_admit_post_config(server_rec *s);

#endif /* MOD_SSE_ADMIT_H */
