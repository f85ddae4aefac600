/*
 * udpmux.h - the only public header of libudpmux.
 *
 * One UDP port, many handlers: a mux owns one socket per bound address and
 * dispatches every received datagram to the first handler whose rule matches
 * its content (protocol probes and generic byte/length/source rules). Every
 * role of the program (server answering peers, client sending its own
 * requests) uses the same socket, so replies leave from the port and the
 * local address the peer used.
 *
 * Conventions for every function below:
 * - Return 0 (or a non-negative count/index) on success and a negative errno
 *   on failure. The library never logs, prints, exits or aborts.
 * - Handles are opaque; whatever the library allocates the caller frees with
 *   the matching _free function, which accepts NULL.
 * - A call that fails synchronously never invokes a callback.
 * - Unless a function says otherwise it is NOT thread-safe: call it from the
 *   thread that runs udpmux_process()/udpmux_run() for that mux.
 */
#ifndef UDPMUX_H
#define UDPMUX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(UDPMUX_BUILDING) && defined(__GNUC__)
#define UDPMUX_API __attribute__((visibility("default")))
#else
#define UDPMUX_API
#endif

#define UDPMUX_VERSION_MAJOR 0
#define UDPMUX_VERSION_MINOR 1
#define UDPMUX_VERSION_PATCH 0
#define UDPMUX_VERSION_STRING "0.1.0"

/** Largest UDP payload over IPv4 (65535 - 20 - 8) and over IPv6 (65535 - 8). */
#define UDPMUX_MAX_DGRAM_V4 65507
#define UDPMUX_MAX_DGRAM_V6 65527

/** Returns the library version string ("0.1.0"). Thread-safe. */
UDPMUX_API const char *udpmux_version(void);

/** Formats a negative udpmux return value as text (strerror-like, never NULL;
 *  any int, positive or INT_MIN included: "Unknown error" for numbers that
 *  are no errno). Thread-safe; the string is static. */
UDPMUX_API const char *udpmux_strerror(int err);

/* ------------------------------------------------------------------------ */
/* Rules                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Rule syntax (shared by udpmux_add_handler(), udpmux_rule_compile(), the
 * daemon's `match =` key and `udpmuxctl classify`). A rule is one or more
 * terms separated by " and " (or "&&"); all terms must match (all-of):
 *
 *   any                      matches every datagram (also the empty one)
 *   bytes OFF HEX [mask HEX] bytes at offset OFF equal HEX (after AND with mask)
 *   prefix HEX               same as `bytes 0 HEX`
 *   len MIN..MAX | len N     payload length range (either bound may be empty)
 *   from CIDR                source address in CIDR (IPv4 or IPv6; v4-mapped
 *                            IPv6 peers match IPv4 CIDRs)
 *   port A..B | port N       source port range
 *   regex "PCRE2"            PCRE2 (JIT) search over the payload; inside the
 *                            quotes \xHH, \0, \n ... are passed to PCRE2 as
 *                            written, so binary bytes (including NUL) work
 *   PROBE [key=value ...]    a built-in protocol probe, e.g. `dns`,
 *                            `quic sni=*.example.org alpn=h3`,
 *                            `wireguard pubkey=BASE64`, `stun username=abc:*`
 *   not TERM                 negation of one term
 *
 * HEX is hex digits, optionally with a 0x prefix and ':' or ' ' separators
 * inside quotes. Parsing is strict: unknown words, trailing garbage and
 * out-of-range numbers are errors with a message naming the column.
 */

/** A compiled, immutable rule. Safe to share between threads for matching. */
struct udpmux_rule;

/** What a rule sees of one datagram. */
struct udpmux_match_input {
    const uint8_t *data;         /**< payload (may be NULL when len is 0) */
    size_t len;                  /**< payload length in bytes */
    const struct sockaddr *peer; /**< source address, may be NULL (`from`/`port` then fail) */
    uint64_t now_ns;             /**< monotonic time, used by stateful probes */
};

/**
 * Compiles rule text into *out. err/errlen (optional) receive a one-line
 * message with the column of the first error.
 * Errors: -EINVAL (syntax, unknown probe or parameter), -ENOMEM,
 * -ENOENT (a file named by a probe parameter is missing), -E2BIG (too many
 * terms). Thread-safe.
 */
UDPMUX_API int udpmux_rule_compile(struct udpmux_rule **out, const char *text, char *err,
                                   size_t errlen);

/** Returns 1 if the rule matches, 0 if not. Never fails. Thread-safe on a
 *  compiled rule (no hidden mutable state). */
UDPMUX_API int udpmux_rule_match(const struct udpmux_rule *rule,
                                 const struct udpmux_match_input *in);

/** Frees a rule (NULL is fine). */
UDPMUX_API void udpmux_rule_free(struct udpmux_rule *rule);

/** Number of built-in probes, and the name of probe i (NULL past the end),
 *  in the default order. Thread-safe. */
UDPMUX_API size_t udpmux_probe_count(void);
UDPMUX_API const char *udpmux_probe_name(size_t i);

/**
 * Classifies a datagram with the built-in probes in their default order and
 * returns the index of the first probe that matches (use udpmux_probe_name),
 * or -ENOENT when none does. Thread-safe.
 */
UDPMUX_API int udpmux_probe_classify(const uint8_t *data, size_t len);

/* ------------------------------------------------------------------------ */
/* The mux                                                                  */
/* ------------------------------------------------------------------------ */

struct udpmux;

/** One received datagram, lent to a handler for the duration of the
 *  callback only: copy what you need to keep. */
struct udpmux_dgram {
    const uint8_t *data;         /**< payload; never NULL (points to a valid buffer) */
    size_t len;                  /**< payload length; 0 is a valid datagram */
    const struct sockaddr *peer; /**< source address and port */
    socklen_t peer_len;
    const struct sockaddr *local; /**< the local address the datagram was sent to
                                       (from IP_PKTINFO/IPV6_PKTINFO), port included */
    socklen_t local_len;
    int ifindex;  /**< interface it arrived on (0 if unknown) */
    int endpoint; /**< index of the endpoint that received it */
    int handler;  /**< id of the handler being called (-1: default) */
};

/**
 * Handler callback. May call udpmux_send()/udpmux_reply() and any other mux
 * function except udpmux_free(). Adding or removing handlers from inside a
 * callback takes effect from the next datagram.
 */
typedef void udpmux_handler_fn(struct udpmux *mux, const struct udpmux_dgram *dgram, void *arg);

/** Timer callback; see udpmux_timer_add(). */
typedef void udpmux_timer_fn(struct udpmux *mux, void *arg);

/** Mux settings. Fill with udpmux_config_init() first, then override. */
struct udpmux_config {
    unsigned batch;         /**< datagrams per recvmmsg/sendmmsg (default 32, 1..1024) */
    size_t max_dgram;       /**< receive buffer per slot (default 65535: nothing
                                 legal is truncated; smaller values count truncations) */
    unsigned max_handlers;  /**< cap on handlers (default 64) */
    unsigned max_timers;    /**< cap on pending timers (default 256) */
    unsigned max_endpoints; /**< cap on bound endpoints (default 16) */
    int rcvbuf;             /**< SO_RCVBUF for endpoints, 0 keeps the kernel default */
    int sndbuf;             /**< SO_SNDBUF for endpoints, 0 keeps the kernel default */
};

/** Fills cfg with the defaults documented above. */
UDPMUX_API void udpmux_config_init(struct udpmux_config *cfg);

/**
 * Creates a mux with no endpoint. cfg may be NULL for the defaults. All
 * receive buffers are allocated here; nothing allocates per datagram.
 * Errors: -EINVAL (a config value out of range), -ENOMEM, or a negative
 * errno from epoll_create1()/eventfd().
 */
UDPMUX_API int udpmux_new(struct udpmux **out, const struct udpmux_config *cfg);

/** Closes every endpoint and frees the mux (NULL is fine). Not from a callback. */
UDPMUX_API void udpmux_free(struct udpmux *mux);

/** Flags for udpmux_bind(). */
enum udpmux_bind_flags {
    /** Join a same-user SO_REUSEPORT group (the kernel spreads datagrams by
     *  4-tuple hash). Off by default: the port is exclusive. */
    UDPMUX_BIND_REUSEPORT = 1u << 0,
    /** For an IPv6 wildcard or address: also accept IPv4 (IPV6_V6ONLY=0).
     *  Without it IPv6 sockets are v6-only, set explicitly. */
    UDPMUX_BIND_DUALSTACK = 1u << 1,
    /** Multicast sharing: SO_REUSEADDR so several listeners on this host can
     *  join the same group and each gets a copy. Only allowed when binding a
     *  multicast group address or together with udpmux_join(); unicast
     *  binds refuse it with -EINVAL because it lets other users hijack the port. */
    UDPMUX_BIND_MULTICAST = 1u << 2,
};

/**
 * Binds a new endpoint. addr is "IPv4:port", "[IPv6]:port" ("[::]:443",
 * "0.0.0.0:53", "127.0.0.1:0" for an ephemeral port). The socket is
 * non-blocking, close-on-exec, with IP_PKTINFO/IPV6_RECVPKTINFO and
 * IP_MULTICAST_ALL=0, and without SO_REUSEADDR/SO_REUSEPORT unless flags ask.
 * Returns the endpoint index (>= 0).
 * Errors: -EINVAL (bad address or flags), -EADDRINUSE (see udpmux_who_holds()),
 * -EACCES, -ENOSPC (max_endpoints reached), other socket errnos.
 */
UDPMUX_API int udpmux_bind(struct udpmux *mux, const char *addr, unsigned flags);

/** Same as udpmux_bind() with a sockaddr. */
UDPMUX_API int udpmux_bind_addr(struct udpmux *mux, const struct sockaddr *sa, socklen_t salen,
                                unsigned flags);

/**
 * Adopts an already bound UDP socket (socket activation, fd passing). The
 * mux takes ownership of fd (it closes it in udpmux_free()) only on success.
 * Sets O_NONBLOCK and the PKTINFO options. Returns the endpoint index.
 * Errors: -EBADF, -ENOTSOCK, -EPROTOTYPE (not a datagram socket), -ENOSPC.
 */
UDPMUX_API int udpmux_adopt_fd(struct udpmux *mux, int fd);

/** The socket of an endpoint (for getsockname, extra options). The mux keeps
 *  ownership. Errors: -EINVAL for a bad index. */
UDPMUX_API int udpmux_endpoint_fd(const struct udpmux *mux, int endpoint);

/** Writes the bound local address of an endpoint (port resolved). */
UDPMUX_API int udpmux_endpoint_addr(const struct udpmux *mux, int endpoint,
                                    struct sockaddr_storage *out, socklen_t *outlen);

/** Joins multicast group `group` ("239.1.2.3" or "ff02::1:3") on endpoint,
 *  on interface ifname (NULL: the kernel's choice). Errors: -EINVAL,
 *  -EAFNOSUPPORT (family mismatch), -ENODEV, other setsockopt errnos. */
UDPMUX_API int udpmux_join(struct udpmux *mux, int endpoint, const char *group, const char *ifname);

/**
 * Registers a handler for datagrams that match rule_text (see Rules).
 * Handlers are tried in registration order; the first match wins. name is
 * copied (used in counters; may be NULL). Returns the handler id (>= 0).
 * The slot of a removed handler is reused, with a new id: an id names one
 * registration only, and a stale id (of a removed handler) gets -ENOENT
 * instead of reaching the handler that took its slot (ids repeat only after
 * the same slot was reused 32768 times).
 *
 * Probes that need several datagrams of a peer to decide (a QUIC
 * ClientHello split over Initials, `quic sni=...`) get them: such a
 * datagram is held (at most 16, up to 2048 bytes each, for 3 s; counted in
 * rx_held and rx_hold_dropped) and handed to the handler that the next
 * datagram of the same peer decides on, before that datagram and in the
 * order received.
 * Errors: -EINVAL (rule syntax; err/errlen get the message), -ENOSPC
 * (max_handlers live at once), -ENOMEM.
 */
UDPMUX_API int udpmux_add_handler(struct udpmux *mux, const char *name, const char *rule_text,
                                  udpmux_handler_fn *fn, void *arg, char *err, size_t errlen);

/** Same with a compiled rule; the mux takes ownership of rule on success. */
UDPMUX_API int udpmux_add_handler_rule(struct udpmux *mux, const char *name,
                                       struct udpmux_rule *rule, udpmux_handler_fn *fn, void *arg);

/** Removes handler id; its slot (not its id) is reused by a later add.
 *  Errors: -ENOENT (no live handler has this id). */
UDPMUX_API int udpmux_remove_handler(struct udpmux *mux, int id);

/** Sets the handler for datagrams that no rule matches (NULL: drop and
 *  count them as unmatched, which is the default). */
UDPMUX_API void udpmux_set_default(struct udpmux *mux, udpmux_handler_fn *fn, void *arg);

/** One datagram to send. */
struct udpmux_msg {
    const void *data;
    size_t len;
    const struct sockaddr *peer; /**< destination */
    socklen_t peer_len;
    const struct sockaddr *local; /**< source address to use (e.g. dgram->local of the
                                       request), or NULL for the kernel's choice; the
                                       port is ignored (it is the endpoint's) */
    socklen_t local_len;
    int ifindex;  /**< outgoing interface hint for `local`, 0: none */
    int endpoint; /**< endpoint to send from, or -1: the first one whose
                       family can reach peer */
};

/**
 * Sends one datagram from the mux's port. Thread-safe: may be called from
 * any thread and from inside a handler, also while the loop thread binds or
 * adopts a new endpoint (a send sees the endpoints as they were either
 * before or after that call; an endpoint index is valid once the bind
 * returned it). The caller keeps ownership of the
 * buffers; they are handed to the kernel before the call returns. There is
 * no hidden queue: a full socket buffer returns -EAGAIN (counted).
 * Errors: -EINVAL, -EAFNOSUPPORT (no endpoint of the peer's family),
 * -EAGAIN/-ENOBUFS (back-pressure), -EMSGSIZE, other sendmsg errnos.
 */
UDPMUX_API int udpmux_send(struct udpmux *mux, const struct udpmux_msg *msg);

/**
 * Sends up to n datagrams with as few sendmmsg() calls as possible. Returns
 * how many were handed to the kernel (a prefix of msgs), or a negative errno
 * if the first one failed. Thread-safe.
 */
UDPMUX_API int udpmux_send_batch(struct udpmux *mux, const struct udpmux_msg *msgs, unsigned n);

/**
 * Replies to a received datagram: same endpoint, destination = its peer,
 * source address = the local address it was sent to. Use inside a handler
 * (dgram is only valid there). Errors as udpmux_send().
 */
UDPMUX_API int udpmux_reply(struct udpmux *mux, const struct udpmux_dgram *dgram, const void *data,
                            size_t len);

/* Loop integration ------------------------------------------------------- */

/** One pollable fd (an epoll set over every endpoint and the wake-up
 *  eventfd): readable when udpmux_process() has work. */
UDPMUX_API int udpmux_fd(const struct udpmux *mux);

/**
 * Receives and dispatches up to `budget` datagrams (0: one batch per
 * endpoint), runs due timers, and returns the number of datagrams handled
 * (0 when nothing was pending). Each endpoint gets a fair share of the
 * budget so one flooded address cannot starve another. Socket errors such
 * as ICMP-reported ECONNREFUSED are counted and do not stop the loop.
 * Errors: -EBUSY if called recursively from a callback.
 */
UDPMUX_API int udpmux_process(struct udpmux *mux, unsigned budget);

/** Milliseconds until the next timer is due (0: due now), or -1 if none. */
UDPMUX_API int udpmux_next_timeout(const struct udpmux *mux);

/** Runs a blocking loop (epoll_wait + udpmux_process) until udpmux_stop().
 *  Returns 0 after a stop, or a negative errno from epoll_wait. */
UDPMUX_API int udpmux_run(struct udpmux *mux);

/** Asks udpmux_run() to return. Thread-safe and async-signal-safe. */
UDPMUX_API void udpmux_stop(struct udpmux *mux);

/**
 * Calls fn(mux, arg) once, after delay_ms milliseconds, from udpmux_process().
 * Returns a timer id (>= 0). Once the timer fired or was cancelled its id is
 * spent: a later timer that reuses the slot gets a new id, and cancelling
 * the old one returns -ENOENT (ids repeat only after 32768 reuses of the
 * same slot). Errors: -ENOSPC (max_timers), -EINVAL.
 */
UDPMUX_API int udpmux_timer_add(struct udpmux *mux, unsigned delay_ms, udpmux_timer_fn *fn,
                                void *arg);

/** Cancels a pending timer. Errors: -ENOENT (not pending: fired, cancelled
 *  or never added). */
UDPMUX_API int udpmux_timer_cancel(struct udpmux *mux, int id);

/* Counters ---------------------------------------------------------------- */

/** Mux counters: a snapshot, readable at any time from any thread (each
 *  field is read atomically; fields are not a consistent set). */
struct udpmux_stats {
    uint64_t rx_datagrams; /**< datagrams received (whole ones) */
    uint64_t rx_bytes;
    uint64_t rx_truncated;    /**< larger than max_dgram: dropped, never delivered */
    uint64_t rx_errors;       /**< recvmmsg errors (ICMP-reported errors included) */
    uint64_t rx_unmatched;    /**< no rule matched */
    uint64_t rx_default;      /**< handed to the default handler */
    uint64_t rx_kernel_drops; /**< SO_RXQ_OVFL: dropped by the kernel for a full buffer */
    uint64_t tx_datagrams;
    uint64_t tx_bytes;
    uint64_t tx_errors;       /**< sends that failed other than back-pressure */
    uint64_t tx_again;        /**< sends refused for back-pressure (EAGAIN/ENOBUFS) */
    uint64_t rx_held;         /**< datagrams held until a later one of the same peer decided
                                   (a QUIC ClientHello split over several Initials) */
    uint64_t rx_hold_dropped; /**< held datagrams dropped: the pool (16) was full, or no
                                   decision came within 3 s */
};

UDPMUX_API void udpmux_get_stats(const struct udpmux *mux, struct udpmux_stats *out);

/** Datagrams dispatched to handler id so far; -ENOENT for an unknown id. */
UDPMUX_API int64_t udpmux_handler_count(const struct udpmux *mux, int id);

/* Who holds a port ---------------------------------------------------------- */

/** One socket bound to a port, found with sock_diag and /proc. */
struct udpmux_holder {
    struct sockaddr_storage addr; /**< its bound address */
    uint32_t uid;
    int pid;       /**< -1 if the owning process is not visible */
    char comm[64]; /**< program name, "" if unknown */
    int reuseaddr; /**< SO_REUSEADDR set (1), not set (0), unknown (-1) */
    int reuseport; /**< SO_REUSEPORT set (1), not set (0), unknown (-1) */
};

/**
 * Lists the UDP sockets bound to the port of sa (any address of the same
 * family, and dual-stack IPv6 sockets for IPv4) into out[0..max-1] and
 * returns how many were found (may exceed max; only max are written).
 * Use it after -EADDRINUSE to tell the user who holds the port. Reading other
 * users' processes needs privileges; what is not visible is reported as
 * unknown. Errors: -EINVAL, errnos from the netlink socket. Thread-safe.
 */
UDPMUX_API int udpmux_who_holds(const struct sockaddr *sa, struct udpmux_holder *out, unsigned max);

/** Formats a holder as one line of text ("pid 123 (dnsmasq) uid 0 on
 *  0.0.0.0:53, SO_REUSEADDR=no SO_REUSEPORT=no"). Returns the length that
 *  would have been written (snprintf semantics; buf may be NULL when buflen
 *  is 0). Any field values are fine (a comm without NUL, reuse flags other
 *  than -1/0/1 print as "unknown"). Errors: -EINVAL for a NULL h, or a NULL
 *  buf with buflen > 0. Thread-safe. */
UDPMUX_API int udpmux_holder_format(const struct udpmux_holder *h, char *buf, size_t buflen);

/* Address helpers ----------------------------------------------------------- */

/** Parses "1.2.3.4:80", "[::1]:80" (port required) into out. Errors: -EINVAL. */
UDPMUX_API int udpmux_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *outlen);

/** Formats an address as "1.2.3.4:80" or "[::1]:80"; snprintf semantics. */
UDPMUX_API int udpmux_format_addr(const struct sockaddr *sa, char *buf, size_t buflen);

/* Attach client (see the daemon's `action = attach` routes) ------------------ */

struct udpmux_attach;

/**
 * Connects to udpmuxd's attach socket at path and claims route `route`.
 * On success the daemon forwards every datagram of that route (and replies
 * to datagrams this program sends) to the handle. The peer credentials are
 * checked by the daemon against the route's `allow =` list.
 * Errors: -ENOENT/-ECONNREFUSED (no daemon), -EACCES (not allowed),
 * -EBUSY (route already held), -ENOENT (no such attach route), -EUSERS
 * (the daemon's attach slots are full, for this user or in total: try
 * again later), -ETIMEDOUT (no answer within 5 s), -EPROTO.
 */
UDPMUX_API int udpmux_attach(struct udpmux_attach **out, const char *path, const char *route);

/** Closes the attachment (the daemon frees its flows at once). NULL is fine. */
UDPMUX_API void udpmux_attach_close(struct udpmux_attach *att);

/** The pollable fd of an attachment (readable when datagrams are pending). */
UDPMUX_API int udpmux_attach_fd(const struct udpmux_attach *att);

/**
 * Receives up to n datagrams without blocking into caller-provided slots.
 * Each slot's data must point to a buffer of at least `cap` bytes set by the
 * caller in dgrams[i].len before the call; on return len is the payload size
 * and peer/local point into storage owned by the handle, valid until the next
 * receive call. Returns the number received (0: none pending), or -errno.
 * -ECONNRESET means the daemon went away.
 */
struct udpmux_attach_dgram {
    uint8_t *data;
    size_t len;
    struct sockaddr_storage peer;
    struct sockaddr_storage local;
};
UDPMUX_API int udpmux_attach_recv(struct udpmux_attach *att, struct udpmux_attach_dgram *dgrams,
                                  unsigned n);

/** Sends datagrams to peers from the shared port (local may be zeroed: the
 *  daemon picks the listener of the peer's family). Returns the number
 *  accepted, or -errno. */
UDPMUX_API int udpmux_attach_send(struct udpmux_attach *att,
                                  const struct udpmux_attach_dgram *dgrams, unsigned n);

#ifdef __cplusplus
}
#endif

#endif /* UDPMUX_H */
