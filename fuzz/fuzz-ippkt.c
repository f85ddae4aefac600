/*
 * fuzz-ippkt.c - the kernel datapath's IP/UDP reader (daemon/kdp/ippkt.c),
 * which reads every datagram the queue hands over in place.
 *
 * The input is [family byte][packet...]; the packet is copied into a buffer
 * of exactly its size, so ASan catches any read past it. Checked: an
 * accepted packet's payload lies inside the buffer, its length matches the
 * UDP length field minus 8, and the addresses have the family asked for.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "kdp/ippkt.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-ippkt: invariant failed at line %d: %s\n", __LINE__, #c);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kdp_ip_udp o;
    uint8_t *pkt;
    int family;
    if (size < 1)
        return 0;
    family = data[0] & 1 ? AF_INET6 : AF_INET;
    pkt = malloc(size - 1 ? size - 1 : 1);
    if (!pkt)
        return 0;
    memcpy(pkt, data + 1, size - 1);
    if (kdp_ip_udp_parse(family, pkt, size - 1, &o) == 0) {
        CHECK(o.off >= 8 && o.off <= size - 1);
        CHECK(o.len <= size - 1 - o.off);
        CHECK(((pkt[o.off - 4] << 8) | pkt[o.off - 3]) == (int)o.len + 8);
        CHECK(o.src.ss_family == family && o.dst.ss_family == family);
    }
    free(pkt);
    return 0;
}
