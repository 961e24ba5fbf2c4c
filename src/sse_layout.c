/* The registry in shared memory: its size, its layout fingerprint, and
 * making or attaching one, and mapping its hot pages into a process
 * (the drawing is in sse_registry.h). */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

static apr_uint32_t buckets_for(apr_uint32_t n)
{
    apr_uint32_t b = 64;
    while (b < n && b < (1u << 30)) {
        b <<= 1;
    }
    return b;
}

apr_size_t sse_registry_size(const sse_registry_sizes_t *sz)
{
    apr_size_t nb = buckets_for(sz->max_listeners);
    return ALIGN8(sizeof(sse_reg_header_t))
           + ALIGN8(5 * nb * sizeof(apr_uint32_t))
           + 2 * nb * sizeof(apr_uint64_t)
           + ALIGN8(sz->max_listeners * sizeof(sse_retired_t))
           + ALIGN8(sz->max_children * sizeof(sse_child_t))
           + ALIGN8(SSE_CLIENTS(sz) * sizeof(sse_client_rec_t))
           + (apr_size_t)sz->max_listeners * sizeof(sse_slot_t)
           + (apr_size_t)sz->history * sizeof(sse_event_t)
           + ALIGN8(sz->payload_bytes);
}

/* FNV-1a, 64 bits, over the values that decide where things are. */
static apr_uint64_t fnv(apr_uint64_t h, apr_uint64_t v)
{
    int i;

    for (i = 0; i < 8; i++) {
        h ^= (v >> (8 * i)) & 0xff;
        h *= APR_UINT64_C(0x100000001b3);
    }
    return h;
}

apr_uint64_t sse_registry_fingerprint(const sse_registry_sizes_t *sz)
{
    const apr_uint64_t v[] = {
        SSE_REG_MAGIC, SSE_REG_FORMAT,
        SSE_MAX_KEYS, SSE_ID_MAX, SSE_TOKEN_MAX, SSE_DATA_MAX,
        SSE_SECRET_LEN,
        sizeof(sse_registry_stamp_t), sizeof(sse_reg_header_t),
        offsetof(sse_reg_header_t, sz), offsetof(sse_reg_header_t, dirty),
        offsetof(sse_reg_header_t, next_seq),
        offsetof(sse_reg_header_t, serial),
        offsetof(sse_reg_header_t, secret), offsetof(sse_reg_header_t, stats),
        sizeof(sse_stats_t),
        sizeof(sse_keynode_t), offsetof(sse_keynode_t, next),
        offsetof(sse_keynode_t, since), offsetof(sse_keynode_t, last),
        sizeof(sse_slot_t), offsetof(sse_slot_t, gen),
        offsetof(sse_slot_t, holder_gen), offsetof(sse_slot_t, next_free),
        offsetof(sse_slot_t, created_seq), offsetof(sse_slot_t, missed_to),
        offsetof(sse_slot_t, name_last), offsetof(sse_slot_t, serial),
        offsetof(sse_slot_t, delivered), offsetof(sse_slot_t, owner),
        offsetof(sse_slot_t, streamer), offsetof(sse_slot_t, idle),
        offsetof(sse_slot_t, idle_next), offsetof(sse_slot_t, owner_next),
        offsetof(sse_slot_t, id), offsetof(sse_slot_t, keys),
        offsetof(sse_reg_header_t, idle_head),
        offsetof(sse_reg_header_t, idle_tail),
        offsetof(sse_reg_header_t, client_free),
        sizeof(sse_client_rec_t), offsetof(sse_client_rec_t, hash),
        offsetof(sse_client_rec_t, next),
        offsetof(sse_client_rec_t, next_free),
        offsetof(sse_client_rec_t, listeners),
        offsetof(sse_client_rec_t, streams),
        offsetof(sse_client_rec_t, idle_head), IDLE_LISTS,
        offsetof(sse_stats_t, reclaimed),
        sizeof(sse_child_t), offsetof(sse_child_t, streams),
        offsetof(sse_child_t, wake), offsetof(sse_slot_t, holder_child),
        sizeof(sse_retired_t), offsetof(sse_retired_t, until_ms),
        sizeof(sse_event_t), offsetof(sse_event_t, prev),
        offsetof(sse_event_t, kind),
        offsetof(sse_event_t, len), offsetof(sse_event_t, key),
        offsetof(sse_event_t, data), offsetof(sse_event_t, pay_len),
        offsetof(sse_event_t, pay_off),
        offsetof(sse_reg_header_t, pay_head),
        offsetof(sse_stats_t, payload_written),
        offsetof(sse_slot_t, bus_serial), offsetof(sse_reg_header_t, bus),
        offsetof(sse_reg_header_t, bus_next), sizeof(sse_bus_stats_t),
        offsetof(sse_reg_header_t, own_lock),
        offsetof(sse_reg_header_t, own_mutex), SSE_OWN_MUTEX_WORDS,
        /* the chains are built with it: another one strands every entry */
        hash_of("sse-mgr layout", 14),
        sz->max_listeners, sz->history, sz->max_children, sz->payload_bytes,
        buckets_for(sz->max_listeners), sse_registry_size(sz),
    };
    apr_uint64_t h = APR_UINT64_C(0xcbf29ce484222325);
    apr_size_t i;

    for (i = 0; i < sizeof(v) / sizeof(*v); i++) {
        h = fnv(h, v[i]);
    }
    return h;
}

apr_status_t sse_registry_validate(const void *mem, apr_size_t avail,
                                   const sse_registry_sizes_t *sz,
                                   sse_registry_stamp_t *stamp)
{
    memset(stamp, 0, sizeof(*stamp));
    if (avail < sizeof(*stamp)) {
        return APR_EMISMATCH;
    }
    memcpy(stamp, mem, sizeof(*stamp));
    if (stamp->magic != SSE_REG_MAGIC) {
        return APR_EINVAL;
    }
    if (stamp->fingerprint != sse_registry_fingerprint(sz)
        || stamp->bytes != sse_registry_size(sz) || stamp->bytes > avail) {
        return APR_EMISMATCH;
    }
    return APR_SUCCESS;
}

static void layout(sse_registry_t *reg, void *mem,
                   const sse_registry_sizes_t *sz)
{
    char *p = mem;
    apr_size_t nb = buckets_for(sz->max_listeners);

    reg->h = (sse_reg_header_t *)p;
    p += ALIGN8(sizeof(sse_reg_header_t));
    reg->id_bucket = (apr_uint32_t *)p;
    reg->name_bucket = reg->id_bucket + nb;
    reg->key_bucket = reg->name_bucket + nb;
    reg->retired_bucket = reg->key_bucket + nb;
    reg->client_bucket = reg->retired_bucket + nb;
    p += ALIGN8(5 * nb * sizeof(apr_uint32_t));
    reg->key_head = (apr_uint64_t *)p;
    reg->name_head = reg->key_head + nb;
    p += 2 * nb * sizeof(apr_uint64_t);
    reg->retired = (sse_retired_t *)p;
    p += ALIGN8(sz->max_listeners * sizeof(sse_retired_t));
    reg->child = (sse_child_t *)p;
    p += ALIGN8(sz->max_children * sizeof(sse_child_t));
    reg->client = (sse_client_rec_t *)p;
    p += ALIGN8(SSE_CLIENTS(sz) * sizeof(sse_client_rec_t));
    reg->slot = (sse_slot_t *)p;
    p += (apr_size_t)sz->max_listeners * sizeof(sse_slot_t);
    reg->ring = (sse_event_t *)p;
    p += (apr_size_t)sz->history * sizeof(sse_event_t);
    reg->payload = (unsigned char *)p;
}

apr_status_t sse_registry_create(apr_pool_t *p, void *mem,
                                 const sse_registry_sizes_t *sz,
                                 const unsigned char *secret,
                                 apr_uint64_t first_seq,
                                 apr_global_mutex_t *lock,
                                 sse_registry_t **out)
{
    sse_registry_t *reg = apr_pcalloc(p, sizeof(*reg));
    apr_uint32_t i;

    if (sz->max_listeners == 0 || sz->history == 0 || sz->max_children == 0) {
        return APR_EINVAL;
    }
    memset(mem, 0, sse_registry_size(sz));
    layout(reg, mem, sz);
    reg->lock = lock;
    reg->h->sz = *sz;
    reg->h->nbuckets = buckets_for(sz->max_listeners);
    reg->h->first_seq = first_seq ? first_seq : 1;
    reg->h->next_seq = reg->h->first_seq;
    memcpy(reg->h->secret, secret, SSE_SECRET_LEN);
    for (i = 0; i < sz->max_listeners; i++) {
        reg->slot[i].next_free = (i + 1 < sz->max_listeners) ? i + 2 : 0;
    }
    reg->h->free_head = 1;
    for (i = 0; i < SSE_CLIENTS(sz); i++) {
        reg->client[i].next_free = (i + 1 < SSE_CLIENTS(sz)) ? i + 2 : 0;
    }
    reg->h->client_free = 1;
    reg->h->stamp.sz = *sz;
    reg->h->stamp.bytes = sse_registry_size(sz);
    reg->h->stamp.fingerprint = sse_registry_fingerprint(sz);
    reg->h->stamp.magic = SSE_REG_MAGIC;
    *out = reg;
    return APR_SUCCESS;
}

apr_status_t sse_registry_attach(apr_pool_t *p, void *mem,
                                 const sse_registry_sizes_t *sz,
                                 apr_global_mutex_t *lock,
                                 sse_registry_t **out)
{
    sse_registry_stamp_t stamp;
    sse_registry_t *reg;

    /* the stamp first: layout() trusts the sizes, and the header's fields
     * past the stamp may sit elsewhere in the build that wrote them */
    if (sse_registry_validate(mem, sse_registry_size(sz), sz, &stamp)
        != APR_SUCCESS
        || memcmp(&((const sse_reg_header_t *)mem)->sz, sz, sizeof(*sz))
           != 0) {
        return APR_EINVAL;
    }
    reg = apr_pcalloc(p, sizeof(*reg));
    layout(reg, mem, sz);
    reg->lock = lock;
    /* every process of a segment takes the same mutex: the segment says
     * which (sse_registry_own_lock) */
    reg->own = reg->h->own_lock ? (void *)reg->h->own_mutex : NULL;
    *out = reg;
    return APR_SUCCESS;
}

const sse_registry_sizes_t *sse_registry_sizes(const sse_registry_t *reg)
{
    return &reg->h->sz;
}

void sse_registry_set_nonblocking(sse_registry_t *reg)
{
    reg->nonblocking = 1;
}

void sse_registry_set_stream_bound(sse_registry_t *reg, apr_uint32_t max)
{
    reg->max_streams = max;
}

/* Populate the pages of [from, to) as writable. Without
 * MADV_POPULATE_WRITE, a read of a byte of each page does it: a read
 * fault maps a page of a shared writable mapping writable (shared memory
 * needs no write notification), and its neighbours with it (fault-around),
 * and a read cannot disturb what other processes write there. */
static apr_status_t populate(const void *from, const void *to)
{
    apr_uintptr_t pg = (apr_uintptr_t)sysconf(_SC_PAGESIZE);
    apr_uintptr_t a = (apr_uintptr_t)from & ~(pg - 1);
    apr_uintptr_t b = (apr_uintptr_t)to;
    apr_status_t rv = APR_ENOTIMPL;

    if (b <= a) {
        return APR_SUCCESS;
    }
#ifdef MADV_POPULATE_WRITE
    if (madvise((void *)a, b - a, MADV_POPULATE_WRITE) == 0) {
        return APR_SUCCESS;
    }
    rv = APR_FROM_OS_ERROR(errno);
#endif
    for (a = (apr_uintptr_t)from; a < b; a = (a & ~(pg - 1)) + pg) {
        (void)*(const volatile unsigned char *)a;
    }
    return rv;
}

apr_status_t sse_registry_prefault(const sse_registry_t *reg)
{
    const sse_registry_sizes_t *sz = &reg->h->sz;
    apr_status_t rv, rv2, rv3;

    rv = populate(reg->h, reg->retired);
    rv2 = populate(reg->child, reg->child + sz->max_children);
    rv3 = populate(reg->ring, reg->payload + sz->payload_bytes);
    return rv ? rv : rv2 ? rv2 : rv3;
}
