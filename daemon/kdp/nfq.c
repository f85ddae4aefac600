/*
 * nfq.c - the queue udpmuxd's table sends first datagrams to (NFQUEUE
 * UMXD_KDP_QUEUE), through libmnl and libnetfilter_queue's message helpers:
 * read the queued packets (whole, up to 64 KiB: a QUIC Initial is parsed
 * whole), read IP/UDP in place (ippkt.c), and answer with verdicts
 * gathered into one sendmsg per batch.
 *
 * The queue is configured fail-open (NFQA_CFG_F_FAIL_OPEN) and the rules
 * use the NFQUEUE bypass flag: a datagram the queue cannot take (full, or
 * no udpmuxd listening) is accepted unmarked and reaches udpmuxd's own
 * socket, where the workers classify it as for a `datapath = user` route.
 * Nothing is forwarded unclassified, so failing open costs only speed.
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_queue.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <libnetfilter_queue/libnetfilter_queue.h>

#include "ippkt.h"
#include "kdp_int.h"

/* One message: a whole datagram + attributes. A multiple of 8 so that every
 * slot after the first starts aligned for the netlink headers read from it. */
#define NFQ_RBUF (0x10000u + 4096u)
_Static_assert(NFQ_RBUF % 8u == 0, "nfq slots must stay aligned");
#define NFQ_SLOTS 16u /* messages per recvmmsg */
#define NFQ_VBUF (64u * 1024u)
#define NFQ_MAXLEN 4096u /* datagrams waiting in the kernel for a verdict */
#define NFQ_BATCH 64u    /* messages read before the verdicts leave */
/* NFQ_MAXLEN messages of a full-size datagram each (~2.3 KiB of socket
 * memory per 1400-byte datagram) */
#define NFQ_SOCKBUF (16 * 1024 * 1024)

struct kdp_nfq {
    struct mnl_socket *nl;
    uint32_t portid;
    char *rbuf;
    char *vbuf;
    size_t vused;
};

struct nfq_cb {
    kdp_pkt_fn *fn;
    void *arg;
    struct kdp_nfq *q;
    int handed;
};

static int nfq_config(struct kdp_nfq *q, struct nlmsghdr *nlh)
{
    char buf[KDP_NL_BUF];
    ssize_t n;
    nlh->nlmsg_flags |= NLM_F_ACK;
    if (mnl_socket_sendto(q->nl, nlh, nlh->nlmsg_len) < 0)
        return -errno;
    n = mnl_socket_recvfrom(q->nl, buf, sizeof(buf));
    if (n < 0)
        return -errno;
    return mnl_cb_run(buf, (size_t)n, 0, q->portid, NULL, NULL) < 0 ? -errno : 0;
}

/* The receive and verdict buffers, the same for a queue we bind and one we
 * adopt (kdp_nfq_read fills NFQ_SLOTS messages of up to NFQ_RBUF). */
static struct kdp_nfq *nfq_alloc(void)
{
    struct kdp_nfq *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->rbuf = malloc((size_t)NFQ_SLOTS * NFQ_RBUF);
    q->vbuf = malloc(NFQ_VBUF);
    if (!q->rbuf || !q->vbuf) {
        free(q->rbuf);
        free(q->vbuf);
        free(q);
        return NULL;
    }
    return q;
}

int kdp_nfq_open(struct kdp_nfq **out)
{
    char buf[KDP_NL_BUF];
    struct kdp_nfq *q = nfq_alloc();
    struct nlmsghdr *nlh;
    int one = 1, r;
    if (!q)
        return -ENOMEM;
    q->nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!q->nl) {
        r = -errno;
        goto fail;
    }
    if (mnl_socket_bind(q->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        r = -errno;
        goto fail;
    }
    q->portid = mnl_socket_get_portid(q->nl);
    for (uint16_t qn = UMXD_KDP_QUEUE; qn <= UMXD_KDP_QUEUE_ORDER; qn++) {
        nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, qn);
        nfq_nlmsg_cfg_put_cmd(nlh, AF_INET, NFQNL_CFG_CMD_BIND);
        r = nfq_config(q, nlh); /* -EBUSY: another process holds the queue */
        if (r < 0)
            goto fail;
        nlh = nfq_nlmsg_put(buf, NFQNL_MSG_CONFIG, qn);
        nfq_nlmsg_cfg_put_params(nlh, NFQNL_COPY_PACKET, 0xffff);
        nfq_nlmsg_cfg_put_qmaxlen(nlh, NFQ_MAXLEN);
        /* NFQA_CFG_F_CONNTRACK (the entry with each packet) needs
         * CONFIG_NETFILTER_NETLINK_GLUE_CT, which this kernel lacks
         * (EOPNOTSUPP): replies are looked up in conntrack instead (ct.c).
         * Fail open only where that is harmless: a kernel flow's early
         * datagram that passes a full queue is still DNATed by its entry
         * (only its order is at stake); a new flow's datagram that passed
         * would confirm an entry without NAT and pin the flow to the user
         * path for as long as it keeps sending, so a full new-flow queue
         * drops (counted by the kernel, kernel.queue_dropped). */
        if (qn == UMXD_KDP_QUEUE_ORDER) {
            mnl_attr_put_u32(nlh, NFQA_CFG_FLAGS, htonl(NFQA_CFG_F_FAIL_OPEN));
            mnl_attr_put_u32(nlh, NFQA_CFG_MASK, htonl(NFQA_CFG_F_FAIL_OPEN));
        }
        r = nfq_config(q, nlh);
        if (r < 0)
            goto fail;
    }
    /* a full socket buffer is the kernel's to handle (a drop or a pass,
     * above); ENOBUFS would only tell us it happened */
    setsockopt(mnl_socket_get_fd(q->nl), SOL_NETLINK, NETLINK_NO_ENOBUFS, &one, sizeof(one));
    /* Room for the whole queue: with the default buffer (rmem_default,
     * ~200 KiB) the socket, not NFQ_MAXLEN, was the limit (a few hundred
     * messages). FORCE: above rmem_max, with the
     * CAP_NET_ADMIN the kernel datapath keeps anyway. */
    {
        int sz = NFQ_SOCKBUF;
        if (setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
            setsockopt(mnl_socket_get_fd(q->nl), SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
    }
    *out = q;
    return 0;
fail:
    kdp_nfq_close(q);
    return r;
}

/* The queue socket an upgrade's old process handed over: the binding of
 * both queues and their configuration belong to the socket (its port id),
 * so there is nothing to send; datagrams queued while nobody read wait in
 * it. */
int kdp_nfq_adopt(struct kdp_nfq **out, int fd)
{
    struct kdp_nfq *q = nfq_alloc();
    struct sockaddr_nl sa;
    socklen_t sl = sizeof(sa);
    int r;
    if (!q) {
        close(fd);
        return -ENOMEM;
    }
    memset(&sa, 0, sizeof(sa));
    /* a netlink netfilter socket, bound: anything else is refused */
    if (getsockname(fd, (struct sockaddr *)&sa, &sl) < 0 || sa.nl_family != AF_NETLINK ||
        !sa.nl_pid) {
        r = -EBADF;
        goto fail;
    }
    {
        int proto = -1;
        socklen_t pl = sizeof(proto);
        if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &proto, &pl) < 0 ||
            proto != NETLINK_NETFILTER) {
            r = -EBADF;
            goto fail;
        }
    }
    q->nl = mnl_socket_fdopen(fd);
    if (!q->nl) {
        r = -errno;
        goto fail;
    }
    q->portid = mnl_socket_get_portid(q->nl);
    *out = q;
    return 0;
fail:
    if (!q->nl)
        close(fd);
    kdp_nfq_close(q);
    return r;
}

void kdp_nfq_close(struct kdp_nfq *q)
{
    if (!q)
        return;
    if (q->nl)
        mnl_socket_close(q->nl); /* the kernel unbinds the queue */
    free(q->rbuf);
    free(q->vbuf);
    free(q);
}

int kdp_nfq_fd(const struct kdp_nfq *q)
{
    return mnl_socket_get_fd(q->nl);
}

static int on_msg(const struct nlmsghdr *nlh, void *data)
{
    struct nfq_cb *cb = data;
    struct nlattr *attr[NFQA_MAX + 1] = {0};
    const struct nfgenmsg *g = mnl_nlmsg_get_payload(nlh);
    const struct nfqnl_msg_packet_hdr *ph;
    struct kdp_pkt p;
    if (nfq_nlmsg_parse(nlh, attr) < 0 || !attr[NFQA_PACKET_HDR])
        return MNL_CB_OK;
    ph = mnl_attr_get_payload(attr[NFQA_PACKET_HDR]);
    memset(&p, 0, sizeof(p));
    p.id = ntohl(ph->packet_id);
    p.queue = ntohs(g->res_id); /* packet ids are per queue */
    p.hook = ph->hook;
    p.mark = attr[NFQA_MARK] ? ntohl(mnl_attr_get_u32(attr[NFQA_MARK])) : 0;
    p.family = g->nfgen_family == NFPROTO_IPV6 ? AF_INET6 : AF_INET;
    if (!attr[NFQA_PAYLOAD]) {
        kdp_nfq_verdict(cb->q, p.queue, p.id, NF_ACCEPT, p.mark);
        return MNL_CB_OK;
    }
    {
        const uint8_t *pkt = mnl_attr_get_payload(attr[NFQA_PAYLOAD]);
        struct kdp_ip_udp ip;
        /* read in place (ippkt.c says why not the pktb helpers) */
        if (kdp_ip_udp_parse(p.family, pkt, mnl_attr_get_payload_len(attr[NFQA_PAYLOAD]), &ip) <
            0) {
            kdp_nfq_verdict(cb->q, p.queue, p.id, NF_ACCEPT, p.mark);
        } else {
            p.src = ip.src;
            p.dst = ip.dst;
            p.payload = pkt + ip.off;
            p.len = ip.len;
            cb->fn(cb->arg, &p);
            cb->handed++;
        }
    }
    return MNL_CB_OK;
}

int kdp_nfq_read(struct kdp_nfq *q, int timeout_ms, kdp_pkt_fn *fn, void *arg)
{
    struct nfq_cb cb = {fn, arg, q, 0};
    struct pollfd pfd = {.fd = mnl_socket_get_fd(q->nl), .events = POLLIN};
    int r = poll(&pfd, 1, timeout_ms);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    /* every queued datagram is one netlink message: many per system call
     * (a new flow's burst is queued whole) */
    for (unsigned got = 0; r > 0 && got < NFQ_BATCH;) {
        struct mmsghdr m[NFQ_SLOTS];
        struct iovec iov[NFQ_SLOTS];
        int n;
        memset(m, 0, sizeof(m));
        for (unsigned i = 0; i < NFQ_SLOTS; i++) {
            iov[i].iov_base = q->rbuf + (size_t)i * NFQ_RBUF;
            iov[i].iov_len = NFQ_RBUF;
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(pfd.fd, m, NFQ_SLOTS, MSG_DONTWAIT, NULL);
        if (n <= 0)
            break;
        /* an error message answers a verdict the kernel refused (packet
         * already gone): nothing to redo */
        for (int i = 0; i < n; i++)
            mnl_cb_run(iov[i].iov_base, m[i].msg_len, 0, q->portid, on_msg, &cb);
        got += (unsigned)n;
        if ((unsigned)n < NFQ_SLOTS)
            break;
    }
    return cb.handed;
}

void kdp_nfq_verdict(struct kdp_nfq *q, uint16_t queue, uint32_t id, int verdict, uint32_t mark)
{
    struct nlmsghdr *nlh;
    if (q->vused + 256 > NFQ_VBUF)
        kdp_nfq_flush(q);
    nlh = nfq_nlmsg_put(q->vbuf + q->vused, NFQNL_MSG_VERDICT, queue);
    nfq_nlmsg_verdict_put(nlh, (int)id, verdict);
    if (verdict == NF_ACCEPT)
        nfq_nlmsg_verdict_put_mark(nlh, mark);
    q->vused += NLMSG_ALIGN(nlh->nlmsg_len);
}

int kdp_nfq_flush(struct kdp_nfq *q)
{
    ssize_t n;
    if (!q->vused)
        return 0;
    n = mnl_socket_sendto(q->nl, q->vbuf, q->vused);
    q->vused = 0;
    return n < 0 ? -errno : 0;
}

int kdp_nfq_dropped(uint64_t *out)
{
    /* queue_number peer_portid queue_total copy_mode copy_range
     * queue_dropped user_dropped id_sequence 1 (this namespace's queues) */
    FILE *f = fopen("/proc/net/netfilter/nfnetlink_queue", "re");
    unsigned qn, pid, total, mode, range;
    unsigned long long qd, ud;
    char line[256];
    int found = -ENOENT;
    if (!f)
        return -errno;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "%u %u %u %u %u %llu %llu", &qn, &pid, &total, &mode, &range, &qd, &ud) ==
                7 &&
            qn == UMXD_KDP_QUEUE) {
            *out = qd + ud;
            found = 0;
        }
    fclose(f);
    return found;
}
