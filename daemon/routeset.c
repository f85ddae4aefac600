/*
 * routeset.c - route sets on the main thread (routeset.h): build one from a
 * config (stable per-name slots, the first-byte candidate index), publish
 * it, collect the retired ones on every tick, and reload the file: a new
 * config is loaded and checked whole, then replaces the running one, or
 * changes nothing.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rules/roam.h"
#include "rules/rule.h"
#include "steer/steer.h"
#include "routeset.h"
#include "startup.h"
#include "udpmuxd.h"
#include "kdp/kdp.h"

static void steer_apply(struct umxd *d, const struct umxd_config *c);

void umxd_routeset_steer(struct umxd *d)
{
    steer_apply(d, d->cfg);
}

static int build_routeset(struct umxd *d, struct umxd_config *cfg, struct umxd_routeset **out)
{
    struct umxd_routeset *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    for (unsigned r = 0; r < cfg->nroutes; r++) {
        int s = umxd_slot(d, cfg->routes[r].name);
        if (s < 0) {
            free(rs);
            return -ENOSPC;
        }
        rs->slot[r] = (uint16_t)s;
    }
    if (umxd_config_index(cfg, &rs->idx) < 0) {
        free(rs);
        return -E2BIG;
    }
    rs->cfg = cfg;
    *out = rs;
    return 0;
}

static int same_listeners(const struct umxd_config *a, const struct umxd_config *b)
{
    if (a->nlisten != b->nlisten)
        return 0;
    for (unsigned i = 0; i < a->nlisten; i++)
        if (a->listen_len[i] != b->listen_len[i] ||
            memcmp(&a->listen[i], &b->listen[i], a->listen_len[i]) != 0)
            return 0;
    return 1;
}

int umxd_reload(struct umxd *d, char *err, size_t errlen)
{
    struct umxd_config *nc;
    struct umxd_routeset *rs;
    int r;
    if (!d->config_path) {
        snprintf(err, errlen, "quick mode (no config file): nothing to reload");
        return -EINVAL;
    }
    umxd_notify("RELOADING=1");
    r = umxd_config_load(d->config_path, &nc, err, errlen);
    if (r < 0)
        goto fail;
    if (d->activated) {
        /* the listeners are systemd's sockets: [listen] (if any) was never
         * bound, and a reload keeps the adopted ones */
        nc->nlisten = d->cfg->nlisten;
        memcpy(nc->listen, d->cfg->listen, sizeof(nc->listen));
        memcpy(nc->listen_len, d->cfg->listen_len, sizeof(nc->listen_len));
        memcpy(nc->listen_text, d->cfg->listen_text, sizeof(nc->listen_text));
    }
    if (!same_listeners(d->cfg, nc)) {
        snprintf(err, errlen,
                 "%s: [listen] addresses differ from the running ones; listening sockets are "
                 "never re-bound: restart udpmuxd to change them",
                 d->config_path);
        umxd_config_free(nc);
        r = -EINVAL;
        goto fail;
    }
    /* sizes fixed at start-up (buffers, tables, threads) keep their values */
    nc->workers = d->cfg->workers;
    nc->max_flows = d->cfg->max_flows;
    nc->batch = d->cfg->batch;
    memcpy(nc->control, d->cfg->control, sizeof(nc->control));
    memcpy(nc->attach, d->cfg->attach, sizeof(nc->attach));
    memcpy(nc->metrics, d->cfg->metrics, sizeof(nc->metrics));
    memcpy(nc->user, d->cfg->user, sizeof(nc->user));
    r = build_routeset(d, nc, &rs);
    if (r < 0) {
        snprintf(err, errlen, "too many distinct route names over the daemon's life");
        umxd_config_free(nc);
        goto fail;
    }
    /* busy-poll is read by each worker from its route set: it follows
     * the reload; say so, since it changes how much CPU idle gaps cost */
    if (nc->busy_poll_us != d->cfg->busy_poll_us)
        umxd_log(LOG_NOTICE, "busy-poll %u -> %u us", d->cfg->busy_poll_us, nc->busy_poll_us);
    d->cfg = nc;
    steer_apply(d, nc);
    umxd_publish(d, rs);
    umxd_kdp_reload(d);
    d->loaded_at = (int64_t)time(NULL);
    d->reloads_ok++;
    d->last_reload_error[0] = '\0';
    umxd_log_set_level(nc->log_level);
    umxd_log(LOG_NOTICE, "configuration reloaded from %s (%u routes)", d->config_path, nc->nroutes);
    umxd_notify("READY=1");
    return 0;
fail:
    d->reloads_failed++;
    snprintf(d->last_reload_error, sizeof(d->last_reload_error), "%s", err);
    umxd_log(LOG_ERR, "reload refused, still running the previous configuration: %s", err);
    umxd_notify("READY=1");
    return r;
}

static void collect_tick(struct umxd *d, uint64_t now_ns, void *arg)
{
    (void)now_ns;
    (void)arg;
    umxd_collect(d);
}

/* The kernel's first-byte filter for config c (steer.h): the bytes some
 * route may take for a new flow, plus those a roaming or mid-session
 * datagram of a protocol some route carries starts with (the engine looks
 * those up by key before it classifies). Off with an attach route: a reply
 * to an attached program's own request comes from a peer with no flow yet
 * and may start with anything. Set before the route set is published, so
 * the kernel never drops a byte the new set takes. */
static void steer_apply(struct umxd *d, const struct umxd_config *c)
{
    static const uint8_t ovpn_ops[] = {3, 4, 5, 7, 9, 10, 11}; /* rules/roam.h */
    uint8_t first[32] = {0};
    int empty = 0, filter = 1, wg = 0, quic = 0, r;
    if (!d->steer)
        return;
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *rt = &c->routes[i];
        unsigned p;
        if (!rt->rule) {
            filter = 0;
            continue;
        }
        const uint8_t *b = umx_rule_first(rt->rule);
        for (unsigned k = 0; k < sizeof(first); k++)
            first[k] |= b[k];
        empty |= umx_rule_match_empty(rt->rule);
        if (rt->action == UMXD_ATTACH)
            filter = 0;
        p = umx_rule_roam_protos(rt->rule);
        if (p & UMX_ROAM_P_WG) {
            for (unsigned t = 2; t <= 4; t++)
                first[t >> 3] |= (uint8_t)(1u << (t & 7));
            wg = 1;
        }
        if (p & UMX_ROAM_P_QUIC) {
            memset(first, 0xff, 16); /* short headers: any byte below 0x80 */
            quic = 1;
        }
        if (p & UMX_ROAM_P_OPENVPN)
            for (unsigned o = 0; o < sizeof(ovpn_ops); o++)
                first[ovpn_ops[o]] = 0xff; /* opcode << 3 | any key id */
        if (rt->qlb.on)
            memset(first, 0xff, 16); /* QUIC-LB: a short header from a new address */
    }
    r = umxd_steer_filter(d->steer, first, empty, filter, wg, quic);
    if (r == -EAGAIN)
        umxd_log(LOG_NOTICE, "the kernel's first-byte filter stays off until a restart: the "
                             "route set udpmuxd started with took every first byte");
    else if (r < 0)
        umxd_log(LOG_WARNING, "cannot update the kernel's first-byte filter: %s", strerror(-r));
}

int umxd_routeset_start(struct umxd *d)
{
    struct umxd_routeset *rs;
    int r = build_routeset(d, d->cfg, &rs);
    if (r < 0)
        return r;
    steer_apply(d, d->cfg);
    umxd_publish(d, rs);
    return umxd_tick_add(d, collect_tick, NULL);
}

void umxd_routeset_fini(struct umxd *d)
{
    struct umxd_routeset *cur = d->rs;
    /* before the first route set was published the config is on its own */
    if (!cur)
        umxd_config_free(d->cfg);
    while (cur) {
        struct umxd_routeset *next = cur->older;
        umxd_config_free(cur->cfg);
        free(cur);
        cur = next;
    }
    d->rs = NULL;
    d->cfg = NULL;
}
