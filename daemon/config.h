/*
 * config.h - udpmuxd's configuration: the INI file (daemon/conf/), the
 * quick mode command line, validation with file:line messages, and the
 * resolved printout of `udpmuxd -T`.
 *
 * The loader builds a complete new struct and either returns it whole or
 * fails: a reload never applies half a config.
 */
#ifndef UMXD_CONFIG_H
#define UMXD_CONFIG_H

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "udpmux.h"

#define UMXD_MAX_ROUTES 64
#define UMXD_MAX_BACKENDS 16
#define UMXD_MAX_LISTEN 16
#define UMXD_MAX_ALLOW 16
#define UMXD_NAME_MAX 64
#define UMXD_RULE_MAX 1024
/* busy-poll = US upper bound (1 ms): see umxd_config.busy_poll_us */
#define UMXD_BUSY_POLL_MAX_US 1000

enum umxd_action {
    UMXD_FORWARD = 0,
    UMXD_DROP,
    UMXD_STUN,   /* built-in STUN binding responder (RFC 8489), reply <= request */
    UMXD_ECHO,   /* for tests and demos, reply == request */
    UMXD_ATTACH, /* delivered to a local program attached over the attach socket */
};

enum umxd_share {
    UMXD_SHARE_EXCLUSIVE = 0,
    UMXD_SHARE_FANOUT,
    UMXD_SHARE_BALANCE,
};

enum umxd_health_kind {
    UMXD_HEALTH_NONE = 0,
    UMXD_HEALTH_DNS,     /* a DNS query for "." NS; any well-formed response with our ID is up */
    UMXD_HEALTH_STUN,    /* a STUN binding request; a success response is up */
    UMXD_HEALTH_PAYLOAD, /* health-send = HEX, health-expect = HEX prefix */
};

/* QUIC-LB (draft-ietf-quic-load-balancers): the backends of a route encode
 * a server id in every connection id they issue, so a datagram from an
 * address nobody knows (a migrated client, or one an ECMP rehash sent to
 * another instance) is sent to the backend that issued its connection id,
 * with no shared state. CID = first octet (config id in the top 3 bits)
 * then server id + nonce, plaintext or AES-128-ECB encrypted (one pass when
 * they are 16 bytes, else a 4-round Feistel). */
#define UMXD_QLB_SID_MAX 15 /* server id + nonce <= 19, nonce >= 4 */
struct umxd_quiclb {
    uint8_t on;
    uint8_t config_id; /* 0..6 (7 is the draft's "unroutable") */
    uint8_t sid_len;   /* 1..15 bytes */
    uint8_t nonce_len; /* 4..18 bytes, sid_len + nonce_len <= 19 */
    uint8_t has_key;   /* no key: plaintext server id */
    uint8_t key[16];
};

struct umxd_backend {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char text[80]; /* as written, for printing and metrics labels */
    /* `ADDR:PORT server-id=HEX`: its QUIC-LB server id (sid_len 0: none) */
    uint8_t sid[UMXD_QLB_SID_MAX];
    uint8_t sid_len;
};

struct umxd_route {
    char name[UMXD_NAME_MAX];
    char match[UMXD_RULE_MAX]; /* rule text (see udpmux.h) */
    struct udpmux_rule *rule;  /* compiled by the loader; freed by umxd_config_free */
    enum umxd_action action;
    struct umxd_backend backends[UMXD_MAX_BACKENDS];
    unsigned nbackends;
    uint64_t idle_timeout_ns;       /* idle-timeout = 120s: established flows */
    uint64_t unanswered_timeout_ns; /* unanswered-timeout = 30s: no reply from backend yet */
    int classify_every;             /* classify = every (default: first) */
    int connected;                  /* upstream = connected (default) | unconnected */
    int shared;                     /* upstream = shared: one socket per worker (source = PREFIX) */
    int proxy_v2;                   /* proxy-protocol = v2 | none */
    int transparent;                /* transparent = yes | no */
    int roaming;                    /* roaming = yes (default) | no */
    int kernel;                     /* datapath = kernel | user (default): daemon/kdp/ */
    uint32_t max_flows;             /* max-flows = N (0: only the global cap) */
    /* health checks (active); passive health is always on */
    enum umxd_health_kind health;
    uint8_t health_send[512];
    size_t health_send_len;
    uint8_t health_expect[64];
    size_t health_expect_len;
    uint64_t health_interval_ns;       /* health-interval = 5s */
    uint64_t health_timeout_ns;        /* health-timeout = 1s */
    unsigned health_fall, health_rise; /* health-fall = 3, health-rise = 2 */
    uint64_t down_time_ns;             /* down-time = 10s: passive mark-down length */
    /* attach routes */
    uint32_t allow_uid[UMXD_MAX_ALLOW];
    unsigned nallow_uid;
    uint32_t allow_gid[UMXD_MAX_ALLOW];
    unsigned nallow_gid;
    enum umxd_share share;
    /* where it was defined */
    int line;
    /* reply-size = minimal (default): the smallest Binding success answer
     * (32 B IPv4, 44 B IPv6) is sent even to a shorter request (the 20-byte
     * requests of common clients), under response-rate per prefix;
     * request: a built-in STUN reply is never larger than the request */
    int stun_minimal;
    /* source = ADDR/BITS: upstream sockets bind to an address of this prefix
     * picked per flow (all must be local, e.g. 127.1.0.0/16 or an AnyIP
     * route); one address has only the ephemeral port range of flows per
     * backend (about 28k by default). ss_family 0: the kernel's choice. */
    struct sockaddr_storage source;
    unsigned source_bits;
    /* quic-lb = config-id=N server-id-length=N nonce-length=N [key=HEX] */
    struct umxd_quiclb qlb;
};

struct umxd_config {
    char path[PATH_MAX]; /* "" in quick mode */
    struct sockaddr_storage listen[UMXD_MAX_LISTEN];
    socklen_t listen_len[UMXD_MAX_LISTEN];
    char listen_text[UMXD_MAX_LISTEN][80];
    unsigned nlisten;
    /* [udpmux] */
    char user[64];          /* user = NAME: drop privileges to it after binding ("" = stay) */
    char group[64];         /* group = NAME (default: the user's primary group) */
    unsigned workers;       /* workers = auto | N (0 = auto: one per online CPU) */
    char control[PATH_MAX]; /* control = PATH (default /run/udpmux/control.sock) */
    char attach[PATH_MAX];  /* attach = PATH (default /run/udpmux/attach.sock) */
    char metrics[80];       /* metrics = ADDR:PORT ("" = off) */
    uint32_t max_flows;     /* max-flows = N per worker (default 131072) */
    uint32_t max_flows_per_prefix; /* per /24 or /56 and worker; UINT32_MAX: auto, 0: off */
    /* fleet-key = HEX (128 bits): backend choice depends only on this key,
     * the peer's address and the backend's address (every instance and
     * restart with the same key picks the same); unset: a random key per
     * process and the backend's position in its route */
    uint8_t fleet_key[16];
    int has_fleet_key;
    int rcvbuf, sndbuf;    /* rcvbuf = 4M, sndbuf = 4M (bytes, K/M suffixes) */
    unsigned batch;        /* batch = 64 (recvmmsg/sendmmsg size, 1..1024) */
    int gso;               /* gso = yes (default) | no */
    unsigned busy_poll_us; /* busy-poll = 0 (off) .. UMXD_BUSY_POLL_MAX_US, see worker_main */
    /* admission control (per source prefix, new flows and built-in replies) */
    uint32_t rate_new_flows; /* new-flow-rate = 1000 per second per /24 or /56 (0 off) */
    uint32_t rate_burst;     /* new-flow-burst = 2000 */
    uint32_t rate_responses; /* response-rate = 100 built-in replies/s per prefix (0 off) */
    int seccomp;             /* seccomp = yes (default) | no */
    int log_level;           /* log-level = err|warning|notice|info|debug (syslog numbers) */
    struct umxd_route routes[UMXD_MAX_ROUTES];
    unsigned nroutes;
    /* [listen] dual-stack = yes: IPv6 wildcard listeners ([::]:P) also accept
     * IPv4 (UDPMUX_BIND_DUALSTACK). Default no: [::] is v6-only. */
    int dual_stack;
};

/* Fills the defaults documented above (no listen address, no routes). */
void umxd_config_defaults(struct umxd_config *cfg);

/* Loads and validates a file. On failure returns -EINVAL (or -ENOENT,
 * -EACCES, -ENOMEM) and writes "FILE:LINE: [section] key: message" into
 * err. Every route's rule is compiled; every address is parsed. */
int umxd_config_load(const char *path, struct umxd_config **out, char *err, size_t errlen);

/* Quick mode: `-l ADDR` (repeatable) and `-r NAME_OR_RULE=BACKEND[,BACKEND]`
 * (repeatable; NAME_OR_RULE is a probe name like dns, or `any`, or a rule in
 * quotes; the route is named after the probe or route1, route2...), plus
 * `-r NAME=echo`, `-r NAME=stun`, `-r NAME=drop` for built-in actions. */
int umxd_config_quick(const char *const *listen, unsigned nlisten, const char *const *routes,
                      unsigned nroutes, struct umxd_config **out, char *err, size_t errlen);

/* Frees a config and its compiled rules (NULL is fine). */
void umxd_config_free(struct umxd_config *cfg);

/* Prints the resolved config (every default made explicit) in the same INI
 * dialect, so `udpmuxd -T` output can be loaded again. */
void umxd_config_print(const struct umxd_config *cfg, FILE *out);

/* Fills idx with the candidate lists of cfg's routes, index = route
 * position (lib/internal.h), for classification that tries only the routes
 * whose rule can match a datagram's first byte. Built once per config, off
 * the packet path. 0, or -E2BIG (cannot happen: UMXD_MAX_ROUTES fits). */
struct umx_rule_index;
int umxd_config_index(const struct umxd_config *cfg, struct umx_rule_index *idx);

/* Finds a route by name; -1 if absent. */
int umxd_config_route(const struct umxd_config *cfg, const char *name);

/* Same as umxd_config_load() on in-memory text (NUL-terminated); name is
 * used in messages and as cfg->path. For tests and the fuzzer. */
int umxd_config_load_string(const char *text, const char *name, struct umxd_config **out, char *err,
                            size_t errlen);

#endif
