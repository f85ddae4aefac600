/*
 * dns.c - DNS over UDP (RFC 1035, 6891) and mDNS (RFC 6762), queries and
 * responses.
 *
 * The first two bytes are a random ID, so DNS collides with every first-byte
 * rule; the only defence is a complete parse: the header counts must
 * describe exactly the sections that follow and those sections must end
 * exactly at the datagram's end. Checked: opcode 0 (QUERY), 2 (STATUS),
 * 4 (NOTIFY) or 5 (UPDATE); Z bit clear; a query (QR=0) has RCODE 0, no
 * answers and at least one question; names are labels of 1..63 bytes or
 * compression pointers to an earlier offset, at most 255 bytes; question
 * class IN, CH, HS, NONE or ANY (with the mDNS unicast-response bit allowed);
 * a resource record's RDATA fits; an OPT record has the root name.
 */
#include "common.h"

#define FIRST(b) 1

/* Skips a domain name; returns 0 or -1. */
static int skip_name(struct umx_cur *c, size_t off_base, const uint8_t *msg)
{
    size_t total = 0;

    /* Each label consumes at least one byte, and names are capped at 255. */
    for (;;) {
        uint8_t l;
        if (umx_cur_u8(c, &l))
            return -1;
        if (l == 0)
            return 0;
        if ((l & 0xc0) == 0xc0) {
            uint8_t lo;
            size_t target;
            if (umx_cur_u8(c, &lo))
                return -1;
            target = (size_t)(l & 0x3f) << 8 | lo;
            /* A pointer must point backwards, past the header. */
            if (target < 12 || target >= (size_t)(c->p - msg) - 2 + off_base)
                return -1;
            return 0;
        }
        if (l & 0xc0)
            return -1;
        total += (size_t)l + 1;
        if (total > 255 || umx_cur_skip(c, l))
            return -1;
    }
}

static int qclass_ok(uint16_t cl)
{
    cl &= 0x7fff; /* mDNS unicast-response / cache-flush bit */
    return cl == 1 || cl == 3 || cl == 4 || cl == 254 || cl == 255;
}

static int dns_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    uint16_t id, flags, qd, an, ns, ar;
    unsigned opcode;
    size_t nrr;

    (void)params;
    if (in->len < 17 || in->len > 65535)
        return UMX_NOMATCH;
    umx_cur_u16(&c, &id);
    umx_cur_u16(&c, &flags);
    umx_cur_u16(&c, &qd);
    umx_cur_u16(&c, &an);
    umx_cur_u16(&c, &ns);
    umx_cur_u16(&c, &ar);
    opcode = (flags >> 11) & 0xf;
    if ((flags & 0x0040) || !(opcode == 0 || opcode == 2 || opcode == 4 || opcode == 5))
        return UMX_NOMATCH;
    if (!(flags & 0x8000)) {
        /* Queries: RCODE 0, no answers (mDNS known answers excepted: they
         * only occur with ID 0), at least one question for QUERY. */
        if ((flags & 0x000f) || (an && id != 0) || (opcode == 0 && qd == 0))
            return UMX_NOMATCH;
    }
    /* Each question needs >= 5 bytes and each record >= 11: counts that
     * cannot fit are rejected before any walking. */
    if ((size_t)qd * 5 + ((size_t)an + ns + ar) * 11 > in->len - 12 || qd + an + ns + ar == 0)
        return UMX_NOMATCH;
    for (unsigned i = 0; i < qd; i++) {
        uint16_t qt, qc;
        if (skip_name(&c, 0, in->data) || umx_cur_u16(&c, &qt) || umx_cur_u16(&c, &qc))
            return UMX_NOMATCH;
        if (qt == 0 || !qclass_ok(qc))
            return UMX_NOMATCH;
    }
    nrr = (size_t)an + ns + ar;
    for (size_t i = 0; i < nrr; i++) {
        uint16_t t, cl, rdlen;
        const uint8_t *name = c.p;
        if (skip_name(&c, 0, in->data) || umx_cur_u16(&c, &t) || umx_cur_u16(&c, &cl) ||
            umx_cur_skip(&c, 4) || umx_cur_u16(&c, &rdlen) || umx_cur_skip(&c, rdlen))
            return UMX_NOMATCH;
        if (t == 0)
            return UMX_NOMATCH;
        if (t == 41) {
            /* OPT: root name, only in the additional section. */
            if (name[0] != 0 || i < (size_t)an + ns)
                return UMX_NOMATCH;
        } else if (!qclass_ok(cl) && cl != 0xfe) {
            return UMX_NOMATCH;
        }
    }
    return umx_cur_left(&c) == 0 ? UMX_MATCH : UMX_NOMATCH;
}

const struct umx_probe umx_probe_dns = {
    .name = "dns",
    .match = dns_match,
    .first = UMX_FIRST_PRED(FIRST),
};
