/*
 * mux.c - the library's loop: endpoints, handlers, dispatch, timers,
 * counters. One thread runs udpmux_process(); any thread may send.
 *
 * Classification is the daemon's (daemon/worker.c, classify()): the live
 * handlers' rules in registration order are compiled into the same
 * candidate index (umx_rule_index, lib/rules/rule.c), probes get the real
 * monotonic time and a per-peer probe state, and a datagram a probe cannot
 * decide alone (UMX_MORE: a QUIC ClientHello split over Initials) is held
 * in a small pool until a later datagram of the same peer decides, then
 * delivered first, in arrival order. What the library does not do: it has
 * no flows (every datagram is classified; a handler sees a peer's later
 * datagrams only if they match its rule too), no roaming, no backends, and
 * its pool is smaller (HOLD_SLOTS). Beyond UMX_RULE_INDEX_MAX handlers it
 * falls back to trying each rule in order, with the same answers.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "io/udp.h"

struct endpoint {
    int fd;
    int family;
    uint16_t port; /* network order */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t ovfl_last;
    int dualstack; /* IPv6 socket that also takes IPv4 (V6ONLY off) */
};

/* Handler and timer ids carry the slot in the low 16 bits (max_handlers
 * and max_timers are at most 65536) and the slot's generation in bits
 * 16-30. Slots are reused once a handler is removed or a timer fired or was
 * cancelled; the generation moves on each time, so an old id no longer
 * names the slot's next occupant (until the same slot has been reused
 * 32768 times). A slot's first use has generation 0, so the ids of a mux
 * that never removes anything are 0, 1, 2... as they always were. */
#define ID_SLOT_BITS 16
#define ID_SLOT_MASK 0xffffu
#define ID_GEN_MASK 0x7fffu

static int id_make(unsigned slot, unsigned gen)
{
    return (int)((gen & ID_GEN_MASK) << ID_SLOT_BITS | slot);
}

/* Held datagrams (UMX_MORE): few and small. A split ClientHello is two or
 * three Initials of at most ~1500 bytes; a longer datagram is not held but
 * handled as undecided (default handler). The time limit is the quic
 * probe's own (QUIC_PENDING_NS): after it the probe forgets the peer, so
 * nothing could decide the held datagrams any more. */
#define HOLD_SLOTS 16
#define HOLD_BYTES 2048
#define HOLD_NS (3ull * 1000000000ull)

struct held {
    int used;
    int ep;
    uint64_t t;
    uint64_t seq; /* arrival order */
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
    int ifindex;
    size_t len;
    uint8_t data[HOLD_BYTES];
};

struct handler {
    int in_use;
    unsigned gen;
    char *name;
    struct udpmux_rule *rule;
    udpmux_handler_fn *fn;
    void *arg;
    uint64_t count;
};

struct timer {
    int in_use;
    unsigned gen;
    uint64_t due_ns;
    udpmux_timer_fn *fn;
    void *arg;
};

struct udpmux {
    struct udpmux_config cfg;
    int epfd;
    int wakefd;
    volatile int stop;
    int in_process;
    /* Endpoints live in a fixed array of max_endpoints; an entry is
     * written once, before neps is raised past it with a release store.
     * udpmux_send() on another thread loads neps with acquire and reads
     * only entries below it, so it never sees a half-written endpoint and
     * the array never moves under it. */
    struct endpoint *eps;
    unsigned neps;
    struct handler *handlers; /* max_handlers slots */
    unsigned *order;          /* live slots in registration (= match) order */
    unsigned nlive;
    struct umx_rule_index *idx; /* over order[], when nlive <= UMX_RULE_INDEX_MAX */
    int use_idx;
    struct umx_probe_state *pstate;
    struct held *hold;
    unsigned nheld;
    uint64_t hold_seq;
    udpmux_handler_fn *deffn;
    void *defarg;
    struct timer *timers;
    struct umx_rxb *rxb;
    struct udpmux_stats st;
};

UDPMUX_API void udpmux_config_init(struct udpmux_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->batch = 32;
    cfg->max_dgram = 65535;
    cfg->max_handlers = 64;
    cfg->max_timers = 256;
    cfg->max_endpoints = 16;
}

UDPMUX_API int udpmux_new(struct udpmux **out, const struct udpmux_config *cfg)
{
    struct udpmux *m;
    struct udpmux_config def;
    struct epoll_event ev;
    int r;

    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!cfg) {
        udpmux_config_init(&def);
        cfg = &def;
    }
    if (cfg->batch == 0 || cfg->batch > 1024 || cfg->max_dgram == 0 || cfg->max_dgram > 65535 ||
        cfg->max_handlers == 0 || cfg->max_handlers > 65536 || cfg->max_endpoints == 0 ||
        cfg->max_endpoints > 1024 || cfg->max_timers > 65536)
        return -EINVAL;
    m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    m->cfg = *cfg;
    m->epfd = m->wakefd = -1;
    m->eps = calloc(cfg->max_endpoints, sizeof(*m->eps));
    m->handlers = calloc(cfg->max_handlers, sizeof(*m->handlers));
    m->order = calloc(cfg->max_handlers, sizeof(*m->order));
    m->idx = calloc(1, sizeof(*m->idx));
    m->hold = calloc(HOLD_SLOTS, sizeof(*m->hold));
    m->timers = cfg->max_timers ? calloc(cfg->max_timers, sizeof(*m->timers)) : NULL;
    if (!m->eps || !m->handlers || !m->order || !m->idx || !m->hold ||
        (cfg->max_timers && !m->timers)) {
        r = -ENOMEM;
        goto fail;
    }
    m->use_idx = 1; /* the empty index: nothing matches */
    r = umx_probe_state_new(&m->pstate, HOLD_SLOTS);
    if (r < 0)
        goto fail;
    r = umx_rxb_new(&m->rxb, cfg->batch, cfg->max_dgram);
    if (r < 0)
        goto fail;
    m->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (m->epfd < 0) {
        r = -errno;
        goto fail;
    }
    m->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wakefd < 0) {
        r = -errno;
        goto fail;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = UINT32_MAX;
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->wakefd, &ev) < 0) {
        r = -errno;
        goto fail;
    }
    *out = m;
    return 0;
fail:
    udpmux_free(m);
    return r;
}

UDPMUX_API void udpmux_free(struct udpmux *m)
{
    if (!m)
        return;
    for (unsigned i = 0; i < m->neps; i++)
        if (m->eps[i].fd >= 0)
            close(m->eps[i].fd);
    if (m->handlers)
        for (unsigned i = 0; i < m->cfg.max_handlers; i++) {
            udpmux_rule_free(m->handlers[i].rule);
            free(m->handlers[i].name);
        }
    if (m->epfd >= 0)
        close(m->epfd);
    if (m->wakefd >= 0)
        close(m->wakefd);
    umx_rxb_free(m->rxb);
    free(m->eps);
    free(m->handlers);
    free(m->order);
    free(m->idx);
    free(m->hold);
    umx_probe_state_free(m->pstate);
    free(m->timers);
    free(m);
}

static int add_endpoint(struct udpmux *m, int fd)
{
    struct endpoint *e;
    struct epoll_event ev;
    if (m->neps >= m->cfg.max_endpoints)
        return -ENOSPC;
    e = &m->eps[m->neps];
    memset(e, 0, sizeof(*e));
    e->fd = fd;
    e->addrlen = sizeof(e->addr);
    if (getsockname(fd, (struct sockaddr *)&e->addr, &e->addrlen) < 0)
        return -errno;
    e->family = e->addr.ss_family;
    if (e->family == AF_INET6) {
        /* read once here, not on every send to an IPv4 peer */
        int v6only = 1;
        socklen_t l = sizeof(v6only);
        e->dualstack = getsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &l) == 0 && !v6only;
    }
    if (e->family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, &e->addr, sizeof(s4));
        e->port = s4.sin_port;
    } else if (e->family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, &e->addr, sizeof(s6));
        e->port = s6.sin6_port;
    } else {
        return -EAFNOSUPPORT;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u32 = m->neps;
    if (epoll_ctl(m->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    /* publish the entry (see struct udpmux) */
    __atomic_store_n(&m->neps, m->neps + 1, __ATOMIC_RELEASE);
    return (int)m->neps - 1;
}

static int is_multicast(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        return IN_MULTICAST(ntohl(s4.sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        return IN6_IS_ADDR_MULTICAST(&s6.sin6_addr);
    }
    return 0;
}

static int is_wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        return s4.sin_addr.s_addr == htonl(INADDR_ANY);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        return IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr);
    }
    return 0;
}

UDPMUX_API int udpmux_bind_addr(struct udpmux *m, const struct sockaddr *sa, socklen_t salen,
                                unsigned flags)
{
    int fd, r;
    unsigned sflags = 0;
    if (!m || !sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
        salen < umx_sa_len(sa))
        return -EINVAL;
    if (flags & ~(unsigned)(UDPMUX_BIND_REUSEPORT | UDPMUX_BIND_DUALSTACK | UDPMUX_BIND_MULTICAST))
        return -EINVAL;
    if ((flags & UDPMUX_BIND_DUALSTACK) && sa->sa_family != AF_INET6)
        return -EINVAL;
    /* SO_REUSEADDR on a unicast address would let another user take over
     * the port; only a group address or a wildcard socket that joins groups
     * may share. */
    if ((flags & UDPMUX_BIND_MULTICAST) && !is_multicast(sa) && !is_wildcard(sa))
        return -EINVAL;
    if (m->neps >= m->cfg.max_endpoints)
        return -ENOSPC;
    if (flags & UDPMUX_BIND_REUSEPORT)
        sflags |= UMX_SOCK_REUSEPORT;
    if (flags & UDPMUX_BIND_DUALSTACK)
        sflags |= UMX_SOCK_DUALSTACK;
    if (flags & UDPMUX_BIND_MULTICAST)
        sflags |= UMX_SOCK_MULTICAST;
    fd = umx_udp_open(sa, salen, sflags, m->cfg.rcvbuf, m->cfg.sndbuf);
    if (fd < 0)
        return fd;
    r = add_endpoint(m, fd);
    if (r < 0)
        close(fd);
    return r;
}

UDPMUX_API int udpmux_bind(struct udpmux *m, const char *addr, unsigned flags)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int r;
    if (!m || !addr)
        return -EINVAL;
    r = udpmux_parse_addr(addr, &ss, &len);
    if (r < 0)
        return r;
    return udpmux_bind_addr(m, (struct sockaddr *)&ss, len, flags);
}

UDPMUX_API int udpmux_adopt_fd(struct udpmux *m, int fd)
{
    int type, r;
    socklen_t len = sizeof(type);
    if (!m || fd < 0)
        return -EBADF;
    if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
        return -errno;
    if (type != SOCK_DGRAM)
        return -EPROTOTYPE;
    if (m->neps >= m->cfg.max_endpoints)
        return -ENOSPC;
    r = umx_udp_setup(fd);
    if (r < 0)
        return r;
    return add_endpoint(m, fd);
}

UDPMUX_API int udpmux_endpoint_fd(const struct udpmux *m, int ep)
{
    if (!m || ep < 0 || (unsigned)ep >= m->neps)
        return -EINVAL;
    return m->eps[ep].fd;
}

UDPMUX_API int udpmux_endpoint_addr(const struct udpmux *m, int ep, struct sockaddr_storage *out,
                                    socklen_t *outlen)
{
    if (!m || ep < 0 || (unsigned)ep >= m->neps || !out)
        return -EINVAL;
    memcpy(out, &m->eps[ep].addr, sizeof(*out));
    if (outlen)
        *outlen = m->eps[ep].addrlen;
    return 0;
}

UDPMUX_API int udpmux_join(struct udpmux *m, int ep, const char *group, const char *ifname)
{
    const struct endpoint *e;
    unsigned ifindex = 0;
    if (!m || ep < 0 || (unsigned)ep >= m->neps || !group)
        return -EINVAL;
    e = &m->eps[ep];
    if (ifname) {
        ifindex = if_nametoindex(ifname);
        if (!ifindex)
            return -ENODEV;
    }
    if (strchr(group, ':')) {
        struct ipv6_mreq mr;
        memset(&mr, 0, sizeof(mr));
        if (inet_pton(AF_INET6, group, &mr.ipv6mr_multiaddr) != 1 ||
            !IN6_IS_ADDR_MULTICAST(&mr.ipv6mr_multiaddr))
            return -EINVAL;
        if (e->family != AF_INET6)
            return -EAFNOSUPPORT;
        mr.ipv6mr_interface = ifindex;
        if (setsockopt(e->fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr, sizeof(mr)) < 0)
            return -errno;
        return 0;
    } else {
        struct ip_mreqn mr;
        memset(&mr, 0, sizeof(mr));
        if (inet_pton(AF_INET, group, &mr.imr_multiaddr) != 1 ||
            !IN_MULTICAST(ntohl(mr.imr_multiaddr.s_addr)))
            return -EINVAL;
        if (e->family != AF_INET)
            return -EAFNOSUPPORT;
        mr.imr_ifindex = (int)ifindex;
        if (setsockopt(e->fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr, sizeof(mr)) < 0)
            return -errno;
        return 0;
    }
}

/* Handlers ---------------------------------------------------------------- */

static struct handler *handler_of(const struct udpmux *m, int id)
{
    unsigned slot;
    struct handler *h;
    if (!m || id < 0)
        return NULL;
    slot = (unsigned)id & ID_SLOT_MASK;
    if (slot >= m->cfg.max_handlers)
        return NULL;
    h = &m->handlers[slot];
    if (!h->in_use || h->gen != (unsigned)id >> ID_SLOT_BITS)
        return NULL;
    return h;
}

/* Compiles the live handlers' rules, in match order, into the candidate
 * index. Called on every add and remove (not on the packet path), before a
 * removed rule is freed: the index points into the rules. */
static void routes_rebuild(struct udpmux *m)
{
    const struct udpmux_rule *rules[UMX_RULE_INDEX_MAX];
    if (m->nlive > UMX_RULE_INDEX_MAX) {
        m->use_idx = 0;
        return;
    }
    for (unsigned k = 0; k < m->nlive; k++)
        rules[k] = m->handlers[m->order[k]].rule;
    m->use_idx = umx_rule_index_build(m->idx, rules, m->nlive) == 0;
}

UDPMUX_API int udpmux_add_handler_rule(struct udpmux *m, const char *name, struct udpmux_rule *rule,
                                       udpmux_handler_fn *fn, void *arg)
{
    struct handler *h;
    unsigned i;
    if (!m || !rule || !fn)
        return -EINVAL;
    if (m->nlive >= m->cfg.max_handlers)
        return -ENOSPC;
    /* Any free slot: match order is kept in order[], not by slot number. */
    for (i = 0; i < m->cfg.max_handlers && m->handlers[i].in_use; i++)
        ;
    if (i == m->cfg.max_handlers)
        return -ENOSPC;
    h = &m->handlers[i];
    h->name = NULL;
    if (name) {
        h->name = strdup(name);
        if (!h->name)
            return -ENOMEM;
    }
    h->rule = rule;
    h->fn = fn;
    h->arg = arg;
    h->count = 0;
    h->in_use = 1;
    m->order[m->nlive++] = i;
    routes_rebuild(m);
    return id_make(i, h->gen);
}

UDPMUX_API int udpmux_add_handler(struct udpmux *m, const char *name, const char *rule_text,
                                  udpmux_handler_fn *fn, void *arg, char *err, size_t errlen)
{
    struct udpmux_rule *rule;
    int r;
    if (!m || !rule_text || !fn)
        return -EINVAL;
    if (m->nlive >= m->cfg.max_handlers)
        return -ENOSPC;
    r = udpmux_rule_compile(&rule, rule_text, err, errlen);
    if (r < 0)
        return r;
    r = udpmux_add_handler_rule(m, name, rule, fn, arg);
    if (r < 0)
        udpmux_rule_free(rule);
    return r;
}

UDPMUX_API int udpmux_remove_handler(struct udpmux *m, int id)
{
    struct handler *h = handler_of(m, id);
    unsigned slot, k;
    if (!h)
        return -ENOENT;
    slot = (unsigned)(h - m->handlers);
    for (k = 0; k < m->nlive && m->order[k] != slot; k++)
        ;
    memmove(&m->order[k], &m->order[k + 1], (m->nlive - k - 1) * sizeof(m->order[0]));
    m->nlive--;
    h->in_use = 0;
    h->gen = (h->gen + 1) & ID_GEN_MASK;
    routes_rebuild(m);
    udpmux_rule_free(h->rule);
    free(h->name);
    h->rule = NULL;
    h->name = NULL;
    return 0;
}

UDPMUX_API void udpmux_set_default(struct udpmux *m, udpmux_handler_fn *fn, void *arg)
{
    if (!m)
        return;
    m->deffn = fn;
    m->defarg = arg;
}

UDPMUX_API int64_t udpmux_handler_count(const struct udpmux *m, int id)
{
    const struct handler *h = handler_of(m, id);
    if (!h)
        return -ENOENT;
    return (int64_t)UMX_CTR_GET(h->count);
}

/* Sending ------------------------------------------------------------------ */

/* neps: the endpoints published when the send started (see struct udpmux) */
static int pick_endpoint(const struct udpmux *m, unsigned neps, const struct udpmux_msg *msg)
{
    if (msg->endpoint >= 0)
        return (unsigned)msg->endpoint < neps ? msg->endpoint : -EINVAL;
    for (unsigned i = 0; i < neps; i++)
        if (m->eps[i].family == msg->peer->sa_family)
            return (int)i;
    /* an IPv4 peer can be reached from a dual-stack IPv6 endpoint */
    if (msg->peer->sa_family == AF_INET)
        for (unsigned i = 0; i < neps; i++)
            if (m->eps[i].dualstack)
                return (int)i;
    return -EAFNOSUPPORT;
}

/* Fills a msghdr for msg on endpoint e; peer/ctrl storage provided. */
static int prep_msg(const struct endpoint *e, const struct udpmux_msg *msg, struct msghdr *mh,
                    struct iovec *iov, struct sockaddr_storage *peer, uint8_t ctrl[UMX_TX_CTRL])
{
    socklen_t plen = umx_sa_len(msg->peer);
    if (plen == 0 || msg->peer_len < plen || (msg->len && !msg->data))
        return -EINVAL;
    memset(peer, 0, sizeof(*peer));
    memcpy(peer, msg->peer, plen);
    if (e->family == AF_INET6 && peer->ss_family == AF_INET)
        plen = umx_sa_map6(peer);
    else if (e->family != peer->ss_family)
        return -EAFNOSUPPORT;
    memset(mh, 0, sizeof(*mh));
    iov->iov_base = (void *)(uintptr_t)msg->data;
    iov->iov_len = msg->len;
    mh->msg_name = peer;
    mh->msg_namelen = plen;
    mh->msg_iov = iov;
    mh->msg_iovlen = 1;
    return umx_tx_set_src(mh, ctrl, e->family, msg->local, msg->ifindex);
}

static void count_tx_error(struct udpmux *m, int err)
{
    if (err == -EAGAIN || err == -EWOULDBLOCK || err == -ENOBUFS)
        UMX_CTR_ADD_MT(m->st.tx_again, 1);
    else
        UMX_CTR_ADD_MT(m->st.tx_errors, 1);
}

/* Sends msgs; returns how many went out and puts the error that stopped it
 * (if any) in *errp. */
static int send_batch(struct udpmux *m, const struct udpmux_msg *msgs, unsigned n, int *errp)
{
    enum { CHUNK = 64 };
    struct mmsghdr mm[CHUNK];
    struct iovec iov[CHUNK];
    struct sockaddr_storage peers[CHUNK];
    uint8_t ctrl[CHUNK][UMX_TX_CTRL];
    unsigned done = 0;
    unsigned neps = __atomic_load_n(&m->neps, __ATOMIC_ACQUIRE);
    int tls_last_err = 0;

    *errp = 0;
    while (done < n) {
        /* one sendmmsg per run of messages from the same endpoint */
        int ep = -1, r;
        unsigned k = 0;
        while (done + k < n && k < CHUNK) {
            const struct udpmux_msg *msg = &msgs[done + k];
            int e;
            if (!msg->peer) {
                r = -EINVAL;
                goto err;
            }
            e = pick_endpoint(m, neps, msg);
            if (e < 0) {
                r = e;
                goto err;
            }
            if (ep >= 0 && e != ep)
                break;
            ep = e;
            r = prep_msg(&m->eps[ep], msg, &mm[k].msg_hdr, &iov[k], &peers[k], ctrl[k]);
            if (r < 0)
                goto err;
            k++;
            continue;
        err:
            if (k == 0) {
                *errp = r;
                count_tx_error(m, r);
                return (int)done;
            }
            break;
        }
        r = umx_sendmmsg(m->eps[ep].fd, mm, k);
        if (r <= 0) {
            r = r == 0 ? -EAGAIN : r;
            *errp = r;
            count_tx_error(m, r);
            return (int)done;
        }
        for (int i = 0; i < r; i++) {
            UMX_CTR_ADD_MT(m->st.tx_datagrams, 1);
            UMX_CTR_ADD_MT(m->st.tx_bytes, msgs[done + (unsigned)i].len);
        }
        done += (unsigned)r;
        if ((unsigned)r < k) {
            /* the kernel stopped early: report the error of the next one */
            struct mmsghdr one = mm[r];
            int e = umx_sendmmsg(m->eps[ep].fd, &one, 1);
            if (e == 1) {
                UMX_CTR_ADD_MT(m->st.tx_datagrams, 1);
                UMX_CTR_ADD_MT(m->st.tx_bytes, msgs[done].len);
                done++;
                continue;
            }
            tls_last_err = e == 0 ? -EAGAIN : e;
            *errp = tls_last_err;
            count_tx_error(m, tls_last_err);
            return (int)done;
        }
    }
    return (int)done;
}

UDPMUX_API int udpmux_send(struct udpmux *m, const struct udpmux_msg *msg)
{
    int err;
    if (!m || !msg)
        return -EINVAL;
    return send_batch(m, msg, 1, &err) == 1 ? 0 : err;
}

UDPMUX_API int udpmux_send_batch(struct udpmux *m, const struct udpmux_msg *msgs, unsigned n)
{
    int err, done;
    if (!m || (!msgs && n))
        return -EINVAL;
    if (n == 0)
        return 0;
    done = send_batch(m, msgs, n, &err);
    return done > 0 ? done : err;
}

UDPMUX_API int udpmux_reply(struct udpmux *m, const struct udpmux_dgram *d, const void *data,
                            size_t len)
{
    struct udpmux_msg msg;
    if (!m || !d)
        return -EINVAL;
    memset(&msg, 0, sizeof(msg));
    msg.data = data;
    msg.len = len;
    msg.peer = d->peer;
    msg.peer_len = d->peer_len;
    msg.local = d->local_len ? d->local : NULL;
    msg.local_len = d->local_len;
    msg.ifindex = d->ifindex;
    msg.endpoint = d->endpoint;
    return udpmux_send(m, &msg);
}

/* Receiving and dispatch --------------------------------------------------- */

/* Position in order[] of the first handler whose rule matches, or -1 (with
 * *more set when the first rule that did not refuse needs more datagrams). */
static int classify(const struct udpmux *m, const struct umx_probe_in *in, int *more)
{
    if (m->use_idx)
        return umx_rule_index_eval(m->idx, in, more);
    /* the same answer as the index, rule by rule */
    *more = 0;
    for (unsigned k = 0; k < m->nlive; k++) {
        int v = umx_rule_eval(m->handlers[m->order[k]].rule, in);
        if (v == UMX_MATCH)
            return (int)k;
        if (v == UMX_MORE) {
            *more = 1;
            return -1;
        }
    }
    return -1;
}

/* Calls handler id (or, when it is gone or -1, the default handler). */
static void deliver(struct udpmux *m, struct udpmux_dgram *d, int id)
{
    struct handler *h = handler_of(m, id);
    if (h) {
        UMX_CTR_ADD(h->count, 1);
        d->handler = id;
        h->fn(m, d, h->arg);
        return;
    }
    if (m->deffn) {
        UMX_CTR_ADD(m->st.rx_default, 1);
        d->handler = -1;
        m->deffn(m, d, m->defarg);
        return;
    }
    UMX_CTR_ADD(m->st.rx_unmatched, 1);
}

static void hold_drop(struct udpmux *m, struct held *e)
{
    e->used = 0;
    m->nheld--;
    UMX_CTR_ADD(m->st.rx_hold_dropped, 1);
}

/* Forgets held datagrams that nothing can decide any more. */
static void hold_expire(struct udpmux *m, uint64_t now)
{
    for (unsigned i = 0; i < HOLD_SLOTS && m->nheld; i++)
        if (m->hold[i].used && now - m->hold[i].t > HOLD_NS)
            hold_drop(m, &m->hold[i]);
}

/* Keeps a copy of an undecided datagram; when the pool is full the oldest
 * held datagram is dropped (counted), as in the daemon. Returns 0, or -1
 * when the datagram is too long to hold. */
static int hold_put(struct udpmux *m, const struct udpmux_dgram *d, uint64_t now)
{
    struct held *v = NULL;
    if (d->len > HOLD_BYTES)
        return -1;
    for (unsigned i = 0; i < HOLD_SLOTS; i++) {
        if (!m->hold[i].used) {
            v = &m->hold[i];
            break;
        }
        if (!v || m->hold[i].seq < v->seq)
            v = &m->hold[i];
    }
    if (v->used)
        hold_drop(m, v);
    v->used = 1;
    m->nheld++;
    v->ep = d->endpoint;
    v->t = now;
    v->seq = ++m->hold_seq;
    memcpy(&v->peer, d->peer, d->peer_len);
    v->peer_len = d->peer_len;
    memcpy(&v->local, d->local, d->local_len);
    v->local_len = d->local_len;
    v->ifindex = d->ifindex;
    v->len = d->len;
    memcpy(v->data, d->data, d->len);
    UMX_CTR_ADD(m->st.rx_held, 1);
    return 0;
}

/* Hands the datagrams held for this peer on this endpoint to handler id,
 * oldest first, before the datagram that decided. A handler may send from
 * its callback but not receive, so the pool cannot change under us except
 * through this loop. */
static void hold_release(struct udpmux *m, const struct udpmux_dgram *now_d, int id)
{
    while (m->nheld) {
        struct held *first = NULL;
        struct udpmux_dgram d;
        for (unsigned i = 0; i < HOLD_SLOTS; i++) {
            struct held *e = &m->hold[i];
            if (e->used && e->ep == now_d->endpoint && e->peer_len == now_d->peer_len &&
                umx_sa_equal((const struct sockaddr *)&e->peer, now_d->peer) &&
                (!first || e->seq < first->seq))
                first = e;
        }
        if (!first)
            return;
        first->used = 0;
        m->nheld--;
        d.data = first->data;
        d.len = first->len;
        d.peer = (const struct sockaddr *)&first->peer;
        d.peer_len = first->peer_len;
        d.local = (const struct sockaddr *)&first->local;
        d.local_len = first->local_len;
        d.ifindex = first->ifindex;
        d.endpoint = first->ep;
        deliver(m, &d, id);
    }
}

static void dispatch(struct udpmux *m, int ep, struct umx_rx_slot *s, uint64_t now)
{
    struct udpmux_dgram d;
    struct umx_probe_in in;
    int k, more, id = -1;

    d.data = s->buf;
    d.len = s->len;
    d.peer = (const struct sockaddr *)&s->peer;
    d.peer_len = s->peer_len;
    if (s->has_local) {
        d.local = (const struct sockaddr *)&s->local;
        d.local_len = s->local_len;
    } else {
        d.local = (const struct sockaddr *)&m->eps[ep].addr;
        d.local_len = m->eps[ep].addrlen;
    }
    d.ifindex = s->ifindex;
    d.endpoint = ep;
    d.handler = -1;
    in.data = s->buf;
    in.len = s->len;
    in.peer = d.peer;
    in.now_ns = now;
    in.state = m->pstate;
    k = classify(m, &in, &more);
    if (k < 0 && more && hold_put(m, &d, now) == 0)
        return;
    if (k >= 0)
        id = id_make(m->order[k], m->handlers[m->order[k]].gen);
    /* decided (a handler or none): what this peer sent before goes first */
    if (m->nheld)
        hold_release(m, &d, id);
    deliver(m, &d, id);
}

static int process_endpoint(struct udpmux *m, unsigned ep, unsigned budget, uint64_t now)
{
    struct endpoint *e = &m->eps[ep];
    unsigned done = 0, errors = 0;
    while (done < budget) {
        unsigned want = budget - done < m->rxb->n ? budget - done : m->rxb->n;
        uint32_t ovfl = e->ovfl_last;
        int r = umx_rx(e->fd, m->rxb, want, e->family, e->port, &ovfl);
        if (ovfl != e->ovfl_last) {
            UMX_CTR_ADD(m->st.rx_kernel_drops, (uint32_t)(ovfl - e->ovfl_last));
            e->ovfl_last = ovfl;
        }
        if (r < 0) {
            /* ICMP errors reported on the socket (ECONNREFUSED after a send
             * to a closed port) and the like: count, keep going */
            UMX_CTR_ADD(m->st.rx_errors, 1);
            if (r == -EBADF || r == -EFAULT || r == -EINVAL || r == -ENOTSOCK)
                return r;
            /* a pending socket error is reported once, so retrying reads
             * the data behind it; an error that repeats (ENOMEM) must not
             * spin here: leave it to the next call */
            if (++errors >= 8)
                break;
            continue;
        }
        if (r == 0)
            break;
        for (int i = 0; i < r; i++) {
            struct umx_rx_slot *s = &m->rxb->slots[i];
            if (s->truncated) {
                /* never hand over part of a datagram as if it were whole */
                UMX_CTR_ADD(m->st.rx_truncated, 1);
                continue;
            }
            UMX_CTR_ADD(m->st.rx_datagrams, 1);
            UMX_CTR_ADD(m->st.rx_bytes, s->len);
            dispatch(m, (int)ep, s, now);
        }
        done += (unsigned)r;
        if ((unsigned)r < want)
            break;
    }
    return (int)done;
}

static void run_timers(struct udpmux *m)
{
    uint64_t now;
    if (!m->timers)
        return;
    now = umx_now_ns();
    /* Due timers fire earliest first, not in slot order: when the loop was
     * late and several are due at once, a 10 ms timer must not run after a
     * 30 ms one. One scan per fired timer; at most max_timers fire per call
     * (a timer a callback adds with delay 0 waits for the next call if the
     * pass is used up), so this stays bounded. */
    for (unsigned k = 0; k < m->cfg.max_timers; k++) {
        struct timer *t = NULL;
        for (unsigned i = 0; i < m->cfg.max_timers; i++) {
            struct timer *c = &m->timers[i];
            if (c->in_use && c->due_ns <= now && (!t || c->due_ns < t->due_ns))
                t = c;
        }
        if (!t)
            break;
        /* free the slot (and retire its id) before the call: the callback
         * may add a timer that takes this very slot */
        t->in_use = 0;
        t->gen = (t->gen + 1) & ID_GEN_MASK;
        t->fn(m, t->arg);
    }
}

UDPMUX_API int udpmux_process(struct udpmux *m, unsigned budget)
{
    struct epoll_event evs[64];
    int n, total = 0;
    unsigned nready = 0;
    uint64_t now;
    if (!m)
        return -EINVAL;
    if (m->in_process)
        return -EBUSY;
    m->in_process = 1;
    n = epoll_wait(m->epfd, evs, (int)UMX_ARRAY_LEN(evs), 0);
    /* one clock read per call: the probes' state ages in real time, and a
     * batch is received within microseconds */
    now = umx_now_ns();
    if (m->nheld)
        hold_expire(m, now);
    for (int i = 0; i < n; i++)
        if (evs[i].data.u32 != UINT32_MAX)
            nready++;
        else {
            uint64_t v;
            if (read(m->wakefd, &v, sizeof(v)) < 0) {
                /* nothing pending: another reader drained it */
            }
        }
    for (int i = 0; i < n; i++) {
        unsigned share;
        int r;
        if (evs[i].data.u32 == UINT32_MAX)
            continue;
        /* fair share of the budget per ready endpoint */
        share = budget ? (budget / nready ? budget / nready : 1) : m->rxb->n;
        r = process_endpoint(m, evs[i].data.u32, share, now);
        if (r > 0)
            total += r;
    }
    run_timers(m);
    m->in_process = 0;
    return total;
}

UDPMUX_API int udpmux_fd(const struct udpmux *m)
{
    return m ? m->epfd : -EINVAL;
}

UDPMUX_API int udpmux_next_timeout(const struct udpmux *m)
{
    uint64_t now, best = UINT64_MAX;
    if (!m || !m->timers)
        return -1;
    now = umx_now_ns();
    for (unsigned i = 0; i < m->cfg.max_timers; i++)
        if (m->timers[i].in_use && m->timers[i].due_ns < best)
            best = m->timers[i].due_ns;
    if (best == UINT64_MAX)
        return -1;
    if (best <= now)
        return 0;
    /* a timer 2^31 ms (25 days) away must not wrap to a negative "wait
     * forever": wait the longest we can, then look again */
    if ((best - now + 999999) / 1000000 > INT32_MAX)
        return INT32_MAX;
    return (int)((best - now + 999999) / 1000000);
}

UDPMUX_API int udpmux_run(struct udpmux *m)
{
    if (!m)
        return -EINVAL;
    /* The stop flag is consumed when run returns, not cleared when it
     * starts: a udpmux_stop() that comes before the loop (a signal handler
     * during start-up) must not be lost. */
    while (!__atomic_load_n(&m->stop, __ATOMIC_RELAXED)) {
        struct epoll_event ev;
        int r = epoll_wait(m->epfd, &ev, 1, udpmux_next_timeout(m));
        if (r < 0 && errno != EINTR)
            return -errno;
        if (__atomic_load_n(&m->stop, __ATOMIC_RELAXED))
            break;
        /* the whole budget per wake-up: one batch per ready endpoint */
        r = udpmux_process(m, 0);
        if (r < 0)
            return r;
    }
    __atomic_store_n(&m->stop, 0, __ATOMIC_RELAXED);
    return 0;
}

UDPMUX_API void udpmux_stop(struct udpmux *m)
{
    uint64_t one = 1;
    if (!m)
        return;
    __atomic_store_n(&m->stop, 1, __ATOMIC_RELAXED);
    if (write(m->wakefd, &one, sizeof(one)) < 0) {
        /* counter saturated: a wake-up is already pending */
    }
}

UDPMUX_API int udpmux_timer_add(struct udpmux *m, unsigned delay_ms, udpmux_timer_fn *fn, void *arg)
{
    if (!m || !fn)
        return -EINVAL;
    for (unsigned i = 0; i < m->cfg.max_timers; i++) {
        struct timer *t = &m->timers[i];
        if (!t->in_use) {
            t->in_use = 1;
            t->due_ns = umx_now_ns() + (uint64_t)delay_ms * 1000000u;
            t->fn = fn;
            t->arg = arg;
            return id_make(i, t->gen);
        }
    }
    return -ENOSPC;
}

UDPMUX_API int udpmux_timer_cancel(struct udpmux *m, int id)
{
    struct timer *t;
    unsigned slot = (unsigned)id & ID_SLOT_MASK;
    if (!m || id < 0 || slot >= m->cfg.max_timers)
        return -ENOENT;
    t = &m->timers[slot];
    if (!t->in_use || t->gen != (unsigned)id >> ID_SLOT_BITS)
        return -ENOENT;
    t->in_use = 0;
    t->gen = (t->gen + 1) & ID_GEN_MASK;
    return 0;
}

UDPMUX_API void udpmux_get_stats(const struct udpmux *m, struct udpmux_stats *out)
{
    if (!m || !out)
        return;
    out->rx_datagrams = UMX_CTR_GET(m->st.rx_datagrams);
    out->rx_bytes = UMX_CTR_GET(m->st.rx_bytes);
    out->rx_truncated = UMX_CTR_GET(m->st.rx_truncated);
    out->rx_errors = UMX_CTR_GET(m->st.rx_errors);
    out->rx_unmatched = UMX_CTR_GET(m->st.rx_unmatched);
    out->rx_default = UMX_CTR_GET(m->st.rx_default);
    out->rx_kernel_drops = UMX_CTR_GET(m->st.rx_kernel_drops);
    out->tx_datagrams = UMX_CTR_GET(m->st.tx_datagrams);
    out->tx_bytes = UMX_CTR_GET(m->st.tx_bytes);
    out->tx_errors = UMX_CTR_GET(m->st.tx_errors);
    out->tx_again = UMX_CTR_GET(m->st.tx_again);
    out->rx_held = UMX_CTR_GET(m->st.rx_held);
    out->rx_hold_dropped = UMX_CTR_GET(m->st.rx_hold_dropped);
}
