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
