/*
 * kdp_int.h - the kernel datapath's private map, one job per file:
 *   nft.c  what udpmuxd's own nftables tables hold (rules, chains, timeouts)
 *   nfttx.c  how: one nf_tables transaction (libnftnl + libmnl), object dumps
 *   nfq.c  the queue: first datagrams in, verdicts with a mark out
 *   ct.c   conntrack: list, count and delete udpmuxd's kernel flows
 *   kdp.c  the glue: the queue thread, its engine, init/reload/fini
 *   handover.c  the queue thread's flows across an upgrade (kdp_self.h)
 */
#ifndef UMXD_KDP_INT_H
#define UMXD_KDP_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kdp.h"
#include "path/engine.h"

/* netlink answers read on the stack (MNL_SOCKET_BUFFER_SIZE is not a
 * constant) */
#define KDP_NL_BUF 8192

/* nft.c: makes both tables what route set rs needs (rs NULL: removes
 * them), in one transaction. A table that exists is updated in place: the
 * ct timeout policy of a route whose timeouts did not change stays, so its
 * running flows keep it; policies no route uses any more are deleted, and
 * the flows that used them fall back to the kernel's default UDP timeouts.
 * Returns the number of kernel routes of rs whose policy was replaced
 * (their timeouts changed), or -errno (then nothing changed). */
int kdp_nft_apply(const struct umxd_routeset *rs);
/* 1 if `table ip udpmuxd` or `table ip6 udpmuxd` exists. */
int kdp_nft_exists(void);

/* nfq.c */
struct kdp_nfq;
/* One datagram the queue handed over. */
struct kdp_pkt {
    uint32_t id;    /* packet id for the verdict (per queue) */
    uint16_t queue; /* UMXD_KDP_QUEUE or UMXD_KDP_QUEUE_ORDER */
    uint32_t mark;  /* its mark (the host's bits are kept in the verdict) */
    uint8_t hook;   /* NF_INET_*: where the table queued it */
    int family;
    struct sockaddr_storage src, dst;
    const uint8_t *payload; /* UDP payload (inside the receive buffer) */
    size_t len;
};
int kdp_nfq_open(struct kdp_nfq **out);
/* Takes over fd, the queue socket an upgrade's old process bound (closed
 * on error). 0 or -errno. */
int kdp_nfq_adopt(struct kdp_nfq **out, int fd);
void kdp_nfq_close(struct kdp_nfq *q);
int kdp_nfq_fd(const struct kdp_nfq *q);
/* Reads what the queue holds (waits at most timeout_ms) and calls fn for
 * each UDP datagram; packets that are not UDP are accepted unmarked.
 * Returns the number handed to fn, or -errno. */
typedef void kdp_pkt_fn(void *arg, const struct kdp_pkt *p);
int kdp_nfq_read(struct kdp_nfq *q, int timeout_ms, kdp_pkt_fn *fn, void *arg);
/* Queues a verdict (NF_ACCEPT with mark, NF_DROP); kdp_nfq_flush sends
 * the queued ones in one sendmsg. */
void kdp_nfq_verdict(struct kdp_nfq *q, uint16_t queue, uint32_t id, int verdict, uint32_t mark);
int kdp_nfq_flush(struct kdp_nfq *q);
/* New-flow datagrams the kernel dropped because the queue was full (its
 * length or our socket buffer), from /proc/net/netfilter/nfnetlink_queue. */
int kdp_nfq_dropped(uint64_t *out);

/* ct.c */
struct kdp_ct_flow {
    struct sockaddr_storage peer, local, backend;
    uint32_t mark; /* the udpmuxd field (ct mark & MASK) */
    uint64_t rx_pkts, rx_bytes, tx_pkts, tx_bytes;
    uint32_t timeout_s; /* left before the kernel forgets it */
    uint64_t age_s;     /* with conntrack timestamps on, else 0 */
    int replied;
};
typedef int kdp_ct_fn(void *arg, const struct kdp_ct_flow *f);
/* Every conntrack entry with a udpmuxd mark (mark field != 0 and
 * kernel-only when kernel_only). fn returns nonzero to stop. */
int kdp_ct_each(int kernel_only, kdp_ct_fn *fn, void *arg);
/* Deletes the entries whose mark field is in keep[] == 0 (keep indexed by
 * the field's slot<<4|backend, 4096 entries; NULL: deletes every udpmuxd
 * entry). Returns the number deleted, or -errno. */
int kdp_ct_delete(const uint8_t *keep);
/* Deletes the UDP conntrack entries to one of the n local address:ports
 * (a wildcard address matches any) that carry no udpmuxd mark: flows
 * whose first datagram came before the table and the queue existed. Such
 * an entry was never queued, so it has no NAT, and as UDP conntrack calls
 * every datagram before a reply "new", all of them would be queued and
 * none carried by the kernel while it lives (refreshed by the traffic
 * itself). Deleted, the next datagram makes a fresh entry that is decided.
 * Returns the number deleted or -errno. */
int kdp_ct_delete_unmarked(const struct sockaddr_storage *local, unsigned n);
/* Turns conntrack accounting (and timestamps) on in this namespace. */
int kdp_ct_accounting(void);
/* 1 if conntrack accounting is on, 0 if off, or -errno. */
int kdp_ct_accounting_on(void);

#endif
