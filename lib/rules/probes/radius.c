/*
 * radius.c - RADIUS (RFC 2865, 2866, 5176, 5997): code(1) identifier(1)
 * length(2) authenticator(16) attributes. The length field must equal the
 * datagram size (RFC 2865 allows trailing padding, but no implementation we
 * know of sends any, and equality is what makes this probe strong), lie in
 * 20..4096, and the attributes (type >= 1, length >= 2) must tile the rest.
 * Codes: 1-5, 11-13, 40-45.
 */
#include "common.h"

#define FIRST(c) (((c) >= 1 && (c) <= 5) || ((c) >= 11 && (c) <= 13) || ((c) >= 40 && (c) <= 45))

static int radius_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c;
    size_t len;

    (void)params;
    if (in->len < 20 || in->len > 4096 || !FIRST(in->data[0]))
        return UMX_NOMATCH;
    len = umx_be16(in->data + 2);
    if (len != in->len)
        return UMX_NOMATCH;
    c = umx_cur_make(in->data + 20, in->len - 20);
    /* Each attribute consumes at least 2 bytes. */
    while (umx_cur_left(&c)) {
        uint8_t t, l;
        if (umx_cur_u8(&c, &t) || umx_cur_u8(&c, &l) || t == 0 || l < 2 ||
            umx_cur_skip(&c, (size_t)l - 2))
            return UMX_NOMATCH;
    }
    return UMX_MATCH;
}

const struct umx_probe umx_probe_radius = {
    .name = "radius",
    .match = radius_match,
    .first = UMX_FIRST_PRED(FIRST),
};
