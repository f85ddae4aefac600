/*
 * path_int.h - the packet path's private header: the worker and its send
 * queues, shared by the files of daemon/path/ and by nothing else. One
 * prototype block per file, so this header is the map of the path:
 *
 *   worker.c   the thread: epoll, the receive batch loop, timers, busy-poll
 *   engine.c   decide (pure; engine.h)
 *   act.c      carry a verdict out: flows, queues, built-in replies, holds,
 *              and every drop counted in one place (count_drop)
 *   upsock.c   upstream sockets: one per flow, or the shared one
 *   txq.c      queues to backends, peers and attached programs; flushes
 *   replies.c  backend -> peer: upstream and shared sockets, ICMP errors
 *   xworker.c  cross-worker roaming: shared key table and mailboxes
 *   pool.c     the main thread's side: start, stop, publish, sums, snapshots
 */
#ifndef UMXD_PATH_INT_H
#define UMXD_PATH_INT_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "attach/proto.h"
#include "engine.h"
#include "path.h"
#include "proxy.h"
#include "log.h"
#include "udpmuxd.h"

#define EV_PUB 1u
#define EV_UP 2u
#define EV_WAKE 3u
#define EV_TIMER 4u
#define EV_SHR 5u /* the shared upstream socket of a family (upstream = shared) */

static inline uint64_t ev_make(unsigned type, uint32_t gen, uint32_t idx)
{
    return (uint64_t)type << 56 | (uint64_t)(gen & 0xffffff) << 32 | idx;
}

/* The kernel caps one GSO send at 64 segments (UDP_MAX_SEGMENTS) and at
 * 64 KiB of payload. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
#define PASSIVE_DOWN_DEFAULT_NS (10ull * 1000000000ull)

/* Datagrams held while a probe waits for more of the same peer (a QUIC
 * ClientHello split over several Initials): copied, since the receive buffer
 * is reused, into a small fixed pool; when the peer's flow is decided they go
 * out first, in order. A full pool drops the oldest (counted): the client
 * retransmits its Initial. */
#define HOLD_SLOTS 64
#define HOLD_BYTES 2048
#define HOLD_NS (3ull * 1000000000ull)

struct hold {
    uint64_t t;
    struct sockaddr_in6 peer;
    uint16_t len;
    uint8_t state; /* 0 free, 1 held, 2 queued (freed after the flush) */
    uint8_t data[HOLD_BYTES];
};

/* One queued datagram towards a backend. */
struct upq {
    struct umx_flow *f;
    const uint8_t *data;
    uint32_t len;
};

/* One queued reply out of the shared port. */
struct pubq {
    uint8_t listener;
    const uint8_t *data;
    uint32_t len;
    struct sockaddr_in6 peer;
    struct sockaddr_in6 local;
    uint32_t flow; /* flow index, UINT32_MAX for built-in replies */
};

/* One queued datagram for an attached program (header and payload as two
 * iovecs: no copy). */
struct attq {
    struct umx_flow *f;
    uint16_t client;
    uint32_t gen;
    const uint8_t *data;
    uint32_t len;
    uint8_t hdr[UMX_ATT_DATA_HDR];
};

struct txstate {
    unsigned cap; /* entries of up, pub, att, mm... (2 x batch) */
    unsigned nup, npub, natt;
    struct upq *up;
    struct pubq *pub;
    struct attq *att;
    /* built-in replies need their own bytes (the request buffer is reused) */
    uint8_t *replybuf;
    size_t replyoff, replycap;
    struct mmsghdr *mm;
    struct iovec *iov; /* cap single slots, then GSO_MAX_SEGS per message */
    uint8_t (*ctrl)[UMX_TX_CTRL];
    struct sockaddr_storage *names;
    uint8_t (*pxhdr)[UMX_PROXY_V2_MAX];
    unsigned *counts; /* datagrams per message (GSO runs) */
    uint32_t *first;  /* first queue entry per message */
    struct mmsghdr *attmm;
    struct iovec *attiov;
};

struct mbox;

struct umxd_steer_peers; /* steer/steer.h */
/* flowlog.c: the debug flow log's token bucket (per worker) */
struct flowlog_bucket {
    uint64_t last_ns, credit_ns, suppressed;
};

struct umxd_worker {
    struct umxd *d;
    int id;
    pthread_t thread;
    int epfd;
    int evfd; /* wake-up: new route set, stop, snapshot request, mailbox */
    int tfd;  /* timerfd: flow expiry */
    int pub_fd[UMXD_MAX_LISTEN];
    int pub_family[UMXD_MAX_LISTEN];
    uint16_t pub_port[UMXD_MAX_LISTEN]; /* network order */
    uint32_t pub_ovfl[UMXD_MAX_LISTEN]; /* last SO_RXQ_OVFL count seen */
    struct umx_ft *ft;
    struct umxd_steer_peers *steer_peers; /* the kernel map of our peers (NULL: none) */
    struct umx_rxb *rxb;                  /* shared-port receive batch */
    struct umx_rxb *uprxb;                /* upstream receive batch */
    struct umx_probe_state *pstate;
    struct umxd_routeset *rs; /* the route set this worker runs; read config here, never d->cfg */
    uint64_t seen_epoch;      /* atomic: last route set epoch adopted */
    struct umxd_engine eng;
    struct umxd_env env;
    struct umxd_rate_slot *rate_flows, *rate_replies;
    struct umxd_prefix_slot *prefix;
    struct umxd_session *sessions;
    uint64_t backlog_since; /* first of the current run of full batches, 0: none */
    struct txstate tx;
    struct hold *hold;
    unsigned held; /* slots in state 1 */
    int gso_ok;    /* cleared if the kernel refuses UDP_SEGMENT */
    struct umxd_stats st;
    struct umxd_route_stats rst[UMXD_MAX_SLOTS];
    struct umxd_backend_stats bst[UMXD_MAX_SLOTS][UMXD_MAX_BACKENDS];
    struct umxd_drop_bytes dropb;
    /* flow snapshot mailbox (main asks, worker answers between batches) */
    pthread_mutex_t snap_mu;
    pthread_cond_t snap_cv;
    int snap_req, snap_done;
    struct umxd_flow_info *snap_out;
    unsigned snap_max, snap_n;
    char snap_route[UMXD_NAME_MAX];
    int stop; /* 1: stop and close flows; 2: freeze for an upgrade (handoff.c) */
    int handoff_done;
    uint64_t loops;    /* atomic: loop iterations, for quiescence checks */
    struct mbox *mbox; /* datagrams handed over by other workers */
    uint64_t attach_epoch_seen;
    /* upstream = shared: one socket per family ([0] IPv4, [1] IPv6) for
     * every such flow, and a map from a flow's source address to its index */
    int shr_fd[2];
    struct umxd_addrmap shr;
    uint32_t fd_flows;              /* flows holding their own upstream descriptor */
    struct umxd_ratelimit down_log; /* passive backend-down lines (per worker) */
    struct flowlog_bucket flog;     /* debug flow log lines (per worker) */
};

/* A flow's backend whose index left the route's list at a reload (the flow
 * still runs to the old address, but no row counts for it any more). */
#define UMXD_BACKEND_GONE 0xffu

/* The per-backend row a forward flow counts in, NULL for attach and relay
 * flows and for a backend that left the list. */
static inline struct umxd_backend_stats *bst_of(struct umxd_worker *w, const struct umxd_flow *fl)
{
    if (fl->attach || fl->relay || fl->backend >= UMXD_MAX_BACKENDS || fl->slot >= UMXD_MAX_SLOTS)
        return NULL;
    return &w->bst[fl->slot][fl->backend];
}

static inline const struct umxd_route *route_of(const struct umxd_worker *w, unsigned r)
{
    return &w->rs->cfg->routes[r];
}

/* act.c */
void act_ingress(struct umxd_worker *w, const struct umxd_verdict *v, struct umx_rx_slot *s,
                 unsigned li, uint64_t now);
void act_reply(struct umxd_worker *w, struct umx_flow *f, struct umx_rx_slot *s, uint64_t now);
void count_drop(struct umxd_worker *w, int slot, enum umxd_drop why, uint64_t n, uint64_t bytes);
void remap_backend_stats(struct umxd_worker *w, const struct umxd_routeset *old);
void close_flow(struct umxd_worker *w, struct umx_flow *f, const char *why);
void release_cb(struct umx_flow *f, void *arg, int reason);
void remove_flow(struct umxd_worker *w, struct umx_flow *f, const char *why);
void remap_flows(struct umxd_worker *w, const struct umxd_routeset *old);
void hold_gc(struct umxd_worker *w);
void mark_down_backend(struct umxd_worker *w, unsigned r, unsigned b, uint64_t now);
void mark_down(struct umxd_worker *w, const struct umxd_flow *fl, uint64_t now);

/* flowlog.c: debug lines, rate-limited per worker; no-ops below debug */
void flowlog_new(struct umxd_worker *w, const struct umxd_verdict *v, struct umx_flow *f);
void flowlog_held(struct umxd_worker *w, const struct umx_rx_slot *s);
void flowlog_drop(struct umxd_worker *w, int route, enum umxd_drop why, const void *peer,
                  uint64_t n, uint64_t bytes);
void flowlog_end(struct umxd_worker *w, struct umx_flow *f, const char *why,
                 const struct umxd_config *cfg);

/* upsock.c */
int open_upstream(struct umxd_worker *w, struct umx_flow *f, const struct umxd_route *rt);
void close_upstream(struct umxd_worker *w, struct umx_flow *f);
struct umx_flow *shr_find(struct umxd_worker *w, const struct sockaddr_storage *dst);
void shr_adopt(struct umxd_worker *w, struct umx_flow *f);
int add_ev(int epfd, int fd, uint64_t data);

/* txq.c */
int txq_alloc(struct txstate *tx, unsigned batch);
void txq_free(struct txstate *tx);
void queue_up(struct umxd_worker *w, struct umx_flow *f, const uint8_t *data, size_t len,
              uint64_t now);
void queue_pub(struct umxd_worker *w, unsigned li, const uint8_t *data, size_t len,
               const struct sockaddr_in6 *peer, const struct sockaddr_in6 *local, uint32_t flow);
void queue_att(struct umxd_worker *w, struct umx_flow *f, const struct umx_rx_slot *s);
uint8_t *reply_space(struct umxd_worker *w, size_t len);
void reply_unspace(struct umxd_worker *w, size_t len);
void flush_up(struct umxd_worker *w, uint64_t now);
void flush_pub(struct umxd_worker *w);
void flush_att(struct umxd_worker *w);

/* replies.c */
void read_upstream(struct umxd_worker *w, uint32_t idx, uint32_t gen, uint64_t now);
void read_shared(struct umxd_worker *w, unsigned k, uint32_t events, uint64_t now);

/* xworker.c */
int mbox_new(struct mbox **out);
void mbox_free(struct mbox *m);
void mbox_post(struct umxd_worker *w, unsigned to, uint32_t idx, uint32_t gen,
               const struct umx_rx_slot *s, unsigned li);
void mbox_drain(struct umxd_worker *w, uint64_t now);
void roam_publish(struct umxd_worker *w, struct umx_flow *f, const uint8_t *key, size_t klen,
                  uint64_t now);
int roam_find_shared(void *ctx, const uint8_t *key, size_t klen, struct umxd_roam_ref *out);
uint32_t roam_lens_shared(void *ctx);

/* worker.c */
void worker_free(struct umxd_worker *w);
int worker_run(struct umxd_worker *w);

/* handoff.c */
void handoff_import(struct umxd_worker *w);

/* pool.c */
void worker_wake(struct umxd_worker *w);

#endif
