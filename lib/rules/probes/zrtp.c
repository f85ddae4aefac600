/*
 * zrtp.c - ZRTP (RFC 6189 section 5): a 12-byte packet header (0x10 0x00,
 * sequence, magic cookie "ZRTP", source identifier), a message with preamble
 * 0x505a, a length in 32-bit words that covers the message, and a 4-byte CRC
 * after it. The datagram size must equal 12 + 4 * length + 4, and the
 * 8-character type block must be one of the message types the RFC defines.
 * The CRC (CRC-32c) is not recomputed: the cookie, the preamble, the length
 * and the type block already leave no realistic collision.
 */
#include "common.h"

#define FIRST(b) ((b) == 0x10)

static const char *const zrtp_types[] = {
    "Hello   ", "HelloACK", "Commit  ", "DHPart1 ", "DHPart2 ", "Confirm1", "Confirm2", "Conf2ACK",
    "Error   ", "ErrorACK", "GoClear ", "ClearACK", "SASrelay", "RelayACK", "Ping    ", "PingACK ",
};

static int zrtp_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t words;

    (void)params;
    /* Smallest message: header 12 + preamble/length 4 + type 8 + CRC 4. */
    if (in->len < 28 || (in->len & 3) || p[0] != 0x10 || p[1] != 0x00)
        return UMX_NOMATCH;
    if (memcmp(p + 4, "ZRTP", 4) != 0 || p[12] != 0x50 || p[13] != 0x5a)
        return UMX_NOMATCH;
    words = umx_be16(p + 14);
    if (words < 3 || 12 + 4 * words + 4 != in->len)
        return UMX_NOMATCH;
    for (size_t i = 0; i < sizeof(zrtp_types) / sizeof(zrtp_types[0]); i++)
        if (memcmp(p + 16, zrtp_types[i], 8) == 0)
            return UMX_MATCH;
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_zrtp = {
    .name = "zrtp",
    .match = zrtp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
