/* top.h - `udpmuxctl top [-n COUNT]`: rates per route, refreshed every
 * second; full-screen on a terminal, plain lines otherwise, NDJSON with -j. */
#ifndef UMXCTL_TOP_H
#define UMXCTL_TOP_H

/* Runs until q, a signal, or `iterations` refreshes (0: no limit).
 * Returns the exit status. */
int cmd_top(unsigned iterations);

#endif
