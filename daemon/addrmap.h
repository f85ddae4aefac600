/*
 * addrmap.h - an open-addressing map from a 16-byte address to a 32-bit
 * value, for `upstream = shared` (a reply's destination address -> its
 * flow). Pure: no I/O, no clock, no allocation after init.
 *
 * Only values are stored (4 bytes a slot): the caller's key callback gives
 * the address a stored value belongs to (the flow's own source address), so
 * the map never holds a second copy that could go stale. Linear probing
 * with backward-shift deletion, so lookups need no tombstones. The caller
 * keeps the number of entries below the number of slots (the daemon sizes
 * the map at twice its flow table), so every probe run ends at an empty
 * slot.
 */
#ifndef UMXD_ADDRMAP_H
#define UMXD_ADDRMAP_H

#include <stdint.h>

struct umxd_addrmap {
    uint32_t *slot; /* value + 1; 0 = empty */
    uint32_t mask;  /* slots - 1 */
};

/* Writes the address that stored value val belongs to; returns 0, or -1 if
 * val is unknown (then it matches no address). */
typedef int umxd_addrmap_key_fn(uint32_t val, uint8_t out[16], void *ctx);

/* At least min_slots slots (rounded up to a power of two, at least 2).
 * calloc'd: untouched pages cost no memory. Returns 0 or -ENOMEM. */
int umxd_addrmap_init(struct umxd_addrmap *m, uint32_t min_slots);
void umxd_addrmap_free(struct umxd_addrmap *m);

/* Looks a up: 1 and *val if present, 0 if not. */
int umxd_addrmap_find(const struct umxd_addrmap *m, const uint8_t a[16], umxd_addrmap_key_fn *key,
                      void *ctx, uint32_t *val);
/* Adds a -> val (a must not be present; val < UINT32_MAX). */
void umxd_addrmap_add(struct umxd_addrmap *m, const uint8_t a[16], uint32_t val);
/* Removes the entry a -> val; returns 1, or 0 if it was not there. */
int umxd_addrmap_del(struct umxd_addrmap *m, const uint8_t a[16], uint32_t val,
                     umxd_addrmap_key_fn *key, void *ctx);
/* The slot a probe for a starts at (exposed for tests). */
uint32_t umxd_addrmap_home(const struct umxd_addrmap *m, const uint8_t a[16]);

#endif
