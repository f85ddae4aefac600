/* log.c - see log.h. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

static int max_level = LOG_INFO;
static int journald = -1;

void umxd_log_init(int level)
{
    max_level = level;
    journald = getenv("JOURNAL_STREAM") != NULL;
}

void umxd_log_set_level(int level)
{
    /* workers read it (umxd_log_on) while a reload sets it */
    __atomic_store_n(&max_level, level, __ATOMIC_RELAXED);
}

int umxd_log_on(int prio)
{
    return prio <= __atomic_load_n(&max_level, __ATOMIC_RELAXED);
}

static void vlog(int prio, const char *fmt, va_list ap)
{
    static const char *names[] = {"emerg",   "alert",  "crit", "error",
                                  "warning", "notice", "info", "debug"};
    char line[1024];
    int n;
    if (!umxd_log_on(prio))
        return;
    if (journald < 0)
        journald = getenv("JOURNAL_STREAM") != NULL;
    if (journald)
        n = snprintf(line, sizeof(line), "<%d>", prio);
    else
        n = snprintf(line, sizeof(line), "udpmuxd: %s: ", names[prio & 7]);
    if (n < 0)
        return;
    vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    /* one write per line so lines from several threads do not interleave */
    fprintf(stderr, "%s\n", line);
}

void umxd_log(int prio, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}

void umxd_log_rl(struct umxd_ratelimit *rl, int prio, const char *fmt, ...)
{
    struct timespec ts;
    uint64_t now;
    va_list ap;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    if (now - rl->window_start_ns >= (uint64_t)rl->interval_s * 1000000000u) {
        if (rl->suppressed)
            umxd_log(prio, "%llu similar messages suppressed in the last %us",
                     (unsigned long long)rl->suppressed, rl->interval_s);
        rl->window_start_ns = now;
        rl->printed = 0;
        rl->suppressed = 0;
    }
    if (rl->printed >= rl->burst) {
        rl->suppressed++;
        return;
    }
    rl->printed++;
    va_start(ap, fmt);
    vlog(prio, fmt, ap);
    va_end(ap);
}
