/* Redis connections for the bus: SSEBus URLs, and a context to the master,
 * found directly or through Sentinel, over hiredis 0.14's sync API. */
#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>

#include <apr_atomic.h>
#include <apr_escape.h>
#include <apr_lib.h>
#include <apr_network_io.h>
#include <apr_strings.h>
#include <apr_time.h>

#include "sse_clock.h"
#include "sse_redis_conn.h"

#define REDIS_PORT    6379
#define SENTINEL_PORT 26379
#define HOST_MAX      255       /* a DNS name; bounds a sentinel's answer */
#define MASTER_MAX    200       /* bytes of a master name */
#define REPLY_MAX     65536     /* buffered bytes of one answer */
#define QUOTE_MAX     100       /* bytes of a server's text in a message */
#define AT_MAX        (HOST_MAX + 10)   /* "[host]:port" */

/* ---- the URL ---------------------------------------------------------- */

static apr_status_t refuse(apr_pool_t *p, const char **err,
                           const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static apr_status_t refuse(apr_pool_t *p, const char **err,
                           const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    *err = apr_pvsprintf(p, fmt, ap);
    va_end(ap);
    return APR_EINVAL;
}

static int name_char(int c)
{
    return apr_isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* A master name: printable ASCII but what would end it or quote it. */
static int master_char(int c)
{
    return c > 0x20 && c < 0x7f && !strchr("/?#@%", c);
}

/* 0..15 as one or two digits (not "+1", " 1", "16"). */
static int parse_db(const char *s, apr_size_t len)
{
    if (len < 1 || len > 2 || !apr_isdigit(s[0])
        || (len == 2 && !apr_isdigit(s[1]))) {
        return -1;
    }
    return len == 1 ? s[0] - '0' : (s[0] - '0') * 10 + (s[1] - '0');
}

/* "host", "host:port", "[v6]" or "[v6]:port" -> @a a: APR's parser, with
 * what it leaves to its callers: a name's characters, and digits too many
 * for its atoi() to be safe. NULL or the reason. */
static const char *parse_host(apr_pool_t *p, const char *s, apr_size_t len,
                              int def_port, sse_redis_addr_t *a)
{
    char *item, *host, *scope;
    apr_port_t port;
    apr_size_t digits = 0, i;

    if (len == 0) {
        return "empty host";
    }
    item = apr_pstrmemdup(p, s, len);
    if (len > HOST_MAX) {
        return apr_psprintf(p, "host '%.40s...' is too long", item);
    }
    while (digits < len && apr_isdigit(item[len - 1 - digits])) {
        digits++;
    }
    if (digits > 5 && (digits == len || item[len - 1 - digits] == ':')) {
        return apr_psprintf(p, "bad port in '%s' (1..65535)", item);
    }
    if (apr_parse_addr_port(&host, &scope, &port, item, p) != APR_SUCCESS
        || host == NULL || *host == '\0') {
        return apr_psprintf(p, "bad host or port '%s' (a name, IPv4 or "
                            "[IPv6], then :port 1..65535)", item);
    }
    if (item[0] != '[') {
        for (i = 0; host[i]; i++) {
            if (!name_char((unsigned char)host[i])) {
                return apr_psprintf(p, "bad host '%s' (a name, IPv4 or "
                                    "[IPv6])", item);
            }
        }
    }
    else if (scope) {           /* getaddrinfo() takes "fe80::1%eth0" */
        host = apr_pstrcat(p, host, "%", scope, NULL);
    }
    a->host = host;
    a->port = port ? port : def_port;
    return NULL;
}

/* ":password@" (percent-decoded) from the userinfo @a s of @a len bytes. */
static apr_status_t parse_userinfo(apr_pool_t *p, const char *s,
                                   apr_size_t len, sse_redis_url_t *out,
                                   const char **err)
{
    const char *colon = memchr(s, ':', len);
    const char *pw;

    if (colon == NULL) {
        return refuse(p, err, "a password is written ':password@' (with "
                      "the colon)");
    }
    if (colon != s) {
        return refuse(p, err, "user names (Redis 6 ACL 'user:password@') "
                      "are not supported: give ':password@' for the "
                      "default user");
    }
    if (len == 1) {
        return refuse(p, err, "empty password in ':@' (leave out ':@' "
                      "for none)");
    }
    pw = apr_punescape_url(p, apr_pstrmemdup(p, s + 1, len - 1), NULL,
                           NULL, 0);
    if (pw == NULL) {
        return refuse(p, err, "bad %%-escape in the password (write '%%' "
                      "as %%25)");
    }
    out->password = pw;
    return APR_SUCCESS;
}

/* The comma-separated hosts from @a s to @a end. */
static apr_status_t parse_hosts(apr_pool_t *p, const char *s,
                                const char *end, sse_redis_url_t *out,
                                const char **err)
{
    int def_port = out->sentinel ? SENTINEL_PORT : REDIS_PORT;
    const char *comma, *why;

    for (;;) {
        comma = memchr(s, ',', (apr_size_t)(end - s));
        if (comma && !out->sentinel) {
            return refuse(p, err, "redis:// takes one host (several are "
                          "sentinels: redis-sentinel://)");
        }
        if (out->naddrs == SSE_REDIS_MAX_ADDRS) {
            return refuse(p, err, "more than %d sentinels",
                          SSE_REDIS_MAX_ADDRS);
        }
        why = parse_host(p, s, (apr_size_t)((comma ? comma : end) - s),
                         def_port, &out->addr[out->naddrs]);
        if (why) {
            *err = why;
            return APR_EINVAL;
        }
        out->naddrs++;
        if (comma == NULL) {
            return APR_SUCCESS;
        }
        s = comma + 1;
    }
}

/* After the hosts: redis:// "", "/" or "/db"; sentinel "/master[/[db]]". */
static apr_status_t parse_path(apr_pool_t *p, const char *s,
                               sse_redis_url_t *out, const char **err)
{
    const char *slash;
    apr_size_t n = 0;

    if (out->sentinel) {
        if (*s == '/') {
            s++;
            while (master_char((unsigned char)s[n])) {
                n++;
            }
        }
        if (n == 0) {
            return refuse(p, err, "no master name: "
                          "redis-sentinel://host[:port][,...]/master[/db]");
        }
        if (n > MASTER_MAX) {
            return refuse(p, err, "master name longer than %d bytes",
                          MASTER_MAX);
        }
        out->master = apr_pstrmemdup(p, s, n);
        s += n;
    }
    if (*s == '\0') {
        return APR_SUCCESS;
    }
    if (*s != '/') {
        return refuse(p, err, "trailing junk '%s' after the master name",
                      s);
    }
    s++;
    slash = s + strcspn(s, "/?#");
    if (slash > s && (out->db = parse_db(s, (apr_size_t)(slash - s))) < 0) {
        return refuse(p, err, "bad db '%.*s' (0..%d)", (int)(slash - s), s,
                      SSE_REDIS_DB_MAX);
    }
    if (out->db > SSE_REDIS_DB_MAX) {
        return refuse(p, err, "bad db %d (0..%d)", out->db,
                      SSE_REDIS_DB_MAX);
    }
    if (*slash) {
        return refuse(p, err, "trailing junk '%s' (query parameters and "
                      "further path segments are not supported)", slash);
    }
    return APR_SUCCESS;
}

/* The part after "://", or NULL and the reason. */
static const char *after_scheme(apr_pool_t *p, const char *url,
                                sse_redis_url_t *out, const char **err)
{
    const char *sep;

    if (strncasecmp(url, "redis://", 8) == 0) {
        return url + 8;
    }
    if (strncasecmp(url, "redis-sentinel://", 17) == 0) {
        out->sentinel = 1;
        return url + 17;
    }
    if (strncasecmp(url, "rediss://", 9) == 0) {
        *err = "rediss:// (TLS) is not supported: Debian 12's hiredis 0.14 "
               "has no TLS; use a TLS tunnel such as stunnel or spiped";
    }
    else if ((sep = strstr(url, "://")) != NULL && sep - url <= 20) {
        *err = apr_psprintf(p, "unsupported scheme '%.*s' (redis:// or "
                            "redis-sentinel://)", (int)(sep - url), url);
    }
    else {
        *err = "not a redis:// or redis-sentinel:// URL";
    }
    return NULL;
}

apr_status_t sse_redis_url_parse(apr_pool_t *p, const char *url,
                                 sse_redis_url_t *out, const char **err)
{
    const char *rest, *auth_end, *at, *hosts;
    apr_status_t rv;

    memset(out, 0, sizeof(*out));
    if (url == NULL || (rest = after_scheme(p, url, out, err)) == NULL) {
        if (url == NULL) {
            *err = "no URL";
        }
        return APR_EINVAL;
    }
    /* The authority ends at the first '/': a '/' in the password would end
     * it early and show the password's tail as a host, so refuse before
     * quoting anything. The last '@' ends the userinfo. */
    auth_end = rest + strcspn(rest, "/");
    for (at = auth_end; at > rest && at[-1] != '@'; at--) {
    }
    if (at == rest && strchr(auth_end, '@')) {
        return refuse(p, err, "an '@' after the host: write a '/' in the "
                      "password as %%2F");
    }
    hosts = rest;
    if (at > rest) {
        rv = parse_userinfo(p, rest, (apr_size_t)(at - 1 - rest), out, err);
        if (rv != APR_SUCCESS) {
            return rv;
        }
        hosts = at;
    }
    if ((rv = parse_hosts(p, hosts, auth_end, out, err)) != APR_SUCCESS
        || (rv = parse_path(p, auth_end, out, err)) != APR_SUCCESS) {
        return rv;
    }
    out->text = apr_pstrcat(p, out->sentinel ? "redis-sentinel://"
                                             : "redis://",
                            out->password ? ":***@" : "", hosts, NULL);
    return APR_SUCCESS;
}

/* ---- talking to a server ---------------------------------------------- */

static void addr_text(const char *host, int port, char *buf, apr_size_t len)
{
    apr_snprintf(buf, len, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                 port);
}

/* A server's text, bounded and with its control bytes escaped. */
static const char *quote(const char *s, apr_size_t n, char *buf)
{
    if (s == NULL) {
        return "";
    }
    /* buf holds 4 * QUOTE_MAX + 1: apr_escape_echo's worst case */
    apr_escape_echo(buf, s, n > QUOTE_MAX ? QUOTE_MAX : n, 0, NULL);
    return buf;
}

static redisContext *open_context(const char *what, const char *host,
                                  int port, int timeout_ms, char *errbuf,
                                  apr_size_t errlen)
{
    struct timeval tv;
    char at[AT_MAX];
    redisContext *c;

    tv.tv_sec = timeout_ms / 1000;
    tv.tv_usec = (timeout_ms % 1000) * 1000;
    addr_text(host, port, at, sizeof(at));
    c = redisConnectWithTimeout(host, port, tv);
    if (c == NULL) {
        apr_snprintf(errbuf, errlen, "%s %s: out of memory", what, at);
        return NULL;
    }
    if (c->err == 0 && redisSetTimeout(c, tv) == REDIS_OK) {
        redisEnableKeepAlive(c);
    }
    if (c->err) {
        apr_snprintf(errbuf, errlen, "%s %s: %s", what, at, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* One command and its whole reply, bounded beyond hiredis 0.14: in time
 * (SO_RCVTIMEO bounds each read(), not the reply, so a server that drips
 * bytes would hold redisCommand() forever) and in bytes (0.14's reader
 * buffers any bulk length a server announces). NULL: see errbuf. */
static redisReply *command(redisContext *c, const char *what,
                           const char *at, int timeout_ms, int argc,
                           const char **argv, char *errbuf, apr_size_t errlen)
{
    apr_time_t deadline = sse_clock() + apr_time_from_msec(timeout_ms);
    void *reply = NULL;
    int done = 0, e;

    if (redisAppendCommandArgv(c, argc, argv, NULL) != REDIS_OK) {
        goto io_error;
    }
    do {
        if (redisBufferWrite(c, &done) != REDIS_OK) {
            goto io_error;
        }
    } while (!done);
    for (;;) {
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            apr_snprintf(errbuf, errlen, "%s %s: %s: %s", what, at,
                         argv[0], c->reader->errstr);
            return NULL;
        }
        if (reply) {
            return reply;
        }
        if (c->reader->len - c->reader->pos > REPLY_MAX) {
            apr_snprintf(errbuf, errlen, "%s %s: %s: answer longer than "
                         "%d bytes", what, at, argv[0], REPLY_MAX);
            return NULL;
        }
        if (sse_clock() >= deadline) {
            break;
        }
        if (redisBufferRead(c) != REDIS_OK) {
            goto io_error;
        }
    }
    apr_snprintf(errbuf, errlen, "%s %s: %s: no answer within %d ms", what,
                 at, argv[0], timeout_ms);
    return NULL;

io_error:
    e = errno;
    if (c->err == REDIS_ERR_IO && (e == EAGAIN || e == EWOULDBLOCK)) {
        apr_snprintf(errbuf, errlen, "%s %s: %s: no answer within %d ms",
                     what, at, argv[0], timeout_ms);
    }
    else {
        apr_snprintf(errbuf, errlen, "%s %s: %s: %s", what, at, argv[0],
                     c->err ? c->errstr : "out of memory");
    }
    return NULL;
}

/* A command whose answer must be +OK (AUTH, SELECT). */
static int command_ok(redisContext *c, const char *at, int timeout_ms,
                      int argc, const char **argv, char *errbuf,
                      apr_size_t errlen)
{
    char q[4 * QUOTE_MAX + 1];
    redisReply *r = command(c, "redis", at, timeout_ms, argc, argv, errbuf,
                             errlen);
    int ok = 0;

    if (r == NULL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        apr_snprintf(errbuf, errlen, "redis %s: %s refused: %s", at,
                     argv[0], quote(r->str, r->len, q));
    }
    else if (r->type != REDIS_REPLY_STATUS || r->len != 2
             || memcmp(r->str, "OK", 2) != 0) {
        apr_snprintf(errbuf, errlen, "redis %s: %s: unexpected answer", at,
                     argv[0]);
    }
    else {
        ok = 1;
    }
    freeReplyObject(r);
    return ok;
}

static int reply_is(const redisReply *r, const char *s)
{
    apr_size_t n = strlen(s);

    return (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
           && r->len == n
           && memcmp(r->str, s, n) == 0;
}

/* ROLE's first element must be "master". */
static int check_master(redisContext *c, const char *at, int timeout_ms,
                        char *errbuf, apr_size_t errlen)
{
    const char *argv[] = {"ROLE"};
    char q[4 * QUOTE_MAX + 1];
    redisReply *r = command(c, "redis", at, timeout_ms, 1, argv, errbuf,
                             errlen);
    const redisReply *role;
    int ok = 0;

    if (r == NULL) {
        return 0;
    }
    role = (r->type == REDIS_REPLY_ARRAY && r->elements >= 1)
               ? r->element[0] : NULL;
    if (r->type == REDIS_REPLY_ERROR) {
        apr_snprintf(errbuf, errlen, "redis %s: ROLE refused: %s", at,
                     quote(r->str, r->len, q));
    }
    else if (role == NULL) {
        apr_snprintf(errbuf, errlen, "redis %s: ROLE: unexpected answer",
                     at);
    }
    else if (reply_is(role, "master")) {
        ok = 1;
    }
    else if (reply_is(role, "slave")) {
        apr_snprintf(errbuf, errlen, "%s is a replica, not the master", at);
    }
    else if (reply_is(role, "sentinel")) {
        apr_snprintf(errbuf, errlen, "%s is a sentinel, not the master "
                     "(use redis-sentinel://)", at);
    }
    else {
        apr_snprintf(errbuf, errlen, "redis %s: ROLE: unexpected answer",
                     at);
    }
    freeReplyObject(r);
    return ok;
}

static redisContext *connect_master(const sse_redis_url_t *u,
                                    const char *host, int port,
                                    int timeout_ms, char *errbuf,
                                    apr_size_t errlen)
{
    char at[AT_MAX], db[4];
    const char *auth[] = {"AUTH", u->password};
    const char *select[] = {"SELECT", db};
    redisContext *c;

    c = open_context("redis", host, port, timeout_ms, errbuf, errlen);
    if (c == NULL) {
        return NULL;
    }
    addr_text(host, port, at, sizeof(at));
    apr_snprintf(db, sizeof(db), "%d", u->db);
    if ((u->password
         && !command_ok(c, at, timeout_ms, 2, auth, errbuf, errlen))
        || (u->db
            && !command_ok(c, at, timeout_ms, 2, select, errbuf, errlen))
        || !check_master(c, at, timeout_ms, errbuf, errlen)) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* ---- Sentinel --------------------------------------------------------- */

typedef enum {
    ASKED_ADDR,                 /* an address for the master */
    ASKED_UNKNOWN,              /* the sentinel does not know the master */
    ASKED_FAILED                /* no usable answer */
} asked_e;

/* A port as a sentinel writes it: 1..5 digits, 1..65535. */
static int reply_port(const redisReply *r)
{
    apr_size_t i;
    int port = 0;

    if (r->type != REDIS_REPLY_STRING || r->len < 1 || r->len > 5) {
        return 0;
    }
    for (i = 0; i < r->len; i++) {
        if (!apr_isdigit(r->str[i])) {
            return 0;
        }
        port = port * 10 + (r->str[i] - '0');
    }
    return port <= 65535 ? port : 0;
}

/* A host as a sentinel writes it: an address or, with resolve-hostnames,
 * a name; copied into @a host of HOST_MAX + 1 bytes. */
static int reply_host(const redisReply *r, char *host)
{
    apr_size_t i;

    if (r->type != REDIS_REPLY_STRING || r->len < 1 || r->len > HOST_MAX) {
        return 0;
    }
    for (i = 0; i < r->len; i++) {
        if (!name_char((unsigned char)r->str[i]) && r->str[i] != ':'
            && r->str[i] != '%') {
            return 0;
        }
    }
    memcpy(host, r->str, r->len);
    host[r->len] = '\0';
    return 1;
}

static asked_e ask_sentinel(const sse_redis_url_t *u, int k, int timeout_ms,
                            char *host, int *port, char *errbuf,
                            apr_size_t errlen)
{
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", u->master};
    char at[AT_MAX], q[4 * QUOTE_MAX + 1];
    redisContext *c;
    redisReply *r;
    asked_e rc = ASKED_FAILED;

    c = open_context("sentinel", u->addr[k].host, u->addr[k].port,
                     timeout_ms, errbuf, errlen);
    if (c == NULL) {
        return ASKED_FAILED;
    }
    addr_text(u->addr[k].host, u->addr[k].port, at, sizeof(at));
    r = command(c, "sentinel", at, timeout_ms, 3, argv, errbuf, errlen);
    if (r == NULL) {
        goto leave;
    }
    if (r->type == REDIS_REPLY_NIL) {
        rc = ASKED_UNKNOWN;
    }
    else if (r->type == REDIS_REPLY_ERROR) {
        apr_snprintf(errbuf, errlen, "sentinel %s: %s", at,
                     quote(r->str, r->len, q));
    }
    else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
             || !reply_host(r->element[0], host)
             || (*port = reply_port(r->element[1])) == 0) {
        apr_snprintf(errbuf, errlen, "sentinel %s: unexpected answer", at);
    }
    else {
        rc = ASKED_ADDR;
    }
    freeReplyObject(r);
leave:
    redisFree(c);
    return rc;
}

static redisContext *connect_sentinel(sse_redis_url_t *u, int timeout_ms,
                                      char *errbuf, apr_size_t errlen)
{
    char host[HOST_MAX + 1], why[256], master_why[256] = "", sent_why[256];
    int first = (int)(apr_atomic_read32(&u->first) % (apr_uint32_t)u->naddrs);
    int i, k, port, unknown = 0, failed = 0;
    redisContext *c;

    for (i = 0; i < u->naddrs; i++) {
        k = (first + i) % u->naddrs;
        switch (ask_sentinel(u, k, timeout_ms, host, &port, why,
                             sizeof(why))) {
        case ASKED_ADDR:
            c = connect_master(u, host, port, timeout_ms, master_why,
                               sizeof(master_why));
            if (c) {
                if (k != first) {
                    apr_atomic_set32(&u->first, (apr_uint32_t)k);
                }
                return c;
            }
            break;
        case ASKED_UNKNOWN:
            unknown++;
            break;
        default:
            failed++;
            apr_cpystrn(sent_why, why, sizeof(sent_why));
            break;
        }
    }
    if (master_why[0]) {
        apr_snprintf(errbuf, errlen, "master '%s': %s (%d sentinel%s asked)",
                     u->master, master_why, u->naddrs,
                     u->naddrs > 1 ? "s" : "");
    }
    else if (unknown) {
        apr_snprintf(errbuf, errlen, "no sentinel knows master '%s' "
                     "(%d asked%s%s)", u->master, u->naddrs,
                     failed ? "; last failure: " : "", failed ? sent_why : "");
    }
    else {
        apr_snprintf(errbuf, errlen, "no sentinel answered for master '%s' "
                     "(%d asked; last: %s)", u->master, u->naddrs, sent_why);
    }
    return NULL;
}

redisContext *sse_redis_connect(sse_redis_url_t *u, int timeout_ms,
                                char *errbuf, apr_size_t errlen)
{
    if (errlen) {
        errbuf[0] = '\0';
    }
    if (u == NULL || timeout_ms < 1 || u->naddrs < 1
        || u->naddrs > SSE_REDIS_MAX_ADDRS || (u->sentinel && !u->master)) {
        apr_snprintf(errbuf, errlen, "no Redis URL, or a timeout below 1 ms");
        return NULL;
    }
    if (u->sentinel) {
        return connect_sentinel(u, timeout_ms, errbuf, errlen);
    }
    return connect_master(u, u->addr[0].host, u->addr[0].port, timeout_ms,
                          errbuf, errlen);
}

/* ---- after a command -------------------------------------------------- */

int sse_redis_must_reconnect(const redisContext *c, const redisReply *r)
{
    static const char *const codes[] = {
        "READONLY", "LOADING", "MASTERDOWN", "UNBLOCKED", NULL
    };
    apr_size_t n;
    int i;

    if (c == NULL || c->err || r == NULL) {
        return 1;
    }
    if (r->type != REDIS_REPLY_ERROR || r->str == NULL) {
        return 0;
    }
    for (i = 0; codes[i]; i++) {
        n = strlen(codes[i]);
        if (r->len >= n && memcmp(r->str, codes[i], n) == 0
            && (r->len == n || r->str[n] == ' ')) {
            return 1;
        }
    }
    return 0;
}
