/*
 * Internal to the registry (src/sse_registry.c, sse_ring.c, sse_report.c):
 * the records of the shared segment, whose layout sse_registry.h draws,
 * and the helpers those files share. Nothing outside src/ includes it.
 */
#ifndef SSE_REGISTRY_INT_H
#define SSE_REGISTRY_INT_H

#include <string.h>

#include <apr_hash.h>

#include "sse_registry.h"
#include "sse_bus.h"

#define SSE_REG_MAGIC   0x53534552u    /* "SSER" */
/* Bump when the meaning of a field changes without its size or place:
 * the fingerprint covers sizes and places by itself. */
#define SSE_REG_FORMAT  4u

/* slot states */
enum { SLOT_FREE = 0, SLOT_REGISTERED, SLOT_CONNECTED };

/* The header's idle lists (a slot's `idle`: which one it is on, + 1). */
enum { IDLE_FRESH = 0,          /* never delivered an event */
       IDLE_USED,               /* delivered some */
       IDLE_LISTS };

#define ALIGN8(n) (((n) + 7) & ~(apr_size_t)7)

/* Room in the header for a pthread_mutex_t (40 bytes on x86-64 glibc, 48
 * on arm64; sse_lock.c checks it fits). */
#define SSE_OWN_MUTEX_WORDS 8

typedef struct {
    char key[SSE_TOKEN_MAX + 1];
    apr_uint32_t hash;
    apr_uint32_t next;          /* key chain: node index + 1 */
    apr_uint64_t since;         /* events after this seq match */
    apr_uint64_t last;          /* the newest entry of this key published
                                   while held (its chain's head), or 0 */
} sse_keynode_t;

typedef struct {
    apr_uint32_t state;
    apr_uint32_t gen;           /* bumped each time the slot is reused */
    apr_uint32_t holder_pid;
    apr_uint32_t holder_gen;    /* bumped by every new stream */
    apr_uint32_t holder_child;  /* the holder's child entry (index + 1)
                                   while CONNECTED, else 0 */
    apr_uint32_t next_id;       /* chains: slot index + 1 */
    apr_uint32_t next_name;
    apr_uint32_t next_free;
    apr_uint32_t id_hash;
    apr_uint32_t name_hash;
    apr_uint32_t name_len;
    apr_uint32_t nkeys;
    apr_int64_t registered_ms;
    apr_int64_t activity_ms;
    apr_uint64_t created_seq;   /* events after this seq are for it */
    apr_uint64_t last_seq;      /* the last seq its streams delivered */
    apr_uint64_t taken_seq;     /* the last seq its stream copied out */
    apr_uint64_t missed;        /* events lost before delivery, total */
    apr_uint64_t missed_from, missed_to;  /* not yet told to a stream */
    apr_uint64_t name_last;     /* the newest completion for its name
                                   published since it was made, or 0 */
    apr_uint64_t serial;        /* header's serial when it was made */
    apr_uint64_t delivered;     /* events its streams delivered, total */
    apr_uint32_t owner;         /* client entry that made it: index + 1,
                                   or 0 */
    apr_uint32_t streamer;      /* client entry of its stream (while
                                   CONNECTED): index + 1, or 0 */
    apr_uint32_t idle;          /* IDLE_* + 1 while on an idle list (only
                                   SLOT_REGISTERED), else 0 */
    apr_uint64_t bus_serial;    /* bus: the stream's number in the log */
    apr_uint32_t idle_prev, idle_next;    /* that list: slot index + 1 */
    apr_uint32_t owner_prev, owner_next;  /* its owner's idle list, while
                                             on an idle list */
    char id[SSE_ID_MAX + 1];
    sse_keynode_t keys[SSE_MAX_KEYS];
} sse_slot_t;

/* One client address: what it made and holds (sse_client.c). Free when
 * both counts are 0; `next_free` links the free ones, `next` a hash
 * chain of the used ones. */
typedef struct {
    unsigned char addr[SSE_CLIENT_ADDR_LEN];
    apr_uint32_t hash;
    apr_uint32_t used;          /* 1 while on a hash chain */
    apr_uint32_t next;          /* client chain: index + 1 */
    apr_uint32_t next_free;     /* free list: index + 1 */
    apr_uint32_t listeners;     /* slots it owns */
    apr_uint32_t streams;       /* streams open from it */
    apr_uint32_t idle_head, idle_tail;  /* its owned slots without a
                                           stream, oldest activity first:
                                           slot index + 1 */
} sse_client_rec_t;

typedef struct {
    apr_uint32_t pid;
    apr_uint32_t streams;
    apr_uint32_t wake;          /* atomic, no mutex needed: 1 once a
                                   publisher asked this child to wake,
                                   until its dispatcher takes the wake-up
                                   (sse_registry_wake_taken) */
} sse_child_t;

/* An id removed by disconnect or clear: register-listener answers 204
 * until @a until_ms, so the seed's client (which leaves its EventSource
 * open) stops reconnecting. A ring: when full, the oldest goes. */
typedef struct {
    char id[SSE_ID_MAX + 1];
    apr_uint32_t hash;
    apr_uint32_t next;          /* retired chain: index + 1 */
    apr_int64_t until_ms;
} sse_retired_t;

typedef struct {
    sse_registry_stamp_t stamp; /* first, in every build */
    sse_registry_sizes_t sz;
    apr_uint32_t nbuckets;
    apr_uint32_t free_head;     /* slot index + 1 */
    apr_uint32_t retired_next;  /* ring position of the next retirement */
    apr_uint32_t dirty;         /* set while the mutex is held */
    apr_uint64_t next_seq;      /* atomic: release store, acquire load */
    apr_uint64_t pay_head;      /* payload bytes ever written: the ring
                                   holds [pay_head - payload_bytes,
                                   pay_head) */
    apr_uint64_t first_seq;
    apr_uint64_t serial;        /* registrations so far: each slot_alloc
                                   stamps the slot with the next one */
    unsigned char secret[SSE_SECRET_LEN];
    sse_stats_t stats;
    apr_uint32_t idle_head[IDLE_LISTS];   /* slot index + 1, oldest */
    apr_uint32_t idle_tail[IDLE_LISTS];   /* ... newest */
    apr_uint32_t client_free;   /* client entry index + 1 */
    apr_uint32_t bus_mode;      /* 1: its handles are in bus mode */
    apr_uint64_t bus_next;      /* bus: the seq the log gives next as far
                                   as applied, or 0 before the first */
    sse_bus_stats_t bus;
    apr_uint32_t own_lock;      /* 1: own_mutex is formatted, and every
                                   process takes it, not the APR mutex */
    apr_uint64_t own_mutex[SSE_OWN_MUTEX_WORDS];  /* a pthread_mutex_t:
                                   robust, process-shared, no priority
                                   inheritance (sse_lock.c) */
} sse_reg_header_t;

struct sse_registry_t {
    apr_global_mutex_t *lock;   /* unless own is set */
    void *own;                  /* h->own_mutex when h->own_lock, or NULL */
    int nonblocking;            /* only try the mutex (the parent) */
    apr_uint32_t max_streams;   /* connect's bound on open streams; 0 */
    sse_lock_error_fn *lock_error;  /* or NULL */
    void *lock_error_baton;
    sse_reg_header_t *h;
    apr_uint32_t *id_bucket;
    apr_uint32_t *name_bucket;
    apr_uint32_t *key_bucket;
    apr_uint32_t *retired_bucket;
    apr_uint32_t *client_bucket;
    sse_retired_t *retired;
    sse_child_t *child;
    sse_client_rec_t *client;   /* 2 * max_listeners */
    sse_slot_t *slot;
    sse_event_t *ring;
    unsigned char *payload;     /* sz.payload_bytes */
    apr_uint64_t *key_head;     /* bus: per key bucket, the newest entry
                                   of a key of that bucket (its chain) */
    apr_uint64_t *name_head;    /* bus: the same for completions' names */
    int bus;                    /* sse_registry_set_bus() */
    /* for the unit tests, local to this handle */
    apr_uint64_t examined;      /* ring entries sse_registry_read looked
                                   at, in all */
    apr_uint32_t json_batch;    /* slots sse_registry_json looks at per
                                   hold of the mutex (0: the default) */
    void (*json_between)(void *baton);  /* called between two holds */
    void *json_between_baton;
};

/* ---- hashing and chains (all under the mutex) ------------------------ */

static APR_INLINE apr_uint32_t hash_of(const char *s, apr_size_t len)
{
    apr_ssize_t klen = (apr_ssize_t)len;
    return apr_hashfunc_default(s, &klen);
}

static APR_INLINE apr_uint32_t bucket_of(const sse_registry_t *reg,
                                          apr_uint32_t hash)
{
    return hash & (reg->h->nbuckets - 1);
}

static APR_INLINE apr_uint32_t slot_index(const sse_registry_t *reg,
                               const sse_slot_t *sl)
{
    return (apr_uint32_t)(sl - reg->slot);
}

static APR_INLINE sse_keynode_t *node_at(sse_registry_t *reg, apr_uint32_t n1)
{
    return &reg->slot[(n1 - 1) / SSE_MAX_KEYS].keys[(n1 - 1) % SSE_MAX_KEYS];
}

/**
 * Take the mutex (or, for a non-blocking handle, try to). The header's
 * `dirty` mark is set while it is held; a holder that finds it set took
 * the mutex from a process that died inside a critical section (the
 * robust mutex lets it in), and rebuilds the indexes first.
 */
apr_status_t sse_reg_lock(sse_registry_t *reg);

/** Clear the dirty mark and release the mutex; a failure is reported
 * and stored in @a rv unless it already holds one. */
void sse_reg_unlock(sse_registry_t *reg, apr_status_t *rv);

/** The child table's entry of @a pid; with @a claim, a free one for it.
 * Under the mutex. */
sse_child_t *sse_reg_child_entry(sse_registry_t *reg, apr_uint32_t pid,
                                 int claim);

/** Retire @a sl's id until @a until_ms (sse_retired.c). Under the mutex. */
void sse_reg_retire(sse_registry_t *reg, const sse_slot_t *sl,
                    apr_int64_t until_ms);

/** Is @a id retired at @a now? Under the mutex. */
int sse_reg_is_retired(sse_registry_t *reg, const char *id, apr_int64_t now);

/** Take retirement @a r1 (1-based) out of its chain. Under the mutex. */
void sse_reg_retired_unlink(sse_registry_t *reg, apr_uint32_t r1);

/** Rebuild free list, hash chains, counters and child counts from the
 * slots. Under the mutex. */
void sse_reg_repair(sse_registry_t *reg);

/* ---- clients and idle lists (sse_client.c; all under the mutex) ----- */

/** Client entries: twice the slots (an owner and a streamer each). */
#define SSE_CLIENTS(sz) (2 * (apr_size_t)(sz)->max_listeners)

/** The entry (index + 1) of @a addr, or 0. */
apr_uint32_t sse_reg_client_find(sse_registry_t *reg,
                                 const unsigned char *addr);

/** The entry (index + 1) of @a addr, claimed from the free list if it
 * has none; 0 only if the table is out of entries (it cannot be). */
apr_uint32_t sse_reg_client_claim(sse_registry_t *reg,
                                  const unsigned char *addr);

/** Give back entry @a c1 if it counts nothing any more. */
void sse_reg_client_drop(sse_registry_t *reg, apr_uint32_t c1);

/** Put @a sl (SLOT_REGISTERED, on no list) at the tail of its idle
 * lists. */
void sse_reg_idle_join(sse_registry_t *reg, sse_slot_t *sl);

/** Take @a sl off its idle lists, if it is on them. */
void sse_reg_idle_leave(sse_registry_t *reg, sse_slot_t *sl);

/** The listener to reclaim for a new one, or NULL: @a c1 != 0, the
 * oldest idle one client @a c1 owns; else the oldest that never
 * delivered, else the one dormant longest. */
sse_slot_t *sse_reg_idle_victim(sse_registry_t *reg, apr_uint32_t c1);

/** After the slots are repaired: rebuild the client table's counts,
 * chains and free list, and the idle lists, from the slots. */
void sse_reg_repair_clients(sse_registry_t *reg);

/** Free a slot (its client's and its process's counts follow); with
 * @a end_stream, tell its stream to end (clear ends every stream with one
 * entry instead). Under the mutex. */
void sse_reg_slot_free(sse_registry_t *reg, sse_slot_t *sl, int end_stream);

/** The slot's stream ended and no other takes it: it waits, idle. Under
 * the mutex. */
void sse_reg_slot_rest(sse_registry_t *reg, sse_slot_t *sl);

/** The slot of @a id, or NULL. Under the mutex. */
sse_slot_t *sse_reg_find_id(sse_registry_t *reg, const char *id);

/** The slot @a hold still holds, or NULL if taken over or removed. */
sse_slot_t *sse_reg_held(sse_registry_t *reg, const sse_hold_t *hold);

/** Append an entry telling stream (slot, holder_gen), or every stream
 * when slot is SSE_SLOT_ALL, to end. Under the mutex. */
void sse_reg_append_end(sse_registry_t *reg, apr_uint32_t slot,
                        apr_uint32_t holder_gen);

/** The oldest sequence number still in the ring. Under the mutex. */
apr_uint64_t sse_reg_oldest_seq(const sse_registry_t *reg);

/** After sse_reg_repair(): mend the heads of the ring's chains that a
 * publish cut short by a crash left pointing at an entry never
 * committed, or that a half-made slot or key inherited. Under the
 * mutex. */
void sse_reg_repair_chains(sse_registry_t *reg);

/* ---- wake-ups (sse_lock.c) ------------------------------------------ */

/** The children an entry being appended is for: child entries, index + 1,
 * each once; n == -1 when there are too many to list (every child with
 * streams, then). */
#define SSE_TARGET_CHILDREN 16
typedef struct {
    int n;
    apr_uint32_t child[SSE_TARGET_CHILDREN];
} sse_targets_t;

/** Add the child that holds @a sl's stream, if it is CONNECTED. */
void sse_reg_target_add(sse_registry_t *reg, sse_targets_t *t,
                        const sse_slot_t *sl);

/** After the entry's commit: raise the wake flag of each child of @a t;
 * those whose flag was clear are sent a wake-up once this thread
 * releases the mutex. Under the mutex. */
void sse_reg_wake_targets(sse_registry_t *reg, const sse_targets_t *t);

/* ---- shared by the publish paths of one host and of the bus -------- */

/** Append a notification of @a key for its holders (and, in bus mode,
 * whatever the count). @return its holders here. Under the mutex. */
int sse_reg_append_key(sse_registry_t *reg, const char *key,
                       const char *payload, apr_size_t plen,
                       apr_int64_t now_ms);

/** Append a completion of @a taskid for the listeners of @a name
 * (@a name_len bytes). @return those here. Under the mutex. */
int sse_reg_append_name(sse_registry_t *reg, const char *name,
                        apr_size_t name_len, const char *taskid,
                        const char *payload, apr_size_t plen,
                        apr_int64_t now_ms);

/** Append an entry no stream reads (a log entry with nothing to do
 * here keeps the ring's seqs those of the log). Under the mutex. */
void sse_reg_append_nop(sse_registry_t *reg);

/** Add @a key to @a sl: APR_ENOSPC when it holds SSE_MAX_KEYS. */
apr_status_t sse_reg_add_key(sse_registry_t *reg, sse_slot_t *sl,
                             const char *key, int *added);

/** A new listener for @a id, room made as connect makes it. */
apr_status_t sse_reg_new_listener(sse_registry_t *reg, const char *id,
                                  const sse_client_t *client,
                                  apr_int64_t now_ms, sse_slot_t **out);

/** Everything that may refuse a connect of @a id (@a sl: its slot or
 * NULL), before anything changes. */
apr_status_t sse_reg_connect_check(sse_registry_t *reg, const char *id,
                                   apr_uint32_t pid,
                                   const sse_client_t *client,
                                   apr_int64_t now_ms, const sse_slot_t *sl);

/** Make process @a pid's stream the slot's one stream. */
apr_status_t sse_reg_hold_slot(sse_registry_t *reg, sse_slot_t *sl,
                               apr_uint32_t pid, const sse_client_t *client,
                               const apr_uint64_t *last_id,
                               sse_hold_t *hold);

/** Remove every listener, retire their ids until @a retire_ms (0: not),
 * and end every stream. @return how many. Under the mutex. */
int sse_reg_clear_all(sse_registry_t *reg, apr_int64_t retire_ms);

#endif /* SSE_REGISTRY_INT_H */
