/*
 * mod_sse_demo: the original package's demo server as a second httpd module
 * that drives mod_sse_mgr through the optional functions of
 * include/mod_sse_mgr.h alone.
 *
 *   PUT <SSEDemoPrefix>submit-task/{id}/{taskid}
 *       timeout_task  completed 5 s later
 *       ad-hoc        completed at once
 *       progress      `notify` events with data on the key progress at
 *                     25, 50, 75 and 100 %, half a second apart, then
 *                     `completed` with a result (payload events)
 *   listen key clock-tick: `notify^clock-tick` every second while some
 *   listener holds the key
 *
 * Delayed and periodic work runs on a singleton child watchdog of
 * mod_watchdog: one thread in one child, never inside a request. Pending
 * tasks live in a small shared segment kept in retained data (created
 * once by the parent, mapped by every generation), so a task accepted by a
 * child that a graceful restart replaces is still completed by the next
 * generation's watchdog. docs/demo.md walks through this file.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_core.h>
#include <http_log.h>
#include <http_main.h>
#include <http_protocol.h>
#include <http_request.h>
#include <util_mutex.h>
#include <mod_watchdog.h>

#include <apr_atomic.h>
#include <apr_global_mutex.h>
#include <apr_lib.h>
#include <apr_shm.h>
#include <apr_strings.h>

#include "include/mod_sse_mgr.h"

/* Our own log tags (SSE00100..SSE00119 and SSE00180..SSE00184 belong to
 * this file). */
#define SSE_LOGNO(n) "SSE" #n ": "

#define DEMO_HANDLER     "sse-demo"
#define DEMO_NOTE        "sse-demo-route"
#define DEMO_MUTEX_TYPE  "sse-demo"
#define DEMO_RETAINED    "mod_sse_demo"
#define DEMO_WATCHDOG    "_sse_demo_"
#define DEMO_DEF_PREFIX  "/sse/"
#define DEMO_ROUTE       "submit-task"
#define DEMO_TICK_KEY    "clock-tick"
#define DEMO_TIMEOUT     "timeout_task"
#define DEMO_ADHOC       "ad-hoc"
#define DEMO_PROGRESS    "progress"
#define DEMO_PROGRESS_KEY "progress"
#define DEMO_DELAY_MS    5000       /* timeout_task */
#define DEMO_STEP_MS     500        /* progress: one step */
#define DEMO_STEPS       4          /* progress: 25, 50, 75, 100 % */
#define DEMO_TICK_MS     1000
#define DEMO_TASKS       256        /* pending delayed tasks, all vhosts */
#define DEMO_BATCH       32         /* due steps sent per watchdog run */
#define DEMO_TOKEN_MAX   64         /* names, suffixes, task ids */
#define DEMO_ID_MAX      (2 * DEMO_TOKEN_MAX + 1)
#define DEMO_BODY_MAX    4096

/* ---- shared state ----------------------------------------------------
 *
 * One segment for the whole server, every field guarded by the mutex. A
 * slot is filled first and marked used last, so a process that dies
 * inside the lock leaves at worst a slot still free. Each watchdog run
 * scans every slot (256 flags, ten times a second): no count to drift.
 */
typedef struct {
    apr_uint32_t used;              /* 1: pending; written last */
    apr_uint32_t server;            /* ordinal in the server list */
    apr_uint32_t step;              /* progress: steps sent so far */
    apr_int64_t due_ms;
    apr_int64_t start_ms;           /* submitted */
    char id[DEMO_ID_MAX + 1];
    char taskid[DEMO_TOKEN_MAX + 1];
} demo_task_t;

typedef struct {
    apr_int64_t next_tick_ms;       /* shared: two watchdogs (old and new
                                       generation) never both tick */
    demo_task_t task[DEMO_TASKS];
} demo_shared_t;

/* Kept across generations, the way the MPMs keep the scoreboard. */
typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
} demo_retained_t;

typedef struct {
    const char *prefix;             /* NULL: unset (inherit) */
    int prefix_set;                 /* set in this very context */
    int ticking;                    /* watchdog thread: listeners last time */
} demo_conf_t;

module AP_MODULE_DECLARE_DATA sse_demo_module;

static demo_retained_t *retained;
static demo_shared_t *shared;

/* Set once this child can run the watchdog's work; `busy` counts runs in
 * progress so the child's exit waits for them (see child_exit). */
static volatile apr_uint32_t ready, busy;

static APR_OPTIONAL_FN_TYPE(sse_mgr_is_registered) *is_registered;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_completions) *completions;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_listeners) *notify;
/* NULL with a mod_sse_mgr without payloads: no progress task then */
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_completions_payload)
    *completions_pl;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_listeners_payload) *notify_pl;

static demo_conf_t *demo_conf(server_rec *s)
{
    return ap_get_module_config(s->module_config, &sse_demo_module);
}

static apr_int64_t now_ms(void)
{
    return (apr_int64_t)apr_time_as_msec(apr_time_now());
}

/* ---- configuration --------------------------------------------------- */

static void *create_srv_conf(apr_pool_t *p, server_rec *s)
{
    (void)s;
    return apr_pcalloc(p, sizeof(demo_conf_t));
}

static void *merge_srv_conf(apr_pool_t *p, void *basev, void *addv)
{
    demo_conf_t *base = basev, *add = addv;
    demo_conf_t *conf = apr_pcalloc(p, sizeof(*conf));

    conf->prefix = add->prefix ? add->prefix : base->prefix;
    conf->prefix_set = add->prefix_set;
    return conf;
}

static const char *set_prefix(cmd_parms *cmd, void *dc, const char *arg)
{
    demo_conf_t *conf = demo_conf(cmd->server);
    apr_size_t len = strlen(arg);

    (void)dc;
    if (len < 2 || arg[0] != '/' || arg[len - 1] != '/'
        || strpbrk(arg, "?#%\\ \t") || strstr(arg, "//")) {
        return apr_psprintf(cmd->pool,
                            "%s: '%s' must be a URL path that starts and "
                            "ends with '/', e.g. " DEMO_DEF_PREFIX,
                            cmd->cmd->name, arg);
    }
    conf->prefix = arg;
    conf->prefix_set = 1;
    return NULL;
}

static const command_rec demo_cmds[] = {
    AP_INIT_TAKE1("SSEDemoPrefix", set_prefix, NULL, RSRC_CONF,
                  "URL prefix of the demo's submit-task route; the same as "
                  "SSEPrefix (default " DEMO_DEF_PREFIX ")"),
    {NULL}
};

/* ---- validation (the token class of docs/api.md) ------------------ */

#define ALNUM "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

/* 1..DEMO_TOKEN_MAX bytes of [A-Za-z0-9._~-] ('_' too, as ids have it),
 * starting with a letter or digit; @a s may go on past @a len */
static int token_valid(const char *s, apr_size_t len)
{
    return len > 0 && len <= DEMO_TOKEN_MAX && apr_isalnum(s[0])
           && strspn(s, ALNUM "._~-") >= len;
}

/* `<name>_<suffix>`: a token, '_', then letters and digits only */
static int id_valid(const char *id)
{
    const char *us = strrchr(id, '_');
    apr_size_t slen = us ? strlen(us + 1) : 0;

    return us && token_valid(id, (apr_size_t)(us - id)) && slen > 0
           && slen <= DEMO_TOKEN_MAX && strspn(us + 1, ALNUM) == slen;
}

/* ---- the shared task table ------------------------------------------- */

static apr_uint32_t server_ordinal(server_rec *s)
{
    apr_uint32_t n = 0;
    server_rec *vs;

    for (vs = ap_server_conf; vs && vs != s; vs = vs->next) {
        n++;
    }
    return vs ? n : 0;
}

/* The vhost a task was submitted to; the main server when a new
 * configuration has fewer vhosts than the one that accepted it. */
static server_rec *server_at(server_rec *main_s, apr_uint32_t n)
{
    server_rec *vs = main_s;

    while (vs && n--) {
        vs = vs->next;
    }
    return vs ? vs : main_s;
}

static apr_status_t queue_task(server_rec *s, const char *id,
                               const char *taskid)
{
    apr_status_t rv = apr_global_mutex_lock(retained->mutex);
    int i;

    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = APR_ENOSPC;
    for (i = 0; i < DEMO_TASKS; i++) {
        demo_task_t *t = &shared->task[i];
        if (t->used) {
            continue;
        }
        t->server = server_ordinal(s);
        t->step = 0;
        t->start_ms = now_ms();
        t->due_ms = t->start_ms + (strcmp(taskid, DEMO_PROGRESS)
                                   ? DEMO_DELAY_MS : DEMO_STEP_MS);
        apr_cpystrn(t->id, id, sizeof(t->id));
        apr_cpystrn(t->taskid, taskid, sizeof(t->taskid));
        t->used = 1;
        rv = APR_SUCCESS;
        break;
    }
    apr_global_mutex_unlock(retained->mutex);
    return rv;
}

/* Under the mutex: take up to @a max due steps out of the table and say
 * whether the clock is due to tick. A progress task keeps its slot, due
 * again one step later, until its last step is taken. */
static int take_due(apr_int64_t now, demo_task_t *due, int max, int *tick)
{
    int i, n = 0;

    for (i = 0; i < DEMO_TASKS && n < max; i++) {
        demo_task_t *t = &shared->task[i];
        if (!t->used || t->due_ms > now) {
            continue;
        }
        due[n++] = *t;
        if (!strcmp(t->taskid, DEMO_PROGRESS) && t->step + 1 < DEMO_STEPS) {
            t->step++;
            t->due_ms += DEMO_STEP_MS;
        }
        else {
            t->used = 0;
        }
    }
    /* a clock set back leaves next_tick far ahead: start again from now */
    *tick = now >= shared->next_tick_ms
            || shared->next_tick_ms > now + DEMO_TICK_MS;
    if (*tick) {
        shared->next_tick_ms += DEMO_TICK_MS;
        if (shared->next_tick_ms <= now
            || shared->next_tick_ms > now + DEMO_TICK_MS) {
            shared->next_tick_ms = now + DEMO_TICK_MS;
        }
    }
    return n;
}

/* ---- the watchdog's work --------------------------------------------- */

static void complete(server_rec *main_s, const demo_task_t *t)
{
    server_rec *s = server_at(main_s, t->server);
    int n = 0;
    apr_status_t rv = completions(s, t->id, t->taskid, &n);

    /* APR_ENOENT: the listener went away in the meantime; nothing to do */
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00107)
                 "task %s for %s completed: %d listener(s)", t->taskid,
                 t->id, n);
}

/* One step of a progress task: `notify` on DEMO_PROGRESS_KEY with the
 * submitter's name (not its id, which every holder of the key would see)
 * and the percentage; after the last, `completed` with the result to every
 * id of that name. Ids and task ids are tokens: no JSON escaping needed. */
static void progress(server_rec *main_s, const demo_task_t *t, apr_pool_t *p)
{
    server_rec *s = server_at(main_s, t->server);
    int pct = (int)((t->step + 1) * 100 / DEMO_STEPS), n = 0;
    const char *name = apr_pstrmemdup(p, t->id, (apr_size_t)(
                           strrchr(t->id, '_') - t->id));
    const char *json;
    apr_status_t rv;

    if (notify_pl == NULL || completions_pl == NULL) {
        return;                     /* queued by a generation that had them */
    }
    json = apr_psprintf(p, "{\"name\":\"%s\",\"taskid\":\"%s\","
                        "\"percent\":%d}", name, t->taskid, pct);
    rv = notify_pl(s, p, DEMO_PROGRESS_KEY, json, strlen(json), 1, &n);
    ap_log_error(APLOG_MARK, APLOG_TRACE1, rv, s, SSE_LOGNO(00180)
                 "task %s for %s at %d %%: %d listener(s)", t->taskid,
                 t->id, pct, n);
    if (t->step + 1 < DEMO_STEPS) {
        return;
    }
    json = apr_psprintf(p, "{\"result\":\"done\",\"steps\":%d,"
                        "\"ms\":%" APR_INT64_T_FMT "}", DEMO_STEPS,
                        now_ms() - t->start_ms);
    rv = completions_pl(s, p, t->id, t->taskid, json, strlen(json), 1, &n);
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00181)
                 "task %s for %s completed with a result: %d listener(s)",
                 t->taskid, t->id, n);
}

/* Only the main server and the vhosts that set SSEDemoPrefix themselves
 * tick: the others share the main server's registry. */
static void tick(server_rec *main_s)
{
    server_rec *s;

    for (s = main_s; s; s = s->next) {
        demo_conf_t *conf = demo_conf(s);
        apr_status_t rv;
        int n = 0;

        if (s != main_s && !conf->prefix_set) {
            continue;
        }
        rv = notify(s, DEMO_TICK_KEY, &n);
        ap_log_error(APLOG_MARK, APLOG_TRACE1, rv, s, SSE_LOGNO(00108)
                     DEMO_TICK_KEY ": %d listener(s)", n);
        if ((n > 0) != conf->ticking) {
            conf->ticking = n > 0;
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00109)
                         DEMO_TICK_KEY ": %s", n > 0
                             ? "someone listens, ticking every second"
                             : "nobody listens, quiet");
        }
    }
}

static void run_once(server_rec *main_s, apr_pool_t *p)
{
    demo_task_t due[DEMO_BATCH];
    int i, n, tick_due = 0;

    if (apr_global_mutex_lock(retained->mutex) != APR_SUCCESS) {
        return;                     /* next run, 100 ms from now */
    }
    n = take_due(now_ms(), due, DEMO_BATCH, &tick_due);
    apr_global_mutex_unlock(retained->mutex);
    /* mod_sse_mgr's calls take its own lock: never under ours */
    for (i = 0; i < n; i++) {
        if (!strcmp(due[i].taskid, DEMO_PROGRESS)) {
            progress(main_s, &due[i], p);
        }
        else {
            complete(main_s, &due[i]);
        }
    }
    if (tick_due) {
        tick(main_s);
    }
}

/* @a p is mod_watchdog's, cleared after every run. */
static apr_status_t demo_watchdog(int state, void *data, apr_pool_t *p)
{
    if (state == AP_WATCHDOG_STATE_RUNNING) {
        apr_atomic_inc32(&busy);
        if (apr_atomic_read32(&ready)) {
            run_once(data, p);
        }
        apr_atomic_dec32(&busy);
    }
    return APR_SUCCESS;             /* anything else stops the callback */
}

/* ---- the route -------------------------------------------------------- */

/* Claim only <SSEDemoPrefix>submit-task[/...]: mod_sse_mgr claims its own
 * routes under the same prefix and leaves this one to us. */
static int demo_translate(request_rec *r)
{
    demo_conf_t *conf = demo_conf(r->server);
    const char *prefix = conf->prefix ? conf->prefix : DEMO_DEF_PREFIX;
    apr_size_t plen = strlen(prefix), rlen = strlen(DEMO_ROUTE);
    const char *rest;

    if (r->proxyreq || strncmp(r->uri, prefix, plen) != 0) {
        return DECLINED;
    }
    rest = r->uri + plen;
    if (strncmp(rest, DEMO_ROUTE, rlen) != 0
        || (rest[rlen] != '/' && rest[rlen] != '\0')) {
        return DECLINED;
    }
    r->handler = DEMO_HANDLER;
    r->filename = apr_pstrcat(r->pool, DEMO_HANDLER ":", r->uri, NULL);
    apr_table_setn(r->notes, DEMO_NOTE, rest + rlen);
    return OK;
}

/* No file behind the route: skip the directory walk (<Location> and so
 * Require still apply). */
static int demo_map_to_storage(request_rec *r)
{
    return apr_table_get(r->notes, DEMO_NOTE) ? OK : DECLINED;
}

/* One line of text/plain: "ok" bare as the original sends it, a reason with
 * a newline. */
static int answer(request_rec *r, int status, const char *line)
{
    const char *body = status < 300 ? line
                                    : apr_pstrcat(r->pool, line, "\n", NULL);

    r->status = status;
    ap_set_content_type(r, "text/plain; charset=utf-8");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    ap_set_content_length(r, (apr_off_t)strlen(body));
    if (!r->header_only) {
        ap_rputs(body, r);
    }
    return OK;
}

/* Read and drop a small body; refuse a larger one without reading it. */
static int drop_body(request_rec *r)
{
    char buf[1024];
    apr_off_t total = 0;
    long n = 0;
    int status = ap_setup_client_block(r, REQUEST_CHUNKED_DECHUNK);

    if (status != OK) {
        return status;
    }
    if (r->remaining <= DEMO_BODY_MAX && ap_should_client_block(r)) {
        while (total <= DEMO_BODY_MAX
               && (n = ap_get_client_block(r, buf, sizeof(buf))) > 0) {
            total += n;
        }
        if (n < 0) {
            return HTTP_BAD_REQUEST;
        }
    }
    if (r->remaining > DEMO_BODY_MAX || total > DEMO_BODY_MAX) {
        r->connection->keepalive = AP_CONN_CLOSE;   /* rest left unread */
        return answer(r, HTTP_REQUEST_ENTITY_TOO_LARGE,
                      "request body too large");
    }
    return DECLINED;
}

/* "/{id}/{taskid}" into its two segments, each checked. */
static const char *parse_args(request_rec *r, const char *path,
                              char **id, char **taskid)
{
    char *slash;

    if (path[0] != '/' || (slash = strchr(path + 1, '/')) == NULL
        || strchr(slash + 1, '/') != NULL) {
        return DEMO_ROUTE " needs two path segments: {id}/{taskid}";
    }
    *id = apr_pstrmemdup(r->pool, path + 1, (apr_size_t)(slash - path - 1));
    *taskid = apr_pstrdup(r->pool, slash + 1);
    if (strlen(*id) > DEMO_ID_MAX || !id_valid(*id)) {
        return "the id is not of the form <name>_<suffix> issued by make-id";
    }
    if (!token_valid(*taskid, strlen(*taskid))) {
        return apr_psprintf(r->pool, "the task id must be 1..%d characters "
                            "of [A-Za-z0-9._~-] starting with a letter or "
                            "digit", DEMO_TOKEN_MAX);
    }
    return NULL;
}

static int preflight(request_rec *r)
{
    apr_table_setn(r->headers_out, "Allow", "PUT, OPTIONS");
    apr_table_setn(r->headers_out, "Access-Control-Allow-Methods",
                   "PUT, OPTIONS");
    apr_table_setn(r->headers_out, "Access-Control-Allow-Headers",
                   "Content-Type");
    apr_table_setn(r->headers_out, "Cache-Control", "no-store");
    r->status = HTTP_NO_CONTENT;
    return OK;
}

/* Start @a taskid for the registered @a id: APR_NOTFOUND for no such
 * task, APR_ENOTIMPL for progress without the payload functions. */
static apr_status_t start_task(request_rec *r, const char *id,
                               const char *taskid, int *n)
{
    if (!strcmp(taskid, DEMO_ADHOC)) {
        return completions(r->server, id, taskid, n);
    }
    if (!strcmp(taskid, DEMO_TIMEOUT)) {
        return queue_task(r->server, id, taskid);
    }
    if (!strcmp(taskid, DEMO_PROGRESS)) {
        return notify_pl && completions_pl ? queue_task(r->server, id, taskid)
                                           : APR_ENOTIMPL;
    }
    return APR_NOTFOUND;
}

/* The seed's answers: "ok", 404 "not found", 500 "no task for: x". */
static int submit(request_rec *r, const char *id, const char *taskid)
{
    apr_status_t rv = is_registered(r->server, id);
    int n = 0;

    if (rv == APR_ENOENT) {
        return answer(r, HTTP_NOT_FOUND, "not found");
    }
    if (rv == APR_EINVAL) {         /* the manager's own, stricter check */
        return answer(r, HTTP_BAD_REQUEST, "the id is not of the form "
                      "<name>_<suffix> issued by make-id");
    }
    if (rv == APR_SUCCESS) {
        rv = start_task(r, id, taskid, &n);
    }
    if (rv == APR_NOTFOUND) {
        return answer(r, HTTP_INTERNAL_SERVER_ERROR,
                      apr_pstrcat(r->pool, "no task for: ", taskid, NULL));
    }
    if (rv == APR_ENOTIMPL) {
        return answer(r, HTTP_NOT_IMPLEMENTED, DEMO_PROGRESS " needs a "
                      "mod_sse_mgr whose events carry payloads");
    }
    ap_log_rerror(APLOG_MARK, APLOG_DEBUG, rv, r, SSE_LOGNO(00105)
                  "submit-task %s for %s (%d listener(s) now)", taskid, id,
                  n);
    if (rv == APR_SUCCESS) {
        return answer(r, HTTP_OK, "ok");
    }
    if (rv == APR_ENOSPC) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, rv, r, SSE_LOGNO(00106)
                      "%d tasks pending already: refused", DEMO_TASKS);
        apr_table_setn(r->err_headers_out, "Retry-After", "5");
        return answer(r, HTTP_SERVICE_UNAVAILABLE, "too many pending tasks");
    }
    return answer(r, rv == APR_ENOENT ? HTTP_NOT_FOUND
                                      : HTTP_SERVICE_UNAVAILABLE,
                  rv == APR_ENOENT ? "not found" : "service unavailable");
}

static int demo_handler(request_rec *r)
{
    const char *path = apr_table_get(r->notes, DEMO_NOTE), *err;
    char *id, *taskid;
    int status;

    if (r->handler == NULL || strcmp(r->handler, DEMO_HANDLER) != 0
        || path == NULL) {
        return DECLINED;
    }
    /* as the original's demo server: any origin may submit */
    apr_table_setn(r->err_headers_out, "Access-Control-Allow-Origin", "*");
    if (r->method_number == M_OPTIONS) {
        return preflight(r);
    }
    if (r->method_number != M_PUT) {
        apr_table_setn(r->err_headers_out, "Allow", "PUT, OPTIONS");
        return answer(r, HTTP_METHOD_NOT_ALLOWED,
                      DEMO_ROUTE " allows PUT, OPTIONS");
    }
    if ((status = drop_body(r)) != DECLINED) {
        return status;
    }
    if ((err = parse_args(r, path, &id, &taskid)) != NULL) {
        return answer(r, HTTP_BAD_REQUEST, err);
    }
    return submit(r, id, taskid);
}

/* ---- start-up --------------------------------------------------------- */

static int demo_pre_config(apr_pool_t *pconf, apr_pool_t *plog,
                           apr_pool_t *ptemp)
{
    (void)plog;
    (void)ptemp;
    return ap_mutex_register(pconf, DEMO_MUTEX_TYPE, NULL, APR_LOCK_DEFAULT,
                             0) == APR_SUCCESS ? OK : !OK;
}

/* The segment and the mutex, made once and kept by every generation. */
static apr_status_t attach_shared(server_rec *s)
{
    apr_status_t rv = APR_SUCCESS;

    retained = ap_retained_data_get(DEMO_RETAINED);
    if (retained == NULL) {
        retained = ap_retained_data_create(DEMO_RETAINED, sizeof(*retained));
    }
    if (retained->mutex == NULL) {
        rv = ap_global_mutex_create(&retained->mutex, NULL, DEMO_MUTEX_TYPE,
                                    NULL, s, s->process->pool, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00100)
                         "cannot create the " DEMO_MUTEX_TYPE " mutex");
            return rv;
        }
    }
    if (retained->shm
        && apr_shm_size_get(retained->shm) != sizeof(demo_shared_t)) {
        /* a graceful restart into a build with another layout: start
         * empty (the old generation's children keep their mapping) */
        apr_shm_destroy(retained->shm);
        retained->shm = NULL;
    }
    if (retained->shm == NULL) {
        rv = apr_shm_create(&retained->shm, sizeof(demo_shared_t), NULL,
                            s->process->pool);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00101)
                         "cannot create %" APR_SIZE_T_FMT " bytes of shared "
                         "memory", sizeof(demo_shared_t));
            return rv;
        }
        shared = apr_shm_baseaddr_get(retained->shm);
        memset(shared, 0, sizeof(*shared));
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, SSE_LOGNO(00102)
                     "shared memory for %d pending tasks created",
                     DEMO_TASKS);
    }
    shared = apr_shm_baseaddr_get(retained->shm);
    return rv;
}

static apr_status_t start_watchdog(server_rec *s, apr_pool_t *pconf)
{
    APR_OPTIONAL_FN_TYPE(ap_watchdog_get_instance) *get_instance;
    APR_OPTIONAL_FN_TYPE(ap_watchdog_register_callback) *register_cb;
    ap_watchdog_t *wd;
    apr_status_t rv;

    get_instance = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_get_instance);
    register_cb = APR_RETRIEVE_OPTIONAL_FN(ap_watchdog_register_callback);
    if (get_instance == NULL || register_cb == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00103)
                     "mod_sse_demo needs mod_watchdog");
        return APR_ENOTIMPL;
    }
    /* a child singleton: forked MPMs have no parent watchdog threads */
    rv = get_instance(&wd, DEMO_WATCHDOG, 0, 1, pconf);
    if (rv == APR_SUCCESS) {
        rv = register_cb(wd, AP_WD_TM_SLICE, s, demo_watchdog);
    }
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00104)
                     "cannot register the demo's watchdog callback");
    }
    return rv;
}

static int demo_post_config(apr_pool_t *pconf, apr_pool_t *plog,
                            apr_pool_t *ptemp, server_rec *s)
{
    (void)plog;
    (void)ptemp;
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;                  /* the dry run: nothing kept */
    }
    if (APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners) == NULL) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00110)
                     "mod_sse_demo needs mod_sse_mgr: load it first");
        return !OK;
    }
    if (attach_shared(s) != APR_SUCCESS || start_watchdog(s, pconf)) {
        return !OK;
    }
    return OK;
}

static void demo_retrieve(void)
{
    is_registered = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_is_registered);
    completions = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_completions);
    notify = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners);
    completions_pl =
        APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_completions_payload);
    notify_pl = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners_payload);
}

/* The watchdog thread may be inside run_once() when the child ends: wait
 * (briefly) before mod_sse_mgr's per-child state goes with pchild. */
static apr_status_t child_exit(void *data)
{
    int tries = 200;

    (void)data;
    apr_atomic_set32(&ready, 0);
    while (apr_atomic_read32(&busy) && tries--) {
        apr_sleep(apr_time_from_msec(10));
    }
    return APR_SUCCESS;
}

static void demo_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (retained == NULL || retained->mutex == NULL || shared == NULL
        || notify == NULL) {
        return;
    }
    rv = apr_global_mutex_child_init(&retained->mutex,
                                     apr_global_mutex_lockfile(
                                         retained->mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00111)
                     "cannot attach to the " DEMO_MUTEX_TYPE " mutex in the "
                     "child");
        return;
    }
    apr_pool_pre_cleanup_register(pchild, NULL, child_exit);
    apr_atomic_set32(&ready, 1);
}

static void register_hooks(apr_pool_t *p)
{
    /* our callback runs on mod_watchdog's thread: register it before the
     * watchdog's own post_config starts the instances */
    static const char *const before_wd[] = {"mod_watchdog.c", NULL};
    /* mod_sse_mgr attaches its registries in its child_init */
    static const char *const after_mgr[] = {"mod_sse_mgr.c", NULL};

    (void)p;
    ap_hook_pre_config(demo_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(demo_post_config, NULL, before_wd, APR_HOOK_LAST);
    ap_hook_optional_fn_retrieve(demo_retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_child_init(demo_child_init, after_mgr, NULL, APR_HOOK_MIDDLE);
    ap_hook_translate_name(demo_translate, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_map_to_storage(demo_map_to_storage, NULL, NULL, APR_HOOK_FIRST);
    ap_hook_handler(demo_handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(sse_demo) = {
    STANDARD20_MODULE_STUFF,
    NULL,                   /* per-directory config */
    NULL,
    create_srv_conf,
    merge_srv_conf,
    demo_cmds,
    register_hooks,
    AP_MODULE_FLAG_NONE
};
