/* The registry mutex: taking it (repairing after a holder that died in
 * it), releasing it, and knowing whether this thread holds one. */
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
    rv = reg->nonblocking ? apr_global_mutex_trylock(reg->lock)
                          : apr_global_mutex_lock(reg->lock);
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
    urv = apr_global_mutex_unlock(reg->lock);
    if (guard_leave) {
        guard_leave();
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

