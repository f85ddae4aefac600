/*
 * flow.h - the flow table: a pure, fixed-capacity map from (local address,
 * peer address, tag) to a flow record with caller-defined payload. No I/O,
 * no clock: every call that needs time takes `now` in nanoseconds.
 *
 * - Keyed hash (SipHash-2-4 with a caller-supplied random key), chained
 *   buckets of 32-bit indices into one preallocated array: O(1) lookups and
 *   no allocation after umx_ft_new().
 * - Every flow belongs to a timeout class (the caller defines classes, e.g.
 *   "route 3, unanswered" and "route 3, established"). Each class keeps its
 *   flows in last-activity order, so expiry pops from the tail of each list
 *   and costs O(classes + expired), with timers that fire without traffic.
 * - When the table is full, a new flow may evict the least recently active
 *   flow of an evictable class (unanswered flows); established flows are
 *   never evicted by new ones, so a spoofed flood cannot push them out.
 * - A flow may carry one roaming key (WireGuard receiver index, QUIC
 *   connection ID) in a second hash index, so a datagram from an unknown
 *   address can find the flow that owns the key.
 */
#ifndef UMX_FLOW_H
#define UMX_FLOW_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define UMX_FT_MAX_CLASSES 256
#define UMX_ROAM_MAX 21 /* a kind byte + up to 20 key bytes */

struct umx_flow_key {
    uint8_t family; /* AF_INET or AF_INET6 */
    uint8_t pad[3];
    uint32_t tag; /* 0 for the pinned flow of a peer; route-specific otherwise */
    uint16_t lport, pport;
    uint8_t laddr[16], paddr[16];
};

struct umx_flow {
    struct umx_flow_key key;
    uint32_t idx;        /* own index, stable for the table's lifetime */
    uint32_t hnext;      /* bucket chain */
    uint32_t prev, next; /* class list, most recent first */
    uint32_t rnext;      /* roaming bucket chain */
    uint16_t cls;
    uint8_t in_use;
    uint8_t roam_len;
    uint8_t roam[UMX_ROAM_MAX];
    uint64_t created_ns;
    uint64_t last_ns;
    /* caller payload follows, aligned to 16 bytes (umx_flow_data()) */
};

struct umx_ft;

struct umx_ft_stats {
    uint64_t inserts, hits, misses, evictions, full_drops, expired, removed, roam_hits;
    uint32_t active, capacity;
};

/* Creates a table for `capacity` flows with `user_size` bytes of payload
 * each. key is the SipHash key (random per process). Returns 0 or -errno. */
int umx_ft_new(struct umx_ft **out, uint32_t capacity, size_t user_size, const uint8_t key[16]);
void umx_ft_free(struct umx_ft *ft);

/* Defines class cls: idle timeout in ns (0 = never expires) and whether its
 * flows may be evicted to make room for new ones. */
int umx_ft_set_class(struct umx_ft *ft, unsigned cls, uint64_t timeout_ns, int evictable);

/* Builds a key from socket addresses (IPv4-mapped IPv6 is kept as IPv6: the
 * key follows the socket the datagram arrived on). */
void umx_flow_key_make(struct umx_flow_key *k, const struct sockaddr *local,
                       const struct sockaddr *peer, uint32_t tag);

struct umx_flow *umx_ft_lookup(struct umx_ft *ft, const struct umx_flow_key *k);

/* Called for a flow the table removes on its own (eviction or expiry), before
 * its slot is reused: release what the payload holds (sockets...). */
typedef void umx_ft_release_fn(struct umx_flow *f, void *arg, int reason);
enum { UMX_FT_EXPIRED = 1, UMX_FT_EVICTED = 2 };

/* Inserts a new flow (the key must not be present). When the table is full
 * it evicts the least recently active evictable flow (release is called) or
 * returns NULL (counted as full_drops). The payload is zeroed. */
struct umx_flow *umx_ft_insert(struct umx_ft *ft, const struct umx_flow_key *k, unsigned cls,
                               uint64_t now, umx_ft_release_fn *release, void *arg);

/* Marks activity: moves the flow to the head of its class (and to class
 * new_cls if it differs, e.g. unanswered -> established). */
void umx_ft_touch(struct umx_ft *ft, struct umx_flow *f, unsigned new_cls, uint64_t now);

/* Removes a flow (no release callback: the caller releases). */
void umx_ft_remove(struct umx_ft *ft, struct umx_flow *f);

/* Expires idle flows, at most max of them (0: no limit); calls release for
 * each. Returns the number expired. */
unsigned umx_ft_expire(struct umx_ft *ft, uint64_t now, unsigned max, umx_ft_release_fn *release,
                       void *arg);

/* Nanoseconds from now until the next flow would expire (UINT64_MAX: none). */
uint64_t umx_ft_next_expiry(const struct umx_ft *ft, uint64_t now);

/* Roaming keys: one per flow; setting a key another flow owns moves it. */
int umx_ft_roam_set(struct umx_ft *ft, struct umx_flow *f, const uint8_t *key, size_t len);
struct umx_flow *umx_ft_roam_lookup(struct umx_ft *ft, const uint8_t *key, size_t len);

/* Moves a flow to a new key (peer changed address): rehashes it. */
int umx_ft_rekey(struct umx_ft *ft, struct umx_flow *f, const struct umx_flow_key *k);

/* Tells fn of every key the table starts holding (added = 1: insert, the
 * new key of a rekey) and stops holding (added = 0: removal, expiry,
 * eviction, the old key of a rekey), in that order, so a mirror of the
 * keys elsewhere (the daemon's kernel steering map) never misses one. One
 * watcher; NULL stops watching. Called with the table consistent. */
typedef void umx_ft_watch_fn(void *arg, const struct umx_flow_key *k, int added);
void umx_ft_watch(struct umx_ft *ft, umx_ft_watch_fn *fn, void *arg);

/* Iteration over active flows: idx from 0; returns NULL past the end. */
struct umx_flow *umx_ft_at(struct umx_ft *ft, uint32_t idx);
uint32_t umx_ft_capacity(const struct umx_ft *ft);

void umx_ft_get_stats(const struct umx_ft *ft, struct umx_ft_stats *out);

/* Bytes of memory the table uses per flow (for reports). */
size_t umx_ft_bytes_per_flow(const struct umx_ft *ft);

static inline void *umx_flow_data(struct umx_flow *f)
{
    return (uint8_t *)f + ((sizeof(struct umx_flow) + 15) & ~(size_t)15);
}

#endif
