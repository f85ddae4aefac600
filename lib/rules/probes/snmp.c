/*
 * snmp.c - SNMP v1/v2c (RFC 1157, RFC 3416) and v3 (RFC 3412) messages.
 *
 * BER all the way down, every length checked against what encloses it:
 *   SEQUENCE { INTEGER version(0,1,3), ... } filling the datagram exactly;
 *   v1/v2c: OCTET STRING community, then a PDU (context tags a0-a8) that
 *     fills the rest; for all PDUs but the v1 Trap, three INTEGERs
 *     (request-id, error-status/non-repeaters, error-index/max-repetitions)
 *     and a SEQUENCE of varbinds filling the PDU;
 *   v3: SEQUENCE msgGlobalData { INTEGER msgID, INTEGER maxSize,
 *     OCTET STRING flags (1 byte), INTEGER securityModel }, OCTET STRING
 *     securityParameters, then a ScopedPDU SEQUENCE or an encrypted OCTET
 *     STRING filling the rest.
 * Only definite lengths (short form, 81 xx, 82 xx xx) are legal in SNMP.
 */
#include "common.h"

#define FIRST(b) ((b) == 0x30)

/* Reads tag + definite length and splits off the value. */
static int ber(struct umx_cur *c, uint8_t want_tag, struct umx_cur *val)
{
    uint8_t tag, l0, b;
    size_t len = 0;

    if (umx_cur_u8(c, &tag) || tag != want_tag || umx_cur_u8(c, &l0))
        return -1;
    if (l0 < 0x80) {
        len = l0;
    } else if (l0 == 0x81 || l0 == 0x82) {
        for (int i = 0; i < (l0 & 0x7f); i++) {
            if (umx_cur_u8(c, &b))
                return -1;
            len = len << 8 | b;
        }
    } else {
        return -1;
    }
    return umx_cur_sub(c, len, val);
}

static int ber_int(struct umx_cur *c, long *v)
{
    struct umx_cur val;
    long x = 0;

    if (ber(c, 0x02, &val) || umx_cur_left(&val) < 1 || umx_cur_left(&val) > 5)
        return -1;
    for (size_t i = 0; i < umx_cur_left(&val); i++)
        x = (x << 8) | val.p[i];
    *v = x;
    return 0;
}

static int pdu_ok(struct umx_cur c)
{
    uint8_t tag;
    struct umx_cur pdu, vbl;
    long v;

    if (umx_cur_left(&c) < 2)
        return 0;
    tag = c.p[0];
    if (tag < 0xa0 || tag > 0xa8 || ber(&c, tag, &pdu) || umx_cur_left(&c))
        return 0;
    if (tag == 0xa4)
        return 1; /* v1 Trap: enterprise OID, address, ... - length checked */
    if (ber_int(&pdu, &v) || ber_int(&pdu, &v) || ber_int(&pdu, &v))
        return 0;
    if (ber(&pdu, 0x30, &vbl) || umx_cur_left(&pdu))
        return 0;
    return 1;
}

static int snmp_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len), msg, comm, gd, sp;
    long ver, v;

    (void)params;
    if (in->len < 16 || ber(&c, 0x30, &msg) || umx_cur_left(&c))
        return UMX_NOMATCH;
    if (ber_int(&msg, &ver))
        return UMX_NOMATCH;
    if (ver == 0 || ver == 1) {
        if (ber(&msg, 0x04, &comm))
            return UMX_NOMATCH;
        return pdu_ok(msg) ? UMX_MATCH : UMX_NOMATCH;
    }
    if (ver != 3)
        return UMX_NOMATCH;
    {
        struct umx_cur flags;
        if (ber(&msg, 0x30, &gd) || ber_int(&gd, &v) || ber_int(&gd, &v) ||
            ber(&gd, 0x04, &flags) || umx_cur_left(&flags) != 1 || ber_int(&gd, &v) ||
            umx_cur_left(&gd))
            return UMX_NOMATCH;
    }
    if (ber(&msg, 0x04, &sp) || umx_cur_left(&msg) < 2)
        return UMX_NOMATCH;
    if (msg.p[0] == 0x04) {
        struct umx_cur enc;
        return (!ber(&msg, 0x04, &enc) && !umx_cur_left(&msg)) ? UMX_MATCH : UMX_NOMATCH;
    }
    {
        struct umx_cur scoped, ctx;
        if (ber(&msg, 0x30, &scoped) || umx_cur_left(&msg) || ber(&scoped, 0x04, &ctx) ||
            ber(&scoped, 0x04, &ctx))
            return UMX_NOMATCH;
        return pdu_ok(scoped) ? UMX_MATCH : UMX_NOMATCH;
    }
}

const struct umx_probe umx_probe_snmp = {
    .name = "snmp",
    .match = snmp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
