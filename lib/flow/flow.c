/*
 * flow.c - fixed-capacity flow table; see flow.h for the design. Pure: the
 * only inputs are the calls' arguments.
 *
 * Storage is one array of fixed-size slots (header + payload), indices
 * instead of pointers so a slot is 4-byte linkable and the whole table is a
 * single allocation made at start-up. NIL marks the end of every list.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow.h"
#include "internal.h"

#define NIL UINT32_MAX

struct cls {
    uint64_t timeout_ns;
    int evictable;
    uint32_t head, tail; /* head = most recent */
    uint32_t count;
};

struct umx_ft {
    uint8_t key[16];
    uint32_t cap;
    uint32_t nbuckets; /* power of two */
    size_t slot;       /* bytes per slot */
    uint8_t *slots;
    uint32_t *buckets;
    uint32_t *rbuckets;
    uint32_t freelist;
    struct cls cls[UMX_FT_MAX_CLASSES];
    uint16_t ncls_used; /* highest class index defined + 1 */
    struct umx_ft_stats st;
    umx_ft_watch_fn *watch; /* told of keys held and let go (umx_ft_watch) */
    void *watch_arg;
};

static inline struct umx_flow *slot_at(const struct umx_ft *ft, uint32_t i)
{
    return (struct umx_flow *)(void *)(ft->slots + (size_t)i * ft->slot);
}

int umx_ft_new(struct umx_ft **out, uint32_t capacity, size_t user_size, const uint8_t key[16])
{
    struct umx_ft *ft;
    uint32_t nb = 16;
    if (!out || capacity == 0 || capacity >= NIL / 2)
        return -EINVAL;
    ft = calloc(1, sizeof(*ft));
    if (!ft)
        return -ENOMEM;
    memcpy(ft->key, key, 16);
    ft->cap = capacity;
    while (nb < capacity && nb < (1u << 30))
        nb <<= 1;
    ft->nbuckets = nb;
    ft->slot = ((sizeof(struct umx_flow) + 15) & ~(size_t)15) + ((user_size + 15) & ~(size_t)15);
    ft->slots = calloc(capacity, ft->slot);
    ft->buckets = malloc(sizeof(uint32_t) * nb);
    ft->rbuckets = malloc(sizeof(uint32_t) * nb);
    if (!ft->slots || !ft->buckets || !ft->rbuckets) {
        umx_ft_free(ft);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < nb; i++)
        ft->buckets[i] = ft->rbuckets[i] = NIL;
    for (uint32_t i = 0; i < capacity; i++) {
        struct umx_flow *f = slot_at(ft, i);
        f->idx = i;
        f->hnext = i + 1 < capacity ? i + 1 : NIL;
    }
    ft->freelist = 0;
    for (unsigned c = 0; c < UMX_FT_MAX_CLASSES; c++)
        ft->cls[c].head = ft->cls[c].tail = NIL;
    ft->st.capacity = capacity;
    *out = ft;
    return 0;
}

void umx_ft_free(struct umx_ft *ft)
{
    if (!ft)
        return;
    free(ft->slots);
    free(ft->buckets);
    free(ft->rbuckets);
    free(ft);
}

int umx_ft_set_class(struct umx_ft *ft, unsigned cls, uint64_t timeout_ns, int evictable)
{
    if (cls >= UMX_FT_MAX_CLASSES)
        return -EINVAL;
    ft->cls[cls].timeout_ns = timeout_ns;
    ft->cls[cls].evictable = evictable;
    if (cls + 1 > ft->ncls_used)
        ft->ncls_used = (uint16_t)(cls + 1);
    return 0;
}

void umx_flow_key_make(struct umx_flow_key *k, const struct sockaddr *local,
                       const struct sockaddr *peer, uint32_t tag)
{
    memset(k, 0, sizeof(*k));
    k->tag = tag;
    k->family = (uint8_t)peer->sa_family;
    if (peer->sa_family == AF_INET) {
        struct sockaddr_in p;
        memcpy(&p, peer, sizeof(p));
        memcpy(k->paddr, &p.sin_addr, 4);
        k->pport = p.sin_port;
        if (local && local->sa_family == AF_INET) {
            struct sockaddr_in l;
            memcpy(&l, local, sizeof(l));
            memcpy(k->laddr, &l.sin_addr, 4);
            k->lport = l.sin_port;
        }
    } else if (peer->sa_family == AF_INET6) {
        struct sockaddr_in6 p;
        memcpy(&p, peer, sizeof(p));
        memcpy(k->paddr, &p.sin6_addr, 16);
        k->pport = p.sin6_port;
        if (local && local->sa_family == AF_INET6) {
            struct sockaddr_in6 l;
            memcpy(&l, local, sizeof(l));
            memcpy(k->laddr, &l.sin6_addr, 16);
            k->lport = l.sin6_port;
        }
    }
}

static uint32_t bucket_of(const struct umx_ft *ft, const void *data, size_t len)
{
    return (uint32_t)umx_siphash24(ft->key, data, len) & (ft->nbuckets - 1);
}

struct umx_flow *umx_ft_lookup(struct umx_ft *ft, const struct umx_flow_key *k)
{
    uint32_t i = ft->buckets[bucket_of(ft, k, sizeof(*k))];
    while (i != NIL) {
        struct umx_flow *f = slot_at(ft, i);
        if (memcmp(&f->key, k, sizeof(*k)) == 0) {
            ft->st.hits++;
            return f;
        }
        i = f->hnext;
    }
    ft->st.misses++;
    return NULL;
}

static void cls_unlink(struct umx_ft *ft, struct umx_flow *f)
{
    struct cls *c = &ft->cls[f->cls];
    if (f->prev != NIL)
        slot_at(ft, f->prev)->next = f->next;
    else
        c->head = f->next;
    if (f->next != NIL)
        slot_at(ft, f->next)->prev = f->prev;
    else
        c->tail = f->prev;
    c->count--;
}

static void cls_push(struct umx_ft *ft, struct umx_flow *f, unsigned cls)
{
    struct cls *c = &ft->cls[cls];
    f->cls = (uint16_t)cls;
    f->prev = NIL;
    f->next = c->head;
    if (c->head != NIL)
        slot_at(ft, c->head)->prev = f->idx;
    c->head = f->idx;
    if (c->tail == NIL)
        c->tail = f->idx;
    c->count++;
}

static void hash_unlink(struct umx_ft *ft, struct umx_flow *f)
{
    uint32_t *pp = &ft->buckets[bucket_of(ft, &f->key, sizeof(f->key))];
    while (*pp != NIL) {
        if (*pp == f->idx) {
            *pp = f->hnext;
            return;
        }
        pp = &slot_at(ft, *pp)->hnext;
    }
}

static void hash_link(struct umx_ft *ft, struct umx_flow *f)
{
    uint32_t b = bucket_of(ft, &f->key, sizeof(f->key));
    f->hnext = ft->buckets[b];
    ft->buckets[b] = f->idx;
}

static void roam_unlink(struct umx_ft *ft, struct umx_flow *f)
{
    uint32_t *pp;
    if (!f->roam_len)
        return;
    pp = &ft->rbuckets[bucket_of(ft, f->roam, f->roam_len)];
    while (*pp != NIL) {
        if (*pp == f->idx) {
            *pp = f->rnext;
            break;
        }
        pp = &slot_at(ft, *pp)->rnext;
    }
    f->roam_len = 0;
}

void umx_ft_watch(struct umx_ft *ft, umx_ft_watch_fn *fn, void *arg)
{
    ft->watch = fn;
    ft->watch_arg = arg;
}

static void release_slot(struct umx_ft *ft, struct umx_flow *f)
{
    if (ft->watch)
        ft->watch(ft->watch_arg, &f->key, 0);
    hash_unlink(ft, f);
    roam_unlink(ft, f);
    cls_unlink(ft, f);
    f->in_use = 0;
    f->hnext = ft->freelist;
    ft->freelist = f->idx;
    ft->st.active--;
}

void umx_ft_remove(struct umx_ft *ft, struct umx_flow *f)
{
    if (!f || !f->in_use)
        return;
    release_slot(ft, f);
    ft->st.removed++;
}

/* The victim for a full table: the least recently active flow among the
 * tails of the evictable classes. O(classes), which is small and bounded. */
static struct umx_flow *pick_victim(struct umx_ft *ft)
{
    struct umx_flow *best = NULL;
    for (unsigned c = 0; c < ft->ncls_used; c++) {
        struct umx_flow *t;
        if (!ft->cls[c].evictable || ft->cls[c].tail == NIL)
            continue;
        t = slot_at(ft, ft->cls[c].tail);
        if (!best || t->last_ns < best->last_ns)
            best = t;
    }
    return best;
}

struct umx_flow *umx_ft_insert(struct umx_ft *ft, const struct umx_flow_key *k, unsigned cls,
                               uint64_t now, umx_ft_release_fn *release, void *arg)
{
    struct umx_flow *f;
    if (cls >= UMX_FT_MAX_CLASSES)
        return NULL;
    if (ft->freelist == NIL) {
        struct umx_flow *v = pick_victim(ft);
        if (!v) {
            ft->st.full_drops++;
            return NULL;
        }
        if (release)
            release(v, arg, UMX_FT_EVICTED);
        release_slot(ft, v);
        ft->st.evictions++;
    }
    f = slot_at(ft, ft->freelist);
    ft->freelist = f->hnext;
    {
        uint32_t idx = f->idx;
        memset(f, 0, ft->slot);
        f->idx = idx;
    }
    f->key = *k;
    f->in_use = 1;
    f->created_ns = f->last_ns = now;
    hash_link(ft, f);
    cls_push(ft, f, cls);
    if (cls + 1 > ft->ncls_used)
        ft->ncls_used = (uint16_t)(cls + 1);
    ft->st.inserts++;
    ft->st.active++;
    if (ft->watch)
        ft->watch(ft->watch_arg, k, 1);
    return f;
}

void umx_ft_touch(struct umx_ft *ft, struct umx_flow *f, unsigned new_cls, uint64_t now)
{
    f->last_ns = now;
    if (new_cls >= UMX_FT_MAX_CLASSES)
        new_cls = f->cls;
    if (ft->cls[f->cls].head == f->idx && f->cls == new_cls)
        return;
    cls_unlink(ft, f);
    cls_push(ft, f, new_cls);
    if (new_cls + 1 > ft->ncls_used)
        ft->ncls_used = (uint16_t)(new_cls + 1);
}

unsigned umx_ft_expire(struct umx_ft *ft, uint64_t now, unsigned max, umx_ft_release_fn *release,
                       void *arg)
{
    unsigned n = 0;
    for (unsigned c = 0; c < ft->ncls_used; c++) {
        struct cls *cl = &ft->cls[c];
        if (cl->timeout_ns == 0)
            continue;
        while (cl->tail != NIL) {
            struct umx_flow *f = slot_at(ft, cl->tail);
            if (f->last_ns + cl->timeout_ns > now)
                break;
            if (max && n >= max)
                return n;
            if (release)
                release(f, arg, UMX_FT_EXPIRED);
            release_slot(ft, f);
            ft->st.expired++;
            n++;
        }
    }
    return n;
}

uint64_t umx_ft_next_expiry(const struct umx_ft *ft, uint64_t now)
{
    uint64_t best = UINT64_MAX;
    for (unsigned c = 0; c < ft->ncls_used; c++) {
        const struct cls *cl = &ft->cls[c];
        uint64_t due;
        if (cl->timeout_ns == 0 || cl->tail == NIL)
            continue;
        due = slot_at(ft, cl->tail)->last_ns + cl->timeout_ns;
        due = due > now ? due - now : 0;
        if (due < best)
            best = due;
    }
    return best;
}

int umx_ft_roam_set(struct umx_ft *ft, struct umx_flow *f, const uint8_t *key, size_t len)
{
    struct umx_flow *old;
    uint32_t b;
    if (len == 0 || len > UMX_ROAM_MAX)
        return -EINVAL;
    old = umx_ft_roam_lookup(ft, key, len);
    if (old == f)
        return 0;
    if (old)
        roam_unlink(ft, old);
    roam_unlink(ft, f);
    memcpy(f->roam, key, len);
    f->roam_len = (uint8_t)len;
    b = bucket_of(ft, key, len);
    f->rnext = ft->rbuckets[b];
    ft->rbuckets[b] = f->idx;
    return 0;
}

struct umx_flow *umx_ft_roam_lookup(struct umx_ft *ft, const uint8_t *key, size_t len)
{
    uint32_t i;
    if (len == 0 || len > UMX_ROAM_MAX)
        return NULL;
    i = ft->rbuckets[bucket_of(ft, key, len)];
    while (i != NIL) {
        struct umx_flow *f = slot_at(ft, i);
        if (f->roam_len == len && memcmp(f->roam, key, len) == 0) {
            ft->st.roam_hits++;
            return f;
        }
        i = f->rnext;
    }
    return NULL;
}

int umx_ft_rekey(struct umx_ft *ft, struct umx_flow *f, const struct umx_flow_key *k)
{
    if (umx_ft_lookup(ft, k))
        return -EEXIST;
    if (ft->watch)
        ft->watch(ft->watch_arg, &f->key, 0);
    hash_unlink(ft, f);
    f->key = *k;
    hash_link(ft, f);
    if (ft->watch)
        ft->watch(ft->watch_arg, k, 1);
    return 0;
}

struct umx_flow *umx_ft_at(struct umx_ft *ft, uint32_t idx)
{
    struct umx_flow *f;
    if (idx >= ft->cap)
        return NULL;
    f = slot_at(ft, idx);
    return f->in_use ? f : NULL;
}

uint32_t umx_ft_capacity(const struct umx_ft *ft)
{
    return ft->cap;
}

void umx_ft_get_stats(const struct umx_ft *ft, struct umx_ft_stats *out)
{
    *out = ft->st;
}

size_t umx_ft_bytes_per_flow(const struct umx_ft *ft)
{
    return ft->slot + 2 * sizeof(uint32_t) * ft->nbuckets / ft->cap;
}
