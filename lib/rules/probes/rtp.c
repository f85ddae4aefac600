/*
 * rtp.c - RTP (RFC 3550) and SRTP (RFC 3711, same clear header).
 *
 * RTP has no magic and no length field, so this is the weakest probe and
 * sits last in the default order. Checked: version 2; payload type not in
 * 64..95 (RFC 5761: those collide with RTCP packet types when multiplexed,
 * and 72..76 are reserved), and not in the unassigned 35..63 block; header
 * with CSRC list and extension header fits; a padding count, when the P bit
 * is set, fits in the payload; at least one payload byte (RTP without
 * payload is not sent in practice). Real RTP flows start after SIP/SDP or
 * ICE, so flows are pinned by the daemon long before this probe matters.
 */
#include "common.h"

#define FIRST(b) ((b) >= 0x80 && (b) <= 0xbf)

static int rtp_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t hdr, cc, pad = 0;
    unsigned pt;

    (void)params;
    if (in->len < 13 || (p[0] & 0xc0) != 0x80)
        return UMX_NOMATCH;
    pt = p[1] & 0x7f;
    if (pt >= 35 && pt <= 95)
        return UMX_NOMATCH;
    cc = p[0] & 0x0f;
    hdr = 12 + 4 * cc;
    if (p[0] & 0x10) {
        /* Extension: profile(2) | length in words(2) | words. */
        if (in->len < hdr + 4)
            return UMX_NOMATCH;
        hdr += 4 + 4 * (size_t)umx_be16(p + hdr + 2);
    }
    if (p[0] & 0x20) {
        pad = p[in->len - 1];
        if (pad == 0)
            return UMX_NOMATCH;
    }
    if (hdr + pad >= in->len)
        return UMX_NOMATCH;
    return UMX_MATCH;
}

const struct umx_probe umx_probe_rtp = {
    .name = "rtp",
    .match = rtp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
