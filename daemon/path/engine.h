/*
 * engine.h - the packet path's decision engine: given one datagram, the
 * worker's flow state and the route set, say what happens to it. Pure: no
 * sockets, no clock reads, no locks, no counters. Everything the engine
 * cannot know by itself (is a backend up, which attached program holds a
 * route, does another worker own a roaming key) it asks through the
 * environment the caller gives it (struct umxd_env), so udpmuxd, udpmuxctl
 * classify and the unit tests run the same decisions: the daemon answers
 * from shared state, the others from a model.
 *
 * A datagram's trip is decide, then act:
 *   umxd_decide()       peer -> udpmuxd: a verdict (struct umxd_verdict)
 *   umxd_decide_reply() backend -> peer: a reply verdict
 * and the caller carries the verdict out. The flow-state changes a verdict
 * implies (a new flow, a flow that follows its peer, a reply that
 * establishes a flow) are engine functions too (umxd_flow_add...), so a
 * replay without sockets keeps the same state the daemon keeps.
 */
#ifndef UMXD_ENGINE_H
#define UMXD_ENGINE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "flow/flow.h"
#include "internal.h"
#include "io/udp.h"
#include "stats.h"

struct umxd_qlb_aes;

/* An immutable, published route set. Workers switch to a new one between
 * batches; the main thread frees an old one once every worker has moved on. */
struct umxd_routeset {
    uint64_t epoch;
    struct umxd_config *cfg;        /* owns the compiled rules */
    uint16_t slot[UMXD_MAX_ROUTES]; /* route index -> stable stats/drain slot */
    struct umx_rule_index idx;      /* cfg's routes by first byte, for classification */
    struct umxd_routeset *older;    /* retired sets waiting to be freed */
};

/* The flow record every flow-table entry carries (umx_flow_data()). The
 * engine reads and writes the fields above `up_fd`'s group; the socket
 * fields belong to the act step (upstream sockets), which the engine never
 * touches. */
struct umxd_flow {
    uint32_t gen;   /* per-worker generation: stale events and references */
    uint16_t route; /* index in the worker's current route set */
    uint16_t slot;  /* stable stats slot */
    uint8_t backend;
    uint8_t listener;
    uint8_t answered;    /* the backend answered */
    uint8_t established; /* proven: the peer sent again after an answer (return
                          * routability), or an attach flow; never evicted */
    uint8_t attach;      /* pinned to an attached program (client, cgen) */
    uint8_t pinned;      /* made by the program's own send: other routes' traffic
                          * from the peer still goes to those routes */
    uint8_t relay;       /* datagrams go to another worker's flow (roamed peer) */
    uint8_t relay_worker;
    uint32_t relay_idx, relay_gen;
    uint16_t client;
    uint32_t cgen;
    struct sockaddr_in6 peer; /* holds a sockaddr_in for IPv4 */
    struct sockaddr_in6 local;
    uint64_t rx_dgrams, rx_bytes, tx_dgrams, tx_bytes;
    /* act side: the upstream socket */
    int up_fd;
    uint8_t shared;             /* up_fd is the worker's shared socket; upsrc tells it apart */
    struct sockaddr_in6 upaddr; /* backend address (unconnected upstreams follow its port) */
    struct sockaddr_in6 upsrc;  /* shared upstream: this flow's source address */
};

static inline struct umxd_flow *umxd_fl(struct umx_flow *f)
{
    return umx_flow_data(f);
}

/* Timeout classes of the flow table: per route, unanswered (its own short
 * timeout), answered but unproven (the idle timeout, evictable) and
 * established (proven: never evicted to make room); the last class holds
 * relays to another worker's flow. */
#define UMXD_CLS_RELAY (UMX_FT_MAX_CLASSES - 1)
/* umx_ft_touch() with this class keeps the flow's class */
#define UMXD_CLS_KEEP UMX_FT_MAX_CLASSES

static inline unsigned umxd_cls_unanswered(unsigned r)
{
    return 3 * r;
}

static inline unsigned umxd_cls_answered(unsigned r)
{
    return 3 * r + 1;
}

static inline unsigned umxd_cls_established(unsigned r)
{
    return 3 * r + 2;
}

/* The class a flow belongs in now. */
static inline unsigned umxd_cls_of(const struct umxd_flow *fl, unsigned r)
{
    if (fl->established)
        return umxd_cls_established(r);
    return fl->answered ? umxd_cls_answered(r) : umxd_cls_unanswered(r);
}

/* An attach pin to every program attached to a route (fanout). */
#define UMXD_ATTACH_FANOUT 0xffffu

/* Another worker's flow that owns a roaming key. */
struct umxd_roam_ref {
    uint32_t worker, idx, gen;
};

/* What the engine asks the world. Every function may be NULL: then the
 * answer is "no" (no attached programs, no other workers), except
 * backend_up, which is then "every backend is up". */
struct umxd_env {
    void *ctx;
    /* A backend of the route in stats slot `slot` may take new flows. */
    int (*backend_up)(void *ctx, unsigned slot, unsigned backend, uint64_t now);
    /* The route in `slot` is drained (udpmuxctl drain): no new flows. */
    int (*drained)(void *ctx, unsigned slot);
    /* Flows the route in `slot` holds on this worker (max-flows). */
    uint64_t (*route_flows)(void *ctx, unsigned slot);
    /* A peer answering a datagram an attached program sent: 0 and the
     * program (client, cgen) and its route's name, or -ENOENT. */
    int (*attach_find)(void *ctx, const struct sockaddr *peer, uint16_t *client, uint32_t *cgen,
                       char *route, size_t routelen);
    /* The attached program(s) holding a route: 0 or -ENOENT. */
    int (*attach_pick)(void *ctx, const char *route, const struct sockaddr *peer, uint16_t *client,
                       uint32_t *cgen);
    /* A roaming key learnt by another worker: 0 and its flow, or -ENOENT. */
    int (*roam_find)(void *ctx, const uint8_t *key, size_t klen, struct umxd_roam_ref *out);
    /* Key lengths other workers learnt (bit n: n-byte QUIC ids; bit 0:
     * WireGuard). */
    uint32_t (*roam_lens)(void *ctx);
};

/* Per-prefix token buckets: bounded (direct-mapped) whatever the number
 * of spoofed sources. */
#define UMXD_RATE_SLOTS 8192
struct umxd_rate_slot {
    uint64_t key;
    uint64_t last_ns;
    uint32_t tokens; /* in thousandths */
};

/* Flows per source prefix (same prefixes as the token buckets): a
 * direct-mapped table of counters, so memory stays bounded; prefixes that
 * share a slot share its count (they can only be refused earlier). */
#define UMXD_PREFIX_SLOTS 16384
struct umxd_prefix_slot {
    uint32_t flows;
};

/* Sessions that outlive flows: what a backend taught about a WireGuard or
 * OpenVPN session (its key) and which backend owns it, kept for the
 * protocol's session lifetime after the flow idles out, so the client's
 * next datagram reaches its server without a new handshake. 2-way set
 * associative by keyed hash; a full set replaces the entry that expires
 * first. */
#define UMXD_SESSION_SETS 2048
#define UMXD_SESSION_WAYS 2
struct umxd_session {
    uint64_t expires_ns; /* 0: free */
    uint8_t key[UMX_ROAM_MAX];
    uint8_t klen;
    uint8_t backend;
    uint16_t slot; /* the route's stable slot (survives reloads) */
};
/* WireGuard keys are rejected 180 s after their handshake (REJECT_AFTER_TIME);
 * OpenVPN renegotiates after an hour by default (reneg-sec 3600) and keeps
 * its peer-id across renegotiations. */
#define UMXD_SESSION_WG_NS (180ull * 1000000000ull)
#define UMXD_SESSION_OVPN_NS (3600ull * 1000000000ull)

/* One worker's decision state. The caller owns every pointer. */
struct umxd_engine {
    struct umx_ft *ft;
    const struct umxd_routeset *rs;
    struct umx_probe_state *pstate; /* may be NULL: probes decide on one datagram */
    const uint8_t *hashkey;         /* 16 bytes: rate buckets, rendezvous */
    const struct umxd_env *env;
    int self;           /* this worker's id (roaming references) */
    uint32_t gen;       /* flow generation counter */
    uint32_t roam_lens; /* key lengths this worker learnt (or heard of) */
    unsigned budget;    /* new-flow cost units left in this batch, UINT_MAX: no limit */
    struct umxd_rate_slot *rate_flows; /* UMXD_RATE_SLOTS each */
    struct umxd_rate_slot *rate_replies;
    struct umxd_prefix_slot *prefix; /* UMXD_PREFIX_SLOTS, or NULL: no per-prefix cap */
    struct umxd_session *sessions;   /* UMXD_SESSION_SETS x WAYS, or NULL: none kept */
    /* per route of rs: the roaming protocols it can carry (its rule's
     * probes, 0 with roaming = no), and their union (umxd_engine_classes) */
    uint8_t protos[UMXD_MAX_ROUTES];
    unsigned all_protos;
    uint32_t prefix_cap; /* flows one prefix may hold in this table */
    /* QUIC-LB decoding (quiclb.h): this worker's AES context, made at
     * start-up; NULL: only plaintext server ids are decoded */
    struct umxd_qlb_aes *qlb;
};

/* New-flow budget per full receive batch, in cost units: a flow with its
 * own socket costs 3 (socket, connect, epoll_ctl), one on the shared
 * upstream socket 1 (see docs/benchmarks.md, "where the time goes"). */
#define UMXD_OVERLOAD_BUDGET 24
#define UMXD_COST_SOCKET 3
#define UMXD_COST_SHARED 1
/* The budget applies once the shared port has stayed backlogged (every
 * batch full) this long, or the kernel dropped datagrams: a burst of
 * legitimate clients (a restart) fills a few batches and is not an
 * overload. */
#define UMXD_OVERLOAD_AFTER_NS (50ull * 1000000ull)

/* What happens to a datagram from a peer. */
enum umxd_verdict_kind {
    UMXD_V_DROP,    /* why says why; route may be -1 */
    UMXD_V_HOLD,    /* a probe needs more datagrams of this peer: keep a copy */
    UMXD_V_FORWARD, /* to the flow's backend */
    UMXD_V_DELIVER, /* to the attached program the flow is pinned to */
    UMXD_V_FANOUT,  /* to every program attached to the route */
    UMXD_V_RELAY,   /* to another worker's flow (a roamed peer) */
    UMXD_V_BUILTIN, /* answered by the worker (echo, stun) */
};

/* How the destination was found. */
enum umxd_how {
    UMXD_HOW_NONE,
    UMXD_HOW_FLOW,    /* the peer's flow */
    UMXD_HOW_ROAMED,  /* a flow found by its session key: it moves to this address */
    UMXD_HOW_NEW,     /* a new flow (classification, attach pin or relay) */
    UMXD_HOW_PROBE,   /* classification, no flow (builtin, drop) */
    UMXD_HOW_SESSION, /* a new flow to the backend that owns the datagram's session */
};

struct umxd_verdict {
    enum umxd_verdict_kind kind;
    enum umxd_how how;
    enum umxd_drop why;      /* kind == UMXD_V_DROP */
    int route;               /* route index, -1 when none */
    int classified;          /* the probes ran on this datagram */
    int matched;             /* the route they matched, -1 if none */
    struct umx_flow *flow;   /* FLOW/ROAMED: the flow; NEW: NULL until created */
    struct umx_flow_key key; /* the peer's key (new flows, roaming moves) */
    int backend;             /* NEW forward: the backend chosen */
    uint16_t client;         /* NEW deliver/fanout: the program */
    uint32_t cgen;
    struct umxd_roam_ref ref; /* NEW relay: the owner */
    int pin;                  /* NEW deliver: a pin from the program's own send */
};

/* The verdict asks for a new flow. */
static inline int umxd_verdict_new(const struct umxd_verdict *v)
{
    return v->kind != UMXD_V_DROP && (v->how == UMXD_HOW_NEW || v->how == UMXD_HOW_SESSION);
}

/* What happens to a datagram from a flow's backend. */
struct umxd_reply_verdict {
    int deliver; /* 0: dropped, why says why */
    enum umxd_drop why;
    int follow_port;           /* unconnected upstream: the flow follows the backend's port */
    uint8_t key[UMX_ROAM_MAX]; /* a roaming key to learn (klen > 0) */
    size_t klen;
    int key_kind; /* UMX_ROAM_* */
};

/* Peer -> udpmuxd. d is one received datagram with its local address. May
 * spend admission state (token buckets, the batch's new-flow budget) and
 * feed the probes' reassembly state; never changes a flow. */
void umxd_decide(struct umxd_engine *e, const struct umx_rx_slot *d, uint64_t now,
                 struct umxd_verdict *v);

/* Backend -> peer, for flow f. Changes nothing. */
void umxd_decide_reply(const struct umxd_engine *e, struct umx_flow *f, const struct umx_rx_slot *d,
                       struct umxd_reply_verdict *v);

/* Flow-state changes that verdicts imply (no sockets). */

/* A new flow for verdict v (FORWARD, DELIVER, FANOUT or RELAY with how ==
 * NEW): inserted and filled in; up_fd is -1. NULL when the table is full
 * (every flow established). release is called for a flow the table evicts. */
struct umx_flow *umxd_flow_add(struct umxd_engine *e, const struct umxd_verdict *v,
                               const struct umx_rx_slot *d, unsigned listener, uint64_t now,
                               umx_ft_release_fn *release, void *arg);
/* A roamed flow takes the peer's new address (verdict how == ROAMED). */
int umxd_flow_move(struct umxd_engine *e, struct umx_flow *f, const struct umx_flow_key *k,
                   const struct umx_rx_slot *d);
/* A flow handed over by the previous process (upgrade) joins the table:
 * its prefix count, as umxd_flow_add would have. */
void umxd_flow_adopted(struct umxd_engine *e, struct umx_flow *f);
/* A flow leaves the table (expiry, eviction, removal): its prefix count. */
void umxd_flow_gone(struct umxd_engine *e, struct umx_flow *f);
/* A datagram from the peer on flow f: a datagram after the backend's answer
 * proves the peer receives what we send it (established). */
void umxd_flow_rx(struct umxd_engine *e, struct umx_flow *f, const uint8_t *buf, size_t len,
                  unsigned listener, uint64_t now);
/* A reply the engine let through (v->deliver): establishes the flow and
 * learns its roaming key. */
void umxd_flow_reply(struct umxd_engine *e, struct umx_flow *f, const struct umx_rx_slot *d,
                     const struct umxd_reply_verdict *v, uint64_t now);

/* Adopts e->rs: every route's timeout classes on the table and its roaming
 * protocols (after a route set switch). */
void umxd_engine_classes(struct umxd_engine *e);

/* Token bucket per source prefix (/24 for IPv4, /56 for IPv6): 1 if the
 * peer may go on. rate 0: no limit. */
int umxd_rate_ok(const uint8_t hashkey[16], struct umxd_rate_slot *tab, const struct sockaddr *peer,
                 uint32_t rate, uint32_t burst, uint64_t now);

/* The backend a new flow of this peer gets: rendezvous hashing on the
 * peer's address (not its port) over the backends that are up; -1 if none. */
int umxd_pick_backend(const struct umxd_engine *e, unsigned route, const struct sockaddr *peer,
                      uint64_t now);

/* Flows one source prefix may hold in a table of `capacity` flows:
 * `max-flows-per-prefix`, or by default a quarter of the table (at least
 * 64, so a small table still serves one busy NAT). 0: no cap. */
static inline uint32_t umxd_prefix_cap(const struct umxd_config *c, uint32_t capacity)
{
    uint32_t q = capacity / 4;
    if (c->max_flows_per_prefix != UINT32_MAX)
        return c->max_flows_per_prefix;
    return q < 64 ? 64 : q;
}

/* Copies a socket address into a sockaddr_in6-sized record. */
void umxd_store_addr(struct sockaddr_in6 *dst, const struct sockaddr_storage *src);

#endif
