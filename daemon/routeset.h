/*
 * routeset.h - the route set's life on the main thread: builds the route set (stable slots,
 * candidate index), publishes it to the workers, collects retired ones on the loop's tick, and
 * reloads (umxd_reload, declared in udpmuxd.h for the control socket). The workers' side of
 * publish/collect is in worker.c.
 */
#ifndef UMXD_ROUTESET_H
#define UMXD_ROUTESET_H

#include <stddef.h>

struct umxd;
struct umxd_config;

/* Publishes d->cfg as the first route set and hooks collection into the
 * main loop's tick. 0, -ENOSPC (route slots), -E2BIG, -ENOMEM. */
int umxd_routeset_start(struct umxd *d);

/* Frees every route set, current and retired (after the workers stopped),
 * or d->cfg alone when none was published. */
void umxd_routeset_fini(struct umxd *d);

/* Sets the kernel steering program's first-byte filter for the running
 * configuration again (after a failed upgrade hand-over). */
void umxd_routeset_steer(struct umxd *d);

#endif
