/*
 * kdp.c - the kernel datapath's glue: the queue thread and its decision
 * engine, the table's life (stale at start, rebuilt on reload, removed at
 * exit), and the views the control socket and metrics ask for.
 *
 * The queue thread is a worker without sockets: it owns an engine with its
 * own flow table (capped), probe state (split QUIC ClientHellos), token
 * buckets and session table, reads the route set the workers read, and
 * turns each verdict into a netfilter verdict:
 *   forward on a kernel route    NF_ACCEPT, mark KERNEL|slot|backend: the
 *                                table DNATs the flow, conntrack carries it
 *   hold (a split first message) no verdict yet: the datagram waits in the
 *                                queue, released in order with the next one
 *   drop (no route, or a kernel  NF_DROP, counted
 *         route's admission)
 *   anything else                NF_ACCEPT, mark USER: the flow stays on the
 *                                user path (the workers), later datagrams
 *                                skip the queue
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <errno.h>
#include <limits.h>
#include <linux/netfilter.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kdp_int.h"
#include "kdp_self.h"
#include "path/path.h"
#include "log.h"
#include "rules/probe.h"
#include "rules/roam.h"
#include "udpmuxd.h"

/* The engine's questions -------------------------------------------------------- */

static int env_backend_up(void *ctx, unsigned slot, unsigned b, uint64_t now)
{
    struct kdp *k = ctx;
    struct umxd_health *h = &k->d->health[slot][b];
    if (__atomic_load_n(&h->active_down, __ATOMIC_RELAXED) ||
        __atomic_load_n(&h->draining, __ATOMIC_RELAXED))
        return 0;
    return __atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) <= now;
}

static int env_drained(void *ctx, unsigned slot)
{
    struct kdp *k = ctx;
    return __atomic_load_n(&k->d->drain[slot], __ATOMIC_RELAXED) != 0;
}

static uint64_t env_route_flows(void *ctx, unsigned slot)
{
    struct kdp *k = ctx;
    return slot < UMXD_MAX_SLOTS ? k->route_flows[slot] : 0;
}

void kdp_flow_release(struct umx_flow *f, void *arg, int reason)
{
    struct kdp *k = arg;
    const struct umxd_flow *fl = umxd_fl(f);
    (void)reason;
    umxd_flow_gone(&k->eng, f);
    if (fl->slot < UMXD_MAX_SLOTS && k->route_flows[fl->slot])
        k->route_flows[fl->slot]--;
}

/* Route sets ------------------------------------------------------------------ */

static void maybe_switch(struct kdp *k)
{
    const struct umxd_routeset *rs = __atomic_load_n(&k->d->rs, __ATOMIC_ACQUIRE);
    const struct umxd_routeset *old = k->rs;
    if (rs == old)
        return;
    k->rs = rs;
    k->eng.rs = rs;
    k->eng.prefix_cap = umxd_prefix_cap(rs->cfg, umx_ft_capacity(k->ft));
    umxd_engine_classes(&k->eng);
    if (old) {
        /* the engine's flows follow their route by name, like the workers' */
        for (uint32_t i = 0; i < umx_ft_capacity(k->ft); i++) {
            struct umx_flow *f = umx_ft_at(k->ft, i);
            struct umxd_flow *fl;
            int nr;
            if (!f)
                continue;
            fl = umxd_fl(f);
            nr = umxd_config_route(rs->cfg, old->cfg->routes[fl->route].name);
            if (nr < 0 || !rs->cfg->routes[nr].kernel ||
                fl->backend >= rs->cfg->routes[nr].nbackends) {
                kdp_flow_release(f, k, 0);
                umx_ft_remove(k->ft, f);
                continue;
            }
            fl->route = (uint16_t)nr;
            umx_ft_touch(k->ft, f, umxd_cls_of(fl, (unsigned)nr), f->last_ns);
        }
    }
    __atomic_store_n(&k->seen_epoch, rs->epoch, __ATOMIC_RELEASE);
}

/* Verdicts --------------------------------------------------------------------- */

static int same_peer(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    return memcmp(a, b,
                  a->ss_family == AF_INET ? sizeof(struct sockaddr_in)
                                          : sizeof(struct sockaddr_in6)) == 0;
}

/* Held datagrams of this peer leave first, with the verdict of the one that
 * completed the decision: nothing is reordered. */
static void release_holds(struct kdp *k, const struct sockaddr_storage *peer, int verdict,
                          uint32_t field)
{
    unsigned j = 0;
    for (unsigned i = 0; i < k->nhold; i++) {
        struct kdp_hold *h = &k->hold[i];
        if (peer && !same_peer(&h->peer, peer)) {
            k->hold[j++] = *h;
            continue;
        }
        kdp_nfq_verdict(k->q, UMXD_KDP_QUEUE, h->id, verdict, h->host_mark | field);
    }
    k->nhold = j;
}

static void expire_holds(struct kdp *k, uint64_t now)
{
    unsigned j = 0;
    for (unsigned i = 0; i < k->nhold; i++) {
        struct kdp_hold *h = &k->hold[i];
        if (now - h->since < KDP_HOLD_NS) {
            k->hold[j++] = *h;
            continue;
        }
        /* never completed: the workers hold and time it out as before */
        kdp_nfq_verdict(k->q, UMXD_KDP_QUEUE, h->id, NF_ACCEPT, h->host_mark | UMXD_KDP_MARK_USER);
        KDP_ADD(k->st.to_user, 1);
    }
    k->nhold = j;
}

static unsigned listener_of(const struct umxd_config *c, const struct sockaddr_storage *dst)
{
    for (unsigned l = 0; l < c->nlisten; l++) {
        const struct sockaddr_storage *ls = &c->listen[l];
        uint16_t lp = ls->ss_family == AF_INET ? ((const struct sockaddr_in *)ls)->sin_port
                                               : ((const struct sockaddr_in6 *)ls)->sin6_port;
        uint16_t dp = dst->ss_family == AF_INET ? ((const struct sockaddr_in *)dst)->sin_port
                                                : ((const struct sockaddr_in6 *)dst)->sin6_port;
        if (lp == dp)
            return l;
    }
    return 0;
}

static uint64_t now_ns(void)
{
    return umx_now_ns();
}

/* The session key datagram p names for kernel flow f (dir: whose datagram
 * it is), learnt for roaming; 1 when f gained it. The key lengths are kept
 * for QUIC short-header lookups, as umxd_flow_reply does. */
static int learn_key(struct kdp *k, struct umx_flow *f, const struct kdp_pkt *p,
                     enum umx_roam_dir dir)
{
    const struct umxd_flow *fl = umxd_fl(f);
    uint8_t rk[UMX_ROAM_MAX];
    size_t klen = 0;
    int kind = 0;
    if (!k->eng.protos[fl->route] ||
        umx_roam_key(p->payload, p->len, dir, k->eng.protos[fl->route], 0, rk + 1, &klen, &kind) !=
            1 ||
        !klen)
        return 0;
    rk[0] = (uint8_t)kind;
    k->eng.roam_lens |= kind == UMX_ROAM_QUIC ? 1u << klen : 1u;
    return umx_ft_roam_set(k->ft, f, rk, klen + 1) == 0;
}

/* The queue thread's flow of a queued datagram (from, to: its peer and our
 * listener in the flow key's order), NULL when it has none. The datagram
 * leaves unchanged (its tag taken off) whatever is learnt from it. */
static struct umx_flow *pass_flow(struct kdp *k, const struct kdp_pkt *p,
                                  const struct sockaddr_storage *local,
                                  const struct sockaddr_storage *peer)
{
    struct umx_flow_key key;
    kdp_nfq_verdict(k->q, p->queue, p->id, NF_ACCEPT, p->mark & ~UMXD_KDP_MARK_MASK);
    umx_flow_key_make(&key, (const struct sockaddr *)local, (const struct sockaddr *)peer, 0);
    return umx_ft_lookup(k->ft, &key);
}

/* A kernel flow's 2nd or 3rd datagram from the peer after the backend
 * answered (the table queues it for routes that roam): the flow is
 * established, as the workers mark a flow whose peer sends after the
 * answer, and the session key the datagram carries (the WireGuard receiver
 * index or QUIC connection ID the backend gave) is learnt for roaming. */
static void on_proof(struct kdp *k, const struct kdp_pkt *p, uint64_t now)
{
    struct umx_flow *f = pass_flow(k, p, &p->dst, &p->src);
    struct umxd_flow *fl;
    KDP_ADD(k->st.replies, 1);
    if (!f)
        return;
    fl = umxd_fl(f);
    if (!fl->established) {
        fl->answered = 1;
        fl->established = 1;
        umx_ft_touch(k->ft, f, umxd_cls_of(fl, fl->route), now);
    }
    if (learn_key(k, f, p, UMX_ROAM_FROM_CLIENT))
        KDP_ADD(k->st.keys, 1);
}

/* A backend's handshake datagram to the peer of a kernel flow on a route
 * that roams (nft.c, learn_rule; queued after the NAT is undone, so it
 * reads listener -> peer): the session key it names (a WireGuard rekey's
 * index, a QUIC server's connection ID) is learnt for the flow, as the
 * workers learn it from every reply (umxd_flow_reply). */
static void on_learn(struct kdp *k, const struct kdp_pkt *p)
{
    struct umx_flow *f = pass_flow(k, p, &p->src, &p->dst);
    KDP_ADD(k->st.handshakes, 1);
    if (f && learn_key(k, f, p, UMX_ROAM_FROM_SERVER))
        KDP_ADD(k->st.reply_keys, 1);
}

static void on_pkt(void *arg, const struct kdp_pkt *p)
{
    struct kdp *k = arg;
    const struct umxd_config *c = k->rs->cfg;
    uint64_t now = now_ns();
    uint32_t host = p->mark & ~UMXD_KDP_MARK_MASK;
    struct umx_rx_slot s;
    struct umxd_verdict v;
    const struct umxd_route *rt;
    /* the table queues new flows (no udpmuxd mark) and replies that teach
     * roaming keys (a kernel mark) */
    {
        uint32_t tag = (p->mark & UMXD_KDP_MARK_MASK) >> UMXD_KDP_MARK_SHIFT;
        if ((tag & (UMXD_KDP_F_KERNEL | UMXD_KDP_F_USER)) ==
            (UMXD_KDP_F_KERNEL | UMXD_KDP_F_USER)) {
            /* a kernel flow's early datagram kept in line behind the ones
             * still queued (nft.c, order_rule): it leaves as it came */
            kdp_nfq_verdict(k->q, p->queue, p->id, NF_ACCEPT, p->mark & ~UMXD_KDP_MARK_MASK);
            KDP_ADD(k->st.ordered, 1);
            return;
        }
        if ((tag & UMXD_KDP_F_KERNEL) && p->hook == NF_INET_POST_ROUTING) {
            on_learn(k, p);
            return;
        }
        if (tag & UMXD_KDP_F_KERNEL) {
            on_proof(k, p, now);
            return;
        }
    }
    KDP_ADD(k->st.queued, 1);
    memset(&s, 0, sizeof(s));
    s.buf = (uint8_t *)(uintptr_t)p->payload;
    s.len = p->len;
    s.peer = p->src;
    s.peer_len = p->family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    s.local = p->dst;
    s.local_len = s.peer_len;
    s.has_local = 1;
    umxd_decide(&k->eng, &s, now, &v);
    rt = v.route >= 0 ? &c->routes[v.route] : NULL;
    if (v.kind == UMXD_V_HOLD) {
        if (k->nhold < KDP_HOLDS) {
            struct kdp_hold *h = &k->hold[k->nhold++];
            h->id = p->id;
            h->host_mark = host;
            h->since = now;
            h->peer = p->src;
            KDP_ADD(k->st.held, 1);
            return;
        }
        kdp_nfq_verdict(k->q, p->queue, p->id, NF_ACCEPT, host | UMXD_KDP_MARK_USER);
        KDP_ADD(k->st.to_user, 1);
        return;
    }
    if (v.kind == UMXD_V_FORWARD && rt && rt->kernel) {
        int b = v.backend;
        if (umxd_verdict_new(&v)) {
            struct umx_flow *f =
                umxd_flow_add(&k->eng, &v, &s, listener_of(c, &p->dst), now, kdp_flow_release, k);
            /* a full table only costs stickiness: conntrack has the flow */
            if (f && umxd_fl(f)->slot < UMXD_MAX_SLOTS)
                k->route_flows[umxd_fl(f)->slot]++;
        } else if (v.flow) {
            struct umx_flow *f = v.flow;
            if (v.how == UMXD_HOW_ROAMED)
                umxd_flow_move(&k->eng, f, &v.key, &s);
            umxd_flow_rx(&k->eng, f, s.buf, s.len, umxd_fl(f)->listener, now);
            b = umxd_fl(f)->backend;
        }
        /* NAT cannot change the address family: a backend of the other
         * family is the workers' (sockets translate) */
        if (b >= 0 && (unsigned)b < rt->nbackends && rt->backends[b].addr.ss_family == p->family) {
            uint32_t field = umxd_kdp_mark(k->rs->slot[v.route], (unsigned)b);
            release_holds(k, &p->src, NF_ACCEPT, field);
            kdp_nfq_verdict(k->q, p->queue, p->id, NF_ACCEPT, host | field);
            KDP_ADD(k->st.to_kernel, 1);
            if (v.how == UMXD_HOW_ROAMED || v.how == UMXD_HOW_SESSION)
                KDP_ADD(k->st.roamed, 1);
            return;
        }
    }
    /* drops the workers would make the same way (no route, a kernel route's
     * admission, action = drop) stay in the kernel; an attach route's
     * "unclaimed" is not known here (no attached programs): the workers'. */
    if (v.kind == UMXD_V_DROP && (!rt || rt->kernel || rt->action == UMXD_DROP)) {
        release_holds(k, &p->src, NF_DROP, 0);
        kdp_nfq_verdict(k->q, p->queue, p->id, NF_DROP, 0);
        KDP_ADD(k->st.dropped, 1);
        return;
    }
    release_holds(k, &p->src, NF_ACCEPT, UMXD_KDP_MARK_USER);
    kdp_nfq_verdict(k->q, p->queue, p->id, NF_ACCEPT, host | UMXD_KDP_MARK_USER);
    KDP_ADD(k->st.to_user, 1);
}

/* The order rule counts a kernel flow's datagrams with conntrack's packet
 * counters (nft.c, order_rule): with accounting off they read 0, and every
 * unanswered datagram of the flows created meanwhile is queued for the
 * flow's whole life (still carried, slowly). udpmuxd turns it on at start;
 * after that the seccomp list allows only read-only opens, so someone
 * turning it off is told (once per change, within KDP_ACCT_NS), not
 * overruled. */
#define KDP_ACCT_NS (2000ull * 1000000ull)
static void watch_accounting(struct kdp *k, uint64_t now)
{
    int on;
    if (now - k->acct_checked < KDP_ACCT_NS)
        return;
    k->acct_checked = now;
    on = kdp_ct_accounting_on();
    if (on < 0 || on == !k->acct_off)
        return;
    k->acct_off = !on;
    if (k->acct_off)
        umxd_log(LOG_WARNING, "kernel datapath: net.netfilter.nf_conntrack_acct was turned off: "
                              "every unanswered datagram of new kernel flows now goes through "
                              "the queue; turn it back on");
    else
        umxd_log(LOG_NOTICE, "kernel datapath: net.netfilter.nf_conntrack_acct is on again");
}

static void *queue_main(void *arg)
{
    struct kdp *k = arg;
    pthread_setname_np(pthread_self(), "umx-kdp");
    while (!__atomic_load_n(&k->stop, __ATOMIC_ACQUIRE)) {
        uint64_t now;
        int n;
        maybe_switch(k);
        n = kdp_nfq_read(k->q, k->nhold ? 100 : 250, on_pkt, k);
        now = now_ns();
        expire_holds(k, now);
        umx_ft_expire(k->ft, now, 256, kdp_flow_release, k);
        if (kdp_nfq_flush(k->q) < 0)
            KDP_ADD(k->st.verdict_err, 1);
        watch_accounting(k, now);
        if (n < 0 && n != -EINTR)
            KDP_ADD(k->st.verdict_err, 1);
    }
    /* what is still held goes to the workers' path */
    release_holds(k, NULL, NF_ACCEPT, UMXD_KDP_MARK_USER);
    kdp_nfq_flush(k->q);
    return NULL;
}

/* Life ------------------------------------------------------------------------ */

int umxd_kdp_wanted(const struct umxd_config *cfg)
{
    for (unsigned i = 0; i < cfg->nroutes; i++)
        if (cfg->routes[i].kernel)
            return 1;
    return 0;
}

static void kdp_free(struct kdp *k)
{
    if (!k)
        return;
    kdp_nfq_close(k->q);
    umx_ft_free(k->ft);
    umx_probe_state_free(k->pstate);
    free(k->rate_flows);
    free(k->rate_replies);
    free(k->prefix);
    free(k->sessions);
    free(k);
}

static int kdp_new(struct umxd *d, struct kdp **out)
{
    struct kdp *k = calloc(1, sizeof(*k));
    uint32_t cap = d->cfg->max_flows < KDP_FLOWS_MAX ? d->cfg->max_flows : KDP_FLOWS_MAX;
    int r;
    if (!k)
        return -ENOMEM;
    k->d = d;
    r = umx_ft_new(&k->ft, cap ? cap : 1024, sizeof(struct umxd_flow), d->hashkey);
    if (r == 0 && umx_probe_state_new(&k->pstate, 1024) < 0)
        k->pstate = NULL;
    k->rate_flows = calloc(UMXD_RATE_SLOTS, sizeof(*k->rate_flows));
    k->rate_replies = calloc(UMXD_RATE_SLOTS, sizeof(*k->rate_replies));
    k->prefix = calloc(UMXD_PREFIX_SLOTS, sizeof(*k->prefix));
    k->sessions = calloc((size_t)UMXD_SESSION_SETS * UMXD_SESSION_WAYS, sizeof(*k->sessions));
    if (r == 0 && (!k->rate_flows || !k->rate_replies || !k->prefix || !k->sessions))
        r = -ENOMEM;
    if (r < 0) {
        kdp_free(k);
        return r;
    }
    k->env.ctx = k;
    k->env.backend_up = env_backend_up;
    k->env.drained = env_drained;
    k->env.route_flows = env_route_flows;
    k->eng.ft = k->ft;
    k->eng.pstate = k->pstate;
    k->eng.hashkey = d->hashkey;
    k->eng.env = &k->env;
    k->eng.self = -1;
    k->eng.budget = UINT_MAX;
    k->eng.rate_flows = k->rate_flows;
    k->eng.rate_replies = k->rate_replies;
    k->eng.prefix = k->prefix;
    k->eng.sessions = k->sessions;
    *out = k;
    return 0;
}

/* An upgrade: the old process's queue socket (d->kdp_fd) is adopted, not
 * bound; its table and its conntrack entries are the running kernel flows,
 * not stale ones. Our route set's table replaces its table in one
 * transaction (the slots came with the hand-over, so every kernel flow's
 * mark still names its route and backend); the queue thread starts in
 * umxd_kdp_go, once the old one stopped reading. */
static int kdp_adopt(struct umxd *d)
{
    struct kdp *k;
    int fd = d->kdp_fd, r;
    d->kdp_fd = -1;
    r = kdp_new(d, &k);
    if (r < 0) {
        close(fd);
        goto fail;
    }
    r = kdp_nfq_adopt(&k->q, fd);
    if (r < 0) {
        kdp_free(k);
        goto fail;
    }
    maybe_switch(k);
    d->kdp = k;
    umxd_log(LOG_INFO,
             "kernel datapath: took over NFQUEUE %u and %u and table ip/ip6 %s from the old "
             "process; its kernel flows go on",
             UMXD_KDP_QUEUE, UMXD_KDP_QUEUE_ORDER, UMXD_KDP_TABLE);
    /* our configuration replaces the old one as a reload would: the table
     * for our routes, the kernel flows of routes we lack end (the old
     * process puts its own table back if we give up) */
    umxd_kdp_reload(d);
    return 0;
fail:
    umxd_log(LOG_ERR, "kernel datapath: cannot take over the queue: %s", strerror(-r));
    return r;
}

int umxd_kdp_init(struct umxd *d)
{
    struct kdp *k;
    int r, wanted = umxd_kdp_wanted(d->cfg);
    if (d->kdp_fd >= 0)
        return kdp_adopt(d);
    if (kdp_nft_exists()) {
        umxd_log(LOG_NOTICE, "kernel datapath: removing the table a previous udpmuxd left behind");
        r = kdp_nft_apply(NULL);
        if (r < 0)
            umxd_log(LOG_ERR, "kernel datapath: cannot remove the stale table: %s", strerror(-r));
        r = kdp_ct_delete(NULL);
        if (r > 0)
            umxd_log(LOG_NOTICE, "kernel datapath: removed %d stale conntrack entries", r);
    }
    if (!wanted)
        return 0;
    r = kdp_new(d, &k);
    if (r < 0)
        goto fail;
    if (kdp_ct_accounting() < 0)
        umxd_log(LOG_WARNING, "kernel datapath: cannot turn on conntrack accounting "
                              "(net.netfilter.nf_conntrack_acct): flows show no counters");
    r = kdp_nfq_open(&k->q);
    if (r < 0) {
        umxd_log(LOG_ERR, "kernel datapath: NFQUEUE %u: %s%s", UMXD_KDP_QUEUE, strerror(-r),
                 r == -EBUSY ? " (another process holds the queue)" : "");
        kdp_free(k);
        return r;
    }
    maybe_switch(k);
    r = kdp_nft_apply(d->rs);
    if (r < 0) {
        umxd_log(LOG_ERR, "kernel datapath: cannot install table %s %s: %s", "ip[6]",
                 UMXD_KDP_TABLE, strerror(-r));
        kdp_free(k);
        return r;
    }
    r = pthread_create(&k->th, NULL, queue_main, k);
    if (r) {
        kdp_nft_apply(NULL);
        kdp_free(k);
        return -r;
    }
    k->started = 1;
    /* peers that sent between our bind and now made conntrack entries the
     * queue never saw: without this, their flows would never be carried
     * by the kernel while they keep sending (kdp_int.h) */
    r = kdp_ct_delete_unmarked(d->cfg->listen, d->cfg->nlisten);
    if (r > 0)
        umxd_log(LOG_INFO, "kernel datapath: reset %d conntrack entries made before the queue", r);
    else if (r < 0)
        umxd_log(LOG_WARNING,
                 "kernel datapath: cannot reset conntrack entries made before the "
                 "queue: %s",
                 strerror(-r));
    d->kdp = k;
    umxd_log(
        LOG_INFO,
        "kernel datapath: table ip/ip6 %s, NFQUEUE %u and %u, mark mask 0x%08x; first datagrams "
        "of new flows are classified, the kernel carries the rest",
        UMXD_KDP_TABLE, UMXD_KDP_QUEUE, UMXD_KDP_QUEUE_ORDER, UMXD_KDP_MARK_MASK);
    return 0;
fail:
    umxd_log(LOG_ERR, "kernel datapath: %s", strerror(-r));
    return r;
}

void umxd_kdp_reload(struct umxd *d)
{
    struct kdp *k = d->kdp;
    const struct umxd_routeset *rs = d->rs;
    uint8_t *keep;
    int r;
    if (!k) {
        if (umxd_kdp_wanted(d->cfg))
            umxd_log(LOG_WARNING, "kernel datapath: udpmuxd started without kernel routes; "
                                  "datapath = kernel takes effect after a restart (until then "
                                  "the workers carry those routes)");
        return;
    }
    /* the table is updated in place: running flows of routes whose
     * timeouts stay keep their conntrack timeout policy (nft.c) */
    r = kdp_nft_apply(rs);
    if (r < 0)
        umxd_log(LOG_ERR, "kernel datapath: cannot update the table: %s", strerror(-r));
    else if (r > 0)
        umxd_log(LOG_NOTICE,
                 "kernel datapath: timeouts changed on %d kernel route%s: new flows get the new "
                 "values, running flows the kernel's default UDP timeouts",
                 r, r == 1 ? "" : "s");
    keep = calloc(4096, 1);
    if (!keep)
        return;
    for (unsigned i = 0; i < rs->cfg->nroutes; i++)
        if (rs->cfg->routes[i].kernel)
            for (unsigned b = 0; b < rs->cfg->routes[i].nbackends; b++)
                keep[(umxd_kdp_mark(rs->slot[i], b) >> UMXD_KDP_MARK_SHIFT) & 0xfffu] = 1;
    r = kdp_ct_delete(keep);
    free(keep);
    if (r > 0)
        umxd_log(LOG_NOTICE, "kernel datapath: ended %d kernel flows of removed routes", r);
}

int umxd_kdp_go(struct umxd *d)
{
    struct kdp *k = d->kdp;
    const struct umxd_handoff_in *in = d->handoff_in;
    int r;
    if (!k || k->started)
        return 0;
    if (in)
        kdp_adopt_flows(k, in);
    __atomic_store_n(&k->stop, 0, __ATOMIC_RELEASE);
    r = pthread_create(&k->th, NULL, queue_main, k);
    if (r) {
        umxd_log(LOG_ERR, "kernel datapath: cannot start the queue thread: %s", strerror(r));
        return -r;
    }
    k->started = 1;
    return 0;
}

/* Stops the queue thread between two reads (its verdicts flushed; what it
 * held goes to the workers' path, as at exit) and closes nothing. */
static void kdp_stop(struct kdp *k)
{
    __atomic_store_n(&k->stop, 1, __ATOMIC_RELEASE);
    if (k->started)
        pthread_join(k->th, NULL);
    k->started = 0;
}

int umxd_kdp_handoff_fd(const struct umxd *d)
{
    const struct kdp *k = d->kdp;
    return k ? kdp_nfq_fd(k->q) : -1;
}

void umxd_kdp_pause(struct umxd *d)
{
    if (d->kdp)
        kdp_stop(d->kdp);
}

void umxd_kdp_resume(struct umxd *d, int table)
{
    if (!d->kdp)
        return;
    if (umxd_kdp_go(d) < 0)
        umxd_log(LOG_ERR, "kernel datapath: the queue is not read: new flows' first datagrams "
                          "are dropped (restart udpmuxd)");
    if (!table)
        return;
    /* the new process installed its route set's table: ours again, as a
     * reload makes it (in place: what waits in the queue stays there); the
     * kernel flows of routes only the new process had end */
    umxd_kdp_reload(d);
}

void umxd_kdp_leave(struct umxd *d)
{
    struct kdp *k = d->kdp;
    if (!k)
        return;
    /* verdicts for what we read go out before the socket is the old
     * process's alone again */
    kdp_stop(k);
    d->kdp = NULL;
    kdp_free(k);
}

void umxd_kdp_fini(struct umxd *d)
{
    struct kdp *k = d->kdp;
    int r;
    if (!k)
        return;
    __atomic_store_n(&k->stop, 1, __ATOMIC_RELEASE);
    if (k->started)
        pthread_join(k->th, NULL);
    r = kdp_nft_apply(NULL);
    if (r < 0)
        umxd_log(LOG_ERR, "kernel datapath: cannot remove table %s: %s", UMXD_KDP_TABLE,
                 strerror(-r));
    r = kdp_ct_delete(NULL);
    if (r > 0)
        umxd_log(LOG_INFO, "kernel datapath: ended %d kernel flows", r);
    d->kdp = NULL;
    kdp_free(k);
}

uint64_t umxd_kdp_seen_epoch(const struct umxd *d)
{
    const struct kdp *k = d->kdp;
    return k ? __atomic_load_n(&k->seen_epoch, __ATOMIC_ACQUIRE) : UINT64_MAX;
}

/* Views ------------------------------------------------------------------------- */

struct flows_ctx {
    struct umxd *d;
    const char *route;
    struct umxd_flow_info *out;
    unsigned max, n;
    struct umxd_kdp_stats *st;
};

/* The route (by stable slot) a kernel mark names, in the current config. */
static const struct umxd_route *route_of_mark(struct umxd *d, uint32_t mark, unsigned *b)
{
    uint32_t field = mark >> UMXD_KDP_MARK_SHIFT;
    unsigned slot = (field >> 4) & 0xffu;
    const struct umxd_routeset *rs = d->rs;
    *b = field & 0xfu;
    if (!(field & UMXD_KDP_F_KERNEL))
        return NULL;
    for (unsigned i = 0; i < rs->cfg->nroutes; i++)
        if (rs->slot[i] == slot)
            return &rs->cfg->routes[i];
    return NULL;
}

static int on_flow(void *arg, const struct kdp_ct_flow *f)
{
    struct flows_ctx *c = arg;
    struct umxd_flow_info *o;
    const struct umxd_route *rt;
    unsigned b;
    if (c->st) {
        c->st->flows++;
        c->st->pkts += f->rx_pkts + f->tx_pkts;
        c->st->bytes += f->rx_bytes + f->tx_bytes;
        return 0;
    }
    rt = route_of_mark(c->d, f->mark, &b);
    if (!rt || (c->route && strcmp(c->route, rt->name)))
        return 0;
    if (c->n >= c->max)
        return 1;
    o = &c->out[c->n++];
    memset(o, 0, sizeof(*o));
    snprintf(o->route, sizeof(o->route), "%s", rt->name);
    memcpy(&o->peer, &f->peer, sizeof(o->peer));
    memcpy(&o->local, &f->local, sizeof(o->local));
    /* the reply tuple's source: where the kernel sends the flow */
    udpmux_format_addr((const struct sockaddr *)&f->backend, o->backend, sizeof(o->backend));
    o->worker = -1;
    o->kernel = 1;
    o->established = f->replied;
    o->age_ms = f->age_s * 1000;
    {
        /* conntrack refreshes the timeout on every datagram: the time since
         * the last one is the policy's timeout minus what is left */
        uint64_t tmo =
            (f->replied ? rt->idle_timeout_ns : rt->unanswered_timeout_ns) / 1000000000ull;
        o->idle_ms = tmo > f->timeout_s ? (tmo - f->timeout_s) * 1000 : 0;
    }
    o->rx_datagrams = f->rx_pkts;
    o->rx_bytes = f->rx_bytes;
    o->tx_datagrams = f->tx_pkts;
    o->tx_bytes = f->tx_bytes;
    return 0;
}

unsigned umxd_kdp_flows(struct umxd *d, const char *route, struct umxd_flow_info *out, unsigned max)
{
    struct flows_ctx c = {d, route, out, max, 0, NULL};
    if (!d->kdp || !max)
        return 0;
    /* a dump the table's changes interrupted (EINTR) is taken again */
    for (int i = 0; i < 3; i++) {
        c.n = 0;
        if (kdp_ct_each(1, on_flow, &c) != -EINTR)
            break;
    }
    return c.n;
}

int umxd_kdp_stats(struct umxd *d, struct umxd_kdp_stats *out, int with_flows)
{
    struct kdp *k = d->kdp;
    memset(out, 0, sizeof(*out));
    if (!k)
        return -ENOENT;
    out->queued = __atomic_load_n(&k->st.queued, __ATOMIC_RELAXED);
    out->to_kernel = __atomic_load_n(&k->st.to_kernel, __ATOMIC_RELAXED);
    out->to_user = __atomic_load_n(&k->st.to_user, __ATOMIC_RELAXED);
    out->dropped = __atomic_load_n(&k->st.dropped, __ATOMIC_RELAXED);
    out->held = __atomic_load_n(&k->st.held, __ATOMIC_RELAXED);
    out->verdict_err = __atomic_load_n(&k->st.verdict_err, __ATOMIC_RELAXED);
    out->replies = __atomic_load_n(&k->st.replies, __ATOMIC_RELAXED);
    out->keys = __atomic_load_n(&k->st.keys, __ATOMIC_RELAXED);
    out->handshakes = __atomic_load_n(&k->st.handshakes, __ATOMIC_RELAXED);
    out->reply_keys = __atomic_load_n(&k->st.reply_keys, __ATOMIC_RELAXED);
    out->roamed = __atomic_load_n(&k->st.roamed, __ATOMIC_RELAXED);
    out->ordered = __atomic_load_n(&k->st.ordered, __ATOMIC_RELAXED);
    kdp_nfq_dropped(&out->queue_full);
    if (with_flows) {
        struct flows_ctx c = {d, NULL, NULL, 0, 0, out};
        for (int i = 0; i < 3; i++) {
            out->flows = out->pkts = out->bytes = 0;
            if (kdp_ct_each(1, on_flow, &c) != -EINTR)
                break;
        }
    }
    return 0;
}
