/*
 * udpmuxd.h - the daemon's shared state: the main thread (config, reload,
 * control, metrics, health checks) and the workers (one per core, each with
 * its own SO_REUSEPORT member of every listener, its own flow table and
 * upstream sockets; no locks on the packet path).
 */
#ifndef UMXD_H
#define UMXD_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "addrmap.h"
#include "config.h"
#include "internal.h"
#include "flow/flow.h"
#include "io/udp.h"
#include "loop.h"
#include "stats.h"
#include "path/path.h"

#define UMXD_MAX_WORKERS 64
#define UMXD_MAX_SLOTS 256 /* distinct route names over the process lifetime */

/* Backend health, shared: written by workers (passive) and the health
 * checker (active), read by workers when they choose a backend. */
struct umxd_health {
    uint64_t down_until_ns; /* passive: down until then (atomic) */
    int active_down;        /* active checks say down (atomic) */
    int draining;           /* udpmuxctl drain: no new flows, existing ones finish (atomic) */
    unsigned fails, oks;    /* health checker only */
    /* active checks of this backend (health checker writes, main thread
     * reads; reset with the verdict when the address at this index changes) */
    uint64_t checks_sent, checks_ok, checks_failed, transitions;
};

struct umxd_flow_info {
    char route[UMXD_NAME_MAX];
    struct sockaddr_in6 peer; /* AF_INET or AF_INET6 inside */
    struct sockaddr_in6 local;
    char backend[80];
    int worker;
    int kernel; /* carried by the kernel (daemon/kdp/): worker is -1 */
    int established;
    uint64_t age_ms, idle_ms;
    uint64_t rx_datagrams, rx_bytes, tx_datagrams, tx_bytes;
};

struct umxd_worker; /* daemon/path/path_int.h */
struct umxd_steer;  /* daemon/steer/steer.h */

struct umxd {
    struct umxd_config *cfg;  /* current config (main thread) */
    struct umxd_routeset *rs; /* current route set (atomic pointer) */
    uint64_t epoch;
    unsigned nworkers;
    struct umxd_worker *w[UMXD_MAX_WORKERS];
    /* listener sockets [listener][worker]; created before privileges drop */
    int lfd[UMXD_MAX_LISTEN][UMXD_MAX_WORKERS];
    char slot_name[UMXD_MAX_SLOTS][UMXD_NAME_MAX];
    unsigned nslots;
    int drain[UMXD_MAX_SLOTS]; /* atomic: route slot drains (no new flows) */
    struct umxd_health health[UMXD_MAX_SLOTS][UMXD_MAX_BACKENDS];
    uint8_t hashkey[16]; /* SipHash key for flow tables and rendezvous */
    uint64_t start_ns;
    int64_t loaded_at; /* wall-clock seconds of the last (re)load */
    uint64_t reloads_ok, reloads_failed;
    char last_reload_error[512];
    void *attach;            /* attach server state (attach.c), may be NULL */
    void *control;           /* control socket state (control.c) */
    void *metrics;           /* metrics HTTP state (metrics.c) */
    void *guard;             /* foreign-socket watch state */
    void *kdp;               /* kernel datapath (daemon/kdp/), NULL when off */
    struct umxd_loop *loop;  /* the main thread's loop (loop.c) */
    const char *config_path; /* NULL in quick mode */
    uint64_t attach_epoch;   /* atomic: bumped when an attached program leaves */
    /* roaming keys of every worker: a roamed peer's new address may hash to
     * another worker's socket (SO_REUSEPORT); that worker finds the owner
     * here (mutex; only on a miss of its own table) and hands the datagram
     * over through the owner's mailbox */
    pthread_mutex_t roam_mu;
    struct umx_ft *roam_ft;
    uint32_t roam_lens; /* atomic: union of the workers' roam_lens */
    int stopping;
    uint64_t foreign_sockets; /* guard.c: sockets on our ports we did not create (atomic) */
    uint64_t foreign_seen;    /* guard.c: such sockets, each counted once (atomic counter) */
    /* guard.c, per listener: sockets in its SO_REUSEPORT group (ours and
     * any that joined), and of those not ours (atomic, every scan) */
    uint32_t group_sockets[UMXD_MAX_LISTEN], group_foreign[UMXD_MAX_LISTEN];
    int steered[UMXD_MAX_LISTEN]; /* startup.c: steering attached: 0 no, 1 classic, 2 eBPF */
    /* datagrams and bytes attached programs sent out of the shared port,
     * per route slot and in all (attach.c, main thread; summed into tx.*
     * by umxd_stats_sum and umxd_route_stats_sum; atomic) */
    uint64_t attach_tx[UMXD_MAX_SLOTS][2];
    uint64_t attach_tx_all[2];
    int activated;            /* the listeners came from systemd (LISTEN_FDS), not [listen] */
    struct umxd_steer *steer; /* the eBPF reuseport program (steer/steer.h), NULL: classic BPF */
    uint32_t fd_budget;       /* per worker: flows with their own descriptor (RLIMIT_NOFILE) */
    /* upgrade (upgrade.c): the flows the workers adopt at start */
    struct umxd_handoff_in *handoff_in;
    /* upgrade: the old process's kernel datapath queue socket, until
     * umxd_kdp_init adopts it (-1: none) */
    int kdp_fd;
    /* the control/attach/metrics listening sockets: before the module's
     * init, one the old process handed over (-1: none, the module binds
     * its own); after it, the module's own (-1: not open) */
    int mod_lfd[3];
};
enum { UMXD_MOD_CONTROL, UMXD_MOD_ATTACH, UMXD_MOD_METRICS };

/* The main thread's loop (loop.h), which modules (control socket, metrics,
 * attach server, health checks, foreign-socket watch) hook into. */
static inline int umxd_loop_add(struct umxd *d, int fd, uint32_t events, umxd_io_fn *fn, void *arg)
{
    return umxd_loop_watch(d->loop, fd, events, fn, arg);
}
static inline int umxd_loop_del(struct umxd *d, int fd)
{
    return umxd_loop_unwatch(d->loop, fd);
}
/* Calls fn about every 250 ms on the main thread. */
static inline int umxd_tick_add(struct umxd *d, umxd_tick_fn *fn, void *arg)
{
    return umxd_loop_every(d->loop, fn, arg);
}
/* accept4() for the control and attach sockets (see umxd_loop_accept). */
static inline int umxd_accept(struct umxd *d, int lfd)
{
    return umxd_loop_accept(d->loop, lfd);
}

/* Module entry points, each in its own file. Called after the listeners
 * exist and before privileges drop (so they can bind their own sockets). */
int umxd_control_init(struct umxd *d);
int umxd_metrics_init(struct umxd *d);
int umxd_attach_init(struct umxd *d);
int umxd_health_init(struct umxd *d);
int umxd_guard_init(struct umxd *d);
/* Called after privileges are dropped (seccomp filters etc.). */
int umxd_harden(struct umxd *d);

/* routeset.c */
/* Reloads the config file: 0 on success; on failure the old config keeps
 * running and err holds the reason (file:line). Main thread only. */
int umxd_reload(struct umxd *d, char *err, size_t errlen);

/* Attach (attach.c). A worker that misses its flow table asks
 * umxd_attach_find() whether the peer belongs to an attached program (a flow
 * the program started by sending); a datagram classified to an attach route
 * asks umxd_attach_pick() for the program(s) that hold the route. Either way
 * the worker then pins a local flow to (client, gen) and delivers with
 * umxd_attach_deliver() without taking a lock again. gen changes when a
 * client goes away, so a stale pinned flow is noticed and closed. */
int umxd_attach_find(struct umxd *d, const struct sockaddr *peer, uint16_t *client, uint32_t *gen,
                     char *route, size_t routelen);
int umxd_attach_pick(struct umxd *d, const char *route, const struct sockaddr *peer,
                     uint16_t *client, uint32_t *gen);
void umxd_attach_fini(struct umxd *d);
/* Sends n prepared DATA messages to one program with sendmmsg: returns how
 * many went, -ESTALE if (client, gen) is gone, -EAGAIN if its socket is full. */
int umxd_attach_send_batch(struct umxd *d, uint16_t client, uint32_t gen, struct mmsghdr *mm,
                           unsigned n);
/* 1 if (client, gen) is still attached (workers sweep stale pinned flows). */
int umxd_attach_alive(struct umxd *d, uint16_t client, uint32_t gen);
/* 0 delivered, -ESTALE client gone, -EAGAIN its socket is full, -ENOENT
 * nobody holds the route (fanout). */
int umxd_attach_deliver(struct umxd *d, uint16_t client, uint32_t gen, const char *route,
                        const struct umx_rx_slot *s);

/* What attach.c itself counts: datagrams to and from attached programs and
 * the ones it dropped, by reason (the workers count the route's drops and
 * datagrams of an attach route nobody holds, drop.unclaimed). */
#define UMXD_ATTACH_DROPS(X)                                                                       \
    X(full, "full", "the program's socket was full (it reads too slowly)")                         \
    X(gone, "gone", "writing to the program failed (it was leaving)")                              \
    X(bad_message, "bad_message", "a message from the program that is no valid datagram")          \
    X(no_listener, "no_listener", "no listener of the peer's family for the program's datagram")   \
    X(send_error, "send_error", "sending the program's datagram out of the shared port failed")
struct umxd_attach_stats {
    uint64_t programs;  /* attached now (a route claimed) */
    uint64_t delivered; /* datagrams written to programs */
    uint64_t sent;      /* datagrams programs sent out of the shared port */
    uint64_t refused;   /* connections refused (full, per-uid cap, no hello in time) */
#define UMXD_ATT_DROP_FIELD(f, n, h) uint64_t drop_##f;
    UMXD_ATTACH_DROPS(UMXD_ATT_DROP_FIELD)
#undef UMXD_ATT_DROP_FIELD
};
/* Main thread; all zero when no attach socket is open. */
void umxd_attach_stats(struct umxd *d, struct umxd_attach_stats *st);

#endif
