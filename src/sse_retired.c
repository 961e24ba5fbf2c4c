/* Retired ids: a disconnected id answers 204 for SSEDormantTimeout, from
 * a bounded ring of retirements in the segment (oldest out first). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

void sse_reg_retired_unlink(sse_registry_t *reg, apr_uint32_t r1)
{
    sse_retired_t *rt = &reg->retired[r1 - 1];
    apr_uint32_t *link = &reg->retired_bucket[bucket_of(reg, rt->hash)];

    while (*link) {
        if (*link == r1) {
            *link = rt->next;
            break;
        }
        link = &reg->retired[*link - 1].next;
    }
    rt->next = 0;
    rt->id[0] = '\0';
}

void sse_reg_retire(sse_registry_t *reg, const sse_slot_t *sl,
                   apr_int64_t until_ms)
{
    apr_uint32_t r1 = reg->h->retired_next + 1;
    sse_retired_t *rt = &reg->retired[r1 - 1];

    reg->h->retired_next = (reg->h->retired_next + 1)
                           % reg->h->sz.max_listeners;
    if (rt->id[0]) {
        sse_reg_retired_unlink(reg, r1);    /* the oldest goes */
    }
    apr_cpystrn(rt->id, sl->id, sizeof(rt->id));
    rt->hash = sl->id_hash;
    rt->until_ms = until_ms;
    rt->next = reg->retired_bucket[bucket_of(reg, rt->hash)];
    reg->retired_bucket[bucket_of(reg, rt->hash)] = r1;
}

int sse_reg_is_retired(sse_registry_t *reg, const char *id, apr_int64_t now)
{
    apr_uint32_t hash = hash_of(id, strlen(id));
    apr_uint32_t r1 = reg->retired_bucket[bucket_of(reg, hash)];

    for (; r1; r1 = reg->retired[r1 - 1].next) {
        const sse_retired_t *rt = &reg->retired[r1 - 1];
        if (rt->hash == hash && strcmp(rt->id, id) == 0) {
            return rt->until_ms > now;
        }
    }
    return 0;
}

