/*
 * ippkt.h - the IP and UDP headers of a datagram the queue hands over, read
 * in place (kdp's only packet parser; pure, no I/O).
 */
#ifndef UMXD_KDP_IPPKT_H
#define UMXD_KDP_IPPKT_H
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct kdp_ip_udp {
    struct sockaddr_storage src, dst;
    size_t off, len; /* the UDP payload inside the packet */
};

/* Reads an IPv4 (family AF_INET) or IPv6 packet of n bytes: a whole UDP
 * datagram (no fragment; IPv6 extension headers skipped) fills out and
 * returns 0; anything else returns -1. */
int kdp_ip_udp_parse(int family, const uint8_t *pkt, size_t n, struct kdp_ip_udp *out);
#endif
