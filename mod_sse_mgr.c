/*
 * mod_sse_mgr: server-sent events manager for Apache httpd 2.4.
 *
 * This file is the module's face: its configuration (directives, merge),
 * its hooks, registered in one place at the end. The routes live in
 * mod_sse_handler.c, the operations in mod_sse_ops.c, shared state in
 * mod_sse_state.c, stream holding in mod_sse_dispatch.c; the core in src/
 * knows nothing of httpd.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_protocol.h>
#include <http_request.h>
#include <ap_mpm.h>
#include <mpm_common.h>
#include <scoreboard.h>
#include <util_mutex.h>
#include <mod_status.h>

#include <apr_strings.h>

#include <errno.h>
#include <stddef.h>
#include <signal.h>

#define SSE_MGR_DECLARING_MODULE
#include "mod_sse_mgr_private.h"
#include "mod_sse_state.h"
#include "mod_sse_ops.h"
#include "mod_sse_handler.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_park.h"
#include "mod_sse_status.h"
#include "mod_sse_admit.h"
#include "mod_sse_bus.h"

sse_global_conf_t sse_gconf;

static apr_interval_time_t last_cleanup;

apr_interval_time_t sse_conf_heartbeat(void)
{
    return sse_gconf.heartbeat >= 0 ? sse_gconf.heartbeat
                                    : apr_time_from_sec(SSE_DEF_HEARTBEAT);
}

apr_interval_time_t sse_conf_dormant(void)
{
    return sse_gconf.dormant >= 0 ? sse_gconf.dormant
                                  : apr_time_from_sec(SSE_DEF_DORMANT);
}

int sse_conf_listeners_per_client(void)
{
    return sse_gconf.listeners_per_client >= 0
           ? sse_gconf.listeners_per_client : SSE_DEF_LISTENERS_PER_CLIENT;
}

int sse_conf_streams_per_client(void)
{
    return sse_gconf.streams_per_client >= 0
           ? sse_gconf.streams_per_client : SSE_DEF_STREAMS_PER_CLIENT;
}

apr_size_t sse_conf_max_message(void)
{
    return sse_gconf.max_message > 0 ? (apr_size_t)sse_gconf.max_message
                                     : SSE_DEF_MAX_MESSAGE;
}

static apr_interval_time_t conf_cleanup(void)
{
    return sse_gconf.cleanup >= 0 ? sse_gconf.cleanup
                                  : apr_time_from_sec(SSE_DEF_CLEANUP);
}

/* ---- configuration --------------------------------------------------- */

static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    sse_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    (void)s;
    conf->reg_index = -1;
    return conf;
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    sse_srv_conf_t *base = basev, *add = addv;
    sse_srv_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->prefix = add->prefix ? add->prefix : base->prefix;
    conf->prefix_set = add->prefix_set;
    conf->origins = add->origins ? add->origins : base->origins;
    conf->changed_key = add->changed_key ? add->changed_key
                                         : base->changed_key;
    conf->h2_mode = add->h2_mode ? add->h2_mode : base->h2_mode;
    conf->reg_index = -1;
    return conf;
}

static const char *set_prefix(cmd_parms *cmd, void *dc, const char *arg)
{
    sse_srv_conf_t *conf = sse_srv_conf(cmd->server);
    apr_size_t len = strlen(arg);

    (void)dc;
    if (len < 2 || arg[0] != '/' || arg[len - 1] != '/'
        || strpbrk(arg, "?#%\\ \t") || strstr(arg, "//")) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' must be a URL path that starts and "
                            "ends with '/', e.g. " SSE_DEF_PREFIX,
                            cmd->cmd->name, arg);
    }
    conf->prefix = arg;
    conf->prefix_set = 1;
    return NULL;
}

/* SSEAllowOrigin: "*", or one or more origins (called once per word). */
static const char *set_origin(cmd_parms *cmd, void *dc, const char *arg)
{
    sse_srv_conf_t *conf = sse_srv_conf(cmd->server);
    int star = strcmp(arg, "*") == 0;

    (void)dc;
    if (strpbrk(arg, "\r\n,") || (!star && strstr(arg, "://") == NULL)) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not '*' or an origin "
                            "like https://app.example.com", cmd->cmd->name,
                            arg);
    }
    if (conf->origins == NULL) {
        conf->origins = apr_array_make(cmd->pool, 2, sizeof(const char *));
    }
    else if (star || !strcmp(APR_ARRAY_IDX(conf->origins, 0, const char *),
                             "*")) {
        return apr_psprintf(cmd->pool, "%s: '*' stands alone",
                            cmd->cmd->name);
    }
    APR_ARRAY_PUSH(conf->origins, const char *) = arg;
    return NULL;
}

static const char *set_changed_key(cmd_parms *cmd, void *dc, const char *arg)
{
    (void)dc;
    if (!sse_token_valid(arg, strlen(arg))) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' is not a valid key (1..%d characters "
                            "of [A-Za-z0-9._~-], starting with a letter or "
                            "digit)", cmd->cmd->name, arg, SSE_TOKEN_MAX);
    }
    sse_srv_conf(cmd->server)->changed_key = arg;
    return NULL;
}

static const char *set_h2(cmd_parms *cmd, void *dc, const char *arg)
{
    sse_srv_conf_t *conf = sse_srv_conf(cmd->server);

    (void)dc;
    if (ap_cstr_casecmp(arg, "downgrade") == 0) {
        conf->h2_mode = SSE_H2_DOWNGRADE;
    }
    else if (ap_cstr_casecmp(arg, "serve") == 0) {
        conf->h2_mode = SSE_H2_SERVE;
    }
    else {
        return apr_psprintf(cmd->pool, "%s: '%s' is not 'downgrade' or "
                            "'serve'", cmd->cmd->name, arg);
    }
    return NULL;
}

/* A whole number in [lo, hi], or a message naming the directive. */
static const char *parse_int(cmd_parms *cmd, const char *arg, int lo, int hi,
                             int *out)
{
    char *end;
    apr_int64_t v;
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    if (err) {
        return err;
    }
    v = apr_strtoi64(arg, &end, 10);
    if (*arg == '\0' || *end != '\0' || errno == ERANGE || v < lo
        || v > hi) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a whole number "
                            "between %d and %d", cmd->cmd->name, arg, lo, hi);
    }
    *out = (int)v;
    return NULL;
}

static const char *set_count(cmd_parms *cmd, void *dc, const char *arg)
{
    int *field = (int *)((char *)&sse_gconf + (apr_size_t)cmd->info);

    (void)dc;
    errno = 0;
    return parse_int(cmd, arg, 1, 1000000, field);
}

/* A per-client bound: a count, or 0 for none. */
static const char *set_bound(cmd_parms *cmd, void *dc, const char *arg)
{
    int *field = (int *)((char *)&sse_gconf + (apr_size_t)cmd->info);

    (void)dc;
    errno = 0;
    return parse_int(cmd, arg, 0, 1000000, field);
}

static const char *set_seconds(cmd_parms *cmd, void *dc, const char *arg)
{
    apr_interval_time_t *field =
        (apr_interval_time_t *)((char *)&sse_gconf + (apr_size_t)cmd->info);
    int secs = 0;
    const char *err;

    (void)dc;
    errno = 0;
    err = parse_int(cmd, arg, 1, 7 * 24 * 3600, &secs);
    *field = apr_time_from_sec(secs);
    return err;
}

/* SSEMaxMessage: bytes, or with a k or m suffix (1024s). */
static const char *set_max_message(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    apr_off_t v = 0;
    char *end;

    (void)dc;
    if (err) {
        return err;
    }
    if (apr_strtoff(&v, arg, &end, 10) == APR_SUCCESS && end != arg) {
        if (*end == 'k' || *end == 'K') {
            v *= 1024, end++;
        }
        else if (*end == 'm' || *end == 'M') {
            v *= 1024 * 1024, end++;
        }
    }
    if (end == arg || *end != '\0' || v < 1 || v > SSE_MAX_MAX_MESSAGE) {
        return apr_psprintf(cmd->pool, "%s: '%s' is not a size from 1 to "
                            "1m (bytes, or with k or m)", cmd->cmd->name,
                            arg);
    }
    sse_gconf.max_message = (int)v;
    return NULL;
}

static const char *set_secret(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);

    (void)dc;
    if (err) {
        return err;
    }
    if (strlen(arg) < 16) {
        return apr_psprintf(cmd->pool, "%s: the secret must be at least 16 "
                            "characters", cmd->cmd->name);
    }
    sse_gconf.secret = arg;
    return NULL;
}

/* offsetof, not APR_OFFSETOF: that one subtracts a null pointer (UB) */
#define GOFF(f) ((void *)offsetof(sse_global_conf_t, f))

static const command_rec sse_cmds[] = {
    AP_INIT_TAKE1("SSEPrefix", set_prefix, NULL, RSRC_CONF,
                  "URL prefix of the SSE routes (default " SSE_DEF_PREFIX
                  "); a vhost with its own prefix has its own registry"),
    AP_INIT_TAKE1("SSEMaxListeners", set_count, GOFF(max_listeners),
                  RSRC_CONF, "Listener slots in shared memory (default "
                  APR_STRINGIFY(SSE_DEF_MAX_LISTENERS) ")"),
    AP_INIT_TAKE1("SSEMaxListenersPerClient", set_bound,
                  GOFF(listeners_per_client), RSRC_CONF,
                  "Listeners one client address may have made; past it its "
                  "oldest without a stream is reclaimed, or 429 (default "
                  APR_STRINGIFY(SSE_DEF_LISTENERS_PER_CLIENT) "; 0: no "
                  "bound)"),
    AP_INIT_TAKE1("SSEMaxStreamsPerClient", set_bound,
                  GOFF(streams_per_client), RSRC_CONF,
                  "Streams one client address may hold open; 429 beyond "
                  "(default " APR_STRINGIFY(SSE_DEF_STREAMS_PER_CLIENT)
                  "; 0: no bound)"),
    AP_INIT_TAKE1("SSEHistory", set_count, GOFF(history), RSRC_CONF,
                  "Events kept for resume (default "
                  APR_STRINGIFY(SSE_DEF_HISTORY) ")"),
    AP_INIT_TAKE1("SSEDormantTimeout", set_seconds, GOFF(dormant), RSRC_CONF,
                  "Seconds without stream or activity before a listener "
                  "is removed (default " APR_STRINGIFY(SSE_DEF_DORMANT) ")"),
    AP_INIT_TAKE1("SSECleanupInterval", set_seconds, GOFF(cleanup),
                  RSRC_CONF, "Seconds between dormant-listener scans "
                  "(default " APR_STRINGIFY(SSE_DEF_CLEANUP) ")"),
    AP_INIT_TAKE1("SSEHeartbeat", set_seconds, GOFF(heartbeat), RSRC_CONF,
                  "Seconds between comment lines on idle streams (default "
                  APR_STRINGIFY(SSE_DEF_HEARTBEAT) ")"),
    AP_INIT_ITERATE("SSEAllowOrigin", set_origin, NULL, RSRC_CONF,
                    "'*' or the origins allowed (Access-Control-Allow-Origin"
                    " on every route; default " SSE_DEF_ORIGIN ")"),
    AP_INIT_TAKE1("SSENotifyListenersChanged", set_changed_key, NULL,
                  RSRC_CONF, "Key notified when the set of listeners "
                  "changes (default: none)"),
    AP_INIT_TAKE1("SSEMaxStreamsPerChild", set_count,
                  GOFF(max_thread_streams), RSRC_CONF,
                  "Streams that may hold worker threads at once, per child "
                  "(worker, event) or in all children (prefork); default: "
                  "3/4 of the threads"),
    AP_INIT_TAKE1("SSEMaxMessage", set_max_message, NULL, RSRC_CONF,
                  "Largest payload of one message, in bytes of JSON "
                  "(default 16k, at most 1m)"),
    AP_INIT_TAKE1("SSEHTTP2", set_h2, NULL, RSRC_CONF,
                  "'downgrade' (default): a stream asked over HTTP/2 is "
                  "retried by its client over HTTP/1.1, where it parks; "
                  "'serve': held on an HTTP/2 worker"),
    AP_INIT_TAKE1("SSEBus", sse_bus_cmd, NULL, RSRC_CONF,
                  "redis://[:password@]host[:port][/db] or "
                  "redis-sentinel://host[:port][,host[:port]...]/master: "
                  "the hosts on it are one service (needs SSESecret)"),
    AP_INIT_TAKE1("SSESecret", set_secret, NULL, RSRC_CONF,
                  "Secret for unforgeable ids (default: random per start)"),
    {NULL}
};

/* ---- hooks ----------------------------------------------------------- */

static int sse_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                          apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    sse_gconf.max_listeners = -1;
    sse_gconf.history = -1;
    sse_gconf.max_thread_streams = -1;
    sse_gconf.max_message = -1;
    sse_gconf.dormant = sse_gconf.cleanup = sse_gconf.heartbeat = -1;
    sse_gconf.secret = NULL;
    sse_bus_pre_config();
    sse_gconf.listeners_per_client = sse_gconf.streams_per_client = -1;
    /* pthread unless the admin says otherwise (a `Mutex ... default` line
     * included): check_config refuses any other mechanism */
    return ap_mutex_register(pconf, SSE_MUTEX_TYPE, NULL,
                             APR_LOCK_PROC_PTHREAD, 0);
}

/* Checks that need the whole configuration; runs with `-t` too. */
static int sse_check_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    (void)pconf;
    (void)plog;
    if (sse_conf_heartbeat() >= s->timeout) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00001)
                     "SSEHeartbeat (%" APR_TIME_T_FMT " s) must be shorter "
                     "than Timeout (%" APR_TIME_T_FMT " s)",
                     apr_time_sec(sse_conf_heartbeat()),
                     apr_time_sec(s->timeout));
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (sse_bus_check_config(s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    /* here, not in post_config, so that `apache2 -t` says it too */
    if (sse_state_check_mutex(ptemp, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    return OK;
}

static int sse_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    (void)ptemp;
    /* The first pass only checks the configuration; shared state is made
     * once the server really starts. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    if (sse_state_post_config(pconf, s) != APR_SUCCESS
        || sse_dispatch_post_config(pconf, s) != APR_SUCCESS
        || sse_bus_post_config(pconf, s) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    if (ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_RUN_MPM) {
        sse_park_check_capacity(s, sse_gconf.max_listeners > 0
                                   ? sse_gconf.max_listeners
                                   : SSE_DEF_MAX_LISTENERS);
        sse_dispatch_check_mpm(s);
    }
    sse_admit_post_config(s);
    last_cleanup = sse_clock();
    return OK;
}

static void sse_child_init(apr_pool_t *pchild, server_rec *s)
{
    if (sse_state_child_init(pchild, s) == APR_SUCCESS) {
        sse_admit_child_init(s);
        sse_dispatch_child_init(pchild, s);
        sse_bus_child_init(pchild, s);
        /* last registered, first run: before the bus stops */
        sse_dispatch_keep_draining(pchild);
    }
}

/* Parent: a child is gone; what it held becomes resumable. The parent's
 * handles only try the lock: if a child holds it, the monitor's sweep
 * below finishes the job. */
static void sse_child_status(server_rec *s, pid_t pid, ap_generation_t gen,
                             int slot, mpm_child_status state)
{
    server_rec *vs;

    (void)gen;
    (void)slot;
    if (state != MPM_CHILD_EXITED) {
        return;
    }
    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        if (conf->reg && conf->owner) {
            sse_registry_child_gone(conf->reg, (apr_uint32_t)pid,
                                    sse_now_ms());
        }
    }
}

/* Is @a pid one of our children? The scoreboard lists every child the
 * parent has not yet reaped; kill(pid, 0) would take a pid reused by
 * another user's process (EPERM) for a live child. */
static int is_our_child(apr_uint32_t pid)
{
    int i, limit = 0;

    if (ap_scoreboard_image == NULL
        || ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit) != APR_SUCCESS) {
        return 1;                       /* cannot tell: leave it be */
    }
    for (i = 0; i < limit; i++) {
        if (ap_scoreboard_image->parent[i].pid == (pid_t)pid) {
            return 1;
        }
    }
    return 0;
}

/* The safety net for child_status: any holder of streams that no longer
 * exists (its exit was missed, or the lock was busy then). */
static void sweep_dead_holders(server_rec *s, sse_registry_t *reg)
{
    apr_uint32_t pids[64], from = 0;
    int i, n;

    while ((n = sse_registry_holders(reg, 0, &from, pids, 64)) > 0) {
        for (i = 0; i < n; i++) {
            if (!is_our_child(pids[i])) {
                ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, SSE_LOGNO(00003)
                             "child %u is gone: its listeners are "
                             "resumable", pids[i]);
                sse_registry_child_gone(reg, pids[i], sse_now_ms());
            }
        }
    }
}

/* Say so when a process that died inside the lock made the next holder
 * rebuild the indexes (the core counts it; only the glue can log). */
static void report_repairs(server_rec *s, sse_registry_t *reg)
{
    apr_uint64_t *seen = &sse_srv_conf(s)->repairs_seen;
    sse_stats_t st;

    sse_registry_stats(reg, &st);
    if (st.repairs > *seen) {
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SSE_LOGNO(00004)
                     "a process died holding the registry lock: its "
                     "indexes were rebuilt (%" APR_UINT64_T_FMT " time(s) "
                     "so far)", st.repairs);
        *seen = st.repairs;
    }
}

/* Parent's maintenance loop: periodic dormant cleanup. */
static int sse_monitor(apr_pool_t *p, server_rec *s)
{
    apr_time_t now = sse_clock();
    server_rec *vs;

    int due = now - last_cleanup >= conf_cleanup(), busy = 0;

    (void)p;
    for (vs = s; vs; vs = vs->next) {
        int removed = 0;
        if (!sse_srv_conf(vs)->owner || sse_srv_conf(vs)->reg == NULL) {
            continue;
        }
        sweep_dead_holders(vs, sse_srv_conf(vs)->reg);
        report_repairs(vs, sse_srv_conf(vs)->reg);
        if (sse_srv_conf(vs)->changed_pending) {
            sse_op_changed(vs);
        }
        /* with a bus, the host's ingest thread cleans up the cluster */
        if (due && !sse_bus_on()
            && sse_op_cleanup(vs, &removed) == APR_EBUSY) {
            busy = 1;           /* a child holds the lock: next round */
        }
        else if (removed) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, vs, SSE_LOGNO(00002)
                         "cleanup removed %d dormant listener(s)", removed);
        }
    }
    if (due && !busy) {
        last_cleanup = now;
    }
    return DECLINED;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_pre_config(sse_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(sse_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(sse_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(sse_child_init, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_stopping(sse_dispatch_child_stopping, NULL, NULL,
                           APR_HOOK_MIDDLE);
    ap_hook_child_status(sse_child_status, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_monitor(sse_monitor, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(sse_translate, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(sse_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(sse_handler, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ap, status_hook, sse_status_hook, NULL, NULL,
                      APR_HOOK_MIDDLE);
    sse_park_register_hooks();
    sse_ops_register();
}

AP_DECLARE_MODULE(sse_mgr) = {
    STANDARD20_MODULE_STUFF,
    NULL,               /* per-directory config */
    NULL,
    create_srv_conf,
    merge_srv_conf,
    sse_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
