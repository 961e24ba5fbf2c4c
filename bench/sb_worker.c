/*
 * A listener shard: one process that opens listeners i = w, w + W, ...
 * up to the parent's target, each the way a browser tab would -- make-id,
 * register-listener (the stream), listen -- or for nchan one subscriber
 * request, and records what each stream receives and when.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "sb.h"

#define SB_CTRL_CONNS  4        /* keep-alive control connections */
#define SB_CTRL_DEPTH  16       /* pipelined requests on each */
#define SB_INFLIGHT    256      /* listeners being set up at once */

enum { REQ_MAKE_ID, REQ_LISTEN };

static int W, me, local_n;
static char src[24];
static sb_conn_t **streams;             /* by i / W */
static sb_conn_t *ctrl[SB_CTRL_CONNS];
static int *backlog, bl_head, bl_count, bl_cap;
static int inflight, ctrl_failures;
static int64_t *last_at;                /* by i / W: last bytes, ns */
/* streams sent to reconnect, oldest first: each is opened again once
 * its time comes (a ring of local_n: a listener is in it once at most) */
static struct { int i; int64_t at; } *reopen_q;
static int rq_head, rq_len;

#define LST(i) (&sb->lst[i])
#define SB_MAX_REOPEN   20      /* per listener */
#define SB_REOPEN_NS    3000000000LL    /* EventSource waits retry: (the
                                           module sends 3000 ms) */

static void settle(int i, int state)
{
    LST(i)->state = state;
    inflight--;
    if (state == SB_L_READY) {
        SB_ADD(sb->ready, 1);
        if (sb_is_blocked(i) && streams[i / W]) {
            sb_conn_mute(streams[i / W]);   /* reads nothing from now */
        }
    }
    else {
        SB_ADD(sb->failed, 1);
    }
}

static void fail(int i, int why)
{
    SB_ADD(sb->fail_why[why], 1);
    settle(i, SB_L_FAIL);
}

static void open_stream(int i)
{
    char req[512], name[SB_NAME_MAX];
    const sb_opts_t *o = &sb->o;
    sb_conn_t *c;
    int len;

    sb_name(i, name, sizeof(name));
    if (o->flavor == SB_FL_SSE) {
        len = snprintf(req, sizeof(req), "GET %sregister-listener/%s",
                       o->prefix, LST(i)->id);
    }
    else if (o->flavor == SB_FL_NCHAN && o->key[0]) {
        len = snprintf(req, sizeof(req), "GET /sub/multi/%s/%s", name,
                       o->key);
    }
    else if (o->flavor == SB_FL_NCHAN) {
        len = snprintf(req, sizeof(req), "GET /sub/id/%s", name);
    }
    else {
        len = snprintf(req, sizeof(req), "GET /floor/%s", name);
    }
    len += snprintf(req + len, sizeof(req) - (size_t)len,
                    " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Accept: text/event-stream\r\n"
                    "Cache-Control: no-cache\r\n\r\n");
    sb_conn_rcvbuf = sb_is_blocked(i) ? 2048 : 0;   /* a small window */
    c = sb_conn_open(SB_STREAM, i, src, o->port, (size_t)len);
    sb_conn_rcvbuf = 0;
    if (c == NULL || sb_conn_send(c, req, (size_t)len) < 0) {
        if (c) {
            sb_conn_close(c, 0);
        }
        fail(i, SB_FAIL_CONNECT);
        return;
    }
    streams[i / W] = c;
    LST(i)->state = SB_L_STREAM;
}

/* ---- control requests: make-id, listen ------------------------------- */

static int ctrl_pick(void)
{
    static int rr;
    int k, j;

    for (j = 0; j < SB_CTRL_CONNS; j++) {
        k = (rr + j) % SB_CTRL_CONNS;
        if (ctrl[k] == NULL) {
            ctrl[k] = sb_conn_open(SB_CTRL, k, src, sb->o.port,
                                   SB_CTRL_DEPTH * 256);
        }
        if (ctrl[k] && ctrl[k]->fcount < SB_CTRL_DEPTH) {
            rr = k + 1;
            return k;
        }
    }
    return -1;
}

static void backlog_push(int kind, int i)
{
    if (bl_count == bl_cap) {
        fail(i, SB_FAIL_CTRL);  /* cannot happen: sized for all */
        return;
    }
    backlog[(bl_head + bl_count) % bl_cap] = i * 2 + kind;
    bl_count++;
}

static int ctrl_send(int kind, int i)
{
    const sb_opts_t *o = &sb->o;
    char req[512], name[SB_NAME_MAX];
    sb_req_t r = { kind, i, 0 };
    int k = ctrl_pick(), len;

    if (k < 0) {
        return -1;
    }
    if (kind == REQ_MAKE_ID) {
        sb_name(i, name, sizeof(name));
        len = snprintf(req, sizeof(req), "GET %smake-id/%s HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\n\r\n", o->prefix, name);
    }
    else {
        len = snprintf(req, sizeof(req), "PUT %slisten/%s/%s HTTP/1.1\r\n"
                       "Host: 127.0.0.1\r\nContent-Length: 0\r\n\r\n",
                       o->prefix, LST(i)->id, o->key);
    }
    return sb_conn_request(ctrl[k], req, (size_t)len, &r);
}

static void control(int kind, int i)
{
    if (bl_count || ctrl_send(kind, i) < 0) {
        backlog_push(kind, i);
    }
}

static void pump(void)
{
    while (bl_count) {
        int v = backlog[bl_head];
        if (ctrl_send(v & 1, v / 2) < 0) {
            return;
        }
        bl_head = (bl_head + 1) % bl_cap;
        bl_count--;
    }
}

static int valid_id(const char *s, size_t len)
{
    size_t i;

    if (len == 0 || len >= SB_ID_MAX) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                    "0123456789._~-_", s[i])) {
            return 0;
        }
    }
    return 1;
}

static void on_response(sb_conn_t *c, const sb_req_t *req, int status,
                        const char *body, size_t len)
{
    int i = req->idx;

    (void)c;
    if (i < 0) {
        return;                 /* a response nobody asked for */
    }
    while (len && (body[len - 1] == '\n' || body[len - 1] == '\r')) {
        len--;
    }
    if (req->kind == REQ_MAKE_ID && status == 200 && valid_id(body, len)) {
        memcpy(LST(i)->id, body, len);
        LST(i)->id[len] = '\0';
        open_stream(i);
    }
    else if (req->kind == REQ_LISTEN && status == 200
             && LST(i)->state == SB_L_LISTEN) {
        settle(i, SB_L_READY);
    }
    else if (LST(i)->state == SB_L_ID || LST(i)->state == SB_L_LISTEN) {
        fail(i, SB_FAIL_CTRL);
        if (streams[i / W]) {
            sb_conn_close(streams[i / W], 0);
        }
    }
}

/* ---- what a stream receives ----------------------------------------- */

static void on_head(sb_conn_t *c)
{
    if (c->status != 200) {
        sb_conn_close(c, 0);
    }
    else if (sb->o.flavor == SB_FL_NCHAN) {
        settle(c->idx, SB_L_READY);     /* nchan says nothing more */
    }
}

static void on_registered(sb_conn_t *c)
{
    int i = c->idx;

    if (LST(i)->state != SB_L_STREAM) {
        SB_ADD(sb->dup, 1);
    }
    else if (sb->o.flavor == SB_FL_SSE && sb->o.key[0]
             && (sb->o.blocked == 0 || sb_is_blocked(i))) {
        LST(i)->state = SB_L_LISTEN;
        control(REQ_LISTEN, i);
    }
    else {
        settle(i, SB_L_READY);
    }
}

/* A receipt of fan-out message k (the one being published, or for a
 * payload the one its tag names). */
static void fan_receipt(sb_conn_t *c, int k)
{
    int64_t *at = &sb->fan[(size_t)c->idx * SB_MAX_MSGS + (size_t)k];

    if (*at) {
        SB_ADD(sb->dup, 1);     /* twice, or late after a timeout */
    }
    else {
        *at = c->t_read;
        SB_ADD(sb->fan_count[k], 1);
    }
}

static void on_notify(sb_conn_t *c, const char *key, size_t len)
{
    if (len != strlen(sb->o.key) || memcmp(key, sb->o.key, len) != 0) {
        SB_ADD(sb->bad, 1);
    }
    else {
        fan_receipt(c, SB_GET(sb->fan_cur));
    }
}

/* A completion of phase ph for listener idx, sent at ns. */
static void tgt_receipt(sb_conn_t *c, int ph, long long idx, long long ns)
{
    if (idx != c->idx) {
        SB_ADD(sb->bad, 1);
        return;
    }
    if (sb->tgt_lat[(size_t)ph * sb->o.n + (size_t)idx]) {
        SB_ADD(sb->dup, 1);
        return;
    }
    sb->tgt_at[(size_t)ph * sb->o.n + (size_t)idx] = c->t_read;
    sb->tgt_lat[(size_t)ph * sb->o.n + (size_t)idx] = c->t_read - ns;
    SB_ADD(sb->tgt_count[ph], 1);
}

/* A payload (the body the publisher sent, sb_payload) checked whole; its
 * tag says which receipt it is: m<K> fan-out message K, p<i>.<ns> the
 * completion of listener i sent at ns. want_tag: the task id the
 * server's wrapper named, which must be the payload's own. */
static void on_payload(sb_conn_t *c, const char *p, size_t len,
                       const char *want_tag, size_t want_len)
{
    const char *tag;
    size_t tl;
    char t[64], *end;
    long long a, b = 0;

    if (sb_payload_check(p, len, sb->o.payload, &tag, &tl) < 0
        || tl < 2 || tl >= sizeof(t)
        || (want_tag && (want_len != tl || memcmp(want_tag, tag, tl)))) {
        SB_ADD(sb->bad, 1);
        return;
    }
    memcpy(t, tag, tl);
    t[tl] = '\0';
    a = strtoll(t + 1, &end, 10);
    if (t[0] == 'p' && *end == '.') {
        b = strtoll(end + 1, &end, 10);
    }
    if (*end != '\0' || (t[0] == 'm' && (a < 0 || a >= SB_MAX_MSGS))
        || (t[0] != 'm' && t[0] != 'p')) {
        SB_ADD(sb->bad, 1);
        return;
    }
    SB_ADD(sb->paychk, 1);
    if (t[0] == 'm') {
        fan_receipt(c, (int)a);
    }
    else {
        tgt_receipt(c, 2, a, b);
    }
}

/* mod_sse_mgr's named events (SPEC 8), and the floor's copy of them:
 *   notify:    {"key":"<key>","data":<payload>}
 *   completed: {"timestamp":<ms>,"id":"<id>","taskid":"<t>","data":<p>}
 * Every byte around the payload is checked too. */
static void on_named(sb_conn_t *c, int kind, const char *d, size_t len)
{
    char head[SB_ID_MAX + 64];
    const char *p, *task = NULL, *q;
    size_t hl, tl = 0;

    if (len < 2 || d[len - 1] != '}') {
        SB_ADD(sb->bad, 1);
        return;
    }
    if (kind == SB_EV_NOTIFY) {
        hl = (size_t)snprintf(head, sizeof(head), "{\"key\":\"%s\","
                              "\"data\":", sb->o.key);
        p = d;
    }
    else {
        /* {"timestamp":<digits>, then the id this stream holds */
        static const char ts[] = "{\"timestamp\":";
        if (strncmp(d, ts, sizeof(ts) - 1) != 0) {
            SB_ADD(sb->bad, 1);
            return;
        }
        p = d + sizeof(ts) - 1;
        while (p < d + len && *p >= '0' && *p <= '9') {
            p++;
        }
        hl = (size_t)snprintf(head, sizeof(head), ",\"id\":\"%s\","
                              "\"taskid\":\"", LST(c->idx)->id);
        if ((size_t)(d + len - p) < hl || memcmp(p, head, hl) != 0) {
            SB_ADD(sb->bad, 1);
            return;
        }
        task = p + hl;
        q = memchr(task, '"', (size_t)(d + len - task));
        if (q == NULL) {
            SB_ADD(sb->bad, 1);
            return;
        }
        tl = (size_t)(q - task);
        p = q + 1;
        hl = (size_t)snprintf(head, sizeof(head), ",\"data\":");
    }
    if ((size_t)(d + len - p) < hl + 1 || memcmp(p, head, hl) != 0) {
        SB_ADD(sb->bad, 1);
        return;
    }
    on_payload(c, p + hl, (size_t)(d + len - 1 - (p + hl)), task, tl);
}

/* taskid "t<i>.<ns>" (HTTP) or "c<i>.<ns>" (C API): whose, and when it
 * was sent, in the CLOCK_MONOTONIC every process shares. */
static void on_completed(sb_conn_t *c, const char *data)
{
    const char *p = strstr(data, "taskid\\\":\\\"");
    long long idx, ns;
    int ph;
    char *end;

    if (p == NULL || (p[11] != 't' && p[11] != 'c')) {
        SB_ADD(sb->bad, 1);
        return;
    }
    ph = p[11] == 'c';
    idx = strtoll(p + 12, &end, 10);
    if (*end != '.') {
        SB_ADD(sb->bad, 1);
        return;
    }
    ns = strtoll(end + 1, &end, 10);
    tgt_receipt(c, ph, idx, ns);
}

/* punct: a heartbeat of a stream that reads is due a period after the
 * last bytes it was sent; how late it came, if the parent measures. */
static void lateness(sb_conn_t *c, int kind)
{
    int64_t *last = &last_at[c->idx / W];
    long k;

    if (kind == SB_EV_COMMENT && *last && SB_GET(sb->measuring)
        && LST(c->idx)->state == SB_L_READY && !sb_is_blocked(c->idx)
        && (k = sb->late_n[me]) < sb->late_cap) {
        sb->late[(size_t)me * (size_t)sb->late_cap + (size_t)k] =
            c->t_read - *last - (int64_t)sb->o.hb_s * 1000000000LL;
        sb->late_cnt[c->idx]++;
        __atomic_store_n(&sb->late_n[me], k + 1, __ATOMIC_RELEASE);
    }
    *last = c->t_read;
}

static void on_event(sb_conn_t *c, int kind, const char *data, size_t len)
{
    char buf[SB_DATA_MAX + 1];

    if (sb->o.hb_s) {
        lateness(c, kind);
    }
    if (kind == SB_EV_PING || kind == SB_EV_COMMENT) {
        if (LST(c->idx)->state == SB_L_READY) {
            SB_ADD(sb->heartbeats, 1);
        }
        return;
    }
    if (kind == SB_EV_OTHER) {
        SB_ADD(sb->missed, 1);  /* event: missed, or one we do not know */
        return;
    }
    if (kind == SB_EV_NOTIFY || kind == SB_EV_COMPLETED) {
        on_named(c, kind, data, len);
        return;
    }
    if (sb->o.payload && len > 5 && memcmp(data, "{\"t\":", 5) == 0) {
        on_payload(c, data, len, NULL, 0);      /* nchan: the body as is */
        return;
    }
    if (len > SB_DATA_MAX) {
        SB_ADD(sb->bad, 1);
        return;
    }
    memcpy(buf, data, len);
    buf[len] = '\0';
    if (strncmp(buf, "\"registered^", 12) == 0) {
        on_registered(c);
    }
    else if (strncmp(buf, "\"notify^", 8) == 0 && len > 9) {
        on_notify(c, buf + 8, len - 9);
    }
    else if (strncmp(buf, "\"completed^", 11) == 0) {
        on_completed(c, buf);
    }
    else {
        SB_ADD(sb->bad, 1);
    }
}

static void on_closed(sb_conn_t *c, int err)
{
    int i = c->idx, k;

    if (c->role == SB_CTRL) {
        ctrl[i] = NULL;
        /* a keep-alive close: ask again; so for a connection replaced
         * because its handshake had not completed within SB_STALE_NS (a
         * full accept queue drops SYNs, which a browser's kernel sends
         * again): a new connection asks; a refused one: give up */
        for (k = 0; k < c->fcount; k++) {
            const sb_req_t *r = &c->fifo[(c->fhead + k) % SB_FIFO];
            if ((c->connected || err == ETIMEDOUT)
                && ++ctrl_failures < 100000) {
                backlog_push(r->kind, r->idx);
            }
            else {
                fail(r->idx, SB_FAIL_CTRL);
            }
        }
        c->fcount = 0;
        return;
    }
    streams[i / W] = NULL;
    if (LST(i)->state == SB_L_READY) {
        LST(i)->state = SB_L_DEAD;
        if (SB_GET(sb->phase) != SB_PH_STOP) {
            SB_ADD(sb->dropped, 1);
        }
    }
    else if (LST(i)->state == SB_L_STREAM && c->status == 200
             && sb->o.flavor == SB_FL_SSE
             && ++LST(i)->reopened <= SB_MAX_REOPEN) {
        int slot = (rq_head + rq_len++) % local_n;
        SB_ADD(sb->reopened, 1);        /* a child without room: again */
        reopen_q[slot].i = i;
        reopen_q[slot].at = sb_now() + SB_REOPEN_NS;
    }
    else if (LST(i)->state == SB_L_STREAM
             || LST(i)->state == SB_L_LISTEN) {
        fail(i, c->status == 0 ? SB_FAIL_CLOSED
                : c->status != 200 ? SB_FAIL_STATUS : SB_FAIL_EARLY);
    }
}

static void reopen_due(void)
{
    int64_t now = sb_now();

    while (rq_len && reopen_q[rq_head].at <= now) {
        int i = reopen_q[rq_head].i;
        rq_head = (rq_head + 1) % local_n;
        rq_len--;
        open_stream(i);
    }
}

static void start(int i)
{
    LST(i)->state = SB_L_ID;
    inflight++;
    if (sb->o.flavor == SB_FL_SSE) {
        control(REQ_MAKE_ID, i);
    }
    else {
        open_stream(i);
    }
}

/* Replace control connections whose requests wait for a thread that the
 * server process holding them does not have (their requests are asked
 * again on a new connection). */
static void replace_stalled(void)
{
    int64_t now = sb_now();
    int k;

    for (k = 0; k < SB_CTRL_CONNS; k++) {
        if (ctrl[k] && sb_conn_stale(ctrl[k], now, SB_STALE_NS)) {
            SB_ADD(sb->replaced, 1);
            sb_conn_close(ctrl[k], ETIMEDOUT);
        }
    }
}

void sb_worker_run(int w)
{
    static const sb_hooks_t hooks = {
        on_head, on_event, on_response, on_closed, NULL
    };
    int epfd, next = w, i;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    me = w;
    W = sb->o.workers;
    local_n = sb->o.n / W + 1;
    snprintf(src, sizeof(src), "127.0.%d.%d",
             (sb->o.src_base + me) / 250, (sb->o.src_base + me) % 250 + 1);
    streams = calloc((size_t)local_n, sizeof(*streams));
    last_at = calloc((size_t)local_n, sizeof(*last_at));
    reopen_q = calloc((size_t)local_n, sizeof(*reopen_q));
    bl_cap = local_n + SB_CTRL_CONNS * SB_FIFO + 16;
    backlog = calloc((size_t)bl_cap, sizeof(*backlog));
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (streams == NULL || last_at == NULL || backlog == NULL
        || reopen_q == NULL || epfd < 0) {
        _exit(2);
    }
    sb_conn_init(epfd, &hooks);
    while (SB_GET(sb->phase) != SB_PH_STOP) {
        int target = SB_GET(sb->target);
        while (inflight < SB_INFLIGHT && next < target) {
            start(next);
            next += W;
        }
        replace_stalled();
        reopen_due();
        pump();
        sb_conn_poll(20);
    }
    for (i = 0; i < local_n; i++) {
        if (streams[i]) {
            sb_conn_close(streams[i], 0);
        }
    }
    for (i = 0; i < SB_CTRL_CONNS; i++) {
        if (ctrl[i]) {
            sb_conn_close(ctrl[i], 0);
        }
    }
    _exit(0);
}
