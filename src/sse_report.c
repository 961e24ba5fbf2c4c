/* Reporting: list-registrants JSON and counters. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "sse_registry_int.h"

/* ---- list-registrants ---------------------------------------------- */

/* Slots looked at per hold of the mutex: a few hundred slots of ~3 KB
 * each take tens of microseconds to scan and copy compactly. */
#define SSE_LIST_BATCH      256
/* Room for the listen keys of one batch; a slot's keys (at most
 * SSE_MAX_KEYS * (SSE_TOKEN_MAX + 1) bytes) that do not fit start the
 * next batch. */
#define SSE_LIST_KEY_ROOM   (16 * 1024)

/* What list-registrants shows of one listener, copied out of its slot. */
typedef struct {
    apr_int64_t registered_ms;
    apr_int64_t activity_ms;
    apr_uint64_t missed;
    apr_uint32_t connected;
    apr_uint32_t nkeys;
    apr_size_t keys_at;         /* its keys: NUL-terminated, one after
                                   the other, in the batch's key room */
    char id[SSE_ID_MAX + 1];
} sse_listing_t;

typedef struct {
    sse_listing_t rec[SSE_LIST_BATCH];
    char keys[SSE_LIST_KEY_ROOM];
} sse_list_batch_t;

/* The reply, grown with realloc() and freed with the request's pool, so
 * that it is built once and never copied into a pool. */
typedef struct {
    char *buf;
    apr_size_t len, size;
} sse_outbuf_t;

static apr_status_t outbuf_free(void *data)
{
    free(((sse_outbuf_t *)data)->buf);
    return APR_SUCCESS;
}

static apr_status_t outbuf_put(sse_outbuf_t *o, const char *s, apr_size_t len)
{
    if (o->len + len + 1 > o->size) {
        apr_size_t size = o->size ? o->size : 4096;
        char *buf;
        while (o->len + len + 1 > size) {
            size *= 2;
        }
        buf = realloc(o->buf, size);
        if (buf == NULL) {
            return APR_ENOMEM;
        }
        o->buf = buf;
        o->size = size;
    }
    memcpy(o->buf + o->len, s, len);
    o->len += len;
    o->buf[o->len] = '\0';
    return APR_SUCCESS;
}

/* Copy the listeners of slots [@a *from, ...) registered by @a serial
 * into @a b, under the mutex: until SSE_LIST_BATCH slots are looked at or
 * the key room is full. @a *from moves to the first slot not looked at.
 * @return the count copied */
static int list_batch(sse_registry_t *reg, apr_uint64_t serial,
                      apr_uint32_t *from, sse_list_batch_t *b)
{
    apr_uint32_t max = reg->h->sz.max_listeners, i = *from, end, k;
    apr_uint32_t batch = reg->json_batch ? reg->json_batch : SSE_LIST_BATCH;
    apr_size_t used = 0;
    int n = 0;

    end = (max - i > batch) ? i + batch : max;
    for (; i < end; i++) {
        const sse_slot_t *sl = &reg->slot[i];
        sse_listing_t *r = &b->rec[n];
        apr_size_t need = 0;
        if (sl->state == SLOT_FREE || sl->serial > serial) {
            continue;           /* came after the call began */
        }
        for (k = 0; k < sl->nkeys; k++) {
            need += strlen(sl->keys[k].key) + 1;
        }
        if (used + need > sizeof(b->keys)) {
            break;              /* the next batch starts with it */
        }
        r->registered_ms = sl->registered_ms;
        r->activity_ms = sl->activity_ms;
        r->missed = sl->missed;
        r->connected = sl->state == SLOT_CONNECTED;
        r->nkeys = sl->nkeys;
        r->keys_at = used;
        memcpy(r->id, sl->id, sizeof(r->id));
        for (k = 0; k < sl->nkeys; k++) {
            apr_size_t len = strlen(sl->keys[k].key) + 1;
            memcpy(b->keys + used, sl->keys[k].key, len);
            used += len;
        }
        n++;
    }
    *from = i;
    return n;
}

/* `"<id>":{...}` of one listener, as json_dumps() writes a member of the
 * whole object (compact, members in this order). */
static apr_status_t listing_put(sse_outbuf_t *o, const sse_listing_t *r,
                                const char *keys)
{
    json_t *arr = json_array(), *l = json_object(), *one = json_object();
    apr_status_t rv = APR_ENOMEM;
    apr_uint32_t k;
    char *js = NULL;

    if (arr == NULL || l == NULL || one == NULL) {
        goto leave;
    }
    for (k = 0; k < r->nkeys; k++) {
        json_array_append_new(arr, json_string(keys));
        keys += strlen(keys) + 1;
    }
    json_object_set(l, "listenKeys", arr);
    json_object_set_new(l, "registered-ts", json_integer(r->registered_ms));
    json_object_set_new(l, "connected", json_boolean(r->connected));
    json_object_set_new(l, "last-activity", json_integer(r->activity_ms));
    json_object_set_new(l, "missed", json_integer((json_int_t)r->missed));
    json_object_set(one, r->id, l);
    js = json_dumps(one, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (js != NULL) {
        /* the member, without the braces of its one-member object */
        rv = outbuf_put(o, js + 1, strlen(js) - 2);
    }
leave:
    free(js);
    json_decref(one);
    json_decref(l);
    json_decref(arr);
    return rv;
}

apr_status_t sse_registry_json(sse_registry_t *reg, apr_pool_t *p,
                               char **out)
{
    sse_list_batch_t *b = apr_palloc(p, sizeof(*b));
    sse_outbuf_t *o = apr_pcalloc(p, sizeof(*o));
    apr_uint32_t from = 0, max = reg->h->sz.max_listeners;
    apr_uint64_t serial;
    apr_status_t rv;
    int i, n, listed = 0;

    apr_pool_cleanup_register(p, o, outbuf_free, apr_pool_cleanup_null);
    rv = outbuf_put(o, "{", 1);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = sse_reg_lock(reg);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    serial = reg->h->serial;
    while (rv == APR_SUCCESS) {
        /* copy a batch under the mutex, let others in, then write it */
        n = list_batch(reg, serial, &from, b);
        sse_reg_unlock(reg, &rv);
        for (i = 0; i < n && rv == APR_SUCCESS; i++) {
            if (listed++ > 0) {
                rv = outbuf_put(o, ",", 1);
            }
            if (rv == APR_SUCCESS) {
                rv = listing_put(o, &b->rec[i], b->keys + b->rec[i].keys_at);
            }
        }
        if (rv != APR_SUCCESS || from >= max) {
            break;
        }
        if (reg->json_between) {
            reg->json_between(reg->json_between_baton);
        }
        rv = sse_reg_lock(reg);
    }
    if (rv == APR_SUCCESS) {
        rv = outbuf_put(o, "}", 1);
    }
    *out = (rv == APR_SUCCESS) ? o->buf : NULL;
    return rv;
}

void sse_registry_stats(sse_registry_t *reg, sse_stats_t *st)
{
    apr_status_t rv;

    memset(st, 0, sizeof(*st));
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return;                 /* the lock error is logged by its hook */
    }
    *st = reg->h->stats;
    st->head_seq = reg->h->next_seq;
    st->oldest_seq = sse_reg_oldest_seq(reg);
    sse_reg_unlock(reg, &rv);
}

void sse_registry_count_slow(sse_registry_t *reg)
{
    apr_status_t rv;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return;                 /* the lock error is logged by its hook */
    }
    reg->h->stats.ended_slow++;
    sse_reg_unlock(reg, &rv);
}

int sse_registry_children(sse_registry_t *reg, sse_child_stat_t *out,
                          int max)
{
    apr_uint32_t i;
    apr_status_t rv;
    int n = 0;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < reg->h->sz.max_children && n < max; i++) {
        if (reg->child[i].pid && reg->child[i].streams) {
            out[n].pid = reg->child[i].pid;
            out[n].streams = reg->child[i].streams;
            n++;
        }
    }
    sse_reg_unlock(reg, &rv);
    return n;
}
