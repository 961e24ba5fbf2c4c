/* sse_registry: list-registrants, the JSON object of every listener. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
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
