/* stun.c - built-in STUN binding responder. See stun.h.
 *
 * The response carries XOR-MAPPED-ADDRESS (RFC 8489) or MAPPED-ADDRESS for
 * RFC 3489 requests (no magic cookie), and FINGERPRINT when the request had
 * one and the result still fits: the reply never exceeds the request, so a
 * spoofed request cannot turn us into an amplifier. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <zlib.h>

#include "rules/cursor.h"
#include "stun.h"

#define MAGIC 0x2112A442u

/* FINGERPRINT: CRC-32 (zlib's) of the message before it, XOR 0x5354554e */
static uint32_t crc32_ieee(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32(0L, p, (uInt)n);
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int umxd_stun_respond(const uint8_t *req, size_t len, const struct sockaddr *peer, uint8_t *out,
                      size_t cap)
{
    struct umx_cur c = umx_cur_make(req, len);
    uint16_t type, mlen, port;
    uint32_t cookie;
    int rfc3489, had_fp = 0, v6;
    uint8_t addr[16];
    size_t alen, n;

    if (umx_cur_u16(&c, &type) < 0 || umx_cur_u16(&c, &mlen) < 0 || umx_cur_u32(&c, &cookie) < 0 ||
        umx_cur_skip(&c, 12) < 0)
        return 0;
    if (type != 0x0001 || (size_t)mlen + 20 != len || (mlen & 3))
        return 0;
    rfc3489 = cookie != MAGIC;
    /* walk the attributes: well-formed, and note FINGERPRINT */
    while (umx_cur_left(&c) > 0) {
        uint16_t at, al;
        if (umx_cur_u16(&c, &at) < 0 || umx_cur_u16(&c, &al) < 0 ||
            umx_cur_skip(&c, ((size_t)al + 3) & ~(size_t)3) < 0)
            return 0;
        if (at == 0x8028)
            had_fp = 1;
    }
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, peer, sizeof(s4));
        memcpy(addr, &s4.sin_addr, 4);
        port = ntohs(s4.sin_port);
        v6 = 0;
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, peer, sizeof(s6));
        port = ntohs(s6.sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            memcpy(addr, s6.sin6_addr.s6_addr + 12, 4);
            v6 = 0;
        } else {
            memcpy(addr, &s6.sin6_addr, 16);
            v6 = 1;
        }
    }
    if (rfc3489 && v6)
        return 0; /* RFC 3489 has no IPv6 MAPPED-ADDRESS */
    alen = v6 ? 16 : 4;
    n = 20 + 4 + 4 + alen;
    if (n > cap)
        return -EMSGSIZE;
    put16(out, 0x0101);
    memcpy(out + 4, req + 4, 16); /* cookie + transaction id */
    put16(out + 20, rfc3489 ? 0x0001 : 0x0020);
    put16(out + 22, (uint16_t)(4 + alen));
    out[24] = 0;
    out[25] = v6 ? 2 : 1;
    if (rfc3489) {
        put16(out + 26, port);
        memcpy(out + 28, addr, alen);
    } else {
        put16(out + 26, (uint16_t)(port ^ (MAGIC >> 16)));
        for (size_t i = 0; i < alen; i++)
            out[28 + i] = (uint8_t)(addr[i] ^ req[4 + i]); /* cookie, then transaction id */
    }
    if (had_fp && !rfc3489 && n + 8 <= cap) {
        put16(out + 2, (uint16_t)(n + 8 - 20));
        put16(out + n, 0x8028);
        put16(out + n + 2, 4);
        put32(out + n + 4, crc32_ieee(out, n) ^ 0x5354554eu);
        n += 8;
    } else {
        put16(out + 2, (uint16_t)(n - 20));
    }
    return (int)n;
}
