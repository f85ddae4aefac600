/*
 * owner.c - one owner per port (owner.h).
 *
 * Linux lets a socket share udpmuxd's port in two ways udpmuxd would not
 * see: a process of the same uid that sets SO_REUSEPORT joins its group and
 * gets a share of the datagrams, and a second udpmuxd started by mistake
 * does exactly that and reports ready. So, before binding, udpmuxd asks
 * sock_diag (udpmux_who_holds) whether any socket already holds an
 * overlapping address and port, and refuses to start if one does (exit 69,
 * naming the holder), unless --takeover says the join is deliberate.
 *
 * A socket can still join after the check (same uid, SO_REUSEPORT). The
 * kernel picks a group member by its own 4-tuple hash over every member;
 * a classic BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF)
 * replaces that choice. Ours returns hash(peer address, peer port) modulo
 * the number of workers: the workers' sockets are the group's first
 * members (indices 0..n-1; the kernel only moves a member down when one
 * below it closes, and ours close only at exit), so a later member's index
 * is never returned and it receives nothing. The guard (guard.c) still
 * reports it. A peer keeps its worker as long as its address and port stay
 * the same, as with the kernel's hash; the hash is keyed with random bits
 * so a sender cannot pick source ports that all land on one worker
 * without learning the key.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/filter.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"
#include "log.h"
#include "owner.h"

#define OWNER_MAX_HOLDERS 8 /* listed by name; more are only counted */

/* Whether holder address h overlaps our listen address l. */
static int overlaps(const struct sockaddr_storage *h, const struct sockaddr *l, int dual_stack)
{
    if (l->sa_family == AF_INET) {
        struct sockaddr_in l4;
        memcpy(&l4, l, sizeof(l4));
        if (h->ss_family == AF_INET) {
            struct sockaddr_in h4;
            memcpy(&h4, h, sizeof(h4));
            return h4.sin_addr.s_addr == l4.sin_addr.s_addr || h4.sin_addr.s_addr == INADDR_ANY ||
                   l4.sin_addr.s_addr == INADDR_ANY;
        }
        /* udpmux_who_holds lists only IPv6 sockets that take IPv4 too:
         * [::] or a v4-mapped address */
        struct sockaddr_in6 h6;
        memcpy(&h6, h, sizeof(h6));
        if (IN6_IS_ADDR_UNSPECIFIED(&h6.sin6_addr) || l4.sin_addr.s_addr == INADDR_ANY)
            return 1;
        return IN6_IS_ADDR_V4MAPPED(&h6.sin6_addr) &&
               !memcmp(&h6.sin6_addr.s6_addr[12], &l4.sin_addr, 4);
    }
    struct sockaddr_in6 l6;
    memcpy(&l6, l, sizeof(l6));
    if (h->ss_family == AF_INET)
        return dual_stack && IN6_IS_ADDR_UNSPECIFIED(&l6.sin6_addr);
    struct sockaddr_in6 h6;
    memcpy(&h6, h, sizeof(h6));
    return IN6_ARE_ADDR_EQUAL(&h6.sin6_addr, &l6.sin6_addr) ||
           IN6_IS_ADDR_UNSPECIFIED(&h6.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&l6.sin6_addr);
}

int umxd_owner_holders(const struct sockaddr *sa, int dual_stack, const char *text, int prio)
{
    struct udpmux_holder h[32];
    int n = udpmux_who_holds(sa, h, 32), found = 0;
    if (n < 0)
        return n;
    /* a program's SO_REUSEPORT group (a socket per worker) gives the same
     * line once per socket: log it once, with the count */
    for (int i = 0, logged = 0; i < n && i < 32; i++) {
        char line[256], other[256];
        int same = 1, seen = 0;
        if (!overlaps(&h[i].addr, sa, dual_stack))
            continue;
        found++;
        udpmux_holder_format(&h[i], line, sizeof(line));
        for (int j = 0; j < n && j < 32; j++) {
            if (j == i || !overlaps(&h[j].addr, sa, dual_stack))
                continue;
            udpmux_holder_format(&h[j], other, sizeof(other));
            if (strcmp(line, other) == 0) {
                seen |= j < i;
                same++;
            }
        }
        if (seen || logged++ >= OWNER_MAX_HOLDERS)
            continue;
        if (same > 1)
            umxd_log(prio, "%s is already held by %s (%d sockets)", text, line, same);
        else
            umxd_log(prio, "%s is already held by %s", text, line);
    }
    if (n > 32)
        found += n - 32; /* not read: counted as holders, to be safe */
    return found;
}

/* SKF_NET_OFF: loads relative to the network header (the program runs with
 * the data pointer past the UDP header, so the ports are read from there). */
#define NET(k) ((uint32_t)(SKF_NET_OFF + (k)))
#define MUL1 0x9e3779b1u
#define MUL2 0x85ebca6bu

int umxd_owner_steer(int fd, unsigned nworkers, const uint8_t key[8])
{
    uint32_t k1, k2;
    memcpy(&k1, key, 4);
    memcpy(&k2, key + 4, 4);
    /* A = mix(source address, source port) % nworkers; a load that fails
     * (short packet) ends the program with 0: worker 0, still ours */
    struct sock_filter prog[] = {
        /* 0 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(0)),
        /* 1 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 4),
        /* 2 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 6, 11, 0), /* IPv6: to 14 */
        /* IPv4 (also on a dual-stack IPv6 socket): X = header length */
        /* 3 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(0)),
        /* 4 */ BPF_STMT(BPF_ALU | BPF_AND | BPF_K, 0xf),
        /* 5 */ BPF_STMT(BPF_ALU | BPF_LSH | BPF_K, 2),
        /* 6 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 7 */ BPF_STMT(BPF_LD | BPF_H | BPF_IND, NET(0)), /* source port */
        /* 8 */ BPF_STMT(BPF_ST, 0),
        /* 9 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(12)), /* source address */
        /* 10 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, k1),
        /* 11 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, MUL1),
        /* 12 */ BPF_STMT(BPF_LDX | BPF_MEM, 0),
        /* 13 */ BPF_STMT(BPF_JMP | BPF_JA, 18), /* to 32 */
        /* IPv6: UDP right after the fixed header, else worker 0 */
        /* 14 */ BPF_STMT(BPF_LD | BPF_B | BPF_ABS, NET(6)),
        /* 15 */ BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, IPPROTO_UDP, 1, 0),
        /* 16 */ BPF_STMT(BPF_RET | BPF_K, 0),
        /* 17 */ BPF_STMT(BPF_LD | BPF_H | BPF_ABS, NET(40)), /* source port */
        /* 18 */ BPF_STMT(BPF_ST, 0),
        /* 19 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(8)), /* source address, 4 words */
        /* 20 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 21 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(12)),
        /* 22 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 23 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 24 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(16)),
        /* 25 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 26 */ BPF_STMT(BPF_MISC | BPF_TAX, 0),
        /* 27 */ BPF_STMT(BPF_LD | BPF_W | BPF_ABS, NET(20)),
        /* 28 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 29 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, k1),
        /* 30 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, MUL1),
        /* 31 */ BPF_STMT(BPF_LDX | BPF_MEM, 0),
        /* both: mix in the port, then pick a worker */
        /* 32 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_X, 0),
        /* 33 */ BPF_STMT(BPF_ALU | BPF_XOR | BPF_K, k2),
        /* 34 */ BPF_STMT(BPF_ALU | BPF_MUL | BPF_K, MUL2),
        /* 35 */ BPF_STMT(BPF_ALU | BPF_RSH | BPF_K, 16),
        /* 36 */ BPF_STMT(BPF_ALU | BPF_MOD | BPF_K, nworkers),
        /* 37 */ BPF_STMT(BPF_RET | BPF_A, 0),
    };
    struct sock_fprog fp = {.len = sizeof(prog) / sizeof(prog[0]), .filter = prog};
    if (nworkers == 0)
        return -EINVAL;
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF, &fp, sizeof(fp)) < 0)
        return -errno;
    return 0;
}
