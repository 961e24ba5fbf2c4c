/* The runner of the core unit tests: registry, checks, data files, main. */
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <apr_errno.h>
#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_general.h>
#include <apr_strings.h>

#include "unit.h"

#define UNIT_MAX_TESTS 512

typedef struct {
    const char *name;
    const char *file;
    unit_fn *fn;
} unit_test_t;

static unit_test_t tests[UNIT_MAX_TESTS];
static int ntests;

static struct {
    const unit_test_t *test;
    apr_pool_t *pool;
    int failures;
    int passed, failed, selected;
    const char *cases_dir;
} run;

void unit_register(const char *name, const char *file, unit_fn *fn)
{
    if (ntests == UNIT_MAX_TESTS) {
        fprintf(stderr, "unit: more than %d tests, raise UNIT_MAX_TESTS\n",
                UNIT_MAX_TESTS);
        exit(2);
    }
    tests[ntests].name = name;
    tests[ntests].file = file;
    tests[ntests].fn = fn;
    ntests++;
}

apr_size_t unit_strlen(const char *s)
{
    return s ? strlen(s) : 0;
}

apr_pool_t *unit_pool(void)
{
    return run.pool;
}

int unit_failures(void)
{
    return run.failures;
}

const char *unit_cases_dir(void)
{
    return run.cases_dir;
}

static void vfail(const char *file, int line, const char *what,
                  const char *fmt, va_list ap)
{
    printf("%s:%d: %s: %s", file, line,
           run.test ? run.test->name : "(no test)", what);
    if (fmt && *fmt) {
        printf(" -- ");
        vprintf(fmt, ap);
    }
    printf("\n");
    fflush(stdout);
    run.failures++;
}

int unit_check(int ok, const char *file, int line, const char *expr,
               const char *fmt, ...)
{
    va_list ap;
    char what[512];

    if (!ok) {
        apr_snprintf(what, sizeof(what), "CHECK(%s) failed", expr);
        va_start(ap, fmt);
        vfail(file, line, what, fmt, ap);
        va_end(ap);
    }
    return ok;
}

const char *unit_rv_name(apr_status_t rv, char *buf, apr_size_t len)
{
    static const struct {
        apr_status_t rv;
        const char *name;
    } names[] = {
        {APR_SUCCESS, "APR_SUCCESS"}, {APR_EINVAL, "APR_EINVAL"},
        {APR_ENOENT, "APR_ENOENT"},   {APR_ENOSPC, "APR_ENOSPC"},
        {APR_EACCES, "APR_EACCES"},   {APR_EAGAIN, "APR_EAGAIN"},
        {APR_EOF, "APR_EOF"},         {APR_ENOMEM, "APR_ENOMEM"},
        {APR_EGENERAL, "APR_EGENERAL"}, {APR_EEXIST, "APR_EEXIST"},
    };
    char err[120];
    apr_size_t i;

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (names[i].rv == rv) {
            apr_cpystrn(buf, names[i].name, len);
            return buf;
        }
    }
    apr_snprintf(buf, len, "%d (%s)", rv, apr_strerror(rv, err, sizeof(err)));
    return buf;
}

int unit_check_rv(apr_status_t expected, apr_status_t actual,
                  const char *expr, const char *file, int line,
                  const char *fmt, ...)
{
    va_list ap;
    char what[600], e[160], a[160];

    if (expected != actual) {
        apr_snprintf(what, sizeof(what), "%s: expected %s, got %s", expr,
                     unit_rv_name(expected, e, sizeof(e)),
                     unit_rv_name(actual, a, sizeof(a)));
        va_start(ap, fmt);
        vfail(file, line, what, fmt, ap);
        va_end(ap);
    }
    return expected == actual;
}

int unit_check_int(long long expected, long long actual, const char *expr,
                   const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    char what[512];

    if (expected != actual) {
        apr_snprintf(what, sizeof(what),
                     "%s: expected %" APR_INT64_T_FMT ", got %" APR_INT64_T_FMT,
                     expr, (apr_int64_t)expected, (apr_int64_t)actual);
        va_start(ap, fmt);
        vfail(file, line, what, fmt, ap);
        va_end(ap);
    }
    return expected == actual;
}

const char *unit_escape(apr_pool_t *p, const char *s, apr_size_t len)
{
    char *out, *o;
    apr_size_t i;

    if (s == NULL) {
        return "(null)";
    }
    out = o = apr_palloc(p, 4 * len + 1);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f) {
            *o++ = (char)c;
        }
        else {
            o += sprintf(o, "\\x%02x", c);
        }
    }
    *o = '\0';
    return out;
}

int unit_check_mem(const char *expected, apr_size_t elen, const char *actual,
                   apr_size_t alen, const char *expr, const char *file,
                   int line, const char *fmt, ...)
{
    va_list ap;
    apr_pool_t *p;
    int ok;
    char *what;

    ok = (expected == NULL || actual == NULL)
             ? expected == actual
             : (elen == alen && memcmp(expected, actual, elen) == 0);
    if (!ok) {
        apr_pool_create(&p, NULL);
        what = apr_psprintf(p, "%s: expected \"%s\" (%" APR_SIZE_T_FMT
                            " bytes), got \"%s\" (%" APR_SIZE_T_FMT
                            " bytes)",
                            expr, unit_escape(p, expected, elen),
                            expected ? elen : 0,
                            unit_escape(p, actual, alen),
                            actual ? alen : 0);
        va_start(ap, fmt);
        vfail(file, line, what, fmt, ap);
        va_end(ap);
        apr_pool_destroy(p);
    }
    return ok;
}

/* ---- data files ------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

apr_size_t unit_unescape(char *s)
{
    char *o = s;
    const char *i = s;

    while (*i) {
        if (i[0] == '\\' && i[1] == 'x' && hexval(i[2]) >= 0
            && hexval(i[3]) >= 0) {
            *o++ = (char)(hexval(i[2]) * 16 + hexval(i[3]));
            i += 4;
        }
        else {
            *o++ = *i++;
        }
    }
    *o = '\0';
    return (apr_size_t)(o - s);
}

int unit_read_lines(const char *name, char ***lines, int **linenos,
                    const char **path)
{
    apr_pool_t *p = unit_pool();
    const char *fn = apr_pstrcat(p, unit_cases_dir(), "/", name, NULL);
    apr_file_t *f;
    apr_finfo_t fi;
    apr_size_t size;
    apr_status_t rv;
    char *buf, *line, *next;
    int n = 0, lineno = 0, cap = 64;

    if (path) {
        *path = fn;
    }
    rv = apr_file_open(&f, fn, APR_FOPEN_READ | APR_FOPEN_BINARY,
                       APR_OS_DEFAULT, p);
    if (rv == APR_SUCCESS) {
        rv = apr_file_info_get(&fi, APR_FINFO_SIZE, f);
    }
    if (rv != APR_SUCCESS) {
        CHECK_RV(APR_SUCCESS, rv, "cannot read the data file %s (give the "
                 "cases directory as the first argument)", fn);
        return -1;
    }
    size = (apr_size_t)fi.size;
    buf = apr_palloc(p, size + 1);
    rv = apr_file_read_full(f, buf, size, &size);
    apr_file_close(f);
    if (!CHECK_RV(APR_SUCCESS, rv, "reading %s", fn)) {
        return -1;
    }
    buf[size] = '\0';
    *lines = apr_palloc(p, cap * sizeof(**lines));
    *linenos = apr_palloc(p, cap * sizeof(**linenos));
    for (line = buf; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) {
            *next++ = '\0';
        }
        lineno++;
        if (*line == '\0' || *line == '#') {
            continue;
        }
        if (n == cap) {
            char **l2 = apr_palloc(p, 2 * cap * sizeof(*l2));
            int *n2 = apr_palloc(p, 2 * cap * sizeof(*n2));
            memcpy(l2, *lines, cap * sizeof(*l2));
            memcpy(n2, *linenos, cap * sizeof(*n2));
            *lines = l2;
            *linenos = n2;
            cap *= 2;
        }
        (*lines)[n] = line;
        (*linenos)[n] = lineno;
        n++;
    }
    return n;
}

/* ---- the runner ------------------------------------------------------- */

static int is_dir(const char *path, apr_pool_t *p)
{
    apr_finfo_t fi;

    return apr_stat(&fi, path, APR_FINFO_TYPE, p) == APR_SUCCESS
           && fi.filetype == APR_DIR;
}

/* The directory `cases` beside the file @a path, or NULL if @a path has
 * no directory part or there is no such directory. */
static const char *cases_beside(const char *path, apr_pool_t *p)
{
    const char *slash = strrchr(path, '/'), *d;

    if (!slash) {
        return NULL;
    }
    d = apr_pstrcat(p, apr_pstrmemdup(p, path, (apr_size_t)(slash - path)),
                    "/cases", NULL);
    return is_dir(d, p) ? d : NULL;
}

/* argv[1], else `cases` next to the binary (as invoked, then as linked in
 * /proc), else t/unit/cases under the current directory. */
static const char *find_cases_dir(const char *argv0, const char *arg,
                                  apr_pool_t *p)
{
    char exe[4096];
    const char *d;
    ssize_t n;

    if (arg) {
        return arg;
    }
    if ((d = cases_beside(argv0, p)) != NULL) {
        return d;
    }
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        if ((d = cases_beside(exe, p)) != NULL) {
            return d;
        }
    }
    return "t/unit/cases";
}

static void on_crash(int sig)
{
    char buf[512];
    int len;

    len = snprintf(buf, sizeof(buf),
                   "%s: %s: crashed with signal %d\n%d passed, %d failed\n",
                   run.test ? run.test->file : "?",
                   run.test ? run.test->name : "?", sig, run.passed,
                   run.selected - run.passed);
    if (len > 0) {
        ssize_t w = write(1, buf, (size_t)len);
        (void)w;
    }
    _exit(2);
}

/* Words after the cases directory: run the tests whose name contains one
 * of them (all when there are none), except those whose name contains a
 * word given as -word. */
static int selected(const unit_test_t *t, int argc, char **argv)
{
    int i, includes = 0, included = 0;

    for (i = 2; i < argc; i++) {
        if (argv[i][0] == '-') {
            if (argv[i][1] && strstr(t->name, argv[i] + 1)) {
                return 0;
            }
        }
        else {
            includes++;
            included |= strstr(t->name, argv[i]) != NULL;
        }
    }
    return includes == 0 || included;
}

int main(int argc, char **argv)
{
    apr_pool_t *root;
    int i;

    apr_initialize();
    atexit(apr_terminate);
    apr_pool_create(&root, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);
    run.cases_dir = find_cases_dir(argv[0], argc > 1 ? argv[1] : NULL, root);
    signal(SIGSEGV, on_crash);
    signal(SIGBUS, on_crash);
    signal(SIGFPE, on_crash);
    signal(SIGABRT, on_crash);
    for (i = 0; i < ntests; i++) {
        run.selected += selected(&tests[i], argc, argv);
    }
    for (i = 0; i < ntests; i++) {
        if (!selected(&tests[i], argc, argv)) {
            continue;
        }
        run.test = &tests[i];
        run.failures = 0;
        apr_pool_create(&run.pool, root);
        tests[i].fn();
        apr_pool_destroy(run.pool);
        run.pool = NULL;
        if (run.failures) {
            run.failed++;
        }
        else {
            run.passed++;
        }
    }
    run.test = NULL;
    apr_pool_destroy(root);
    printf("%d passed, %d failed\n", run.passed, run.failed);
    return run.failed ? 1 : 0;
}
