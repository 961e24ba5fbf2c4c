/* sse_registry: a read walks the chains of its listener's name and keys,
 * so it costs what it returns, not the history; and a crash in the middle
 * of a publish leaves those chains whole. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

UNIT_TEST(test_a_quiet_listener_reads_its_one_event_without_the_busy_history)
{
    fx_t fx;
    sse_hold_t hb, hq;
    sse_event_t evs[16];
    const char *busy, *quiet;
    apr_uint64_t head;
    int i, n = -1;

    if (!fx_open(&fx, 4, 1024, 2)) {
        return;
    }
    busy = fx_tab(&fx, "busy", PID_A, 1, "busy", &hb);
    quiet = fx_tab(&fx, "quiet", PID_A, 1, "quiet", &hq);
    REQUIRE(busy && quiet, "setup");
    REQUIRE_RV(APR_SUCCESS, sse_registry_listen(fx.reg, quiet, "other", 1),
               "quiet listens to a second key too");
    CHECK_INT(1000, fx_notify_n(&fx, "busy", 1000, 2), "a busy history");
    for (i = 0; i < 20; i++) {
        fx_complete(&fx, busy, "t", 3);
    }
    fx.reg->examined = 0;
    CHECK_RV(APR_SUCCESS, sse_registry_read(fx.reg, &hq, hq.cursor, evs, 16,
                                            &n), "read with nothing");
    CHECK_INT(0, n, "nothing for the quiet listener");
    CHECK_INT(0, fx.reg->examined, "and no entry looked at to learn it");

    CHECK_INT(1, fx_notify(&fx, "quiet", 4), "one event for it");
    head = sse_registry_head(fx.reg);
    fx.reg->examined = 0;
    CHECK_RV(APR_SUCCESS, sse_registry_read(fx.reg, &hq, hq.cursor, evs, 16,
                                            &n), "read");
    if (CHECK_INT(1, n, "its one event")) {
        CHECK_INT(head - 1, evs[0].seq, "the newest entry");
    }
    CHECK(fx.reg->examined <= 4, "a read of 1 event after 1020 others "
          "looked at %llu entries: it must cost what it returns",
          (unsigned long long)fx.reg->examined);
}

UNIT_TEST(test_a_busy_listener_reads_its_backlog_in_batches_in_order)
{
    fx_t fx;
    sse_hold_t hb, hq;
    sse_event_t evs[16];
    apr_uint64_t first, after, want;
    const char *busy;
    int i, n = -1, total = 0;

    if (!fx_open(&fx, 4, 256, 2)) {
        return;
    }
    busy = fx_tab(&fx, "busy", PID_A, 1, "busy", &hb);
    REQUIRE(busy && fx_tab(&fx, "quiet", PID_A, 1, "quiet", &hq), "setup");
    REQUIRE_RV(APR_SUCCESS, sse_registry_listen(fx.reg, busy, "more", 1),
               "a second key");
    first = sse_registry_head(fx.reg);
    for (i = 0; i < 90; i++) {     /* key, other key, name, someone else */
        fx_notify(&fx, "busy", 2);
        fx_notify(&fx, "more", 2);
        fx_complete(&fx, busy, "t", 2);
        fx_notify(&fx, "quiet", 2);
    }
    /* 360 entries in a ring of 256: the first 104 are gone; of the 256
     * left, every fourth is quiet's */
    after = hb.cursor;
    want = 104;
    do {
        CHECK_RV(APR_SUCCESS, sse_registry_read(fx.reg, &hb, after, evs, 16,
                                                &n), "read");
        for (i = 0; i < n; i++) {
            want += want % 4 == 3;
            CHECK_INT(first + want, evs[i].seq, "event %d of the backlog",
                      total);
            after = evs[i].seq;
            want++;
            total++;
        }
    } while (n == 16 && total < 1000);
    CHECK_INT(192, total, "every entry of busy still in the ring, none of "
              "quiet's");
}

/* What a process killed in a publish after it moved the holders' heads
 * leaves: the entry written but not committed, next_seq not advanced,
 * the mutex marked taken. */
static void cut_last_publish(fx_t *fx)
{
    apr_uint64_t seq = sse_registry_head(fx->reg) - 1;

    fx->reg->ring[seq % fx->reg->h->sz.history].seq = 0;
    __atomic_store_n(&fx->reg->h->next_seq, seq, __ATOMIC_RELEASE);
    fx->reg->h->dirty = 1;
}

UNIT_TEST(test_a_publish_cut_short_by_a_crash_loses_no_earlier_event)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t evs[16];
    apr_uint64_t s1;
    apr_status_t rv;
    const char *a;
    int n;

    if (!fx_open(&fx, 4, 16, 2) || !(a = fx_tab(&fx, "a", PID_A, 1, "k", &h))) {
        return;
    }
    s1 = sse_registry_head(fx.reg);
    fx_notify(&fx, "k", 10);
    fx_notify(&fx, "k", 11);
    fx_notify(&fx, "k", 12);
    cut_last_publish(&fx);
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    CHECK_RV(APR_SUCCESS, rv, "read after the crash");
    if (CHECK_INT(2, n, "the two committed events, not the cut one")) {
        CHECK_INT(s1, evs[0].seq, "first");
        CHECK_INT(s1 + 1, evs[1].seq, "second");
    }
    fx_notify(&fx, "k", 13);
    n = fx_read(&fx, &h, h.cursor, evs, &rv);
    if (CHECK_INT(3, n, "the seq of the cut one is published again")) {
        CHECK_INT(s1 + 2, evs[2].seq, "third");
        CHECK_INT(13, evs[2].ms, "the new entry, not the cut one");
        CHECK_INT(s1 + 1, evs[2].prev, "linked to the last committed one");
    }
}

UNIT_TEST(test_a_head_inherited_from_another_chain_is_dropped_on_repair)
{
    fx_t fx;
    sse_hold_t ha, hb, hc;
    sse_event_t evs[16];
    apr_uint64_t y0, sx;
    apr_status_t rv;
    const char *b;
    int n;

    if (!fx_open(&fx, 4, 16, 2)
        || !fx_tab(&fx, "c", PID_A, 1, "y", &hc)
        || !fx_tab(&fx, "a", PID_A, 1, "x", &ha)
        || !(b = fx_tab(&fx, "b", PID_A, 1, "y", &hb))) {
        return;
    }
    y0 = sse_registry_head(fx.reg);
    fx_notify(&fx, "y", 10);
    sx = sse_registry_head(fx.reg);
    fx_notify(&fx, "x", 11);
    /* b's node of y died half made: it kept a head of the x chain */
    fx.reg->slot[hb.slot].keys[0].last = sx;
    fx.reg->h->dirty = 1;
    fx_notify(&fx, "y", 12);
    n = fx_read(&fx, &hc, hc.cursor, evs, &rv);
    if (CHECK_INT(2, n, "c has both events of y")) {
        CHECK_INT(y0, evs[0].seq, "the one before the repair");
        CHECK_INT(sx + 1, evs[1].seq, "the one after");
    }
}
