/* sse_timer: deadlines come back in due order, whatever moved them. */
#include <stdlib.h>

#include "src/sse_timer.h"
#include "unit.h"

/* A stream-like owner, to check that entries live in the caller's struct. */
typedef struct {
    int id;
    sse_timer_entry_t beat;
} owner_t;

/* xorshift64*: the same sequence on every machine, for a given seed. */
static apr_uint64_t rnd_state;

static apr_uint64_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * APR_UINT64_C(2685821657736338717);
}

static apr_size_t rnd_below(apr_size_t n)
{
    return (apr_size_t)(rnd() % n);
}

static int cmp_time(const void *a, const void *b)
{
    apr_time_t x = *(const apr_time_t *)a, y = *(const apr_time_t *)b;

    return x < y ? -1 : x > y;
}

static sse_timer_t *new_timer(apr_size_t capacity)
{
    sse_timer_t *t = NULL;

    CHECK_RV(APR_SUCCESS, sse_timer_create(&t, unit_pool(), capacity),
             "a timer for %" APR_SIZE_T_FMT " entries", capacity);
    return t;
}

static owner_t *new_owners(int n)
{
    owner_t *o = apr_palloc(unit_pool(), sizeof(*o) * (apr_size_t)n);
    int i;

    for (i = 0; i < n; i++) {
        o[i].id = i;
        sse_timer_entry_init(&o[i].beat);
    }
    return o;
}

#define CHECK_HEAP(t, what)                                                 \
    CHECK_RV(APR_SUCCESS, sse_timer_verify(t),                              \
             "the heap invariant holds after %s", (what))

static void set(sse_timer_t *t, owner_t *o, apr_time_t due)
{
    CHECK_RV(APR_SUCCESS, sse_timer_set(t, &o->beat, due),
             "entry %d set to %" APR_TIME_T_FMT, o->id, due);
    CHECK_HEAP(t, "a set");
}

/* Pop everything; the due times must come out as @a want, sorted. */
static void check_drain(sse_timer_t *t, apr_time_t *want, apr_size_t n)
{
    apr_size_t i;

    qsort(want, n, sizeof(*want), cmp_time);
    CHECK_INT(n, sse_timer_count(t), "entries queued before the drain");
    for (i = 0; i < n; i++) {
        sse_timer_entry_t *e = sse_timer_pop(t);

        REQUIRE(e != NULL, "pop %" APR_SIZE_T_FMT " of %" APR_SIZE_T_FMT
                " gives an entry", i, n);
        CHECK_INT(want[i], e->due, "pop %" APR_SIZE_T_FMT " gives the "
                  "next due time in sorted order", i);
        CHECK(!sse_timer_queued(e), "a popped entry is no longer queued");
        CHECK_HEAP(t, "a pop");
        if (unit_failures()) {
            return;
        }
    }
    CHECK(sse_timer_pop(t) == NULL, "an empty timer pops NULL");
}

#define MODEL_N     600
#define MODEL_STEPS 20000

/* Insert, re-key, remove and pop at random against a model that knows
 * each entry's due time and whether it is queued; due times from a small
 * range, so many are equal. */
UNIT_TEST(test_timer_gives_back_entries_in_due_order_under_random_changes)
{
    sse_timer_t *t = new_timer(4);
    owner_t *o = new_owners(MODEL_N);
    int queued[MODEL_N] = { 0 };
    apr_time_t want[MODEL_N];
    apr_size_t count = 0, n = 0;
    int step, i;

    rnd_state = APR_UINT64_C(0x5eed5eed12345678);
    for (step = 0; step < MODEL_STEPS && !unit_failures(); step++) {
        unsigned op = (unsigned)rnd_below(10);
        owner_t *x = &o[rnd_below(MODEL_N)];
        sse_timer_entry_t *e;
        apr_time_t min = -1;

        if (op < 6) {               /* insert or re-key, up or down */
            count += !queued[x->id];
            queued[x->id] = 1;
            set(t, x, (apr_time_t)rnd_below(200));
        }
        else if (op < 8) {          /* remove, queued or not */
            CHECK_RV(queued[x->id] ? APR_SUCCESS : APR_ENOENT,
                     sse_timer_remove(t, &x->beat),
                     "step %d: remove of entry %d", step, x->id);
            count -= queued[x->id];
            queued[x->id] = 0;
        }
        else {                      /* pop the earliest */
            for (i = 0; i < MODEL_N; i++) {
                if (queued[i] && (min < 0 || o[i].beat.due < min)) {
                    min = o[i].beat.due;
                }
            }
            e = sse_timer_pop(t);
            if (min < 0) {
                CHECK(e == NULL, "step %d: an empty timer pops NULL", step);
            }
            else {
                REQUIRE(e != NULL, "step %d: pop gives an entry", step);
                x = SSE_TIMER_OWNER(e, owner_t, beat);
                CHECK(queued[x->id], "step %d: pop gives a queued entry",
                      step);
                CHECK_INT(min, e->due, "step %d: pop gives the least due "
                          "time", step);
                queued[x->id] = 0;
                count--;
            }
        }
        CHECK_HEAP(t, "a random step");
        CHECK_INT(count, sse_timer_count(t), "step %d: count", step);
        for (i = 0; i < MODEL_N; i++) {
            CHECK_INT(queued[i], sse_timer_queued(&o[i].beat),
                      "step %d: entry %d queued", step, i);
        }
    }
    for (i = 0; i < MODEL_N; i++) {
        if (queued[i]) {
            want[n++] = o[i].beat.due;
        }
    }
    check_drain(t, want, n);
}

/* Seven entries due 10, 20 .. 70: a full heap of three levels. */
static sse_timer_t *seven(owner_t **out)
{
    sse_timer_t *t = new_timer(16);
    owner_t *o = new_owners(7);
    int i;

    for (i = 0; i < 7; i++) {
        set(t, &o[i], (apr_time_t)(i + 1) * 10);
    }
    *out = o;
    return t;
}

static void check_remove(sse_timer_t *t, owner_t *o, int id,
                         const char *where)
{
    apr_time_t want[7];
    apr_size_t n = 0;
    int i;

    CHECK_RV(APR_SUCCESS, sse_timer_remove(t, &o[id].beat),
             "remove of the %s", where);
    CHECK_HEAP(t, where);
    CHECK(!sse_timer_queued(&o[id].beat), "the %s is no longer queued",
          where);
    CHECK_RV(APR_ENOENT, sse_timer_remove(t, &o[id].beat),
             "a second remove of the %s finds nothing", where);
    for (i = 0; i < 7; i++) {
        if (i != id) {
            want[n++] = o[i].beat.due;
        }
    }
    check_drain(t, want, n);
}

UNIT_TEST(test_timer_removes_the_root_a_middle_and_the_last_entry)
{
    owner_t *o;
    sse_timer_t *t;
    int id;

    t = seven(&o);
    CHECK(sse_timer_peek(t) == &o[0].beat, "the earliest is at the root");
    check_remove(t, o, 0, "root");

    t = seven(&o);
    check_remove(t, o, 2, "middle entry");

    t = seven(&o);
    id = (int)SSE_TIMER_OWNER(sse_timer_peek(t), owner_t, beat)->id;
    CHECK_INT(0, id, "the root is entry 0");
    CHECK_INT(6, o[6].beat.index, "the latest-inserted max is in the "
              "last slot");
    check_remove(t, o, 6, "last entry");

    /* a last slot that must move up into a removed subtree's place */
    t = new_timer(16);
    o = new_owners(7);
    set(t, &o[0], 1);
    set(t, &o[1], 100);
    set(t, &o[2], 2);
    set(t, &o[3], 101);
    set(t, &o[4], 102);
    set(t, &o[5], 3);
    set(t, &o[6], 4);
    check_remove(t, o, 3, "leaf under a late subtree");
}

UNIT_TEST(test_timer_rekeys_an_entry_earlier_and_later)
{
    owner_t *o;
    sse_timer_t *t = seven(&o);
    apr_time_t want[7];
    int i;

    set(t, &o[6], 5);
    CHECK(sse_timer_peek(t) == &o[6].beat, "an entry keyed earliest comes "
          "first");
    set(t, &o[6], 1000);
    CHECK(sse_timer_peek(t) == &o[0].beat, "keyed later, it gives the root "
          "back");
    set(t, &o[0], 999);
    CHECK(sse_timer_peek(t) == &o[1].beat, "the root keyed later moves down");
    set(t, &o[3], 40);
    CHECK_INT(7, sse_timer_count(t), "re-keying adds nothing");
    for (i = 0; i < 7; i++) {
        want[i] = o[i].beat.due;
    }
    check_drain(t, want, 7);
}

UNIT_TEST(test_timer_gives_back_every_entry_of_equal_due_times)
{
    sse_timer_t *t = new_timer(0);
    owner_t *o = new_owners(50);
    int seen[50] = { 0 };
    int i;

    for (i = 0; i < 50; i++) {
        set(t, &o[i], i % 5 == 0 ? 7 : 42);
    }
    for (i = 0; i < 50; i++) {
        sse_timer_entry_t *e = sse_timer_pop(t);

        REQUIRE(e != NULL, "pop %d of 50", i);
        CHECK_INT(i < 10 ? 7 : 42, e->due, "pop %d", i);
        seen[SSE_TIMER_OWNER(e, owner_t, beat)->id]++;
        CHECK_HEAP(t, "a pop of equal times");
    }
    for (i = 0; i < 50; i++) {
        CHECK_INT(1, seen[i], "entry %d comes out exactly once", i);
    }
}

/* From 16 slots to 20,000 and back, twice: growth and the shrink that
 * follows keep every entry. */
UNIT_TEST(test_timer_grows_past_its_initial_capacity_and_shrinks_back)
{
    enum { N = 20000 };
    sse_timer_t *t = new_timer(16);
    owner_t *o = new_owners(N);
    apr_time_t *want = apr_palloc(unit_pool(), sizeof(*want) * N);
    int round, i;

    rnd_state = APR_UINT64_C(0xfeedface);
    for (round = 0; round < 2 && !unit_failures(); round++) {
        for (i = 0; i < N; i++) {
            want[i] = (apr_time_t)rnd_below(1000000);
            REQUIRE_RV(APR_SUCCESS, sse_timer_set(t, &o[i].beat, want[i]),
                       "round %d: insert %d", round, i);
        }
        CHECK_HEAP(t, "growth to 20,000");
        CHECK_INT(N, sse_timer_count(t), "round %d: all are queued", round);
        /* half removed from the middle of the array, half popped */
        for (i = 0; i < N; i += 2) {
            REQUIRE_RV(APR_SUCCESS, sse_timer_remove(t, &o[i].beat),
                       "round %d: remove %d", round, i);
        }
        CHECK_HEAP(t, "removing half");
        for (i = 0; i < N / 2; i++) {
            want[i] = o[2 * i + 1].beat.due;
        }
        check_drain(t, want, N / 2);
    }
}

UNIT_TEST(test_timer_counts_and_flags_queued_entries)
{
    sse_timer_t *t = new_timer(2);
    owner_t *o = new_owners(3);
    sse_timer_entry_t fresh = SSE_TIMER_ENTRY_INIT;

    CHECK(!sse_timer_queued(&fresh), "SSE_TIMER_ENTRY_INIT is in no timer");
    CHECK(sse_timer_peek(t) == NULL, "an empty timer peeks NULL");
    CHECK(sse_timer_pop(t) == NULL, "an empty timer pops NULL");
    CHECK_INT(0, sse_timer_count(t), "an empty timer counts 0");
    CHECK(!sse_timer_queued(&o[0].beat), "an initialised entry is in no "
          "timer");
    CHECK_RV(APR_ENOENT, sse_timer_remove(t, &o[0].beat),
             "removing an entry in no timer finds nothing");
    set(t, &o[0], 30);
    set(t, &o[1], 10);
    CHECK_INT(2, sse_timer_count(t), "two queued");
    CHECK(sse_timer_queued(&o[1].beat), "a set entry is queued");
    CHECK(sse_timer_peek(t) == &o[1].beat, "peek gives the earliest");
    CHECK_INT(2, sse_timer_count(t), "peek leaves it queued");
    CHECK(sse_timer_pop(t) == &o[1].beat, "pop gives the earliest");
    CHECK(!sse_timer_queued(&o[1].beat), "and it is no longer queued");
    CHECK_INT(10, o[1].beat.due, "a popped entry keeps its due time");
    CHECK_INT(1, sse_timer_count(t), "one left");
}

UNIT_TEST(test_timer_refuses_an_entry_it_does_not_hold)
{
    sse_timer_t *a = new_timer(16), *b = new_timer(16);
    owner_t *o = new_owners(2);
    sse_timer_entry_t zeroed = { 0, 0 };

    set(a, &o[0], 1);
    CHECK_RV(APR_EINVAL, sse_timer_set(b, &o[0].beat, 2),
             "an entry of another timer is not set in this one");
    CHECK_RV(APR_EINVAL, sse_timer_remove(b, &o[0].beat),
             "nor removed from it");
    CHECK_INT(1, o[0].beat.due, "its due time is unchanged");
    CHECK_RV(APR_EINVAL, sse_timer_set(a, &zeroed, 5),
             "a zeroed entry claims slot 0, which is another's");
    CHECK_INT(1, sse_timer_count(a), "nothing was added");
    CHECK_HEAP(a, "refusals");
    CHECK_INT(0, sse_timer_count(b), "nor to the other");
}

UNIT_TEST(test_timer_lives_and_dies_with_its_pool)
{
    apr_pool_t *p;
    sse_timer_t *t = NULL;
    owner_t *o = new_owners(100);
    int i;

    REQUIRE_RV(APR_SUCCESS, apr_pool_create(&p, unit_pool()), "a subpool");
    REQUIRE_RV(APR_SUCCESS, sse_timer_create(&t, p, 1), "a timer");
    for (i = 0; i < 100; i++) {
        set(t, &o[i], 100 - i);
    }
    CHECK(sse_timer_peek(t) == &o[99].beat, "the earliest is the last set");
    /* the cleanup frees the heap: under `make sanitize` a leak fails */
    apr_pool_destroy(p);
}
