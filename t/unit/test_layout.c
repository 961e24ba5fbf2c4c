/* The house rule that keeps the core server-independent: no file in src/
 * includes an httpd header (STYLE.md, "Layout and names"). */
#include <string.h>

#include <apr_file_info.h>
#include <apr_file_io.h>
#include <apr_strings.h>

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
