/**
 * @file mod_sse_bus.h
 * @brief SSEBus in the glue (mod_sse_bus.c, mod_sse_bus_ops.c,
 *        mod_sse_bus_threads.c): the directive, each child's Redis
 *        connections, the ingest thread, and the operations of
 *        mod_sse_ops.c when a bus is configured. Glue-internal.
 */
#ifndef MOD_SSE_BUS_H
#define MOD_SSE_BUS_H

#include "mod_sse_mgr_private.h"
#include "include/mod_sse_mgr.h"
#include "src/sse_bus.h"

/** A command to the bus failed: answer 503 + Retry-After (the C API's
 * SSE_MGR_EBUS). */
#define SSE_EBUS_DOWN SSE_MGR_EBUS

/** Redis went away while it ran a publish and no master answered again
 * in time: it may have happened (504; the C API's SSE_MGR_EUNSURE). */
#define SSE_EUNSURE SSE_MGR_EUNSURE

/** Seconds a client is asked to wait when the bus is down. */
#define SSE_BUS_RETRY_AFTER "2"

const char *sse_bus_cmd(cmd_parms *cmd, void *dc, const char *arg);
void sse_bus_pre_config(void);
/** Is a bus configured (this generation)? */
int sse_bus_on(void);
/** With -t too: SSEBus needs SSESecret. */
apr_status_t sse_bus_check_config(server_rec *s);
apr_status_t sse_bus_post_config(apr_pool_t *pconf, server_rec *s);
void sse_bus_child_init(apr_pool_t *pchild, server_rec *s);

apr_status_t sse_bus_notify(server_rec *s, const char *key,
                            const char *payload, apr_size_t plen,
                            int *delivered);
apr_status_t sse_bus_complete(server_rec *s, const char *id,
                              const char *taskid, const char *payload,
                              apr_size_t plen, int *delivered);
apr_status_t sse_bus_listen(server_rec *s, const char *id, const char *key,
                            int *added);
apr_status_t sse_bus_unregister(server_rec *s, const char *id,
                                apr_int64_t retire_ms);
apr_status_t sse_bus_clear(server_rec *s, apr_int64_t retire_ms,
                           int *removed);
apr_status_t sse_bus_cleanup(server_rec *s, int *removed);
apr_status_t sse_bus_list(server_rec *s, apr_pool_t *p, const char **json);
apr_status_t sse_bus_lookup(server_rec *s, const char *id);

/** A stream of @a id opens on this host (sse_registry_bus_connect()
 * after the log's CONNECT entry is applied here). */
apr_status_t sse_bus_connect(server_rec *s, apr_pool_t *p, const char *id,
                             apr_uint32_t pid, const sse_client_t *client,
                             const apr_uint64_t *last_event_id,
                             sse_hold_t *hold, int *created);

/** The stream @a hold of @a id ended after delivering @a sent. */
void sse_bus_release(server_rec *s, const char *id, const sse_hold_t *hold,
                     apr_uint64_t sent);

/** server-status lines of the registry's bus (?auto), if any. */
void sse_bus_status(request_rec *r, sse_registry_t *reg, int n, int html);

#endif /* MOD_SSE_BUS_H */
