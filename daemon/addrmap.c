/*
 * addrmap.c - see addrmap.h.
 */
#include "addrmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* The daemon's addresses come from a keyed hash of the peer, so a plain
 * mix is enough: nobody outside can aim at one probe run. */
uint32_t umxd_addrmap_home(const struct umxd_addrmap *m, const uint8_t a[16])
{
    uint64_t x, y;
    memcpy(&x, a, 8);
    memcpy(&y, a + 8, 8);
    x ^= y * 0x9e3779b97f4a7c15ull;
    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 29;
    return (uint32_t)x & m->mask;
}

int umxd_addrmap_init(struct umxd_addrmap *m, uint32_t min_slots)
{
    uint32_t sz = 2;
    while (sz < min_slots && sz < (1u << 30))
        sz <<= 1;
    m->slot = calloc(sz, sizeof(*m->slot));
    if (!m->slot)
        return -ENOMEM;
    m->mask = sz - 1;
    return 0;
}

void umxd_addrmap_free(struct umxd_addrmap *m)
{
    free(m->slot);
    m->slot = NULL;
    m->mask = 0;
}

static int key_is(uint32_t stored, const uint8_t a[16], umxd_addrmap_key_fn *key, void *ctx)
{
    uint8_t b[16];
    return key(stored - 1, b, ctx) == 0 && memcmp(a, b, 16) == 0;
}

int umxd_addrmap_find(const struct umxd_addrmap *m, const uint8_t a[16], umxd_addrmap_key_fn *key,
                      void *ctx, uint32_t *val)
{
    for (uint32_t i = umxd_addrmap_home(m, a);; i = (i + 1) & m->mask) {
        uint32_t v = m->slot[i];
        if (!v)
            return 0;
        if (key_is(v, a, key, ctx)) {
            *val = v - 1;
            return 1;
        }
    }
}

void umxd_addrmap_add(struct umxd_addrmap *m, const uint8_t a[16], uint32_t val)
{
    uint32_t i = umxd_addrmap_home(m, a);
    while (m->slot[i])
        i = (i + 1) & m->mask;
    m->slot[i] = val + 1;
}

int umxd_addrmap_del(struct umxd_addrmap *m, const uint8_t a[16], uint32_t val,
                     umxd_addrmap_key_fn *key, void *ctx)
{
    uint32_t i = umxd_addrmap_home(m, a), j;
    while (m->slot[i] != val + 1) {
        if (!m->slot[i])
            return 0;
        i = (i + 1) & m->mask;
    }
    /* Shift later members of the probe run back into the hole when their
     * home slot does not lie cyclically in (hole, their position]: a later
     * lookup must still meet them before an empty slot. */
    j = i;
    for (;;) {
        uint8_t b[16];
        uint32_t k;
        j = (j + 1) & m->mask;
        if (!m->slot[j])
            break;
        if (key(m->slot[j] - 1, b, ctx) != 0)
            continue; /* unknown value: leave it where it is */
        k = umxd_addrmap_home(m, b);
        if (i <= j ? (k <= i || k > j) : (k <= i && k > j)) {
            m->slot[i] = m->slot[j];
            i = j;
        }
    }
    m->slot[i] = 0;
    return 1;
}
