/*
 * pool.c - the main thread's side of the packet path: wake, stop and free
 * workers, publish route sets and collect retired ones, sum counters, ask
 * for flow snapshots, hand out stable route slots.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kdp/kdp.h"
#include "path_int.h"
#include "steer/steer.h"

void worker_wake(struct umxd_worker *w)
{
    uint64_t one = 1;
    if (write(w->evfd, &one, sizeof(one)) < 0) {
        /* counter full: a wake-up is pending anyway */
    }
}

void umxd_wake_workers(struct umxd *d)
{
    for (unsigned i = 0; i < d->nworkers; i++)
        if (d->w[i])
            worker_wake(d->w[i]);
}

uint64_t umxd_worker_loops(const struct umxd *d, unsigned i)
{
    return i < d->nworkers && d->w[i] ? __atomic_load_n(&d->w[i]->loops, __ATOMIC_ACQUIRE) : 0;
}

void umxd_worker_stop_all(struct umxd *d)
{
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        __atomic_store_n(&w->stop, 1, __ATOMIC_RELAXED);
        if (w->evfd >= 0)
            worker_wake(w);
    }
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        if (w->thread)
            pthread_join(w->thread, NULL);
        worker_free(w);
        d->w[i] = NULL;
    }
}

void umxd_publish(struct umxd *d, struct umxd_routeset *rs)
{
    struct umxd_routeset *old = d->rs;
    rs->epoch = ++d->epoch;
    rs->older = old;
    __atomic_store_n(&d->rs, rs, __ATOMIC_RELEASE);
    umxd_wake_workers(d);
}

void umxd_collect(struct umxd *d)
{
    uint64_t min = UINT64_MAX;
    struct umxd_routeset *rs = d->rs, *old;
    for (unsigned i = 0; i < d->nworkers; i++) {
        uint64_t e;
        if (!d->w[i])
            continue;
        e = __atomic_load_n(&d->w[i]->seen_epoch, __ATOMIC_ACQUIRE);
        if (e < min)
            min = e;
    }
    /* the kernel datapath's queue thread reads route sets too */
    if (umxd_kdp_seen_epoch(d) < min)
        min = umxd_kdp_seen_epoch(d);
    if (!rs || min < rs->epoch)
        return;
    /* every worker runs the current set: all older ones can go */
    old = rs->older;
    rs->older = NULL;
    while (old) {
        struct umxd_routeset *next = old->older;
        umxd_config_free(old->cfg);
        free(old);
        old = next;
    }
}

void umxd_stats_sum(struct umxd *d, struct umxd_stats *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
#define SUM(f, n, h) out->f += UMX_CTR_GET(w->st.f);
        UMXD_STATS(SUM)
#undef SUM
    }
    /* counted on the main thread (guard.c), not by a worker */
    out->foreign_sockets = __atomic_load_n(&d->foreign_seen, __ATOMIC_RELAXED);
    /* the reuseport program's own counters (kernel maps; 0 without it) */
    {
        struct umxd_steer_stats k;
        umxd_steer_stats(d->steer, &k);
        out->kernel_filtered = k.filtered;
        out->kernel_by_peer = k.by_peer;
        out->kernel_by_hint = k.by_hint;
        out->kernel_refused = k.refused;
    }
    /* attached programs' own sends leave the shared port too (attach.c) */
    out->tx_datagrams += __atomic_load_n(&d->attach_tx_all[0], __ATOMIC_RELAXED);
    out->tx_bytes += __atomic_load_n(&d->attach_tx_all[1], __ATOMIC_RELAXED);
}

void umxd_route_stats_sum(struct umxd *d, unsigned slot, struct umxd_route_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= UMXD_MAX_SLOTS)
        return;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
#define RSUM(f, n, h) out->f += UMX_CTR_GET(w->rst[slot].f);
        UMXD_ROUTE_STATS(RSUM)
#undef RSUM
        out->active_flows += UMX_CTR_GET(w->rst[slot].active_flows);
    }
    out->tx_datagrams += __atomic_load_n(&d->attach_tx[slot][0], __ATOMIC_RELAXED);
    out->tx_bytes += __atomic_load_n(&d->attach_tx[slot][1], __ATOMIC_RELAXED);
}

void umxd_backend_stats_sum(struct umxd *d, unsigned slot, unsigned b,
                            struct umxd_backend_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (slot >= UMXD_MAX_SLOTS || b >= UMXD_MAX_BACKENDS)
        return;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
#define BSUM(f, n, h) out->f += UMX_CTR_GET(w->bst[slot][b].f);
        UMXD_BACKEND_STATS(BSUM)
#undef BSUM
        out->active_flows += UMX_CTR_GET(w->bst[slot][b].active_flows);
    }
}

void umxd_drop_bytes_sum(struct umxd *d, struct umxd_drop_bytes *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        for (unsigned k = 0; k < UMXD_DROP_COUNT; k++)
            out->bytes[k] += UMX_CTR_GET(w->dropb.bytes[k]);
    }
}

unsigned umxd_flows_snapshot(struct umxd *d, const char *route, struct umxd_flow_info *out,
                             unsigned max)
{
    unsigned total = 0;
    for (unsigned i = 0; i < d->nworkers && total < max; i++) {
        struct umxd_worker *w = d->w[i];
        struct timespec ts;
        if (!w)
            continue;
        pthread_mutex_lock(&w->snap_mu);
        w->snap_out = out + total;
        w->snap_max = max - total;
        w->snap_n = 0;
        w->snap_done = 0;
        w->snap_req = 1;
        memset(w->snap_route, 0, sizeof(w->snap_route));
        if (route)
            memcpy(w->snap_route, route, strnlen(route, sizeof(w->snap_route) - 1));
        pthread_mutex_unlock(&w->snap_mu);
        worker_wake(w);
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1;
        pthread_mutex_lock(&w->snap_mu);
        while (!w->snap_done) {
            if (pthread_cond_timedwait(&w->snap_cv, &w->snap_mu, &ts) != 0)
                break;
        }
        if (w->snap_done)
            total += w->snap_n;
        w->snap_req = 0;
        pthread_mutex_unlock(&w->snap_mu);
    }
    return total;
}

int umxd_slot(struct umxd *d, const char *name)
{
    for (unsigned i = 0; i < d->nslots; i++)
        if (strcmp(d->slot_name[i], name) == 0)
            return (int)i;
    if (d->nslots >= UMXD_MAX_SLOTS)
        return -1;
    memcpy(d->slot_name[d->nslots], name, strnlen(name, UMXD_NAME_MAX - 1));
    return (int)d->nslots++;
}
