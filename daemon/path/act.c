/*
 * act.c - carries a verdict out. The engine (engine.c) said what happens to
 * a datagram; this file makes it happen: it creates or moves the flow (and
 * its upstream socket), queues the datagram for its backend, program or
 * peer, answers built-in routes, holds datagrams a probe is waiting on, and
 * counts. Every drop is counted here, once, by count_drop() with its reason
 * (stats.h, UMXD_DROPS).
 */
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>

#include "path_int.h"
#include "stun.h"

/* Counting ------------------------------------------------------------------- */

static uint64_t *drop_global(struct umxd_stats *st, enum umxd_drop why)
{
    switch (why) {
#define G(e, g, r, n)                                                                              \
    case UMXD_DROP_##e:                                                                            \
        return &st->g;
        UMXD_DROPS(G)
#undef G
    default:
        return &st->unmatched;
    }
}

static uint64_t *drop_route(struct umxd_route_stats *rs, enum umxd_drop why)
{
    /* NONE reasons have no route: the caller passes slot -1 for them */
    uint64_t *none = NULL;
    switch (why) {
#define NONE drops /* never used with a route (slot < 0) */
#define R(e, g, r, n)                                                                              \
    case UMXD_DROP_##e:                                                                            \
        return &rs->r;
        UMXD_DROPS(R)
#undef R
#undef NONE
    default:
        return none;
    }
}

void count_drop(struct umxd_worker *w, int slot, enum umxd_drop why, uint64_t n, uint64_t bytes)
{
    UMX_CTR_ADD(*drop_global(&w->st, why), n);
    if ((unsigned)why < UMXD_DROP_COUNT)
        UMX_CTR_ADD(w->dropb.bytes[why], bytes);
    if (slot >= 0 && slot < UMXD_MAX_SLOTS) {
        uint64_t *r = drop_route(&w->rst[slot], why);
        UMX_CTR_ADD(w->rst[slot].drops, n);
        if (r && r != &w->rst[slot].drops)
            UMX_CTR_ADD(*r, n);
    }
}

static int slot_of(const struct umxd_worker *w, int route)
{
    return route >= 0 ? (int)w->rs->slot[route] : -1;
}

/* One datagram from a peer dropped: counted, and logged at debug. */
static void drop_dgram(struct umxd_worker *w, int route, enum umxd_drop why,
                       const struct umx_rx_slot *s)
{
    count_drop(w, slot_of(w, route), why, 1, s->len);
    flowlog_drop(w, route, why, &s->peer, 1, s->len);
}

/* Flows -------------------------------------------------------------------------- */

static void close_flow_quiet(struct umxd_worker *w, struct umx_flow *f)
{
    struct umxd_flow *fl = umxd_fl(f);
    close_upstream(w, f);
    umxd_flow_gone(&w->eng, f);
    if (fl->relay)
        return; /* not counted as a route's flow */
    if (w->rst[fl->slot].active_flows)
        UMX_CTR_ADD(w->rst[fl->slot].active_flows, (uint64_t)-1);
    {
        struct umxd_backend_stats *b = bst_of(w, fl);
        if (b && b->active_flows)
            UMX_CTR_ADD(b->active_flows, (uint64_t)-1);
    }
}

void close_flow(struct umxd_worker *w, struct umx_flow *f, const char *why)
{
    flowlog_end(w, f, why, w->rs->cfg);
    close_flow_quiet(w, f);
}

void release_cb(struct umx_flow *f, void *arg, int reason)
{
    struct umxd_worker *w = arg;
    close_flow(w, f, reason == UMX_FT_EXPIRED ? "idle" : "evicted for a new flow");
    if (reason == UMX_FT_EXPIRED)
        UMX_CTR_ADD(w->st.flows_expired, 1);
    else
        UMX_CTR_ADD(w->st.flows_evicted, 1);
}

/* Closes a flow for a reason of ours (reload, detach, drain). */
void remove_flow(struct umxd_worker *w, struct umx_flow *f, const char *why)
{
    close_flow(w, f, why);
    umx_ft_remove(w->ft, f);
    UMX_CTR_ADD(w->st.flows_closed, 1);
}

static const struct umxd_route *route_of_set(const struct umxd_routeset *rs, unsigned r)
{
    return &rs->cfg->routes[r];
}

/* The index in nrt of backend i of ort (same address), UMXD_BACKEND_GONE if
 * it is no longer listed. */
static unsigned backend_in(const struct umxd_route *nrt, const struct umxd_route *ort, unsigned i)
{
    if (i >= ort->nbackends)
        return UMXD_BACKEND_GONE;
    for (unsigned j = 0; j < nrt->nbackends; j++)
        if (umx_sa_equal((const struct sockaddr *)&nrt->backends[j].addr,
                         (const struct sockaddr *)&ort->backends[i].addr))
            return j;
    return UMXD_BACKEND_GONE;
}

/* After a reload: flows keep running when their route (by name) still exists;
 * their route index and class follow the new set. Others are closed. */
void remap_flows(struct umxd_worker *w, const struct umxd_routeset *old)
{
    uint32_t cap = umx_ft_capacity(w->ft);
    for (uint32_t i = 0; i < cap; i++) {
        struct umx_flow *f = umx_ft_at(w->ft, i);
        struct umxd_flow *fl;
        const struct umxd_route *nrt;
        int nr;
        if (!f)
            continue;
        fl = umxd_fl(f);
        if (fl->relay)
            continue;
        nr = umxd_config_route(w->rs->cfg, old->cfg->routes[fl->route].name);
        nrt = nr >= 0 ? route_of(w, (unsigned)nr) : NULL;
        if (!nrt ||
            (!fl->attach && (nrt->action != UMXD_FORWARD || (fl->backend != UMXD_BACKEND_GONE &&
                                                             fl->backend >= nrt->nbackends)))) {
            /* logged with the route set the flow was made in */
            flowlog_end(w, f,
                        !nrt                                         ? "route removed"
                        : nrt->action != UMXD_FORWARD && !fl->attach ? "route no longer forwards"
                                                                     : "backend removed",
                        old->cfg);
            close_flow_quiet(w, f);
            umx_ft_remove(w->ft, f);
            UMX_CTR_ADD(w->st.flows_closed, 1);
            continue;
        }
        if (!fl->attach)
            fl->backend = (uint8_t)backend_in(nrt, route_of_set(old, fl->route), fl->backend);
        fl->route = (uint16_t)nr;
        umx_ft_touch(w->ft, f, umxd_cls_of(fl, (unsigned)nr), f->last_ns);
    }
}

/* After remap_flows: each surviving backend's counters move to its index in
 * the new list (a backend is its address); a new address, or a route that
 * left, starts from zero. The worker owns its rows, so no lock: a reader
 * summing during the switch may see one tick of mixed rows. */
void remap_backend_stats(struct umxd_worker *w, const struct umxd_routeset *old)
{
    struct umxd_backend_stats row[UMXD_MAX_BACKENDS];
    uint8_t alive[UMXD_MAX_SLOTS];
    memset(alive, 0, sizeof(alive));
    for (unsigned r = 0; r < w->rs->cfg->nroutes; r++) {
        const struct umxd_route *nrt = route_of(w, r);
        unsigned slot = w->rs->slot[r];
        int orx = umxd_config_route(old->cfg, nrt->name);
        const struct umxd_route *ort = orx >= 0 ? route_of_set(old, (unsigned)orx) : NULL;
        alive[slot] = 1;
        memset(row, 0, sizeof(row));
        for (unsigned i = 0; ort && i < ort->nbackends && i < UMXD_MAX_BACKENDS; i++) {
            unsigned j = backend_in(nrt, ort, i);
            if (j < UMXD_MAX_BACKENDS)
                row[j] = w->bst[slot][i];
        }
        memcpy(w->bst[slot], row, sizeof(row));
    }
    for (unsigned s = 0; s < UMXD_MAX_SLOTS; s++)
        if (!alive[s])
            memset(w->bst[s], 0, sizeof(w->bst[s]));
}

/* Passive health ------------------------------------------------------------- */

void mark_down_backend(struct umxd_worker *w, unsigned r, unsigned b, uint64_t now)
{
    const struct umxd_route *rt = route_of(w, r);
    uint64_t dt = rt->down_time_ns ? rt->down_time_ns : PASSIVE_DOWN_DEFAULT_NS;
    struct umxd_health *h = &w->d->health[w->rs->slot[r]][b];
    if (__atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) <= now) {
        /* a transition, not a datagram: at most one line per backend per
         * down-time, and the worker's limiter caps a flapping fleet */
        UMX_CTR_ADD(w->st.backend_down, 1);
        umxd_log_rl(&w->down_log, LOG_WARNING,
                    "route %s backend %s marked down for %llu s (passive: ICMP port "
                    "unreachable or a refused send)",
                    rt->name, b < rt->nbackends ? rt->backends[b].text : "?",
                    (unsigned long long)(dt / 1000000000ull));
    }
    __atomic_store_n(&h->down_until_ns, now + dt, __ATOMIC_RELAXED);
}

void mark_down(struct umxd_worker *w, const struct umxd_flow *fl, uint64_t now)
{
    if (fl->route < w->rs->cfg->nroutes && fl->backend < route_of(w, fl->route)->nbackends)
        mark_down_backend(w, fl->route, fl->backend, now);
}

/* Holds ---------------------------------------------------------------------- */

static int same_peer(const struct sockaddr_in6 *a, const struct sockaddr_storage *b)
{
    struct sockaddr_in6 x;
    umxd_store_addr(&x, b);
    return memcmp(a, &x, sizeof(x)) == 0;
}

static void hold_put(struct umxd_worker *w, const struct umx_rx_slot *s, uint64_t now)
{
    struct hold *h = w->hold, *victim = NULL;
    if (s->len > HOLD_BYTES) {
        drop_dgram(w, -1, UMXD_DROP_HOLD_FULL, s);
        return;
    }
    for (unsigned i = 0; i < HOLD_SLOTS; i++) {
        if (h[i].state == 0 || (h[i].state == 1 && now - h[i].t > HOLD_NS)) {
            victim = &h[i];
            break;
        }
        if (h[i].state == 1 && (!victim || h[i].t < victim->t))
            victim = &h[i];
    }
    if (!victim)
        return;               /* every slot is queued in this batch */
    if (victim->state == 1) { /* the oldest held one is lost */
        count_drop(w, -1, UMXD_DROP_HOLD_FULL, 1, victim->len);
        flowlog_drop(w, -1, UMXD_DROP_HOLD_FULL, &victim->peer, 1, victim->len);
    } else
        w->held++;
    victim->t = now;
    umxd_store_addr(&victim->peer, &s->peer);
    victim->len = (uint16_t)s->len;
    memcpy(victim->data, s->buf, s->len);
    victim->state = 1;
    UMX_CTR_ADD(w->st.pending, 1);
    flowlog_held(w, s);
}

/* Sends (forward) or drops the datagrams held for this peer, oldest first:
 * the order the client sent them. */
static void hold_release(struct umxd_worker *w, const struct umx_rx_slot *s, struct umx_flow *f,
                         uint64_t now)
{
    struct hold *h = w->hold;
    for (;;) {
        struct hold *first = NULL;
        for (unsigned i = 0; i < HOLD_SLOTS; i++)
            if (h[i].state == 1 && now - h[i].t <= HOLD_NS && same_peer(&h[i].peer, &s->peer) &&
                (!first || h[i].t < first->t))
                first = &h[i];
        if (!first)
            return;
        w->held--;
        if (f && !umxd_fl(f)->attach) {
            queue_up(w, f, first->data, first->len, now);
            first->state = 2;
        } else {
            first->state = 0;
        }
    }
}

/* Queued held datagrams are sent at the end of the batch: free their slots. */
void hold_gc(struct umxd_worker *w)
{
    for (unsigned i = 0; i < HOLD_SLOTS; i++)
        if (w->hold[i].state == 2)
            w->hold[i].state = 0;
}

/* Built-in responders ------------------------------------------------------- */

static void builtin(struct umxd_worker *w, unsigned r, struct umx_rx_slot *s, unsigned li)
{
    const struct umxd_route *rt = route_of(w, r);
    struct sockaddr_in6 peer, local;
    unsigned slot = w->rs->slot[r];
    uint8_t *out;
    size_t n;
    umxd_store_addr(&peer, &s->peer);
    memset(&local, 0, sizeof(local));
    if (s->has_local)
        umxd_store_addr(&local, &s->local);
    if (rt->action == UMXD_ECHO) {
        out = reply_space(w, s->len);
        if (s->len)
            memcpy(out, s->buf, s->len);
        n = s->len;
        UMX_CTR_ADD(w->st.echo_replies, 1);
    } else {
        /* never more bytes than the request (no amplification), unless the
         * route allows the minimal answer (44 bytes covers IPv6) */
        size_t cap = s->len;
        int k;
        if (rt->stun_minimal && cap < 44)
            cap = 44;
        out = reply_space(w, cap);
        k = umxd_stun_respond(s->buf, s->len, (const struct sockaddr *)&s->peer, out, cap);
        if (k <= 0) {
            reply_unspace(w, cap);
            drop_dgram(w, (int)r, UMXD_DROP_STUN_SIZE, s);
            return;
        }
        reply_unspace(w, cap - (size_t)k);
        n = (size_t)k;
        UMX_CTR_ADD(w->st.stun_replies, 1);
    }
    UMX_CTR_ADD(w->rst[slot].tx_datagrams, 1);
    UMX_CTR_ADD(w->rst[slot].tx_bytes, n);
    queue_pub(w, li, out, n, &peer, &local, UINT32_MAX);
}

/* Peer -> backend / program / worker ------------------------------------------- */

/* Makes the flow a NEW verdict asks for; NULL (counted) if it cannot be. */
static struct umx_flow *create(struct umxd_worker *w, const struct umxd_verdict *v,
                               struct umx_rx_slot *s, unsigned li, uint64_t now)
{
    int slot = slot_of(w, v->route);
    struct umx_flow *f = umxd_flow_add(&w->eng, v, s, li, now, release_cb, w);
    if (!f) {
        drop_dgram(w, v->route, UMXD_DROP_TABLE_FULL, s);
        return NULL;
    }
    if (v->kind == UMXD_V_RELAY)
        return f;
    if (v->kind == UMXD_V_FORWARD && open_upstream(w, f, route_of(w, (unsigned)v->route)) < 0) {
        umx_ft_remove(w->ft, f);
        drop_dgram(w, v->route, UMXD_DROP_SOCKET, s);
        return NULL;
    }
    UMX_CTR_ADD(w->st.flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].flows_created, 1);
    UMX_CTR_ADD(w->rst[slot].active_flows, 1);
    {
        struct umxd_backend_stats *b = bst_of(w, umxd_fl(f));
        if (b) {
            UMX_CTR_ADD(b->flows_created, 1);
            UMX_CTR_ADD(b->active_flows, 1);
        }
    }
    return f;
}

void act_ingress(struct umxd_worker *w, const struct umxd_verdict *v, struct umx_rx_slot *s,
                 unsigned li, uint64_t now)
{
    struct umx_flow *f = v->flow;
    int slot = slot_of(w, v->route);

    if (v->classified) {
        UMX_CTR_ADD(w->st.classified, 1);
        if (v->matched >= 0)
            UMX_CTR_ADD(w->rst[slot_of(w, v->matched)].matched, 1);
    }
    if (slot >= 0 && v->kind != UMXD_V_RELAY) {
        UMX_CTR_ADD(w->rst[slot].rx_datagrams, 1);
        UMX_CTR_ADD(w->rst[slot].rx_bytes, s->len);
    }
    switch (v->kind) {
    case UMXD_V_DROP:
        drop_dgram(w, v->route, v->why, s);
        return;
    case UMXD_V_HOLD:
        hold_put(w, s, now);
        return;
    case UMXD_V_BUILTIN:
        builtin(w, (unsigned)v->route, s, li);
        return;
    default:
        break;
    }
    if (umxd_verdict_new(v)) {
        f = create(w, v, s, li, now);
        if (!f)
            return;
        flowlog_new(w, v, f);
        if (v->kind == UMXD_V_RELAY) {
            mbox_post(w, v->ref.worker, v->ref.idx, v->ref.gen, s, li);
            return;
        }
    } else if (v->how == UMXD_HOW_ROAMED) {
        if (umxd_flow_move(&w->eng, f, &v->key, s) < 0) {
            drop_dgram(w, v->route, UMXD_DROP_TABLE_FULL, s);
            return;
        }
        UMX_CTR_ADD(w->st.flows_roamed, 1);
        flowlog_new(w, v, f);
    }
    switch (v->kind) {
    case UMXD_V_RELAY: {
        /* a roamed peer whose flow lives on another worker (which counts) */
        const struct umxd_flow *fl = umxd_fl(f);
        umx_ft_touch(w->ft, f, UMXD_CLS_KEEP, now);
        UMX_CTR_ADD(w->st.roam_relayed, 1);
        mbox_post(w, fl->relay_worker, fl->relay_idx, fl->relay_gen, s, li);
        return;
    }
    case UMXD_V_FANOUT:
        umxd_flow_rx(&w->eng, f, s->buf, s->len, li, now);
        if (umxd_attach_deliver(w->d, UMXD_ATTACH_FANOUT, umxd_fl(f)->cgen,
                                route_of(w, umxd_fl(f)->route)->name, s) < 0)
            drop_dgram(w, v->route, UMXD_DROP_ATTACH_FULL, s);
        return;
    case UMXD_V_DELIVER:
        umxd_flow_rx(&w->eng, f, s->buf, s->len, li, now);
        queue_att(w, f, s);
        return;
    case UMXD_V_FORWARD:
        umxd_flow_rx(&w->eng, f, s->buf, s->len, li, now);
        if (umxd_verdict_new(v) && w->held)
            hold_release(w, s, f, now);
        queue_up(w, f, s->buf, s->len, now);
        return;
    default:
        return;
    }
}

/* Backend -> peer -------------------------------------------------------------- */

void act_reply(struct umxd_worker *w, struct umx_flow *f, struct umx_rx_slot *s, uint64_t now)
{
    struct umxd_reply_verdict v;
    struct umxd_flow *fl = umxd_fl(f);
    umxd_decide_reply(&w->eng, f, s, &v);
    if (!v.deliver) {
        count_drop(w, -1, v.why, 1, s->len);
        flowlog_drop(w, fl->route, v.why, &s->peer, 1, s->len);
        return;
    }
    UMX_CTR_ADD(w->st.up_rx_datagrams, 1);
    UMX_CTR_ADD(w->st.up_rx_bytes, s->len);
    UMX_CTR_ADD(w->rst[fl->slot].tx_datagrams, 1);
    UMX_CTR_ADD(w->rst[fl->slot].tx_bytes, s->len);
    {
        struct umxd_backend_stats *b = bst_of(w, fl);
        if (b) {
            UMX_CTR_ADD(b->rx_datagrams, 1);
            UMX_CTR_ADD(b->rx_bytes, s->len);
        }
    }
    umxd_flow_reply(&w->eng, f, s, &v, now);
    if (v.klen) {
        roam_publish(w, f, v.key, v.klen, now);
        if ((__atomic_load_n(&w->d->roam_lens, __ATOMIC_RELAXED) & w->eng.roam_lens) !=
            w->eng.roam_lens)
            __atomic_or_fetch(&w->d->roam_lens, w->eng.roam_lens, __ATOMIC_RELAXED);
    }
    queue_pub(w, fl->listener, s->buf, s->len, &fl->peer, &fl->local, f->idx);
}
