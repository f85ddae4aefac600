/*
 * path.h - the packet path's only door. The rest of the daemon starts and
 * stops the workers, publishes route sets, sums counters and asks for flow
 * snapshots; it sees nothing of a worker's insides (daemon/path/path_int.h).
 */
#ifndef UMXD_PATH_H
#define UMXD_PATH_H

#include <stdint.h>

#include "engine.h"

struct umxd;
struct umxd_flow_info;

/* Starts worker `id` on the daemon's listeners (main thread). */
int umxd_worker_start(struct umxd *d, int id);
/* Stops and frees every worker. */
void umxd_worker_stop_all(struct umxd *d);
/* Loop iterations of worker i (atomic read), for quiescence checks. */
uint64_t umxd_worker_loops(const struct umxd *d, unsigned i);
/* Wakes every worker (after a departure, a drain...). */
void umxd_wake_workers(struct umxd *d);
/* Publishes a new route set to every worker (main thread). */
void umxd_publish(struct umxd *d, struct umxd_routeset *rs);
/* Frees retired route sets every worker has left behind (main thread). */
void umxd_collect(struct umxd *d);
/* Sums counters over workers (any thread; values are relaxed snapshots). */
void umxd_stats_sum(struct umxd *d, struct umxd_stats *out);
void umxd_route_stats_sum(struct umxd *d, unsigned slot, struct umxd_route_stats *out);
void umxd_backend_stats_sum(struct umxd *d, unsigned slot, unsigned b,
                            struct umxd_backend_stats *out);
/* Payload bytes of dropped datagrams by reason (enum umxd_drop). */
void umxd_drop_bytes_sum(struct umxd *d, struct umxd_drop_bytes *out);
/* Copies up to max active flows (optionally of one route) from every worker;
 * returns the count. Blocks up to ~1 s per worker. */
unsigned umxd_flows_snapshot(struct umxd *d, const char *route, struct umxd_flow_info *out,
                             unsigned max);
/* Creates/frees the shared roaming index (main thread, before workers). */
int umxd_roam_init(struct umxd *d);
void umxd_roam_fini(struct umxd *d);
/* Stable slot for a route name (allocates one the first time). -1 when full. */
int umxd_slot(struct umxd *d, const char *name);

#endif
