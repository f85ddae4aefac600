/*
 * utp.c - uTP, the Micro Transport Protocol (BEP 29), version 1.
 * Header (20 bytes): type:4 | version:4 (=1), first extension type,
 * connection id(2), timestamp us(4), timestamp difference us(4), window
 * size(4), seq_nr(2), ack_nr(2), then a chain of extensions
 * (next type(1), length(1), data) ending with type 0, then payload.
 * Types: 0 DATA, 1 FIN, 2 STATE, 3 RESET, 4 SYN; extension types 0-3 are
 * known (2 is the legacy "extension bits", 3 libtorrent's close reason).
 * DATA must carry payload; STATE, RESET and SYN carry none; a SYN has a zero
 * timestamp difference (nothing was received yet) and a non-zero
 * timestamp. The selective-ack extension's length is a non-zero multiple
 * of 4.
 */
#include "common.h"

#define FIRST(b) (((b)&0x0f) == 1 && ((b) >> 4) <= 4)

static int utp_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    uint8_t b0, ext;
    unsigned type, nexts = 0;

    (void)params;
    if (in->len < 20)
        return UMX_NOMATCH;
    b0 = in->data[0];
    ext = in->data[1];
    if (!FIRST(b0) || ext > 3)
        return UMX_NOMATCH;
    type = b0 >> 4;
    if (type == 4 && (umx_be32(in->data + 8) != 0 || umx_be32(in->data + 4) == 0))
        return UMX_NOMATCH;
    umx_cur_skip(&c, 20);
    /* Each extension consumes at least 2 bytes; at most 4 are allowed. */
    while (ext) {
        uint8_t next, len;
        if (++nexts > 4 || umx_cur_u8(&c, &next) || umx_cur_u8(&c, &len) || next > 3)
            return UMX_NOMATCH;
        if (ext == 1 && (len == 0 || (len & 3)))
            return UMX_NOMATCH;
        if (umx_cur_skip(&c, len))
            return UMX_NOMATCH;
        ext = next;
    }
    switch (type) {
    case 0:
        return umx_cur_left(&c) ? UMX_MATCH : UMX_NOMATCH;
    case 1:
        return UMX_MATCH;
    default:
        return umx_cur_left(&c) == 0 ? UMX_MATCH : UMX_NOMATCH;
    }
}

const struct umx_probe umx_probe_utp = {
    .name = "utp",
    .match = utp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
