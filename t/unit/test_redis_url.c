/* sse_redis_conn without a server: every case of cases/redis_urls.txt, and
 * which errors make the bus reconnect. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "src/sse_redis_conn.h"
#include "unit.h"

#define SECRET "sekret"

/* "-" in a case is NULL */
static const char *dash_null(const char *s)
{
    return strcmp(s, "-") == 0 ? NULL : s;
}

/* "host:port host:port ..." as the parser should have found them */
static void check_addrs(const char *file, int line, const char *url,
                        const sse_redis_url_t *u, const char *want)
{
    apr_pool_t *p = unit_pool();
    char *list = apr_pstrdup(p, want), *last, *a, *colon;
    int n = 0;

    for (a = apr_strtok(list, " ", &last); a;
         a = apr_strtok(NULL, " ", &last)) {
        colon = strrchr(a, ':');
        if (!CHECK_AT(file, line, colon != NULL, "bad case: %s", a)) {
            return;
        }
        *colon = '\0';
        if (!CHECK_AT(file, line, n < u->naddrs, "%s: %d hosts parsed, the "
                      "case lists more", url, u->naddrs)) {
            return;
        }
        CHECK_AT(file, line, strcmp(u->addr[n].host, a) == 0
                 && u->addr[n].port == atoi(colon + 1),
                 "%s: host %d is %s port %d, expected %s port %s", url, n,
                 u->addr[n].host, u->addr[n].port, a, colon + 1);
        n++;
    }
    CHECK_AT(file, line, n == u->naddrs, "%s: %d hosts parsed, expected %d",
             url, u->naddrs, n);
}

static void check_ok(const char *file, int line, const char *url,
                     char **f, int nf, apr_status_t rv,
                     const sse_redis_url_t *u, const char *err)
{
    const char *pw, *master;

    if (!CHECK_AT(file, line, nf == 7, "bad case: %d fields", nf)
        || !CHECK_AT(file, line, rv == APR_SUCCESS, "%s: refused: %s", url,
                     err ? err : "(no reason)")) {
        return;
    }
    pw = dash_null(f[2]);
    master = dash_null(f[4]);
    CHECK_AT(file, line, (pw == NULL && u->password == NULL)
             || (pw && u->password && strcmp(pw, u->password) == 0),
             "%s: password \"%s\", expected \"%s\"", url,
             u->password ? u->password : "(null)", pw ? pw : "(null)");
    CHECK_AT(file, line, u->db == atoi(f[3]), "%s: db %d, expected %s", url,
             u->db, f[3]);
    CHECK_AT(file, line, u->sentinel == (master != NULL),
             "%s: sentinel %d, expected %d", url, u->sentinel,
             master != NULL);
    CHECK_AT(file, line, (master == NULL && u->master == NULL)
             || (master && u->master && strcmp(master, u->master) == 0),
             "%s: master \"%s\", expected \"%s\"", url,
             u->master ? u->master : "(null)", master ? master : "(null)");
    check_addrs(file, line, url, u, f[5]);
    CHECK_AT(file, line, u->text && strcmp(u->text, f[6]) == 0,
             "%s: text \"%s\", expected \"%s\"", url,
             u->text ? u->text : "(null)", f[6]);
    CHECK_AT(file, line, u->first == 0, "%s: first sentinel %u, expected 0",
             url, (unsigned)u->first);
}

UNIT_TEST(test_redis_url_cases)
{
    apr_pool_t *p = unit_pool();
    char **lines, *f[8];
    int *linenos, n, i, nf, ok = 0, refused = 0;
    const char *path, *err;
    sse_redis_url_t u;
    apr_status_t rv;

    n = unit_read_lines("redis_urls.txt", &lines, &linenos, &path);
    REQUIRE(n > 0, "no cases in %s", path);
    for (i = 0; i < n; i++) {
        /* strtok would merge the empty URL into the next field */
        char *s = lines[i], *tab;
        for (nf = 0; nf < 8 && s; nf++) {
            tab = strchr(s, '\t');
            f[nf] = s;
            if (tab) {
                *tab = '\0';
            }
            s = tab ? tab + 1 : NULL;
        }
        if (!CHECK_AT(path, linenos[i], nf >= 3, "bad case: %d fields", nf)) {
            continue;
        }
        unit_unescape(f[0]);
        err = NULL;
        rv = sse_redis_url_parse(p, f[0], &u, &err);
        if (strcmp(f[1], "ok") == 0) {
            check_ok(path, linenos[i], f[0], f, nf, rv, &u, err);
            ok++;
        }
        else if (CHECK_AT(path, linenos[i], strcmp(f[1], "err") == 0,
                          "bad case: expect \"%s\"", f[1])) {
            refused++;
            if (CHECK_AT(path, linenos[i], rv == APR_EINVAL && err,
                         "%s: expected a refusal with \"%s\", got status %d",
                         f[0], f[2], rv)) {
                CHECK_AT(path, linenos[i], strstr(err, f[2]) != NULL,
                         "%s: the reason \"%s\" does not say \"%s\"", f[0],
                         err, f[2]);
                CHECK_AT(path, linenos[i], strchr(err, '\n') == NULL,
                         "%s: the reason is more than one line", f[0]);
            }
        }
        CHECK_AT(path, linenos[i], !err || !strstr(err, SECRET),
                 "%s: the reason shows the password: %s", f[0], err);
        CHECK_AT(path, linenos[i], rv != APR_SUCCESS || !u.text
                 || !strstr(u.text, SECRET),
                 "%s: the masked text shows the password: %s", f[0],
                 u.text);
    }
    CHECK(ok >= 20 && refused >= 40, "only %d accepted and %d refused cases "
          "ran", ok, refused);
}

UNIT_TEST(test_redis_url_null_is_refused)
{
    sse_redis_url_t u;
    const char *err = NULL;

    CHECK_RV(APR_EINVAL, sse_redis_url_parse(unit_pool(), NULL, &u, &err),
             "a NULL URL");
    CHECK(err != NULL, "no reason for a NULL URL");
}

/* ---- sse_redis_must_reconnect ---------------------------------------- */

static int reconnect_after_error(const char *text)
{
    redisContext c;
    redisReply r;

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_ERROR;
    r.str = (char *)text;
    r.len = strlen(text);
    return sse_redis_must_reconnect(&c, &r);
}

UNIT_TEST(test_redis_reconnect_after_role_and_connection_errors)
{
    redisContext c;
    redisReply r;

    CHECK_INT(1, reconnect_after_error("READONLY You can't write against a "
                                       "read only replica."), "READONLY");
    CHECK_INT(1, reconnect_after_error("LOADING Redis is loading the dataset "
                                       "in memory"), "LOADING");
    CHECK_INT(1, reconnect_after_error("MASTERDOWN Link with MASTER is down "
                                       "and replica-serve-stale-data is set "
                                       "to 'no'."), "MASTERDOWN");
    CHECK_INT(1, reconnect_after_error("UNBLOCKED force unblock from blocking "
                                       "operation, instance state changed "
                                       "(master -> replica?)"), "UNBLOCKED");
    CHECK_INT(1, reconnect_after_error("READONLY"), "a bare code");

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    CHECK_INT(1, sse_redis_must_reconnect(NULL, &r), "no context");
    CHECK_INT(1, sse_redis_must_reconnect(&c, NULL), "no reply");
    c.err = REDIS_ERR_IO;
    r.type = REDIS_REPLY_STATUS;
    CHECK_INT(1, sse_redis_must_reconnect(&c, &r), "a context error");
    c.err = REDIS_ERR_EOF;
    CHECK_INT(1, sse_redis_must_reconnect(&c, NULL), "connection closed");
}

UNIT_TEST(test_redis_no_reconnect_after_other_errors_or_answers)
{
    redisContext c;
    redisReply r;

    CHECK_INT(0, reconnect_after_error("NOSCRIPT No matching script. Please "
                                       "use EVAL."), "NOSCRIPT");
    CHECK_INT(0, reconnect_after_error("ERR wrong number of arguments"),
              "ERR");
    CHECK_INT(0, reconnect_after_error("WRONGTYPE Operation against a key "
                                       "holding the wrong kind of value"),
              "WRONGTYPE");
    CHECK_INT(0, reconnect_after_error("READONLYX"), "a longer word");
    CHECK_INT(0, reconnect_after_error("READONL"), "a shorter word");
    CHECK_INT(0, reconnect_after_error(""), "an empty error");
    CHECK_INT(0, reconnect_after_error("ERR READONLY"), "the code not first");

    memset(&c, 0, sizeof(c));
    memset(&r, 0, sizeof(r));
    r.type = REDIS_REPLY_STRING;
    r.str = "READONLY";
    r.len = 8;
    CHECK_INT(0, sse_redis_must_reconnect(&c, &r), "a string, not an error");
    r.type = REDIS_REPLY_NIL;
    r.str = NULL;
    r.len = 0;
    CHECK_INT(0, sse_redis_must_reconnect(&c, &r), "nil");
    r.type = REDIS_REPLY_ERROR;
    CHECK_INT(0, sse_redis_must_reconnect(&c, &r), "an error without text");
}

UNIT_TEST(test_redis_connect_refuses_bad_arguments)
{
    sse_redis_url_t u;
    const char *err;
    char buf[200];

    buf[0] = 'x';
    CHECK(sse_redis_connect(NULL, 100, buf, sizeof(buf)) == NULL,
          "connected without a URL");
    CHECK(buf[0] != '\0' && buf[0] != 'x', "no reason without a URL");
    REQUIRE_RV(APR_SUCCESS, sse_redis_url_parse(unit_pool(), "redis://h",
                                                &u, &err), "parse");
    CHECK(sse_redis_connect(&u, 0, buf, sizeof(buf)) == NULL,
          "connected with a zero timeout");
    CHECK(sse_redis_connect(&u, 0, buf, 0) == NULL,
          "connected with no room for a reason");
}
