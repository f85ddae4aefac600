/*
 * dispatch.c - receiving: a batch per ready endpoint, each datagram
 * classified by the live handlers' rules (the candidate index, or rule by
 * rule past UMX_RULE_INDEX_MAX) and delivered to the first match or the
 * default handler; an undecided datagram is held (holds.c).
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "io/udp.h"
#include "mux/mux.h"

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
void umx__mux_deliver(struct udpmux *m, struct udpmux_dgram *d, int id)
{
    struct handler *h = umx__handler_of(m, id);
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
    if (k < 0 && more && umx__hold_put(m, &d, now) == 0)
        return;
    if (k >= 0)
        id = id_make(m->order[k], m->handlers[m->order[k]].gen);
    /* decided (a handler or none): what this peer sent before goes first */
    if (m->nheld)
        umx__hold_release(m, &d, id);
    umx__mux_deliver(m, &d, id);
}

int umx__mux_process_endpoint(struct udpmux *m, unsigned ep, unsigned budget, uint64_t now)
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
