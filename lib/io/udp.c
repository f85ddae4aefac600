/*
 * udp.c - socket I/O for the library and the daemon. See udp.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "io/udp.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif
#ifndef IP_MULTICAST_ALL
#define IP_MULTICAST_ALL 49
#endif
#ifndef IPV6_MULTICAST_ALL
#define IPV6_MULTICAST_ALL 29
#endif

/* Per-slot control space: PKTINFO (v4 or v6), RXQ_OVFL, GRO. */
#define RX_CTRL 128

static int set_int(int fd, int level, int opt, int v)
{
    return setsockopt(fd, level, opt, &v, sizeof(v)) < 0 ? -errno : 0;
}

int umx_udp_setup(int fd)
{
    int family, r;
    socklen_t len = sizeof(family);
    int fl;

    if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
        return -errno;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -errno;
    if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
        return -errno;
    /* IP_PKTINFO also on IPv6 sockets: a dual-stack socket then reports the
     * IPv4 destination of mapped datagrams. */
    r = set_int(fd, IPPROTO_IP, IP_PKTINFO, 1);
    if (r < 0 && family == AF_INET)
        return r;
    if (family == AF_INET6) {
        r = set_int(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1);
        if (r < 0)
            return r;
        /* Without this a wildcard socket receives datagrams for every
         * multicast group any process on the host joined. */
        (void)set_int(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, 0);
    }
    (void)set_int(fd, IPPROTO_IP, IP_MULTICAST_ALL, 0);
    /* Kernel drops for a full receive buffer become visible per datagram. */
    (void)set_int(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    return 0;
}

int umx_udp_open(const struct sockaddr *sa, socklen_t salen, unsigned flags, int rcvbuf, int sndbuf)
{
    int fd, r;
    fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0)
        return -errno;
    if (sa->sa_family == AF_INET6) {
        /* Explicit either way: the system default (bindv6only) must not
         * decide whether this socket also captures IPv4. */
        r = set_int(fd, IPPROTO_IPV6, IPV6_V6ONLY, (flags & UMX_SOCK_DUALSTACK) ? 0 : 1);
        if (r < 0)
            goto fail;
    }
    if (flags & UMX_SOCK_REUSEPORT) {
        /* SO_REUSEPORT alone: the kernel only lets sockets of the same
         * effective uid join the group. */
        r = set_int(fd, SOL_SOCKET, SO_REUSEPORT, 1);
        if (r < 0)
            goto fail;
    }
    if (flags & UMX_SOCK_MULTICAST) {
        r = set_int(fd, SOL_SOCKET, SO_REUSEADDR, 1);
        if (r < 0)
            goto fail;
    }
    if (rcvbuf > 0)
        (void)set_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
    if (sndbuf > 0)
        (void)set_int(fd, SOL_SOCKET, SO_SNDBUF, sndbuf);
    r = umx_udp_setup(fd);
    if (r < 0)
        goto fail;
    if (bind(fd, sa, salen) < 0) {
        r = -errno;
        goto fail;
    }
    return fd;
fail:
    close(fd);
    return r;
}

int umx_udp_open_upstream(int family, int rcvbuf, int sndbuf)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_UDP);
    if (fd < 0)
        return -errno;
    if (rcvbuf > 0)
        (void)set_int(fd, SOL_SOCKET, SO_RCVBUF, rcvbuf);
    if (sndbuf > 0)
        (void)set_int(fd, SOL_SOCKET, SO_SNDBUF, sndbuf);
    (void)set_int(fd, SOL_SOCKET, SO_RXQ_OVFL, 1);
    return fd;
}

int umx_rxb_new(struct umx_rxb **out, unsigned n, size_t bufsize)
{
    struct umx_rxb *b;
    if (n == 0 || n > 1024 || bufsize == 0)
        return -EINVAL;
    b = calloc(1, sizeof(*b));
    if (!b)
        return -ENOMEM;
    b->n = n;
    b->bufsize = bufsize;
    b->msgs = calloc(n, sizeof(*b->msgs));
    b->iov = calloc(n, sizeof(*b->iov));
    b->slots = calloc(n, sizeof(*b->slots));
    b->ctrl = calloc(n, RX_CTRL);
    /* bufsize bytes per slot and no more: a datagram that fills a slot
     * exactly is whole, and recvmmsg's MSG_TRUNC says when one was not
     * (tests/unit/test-mux.c: test_truncation) */
    b->mem = malloc((size_t)n * bufsize);
    if (!b->msgs || !b->iov || !b->slots || !b->ctrl || !b->mem) {
        umx_rxb_free(b);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < n; i++)
        b->slots[i].buf = b->mem + (size_t)i * bufsize;
    *out = b;
    return 0;
}

void umx_rxb_free(struct umx_rxb *b)
{
    if (!b)
        return;
    free(b->msgs);
    free(b->iov);
    free(b->slots);
    free(b->ctrl);
    free(b->mem);
    free(b);
}

static void parse_ctrl(struct msghdr *mh, struct umx_rx_slot *s, int family, uint16_t lport,
                       uint32_t *ovfl)
{
    struct cmsghdr *c;
    s->has_local = 0;
    s->gso_size = 0;
    s->ifindex = 0;
    memset(&s->local, 0, sizeof(s->local));
    s->local_len = 0;
    for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(c), sizeof(pi));
            s->ifindex = pi.ipi_ifindex;
            if (family == AF_INET6) {
                /* dual-stack socket: report the mapped form, matching how
                 * the peer address is reported */
                struct sockaddr_in6 l6;
                memset(&l6, 0, sizeof(l6));
                l6.sin6_family = AF_INET6;
                l6.sin6_port = lport;
                l6.sin6_addr.s6_addr[10] = 0xff;
                l6.sin6_addr.s6_addr[11] = 0xff;
                memcpy(&l6.sin6_addr.s6_addr[12], &pi.ipi_addr, 4);
                memcpy(&s->local, &l6, sizeof(l6));
                s->local_len = sizeof(l6);
            } else {
                struct sockaddr_in l4;
                memset(&l4, 0, sizeof(l4));
                l4.sin_family = AF_INET;
                l4.sin_port = lport;
                l4.sin_addr = pi.ipi_addr;
                memcpy(&s->local, &l4, sizeof(l4));
                s->local_len = sizeof(l4);
            }
            s->has_local = 1;
        } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
            struct in6_pktinfo pi6;
            struct sockaddr_in6 l6;
            memcpy(&pi6, CMSG_DATA(c), sizeof(pi6));
            memset(&l6, 0, sizeof(l6));
            l6.sin6_family = AF_INET6;
            l6.sin6_port = lport;
            l6.sin6_addr = pi6.ipi6_addr;
            if (IN6_IS_ADDR_LINKLOCAL(&pi6.ipi6_addr))
                l6.sin6_scope_id = pi6.ipi6_ifindex;
            s->ifindex = (int)pi6.ipi6_ifindex;
            memcpy(&s->local, &l6, sizeof(l6));
            s->local_len = sizeof(l6);
            s->has_local = 1;
        } else if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            uint32_t v;
            memcpy(&v, CMSG_DATA(c), sizeof(v));
            if (ovfl)
                *ovfl = v;
        } else if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO) {
            int seg;
            memcpy(&seg, CMSG_DATA(c), sizeof(seg));
            s->gso_size = (uint16_t)seg;
        }
    }
}

int umx_rx(int fd, struct umx_rxb *b, unsigned n, int family, uint16_t local_port, uint32_t *ovfl)
{
    int r;
    if (n > b->n)
        n = b->n;
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *mh = &b->msgs[i].msg_hdr;
        b->iov[i].iov_base = b->slots[i].buf;
        b->iov[i].iov_len = b->bufsize;
        mh->msg_name = &b->slots[i].peer;
        mh->msg_namelen = sizeof(b->slots[i].peer);
        mh->msg_iov = &b->iov[i];
        mh->msg_iovlen = 1;
        mh->msg_control = b->ctrl + (size_t)i * RX_CTRL;
        mh->msg_controllen = RX_CTRL;
        mh->msg_flags = 0;
    }
    do {
        r = recvmmsg(fd, b->msgs, n, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : -errno;
    for (int i = 0; i < r; i++) {
        struct umx_rx_slot *s = &b->slots[i];
        struct msghdr *mh = &b->msgs[i].msg_hdr;
        s->len = b->msgs[i].msg_len;
        s->peer_len = mh->msg_namelen;
        s->truncated = (mh->msg_flags & MSG_TRUNC) != 0;
        parse_ctrl(mh, s, family, local_port, ovfl);
    }
    return r;
}

int umx_tx_set_src(struct msghdr *mh, uint8_t ctrl[UMX_TX_CTRL], int sock_family,
                   const struct sockaddr *src, int ifindex)
{
    struct cmsghdr *c;
    mh->msg_control = NULL;
    mh->msg_controllen = 0;
    if (!src)
        return 0;
    memset(ctrl, 0, UMX_TX_CTRL);
    mh->msg_control = ctrl;
    if (src->sa_family == AF_INET && sock_family == AF_INET) {
        struct in_pktinfo pi;
        struct sockaddr_in s4;
        memcpy(&s4, src, sizeof(s4));
        memset(&pi, 0, sizeof(pi));
        pi.ipi_spec_dst = s4.sin_addr;
        mh->msg_controllen = CMSG_SPACE(sizeof(pi));
        c = CMSG_FIRSTHDR(mh);
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        return 0;
    }
    if (sock_family == AF_INET6) {
        struct in6_pktinfo pi6;
        memset(&pi6, 0, sizeof(pi6));
        if (src->sa_family == AF_INET6) {
            struct sockaddr_in6 s6;
            memcpy(&s6, src, sizeof(s6));
            pi6.ipi6_addr = s6.sin6_addr;
            /* the interface matters only for link-local sources */
            if (IN6_IS_ADDR_LINKLOCAL(&s6.sin6_addr))
                pi6.ipi6_ifindex = (unsigned)(ifindex ? ifindex : (int)s6.sin6_scope_id);
        } else if (src->sa_family == AF_INET) {
            struct sockaddr_in s4;
            memcpy(&s4, src, sizeof(s4));
            pi6.ipi6_addr.s6_addr[10] = 0xff;
            pi6.ipi6_addr.s6_addr[11] = 0xff;
            memcpy(&pi6.ipi6_addr.s6_addr[12], &s4.sin_addr, 4);
        } else {
            return -EAFNOSUPPORT;
        }
        mh->msg_controllen = CMSG_SPACE(sizeof(pi6));
        c = CMSG_FIRSTHDR(mh);
        c->cmsg_level = IPPROTO_IPV6;
        c->cmsg_type = IPV6_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi6));
        memcpy(CMSG_DATA(c), &pi6, sizeof(pi6));
        return 0;
    }
    mh->msg_control = NULL;
    return -EAFNOSUPPORT;
}

void umx_tx_add_gso(struct msghdr *mh, uint8_t ctrl[UMX_TX_CTRL], uint16_t seg)
{
    struct cmsghdr *c;
    size_t used = mh->msg_control ? mh->msg_controllen : 0;
    if (!mh->msg_control) {
        memset(ctrl, 0, UMX_TX_CTRL);
        mh->msg_control = ctrl;
    }
    c = (struct cmsghdr *)(void *)(ctrl + used);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &seg, sizeof(seg));
    mh->msg_controllen = used + CMSG_SPACE(sizeof(uint16_t));
}

socklen_t umx_sa_map6(struct sockaddr_storage *ss)
{
    struct sockaddr_in s4;
    struct sockaddr_in6 s6;
    if (ss->ss_family != AF_INET)
        return ss->ss_family == AF_INET6 ? sizeof(s6) : 0;
    memcpy(&s4, ss, sizeof(s4));
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_port = s4.sin_port;
    s6.sin6_addr.s6_addr[10] = 0xff;
    s6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(&s6.sin6_addr.s6_addr[12], &s4.sin_addr, 4);
    memcpy(ss, &s6, sizeof(s6));
    return sizeof(s6);
}

int umx_sendmmsg(int fd, struct mmsghdr *msgs, unsigned n)
{
    int r;
    do {
        r = sendmmsg(fd, msgs, n, MSG_DONTWAIT);
    } while (r < 0 && errno == EINTR);
    return r < 0 ? -errno : r;
}
