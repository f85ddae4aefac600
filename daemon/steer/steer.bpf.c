// SPDX-License-Identifier: MIT
/*
 * steer.bpf.c - the kernel side of udpmuxd's port: an SK_REUSEPORT program
 * on the daemon's own listening group (one group per listen address, a
 * socket per worker). It runs for every datagram before any socket queue
 * and picks, in order:
 *
 *   1. the worker that holds the peer's flows (`peers`, filled by the
 *      workers as their flow tables take and let go of peers): a peer
 *      whose flow moved to another worker (roaming) keeps reaching it;
 *   2. the worker that owns the datagram's roaming key (`hints`: a
 *      WireGuard receiver index, the first 8 bytes of a QUIC short-header
 *      connection id), so a peer's first datagram from a new address goes
 *      straight to the flow it belongs to instead of through another
 *      worker's mailbox. A hint only picks a worker: the worker's engine
 *      still decides with the whole key, so a stale or colliding hint costs
 *      one relay, never a misrouted datagram;
 *   3. for a peer with no flow: nothing when no route can match the first
 *      byte (the route set's first-byte bitmap in `conf`): dropped here,
 *      counted, before any socket buffer or wake-up;
 *   4. else a keyed hash of the peer's address and port over the workers.
 *
 * Only the daemon's own sockets are in `socks`, so a socket that joins the
 * group later (same uid, SO_REUSEPORT) is never picked, and when no socket
 * can be picked the datagram is dropped rather than left to the kernel's
 * own choice over every member. Read-only on the packet: no rewrite, no
 * redirect. Hand-written because it is the hot path (~100 instructions).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "steer_abi.h"

struct {
    __uint(type, BPF_MAP_TYPE_REUSEPORT_SOCKARRAY);
    __uint(max_entries, UMXS_MAX_WORKERS);
    __type(key, __u32);
    __type(value, __u64);
} socks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct umxs_conf);
} conf SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1); /* set by the loader to the flow capacity */
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __type(key, struct umxs_peer);
    __type(value, __u32);
} peers SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, UMXS_MAX_HINTS);
    __type(key, struct umxs_hint);
    __type(value, __u32);
} hints SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, UMXS_NSTATS);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

static __always_inline void count(__u32 i)
{
    __u64 *v = bpf_map_lookup_elem(&stats, &i);
    if (v)
        *v += 1;
}

static __always_inline int pick(struct sk_reuseport_md *ctx, __u32 worker, __u32 stat)
{
    if (bpf_sk_select_reuseport(ctx, &socks, &worker, 0) == 0) {
        count(stat);
        return SK_PASS;
    }
    return -1;
}

static __always_inline __u32 mix(__u32 h, __u32 v)
{
    h ^= v;
    h *= 0x9e3779b1u;
    return h ^ (h >> 15);
}

SEC("sk_reuseport")
int umxs_steer(struct sk_reuseport_md *ctx)
{
    __u32 zero = 0, *w;
    struct umxs_conf *c = bpf_map_lookup_elem(&conf, &zero);
    struct umxs_peer peer = {};
    struct umxs_hint hint = {};
    __u8 udp[8], pl[12];
    __u32 len = ctx->len, h;

    if (!c || c->nworkers == 0 || c->nworkers > UMXS_MAX_WORKERS)
        goto refuse;
    if (bpf_skb_load_bytes(ctx, 0, udp, sizeof(udp)) < 0)
        goto refuse;
    if (ctx->eth_protocol == bpf_htons(ETH_P_IP)) {
        /* IPv4 peers in the v4-mapped form the daemon's keys use */
        peer.addr[2] = bpf_htonl(0xffff);
        if (bpf_skb_load_bytes_relative(ctx, 12, &peer.addr[3], 4, BPF_HDR_START_NET) < 0)
            goto refuse;
    } else if (ctx->eth_protocol == bpf_htons(ETH_P_IPV6)) {
        if (bpf_skb_load_bytes_relative(ctx, 8, peer.addr, 16, BPF_HDR_START_NET) < 0)
            goto refuse;
    } else {
        goto refuse;
    }
    __builtin_memcpy(&peer.port, udp, 2);

    /* 1. the peer's own flows */
    w = bpf_map_lookup_elem(&peers, &peer);
    if (w && pick(ctx, *w, UMXS_ST_PEER) == SK_PASS)
        return SK_PASS;

    len = len > 8 ? len - 8 : 0; /* payload bytes */
    __builtin_memset(pl, 0, sizeof(pl));
    if (len >= sizeof(pl)) {
        if (bpf_skb_load_bytes(ctx, 8, pl, sizeof(pl)) < 0)
            goto refuse;
    } else if (len > 0) {
        if (bpf_skb_load_bytes(ctx, 8, pl, 1) < 0)
            goto refuse;
    }

    /* 2. roaming hints */
    if ((c->flags & UMXS_F_WG) && len >= 32 && pl[0] == 4 && !pl[1] && !pl[2] && !pl[3]) {
        hint.kind = UMXS_HINT_WG;
        __builtin_memcpy(hint.key, &pl[4], 4);
    } else if ((c->flags & UMXS_F_QUIC) && len >= 1 + 8 + 4 + 16 && !(pl[0] & 0x80)) {
        hint.kind = UMXS_HINT_QUIC;
        __builtin_memcpy(hint.key, &pl[1], 8);
    }
    if (hint.kind) {
        w = bpf_map_lookup_elem(&hints, &hint);
        if (w && pick(ctx, *w, UMXS_ST_HINT) == SK_PASS)
            return SK_PASS;
    }

    /* 3. no flow, and no route takes this first byte: drop here */
    if (c->flags & UMXS_F_FILTER) {
        int ok;
        if (len == 0)
            ok = c->flags & UMXS_F_EMPTY_OK;
        else
            ok = (c->first[pl[0] >> 3] >> (pl[0] & 7)) & 1;
        if (!ok) {
            count(UMXS_ST_FILTERED);
            return SK_DROP;
        }
    }

    /* 4. a keyed hash of the peer */
    h = c->key;
#pragma unroll
    for (int i = 0; i < 4; i++)
        h = mix(h, peer.addr[i]);
    h = mix(h, peer.port);
    if (pick(ctx, h % c->nworkers, UMXS_ST_HASH) == SK_PASS)
        return SK_PASS;
refuse:
    count(UMXS_ST_REFUSED);
    return SK_DROP;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
