/**
 * @file mod_sse_status.h
 * @brief The registries' section of mod_status's page (mod_sse_status.c). Glue-internal.
 */
#ifndef MOD_SSE_STATUS_H
#define MOD_SSE_STATUS_H

#include "mod_sse_mgr_private.h"

int sse_status_hook(request_rec *r, int flags);

#endif /* MOD_SSE_STATUS_H */
