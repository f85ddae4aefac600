/*
 * coap.c - CoAP over UDP (RFC 7252, 7959, 8132).
 *   byte 0: version 1 | type (CON/NON/ACK/RST) | token length 0..8
 *   byte 1: code class.detail: 0.00 Empty, requests 0.01-0.07, responses
 *           2.01-2.05, 2.31, 4.00-4.06, 4.08, 4.09, 4.12, 4.13, 4.15, 4.22,
 *           4.29, 5.00-5.05
 *   message id (2), token, options (delta:4 | length:4 with the 13/14
 *   extensions; nibble 15 is only legal as the payload marker 0xff), then
 *   optionally 0xff and a non-empty payload.
 * An Empty message is exactly 4 bytes with no token. Requests are CON/NON;
 * ACK and RST never carry a request code. Option numbers stay <= 65535.
 */
#include "common.h"

#define FIRST(b) (((b) >> 6) == 1 && ((b)&0x0f) <= 8)

static int code_ok(uint8_t code)
{
    unsigned cls = code >> 5, d = code & 31;
    switch (cls) {
    case 0:
        return d <= 7;
    case 2:
        return (d >= 1 && d <= 5) || d == 31;
    case 4:
        return d <= 6 || d == 8 || d == 9 || d == 12 || d == 13 || d == 15 || d == 22 || d == 29;
    case 5:
        return d <= 5;
    default:
        return 0;
    }
}

/* Reads an extended option nibble value. */
static int ext(struct umx_cur *c, unsigned nib, unsigned *out)
{
    uint8_t b;
    uint16_t w;
    if (nib < 13) {
        *out = nib;
    } else if (nib == 13) {
        if (umx_cur_u8(c, &b))
            return -1;
        *out = 13u + b;
    } else if (nib == 14) {
        if (umx_cur_u16(c, &w))
            return -1;
        *out = 269u + w;
    } else {
        return -1;
    }
    return 0;
}

static int coap_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    uint8_t b0, code, type, tkl;
    unsigned optnum = 0;

    (void)params;
    if (in->len < 4)
        return UMX_NOMATCH;
    b0 = in->data[0];
    code = in->data[1];
    type = (b0 >> 4) & 3;
    tkl = b0 & 0x0f;
    if (!FIRST(b0) || !code_ok(code))
        return UMX_NOMATCH;
    if (code == 0)
        return (in->len == 4 && tkl == 0) ? UMX_MATCH : UMX_NOMATCH;
    if (type == 3 || (type == 2 && code < 0x20))
        return UMX_NOMATCH; /* RST carries nothing; ACK carries no request */
    umx_cur_skip(&c, 4);
    if (umx_cur_skip(&c, tkl))
        return UMX_NOMATCH;
    /* Each option consumes at least one byte. */
    while (umx_cur_left(&c)) {
        uint8_t h;
        unsigned delta, len;
        umx_cur_u8(&c, &h);
        if (h == 0xff)
            return umx_cur_left(&c) ? UMX_MATCH : UMX_NOMATCH;
        if (ext(&c, h >> 4, &delta) || ext(&c, h & 0x0f, &len))
            return UMX_NOMATCH;
        optnum += delta;
        if (optnum > 65535 || umx_cur_skip(&c, len))
            return UMX_NOMATCH;
    }
    return UMX_MATCH;
}

const struct umx_probe umx_probe_coap = {
    .name = "coap",
    .match = coap_match,
    .first = UMX_FIRST_PRED(FIRST),
};
