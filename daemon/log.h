/* log.h - daemon logging to stderr. Under journald (JOURNAL_STREAM set) each
 * line starts with a syslog priority prefix "<N>"; otherwise with a level
 * word. Only the daemon logs; the library never does. */
#ifndef UMXD_LOG_H
#define UMXD_LOG_H

#include <stdint.h>
#include <syslog.h>

void umxd_log_init(int level);
void umxd_log_set_level(int level);
/* Whether a line of this priority would be written (any thread). */
int umxd_log_on(int prio);
void umxd_log(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Rate-limited logging for per-packet conditions: at most `burst` lines per
 * `interval_s` seconds per limiter; the next line that passes reports how
 * many were suppressed. Not thread-safe per limiter (one per thread). */
struct umxd_ratelimit {
    uint64_t window_start_ns;
    unsigned interval_s;
    unsigned burst;
    unsigned printed;
    uint64_t suppressed;
};
#define UMXD_RATELIMIT_INIT(interval, burst_)                                                      \
    {                                                                                              \
        0, (interval), (burst_), 0, 0                                                              \
    }
void umxd_log_rl(struct umxd_ratelimit *rl, int prio, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
