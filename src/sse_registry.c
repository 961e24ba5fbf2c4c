/* The registry in shared memory: ids, slots, streams, keys, removal.
 * Its layout is sse_layout.c, its mutex sse_lock.c, crash repair
 * sse_repair.c, retired ids sse_retired.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

void sse_registry_set_secret(sse_registry_t *reg,
                             const unsigned char *secret)
{
    memcpy(reg->h->secret, secret, SSE_SECRET_LEN);
}

sse_slot_t *sse_reg_find_id(sse_registry_t *reg, const char *id)
{
    apr_uint32_t hash = hash_of(id, strlen(id));
    apr_uint32_t i = reg->id_bucket[bucket_of(reg, hash)];

    while (i) {
        sse_slot_t *sl = &reg->slot[i - 1];
        if (sl->id_hash == hash && strcmp(sl->id, id) == 0) {
            return sl;
        }
        i = sl->next_id;
    }
    return NULL;
}

/* Unlink slot index @a idx (+1 form) from a chain whose links live in a
 * field of the slot at byte offset @a off. */
static void chain_unlink(sse_registry_t *reg, apr_uint32_t *head,
                         apr_uint32_t idx1, apr_size_t off)
{
    apr_uint32_t *link = head;

    while (*link) {
        apr_uint32_t *next = (apr_uint32_t *)((char *)&reg->slot[*link - 1]
                                              + off);
        if (*link == idx1) {
            *link = *next;
            *next = 0;
            return;
        }
        link = next;
    }
}

static void key_unlink(sse_registry_t *reg, apr_uint32_t n1)
{
    sse_keynode_t *kn = node_at(reg, n1);
    apr_uint32_t *link = &reg->key_bucket[bucket_of(reg, kn->hash)];

    while (*link) {
        if (*link == n1) {
            *link = kn->next;
            kn->next = 0;
            return;
        }
        link = &node_at(reg, *link)->next;
    }
}

/* ---- ids and slots --------------------------------------------------- */

apr_status_t sse_registry_make_id(sse_registry_t *reg, const char *name,
                                  char out[SSE_ID_MAX + 1])
{
    return sse_id_make(reg->h->secret, name, out);
}

apr_status_t sse_registry_check_id(sse_registry_t *reg, const char *id)
{
    return sse_id_verify(reg->h->secret, id);
}

apr_status_t sse_registry_lookup(sse_registry_t *reg, const char *id)
{
    apr_status_t rv;
    int found = 0;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    found = sse_reg_find_id(reg, id) != NULL;
    sse_reg_unlock(reg, &rv);
    return rv ? rv : (found ? APR_SUCCESS : APR_ENOENT);
}

/* A free slot for @a id, owned by client entry @a owner (or 0). */
static sse_slot_t *slot_alloc(sse_registry_t *reg, const char *id,
                              apr_uint32_t owner, apr_int64_t now_ms)
{
    apr_uint32_t i1 = reg->h->free_head;
    apr_size_t name_len;
    sse_slot_t *sl;

    if (i1 == 0 || sse_id_parse(id, &name_len) != APR_SUCCESS) {
        return NULL;
    }
    sl = &reg->slot[i1 - 1];
    reg->h->free_head = sl->next_free;
    sl->next_free = 0;
    sl->gen++;
    sl->state = SLOT_REGISTERED;
    sl->holder_pid = 0;
    sl->holder_child = 0;
    sl->nkeys = 0;
    apr_cpystrn(sl->id, id, sizeof(sl->id));
    sl->name_len = (apr_uint32_t)name_len;
    sl->id_hash = hash_of(id, strlen(id));
    sl->name_hash = hash_of(id, name_len);
    sl->registered_ms = sl->activity_ms = now_ms;
    sl->created_seq = sl->last_seq = reg->h->next_seq - 1;
    sl->missed = sl->missed_from = sl->missed_to = 0;
    sl->name_last = 0;          /* no completion for it yet */
    sl->serial = ++reg->h->serial;
    sl->delivered = 0;
    sl->streamer = 0;
    sl->idle = 0;               /* a stream takes it at once */
    sl->owner = owner;
    if (owner) {
        reg->client[owner - 1].listeners++;
    }
    sl->next_id = reg->id_bucket[bucket_of(reg, sl->id_hash)];
    reg->id_bucket[bucket_of(reg, sl->id_hash)] = i1;
    sl->next_name = reg->name_bucket[bucket_of(reg, sl->name_hash)];
    reg->name_bucket[bucket_of(reg, sl->name_hash)] = i1;
    reg->h->stats.listeners++;
    return sl;
}

sse_child_t *sse_reg_child_entry(sse_registry_t *reg, apr_uint32_t pid,
                                 int claim)
{
    sse_child_t *free_entry = NULL;
    apr_uint32_t i;

    for (i = 0; i < reg->h->sz.max_children; i++) {
        if (pid && reg->child[i].pid == pid) {
            return &reg->child[i];
        }
        if (free_entry == NULL && reg->child[i].streams == 0) {
            free_entry = &reg->child[i];
        }
    }
    if (claim && free_entry) {
        free_entry->pid = pid;
        free_entry->streams = 0;
        /* a flag the entry's last child left raised would keep every
         * publisher from waking this one */
        __atomic_store_n(&free_entry->wake, 0, __ATOMIC_SEQ_CST);
        return free_entry;
    }
    return NULL;
}

/* The slot's stream is gone (ended, taken over or its child died): its
 * process and its client hold one stream less. */
static void slot_unhold(sse_registry_t *reg, sse_slot_t *sl)
{
    sse_child_t *c;
    apr_uint32_t s1 = sl->streamer;

    if (sl->state != SLOT_CONNECTED) {
        return;
    }
    c = sse_reg_child_entry(reg, sl->holder_pid, 0);
    if (c && c->streams) {
        c->streams--;
    }
    if (s1 && reg->client[s1 - 1].streams) {
        reg->client[s1 - 1].streams--;
    }
    sl->streamer = 0;
    sse_reg_client_drop(reg, s1);
    sl->state = SLOT_REGISTERED;
    sl->holder_pid = 0;
    sl->holder_child = 0;
    reg->h->stats.connected--;
}

void sse_reg_slot_rest(sse_registry_t *reg, sse_slot_t *sl)
{
    slot_unhold(reg, sl);
    sse_reg_idle_join(reg, sl);
}

void sse_reg_slot_free(sse_registry_t *reg, sse_slot_t *sl, int end_stream)
{
    apr_uint32_t i1 = slot_index(reg, sl) + 1;
    apr_uint32_t k, o1 = sl->owner;

    if (sl->state == SLOT_CONNECTED) {
        if (end_stream) {
            sse_reg_append_end(reg, i1 - 1, sl->holder_gen);
        }
        slot_unhold(reg, sl);
    }
    else {
        sse_reg_idle_leave(reg, sl);
    }
    if (o1 && reg->client[o1 - 1].listeners) {
        reg->client[o1 - 1].listeners--;
    }
    sl->owner = 0;
    sse_reg_client_drop(reg, o1);
    chain_unlink(reg, &reg->id_bucket[bucket_of(reg, sl->id_hash)], i1,
                 offsetof(sse_slot_t, next_id));
    chain_unlink(reg, &reg->name_bucket[bucket_of(reg, sl->name_hash)], i1,
                 offsetof(sse_slot_t, next_name));
    for (k = 0; k < sl->nkeys; k++) {
        key_unlink(reg, (i1 - 1) * SSE_MAX_KEYS + k + 1);
    }
    sl->nkeys = 0;
    sl->state = SLOT_FREE;
    sl->id[0] = '\0';
    sl->next_free = reg->h->free_head;
    reg->h->free_head = i1;
    reg->h->stats.listeners--;
}

/* ---- streams --------------------------------------------------------- */

/* What a new stream is told it lost: events of this listener overwritten
 * before delivery, and, when the client resumes from before the ring's
 * oldest entry, the events it was sent but says it never got. */
static void resume_gap(sse_registry_t *reg, sse_slot_t *sl,
                       sse_hold_t *hold)
{
    apr_uint64_t oldest = sse_reg_oldest_seq(reg);
    apr_uint64_t from = 0, to = 0;

    if (sl->missed_to > hold->cursor) {
        from = sl->missed_from;
        to = sl->missed_to;
    }
    if (hold->cursor + 1 < oldest && sl->last_seq > hold->cursor) {
        apr_uint64_t gap_to = sl->last_seq < oldest ? sl->last_seq
                                                    : oldest - 1;
        from = (from && from < hold->cursor + 1) ? from : hold->cursor + 1;
        to = to > gap_to ? to : gap_to;
    }
    sl->missed_from = sl->missed_to = 0;
    hold->missed_from = from;
    hold->missed_to = to;
}

/* A client that resumes from before the listener was made had an earlier
 * listener of this id (reclaimed, or removed as dormant): what was
 * published between its last event and this one's creation is lost to
 * it, and said so. It resumes from the creation on. */
static void recreated_gap(const sse_slot_t *sl, const apr_uint64_t *last_id,
                          sse_hold_t *hold)
{
    if (last_id == NULL || *last_id >= sl->created_seq) {
        return;
    }
    if (hold->missed_to == 0 || hold->missed_from > *last_id + 1) {
        hold->missed_from = *last_id + 1;
    }
    if (hold->missed_to < sl->created_seq) {
        hold->missed_to = sl->created_seq;
    }
    hold->cursor = sl->created_seq;
}

/* Make the caller's stream the slot's one stream; an earlier one is told
 * to end. The child entry was checked free (child_room). */
apr_status_t sse_reg_hold_slot(sse_registry_t *reg, sse_slot_t *sl,
                              apr_uint32_t pid, const sse_client_t *client,
                              const apr_uint64_t *last_id, sse_hold_t *hold)
{
    sse_child_t *c = sse_reg_child_entry(reg, pid, 1);
    apr_uint64_t head = reg->h->next_seq;

    if (c == NULL) {
        return APR_EAGAIN;
    }
    hold->prev_pid = 0;
    if (sl->state == SLOT_CONNECTED) {
        /* with a bus only the log writes the ring: the CONNECT entry
         * ended the older stream, or (a race) it sees its slot gone at
         * its next read */
        hold->prev_pid = sl->holder_pid;
        if (!reg->bus) {
            sse_reg_append_end(reg, slot_index(reg, sl), sl->holder_gen);
        }
        slot_unhold(reg, sl);
    }
    sse_reg_idle_leave(reg, sl);
    /* after the unhold: the table then has room for any client */
    sl->streamer = client ? sse_reg_client_claim(reg, client->addr) : 0;
    if (sl->streamer) {
        reg->client[sl->streamer - 1].streams++;
    }
    c->streams++;
    sl->state = SLOT_CONNECTED;
    sl->holder_pid = pid;
    sl->holder_child = (apr_uint32_t)(c - reg->child) + 1;
    sl->holder_gen++;
    reg->h->stats.connected++;
    hold->slot = slot_index(reg, sl);
    hold->slot_gen = sl->gen;
    hold->holder_gen = sl->holder_gen;
    hold->start = head;
    hold->cursor = last_id ? *last_id : sl->last_seq;
    if (hold->cursor >= head) {
        hold->cursor = head - 1;
    }
    resume_gap(reg, sl, hold);
    recreated_gap(sl, last_id, hold);
    sl->taken_seq = hold->cursor;
    return APR_SUCCESS;
}

/* Would process @a pid find a child entry (its own or a free one)? */
static int child_room(sse_registry_t *reg, apr_uint32_t pid)
{
    apr_uint32_t i;

    for (i = 0; i < reg->h->sz.max_children; i++) {
        if (reg->child[i].pid == pid || reg->child[i].streams == 0) {
            return 1;
        }
    }
    return 0;
}

/* May @a client open a stream on @a sl (NULL: a new listener)? Taking
 * over its own stream of this id is not one more. */
static apr_status_t client_may_stream(sse_registry_t *reg,
                                      const sse_client_t *client,
                                      const sse_slot_t *sl)
{
    apr_uint32_t c1;

    if (client == NULL || client->max_streams == 0) {
        return APR_SUCCESS;
    }
    c1 = sse_reg_client_find(reg, client->addr);
    if (c1 == 0 || (sl && sl->state == SLOT_CONNECTED && sl->streamer == c1)
        || reg->client[c1 - 1].streams < client->max_streams) {
        return APR_SUCCESS;
    }
    return SSE_ECLIENT_STREAMS;
}

static void reclaim(sse_registry_t *reg, sse_slot_t *victim)
{
    reg->h->stats.reclaimed++;
    sse_reg_slot_free(reg, victim, 0);      /* it has no stream to end */
}

/* Room for one more listener of @a client: past its own bound, its
 * oldest listener without a stream goes; with no slot free, the oldest
 * that never delivered, else the one dormant longest. */
static apr_status_t make_room(sse_registry_t *reg, const sse_client_t *client)
{
    apr_uint32_t c1 = 0;
    sse_slot_t *victim;

    if (client && client->max_listeners) {
        c1 = sse_reg_client_find(reg, client->addr);
    }
    /* a loop only when the bound was lowered by a restart */
    while (c1 && reg->client[c1 - 1].listeners >= client->max_listeners) {
        victim = sse_reg_idle_victim(reg, c1);
        if (victim == NULL) {
            return SSE_ECLIENT_LISTENERS;
        }
        reclaim(reg, victim);       /* may give back c1's entry */
        c1 = sse_reg_client_find(reg, client->addr);
    }
    if (reg->h->free_head == 0) {
        victim = sse_reg_idle_victim(reg, 0);
        if (victim == NULL) {
            reg->h->stats.rejected_full++;
            return APR_ENOSPC;
        }
        reclaim(reg, victim);
    }
    return APR_SUCCESS;
}

/* A listener for @a id, made by @a client, in a slot made room for. */
apr_status_t sse_reg_new_listener(sse_registry_t *reg, const char *id,
                                 const sse_client_t *client,
                                 apr_int64_t now_ms, sse_slot_t **out)
{
    apr_status_t rv = make_room(reg, client);
    apr_uint32_t owner = 0;

    if (rv == SSE_ECLIENT_LISTENERS) {
        reg->h->stats.rejected_client++;
    }
    if (rv != APR_SUCCESS) {
        return rv;
    }
    if (client) {
        owner = sse_reg_client_claim(reg, client->addr);
    }
    *out = slot_alloc(reg, id, owner, now_ms);
    if (*out == NULL) {
        sse_reg_client_drop(reg, owner);
        return APR_ENOSPC;
    }
    return APR_SUCCESS;
}

/* Everything that may refuse a connect, before anything changes. */
apr_status_t sse_reg_connect_check(sse_registry_t *reg, const char *id,
                                  apr_uint32_t pid, const sse_client_t *client,
                                  apr_int64_t now_ms, const sse_slot_t *sl)
{
    apr_status_t rv;

    if (sl == NULL && sse_id_parse(id, NULL) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    if (sl == NULL && sse_reg_is_retired(reg, id, now_ms)) {
        return APR_EEXIST;
    }
    rv = client_may_stream(reg, client, sl);
    if (rv != APR_SUCCESS) {
        reg->h->stats.rejected_client++;
        return rv;
    }
    if (reg->max_streams && reg->h->stats.connected >= reg->max_streams
        && !(sl && sl->state == SLOT_CONNECTED)) {
        return SSE_ESTREAMS;
    }
    return child_room(reg, pid) ? APR_SUCCESS : APR_EAGAIN;
}

apr_status_t sse_registry_connect(sse_registry_t *reg, const char *id,
                                  apr_uint32_t pid,
                                  const sse_client_t *client,
                                  apr_int64_t now_ms,
                                  const apr_uint64_t *last_event_id,
                                  sse_hold_t *hold, int *created)
{
    apr_status_t rv, rv2;
    sse_slot_t *sl;

    *created = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;    /* sse_registry_bus_connect */
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_find_id(reg, id);
    rv2 = sse_reg_connect_check(reg, id, pid, client, now_ms, sl);
    if (rv2 == APR_SUCCESS && sl == NULL) {
        rv2 = sse_reg_new_listener(reg, id, client, now_ms, &sl);
        *created = rv2 == APR_SUCCESS;
    }
    if (rv2 == APR_SUCCESS) {
        rv2 = sse_reg_hold_slot(reg, sl, pid, client, last_event_id, hold);
    }
    if (rv2 == APR_SUCCESS) {
        sl->activity_ms = now_ms;
    }
    else if (*created) {
        sse_reg_slot_free(reg, sl, 0);
        *created = 0;
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : rv2;
}

sse_slot_t *sse_reg_held(sse_registry_t *reg, const sse_hold_t *hold)
{
    sse_slot_t *sl = &reg->slot[hold->slot];

    if (sl->gen != hold->slot_gen || sl->state != SLOT_CONNECTED
        || sl->holder_gen != hold->holder_gen) {
        return NULL;
    }
    return sl;
}

static void advance(sse_slot_t *sl, apr_uint64_t sent, apr_int64_t now_ms)
{
    if (sent > sl->last_seq) {
        sl->last_seq = sent;
    }
    sl->activity_ms = now_ms;
}

apr_status_t sse_registry_release(sse_registry_t *reg,
                                  const sse_hold_t *hold, apr_uint64_t sent,
                                  apr_int64_t now_ms)
{
    apr_status_t rv;
    sse_slot_t *sl;

    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_held(reg, hold);
    if (sl) {
        advance(sl, sent, now_ms);
        sse_reg_slot_rest(reg, sl);
    }
    sse_reg_unlock(reg, &rv);
    return rv;
}

apr_status_t sse_registry_ack(sse_registry_t *reg, const sse_hold_t *hold,
                              apr_uint64_t sent, int count,
                              apr_int64_t now_ms, apr_uint64_t *missed_from,
                              apr_uint64_t *missed_to)
{
    apr_status_t rv;
    sse_slot_t *sl = NULL;

    *missed_from = *missed_to = 0;
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_held(reg, hold);
    if (sl) {
        reg->h->stats.delivered += (apr_uint64_t)count;
        sl->delivered += (apr_uint64_t)count;
        advance(sl, sent, now_ms);
        *missed_from = sl->missed_from;
        *missed_to = sl->missed_to;
        sl->missed_from = sl->missed_to = 0;
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : (sl ? APR_SUCCESS : APR_EOF);
}

/* ---- listen keys and publishing -------------------------------------- */

/* *added: 1 when @a key is new to the listener, 0 when it held it */
apr_status_t sse_reg_add_key(sse_registry_t *reg, sse_slot_t *sl,
                            const char *key, int *added)
{
    apr_uint32_t hash = hash_of(key, strlen(key)), k, n1;
    sse_keynode_t *kn;

    *added = 0;
    for (k = 0; k < sl->nkeys; k++) {
        if (sl->keys[k].hash == hash && strcmp(sl->keys[k].key, key) == 0) {
            return APR_SUCCESS;         /* already listening */
        }
    }
    if (sl->nkeys == SSE_MAX_KEYS) {
        return APR_ENOSPC;
    }
    kn = &sl->keys[sl->nkeys];
    n1 = slot_index(reg, sl) * SSE_MAX_KEYS + sl->nkeys + 1;
    apr_cpystrn(kn->key, key, sizeof(kn->key));
    kn->hash = hash;
    kn->since = reg->h->next_seq - 1;
    kn->last = 0;               /* no entry of the key for it yet */
    kn->next = reg->key_bucket[bucket_of(reg, hash)];
    reg->key_bucket[bucket_of(reg, hash)] = n1;
    sl->nkeys++;
    *added = 1;
    return APR_SUCCESS;
}

apr_status_t sse_registry_listen_ex(sse_registry_t *reg, const char *id,
                                    const char *key, apr_int64_t now_ms,
                                    int *added)
{
    apr_status_t rv, rv2 = APR_ENOENT;
    sse_slot_t *sl;
    int dummy;

    added = added ? added : &dummy;
    *added = 0;
    if (reg->bus) {
        return APR_ENOTIMPL;
    }
    if (!sse_token_valid(key, strlen(key))) {
        return APR_EINVAL;
    }
    if ((rv = sse_reg_lock(reg)) != APR_SUCCESS) {
        return rv;
    }
    sl = sse_reg_find_id(reg, id);
    if (sl) {
        rv2 = sse_reg_add_key(reg, sl, key, added);
        sl->activity_ms = now_ms;
        sse_reg_idle_leave(reg, sl);    /* to the tail: newest activity */
        sse_reg_idle_join(reg, sl);
    }
    sse_reg_unlock(reg, &rv);
    return rv ? rv : rv2;
}

apr_status_t sse_registry_listen(sse_registry_t *reg, const char *id,
                                 const char *key, apr_int64_t now_ms)
{
    return sse_registry_listen_ex(reg, id, key, now_ms, NULL);
}
