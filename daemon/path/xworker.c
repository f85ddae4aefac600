/*
 * xworker.c - cross-worker roaming. A roamed peer's new address may hash to
 * another worker's socket (SO_REUSEPORT). Each worker publishes the roaming
 * keys its backends teach it in one shared table (mutex: taken only on
 * handshake replies and on a flow-table miss that carries a known key
 * length); a worker that finds another's key makes a small relay flow and
 * hands the peer's datagrams over through the owner's mailbox.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "path_int.h"
#include "steer/steer.h"

#define MBOX_SLOTS 256
#define MBOX_BYTES 2048

struct mbox_item {
    uint32_t idx, gen;
    uint16_t len;
    uint8_t li;
    uint8_t has_local;
    struct sockaddr_in6 peer, local;
    uint8_t data[MBOX_BYTES];
};

struct mbox {
    pthread_mutex_t mu;
    unsigned head, count;
    struct mbox_item items[MBOX_SLOTS];
};

/* The shared table's entries: one per (worker, flow); the key names the
 * slot, the roaming key rides in the entry's roam index. */
struct roam_entry {
    struct umxd_roam_ref ref;
};

int umxd_roam_init(struct umxd *d)
{
    pthread_mutex_init(&d->roam_mu, NULL);
    return umx_ft_new(&d->roam_ft, 65536, sizeof(struct roam_entry), d->hashkey);
}

void umxd_roam_fini(struct umxd *d)
{
    umx_ft_free(d->roam_ft);
    d->roam_ft = NULL;
    pthread_mutex_destroy(&d->roam_mu);
}

/* Publishes (key -> this worker's flow). Handshake replies only: rare. */
void roam_publish(struct umxd_worker *w, struct umx_flow *f, const uint8_t *key, size_t klen,
                  uint64_t now)
{
    struct umx_flow_key k;
    struct umx_flow *e;
    if (!w->d->roam_ft || w->d->nworkers < 2)
        return;
    /* the kernel's hint: the peer's next datagram from a new address
     * comes straight here instead of through another worker's mailbox */
    if (w->d->steer)
        (void)umxd_steer_hint(w->d->steer, key, klen, (unsigned)w->id);
    memset(&k, 0, sizeof(k));
    k.family = 0xff;
    k.tag = (uint32_t)w->id << 24 | (f->idx & 0xffffff);
    memcpy(k.paddr, &f->idx, sizeof(f->idx));
    pthread_mutex_lock(&w->d->roam_mu);
    e = umx_ft_lookup(w->d->roam_ft, &k);
    if (!e)
        e = umx_ft_insert(w->d->roam_ft, &k, 0, now, NULL, NULL);
    if (e) {
        struct roam_entry *re = umx_flow_data(e);
        re->ref.worker = (uint32_t)w->id;
        re->ref.idx = f->idx;
        re->ref.gen = umxd_fl(f)->gen;
        umx_ft_roam_set(w->d->roam_ft, e, key, klen);
        umx_ft_touch(w->d->roam_ft, e, 0, now);
    }
    pthread_mutex_unlock(&w->d->roam_mu);
}

/* The engine's env->roam_find (ctx: the worker). */
int roam_find_shared(void *ctx, const uint8_t *key, size_t klen, struct umxd_roam_ref *out)
{
    struct umxd_worker *w = ctx;
    struct umx_flow *e;
    int r = -ENOENT;
    if (!w->d->roam_ft || w->d->nworkers < 2)
        return r;
    pthread_mutex_lock(&w->d->roam_mu);
    e = umx_ft_roam_lookup(w->d->roam_ft, key, klen);
    if (e) {
        *out = ((struct roam_entry *)umx_flow_data(e))->ref;
        r = 0;
    }
    pthread_mutex_unlock(&w->d->roam_mu);
    return r;
}

/* The engine's env->roam_lens: lengths learnt by any worker. */
uint32_t roam_lens_shared(void *ctx)
{
    struct umxd_worker *w = ctx;
    return __atomic_load_n(&w->d->roam_lens, __ATOMIC_RELAXED);
}

int mbox_new(struct mbox **out)
{
    struct mbox *m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    *out = m;
    return 0;
}

void mbox_free(struct mbox *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* Hands a datagram to worker `to` for its flow (idx, gen). */
void mbox_post(struct umxd_worker *w, unsigned to, uint32_t idx, uint32_t gen,
               const struct umx_rx_slot *s, unsigned li)
{
    struct umxd_worker *o = to < w->d->nworkers ? w->d->w[to] : NULL;
    struct mbox *m;
    struct mbox_item *it;
    if (!o || !o->mbox || s->len > MBOX_BYTES) {
        count_drop(w, -1, UMXD_DROP_RELAY, 1, s->len);
        flowlog_drop(w, -1, UMXD_DROP_RELAY, &s->peer, 1, s->len);
        return;
    }
    m = o->mbox;
    pthread_mutex_lock(&m->mu);
    if (m->count == MBOX_SLOTS) {
        pthread_mutex_unlock(&m->mu);
        count_drop(w, -1, UMXD_DROP_RELAY, 1, s->len);
        flowlog_drop(w, -1, UMXD_DROP_RELAY, &s->peer, 1, s->len);
        return;
    }
    it = &m->items[(m->head + m->count) % MBOX_SLOTS];
    it->idx = idx;
    it->gen = gen;
    it->len = (uint16_t)s->len;
    it->li = (uint8_t)li;
    it->has_local = s->has_local;
    umxd_store_addr(&it->peer, &s->peer);
    if (s->has_local)
        umxd_store_addr(&it->local, &s->local);
    memcpy(it->data, s->buf, s->len);
    m->count++;
    pthread_mutex_unlock(&m->mu);
    worker_wake(o);
}

/* Owner side: datagrams other workers received for our flows from a roamed
 * peer's new address. The flow follows the peer (replies go to the new
 * address) and the datagram goes to the backend. */
void mbox_drain(struct umxd_worker *w, uint64_t now)
{
    struct mbox *m = w->mbox;
    struct mbox_item batch[16];
    unsigned n;
    if (!m || !__atomic_load_n(&m->count, __ATOMIC_RELAXED))
        return;
    do {
        pthread_mutex_lock(&m->mu);
        n = m->count < 16 ? m->count : 16;
        for (unsigned i = 0; i < n; i++)
            batch[i] = m->items[(m->head + i) % MBOX_SLOTS];
        m->head = (m->head + n) % MBOX_SLOTS;
        m->count -= n;
        pthread_mutex_unlock(&m->mu);
        for (unsigned i = 0; i < n; i++) {
            struct umx_flow *f = umx_ft_at(w->ft, batch[i].idx);
            struct umxd_flow *fl;
            if (!f || umxd_fl(f)->gen != batch[i].gen || umxd_fl(f)->up_fd < 0)
                continue;
            fl = umxd_fl(f);
            if (memcmp(&fl->peer, &batch[i].peer, sizeof(fl->peer)) != 0) {
                fl->peer = batch[i].peer;
                if (batch[i].has_local)
                    fl->local = batch[i].local;
                UMX_CTR_ADD(w->st.flows_roamed, 1);
            }
            UMX_CTR_ADD(w->rst[fl->slot].rx_datagrams, 1);
            UMX_CTR_ADD(w->rst[fl->slot].rx_bytes, batch[i].len);
            umxd_flow_rx(&w->eng, f, batch[i].data, batch[i].len, batch[i].li, now);
            queue_up(w, f, batch[i].data, batch[i].len, now);
        }
        /* batch[] lives on this stack frame: send before reusing it */
        flush_up(w, now);
    } while (n == 16);
}
