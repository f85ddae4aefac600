/*
 * ippkt.c - IP/UDP headers of a queued datagram, read in place with the
 * bounded cursor. Hand-written because it is hot (every queued datagram)
 * and tiny: libnetfilter_queue 1.0.5, Debian's, has no pktb_setup_raw(),
 * so its pktb helpers need pktb_alloc(), a malloc and a copy of the whole
 * packet per datagram. The kernel defragments before the queue (conntrack
 * needs whole datagrams), so a fragment here is refused, not reassembled.
 */
#include <netinet/in.h>
#include <string.h>

#include "ippkt.h"
#include "rules/cursor.h"

static void set_addr(struct sockaddr_storage *ss, int family, const uint8_t *addr, uint16_t port)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in a;
        memset(&a, 0, sizeof(a));
        a.sin_family = AF_INET;
        memcpy(&a.sin_addr, addr, 4);
        a.sin_port = htons(port);
        memcpy(ss, &a, sizeof(a));
    } else {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof(a));
        a.sin6_family = AF_INET6;
        memcpy(&a.sin6_addr, addr, 16);
        a.sin6_port = htons(port);
        memcpy(ss, &a, sizeof(a));
    }
}

/* IPv4: 0 with the cursor on the UDP header (bounded by the total length),
 * or -1. */
static int ip4(struct umx_cur *c, const uint8_t **src, const uint8_t **dst)
{
    const uint8_t *h = c->p;
    uint8_t vihl, proto;
    uint16_t total, frag;
    size_t hl;
    if (umx_cur_u8(c, &vihl) < 0 || (vihl >> 4) != 4 || (hl = (size_t)(vihl & 0xf) * 4) < 20 ||
        umx_cur_skip(c, 1) < 0 || umx_cur_u16(c, &total) < 0 || umx_cur_skip(c, 2) < 0 ||
        umx_cur_u16(c, &frag) < 0 || umx_cur_skip(c, 1) < 0 || umx_cur_u8(c, &proto) < 0)
        return -1;
    /* more fragments, or not the first: not a whole datagram */
    if (proto != IPPROTO_UDP || (frag & 0x3fff) != 0 || total < hl || (size_t)(c->end - h) < total)
        return -1;
    *src = h + 12;
    *dst = h + 16;
    c->end = h + total;
    c->p = h;
    return umx_cur_skip(c, hl);
}

/* IPv6: 0 with the cursor on the UDP header, or -1. Skips hop-by-hop,
 * routing and destination options headers; a fragment header (or any
 * other) ends the search. */
static int ip6(struct umx_cur *c, const uint8_t **src, const uint8_t **dst)
{
    const uint8_t *h = c->p;
    uint8_t v, next;
    uint16_t plen;
    if (umx_cur_u8(c, &v) < 0 || (v >> 4) != 6 || umx_cur_skip(c, 3) < 0 ||
        umx_cur_u16(c, &plen) < 0 || umx_cur_u8(c, &next) < 0 || umx_cur_skip(c, 33) < 0 ||
        (size_t)(c->end - c->p) < plen)
        return -1;
    *src = h + 8;
    *dst = h + 24;
    c->end = c->p + plen;
    /* at most 8 extension headers: a bound on work, far above real use */
    for (int i = 0; i < 8 && next != IPPROTO_UDP; i++) {
        uint8_t nh, elen;
        if (next != IPPROTO_HOPOPTS && next != IPPROTO_ROUTING && next != IPPROTO_DSTOPTS)
            return -1;
        if (umx_cur_u8(c, &nh) < 0 || umx_cur_u8(c, &elen) < 0 ||
            umx_cur_skip(c, (size_t)(elen + 1) * 8 - 2) < 0)
            return -1;
        next = nh;
    }
    return next == IPPROTO_UDP ? 0 : -1;
}

int kdp_ip_udp_parse(int family, const uint8_t *pkt, size_t n, struct kdp_ip_udp *out)
{
    struct umx_cur c = umx_cur_make(pkt, n);
    const uint8_t *src, *dst;
    uint16_t sport, dport, ulen;
    if ((family == AF_INET ? ip4(&c, &src, &dst) : ip6(&c, &src, &dst)) < 0)
        return -1;
    if (umx_cur_u16(&c, &sport) < 0 || umx_cur_u16(&c, &dport) < 0 || umx_cur_u16(&c, &ulen) < 0 ||
        umx_cur_skip(&c, 2) < 0)
        return -1;
    /* the UDP length counts its 8-byte header and must fit the IP packet */
    if (ulen < 8 || umx_cur_left(&c) < (size_t)ulen - 8)
        return -1;
    set_addr(&out->src, family, src, sport);
    set_addr(&out->dst, family, dst, dport);
    out->off = (size_t)(c.p - pkt);
    out->len = (size_t)ulen - 8;
    return 0;
}
