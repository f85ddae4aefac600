/*
 * health.c - active health checks for forward routes (`health = dns | stun |
 * payload`). Passive health (ICMP port unreachable seen by a worker's
 * connected upstream socket) lives in worker.c; this file only writes
 * d->health[slot][backend].active_down, which pick_backend() reads.
 *
 * Everything runs on the main thread: a 250 ms tick (umxd_tick_add) sends
 * the probes that are due and times out the ones that were not answered,
 * and one unconnected UDP socket per address family (umxd_loop_add) receives
 * the answers. Why not one socket per backend: a backend pool can have 16
 * members on 64 routes; two sockets whatever the pool size keep the fd
 * budget (which max-flows already claims) predictable. The price is that an
 * answer is matched to its probe by source address and transaction ID
 * rather than by the kernel.
 *
 * A backend goes down after `health-fall` consecutive failures (timeout or
 * a wrong answer) and comes back after `health-rise` consecutive successes.
 * It starts up: a daemon that starts before its backends must not refuse
 * every flow for fall * interval seconds. The tick sets the time
 * resolution, so a timeout shorter than 250 ms is honoured to the next tick.
 *
 * On a reload the route set changes under us. State is keyed by the route's
 * stable slot (its name) and the backend index; when the address at that
 * index changes, or the route no longer asks for checks, the state is reset
 * and active_down cleared, so a stale verdict never blocks a backend that
 * is no longer checked.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "proxy.h"
#include "rules/cursor.h"
#include "udpmuxd.h"

#define TICK_NS (250ull * 1000000ull)
#define PROBE_MAX (UMX_PROXY_V2_MAX + 512) /* header + health-send (config.h caps it) */
#define RECV_BUDGET 256                    /* answers read per wake-up: bounds one turn */
#define STUN_MAGIC 0x2112A442u
#define STUN_SOFTWARE "udpmuxd health check" /* 20 bytes: keeps requests >= answers */

/* One (route slot, backend) pair. Only the main thread touches this. */
struct hcheck {
    struct sockaddr_storage addr; /* the backend being checked ("" when unused) */
    socklen_t addrlen;
    uint64_t next_ns; /* when the next probe is due */
    uint64_t sent_ns; /* when the outstanding probe left (pending) */
    uint8_t txid[12]; /* DNS uses the first 2 bytes, STUN all 12 */
    uint8_t pending;
    uint8_t kind; /* enum umxd_health_kind at the last probe */
};

struct hstate {
    int fd4, fd6;
    struct umxd_ratelimit rl;
    struct hcheck c[UMXD_MAX_SLOTS][UMXD_MAX_BACKENDS];
    uint8_t alive[UMXD_MAX_SLOTS]; /* tick scratch: slots in the current route set */
    uint8_t buf[2048];
};

static int same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return umx_sa_equal((const struct sockaddr *)a, (const struct sockaddr *)b);
}

static void set_down(struct umxd *d, struct hstate *hs, unsigned slot, unsigned b, int down,
                     const char *route, const char *backend, const char *why)
{
    struct umxd_health *h = &d->health[slot][b];
    if (__atomic_load_n(&h->active_down, __ATOMIC_RELAXED) == down)
        return;
    __atomic_store_n(&h->active_down, down, __ATOMIC_RELAXED);
    h->transitions++;
    /* a flapping backend must not flood the log: 20 lines per 10 s */
    if (down)
        umxd_log_rl(&hs->rl, LOG_WARNING, "health: route %s backend %s is DOWN (%s)", route,
                    backend, why);
    else
        umxd_log_rl(&hs->rl, LOG_NOTICE, "health: route %s backend %s is UP again (%s)", route,
                    backend, why);
}

/* One probe result for (slot, b) of route rt. */
static void verdict(struct umxd *d, struct hstate *hs, const struct umxd_route *rt, unsigned slot,
                    unsigned b, int ok, const char *why)
{
    struct umxd_health *h = &d->health[slot][b];
    char msg[96];
    if (ok)
        h->checks_ok++;
    else
        h->checks_failed++;
    if (ok) {
        h->fails = 0;
        if (h->oks < rt->health_rise)
            h->oks++;
        if (h->oks >= rt->health_rise) {
            snprintf(msg, sizeof(msg), "%u check%s passed", h->oks, h->oks == 1 ? "" : "s");
            set_down(d, hs, slot, b, 0, rt->name, rt->backends[b].text, msg);
        }
    } else {
        h->oks = 0;
        if (h->fails < rt->health_fall)
            h->fails++;
        if (h->fails >= rt->health_fall) {
            snprintf(msg, sizeof(msg), "%u check%s failed, last: %s", h->fails,
                     h->fails == 1 ? "" : "s", why);
            set_down(d, hs, slot, b, 1, rt->name, rt->backends[b].text, msg);
        }
    }
}

static void reset(struct umxd *d, struct hstate *hs, unsigned slot, unsigned b)
{
    struct hcheck *c = &hs->c[slot][b];
    memset(c, 0, sizeof(*c));
    d->health[slot][b].fails = 0;
    d->health[slot][b].oks = 0;
    d->health[slot][b].checks_sent = 0;
    d->health[slot][b].checks_ok = 0;
    d->health[slot][b].checks_failed = 0;
    d->health[slot][b].transitions = 0;
    __atomic_store_n(&d->health[slot][b].active_down, 0, __ATOMIC_RELAXED);
}

/* Builds the probe for route rt into out; returns its length. */
static size_t build_probe(const struct umxd_route *rt, struct hcheck *c, uint8_t *out)
{
    size_t n = 0;
    if (rt->proxy_v2) {
        /* The backend expects a PROXY header on every datagram. A LOCAL
         * command (no addresses) is the spec's way to say "this one is the
         * proxy's own, e.g. a health check". */
        struct sockaddr_storage none;
        memset(&none, 0, sizeof(none));
        n = umx_proxy_v2_encode(out, (const struct sockaddr *)&none,
                                (const struct sockaddr *)&none);
    }
    switch (rt->health) {
    case UMXD_HEALTH_DNS: {
        /* ". IN NS", no recursion wanted: every server can answer it
         * without going out (even with REFUSED, which still proves the
         * server is alive and parsing). */
        static const uint8_t q[] = {0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x00, 0x02, 0x00, 0x01};
        out[n++] = c->txid[0];
        out[n++] = c->txid[1];
        out[n++] = 0x00; /* QR=0 opcode=QUERY RD=0 */
        out[n++] = 0x00;
        out[n++] = 0x00; /* QDCOUNT = 1 */
        memcpy(out + n, q, sizeof(q));
        n += sizeof(q);
        break;
    }
    case UMXD_HEALTH_STUN: {
        /* Binding request with a SOFTWARE attribute: a server that never
         * answers with more bytes than it got (udpmuxd's own responder)
         * still has room for an IPv6 XOR-MAPPED-ADDRESS. */
        size_t sl = sizeof(STUN_SOFTWARE) - 1;
        size_t padded = (sl + 3) & ~(size_t)3;
        size_t alen = 4 + padded;
        out[n++] = 0x00;
        out[n++] = 0x01;
        out[n++] = (uint8_t)(alen >> 8);
        out[n++] = (uint8_t)alen;
        out[n++] = (uint8_t)(STUN_MAGIC >> 24);
        out[n++] = (uint8_t)(STUN_MAGIC >> 16);
        out[n++] = (uint8_t)(STUN_MAGIC >> 8);
        out[n++] = (uint8_t)STUN_MAGIC;
        memcpy(out + n, c->txid, 12);
        n += 12;
        out[n++] = 0x80; /* SOFTWARE (0x8022) */
        out[n++] = 0x22;
        out[n++] = (uint8_t)(sl >> 8);
        out[n++] = (uint8_t)sl;
        memset(out + n, 0, padded);
        memcpy(out + n, STUN_SOFTWARE, sl);
        n += padded;
        break;
    }
    case UMXD_HEALTH_PAYLOAD:
        memcpy(out + n, rt->health_send, rt->health_send_len);
        n += rt->health_send_len;
        break;
    case UMXD_HEALTH_NONE:
        break;
    }
    return n;
}

/* Does answer p[0..len) satisfy the probe of check c on route rt? */
static int answer_ok(const struct umxd_route *rt, const struct hcheck *c, const uint8_t *p,
                     size_t len)
{
    struct umx_cur cur = umx_cur_make(p, len);
    if (rt->proxy_v2) {
        /* A backend behind PROXY v2 answers with plain payload, but one
         * that echoes may well echo our header: accept both. */
        struct sockaddr_storage src, dst;
        int hl = umx_proxy_v2_decode(p, len, &src, &dst);
        if (hl > 0 && umx_cur_skip(&cur, (size_t)hl) < 0)
            return 0;
    }
    switch (rt->health) {
    case UMXD_HEALTH_DNS: {
        uint8_t id[2], flags;
        if (umx_cur_bytes(&cur, id, 2) < 0 || umx_cur_u8(&cur, &flags) < 0 ||
            umx_cur_left(&cur) < 9)
            return 0; /* shorter than a DNS header */
        return memcmp(id, c->txid, 2) == 0 && (flags & 0x80);
    }
    case UMXD_HEALTH_STUN: {
        uint16_t type, mlen;
        uint32_t magic;
        uint8_t txid[12];
        if (umx_cur_u16(&cur, &type) < 0 || umx_cur_u16(&cur, &mlen) < 0 ||
            umx_cur_u32(&cur, &magic) < 0 || umx_cur_bytes(&cur, txid, 12) < 0)
            return 0;
        return type == 0x0101 && magic == STUN_MAGIC && memcmp(txid, c->txid, 12) == 0 &&
               umx_cur_left(&cur) == mlen;
    }
    case UMXD_HEALTH_PAYLOAD:
        if (umx_cur_left(&cur) < rt->health_expect_len)
            return 0;
        return memcmp(cur.p, rt->health_expect, rt->health_expect_len) == 0;
    case UMXD_HEALTH_NONE:
        break;
    }
    return 0;
}

static void on_answer(struct umxd *d, int fd, uint32_t events, void *arg)
{
    struct hstate *hs = arg;
    const struct umxd_routeset *rs = d->rs;
    (void)events;
    for (unsigned k = 0; k < RECV_BUDGET; k++) {
        struct sockaddr_storage from;
        socklen_t fl = sizeof(from);
        ssize_t n = recvfrom(fd, hs->buf, sizeof(hs->buf), MSG_DONTWAIT | MSG_TRUNC,
                             (struct sockaddr *)&from, &fl);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return; /* EAGAIN, or an ICMP error: the timeout decides */
        }
        if ((size_t)n > sizeof(hs->buf))
            continue; /* truncated: not one of our answers */
        umx_sa_unmap(&from);
        /* several routes may check the same backend: the first pending
         * probe this answer satisfies takes it */
        for (unsigned r = 0; r < rs->cfg->nroutes; r++) {
            const struct umxd_route *rt = &rs->cfg->routes[r];
            unsigned slot = rs->slot[r];
            if (rt->health == UMXD_HEALTH_NONE)
                continue;
            for (unsigned b = 0; b < rt->nbackends; b++) {
                struct hcheck *c = &hs->c[slot][b];
                if (!c->pending || !same_addr(&c->addr, &from) ||
                    !answer_ok(rt, c, hs->buf, (size_t)n))
                    continue;
                c->pending = 0;
                verdict(d, hs, rt, slot, b, 1, "answered");
                goto next;
            }
        }
    next:;
    }
}

static void send_probe(struct hstate *hs, const struct umxd_route *rt, struct hcheck *c,
                       uint64_t now)
{
    uint8_t pkt[PROBE_MAX];
    size_t n;
    int fd = c->addr.ss_family == AF_INET6 ? hs->fd6 : hs->fd4;
    if (umx_random(c->txid, sizeof(c->txid)) < 0)
        memset(c->txid, 0x5a, sizeof(c->txid));
    n = build_probe(rt, c, pkt);
    c->pending = 1;
    c->sent_ns = now;
    c->kind = (uint8_t)rt->health;
    if (fd < 0)
        return; /* no socket of this family: the timeout marks it down */
    if (sendto(fd, pkt, n, MSG_DONTWAIT, (const struct sockaddr *)&c->addr, c->addrlen) < 0) {
        /* ENETUNREACH, EPERM from a firewall...: the timeout counts it, so
         * a send error and a silent backend are treated alike */
    }
}

static void tick(struct umxd *d, uint64_t now, void *arg)
{
    struct hstate *hs = arg;
    const struct umxd_routeset *rs = d->rs;
    uint8_t *alive = hs->alive;
    memset(hs->alive, 0, sizeof(hs->alive));
    for (unsigned r = 0; rs && r < rs->cfg->nroutes; r++) {
        const struct umxd_route *rt = &rs->cfg->routes[r];
        unsigned slot = rs->slot[r];
        alive[slot] = 1;
        for (unsigned b = 0; b < UMXD_MAX_BACKENDS; b++) {
            struct hcheck *c = &hs->c[slot][b];
            const struct umxd_backend *be = &rt->backends[b];
            int checked =
                rt->action == UMXD_FORWARD && rt->health != UMXD_HEALTH_NONE && b < rt->nbackends;
            if (!checked) {
                if (c->addr.ss_family ||
                    __atomic_load_n(&d->health[slot][b].active_down, __ATOMIC_RELAXED))
                    reset(d, hs, slot, b);
                continue;
            }
            if (!c->addr.ss_family || !same_addr(&c->addr, &be->addr) ||
                c->kind != (uint8_t)rt->health) {
                /* new backend at this index (first tick, or a reload) */
                reset(d, hs, slot, b);
                memcpy(&c->addr, &be->addr, be->addrlen);
                c->addrlen = be->addrlen;
                c->kind = (uint8_t)rt->health;
                c->next_ns = now; /* check right away */
            }
            if (c->pending && now - c->sent_ns >= rt->health_timeout_ns) {
                c->pending = 0;
                verdict(d, hs, rt, slot, b, 0, "no answer within health-timeout");
            }
            if (!c->pending && now >= c->next_ns) {
                send_probe(hs, rt, c, now);
                d->health[slot][b].checks_sent++;
                c->next_ns = now + rt->health_interval_ns;
            }
        }
    }
    /* routes gone since the last reload: forget their verdicts */
    for (unsigned s = 0; s < UMXD_MAX_SLOTS; s++) {
        if (alive[s])
            continue;
        for (unsigned b = 0; b < UMXD_MAX_BACKENDS; b++)
            if (hs->c[s][b].addr.ss_family)
                reset(d, hs, s, b);
    }
}

static int open_sock(int family)
{
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (family == AF_INET6) {
        int one = 1;
        /* IPv4 backends use the IPv4 socket; keep this one v6-only so the
         * two never see each other's answers */
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    return fd;
}

/* The checker's state lives as long as the process; the pointer keeps it
 * reachable for leak checkers (no module fini hook of our own). volatile: a
 * static that is only written may be optimised away. */
static struct hstate *volatile health_state;

int umxd_health_init(struct umxd *d)
{
    struct hstate *hs;
    int r;
    hs = calloc(1, sizeof(*hs));
    if (!hs)
        return -ENOMEM;
    hs->rl = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 20);
    hs->fd4 = open_sock(AF_INET);
    hs->fd6 = open_sock(AF_INET6); /* fails on a host without IPv6: fine */
    health_state = hs;
    if (hs->fd4 < 0 && hs->fd6 < 0) {
        r = hs->fd4;
        health_state = NULL;
        free(hs);
        return r;
    }
    if (hs->fd4 >= 0 && (r = umxd_loop_add(d, hs->fd4, EPOLLIN, on_answer, hs)) < 0)
        return r;
    if (hs->fd6 >= 0 && (r = umxd_loop_add(d, hs->fd6, EPOLLIN, on_answer, hs)) < 0)
        return r;
    return umxd_tick_add(d, tick, hs);
}
