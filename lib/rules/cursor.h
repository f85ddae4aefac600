/*
 * cursor.h - bounded reader over untrusted bytes. Every read checks the
 * remaining length first and fails (returns -1, leaves the cursor alone)
 * instead of reading past the end. Multi-byte fields are assembled byte by
 * byte, never read through a cast pointer.
 */
#ifndef UMX_CURSOR_H
#define UMX_CURSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct umx_cur {
    const uint8_t *p;
    const uint8_t *end;
};

static inline struct umx_cur umx_cur_make(const uint8_t *p, size_t n)
{
    struct umx_cur c = {p, p + n};
    return c;
}

static inline size_t umx_cur_left(const struct umx_cur *c)
{
    return (size_t)(c->end - c->p);
}

static inline int umx_cur_skip(struct umx_cur *c, size_t n)
{
    if (umx_cur_left(c) < n)
        return -1;
    c->p += n;
    return 0;
}

static inline int umx_cur_u8(struct umx_cur *c, uint8_t *v)
{
    if (umx_cur_left(c) < 1)
        return -1;
    *v = c->p[0];
    c->p += 1;
    return 0;
}

static inline int umx_cur_u16(struct umx_cur *c, uint16_t *v)
{
    if (umx_cur_left(c) < 2)
        return -1;
    *v = (uint16_t)((uint16_t)c->p[0] << 8 | c->p[1]);
    c->p += 2;
    return 0;
}

static inline int umx_cur_u24(struct umx_cur *c, uint32_t *v)
{
    if (umx_cur_left(c) < 3)
        return -1;
    *v = (uint32_t)c->p[0] << 16 | (uint32_t)c->p[1] << 8 | c->p[2];
    c->p += 3;
    return 0;
}

static inline int umx_cur_u32(struct umx_cur *c, uint32_t *v)
{
    if (umx_cur_left(c) < 4)
        return -1;
    *v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 | c->p[3];
    c->p += 4;
    return 0;
}

static inline int umx_cur_u64(struct umx_cur *c, uint64_t *v)
{
    uint32_t hi, lo;
    if (umx_cur_left(c) < 8)
        return -1;
    umx_cur_u32(c, &hi);
    umx_cur_u32(c, &lo);
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* Copies n bytes out. */
static inline int umx_cur_bytes(struct umx_cur *c, void *out, size_t n)
{
    if (umx_cur_left(c) < n)
        return -1;
    memcpy(out, c->p, n);
    c->p += n;
    return 0;
}

/* Splits off a sub-cursor of n bytes (for length-prefixed fields). */
static inline int umx_cur_sub(struct umx_cur *c, size_t n, struct umx_cur *sub)
{
    if (umx_cur_left(c) < n)
        return -1;
    sub->p = c->p;
    sub->end = c->p + n;
    c->p += n;
    return 0;
}

/* QUIC variable-length integer (RFC 9000 section 16). */
static inline int umx_cur_varint(struct umx_cur *c, uint64_t *v)
{
    uint8_t b0;
    size_t n, i;
    uint64_t x;
    if (umx_cur_left(c) < 1)
        return -1;
    b0 = c->p[0];
    n = (size_t)1 << (b0 >> 6);
    if (umx_cur_left(c) < n)
        return -1;
    x = b0 & 0x3f;
    for (i = 1; i < n; i++)
        x = x << 8 | c->p[i];
    c->p += n;
    *v = x;
    return 0;
}

/* Big-endian loads from a buffer the caller has already bounds-checked. */
static inline uint16_t umx_be16(const uint8_t *p)
{
    return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static inline uint32_t umx_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

#endif
