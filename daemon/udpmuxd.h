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

#define UMXD_MAX_WORKERS 64
#define UMXD_MAX_SLOTS 256 /* distinct route names over the process lifetime */

/* An immutable, published route set. Workers switch to a new one between
 * batches; the main thread frees an old one once every worker has moved on. */
struct umxd_routeset {
    uint64_t epoch;
    struct umxd_config *cfg;        /* owns the compiled rules */
    uint16_t slot[UMXD_MAX_ROUTES]; /* route index -> stable stats/drain slot */
    struct umx_rule_index idx;      /* cfg's routes by first byte, for classify() */
    struct umxd_routeset *older;    /* retired sets waiting to be freed */
};

/* Backend health, shared: written by workers (passive) and the health
 * checker (active), read by workers when they choose a backend. */
struct umxd_health {
    uint64_t down_until_ns; /* passive: down until then (atomic) */
    int active_down;        /* active checks say down (atomic) */
    int draining;           /* udpmuxctl drain: no new flows, existing ones finish (atomic) */
    unsigned fails, oks;    /* health checker only */
};

struct umxd_flow_info {
    char route[UMXD_NAME_MAX];
    struct sockaddr_in6 peer; /* AF_INET or AF_INET6 inside */
    struct sockaddr_in6 local;
    char backend[80];
    int worker;
    int established;
    uint64_t age_ms, idle_ms;
    uint64_t rx_datagrams, rx_bytes, tx_datagrams, tx_bytes;
};

struct umxd;

struct umxd_worker {
    struct umxd *d;
    int id;
    pthread_t thread;
    int epfd;
    int evfd; /* wake-up: new route set, stop, snapshot request */
    int tfd;  /* timerfd: flow expiry */
    int pub_fd[UMXD_MAX_LISTEN];
    int pub_family[UMXD_MAX_LISTEN];
    uint16_t pub_port[UMXD_MAX_LISTEN]; /* network order */
    struct umx_ft *ft;
    struct umx_rxb *rxb;   /* shared-port receive batch */
    struct umx_rxb *uprxb; /* upstream receive batch */
    struct umx_probe_state *pstate;
    struct umxd_routeset *rs;
    uint64_t seen_epoch; /* atomic: last route set epoch adopted */
    void *tx;            /* worker.c private batch state */
    void *rate;          /* worker.c private rate-limit table */
    uint32_t gen;        /* flow generation counter (stale epoll events) */
    int gso_ok;          /* cleared if the kernel refuses UDP_SEGMENT */
    uint32_t roam_lens;  /* bit n: a roaming key of n bytes was learnt */
    struct umxd_stats st;
    struct umxd_route_stats rst[UMXD_MAX_SLOTS];
    /* flow snapshot mailbox (main asks, worker answers between batches) */
    pthread_mutex_t snap_mu;
    pthread_cond_t snap_cv;
    int snap_req, snap_done;
    struct umxd_flow_info *snap_out;
    unsigned snap_max, snap_n;
    char snap_route[UMXD_NAME_MAX];
    int stop;
    uint64_t loops; /* atomic: loop iterations, for quiescence checks */
    void *mbox;     /* worker.c: datagrams handed over by other workers */
    uint64_t attach_epoch_seen;
    /* upstream = shared: one socket per family ([0] IPv4, [1] IPv6) for
     * every such flow, and a map from a flow's source address to its index */
    int shr_fd[2];
    struct umxd_addrmap shr;
    uint32_t fd_flows; /* flows holding their own upstream descriptor */
};

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
    uint32_t fd_budget;       /* per worker: flows with their own descriptor (RLIMIT_NOFILE) */
};

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

/* worker.c */
int umxd_worker_start(struct umxd *d, int id);
void umxd_worker_stop_all(struct umxd *d);
/* Publishes a new route set to every worker (main thread). */
void umxd_publish(struct umxd *d, struct umxd_routeset *rs);
/* Frees retired route sets every worker has left behind (main thread). */
void umxd_collect(struct umxd *d);
/* Sums counters over workers (any thread; values are relaxed snapshots). */
void umxd_stats_sum(struct umxd *d, struct umxd_stats *out);
void umxd_route_stats_sum(struct umxd *d, unsigned slot, struct umxd_route_stats *out);
/* Copies up to max active flows (optionally of one route) from every worker;
 * returns the count. Blocks up to ~1 s per worker. */
unsigned umxd_flows_snapshot(struct umxd *d, const char *route, struct umxd_flow_info *out,
                             unsigned max);
/* Creates/frees the shared roaming index (main thread, before workers). */
int umxd_roam_init(struct umxd *d);
void umxd_roam_fini(struct umxd *d);
/* Stable slot for a route name (allocates one the first time). -1 when full. */
int umxd_slot(struct umxd *d, const char *name);

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
#define UMXD_ATTACH_FANOUT 0xffffu
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
/* Wakes every worker (after a departure, a drain...). */
void umxd_wake_workers(struct umxd *d);
/* 0 delivered, -ESTALE client gone, -EAGAIN its socket is full, -ENOENT
 * nobody holds the route (fanout). */
int umxd_attach_deliver(struct umxd *d, uint16_t client, uint32_t gen, const char *route,
                        const struct umx_rx_slot *s);

#endif
