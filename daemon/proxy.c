/* proxy.c - PROXY protocol v2 encoder/decoder for UDP. See proxy.h. */
#include <netinet/in.h>
#include <string.h>

#include "proxy.h"
#include "rules/cursor.h"

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* Returns 4 or 16 and the address/port of sa in addr/port (mapped v4 as 4). */
static int split(const struct sockaddr *sa, uint8_t addr[16], uint8_t port[2])
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        memcpy(addr, &s4.sin_addr, 4);
        memcpy(port, &s4.sin_port, 2);
        return 4;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        memcpy(port, &s6.sin6_port, 2);
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            memcpy(addr, s6.sin6_addr.s6_addr + 12, 4);
            return 4;
        }
        memcpy(addr, &s6.sin6_addr, 16);
        return 16;
    }
    return 0;
}

size_t umx_proxy_v2_encode(uint8_t out[UMX_PROXY_V2_MAX], const struct sockaddr *src,
                           const struct sockaddr *dst)
{
    uint8_t sa[16] = {0}, da[16] = {0}, sp[2] = {0}, dp[2] = {0};
    int sl = split(src, sa, sp), dl = split(dst, da, dp);
    memcpy(out, sig, 12);
    if (sl == 0 || sl != dl) {
        out[12] = 0x20; /* LOCAL */
        out[13] = 0x00;
        out[14] = 0;
        out[15] = 0;
        return 16;
    }
    out[12] = 0x21; /* v2, PROXY */
    out[13] = sl == 4 ? 0x12 : 0x22;
    out[14] = 0;
    out[15] = (uint8_t)(sl == 4 ? 12 : 36);
    memcpy(out + 16, sa, (size_t)sl);
    memcpy(out + 16 + sl, da, (size_t)sl);
    memcpy(out + 16 + 2 * sl, sp, 2);
    memcpy(out + 18 + 2 * sl, dp, 2);
    return (size_t)(16 + 2 * sl + 4);
}

int umx_proxy_v2_decode(const uint8_t *p, size_t n, struct sockaddr_storage *src,
                        struct sockaddr_storage *dst)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t s[12], vc, fam;
    uint16_t len;
    if (umx_cur_bytes(&c, s, 12) < 0 || memcmp(s, sig, 12) != 0 || umx_cur_u8(&c, &vc) < 0 ||
        umx_cur_u8(&c, &fam) < 0 || umx_cur_u16(&c, &len) < 0 || umx_cur_left(&c) < len)
        return -1;
    if ((vc >> 4) != 2 || ((vc & 0xf) != 0 && (vc & 0xf) != 1))
        return -1;
    if ((vc & 0xf) == 1) {
        memset(src, 0, sizeof(*src));
        memset(dst, 0, sizeof(*dst));
        if (fam == 0x12 && len >= 12) {
            struct sockaddr_in a = {.sin_family = AF_INET}, b = {.sin_family = AF_INET};
            memcpy(&a.sin_addr, c.p, 4);
            memcpy(&b.sin_addr, c.p + 4, 4);
            memcpy(&a.sin_port, c.p + 8, 2);
            memcpy(&b.sin_port, c.p + 10, 2);
            memcpy(src, &a, sizeof(a));
            memcpy(dst, &b, sizeof(b));
        } else if (fam == 0x22 && len >= 36) {
            struct sockaddr_in6 a = {.sin6_family = AF_INET6}, b = {.sin6_family = AF_INET6};
            memcpy(&a.sin6_addr, c.p, 16);
            memcpy(&b.sin6_addr, c.p + 16, 16);
            memcpy(&a.sin6_port, c.p + 32, 2);
            memcpy(&b.sin6_port, c.p + 34, 2);
            memcpy(src, &a, sizeof(a));
            memcpy(dst, &b, sizeof(b));
        } else {
            return -1;
        }
    }
    return 16 + len;
}
