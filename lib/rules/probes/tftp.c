/*
 * tftp.c - TFTP (RFC 1350) with options (RFC 2347-2349, 7440).
 *   RRQ/WRQ (1/2): filename NUL mode NUL [option NUL value NUL]..., filename
 *     non-empty printable, mode netascii/octet/mail (any case), option
 *     names printable, values non-empty, ending exactly at the datagram end;
 *   DATA (3): block(2) + 0..65464 bytes (the largest blksize);
 *   ACK (4): block(2), exactly 4 bytes;
 *   ERROR (5): code 0..8, message NUL, ending exactly at the end;
 *   OACK (6): option/value pairs as in a request, at least one.
 * DATA is the weak one (two fixed bytes); it sits late in the default order
 * and in practice follows a request on a pinned flow.
 */
#include "common.h"

#define FIRST(b) ((b) == 0)

/* Reads a NUL-terminated printable string of 1..255 bytes. */
static int cstr(struct umx_cur *c, const uint8_t **s, size_t *n)
{
    size_t i, lim = umx_cur_left(c);
    for (i = 0; i < lim && i < 256; i++) {
        if (c->p[i] == 0)
            break;
        if (c->p[i] < 0x20 || c->p[i] > 0x7e)
            return -1;
    }
    if (i == 0 || i >= lim || c->p[i] != 0)
        return -1;
    *s = c->p;
    *n = i;
    c->p += i + 1;
    return 0;
}

static int options(struct umx_cur *c, int need_one)
{
    int k = 0;
    /* Each pair consumes at least 4 bytes. */
    while (umx_cur_left(c)) {
        const uint8_t *s;
        size_t n;
        if (cstr(c, &s, &n) || cstr(c, &s, &n))
            return -1;
        k++;
    }
    return (need_one && k == 0) ? -1 : 0;
}

static int tftp_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    uint16_t op, v;
    const uint8_t *s;
    size_t n;

    (void)params;
    if (in->len < 4 || umx_cur_u16(&c, &op))
        return UMX_NOMATCH;
    switch (op) {
    case 1:
    case 2:
        if (cstr(&c, &s, &n) || cstr(&c, &s, &n))
            return UMX_NOMATCH;
        if (!((n == 8 && umx_memeq_nocase(s, (const uint8_t *)"netascii", 8)) ||
              (n == 5 && umx_memeq_nocase(s, (const uint8_t *)"octet", 5)) ||
              (n == 4 && umx_memeq_nocase(s, (const uint8_t *)"mail", 4))))
            return UMX_NOMATCH;
        return options(&c, 0) ? UMX_NOMATCH : UMX_MATCH;
    case 3:
        return in->len <= 4 + 65464 ? UMX_MATCH : UMX_NOMATCH;
    case 4:
        return in->len == 4 ? UMX_MATCH : UMX_NOMATCH;
    case 5:
        umx_cur_u16(&c, &v);
        if (v > 8)
            return UMX_NOMATCH;
        /* The message may be empty: just the NUL. */
        if (umx_cur_left(&c) == 1 && c.p[0] == 0)
            return UMX_MATCH;
        return (!cstr(&c, &s, &n) && umx_cur_left(&c) == 0) ? UMX_MATCH : UMX_NOMATCH;
    case 6:
        return options(&c, 1) ? UMX_NOMATCH : UMX_MATCH;
    default:
        return UMX_NOMATCH;
    }
}

const struct umx_probe umx_probe_tftp = {
    .name = "tftp",
    .match = tftp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
