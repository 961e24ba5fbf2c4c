/**
 * @file mod_sse_handler.h
 * @brief The HTTP routes (mod_sse_handler.c). Glue-internal.
 */
#ifndef MOD_SSE_HANDLER_H
#define MOD_SSE_HANDLER_H

#include "mod_sse_mgr_private.h"

int sse_handler(request_rec *r);
int sse_translate(request_rec *r);
int sse_map_to_storage(request_rec *r);
/** A one-line text/plain answer (no-store), newline added on errors. */
int sse_respond_text(request_rec *r, int status, const char *line);

#endif /* MOD_SSE_HANDLER_H */
