/* The bus's Redis engine (sse_bus_redis.h): one Lua script per change
 * (sse_bus_lua.c) run and its reply parsed; sse_bus_read.c reads the log. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <apr_sha1.h>
#include <apr_strings.h>
#include <jansson.h>

#include "sse_bus_lua.h"
#include "sse_bus_redis.h"
#include "sse_bus_redis_int.h"
#include "sse_id.h"

/* ---- running a script ------------------------------------------------- */

#define MAX_ARGS 12

typedef struct {
    const char **argv;          /* room for the arguments */
    apr_size_t *len;
    const char *fixed[MAX_ARGS + 3];    /* the usual room */
    apr_size_t fixed_len[MAX_ARGS + 3];
    char nums[6][24];
    int argc;
} sse_args_t;

static void arg(sse_args_t *a, const char *s, apr_size_t len)
{
    a->argv[a->argc] = s ? s : "";
    a->len[a->argc++] = s ? len : 0;
}

static void arg_str(sse_args_t *a, const char *s)
{
    arg(a, s, s ? strlen(s) : 0);
}

static void arg_num(sse_args_t *a, char *buf, apr_int64_t v)
{
    apr_snprintf(buf, 24, "%" APR_INT64_T_FMT, v);
    arg_str(a, buf);
}

/* EVALSHA <sha> 0 and the common arguments of @a b. */
static void args_start(sse_args_t *a, const sse_rbus_t *b)
{
    a->argv = a->fixed;
    a->len = a->fixed_len;
    a->argc = 0;
    arg_str(a, "EVALSHA");
    arg_str(a, "");             /* the sha, set by run() */
    arg_str(a, "0");
    arg_str(a, b->ns);
    arg_num(a, a->nums[0], b->history);
    arg_num(a, a->nums[1], (apr_int64_t)b->floor);
    arg_num(a, a->nums[2], b->now_ms * 1000);
    arg_num(a, a->nums[3], b->now_ms);
    arg_num(a, a->nums[4], b->deadline_ms);
}

/* A publish's: the common arguments and its sse_once_t. */
static void args_once(sse_args_t *a, const sse_rbus_t *b)
{
    args_start(a, b);
    arg_str(a, b->once ? b->once->sender : "");
    arg_num(a, a->nums[5], b->once ? (apr_int64_t)b->once->n : 0);
}

const char *sse_rbus_reply_error(const redisContext *c,
                                 const redisReply *r)
{
    if (r == NULL) {
        return c->errstr[0] ? c->errstr : "no reply from redis";
    }
    return r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply";
}

/* Did the connection fail after the command went out? A timeout does
 * not count: the command's deadline passed before it, so a command that
 * has not run by then never will. Anything else (Redis died, the
 * connection was reset) leaves it unknown whether it ran. */
int sse_rbus_sent_and_lost(const redisContext *c, const redisReply *r)
{
    int e = errno;

    return r == NULL && (c->err == REDIS_ERR_EOF
                         || (c->err == REDIS_ERR_IO && e != EAGAIN
                             && e != EWOULDBLOCK && e != EINTR));
}

#define SHA_HEX (2 * APR_SHA1_DIGESTSIZE + 1)

/* @a script's SHA1 in hex, for EVALSHA. */
static void script_sha(const char *script, char sha[SHA_HEX])
{
    unsigned char digest[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    int i;

    apr_sha1_init(&ctx);
    apr_sha1_update(&ctx, script, (unsigned int)strlen(script));
    apr_sha1_final(digest, &ctx);
    for (i = 0; i < APR_SHA1_DIGESTSIZE; i++) {
        apr_snprintf(sha + 2 * i, 3, "%02x", digest[i]);
    }
}

/* Send @a a with the script as argv[1] under @a verb; b->unsure says
 * whether a failure left it unknown. */
static redisReply *send_script(redisContext *c, sse_args_t *a,
                               const char *verb, const char *text,
                               const sse_rbus_t *b)
{
    int failed_before = c->err != 0;    /* then nothing is sent */
    redisReply *r;

    a->argv[0] = verb;
    a->len[0] = strlen(verb);
    a->argv[1] = text;
    a->len[1] = strlen(text);
    r = redisCommandArgv(c, a->argc, a->argv, a->len);
    if (b->unsure) {
        *b->unsure = !failed_before && sse_rbus_sent_and_lost(c, r);
    }
    return r;
}

/* @a script's SHA1, computed once per thread (the scripts are the
 * constants of sse_bus_lua.h: a dozen at most). */
static const char *sha_of(const char *script)
{
    static __thread struct {
        const char *script;
        char sha[SHA_HEX];
    } known[16];
    int i;

    for (i = 0; i < 16 && known[i].script; i++) {
        if (known[i].script == script) {
            return known[i].sha;
        }
    }
    if (i == 16) {
        i = 0;                          /* never: there are fewer */
    }
    script_sha(script, known[i].sha);
    known[i].script = script;
    return known[i].sha;
}

/* Run @a script with @a a: by its SHA1, loading it on NOSCRIPT. */
static redisReply *run(redisContext *c, const char *script, sse_args_t *a,
                       const sse_rbus_t *b)
{
    redisReply *r;

    r = send_script(c, a, "EVALSHA", sha_of(script), b);
    if (r && r->type == REDIS_REPLY_ERROR
        && strncmp(r->str, "NOSCRIPT", 8) == 0) {
        freeReplyObject(r);
        r = send_script(c, a, "EVAL", script, b);
    }
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1
        && r->element[0]->type == REDIS_REPLY_INTEGER
        && r->element[0]->integer == -9) {
        *b->err = "the command reached Redis after its deadline: not run";
        freeReplyObject(r);
        return NULL;
    }
    if (r == NULL || r->type != REDIS_REPLY_ARRAY) {
        *b->err = sse_rbus_reply_error(c, r);
        if (r) {
            /* the message lives in the reply: keep a copy that outlives it */
            static __thread char msg[160];
            apr_cpystrn(msg, *b->err, sizeof(msg));
            *b->err = msg;
            freeReplyObject(r);
        }
        return NULL;
    }
    return r;
}

static apr_int64_t int_at(const redisReply *r, apr_size_t i)
{
    const redisReply *e;

    if (i >= r->elements) {
        return 0;
    }
    e = r->element[i];
    if (e->type == REDIS_REPLY_INTEGER) {
        return (apr_int64_t)e->integer;
    }
    if (e->type == REDIS_REPLY_STRING) {
        return apr_atoi64(e->str);
    }
    return 0;
}

/* ---- the changes ------------------------------------------------------ */

static apr_status_t publish(redisContext *c, const sse_rbus_t *b,
                            const char *script, sse_args_t *a,
                            int *delivered)
{
    redisReply *r = run(c, script, a, b);
    apr_int64_t n;

    *delivered = 0;
    if (r == NULL) {
        return SSE_EBUS;
    }
    n = int_at(r, 1);
    freeReplyObject(r);
    if (n < 0) {
        return APR_ENOENT;
    }
    *delivered = (int)n;
    return APR_SUCCESS;
}

apr_status_t sse_rbus_notify(redisContext *c, const sse_rbus_t *b,
                             const char *key, const char *payload,
                             apr_size_t plen, int *delivered)
{
    sse_args_t a;

    args_once(&a, b);
    arg_str(&a, key);
    arg(&a, payload, plen);
    return publish(c, b, sse_lua_notify, &a, delivered);
}

apr_status_t sse_rbus_complete(redisContext *c, const sse_rbus_t *b,
                               const char *id, const char *taskid,
                               const char *payload, apr_size_t plen,
                               int *delivered)
{
    apr_size_t name_len;
    sse_args_t a;

    *delivered = 0;
    if (sse_id_parse(id, &name_len) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    args_once(&a, b);
    arg_str(&a, id);
    arg(&a, id, name_len);
    arg_str(&a, taskid);
    arg(&a, payload, plen);
    return publish(c, b, sse_lua_complete, &a, delivered);
}

/* The record's keys: a flat array key, since, key, since... */
static void record_keys(apr_pool_t *p, const redisReply *kv,
                        sse_bus_listener_t *l)
{
    apr_size_t i;

    l->nkeys = 0;
    if (kv->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (i = 0; i + 1 < kv->elements && l->nkeys < SSE_MAX_KEYS; i += 2) {
        const redisReply *k = kv->element[i], *v = kv->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING
            || !sse_token_valid(k->str, k->len)) {
            continue;
        }
        l->keys[l->nkeys] = apr_pstrmemdup(p, k->str, k->len);
        l->since[l->nkeys++] = (apr_uint64_t)apr_atoi64(v->str);
    }
}

apr_status_t sse_rbus_connect(redisContext *c, const sse_rbus_t *b,
                              apr_pool_t *p, const char *id,
                              apr_uint32_t max, apr_int64_t active_ms,
                              sse_bus_listener_t *l, apr_uint64_t *seq,
                              int *created)
{
    apr_size_t name_len;
    apr_int64_t s;
    redisReply *r;
    sse_args_t a;

    memset(l, 0, sizeof(*l));
    *created = 0;
    if (sse_id_parse(id, &name_len) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    args_start(&a, b);
    arg_str(&a, id);
    arg(&a, id, name_len);
    arg_num(&a, a.nums[5], max);
    {
        char since[24];
        arg_num(&a, since, b->now_ms - active_ms);
        r = run(c, sse_lua_connect, &a, b);
    }
    if (r == NULL) {
        return SSE_EBUS;
    }
    s = int_at(r, 0);
    if (s == -1 || s == -2 || r->elements < 7) {
        freeReplyObject(r);
        return s == -1 ? APR_EEXIST : s == -2 ? APR_ENOSPC : SSE_EBUS;
    }
    *seq = (apr_uint64_t)s;
    l->serial = (apr_uint64_t)int_at(r, 1);
    *created = int_at(r, 2) == 1;
    l->created_seq = (apr_uint64_t)int_at(r, 3);
    l->last_seq = (apr_uint64_t)int_at(r, 4);
    l->registered_ms = int_at(r, 5);
    record_keys(p, r->element[6], l);
    freeReplyObject(r);
    return APR_SUCCESS;
}

/* Run a script whose answer is {n} or {n, m}: *first and *second. */
static apr_status_t simple(redisContext *c, const sse_rbus_t *b,
                           const char *script, sse_args_t *a,
                           apr_int64_t *first, apr_int64_t *second)
{
    redisReply *r = run(c, script, a, b);

    if (r == NULL) {
        return SSE_EBUS;
    }
    *first = int_at(r, 0);
    if (second) {
        *second = int_at(r, 1);
    }
    freeReplyObject(r);
    return APR_SUCCESS;
}

apr_status_t sse_rbus_release(redisContext *c, const sse_rbus_t *b,
                              const char *id, apr_uint64_t serial,
                              apr_uint64_t last)
{
    char n1[24], n2[24];
    apr_int64_t ok;
    sse_args_t a;

    args_start(&a, b);
    arg_str(&a, id);
    arg_num(&a, n1, (apr_int64_t)serial);
    arg_num(&a, n2, (apr_int64_t)last);
    return simple(c, b, sse_lua_release, &a, &ok, NULL);
}

apr_status_t sse_rbus_listen(redisContext *c, const sse_rbus_t *b,
                             const char *id, const char *key, int max,
                             int *added)
{
    apr_int64_t s = 0;
    apr_status_t rv;
    sse_args_t a;

    *added = 0;
    args_start(&a, b);
    arg_str(&a, id);
    arg_str(&a, key);
    arg_num(&a, a.nums[5], max);
    rv = simple(c, b, sse_lua_listen, &a, &s, NULL);
    if (rv == APR_SUCCESS && s < 0) {
        rv = s == -1 ? APR_ENOENT : APR_ENOSPC;
    }
    *added = rv == APR_SUCCESS && s > 0;
    return rv;
}

apr_status_t sse_rbus_remove(redisContext *c, const sse_rbus_t *b,
                             const char *id, apr_int64_t retire_ms)
{
    char n1[24], n2[24];
    apr_int64_t s = 0;
    apr_status_t rv;
    sse_args_t a;

    args_start(&a, b);
    arg_str(&a, id);
    arg_num(&a, n1, retire_ms);
    arg_num(&a, n2, b->now_ms + retire_ms);
    rv = simple(c, b, sse_lua_remove, &a, &s, NULL);
    return rv == APR_SUCCESS && s < 0 ? APR_ENOENT : rv;
}

apr_status_t sse_rbus_clear(redisContext *c, const sse_rbus_t *b,
                            apr_int64_t retire_ms, int *removed)
{
    char n1[24], n2[24];
    apr_int64_t s, n = 0;
    apr_status_t rv;
    sse_args_t a;

    args_start(&a, b);
    arg_num(&a, n1, retire_ms);
    arg_num(&a, n2, b->now_ms + retire_ms);
    rv = simple(c, b, sse_lua_clear, &a, &s, &n);
    *removed = (int)n;
    return rv;
}

apr_status_t sse_rbus_cleanup(redisContext *c, const sse_rbus_t *b,
                              apr_int64_t dormant_ms, int *removed)
{
    char n1[24];
    apr_int64_t s, n = 0;
    apr_status_t rv;
    sse_args_t a;

    args_start(&a, b);
    arg_num(&a, n1, b->now_ms - dormant_ms);
    rv = simple(c, b, sse_lua_cleanup, &a, &s, &n);
    *removed = (int)n;
    return rv;
}

apr_status_t sse_rbus_touch(redisContext *c, const sse_rbus_t *b,
                            apr_pool_t *p, const sse_bus_stream_t *st,
                            int n)
{
    apr_size_t room = 8 + (apr_size_t)n * (3 + 2 * SSE_MAX_KEYS);
    apr_int64_t first;
    sse_args_t *a;
    int i, k;

    if (n == 0) {
        return APR_SUCCESS;
    }
    a = apr_palloc(p, sizeof(*a));
    args_start(a, b);
    a->argv = apr_palloc(p, room * sizeof(*a->argv));
    a->len = apr_palloc(p, room * sizeof(*a->len));
    memcpy(a->argv, a->fixed, (apr_size_t)a->argc * sizeof(*a->argv));
    memcpy(a->len, a->fixed_len, (apr_size_t)a->argc * sizeof(*a->len));
    for (i = 0; i < n; i++) {
        arg_str(a, st[i].id);
        arg_str(a, apr_psprintf(p, "%" APR_UINT64_T_FMT, st[i].serial));
        arg_str(a, apr_itoa(p, st[i].nkeys));
        for (k = 0; k < st[i].nkeys; k++) {
            arg_str(a, st[i].keys[k]);
            arg_str(a, apr_psprintf(p, "%" APR_UINT64_T_FMT, st[i].since[k]));
        }
    }
    return simple(c, b, sse_lua_touch, a, &first, NULL);
}

/* ---- list-registrants -------------------------------------------------- */

static json_t *listing(const redisReply *one)
{
    const redisReply *keys;
    json_t *l, *arr;
    apr_size_t k;

    if (one->type != REDIS_REPLY_ARRAY || one->elements != 5
        || one->element[0]->type != REDIS_REPLY_STRING) {
        return NULL;
    }
    keys = one->element[4];
    l = json_object();
    arr = json_array();
    for (k = 0; keys->type == REDIS_REPLY_ARRAY && k < keys->elements; k++) {
        if (keys->element[k]->type == REDIS_REPLY_STRING) {
            json_array_append_new(arr, json_stringn(keys->element[k]->str,
                                                    keys->element[k]->len));
        }
    }
    json_object_set_new(l, "listenKeys", arr);
    json_object_set_new(l, "registered-ts", json_integer(int_at(one, 1)));
    json_object_set_new(l, "connected", json_boolean(int_at(one, 3) == 1));
    json_object_set_new(l, "last-activity", json_integer(int_at(one, 2)));
    json_object_set_new(l, "missed", json_integer(0));
    return l;
}

apr_status_t sse_rbus_list(redisContext *c, const sse_rbus_t *b,
                           apr_pool_t *p, apr_int64_t active_ms,
                           char **json)
{
    json_t *all = json_object();
    apr_status_t rv = APR_ENOMEM;
    redisReply *r;
    char since[24];
    sse_args_t a;
    apr_size_t i;
    char *js;

    args_start(&a, b);
    arg_num(&a, since, b->now_ms - active_ms);
    r = run(c, sse_lua_list, &a, b);
    if (r == NULL) {
        json_decref(all);
        return SSE_EBUS;
    }
    for (i = 0; all && i < r->elements; i++) {
        json_t *l = listing(r->element[i]);
        if (l) {
            json_object_setn_new_nocheck(all, r->element[i]->element[0]->str,
                                         r->element[i]->element[0]->len, l);
        }
    }
    freeReplyObject(r);
    js = all ? json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    if (js) {
        *json = apr_pstrdup(p, js);
        free(js);
        rv = APR_SUCCESS;
    }
    json_decref(all);
    return rv;
}
