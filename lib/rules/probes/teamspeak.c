/*
 * teamspeak.c - TeamSpeak 3 connection set-up ("init1" handshake), the only
 * part of the protocol in clear. Client packets: MAC "TS3INIT1", packet id
 * 0x0065, client id 0, type 0x88 (Init1 + unencrypted flag; 0xa8 with the
 * new-protocol flag), then the step
 * body. Server packets omit the client id: "TS3INIT1", 0x0065, 0x88, step.
 * Client steps are 0, 2 and 4, server steps 1 and 3 (byte after the client
 * version for clients; first body byte for servers), and each step has a
 * known size (34, 32, 38, 244, >= 314 bytes). Later packets are encrypted and belong to the pinned
 * flow.
 */
#include "common.h"

#define FIRST(b) ((b) == 'T')

static int teamspeak_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len;

    (void)params;
    if (n < 12 || memcmp(p, "TS3INIT1\x00\x65", 10) != 0)
        return UMX_NOMATCH;
    if (n >= 18 && p[10] == 0 && p[11] == 0 && (p[12] & 0xdf) == 0x88) {
        /* Client: version(4) then step. */
        uint8_t step = p[17];
        if ((step == 0 && n == 34) || (step == 2 && n == 38) || (step == 4 && n >= 314))
            return UMX_MATCH;
    }
    if ((p[10] & 0xdf) == 0x88) {
        uint8_t step = p[11];
        if ((step == 1 && n == 32) || (step == 3 && n == 244) || (step == 127 && n <= 16))
            return UMX_MATCH;
    }
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_teamspeak = {
    .name = "teamspeak",
    .match = teamspeak_match,
    .first = UMX_FIRST_PRED(FIRST),
};
