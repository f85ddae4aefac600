/*
 * rtcp.c - RTCP (RFC 3550, 4585, 3611, 5760) and SRTCP (RFC 3711).
 *
 * A compound RTCP datagram is a run of packets, each version 2 with a packet
 * type 200..213 and a length field (32-bit words minus one), that tiles the
 * datagram exactly. SR and RR carry a report count that fixes a minimum
 * length. SRTCP encrypts everything after the first 8 bytes and appends
 * E|index (4 bytes) and an authentication tag (RFC 3711: 10 bytes by
 * default, 4 to 16 in profiles), so for SRTCP only the first packet's header
 * is readable: we accept a first packet whose length fits and a remainder
 * that is at least index + tag.
 */
#include "common.h"

#define FIRST(b) ((b) >= 0x80 && (b) <= 0xbf)

/* Minimum length field (words - 1) for a packet type and report count. */
static int rtcp_len_ok(unsigned pt, unsigned rc, size_t words_m1)
{
    switch (pt) {
    case 200: /* SR: header 8 + sender info 20 + 24 per report block */
        return words_m1 >= 6 + 6 * (size_t)rc;
    case 201: /* RR: header 8 + 24 per report block */
        return words_m1 >= 1 + 6 * (size_t)rc;
    case 203: /* BYE: rc SSRCs */
        return words_m1 + 1 >= rc;
    case 204: /* APP: SSRC + name */
    case 205: /* RTPFB */
    case 206: /* PSFB: sender and media SSRC */
        return words_m1 >= 2;
    default:
        return 1;
    }
}

static int rtcp_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    unsigned n = 0, first_pt = 0;

    (void)params;
    if (in->len < 8)
        return UMX_NOMATCH;
    /* Every packet consumes at least 4 bytes, so this ends. */
    while (umx_cur_left(&c)) {
        uint8_t b0, pt;
        uint16_t lw;
        size_t bytes;
        if (umx_cur_left(&c) < 4)
            break;
        b0 = c.p[0];
        pt = c.p[1];
        lw = umx_be16(c.p + 2);
        bytes = 4 * ((size_t)lw + 1);
        if ((b0 & 0xc0) != 0x80 || pt < 200 || pt > 213 || !rtcp_len_ok(pt, b0 & 0x1f, lw) ||
            bytes > umx_cur_left(&c))
            break;
        /* Only the last packet of a compound may carry padding. */
        if ((b0 & 0x20) && bytes != umx_cur_left(&c))
            break;
        if (n == 0)
            first_pt = pt;
        n++;
        umx_cur_skip(&c, bytes);
    }
    if (n == 0)
        return UMX_NOMATCH;
    if (umx_cur_left(&c) == 0)
        return UMX_MATCH;
    /* SRTCP: a readable first header (usually SR/RR; aiortc closes with a
     * lone BYE), then encrypted data we cannot parse, then E|index (4) and
     * a tag of 4..16 bytes: at least 8 bytes left. */
    if (first_pt && umx_cur_left(&c) >= 8)
        return UMX_MATCH;
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_rtcp = {
    .name = "rtcp",
    .match = rtcp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
