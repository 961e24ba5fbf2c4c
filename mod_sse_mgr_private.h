/**
 * @file mod_sse_mgr_private.h
 * @brief What the glue files of mod_sse_mgr share. Not a public API.
 */
#ifndef MOD_SSE_MGR_PRIVATE_H
#define MOD_SSE_MGR_PRIVATE_H

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include "src/sse_clock.h"
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

/* Invariants checked at run time in `make sanitize` builds (-DSSE_CHECKS):
 * ap_assert() logs the one that broke and aborts the child. */
#ifdef SSE_CHECKS
#define SSE_ASSERT(exp) ap_assert(exp)
#else
#define SSE_ASSERT(exp) ((void)0)
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
#define SSE_DEF_MAX_MESSAGE     16384
#define SSE_MAX_MAX_MESSAGE     (1024 * 1024)
#define SSE_DEF_LISTENERS_PER_CLIENT 64
#define SSE_DEF_STREAMS_PER_CLIENT   32
#define SSE_CLIENT_RETRY_AFTER  "5"     /**< on a 429: seconds */

/** SSEHTTP2: what a stream request over HTTP/2 gets. */
enum { SSE_H2_DOWNGRADE = 1, SSE_H2_SERVE };

/** Effective SSEHTTP2 of a server (SSE_H2_DOWNGRADE unless set). */
#define SSE_H2_MODE(conf) ((conf)->h2_mode ? (conf)->h2_mode \
                                           : SSE_H2_DOWNGRADE)

/** Server-wide settings (main server context only). */
typedef struct {
    int max_listeners;          /* -1: unset */
    int history;
    apr_interval_time_t dormant;
    apr_interval_time_t cleanup;
    apr_interval_time_t heartbeat;
    const char *secret;         /* NULL: random per start */
    int max_thread_streams;     /* SSEMaxStreamsPerChild; -1: a share */
    int max_message;            /* SSEMaxMessage, bytes; -1: unset */
    int listeners_per_client;   /* -1: unset; 0: no bound */
    int streams_per_client;     /* -1: unset; 0: no bound */
} sse_global_conf_t;

typedef struct sse_local_t sse_local_t;

/** Per virtual host. */
typedef struct {
    const char *prefix;         /* NULL: unset (inherit) */
    int prefix_set;             /* set in this very context */
    int owner;                  /* this server owns its registry */
    apr_array_header_t *origins; /* SSEAllowOrigin; NULL: "*" */
    const char *changed_key;    /* SSENotifyListenersChanged, or NULL */
    int h2_mode;                /* SSEHTTP2: SSE_H2_*, 0 unset */
    int reg_index;              /* which registry, set in post_config */
    sse_registry_t *reg;        /* this process's handle to it */
    sse_local_t *local;         /* this child's streams of it */
    int changed_pending;        /* parent: a listeners-changed to retry */
    apr_uint64_t repairs_seen;  /* parent: repairs already logged */
    const char *bus_ns;         /* SSEBus: its registry's namespace */
} sse_srv_conf_t;

extern module AP_MODULE_DECLARE_DATA sse_mgr_module;
extern sse_global_conf_t sse_gconf;

/** Effective value of a server-wide setting. */
apr_interval_time_t sse_conf_heartbeat(void);
apr_interval_time_t sse_conf_dormant(void);
/** SSEMaxMessage in bytes. */
apr_size_t sse_conf_max_message(void);
int sse_conf_listeners_per_client(void);
int sse_conf_streams_per_client(void);

/** Now, in milliseconds since the epoch (the registry's clock). */
static APR_INLINE apr_int64_t sse_now_ms(void)
{
    return (apr_int64_t)apr_time_as_msec(apr_time_now());
}

static APR_INLINE sse_srv_conf_t *sse_srv_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &sse_mgr_module);
}

/* Each glue file declares what it defines in a header of its own:
 * mod_sse_state.h, mod_sse_ops.h, mod_sse_handler.h, mod_sse_dispatch.h,
 * mod_sse_stream.h, mod_sse_park.h, mod_sse_status.h. */

#endif /* MOD_SSE_MGR_PRIVATE_H */
