/* sse_registry: removal (unregister, clear, cleanup, retired ids), dead
 * children, and the limits of the tables. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

UNIT_TEST(test_notify_key_stops_reaching_a_removed_listener)
{
    fx_t fx;
    sse_hold_t ha;
    apr_uint32_t ended;
    const char *a;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))) {
        return;
    }
    sse_registry_listen(fx.reg, a, "news", 2);
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 0, &ended),
             "unregister");
    CHECK_INT(0, fx_notify(&fx, "news", 3), "its key went with it");
}

UNIT_TEST(test_unregister_removes_the_listener_and_ends_its_stream)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    sse_stats_t st;
    fx_routed_t r;
    apr_uint32_t pids[4], ended = 0;
    const char *a;
    apr_uint64_t from;
    apr_status_t rv;
    int n;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h))) {
        return;
    }
    from = sse_registry_head(fx.reg);
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 0, &ended),
             "unregister");
    CHECK_INT(PID_A, ended, "the stream of pid A ended");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, a), "gone");
    ended = 4242;
    CHECK_RV(APR_ENOENT, sse_registry_unregister(fx.reg, a, 0, &ended),
             "twice");
    CHECK_INT(0, ended, "an unknown id ends no stream");
    fx_route(&fx, from, sse_registry_head(fx.reg), PID_A, &r);
    if (CHECK_INT(1, r.n, "its stream is told")) {
        CHECK_INT(SSE_EV_END_SLOT, r.call[0].kind, "to end");
        CHECK_INT(h.slot, r.call[0].slot, "that slot");
        CHECK_INT(h.holder_gen, r.call[0].holder_gen, "that stream");
    }
    fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "the stream's next read ends it");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(0, st.listeners, "no listener");
    CHECK_INT(0, st.connected, "no stream");
    CHECK_INT(0, fx_holders(&fx, 0, pids, 4), "no holder");
    n = fx_holders(&fx, 1, pids, 4);
    if (CHECK_INT(1, n, "A stays in the child table, to be woken")) {
        CHECK_INT(PID_A, pids[0], "pid A");
    }
}

UNIT_TEST(test_clear_removes_every_listener_and_ends_every_stream)
{
    fx_t fx;
    sse_hold_t h[3];
    sse_event_t evs[64];
    sse_stats_t st;
    fx_routed_t r;
    apr_uint32_t pids[4];
    const char *ids[3];
    char *js = NULL;
    apr_uint64_t from;
    apr_status_t rv;
    int i, removed = -1;

    if (!fx_open(&fx, 4, 8, 4)) {
        return;
    }
    for (i = 0; i < 3; i++) {
        ids[i] = fx_id(&fx, "u");
        fx_connect(&fx, ids[i], PID_A + (apr_uint32_t)i, 1, &h[i]);
    }
    sse_registry_release(fx.reg, &h[2], h[2].cursor, 2);
    from = sse_registry_head(fx.reg);
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 0, &removed), "clear");
    CHECK_INT(3, removed, "three listeners");
    REQUIRE_RV(APR_SUCCESS, sse_registry_json(fx.reg, fx.pool, &js), "json");
    CHECK_STR("{}", js, "list-registrants is empty");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(0, st.listeners, "no listener");
    CHECK_INT(0, st.connected, "no stream");
    CHECK_INT(0, fx_holders(&fx, 0, pids, 4), "no holder");
    CHECK_INT(3, fx_holders(&fx, 1, pids, 4),
              "A, B and C are still in the child table, to be woken");
    fx_route(&fx, from, sse_registry_head(fx.reg), PID_B, &r);
    if (CHECK_INT(1, r.n, "one entry ends every stream")) {
        CHECK_INT(SSE_EV_END_ALL, r.call[0].kind, "end all");
        CHECK_INT(SSE_SLOT_ALL, r.call[0].slot, "every slot");
    }
    for (i = 0; i < 3; i++) {
        CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, ids[i]), "%d", i);
        fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        CHECK_RV(APR_EOF, rv, "stream %d", i);
    }
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "new"), PID_A, 3, &h[0]),
             "the table is usable again");
}

UNIT_TEST(test_cleanup_removes_only_dormant_listeners_without_stream)
{
    fx_t fx;
    sse_hold_t h;
    const char *conn, *idle, *recent, *busy;
    int removed = -1;

    if (!fx_open(&fx, 8, 8, 2)
        /* conn is never released */
        || !(conn = fx_tab(&fx, "connected", PID_A, 0, NULL, &h))
        || !(idle = fx_tab(&fx, "idle", PID_A, 0, NULL, &h))) {
        return;
    }
    recent = fx_id(&fx, "recent");
    busy = fx_id(&fx, "busy");
    sse_registry_release(fx.reg, &h, h.cursor, 1000);
    fx_connect(&fx, recent, PID_A, 0, &h);
    sse_registry_release(fx.reg, &h, h.cursor, 5000);
    fx_connect(&fx, busy, PID_A, 0, &h);
    sse_registry_release(fx.reg, &h, h.cursor, 0);
    sse_registry_listen(fx.reg, busy, "news", 2000);     /* activity */

    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, 1000 + HOUR_MS - 1,
                                               HOUR_MS, &removed),
             "cleanup a millisecond early");
    CHECK_INT(0, removed, "nobody is dormant yet");
    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, 1000 + HOUR_MS,
                                               HOUR_MS, &removed), "cleanup");
    CHECK_INT(1, removed, "only the listener idle for the whole timeout");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, idle), "idle removed");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, busy),
             "listen counts as activity");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, recent), "recent");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, conn), "connected");

    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, 1000LL * HOUR_MS,
                                               HOUR_MS, &removed),
             "cleanup a thousand hours later");
    CHECK_INT(2, removed, "busy and recent");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, conn),
             "a connected listener is never dropped for age");
}

UNIT_TEST(test_child_gone_makes_its_listeners_resumable)
{
    fx_t fx;
    sse_hold_t ha, hb, hc, h;
    sse_event_t evs[64];
    sse_stats_t st;
    apr_uint32_t pids[8];
    const char *a, *b, *c;
    apr_uint64_t head;
    apr_status_t rv;
    json_t *all;
    int created = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &ha))
        || !(b = fx_tab(&fx, "b", PID_A, 1, NULL, &hb))
        || !(c = fx_tab(&fx, "c", PID_B, 1, NULL, &hc))) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_A, 2),
             "child A is gone");
    all = fx_json(&fx);
    CHECK(fx_connected(fx_listener(all, a)) == 0, "a's child died");
    CHECK(fx_connected(fx_listener(all, b)) == 0, "b's child died");
    CHECK(fx_connected(fx_listener(all, c)) == 1, "c's child lives");
    CHECK_INT(3, json_object_size(all), "no listener lost");
    json_decref(all);
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.connected, "one stream left");
    CHECK_INT(3, st.listeners, "three listeners");
    if (CHECK_INT(1, fx_holders(&fx, 0, pids, 8), "holders")) {
        CHECK_INT(PID_B, pids[0], "only pid B holds streams");
    }
    if (CHECK_INT(1, fx_holders(&fx, 1, pids, 8), "child table")) {
        CHECK_INT(PID_B, pids[0], "A's entry was dropped");
    }
    fx_read(&fx, &ha, ha.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "the dead child's stream holds nothing");

    fx_notify(&fx, "news", 2);                  /* queued for a */
    head = sse_registry_head(fx.reg);
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_C, NULL, 3,
                                                 NULL, &h, &created),
               "a resumes in another child");
    CHECK_INT(0, created, "the same listener");
    CHECK_INT(head, sse_registry_head(fx.reg), "no stream to end");
    CHECK_INT(1, fx_read(&fx, &h, h.cursor, evs, &rv),
              "what came while it was gone");

    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, 4242, 4),
             "an unknown pid");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(2, st.connected, "an unknown pid changes nothing");
}

UNIT_TEST(test_holders_lists_each_pid_with_streams_once)
{
    fx_t fx;
    sse_hold_t h[3];
    apr_uint32_t pids[8], from;
    int i, n;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    CHECK_INT(0, fx_holders(&fx, 0, pids, 8), "none at first");
    CHECK_INT(0, fx_holders(&fx, 1, pids, 8), "an empty child table");
    fx_connect(&fx, fx_id(&fx, "a"), PID_A, 1, &h[0]);
    fx_connect(&fx, fx_id(&fx, "b"), PID_A, 1, &h[1]);
    fx_connect(&fx, fx_id(&fx, "c"), PID_B, 1, &h[2]);
    n = fx_holders(&fx, 0, pids, 8);
    if (CHECK_INT(2, n, "two pids")) {
        CHECK((pids[0] == PID_A && pids[1] == PID_B)
                  || (pids[0] == PID_B && pids[1] == PID_A),
              "A and B, once each: got %u, %u", pids[0], pids[1]);
    }
    from = 0;
    CHECK_INT(1, sse_registry_holders(fx.reg, 0, &from, pids, 1),
              "at most max");
    sse_registry_release(fx.reg, &h[0], h[0].cursor, 2);
    CHECK_INT(2, fx_holders(&fx, 0, pids, 8), "A still holds b");
    sse_registry_release(fx.reg, &h[1], h[1].cursor, 2);
    n = fx_holders(&fx, 0, pids, 8);
    if (CHECK_INT(1, n, "A holds nothing")) {
        CHECK_INT(PID_B, pids[0], "only B");
    }
    for (i = 0; i < 3; i++) {
        sse_registry_release(fx.reg, &h[i], h[i].cursor, 3);
    }
    CHECK_INT(0, fx_holders(&fx, 0, pids, 8), "none at the end");
}

UNIT_TEST(test_connect_is_eagain_when_the_child_table_is_full)
{
    fx_t fx;
    sse_hold_t ha, hb, hc;
    sse_event_t evs[64];
    sse_stats_t st;
    const char *a, *b, *c;
    apr_status_t rv;
    int created = -1;

    if (!fx_open(&fx, 8, 16, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "b", PID_B, 1, NULL, &hb))) {
        return;
    }
    c = fx_id(&fx, "c");
    CHECK_RV(APR_EAGAIN, sse_registry_connect(fx.reg, c, PID_C, NULL, 2, NULL,
                                              &hc, &created),
             "a third process with two child entries");
    CHECK_INT(0, created, "nothing created");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, c), "c not registered");
    CHECK_RV(APR_EAGAIN, sse_registry_connect(fx.reg, a, PID_C, NULL, 2, NULL,
                                              &hc, &created),
             "taking a over from a third process");
    fx_read(&fx, &ha, ha.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "a's stream was left alone");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(2, st.listeners, "two listeners");
    CHECK_INT(2, st.connected, "two streams");
    sse_registry_release(fx.reg, &hb, hb.cursor, 3);
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, c, PID_C, 4, &hc),
             "B's entry is free again");
}

UNIT_TEST(test_connect_is_enospc_when_every_slot_is_taken)
{
    fx_t fx;
    sse_hold_t h;
    sse_stats_t st;
    const char *ids[4], *extra;
    apr_uint32_t ended;
    int i, created = -1;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    for (i = 0; i < 4; i++) {
        ids[i] = fx_id(&fx, "u");
        CHECK_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A, 1, &h), "%d", i);
    }
    extra = fx_id(&fx, "u");
    CHECK_RV(APR_ENOSPC, sse_registry_connect(fx.reg, extra, PID_A, NULL, 2,
                                              NULL, &h, &created),
             "the fifth");
    CHECK_INT(0, created, "nothing created");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.rejected_full, "counted");
    CHECK_INT(4, st.listeners, "four");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, ids[0], PID_A, 3, &h),
             "a registered id still connects");
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, ids[1], 0, &ended),
             "free one");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, extra, PID_A, 4, &h),
             "the freed slot is reused");
}

UNIT_TEST(test_a_reused_slot_inherits_no_events_and_no_keys)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a, *b;
    json_t *all;
    apr_status_t rv;
    apr_uint32_t ended;
    int delivered;

    if (!fx_open(&fx, 1, 16, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    b = fx_id(&fx, "b");
    sse_registry_release(fx.reg, &h, h.cursor, 1);
    fx_notify(&fx, "news", 2);
    sse_registry_notify_completion(fx.reg, a, "t", 2, &delivered);
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 0, &ended),
             "remove a");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, b, PID_A, 3, &h),
               "b takes the only slot");
    CHECK_INT(0, fx_read(&fx, &h, 0, evs, &rv),
              "a's queued events are not b's, even from seq 0");
    all = fx_json(&fx);
    CHECK_INT(0, json_array_size(json_object_get(fx_listener(all, b),
                                                 "listenKeys")),
              "no keys of a");
    CHECK_INT(0, fx_int(fx_listener(all, b), "missed"), "no missed of a");
    json_decref(all);
    CHECK_INT(0, fx_notify(&fx, "news", 4), "news has no holder now");
}

/* ---- retired ids ------------------------------------------------------ */

UNIT_TEST(test_unregistered_id_is_refused_until_its_retirement_ends)
{
    fx_t fx;
    sse_hold_t h;
    sse_stats_t st;
    const char *a, *a2;
    apr_uint32_t ended;
    int created = -1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "alice", PID_A, 1000, NULL, &h))) {
        return;
    }
    a2 = fx_id(&fx, "alice");
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 5000, &ended),
             "disconnect-registrant, retired until 5000");
    CHECK_RV(APR_EEXIST, sse_registry_connect(fx.reg, a, PID_A, NULL, 4999,
                                              NULL, &h, &created),
             "the seed client reconnects: refused");
    CHECK_INT(0, created, "nothing created");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, a), "the listener "
             "stays gone");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(0, st.listeners, "no listener");
    CHECK_INT(0, st.rejected_full, "a retired id is not a full table");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a2, PID_A, 4999, &h),
             "another id of the same name is not retired");
    CHECK_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 5000,
                                               NULL, &h, &created),
             "once the retirement ends it may register again");
    CHECK_INT(1, created, "as a new listener");
}

UNIT_TEST(test_clear_retires_every_id)
{
    fx_t fx;
    sse_hold_t h;
    const char *ids[3];
    int i, removed = -1;

    if (!fx_open(&fx, 4, 8, 4)) {
        return;
    }
    for (i = 0; i < 3; i++) {
        ids[i] = fx_id(&fx, "u");
        fx_connect(&fx, ids[i], PID_A, 1, &h);
    }
    sse_registry_release(fx.reg, &h, h.cursor, 2);
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 100, &removed), "clear");
    for (i = 0; i < 3; i++) {
        CHECK_RV(APR_EEXIST, fx_connect(&fx, ids[i], PID_A, 99, &h),
                 "id %d is retired by clear", i);
        CHECK_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A, 100, &h),
                 "id %d after its retirement", i);
    }
}

UNIT_TEST(test_retired_ids_table_forgets_the_oldest_when_full)
{
    fx_t fx;
    sse_hold_t h;
    const char *ids[5];
    apr_uint32_t ended;
    int i;

    /* the table of retired ids has max_listeners entries */
    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    for (i = 0; i < 5; i++) {
        ids[i] = fx_id(&fx, "u");
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A, 1, &h), "%d",
                   i);
        CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, ids[i],
                                                      HOUR_MS, &ended),
                 "%d", i);
    }
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, ids[0], PID_A, 2, &h),
             "the oldest retirement was forgotten for the fifth");
    for (i = 1; i < 5; i++) {
        CHECK_RV(APR_EEXIST, fx_connect(&fx, ids[i], PID_A, 2, &h),
                 "retirement %d is still remembered", i);
    }
}

UNIT_TEST(test_retiring_an_id_again_extends_its_retirement)
{
    fx_t fx;
    sse_hold_t h;
    apr_uint32_t ended;
    const char *a;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h))) {
        return;
    }
    sse_registry_unregister(fx.reg, a, 10, &ended);
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 10, &h), "back at 10");
    sse_registry_unregister(fx.reg, a, 50, &ended);
    CHECK_RV(APR_EEXIST, fx_connect(&fx, a, PID_A, 20, &h),
             "the newer retirement counts, not the expired one");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 50, &h), "back at 50");
}

UNIT_TEST(test_cleanup_of_a_dormant_listener_does_not_retire_its_id)
{
    fx_t fx;
    sse_hold_t h;
    const char *a;
    int removed = -1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h))) {
        return;
    }
    sse_registry_release(fx.reg, &h, h.cursor, 1);
    sse_registry_cleanup(fx.reg, 1 + HOUR_MS, HOUR_MS, &removed);
    CHECK_INT(1, removed, "dormant");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 2 + HOUR_MS, &h),
             "a client back after a long absence registers again");
}

UNIT_TEST(test_unregister_tells_the_pid_whose_stream_it_ended)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b, *c, *d;
    apr_uint32_t ended;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &h))
        || !(b = fx_tab(&fx, "b", PID_A, 1, NULL, &h))) {
        return;
    }
    c = fx_id(&fx, "c");
    d = fx_id(&fx, "d");
    fx_connect(&fx, b, PID_B, 2, &h);                   /* takes over */
    fx_connect(&fx, c, PID_A, 1, &h);
    sse_registry_release(fx.reg, &h, h.cursor, 2);
    fx_connect(&fx, d, PID_C, 1, &h);
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_C, 2),
             "d's child dies");

    ended = 4242;
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 0, &ended), "a");
    CHECK_INT(PID_A, ended, "a connected: its holder's pid");
    ended = 4242;
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, b, 0, &ended), "b");
    CHECK_INT(PID_B, ended, "b taken over: the pid holding it now");
    ended = 4242;
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, c, 0, &ended), "c");
    CHECK_INT(0, ended, "c released: no stream to end");
    ended = 4242;
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, d, 0, &ended), "d");
    CHECK_INT(0, ended, "d's child died: no stream to end");
    ended = 4242;
    CHECK_RV(APR_ENOENT, sse_registry_unregister(fx.reg, a, 0, &ended),
             "a again");
    CHECK_INT(0, ended, "an unknown id: none");
}
