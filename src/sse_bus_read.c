/* The bus's Redis engine (sse_bus_redis.h), its reading side: the log
 * read with XREAD and each entry checked, and the replicas asked whether
 * they have what was read (ROLE, WAIT). */
#include <string.h>

#include <apr_strings.h>

#include "sse_bus_redis.h"
#include "sse_bus_redis_int.h"
#include "sse_id.h"

/* ---- reading the log -------------------------------------------------- */

/* The value of field @a name in an entry's flat field array, or NULL. */
static const redisReply *field(const redisReply *f, const char *name)
{
    apr_size_t i;

    for (i = 0; i + 1 < f->elements; i += 2) {
        if (f->element[i]->type == REDIS_REPLY_STRING
            && strcmp(f->element[i]->str, name) == 0
            && f->element[i + 1]->type == REDIS_REPLY_STRING) {
            return f->element[i + 1];
        }
    }
    return NULL;
}

static const char *token_field(apr_pool_t *p, const redisReply *f,
                               const char *name)
{
    const redisReply *v = field(f, name);

    return v && sse_token_valid(v->str, v->len)
               ? apr_pstrmemdup(p, v->str, v->len) : NULL;
}

static const char *id_field(apr_pool_t *p, const redisReply *f)
{
    const redisReply *v = field(f, "i");

    return v && v->len <= SSE_ID_MAX && strlen(v->str) == v->len
               && sse_id_parse(v->str, NULL) == APR_SUCCESS
               ? apr_pstrmemdup(p, v->str, v->len) : NULL;
}

static apr_int64_t num_field(const redisReply *f, const char *name)
{
    const redisReply *v = field(f, name);

    return v ? apr_atoi64(v->str) : 0;
}

/* One line of JSON, as the publisher made it: nothing that could end
 * the line it is written on. */
static int payload_field(apr_pool_t *p, const redisReply *f,
                         apr_size_t max, sse_bus_entry_t *e)
{
    const redisReply *v = field(f, "p");

    if (v == NULL || v->len == 0) {
        return 1;
    }
    if (v->len > max || memchr(v->str, '\n', v->len)
        || memchr(v->str, '\r', v->len) || strlen(v->str) != v->len) {
        return 0;
    }
    e->payload = apr_pstrmemdup(p, v->str, v->len);
    e->plen = v->len;
    return 1;
}

/* The kind of an entry whose fields check, else 0. */
static int entry_kind(apr_pool_t *p, const redisReply *f, apr_size_t max,
                      sse_bus_entry_t *e)
{
    const redisReply *t = field(f, "t");

    if (t == NULL || t->len != 1) {
        return 0;
    }
    e->ms = num_field(f, "m");
    switch (t->str[0]) {
    case 'k':
        e->key = token_field(p, f, "k");
        return e->key && payload_field(p, f, max, e) ? SSE_BUS_KEY : 0;
    case 'n':
        e->key = token_field(p, f, "k");
        e->data = token_field(p, f, "d");
        return e->key && e->data && payload_field(p, f, max, e)
                   ? SSE_BUS_NAME : 0;
    case 'c':
        e->id = id_field(p, f);
        e->serial = (apr_uint64_t)num_field(f, "s");
        return e->id ? SSE_BUS_CONNECT : 0;
    case 'l':
        e->id = id_field(p, f);
        e->key = token_field(p, f, "k");
        return e->id && e->key ? SSE_BUS_LISTEN : 0;
    case 'u':
        e->id = id_field(p, f);
        e->retire_ms = num_field(f, "r");
        return e->id ? SSE_BUS_REMOVE : 0;
    case 'x':
        e->retire_ms = num_field(f, "r");
        return SSE_BUS_CLEAR;
    default:
        return 0;
    }
}

/* An entry of the log: "<seq>-0" and its fields. 0 if its id is not one
 * of ours (then it is not applied at all). */
static int parse_entry(apr_pool_t *p, const redisReply *r, apr_size_t max,
                       sse_bus_entry_t *e)
{
    char *end;

    memset(e, 0, sizeof(*e));
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2
        || r->element[0]->type != REDIS_REPLY_STRING
        || r->element[1]->type != REDIS_REPLY_ARRAY) {
        return 0;
    }
    e->seq = (apr_uint64_t)apr_strtoi64(r->element[0]->str, &end, 10);
    if (e->seq == 0 || strcmp(end, "-0") != 0) {
        return 0;
    }
    e->kind = entry_kind(p, r->element[1], max, e);
    return 1;
}

static int stream_index(const redisReply *name, int n,
                        const char *const *ns)
{
    int i;

    for (i = 0; name->type == REDIS_REPLY_STRING && i < n; i++) {
        apr_size_t len = strlen(ns[i]);
        if (name->len == len + 4 && memcmp(name->str, ns[i], len) == 0
            && strcmp(name->str + len, ":log") == 0) {
            return i;
        }
    }
    return -1;
}

static void take_entries(apr_pool_t *p, const redisReply *list,
                         apr_size_t max, sse_bus_entry_t **got, int *ngot)
{
    apr_size_t i;
    int n = 0;

    *got = apr_pcalloc(p, (list->elements + 1) * sizeof(**got));
    for (i = 0; i < list->elements; i++) {
        n += parse_entry(p, list->element[i], max, &(*got)[n]);
    }
    *ngot = n;
}

apr_status_t sse_rbus_replicas(redisContext *c, int *n, const char **err)
{
    redisReply *r = redisCommand(c, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements >= 3
             && r->element[0]->type == REDIS_REPLY_STRING
             && strcmp(r->element[0]->str, "master") == 0
             && r->element[2]->type == REDIS_REPLY_ARRAY;

    *n = ok ? (int)r->element[2]->elements : 0;
    if (!ok) {
        *err = r ? "ROLE: not a master" : sse_rbus_reply_error(c, r);
    }
    freeReplyObject(r);
    return ok ? APR_SUCCESS : SSE_EBUS;
}

apr_status_t sse_rbus_replicated(redisContext *c, const char *ns, int fence,
                                 int timeout_ms, int *acked,
                                 const char **err, int *unsure)
{
    redisReply *r = NULL;
    void *reply = NULL;
    int ok = 1, fenced = 1;

    *acked = 0;
    if (fence) {
        redisAppendCommand(c, "SET %s:fence 1 PX 60000", ns);
    }
    redisAppendCommand(c, "WAIT 1 %d", timeout_ms);
    if (fence) {
        /* a fence refused (OOM, MISCONF) makes the WAIT count from an
         * older write: then nothing is acknowledged */
        ok = redisGetReply(c, &reply) == REDIS_OK;
        fenced = ok && ((redisReply *)reply)->type == REDIS_REPLY_STATUS;
        freeReplyObject(reply);
        reply = NULL;
    }
    if (ok && redisGetReply(c, &reply) == REDIS_OK) {
        r = reply;
    }
    if (unsure) {
        *unsure = sse_rbus_sent_and_lost(c, r);
    }
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        *err = r ? "WAIT: unexpected reply" : sse_rbus_reply_error(c, r);
        freeReplyObject(r);
        return SSE_EBUS;
    }
    *acked = fenced && r->integer >= 1;
    freeReplyObject(r);
    return APR_SUCCESS;
}

apr_status_t sse_rbus_read(redisContext *c, int n, const char *const *ns,
                           const apr_uint64_t *after, int block_ms,
                           int count, apr_size_t max_payload, apr_pool_t *p,
                           sse_bus_entry_t **got, int *ngot,
                           const char **err)
{
    const char **argv = apr_palloc(p, (6 + 2 * (apr_size_t)n) * sizeof(*argv));
    redisReply *r;
    apr_size_t i;
    int argc = 0, k;

    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = apr_itoa(p, count);
    argv[argc++] = "BLOCK";
    argv[argc++] = apr_itoa(p, block_ms);
    argv[argc++] = "STREAMS";
    for (k = 0; k < n; k++) {
        argv[argc++] = apr_pstrcat(p, ns[k], ":log", NULL);
    }
    for (k = 0; k < n; k++) {
        argv[argc++] = apr_psprintf(p, "%" APR_UINT64_T_FMT "-0", after[k]);
        got[k] = NULL;
        ngot[k] = 0;
    }
    r = redisCommandArgv(c, argc, argv, NULL);
    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        *err = apr_pstrdup(p, sse_rbus_reply_error(c, r));
        freeReplyObject(r);
        return SSE_EBUS;
    }
    for (i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; i++) {
        const redisReply *s = r->element[i];
        if (s->type == REDIS_REPLY_ARRAY && s->elements == 2
            && s->element[1]->type == REDIS_REPLY_ARRAY
            && (k = stream_index(s->element[0], n, ns)) >= 0) {
            take_entries(p, s->element[1], max_payload, &got[k], &ngot[k]);
        }
    }
    freeReplyObject(r);
    return APR_SUCCESS;
}
