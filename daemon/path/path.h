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
/* The same in two steps: allocate (no thread), then start its thread. */
int umxd_worker_new(struct umxd *d, int id);
int umxd_worker_go(struct umxd *d, int id);
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

/* Upgrade hand-over (handoff.c; the protocol is daemon/upgrade.c). One live
 * flow as it travels to the new process, next to its upstream socket. Both
 * ends run the same UMXD_HANDOFF_VERSION (upgrade.c refuses others), so the
 * record is copied as is. */
/* 2: the steering program's maps move (F_STEER); 3: the route slots and the
 * kernel datapath's queue socket (F_KDP) */
#define UMXD_HANDOFF_VERSION 3
enum {
    UMXD_HO_FLOW,    /* a flow with its own upstream socket (travels with it) */
    UMXD_HO_SHARED,  /* a flow on its worker's shared socket (upsrc says which) */
    UMXD_HO_SHRSOCK, /* a worker's shared socket; backend_idx: 0 IPv4, 1 IPv6 */
    UMXD_HO_KDP      /* a flow of the kernel datapath's queue thread (no socket;
                      * worker is UMXD_HO_KDP_WORKER; daemon/kdp/) */
};
#define UMXD_HO_KDP_WORKER 0xffffu
/* whether a record comes with a descriptor */
static inline int umxd_handoff_has_fd(unsigned kind)
{
    return kind == UMXD_HO_FLOW || kind == UMXD_HO_SHRSOCK;
}
struct umxd_handoff_rec {
    uint16_t worker;
    uint8_t kind; /* UMXD_HO_*: FLOW and SHRSOCK records carry a descriptor */
    uint8_t backend_idx, listener, answered, established, tagged, roam_len;
    char route[UMXD_NAME_MAX];
    char backend[80]; /* the backend as configured: the new config must still have it */
    struct umx_flow_key key;
    struct sockaddr_in6 peer, local, upaddr, upsrc;
    uint8_t roam[UMX_ROAM_MAX];
    int32_t fd;                   /* scratch for sorting; meaningless on the wire */
    uint64_t created_ns, last_ns; /* CLOCK_MONOTONIC: one clock for both processes */
    uint64_t rx_dgrams, rx_bytes, tx_dgrams, tx_bytes;
};
/* fd: the record's descriptor, -1 for a UMXD_HO_SHARED flow */
typedef int umxd_handoff_emit_fn(void *arg, const struct umxd_handoff_rec *rec, int fd);
/* What the new process received, adopted by each worker before it reads. */
struct umxd_handoff_in {
    struct umxd_handoff_rec *rec;
    int *fd; /* the descriptor of rec[i] (-1: none, or adopted, or closed) */
    unsigned n;
    unsigned adopted, closed, workers_done; /* atomic */
};
/* Old process: stop every worker between batches, keeping its flows and
 * sockets (the threads end; the state stays). */
int umxd_path_freeze(struct umxd *d);
/* Old process: restart frozen workers (the upgrade failed). */
int umxd_path_thaw(struct umxd *d);
/* Old process, frozen: calls emit for each worker's shared sockets, then
 * for every flow that can move; *skipped counts those that cannot
 * (attached programs'). */
int umxd_path_export(struct umxd *d, umxd_handoff_emit_fn *emit, void *arg, unsigned *skipped);
/* A record of flow f of route rt: every field the workers' and the queue
 * thread's flows share (the caller sets worker, kind and its own extras). */
struct umx_flow;
void umxd_handoff_rec_of(struct umxd_handoff_rec *rec, struct umx_flow *f,
                         const struct umxd_route *rt);
/* The new route's backend index for the record's backend (by its text as
 * configured), or -1 when it is gone. */
int umxd_handoff_backend(const struct umxd_route *rt, const struct umxd_handoff_rec *rec);
/* The adopted flow's own fields from its record (listener, state, peer,
 * local, datagrams received, creation time), the same for a worker's and
 * the queue thread's flows; the caller sets route, slot and backend. */
void umxd_handoff_fill(struct umx_flow *f, const struct umxd_handoff_rec *rec);
/* New process, before umxd_worker_start: the flows the workers adopt. */
void umxd_path_import_set(struct umxd *d, struct umxd_handoff_in *in);
void umxd_path_import_sort(struct umxd_handoff_in *in);

#endif
