/*
 * test-flow.c - the flow table (lib/flow/flow.c) with a fake clock: insert,
 * lookup, expiry per class, LRU eviction of evictable classes only, full
 * table refusal, roaming keys, rekey, and a 100k-flow stress run checked
 * against the table's own invariants.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "flow/flow.h"
#include "internal.h"

#define MS 1000000ull
#define SEC 1000000000ull

static const uint8_t hkey[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

struct payload {
    uint64_t magic;
    uint32_t n;
};

/* Release callback: records what the table took away. */
struct rel_log {
    unsigned expired, evicted;
    uint32_t last_n;
    uint64_t last_magic;
};

static void on_release(struct umx_flow *f, void *arg, int reason)
{
    struct rel_log *l = arg;
    struct payload *p = umx_flow_data(f);
    assert_true(f->in_use);
    if (reason == UMX_FT_EXPIRED)
        l->expired++;
    else if (reason == UMX_FT_EVICTED)
        l->evicted++;
    else
        fail_msg("unknown release reason %d", reason);
    l->last_n = p->n;
    l->last_magic = p->magic;
}

/* Key for peer 10.x.y.z:port (n picks the address and port), local
 * 192.0.2.1:443. */
static struct umx_flow_key key4(uint32_t n, uint32_t tag)
{
    struct sockaddr_in l, p;
    struct umx_flow_key k;
    memset(&l, 0, sizeof(l));
    memset(&p, 0, sizeof(p));
    l.sin_family = p.sin_family = AF_INET;
    l.sin_port = htons(443);
    l.sin_addr.s_addr = htonl(0xc0000201);
    p.sin_port = htons((uint16_t)(1024 + n % 60000));
    p.sin_addr.s_addr = htonl(0x0a000000u | (n / 60000));
    umx_flow_key_make(&k, (struct sockaddr *)&l, (struct sockaddr *)&p, tag);
    return k;
}

static struct umx_flow_key key6(const char *peer, uint16_t port)
{
    struct sockaddr_in6 l, p;
    struct umx_flow_key k;
    memset(&l, 0, sizeof(l));
    memset(&p, 0, sizeof(p));
    l.sin6_family = p.sin6_family = AF_INET6;
    l.sin6_port = htons(443);
    inet_pton(AF_INET6, "2001:db8::1", &l.sin6_addr);
    p.sin6_port = htons(port);
    inet_pton(AF_INET6, peer, &p.sin6_addr);
    umx_flow_key_make(&k, (struct sockaddr *)&l, (struct sockaddr *)&p, 0);
    return k;
}

static struct umx_ft *new_table(uint32_t cap)
{
    struct umx_ft *ft = NULL;
    assert_int_equal(umx_ft_new(&ft, cap, sizeof(struct payload), hkey), 0);
    assert_non_null(ft);
    return ft;
}

/* Walks every class list and the iteration API and checks they agree with
 * the counters: the invariant every operation must keep. */
static void check_invariants(struct umx_ft *ft)
{
    struct umx_ft_stats st;
    uint32_t active = 0;
    umx_ft_get_stats(ft, &st);
    for (uint32_t i = 0; i < umx_ft_capacity(ft); i++) {
        struct umx_flow *f = umx_ft_at(ft, i);
        if (!f)
            continue;
        active++;
        assert_int_equal(f->idx, i);
        /* every active flow is found by its own key */
        assert_ptr_equal(umx_ft_lookup(ft, &f->key), f);
    }
    assert_int_equal(active, st.active);
    assert_null(umx_ft_at(ft, umx_ft_capacity(ft)));
}

static void test_new_errors(void **state)
{
    struct umx_ft *ft = (struct umx_ft *)(uintptr_t)1;
    (void)state;
    assert_int_equal(umx_ft_new(NULL, 10, 0, hkey), -EINVAL);
    assert_int_equal(umx_ft_new(&ft, 0, 0, hkey), -EINVAL);
    assert_int_equal(umx_ft_new(&ft, UINT32_MAX, 0, hkey), -EINVAL);
    assert_int_equal(umx_ft_new(&ft, UINT32_MAX / 2, 0, hkey), -EINVAL);
    umx_ft_free(NULL);
    ft = new_table(4);
    assert_int_equal(umx_ft_set_class(ft, UMX_FT_MAX_CLASSES, SEC, 1), -EINVAL);
    assert_int_equal(umx_ft_set_class(ft, UMX_FT_MAX_CLASSES - 1, SEC, 1), 0);
    assert_int_equal(umx_ft_capacity(ft), 4);
    assert_true(umx_ft_bytes_per_flow(ft) >= sizeof(struct umx_flow) + sizeof(struct payload));
    /* an out-of-range class is refused */
    {
        struct umx_flow_key k = key4(1, 0);
        assert_null(umx_ft_insert(ft, &k, UMX_FT_MAX_CLASSES, 0, NULL, NULL));
    }
    umx_ft_free(ft);
}

static void test_insert_lookup(void **state)
{
    struct umx_ft *ft = new_table(64);
    struct umx_flow_key k1 = key4(1, 0), k2 = key4(2, 0), k1t = key4(1, 7);
    struct umx_flow *f1, *f2, *f1t;
    struct umx_ft_stats st;
    (void)state;
    umx_ft_set_class(ft, 0, 30 * SEC, 1);
    assert_null(umx_ft_lookup(ft, &k1));
    f1 = umx_ft_insert(ft, &k1, 0, 1000, NULL, NULL);
    assert_non_null(f1);
    /* the payload is zeroed, aligned, and writable */
    {
        struct payload *p = umx_flow_data(f1);
        assert_int_equal(((uintptr_t)p) % 16, 0);
        assert_int_equal(p->magic, 0);
        assert_int_equal(p->n, 0);
        p->magic = 0xfeed;
        p->n = 1;
    }
    f2 = umx_ft_insert(ft, &k2, 0, 2000, NULL, NULL);
    f1t = umx_ft_insert(ft, &k1t, 0, 3000, NULL, NULL);
    assert_non_null(f2);
    assert_non_null(f1t);
    assert_ptr_not_equal(f1, f2);
    /* the tag is part of the key */
    assert_ptr_not_equal(f1, f1t);
    assert_ptr_equal(umx_ft_lookup(ft, &k1), f1);
    assert_ptr_equal(umx_ft_lookup(ft, &k2), f2);
    assert_ptr_equal(umx_ft_lookup(ft, &k1t), f1t);
    assert_int_equal(f1->created_ns, 1000);
    assert_int_equal(f1->last_ns, 1000);
    assert_int_equal(((struct payload *)umx_flow_data(f1))->magic, 0xfeed);
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.inserts, 3);
    assert_int_equal(st.active, 3);
    assert_int_equal(st.capacity, 64);
    assert_true(st.hits >= 3);
    assert_true(st.misses >= 1);
    /* remove */
    umx_ft_remove(ft, f2);
    assert_null(umx_ft_lookup(ft, &k2));
    umx_ft_remove(ft, f2); /* twice is harmless */
    umx_ft_remove(ft, NULL);
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.active, 2);
    assert_int_equal(st.removed, 1);
    check_invariants(ft);
    umx_ft_free(ft);
}

static void test_key_families(void **state)
{
    struct umx_ft *ft = new_table(16);
    struct umx_flow_key a = key6("2001:db8::5", 1000);
    struct umx_flow_key b = key6("2001:db8::5", 1001);
    struct umx_flow_key c = key6("::ffff:10.0.0.1", 1000);
    struct umx_flow_key d;
    struct sockaddr_in p4;
    (void)state;
    memset(&p4, 0, sizeof(p4));
    p4.sin_family = AF_INET;
    p4.sin_port = htons(1000);
    p4.sin_addr.s_addr = htonl(0x0a000001);
    /* no local address: a peer-only key */
    umx_flow_key_make(&d, NULL, (struct sockaddr *)&p4, 0);
    assert_int_equal(d.family, AF_INET);
    assert_int_equal(a.family, AF_INET6);
    assert_non_null(umx_ft_insert(ft, &a, 0, 0, NULL, NULL));
    assert_non_null(umx_ft_insert(ft, &b, 0, 0, NULL, NULL));
    assert_non_null(umx_ft_insert(ft, &c, 0, 0, NULL, NULL));
    assert_non_null(umx_ft_insert(ft, &d, 0, 0, NULL, NULL));
    /* a v4-mapped peer stays an IPv6 key: distinct from the plain IPv4 one */
    assert_int_equal(c.family, AF_INET6);
    assert_ptr_not_equal(umx_ft_lookup(ft, &c), umx_ft_lookup(ft, &d));
    assert_ptr_not_equal(umx_ft_lookup(ft, &a), umx_ft_lookup(ft, &b));
    check_invariants(ft);
    umx_ft_free(ft);
}

static void test_expire_fake_clock(void **state)
{
    struct umx_ft *ft = new_table(16);
    struct rel_log log = {0};
    struct umx_flow *f[4];
    struct umx_flow_key k[4];
    uint64_t now = 100 * SEC;
    (void)state;
    umx_ft_set_class(ft, 0, 10 * SEC, 1); /* unanswered: short */
    umx_ft_set_class(ft, 1, 60 * SEC, 0); /* established: long */
    umx_ft_set_class(ft, 2, 0, 0);        /* pinned: never expires */
    assert_int_equal(umx_ft_next_expiry(ft, now), UINT64_MAX);
    for (int i = 0; i < 4; i++) {
        k[i] = key4((uint32_t)i, 0);
        f[i] = umx_ft_insert(ft, &k[i], i == 3 ? 2 : 0, now + (uint64_t)i * SEC, NULL, NULL);
        assert_non_null(f[i]);
        ((struct payload *)umx_flow_data(f[i]))->n = (uint32_t)i;
    }
    /* flow 0 is due 10 s after it was created */
    assert_int_equal(umx_ft_next_expiry(ft, now), 10 * SEC);
    assert_int_equal(umx_ft_next_expiry(ft, now + 9 * SEC), 1 * SEC);
    assert_int_equal(umx_ft_next_expiry(ft, now + 20 * SEC), 0);
    /* answer flow 1: moves to the long class */
    umx_ft_touch(ft, f[1], 1, now + 5 * SEC);
    assert_int_equal(f[1]->cls, 1);
    assert_int_equal(f[1]->last_ns, now + 5 * SEC);
    /* touch with an out-of-range class keeps the class */
    umx_ft_touch(ft, f[2], UMX_FT_MAX_CLASSES, now + 6 * SEC);
    assert_int_equal(f[2]->cls, 0);
    /* nothing due yet: 9.999 s after flow 0 */
    assert_int_equal(umx_ft_expire(ft, now + 10 * SEC - 1, 0, on_release, &log), 0);
    /* exactly at the timeout it goes */
    assert_int_equal(umx_ft_expire(ft, now + 10 * SEC, 0, on_release, &log), 1);
    assert_int_equal(log.expired, 1);
    assert_int_equal(log.last_n, 0);
    assert_null(umx_ft_lookup(ft, &k[0]));
    /* flow 2 was touched at +6 s: due at +16 s */
    assert_int_equal(umx_ft_next_expiry(ft, now + 10 * SEC), 6 * SEC);
    assert_int_equal(umx_ft_expire(ft, now + 16 * SEC, 0, on_release, &log), 1);
    assert_int_equal(log.last_n, 2);
    /* flow 1 (established, touched at +5 s) lives until +65 s */
    assert_int_equal(umx_ft_expire(ft, now + 64 * SEC, 0, on_release, &log), 0);
    assert_non_null(umx_ft_lookup(ft, &k[1]));
    assert_int_equal(umx_ft_expire(ft, now + 65 * SEC, 0, on_release, &log), 1);
    assert_null(umx_ft_lookup(ft, &k[1]));
    /* the pinned flow never expires */
    assert_int_equal(umx_ft_expire(ft, UINT64_MAX / 2, 0, on_release, &log), 0);
    assert_non_null(umx_ft_lookup(ft, &k[3]));
    assert_int_equal(umx_ft_next_expiry(ft, now), UINT64_MAX);
    {
        struct umx_ft_stats st;
        umx_ft_get_stats(ft, &st);
        assert_int_equal(st.expired, 3);
        assert_int_equal(st.active, 1);
    }
    check_invariants(ft);
    umx_ft_free(ft);
}

static void test_expire_max_and_no_release(void **state)
{
    struct umx_ft *ft = new_table(100);
    (void)state;
    umx_ft_set_class(ft, 0, 1 * SEC, 1);
    for (uint32_t i = 0; i < 100; i++) {
        struct umx_flow_key k = key4(i, 0);
        assert_non_null(umx_ft_insert(ft, &k, 0, i * MS, NULL, NULL));
    }
    /* bounded work per call */
    assert_int_equal(umx_ft_expire(ft, 10 * SEC, 30, NULL, NULL), 30);
    assert_int_equal(umx_ft_expire(ft, 10 * SEC, 30, NULL, NULL), 30);
    check_invariants(ft);
    assert_int_equal(umx_ft_expire(ft, 10 * SEC, 0, NULL, NULL), 40);
    assert_null(umx_ft_at(ft, 0));
    /* oldest first: after expiring with a clock that only reaches the first
     * 10 flows, exactly those are gone */
    for (uint32_t i = 0; i < 100; i++) {
        struct umx_flow_key k = key4(i, 0);
        assert_non_null(umx_ft_insert(ft, &k, 0, i * MS, NULL, NULL));
    }
    assert_int_equal(umx_ft_expire(ft, 1 * SEC + 9 * MS, 0, NULL, NULL), 10);
    for (uint32_t i = 0; i < 100; i++) {
        struct umx_flow_key k = key4(i, 0);
        if (i < 10)
            assert_null(umx_ft_lookup(ft, &k));
        else
            assert_non_null(umx_ft_lookup(ft, &k));
    }
    umx_ft_free(ft);
}

static void test_lru_eviction_evictable_only(void **state)
{
    struct umx_ft *ft = new_table(4);
    struct rel_log log = {0};
    struct umx_flow_key k[8];
    struct umx_flow *f[8];
    struct umx_ft_stats st;
    (void)state;
    umx_ft_set_class(ft, 0, 10 * SEC, 1); /* unanswered: evictable */
    umx_ft_set_class(ft, 1, 60 * SEC, 0); /* established: never evicted */
    for (int i = 0; i < 8; i++)
        k[i] = key4((uint32_t)i, 0);
    /* two established, two unanswered */
    for (int i = 0; i < 4; i++) {
        f[i] = umx_ft_insert(ft, &k[i], i < 2 ? 1 : 0, (uint64_t)(i + 1) * SEC, on_release, &log);
        assert_non_null(f[i]);
        ((struct payload *)umx_flow_data(f[i]))->n = (uint32_t)i;
    }
    /* make flow 3 more recent than flow 2: LRU order is 2, 3 */
    umx_ft_touch(ft, f[3], 0, 10 * SEC);
    /* full: a new flow evicts the least recently active unanswered one (2),
     * although the established flows 0 and 1 are older */
    f[4] = umx_ft_insert(ft, &k[4], 0, 11 * SEC, on_release, &log);
    assert_non_null(f[4]);
    assert_int_equal(log.evicted, 1);
    assert_int_equal(log.last_n, 2);
    assert_null(umx_ft_lookup(ft, &k[2]));
    /* the payload of the reused slot is zeroed */
    assert_int_equal(((struct payload *)umx_flow_data(f[4]))->n, 0);
    ((struct payload *)umx_flow_data(f[4]))->n = 4;
    /* next victim: 3 (touched at 10 s) before 4 (11 s) */
    f[5] = umx_ft_insert(ft, &k[5], 0, 12 * SEC, on_release, &log);
    assert_non_null(f[5]);
    assert_int_equal(log.last_n, 3);
    ((struct payload *)umx_flow_data(f[5]))->n = 5;
    /* promote both remaining unanswered flows: nothing is evictable */
    umx_ft_touch(ft, f[4], 1, 13 * SEC);
    umx_ft_touch(ft, f[5], 1, 13 * SEC);
    assert_null(umx_ft_insert(ft, &k[6], 0, 14 * SEC, on_release, &log));
    assert_null(umx_ft_insert(ft, &k[7], 1, 14 * SEC, on_release, &log));
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.full_drops, 2);
    assert_int_equal(st.evictions, 2);
    assert_int_equal(st.active, 4);
    assert_int_equal(log.evicted, 2);
    /* established flows survived all of it */
    for (int i = 0; i < 2; i++)
        assert_ptr_equal(umx_ft_lookup(ft, &k[i]), f[i]);
    /* freeing one makes room again */
    umx_ft_remove(ft, f[0]);
    assert_non_null(umx_ft_insert(ft, &k[6], 0, 15 * SEC, on_release, &log));
    check_invariants(ft);
    umx_ft_free(ft);
}

static void test_eviction_across_classes(void **state)
{
    /* the victim is the oldest tail among all evictable classes */
    struct umx_ft *ft = new_table(3);
    struct rel_log log = {0};
    struct umx_flow_key k[4];
    (void)state;
    umx_ft_set_class(ft, 0, 0, 1);
    umx_ft_set_class(ft, 5, 0, 1);
    umx_ft_set_class(ft, 9, 0, 0);
    for (int i = 0; i < 4; i++)
        k[i] = key4((uint32_t)i, 0);
    ((struct payload *)umx_flow_data(umx_ft_insert(ft, &k[0], 0, 3 * SEC, NULL, NULL)))->n = 0;
    ((struct payload *)umx_flow_data(umx_ft_insert(ft, &k[1], 5, 2 * SEC, NULL, NULL)))->n = 1;
    ((struct payload *)umx_flow_data(umx_ft_insert(ft, &k[2], 9, 1 * SEC, NULL, NULL)))->n = 2;
    assert_non_null(umx_ft_insert(ft, &k[3], 0, 4 * SEC, on_release, &log));
    assert_int_equal(log.last_n, 1); /* class 5's flow at 2 s, not class 9's at 1 s */
    check_invariants(ft);
    umx_ft_free(ft);
}

static void test_roaming_keys(void **state)
{
    struct umx_ft *ft = new_table(8);
    struct umx_flow_key k1 = key4(1, 0), k2 = key4(2, 0);
    struct umx_flow *f1, *f2;
    static const uint8_t idx_a[4] = {0xde, 0xad, 0xbe, 0xef};
    static const uint8_t idx_b[4] = {0x00, 0x00, 0x00, 0x01};
    uint8_t cid[UMX_ROAM_MAX + 1];
    struct umx_ft_stats st;
    (void)state;
    memset(cid, 0x5a, sizeof(cid));
    f1 = umx_ft_insert(ft, &k1, 0, 0, NULL, NULL);
    f2 = umx_ft_insert(ft, &k2, 0, 0, NULL, NULL);
    assert_null(umx_ft_roam_lookup(ft, idx_a, 4));
    assert_int_equal(umx_ft_roam_set(ft, f1, idx_a, 4), 0);
    assert_ptr_equal(umx_ft_roam_lookup(ft, idx_a, 4), f1);
    /* a prefix of the key is a different key */
    assert_null(umx_ft_roam_lookup(ft, idx_a, 3));
    /* setting the same key again is a no-op */
    assert_int_equal(umx_ft_roam_set(ft, f1, idx_a, 4), 0);
    /* one key per flow: a new key replaces the old */
    assert_int_equal(umx_ft_roam_set(ft, f1, idx_b, 4), 0);
    assert_null(umx_ft_roam_lookup(ft, idx_a, 4));
    assert_ptr_equal(umx_ft_roam_lookup(ft, idx_b, 4), f1);
    /* a key another flow owns moves to the new flow */
    assert_int_equal(umx_ft_roam_set(ft, f2, idx_b, 4), 0);
    assert_ptr_equal(umx_ft_roam_lookup(ft, idx_b, 4), f2);
    assert_int_equal(f1->roam_len, 0);
    /* limits */
    assert_int_equal(umx_ft_roam_set(ft, f1, cid, 0), -EINVAL);
    assert_int_equal(umx_ft_roam_set(ft, f1, cid, UMX_ROAM_MAX + 1), -EINVAL);
    assert_int_equal(umx_ft_roam_set(ft, f1, cid, UMX_ROAM_MAX), 0);
    assert_ptr_equal(umx_ft_roam_lookup(ft, cid, UMX_ROAM_MAX), f1);
    assert_null(umx_ft_roam_lookup(ft, cid, 0));
    assert_null(umx_ft_roam_lookup(ft, cid, UMX_ROAM_MAX + 1));
    /* removing a flow drops its roaming key */
    umx_ft_remove(ft, f2);
    assert_null(umx_ft_roam_lookup(ft, idx_b, 4));
    /* expiry drops it too */
    umx_ft_set_class(ft, 0, SEC, 1);
    assert_int_equal(umx_ft_expire(ft, 2 * SEC, 0, NULL, NULL), 1);
    assert_null(umx_ft_roam_lookup(ft, cid, UMX_ROAM_MAX));
    umx_ft_get_stats(ft, &st);
    assert_true(st.roam_hits >= 4);
    umx_ft_free(ft);
}

static void test_rekey(void **state)
{
    struct umx_ft *ft = new_table(8);
    struct umx_flow_key k1 = key4(1, 0), k2 = key4(2, 0), k3 = key4(3, 0);
    struct umx_flow *f1, *f2;
    static const uint8_t idx[4] = {1, 2, 3, 4};
    (void)state;
    f1 = umx_ft_insert(ft, &k1, 0, 0, NULL, NULL);
    f2 = umx_ft_insert(ft, &k2, 0, 0, NULL, NULL);
    ((struct payload *)umx_flow_data(f1))->n = 11;
    umx_ft_roam_set(ft, f1, idx, 4);
    /* the peer roamed to a new address: same flow, same payload, new key */
    assert_int_equal(umx_ft_rekey(ft, f1, &k3), 0);
    assert_null(umx_ft_lookup(ft, &k1));
    assert_ptr_equal(umx_ft_lookup(ft, &k3), f1);
    assert_int_equal(((struct payload *)umx_flow_data(f1))->n, 11);
    assert_ptr_equal(umx_ft_roam_lookup(ft, idx, 4), f1);
    /* rekey onto its own key: the key is taken (by itself), nothing moves */
    assert_int_equal(umx_ft_rekey(ft, f1, &k3), -EEXIST);
    assert_ptr_equal(umx_ft_lookup(ft, &k3), f1);
    /* rekey onto a key another flow has is refused, nothing changes */
    assert_int_equal(umx_ft_rekey(ft, f1, &k2), -EEXIST);
    assert_ptr_equal(umx_ft_lookup(ft, &k3), f1);
    assert_ptr_equal(umx_ft_lookup(ft, &k2), f2);
    /* the old key is free again */
    assert_non_null(umx_ft_insert(ft, &k1, 0, 0, NULL, NULL));
    check_invariants(ft);
    umx_ft_free(ft);
}

/* 100k flows: fill, look up, churn with eviction, expire everything. */
static void test_capacity_stress(void **state)
{
    enum { CAP = 100000 };
    struct umx_ft *ft = new_table(CAP);
    struct rel_log log = {0};
    struct umx_ft_stats st;
    uint64_t now = SEC;
    (void)state;
    umx_ft_set_class(ft, 0, 30 * SEC, 1);
    umx_ft_set_class(ft, 1, 300 * SEC, 0);
    for (uint32_t i = 0; i < CAP; i++) {
        struct umx_flow_key k = key4(i, 0);
        struct umx_flow *f = umx_ft_insert(ft, &k, i % 10 == 0 ? 1 : 0, now + i, NULL, NULL);
        assert_non_null(f);
        ((struct payload *)umx_flow_data(f))->n = i;
    }
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.active, CAP);
    for (uint32_t i = 0; i < CAP; i++) {
        struct umx_flow_key k = key4(i, 0);
        struct umx_flow *f = umx_ft_lookup(ft, &k);
        assert_non_null(f);
        if (((struct payload *)umx_flow_data(f))->n != i)
            fail_msg("flow %u has payload %u", i, ((struct payload *)umx_flow_data(f))->n);
    }
    /* churn: 50k new flows evict the oldest unanswered ones only */
    for (uint32_t i = CAP; i < CAP + 50000; i++) {
        struct umx_flow_key k = key4(i, 0);
        struct umx_flow *f = umx_ft_insert(ft, &k, 0, now + i, on_release, &log);
        assert_non_null(f);
        ((struct payload *)umx_flow_data(f))->n = i;
        if (log.last_n % 10 == 0)
            fail_msg("evicted established flow %u", log.last_n);
    }
    assert_int_equal(log.evicted, 50000);
    for (uint32_t i = 0; i < CAP; i += 10) {
        struct umx_flow_key k = key4(i, 0);
        assert_non_null(umx_ft_lookup(ft, &k));
    }
    check_invariants(ft);
    /* expire all the unanswered, then all the established */
    assert_int_equal(umx_ft_expire(ft, now + CAP + 50000 + 30 * SEC, 0, on_release, &log),
                     CAP - CAP / 10);
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.active, CAP / 10);
    assert_int_equal(umx_ft_expire(ft, now + 1000 * SEC, 0, on_release, &log), CAP / 10);
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.active, 0);
    assert_int_equal(log.expired, CAP);
    /* and the table is fully usable again */
    for (uint32_t i = 0; i < CAP; i++) {
        struct umx_flow_key k = key4(i, 1);
        assert_non_null(umx_ft_insert(ft, &k, 0, now, NULL, NULL));
    }
    umx_ft_get_stats(ft, &st);
    assert_int_equal(st.active, CAP);
    assert_int_equal(st.full_drops, 0);
    umx_ft_free(ft);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_errors),
        cmocka_unit_test(test_insert_lookup),
        cmocka_unit_test(test_key_families),
        cmocka_unit_test(test_expire_fake_clock),
        cmocka_unit_test(test_expire_max_and_no_release),
        cmocka_unit_test(test_lru_eviction_evictable_only),
        cmocka_unit_test(test_eviction_across_classes),
        cmocka_unit_test(test_roaming_keys),
        cmocka_unit_test(test_rekey),
        cmocka_unit_test(test_capacity_stress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
