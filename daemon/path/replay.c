/*
 * replay.c - see replay.h. A model of one worker: every backend up, no
 * attached programs, no other workers; the flow table, admission limits,
 * probe state (split ClientHellos), roaming keys and classify = every are
 * the engine's own.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "quiclb.h"
#include "replay.h"
#include "rules/probe.h"

struct umxd_replay {
    struct umxd_config *cfg;
    struct umxd_routeset rs;
    struct umx_ft *ft;
    struct umx_probe_state *pstate;
    struct umxd_rate_slot *rate_flows, *rate_replies;
    struct umxd_session *sessions;
    uint8_t hashkey[16];
    struct umxd_engine eng;
    struct umxd_env env;
    uint64_t flows[UMXD_MAX_ROUTES]; /* per route, for max-flows */
    /* the last built-in answers udpmuxd owes (echo, stun): their replies
     * come from a listener without a flow */
    struct {
        struct sockaddr_in6 peer;
        int route;
    } owed[64];
    unsigned nowed;
};

static const char *const drop_names[] = {
#define N(e, g, r, n) [UMXD_DROP_##e] = n,
    UMXD_DROPS(N)
#undef N
};

const char *umxd_drop_name(enum umxd_drop why)
{
    return (unsigned)why < UMXD_DROP_COUNT ? drop_names[why] : "?";
}

static uint64_t replay_route_flows(void *ctx, unsigned slot)
{
    const struct umxd_replay *r = ctx;
    return slot < UMXD_MAX_ROUTES ? r->flows[slot] : 0;
}

static void replay_release(struct umx_flow *f, void *arg, int reason)
{
    struct umxd_replay *r = arg;
    const struct umxd_flow *fl = umxd_fl(f);
    (void)reason;
    umxd_flow_gone(&r->eng, f);
    if (!fl->relay && fl->slot < UMXD_MAX_ROUTES && r->flows[fl->slot])
        r->flows[fl->slot]--;
}

int umxd_replay_new(struct umxd_replay **out, struct umxd_config *cfg)
{
    struct umxd_replay *r = calloc(1, sizeof(*r));
    int e;
    if (!r)
        return -ENOMEM;
    r->cfg = cfg;
    r->rs.cfg = cfg;
    for (unsigned i = 0; i < cfg->nroutes; i++)
        r->rs.slot[i] = (uint16_t)i;
    /* a fixed key: a replay gives the same backends every time */
    memset(r->hashkey, 0x5a, sizeof(r->hashkey));
    e = umxd_config_index(cfg, &r->rs.idx);
    if (e == 0)
        e = umx_ft_new(&r->ft, cfg->max_flows ? cfg->max_flows : 4096, sizeof(struct umxd_flow),
                       r->hashkey);
    if (e == 0 && umx_probe_state_new(&r->pstate, 1024) < 0)
        r->pstate = NULL;
    r->rate_flows = calloc(UMXD_RATE_SLOTS, sizeof(*r->rate_flows));
    r->rate_replies = calloc(UMXD_RATE_SLOTS, sizeof(*r->rate_replies));
    r->sessions = calloc((size_t)UMXD_SESSION_SETS * UMXD_SESSION_WAYS, sizeof(*r->sessions));
    if (e == 0 && (!r->rate_flows || !r->rate_replies || !r->sessions))
        e = -ENOMEM;
    if (e == 0)
        e = umxd_qlb_aes_new(&r->eng.qlb);
    if (e < 0) {
        r->cfg = NULL; /* the caller keeps cfg on failure */
        umxd_replay_free(r);
        return e;
    }
    r->eng.ft = r->ft;
    r->eng.rs = &r->rs;
    r->eng.pstate = r->pstate;
    r->eng.hashkey = r->hashkey;
    r->env.ctx = r;
    r->env.route_flows = replay_route_flows;
    r->eng.env = &r->env;
    r->eng.budget = UINT_MAX;
    r->eng.rate_flows = r->rate_flows;
    r->eng.rate_replies = r->rate_replies;
    r->eng.sessions = r->sessions;
    *out = r;
    umxd_engine_classes(&r->eng);
    return 0;
}

void umxd_replay_free(struct umxd_replay *r)
{
    if (!r)
        return;
    umx_ft_free(r->ft);
    umx_probe_state_free(r->pstate);
    free(r->rate_flows);
    free(r->rate_replies);
    free(r->sessions);
    umxd_qlb_aes_free(r->eng.qlb);
    umxd_config_free(r->cfg);
    free(r);
}

const struct umxd_config *umxd_replay_config(const struct umxd_replay *r)
{
    return r->cfg;
}

static int is_any(const struct sockaddr_in6 *a)
{
    static const uint8_t zero[16];
    if (a->sin6_family == AF_INET)
        return ((const struct sockaddr_in *)(const void *)a)->sin_addr.s_addr == 0;
    return memcmp(&a->sin6_addr, zero, 16) == 0;
}

static int is_listener(const struct umxd_config *c, const struct sockaddr *a)
{
    for (unsigned i = 0; i < c->nlisten; i++) {
        const struct sockaddr *l = (const struct sockaddr *)&c->listen[i];
        struct sockaddr_in6 x, y;
        umxd_store_addr(&x, (const struct sockaddr_storage *)(const void *)l);
        umxd_store_addr(&y, (const struct sockaddr_storage *)(const void *)a);
        if (x.sin6_family != y.sin6_family || x.sin6_port != y.sin6_port)
            continue;
        if (is_any(&x) || umx_sa_equal(l, a))
            return 1;
    }
    return 0;
}

static void slot_of(struct umx_rx_slot *s, const struct sockaddr *peer,
                    const struct sockaddr *local, const uint8_t *buf, size_t len)
{
    memset(s, 0, sizeof(*s));
    memcpy(&s->peer, peer, umx_sa_len(peer));
    memcpy(&s->local, local, umx_sa_len(local));
    s->has_local = 1;
    s->buf = (uint8_t *)(uintptr_t)buf;
    s->len = len;
}

static const char *how_name(const struct umxd_verdict *v)
{
    if (v->kind == UMXD_V_DROP)
        return umxd_drop_name(v->why);
    if (v->kind == UMXD_V_HOLD)
        return "held";
    if (v->kind == UMXD_V_RELAY)
        return "relay";
    switch (v->how) {
    case UMXD_HOW_FLOW:
        return "flow";
    case UMXD_HOW_ROAMED:
        return "roamed";
    case UMXD_HOW_SESSION:
        return "session";
    default:
        return "probe";
    }
}

void umxd_replay_datagram(struct umxd_replay *r, const struct sockaddr *src,
                          const struct sockaddr *dst, const uint8_t *buf, size_t len, uint64_t now,
                          struct umxd_replay_out *out)
{
    struct umx_rx_slot s;
    struct umx_flow_key k;
    struct umx_flow *f;
    struct umxd_verdict v;

    memset(out, 0, sizeof(*out));
    out->route = -1;
    /* a reply: sent from the local side of a flow to its peer (flows keyed
     * (local, peer), tag 0 first, then the per-route tags of classify =
     * every) */
    if (!is_listener(r->cfg, dst)) {
        for (unsigned t = 0; t <= r->cfg->nroutes; t++) {
            umx_flow_key_make(&k, src, dst, t);
            f = umx_ft_lookup(r->ft, &k);
            if (f && !umxd_fl(f)->relay && !umxd_fl(f)->attach) {
                struct umxd_reply_verdict rv;
                /* the capture shows the reply on the shared port; the
                 * model's backend (upaddr) sent it */
                slot_of(&s, (const struct sockaddr *)&umxd_fl(f)->upaddr, src, buf, len);
                umxd_decide_reply(&r->eng, f, &s, &rv);
                umxd_flow_reply(&r->eng, f, &s, &rv, now);
                out->route = umxd_fl(f)->route;
                out->reply = 1;
                out->how = "reply";
                return;
            }
            if (!r->cfg->nroutes)
                break;
        }
    }
    if (is_listener(r->cfg, src)) {
        /* udpmuxd's own answer (echo, stun): the route that owed it */
        struct sockaddr_in6 p;
        umxd_store_addr(&p, (const struct sockaddr_storage *)(const void *)dst);
        out->reply = 1;
        out->how = "reply";
        for (unsigned i = 0; i < sizeof(r->owed) / sizeof(r->owed[0]); i++)
            if (memcmp(&r->owed[i].peer, &p, sizeof(p)) == 0) {
                out->route = r->owed[i].route;
                break;
            }
        return;
    }
    slot_of(&s, src, dst, buf, len);
    umxd_decide(&r->eng, &s, now, &v);
    if (v.kind == UMXD_V_BUILTIN) {
        unsigned i = r->nowed++ % (sizeof(r->owed) / sizeof(r->owed[0]));
        umxd_store_addr(&r->owed[i].peer, &s.peer);
        r->owed[i].route = v.route;
    }
    out->route = v.kind == UMXD_V_DROP && v.why == UMXD_DROP_UNMATCHED ? -1 : v.route;
    out->how = how_name(&v);
    if (umxd_verdict_new(&v) && v.kind != UMXD_V_RELAY) {
        f = umxd_flow_add(&r->eng, &v, &s, 0, now, replay_release, r);
        if (!f) {
            out->how = umxd_drop_name(UMXD_DROP_TABLE_FULL);
            return;
        }
        if (v.route >= 0)
            r->flows[v.route]++;
        /* the model's backend is the flow's own peer address: unconnected
         * upstreams then take its replies */
        umxd_store_addr(&umxd_fl(f)->upaddr, &s.peer);
        umxd_flow_rx(&r->eng, f, buf, len, 0, now);
    } else if (v.how == UMXD_HOW_ROAMED) {
        if (umxd_flow_move(&r->eng, v.flow, &v.key, &s) == 0)
            umxd_flow_rx(&r->eng, v.flow, buf, len, 0, now);
    } else if (v.how == UMXD_HOW_FLOW && v.flow && v.kind != UMXD_V_RELAY) {
        umxd_flow_rx(&r->eng, v.flow, buf, len, 0, now);
    }
}
