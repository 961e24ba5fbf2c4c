/**
 * @file sse_timer.h
 * @brief Deadlines in due order: an indexed binary min-heap.
 *
 * A timer holds entries keyed by an apr_time_t due time and gives back the
 * earliest. The entries live in the caller's structs (as a list node does):
 * the timer stores pointers to them, and each entry keeps its own position
 * in the heap, so the caller can re-key or remove it in O(log n) without a
 * search, and ask whether it is queued in O(1). Insert, re-key, remove and
 * pop are O(log n); peek and count are O(1).
 *
 * Entries with equal due times come out in no particular order.
 *
 * Owner: one thread (the dispatcher that created it). There is no lock;
 * no other thread may touch the timer or the entries queued in it.
 *
 * Memory: the heap's array is malloc()ed, doubled when full and halved
 * when a quarter full (never below the initial capacity), and freed by a
 * cleanup on the pool given to sse_timer_create(). A timer that once held
 * 100,000 entries gives that memory back as they leave, and a long-lived
 * pool keeps no superseded arrays (as growing from the pool itself would).
 */
#ifndef SSE_TIMER_H
#define SSE_TIMER_H

#include <stddef.h>

#include <apr.h>
#include <apr_errno.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_time.h>

/** The index of an entry that is in no timer. */
#define SSE_TIMER_NONE ((apr_size_t)-1)

/** A static initialiser for an entry that is in no timer. */
#define SSE_TIMER_ENTRY_INIT { 0, SSE_TIMER_NONE }

/**
 * The struct of type @a type whose member @a member is the entry @a e
 * (as a list node gives back its element).
 */
#define SSE_TIMER_OWNER(e, type, member)                                    \
    ((type *)(void *)((char *)(e) - offsetof(type, member)))

/**
 * A deadline, embedded in the struct it belongs to. The caller reads
 * @a due; only the timer writes either field once the entry is
 * initialised (sse_timer_entry_init() or SSE_TIMER_ENTRY_INIT).
 */
typedef struct {
    apr_time_t due;     /**< when it is due, as last given to _set() */
    apr_size_t index;   /**< its slot in the heap, or SSE_TIMER_NONE */
} sse_timer_entry_t;

/** A heap of entries by due time (opaque). */
typedef struct sse_timer_t sse_timer_t;

/**
 * Create an empty timer.
 * @param timer    out: the timer
 * @param p        the pool it lives as long as; its cleanup frees the heap
 * @param capacity entries it holds before it grows (at least 16 are
 *                 reserved); it never shrinks below this
 * @return APR_SUCCESS, or APR_ENOMEM
 */
apr_status_t sse_timer_create(sse_timer_t **timer, apr_pool_t *p,
                              apr_size_t capacity);

/**
 * Mark @a e as in no timer. An entry must be initialised once before its
 * first sse_timer_set() (a zeroed entry claims slot 0 of some timer).
 */
void sse_timer_entry_init(sse_timer_entry_t *e);

/**
 * Queue @a e to be due at @a due, or move it there if it is queued.
 * @param t   the timer
 * @param e   an initialised entry, in no timer or in @a t
 * @param due its new due time
 * @return APR_SUCCESS; APR_ENOMEM if @a e was not queued and the heap
 *         could not grow (@a e stays unqueued, the timer unchanged);
 *         APR_EINVAL if @a e claims a slot of @a t that is not its own
 *         (not initialised, or queued in another timer): nothing changes
 */
apr_status_t sse_timer_set(sse_timer_t *t, sse_timer_entry_t *e,
                           apr_time_t due);

/**
 * Take @a e out of @a t; it keeps its due time and is in no timer after.
 * @return APR_SUCCESS; APR_ENOENT if it was in no timer (nothing to do);
 *         APR_EINVAL if it claims a slot of @a t that is not its own
 */
apr_status_t sse_timer_remove(sse_timer_t *t, sse_timer_entry_t *e);

/**
 * The earliest entry, left queued.
 * @return the entry with the least due time, or NULL if @a t is empty
 */
sse_timer_entry_t *sse_timer_peek(const sse_timer_t *t);

/**
 * Take the earliest entry out of @a t.
 * @return the entry (now in no timer), or NULL if @a t is empty
 */
sse_timer_entry_t *sse_timer_pop(sse_timer_t *t);

/** @return the number of entries queued in @a t */
apr_size_t sse_timer_count(const sse_timer_t *t);

/** @return 1 if @a e is queued in a timer, 0 if not */
int sse_timer_queued(const sse_timer_entry_t *e);

/**
 * Check the heap in O(n), for tests and debugging: every parent is due no
 * later than its children, every entry's index is its slot, and every
 * stored due time is its entry's.
 * @return APR_SUCCESS, or APR_EGENERAL at the first violation
 */
apr_status_t sse_timer_verify(const sse_timer_t *t);

#endif /* SSE_TIMER_H */
