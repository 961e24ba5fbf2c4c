/* A slot-exhaustion "chaos" loop: random operations on a small registry,
 * checked after every step against a model, through the public API only.
 * The model knows listeners, streams, keys, activity times, the child
 * table's capacity and the ring of retired ids. The parent's operations
 * (child_gone, cleanup) go through a second, non-blocking handle, as in
 * the module; nobody else holds the mutex, so they never meet EBUSY.
 * SSE_CHAOS_SEED and SSE_CHAOS_STEPS in the environment override the
 * fixed seed and the step count. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "fixture.h"
#include "unit.h"

#define CH_MAX       16     /* max_listeners */
#define CH_HISTORY   64
#define CH_CHILDREN  4
#define CH_IDS       48     /* the ids the loop plays with */
#define CH_PIDS      6      /* more processes than child entries */
#define CH_KEYS      40     /* more keys than one listener may hold */
#define CH_STEPS     20000
#define CH_SEED      0x5eed5eedULL

static const char *const ch_names[] = {"u1", "u10", "u1.0", "v"};
#define CH_NAMES ((int)(sizeof(ch_names) / sizeof(ch_names[0])))

typedef struct {
    const char *id;
    int name;
    int live, connected;
    apr_uint32_t pid;
    sse_hold_t hold;        /* the current stream's, when connected */
    sse_hold_t stale;       /* an earlier stream's, no longer valid */
    int has_stale;
    apr_uint32_t slot;      /* while live */
    apr_int64_t registered, activity;
    int delivered;          /* an ack counted events for it */
    apr_uint64_t born;      /* the head when it was created: it reads no
                               entry published before */
    int nkeys;
    int keys[SSE_MAX_KEYS]; /* key numbers, in listen order */
    apr_uint64_t since[SSE_MAX_KEYS];  /* the head when each was added */
} ch_id_t;

/* What the loop published, by seq % CH_HISTORY like the ring: a read
 * entry must be the one published with that seq. */
typedef struct {
    apr_uint64_t seq;       /* 0: nothing recorded */
    apr_uint32_t kind;      /* SSE_EV_KEY or SSE_EV_NAME */
    int what;               /* the key number or the name number */
    apr_int64_t ms;
} ch_pub_t;

typedef struct {
    fx_t fx;
    sse_registry_t *parent; /* attached to fx's segment, non-blocking */
    ch_id_t ids[CH_IDS];
    const char *keys[CH_KEYS];
    apr_uint64_t rng;
    apr_int64_t now;
    int step;
    const char *op;
    ch_pub_t pub[CH_HISTORY];
    /* the registry's table of retired ids: a ring of CH_MAX, oldest goes */
    struct {
        int id;             /* index in ids, -1 when unused */
        apr_int64_t until;
    } retired[CH_MAX];
    int retired_next;
    /* pids that may be in the child table: connected since the last
     * child_gone that dropped their entry (holders(any 1) lists no other) */
    int known[CH_PIDS];
    /* how often the interesting answers came, to check the loop's reach */
    int enospc_connect, eagain_connect, eexist_connect, enospc_listen;
    int reclaims;
    int takeovers, removed, completions_read, keys_read;
    int cross_takeovers, ended_pids, gone_with_streams;
} chaos_t;

static apr_uint32_t ch_rand(chaos_t *c, apr_uint32_t n)
{
    /* xorshift64*: fixed, portable, good enough to pick operations */
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return (apr_uint32_t)((c->rng * 2685821657736338717ULL) >> 33) % n;
}

static apr_uint32_t ch_pid(int i)
{
    return 2000 + (apr_uint32_t)i;
}

/* A client address of a few (or none), counted without bounds: the
 * registry's per-client counts are checked after every step. */
static const sse_client_t *ch_client(chaos_t *c)
{
    static const char *const ips[] = {"10.0.0.1", "10.0.0.2",
                                      "2001:db8::1", "2001:db8::2"};
    static sse_client_t cl;
    apr_uint32_t i = ch_rand(c, 5);

    if (i == 4) {
        return NULL;
    }
    memset(&cl, 0, sizeof(cl));
    sse_client_parse(ips[i], cl.addr);
    return &cl;
}

/* ---- the model -------------------------------------------------------- */

static int m_live(const chaos_t *c)
{
    int i, n = 0;

    for (i = 0; i < CH_IDS; i++) {
        n += c->ids[i].live;
    }
    return n;
}

static int m_connected(const chaos_t *c)
{
    int i, n = 0;

    for (i = 0; i < CH_IDS; i++) {
        n += c->ids[i].connected;
    }
    return n;
}

static int m_pid_streams(const chaos_t *c, apr_uint32_t pid)
{
    int i, n = 0;

    for (i = 0; i < CH_IDS; i++) {
        n += c->ids[i].connected && c->ids[i].pid == pid;
    }
    return n;
}

static int m_pid_index(apr_uint32_t pid)
{
    return (int)(pid - ch_pid(0));
}

static int m_holder_pids(const chaos_t *c)
{
    int p, n = 0;

    for (p = 0; p < CH_PIDS; p++) {
        n += m_pid_streams(c, ch_pid(p)) > 0;
    }
    return n;
}

/* The key's place in the listener's keys + 1, or 0 if it holds none. */
static int m_holds(const ch_id_t *m, int key)
{
    int k;

    for (k = 0; k < m->nkeys; k++) {
        if (m->keys[k] == key) {
            return k + 1;
        }
    }
    return 0;
}

static void m_publish(chaos_t *c, apr_uint64_t seq, apr_uint32_t kind,
                      int what)
{
    ch_pub_t *p = &c->pub[seq % CH_HISTORY];

    p->seq = seq;
    p->kind = kind;
    p->what = what;
    p->ms = c->now;
}

static void m_retire(chaos_t *c, int i, apr_int64_t until)
{
    c->retired[c->retired_next].id = i;
    c->retired[c->retired_next].until = until;
    c->retired_next = (c->retired_next + 1) % CH_MAX;
}

/* The newest retirement of the id still in the table decides. */
static int m_retired(const chaos_t *c, const ch_id_t *m)
{
    int k;

    for (k = 1; k <= CH_MAX; k++) {
        int r = (c->retired_next - k + CH_MAX) % CH_MAX;
        if (c->retired[r].id >= 0 && &c->ids[c->retired[r].id] == m) {
            return c->retired[r].until > c->now;
        }
    }
    return 0;
}

static void m_drop_stream(ch_id_t *m)
{
    if (m->connected) {
        m->stale = m->hold;
        m->has_stale = 1;
        m->connected = 0;
    }
}

static void m_remove(ch_id_t *m)
{
    m_drop_stream(m);
    m->live = 0;
    m->nkeys = 0;
}

/* Every pid holders(@a any) lists, in calls of @a chunk (CH_CHILDREN + 1
 * of room: more is a recorded failure). */
static int r_holders(chaos_t *c, int any, int chunk, apr_uint32_t *pids)
{
    return fx_holders_by(&c->fx, c->fx.reg, any, chunk, pids,
                         CH_CHILDREN + 1);
}

/* Which listener a full table gives up for a new one: among those with
 * no stream, one that never delivered if any, else any; of those, one
 * of the oldest activity (the registry keeps them in that order). */
static int m_victim_ok(const chaos_t *c, const ch_id_t *v)
{
    int i, fresh = 0;

    for (i = 0; i < CH_IDS; i++) {
        fresh |= c->ids[i].live && !c->ids[i].connected
                 && !c->ids[i].delivered;
    }
    if (!v->live || v->connected || (fresh && v->delivered)) {
        return 0;
    }
    for (i = 0; i < CH_IDS; i++) {
        const ch_id_t *o = &c->ids[i];
        if (o->live && !o->connected && o->delivered == v->delivered
            && o->activity < v->activity) {
            return 0;
        }
    }
    return 1;
}

/* After a connect that made room: the one listener gone from the
 * registry, checked against the model and removed from it (not
 * retired: its id may come back). */
static void m_reclaimed(chaos_t *c, const ch_id_t *m)
{
    int i, gone = 0;

    for (i = 0; i < CH_IDS; i++) {
        ch_id_t *o = &c->ids[i];
        if (o == m || !o->live
            || sse_registry_lookup(c->fx.reg, o->id) != APR_ENOENT) {
            continue;
        }
        CHECK(m_victim_ok(c, o), "%s reclaimed: connected %d, delivered "
              "%d, activity %lld", o->id, o->connected, o->delivered,
              (long long)o->activity);
        m_remove(o);
        gone++;
    }
    CHECK_INT(1, gone, "a full table gives up one listener");
    c->reclaims++;
}

/* ---- the operations --------------------------------------------------- */

static void op_connect(chaos_t *c)
{
    ch_id_t *m = &c->ids[ch_rand(c, CH_IDS)];
    apr_uint32_t pid = ch_pid((int)ch_rand(c, CH_PIDS));
    apr_uint64_t head = sse_registry_head(c->fx.reg), last = 0;
    apr_uint64_t *lastp = NULL, after, created_seq;
    apr_uint32_t prev_pid = m->connected ? m->pid : 0;
    apr_status_t want, rv;
    sse_hold_t hold;
    int created = -1;

    c->op = "connect";
    if (ch_rand(c, 5) == 0) {
        last = ch_rand(c, (apr_uint32_t)head + 5);
        lastp = &last;
    }
    if (!m->live && m_retired(c, m)) {
        want = APR_EEXIST;
    }
    else if (m_pid_streams(c, pid) == 0 && m_holder_pids(c) == CH_CHILDREN) {
        want = APR_EAGAIN;
    }
    else if (!m->live && m_connected(c) == CH_MAX) {
        want = APR_ENOSPC;
    }
    else {
        want = APR_SUCCESS;
    }
    memset(&hold, 0xa5, sizeof(hold));     /* every field must be set */
    rv = sse_registry_connect(c->fx.reg, m->id, pid, ch_client(c), c->now,
                              lastp, &hold, &created);
    after = sse_registry_head(c->fx.reg);
    CHECK_RV(want, rv, "connect %s from pid %u with %d listeners and %d "
             "holder pids", m->id, pid, m_live(c), m_holder_pids(c));
    c->eexist_connect += rv == APR_EEXIST;
    c->enospc_connect += rv == APR_ENOSPC;
    c->eagain_connect += rv == APR_EAGAIN;
    if (rv != APR_SUCCESS) {
        CHECK_INT(0, created, "a refused connect creates nothing");
        return;
    }
    CHECK_INT(!m->live, created, "created");
    CHECK_INT(prev_pid, hold.prev_pid, "prev_pid of %s connecting from "
              "pid %u", m->id, pid);
    if (m->connected) {
        CHECK_INT(m->hold.slot, hold.slot, "a takeover keeps the slot");
        CHECK_INT(m->hold.holder_gen + 1, hold.holder_gen,
                  "a takeover bumps holder_gen");
        CHECK_INT(head + 1, after, "a takeover publishes one end");
        CHECK(hold.start >= head && hold.start <= after, "start %llu of a "
              "takeover between the heads %llu and %llu around it",
              (unsigned long long)hold.start, (unsigned long long)head,
              (unsigned long long)after);
        c->takeovers++;
        c->cross_takeovers += prev_pid != pid;
    }
    else {
        CHECK_INT(head, after, "a connect without takeover publishes none");
        CHECK_INT(head, hold.start, "start is the head at connect");
    }
    c->known[m_pid_index(pid)] = 1;
    if (!m->live && m_live(c) == CH_MAX) {
        m_reclaimed(c, m);
    }
    /* created when the head was m->born (now, if new) */
    created_seq = (m->live ? m->born : head) - 1;
    if (lastp && last < head && last >= created_seq) {
        CHECK_INT(last, hold.cursor, "Last-Event-ID is the resume point");
    }
    else if (lastp && last < created_seq) {
        CHECK_INT(created_seq, hold.cursor, "resumes from its creation");
        CHECK(hold.missed_from && hold.missed_from <= last + 1
              && hold.missed_to >= created_seq, "missed %llu..%llu covers "
              "%llu..%llu: Last-Event-ID from before the listener was made",
              (unsigned long long)hold.missed_from,
              (unsigned long long)hold.missed_to,
              (unsigned long long)last + 1,
              (unsigned long long)created_seq);
    }
    CHECK(hold.cursor < sse_registry_head(c->fx.reg), "cursor below head");
    m_drop_stream(m);
    if (!m->live) {
        m->live = 1;
        m->nkeys = 0;
        m->registered = c->now;
        m->born = head;
        m->delivered = 0;
        m->slot = hold.slot;
    }
    m->connected = 1;
    m->pid = pid;
    m->hold = hold;
    m->activity = c->now;
}

/* An id that is connected (or, if @a stale, that has a stale hold), the
 * first such from a random start; NULL if there is none. */
static ch_id_t *pick(chaos_t *c, int stale)
{
    int start = (int)ch_rand(c, CH_IDS), i;

    for (i = 0; i < CH_IDS; i++) {
        ch_id_t *m = &c->ids[(start + i) % CH_IDS];
        if (stale ? m->has_stale : m->connected) {
            return m;
        }
    }
    return NULL;
}

static ch_id_t *pick_connected(chaos_t *c)
{
    return pick(c, 0);
}

static ch_id_t *pick_stale(chaos_t *c)
{
    return pick(c, 1);
}

static void op_release(chaos_t *c)
{
    ch_id_t *m = pick_connected(c);
    apr_uint64_t head = sse_registry_head(c->fx.reg), sent;
    apr_uint32_t pids[CH_CHILDREN + 1];
    int n;

    c->op = "release";
    if (m == NULL) {
        return;
    }
    sent = m->hold.cursor + ch_rand(c, (apr_uint32_t)(head - m->hold.cursor));
    sse_registry_release(c->fx.reg, &m->hold, sent, c->now);
    m->activity = c->now;
    m_drop_stream(m);
    n = r_holders(c, 1, CH_CHILDREN, pids);
    CHECK_INT(1, fx_count_pid(pids, n, m->pid), "pid %u, whose stream of %s "
              "just ended, in holders(any 1)", m->pid, m->id);
}

static void op_release_stale(chaos_t *c)
{
    ch_id_t *m = pick_stale(c);

    c->op = "release of an ended stream";
    if (m) {
        sse_registry_release(c->fx.reg, &m->stale, m->stale.cursor,
                             c->now);
    }
}

static void op_ack(chaos_t *c)
{
    ch_id_t *m = pick_connected(c);
    ch_id_t *s = pick_stale(c);

    c->op = "ack";
    if (m) {
        CHECK_RV(APR_SUCCESS,
                 fx_ack(&c->fx, &m->hold, sse_registry_head(c->fx.reg) - 1, 1,
                        c->now),
                 "ack of %s's current stream", m->id);
        m->activity = c->now;
        m->delivered = 1;
    }
    if (s) {                    /* an ended stream never holds again */
        CHECK_RV(APR_EOF, fx_ack(&c->fx, &s->stale, 0, 1, c->now),
                 "ack of %s's ended stream", s->id);
    }
}

/* The seqs the model says a read of @a m after @a after returns: every
 * entry still in the ring published after it, for its name since it was
 * created or for a key it held since it listened; the oldest @a max. */
static int m_expected(const chaos_t *c, const ch_id_t *m, apr_uint64_t after,
                      int max, apr_uint64_t *seqs)
{
    apr_uint64_t head = sse_registry_head(c->fx.reg), s;
    int n = 0, k;

    s = head > CH_HISTORY ? head - CH_HISTORY : 1;
    for (s = s > after + 1 ? s : after + 1; s < head && n < max; s++) {
        const ch_pub_t *p = &c->pub[s % CH_HISTORY];
        if (p->seq != s) {
            continue;       /* an end, or overwritten */
        }
        k = p->kind == SSE_EV_KEY ? m_holds(m, p->what) : 0;
        if ((p->kind == SSE_EV_NAME && p->what == m->name && s >= m->born)
            || (k && s >= m->since[k - 1])) {
            seqs[n++] = s;
        }
    }
    return n;
}

/* Every event a stream reads is for it: a key it held when the entry was
 * published, or a completion for its name published after it was created;
 * in order, after the point asked for; each the entry the loop published
 * with that seq; its data line framed for this stream; and exactly the
 * model's, the oldest `max` of them, from any point. */
static void op_read(chaos_t *c)
{
    ch_id_t *m = pick_connected(c);
    sse_event_t evs[CH_HISTORY];
    apr_uint64_t exp[CH_HISTORY];
    char buf[SSE_DATA_MAX], want[SSE_DATA_MAX];
    const char *data;
    apr_uint64_t prev, head = sse_registry_head(c->fx.reg);
    apr_size_t len, wlen;
    apr_status_t rv;
    int n = 0, i, k, max, nexp;

    c->op = "read";
    if (m == NULL) {
        return;
    }
    max = ch_rand(c, 2) ? CH_HISTORY : 1 + (int)ch_rand(c, 8);
    prev = m->hold.cursor;
    if (ch_rand(c, 3) == 0) {
        prev = ch_rand(c, (apr_uint32_t)head + 1);
    }
    rv = sse_registry_read(c->fx.reg, &m->hold, prev, evs, max, &n);
    CHECK_RV(APR_SUCCESS, rv, "read of %s's current stream", m->id);
    nexp = m_expected(c, m, prev, max, exp);
    if (CHECK_INT(nexp, n, "%s reads after %llu, %d at most", m->id,
                  (unsigned long long)prev, max)) {
        for (i = 0; i < n; i++) {
            CHECK_INT(exp[i], evs[i].seq, "%s's event %d after %llu", m->id,
                      i, (unsigned long long)prev);
        }
    }
    for (i = 0; i < n; i++) {
        const sse_event_t *e = &evs[i];
        const ch_pub_t *p = &c->pub[e->seq % CH_HISTORY];
        CHECK(e->seq > prev, "event seq %llu after %llu",
              (unsigned long long)e->seq, (unsigned long long)prev);
        prev = e->seq;
        CHECK(e->seq >= m->born, "%s (created at head %llu) read entry %llu "
              "published before it", m->id, (unsigned long long)m->born,
              (unsigned long long)e->seq);
        if (!CHECK(p->seq == e->seq && p->kind == e->kind
                       && p->ms == e->ms,
                   "%s read entry %llu of kind %u that the loop did not "
                   "publish so", m->id, (unsigned long long)e->seq,
                   e->kind)) {
            continue;
        }
        data = NULL;
        len = 0;
        rv = sse_registry_event_data(e, m->id, buf, &data, &len);
        CHECK_RV(APR_SUCCESS, rv, "event data of %llu for %s",
                 (unsigned long long)e->seq, m->id);
        if (e->kind == SSE_EV_NAME) {
            c->completions_read++;
            CHECK(p->what == m->name && strcmp(e->key, ch_names[m->name]) == 0,
                  "%s read a completion for %s (name %s)", m->id,
                  ch_names[p->what], e->key);
            CHECK_MEM("task", 4, e->data, e->len, "the raw task id");
            if (rv == APR_SUCCESS
                && CHECK_RV(APR_SUCCESS,
                            sse_frame_completed(e->ms, m->id, "task", want,
                                                &wlen), "frame")) {
                CHECK_MEM(want, wlen, data, len,
                          "%s's completion framed with its own id", m->id);
            }
        }
        else if (CHECK(e->kind == SSE_EV_KEY, "kind %u read", e->kind)) {
            c->keys_read++;
            for (k = 0; k < CH_KEYS; k++) {
                if (strcmp(c->keys[k], e->key) == 0) {
                    break;
                }
            }
            if (CHECK(k < CH_KEYS && p->what == k && m_holds(m, k),
                      "%s read key %s it does not hold", m->id, e->key)) {
                CHECK(e->seq >= m->since[m_holds(m, k) - 1],
                      "%s read %s entry %llu published before it listened "
                      "(at head %llu)", m->id, e->key,
                      (unsigned long long)e->seq,
                      (unsigned long long)m->since[m_holds(m, k) - 1]);
                if (rv == APR_SUCCESS) {
                    const char *w = apr_psprintf(c->fx.pool, "\"notify^%s\"",
                                                 c->keys[k]);
                    CHECK(data == e->data, "a key's payload as stored");
                    CHECK_MEM(w, strlen(w), data, len, "payload of %s",
                              e->key);
                }
            }
        }
    }
    m = pick_stale(c);
    if (m) {
        rv = sse_registry_read(c->fx.reg, &m->stale, 0, evs, CH_HISTORY, &n);
        CHECK_RV(APR_EOF, rv, "read of %s's ended stream", m->id);
    }
}

static void op_unregister(chaos_t *c)
{
    int i = (int)ch_rand(c, CH_IDS);
    ch_id_t *m = &c->ids[i];
    apr_int64_t until = c->now + ch_rand(c, 60);
    apr_uint32_t want = m->connected ? m->pid : 0, ended = 4242;
    apr_uint32_t pids[CH_CHILDREN + 1];
    int n;

    c->op = "unregister";
    CHECK_RV(m->live ? APR_SUCCESS : APR_ENOENT,
             sse_registry_unregister(c->fx.reg, m->id, until, &ended),
             "unregister %s", m->id);
    CHECK_INT(want, ended, "unregister %s: the pid of the stream it ended",
              m->id);
    if (want) {
        c->ended_pids++;
        n = r_holders(c, 1, CH_CHILDREN, pids);
        CHECK_INT(1, fx_count_pid(pids, n, want), "pid %u, whose stream "
                  "just ended, in holders(any 1)", want);
    }
    if (m->live) {
        m_retire(c, i, until);
        c->removed++;
    }
    m_remove(m);
}

static void op_clear(chaos_t *c)
{
    apr_int64_t until = c->now + ch_rand(c, 60);
    apr_uint32_t slot, pids[CH_CHILDREN + 1];
    int i, n, removed = -1, had[CH_PIDS];

    c->op = "clear";
    for (i = 0; i < CH_PIDS; i++) {
        had[i] = m_pid_streams(c, ch_pid(i));
    }
    CHECK_RV(APR_SUCCESS, sse_registry_clear(c->fx.reg, until, &removed),
             "clear");
    CHECK_INT(m_live(c), removed, "clear removes every listener");
    CHECK_INT(0, r_holders(c, 0, CH_CHILDREN, pids),
              "nobody holds a stream after a clear");
    n = r_holders(c, 1, 1 + c->step % CH_CHILDREN, pids);
    for (i = 0; i < CH_PIDS; i++) {
        if (had[i]) {
            CHECK_INT(1, fx_count_pid(pids, n, ch_pid(i)), "pid %u held %d "
                      "streams the clear ended: in holders(any 1) once",
                      ch_pid(i), had[i]);
        }
    }
    c->removed += removed;
    for (slot = 0; slot < CH_MAX; slot++) {     /* retired in slot order */
        for (i = 0; i < CH_IDS; i++) {
            if (c->ids[i].live && c->ids[i].slot == slot) {
                m_retire(c, i, until);
                m_remove(&c->ids[i]);
            }
        }
    }
}

static void op_cleanup(chaos_t *c)
{
    apr_int64_t dormant = ch_rand(c, 300);
    int i, want = 0, removed = -1;

    c->op = "cleanup";
    for (i = 0; i < CH_IDS; i++) {
        want += c->ids[i].live && !c->ids[i].connected
                && c->now - c->ids[i].activity >= dormant;
    }
    CHECK_RV(APR_SUCCESS,
             sse_registry_cleanup(c->parent, c->now, dormant, &removed),
             "cleanup by the parent's non-blocking handle");
    CHECK_INT(want, removed, "cleanup(dormant %lld) removes the listeners "
              "without stream idle that long", (long long)dormant);
    c->removed += removed;
    for (i = 0; i < CH_IDS; i++) {
        ch_id_t *m = &c->ids[i];
        if (m->live && !m->connected && c->now - m->activity >= dormant) {
            m_remove(m);
        }
    }
}

/* Mostly a live listener, several keys at once: some reach the limit. */
static void op_listen(chaos_t *c)
{
    ch_id_t *m = &c->ids[ch_rand(c, CH_IDS)];
    int n = 1 + (int)ch_rand(c, 16), i;

    if (!m->live && ch_rand(c, 8) != 0) {
        int start = (int)ch_rand(c, CH_IDS);
        for (i = 0; i < CH_IDS && !c->ids[(start + i) % CH_IDS].live; i++) {
        }
        m = &c->ids[(start + i) % CH_IDS];
    }

    c->op = "listen";
    for (i = 0; i < n; i++) {
        int key = (int)ch_rand(c, CH_KEYS);
        apr_status_t want, rv;
        if (!m->live) {
            want = APR_ENOENT;
        }
        else if (m_holds(m, key)) {
            want = APR_SUCCESS;
        }
        else if (m->nkeys == SSE_MAX_KEYS) {
            want = APR_ENOSPC;
        }
        else {
            want = APR_SUCCESS;
            m->since[m->nkeys] = sse_registry_head(c->fx.reg);
            m->keys[m->nkeys++] = key;
        }
        rv = sse_registry_listen(c->fx.reg, m->id, c->keys[key], c->now);
        CHECK_RV(want, rv, "listen %s %s with %d keys", m->id, c->keys[key],
                 m->nkeys);
        c->enospc_listen += rv == APR_ENOSPC;
        if (m->live) {
            m->activity = c->now;
        }
    }
}

/* Route the entry just published at @a seq to every process: each must be
 * called back once for each stream it holds of a listener @a is_target
 * picks (the model's targets), with that stream's slot and holder_gen. */
static void check_route(chaos_t *c, apr_uint64_t seq, apr_uint32_t kind,
                        int (*is_target)(const ch_id_t *m, int what),
                        int what)
{
    fx_routed_t r;
    int p, i, j, want;

    for (p = 0; p < CH_PIDS; p++) {
        apr_uint32_t pid = ch_pid(p);
        memset(&r, 0, sizeof(r));
        CHECK_INT(0, sse_registry_route(c->fx.reg, seq, seq + 1, pid,
                                        fx_route_cb, &r),
                  "the entry just published is in the ring");
        want = 0;
        for (i = 0; i < CH_IDS; i++) {
            const ch_id_t *m = &c->ids[i];
            if (!m->connected || m->pid != pid || !is_target(m, what)) {
                continue;
            }
            want++;
            for (j = 0; j < r.n; j++) {
                if (r.call[j].slot == m->hold.slot) {
                    break;
                }
            }
            if (CHECK(j < r.n, "pid %u not called back for %s's stream",
                      pid, m->id)) {
                CHECK(r.call[j].holder_gen == m->hold.holder_gen
                          && r.call[j].kind == kind && r.call[j].seq == seq,
                      "pid %u called back for %s with gen %u kind %u seq "
                      "%llu", pid, m->id, r.call[j].holder_gen,
                      r.call[j].kind, (unsigned long long)r.call[j].seq);
            }
        }
        CHECK_INT(want, r.n, "pid %u: one callback per target stream it "
                  "holds", pid);
    }
}

static int m_holds_key(const ch_id_t *m, int key)
{
    return m_holds(m, key) != 0;
}

static int m_has_name(const ch_id_t *m, int name)
{
    return m->name == name;
}

static void op_notify_key(chaos_t *c)
{
    int key = (int)ch_rand(c, CH_KEYS), i, want = 0, delivered = -1;
    apr_uint64_t head = sse_registry_head(c->fx.reg);

    c->op = "notify-listeners";
    for (i = 0; i < CH_IDS; i++) {
        want += c->ids[i].live && m_holds(&c->ids[i], key);
    }
    CHECK_RV(APR_SUCCESS,
             sse_registry_notify_key(c->fx.reg, c->keys[key], c->now,
                                     &delivered), "notify %s", c->keys[key]);
    CHECK_INT(want, delivered, "holders of %s", c->keys[key]);
    CHECK_INT(head + (want > 0), sse_registry_head(c->fx.reg),
              "one entry for the holders of %s, none without", c->keys[key]);
    if (want > 0) {
        m_publish(c, head, SSE_EV_KEY, key);
        check_route(c, head, SSE_EV_KEY, m_holds_key, key);
    }
}

static void op_notify_completion(chaos_t *c)
{
    ch_id_t *m = &c->ids[ch_rand(c, CH_IDS)];
    apr_uint64_t head = sse_registry_head(c->fx.reg);
    int i, want = 0, delivered = -1;

    c->op = "notify-completions";
    for (i = 0; i < CH_IDS; i++) {
        want += c->ids[i].live && c->ids[i].name == m->name;
    }
    CHECK_RV(m->live ? APR_SUCCESS : APR_ENOENT,
             sse_registry_notify_completion(c->fx.reg, m->id, "task", c->now,
                                            &delivered),
             "notify-completions %s", m->id);
    CHECK_INT(m->live ? want : 0, delivered, "tabs of %s",
              ch_names[m->name]);
    CHECK_INT(head + m->live, sse_registry_head(c->fx.reg),
              "one entry for every tab of %s, none for an unknown id",
              ch_names[m->name]);
    if (m->live) {
        m_publish(c, head, SSE_EV_NAME, m->name);
        check_route(c, head, SSE_EV_NAME, m_has_name, m->name);
    }
}

static void op_child_gone(chaos_t *c)
{
    apr_uint32_t pid = ch_pid((int)ch_rand(c, CH_PIDS));
    apr_uint32_t pids[CH_CHILDREN + 1];
    int i, n, had = m_pid_streams(c, pid);

    c->op = "child_gone";
    CHECK_RV(APR_SUCCESS, sse_registry_child_gone(c->parent, pid, c->now),
             "child_gone %u by the parent's non-blocking handle", pid);
    for (i = 0; i < CH_IDS; i++) {
        if (c->ids[i].connected && c->ids[i].pid == pid) {
            m_drop_stream(&c->ids[i]);
            c->ids[i].activity = c->now;    /* its client comes back */
        }
    }
    n = r_holders(c, 0, CH_CHILDREN, pids);
    CHECK_INT(0, fx_count_pid(pids, n, pid), "pid %u is gone: it holds "
              "nothing", pid);
    if (had) {
        c->gone_with_streams++;
        c->known[m_pid_index(pid)] = 0;
        n = r_holders(c, 1, CH_CHILDREN, pids);
        CHECK_INT(0, fx_count_pid(pids, n, pid), "pid %u held %d streams "
                  "and is gone: its child entry is dropped", pid, had);
    }
}

static void op_lookup(chaos_t *c)
{
    int i;

    c->op = "lookup";
    for (i = 0; i < CH_IDS; i++) {
        CHECK_RV(c->ids[i].live ? APR_SUCCESS : APR_ENOENT,
                 sse_registry_lookup(c->fx.reg, c->ids[i].id), "lookup %s",
                 c->ids[i].id);
    }
}

/* A process died holding the mutex after a whole operation: the next
 * holder rebuilds the indexes and counters, and nothing the model knows
 * may change. */
static void op_died_in_lock(chaos_t *c)
{
    sse_stats_t st;

    c->op = "died in the lock";
    fx_died_in_lock(c->fx.reg);
    sse_registry_stats(c->fx.reg, &st);
    CHECK(st.repairs > 0, "the next holder repaired");
}

static const struct {
    int weight;
    void (*fn)(chaos_t *c);
} ch_ops[] = {
    {25, op_connect},   {10, op_release},       {3, op_release_stale},
    {5, op_ack},        {8, op_read},           {6, op_unregister},
    {1, op_clear},      {3, op_cleanup},        {19, op_listen},
    {8, op_notify_key}, {7, op_notify_completion}, {3, op_child_gone},
    {2, op_lookup},     {1, op_died_in_lock},
};

/* ---- the invariants --------------------------------------------------- */

static void check_invariants(chaos_t *c)
{
    apr_uint32_t pids[CH_CHILDREN + 1], all_pids[CH_CHILDREN + 1];
    int chunk = 1 + c->step % (CH_CHILDREN + 1);   /* 1 .. more than all */
    sse_child_stat_t kids[CH_CHILDREN + 1];
    sse_stats_t st;
    json_t *all;
    int i, k, n, n_all;

    CHECK_COUNTERS(c->fx.reg);
    n = sse_registry_children(c->fx.reg, kids, CH_CHILDREN + 1);
    CHECK_INT(m_holder_pids(c), n, "processes with streams");
    for (i = 0; i < n; i++) {
        CHECK_INT(m_pid_streams(c, kids[i].pid), kids[i].streams,
                  "streams of pid %u", kids[i].pid);
    }
    sse_registry_stats(c->fx.reg, &st);
    CHECK_INT(m_live(c), st.listeners, "stats.listeners");
    CHECK_INT(m_connected(c), st.connected, "stats.connected");
    n = r_holders(c, 0, chunk, pids);
    CHECK_INT(m_holder_pids(c), n, "holder pids, %d at a time", chunk);
    n_all = r_holders(c, 1, chunk, all_pids);
    CHECK(n_all <= CH_CHILDREN, "holders(any 1) lists %d pids, more than "
          "the %d child entries", n_all, CH_CHILDREN);
    for (i = 0; i < n; i++) {
        CHECK(m_pid_streams(c, pids[i]) > 0, "pid %u listed as a holder "
              "holds no stream", pids[i]);
        CHECK_INT(1, fx_count_pid(pids, n, pids[i]), "pid %u listed once",
                  pids[i]);
        CHECK_INT(1, fx_count_pid(all_pids, n_all, pids[i]), "holder pid "
                  "%u in holders(any 1) once", pids[i]);
    }
    for (i = 0; i < n_all; i++) {
        apr_uint32_t pid = all_pids[i];
        CHECK(pid >= ch_pid(0) && pid < ch_pid(CH_PIDS)
                  && c->known[m_pid_index(pid)],
              "holders(any 1) lists pid %u, which has no child entry", pid);
        CHECK_INT(1, fx_count_pid(all_pids, n_all, pid), "pid %u in "
                  "holders(any 1) once", pid);
    }
    all = fx_json(&c->fx);
    if (all == NULL) {
        return;
    }
    CHECK_INT(m_live(c), json_object_size(all), "listeners in the JSON");
    for (i = 0; i < CH_IDS; i++) {
        const ch_id_t *m = &c->ids[i];
        json_t *l = json_object_get(all, m->id), *keys;
        if (!m->live) {
            CHECK(l == NULL, "%s is listed but was removed", m->id);
            continue;
        }
        if (!CHECK(json_is_object(l), "%s is not listed", m->id)) {
            continue;
        }
        CHECK(json_is_boolean(json_object_get(l, "connected"))
                  && json_is_true(json_object_get(l, "connected"))
                         == m->connected,
              "%s connected should be %d", m->id, m->connected);
        CHECK_INT(m->registered,
                  json_integer_value(json_object_get(l, "registered-ts")),
                  "%s registered-ts", m->id);
        CHECK_INT(m->activity,
                  json_integer_value(json_object_get(l, "last-activity")),
                  "%s last-activity", m->id);
        keys = json_object_get(l, "listenKeys");
        if (CHECK_INT(m->nkeys, json_array_size(keys), "%s listenKeys",
                      m->id)) {
            for (k = 0; k < m->nkeys; k++) {
                const char *got = json_string_value(json_array_get(keys, k));
                CHECK(got && strcmp(got, c->keys[m->keys[k]]) == 0,
                      "%s key %d is %s, expected %s", m->id, k,
                      got ? got : "(null)", c->keys[m->keys[k]]);
            }
        }
    }
    json_decref(all);
}

static apr_uint64_t env_or(const char *name, apr_uint64_t dflt)
{
    const char *v = getenv(name);

    return (v && *v) ? (apr_uint64_t)strtoull(v, NULL, 0) : dflt;
}

UNIT_TEST(test_chaos_random_operations_keep_the_registry_consistent)
{
    chaos_t *c = apr_pcalloc(unit_pool(), sizeof(*c));
    apr_uint64_t seed = env_or("SSE_CHAOS_SEED", CH_SEED);
    int steps = (int)env_or("SSE_CHAOS_STEPS", CH_STEPS);
    int total = 0, i, removed = -1;
    char *js = NULL;
    sse_hold_t hold;

    for (i = 0; i < (int)(sizeof(ch_ops) / sizeof(ch_ops[0])); i++) {
        total += ch_ops[i].weight;
    }
    if (!fx_open(&c->fx, CH_MAX, CH_HISTORY, CH_CHILDREN)) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS, sse_registry_attach(c->fx.pool, c->fx.mem,
                                                &c->fx.sz, c->fx.lock,
                                                &c->parent),
               "the parent's handle");
    sse_registry_set_nonblocking(c->parent);
    c->rng = seed ? seed : 1;
    for (i = 0; i < CH_MAX; i++) {
        c->retired[i].id = -1;
    }
    for (i = 0; i < CH_IDS; i++) {
        c->ids[i].name = i % CH_NAMES;
        c->ids[i].id = fx_id(&c->fx, ch_names[c->ids[i].name]);
    }
    for (i = 0; i < CH_KEYS; i++) {
        c->keys[i] = apr_psprintf(c->fx.pool, "k%d", i);
    }
    for (c->step = 0; c->step < steps; c->step++) {
        int pick = (int)ch_rand(c, (apr_uint32_t)total), o = 0;
        while (pick >= ch_ops[o].weight) {
            pick -= ch_ops[o++].weight;
        }
        c->now += 1 + ch_rand(c, 3);
        ch_ops[o].fn(c);
        check_invariants(c);
        if (unit_failures()) {
            CHECK(0, "chaos stopped at step %d, after %s (seed 0x%llx)",
                  c->step, c->op, (unsigned long long)seed);
            return;
        }
    }
    /* the loop must have reached the edges it is meant to test */
    CHECK(c->enospc_connect > 0, "no connect met a table full of "
          "streams");
    CHECK(c->reclaims > 0, "no connect reclaimed a listener");
    CHECK(c->eagain_connect > 0, "no connect met a full child table");
    CHECK(c->eexist_connect > 0, "no connect met a retired id");
    CHECK(c->enospc_listen > 0, "no listen met the key limit");
    CHECK(c->takeovers > 0 && c->removed > 0, "no takeover or removal");
    CHECK(c->cross_takeovers > 0 && c->cross_takeovers < c->takeovers,
          "takeovers from another pid (%d) and the same pid (%d)",
          c->cross_takeovers, c->takeovers - c->cross_takeovers);
    CHECK(c->ended_pids > 0, "no unregister ended a stream");
    CHECK(c->gone_with_streams > 0, "no child_gone met a child with streams");
    CHECK(c->completions_read > 0 && c->keys_read > 0,
          "no completion or key event read (%d, %d)", c->completions_read,
          c->keys_read);

    /* afterwards: nothing leaked */
    CHECK_RV(APR_SUCCESS, sse_registry_clear(c->fx.reg, c->now, &removed),
             "clear");
    CHECK_RV(APR_SUCCESS, sse_registry_json(c->fx.reg, c->fx.pool, &js),
             "json");
    CHECK_STR("{}", js, "empty after clear");
    for (i = 0; i < CH_MAX; i++) {
        CHECK_RV(APR_SUCCESS,
                 fx_connect(&c->fx, fx_id(&c->fx, "fresh"), ch_pid(0),
                            c->now, &hold),
                 "fresh connect %d of %d: no slot leaked", i + 1, CH_MAX);
    }
    CHECK_RV(APR_ENOSPC, fx_connect(&c->fx, fx_id(&c->fx, "fresh"), ch_pid(0),
                                    c->now, &hold), "and no more than that");
}
