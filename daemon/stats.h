/*
 * stats.h - every daemon counter, defined once (X-macro). The list generates
 * the struct fields, the names printed by `udpmuxctl stats` and the
 * Prometheus metric names. Counters are per worker (one writer each, no
 * atomics on the packet path beyond relaxed stores) and summed on request.
 *
 * X(field, "name", "help text")
 */
#ifndef UMXD_STATS_H
#define UMXD_STATS_H

#include <stdint.h>

#define UMXD_STATS(X)                                                                              \
    X(rx_datagrams, "rx.datagrams", "Datagrams received on the shared port")                       \
    X(rx_bytes, "rx.bytes", "Payload bytes received on the shared port")                           \
    X(rx_truncated, "rx.truncated", "Datagrams larger than the receive buffer, dropped")           \
    X(rx_errors, "rx.errors", "Receive errors on the shared port (ICMP-reported included)")        \
    X(rx_kernel_drops, "rx.kernel_drops", "Datagrams the kernel dropped for a full buffer")        \
    X(tx_datagrams, "tx.datagrams", "Datagrams sent from the shared port (replies)")               \
    X(tx_bytes, "tx.bytes", "Payload bytes sent from the shared port")                             \
    X(tx_errors, "tx.errors", "Send errors on the shared port")                                    \
    X(up_tx_datagrams, "upstream.tx.datagrams", "Datagrams forwarded to backends")                 \
    X(up_tx_bytes, "upstream.tx.bytes", "Payload bytes forwarded to backends")                     \
    X(up_tx_errors, "upstream.tx.errors", "Send errors towards backends")                          \
    X(up_rx_datagrams, "upstream.rx.datagrams", "Datagrams received from backends")                \
    X(up_rx_bytes, "upstream.rx.bytes", "Payload bytes received from backends")                    \
    X(up_rx_errors, "upstream.rx.errors", "Receive errors from backends (ECONNREFUSED...)")        \
    X(up_rx_foreign, "upstream.rx.foreign", "Datagrams from an address other than the backend")    \
    X(classified, "classify.runs", "Datagrams classified (new flows or classify-every routes)")    \
    X(unmatched, "classify.unmatched", "Datagrams that matched no route (dropped, no reply)")      \
    X(pending, "classify.pending", "Datagrams held while a probe waited for more (split QUIC)")    \
    X(dropped_action, "drop.action", "Datagrams dropped by a route with action = drop")            \
    X(dropped_rate, "drop.rate_limited", "New flows or replies refused by per-prefix rate limits") \
    X(dropped_table_full, "drop.table_full", "New flows refused because the flow table is full")   \
    X(dropped_route_full, "drop.route_full", "New flows refused by a route's max-flows")           \
    X(dropped_prefix_full, "drop.prefix_full",                                                     \
      "New flows refused because their source prefix holds its share of the table")                \
    X(dropped_no_backend, "drop.no_backend", "New flows refused because every backend is down")    \
    X(dropped_socket, "drop.socket", "New flows refused because no upstream socket could be made") \
    X(dropped_unclaimed, "drop.unclaimed", "Attach-route datagrams with no attached program")      \
    X(dropped_stun_size, "drop.stun_too_small",                                                    \
      "STUN requests too small to answer without amplification")                                   \
    X(dropped_attach, "drop.attach_full",                                                          \
      "Datagrams lost because an attached program's socket was full")                              \
    X(dropped_unknown_session, "drop.unknown_session",                                             \
      "Mid-session datagrams (WireGuard data, OpenVPN) of no known session that several routes "   \
      "could carry: never pinned to one by resemblance")                                           \
    X(flows_created, "flows.created", "Flows created")                                             \
    X(flows_expired, "flows.expired", "Flows closed by idle timeout")                              \
    X(flows_evicted, "flows.evicted", "Unanswered flows evicted to make room")                     \
    X(flows_closed, "flows.closed", "Flows closed for other reasons (reload, detach, drain)")      \
    X(flows_roamed, "flows.roamed", "Flows that followed a peer to a new address")                 \
    X(stun_replies, "builtin.stun_replies", "STUN binding responses sent")                         \
    X(echo_replies, "builtin.echo_replies", "Echo replies sent")                                   \
    X(gso_sends, "gso.sends", "sendmsg calls that carried several datagrams with UDP GSO")         \
    X(backend_down, "backend.marked_down", "Times a backend was marked down (passive or active)")  \
    X(reloads_seen, "reload.applied", "Route sets a worker switched to")                           \
    X(roam_relayed, "roam.relayed",                                                                \
      "Datagrams of a roamed peer handed to the worker owning its flow through a mailbox")         \
    X(kernel_filtered, "kernel.filtered",                                                          \
      "Datagrams the reuseport program dropped: a peer with no flow, a first byte no route takes") \
    X(kernel_by_peer, "kernel.steered_peer",                                                       \
      "Datagrams the reuseport program gave to the worker holding the peer's flows")               \
    X(kernel_by_hint, "kernel.steered_roaming",                                                    \
      "Datagrams the reuseport program gave to the worker owning their roaming key")               \
    X(kernel_refused, "kernel.refused",                                                            \
      "Datagrams the reuseport program found no worker socket for")                                \
    X(foreign_sockets, "guard.foreign_sockets",                                                    \
      "Sockets on a listen port that udpmuxd did not create, each counted once when first seen")

struct umxd_stats {
#define UMXD_STATS_FIELD(f, n, h) uint64_t f;
    UMXD_STATS(UMXD_STATS_FIELD)
#undef UMXD_STATS_FIELD
};

/* Per-route counters (indexed by the route's stable slot, see udpmuxd.h). */
#define UMXD_ROUTE_STATS(X)                                                                        \
    X(rx_datagrams, "rx.datagrams", "Datagrams from peers on this route")                          \
    X(rx_bytes, "rx.bytes", "Payload bytes from peers on this route")                              \
    X(tx_datagrams, "tx.datagrams", "Datagrams sent back to peers on this route")                  \
    X(tx_bytes, "tx.bytes", "Payload bytes sent back to peers on this route")                      \
    X(matched, "classify.matched", "Datagrams this route's rule matched")                          \
    X(flows_created, "flows.created", "Flows created on this route")                               \
    X(drops, "drops", "Datagrams dropped on this route (action drop, limits, errors)")             \
    X(drop_action, "drop.action", "Dropped by the route's action = drop")                          \
    X(drop_rate, "drop.rate_limited", "New flows or replies refused by rate limits")               \
    X(drop_table_full, "drop.table_full", "New flows refused because the flow table is full")      \
    X(drop_route_full, "drop.route_full", "New flows refused by the route's max-flows")            \
    X(drop_prefix_full, "drop.prefix_full", "New flows refused: their source prefix is full")      \
    X(drop_no_backend, "drop.no_backend", "New flows refused: route drained or no backend up")     \
    X(drop_socket, "drop.socket", "New flows refused: no upstream socket could be made")           \
    X(drop_unclaimed, "drop.unclaimed", "Attach-route datagrams with no attached program")         \
    X(drop_stun_size, "drop.stun_too_small", "STUN requests too small to answer")                  \
    X(drop_send, "drop.send_error", "Datagrams lost to send errors towards a backend")             \
    X(drop_attach, "drop.attach_full", "Datagrams lost to an attached program's full socket")      \
    X(drop_unknown_session, "drop.unknown_session", "Mid-session datagrams of no known session")

struct umxd_route_stats {
#define UMXD_RSTATS_FIELD(f, n, h) uint64_t f;
    UMXD_ROUTE_STATS(UMXD_RSTATS_FIELD)
#undef UMXD_RSTATS_FIELD
    uint64_t active_flows; /* gauge */
};

/* Per-backend counters, per worker, indexed by the route's stable slot and
 * the backend's index in `forward =` (both capped: UMXD_MAX_SLOTS x
 * UMXD_MAX_BACKENDS rows, allocated with the worker). A reload that keeps
 * the route and the backend's address keeps the row (the worker moves it
 * to the backend's new index, remap_backend_stats() in daemon/path/act.c);
 * a new address starts from zero. "tx" is towards the backend, "rx" from
 * it, the direction udpmuxd sends and receives on the upstream socket.
 * A datagram lost on its way counts in tx.dropped with its bytes, never
 * as a datagram of 0 bytes. */
#define UMXD_BACKEND_STATS(X)                                                                      \
    X(tx_datagrams, "tx.datagrams", "Datagrams sent to this backend")                              \
    X(tx_bytes, "tx.bytes", "Payload bytes sent to this backend")                                  \
    X(tx_dropped, "tx.dropped", "Datagrams for this backend lost to send errors")                  \
    X(tx_dropped_bytes, "tx.dropped_bytes", "Payload bytes of datagrams lost to send errors")      \
    X(rx_datagrams, "rx.datagrams", "Datagrams from this backend passed on to peers")              \
    X(rx_bytes, "rx.bytes", "Payload bytes from this backend passed on to peers")                  \
    X(flows_created, "flows.created", "Flows created to this backend")

struct umxd_backend_stats {
#define UMXD_BSTATS_FIELD(f, n, h) uint64_t f;
    UMXD_BACKEND_STATS(UMXD_BSTATS_FIELD)
#undef UMXD_BSTATS_FIELD
    uint64_t active_flows; /* gauge */
};

/* Drop reasons, defined once: each names its global counter and, for drops
 * that belong to a route, the route's counter (every route drop also counts
 * in the route's `drops`). The packet path's act step counts a drop in one
 * place (count_drop() in daemon/path/act.c); udpmuxctl classify prints the
 * reason's name.
 *
 * X(ENUM, global field, route field, "name")   route field NONE: no route */
#define UMXD_DROPS(X)                                                                              \
    X(UNMATCHED, unmatched, NONE, "unmatched")                                                     \
    X(HOLD_FULL, unmatched, NONE, "hold_full")                                                     \
    X(ACTION, dropped_action, drop_action, "action")                                               \
    X(RATE, dropped_rate, drop_rate, "rate_limited")                                               \
    X(TABLE_FULL, dropped_table_full, drop_table_full, "table_full")                               \
    X(ROUTE_FULL, dropped_route_full, drop_route_full, "route_full")                               \
    X(PREFIX_FULL, dropped_prefix_full, drop_prefix_full, "prefix_full")                           \
    X(NO_BACKEND, dropped_no_backend, drop_no_backend, "no_backend")                               \
    X(SOCKET, dropped_socket, drop_socket, "socket")                                               \
    X(UNCLAIMED, dropped_unclaimed, drop_unclaimed, "unclaimed")                                   \
    X(STUN_SIZE, dropped_stun_size, drop_stun_size, "stun_too_small")                              \
    X(SEND, up_tx_errors, drop_send, "send_error")                                                 \
    X(ATTACH_FULL, dropped_attach, drop_attach, "attach_full")                                     \
    X(RELAY, up_tx_errors, drop_send, "relay_full")                                                \
    X(UNKNOWN_SESSION, dropped_unknown_session, drop_unknown_session, "unknown_session")           \
    X(TRUNCATED, rx_truncated, NONE, "truncated")                                                  \
    X(FOREIGN, up_rx_foreign, NONE, "foreign")

enum umxd_drop {
#define UMXD_DROP_ENUM(e, g, r, n) UMXD_DROP_##e,
    UMXD_DROPS(UMXD_DROP_ENUM)
#undef UMXD_DROP_ENUM
        UMXD_DROP_COUNT
};

/* Payload bytes of dropped datagrams, by reason (the datagram counts are in
 * struct umxd_stats): per worker, summed on request. */
struct umxd_drop_bytes {
    uint64_t bytes[UMXD_DROP_COUNT];
};

#endif
