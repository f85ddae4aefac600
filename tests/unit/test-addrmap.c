/*
 * test-addrmap.c - the shared-upstream address map (daemon/addrmap.c)
 * against a plain array: random adds and deletes under heavy collisions
 * (a small map, addresses chosen to share home slots, runs that wrap past
 * the end of the table), after every step every live address must be found
 * with its value and every removed one must not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "addrmap.h"

#define NKEYS 600

struct ref {
    uint8_t addr[NKEYS][16];
    int live[NKEYS];
};

/* value = key index; the callback knows every key, live or not (as the
 * daemon's flows know their address until they are released) */
static int key_of(uint32_t val, uint8_t out[16], void *ctx)
{
    struct ref *r = ctx;
    if (val >= NKEYS)
        return -1;
    memcpy(out, r->addr[val], 16);
    return 0;
}

static uint64_t rng = 0x1234567887654321ull;
static uint32_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)rng;
}

static void check_all(const struct umxd_addrmap *m, struct ref *r)
{
    for (uint32_t k = 0; k < NKEYS; k++) {
        uint32_t v = UINT32_MAX;
        int found = umxd_addrmap_find(m, r->addr[k], key_of, r, &v);
        if (r->live[k]) {
            assert_int_equal(found, 1);
            assert_int_equal(v, k);
        } else {
            assert_int_equal(found, 0);
        }
    }
}

/* Keys: IPv4-like addresses (4 bytes, rest zero) whose home slots fall in
 * a few neighbouring slots near the end of the table, so probe runs are
 * long, overlap and wrap around to slot 0. */
static void make_keys(const struct umxd_addrmap *m, struct ref *r, int clustered)
{
    uint32_t n = 0, x = 0x7f4d0000u;
    while (n < NKEYS) {
        uint8_t a[16] = {0};
        uint32_t h;
        x++;
        a[0] = (uint8_t)(x >> 24);
        a[1] = (uint8_t)(x >> 16);
        a[2] = (uint8_t)(x >> 8);
        a[3] = (uint8_t)x;
        h = umxd_addrmap_home(m, a);
        if (clustered && h < m->mask - 5 && h > 2)
            continue;
        memcpy(r->addr[n++], a, 16);
    }
}

static void run(uint32_t slots, int clustered, unsigned steps)
{
    struct umxd_addrmap m;
    struct ref *r = calloc(1, sizeof(*r));
    unsigned live = 0;
    assert_non_null(r);
    assert_int_equal(umxd_addrmap_init(&m, slots), 0);
    make_keys(&m, r, clustered);
    for (unsigned s = 0; s < steps; s++) {
        uint32_t k = rnd() % NKEYS;
        if (r->live[k]) {
            assert_int_equal(umxd_addrmap_del(&m, r->addr[k], k, key_of, r), 1);
            r->live[k] = 0;
            live--;
        } else if (live + 1 < slots) {
            umxd_addrmap_add(&m, r->addr[k], k);
            r->live[k] = 1;
            live++;
        }
        /* deleting what is not there changes nothing */
        if (!r->live[(k + 1) % NKEYS])
            assert_int_equal(
                umxd_addrmap_del(&m, r->addr[(k + 1) % NKEYS], (k + 1) % NKEYS, key_of, r), 0);
        check_all(&m, r);
    }
    /* empty it: no slot may be left behind */
    for (uint32_t k = 0; k < NKEYS; k++)
        if (r->live[k])
            assert_int_equal(umxd_addrmap_del(&m, r->addr[k], k, key_of, r), 1);
    for (uint32_t i = 0; i <= m.mask; i++)
        assert_int_equal(m.slot[i], 0);
    umxd_addrmap_free(&m);
    free(r);
}

static void test_spread(void **state)
{
    (void)state;
    run(1024, 0, 4000); /* up to 600 of 1024 slots: long runs anyway */
}

static void test_clustered_wrap(void **state)
{
    (void)state;
    run(1024, 1, 4000); /* every home slot in the last 5 or first 3 */
}

static void test_nearly_full(void **state)
{
    (void)state;
    run(1024, 0, 3000);
    {
        /* 600 keys in 1024 slots through the whole cycle, then a map just
         * big enough for them */
        struct umxd_addrmap m;
        assert_int_equal(umxd_addrmap_init(&m, 601), 0);
        assert_int_equal(m.mask, 1023u);
        umxd_addrmap_free(&m);
        assert_int_equal(umxd_addrmap_init(&m, 0), 0);
        assert_int_equal(m.mask, 1u);
        umxd_addrmap_free(&m);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_clustered_wrap),
        cmocka_unit_test(test_nearly_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
