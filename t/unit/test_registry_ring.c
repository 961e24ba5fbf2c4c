/* sse_registry: the event ring: wrap-around, missed events and how they
 * are told. */
#include <string.h>

#include <apr_hash.h>
#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

/* A listener without stream that holds @a key, for the wrap tests. */
static int away_listener(fx_t *fx, const char *name, const char *key,
                         const char **id, sse_hold_t *h)
{
    *id = fx_id(fx, name);
    if (!CHECK_RV(APR_SUCCESS, fx_connect(fx, *id, PID_A, 1, h), "connect")) {
        return 0;
    }
    if (key) {
        sse_registry_listen(fx->reg, *id, key, 1);
    }
    sse_registry_release(fx->reg, h, PID_A, h->cursor, 1);
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
    json_t *all;
    int i, n;

    if (!fx_open(&fx, 4, 8, 2) || !away_listener(&fx, "a", "news", &a, &h)) {
        return;
    }
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        CHECK_INT(1, fx_notify(&fx, "news", 10 + i), "event %d queued", i);
    }
    all = fx_json(&fx);
    CHECK_INT(12, json_integer_value(json_object_get(fx_listener(all, a),
                                                     "missed")),
              "list-registrants counts the 12 events lost");
    json_decref(all);
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
    json_t *all;
    int i, n, delivered;

    if (!fx_open(&fx, 4, 8, 2) || !away_listener(&fx, "a", NULL, &a, &h)) {
        return;
    }
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {
        sse_registry_notify_completion(fx.reg, fx.pool, a,
                                       apr_psprintf(fx.pool, "t%d", i),
                                       10 + i, &delivered);
    }
    all = fx_json(&fx);
    CHECK_INT(12, json_integer_value(json_object_get(fx_listener(all, a),
                                                     "missed")),
              "12 completions lost");
    json_decref(all);
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_B, 100, &h), "back");
    CHECK_INT(first, h.missed_from, "from");
    CHECK_INT(first + 11, h.missed_to, "to");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    if (CHECK_INT(8, n, "the last 8 completions")) {
        CHECK(strstr(evs[0].data, "\\\"taskid\\\":\\\"t12\\\"") != NULL,
              "the oldest kept is t12: %s", evs[0].data);
        CHECK(strstr(evs[7].data, "\\\"taskid\\\":\\\"t19\\\"") != NULL,
              "the newest is t19: %s", evs[7].data);
    }
}

UNIT_TEST(test_ring_wrap_does_not_count_delivered_events_missed)
{
    fx_t fx;
    sse_hold_t h;
    const char *a;
    json_t *all;
    int i;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    a = fx_id(&fx, "a");
    fx_connect(&fx, a, PID_A, 1, &h);
    sse_registry_listen(fx.reg, a, "news", 1);
    for (i = 0; i < 20; i++) {
        fx_notify(&fx, "news", 2);
        fx_ack(&fx, &h, sse_registry_head(fx.reg) - 1, 1, 2);
    }
    all = fx_json(&fx);
    CHECK_INT(0, json_integer_value(json_object_get(fx_listener(all, a),
                                                    "missed")),
              "a stream that keeps up misses nothing");
    json_decref(all);
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
    json_t *all;
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
    all = fx_json(&fx);
    CHECK_INT(12, json_integer_value(json_object_get(fx_listener(all, a),
                                                     "missed")),
              "20 events of %s through 8 entries lose 12, however many of "
              "the listener's keys share the bucket", k1);
    json_decref(all);
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

    if (!colliding_keys(&k1, &k2) || !fx_open(&fx, 4, 16, 2)) {
        return;
    }
    a = fx_id(&fx, "a");
    fx_connect(&fx, a, PID_A, 1, &h);
    sse_registry_listen(fx.reg, a, k1, 1);
    sse_registry_listen(fx.reg, a, k2, 1);
    from = sse_registry_head(fx.reg);
    CHECK_INT(1, fx_notify(&fx, k1, 2), "one holder of %s", k1);
    memset(&r, 0, sizeof(r));
    sse_registry_route(fx.reg, from, sse_registry_head(fx.reg), PID_A,
                       fx_route_cb, &r);
    CHECK_INT(1, r.n, "one event for one stream is one callback, however "
              "many of its keys share the bucket");
}

UNIT_TEST(test_resume_from_a_last_event_id_older_than_the_ring_says_missed)
{
    fx_t fx;
    sse_hold_t h, hb;
    const char *a, *b;
    apr_uint64_t before, e3, oldest, last;
    int i, created;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    a = fx_id(&fx, "a");
    b = fx_id(&fx, "b");
    fx_connect(&fx, a, PID_A, 1, &h);
    fx_connect(&fx, b, PID_A, 1, &hb);
    sse_registry_listen(fx.reg, a, "news", 1);
    sse_registry_listen(fx.reg, b, "other", 1);
    before = sse_registry_head(fx.reg) - 1;
    for (i = 0; i < 3; i++) {
        fx_notify(&fx, "news", 2);
    }
    e3 = sse_registry_head(fx.reg) - 1;
    /* written and flushed, but the connection broke before the client
     * had them: it comes back with the id it last saw */
    fx_ack(&fx, &h, e3, 3, 3);
    sse_registry_release(fx.reg, &h, PID_A, e3, 3);
    for (i = 0; i < 10; i++) {
        fx_notify(&fx, "other", 4);     /* pushes a's three out */
    }
    oldest = sse_registry_head(fx.reg) - 8;
    last = before;
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, 5, &last,
                                                 &h, &created),
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
    json_t *all;
    int i;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    a = fx_id(&fx, "a");
    fx_connect(&fx, a, PID_A, 1, &h);
    sse_registry_listen(fx.reg, a, "news", 1);
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 20; i++) {          /* a burst the stream cannot copy */
        fx_notify(&fx, "news", 2);
    }
    all = fx_json(&fx);
    CHECK_INT(12, json_integer_value(json_object_get(fx_listener(all, a),
                                                     "missed")),
              "12 overwritten before the stream copied them");
    json_decref(all);
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
    json_t *all;
    int i;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    a = fx_id(&fx, "a");
    b = fx_id(&fx, "b");
    fx_connect(&fx, a, PID_A, 1, &h);
    fx_connect(&fx, b, PID_A, 1, &hb);
    sse_registry_listen(fx.reg, a, "news", 1);
    sse_registry_listen(fx.reg, b, "other", 1);
    for (i = 0; i < 5; i++) {
        fx_notify(&fx, "news", 2);
    }
    CHECK_INT(5, fx_read(&fx, &h, h.cursor, evs, &rv),
              "copied out, being written, not acked yet");
    for (i = 0; i < 10; i++) {
        fx_notify(&fx, "other", 3);     /* overwrites a's five */
    }
    all = fx_json(&fx);
    CHECK_INT(0, json_integer_value(json_object_get(fx_listener(all, a),
                                                    "missed")),
              "a stream that copied its events lost none");
    json_decref(all);
    sse_registry_ack(fx.reg, &h, evs[4].seq, 5, 4, &from, &to);
    CHECK(from == 0 && to == 0, "nothing to tell");
}
