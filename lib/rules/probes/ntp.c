/*
 * ntp.c - NTP (RFC 5905, RFC 1305, RFC 8915 NTS) and the mode 6 control
 * protocol used by ntpq (RFC 9327).
 *
 * Modes 1-5: a 48-byte header, then either nothing, a MAC (key id 4 + MD5 16
 * or SHA-1 20 bytes), or extension fields (type 2, length 2, length a
 * multiple of 4 and at least 16) that tile the rest, optionally followed by
 * a MAC. Version 1-4, stratum 0-16, poll -7..17 (clients often send 0),
 * precision -32..0. First bytes of NTPv3/v4 clients (1b, 23) and servers
 * (1c, 24) lie in the DTLS range, which is why ntp precedes dtls in the
 * default order (DTLS 1.3 unified headers 24-27 would otherwise collide).
 *
 * Mode 6: 12-byte header, op code 1-31, count of data octets, data padded to
 * a multiple of 4, optional MAC. Mode 7 (ntpdc's private mode, the monlist
 * amplifier) is never matched; route it to nothing.
 */
#include "common.h"

/* Any LI, version 1..4, mode 1..6. */
#define VN(b) (((b) >> 3) & 7)
#define MODE(b) ((b)&7)
#define FIRST(b) (VN(b) >= 1 && VN(b) <= 4 && MODE(b) >= 1 && MODE(b) <= 6)

static int tail_ok(size_t rest, const uint8_t *p)
{
    /* Extension fields first (NTPv4 only), then an optional MAC. */
    size_t off = 0;
    for (int i = 0; i < 32 && rest - off >= 16 + 4; i++) {
        size_t el = umx_be16(p + off + 2);
        if (rest - off == 20 || rest - off == 24)
            break; /* exactly a MAC left */
        if (el < 16 || (el & 3) || el > rest - off)
            return 0;
        off += el;
    }
    rest -= off;
    return rest == 0 || rest == 20 || rest == 24;
}

static int ntp_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    int8_t poll, prec;

    (void)params;
    if (in->len < 12 || !FIRST(p[0]))
        return UMX_NOMATCH;
    if (MODE(p[0]) == 6) {
        /* R E M op | sequence | status | assoc id | offset | count */
        size_t count = umx_be16(p + 10), padded = (count + 3) & ~(size_t)3;
        unsigned op = p[1] & 0x1f;
        if (op == 0 || umx_be16(p + 8) > 468 || count > 468 || 12 + padded > in->len)
            return UMX_NOMATCH;
        {
            size_t rest = in->len - 12 - padded;
            return (rest == 0 || rest == 20 || rest == 24) ? UMX_MATCH : UMX_NOMATCH;
        }
    }
    if (in->len < 48 || (in->len & 3))
        return UMX_NOMATCH;
    poll = (int8_t)p[2];
    prec = (int8_t)p[3];
    /* Client requests that follow NTP data minimization (chrony 4) carry
     * precision 0x20 (+32) instead of a real value; accept it in mode 3. */
    if (p[1] > 16 || poll < -7 || poll > 17 || prec < -32 ||
        (prec > 0 && !(prec == 32 && MODE(p[0]) == 3)))
        return UMX_NOMATCH;
    if (in->len > 48 && !tail_ok(in->len - 48, p + 48))
        return UMX_NOMATCH;
    return UMX_MATCH;
}

const struct umx_probe umx_probe_ntp = {
    .name = "ntp",
    .match = ntp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
