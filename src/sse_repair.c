/* Repair after a process died holding the registry mutex: the indexes
 * are rebuilt from the slots, which are written crash-consistently. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

static void repair_slot(sse_registry_t *reg, apr_uint32_t i)
{
    sse_slot_t *sl = &reg->slot[i];
    sse_child_t *c;
    apr_size_t name_len;
    apr_uint32_t k;

    if (sl->state == SLOT_FREE
        || sse_id_parse(sl->id, &name_len) != APR_SUCCESS
        || sl->nkeys > SSE_MAX_KEYS) {
        sl->state = SLOT_FREE;      /* a half-made slot goes back */
        sl->nkeys = 0;
        sl->next_free = reg->h->free_head;
        reg->h->free_head = i + 1;
        return;
    }
    /* the hashes may not have been written yet: derive them again */
    sl->id_hash = hash_of(sl->id, strlen(sl->id));
    sl->name_len = (apr_uint32_t)name_len;
    sl->name_hash = hash_of(sl->id, name_len);
    for (k = 0; k < sl->nkeys; k++) {
        sl->keys[k].hash = hash_of(sl->keys[k].key, strlen(sl->keys[k].key));
    }
    sl->next_id = reg->id_bucket[bucket_of(reg, sl->id_hash)];
    reg->id_bucket[bucket_of(reg, sl->id_hash)] = i + 1;
    sl->next_name = reg->name_bucket[bucket_of(reg, sl->name_hash)];
    reg->name_bucket[bucket_of(reg, sl->name_hash)] = i + 1;
    for (k = 0; k < sl->nkeys; k++) {
        sl->keys[k].next = reg->key_bucket[bucket_of(reg, sl->keys[k].hash)];
        reg->key_bucket[bucket_of(reg, sl->keys[k].hash)] =
            i * SSE_MAX_KEYS + k + 1;
    }
    reg->h->stats.listeners++;
    c = NULL;                       /* pid 0 matches none */
    if (sl->state == SLOT_CONNECTED) {
        c = sse_reg_child_entry(reg, sl->holder_pid, 0);
    }
    if (c) {
        c->streams++;
        reg->h->stats.connected++;
        sl->holder_child = (apr_uint32_t)(c - reg->child) + 1;
    }
    else {
        sl->state = SLOT_REGISTERED;    /* its holder is not known */
        sl->holder_child = 0;
    }
}

void sse_reg_repair(sse_registry_t *reg)
{
    apr_uint32_t nb = reg->h->nbuckets, i, j;

    /* id, name, key and retired chains; the clients' are rebuilt below */
    memset(reg->id_bucket, 0, 4 * nb * sizeof(apr_uint32_t));
    reg->h->free_head = 0;
    reg->h->stats.listeners = reg->h->stats.connected = 0;
    for (i = 0; i < reg->h->sz.max_children; i++) {
        reg->child[i].streams = 0;
    }
    for (i = reg->h->sz.max_listeners; i-- > 0;) {
        repair_slot(reg, i);
    }
    /* oldest retirement first, so that the newest of an id heads its
     * chain again: sse_reg_is_retired() goes by the first it meets */
    for (j = 0; j < reg->h->sz.max_listeners; j++) {
        sse_retired_t *rt;
        i = (reg->h->retired_next + j) % reg->h->sz.max_listeners;
        rt = &reg->retired[i];
        if (rt->id[0]) {
            rt->next = reg->retired_bucket[bucket_of(reg, rt->hash)];
            reg->retired_bucket[bucket_of(reg, rt->hash)] = i + 1;
        }
    }
    sse_reg_repair_clients(reg);
    sse_reg_repair_chains(reg);
    reg->h->stats.repairs++;
}

