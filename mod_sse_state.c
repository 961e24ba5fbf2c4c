/*
 * Shared state across processes and generations: one anonymous segment
 * holding every registry, and one global mutex, both kept in retained data
 * so that `apachectl graceful` keeps every listener and queued event (the
 * way the MPMs keep the scoreboard). Not mod_slotmem_shm: it makes a new
 * segment per generation, and old-generation children still hold streams.
 * With the pthread mechanism each registry takes a mutex of its own, in
 * the segment, without APR's priority inheritance (docs/design.md).
 */
#include <pthread.h>
#include <signal.h>

#include <httpd.h>
#include <http_config.h>
#include <http_log.h>
#include <ap_mpm.h>
#include <util_mutex.h>

#include <apr_shm.h>
#include <apr_strings.h>

#include "mod_sse_mgr_private.h"
#include "mod_sse_state.h"
#include "mod_sse_bus.h"

/* What a graceful restart hands to the next generation, which may be a
 * rebuilt module: these two fields, in this order, in every build. All
 * else is derived again from the configuration and checked against the
 * segment's own stamp. */
typedef struct {
    apr_shm_t *shm;
    apr_global_mutex_t *mutex;
} sse_retained_t;

static sse_retained_t *retained;

/* This generation's shape, set in post_config (children inherit it). */
static int nregs;
static sse_registry_sizes_t gen_sz;
static apr_size_t reg_size;         /* one registry, aligned */

/* The payloads' byte ring: 1 KB per history entry, at most 64 MB, and
 * never less than four of the largest payload. */
#define SSE_PAYLOAD_PER_EVENT   1024
#define SSE_PAYLOAD_RING_MAX    (64 * 1024 * 1024)

static apr_uint32_t payload_ring(apr_uint32_t history)
{
    apr_uint64_t bytes = (apr_uint64_t)history * SSE_PAYLOAD_PER_EVENT;
    apr_uint64_t least = 4 * (apr_uint64_t)sse_conf_max_message();

    bytes = bytes < SSE_PAYLOAD_RING_MAX ? bytes : SSE_PAYLOAD_RING_MAX;
    return (apr_uint32_t)(bytes > least ? bytes : least);
}

static void sizes_from_conf(sse_registry_sizes_t *sz)
{
    int limit = 0;

    sz->max_listeners = sse_gconf.max_listeners > 0
                            ? (apr_uint32_t)sse_gconf.max_listeners
                            : SSE_DEF_MAX_LISTENERS;
    sz->history = sse_gconf.history > 0 ? (apr_uint32_t)sse_gconf.history
                                        : SSE_DEF_HISTORY;
    sz->payload_bytes = payload_ring(sz->history);
    ap_mpm_query(AP_MPMQ_HARD_LIMIT_DAEMONS, &limit);
    /* old generations linger after graceful: room for two of them */
    sz->max_children = (apr_uint32_t)(limit > 0 ? limit : 16) * 3;
}

/* Number the registries: the main server and each vhost with its own
 * SSEPrefix own one; the other vhosts share the main server's. A vhost
 * with none of our directives has httpd's pointer to the main server's
 * record: give it a record of its own, or it would look like the main
 * server (an owner) to every loop over the vhosts. */
static int assign_registries(apr_pool_t *pconf, server_rec *s)
{
    sse_srv_conf_t *main_conf = sse_srv_conf(s);
    server_rec *vs;
    int n = 0;

    if (main_conf->prefix == NULL) {
        main_conf->prefix = SSE_DEF_PREFIX;
    }
    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf_t *conf = sse_srv_conf(vs);
        if (vs != s && conf == main_conf) {
            conf = apr_pmemdup(pconf, main_conf, sizeof(*conf));
            conf->prefix_set = 0;
            ap_set_module_config(vs->module_config, &sse_mgr_module, conf);
        }
        conf->owner = (vs == s) || conf->prefix_set;
        conf->reg_index = conf->owner ? n++ : main_conf->reg_index;
        if (conf->prefix == NULL) {
            conf->prefix = main_conf->prefix;
        }
    }
    return n;
}

/* A holder that dies inside the lock must not keep it: a robust
 * process-shared pthread mutex is handed on (APR makes it consistent),
 * file locks (fcntl, flock) go with the process, System V semaphores are
 * undone (SEM_UNDO); the registry's dirty mark then starts a repair. A
 * POSIX semaphore stays taken and every process would wait for it
 * forever. Debian's apache2.conf makes file locks the default for every
 * mutex (`Mutex file:... default`): allowed, but the registry lock is
 * taken for every publish and delivery, and pthread is far cheaper. */
static apr_status_t check_mechanism(server_rec *s, apr_global_mutex_t *m)
{
    apr_lockmech_e mech = apr_global_mutex_mech(m);

    if (mech == APR_LOCK_POSIXSEM) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s, SSE_LOGNO(00161)
                     "Mutex sse-mgr: the %s mechanism is not allowed; a "
                     "process dying while it holds the lock would stop every "
                     "other one. Use `Mutex pthread sse-mgr`",
                     apr_global_mutex_name(m));
        return APR_ENOTIMPL;
    }
    if (mech != APR_LOCK_PROC_PTHREAD) {
        ap_log_error(APLOG_MARK, APLOG_INFO, 0, s, SSE_LOGNO(00163)
                     "Mutex sse-mgr: %s works, `Mutex pthread sse-mgr` is "
                     "faster", apr_global_mutex_name(m));
    }
    return APR_SUCCESS;
}

apr_status_t sse_state_check_mutex(apr_pool_t *ptemp, server_rec *s)
{
    apr_global_mutex_t *m = NULL;
    apr_status_t rv;

    /* the Mutex directive's setting is private to util_mutex.c: make one
     * as post_config would, and ask APR which mechanism it got */
    rv = ap_global_mutex_create(&m, NULL, SSE_MUTEX_TYPE, NULL, s, ptemp, 0);
    if (rv != APR_SUCCESS) {
        return rv;                  /* util_mutex.c said why */
    }
    rv = check_mechanism(s, m);
    apr_global_mutex_destroy(m);
    return rv;
}

static apr_status_t make_mutex(server_rec *s)
{
    apr_status_t rv = APR_SUCCESS;

    if (retained->mutex == NULL) {
        rv = ap_global_mutex_create(&retained->mutex, NULL, SSE_MUTEX_TYPE,
                                    NULL, s, s->process->pool, 0);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00010)
                         "cannot create the sse-mgr mutex");
            return rv;
        }
    }
    /* kept across graceful restarts: the one a previous build made too */
    return check_mechanism(s, retained->mutex);
}

/* A lock or unlock failed: the call that took it returns the error; this
 * says so even where the caller has no status to pass on. */
static void log_lock_error(void *baton, apr_status_t rv, const char *what)
{
    ap_log_error(APLOG_MARK, APLOG_ERR, rv, (server_rec *)baton,
                 SSE_LOGNO(00162) "registry mutex: %s failed", what);
}

/* A new segment, every registry formatted. */
static apr_status_t make_segment(server_rec *s)
{
    unsigned char secret[SSE_SECRET_LEN];
    apr_status_t rv;
    sse_registry_t *reg;
    int i;

    if (retained->shm) {
        apr_shm_destroy(retained->shm);   /* children keep their mapping */
        retained->shm = NULL;
    }
    rv = apr_shm_create(&retained->shm, reg_size * (apr_size_t)nregs, NULL,
                        s->process->pool);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00011)
                     "cannot create %" APR_SIZE_T_FMT " bytes of shared "
                     "memory for %d registries", reg_size * nregs, nregs);
        return rv;
    }
    for (i = 0; i < nregs && rv == APR_SUCCESS; i++) {
        rv = sse_id_secret(sse_gconf.secret, secret);
        if (rv == APR_SUCCESS) {
            rv = sse_registry_create(s->process->pool,
                                     (char *)apr_shm_baseaddr_get(
                                         retained->shm) + i * reg_size,
                                     &gen_sz, secret,
                                     (apr_uint64_t)apr_time_now(),
                                     retained->mutex, &reg);
        }
        if (rv == APR_SUCCESS && apr_global_mutex_mech(retained->mutex)
                                 == APR_LOCK_PROC_PTHREAD) {
            /* the same mechanism, without priority inheritance */
            rv = sse_registry_own_lock(reg);
        }
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00012)
                 "shared memory: %d registries of %u listeners, %u events, "
                 "%" APR_SIZE_T_FMT " bytes each", nregs, gen_sz.max_listeners,
                 gen_sz.history, reg_size);
    return rv;
}

/* Can this generation use the segment an earlier one left? Only its
 * size and the first registry's stamp are read: no offset into it is
 * computed until both say it has this generation's layout. */
static int segment_fits(server_rec *s)
{
    apr_size_t have = apr_shm_size_get(retained->shm);
    sse_registry_stamp_t old;
    apr_status_t rv;

    rv = sse_registry_validate(apr_shm_baseaddr_get(retained->shm), have,
                               &gen_sz, &old);
    if (rv == APR_SUCCESS && have == reg_size * (apr_size_t)nregs
        && sse_registry_was_bus(apr_shm_baseaddr_get(retained->shm))
           == sse_bus_on()) {
        return 1;
    }
    if (rv == APR_SUCCESS && have == reg_size * (apr_size_t)nregs) {
        /* the ring's seqs come from the log with a bus, from the segment
         * without: one does not continue the other */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SSE_LOGNO(00213)
                     "SSEBus was %s: starting with empty registries; "
                     "streams held by the old generation end and their "
                     "clients reconnect", sse_bus_on() ? "added" : "removed");
        return 0;
    }
    if (old.magic && old.fingerprint == sse_registry_fingerprint(&old.sz)) {
        /* this build's layout: the configuration changed */
        ap_log_error(APLOG_MARK, APLOG_WARNING, 0, s, SSE_LOGNO(00014)
                     "SSEMaxListeners, SSEHistory, ServerLimit or the set of "
                     "SSEPrefix registries changed (%u/%u/%u in %"
                     APR_SIZE_T_FMT " bytes, now %u/%u/%u in %"
                     APR_SIZE_T_FMT "): starting with empty registries; "
                     "streams held by the old generation end and their "
                     "clients reconnect", old.sz.max_listeners,
                     old.sz.history, old.sz.max_children, have,
                     gen_sz.max_listeners, gen_sz.history,
                     gen_sz.max_children, reg_size * (apr_size_t)nregs);
    }
    else {
        ap_log_error(APLOG_MARK, APLOG_NOTICE, rv, s, SSE_LOGNO(00160)
                     "shared memory layout changed (another build of the "
                     "module): fingerprint %016" APR_UINT64_T_HEX_FMT
                     " in %" APR_SIZE_T_FMT " bytes, now %016"
                     APR_UINT64_T_HEX_FMT " in %" APR_SIZE_T_FMT " bytes; "
                     "starting a fresh segment with empty registries",
                     old.fingerprint, have, sse_registry_fingerprint(&gen_sz),
                     reg_size * (apr_size_t)nregs);
    }
    return 0;
}

/* Attach this process's handles, in @a p (pconf or pchild). */
static apr_status_t attach_all(apr_pool_t *p, server_rec *s, int parent)
{
    char *base = apr_shm_baseaddr_get(retained->shm);
    sse_registry_t **regs = apr_pcalloc(p, nregs * sizeof(*regs));
    server_rec *vs;
    apr_status_t rv;
    int i;

    for (i = 0; i < nregs; i++) {
        rv = sse_registry_attach(p, base + i * reg_size, &gen_sz,
                                 retained->mutex, &regs[i]);
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00013)
                         "shared memory of registry %d is not valid", i);
            return rv;
        }
        sse_registry_set_lock_error(regs[i], log_lock_error, s);
        if (!parent && (rv = sse_registry_prefault(regs[i])) != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_DEBUG, rv, s, SSE_LOGNO(00220)
                         "registry %d: the kernel cannot populate its pages "
                         "at once; they were read one by one", i);
        }
        /* with a bus, only the log writes the ring (mod_sse_bus.c) */
        sse_registry_set_bus(regs[i], sse_bus_on());
    }
    for (vs = s; vs; vs = vs->next) {
        sse_srv_conf(vs)->reg = regs[sse_srv_conf(vs)->reg_index];
    }
    for (i = 0; parent && i < nregs; i++) {
        /* the parent never waits for a child's lock */
        sse_registry_set_nonblocking(regs[i]);
    }
    return APR_SUCCESS;
}

apr_status_t sse_state_post_config(apr_pool_t *pconf, server_rec *s)
{
    apr_status_t rv;
    server_rec *vs;

    nregs = assign_registries(pconf, s);
    sizes_from_conf(&gen_sz);
    reg_size = APR_ALIGN_DEFAULT(sse_registry_size(&gen_sz));
    retained = ap_retained_data_get("mod_sse_mgr");
    if (retained == NULL) {
        retained = ap_retained_data_create("mod_sse_mgr", sizeof(*retained));
    }
    if ((rv = make_mutex(s)) != APR_SUCCESS) {
        return rv;
    }
    if (retained->shm && segment_fits(s)) {
        rv = attach_all(pconf, s, 1);
        if (rv == APR_SUCCESS && sse_gconf.secret) {
            unsigned char secret[SSE_SECRET_LEN];
            sse_id_secret(sse_gconf.secret, secret);
            for (vs = s; vs; vs = vs->next) {
                if (sse_srv_conf(vs)->owner) {
                    sse_registry_set_secret(sse_srv_conf(vs)->reg, secret);
                }
            }
        }
        return rv;
    }
    rv = make_segment(s);
    return rv == APR_SUCCESS ? attach_all(pconf, s, 1) : rv;
}

/* Prefork ends a child from its SIGTERM or SIGHUP handler (stop,
 * restart), on the thread that runs requests, and exits from there. Inside
 * a hold of the registry mutex that runs APR's cleanup of the mutex with
 * the hold cut short: it unlocks and drops this process's reference, the
 * dispatcher may then take the mutex and hold it when the process exits,
 * and APR drops the dead holder's reference once more. Once APR's count
 * of references reaches zero it destroys the mutex, which is kept across
 * restarts: every lock then fails (EINVAL, SSE00162) and nothing works.
 * The registries' own mutexes (pthread) have no such count, but a hold cut
 * short would still leave a repair to the next holder. So these signals
 * wait while this thread holds the mutex. */
static __thread sigset_t guard_saved;

static void guard_enter(void)
{
    sigset_t ending;

    sigemptyset(&ending);
    sigaddset(&ending, SIGTERM);
    sigaddset(&ending, SIGHUP);
    sigaddset(&ending, SIGINT);
    pthread_sigmask(SIG_BLOCK, &ending, &guard_saved);
}

static void guard_leave(void)
{
    pthread_sigmask(SIG_SETMASK, &guard_saved, NULL);
}

static void guard_if_prefork(void)
{
    int threaded = AP_MPMQ_NOT_SUPPORTED;

    ap_mpm_query(AP_MPMQ_IS_THREADED, &threaded);
    if (threaded == AP_MPMQ_NOT_SUPPORTED) {
        sse_registry_set_lock_guard(guard_enter, guard_leave);
    }
}

apr_status_t sse_state_child_init(apr_pool_t *pchild, server_rec *s)
{
    apr_status_t rv;

    if (retained == NULL || retained->shm == NULL) {
        return APR_EGENERAL;
    }
    rv = apr_global_mutex_child_init(&retained->mutex,
                                     apr_global_mutex_lockfile(
                                         retained->mutex), pchild);
    if (rv != APR_SUCCESS) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s, SSE_LOGNO(00015)
                     "cannot attach to the sse-mgr mutex in the child");
        return rv;
    }
    guard_if_prefork();
    return attach_all(pchild, s, 0);
}
