/*
 * steer.h - the kernel side of udpmuxd's port (steer.c, steer.bpf.c): an
 * SK_REUSEPORT eBPF program on the daemon's own listening groups that
 * gives a datagram to the worker holding its peer's flows, to the worker
 * owning its roaming key, drops it when no route can take its first byte
 * and the peer has no flow, and else hashes the peer over the workers.
 * Loaded before privileges drop (CAP_BPF or CAP_SYS_ADMIN); its maps stay
 * writable through their descriptors afterwards, without capabilities.
 * Without libbpf at build time, or when the kernel refuses it, every call
 * returns -ENOSYS/-errno and the daemon keeps its classic BPF program.
 */
#ifndef UMXD_STEER_H
#define UMXD_STEER_H

#include <stddef.h>
#include <stdint.h>

struct umxd_steer;
struct umxd_steer_peers;
struct umx_flow_key;

/* Counters the program keeps (summed over CPUs). */
struct umxd_steer_stats {
    uint64_t by_peer, by_hint, by_hash, filtered, refused;
};

/* Loads one program per listener (nlisten groups of nworkers sockets) with
 * maps for peer_cap peers. key: random, for the hash. 0 or -errno. */
int umxd_steer_load(struct umxd_steer **out, unsigned nlisten, unsigned nworkers, uint32_t peer_cap,
                    uint32_t key);
/* Puts worker w's socket of listener li in the program's socket array and,
 * for w == 0, attaches the program to the group (every worker socket must
 * have joined by then: call for w = nworkers-1 .. 0). 0 or -errno. */
int umxd_steer_socket(struct umxd_steer *s, unsigned li, unsigned w, int fd);
/* The route set's filter: first[b/8] bit b%8 set when some route may take
 * first byte b; empty_ok when one takes an empty datagram; filter = 0
 * turns the drop off (a route set where replies to attached programs'
 * own requests can start with anything); wg/quic: look up those hints.
 * The first call (before the workers start) decides for the process
 * whether workers mirror their peers (umxd_steer_mirrors): only when that
 * set could drop something. Returns 1 when the filter is on, 0 when the
 * set cannot use it, -EAGAIN when it could but the workers do not mirror
 * (a restart turns it on), other -errno on failure. */
int umxd_steer_filter(struct umxd_steer *s, const uint8_t first[32], int empty_ok, int filter,
                      int wg, int quic);
/* The workers keep the kernel's peer map (decided by the first filter). */
int umxd_steer_mirrors(const struct umxd_steer *s);
/* A roaming key (kind byte + key, as the flow table holds it) that worker
 * w owns. Only WireGuard indexes and QUIC ids of 8 bytes or more become
 * hints. 0 or -errno (a failure costs a mailbox relay, nothing else). */
int umxd_steer_hint(struct umxd_steer *s, const uint8_t *key, size_t klen, unsigned w);
void umxd_steer_stats(struct umxd_steer *s, struct umxd_steer_stats *out);
void umxd_steer_free(struct umxd_steer *s);

/* Upgrade hand-over (daemon/upgrade.c): the program stays attached to the
 * groups the sockets move with; its maps move too, so the new process
 * keeps mirroring its peers, writing hints and reading the counters.
 * umxd_steer_export fills fds[4] (conf, peers, hints, stats: borrowed, not
 * duplicated) and *mirror. umxd_steer_adopt takes ownership of fds. */
#define UMXD_STEER_NFDS 4
void umxd_steer_export(const struct umxd_steer *s, int fds[UMXD_STEER_NFDS], int *mirror);
int umxd_steer_adopt(struct umxd_steer **out, const int fds[UMXD_STEER_NFDS], unsigned nworkers,
                     int mirror);

/* Worker w's mirror of the peers its flow table holds: counts flows per
 * peer (a peer may hold several: one per route) and tells the kernel map
 * on the first and the last. cap: the worker's flow capacity. */
int umxd_steer_peers_new(struct umxd_steer *s, unsigned w, uint32_t cap,
                         struct umxd_steer_peers **out);
void umxd_steer_peers_free(struct umxd_steer_peers *p);
/* umx_ft_watch_fn for the worker's flow table (arg: the peers mirror). */
void umxd_steer_watch(void *arg, const struct umx_flow_key *k, int added);

#endif
