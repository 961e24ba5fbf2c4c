/* Clients and idle listeners: the per-address table that bounds what one
 * client may hold, and the idle lists through the slots that let a full
 * table make room in O(1) (docs/design.md, "Full table"). Everything here
 * runs under the registry mutex. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

/* ---- client addresses ------------------------------------------------ */

apr_status_t sse_client_parse(const char *ip,
                              unsigned char addr[SSE_CLIENT_ADDR_LEN])
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0,
                                               0, 0, 0xff, 0xff};
    char buf[64];
    apr_size_t len = ip ? strcspn(ip, "%") : 0;   /* no zone id */

    memset(addr, 0, SSE_CLIENT_ADDR_LEN);
    if (len == 0 || len >= sizeof(buf)) {
        return APR_EINVAL;
    }
    memcpy(buf, ip, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, addr + 12) == 1) {
        memcpy(addr, v4mapped, sizeof(v4mapped));
        return APR_SUCCESS;
    }
    if (inet_pton(AF_INET6, buf, addr) != 1) {
        return APR_EINVAL;
    }
    if (memcmp(addr, v4mapped, sizeof(v4mapped)) != 0) {
        memset(addr + 8, 0, SSE_CLIENT_ADDR_LEN - 8);     /* its /64 */
    }
    return APR_SUCCESS;
}

/* ---- the client table ------------------------------------------------ */

static apr_uint32_t client_hash(const unsigned char *addr)
{
    return hash_of((const char *)addr, SSE_CLIENT_ADDR_LEN);
}

apr_uint32_t sse_reg_client_find(sse_registry_t *reg,
                                 const unsigned char *addr)
{
    apr_uint32_t hash = client_hash(addr);
    apr_uint32_t c1 = reg->client_bucket[bucket_of(reg, hash)];

    for (; c1; c1 = reg->client[c1 - 1].next) {
        const sse_client_rec_t *ce = &reg->client[c1 - 1];
        if (ce->hash == hash
            && memcmp(ce->addr, addr, SSE_CLIENT_ADDR_LEN) == 0) {
            return c1;
        }
    }
    return 0;
}

apr_uint32_t sse_reg_client_claim(sse_registry_t *reg,
                                  const unsigned char *addr)
{
    apr_uint32_t c1 = sse_reg_client_find(reg, addr);
    sse_client_rec_t *ce;

    if (c1 || reg->h->client_free == 0) {
        return c1;
    }
    c1 = reg->h->client_free;
    ce = &reg->client[c1 - 1];
    reg->h->client_free = ce->next_free;
    ce->next_free = 0;
    memcpy(ce->addr, addr, SSE_CLIENT_ADDR_LEN);
    ce->hash = client_hash(addr);
    ce->listeners = ce->streams = 0;
    ce->idle_head = ce->idle_tail = 0;
    ce->next = reg->client_bucket[bucket_of(reg, ce->hash)];
    reg->client_bucket[bucket_of(reg, ce->hash)] = c1;
    ce->used = 1;
    return c1;
}

void sse_reg_client_drop(sse_registry_t *reg, apr_uint32_t c1)
{
    sse_client_rec_t *ce;
    apr_uint32_t *link;

    if (c1 == 0) {
        return;
    }
    ce = &reg->client[c1 - 1];
    if (ce->listeners || ce->streams || !ce->used) {
        return;
    }
    for (link = &reg->client_bucket[bucket_of(reg, ce->hash)]; *link;
         link = &reg->client[*link - 1].next) {
        if (*link == c1) {
            *link = ce->next;
            break;
        }
    }
    ce->used = 0;
    ce->next = 0;
    memset(ce->addr, 0, sizeof(ce->addr));
    ce->next_free = reg->h->client_free;
    reg->h->client_free = c1;
}

apr_status_t sse_registry_client_counts(
    sse_registry_t *reg, const unsigned char addr[SSE_CLIENT_ADDR_LEN],
    apr_uint32_t *listeners, apr_uint32_t *streams)
{
    apr_status_t rv;
    apr_uint32_t c1;

    *listeners = *streams = 0;
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    c1 = sse_reg_client_find(reg, addr);
    if (c1) {
        *listeners = reg->client[c1 - 1].listeners;
        *streams = reg->client[c1 - 1].streams;
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : (c1 ? APR_SUCCESS : APR_ENOENT);
}

/* ---- idle lists: doubly linked through the slots --------------------- */

/* A list: where its head and tail are, and which fields of a slot link
 * it. */
typedef struct {
    apr_uint32_t *head, *tail;
    apr_size_t prev_off, next_off;
} sse_dlist_t;

static apr_uint32_t *link_of(sse_registry_t *reg, apr_uint32_t i1,
                             apr_size_t off)
{
    return (apr_uint32_t *)((char *)&reg->slot[i1 - 1] + off);
}

static void dl_append(sse_registry_t *reg, const sse_dlist_t *dl,
                      apr_uint32_t i1)
{
    *link_of(reg, i1, dl->prev_off) = *dl->tail;
    *link_of(reg, i1, dl->next_off) = 0;
    if (*dl->tail) {
        *link_of(reg, *dl->tail, dl->next_off) = i1;
    }
    else {
        *dl->head = i1;
    }
    *dl->tail = i1;
}

static void dl_remove(sse_registry_t *reg, const sse_dlist_t *dl,
                      apr_uint32_t i1)
{
    apr_uint32_t p = *link_of(reg, i1, dl->prev_off);
    apr_uint32_t n = *link_of(reg, i1, dl->next_off);

    if (p) {
        *link_of(reg, p, dl->next_off) = n;
    }
    else {
        *dl->head = n;
    }
    if (n) {
        *link_of(reg, n, dl->prev_off) = p;
    }
    else {
        *dl->tail = p;
    }
    *link_of(reg, i1, dl->prev_off) = *link_of(reg, i1, dl->next_off) = 0;
}

static sse_dlist_t global_list(sse_registry_t *reg, apr_uint32_t which)
{
    sse_dlist_t dl;

    dl.head = &reg->h->idle_head[which];
    dl.tail = &reg->h->idle_tail[which];
    dl.prev_off = offsetof(sse_slot_t, idle_prev);
    dl.next_off = offsetof(sse_slot_t, idle_next);
    return dl;
}

static sse_dlist_t owner_list(sse_registry_t *reg, apr_uint32_t c1)
{
    sse_dlist_t dl;

    dl.head = &reg->client[c1 - 1].idle_head;
    dl.tail = &reg->client[c1 - 1].idle_tail;
    dl.prev_off = offsetof(sse_slot_t, owner_prev);
    dl.next_off = offsetof(sse_slot_t, owner_next);
    return dl;
}

void sse_reg_idle_join(sse_registry_t *reg, sse_slot_t *sl)
{
    apr_uint32_t i1 = slot_index(reg, sl) + 1;
    apr_uint32_t which = sl->delivered ? IDLE_USED : IDLE_FRESH;
    sse_dlist_t dl;

    if (sl->idle || sl->state != SLOT_REGISTERED) {
        return;
    }
    dl = global_list(reg, which);
    dl_append(reg, &dl, i1);
    if (sl->owner) {
        dl = owner_list(reg, sl->owner);
        dl_append(reg, &dl, i1);
    }
    sl->idle = which + 1;
}

void sse_reg_idle_leave(sse_registry_t *reg, sse_slot_t *sl)
{
    apr_uint32_t i1 = slot_index(reg, sl) + 1;
    sse_dlist_t dl;

    if (sl->idle == 0) {
        return;
    }
    dl = global_list(reg, sl->idle - 1);
    dl_remove(reg, &dl, i1);
    if (sl->owner) {
        dl = owner_list(reg, sl->owner);
        dl_remove(reg, &dl, i1);
    }
    sl->idle = 0;
}

sse_slot_t *sse_reg_idle_victim(sse_registry_t *reg, apr_uint32_t c1)
{
    apr_uint32_t i1;

    if (c1) {
        i1 = reg->client[c1 - 1].idle_head;
    }
    else {
        i1 = reg->h->idle_head[IDLE_FRESH] ? reg->h->idle_head[IDLE_FRESH]
                                           : reg->h->idle_head[IDLE_USED];
    }
    return i1 ? &reg->slot[i1 - 1] : NULL;
}

/* ---- repair ---------------------------------------------------------- */

static __thread const sse_slot_t *sort_slots;  /* for by_activity */

static int by_activity(const void *a, const void *b)
{
    const sse_slot_t *x = &sort_slots[*(const apr_uint32_t *)a];
    const sse_slot_t *y = &sort_slots[*(const apr_uint32_t *)b];

    if (x->activity_ms != y->activity_ms) {
        return x->activity_ms < y->activity_ms ? -1 : 1;
    }
    return (x < y) ? -1 : (x > y);
}

/* Every listener without a stream back on its idle lists, oldest
 * activity first (in slot order should there be no memory to sort). */
static void rebuild_idle(sse_registry_t *reg)
{
    apr_uint32_t max = reg->h->sz.max_listeners, i, n = 0;
    apr_uint32_t *order = malloc((apr_size_t)max * sizeof(*order));

    for (i = 0; i < IDLE_LISTS; i++) {
        reg->h->idle_head[i] = reg->h->idle_tail[i] = 0;
    }
    for (i = 0; i < max; i++) {
        if (reg->slot[i].state == SLOT_REGISTERED && order) {
            order[n++] = i;
        }
        else if (reg->slot[i].state == SLOT_REGISTERED) {
            sse_reg_idle_join(reg, &reg->slot[i]);
        }
    }
    if (order) {
        sort_slots = reg->slot;     /* under the mutex: one sort at once */
        qsort(order, n, sizeof(*order), by_activity);
        for (i = 0; i < n; i++) {
            sse_reg_idle_join(reg, &reg->slot[order[i]]);
        }
        free(order);
    }
}

/* Count what a slot references; forget references out of range. */
static void count_slot(sse_registry_t *reg, sse_slot_t *sl)
{
    apr_size_t n = SSE_CLIENTS(&reg->h->sz);

    sl->idle = sl->idle_prev = sl->idle_next = 0;
    sl->owner_prev = sl->owner_next = 0;
    if (sl->state == SLOT_FREE) {
        sl->owner = sl->streamer = 0;
        return;
    }
    if (sl->owner > n) {
        sl->owner = 0;
    }
    if (sl->streamer > n || sl->state != SLOT_CONNECTED) {
        sl->streamer = 0;
    }
    if (sl->owner) {
        reg->client[sl->owner - 1].listeners++;
    }
    if (sl->streamer) {
        reg->client[sl->streamer - 1].streams++;
    }
}

void sse_reg_repair_clients(sse_registry_t *reg)
{
    apr_uint32_t n = (apr_uint32_t)SSE_CLIENTS(&reg->h->sz), i;

    memset(reg->client_bucket, 0, reg->h->nbuckets * sizeof(apr_uint32_t));
    for (i = 0; i < n; i++) {
        sse_client_rec_t *ce = &reg->client[i];
        ce->listeners = ce->streams = 0;
        ce->idle_head = ce->idle_tail = 0;
    }
    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        count_slot(reg, &reg->slot[i]);
    }
    reg->h->client_free = 0;
    for (i = n; i-- > 0;) {
        sse_client_rec_t *ce = &reg->client[i];
        ce->used = ce->listeners || ce->streams;
        ce->next = ce->next_free = 0;
        if (ce->used) {
            ce->hash = client_hash(ce->addr);
            ce->next = reg->client_bucket[bucket_of(reg, ce->hash)];
            reg->client_bucket[bucket_of(reg, ce->hash)] = i + 1;
        }
        else {
            memset(ce->addr, 0, sizeof(ce->addr));
            ce->next_free = reg->h->client_free;
            reg->h->client_free = i + 1;
        }
    }
    rebuild_idle(reg);
}
