/*
 * mod_status section: each registry's figures on /server-status, as a
 * table in the HTML page and as `SSERegistry[n]Name: value` lines in the
 * ?auto form (the key shape mod_proxy_balancer uses). The core copies the
 * figures under the registry lock; nothing here holds it while writing.
 * Key names are an interface: docs/operations.md lists them.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_main.h>
#include <http_protocol.h>
#include <mod_status.h>

#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_status.h"
#include "mod_sse_bus.h"

#define MAX_FIGURES 32

typedef struct {
    const char *key;            /* ?auto key, after SSERegistry[n] */
    const char *what;           /* HTML: what the figure counts */
    apr_uint64_t value;
} figure_t;

/* One registry's figures, copied out under its lock by the core; returns
 * how many. */
static int take_figures(sse_registry_t *reg, figure_t *f)
{
    const sse_registry_sizes_t *sz = sse_registry_sizes(reg);
    sse_stats_t st;
    int i = 0;

    sse_registry_stats(reg, &st);
#define FIG(k, w, v) do {                                                   \
        if (i < MAX_FIGURES) {                                              \
            f[i].key = (k);                                                 \
            f[i].what = (w);                                                \
            f[i++].value = (apr_uint64_t)(v);                               \
        }                                                                   \
    } while (0)
    FIG("Listeners", "listeners registered", st.listeners);
    FIG("MaxListeners", "listener slots (SSEMaxListeners)",
        sz->max_listeners);
    FIG("Connected", "listeners with a stream open now", st.connected);
    FIG("Published", "ring entries written", st.published);
    FIG("Delivered", "events written to streams", st.delivered);
    FIG("Missed", "events (or their payloads) overwritten before their "
        "listener got them", st.missed);
    FIG("RejectedFull", "register-listener refused, table full (503)",
        st.rejected_full);
    FIG("Reclaimed", "listeners without a stream removed to make room "
        "(table full, or SSEMaxListenersPerClient)", st.reclaimed);
    FIG("RejectedClient", "register-listener refused, per-client bound "
        "(429)", st.rejected_client);
    FIG("EndedSlow", "streams ended: client did not read within Timeout",
        st.ended_slow);
    FIG("Repairs", "index rebuilds after a process died in the lock",
        st.repairs);
    FIG("HeadSeq", "next event sequence number", st.head_seq);
    FIG("OldestSeq", "oldest sequence number still in the ring",
        st.oldest_seq);
    FIG("RingEvents", "entries in the ring now", st.head_seq - st.oldest_seq);
    FIG("History", "ring entries (SSEHistory)", sz->history);
    FIG("PayloadRing", "bytes of the payloads' ring",
        sz->payload_bytes);
    FIG("PayloadWritten", "payload bytes published", st.payload_written);
#undef FIG
    return i;
}

/* The server that owns the registry: its name, and its port when known. */
static const char *server_label(request_rec *r, server_rec *s)
{
    apr_port_t port = s->port ? s->port
                              : (s->addrs ? s->addrs->host_port : 0);
    const char *name = s->server_hostname ? s->server_hostname : "";

    return port ? apr_psprintf(r->pool, "%s:%u", name, (unsigned)port) : name;
}

static void put_auto(request_rec *r, server_rec *s, int n,
                     const figure_t *f, int nf, const sse_child_stat_t *ch,
                     int nch)
{
    int i;

    ap_rprintf(r, "SSERegistry[%d]Prefix: %s\n", n, sse_srv_conf(s)->prefix);
    ap_rprintf(r, "SSERegistry[%d]Server: %s\n", n, server_label(r, s));
    for (i = 0; i < nf; i++) {
        ap_rprintf(r, "SSERegistry[%d]%s: %" APR_UINT64_T_FMT "\n", n,
                   f[i].key, f[i].value);
    }
    ap_rprintf(r, "SSERegistry[%d]Children: %d\n", n, nch);
    for (i = 0; i < nch; i++) {
        ap_rprintf(r, "SSERegistry[%d]Child[%d]Pid: %u\n"
                   "SSERegistry[%d]Child[%d]Streams: %u\n",
                   n, i, ch[i].pid, n, i, ch[i].streams);
    }
}

static void put_html(request_rec *r, server_rec *s, const figure_t *f,
                     int nf, const sse_child_stat_t *ch, int nch)
{
    int i;

    ap_rvputs(r, "<hr />\n<h2>SSE registry ",
              ap_escape_html(r->pool, sse_srv_conf(s)->prefix), " on ",
              ap_escape_html(r->pool, server_label(r, s)), "</h2>\n"
              "<table border=\"0\">\n", NULL);
    for (i = 0; i < nf; i++) {
        ap_rprintf(r, "<tr><th align=\"left\">%s</th><td align=\"right\">%"
                   APR_UINT64_T_FMT "</td><td>%s</td></tr>\n", f[i].key,
                   f[i].value, f[i].what);
    }
    ap_rputs("</table>\n<table border=\"0\"><tr><th>PID</th>"
             "<th>Streams</th></tr>\n", r);
    for (i = 0; i < nch; i++) {
        ap_rprintf(r, "<tr><td>%u</td><td align=\"right\">%u</td></tr>\n",
                   ch[i].pid, ch[i].streams);
    }
    ap_rputs("</table>\n", r);
}

/* The configuration of the registry @a s owns, or NULL. */
static sse_srv_conf_t *owned(server_rec *s)
{
    sse_srv_conf_t *conf = sse_srv_conf(s);

    return (conf->owner && conf->reg) ? conf : NULL;
}

int sse_status_hook(request_rec *r, int flags)
{
    server_rec *s;
    int n = 0;

    for (s = ap_server_conf; s; s = s->next) {
        n += owned(s) != NULL;
    }
    if (flags & AP_STATUS_SHORT) {
        ap_rprintf(r, "SSERegistries: %d\n", n);
    }
    for (s = ap_server_conf; s; s = s->next) {
        sse_srv_conf_t *conf = owned(s);
        sse_child_stat_t *ch;
        figure_t f[MAX_FIGURES];
        int nf, nch, max;
        if (conf == NULL) {
            continue;
        }
        max = (int)sse_registry_sizes(conf->reg)->max_children;
        ch = apr_palloc(r->pool, max * sizeof(*ch));
        nf = take_figures(conf->reg, f);
        nch = sse_registry_children(conf->reg, ch, max);
        if (flags & AP_STATUS_SHORT) {
            put_auto(r, s, conf->reg_index, f, nf, ch, nch);
        }
        else {
            put_html(r, s, f, nf, ch, nch);
        }
        sse_bus_status(r, conf->reg, conf->reg_index,
                       !(flags & AP_STATUS_SHORT));
    }
    return OK;
}
