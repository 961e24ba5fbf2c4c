/* sse_route: every case of cases/routes.txt, and the route table. */
#include <string.h>

#include <apr_strings.h>

#include "src/sse_route.h"
#include "unit.h"

#define VALID_ID "alice_0123456789ABCDEFGHIJKLMNOPQ"

static const struct {
    const char *name;
    sse_route_e route;
    int nargs;
    unsigned int methods;
} table[] = {
    {"make-id", SSE_ROUTE_MAKE_ID, 1, SSE_METHOD_GET},
    {"register-listener", SSE_ROUTE_REGISTER, 1, SSE_METHOD_GET},
    {"disconnect-registrant", SSE_ROUTE_DISCONNECT, 1, SSE_METHOD_GET},
    {"list-registrants", SSE_ROUTE_LIST, 0, SSE_METHOD_GET},
    {"clear-registrants", SSE_ROUTE_CLEAR, 0, SSE_METHOD_GET},
    {"trigger-cleanup", SSE_ROUTE_CLEANUP, 0, SSE_METHOD_GET},
    {"listen", SSE_ROUTE_LISTEN, 2, SSE_METHOD_PUT | SSE_METHOD_POST},
    {"notify-completions", SSE_ROUTE_NOTIFY_COMPLETIONS, 2,
     SSE_METHOD_PUT | SSE_METHOD_POST},
    {"notify-listeners", SSE_ROUTE_NOTIFY_LISTENERS, 1,
     SSE_METHOD_PUT | SSE_METHOD_POST},
};
#define NTABLE ((int)(sizeof(table) / sizeof(table[0])))

static int table_index(const char *name)
{
    int i;

    for (i = 0; i < NTABLE; i++) {
        if (strcmp(table[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

typedef struct {
    int ok, einval, enoent;
    int seen[NTABLE];
} route_tally_t;

static void check_ok(const char *file, int line, const char *shown,
                     apr_status_t rv, const sse_route_t *r, char *expect,
                     route_tally_t *tally)
{
    char *last, *name = apr_strtok(expect, " ", &last);
    const char *want[SSE_ROUTE_MAX_ARGS + 1] = {NULL, NULL, NULL};
    int t, i, n = 0;

    while (n <= SSE_ROUTE_MAX_ARGS
           && (want[n] = apr_strtok(NULL, " ", &last)) != NULL) {
        n++;
    }
    t = name ? table_index(name) : -1;
    if (!CHECK_AT(file, line, t >= 0, "no route \"%s\" in the test's table",
                  name ? name : "")) {
        return;
    }
    tally->ok++;
    tally->seen[t]++;
    if (!CHECK_AT(file, line, rv == APR_SUCCESS,
                  "\"%s\": expected ok, got status %d (%s)", shown, rv,
                  r->error ? r->error : "no reason")) {
        return;
    }
    CHECK_AT(file, line, r->def && strcmp(r->def->name, name) == 0,
             "\"%s\": route %s, expected %s", shown,
             r->def ? r->def->name : "(none)", name);
    CHECK_AT(file, line, r->route == table[t].route,
             "\"%s\": route enum %d, expected %d", shown, (int)r->route,
             (int)table[t].route);
    CHECK_AT(file, line, n == table[t].nargs,
             "the case lists %d args, %s takes %d", n, name, table[t].nargs);
    for (i = 0; i < SSE_ROUTE_MAX_ARGS; i++) {
        const char *got = r->args[i];
        CHECK_AT(file, line,
                 (want[i] == NULL && got == NULL)
                     || (want[i] && got && strcmp(want[i], got) == 0),
                 "\"%s\": arg %d is \"%s\", expected \"%s\"", shown, i + 1,
                 got ? got : "(null)", want[i] ? want[i] : "(null)");
    }
    CHECK_AT(file, line, r->error == NULL, "no error on success");
}

static void run_route_case(const char *file, int line, char *text,
                           route_tally_t *tally)
{
    apr_pool_t *p = unit_pool();
    char *tab = strchr(text, '\t'), *expect;
    const char *shown;
    apr_size_t len;
    sse_route_t r;
    apr_status_t rv;

    if (!CHECK_AT(file, line, tab != NULL, "no TAB between path and "
                  "expectation")) {
        return;
    }
    *tab = '\0';
    expect = tab + 1;
    len = unit_unescape(text);
    shown = unit_escape(p, text, len);
    memset(&r, 0x5a, sizeof(r));       /* parse must set every field */
    rv = sse_route_parse(p, text, &r);
    if (strncmp(expect, "ok ", 3) == 0) {
        check_ok(file, line, shown, rv, &r, expect + 3, tally);
    }
    else if (strcmp(expect, "EINVAL") == 0) {
        tally->einval++;
        if (CHECK_AT(file, line, rv == APR_EINVAL,
                     "\"%s\": expected EINVAL, got status %d", shown, rv)) {
            CHECK_AT(file, line, r.def != NULL, "EINVAL names its route");
            CHECK_AT(file, line, r.error && *r.error
                                     && strchr(r.error, '\n') == NULL,
                     "\"%s\": the reason must be one non-empty line",
                     shown);
        }
    }
    else if (strcmp(expect, "ENOENT") == 0) {
        tally->enoent++;
        if (CHECK_AT(file, line, rv == APR_ENOENT,
                     "\"%s\": expected ENOENT, got status %d", shown, rv)) {
            CHECK_AT(file, line, r.def == NULL, "ENOENT has no route");
        }
    }
    else {
        CHECK_AT(file, line, 0, "unknown expectation \"%s\"", expect);
    }
}

UNIT_TEST(test_route_cases_in_routes_txt)
{
    route_tally_t tally;
    char **lines;
    int *linenos, n, i;
    const char *path;

    memset(&tally, 0, sizeof(tally));
    n = unit_read_lines("routes.txt", &lines, &linenos, &path);
    if (n < 0) {
        return;
    }
    for (i = 0; i < n; i++) {
        run_route_case(path, linenos[i], lines[i], &tally);
    }
    CHECK(n >= 40, "routes.txt holds only %d cases", n);
    CHECK(tally.einval > 0 && tally.enoent > 0, "both kinds of rejection");
    for (i = 0; i < NTABLE; i++) {
        CHECK(tally.seen[i] > 0, "routes.txt has no ok case for %s",
              table[i].name);
    }
}

UNIT_TEST(test_route_table_allows_the_seed_methods)
{
    int i;

    for (i = 0; i < NTABLE; i++) {
        const sse_route_def_t *d = sse_route_find(table[i].name);
        if (!CHECK(d != NULL, "route %s is missing", table[i].name)) {
            continue;
        }
        CHECK_STR(table[i].name, d->name, "the route's name");
        CHECK_INT(table[i].nargs, d->nargs, "%s: argument count",
                  table[i].name);
        CHECK_INT(table[i].methods, d->methods, "%s: methods", table[i].name);
        CHECK(d->allow && strstr(d->allow, "OPTIONS"),
              "%s: Allow lists OPTIONS (preflight is answered)",
              table[i].name);
        CHECK(!(d->methods & SSE_METHOD_GET) || strstr(d->allow, "GET"),
              "%s: Allow lists GET", table[i].name);
        CHECK(!(d->methods & SSE_METHOD_PUT) || strstr(d->allow, "PUT"),
              "%s: Allow lists PUT", table[i].name);
        CHECK(!(d->methods & SSE_METHOD_POST) || strstr(d->allow, "POST"),
              "%s: Allow lists POST", table[i].name);
    }
    CHECK_INT(NTABLE, SSE_ROUTE_COUNT, "the test knows every route");
}

UNIT_TEST(test_route_find_matches_the_whole_first_segment)
{
    const sse_route_def_t *d = sse_route_find("make-id");

    CHECK(d && strcmp(d->name, "make-id") == 0, "make-id");
    CHECK(sse_route_find("make-id/alice") == d, "the first segment only");
    CHECK(sse_route_find("make-id/") == d, "with an empty second segment");
    CHECK(sse_route_find("make-idx") == NULL, "a longer name");
    CHECK(sse_route_find("make-i") == NULL, "a prefix of a name");
    CHECK(sse_route_find("") == NULL, "the empty path");
    CHECK(sse_route_find("/make-id") == NULL, "a leading slash");
    CHECK(sse_route_find("listen") != sse_route_find("list-registrants"),
          "listen and list-registrants are different routes");
}

UNIT_TEST(test_route_reason_says_which_segment_is_wrong)
{
    static const struct {
        const char *path, *word;
    } cases[] = {
        {"make-id/", "empty"},
        {"make-id/a:b", "name"},
        {"make-id/_a", "name"},
        {"register-listener/alice", "id"},
        {"listen/" VALID_ID "/a b", "key"},
        {"listen/" VALID_ID "/_a", "key"},
        {"register-listener/_a_0123456789ABCDEFGHIJKLMNOPQ", "id"},
        {"notify-completions/" VALID_ID "/-t", "task id"},
        {"notify-completions/" VALID_ID "/_t", "task id"},
        {"notify-listeners/.", "key"},
        {"listen/" VALID_ID, "2"},
        {"make-id/a/b", "1"},
    };
    apr_size_t i;
    sse_route_t r;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_status_t rv = sse_route_parse(unit_pool(), cases[i].path, &r);
        if (CHECK_RV(APR_EINVAL, rv, "%s", cases[i].path)) {
            CHECK(r.error && strstr(r.error, cases[i].word),
                  "%s: reason \"%s\" should mention \"%s\"", cases[i].path,
                  r.error ? r.error : "(null)", cases[i].word);
        }
    }
}

UNIT_TEST(test_route_accepts_underscores_in_names_keys_and_task_ids)
{
    static const struct {
        const char *path, *arg1, *arg2;
    } cases[] = {
        {"make-id/a_b", "a_b", NULL},
        {"make-id/alice_", "alice_", NULL},
        {"register-listener/a_b_0123456789ABCDEFGHIJKLMNOPQ",
         "a_b_0123456789ABCDEFGHIJKLMNOPQ", NULL},
        {"register-listener/alice__0123456789ABCDEFGHIJKLMNOPQ",
         "alice__0123456789ABCDEFGHIJKLMNOPQ", NULL},
        {"listen/" VALID_ID "/a_b", VALID_ID, "a_b"},
        {"notify-completions/" VALID_ID "/timeout_task", VALID_ID,
         "timeout_task"},
        {"notify-listeners/a_b", "a_b", NULL},
    };
    apr_size_t i;
    sse_route_t r;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        apr_status_t rv = sse_route_parse(unit_pool(), cases[i].path, &r);
        if (!CHECK_RV(APR_SUCCESS, rv, "%s (%s)", cases[i].path,
                      rv == APR_SUCCESS || !r.error ? "" : r.error)) {
            continue;
        }
        CHECK_STR(cases[i].arg1, r.args[0], "%s: first arg", cases[i].path);
        if (cases[i].arg2) {
            CHECK_STR(cases[i].arg2, r.args[1], "%s: second arg",
                      cases[i].path);
        }
    }
}

UNIT_TEST(test_route_args_are_copies_not_pointers_into_the_path)
{
    char path[] = "listen/" VALID_ID "/news";
    sse_route_t r;

    REQUIRE_RV(APR_SUCCESS, sse_route_parse(unit_pool(), path, &r), "parse");
    memset(path, 'Z', sizeof(path) - 1);
    CHECK_STR(VALID_ID, r.args[0], "the id outlives the path buffer");
    CHECK_STR("news", r.args[1], "the key outlives the path buffer");
}
