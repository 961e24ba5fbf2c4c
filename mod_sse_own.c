/*
 * Parked streams whose socket the dispatcher owns (docs/design.md).
 *
 * A parked stream still has its connection: the event MPM's pool and
 * bucket allocator (two 8 KB blocks), and a place in the MPM's count of
 * connections, against which it refuses new ones and closes keep-alive
 * ones. A plain HTTP/1.x stream needs neither: nothing between it and
 * the socket but the core output filter. Once the MPM has let go of the
 * connection (mod_sse_park.c waits for that), the dispatcher keeps a
 * duplicate of its descriptor and frees the connection, which the MPM
 * then counts gone. From there the stream writes and reads its socket
 * itself, never blocking: what a full socket does not take is kept
 * until it drains (one batch at most: a blocked stream writes no more).
 *
 * Such a stream's record must outlive its connection, so every stream
 * that may park takes one from here: a spare, or a new one from a pool
 * of the child's.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <httpd.h>
#include <http_connection.h>
#include <http_core.h>

#include <apr_portable.h>
#include <apr_strings.h>
#include <apr_thread_mutex.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_own.h"

static struct {
    apr_thread_mutex_t *mu;     /* records: taken on request threads,
                                   given back on the dispatcher's or on a
                                   request's (a stream that never parked) */
    apr_pool_t *records;        /* under mu; records are reused, not freed */
    sse_stream_t *spare;        /* under mu, by free_next */
    /* the dispatcher thread's own */
    apr_pool_t *pool;           /* sockets (reused), the brigade */
    apr_allocator_t *kept;      /* what full sockets did not take */
    apr_bucket_alloc_t *ba;
    apr_bucket_brigade *bb;     /* every owned stream writes through it */
    apr_array_header_t *spare_socks;
} own;

static apr_status_t kept_destroy(void *data)
{
    apr_allocator_destroy(data);
    return APR_SUCCESS;
}

apr_status_t sse_own_init(apr_pool_t *pchild)
{
    apr_status_t rv;

    rv = apr_thread_mutex_create(&own.mu, APR_THREAD_MUTEX_DEFAULT, pchild);
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create(&own.records, pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_pool_create(&own.pool, pchild);
    }
    if (rv == APR_SUCCESS) {
        rv = apr_allocator_create(&own.kept);
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    apr_allocator_max_free_set(own.kept, 1);    /* keep no spare block */
    apr_pool_cleanup_register(pchild, own.kept, kept_destroy,
                              apr_pool_cleanup_null);
    own.ba = apr_bucket_alloc_create(own.pool);
    own.bb = apr_brigade_create(own.pool, own.ba);
    own.spare_socks = apr_array_make(own.pool, 64, sizeof(apr_socket_t *));
    return APR_SUCCESS;
}

/* ---- records ---------------------------------------------------------- */

static apr_status_t record_back(void *data)
{
    sse_stream_t *st = data;

    apr_thread_mutex_lock(own.mu);
    st->free_next = own.spare;
    own.spare = st;
    apr_thread_mutex_unlock(own.mu);
    return APR_SUCCESS;
}

sse_stream_t *sse_own_record(conn_rec *c)
{
    sse_stream_t *st;

    apr_thread_mutex_lock(own.mu);
    if ((st = own.spare) != NULL) {
        own.spare = st->free_next;
    }
    else {
        st = apr_palloc(own.records, sizeof(*st));
    }
    apr_thread_mutex_unlock(own.mu);
    memset(st, 0, sizeof(*st));
    apr_pool_cleanup_register(c->pool, st, record_back,
                              apr_pool_cleanup_null);
    return st;
}

/* ---- taking the socket ------------------------------------------------ */

int sse_own_possible(const sse_stream_t *st)
{
    const conn_rec *c = st->c;

    return st->id == st->id_buf && c != NULL && !st->blocked
        && !c->data_in_output_filters && c->output_filters != NULL
        && c->output_filters->frec == ap_core_output_filter_handle
        && c->output_filters->next == NULL;
}

/* A closed socket's apr_socket_t is reused (apr_os_sock_put fills one it
 * is given): the pool never grows past the most streams owned at once. */
static apr_socket_t *socket_for(apr_os_sock_t fd)
{
    apr_socket_t *sock = NULL;

    if (own.spare_socks->nelts) {
        sock = ((apr_socket_t **)own.spare_socks->elts)
               [--own.spare_socks->nelts];
    }
    apr_os_sock_put(&sock, &fd, own.pool);
    /* the descriptor is non-blocking (sse_own_leave); this says so to
     * APR, which makes no system call for a reused one */
    apr_socket_timeout_set(sock, 0);
    return sock;
}

/* Make sure @a fd never blocks. O_NONBLOCK is a flag of the open file,
 * which the duplicate shares with httpd's descriptor: APR set it there
 * with the connection's timeout (any timeout of 0 or more), so this
 * costs a system call only for a socket APR thinks blocking. */
static apr_status_t never_blocks(apr_socket_t *csd, int fd)
{
    apr_interval_time_t t = -1;
    int flags;

    if (apr_socket_timeout_get(csd, &t) == APR_SUCCESS && t >= 0) {
        return APR_SUCCESS;
    }
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        return APR_FROM_OS_ERROR(errno);
    }
    return APR_SUCCESS;
}

apr_status_t sse_own_leave(sse_stream_t *st)
{
    conn_rec *c = st->c;
    apr_socket_t *csd = ap_get_conn_socket(c);
    apr_os_sock_t fd, dup_fd;
    apr_status_t rv;

    if (csd == NULL || apr_os_sock_get(&fd, csd) != APR_SUCCESS) {
        return APR_EBADF;
    }
    dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) {
        return APR_FROM_OS_ERROR(errno);        /* EMFILE */
    }
    if ((rv = never_blocks(csd, dup_fd)) != APR_SUCCESS) {
        close(dup_fd);
        return rv;
    }
    /* for its log lines: the connection's address goes with its pool */
    apr_snprintf(st->client, sizeof(st->client), "%pI", c->client_addr);
    st->own_fd = dup_fd;
    st->timeout = c->base_server->timeout;
    st->c = NULL;
    st->out = NULL;
    st->bb = NULL;
    /* the record stays; the connection goes, and its socket's close
     * leaves the duplicate open */
    apr_pool_cleanup_kill(c->pool, st, record_back);
    return APR_SUCCESS;
}

void sse_own_start(sse_stream_t *st)
{
    st->sock = socket_for(st->own_fd);
    st->owned = 1;
    st->bb = own.bb;
}

apr_status_t sse_own_take(sse_stream_t *st)
{
    conn_rec *c = st->c;
    apr_status_t rv = sse_own_leave(st);

    if (rv != APR_SUCCESS) {
        return rv;                              /* stays parked */
    }
    sse_own_start(st);
    /* the MPM counts it gone */
    ap_prep_lingering_close(c);
    apr_pool_destroy(c->pool);
    return APR_SUCCESS;
}

/* ---- writing and reading ---------------------------------------------- */

/* apr_socket_send on a socket that takes nothing now: EAGAIN, 0 sent */
static apr_status_t send_some(apr_socket_t *sock, const char *buf,
                              apr_size_t *len)
{
    apr_status_t rv = apr_socket_send(sock, buf, len);

    if (APR_STATUS_IS_EAGAIN(rv)) {
        *len = 0;
        return APR_SUCCESS;
    }
    return rv;
}

/* Keep @a len bytes at @a buf after what is kept already. */
static apr_status_t keep(sse_stream_t *st, const char *buf, apr_size_t len)
{
    apr_memnode_t *node = apr_allocator_alloc(own.kept,
                                              st->kept_len + len);

    if (node == NULL) {
        return APR_ENOMEM;
    }
    if (st->kept_len) {
        memcpy(node->first_avail, st->kept_at, st->kept_len);
    }
    memcpy(node->first_avail + st->kept_len, buf, len);
    if (st->kept) {
        apr_allocator_free(own.kept, st->kept);
    }
    st->kept = node;
    st->kept_at = node->first_avail;
    st->kept_len += len;
    return APR_SUCCESS;
}

apr_status_t sse_own_write(sse_stream_t *st)
{
    apr_size_t len, sent;
    apr_status_t rv;
    char *buf;

    rv = apr_brigade_pflatten(st->bb, &buf, &len, st->scratch);
    if (rv != APR_SUCCESS || len == 0) {
        return rv;
    }
    if (st->kept) {
        return keep(st, buf, len);      /* after what waits already */
    }
    sent = len;
    rv = send_some(st->sock, buf, &sent);
    if (rv == APR_SUCCESS && sent < len) {
        rv = keep(st, buf + sent, len - sent);
    }
    return rv;
}

apr_status_t sse_own_drain(sse_stream_t *st)
{
    apr_size_t sent = st->kept_len;
    apr_status_t rv;

    if (st->kept == NULL) {
        return APR_SUCCESS;
    }
    rv = send_some(st->sock, st->kept_at, &sent);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    st->kept_at += sent;
    st->kept_len -= sent;
    if (st->kept_len == 0) {
        apr_allocator_free(own.kept, st->kept);
        st->kept = NULL;
        st->kept_at = NULL;
    }
    return APR_SUCCESS;
}

apr_status_t sse_own_socket_error(apr_socket_t *sock)
{
    apr_os_sock_t fd;
    int err = 0;
    socklen_t len = sizeof(err);

    if (sock == NULL || apr_os_sock_get(&fd, sock) != APR_SUCCESS
        || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0
        || err == 0) {
        return APR_EOF;
    }
    return APR_FROM_OS_ERROR(err);
}

/* As sse_stream_client_gone: bytes from the client end the stream too (an
 * EventSource never sends any after its request). */
apr_status_t sse_own_client_gone(sse_stream_t *st, apr_int16_t ev)
{
    char buf[256];
    apr_size_t len = sizeof(buf);
    apr_status_t rv;

    if (ev & (APR_POLLERR | APR_POLLNVAL)) {
        return sse_own_socket_error(st->sock);
    }
    rv = apr_socket_recv(st->sock, buf, &len);
    if (APR_STATUS_IS_EAGAIN(rv)) {
        return APR_SUCCESS;
    }
    return rv == APR_SUCCESS ? APR_EOF : rv;
}

void sse_own_close(sse_stream_t *st)
{
    if (st->kept) {
        (void)sse_own_drain(st);
    }
    if (st->kept) {
        apr_allocator_free(own.kept, st->kept);
        st->kept = NULL;
    }
    if (apr_socket_close(st->sock) == APR_SUCCESS) {  /* else not reused */
        APR_ARRAY_PUSH(own.spare_socks, apr_socket_t *) = st->sock;
    }
    st->sock = NULL;
    record_back(st);
}
