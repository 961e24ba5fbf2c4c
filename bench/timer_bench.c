/*
 * timer_bench -- the cost of keeping parked streams in heartbeat order:
 * sse_timer (a binary heap) against the sorted list that mod_sse_park.c
 * walks from its tail (reimplemented here as it is there).
 *
 *   cc -O2 -std=gnu99 -I. $(pkg-config --cflags apr-1) \
 *      bench/timer_bench.c src/sse_timer.c $(pkg-config --libs apr-1) \
 *      -o bench/out/timer_bench
 *   bench/out/timer_bench [streams [blocked [ops]]]
 *
 * Defaults: 100,000 streams of which 1,000 are blocked (their deadline
 * is Timeout, 60 s out) and the rest due for a heartbeat within 15 s;
 * 250,000 operations a case. The clock is simulated: each operation
 * moves it on by 15 s / heartbeat streams, so every stream beats once
 * in 15 simulated seconds, as on a server. A write case stops at 45
 * simulated seconds (3 x heartbeat streams operations): past that the
 * blocked streams' deadlines, which only ticks renew, would fall before
 * the new beats and the list's walk would shorten for no real reason.
 *
 * Cases, each for the list and the heap, with the blocked streams and
 * without (the list's best case):
 *   tick   the earliest stream is due: a heartbeat stream gets its next
 *          beat 15 s on, a blocked one a new Timeout (its socket took a
 *          little); what sse_park_tick() does
 *   write  a random heartbeat stream wrote an event: its beat moves to
 *          15 s from now; what sse_park_serve() does
 * Streams are malloc()ed one by one and queued in a shuffled order, so
 * neighbours in the list or the heap are not neighbours in memory.
 * Prints one line per case: ns per operation (best of 3 runs).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <apr_general.h>
#include <apr_pools.h>

#include "src/sse_timer.h"

#define HEARTBEAT   apr_time_from_sec(15)
#define TIMEOUT     apr_time_from_sec(60)
#define STREAM_PAD  400     /* about what a parked stream's struct holds */

typedef struct bstream_t bstream_t;
struct bstream_t {
    apr_time_t next_beat;           /* the list's key */
    bstream_t *beat_prev, *beat_next;
    sse_timer_entry_t beat;         /* the heap's */
    int blocked;
    char pad[STREAM_PAD];
};

/* ---- the list, as mod_sse_park.c has it ------------------------------ */

static bstream_t *head, *tail;

static void list_remove(bstream_t *st)
{
    if (st->beat_prev) {
        st->beat_prev->beat_next = st->beat_next;
    }
    else {
        head = st->beat_next;
    }
    if (st->beat_next) {
        st->beat_next->beat_prev = st->beat_prev;
    }
    else {
        tail = st->beat_prev;
    }
    st->beat_prev = st->beat_next = NULL;
}

static void list_insert(bstream_t *st)
{
    bstream_t *p = tail;

    while (p && p->next_beat > st->next_beat) {
        p = p->beat_prev;
    }
    st->beat_prev = p;
    st->beat_next = p ? p->beat_next : head;
    if (st->beat_next) {
        st->beat_next->beat_prev = st;
    }
    else {
        tail = st;
    }
    if (p) {
        p->beat_next = st;
    }
    else {
        head = st;
    }
}

static int list_sorted(void)
{
    bstream_t *p;

    for (p = head; p && p->beat_next; p = p->beat_next) {
        if (p->next_beat > p->beat_next->next_beat) {
            return 0;
        }
    }
    return 1;
}

/* ---- the workload ---------------------------------------------------- */

static apr_uint64_t rnd_state = APR_UINT64_C(0x9e3779b97f4a7c15);

static apr_uint64_t rnd(void)
{
    rnd_state ^= rnd_state >> 12;
    rnd_state ^= rnd_state << 25;
    rnd_state ^= rnd_state >> 27;
    return rnd_state * APR_UINT64_C(2685821657736338717);
}

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

typedef enum { USE_LIST, USE_HEAP } impl_e;
typedef enum { OP_TICK, OP_WRITE } op_e;

static bstream_t **st;          /* all streams, in a shuffled order */
static bstream_t **beating;     /* the heartbeat ones, for OP_WRITE */
static int nstreams, nblocked, nbeating;

static void free_streams(void)
{
    int i;

    for (i = 0; i < nstreams; i++) {
        free(st[i]);
    }
    free(st);
    free(beating);
}

static void make_streams(int n, int blocked)
{
    int i;

    nstreams = n;
    nblocked = blocked;
    nbeating = n - blocked;
    st = malloc(sizeof(*st) * (size_t)n);
    beating = malloc(sizeof(*beating) * (size_t)n);
    for (i = 0; i < n; i++) {
        st[i] = calloc(1, sizeof(**st));
    }
    for (i = n - 1; i > 0; i--) {
        int j = (int)(rnd() % (apr_uint64_t)(i + 1));
        bstream_t *x = st[i];

        st[i] = st[j];
        st[j] = x;
    }
    for (i = 0; i < n; i++) {
        st[i]->blocked = i < blocked;
        if (i >= blocked) {
            beating[i - blocked] = st[i];
        }
    }
}

static void requeue(impl_e impl, sse_timer_t *t, bstream_t *s, apr_time_t due)
{
    if (impl == USE_LIST) {
        s->next_beat = due;
        list_remove(s);
        list_insert(s);
    }
    else {
        (void)sse_timer_set(t, &s->beat, due);
    }
}

static int by_beat(const void *a, const void *b)
{
    apr_time_t x = (*(bstream_t *const *)a)->next_beat;
    apr_time_t y = (*(bstream_t *const *)b)->next_beat;

    return x < y ? -1 : x > y;
}

/* Queue every stream as it would be after 15 s of running: heartbeat ones
 * spread over the next 15 s, blocked ones over 45..60 s. The list is
 * built in due order (appending is O(1)): queuing at random would be
 * O(n) a stream, and is not what is measured. */
static void fill(impl_e impl, sse_timer_t *t, apr_time_t now)
{
    bstream_t **order = malloc(sizeof(*order) * (size_t)nstreams);
    int i;

    head = tail = NULL;
    for (i = 0; i < nstreams; i++) {
        bstream_t *s = st[i];

        s->next_beat = s->blocked
            ? now + TIMEOUT - (apr_time_t)(rnd() % HEARTBEAT)
            : now + (apr_time_t)(rnd() % HEARTBEAT);
        s->beat_prev = s->beat_next = NULL;
        sse_timer_entry_init(&s->beat);
        order[i] = s;
    }
    if (impl == USE_LIST) {
        qsort(order, (size_t)nstreams, sizeof(*order), by_beat);
    }
    for (i = 0; i < nstreams; i++) {
        if (impl == USE_LIST) {
            list_insert(order[i]);
        }
        else {
            (void)sse_timer_set(t, &order[i]->beat, order[i]->next_beat);
        }
    }
    free(order);
}

static bstream_t *earliest(impl_e impl, sse_timer_t *t)
{
    if (impl == USE_LIST) {
        return head;
    }
    return SSE_TIMER_OWNER(sse_timer_peek(t), bstream_t, beat);
}

static double run(impl_e impl, op_e op, long ops, apr_pool_t *p)
{
    sse_timer_t *t = NULL;
    apr_time_t now = apr_time_from_sec(1000);
    apr_time_t step = HEARTBEAT / (nbeating ? nbeating : 1);
    double t0, t1;
    long i;

    if (impl == USE_HEAP
        && sse_timer_create(&t, p, (apr_size_t)nstreams) != APR_SUCCESS) {
        fprintf(stderr, "timer_bench: no timer\n");
        exit(1);
    }
    fill(impl, t, now);
    t0 = now_ns();
    for (i = 0; i < ops; i++) {
        bstream_t *s;

        now += step;
        if (op == OP_TICK) {
            s = earliest(impl, t);
            requeue(impl, t, s, now + (s->blocked ? TIMEOUT : HEARTBEAT));
        }
        else {
            s = beating[rnd() % (apr_uint64_t)nbeating];
            requeue(impl, t, s, now + HEARTBEAT);
        }
    }
    t1 = now_ns();
    if (impl == USE_LIST ? !list_sorted()
                         : sse_timer_verify(t) != APR_SUCCESS) {
        fprintf(stderr, "timer_bench: out of order after the run\n");
        exit(1);
    }
    return (t1 - t0) / (double)ops;
}

static double best_of_3(impl_e impl, op_e op, long ops)
{
    double best = 0;
    int r;

    for (r = 0; r < 3; r++) {
        apr_pool_t *p;
        double ns;

        apr_pool_create(&p, NULL);
        ns = run(impl, op, ops, p);
        apr_pool_destroy(p);
        if (r == 0 || ns < best) {
            best = ns;
        }
    }
    return best;
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100000;
    int blocked = argc > 2 ? atoi(argv[2]) : 1000;
    long ops = argc > 3 ? atol(argv[3]) : 250000;
    static const char *const impl_name[] = { "list", "heap" };
    static const char *const op_name[] = { "tick", "write" };
    int b, impl, op;

    if (n < 2 || blocked < 0 || blocked >= n || ops < 1) {
        fprintf(stderr, "usage: timer_bench [streams [blocked [ops]]]\n");
        return 2;
    }
    apr_initialize();
    for (b = 0; b < 2; b++) {
        int nb = b == 0 ? blocked : 0;

        make_streams(n, nb);
        for (op = OP_TICK; op <= OP_WRITE; op++) {
            long k = ops;

            if (op == OP_WRITE && k > 3L * nbeating) {
                k = 3L * nbeating;
            }
            for (impl = USE_LIST; impl <= USE_HEAP; impl++) {
                printf("%-5s %-5s streams=%d blocked=%d ops=%ld  "
                       "%9.1f ns/op\n", op_name[op], impl_name[impl], n,
                       nb, k, best_of_3((impl_e)impl, (op_e)op, k));
                fflush(stdout);
            }
        }
        free_streams();
    }
    apr_terminate();
    return 0;
}
