/* Reporting: list-registrants JSON and counters. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "sse_registry_int.h"

/* ---- reporting ------------------------------------------------------- */

static json_t *slot_json(const sse_slot_t *sl)
{
    json_t *keys = json_array(), *o;
    apr_uint32_t k;

    for (k = 0; k < sl->nkeys; k++) {
        json_array_append_new(keys, json_string(sl->keys[k].key));
    }
    o = json_object();
    json_object_set_new(o, "listenKeys", keys);
    json_object_set_new(o, "registered-ts", json_integer(sl->registered_ms));
    json_object_set_new(o, "connected",
                        json_boolean(sl->state == SLOT_CONNECTED));
    json_object_set_new(o, "last-activity", json_integer(sl->activity_ms));
    json_object_set_new(o, "missed", json_integer((json_int_t)sl->missed));
    return o;
}

apr_status_t sse_registry_json(sse_registry_t *reg, apr_pool_t *p,
                               char **out)
{
    apr_uint32_t max = reg->h->sz.max_listeners, i, n = 0;
    sse_slot_t *copy = NULL;
    json_t *all;
    apr_status_t rv;
    char *js;

    LOCKED(reg, rv) {
        /* copy bytes under the mutex; build the JSON after */
        apr_uint32_t room = reg->h->stats.listeners + 1;
        copy = apr_palloc(p, room * sizeof(*copy));
        for (i = 0; i < max && n < room; i++) {
            if (reg->slot[i].state != SLOT_FREE) {
                copy[n++] = reg->slot[i];
            }
        }
    }
    if (rv) {
        return rv;
    }
    all = json_object();
    for (i = 0; i < n; i++) {
        json_object_set_new(all, copy[i].id, slot_json(&copy[i]));
    }
    js = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(all);
    if (js == NULL) {
        return APR_ENOMEM;
    }
    *out = apr_pstrdup(p, js);
    free(js);
    return APR_SUCCESS;
}

void sse_registry_stats(sse_registry_t *reg, sse_stats_t *st)
{
    apr_status_t rv;

    memset(st, 0, sizeof(*st));
    LOCKED(reg, rv) {
        *st = reg->h->stats;
        st->head_seq = reg->h->next_seq;
        st->oldest_seq = sse_reg_oldest_seq(reg);
    }
}

void sse_registry_count_slow(sse_registry_t *reg)
{
    apr_status_t rv;

    LOCKED(reg, rv) {
        reg->h->stats.ended_slow++;
    }
}

int sse_registry_children(sse_registry_t *reg, sse_child_stat_t *out,
                          int max)
{
    apr_uint32_t i;
    apr_status_t rv;
    int n = 0;

    LOCKED(reg, rv) {
        for (i = 0; i < reg->h->sz.max_children && n < max; i++) {
            if (reg->child[i].pid && reg->child[i].streams) {
                out[n].pid = reg->child[i].pid;
                out[n].streams = reg->child[i].streams;
                n++;
            }
        }
    }
    return n;
}
