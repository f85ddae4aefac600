/*
 * raknet.c - RakNet offline (connectionless) messages, used by Minecraft
 * Bedrock and other games. Every offline message carries the 16-byte
 * OFFLINE_MESSAGE_DATA_ID magic 00ffff00 fefefefe fdfdfdfd 12345678 at a
 * position fixed by its message id, which makes the probe exact:
 *   01/02 unconnected ping:  id, time(8), magic, guid(8)          = 33 bytes
 *   1c unconnected pong:     id, time(8), guid(8), magic, u16 len + string
 *   05 open conn request 1:  id, magic, protocol(1), zero padding to the MTU
 *   06 open conn reply 1:    id, magic, guid(8), security(1), [cookie], mtu(2)
 *   07 open conn request 2:  id, magic, [cookie], address, mtu(2), guid(8)
 *   08 open conn reply 2:    id, magic, guid(8), address, mtu(2), encryption
 *   19 incompatible version: id, protocol(1), magic, guid(8)      = 26 bytes
 *   12/17/1a refusals:       id, magic, guid(8)                   = 25 bytes
 * Connected traffic (frame sets 0x80-0x8f) has no anchor; it is routed by
 * the flow the handshake pinned.
 */
#include "common.h"

static const uint8_t rak_magic[16] = {0x00, 0xff, 0xff, 0x00, 0xfe, 0xfe, 0xfe, 0xfe,
                                      0xfd, 0xfd, 0xfd, 0xfd, 0x12, 0x34, 0x56, 0x78};

#define FIRST(b)                                                                                   \
    ((b) == 0x01 || (b) == 0x02 || (b) == 0x1c || ((b) >= 0x05 && (b) <= 0x08) || (b) == 0x19 ||   \
     (b) == 0x12 || (b) == 0x17 || (b) == 0x1a)

static int magic_at(const struct umx_probe_in *in, size_t off)
{
    return in->len >= off + 16 && memcmp(in->data + off, rak_magic, 16) == 0;
}

static int raknet_match(const void *params, const struct umx_probe_in *in)
{
    size_t n = in->len;

    (void)params;
    if (n < 17)
        return UMX_NOMATCH;
    switch (in->data[0]) {
    case 0x01:
    case 0x02:
        return (n == 33 && magic_at(in, 9)) ? UMX_MATCH : UMX_NOMATCH;
    case 0x1c:
        if (n < 35 || !magic_at(in, 17))
            return UMX_NOMATCH;
        return (size_t)umx_be16(in->data + 33) + 35 == n ? UMX_MATCH : UMX_NOMATCH;
    case 0x05:
        /* Protocol version, then the MTU probe padding, which is zero. */
        if (n < 18 || n > 1500 || !magic_at(in, 1))
            return UMX_NOMATCH;
        for (size_t i = 18; i < n && i < 64; i++)
            if (in->data[i])
                return UMX_NOMATCH;
        return UMX_MATCH;
    case 0x06:
        return (n >= 28 && n <= 32 && magic_at(in, 1)) ? UMX_MATCH : UMX_NOMATCH;
    case 0x07:
    case 0x08:
        return (n >= 34 && n <= 64 && magic_at(in, 1)) ? UMX_MATCH : UMX_NOMATCH;
    case 0x19:
        return (n == 26 && magic_at(in, 2)) ? UMX_MATCH : UMX_NOMATCH;
    case 0x12:
    case 0x17:
    case 0x1a:
        return (n == 25 && magic_at(in, 1)) ? UMX_MATCH : UMX_NOMATCH;
    default:
        return UMX_NOMATCH;
    }
}

const struct umx_probe umx_probe_raknet = {
    .name = "raknet",
    .match = raknet_match,
    .first = UMX_FIRST_PRED(FIRST),
};
