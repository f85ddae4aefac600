/*
 * turn_channel.c - TURN ChannelData (RFC 8656 section 12): channel number
 * 0x4000-0x4fff, 16-bit data length. Over UDP the datagram is exactly
 * 4 + length bytes, or that rounded up to a multiple of 4 (padding is
 * optional on UDP). The length check is what separates ChannelData from a
 * QUIC short header or CoAP in the same first-byte range 0x40-0x4f; the
 * registry puts this probe before coap for that reason.
 *
 * Channels 0x5000-0x7fff (allowed by the obsolete RFC 5766) are not matched:
 * RFC 8656 reserves them for RFC 9443 demultiplexing, where 0x50-0x7f is QUIC.
 */
#include "common.h"

#define FIRST(b) ((b) >= 0x40 && (b) <= 0x4f)

static int turn_channel_match(const void *params, const struct umx_probe_in *in)
{
    size_t dlen, need;

    (void)params;
    if (in->len < 4 || !FIRST(in->data[0]))
        return UMX_NOMATCH;
    dlen = umx_be16(in->data + 2);
    need = 4 + dlen;
    if (in->len != need && in->len != ((need + 3) & ~(size_t)3))
        return UMX_NOMATCH;
    return UMX_MATCH;
}

const struct umx_probe umx_probe_turn_channel = {
    .name = "turn-channel",
    .match = turn_channel_match,
    .first = UMX_FIRST_PRED(FIRST),
};
