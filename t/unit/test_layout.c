/* The house rule that keeps the core server-independent: no file in src/
 * includes an httpd header (STYLE.md, "Layout and names"); and the shared
 * segment's layout fingerprint, which keeps a rebuilt module off a
 * segment laid out by another build; and the pages a child maps at
 * start. */
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

static const char *const httpd_headers[] = {
    "httpd.h", "http_", "ap_", "util_", "mod_", "mpm", "scoreboard.h",
    "unixd.h",
};

/* The header named by an #include line, or NULL. */
static const char *included(const char *line)
{
    const char *p = line;

    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (*p++ != '#') {
        return NULL;
    }
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    if (strncmp(p, "include", 7) != 0) {
        return NULL;
    }
    p += 7;
    while (*p == ' ' || *p == '\t') {
        p++;
    }
    return (*p == '<' || *p == '"') ? p + 1 : NULL;
}

static void check_file(const char *path, const char *shown)
{
    apr_pool_t *p = unit_pool();
    apr_file_t *f;
    char line[1024];
    int lineno = 0;
    apr_size_t i;

    if (!CHECK_RV(APR_SUCCESS, apr_file_open(&f, path, APR_FOPEN_READ,
                                             APR_OS_DEFAULT, p),
                  "open %s", path)) {
        return;
    }
    while (apr_file_gets(line, sizeof(line), f) == APR_SUCCESS) {
        const char *h = included(line);
        lineno++;
        for (i = 0; h && i < sizeof(httpd_headers) / sizeof(*httpd_headers);
             i++) {
            CHECK_AT(shown, lineno,
                     strncmp(h, httpd_headers[i], strlen(httpd_headers[i]))
                         != 0,
                     "the core includes an httpd header: %s",
                     apr_pstrndup(p, h, strcspn(h, ">\"")));
        }
    }
    apr_file_close(f);
}

UNIT_TEST(test_core_sources_include_no_httpd_header)
{
    apr_pool_t *p = unit_pool();
    const char *src = apr_pstrcat(p, unit_cases_dir(), "/../../../src", NULL);
    apr_dir_t *dir;
    apr_finfo_t fi;
    int files = 0;

    if (!CHECK_RV(APR_SUCCESS, apr_dir_open(&dir, src, p),
                  "the core sources are expected at %s", src)) {
        return;
    }
    while (apr_dir_read(&fi, APR_FINFO_NAME | APR_FINFO_TYPE, dir)
           == APR_SUCCESS) {
        apr_size_t n = strlen(fi.name);
        if (fi.filetype != APR_REG || n < 3
            || strncmp(fi.name, "sse_", 4) != 0
            || (strcmp(fi.name + n - 2, ".c") != 0
                && strcmp(fi.name + n - 2, ".h") != 0)) {
            continue;
        }
        check_file(apr_pstrcat(p, src, "/", fi.name, NULL),
                   apr_pstrcat(p, "src/", fi.name, NULL));
        files++;
    }
    apr_dir_close(dir);
    CHECK(files >= 8, "only %d core files found in %s", files, src);
}

/* ---- the shared segment's layout fingerprint ------------------------- */

/* A graceful restart onto a rebuilt module keeps the old segment: the
 * new build must refuse it when its records differ, even if no one
 * bumped a version number. */
UNIT_TEST(test_registry_with_another_fingerprint_is_refused)
{
    fx_t fx;
    sse_registry_t *reg = NULL;
    sse_registry_stamp_t st;
    unsigned char *mem;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    CHECK_RV(APR_SUCCESS, sse_registry_validate(fx.mem, fx.size, &fx.sz, &st),
             "the registry this build made");
    CHECK(st.fingerprint == sse_registry_fingerprint(&fx.sz),
          "the stamp holds this build's fingerprint");
    mem = apr_pmemdup(fx.pool, fx.mem, fx.size);
    ((sse_registry_stamp_t *)mem)->fingerprint ^= 1;
    CHECK_RV(APR_EMISMATCH, sse_registry_validate(mem, fx.size, &fx.sz, &st),
             "a stamp from a build whose records differ");
    CHECK(st.fingerprint == (sse_registry_fingerprint(&fx.sz) ^ 1),
          "the stamp found is handed back for the log");
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &fx.sz, fx.lock,
                                             &reg),
             "attach refuses it before computing any offset");
    CHECK(reg == NULL, "no handle on a refused segment");
}

UNIT_TEST(test_segment_smaller_than_its_registry_is_refused)
{
    fx_t fx;
    sse_registry_stamp_t st;

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    CHECK_RV(APR_EMISMATCH,
             sse_registry_validate(fx.mem, fx.size - 1, &fx.sz, &st),
             "one byte short: the ring would run past the segment");
    CHECK_RV(APR_EMISMATCH,
             sse_registry_validate(fx.mem, sizeof(st) - 1, &fx.sz, &st),
             "too small for a stamp");
    CHECK(st.magic == 0 && st.fingerprint == 0,
          "nothing is read from a segment too small for a stamp");
}

/* What the previous build wrote: magic, version 2, then the sizes. */
UNIT_TEST(test_header_of_the_hand_versioned_build_is_refused)
{
    fx_t fx;
    sse_registry_t *reg = NULL;
    sse_registry_stamp_t st;
    unsigned char *mem;
    apr_uint32_t old[6];

    if (!fx_open(&fx, 8, 16, 4)) {
        return;
    }
    mem = apr_pmemdup(fx.pool, fx.mem, fx.size);
    old[0] = 0x53534552u;
    old[1] = 2;
    memcpy(&old[2], &fx.sz, sizeof(fx.sz));
    memcpy(mem, old, sizeof(old));
    CHECK_RV(APR_EMISMATCH, sse_registry_validate(mem, fx.size, &fx.sz, &st),
             "same magic and sizes, but not this build's stamp");
    CHECK_RV(APR_EINVAL, sse_registry_attach(fx.pool, mem, &fx.sz, fx.lock,
                                             &reg), "attach");
}

UNIT_TEST(test_fingerprint_follows_every_configured_size)
{
    sse_registry_sizes_t a = {100, 256, 48, 65536}, b;
    apr_uint64_t fa = sse_registry_fingerprint(&a);

    b = a;
    CHECK(sse_registry_fingerprint(&b) == fa, "the same sizes, the same");
    b.max_listeners++;
    CHECK(sse_registry_fingerprint(&b) != fa, "SSEMaxListeners");
    b = a;
    b.history++;
    CHECK(sse_registry_fingerprint(&b) != fa, "SSEHistory");
    b = a;
    b.max_children++;
    CHECK(sse_registry_fingerprint(&b) != fa, "ServerLimit");
    b = a;
    b.payload_bytes++;
    CHECK(sse_registry_fingerprint(&b) != fa, "the payload ring");
}

/* In a process forked from the one that made @a reg in shared memory, as
 * an httpd child is: the page faults taken by writing a zero to every page
 * of the ring (zeroed when made; this child is its only writer: plain
 * stores, which fault page by page where reads would map 16 at a time),
 * after sse_registry_prefault() if @a prefault. -1 if that could not be
 * run. */
static long ring_faults_in_child(const sse_registry_t *reg, int prefault)
{
    apr_size_t pg = (apr_size_t)sysconf(_SC_PAGESIZE);
    unsigned char *from = (unsigned char *)reg->ring;
    unsigned char *to = (unsigned char *)(reg->ring + reg->h->sz.history);
    int fd[2], status;
    long faults = -1;
    pid_t pid;

    if (pipe(fd) != 0) {
        return -1;
    }
    if ((pid = fork()) == 0) {
        struct rusage before, after;
        unsigned char *p;
        if (prefault) {
            (void)sse_registry_prefault(reg);
        }
        getrusage(RUSAGE_SELF, &before);
        for (p = from; p < to; p += pg) {
            *(volatile unsigned char *)p = 0;
        }
        getrusage(RUSAGE_SELF, &after);
        faults = after.ru_minflt - before.ru_minflt;
        _exit(write(fd[1], &faults, sizeof(faults)) == sizeof(faults)
              ? 0 : 1);
    }
    close(fd[1]);
    if (pid < 0 || read(fd[0], &faults, sizeof(faults)) != sizeof(faults)) {
        faults = -1;
    }
    close(fd[0]);
    if (pid > 0) {
        waitpid(pid, &status, 0);
    }
    return faults;
}

UNIT_TEST(test_a_child_writes_the_ring_without_page_faults_after_prefault)
{
    sse_registry_sizes_t sz = {64, 512, 4, 65536};
    unsigned char secret[SSE_SECRET_LEN] = {0};
    long pages, cold, warm;
    sse_registry_t *reg;
    apr_shm_t *shm;
    fx_t fx;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS, apr_shm_create(&shm, sse_registry_size(&sz),
                                           NULL, fx.pool),
               "anonymous shared memory");
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_create(fx.pool, apr_shm_baseaddr_get(shm), &sz,
                                   secret, 0, fx.lock, &reg), "create");
    pages = (long)(sz.history * sizeof(sse_event_t))
            / sysconf(_SC_PAGESIZE);
    cold = ring_faults_in_child(reg, 0);
    warm = ring_faults_in_child(reg, 1);
    REQUIRE(cold >= 0 && warm >= 0, "fork, pipe");
    CHECK(cold >= pages, "without it, a fault per ring page: %ld of %ld",
          cold, pages);
    CHECK(warm <= 4, "after it, none (%ld; the child's own stack aside) "
          "of %ld pages", warm, pages);
}
