/*
 * Non-blocking HTTP/1.1 client connections in one epoll set: connect from
 * a chosen source address, write requests (pipelined on control
 * connections), and parse responses incrementally -- the head, then a body
 * framed by Content-Length, chunks or the end of the connection. On a
 * stream the body goes through an SSE line parser; on a control
 * connection it is kept (bounded) until the message ends. Whatever the
 * server sends, no buffer grows past its bound: an overlong line, head or
 * chunk size ends the connection as a protocol error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "sb.h"

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum { H_HEAD, H_LEN, H_CHUNK_SIZE, H_CHUNK_DATA, H_CHUNK_CRLF,
       H_TRAILER, H_CLOSE, H_DONE };

int sb_conn_rcvbuf;
size_t sb_conn_line_max = SB_LINE_MAX;
static int epfd = -1;
static sb_hooks_t hooks;
static sb_conn_t *dead;         /* closed in this round, freed after it */

int64_t sb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void sb_conn_init(int fd, const sb_hooks_t *h)
{
    epfd = fd;
    hooks = *h;
}

static void set_events(sb_conn_t *c, int out)
{
    struct epoll_event ev;

    if (c->want_out == out) {
        return;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP | (out ? EPOLLOUT : 0);
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = out;
}

/* Out of the epoll set: what the server sends stays in the socket. */
void sb_conn_mute(sb_conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    }
}

static sb_conn_t *conn_new(int fd, int role, int idx, size_t out_cap)
{
    struct epoll_event ev;
    sb_conn_t *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->out = malloc(out_cap);
    c->body = role == SB_CTRL ? malloc(SB_BODY_MAX + 1) : NULL;
    if (role == SB_STREAM) {    /* data: one byte more for a NUL */
        c->line = malloc(sb_conn_line_max);
        c->data = malloc(sb_conn_line_max + 1);
    }
    if (c->out == NULL || (role == SB_CTRL && c->body == NULL)
        || (role == SB_STREAM && (c->line == NULL || c->data == NULL))) {
        free(c->out);
        free(c->body);
        free(c->line);
        free(c->data);
        free(c);
        return NULL;
    }
    c->fd = fd;
    c->role = role;
    c->idx = idx;
    c->out_cap = out_cap;
    c->hstate = H_HEAD;
    c->want_out = 1;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLRDHUP | EPOLLOUT;
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(c->out);
        free(c->body);
        free(c->line);
        free(c->data);
        free(c);
        return NULL;
    }
    return c;
}

/* A socket bound to `src` (port chosen at connect time, per destination,
 * so one source address is not limited to one set of ephemeral ports),
 * connecting to 127.0.0.1:port. */
sb_conn_t *sb_conn_open(int role, int idx, const char *src, int port,
                        size_t out_cap)
{
    struct sockaddr_in sa;
    int fd, one = 1;
    sb_conn_t *c;

    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return NULL;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (sb_conn_rcvbuf > 0) {   /* before connect: the window it offers */
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sb_conn_rcvbuf,
                   sizeof(sb_conn_rcvbuf));
    }
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    if (src && *src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
                   sizeof(one));
        inet_pton(AF_INET, src, &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            close(fd);
            return NULL;
        }
    }
    sa.sin_port = htons((unsigned short)port);
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0
        && errno != EINPROGRESS) {
        close(fd);
        return NULL;
    }
    c = conn_new(fd, role, idx, out_cap);
    if (c == NULL) {
        close(fd);
    }
    return c;
}

sb_conn_t *sb_conn_adopt(int fd, int role, int idx, size_t out_cap)
{
    sb_conn_t *c = conn_new(fd, role, idx, out_cap);

    if (c) {
        c->connected = 1;
    }
    return c;
}

/* Close with RST (linger 0): the bench opens and ends many thousands of
 * connections, and TIME_WAIT would keep their ports from the next run. */
void sb_conn_close(sb_conn_t *c, int err)
{
    struct linger lg = { 1, 0 };

    if (c->fd < 0) {
        return;
    }
    if (hooks.closed) {
        hooks.closed(c, err);
    }
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
    /* the same round may still hold events for it: free it after */
    c->next_dead = dead;
    dead = c;
}

static void reap(void)
{
    while (dead) {
        sb_conn_t *c = dead;
        dead = c->next_dead;
        free(c->out);
        free(c->body);
        free(c->line);
        free(c->data);
        free(c);
    }
}

static int flush_out(sb_conn_t *c)
{
    while (c->connected && c->out_off < c->out_len) {
        ssize_t n = write(c->fd, c->out + c->out_off,
                          c->out_len - c->out_off);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR) {
                break;
            }
            return -1;
        }
        c->out_off += (size_t)n;
    }
    if (c->out_off == c->out_len) {
        c->out_off = c->out_len = 0;
    }
    set_events(c, !c->connected || c->out_len > 0);
    return 0;
}

int sb_conn_send(sb_conn_t *c, const char *buf, size_t len)
{
    if (c->out_off > 0) {       /* keep what is unsent at the front */
        memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
        c->out_len -= c->out_off;
        c->out_off = 0;
    }
    if (len > c->out_cap - c->out_len) {
        return -1;              /* the caller's window was too large */
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += len;
    return flush_out(c);
}

/* Queue a request whose response will be matched in order. */
int sb_conn_request(sb_conn_t *c, const char *buf, size_t len,
                    sb_req_t *req)
{
    sb_req_t *slot;

    if (c->fcount == SB_FIFO) {
        return -1;
    }
    slot = &c->fifo[(c->fhead + c->fcount) % SB_FIFO];
    req->t = sb_now();
    *slot = *req;
    c->fcount++;
    return sb_conn_send(c, buf, len);
}

/* Has the oldest request on c waited longer than age_ns? A keep-alive
 * connection stays with the server process that accepted it; under a
 * thread per stream that process may have no thread left for it, while
 * a new connection would go to one that has. */
int sb_conn_stale(const sb_conn_t *c, int64_t now, int64_t age_ns)
{
    return c->fcount > 0 && now - c->fifo[c->fhead].t > age_ns;
}

/* ---- the SSE line parser --------------------------------------------- */

static void sse_dispatch(sb_conn_t *c)
{
    c->data[c->data_len] = '\0';   /* for the hooks' string functions */
    if (c->has_data && (c->ev_kind == SB_EV_NOTIFY
                        || c->ev_kind == SB_EV_COMPLETED)) {
        sb->ev_bytes[c->ev_kind] = (int)c->ev_bytes;
        hooks.event(c, c->ev_kind, c->data, c->data_len);
    }
    else if (c->ev_kind == SB_EV_PING) {
        hooks.event(c, SB_EV_PING, c->data, c->data_len);
    }
    else if (c->ev_kind == SB_EV_OTHER) {
        hooks.event(c, SB_EV_OTHER, c->data, c->data_len);
    }
    else if (c->has_data) {
        sb->ev_bytes[SB_EV_DATA] = (int)c->ev_bytes;
        hooks.event(c, SB_EV_DATA, c->data, c->data_len);
    }
    c->ev_bytes = 0;
    c->has_data = 0;
    c->data_len = 0;
    c->ev_kind = SB_EV_DATA;
}

static void field_value(const char *line, size_t len, size_t nlen,
                        const char **v, size_t *vlen)
{
    *v = line + nlen;
    *vlen = len - nlen;
    if (*vlen && **v == ' ') {
        (*v)++;
        (*vlen)--;
    }
}

static int sse_line(sb_conn_t *c, const char *line, size_t len)
{
    const char *v;
    size_t vlen;

    if (len == 0) {
        sse_dispatch(c);
    }
    else if (line[0] == ':') {
        hooks.event(c, SB_EV_COMMENT, line, len);
    }
    else if (len >= 5 && memcmp(line, "data:", 5) == 0) {
        field_value(line, len, 5, &v, &vlen);
        if (c->data_len + vlen + 1 > sb_conn_line_max) {
            return -1;
        }
        if (c->has_data) {
            c->data[c->data_len++] = '\n';
        }
        memcpy(c->data + c->data_len, v, vlen);
        c->data_len += vlen;
        c->has_data = 1;
    }
    else if (len >= 6 && memcmp(line, "event:", 6) == 0) {
        field_value(line, len, 6, &v, &vlen);
        c->ev_kind = (vlen == 4 && memcmp(v, "ping", 4) == 0)
                     ? SB_EV_PING
                     : (vlen == 6 && memcmp(v, "notify", 6) == 0)
                     ? SB_EV_NOTIFY
                     : (vlen == 9 && memcmp(v, "completed", 9) == 0)
                     ? SB_EV_COMPLETED : SB_EV_OTHER;
    }
    /* id:, retry: and unknown fields need nothing here */
    return 0;
}

/* Line by line (memchr: a payload's data line is a kilobyte or more). */
static int sse_feed(sb_conn_t *c, const char *p, size_t n)
{
    while (n > 0) {
        const char *nl = memchr(p, '\n', n);
        size_t take = nl ? (size_t)(nl - p) : n;

        if (take > sb_conn_line_max - c->line_len) {
            return -1;
        }
        memcpy(c->line + c->line_len, p, take);
        c->line_len += take;
        if (nl == NULL) {
            return 0;
        }
        c->ev_bytes += c->line_len + 1;
        if (c->line_len && c->line[c->line_len - 1] == '\r') {
            c->line_len--;
        }
        if (sse_line(c, c->line, c->line_len) < 0) {
            return -1;
        }
        c->line_len = 0;
        p += take + 1;
        n -= take + 1;
    }
    return 0;
}

/* ---- response framing ------------------------------------------------- */

static int body_bytes(sb_conn_t *c, const char *p, size_t n)
{
    if (c->role == SB_STREAM) {
        return sse_feed(c, p, n);
    }
    if (c->body_len + n > SB_BODY_MAX) {
        n = SB_BODY_MAX - c->body_len;     /* keep the start, count it */
    }
    memcpy(c->body + c->body_len, p, n);
    c->body_len += n;
    return 0;
}

static void message_done(sb_conn_t *c)
{
    sb_req_t req = { -1, -1, 0 };

    if (c->fcount) {
        req = c->fifo[c->fhead];
        c->fhead = (c->fhead + 1) % SB_FIFO;
        c->fcount--;
    }
    c->body[c->body_len] = '\0';
    hooks.response(c, &req, c->status, c->body, c->body_len);
    c->body_len = 0;
    c->head_len = 0;
    c->hstate = H_HEAD;
}

static const char *header(sb_conn_t *c, const char *name)
{
    size_t nlen = strlen(name);
    const char *p = strstr(c->head, "\r\n");

    while (p && p[2] != '\r') {
        p += 2;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            p += nlen + 1;
            while (*p == ' ' || *p == '\t') {
                p++;
            }
            return p;
        }
        p = strstr(p, "\r\n");
    }
    return NULL;
}

static int parse_head(sb_conn_t *c)
{
    const char *v;

    c->head[c->head_len] = '\0';
    if (strncmp(c->head, "HTTP/1.", 7) != 0 || c->head_len < 12) {
        return -1;
    }
    c->status = atoi(c->head + 9);
    v = header(c, "Connection");
    c->conn_close = v && strncasecmp(v, "close", 5) == 0;
    v = header(c, "Transfer-Encoding");
    if (v && strncasecmp(v, "chunked", 7) == 0) {
        c->hstate = H_CHUNK_SIZE;
        c->sz_len = 0;
    }
    else if ((v = header(c, "Content-Length")) != NULL) {
        c->left = atoll(v);
        c->hstate = c->left > 0 ? H_LEN : H_DONE;
        if (c->left < 0) {
            return -1;
        }
    }
    else if (c->status == 204 || c->status == 304 || c->status < 200) {
        c->hstate = H_DONE;
    }
    else {
        c->hstate = H_CLOSE;
    }
    if (c->role == SB_STREAM && hooks.head) {
        hooks.head(c);
    }
    return 0;
}

/* Consume the head from p; returns bytes used or -1. */
static long head_bytes(sb_conn_t *c, const char *p, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        if (c->head_len == SB_HEAD_MAX - 1) {
            return -1;
        }
        c->head[c->head_len++] = p[i];
        if (c->head_len >= 4
            && memcmp(c->head + c->head_len - 4, "\r\n\r\n", 4) == 0) {
            return parse_head(c) < 0 ? -1 : (long)(i + 1);
        }
    }
    return (long)n;
}

/* A chunk-size line, then its data, then CRLF; after the 0 chunk the
 * trailer lines up to an empty one. Returns bytes used or -1. */
static long chunk_bytes(sb_conn_t *c, const char *p, size_t n)
{
    size_t i = 0, take;

    if (c->hstate == H_CHUNK_DATA) {
        take = (size_t)c->left < n ? (size_t)c->left : n;
        if (body_bytes(c, p, take) < 0) {
            return -1;
        }
        c->left -= (long long)take;
        if (c->left == 0) {
            c->hstate = H_CHUNK_CRLF;
            c->sz_len = 0;
        }
        return (long)take;
    }
    for (; i < n; i++) {
        if (p[i] != '\n') {
            if (c->sz_len == sizeof(c->szline) - 1) {
                return -1;
            }
            c->szline[c->sz_len++] = p[i];
            continue;
        }
        c->szline[c->sz_len] = '\0';
        if (c->sz_len && c->szline[c->sz_len - 1] == '\r') {
            c->szline[--c->sz_len] = '\0';
        }
        if (c->hstate == H_CHUNK_CRLF) {
            if (c->sz_len) {
                return -1;
            }
            c->hstate = H_CHUNK_SIZE;
        }
        else if (c->hstate == H_TRAILER) {
            if (c->sz_len == 0) {
                c->hstate = H_DONE;
            }
        }
        else {
            char *end;
            c->left = strtoll(c->szline, &end, 16);
            if (end == c->szline || c->left < 0
                || c->left > (1LL << 30)) {
                return -1;
            }
            c->hstate = c->left ? H_CHUNK_DATA : H_TRAILER;
        }
        c->sz_len = 0;
        return (long)(i + 1);
    }
    return (long)n;
}

static int feed(sb_conn_t *c, const char *p, size_t n)
{
    while ((n > 0 || c->hstate == H_DONE) && c->fd >= 0) {
        long used = 0;
        size_t take;

        switch (c->hstate) {
        case H_HEAD:
            used = head_bytes(c, p, n);
            break;
        case H_LEN:
            take = (size_t)c->left < n ? (size_t)c->left : n;
            used = body_bytes(c, p, take) < 0 ? -1 : (long)take;
            c->left -= (long long)take;
            if (c->left == 0) {
                c->hstate = H_DONE;
            }
            break;
        case H_CLOSE:
            used = body_bytes(c, p, n) < 0 ? -1 : (long)n;
            break;
        case H_DONE:
            if (c->role != SB_CTRL) {
                return -1;      /* a stream that ended its body */
            }
            message_done(c);
            if (c->conn_close) {
                return -1;
            }
            continue;
        default:
            used = chunk_bytes(c, p, n);
            break;
        }
        if (used < 0) {
            return -1;
        }
        p += used;
        n -= (size_t)used;
    }
    return 0;
}

/* ---- the loop ----------------------------------------------------------- */

static void on_writable(sb_conn_t *c)
{
    if (!c->connected) {
        int err = 0;
        socklen_t len = sizeof(err);
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err) {
            sb_conn_close(c, err);
            return;
        }
        c->connected = 1;
        if (hooks.connected) {
            hooks.connected(c);
        }
    }
    if (c->fd >= 0 && flush_out(c) < 0) {
        sb_conn_close(c, errno ? errno : EPIPE);
    }
}

/* Read until EAGAIN; each read is stamped with the time it returned. */
static void on_readable(sb_conn_t *c)
{
    char buf[65536];

    while (c->fd >= 0) {
        ssize_t n = read(c->fd, buf, sizeof(buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            return;
        }
        if (n <= 0) {
            if (n == 0 && c->role == SB_CTRL && c->hstate == H_CLOSE) {
                message_done(c);
            }
            sb_conn_close(c, n == 0 ? 0 : errno);
            return;
        }
        c->t_read = sb_now();
        if (c->role == SB_STREAM) {
            SB_ADD(sb->rx_bytes, n);
        }
        if (c->role == SB_FLOORPEER) {
            continue;           /* the request: read and forgotten */
        }
        if (feed(c, buf, (size_t)n) < 0) {
            sb_conn_close(c, EPROTO);
            return;
        }
    }
}

/* One epoll round; returns how many events it handled. */
int sb_conn_poll(int timeout_ms)
{
    struct epoll_event evs[512];
    int i, n = epoll_wait(epfd, evs, 512, timeout_ms);

    for (i = 0; i < n; i++) {
        sb_conn_t *c = evs[i].data.ptr;
        if (c == NULL) {
            continue;
        }
        if (c->fd >= 0 && (evs[i].events & EPOLLOUT)) {
            on_writable(c);
        }
        if (c->fd >= 0 && c->connected
            && (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP
                                 | EPOLLERR))) {
            on_readable(c);
        }
        else if (c->fd >= 0 && (evs[i].events & (EPOLLHUP | EPOLLERR))) {
            on_writable(c);     /* a failed connect reports its error */
        }
    }
    reap();
    return n < 0 ? 0 : n;
}
