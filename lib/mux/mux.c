/*
 * mux.c - the library's loop: endpoints, handlers, sending, the process /
 * run calls, counters. One thread runs udpmux_process(); any thread may
 * send. Receiving and dispatch are in dispatch.c, held datagrams in
 * holds.c, timers in timers.c (the shared state: mux.h).
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
#include "mux/mux.h"

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

struct handler *umx__handler_of(const struct udpmux *m, int id)
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
    struct handler *h = umx__handler_of(m, id);
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
    const struct handler *h = umx__handler_of(m, id);
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

/* The loop (receiving: dispatch.c) ------------------------------------------ */

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
        umx__hold_expire(m, now);
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
        r = umx__mux_process_endpoint(m, evs[i].data.u32, share, now);
        if (r > 0)
            total += r;
    }
    umx__timers_run(m);
    m->in_process = 0;
    return total;
}

UDPMUX_API int udpmux_fd(const struct udpmux *m)
{
    return m ? m->epfd : -EINVAL;
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
