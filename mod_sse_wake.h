/**
 * @file mod_sse_wake.h
 * @brief Wake-ups between processes (mod_sse_wake.c): each child's
 *        datagram socket, and sending one byte to a child. Glue-internal.
 */
#ifndef MOD_SSE_WAKE_H
#define MOD_SSE_WAKE_H

#include "mod_sse_mgr_private.h"

/** Parent, each generation: the sockets' directory (made private to the
 * httpd user), the sending socket. */
apr_status_t sse_wake_post_config(apr_pool_t *pconf, server_rec *s);

/** Child: bind this child's wake-up socket; @a fd out, closed (and its
 * name removed) with @a pchild. */
apr_status_t sse_wake_bind(apr_pool_t *pchild, apr_uint32_t pid, int *fd);

/** Send one byte to child @a pid, never blocking (a full socket already
 * has a wake-up pending). */
void sse_wake_pid(apr_uint32_t pid);

/** Wake the children holding streams of @a reg (@a any: every child that
 * has held some). */
void sse_wake_holders(sse_registry_t *reg, int any);

#endif /* MOD_SSE_WAKE_H */
