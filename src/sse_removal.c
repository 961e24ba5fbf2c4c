/* Removing listeners: one (disconnect), all (clear), the dormant ones
 * (cleanup), and the streams of a process that died. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

apr_status_t sse_registry_unregister(sse_registry_t *reg, const char *id,
                                     apr_int64_t retire_until_ms,
                                     apr_uint32_t *ended_pid)
{
    apr_status_t rv, rv2 = APR_ENOENT;
    sse_slot_t *sl;

    *ended_pid = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_find_id(reg, id);
    if (sl) {
        *ended_pid = sl->state == SLOT_CONNECTED ? sl->holder_pid : 0;
        sse_reg_retire(reg, sl, retire_until_ms);
        sse_reg_slot_free(reg, sl, 1);
        rv2 = APR_SUCCESS;
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : rv2;
}

int sse_reg_clear_all(sse_registry_t *reg, apr_int64_t retire_ms)
{
    apr_uint32_t i;
    int removed = 0;

    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        if (reg->slot[i].state != SLOT_FREE) {
            if (retire_ms) {
                sse_reg_retire(reg, &reg->slot[i], retire_ms);
            }
            sse_reg_slot_free(reg, &reg->slot[i], 0);
            removed++;
        }
    }
    sse_reg_append_end(reg, SSE_SLOT_ALL, 0);
    return removed;
}

apr_status_t sse_registry_clear(sse_registry_t *reg,
                                apr_int64_t retire_until_ms, int *removed)
{
    apr_status_t rv;

    *removed = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    *removed = sse_reg_clear_all(reg, retire_until_ms);
    sse_reg_unlock(reg, &rv);
    return rv;
}

apr_status_t sse_registry_cleanup(sse_registry_t *reg, apr_int64_t now_ms,
                                  apr_int64_t dormant_ms, int *removed)
{
    apr_status_t rv;
    apr_uint32_t i;

    *removed = 0;
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        sse_slot_t *sl = &reg->slot[i];
        if (sl->state == SLOT_REGISTERED
            && now_ms - sl->activity_ms >= dormant_ms) {
            sse_reg_slot_free(reg, sl, 1);
            ++*removed;
        }
    }
    sse_reg_unlock(reg, &rv);
    return rv;
}

apr_status_t sse_registry_child_gone(sse_registry_t *reg, apr_uint32_t pid,
                                     apr_int64_t now_ms)
{
    apr_status_t rv;
    apr_uint32_t i;
    sse_child_t *c;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    c = sse_reg_child_entry(reg, pid, 0);
    if (c == NULL) {
        goto leave;
    }
    for (i = 0; c->streams && i < reg->h->sz.max_listeners; i++) {
        sse_slot_t *sl = &reg->slot[i];
        if (sl->state == SLOT_CONNECTED && sl->holder_pid == pid) {
            sl->activity_ms = now_ms;   /* its client is reconnecting */
            sse_reg_slot_rest(reg, sl);
        }
    }
    c->pid = 0;
    c->streams = 0;
leave:
    sse_reg_unlock(reg, &rv);
    return rv;
}

int sse_registry_holders(sse_registry_t *reg, int any, apr_uint32_t *from,
                         apr_uint32_t *pids, int max)
{
    apr_uint32_t i;
    int n = 0;

    for (i = *from; i < reg->h->sz.max_children && n < max; i++) {
        const volatile sse_child_t *c = &reg->child[i];
        apr_uint32_t pid = c->pid;
        if (pid && (any || c->streams)) {
            pids[n++] = pid;
        }
    }
    *from = i;
    return n;
}
