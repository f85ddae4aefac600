/*
 * ike.c - IKEv2 (RFC 7296) and IKEv1/ISAKMP (RFC 2408), on port 500 or, with
 * the four-byte non-ESP marker, on 4500 (RFC 3948).
 *
 * Header (28 bytes): initiator SPI(8, never zero), responder SPI(8), next
 * payload(1), version(1: 0x20 IKEv2, 0x10 IKEv1), exchange type(1),
 * flags(1), message id(4), length(4). The length must equal the datagram
 * size (minus the marker) and the generic payload headers (next(1),
 * flags(1), length(2) >= 4) must chain to the end exactly with a final next
 * payload of 0. For IKEv2 the encrypted payload (SK, 46) or encrypted
 * fragment (SKF, 53) is the last one by construction. IKEv1 payloads after
 * the header may be encrypted (flag 0x01), then only the length is checked.
 * NAT keepalives (a single 0xff byte) are matched as well: they only ever
 * go to an IKE port.
 */
#include "common.h"

#define FIRST(b) 1

static int v2_exchange_ok(uint8_t x)
{
    return (x >= 34 && x <= 38) || x == 43 || x == 44;
}

static int v1_exchange_ok(uint8_t x)
{
    return (x >= 1 && x <= 5) || x == 32 || x == 33;
}

static int v2_payload_ok(uint8_t np)
{
    return np == 0 || (np >= 33 && np <= 48) || np == 53 || np == 54;
}

static int v1_payload_ok(uint8_t np)
{
    return np <= 20 || np == 130 || np == 131 || (np >= 128 && np <= 132);
}

static int ike_parse(const uint8_t *p, size_t n)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t np = 0, ver = 0, xchg = 0, flags = 0;
    uint32_t len = 0;
    int v2;

    if (n < 28 || (umx_be32(p) == 0 && umx_be32(p + 4) == 0))
        return 0;
    umx_cur_skip(&c, 16);
    umx_cur_u8(&c, &np);
    umx_cur_u8(&c, &ver);
    umx_cur_u8(&c, &xchg);
    umx_cur_u8(&c, &flags);
    umx_cur_skip(&c, 4);
    umx_cur_u32(&c, &len);
    if (len != n)
        return 0;
    if (ver == 0x20) {
        v2 = 1;
        /* Only I (08), V (10) and R (20) are defined. */
        if (!v2_exchange_ok(xchg) || (flags & ~0x38) || !v2_payload_ok(np))
            return 0;
        /* The initiator SPI is never zero; in IKE_SA_INIT requests the
         * responder SPI must be zero. */
        if (xchg == 34 && !(flags & 0x20) && (umx_be32(p + 8) || umx_be32(p + 12)))
            return 0;
    } else if (ver == 0x10) {
        v2 = 0;
        if (!v1_exchange_ok(xchg) || (flags & ~0x07) || !v1_payload_ok(np))
            return 0;
        if (flags & 0x01)
            return np != 0; /* encrypted: only the length is visible */
    } else {
        return 0;
    }
    /* Payload chain; each payload consumes at least 4 bytes. */
    while (np) {
        uint8_t next, pf;
        uint16_t pl;
        if (umx_cur_u8(&c, &next) || umx_cur_u8(&c, &pf) || umx_cur_u16(&c, &pl) || pl < 4 ||
            umx_cur_skip(&c, (size_t)pl - 4))
            return 0;
        if (v2 && (np == 46 || np == 53)) {
            /* SK/SKF: the chain continues inside the ciphertext. */
            return umx_cur_left(&c) == 0 && v2_payload_ok(next);
        }
        if (v2 ? !v2_payload_ok(next) : !v1_payload_ok(next))
            return 0;
        np = next;
    }
    return umx_cur_left(&c) == 0;
}

static int ike_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len;

    (void)params;
    /* ike is tried on every first byte, so the cheapest decisive test comes
     * first: the 32-bit length field at offset 24 must equal the size. */
    if (n >= 28 && umx_be32(p + 24) == n)
        return ike_parse(p, n) ? UMX_MATCH : UMX_NOMATCH;
    if (n >= 32 && umx_be32(p) == 0 && umx_be32(p + 28) == n - 4)
        return ike_parse(p + 4, n - 4) ? UMX_MATCH : UMX_NOMATCH; /* non-ESP marker */
    if (n == 1 && p[0] == 0xff)
        return UMX_MATCH; /* NAT-T keepalive */
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_ike = {
    .name = "ike",
    .match = ike_match,
    .first = UMX_FIRST_PRED(FIRST),
};
