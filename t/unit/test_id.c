/* sse_id: tokens, and ids that only the secret's holder can issue. */
#include <string.h>

#include <apr_strings.h>

#include "src/sse_id.h"
#include "unit.h"

static const char alnums[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* A suffix of the length make-id issues, for ids that are only parsed. */
#define SUFFIX27 "0123456789ABCDEFGHIJKLMNOPQ"
/* 24 base62 digits: an id by SPEC's form, of a length never issued. */
#define SUFFIX24 "0123456789ABCDEFGHIJKLMN"

static int token(const char *s)
{
    return sse_token_valid(s, strlen(s));
}

static const unsigned char *test_secret(const char *text)
{
    unsigned char *secret = apr_palloc(unit_pool(), SSE_SECRET_LEN);

    if (sse_id_secret(text, secret) != APR_SUCCESS) {
        memset(secret, 0x42, SSE_SECRET_LEN);
    }
    return secret;
}

static char *repeat(char c, int n)
{
    char *s = apr_palloc(unit_pool(), (apr_size_t)n + 1);

    memset(s, c, (apr_size_t)n);
    s[n] = '\0';
    return s;
}

/* sse_id_verify() of the id that is @a name followed by @a suffix. */
static apr_status_t verify_as(const unsigned char *secret, const char *name,
                              const char *suffix)
{
    return sse_id_verify(secret, apr_pstrcat(unit_pool(), name, suffix,
                                             NULL));
}

/* Fixed-width base62 of a big-endian number of @a nbytes (my own long
 * division, to build suffixes at the edge of the 160-bit range). */
static void b62_of(const unsigned char *num, int nbytes, char *out)
{
    unsigned char n[32];
    int d, i;

    memcpy(n, num, (apr_size_t)nbytes);
    for (d = SSE_ID_SUFFIX_LEN - 1; d >= 0; d--) {
        unsigned int rem = 0;
        for (i = 0; i < nbytes; i++) {
            unsigned int cur = (rem << 8) | n[i];
            n[i] = (unsigned char)(cur / 62);
            rem = cur % 62;
        }
        out[d] = alnums[rem];
    }
    out[SSE_ID_SUFFIX_LEN] = '\0';
}

/* ---- tokens ----------------------------------------------------------- */

UNIT_TEST(test_token_accepts_letters_digits_dot_underscore_tilde_and_dash)
{
    static const char *const ok[] = {
        "a", "Z", "9", "A.b~c-d", "z.", "x-", "a~", "news", "clock-tick",
        "0.1.2", "Abc.d", "a..b", "a_b", "A._b~c-d", "timeout_task",
        "9_", "x_y_z",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        CHECK(token(ok[i]), "\"%s\" is a valid token", ok[i]);
    }
}

UNIT_TEST(test_token_of_64_bytes_is_valid_and_of_65_is_not)
{
    CHECK(token(repeat('x', 64)), "64 bytes is the maximum and is valid");
    CHECK(!token(repeat('x', 65)), "65 bytes is one too many");
    CHECK(!sse_token_valid(repeat('x', 200), 200), "200 bytes is invalid");
}

UNIT_TEST(test_token_must_start_with_a_letter_or_digit)
{
    static const char *const bad[] = {".x", "-x", "~x", "_x", ".", "..", "-",
                                      "~", "_", "./a", ".hidden", "_hidden"};
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!token(bad[i]), "\"%s\" starts with a punctuation byte", bad[i]);
    }
}

UNIT_TEST(test_token_accepts_an_inner_or_trailing_underscore)
{
    /* `_` is a token byte (SPEC §2: [A-Za-z0-9._~-]); an id's name is
     * everything before its last `_`, so a name may hold `_` too. */
    CHECK(token("a_b"), "inner _");
    CHECK(token("ab_"), "trailing _");
    CHECK(token("a__b"), "two _ in a row");
    CHECK(token("a_"), "a letter and _");
    CHECK(token("0_"), "a digit and _");
    CHECK(token("a_b_c_d"), "several _");
    CHECK(token("alice_0123456789ABCDEFGHIJKLMNOPQ"),
          "a whole id is a valid token (it can be a name)");
    CHECK(token(apr_pstrcat(unit_pool(), "u", repeat('_', 63), NULL)),
          "64 bytes: a letter and 63 _");
}

UNIT_TEST(test_token_rejects_a_leading_underscore)
{
    /* the first byte must be a letter or a digit */
    CHECK(!token("_a"), "leading _");
    CHECK(!token("_"), "only _");
    CHECK(!token("__"), "only _ twice");
    CHECK(!token("_a_b"), "leading _, inner _");
    CHECK(!token(apr_pstrcat(unit_pool(), "u", repeat('_', 64), NULL)),
          "65 bytes: a letter and 64 _");
}

UNIT_TEST(test_token_rejects_the_empty_string)
{
    CHECK(!token(""), "the empty string is no token");
    CHECK(!sse_token_valid("abc", 0), "length 0 is no token, whatever follows");
}

UNIT_TEST(test_token_rejects_non_ascii_and_other_bytes)
{
    static const char *const bad[] = {
        "\xc3\xa9t\xc3\xa9", "a\x80", "a\xff", "\xff", "a b", "a/b", "a%20b",
        "a+b", "a\tb", "a\nb", "a\"b", "a'b", "a:b", "a?b", "a#b", "a\x7f",
        "a\x01", "a@b", "a*b", "a\\b",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(!token(bad[i]), "\"%s\" holds a byte outside [A-Za-z0-9._~-]",
              unit_escape(unit_pool(), bad[i], strlen(bad[i])));
    }
}

UNIT_TEST(test_token_judges_exactly_the_given_length)
{
    CHECK(!sse_token_valid("ab\0cd", 5), "a NUL inside the length is invalid");
    CHECK(!sse_token_valid("a\0", 2), "a trailing NUL inside the length");
    CHECK(sse_token_valid("ab\0cd", 2), "the bytes before the NUL are valid");
    CHECK(sse_token_valid("ab!", 2), "bytes after the length are not read");
    CHECK(sse_token_valid("abc", 3), "the whole string");
}

UNIT_TEST(test_token_every_byte_value_first_and_later)
{
    char s[3];
    int c;

    for (c = 0; c < 256; c++) {
        int is_alnum = strchr(alnums, c) != NULL && c != 0;
        int later_ok = is_alnum || c == '.' || c == '_' || c == '~'
                       || c == '-';
        s[0] = (char)c;
        CHECK_INT(is_alnum, sse_token_valid(s, 1), "byte 0x%02x alone", c);
        s[0] = 'a';
        s[1] = (char)c;
        CHECK_INT(later_ok, sse_token_valid(s, 2), "byte 0x%02x after 'a'", c);
    }
}

/* ---- make and verify -------------------------------------------------- */

UNIT_TEST(test_id_make_gives_the_name_an_underscore_and_27_base62_digits)
{
    const unsigned char *secret = test_secret("make");
    char id[SSE_ID_MAX + 1];
    apr_size_t i, nl = 0;

    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "alice", id), "make-id");
    CHECK_INT(5 + 1 + SSE_ID_SUFFIX_LEN, strlen(id), "id \"%s\"", id);
    CHECK(strncmp(id, "alice_", 6) == 0, "id \"%s\" starts with alice_", id);
    for (i = 6; i < strlen(id); i++) {
        CHECK(strchr(alnums, id[i]) && id[i], "suffix byte %d of \"%s\"",
              (int)i, id);
    }
    CHECK_RV(APR_SUCCESS, sse_id_parse(id, &nl), "its own shape");
    CHECK_INT(5, nl, "the name is everything before the last _");
    CHECK_RV(APR_SUCCESS, sse_id_verify(secret, id), "verify %s", id);
}

UNIT_TEST(test_id_make_of_the_longest_name_fits_the_buffer)
{
    const unsigned char *secret = test_secret("long");
    char id[SSE_ID_MAX + 1 + 8];
    const char *name = repeat('n', SSE_TOKEN_MAX);

    memset(id, 'G', sizeof(id));
    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, name, id), "64-byte name");
    CHECK_INT(SSE_ID_MAX, strlen(id), "a 64-byte name makes a 92-byte id");
    CHECK(id[SSE_ID_MAX + 1] == 'G', "nothing written after the terminator");
    CHECK_RV(APR_SUCCESS, sse_id_verify(secret, id), "verify %s", id);
}

UNIT_TEST(test_id_make_rejects_an_invalid_name)
{
    const unsigned char *secret = test_secret("x");
    static const char *const bad[] = {
        "", "_a", "_", ".a", "-a", "~a", "a b", "a/b", "a%b", "a:b", "a@b",
        "a+b", "a\x01", "a\x7f", "\xc3\xa9", "a\xc3\xa9",
    };
    char id[SSE_ID_MAX + 1];
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_RV(APR_EINVAL, sse_id_make(secret, bad[i], id), "name \"%s\"",
                 unit_escape(unit_pool(), bad[i], strlen(bad[i])));
    }
    CHECK_RV(APR_EINVAL, sse_id_make(secret, repeat('x', 65), id),
             "65-byte name");
}

UNIT_TEST(test_id_make_of_a_name_with_underscores_keeps_the_whole_name)
{
    const unsigned char *secret = test_secret("underscore");
    static const struct {
        const char *name;
        apr_size_t len;
    } cases[] = {
        {"a_b", 3}, {"alice_", 6}, {"a_b_c", 5}, {"x__y", 4}, {"0_", 2},
    };
    char id[SSE_ID_MAX + 1];
    apr_size_t i, j, nl;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *name = cases[i].name;
        REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, name, id), "name %s",
                   name);
        CHECK_INT(cases[i].len + 1 + SSE_ID_SUFFIX_LEN, strlen(id),
                  "id \"%s\"", id);
        CHECK(strncmp(id, name, cases[i].len) == 0
                  && id[cases[i].len] == '_',
              "id \"%s\" is %s, _, suffix", id, name);
        for (j = cases[i].len + 1; j < strlen(id); j++) {
            CHECK(strchr(alnums, id[j]) && id[j],
                  "suffix byte %d of \"%s\" is base62", (int)j, id);
        }
        nl = 999;
        CHECK_RV(APR_SUCCESS, sse_id_parse(id, &nl), "parse %s", id);
        CHECK_INT(cases[i].len, nl,
                  "the name of %s is everything before the last _", id);
        CHECK_RV(APR_SUCCESS, sse_id_verify(secret, id), "verify %s", id);
    }
}

UNIT_TEST(test_id_verify_binds_the_name_with_its_underscores)
{
    static const struct {
        const char *name;
        apr_status_t rv;
        const char *why;
    } other[] = {
        {"a", APR_EACCES, "name a with a_b's suffix"},
        {"b", APR_EACCES, "name b with a_b's suffix"},
        {"a_b_c", APR_EACCES, "name a_b_c with a_b's suffix"},
        {"a_b_", APR_EACCES, "name a_b_ with a_b's suffix"},
        {"ab", APR_EACCES, "name ab (the _ dropped) with a_b's suffix"},
        {"_b", APR_EINVAL, "name _b: a leading _ is malformed"},
    };
    const unsigned char *secret = test_secret("bind");
    char id[SSE_ID_MAX + 1];
    const char *suffix;
    apr_size_t i;

    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "a_b", id), "make a_b");
    suffix = id + 3;                    /* "_<27>" */
    CHECK_RV(APR_SUCCESS, sse_id_verify(secret, id), "%s as issued", id);
    for (i = 0; i < sizeof(other) / sizeof(other[0]); i++) {
        CHECK_RV(other[i].rv, verify_as(secret, other[i].name, suffix), "%s",
                 other[i].why);
    }
}

UNIT_TEST(test_id_make_gives_a_different_id_every_time)
{
    const unsigned char *secret = test_secret("unique");
    apr_pool_t *p = unit_pool();
    char **ids = apr_palloc(p, 200 * sizeof(*ids));
    int i, j;

    for (i = 0; i < 200; i++) {
        ids[i] = apr_palloc(p, SSE_ID_MAX + 1);
        REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "bob", ids[i]), "make");
        for (j = 0; j < i; j++) {
            CHECK(strcmp(ids[i], ids[j]) != 0, "ids %d and %d are both %s", j,
                  i, ids[i]);
        }
    }
}

UNIT_TEST(test_id_verify_accepts_ids_made_for_names_of_every_length)
{
    const unsigned char *secret = test_secret("lengths");
    char name[SSE_TOKEN_MAX + 1], id[SSE_ID_MAX + 1];
    apr_size_t nl;
    int len, i;

    for (len = 1; len <= SSE_TOKEN_MAX; len++) {
        for (i = 0; i < len; i++) {
            /* first byte alnum, then a mix of every token byte */
            name[i] = i == 0 ? alnums[(len * 7) % 62]
                             : "aZ9._~-"[(i + len) % 7];
        }
        name[len] = '\0';
        REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, name, id), "name %s",
                   name);
        CHECK_RV(APR_SUCCESS, sse_id_verify(secret, id), "verify %s", id);
        CHECK_RV(APR_SUCCESS, sse_id_parse(id, &nl), "parse %s", id);
        CHECK_INT(len, nl, "name length of %s", id);
    }
}

/* Change byte @a pos of @a id to each byte of @a alphabet but its own:
 * every such forgery must be rejected (as forged or as malformed). @a what
 * names the byte in messages. */
static void check_changes_rejected(const unsigned char *secret,
                                   const char *id, apr_size_t pos,
                                   const char *alphabet, const char *what)
{
    char forged[SSE_ID_MAX + 1];
    apr_status_t rv;
    const char *c;

    for (c = alphabet; *c; c++) {
        if (*c == id[pos]) {
            continue;
        }
        strcpy(forged, id);
        forged[pos] = *c;
        rv = sse_id_verify(secret, forged);
        CHECK(rv == APR_EACCES || rv == APR_EINVAL,
              "%s (%s %d changed) must be rejected, got %d", forged, what,
              (int)pos, rv);
    }
}

UNIT_TEST(test_id_verify_rejects_every_single_character_change_in_the_suffix)
{
    const unsigned char *secret = test_secret("forge");
    char id[SSE_ID_MAX + 1], forged[SSE_ID_MAX + 1];
    static const char others[] = "-._~/ ";
    apr_size_t pos, start;
    const char *c;

    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "alice", id), "make");
    start = strlen("alice_");
    for (pos = start; pos < strlen(id); pos++) {
        check_changes_rejected(secret, id, pos, alnums, "byte");
        for (c = others; *c; c++) {
            /* '-', '.', '~' and a '_' with a suffix after it leave an id,
             * one never issued; a last '_', '/' or ' ' leave none */
            int still_id = strchr("-.~", *c) != NULL
                           || (*c == '_' && id[pos + 1] != '\0');
            strcpy(forged, id);
            forged[pos] = *c;
            CHECK_RV(still_id ? APR_EACCES : APR_EINVAL,
                     sse_id_verify(secret, forged),
                     "%s: a '%c' in the suffix is %s", forged, *c,
                     still_id ? "an id never issued" : "not an id at all");
        }
    }
}

UNIT_TEST(test_id_verify_rejects_every_single_character_change_in_the_name)
{
    const unsigned char *secret = test_secret("forge");
    static const char repl[] =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz.~-_";
    char id[SSE_ID_MAX + 1];
    apr_size_t pos;

    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "alice.b-c", id), "make");
    for (pos = 0; pos < strlen("alice.b-c"); pos++) {
        check_changes_rejected(secret, id, pos, repl, "name byte");
    }
}

UNIT_TEST(test_id_verify_rejects_a_name_made_longer_or_shorter)
{
    const unsigned char *secret = test_secret("forge");
    char id[SSE_ID_MAX + 1];
    const char *suffix;

    REQUIRE_RV(APR_SUCCESS, sse_id_make(secret, "alice", id), "make");
    suffix = id + strlen("alice");
    CHECK_RV(APR_EACCES, verify_as(secret, "alic", suffix),
             "a shorter name");
    CHECK_RV(APR_EACCES, verify_as(secret, "alicea", suffix),
             "a longer name");
    CHECK_RV(APR_EACCES, verify_as(secret, "bob", suffix),
             "another name, same suffix");
}

UNIT_TEST(test_id_verify_rejects_ids_issued_under_another_secret)
{
    const unsigned char *a = test_secret("server-a");
    const unsigned char *b = test_secret("server-b");
    char id[SSE_ID_MAX + 1];
    int i;

    for (i = 0; i < 50; i++) {
        REQUIRE_RV(APR_SUCCESS, sse_id_make(a, "carol", id), "make");
        CHECK_RV(APR_EACCES, sse_id_verify(b, id), "%s under another secret",
                 id);
        CHECK_RV(APR_SUCCESS, sse_id_verify(a, id), "%s under its own", id);
    }
}

UNIT_TEST(test_id_verify_says_not_issued_for_a_suffix_beyond_160_bits)
{
    const unsigned char *secret = test_secret("edge");
    unsigned char num[21];
    char suffix[SSE_ID_SUFFIX_LEN + 1];
    apr_pool_t *p = unit_pool();

    CHECK_RV(APR_EACCES, verify_as(secret, "alice_", repeat('z', 27)),
             "27 z's is 62^27-1, far above 2^160-1: never issued");
    CHECK_RV(APR_SUCCESS,
             sse_id_parse(apr_pstrcat(p, "alice_", repeat('z', 27), NULL),
                          NULL),
             "but it has the shape of an id");

    memset(num, 0, sizeof(num));
    num[0] = 1;                 /* 2^160: the first value that overflows */
    b62_of(num, 21, suffix);
    CHECK_RV(APR_EACCES, verify_as(secret, "alice_", suffix),
             "suffix %s is 2^160: never issued", suffix);

    memset(num, 0xff, 20);      /* 2^160-1: the largest that decodes */
    b62_of(num, 20, suffix);
    CHECK_RV(APR_EACCES, verify_as(secret, "alice_", suffix),
             "suffix %s is 2^160-1: decodes, MAC does not match", suffix);

    CHECK_RV(APR_EACCES,
             sse_id_verify(secret, apr_pstrcat(p, "alice_", repeat('0', 27),
                                               NULL)),
             "the all-zero suffix decodes, MAC does not match");
}

UNIT_TEST(test_id_verify_says_einval_only_for_what_is_not_an_id)
{
    const unsigned char *secret = test_secret("shape");
    apr_pool_t *p = unit_pool();
    const char *const bad[] = {
        "", "alice", "alice_", "_" SUFFIX27, "_abc", "_", "alice" SUFFIX27,
        ".a_" SUFFIX27, "a b_" SUFFIX27, "a:b_" SUFFIX27, "a/b_" SUFFIX27,
        "_a_" SUFFIX27, "__" SUFFIX27, "a%b_" SUFFIX27, "a@b_" SUFFIX27,
        "alice_" SUFFIX27 "_", "alice_0123456789ABCDEFGHIJKLMNOP_",
        "alice_0123456789ABCDEFGHIJKLMNOP:", "alice_0123 56789",
        apr_pstrcat(p, repeat('x', 65), "_" SUFFIX27, NULL),
        apr_pstrcat(p, repeat('x', 65), "_x", NULL),
        apr_pstrcat(p, "alice_", repeat('A', SSE_ID_MAX - 5), NULL),
        apr_pstrcat(p, repeat('x', 64), "_" SUFFIX27 "A", NULL),
        apr_pstrcat(p, "alice_", repeat('A', 5000), NULL),
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK_RV(APR_EINVAL, sse_id_verify(secret, bad[i]), "\"%.100s\"",
                 bad[i]);
    }
}

UNIT_TEST(test_id_verify_says_not_issued_for_an_id_of_any_other_suffix)
{
    const unsigned char *secret = test_secret("shape");
    apr_pool_t *p = unit_pool();
    const char *const never[] = {
        "alice_" SUFFIX24, "alice_x", "alice_..", "alice_-~.",
        apr_pstrcat(p, "alice_", repeat('A', 26), NULL),
        apr_pstrcat(p, "alice_", repeat('A', 28), NULL),
        apr_pstrcat(p, "alice_", repeat('A', SSE_ID_MAX - 6), NULL),
        apr_pstrcat(p, repeat('x', 64), "_" SUFFIX27, NULL),
        "alice_0123456789ABCDEFGHIJKLMNOP-",
        "alice_0123456789ABCDEFGHIJKLMNOP.",
        "a_0123456789ABCDE_GHIJKLMNOPQ",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(never) / sizeof(never[0]); i++) {
        CHECK_RV(APR_EACCES, sse_id_verify(secret, never[i]),
                 "\"%s\" is an id by its form, one never issued: not "
                 "malformed", never[i]);
    }
}

UNIT_TEST(test_id_verify_of_a_well_shaped_unissued_id_with_underscores_is_eacces)
{
    const unsigned char *secret = test_secret("shape");
    static const char *const forged[] = {
        "a_b_" SUFFIX27, "alice__" SUFFIX27, "a_b_c_" SUFFIX27,
        "timeout_task_" SUFFIX27,
    };
    apr_size_t i;

    for (i = 0; i < sizeof(forged) / sizeof(forged[0]); i++) {
        CHECK_RV(APR_EACCES, sse_id_verify(secret, forged[i]),
                 "\"%s\" has the shape of an id; only its MAC is wrong",
                 forged[i]);
    }
}

/* ---- secrets ---------------------------------------------------------- */

UNIT_TEST(test_id_secret_from_text_is_the_same_every_time)
{
    unsigned char a[SSE_SECRET_LEN], b[SSE_SECRET_LEN], c[SSE_SECRET_LEN];

    REQUIRE_RV(APR_SUCCESS, sse_id_secret("correct horse", a), "first");
    REQUIRE_RV(APR_SUCCESS, sse_id_secret("correct horse", b), "second");
    REQUIRE_RV(APR_SUCCESS, sse_id_secret("correct horsf", c), "other");
    CHECK(memcmp(a, b, SSE_SECRET_LEN) == 0, "same text, same secret");
    CHECK(memcmp(a, c, SSE_SECRET_LEN) != 0, "other text, other secret");
    CHECK(memcmp(a, a + SSE_SECRET_LEN / 2, SSE_SECRET_LEN / 2) != 0,
          "the two halves are different digests");
    CHECK_RV(APR_SUCCESS, sse_id_secret("", c), "the empty text is a text");
}

UNIT_TEST(test_id_secret_without_text_is_random)
{
    unsigned char a[SSE_SECRET_LEN], b[SSE_SECRET_LEN], z[SSE_SECRET_LEN];

    memset(z, 0, sizeof(z));
    REQUIRE_RV(APR_SUCCESS, sse_id_secret(NULL, a), "first");
    REQUIRE_RV(APR_SUCCESS, sse_id_secret(NULL, b), "second");
    CHECK(memcmp(a, b, SSE_SECRET_LEN) != 0, "two random secrets differ");
    CHECK(memcmp(a, z, SSE_SECRET_LEN) != 0, "a random secret is not zero");
}

UNIT_TEST(test_id_stays_valid_when_the_same_text_secret_is_derived_again)
{
    unsigned char before[SSE_SECRET_LEN], after[SSE_SECRET_LEN];
    char id[SSE_ID_MAX + 1];

    REQUIRE_RV(APR_SUCCESS, sse_id_secret("SSESecret value", before), "1st");
    REQUIRE_RV(APR_SUCCESS, sse_id_make(before, "dave", id), "make");
    memset(before, 0, sizeof(before));
    REQUIRE_RV(APR_SUCCESS, sse_id_secret("SSESecret value", after), "2nd");
    CHECK_RV(APR_SUCCESS, sse_id_verify(after, id),
             "an id survives a restart with the same SSESecret");
}

/* ---- parse ------------------------------------------------------------ */

UNIT_TEST(test_id_parse_splits_at_the_last_underscore_any_suffix_without_it)
{
    apr_pool_t *p = unit_pool();
    const char *n64 = repeat('x', 64);
    const struct {
        const char *id;
        apr_status_t rv;
        apr_size_t name_len;
    } cases[] = {
        {"a_" SUFFIX27, APR_SUCCESS, 1},
        {"alice_" SUFFIX27, APR_SUCCESS, 5},
        {"A.b~c-d_" SUFFIX27, APR_SUCCESS, 7},
        {"alice_zzzzzzzzzzzzzzzzzzzzzzzzzzz", APR_SUCCESS, 5},
        {apr_pstrcat(p, n64, "_" SUFFIX27, NULL), APR_SUCCESS, 64},
        {apr_pstrcat(p, n64, "x_" SUFFIX27, NULL), APR_EINVAL, 0},
        {"", APR_EINVAL, 0},
        {"_", APR_EINVAL, 0},
        {"alice", APR_EINVAL, 0},
        {"alice_", APR_EINVAL, 0},
        {"_" SUFFIX27, APR_EINVAL, 0},
        {"alice_" SUFFIX27 "R", APR_SUCCESS, 5},
        {"alice_" SUFFIX24, APR_SUCCESS, 5},
        {"alice_x", APR_SUCCESS, 5},
        {"alice_0123456789ABCDEFGHIJKLMNOP", APR_SUCCESS, 5},
        {"alice_0123456789ABCDEFGHIJKLMNOP.", APR_SUCCESS, 5},
        {"alice_0123456789ABCDEFGHIJKLMNOP~", APR_SUCCESS, 5},
        {"alice_0123456789ABCDEFGHIJKLMNOP-", APR_SUCCESS, 5},
        {apr_pstrcat(p, "alice_", repeat('A', SSE_ID_MAX - 6), NULL),
         APR_SUCCESS, 5},
        {apr_pstrcat(p, "alice_", repeat('A', SSE_ID_MAX - 5), NULL),
         APR_EINVAL, 0},
        {apr_pstrcat(p, n64, "_" SUFFIX27 "A", NULL), APR_EINVAL, 0},
        {"_abc", APR_EINVAL, 0},
        {"alice_0123456789ABCDEF HIJKLMNOPQ", APR_EINVAL, 0},
        {"alice__" SUFFIX27, APR_SUCCESS, 6},
        {"a_b_" SUFFIX27, APR_SUCCESS, 3},
        {"a_b_c_" SUFFIX27, APR_SUCCESS, 5},
        {"a__" SUFFIX27, APR_SUCCESS, 2},
        {"timeout_task_" SUFFIX27, APR_SUCCESS, 12},
        {"alice_" SUFFIX27 "_" SUFFIX27, APR_SUCCESS, 33},
        {apr_pstrcat(p, "u", repeat('_', 63), "_" SUFFIX27, NULL),
         APR_SUCCESS, 64},
        {apr_pstrcat(p, "u", repeat('_', 64), "_" SUFFIX27, NULL),
         APR_EINVAL, 0},
        {"_a_" SUFFIX27, APR_EINVAL, 0},
        {"__" SUFFIX27, APR_EINVAL, 0},
        {"alice_" SUFFIX27 "_", APR_EINVAL, 0},
        {"alice_0123456789ABCDEFGHIJKLMNOP_", APR_EINVAL, 0},
        {"a_0123456789ABCDE_GHIJKLMNOPQ", APR_SUCCESS, 17},
        {"a:b_" SUFFIX27, APR_EINVAL, 0},
        {"a/b_" SUFFIX27, APR_EINVAL, 0},
        {"-a_" SUFFIX27, APR_EINVAL, 0},
        {"..a_" SUFFIX27, APR_EINVAL, 0},
        {"\xc3\xa9_" SUFFIX27, APR_EINVAL, 0},
        {"alice_\xc3\xa9" "123456789ABCDEFGHIJKLMNOP", APR_EINVAL, 0},
    };
    apr_size_t i, nl;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *shown = unit_escape(p, cases[i].id, strlen(cases[i].id));
        nl = 999;
        CHECK_RV(cases[i].rv, sse_id_parse(cases[i].id, &nl), "\"%s\"", shown);
        if (cases[i].rv == APR_SUCCESS) {
            CHECK_INT(cases[i].name_len, nl, "name length of \"%s\"", shown);
        }
        CHECK_RV(cases[i].rv, sse_id_parse(cases[i].id, NULL),
                 "\"%s\" with name_len NULL", shown);
    }
}
