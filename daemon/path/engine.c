/*
 * engine.c - the decision engine (see engine.h): one function per step of a
 * datagram's trip, in the order docs/internals/daemon.md tells it:
 *
 *   umxd_decide
 *     1. the peer's flow ............ decide_known   (classify = every: may
 *                                                      switch to the peer's
 *                                                      flow of another route)
 *     2. a roaming key ............... decide_roamed
 *     3. an attached program's peer .. decide_attached
 *     4. classification .............. classify
 *        QUIC-LB (nothing claims it) .. decide_quiclb  (a backend's server id
 *                                                      in the connection id)
 *     5. the route's action .......... decide_route   (admission, backend)
 *
 * Each flow key is looked up once. Nothing here does I/O or reads a clock;
 * the only state it changes is admission state (token buckets, the batch's
 * new-flow budget) and the probes' reassembly state, both part of deciding.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "engine.h"
#include "quiclb.h"
#include "rules/probe.h"
#include "rules/roam.h"

void umxd_store_addr(struct sockaddr_in6 *dst, const struct sockaddr_storage *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst, src,
           src->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
}

static const struct umxd_route *route_of(const struct umxd_engine *e, unsigned r)
{
    return &e->rs->cfg->routes[r];
}

static const struct sockaddr *peer_sa(const struct umx_rx_slot *d)
{
    return (const struct sockaddr *)&d->peer;
}

static void drop(struct umxd_verdict *v, enum umxd_drop why)
{
    v->kind = UMXD_V_DROP;
    v->why = why;
}

/* Admission ------------------------------------------------------------------ */

/* The keyed hash of a peer's prefix: /24 for IPv4 (v4-mapped too), /56 for
 * IPv6. */
static uint64_t prefix_hash(const uint8_t hashkey[16], const struct sockaddr *peer)
{
    uint8_t pfx[9] = {0};
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, peer, sizeof(s4));
        pfx[0] = 4;
        memcpy(pfx + 1, &s4.sin_addr, 3);
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, peer, sizeof(s6));
        if (IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr)) {
            pfx[0] = 4;
            memcpy(pfx + 1, s6.sin6_addr.s6_addr + 12, 3);
        } else {
            pfx[0] = 6;
            memcpy(pfx + 1, s6.sin6_addr.s6_addr, 7);
        }
    }
    return umx_siphash24(hashkey, pfx, sizeof(pfx));
}

int umxd_rate_ok(const uint8_t hashkey[16], struct umxd_rate_slot *tab, const struct sockaddr *peer,
                 uint32_t rate, uint32_t burst, uint64_t now)
{
    uint64_t h, add;
    struct umxd_rate_slot *s;
    if (rate == 0)
        return 1;
    h = prefix_hash(hashkey, peer);
    s = &tab[h % UMXD_RATE_SLOTS];
    if (s->key != h || s->last_ns == 0) {
        s->key = h;
        s->last_ns = now;
        s->tokens = burst * 1000u;
    }
    add = (now - s->last_ns) * rate / 1000000u; /* thousandths of a token per ns*rate */
    if (add) {
        uint64_t t = s->tokens + add;
        s->tokens = (uint32_t)(t > (uint64_t)burst * 1000u ? (uint64_t)burst * 1000u : t);
        s->last_ns = now;
    }
    if (s->tokens < 1000)
        return 0;
    s->tokens -= 1000;
    return 1;
}

static struct umxd_prefix_slot *prefix_slot(const struct umxd_engine *e,
                                            const struct sockaddr *peer)
{
    if (!e->prefix)
        return NULL;
    return &e->prefix[prefix_hash(e->hashkey, peer) % UMXD_PREFIX_SLOTS];
}

static int backend_up(const struct umxd_engine *e, unsigned slot, unsigned b, uint64_t now)
{
    return !e->env || !e->env->backend_up || e->env->backend_up(e->env->ctx, slot, b, now);
}

/* The bytes that name a backend for fleet-key rendezvous: its address
 * and port, not its position in the list (reordering the pool, or another
 * instance's config, changes nothing). */
static size_t backend_id(const struct umxd_backend *be, uint8_t out[19])
{
    if (be->addr.ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, &be->addr, sizeof(s4));
        out[0] = 4;
        memcpy(out + 1, &s4.sin_addr, 4);
        memcpy(out + 5, &s4.sin_port, 2);
        return 7;
    }
    struct sockaddr_in6 s6;
    memcpy(&s6, &be->addr, sizeof(s6));
    out[0] = 6;
    memcpy(out + 1, &s6.sin6_addr, 16);
    memcpy(out + 17, &s6.sin6_port, 2);
    return 19;
}

int umxd_pick_backend(const struct umxd_engine *e, unsigned route, const struct sockaddr *peer,
                      uint64_t now)
{
    const struct umxd_config *c = e->rs->cfg;
    const struct umxd_route *rt = route_of(e, route);
    unsigned slot = e->rs->slot[route];
    uint8_t buf[40];
    size_t n;
    uint64_t best = 0;
    int pick = -1;
    if (rt->nbackends == 1)
        return backend_up(e, slot, 0, now) ? 0 : -1;
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, peer, sizeof(s4));
        memcpy(buf, &s4.sin_addr, 4);
        n = 4;
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, peer, sizeof(s6));
        memcpy(buf, &s6.sin6_addr, 16);
        n = 16;
    }
    for (unsigned b = 0; b < rt->nbackends; b++) {
        uint64_t score;
        if (!backend_up(e, slot, b, now))
            continue;
        if (c->has_fleet_key) {
            /* the same on every instance and after every restart */
            size_t k = backend_id(&rt->backends[b], buf + n);
            score = umx_siphash24(c->fleet_key, buf, n + k);
        } else {
            buf[n] = (uint8_t)b;
            score = umx_siphash24(e->hashkey, buf, n + 1);
        }
        if (pick < 0 || score > best) {
            best = score;
            pick = (int)b;
        }
    }
    return pick;
}

/* QUIC-LB: the backend of route r whose server id the datagram's
 * destination connection id carries, if it is up; else -1 (a client's own
 * random CID, another config id, an id no backend has: the caller falls
 * back to its normal choice, as the draft's unroutable CIDs do). At most
 * UMXD_MAX_BACKENDS ids are compared. */
static int qlb_backend(const struct umxd_engine *e, unsigned r, const struct umx_rx_slot *d,
                       uint64_t now)
{
    const struct umxd_route *rt = route_of(e, r);
    const struct umxd_quiclb *q = &rt->qlb;
    const uint8_t *cid;
    size_t n;
    uint8_t sid[UMXD_QLB_SID_MAX];
    if (!q->on || rt->action != UMXD_FORWARD ||
        !umxd_qlb_dcid(d->buf, d->len, 1u + q->sid_len + q->nonce_len, &cid, &n) ||
        umxd_qlb_decode(e->qlb, q, cid, n, sid) != 1)
        return -1;
    for (unsigned b = 0; b < rt->nbackends; b++)
        if (rt->backends[b].sid_len == q->sid_len &&
            memcmp(rt->backends[b].sid, sid, q->sid_len) == 0)
            return backend_up(e, e->rs->slot[r], b, now) ? (int)b : -1;
    return -1;
}

/* The steps ------------------------------------------------------------------- */

/* First match wins over the routes in order; the route set's candidate
 * lists skip the routes whose rule cannot match the first byte (same
 * answer and UMX_MORE handling as trying every route, see
 * umx_rule_index_eval). */
static int classify(struct umxd_engine *e, const struct umx_rx_slot *d, uint64_t now, int *more,
                    struct umxd_verdict *v)
{
    struct umx_probe_in in = {d->buf, d->len, peer_sa(d), now, e->pstate};
    v->classified = 1;
    v->matched = umx_rule_index_eval(&e->rs->idx, &in, more);
    return v->matched;
}

/* A route claims a datagram by its content unless its rule is the
 * catch-all `any` (a last `match = any` route takes what nothing else
 * wants; it does not take a pinned peer's answers from its program). */
static int claims(const struct umxd_engine *e, int r)
{
    const char *m;
    if (r < 0)
        return 0;
    m = route_of(e, (unsigned)r)->match;
    while (*m == ' ' || *m == '\t')
        m++;
    if (strncmp(m, "any", 3) != 0)
        return 1;
    for (m += 3; *m == ' ' || *m == '\t'; m++)
        ;
    return *m != '\0';
}

/* A datagram on an existing flow: where the flow's kind says. */
static void on_flow(struct umx_flow *f, enum umxd_how how, struct umxd_verdict *v)
{
    struct umxd_flow *fl = umxd_fl(f);
    v->flow = f;
    v->how = how;
    v->route = fl->relay ? -1 : fl->route;
    if (fl->relay)
        v->kind = UMXD_V_RELAY;
    else if (fl->attach)
        v->kind = fl->client == UMXD_ATTACH_FANOUT ? UMXD_V_FANOUT : UMXD_V_DELIVER;
    else
        v->kind = UMXD_V_FORWARD;
}

/* Step 5: route r claimed the datagram; f is the peer's flow of that route
 * if it has one (classify = every). */
static void decide_route(struct umxd_engine *e, const struct umx_rx_slot *d, unsigned r,
                         struct umx_flow *f, uint64_t now, struct umxd_verdict *v)
{
    const struct umxd_route *rt = route_of(e, r);
    const struct umxd_config *c = e->rs->cfg;
    unsigned slot = e->rs->slot[r];
    const struct umxd_env *env = e->env;
    unsigned cost;

    v->route = (int)r;
    v->how = UMXD_HOW_PROBE;
    switch (rt->action) {
    case UMXD_DROP:
        drop(v, UMXD_DROP_ACTION);
        return;
    case UMXD_ECHO:
    case UMXD_STUN:
        if (!umxd_rate_ok(e->hashkey, e->rate_replies, peer_sa(d), c->rate_responses,
                          c->rate_responses * 2 + 1, now))
            drop(v, UMXD_DROP_RATE);
        else
            v->kind = UMXD_V_BUILTIN;
        return;
    case UMXD_ATTACH:
        if (!env || !env->attach_pick ||
            env->attach_pick(env->ctx, rt->name, peer_sa(d), &v->client, &v->cgen) < 0) {
            /* nobody holds the route: counted, never given to someone else */
            drop(v, UMXD_DROP_UNCLAIMED);
            return;
        }
        if (f) {
            on_flow(f, UMXD_HOW_FLOW, v);
            return;
        }
        v->how = UMXD_HOW_NEW;
        v->kind = v->client == UMXD_ATTACH_FANOUT ? UMXD_V_FANOUT : UMXD_V_DELIVER;
        return;
    case UMXD_FORWARD:
        break;
    }
    if (f) {
        on_flow(f, UMXD_HOW_FLOW, v);
        return;
    }
    /* admission of a new flow: the batch's budget under overload and the
     * prefix's token bucket shed unvalidated newcomers first */
    cost = rt->shared ? UMXD_COST_SHARED : UMXD_COST_SOCKET;
    if (e->budget < cost || !umxd_rate_ok(e->hashkey, e->rate_flows, peer_sa(d), c->rate_new_flows,
                                          c->rate_burst, now)) {
        drop(v, UMXD_DROP_RATE);
        return;
    }
    if (e->budget != UINT_MAX)
        e->budget -= cost;
    if (env && env->drained && env->drained(env->ctx, slot)) {
        drop(v, UMXD_DROP_NO_BACKEND);
        return;
    }
    if (e->prefix && e->prefix_cap && prefix_slot(e, peer_sa(d))->flows >= e->prefix_cap) {
        /* one prefix may not fill the table */
        drop(v, UMXD_DROP_PREFIX_FULL);
        return;
    }
    if (rt->max_flows && env && env->route_flows &&
        env->route_flows(env->ctx, slot) >= rt->max_flows) {
        drop(v, UMXD_DROP_ROUTE_FULL);
        return;
    }
    /* a connection id a backend issued (QUIC-LB) names its backend */
    v->backend = rt->qlb.on ? qlb_backend(e, r, d, now) : -1;
    if (v->backend >= 0) {
        v->how = UMXD_HOW_SESSION;
        v->kind = UMXD_V_FORWARD;
        return;
    }
    v->backend = umxd_pick_backend(e, r, peer_sa(d), now);
    if (v->backend < 0) {
        drop(v, UMXD_DROP_NO_BACKEND);
        return;
    }
    v->how = UMXD_HOW_NEW;
    v->kind = UMXD_V_FORWARD;
}

/* Step 1: the peer has a flow. With classify = every the datagram may
 * belong to another route (a WebRTC-style mix on one 5-tuple): then it goes
 * to the peer's flow of that route, keyed with the route in the tag. */
static void decide_known(struct umxd_engine *e, const struct umx_rx_slot *d, struct umx_flow *f,
                         uint64_t now, struct umxd_verdict *v)
{
    struct umxd_flow *fl = umxd_fl(f);
    /* a pin made by an attached program's own send carries the peer's
     * answers, but never what another route claims by its content */
    if (!fl->relay &&
        ((fl->attach && fl->pinned) || (!fl->attach && route_of(e, fl->route)->classify_every))) {
        int more, r = classify(e, d, now, &more, v);
        if (r >= 0 && (unsigned)r != fl->route && (!fl->attach || claims(e, r))) {
            umx_flow_key_make(&v->key, d->has_local ? (const struct sockaddr *)&d->local : NULL,
                              peer_sa(d), (uint32_t)r + 1);
            decide_route(e, d, (unsigned)r, umx_ft_lookup(e->ft, &v->key), now, v);
            return;
        }
    }
    on_flow(f, UMXD_HOW_FLOW, v);
}

static uint32_t roam_lens(struct umxd_engine *e)
{
    /* lengths learnt by any worker: a roamed address may hash to us */
    if (e->env && e->env->roam_lens)
        e->roam_lens |= e->env->roam_lens(e->env->ctx);
    return e->roam_lens;
}

/* Sessions ------------------------------------------------------------------ */

static uint64_t session_ttl(int kind)
{
    switch (kind) {
    case UMX_ROAM_WG:
        return UMXD_SESSION_WG_NS;
    case UMX_ROAM_OVPN_SID:
    case UMX_ROAM_OVPN_PEER:
        return UMXD_SESSION_OVPN_NS;
    default:
        return 0; /* QUIC ids live as long as their flow */
    }
}

static struct umxd_session *session_set(const struct umxd_engine *e, const uint8_t *key,
                                        size_t klen)
{
    return &e->sessions[(umx_siphash24(e->hashkey, key, klen) % UMXD_SESSION_SETS) *
                        UMXD_SESSION_WAYS];
}

static struct umxd_session *session_find(const struct umxd_engine *e, const uint8_t *key,
                                         size_t klen, uint64_t now)
{
    struct umxd_session *set;
    if (!e->sessions)
        return NULL;
    set = session_set(e, key, klen);
    for (unsigned i = 0; i < UMXD_SESSION_WAYS; i++)
        if (set[i].expires_ns > now && set[i].klen == klen && memcmp(set[i].key, key, klen) == 0)
            return &set[i];
    return NULL;
}

/* Remembers (or refreshes) the backend that owns a session key. */
static void session_put(struct umxd_engine *e, const uint8_t *key, size_t klen, int kind,
                        const struct umxd_flow *fl, uint64_t now)
{
    uint64_t ttl = session_ttl(kind);
    struct umxd_session *set, *s;
    if (!e->sessions || !ttl || klen > UMX_ROAM_MAX || fl->attach)
        return;
    s = session_find(e, key, klen, now);
    if (!s) {
        set = session_set(e, key, klen);
        s = &set[0];
        for (unsigned i = 1; i < UMXD_SESSION_WAYS; i++)
            if (set[i].expires_ns < s->expires_ns)
                s = &set[i];
    }
    memcpy(s->key, key, klen);
    s->klen = (uint8_t)klen;
    s->slot = fl->slot;
    s->backend = fl->backend;
    s->expires_ns = now + ttl;
}

/* The route index of a stable slot in the current set, -1 if gone. */
static int route_of_slot(const struct umxd_engine *e, unsigned slot)
{
    for (unsigned r = 0; r < e->rs->cfg->nroutes; r++)
        if (e->rs->slot[r] == slot)
            return (int)r;
    return -1;
}

/* Forward routes that can carry protocol p: more than one means a datagram
 * of p with an unknown session merely resembles each of them. */
static unsigned routes_with(const struct umxd_engine *e, unsigned p)
{
    unsigned n = 0;
    for (unsigned r = 0; r < e->rs->cfg->nroutes; r++)
        n += route_of(e, r)->action == UMXD_FORWARD && (e->protos[r] & p);
    return n;
}

/* Step 2: an unknown address carrying a session key a backend taught us:
 * the flow that owns it moves here (this worker's), is reached through a
 * relay (another worker's), or, once the flow has idled out, a new flow
 * goes to the backend that owns the session. A session key nobody knows on
 * a protocol several routes carry is never pinned to one of them by
 * resemblance: dropped (the client's retried handshake is classified). */
static int decide_roamed(struct umxd_engine *e, const struct umx_rx_slot *d, uint64_t now,
                         struct umxd_verdict *v)
{
    uint32_t lens = roam_lens(e) | 1u; /* bit 0: fixed-length keys (WireGuard, OpenVPN) */
    if (!e->all_protos)
        return 0;
    /* QUIC short headers do not say how long the connection id is: try the
     * lengths learnt from the backends' long headers (usually one) */
    for (unsigned cl = 0; cl <= 20; cl++) {
        uint8_t key[UMX_ROAM_MAX];
        size_t klen = 0;
        int kind = 0;
        unsigned p;
        struct umx_flow *f;
        struct umxd_session *ss;
        if (!(lens & (1u << cl)))
            continue;
        if (umx_roam_key(d->buf, d->len, UMX_ROAM_FROM_CLIENT, e->all_protos, cl, key + 1, &klen,
                         &kind) != 1 ||
            !klen)
            continue;
        key[0] = (uint8_t)kind;
        p = umx_roam_kind_proto(kind);
        f = umx_ft_roam_lookup(e->ft, key, klen + 1);
        if (f && p == UMX_ROAM_P_OPENVPN && !umxd_fl(f)->relay && !umxd_fl(f)->attach &&
            (e->protos[umxd_fl(f)->route] & p)) {
            /* OpenVPN peer-ids are small and handed out in sequence: a key
             * chooses the backend (the server floats the client only after
             * authenticating it), it never moves a live flow */
            v->route = umxd_fl(f)->route;
            v->backend = umxd_fl(f)->backend;
            v->kind = UMXD_V_FORWARD;
            v->how = UMXD_HOW_SESSION;
            return 1;
        }
        if (f && !umxd_fl(f)->relay && !umxd_fl(f)->attach && umxd_fl(f)->established &&
            (e->protos[umxd_fl(f)->route] & p)) {
            /* Only proven flows move: the key was learnt from the backend's
             * reply, so a spoofer must know a live session index to get
             * here, and the backend still authenticates every packet. */
            on_flow(f, UMXD_HOW_ROAMED, v);
            return 1;
        }
        if (!f && e->env && e->env->roam_find &&
            e->env->roam_find(e->env->ctx, key, klen + 1, &v->ref) == 0 &&
            v->ref.worker != (uint32_t)e->self) {
            /* another worker's flow: the new address hashed elsewhere */
            v->kind = UMXD_V_RELAY;
            v->how = UMXD_HOW_NEW;
            return 1;
        }
        ss = f ? NULL : session_find(e, key, klen + 1, now);
        if (ss) {
            int r = route_of_slot(e, ss->slot);
            if (r >= 0 && route_of(e, (unsigned)r)->action == UMXD_FORWARD && (e->protos[r] & p) &&
                ss->backend < route_of(e, (unsigned)r)->nbackends) {
                v->route = r;
                v->backend = ss->backend;
                v->kind = UMXD_V_FORWARD;
                v->how = UMXD_HOW_SESSION;
                return 1;
            }
        }
        if (!f && kind != UMX_ROAM_QUIC && routes_with(e, p) > 1) {
            v->route = -1;
            drop(v, UMXD_DROP_UNKNOWN_SESSION);
            return 1;
        }
        if (kind != UMX_ROAM_QUIC)
            break; /* WireGuard and OpenVPN keys do not depend on the length */
    }
    return 0;
}

/* Step 4b: QUIC-LB. A QUIC datagram from an address no flow knows (a
 * migrated client, or one an ECMP rehash brought to this instance) whose
 * connection id a backend issued goes to that backend: every instance
 * decodes the same id, with no shared state. Tried after classification,
 * and only when no route claims the datagram by its content (nothing
 * matched, or only a catch-all `any`): a short header is nearly random
 * bytes, and another protocol's datagram must never go to a QUIC backend
 * because its bytes happened to decode to a server id. */
static int decide_quiclb(struct umxd_engine *e, const struct umx_rx_slot *d, uint64_t now,
                         struct umxd_verdict *v)
{
    for (unsigned r = 0; r < e->rs->cfg->nroutes; r++) {
        if (!route_of(e, r)->qlb.on || qlb_backend(e, r, d, now) < 0)
            continue;
        decide_route(e, d, r, NULL, now, v);
        return 1;
    }
    return 0;
}

/* Step 3: a peer answering a datagram an attached program sent. */
static int decide_attached(struct umxd_engine *e, const struct umx_rx_slot *d,
                           struct umxd_verdict *v)
{
    char rname[UMXD_NAME_MAX];
    int r;
    if (!e->env || !e->env->attach_find ||
        e->env->attach_find(e->env->ctx, peer_sa(d), &v->client, &v->cgen, rname, sizeof(rname)) <
            0)
        return 0;
    r = umxd_config_route(e->rs->cfg, rname);
    if (r < 0)
        return 0;
    v->route = r;
    v->how = UMXD_HOW_NEW;
    v->kind = v->client == UMXD_ATTACH_FANOUT ? UMXD_V_FANOUT : UMXD_V_DELIVER;
    v->pin = 1;
    return 1;
}

void umxd_decide(struct umxd_engine *e, const struct umx_rx_slot *d, uint64_t now,
                 struct umxd_verdict *v)
{
    struct umx_flow *f;
    int r, more = 0;

    memset(v, 0, sizeof(*v));
    v->route = -1;
    v->matched = -1;
    v->backend = -1;
    if (d->truncated) {
        drop(v, UMXD_DROP_TRUNCATED);
        return;
    }
    umx_flow_key_make(&v->key, d->has_local ? (const struct sockaddr *)&d->local : NULL, peer_sa(d),
                      0);
    f = umx_ft_lookup(e->ft, &v->key);
    if (f) {
        decide_known(e, d, f, now, v);
        return;
    }
    if (decide_roamed(e, d, now, v))
        return;
    if (decide_attached(e, d, v)) {
        /* the peer answers a program's send, unless its datagram is
         * another route's by content */
        struct umxd_verdict pin = *v;
        r = classify(e, d, now, &more, v);
        if (r < 0 || r == pin.route || !claims(e, r)) {
            pin.classified = v->classified;
            pin.matched = v->matched;
            *v = pin;
            return;
        }
        v->pin = 0;
        v->client = 0;
        v->cgen = 0;
        decide_route(e, d, (unsigned)r, NULL, now, v);
        return;
    }
    r = classify(e, d, now, &more, v);
    if (!more && (r < 0 || !claims(e, r)) && decide_quiclb(e, d, now, v))
        return;
    if (r < 0) {
        if (more)
            v->kind = UMXD_V_HOLD;
        else
            drop(v, UMXD_DROP_UNMATCHED);
        return;
    }
    decide_route(e, d, (unsigned)r, NULL, now, v);
}

/* Replies ---------------------------------------------------------------------- */

static int same_host(const struct sockaddr_in6 *a, const struct sockaddr_in6 *b)
{
    if (a->sin6_family != b->sin6_family)
        return 0;
    if (a->sin6_family == AF_INET) {
        struct sockaddr_in x, y;
        memcpy(&x, a, sizeof(x));
        memcpy(&y, b, sizeof(y));
        return x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    return memcmp(&a->sin6_addr, &b->sin6_addr, 16) == 0;
}

void umxd_decide_reply(const struct umxd_engine *e, struct umx_flow *f, const struct umx_rx_slot *d,
                       struct umxd_reply_verdict *v)
{
    const struct umxd_flow *fl = umxd_fl(f);
    const struct umxd_route *rt = route_of(e, fl->route);
    memset(v, 0, sizeof(*v));
    if (d->truncated) {
        v->why = UMXD_DROP_TRUNCATED;
        return;
    }
    if (fl->shared || !rt->connected) {
        /* unconnected upstream (TFTP answers from a new port) or the shared
         * socket (anyone may send to it): accept the backend's host only,
         * and follow the port it answered from: the peer's next datagrams
         * (TFTP ACKs) belong to that transfer socket */
        struct sockaddr_in6 src;
        umxd_store_addr(&src, &d->peer);
        if (!same_host(&src, &fl->upaddr)) {
            v->why = UMXD_DROP_FOREIGN;
            return;
        }
        v->follow_port = 1;
    }
    v->deliver = 1;
    if (e->protos[fl->route] &&
        umx_roam_key(d->buf, d->len, UMX_ROAM_FROM_SERVER, e->protos[fl->route], 0, v->key + 1,
                     &v->klen, &v->key_kind) == 1 &&
        v->klen) {
        /* every handshake the backend sends may start a new session index
         * (WireGuard rekeys every two minutes): learn each one */
        v->key[0] = (uint8_t)v->key_kind;
        v->klen++;
    } else {
        v->klen = 0;
    }
}

/* Flow-state changes ------------------------------------------------------------ */

void umxd_engine_classes(struct umxd_engine *e)
{
    const struct umxd_config *c = e->rs->cfg;
    for (unsigned r = 0; r < c->nroutes; r++) {
        umx_ft_set_class(e->ft, umxd_cls_unanswered(r), c->routes[r].unanswered_timeout_ns, 1);
        umx_ft_set_class(e->ft, umxd_cls_answered(r), c->routes[r].idle_timeout_ns, 1);
        umx_ft_set_class(e->ft, umxd_cls_established(r), c->routes[r].idle_timeout_ns, 0);
    }
    /* classes of routes that no longer exist: flows there are moved or
     * closed after a switch; give them a short timeout meanwhile */
    for (unsigned r = c->nroutes; r < UMXD_MAX_ROUTES; r++) {
        umx_ft_set_class(e->ft, umxd_cls_unanswered(r), 1, 1);
        umx_ft_set_class(e->ft, umxd_cls_answered(r), 1, 1);
        umx_ft_set_class(e->ft, umxd_cls_established(r), 1, 1);
    }
    umx_ft_set_class(e->ft, UMXD_CLS_RELAY, 180ull * 1000000000ull, 1);
    /* a route learns roaming keys only of the protocols its rule can
     * match (a dns route learns nothing, whatever roaming = says) */
    e->all_protos = 0;
    memset(e->protos, 0, sizeof(e->protos));
    for (unsigned r = 0; r < c->nroutes; r++) {
        const struct umxd_route *rt = &c->routes[r];
        if (rt->roaming && rt->rule && rt->action == UMXD_FORWARD)
            e->protos[r] = (uint8_t)umx_rule_roam_protos(rt->rule);
        e->all_protos |= e->protos[r];
    }
}

struct umx_flow *umxd_flow_add(struct umxd_engine *e, const struct umxd_verdict *v,
                               const struct umx_rx_slot *d, unsigned listener, uint64_t now,
                               umx_ft_release_fn *release, void *arg)
{
    unsigned cls;
    struct umx_flow *f;
    struct umxd_flow *fl;
    if (v->kind == UMXD_V_RELAY)
        cls = UMXD_CLS_RELAY;
    else if (v->kind == UMXD_V_FORWARD)
        cls = umxd_cls_unanswered((unsigned)v->route);
    /* attach flows: the program decides who it talks to; established */
    else
        cls = umxd_cls_established((unsigned)v->route);
    f = umx_ft_insert(e->ft, &v->key, cls, now, release, arg);
    if (!f)
        return NULL;
    fl = umxd_fl(f);
    fl->up_fd = -1;
    fl->gen = ++e->gen;
    fl->listener = (uint8_t)listener;
    umxd_store_addr(&fl->peer, &d->peer);
    if (d->has_local)
        umxd_store_addr(&fl->local, &d->local);
    if (v->kind == UMXD_V_RELAY) {
        fl->relay = 1;
        fl->relay_worker = (uint8_t)v->ref.worker;
        fl->relay_idx = v->ref.idx;
        fl->relay_gen = v->ref.gen;
        return f;
    }
    fl->route = (uint16_t)v->route;
    fl->slot = e->rs->slot[v->route];
    if (v->kind == UMXD_V_FORWARD) {
        fl->backend = (uint8_t)v->backend;
    } else {
        fl->attach = 1;
        fl->pinned = (uint8_t)v->pin;
        fl->answered = 1;
        fl->established = 1;
        fl->client = v->client;
        fl->cgen = v->cgen;
    }
    if (e->prefix)
        prefix_slot(e, (const struct sockaddr *)&fl->peer)->flows++;
    return f;
}

int umxd_flow_move(struct umxd_engine *e, struct umx_flow *f, const struct umx_flow_key *k,
                   const struct umx_rx_slot *d)
{
    struct umxd_flow *fl = umxd_fl(f);
    int r = umx_ft_rekey(e->ft, f, k);
    if (r < 0)
        return r;
    umxd_store_addr(&fl->peer, &d->peer);
    if (d->has_local)
        umxd_store_addr(&fl->local, &d->local);
    return 0;
}

void umxd_flow_adopted(struct umxd_engine *e, struct umx_flow *f)
{
    if (e->prefix && !umxd_fl(f)->relay)
        prefix_slot(e, (const struct sockaddr *)&umxd_fl(f)->peer)->flows++;
}

void umxd_flow_gone(struct umxd_engine *e, struct umx_flow *f)
{
    const struct umxd_flow *fl = umxd_fl(f);
    struct umxd_prefix_slot *ps;
    if (fl->relay || !e->prefix)
        return;
    ps = prefix_slot(e, (const struct sockaddr *)&fl->peer);
    if (ps->flows)
        ps->flows--;
}

void umxd_flow_rx(struct umxd_engine *e, struct umx_flow *f, const uint8_t *buf, size_t len,
                  unsigned listener, uint64_t now)
{
    struct umxd_flow *fl = umxd_fl(f);
    unsigned cls = UMXD_CLS_KEEP;
    fl->rx_dgrams++;
    fl->rx_bytes += len;
    fl->listener = (uint8_t)listener;
    if (!fl->relay && !fl->attach && fl->route < UMXD_MAX_ROUTES &&
        (e->protos[fl->route] & UMX_ROAM_P_OPENVPN) && f->roam_len == 0) {
        /* OpenVPN's client session id is never echoed where the server's
         * replies could teach it: learn it from the client's own control
         * packets (rules/roam.h); a P_DATA_V2 peer-id from the server
         * replaces it */
        uint8_t key[UMX_ROAM_MAX];
        size_t klen = 0;
        int kind = 0;
        if (buf &&
            umx_roam_key(buf, len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN, 0, key + 1, &klen,
                         &kind) == 1 &&
            kind == UMX_ROAM_OVPN_SID) {
            key[0] = (uint8_t)kind;
            umx_ft_roam_set(e->ft, f, key, klen + 1);
            session_put(e, key, klen + 1, kind, fl, now);
        }
    }
    if (!fl->relay && fl->answered && !fl->established) {
        /* the peer sent again after our answer: it receives what we send
         * (a spoofed source cannot), so the flow is proven */
        fl->established = 1;
        cls = umxd_cls_established(fl->route);
    }
    umx_ft_touch(e->ft, f, cls, now);
}

void umxd_flow_reply(struct umxd_engine *e, struct umx_flow *f, const struct umx_rx_slot *d,
                     const struct umxd_reply_verdict *v, uint64_t now)
{
    struct umxd_flow *fl = umxd_fl(f);
    if (v->follow_port)
        umxd_store_addr(&fl->upaddr, &d->peer);
    fl->tx_dgrams++;
    fl->tx_bytes += d->len;
    fl->answered = 1;
    if (v->klen) {
        umx_ft_roam_set(e->ft, f, v->key, v->klen);
        session_put(e, v->key, v->klen, v->key_kind, fl, now);
        /* remember the length for short-header lookups (bit 0 for
         * WireGuard, whose key length is fixed) */
        e->roam_lens |= v->key_kind == UMX_ROAM_QUIC ? 1u << (v->klen - 1) : 1u;
    }
    umx_ft_touch(e->ft, f, umxd_cls_of(fl, fl->route), now);
}
