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
    X(dropped_no_backend, "drop.no_backend", "New flows refused because every backend is down")    \
    X(dropped_socket, "drop.socket", "New flows refused because no upstream socket could be made") \
    X(dropped_unclaimed, "drop.unclaimed", "Attach-route datagrams with no attached program")      \
    X(dropped_stun_size, "drop.stun_too_small",                                                    \
      "STUN requests too small to answer without amplification")                                   \
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
    X(drop_no_backend, "drop.no_backend", "New flows refused: route drained or no backend up")     \
    X(drop_socket, "drop.socket", "New flows refused: no upstream socket could be made")           \
    X(drop_unclaimed, "drop.unclaimed", "Attach-route datagrams with no attached program")         \
    X(drop_stun_size, "drop.stun_too_small", "STUN requests too small to answer")                  \
    X(drop_send, "drop.send_error", "Datagrams lost to send errors towards a backend")

struct umxd_route_stats {
#define UMXD_RSTATS_FIELD(f, n, h) uint64_t f;
    UMXD_ROUTE_STATS(UMXD_RSTATS_FIELD)
#undef UMXD_RSTATS_FIELD
    uint64_t active_flows; /* gauge */
};

#endif
