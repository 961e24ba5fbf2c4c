/* sse_registry: wake-ups. A publish raises the wake flag of the children
 * that hold its targets and sends (through the waker, once the mutex is
 * released) only to those whose flag was clear; the dispatcher's
 * sse_registry_wake_taken() clears it. */
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

/* what the waker was called with, in order */
static apr_uint32_t woken[64];
static int nwoken, under_lock;

static void record_wake(apr_uint32_t pid)
{
    under_lock += sse_registry_lock_held();
    if (nwoken < (int)(sizeof(woken) / sizeof(*woken))) {
        woken[nwoken] = pid;
    }
    nwoken++;
}

static int open_recording(fx_t *fx)
{
    nwoken = 0;
    if (!fx_open(fx, 8, 32, 4)) {
        return 0;
    }
    sse_registry_set_waker(record_wake);
    return 1;
}

/* Exactly one wake-up since nwoken was reset, and to @a pid. */
static void check_woken_once(apr_uint32_t pid, const char *why,
                             const char *who)
{
    if (CHECK_INT(1, nwoken, why)) {
        CHECK_INT(pid, woken[0], who);
    }
}

/* open_recording(), then alice's tab on child A, with key @a key (or
 * none); @return her id, or NULL when the registry did not open */
static const char *open_with_alice(fx_t *fx, const char *key,
                                   sse_hold_t *ha)
{
    return open_recording(fx) ? fx_tab(fx, "alice", PID_A, 1, key, ha)
                              : NULL;
}

static void stop_recording(void)
{
    sse_registry_set_waker(NULL);
    CHECK_INT(0, under_lock, "the waker is never called under the mutex");
    under_lock = 0;
}

UNIT_TEST(test_completion_wakes_only_the_child_holding_its_tab)
{
    fx_t fx;
    sse_hold_t ha, hb;
    const char *a;

    if ((a = open_with_alice(&fx, NULL, &ha)) == NULL) {
        return;
    }
    fx_tab(&fx, "bob", PID_B, 1, NULL, &hb);
    nwoken = 0;
    fx_complete(&fx, a, "t1", 2);
    check_woken_once(PID_A, "one wake-up for one tab",
                     "sent to alice's child, not bob's");
    stop_recording();
}

UNIT_TEST(test_a_child_already_woken_is_not_sent_another_datagram)
{
    fx_t fx;
    sse_hold_t ha;
    apr_uint32_t hint = 0;
    const char *a;
    int i;

    if ((a = open_with_alice(&fx, "k", &ha)) == NULL) {
        return;
    }
    nwoken = 0;
    for (i = 0; i < 5; i++) {
        fx_complete(&fx, a, "t", 2);
        fx_notify(&fx, "k", 2);
    }
    CHECK_INT(1, nwoken, "ten publishes before the dispatcher ran: one "
              "datagram");
    sse_registry_wake_taken(fx.reg, PID_A, &hint);
    fx_complete(&fx, a, "t", 3);
    CHECK_INT(2, nwoken, "the dispatcher took its wake-up: the next "
              "publish sends again");
    fx_notify(&fx, "k", 3);
    CHECK_INT(2, nwoken, "and the one after it does not");
    stop_recording();
}

UNIT_TEST(test_wake_taken_by_another_child_leaves_this_flag_raised)
{
    fx_t fx;
    sse_hold_t ha, hb;
    apr_uint32_t hint = 0;
    const char *a;

    if ((a = open_with_alice(&fx, NULL, &ha)) == NULL) {
        return;
    }
    fx_tab(&fx, "bob", PID_B, 1, NULL, &hb);
    nwoken = 0;
    fx_complete(&fx, a, "t1", 2);
    sse_registry_wake_taken(fx.reg, PID_B, &hint);
    sse_registry_wake_taken(fx.reg, PID_C, &hint);    /* no entry */
    fx_complete(&fx, a, "t2", 2);
    CHECK_INT(1, nwoken, "B's dispatcher (or an unknown pid) does not "
              "clear A's flag");
    stop_recording();
}

UNIT_TEST(test_fanout_wakes_each_holding_child_once)
{
    fx_t fx;
    sse_hold_t h;
    char name[8];
    int i;

    if (!open_recording(&fx)) {
        return;
    }
    for (i = 0; i < 6; i++) {
        apr_snprintf(name, sizeof(name), "u%d", i);
        fx_tab(&fx, name, i % 2 ? PID_B : PID_A, 1, "fan", &h);
    }
    fx_tab(&fx, "other", PID_C, 1, "quiet", &h);
    nwoken = 0;
    CHECK_INT(6, fx_notify(&fx, "fan", 2), "six holders");
    CHECK_INT(2, nwoken, "two children hold them: two datagrams");
    CHECK_INT(1, fx_count_pid(woken, nwoken, PID_A), "A once");
    CHECK_INT(1, fx_count_pid(woken, nwoken, PID_B), "B once");
    CHECK_INT(0, fx_count_pid(woken, nwoken, PID_C), "C holds no target");
    stop_recording();
}

UNIT_TEST(test_takeover_wakes_the_child_whose_stream_ends)
{
    fx_t fx;
    sse_hold_t ha, hb;
    const char *a;

    if ((a = open_with_alice(&fx, NULL, &ha)) == NULL) {
        return;
    }
    nwoken = 0;
    fx_connect(&fx, a, PID_B, 2, &hb);
    check_woken_once(PID_A, "the end entry wakes its old holder",
                     "A, whose stream ends");
    stop_recording();
}

UNIT_TEST(test_a_reused_child_entry_starts_with_its_flag_clear)
{
    fx_t fx;
    sse_hold_t ha, hb;
    const char *a;

    if ((a = open_with_alice(&fx, NULL, &ha)) == NULL) {
        return;
    }
    fx_complete(&fx, a, "t1", 2);       /* A's flag raised, never taken */
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(fx.reg, PID_A, 3),
             "A dies");
    nwoken = 0;
    a = fx_tab(&fx, "carol", PID_C, 4, NULL, &hb);
    fx_complete(&fx, a, "t2", 5);
    check_woken_once(PID_C, "the child that took A's entry is woken",
                     "C");
    stop_recording();
}
