/*
 * worker.c - one packet-path thread. Each worker owns its SO_REUSEPORT
 * member of every listener, a flow table, upstream sockets, timers and a
 * decision engine; nothing here allocates, logs or locks per datagram.
 *
 * A batch from the shared port reads top to bottom in read_public():
 *   recvmmsg -> for each datagram: umxd_decide() (engine.c, pure) then
 *   act_ingress() (act.c) -> at the end of the batch the queues leave
 *   (txq.c: GSO runs, sendmmsg).
 * Replies: replies.c reads upstream sockets and act_reply() queues each
 * reply to the shared port.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "path_int.h"
#include "quiclb.h"
#include "steer/steer.h"

/* The engine's questions, answered from the daemon's shared state --------- */

static int env_backend_up(void *ctx, unsigned slot, unsigned b, uint64_t now)
{
    struct umxd_worker *w = ctx;
    struct umxd_health *h = &w->d->health[slot][b];
    /* only new flows choose a backend: a draining one keeps its flows */
    if (__atomic_load_n(&h->active_down, __ATOMIC_RELAXED) ||
        __atomic_load_n(&h->draining, __ATOMIC_RELAXED))
        return 0;
    return __atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) <= now;
}

static int env_drained(void *ctx, unsigned slot)
{
    struct umxd_worker *w = ctx;
    return __atomic_load_n(&w->d->drain[slot], __ATOMIC_RELAXED) != 0;
}

static uint64_t env_route_flows(void *ctx, unsigned slot)
{
    struct umxd_worker *w = ctx;
    return w->rst[slot].active_flows;
}

static int env_attach_find(void *ctx, const struct sockaddr *peer, uint16_t *client, uint32_t *cgen,
                           char *route, size_t routelen)
{
    struct umxd_worker *w = ctx;
    if (!w->d->attach)
        return -ENOENT;
    return umxd_attach_find(w->d, peer, client, cgen, route, routelen);
}

static int env_attach_pick(void *ctx, const char *route, const struct sockaddr *peer,
                           uint16_t *client, uint32_t *cgen)
{
    struct umxd_worker *w = ctx;
    if (!w->d->attach)
        return -ENOENT;
    return umxd_attach_pick(w->d, route, peer, client, cgen);
}

/* Route set switching ----------------------------------------------------------- */

static void maybe_switch(struct umxd_worker *w)
{
    struct umxd_routeset *rs = __atomic_load_n(&w->d->rs, __ATOMIC_ACQUIRE);
    struct umxd_routeset *old = w->rs;
    if (rs == old)
        return;
    w->rs = rs;
    w->eng.rs = rs;
    w->eng.prefix_cap = umxd_prefix_cap(rs->cfg, umx_ft_capacity(w->ft));
    umxd_engine_classes(&w->eng);
    if (old) {
        remap_flows(w, old);
        remap_backend_stats(w, old);
    }
    UMX_CTR_ADD(w->st.reloads_seen, 1);
    __atomic_store_n(&w->seen_epoch, rs->epoch, __ATOMIC_RELEASE);
}

/* The shared port ---------------------------------------------------------------- */

static void read_public(struct umxd_worker *w, unsigned li, uint64_t now)
{
    uint32_t ovfl = 0;
    int n = umx_rx(w->pub_fd[li], w->rxb, w->rxb->n, w->pub_family[li], w->pub_port[li], &ovfl);
    int dropped = ovfl && ovfl != w->pub_ovfl[li];
    if (dropped) {
        UMX_CTR_ADD(w->st.rx_kernel_drops, (uint32_t)(ovfl - w->pub_ovfl[li]));
        w->pub_ovfl[li] = ovfl;
    }
    if (n < 0) {
        UMX_CTR_ADD(w->st.rx_errors, 1);
        return;
    }
    /* A backlog that lasts (every batch full for UMXD_OVERLOAD_AFTER_NS) or
     * that overflows the socket (the kernel dropped datagrams) is an
     * overload. Then new flows get a budget per batch (engine.h,
     * UMXD_OVERLOAD_BUDGET) so the socket keeps draining and established
     * flows keep their datagrams; unvalidated newcomers are shed first
     * (drop.rate_limited). Per-prefix limits cannot do this against a
     * flood spread over many prefixes (tests/security/sec-flood.sh). A
     * burst of legitimate clients (a restart) fills a few batches only and
     * is admitted whole (it-restart-burst.sh). */
    if ((unsigned)n >= w->rxb->n) {
        if (!w->backlog_since)
            w->backlog_since = now;
    } else {
        w->backlog_since = 0;
    }
    w->eng.budget =
        (w->backlog_since && now - w->backlog_since >= UMXD_OVERLOAD_AFTER_NS) || dropped
            ? UMXD_OVERLOAD_BUDGET
            : UINT_MAX;
    for (int i = 0; i < n; i++) {
        struct umx_rx_slot *s = &w->rxb->slots[i];
        struct umxd_verdict v;
        if (!s->truncated) {
            UMX_CTR_ADD(w->st.rx_datagrams, 1);
            UMX_CTR_ADD(w->st.rx_bytes, s->len);
        }
        umxd_decide(&w->eng, s, now, &v);
        act_ingress(w, &v, s, li, now);
    }
    /* the receive buffers are reused by the next batch: send now */
    flush_up(w, now);
    flush_pub(w);
    if (w->tx.natt)
        flush_att(w);
    hold_gc(w);
}

/* Timers, snapshots, departures ------------------------------------------------- */

static void arm_timer(struct umxd_worker *w, uint64_t now)
{
    struct itimerspec its;
    uint64_t due = umx_ft_next_expiry(w->ft, now);
    /* at least every second: picks up route-set changes and drains even
     * when no flow is due */
    if (due > 1000000000ull)
        due = 1000000000ull;
    if (due < 1000000ull)
        due = 1000000ull;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_sec = (time_t)(due / 1000000000ull);
    its.it_value.tv_nsec = (long)(due % 1000000000ull);
    timerfd_settime(w->tfd, 0, &its, NULL);
}

static void serve_snapshot(struct umxd_worker *w, uint64_t now)
{
    uint32_t cap;
    pthread_mutex_lock(&w->snap_mu);
    if (!w->snap_req) {
        pthread_mutex_unlock(&w->snap_mu);
        return;
    }
    w->snap_n = 0;
    cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap && w->snap_n < w->snap_max; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        struct umxd_flow_info *o;
        struct umxd_flow *fl;
        const struct umxd_route *rt;
        if (!f || umxd_fl(f)->relay)
            continue;
        fl = umxd_fl(f);
        rt = route_of(w, fl->route);
        if (w->snap_route[0] && strcmp(w->snap_route, rt->name) != 0)
            continue;
        o = &w->snap_out[w->snap_n++];
        memset(o, 0, sizeof(*o));
        memcpy(o->route, rt->name, sizeof(o->route));
        o->peer = fl->peer;
        o->local = fl->local;
        if (!fl->attach && fl->backend < rt->nbackends)
            memcpy(o->backend, rt->backends[fl->backend].text, sizeof(o->backend));
        o->worker = w->id;
        o->established = fl->answered || fl->established;
        o->age_ms = (now - f->created_ns) / 1000000u;
        o->idle_ms = (now - f->last_ns) / 1000000u;
        o->rx_datagrams = fl->rx_dgrams;
        o->rx_bytes = fl->rx_bytes;
        o->tx_datagrams = fl->tx_dgrams;
        o->tx_bytes = fl->tx_bytes;
    }
    w->snap_req = 0;
    w->snap_done = 1;
    pthread_cond_broadcast(&w->snap_cv);
    pthread_mutex_unlock(&w->snap_mu);
}

/* An attached program left: close the flows pinned to it (O(flows), only
 * on departures). */
static void sweep_attach(struct umxd_worker *w)
{
    uint64_t e = __atomic_load_n(&w->d->attach_epoch, __ATOMIC_ACQUIRE);
    uint32_t cap;
    if (e == w->attach_epoch_seen)
        return;
    w->attach_epoch_seen = e;
    cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        if (f && umxd_fl(f)->attach &&
            !umxd_attach_alive(w->d, umxd_fl(f)->client, umxd_fl(f)->cgen))
            remove_flow(w, f, "attached program left");
    }
}

/* Adaptive busy polling (`busy-poll = US`). A request/response exchange
 * through the proxy costs it two wake-ups from epoll_wait (peer -> proxy,
 * backend -> proxy), each a cross-CPU wake-up of an idle, often halted,
 * vCPU: that, not the forwarding work, is most of the latency we add. Kernel
 * busy polling (SO_BUSY_POLL) needs a NAPI id, which loopback and many
 * virtual NICs lack, so the worker polls itself: after a round that saw
 * datagrams it keeps calling epoll_wait with timeout 0 until `busy-poll` us
 * have passed since the last one, then sleeps again. The budget is read
 * from the worker's route set, so a reload changes it between rounds (0
 * stops polling at once). The cost: a worker whose traffic never pauses
 * longer than the budget never sleeps. */
static int busy_poll_timeout(const struct umxd_worker *w, int traffic, uint64_t now,
                             uint64_t *until)
{
    uint64_t budget = (uint64_t)w->rs->cfg->busy_poll_us * 1000u;
    if (!budget)
        return 1000;
    if (traffic)
        *until = now + budget;
    return now < *until ? 0 : 1000;
}

static void drain_fd(int fd)
{
    uint64_t v;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* already drained, or a spurious wake-up */
    }
}

static void *worker_main(void *arg)
{
    struct umxd_worker *w = arg;
    struct epoll_event evs[64];
    uint64_t poll_until = 0; /* busy-poll: do not sleep before this time */
    int timeout = 1000;
    maybe_switch(w);
    if (w->d->handoff_in && !w->handoff_done) {
        /* upgrade: adopt the old process's flows before the first read */
        handoff_import(w);
        w->handoff_done = 1;
    }
    arm_timer(w, umx_now_ns());
    while (!__atomic_load_n(&w->stop, __ATOMIC_RELAXED)) {
        int n = epoll_wait(w->epfd, evs, (int)UMX_ARRAY_LEN(evs), timeout);
        uint64_t now = umx_now_ns();
        int traffic = 0;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        maybe_switch(w);
        sweep_attach(w);
        UMX_CTR_ADD(w->loops, 1);
        for (int i = 0; i < n; i++) {
            uint64_t u = evs[i].data.u64;
            unsigned type = (unsigned)(u >> 56);
            uint32_t idx = (uint32_t)u;
            switch (type) {
            case EV_PUB:
                read_public(w, idx, now);
                traffic = 1;
                break;
            case EV_UP:
                read_upstream(w, idx, (uint32_t)(u >> 32) & 0xffffff, now);
                traffic = 1;
                break;
            case EV_SHR:
                read_shared(w, idx, evs[i].events, now);
                traffic = 1;
                break;
            case EV_WAKE:
                drain_fd(w->evfd);
                break;
            case EV_TIMER:
                drain_fd(w->tfd);
                umx_ft_expire(w->ft, now, 4096, release_cb, w);
                arm_timer(w, now);
                break;
            default:
                break;
            }
        }
        mbox_drain(w, now);
        serve_snapshot(w, now);
        timeout = busy_poll_timeout(w, traffic, now, &poll_until);
    }
    if (__atomic_load_n(&w->stop, __ATOMIC_RELAXED) == 2)
        return NULL; /* frozen for an upgrade (handoff.c): keep every flow */
    /* close every flow's upstream socket */
    for (uint32_t i = 0; i < umx_ft_capacity(w->ft); i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        if (f) {
            close_flow(w, f, "shutdown");
            umx_ft_remove(w->ft, f);
        }
    }
    for (unsigned k = 0; k < 2; k++)
        if (w->shr_fd[k] >= 0) {
            close(w->shr_fd[k]);
            w->shr_fd[k] = -1;
        }
    return NULL;
}

/* Start-up ---------------------------------------------------------------------- */

static int engine_init(struct umxd_worker *w)
{
    struct umxd *d = w->d;
    w->rate_flows = calloc(UMXD_RATE_SLOTS, sizeof(*w->rate_flows));
    w->rate_replies = calloc(UMXD_RATE_SLOTS, sizeof(*w->rate_replies));
    w->prefix = calloc(UMXD_PREFIX_SLOTS, sizeof(*w->prefix));
    w->sessions = calloc((size_t)UMXD_SESSION_SETS * UMXD_SESSION_WAYS, sizeof(*w->sessions));
    if (!w->rate_flows || !w->rate_replies || !w->prefix || !w->sessions)
        return -ENOMEM;
    /* QUIC-LB's AES context, one per worker: made here, never on the path */
    if (umxd_qlb_aes_new(&w->eng.qlb) < 0)
        return -ENOMEM;
    w->env.ctx = w;
    w->env.backend_up = env_backend_up;
    w->env.drained = env_drained;
    w->env.route_flows = env_route_flows;
    w->env.attach_find = env_attach_find;
    w->env.attach_pick = env_attach_pick;
    w->env.roam_find = roam_find_shared;
    w->env.roam_lens = roam_lens_shared;
    w->eng.ft = w->ft;
    w->eng.pstate = w->pstate;
    w->eng.hashkey = d->hashkey;
    w->eng.env = &w->env;
    w->eng.self = w->id;
    w->eng.budget = UINT_MAX;
    w->eng.rate_flows = w->rate_flows;
    w->eng.rate_replies = w->rate_replies;
    w->eng.prefix = w->prefix;
    w->eng.sessions = w->sessions;
    w->eng.prefix_cap = umxd_prefix_cap(d->rs->cfg, umx_ft_capacity(w->ft));
    return 0;
}

int umxd_worker_start(struct umxd *d, int id)
{
    int r = umxd_worker_new(d, id);
    return r < 0 ? r : worker_run(d->w[id]);
}

/* Everything but the thread: an upgrade allocates the tables (tens of MB
 * to touch) before the old process stops reading, not during the switch. */
int umxd_worker_new(struct umxd *d, int id)
{
    struct umxd_worker *w = calloc(1, sizeof(*w));
    const struct umxd_config *c = d->rs->cfg;
    int r;
    if (!w)
        return -ENOMEM;
    w->d = d;
    w->id = id;
    w->gso_ok = 1;
    w->shr_fd[0] = w->shr_fd[1] = -1;
    w->down_log = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 5);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    w->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    pthread_mutex_init(&w->snap_mu, NULL);
    pthread_cond_init(&w->snap_cv, NULL);
    d->w[id] = w;
    if (w->epfd < 0 || w->evfd < 0 || w->tfd < 0)
        return -errno;
    r = umx_ft_new(&w->ft, c->max_flows, sizeof(struct umxd_flow), d->hashkey);
    if (r < 0)
        return r;
    /* the kernel learns which worker holds each peer (steer/steer.h) */
    if (umxd_steer_mirrors(d->steer)) {
        r = umxd_steer_peers_new(d->steer, (unsigned)id, umx_ft_capacity(w->ft), &w->steer_peers);
        if (r < 0)
            return r;
        umx_ft_watch(w->ft, umxd_steer_watch, w->steer_peers);
    }
    /* shared-upstream address map: twice the flow table, so a probe run
     * always ends at an empty slot */
    r = umxd_addrmap_init(&w->shr, 2u * umx_ft_capacity(w->ft));
    if (r == 0)
        r = umx_rxb_new(&w->rxb, c->batch, 65535);
    if (r == 0)
        r = umx_rxb_new(&w->uprxb, c->batch, 65535);
    if (r == 0)
        r = txq_alloc(&w->tx, c->batch);
    if (r == 0)
        r = mbox_new(&w->mbox);
    if (r < 0)
        return r;
    w->hold = calloc(HOLD_SLOTS, sizeof(*w->hold));
    if (!w->hold)
        return -ENOMEM;
    if (umx_probe_state_new(&w->pstate, 1024) < 0)
        w->pstate = NULL; /* probes then decide on one datagram */
    r = engine_init(w);
    if (r < 0)
        return r;
    for (unsigned li = 0; li < c->nlisten; li++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        w->pub_fd[li] = d->lfd[li][id];
        if (getsockname(w->pub_fd[li], (struct sockaddr *)&ss, &sl) < 0)
            return -errno;
        w->pub_family[li] = ss.ss_family;
        w->pub_port[li] = ss.ss_family == AF_INET ? ((struct sockaddr_in *)(void *)&ss)->sin_port
                                                  : ((struct sockaddr_in6 *)(void *)&ss)->sin6_port;
        r = add_ev(w->epfd, w->pub_fd[li], ev_make(EV_PUB, 0, li));
        if (r < 0)
            return r;
    }
    r = add_ev(w->epfd, w->evfd, ev_make(EV_WAKE, 0, 0));
    if (r == 0)
        r = add_ev(w->epfd, w->tfd, ev_make(EV_TIMER, 0, 0));
    return r;
}

int umxd_worker_go(struct umxd *d, int id)
{
    return worker_run(d->w[id]);
}

/* Starts (or, after a failed upgrade, restarts) the worker's thread. */
int worker_run(struct umxd_worker *w)
{
    return -pthread_create(&w->thread, NULL, worker_main, w);
}

/* Frees a stopped (or never started) worker. */
void worker_free(struct umxd_worker *w)
{
    umx_ft_free(w->ft);
    umxd_steer_peers_free(w->steer_peers);
    umxd_addrmap_free(&w->shr);
    umx_rxb_free(w->rxb);
    umx_rxb_free(w->uprxb);
    txq_free(&w->tx);
    free(w->hold);
    free(w->rate_flows);
    free(w->rate_replies);
    free(w->prefix);
    free(w->sessions);
    umxd_qlb_aes_free(w->eng.qlb);
    mbox_free(w->mbox);
    umx_probe_state_free(w->pstate);
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->evfd >= 0)
        close(w->evfd);
    if (w->tfd >= 0)
        close(w->tfd);
    pthread_mutex_destroy(&w->snap_mu);
    pthread_cond_destroy(&w->snap_cv);
    free(w);
}
