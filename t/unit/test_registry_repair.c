/* sse_registry: a process that dies inside the lock leaves the header's
 * dirty mark set; the next holder rebuilds the indexes from the slots. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

/* What a crash in the middle of an unlink could leave: every chain and
 * the free list gone, counters off, the lock marked as taken. */
static void crash_inside_the_lock(sse_registry_t *reg)
{
    memset(reg->id_bucket, 0, 4 * reg->h->nbuckets * sizeof(apr_uint32_t));
    reg->h->free_head = 0;
    reg->h->stats.listeners = 77;
    reg->h->stats.connected = 55;
    reg->h->dirty = 1;
}

UNIT_TEST(test_next_holder_after_a_crash_in_the_lock_rebuilds_the_indexes)
{
    fx_t fx;
    sse_hold_t ha, hb;
    sse_stats_t st;
    const char *a, *b, *c;
    int delivered = 0;

    if (!fx_open(&fx, 4, 16, 4)) {
        return;
    }
    a = fx_tab(&fx, "alice", PID_A, 1, "news", &ha);
    b = fx_tab(&fx, "alice", PID_B, 1, "news", &hb);
    c = fx_id(&fx, "carol");
    REQUIRE(a && b && c, "setup");
    sse_registry_release(fx.reg, &hb, hb.cursor, 2);
    crash_inside_the_lock(fx.reg);

    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, a), "a found again");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, (int)st.repairs, "one rebuild");
    CHECK_INT(2, (int)st.listeners, "listeners recounted");
    CHECK_INT(1, (int)st.connected, "connected recounted");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, b), "b found again");
    CHECK_RV(APR_SUCCESS,
             sse_registry_notify_key(fx.reg, "news", 3, &delivered),
             "key chains rebuilt");
    CHECK_INT(2, delivered, "both holders of news");
    CHECK_RV(APR_SUCCESS,
             sse_registry_notify_completion(fx.reg, a, "t", 3, &delivered),
             "name chains rebuilt");
    CHECK_INT(2, delivered, "both tabs of alice");
    /* the free list holds exactly the two free slots */
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, c, PID_C, 4, &hb), "third");
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "dave"), PID_C, 4, &hb),
             "fourth");
    /* b, released before the crash, is back on the idle list: the one a
     * fifth listener can have; then every slot holds a stream */
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "eve"), PID_C, 4, &hb),
             "eve reclaims b");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(fx.reg, b), "b was reclaimed");
    CHECK_RV(APR_ENOSPC, fx_connect(&fx, fx_id(&fx, "fay"), PID_C, 4, &hb),
             "no slot was lost or doubled");
    CHECK_COUNTERS(fx.reg);
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(1, (int)st.repairs, "a clean unlock leaves nothing to repair");
}

UNIT_TEST(test_a_half_made_slot_goes_back_to_the_free_list)
{
    fx_t fx;
    sse_hold_t ha;
    sse_stats_t st;
    const char *a;

    if (!fx_open(&fx, 2, 16, 4)) {
        return;
    }
    a = fx_tab(&fx, "alice", PID_A, 1, NULL, &ha);
    REQUIRE(a != NULL, "setup");
    /* died in slot_alloc: popped and marked, id not yet written */
    fx.reg->slot[1].state = 1;              /* SLOT_REGISTERED */
    fx.reg->slot[1].id[0] = '\0';
    crash_inside_the_lock(fx.reg);
    CHECK_RV(APR_SUCCESS, fx_connect(&fx, fx_id(&fx, "bob"), PID_A, 2, &ha),
             "the half-made slot is free again");
    sse_registry_stats(fx.reg, &st);
    CHECK_INT(2, (int)st.listeners, "alice and bob");
    CHECK_RV(APR_SUCCESS, sse_registry_lookup(fx.reg, a), "alice kept");
}
