/**
 * @file mod_sse_mgr.h
 * @brief mod_sse_mgr's public C API: one APR optional function per manager
 *        operation, for other httpd modules.
 *
 * Retrieve each with APR_RETRIEVE_OPTIONAL_FN() in an optional_fn_retrieve
 * hook (or later) and tolerate NULL: mod_sse_mgr may not be loaded.
 * Every function works from any request in any child process, under
 * prefork, worker and event MPMs, and acts on the registry of the virtual
 * host @a s (each SSEPrefix has its own).
 *
 * Return codes, common to all:
 * - APR_SUCCESS   done
 * - APR_EINVAL    a name, key or task id is not 1..64 characters of
 *                 [A-Za-z0-9._~-] starting with a letter or digit, or an id
 *                 does not have the form `<name>_<suffix>`
 * - APR_ENOENT    the id was not issued by this server, or has no listener
 * - APR_ENOSPC    a bound was reached (listen keys per listener)
 * - APR_EGENERAL  mod_sse_mgr has no shared state in this process (it
 *                 failed to start); see the error log
 * - SSE_MGR_EBUS   with SSEBus: Redis did not answer in time (the
 *                 operation did not happen); try again later
 * - SSE_MGR_EUNSURE with SSEBus: Redis went away while it ran this
 *                 publish and no master answered within 15 s: it may
 *                 have been delivered (sending it again may deliver it
 *                 twice)
 */
#ifndef MOD_SSE_MGR_H
#define MOD_SSE_MGR_H

#include <apr_optional.h>
#include <httpd.h>

/** Defined when the publish functions below are available. */
#define SSE_MGR_HAS_PUBLISH 1
/** The header declares the payload functions (0.1.0). */
#define SSE_MGR_HAS_PAYLOAD 1
/** With SSEBus: Redis did not answer in time, nothing happened. */
#define SSE_MGR_EBUS (APR_OS_START_USERERR + 180)
/** With SSEBus: a publish's outcome is unknown (see above). */
#define SSE_MGR_EUNSURE (APR_OS_START_USERERR + 182)

/**
 * Issue a new unforgeable id `<name>_<suffix>` for @a name.
 * @param s    the virtual host whose registry issues it
 * @param p    pool for @a id
 * @param name the user or client name
 * @param id   out: the id
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_make_id,
                        (server_rec *s, apr_pool_t *p, const char *name,
                         const char **id));

/**
 * Is @a id registered (does it have a listener, connected or not)?
 * @return APR_SUCCESS if registered, APR_ENOENT if not
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_is_registered,
                        (server_rec *s, const char *id));

/**
 * Subscribe listener @a id to @a key (notify-listeners reaches it). A key
 * new to the listener sends the SSENotifyListenersChanged key, if set.
 * @return APR_ENOSPC when the listener already holds its maximum of keys
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_listen,
                        (server_rec *s, const char *id, const char *key));

/**
 * Send `completed^{timestamp,id,taskid}` to every listener whose id has
 * the same name as @a id (all tabs of one user).
 * @param delivered out: listeners it was queued for (may be NULL)
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_notify_completions,
                        (server_rec *s, const char *id, const char *taskid,
                         int *delivered));

/**
 * Send `notify^<key>` to every listener holding @a key.
 * @param delivered out: listeners it was queued for (may be NULL)
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_notify_listeners,
                        (server_rec *s, const char *key, int *delivered));

/**
 * As sse_mgr_notify_completions(), with a payload: the listeners get the
 * named event `completed` (which the original client ignores) with data
 * `{"timestamp":…,"id":…,"taskid":…,"data":<payload>}` (docs/api.md).
 * @param p       pool for the payload's JSON while it is made
 * @param payload @a len bytes: JSON text when @a is_json (checked, made
 *                compact), else any UTF-8 text (carried as a JSON string)
 * @return also APR_EINVAL when the payload is not JSON (is_json) or not
 *         UTF-8, APR_ENOSPC when it is more than SSEMaxMessage bytes as
 *         JSON; a payload of length 0 is no payload
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_notify_completions_payload,
                        (server_rec *s, apr_pool_t *p, const char *id,
                         const char *taskid, const char *payload,
                         apr_size_t len, int is_json, int *delivered));

/**
 * As sse_mgr_notify_listeners(), with a payload: the named event
 * `notify` with data `{"key":<key>,"data":<payload>}`. Parameters and
 * codes as sse_mgr_notify_completions_payload().
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_notify_listeners_payload,
                        (server_rec *s, apr_pool_t *p, const char *key,
                         const char *payload, apr_size_t len, int is_json,
                         int *delivered));

/** Remove listener @a id and end its stream. */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_unregister,
                        (server_rec *s, const char *id));

/** Remove every listener and end every stream of @a s's registry. */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_unregister_all,
                        (server_rec *s));

/** Remove dormant listeners now (no stream, idle for SSEDormantTimeout). */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_trigger_cleanup,
                        (server_rec *s));

/**
 * The listeners as JSON, as list-registrants returns them.
 * @param json out: NUL-terminated, allocated from @a p
 */
APR_DECLARE_OPTIONAL_FN(apr_status_t, sse_mgr_listeners_json,
                        (server_rec *s, apr_pool_t *p, const char **json));

#endif /* MOD_SSE_MGR_H */
