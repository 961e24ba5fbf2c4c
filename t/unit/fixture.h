/**
 * @file fixture.h
 * @brief A registry in test memory with a real global mutex, no httpd.
 */
#ifndef SSE_UNIT_FIXTURE_H
#define SSE_UNIT_FIXTURE_H

#include <jansson.h>

#include "src/sse_registry.h"

/* Processes that hold streams, and the usual dormant timeout. */
#define PID_A 1001
#define PID_B 1002
#define PID_C 1003
#define HOUR_MS 3600000

typedef struct {
    apr_pool_t *pool;
    apr_global_mutex_t *lock;
    const char *lockfile;
    sse_registry_sizes_t sz;
    void *mem;
    apr_size_t size;
    unsigned char secret[SSE_SECRET_LEN];
    sse_registry_t *reg;
} fx_t;

/** Everything a route callback was called with. */
typedef struct {
    int n;
    struct {
        apr_uint32_t slot, holder_gen, kind;
        apr_uint64_t seq;
    } call[256];
} fx_routed_t;

/**
 * Make a registry of these sizes in the test's pool, with a mutex on a
 * temporary lock file, first_seq 1 and the secret of "unit". Records a
 * failure and returns 0 if it cannot.
 */
int fx_open(fx_t *fx, apr_uint32_t max_listeners, apr_uint32_t history,
            apr_uint32_t max_children);

/** Issue an id for @a name (a failure is recorded). */
const char *fx_id(fx_t *fx, const char *name);

/** sse_registry_connect() without the out-parameters one rarely reads. */
apr_status_t fx_connect(fx_t *fx, const char *id, apr_uint32_t pid,
                        apr_int64_t now, sse_hold_t *hold);

/** sse_registry_ack() for a test that does not read the missed range. */
apr_status_t fx_ack(fx_t *fx, const sse_hold_t *hold, apr_uint64_t sent,
                    int count, apr_int64_t now);

/**
 * A tab: issue an id for @a name, connect it from @a pid at @a now and,
 * unless @a key is NULL, have it listen to @a key at @a now. A failure is
 * recorded. @return the id, or NULL if it did not connect or listen
 */
const char *fx_tab(fx_t *fx, const char *name, apr_uint32_t pid,
                   apr_int64_t now, const char *key, sse_hold_t *hold);

/**
 * Every pid sse_registry_holders(@a any) lists, walking the child table
 * from entry 0 in calls of at most @a chunk pids until one returns 0.
 * Records a failure if a call returns more than asked, the walk goes
 * back, or it does not end within max_children + 1 calls.
 * @param pids room for @a max (a longer answer is a recorded failure)
 * @return the count written to @a pids
 */
int fx_holders_by(fx_t *fx, sse_registry_t *reg, int any, int chunk,
                  apr_uint32_t *pids, int max);

/** fx_holders_by() on the fixture's handle, as many at a time as fit. */
int fx_holders(fx_t *fx, int any, apr_uint32_t *pids, int max);

/** How many times @a pid is among the @a n of @a pids. */
int fx_count_pid(const apr_uint32_t *pids, int n, apr_uint32_t pid);

/** The route callback that appends to an fx_routed_t. */
int fx_route_cb(void *baton, apr_uint32_t slot, apr_uint32_t holder_gen,
                const sse_event_t *ev);

/**
 * Clear @a r and sse_registry_route() the entries [@a from, @a to) for
 * @a pid into it. @return what route returns: the entries overwritten
 */
apr_uint64_t fx_route(fx_t *fx, apr_uint64_t from, apr_uint64_t to,
                      apr_uint32_t pid, fx_routed_t *r);

/** sse_registry_json(), parsed; NULL (and a failure) if it is not JSON. */
json_t *fx_json(fx_t *fx);

/** The listener @a id in fx_json()'s object (borrowed), or NULL. */
json_t *fx_listener(json_t *all, const char *id);

/** The integer @a field of a listener object (0 if it has none). */
json_int_t fx_int(json_t *listener, const char *field);

/** 1 if the listener object says connected, 0 if not, -1 if it is not
 * a listener object with a boolean "connected". */
int fx_connected(json_t *listener);

/** "missed" of the listener @a id in a fresh fx_json(). */
json_int_t fx_missed(fx_t *fx, const char *id);

/** Events for @a hold after @a after (at most 64), into @a evs. */
int fx_read(fx_t *fx, const sse_hold_t *hold, apr_uint64_t after,
            sse_event_t *evs, apr_status_t *rv);

/** Publish `notify^key`; returns the delivered count. */
int fx_notify(fx_t *fx, const char *key, apr_int64_t now);

/** fx_notify() @a times times; returns the sum of the delivered counts. */
int fx_notify_n(fx_t *fx, const char *key, int times, apr_int64_t now);

/** Publish a completion of @a taskid to the tabs of @a id's name (a
 * failure is recorded unless it succeeds); returns the delivered count. */
int fx_complete(fx_t *fx, const char *id, const char *taskid,
                apr_int64_t now);

/**
 * Check that @a ev is one completion entry (SSE_EV_NAME: the name of
 * @a recipient in key, the raw @a taskid in data) published at @a ms, and
 * that sse_registry_event_data() frames it for @a recipient exactly as
 * sse_frame_completed(ms, recipient, taskid). @return 1 if all hold.
 */
int fx_check_completion(const char *file, int line, const sse_event_t *ev,
                        const char *recipient, apr_int64_t ms,
                        const char *taskid);

#define CHECK_COMPLETION(ev, recipient, ms, taskid)                         \
    fx_check_completion(__FILE__, __LINE__, (ev), (recipient), (ms), (taskid))

/**
 * Check the registry's counters against its slots, as a failure at
 * @a file:@a line for each that differs: listeners == slots not free,
 * connected == CONNECTED slots, each child entry's streams == the
 * CONNECTED slots of its pid, and every CONNECTED slot's pid in exactly
 * one child entry. @return 1 if all hold
 */
int fx_check_counters(const char *file, int line, sse_registry_t *reg);

/** Leave the mark a process that died holding the mutex leaves: the
 * next holder repairs the registry. */
void fx_died_in_lock(sse_registry_t *reg);

#define CHECK_COUNTERS(reg) fx_check_counters(__FILE__, __LINE__, (reg))

#endif /* SSE_UNIT_FIXTURE_H */
