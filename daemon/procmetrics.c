/*
 * procmetrics.c - the standard Prometheus process_* metrics (CPU, memory,
 * descriptors, start time) that every exporter offers, read from this
 * process's own /proc entries and limits at render time.
 */
#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "procmetrics.h"

/* The standard process_* metrics (Prometheus client conventions), from
 * the kernel's own accounting; a value that cannot be read is left out. */
void umxd_render_process(struct sb *b, double start)
{
    struct rusage ru;
    struct rlimit rl;
    FILE *f;
    DIR *dir;
    if (getrusage(RUSAGE_SELF, &ru) == 0) {
        prom_family(b, "process_cpu_seconds_total", "counter", "User and system CPU time spent.");
        sb_printf(b, "process_cpu_seconds_total %.6f\n",
                  (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                      (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    }
    f = fopen("/proc/self/statm", "re");
    if (f) {
        unsigned long size, resident;
        if (fscanf(f, "%lu %lu", &size, &resident) == 2) {
            long page = sysconf(_SC_PAGESIZE);
            prom_family(b, "process_resident_memory_bytes", "gauge", "Resident memory size.");
            sb_printf(b, "process_resident_memory_bytes %lu\n", resident * (unsigned long)page);
            prom_family(b, "process_virtual_memory_bytes", "gauge", "Virtual memory size.");
            sb_printf(b, "process_virtual_memory_bytes %lu\n", size * (unsigned long)page);
        }
        fclose(f);
    }
    dir = opendir("/proc/self/fd");
    if (dir) {
        unsigned long n = 0;
        struct dirent *e;
        while ((e = readdir(dir)) != NULL)
            n += e->d_name[0] != '.';
        closedir(dir);
        prom_family(b, "process_open_fds", "gauge", "Open file descriptors.");
        sb_printf(b, "process_open_fds %lu\n", n > 0 ? n - 1 : 0); /* less the directory's */
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        prom_family(b, "process_max_fds", "gauge", "Maximum number of open file descriptors.");
        sb_printf(b, "process_max_fds %llu\n", (unsigned long long)rl.rlim_cur);
    }
    prom_family(b, "process_start_time_seconds", "gauge", "Start time of the process (Unix time).");
    sb_printf(b, "process_start_time_seconds %.3f\n", start);
}
