/**
 * @file ref.h
 * @brief Reference checks of names, keys, task ids and the shape of an id,
 *        written from SPEC §2 (plus '_', which names may hold) without
 *        looking at src/sse_id.c, for the harnesses to compare against.
 */
#ifndef SSE_FUZZ_REF_H
#define SSE_FUZZ_REF_H

#include <stddef.h>

static int ref_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z')
           || (c >= 'a' && c <= 'z');
}

/* 1..64 of [A-Za-z0-9._~-] and '_', the first a letter or digit. */
static int ref_token(const char *s, size_t len)
{
    size_t i;

    if (len < 1 || len > 64 || !ref_alnum((unsigned char)s[0])) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (!ref_alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_'
            && s[i] != '~' && s[i] != '-') {
            return 0;
        }
    }
    return 1;
}

/* <token>_<1+ of [A-Za-z0-9.~-]>, 92 bytes at most: the name ends at the
 * last '_'. */
static int ref_id(const char *s, size_t len)
{
    size_t i, u = len;

    if (len > 92) {
        return 0;
    }
    for (i = 0; i < len; i++) {
        if (s[i] == '_') {
            u = i;
        }
    }
    if (u == len || u + 1 == len) {
        return 0;
    }
    for (i = u + 1; i < len; i++) {
        if (!ref_alnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '~'
            && s[i] != '-') {
            return 0;
        }
    }
    return ref_token(s, u);
}

#endif /* SSE_FUZZ_REF_H */
