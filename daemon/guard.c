/*
 * guard.c - foreign-socket watch (claim C3 of docs/security.md).
 *
 * On Linux another process can end up on our port: a process of the same
 * uid can join a SO_REUSEPORT group, any user can bind a more specific
 * address (127.0.0.2:P next to our 127.0.0.1:P) or the other family, and a
 * pair of SO_REUSEADDR sockets shares a port with no uid check at all. The
 * kernel then gives it some or all of "our" datagrams and nothing tells us.
 * So every GUARD_INTERVAL the main thread asks sock_diag for the UDP
 * sockets on each listen port (the kernel filters by port, so the cost does
 * not grow with the daemon's own upstream sockets), and any socket whose
 * inode is not one of our listeners is foreign: logged once per socket (and
 * rate-limited overall), kept as a gauge in d->foreign_sockets, and counted
 * once per new socket in the guard.foreign_sockets counter (stats.h), which
 * `udpmuxctl stats` and /metrics (udpmux_guard_foreign_sockets_total)
 * export. The listeners' SO_REUSEPORT group is steered to the workers
 * (owner.c), so a same-user socket that joins it is reported here but
 * receives nothing.
 *
 * The same dumps measure each listener's SO_REUSEPORT group: the sockets
 * bound to exactly its address and port by the user that owns our
 * listeners (the kernel lets only that user's SO_REUSEPORT sockets share
 * it), ours and any that joined; d->group_sockets and d->group_foreign,
 * exported as udpmux_listener_reuseport_sockets and
 * udpmux_listener_reuseport_foreign_sockets.
 *
 * The netlink socket is opened once at start-up; the dumps need no
 * privilege, so the watch keeps working after the privilege drop and under
 * the seccomp filter (which allows recvmsg/sendto on it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "udpmuxd.h"

#define GUARD_INTERVAL_NS (2ull * 1000000000ull)
#define GUARD_MAX_OWN (UMXD_MAX_LISTEN * UMXD_MAX_WORKERS)
#define GUARD_MAX_SEEN 64 /* foreign sockets remembered (logged once each) */

struct guard {
    int nl;
    uint64_t last_ns;
    uint16_t ports[UMXD_MAX_LISTEN]; /* host order, distinct */
    unsigned nports;
    uint64_t own[GUARD_MAX_OWN]; /* inodes of our listeners */
    unsigned nown;
    uint64_t seen[GUARD_MAX_SEEN]; /* foreign inodes already logged */
    unsigned nseen;
    struct umxd_ratelimit rl;
    int failed_logged;
    uint64_t new_foreign; /* first seen in this scan */
    /* the listeners' addresses (reuseport group counts), and this scan's
     * tallies: our own members, and exact-address sockets of others with
     * their uid (members only if it is the uid of our listener sockets) */
    struct sockaddr_storage laddr[UMXD_MAX_LISTEN];
    unsigned nlisten;
    uint32_t grp_own[UMXD_MAX_LISTEN];
    struct {
        uint8_t li;
        uint32_t uid;
    } cand[GUARD_MAX_SEEN];
    unsigned ncand;
    uint32_t own_uid;
    int own_uid_seen;
};

static struct guard the_guard;

static int is_own(const struct guard *g, uint64_t ino)
{
    for (unsigned i = 0; i < g->nown; i++)
        if (g->own[i] == ino)
            return 1;
    return 0;
}

static int was_seen(const uint64_t *list, unsigned n, uint64_t ino)
{
    for (unsigned i = 0; i < n; i++)
        if (list[i] == ino)
            return 1;
    return 0;
}

/* The listener whose exact address and port this socket is bound to, or -1. */
static int listener_of(const struct guard *g, int family, const struct inet_diag_msg *dm)
{
    for (unsigned li = 0; li < g->nlisten; li++) {
        const struct sockaddr_storage *l = &g->laddr[li];
        if (l->ss_family != family)
            continue;
        if (family == AF_INET) {
            struct sockaddr_in s4;
            memcpy(&s4, l, sizeof(s4));
            if (s4.sin_port == dm->id.idiag_sport && !memcmp(&s4.sin_addr, dm->id.idiag_src, 4))
                return (int)li;
        } else {
            struct sockaddr_in6 s6;
            memcpy(&s6, l, sizeof(s6));
            if (s6.sin6_port == dm->id.idiag_sport && !memcmp(&s6.sin6_addr, dm->id.idiag_src, 16))
                return (int)li;
        }
    }
    return -1;
}

/* One dump of UDP sockets of one family whose source port is `port`.
 * Calls back for each socket with its diag message. Returns 0 or -errno. */
static int dump(struct guard *g, int family, uint16_t port, uint64_t *found, unsigned maxfound,
                unsigned *nfound, unsigned *count)
{
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
        struct nlattr nla;
        struct inet_diag_bc_op ops[2];
    } msg;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    static uint8_t buf[32768];
    int done = 0;

    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_UDP;
    msg.req.idiag_states = ~0u;
    /* the same filter as `ss 'sport = :P'`: S_EQ then the port in the
     * second op's `no` field; on mismatch jump past the end (reject) */
    msg.nla.nla_len = (uint16_t)(sizeof(msg.nla) + sizeof(msg.ops));
    msg.nla.nla_type = INET_DIAG_REQ_BYTECODE;
    msg.ops[0].code = INET_DIAG_BC_S_EQ;
    msg.ops[0].yes = sizeof(msg.ops);
    msg.ops[0].no = sizeof(msg.ops) + 4;
    msg.ops[1].no = port;
    if (sendto(g->nl, &msg, sizeof(msg), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0)
        return -errno;
    while (!done) {
        ssize_t n = recv(g->nl, buf, sizeof(buf), 0);
        struct nlmsghdr *h;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EPROTO;
        for (h = (struct nlmsghdr *)(void *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            struct inet_diag_msg dm;
            char addr[INET6_ADDRSTRLEN + 16];
            struct sockaddr_storage ss;
            uint64_t ino;
            if (h->nlmsg_type == NLMSG_DONE) {
                done = 1;
                break;
            }
            if (h->nlmsg_type == NLMSG_ERROR)
                return -EPROTO;
            if (h->nlmsg_len < NLMSG_LENGTH(sizeof(dm)))
                continue;
            memcpy(&dm, NLMSG_DATA(h), sizeof(dm));
            /* the kernel filtered already; checked again in case a kernel
             * ignores the bytecode */
            if (ntohs(dm.id.idiag_sport) != port)
                continue;
            ino = dm.idiag_inode;
            {
                int li = listener_of(g, family, &dm);
                if (li >= 0 && is_own(g, ino)) {
                    g->grp_own[li]++;
                    g->own_uid = dm.idiag_uid;
                    g->own_uid_seen = 1;
                } else if (li >= 0 && g->ncand < GUARD_MAX_SEEN) {
                    g->cand[g->ncand].li = (uint8_t)li;
                    g->cand[g->ncand++].uid = dm.idiag_uid;
                }
            }
            if (is_own(g, ino))
                continue;
            (*count)++;
            if (*nfound < maxfound)
                found[(*nfound)++] = ino;
            if (was_seen(g->seen, g->nseen, ino))
                continue;
            g->new_foreign++;
            memset(&ss, 0, sizeof(ss));
            if (family == AF_INET) {
                struct sockaddr_in s4 = {.sin_family = AF_INET};
                s4.sin_port = dm.id.idiag_sport;
                memcpy(&s4.sin_addr, dm.id.idiag_src, 4);
                memcpy(&ss, &s4, sizeof(s4));
            } else {
                struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
                s6.sin6_port = dm.id.idiag_sport;
                memcpy(&s6.sin6_addr, dm.id.idiag_src, 16);
                memcpy(&ss, &s6, sizeof(s6));
            }
            udpmux_format_addr((struct sockaddr *)&ss, addr, sizeof(addr));
            umxd_log_rl(&g->rl, LOG_WARNING,
                        "foreign socket on our port: %s, uid %u, inode %llu (not created by "
                        "udpmuxd; it may receive our traffic: `ss -uanpe 'sport = :%u'`)",
                        addr, dm.idiag_uid, (unsigned long long)ino, port);
        }
    }
    return 0;
}

static void scan(struct umxd *d, struct guard *g)
{
    uint64_t found[GUARD_MAX_SEEN];
    unsigned nfound = 0, count = 0;
    int r = 0;
    static const int fams[2] = {AF_INET, AF_INET6};
    memset(g->grp_own, 0, sizeof(g->grp_own));
    g->ncand = 0;
    g->own_uid_seen = 0;
    for (unsigned p = 0; p < g->nports && r == 0; p++)
        for (int f = 0; f < 2 && r == 0; f++)
            r = dump(g, fams[f], g->ports[p], found, GUARD_MAX_SEEN, &nfound, &count);
    if (r < 0) {
        if (!g->failed_logged)
            umxd_log(LOG_WARNING, "foreign-socket watch: sock_diag failed: %s", strerror(-r));
        g->failed_logged = 1;
        return;
    }
    if (count != __atomic_load_n(&d->foreign_sockets, __ATOMIC_RELAXED)) {
        if (count == 0)
            umxd_log(LOG_NOTICE, "foreign-socket watch: no foreign socket on our ports any more");
        __atomic_store_n(&d->foreign_sockets, (uint64_t)count, __ATOMIC_RELAXED);
    }
    /* guard.foreign_sockets (stats.h) is summed with the workers' counters
     * by umxd_stats_sum (path/pool.c), which adds d->foreign_seen */
    if (g->new_foreign) {
        __atomic_fetch_add(&d->foreign_seen, g->new_foreign, __ATOMIC_RELAXED);
        g->new_foreign = 0;
    }
    for (unsigned li = 0; li < g->nlisten; li++) {
        uint32_t foreign = 0;
        for (unsigned k = 0; k < g->ncand; k++)
            foreign += g->cand[k].li == li && g->own_uid_seen && g->cand[k].uid == g->own_uid;
        __atomic_store_n(&d->group_sockets[li], g->grp_own[li] + foreign, __ATOMIC_RELAXED);
        __atomic_store_n(&d->group_foreign[li], foreign, __ATOMIC_RELAXED);
    }
    /* remember what is there now: a socket that goes away and a new one
     * that reuses its inode number later is logged again */
    memcpy(g->seen, found, nfound * sizeof(found[0]));
    g->nseen = nfound;
}

static void on_tick(struct umxd *d, uint64_t now_ns, void *arg)
{
    struct guard *g = arg;
    if (g->last_ns && now_ns - g->last_ns < GUARD_INTERVAL_NS)
        return;
    g->last_ns = now_ns;
    scan(d, g);
}

int umxd_guard_init(struct umxd *d)
{
    struct guard *g = &the_guard;
    const struct umxd_config *c = d->cfg;
    memset(g, 0, sizeof(*g));
    g->rl.interval_s = 60;
    g->rl.burst = 20;
    for (unsigned li = 0; li < c->nlisten; li++) {
        uint16_t port = 0;
        int dup = 0;
        g->laddr[li] = c->listen[li];
        g->nlisten = li + 1;
        if (c->listen[li].ss_family == AF_INET) {
            struct sockaddr_in s4;
            memcpy(&s4, &c->listen[li], sizeof(s4));
            port = ntohs(s4.sin_port);
        } else if (c->listen[li].ss_family == AF_INET6) {
            struct sockaddr_in6 s6;
            memcpy(&s6, &c->listen[li], sizeof(s6));
            port = ntohs(s6.sin6_port);
        }
        for (unsigned i = 0; i < g->nports; i++)
            dup |= g->ports[i] == port;
        if (port && !dup)
            g->ports[g->nports++] = port;
        for (unsigned w = 0; w < d->nworkers && w < UMXD_MAX_WORKERS; w++) {
            struct stat st;
            if (d->lfd[li][w] > 0 && fstat(d->lfd[li][w], &st) == 0 && g->nown < GUARD_MAX_OWN)
                g->own[g->nown++] = (uint64_t)st.st_ino;
        }
    }
    if (!g->nports)
        return 0;
    g->nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (g->nl < 0)
        return -errno;
    d->guard = g;
    /* a first scan now: a squatter that was there before us is reported at
     * start-up, not two seconds later */
    scan(d, g);
    g->last_ns = umx_now_ns();
    return umxd_tick_add(d, on_tick, g);
}
