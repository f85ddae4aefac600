/*
 * handoff.c - the packet path's side of an upgrade (path.h): freeze the
 * workers between batches without closing anything, export every live flow
 * as a fixed record plus its upstream socket, and, in the new process,
 * adopt those records into the workers' flow tables before they read their
 * first datagram. The protocol around it (who asks, credentials, fd
 * passing) is daemon/upgrade.c; this file never touches a control socket.
 *
 * Why flows move with their sockets: a flow's upstream socket is what the
 * backend sees (its source port, for WireGuard the endpoint it roams to);
 * a new socket per flow would look like a new client to every backend and
 * break sessions. Handing the descriptor over keeps the kernel object, its
 * port and its receive queue: replies that arrive during the switch wait
 * there for the new process.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "path_int.h"
#include "rules/roam.h"

/* Freeze and thaw ----------------------------------------------------------------- */

int umxd_path_freeze(struct umxd *d)
{
    /* stop = 2: leave the loop after the current batch (its queues are
     * flushed at the end of read_public) and keep every flow open */
    for (unsigned i = 0; i < d->nworkers; i++)
        if (d->w[i]) {
            __atomic_store_n(&d->w[i]->stop, 2, __ATOMIC_RELAXED);
            worker_wake(d->w[i]);
        }
    for (unsigned i = 0; i < d->nworkers; i++)
        if (d->w[i] && d->w[i]->thread) {
            pthread_join(d->w[i]->thread, NULL);
            d->w[i]->thread = 0;
        }
    return 0;
}

int umxd_path_thaw(struct umxd *d)
{
    int ret = 0;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w || w->thread)
            continue;
        __atomic_store_n(&w->stop, 0, __ATOMIC_RELAXED);
        int r = worker_run(w);
        if (r < 0)
            ret = r;
    }
    return ret;
}

/* Export (old process, workers frozen) -------------------------------------------- */

static int exportable(const struct umxd_flow *fl)
{
    /* relays are re-made from the roaming index on the peer's next
     * datagram; attached programs' flows end with their connection */
    return !fl->relay && !fl->attach && fl->up_fd >= 0;
}

void umxd_handoff_rec_of(struct umxd_handoff_rec *rec, struct umx_flow *f,
                         const struct umxd_route *rt)
{
    const struct umxd_flow *fl = umxd_fl(f);
    memset(rec, 0, sizeof(*rec));
    memcpy(rec->route, rt->name, sizeof(rec->route));
    if (fl->backend < rt->nbackends)
        memcpy(rec->backend, rt->backends[fl->backend].text, sizeof(rec->backend));
    rec->backend_idx = fl->backend;
    rec->listener = fl->listener;
    rec->answered = fl->answered;
    rec->established = fl->established;
    rec->tagged = f->key.tag != 0;
    rec->key = f->key;
    rec->peer = fl->peer;
    rec->local = fl->local;
    rec->roam_len = f->roam_len;
    memcpy(rec->roam, f->roam, sizeof(rec->roam));
    rec->created_ns = f->created_ns;
    rec->last_ns = f->last_ns;
    rec->rx_dgrams = fl->rx_dgrams;
    rec->rx_bytes = fl->rx_bytes;
}

int umxd_path_export(struct umxd *d, umxd_handoff_emit_fn *emit, void *arg, unsigned *skipped)
{
    *skipped = 0;
    for (unsigned i = 0; i < d->nworkers; i++) {
        struct umxd_worker *w = d->w[i];
        if (!w)
            continue;
        /* the shared sockets first: their flows refer to them */
        for (unsigned k = 0; k < 2; k++) {
            struct umxd_handoff_rec rec;
            int r;
            if (w->shr_fd[k] < 0)
                continue;
            memset(&rec, 0, sizeof(rec));
            rec.worker = (uint16_t)i;
            rec.kind = UMXD_HO_SHRSOCK;
            rec.backend_idx = (uint8_t)k;
            r = emit(arg, &rec, w->shr_fd[k]);
            if (r < 0)
                return r;
        }
        for (uint32_t k = 0; k < umx_ft_capacity(w->ft); k++) {
            struct umx_flow *f = umx_ft_at(w->ft, k);
            struct umxd_handoff_rec rec;
            const struct umxd_route *rt;
            struct umxd_flow *fl;
            int r;
            if (!f)
                continue;
            fl = umxd_fl(f);
            if (!exportable(fl)) {
                if (!fl->relay)
                    (*skipped)++;
                continue;
            }
            rt = route_of(w, fl->route);
            umxd_handoff_rec_of(&rec, f, rt);
            rec.worker = (uint16_t)i;
            rec.kind = fl->shared ? UMXD_HO_SHARED : UMXD_HO_FLOW;
            rec.upaddr = fl->upaddr;
            rec.upsrc = fl->upsrc;
            rec.tx_dgrams = fl->tx_dgrams;
            rec.tx_bytes = fl->tx_bytes;
            r = emit(arg, &rec, fl->shared ? -1 : fl->up_fd);
            if (r < 0)
                return r;
        }
    }
    return 0;
}

/* Import (new process, before the workers read) ---------------------------------- */

void umxd_path_import_set(struct umxd *d, struct umxd_handoff_in *in)
{
    d->handoff_in = in;
}

/* Oldest activity first: each adopted flow goes to the head of its class,
 * so the class lists end up in the order the old process had them and
 * expiry keeps popping the least recently active first. */
static int by_last(const void *a, const void *b)
{
    const struct umxd_handoff_rec *x = a, *y = b;
    return x->last_ns < y->last_ns ? -1 : x->last_ns > y->last_ns;
}

void umxd_path_import_sort(struct umxd_handoff_in *in)
{
    /* fds travel with their record: sort an index, then permute both */
    struct umxd_handoff_rec *r = in->rec;
    for (unsigned i = 0; i < in->n; i++)
        r[i].fd = in->fd[i];
    qsort(r, in->n, sizeof(*r), by_last);
    for (unsigned i = 0; i < in->n; i++)
        in->fd[i] = r[i].fd;
}

void umxd_handoff_fill(struct umx_flow *f, const struct umxd_handoff_rec *rec)
{
    struct umxd_flow *fl = umxd_fl(f);
    fl->listener = rec->listener;
    fl->answered = rec->answered;
    fl->established = rec->established;
    fl->peer = rec->peer;
    fl->local = rec->local;
    fl->rx_dgrams = rec->rx_dgrams;
    fl->rx_bytes = rec->rx_bytes;
    f->created_ns = rec->created_ns;
}

int umxd_handoff_backend(const struct umxd_route *rt, const struct umxd_handoff_rec *rec)
{
    if (rec->backend_idx < rt->nbackends &&
        strncmp(rt->backends[rec->backend_idx].text, rec->backend, sizeof(rec->backend)) == 0)
        return rec->backend_idx;
    for (unsigned b = 0; b < rt->nbackends; b++)
        if (strncmp(rt->backends[b].text, rec->backend, sizeof(rec->backend)) == 0)
            return (int)b;
    return -1;
}

static int adopt_one(struct umxd_worker *w, const struct umxd_handoff_rec *rec, int fd)
{
    struct umx_flow_key key = rec->key;
    const struct umxd_route *rt;
    struct umxd_flow *fl;
    struct umx_flow *f;
    int nr, b;
    char name[UMXD_NAME_MAX];
    memcpy(name, rec->route, sizeof(name));
    name[sizeof(name) - 1] = '\0';
    nr = umxd_config_route(w->rs->cfg, name);
    if (nr < 0)
        return -ENOENT;
    rt = route_of(w, (unsigned)nr);
    if (rt->action != UMXD_FORWARD || rec->listener >= w->rs->cfg->nlisten)
        return -ENOENT;
    b = umxd_handoff_backend(rt, rec);
    if (b < 0)
        return -ENOENT;
    if (rec->tagged)
        key.tag = (uint32_t)nr + 1;
    if (umx_ft_lookup(w->ft, &key))
        return -EEXIST;
    if (rec->kind == UMXD_HO_SHARED) {
        /* on the worker's shared socket of the backend's family, which
         * came first (the export sends it before its flows) */
        unsigned k = rt->backends[b].addr.ss_family == AF_INET6;
        if (w->shr_fd[k] < 0)
            return -ENOENT;
        fd = w->shr_fd[k];
    } else if (w->fd_flows >= w->d->fd_budget) {
        return -EMFILE;
    }
    f = umx_ft_insert(w->ft, &key, umxd_cls_unanswered((unsigned)nr), rec->last_ns, NULL, NULL);
    if (!f)
        return -ENOSPC;
    fl = umxd_fl(f);
    fl->gen = ++w->eng.gen;
    fl->route = (uint16_t)nr;
    fl->slot = w->rs->slot[nr];
    fl->backend = (uint8_t)b;
    umxd_handoff_fill(f, rec);
    fl->upaddr = rec->upaddr;
    fl->tx_dgrams = rec->tx_dgrams;
    fl->tx_bytes = rec->tx_bytes;
    umx_ft_touch(w->ft, f, umxd_cls_of(fl, (unsigned)nr), rec->last_ns);
    if (rec->kind == UMXD_HO_SHARED) {
        fl->upsrc = rec->upsrc;
        fl->shared = 1;
        shr_adopt(w, f);
    } else if (add_ev(w->epfd, fd, ev_make(EV_UP, fl->gen, f->idx)) < 0) {
        umx_ft_remove(w->ft, f);
        return -EIO;
    } else {
        w->fd_flows++;
    }
    fl->up_fd = fd;
    umxd_flow_adopted(&w->eng, f);
    if (rec->roam_len && rec->roam_len <= UMX_ROAM_MAX) {
        umx_ft_roam_set(w->ft, f, rec->roam, rec->roam_len);
        w->eng.roam_lens |= rec->roam[0] == UMX_ROAM_QUIC ? 1u << (rec->roam_len - 1) : 1u;
        roam_publish(w, f, rec->roam, rec->roam_len, rec->last_ns);
    }
    UMX_CTR_ADD(w->rst[fl->slot].active_flows, 1);
    {
        /* the per-backend gauge too (the flow's close takes it down) */
        struct umxd_backend_stats *bs = bst_of(w, fl);
        if (bs)
            UMX_CTR_ADD(bs->active_flows, 1);
    }
    return 0;
}

/* In the worker thread, once, before its first epoll_wait: the worker owns
 * its table, so nothing else touches it meanwhile. */
void handoff_import(struct umxd_worker *w)
{
    struct umxd_handoff_in *in = w->d->handoff_in;
    unsigned ok = 0, gone = 0;
    if (!in)
        return;
    /* the shared sockets first (sorting put them first too: their
     * last_ns is 0), then the flows */
    for (unsigned i = 0; i < in->n; i++) {
        const struct umxd_handoff_rec *rec = &in->rec[i];
        unsigned k = rec->backend_idx & 1;
        if (rec->worker != (unsigned)w->id || rec->kind != UMXD_HO_SHRSOCK || in->fd[i] < 0)
            continue;
        if (w->shr_fd[k] < 0 && add_ev(w->epfd, in->fd[i], ev_make(EV_SHR, 0, k)) == 0)
            w->shr_fd[k] = in->fd[i];
        else
            close(in->fd[i]);
        in->fd[i] = -1;
    }
    for (unsigned i = 0; i < in->n; i++) {
        const struct umxd_handoff_rec *rec = &in->rec[i];
        if (rec->worker != (unsigned)w->id || rec->kind == UMXD_HO_SHRSOCK)
            continue;
        if (rec->kind == UMXD_HO_FLOW && in->fd[i] < 0)
            continue;
        if (adopt_one(w, rec, in->fd[i]) == 0) {
            ok++;
        } else {
            if (in->fd[i] >= 0)
                close(in->fd[i]);
            gone++;
        }
        in->fd[i] = -1;
    }
    __atomic_add_fetch(&in->adopted, ok, __ATOMIC_RELAXED);
    __atomic_add_fetch(&in->closed, gone, __ATOMIC_RELAXED);
    __atomic_add_fetch(&in->workers_done, 1, __ATOMIC_RELEASE);
}
