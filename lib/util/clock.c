/*
 * clock.c - the monotonic clock. Only the I/O shell reads it (lib/mux/, the
 * daemon's loops); the pure cores take the time as a parameter.
 */
#include <time.h>

#include "internal.h"

uint64_t umx_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
