/**
 * @file sse_frame.h
 * @brief The bytes of the wire (docs/api.md): event data as JSON strings built
 *        with jansson, and the `id:`/`data:` framing around them.
 *
 * Data payloads are built once, at publish time, into a bounded buffer (they
 * live in the event ring); the framing is added per stream at write time.
 */
#ifndef SSE_FRAME_H
#define SSE_FRAME_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>

/** Room for the largest data payload (a completion with a 92-byte id). */
#define SSE_DATA_MAX 384

/** Comment line sent on idle streams. */
#define SSE_FRAME_HEARTBEAT ": heartbeat\n\n"

/**
 * Encode `<kind>^<arg>` as a JSON string into @a buf.
 * @param kind "registered" or "notify"
 * @param arg  the id or key
 * @param buf  out, SSE_DATA_MAX bytes, NUL-terminated
 * @param len  out: bytes written, without the NUL
 * @return APR_SUCCESS, APR_ENOSPC if it does not fit, APR_EINVAL if a
 *         value is not UTF-8, APR_ENOMEM
 */
apr_status_t sse_frame_data(const char *kind, const char *arg,
                            char *buf, apr_size_t *len);

/**
 * Encode `completed^{"timestamp":ms,"id":id,"taskid":taskid}` as a JSON
 * string (the object compact and in that order, as the original).
 * @return as sse_frame_data()
 */
apr_status_t sse_frame_completed(apr_int64_t ms, const char *id,
                                 const char *taskid, char *buf,
                                 apr_size_t *len);

/**
 * Frame one event: `id: <seq>\ndata:<data>\n\n`.
 * @return the bytes, allocated from @a p
 */
char *sse_frame_event(apr_pool_t *p, apr_uint64_t seq, const char *data,
                      apr_size_t len, apr_size_t *out_len);

/**
 * The `missed` event: `event: missed\ndata: {"from":a,"to":b}\n\n`.
 */
char *sse_frame_missed(apr_pool_t *p, apr_uint64_t from, apr_uint64_t to,
                       apr_size_t *out_len);

/**
 * A message body as the JSON text a payload event carries: with
 * @a is_json (sent as application/json) the body parsed and dumped
 * compact, else the body as a JSON string. One line, always.
 * @param max    largest payload, in bytes of JSON
 * @param out    out: the JSON text, allocated from @a p; @a out_len its
 *               length
 * @param reason out, on failure: a one-line reason for the client
 * @return APR_SUCCESS; APR_EINVAL not JSON, or not UTF-8 text;
 *         APR_ENOSPC longer than @a max as JSON; APR_ENOMEM
 */
apr_status_t sse_frame_payload(apr_pool_t *p, const char *body,
                               apr_size_t len, int is_json, apr_size_t max,
                               const char **out, apr_size_t *out_len,
                               const char **reason);

/**
 * A notify with a payload, a named event the original client ignores:
 * `id: <seq>\nevent: notify\ndata: {"key":<key>,"data":<payload>}\n\n`.
 * @return the bytes, allocated from @a p; NULL if a value is not UTF-8
 */
char *sse_frame_notify_payload(apr_pool_t *p, apr_uint64_t seq,
                               const char *key, const char *payload,
                               apr_size_t plen, apr_size_t *out_len);

/**
 * A completion with a payload: `id: <seq>\nevent: completed\ndata:
 * {"timestamp":<ms>,"id":<id>,"taskid":<taskid>,"data":<payload>}\n\n`.
 * @return as sse_frame_notify_payload()
 */
char *sse_frame_completed_payload(apr_pool_t *p, apr_uint64_t seq,
                                  apr_int64_t ms, const char *id,
                                  const char *taskid, const char *payload,
                                  apr_size_t plen, apr_size_t *out_len);

/** The stream's opening `retry: <ms>\n\n`. */
char *sse_frame_retry(apr_pool_t *p, unsigned int ms, apr_size_t *out_len);

#endif /* SSE_FRAME_H */
