/* The bus, the registry's side (sse_bus.h): the log's entries applied to
 * the ring with their own seqs, and a stream opened from the log's record
 * of its listener. */
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

void sse_registry_set_bus(sse_registry_t *reg, int on)
{
    reg->bus = on;
    reg->h->bus_mode = (apr_uint32_t)on;
}

int sse_registry_was_bus(const void *mem)
{
    return ((const sse_reg_header_t *)mem)->bus_mode != 0;
}

int sse_registry_bus(const sse_registry_t *reg)
{
    return reg->bus;
}

apr_uint64_t sse_registry_bus_floor(sse_registry_t *reg)
{
    return __atomic_load_n(&reg->h->bus_next, __ATOMIC_ACQUIRE);
}

sse_bus_stats_t *sse_registry_bus_stats(sse_registry_t *reg)
{
    return &reg->h->bus;
}

/* Make @a seq the ring's next one: 0 when it was applied already. The
 * first entry this ring sees, or one past a hole (the log lost entries),
 * starts the ring there: a resume from before it is then older than the
 * ring, and told what it missed. */
static int seek(sse_registry_t *reg, apr_uint64_t seq)
{
    sse_reg_header_t *h = reg->h;

    if (h->bus_next && seq < h->bus_next) {
        return 0;
    }
    if (h->bus_next == 0 || seq > h->bus_next) {
        if (h->bus_next) {
            h->bus.gaps++;
        }
        h->first_seq = seq;
        __atomic_store_n(&h->next_seq, seq, __ATOMIC_RELEASE);
    }
    return 1;
}

typedef struct {
    apr_uint32_t *pids;
    int max;
    int n;                      /* -1: every process */
} sse_ended_t;

static void ended_add(sse_ended_t *en, apr_uint32_t pid)
{
    if (en->n >= 0 && en->n < en->max && pid) {
        en->pids[en->n++] = pid;
    }
}

/* A stream of @a sl ends (its entry is the one being applied). */
static void end_stream(sse_registry_t *reg, sse_slot_t *sl, sse_ended_t *en)
{
    ended_add(en, sl->holder_pid);
    sse_reg_append_end(reg, slot_index(reg, sl), sl->holder_gen);
    sse_reg_slot_rest(reg, sl);
}

static int payload_ok(const sse_registry_t *reg, const sse_bus_entry_t *e)
{
    return e->plen <= reg->h->sz.payload_bytes / 4;
}

/* Apply one entry: exactly one ring entry at its seq (a NOP when it
 * changes only what this host does not hold). */
static void apply_one(sse_registry_t *reg, const sse_bus_entry_t *e,
                      sse_ended_t *en)
{
    apr_uint64_t seq = reg->h->next_seq;
    sse_slot_t *sl = e->id ? sse_reg_find_id(reg, e->id) : NULL;
    int added;

    switch (e->kind) {
    case SSE_BUS_KEY:
        if (payload_ok(reg, e)) {
            sse_reg_append_key(reg, e->key, e->payload, e->plen, e->ms);
        }
        break;
    case SSE_BUS_NAME:
        if (payload_ok(reg, e)) {
            sse_reg_append_name(reg, e->key, strlen(e->key), e->data,
                                e->payload, e->plen, e->ms);
        }
        break;
    case SSE_BUS_CONNECT:
        if (sl && sl->state == SLOT_CONNECTED && sl->bus_serial < e->serial) {
            end_stream(reg, sl, en);
        }
        break;
    case SSE_BUS_LISTEN:
        if (sl) {
            (void)sse_reg_add_key(reg, sl, e->key, &added);
        }
        break;
    case SSE_BUS_REMOVE:
        if (sl) {
            ended_add(en, sl->state == SLOT_CONNECTED ? sl->holder_pid : 0);
            if (e->retire_ms) {
                sse_reg_retire(reg, sl, e->retire_ms);
            }
            sse_reg_slot_free(reg, sl, 1);
        }
        break;
    case SSE_BUS_CLEAR:
        en->n = -1;
        sse_reg_clear_all(reg, e->retire_ms);
        break;
    default:
        break;
    }
    if (reg->h->next_seq == seq) {
        if (e->kind == SSE_BUS_KEY || e->kind == SSE_BUS_NAME) {
            reg->h->bus.errors++;       /* a payload this ring can't hold */
        }
        sse_reg_append_nop(reg);
    }
}

apr_status_t sse_registry_bus_apply(sse_registry_t *reg,
                                    const sse_bus_entry_t *e, int n,
                                    apr_int64_t now_ms,
                                    apr_uint32_t *ended, int max_ended,
                                    int *n_ended)
{
    sse_ended_t en = { ended, max_ended, 0 };
    apr_status_t rv;
    int i;

    *n_ended = 0;
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    for (i = 0; i < n; i++) {
        if (!seek(reg, e[i].seq)) {
            continue;
        }
        apply_one(reg, &e[i], &en);
        __atomic_store_n(&reg->h->bus_next, e[i].seq + 1, __ATOMIC_RELEASE);
        reg->h->bus.applied++;
        reg->h->bus.lag_ms = now_ms - e[i].ms;
    }
    sse_reg_unlock(reg, &rv);
    *n_ended = en.n;
    return rv;
}

/* The log's record of the listener, into its slot here: keys it took on
 * other hosts, and where its events start. */
static void adopt(sse_registry_t *reg, sse_slot_t *sl,
                  const sse_bus_listener_t *l)
{
    int k, added;

    sl->created_seq = l->created_seq;
    sl->registered_ms = l->registered_ms;
    if (l->last_seq > sl->last_seq) {
        sl->last_seq = l->last_seq;
    }
    sl->bus_serial = l->serial;
    for (k = 0; k < l->nkeys; k++) {
        if (sse_reg_add_key(reg, sl, l->keys[k], &added) == APR_SUCCESS
            && added) {
            sl->keys[sl->nkeys - 1].since = l->since[k];
        }
    }
}

/* A client resuming from before the ring's oldest entry: this host does
 * not know what it lost there (its events came before its stream did),
 * so all of it is reported. */
static void older_than_ring(sse_registry_t *reg, sse_hold_t *hold)
{
    apr_uint64_t oldest = sse_reg_oldest_seq(reg);

    if (hold->cursor + 1 >= oldest) {
        return;
    }
    if (hold->missed_to == 0 || hold->missed_from > hold->cursor + 1) {
        hold->missed_from = hold->cursor + 1;
    }
    if (hold->missed_to < oldest - 1) {
        hold->missed_to = oldest - 1;
    }
}

apr_status_t sse_registry_bus_connect(sse_registry_t *reg, const char *id,
                                      apr_uint32_t pid,
                                      const sse_client_t *client,
                                      apr_int64_t now_ms,
                                      const sse_bus_listener_t *l,
                                      const apr_uint64_t *last_event_id,
                                      sse_hold_t *hold)
{
    apr_status_t rv, rv2;
    sse_slot_t *sl;
    int created = 0;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_find_id(reg, id);
    if (sl && sl->state == SLOT_CONNECTED && sl->bus_serial > l->serial) {
        rv2 = APR_EBUSY;
        goto leave;
    }
    rv2 = sse_reg_connect_check(reg, id, pid, client, now_ms, sl);
    if (rv2 == APR_SUCCESS && sl == NULL) {
        rv2 = sse_reg_new_listener(reg, id, client, now_ms, &sl);
        created = rv2 == APR_SUCCESS;
    }
    if (rv2 == APR_SUCCESS) {
        adopt(reg, sl, l);
        rv2 = sse_reg_hold_slot(reg, sl, pid, client, last_event_id, hold);
    }
    if (rv2 == APR_SUCCESS) {
        sl->activity_ms = now_ms;
        hold->serial = l->serial;
        older_than_ring(reg, hold);
    }
    else if (created) {
        sse_reg_slot_free(reg, sl, 0);
    }
leave:
    sse_reg_unlock(reg, &rv);
    return rv ? rv : rv2;
}

int sse_registry_bus_streams(sse_registry_t *reg, apr_uint32_t pid,
                             apr_uint32_t *from, sse_bus_stream_t *out,
                             int max)
{
    apr_status_t rv;
    apr_uint32_t i, k;
    int n = 0;

    if (sse_reg_lock(reg) != APR_SUCCESS) {
        return 0;
    }
    for (i = *from; i < reg->h->sz.max_listeners && n < max; i++) {
        const sse_slot_t *sl = &reg->slot[i];
        if (sl->state != SLOT_CONNECTED || sl->holder_pid != pid) {
            continue;
        }
        memcpy(out[n].id, sl->id, sizeof(out[n].id));
        out[n].serial = sl->bus_serial;
        out[n].nkeys = (int)sl->nkeys;
        for (k = 0; k < sl->nkeys; k++) {
            memcpy(out[n].keys[k], sl->keys[k].key, sizeof(out[n].keys[k]));
            out[n].since[k] = sl->keys[k].since;
        }
        n++;
    }
    *from = i;
    rv = APR_SUCCESS;
    sse_reg_unlock(reg, &rv);
    return n;
}
