/*
 * attach.c - local programs share the daemon's port (`action = attach`).
 *
 * A program connects to the attach socket (AF_UNIX, SOCK_SEQPACKET: one
 * message per datagram, so batches are plain sendmmsg/recvmmsg and message
 * boundaries need no framing of ours) and claims one configured route. The
 * daemon checks the peer's credentials (SO_PEERCRED) against the route's
 * `allow =` list; a program cannot widen what it receives, only take a route
 * the operator configured, and two programs cannot hold one route unless it
 * says `share = fanout|balance`.
 *
 * Datagrams flow:
 * - peer -> program: a worker classifies a datagram to an attach route, asks
 *   umxd_attach_pick() for the holder, pins a flow in its own table and
 *   writes the datagram to the program's socket (umxd_attach_deliver). Later
 *   datagrams of that peer hit the worker's flow and skip classification.
 * - program -> peer: the main thread reads the program's messages and sends
 *   each datagram out of the shared port (PKTINFO source when the program
 *   gives one) and records (peer) -> program in a shared table, so the peer's
 *   answers (a DHT response, a uTP data packet) reach the program even though
 *   they would not match the route's rule. Workers consult that table only
 *   when they miss their own flow table, so its mutex is off the hot path.
 * - a program that disconnects (detach, crash, kill) is gone at once: its
 *   shared flows are freed, its generation changes so workers close their
 *   pinned flows on next use, and its datagrams are counted as unclaimed.
 *   Its socket is closed only after every worker has finished a loop turn
 *   (quiescence), so no worker can write to a reused descriptor.
 *
 * Wire format: docs/internals/attach.md (shared with lib/attach/attach.c and
 * python/udpmux_attach.py).
 */
#include <errno.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "attach/proto.h"
#include "internal.h"
#include "log.h"
#include "sockfile.h"
#include "udpmuxd.h"

#define MAX_CLIENTS 64
#define SHARED_FLOWS 65536
#define RX_BATCH 32
/* Any local user may connect (the socket is 0666; routes are checked at
 * hello), so one user must not be able to take every slot: a connection
 * that has not claimed a route within HELLO_NS is closed, a uid other than
 * root holds at most PER_UID_MAX connections, and the last ROOT_RESERVE
 * slots are root's. A refused program gets an EUSERS error message
 * (udpmux_attach returns -EUSERS). */
#define HELLO_NS (2ull * 1000000000ull)
#define PER_UID_MAX 16
#define ROOT_RESERVE 8

struct client {
    int fd;
    uint32_t gen; /* atomic; odd while connected */
    int claimed;
    int claimed_once;
    int closing;
    uint64_t close_loops[UMXD_MAX_WORKERS];
    char route[UMXD_NAME_MAX];
    uid_t uid; /* SO_PEERCRED at accept */
    pid_t pid;
    uint64_t accept_ns; /* the hello deadline counts from here */
    uint64_t rx, tx, drops;
};

struct shared_flow {
    uint16_t client;
    uint32_t gen;
};

struct attach {
    int lfd;
    char path[108];
    struct umxd_sockfile file;
    struct umxd_ratelimit rl, rl_hello; /* refusals; hello deadlines */
    pthread_mutex_t mu;                 /* clients[].claimed/route and the shared flow table */
    struct client c[MAX_CLIENTS];
    struct umx_ft *ft;
    /* drop_* and refused: atomic (workers count too); sent: main thread;
     * delivered is summed from the clients' rx and retired_rx */
    struct umxd_attach_stats st;
    uint64_t retired_rx; /* rx of clients whose slots were recycled */
    /* receive batch for program messages */
    struct mmsghdr mm[RX_BATCH];
    struct iovec iov[RX_BATCH];
    uint8_t (*buf)[UMX_ATT_MAX_MSG];
};

static struct attach *A(struct umxd *d)
{
    return d->attach;
}

static int uid_allowed(const struct umxd_route *rt, uid_t uid, gid_t gid)
{
    gid_t groups[64];
    int ng = 64;
    struct passwd *pw;
    if (uid == 0)
        return 1;
    for (unsigned i = 0; i < rt->nallow_uid; i++)
        if (rt->allow_uid[i] == uid)
            return 1;
    for (unsigned i = 0; i < rt->nallow_gid; i++)
        if (rt->allow_gid[i] == gid)
            return 1;
    if (!rt->nallow_gid)
        return 0;
    pw = getpwuid(uid);
    if (!pw || getgrouplist(pw->pw_name, gid, groups, &ng) < 0)
        return 0;
    for (int k = 0; k < ng; k++)
        for (unsigned i = 0; i < rt->nallow_gid; i++)
            if (rt->allow_gid[i] == groups[k])
                return 1;
    return 0;
}

static void reply(int fd, uint8_t type, uint16_t code, const char *text)
{
    uint8_t m[256];
    size_t tl = text ? strnlen(text, sizeof(m) - 4) : 0;
    m[0] = type;
    m[1] = UMX_ATT_VERSION;
    m[2] = (uint8_t)(code >> 8);
    m[3] = (uint8_t)code;
    if (tl)
        memcpy(m + 4, text, tl);
    if (send(fd, m, 4 + tl, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        /* the program is gone; its hang-up is handled by the loop */
    }
}

static void drop_client(struct umxd *d, unsigned i)
{
    struct attach *a = A(d);
    struct client *c = &a->c[i];
    pthread_mutex_lock(&a->mu);
    /* even -> gone: workers' pinned flows see the change */
    __atomic_store_n(&c->gen, c->gen + 1, __ATOMIC_RELEASE);
    c->claimed = 0;
    /* free its shared flows */
    for (uint32_t k = 0; k < umx_ft_capacity(a->ft); k++) {
        struct umx_flow *f = umx_ft_at(a->ft, k);
        if (f && ((struct shared_flow *)umx_flow_data(f))->client == i)
            umx_ft_remove(a->ft, f);
    }
    pthread_mutex_unlock(&a->mu);
    umxd_loop_del(d, c->fd);
    shutdown(c->fd, SHUT_RDWR);
    /* workers drop the flows they pinned to this program now, not when
     * the next datagram of each arrives */
    __atomic_add_fetch(&d->attach_epoch, 1, __ATOMIC_RELEASE);
    umxd_wake_workers(d);
    c->closing = 1;
    for (unsigned w = 0; w < d->nworkers; w++)
        c->close_loops[w] = umxd_worker_loops(d, w);
    if (c->claimed_once)
        umxd_log(LOG_INFO,
                 "attach: program pid %d left route %s (%llu datagrams in, %llu out, %llu "
                 "dropped)",
                 (int)c->pid, c->route, (unsigned long long)c->rx, (unsigned long long)c->tx,
                 (unsigned long long)c->drops);
}

static int handle_hello(struct umxd *d, unsigned i, const uint8_t *m, size_t n)
{
    struct attach *a = A(d);
    struct client *c = &a->c[i];
    struct ucred cr;
    socklen_t cl = sizeof(cr);
    char name[UMXD_NAME_MAX];
    uint16_t nl;
    int r;
    const struct umxd_route *rt;
    if (n < 4 || m[1] != UMX_ATT_VERSION) {
        reply(c->fd, UMX_ATT_ERR, EPROTO, "unsupported protocol version");
        return -EPROTO;
    }
    nl = (uint16_t)(m[2] << 8 | m[3]);
    if (nl == 0 || nl >= sizeof(name) || (size_t)nl + 4 > n) {
        reply(c->fd, UMX_ATT_ERR, EINVAL, "bad route name");
        return -EINVAL;
    }
    memcpy(name, m + 4, nl);
    name[nl] = '\0';
    r = umxd_config_route(d->cfg, name);
    if (r < 0 || d->cfg->routes[r].action != UMXD_ATTACH) {
        reply(c->fd, UMX_ATT_ERR, ENOENT, "no attach route with that name");
        return -ENOENT;
    }
    rt = &d->cfg->routes[r];
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0 ||
        !uid_allowed(rt, cr.uid, cr.gid)) {
        umxd_log(LOG_WARNING, "attach: uid %u (pid %d) refused for route %s", (unsigned)cr.uid,
                 (int)cr.pid, name);
        reply(c->fd, UMX_ATT_ERR, EACCES, "not allowed to attach to this route");
        return -EACCES;
    }
    pthread_mutex_lock(&a->mu);
    if (rt->share == UMXD_SHARE_EXCLUSIVE) {
        for (unsigned k = 0; k < MAX_CLIENTS; k++) {
            if (k != i && a->c[k].claimed && strcmp(a->c[k].route, name) == 0) {
                pthread_mutex_unlock(&a->mu);
                reply(c->fd, UMX_ATT_ERR, EBUSY, "route already held by another program");
                return -EBUSY;
            }
        }
    }
    memcpy(c->route, name, sizeof(c->route));
    c->uid = cr.uid;
    c->pid = cr.pid;
    c->claimed = 1;
    c->claimed_once = 1;
    pthread_mutex_unlock(&a->mu);
    reply(c->fd, UMX_ATT_OK, 0, "ok");
    umxd_log(LOG_INFO, "attach: pid %d uid %u holds route %s", (int)cr.pid, (unsigned)cr.uid, name);
    return 0;
}

/* Chooses the listener for a datagram to peer from local (may be unset). */
static int pick_listener(struct umxd *d, const struct sockaddr *peer)
{
    for (unsigned li = 0; li < d->cfg->nlisten; li++)
        if (d->cfg->listen[li].ss_family == peer->sa_family)
            return (int)li;
    if (peer->sa_family == AF_INET && d->cfg->dual_stack)
        for (unsigned li = 0; li < d->cfg->nlisten; li++)
            if (d->cfg->listen[li].ss_family == AF_INET6)
                return (int)li;
    return -1;
}

static void record_flow(struct umxd *d, unsigned i, const struct sockaddr *peer)
{
    struct attach *a = A(d);
    struct umx_flow_key k;
    struct umx_flow *f;
    struct sockaddr_storage p;
    memset(&p, 0, sizeof(p));
    memcpy(&p, peer, umx_sa_len(peer));
    umx_sa_unmap(&p);
    umx_flow_key_make(&k, NULL, (struct sockaddr *)&p, 0);
    pthread_mutex_lock(&a->mu);
    f = umx_ft_lookup(a->ft, &k);
    if (!f)
        f = umx_ft_insert(a->ft, &k, 0, umx_now_ns(), NULL, NULL);
    if (f) {
        struct shared_flow *sf = umx_flow_data(f);
        sf->client = (uint16_t)i;
        sf->gen = a->c[i].gen;
        umx_ft_touch(a->ft, f, 0, umx_now_ns());
    }
    pthread_mutex_unlock(&a->mu);
}

static void send_out(struct umxd *d, unsigned i, const uint8_t *m, size_t n)
{
    struct attach *a = A(d);
    struct sockaddr_storage peer, local;
    socklen_t plen;
    const uint8_t *payload;
    size_t plen_data;
    struct msghdr mh;
    struct iovec iov;
    uint8_t ctrl[UMX_TX_CTRL];
    int li, fd, has_local;
    if (umx_att_decode_data(m, n, &peer, &local, &has_local, &payload, &plen_data) < 0) {
        a->c[i].drops++;
        UMX_CTR_ADD_MT(a->st.drop_bad_message, 1);
        return;
    }
    li = pick_listener(d, (struct sockaddr *)&peer);
    if (li < 0) {
        a->c[i].drops++;
        UMX_CTR_ADD_MT(a->st.drop_no_listener, 1);
        return;
    }
    fd = d->lfd[li][0];
    plen = umx_sa_len((struct sockaddr *)&peer);
    if (d->cfg->listen[li].ss_family == AF_INET6 && peer.ss_family == AF_INET)
        plen = umx_sa_map6(&peer);
    memset(&mh, 0, sizeof(mh));
    iov.iov_base = (void *)(uintptr_t)payload;
    iov.iov_len = plen_data;
    mh.msg_name = &peer;
    mh.msg_namelen = plen;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (has_local)
        umx_tx_set_src(&mh, ctrl, d->cfg->listen[li].ss_family, (struct sockaddr *)&local, 0);
    /* the flow first, so an immediate answer finds it */
    record_flow(d, i, (struct sockaddr *)&peer);
    if (sendmsg(fd, &mh, MSG_DONTWAIT) < 0) {
        UMX_CTR_ADD_MT(a->st.drop_send_error, 1);
        a->c[i].drops++;
        return;
    }
    a->st.sent++;
    a->c[i].tx++;
    /* in the global and the route's tx counters, as a forwarded reply is */
    __atomic_add_fetch(&d->attach_tx_all[0], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&d->attach_tx_all[1], plen_data, __ATOMIC_RELAXED);
    {
        int r = umxd_config_route(d->rs->cfg, a->c[i].route);
        if (r >= 0) {
            unsigned slot = d->rs->slot[r];
            __atomic_add_fetch(&d->attach_tx[slot][0], 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&d->attach_tx[slot][1], plen_data, __ATOMIC_RELAXED);
        }
    }
}

static void on_client(struct umxd *d, int fd, uint32_t events, void *arg)
{
    struct attach *a = A(d);
    unsigned i = (unsigned)(uintptr_t)arg;
    struct client *c = &a->c[i];
    int n;
    (void)fd;
    /* a program that sends its last datagrams and exits at once leaves
     * them queued behind the hang-up: read them first (the read that
     * returns 0 then drops the client) */
    if ((events & (EPOLLHUP | EPOLLERR)) && !(events & EPOLLIN)) {
        drop_client(d, i);
        return;
    }
    for (int rounds = 0; rounds < 8; rounds++) {
        for (unsigned k = 0; k < RX_BATCH; k++) {
            a->iov[k].iov_base = a->buf[k];
            a->iov[k].iov_len = UMX_ATT_MAX_MSG;
            memset(&a->mm[k].msg_hdr, 0, sizeof(a->mm[k].msg_hdr));
            a->mm[k].msg_hdr.msg_iov = &a->iov[k];
            a->mm[k].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(c->fd, a->mm, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            drop_client(d, i);
            return;
        }
        if (n == 0) {
            drop_client(d, i);
            return;
        }
        for (int k = 0; k < n; k++) {
            size_t len = a->mm[k].msg_len;
            const uint8_t *m = a->buf[k];
            if (len == 0) {
                /* SOCK_SEQPACKET: a zero-length read is the peer's close */
                drop_client(d, i);
                return;
            }
            if (!c->claimed) {
                if (m[0] != UMX_ATT_HELLO || handle_hello(d, i, m, len) < 0) {
                    drop_client(d, i);
                    return;
                }
                continue;
            }
            if (m[0] == UMX_ATT_DATA) {
                send_out(d, i, m, len);
            } else {
                c->drops++;
                UMX_CTR_ADD_MT(a->st.drop_bad_message, 1);
            }
        }
        if (n < RX_BATCH)
            return;
    }
}

static void on_accept(struct umxd *d, int fd, uint32_t events, void *arg)
{
    struct attach *a = A(d);
    (void)events;
    (void)arg;
    for (;;) {
        int cfd = umxd_accept(d, fd);
        unsigned i, used = 0, mine = 0, fr = MAX_CLIENTS;
        struct ucred cr;
        socklen_t cl = sizeof(cr);
        const char *why = NULL;
        if (cfd < 0)
            return;
        if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
            close(cfd);
            continue;
        }
        for (i = 0; i < MAX_CLIENTS; i++) {
            if (!a->c[i].fd && !a->c[i].closing) {
                if (fr == MAX_CLIENTS)
                    fr = i;
                continue;
            }
            used++;
            if (!a->c[i].closing && a->c[i].uid == cr.uid)
                mine++;
        }
        if (fr == MAX_CLIENTS)
            why = "attach socket full: too many attached programs";
        else if (cr.uid != 0 && mine >= PER_UID_MAX)
            why = "too many attach connections from this user";
        else if (cr.uid != 0 && used >= MAX_CLIENTS - ROOT_RESERVE)
            why = "attach socket full: the remaining slots are root's";
        if (why) {
            umxd_log_rl(&a->rl, LOG_WARNING, "attach: uid %u (pid %d) refused: %s",
                        (unsigned)cr.uid, (int)cr.pid, why);
            a->st.refused++;
            reply(cfd, UMX_ATT_ERR, EUSERS, why);
            close(cfd);
            continue;
        }
        i = fr;
        memset(&a->c[i], 0, sizeof(a->c[i]));
        a->c[i].fd = cfd;
        a->c[i].uid = cr.uid;
        a->c[i].pid = cr.pid;
        a->c[i].accept_ns = umx_now_ns();
        /* keep the generation moving across reuse of the slot */
        a->c[i].gen = (uint32_t)(umx_now_ns() & 0x7ffffffe) | 1u;
        {
            /* a deep send buffer: bursts towards a slow program queue in the
             * kernel instead of being dropped */
            int sz = 4 << 20;
            setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
        }
        if (umxd_loop_add(d, cfd, EPOLLIN, on_client, (void *)(uintptr_t)i) < 0) {
            close(cfd);
            a->c[i].fd = 0;
        }
    }
}

/* Closes descriptors of departed programs once every worker has gone around
 * its loop since the departure. */
static void on_tick(struct umxd *d, uint64_t now, void *arg)
{
    struct attach *a = A(d);
    (void)arg;
    for (unsigned i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = &a->c[i];
        int quiet = 1;
        if (c->fd && !c->closing && !c->claimed && now - c->accept_ns > HELLO_NS) {
            /* connected and silent: the slot goes back */
            umxd_log_rl(&a->rl_hello, LOG_INFO,
                        "attach: uid %u (pid %d) sent no hello within %llu s", (unsigned)c->uid,
                        (int)c->pid, (unsigned long long)(HELLO_NS / 1000000000ull));
            a->st.refused++;
            reply(c->fd, UMX_ATT_ERR, ETIMEDOUT, "no hello in time");
            drop_client(d, i);
        }
        if (!c->closing)
            continue;
        for (unsigned w = 0; w < d->nworkers; w++)
            if (d->w[w] && umxd_worker_loops(d, w) == c->close_loops[w])
                quiet = 0;
        if (!quiet)
            continue;
        close(c->fd);
        c->fd = 0;
        c->closing = 0;
        /* no worker writes to it any more: its count moves to the total */
        a->retired_rx += __atomic_exchange_n(&c->rx, 0, __ATOMIC_RELAXED);
    }
    /* idle shared flows */
    pthread_mutex_lock(&a->mu);
    umx_ft_expire(a->ft, umx_now_ns(), 1024, NULL, NULL);
    pthread_mutex_unlock(&a->mu);
}

int umxd_attach_init(struct umxd *d)
{
    struct attach *a;
    struct sockaddr_un sa;
    int has_route = 0, r;
    size_t pl;
    for (unsigned i = 0; i < d->cfg->nroutes; i++)
        if (d->cfg->routes[i].action == UMXD_ATTACH)
            has_route = 1;
    if (!has_route)
        return 0; /* no attach route: no socket */
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->buf = calloc(RX_BATCH, UMX_ATT_MAX_MSG);
    a->rl = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 5);
    a->rl_hello = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 5);
    pthread_mutex_init(&a->mu, NULL);
    r = umx_ft_new(&a->ft, SHARED_FLOWS, sizeof(struct shared_flow), d->hashkey);
    if (r < 0 || !a->buf)
        goto fail;
    /* idle shared entries go after the longest attach-route idle timeout */
    {
        uint64_t t = 0;
        for (unsigned i = 0; i < d->cfg->nroutes; i++)
            if (d->cfg->routes[i].action == UMXD_ATTACH && d->cfg->routes[i].idle_timeout_ns > t)
                t = d->cfg->routes[i].idle_timeout_ns;
        umx_ft_set_class(a->ft, 0, t ? t : 120ull * 1000000000ull, 1);
    }
    pl = strlen(d->cfg->attach);
    if (pl == 0 || pl >= sizeof(sa.sun_path)) {
        r = -ENAMETOOLONG;
        goto fail;
    }
    {
        /* parent directory, as for the control socket */
        char dir[sizeof(sa.sun_path)];
        char *slash;
        memcpy(dir, d->cfg->attach, pl + 1);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            mkdir(dir, 0755);
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, d->cfg->attach, pl);
    memcpy(a->path, d->cfg->attach, pl);
    if (d->mod_lfd[UMXD_MOD_ATTACH] >= 0) {
        /* upgrade: the old process's socket (upgrade.c); programs attached
         * to the old process must attach again, here */
        a->lfd = d->mod_lfd[UMXD_MOD_ATTACH];
        umxd_sockfile_note(&a->file, d->cfg->attach);
        goto listening;
    }
    a->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (a->lfd < 0) {
        r = -errno;
        goto fail;
    }
    /* only a stale attach socket is removed: never another file, nor the
     * control socket when both are configured at one path */
    r = umxd_sockfile_clear(d->cfg->attach, SOCK_SEQPACKET);
    if (r < 0) {
        umxd_log(LOG_ERR, "attach: %s: %s", d->cfg->attach, umxd_sockfile_strerror(r));
        goto fail;
    }
    if (bind(a->lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto fail;
    }
    umxd_sockfile_note(&a->file, d->cfg->attach);
    if (listen(a->lfd, 64) < 0) {
        r = -errno;
        umxd_sockfile_unlink(&a->file, d->cfg->attach);
        goto fail;
    }
listening:
    /* any local user may connect; what they may claim is decided per route
     * by SO_PEERCRED against the route's allow list */
    chmod(d->cfg->attach, 0666);
    if (d->cfg->user[0]) {
        struct passwd *pw = getpwnam(d->cfg->user);
        if (pw && chown(d->cfg->attach, pw->pw_uid, pw->pw_gid) < 0)
            umxd_log(LOG_WARNING, "attach: chown %s: %s", d->cfg->attach, strerror(errno));
    }
    d->attach = a;
    d->mod_lfd[UMXD_MOD_ATTACH] = a->lfd;
    r = umxd_loop_add(d, a->lfd, EPOLLIN, on_accept, NULL);
    if (r == 0)
        r = umxd_tick_add(d, on_tick, NULL);
    if (r < 0) {
        d->attach = NULL;
        goto fail;
    }
    umxd_log(LOG_INFO, "attach socket %s", d->cfg->attach);
    return 0;
fail:
    if (a->lfd > 0)
        close(a->lfd);
    umx_ft_free(a->ft);
    free(a->buf);
    free(a);
    return r;
}

/* Worker side ---------------------------------------------------------------- */

int umxd_attach_find(struct umxd *d, const struct sockaddr *peer, uint16_t *client, uint32_t *gen,
                     char *route, size_t routelen)
{
    struct attach *a = A(d);
    struct umx_flow_key k;
    struct umx_flow *f;
    struct sockaddr_storage p;
    int r = -ENOENT;
    memset(&p, 0, sizeof(p));
    memcpy(&p, peer, umx_sa_len(peer));
    umx_sa_unmap(&p);
    umx_flow_key_make(&k, NULL, (struct sockaddr *)&p, 0);
    pthread_mutex_lock(&a->mu);
    f = umx_ft_lookup(a->ft, &k);
    if (f) {
        struct shared_flow *sf = umx_flow_data(f);
        struct client *c = &a->c[sf->client];
        if (c->claimed && c->gen == sf->gen) {
            *client = sf->client;
            *gen = sf->gen;
            snprintf(route, routelen, "%s", c->route);
            r = 0;
        }
    }
    pthread_mutex_unlock(&a->mu);
    return r;
}

int umxd_attach_pick(struct umxd *d, const char *route, const struct sockaddr *peer,
                     uint16_t *client, uint32_t *gen)
{
    struct attach *a = A(d);
    unsigned cand[MAX_CLIENTS], nc = 0;
    int r = umxd_config_route(d->cfg, route);
    int share = r >= 0 ? (int)d->cfg->routes[r].share : UMXD_SHARE_EXCLUSIVE;
    pthread_mutex_lock(&a->mu);
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (a->c[i].claimed && strcmp(a->c[i].route, route) == 0)
            cand[nc++] = i;
    if (nc == 0) {
        pthread_mutex_unlock(&a->mu);
        return -ENOENT;
    }
    if (share == UMXD_SHARE_FANOUT) {
        *client = UMXD_ATTACH_FANOUT;
        *gen = 0;
    } else {
        /* balance: spread peers over the holders by a keyed hash of the
         * peer's address (exclusive has one holder) */
        uint8_t key[18];
        struct sockaddr_storage p;
        unsigned pick;
        memset(&p, 0, sizeof(p));
        memcpy(&p, peer, umx_sa_len(peer));
        memset(key, 0, sizeof(key));
        if (p.ss_family == AF_INET)
            memcpy(key, &((struct sockaddr_in *)(void *)&p)->sin_addr, 4);
        else
            memcpy(key, &((struct sockaddr_in6 *)(void *)&p)->sin6_addr, 16);
        pick = cand[umx_siphash24(d->hashkey, key, sizeof(key)) % nc];
        *client = (uint16_t)pick;
        *gen = a->c[pick].gen;
    }
    pthread_mutex_unlock(&a->mu);
    return 0;
}

static int deliver_one(struct attach *a, unsigned i, const struct umx_rx_slot *s)
{
    struct client *c = &a->c[i];
    uint8_t hdr[UMX_ATT_DATA_HDR];
    struct iovec iov[2];
    struct msghdr mh;
    umx_att_encode_hdr(hdr, (const struct sockaddr *)&s->peer,
                       s->has_local ? (const struct sockaddr *)&s->local : NULL);
    iov[0].iov_base = hdr;
    iov[0].iov_len = sizeof(hdr);
    iov[1].iov_base = s->buf;
    iov[1].iov_len = s->len;
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = 2;
    if (sendmsg(c->fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
        int full = errno == EAGAIN || errno == ENOBUFS;
        UMX_CTR_ADD_MT(c->drops, 1);
        UMX_CTR_ADD_MT(*(full ? &a->st.drop_full : &a->st.drop_gone), 1);
        return full ? -EAGAIN : -ESTALE;
    }
    UMX_CTR_ADD_MT(c->rx, 1);
    return 0;
}

int umxd_attach_deliver(struct umxd *d, uint16_t client, uint32_t gen, const char *route,
                        const struct umx_rx_slot *s)
{
    struct attach *a = A(d);
    if (client == UMXD_ATTACH_FANOUT) {
        /* every holder gets a copy; the set is read under the lock since
         * holders come and go */
        int any = 0;
        unsigned cand[MAX_CLIENTS], nc = 0;
        pthread_mutex_lock(&a->mu);
        for (unsigned i = 0; i < MAX_CLIENTS; i++)
            if (a->c[i].claimed && strcmp(a->c[i].route, route) == 0)
                cand[nc++] = i;
        for (unsigned k = 0; k < nc; k++)
            if (deliver_one(a, cand[k], s) == 0)
                any = 1;
        pthread_mutex_unlock(&a->mu);
        return nc == 0 ? -ESTALE : any ? 0 : -EAGAIN;
    }
    if (client >= MAX_CLIENTS || __atomic_load_n(&a->c[client].gen, __ATOMIC_ACQUIRE) != gen)
        return -ESTALE;
    return deliver_one(a, client, s);
}

int umxd_attach_send_batch(struct umxd *d, uint16_t client, uint32_t gen, struct mmsghdr *mm,
                           unsigned n)
{
    struct attach *a = A(d);
    struct client *c;
    int r;
    if (client >= MAX_CLIENTS || __atomic_load_n(&a->c[client].gen, __ATOMIC_ACQUIRE) != gen)
        return -ESTALE;
    c = &a->c[client];
    do {
        r = sendmmsg(c->fd, mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0) {
        int full = errno == EAGAIN || errno == ENOBUFS;
        UMX_CTR_ADD_MT(c->drops, n);
        UMX_CTR_ADD_MT(*(full ? &a->st.drop_full : &a->st.drop_gone), n);
        return full ? -EAGAIN : -ESTALE;
    }
    UMX_CTR_ADD_MT(c->rx, (unsigned)r);
    if ((unsigned)r < n) {
        /* sendmmsg stops at the first message the socket does not take */
        UMX_CTR_ADD_MT(c->drops, n - (unsigned)r);
        UMX_CTR_ADD_MT(a->st.drop_full, n - (unsigned)r);
    }
    return r;
}

int umxd_attach_alive(struct umxd *d, uint16_t client, uint32_t gen)
{
    struct attach *a = A(d);
    if (client == UMXD_ATTACH_FANOUT)
        return 1;
    return client < MAX_CLIENTS && __atomic_load_n(&a->c[client].gen, __ATOMIC_ACQUIRE) == gen;
}

void umxd_attach_stats(struct umxd *d, struct umxd_attach_stats *st)
{
    struct attach *a = A(d);
    memset(st, 0, sizeof(*st));
    if (!a)
        return;
#define LOAD(f, n, h) st->drop_##f = __atomic_load_n(&a->st.drop_##f, __ATOMIC_RELAXED);
    UMXD_ATTACH_DROPS(LOAD)
#undef LOAD
    st->sent = a->st.sent;
    st->refused = a->st.refused;
    st->delivered = a->retired_rx;
    for (unsigned i = 0; i < MAX_CLIENTS; i++) {
        st->delivered += __atomic_load_n(&a->c[i].rx, __ATOMIC_RELAXED);
        st->programs += __atomic_load_n(&a->c[i].claimed, __ATOMIC_RELAXED) != 0;
    }
}

void umxd_attach_fini(struct umxd *d)
{
    struct attach *a = A(d);
    if (!a)
        return;
    for (unsigned i = 0; i < MAX_CLIENTS; i++)
        if (a->c[i].fd > 0)
            close(a->c[i].fd);
    close(a->lfd);
    umxd_sockfile_unlink(&a->file, a->path);
    umx_ft_free(a->ft);
    pthread_mutex_destroy(&a->mu);
    free(a->buf);
    free(a);
    d->attach = NULL;
}
