/**
 * @file sse_id.h
 * @brief Unforgeable listener ids: `<name>_<suffix>`.
 *
 * The suffix is base62 of 20 bytes: 8 random bytes followed by the first 12
 * bytes of HMAC-SHA1(secret, "sse-id" NUL name NUL random). A server that
 * knows the secret can tell an id it issued from any other string without
 * looking anything up.
 *
 * Two questions, two answers: is a string an id at all (a name,
 * `_`, and a suffix without `_`: else malformed, 400), and did this server
 * issue it (else unknown, 404). A suffix of another length or alphabet
 * than make-id's is an id never issued, not a malformed one.
 */
#ifndef SSE_ID_H
#define SSE_ID_H

#include <apr.h>
#include <apr_errno.h>

#define SSE_TOKEN_MAX      64   /**< names, keys, task ids: 1..64 bytes */
#define SSE_ID_SUFFIX_LEN  27   /**< base62 digits of a 160-bit number */
/** The longest id issued (a 64-byte name), and the bound on every id: a
 *  longer string is malformed, so none reaches the MAC or a buffer. */
#define SSE_ID_MAX         (SSE_TOKEN_MAX + 1 + SSE_ID_SUFFIX_LEN)
#define SSE_SECRET_LEN     32   /**< bytes of key material kept */

/**
 * Is @a s a valid name, key or task id: 1..64 bytes of [A-Za-z0-9._~-]
 * starting with a letter or a digit?
 * @param s   the bytes (need not be NUL-terminated)
 * @param len their count
 * @return 1 if valid, 0 if not
 */
int sse_token_valid(const char *s, apr_size_t len);

/**
 * Derive the registry's secret from configured text (hashing it to
 * SSE_SECRET_LEN bytes) or, when @a text is NULL, from random bytes.
 * @param text   the configured secret or NULL
 * @param secret out: SSE_SECRET_LEN bytes
 * @return APR_SUCCESS, or the error of apr_generate_random_bytes()
 */
apr_status_t sse_id_secret(const char *text,
                           unsigned char secret[SSE_SECRET_LEN]);

/**
 * Issue a new id for @a name.
 * @param secret SSE_SECRET_LEN bytes
 * @param name   a valid token (checked)
 * @param out    buffer of SSE_ID_MAX + 1 bytes, NUL-terminated on success
 * @return APR_SUCCESS; APR_EINVAL for an invalid name; or the random
 *         generator's error
 */
apr_status_t sse_id_make(const unsigned char *secret, const char *name,
                         char out[SSE_ID_MAX + 1]);

/**
 * Check that @a id is an id: a valid name (everything before the last
 * `_`), `_`, and a suffix of one or more of [A-Za-z0-9.~-], SSE_ID_MAX
 * bytes in all at most. Whether it was issued is sse_id_verify()'s.
 * @param id       NUL-terminated
 * @param name_len out (may be NULL): length of the name part
 * @return APR_SUCCESS or APR_EINVAL
 */
apr_status_t sse_id_parse(const char *id, apr_size_t *name_len);

/**
 * Check that @a id was issued under @a secret (constant-time MAC compare).
 * @return APR_SUCCESS; APR_EINVAL if it is not an id (sse_id_parse());
 *         APR_EACCES if it is one this secret did not issue: a suffix that
 *         is not SSE_ID_SUFFIX_LEN base62 digits of at most 160 bits, or
 *         whose MAC does not match
 */
apr_status_t sse_id_verify(const unsigned char *secret, const char *id);

#endif /* SSE_ID_H */
