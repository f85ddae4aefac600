/*
 * roam.c - session keys for roaming clients; see roam.h for the protocol
 * details and how the daemon uses them.
 */
#include <errno.h>
#include <string.h>

#include "cursor.h"
#include "roam.h"

#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu
#define QUIC_V2_DRAFT 0x709a50c4u

/* Packet types in RFC 9000 terms; v2 numbers them differently on the wire. */
enum { PT_INITIAL, PT_0RTT, PT_HANDSHAKE, PT_RETRY };

/* OpenVPN opcodes (byte 0 >> 3). */
#define OP_SOFT_RESET_V1 3
#define OP_CONTROL_V1 4
#define OP_ACK_V1 5
#define OP_HARD_RESET_CLIENT_V2 7
#define OP_DATA_V2 9
#define OP_HARD_RESET_CLIENT_V3 10
#define OP_CONTROL_WKC_V1 11

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

/* The same versions the quic probe accepts (lib/rules/probes/quic.c), minus
 * greased ones: those only appear in a client Initial that forces Version
 * Negotiation, and the session that follows uses a real version. None of
 * them can be the bytes 1-4 of a DNS reply (byte 2 has the QR bit). */
static int quic_version_known(uint32_t v)
{
    return v == QUIC_V1 || v == QUIC_V2 || v == QUIC_V2_DRAFT ||
           (v >= 0xff00001du && v <= 0xff000022u);
}

/*
 * The first packet of a datagram as a QUIC long header of a known version
 * whose lengths hold (RFC 9000 section 17.2): connection ids of at most 20
 * bytes; Initial: token length and token, then Length; 0-RTT and Handshake:
 * Length, covering at least a packet number and the 16-byte header
 * protection sample (20 bytes) and not running past the datagram; Retry: a
 * token and the 16-byte integrity tag. Returns the RFC 9000 packet type, or
 * -1. The fixed bit is not checked (RFC 9287 lets it be greased here too).
 */
static int quic_long(const uint8_t *p, size_t n, struct umx_cur *dcid, struct umx_cur *scid)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t b0, l;
    uint32_t v;
    uint64_t len;
    int type;

    if (umx_cur_u8(&c, &b0) || !(b0 & 0x80) || umx_cur_u32(&c, &v) || !quic_version_known(v))
        return -1;
    if (umx_cur_u8(&c, &l) || l > 20 || umx_cur_sub(&c, l, dcid))
        return -1;
    if (umx_cur_u8(&c, &l) || l > 20 || umx_cur_sub(&c, l, scid))
        return -1;
    type = (b0 >> 4) & 3;
    if (v == QUIC_V2 || v == QUIC_V2_DRAFT)
        type = type == 0 ? PT_RETRY : type - 1;
    if (type == PT_RETRY)
        return umx_cur_left(&c) >= 17 ? PT_RETRY : -1;
    if (type == PT_INITIAL) {
        uint64_t tl;
        if (umx_cur_varint(&c, &tl) || tl > umx_cur_left(&c) || umx_cur_skip(&c, (size_t)tl))
            return -1;
    }
    if (umx_cur_varint(&c, &len) || len < 20 || len > umx_cur_left(&c))
        return -1;
    return type;
}

static int put(const uint8_t *src, size_t len, int k, uint8_t *key, size_t *keylen, int *kind)
{
    memcpy(key, src, len);
    *keylen = len;
    *kind = k;
    return 1;
}

static int quic_key(const uint8_t *p, size_t n, enum umx_roam_dir dir, unsigned protos,
                    size_t cid_len, int grease_ok, uint8_t *key, size_t *keylen, int *kind)
{
    struct umx_cur dcid, scid;
    int t;

    if (p[0] & 0x80) {
        t = quic_long(p, n, &dcid, &scid);
        if (dir == UMX_ROAM_FROM_SERVER) {
            /* a server never sends 0-RTT */
            if (t < 0 || t == PT_0RTT || umx_cur_left(&scid) < UMX_ROAM_MIN_CID)
                return 0;
            return put(scid.p, umx_cur_left(&scid), UMX_ROAM_QUIC, key, keylen, kind);
        }
        /* a client never sends Retry */
        if (t < 0 || t == PT_RETRY || umx_cur_left(&dcid) < UMX_ROAM_MIN_CID)
            return 0;
        return put(dcid.p, umx_cur_left(&dcid), UMX_ROAM_QUIC, key, keylen, kind);
    }
    /* Short header: only towards the server, where the id length is what
     * the server chose. A greased fixed bit leaves nothing to check but the
     * length, so that takes a route that is QUIC for sure. */
    if (dir != UMX_ROAM_FROM_CLIENT || cid_len < UMX_ROAM_MIN_CID || n < 1 + cid_len + 20)
        return 0;
    if (!(p[0] & 0x40) && !(grease_ok && (protos & UMX_ROAM_P_QUIC)))
        return 0;
    return put(p + 1, cid_len, UMX_ROAM_QUIC, key, keylen, kind);
}

static int ovpn_key(const uint8_t *p, size_t n, enum umx_roam_dir dir, uint8_t *key, size_t *keylen,
                    int *kind)
{
    static const uint8_t zero[8];
    unsigned op = p[0] >> 3;

    if (op == OP_DATA_V2) {
        /* op | peer-id(3) | packet id(4) | AEAD tag(16) | payload; 0xffffff
         * is "no peer-id assigned" */
        if (n < 4 + 4 + 16 || (p[1] == 0xff && p[2] == 0xff && p[3] == 0xff))
            return 0;
        return put(p + 1, 3, UMX_ROAM_OVPN_PEER, key, keylen, kind);
    }
    if (dir != UMX_ROAM_FROM_CLIENT)
        return 0;
    switch (op) {
    case OP_SOFT_RESET_V1:
    case OP_CONTROL_V1:
    case OP_ACK_V1:
    case OP_HARD_RESET_CLIENT_V2:
    case OP_HARD_RESET_CLIENT_V3:
    case OP_CONTROL_WKC_V1:
        break;
    default:
        return 0;
    }
    /* op | session(8) | ack count(1) | packet id or ack id(4), the least
     * any of the three wire layouts has */
    if (n < 14 || memcmp(p + 1, zero, 8) == 0)
        return 0;
    return put(p + 1, 8, UMX_ROAM_OVPN_SID, key, keylen, kind);
}

static int roam_key(const uint8_t *p, size_t n, enum umx_roam_dir dir, unsigned protos,
                    size_t cid_len, int grease_ok, uint8_t *key, size_t *keylen, int *kind)
{
    int t;

    if (!key || !keylen || !kind || cid_len > 20 || (n && !p))
        return -EINVAL;
    *keylen = 0;
    *kind = UMX_ROAM_NONE;
    if (n == 0 || (dir != UMX_ROAM_FROM_SERVER && dir != UMX_ROAM_FROM_CLIENT))
        return 0;
    if (protos & UMX_ROAM_P_WG) {
        t = wg_type(p, n);
        /* from the server: its own handshake messages name its index;
         * from the client: everything but the initiation names the
         * server's index as receiver */
        if (dir == UMX_ROAM_FROM_SERVER ? (t == 1 || t == 2) : t >= 2)
            return put(p + 4, 4, UMX_ROAM_WG, key, keylen, kind);
        if (t)
            return 0;
    }
    if (protos & UMX_ROAM_P_QUIC) {
        int r = quic_key(p, n, dir, protos, cid_len, grease_ok, key, keylen, kind);
        if (r)
            return r;
    }
    if (protos & UMX_ROAM_P_OPENVPN)
        return ovpn_key(p, n, dir, key, keylen, kind);
    return 0;
}

int umx_roam_key(const uint8_t *p, size_t n, enum umx_roam_dir dir, unsigned protos, size_t cid_len,
                 uint8_t key[UMX_ROAM_KEY_MAX], size_t *keylen, int *kind)
{
    return roam_key(p, n, dir, protos, cid_len, 1, key, keylen, kind);
}

int umx_roam_key_client(const uint8_t *p, size_t n, size_t cid_len, uint8_t key[20], size_t *keylen,
                        int *kind)
{
    return roam_key(p, n, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_QUIC | UMX_ROAM_P_WG, cid_len, 0, key,
                    keylen, kind);
}

int umx_roam_key_server(const uint8_t *p, size_t n, uint8_t key[20], size_t *keylen, int *kind)
{
    return roam_key(p, n, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_QUIC | UMX_ROAM_P_WG, 0, 0, key, keylen,
                    kind);
}
