/* sse_registry: create, attach, ids, connect and lookup, listen keys,
 * publishing to keys and to every tab of a name. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

UNIT_TEST(test_registry_create_rejects_a_zero_size)
{
    static const sse_registry_sizes_t bad[] = {
        {0, 16, 4, 4096}, {16, 0, 4, 4096}, {16, 16, 0, 4096},
    };
    fx_t fx;
    sse_registry_t *reg = NULL;
    apr_size_t i;

    if (!fx_open(&fx, 4, 4, 2)) {
        return;
    }
    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_RV(APR_EINVAL, sse_registry_create(fx.pool, fx.mem, &bad[i],
                                                 fx.secret, 1, fx.lock, &reg),
                 "sizes {%u, %u, %u}", bad[i].max_listeners, bad[i].history,
                 bad[i].max_children);
    }
}

UNIT_TEST(test_registry_size_grows_with_each_dimension)
{
    sse_registry_sizes_t sz = {16, 16, 4, 4096}, more;
    apr_size_t base = sse_registry_size(&sz);

    more = sz;
    more.max_listeners = 17;
    CHECK(sse_registry_size(&more) > base, "one more listener");
    more = sz;
    more.history = 17;
    CHECK(sse_registry_size(&more) >= base + sizeof(sse_event_t),
          "one more ring entry");
    more = sz;
    more.max_children = 40;
    CHECK(sse_registry_size(&more) > base, "more children");
}

UNIT_TEST(test_registry_attach_sees_what_create_made)
{
    fx_t fx;
    sse_registry_t *other = NULL;
    sse_hold_t hold;
    const char *id;
    char id2[SSE_ID_MAX + 1];

    if (!fx_open(&fx, 8, 16, 4)
        || !(id = fx_tab(&fx, "alice", PID_A, 1000, NULL, &hold))) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_attach(fx.pool, fx.mem, &fx.sz, fx.lock, &other),
               "attach to the formatted memory");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(other, id),
             "the listener is seen through the second handle");
    CHECK(memcmp(sse_registry_sizes(other), &fx.sz, sizeof(fx.sz)) == 0,
          "same sizes");
    CHECK_INT(sse_registry_head(fx.reg), sse_registry_head(other),
              "same head");
    REQUIRE_RV(APR_SUCCESS, sse_registry_make_id(other, "bob", id2), "make");
    CHECK_RV(APR_SUCCESS, sse_registry_check_id(fx.reg, id2),
             "the secret lives in the segment: ids are shared");
}

UNIT_TEST(test_registry_attach_rejects_memory_holding_no_registry)
{
    sse_registry_sizes_t sz = {8, 16, 4, 4096};
    apr_size_t size = sse_registry_size(&sz), i;
    unsigned char *mem = apr_palloc(unit_pool(), size);
    sse_registry_t *reg = NULL;
    fx_t fx;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    memset(mem, 0, size);
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &sz, fx.lock, &reg),
             "zeroed memory");
    memset(mem, 0xa5, size);
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &sz, fx.lock, &reg),
             "0xa5 garbage");
    for (i = 0; i < size; i++) {
        mem[i] = (unsigned char)(i * 131 + 7);
    }
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &sz, fx.lock, &reg),
             "patterned garbage");
    memcpy(mem, fx.mem, size);
    mem[0] ^= 1;
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &sz, fx.lock, &reg),
             "a registry whose magic was damaged");
}

UNIT_TEST(test_registry_attach_rejects_other_sizes)
{
    fx_t fx;
    sse_registry_t *reg = NULL;
    sse_registry_sizes_t sz;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    sz = fx.sz;
    sz.max_listeners = 9;
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, fx.mem, &sz, fx.lock,
                                             &reg), "more listeners");
    sz = fx.sz;
    sz.max_listeners = 7;
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, fx.mem, &sz, fx.lock,
                                             &reg), "fewer listeners");
    sz = fx.sz;
    sz.history = 15;
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, fx.mem, &sz, fx.lock,
                                             &reg), "other history");
    sz = fx.sz;
    sz.max_children = 5;
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, fx.mem, &sz, fx.lock,
                                             &reg), "other child count");
    CHECK_RV(APR_SUCCESS, sse_registry_attach(fx.pool, fx.mem, &fx.sz,
                                              fx.lock, &reg), "same sizes");
}

UNIT_TEST(test_registry_head_starts_at_first_seq)
{
    fx_t fx;
    sse_registry_t *reg = NULL;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    CHECK_INT(1, sse_registry_head(fx.reg), "first_seq 0 means 1");
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_create(fx.pool, fx.mem, &fx.sz, fx.secret,
                                   1700000000000ULL, fx.lock, &reg),
               "create with a clock first_seq");
    CHECK_INT(1700000000000LL, sse_registry_head(reg), "head = first_seq");
}

UNIT_TEST(test_registry_ids_verify_only_under_its_secret)
{
    fx_t fx;
    const char *id;
    unsigned char other[SSE_SECRET_LEN];
    char *forged;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    id = fx_id(&fx, "alice");
    CHECK_RV(APR_SUCCESS, sse_registry_check_id(fx.reg, id), "issued here");
    forged = apr_pstrdup(fx.pool, id);
    forged[strlen(forged) - 1] = forged[strlen(forged) - 1] == 'A' ? 'B' : 'A';
    CHECK_RV(APR_EACCES, sse_registry_check_id(fx.reg, forged), "forged");
    CHECK_RV(APR_EINVAL, sse_registry_check_id(fx.reg, "alice"), "malformed");
    CHECK_RV(APR_EINVAL, sse_registry_make_id(fx.reg, "a/b", forged),
             "make_id of an invalid name");
    CHECK_RV(APR_EINVAL, sse_registry_make_id(fx.reg, "_a", forged),
             "make_id of a name with a leading _");
    CHECK_RV(APR_SUCCESS, sse_registry_make_id(fx.reg, "a_b", forged),
             "make_id of a name with an inner _");
    CHECK(strncmp(forged, "a_b_", 4) == 0
              && strlen(forged) == 4 + SSE_ID_SUFFIX_LEN,
          "id \"%s\" is a_b, _, suffix", forged);
    CHECK_RV(APR_SUCCESS, sse_registry_check_id(fx.reg, forged),
             "the id of a_b is issued here");
    REQUIRE_RV(APR_SUCCESS, sse_id_secret("another", other), "secret");
    sse_registry_set_secret(fx.reg, other);
    CHECK_RV(APR_EACCES, sse_registry_check_id(fx.reg, id),
             "a new SSESecret invalidates the old ids");
    sse_registry_set_secret(fx.reg, fx.secret);
    CHECK_RV(APR_SUCCESS, sse_registry_check_id(fx.reg, id), "and back");
}

UNIT_TEST(test_connect_creates_a_listener_the_first_time_only)
{
    fx_t fx;
    sse_hold_t hold;
    sse_stats_t st;
    const char *id;
    int created = -1;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    id = fx_id(&fx, "alice");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, id), "before connect");
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, id, PID_A, NULL, 1000,
                                                 NULL, &hold, &created),
               "first connect");
    CHECK_INT(1, created, "the first connect creates the listener");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, id), "after connect");
    CHECK_INT(sse_registry_head(fx.reg) - 1, hold.cursor,
              "a new listener starts at the head");
    CHECK(hold.missed_from == 0 && hold.missed_to == 0, "nothing missed");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.listeners, "one listener");
    CHECK_INT(1, st.connected, "one stream");
    sse_registry_release(fx.reg, &hold, hold.cursor, 2000);
    REQUIRE_RV(APR_SUCCESS, sse_registry_connect(fx.reg, id, PID_A, NULL, 3000,
                                                 NULL, &hold, &created),
               "second connect");
    CHECK_INT(0, created, "the second connect finds it");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.listeners, "still one listener");
    CHECK_INT(1, st.connected, "one stream again");
}

UNIT_TEST(test_lookup_knows_only_registered_ids)
{
    fx_t fx;
    sse_hold_t hold;
    const char *a, *b;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "alice", PID_A, 1, NULL, &hold))) {
        return;
    }
    b = fx_id(&fx, "alice");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, a), "registered");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, b), "same name, other "
             "id");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, "alice"), "a name");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, ""), "empty");
}

UNIT_TEST(test_connect_of_a_malformed_id_creates_nothing)
{
    fx_t fx;
    sse_hold_t hold;
    sse_stats_t st;
    int created = -1;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    CHECK_RV(APR_EINVAL, sse_registry_connect(fx.reg, "no-underscore", PID_A,
                                              NULL, 1, NULL, &hold, &created),
             "a malformed id is bad input, not a full table (ENOSPC would "
             "make the route answer 503 + Retry-After)");
    CHECK_INT(0, created, "nothing created");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(0, st.listeners, "no listener");
    CHECK_INT(0, st.connected, "no stream");
    CHECK_INT(0, st.rejected_full, "not counted as a full table");
}

UNIT_TEST(test_listen_twice_to_a_key_holds_it_once)
{
    fx_t fx;
    sse_hold_t hold;
    const char *id;
    json_t *all, *keys;

    if (!fx_open(&fx, 4, 8, 2)
        || !(id = fx_tab(&fx, "alice", PID_A, 1, NULL, &hold))) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, id, "news", 2), "1st");
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, id, "news", 3), "2nd");
    all = fx_json(&fx);
    keys = json_object_get(fx_listener(all, id), "listenKeys");
    CHECK(json_is_array(keys) && json_array_size(keys) == 1,
          "listenKeys holds news once");
    CHECK_INT(1, fx_notify(&fx, "news", 4), "one holder, one delivery");
    json_decref(all);
}

UNIT_TEST(test_listen_says_whether_the_key_is_new_to_the_listener)
{
    fx_t fx;
    sse_hold_t hold;
    const char *id;
    int added = -1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(id = fx_tab(&fx, "alice", PID_A, 1, NULL, &hold))) {
        return;
    }
    CHECK_RV(APR_SUCCESS,
             sse_registry_listen_ex(fx.reg, id, "news", 2, &added), "1st");
    CHECK_INT(1, added, "a new key changes the listener (listeners-changed)");
    CHECK_RV(APR_SUCCESS,
             sse_registry_listen_ex(fx.reg, id, "news", 3, &added), "2nd");
    CHECK_INT(0, added, "a key held already changes nothing");
    added = -1;
    CHECK_RV(APR_EINVAL,
             sse_registry_listen_ex(fx.reg, id, "a b", 3, &added), "bad");
    CHECK_INT(0, added, "a refused key is not added");
    added = -1;
    CHECK_RV(APR_ENOENT, sse_registry_listen_ex(fx.reg, fx_id(&fx, "bob"),
                                                "news", 3, &added),
             "an issued id without listener");
    CHECK_INT(0, added, "nothing added for an unknown id");
}

UNIT_TEST(test_listen_refuses_unknown_ids_and_invalid_keys)
{
    fx_t fx;
    sse_hold_t hold;
    const char *id, *unknown;

    if (!fx_open(&fx, 4, 8, 2)
        || !(id = fx_tab(&fx, "alice", PID_A, 1, NULL, &hold))) {
        return;
    }
    unknown = fx_id(&fx, "alice");
    CHECK_RV(APR_ENOENT, sse_registry_listen(fx.reg, unknown, "news", 2),
             "an issued id without listener");
    CHECK_RV(APR_EINVAL, sse_registry_listen(fx.reg, id, "a b", 2),
             "key with a space");
    CHECK_RV(APR_EINVAL, sse_registry_listen(fx.reg, id, "a/b", 2), "key /");
    CHECK_RV(APR_EINVAL, sse_registry_listen(fx.reg, id, "_a", 2),
             "key with a leading _");
    CHECK_RV(APR_EINVAL, sse_registry_listen(fx.reg, id, "", 2), "empty key");
    CHECK_RV(APR_EINVAL, sse_registry_listen(fx.reg, id, "..", 2), "key ..");
}

UNIT_TEST(test_listen_and_notify_accept_a_key_with_underscores)
{
    fx_t fx;
    sse_hold_t ha, hb, hc;
    sse_event_t evs[64];
    const char *a, *b, *c;
    json_t *all, *keys;
    apr_status_t rv;
    int n, delivered = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "alice", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "bob", PID_A, 1, NULL, &hb))
        || !(c = fx_tab(&fx, "carol", PID_A, 1, NULL, &hc))) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, a, "a_b", 2),
             "key a_b");
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, b, "a", 2), "key a");
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, c, "a_b_", 2),
             "key a_b_ (trailing _)");
    all = fx_json(&fx);
    keys = json_object_get(fx_listener(all, a), "listenKeys");
    CHECK(json_is_array(keys) && json_array_size(keys) == 1
              && json_is_string(json_array_get(keys, 0))
              && strcmp(json_string_value(json_array_get(keys, 0)), "a_b")
                     == 0,
          "listenKeys of alice is [\"a_b\"]");
    json_decref(all);
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_notify_key(fx.reg, "a_b", 3, &delivered),
               "notify a_b");
    CHECK_INT(1, delivered, "only the holder of a_b, not of a or a_b_");
    n = fx_read(&fx, &ha, ha.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read a");
    if (CHECK_INT(1, n, "alice reads notify^a_b")) {
        CHECK_MEM("\"notify^a_b\"", 12, evs[0].data, evs[0].len,
                  "the payload");
        CHECK_STR("a_b", evs[0].key, "the key");
    }
    CHECK_INT(0, fx_read(&fx, &hb, hb.cursor, evs, &rv), "bob holds a");
    CHECK_INT(0, fx_read(&fx, &hc, hc.cursor, evs, &rv), "carol holds a_b_");
    CHECK_INT(1, fx_notify(&fx, "a_b_", 4), "a_b_ is its own key");
    CHECK_INT(1, fx_notify(&fx, "a", 5), "a is its own key");
}

UNIT_TEST(test_listen_beyond_the_key_limit_is_enospc)
{
    fx_t fx;
    sse_hold_t hold;
    const char *id;
    json_t *all;
    int k;

    if (!fx_open(&fx, 4, 8, 2)
        || !(id = fx_tab(&fx, "alice", PID_A, 1, NULL, &hold))) {
        return;
    }
    for (k = 0; k < SSE_MAX_KEYS; k++) {
        CHECK_RV(APR_SUCCESS,
                 sse_registry_listen(fx.reg, id,
                                     apr_psprintf(fx.pool, "key%d", k), 2),
                 "key %d of %d", k + 1, SSE_MAX_KEYS);
    }
    CHECK_RV(APR_ENOSPC, sse_registry_listen(fx.reg, id, "one-more", 2),
             "key %d", SSE_MAX_KEYS + 1);
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, id, "key0", 2),
             "a key already held is still fine when full");
    all = fx_json(&fx);
    CHECK_INT(SSE_MAX_KEYS,
              json_array_size(json_object_get(fx_listener(all, id),
                                              "listenKeys")),
              "listenKeys");
    CHECK_INT(0, fx_notify(&fx, "one-more", 3), "the refused key is not held");
    CHECK_INT(1, fx_notify(&fx, "key31", 3), "the last key is held");
    json_decref(all);
}

UNIT_TEST(test_notify_key_counts_only_holders)
{
    fx_t fx;
    sse_hold_t ha, hb, hc;
    const char *a, *b, *c;
    apr_uint64_t head;
    int delivered = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "b", PID_B, 1, NULL, &hb))
        || !(c = fx_tab(&fx, "c", PID_A, 1, NULL, &hc))) {
        return;
    }
    sse_registry_release(fx.reg, &hb, hb.cursor, 2);
    sse_registry_listen(fx.reg, a, "news", 3);
    sse_registry_listen(fx.reg, b, "news", 3);
    sse_registry_listen(fx.reg, c, "sport", 3);
    CHECK_INT(2, fx_notify(&fx, "news", 4),
              "a and b hold news (b without stream: queued for it)");
    CHECK_INT(1, fx_notify(&fx, "sport", 4), "c holds sport");
    head = sse_registry_head(fx.reg);
    CHECK_INT(0, fx_notify(&fx, "weather", 4), "nobody holds weather");
    CHECK_INT(head, sse_registry_head(fx.reg),
              "a key nobody holds publishes nothing");
    CHECK_RV(APR_EINVAL, sse_registry_notify_key(fx.reg, "a:b", 4,
                                                 &delivered), "bad key");
    CHECK_INT(0, delivered, "nothing delivered on a bad key");
    delivered = -1;
    CHECK_RV(APR_EINVAL, sse_registry_notify_key(fx.reg, "_news", 4,
                                                 &delivered),
             "a key with a leading _");
    CHECK_INT(0, delivered, "nothing delivered on a leading _");
    CHECK_INT(head, sse_registry_head(fx.reg), "bad keys publish nothing");
}

UNIT_TEST(test_notify_key_is_read_by_its_holders_only)
{
    fx_t fx;
    sse_hold_t ha, hc;
    sse_event_t evs[64];
    const char *a, *c;
    apr_status_t rv;
    int n;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))
        || !(c = fx_tab(&fx, "c", PID_A, 1, NULL, &hc))) {
        return;
    }
    sse_registry_listen(fx.reg, a, "news", 2);
    sse_registry_listen(fx.reg, c, "sport", 2);
    CHECK_INT(1, fx_notify(&fx, "news", 3), "news");
    n = fx_read(&fx, &ha, ha.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read a");
    if (CHECK_INT(1, n, "a reads the notification")) {
        CHECK_INT(SSE_EV_KEY, evs[0].kind, "a key event");
        CHECK_INT(sse_registry_head(fx.reg) - 1, evs[0].seq, "its seq");
        CHECK_MEM("\"notify^news\"", 13, evs[0].data, evs[0].len,
                  "the payload is framed once, at publish time");
        CHECK_STR("news", evs[0].key, "the key");
    }
    n = fx_read(&fx, &hc, hc.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read c");
    CHECK_INT(0, n, "c does not hold news");
}

UNIT_TEST(test_listen_does_not_see_events_published_before_it)
{
    fx_t fx;
    sse_hold_t ha, hb;
    sse_event_t evs[64];
    const char *a, *b;
    apr_status_t rv;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a = fx_tab(&fx, "a", PID_A, 1, NULL, &ha))
        || !(b = fx_tab(&fx, "b", PID_A, 1, NULL, &hb))) {
        return;
    }
    sse_registry_listen(fx.reg, b, "news", 2);
    CHECK_INT(1, fx_notify(&fx, "news", 3), "b holds news");
    sse_registry_listen(fx.reg, a, "news", 4);
    CHECK_INT(0, fx_read(&fx, &ha, ha.cursor, evs, &rv),
              "a listened after the first notification");
    CHECK_INT(2, fx_notify(&fx, "news", 5), "now both");
    CHECK_INT(1, fx_read(&fx, &ha, ha.cursor, evs, &rv), "a gets the second");
}

UNIT_TEST(test_completion_reaches_every_tab_of_a_user_and_no_other_name)
{
    fx_t fx;
    sse_hold_t h[6];
    sse_event_t evs[64];
    const char *names[6] = {"alice", "alice", "alice", "alice2", "alic",
                            "bob"};
    const char *ids[6];
    apr_uint64_t head;
    apr_status_t rv;
    int i, n, delivered = -1;

    if (!fx_open(&fx, 16, 32, 4)) {
        return;
    }
    for (i = 0; i < 6; i++) {
        ids[i] = fx_id(&fx, names[i]);
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A + i % 2, 10,
                                           &h[i]), "connect %s", ids[i]);
    }
    /* the third tab has no stream now: its completion waits for it */
    sse_registry_release(fx.reg, &h[2], h[2].cursor, 11);
    head = sse_registry_head(fx.reg);
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_notify_completion(fx.reg, ids[1], "t1", 1234,
                                              &delivered),
               "notify-completions from the second tab");
    CHECK_INT(3, delivered, "alice has three tabs");
    CHECK_INT(head + 1, sse_registry_head(fx.reg),
              "one ring entry for the three tabs");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[2], PID_B, 20, &h[2]),
               "the third tab comes back");
    for (i = 0; i < 6; i++) {
        n = fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        CHECK_RV(APR_SUCCESS, rv, "read %s", ids[i]);
        if (i >= 3) {
            CHECK_INT(0, n, "%s is not alice (a name that merely shares a "
                      "prefix gets nothing)", ids[i]);
            continue;
        }
        if (!CHECK_INT(1, n, "tab %d of alice", i)) {
            continue;
        }
        CHECK_INT(head, evs[0].seq, "every tab reads the same entry");
        CHECK_COMPLETION(&evs[0], ids[i], 1234, "t1");
    }
}

UNIT_TEST(test_completion_of_a_prefixed_name_reaches_only_that_name)
{
    fx_t fx;
    sse_hold_t h;
    const char *a1, *a2, *b1;
    int delivered = -1;

    if (!fx_open(&fx, 8, 16, 4)
        || !(a1 = fx_tab(&fx, "alice", PID_A, 1, NULL, &h))
        || !(a2 = fx_tab(&fx, "alice", PID_A, 1, NULL, &h))
        || !(b1 = fx_tab(&fx, "alice2", PID_A, 1, NULL, &h))) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                              fx.reg, b1, "t", 5, &delivered),
             "alice2");
    CHECK_INT(1, delivered, "alice2 has one tab; alice's are not its own");
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                              fx.reg, a2, "t", 5, &delivered),
             "alice");
    CHECK_INT(2, delivered, "alice has two tabs; alice2 is another name");
}

UNIT_TEST(test_completion_refuses_unknown_ids_and_invalid_task_ids)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *unknown;
    char longtask[SSE_TOKEN_MAX + 2];
    apr_uint64_t head;
    int delivered = -1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "alice", PID_A, 1, NULL, &h))) {
        return;
    }
    unknown = fx_id(&fx, "alice");
    head = sse_registry_head(fx.reg);
    CHECK_RV(APR_ENOENT, sse_registry_notify_completion(
                             fx.reg, unknown, "t1", 2, &delivered),
             "an issued id without listener (its name has one)");
    CHECK_INT(0, delivered, "nothing delivered");
    delivered = -1;
    CHECK_RV(APR_EINVAL, sse_registry_notify_completion(
                             fx.reg, a, "-t", 2, &delivered),
             "an invalid task id");
    CHECK_INT(0, delivered, "nothing delivered on an invalid task id");
    CHECK_RV(APR_EINVAL, sse_registry_notify_completion(
                             fx.reg, a, "t:1", 2, &delivered),
             "a task id with :");
    CHECK_RV(APR_EINVAL, sse_registry_notify_completion(
                             fx.reg, a, "_t", 2, &delivered),
             "a task id with a leading _");
    CHECK_RV(APR_EINVAL, sse_registry_notify_completion(
                             fx.reg, a, "", 2, &delivered),
             "an empty task id");
    memset(longtask, 't', SSE_TOKEN_MAX + 1);
    longtask[SSE_TOKEN_MAX + 1] = '\0';
    CHECK_RV(APR_EINVAL, sse_registry_notify_completion(
                             fx.reg, a, longtask, 2, &delivered),
             "a task id of 65 bytes");
    CHECK_INT(head, sse_registry_head(fx.reg), "nothing published");
}

UNIT_TEST(test_completion_accepts_a_task_id_with_underscores)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a;
    apr_status_t rv;
    int delivered = -1;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "alice", PID_A, 1, NULL, &h))) {
        return;
    }
    /* SPEC §6: the example module's task id is timeout_task */
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                              fx.reg, a, "timeout_task", 2, &delivered),
             "task id timeout_task");
    CHECK_INT(1, delivered, "alice's one tab");
    if (CHECK_INT(1, fx_read(&fx, &h, h.cursor, evs, &rv), "read")) {
        CHECK_COMPLETION(&evs[0], a, 2, "timeout_task");
    }
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                              fx.reg, a, "t_", 3, &delivered),
             "task id with a trailing _");
    CHECK_INT(1, delivered, "delivered");
}

UNIT_TEST(test_completion_matches_the_whole_name_before_the_last_underscore)
{
    fx_t fx;
    sse_hold_t h[7];
    sse_event_t evs[64];
    /* names: a_b twice, then names that share a prefix or a part of it */
    const char *names[7] = {"a_b", "a_b", "a", "a_b_c", "b", "a_", "ab"};
    const char *ids[7];
    apr_size_t nl;
    apr_status_t rv;
    int i, n, delivered = -1;

    if (!fx_open(&fx, 16, 32, 4)) {
        return;
    }
    for (i = 0; i < 7; i++) {
        ids[i] = fx_id(&fx, names[i]);
        REQUIRE_RV(APR_SUCCESS, sse_id_parse(ids[i], &nl), "parse %s",
                   ids[i]);
        CHECK_INT(strlen(names[i]), nl, "the name of %s", ids[i]);
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A + i % 2, 10,
                                           &h[i]), "connect %s", ids[i]);
    }
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_notify_completion(fx.reg, ids[0], "t1", 100,
                                              &delivered),
               "notify-completions for a_b");
    CHECK_INT(2, delivered, "a_b has two tabs; a, a_b_c, b, a_ and ab are "
              "other names");
    for (i = 0; i < 7; i++) {
        n = fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        CHECK_RV(APR_SUCCESS, rv, "read %s", ids[i]);
        if (i >= 2) {
            CHECK_INT(0, n, "%s (name %s) is not a_b", ids[i], names[i]);
            continue;
        }
        if (!CHECK_INT(1, n, "tab %d of a_b", i)) {
            continue;
        }
        CHECK_STR("a_b", evs[0].key, "the whole name, underscore included");
        CHECK_COMPLETION(&evs[0], ids[i], 100, "t1");
    }
    /* and from the other side: each of the other names reaches only itself */
    for (i = 2; i < 7; i++) {
        delivered = -1;
        CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                                  fx.reg, ids[i], "t2", 200, &delivered),
                 "notify-completions for %s", names[i]);
        CHECK_INT(1, delivered, "%s has one tab; a_b's are not its own",
                  names[i]);
        n = fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        if (CHECK_INT(1, n, "%s reads its own completion", names[i])) {
            CHECK_COMPLETION(&evs[0], ids[i], 200, "t2");
        }
    }
    for (i = 0; i < 2; i++) {
        n = fx_read(&fx, &h[i], h[i].cursor, evs, &rv);
        CHECK_INT(1, n, "tab %d of a_b still has only its own completion", i);
    }
}

UNIT_TEST(test_completion_reaches_300_tabs_of_one_name_with_one_entry)
{
    enum { TABS = 300 };
    fx_t fx;
    sse_hold_t *h = apr_pcalloc(unit_pool(), TABS * sizeof(*h)), ho;
    const char **ids = apr_pcalloc(unit_pool(), TABS * sizeof(*ids));
    const char *other;
    sse_event_t evs[64];
    fx_routed_t *r = apr_pcalloc(unit_pool(), sizeof(*r));
    apr_uint64_t head;
    apr_status_t rv;
    int i, delivered = -1;

    if (!fx_open(&fx, TABS + 8, 16, 2)) {
        return;
    }
    for (i = 0; i < TABS; i++) {
        ids[i] = fx_id(&fx, "many");
        REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, ids[i], PID_A, 1, &h[i]),
                   "%d", i);
    }
    other = fx_id(&fx, "many2");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, other, PID_A, 1, &ho), "other");
    head = sse_registry_head(fx.reg);
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(
                              fx.reg, ids[0], "t", 2, &delivered),
             "notify-completions");
    CHECK_INT(TABS, delivered, "every tab: no bound of ids per name");
    CHECK_INT(head + 1, sse_registry_head(fx.reg),
              "one ring entry, however many tabs");

    CHECK_INT(0, sse_registry_route(fx.reg, head, head + 1, PID_A,
                                    fx_route_cb, r), "nothing overwritten");
    CHECK_INT(TABS, r->n, "one callback per tab held by pid A");
    for (i = 0; i < r->n && i < (int)(sizeof(r->call) / sizeof(r->call[0]));
         i++) {
        CHECK(r->call[i].kind == SSE_EV_NAME && r->call[i].seq == head
                  && r->call[i].slot != ho.slot,
              "callback %d: the completion, for a tab of many", i);
    }
    for (i = 0; i < TABS; i++) {
        if (!CHECK_INT(1, fx_read(&fx, &h[i], h[i].cursor, evs, &rv),
                       "tab %d reads it", i)
            || !CHECK_COMPLETION(&evs[0], ids[i], 2, "t")) {
            break;
        }
    }
    CHECK_INT(0, fx_read(&fx, &ho, ho.cursor, evs, &rv),
              "many2 is another name");
}

UNIT_TEST(test_completion_does_not_reach_a_tab_created_after_it)
{
    fx_t fx;
    sse_hold_t h1, h2;
    sse_event_t evs[64];
    const char *a1, *a2;
    apr_status_t rv;

    if (!fx_open(&fx, 4, 16, 2)
        || !(a1 = fx_tab(&fx, "alice", PID_A, 1, NULL, &h1))) {
        return;
    }
    a2 = fx_id(&fx, "alice");
    sse_registry_release(fx.reg, &h1, h1.cursor, 2);
    CHECK_INT(1, fx_complete(&fx, a1, "t1", 3), "one tab of alice");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a2, PID_A, 4, &h2),
               "a new tab of alice");
    CHECK_INT(0, fx_read(&fx, &h2, 0, evs, &rv),
              "the new tab does not get a completion published before it, "
              "even read from seq 0");
    CHECK_RV(APR_SUCCESS, rv, "read");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a1, PID_A, 5, &h1), "a1 back");
    if (CHECK_INT(1, fx_read(&fx, &h1, h1.cursor, evs, &rv),
                  "the first tab gets it")) {
        CHECK_COMPLETION(&evs[0], a1, 3, "t1");
    }
    CHECK_INT(2, fx_complete(&fx, a2, "t2", 6), "now two tabs");
    if (CHECK_INT(1, fx_read(&fx, &h2, h2.cursor, evs, &rv),
                  "the new tab gets the next one")) {
        CHECK_COMPLETION(&evs[0], a2, 6, "t2");
    }
}

UNIT_TEST(test_completion_skips_a_new_tab_of_its_name_in_a_reused_slot)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    const char *a1, *a2;
    apr_uint32_t ended;
    apr_status_t rv;

    if (!fx_open(&fx, 1, 16, 2)
        || !(a1 = fx_tab(&fx, "alice", PID_A, 1, NULL, &h))) {
        return;
    }
    a2 = fx_id(&fx, "alice");
    sse_registry_release(fx.reg, &h, h.cursor, 2);
    CHECK_INT(1, fx_complete(&fx, a1, "t1", 3), "a1");
    REQUIRE_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a1, 0, &ended),
               "remove");
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a2, PID_A, 4, &h),
               "another tab of alice takes the only slot");
    CHECK_INT(h.cursor, sse_registry_head(fx.reg) - 1, "cursor at the head");
    CHECK_INT(0, fx_read(&fx, &h, 0, evs, &rv),
              "a1's completion is not a2's, same name and slot or not");
    CHECK_INT(0, fx_missed(&fx, a2), "and none counted missed");
}

UNIT_TEST(test_event_data_frames_a_completion_for_each_recipient)
{
    sse_event_t ev;
    char buf[SSE_DATA_MAX];
    const char *data = NULL;
    const char *tab_a = "alice_0123456789abcdefghijABCDEFG";
    const char *tab_b = "alice_ZYXWVUTSRQPONMLKJIHGFEDCBA9";
    apr_size_t len = 0;
    static const char want_a[] =
        "\"completed^{\\\"timestamp\\\":1700000000123,"
        "\\\"id\\\":\\\"alice_0123456789abcdefghijABCDEFG\\\","
        "\\\"taskid\\\":\\\"timeout_task\\\"}\"";
    static const char want_b[] =
        "\"completed^{\\\"timestamp\\\":1700000000123,"
        "\\\"id\\\":\\\"alice_ZYXWVUTSRQPONMLKJIHGFEDCBA9\\\","
        "\\\"taskid\\\":\\\"timeout_task\\\"}\"";

    memset(&ev, 0, sizeof(ev));
    ev.seq = 7;
    ev.ms = 1700000000123LL;
    ev.kind = SSE_EV_NAME;
    strcpy(ev.key, "alice");
    strcpy(ev.data, "timeout_task");
    ev.len = 12;
    memset(buf, 'x', sizeof(buf));
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_event_data(&ev, tab_a, buf, &data, &len),
               "first tab");
    CHECK(data == buf, "framed into the buffer");
    CHECK_MEM(want_a, sizeof(want_a) - 1, data, len,
              "a JSON string with the recipient's id (SPEC §3)");
    CHECK_INT('\0', buf[len], "NUL-terminated");
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_event_data(&ev, tab_b, buf, &data, &len),
               "second tab");
    CHECK_MEM(want_b, sizeof(want_b) - 1, data, len,
              "the same entry framed for another tab names that tab");
    CHECK_MEM("timeout_task", 12, ev.data, ev.len, "the entry is unchanged");
}

UNIT_TEST(test_event_data_returns_a_key_payload_as_stored)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    char buf[SSE_DATA_MAX];
    const char *a, *data = NULL;
    apr_size_t len = 0;
    apr_status_t rv;

    if (!fx_open(&fx, 4, 8, 2)
        || !(a = fx_tab(&fx, "a", PID_A, 1, "news", &h))) {
        return;
    }
    CHECK_INT(1, fx_notify(&fx, "news", 2), "news");
    REQUIRE(fx_read(&fx, &h, h.cursor, evs, &rv) == 1, "read");
    memset(buf, 'x', sizeof(buf));
    REQUIRE_RV(APR_SUCCESS, sse_registry_event_data(&evs[0], a, buf, &data,
                                                    &len), "event data");
    CHECK(data == evs[0].data, "the payload in the entry, not a copy");
    CHECK_INT(evs[0].len, len, "its length");
    CHECK_MEM("\"notify^news\"", 13, data, len,
              "framed once at publish time, the same for every recipient");
    CHECK(buf[0] == 'x' && buf[SSE_DATA_MAX - 1] == 'x',
          "the buffer is not used for a key's notification");
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_event_data(&evs[0], fx_id(&fx, "b"), buf, &data,
                                       &len), "another recipient");
    CHECK_MEM("\"notify^news\"", 13, data, len, "whoever receives it");
}

UNIT_TEST(test_event_data_frames_the_longest_name_and_task_id)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[64];
    char name[SSE_TOKEN_MAX + 1], task[SSE_TOKEN_MAX + 1];
    const char *a;
    apr_status_t rv;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    memset(name, 'n', SSE_TOKEN_MAX);
    name[SSE_TOKEN_MAX] = '\0';
    memset(task, 't', SSE_TOKEN_MAX);
    task[SSE_TOKEN_MAX] = '\0';
    a = fx_id(&fx, name);
    REQUIRE_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 1, &h), "connect");
    CHECK_INT(1, fx_complete(&fx, a, task, 9223372036854775807LL),
              "a 64-byte name, a 64-byte task id, the largest timestamp");
    if (CHECK_INT(1, fx_read(&fx, &h, h.cursor, evs, &rv), "read")) {
        CHECK_STR(name, evs[0].key, "the whole 64-byte name");
        CHECK_COMPLETION(&evs[0], a, 9223372036854775807LL, task);
    }
}
