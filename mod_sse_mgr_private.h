/**
 * @file mod_sse_mgr_private.h
 * @brief What the glue files of mod_sse_mgr share. Not a public API.
 */
#ifndef MOD_SSE_MGR_PRIVATE_H
#define MOD_SSE_MGR_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "src/sse_registry.h"

/* The newest httpd interface used: ap_get_pollfd_from_conn() (2.4.58).
 * What else the module relies on is listed in docs/design.md. */
#if !AP_MODULE_MAGIC_AT_LEAST(20120211, 129)
#error "mod_sse_mgr needs httpd 2.4.58 or later"
#endif

/* mod_sse_mgr.c declares the module, which does this itself */
#ifndef SSE_MGR_DECLARING_MODULE
APLOG_USE_MODULE(sse_mgr);
#endif

/** Our own log tags: SSE_LOGNO(00001) -> "SSE00001: " (see next-number). */
#define SSE_LOGNO(n) "SSE" #n ": "

#define SSE_HANDLER       "sse-mgr"
#define SSE_MUTEX_TYPE    "sse-mgr"
#define SSE_RETRY_MS      3000      /**< `retry:` sent on every stream */

/* Defaults: the one place they live (the help strings repeat them). */
#define SSE_DEF_PREFIX          "/sse/"
#define SSE_DEF_MAX_LISTENERS   10000
#define SSE_DEF_DORMANT         3600
#define SSE_DEF_CLEANUP         240
#define SSE_DEF_HEARTBEAT       15
#define SSE_DEF_HISTORY         1024
#define SSE_DEF_ORIGIN          "*"

/** Server-wide settings (main server context only). */
typedef struct {
    int max_listeners;          /* -1: unset */
    int history;
    apr_interval_time_t dormant;
    apr_interval_time_t cleanup;
    apr_interval_time_t heartbeat;
    const char *secret;         /* NULL: random per start */
} sse_global_conf_t;

typedef struct sse_local_t sse_local_t;

/** Per virtual host. */
typedef struct {
    const char *prefix;         /* NULL: unset (inherit) */
    int prefix_set;             /* set in this very context */
    int owner;                  /* this server owns its registry */
    apr_array_header_t *origins; /* SSEAllowOrigin; NULL: "*" */
    const char *changed_key;    /* SSENotifyListenersChanged, or NULL */
    int reg_index;              /* which registry, set in post_config */
    sse_registry_t *reg;        /* this process's handle to it */
    sse_local_t *local;         /* this child's streams of it */
    int changed_pending;        /* parent: a listeners-changed to retry */
    apr_uint64_t repairs_seen;  /* parent: repairs already logged */
} sse_srv_conf_t;

extern module AP_MODULE_DECLARE_DATA sse_mgr_module;
extern sse_global_conf_t sse_gconf;

/** Effective value of a server-wide setting. */
apr_interval_time_t sse_conf_heartbeat(void);
apr_interval_time_t sse_conf_dormant(void);

/** Now, in milliseconds since the epoch (the registry's clock). */
static APR_INLINE apr_int64_t sse_now_ms(void)
{
    return (apr_int64_t)apr_time_as_msec(apr_time_now());
}

static APR_INLINE sse_srv_conf_t *sse_srv_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &sse_mgr_module);
}

/* mod_sse_state.c: the segment and the mutex, across generations */
apr_status_t sse_state_post_config(apr_pool_t *pconf, server_rec *s);
apr_status_t sse_state_check_mutex(apr_pool_t *ptemp, server_rec *s);
apr_status_t sse_state_child_init(apr_pool_t *pchild, server_rec *s);

/* mod_sse_ops.c: every operation, shared by routes and optional functions */
apr_status_t sse_op_make_id(server_rec *s, apr_pool_t *p, const char *name,
                            const char **id);
apr_status_t sse_op_check_id(server_rec *s, const char *id);
apr_status_t sse_op_listen(server_rec *s, const char *id, const char *key);
apr_status_t sse_op_notify_completions(server_rec *s, const char *id,
                                       const char *taskid, int *delivered);
apr_status_t sse_op_notify_listeners(server_rec *s, const char *key,
                                     int *delivered);
apr_status_t sse_op_unregister(server_rec *s, const char *id);
apr_status_t sse_op_unregister_all(server_rec *s);
apr_status_t sse_op_cleanup(server_rec *s, int *removed);
apr_status_t sse_op_listeners_json(server_rec *s, apr_pool_t *p,
                                   const char **json);
/** The set of listeners changed: tell the SSENotifyListenersChanged key. */
void sse_op_changed(server_rec *s);
void sse_ops_register(void);

/* mod_sse_handler.c: the routes */
int sse_handler(request_rec *r);
int sse_translate(request_rec *r);
int sse_map_to_storage(request_rec *r);
/** A one-line text/plain answer (no-store), newline added on errors. */
int sse_respond_text(request_rec *r, int status, const char *line);

/* mod_sse_dispatch.c: the child's dispatcher and its streams */
apr_status_t sse_dispatch_post_config(apr_pool_t *pconf);
apr_status_t sse_dispatch_child_init(apr_pool_t *pchild, server_rec *s);
void sse_dispatch_child_stopping(apr_pool_t *pchild, int graceful);
/** Parent, at start-up: log when httpd may stop children with streams. */
void sse_dispatch_check_mpm(server_rec *s);
/** Wake the processes holding streams of @a reg (after a publish). */
void sse_dispatch_wake(sse_registry_t *reg);
/** Wake every process that has held streams of @a reg (after a clear). */
void sse_dispatch_wake_all(sse_registry_t *reg);
/** Wake process @a pid (0: none), e.g. the holder of a stream just ended. */
void sse_dispatch_wake_pid(apr_uint32_t pid);
/** Hold a stream for @a id on this request until it ends. */
int sse_stream_run(request_rec *r, const char *id);

/* mod_sse_status.c: the registries' section of mod_status's page */
int sse_status_hook(request_rec *r, int flags);

#endif /* MOD_SSE_MGR_PRIVATE_H */
