/*
 * The parent's side of a session: publish, wait for the receipts the
 * workers record, and turn send and receipt times into one result line.
 *
 * fan-out: messages one after another to every listener of one key; each
 *   waits until every listener has it (or a timeout) before the next.
 * targeted: one completion per listener, as fast as a window of
 *   keep-alive publisher connections allows.
 * Both over HTTP, through the bench module's C API handler, and for
 * fan-out the floor: this process writing the same bytes to N sockets.
 * With a payload (-z), over HTTP only: the same JSON body (sb_payload)
 * to mod_sse_mgr and to nchan; the floor writes mod_sse_mgr's event.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sb.h"

#define SB_PUB_MAX 64
/* a publish unanswered this long: its connection is replaced (longer
 * than for set-up, so a slow but working server is not asked twice) */
#define SB_PUB_STALE_NS (5 * SB_STALE_NS)

enum { PUB_FAN, PUB_TGT, PUB_BENCH_FAN, PUB_BENCH_TGT };

static sb_conn_t *pub[SB_PUB_MAX];
static int64_t fan_sent[SB_MAX_MSGS], fan_api_ns[SB_MAX_MSGS];
static int fan_resp[SB_MAX_MSGS];
static int64_t *rtt, t_last_resp;
static long rtt_n, tgt_sent, tgt_resp, pub_err, resent;
static long long tx_bytes, tx_reqs;     /* publish requests, this phase */
static int *retry, nretry, fan_again;
static char api_line[512];
static int api_done;
static sb_conn_t **peers;
static int npeers;

static const char *via_name[] = { "http", "capi", "floor" };

/* ---- connections -------------------------------------------------------- */

static void on_response(sb_conn_t *c, const sb_req_t *req, int status,
                        const char *body, size_t len)
{
    const char *p;

    (void)c;
    (void)len;
    if (status < 200 || status > 299) {
        pub_err++;
    }
    switch (req->kind) {
    case PUB_FAN:
        fan_resp[req->idx] = 1;
        break;
    case PUB_TGT:
        tgt_resp++;
        t_last_resp = sb_now();
        if (rtt_n < sb->o.n) {
            rtt[rtt_n++] = t_last_resp - req->t;
        }
        break;
    case PUB_BENCH_FAN:
        /* the handler's clock just before its notify call */
        if ((p = strstr(body, "t0=")) != NULL) {
            fan_sent[req->idx] = atoll(p + 3);
        }
        if ((p = strstr(body, "elapsed_ns=")) != NULL) {
            fan_api_ns[req->idx] = atoll(p + 11);
        }
        fan_resp[req->idx] = 1;
        break;
    case PUB_BENCH_TGT:
        snprintf(api_line, sizeof(api_line), "%s", body);
        api_line[strcspn(api_line, "\r\n")] = '\0';
        api_done = 1;
        break;
    default:
        break;
    }
}

static void on_closed(sb_conn_t *c, int err)
{
    int i;

    (void)err;
    if (c->role == SB_CTRL) {
        /* requests it still held: asked again on a new connection */
        pub[c->idx] = NULL;
        for (i = 0; i < c->fcount; i++) {
            const sb_req_t *r = &c->fifo[(c->fhead + i) % SB_FIFO];
            if (r->kind == PUB_TGT) {
                retry[nretry++] = r->idx;
                tgt_sent--;
            }
            else if (r->kind == PUB_BENCH_TGT) {
                pub_err++;
                api_done = 1;
            }
            else {
                fan_again = r->idx + 1;
            }
        }
        c->fcount = 0;
        return;
    }
    for (i = 0; i < npeers; i++) {
        if (peers[i] == c) {
            peers[i] = NULL;
        }
    }
}

static void on_head(sb_conn_t *c)
{
    (void)c;
}

static void on_event(sb_conn_t *c, int kind, const char *d, size_t len)
{
    (void)c;
    (void)kind;
    (void)d;
    (void)len;
}

void sb_pub_init(int epfd)
{
    static const sb_hooks_t hooks = {
        on_head, on_event, on_response, on_closed, NULL
    };

    sb_conn_init(epfd, &hooks);
    rtt = calloc((size_t)sb->o.n + 1, sizeof(*rtt));
    retry = calloc((size_t)sb->o.n + SB_PUB_MAX * SB_FIFO, sizeof(*retry));
    peers = calloc((size_t)sb->o.n + 1, sizeof(*peers));
}

static sb_conn_t *pub_get(int k)
{
    if (pub[k] == NULL) {
        pub[k] = sb_conn_open(SB_CTRL, k, NULL, sb->o.pub_port,
                              SB_FIFO * (512 + (size_t)sb->o.payload));
    }
    return pub[k];
}

static void pump_for(int ms)
{
    int64_t until = sb_now() + (int64_t)ms * 1000000;

    while (sb_now() < until) {
        sb_conn_poll(1);
    }
}

static void request(int k, int kind, int idx, const char *buf, int len)
{
    sb_req_t r = { kind, idx, 0 };
    sb_conn_t *c = pub_get(k);

    if (c == NULL || len <= 0
        || sb_conn_request(c, buf, (size_t)len, &r) < 0) {
        pub_err++;
        if (kind == PUB_TGT) {
            tgt_resp++;
        }
        return;
    }
    if (kind == PUB_FAN) {
        fan_sent[idx] = r.t;
    }
    tx_bytes += len;
    tx_reqs++;
}

/* ---- fan-out ---------------------------------------------------------- */

static int fan_request(int via, int k, char *buf, size_t cap, int pay)
{
    const sb_opts_t *o = &sb->o;
    char body[SB_PAY_MAX + 1], tag[16];
    int blen;

    if (pay) {                  /* the same body to either server */
        snprintf(tag, sizeof(tag), "m%d", k);
        if ((blen = sb_payload(body, sizeof(body), tag, o->payload)) < 0) {
            return -1;
        }
        return snprintf(buf, cap, "POST %s%s%s HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\nContent-Type: application/json"
                        "\r\nContent-Length: %d\r\n\r\n%s",
                        o->flavor == SB_FL_SSE ? o->prefix : "/pub/key/",
                        o->flavor == SB_FL_SSE ? "notify-listeners/" : "",
                        o->key, blen, body);
    }
    if (via == SB_VIA_CAPI) {
        return snprintf(buf, cap, "GET /bench/fanout?key=%s&n=1 HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\n\r\n", o->key);
    }
    if (o->flavor == SB_FL_SSE) {
        return snprintf(buf, cap, "POST %snotify-listeners/%s HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                        o->prefix, o->key);
    }
    (void)k;
    blen = snprintf(body, sizeof(body), "\"notify^%s\"", o->key);
    return snprintf(buf, cap, "POST /pub/key/%s HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %d\r\n\r\n%s", o->key, blen, body);
}

/* The bytes mod_sse_mgr writes for one notify, in one HTTP chunk; with
 * a payload, its named event carrying the body (SPEC 8). */
static int floor_bytes(int k, char *buf, size_t cap, int pay)
{
    char ev[SB_PAY_MAX + 256], body[SB_PAY_MAX + 1], tag[16];
    int len;

    if (pay) {
        snprintf(tag, sizeof(tag), "m%d", k);
        if (sb_payload(body, sizeof(body), tag, sb->o.payload) < 0) {
            return -1;
        }
        len = snprintf(ev, sizeof(ev), "id: %d\nevent: notify\ndata: "
                       "{\"key\":\"%s\",\"data\":%s}\n\n", 1000 + k,
                       sb->o.key, body);
    }
    else {
        len = snprintf(ev, sizeof(ev), "id: %d\ndata:\"notify^%s\"\n\n",
                       1000 + k, sb->o.key);
    }
    return snprintf(buf, cap, "%x\r\n%s\r\n", len, ev);
}

static long long cpu_us_self(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000
           + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
}

static void fan_report(int via, int msg0, int expect, double cpu_ms,
                       int timeouts, int pay, long long rx)
{
    const sb_opts_t *o = &sb->o;
    int64_t *lat = malloc(sizeof(*lat) * ((size_t)o->n * o->msgs + 1));
    int64_t last[SB_MAX_MSGS], api[SB_MAX_MSGS];
    sb_stats_t sl, sm, sa;
    long nl = 0, lost;
    int i, k;

    for (k = 0; k < o->msgs; k++) {
        int K = msg0 + k;
        last[k] = 0;
        api[k] = fan_api_ns[K];
        for (i = 0; i < o->n; i++) {
            int64_t t = sb->fan[(size_t)i * SB_MAX_MSGS + (size_t)K];
            if (t) {
                lat[nl++] = t - fan_sent[K];
                if (t - fan_sent[K] > last[k]) {
                    last[k] = t - fan_sent[K];
                }
            }
        }
    }
    lost = (long)expect * o->msgs - nl;
    sb_stats_of(lat, nl, &sl);
    sb_stats_of(last, o->msgs, &sm);
    sb_stats_of(api, o->msgs, &sa);
    printf("R fanout via=%s n=%d expect=%d msgs=%d recv=%ld lost=%ld "
           "p50_us=%.1f p99_us=%.1f max_us=%.1f last_p50_us=%.1f "
           "last_max_us=%.1f cpu_ms=%.1f cpu_us_per_delivery=%.3f "
           "timeouts=%d pub_err=%ld resent=%ld api_call_p50_us=%.1f",
           via_name[via], o->n, expect, o->msgs, nl, lost < 0 ? 0 : lost,
           sl.p50 / 1e3, sl.p99 / 1e3, sl.max / 1e3, sm.p50 / 1e3,
           sm.max / 1e3, cpu_ms, nl ? cpu_ms * 1e3 / (double)nl : 0.0,
           timeouts, pub_err, resent, sa.p50 / 1e3);
    if (pay) {
        /* what each delivery and publish cost in bytes: the stream's
         * (chunk framing and any heartbeat in the phase included), one
         * event's SSE text, one publish request (head and body) */
        printf(" payload=%d checked=%d rx_per_delivery=%.1f ev_bytes=%d "
               "req_bytes=%.1f", o->payload, SB_GET(sb->paychk),
               nl ? (double)rx / (double)nl : 0.0,
               sb->ev_bytes[o->flavor == SB_FL_NCHAN ? SB_EV_DATA
                                                     : SB_EV_NOTIFY],
               tx_reqs ? (double)tx_bytes / (double)tx_reqs : 0.0);
    }
    printf("\n");
    fflush(stdout);
    free(lat);
}

void sb_fanout(int via, int msg0, int pay)
{
    const sb_opts_t *o = &sb->o;
    int expect = SB_GET(sb->ready) - SB_GET(sb->dropped), k, timeouts = 0;
    long long self0 = cpu_us_self(), rx0 = SB_GET(sb->rx_bytes);
    sb_usage_t u0, u1;
    static char buf[SB_REQ_MAX];
    static sb_redis_t r0, r1;

    pub_err = resent = 0;
    tx_bytes = tx_reqs = 0;
    __atomic_store_n(&sb->paychk, 0, __ATOMIC_RELEASE);
    if (o->redis_port) {
        sb_redis_read(o->redis_port, &r0);
    }
    sb_usage_read_set(o->pids, o->npids, &u0);
    for (k = 0; k < o->msgs; k++) {
        int K = msg0 + k, len;
        int64_t deadline;
        __atomic_store_n(&sb->fan_cur, K, __ATOMIC_RELEASE);
        if (via == SB_VIA_FLOOR) {
            len = floor_bytes(K, buf, sizeof(buf), pay);
            fan_sent[K] = sb_now();
            sb_floor_send(K, buf, (size_t)len, NULL);
            fan_resp[K] = 1;
        }
        else {
            len = fan_request(via, K, buf, sizeof(buf), pay);
            request(0, via == SB_VIA_CAPI ? PUB_BENCH_FAN : PUB_FAN, K,
                    buf, len);
        }
        deadline = sb_now() + (int64_t)o->msg_timeout_s * 1000000000LL;
        while ((SB_GET(sb->fan_count[K]) < expect || !fan_resp[K])
               && sb_now() < deadline) {
            if (pub[0] && sb_conn_stale(pub[0], sb_now(), SB_PUB_STALE_NS)) {
                sb_conn_close(pub[0], ETIMEDOUT);
            }
            if (fan_again) {
                fan_again = 0;
                resent++;
                request(0, via == SB_VIA_CAPI ? PUB_BENCH_FAN : PUB_FAN, K,
                        buf, len);
            }
            sb_conn_poll(1);
        }
        timeouts += sb_now() >= deadline;
        pump_for(20);           /* let this message's wake settle */
    }
    sb_usage_read_set(o->pids, o->npids, &u1);
    if (o->redis_port) {
        sb_redis_read(o->redis_port, &r1);
    }
    fan_report(via, msg0, expect,
               via == SB_VIA_FLOOR ? (double)(cpu_us_self() - self0) / 1e3
                                   : u1.cpu_ms - u0.cpu_ms,
               timeouts, pay, SB_GET(sb->rx_bytes) - rx0);
    if (o->redis_port) {        /* after the fanout line it belongs to */
        sb_redis_line(pay ? "fanout-payload" : "fanout", "publish",
                      o->msgs, &r0, &r1);
    }
}

/* ---- targeted ------------------------------------------------------- */

static int tgt_request(int i, char *buf, size_t cap, int pay)
{
    const sb_opts_t *o = &sb->o;
    char name[SB_NAME_MAX], body[SB_PAY_MAX + 1], tag[48];
    long long ns = (long long)sb_now();
    int blen;

    if (pay) {
        /* the task id p<i>.<ns> is in the body, so nchan (which has no
         * task id) carries it too; mod_sse_mgr gets it in the URL as
         * well, and the listener checks that both agree */
        snprintf(tag, sizeof(tag), "p%d.%lld", i, ns);
        if ((blen = sb_payload(body, sizeof(body), tag, o->payload)) < 0) {
            return -1;
        }
        sb_name(i, name, sizeof(name));
        if (o->flavor == SB_FL_SSE) {
            return snprintf(buf, cap, "POST %snotify-completions/%s/%s "
                            "HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                            "application/json\r\nContent-Length: %d\r\n"
                            "\r\n%s", o->prefix, sb->lst[i].id, tag, blen,
                            body);
        }
        return snprintf(buf, cap, "POST /pub/id/%s HTTP/1.1\r\n"
                        "Host: 127.0.0.1\r\nContent-Type: application/json"
                        "\r\nContent-Length: %d\r\n\r\n%s", name, blen,
                        body);
    }

    if (o->flavor == SB_FL_SSE) {
        return snprintf(buf, cap, "POST %snotify-completions/%s/t%d.%lld "
                        "HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        "Content-Length: 0\r\n\r\n",
                        o->prefix, sb->lst[i].id, i, ns);
    }
    sb_name(i, name, sizeof(name));
    blen = snprintf(body, sizeof(body), "\"completed^{\\\"timestamp\\\":"
                    "%lld,\\\"id\\\":\\\"%s\\\",\\\"taskid\\\":\\\"t%d.%lld"
                    "\\\"}\"", (long long)time(NULL) * 1000, name, i, ns);
    return snprintf(buf, cap, "POST /pub/id/%s HTTP/1.1\r\n"
                    "Host: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    "Content-Length: %d\r\n\r\n%s", name, blen, body);
}

/* Send to the ready listeners through the window; stop at the cap. */
static int tgt_http(const int *tg, int T, int64_t cap_at, int pay)
{
    const sb_opts_t *o = &sb->o;
    static char buf[SB_REQ_MAX];
    int next = 0, k;

    for (;;) {
        int64_t now = sb_now();
        for (k = 0; k < o->pub_conns; k++) {
            sb_conn_t *c = pub[k];
            if (c && sb_conn_stale(c, now, SB_PUB_STALE_NS)) {
                sb_conn_close(c, ETIMEDOUT);    /* its requests: retry */
            }
        }
        for (k = 0; k < o->pub_conns && (next < T || nretry); k++) {
            sb_conn_t *c = pub_get(k);
            while (c && c->fcount < o->pub_depth && (next < T || nretry)) {
                int again = nretry > 0;
                int i = again ? retry[--nretry] : tg[next++];
                int len = tgt_request(i, buf, sizeof(buf), pay);
                resent += again;
                request(k, PUB_TGT, i, buf, len);
                tgt_sent++;
                c = pub[k];
            }
        }
        if (sb_now() > cap_at) {
            return 1;
        }
        if (next == T && !nretry && tgt_resp >= tgt_sent) {
            return 0;           /* all answered: wait for receipts after */
        }
        sb_conn_poll(1);
    }
}

static void wait_receipts(int ph, int T, int64_t until)
{
    while (SB_GET(sb->tgt_count[ph]) < T && sb_now() < until) {
        sb_conn_poll(1);
    }
}

static void tgt_report(int via, int T, int64_t t0, double cpu_ms,
                       int capped, int pay, long long rx)
{
    const sb_opts_t *o = &sb->o;
    int ph = via == SB_VIA_CAPI ? 1 : pay ? 2 : 0, i;
    int64_t *lat = malloc(sizeof(*lat) * ((size_t)o->n + 1)), t_last = t0;
    long nl = 0;
    sb_stats_t sl, sr;
    double secs;

    for (i = 0; i < o->n; i++) {
        int64_t l = sb->tgt_lat[(size_t)ph * o->n + (size_t)i];
        if (l) {
            lat[nl++] = l;
            if (sb->tgt_at[(size_t)ph * o->n + (size_t)i] > t_last) {
                t_last = sb->tgt_at[(size_t)ph * o->n + (size_t)i];
            }
        }
    }
    sb_stats_of(lat, nl, &sl);
    sb_stats_of(rtt, rtt_n, &sr);
    secs = (double)(t_last - t0) / 1e9;
    printf("R targeted via=%s n=%d expect=%d sent=%ld resp=%ld recv=%ld "
           "lost=%ld pub_per_s=%.0f deliv_per_s=%.0f p50_us=%.1f "
           "p99_us=%.1f max_us=%.1f rtt_p50_us=%.1f cpu_ms=%.1f "
           "cpu_us_per_delivery=%.3f capped=%d secs=%.3f pub_err=%ld "
           "resent=%ld conns=%d depth=%d api={%s}",
           via_name[via], o->n, T, via == SB_VIA_CAPI ? 1 : tgt_sent,
           via == SB_VIA_CAPI ? (long)api_done : tgt_resp, nl,
           (long)T - nl,
           t_last_resp > t0 ? (double)tgt_resp * 1e9
                              / (double)(t_last_resp - t0) : 0.0,
           secs > 0 ? (double)nl / secs : 0.0, sl.p50 / 1e3, sl.p99 / 1e3,
           sl.max / 1e3, sr.p50 / 1e3, cpu_ms,
           nl ? cpu_ms * 1e3 / (double)nl : 0.0, capped, secs, pub_err,
           resent, o->pub_conns, o->pub_depth, api_line);
    if (pay) {
        printf(" payload=%d checked=%d rx_per_delivery=%.1f ev_bytes=%d "
               "req_bytes=%.1f", o->payload, SB_GET(sb->paychk),
               nl ? (double)rx / (double)nl : 0.0,
               sb->ev_bytes[o->flavor == SB_FL_NCHAN ? SB_EV_DATA
                                                     : SB_EV_COMPLETED],
               tx_reqs ? (double)tx_bytes / (double)tx_reqs : 0.0);
    }
    printf("\n");
    fflush(stdout);
    free(lat);
}

/* One request carries every listener's id (line i: listener i, empty
 * when it is not ready), on a connection of its own with room for it. */
static void capi_completions(void)
{
    const sb_opts_t *o = &sb->o;
    size_t cap = (size_t)o->n * (SB_ID_MAX + 1) + 512, len;
    char *body = malloc(cap), head[256];
    sb_req_t r = { PUB_BENCH_TGT, 0, 0 };
    sb_conn_t *c;
    int i, hlen;

    for (i = 0, len = 0; body && i < o->n; i++) {
        if (sb->lst[i].state == SB_L_READY) {
            len += (size_t)snprintf(body + len, cap - len, "%s",
                                    sb->lst[i].id);
        }
        body[len++] = '\n';
    }
    hlen = snprintf(head, sizeof(head), "POST /bench/completions?n=%d "
                    "HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                    "text/plain\r\nContent-Length: %zu\r\n\r\n", o->n,
                    len);
    c = body ? sb_conn_open(SB_CTRL, SB_PUB_MAX - 1, NULL, o->port,
                            len + (size_t)hlen) : NULL;
    if (c == NULL || sb_conn_request(c, head, (size_t)hlen, &r) < 0
        || sb_conn_send(c, body, len) < 0) {
        pub_err++;
        api_done = 1;
    }
    else {
        pub[SB_PUB_MAX - 1] = c;
    }
    free(body);
}

void sb_targeted(int via, int pay)
{
    const sb_opts_t *o = &sb->o;
    int *tg = malloc(sizeof(*tg) * ((size_t)o->n + 1)), T = 0, i, capped = 0;
    int ph = via == SB_VIA_CAPI ? 1 : pay ? 2 : 0;
    long long rx0 = SB_GET(sb->rx_bytes);
    int64_t t0, cap_at;
    sb_usage_t u0, u1;
    static sb_redis_t r0, r1;

    for (i = 0; i < o->n; i++) {
        if (sb->lst[i].state == SB_L_READY) {
            tg[T++] = i;
        }
    }
    pub_err = tgt_sent = tgt_resp = rtt_n = resent = 0;
    tx_bytes = tx_reqs = 0;
    __atomic_store_n(&sb->paychk, 0, __ATOMIC_RELEASE);
    nretry = 0;
    t_last_resp = 0;
    if (o->redis_port) {
        sb_redis_read(o->redis_port, &r0);
    }
    sb_usage_read_set(o->pids, o->npids, &u0);
    t0 = sb_now();
    cap_at = t0 + (int64_t)o->cap_s * 1000000000LL;
    if (via == SB_VIA_HTTP) {
        capped = tgt_http(tg, T, cap_at, pay);
    }
    else {
        api_done = 0;
        capi_completions();
        while (!api_done && sb_now() < cap_at) {
            sb_conn_poll(1);
        }
    }
    wait_receipts(ph, T, capped ? sb_now() + 1000000000LL : cap_at);
    capped |= SB_GET(sb->tgt_count[ph]) < T;
    sb_usage_read_set(o->pids, o->npids, &u1);
    if (o->redis_port) {
        sb_redis_read(o->redis_port, &r1);
    }
    tgt_report(via, T, t0, u1.cpu_ms - u0.cpu_ms, capped, pay,
               SB_GET(sb->rx_bytes) - rx0);
    if (o->redis_port) {
        sb_redis_line(pay ? "targeted-payload" : "targeted", "publish",
                      (double)tgt_resp, &r0, &r1);
    }
    free(tg);
}

/* ---- the floor: this process is the server --------------------------- */

int sb_floor_accept(int lfd)
{
    static const char ev[] = "id: 1\ndata:\"registered^x\"\n\n";
    char head[256];
    int fd, got = 0, hlen;

    hlen = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\n"
                    "Content-Type: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\n"
                    "Transfer-Encoding: chunked\r\n\r\n%zx\r\n%s\r\n",
                    sizeof(ev) - 1, ev);
    while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC))
           >= 0) {
        sb_conn_t *c = npeers < sb->o.n
                       ? sb_conn_adopt(fd, SB_FLOORPEER, npeers, 256) : NULL;
        if (c == NULL) {
            close(fd);
            continue;
        }
        peers[npeers++] = c;
        sb_conn_send(c, head, (size_t)hlen);
        got++;
    }
    return got;
}

/* One write per socket, in one loop: nothing between the bytes and the
 * kernel but the system call. */
void sb_floor_send(int k, const char *bytes, size_t len, int64_t *t_end)
{
    int i;

    (void)k;
    for (i = 0; i < npeers; i++) {
        if (peers[i] && write(peers[i]->fd, bytes, len) != (ssize_t)len) {
            pub_err++;
        }
    }
    if (t_end) {
        *t_end = sb_now();
    }
}
