/* sse_registry: streams: routing to processes, takeover, resume, read and
 * ack, the sequence. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

UNIT_TEST(test_route_calls_back_only_for_streams_of_that_pid)
{
    fx_t fx;
    sse_hold_t ha, hb, hc;
    fx_routed_t r;
    const char *a, *b, *c;
    apr_uint64_t from, to;
    int i, delivered;

    if (!fx_open(&fx, 8, 32, 4)
        || !(a = fx_tab(&fx, "u", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "u", PID_B, 1, NULL, &hb))
        || !(c = fx_tab(&fx, "u", PID_C, 1, NULL, &hc))) {
        return;
    }
    sse_registry_release(fx.reg, &hc, hc.cursor, 2);
    sse_registry_listen(fx.reg, a, "news", 3);
    sse_registry_listen(fx.reg, b, "news", 3);
    sse_registry_listen(fx.reg, c, "news", 3);
    from = sse_registry_head(fx.reg);
    CHECK_INT(3, fx_notify(&fx, "news", 4), "three holders");
    sse_registry_notify_completion(fx.reg, a, "t", 5, &delivered);
    CHECK_INT(3, delivered, "three tabs");
    to = sse_registry_head(fx.reg);
    CHECK_INT(2, to - from, "one key event and one completion entry for the "
              "three tabs");

    CHECK_INT(0, fx_route(&fx, from, to, PID_A, &r), "nothing overwritten");
    CHECK_INT(2, r.n, "pid A holds a's stream: the key event and its "
              "completion");
    for (i = 0; i < r.n && i < 2; i++) {
        CHECK(r.call[i].slot == ha.slot && r.call[i].holder_gen ==
              ha.holder_gen, "call %d is for a's stream", i);
        CHECK_INT(from + (apr_uint64_t)i, r.call[i].seq, "call %d in order",
                  i);
    }
    if (r.n == 2) {
        CHECK_INT(SSE_EV_KEY, r.call[0].kind, "the key event");
        CHECK_INT(SSE_EV_NAME, r.call[1].kind, "then the completion");
    }
    fx_route(&fx, from, to, PID_B, &r);
    CHECK_INT(2, r.n, "pid B holds b's stream");
    for (i = 0; i < r.n && i < 2; i++) {
        CHECK(r.call[i].slot == hb.slot && r.call[i].holder_gen ==
              hb.holder_gen, "call %d is for b's stream", i);
    }
    fx_route(&fx, from, to, PID_C, &r);
    CHECK_INT(0, r.n, "c has no stream: nothing to wake in pid C");
    fx_route(&fx, from, to, 4242, &r);
    CHECK_INT(0, r.n, "a pid without streams");
}

UNIT_TEST(test_route_calls_back_once_per_tab_of_the_name_held_by_the_pid)
{
    fx_t fx;
    sse_hold_t h[6], h1b;
    fx_routed_t r;
    /* u: two tabs in pid A (one taken over), one in pid B, one away;
     * u2 and v in pid A are other names */
    const char *names[6] = {"u", "u", "u", "u", "u2", "v"};
    const apr_uint32_t pids[6] = {PID_A, PID_A, PID_B, PID_A, PID_A, PID_A};
    const char *ids[6];
    apr_uint64_t from;
    int i, seen[2] = {0, 0};

    if (!fx_open(&fx, 8, 32, 4)) {
        return;
    }
    for (i = 0; i < 6; i++) {
        ids[i] = fx_id(&fx, names[i]);
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], pids[i], 1, &h[i]),
                   "connect %s", ids[i]);
    }
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[1], PID_A, 2, &h1b),
               "the second tab's stream is taken over in the same pid");
    sse_registry_release(fx.reg, &h[3], h[3].cursor, 2);
    from = sse_registry_head(fx.reg);
    CHECK_INT(4, fx_complete(&fx, ids[0], "t", 3), "u has four tabs");
    CHECK_INT(from + 1, sse_registry_head(fx.reg), "one entry");

    CHECK_INT(0, fx_route(&fx, from, from + 1, PID_A, &r),
              "nothing overwritten");
    if (CHECK_INT(2, r.n, "pid A: the connected tabs of u it holds, once "
                  "each")) {
        for (i = 0; i < 2; i++) {
            CHECK_INT(SSE_EV_NAME, r.call[i].kind, "a completion");
            CHECK_INT(from, r.call[i].seq, "the one entry");
            if (r.call[i].slot == h[0].slot) {
                seen[0]++;
                CHECK_INT(h[0].holder_gen, r.call[i].holder_gen,
                          "the first tab's stream");
            }
            else if (r.call[i].slot == h1b.slot) {
                seen[1]++;
                CHECK_INT(h1b.holder_gen, r.call[i].holder_gen,
                          "the second tab's newer stream, not the old one");
            }
        }
        CHECK(seen[0] == 1 && seen[1] == 1, "one call for each of the two "
              "tabs (got %d and %d)", seen[0], seen[1]);
    }
    fx_route(&fx, from, from + 1, PID_B, &r);
    if (CHECK_INT(1, r.n, "pid B: its one tab of u")) {
        CHECK(r.call[0].slot == h[2].slot
                  && r.call[0].holder_gen == h[2].holder_gen,
              "the third tab's stream");
    }
    fx_route(&fx, from, from + 1, PID_C, &r);
    CHECK_INT(0, r.n, "pid C holds nothing");
}

UNIT_TEST(test_route_passes_the_current_holder_gen)
{
    fx_t fx;
    sse_hold_t h1, h2;
    fx_routed_t r;
    const char *a;
    apr_uint64_t from;

    if (!fx_open(&fx, 4, 16, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h1))) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 2, &h2), "again, same "
               "pid");
    from = sse_registry_head(fx.reg);
    fx_notify(&fx, "news", 3);
    fx_route(&fx, from, sse_registry_head(fx.reg), PID_A, &r);
    if (CHECK_INT(1, r.n, "one stream holds a")) {
        CHECK_INT(h2.holder_gen, r.call[0].holder_gen,
                  "the event is for the newer stream only");
    }
}

UNIT_TEST(test_route_counts_entries_already_overwritten)
{
    fx_t fx;
    sse_hold_t h;
    fx_routed_t r;
    const char *a;
    apr_uint64_t from;
    int i;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    from = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        fx_notify(&fx, "news", 2 + i);
    }
    CHECK_INT(12, fx_route(&fx, from, sse_registry_head(fx.reg), PID_A, &r),
              "20 events through a ring of 8: 12 lost");
    CHECK_INT(8, r.n, "the 8 still there are routed");
    for (i = 1; i < r.n && i < 8; i++) {
        CHECK(r.call[i].seq == r.call[i - 1].seq + 1, "in order");
    }
}

UNIT_TEST(test_second_connect_takes_over_and_ends_the_first_stream)
{
    fx_t fx;
    sse_hold_t h1, h2;
    sse_event_t evs[64];
    sse_stats_t st;
    fx_routed_t r;
    apr_uint32_t pids[8];
    const char *a;
    apr_uint64_t from;
    apr_status_t rv;
    json_t *all;
    int created = -1;

    if (!fx_open(&fx, 4, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h1))) {
        return;
    }
    from = sse_registry_head(fx.reg);
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_B, NULL, 2,
                                                 NULL, &h2, &created),
               "second, from another process");
    CHECK_INT(0, created, "the same listener");
    CHECK_INT(h1.slot, h2.slot, "the same slot");
    CHECK_INT(h1.holder_gen + 1, h2.holder_gen, "holder_gen bumped");
    CHECK_INT(from + 1, sse_registry_head(fx.reg), "one end entry");
    fx_route(&fx, from, sse_registry_head(fx.reg), PID_A, &r);
    if (CHECK_INT(1, r.n, "pid A is told")) {
        CHECK_INT(SSE_EV_END_SLOT, r.call[0].kind, "to end a stream");
        CHECK_INT(h1.slot, r.call[0].slot, "of that slot");
        CHECK_INT(h1.holder_gen, r.call[0].holder_gen,
                  "the old stream, not the new one");
    }
    fx_read(&fx, &h1, h1.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "the old stream reads EOF");
    CHECK_RV(APR_EOF, fx_ack(&fx, &h1, h1.cursor, 0, 3),
             "the old stream's ack says EOF");
    fx_read(&fx, &h2, h2.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "the new stream reads");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.connected, "one stream");
    CHECK_INT(1, st.listeners, "one listener");
    if (CHECK_INT(1, fx_holders(&fx, 0, pids, 8), "one holder pid")) {
        CHECK_INT(PID_B, pids[0], "pid B holds it now");
    }

    sse_registry_release(fx.reg, &h1, h1.cursor, 4);
    all = fx_json(&fx);
    CHECK(fx_connected(fx_listener(all, a)) == 1,
          "the old stream's release leaves the new one connected");
    json_decref(all);
    sse_registry_release(fx.reg, &h2, h2.cursor, 5);
    all = fx_json(&fx);
    CHECK(fx_connected(fx_listener(all, a)) == 0,
          "the new stream's release disconnects");
    json_decref(all);
}

UNIT_TEST(test_takeover_resumes_where_the_first_stream_acked)
{
    fx_t fx;
    sse_hold_t h1, h2;
    sse_event_t evs[64];
    const char *a;
    apr_uint64_t e1;
    apr_status_t rv;
    int n;

    if (!fx_open(&fx, 4, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h1))) {
        return;
    }
    fx_notify(&fx, "news", 2);
    e1 = sse_registry_head(fx.reg) - 1;
    fx_notify(&fx, "news", 3);
    CHECK_RV(APR_SUCCESS, fx_ack(&fx, &h1, e1, 1, 4),
             "the first stream delivered e1 only");
    fx_connect(&fx, a, PID_B, 5, &h2);
    CHECK_INT(e1, h2.cursor, "the new stream starts after e1");
    n = fx_read(&fx, &h2, h2.cursor, evs, &rv);
    if (CHECK_INT(1, n, "e2 is replayed")) {
        CHECK_INT(e1 + 1, evs[0].seq, "e2");
    }
}

UNIT_TEST(test_reconnect_without_last_event_id_replays_what_was_queued)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a;
    apr_uint64_t s1, first;
    apr_status_t rv;
    int n, i, delivered;

    if (!fx_open(&fx, 4, 32, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    fx_notify(&fx, "news", 2);
    s1 = sse_registry_head(fx.reg) - 1;
    REQUIRE(fx_read(&fx, &h, h.cursor, evs, &rv) == 1, "the live event");
    fx_ack(&fx, &h, s1, 1, 3);
    sse_registry_release(fx.reg, &h, s1, 4);

    first = sse_registry_head(fx.reg);
    fx_notify(&fx, "news", 5);
    sse_registry_notify_completion(fx.reg, a, "t", 6, &delivered);
    fx_notify(&fx, "news", 7);

    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 8, &h), "back");
    CHECK_INT(s1, h.cursor, "it resumes after the last delivered event");
    CHECK(h.missed_from == 0 && h.missed_to == 0, "nothing was lost");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read");
    if (CHECK_INT(3, n, "the three events queued while away")) {
        for (i = 0; i < 3; i++) {
            CHECK_INT(first + (apr_uint64_t)i, evs[i].seq, "event %d", i);
        }
        CHECK_INT(SSE_EV_KEY, evs[0].kind, "a key event first");
        CHECK_COMPLETION(&evs[1], a, 6, "t");   /* in the middle */
        CHECK_INT(SSE_EV_KEY, evs[2].kind, "a key event last");
    }
}

UNIT_TEST(test_reconnect_with_last_event_id_replays_exactly_later_events)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    apr_uint64_t s[6], last;
    const char *a;
    apr_status_t rv;
    int i, n, created;

    if (!fx_open(&fx, 4, 32, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    for (i = 0; i < 6; i++) {
        fx_notify(&fx, "news", 2);
        s[i] = sse_registry_head(fx.reg) - 1;
    }
    fx_ack(&fx, &h, s[5], 6, 3);
    sse_registry_release(fx.reg, &h, s[5], 3);

    last = s[2];
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 4,
                                                 &last, &h, &created),
               "Last-Event-ID: s3");
    CHECK_INT(s[2], h.cursor, "the client's resume point wins");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    if (CHECK_INT(3, n, "exactly the events after s3")) {
        for (i = 0; i < 3; i++) {
            CHECK_INT(s[3 + i], evs[i].seq, "event %d", i);
        }
    }

    last = s[0] - 1;
    fx_connect(&fx, a, PID_A, 5, &h);
    sse_registry_release(fx.reg, &h, s[5], 5);
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 6,
                                                 &last, &h, &created),
               "Last-Event-ID before every event");
    CHECK_INT(6, fx_read(&fx, &h, h.cursor, evs, &rv), "all six again");

    sse_registry_release(fx.reg, &h, s[5], 7);
    last = sse_registry_head(fx.reg) + 1000;
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 7,
                                                 &last, &h, &created),
               "Last-Event-ID from the future");
    CHECK_INT(sse_registry_head(fx.reg) - 1, h.cursor, "clamped to the head");
    CHECK_INT(0, fx_read(&fx, &h, h.cursor, evs, &rv), "nothing to replay");
}

UNIT_TEST(test_read_returns_at_most_max_in_order_and_continues)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[4];
    const char *a;
    apr_uint64_t after, first;
    int n, total = 0, rounds = 0, i;

    if (!fx_open(&fx, 4, 32, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    first = sse_registry_head(fx.reg);
    fx_notify_n(&fx, "news", 10, 2);
    after = h.cursor;
    do {
        REQUIRE_RV(APR_SUCCESS, sse_registry_read(fx.reg, &h, after, evs, 3,
                                                  &n), "read");
        CHECK(n <= 3, "at most max");
        for (i = 0; i < n; i++) {
            CHECK_INT(first + (apr_uint64_t)total, evs[i].seq,
                      "event %d in order", total);
            total++;
        }
        after = n ? evs[n - 1].seq : after;
    } while (n > 0 && ++rounds < 10);
    CHECK_INT(10, total, "every event once");
}

UNIT_TEST(test_read_and_ack_after_release_are_eof)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a;
    apr_status_t rv;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h))) {
        return;
    }
    sse_registry_release(fx.reg, &h, h.cursor, 2);
    fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "a released stream holds nothing");
    CHECK_RV(APR_EOF, fx_ack(&fx, &h, h.cursor, 0, 3), "ack");
}

UNIT_TEST(test_ack_counts_delivered_events)
{
    fx_t fx;
    sse_hold_t h;
    sse_stats_t st;
    const char *a;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    fx_notify(&fx, "news", 2);
    fx_notify(&fx, "news", 2);
    CHECK_RV(APR_SUCCESS, fx_ack(&fx, &h, h.cursor + 2, 2, 3),
             "ack");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(2, st.published, "published");
    CHECK_INT(2, st.delivered, "delivered");
}

UNIT_TEST(test_fetch_copies_only_entries_still_in_the_ring)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[8];
    apr_uint64_t seqs[4], first;
    const char *a;
    int n;

    if (!fx_open(&fx, 4, 4, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    first = sse_registry_head(fx.reg);
    fx_notify_n(&fx, "news", 6, 2);
    seqs[0] = first;            /* overwritten */
    seqs[1] = first + 2;
    seqs[2] = first + 4;
    seqs[3] = first + 6;        /* not yet published */
    n = 4;
    sse_registry_fetch(fx.reg, &h, seqs, evs, &n);
    if (CHECK_INT(2, n, "two of the four are in the ring")) {
        CHECK_INT(first + 2, evs[0].seq, "the first kept");
        CHECK_INT(first + 4, evs[1].seq, "the second kept");
    }
}

UNIT_TEST(test_sequence_numbers_increase_across_every_kind_of_event)
{
    fx_t fx;
    sse_hold_t h, h2, h3;
    const char *a, *a2, *a3;
    apr_uint64_t head;
    apr_uint32_t ended;
    int delivered = -1, removed;

    if (!fx_open(&fx, 4, 32, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))
        || !(a2 = fx_tab(&fx, "a", PID_A, 1, "news", &h2))
        || !(a3 = fx_tab(&fx, "a", PID_B, 1, NULL, &h3))) {
        return;
    }
    head = sse_registry_head(fx.reg);
    fx_notify(&fx, "news", 2);
    CHECK_INT(head + 1, sse_registry_head(fx.reg), "a key event (2 holders)");
    sse_registry_notify_completion(fx.reg, a, "t", 3, &delivered);
    CHECK_INT(3, delivered, "three tabs");
    CHECK_INT(head + 2, sse_registry_head(fx.reg),
              "a completion to three tabs is one entry");
    fx_connect(&fx, a, PID_A, 4, &h);
    CHECK_INT(head + 3, sse_registry_head(fx.reg), "a takeover's end");
    sse_registry_unregister(fx.reg, a, 0, &ended);
    CHECK_INT(head + 4, sse_registry_head(fx.reg), "an unregister's end");
    sse_registry_clear(fx.reg, 0, &removed);
    CHECK_INT(head + 5, sse_registry_head(fx.reg), "a clear's end-all");
}

UNIT_TEST(test_fetch_for_an_ended_stream_copies_nothing)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[4];
    apr_uint64_t seq;
    const char *a;
    int n = 1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    fx_notify(&fx, "news", 2);
    seq = sse_registry_head(fx.reg) - 1;
    sse_registry_release(fx.reg, &h, h.cursor, 3);
    sse_registry_fetch(fx.reg, &h, &seq, evs, &n);
    CHECK_INT(0, n, "a released stream fetches nothing");
}

/* ---- what a hold says about the stream it replaced and its start ------ */

UNIT_TEST(test_connect_tells_the_pid_of_the_stream_it_took_over)
{
    fx_t fx;
    sse_hold_t h;
    const char *a;

    if (!fx_open(&fx, 4, 16, 4)) {
        return;
    }
    a = fx_id(&fx, "a");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 1, &h), "new");
    CHECK_INT(0, h.prev_pid, "a new listener takes over no stream");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 2, &h), "from B");
    CHECK_INT(PID_A, h.prev_pid, "B took over A's stream");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 3, &h), "again B");
    CHECK_INT(PID_B, h.prev_pid, "a stream of the same process");
    sse_registry_release(fx.reg, &h, h.cursor, 4);
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_C, 5, &h), "from C");
    CHECK_INT(0, h.prev_pid, "the listener had no stream after a release");
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_C, 6),
             "C dies");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 7, &h), "from A");
    CHECK_INT(0, h.prev_pid, "nor after its process died");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "b"), PID_A, 8, &h),
               "another listener from A");
    CHECK_INT(0, h.prev_pid, "A's stream of a is not b's to take over");
}

UNIT_TEST(test_hold_start_is_the_head_at_connect)
{
    fx_t fx;
    sse_hold_t h, h2, hb;
    fx_routed_t r;
    const char *a, *b;
    apr_uint64_t head;
    int removed;

    if (!fx_open(&fx, 4, 32, 4)
        || !(b = fx_tab(&fx, "b", PID_B, 1, "news", &hb))) {
        return;
    }
    a = fx_id(&fx, "a");
    fx_notify(&fx, "news", 2);
    fx_notify(&fx, "news", 3);

    head = sse_registry_head(fx.reg);
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 4, &h), "a, new");
    CHECK_INT(head, h.start, "a new listener's stream starts at the head");
    CHECK_INT(head, sse_registry_head(fx.reg), "and publishes nothing");
    sse_registry_listen(fx.reg, a, "news", 4);
    sse_registry_release(fx.reg, &h, h.cursor, 5);
    fx_notify(&fx, "news", 6);                      /* queued for a */

    head = sse_registry_head(fx.reg);
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 7, &h), "a, back");
    CHECK_INT(head, h.start, "a resumed stream starts at the head too");
    CHECK(h.cursor < h.start, "while it resumes from before it (cursor "
          "%llu, start %llu)", (unsigned long long)h.cursor,
          (unsigned long long)h.start);

    /* a takeover publishes the end of the old stream while it connects:
     * the end names the old holder_gen, and start is no later than it */
    head = sse_registry_head(fx.reg);
    memset(&h2, 0xa5, sizeof(h2));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 8, &h2), "takeover");
    CHECK_INT(head + 1, sse_registry_head(fx.reg), "one end entry");
    CHECK(h2.start >= head && h2.start <= head + 1, "a takeover starts at "
          "the head (%llu) or after its own end: %llu",
          (unsigned long long)head, (unsigned long long)h2.start);
    fx_route(&fx, head, head + 1, PID_A, &r);
    if (CHECK_INT(1, r.n, "the end")) {
        CHECK_INT(SSE_EV_END_SLOT, r.call[0].kind, "ends a slot's stream");
        CHECK_INT(h.holder_gen, r.call[0].holder_gen, "the old one");
        CHECK(r.call[0].holder_gen != h2.holder_gen, "not the new one");
    }

    /* a clear's end-all before a stream is not for it; one after is */
    head = sse_registry_head(fx.reg);
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 0, &removed), "clear");
    memset(&h, 0xa5, sizeof(h));
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "c"), PID_C, 9, &h),
               "c, after the clear");
    CHECK_INT(head + 1, h.start, "it starts after the end-all at %llu",
              (unsigned long long)head);
    fx_route(&fx, head, sse_registry_head(fx.reg), PID_C, &r);
    if (CHECK_INT(1, r.n, "the end-all")) {
        CHECK_INT(SSE_EV_END_ALL, r.call[0].kind, "end all");
        CHECK(r.call[0].seq < h.start, "published before the stream");
    }
    head = sse_registry_head(fx.reg);
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 0, &removed), "again");
    fx_route(&fx, head, sse_registry_head(fx.reg), PID_C, &r);
    if (CHECK_INT(1, r.n, "the second end-all")) {
        CHECK(r.call[0].seq >= h.start, "published after it: for it");
    }
}

UNIT_TEST(test_the_stream_bound_refuses_a_new_stream_not_a_takeover)
{
    fx_t fx;
    sse_hold_t h1, h2, h3, again;
    const char *a, *b, *c;

    if (!fx_open(&fx, 8, 32, 4)) {
        return;
    }
    sse_registry_set_stream_bound(fx.reg, 2);
    a = fx_id(&fx, "a");
    b = fx_id(&fx, "b");
    c = fx_id(&fx, "c");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 1, &h1), "first");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, b, PID_B, 1, &h2), "second");
    CHECK_RV(SSE_ESTREAMS, fx_connect(&fx, c, PID_A, 1, &h3),
             "a third stream is over the bound");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, c),
             "the refusal made no listener");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 2, &again),
             "taking over an open stream is not one more");
    sse_registry_release(fx.reg, &h2, h2.cursor, 3);
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, c, PID_A, 3, &h3),
             "a stream that ended made room");
    sse_registry_set_stream_bound(fx.reg, 0);
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, b, PID_A, 4, &h2),
             "0: no bound");
    fx_check_counters(__FILE__, __LINE__, fx.reg);
}
