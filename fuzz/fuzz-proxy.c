/*
 * fuzz-proxy.c - PROXY protocol v2 (daemon/proxy.h).
 *
 * Two halves per input:
 *  1. decode the raw bytes: never reads past n, and a header it accepts
 *     has the v2 signature, a version/command it knows and a length that
 *     fits in n;
 *  2. build a source/destination pair from the bytes (IPv4, IPv6,
 *     v4-mapped, unknown family, mixed families), encode it, and decode
 *     it again: the round trip must give back the same addresses and ports
 *     (v4-mapped ones as IPv4), and a pair that cannot be expressed must
 *     become a 16-byte LOCAL header. The encoded length never exceeds
 *     UMX_PROXY_V2_MAX (the worker's per-datagram header slot).
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-proxy: invariant failed at line %d: %s\n", __LINE__, #c);        \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const uint8_t sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

struct in {
    const uint8_t *p;
    size_t n;
};

static void take(struct in *in, void *out, size_t n)
{
    size_t k = n < in->n ? n : in->n;
    memset(out, 0, n);
    memcpy(out, in->p, k);
    in->p += k;
    in->n -= k;
}

/* kind 0: IPv4, 1: IPv6, 2: v4-mapped IPv6, 3: AF_UNIX (unknown).
 * Returns the address length on the wire (4, 16, or 0 for none) and puts
 * the wire bytes at the start of a. */
static int make_addr(struct in *in, struct sockaddr_storage *ss, uint8_t a[16], uint16_t *port)
{
    uint8_t kind;
    take(in, &kind, 1);
    take(in, a, 16);
    take(in, port, 2);
    memset(ss, 0, sizeof(*ss));
    switch (kind % 4) {
    case 0: {
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        memcpy(&s4.sin_addr, a, 4);
        s4.sin_port = *port;
        memcpy(ss, &s4, sizeof(s4));
        return 4;
    }
    case 1: {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        /* a fuzzed IPv6 address might be v4-mapped by chance: then it is
         * encoded as IPv4, which is what we expect below */
        memcpy(&s6.sin6_addr, a, 16);
        s6.sin6_port = *port;
        memcpy(ss, &s6, sizeof(s6));
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            memmove(a, a + 12, 4);
            return 4;
        }
        return 16;
    }
    case 2: {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        s6.sin6_addr.s6_addr[10] = 0xff;
        s6.sin6_addr.s6_addr[11] = 0xff;
        memcpy(s6.sin6_addr.s6_addr + 12, a, 4);
        s6.sin6_port = *port;
        memcpy(ss, &s6, sizeof(s6));
        return 4; /* IPv4 once encoded */
    }
    default:
        ss->ss_family = AF_UNIX;
        return 0;
    }
}

static void expect_v4(const struct sockaddr_storage *got, const uint8_t a[4], uint16_t port)
{
    struct sockaddr_in s4;
    CHECK(got->ss_family == AF_INET);
    memcpy(&s4, got, sizeof(s4));
    CHECK(memcmp(&s4.sin_addr, a, 4) == 0);
    CHECK(s4.sin_port == port);
}

static void expect_v6(const struct sockaddr_storage *got, const uint8_t a[16], uint16_t port)
{
    struct sockaddr_in6 s6;
    CHECK(got->ss_family == AF_INET6);
    memcpy(&s6, got, sizeof(s6));
    CHECK(memcmp(&s6.sin6_addr, a, 16) == 0);
    CHECK(s6.sin6_port == port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage src, dst, gsrc, gdst;
    uint8_t sa[16], da[16], hdr[UMX_PROXY_V2_MAX];
    uint16_t sp, dp;
    struct in in = {data, size};
    int sk, dk, r;
    size_t n;

    /* 1. arbitrary bytes */
    r = umx_proxy_v2_decode(data, size, &gsrc, &gdst);
    if (r >= 0) {
        CHECK((size_t)r <= size);
        CHECK(r >= 16);
        CHECK(memcmp(data, sig, 12) == 0);
        CHECK((data[12] >> 4) == 2);
        CHECK((size_t)r == 16u + ((size_t)data[14] << 8 | data[15]));
        if ((data[12] & 0xf) == 1)
            CHECK(gsrc.ss_family == AF_INET || gsrc.ss_family == AF_INET6);
    }

    /* 2. round trip */
    sk = make_addr(&in, &src, sa, &sp);
    dk = make_addr(&in, &dst, da, &dp);
    n = umx_proxy_v2_encode(hdr, (const struct sockaddr *)&src, (const struct sockaddr *)&dst);
    CHECK(n <= UMX_PROXY_V2_MAX);
    CHECK(memcmp(hdr, sig, 12) == 0);
    r = umx_proxy_v2_decode(hdr, n, &gsrc, &gdst);
    CHECK(r == (int)n);
    if (sk == 0 || sk != dk) {
        CHECK(n == 16);
        CHECK(hdr[12] == 0x20); /* LOCAL */
    } else if (sk == 4) {
        CHECK(n == 28);
        expect_v4(&gsrc, sa, sp);
        expect_v4(&gdst, da, dp);
    } else {
        CHECK(n == 52);
        expect_v6(&gsrc, sa, sp);
        expect_v6(&gdst, da, dp);
    }
    /* a header cut anywhere is refused, never over-read */
    for (size_t cut = 0; cut < n; cut++)
        CHECK(umx_proxy_v2_decode(hdr, cut, &gsrc, &gdst) == -1);
    return 0;
}
