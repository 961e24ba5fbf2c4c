/* sse_frame: the bytes of the wire, from cases/frames.txt and edge cases. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "src/sse_frame.h"
#include "unit.h"

/* Split @a line at TABs into at most @a max fields, unescaped. */
static int split_fields(char *line, char **f, apr_size_t *len, int max)
{
    int n = 0;
    char *tab;

    while (n < max) {
        f[n] = line;
        tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
        }
        len[n] = unit_unescape(f[n]);
        n++;
        if (!tab) {
            break;
        }
        line = tab + 1;
    }
    return n;
}

/* A payload must be one line, and decode to the JSON string @a text. */
static void check_payload(const char *file, int line, const char *buf,
                          apr_size_t len, const char *text)
{
    json_error_t err;
    json_t *j;

    CHECK_AT(file, line, memchr(buf, '\n', len) == NULL
                             && memchr(buf, '\r', len) == NULL,
             "the payload must stay one line");
    CHECK_AT(file, line, strlen(buf) == len, "NUL-terminated at its length");
    j = json_loadb(buf, len, JSON_DECODE_ANY, &err);
    if (!CHECK_AT(file, line, j && json_is_string(j),
                  "payload is not a JSON string: %s", err.text)) {
        json_decref(j);
        return;
    }
    CHECK_AT(file, line, strcmp(json_string_value(j), text) == 0,
             "payload decodes to \"%s\", not to \"%s\"",
             unit_escape(unit_pool(), json_string_value(j),
                         strlen(json_string_value(j))),
             unit_escape(unit_pool(), text, strlen(text)));
    json_decref(j);
}

/* A completion must decode to `completed^` and an object of exactly the
 * three fields given. */
static void check_completed(const char *file, int line, const char *buf,
                            apr_size_t len, apr_int64_t ms, const char *id,
                            const char *taskid)
{
    json_t *s = json_loadb(buf, len, JSON_DECODE_ANY, NULL), *o = NULL;
    const char *text = json_string_value(s);

    CHECK_AT(file, line, memchr(buf, '\n', len) == NULL,
             "the payload must stay one line");
    if (CHECK_AT(file, line, text && strncmp(text, "completed^", 10) == 0,
                 "payload is not the JSON string completed^...")) {
        o = json_loads(text + 10, 0, NULL);
    }
    if (CHECK_AT(file, line, json_is_object(o) && json_object_size(o) == 3,
                 "completed^ is followed by an object of three fields")) {
        CHECK_AT(file, line,
                 json_integer_value(json_object_get(o, "timestamp")) == ms,
                 "timestamp");
        CHECK_AT(file, line,
                 json_is_string(json_object_get(o, "id"))
                     && strcmp(json_string_value(json_object_get(o, "id")),
                               id) == 0,
                 "id decodes back to the id given");
        CHECK_AT(file, line,
                 json_is_string(json_object_get(o, "taskid"))
                     && strcmp(json_string_value(
                                   json_object_get(o, "taskid")),
                               taskid) == 0,
                 "taskid decodes back to the task id given");
    }
    json_decref(o);
    json_decref(s);
}

static void run_frame_case(const char *file, int line, char **f,
                           apr_size_t *flen, int nf)
{
    apr_pool_t *p = unit_pool();
    const char *expect = f[nf - 1];
    apr_size_t elen = flen[nf - 1], len = 0;
    char buf[SSE_DATA_MAX];
    const char *out = NULL;
    apr_status_t rv = APR_SUCCESS;
    const char *text = NULL;

    if (strcmp(f[0], "data") == 0 && nf == 4) {
        rv = sse_frame_data(f[1], f[2], buf, &len);
        out = buf;
        text = apr_pstrcat(p, f[1], "^", f[2], NULL);
    }
    else if (strcmp(f[0], "completed") == 0 && nf == 5) {
        rv = sse_frame_completed(apr_atoi64(f[1]), f[2], f[3], buf, &len);
        out = buf;
    }
    else if (strcmp(f[0], "event") == 0 && nf == 4) {
        out = sse_frame_event(p, (apr_uint64_t)strtoull(f[1], NULL, 10),
                              f[2], flen[2], &len);
    }
    else if (strcmp(f[0], "retry") == 0 && nf == 3) {
        out = sse_frame_retry(p, (unsigned int)strtoul(f[1], NULL, 10), &len);
    }
    else if (strcmp(f[0], "missed") == 0 && nf == 4) {
        out = sse_frame_missed(p, (apr_uint64_t)strtoull(f[1], NULL, 10),
                               (apr_uint64_t)strtoull(f[2], NULL, 10), &len);
    }
    else {
        CHECK_AT(file, line, 0, "unknown case \"%s\" with %d fields", f[0], nf);
        return;
    }
    if (strcmp(expect, "ENOSPC") == 0) {
        CHECK_AT(file, line, rv == APR_ENOSPC, "%s: expected APR_ENOSPC, "
                 "got %d", f[0], rv);
        return;
    }
    if (!CHECK_AT(file, line, rv == APR_SUCCESS, "%s: status %d", f[0], rv)) {
        return;
    }
    if (!CHECK_AT(file, line, len == elen && memcmp(out, expect, elen) == 0,
                  "%s: expected \"%s\", got \"%s\"", f[0],
                  unit_escape(p, expect, elen), unit_escape(p, out, len))) {
        return;
    }
    CHECK_AT(file, line, out[len] == '\0', "NUL-terminated");
    if (text) {
        check_payload(file, line, out, len, text);
    }
    else if (out == buf) {
        check_completed(file, line, out, len, apr_atoi64(f[1]), f[2], f[3]);
    }
}

UNIT_TEST(test_frame_cases_in_frames_txt_give_exact_bytes)
{
    char **lines, *f[6];
    apr_size_t flen[6];
    int *linenos, n, i, nf;
    const char *path;

    n = unit_read_lines("frames.txt", &lines, &linenos, &path);
    if (n < 0) {
        return;
    }
    CHECK(n >= 20, "frames.txt holds only %d cases", n);
    for (i = 0; i < n; i++) {
        nf = split_fields(lines[i], f, flen, 6);
        run_frame_case(path, linenos[i], f, flen, nf);
    }
}

static char *repeat(char c, int n)
{
    char *s = apr_palloc(unit_pool(), (apr_size_t)n + 1);

    memset(s, c, (apr_size_t)n);
    s[n] = '\0';
    return s;
}

typedef apr_status_t frame_of_fn(int n, char *buf, apr_size_t *len);

/* A key's payload of notify with an arg of @a n bytes. */
static apr_status_t data_of(int n, char *buf, apr_size_t *len)
{
    return sse_frame_data("notify", repeat('x', n), buf, len);
}

/* A completion's payload for an id of @a n bytes. */
static apr_status_t completed_of(int n, char *buf, apr_size_t *len)
{
    return sse_frame_completed(1234, repeat('i', n), "t1", buf, len);
}

/*
 * Frame with @a what (the part that grows) of every length from @a lo to
 * @a hi: each fits, as @a overhead + n bytes (NUL-terminated if
 * @a terminated), until one is APR_ENOSPC, and so is every longer one;
 * none writes past SSE_DATA_MAX bytes; the largest that fits leaves room
 * only for the NUL.
 */
static void sweep_to_enospc(const char *what, int lo, int hi, int overhead,
                            int terminated, frame_of_fn *frame)
{
    char buf[SSE_DATA_MAX + 16];
    apr_size_t len, best = 0;
    apr_status_t rv;
    int n, first_full = 0;

    for (n = lo; n <= hi; n++) {
        memset(buf, '#', sizeof(buf));
        len = 0;
        rv = frame(n, buf, &len);
        if (rv == APR_SUCCESS) {
            CHECK(!first_full, "%s of %d bytes fits after a shorter one did "
                  "not", what, n);
            CHECK_INT(n + overhead, len, "payload length for an %s of %d",
                      what, n);
            if (terminated) {
                CHECK(len < SSE_DATA_MAX && buf[len] == '\0', "terminated");
            }
            best = len;
        }
        else {
            CHECK_RV(APR_ENOSPC, rv, "%s of %d bytes", what, n);
            first_full = first_full ? first_full : n;
        }
        CHECK(buf[SSE_DATA_MAX] == '#', "nothing written past SSE_DATA_MAX "
              "bytes (%s of %d)", what, n);
    }
    CHECK_INT(SSE_DATA_MAX - 1, best, "the largest payload uses the buffer");
    CHECK(first_full > 0, "a long enough %s must be APR_ENOSPC", what);
}

UNIT_TEST(test_frame_data_fills_the_buffer_exactly_then_says_enospc)
{
    /* "notify^" + n bytes + 2 quotes: every size up to SSE_DATA_MAX - 1
     * fits, the first above it does not, nor does anything longer. */
    sweep_to_enospc("arg", 300, 600, 9, 1, data_of);
}

UNIT_TEST(test_frame_data_whose_escaping_overflows_is_enospc)
{
    char buf[SSE_DATA_MAX];
    apr_size_t len;

    /* 200 quotes fit unescaped (207 bytes), not escaped (409 bytes) */
    CHECK_RV(APR_ENOSPC, sse_frame_data("notify", repeat('"', 200), buf, &len),
             "escaping doubles each quote");
    CHECK_RV(APR_ENOSPC, sse_frame_data("notify", repeat('\n', 190), buf,
                                        &len), "each newline becomes \\n");
    CHECK_RV(APR_ENOSPC, sse_frame_data("notify", repeat('\x01', 70), buf,
                                        &len), "each control byte becomes "
             "\\u0001");
    CHECK_RV(APR_SUCCESS, sse_frame_data("notify", repeat('"', 150), buf,
                                         &len), "150 quotes escaped fit");
    CHECK_INT(2 + 7 + 300, len, "150 escaped quotes");
}

UNIT_TEST(test_frame_data_of_a_huge_arg_is_enospc)
{
    char buf[SSE_DATA_MAX];
    apr_size_t len;

    CHECK_RV(APR_ENOSPC, sse_frame_data("notify", repeat('k', 100000), buf,
                                        &len), "100000 bytes");
    CHECK_RV(APR_ENOSPC, sse_frame_data(repeat('k', 5000), "x", buf, &len),
             "a huge kind");
}

UNIT_TEST(test_frame_completed_fills_the_buffer_exactly_then_says_enospc)
{
    /* This sweeps the id through every length at which the inner object
     * is between SSE_DATA_MAX - 10 and SSE_DATA_MAX bytes long. The answer
     * is right (APR_ENOSPC), but sse_frame_completed() dumps the object
     * into text + 10 with a size of SSE_DATA_MAX and writes up to 10 bytes
     * past its stack buffer for ids of 334..360 bytes: build with
     * CC="cc -fsanitize=address" to see it. */
    sweep_to_enospc("id", 250, 600, 62, 0, completed_of);
}

UNIT_TEST(test_frame_completed_with_a_long_taskid_is_enospc)
{
    char buf[SSE_DATA_MAX];
    apr_size_t len;

    CHECK_RV(APR_ENOSPC, sse_frame_completed(1, "a_b", repeat('t', 400), buf,
                                             &len), "400-byte task id");
    CHECK_RV(APR_ENOSPC, sse_frame_completed(1, "a_b", repeat('"', 120), buf,
                                             &len),
             "120 quotes become 360 bytes after two escapings");
}

UNIT_TEST(test_frame_payload_of_any_ascii_byte_stays_one_line)
{
    char arg[4], buf[SSE_DATA_MAX];
    apr_size_t len;
    int c;

    for (c = 1; c < 128; c++) {
        json_t *j;
        arg[0] = 'a';
        arg[1] = (char)c;
        arg[2] = 'b';
        arg[3] = '\0';
        if (!CHECK_RV(APR_SUCCESS, sse_frame_data("notify", arg, buf, &len),
                      "byte 0x%02x", c)) {
            continue;
        }
        CHECK(memchr(buf, '\n', len) == NULL && memchr(buf, '\r', len) == NULL,
              "byte 0x%02x: payload %s is not one line", c,
              unit_escape(unit_pool(), buf, len));
        CHECK(buf[0] == '"' && buf[len - 1] == '"', "a JSON string");
        j = json_loadb(buf, len, JSON_DECODE_ANY, NULL);
        CHECK(json_is_string(j) && strcmp(json_string_value(j) + 7, arg) == 0,
              "byte 0x%02x decodes back", c);
        json_decref(j);
    }
}

UNIT_TEST(test_frame_data_refuses_invalid_utf8)
{
    char buf[SSE_DATA_MAX];
    apr_size_t len;

    CHECK_RV(APR_EINVAL, sse_frame_data("notify", "a\xff", buf, &len),
             "invalid UTF-8 cannot be a JSON string");
    CHECK_RV(APR_EINVAL, sse_frame_completed(1, "a\xc3", "t", buf, &len),
             "a truncated UTF-8 sequence in the id");
    CHECK_RV(APR_EINVAL, sse_frame_completed(1, "a", "\x80t", buf, &len),
             "a stray continuation byte in the task id");
}

UNIT_TEST(test_frame_event_uses_exactly_len_bytes_of_data)
{
    apr_size_t len;
    const char *s = sse_frame_event(unit_pool(), 9, "\"abc\"XYZ", 5, &len);

    CHECK_STR("id: 9\ndata:\"abc\"\n\n", s, "the bytes after len are not sent");
    CHECK_INT(strlen(s), len, "out_len");
}

UNIT_TEST(test_frame_builders_report_their_length)
{
    apr_size_t len = 0;
    const char *s;

    s = sse_frame_retry(unit_pool(), 2500, &len);
    CHECK_STR("retry: 2500\n\n", s, "retry");
    CHECK_INT(strlen(s), len, "retry length");
    s = sse_frame_missed(unit_pool(), 3, 4, &len);
    CHECK_STR("event: missed\ndata: {\"from\":3,\"to\":4}\n\n", s, "missed");
    CHECK_INT(strlen(s), len, "missed length");
    s = sse_frame_event(unit_pool(), 100, "\"x\"", 3, &len);
    CHECK_INT(strlen(s), len, "event length");
}

UNIT_TEST(test_frame_heartbeat_is_one_comment_line)
{
    const char *hb = SSE_FRAME_HEARTBEAT;
    apr_size_t n = strlen(hb);

    CHECK(hb[0] == ':', "a comment starts with a colon");
    CHECK(n >= 3 && strcmp(hb + n - 2, "\n\n") == 0, "ends with a blank line");
    CHECK(strchr(hb, '\n') == hb + n - 2, "one line only");
}

/* ---- payloads ---------------------------------------------------------- */

static apr_status_t payload(const char *body, int is_json, apr_size_t max,
                            const char **out, const char **reason)
{
    apr_size_t len;

    *out = NULL;
    *reason = NULL;
    return sse_frame_payload(unit_pool(), body, strlen(body), is_json, max,
                             out, &len, reason);
}

UNIT_TEST(test_frame_payload_json_is_checked_and_made_compact)
{
    const char *out, *why;

    CHECK_RV(APR_SUCCESS, payload("{ \"a\" : [1, 2,\n 3] }", 1, 100, &out,
                                  &why), "valid JSON");
    CHECK_STR("{\"a\":[1,2,3]}", out, "compact, one line");
    CHECK_RV(APR_SUCCESS, payload("42", 1, 100, &out, &why), "a scalar");
    CHECK_STR("42", out, "a scalar is JSON too");
    CHECK_RV(APR_EINVAL, payload("{\"a\":", 1, 100, &out, &why), "cut");
    CHECK(why && strstr(why, "not valid JSON") && strstr(why, "line 1"),
          "the parser's reason: %s", why ? why : "(none)");
    CHECK_RV(APR_EINVAL, payload("{\"a\":1,\"a\":2}", 1, 100, &out, &why),
             "a duplicate member is refused");
}

UNIT_TEST(test_frame_payload_text_becomes_one_json_string)
{
    const char *out, *why;

    CHECK_RV(APR_SUCCESS, payload("line 1\nline \"2\"\r\n", 0, 100, &out,
                                  &why), "text");
    CHECK_STR("\"line 1\\nline \\\"2\\\"\\r\\n\"", out, "escaped, one line");
    CHECK_RV(APR_EINVAL, payload("caf\xe9", 0, 100, &out, &why),
             "Latin-1 is not UTF-8");
    CHECK(why && strstr(why, "UTF-8"), "says why: %s", why ? why : "");
}

UNIT_TEST(test_frame_payload_bounds_the_json_not_the_body)
{
    const char *out, *why;

    CHECK_RV(APR_SUCCESS, payload("12345678", 0, 10, &out, &why),
             "10 bytes with its quotes");
    CHECK_RV(APR_ENOSPC, payload("123456789", 0, 10, &out, &why),
             "11 bytes");
    CHECK(why && strstr(why, "11 bytes"), "says the size: %s",
          why ? why : "");
    CHECK_RV(APR_ENOSPC, payload("\x01\x01", 0, 10, &out, &why),
             "escaping makes 2 bytes 14");
}

UNIT_TEST(test_frame_payload_events_are_named_and_exact)
{
    apr_size_t len;
    const char *s;

    s = sse_frame_notify_payload(unit_pool(), 7, "news", "{\"x\":1}", 7,
                                 &len);
    CHECK_STR("id: 7\nevent: notify\ndata: {\"key\":\"news\",\"data\":"
              "{\"x\":1}}\n\n", s, "notify");
    CHECK_INT(strlen(s), len, "its length");
    s = sse_frame_completed_payload(unit_pool(), 8, 1700000000123, "al_x",
                                    "t1", "\"done\"", 6, &len);
    CHECK_STR("id: 8\nevent: completed\ndata: {\"timestamp\":1700000000123,"
              "\"id\":\"al_x\",\"taskid\":\"t1\",\"data\":\"done\"}\n\n", s,
              "completed, fields in the original's order");
}
