/* The registry mutex: taking it (repairing after a holder that died in
 * it), releasing it, and knowing whether this thread holds one. */
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <apr_strings.h>

#include "sse_registry_int.h"

/* How many registry locks this thread holds: nothing may do I/O or run
 * another module's code meanwhile (sse_registry_lock_held). */
static __thread int locks_held;

int sse_registry_lock_held(void)
{
    return locks_held > 0;
}

/* The children this thread's publishes raised the wake flag of (from
 * clear), to be sent a wake-up once it holds no registry mutex. Each pid
 * once; `all`: more than fit, wake every holder of that registry. */
#define SSE_WAKE_MARKS 64
static __thread struct {
    int n;
    sse_registry_t *all;
    apr_uint32_t pid[SSE_WAKE_MARKS];
} marks;

static sse_waker_fn *waker;

void sse_registry_set_waker(sse_waker_fn *fn)
{
    waker = fn;
}

static void mark_pid(sse_registry_t *reg, apr_uint32_t pid)
{
    int i;

    for (i = 0; i < marks.n; i++) {
        if (marks.pid[i] == pid) {
            return;
        }
    }
    if (marks.n < SSE_WAKE_MARKS) {
        marks.pid[marks.n++] = pid;
    }
    else {
        marks.all = reg;
    }
}

/* Under the mutex, after the entry's commit: the exchange orders the
 * commit before the flag, so a dispatcher that clears the flag after it
 * (sse_registry_wake_taken, acquire) reads a head that includes it. */
static void raise_flag(sse_registry_t *reg, sse_child_t *c)
{
    if (c->pid && __atomic_exchange_n(&c->wake, 1, __ATOMIC_SEQ_CST) == 0) {
        mark_pid(reg, c->pid);
    }
}

void sse_reg_target_add(sse_registry_t *reg, sse_targets_t *t,
                        const sse_slot_t *sl)
{
    apr_uint32_t c1 = sl->holder_child;
    int i;

    if (sl->state != SLOT_CONNECTED || t->n < 0) {
        return;
    }
    if (c1 == 0 || c1 > reg->h->sz.max_children
        || reg->child[c1 - 1].pid != sl->holder_pid) {
        t->n = -1;              /* cannot tell: every child */
        return;
    }
    for (i = 0; i < t->n; i++) {
        if (t->child[i] == c1) {
            return;
        }
    }
    if (t->n < SSE_TARGET_CHILDREN) {
        t->child[t->n++] = c1;
    }
    else {
        t->n = -1;
    }
}

void sse_reg_wake_targets(sse_registry_t *reg, const sse_targets_t *t)
{
    apr_uint32_t i;
    int k;

    if (t->n >= 0) {
        for (k = 0; k < t->n; k++) {
            raise_flag(reg, &reg->child[t->child[k] - 1]);
        }
        return;
    }
    for (i = 0; i < reg->h->sz.max_children; i++) {
        if (reg->child[i].streams) {
            raise_flag(reg, &reg->child[i]);
        }
    }
}

/* Once this thread holds no registry mutex: send what its holds asked
 * for. The marks are taken first: the waker may publish nothing, but a
 * hold it caused would mark anew. */
static void send_marks(void)
{
    apr_uint32_t pid[SSE_WAKE_MARKS], from = 0, more[SSE_WAKE_MARKS];
    sse_registry_t *all = marks.all;
    int i, n = marks.n;

    memcpy(pid, marks.pid, sizeof(*pid) * (apr_size_t)n);
    marks.n = 0;
    marks.all = NULL;
    if (waker == NULL) {
        return;
    }
    for (i = 0; i < n; i++) {
        waker(pid[i]);
    }
    while (all && (n = sse_registry_holders(all, 0, &from, more,
                                            SSE_WAKE_MARKS)) > 0) {
        for (i = 0; i < n; i++) {
            waker(more[i]);
        }
    }
}

void sse_registry_wake_taken(sse_registry_t *reg, apr_uint32_t pid,
                             apr_uint32_t *hint)
{
    apr_uint32_t i = *hint, max = reg->h->sz.max_children;

    if (i >= max || __atomic_load_n(&reg->child[i].pid, __ATOMIC_RELAXED)
                    != pid) {
        for (i = 0; i < max; i++) {
            if (__atomic_load_n(&reg->child[i].pid, __ATOMIC_RELAXED)
                == pid) {
                break;
            }
        }
        if (i == max) {
            return;             /* no entry: no stream here to wake */
        }
        *hint = i;
    }
    /* a full barrier: the head is read after the flag is clear */
    (void)__atomic_exchange_n(&reg->child[i].wake, 0, __ATOMIC_SEQ_CST);
}

/* ---- the registry's own mutex -------------------------------------- */

/* APR's pthread mechanism makes every robust mutex priority-inheriting;
 * this one is the same without it (sse_registry_own_lock). */
typedef char sse_own_mutex_fits[sizeof(pthread_mutex_t)
                                <= sizeof(((sse_reg_header_t *)0)->own_mutex)
                                ? 1 : -1];

apr_status_t sse_registry_own_lock(sse_registry_t *reg)
{
    pthread_mutex_t *mu = (pthread_mutex_t *)reg->h->own_mutex;
    pthread_mutexattr_t attr;
    int err;

    if ((err = pthread_mutexattr_init(&attr)) != 0) {
        return APR_FROM_OS_ERROR(err);
    }
    err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
    if (err == 0) {
        err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
    }
    if (err == 0) {
        err = pthread_mutexattr_setprotocol(&attr, PTHREAD_PRIO_NONE);
    }
    if (err == 0) {
        err = pthread_mutex_init(mu, &attr);
    }
    pthread_mutexattr_destroy(&attr);
    if (err == 0) {
        reg->h->own_lock = 1;
        reg->own = mu;
    }
    return APR_FROM_OS_ERROR(err);
}

/* Holds last a microsecond or two: a taker that finds the mutex busy
 * tries again for about as long before it sleeps in the kernel, so that
 * neither it nor the holder, whose unlock would have to wake it, makes a
 * system call (glibc spins so for PTHREAD_MUTEX_ADAPTIVE_NP, which a
 * robust mutex cannot be). */
#define SSE_LOCK_SPINS 100

static int spin_then_lock(pthread_mutex_t *mu)
{
    int i, err = EBUSY;

    for (i = 0; i < SSE_LOCK_SPINS && err == EBUSY; i++) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
        err = pthread_mutex_trylock(mu);
    }
    return err == EBUSY ? pthread_mutex_lock(mu) : err;
}

/* Take the mutex (try only, for a non-blocking handle). A holder that
 * died in the own mutex leaves it to this thread, to be made consistent;
 * the dirty mark then repairs what it left. */
static apr_status_t take(sse_registry_t *reg)
{
    int err;

    if (reg->own == NULL) {
        return reg->nonblocking ? apr_global_mutex_trylock(reg->lock)
                                : apr_global_mutex_lock(reg->lock);
    }
    err = pthread_mutex_trylock(reg->own);
    if (err == EBUSY && !reg->nonblocking) {
        err = spin_then_lock(reg->own);
    }
    if (err == EOWNERDEAD) {
        err = pthread_mutex_consistent(reg->own);
    }
    return err == EBUSY ? APR_EBUSY : APR_FROM_OS_ERROR(err);
}

static apr_status_t give(sse_registry_t *reg)
{
    if (reg->own == NULL) {
        return apr_global_mutex_unlock(reg->lock);
    }
    return APR_FROM_OS_ERROR(pthread_mutex_unlock(reg->own));
}

/* Called around every hold of a registry mutex in this process. */
static void (*guard_enter)(void);
static void (*guard_leave)(void);

void sse_registry_set_lock_guard(void (*enter)(void), void (*leave)(void))
{
    guard_enter = enter;
    guard_leave = leave;
}

apr_status_t sse_reg_lock(sse_registry_t *reg)
{
    apr_status_t rv;

    if (guard_enter) {
        guard_enter();
    }
    rv = take(reg);
    if (rv != APR_SUCCESS && guard_leave) {
        guard_leave();
    }
    if (reg->nonblocking && APR_STATUS_IS_EBUSY(rv)) {
        return APR_EBUSY;           /* expected: the parent tries later */
    }
    if (rv != APR_SUCCESS) {
        if (reg->lock_error) {
            reg->lock_error(reg->lock_error_baton, rv, "lock");
        }
        return rv;
    }
    /* a robust mutex whose holder died is handed over as taken (APR makes
     * it consistent on EOWNERDEAD): only the mark tells */
    if (reg->h->dirty) {
        sse_reg_repair(reg);        /* the last holder died holding it */
    }
    reg->h->dirty = 1;
    locks_held++;
    return APR_SUCCESS;
}

void sse_reg_unlock(sse_registry_t *reg, apr_status_t *rv)
{
    apr_status_t urv;

    reg->h->dirty = 0;
    locks_held--;
    urv = give(reg);
    if (guard_leave) {
        guard_leave();
    }
    if (locks_held <= 0 && (marks.n || marks.all)) {
        send_marks();           /* no I/O under the lock: only now */
    }
    if (urv != APR_SUCCESS) {
        if (reg->lock_error) {
            reg->lock_error(reg->lock_error_baton, urv, "unlock");
        }
        if (*rv == APR_SUCCESS) {
            *rv = urv;
        }
    }
}

void sse_registry_set_lock_error(sse_registry_t *reg, sse_lock_error_fn *fn,
                                 void *baton)
{
    reg->lock_error = fn;
    reg->lock_error_baton = baton;
}

