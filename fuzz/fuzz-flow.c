/*
 * fuzz-flow.c - the flow table (lib/flow/flow.h) driven by an operation
 * stream, checked against a shadow model after every operation.
 *
 * Input: byte 0 picks the capacity (1..32), then each operation is an
 * opcode byte and its argument bytes (missing bytes read as zero). Keys,
 * classes and roaming keys come from small spaces so that hits, collisions,
 * evictions and re-keys happen often.
 *
 * Invariants checked (any violation aborts, which libFuzzer reports):
 *  - lookups agree with the model; the active count and umx_ft_at() agree;
 *  - a full table evicts only a flow of an evictable class, and the least
 *    recently active of those; with none evictable the insert fails;
 *  - established (non-evictable) flows are never evicted by new ones;
 *  - expiry removes exactly the flows whose class timeout has passed, never
 *    one that is still fresh; umx_ft_next_expiry() is the model's minimum;
 *  - every release callback names a live flow, once, with the right reason;
 *  - the caller payload of a flow survives until the flow is released
 *    (no slot aliasing);
 *  - roaming keys map to at most one flow and follow roam_set/re-key/release.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flow/flow.h"

#define MAX_CAP 32
#define NKEYS 64
#define NCLS 8
#define NROAM 16
#define USER_SIZE 24

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-flow: invariant failed at line %d: %s\n", __LINE__, #c);         \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

struct model_flow {
    int used;
    int keyid;
    unsigned cls;
    uint64_t last_ns;
    int roamid; /* -1: none */
};

struct model {
    struct umx_ft *ft;
    uint32_t cap;
    uint64_t now;
    struct model_flow f[MAX_CAP];
    int key_idx[NKEYS]; /* key id -> flow index, -1 */
    uint64_t cls_timeout[NCLS];
    int cls_evictable[NCLS];
    /* what the release callback saw during the current operation */
    int released[MAX_CAP];
    int release_reason[MAX_CAP];
    unsigned nreleased;
};

struct in {
    const uint8_t *p;
    size_t n;
};

static uint8_t next(struct in *in)
{
    uint8_t b = 0;
    if (in->n) {
        b = *in->p++;
        in->n--;
    }
    return b;
}

static void key_of(int id, struct umx_flow_key *k)
{
    /* ids 0..47 IPv4, 48..63 IPv6; ports differ too so two ids never share
     * a key */
    if (id < 48) {
        struct sockaddr_in p = {.sin_family = AF_INET};
        struct sockaddr_in l = {.sin_family = AF_INET};
        p.sin_addr.s_addr = htonl(0x7f000000u | (uint32_t)(id % 6));
        p.sin_port = htons((uint16_t)(1000 + id));
        l.sin_addr.s_addr = htonl(0x7f000001u);
        l.sin_port = htons(443);
        umx_flow_key_make(k, (struct sockaddr *)&l, (struct sockaddr *)&p, 0);
    } else {
        struct sockaddr_in6 p = {.sin6_family = AF_INET6};
        p.sin6_addr.s6_addr[15] = (uint8_t)id;
        p.sin6_port = htons((uint16_t)(2000 + id));
        umx_flow_key_make(k, NULL, (struct sockaddr *)&p, (uint32_t)(id & 1));
    }
}

static size_t roam_of(int id, uint8_t out[UMX_ROAM_MAX])
{
    size_t len = 1 + (size_t)(id % UMX_ROAM_MAX);
    for (size_t i = 0; i < len; i++)
        out[i] = (uint8_t)(id * 31 + (int)i);
    return len;
}

static void fill_payload(struct umx_flow *f, int keyid)
{
    uint8_t *p = umx_flow_data(f);
    memset(p, keyid ^ 0x5a, USER_SIZE);
}

static void check_payload(struct umx_flow *f, int keyid)
{
    const uint8_t *p = umx_flow_data(f);
    for (size_t i = 0; i < USER_SIZE; i++)
        CHECK(p[i] == (uint8_t)(keyid ^ 0x5a));
}

static void on_release(struct umx_flow *f, void *arg, int reason)
{
    struct model *m = arg;
    CHECK(f->idx < m->cap);
    CHECK(m->f[f->idx].used);
    CHECK(f->in_use);
    for (unsigned i = 0; i < m->nreleased; i++)
        CHECK(m->released[i] != (int)f->idx);
    check_payload(f, m->f[f->idx].keyid);
    CHECK(m->nreleased < MAX_CAP);
    m->released[m->nreleased] = (int)f->idx;
    m->release_reason[m->nreleased] = reason;
    m->nreleased++;
}

static void model_drop(struct model *m, int idx)
{
    m->key_idx[m->f[idx].keyid] = -1;
    m->f[idx].used = 0;
    m->f[idx].roamid = -1;
}

static unsigned model_count(const struct model *m)
{
    unsigned n = 0;
    for (uint32_t i = 0; i < m->cap; i++)
        n += m->f[i].used ? 1u : 0u;
    return n;
}

/* Every operation: every slot's state, class, time and payload against the
 * model, the active count and the next expiry. With full set (every 64
 * operations and at the end) also every lookup by key, every key that must
 * be absent and every roaming key: those are SipHash lookups, the expensive
 * part. */
static void check_all(struct model *m, int full)
{
    struct umx_ft_stats st;
    uint64_t best = UINT64_MAX;
    umx_ft_get_stats(m->ft, &st);
    CHECK(st.active == model_count(m));
    CHECK(st.capacity == m->cap);
    CHECK(umx_ft_capacity(m->ft) == m->cap);
    for (uint32_t i = 0; i < m->cap; i++) {
        struct umx_flow *f = umx_ft_at(m->ft, i);
        CHECK((f != NULL) == (m->f[i].used != 0));
        if (!f)
            continue;
        if (full) {
            struct umx_flow_key k;
            key_of(m->f[i].keyid, &k);
            CHECK(memcmp(&f->key, &k, sizeof(k)) == 0);
            CHECK(umx_ft_lookup(m->ft, &k) == f);
        }
        CHECK(f->idx == i);
        CHECK(f->cls == m->f[i].cls);
        CHECK(f->last_ns == m->f[i].last_ns);
        check_payload(f, m->f[i].keyid);
        if (m->cls_timeout[f->cls]) {
            uint64_t due = m->f[i].last_ns + m->cls_timeout[f->cls];
            due = due > m->now ? due - m->now : 0;
            if (due < best)
                best = due;
        }
    }
    if (!full) {
        CHECK(umx_ft_next_expiry(m->ft, m->now) == best);
        return;
    }
    for (int k = 0; k < NKEYS; k++) {
        struct umx_flow_key key;
        key_of(k, &key);
        if (m->key_idx[k] < 0)
            CHECK(umx_ft_lookup(m->ft, &key) == NULL);
    }
    for (int r = 0; r < NROAM; r++) {
        uint8_t rk[UMX_ROAM_MAX];
        size_t rl = roam_of(r, rk);
        struct umx_flow *f = umx_ft_roam_lookup(m->ft, rk, rl);
        int owner = -1;
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->f[i].used && m->f[i].roamid == r)
                owner = (int)i;
        CHECK(f ? (int)f->idx == owner : owner == -1);
    }
    CHECK(umx_ft_next_expiry(m->ft, m->now) == best);
}

static void op_insert(struct model *m, int keyid, unsigned cls)
{
    struct umx_flow_key k;
    struct umx_flow *f;
    int any_evictable = 0;
    uint64_t oldest = UINT64_MAX;
    unsigned before = model_count(m);
    if (m->key_idx[keyid] >= 0)
        return; /* the API requires a new key */
    for (uint32_t i = 0; i < m->cap; i++) {
        if (m->f[i].used && m->cls_evictable[m->f[i].cls]) {
            any_evictable = 1;
            if (m->f[i].last_ns < oldest)
                oldest = m->f[i].last_ns;
        }
    }
    key_of(keyid, &k);
    m->nreleased = 0;
    f = umx_ft_insert(m->ft, &k, cls, m->now, on_release, m);
    if (before < m->cap) {
        CHECK(f != NULL);
        CHECK(m->nreleased == 0);
    } else if (!any_evictable) {
        /* established flows are never pushed out by new ones */
        CHECK(f == NULL);
        CHECK(m->nreleased == 0);
        return;
    } else {
        int v;
        CHECK(f != NULL);
        CHECK(m->nreleased == 1);
        CHECK(m->release_reason[0] == UMX_FT_EVICTED);
        v = m->released[0];
        CHECK(m->cls_evictable[m->f[v].cls]);
        CHECK(m->f[v].last_ns == oldest);
        CHECK((int)f->idx == v);
        model_drop(m, v);
    }
    CHECK(f->idx < m->cap);
    CHECK(!m->f[f->idx].used);
    CHECK(f->roam_len == 0);
    {
        /* the payload of a new flow is zeroed */
        const uint8_t *p = umx_flow_data(f);
        for (size_t i = 0; i < USER_SIZE; i++)
            CHECK(p[i] == 0);
    }
    fill_payload(f, keyid);
    m->f[f->idx].used = 1;
    m->f[f->idx].keyid = keyid;
    m->f[f->idx].cls = cls;
    m->f[f->idx].last_ns = m->now;
    m->f[f->idx].roamid = -1;
    m->key_idx[keyid] = (int)f->idx;
}

static struct umx_flow *find(struct model *m, int keyid)
{
    struct umx_flow_key k;
    struct umx_flow *f;
    key_of(keyid, &k);
    f = umx_ft_lookup(m->ft, &k);
    if (m->key_idx[keyid] < 0) {
        CHECK(f == NULL);
        return NULL;
    }
    CHECK(f != NULL);
    CHECK((int)f->idx == m->key_idx[keyid]);
    return f;
}

static void op_expire(struct model *m, unsigned max)
{
    unsigned n;
    m->nreleased = 0;
    n = umx_ft_expire(m->ft, m->now, max, on_release, m);
    CHECK(n == m->nreleased);
    if (max)
        CHECK(n <= max);
    for (unsigned i = 0; i < n; i++) {
        int v = m->released[i];
        CHECK(m->release_reason[i] == UMX_FT_EXPIRED);
        /* never a fresh flow, never one of a class that does not expire */
        CHECK(m->cls_timeout[m->f[v].cls] != 0);
        CHECK(m->f[v].last_ns + m->cls_timeout[m->f[v].cls] <= m->now);
        model_drop(m, v);
    }
    if (max == 0 || n < max) {
        /* nothing that is due may be left behind */
        for (uint32_t i = 0; i < m->cap; i++)
            if (m->f[i].used && m->cls_timeout[m->f[i].cls])
                CHECK(m->f[i].last_ns + m->cls_timeout[m->f[i].cls] > m->now);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t hkey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    struct model m;
    struct in in = {data, size};
    unsigned ops = 0;

    memset(&m, 0, sizeof(m));
    m.cap = 1 + next(&in) % MAX_CAP;
    m.now = 1000;
    if (umx_ft_new(&m.ft, m.cap, USER_SIZE, hkey) < 0)
        return 0;
    for (int k = 0; k < NKEYS; k++)
        m.key_idx[k] = -1;
    for (uint32_t i = 0; i < MAX_CAP; i++)
        m.f[i].roamid = -1;
    /* the daemon's shape: even classes "unanswered" (evictable, short),
     * odd classes "established" (kept, longer) */
    for (unsigned c = 0; c < NCLS; c++) {
        m.cls_timeout[c] = (c & 1) ? 120000 : 30000;
        m.cls_evictable[c] = !(c & 1);
        CHECK(umx_ft_set_class(m.ft, c, m.cls_timeout[c], m.cls_evictable[c]) == 0);
    }
    CHECK(umx_ft_set_class(m.ft, UMX_FT_MAX_CLASSES, 1, 1) == -EINVAL);
    check_all(&m, 1);

    while (in.n && ops++ < 1024) {
        uint8_t op = next(&in);
        int key = next(&in) % NKEYS;
        switch (op % 10) {
        case 0:
            op_insert(&m, key, next(&in) % NCLS);
            break;
        case 1:
            (void)find(&m, key);
            break;
        case 2: {
            struct umx_flow *f = find(&m, key);
            uint8_t c = next(&in);
            /* UMX_FT_MAX_CLASSES keeps the class (the worker's "touch") */
            unsigned nc = c >= 0xf0 ? UMX_FT_MAX_CLASSES : c % NCLS;
            if (f) {
                umx_ft_touch(m.ft, f, nc, m.now);
                if (nc < NCLS)
                    m.f[f->idx].cls = nc;
                m.f[f->idx].last_ns = m.now;
            }
            break;
        }
        case 3: {
            struct umx_flow *f = find(&m, key);
            if (f) {
                int idx = (int)f->idx;
                umx_ft_remove(m.ft, f);
                model_drop(&m, idx);
                /* removing twice is harmless */
                umx_ft_remove(m.ft, f);
            }
            umx_ft_remove(m.ft, NULL);
            break;
        }
        case 4:
            m.now += (uint64_t)key * 997u + next(&in);
            break;
        case 5:
            op_expire(&m, next(&in) % 4);
            break;
        case 6: {
            unsigned c = (unsigned)key % NCLS;
            uint8_t t = next(&in);
            m.cls_timeout[c] = (t & 0x7f) * 1000u;
            m.cls_evictable[c] = t >> 7;
            CHECK(umx_ft_set_class(m.ft, c, m.cls_timeout[c], m.cls_evictable[c]) == 0);
            break;
        }
        case 7: {
            struct umx_flow *f = find(&m, key);
            int r = next(&in) % NROAM;
            uint8_t rk[UMX_ROAM_MAX];
            size_t rl = roam_of(r, rk);
            if (f) {
                CHECK(umx_ft_roam_set(m.ft, f, rk, rl) == 0);
                for (uint32_t i = 0; i < m.cap; i++)
                    if (m.f[i].used && m.f[i].roamid == r)
                        m.f[i].roamid = -1;
                m.f[f->idx].roamid = r;
                CHECK(umx_ft_roam_set(m.ft, f, rk, 0) == -EINVAL);
                CHECK(umx_ft_roam_set(m.ft, f, rk, UMX_ROAM_MAX + 1) == -EINVAL);
            }
            break;
        }
        case 8: {
            uint8_t rk[UMX_ROAM_MAX];
            size_t rl = roam_of(key % NROAM, rk);
            CHECK(umx_ft_roam_lookup(m.ft, rk, 0) == NULL);
            (void)umx_ft_roam_lookup(m.ft, rk, rl); /* compared in check_all() */
            break;
        }
        case 9: {
            struct umx_flow *f = find(&m, key);
            int nk = next(&in) % NKEYS;
            struct umx_flow_key k;
            if (!f)
                break;
            key_of(nk, &k);
            if (m.key_idx[nk] >= 0) {
                CHECK(umx_ft_rekey(m.ft, f, &k) == -EEXIST);
            } else {
                int idx = (int)f->idx;
                CHECK(umx_ft_rekey(m.ft, f, &k) == 0);
                m.key_idx[key] = -1;
                m.key_idx[nk] = idx;
                m.f[idx].keyid = nk;
                /* the payload belongs to the flow, not to its key */
                fill_payload(f, nk);
            }
            break;
        }
        }
        check_all(&m, (ops & 63) == 0);
    }
    /* tear-down: expire everything that can expire, then remove the rest */
    m.now += 1000000000ull;
    op_expire(&m, 0);
    for (uint32_t i = 0; i < m.cap; i++) {
        struct umx_flow *f = umx_ft_at(m.ft, i);
        if (f) {
            umx_ft_remove(m.ft, f);
            model_drop(&m, (int)i);
        }
    }
    check_all(&m, 1);
    umx_ft_free(m.ft);
    return 0;
}
