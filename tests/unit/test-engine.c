/*
 * test-engine.c - the packet path's decision engine (daemon/path/engine.c)
 * without sockets, the way quicly tests connections in memory: a config
 * from text, a flow table, a model of the world (struct umxd_env: backend
 * health, drains, attached programs), datagrams built here, and the
 * verdicts and flow-state changes checked one by one. The harness applies a
 * verdict's flow changes the way the daemon's act step does
 * (umxd_flow_add/move/rx/reply) and nothing else.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "path/engine.h"
#include "path/quiclb.h"
#include "path/replay.h"
#include "rules/probe.h"
#include "rules/roam.h"

#define S (UINT64_C(1000000000))

/* The model ----------------------------------------------------------------- */

struct pin {
    struct sockaddr_in peer;
    char route[UMXD_NAME_MAX];
    uint16_t client;
};

struct h {
    struct umxd_config *cfg;
    struct umxd_routeset rs;
    struct umx_ft *ft;
    struct umx_probe_state *ps;
    struct umxd_engine e;
    struct umxd_env env;
    uint8_t key[16];
    struct umxd_rate_slot *rf, *rr;
    int down[UMXD_MAX_ROUTES][UMXD_MAX_BACKENDS];
    int drained[UMXD_MAX_ROUTES];
    uint64_t flows[UMXD_MAX_ROUTES];
    struct pin pins[4];
    unsigned npins;
    const char *held; /* the route an attached program holds */
    uint64_t now;
};

static int m_backend_up(void *ctx, unsigned slot, unsigned b, uint64_t now)
{
    struct h *h = ctx;
    (void)now;
    return !h->down[slot][b];
}

static int m_drained(void *ctx, unsigned slot)
{
    return ((struct h *)ctx)->drained[slot];
}

static uint64_t m_route_flows(void *ctx, unsigned slot)
{
    return ((struct h *)ctx)->flows[slot];
}

static int m_attach_find(void *ctx, const struct sockaddr *peer, uint16_t *client, uint32_t *cgen,
                         char *route, size_t routelen)
{
    struct h *h = ctx;
    for (unsigned i = 0; i < h->npins; i++)
        if (umx_sa_equal((const struct sockaddr *)&h->pins[i].peer, peer)) {
            *client = h->pins[i].client;
            *cgen = 7;
            snprintf(route, routelen, "%s", h->pins[i].route);
            return 0;
        }
    return -ENOENT;
}

static int m_attach_pick(void *ctx, const char *route, const struct sockaddr *peer,
                         uint16_t *client, uint32_t *cgen)
{
    struct h *h = ctx;
    (void)peer;
    if (!h->held || strcmp(h->held, route) != 0)
        return -ENOENT;
    *client = 3;
    *cgen = 9;
    return 0;
}

static struct h *h_new(const char *text)
{
    struct h *h = calloc(1, sizeof(*h));
    char err[512] = "";
    assert_non_null(h);
    if (umxd_config_load_string(text, "test.conf", &h->cfg, err, sizeof(err)) < 0)
        fail_msg("config: %s", err);
    h->rs.cfg = h->cfg;
    for (unsigned i = 0; i < h->cfg->nroutes; i++)
        h->rs.slot[i] = (uint16_t)i;
    assert_int_equal(umxd_config_index(h->cfg, &h->rs.idx), 0);
    memset(h->key, 0x11, sizeof(h->key));
    assert_int_equal(umx_ft_new(&h->ft, 64, sizeof(struct umxd_flow), h->key), 0);
    assert_int_equal(umx_probe_state_new(&h->ps, 64), 0);
    h->rf = calloc(UMXD_RATE_SLOTS, sizeof(*h->rf));
    h->rr = calloc(UMXD_RATE_SLOTS, sizeof(*h->rr));
    h->env = (struct umxd_env){
        h, m_backend_up, m_drained, m_route_flows, m_attach_find, m_attach_pick, NULL, NULL};
    h->e.ft = h->ft;
    h->e.rs = &h->rs;
    h->e.pstate = h->ps;
    h->e.hashkey = h->key;
    h->e.env = &h->env;
    h->e.budget = UINT_MAX;
    h->e.rate_flows = h->rf;
    h->e.rate_replies = h->rr;
    h->e.sessions = calloc((size_t)UMXD_SESSION_SETS * UMXD_SESSION_WAYS, sizeof(*h->e.sessions));
    umxd_engine_classes(&h->e);
    h->now = 10 * S;
    return h;
}

static void h_free(struct h *h)
{
    umx_ft_free(h->ft);
    umx_probe_state_free(h->ps);
    umxd_config_free(h->cfg);
    free(h->rf);
    free(h->rr);
    free(h->e.sessions);
    free(h);
}

static struct sockaddr_in sin4(const char *ip, unsigned port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct umx_rx_slot dgram(const char *ip, unsigned port, const void *p, size_t n)
{
    struct umx_rx_slot s;
    struct sockaddr_in peer = sin4(ip, port), local = sin4("192.0.2.53", 443);
    memset(&s, 0, sizeof(s));
    memcpy(&s.peer, &peer, sizeof(peer));
    memcpy(&s.local, &local, sizeof(local));
    s.has_local = 1;
    s.buf = (uint8_t *)(uintptr_t)p;
    s.len = n;
    return s;
}

/* Decides and applies the verdict's flow changes as act.c does. */
static struct umxd_verdict step(struct h *h, struct umx_rx_slot *s)
{
    struct umxd_verdict v;
    umxd_decide(&h->e, s, h->now, &v);
    if (umxd_verdict_new(&v)) {
        v.flow = umxd_flow_add(&h->e, &v, s, 0, h->now, NULL, NULL);
        assert_non_null(v.flow);
        if (v.route >= 0)
            h->flows[v.route]++;
        /* the backend of the model answers from its own address */
        if (v.kind == UMXD_V_FORWARD)
            memcpy(&umxd_fl(v.flow)->upaddr, &h->cfg->routes[v.route].backends[v.backend].addr,
                   sizeof(struct sockaddr_in));
    } else if (v.how == UMXD_HOW_ROAMED) {
        assert_int_equal(umxd_flow_move(&h->e, v.flow, &v.key, s), 0);
    }
    if (v.flow && v.kind != UMXD_V_DROP && v.kind != UMXD_V_RELAY)
        umxd_flow_rx(&h->e, v.flow, s->buf, s->len, 0, h->now);
    h->now += S / 1000;
    return v;
}

static struct umxd_verdict send_str(struct h *h, const char *ip, unsigned port, const char *p)
{
    struct umx_rx_slot s = dgram(ip, port, p, strlen(p));
    return step(h, &s);
}

/* The flow's backend answers with p. */
static struct umxd_reply_verdict reply(struct h *h, struct umx_flow *f, const void *p, size_t n)
{
    struct umxd_reply_verdict rv;
    struct umx_rx_slot s;
    memset(&s, 0, sizeof(s));
    memcpy(&s.peer, &umxd_fl(f)->upaddr, sizeof(struct sockaddr_in));
    s.buf = (uint8_t *)(uintptr_t)p;
    s.len = n;
    umxd_decide_reply(&h->e, f, &s, &rv);
    if (rv.deliver)
        umxd_flow_reply(&h->e, f, &s, &rv, h->now);
    return rv;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (; *hex; hex++) {
        int v;
        if (*hex >= '0' && *hex <= '9')
            v = *hex - '0';
        else if (*hex >= 'a' && *hex <= 'f')
            v = *hex - 'a' + 10;
        else
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            assert_true(n < cap);
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    return n;
}

#define ROUTES_BASIC                                                                               \
    "[listen]\naddress = 192.0.2.53:443\n"                                                         \
    "[route ping]\nmatch = prefix 70696e67\nforward = 127.0.0.1:7001\nforward = 127.0.0.1:7002\n"  \
    "[route echo]\nmatch = prefix 6563686f\naction = echo\n"                                       \
    "[route junk]\nmatch = prefix 6a756e6b\naction = drop\n"                                       \
    "[route app]\nmatch = prefix 617070\naction = attach\nallow = uid:0\n"

/* Verdicts -------------------------------------------------------------------- */

static void t_new_flow_then_flow(void **st)
{
    struct h *h = h_new(ROUTES_BASIC);
    struct umxd_verdict v = send_str(h, "198.51.100.1", 4000, "ping 1");
    struct umx_flow *f = v.flow;
    (void)st;
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.how, UMXD_HOW_NEW);
    assert_int_equal(v.route, 0);
    assert_true(v.classified);
    assert_true(v.backend == 0 || v.backend == 1);
    /* the next datagram of the peer: its flow, whatever it contains */
    v = send_str(h, "198.51.100.1", 4000, "no route matches this");
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.how, UMXD_HOW_FLOW);
    assert_ptr_equal(v.flow, f);
    assert_false(v.classified);
    assert_int_equal(umxd_fl(f)->rx_dgrams, 2);
    h_free(h);
}

static void t_drops_and_builtin(void **st)
{
    struct h *h = h_new(ROUTES_BASIC);
    struct umxd_verdict v;
    (void)st;
    v = send_str(h, "198.51.100.1", 4000, "nothing matches");
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_UNMATCHED);
    assert_int_equal(v.route, -1);
    v = send_str(h, "198.51.100.1", 4000, "junk");
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_ACTION);
    assert_int_equal(v.route, 2);
    v = send_str(h, "198.51.100.1", 4000, "echo hi");
    assert_int_equal(v.kind, UMXD_V_BUILTIN);
    assert_int_equal(v.route, 1);
    assert_null(v.flow);
    /* nobody holds the attach route: counted, never given to anyone */
    v = send_str(h, "198.51.100.1", 4000, "app 1");
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_UNCLAIMED);
    h->held = "app";
    v = send_str(h, "198.51.100.1", 4000, "app 1");
    assert_int_equal(v.kind, UMXD_V_DELIVER);
    assert_int_equal(v.how, UMXD_HOW_NEW);
    assert_int_equal(umxd_fl(v.flow)->client, 3);
    h_free(h);
}

static void t_admission(void **st)
{
    struct h *h = h_new(ROUTES_BASIC "[udpmux]\nnew-flow-rate = 1\nnew-flow-burst = 2\n");
    struct umxd_verdict v;
    (void)st;
    /* a /24's bucket: two new flows, then refused */
    assert_int_equal(send_str(h, "198.51.100.1", 1, "ping").how, UMXD_HOW_NEW);
    assert_int_equal(send_str(h, "198.51.100.2", 1, "ping").how, UMXD_HOW_NEW);
    v = send_str(h, "198.51.100.3", 1, "ping");
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_RATE);
    /* another /24 has its own bucket */
    assert_int_equal(send_str(h, "203.0.113.1", 1, "ping").how, UMXD_HOW_NEW);
    /* a second later the first /24 has a token again */
    h->now += S;
    assert_int_equal(send_str(h, "198.51.100.3", 1, "ping").how, UMXD_HOW_NEW);
    h_free(h);
}

static void t_budget_health_drain(void **st)
{
    struct h *h = h_new(ROUTES_BASIC "[route cap]\nmatch = prefix 636170\nforward = "
                                     "127.0.0.1:7003\nmax-flows = 1\n");
    struct umxd_verdict v;
    (void)st;
    /* overload: a socket flow costs 3 units */
    h->e.budget = 4;
    assert_int_equal(send_str(h, "198.51.100.1", 1, "ping").how, UMXD_HOW_NEW);
    v = send_str(h, "198.51.100.2", 1, "ping");
    assert_int_equal(v.why, UMXD_DROP_RATE);
    h->e.budget = UINT_MAX;
    /* both backends down: no backend; one down: the other */
    h->down[0][0] = h->down[0][1] = 1;
    v = send_str(h, "198.51.100.3", 1, "ping");
    assert_int_equal(v.why, UMXD_DROP_NO_BACKEND);
    h->down[0][0] = 0;
    v = send_str(h, "198.51.100.4", 1, "ping");
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.backend, 0);
    /* drained route */
    h->drained[0] = 1;
    assert_int_equal(send_str(h, "198.51.100.5", 1, "ping").why, UMXD_DROP_NO_BACKEND);
    /* max-flows */
    assert_int_equal(send_str(h, "198.51.100.6", 1, "cap").how, UMXD_HOW_NEW);
    assert_int_equal(send_str(h, "198.51.100.7", 1, "cap").why, UMXD_DROP_ROUTE_FULL);
    h_free(h);
}

/* Rendezvous: the choice depends on the peer's address, not its port. */
static void t_backend_choice_stable(void **st)
{
    struct h *h = h_new(ROUTES_BASIC);
    unsigned seen[2] = {0, 0};
    (void)st;
    for (unsigned i = 1; i <= 32; i++) {
        char ip[32];
        struct umxd_verdict a, b;
        snprintf(ip, sizeof(ip), "198.51.%u.%u", 100 + i, i);
        a = send_str(h, ip, 1000, "ping");
        b = send_str(h, ip, 2000, "ping");
        assert_int_equal(a.backend, b.backend);
        seen[a.backend]++;
    }
    assert_true(seen[0] > 0 && seen[1] > 0);
    h_free(h);
}

static void t_classify_every(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route a]\nmatch = prefix 61\nforward = 127.0.0.1:7001\nclassify = every\n"
                        "[route b]\nmatch = prefix 62\nforward = 127.0.0.1:7002\n");
    struct umxd_verdict v = send_str(h, "198.51.100.1", 1, "a1");
    struct umx_flow *fa = v.flow, *fb;
    (void)st;
    assert_int_equal(v.route, 0);
    v = send_str(h, "198.51.100.1", 1, "b1");
    assert_int_equal(v.route, 1);
    assert_int_equal(v.how, UMXD_HOW_NEW);
    assert_int_equal(v.key.tag, 2);
    fb = v.flow;
    assert_ptr_not_equal(fa, fb);
    v = send_str(h, "198.51.100.1", 1, "b2");
    assert_ptr_equal(v.flow, fb);
    assert_int_equal(v.how, UMXD_HOW_FLOW);
    v = send_str(h, "198.51.100.1", 1, "a2");
    assert_ptr_equal(v.flow, fa);
    /* matching nothing stays on the peer's flow */
    v = send_str(h, "198.51.100.1", 1, "zzz");
    assert_ptr_equal(v.flow, fa);
    h_free(h);
}

/* Replies ---------------------------------------------------------------------- */

static void t_reply(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route t]\nmatch = any\nforward = 127.0.0.1:69\nupstream = unconnected\n");
    struct umxd_verdict v = send_str(h, "198.51.100.1", 1, "rrq");
    struct umxd_reply_verdict rv;
    struct umxd_flow *fl = umxd_fl(v.flow);
    struct umx_rx_slot s;
    struct sockaddr_in other = sin4("127.0.0.2", 69), port = sin4("127.0.0.1", 40000);
    (void)st;
    assert_false(fl->established);
    rv = reply(h, v.flow, "data", 4);
    assert_true(rv.deliver);
    assert_true(fl->answered);
    assert_false(fl->established); /* proven only by the peer */
    /* another host is foreign on an unconnected upstream */
    memset(&s, 0, sizeof(s));
    memcpy(&s.peer, &other, sizeof(other));
    s.buf = (uint8_t *)(uintptr_t) "x";
    s.len = 1;
    umxd_decide_reply(&h->e, v.flow, &s, &rv);
    assert_false(rv.deliver);
    assert_int_equal(rv.why, UMXD_DROP_FOREIGN);
    /* the backend's host from another port: followed (TFTP) */
    memcpy(&s.peer, &port, sizeof(port));
    umxd_decide_reply(&h->e, v.flow, &s, &rv);
    assert_true(rv.deliver);
    assert_true(rv.follow_port);
    h_free(h);
}

/* WireGuard roaming: the receiver index the server's handshake response
 * names moves the flow when the client's data come from a new address. */
static void t_roaming_wireguard(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route wg]\nmatch = wireguard\nforward = 127.0.0.1:51820\n");
    uint8_t init[256], resp[256], data[512];
    size_t ni = 148;
    size_t nr = unhex("02000000db577ca820f09580e23eaf44cac9bdd8834e2fbc7adb5c0fad148de8"
                      "8b15e5d07c7547f8dc85f9626fdf81c6de1b43b7408774a4026e2f10009ad969"
                      "7320b7f76bad8ee17d9c591a00000000000000000000000000000000",
                      resp, sizeof(resp));
    size_t nd;
    struct umx_rx_slot s;
    struct umxd_verdict v;
    (void)st;
    memset(init, 0, sizeof(init));
    init[0] = 1;
    memcpy(init + 4, "\x20\xf0\x95\x80", 4);
    for (size_t i = 8; i < ni; i++)
        init[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(nr, 92);
    memset(data, 0, sizeof(data));
    data[0] = 4;
    memcpy(data + 4, resp + 4, 4); /* receiver index = the server's sender index */
    nd = 64;
    s = dgram("198.51.100.1", 5000, init, ni);
    v = step(h, &s);
    assert_int_equal(v.how, UMXD_HOW_NEW);
    assert_true(reply(h, v.flow, resp, nr).klen > 0);
    /* proof of return routability: the client's first data packet */
    s = dgram("198.51.100.1", 5000, data, nd);
    step(h, &s);
    /* the client moves */
    s = dgram("203.0.113.9", 6000, data, nd);
    v = step(h, &s);
    assert_int_equal(v.how, UMXD_HOW_ROAMED);
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(ntohs(((struct sockaddr_in *)(void *)&umxd_fl(v.flow)->peer)->sin_port), 6000);
    h_free(h);
}

/* #12: a flow is protected from eviction only once the peer proved it
 * receives our answers (a datagram after the backend's reply); answered
 * but unproven flows (what a spoofed source gets) are evicted first. */
static void t_proven(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[udpmux]\nmax-flows = 4\nmax-flows-per-prefix = 0\n"
                        "[route p]\nmatch = any\nforward = 127.0.0.1:7001\n");
    struct umxd_verdict v;
    struct umx_flow *f[4];
    (void)st;
    for (unsigned i = 0; i < 4; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "198.51.100.%u", i + 1);
        v = send_str(h, ip, 1, "q");
        f[i] = v.flow;
        assert_true(reply(h, f[i], "a", 1).deliver);
        assert_true(umxd_fl(f[i])->answered);
        assert_false(umxd_fl(f[i])->established);
    }
    /* two peers prove themselves */
    send_str(h, "198.51.100.1", 1, "q2");
    send_str(h, "198.51.100.2", 1, "q2");
    assert_true(umxd_fl(f[0])->established);
    /* a full table: new peers take the unproven flows' places, never the
     * proven ones */
    for (unsigned i = 0; i < 6; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "203.0.113.%u", i + 1);
        struct umx_rx_slot s = dgram(ip, 1, "n", 1);
        umxd_decide(&h->e, &s, h->now, &v);
        assert_int_equal(v.how, UMXD_HOW_NEW);
        assert_non_null(umxd_flow_add(&h->e, &v, &s, 0, h->now, NULL, NULL));
        h->now += S / 1000;
    }
    v = send_str(h, "198.51.100.1", 1, "still mine");
    assert_int_equal(v.how, UMXD_HOW_FLOW);
    v = send_str(h, "198.51.100.2", 1, "still mine");
    assert_int_equal(v.how, UMXD_HOW_FLOW);
    h_free(h);
}

/* #12: one source prefix cannot fill the table. */
static void t_prefix_cap(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[udpmux]\nmax-flows-per-prefix = 3\n"
                        "[route p]\nmatch = any\nforward = 127.0.0.1:7001\n");
    struct umxd_prefix_slot *tab = calloc(UMXD_PREFIX_SLOTS, sizeof(*tab));
    struct umxd_verdict v;
    (void)st;
    h->e.prefix = tab;
    h->e.prefix_cap = umxd_prefix_cap(h->cfg, 64);
    assert_int_equal(h->e.prefix_cap, 3);
    for (unsigned i = 1; i <= 3; i++) {
        char ip[32];
        snprintf(ip, sizeof(ip), "198.51.100.%u", i);
        assert_int_equal(send_str(h, ip, 1, "x").how, UMXD_HOW_NEW);
    }
    v = send_str(h, "198.51.100.9", 1, "x");
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_PREFIX_FULL);
    /* another prefix is not affected; a flow that goes frees a place */
    assert_int_equal(send_str(h, "198.51.101.1", 1, "x").how, UMXD_HOW_NEW);
    {
        struct umx_rx_slot s = dgram("198.51.100.1", 1, "x", 1);
        struct umx_flow_key k;
        struct umx_flow *f;
        umx_flow_key_make(&k, (struct sockaddr *)&s.local, (struct sockaddr *)&s.peer, 0);
        f = umx_ft_lookup(h->ft, &k);
        assert_non_null(f);
        umxd_flow_gone(&h->e, f);
        umx_ft_remove(h->ft, f);
    }
    assert_int_equal(send_str(h, "198.51.100.9", 1, "x").how, UMXD_HOW_NEW);
    /* auto: a quarter of the table, at least 64 */
    h->cfg->max_flows_per_prefix = UINT32_MAX;
    assert_int_equal(umxd_prefix_cap(h->cfg, 4096), 1024);
    assert_int_equal(umxd_prefix_cap(h->cfg, 16), 64);
    free(tab);
    h_free(h);
}

/* #12: a flow pinned by an attached program's own send carries the peer's
 * answers, never what another route claims by content. */
static void t_pin_never_crosses_routes(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route fwd]\nmatch = dns\nforward = 127.0.0.1:5353\n"
                        "[route app]\nmatch = prefix fe\naction = attach\nallow = uid:0\n");
    static const uint8_t query[] = {0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                    0x00, 0x00, 0x07, 'e',  'x',  'a',  'm',  'p',  'l',  'e',
                                    0x03, 'c',  'o',  'm',  0x00, 0x00, 0x01, 0x00, 0x01};
    struct umx_rx_slot s;
    struct umxd_verdict v;
    (void)st;
    /* the program sent to the victim: a pin */
    h->pins[0].peer = sin4("198.51.100.7", 53000);
    snprintf(h->pins[0].route, sizeof(h->pins[0].route), "app");
    h->pins[0].client = 5;
    h->npins = 1;
    /* the victim's DNS query is route fwd's, not the program's */
    s = dgram("198.51.100.7", 53000, query, sizeof(query));
    v = step(h, &s);
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.route, 0);
    /* an answer the program expects (matches nothing else): delivered */
    h->pins[0].peer = sin4("198.51.100.8", 53000);
    v = send_str(h, "198.51.100.8", 53000, "\xfe answer");
    assert_int_equal(v.kind, UMXD_V_DELIVER);
    assert_true(umxd_fl(v.flow)->pinned);
    v = send_str(h, "198.51.100.8", 53000, "plain answer");
    assert_int_equal(v.kind, UMXD_V_DELIVER);
    /* later a query from the pinned peer still goes to fwd */
    s = dgram("198.51.100.8", 53000, query, sizeof(query));
    v = step(h, &s);
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.route, 0);
    h_free(h);
}

/* #12: a DNS route learns no roaming key, whatever its replies look like
 * (an ID >= 0x8000 once read as a QUIC long header). */
static void t_roam_dns_never(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route dns]\nmatch = dns\nforward = 127.0.0.1:5353\nroaming = yes\n");
    static const uint8_t q[] = {0x8a, 0x2f, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0x03, 'w',  'w',  'w',  0x00, 0x00, 0x01, 0x00, 0x01};
    static const uint8_t a[] = {0x8a, 0x2f, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                0x00, 0x00, 0x03, 'w',  'w',  'w',  0x00, 0x00, 0x01, 0x00,
                                0x01, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00, 0x00,
                                0x3c, 0x00, 0x04, 192,  0,    2,    10};
    struct umx_rx_slot s = dgram("198.51.100.1", 1000, q, sizeof(q));
    struct umxd_verdict v = step(h, &s);
    (void)st;
    assert_int_equal(reply(h, v.flow, a, sizeof(a)).klen, 0);
    assert_int_equal(h->e.protos[0], 0);
    s = dgram("198.51.100.1", 1000, q, sizeof(q)); /* proves the flow */
    step(h, &s);
    s = dgram("203.0.113.5", 2000, q, sizeof(q));
    v = step(h, &s);
    assert_int_equal(v.how, UMXD_HOW_NEW); /* its own flow, not A's */
    h_free(h);
}

/* #12: WireGuard sessions outlive flows, and a session nobody knows is
 * never pinned to a route it merely resembles. */
static void t_wg_sessions(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route wa]\nmatch = wireguard and from 198.51.100.0/25\n"
                        "forward = 127.0.0.1:51820\n"
                        "[route wb]\nmatch = wireguard\nforward = 127.0.0.1:51821\n");
    uint8_t init[148], resp[92], data[64];
    struct umx_rx_slot s;
    struct umxd_verdict v;
    struct umx_flow_key k;
    (void)st;
    memset(init, 0, sizeof(init));
    init[0] = 1;
    memset(resp, 0, sizeof(resp));
    resp[0] = 2;
    memcpy(resp + 4, "\xdb\x57\x7c\xa8", 4);
    memset(data, 0, sizeof(data));
    data[0] = 4;
    memcpy(data + 4, resp + 4, 4);
    assert_int_equal(h->e.protos[0], UMX_ROAM_P_WG);
    /* a client of server B (its address is outside wa's /25) */
    s = dgram("198.51.100.200", 5000, init, sizeof(init));
    v = step(h, &s);
    assert_int_equal(v.route, 1);
    assert_true(reply(h, v.flow, resp, sizeof(resp)).klen > 0);
    s = dgram("198.51.100.200", 5000, data, sizeof(data));
    assert_int_equal(step(h, &s).how, UMXD_HOW_FLOW);
    /* the flow idles out */
    umx_flow_key_make(&k, (struct sockaddr *)&s.local, (struct sockaddr *)&s.peer, 0);
    umxd_flow_gone(&h->e, umx_ft_lookup(h->ft, &k));
    umx_ft_remove(h->ft, umx_ft_lookup(h->ft, &k));
    h->now += 100 * S;
    /* its next data packet, even from an address route wa would claim,
     * goes to B's backend at once */
    s = dgram("198.51.100.7", 5001, data, sizeof(data));
    v = step(h, &s);
    assert_int_equal(v.kind, UMXD_V_FORWARD);
    assert_int_equal(v.how, UMXD_HOW_SESSION);
    assert_int_equal(v.route, 1);
    /* a data packet of a session nobody knows: two routes carry
     * WireGuard, so it is dropped, not pinned to the first */
    data[4] ^= 0xff;
    s = dgram("198.51.100.8", 5002, data, sizeof(data));
    v = step(h, &s);
    assert_int_equal(v.kind, UMXD_V_DROP);
    assert_int_equal(v.why, UMXD_DROP_UNKNOWN_SESSION);
    /* after the session's lifetime it is forgotten */
    data[4] ^= 0xff;
    h->now += 200 * S;
    s = dgram("198.51.100.9", 5003, data, sizeof(data));
    assert_int_equal(step(h, &s).why, UMXD_DROP_UNKNOWN_SESSION);
    h_free(h);
}

/* #15: with fleet-key, the backend depends only on the key, the peer's
 * address and the backends' addresses: another instance (another random
 * process key), a reordered pool and a restart pick the same; removing a
 * backend moves only its own peers. */
#define FLEET "[udpmux]\nfleet-key = 00112233445566778899aabbccddeeff\n"
static void t_fleet_key(void **st)
{
    struct h *a = h_new("[listen]\naddress = 192.0.2.53:443\n" FLEET
                        "[route p]\nmatch = any\nforward = 127.0.0.1:7001\n"
                        "forward = 127.0.0.1:7002\nforward = 127.0.0.1:7003\n");
    struct h *b = h_new("[listen]\naddress = 192.0.2.53:443\n" FLEET
                        "[route p]\nmatch = any\nforward = 127.0.0.1:7003\n"
                        "forward = 127.0.0.1:7001\nforward = 127.0.0.1:7002\n");
    struct h *c = h_new("[listen]\naddress = 192.0.2.53:443\n" FLEET
                        "[route p]\nmatch = any\nforward = 127.0.0.1:7001\n"
                        "forward = 127.0.0.1:7003\n");
    unsigned per[3] = {0, 0, 0}, moved = 0;
    (void)st;
    memset(b->key, 0x77, sizeof(b->key)); /* another process's random key */
    for (unsigned i = 0; i < 200; i++) {
        char ip[32];
        struct sockaddr_in peer;
        int pa, pb, pc;
        const char *ta, *tb, *tc;
        snprintf(ip, sizeof(ip), "10.%u.%u.%u", i % 7, i / 7, 1 + i % 250);
        peer = sin4(ip, 1000 + i);
        pa = umxd_pick_backend(&a->e, 0, (struct sockaddr *)&peer, a->now);
        pb = umxd_pick_backend(&b->e, 0, (struct sockaddr *)&peer, b->now);
        pc = umxd_pick_backend(&c->e, 0, (struct sockaddr *)&peer, c->now);
        ta = a->cfg->routes[0].backends[pa].text;
        tb = b->cfg->routes[0].backends[pb].text;
        tc = c->cfg->routes[0].backends[pc].text;
        assert_string_equal(ta, tb);
        per[pa]++;
        /* 7002 removed: only its peers move */
        if (strcmp(ta, "127.0.0.1:7002") != 0)
            assert_string_equal(ta, tc);
        else
            moved++;
    }
    assert_true(per[0] > 30 && per[1] > 30 && per[2] > 30);
    assert_int_equal(moved, per[1]);
    h_free(a);
    h_free(b);
    h_free(c);
}

/* #15 QUIC-LB: a QUIC datagram from an address no flow knows, whose
 * connection id carries a backend's server id, goes to that backend on
 * every instance (another process key, another backend order); an id no
 * backend has, another config id, or a down backend fall back to the normal
 * decision; a datagram another route claims by content is never taken. */
#define QLB_KEY "8f95f09245765f80256934e50c66207f"
#define QLB_ROUTES(B1, B2, B3)                                                                     \
    "[listen]\naddress = 192.0.2.53:443\n"                                                         \
    "[route quic]\nmatch = quic\nforward = " B1 ", " B2 ", " B3 "\n"                               \
    "quic-lb = config-id=2 server-id-length=3 nonce-length=4 key=" QLB_KEY "\n"                    \
    "[route rest]\nmatch = any\nforward = 127.0.0.1:7100\n"
#define QB1 "127.0.0.1:7001 server-id=0000a1"
#define QB2 "127.0.0.1:7002 server-id=0000b2"
#define QB3 "127.0.0.1:7003 server-id=0000c3"

/* A 1-RTT (short header) datagram with the CID of server id sid. */
static size_t qlb_short(struct umxd_qlb_aes *a, const struct umxd_quiclb *q, const uint8_t *sid,
                        unsigned nonce, uint8_t *out)
{
    uint8_t n4[4] = {(uint8_t)(nonce >> 24), (uint8_t)(nonce >> 16), (uint8_t)(nonce >> 8),
                     (uint8_t)nonce};
    memset(out, 0x5c, 40);
    out[0] = 0x43;
    assert_int_equal(umxd_qlb_encode(a, q, 7, sid, n4, out + 1), 0);
    return 40;
}

static void t_quiclb(void **st)
{
    struct h *a = h_new(QLB_ROUTES(QB1, QB2, QB3));
    struct h *b = h_new(QLB_ROUTES(QB3, QB1, QB2)); /* another instance, another order */
    struct h *old = h_new("[listen]\naddress = 192.0.2.53:443\n"
                          "[route quic]\nmatch = quic\nforward = 127.0.0.1:7001, 127.0.0.1:7002, "
                          "127.0.0.1:7003\n[route rest]\nmatch = any\nforward = 127.0.0.1:7100\n");
    const struct umxd_quiclb *q = &a->cfg->routes[0].qlb;
    static const uint8_t sid_b2[3] = {0, 0, 0xb2}, sid_none[3] = {0, 0, 0xdd};
    uint8_t buf[64];
    size_t n;
    (void)st;
    assert_int_equal(umxd_qlb_aes_new(&a->e.qlb), 0);
    assert_int_equal(umxd_qlb_aes_new(&b->e.qlb), 0);
    memset(b->key, 0x77, sizeof(b->key));
    for (unsigned i = 0; i < 40; i++) {
        char ip[32];
        struct umx_rx_slot s;
        struct umxd_verdict va, vb, vo;
        snprintf(ip, sizeof(ip), "198.51.%u.%u", 100 + i % 3, 1 + i);
        n = qlb_short(a->e.qlb, q, sid_b2, 0x1000 + i, buf);
        s = dgram(ip, 5000 + i, buf, n);
        va = step(a, &s);
        vb = step(b, &s);
        vo = step(old, &s);
        assert_int_equal(va.kind, UMXD_V_FORWARD);
        assert_int_equal(va.how, UMXD_HOW_SESSION);
        assert_int_equal(va.route, 0);
        assert_string_equal(a->cfg->routes[0].backends[va.backend].text, "127.0.0.1:7002");
        assert_int_equal(vb.how, UMXD_HOW_SESSION);
        assert_string_equal(b->cfg->routes[0].backends[vb.backend].text, "127.0.0.1:7002");
        /* without quic-lb (the code before #15): the catch-all route takes it */
        assert_int_equal(vo.route, 1);
        /* the flow made: the next datagram is the flow's */
        va = step(a, &s);
        assert_int_equal(va.how, UMXD_HOW_FLOW);
    }
    /* an id no backend has: the normal decision (the catch-all route) */
    n = qlb_short(a->e.qlb, q, sid_none, 1, buf);
    {
        struct umx_rx_slot s = dgram("203.0.113.1", 6000, buf, n);
        struct umxd_verdict v = step(a, &s);
        assert_int_equal(v.how, UMXD_HOW_NEW);
        assert_int_equal(v.route, 1);
    }
    /* another config id (here 3): not decoded */
    n = qlb_short(a->e.qlb, q, sid_b2, 2, buf);
    buf[1] = (uint8_t)((buf[1] & 0x1f) | 3u << 5);
    {
        struct umx_rx_slot s = dgram("203.0.113.2", 6000, buf, n);
        struct umxd_verdict v = step(a, &s);
        assert_int_equal(v.route, 1);
    }
    /* the id's backend is down: the normal decision */
    a->down[0][1] = 1;
    n = qlb_short(a->e.qlb, q, sid_b2, 3, buf);
    {
        struct umx_rx_slot s = dgram("203.0.113.3", 6000, buf, n);
        struct umxd_verdict v = step(a, &s);
        assert_int_equal(v.how, UMXD_HOW_NEW);
        assert_int_equal(v.route, 1);
    }
    umxd_qlb_aes_free(a->e.qlb);
    umxd_qlb_aes_free(b->e.qlb);
    h_free(a);
    h_free(b);
    h_free(old);
}

/* A datagram another route claims by its content keeps its route even when
 * its bytes decode to a server id (plaintext ids, DNS query id 0x4101). */
static void t_quiclb_never_steals(void **st)
{
    struct h *h = h_new("[listen]\naddress = 192.0.2.53:443\n"
                        "[route quic]\nmatch = quic\nforward = 127.0.0.1:7001 server-id=01\n"
                        "quic-lb = config-id=0 server-id-length=1 nonce-length=4\n"
                        "[route dns]\nmatch = dns\nforward = 127.0.0.1:5353\n");
    static const uint8_t q[] = {0x41, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00,
                                0x00, 0x00, 0x07, 'e',  'x',  'a',  'm',  'p',  'l',  'e',
                                0x03, 'c',  'o',  'm',  0x00, 0x00, 0x01, 0x00, 0x01};
    struct umx_rx_slot s = dgram("198.51.100.9", 5353, q, sizeof(q));
    struct umxd_verdict v;
    (void)st;
    v = step(h, &s);
    assert_int_equal(v.route, 1);
    assert_int_equal(v.how, UMXD_HOW_NEW);
    h_free(h);
}

/* The replay (udpmuxctl classify -c) on the same engine. */
static void t_replay(void **st)
{
    struct umxd_config *cfg;
    struct umxd_replay *r;
    struct umxd_replay_out o;
    char err[256];
    struct sockaddr_in cli = sin4("198.51.100.1", 4000), srv = sin4("192.0.2.53", 443);
    (void)st;
    assert_int_equal(umxd_config_load_string(ROUTES_BASIC, "t", &cfg, err, sizeof(err)), 0);
    assert_int_equal(umxd_replay_new(&r, cfg), 0);
    umxd_replay_datagram(r, (struct sockaddr *)&cli, (struct sockaddr *)&srv,
                         (const uint8_t *)"ping", 4, 1, &o);
    assert_int_equal(o.route, 0);
    assert_string_equal(o.how, "probe");
    umxd_replay_datagram(r, (struct sockaddr *)&srv, (struct sockaddr *)&cli,
                         (const uint8_t *)"pong", 4, 2, &o);
    assert_int_equal(o.route, 0);
    assert_true(o.reply);
    umxd_replay_datagram(r, (struct sockaddr *)&cli, (struct sockaddr *)&srv,
                         (const uint8_t *)"zzz", 3, 3, &o);
    assert_int_equal(o.route, 0);
    assert_string_equal(o.how, "flow");
    umxd_replay_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_new_flow_then_flow),
        cmocka_unit_test(t_drops_and_builtin),
        cmocka_unit_test(t_admission),
        cmocka_unit_test(t_budget_health_drain),
        cmocka_unit_test(t_backend_choice_stable),
        cmocka_unit_test(t_classify_every),
        cmocka_unit_test(t_reply),
        cmocka_unit_test(t_roaming_wireguard),
        cmocka_unit_test(t_replay),
        cmocka_unit_test(t_proven),
        cmocka_unit_test(t_prefix_cap),
        cmocka_unit_test(t_pin_never_crosses_routes),
        cmocka_unit_test(t_roam_dns_never),
        cmocka_unit_test(t_wg_sessions),
        cmocka_unit_test(t_fleet_key),
        cmocka_unit_test(t_quiclb),
        cmocka_unit_test(t_quiclb_never_steals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
