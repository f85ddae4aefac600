/*
 * procmetrics.h - the standard process_* metrics (procmetrics.c).
 */
#ifndef UMXD_PROCMETRICS_H
#define UMXD_PROCMETRICS_H

#include "textbuf.h"

/* Appends process_cpu_seconds_total, process_resident/virtual_memory_bytes,
 * process_open_fds, process_max_fds and process_start_time_seconds (start:
 * Unix time of the start) to b. */
void umxd_render_process(struct sb *b, double start);

#endif
