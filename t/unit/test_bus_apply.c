/* The bus, the registry's side: the log's entries land at their own seqs,
 * a stream that opens after its events finds them, holes are told. */
#include <string.h>

#include "src/sse_bus.h"
#include "fixture.h"
#include "unit.h"

static sse_bus_entry_t key_entry(apr_uint64_t seq, const char *key)
{
    sse_bus_entry_t e;

    memset(&e, 0, sizeof(e));
    e.seq = seq;
    e.ms = (apr_int64_t)seq;
    e.kind = SSE_BUS_KEY;
    e.key = key;
    return e;
}

static sse_bus_entry_t id_entry(apr_uint64_t seq, int kind, const char *id)
{
    sse_bus_entry_t e = key_entry(seq, NULL);

    e.kind = kind;
    e.id = id;
    return e;
}

static apr_status_t apply(fx_t *fx, sse_bus_entry_t *e, int n,
                          int *n_ended, apr_uint32_t *ended)
{
    apr_uint32_t dummy[8];
    int dn;

    return sse_registry_bus_apply(fx->reg, e, n, 1000, ended ? ended : dummy,
                                  8, n_ended ? n_ended : &dn);
}

/* A bus registry with a stream of a listener of "u" holding @a key
 * (since @a since) that connected with serial @a serial. */
static const char *bus_tab(fx_t *fx, apr_uint64_t serial, const char *key,
                           apr_uint64_t since, const apr_uint64_t *last,
                           sse_hold_t *h)
{
    sse_bus_listener_t l;
    const char *id = fx_id(fx, "u");

    memset(&l, 0, sizeof(l));
    l.serial = serial;
    l.created_seq = 1;
    l.nkeys = key ? 1 : 0;
    l.keys[0] = key;
    l.since[0] = since;
    if (sse_registry_bus_connect(fx->reg, id, PID_A, NULL, 5, &l, last, h)
        != APR_SUCCESS) {
        CHECK(0, "bus_connect of %s", id);
        return NULL;
    }
    return id;
}

static int bus_open(fx_t *fx)
{
    if (!fx_open(fx, 8, 64, 4)) {
        return 0;
    }
    sse_registry_set_bus(fx->reg, 1);
    return 1;
}

UNIT_TEST(test_bus_entries_land_at_their_seqs)
{
    sse_bus_entry_t e[3];
    int delivered;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    CHECK_INT(0, (int)sse_registry_bus_floor(fx.reg), "nothing applied");
    e[0] = key_entry(500, "k");
    e[1] = id_entry(501, SSE_BUS_LISTEN, "nobody_here");
    e[2] = key_entry(502, "other");
    e[1].key = "k";
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 3, NULL, NULL), "apply");
    CHECK_INT(503, (int)sse_registry_head(fx.reg), "one ring entry each");
    CHECK_INT(503, (int)sse_registry_bus_floor(fx.reg), "next expected");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 3, NULL, NULL), "read twice");
    CHECK_INT(503, (int)sse_registry_head(fx.reg), "applied once");
    CHECK_RV(APR_ENOTIMPL, sse_registry_notify_key(fx.reg, "k", 1,
                                                   &delivered),
             "only the log writes the ring");
}

UNIT_TEST(test_bus_a_stream_finds_events_applied_before_it_came)
{
    sse_bus_entry_t e[4];
    sse_event_t evs[64];
    apr_uint64_t last = 100;
    apr_status_t rv;
    sse_hold_t h;
    fx_t fx;
    int n;

    if (!bus_open(&fx)) {
        return;
    }
    e[0] = key_entry(101, "k");
    e[1] = key_entry(102, "k");     /* same bucket or not: filtered */
    e[2] = key_entry(103, "kk");
    e[3] = key_entry(104, "k");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 4, NULL, NULL), "apply");
    REQUIRE(bus_tab(&fx, 1, "k", 50, &last, &h), "connect");
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    REQUIRE(n == 3, "its three events, none of the other key");
    CHECK_INT(101, (int)evs[0].seq, "in order");
    CHECK_INT(102, (int)evs[1].seq, "in order");
    CHECK_INT(104, (int)evs[2].seq, "in order");
    CHECK_INT(0, (int)h.missed_to, "nothing missed");
}

UNIT_TEST(test_bus_a_key_taken_after_the_event_does_not_get_it)
{
    sse_bus_entry_t e[2];
    sse_event_t evs[64];
    apr_uint64_t last = 100;
    apr_status_t rv;
    sse_hold_t h;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    e[0] = key_entry(101, "k");
    e[1] = key_entry(102, "k");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 2, NULL, NULL), "apply");
    REQUIRE(bus_tab(&fx, 1, "k", 101, &last, &h), "connect");
    CHECK_INT(1, fx_read(&fx, &h, h.cursor, evs, &rv), "only after since");
}

UNIT_TEST(test_bus_a_listen_entry_adds_the_key_here)
{
    sse_bus_entry_t e[2];
    sse_event_t evs[64];
    apr_status_t rv;
    const char *id;
    sse_hold_t h;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    e[0] = key_entry(10, "first");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 1, NULL, NULL), "start");
    REQUIRE(id = bus_tab(&fx, 1, NULL, 0, NULL, &h), "connect");
    e[0] = id_entry(11, SSE_BUS_LISTEN, id);
    e[0].key = "k";
    e[1] = key_entry(12, "k");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 2, NULL, NULL), "apply");
    REQUIRE(fx_read(&fx, &h, h.cursor, evs, &rv) == 1, "the notify");
    CHECK_INT(12, (int)evs[0].seq, "at its seq");
}

UNIT_TEST(test_bus_a_newer_connect_elsewhere_ends_the_stream_here)
{
    apr_uint32_t ended[8];
    sse_bus_entry_t e;
    sse_event_t evs[64];
    apr_status_t rv;
    const char *id;
    int n_ended = 0;
    sse_hold_t h;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    e = key_entry(10, "first");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, NULL, NULL), "start");
    REQUIRE(id = bus_tab(&fx, 3, NULL, 0, NULL, &h), "connect");
    e = id_entry(11, SSE_BUS_CONNECT, id);
    e.serial = 3;           /* its own connect: nothing to end */
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, &n_ended, ended), "own");
    CHECK_INT(0, n_ended, "its own entry ends nothing");
    CHECK_INT(12, (int)sse_registry_head(fx.reg), "a NOP at its seq");
    e = id_entry(12, SSE_BUS_CONNECT, id);
    e.serial = 4;
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, &n_ended, ended), "newer");
    REQUIRE(n_ended == 1, "one process to wake");
    CHECK_INT(PID_A, (int)ended[0], "the holder");
    fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "the stream no longer holds its listener");
}

UNIT_TEST(test_bus_remove_and_clear_end_streams)
{
    sse_bus_entry_t e;
    sse_event_t evs[64];
    apr_status_t rv;
    const char *id;
    int n_ended = 0;
    sse_hold_t h;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    e = key_entry(10, "first");
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, NULL, NULL), "start");
    REQUIRE(id = bus_tab(&fx, 1, NULL, 0, NULL, &h), "connect");
    e = id_entry(11, SSE_BUS_REMOVE, id);
    e.retire_ms = 10000;
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, &n_ended, NULL), "remove");
    CHECK_INT(1, n_ended, "its holder is woken");
    fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_EOF, rv, "the stream ends");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, id), "removed here");
    REQUIRE(id = bus_tab(&fx, 2, NULL, 0, NULL, &h), "another");
    e = id_entry(12, SSE_BUS_CLEAR, NULL);
    REQUIRE_RV(APR_SUCCESS, apply(&fx, &e, 1, &n_ended, NULL), "clear");
    CHECK_INT(-1, n_ended, "every process is woken");
    CHECK_INT(13, (int)sse_registry_head(fx.reg), "one entry");
}

UNIT_TEST(test_bus_a_hole_in_the_log_is_told_as_missed)
{
    sse_bus_entry_t e[2];
    apr_uint64_t last = 101;
    sse_hold_t h;
    fx_t fx;

    if (!bus_open(&fx)) {
        return;
    }
    e[0] = key_entry(101, "k");
    e[1] = key_entry(200, "k");     /* 102..199 lost (trimmed, Redis) */
    REQUIRE_RV(APR_SUCCESS, apply(&fx, e, 2, NULL, NULL), "apply");
    CHECK_INT(1, (int)sse_registry_bus_stats(fx.reg)->gaps, "one hole");
    CHECK_INT(201, (int)sse_registry_head(fx.reg), "the ring goes on");
    REQUIRE(bus_tab(&fx, 1, "k", 50, &last, &h), "resume from 101");
    CHECK_INT(102, (int)h.missed_from, "missed from");
    CHECK_INT(199, (int)h.missed_to, "to the hole's end");
}
