/*
 * worker.c - the packet path. One thread per worker, each with its own
 * SO_REUSEPORT member of every listener, flow table, upstream sockets and
 * timers. Nothing here allocates, logs or locks per datagram.
 *
 * Path of one datagram from a peer (see docs/internals/daemon.md):
 *   recvmmsg batch -> flow lookup (local, peer) -> [miss: roaming key ->
 *   attach flows -> classify (first match wins) -> admission -> new flow
 *   with a connected upstream socket] -> queued per flow -> at the end of the
 *   batch each flow's run goes out with one send (UDP GSO when the run has
 *   equal sizes, sendmmsg otherwise).
 * Replies: upstream sockets are read in batches and queued to the shared
 * socket with the peer's original destination address as source (PKTINFO),
 * flushed with sendmmsg (and GSO for same-flow runs).
 */
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <linux/errqueue.h>

#include "internal.h"
#include "addrmap.h"
#include "attach/proto.h"
#include "proxy.h"
#include "rules/roam.h"
#include "stun.h"
#include "udpmuxd.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define EV_PUB 1u
#define EV_UP 2u
#define EV_WAKE 3u
#define EV_TIMER 4u
#define EV_SHR 5u /* the shared upstream socket of a family (upstream = shared) */

/* The kernel caps one GSO send at 64 segments (UDP_MAX_SEGMENTS) and at
 * 64 KiB of payload. */
#define GSO_MAX_SEGS 64
#define GSO_MAX_BYTES 65000
#define RATE_SLOTS 8192
#define PASSIVE_DOWN_DEFAULT_NS (10ull * 1000000000ull)
/* New-flow budget per full receive batch, see read_public(), in units: a
 * flow with its own socket costs 3 (socket, connect, epoll_ctl: ~34 us of
 * CPU at 5k new flows/s), one on the shared upstream socket 1 (~11 us,
 * mostly forwarding its first datagram; bench/profile --new-flows). */
#define OVERLOAD_BUDGET 24
#define OVERLOAD_COST_SOCKET 3
#define OVERLOAD_COST_SHARED 1

/* New-flow budget of the current shared-port batch (per worker thread). */
static __thread unsigned overload_new_flows = UINT_MAX;

struct flow {
    int up_fd;
    uint32_t gen;
    uint16_t route; /* index in the worker's current route set */
    uint16_t slot;  /* stable stats slot */
    uint8_t backend;
    uint8_t listener;
    uint8_t established;
    uint8_t attach; /* pinned to an attached program (client, cgen) */
    uint8_t relay;  /* datagrams go to another worker's flow (roamed peer) */
    uint8_t relay_worker;
    uint8_t shared; /* up_fd is the worker's shared socket; upsrc tells the flow apart */
    uint32_t relay_idx, relay_gen;
    uint16_t client;
    uint32_t cgen;
    struct sockaddr_in6 peer; /* holds a sockaddr_in for IPv4 */
    struct sockaddr_in6 local;
    struct sockaddr_in6 upaddr; /* backend address (unconnected upstreams) */
    struct sockaddr_in6 upsrc;  /* shared upstream: this flow's source address */
    uint64_t rx_dgrams, rx_bytes, tx_dgrams, tx_bytes;
};

/* One queued datagram towards a backend. */
struct upq {
    struct umx_flow *f;
    const uint8_t *data;
    uint32_t len;
};

/* One queued reply out of the shared socket. */
struct pubq {
    uint8_t listener;
    const uint8_t *data;
    uint32_t len;
    struct sockaddr_in6 peer;
    struct sockaddr_in6 local;
    uint32_t flow; /* flow index, UINT32_MAX for built-in replies */
};

struct txstate {
    unsigned nup, npub;
    struct upq *up;
    struct pubq *pub;
    /* built-in replies need their own bytes (the request buffer is reused) */
    uint8_t *replybuf;
    size_t replyoff, replycap;
    struct mmsghdr *mm;
    struct iovec *iov;
    uint8_t (*ctrl)[UMX_TX_CTRL];
    struct sockaddr_storage *names;
    uint8_t (*pxhdr)[UMX_PROXY_V2_MAX];
    struct hold *hold;
    /* datagrams for attached programs, sent per program with one sendmmsg
     * at the end of the batch (header and payload as two iovecs: no copy) */
    unsigned natt;
    struct attq *att;
    struct mmsghdr *attmm;
    struct iovec *attiov;
};

struct attq {
    struct umx_flow *f;
    uint16_t client;
    uint32_t gen;
    const uint8_t *data;
    uint32_t len;
    uint8_t hdr[UMX_ATT_DATA_HDR];
};

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

struct rate_slot {
    uint64_t key;
    uint64_t last_ns;
    uint32_t tokens; /* in thousandths */
};

struct ratestate {
    struct rate_slot flows[RATE_SLOTS];
    struct rate_slot replies[RATE_SLOTS];
};

static inline uint64_t ev_make(unsigned type, uint32_t gen, uint32_t idx)
{
    return (uint64_t)type << 56 | (uint64_t)(gen & 0xffffff) << 32 | idx;
}

static inline struct flow *fdata(struct umx_flow *f)
{
    return umx_flow_data(f);
}

static inline const struct umxd_route *route_of(const struct umxd_worker *w, unsigned r)
{
    return &w->rs->cfg->routes[r];
}

static unsigned cls_unanswered(unsigned r)
{
    return 2 * r;
}

static unsigned cls_established(unsigned r)
{
    return 2 * r + 1;
}

/* Route set switching -------------------------------------------------------- */

static void apply_classes(struct umxd_worker *w)
{
    const struct umxd_config *c = w->rs->cfg;
    for (unsigned r = 0; r < c->nroutes; r++) {
        umx_ft_set_class(w->ft, cls_unanswered(r), c->routes[r].unanswered_timeout_ns, 1);
        umx_ft_set_class(w->ft, cls_established(r), c->routes[r].idle_timeout_ns, 0);
    }
    /* classes of routes that no longer exist: flows there are moved or closed
     * by remap_flows(); give them a short timeout meanwhile */
    for (unsigned r = c->nroutes; r < UMXD_MAX_ROUTES; r++) {
        umx_ft_set_class(w->ft, cls_unanswered(r), 1, 1);
        umx_ft_set_class(w->ft, cls_established(r), 1, 1);
    }
    /* relays to another worker's flow (roamed peers) */
    umx_ft_set_class(w->ft, UMX_FT_MAX_CLASSES - 1, 180ull * 1000000000ull, 1);
}

static void shr_del(struct umxd_worker *w, struct umx_flow *f);

static void close_flow(struct umxd_worker *w, struct umx_flow *f)
{
    struct flow *fl = fdata(f);
    if (fl->shared) {
        shr_del(w, f);
        fl->shared = 0;
        fl->up_fd = -1;
    } else if (fl->up_fd >= 0) {
        close(fl->up_fd);
        fl->up_fd = -1;
        w->fd_flows--;
    }
    if (fl->relay)
        return; /* not counted as a route's flow */
    if (w->rst[fl->slot].active_flows)
        UMX_CTR_ADD(w->rst[fl->slot].active_flows, (uint64_t)-1);
}

static void release_cb(struct umx_flow *f, void *arg, int reason)
{
    struct umxd_worker *w = arg;
    close_flow(w, f);
    if (reason == UMX_FT_EXPIRED)
        UMX_CTR_ADD(w->st.flows_expired, 1);
    else
        UMX_CTR_ADD(w->st.flows_evicted, 1);
}

/* After a reload: flows keep running when their route (by name) still exists;
 * their route index and class follow the new set. Others are closed. */
static void remap_flows(struct umxd_worker *w, struct umxd_routeset *old)
{
    uint32_t cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        struct flow *fl;
        int nr;
        if (!f)
            continue;
        fl = fdata(f);
        if (fl->relay)
            continue;
        nr = umxd_config_route(w->rs->cfg, old->cfg->routes[fl->route].name);
        if (nr < 0 || (w->rs->cfg->routes[nr].action != UMXD_FORWARD && !fl->attach) ||
            (fl->backend >= w->rs->cfg->routes[nr].nbackends && !fl->attach)) {
            close_flow(w, f);
            umx_ft_remove(w->ft, f);
            UMX_CTR_ADD(w->st.flows_closed, 1);
            continue;
        }
        fl->route = (uint16_t)nr;
        umx_ft_touch(w->ft, f,
                     fl->established ? cls_established((unsigned)nr) : cls_unanswered((unsigned)nr),
                     f->last_ns);
    }
}

static void maybe_switch(struct umxd_worker *w)
{
    struct umxd_routeset *rs = __atomic_load_n(&w->d->rs, __ATOMIC_ACQUIRE);
    struct umxd_routeset *old = w->rs;
    if (rs == old)
        return;
    w->rs = rs;
    apply_classes(w);
    if (old)
        remap_flows(w, old);
    UMX_CTR_ADD(w->st.reloads_seen, 1);
    __atomic_store_n(&w->seen_epoch, rs->epoch, __ATOMIC_RELEASE);
}

/* Admission control ---------------------------------------------------------- */

/* Token bucket per source prefix (/24 for IPv4, /56 for IPv6), in a fixed
 * direct-mapped table keyed with SipHash: bounded memory whatever the number
 * of spoofed sources. */
static int rate_ok(struct umxd_worker *w, struct rate_slot *tab, const struct sockaddr *peer,
                   uint32_t rate, uint32_t burst, uint64_t now)
{
    uint8_t pfx[9] = {0};
    uint64_t h;
    struct rate_slot *s;
    uint64_t add;
    if (rate == 0)
        return 1;
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, peer, sizeof(s4));
        pfx[0] = 4;
        memcpy(pfx + 1, &s4.sin_addr, 3);
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, peer, sizeof(s6));
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            pfx[0] = 4;
            memcpy(pfx + 1, s6.sin6_addr.s6_addr + 12, 3);
        } else {
            pfx[0] = 6;
            memcpy(pfx + 1, s6.sin6_addr.s6_addr, 7);
        }
    }
    h = umx_siphash24(w->d->hashkey, pfx, sizeof(pfx));
    s = &tab[h % RATE_SLOTS];
    if (s->key != h || s->last_ns == 0) {
        s->key = h;
        s->last_ns = now;
        s->tokens = burst * 1000u;
    }
    add = (now - s->last_ns) * rate / 1000000u; /* thousandths of a token per ns*rate */
    if (add) {
        uint64_t t = s->tokens + add;
        s->tokens = (uint32_t)(t > (uint64_t)burst * 1000u ? (uint64_t)burst * 1000u : t);
        s->last_ns = now;
    }
    if (s->tokens < 1000)
        return 0;
    s->tokens -= 1000;
    return 1;
}

/* Backend choice ------------------------------------------------------------- */

static int backend_up(struct umxd_worker *w, unsigned slot, unsigned b, uint64_t now)
{
    struct umxd_health *h = &w->d->health[slot][b];
    /* only new flows choose a backend: a draining one keeps its flows */
    if (__atomic_load_n(&h->active_down, __ATOMIC_RELAXED) ||
        __atomic_load_n(&h->draining, __ATOMIC_RELAXED))
        return 0;
    return __atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) <= now;
}

/* Rendezvous hashing on the peer address (not the port: a peer that
 * re-binds its port keeps its backend) over the backends that are up. */
static int pick_backend(struct umxd_worker *w, const struct umxd_route *rt, unsigned slot,
                        const struct sockaddr *peer, uint64_t now)
{
    uint8_t buf[20];
    size_t n;
    uint64_t best = 0;
    int pick = -1;
    if (rt->nbackends == 1)
        return backend_up(w, slot, 0, now) ? 0 : -1;
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, peer, sizeof(s4));
        memcpy(buf, &s4.sin_addr, 4);
        n = 4;
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, peer, sizeof(s6));
        memcpy(buf, &s6.sin6_addr, 16);
        n = 16;
    }
    for (unsigned b = 0; b < rt->nbackends; b++) {
        uint64_t score;
        if (!backend_up(w, slot, b, now))
            continue;
        buf[n] = (uint8_t)b;
        score = umx_siphash24(w->d->hashkey, buf, n + 1);
        if (pick < 0 || score > best) {
            best = score;
            pick = (int)b;
        }
    }
    return pick;
}

static void mark_down_backend(struct umxd_worker *w, unsigned r, unsigned b, uint64_t now)
{
    const struct umxd_route *rt = route_of(w, r);
    uint64_t dt = rt->down_time_ns ? rt->down_time_ns : PASSIVE_DOWN_DEFAULT_NS;
    struct umxd_health *h = &w->d->health[w->rs->slot[r]][b];
    if (__atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) <= now)
        UMX_CTR_ADD(w->st.backend_down, 1);
    __atomic_store_n(&h->down_until_ns, now + dt, __ATOMIC_RELAXED);
}

static void mark_down(struct umxd_worker *w, struct flow *fl, uint64_t now)
{
    if (fl->route < w->rs->cfg->nroutes && fl->backend < route_of(w, fl->route)->nbackends)
        mark_down_backend(w, fl->route, fl->backend, now);
}

/* Flow creation -------------------------------------------------------------- */

static int bind_transparent(int fd, const struct sockaddr_in6 *peer, int family)
{
    int one = 1;
    struct sockaddr_storage src;
    socklen_t sl;
    memset(&src, 0, sizeof(src));
    memcpy(&src, peer, sizeof(*peer));
    if (family == AF_INET && src.ss_family == AF_INET6 && !umx_sa_unmap(&src))
        return -EAFNOSUPPORT; /* an IPv6 client cannot appear to an IPv4 backend */
    if (family == AF_INET6 && src.ss_family == AF_INET)
        umx_sa_map6(&src);
    if (src.ss_family != family)
        return -EAFNOSUPPORT;
    if (family == AF_INET) {
        if (setsockopt(fd, SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) < 0)
            return -errno;
        sl = sizeof(struct sockaddr_in);
    } else {
        if (setsockopt(fd, SOL_IPV6, IPV6_TRANSPARENT, &one, sizeof(one)) < 0)
            return -errno;
        sl = sizeof(struct sockaddr_in6);
    }
    /* several upstreams may carry the same client address to different
     * backends */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
        return -errno;
    if (bind(fd, (struct sockaddr *)&src, sl) < 0)
        return -errno;
    return 0;
}

/* The route's `source` prefix with its host bits filled from v, lowest
 * byte first (host bits beyond v's 64 are zero); out holds a sockaddr_in
 * for IPv4, port 0. */
static void prefix_host(const struct umxd_route *rt, uint64_t v, struct sockaddr_in6 *out)
{
    size_t alen = rt->source.ss_family == AF_INET ? 4 : 16;
    unsigned left = (unsigned)(alen * 8) - rt->source_bits;
    uint8_t *p;
    memset(out, 0, sizeof(*out));
    memcpy(out, &rt->source, alen == 4 ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    p = alen == 4 ? (uint8_t *)&((struct sockaddr_in *)(void *)out)->sin_addr
                  : (uint8_t *)&out->sin6_addr;
    for (size_t i = alen; i-- > 0 && left > 0;) {
        unsigned take = left >= 8 ? 8 : left;
        uint8_t mask = (uint8_t)((1u << take) - 1);
        p[i] = (uint8_t)((p[i] & ~mask) | ((uint8_t)v & mask));
        v >>= 8;
        left -= take;
    }
}

/* `source = PREFIX`: the upstream socket binds to an address of the prefix
 * picked from the flow's peer (keyed hash), port 0. Each address has its own
 * ephemeral port range, so the number of flows per backend is no longer
 * capped by one address's ports. */
static int bind_source(struct umxd_worker *w, int fd, const struct umxd_route *rt,
                       const struct sockaddr_in6 *peer)
{
    struct sockaddr_in6 a;
    prefix_host(rt, umx_siphash24(w->d->hashkey, peer, sizeof(*peer)), &a);
    if (bind(fd, (struct sockaddr *)&a, umx_sa_len((const struct sockaddr *)&a)) < 0)
        return -errno;
    return 0;
}

/* Shared upstream sockets (upstream = shared) -----------------------------
 *
 * One unconnected socket per worker and address family, bound to the
 * wildcard address and an ephemeral port, carries every flow of the routes
 * with upstream = shared. Flows differ by their source address instead of
 * their socket: each gets an address of the route's prefix (local
 * addresses, 127.0.0.0/8 or an AnyIP route), picked from a keyed hash of the
 * peer's address and port, and the backend answers to that address. Replies are told apart by their
 * destination address (PKTINFO), looked up in an open-addressing map. A new flow then costs no
 * system call (socket + connect + epoll_ctl cost about 29 us of CPU per flow, most of the new-flow
 * budget), holds no descriptor (the descriptor limit no longer caps the flow count), and one
 * sendmmsg carries datagrams of many flows.
 */

static int add_ev(int epfd, int fd, uint64_t data);

static void addr16(const struct sockaddr_in6 *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa->sin6_family == AF_INET)
        memcpy(out, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    else
        memcpy(out, &sa->sin6_addr, 16);
}

static int shr_key(uint32_t idx, uint8_t out[16], void *ctx)
{
    struct umxd_worker *w = ctx;
    struct umx_flow *f = umx_ft_at(w->ft, idx);
    if (!f || !fdata(f)->shared)
        return -1;
    addr16(&fdata(f)->upsrc, out);
    return 0;
}

static struct umx_flow *shr_find(struct umxd_worker *w, const uint8_t a[16])
{
    uint32_t idx;
    if (!umxd_addrmap_find(&w->shr, a, shr_key, w, &idx))
        return NULL;
    return umx_ft_at(w->ft, idx);
}

static void shr_del(struct umxd_worker *w, struct umx_flow *f)
{
    uint8_t a[16];
    addr16(&fdata(f)->upsrc, a);
    umxd_addrmap_del(&w->shr, a, f->idx, shr_key, w);
}

/* Picks a free address of the route's prefix for a flow of this peer. */
static int shr_pick(struct umxd_worker *w, const struct umxd_route *rt,
                    const struct sockaddr_in6 *peer, struct sockaddr_in6 *out)
{
    unsigned hb = (rt->source.ss_family == AF_INET ? 32u : 128u) - rt->source_bits;
    uint64_t h = umx_siphash24(w->d->hashkey, peer, sizeof(*peer));
    uint64_t all = hb >= 64 ? UINT64_MAX : (1ull << hb) - 1;

    for (unsigned attempt = 0; attempt < 16; attempt++) {
        uint64_t v = (h + attempt * 0x9e3779b97f4a7c15ull) & all;
        uint8_t a[16];
        if (v == 0 || v == all)
            continue; /* the prefix's own and broadcast addresses */
        prefix_host(rt, v, out);
        addr16(out, a);
        if (!shr_find(w, a))
            return 0;
    }
    return -EADDRINUSE;
}

/* The worker's shared socket of a family, opened on first use (also after a
 * reload adds the first shared route): wildcard address, ephemeral port,
 * PKTINFO on. Datagrams from anyone may reach it; only a backend's answer to
 * a live flow's address is taken (read_shared). */
static int shr_socket(struct umxd_worker *w, int family)
{
    unsigned k = family == AF_INET6;
    struct sockaddr_storage ss;
    socklen_t sl;
    int fd, r, one = 1;
    if (w->shr_fd[k] >= 0)
        return w->shr_fd[k];
    memset(&ss, 0, sizeof(ss));
    ss.ss_family = (sa_family_t)family;
    sl = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    fd = umx_udp_open((const struct sockaddr *)&ss, sl, 0, w->rs->cfg->rcvbuf, w->rs->cfg->sndbuf);
    if (fd < 0)
        return fd;
    /* ICMP errors (port unreachable from a backend) are queued with the
     * destination they answer, which names the backend: passive health as
     * on connected sockets (read_shared_errors). IPv6 also takes a PKTINFO
     * source only if it is an assigned address, not one of an AnyIP route
     * (ip -6 route add local PREFIX dev lo), unless the socket may bind
     * non-local addresses; IPv4 looks the source up in the local routing
     * table and needs nothing. */
    if (setsockopt(fd, family == AF_INET6 ? SOL_IPV6 : SOL_IP,
                   family == AF_INET6 ? IPV6_RECVERR : IP_RECVERR, &one, sizeof(one)) < 0 ||
        (family == AF_INET6 && setsockopt(fd, SOL_IPV6, IPV6_FREEBIND, &one, sizeof(one)) < 0))
        r = -errno;
    else
        r = add_ev(w->epfd, fd, ev_make(EV_SHR, 0, k));
    if (r < 0) {
        close(fd);
        return r;
    }
    w->shr_fd[k] = fd;
    return fd;
}

static int open_shared(struct umxd_worker *w, struct umx_flow *f, const struct umxd_route *rt)
{
    struct flow *fl = fdata(f);
    const struct umxd_backend *be = &rt->backends[fl->backend];
    uint8_t a[16];
    int fd = shr_socket(w, be->addr.ss_family);
    int r;
    if (fd < 0)
        return fd;
    r = shr_pick(w, rt, &fl->peer, &fl->upsrc);
    if (r < 0)
        return r;
    memset(&fl->upaddr, 0, sizeof(fl->upaddr));
    memcpy(&fl->upaddr, &be->addr, be->addrlen);
    addr16(&fl->upsrc, a);
    umxd_addrmap_add(&w->shr, a, f->idx);
    fl->shared = 1;
    fl->up_fd = fd;
    return 0;
}

static int open_upstream(struct umxd_worker *w, struct umx_flow *f, const struct umxd_route *rt)
{
    struct flow *fl = fdata(f);
    const struct umxd_backend *be = &rt->backends[fl->backend];
    struct epoll_event ev;
    int fd;
    if (rt->shared && rt->source.ss_family == be->addr.ss_family)
        return open_shared(w, f, rt);
    /* a descriptor per flow: stay inside the limit's share of this worker
     * (see main.c), so the control and attach sockets can still accept */
    if (w->fd_flows >= w->d->fd_budget)
        return -EMFILE;
    fd = umx_udp_open_upstream(be->addr.ss_family, w->rs->cfg->rcvbuf, w->rs->cfg->sndbuf);
    if (fd < 0)
        return fd;
    memset(&fl->upaddr, 0, sizeof(fl->upaddr));
    memcpy(&fl->upaddr, &be->addr, be->addrlen);
    if (rt->transparent) {
        /* The backend sees the client's own address and port: bind the
         * upstream socket to them (IP_TRANSPARENT, CAP_NET_ADMIN). The
         * backend's replies to that address must be routed back to this
         * host (policy routing; see udpmux.conf(5), transparent). */
        int r = bind_transparent(fd, &fl->peer, be->addr.ss_family);
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    if (!rt->transparent && rt->source.ss_family == be->addr.ss_family) {
        int r = bind_source(w, fd, rt, &fl->peer);
        if (r < 0) {
            close(fd);
            return r;
        }
    }
    if (rt->connected) {
        /* connect(): the kernel drops datagrams from anyone but the backend
         * and reports ICMP errors to us (passive health) */
        if (connect(fd, (const struct sockaddr *)&be->addr, be->addrlen) < 0) {
            int e = -errno;
            close(fd);
            return e;
        }
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = ev_make(EV_UP, fl->gen, f->idx);
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    fl->up_fd = fd;
    w->fd_flows++;
    return 0;
}

static void store_addr(struct sockaddr_in6 *dst, const struct sockaddr_storage *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst, src,
           src->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static struct umx_flow *new_flow(struct umxd_worker *w, const struct umx_flow_key *k, unsigned r,
                                 struct umx_rx_slot *s, unsigned li, uint64_t now)
{
    const struct umxd_route *rt = route_of(w, r);
    unsigned slot = w->rs->slot[r];
    struct umx_flow *f;
    struct flow *fl;
    int b;

    if (__atomic_load_n(&w->d->drain[slot], __ATOMIC_RELAXED)) {
        UMX_CTR_ADD(w->st.dropped_no_backend, 1);
        UMX_CTR_ADD(w->rst[slot].drop_no_backend, 1);
        return NULL;
    }
    if (rt->max_flows && w->rst[slot].active_flows >= rt->max_flows) {
        UMX_CTR_ADD(w->st.dropped_route_full, 1);
        UMX_CTR_ADD(w->rst[slot].drop_route_full, 1);
        return NULL;
    }
    b = pick_backend(w, rt, slot, (const struct sockaddr *)&s->peer, now);
    if (b < 0) {
        UMX_CTR_ADD(w->st.dropped_no_backend, 1);
        UMX_CTR_ADD(w->rst[slot].drop_no_backend, 1);
        return NULL;
    }
    f = umx_ft_insert(w->ft, k, cls_unanswered(r), now, release_cb, w);
    if (!f) {
        UMX_CTR_ADD(w->st.dropped_table_full, 1);
        UMX_CTR_ADD(w->rst[slot].drop_table_full, 1);
        return NULL;
    }
    fl = fdata(f);
    fl->up_fd = -1;
    fl->gen = ++w->gen;
    fl->route = (uint16_t)r;
    fl->slot = (uint16_t)slot;
    fl->backend = (uint8_t)b;
    fl->listener = (uint8_t)li;
    store_addr(&fl->peer, &s->peer);
    if (s->has_local)
        store_addr(&fl->local, &s->local);
    if (open_upstream(w, f, rt) < 0) {
        umx_ft_remove(w->ft, f);
        UMX_CTR_ADD(w->st.dropped_socket, 1);
        UMX_CTR_ADD(w->rst[slot].drop_socket, 1);
        return NULL;
    }
    UMX_CTR_ADD(w->st.flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].active_flows, 1);
    return f;
}

/* A flow pinned to an attached program: no upstream socket; datagrams go to
 * the program's attach socket. */
static struct umx_flow *new_attach_flow(struct umxd_worker *w, const struct umx_flow_key *k,
                                        unsigned r, struct umx_rx_slot *s, unsigned li,
                                        uint16_t client, uint32_t cgen, uint64_t now)
{
    unsigned slot = w->rs->slot[r];
    struct umx_flow *f = umx_ft_insert(w->ft, k, cls_established(r), now, release_cb, w);
    struct flow *fl;
    if (!f) {
        UMX_CTR_ADD(w->st.dropped_table_full, 1);
        UMX_CTR_ADD(w->rst[slot].drop_table_full, 1);
        return NULL;
    }
    fl = fdata(f);
    fl->up_fd = -1;
    fl->gen = ++w->gen;
    fl->route = (uint16_t)r;
    fl->slot = (uint16_t)slot;
    fl->listener = (uint8_t)li;
    fl->attach = 1;
    fl->established = 1;
    fl->client = client;
    fl->cgen = cgen;
    store_addr(&fl->peer, &s->peer);
    if (s->has_local)
        store_addr(&fl->local, &s->local);
    UMX_CTR_ADD(w->st.flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].active_flows, 1);
    return f;
}

static void flush_up(struct umxd_worker *w, uint64_t now);
static void queue_up(struct umxd_worker *w, struct umx_flow *f, const uint8_t *data, size_t len);

/* Cross-worker roaming ------------------------------------------------------ */

struct roam_ref {
    uint32_t worker, idx, gen;
};

#define MBOX_SLOTS 256
#define MBOX_BYTES 2048

struct mbox_item {
    uint32_t idx, gen;
    uint16_t len;
    uint8_t li;
    uint8_t has_local;
    struct sockaddr_in6 peer, local;
    uint8_t data[MBOX_BYTES];
};

struct mbox {
    pthread_mutex_t mu;
    unsigned head, count;
    struct mbox_item items[MBOX_SLOTS];
    uint64_t dropped;
};

int umxd_roam_init(struct umxd *d)
{
    pthread_mutex_init(&d->roam_mu, NULL);
    return umx_ft_new(&d->roam_ft, 65536, sizeof(struct roam_ref), d->hashkey);
}

void umxd_roam_fini(struct umxd *d)
{
    umx_ft_free(d->roam_ft);
    d->roam_ft = NULL;
    pthread_mutex_destroy(&d->roam_mu);
}

/* Publishes (key -> this worker's flow). Handshake replies only: rare. */
static void roam_publish(struct umxd_worker *w, struct umx_flow *f, const uint8_t *key, size_t klen,
                         uint64_t now)
{
    struct umx_flow_key k;
    struct umx_flow *e;
    struct roam_ref *ref;
    if (!w->d->roam_ft || w->d->nworkers < 2)
        return;
    /* one entry per (worker, flow): the key names the slot, the roaming key
     * rides in the entry's roam index */
    memset(&k, 0, sizeof(k));
    k.family = 0xff;
    k.tag = (uint32_t)w->id << 24 | (f->idx & 0xffffff);
    memcpy(k.paddr, &f->idx, sizeof(f->idx));
    pthread_mutex_lock(&w->d->roam_mu);
    e = umx_ft_lookup(w->d->roam_ft, &k);
    if (!e)
        e = umx_ft_insert(w->d->roam_ft, &k, 0, now, NULL, NULL);
    if (e) {
        ref = umx_flow_data(e);
        ref->worker = (uint32_t)w->id;
        ref->idx = f->idx;
        ref->gen = fdata(f)->gen;
        umx_ft_roam_set(w->d->roam_ft, e, key, klen);
        umx_ft_touch(w->d->roam_ft, e, 0, now);
    }
    pthread_mutex_unlock(&w->d->roam_mu);
}

static int roam_find_shared(struct umxd_worker *w, const uint8_t *key, size_t klen,
                            struct roam_ref *out)
{
    struct umx_flow *e;
    int r = -ENOENT;
    if (!w->d->roam_ft || w->d->nworkers < 2)
        return r;
    pthread_mutex_lock(&w->d->roam_mu);
    e = umx_ft_roam_lookup(w->d->roam_ft, key, klen);
    if (e) {
        *out = *(struct roam_ref *)umx_flow_data(e);
        r = 0;
    }
    pthread_mutex_unlock(&w->d->roam_mu);
    return r;
}

static void wake(struct umxd_worker *w);

/* Hands a datagram to worker `to` for its flow (idx, gen). */
static void mbox_post(struct umxd_worker *w, unsigned to, uint32_t idx, uint32_t gen,
                      const struct umx_rx_slot *s, unsigned li)
{
    struct umxd_worker *o = to < w->d->nworkers ? w->d->w[to] : NULL;
    struct mbox *m;
    struct mbox_item *it;
    if (!o || !o->mbox || s->len > MBOX_BYTES) {
        UMX_CTR_ADD(w->st.up_tx_errors, 1);
        return;
    }
    m = o->mbox;
    pthread_mutex_lock(&m->mu);
    if (m->count == MBOX_SLOTS) {
        m->dropped++;
        pthread_mutex_unlock(&m->mu);
        UMX_CTR_ADD(w->st.up_tx_errors, 1);
        return;
    }
    it = &m->items[(m->head + m->count) % MBOX_SLOTS];
    it->idx = idx;
    it->gen = gen;
    it->len = (uint16_t)s->len;
    it->li = (uint8_t)li;
    it->has_local = s->has_local;
    store_addr(&it->peer, &s->peer);
    if (s->has_local)
        store_addr(&it->local, &s->local);
    memcpy(it->data, s->buf, s->len);
    m->count++;
    pthread_mutex_unlock(&m->mu);
    wake(o);
}

/* Owner side: datagrams other workers received for our flows from a roamed
 * peer's new address. The flow follows the peer (replies go to the new
 * address) and the datagram goes to the backend. */
static void mbox_drain(struct umxd_worker *w, uint64_t now)
{
    struct mbox *m = w->mbox;
    struct mbox_item batch[16];
    unsigned n;
    if (!m || !__atomic_load_n(&m->count, __ATOMIC_RELAXED))
        return;
    do {
        pthread_mutex_lock(&m->mu);
        n = m->count < 16 ? m->count : 16;
        for (unsigned i = 0; i < n; i++)
            batch[i] = m->items[(m->head + i) % MBOX_SLOTS];
        m->head = (m->head + n) % MBOX_SLOTS;
        m->count -= n;
        pthread_mutex_unlock(&m->mu);
        for (unsigned i = 0; i < n; i++) {
            struct umx_flow *f = umx_ft_at(w->ft, batch[i].idx);
            struct flow *fl;
            if (!f || fdata(f)->gen != batch[i].gen || fdata(f)->up_fd < 0)
                continue;
            fl = fdata(f);
            if (memcmp(&fl->peer, &batch[i].peer, sizeof(fl->peer)) != 0) {
                fl->peer = batch[i].peer;
                if (batch[i].has_local)
                    fl->local = batch[i].local;
                fl->listener = batch[i].li;
                UMX_CTR_ADD(w->st.flows_roamed, 1);
            }
            fl->rx_dgrams++;
            fl->rx_bytes += batch[i].len;
            UMX_CTR_ADD(w->rst[fl->slot].rx_datagrams, 1);
            UMX_CTR_ADD(w->rst[fl->slot].rx_bytes, batch[i].len);
            umx_ft_touch(w->ft, f, UMX_FT_MAX_CLASSES, now);
            queue_up(w, f, batch[i].data, batch[i].len);
        }
        /* batch[] lives on this stack frame: send before reusing it */
        flush_up(w, now);
    } while (n == 16);
}

/* Queues ---------------------------------------------------------------------- */

static void queue_pub(struct umxd_worker *w, unsigned li, const uint8_t *data, size_t len,
                      const struct sockaddr_in6 *peer, const struct sockaddr_in6 *local,
                      uint32_t flow);
static void flush_pub(struct umxd_worker *w);

static void queue_up(struct umxd_worker *w, struct umx_flow *f, const uint8_t *data, size_t len)
{
    struct txstate *tx = w->tx;
    struct upq *q;
    /* the worker's own route set: d->cfg belongs to the main thread, which
     * swaps it on reload (a data race ThreadSanitizer reports) */
    if (tx->nup >= w->rs->cfg->batch * 2)
        flush_up(w, umx_now_ns());
    q = &tx->up[tx->nup++];
    q->f = f;
    q->data = data;
    q->len = (uint32_t)len;
}

/* How many queued datagrams from i on (same flow, before end) leave as one
 * UDP GSO send: equal sizes, the last may be shorter but not empty (an
 * empty last segment adds no bytes to the send, so it would vanish). 1 when
 * GSO is off or refused. */
static unsigned up_gso_run(const struct umxd_worker *w, unsigned i, unsigned end)
{
    const struct txstate *tx = w->tx;
    unsigned k = 1, bytes = tx->up[i].len, seg = tx->up[i].len;
    if (!w->gso_ok || !w->rs->cfg->gso || seg == 0)
        return 1;
    while (i + k < end && k < GSO_MAX_SEGS && tx->up[i + k].f == tx->up[i].f &&
           tx->up[i + k].len > 0 && tx->up[i + k].len <= seg &&
           bytes + tx->up[i + k].len <= GSO_MAX_BYTES) {
        bytes += tx->up[i + k].len;
        k++;
        if (tx->up[i + k - 1].len < seg)
            break;
    }
    return k;
}

/* Sends queued datagrams of one flow [i, j) to its backend. */
static void send_run(struct umxd_worker *w, unsigned i, unsigned j, uint64_t now)
{
    struct txstate *tx = w->tx;
    struct umx_flow *f = tx->up[i].f;
    struct flow *fl = fdata(f);
    const struct umxd_route *rt = route_of(w, fl->route);
    unsigned n = j - i, sent = 0;
    int r;

    if (fl->up_fd < 0)
        return;
    if (rt->proxy_v2) {
        /* one header per datagram, sent with the payload as a second iovec:
         * no copy of the payload */
        for (unsigned k = 0; k < n; k++) {
            struct msghdr *mh = &tx->mm[k].msg_hdr;
            size_t hl = umx_proxy_v2_encode(tx->pxhdr[k], (const struct sockaddr *)&fl->peer,
                                            (const struct sockaddr *)&fl->local);
            memset(mh, 0, sizeof(*mh));
            tx->iov[2 * k].iov_base = tx->pxhdr[k];
            tx->iov[2 * k].iov_len = hl;
            tx->iov[2 * k + 1].iov_base = (void *)(uintptr_t)tx->up[i + k].data;
            tx->iov[2 * k + 1].iov_len = tx->up[i + k].len;
            mh->msg_iov = &tx->iov[2 * k];
            mh->msg_iovlen = 2;
            if (!rt->connected) {
                mh->msg_name = &fl->upaddr;
                mh->msg_namelen = umx_sa_len((const struct sockaddr *)&fl->upaddr);
            }
        }
        r = umx_sendmmsg(fl->up_fd, tx->mm, n);
        sent = r > 0 ? (unsigned)r : 0;
        goto count;
    }
    while (sent < n) {
        unsigned k = up_gso_run(w, i + sent, j), seg = tx->up[i + sent].len;
        struct msghdr *mh = &tx->mm[0].msg_hdr;
        if (k >= 2) {
            memset(mh, 0, sizeof(*mh));
            for (unsigned x = 0; x < k; x++) {
                tx->iov[x].iov_base = (void *)(uintptr_t)tx->up[i + sent + x].data;
                tx->iov[x].iov_len = tx->up[i + sent + x].len;
            }
            mh->msg_iov = tx->iov;
            mh->msg_iovlen = k;
            if (!rt->connected) {
                mh->msg_name = &fl->upaddr;
                mh->msg_namelen = umx_sa_len((const struct sockaddr *)&fl->upaddr);
            }
            umx_tx_add_gso(mh, tx->ctrl[0], (uint16_t)seg);
            do {
                r = (int)sendmsg(fl->up_fd, mh, MSG_DONTWAIT);
            } while (r < 0 && errno == EINTR);
            if (r >= 0) {
                UMX_CTR_ADD(w->st.gso_sends, 1);
                sent += k;
                continue;
            }
            if (errno == EIO || errno == EINVAL || errno == EOPNOTSUPP) {
                /* this kernel or route refuses GSO: fall back for good */
                w->gso_ok = 0;
                continue;
            }
            break;
        }
        /* plain batch of the rest (or a single datagram) */
        k = n - sent;
        for (unsigned x = 0; x < k; x++) {
            struct msghdr *m = &tx->mm[x].msg_hdr;
            memset(m, 0, sizeof(*m));
            tx->iov[x].iov_base = (void *)(uintptr_t)tx->up[i + sent + x].data;
            tx->iov[x].iov_len = tx->up[i + sent + x].len;
            m->msg_iov = &tx->iov[x];
            m->msg_iovlen = 1;
            if (!rt->connected) {
                m->msg_name = &fl->upaddr;
                m->msg_namelen = umx_sa_len((const struct sockaddr *)&fl->upaddr);
            }
        }
        r = umx_sendmmsg(fl->up_fd, tx->mm, k);
        if (r <= 0)
            break;
        sent += (unsigned)r;
        if ((unsigned)r < k)
            break;
    }
count:
    for (unsigned k = 0; k < sent; k++) {
        UMX_CTR_ADD(w->st.up_tx_datagrams, 1);
        UMX_CTR_ADD(w->st.up_tx_bytes, tx->up[i + k].len);
    }
    if (sent < n) {
        UMX_CTR_ADD(w->st.up_tx_errors, n - sent);
        UMX_CTR_ADD(w->rst[fl->slot].drops, n - sent);
        UMX_CTR_ADD(w->rst[fl->slot].drop_send, n - sent);
        if (errno == ECONNREFUSED)
            mark_down(w, fl, now);
    }
}

/* Sends the shared-socket messages built in tx->mm[0, n) (shr_flush_family). */
static void shr_send(struct umxd_worker *w, int fd, unsigned n, const uint32_t *first)
{
    struct txstate *tx = w->tx;
    unsigned off = 0;
    unsigned counts[2048];
    int retried = 0;
    for (unsigned x = 0; x < n; x++)
        counts[x] = tx->mm[x].msg_len;
    while (off < n) {
        int r = umx_sendmmsg(fd, tx->mm + off, n - off);
        unsigned bad;
        if (r > 0) {
            retried = 0;
            for (unsigned x = off; x < off + (unsigned)r; x++)
                for (unsigned y = 0; y < counts[x]; y++) {
                    UMX_CTR_ADD(w->st.up_tx_datagrams, 1);
                    UMX_CTR_ADD(w->st.up_tx_bytes, tx->up[first[x] + y].len);
                }
            off += (unsigned)r;
            continue;
        }
        if ((r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH) && !retried) {
            /* an ICMP error for an earlier datagram (IP_RECVERR) fails the
             * next send once, without sending it: try that one again */
            retried = 1;
            continue;
        }
        retried = 0;
        if (r == -EIO || r == -EINVAL || r == -EOPNOTSUPP) {
            /* GSO refused: later batches go datagram by datagram */
            w->gso_ok = 0;
        }
        /* a full buffer drops the rest of the batch; any other error only
         * this message (e.g. a firewall rule for one backend) */
        bad = r == -EAGAIN || r == -ENOBUFS ? n - off : 1;
        for (unsigned x = off; x < off + bad; x++) {
            struct flow *fl = fdata(tx->up[first[x]].f);
            UMX_CTR_ADD(w->st.up_tx_errors, counts[x]);
            UMX_CTR_ADD(w->rst[fl->slot].drops, counts[x]);
            UMX_CTR_ADD(w->rst[fl->slot].drop_send, counts[x]);
        }
        off += bad;
    }
}

/* Every queued datagram of shared flows of one family, as one sendmmsg:
 * a message per datagram, or per same-size run of one flow with UDP GSO,
 * each with the flow's backend as destination and its source address as
 * PKTINFO. */
static void shr_flush_family(struct umxd_worker *w, int family)
{
    struct txstate *tx = w->tx;
    unsigned cap = w->rs->cfg->batch * 2, n = 0;
    uint32_t first[2048];
    int fd = w->shr_fd[family == AF_INET6];
    unsigned i = 0;
    if (cap > 2048)
        cap = 2048;
    while (i < tx->nup) {
        struct umx_flow *f = tx->up[i].f;
        struct flow *fl = fdata(f);
        const struct umxd_route *rt;
        struct msghdr *mh;
        struct iovec *v;
        unsigned k = 1;
        if (!fl->shared || fl->upaddr.sin6_family != family || fd < 0) {
            i++;
            continue;
        }
        rt = route_of(w, fl->route);
        mh = &tx->mm[n].msg_hdr;
        memset(mh, 0, sizeof(*mh));
        v = &tx->iov[w->rs->cfg->batch * 2 + n * GSO_MAX_SEGS];
        if (rt->proxy_v2) {
            size_t hl = umx_proxy_v2_encode(tx->pxhdr[n], (const struct sockaddr *)&fl->peer,
                                            (const struct sockaddr *)&fl->local);
            v[0].iov_base = tx->pxhdr[n];
            v[0].iov_len = hl;
            v[1].iov_base = (void *)(uintptr_t)tx->up[i].data;
            v[1].iov_len = tx->up[i].len;
            mh->msg_iovlen = 2;
        } else {
            k = up_gso_run(w, i, tx->nup);
            for (unsigned x = 0; x < k; x++) {
                v[x].iov_base = (void *)(uintptr_t)tx->up[i + x].data;
                v[x].iov_len = tx->up[i + x].len;
            }
            mh->msg_iovlen = k;
        }
        mh->msg_iov = v;
        mh->msg_name = &fl->upaddr;
        mh->msg_namelen = umx_sa_len((const struct sockaddr *)&fl->upaddr);
        umx_tx_set_src(mh, tx->ctrl[n], family, (const struct sockaddr *)&fl->upsrc, 0);
        if (k > 1) {
            umx_tx_add_gso(mh, tx->ctrl[n], (uint16_t)tx->up[i].len);
            UMX_CTR_ADD(w->st.gso_sends, 1);
        }
        tx->mm[n].msg_len = k; /* the count; the kernel overwrites it */
        first[n++] = i;
        i += k;
        if (n == cap) {
            shr_send(w, fd, n, first);
            n = 0;
        }
    }
    if (n)
        shr_send(w, fd, n, first);
}

static void flush_up(struct umxd_worker *w, uint64_t now)
{
    struct txstate *tx = w->tx;
    unsigned i = 0, shared = 0;
    while (i < tx->nup) {
        unsigned j = i + 1;
        while (j < tx->nup && tx->up[j].f == tx->up[i].f)
            j++;
        if (fdata(tx->up[i].f)->shared)
            shared |= fdata(tx->up[i].f)->upaddr.sin6_family == AF_INET6 ? 2u : 1u;
        else
            send_run(w, i, j, now);
        i = j;
    }
    /* shared flows last: send_run() reuses the same message arrays */
    if (shared & 1u)
        shr_flush_family(w, AF_INET);
    if (shared & 2u)
        shr_flush_family(w, AF_INET6);
    tx->nup = 0;
}

static void queue_pub(struct umxd_worker *w, unsigned li, const uint8_t *data, size_t len,
                      const struct sockaddr_in6 *peer, const struct sockaddr_in6 *local,
                      uint32_t flow)
{
    struct txstate *tx = w->tx;
    struct pubq *q;
    if (tx->npub >= w->rs->cfg->batch * 2)
        flush_pub(w);
    q = &tx->pub[tx->npub++];
    q->listener = (uint8_t)li;
    q->data = data;
    q->len = (uint32_t)len;
    q->peer = *peer;
    q->local = *local;
    q->flow = flow;
}

/* Built-in replies are built in the worker's reply buffer, which lives until
 * the queue is flushed. */
static uint8_t *reply_space(struct umxd_worker *w, size_t len)
{
    struct txstate *tx = w->tx;
    uint8_t *p;
    if (tx->replyoff + len > tx->replycap)
        flush_pub(w);
    if (len > tx->replycap)
        return NULL;
    p = tx->replybuf + tx->replyoff;
    tx->replyoff += len;
    return p;
}

static void flush_pub_listener(struct umxd_worker *w, unsigned li)
{
    struct txstate *tx = w->tx;
    unsigned n = 0;
    int fam = w->pub_family[li];
    unsigned i = 0;
    while (i < tx->npub) {
        struct pubq *q = &tx->pub[i];
        struct msghdr *mh;
        unsigned k = 1;
        if (q->listener != li) {
            i++;
            continue;
        }
        mh = &tx->mm[n].msg_hdr;
        memset(mh, 0, sizeof(*mh));
        memset(&tx->names[n], 0, sizeof(tx->names[n]));
        memcpy(&tx->names[n], &q->peer, sizeof(q->peer));
        mh->msg_name = &tx->names[n];
        mh->msg_namelen = umx_sa_len((const struct sockaddr *)&q->peer);
        if (fam == AF_INET6 && q->peer.sin6_family == AF_INET)
            mh->msg_namelen = umx_sa_map6(&tx->names[n]);
        tx->iov[n].iov_base = (void *)(uintptr_t)q->data;
        tx->iov[n].iov_len = q->len;
        /* a same-flow, same-size run of replies goes out as one GSO send */
        if (q->flow != UINT32_MAX && w->gso_ok && w->rs->cfg->gso && q->len > 0) {
            unsigned bytes = q->len;
            while (i + k < tx->npub && k < GSO_MAX_SEGS && tx->pub[i + k].flow == q->flow &&
                   tx->pub[i + k].listener == li && tx->pub[i + k].len <= q->len &&
                   tx->pub[i + k].len > 0 && bytes + tx->pub[i + k].len <= GSO_MAX_BYTES) {
                bytes += tx->pub[i + k].len;
                k++;
                if (tx->pub[i + k - 1].len < q->len)
                    break;
            }
        }
        if (k > 1) {
            /* iovecs for the run go after the batch's single slots */
            struct iovec *v = &tx->iov[w->rs->cfg->batch * 2 + n * GSO_MAX_SEGS];
            for (unsigned x = 0; x < k; x++) {
                v[x].iov_base = (void *)(uintptr_t)tx->pub[i + x].data;
                v[x].iov_len = tx->pub[i + x].len;
            }
            mh->msg_iov = v;
            mh->msg_iovlen = k;
        } else {
            mh->msg_iov = &tx->iov[n];
            mh->msg_iovlen = 1;
        }
        if (q->local.sin6_family)
            umx_tx_set_src(mh, tx->ctrl[n], fam, (const struct sockaddr *)&q->local, 0);
        if (k > 1) {
            umx_tx_add_gso(mh, tx->ctrl[n], (uint16_t)q->len);
            UMX_CTR_ADD(w->st.gso_sends, 1);
        }
        tx->mm[n].msg_len = k; /* remember the count; the kernel overwrites it */
        n++;
        i += k;
        if (n == w->rs->cfg->batch * 2)
            break;
    }
    if (n) {
        unsigned off = 0;
        unsigned counts[2048];
        for (unsigned x = 0; x < n && x < 2048; x++)
            counts[x] = tx->mm[x].msg_len;
        while (off < n) {
            int r = umx_sendmmsg(w->pub_fd[li], tx->mm + off, n - off);
            if (r <= 0) {
                if (r == -EIO || r == -EINVAL) {
                    /* GSO refused (or a bad source): retry datagram by datagram */
                    w->gso_ok = 0;
                }
                for (unsigned x = off; x < n; x++)
                    UMX_CTR_ADD(w->st.tx_errors, counts[x]);
                break;
            }
            for (unsigned x = off; x < off + (unsigned)r; x++) {
                UMX_CTR_ADD(w->st.tx_datagrams, counts[x]);
            }
            off += (unsigned)r;
        }
    }
}

static void flush_pub(struct umxd_worker *w)
{
    struct txstate *tx = w->tx;
    if (!tx->npub)
        return;
    for (unsigned li = 0; li < w->rs->cfg->nlisten; li++)
        flush_pub_listener(w, li);
    for (unsigned i = 0; i < tx->npub; i++)
        UMX_CTR_ADD(w->st.tx_bytes, tx->pub[i].len);
    tx->npub = 0;
    tx->replyoff = 0;
}

/* Built-in responders -------------------------------------------------------- */

static void builtin(struct umxd_worker *w, unsigned r, struct umx_rx_slot *s, unsigned li,
                    uint64_t now)
{
    const struct umxd_route *rt = route_of(w, r);
    struct sockaddr_in6 peer, local;
    unsigned slot = w->rs->slot[r];
    uint8_t *out;
    size_t n = 0;
    if (!rate_ok(w, ((struct ratestate *)w->rate)->replies, (const struct sockaddr *)&s->peer,
                 w->rs->cfg->rate_responses, w->rs->cfg->rate_responses * 2 + 1, now)) {
        UMX_CTR_ADD(w->st.dropped_rate, 1);
        UMX_CTR_ADD(w->rst[slot].drops, 1);
        UMX_CTR_ADD(w->rst[slot].drop_rate, 1);
        return;
    }
    store_addr(&peer, &s->peer);
    memset(&local, 0, sizeof(local));
    if (s->has_local)
        store_addr(&local, &s->local);
    if (rt->action == UMXD_ECHO) {
        out = reply_space(w, s->len);
        if (!out && s->len)
            return;
        if (s->len)
            memcpy(out, s->buf, s->len);
        n = s->len;
        UMX_CTR_ADD(w->st.echo_replies, 1);
    } else {
        int k;
        /* never more bytes than the request (no amplification), unless the
         * route allows the minimal answer (44 bytes covers IPv6) */
        size_t cap = s->len;
        if (rt->stun_minimal && cap < 44)
            cap = 44;
        out = reply_space(w, cap);
        if (!out) {
            UMX_CTR_ADD(w->st.dropped_stun_size, 1);
            return;
        }
        k = umxd_stun_respond(s->buf, s->len, (const struct sockaddr *)&s->peer, out, cap);
        if (k <= 0) {
            UMX_CTR_ADD(w->st.dropped_stun_size, 1);
            UMX_CTR_ADD(w->rst[slot].drops, 1);
            UMX_CTR_ADD(w->rst[slot].drop_stun_size, 1);
            ((struct txstate *)w->tx)->replyoff -= cap;
            return;
        }
        ((struct txstate *)w->tx)->replyoff -= cap - (size_t)k;
        n = (size_t)k;
        UMX_CTR_ADD(w->st.stun_replies, 1);
    }
    UMX_CTR_ADD(w->rst[slot].tx_datagrams, 1);
    UMX_CTR_ADD(w->rst[slot].tx_bytes, n);
    queue_pub(w, li, out, n, &peer, &local, UINT32_MAX);
}

/* Shared-port input ---------------------------------------------------------- */

/* First match wins over the routes in order; the route set's candidate
 * lists skip the routes whose rule cannot match the first byte (same
 * answer and UMX_MORE handling as trying every route, see
 * umx_rule_index_eval), so a datagram costs only the probes that could
 * claim it. */
static int classify(struct umxd_worker *w, struct umx_rx_slot *s, uint64_t now, int *more)
{
    struct umx_probe_in in = {s->buf, s->len, (const struct sockaddr *)&s->peer, now, w->pstate};
    int r;
    UMX_CTR_ADD(w->st.classified, 1);
    r = umx_rule_index_eval(&w->rs->idx, &in, more);
    if (r >= 0)
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].matched, 1);
    return r;
}

/* Attach batches ----------------------------------------------------------- */

static void flush_att(struct umxd_worker *w);

static void queue_att(struct umxd_worker *w, struct umx_flow *f, const struct umx_rx_slot *s)
{
    struct txstate *tx = w->tx;
    struct flow *fl = fdata(f);
    struct attq *q;
    if (tx->natt >= w->d->cfg->batch * 2)
        flush_att(w);
    q = &tx->att[tx->natt++];
    q->f = f;
    q->client = fl->client;
    q->gen = fl->cgen;
    q->data = s->buf;
    q->len = (uint32_t)s->len;
    umx_att_encode_hdr(q->hdr, (const struct sockaddr *)&s->peer,
                       s->has_local ? (const struct sockaddr *)&s->local : NULL);
}

static void flush_att(struct umxd_worker *w)
{
    struct txstate *tx = w->tx;
    unsigned i = 0;
    while (i < tx->natt) {
        unsigned j = i, n;
        int r;
        while (j < tx->natt && tx->att[j].client == tx->att[i].client &&
               tx->att[j].gen == tx->att[i].gen)
            j++;
        n = j - i;
        for (unsigned k = 0; k < n; k++) {
            struct msghdr *mh = &tx->attmm[k].msg_hdr;
            memset(mh, 0, sizeof(*mh));
            tx->attiov[2 * k].iov_base = tx->att[i + k].hdr;
            tx->attiov[2 * k].iov_len = UMX_ATT_DATA_HDR;
            tx->attiov[2 * k + 1].iov_base = (void *)(uintptr_t)tx->att[i + k].data;
            tx->attiov[2 * k + 1].iov_len = tx->att[i + k].len;
            mh->msg_iov = &tx->attiov[2 * k];
            mh->msg_iovlen = 2;
        }
        r = umxd_attach_send_batch(w->d, tx->att[i].client, tx->att[i].gen, tx->attmm, n);
        if (r == -ESTALE) {
            /* the program went away: its flows go with it (each once) */
            for (unsigned k = i; k < j; k++) {
                struct umx_flow *f = tx->att[k].f;
                if (f->in_use && fdata(f)->attach && fdata(f)->cgen == tx->att[k].gen) {
                    close_flow(w, f);
                    umx_ft_remove(w->ft, f);
                    UMX_CTR_ADD(w->st.flows_closed, 1);
                }
                UMX_CTR_ADD(w->st.dropped_unclaimed, 1);
            }
        } else if (r < (int)n) {
            unsigned lost = r < 0 ? n : n - (unsigned)r;
            UMX_CTR_ADD(w->rst[fdata(tx->att[i].f)->slot].drops, lost);
        }
        i = j;
    }
    tx->natt = 0;
}

static int same_peer(const struct sockaddr_in6 *a, const struct sockaddr_storage *b)
{
    struct sockaddr_in6 x;
    store_addr(&x, b);
    return memcmp(a, &x, sizeof(x)) == 0;
}

static void hold_put(struct umxd_worker *w, const struct umx_rx_slot *s, uint64_t now)
{
    struct hold *h = ((struct txstate *)w->tx)->hold, *victim = NULL;
    if (s->len > HOLD_BYTES) {
        UMX_CTR_ADD(w->st.unmatched, 1);
        return;
    }
    for (unsigned i = 0; i < HOLD_SLOTS; i++) {
        if (h[i].state == 0 || (h[i].state == 1 && now - h[i].t > HOLD_NS)) {
            victim = &h[i];
            break;
        }
        if (h[i].state == 1 && (!victim || h[i].t < victim->t))
            victim = &h[i];
    }
    if (!victim)
        return; /* every slot is queued in this batch */
    if (victim->state == 1)
        UMX_CTR_ADD(w->st.unmatched, 1); /* the oldest held datagram is lost */
    victim->t = now;
    store_addr(&victim->peer, &s->peer);
    victim->len = (uint16_t)s->len;
    memcpy(victim->data, s->buf, s->len);
    victim->state = 1;
    UMX_CTR_ADD(w->st.pending, 1);
}

/* Sends (forward) or drops the datagrams held for this peer. */
static void hold_release(struct umxd_worker *w, const struct umx_rx_slot *s, struct umx_flow *f,
                         uint64_t now)
{
    struct hold *h = ((struct txstate *)w->tx)->hold;
    for (;;) {
        struct hold *first = NULL;
        /* oldest first: the order the client sent them */
        for (unsigned i = 0; i < HOLD_SLOTS; i++)
            if (h[i].state == 1 && now - h[i].t <= HOLD_NS && same_peer(&h[i].peer, &s->peer) &&
                (!first || h[i].t < first->t))
                first = &h[i];
        if (!first)
            return;
        if (f && !fdata(f)->attach) {
            queue_up(w, f, first->data, first->len);
            first->state = 2;
        } else {
            first->state = 0;
        }
    }
}

static void hold_gc(struct umxd_worker *w)
{
    struct hold *h = ((struct txstate *)w->tx)->hold;
    for (unsigned i = 0; i < HOLD_SLOTS; i++)
        if (h[i].state == 2)
            h[i].state = 0;
}

static void handle_dgram(struct umxd_worker *w, unsigned li, struct umx_rx_slot *s, uint64_t now)
{
    struct umx_flow_key k;
    struct umx_flow *f;
    struct flow *fl;
    int r, more;

    umx_flow_key_make(&k, s->has_local ? (const struct sockaddr *)&s->local : NULL,
                      (const struct sockaddr *)&s->peer, 0);
    f = umx_ft_lookup(w->ft, &k);
    if (f) {
        fl = fdata(f);
        if (route_of(w, fl->route)->classify_every && !fl->attach) {
            r = classify(w, s, now, &more);
            if (r >= 0 && (unsigned)r != fl->route) {
                /* a different route for this datagram (WebRTC-style mix):
                 * use that route's own flow for this peer */
                umx_flow_key_make(&k, s->has_local ? (const struct sockaddr *)&s->local : NULL,
                                  (const struct sockaddr *)&s->peer, (uint32_t)r + 1);
                goto route_flow;
            }
        }
        goto forward;
    }

    /* unknown address: a roaming peer that carries a known session key? */
    /* lengths learnt by any worker: the roamed address may land here */
    if ((w->roam_lens |= __atomic_load_n(&w->d->roam_lens, __ATOMIC_RELAXED))) {
        /* QUIC short headers do not say how long the connection id is: try
         * the lengths learnt from the backends' long headers (usually one) */
        for (unsigned cl = 0; cl <= 20; cl++) {
            uint8_t key[UMX_ROAM_MAX];
            size_t klen = 0;
            int kind = 0;
            if (!(w->roam_lens & (1u << cl)))
                continue;
            if (umx_roam_key_client(s->buf, s->len, cl, key + 1, &klen, &kind) != 1 || !klen)
                continue;
            key[0] = (uint8_t)kind;
            f = umx_ft_roam_lookup(w->ft, key, klen + 1);
            if (f && route_of(w, fdata(f)->route)->roaming && fdata(f)->established &&
                !fdata(f)->attach) {
                /* Move the flow to the new address. Only established flows
                 * move: the key was learnt from the backend's reply, so a
                 * spoofer must know a live session index to get here, and
                 * the backend still authenticates every packet. */
                struct umx_flow *old = umx_ft_lookup(w->ft, &k);
                if (!old && umx_ft_rekey(w->ft, f, &k) == 0) {
                    store_addr(&fdata(f)->peer, &s->peer);
                    if (s->has_local)
                        store_addr(&fdata(f)->local, &s->local);
                    UMX_CTR_ADD(w->st.flows_roamed, 1);
                    goto forward;
                }
            }
            if (!f) {
                /* another worker's flow? (the new address hashed elsewhere) */
                struct roam_ref ref;
                if (roam_find_shared(w, key, klen + 1, &ref) == 0 &&
                    ref.worker != (uint32_t)w->id && !umx_ft_lookup(w->ft, &k)) {
                    struct umx_flow *rf =
                        umx_ft_insert(w->ft, &k, UMX_FT_MAX_CLASSES - 1, now, release_cb, w);
                    if (rf) {
                        struct flow *rl = fdata(rf);
                        rl->up_fd = -1;
                        rl->gen = ++w->gen;
                        rl->relay = 1;
                        rl->relay_worker = (uint8_t)ref.worker;
                        rl->relay_idx = ref.idx;
                        rl->relay_gen = ref.gen;
                        store_addr(&rl->peer, &s->peer);
                        mbox_post(w, ref.worker, ref.idx, ref.gen, s, li);
                        return;
                    }
                }
            }
            if (kind != UMX_ROAM_QUIC)
                break; /* WireGuard keys do not depend on the length */
        }
    }
    if (w->d->attach) {
        /* a peer answering a datagram an attached program sent */
        uint16_t client;
        uint32_t cgen;
        char rname[UMXD_NAME_MAX];
        if (umxd_attach_find(w->d, (const struct sockaddr *)&s->peer, &client, &cgen, rname,
                             sizeof(rname)) == 0) {
            int ar = umxd_config_route(w->rs->cfg, rname);
            if (ar >= 0 && (f = new_attach_flow(w, &k, (unsigned)ar, s, li, client, cgen, now)))
                goto forward;
        }
    }

    r = classify(w, s, now, &more);
    if (r < 0) {
        if (more)
            hold_put(w, s, now);
        else
            UMX_CTR_ADD(w->st.unmatched, 1);
        return;
    }
route_flow:
    switch (route_of(w, (unsigned)r)->action) {
    case UMXD_DROP:
        UMX_CTR_ADD(w->st.dropped_action, 1);
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].drops, 1);
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].drop_action, 1);
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].rx_datagrams, 1);
        return;
    case UMXD_ECHO:
    case UMXD_STUN:
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].rx_datagrams, 1);
        UMX_CTR_ADD(w->rst[w->rs->slot[r]].rx_bytes, s->len);
        builtin(w, (unsigned)r, s, li, now);
        return;
    case UMXD_ATTACH: {
        uint16_t client;
        uint32_t cgen;
        if (!w->d->attach ||
            umxd_attach_pick(w->d, route_of(w, (unsigned)r)->name,
                             (const struct sockaddr *)&s->peer, &client, &cgen) < 0) {
            /* nobody holds the route: counted, never given to someone else */
            UMX_CTR_ADD(w->st.dropped_unclaimed, 1);
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drops, 1);
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drop_unclaimed, 1);
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].rx_datagrams, 1);
            return;
        }
        f = umx_ft_lookup(w->ft, &k);
        if (!f)
            f = new_attach_flow(w, &k, (unsigned)r, s, li, client, cgen, now);
        if (!f) {
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drops, 1);
            return;
        }
        goto forward;
    }
    case UMXD_FORWARD:
        break;
    }
    f = umx_ft_lookup(w->ft, &k);
    if (!f) {
        unsigned cost =
            route_of(w, (unsigned)r)->shared ? OVERLOAD_COST_SHARED : OVERLOAD_COST_SOCKET;
        if (overload_new_flows < cost ||
            !rate_ok(w, ((struct ratestate *)w->rate)->flows, (const struct sockaddr *)&s->peer,
                     w->rs->cfg->rate_new_flows, w->rs->cfg->rate_burst, now)) {
            UMX_CTR_ADD(w->st.dropped_rate, 1);
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drops, 1);
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drop_rate, 1);
            return;
        }
        if (overload_new_flows != UINT_MAX)
            overload_new_flows -= cost;
        f = new_flow(w, &k, (unsigned)r, s, li, now);
        if (!f) {
            UMX_CTR_ADD(w->rst[w->rs->slot[r]].drops, 1);
            return;
        }
        if (w->st.pending)
            hold_release(w, s, f, now);
    }
forward:
    fl = fdata(f);
    if (fl->relay) {
        /* a roamed peer whose flow lives on another worker (which counts) */
        umx_ft_touch(w->ft, f, UMX_FT_MAX_CLASSES, now);
        mbox_post(w, fl->relay_worker, fl->relay_idx, fl->relay_gen, s, li);
        return;
    }
    fl->rx_dgrams++;
    fl->rx_bytes += s->len;
    fl->listener = (uint8_t)li;
    UMX_CTR_ADD(w->rst[fl->slot].rx_datagrams, 1);
    UMX_CTR_ADD(w->rst[fl->slot].rx_bytes, s->len);
    umx_ft_touch(w->ft, f, UMX_FT_MAX_CLASSES, now);
    if (fl->attach) {
        if (fl->client == UMXD_ATTACH_FANOUT) {
            int ar =
                umxd_attach_deliver(w->d, fl->client, fl->cgen, route_of(w, fl->route)->name, s);
            if (ar < 0)
                UMX_CTR_ADD(w->rst[fl->slot].drops, 1);
            return;
        }
        queue_att(w, f, s);
        return;
    }
    queue_up(w, f, s->buf, s->len);
}

static void read_public(struct umxd_worker *w, unsigned li, uint64_t now)
{
    uint32_t ovfl_unused = 0;
    int n =
        umx_rx(w->pub_fd[li], w->rxb, w->rxb->n, w->pub_family[li], w->pub_port[li], &ovfl_unused);
    static __thread uint32_t last_ovfl[UMXD_MAX_LISTEN];
    if (ovfl_unused && ovfl_unused != last_ovfl[li]) {
        UMX_CTR_ADD(w->st.rx_kernel_drops, (uint32_t)(ovfl_unused - last_ovfl[li]));
        last_ovfl[li] = ovfl_unused;
    }
    if (n < 0) {
        UMX_CTR_ADD(w->st.rx_errors, 1);
        return;
    }
    /* A full batch means a backlog in the socket: overload. Then at most
     * OVERLOAD_BUDGET units of new flows per batch (8 with a socket each:
     * socket, connect and epoll_ctl, ~30 us; 24 on a shared upstream
     * socket) so the socket keeps draining and established
     * flows keep their datagrams; unvalidated newcomers are shed first
     * (drop.rate_limited). Per-prefix limits cannot do this against a flood
     * spread over many prefixes (tests/security/sec-flood.sh). */
    overload_new_flows = (unsigned)n >= w->rxb->n ? OVERLOAD_BUDGET : UINT_MAX;
    for (int i = 0; i < n; i++) {
        struct umx_rx_slot *s = &w->rxb->slots[i];
        if (s->truncated) {
            UMX_CTR_ADD(w->st.rx_truncated, 1);
            continue;
        }
        UMX_CTR_ADD(w->st.rx_datagrams, 1);
        UMX_CTR_ADD(w->st.rx_bytes, s->len);
        handle_dgram(w, li, s, now);
    }
    /* the receive buffers are reused by the next batch: send now */
    flush_up(w, now);
    flush_pub(w);
    if (((struct txstate *)w->tx)->natt)
        flush_att(w);
    if (w->st.pending)
        hold_gc(w);
}

/* Upstream input --------------------------------------------------------------- */

/* One datagram from a flow's backend: checks, counters, roaming keys, and
 * the reply queued to the shared port. Returns 0 if it was dropped. */
static int up_deliver(struct umxd_worker *w, struct umx_flow *f, struct umx_rx_slot *s,
                      uint64_t now)
{
    struct flow *fl = fdata(f);
    if (s->truncated) {
        UMX_CTR_ADD(w->st.rx_truncated, 1);
        return 0;
    }
    if (fl->shared || !route_of(w, fl->route)->connected) {
        /* unconnected upstream (TFTP answers from a new port) or the shared
         * socket (anyone may send to it): accept the backend's host only */
        struct sockaddr_in6 src;
        store_addr(&src, &s->peer);
        if (src.sin6_family != fl->upaddr.sin6_family ||
            (src.sin6_family == AF_INET
                 ? memcmp(&((struct sockaddr_in *)(void *)&src)->sin_addr,
                          &((struct sockaddr_in *)(void *)&fl->upaddr)->sin_addr, 4) != 0
                 : memcmp(&src.sin6_addr, &fl->upaddr.sin6_addr, 16) != 0)) {
            UMX_CTR_ADD(w->st.up_rx_foreign, 1);
            return 0;
        }
        /* follow the port the backend answered from: the peer's next
         * datagrams (TFTP ACKs) belong to that transfer socket, not to
         * the listening port the first request went to */
        fl->upaddr = src;
    }
    UMX_CTR_ADD(w->st.up_rx_datagrams, 1);
    UMX_CTR_ADD(w->st.up_rx_bytes, s->len);
    fl->tx_dgrams++;
    fl->tx_bytes += s->len;
    UMX_CTR_ADD(w->rst[fl->slot].tx_datagrams, 1);
    UMX_CTR_ADD(w->rst[fl->slot].tx_bytes, s->len);
    fl->established = 1;
    if (route_of(w, fl->route)->roaming) {
        /* every handshake the backend sends may start a new session
         * index (WireGuard rekeys every two minutes): learn each one;
         * the probe rejects other datagrams on their first byte */
        uint8_t key[UMX_ROAM_MAX];
        size_t klen = 0;
        int kind = 0;
        if (umx_roam_key_server(s->buf, s->len, key + 1, &klen, &kind) == 1 && klen) {
            key[0] = (uint8_t)kind;
            umx_ft_roam_set(w->ft, f, key, klen + 1);
            roam_publish(w, f, key, klen + 1, now);
            /* remember the length for short-header lookups (bit 0 for
             * WireGuard, whose key length is fixed) */
            w->roam_lens |= kind == UMX_ROAM_QUIC ? 1u << klen : 1u;
            if ((__atomic_load_n(&w->d->roam_lens, __ATOMIC_RELAXED) & w->roam_lens) !=
                w->roam_lens)
                __atomic_or_fetch(&w->d->roam_lens, w->roam_lens, __ATOMIC_RELAXED);
        }
    }
    queue_pub(w, fl->listener, s->buf, s->len, &fl->peer, &fl->local, f->idx);
    return 1;
}

static void read_upstream(struct umxd_worker *w, uint32_t idx, uint32_t gen, uint64_t now)
{
    struct umx_flow *f = umx_ft_at(w->ft, idx);
    struct flow *fl;
    int n;
    uint32_t ovfl = 0;
    if (!f || (fdata(f)->gen & 0xffffff) != gen || fdata(f)->up_fd < 0 || fdata(f)->shared)
        return; /* stale event for a closed flow */
    fl = fdata(f);
    n = umx_rx(fl->up_fd, w->uprxb, w->uprxb->n, fl->upaddr.sin6_family, 0, &ovfl);
    if (n < 0) {
        UMX_CTR_ADD(w->st.up_rx_errors, 1);
        if (n == -ECONNREFUSED) {
            /* ICMP port unreachable from the backend: passive health */
            mark_down(w, fl, now);
        }
        return;
    }
    for (int i = 0; i < n; i++)
        up_deliver(w, f, &w->uprxb->slots[i], now);
    if (n > 0)
        umx_ft_touch(w->ft, f, cls_established(fl->route), now);
    flush_pub(w);
}

/* The shared socket's error queue (EPOLLERR): an ICMP port unreachable
 * names the destination it answers, a backend of a shared route, which is
 * then marked down as a connected socket's ECONNREFUSED would. Bounded: the
 * queue is drained at most 64 entries per wake-up (the rest keep EPOLLERR
 * up for the next one). */
static void read_shared_errors(struct umxd_worker *w, int fd, uint64_t now)
{
    const struct umxd_config *c = w->rs->cfg;
    for (int k = 0; k < 64; k++) {
        struct sockaddr_storage dst;
        uint8_t ctrl[512];
        uint8_t byte;
        struct iovec iov = {&byte, 1};
        struct msghdr mh;
        struct sockaddr_in6 to;
        int refused = 0;
        memset(&mh, 0, sizeof(mh));
        mh.msg_name = &dst;
        mh.msg_namelen = sizeof(dst);
        mh.msg_iov = &iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctrl;
        mh.msg_controllen = sizeof(ctrl);
        if (recvmsg(fd, &mh, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
            return;
        UMX_CTR_ADD(w->st.up_rx_errors, 1);
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
            struct sock_extended_err ee;
            if (!((cm->cmsg_level == SOL_IP && cm->cmsg_type == IP_RECVERR) ||
                  (cm->cmsg_level == SOL_IPV6 && cm->cmsg_type == IPV6_RECVERR)) ||
                cm->cmsg_len < CMSG_LEN(sizeof(ee)))
                continue;
            memcpy(&ee, CMSG_DATA(cm), sizeof(ee));
            refused |= ee.ee_errno == ECONNREFUSED;
        }
        if (!refused || mh.msg_namelen == 0)
            continue;
        store_addr(&to, &dst);
        for (unsigned r = 0; r < c->nroutes; r++) {
            const struct umxd_route *rt = &c->routes[r];
            if (!rt->shared || rt->action != UMXD_FORWARD)
                continue;
            for (unsigned b = 0; b < rt->nbackends; b++) {
                struct sockaddr_in6 ba;
                store_addr(&ba, &rt->backends[b].addr);
                if (umx_sa_equal((const struct sockaddr *)&ba, (const struct sockaddr *)&to))
                    mark_down_backend(w, r, b, now);
            }
        }
    }
}

/* The shared socket of a family: each reply finds its flow by the address
 * it was sent to. */
static void read_shared(struct umxd_worker *w, unsigned k, uint32_t events, uint64_t now)
{
    int fd = w->shr_fd[k];
    uint32_t ovfl = 0;
    int n;
    if (fd < 0)
        return;
    if (events & EPOLLERR)
        read_shared_errors(w, fd, now);
    n = umx_rx(fd, w->uprxb, w->uprxb->n, k ? AF_INET6 : AF_INET, 0, &ovfl);
    if (n < 0) {
        /* a pending ICMP error is reported once here too; the queue has it */
        if (n != -ECONNREFUSED && n != -EAGAIN)
            UMX_CTR_ADD(w->st.up_rx_errors, 1);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct umx_rx_slot *s = &w->uprxb->slots[i];
        struct umx_flow *f = NULL;
        if (s->has_local) {
            struct sockaddr_in6 dst;
            uint8_t a[16];
            store_addr(&dst, &s->local);
            addr16(&dst, a);
            f = shr_find(w, a);
        }
        if (!f || !fdata(f)->shared) {
            UMX_CTR_ADD(w->st.up_rx_foreign, 1);
            continue;
        }
        if (up_deliver(w, f, s, now))
            umx_ft_touch(w->ft, f, cls_established(fdata(f)->route), now);
    }
    flush_pub(w);
}

/* Timers ------------------------------------------------------------------------ */

static void arm_timer(struct umxd_worker *w, uint64_t now)
{
    struct itimerspec its;
    uint64_t due = umx_ft_next_expiry(w->ft, now);
    /* at least every second: picks up route-set changes and drains even
     * when no flow is due */
    if (due > 1000000000ull)
        due = 1000000000ull;
    if (due < 1000000ull)
        due = 1000000ull;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(due / 1000000000ull);
    its.it_value.tv_nsec = (long)(due % 1000000000ull);
    timerfd_settime(w->tfd, 0, &its, NULL);
}

static void serve_snapshot(struct umxd_worker *w, uint64_t now)
{
    uint32_t cap;
    pthread_mutex_lock(&w->snap_mu);
    if (!w->snap_req) {
        pthread_mutex_unlock(&w->snap_mu);
        return;
    }
    w->snap_n = 0;
    cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap && w->snap_n < w->snap_max; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        struct umxd_flow_info *o;
        struct flow *fl;
        const struct umxd_route *rt;
        if (!f)
            continue;
        fl = fdata(f);
        rt = route_of(w, fl->route);
        if (w->snap_route[0] && strcmp(w->snap_route, rt->name) != 0)
            continue;
        o = &w->snap_out[w->snap_n++];
        memset(o, 0, sizeof(*o));
        memcpy(o->route, rt->name, sizeof(o->route));
        o->peer = fl->peer;
        o->local = fl->local;
        if (fl->backend < rt->nbackends)
            memcpy(o->backend, rt->backends[fl->backend].text, sizeof(o->backend));
        o->worker = w->id;
        o->established = fl->established;
        o->age_ms = (now - f->created_ns) / 1000000u;
        o->idle_ms = (now - f->last_ns) / 1000000u;
        o->rx_datagrams = fl->rx_dgrams;
        o->rx_bytes = fl->rx_bytes;
        o->tx_datagrams = fl->tx_dgrams;
        o->tx_bytes = fl->tx_bytes;
    }
    w->snap_req = 0;
    w->snap_done = 1;
    pthread_cond_broadcast(&w->snap_cv);
    pthread_mutex_unlock(&w->snap_mu);
}

/* An attached program left: close the flows pinned to it (O(flows), only
 * on departures). */
static void sweep_attach(struct umxd_worker *w)
{
    uint64_t e = __atomic_load_n(&w->d->attach_epoch, __ATOMIC_ACQUIRE);
    uint32_t cap;
    if (e == w->attach_epoch_seen)
        return;
    w->attach_epoch_seen = e;
    cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        struct flow *fl;
        if (!f)
            continue;
        fl = fdata(f);
        if (fl->attach && !umxd_attach_alive(w->d, fl->client, fl->cgen)) {
            close_flow(w, f);
            umx_ft_remove(w->ft, f);
            UMX_CTR_ADD(w->st.flows_closed, 1);
        }
    }
}

/* Adaptive busy polling (`busy-poll = US`). A request/response exchange
 * through the proxy costs it two wake-ups from epoll_wait (peer -> proxy,
 * backend -> proxy), each a cross-CPU wake-up of an idle, often halted,
 * vCPU: that, not the forwarding work, is most of the latency we add. Kernel
 * busy polling (SO_BUSY_POLL) needs a NAPI id, which loopback and many
 * virtual NICs lack, so the worker polls itself: after a round that saw
 * datagrams it keeps calling epoll_wait with timeout 0 until `busy-poll` us
 * have passed since the last one, then sleeps again. The reply the backend
 * sends a few microseconds after our forward is then picked up without a
 * wake-up. The budget is read from the worker's route set, so a reload
 * changes it between rounds (0 stops polling at once). The cost: a worker
 * whose traffic never pauses longer than the budget never sleeps. */
static int busy_poll_timeout(const struct umxd_worker *w, int traffic, uint64_t now,
                             uint64_t *until)
{
    uint64_t budget = (uint64_t)w->rs->cfg->busy_poll_us * 1000u;
    if (!budget)
        return 1000;
    if (traffic)
        *until = now + budget;
    return now < *until ? 0 : 1000;
}

static void *worker_main(void *arg)
{
    struct umxd_worker *w = arg;
    struct epoll_event evs[64];
    uint64_t poll_until = 0; /* busy-poll: do not sleep before this time */
    int timeout = 1000;
    maybe_switch(w);
    arm_timer(w, umx_now_ns());
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        int n = epoll_wait(w->epfd, evs, (int)UMX_ARRAY_LEN(evs), timeout);
        uint64_t now = umx_now_ns();
        int traffic = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        maybe_switch(w);
        sweep_attach(w);
        UMX_CTR_ADD(w->loops, 1);
        for (int i = 0; i < n; i++) {
            uint64_t u = evs[i].data.u64;
            unsigned type = (unsigned)(u >> 56);
            uint32_t idx = (uint32_t)u;
            if (type == EV_PUB) {
                read_public(w, idx, now);
                traffic = 1;
            } else if (type == EV_UP) {
                read_upstream(w, idx, (uint32_t)(u >> 32) & 0xffffff, now);
                traffic = 1;
            } else if (type == EV_SHR) {
                read_shared(w, idx, evs[i].events, now);
                traffic = 1;
            } else if (type == EV_WAKE) {
                uint64_t v;
                if (read(w->evfd, &v, sizeof(v)) < 0) {
                    /* already drained */
                }
            } else if (type == EV_TIMER) {
                uint64_t v;
                if (read(w->tfd, &v, sizeof(v)) < 0) {
                    /* spurious */
                }
                {
                    unsigned k = umx_ft_expire(w->ft, now, 4096, release_cb, w);
                    (void)k;
                }
                arm_timer(w, now);
            }
        }
        mbox_drain(w, now);
        serve_snapshot(w, now);
        timeout = busy_poll_timeout(w, traffic, now, &poll_until);
    }
    /* close every flow's upstream socket */
    {
        uint32_t cap = umx_ft_capacity(w->ft);
        for (uint32_t i = 0; i < cap; i++) {
            struct umx_flow *f = umx_ft_at(w->ft, i);
            if (f) {
                close_flow(w, f);
                umx_ft_remove(w->ft, f);
            }
        }
    }
    for (unsigned k = 0; k < 2; k++)
        if (w->shr_fd[k] >= 0) {
            close(w->shr_fd[k]);
            w->shr_fd[k] = -1;
        }
    return NULL;
}

static int add_ev(int epfd, int fd, uint64_t data)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = data;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static int tx_alloc(struct umxd_worker *w)
{
    struct txstate *tx = calloc(1, sizeof(*tx));
    unsigned b = w->d->cfg->batch * 2;
    if (!tx)
        return -ENOMEM;
    w->tx = tx;
    /* upstream queue: a whole receive batch plus attach sends */
    tx->up = calloc(b, sizeof(*tx->up));
    tx->pub = calloc(b, sizeof(*tx->pub));
    tx->mm = calloc(b, sizeof(*tx->mm));
    tx->iov = calloc((size_t)b * 2 + (size_t)b * GSO_MAX_SEGS, sizeof(*tx->iov));
    tx->ctrl = calloc(b, sizeof(*tx->ctrl));
    tx->names = calloc(b, sizeof(*tx->names));
    tx->pxhdr = calloc(b, sizeof(*tx->pxhdr));
    tx->hold = calloc(HOLD_SLOTS, sizeof(*tx->hold));
    tx->att = calloc(b, sizeof(*tx->att));
    tx->attmm = calloc(b, sizeof(*tx->attmm));
    tx->attiov = calloc((size_t)b * 2, sizeof(*tx->attiov));
    tx->replycap = 256 * 1024;
    tx->replybuf = malloc(tx->replycap);
    if (!tx->up || !tx->pub || !tx->mm || !tx->iov || !tx->ctrl || !tx->names || !tx->pxhdr ||
        !tx->replybuf || !tx->hold || !tx->att || !tx->attmm || !tx->attiov)
        return -ENOMEM;
    return 0;
}

static void tx_free(struct txstate *tx)
{
    if (!tx)
        return;
    free(tx->up);
    free(tx->pub);
    free(tx->mm);
    free(tx->iov);
    free(tx->ctrl);
    free(tx->names);
    free(tx->pxhdr);
    free(tx->hold);
    free(tx->att);
    free(tx->attmm);
    free(tx->attiov);
    free(tx->replybuf);
    free(tx);
}

int umxd_worker_start(struct umxd *d, int id)
{
    struct umxd_worker *w = calloc(1, sizeof(*w));
    int r;
    if (!w)
        return -ENOMEM;
    w->d = d;
    w->id = id;
    w->gso_ok = 1;
    w->shr_fd[0] = w->shr_fd[1] = -1;
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    pthread_mutex_init(&w->snap_mu, NULL);
    pthread_cond_init(&w->snap_cv, NULL);
    d->w[id] = w;
    if (w->epfd < 0 || w->evfd < 0 || w->tfd < 0)
        return -errno;
    r = umx_ft_new(&w->ft, d->cfg->max_flows, sizeof(struct flow), d->hashkey);
    if (r < 0)
        return r;
    /* shared-upstream address map: twice the flow table, so a probe run
     * always ends at an empty slot */
    r = umxd_addrmap_init(&w->shr, 2u * umx_ft_capacity(w->ft));
    if (r < 0)
        return r;
    r = umx_rxb_new(&w->rxb, d->cfg->batch, 65535);
    if (r < 0)
        return r;
    r = umx_rxb_new(&w->uprxb, d->cfg->batch, 65535);
    if (r < 0)
        return r;
    r = tx_alloc(w);
    if (r < 0)
        return r;
    w->mbox = calloc(1, sizeof(struct mbox));
    if (!w->mbox)
        return -ENOMEM;
    pthread_mutex_init(&((struct mbox *)w->mbox)->mu, NULL);
    w->rate = calloc(1, sizeof(struct ratestate));
    if (!w->rate)
        return -ENOMEM;
    if (umx_probe_state_new(&w->pstate, 1024) < 0)
        w->pstate = NULL; /* probes then decide on one datagram */
    for (unsigned li = 0; li < d->cfg->nlisten; li++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        w->pub_fd[li] = d->lfd[li][id];
        if (getsockname(w->pub_fd[li], (struct sockaddr *)&ss, &sl) < 0)
            return -errno;
        w->pub_family[li] = ss.ss_family;
        w->pub_port[li] = ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port;
        r = add_ev(w->epfd, w->pub_fd[li], ev_make(EV_PUB, 0, li));
        if (r < 0)
            return r;
    }
    r = add_ev(w->epfd, w->evfd, ev_make(EV_WAKE, 0, 0));
    if (r == 0)
        r = add_ev(w->epfd, w->tfd, ev_make(EV_TIMER, 0, 0));
    if (r < 0)
        return r;
    r = pthread_create(&w->thread, NULL, worker_main, w);
    return -r;
}

static void wake(struct umxd_worker *w)
{
    uint64_t one = 1;
    if (write(w->evfd, &one, sizeof(one)) < 0) {
        /* counter full: a wake-up is pending anyway */
    }
}

void umxd_wake_workers(struct umxd *d)
{
    for (unsigned i = 0; i < d->nworkers; i++)
        if (d->w[i])
            wake(d->w[i]);
}

void umxd_worker_stop_all(struct umxd *d)
{
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
        wake(w);
    }
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        if (w->thread)
            pthread_join(w->thread, NULL);
        umx_ft_free(w->ft);
        umxd_addrmap_free(&w->shr);
        umx_rxb_free(w->rxb);
        umx_rxb_free(w->uprxb);
        tx_free(w->tx);
        free(w->rate);
        if (w->mbox)
            pthread_mutex_destroy(&((struct mbox *)w->mbox)->mu);
        free(w->mbox);
        umx_probe_state_free(w->pstate);
        if (w->epfd >= 0)
            close(w->epfd);
        if (w->evfd >= 0)
            close(w->evfd);
        if (w->tfd >= 0)
            close(w->tfd);
        pthread_mutex_destroy(&w->snap_mu);
        pthread_cond_destroy(&w->snap_cv);
        free(w);
        d->w[i] = NULL;
    }
}

void umxd_publish(struct umxd *d, struct umxd_routeset *rs)
{
    struct umxd_routeset *old = d->rs;
    rs->epoch = ++d->epoch;
    rs->older = old;
    __atomic_store_n(&d->rs, rs, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < d->nworkers; i++)
        if (d->w[i])
            wake(d->w[i]);
}

void umxd_collect(struct umxd *d)
{
    uint64_t min = UINT64_MAX;
    struct umxd_routeset *rs = d->rs, *old;
    for (unsigned i = 0; i < d->nworkers; i++) {
        uint64_t e;
        if (!d->w[i])
            continue;
        e = __atomic_load_n(&d->w[i]->seen_epoch, __ATOMIC_ACQUIRE);
        if (e < min)
            min = e;
    }
    if (!rs || min < rs->epoch)
        return;
    /* every worker runs the current set: all older ones can go */
    old = rs->older;
    rs->older = NULL;
    while (old) {
        struct umxd_routeset *next = old->older;
        umxd_config_free(old->cfg);
        free(old);
        old = next;
    }
}

void umxd_stats_sum(struct umxd *d, struct umxd_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
#define SUM(f, n, h) out->f += UMX_CTR_GET(w->st.f);
        UMXD_STATS(SUM)
#undef SUM
    }
}

void umxd_route_stats_sum(struct umxd *d, unsigned slot, struct umxd_route_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= UMXD_MAX_SLOTS)
        return;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
#define RSUM(f, n, h) out->f += UMX_CTR_GET(w->rst[slot].f);
        UMXD_ROUTE_STATS(RSUM)
#undef RSUM
        out->active_flows += UMX_CTR_GET(w->rst[slot].active_flows);
    }
}

unsigned umxd_flows_snapshot(struct umxd *d, const char *route, struct umxd_flow_info *out,
                             unsigned max)
{
    unsigned total = 0;
    for (unsigned i = 0; i < d->nworkers && total < max; i++) {
        struct umxd_worker *w = d->w[i];
        struct timespec ts;
        if (!w)
            continue;
        pthread_mutex_lock(&w->snap_mu);
        w->snap_out = out + total;
        w->snap_max = max - total;
        w->snap_n = 0;
        w->snap_done = 0;
        w->snap_req = 1;
        memset(w->snap_route, 0, sizeof(w->snap_route));
        if (route)
            memcpy(w->snap_route, route, strnlen(route, sizeof(w->snap_route) - 1));
        pthread_mutex_unlock(&w->snap_mu);
        wake(w);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&w->snap_mu);
        while (!w->snap_done) {
            if (pthread_cond_timedwait(&w->snap_cv, &w->snap_mu, &ts) != 0)
                break;
        }
        if (w->snap_done)
            total += w->snap_n;
        w->snap_req = 0;
        pthread_mutex_unlock(&w->snap_mu);
    }
    return total;
}

int umxd_slot(struct umxd *d, const char *name)
{
    for (unsigned i = 0; i < d->nslots; i++)
        if (strcmp(d->slot_name[i], name) == 0)
            return (int)i;
    if (d->nslots >= UMXD_MAX_SLOTS)
        return -1;
    memcpy(d->slot_name[d->nslots], name, strnlen(name, UMXD_NAME_MAX - 1));
    return (int)d->nslots++;
}
