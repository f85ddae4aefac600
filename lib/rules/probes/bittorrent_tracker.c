/*
 * bittorrent_tracker.c - UDP tracker protocol (BEP 15, BEP 41).
 * Client to tracker:
 *   connect:  protocol id 0x41727101980 (8), action 0, transaction id = 16 B
 *   announce: connection id(8), action 1, transaction(4), info_hash(20),
 *             peer_id(20), downloaded/left/uploaded(24), event 0-3, ip(4),
 *             key(4), num_want(4), port(2) = 98 B (IPv6: 110), then BEP 41
 *             options (0 end, 1 nop, 2 URL data with a length byte)
 *   scrape:   connection id(8), action 2, transaction(4), 1..74 info
 *             hashes of 20 bytes
 * Tracker to client:
 *   connect:  action 0, transaction, connection id = 16 B
 *   announce: action 1, transaction, interval, leechers, seeders, then
 *             6-byte (IPv4) or 18-byte (IPv6) peers
 *   scrape:   action 2, transaction, 12 bytes per hash
 *   error:    action 3, transaction, printable message
 * Only the connect request has a strong anchor (the 64-bit magic); the rest
 * is length arithmetic, so this probe sits late in the default order.
 */
#include "common.h"

#define FIRST(b) 1

static int bep41_ok(const uint8_t *p, size_t n)
{
    size_t i = 0;
    /* Each option consumes at least one byte. */
    while (i < n) {
        uint8_t t = p[i++];
        if (t == 0)
            return 1; /* end of options; trailing bytes ignored */
        if (t == 1)
            continue;
        if (t != 2 || i >= n || p[i] > n - i - 1)
            return 0;
        i += 1 + (size_t)p[i];
    }
    return 1;
}

static int printable(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < 0x20 && p[i] != '\n' && !(p[i] == 0 && i + 1 == n))
            return 0;
    return 1;
}

static int tracker_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len;
    uint32_t a0, a8;

    (void)params;
    if (n < 8)
        return UMX_NOMATCH;
    a0 = umx_be32(p);
    /* Connect request: the magic. */
    if (n == 16 && a0 == 0x417 && umx_be32(p + 4) == 0x27101980 && umx_be32(p + 8) == 0)
        return UMX_MATCH;
    /* Responses: action in the first word. */
    switch (a0) {
    case 0:
        if (n == 16)
            return UMX_MATCH;
        break;
    case 1:
        if (n >= 20 && ((n - 20) % 6 == 0 || (n - 20) % 18 == 0) && umx_be32(p + 8) <= 86400 * 7)
            return UMX_MATCH;
        break;
    case 2:
        if (n >= 20 && (n - 8) % 12 == 0)
            return UMX_MATCH;
        break;
    case 3:
        if (n > 8 && printable(p + 8, n - 8))
            return UMX_MATCH;
        break;
    default:
        break;
    }
    /* Requests after connect: action in the third word. */
    if (n < 16)
        return UMX_NOMATCH;
    a8 = umx_be32(p + 8);
    if (a8 == 1 && (n == 98 || n == 110 || (n > 98 && bep41_ok(p + 98, n - 98))) &&
        umx_be32(p + 80) <= 3)
        return UMX_MATCH;
    if (a8 == 2 && n >= 36 && (n - 16) % 20 == 0 && (n - 16) / 20 <= 74)
        return UMX_MATCH;
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_bittorrent_tracker = {
    .name = "bittorrent-tracker",
    .match = tracker_match,
    .first = UMX_FIRST_PRED(FIRST),
};
