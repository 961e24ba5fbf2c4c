/* sse_registry and its mutex: a failure to take or release it is never
 * swallowed, a holder that dies inside it (robust pthread mutex) hands
 * it on with the indexes repaired, and the registry's own mutex is
 * released on unlock, not handed to a waiter that has yet to run. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <apr_shm.h>
#include <apr_thread_proc.h>

#include "fixture.h"
#include "src/sse_registry_int.h"
#include "unit.h"

typedef struct {
    int calls;
    apr_status_t rv;
    const char *what;
} lock_errors_t;

static void note_lock_error(void *baton, apr_status_t rv, const char *what)
{
    lock_errors_t *le = baton;

    le->calls++;
    le->rv = rv;
    le->what = what;
}

/* @a r takes the mutex its holder died in: no lock error, one repair. */
static void check_taken_over(sse_registry_t *r)
{
    lock_errors_t le = {0, APR_SUCCESS, NULL};
    sse_stats_t st;

    sse_registry_set_lock_error(r, note_lock_error, &le);
    CHECK_RV(APR_ENOENT, sse_registry_lookup(r, "nobody"),
             "the mutex is handed on when its holder dies");
    CHECK_INT(0, le.calls, "taking it over is not an error");
    memset(&st, 0, sizeof(st));
    sse_registry_stats(r, &st);
    CHECK_INT(1, (int)st.repairs, "the dirty mark started one repair");
}

/* A child process takes @a reg's mutex and dies holding it. */
static int die_holding(sse_registry_t *reg)
{
    int status = 0;
    pid_t pid = fork();

    if (pid == 0) {
        sse_reg_lock(reg);
        _exit(0);
    }
    return pid > 0 && waitpid(pid, &status, 0) == pid;
}

UNIT_TEST(test_failed_unlock_is_reported_and_returned)
{
    fx_t fx;
    lock_errors_t le = {0, APR_SUCCESS, NULL};
    apr_global_mutex_t *m;
    apr_status_t rv = APR_SUCCESS;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    /* a robust pthread mutex refuses an unlock by a thread not holding it:
     * the one failure a test can cause on demand */
    REQUIRE_RV(APR_SUCCESS,
               apr_global_mutex_create(&m, NULL, APR_LOCK_PROC_PTHREAD,
                                       fx.pool), "pthread mutex");
    fx.reg->lock = m;
    sse_registry_set_lock_error(fx.reg, note_lock_error, &le);
    sse_reg_unlock(fx.reg, &rv);
    CHECK(rv != APR_SUCCESS, "the unlock's error reaches the caller");
    CHECK_INT(1, le.calls, "and is reported once");
    CHECK_STR("unlock", le.what, "as an unlock");
    CHECK(le.rv == rv, "with its status");
}

UNIT_TEST(test_holder_dying_in_the_pthread_lock_hands_it_on_repaired)
{
    fx_t fx;
    sse_registry_sizes_t sz = {4, 8, 2, 4096};
    unsigned char secret[SSE_SECRET_LEN] = {0};
    apr_global_mutex_t *m;
    apr_shm_t *shm;
    sse_registry_t *reg, *parent;

    if (!fx_open(&fx, 4, 8, 2)) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS,
               apr_shm_create(&shm, sse_registry_size(&sz), NULL, fx.pool),
               "anonymous shared memory");
    REQUIRE_RV(APR_SUCCESS,
               apr_global_mutex_create(&m, NULL, APR_LOCK_PROC_PTHREAD,
                                       fx.pool), "pthread mutex");
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_create(fx.pool, apr_shm_baseaddr_get(shm), &sz,
                                   secret, 0, m, &reg), "create");
    REQUIRE(die_holding(reg), "fork");
    /* only try the mutex, as the parent does: a lock that stayed taken
     * fails this test instead of hanging it */
    REQUIRE_RV(APR_SUCCESS,
               sse_registry_attach(fx.pool, apr_shm_baseaddr_get(shm), &sz,
                                   m, &parent), "attach");
    sse_registry_set_nonblocking(parent);
    check_taken_over(parent);
}

/* A registry in anonymous shared memory (fork shares it), with its own
 * mutex, and a second, non-blocking handle on it as the parent has. */
static int own_lock_registry(fx_t *fx, sse_registry_t **reg,
                             sse_registry_t **trier)
{
    sse_registry_sizes_t sz = {4, 8, 2, 4096};
    unsigned char secret[SSE_SECRET_LEN] = {0};
    apr_shm_t *shm;

    if (!fx_open(fx, 4, 8, 2)
        || !CHECK_RV(APR_SUCCESS, apr_shm_create(&shm, sse_registry_size(&sz),
                                                 NULL, fx->pool),
                     "anonymous shared memory")
        || !CHECK_RV(APR_SUCCESS,
                     sse_registry_create(fx->pool, apr_shm_baseaddr_get(shm),
                                         &sz, secret, 0, fx->lock, reg),
                     "create")
        || !CHECK_RV(APR_SUCCESS, sse_registry_own_lock(*reg), "own lock")
        || !CHECK_RV(APR_SUCCESS,
                     sse_registry_attach(fx->pool, apr_shm_baseaddr_get(shm),
                                         &sz, fx->lock, trier), "attach")) {
        return 0;
    }
    sse_registry_set_nonblocking(*trier);
    return 1;
}

UNIT_TEST(test_a_handle_attached_later_takes_the_registry_own_lock)
{
    fx_t fx;
    sse_registry_t *reg, *trier;
    apr_status_t rv = APR_SUCCESS;

    if (!own_lock_registry(&fx, &reg, &trier)) {
        return;
    }
    REQUIRE_RV(APR_SUCCESS, sse_reg_lock(reg), "the creator takes it");
    CHECK_RV(APR_EBUSY, sse_registry_lookup(trier, "nobody"),
             "the other handle finds it taken, not the free APR mutex");
    sse_reg_unlock(reg, &rv);
    CHECK_RV(APR_SUCCESS, rv, "released");
    CHECK_RV(APR_ENOENT, sse_registry_lookup(trier, "nobody"),
             "and then takes it");
}

UNIT_TEST(test_holder_dying_in_the_own_lock_hands_it_on_repaired)
{
    fx_t fx;
    sse_registry_t *reg, *trier;

    if (!own_lock_registry(&fx, &reg, &trier)) {
        return;
    }
    REQUIRE(die_holding(reg), "fork");
    check_taken_over(trier);
    CHECK_RV(APR_ENOENT, sse_registry_lookup(reg, "nobody"),
             "and it stays usable");
}

typedef struct {
    sse_registry_t *reg;
    volatile int started;
} waiter_t;

static void *APR_THREAD_FUNC wait_for_lock(apr_thread_t *t, void *data)
{
    waiter_t *w = data;
    apr_status_t rv;

    w->started = 1;
    rv = sse_reg_lock(w->reg);
    if (rv == APR_SUCCESS) {
        sse_reg_unlock(w->reg, &rv);
    }
    apr_thread_exit(t, rv);
    return NULL;
}

/* Release the lock while a thread waits in it, and try it again at once:
 * @return 1 when the try got it (it was released), 0 when the waiter had
 * it (handed over), -1 on a failure (recorded). */
static int retake_over_a_waiter(fx_t *fx, sse_registry_t *reg,
                                sse_registry_t *trier)
{
    waiter_t w = {reg, 0};
    apr_thread_t *t;
    apr_status_t rv = APR_SUCCESS, trv;
    int got;

    if (!CHECK_RV(APR_SUCCESS, sse_reg_lock(reg), "lock")
        || !CHECK_RV(APR_SUCCESS, apr_thread_create(&t, NULL, wait_for_lock,
                                                    &w, fx->pool),
                     "waiter")) {
        return -1;
    }
    while (!w.started) {
        apr_sleep(apr_time_from_msec(1));
    }
    apr_sleep(apr_time_from_msec(10));      /* asleep in the lock by now */
    sse_reg_unlock(reg, &rv);
    got = sse_reg_lock(trier) == APR_SUCCESS;
    if (got) {
        sse_reg_unlock(trier, &rv);
    }
    apr_thread_join(&trv, t);
    return CHECK_RV(APR_SUCCESS, trv, "the waiter took it in the end")
           ? got : -1;
}

/* APR's robust pthread mutexes inherit priority, and the kernel hands a
 * contended one to the waiter it wakes: no one else may take it until
 * that waiter has run. A burst of short holds then waits on the
 * scheduler, holding every worker thread (docs/design.md, Shared state).
 * The registry's own mutex is free once released. */
UNIT_TEST(test_the_own_lock_is_released_not_handed_to_a_sleeping_waiter)
{
    fx_t fx;
    sse_registry_t *reg, *trier;
    int i, got, free_again = 0;

    if (!own_lock_registry(&fx, &reg, &trier)) {
        return;
    }
    for (i = 0; i < 20; i++) {
        if ((got = retake_over_a_waiter(&fx, reg, trier)) < 0) {
            return;
        }
        free_again += got;
    }
    CHECK(free_again >= 10, "released with a waiter asleep in it, the lock "
          "was free at once in %d of 20 tries (handed to the waiter in "
          "the others)", free_again);
}
