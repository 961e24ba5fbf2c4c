/**
 * @file mod_sse_state.h
 * @brief The shared segment and the mutex, across generations (mod_sse_state.c). Glue-internal.
 */
#ifndef MOD_SSE_STATE_H
#define MOD_SSE_STATE_H

#include "mod_sse_mgr_private.h"

apr_status_t sse_state_post_config(apr_pool_t *pconf, server_rec *s);
apr_status_t sse_state_check_mutex(apr_pool_t *ptemp, server_rec *s);
apr_status_t sse_state_child_init(apr_pool_t *pchild, server_rec *s);

#endif /* MOD_SSE_STATE_H */
