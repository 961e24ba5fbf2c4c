/* sse_registry: the event ring: wrap-around, missed events and how they
 * are told. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

static int colliding_keys(const char **k1, const char **k2);

/* A listener without stream that holds @a key, for the wrap tests. */
static int away_listener(fx_t *fx, const char *name, const char *key,
                         const char **id, sse_hold_t *h)
{
    if (!(*id = fx_tab(fx, name, PID_A, 1, key, h))) {
        return 0;
    }
    sse_registry_release(fx->reg, h, h->cursor, 1);
    return 1;
}

UNIT_TEST(test_ring_wrap_keeps_the_last_8_and_reports_the_12_lost)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    sse_stats_t st;
    const char *a;
    apr_uint64_t first;
    apr_status_t rv;
    int i, n;

    if (!fx_open(&fx, 4, 8, 2) || !away_listener(&fx, "a", "news", &a, &h)) {
        return;
    }
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        CHECK_INT(1, fx_notify(&fx, "news", 10 + i), "event %d queued", i);
    }
    CHECK_INT(12, fx_missed(&fx, a),
              "list-registrants counts the 12 events lost");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(12, st.missed, "stats count them too");

    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 100, &h), "back");
    CHECK_INT(first, h.missed_from, "the first lost seq");
    CHECK_INT(first + 11, h.missed_to, "the last lost seq");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read");
    if (CHECK_INT(8, n, "only the last 8 are still there")) {
        for (i = 0; i < 8; i++) {
            CHECK_INT(first + 12 + (apr_uint64_t)i, evs[i].seq,
                      "event %d in order", i);
            CHECK_MEM("\"notify^news\"", 13, evs[i].data, evs[i].len,
                      "payload %d", i);
        }
    }
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 101, &h), "again");
    CHECK(h.missed_from == 0 && h.missed_to == 0,
          "a lost range is told to one stream, once");
}

UNIT_TEST(test_ring_wrap_of_completions_counts_them_missed)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a;
    apr_uint64_t first;
    apr_status_t rv;
    int i, n, delivered;

    if (!fx_open(&fx, 4, 8, 2) || !away_listener(&fx, "a", NULL, &a, &h)) {
        return;
    }
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        sse_registry_notify_completion(fx.reg, a,
                                       apr_psprintf(fx.pool, "t%d", i),
                                       10 + i, &delivered);
        CHECK_INT(1, delivered, "completion %d queued", i);
    }
    CHECK_INT(first + 20, sse_registry_head(fx.reg), "one entry each");
    CHECK_INT(12, fx_missed(&fx, a), "12 completions lost");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 100, &h), "back");
    CHECK_INT(first, h.missed_from, "from");
    CHECK_INT(first + 11, h.missed_to, "to");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    if (CHECK_INT(8, n, "the last 8 completions")) {
        for (i = 0; i < 8; i++) {   /* the oldest kept is t12, then t19 */
            CHECK_INT(first + 12 + (apr_uint64_t)i, evs[i].seq, "in order");
            CHECK_COMPLETION(&evs[i], a, 22 + i,
                             apr_psprintf(fx.pool, "t%d", 12 + i));
        }
    }
}

UNIT_TEST(test_ring_wrap_of_completions_counts_them_against_each_tab_once)
{
    fx_t fx;
    sse_hold_t hl, ha, hs, hn, hv;
    sse_event_t evs[64];
    sse_stats_t st;
    const char *live, *away, *slow, *late, *other;
    apr_uint64_t first, from = 1, to = 1;
    apr_status_t rv;
    json_t *all;
    int i;

    /* u: a tab that keeps up, one away, one connected that never reads,
     * one that comes after the first 5; v: another name, away */
    if (!fx_open(&fx, 8, 8, 2) || !away_listener(&fx, "u", NULL, &away, &ha)
        || !away_listener(&fx, "v", NULL, &other, &hv)) {
        return;
    }
    live = fx_id(&fx, "u");
    slow = fx_id(&fx, "u");
    late = fx_id(&fx, "u");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, live, PID_A, 1, &hl), "live");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, slow, PID_A, 1, &hs), "slow");
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        if (i == 5) {
            REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, late, PID_A, 2, &hn),
                       "late");
        }
        CHECK_INT(i < 5 ? 3 : 4, fx_complete(&fx, live, "t", 10 + i),
                  "completion %d", i);
        if (CHECK_INT(1, fx_read(&fx, &hl, hl.cursor, evs, &rv),
                      "the live tab copies completion %d", i)) {
            fx_ack(&fx, &hl, evs[0].seq, 1, 10 + i);
            hl.cursor = evs[0].seq;
        }
    }
    CHECK_INT(first + 20, sse_registry_head(fx.reg),
              "20 entries for 20 completions to up to 4 tabs");
    all = fx_json(&fx);
    CHECK_INT(0, fx_int(fx_listener(all, live), "missed"),
              "the tab that kept up lost nothing");
    CHECK_INT(12, fx_int(fx_listener(all, away), "missed"),
              "the tab away lost the 12 overwritten");
    CHECK_INT(12, fx_int(fx_listener(all, slow), "missed"),
              "the connected tab that copied nothing lost them too");
    CHECK_INT(7, fx_int(fx_listener(all, late), "missed"),
              "the late tab lost only the 7 published after it came");
    CHECK_INT(0, fx_int(fx_listener(all, other), "missed"),
              "another name lost nothing");
    json_decref(all);
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(12 + 12 + 7, st.missed, "stats.missed: each tab's losses");
    REQUIRE_RV(APR_SUCCESS, sse_registry_ack(fx.reg, &hs, hs.cursor, 0, 40,
                                             &from, &to), "slow acks");
    CHECK_INT(first, from, "slow lost from the first");
    CHECK_INT(first + 11, to, "to the twelfth");
    REQUIRE_RV(APR_SUCCESS, sse_registry_ack(fx.reg, &hn, hn.cursor, 0, 40,
                                             &from, &to), "late acks");
    CHECK_INT(first + 5, from, "late lost from the first after it came");
    CHECK_INT(first + 11, to, "to the twelfth");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, away, PID_B, 41, &ha), "back");
    CHECK_INT(first, ha.missed_from, "away: from");
    CHECK_INT(first + 11, ha.missed_to, "away: to");
    CHECK_INT(8, fx_read(&fx, &ha, ha.cursor, evs, &rv), "and the last 8");
}

UNIT_TEST(test_a_burst_of_completions_to_many_tabs_does_not_lap_the_ring)
{
    enum { TABS = 20, BURST = 12, HISTORY = 16 };
    fx_t fx;
    sse_hold_t h[TABS];
    sse_event_t evs[64];
    sse_stats_t st;
    const char *ids[TABS];
    apr_uint64_t first;
    apr_status_t rv;
    int i, j, n;

    if (!fx_open(&fx, TABS, HISTORY, 2)) {
        return;
    }
    for (i = 0; i < TABS; i++) {
        ids[i] = fx_id(&fx, "user");
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A, 1, &h[i]),
                   "tab %d", i);
    }
    first = sse_registry_head(fx.reg);
    for (j = 0; j < BURST; j++) {
        CHECK_INT(TABS, fx_complete(&fx, ids[j % TABS],
                                    apr_psprintf(fx.pool, "t%d", j), 5 + j),
                  "completion %d", j);
    }
    CHECK_INT(first + BURST, sse_registry_head(fx.reg),
              "%d completions to %d tabs: %d entries, not %d", BURST, TABS,
              BURST, BURST * TABS);
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(0, st.missed, "nothing overwritten");
    for (i = 0; i < TABS; i++) {
        n = fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        if (!CHECK_INT(BURST, n, "tab %d reads the whole burst", i)) {
            continue;
        }
        for (j = 0; j < BURST; j++) {
            CHECK_COMPLETION(&evs[j], ids[i], 5 + j,
                             apr_psprintf(fx.pool, "t%d", j));
        }
    }
}

UNIT_TEST(test_completion_reaches_no_other_name_that_shares_its_hash)
{
    fx_t fx;
    sse_hold_t h1, h2, h3;
    sse_event_t evs[64];
    fx_routed_t r;
    const char *n1, *n2, *a, *b, *a2;
    apr_uint64_t from;
    apr_status_t rv;
    json_t *all;

    /* the colliding keys are valid names too: same hash, same bucket */
    if (!colliding_keys(&n1, &n2) || !fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, n1, PID_A, 1, NULL, &h1))
        || !(b = fx_tab(&fx, n2, PID_A, 1, NULL, &h2))
        || !(a2 = fx_tab(&fx, n1, PID_A, 1, NULL, &h3))) {
        return;
    }
    from = sse_registry_head(fx.reg);
    CHECK_INT(2, fx_complete(&fx, a, "t", 2), "two tabs of %s, not %s's", n1,
              n2);
    CHECK_INT(1, fx_complete(&fx, b, "t", 3), "one tab of %s", n2);
    fx_route(&fx, from, from + 2, PID_A, &r);
    if (CHECK_INT(3, r.n, "two calls for the first entry, one for the "
                  "second")) {
        CHECK(r.call[0].seq == from && r.call[1].seq == from
                  && r.call[0].slot != h2.slot && r.call[1].slot != h2.slot,
              "%s's completion is routed to %s's tabs", n1, n1);
        CHECK(r.call[2].seq == from + 1 && r.call[2].slot == h2.slot,
              "%s's to %s's", n2, n2);
    }
    if (CHECK_INT(1, fx_read(&fx, &h2, h2.cursor, evs, &rv), "b reads one")) {
        CHECK_COMPLETION(&evs[0], b, 3, "t");
    }
    if (CHECK_INT(1, fx_read(&fx, &h1, h1.cursor, evs, &rv), "a reads one")) {
        CHECK_COMPLETION(&evs[0], a, 2, "t");
    }
    /* overwrite both: each is counted against its own name's tabs only */
    sse_registry_listen(fx.reg, a, "other", 4);
    fx_notify_n(&fx, "other", 8, 5);
    all = fx_json(&fx);
    CHECK_INT(0, fx_int(fx_listener(all, a), "missed"),
              "a copied its completion");
    CHECK_INT(0, fx_int(fx_listener(all, b), "missed"),
              "b copied its completion, and a's is not b's");
    CHECK_INT(1, fx_int(fx_listener(all, a2), "missed"),
              "a2 lost its one completion, not b's");
    json_decref(all);
}

UNIT_TEST(test_ring_wrap_does_not_count_delivered_events_missed)
{
    fx_t fx;
    sse_hold_t h;
    const char *a;
    int i;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    for (i = 0; i < 20; i++) {
        fx_notify(&fx, "news", 2);
        fx_ack(&fx, &h, sse_registry_head(fx.reg) - 1, 1, 2);
    }
    CHECK_INT(0, fx_missed(&fx, a), "a stream that keeps up misses nothing");
}

/* Two keys with the same full hash, so the same bucket at any size. */
static int colliding_keys(const char **k1, const char **k2)
{
    apr_ssize_t l1 = 3, l2 = 3;

    *k1 = "abz";
    *k2 = "acY";
    return CHECK(apr_hashfunc_default(*k1, &l1)
                     == apr_hashfunc_default(*k2, &l2),
                 "test precondition: %s and %s must share a hash", *k1, *k2);
}

UNIT_TEST(test_missed_counts_each_lost_event_once_when_keys_share_a_bucket)
{
    fx_t fx;
    sse_hold_t h;
    sse_stats_t st;
    const char *a, *k1, *k2;
    apr_uint64_t first;
    int i;

    if (!colliding_keys(&k1, &k2) || !fx_open(&fx, 4, 8, 2)
        || !away_listener(&fx, "a", k1, &a, &h)) {
        return;
    }
    sse_registry_listen(fx.reg, a, k2, 1);
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        CHECK_INT(1, fx_notify(&fx, k1, 10 + i), "one holder");
    }
    CHECK_INT(12, fx_missed(&fx, a),
              "20 events of %s through 8 entries lose 12, however many of "
              "the listener's keys share the bucket", k1);
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(12, st.missed, "stats.missed");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 100, &h), "back");
    CHECK_INT(first, h.missed_from, "from");
    CHECK_INT(first + 11, h.missed_to, "to");
}

UNIT_TEST(test_route_calls_back_once_per_stream_when_keys_share_a_bucket)
{
    fx_t fx;
    sse_hold_t h;
    fx_routed_t r;
    const char *a, *k1, *k2;
    apr_uint64_t from;

    if (!colliding_keys(&k1, &k2) || !fx_open(&fx, 4, 16, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, k1, &h))) {
        return;
    }
    sse_registry_listen(fx.reg, a, k2, 1);
    from = sse_registry_head(fx.reg);
    CHECK_INT(1, fx_notify(&fx, k1, 2), "one holder of %s", k1);
    fx_route(&fx, from, sse_registry_head(fx.reg), PID_A, &r);
    CHECK_INT(1, r.n, "one event for one stream is one callback, however "
              "many of its keys share the bucket");
}

UNIT_TEST(test_resume_from_a_last_event_id_older_than_the_ring_says_missed)
{
    fx_t fx;
    sse_hold_t h, hb;
    const char *a, *b;
    apr_uint64_t before, e3, oldest, last;
    int created;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))
        || !(b = fx_tab(&fx, "b", PID_A, 1, "other", &hb))) {
        return;
    }
    before = sse_registry_head(fx.reg) - 1;
    fx_notify_n(&fx, "news", 3, 2);
    e3 = sse_registry_head(fx.reg) - 1;
    /* written and flushed, but the connection broke before the client
     * had them: it comes back with the id it last saw */
    fx_ack(&fx, &h, e3, 3, 3);
    sse_registry_release(fx.reg, &h, e3, 3);
    fx_notify_n(&fx, "other", 10, 4);   /* pushes a's three out */
    oldest = sse_registry_head(fx.reg) - 8;
    last = before;
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 5,
                                                 &last, &h, &created),
               "Last-Event-ID older than the window");
    CHECK(h.missed_to != 0 && h.missed_from <= before + 1 && h.missed_to >= e3
              && h.missed_to < oldest,
          "events %llu..%llu were due after Last-Event-ID %llu and are gone "
          "from the ring (oldest %llu): the stream must say so, got missed "
          "%llu..%llu",
          (unsigned long long)before + 1, (unsigned long long)e3,
          (unsigned long long)before, (unsigned long long)oldest,
          (unsigned long long)h.missed_from, (unsigned long long)h.missed_to);
}

UNIT_TEST(test_ack_tells_a_live_stream_the_events_it_lost_once)
{
    fx_t fx;
    sse_hold_t h;
    const char *a;
    apr_uint64_t first, from = 1, to = 1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    first = sse_registry_head(fx.reg);
    fx_notify_n(&fx, "news", 20, 2);    /* a burst the stream cannot copy */
    CHECK_INT(12, fx_missed(&fx, a),
              "12 overwritten before the stream copied them");
    REQUIRE_RV(APR_SUCCESS, sse_registry_ack(fx.reg, &h, h.cursor, 0, 3,
                                             &from, &to), "ack");
    CHECK_INT(first, from, "the first lost");
    CHECK_INT(first + 11, to, "the last lost");
    REQUIRE_RV(APR_SUCCESS, sse_registry_ack(fx.reg, &h, h.cursor, 0, 4,
                                             &from, &to), "ack again");
    CHECK(from == 0 && to == 0, "told once");
}

UNIT_TEST(test_events_a_live_stream_copied_are_not_missed_when_overwritten)
{
    fx_t fx;
    sse_hold_t h, hb;
    sse_event_t evs[64];
    const char *a, *b;
    apr_uint64_t from = 1, to = 1;
    apr_status_t rv;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))
        || !(b = fx_tab(&fx, "b", PID_A, 1, "other", &hb))) {
        return;
    }
    fx_notify_n(&fx, "news", 5, 2);
    CHECK_INT(5, fx_read(&fx, &h, h.cursor, evs, &rv),
              "copied out, being written, not acked yet");
    fx_notify_n(&fx, "other", 10, 3);   /* overwrites a's five */
    CHECK_INT(0, fx_missed(&fx, a),
              "a stream that copied its events lost none");
    sse_registry_ack(fx.reg, &h, evs[4].seq, 5, 4, &from, &to);
    CHECK(from == 0 && to == 0, "nothing to tell");
}

UNIT_TEST(test_completion_reaches_no_longer_name_that_shares_its_hash)
{
    fx_t fx;
    sse_hold_t hs, hl;
    sse_event_t evs[64];
    fx_routed_t r;
    /* "u" is a prefix of "uA1ohlqz" and both hash alike: only the name's
     * end tells them apart */
    const char *shorter = "u", *longer = "uA1ohlqz", *s, *l;
    apr_ssize_t l1 = 1, l2 = 8;
    apr_uint64_t from;
    apr_status_t rv;
    int i;

    if (!CHECK(apr_hashfunc_default(shorter, &l1)
                   == apr_hashfunc_default(longer, &l2),
               "test precondition: %s and %s must share a hash", shorter,
               longer)
        || !fx_open(&fx, 4, 8, 2)) {
        return;
    }
    s = fx_id(&fx, shorter);
    l = fx_id(&fx, longer);
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, s, PID_A, 1, &hs), "short");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, l, PID_A, 1, &hl), "long");
    from = sse_registry_head(fx.reg);
    CHECK_INT(1, fx_complete(&fx, l, "t1", 2), "%s has one tab", longer);
    CHECK_INT(1, fx_complete(&fx, s, "t2", 3), "%s has one tab", shorter);
    fx_route(&fx, from, from + 2, PID_A, &r);
    if (CHECK_INT(2, r.n, "one callback per entry")) {
        CHECK(r.call[0].slot == hl.slot && r.call[1].slot == hs.slot,
              "each to its own name's tab");
    }
    if (CHECK_INT(1, fx_read(&fx, &hs, hs.cursor, evs, &rv),
                  "%s reads only its own", shorter)) {
        CHECK_COMPLETION(&evs[0], s, 3, "t2");
    }
    /* l reads nothing: both entries are lost to it, one counted */
    for (i = 0; i < 8; i++) {
        CHECK_INT(0, fx_notify(&fx, "nobody", 4), "no holder, no entry");
    }
    sse_registry_listen(fx.reg, s, "news", 4);
    fx_notify_n(&fx, "news", 8, 5);
    CHECK_INT(1, fx_missed(&fx, l),
              "%s lost its one completion, not %s's", longer, shorter);
}

/* ---- route: a dispatcher that copies an entry while routing takes it -- */

static int copy_cb(void *baton, apr_uint32_t slot, apr_uint32_t holder_gen,
                   const sse_event_t *ev)
{
    (void)slot;
    (void)holder_gen;
    (void)ev;
    return *(int *)baton;
}

static json_int_t missed_after_overwrite(int copies)
{
    fx_t fx;
    sse_hold_t h, hb;
    const char *a, *b;
    apr_uint64_t head;
    int i;

    if (!fx_open(&fx, 4, 4, 2)) {
        return -1;
    }
    a = fx_tab(&fx, "alice", PID_A, 1, NULL, &h);
    b = fx_tab(&fx, "bob", PID_B, 1, NULL, &hb);
    head = sse_registry_head(fx.reg);
    fx_complete(&fx, a, "t0", 2);
    sse_registry_route(fx.reg, head, head + 1, PID_A, copy_cb, &copies);
    for (i = 0; i < 4; i++) {
        fx_complete(&fx, b, "x", 3);    /* the ring goes round */
    }
    return fx_missed(&fx, a);
}

UNIT_TEST(test_an_entry_copied_while_routing_is_not_missed_when_overwritten)
{
    CHECK_INT(1, missed_after_overwrite(0), "routed but neither copied nor "
              "fetched, then overwritten: missed");
    CHECK_INT(0, missed_after_overwrite(1), "copied by the route callback: "
              "taken, as a fetch takes it");
}
