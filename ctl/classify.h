/*
 * classify.h - `udpmuxctl classify [-c CONFIG] FILE.pcap`, and the frame
 * decoder it shares with tests/unit/test-crossmatch.c.
 *
 * ctl_classify_main() prints one line per UDP datagram, "FRAME<TAB>NAME",
 * where FRAME counts every frame of the capture from 1 (as Wireshark does)
 * and NAME is the first built-in probe that matches in the default order
 * (udpmux_probe_classify), or with -c the first route of a udpmuxd config
 * whose `match =` rule matches, or "-" when nothing does. Non-first IP
 * fragments and datagrams cut short by the capture's snap length print "-"
 * and are counted. A summary follows, one "# NAME COUNT" line per name in
 * probe (or route) order, then "# - N", "# fragments N", "# truncated N".
 *
 * Exit codes (sysexits.h): 0 ok, 64 usage (also a config that does not
 * load), 66 cannot open the capture or the config, 65 bad capture data
 * (not a capture, unsupported link type, or a read error mid-file).
 *
 * -c needs daemon/config.c (umxd_config_load) and inih linked into udpmuxctl.
 */
#ifndef UMX_CTL_CLASSIFY_H
#define UMX_CTL_CLASSIFY_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

int ctl_classify_main(int argc, char **argv);

/* ------------------------------------------------------------------------ */
/* Frame decoder (header-only so the unit test can use it without ctl/)      */
/* ------------------------------------------------------------------------ */

/* pcap link types handled (LINKTYPE_ values as stored in files; libpcap's
 * pcap_datalink() returns the DLT_ values, which are the same numbers for
 * these except LINKTYPE_RAW 101 = DLT_RAW 12 or 14 on some systems). */
enum {
    CTL_LT_NULL = 0,
    CTL_LT_EN10MB = 1,
    CTL_LT_RAW_DLT = 12,
    CTL_LT_RAW_DLT_BSD = 14,
    CTL_LT_RAW = 101,
    CTL_LT_LOOP = 108,
    CTL_LT_LINUX_SLL = 113,
    CTL_LT_IPV4 = 228,
    CTL_LT_IPV6 = 229,
    CTL_LT_LINUX_SLL2 = 276,
};

enum ctl_frame_kind {
    CTL_FRAME_OTHER = 0,     /* not IP/UDP: not a datagram, print nothing */
    CTL_FRAME_UDP = 1,       /* payload/len valid */
    CTL_FRAME_FRAGMENT = 2,  /* a non-first fragment of a UDP (or unknown) datagram */
    CTL_FRAME_TRUNCATED = 3, /* IP frame cut by the snap length before the payload ended */
};

struct ctl_frame {
    const uint8_t *payload;
    size_t len;
    int first_fragment;          /* 1 if this is the first of several fragments */
    struct sockaddr_storage src; /* source address and UDP port */
    socklen_t srclen;
    struct sockaddr_storage dst; /* destination address and UDP port */
};

static inline int ctl_link_supported(int linktype)
{
    switch (linktype) {
    case CTL_LT_NULL:
    case CTL_LT_EN10MB:
    case CTL_LT_RAW_DLT:
    case CTL_LT_RAW_DLT_BSD:
    case CTL_LT_RAW:
    case CTL_LT_LOOP:
    case CTL_LT_LINUX_SLL:
    case CTL_LT_IPV4:
    case CTL_LT_IPV6:
    case CTL_LT_LINUX_SLL2:
        return 1;
    default:
        return 0;
    }
}

static inline unsigned ctl_be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* UDP header at p (avail bytes of it in the capture, iplen bytes of IP
 * payload on the wire). */
static inline enum ctl_frame_kind ctl_udp(const uint8_t *p, size_t avail, size_t iplen,
                                          int more_fragments, struct ctl_frame *out)
{
    if (iplen < 8)
        return CTL_FRAME_OTHER; /* not a well-formed UDP datagram */
    if (avail < 8)
        return CTL_FRAME_TRUNCATED;
    size_t ulen = ctl_be16(p + 4);
    size_t plen;
    if (more_fragments) {
        /* first fragment: only what this fragment carries */
        plen = iplen - 8;
        out->first_fragment = 1;
    } else {
        if (ulen < 8 || ulen > iplen)
            ulen = iplen; /* bad or zero (jumbogram) UDP length: trust IP */
        plen = ulen - 8;
    }
    if (avail - 8 < plen)
        return CTL_FRAME_TRUNCATED;
    out->payload = p + 8;
    out->len = plen;
    unsigned sport = ctl_be16(p), dport = ctl_be16(p + 2);
    if (out->src.ss_family == AF_INET) {
        ((struct sockaddr_in *)&out->src)->sin_port = htons((uint16_t)sport);
        ((struct sockaddr_in *)&out->dst)->sin_port = htons((uint16_t)dport);
    } else {
        ((struct sockaddr_in6 *)&out->src)->sin6_port = htons((uint16_t)sport);
        ((struct sockaddr_in6 *)&out->dst)->sin6_port = htons((uint16_t)dport);
    }
    return CTL_FRAME_UDP;
}

static inline enum ctl_frame_kind ctl_ipv4(const uint8_t *p, size_t cap, struct ctl_frame *out)
{
    if (cap < 20)
        return CTL_FRAME_TRUNCATED;
    if ((p[0] >> 4) != 4)
        return CTL_FRAME_OTHER;
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    size_t total = ctl_be16(p + 2);
    if (ihl < 20 || total < ihl)
        return CTL_FRAME_OTHER;
    unsigned frag = ctl_be16(p + 6);
    unsigned offset = frag & 0x1fff;
    int mf = (frag & 0x2000) != 0;
    if (p[9] != IPPROTO_UDP)
        return CTL_FRAME_OTHER;
    if (offset != 0)
        return CTL_FRAME_FRAGMENT;
    if (cap < ihl)
        return CTL_FRAME_TRUNCATED;
    struct sockaddr_in *sin = (struct sockaddr_in *)&out->src;
    memset(&out->src, 0, sizeof(out->src));
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, p + 12, 4);
    out->srclen = sizeof(*sin);
    memset(&out->dst, 0, sizeof(out->dst));
    ((struct sockaddr_in *)&out->dst)->sin_family = AF_INET;
    memcpy(&((struct sockaddr_in *)&out->dst)->sin_addr, p + 16, 4);
    return ctl_udp(p + ihl, cap - ihl, total - ihl, mf, out);
}

static inline enum ctl_frame_kind ctl_ipv6(const uint8_t *p, size_t cap, struct ctl_frame *out)
{
    if (cap < 40)
        return CTL_FRAME_TRUNCATED;
    if ((p[0] >> 4) != 6)
        return CTL_FRAME_OTHER;
    size_t plen = ctl_be16(p + 4); /* 0: jumbogram, not supported */
    unsigned nh = p[6];
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->src;
    memset(&out->src, 0, sizeof(out->src));
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, p + 8, 16);
    out->srclen = sizeof(*sin6);
    memset(&out->dst, 0, sizeof(out->dst));
    ((struct sockaddr_in6 *)&out->dst)->sin6_family = AF_INET6;
    memcpy(&((struct sockaddr_in6 *)&out->dst)->sin6_addr, p + 24, 16);
    size_t off = 40, end = 40 + plen;
    int mf = 0;
    for (int hops = 0; hops < 16; hops++) {
        if (nh == IPPROTO_UDP)
            break;
        if (nh != 0 && nh != 43 && nh != 44 && nh != 51 && nh != 60)
            return CTL_FRAME_OTHER; /* another upper layer, ESP, or no next header */
        if (off + 8 > end)
            return CTL_FRAME_OTHER;
        if (off + 8 > cap)
            return CTL_FRAME_TRUNCATED;
        size_t hlen;
        if (nh == 44) { /* fragment header */
            unsigned fo = ctl_be16(p + off + 2);
            if ((fo & 0xfff8) != 0)
                return CTL_FRAME_FRAGMENT;
            mf = fo & 1;
            hlen = 8;
        } else if (nh == 51) {
            hlen = ((size_t)p[off + 1] + 2) * 4;
        } else {
            hlen = ((size_t)p[off + 1] + 1) * 8;
        }
        nh = p[off];
        off += hlen;
    }
    if (nh != IPPROTO_UDP || off > end)
        return CTL_FRAME_OTHER;
    if (off > cap)
        return CTL_FRAME_TRUNCATED;
    return ctl_udp(p + off, cap - off, end - off, mf, out);
}

static inline enum ctl_frame_kind ctl_ip_by_version(const uint8_t *p, size_t cap,
                                                    struct ctl_frame *out)
{
    if (cap < 1)
        return CTL_FRAME_TRUNCATED;
    if ((p[0] >> 4) == 4)
        return ctl_ipv4(p, cap, out);
    if ((p[0] >> 4) == 6)
        return ctl_ipv6(p, cap, out);
    return CTL_FRAME_OTHER;
}

static inline enum ctl_frame_kind ctl_ip_by_ethertype(unsigned et, const uint8_t *p, size_t cap,
                                                      struct ctl_frame *out)
{
    if (et == 0x0800)
        return ctl_ipv4(p, cap, out);
    if (et == 0x86dd)
        return ctl_ipv6(p, cap, out);
    return CTL_FRAME_OTHER;
}

/* Decodes one captured frame (caplen bytes at pkt) of the given link type. */
static inline enum ctl_frame_kind ctl_decode_frame(int linktype, const uint8_t *pkt, size_t caplen,
                                                   struct ctl_frame *out)
{
    memset(out, 0, sizeof(*out));
    switch (linktype) {
    case CTL_LT_EN10MB: {
        if (caplen < 14)
            return CTL_FRAME_OTHER;
        size_t off = 12;
        unsigned et = ctl_be16(pkt + off);
        for (int tags = 0; tags < 2 && (et == 0x8100 || et == 0x88a8 || et == 0x9100); tags++) {
            off += 4;
            if (off + 2 > caplen)
                return CTL_FRAME_OTHER;
            et = ctl_be16(pkt + off);
        }
        off += 2;
        return ctl_ip_by_ethertype(et, pkt + off, caplen - off, out);
    }
    case CTL_LT_LINUX_SLL:
        if (caplen < 16)
            return CTL_FRAME_OTHER;
        return ctl_ip_by_ethertype(ctl_be16(pkt + 14), pkt + 16, caplen - 16, out);
    case CTL_LT_LINUX_SLL2:
        if (caplen < 20)
            return CTL_FRAME_OTHER;
        return ctl_ip_by_ethertype(ctl_be16(pkt), pkt + 20, caplen - 20, out);
    case CTL_LT_RAW:
    case CTL_LT_RAW_DLT:
    case CTL_LT_RAW_DLT_BSD:
        return ctl_ip_by_version(pkt, caplen, out);
    case CTL_LT_IPV4:
        return ctl_ipv4(pkt, caplen, out);
    case CTL_LT_IPV6:
        return ctl_ipv6(pkt, caplen, out);
    case CTL_LT_NULL:
    case CTL_LT_LOOP: {
        /* 4-byte address family: host order of the writer for NULL, network
         * order for LOOP; 2 = AF_INET everywhere, IPv6 is 10 (Linux), 24
         * (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS). Accept both orders. */
        if (caplen < 4)
            return CTL_FRAME_OTHER;
        uint32_t be =
            (uint32_t)pkt[0] << 24 | (uint32_t)pkt[1] << 16 | (uint32_t)pkt[2] << 8 | pkt[3];
        uint32_t le =
            (uint32_t)pkt[3] << 24 | (uint32_t)pkt[2] << 16 | (uint32_t)pkt[1] << 8 | pkt[0];
        uint32_t af = be < 256 ? be : le;
        if (af == 2)
            return ctl_ipv4(pkt + 4, caplen - 4, out);
        if (af == 10 || af == 24 || af == 28 || af == 30)
            return ctl_ipv6(pkt + 4, caplen - 4, out);
        return CTL_FRAME_OTHER;
    }
    default:
        return CTL_FRAME_OTHER;
    }
}

#endif
