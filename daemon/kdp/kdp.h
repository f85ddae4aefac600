/*
 * kdp.h - the kernel datapath (`datapath = kernel` routes, the only door to
 * daemon/kdp/). The first datagram of a new flow to the shared port waits
 * in an NFQUEUE while a queue thread runs the same decision engine as the
 * workers; its verdict mark tells udpmuxd's own nftables table which
 * backend to DNAT the flow to, and conntrack carries the rest of the flow
 * in both directions. See docs/internals/kernel-datapath.md.
 */
#ifndef UMXD_KDP_H
#define UMXD_KDP_H

#include <stdint.h>

struct umxd;
struct umxd_config;
struct umxd_flow_info;

/* The packet and conntrack mark bits udpmuxd owns (documented in
 * udpmux.conf(5)); the host's other mark bits are kept. Field values:
 * 0 unmarked (the first datagram goes to the queue), KERNEL|slot<<4|backend
 * a kernel flow, USER a flow the workers carry (later datagrams skip the
 * queue). */
#define UMXD_KDP_MARK_MASK 0x3fff0000u
#define UMXD_KDP_MARK_SHIFT 16
#define UMXD_KDP_F_KERNEL 0x1000u
#define UMXD_KDP_F_USER 0x2000u
#define UMXD_KDP_MARK_USER (UMXD_KDP_F_USER << UMXD_KDP_MARK_SHIFT)
/* The NFQUEUE numbers (per network namespace): new flows' datagrams (a
 * full queue drops them), and kernel flows' early datagrams kept in line or
 * carrying a roaming key (a full queue lets them pass). */
#define UMXD_KDP_QUEUE 4747u
#define UMXD_KDP_QUEUE_ORDER 4748u
/* The nftables tables: `table ip udpmuxd` and `table ip6 udpmuxd`. */
#define UMXD_KDP_TABLE "udpmuxd"

static inline uint32_t umxd_kdp_mark(unsigned slot, unsigned backend)
{
    return (UMXD_KDP_F_KERNEL | (slot & 0xffu) << 4 | (backend & 0xfu)) << UMXD_KDP_MARK_SHIFT;
}

/* Whether a config has a kernel route. */
int umxd_kdp_wanted(const struct umxd_config *cfg);
/* Main thread, after the first route set is published and before
 * privileges drop: removes a stale table (and its conntrack entries) left by
 * a killed instance, then, if a route is kernel, builds the table and starts
 * the queue thread. 0 or -errno (logged). */
int umxd_kdp_init(struct umxd *d);
/* After a reload published d->rs: rebuilds the table for the new routes and
 * ends the kernel flows of routes that are gone. */
void umxd_kdp_reload(struct umxd *d);
/* Upgrade (daemon/upgrade.c). New process: with d->kdp_fd set (the old
 * process's queue socket), umxd_kdp_init adopts it and installs the table
 * without removing anything; umxd_kdp_go starts the queue thread once the
 * old one stopped; umxd_kdp_leave (giving up) stops it and lets the socket
 * go, table and conntrack entries untouched. Old process: the socket to
 * send (-1: no kernel datapath), umxd_kdp_pause stops the queue thread
 * keeping everything, umxd_kdp_resume reads again and, when table is set
 * (the new process installed its own), puts our table back (the hand-over
 * failed). */
int umxd_kdp_go(struct umxd *d);
/* Old process, queue thread paused: the queue thread's flows (roaming
 * keys, stickiness, per-route counts) as UMXD_HO_KDP records through emit
 * (path.h), which umxd_kdp_go adopts from d->handoff_in. 0 or emit's
 * error. */
struct umxd_handoff_rec;
int umxd_kdp_export(struct umxd *d, int (*emit)(void *, const struct umxd_handoff_rec *, int),
                    void *arg);
void umxd_kdp_leave(struct umxd *d);
int umxd_kdp_handoff_fd(const struct umxd *d);
void umxd_kdp_pause(struct umxd *d);
void umxd_kdp_resume(struct umxd *d, int table);
/* Stops the queue thread, deletes the table and udpmuxd's conntrack entries. */
void umxd_kdp_fini(struct umxd *d);
/* The route-set epoch the queue thread runs (umxd_collect keeps older sets
 * alive for it); UINT64_MAX when there is no queue thread. */
uint64_t umxd_kdp_seen_epoch(const struct umxd *d);
/* Kernel flows (conntrack entries with udpmuxd's mark), optionally of one
 * route: up to max into out, returns the count. */
unsigned umxd_kdp_flows(struct umxd *d, const char *route, struct umxd_flow_info *out,
                        unsigned max);

/* Counters of the kernel datapath (relaxed snapshots). */
struct umxd_kdp_stats {
    uint64_t queued;      /* datagrams the queue handed to udpmuxd */
    uint64_t to_kernel;   /* accepted with a kernel flow mark */
    uint64_t to_user;     /* accepted for the workers (user routes) */
    uint64_t dropped;     /* NF_DROP: the engine dropped them */
    uint64_t held;        /* verdicts held for a split first message */
    uint64_t verdict_err; /* verdicts the kernel refused */
    uint64_t replies;     /* kernel flows' proof datagrams queued (roaming keys) */
    uint64_t keys;        /* roaming keys learnt from them */
    uint64_t handshakes;  /* backends' handshake datagrams queued (keys named later) */
    uint64_t reply_keys;  /* roaming keys learnt from them */
    uint64_t roamed;      /* kernel flows given by a roaming key or a session */
    uint64_t ordered;     /* early datagrams of kernel flows kept in line */
    uint64_t queue_full;  /* new-flow datagrams dropped: the queue was full */
    uint64_t flows;       /* kernel flows (conntrack entries) at the last count */
    uint64_t pkts, bytes; /* conntrack counters of those flows, both directions */
};
/* 0, or -ENOENT when no kernel datapath runs. Counts flows (a conntrack
 * dump) when with_flows is set. */
int umxd_kdp_stats(struct umxd *d, struct umxd_kdp_stats *out, int with_flows);

#endif
