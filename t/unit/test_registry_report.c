/* sse_registry: list-registrants, the JSON object of every listener. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

UNIT_TEST(test_json_of_an_empty_registry_is_an_empty_object)
{
    fx_t fx;
    char *js = NULL;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_json(fx.reg, fx.pool, &js), "json");
    CHECK_STR("{}", js, "empty");
}

UNIT_TEST(test_json_lists_each_listener_with_the_seed_fields)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b;
    json_t *all, *la, *lb, *keys;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1000, NULL, &h))) {
        return;
    }
    b = fx_id(&fx, "b");
    sse_registry_listen(fx.reg, a, "news", 1200);
    sse_registry_listen(fx.reg, a, "sport", 1500);
    fx_connect(&fx, b, PID_A, 2000, &h);
    sse_registry_release(fx.reg, &h, h.cursor, 2500);
    all = fx_json(&fx);
    if (all == NULL) {
        return;
    }
    CHECK_INT(2, json_object_size(all), "two listeners");
    la = fx_listener(all, a);
    lb = fx_listener(all, b);
    if (CHECK(json_is_object(la), "a is listed by its id")) {
        keys = json_object_get(la, "listenKeys");
        CHECK(json_is_array(keys) && json_array_size(keys) == 2
                  && strcmp(json_string_value(json_array_get(keys, 0)),
                            "news") == 0
                  && strcmp(json_string_value(json_array_get(keys, 1)),
                            "sport") == 0,
              "listenKeys [news, sport] in order");
        CHECK(json_is_integer(json_object_get(la, "registered-ts")),
              "registered-ts is a number");
        CHECK_INT(1000, fx_int(la, "registered-ts"), "registered-ts of a");
        CHECK(fx_connected(la) == 1, "connected");
        CHECK_INT(1500, fx_int(la, "last-activity"),
                  "last-activity is the last listen");
        CHECK(json_is_integer(json_object_get(la, "missed")), "missed");
        CHECK_INT(0, fx_int(la, "missed"), "nothing missed");
    }
    if (CHECK(json_is_object(lb), "b is listed by its id")) {
        CHECK(json_is_array(json_object_get(lb, "listenKeys"))
                  && json_array_size(json_object_get(lb, "listenKeys")) == 0,
              "b listens to nothing");
        CHECK_INT(2000, fx_int(lb, "registered-ts"), "registered-ts of b");
        CHECK(fx_connected(lb) == 0, "b has no stream");
        CHECK_INT(2500, fx_int(lb, "last-activity"),
                  "last-activity is the release");
    }
    json_decref(all);
}

UNIT_TEST(test_json_lists_every_listener_whatever_the_counters_say)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b, *c;
    json_t *all;

    if (!fx_open(&fx, 8, 8, 2)) {
        return;
    }
    a = fx_tab(&fx, "a", PID_A, 1, "k", &h);
    b = fx_tab(&fx, "b", PID_A, 1, NULL, &h);
    c = fx_tab(&fx, "c", PID_A, 1, NULL, &h);
    REQUIRE(a && b && c, "setup");
    fx.reg->h->stats.listeners = 0;     /* a counter gone wrong */
    all = fx_json(&fx);
    if (all) {
        CHECK_INT(3, json_object_size(all), "the table decides, not the "
                  "counter");
        CHECK(fx_listener(all, a) && fx_listener(all, b)
                  && fx_listener(all, c), "a, b and c listed");
        json_decref(all);
    }
}

typedef struct {
    fx_t *fx;
    int calls;
    const char *x, *y;
    sse_hold_t h;
} between_t;

/* Between the first two batches: x (slot 0, listed already) and y (slot
 * 20, not yet) go dormant and are cleaned up; x comes back, into slot 20,
 * whose batch comes later. Each call takes the mutex: it is free. */
static void between_batches(void *baton)
{
    between_t *bt = baton;
    int removed = -1;

    if (bt->calls++ > 0) {
        return;
    }
    CHECK_RV(APR_SUCCESS,
             sse_registry_cleanup(bt->fx->reg, 2 * HOUR_MS, HOUR_MS,
                                  &removed), "cleanup between batches");
    CHECK_INT(2, removed, "x and y were dormant");
    CHECK_RV(APR_SUCCESS, fx_connect(bt->fx, bt->x, PID_B, 2 * HOUR_MS,
                                     &bt->h), "x comes back");
    CHECK_INT(20, bt->h.slot, "into y's slot, not yet listed");
}

UNIT_TEST(test_json_copies_in_batches_and_lists_each_listener_once)
{
    fx_t fx;
    sse_hold_t h;
    between_t bt;
    const char *ids[30];
    char *js = NULL;
    json_t *all;
    int i;

    if (!fx_open(&fx, 40, 8, 2)) {
        return;
    }
    for (i = 0; i < 30; i++) {
        ids[i] = fx_tab(&fx, "u", PID_A, 1, "k", &h);
        REQUIRE(ids[i] && h.slot == (apr_uint32_t)i, "listener %d in slot "
                "%d", i, i);
        if (i == 0 || i == 20) {
            sse_registry_release(fx.reg, &h, h.cursor, 1);
        }
    }
    memset(&bt, 0, sizeof(bt));
    bt.fx = &fx;
    bt.x = ids[0];
    bt.y = ids[20];
    fx.reg->json_batch = 8;
    fx.reg->json_between = between_batches;
    fx.reg->json_between_baton = &bt;
    CHECK_RV(APR_SUCCESS, sse_registry_json(fx.reg, fx.pool, &js), "json");
    CHECK_INT(4, bt.calls, "40 slots, 8 at a time: the mutex let go 4 "
              "times");
    REQUIRE(js != NULL, "a reply");
    all = json_loads(js, JSON_REJECT_DUPLICATES, NULL);
    if (CHECK(all != NULL, "valid JSON, no id twice: %s", js)) {
        for (i = 1; i < 30; i++) {
            CHECK(i == 20 || fx_listener(all, ids[i]) != NULL,
                  "listener %d, there all along, is listed", i);
        }
        CHECK(fx_listener(all, ids[20]) == NULL, "y, gone before its "
              "batch, is not");
        CHECK_INT(29, json_object_size(all), "x once (from slot 0) and "
                  "the 28 others");
        json_decref(all);
    }
}

UNIT_TEST(test_json_is_byte_for_byte_what_jansson_writes_of_the_object)
{
    fx_t fx;
    sse_hold_t h;
    char *js = NULL, *again;
    json_t *all;
    int i;

    if (!fx_open(&fx, 8, 8, 2)) {
        return;
    }
    for (i = 0; i < 5; i++) {
        REQUIRE(fx_tab(&fx, i % 2 ? "u" : "v.w", PID_A, 1000 + i,
                       i ? "k" : NULL, &h), "listener %d", i);
        if (i == 3) {
            sse_registry_listen(fx.reg, fx_id(&fx, "u"), "x", 5);
            sse_registry_release(fx.reg, &h, h.cursor, 2000);
        }
    }
    CHECK_RV(APR_SUCCESS, sse_registry_json(fx.reg, fx.pool, &js), "json");
    REQUIRE(js != NULL, "a reply");
    all = json_loads(js, JSON_REJECT_DUPLICATES, NULL);
    REQUIRE(all != NULL, "JSON: %s", js);
    again = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
    CHECK_STR(again, js, "the shape list-registrants always had");
    free(again);
    json_decref(all);
}
