/**
 * @file mod_sse_ops.h
 * @brief Every operation, shared by the routes and the optional functions
 *        (mod_sse_ops.c). Glue-internal.
 */
#ifndef MOD_SSE_OPS_H
#define MOD_SSE_OPS_H

#include "mod_sse_mgr_private.h"

apr_status_t sse_op_make_id(server_rec *s, apr_pool_t *p, const char *name,
                            const char **id);
apr_status_t sse_op_check_id(server_rec *s, const char *id);
apr_status_t sse_op_listen(server_rec *s, const char *id, const char *key);
apr_status_t sse_op_notify_completions(server_rec *s, const char *id,
                                       const char *taskid, int *delivered);
apr_status_t sse_op_notify_listeners(server_rec *s, const char *key,
                                     int *delivered);
/** A message's payload: JSON text, one line (sse_frame_payload()). */
typedef struct {
    const char *json;           /* NULL: none */
    apr_size_t len;
} sse_payload_t;

/** A body of @a len bytes as a payload (none when 0), within
 * SSEMaxMessage: APR_EINVAL / APR_ENOSPC with a reason for the client. */
apr_status_t sse_op_payload(apr_pool_t *p, const char *body, apr_size_t len,
                            int is_json, sse_payload_t *pl,
                            const char **reason);
/** The notify operations with a payload (@a pl NULL: none). */
apr_status_t sse_op_complete(server_rec *s, const char *id,
                             const char *taskid, const sse_payload_t *pl,
                             int *delivered);
apr_status_t sse_op_notify(server_rec *s, const char *key,
                           const sse_payload_t *pl, int *delivered);
apr_status_t sse_op_unregister(server_rec *s, const char *id);
apr_status_t sse_op_unregister_all(server_rec *s);
apr_status_t sse_op_cleanup(server_rec *s, int *removed);
apr_status_t sse_op_listeners_json(server_rec *s, apr_pool_t *p,
                                   const char **json);
/** The set of listeners changed: tell the SSENotifyListenersChanged key. */
void sse_op_changed(server_rec *s);
void sse_ops_register(void);

#endif /* MOD_SSE_OPS_H */
