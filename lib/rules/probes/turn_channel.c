/*
 * turn_channel.c - TURN ChannelData (RFC 8656 section 12): channel number
 * 0x4000-0x4fff, 16-bit data length. Over UDP the datagram is exactly
 * 4 + length bytes, or that rounded up to a multiple of 4 (padding is
 * optional on UDP). The length check is what separates ChannelData from a
 * QUIC short header or CoAP in the same first-byte range 0x40-0x4f; the
 * registry puts this probe before coap for that reason.
 *
 * Channels 0x5000-0x7fff were valid in RFC 5766; RFC 8656 reserves them
 * for RFC 9443 demultiplexing (0x50-0x7f is QUIC there). coturn still
 * accepts them and its own client (turnutils_uclient) picks channels from
 * the whole old range, as our captures show, so they are matched by
 * default; the exact length check is what keeps a QUIC short header from
 * passing. Parameter rfc8656=yes restricts the probe to 0x4000-0x4fff.
 */
#include <stdlib.h>

#include "common.h"

#define FIRST(b) ((b) >= 0x40 && (b) <= 0x7f)

struct turn_params {
    int strict;
};

static int turn_channel_match(const void *params, const struct umx_probe_in *in)
{
    const struct turn_params *tp = params;
    size_t dlen, need;

    if (in->len < 4 || !FIRST(in->data[0]))
        return UMX_NOMATCH;
    if (tp && tp->strict && in->data[0] > 0x4f)
        return UMX_NOMATCH;
    dlen = umx_be16(in->data + 2);
    need = 4 + dlen;
    if (in->len != need && in->len != ((need + 3) & ~(size_t)3))
        return UMX_NOMATCH;
    return UMX_MATCH;
}

static void turn_params_free(void *params)
{
    free(params);
}

static int turn_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err,
                           size_t errlen)
{
    struct turn_params *tp = calloc(1, sizeof(*tp));

    if (!tp)
        return -ENOMEM;
    for (size_t i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, "rfc8656") == 0 &&
            (strcmp(kv[i].val, "yes") == 0 || strcmp(kv[i].val, "no") == 0)) {
            tp->strict = kv[i].val[0] == 'y';
        } else {
            umx_perr(err, errlen, "unknown parameter '%s' (rfc8656=yes|no)", kv[i].key);
            free(tp);
            return -EINVAL;
        }
    }
    *out = tp;
    return 0;
}

const struct umx_probe umx_probe_turn_channel = {
    .name = "turn-channel",
    .match = turn_channel_match,
    .params_new = turn_params_new,
    .params_free = turn_params_free,
    .first = UMX_FIRST_PRED(FIRST),
};
