/*
 * mux.c - the library's loop: endpoints, handlers, dispatch, timers,
 * counters. One thread runs udpmux_process(); any thread may send.
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

struct handler {
    int in_use;
    char *name;
    struct udpmux_rule *rule;
    udpmux_handler_fn *fn;
    void *arg;
    uint64_t count;
};

struct timer {
    int in_use;
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
    struct endpoint *eps;
    unsigned neps;
    struct handler *handlers;
    unsigned nhandlers; /* slots used (some may be free) */
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
    m->timers = cfg->max_timers ? calloc(cfg->max_timers, sizeof(*m->timers)) : NULL;
    if (!m->eps || !m->handlers || (cfg->max_timers && !m->timers)) {
        r = -ENOMEM;
        goto fail;
    }
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
    for (unsigned i = 0; i < m->nhandlers; i++) {
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
    return (int)m->neps++;
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

UDPMUX_API int udpmux_add_handler_rule(struct udpmux *m, const char *name, struct udpmux_rule *rule,
                                       udpmux_handler_fn *fn, void *arg)
{
    struct handler *h;
    unsigned i;
    if (!m || !rule || !fn)
        return -EINVAL;
    /* Reuse a freed slot only at the end, so registration order (which is
     * match order) is kept: a freed slot in the middle stays empty. */
    if (m->nhandlers >= m->cfg.max_handlers)
        return -ENOSPC;
    i = m->nhandlers;
    h = &m->handlers[i];
    memset(h, 0, sizeof(*h));
    if (name) {
        h->name = strdup(name);
        if (!h->name)
            return -ENOMEM;
    }
    h->rule = rule;
    h->fn = fn;
    h->arg = arg;
    h->in_use = 1;
    m->nhandlers++;
    return (int)i;
}

UDPMUX_API int udpmux_add_handler(struct udpmux *m, const char *name, const char *rule_text,
                                  udpmux_handler_fn *fn, void *arg, char *err, size_t errlen)
{
    struct udpmux_rule *rule;
    int r;
    if (!m || !rule_text || !fn)
        return -EINVAL;
    if (m->nhandlers >= m->cfg.max_handlers)
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
    struct handler *h;
    if (!m || id < 0 || (unsigned)id >= m->nhandlers || !m->handlers[id].in_use)
        return -ENOENT;
    h = &m->handlers[id];
    udpmux_rule_free(h->rule);
    free(h->name);
    h->rule = NULL;
    h->name = NULL;
    h->in_use = 0;
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
    if (!m || id < 0 || (unsigned)id >= m->nhandlers || !m->handlers[id].in_use)
        return -ENOENT;
    return (int64_t)UMX_CTR_GET(m->handlers[id].count);
}

/* Sending ------------------------------------------------------------------ */

static int pick_endpoint(const struct udpmux *m, const struct udpmux_msg *msg)
{
    if (msg->endpoint >= 0)
        return (unsigned)msg->endpoint < m->neps ? msg->endpoint : -EINVAL;
    for (unsigned i = 0; i < m->neps; i++)
        if (m->eps[i].family == msg->peer->sa_family)
            return (int)i;
    /* an IPv4 peer can be reached from a dual-stack IPv6 endpoint */
    if (msg->peer->sa_family == AF_INET)
        for (unsigned i = 0; i < m->neps; i++)
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
            e = pick_endpoint(m, msg);
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

static void dispatch(struct udpmux *m, int ep, struct umx_rx_slot *s)
{
    struct udpmux_dgram d;
    struct umx_probe_in in;
    unsigned i;

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
    in.data = s->buf;
    in.len = s->len;
    in.peer = d.peer;
    in.now_ns = 0;
    in.state = NULL;
    for (i = 0; i < m->nhandlers; i++) {
        struct handler *h = &m->handlers[i];
        if (!h->in_use || !umx_rule_may_match(h->rule, s->buf, s->len))
            continue;
        if (umx_rule_eval(h->rule, &in) == UMX_MATCH) {
            UMX_CTR_ADD(h->count, 1);
            d.handler = (int)i;
            h->fn(m, &d, h->arg);
            return;
        }
    }
    if (m->deffn) {
        UMX_CTR_ADD(m->st.rx_default, 1);
        d.handler = -1;
        m->deffn(m, &d, m->defarg);
        return;
    }
    UMX_CTR_ADD(m->st.rx_unmatched, 1);
}

static int process_endpoint(struct udpmux *m, unsigned ep, unsigned budget)
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
            dispatch(m, (int)ep, s);
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
        t->in_use = 0;
        t->fn(m, t->arg);
    }
}

UDPMUX_API int udpmux_process(struct udpmux *m, unsigned budget)
{
    struct epoll_event evs[64];
    int n, total = 0;
    unsigned nready = 0;
    if (!m)
        return -EINVAL;
    if (m->in_process)
        return -EBUSY;
    m->in_process = 1;
    n = epoll_wait(m->epfd, evs, (int)UMX_ARRAY_LEN(evs), 0);
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
        r = process_endpoint(m, evs[i].data.u32, share);
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
            return (int)i;
        }
    }
    return -ENOSPC;
}

UDPMUX_API int udpmux_timer_cancel(struct udpmux *m, int id)
{
    if (!m || id < 0 || (unsigned)id >= m->cfg.max_timers || !m->timers[id].in_use)
        return -ENOENT;
    m->timers[id].in_use = 0;
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
}
