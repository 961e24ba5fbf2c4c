/* redis_probe: sse_redis_connect() from the command line, for
 * t/test_redis_conn.py against real redis-server and redis-sentinel.
 *
 *     redis_probe [-t timeout_ms] [-n connects] URL [command [arg...]]
 *
 * Connects n times (default 1), each with a fresh context, and prints one
 * line per attempt:
 *
 *     connected <host>:<port> first=<k> ms=<elapsed>
 *     error <reason> ms=<elapsed>
 *
 * (first: the sentinel the next attempt asks first). With a command, runs
 * it on each context and prints `reply <type> <text>` and
 * `reconnect <0|1>` (sse_redis_must_reconnect). Exits 0 when every attempt
 * connected, 1 when one failed, 2 on a bad URL or usage.
 */
#include <stdio.h>
#include <stdlib.h>

#include <apr_general.h>
#include <apr_getopt.h>
#include <apr_time.h>

#include "src/sse_redis_conn.h"

static const char *type_name(int type)
{
    switch (type) {
    case REDIS_REPLY_STRING:  return "string";
    case REDIS_REPLY_ARRAY:   return "array";
    case REDIS_REPLY_INTEGER: return "integer";
    case REDIS_REPLY_NIL:     return "nil";
    case REDIS_REPLY_STATUS:  return "status";
    case REDIS_REPLY_ERROR:   return "error";
    default:                  return "other";
    }
}

static void run_command(redisContext *c, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);

    if (r == NULL) {
        printf("reply none %s\n", c->errstr);
    }
    else if (r->type == REDIS_REPLY_INTEGER) {
        printf("reply integer %lld\n", r->integer);
    }
    else if (r->type == REDIS_REPLY_ARRAY) {
        printf("reply array %lu\n", (unsigned long)r->elements);
    }
    else {
        printf("reply %s %.*s\n", type_name(r->type), (int)r->len,
               r->str ? r->str : "");
    }
    printf("reconnect %d\n", sse_redis_must_reconnect(c, r));
    if (r) {
        freeReplyObject(r);
    }
}

int main(int argc, const char *const *argv)
{
    apr_pool_t *p;
    apr_getopt_t *opt;
    const char *arg, *err;
    char optch, errbuf[512];
    int timeout_ms = 1000, connects = 1, i, failed = 0;
    sse_redis_url_t u;
    redisContext *c;
    apr_time_t t0;

    apr_app_initialize(&argc, &argv, NULL);
    atexit(apr_terminate);
    apr_pool_create(&p, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    apr_getopt_init(&opt, p, argc, argv);
    while (apr_getopt(opt, "t:n:", &optch, &arg) == APR_SUCCESS) {
        if (optch == 't') {
            timeout_ms = atoi(arg);
        }
        else {
            connects = atoi(arg);
        }
    }
    if (opt->ind >= argc) {
        fprintf(stderr, "usage: redis_probe [-t timeout_ms] [-n connects] "
                "URL [command [arg...]]\n");
        return 2;
    }
    if (sse_redis_url_parse(p, argv[opt->ind], &u, &err) != APR_SUCCESS) {
        printf("bad-url %s\n", err);
        return 2;
    }
    for (i = 0; i < connects; i++) {
        t0 = apr_time_now();
        c = sse_redis_connect(&u, timeout_ms, errbuf, sizeof(errbuf));
        if (c == NULL) {
            printf("error %s ms=%ld\n", errbuf,
                   (long)apr_time_as_msec(apr_time_now() - t0));
            failed = 1;
            continue;
        }
        printf("connected %s:%d first=%u ms=%ld\n", c->tcp.host, c->tcp.port,
               (unsigned)u.first,
               (long)apr_time_as_msec(apr_time_now() - t0));
        if (opt->ind + 1 < argc) {
            run_command(c, argc - opt->ind - 1,
                        (const char **)argv + opt->ind + 1);
        }
        redisFree(c);
    }
    return failed;
}
