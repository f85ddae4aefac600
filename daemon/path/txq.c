/*
 * txq.c - the worker's send queues. Datagrams are queued during a receive
 * batch (pointing into the receive buffers: no copy) and leave at its end:
 *   to backends    one send per flow run (UDP GSO for equal sizes), or, for
 *                  shared flows, one sendmmsg for all of them;
 *   to peers       one sendmmsg per listener, same-flow runs as GSO;
 *   to programs    one sendmmsg per attached program.
 * A message the kernel refuses costs only its own datagrams (send_msgs).
 */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>

#include "path_int.h"

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

int txq_alloc(struct txstate *tx, unsigned batch)
{
    unsigned b = batch * 2;
    tx->cap = b;
    /* upstream queue: a whole receive batch plus held and relayed ones */
    tx->up = calloc(b, sizeof(*tx->up));
    tx->pub = calloc(b, sizeof(*tx->pub));
    tx->att = calloc(b, sizeof(*tx->att));
    tx->mm = calloc(b, sizeof(*tx->mm));
    tx->iov = calloc((size_t)b * 2 + (size_t)b * GSO_MAX_SEGS, sizeof(*tx->iov));
    tx->ctrl = calloc(b, sizeof(*tx->ctrl));
    tx->names = calloc(b, sizeof(*tx->names));
    tx->pxhdr = calloc(b, sizeof(*tx->pxhdr));
    tx->counts = calloc(b, sizeof(*tx->counts));
    tx->first = calloc(b, sizeof(*tx->first));
    tx->attmm = calloc(b, sizeof(*tx->attmm));
    tx->attiov = calloc((size_t)b * 2, sizeof(*tx->attiov));
    /* a built-in reply is at most a datagram plus a STUN header's growth */
    tx->replycap = 256 * 1024;
    tx->replybuf = malloc(tx->replycap);
    if (!tx->up || !tx->pub || !tx->att || !tx->mm || !tx->iov || !tx->ctrl || !tx->names ||
        !tx->pxhdr || !tx->counts || !tx->first || !tx->attmm || !tx->attiov || !tx->replybuf)
        return -ENOMEM;
    return 0;
}

void txq_free(struct txstate *tx)
{
    free(tx->up);
    free(tx->pub);
    free(tx->att);
    free(tx->mm);
    free(tx->iov);
    free(tx->ctrl);
    free(tx->names);
    free(tx->pxhdr);
    free(tx->counts);
    free(tx->first);
    free(tx->attmm);
    free(tx->attiov);
    free(tx->replybuf);
}

/* The GSO-run finder, for both queues: how many entries from i on (before
 * end, same run key) leave as one UDP GSO send. Equal sizes; the last may be
 * shorter but not empty (an empty last segment adds no bytes to the send,
 * so it would vanish). 1 when GSO is off or refused. */
struct run_item {
    uint64_t key; /* entries with the same key go to the same place */
    uint32_t len;
};

static unsigned gso_run(const struct umxd_worker *w, const struct run_item *it, unsigned end)
{
    unsigned k = 1, bytes = it[0].len, seg = it[0].len;
    if (!w->gso_ok || !w->rs->cfg->gso || seg == 0 || it[0].key == UINT64_MAX)
        return 1;
    while (k < end && k < GSO_MAX_SEGS && it[k].key == it[0].key && it[k].len > 0 &&
           it[k].len <= seg && bytes + it[k].len <= GSO_MAX_BYTES) {
        bytes += it[k].len;
        k++;
        if (it[k - 1].len < seg)
            break;
    }
    return k;
}

/* Run items of the backend queue from i (flows) and of the peer queue
 * (flow and listener; built-in replies never batch). */
static unsigned up_run(const struct umxd_worker *w, unsigned i, unsigned end)
{
    struct run_item it[GSO_MAX_SEGS];
    unsigned n = end - i < GSO_MAX_SEGS ? end - i : GSO_MAX_SEGS;
    for (unsigned x = 0; x < n; x++) {
        it[x].key = (uint64_t)(uintptr_t)w->tx.up[i + x].f;
        it[x].len = w->tx.up[i + x].len;
    }
    return gso_run(w, it, n);
}

static unsigned pub_run(const struct umxd_worker *w, unsigned i, unsigned end)
{
    struct run_item it[GSO_MAX_SEGS];
    unsigned n = end - i < GSO_MAX_SEGS ? end - i : GSO_MAX_SEGS;
    for (unsigned x = 0; x < n; x++) {
        const struct pubq *q = &w->tx.pub[i + x];
        it[x].key = q->flow == UINT32_MAX ? UINT64_MAX : (uint64_t)q->listener << 32 | q->flow;
        it[x].len = q->len;
    }
    return gso_run(w, it, n);
}

/* Sends the GSO message x of tx->mm as one message per datagram (no
 * UDP_SEGMENT): returns how many went. */
static unsigned send_split(struct umxd_worker *w, int fd, unsigned x)
{
    const struct msghdr *gm = &w->tx.mm[x].msg_hdr;
    struct mmsghdr one[GSO_MAX_SEGS];
    size_t clen = gm->msg_controllen - CMSG_SPACE(sizeof(uint16_t));
    unsigned k = (unsigned)gm->msg_iovlen, sent = 0;
    memset(one, 0, sizeof(one[0]) * k);
    for (unsigned y = 0; y < k; y++) {
        one[y].msg_hdr.msg_name = gm->msg_name;
        one[y].msg_hdr.msg_namelen = gm->msg_namelen;
        one[y].msg_hdr.msg_iov = &gm->msg_iov[y];
        one[y].msg_hdr.msg_iovlen = 1;
        one[y].msg_hdr.msg_control = clen ? gm->msg_control : NULL;
        one[y].msg_hdr.msg_controllen = clen;
    }
    while (sent < k) {
        int r = umx_sendmmsg(fd, one + sent, k - sent);
        if (r <= 0)
            break;
        sent += (unsigned)r;
    }
    return sent;
}

/* What one message of a batch became: `ok` datagrams sent, `lost` not. */
typedef void sent_fn(struct umxd_worker *w, unsigned x, unsigned ok, unsigned lost);

/* Sends the n messages built in tx->mm[0, n) (tx->counts[x]: datagrams in
 * message x) with as few sendmmsg calls as the kernel allows. A message the
 * kernel refuses costs only its own datagrams: it is skipped and the rest
 * of the batch still goes (one peer with source port 0 must not cost other
 * peers their replies). A GSO message refused is retried datagram by
 * datagram; GSO is turned off only if those go (the kernel refused GSO, not
 * the destination). A full socket buffer drops the rest. */
static void send_msgs(struct umxd_worker *w, int fd, unsigned n, sent_fn *done)
{
    struct txstate *tx = &w->tx;
    unsigned off = 0;
    int retried = 0;
    while (off < n) {
        int r = umx_sendmmsg(fd, tx->mm + off, n - off);
        if (r > 0) {
            for (unsigned x = off; x < off + (unsigned)r; x++)
                done(w, x, tx->counts[x], 0);
            off += (unsigned)r;
            retried = 0;
            continue;
        }
        if (r == -EAGAIN || r == -ENOBUFS) {
            for (unsigned x = off; x < n; x++)
                done(w, x, 0, tx->counts[x]);
            return;
        }
        if ((r == -ECONNREFUSED || r == -EHOSTUNREACH || r == -ENETUNREACH) && !retried) {
            /* an ICMP error for an earlier datagram (IP_RECVERR) fails the
             * next send once, without sending it: try that one again */
            retried = 1;
            continue;
        }
        retried = 0;
        if (tx->counts[off] > 1 && (r == -EIO || r == -EINVAL || r == -EOPNOTSUPP)) {
            unsigned ok = send_split(w, fd, off);
            if (ok == tx->counts[off])
                w->gso_ok = 0; /* this kernel or route refuses GSO */
            done(w, off, ok, tx->counts[off] - ok);
        } else {
            done(w, off, 0, tx->counts[off]);
        }
        off++;
    }
}

/* To backends ------------------------------------------------------------------ */

void queue_up(struct umxd_worker *w, struct umx_flow *f, const uint8_t *data, size_t len,
              uint64_t now)
{
    struct upq *q;
    if (w->tx.nup >= w->tx.cap)
        flush_up(w, now);
    q = &w->tx.up[w->tx.nup++];
    q->f = f;
    q->data = data;
    q->len = (uint32_t)len;
}

static void count_up(struct umxd_worker *w, const struct umxd_flow *fl, unsigned first, unsigned ok,
                     unsigned lost)
{
    struct umxd_backend_stats *b = bst_of(w, fl);
    uint64_t sent_bytes = 0, lost_bytes = 0;
    for (unsigned k = 0; k < ok; k++)
        sent_bytes += w->tx.up[first + k].len;
    for (unsigned k = ok; k < ok + lost; k++)
        lost_bytes += w->tx.up[first + k].len;
    UMX_CTR_ADD(w->st.up_tx_datagrams, ok);
    UMX_CTR_ADD(w->st.up_tx_bytes, sent_bytes);
    if (b) {
        UMX_CTR_ADD(b->tx_datagrams, ok);
        UMX_CTR_ADD(b->tx_bytes, sent_bytes);
    }
    if (lost) {
        count_drop(w, fl->slot, UMXD_DROP_SEND, lost, lost_bytes);
        flowlog_drop(w, fl->route, UMXD_DROP_SEND, &fl->peer, lost, lost_bytes);
        if (b) {
            UMX_CTR_ADD(b->tx_dropped, lost);
            UMX_CTR_ADD(b->tx_dropped_bytes, lost_bytes);
        }
    }
}

static void msg_dest(struct msghdr *mh, const struct umxd_route *rt, struct umxd_flow *fl)
{
    if (!rt->connected || fl->shared) {
        mh->msg_name = &fl->upaddr;
        mh->msg_namelen = umx_sa_len((const struct sockaddr *)&fl->upaddr);
    }
}

/* Sends queued datagrams of one socket flow [i, j) to its backend. */
static void send_run(struct umxd_worker *w, unsigned i, unsigned j, uint64_t now)
{
    struct txstate *tx = &w->tx;
    struct umxd_flow *fl = umxd_fl(tx->up[i].f);
    const struct umxd_route *rt = route_of(w, fl->route);
    unsigned n = j - i, sent = 0;
    int r, err = 0;

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
            msg_dest(mh, rt, fl);
        }
        r = umx_sendmmsg(fl->up_fd, tx->mm, n);
        sent = r > 0 ? (unsigned)r : 0;
        err = r < 0 ? -r : 0;
    } else {
        while (sent < n) {
            unsigned k = up_run(w, i + sent, j), seg = tx->up[i + sent].len;
            struct msghdr *mh = &tx->mm[0].msg_hdr;
            if (k >= 2) {
                memset(mh, 0, sizeof(*mh));
                for (unsigned x = 0; x < k; x++) {
                    tx->iov[x].iov_base = (void *)(uintptr_t)tx->up[i + sent + x].data;
                    tx->iov[x].iov_len = tx->up[i + sent + x].len;
                }
                mh->msg_iov = tx->iov;
                mh->msg_iovlen = k;
                msg_dest(mh, rt, fl);
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
                err = errno;
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
                msg_dest(m, rt, fl);
            }
            r = umx_sendmmsg(fl->up_fd, tx->mm, k);
            if (r <= 0) {
                err = r < 0 ? -r : 0;
                break;
            }
            sent += (unsigned)r;
            if ((unsigned)r < k)
                break;
        }
    }
    count_up(w, fl, i, sent, j - i - sent);
    if (sent < j - i && err == ECONNREFUSED)
        mark_down(w, fl, now);
}

static void shr_sent(struct umxd_worker *w, unsigned x, unsigned ok, unsigned lost)
{
    unsigned first = w->tx.first[x];
    count_up(w, umxd_fl(w->tx.up[first].f), first, ok, lost);
}

/* Every queued datagram of shared flows of one family, as one sendmmsg:
 * a message per datagram, or per same-size run of one flow with UDP GSO,
 * each with the flow's backend as destination and its source address as
 * PKTINFO. */
static void shr_flush_family(struct umxd_worker *w, int family)
{
    struct txstate *tx = &w->tx;
    int fd = w->shr_fd[family == AF_INET6];
    unsigned i = 0, n = 0;
    while (i < tx->nup) {
        struct umxd_flow *fl = umxd_fl(tx->up[i].f);
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
        v = &tx->iov[tx->cap * 2 + n * GSO_MAX_SEGS];
        if (rt->proxy_v2) {
            size_t hl = umx_proxy_v2_encode(tx->pxhdr[n], (const struct sockaddr *)&fl->peer,
                                            (const struct sockaddr *)&fl->local);
            v[0].iov_base = tx->pxhdr[n];
            v[0].iov_len = hl;
            v[1].iov_base = (void *)(uintptr_t)tx->up[i].data;
            v[1].iov_len = tx->up[i].len;
            mh->msg_iovlen = 2;
        } else {
            k = up_run(w, i, tx->nup);
            for (unsigned x = 0; x < k; x++) {
                v[x].iov_base = (void *)(uintptr_t)tx->up[i + x].data;
                v[x].iov_len = tx->up[i + x].len;
            }
            mh->msg_iovlen = k;
        }
        mh->msg_iov = v;
        msg_dest(mh, rt, fl);
        umx_tx_set_src(mh, tx->ctrl[n], family, (const struct sockaddr *)&fl->upsrc, 0);
        if (k > 1) {
            umx_tx_add_gso(mh, tx->ctrl[n], (uint16_t)tx->up[i].len);
            UMX_CTR_ADD(w->st.gso_sends, 1);
        }
        tx->counts[n] = k;
        tx->first[n++] = i;
        i += k;
        if (n == tx->cap) {
            send_msgs(w, fd, n, shr_sent);
            n = 0;
        }
    }
    if (n)
        send_msgs(w, fd, n, shr_sent);
}

void flush_up(struct umxd_worker *w, uint64_t now)
{
    struct txstate *tx = &w->tx;
    unsigned i = 0, shared = 0;
    while (i < tx->nup) {
        unsigned j = i + 1;
        while (j < tx->nup && tx->up[j].f == tx->up[i].f)
            j++;
        if (umxd_fl(tx->up[i].f)->shared)
            shared |= umxd_fl(tx->up[i].f)->upaddr.sin6_family == AF_INET6 ? 2u : 1u;
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

/* To peers ------------------------------------------------------------------------ */

void queue_pub(struct umxd_worker *w, unsigned li, const uint8_t *data, size_t len,
               const struct sockaddr_in6 *peer, const struct sockaddr_in6 *local, uint32_t flow)
{
    struct pubq *q;
    if (w->tx.npub >= w->tx.cap)
        flush_pub(w);
    q = &w->tx.pub[w->tx.npub++];
    q->listener = (uint8_t)li;
    q->data = data;
    q->len = (uint32_t)len;
    q->peer = *peer;
    q->local = *local;
    q->flow = flow;
}

/* Built-in replies are built in the worker's reply buffer, which lives until
 * the queue is flushed. */
uint8_t *reply_space(struct umxd_worker *w, size_t len)
{
    uint8_t *p;
    if (w->tx.replyoff + len > w->tx.replycap)
        flush_pub(w);
    p = w->tx.replybuf + w->tx.replyoff;
    w->tx.replyoff += len;
    return p;
}

/* Gives back the unused tail of the last reply_space(). */
void reply_unspace(struct umxd_worker *w, size_t len)
{
    w->tx.replyoff -= len;
}

static void pub_sent(struct umxd_worker *w, unsigned x, unsigned ok, unsigned lost)
{
    unsigned first = w->tx.first[x];
    UMX_CTR_ADD(w->st.tx_datagrams, ok);
    UMX_CTR_ADD(w->st.tx_errors, lost);
    for (unsigned k = 0; k < ok; k++)
        UMX_CTR_ADD(w->st.tx_bytes, w->tx.pub[first + k].len);
}

static void flush_pub_listener(struct umxd_worker *w, unsigned li)
{
    struct txstate *tx = &w->tx;
    int fam = w->pub_family[li];
    unsigned i = 0, n = 0;
    while (i < tx->npub) {
        struct pubq *q = &tx->pub[i];
        struct msghdr *mh;
        unsigned k;
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
        /* a same-flow, same-size run of replies goes out as one GSO send;
         * its iovecs go after the batch's single slots */
        k = pub_run(w, i, tx->npub);
        if (k > 1) {
            struct iovec *v = &tx->iov[tx->cap * 2 + n * GSO_MAX_SEGS];
            for (unsigned x = 0; x < k; x++) {
                v[x].iov_base = (void *)(uintptr_t)tx->pub[i + x].data;
                v[x].iov_len = tx->pub[i + x].len;
            }
            mh->msg_iov = v;
            mh->msg_iovlen = k;
        } else {
            tx->iov[n].iov_base = (void *)(uintptr_t)q->data;
            tx->iov[n].iov_len = q->len;
            mh->msg_iov = &tx->iov[n];
            mh->msg_iovlen = 1;
        }
        if (q->local.sin6_family)
            umx_tx_set_src(mh, tx->ctrl[n], fam, (const struct sockaddr *)&q->local, 0);
        if (k > 1) {
            umx_tx_add_gso(mh, tx->ctrl[n], (uint16_t)q->len);
            UMX_CTR_ADD(w->st.gso_sends, 1);
        }
        tx->counts[n] = k;
        tx->first[n++] = i;
        i += k;
        if (n == tx->cap) {
            send_msgs(w, w->pub_fd[li], n, pub_sent);
            n = 0;
        }
    }
    if (n)
        send_msgs(w, w->pub_fd[li], n, pub_sent);
}

void flush_pub(struct umxd_worker *w)
{
    if (!w->tx.npub)
        return;
    for (unsigned li = 0; li < w->rs->cfg->nlisten; li++)
        flush_pub_listener(w, li);
    w->tx.npub = 0;
    w->tx.replyoff = 0;
}

/* To attached programs ------------------------------------------------------------ */

void queue_att(struct umxd_worker *w, struct umx_flow *f, const struct umx_rx_slot *s)
{
    const struct umxd_flow *fl = umxd_fl(f);
    struct attq *q;
    if (w->tx.natt >= w->tx.cap)
        flush_att(w);
    q = &w->tx.att[w->tx.natt++];
    q->f = f;
    q->client = fl->client;
    q->gen = fl->cgen;
    q->data = s->buf;
    q->len = (uint32_t)s->len;
    umx_att_encode_hdr(q->hdr, (const struct sockaddr *)&s->peer,
                       s->has_local ? (const struct sockaddr *)&s->local : NULL);
}

void flush_att(struct umxd_worker *w)
{
    struct txstate *tx = &w->tx;
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
                if (f->in_use && umxd_fl(f)->attach && umxd_fl(f)->cgen == tx->att[k].gen)
                    remove_flow(w, f, "attached program left");
                count_drop(w, -1, UMXD_DROP_UNCLAIMED, 1, tx->att[k].len);
            }
        } else if (r < (int)n) {
            uint64_t lost_bytes = 0;
            for (unsigned k = r < 0 ? 0 : (unsigned)r; k < n; k++)
                lost_bytes += tx->att[i + k].len;
            count_drop(w, umxd_fl(tx->att[i].f)->slot, UMXD_DROP_ATTACH_FULL,
                       r < 0 ? n : n - (unsigned)r, lost_bytes);
        }
        i = j;
    }
    tx->natt = 0;
}
