/*
 * loop.h - the main thread's event loop: descriptors watched with epoll, a
 * 250 ms tick, and accept() that survives a full descriptor table.
 *
 * A leaf, like redis' ae.c: it knows nothing of the daemon. The owner
 * pointer given to umxd_loop_new() is handed to every callback untouched
 * (the daemon passes its struct umxd; the loop never looks inside).
 */
#ifndef UMXD_LOOP_H
#define UMXD_LOOP_H

#include <stdint.h>

struct umxd;
struct umxd_loop;

typedef void umxd_io_fn(struct umxd *d, int fd, uint32_t events, void *arg);
typedef void umxd_tick_fn(struct umxd *d, uint64_t now_ns, void *arg);

#define UMXD_LOOP_TICK_MS 250

/* NULL on failure (errno set). */
struct umxd_loop *umxd_loop_new(struct umxd *owner);
/* Closes the loop's own descriptors; watched ones belong to their callers. */
void umxd_loop_free(struct umxd_loop *l);

/* Watches fd for events (EPOLLIN...): 0, -ENOSPC, or -errno of epoll_ctl. */
int umxd_loop_watch(struct umxd_loop *l, int fd, uint32_t events, umxd_io_fn *fn, void *arg);
/* Stops watching fd: 0 or -ENOENT. */
int umxd_loop_unwatch(struct umxd_loop *l, int fd);
/* Calls fn every UMXD_LOOP_TICK_MS, in registration order: 0 or -ENOSPC. */
int umxd_loop_every(struct umxd_loop *l, umxd_tick_fn *fn, void *arg);
/* Waits up to timeout_ms for events and runs their callbacks (and the
 * ticks when due): the number of events, or -errno (not EINTR). */
int umxd_loop_once(struct umxd_loop *l, int timeout_ms);

/* accept4() of a nonblocking, close-on-exec connection. When the
 * descriptor table is full (EMFILE/ENFILE) a pending connection would keep
 * the listener readable and spin the loop: a spare descriptor is given up
 * to accept that connection and close it at once, then taken back. Returns
 * the new descriptor or -errno (-EMFILE after such a drop). */
int umxd_loop_accept(struct umxd_loop *l, int lfd);

#endif
