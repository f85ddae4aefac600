/*
 * flowlog.c - the debug log of what happened to flows: created (and how),
 * held, dropped (with the UMXD_DROPS reason), ended (with why and what it
 * carried). Written only at log-level = debug (or -v up to it): each call
 * returns at once otherwise, so the path pays one relaxed load per event.
 *
 * A flood must not turn into a flood of lines (one write per line to
 * stderr or journald, from the worker's thread): each worker spends tokens
 * of its own bucket, FLOWLOG_RATE lines a second with bursts of
 * FLOWLOG_BURST, and the first line after a refusal says how many lines
 * were left out. Per worker, so workers never share a lock for it.
 */
#include <stdio.h>
#include <string.h>

#include "path_int.h"

#define FLOWLOG_RATE 50u   /* lines per second, per worker, sustained */
#define FLOWLOG_BURST 100u /* lines at once after a quiet spell */
#define FLOWLOG_NS_PER_LINE (1000000000ull / FLOWLOG_RATE)

static const char *const drop_names[] = {
#define N(e, g, r, n) n,
    UMXD_DROPS(N)
#undef N
};

/* A token for one line, or 0 (counted as suppressed). */
static int take(struct umxd_worker *w)
{
    struct flowlog_bucket *b = &w->flog;
    uint64_t now = umx_now_ns(), cap = FLOWLOG_BURST * FLOWLOG_NS_PER_LINE;
    if (!b->last_ns)
        b->credit_ns = cap;
    else
        b->credit_ns += now - b->last_ns;
    if (b->credit_ns > cap)
        b->credit_ns = cap;
    b->last_ns = now;
    if (b->credit_ns < FLOWLOG_NS_PER_LINE) {
        b->suppressed++;
        return 0;
    }
    b->credit_ns -= FLOWLOG_NS_PER_LINE;
    if (b->suppressed) {
        umxd_log(LOG_DEBUG, "flow log: worker %d: %llu lines suppressed (more than %u/s)", w->id,
                 (unsigned long long)b->suppressed, FLOWLOG_RATE);
        b->suppressed = 0;
    }
    return 1;
}

static const char *addr(const void *sa, char *buf, size_t len)
{
    if (udpmux_format_addr(sa, buf, len) < 0)
        snprintf(buf, len, "?");
    return buf;
}

static const char *route_name(const struct umxd_config *cfg, unsigned r)
{
    return r < cfg->nroutes ? cfg->routes[r].name : "?";
}

/* Where a flow's datagrams go, as the operator names it. */
static const char *target(const struct umxd_config *cfg, const struct umxd_flow *fl, char *buf,
                          size_t len)
{
    if (fl->relay)
        snprintf(buf, len, "worker %u", fl->relay_worker);
    else if (fl->attach)
        snprintf(buf, len, "attached program %u", fl->client);
    else if (fl->route < cfg->nroutes && fl->backend < cfg->routes[fl->route].nbackends)
        snprintf(buf, len, "backend %s", cfg->routes[fl->route].backends[fl->backend].text);
    else {
        char a[64];
        snprintf(buf, len, "backend %s (no longer listed)", addr(&fl->upaddr, a, sizeof(a)));
    }
    return buf;
}

void flowlog_new(struct umxd_worker *w, const struct umxd_verdict *v, struct umx_flow *f)
{
    const struct umxd_flow *fl = umxd_fl(f);
    const char *how;
    char p[64], l[64], t[128];
    if (!umxd_log_on(LOG_DEBUG) || !take(w))
        return;
    switch (v->how) {
    case UMXD_HOW_ROAMED:
        how = "roamed";
        break;
    case UMXD_HOW_SESSION:
        how = "session";
        break;
    default:
        how = v->kind == UMXD_V_RELAY ? "relay" : v->classified ? "probe" : "new";
        break;
    }
    umxd_log(LOG_DEBUG, "flow %s: peer %s to %s, route %s, %s (how: %s, worker %d)",
             v->how == UMXD_HOW_ROAMED ? "roamed" : "new", addr(&fl->peer, p, sizeof(p)),
             addr(&fl->local, l, sizeof(l)), route_name(w->rs->cfg, fl->route),
             target(w->rs->cfg, fl, t, sizeof(t)), how, w->id);
}

void flowlog_held(struct umxd_worker *w, const struct umx_rx_slot *s)
{
    char p[64];
    if (!umxd_log_on(LOG_DEBUG) || !take(w))
        return;
    umxd_log(LOG_DEBUG,
             "flow held: peer %s, %u bytes kept while a probe waits for more (%u held, worker %d)",
             addr(&s->peer, p, sizeof(p)), (unsigned)s->len, w->held, w->id);
}

void flowlog_drop(struct umxd_worker *w, int route, enum umxd_drop why, const void *peer,
                  uint64_t n, uint64_t bytes)
{
    char p[64];
    if (!umxd_log_on(LOG_DEBUG) || !take(w))
        return;
    umxd_log(LOG_DEBUG,
             "flow dropped: peer %s, route %s, %llu datagram%s, %llu bytes: %s (worker %d)",
             peer ? addr(peer, p, sizeof(p)) : "-",
             route >= 0 ? route_name(w->rs->cfg, (unsigned)route) : "-", (unsigned long long)n,
             n == 1 ? "" : "s", (unsigned long long)bytes,
             (unsigned)why < UMXD_DROP_COUNT ? drop_names[why] : "?", w->id);
}

void flowlog_end(struct umxd_worker *w, struct umx_flow *f, const char *why,
                 const struct umxd_config *cfg)
{
    const struct umxd_flow *fl = umxd_fl(f);
    char p[64], t[128];
    if (!umxd_log_on(LOG_DEBUG) || !take(w))
        return;
    umxd_log(LOG_DEBUG,
             "flow ended: peer %s, route %s, %s: %s; from peer %llu datagrams %llu bytes, to peer "
             "%llu datagrams %llu bytes (worker %d)",
             addr(&fl->peer, p, sizeof(p)), route_name(cfg, fl->route),
             target(cfg, fl, t, sizeof(t)), why, (unsigned long long)fl->rx_dgrams,
             (unsigned long long)fl->rx_bytes, (unsigned long long)fl->tx_dgrams,
             (unsigned long long)fl->tx_bytes, w->id);
}
