/* The registry fixture: memory from the test's pool, a real mutex. */
#include <string.h>
#include <unistd.h>

#include <apr_file_io.h>
#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

/* The cleanup's data lives in the pool: the fx_t is on a test's stack and
 * gone by the time the pool is destroyed. */
typedef struct {
    const char *path;
    apr_pool_t *pool;
} fx_lockfile_t;

static apr_status_t remove_lockfile(void *data)
{
    fx_lockfile_t *lf = data;

    apr_file_remove(lf->path, lf->pool);
    return APR_SUCCESS;
}

int fx_open(fx_t *fx, apr_uint32_t max_listeners, apr_uint32_t history,
            apr_uint32_t max_children)
{
    static int counter;
    fx_lockfile_t *lf;
    const char *tmp = NULL;
    apr_status_t rv;

    memset(fx, 0, sizeof(*fx));
    fx->pool = unit_pool();
    fx->sz.max_listeners = max_listeners;
    fx->sz.history = history;
    fx->sz.max_children = max_children;
    fx->sz.payload_bytes = 4096;       /* payloads of up to 1 KB */
    if (apr_temp_dir_get(&tmp, fx->pool) != APR_SUCCESS) {
        tmp = "/tmp";
    }
    fx->lockfile = apr_psprintf(fx->pool, "%s/sse-unit-%ld-%d.lock", tmp,
                                (long)getpid(), ++counter);
    rv = apr_global_mutex_create(&fx->lock, fx->lockfile, APR_LOCK_DEFAULT,
                                 fx->pool);
    if (!CHECK_RV(APR_SUCCESS, rv, "apr_global_mutex_create(%s)",
                  fx->lockfile)) {
        return 0;
    }
    /* registered after the mutex: runs before the mutex's own cleanup */
    lf = apr_palloc(fx->pool, sizeof(*lf));
    lf->path = fx->lockfile;
    lf->pool = fx->pool;
    apr_pool_cleanup_register(fx->pool, lf, remove_lockfile,
                              apr_pool_cleanup_null);
    fx->size = sse_registry_size(&fx->sz);
    fx->mem = apr_palloc(fx->pool, fx->size);
    memset(fx->mem, 0xa5, fx->size);    /* create must not rely on zeroes */
    rv = sse_id_secret("unit", fx->secret);
    if (rv == APR_SUCCESS) {
        rv = sse_registry_create(fx->pool, fx->mem, &fx->sz, fx->secret, 0,
                                 fx->lock, &fx->reg);
    }
    return CHECK_RV(APR_SUCCESS, rv, "sse_registry_create(%u, %u, %u)",
                    max_listeners, history, max_children);
}

const char *fx_id(fx_t *fx, const char *name)
{
    char *id = apr_palloc(fx->pool, SSE_ID_MAX + 1);

    if (!CHECK_RV(APR_SUCCESS, sse_registry_make_id(fx->reg, name, id),
                  "make_id(%s)", name)) {
        apr_cpystrn(id, "invalid", SSE_ID_MAX + 1);
    }
    return id;
}

apr_status_t fx_connect(fx_t *fx, const char *id, apr_uint32_t pid,
                        apr_int64_t now, sse_hold_t *hold)
{
    int created;

    return sse_registry_connect(fx->reg, id, pid, NULL,
                                now, NULL, hold, &created);
}

apr_status_t fx_ack(fx_t *fx, const sse_hold_t *hold, apr_uint64_t sent,
                    int count, apr_int64_t now)
{
    apr_uint64_t from, to;

    return sse_registry_ack(fx->reg, hold, sent, count, now, &from, &to);
}

const char *fx_tab(fx_t *fx, const char *name, apr_uint32_t pid,
                   apr_int64_t now, const char *key, sse_hold_t *hold)
{
    const char *id = fx_id(fx, name);

    if (!CHECK_RV(APR_SUCCESS, fx_connect(fx, id, pid, now, hold),
                  "connect %s", id)) {
        return NULL;
    }
    if (key && !CHECK_RV(APR_SUCCESS, sse_registry_listen(fx->reg, id, key,
                                                          now),
                         "%s listens to %s", id, key)) {
        return NULL;
    }
    return id;
}

int fx_holders_by(fx_t *fx, sse_registry_t *reg, int any, int chunk,
                  apr_uint32_t *pids, int max)
{
    apr_uint32_t buf[64], from = 0, prev;
    int calls = 0, total = 0, n, i;
    int limit = (int)fx->sz.max_children + 1;

    if (chunk > (int)(sizeof(buf) / sizeof(buf[0]))) {
        chunk = (int)(sizeof(buf) / sizeof(buf[0]));
    }
    for (;;) {
        prev = from;
        n = sse_registry_holders(reg, any, &from, buf, chunk);
        if (n == 0) {
            break;
        }
        calls++;
        if (!CHECK(n > 0 && n <= chunk, "holders(any %d) from %u gave %d "
                   "pids for room for %d", any, prev, n, chunk)
            || !CHECK(from > prev, "holders(any %d) from %u went on from "
                      "%u", any, prev, from)
            || !CHECK(calls <= limit, "holders(any %d) did not end after "
                      "%d calls of %d", any, calls, chunk)) {
            break;
        }
        for (i = 0; i < n; i++) {
            if (CHECK(total < max, "more than %d holders (any %d)", max,
                      any)) {
                pids[total++] = buf[i];
            }
        }
    }
    return total;
}

int fx_holders(fx_t *fx, int any, apr_uint32_t *pids, int max)
{
    return fx_holders_by(fx, fx->reg, any, max > 0 ? max : 1, pids, max);
}

int fx_count_pid(const apr_uint32_t *pids, int n, apr_uint32_t pid)
{
    int i, count = 0;

    for (i = 0; i < n; i++) {
        count += pids[i] == pid;
    }
    return count;
}

int fx_route_cb(void *baton, apr_uint32_t slot, apr_uint32_t holder_gen,
                const sse_event_t *ev)
{
    fx_routed_t *r = baton;

    if (r->n < (int)(sizeof(r->call) / sizeof(r->call[0]))) {
        r->call[r->n].slot = slot;
        r->call[r->n].holder_gen = holder_gen;
        r->call[r->n].kind = ev->kind;
        r->call[r->n].seq = ev->seq;
    }
    r->n++;
    return 0;                   /* copies nothing: fetch, read take */
}

apr_uint64_t fx_route(fx_t *fx, apr_uint64_t from, apr_uint64_t to,
                      apr_uint32_t pid, fx_routed_t *r)
{
    memset(r, 0, sizeof(*r));
    return sse_registry_route(fx->reg, from, to, pid, fx_route_cb, r);
}

json_t *fx_json(fx_t *fx)
{
    char *js = NULL;
    json_error_t err;
    json_t *j;
    apr_status_t rv = sse_registry_json(fx->reg, fx->pool, &js);

    if (!CHECK_RV(APR_SUCCESS, rv, "sse_registry_json") || js == NULL) {
        return NULL;
    }
    j = json_loads(js, 0, &err);
    if (!CHECK(json_is_object(j), "list-registrants is not a JSON object "
               "(%s): %s", err.text, js)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

json_t *fx_listener(json_t *all, const char *id)
{
    return all ? json_object_get(all, id) : NULL;
}

json_int_t fx_int(json_t *listener, const char *field)
{
    return json_integer_value(json_object_get(listener, field));
}

int fx_connected(json_t *listener)
{
    json_t *c = json_object_get(listener, "connected");

    return json_is_true(c) ? 1 : json_is_false(c) ? 0 : -1;
}

json_int_t fx_missed(fx_t *fx, const char *id)
{
    json_t *all = fx_json(fx);
    json_int_t missed = fx_int(fx_listener(all, id), "missed");

    json_decref(all);
    return missed;
}

int fx_read(fx_t *fx, const sse_hold_t *hold, apr_uint64_t after,
            sse_event_t *evs, apr_status_t *rv)
{
    int n = 0;

    *rv = sse_registry_read(fx->reg, hold, after, evs, 64, &n);
    return n;
}

int fx_notify(fx_t *fx, const char *key, apr_int64_t now)
{
    int delivered = -1;

    CHECK_RV(APR_SUCCESS, sse_registry_notify_key(fx->reg, key, now,
                                                  &delivered),
             "notify %s", key);
    return delivered;
}

int fx_notify_n(fx_t *fx, const char *key, int times, apr_int64_t now)
{
    int i, delivered = 0;

    for (i = 0; i < times; i++) {
        delivered += fx_notify(fx, key, now);
    }
    return delivered;
}

int fx_complete(fx_t *fx, const char *id, const char *taskid,
                apr_int64_t now)
{
    int delivered = -1;

    CHECK_RV(APR_SUCCESS, sse_registry_notify_completion(fx->reg, id, taskid,
                                                         now, &delivered),
             "notify-completions %s %s", id, taskid);
    return delivered;
}

int fx_check_completion(const char *file, int line, const sse_event_t *ev,
                        const char *recipient, apr_int64_t ms,
                        const char *taskid)
{
    char want[SSE_DATA_MAX], buf[SSE_DATA_MAX];
    const char *data = NULL;
    apr_size_t nl = 0, wlen = 0, len = 0;
    apr_status_t rv;
    int ok;

    ok = unit_check_int(SSE_EV_NAME, ev->kind, "ev->kind", file, line,
                        "a completion is one SSE_EV_NAME entry");
    ok &= unit_check_int(ms, ev->ms, "ev->ms", file, line,
                         "published at %lld", (long long)ms);
    ok &= unit_check_rv(APR_SUCCESS, sse_id_parse(recipient, &nl),
                        "sse_id_parse", file, line, "recipient %s",
                        recipient);
    ok &= unit_check_mem(recipient, nl, ev->key, unit_strlen(ev->key),
                         "ev->key", file, line,
                         "the entry names the recipient's name");
    ok &= unit_check_mem(taskid, strlen(taskid), ev->data, ev->len,
                         "ev->data", file, line,
                         "the entry holds the task id, not framed");
    rv = sse_frame_completed(ms, recipient, taskid, want, &wlen);
    ok &= unit_check_rv(APR_SUCCESS, rv, "sse_frame_completed", file, line,
                        "frame");
    rv = sse_registry_event_data(ev, recipient, buf, &data, &len);
    ok &= unit_check_rv(APR_SUCCESS, rv, "sse_registry_event_data", file,
                        line, "event data for %s", recipient);
    if (rv == APR_SUCCESS) {
        ok &= unit_check(data == buf, file, line, "data == buf",
                         "a completion is framed into the caller's buffer");
        ok &= unit_check_mem(want, wlen, data, len, "data", file, line,
                             "the completion framed with %s's own id",
                             recipient);
    }
    return ok;
}

/* One idle list, walked from its head: well linked (each prev is the
 * one before, the tail is the last), each member REGISTERED and marked
 * @a idle (0: any list), owned by @a owner (0: any), with activity that
 * never goes back. @return its length, -1 on a failure */
static int check_idle_list(const char *file, int line, sse_registry_t *reg,
                           apr_uint32_t head, apr_uint32_t tail,
                           int owner_list, apr_uint32_t idle,
                           apr_uint32_t owner)
{
    apr_uint32_t max = reg->h->sz.max_listeners, prev = 0, i1 = head;
    apr_int64_t last = 0;
    int n = 0;

    while (i1 && n <= (int)max) {
        const sse_slot_t *sl = &reg->slot[i1 - 1];
        apr_uint32_t p = owner_list ? sl->owner_prev : sl->idle_prev;
        if (!CHECK_AT(file, line, i1 <= max && sl->state == SLOT_REGISTERED
                      && sl->idle && (!idle || sl->idle == idle)
                      && (!owner || sl->owner == owner) && p == prev
                      && (n == 0 || sl->activity_ms >= last),
                      "idle list (owner list %d, idle %u, owner %u): slot "
                      "%u state %u idle %u owner %u prev %u (want %u) "
                      "activity %lld after %lld", owner_list, idle, owner,
                      i1 - 1, sl->state, sl->idle, sl->owner, p, prev,
                      (long long)sl->activity_ms, (long long)last)) {
            return -1;
        }
        last = sl->activity_ms;
        prev = i1;
        i1 = owner_list ? sl->owner_next : sl->idle_next;
        n++;
    }
    return CHECK_AT(file, line, prev == tail && i1 == 0, "idle list ends "
                    "at %u, its tail is %u", prev, tail) ? n : -1;
}

/* Every listener without a stream on one header list (the one its
 * delivery says) and on its owner's list; nothing else on them. */
static int check_idle(const char *file, int line, sse_registry_t *reg)
{
    apr_uint32_t i, idle = 0, fresh = 0;
    int ok = 1, a, b;

    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        const sse_slot_t *sl = &reg->slot[i];
        idle += sl->state == SLOT_REGISTERED;
        fresh += sl->state == SLOT_REGISTERED && sl->delivered == 0;
        ok &= CHECK_AT(file, line, sl->state == SLOT_REGISTERED
                       ? sl->idle == (sl->delivered ? IDLE_USED : IDLE_FRESH)
                                     + 1u
                       : sl->idle == 0, "slot %u: state %u, delivered %llu, "
                       "idle %u", i, sl->state,
                       (unsigned long long)sl->delivered, sl->idle);
    }
    a = check_idle_list(file, line, reg, reg->h->idle_head[IDLE_FRESH],
                        reg->h->idle_tail[IDLE_FRESH], 0, IDLE_FRESH + 1, 0);
    b = check_idle_list(file, line, reg, reg->h->idle_head[IDLE_USED],
                        reg->h->idle_tail[IDLE_USED], 0, IDLE_USED + 1, 0);
    ok &= CHECK_AT(file, line, a == (int)fresh && b == (int)(idle - fresh),
                   "idle lists hold %d and %d, the slots say %u and %u", a, b,
                   fresh, idle - fresh);
    return ok;
}

/* Each client entry in use counts the slots it owns and the streams it
 * holds, lists its owned idle slots, and is found by its address; the
 * others are on the free list; no slot points at a free one. */
static int check_clients(const char *file, int line, sse_registry_t *reg)
{
    apr_uint32_t n = 2 * reg->h->sz.max_listeners, c, i, nfree = 0;
    int ok = 1;

    for (c = reg->h->client_free; c && nfree <= n;
         c = reg->client[c - 1].next_free) {
        nfree++;
        ok &= CHECK_AT(file, line, !reg->client[c - 1].used, "client %u is "
                       "used and free", c - 1);
    }
    for (c = 0; c < n; c++) {
        const sse_client_rec_t *ce = &reg->client[c];
        apr_uint32_t owned = 0, streams = 0, idle = 0;
        for (i = 0; i < reg->h->sz.max_listeners; i++) {
            const sse_slot_t *sl = &reg->slot[i];
            owned += sl->state != SLOT_FREE && sl->owner == c + 1;
            streams += sl->state == SLOT_CONNECTED && sl->streamer == c + 1;
            idle += sl->state == SLOT_REGISTERED && sl->owner == c + 1;
        }
        ok &= CHECK_AT(file, line, ce->listeners == owned
                       && ce->streams == streams
                       && ce->used == (owned || streams), "client %u: "
                       "counts %u listeners %u streams (used %u), the slots "
                       "say %u and %u", c, ce->listeners, ce->streams,
                       ce->used, owned, streams);
        if (ce->used) {
            ok &= CHECK_AT(file, line, sse_reg_client_find(reg, ce->addr)
                           == c + 1, "client %u not found by its address",
                           c);
            ok &= CHECK_AT(file, line, check_idle_list(file, line, reg,
                           ce->idle_head, ce->idle_tail, 1, 0, c + 1)
                           == (int)idle, "client %u: its idle list is not "
                           "its %u idle listeners", c, idle);
        }
    }
    for (c = 0, i = 0; c < n; c++) {
        i += reg->client[c].used;
    }
    ok &= CHECK_AT(file, line, i + nfree == n, "%u clients used, %u free, "
                   "of %u", i, nfree, n);
    return ok;
}

int fx_check_counters(const char *file, int line, sse_registry_t *reg)
{
    apr_uint32_t i, c, listeners = 0, connected = 0, streams;
    int ok = 1;

    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        listeners += reg->slot[i].state != SLOT_FREE;
        connected += reg->slot[i].state == SLOT_CONNECTED;
    }
    ok &= CHECK_AT(file, line, reg->h->stats.listeners == listeners,
                   "stats.listeners %u, non-free slots %u",
                   reg->h->stats.listeners, listeners);
    ok &= CHECK_AT(file, line, reg->h->stats.connected == connected,
                   "stats.connected %u, connected slots %u",
                   reg->h->stats.connected, connected);
    for (c = 0; c < reg->h->sz.max_children; c++) {
        const sse_child_t *ch = &reg->child[c];
        for (i = 0, streams = 0; ch->pid && i < reg->h->sz.max_listeners;
             i++) {
            streams += reg->slot[i].state == SLOT_CONNECTED
                       && reg->slot[i].holder_pid == ch->pid;
        }
        ok &= CHECK_AT(file, line, ch->streams == streams,
                       "child entry %u (pid %u) counts %u streams, its "
                       "connected slots are %u", c, ch->pid, ch->streams,
                       streams);
    }
    for (i = 0; i < reg->h->sz.max_listeners; i++) {
        const sse_slot_t *sl = &reg->slot[i];
        int held = 0;
        if (sl->state != SLOT_CONNECTED) {
            continue;
        }
        for (c = 0; c < reg->h->sz.max_children; c++) {
            held += reg->child[c].pid == sl->holder_pid;
        }
        ok &= CHECK_AT(file, line, held == 1, "slot %u is connected from "
                       "pid %u, which has %d child entries", i,
                       sl->holder_pid, held);
    }
    ok &= check_idle(file, line, reg);
    ok &= check_clients(file, line, reg);
    return ok;
}

void fx_died_in_lock(sse_registry_t *reg)
{
    reg->h->dirty = 1;
}
