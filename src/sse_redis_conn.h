/**
 * @file sse_redis_conn.h
 * @brief The Redis bus's connections: the SSEBus URL, and a hiredis
 *        context to the master, found directly or through Sentinel.
 *
 * Written for Debian 12's hiredis 0.14: the synchronous API only, no TLS,
 * no Sentinel support of its own. A context is not thread-safe: one
 * thread uses it, and frees it with redisFree().
 *
 * The password is used for the master (and replicas); sentinels are
 * contacted without AUTH. Nothing from the network is trusted: every
 * reply's type and length is checked before use, and the text a server
 * sends reaches an error message bounded and with its control bytes
 * escaped.
 */
#ifndef SSE_REDIS_CONN_H
#define SSE_REDIS_CONN_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>

#include <hiredis/hiredis.h>

#define SSE_REDIS_MAX_ADDRS 8       /**< sentinels in one URL, at most */
#define SSE_REDIS_DB_MAX    15      /**< SELECT 0..15 */

/** A host (a name, IPv4, or IPv6 without brackets) and a TCP port. */
typedef struct {
    const char *host;
    int port;
} sse_redis_addr_t;

/** A parsed SSEBus URL; every string is from the parser's pool. */
typedef struct {
    int sentinel;               /**< 1: redis-sentinel:// */
    const char *password;       /**< NULL: none (AUTH <password>) */
    int db;                     /**< SELECT db; 0 default */
    int naddrs;                 /**< redis://: 1; sentinel: 1..8 */
    sse_redis_addr_t addr[SSE_REDIS_MAX_ADDRS];
    const char *master;         /**< sentinel: master name, else NULL */
    const char *text;           /**< the URL with the password masked */
    /** The sentinel sse_redis_connect() asks first: the last one whose
     *  answer led to the master. Read and written atomically, so threads
     *  that share this struct may connect at once. */
    volatile apr_uint32_t first;
} sse_redis_url_t;

/**
 * Parse an SSEBus value:
 *
 *     redis://[:password@]host[:port][/db]                 (port 6379)
 *     redis-sentinel://[:password@]host[:port][,host[:port]...]/master[/db]
 *                                                          (port 26379)
 *
 * host is a name, IPv4, or [IPv6]; db is 0..15; at most
 * SSE_REDIS_MAX_ADDRS sentinels. The password is percent-decoded (write
 * '/' as %2F, '@' as %40, '%' as %25). The scheme is case-insensitive.
 *
 * @param p   pool for @a out's strings and for @a err
 * @param url the directive's value
 * @param out out: the parsed URL (first sentinel 0)
 * @param err out on APR_EINVAL: a one-line reason, which never holds the
 *            password
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t sse_redis_url_parse(apr_pool_t *p, const char *url,
                                 sse_redis_url_t *out, const char **err);

/**
 * A connected context to the master, ready for commands: connected within
 * @a timeout_ms, command timeout and TCP keepalive set, AUTH and SELECT
 * done when configured, and `ROLE` answering master (a replica would
 * answer READONLY to writes, so one is refused).
 *
 * Through Sentinel: each sentinel in turn is asked
 * `SENTINEL get-master-addr-by-name <master>`, starting with the one whose
 * answer worked last time (@a u->first); the address given is connected
 * to and checked as above; on failure the next sentinel is asked.
 *
 * @a timeout_ms bounds each connect and each command: a command's answer
 * must be complete within it (a server that sends it byte by byte is cut
 * off within twice the time), and be at most 64 KB. Names are resolved
 * by getaddrinfo(), which no timeout bounds: use addresses or a local
 * resolver.
 *
 * @param u          a parsed URL
 * @param timeout_ms 1 or more
 * @param errbuf     out on failure: a one-line reason, e.g.
 *                   "redis 127.0.0.1:6390: Connection refused"
 * @param errlen     its size
 * @return the context (the caller's, to redisFree()), or NULL
 */
redisContext *sse_redis_connect(sse_redis_url_t *u, int timeout_ms,
                                char *errbuf, apr_size_t errlen);

/**
 * After a command: must the caller drop the context (redisFree()) and call
 * sse_redis_connect() again? Yes after a context error (connection lost,
 * timeout, protocol error) and after the errors that say this server is
 * no master to use now: READONLY (a replica, after a failover), LOADING,
 * MASTERDOWN, UNBLOCKED (a blocked XREAD cut off by a role change). Not
 * after other errors, NOSCRIPT included (load the script and retry).
 * @param c the context (NULL: yes)
 * @param r the command's reply (NULL: yes, the command failed)
 * @return 1 or 0
 */
int sse_redis_must_reconnect(const redisContext *c, const redisReply *r);

#endif /* SSE_REDIS_CONN_H */
