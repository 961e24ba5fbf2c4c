/* SSE framing; every JSON byte comes from jansson. */
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>
#include <jansson.h>

#include "sse_frame.h"

#define FRAME_JSON_FLAGS (JSON_ENCODE_ANY | JSON_COMPACT | JSON_PRESERVE_ORDER)

/* Dump @a j (stolen) into @a buf of @a size bytes; NUL-terminate. */
static apr_status_t dump_into(json_t *j, char *buf, apr_size_t size,
                              apr_size_t *len)
{
    apr_size_t n;

    if (j == NULL) {
        return APR_ENOMEM;
    }
    n = json_dumpb(j, buf, size, FRAME_JSON_FLAGS);
    json_decref(j);
    if (n == 0 || n >= size) {
        return APR_ENOSPC;
    }
    buf[n] = '\0';
    *len = n;
    return APR_SUCCESS;
}

/* json_string() refuses invalid UTF-8 with NULL: APR_EINVAL, not a
 * payload with a hole in it. */
static apr_status_t dump_string(const char *text, char *buf, apr_size_t *len)
{
    json_t *s = json_string(text);
    return s ? dump_into(s, buf, SSE_DATA_MAX, len) : APR_EINVAL;
}

apr_status_t sse_frame_data(const char *kind, const char *arg,
                            char *buf, apr_size_t *len)
{
    char text[SSE_DATA_MAX];
    int n = apr_snprintf(text, sizeof(text), "%s^%s", kind, arg);

    if (n < 0 || (apr_size_t)n >= sizeof(text) - 1) {
        return APR_ENOSPC;
    }
    return dump_string(text, buf, len);
}

apr_status_t sse_frame_completed(apr_int64_t ms, const char *id,
                                 const char *taskid, char *buf,
                                 apr_size_t *len)
{
    char text[SSE_DATA_MAX];
    json_t *o = json_object();
    apr_size_t n;
    apr_status_t rv;

    if (o == NULL) {
        return APR_ENOMEM;
    }
    if (json_object_set_new(o, "timestamp", json_integer(ms))
        || json_object_set_new(o, "id", json_string(id))
        || json_object_set_new(o, "taskid", json_string(taskid))) {
        json_decref(o);
        return APR_EINVAL;      /* not UTF-8, or out of memory */
    }
    memcpy(text, "completed^", 10);
    rv = dump_into(o, text + 10, sizeof(text) - 10, &n);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    return dump_string(text, buf, len);
}

char *sse_frame_event(apr_pool_t *p, apr_uint64_t seq, const char *data,
                      apr_size_t len, apr_size_t *out_len)
{
    char *s = apr_psprintf(p, "id: %" APR_UINT64_T_FMT "\ndata:%.*s\n\n",
                           seq, (int)len, data);
    *out_len = strlen(s);
    return s;
}

char *sse_frame_missed(apr_pool_t *p, apr_uint64_t from, apr_uint64_t to,
                       apr_size_t *out_len)
{
    json_t *o = json_pack("{s:I,s:I}", "from", (json_int_t)from,
                          "to", (json_int_t)to);
    char *js = o ? json_dumps(o, FRAME_JSON_FLAGS) : NULL;
    char *s;

    json_decref(o);
    s = apr_pstrcat(p, "event: missed\ndata: ", js ? js : "{}", "\n\n",
                    NULL);
    free(js);
    *out_len = strlen(s);
    return s;
}

char *sse_frame_retry(apr_pool_t *p, unsigned int ms, apr_size_t *out_len)
{
    char *s = apr_psprintf(p, "retry: %u\n\n", ms);
    *out_len = strlen(s);
    return s;
}

/* ---- payloads --------------------------------------------------------- */

apr_status_t sse_frame_payload(apr_pool_t *p, const char *body,
                               apr_size_t len, int is_json, apr_size_t max,
                               const char **out, apr_size_t *out_len,
                               const char **reason)
{
    json_error_t err;
    json_t *j;
    char *s;
    apr_size_t n;

    if (is_json) {
        j = json_loadb(body, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES,
                       &err);
        if (j == NULL) {
            *reason = apr_psprintf(p, "the body is not valid JSON: %s "
                                   "(line %d, column %d)", err.text,
                                   err.line, err.column);
            return APR_EINVAL;
        }
    }
    else if ((j = json_stringn(body, len)) == NULL) {
        *reason = "the body is not UTF-8 text (send JSON as "
                  "application/json)";
        return APR_EINVAL;
    }
    s = json_dumps(j, FRAME_JSON_FLAGS);
    json_decref(j);
    if (s == NULL) {
        *reason = "out of memory";
        return APR_ENOMEM;
    }
    n = strlen(s);
    if (n > max) {
        *reason = apr_psprintf(p, "the payload is %" APR_SIZE_T_FMT " bytes "
                               "as JSON (at most %" APR_SIZE_T_FMT ")", n,
                               max);
        free(s);
        return APR_ENOSPC;
    }
    *out = apr_pstrmemdup(p, s, n);
    *out_len = n;
    free(s);
    return APR_SUCCESS;
}

/* `id: <seq>\nevent: <name>\ndata: {<head's members>,"data":<payload>}`.
 * Every value comes from jansson: @a head (stolen) dumped without its
 * braces (JSON_EMBED), the payload as sse_frame_payload() made it; only
 * the constant envelope is written here. */
static char *named(apr_pool_t *p, apr_uint64_t seq, const char *name,
                   json_t *head, const char *payload, apr_size_t plen,
                   apr_size_t *out_len)
{
    char *members = head ? json_dumps(head, FRAME_JSON_FLAGS | JSON_EMBED)
                         : NULL;
    char *s;

    json_decref(head);
    if (members == NULL) {
        return NULL;
    }
    s = apr_psprintf(p, "id: %" APR_UINT64_T_FMT "\nevent: %s\ndata: "
                     "{%s,\"data\":%.*s}\n\n", seq, name, members,
                     (int)plen, payload);
    free(members);
    *out_len = strlen(s);
    return s;
}

char *sse_frame_notify_payload(apr_pool_t *p, apr_uint64_t seq,
                               const char *key, const char *payload,
                               apr_size_t plen, apr_size_t *out_len)
{
    return named(p, seq, "notify", json_pack("{s:s}", "key", key), payload,
                 plen, out_len);
}

char *sse_frame_completed_payload(apr_pool_t *p, apr_uint64_t seq,
                                  apr_int64_t ms, const char *id,
                                  const char *taskid, const char *payload,
                                  apr_size_t plen, apr_size_t *out_len)
{
    return named(p, seq, "completed",
                 json_pack("{s:I,s:s,s:s}", "timestamp", (json_int_t)ms,
                           "id", id, "taskid", taskid),
                 payload, plen, out_len);
}
