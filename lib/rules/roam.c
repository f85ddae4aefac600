/*
 * roam.c - session keys for roaming clients; see roam.h for the protocol
 * details and how the daemon uses them.
 */
#include <errno.h>
#include <string.h>

#include "cursor.h"
#include "roam.h"

/* WireGuard message with the exact size of its type and reserved bytes 0. */
static int wg_type(const uint8_t *p, size_t n)
{
    if (n < 32 || p[1] || p[2] || p[3])
        return 0;
    switch (p[0]) {
    case 1:
        return n == 148 ? 1 : 0;
    case 2:
        return n == 92 ? 2 : 0;
    case 3:
        return n == 64 ? 3 : 0;
    case 4:
        return (n - 32) % 16 == 0 ? 4 : 0;
    default:
        return 0;
    }
}

/* QUIC long header: version and both connection ids (RFC 8999 layout). */
static int quic_long(const uint8_t *p, size_t n, struct umx_cur *dcid, struct umx_cur *scid)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t b0, l;
    uint32_t v;

    if (umx_cur_u8(&c, &b0) || !(b0 & 0x80) || umx_cur_u32(&c, &v) || v == 0)
        return -1;
    if (umx_cur_u8(&c, &l) || l > 20 || umx_cur_sub(&c, l, dcid))
        return -1;
    if (umx_cur_u8(&c, &l) || l > 20 || umx_cur_sub(&c, l, scid))
        return -1;
    return 0;
}

static int put(const uint8_t *src, size_t len, int k, uint8_t key[20], size_t *keylen, int *kind)
{
    memcpy(key, src, len);
    *keylen = len;
    *kind = k;
    return 1;
}

int umx_roam_key_client(const uint8_t *p, size_t n, size_t cid_len, uint8_t key[20], size_t *keylen,
                        int *kind)
{
    struct umx_cur dcid, scid;
    int t;

    if (!key || !keylen || !kind || cid_len > 20 || (n && !p))
        return -EINVAL;
    *keylen = 0;
    *kind = UMX_ROAM_NONE;
    if (n == 0)
        return 0;
    t = wg_type(p, n);
    if (t >= 2)
        return put(p + 4, 4, UMX_ROAM_WG, key, keylen, kind);
    if (t == 1)
        return 0; /* a new handshake: classify it instead */
    if (p[0] & 0x80) {
        if (quic_long(p, n, &dcid, &scid) || umx_cur_left(&dcid) == 0)
            return 0;
        return put(dcid.p, umx_cur_left(&dcid), UMX_ROAM_QUIC, key, keylen, kind);
    }
    if ((p[0] & 0xc0) == 0x40 && cid_len > 0 && n >= 1 + cid_len + 16)
        return put(p + 1, cid_len, UMX_ROAM_QUIC, key, keylen, kind);
    return 0;
}

int umx_roam_key_server(const uint8_t *p, size_t n, uint8_t key[20], size_t *keylen, int *kind)
{
    struct umx_cur dcid, scid;
    int t;

    if (!key || !keylen || !kind || (n && !p))
        return -EINVAL;
    *keylen = 0;
    *kind = UMX_ROAM_NONE;
    if (n == 0)
        return 0;
    t = wg_type(p, n);
    if (t == 1 || t == 2)
        return put(p + 4, 4, UMX_ROAM_WG, key, keylen, kind);
    if (t)
        return 0;
    if (p[0] & 0x80) {
        if (quic_long(p, n, &dcid, &scid) || umx_cur_left(&scid) == 0)
            return 0;
        return put(scid.p, umx_cur_left(&scid), UMX_ROAM_QUIC, key, keylen, kind);
    }
    return 0;
}
