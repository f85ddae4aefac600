/*
 * mux.h - the library loop's shared state, private to lib/mux/: mux.c
 * (lifecycle, endpoints, handlers, sending, process/run), dispatch.c
 * (receiving and classification), holds.c (undecided datagrams), timers.c.
 */
#ifndef UMX_MUX_H
#define UMX_MUX_H

#include <stdint.h>
#include <sys/socket.h>

#include "internal.h"
#include "io/udp.h"

struct endpoint {
    int fd;
    int family;
    uint16_t port; /* network order */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    uint32_t ovfl_last;
    int dualstack; /* IPv6 socket that also takes IPv4 (V6ONLY off) */
};

/* Handler and timer ids carry the slot in the low 16 bits (max_handlers
 * and max_timers are at most 65536) and the slot's generation in bits
 * 16-30. Slots are reused once a handler is removed or a timer fired or was
 * cancelled; the generation moves on each time, so an old id no longer
 * names the slot's next occupant (until the same slot has been reused
 * 32768 times). A slot's first use has generation 0, so the ids of a mux
 * that never removes anything are 0, 1, 2... as they always were. */
#define ID_SLOT_BITS 16
#define ID_SLOT_MASK 0xffffu
#define ID_GEN_MASK 0x7fffu

static inline int id_make(unsigned slot, unsigned gen)
{
    return (int)((gen & ID_GEN_MASK) << ID_SLOT_BITS | slot);
}

/* Held datagrams (UMX_MORE): few and small. A split ClientHello is two or
 * three Initials of at most ~1500 bytes; a longer datagram is not held but
 * handled as undecided (default handler). The time limit is the quic
 * probe's own (QUIC_PENDING_NS): after it the probe forgets the peer, so
 * nothing could decide the held datagrams any more. */
#define HOLD_SLOTS 16
#define HOLD_BYTES 2048
#define HOLD_NS (3ull * 1000000000ull)

struct held {
    int used;
    int ep;
    uint64_t t;
    uint64_t seq; /* arrival order */
    struct sockaddr_storage peer, local;
    socklen_t peer_len, local_len;
    int ifindex;
    size_t len;
    uint8_t data[HOLD_BYTES];
};

struct handler {
    int in_use;
    unsigned gen;
    char *name;
    struct udpmux_rule *rule;
    udpmux_handler_fn *fn;
    void *arg;
    uint64_t count;
};

struct timer {
    int in_use;
    unsigned gen;
    uint64_t due_ns;
    udpmux_timer_fn *fn;
    void *arg;
};

struct udpmux {
    struct udpmux_config cfg;
    int epfd;
    int wakefd;
    volatile int stop;
    int in_process;
    /* Endpoints live in a fixed array of max_endpoints; an entry is
     * written once, before neps is raised past it with a release store.
     * udpmux_send() on another thread loads neps with acquire and reads
     * only entries below it, so it never sees a half-written endpoint and
     * the array never moves under it. */
    struct endpoint *eps;
    unsigned neps;
    struct handler *handlers; /* max_handlers slots */
    unsigned *order;          /* live slots in registration (= match) order */
    unsigned nlive;
    struct umx_rule_index *idx; /* over order[], when nlive <= UMX_RULE_INDEX_MAX */
    int use_idx;
    struct umx_probe_state *pstate;
    struct held *hold;
    unsigned nheld;
    uint64_t hold_seq;
    udpmux_handler_fn *deffn;
    void *defarg;
    struct timer *timers;
    struct umx_rxb *rxb;
    struct udpmux_stats st;
};

/* mux.c */
struct handler *umx__handler_of(const struct udpmux *m, int id);

/* dispatch.c */
void umx__mux_deliver(struct udpmux *m, struct udpmux_dgram *d, int id);
int umx__mux_process_endpoint(struct udpmux *m, unsigned ep, unsigned budget, uint64_t now);

/* holds.c */
void umx__hold_expire(struct udpmux *m, uint64_t now);
int umx__hold_put(struct udpmux *m, const struct udpmux_dgram *d, uint64_t now);
void umx__hold_release(struct udpmux *m, const struct udpmux_dgram *now_d, int id);

/* timers.c */
void umx__timers_run(struct udpmux *m);

#endif
