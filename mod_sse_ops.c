/*
 * Every manager operation, once: the routes (mod_sse_handler.c) and the
 * optional functions (include/mod_sse_mgr.h) both call these. Each
 * validates its input, calls the core under its lock, then wakes the
 * children that hold streams, outside the lock.
 */
#include <httpd.h>
#include <http_config.h>
#include <http_log.h>

#include <apr_optional.h>
#include <apr_strings.h>

#include "include/mod_sse_mgr.h"
#include "mod_sse_mgr_private.h"
#include "mod_sse_ops.h"
#include "mod_sse_dispatch.h"
#include "mod_sse_bus.h"

/* Disconnected ids stay refused as long as a dormant listener would live. */
static apr_int64_t retire_until(void)
{
    return sse_now_ms() + apr_time_as_msec(sse_conf_dormant());
}

static sse_registry_t *reg_of(server_rec *s)
{
    return s ? sse_srv_conf(s)->reg : NULL;
}

apr_status_t sse_op_make_id(server_rec *s, apr_pool_t *p, const char *name,
                            const char **id)
{
    char buf[SSE_ID_MAX + 1];
    apr_status_t rv;

    if (reg_of(s) == NULL) {
        return APR_EGENERAL;
    }
    rv = sse_registry_make_id(reg_of(s), name, buf);
    if (rv == APR_SUCCESS) {
        *id = apr_pstrdup(p, buf);
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s, SSE_LOGNO(00020)
                     "issued an id for name %s", name);
    }
    return rv;
}

/* APR_SUCCESS for an id this registry issued; APR_ENOENT for a forged
 * one (it is unknown, whatever its shape); APR_EINVAL when malformed. */
apr_status_t sse_op_check_id(server_rec *s, const char *id)
{
    apr_status_t rv;

    if (reg_of(s) == NULL) {
        return APR_EGENERAL;
    }
    rv = sse_registry_check_id(reg_of(s), id);
    return rv == APR_EACCES ? APR_ENOENT : rv;
}

void sse_op_changed(server_rec *s)
{
    sse_srv_conf_t *conf = sse_srv_conf(s);
    int n;

    /* the parent's handle may find the lock busy: then the monitor tries
     * again on its next run, so no change goes untold */
    conf->changed_pending = conf->changed_key
        && sse_op_notify_listeners(s, conf->changed_key, &n) == APR_EBUSY;
}

static apr_status_t is_registered(server_rec *s, const char *id)
{
    apr_status_t rv = sse_op_check_id(s, id);

    if (rv == APR_SUCCESS && sse_bus_on()) {
        return sse_bus_lookup(s, id);
    }
    return rv ? rv : sse_registry_lookup(reg_of(s), id);
}

/* A key new to a listener changes what list-registrants shows, so it is a
 * change of the set; a key it held already is not. */
apr_status_t sse_op_listen(server_rec *s, const char *id, const char *key)
{
    apr_status_t rv = sse_op_check_id(s, id);
    int added = 0;

    if (rv == APR_SUCCESS && !sse_token_valid(key, strlen(key))) {
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS) {
        rv = sse_bus_on() ? sse_bus_listen(s, id, key, &added)
                          : sse_registry_listen_ex(reg_of(s), id, key,
                                                   sse_now_ms(), &added);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00021)
                 "listen: key %s for %s%s", key, id,
                 rv == APR_SUCCESS && !added ? " (held already)" : "");
    if (rv == APR_SUCCESS && added) {
        sse_op_changed(s);
    }
    return rv;
}

apr_status_t sse_op_payload(apr_pool_t *p, const char *body, apr_size_t len,
                            int is_json, sse_payload_t *pl,
                            const char **reason)
{
    pl->json = NULL;
    pl->len = 0;
    if (len == 0) {
        return APR_SUCCESS;
    }
    return sse_frame_payload(p, body, len, is_json, sse_conf_max_message(),
                             &pl->json, &pl->len, reason);
}

apr_status_t sse_op_notify_completions(server_rec *s, const char *id,
                                       const char *taskid, int *delivered)
{
    return sse_op_complete(s, id, taskid, NULL, delivered);
}

/* A completion goes to a listener of this very id, so without a bus the
 * registry's own lookup tells an issued id with a listener from any
 * other (APR_ENOENT, as a forged one): the MAC, half a C API call's CPU,
 * is left to the routes, which check it before any lock (check_ids() in
 * mod_sse_handler.c). The shape is still checked here. */
static apr_status_t check_target_id(server_rec *s, const char *id)
{
    if (sse_bus_on() || reg_of(s) == NULL) {
        return sse_op_check_id(s, id);
    }
    return sse_id_parse(id, NULL);
}

apr_status_t sse_op_complete(server_rec *s, const char *id,
                             const char *taskid, const sse_payload_t *pl,
                             int *delivered)
{
    apr_status_t rv = check_target_id(s, id);
    int n = 0;

    if (rv == APR_SUCCESS && !sse_token_valid(taskid, strlen(taskid))) {
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS && sse_bus_on()) {
        rv = sse_bus_complete(s, id, taskid, pl ? pl->json : NULL,
                              pl ? pl->len : 0, &n);
    }
    else if (rv == APR_SUCCESS) {
        rv = sse_registry_notify_completion_payload(
            reg_of(s), id, taskid, pl ? pl->json : NULL, pl ? pl->len : 0,
            sse_now_ms(), &n);
    }
    if (delivered) {
        *delivered = n;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00022)
                 "completion of task %s for %s (%" APR_SIZE_T_FMT " bytes "
                 "of payload): %d listener(s)", taskid, id,
                 pl ? pl->len : 0, n);
    return rv;
}

apr_status_t sse_op_notify_listeners(server_rec *s, const char *key,
                                     int *delivered)
{
    return sse_op_notify(s, key, NULL, delivered);
}

apr_status_t sse_op_notify(server_rec *s, const char *key,
                           const sse_payload_t *pl, int *delivered)
{
    apr_status_t rv = reg_of(s) ? APR_SUCCESS : APR_EGENERAL;
    int n = 0;

    if (rv == APR_SUCCESS && !sse_token_valid(key, strlen(key))) {
        rv = APR_EINVAL;
    }
    if (rv == APR_SUCCESS && sse_bus_on()) {
        rv = sse_bus_notify(s, key, pl ? pl->json : NULL, pl ? pl->len : 0,
                            &n);
    }
    else if (rv == APR_SUCCESS) {
        rv = sse_registry_notify_key_payload(
            reg_of(s), key, pl ? pl->json : NULL, pl ? pl->len : 0,
            sse_now_ms(), &n);
    }
    if (delivered) {
        *delivered = n;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00023)
                 "notify key %s (%" APR_SIZE_T_FMT " bytes of payload): %d "
                 "listener(s)", key, pl ? pl->len : 0, n);
    return rv;
}

apr_status_t sse_op_unregister(server_rec *s, const char *id)
{
    apr_status_t rv = sse_op_check_id(s, id);
    apr_uint32_t ended = 0;

    if (rv == APR_SUCCESS && sse_bus_on()) {
        rv = sse_bus_unregister(s, id, retire_until() - sse_now_ms());
    }
    else if (rv == APR_SUCCESS) {
        rv = sse_registry_unregister(reg_of(s), id, retire_until(), &ended);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00024)
                 "unregister %s", id);
    if (rv == APR_SUCCESS) {
        sse_dispatch_wake_pid(ended);
        sse_op_changed(s);
    }
    return rv;
}

apr_status_t sse_op_unregister_all(server_rec *s)
{
    apr_status_t rv = reg_of(s) ? APR_SUCCESS : APR_EGENERAL;
    int n = 0;

    if (rv == APR_SUCCESS && sse_bus_on()) {
        rv = sse_bus_clear(s, retire_until() - sse_now_ms(), &n);
    }
    else if (rv == APR_SUCCESS) {
        rv = sse_registry_clear(reg_of(s), retire_until(), &n);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00025)
                 "cleared %d listener(s)", n);
    if (rv == APR_SUCCESS) {
        if (!sse_bus_on()) {
            sse_dispatch_wake_all(reg_of(s));
        }
        if (n) {
            sse_op_changed(s);
        }
    }
    return rv;
}

apr_status_t sse_op_cleanup(server_rec *s, int *removed)
{
    apr_status_t rv = reg_of(s) ? APR_SUCCESS : APR_EGENERAL;
    int n = 0;

    if (rv == APR_SUCCESS && sse_bus_on()) {
        rv = sse_bus_cleanup(s, &n);
    }
    else if (rv == APR_SUCCESS) {
        rv = sse_registry_cleanup(reg_of(s), sse_now_ms(),
                                  apr_time_as_msec(sse_conf_dormant()), &n);
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00026)
                 "cleanup: removed %d dormant listener(s)", n);
    if (rv == APR_SUCCESS && n) {
        sse_op_changed(s);
    }
    if (removed) {
        *removed = n;
    }
    return rv;
}

apr_status_t sse_op_listeners_json(server_rec *s, apr_pool_t *p,
                                   const char **json)
{
    char *out = NULL;
    apr_status_t rv;

    if (sse_bus_on()) {
        return sse_bus_list(s, p, json);
    }
    rv = reg_of(s) ? sse_registry_json(reg_of(s), p, &out) : APR_EGENERAL;
    *json = out;
    return rv;
}

static apr_status_t opt_complete_payload(server_rec *s, apr_pool_t *p,
                                         const char *id, const char *taskid,
                                         const char *payload, apr_size_t len,
                                         int is_json, int *delivered)
{
    const char *reason;
    sse_payload_t pl;
    apr_status_t rv = sse_op_payload(p, payload, len, is_json, &pl, &reason);

    if (delivered) {
        *delivered = 0;
    }
    return rv ? rv : sse_op_complete(s, id, taskid, &pl, delivered);
}

static apr_status_t opt_notify_payload(server_rec *s, apr_pool_t *p,
                                       const char *key, const char *payload,
                                       apr_size_t len, int is_json,
                                       int *delivered)
{
    const char *reason;
    sse_payload_t pl;
    apr_status_t rv = sse_op_payload(p, payload, len, is_json, &pl, &reason);

    if (delivered) {
        *delivered = 0;
    }
    return rv ? rv : sse_op_notify(s, key, &pl, delivered);
}

static apr_status_t opt_trigger_cleanup(server_rec *s)
{
    return sse_op_cleanup(s, NULL);
}

/* APR_REGISTER_OPTIONAL_FN with the implementation's own name; the
 * assignment keeps the compiler's check of the signature. */
#define REGISTER_AS(name, fn)                                               \
    do {                                                                    \
        APR_OPTIONAL_FN_TYPE(name) *checked_ = fn;                          \
        apr_dynamic_fn_register(#name, (apr_opt_fn_t *)checked_);           \
    } while (0)

void sse_ops_register(void)
{
    REGISTER_AS(sse_mgr_make_id, sse_op_make_id);
    REGISTER_AS(sse_mgr_is_registered, is_registered);
    REGISTER_AS(sse_mgr_listen, sse_op_listen);
    REGISTER_AS(sse_mgr_notify_completions, sse_op_notify_completions);
    REGISTER_AS(sse_mgr_notify_listeners, sse_op_notify_listeners);
    REGISTER_AS(sse_mgr_notify_completions_payload, opt_complete_payload);
    REGISTER_AS(sse_mgr_notify_listeners_payload, opt_notify_payload);
    REGISTER_AS(sse_mgr_unregister, sse_op_unregister);
    REGISTER_AS(sse_mgr_unregister_all, sse_op_unregister_all);
    REGISTER_AS(sse_mgr_trigger_cleanup, opt_trigger_cleanup);
    REGISTER_AS(sse_mgr_listeners_json, sse_op_listeners_json);
}
