/**
 * @file unit.h
 * @brief A small unit-test framework for the server-independent core.
 *
 * A test is a function declared with UNIT_TEST(name); it registers itself
 * before main() runs (a GNU constructor), so adding a test is adding a
 * function. CHECK* record a failure (one line: file:line, the test, what
 * was expected and what came) and go on; REQUIRE* do the same and leave
 * the test, for when the rest of it would be meaningless.
 *
 * The runner (unit.c) runs every test, each with a fresh pool, and ends
 * with the line `<passed> passed, <failed> failed`:
 *
 *     t/unit/run_tests [cases-dir [word... | -word...]]
 *
 * cases-dir defaults to `cases` next to the binary; words select the tests
 * whose name contains one of them, -words leave out those that contain it.
 */
#ifndef SSE_UNIT_H
#define SSE_UNIT_H

#include <apr.h>
#include <apr_errno.h>
#include <apr_pools.h>

typedef void unit_fn(void);

/** Add a test to the registry (done by UNIT_TEST, before main). */
void unit_register(const char *name, const char *file, unit_fn *fn);

#define UNIT_TEST(name)                                                     \
    static void name(void);                                                 \
    static void __attribute__((constructor)) name##_register(void)          \
    {                                                                       \
        unit_register(#name, __FILE__, name);                               \
    }                                                                       \
    static void name(void)

/** Record a check; print a line when it failed. @return @a ok */
int unit_check(int ok, const char *file, int line, const char *expr,
               const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/** Record a check of a status code. @return expected == actual */
int unit_check_rv(apr_status_t expected, apr_status_t actual,
                  const char *expr, const char *file, int line,
                  const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** Record a check of two integers. */
int unit_check_int(long long expected, long long actual, const char *expr,
                   const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** Record a check of two byte strings (shown escaped when they differ). */
int unit_check_mem(const char *expected, apr_size_t elen, const char *actual,
                   apr_size_t alen, const char *expr, const char *file,
                   int line, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));

#define CHECK(cond, ...)                                                    \
    unit_check(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

/** Like CHECK, but the failure is reported at a data file's line. */
#define CHECK_AT(file, line, cond, ...)                                     \
    unit_check(!!(cond), (file), (line), #cond, __VA_ARGS__)

#define CHECK_RV(expected, actual, ...)                                     \
    unit_check_rv((expected), (actual), #actual, __FILE__, __LINE__,        \
                  __VA_ARGS__)

#define CHECK_INT(expected, actual, ...)                                    \
    unit_check_int((long long)(expected), (long long)(actual), #actual,     \
                   __FILE__, __LINE__, __VA_ARGS__)

/** NUL-terminated strings; NULL is shown as (null) and equals only NULL. */
#define CHECK_STR(expected, actual, ...)                                    \
    unit_check_mem((expected), unit_strlen(expected), (actual),             \
                   unit_strlen(actual), #actual, __FILE__, __LINE__,        \
                   __VA_ARGS__)

#define CHECK_MEM(expected, elen, actual, alen, ...)                        \
    unit_check_mem((expected), (elen), (actual), (alen), #actual, __FILE__, \
                   __LINE__, __VA_ARGS__)

#define REQUIRE(cond, ...)                                                  \
    do {                                                                    \
        if (!CHECK(cond, __VA_ARGS__)) {                                    \
            return;                                                         \
        }                                                                   \
    } while (0)

#define REQUIRE_RV(expected, actual, ...)                                   \
    do {                                                                    \
        if (!CHECK_RV(expected, actual, __VA_ARGS__)) {                     \
            return;                                                         \
        }                                                                   \
    } while (0)

/** strlen() that takes NULL (for CHECK_STR). */
apr_size_t unit_strlen(const char *s);

/** The running test's pool: created before it starts, destroyed after. */
apr_pool_t *unit_pool(void);

/** Failed checks so far in the running test (to stop a loop early). */
int unit_failures(void);

/** The directory of the data files (argv[1], or next to the binary). */
const char *unit_cases_dir(void);

/** A readable name for a status: "APR_ENOSPC", else apr_strerror's. */
const char *unit_rv_name(apr_status_t rv, char *buf, apr_size_t len);

/**
 * Read the data file @a name from the cases directory as lines.
 * Empty lines and lines starting with `#` are skipped.
 * @param lines   out: the lines, without their newline
 * @param linenos out: the 1-based line number of each
 * @param path    out (may be NULL): the file's path, for messages
 * @return the number of lines, or -1 (and a recorded failure) if the
 *         file cannot be read
 */
int unit_read_lines(const char *name, char ***lines, int **linenos,
                    const char **path);

/**
 * Decode the escapes of a data-file field in place: `\xHH` is the byte
 * HH; every other backslash is itself (so JSON's `\"` and `\n` can be
 * written as they are). @return the length (the bytes may hold a NUL)
 */
apr_size_t unit_unescape(char *s);

/** @a s with every byte outside printable ASCII as `\xHH` (from @a p). */
const char *unit_escape(apr_pool_t *p, const char *s, apr_size_t len);

#endif /* SSE_UNIT_H */
