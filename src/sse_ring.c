/* The event ring: append, evict (missed accounting), read, route, and
 * the two publish operations. */
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

/* ---- the ring (under the mutex) -------------------------------------- */

static int holds_key(const sse_slot_t *sl, const sse_event_t *e)
{
    apr_uint32_t k;

    for (k = 0; k < sl->nkeys; k++) {
        if (sl->keys[k].hash == e->key_hash && sl->keys[k].since < e->seq
            && strcmp(sl->keys[k].key, e->key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Is the slot's name (its id up to the last '_') the entry's name? */
static int has_name(const sse_slot_t *sl, const sse_event_t *e)
{
    return sl->name_hash == e->key_hash && e->key[sl->name_len] == '\0'
           && memcmp(sl->id, e->key, sl->name_len) == 0;
}

static int targets(const sse_event_t *e, const sse_slot_t *sl)
{
    if (e->seq <= sl->created_seq) {
        return 0;
    }
    if (e->kind == SSE_EV_NAME) {
        return has_name(sl, e);
    }
    return e->kind == SSE_EV_KEY && holds_key(sl, e);
}

static void note_missed(sse_registry_t *reg, sse_slot_t *sl,
                        const sse_event_t *e)
{
    /* copies are taken in seq order: a stream that took anything at or
     * after this entry took this one too */
    if (sl->state == SLOT_FREE || sl->last_seq >= e->seq
        || (sl->state == SLOT_CONNECTED && sl->taken_seq >= e->seq)
        || !targets(e, sl)) {
        return;
    }
    sl->missed++;
    reg->h->stats.missed++;
    if (sl->missed_from == 0) {
        sl->missed_from = e->seq;
    }
    sl->missed_to = e->seq;
}

/* An entry about to be overwritten: count it against every listener that
 * should have had it and did not; work proportional to its targets. */
/* The next key node holding exactly @a key after node @a n1 (0: the
 * first): a bucket also chains other keys of the same hash. */
static apr_uint32_t key_node_next(sse_registry_t *reg, apr_uint32_t n1,
                                  const char *key, apr_uint32_t hash)
{
    n1 = n1 ? node_at(reg, n1)->next : reg->key_bucket[bucket_of(reg, hash)];
    while (n1 && (node_at(reg, n1)->hash != hash
                  || strcmp(node_at(reg, n1)->key, key) != 0)) {
        n1 = node_at(reg, n1)->next;
    }
    return n1;
}

#define FOR_KEY_NODES(reg, n1, key, hash)                                   \
    for ((n1) = key_node_next((reg), 0, (key), (hash)); (n1);               \
         (n1) = key_node_next((reg), (n1), (key), (hash)))

/* The next slot (index + 1) of the entry's name after @a i1 (0: the
 * first); the bucket also chains other names of the same hash. */
static apr_uint32_t name_slot_next(sse_registry_t *reg, apr_uint32_t i1,
                                   const sse_event_t *e)
{
    i1 = i1 ? reg->slot[i1 - 1].next_name
            : reg->name_bucket[bucket_of(reg, e->key_hash)];
    while (i1 && !has_name(&reg->slot[i1 - 1], e)) {
        i1 = reg->slot[i1 - 1].next_name;
    }
    return i1;
}

#define FOR_NAME_SLOTS(reg, i1, e)                                          \
    for ((i1) = name_slot_next((reg), 0, (e)); (i1);                        \
         (i1) = name_slot_next((reg), (i1), (e)))

static void evict(sse_registry_t *reg, const sse_event_t *e)
{
    apr_uint32_t n1;

    if (e->kind == SSE_EV_NAME) {
        FOR_NAME_SLOTS(reg, n1, e) {
            note_missed(reg, &reg->slot[n1 - 1], e);
        }
    }
    else if (e->kind == SSE_EV_KEY) {
        FOR_KEY_NODES(reg, n1, e->key, e->key_hash) {
            note_missed(reg, &reg->slot[(n1 - 1) / SSE_MAX_KEYS], e);
        }
    }
}

static sse_event_t *ring_append(sse_registry_t *reg, apr_uint32_t kind,
                                apr_int64_t now_ms)
{
    apr_uint64_t seq = reg->h->next_seq;
    sse_event_t *e = &reg->ring[seq % reg->h->sz.history];

    if (e->seq) {
        evict(reg, e);
    }
    memset(e, 0, sizeof(*e));
    e->kind = kind;
    e->ms = now_ms;
    return e;
}

/* Complete the entry from ring_append: give it its seq, then publish it
 * with a release store so an acquire reader never sees a half entry. */
static apr_uint64_t ring_commit(sse_registry_t *reg, sse_event_t *e)
{
    apr_uint64_t seq = reg->h->next_seq;

    e->seq = seq;
    reg->h->stats.published++;
    __atomic_store_n(&reg->h->next_seq, seq + 1, __ATOMIC_RELEASE);
    return seq;
}

void sse_reg_append_end(sse_registry_t *reg, apr_uint32_t slot,
                       apr_uint32_t holder_gen)
{
    sse_event_t *e = ring_append(reg, slot == SSE_SLOT_ALL ? SSE_EV_END_ALL
                                                          : SSE_EV_END_SLOT,
                                 0);
    e->slot = slot;
    e->holder_gen = holder_gen;
    ring_commit(reg, e);
}

apr_uint64_t sse_reg_oldest_seq(const sse_registry_t *reg)
{
    apr_uint64_t head = reg->h->next_seq;
    apr_uint64_t hist = reg->h->sz.history;

    return (head - reg->h->first_seq > hist) ? head - hist
                                             : reg->h->first_seq;
}

apr_uint64_t sse_registry_head(sse_registry_t *reg)
{
    return __atomic_load_n(&reg->h->next_seq, __ATOMIC_ACQUIRE);
}

apr_status_t sse_registry_read(sse_registry_t *reg, const sse_hold_t *hold,
                               apr_uint64_t after, sse_event_t *evs, int max,
                               int *n)
{
    apr_status_t rv;
    sse_slot_t *sl = NULL;

    *n = 0;
    LOCKED(reg, rv) {
        apr_uint64_t seq = sse_reg_oldest_seq(reg), head = reg->h->next_seq;
        sl = sse_reg_held(reg, hold);
        if (sl == NULL) {
            continue;
        }
        for (seq = (after + 1 > seq) ? after + 1 : seq;
             seq < head && *n < max; seq++) {
            const sse_event_t *e = &reg->ring[seq % reg->h->sz.history];
            if (e->seq == seq && targets(e, sl)) {
                evs[(*n)++] = *e;
                sl->taken_seq = seq;
            }
        }
    }
    return rv ? rv : (sl ? APR_SUCCESS : APR_EOF);
}

void sse_registry_fetch(sse_registry_t *reg, const sse_hold_t *hold,
                        const apr_uint64_t *seqs, sse_event_t *evs, int *n)
{
    apr_status_t rv;
    int i, count = *n;

    *n = 0;
    LOCKED(reg, rv) {
        sse_slot_t *sl = sse_reg_held(reg, hold);
        for (i = 0; sl && i < count; i++) {
            const sse_event_t *e = &reg->ring[seqs[i] % reg->h->sz.history];
            if (e->seq == seqs[i]) {
                evs[(*n)++] = *e;
                if (e->seq > sl->taken_seq) {
                    sl->taken_seq = e->seq;
                }
            }
        }
    }
}

static void route_one(sse_registry_t *reg, const sse_event_t *e,
                      apr_uint32_t pid, sse_route_fn *fn, void *baton)
{
    apr_uint32_t n1;
    sse_slot_t *sl;

    switch (e->kind) {
    case SSE_EV_NAME:
        FOR_NAME_SLOTS(reg, n1, e) {
            sl = &reg->slot[n1 - 1];
            if (sl->state == SLOT_CONNECTED && sl->holder_pid == pid
                && targets(e, sl)) {
                fn(baton, n1 - 1, sl->holder_gen, e);
            }
        }
        break;
    case SSE_EV_KEY:
        FOR_KEY_NODES(reg, n1, e->key, e->key_hash) {
            sl = &reg->slot[(n1 - 1) / SSE_MAX_KEYS];
            if (sl->state == SLOT_CONNECTED && sl->holder_pid == pid
                && targets(e, sl)) {
                fn(baton, (n1 - 1) / SSE_MAX_KEYS, sl->holder_gen, e);
            }
        }
        break;
    default:    /* ends: the holder knows whether it has that stream */
        fn(baton, e->slot, e->holder_gen, e);
        break;
    }
}

apr_uint64_t sse_registry_route(sse_registry_t *reg, apr_uint64_t from,
                                apr_uint64_t to, apr_uint32_t pid,
                                sse_route_fn *fn, void *baton)
{
    apr_uint64_t lost = 0, seq;
    apr_status_t rv;

    LOCKED(reg, rv) {
        for (seq = from; seq < to; seq++) {
            const sse_event_t *e = &reg->ring[seq % reg->h->sz.history];
            if (e->seq != seq) {
                lost++;
                continue;
            }
            route_one(reg, e, pid, fn, baton);
        }
    }
    return lost;
}

static int count_holders(sse_registry_t *reg, const char *key,
                         apr_uint32_t hash)
{
    apr_uint32_t n1;
    int count = 0;

    FOR_KEY_NODES(reg, n1, key, hash) {
        count++;
    }
    return count;
}

apr_status_t sse_registry_notify_key(sse_registry_t *reg, const char *key,
                                     apr_int64_t now_ms, int *delivered)
{
    char data[SSE_DATA_MAX];
    apr_size_t len;
    apr_status_t rv = APR_EINVAL;

    *delivered = 0;
    if (!sse_token_valid(key, strlen(key))
        || (rv = sse_frame_data("notify", key, data, &len)) != APR_SUCCESS) {
        return rv;
    }
    LOCKED(reg, rv) {
        apr_uint32_t hash = hash_of(key, strlen(key));
        sse_event_t *e;
        *delivered = count_holders(reg, key, hash);
        if (*delivered == 0) {
            continue;
        }
        e = ring_append(reg, SSE_EV_KEY, now_ms);
        e->key_hash = hash;
        apr_cpystrn(e->key, key, sizeof(e->key));
        memcpy(e->data, data, len + 1);
        e->len = (apr_uint32_t)len;
        ring_commit(reg, e);
    }
    return rv;
}

apr_status_t sse_registry_notify_completion(sse_registry_t *reg,
                                            const char *id,
                                            const char *taskid,
                                            apr_int64_t now_ms,
                                            int *delivered)
{
    apr_status_t rv, rv2 = APR_ENOENT;

    *delivered = 0;
    if (!sse_token_valid(taskid, strlen(taskid))) {
        return APR_EINVAL;
    }
    LOCKED(reg, rv) {
        const sse_slot_t *me = sse_reg_find_id(reg, id);
        sse_event_t *e;
        apr_uint32_t i1;
        if (me == NULL) {
            continue;
        }
        rv2 = APR_SUCCESS;
        /* one entry for the name; each stream frames it with its own id */
        e = ring_append(reg, SSE_EV_NAME, now_ms);
        memcpy(e->key, me->id, me->name_len);
        e->key[me->name_len] = '\0';
        e->key_hash = me->name_hash;
        e->len = (apr_uint32_t)strlen(taskid);
        memcpy(e->data, taskid, e->len + 1);
        FOR_NAME_SLOTS(reg, i1, e) {
            ++*delivered;
        }
        ring_commit(reg, e);
    }
    return rv ? rv : rv2;
}

apr_status_t sse_registry_event_data(const sse_event_t *ev,
                                     const char *recipient, char *buf,
                                     const char **data, apr_size_t *len)
{
    apr_status_t rv = APR_SUCCESS;

    if (ev->kind == SSE_EV_NAME) {
        rv = sse_frame_completed(ev->ms, recipient, ev->data, buf, len);
        *data = buf;
    }
    else {
        *data = ev->data;
        *len = ev->len;
    }
    return rv;
}
