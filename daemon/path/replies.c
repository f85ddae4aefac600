/*
 * replies.c - backend -> peer. A flow's own upstream socket, or the
 * worker's shared socket of a family (each reply finds its flow by the
 * address it was sent to), is read in batches; each reply goes through the
 * engine's reply decision (act_reply) and is queued to the shared port.
 * ICMP errors feed passive health.
 */
#include <errno.h>
#include <time.h>

#include <linux/errqueue.h>
#include <string.h>
#include <sys/epoll.h>

#include "path_int.h"

void read_upstream(struct umxd_worker *w, uint32_t idx, uint32_t gen, uint64_t now)
{
    struct umx_flow *f = umx_ft_at(w->ft, idx);
    struct umxd_flow *fl;
    uint32_t ovfl = 0;
    int n;
    if (!f || (umxd_fl(f)->gen & 0xffffff) != gen || umxd_fl(f)->up_fd < 0 || umxd_fl(f)->shared)
        return; /* stale event for a closed flow */
    fl = umxd_fl(f);
    n = umx_rx(fl->up_fd, w->uprxb, w->uprxb->n, fl->upaddr.sin6_family, 0, &ovfl);
    if (n < 0) {
        UMX_CTR_ADD(w->st.up_rx_errors, 1);
        if (n == -ECONNREFUSED)
            mark_down(w, fl, now); /* ICMP port unreachable from the backend */
        return;
    }
    for (int i = 0; i < n; i++)
        act_reply(w, f, &w->uprxb->slots[i], now);
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
        umxd_store_addr(&to, &dst);
        for (unsigned r = 0; r < c->nroutes; r++) {
            const struct umxd_route *rt = &c->routes[r];
            if (!rt->shared || rt->action != UMXD_FORWARD)
                continue;
            for (unsigned b = 0; b < rt->nbackends; b++) {
                struct sockaddr_in6 ba;
                umxd_store_addr(&ba, &rt->backends[b].addr);
                if (umx_sa_equal((const struct sockaddr *)&ba, (const struct sockaddr *)&to))
                    mark_down_backend(w, r, b, now);
            }
        }
    }
}

void read_shared(struct umxd_worker *w, unsigned k, uint32_t events, uint64_t now)
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
        struct umx_flow *f = s->has_local ? shr_find(w, &s->local) : NULL;
        if (!f) {
            count_drop(w, -1, UMXD_DROP_FOREIGN, 1, s->len);
            flowlog_drop(w, -1, UMXD_DROP_FOREIGN, &s->peer, 1, s->len);
            continue;
        }
        act_reply(w, f, s, now);
    }
    flush_pub(w);
}
