/*
 * test-ippkt.c - the queue's IP/UDP reader (daemon/kdp/ippkt.c): whole
 * IPv4 and IPv6 datagrams (with extension headers) give their addresses,
 * ports and payload; fragments, other protocols, truncated or lying
 * lengths are refused without reading past the buffer.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kdp/ippkt.h"

static size_t v4(uint8_t *b, uint16_t frag, uint8_t proto, const char *data)
{
    size_t dl = strlen(data), total = 20 + 8 + dl;
    memset(b, 0, 28);
    b[0] = 0x45;
    b[2] = (uint8_t)(total >> 8);
    b[3] = (uint8_t)total;
    b[6] = (uint8_t)(frag >> 8);
    b[7] = (uint8_t)frag;
    b[8] = 64;
    b[9] = proto;
    inet_pton(AF_INET, "192.0.2.1", b + 12);
    inet_pton(AF_INET, "198.51.100.7", b + 16);
    b[20] = 0x30, b[21] = 0x39; /* 12345 */
    b[22] = 0x01, b[23] = 0xbb; /* 443 */
    b[24] = (uint8_t)((8 + dl) >> 8);
    b[25] = (uint8_t)(8 + dl);
    memcpy(b + 28, data, dl);
    return total;
}

static void ipv4_whole(void **state)
{
    uint8_t b[128];
    struct kdp_ip_udp o;
    char a[INET_ADDRSTRLEN];
    struct sockaddr_in s;
    size_t n = v4(b, 0x4000 /* DF */, IPPROTO_UDP, "hello");
    (void)state;
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), 0);
    assert_int_equal(o.len, 5);
    assert_memory_equal(b + o.off, "hello", 5);
    memcpy(&s, &o.src, sizeof(s));
    assert_string_equal(inet_ntop(AF_INET, &s.sin_addr, a, sizeof(a)), "192.0.2.1");
    assert_int_equal(ntohs(s.sin_port), 12345);
    memcpy(&s, &o.dst, sizeof(s));
    assert_string_equal(inet_ntop(AF_INET, &s.sin_addr, a, sizeof(a)), "198.51.100.7");
    assert_int_equal(ntohs(s.sin_port), 443);
    /* trailing bytes past the IP total length are not payload */
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n + 10, &o), 0);
    assert_int_equal(o.len, 5);
}

static void ipv4_refused(void **state)
{
    uint8_t b[128];
    struct kdp_ip_udp o;
    size_t n;
    (void)state;
    n = v4(b, 0x2000 /* MF */, IPPROTO_UDP, "x");
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    n = v4(b, 0x0010 /* offset */, IPPROTO_UDP, "x");
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    n = v4(b, 0, IPPROTO_TCP, "x");
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    n = v4(b, 0, IPPROTO_UDP, "abcdef");
    for (size_t cut = 0; cut < n; cut++) /* every truncation */
        assert_int_equal(kdp_ip_udp_parse(AF_INET, b, cut, &o), -1);
    b[25] += 1; /* UDP length past the packet */
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    b[25] = 7; /* UDP length below its header */
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    n = v4(b, 0, IPPROTO_UDP, "abcdef");
    b[0] = 0x44; /* IHL 16 bytes */
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
    b[0] = 0x65; /* version 6 in an IPv4 queue */
    assert_int_equal(kdp_ip_udp_parse(AF_INET, b, n, &o), -1);
}

/* IPv6 with a hop-by-hop and a destination options header before UDP */
static size_t v6(uint8_t *b, uint8_t first_next, const char *data)
{
    size_t dl = strlen(data), plen = 8 + 16 + 8 + dl;
    memset(b, 0, 40 + plen);
    b[0] = 0x60;
    b[4] = (uint8_t)(plen >> 8);
    b[5] = (uint8_t)plen;
    b[6] = first_next;
    b[7] = 64;
    inet_pton(AF_INET6, "2001:db8::1", b + 8);
    inet_pton(AF_INET6, "2001:db8::2", b + 24);
    b[40] = IPPROTO_DSTOPTS; /* hop-by-hop, 8 bytes */
    b[41] = 0;
    b[48] = IPPROTO_UDP; /* destination options, 16 bytes */
    b[49] = 1;
    b[64] = 0x12, b[65] = 0x34;
    b[66] = 0x00, b[67] = 0x35;
    b[68] = (uint8_t)((8 + dl) >> 8);
    b[69] = (uint8_t)(8 + dl);
    memcpy(b + 72, data, dl);
    return 40 + plen;
}

static void ipv6_ext(void **state)
{
    uint8_t b[256];
    struct kdp_ip_udp o;
    struct sockaddr_in6 s;
    char a[INET6_ADDRSTRLEN];
    size_t n = v6(b, IPPROTO_HOPOPTS, "dns?");
    (void)state;
    assert_int_equal(kdp_ip_udp_parse(AF_INET6, b, n, &o), 0);
    assert_int_equal(o.off, 72);
    assert_int_equal(o.len, 4);
    memcpy(&s, &o.src, sizeof(s));
    assert_string_equal(inet_ntop(AF_INET6, &s.sin6_addr, a, sizeof(a)), "2001:db8::1");
    assert_int_equal(ntohs(s.sin6_port), 0x1234);
    memcpy(&s, &o.dst, sizeof(s));
    assert_int_equal(ntohs(s.sin6_port), 53);
    for (size_t cut = 0; cut < n; cut++)
        assert_int_equal(kdp_ip_udp_parse(AF_INET6, b, cut, &o), -1);
    n = v6(b, IPPROTO_FRAGMENT, "x"); /* a fragment header first */
    assert_int_equal(kdp_ip_udp_parse(AF_INET6, b, n, &o), -1);
    n = v6(b, IPPROTO_HOPOPTS, "x");
    b[49] = 200; /* an extension header longer than the packet */
    assert_int_equal(kdp_ip_udp_parse(AF_INET6, b, n, &o), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ipv4_whole),
        cmocka_unit_test(ipv4_refused),
        cmocka_unit_test(ipv6_ext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
