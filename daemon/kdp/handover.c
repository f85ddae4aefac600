/*
 * handover.c - the queue thread's flows across an upgrade (daemon/upgrade.c):
 * the old process exports them as UMXD_HO_KDP records (roaming keys,
 * stickiness, per-route counts) while its thread is paused, and the new
 * process adopts them, by route name and backend text as the workers adopt
 * theirs (path/handoff.c), before its thread's first read. The kernel flows
 * themselves (conntrack entries) need no hand-over: they stay in the kernel.
 */
#include <errno.h>
#include <string.h>

#include "kdp_self.h"
#include "log.h"
#include "rules/roam.h"
#include "udpmuxd.h"

int umxd_kdp_export(struct umxd *d, int (*emit)(void *, const struct umxd_handoff_rec *, int),
                    void *arg)
{
    struct kdp *k = d->kdp;
    if (!k || k->started)
        return 0;
    for (uint32_t i = 0; i < umx_ft_capacity(k->ft); i++) {
        struct umx_flow *f = umx_ft_at(k->ft, i);
        const struct umxd_route *rt;
        struct umxd_handoff_rec rec;
        const struct umxd_flow *fl;
        int r;
        if (!f)
            continue;
        fl = umxd_fl(f);
        if (fl->route >= k->rs->cfg->nroutes)
            continue;
        rt = &k->rs->cfg->routes[fl->route];
        umxd_handoff_rec_of(&rec, f, rt);
        rec.worker = UMXD_HO_KDP_WORKER;
        rec.kind = UMXD_HO_KDP;
        r = emit(arg, &rec, -1);
        if (r < 0)
            return r;
    }
    return 0;
}

/* One flow of the old queue thread into ours, by route name and backend
 * text as the workers adopt theirs (handoff.c); 0 or -errno (skipped). */
static int adopt_flow(struct kdp *k, const struct umxd_handoff_rec *rec)
{
    const struct umxd_config *c = k->rs->cfg;
    struct umx_flow_key key = rec->key;
    const struct umxd_route *rt;
    struct umxd_flow *fl;
    struct umx_flow *f;
    char name[UMXD_NAME_MAX];
    int nr, b;
    memcpy(name, rec->route, sizeof(name));
    name[sizeof(name) - 1] = '\0';
    nr = umxd_config_route(c, name);
    if (nr < 0 || !c->routes[nr].kernel || rec->listener >= c->nlisten)
        return -ENOENT;
    rt = &c->routes[nr];
    b = umxd_handoff_backend(rt, rec);
    if (b < 0)
        return -ENOENT;
    if (rec->tagged)
        key.tag = (uint32_t)nr + 1;
    if (umx_ft_lookup(k->ft, &key))
        return -EEXIST;
    f = umx_ft_insert(k->ft, &key, umxd_cls_unanswered((unsigned)nr), rec->last_ns,
                      kdp_flow_release, k);
    if (!f)
        return -ENOSPC;
    fl = umxd_fl(f);
    fl->up_fd = -1;
    fl->gen = ++k->eng.gen;
    fl->route = (uint16_t)nr;
    fl->slot = k->rs->slot[nr];
    fl->backend = (uint8_t)b;
    umxd_handoff_fill(f, rec);
    umx_ft_touch(k->ft, f, umxd_cls_of(fl, (unsigned)nr), rec->last_ns);
    umxd_flow_adopted(&k->eng, f);
    if (fl->slot < UMXD_MAX_SLOTS)
        k->route_flows[fl->slot]++;
    if (rec->roam_len && rec->roam_len <= UMX_ROAM_MAX &&
        umx_ft_roam_set(k->ft, f, rec->roam, rec->roam_len) == 0)
        k->eng.roam_lens |= rec->roam[0] == UMX_ROAM_QUIC ? 1u << (rec->roam_len - 1) : 1u;
    return 0;
}

void kdp_adopt_flows(struct kdp *k, const struct umxd_handoff_in *in)
{
    /* the workers read the same records, nobody writes them */
    unsigned ok = 0, gone = 0;
    for (unsigned i = 0; i < in->n; i++) {
        if (in->rec[i].kind != UMXD_HO_KDP)
            continue;
        if (adopt_flow(k, &in->rec[i]) == 0)
            ok++;
        else
            gone++;
    }
    if (ok || gone)
        umxd_log(LOG_INFO,
                 "kernel datapath: the queue thread adopted %u flow%s (roaming keys, "
                 "stickiness), %u gone with their route or backend",
                 ok, ok == 1 ? "" : "s", gone);
}
