/*
 * steer_abi.h - what the reuseport program (steer.bpf.c) and the daemon
 * (steer.c) share: map keys, values and the counter indices. Plain C types
 * only, so the BPF target and the host compile the same layout.
 */
#ifndef UMXS_ABI_H
#define UMXS_ABI_H

#include <linux/types.h>

#define UMXS_MAX_WORKERS 64
#define UMXS_MAX_HINTS 65536

/* conf.flags */
#define UMXS_F_FILTER 1u   /* drop a flowless peer's datagram no route can take */
#define UMXS_F_EMPTY_OK 2u /* ... an empty datagram is taken (some route matches it) */
#define UMXS_F_WG 4u       /* look up WireGuard receiver indexes */
#define UMXS_F_QUIC 8u     /* look up QUIC short-header connection ids */

struct umxs_conf {
    __u32 nworkers;
    __u32 key; /* random: a sender cannot aim its ports at one worker */
    __u32 flags;
    __u32 pad;
    __u8 first[32]; /* bit b: some route may take a first byte b */
};

/* A peer: IPv6, or IPv4 as ::ffff:a.b.c.d; port in network order. */
struct umxs_peer {
    __u32 addr[4];
    __u16 port;
    __u16 pad;
};

enum { UMXS_HINT_WG = 1, UMXS_HINT_QUIC = 2 };
struct umxs_hint {
    __u32 kind;
    __u8 key[8]; /* WireGuard: 4 bytes then zeros; QUIC: the first 8 id bytes */
};

enum {
    UMXS_ST_PEER,     /* picked by the peer's flows */
    UMXS_ST_HINT,     /* picked by a roaming hint */
    UMXS_ST_HASH,     /* picked by the hash */
    UMXS_ST_FILTERED, /* dropped: no route takes the first byte */
    UMXS_ST_REFUSED,  /* dropped: no worker socket to pick (or unreadable) */
    UMXS_NSTATS
};

#endif
