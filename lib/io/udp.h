/*
 * udp.h - the only library code that touches sockets: creating the shared
 * UDP sockets with safe options, batched receive with per-datagram metadata
 * (peer, local address from PKTINFO, truncation, GRO segment size, kernel
 * drop counter) and batched send with a chosen source address.
 */
#ifndef UMX_UDP_H
#define UMX_UDP_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Socket creation flags (the public UDPMUX_BIND_* values). */
#define UMX_SOCK_REUSEPORT 1u
#define UMX_SOCK_DUALSTACK 2u
#define UMX_SOCK_MULTICAST 4u

/* Creates, configures and binds a non-blocking UDP socket. Never sets
 * SO_REUSEADDR on a unicast socket: on Linux that lets any user take over
 * the port. Returns the fd or -errno. */
int umx_udp_open(const struct sockaddr *sa, socklen_t salen, unsigned flags, int rcvbuf,
                 int sndbuf);

/* Configures an existing socket (adopted fd): O_NONBLOCK, CLOEXEC, PKTINFO,
 * SO_RXQ_OVFL, IP_MULTICAST_ALL=0. Returns 0 or -errno. */
int umx_udp_setup(int fd);

/* An unconnected or connected upstream socket for the daemon. */
int umx_udp_open_upstream(int family, int rcvbuf, int sndbuf);

struct umx_rx_slot {
    uint8_t *buf;
    size_t len; /* payload bytes (valid if !truncated) */
    struct sockaddr_storage peer;
    socklen_t peer_len;
    struct sockaddr_storage local; /* destination address, port filled from the socket */
    socklen_t local_len;
    int ifindex;
    uint16_t gso_size; /* UDP_GRO segment size, 0 if none */
    uint8_t truncated;
    uint8_t has_local;
};

struct umx_rxb {
    unsigned n;
    size_t bufsize;
    struct mmsghdr *msgs;
    struct iovec *iov;
    struct umx_rx_slot *slots;
    uint8_t *ctrl;
    uint8_t *mem;
};

int umx_rxb_new(struct umx_rxb **out, unsigned n, size_t bufsize);
void umx_rxb_free(struct umx_rxb *b);

/* Receives up to n datagrams (n <= b->n). local_port (network order) fills
 * the port of each slot's local address; family is the socket's. ovfl gets
 * the kernel's SO_RXQ_OVFL cumulative drop count if reported (unchanged
 * otherwise). Returns the count, 0 when nothing is pending, or -errno for a
 * real error (ICMP-reported errors come back as -ECONNREFUSED and the like:
 * the caller counts them and goes on). */
int umx_rx(int fd, struct umx_rxb *b, unsigned n, int family, uint16_t local_port, uint32_t *ovfl);

/* Control buffer big enough for one PKTINFO (+ UDP_SEGMENT) cmsg. */
#define UMX_TX_CTRL 64

/* Fills msg's control data so the datagram leaves from source address src
 * (its port is ignored) on a socket of family sock_family. src NULL: no
 * control data. Returns 0 or -EAFNOSUPPORT. */
int umx_tx_set_src(struct msghdr *mh, uint8_t ctrl[UMX_TX_CTRL], int sock_family,
                   const struct sockaddr *src, int ifindex);

/* Adds a UDP_SEGMENT cmsg (GSO) after what umx_tx_set_src() put there. */
void umx_tx_add_gso(struct msghdr *mh, uint8_t ctrl[UMX_TX_CTRL], uint16_t seg);

/* Converts an IPv4 address into the v4-mapped form for an IPv6 socket
 * (in place in a sockaddr_storage), returns the new length. */
socklen_t umx_sa_map6(struct sockaddr_storage *ss);

/* sendmmsg with EINTR retry. Returns count sent or -errno. */
int umx_sendmmsg(int fd, struct mmsghdr *msgs, unsigned n);

#endif
