/* proxy.h - PROXY protocol v2 header for datagrams (haproxy's
 * doc/proxy-protocol.txt section 2.2, DGRAM transport). Pure. */
#ifndef UMXD_PROXY_H
#define UMXD_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UMX_PROXY_V2_MAX 52

/* Writes the header for a datagram from src to dst (the public address the
 * client used) into out and returns its length (28 for IPv4, 52 for IPv6).
 * A v4-mapped IPv6 pair is written as IPv4. With unknown families it writes
 * a LOCAL header (16 bytes). */
size_t umx_proxy_v2_encode(uint8_t out[UMX_PROXY_V2_MAX], const struct sockaddr *src,
                           const struct sockaddr *dst);

/* Parses a header at the start of p (for tests and receivers): returns the
 * header length, or -1 when it is not a valid v2 header. Fills src/dst when
 * the command is PROXY. */
int umx_proxy_v2_decode(const uint8_t *p, size_t n, struct sockaddr_storage *src,
                        struct sockaddr_storage *dst);

#endif
