/*
 * An indexed binary min-heap of deadlines (see sse_timer.h).
 *
 * Each slot keeps a copy of its entry's due time beside the pointer, so
 * sifting compares within the array and touches an entry only to write
 * its new index: with 100,000 streams scattered over the connections'
 * pools, reading two children's structs at every level would miss the
 * cache twice a level. Sifts move a hole rather than swapping, so a slot
 * is written once per level.
 */
#include <stdlib.h>
#include <string.h>

#include "sse_timer.h"

#define SSE_TIMER_MIN_CAPACITY 16

typedef struct {
    apr_time_t due;
    sse_timer_entry_t *entry;
} timer_slot_t;

struct sse_timer_t {
    timer_slot_t *slot;         /* malloc()ed; freed by timer_cleanup */
    apr_size_t count;
    apr_size_t capacity;
    apr_size_t min_capacity;    /* never shrink below what was asked */
};

static apr_status_t timer_cleanup(void *data)
{
    sse_timer_t *t = data;

    free(t->slot);
    t->slot = NULL;
    t->count = t->capacity = 0;
    return APR_SUCCESS;
}

/* realloc() keeps the slots on failure, so the heap stays as it was. */
static apr_status_t timer_resize(sse_timer_t *t, apr_size_t capacity)
{
    timer_slot_t *slot;

    if (capacity > (apr_size_t)-1 / sizeof(*slot)) {
        return APR_ENOMEM;
    }
    slot = realloc(t->slot, capacity * sizeof(*slot));
    if (slot == NULL) {
        return APR_ENOMEM;
    }
    t->slot = slot;
    t->capacity = capacity;
    return APR_SUCCESS;
}

apr_status_t sse_timer_create(sse_timer_t **timer, apr_pool_t *p,
                              apr_size_t capacity)
{
    sse_timer_t *t = apr_pcalloc(p, sizeof(*t));
    apr_status_t rv;

    if (capacity < SSE_TIMER_MIN_CAPACITY) {
        capacity = SSE_TIMER_MIN_CAPACITY;
    }
    rv = timer_resize(t, capacity);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    t->min_capacity = capacity;
    apr_pool_cleanup_register(p, t, timer_cleanup, apr_pool_cleanup_null);
    *timer = t;
    return APR_SUCCESS;
}

void sse_timer_entry_init(sse_timer_entry_t *e)
{
    e->due = 0;
    e->index = SSE_TIMER_NONE;
}

static void place(sse_timer_t *t, apr_size_t i, apr_time_t due,
                  sse_timer_entry_t *e)
{
    t->slot[i].due = due;
    t->slot[i].entry = e;
    e->index = i;
}

/* Move the hole at @a i towards the root until @a due fits, then fill it. */
static void sift_up(sse_timer_t *t, apr_size_t i, apr_time_t due,
                    sse_timer_entry_t *e)
{
    while (i > 0) {
        apr_size_t parent = (i - 1) / 2;

        if (t->slot[parent].due <= due) {
            break;
        }
        place(t, i, t->slot[parent].due, t->slot[parent].entry);
        i = parent;
    }
    place(t, i, due, e);
}

/* Move the hole at @a i towards the leaves until @a due fits, then fill
 * it. Slots from t->count on are not part of the heap. */
static void sift_down(sse_timer_t *t, apr_size_t i, apr_time_t due,
                      sse_timer_entry_t *e)
{
    apr_size_t n = t->count;

    for (;;) {
        apr_size_t child = 2 * i + 1;

        if (child >= n) {
            break;
        }
        if (child + 1 < n && t->slot[child + 1].due < t->slot[child].due) {
            child++;
        }
        if (due <= t->slot[child].due) {
            break;
        }
        place(t, i, t->slot[child].due, t->slot[child].entry);
        i = child;
    }
    place(t, i, due, e);
}

/* Put @a e, now at slot @a i, where @a due belongs: up or down. */
static void settle(sse_timer_t *t, apr_size_t i, apr_time_t due,
                   sse_timer_entry_t *e)
{
    if (i > 0 && due < t->slot[(i - 1) / 2].due) {
        sift_up(t, i, due, e);
    }
    else {
        sift_down(t, i, due, e);
    }
}

static int owns(const sse_timer_t *t, const sse_timer_entry_t *e)
{
    return e->index < t->count && t->slot[e->index].entry == e;
}

apr_status_t sse_timer_set(sse_timer_t *t, sse_timer_entry_t *e,
                           apr_time_t due)
{
    apr_status_t rv;

    if (e->index != SSE_TIMER_NONE) {
        if (!owns(t, e)) {
            return APR_EINVAL;
        }
        e->due = due;
        settle(t, e->index, due, e);
        return APR_SUCCESS;
    }
    if (t->count == t->capacity) {
        rv = timer_resize(t, t->capacity * 2);
        if (rv != APR_SUCCESS) {
            return rv;
        }
    }
    e->due = due;
    t->count++;
    sift_up(t, t->count - 1, due, e);
    return APR_SUCCESS;
}

/* Half the slots go back once a quarter are used: a burst to 100,000
 * streams does not hold its memory for the child's life, and a count
 * that wavers around a power of two does not realloc at every step. */
static void maybe_shrink(sse_timer_t *t)
{
    if (t->capacity / 2 >= t->min_capacity && t->count < t->capacity / 4) {
        (void)timer_resize(t, t->capacity / 2);
    }
}

/* Take the entry at slot @a i out: the last slot's entry fills the gap. */
static void take(sse_timer_t *t, apr_size_t i)
{
    sse_timer_entry_t *e = t->slot[i].entry;
    apr_size_t last = --t->count;

    e->index = SSE_TIMER_NONE;
    if (i != last) {
        settle(t, i, t->slot[last].due, t->slot[last].entry);
    }
    maybe_shrink(t);
}

apr_status_t sse_timer_remove(sse_timer_t *t, sse_timer_entry_t *e)
{
    if (e->index == SSE_TIMER_NONE) {
        return APR_ENOENT;
    }
    if (!owns(t, e)) {
        return APR_EINVAL;
    }
    take(t, e->index);
    return APR_SUCCESS;
}

sse_timer_entry_t *sse_timer_peek(const sse_timer_t *t)
{
    return t->count ? t->slot[0].entry : NULL;
}

sse_timer_entry_t *sse_timer_pop(sse_timer_t *t)
{
    sse_timer_entry_t *e;

    if (t->count == 0) {
        return NULL;
    }
    e = t->slot[0].entry;
    take(t, 0);
    return e;
}

apr_size_t sse_timer_count(const sse_timer_t *t)
{
    return t->count;
}

int sse_timer_queued(const sse_timer_entry_t *e)
{
    return e->index != SSE_TIMER_NONE;
}

apr_status_t sse_timer_verify(const sse_timer_t *t)
{
    apr_size_t i;

    if (t->count > t->capacity) {
        return APR_EGENERAL;
    }
    for (i = 0; i < t->count; i++) {
        const timer_slot_t *s = &t->slot[i];

        if (s->entry == NULL || s->entry->index != i
            || s->entry->due != s->due) {
            return APR_EGENERAL;
        }
        if (i > 0 && t->slot[(i - 1) / 2].due > s->due) {
            return APR_EGENERAL;
        }
    }
    return APR_SUCCESS;
}
