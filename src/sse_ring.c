/* The event ring: append, evict (missed accounting), read, route, and
 * the two publish operations. */
#include <stddef.h>
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
    /* the fields, not the strings' 456 bytes: every writer ends its
     * strings, and nothing reads past their ends */
    memset(e, 0, offsetof(sse_event_t, key));
    e->key[0] = '\0';
    e->data[0] = '\0';
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
    sse_targets_t t = {0};

    e->slot = slot;
    e->holder_gen = holder_gen;
    if (slot == SSE_SLOT_ALL) {
        t.n = -1;
    }
    else if (reg->slot[slot].holder_gen == holder_gen) {
        sse_reg_target_add(reg, &t, &reg->slot[slot]);
    }
    ring_commit(reg, e);
    sse_reg_wake_targets(reg, &t);
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

/* ---- reading a listener's entries through its chains --------------- */

/* One of a listener's chains (its name's, or one key's) while a read
 * walks it, newest first. */
typedef struct {
    apr_uint64_t at;        /* the entry not yet merged: committed, still
                               in the ring, above floor */
    apr_uint64_t floor;     /* at or before it: not for this reader */
} sse_chain_t;

#define SSE_CHAINS (SSE_MAX_KEYS + 1)

/* The entry of @a seq if it is committed, still in the ring and after
 * @a floor; else NULL (the chain ends). */
static const sse_event_t *chain_entry(sse_registry_t *reg, apr_uint64_t seq,
                                      apr_uint64_t floor)
{
    const sse_event_t *e;

    if (seq <= floor || seq >= reg->h->next_seq) {
        return NULL;
    }
    reg->examined++;
    e = &reg->ring[seq % reg->h->sz.history];
    return e->seq == seq ? e : NULL;
}

/* Open the chain that starts at @a head into @a c: 1 if it has an entry
 * for the reader, else 0. */
static int chain_open(sse_registry_t *reg, sse_chain_t *c, apr_uint64_t head,
                      apr_uint64_t floor)
{
    c->at = head;
    c->floor = floor;
    return chain_entry(reg, head, floor) != NULL;
}

/* The chains of @a sl with entries after @a after, into @a ch (room for
 * SSE_CHAINS). @return how many */
static int chains_open(sse_registry_t *reg, const sse_slot_t *sl,
                       apr_uint64_t after, sse_chain_t *ch)
{
    apr_uint64_t floor = after > sl->created_seq ? after : sl->created_seq;
    apr_uint32_t k;
    int n = 0;

    /* with a bus, entries came before the listener did: its chains are
     * those of its buckets, whose heads every entry moves */
    n += chain_open(reg, &ch[n],
                    reg->bus ? reg->name_head[bucket_of(reg, sl->name_hash)]
                             : sl->name_last, floor);
    for (k = 0; k < sl->nkeys; k++) {
        const sse_keynode_t *kn = &sl->keys[k];
        floor = after > kn->since ? after : kn->since;
        n += chain_open(reg, &ch[n],
                        reg->bus ? reg->key_head[bucket_of(reg, kn->hash)]
                                 : kn->last, floor);
    }
    return n;
}

/* The newest entry of the @a *nch open chains, each moved past it (an
 * entry is in one chain; should two heads meet on one after a repair, it
 * still comes once); a chain that ends is dropped. NULL when all ended. */
static const sse_event_t *chains_next(sse_registry_t *reg, sse_chain_t *ch,
                                      int *nch)
{
    const sse_event_t *e, *p;
    int i, top = 0;

    if (*nch == 0) {
        return NULL;
    }
    for (i = 1; i < *nch; i++) {
        if (ch[i].at > ch[top].at) {
            top = i;
        }
    }
    e = &reg->ring[ch[top].at % reg->h->sz.history];
    for (i = *nch; i-- > 0;) {
        if (ch[i].at != e->seq) {
            continue;
        }
        /* links only go back: anything else is damage, and ends it */
        p = e->prev < e->seq ? chain_entry(reg, e->prev, ch[i].floor) : NULL;
        if (p) {
            ch[i].at = p->seq;
        }
        else {
            ch[i] = ch[--*nch];
        }
    }
    return e;
}

apr_status_t sse_registry_read(sse_registry_t *reg, const sse_hold_t *hold,
                               apr_uint64_t after, sse_event_t *evs, int max,
                               int *n)
{
    sse_chain_t ch[SSE_CHAINS];
    const sse_event_t *e;
    sse_slot_t *sl;
    apr_status_t rv;
    int nch, total = 0, want, k = 0;

    *n = 0;
    rv = sse_reg_lock(reg);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_held(reg, hold);
    if (sl == NULL) {
        rv = APR_EOF;
        goto leave;
    }
    /* the chains run newest first and the caller wants the oldest: count
     * them, then copy the last `want` of a second walk, back to front */
    nch = chains_open(reg, sl, after, ch);
    while ((e = chains_next(reg, ch, &nch)) != NULL) {
        total += targets(e, sl);
    }
    want = (total < max) ? total : max;
    nch = chains_open(reg, sl, after, ch);
    while (k < total && (e = chains_next(reg, ch, &nch)) != NULL) {
        if (targets(e, sl) && k++ >= total - want) {
            evs[total - k] = *e;
        }
    }
    if (want > 0) {
        *n = want;
        sl->taken_seq = evs[want - 1].seq;
    }
leave:
    sse_reg_unlock(reg, &rv);
    return rv;
}

void sse_registry_fetch(sse_registry_t *reg, const sse_hold_t *hold,
                        const apr_uint64_t *seqs, sse_event_t *evs, int *n)
{
    apr_status_t rv;
    sse_slot_t *sl;
    int i, count = *n;

    *n = 0;
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return;                 /* the lock error is logged by its hook */
    }
    sl = sse_reg_held(reg, hold);
    for (i = 0; sl && i < count; i++) {
        const sse_event_t *e = &reg->ring[seqs[i] % reg->h->sz.history];
        if (e->seq == seqs[i]) {
            evs[(*n)++] = *e;
            if (e->seq > sl->taken_seq) {
                sl->taken_seq = e->seq;
            }
        }
    }
    sse_reg_unlock(reg, &rv);
}

/* Hand @a e to the stream of @a sl; one that copied it took it. */
static void route_to(sse_registry_t *reg, sse_slot_t *sl,
                     const sse_event_t *e, sse_route_fn *fn, void *baton)
{
    if (fn(baton, slot_index(reg, sl), sl->holder_gen, e)
        && e->seq > sl->taken_seq) {
        sl->taken_seq = e->seq;
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
                route_to(reg, sl, e, fn, baton);
            }
        }
        break;
    case SSE_EV_KEY:
        FOR_KEY_NODES(reg, n1, e->key, e->key_hash) {
            sl = &reg->slot[(n1 - 1) / SSE_MAX_KEYS];
            if (sl->state == SLOT_CONNECTED && sl->holder_pid == pid
                && targets(e, sl)) {
                route_to(reg, sl, e, fn, baton);
            }
        }
        break;
    case SSE_EV_NOP:
        break;
    default:    /* ends: the holder knows whether it has that stream */
        (void)fn(baton, e->slot, e->holder_gen, e);
        break;
    }
}

apr_uint64_t sse_registry_route(sse_registry_t *reg, apr_uint64_t from,
                                apr_uint64_t to, apr_uint32_t pid,
                                sse_route_fn *fn, void *baton)
{
    apr_uint64_t lost = 0, seq, oldest;
    apr_status_t rv;

    rv = sse_reg_lock(reg);
    if (rv != APR_SUCCESS) {
        return 0;
    }
    /* a dispatcher a ring behind counts what it lost without walking it */
    oldest = sse_reg_oldest_seq(reg);
    if (from < oldest) {
        lost = ((to < oldest) ? to : oldest) - from;
        from = oldest;
    }
    for (seq = from; seq < to; seq++) {
        const sse_event_t *e = &reg->ring[seq % reg->h->sz.history];
        if (e->seq != seq) {
            lost++;
            continue;
        }
        route_one(reg, e, pid, fn, baton);
    }
    sse_reg_unlock(reg, &rv);
    return lost;
}

/* Link @a e, about to be committed, into the chain of its key: its prev
 * is the newest head among the holders' nodes (each was a holder for
 * every entry of the key since it listened, so each head is that entry
 * or older); then every holder's head moves to @a e. The fence keeps a
 * process killed in between from leaving a head on @a e with no prev. */
static void chain_key_entry(sse_registry_t *reg, sse_event_t *e,
                            sse_targets_t *t)
{
    apr_uint64_t seq = reg->h->next_seq, prev = 0;
    apr_uint64_t *bucket = &reg->key_head[bucket_of(reg, e->key_hash)];
    apr_uint32_t n1;

    for (n1 = key_node_next(reg, 0, e->key, e->key_hash); n1;
         n1 = key_node_next(reg, n1, e->key, e->key_hash)) {
        if (node_at(reg, n1)->last > prev) {
            prev = node_at(reg, n1)->last;
        }
        sse_reg_target_add(reg, t, &reg->slot[(n1 - 1) / SSE_MAX_KEYS]);
    }
    if (reg->bus && *bucket > prev) {
        prev = *bucket;         /* the bucket's chain: readers filter */
    }
    e->prev = prev;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (n1 = key_node_next(reg, 0, e->key, e->key_hash); n1;
         n1 = key_node_next(reg, n1, e->key, e->key_hash)) {
        node_at(reg, n1)->last = seq;
    }
    if (reg->bus) {
        *bucket = seq;
    }
}

/* The same for a completion and the tabs of its name. @return the tabs */
static int chain_name_entry(sse_registry_t *reg, sse_event_t *e,
                            sse_targets_t *t)
{
    apr_uint64_t seq = reg->h->next_seq, prev = 0;
    apr_uint64_t *bucket = &reg->name_head[bucket_of(reg, e->key_hash)];
    apr_uint32_t i1;
    int count = 0;

    for (i1 = name_slot_next(reg, 0, e); i1; i1 = name_slot_next(reg, i1, e)) {
        if (reg->slot[i1 - 1].name_last > prev) {
            prev = reg->slot[i1 - 1].name_last;
        }
        sse_reg_target_add(reg, t, &reg->slot[i1 - 1]);
        count++;
    }
    if (reg->bus && *bucket > prev) {
        prev = *bucket;
    }
    e->prev = prev;
    __atomic_thread_fence(__ATOMIC_RELEASE);
    for (i1 = name_slot_next(reg, 0, e); i1; i1 = name_slot_next(reg, i1, e)) {
        reg->slot[i1 - 1].name_last = seq;
    }
    if (reg->bus) {
        *bucket = seq;
    }
    return count;
}

/* A head left by a publish cut short or inherited by a half-made slot or
 * key, mended: one at or past next_seq goes back to the cut entry's prev;
 * one on a committed entry of another chain goes (0). @a kind and @a what
 * name the chain. */
static apr_uint64_t mended_head(sse_registry_t *reg, apr_uint64_t head,
                                apr_uint32_t kind, const char *what,
                                apr_size_t len)
{
    const sse_event_t *e;

    if (head >= reg->h->next_seq) {
        head = reg->ring[reg->h->next_seq % reg->h->sz.history].prev;
        if (head >= reg->h->next_seq) {
            return 0;
        }
    }
    e = &reg->ring[head % reg->h->sz.history];
    if (head && e->seq == head
        && (e->kind != kind || e->key[len] != '\0'
            || memcmp(e->key, what, len) != 0)) {
        return 0;
    }
    return head;
}

/* A bucket head past the last committed entry goes back to the cut
 * entry's prev (or 0): bucket chains hold any key of the bucket. */
static void mend_buckets(sse_registry_t *reg, apr_uint64_t *head)
{
    apr_uint32_t b;

    for (b = 0; b < reg->h->nbuckets; b++) {
        if (head[b] >= reg->h->next_seq) {
            head[b] = reg->ring[reg->h->next_seq % reg->h->sz.history].prev;
            head[b] = head[b] < reg->h->next_seq ? head[b] : 0;
        }
    }
}

void sse_reg_repair_chains(sse_registry_t *reg)
{
    apr_uint32_t i, k;

    mend_buckets(reg, reg->key_head);
    mend_buckets(reg, reg->name_head);

    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        sse_slot_t *sl = &reg->slot[i];
        if (sl->state == SLOT_FREE) {
            continue;
        }
        sl->name_last = mended_head(reg, sl->name_last, SSE_EV_NAME, sl->id,
                                    sl->name_len);
        for (k = 0; k < sl->nkeys; k++) {
            sse_keynode_t *kn = &sl->keys[k];
            kn->last = mended_head(reg, kn->last, SSE_EV_KEY, kn->key,
                                   strlen(kn->key));
        }
    }
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

/* ---- payloads: a byte ring beside the event ring (under the mutex) -- */

static int payload_fits(const sse_registry_t *reg, apr_size_t plen)
{
    return plen <= reg->h->sz.payload_bytes / 4;
}

/* Copy @a plen bytes into the ring at its head, for entry @a e. The head
 * moves first: should the process die in between, what the copy had
 * begun to overwrite is already seen as overwritten (a payload is read
 * only when the head has not passed it by more than the ring). */
static void payload_put(sse_registry_t *reg, sse_event_t *e,
                        const char *payload, apr_size_t plen)
{
    apr_size_t size = reg->h->sz.payload_bytes;
    apr_uint64_t off = reg->h->pay_head;
    apr_size_t at = (apr_size_t)(off % size), first;

    if (plen == 0) {
        return;
    }
    reg->h->pay_head = off + plen;
    reg->h->stats.payload_written += plen;
    first = size - at < plen ? size - at : plen;
    memcpy(reg->payload + at, payload, first);
    memcpy(reg->payload, payload + first, plen - first);
    e->pay_off = off;
    e->pay_len = (apr_uint32_t)plen;
}

apr_status_t sse_registry_payload(sse_registry_t *reg,
                                  const sse_hold_t *hold,
                                  const sse_event_t *ev, char *buf)
{
    apr_size_t size = reg->h->sz.payload_bytes, at, first;
    apr_status_t rv, rv2 = APR_EOF;
    sse_slot_t *sl;

    if (ev->pay_len == 0 || size == 0) {
        return ev->pay_len ? APR_EOF : APR_SUCCESS;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    if (reg->h->pay_head - ev->pay_off <= size
        && ev->pay_off + ev->pay_len <= reg->h->pay_head) {
        at = (apr_size_t)(ev->pay_off % size);
        first = size - at < ev->pay_len ? size - at : ev->pay_len;
        memcpy(buf, reg->payload + at, first);
        memcpy(buf + first, reg->payload, ev->pay_len - first);
        rv2 = APR_SUCCESS;
    }
    else {
        reg->h->stats.missed++;
        if ((sl = sse_reg_held(reg, hold)) != NULL) {
            sl->missed++;
        }
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : rv2;
}

apr_status_t sse_registry_notify_key(sse_registry_t *reg, const char *key,
                                     apr_int64_t now_ms, int *delivered)
{
    return sse_registry_notify_key_payload(reg, key, NULL, 0, now_ms,
                                           delivered);
}

int sse_reg_append_key(sse_registry_t *reg, const char *key,
                       const char *payload, apr_size_t plen,
                       apr_int64_t now_ms)
{
    apr_uint32_t hash = hash_of(key, strlen(key));
    int count = count_holders(reg, key, hash);
    apr_size_t len = 0;
    sse_targets_t t = {0};
    sse_event_t *e;

    /* with a bus the ring is the log's copy: every entry is kept */
    if (count == 0 && !reg->bus) {
        return 0;
    }
    e = ring_append(reg, SSE_EV_KEY, now_ms);
    e->key_hash = hash;
    apr_cpystrn(e->key, key, sizeof(e->key));
    /* the key was checked: it frames */
    (void)sse_frame_data("notify", key, e->data, &len);
    e->len = (apr_uint32_t)len;
    payload_put(reg, e, payload, plen);
    chain_key_entry(reg, e, &t);
    ring_commit(reg, e);
    sse_reg_wake_targets(reg, &t);
    return count;
}

apr_status_t sse_registry_notify_key_payload(sse_registry_t *reg,
                                             const char *key,
                                             const char *payload,
                                             apr_size_t plen,
                                             apr_int64_t now_ms,
                                             int *delivered)
{
    char data[SSE_DATA_MAX];
    apr_size_t len;
    apr_status_t rv = APR_EINVAL;

    *delivered = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;
    }
    if (!sse_token_valid(key, strlen(key))
        || (rv = sse_frame_data("notify", key, data, &len)) != APR_SUCCESS) {
        return rv;
    }
    if (!payload_fits(reg, plen)) {
        return APR_ENOSPC;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    *delivered = sse_reg_append_key(reg, key, payload, plen, now_ms);
    sse_reg_unlock(reg, &rv);
    return rv;
}

apr_status_t sse_registry_notify_completion(sse_registry_t *reg,
                                            const char *id,
                                            const char *taskid,
                                            apr_int64_t now_ms,
                                            int *delivered)
{
    return sse_registry_notify_completion_payload(reg, id, taskid, NULL, 0,
                                                  now_ms, delivered);
}

int sse_reg_append_name(sse_registry_t *reg, const char *name,
                        apr_size_t name_len, const char *taskid,
                        const char *payload, apr_size_t plen,
                        apr_int64_t now_ms)
{
    /* one entry for the name; each stream frames it with its own id */
    sse_event_t *e = ring_append(reg, SSE_EV_NAME, now_ms);
    sse_targets_t t = {0};
    int count;

    memcpy(e->key, name, name_len);
    e->key[name_len] = '\0';
    e->key_hash = hash_of(name, name_len);
    e->len = (apr_uint32_t)strlen(taskid);
    memcpy(e->data, taskid, e->len + 1);
    payload_put(reg, e, payload, plen);
    count = chain_name_entry(reg, e, &t);
    ring_commit(reg, e);
    sse_reg_wake_targets(reg, &t);
    return count;
}

void sse_reg_append_nop(sse_registry_t *reg)
{
    ring_commit(reg, ring_append(reg, SSE_EV_NOP, 0));
}

apr_status_t sse_registry_notify_completion_payload(sse_registry_t *reg,
                                                    const char *id,
                                                    const char *taskid,
                                                    const char *payload,
                                                    apr_size_t plen,
                                                    apr_int64_t now_ms,
                                                    int *delivered)
{
    apr_status_t rv, rv2 = APR_ENOENT;
    const sse_slot_t *me;

    *delivered = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;
    }
    if (!sse_token_valid(taskid, strlen(taskid))) {
        return APR_EINVAL;
    }
    if (!payload_fits(reg, plen)) {
        return APR_ENOSPC;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    me = sse_reg_find_id(reg, id);
    if (me != NULL) {
        rv2 = APR_SUCCESS;
        *delivered = sse_reg_append_name(reg, me->id, me->name_len, taskid,
                                         payload, plen, now_ms);
    }
    sse_reg_unlock(reg, &rv);
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
