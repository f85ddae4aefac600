/*
 * holds.c - datagrams a probe cannot decide alone (UMX_MORE: a QUIC
 * ClientHello split over Initials): a copy in a small fixed pool until a
 * later datagram of the same peer decides, then delivered first, oldest
 * first; the oldest goes when the pool is full, and HOLD_NS forgets them.
 */
#include <errno.h>
#include <string.h>

#include "internal.h"
#include "io/udp.h"
#include "mux/mux.h"

static void hold_drop(struct udpmux *m, struct held *e)
{
    e->used = 0;
    m->nheld--;
    UMX_CTR_ADD(m->st.rx_hold_dropped, 1);
}

/* Forgets held datagrams that nothing can decide any more. */
void umx__hold_expire(struct udpmux *m, uint64_t now)
{
    for (unsigned i = 0; i < HOLD_SLOTS && m->nheld; i++)
        if (m->hold[i].used && now - m->hold[i].t > HOLD_NS)
            hold_drop(m, &m->hold[i]);
}

/* Keeps a copy of an undecided datagram; when the pool is full the oldest
 * held datagram is dropped (counted), as in the daemon. Returns 0, or -1
 * when the datagram is too long to hold. */
int umx__hold_put(struct udpmux *m, const struct udpmux_dgram *d, uint64_t now)
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
void umx__hold_release(struct udpmux *m, const struct udpmux_dgram *now_d, int id)
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
        umx__mux_deliver(m, &d, id);
    }
}
