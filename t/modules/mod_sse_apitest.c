/*
 * A test-only module that drives mod_sse_mgr through its optional
 * functions alone, the way another module would:
 *
 *   GET /apitest/<op>/<arg>/<arg>   (SetHandler sse-apitest)
 *
 * It answers one line: `rv=<apr_status_t> n=<delivered> <text>`. Ops:
 * make-id/{name}, is-registered/{id}, listen/{id}/{key},
 * notify-completions/{id}/{taskid}, notify-listeners/{key},
 * unregister/{id}, unregister-all, cleanup, json, missing (retrieves a
 * function that does not exist, to show callers get NULL).
 */
#include <httpd.h>
#include <http_config.h>
#include <http_protocol.h>

#include <apr_strings.h>

#include "include/mod_sse_mgr.h"

/* declared, never registered by anyone */
APR_DECLARE_OPTIONAL_FN(int, sse_mgr_no_such_function, (void));

static APR_OPTIONAL_FN_TYPE(sse_mgr_make_id) *make_id;
static APR_OPTIONAL_FN_TYPE(sse_mgr_is_registered) *is_registered;
static APR_OPTIONAL_FN_TYPE(sse_mgr_listen) *listen_key;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_completions) *completions;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_listeners) *listeners;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_completions_payload) *comp_pl;
static APR_OPTIONAL_FN_TYPE(sse_mgr_notify_listeners_payload) *list_pl;
static APR_OPTIONAL_FN_TYPE(sse_mgr_unregister) *unregister;
static APR_OPTIONAL_FN_TYPE(sse_mgr_unregister_all) *unregister_all;
static APR_OPTIONAL_FN_TYPE(sse_mgr_trigger_cleanup) *cleanup;
static APR_OPTIONAL_FN_TYPE(sse_mgr_listeners_json) *to_json;

static void retrieve(void)
{
    make_id = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_make_id);
    is_registered = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_is_registered);
    listen_key = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_listen);
    completions = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_completions);
    listeners = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners);
    comp_pl = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_completions_payload);
    list_pl = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_notify_listeners_payload);
    unregister = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_unregister);
    unregister_all = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_unregister_all);
    cleanup = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_trigger_cleanup);
    to_json = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_listeners_json);
}

/* payload-{json,text}-{listeners,completions}/a[/b]?<payload>: the
 * payload is the query string, URL-decoded; "*N": N bytes of 'x' (more
 * than a URL can hold). */
static apr_status_t payload(request_rec *r, const char *how, const char *a,
                            const char *b, int *n)
{
    char *body = apr_pstrdup(r->pool, r->args ? r->args : "");
    int is_json = !strncmp(how, "json-", 5);

    if (ap_unescape_url(body) != OK
        || (!is_json && strncmp(how, "text-", 5))) {
        return APR_EGENERAL;
    }
    how += 5;
    if (body[0] == '*') {
        apr_size_t len = (apr_size_t)apr_atoi64(body + 1);
        body = apr_palloc(r->pool, len + 1);
        memset(body, 'x', len);
        body[len] = '\0';
    }
    if (!strcmp(how, "listeners") && a) {
        return list_pl(r->server, r->pool, a, body, strlen(body), is_json, n);
    }
    if (!strcmp(how, "completions") && a && b) {
        return comp_pl(r->server, r->pool, a, b, body, strlen(body),
                       is_json, n);
    }
    return APR_ENOTIMPL;
}

static apr_status_t run(request_rec *r, const char *op, const char *a,
                        const char *b, int *n, const char **out)
{
    server_rec *s = r->server;

    if (!strcmp(op, "make-id") && a) {
        return make_id(s, r->pool, a, out);
    }
    if (!strcmp(op, "is-registered") && a) {
        return is_registered(s, a);
    }
    if (!strcmp(op, "listen") && a && b) {
        return listen_key(s, a, b);
    }
    if (!strcmp(op, "notify-completions") && a && b) {
        return completions(s, a, b, n);
    }
    if (!strcmp(op, "notify-listeners") && a) {
        return listeners(s, a, n);
    }
    if (!strncmp(op, "payload-", 8)) {
        return payload(r, op + 8, a, b, n);
    }
    if (!strcmp(op, "unregister") && a) {
        return unregister(s, a);
    }
    if (!strcmp(op, "unregister-all")) {
        return unregister_all(s);
    }
    if (!strcmp(op, "cleanup")) {
        return cleanup(s);
    }
    if (!strcmp(op, "json")) {
        return to_json(s, r->pool, out);
    }
    if (!strcmp(op, "missing")) {
        *out = APR_RETRIEVE_OPTIONAL_FN(sse_mgr_no_such_function) ? "found"
                                                                  : "null";
        return APR_SUCCESS;
    }
    return APR_ENOTIMPL;
}

static int handler(request_rec *r)
{
    char *path, *op, *a, *b, *state;
    const char *out = "";
    apr_status_t rv;
    int n = -1;

    if (strcmp(r->handler, "sse-apitest")) {
        return DECLINED;
    }
    if (make_id == NULL) {
        return HTTP_SERVICE_UNAVAILABLE;    /* mod_sse_mgr not loaded */
    }
    path = apr_pstrdup(r->pool, r->uri);
    apr_strtok(path, "/", &state);          /* "apitest" */
    op = apr_strtok(NULL, "/", &state);
    a = apr_strtok(NULL, "/", &state);
    b = apr_strtok(NULL, "/", &state);
    rv = op ? run(r, op, a, b, &n, &out) : APR_ENOTIMPL;
    ap_set_content_type(r, "text/plain");
    ap_rprintf(r, "rv=%d n=%d %s", rv, n, out ? out : "");
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    ap_hook_optional_fn_retrieve(retrieve, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_handler(handler, NULL, NULL, APR_HOOK_MIDDLE);
}

AP_DECLARE_MODULE(sse_apitest) = {
    STANDARD20_MODULE_STUFF, NULL, NULL, NULL, NULL, NULL, register_hooks,
    AP_MODULE_FLAG_NONE
};
