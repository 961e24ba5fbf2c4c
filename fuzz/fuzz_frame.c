/*
 * Fuzz the SSE framer (src/sse_frame.c) and read its bytes back the way a
 * browser's EventSource does.
 *
 * Input: NUL-separated fields, the first naming the builder, as the lines
 * of t/unit/cases/frames.txt without their expectation:
 *
 *   data <kind> <arg> | completed <ms> <id> <taskid> | event <seq> <data>
 *   | retry <ms> | missed <from> <to>
 *
 * Properties:
 * - data/completed: the status is the one an oracle predicts from the
 *   input's length, its JSON-escaped length and whether it is UTF-8; a
 *   payload is one line (no CR, LF or NUL), decodes with jansson to
 *   exactly `<kind>^<arg>` (or `completed^` and an object of exactly
 *   timestamp, id and taskid, in that order, equal to the input), and
 *   framed as an event it is read by an EventSource parser as exactly one
 *   event whose id is the seq and whose data is the payload: no input can
 *   add a field or an event;
 * - event: the bytes are `id: <seq>\ndata:<data>\n\n`, read as one event
 *   with that data for any data without CR or LF (the framer trusts its
 *   data to be a payload: every caller passes one from sse_frame_data()
 *   or sse_frame_completed());
 * - missed: one event named missed whose data is {"from":a,"to":b};
 * - retry: the bytes `retry: <ms>\n\n`, which set the delay and dispatch
 *   no event.
 */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "fuzz.h"
#include "src/sse_frame.h"

#define MAX_FIELDS 5
#define JSON_FLAGS (JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER)

/* ---- an EventSource parser (HTML Living Standard, 9.2.6) ------------- */

typedef struct {
    int events;                 /* dispatched */
    const char *type, *data, *last_id;     /* of the last event */
    apr_size_t data_len;
    long long retry;            /* -1: never set */
    int fields;                 /* field lines, comments not counted */
} sse_read_t;

static void read_field(apr_pool_t *p, const char *line, apr_size_t n,
                       sse_read_t *st, const char **type, char **data,
                       apr_size_t *dlen, const char **id)
{
    const char *colon = memchr(line, ':', n);
    apr_size_t fl = colon ? (apr_size_t)(colon - line) : n;
    const char *v = colon ? colon + 1 : line + n;
    apr_size_t vl = (apr_size_t)(line + n - v), i;

    if (vl && *v == ' ') {
        v++;
        vl--;
    }
    st->fields++;
    if (fl == 5 && memcmp(line, "event", 5) == 0) {
        *type = apr_pstrmemdup(p, v, vl);
    }
    else if (fl == 4 && memcmp(line, "data", 4) == 0) {
        char *d = apr_palloc(p, *dlen + vl + 1);
        memcpy(d, *data, *dlen);
        memcpy(d + *dlen, v, vl);
        d[*dlen + vl] = '\n';
        *data = d;
        *dlen += vl + 1;
    }
    else if (fl == 2 && memcmp(line, "id", 2) == 0 && !memchr(v, 0, vl)) {
        *id = apr_pstrmemdup(p, v, vl);
    }
    else if (fl == 5 && memcmp(line, "retry", 5) == 0 && vl) {
        for (i = 0; i < vl && v[i] >= '0' && v[i] <= '9'; i++) {
        }
        if (i == vl) {
            st->retry = apr_atoi64(apr_pstrmemdup(p, v, vl));
        }
    }
}

static void sse_read(apr_pool_t *p, const char *b, apr_size_t n,
                     sse_read_t *st)
{
    const char *type = NULL, *id = "", *end = b + n;
    char *data = "";
    apr_size_t dlen = 0;

    memset(st, 0, sizeof(*st));
    st->retry = -1;
    while (b < end) {
        const char *eol = b;
        while (eol < end && *eol != '\r' && *eol != '\n') {
            eol++;
        }
        if (eol == end) {
            break;              /* an unterminated line is never used */
        }
        if (eol == b) {         /* blank line: dispatch */
            if (dlen) {
                st->events++;
                st->type = type ? type : "message";
                st->data = apr_pstrmemdup(p, data, dlen - 1);
                st->data_len = dlen - 1;
                st->last_id = id;
            }
            type = NULL;
            data = "";
            dlen = 0;
        }
        else if (*b != ':') {
            read_field(p, b, (apr_size_t)(eol - b), st, &type, &data, &dlen,
                       &id);
        }
        b = eol + ((*eol == '\r' && eol + 1 < end && eol[1] == '\n') ? 2 : 1);
    }
}

/* ---- oracles --------------------------------------------------------- */

/* RFC 3629 UTF-8 (no overlongs, no surrogates, nothing past U+10FFFF). */
static int utf8_valid(const unsigned char *s, apr_size_t n)
{
    apr_size_t i = 0, k, len;
    unsigned char lo, hi;

    while (i < n) {
        unsigned char c = s[i];
        lo = 0x80;
        hi = 0xbf;
        if (c < 0x80) {
            i++;
            continue;
        }
        else if (c >= 0xc2 && c <= 0xdf) {
            len = 2;
        }
        else if (c >= 0xe0 && c <= 0xef) {
            len = 3;
            lo = (c == 0xe0) ? 0xa0 : 0x80;
            hi = (c == 0xed) ? 0x9f : 0xbf;
        }
        else if (c >= 0xf0 && c <= 0xf4) {
            len = 4;
            lo = (c == 0xf0) ? 0x90 : 0x80;
            hi = (c == 0xf4) ? 0x8f : 0xbf;
        }
        else {
            return 0;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) {
            return 0;
        }
        for (k = 2; k < len; k++) {
            if (s[i + k] < 0x80 || s[i + k] > 0xbf) {
                return 0;
            }
        }
        i += len;
    }
    return 1;
}

/* Bytes of @a j dumped as the framer dumps it (j is stolen). */
static apr_size_t dumped_len(json_t *j)
{
    char *s = json_dumps(j, JSON_FLAGS);
    apr_size_t n = s ? strlen(s) : 0;

    FUZZ_CHECK(s != NULL, "jansson cannot dump a value it made");
    free(s);
    json_decref(j);
    return n;
}

/* What sse_frame_data() must return for `<kind>^<arg>` = @a text. */
static apr_status_t expect_data(const char *text)
{
    apr_size_t n = strlen(text);

    if (n >= SSE_DATA_MAX - 1) {
        return APR_ENOSPC;      /* cannot tell from apr_snprintf's cut */
    }
    if (!utf8_valid((const unsigned char *)text, n)) {
        return APR_EINVAL;
    }
    return dumped_len(json_string(text)) >= SSE_DATA_MAX ? APR_ENOSPC
                                                         : APR_SUCCESS;
}

static apr_status_t expect_completed(apr_pool_t *p, apr_int64_t ms,
                                     const char *id, const char *taskid)
{
    json_t *o;
    char *obj;
    apr_size_t n;

    if (!utf8_valid((const unsigned char *)id, strlen(id))
        || !utf8_valid((const unsigned char *)taskid, strlen(taskid))) {
        return APR_EINVAL;
    }
    o = json_pack("{s:I,s:s,s:s}", "timestamp", (json_int_t)ms, "id", id,
                  "taskid", taskid);
    obj = o ? json_dumps(o, JSON_FLAGS) : NULL;
    FUZZ_CHECK(obj != NULL, "jansson cannot build the completion");
    json_decref(o);
    n = strlen(obj);
    if (n >= SSE_DATA_MAX - 10) {
        free(obj);
        return APR_ENOSPC;
    }
    n = dumped_len(json_string(apr_pstrcat(p, "completed^", obj,
                                           NULL)));
    free(obj);
    return n >= SSE_DATA_MAX ? APR_ENOSPC : APR_SUCCESS;
}

/* ---- properties ------------------------------------------------------ */

/* A payload: one line, a JSON string; returns the decoded string. */
static json_t *check_payload(const char *buf, apr_size_t len)
{
    json_error_t err;
    json_t *j;

    FUZZ_CHECK(len > 0 && len < SSE_DATA_MAX && strlen(buf) == len,
               "payload length %zu", len);
    FUZZ_CHECK(!memchr(buf, '\n', len) && !memchr(buf, '\r', len),
               "the payload %s is not one line", buf);
    j = json_loadb(buf, len, JSON_DECODE_ANY, &err);
    FUZZ_CHECK(json_is_string(j), "payload %s is not a JSON string: %s",
               buf, err.text);
    return j;
}

/* Framed as event @a seq, the payload reads back as exactly one event. */
static void check_framed(apr_pool_t *p, apr_uint64_t seq, const char *buf,
                         apr_size_t len)
{
    apr_size_t n = 0;
    const char *ev = sse_frame_event(p, seq, buf, len, &n);
    sse_read_t rd;

    sse_read(p, ev, n, &rd);
    FUZZ_CHECK(rd.events == 1 && rd.fields == 2,
               "payload %s framed reads as %d events, %d fields", buf,
               rd.events, rd.fields);
    FUZZ_CHECK(strcmp(rd.type, "message") == 0, "type %s", rd.type);
    FUZZ_CHECK(rd.data_len == len && memcmp(rd.data, buf, len) == 0,
               "the event's data is not the payload %s", buf);
    FUZZ_CHECK(strcmp(rd.last_id,
                      apr_psprintf(p, "%" APR_UINT64_T_FMT, seq)) == 0,
               "the event's id is %s, not %" APR_UINT64_T_FMT, rd.last_id,
               seq);
}

static void fuzz_data(apr_pool_t *p, char **f, apr_uint64_t seq)
{
    char buf[SSE_DATA_MAX];
    const char *text = apr_pstrcat(p, f[1], "^", f[2], NULL);
    apr_status_t want = expect_data(text);
    apr_size_t len = 0;
    apr_status_t rv = sse_frame_data(f[1], f[2], buf, &len);
    json_t *j;

    FUZZ_CHECK(rv == want, "status %d, expected %d", rv, want);
    if (rv != APR_SUCCESS) {
        return;
    }
    j = check_payload(buf, len);
    FUZZ_CHECK(json_string_length(j) == strlen(text)
                   && memcmp(json_string_value(j), text, strlen(text)) == 0,
               "payload %s does not decode to the input", buf);
    json_decref(j);
    check_framed(p, seq, buf, len);
}

static void check_completion(const char *text, apr_int64_t ms,
                             const char *id, const char *taskid)
{
    json_t *o = json_loads(text + 10, 0, NULL);
    void *it = json_object_iter(o);

    FUZZ_CHECK(strncmp(text, "completed^{\"timestamp\":", 23) == 0,
               "%s does not start with completed^{\"timestamp\":", text);
    FUZZ_CHECK(json_is_object(o) && json_object_size(o) == 3,
               "not an object of three fields: %s", text);
    FUZZ_CHECK(json_integer_value(json_object_get(o, "timestamp")) == ms,
               "timestamp of %s", text);
    FUZZ_CHECK(json_is_string(json_object_get(o, "id"))
                   && strcmp(json_string_value(json_object_get(o, "id")),
                             id) == 0,
               "id of %s", text);
    FUZZ_CHECK(json_is_string(json_object_get(o, "taskid"))
                   && strcmp(json_string_value(json_object_get(o, "taskid")),
                             taskid) == 0,
               "taskid of %s", text);
    it = json_object_iter_next(o, it);
    FUZZ_CHECK(strcmp(json_object_iter_key(it), "id") == 0,
               "id is not the second field of %s", text);
    json_decref(o);
}

static void fuzz_completed(apr_pool_t *p, char **f, apr_uint64_t seq)
{
    char buf[SSE_DATA_MAX];
    apr_int64_t ms = apr_atoi64(f[1]);
    apr_status_t want = expect_completed(p, ms, f[2], f[3]);
    apr_size_t len = 0;
    apr_status_t rv = sse_frame_completed(ms, f[2], f[3], buf, &len);
    json_t *j;

    FUZZ_CHECK(rv == want, "status %d, expected %d", rv, want);
    if (rv != APR_SUCCESS) {
        return;
    }
    j = check_payload(buf, len);
    FUZZ_CHECK(strlen(json_string_value(j)) == json_string_length(j),
               "a NUL in the decoded completion");
    check_completion(json_string_value(j), ms, f[2], f[3]);
    json_decref(j);
    check_framed(p, seq, buf, len);
}

static void fuzz_event(apr_pool_t *p, char **f, apr_size_t *flen)
{
    apr_uint64_t seq = strtoull(f[1], NULL, 10);
    apr_size_t n = 0;
    const char *ev = sse_frame_event(p, seq, f[2], flen[2], &n);
    const char *want = apr_psprintf(p, "id: %" APR_UINT64_T_FMT "\ndata:%s"
                                    "\n\n", seq, f[2]);
    apr_size_t skip;
    sse_read_t rd;

    FUZZ_CHECK(n == strlen(want) && memcmp(ev, want, n) == 0,
               "event bytes differ for data %s", f[2]);
    if (memchr(f[2], '\r', flen[2]) || memchr(f[2], '\n', flen[2])) {
        return;                 /* data is a payload: one line, by contract */
    }
    sse_read(p, ev, n, &rd);
    FUZZ_CHECK(rd.fields == 2 && rd.events == 1,
               "data %s reads as %d events, %d fields", f[2], rd.events,
               rd.fields);
    skip = (f[2][0] == ' ');    /* a reader drops one space after data: */
    FUZZ_CHECK(rd.data_len == flen[2] - skip
                   && memcmp(rd.data, f[2] + skip, rd.data_len) == 0,
               "the event's data is not %s", f[2]);
}

static void fuzz_missed(apr_pool_t *p, char **f)
{
    /* seqs count from 1 and never reach 2^63: JSON integers are signed */
    apr_uint64_t from = strtoull(f[1], NULL, 10) & 0x7fffffffffffffffULL;
    apr_uint64_t to = strtoull(f[2], NULL, 10) & 0x7fffffffffffffffULL;
    apr_size_t n = 0;
    const char *ev = sse_frame_missed(p, from, to, &n);
    sse_read_t rd;
    json_t *o;

    FUZZ_CHECK(n == strlen(ev), "missed: out_len");
    sse_read(p, ev, n, &rd);
    FUZZ_CHECK(rd.events == 1 && rd.fields == 2
                   && strcmp(rd.type, "missed") == 0,
               "missed reads as %d events, %d fields", rd.events, rd.fields);
    o = json_loads(rd.data, 0, NULL);
    FUZZ_CHECK(json_is_object(o) && json_object_size(o) == 2
                   && (apr_uint64_t)json_integer_value(
                          json_object_get(o, "from")) == from
                   && (apr_uint64_t)json_integer_value(
                          json_object_get(o, "to")) == to,
               "missed data %s", rd.data);
    json_decref(o);
}

static void fuzz_retry(apr_pool_t *p, char **f)
{
    unsigned int ms = (unsigned int)strtoul(f[1], NULL, 10);
    apr_size_t n = 0;
    const char *ev = sse_frame_retry(p, ms, &n);
    sse_read_t rd;

    FUZZ_CHECK(strcmp(ev, apr_psprintf(p, "retry: %u\n\n", ms)) == 0
                   && n == strlen(ev),
               "retry bytes %s", ev);
    sse_read(p, ev, n, &rd);
    FUZZ_CHECK(rd.events == 0 && rd.fields == 1 && rd.retry == ms,
               "retry reads as %d events, retry %lld", rd.events, rd.retry);
}

static void fuzz_init(apr_pool_t *global)
{
    (void)global;
}

static void fuzz_one(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char *f[MAX_FIELDS], *s = apr_pstrmemdup(p, (const char *)data, size);
    const char *end = s + size;
    apr_size_t flen[MAX_FIELDS];
    /* an arbitrary seq for framing, large ones included */
    apr_uint64_t seq = ((apr_uint64_t)size << 40) ^ size;
    int nf = 0;

    for (;;) {                  /* NUL-separated; MAX_FIELDS means more */
        f[nf] = s;
        flen[nf] = strlen(s);
        s += flen[nf++];
        if (s >= end || nf == MAX_FIELDS) {
            break;
        }
        s++;
    }
    if (strcmp(f[0], "data") == 0 && nf == 3) {
        fuzz_data(p, f, seq);
    }
    else if (strcmp(f[0], "completed") == 0 && nf == 4) {
        fuzz_completed(p, f, seq);
    }
    else if (strcmp(f[0], "event") == 0 && nf == 3) {
        fuzz_event(p, f, flen);
    }
    else if (strcmp(f[0], "retry") == 0 && nf == 2) {
        fuzz_retry(p, f);
    }
    else if (strcmp(f[0], "missed") == 0 && nf == 3) {
        fuzz_missed(p, f);
    }
}
