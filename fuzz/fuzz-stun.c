/*
 * fuzz-stun.c - the built-in STUN binding responder (daemon/stun.h).
 *
 * The input is [peer kind][16 address bytes][2 port bytes][request...].
 * The responder is called the way the worker calls it (cap = request
 * length) and once with a roomy buffer. Checked:
 *  - no amplification: with cap = request length the reply is never longer
 *    than the request, and nothing is written past cap (the output buffer
 *    is exactly cap bytes, so ASan catches a write past it);
 *  - only a well-formed Binding request (type 0x0001, length field equal to
 *    the datagram, 4-byte aligned) gets an answer;
 *  - the answer is a Binding success response with the request's cookie and
 *    transaction id, a consistent length field, and a (XOR-)MAPPED-ADDRESS
 *    that decodes back to the peer's address and port.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stun.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-stun: invariant failed at line %d: %s\n", __LINE__, #c);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MAGIC 0x2112A442u

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Checks a response against its request and the peer's wire address. */
static void check_reply(const uint8_t *req, size_t len, const uint8_t *out, int n,
                        const uint8_t *addr, size_t alen, uint16_t port)
{
    int rfc3489;
    const uint8_t *a;
    CHECK(n >= 20 + 8);
    CHECK((n & 3) == 0);
    CHECK(get16(out) == 0x0101);
    CHECK(get16(out + 2) == (uint16_t)(n - 20));
    CHECK(memcmp(out + 4, req + 4, 16) == 0);
    CHECK(len >= 20 && get16(req) == 0x0001 && get16(req + 2) + 20u == len);
    rfc3489 = get32(req + 4) != MAGIC;
    a = out + 20;
    CHECK(get16(a) == (rfc3489 ? 0x0001 : 0x0020));
    CHECK(get16(a + 2) == 4 + alen);
    CHECK(a[5] == (alen == 4 ? 1 : 2));
    if (rfc3489) {
        CHECK(get16(a + 6) == port);
        CHECK(memcmp(a + 8, addr, alen) == 0);
    } else {
        CHECK((uint16_t)(get16(a + 6) ^ (MAGIC >> 16)) == port);
        for (size_t i = 0; i < alen; i++)
            CHECK((uint8_t)(a[8 + i] ^ req[4 + i]) == addr[i]);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sockaddr_storage peer;
    uint8_t kind, a[16], wire[16];
    uint16_t port;
    size_t alen, len;
    const uint8_t *req;
    uint8_t *out, big[1024];
    int n, nb;

    if (size < 19)
        return 0;
    kind = data[0];
    memcpy(a, data + 1, 16);
    port = get16(data + 17);
    req = data + 19;
    len = size - 19;
    memset(&peer, 0, sizeof(peer));
    if (kind & 1) {
        struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
        if (kind & 2) { /* v4-mapped: answered as IPv4 */
            memset(a, 0, 10);
            a[10] = a[11] = 0xff;
        }
        memcpy(&s6.sin6_addr, a, 16);
        s6.sin6_port = htons(port);
        memcpy(&peer, &s6, sizeof(s6));
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            memcpy(wire, a + 12, 4);
            alen = 4;
        } else {
            memcpy(wire, a, 16);
            alen = 16;
        }
    } else {
        struct sockaddr_in s4 = {.sin_family = AF_INET};
        memcpy(&s4.sin_addr, a, 4);
        s4.sin_port = htons(port);
        memcpy(&peer, &s4, sizeof(s4));
        memcpy(wire, a, 4);
        alen = 4;
    }

    /* the worker's call: the reply may use at most the request's bytes */
    out = malloc(len ? len : 1);
    if (!out)
        return 0;
    n = umxd_stun_respond(req, len, (const struct sockaddr *)&peer, out, len);
    CHECK(n == 0 || n == -EMSGSIZE || (n > 0 && (size_t)n <= len));
    if (n > 0)
        check_reply(req, len, out, n, wire, alen, port);
    free(out);

    /* with room to spare: the same decision, and the answer (if any) is
     * still well formed; a request the worker could not answer for size
     * reasons is a real Binding request */
    nb = umxd_stun_respond(req, len, (const struct sockaddr *)&peer, big, sizeof(big));
    CHECK(nb >= 0);
    CHECK((nb > 0) == (n != 0));
    if (nb > 0) {
        CHECK((size_t)nb <= sizeof(big));
        check_reply(req, len, big, nb, wire, alen, port);
        if (n > 0)
            CHECK(n <= nb);
    }
    return 0;
}
