/**
 * @file sse_clock.h
 * @brief The clock of the intervals this module waits out.
 *
 * Heartbeats, the park grace, Timeout of a blocked stream, retries and
 * deadlines are measured on CLOCK_MONOTONIC: a step of the wall clock (NTP
 * setting it at boot, a virtual machine restored or migrated) neither
 * stops heartbeats for the length of a step back nor ends a grace early
 * on a step forward. Times that leave the process (registered-ts, last
 * activity, the first sequence number, Redis' TIME) stay on the wall
 * clock. Values of this clock mean nothing to another host, and are
 * never stored in the shared segment.
 */
#ifndef SSE_CLOCK_H
#define SSE_CLOCK_H

#include <time.h>

#include <apr_time.h>

/** Now on the monotonic clock, in microseconds (an apr_time_t whose
 * zero is unspecified: only differences mean something). */
static APR_INLINE apr_time_t sse_clock(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (apr_time_t)ts.tv_sec * APR_USEC_PER_SEC + ts.tv_nsec / 1000;
}

#endif
