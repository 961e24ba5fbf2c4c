/*
 * SSEBus in the glue: several hosts as one service through one Redis
 * (src/sse_bus.h draws the design, src/sse_bus_redis.h the keys).
 *
 * - Publishing: the operations of mod_sse_ops.c become Redis scripts,
 *   run on a connection from this child's pool (apr_reslist: hiredis
 *   contexts are not thread-safe, so each call takes one of its own).
 *   A failed call answers 503 + Retry-After; its connection is dropped,
 *   and new ones are tried at most once a second while Redis is down.
 *   The outage is logged once, and its end.
 * - Ingesting: one thread per child tries the host's ingest lock (flock
 *   on a file in DefaultRuntimeDir: the kernel releases it when its
 *   holder dies); the one that holds it reads the logs of every registry
 *   with XREAD BLOCK and applies them to the shared rings, then wakes
 *   the children that hold streams. It also refreshes the activity of
 *   this host's streams in Redis and runs the cluster's dormant cleanup.
 *
 * This file: the directive, the configuration and server-status;
 * mod_sse_bus_ops.c: the connections and the operations;
 * mod_sse_bus_threads.c: each child's bus worker and ingest threads;
 * mod_sse_bus_int.h: what the three share.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <http_protocol.h>

#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_bus.h"
#include "mod_sse_bus_int.h"

/* what the bus's glue files share (mod_sse_bus_int.h) */
sse_bus_glue_t sse_bus_glue;

/* ---- configuration ---------------------------------------------------- */

const char *sse_bus_cmd(cmd_parms *cmd, void *dc, const char *arg)
{
    const char *err = ap_check_cmd_context(cmd, GLOBAL_ONLY);
    sse_redis_url_t *u;

    (void)dc;
    if (err) {
        return err;
    }
    u = apr_pcalloc(cmd->pool, sizeof(*u));
    if (sse_redis_url_parse(cmd->pool, arg, u, &err) != APR_SUCCESS) {
        return apr_psprintf(cmd->pool, "%s: %s", cmd->cmd->name, err);
    }
    sse_bus_glue.url = u;
    return NULL;
}

void sse_bus_pre_config(void)
{
    sse_bus_glue.url = NULL;
}

int sse_bus_on(void)
{
    return sse_bus_glue.url != NULL;
}

/* The namespace of a registry in Redis: the same on every host of the
 * service. The main server's is its SSEPrefix (ServerName differs from
 * host to host when left to the machine's name); a vhost's adds its
 * ServerName, which hosts of one site share. */
static const char *ns_of(apr_pool_t *p, server_rec *vs, int main_server)
{
    sse_srv_conf_t *conf = sse_srv_conf(vs);
    const char *prefix = conf->prefix ? conf->prefix : SSE_DEF_PREFIX;

    return main_server ? apr_pstrcat(p, "sse:", prefix, NULL)
                       : apr_pstrcat(p, "sse:", vs->server_hostname, prefix,
                                     NULL);
}

/* The ingest lock's file, made by the parent for the children to lock. */
static apr_status_t make_lock_file(apr_pool_t *pconf, server_rec *s)
{
    apr_file_t *f;
    apr_status_t rv;

    sse_bus_glue.lock_path = ap_runtime_dir_relative(pconf, BUS_LOCK_FILE);
    rv = apr_file_open(&f, sse_bus_glue.lock_path,
                       APR_FOPEN_CREATE | APR_FOPEN_WRITE,
                       APR_FPROT_UREAD | APR_FPROT_UWRITE | APR_FPROT_GREAD
                       | APR_FPROT_WREAD, pconf);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00201)
                     "SSEBus: cannot make the ingest lock %s",
                     sse_bus_glue.lock_path);
        return rv;
    }
    apr_file_close(f);
    return APR_SUCCESS;
}

apr_status_t sse_bus_check_config(server_rec *s)
{
    if (sse_bus_glue.url && sse_gconf.secret == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00200)
                     "SSEBus needs SSESecret, the same on every host: ids "
                     "made on one host must check on all");
        return APR_EINVAL;
    }
    return APR_SUCCESS;
}

apr_status_t sse_bus_post_config(apr_pool_t *pconf, server_rec *s)
{
    server_rec *vs;

    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        conf->bus_ns = NULL;
        if (sse_bus_glue.url && conf->owner) {
            conf->bus_ns = ns_of(pconf, vs, vs == s);
        }
    }
    for (vs = s->next; sse_bus_glue.url && vs; vs = vs->next) {
        if (!sse_srv_conf(vs)->owner) {
            sse_srv_conf(vs)->bus_ns = sse_srv_conf(s)->bus_ns;
        }
    }
    if (sse_bus_glue.url == NULL) {
        return APR_SUCCESS;
    }
    ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00202)
                 "SSEBus %s: registries share their listeners and events "
                 "with every host on it", sse_bus_glue.url->text);
    return make_lock_file(pconf, s);
}

/* ---- server-status ---------------------------------------------------- */

void sse_bus_status(request_rec *r, sse_registry_t *reg, int n, int html)
{
    const sse_bus_stats_t *st;
    apr_uint64_t next;

    if (!sse_registry_bus(reg)) {
        return;
    }
    st = sse_registry_bus_stats(reg);
    next = sse_registry_bus_floor(reg);
    if (html) {
        ap_rprintf(r, "<p>SSEBus %s: %s, ingest by process %u, entry %"
                   APR_UINT64_T_FMT " applied, lag %" APR_INT64_T_FMT
                   " ms, %" APR_UINT64_T_FMT " reconnects, %"
                   APR_UINT64_T_FMT " errors, %" APR_UINT64_T_FMT
                   " gaps</p>\n",
                   ap_escape_html(r->pool, sse_bus_glue.url->text),
                   st->up ? "up" : "down", st->ingest_pid,
                   next ? next - 1 : 0, st->lag_ms, st->reconnects,
                   st->errors, st->gaps);
        return;
    }
    ap_rprintf(r, "SSERegistry[%d]BusState: %s\n"
               "SSERegistry[%d]BusIngestPid: %u\n"
               "SSERegistry[%d]BusSeq: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusLagMs: %" APR_INT64_T_FMT "\n"
               "SSERegistry[%d]BusReconnects: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusErrors: %" APR_UINT64_T_FMT "\n"
               "SSERegistry[%d]BusGaps: %" APR_UINT64_T_FMT "\n",
               n, st->up ? "up" : "down", n, st->ingest_pid,
               n, next ? next - 1 : 0, n, st->lag_ms, n, st->reconnects,
               n, st->errors, n, st->gaps);
}
