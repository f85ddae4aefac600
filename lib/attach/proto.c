/* proto.c - encoding of the attach protocol's DATA messages (proto.h). */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>

#include "attach/proto.h"
#include "rules/cursor.h"

static void put_addr(uint8_t *hdr, const struct sockaddr *sa, size_t portoff, size_t addroff,
                     int *v6)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        memcpy(hdr + portoff, &s4.sin_port, 2);
        memcpy(hdr + addroff, &s4.sin_addr, 4);
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        memcpy(hdr + portoff, &s6.sin6_port, 2);
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            /* mapped IPv4 travels as IPv4: programs see plain addresses */
            memcpy(hdr + addroff, s6.sin6_addr.s6_addr + 12, 4);
        } else {
            memcpy(hdr + addroff, &s6.sin6_addr, 16);
            *v6 = 1;
        }
    }
}

void umx_att_encode_hdr(uint8_t hdr[UMX_ATT_DATA_HDR], const struct sockaddr *peer,
                        const struct sockaddr *local)
{
    int v6p = 0, v6l = 0;
    memset(hdr, 0, UMX_ATT_DATA_HDR);
    hdr[0] = UMX_ATT_DATA;
    put_addr(hdr, peer, 2, 8, &v6p);
    if (local)
        put_addr(hdr, local, 4, 24, &v6l);
    hdr[1] = (uint8_t)((v6p ? UMX_ATT_F_V6 : 0) | (local ? UMX_ATT_F_LOCAL : 0));
    if (local && v6l != v6p) {
        /* families must agree; drop the local address rather than lie */
        hdr[1] &= (uint8_t)~UMX_ATT_F_LOCAL;
        memset(hdr + 4, 0, 2);
        memset(hdr + 24, 0, 16);
    }
}

static void get_addr(const uint8_t *m, int v6, size_t portoff, size_t addroff,
                     struct sockaddr_storage *out)
{
    memset(out, 0, sizeof(*out));
    if (v6) {
        struct sockaddr_in6 s6;
        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        memcpy(&s6.sin6_port, m + portoff, 2);
        memcpy(&s6.sin6_addr, m + addroff, 16);
        memcpy(out, &s6, sizeof(s6));
    } else {
        struct sockaddr_in s4;
        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        memcpy(&s4.sin_port, m + portoff, 2);
        memcpy(&s4.sin_addr, m + addroff, 4);
        memcpy(out, &s4, sizeof(s4));
    }
}

int umx_att_decode_data(const uint8_t *m, size_t n, struct sockaddr_storage *peer,
                        struct sockaddr_storage *local, int *has_local, const uint8_t **payload,
                        size_t *len)
{
    int v6;
    if (n < UMX_ATT_DATA_HDR || m[0] != UMX_ATT_DATA || (m[1] & ~3u))
        return -EINVAL;
    v6 = m[1] & UMX_ATT_F_V6;
    get_addr(m, v6, 2, 8, peer);
    *has_local = (m[1] & UMX_ATT_F_LOCAL) != 0;
    if (*has_local)
        get_addr(m, v6, 4, 24, local);
    else
        memset(local, 0, sizeof(*local));
    *payload = m + UMX_ATT_DATA_HDR;
    *len = n - UMX_ATT_DATA_HDR;
    return 0;
}
