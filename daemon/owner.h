/*
 * owner.h - one owner per port: udpmuxd does not start on an address and
 * port another socket already holds (unless told to take over), and the
 * SO_REUSEPORT group it creates gives datagrams to its own workers only.
 */
#ifndef UMXD_OWNER_H
#define UMXD_OWNER_H

#include <stdint.h>
#include <sys/socket.h>

/* Lists the sockets (sock_diag, any user) that already hold sa's port on
 * an overlapping address: the same address, a wildcard on either side, or
 * an IPv6 dual-stack wildcard for IPv4. Logs each holder (pid, program,
 * uid where visible) at priority prio and returns how many there are, 0,
 * or -errno when the kernel cannot be asked. */
int umxd_owner_holders(const struct sockaddr *sa, int dual_stack, const char *text, int prio);

/* Attaches a classic BPF program to the SO_REUSEPORT group of fd that
 * picks a member by a keyed hash of the peer's address and port, always
 * below nworkers: the workers' sockets join first (indices 0..n-1), so a
 * socket that joins later never gets a datagram. 0 or -errno. */
int umxd_owner_steer(int fd, unsigned nworkers, const uint8_t key[8]);

#endif
