/*
 * proto.h - the attach protocol between udpmuxd and attached programs
 * (docs/internals/attach.md). AF_UNIX SOCK_SEQPACKET: every message is one
 * unit, so a datagram is one message and batches are sendmmsg/recvmmsg.
 *
 *   HELLO  'H' ver(1) namelen(2, BE) name          program -> daemon, first
 *   OK     'O' ver(1) 0(2) text                    daemon -> program
 *   ERR    'E' ver(1) errno(2, BE) text            daemon -> program, then close
 *   DATA   'D' flags(1) peerport(2) localport(2) reserved(2)
 *              peer(16) local(16) payload          both directions
 *
 * DATA flags: bit 0 = IPv6 addresses (else IPv4 in the first 4 bytes),
 * bit 1 = local address present. Ports are big-endian. The payload is the
 * whole datagram (0 bytes is valid).
 */
#ifndef UMX_ATTACH_PROTO_H
#define UMX_ATTACH_PROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UMX_ATT_VERSION 1
#define UMX_ATT_HELLO 'H'
#define UMX_ATT_OK 'O'
#define UMX_ATT_ERR 'E'
#define UMX_ATT_DATA 'D'
#define UMX_ATT_DATA_HDR 40
#define UMX_ATT_MAX_MSG (UMX_ATT_DATA_HDR + 65535)
#define UMX_ATT_F_V6 1u
#define UMX_ATT_F_LOCAL 2u

/* Writes a DATA header for peer (and local, may be NULL). */
void umx_att_encode_hdr(uint8_t hdr[UMX_ATT_DATA_HDR], const struct sockaddr *peer,
                        const struct sockaddr *local);

/* Parses a DATA message; payload points into m. Returns 0 or -EINVAL. */
int umx_att_decode_data(const uint8_t *m, size_t n, struct sockaddr_storage *peer,
                        struct sockaddr_storage *local, int *has_local, const uint8_t **payload,
                        size_t *len);

#endif
