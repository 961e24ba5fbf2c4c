/* sse_registry: the child table (holders, in chunks, any or with streams),
 * a dead child's listeners, and the parent's non-blocking handle. */
#include <string.h>

#include <apr_strings.h>
#include <apr_thread_cond.h>
#include <apr_thread_mutex.h>
#include <apr_thread_proc.h>

#include "fixture.h"
#include "unit.h"

/* ---- holders ---------------------------------------------------------- */

UNIT_TEST(test_holders_any_also_lists_pids_whose_streams_a_release_ended)
{
    fx_t fx;
    sse_hold_t ha, hb;
    apr_uint32_t pids[8];
    int n;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    fx_connect(&fx, fx_id(&fx, "a"), PID_A, 1, &ha);
    fx_connect(&fx, fx_id(&fx, "b"), PID_B, 1, &hb);
    sse_registry_release(fx.reg, &ha, ha.cursor, 2);
    n = fx_holders(&fx, 0, pids, 8);
    if (CHECK_INT(1, n, "any 0: only the pids holding streams now")) {
        CHECK_INT(PID_B, pids[0], "B");
    }
    n = fx_holders(&fx, 1, pids, 8);
    CHECK_INT(2, n, "any 1: every pid in the child table");
    CHECK_INT(1, fx_count_pid(pids, n, PID_A), "A, whose stream ended");
    CHECK_INT(1, fx_count_pid(pids, n, PID_B), "B");
    sse_registry_release(fx.reg, &hb, hb.cursor, 3);
    CHECK_INT(0, fx_holders(&fx, 0, pids, 8), "any 0: nobody holds one");
    n = fx_holders(&fx, 1, pids, 8);
    CHECK(n == 2 && fx_count_pid(pids, n, PID_A) == 1
              && fx_count_pid(pids, n, PID_B) == 1,
          "any 1: A and B stay listed (%d pids)", n);
}

UNIT_TEST(test_holders_any_also_lists_pids_whose_streams_a_clear_ended)
{
    fx_t fx;
    sse_hold_t h;
    apr_uint32_t pids[8];
    int n, removed = -1;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    fx_connect(&fx, fx_id(&fx, "a"), PID_A, 1, &h);
    fx_connect(&fx, fx_id(&fx, "a"), PID_A, 1, &h);
    fx_connect(&fx, fx_id(&fx, "b"), PID_B, 1, &h);
    fx_connect(&fx, fx_id(&fx, "c"), PID_C, 1, &h);
    CHECK_INT(3, fx_holders(&fx, 0, pids, 8), "three pids hold streams");
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 0, &removed), "clear");
    CHECK_INT(4, removed, "four listeners");
    CHECK_INT(0, fx_holders(&fx, 0, pids, 8), "any 0: none after a clear");
    n = fx_holders(&fx, 1, pids, 8);
    CHECK_INT(3, n, "any 1: the three whose streams the clear ended");
    CHECK_INT(1, fx_count_pid(pids, n, PID_A), "A once, for two streams");
    CHECK_INT(1, fx_count_pid(pids, n, PID_B), "B");
    CHECK_INT(1, fx_count_pid(pids, n, PID_C), "C");
}

UNIT_TEST(test_holders_in_chunks_lists_every_pid_exactly_once)
{
    enum { CHILDREN = 8, PIDS = 7 };
    fx_t fx;
    sse_hold_t h;
    apr_uint32_t pids[CHILDREN + 1], from, p;
    int any, chunk, n, want;

    if (!fx_open(&fx, 16, 16, CHILDREN)) {
        return;
    }
    for (p = 0; p < PIDS; p++) {
        fx_connect(&fx, fx_id(&fx, "u"), 3000 + p, 1, &h);
        if (p % 2 == 1) {                   /* two streams for some pids */
            fx_connect(&fx, fx_id(&fx, "u"), 3000 + p, 1, &h);
        }
    }
    /* a hole in the middle of the table, and a pid without streams */
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, 3003, 2),
             "3003 dies");
    sse_registry_release(fx.reg, &h, h.cursor, 2);  /* its only one */
    for (any = 0; any <= 1; any++) {
        want = any ? PIDS - 1 : PIDS - 2;
        for (chunk = 1; chunk <= CHILDREN + 1; chunk++) {
            n = fx_holders_by(&fx, fx.reg, any, chunk, pids, CHILDREN + 1);
            CHECK_INT(want, n, "any %d, %d at a time", any, chunk);
            for (p = 0; p < PIDS; p++) {
                CHECK_INT(p == 3 || (p == 6 && !any) ? 0 : 1,
                          fx_count_pid(pids, n, 3000 + p),
                          "any %d, %d at a time: pid %u", any, chunk,
                          3000 + p);
            }
        }
    }
    from = 0;
    CHECK_INT(2, sse_registry_holders(fx.reg, 1, &from, pids, 2),
              "a call fills the room it is given");
    CHECK(from > 0 && from <= CHILDREN, "and says where to go on: %u",
          from);
    from = CHILDREN;
    CHECK_INT(0, sse_registry_holders(fx.reg, 1, &from, pids, 8),
              "from the end of the table: nothing");
}

/* ---- a dead child ----------------------------------------------------- */

UNIT_TEST(test_child_gone_refreshes_activity_so_cleanup_waits_for_the_client)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b, *c;
    apr_int64_t gone = 10LL * HOUR_MS;
    json_t *all;
    int removed = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 0, NULL, &h))  /* held by A since 0 */
        || !(b = fx_tab(&fx, "b", PID_B, 0, NULL, &h))) {
        return;
    }
    c = fx_id(&fx, "c");
    sse_registry_release(fx.reg, &h, h.cursor, 0);   /* idle */
    fx_connect(&fx, c, PID_C, 0, &h);           /* C lives on */
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_A, gone),
             "A dies ten hours later");
    all = fx_json(&fx);
    CHECK(fx_connected(fx_listener(all, a)) == 0, "a has no stream");
    CHECK_INT(gone, fx_int(fx_listener(all, a), "last-activity"),
              "a's activity is the death of its child");
    CHECK_INT(0, fx_int(fx_listener(all, c), "last-activity"),
              "c's, of a living child, is untouched");
    json_decref(all);

    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, gone, HOUR_MS,
                                               &removed), "cleanup at once");
    CHECK_INT(1, removed, "only b, idle for ten hours");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, a),
             "a stays: its client has time to reconnect");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, b), "b went");
    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, gone + HOUR_MS - 1,
                                               HOUR_MS, &removed),
             "cleanup a millisecond before a's timeout");
    CHECK_INT(0, removed, "a is not dormant yet");
    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, gone + HOUR_MS,
                                               HOUR_MS, &removed),
             "cleanup an hour after the death");
    CHECK_INT(1, removed, "a, whose client never came back");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, a), "a went");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, c),
             "c, connected, never goes for age");
}

/* ---- the parent's non-blocking handle ---------------------------------- */

/* A thread that holds the registry mutex until told to let go, or for
 * HOLDER_MAX at most: a call that waits for the mutex (the handle is not
 * non-blocking after all) then fails its check instead of hanging. */
#define HOLDER_MAX apr_time_from_sec(5)

typedef struct {
    apr_global_mutex_t *lock;
    apr_thread_mutex_t *mu;
    apr_thread_cond_t *cv;
    apr_thread_t *thread;
    enum { HOLDER_START, HOLDER_HOLDS, HOLDER_LET_GO, HOLDER_DONE } state;
    apr_status_t rv;                /* of its apr_global_mutex_lock */
    int timed_out;                  /* it let go before it was told to */
} holder_t;

static void holder_set(holder_t *h, int state)
{
    apr_thread_mutex_lock(h->mu);
    if (state > (int)h->state) {    /* never back: DONE stays DONE */
        h->state = state;
    }
    apr_thread_cond_broadcast(h->cv);
    apr_thread_mutex_unlock(h->mu);
}

static void holder_wait(holder_t *h, int state)
{
    apr_thread_mutex_lock(h->mu);
    while ((int)h->state < state) {
        apr_thread_cond_wait(h->cv, h->mu);
    }
    apr_thread_mutex_unlock(h->mu);
}

static void *APR_THREAD_FUNC holder_main(apr_thread_t *t, void *data)
{
    holder_t *h = data;
    apr_time_t until;

    h->rv = apr_global_mutex_lock(h->lock);
    holder_set(h, HOLDER_HOLDS);
    until = apr_time_now() + HOLDER_MAX;
    apr_thread_mutex_lock(h->mu);
    while (h->state < HOLDER_LET_GO && !h->timed_out) {
        apr_time_t left = until - apr_time_now();
        if (left <= 0) {
            h->timed_out = 1;
        }
        else {
            apr_thread_cond_timedwait(h->cv, h->mu, left);
        }
    }
    apr_thread_mutex_unlock(h->mu);
    if (h->rv == APR_SUCCESS) {
        apr_global_mutex_unlock(h->lock);
    }
    holder_set(h, HOLDER_DONE);
    apr_thread_exit(t, APR_SUCCESS);
    return NULL;
}

/* Start a thread that takes @a lock; returns once it holds it (or failed
 * to: then a failure is recorded and 0 returned, the thread joined). */
static int holder_start(holder_t *h, apr_global_mutex_t *lock,
                        apr_pool_t *p)
{
    memset(h, 0, sizeof(*h));
    h->lock = lock;
    if (!CHECK_RV(APR_SUCCESS,
                  apr_thread_mutex_create(&h->mu, APR_THREAD_MUTEX_DEFAULT, p),
                  "mutex")
        || !CHECK_RV(APR_SUCCESS, apr_thread_cond_create(&h->cv, p), "cond")
        || !CHECK_RV(APR_SUCCESS, apr_thread_create(&h->thread, NULL,
                                                    holder_main, h, p),
                     "thread")) {
        h->thread = NULL;
        return 0;
    }
    holder_wait(h, HOLDER_HOLDS);
    if (!CHECK_RV(APR_SUCCESS, h->rv, "the thread takes the mutex")) {
        holder_set(h, HOLDER_LET_GO);
        apr_thread_join(&h->rv, h->thread);
        return 0;
    }
    return 1;
}

/* Let the thread release the mutex, and join it. @return 0 (and a
 * recorded failure) if it had to let go by itself: something waited. */
static int holder_stop(holder_t *h)
{
    apr_status_t rv;

    if (h->thread) {
        holder_set(h, HOLDER_LET_GO);
        holder_wait(h, HOLDER_DONE);
        apr_thread_join(&rv, h->thread);
        h->thread = NULL;
    }
    return CHECK(!h->timed_out, "a call on the non-blocking handle waited "
                 "for the mutex (held %d s)",
                 (int)apr_time_sec(HOLDER_MAX));
}

static int no_callback_calls;

static int count_callback(void *baton, apr_uint32_t slot,
                          apr_uint32_t holder_gen, const sse_event_t *ev)
{
    (void)baton;
    (void)slot;
    (void)holder_gen;
    (void)ev;
    no_callback_calls++;
    return 0;
}

UNIT_TEST(test_nonblocking_handle_is_ebusy_while_another_holds_the_mutex)
{
    fx_t fx;
    sse_registry_t *parent = NULL;
    sse_hold_t ha, hb, h;
    sse_event_t evs[4];
    sse_stats_t st;
    holder_t holder;
    const char *a, *b;
    char *js = NULL;
    apr_uint32_t ended = 4242;
    apr_uint64_t head, seqs[1], mfrom = 7, mto = 7;
    apr_int64_t later = 1 + HOUR_MS;
    json_t *all;
    int removed = -1, delivered = -1, created = -1, n = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "b", PID_B, 1, "news", &hb))) {
        return;
    }
    sse_registry_release(fx.reg, &hb, hb.cursor, 1);   /* idle */
    REQUIRE_RV(APR_SUCCESS, sse_registry_attach(fx.pool, fx.mem, &fx.sz,
                                                fx.lock, &parent),
               "the parent's handle on the same memory and mutex");
    sse_registry_set_nonblocking(parent);
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(parent, a),
             "a non-blocking handle works while the mutex is free");
    head = sse_registry_head(fx.reg);

    if (!holder_start(&holder, fx.lock, fx.pool)) {
        return;
    }
    /* the parent never waits: every call fails at once, changing nothing */
    CHECK_RV(APR_EBUSY, sse_registry_child_gone(parent, PID_A, later),
             "child_gone");
    CHECK_RV(APR_EBUSY, sse_registry_cleanup(parent, later, HOUR_MS,
                                             &removed), "cleanup");
    CHECK_INT(0, removed, "cleanup removed nothing");
    CHECK_RV(APR_EBUSY, sse_registry_notify_key(parent, "news", later,
                                                &delivered), "notify");
    CHECK_INT(0, delivered, "notify delivered nothing");
    CHECK_RV(APR_EBUSY, sse_registry_notify_completion(parent, b, "t", later,
                                                       &delivered),
             "notify-completions");
    CHECK_INT(0, delivered, "notify-completions delivered nothing");
    CHECK_RV(APR_EBUSY, sse_registry_lookup(parent, a), "lookup");
    CHECK_RV(APR_EBUSY, sse_registry_listen(parent, a, "k", later),
             "listen");
    CHECK_RV(APR_EBUSY, sse_registry_connect(parent, fx_id(&fx, "c"), PID_C,
                                             NULL, later, NULL, &h, &created),
             "connect");
    CHECK_INT(0, created, "connect created nothing");
    CHECK_RV(APR_EBUSY, sse_registry_unregister(parent, a, later, &ended),
             "unregister");
    CHECK_INT(0, ended, "unregister ended nothing");
    CHECK_RV(APR_EBUSY, sse_registry_clear(parent, later, &removed),
             "clear");
    CHECK_INT(0, removed, "clear removed nothing");
    CHECK_RV(APR_EBUSY, sse_registry_json(parent, fx.pool, &js), "json");
    CHECK_RV(APR_EBUSY, sse_registry_read(parent, &ha, ha.cursor, evs, 4,
                                          &n), "read");
    CHECK_INT(0, n, "read copied nothing");
    CHECK_RV(APR_EBUSY, sse_registry_ack(parent, &ha, ha.cursor, 0, later,
                                         &mfrom, &mto), "ack");
    CHECK(mfrom == 0 && mto == 0, "ack reported no missed range");
    sse_registry_release(parent, &ha, ha.cursor, later);  /* skips */
    seqs[0] = head - 1;
    n = 1;
    sse_registry_fetch(parent, &ha, seqs, evs, &n);
    CHECK_INT(0, n, "fetch copied nothing");
    no_callback_calls = 0;
    sse_registry_route(parent, 1, head, PID_A, count_callback, NULL);
    CHECK_INT(0, no_callback_calls, "route called nothing back");
    sse_registry_stats(parent, &st);
    CHECK_INT(0, st.listeners, "stats are zeroes, not read");
    CHECK_INT(head, sse_registry_head(parent), "nothing was published");
    holder_stop(&holder);

    /* nothing changed */
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(2, st.listeners, "two listeners");
    CHECK_INT(1, st.connected, "a is still connected");
    CHECK_INT(head, sse_registry_head(fx.reg), "nothing was published");
    all = fx_json(&fx);
    CHECK_INT(2, json_object_size(all), "a and b");
    CHECK(fx_connected(fx_listener(all, a)) == 1,
          "the skipped release left a's stream alone");
    CHECK_INT(1, fx_int(fx_listener(all, a), "last-activity"),
              "a's activity untouched");
    CHECK_INT(0, json_array_size(json_object_get(fx_listener(all, a),
                                                 "listenKeys")),
              "no key added");
    json_decref(all);
    CHECK_RV(APR_SUCCESS, fx_ack(&fx, &ha, ha.cursor, 0, 2),
             "a's stream still holds its listener");

    /* the mutex is free again: the same calls succeed */
    CHECK_RV(APR_SUCCESS, sse_registry_notify_key(parent, "news", later,
                                                  &delivered), "notify");
    CHECK_INT(1, delivered, "b holds news");
    CHECK_INT(head + 1, sse_registry_head(fx.reg), "one entry");
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(parent, PID_A, later),
             "child_gone");
    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(parent, later, HOUR_MS,
                                               &removed), "cleanup");
    CHECK_INT(1, removed, "b, idle for an hour; not a, whose child just "
              "died");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.listeners, "a is left");
    CHECK_INT(0, st.connected, "without a stream");
}
