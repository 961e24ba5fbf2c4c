/* Unforgeable ids: random part + truncated HMAC-SHA1, base62-encoded. */
#include <string.h>

#include <apr_random.h>
#include <apr_sha1.h>
#include <apr_general.h>

#include "sse_id.h"

#define SSE_ID_RAND_LEN 8
#define SSE_ID_MAC_LEN  12
#define SSE_ID_RAW_LEN  (SSE_ID_RAND_LEN + SSE_ID_MAC_LEN)
#define SSE_HMAC_BLOCK  64

static const char b62[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static int token_char(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '~'
           || c == '-';
}

static int alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9');
}

int sse_token_valid(const char *s, apr_size_t len)
{
    apr_size_t i;

    if (len == 0 || len > SSE_TOKEN_MAX || !alnum((unsigned char)s[0])) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!token_char((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

/* HMAC (RFC 2104) over APR's SHA-1: the construction, not a primitive. */
static void hmac_sha1(const unsigned char *key, apr_size_t key_len,
                      const unsigned char *msg, apr_size_t msg_len,
                      unsigned char out[APR_SHA1_DIGESTSIZE])
{
    unsigned char k[SSE_HMAC_BLOCK], pad[SSE_HMAC_BLOCK];
    unsigned char inner[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    int i;

    memset(k, 0, sizeof(k));
    if (key_len > SSE_HMAC_BLOCK) {
        apr_sha1_init(&ctx);
        apr_sha1_update_binary(&ctx, key, (unsigned int)key_len);
        apr_sha1_final(k, &ctx);
    }
    else {
        memcpy(k, key, key_len);
    }
    for (i = 0; i < SSE_HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x36;
    }
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, pad, SSE_HMAC_BLOCK);
    apr_sha1_update_binary(&ctx, msg, (unsigned int)msg_len);
    apr_sha1_final(inner, &ctx);
    for (i = 0; i < SSE_HMAC_BLOCK; i++) {
        pad[i] = k[i] ^ 0x5c;
    }
    apr_sha1_init(&ctx);
    apr_sha1_update_binary(&ctx, pad, SSE_HMAC_BLOCK);
    apr_sha1_update_binary(&ctx, inner, APR_SHA1_DIGESTSIZE);
    apr_sha1_final(out, &ctx);
    memset(k, 0, sizeof(k));
    memset(pad, 0, sizeof(pad));
}

static void id_mac(const unsigned char *secret, const char *name,
                   apr_size_t name_len, const unsigned char *rnd,
                   unsigned char mac[APR_SHA1_DIGESTSIZE])
{
    unsigned char msg[8 + SSE_TOKEN_MAX + SSE_ID_RAND_LEN];
    apr_size_t n = 0;

    memcpy(msg, "sse-id", 7);          /* with its NUL: domain separation */
    n = 7;
    memcpy(msg + n, name, name_len);
    n += name_len;
    msg[n++] = 0;
    memcpy(msg + n, rnd, SSE_ID_RAND_LEN);
    n += SSE_ID_RAND_LEN;
    hmac_sha1(secret, SSE_SECRET_LEN, msg, n, mac);
}

/* Big-endian bytes -> fixed-width base62, most significant digit first. */
static void base62_encode(const unsigned char *raw, char *out)
{
    unsigned char num[SSE_ID_RAW_LEN];
    int d, i;

    memcpy(num, raw, sizeof(num));
    for (d = SSE_ID_SUFFIX_LEN - 1; d >= 0; d--) {
        unsigned int rem = 0;
        for (i = 0; i < SSE_ID_RAW_LEN; i++) {
            unsigned int cur = (rem << 8) | num[i];
            num[i] = (unsigned char)(cur / 62);
            rem = cur % 62;
        }
        out[d] = b62[rem];
    }
}

static int b62_value(char c)
{
    const char *p = (c != '\0') ? strchr(b62, c) : NULL;
    return p ? (int)(p - b62) : -1;
}

/* Fixed-width base62 -> bytes; APR_EINVAL on a bad digit or overflow. */
static apr_status_t base62_decode(const char *in, unsigned char *raw)
{
    int d, i;

    memset(raw, 0, SSE_ID_RAW_LEN);
    for (d = 0; d < SSE_ID_SUFFIX_LEN; d++) {
        unsigned int carry = (unsigned int)b62_value(in[d]);
        if (carry > 61) {
            return APR_EINVAL;
        }
        for (i = SSE_ID_RAW_LEN - 1; i >= 0; i--) {
            unsigned int cur = raw[i] * 62u + carry;
            raw[i] = (unsigned char)(cur & 0xff);
            carry = cur >> 8;
        }
        if (carry) {
            return APR_EINVAL;
        }
    }
    return APR_SUCCESS;
}

apr_status_t sse_id_secret(const char *text,
                           unsigned char secret[SSE_SECRET_LEN])
{
    unsigned char d[APR_SHA1_DIGESTSIZE];
    apr_sha1_ctx_t ctx;
    int half;

    if (text == NULL) {
        return apr_generate_random_bytes(secret, SSE_SECRET_LEN);
    }
    /* Stretch the text to the key size: two domain-separated digests. */
    for (half = 0; half < 2; half++) {
        apr_sha1_init(&ctx);
        apr_sha1_update_binary(&ctx, (const unsigned char *)(half ? "B" : "A"),
                               1);
        apr_sha1_update(&ctx, text, (unsigned int)strlen(text));
        apr_sha1_final(d, &ctx);
        memcpy(secret + half * (SSE_SECRET_LEN / 2), d, SSE_SECRET_LEN / 2);
    }
    return APR_SUCCESS;
}

apr_status_t sse_id_make(const unsigned char *secret, const char *name,
                         char out[SSE_ID_MAX + 1])
{
    unsigned char raw[SSE_ID_RAW_LEN], mac[APR_SHA1_DIGESTSIZE];
    apr_size_t len = strlen(name);
    apr_status_t rv;

    if (!sse_token_valid(name, len)) {
        return APR_EINVAL;
    }
    rv = apr_generate_random_bytes(raw, SSE_ID_RAND_LEN);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    id_mac(secret, name, len, raw, mac);
    memcpy(raw + SSE_ID_RAND_LEN, mac, SSE_ID_MAC_LEN);
    memcpy(out, name, len);
    out[len] = '_';
    base62_encode(raw, out + len + 1);
    out[len + 1 + SSE_ID_SUFFIX_LEN] = '\0';
    return APR_SUCCESS;
}

apr_status_t sse_id_parse(const char *id, apr_size_t *name_len)
{
    apr_size_t len = strnlen(id, SSE_ID_MAX + 1), nl, i;
    const char *us;

    /* bounded first: strrchr() and the checks below never walk further */
    if (len > SSE_ID_MAX || (us = strrchr(id, '_')) == NULL) {
        return APR_EINVAL;
    }
    nl = (apr_size_t)(us - id);
    if (!sse_token_valid(id, nl) || nl + 1 == len) {
        return APR_EINVAL;
    }
    for (i = nl + 1; i < len; i++) {   /* token bytes; no '_' past the last */
        if (!token_char((unsigned char)id[i])) {
            return APR_EINVAL;
        }
    }
    if (name_len) {
        *name_len = nl;
    }
    return APR_SUCCESS;
}

apr_status_t sse_id_verify(const unsigned char *secret, const char *id)
{
    unsigned char raw[SSE_ID_RAW_LEN], mac[APR_SHA1_DIGESTSIZE];
    unsigned char diff = 0;
    apr_size_t nl;
    int i;

    if (sse_id_parse(id, &nl) != APR_SUCCESS) {
        return APR_EINVAL;
    }
    /* an id, but of a suffix make-id never gives: not issued. The length
     * first, so that the decoder reads only the suffix's own bytes. */
    if (strlen(id + nl + 1) != SSE_ID_SUFFIX_LEN
        || base62_decode(id + nl + 1, raw) != APR_SUCCESS) {
        return APR_EACCES;
    }
    id_mac(secret, id, nl, raw, mac);
    for (i = 0; i < SSE_ID_MAC_LEN; i++) {      /* constant time */
        diff |= (unsigned char)(mac[i] ^ raw[SSE_ID_RAND_LEN + i]);
    }
    return diff ? APR_EACCES : APR_SUCCESS;
}
