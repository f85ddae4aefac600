/*
 * upsock.c - upstream sockets: how a flow reaches its backend. One
 * connected (or source-bound, or transparent) socket per flow, or the
 * worker's shared socket of the family with a source address of the route's
 * prefix per flow (upstream = shared).
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "path_int.h"

int add_ev(int epfd, int fd, uint64_t data)
{
    struct epoll_event ev;
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = data;
    return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

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
    if (!f || !umxd_fl(f)->shared)
        return -1;
    addr16(&umxd_fl(f)->upsrc, out);
    return 0;
}

static struct umx_flow *shr_lookup(struct umxd_worker *w, const uint8_t a[16])
{
    uint32_t idx;
    if (!umxd_addrmap_find(&w->shr, a, shr_key, w, &idx))
        return NULL;
    return umx_ft_at(w->ft, idx);
}

static void shr_del(struct umxd_worker *w, struct umx_flow *f)
{
    uint8_t a[16];
    addr16(&umxd_fl(f)->upsrc, a);
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
        if (!shr_lookup(w, a))
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
    struct umxd_flow *fl = umxd_fl(f);
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

int open_upstream(struct umxd_worker *w, struct umx_flow *f, const struct umxd_route *rt)
{
    struct umxd_flow *fl = umxd_fl(f);
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

/* The flow's end of its upstream: a shared flow gives its source address
 * back, a socket flow closes its descriptor. */
void close_upstream(struct umxd_worker *w, struct umx_flow *f)
{
    struct umxd_flow *fl = umxd_fl(f);
    if (fl->shared) {
        shr_del(w, f);
        fl->shared = 0;
        fl->up_fd = -1;
    } else if (fl->up_fd >= 0) {
        close(fl->up_fd);
        fl->up_fd = -1;
        w->fd_flows--;
    }
}

/* A shared flow handed over by the previous process (handoff.c): its
 * source address joins the map, as open_shared does for a new one. */
void shr_adopt(struct umxd_worker *w, struct umx_flow *f)
{
    uint8_t a[16];
    addr16(&umxd_fl(f)->upsrc, a);
    umxd_addrmap_add(&w->shr, a, f->idx);
}

/* The shared flow a backend's reply to dst (its PKTINFO destination)
 * belongs to. */
struct umx_flow *shr_find(struct umxd_worker *w, const struct sockaddr_storage *dst)
{
    struct sockaddr_in6 d6;
    uint8_t a[16];
    struct umx_flow *f;
    umxd_store_addr(&d6, dst);
    addr16(&d6, a);
    f = shr_lookup(w, a);
    return f && umxd_fl(f)->shared ? f : NULL;
}
