/* peeruid.h - who is at the other end of a local TCP connection: the uid
 * owning the peer's socket, asked of the kernel with one sock_diag lookup
 * (the TCP counterpart of SO_PEERCRED, which only Unix sockets have). The
 * metrics listener limits connections per local user with it. */
#ifndef UMXD_PEERUID_H
#define UMXD_PEERUID_H

#include <stdint.h>

/* A NETLINK_SOCK_DIAG socket for umxd_peer_uid, or -errno. */
int umxd_peeruid_open(void);

/* The uid owning the socket at the other end of the connected TCP socket
 * fd, when that socket is on this host (in this network namespace); -1
 * when it is not (a remote client) or the kernel cannot tell. */
int64_t umxd_peer_uid(int nl, int fd);

/* Connections per uid, at most max each, for at most UMXD_UIDCAP_USERS
 * users at once. One thread only. */
#define UMXD_UIDCAP_USERS 128
struct umxd_uidcap {
    unsigned max;
    struct {
        uint32_t uid;
        unsigned n;
    } u[UMXD_UIDCAP_USERS];
};
/* Counts one more connection of uid: 0, or -EUSERS when uid is at max (or
 * the table is full). */
int umxd_uidcap_take(struct umxd_uidcap *c, uint32_t uid);
/* One connection of uid is gone. */
void umxd_uidcap_put(struct umxd_uidcap *c, uint32_t uid);

#endif
