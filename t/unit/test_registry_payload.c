/* Payloads: a byte ring beside the event ring; an event whose payload
 * newer ones overwrote is lost (missed), never torn. */
#include <string.h>

#include "src/sse_registry.h"
#include "fixture.h"
#include "unit.h"

/* The events after @a after for @a hold, and the payload of the first. */
static int first_payload(fx_t *fx, const sse_hold_t *hold,
                         apr_uint64_t after, sse_event_t *ev, char *buf)
{
    int n = 0;

    if (sse_registry_read(fx->reg, hold, after, ev, 1, &n) != APR_SUCCESS
        || n != 1) {
        return -1;
    }
    return sse_registry_payload(fx->reg, hold, ev, buf) == APR_SUCCESS;
}

UNIT_TEST(test_a_payload_travels_with_its_event)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t ev;
    char buf[1024];
    const char *id;
    int delivered = 0;

    if (!fx_open(&fx, 8, 16, 4) || !(id = fx_tab(&fx, "u", PID_A, 1, "k",
                                                  &h))) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_notify_key_payload(
                 fx.reg, "k", "{\"a\":1}", 7, 2, &delivered), "publish");
    CHECK_INT(1, delivered, "one holder");
    REQUIRE(first_payload(&fx, &h, h.cursor, &ev, buf) == 1, "read it");
    CHECK_INT(7, ev.pay_len, "its length");
    CHECK_MEM("{\"a\":1}", 7, buf, 7, "its bytes");
    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion_payload(
                 fx.reg, id, "t1", "\"done\"", 6, 3, &delivered), "done");
    REQUIRE(first_payload(&fx, &h, ev.seq, &ev, buf) == 1, "read it");
    CHECK_INT(SSE_EV_NAME, ev.kind, "a completion");
    CHECK_MEM("\"done\"", 6, buf, 6, "its payload");
    CHECK_RV(APR_SUCCESS, sse_registry_notify_key(fx.reg, "k", 4,
                                                  &delivered), "plain");
    REQUIRE(first_payload(&fx, &h, ev.seq, &ev, buf) == 1, "read it");
    CHECK_INT(0, ev.pay_len, "an event without a payload has none");
}

UNIT_TEST(test_a_payload_wrapping_the_ring_end_comes_back_whole)
{
    fx_t fx;
    sse_hold_t h;
    sse_event_t ev;
    sse_stats_t st;
    char big[1000], buf[1024];
    const char *id;
    int i, delivered;

    if (!fx_open(&fx, 8, 64, 4) || !(id = fx_tab(&fx, "u", PID_A, 1, "k",
                                                  &h))) {
        return;
    }
    /* 4096 bytes of ring: the fifth 1000-byte payload wraps */
    for (i = 0; i < 5; i++) {
        memset(big, 'a' + i, sizeof(big));
        CHECK_RV(APR_SUCCESS, sse_registry_notify_key_payload(
                     fx.reg, "k", big, sizeof(big), 2, &delivered), "#%d",
                 i);
    }
    REQUIRE(first_payload(&fx, &h, h.cursor + 4, &ev, buf) == 1,
            "the newest is there");
    CHECK(memcmp(buf, big, sizeof(big)) == 0, "whole across the wrap");
    CHECK_INT(0, fx_missed(&fx, id), "none missed yet");
    CHECK_INT(0, first_payload(&fx, &h, h.cursor, &ev, buf),
              "the first was overwritten: lost, not torn");
    CHECK_INT(1, fx_missed(&fx, id), "and counted missed for its listener");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, st.missed, "and in the registry's stats");
}

UNIT_TEST(test_a_payload_over_a_quarter_of_the_ring_is_refused)
{
    fx_t fx;
    sse_hold_t h;
    char big[1025];
    const char *id;
    int delivered = 7;

    if (!fx_open(&fx, 8, 16, 4) || !(id = fx_tab(&fx, "u", PID_A, 1, "k",
                                                  &h))) {
        return;
    }
    memset(big, 'x', sizeof(big));
    CHECK_RV(APR_ENOSPC, sse_registry_notify_key_payload(
                 fx.reg, "k", big, sizeof(big), 2, &delivered), "key");
    CHECK_INT(0, delivered, "nothing published");
    CHECK_RV(APR_ENOSPC, sse_registry_notify_completion_payload(
                 fx.reg, id, "t", big, sizeof(big), 2, &delivered), "task");
    CHECK_INT(h.start, sse_registry_head(fx.reg), "the ring is as it was");
}
