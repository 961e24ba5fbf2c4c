/* sse_registry: a full table reclaims a listener without a stream (never
 * delivered first, then the one dormant longest, never a live stream);
 * per-client bounds on streams and listeners; the counts behind them
 * through every path; honest resume for a listener made again. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

/* A client of address @a ip with these bounds. */
static sse_client_t client(const char *ip, apr_uint32_t max_listeners,
                           apr_uint32_t max_streams)
{
    sse_client_t cl;

    memset(&cl, 0, sizeof(cl));
    CHECK_RV(APR_SUCCESS, sse_client_parse(ip, cl.addr), "parse %s", ip);
    cl.max_listeners = max_listeners;
    cl.max_streams = max_streams;
    return cl;
}

static apr_status_t connect_as(fx_t *fx, const char *id, apr_uint32_t pid,
                               const sse_client_t *cl, apr_int64_t now,
                               sse_hold_t *hold)
{
    int created;

    return sse_registry_connect(fx->reg, id, pid, cl, now, NULL, hold,
                                &created);
}

/* Listeners and streams the registry counts for @a cl (0, 0 if none). */
static void counts(fx_t *fx, const sse_client_t *cl, apr_uint32_t *l,
                   apr_uint32_t *s)
{
    apr_status_t rv = sse_registry_client_counts(fx->reg, cl->addr, l, s);

    CHECK(rv == APR_SUCCESS || rv == APR_ENOENT, "client counts: %d", rv);
}

#define CHECK_CLIENT(fx, cl, listeners, streams, what)                      \
    do {                                                                    \
        apr_uint32_t l_, s_;                                                \
        counts((fx), (cl), &l_, &s_);                                       \
        CHECK_INT((listeners), l_, "listeners: %s", (what));               \
        CHECK_INT((streams), s_, "streams: %s", (what));                   \
    } while (0)

/* A listener of @a name from @a pid and @a cl whose stream ended at
 * @a now, having delivered @a delivered events first. */
static const char *idle_tab(fx_t *fx, const char *name, apr_uint32_t pid,
                            const sse_client_t *cl, apr_int64_t now,
                            int delivered)
{
    const char *id = fx_id(fx, name);
    sse_hold_t h;

    if (!CHECK_RV(APR_SUCCESS, connect_as(fx, id, pid, cl, now, &h),
                  "connect %s", id)) {
        return NULL;
    }
    if (delivered) {
        CHECK_RV(APR_SUCCESS, fx_ack(fx, &h, h.cursor, delivered, now),
                 "ack");
    }
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx->reg, &h, h.cursor, now),
             "release %s", id);
    return id;
}

static int gone(fx_t *fx, const char *id)
{
    return sse_registry_lookup(fx->reg, id) == APR_ENOENT;
}

UNIT_TEST(test_client_addresses_count_ipv4_whole_and_ipv6_by_its_64)
{
    unsigned char a[SSE_CLIENT_ADDR_LEN], b[SSE_CLIENT_ADDR_LEN];

    CHECK_RV(APR_SUCCESS, sse_client_parse("192.0.2.1", a), "v4");
    CHECK_RV(APR_SUCCESS, sse_client_parse("192.0.2.2", b), "v4");
    CHECK(memcmp(a, b, sizeof(a)) != 0, "two IPv4 hosts are two clients");
    CHECK_RV(APR_SUCCESS, sse_client_parse("::ffff:192.0.2.1", b), "mapped");
    CHECK(memcmp(a, b, sizeof(a)) == 0, "an IPv4-mapped address is its "
          "IPv4 address");
    CHECK_RV(APR_SUCCESS, sse_client_parse("2001:db8:1:2::1", a), "v6");
    CHECK_RV(APR_SUCCESS, sse_client_parse("2001:db8:1:2:ffff:1:2:3", b),
             "v6");
    CHECK(memcmp(a, b, sizeof(a)) == 0, "one /64 is one client");
    CHECK_RV(APR_SUCCESS, sse_client_parse("2001:db8:1:3::1", b), "v6");
    CHECK(memcmp(a, b, sizeof(a)) != 0, "another /64 is another client");
    CHECK_RV(APR_SUCCESS, sse_client_parse("fe80::1%eth0", b), "zone id");
    CHECK_RV(APR_EINVAL, sse_client_parse("", a), "empty");
    CHECK_RV(APR_EINVAL, sse_client_parse(NULL, a), "none");
    CHECK_RV(APR_EINVAL, sse_client_parse("localhost", a), "a name");
    CHECK_RV(APR_EINVAL, sse_client_parse("1.2.3.4.5", a), "junk");
    CHECK_RV(APR_EINVAL, sse_client_parse("1:2:3:4:5:6:7:8:9:10:11:12:13:14:"
                                          "15:16:17:18:19:20:21:22", a),
             "longer than any address");
}

UNIT_TEST(test_a_full_table_reclaims_never_delivered_first_oldest_first)
{
    fx_t fx;
    sse_hold_t h, live;
    sse_stats_t st;
    const char *used_old, *fresh_old, *used_new, *fresh_new, *n1, *n2, *n3;

    if (!fx_open(&fx, 5, 32, 4)) {
        return;
    }
    used_old = idle_tab(&fx, "u", PID_A, NULL, 10, 3);
    fresh_old = idle_tab(&fx, "f", PID_A, NULL, 20, 0);
    used_new = idle_tab(&fx, "u", PID_A, NULL, 30, 1);
    fresh_new = idle_tab(&fx, "f", PID_A, NULL, 40, 0);
    REQUIRE(fx_tab(&fx, "live", PID_B, 1, NULL, &live) != NULL, "live");
    REQUIRE(used_old && fresh_old && used_new && fresh_new, "setup");
    CHECK_COUNTERS(fx.reg);

    n1 = fx_id(&fx, "n");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, n1, PID_C, 50, &h), "n1");
    CHECK(gone(&fx, fresh_old), "the oldest never-delivered goes first");
    CHECK(!gone(&fx, used_old), "before an older one that delivered");
    n2 = fx_id(&fx, "n");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, n2, PID_C, 51, &h), "n2");
    CHECK(gone(&fx, fresh_new), "then the next never-delivered");
    n3 = fx_id(&fx, "n");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, n3, PID_C, 52, &h), "n3");
    CHECK(gone(&fx, used_old), "then the one dormant longest");
    CHECK(!gone(&fx, used_new), "not the newer");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "n"), PID_C, 53, &h),
             "n4");
    CHECK(gone(&fx, used_new), "the last without a stream");
    CHECK_RV(APR_ENOSPC, fx_connect(&fx, fx_id(&fx, "n"), PID_C, 54, &h),
             "every slot holds a live stream: 503");
    CHECK(sse_reg_held(fx.reg, &live) != NULL, "a live stream is never "
          "reclaimed");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(4, st.reclaimed, "four reclaimed");
    CHECK_INT(1, st.rejected_full, "one refused");
    CHECK_INT(5, st.listeners, "the table stays full");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_activity_moves_an_idle_listener_behind_the_others)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b;

    if (!fx_open(&fx, 2, 32, 4)) {
        return;
    }
    a = idle_tab(&fx, "a", PID_A, NULL, 10, 1);
    b = idle_tab(&fx, "b", PID_A, NULL, 20, 1);
    REQUIRE(a && b, "setup");
    /* listen is activity: a is now the more recent */
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, a, "k", 30), "listen");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "c"), PID_A, 40, &h),
             "c");
    CHECK(gone(&fx, b), "b dormant longest");
    CHECK(!gone(&fx, a), "a was active since");
    /* a stream that ends rejoins at the tail too */
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_a_reclaimed_listener_leaves_nothing_behind)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b;
    int delivered = -1;

    if (!fx_open(&fx, 1, 32, 4)) {
        return;
    }
    a = fx_id(&fx, "alice");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 1, &h), "a");
    CHECK_RV(APR_SUCCESS, sse_registry_listen(fx.reg, a, "k", 1), "listen");
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &h, h.cursor, 2),
             "release");
    b = fx_id(&fx, "bob");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, b, PID_A, 3, &h), "b reclaims a");
    CHECK_RV(APR_SUCCESS, sse_registry_notify_key(fx.reg, "k", 4,
                                                  &delivered), "notify");
    CHECK_INT(0, delivered, "a's key went with it");
    CHECK_RV(APR_ENOENT, sse_registry_notify_completion(fx.reg, a, "t", 4,
                                                        &delivered),
             "a's name went with it");
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &h, h.cursor, 5),
             "release b");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, a, PID_A, 6, &h),
             "a reclaimed id is not retired: it comes back");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_one_address_may_hold_so_many_streams_and_no_more)
{
    fx_t fx;
    sse_client_t one = client("192.0.2.1", 0, 2);
    sse_client_t other = client("192.0.2.2", 0, 2);
    sse_client_t same_64 = client("2001:db8::1", 0, 1);
    sse_client_t same_64b = client("2001:db8::2", 0, 1);
    sse_hold_t h1, h2, h3;
    sse_stats_t st;
    const char *a = NULL, *b = NULL, *c = NULL;
    int created = -1;

    if (!fx_open(&fx, 16, 32, 4)) {
        return;
    }
    a = fx_id(&fx, "a");
    b = fx_id(&fx, "b");
    c = fx_id(&fx, "c");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, a, PID_A, &one, 1, &h1), "1st");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, b, PID_A, &one, 1, &h2), "2nd");
    CHECK_RV(SSE_ECLIENT_STREAMS,
             sse_registry_connect(fx.reg, c, PID_A, &one, 1, NULL, &h3,
                                  &created), "3rd: past the bound");
    CHECK_INT(0, created, "nothing made");
    CHECK(gone(&fx, c), "the refused id has no listener");
    CHECK_CLIENT(&fx, &one, 2, 2, "after the refusal");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, c, PID_A, &other, 1, &h3),
             "another address still gets streams");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, a, PID_B, &one, 2, &h1),
             "a reconnect of its own stream is not one more");
    CHECK_CLIENT(&fx, &one, 2, 2, "after its own takeover");
    CHECK_RV(SSE_ECLIENT_STREAMS, connect_as(&fx, c, PID_A, &one, 2, &h3),
             "taking over another address's stream is one more");
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &h2, h2.cursor, 3),
             "one stream ends");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, c, PID_A, &one, 4, &h3),
             "room again: it takes over c from the other address");
    CHECK_CLIENT(&fx, &one, 2, 2, "a and c's streams; owner of a and b");
    CHECK_CLIENT(&fx, &other, 1, 0, "still the owner of c");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, fx_id(&fx, "d"), PID_A, &same_64,
                                     5, &h1), "v6");
    CHECK_RV(SSE_ECLIENT_STREAMS, connect_as(&fx, fx_id(&fx, "d"), PID_A,
                                             &same_64b, 5, &h1),
             "the same /64 is the same client");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(3, st.rejected_client, "refusals counted");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_past_its_listener_bound_a_client_reclaims_its_own_oldest)
{
    fx_t fx;
    sse_client_t one = client("192.0.2.1", 3, 0);
    sse_client_t other = client("192.0.2.2", 3, 0);
    sse_hold_t h, live[3];
    sse_stats_t st;
    const char *theirs, *mine[3], *next;
    int i;

    if (!fx_open(&fx, 16, 32, 4)) {
        return;
    }
    theirs = idle_tab(&fx, "t", PID_A, &other, 1, 0);  /* oldest of all */
    for (i = 0; i < 3; i++) {
        mine[i] = idle_tab(&fx, "m", PID_A, &one, 10 + i, 0);
    }
    REQUIRE(theirs && mine[0] && mine[1] && mine[2], "setup");
    next = fx_id(&fx, "m");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, next, PID_A, &one, 20, &h),
             "a page reloaded: never refused");
    CHECK(gone(&fx, mine[0]), "its own oldest idle listener went");
    CHECK(!gone(&fx, theirs), "not another client's, though older");
    CHECK(!gone(&fx, mine[1]) && !gone(&fx, mine[2]), "only one");
    CHECK_CLIENT(&fx, &one, 3, 1, "three at most");
    /* now every listener it may make holds a stream */
    CHECK_RV(APR_SUCCESS, connect_as(&fx, mine[1], PID_A, &one, 21,
                                     &live[1]), "1");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, mine[2], PID_A, &one, 21,
                                     &live[2]), "2");
    CHECK_RV(SSE_ECLIENT_LISTENERS, connect_as(&fx, fx_id(&fx, "m"), PID_A,
                                               &one, 22, &h),
             "all three live: 429");
    CHECK_CLIENT(&fx, &one, 3, 3, "unchanged by the refusal");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, fx_id(&fx, "o"), PID_A, &other,
                                     22, &h), "the other address is free");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.reclaimed, "one reclaimed");
    CHECK_INT(1, st.rejected_client, "one refused");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_client_counts_follow_every_path)
{
    fx_t fx;
    sse_client_t one = client("192.0.2.1", 0, 0);
    sse_client_t two = client("192.0.2.2", 0, 0);
    sse_hold_t ha, hb, hc;
    const char *a, *b, *c;
    apr_uint32_t ended;
    int removed;

    if (!fx_open(&fx, 8, 32, 4)) {
        return;
    }
    a = fx_id(&fx, "a");
    b = fx_id(&fx, "b");
    c = fx_id(&fx, "c");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, a, PID_A, &one, 1, &ha), "a");
    CHECK_RV(APR_SUCCESS, connect_as(&fx, b, PID_B, &one, 1, &hb), "b");
    CHECK_CLIENT(&fx, &one, 2, 2, "made two, streams two");
    /* a reconnect from another address moves the stream only */
    CHECK_RV(APR_SUCCESS, connect_as(&fx, a, PID_A, &two, 2, &ha),
             "takeover");
    CHECK_CLIENT(&fx, &one, 2, 1, "still owns a");
    CHECK_CLIENT(&fx, &two, 0, 1, "holds a's stream");
    CHECK_COUNTERS(fx.reg);
    /* stream end */
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &ha, ha.cursor, 3),
             "release");
    CHECK_CLIENT(&fx, &two, 0, 0, "two holds nothing: entry gone");
    CHECK_RV(APR_ENOENT, sse_registry_client_counts(fx.reg, two.addr,
                                                    &ended, &ended),
             "its entry was given back");
    /* child death */
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_B, 4),
             "child gone");
    CHECK_CLIENT(&fx, &one, 2, 0, "b's stream went with its child");
    CHECK_COUNTERS(fx.reg);
    /* unregister: a connected listener */
    CHECK_RV(APR_SUCCESS, connect_as(&fx, b, PID_A, &one, 5, &hb), "b");
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, b, 0, &ended),
             "unregister");
    CHECK_CLIENT(&fx, &one, 1, 0, "b gone, stream and all");
    /* cleanup: a dormant one */
    CHECK_RV(APR_SUCCESS, connect_as(&fx, c, PID_A, &two, 6, &hc), "c");
    CHECK_RV(APR_SUCCESS, sse_registry_cleanup(fx.reg, HOUR_MS + 5, HOUR_MS,
                                               &removed), "cleanup");
    CHECK_INT(1, removed, "a was dormant");
    CHECK_CLIENT(&fx, &one, 0, 0, "a cleaned up");
    CHECK_CLIENT(&fx, &two, 1, 1, "c has its stream");
    /* clear */
    CHECK_RV(APR_SUCCESS, sse_registry_clear(fx.reg, 0, &removed), "clear");
    CHECK_CLIENT(&fx, &two, 0, 0, "cleared");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_repair_rebuilds_the_idle_lists_and_the_client_counts)
{
    fx_t fx;
    sse_client_t one = client("192.0.2.1", 2, 0);
    sse_hold_t h, live;
    const char *old, *newer, *theirs;
    apr_uint32_t i;

    if (!fx_open(&fx, 3, 32, 4)) {
        return;
    }
    newer = idle_tab(&fx, "n", PID_A, &one, 50, 1);
    old = idle_tab(&fx, "o", PID_A, &one, 10, 1);   /* joined last */
    REQUIRE(newer && old, "setup");
    theirs = fx_id(&fx, "t");
    REQUIRE_RV(APR_SUCCESS, connect_as(&fx, theirs, PID_B, NULL, 5, &live),
               "live");
    /* a process died in the lock with everything half-linked */
    memset(fx.reg->client_bucket, 0, fx.reg->h->nbuckets * 4);
    for (i = 0; i < 2 * fx.reg->h->sz.max_listeners; i++) {
        fx.reg->client[i].listeners = 7;
        fx.reg->client[i].idle_head = 1;
    }
    fx.reg->h->idle_head[IDLE_USED] = fx.reg->h->idle_tail[IDLE_USED] = 0;
    fx.reg->slot[0].idle = 0;
    fx_died_in_lock(fx.reg);
    CHECK_CLIENT(&fx, &one, 2, 0, "recounted from the slots");
    CHECK_COUNTERS(fx.reg);
    /* rebuilt in activity order: old (10) before newer (50) */
    CHECK_RV(APR_SUCCESS, connect_as(&fx, fx_id(&fx, "x"), PID_A, &one, 60,
                                     &h), "past its bound");
    CHECK(gone(&fx, old), "the least active of its own went");
    CHECK(!gone(&fx, newer), "the more recent stayed");
    CHECK(sse_reg_held(fx.reg, &live) != NULL, "the live stream stayed");
    CHECK_COUNTERS(fx.reg);
}

UNIT_TEST(test_a_listener_made_again_reports_what_its_client_missed)
{
    fx_t fx;
    sse_hold_t h;
    const char *a, *b;
    apr_uint64_t last, again, created_seq;
    int created = 0;

    if (!fx_open(&fx, 1, 64, 4)) {
        return;
    }
    a = fx_tab(&fx, "alice", PID_A, 1, "k", &h);
    REQUIRE(a != NULL, "a");
    fx_notify_n(&fx, "k", 3, 2);
    last = sse_registry_head(fx.reg) - 1;   /* alice got up to here */
    CHECK_RV(APR_SUCCESS, fx_ack(&fx, &h, last, 3, 2), "ack");
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &h, last, 3), "end");
    b = fx_tab(&fx, "bob", PID_A, 4, "k", &h);     /* reclaims alice */
    REQUIRE(b != NULL && gone(&fx, a), "alice reclaimed");
    fx_notify_n(&fx, "k", 2, 5);            /* alice would have had them */
    CHECK_RV(APR_SUCCESS, sse_registry_release(fx.reg, &h, h.cursor, 6),
             "bob ends");
    /* alice comes back with her Last-Event-ID: bob's slot is reclaimed */
    created_seq = sse_registry_head(fx.reg) - 1;
    CHECK_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_A, NULL, 7,
                                               &last, &h, &created),
             "alice again");
    CHECK_INT(1, created, "a new listener");
    CHECK_INT(last + 1, h.missed_from, "missed from after her last event");
    CHECK_INT(created_seq, h.missed_to, "to the new listener's creation");
    CHECK_INT(created_seq, h.cursor, "resumes from its creation");
    /* a client that resumes from after the creation misses nothing */
    again = h.cursor;
    CHECK_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_B, NULL, 8,
                                               &again, &h, &created),
             "reconnect");
    CHECK_INT(0, h.missed_to, "nothing missed");
    /* nor does one that says nothing */
    CHECK_RV(APR_SUCCESS, sse_registry_unregister(fx.reg, a, 0, &h.prev_pid),
             "remove");
    CHECK_RV(APR_SUCCESS, sse_registry_connect(fx.reg, a, PID_B, NULL, 9,
                                               NULL, &h, &created),
             "no Last-Event-ID");
    CHECK_INT(1, created, "made again");
    CHECK_INT(0, h.missed_to, "no Last-Event-ID, no gap");
    CHECK_COUNTERS(fx.reg);
}
