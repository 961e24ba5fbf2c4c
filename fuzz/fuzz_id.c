/*
 * Fuzz the ids of src/sse_id.c: their shape, their MAC, and the round trip.
 *
 * Input: byte 0 picks a position, byte 1 a byte value; the rest, up to a
 * NUL, is a string s (an id to check, or a name to issue an id for).
 *
 * Properties, for every input:
 * - s never verifies under the harness's secret: an id the fuzzer makes
 *   up is a forgery (the MAC has 96 bits: a success is a bug, not luck);
 * - sse_id_parse() accepts exactly the strings of the reference shape
 *   (ref.h) and reports the name's length; verify says EINVAL for every
 *   string parse refuses, and EACCES only for strings it accepts;
 * - sse_id_make() accepts exactly the reference's names;
 * and when s is a valid name:
 * - the id made for it has the shape <s>_<27 base62> and verifies under
 *   its secret, but not under another;
 * - changing any one byte of it (position and value from the input),
 *   dropping its last byte or adding one never gives an id that verifies.
 */
#include <string.h>

#include <apr_strings.h>

#include "fuzz.h"
#include "ref.h"
#include "src/sse_id.h"

static unsigned char secret_a[SSE_SECRET_LEN];
static unsigned char secret_b[SSE_SECRET_LEN];

static void fuzz_init(apr_pool_t *global)
{
    (void)global;
    if (sse_id_secret("fuzz secret A", secret_a) != APR_SUCCESS
        || sse_id_secret(NULL, secret_b) != APR_SUCCESS
        || memcmp(secret_a, secret_b, SSE_SECRET_LEN) == 0) {
        fprintf(stderr, "fuzz_id: cannot derive two secrets\n");
        exit(2);
    }
}

static void check_any_string(const char *s)
{
    size_t len = strlen(s), name_len = 0;
    apr_status_t prv = sse_id_parse(s, &name_len);
    apr_status_t vrv = sse_id_verify(secret_a, s);

    FUZZ_CHECK(vrv != APR_SUCCESS, "a made-up id verifies: %s", s);
    FUZZ_CHECK(vrv == APR_EINVAL || vrv == APR_EACCES, "verify status %d",
               vrv);
    FUZZ_CHECK((prv == APR_SUCCESS) == ref_id(s, len),
               "parse says %d, the reference %d", prv, ref_id(s, len));
    FUZZ_CHECK(prv != APR_SUCCESS || (s[name_len] == '_'
                                      && !strchr(s + name_len + 1, '_')),
               "name length %zu of a %zu-byte id", name_len, len);
    FUZZ_CHECK(prv == APR_SUCCESS || vrv == APR_EINVAL,
               "verify of a string that is not an id: %d", vrv);
}

/* @a id with byte @a pos replaced by @a c (a NUL there cuts it short). */
static char *change_byte(apr_pool_t *p, const char *id, size_t pos,
                         unsigned char c)
{
    char *m = apr_pstrdup(p, id);

    if ((unsigned char)m[pos] == c) {
        c ^= 0x01;
    }
    m[pos] = (char)c;
    return m;
}

static void check_round_trip(apr_pool_t *p, const char *name,
                             unsigned char pos, unsigned char c)
{
    char id[SSE_ID_MAX + 1];
    size_t nl = strlen(name), len, name_len = 0;
    char *m;

    FUZZ_CHECK(sse_id_make(secret_a, name, id) == APR_SUCCESS,
               "cannot make an id for the valid name %s", name);
    len = strlen(id);
    FUZZ_CHECK(len == nl + 1 + SSE_ID_SUFFIX_LEN && len <= SSE_ID_MAX
                   && memcmp(id, name, nl) == 0 && id[nl] == '_'
                   && ref_id(id, len),
               "made id %s has not the shape of an id for %s", id, name);
    FUZZ_CHECK(sse_id_parse(id, &name_len) == APR_SUCCESS && name_len == nl,
               "made id %s parses with a name of %zu bytes", id, name_len);
    FUZZ_CHECK(sse_id_verify(secret_a, id) == APR_SUCCESS,
               "made id %s does not verify", id);
    FUZZ_CHECK(sse_id_verify(secret_b, id) == APR_EACCES,
               "made id %s verifies under another secret", id);
    m = change_byte(p, id, pos % len, c);
    FUZZ_CHECK(sse_id_verify(secret_a, m) != APR_SUCCESS,
               "%s, one byte off %s, verifies", m, id);
    m = apr_pstrmemdup(p, id, len - 1);
    FUZZ_CHECK(sse_id_verify(secret_a, m) != APR_SUCCESS,
               "%s, %s cut short, verifies", m, id);
    m = apr_psprintf(p, "%s%c", id, c ? c : 'A');
    FUZZ_CHECK(sse_id_verify(secret_a, m) != APR_SUCCESS,
               "%s, %s with a byte more, verifies", m, id);
}

static void fuzz_one(apr_pool_t *p, const uint8_t *data, size_t size)
{
    char id[SSE_ID_MAX + 1];
    const char *s;
    apr_status_t rv;
    int valid;

    if (size < 2) {
        return;
    }
    s = apr_pstrmemdup(p, (const char *)data + 2, size - 2);
    check_any_string(s);
    valid = ref_token(s, strlen(s));
    rv = sse_id_make(secret_a, s, id);
    FUZZ_CHECK(valid ? rv == APR_SUCCESS : rv == APR_EINVAL,
               "make-id status %d for a name the reference %s", rv,
               valid ? "accepts" : "refuses");
    if (valid) {
        check_round_trip(p, s, data[0], data[1]);
    }
}
