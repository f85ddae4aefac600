/*
 * peeruid.c - the uid behind a local TCP connection (peeruid.h): an exact
 * sock_diag lookup of the peer's socket, whose source is our peer address
 * and whose destination is our local address.
 */
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "peeruid.h"

int umxd_peeruid_open(void)
{
    struct timeval tv = {0, 200000}; /* the kernel answers at once; never hang */
    int nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -errno;
    setsockopt(nl, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return nl;
}

/* Address and port of a sockaddr in inet_diag's layout; IPv4-mapped IPv6
 * addresses become IPv4 (the peer's socket is then an IPv4 one). */
static int diag_addr(const struct sockaddr_storage *ss, int *family, uint32_t addr[4],
                     uint16_t *port)
{
    memset(addr, 0, 16);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)(const void *)ss;
        *family = AF_INET;
        memcpy(addr, &s->sin_addr, 4);
        *port = s->sin_port;
        return 0;
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)(const void *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s->sin6_addr)) {
            *family = AF_INET;
            memcpy(addr, &s->sin6_addr.s6_addr[12], 4);
        } else {
            *family = AF_INET6;
            memcpy(addr, &s->sin6_addr, 16);
        }
        *port = s->sin6_port;
        return 0;
    }
    return -EAFNOSUPPORT;
}

int64_t umxd_peer_uid(int nl, int fd)
{
    struct sockaddr_storage peer, local;
    socklen_t pl = sizeof(peer), ll = sizeof(local);
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 r;
    } req;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    union {
        struct nlmsghdr h;
        char b[1024];
    } ans;
    int fam_p, fam_l;
    ssize_t n;
    memset(&req, 0, sizeof(req));
    if (nl < 0 || getpeername(fd, (struct sockaddr *)&peer, &pl) < 0 ||
        getsockname(fd, (struct sockaddr *)&local, &ll) < 0)
        return -1;
    /* the peer's socket: source = our peer, destination = us */
    if (diag_addr(&peer, &fam_p, req.r.id.idiag_src, &req.r.id.idiag_sport) < 0 ||
        diag_addr(&local, &fam_l, req.r.id.idiag_dst, &req.r.id.idiag_dport) < 0 || fam_p != fam_l)
        return -1;
    req.nlh.nlmsg_len = sizeof(req);
    req.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    req.nlh.nlmsg_flags = NLM_F_REQUEST;
    req.r.sdiag_family = (uint8_t)fam_p;
    req.r.sdiag_protocol = IPPROTO_TCP;
    req.r.idiag_states = ~0u;
    req.r.id.idiag_cookie[0] = req.r.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
    if (sendto(nl, &req, sizeof(req), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -1;
    n = recv(nl, &ans, sizeof(ans), 0);
    if (n < (ssize_t)sizeof(struct nlmsghdr) || !NLMSG_OK(&ans.h, (size_t)n) ||
        ans.h.nlmsg_type != SOCK_DIAG_BY_FAMILY ||
        ans.h.nlmsg_len < NLMSG_LENGTH(sizeof(struct inet_diag_msg)))
        return -1; /* NLMSG_ERROR: no such socket here (a remote client) */
    {
        struct inet_diag_msg dm;
        memcpy(&dm, NLMSG_DATA(&ans.h), sizeof(dm));
        return (int64_t)dm.idiag_uid;
    }
}

int umxd_uidcap_take(struct umxd_uidcap *c, uint32_t uid)
{
    unsigned i, fr = UMXD_UIDCAP_USERS;
    for (i = 0; i < UMXD_UIDCAP_USERS; i++) {
        if (c->u[i].n && c->u[i].uid == uid)
            break;
        if (!c->u[i].n && fr == UMXD_UIDCAP_USERS)
            fr = i;
    }
    if (i == UMXD_UIDCAP_USERS)
        i = fr;
    if (i == UMXD_UIDCAP_USERS || c->u[i].n >= c->max)
        return -EUSERS;
    c->u[i].uid = uid;
    c->u[i].n++;
    return 0;
}

void umxd_uidcap_put(struct umxd_uidcap *c, uint32_t uid)
{
    for (unsigned i = 0; i < UMXD_UIDCAP_USERS; i++)
        if (c->u[i].n && c->u[i].uid == uid) {
            c->u[i].n--;
            return;
        }
}
