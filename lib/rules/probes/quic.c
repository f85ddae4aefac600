/*
 * quic.c - QUIC long-header packets (RFC 8999 invariants, RFC 9000 v1,
 * RFC 9369 v2, late IETF drafts), and routing by the TLS ClientHello inside
 * a client's Initial packets (RFC 9001 section 5: Initial keys are derived
 * from the client's Destination Connection ID and a public salt, so anyone
 * on the path can read the ClientHello).
 *
 * Without parameters (both directions): long header; a known version (the
 * fixed bit may be greased, RFC 9287), connection ids of at most 20 bytes, and per type:
 * Initial (token length + token, then Length), 0-RTT and Handshake (Length)
 * where Length covers at least a packet number and the 16-byte
 * header-protection sample and fits in the datagram (further coalesced
 * packets may follow); Retry with a token and a 16-byte integrity tag;
 * Version Negotiation (version 0) with a non-empty list of 4-byte versions;
 * a greased version (?a?a?a?a) only in a client datagram of >= 1200 bytes.
 * Short-header packets carry no length and no version, and their
 * connection id length is known only to the server: they are never matched
 * here. Flows are pinned on their first (long-header) packet; see
 * lib/rules/roam.h for learning connection ids.
 *
 * Parameters:
 *   sni=PATTERN   exact host name or *.suffix (one or more labels),
 *                 case-insensitive
 *   alpn=LIST     comma-separated, any-of
 * With either, only a client Initial (datagram >= 1200 bytes, as RFC 9000
 * section 14.1 requires) of v1, v2 or the v2 draft codepoint can match: header protection is
 * removed (AES-128-ECB), the payload opened (AES-128-GCM), CRYPTO frames
 * are reassembled in offset order (overlaps must agree byte for byte, or
 * the flow is refused: a classifier that picks one of two conflicting
 * copies can be steered), and the ClientHello's server_name and ALPN
 * extensions are compared. A ClientHello that does not fit in one datagram
 * is reassembled across datagrams in the caller's umx_probe_state (bounded:
 * max_pending flows of at most QUIC_MAX_HELLO bytes, entries expire after
 * QUIC_PENDING_NS); the probe returns UMX_MORE until it can decide. Without
 * a state it decides on the prefix one datagram holds and says no match
 * when the SNI (or ALPN) is not in it.
 */
#include <netinet/in.h>
#include <stdlib.h>

#include <openssl/crypto.h>

#include "common.h"
#include "../roam.h"
#include "crypto.h"

#define FIRST(b) ((b) >= 0x80)

#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu
#define QUIC_V2_DRAFT 0x709a50c4u

/* Largest ClientHello we reassemble (post-quantum key shares make them
 * about 1.8 KiB; 8 KiB leaves room for ECH and many extensions). */
#define QUIC_MAX_HELLO 8192
/* A pending split ClientHello is forgotten this long after its last
 * datagram (clients resend Initials after about 1 s if unanswered). */
#define QUIC_PENDING_NS 3000000000ull
#define QUIC_MAX_PENDING 4096

enum { PT_INITIAL, PT_0RTT, PT_HANDSHAKE, PT_RETRY, PT_VN };

struct qhdr {
    uint32_t version;
    int type;
    const uint8_t *dcid;
    uint8_t dcid_len;
    size_t pn_off;  /* offset of the packet number */
    size_t pkt_len; /* bytes of this packet (for coalescing) */
};

/* Reassembly of the CRYPTO stream's first QUIC_MAX_HELLO bytes. */
struct cbuf {
    uint8_t data[QUIC_MAX_HELLO];
    uint8_t map[QUIC_MAX_HELLO / 8];
};

struct quic_pending {
    int used;
    uint32_t version;
    uint8_t dcid_len;
    uint8_t dcid[20];
    uint8_t peer_len;
    uint8_t peer[18]; /* address + port of the client, if the caller gave one */
    uint64_t last_ns;
    struct cbuf buf;
};

struct umx_probe_state {
    unsigned n;
    struct quic_pending *pend;
};

/* Per-thread working memory (in the crypto.c scratch block). */
struct qscratch {
    struct cbuf buf;
    /* One-entry cache of derived keys: several quic rules usually look at
     * the same datagram one after the other. */
    int key_valid;
    uint32_t key_version;
    uint8_t key_dcid_len;
    uint8_t key_dcid[20];
    uint8_t key[16], iv[12], hp[16];
    uint8_t plain[UMX_SCRATCH_SIZE - sizeof(struct cbuf) - 128];
};

_Static_assert(sizeof(struct qscratch) <= UMX_SCRATCH_SIZE, "scratch too small");

struct quic_params {
    struct umx_name_pat sni;
    int has_sni;
    struct umx_alpn_list alpn;
    int has_alpn;
};

static int version_known(uint32_t v)
{
    return v == QUIC_V1 || v == QUIC_V2 || v == QUIC_V2_DRAFT ||
           (v >= 0xff00001du && v <= 0xff000022u);
}

static int is_v2(uint32_t v)
{
    return v == QUIC_V2 || v == QUIC_V2_DRAFT;
}

/* Parses one long-header packet at p (n bytes left in the datagram).
 * Returns 0 and fills h, or -1. */
static int parse_long(const uint8_t *p, size_t n, size_t dgram_len, struct qhdr *h)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t b0, dl, sl;
    uint32_t v;
    unsigned bits;

    if (umx_cur_u8(&c, &b0) || !(b0 & 0x80) || umx_cur_u32(&c, &v) || umx_cur_u8(&c, &dl))
        return -1;
    h->version = v;
    h->dcid = c.p;
    h->dcid_len = dl;
    if (v == 0) {
        /* Version Negotiation: CIDs up to 255 bytes (invariants), then a
         * list of versions, none of them 0. */
        if (umx_cur_skip(&c, dl) || umx_cur_u8(&c, &sl) || umx_cur_skip(&c, sl))
            return -1;
        if (umx_cur_left(&c) < 4 || (umx_cur_left(&c) & 3))
            return -1;
        for (const uint8_t *q = c.p; q < c.end; q += 4)
            if (umx_be32(q) == 0)
                return -1;
        h->type = PT_VN;
        h->pkt_len = n;
        return 0;
    }
    if (dl > 20 || umx_cur_skip(&c, dl) || umx_cur_u8(&c, &sl) || sl > 20 || umx_cur_skip(&c, sl))
        return -1;
    if (!version_known(v)) {
        /* Greased versions (RFC 9000 section 15) force Version Negotiation;
         * only a padded client Initial would carry one. */
        if ((v & 0x0f0f0f0fu) != 0x0a0a0a0au || dgram_len < 1200)
            return -1;
        h->type = PT_INITIAL;
        h->pkt_len = n;
        h->pn_off = 0;
        return 0;
    }
    /* The fixed bit (0x40) is not checked: a peer that received the
     * grease_quic_bit transport parameter (RFC 9287) clears it at random,
     * and ngtcp2 servers do so from their first Initial on (seen in our
     * captures: 8a 00000001 ...). The 32-bit version is the anchor. */
    bits = (b0 >> 4) & 3;
    if (is_v2(v))
        h->type = bits == 0 ? PT_RETRY : (int)bits - 1;
    else
        h->type = (int)bits;
    if (h->type == PT_RETRY) {
        /* token (at least one byte) + integrity tag */
        if (umx_cur_left(&c) < 17)
            return -1;
        h->pkt_len = n;
        return 0;
    }
    if (h->type == PT_INITIAL) {
        uint64_t tl;
        if (umx_cur_varint(&c, &tl) || tl > umx_cur_left(&c) || umx_cur_skip(&c, (size_t)tl))
            return -1;
    }
    {
        uint64_t len;
        if (umx_cur_varint(&c, &len) || len < 20 || len > umx_cur_left(&c))
            return -1;
        h->pn_off = (size_t)(c.p - p);
        h->pkt_len = h->pn_off + (size_t)len;
    }
    return 0;
}

/* Structural check of the datagram: the first packet must parse, and
 * packets coalesced after it must parse too (they are long-header packets
 * by RFC 9000 section 12.2; a short-header packet may only come last, and
 * some stacks pad with zeros, which we accept as the tail). */
static int quic_struct(const uint8_t *p, size_t n, struct qhdr *first)
{
    size_t off = 0;

    if (n < 7 || parse_long(p, n, n, first))
        return 0;
    off = first->pkt_len;
    for (int i = 0; i < 8 && off < n; i++) {
        struct qhdr h;
        if (!(p[off] & 0x80))
            return 1; /* short header or padding: not ours to judge */
        if (parse_long(p + off, n - off, n, &h) || h.type == PT_VN || h.version != first->version)
            return 0;
        off += h.pkt_len;
    }
    return 1;
}

/* ---- Initial decryption ------------------------------------------------- */

static const uint8_t salt_v1[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                    0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
static const uint8_t salt_v2[20] = {0x0d, 0xed, 0xe3, 0xde, 0xf7, 0x00, 0xa6, 0xdb, 0x81, 0x93,
                                    0x81, 0xbe, 0x6e, 0x26, 0x9d, 0xcb, 0xf9, 0xbd, 0x2e, 0xd9};

/* The v2 draft codepoint (draft-ietf-quic-v2-01..-10) had its own salt; the
 * labels were already "quicv2 ...". Verified on ngtcp2 0.12 Initials. */
static const uint8_t salt_v2_draft[20] = {0xa7, 0x07, 0xc2, 0x03, 0xa5, 0x9b, 0x47,
                                          0x18, 0x4a, 0x1d, 0x62, 0xca, 0x57, 0x04,
                                          0x06, 0xea, 0x7a, 0xe3, 0xe5, 0xd3};

static int derive_keys(struct qscratch *s, uint32_t version, const uint8_t *dcid, uint8_t dl)
{
    uint8_t initial[32], client[32];
    int v2 = is_v2(version);
    const uint8_t *salt = version == QUIC_V2_DRAFT ? salt_v2_draft : v2 ? salt_v2 : salt_v1;
    int r = -1;

    if (s->key_valid && s->key_version == version && s->key_dcid_len == dl &&
        memcmp(s->key_dcid, dcid, dl) == 0)
        return 0;
    s->key_valid = 0;
    if (umx_hkdf_extract(salt, 20, dcid, dl, initial) ||
        umx_hkdf_expand_label(initial, "client in", client, 32) ||
        umx_hkdf_expand_label(client, v2 ? "quicv2 key" : "quic key", s->key, 16) ||
        umx_hkdf_expand_label(client, v2 ? "quicv2 iv" : "quic iv", s->iv, 12) ||
        umx_hkdf_expand_label(client, v2 ? "quicv2 hp" : "quic hp", s->hp, 16))
        goto out;
    s->key_valid = 1;
    s->key_version = version;
    s->key_dcid_len = dl;
    memcpy(s->key_dcid, dcid, dl);
    r = 0;
out:
    OPENSSL_cleanse(initial, sizeof(initial));
    OPENSSL_cleanse(client, sizeof(client));
    return r;
}

/* Removes header protection and opens the payload of the Initial packet
 * pkt (h parsed from it) into s->plain; returns the plaintext length or
 * -1. */
static long open_initial(struct qscratch *s, const uint8_t *pkt, const struct qhdr *h)
{
    uint8_t mask[16], b0, pn[4], nonce[12];
    size_t pn_len, ct_len, plen = h->pkt_len - h->pn_off;

    if (derive_keys(s, h->version, h->dcid, h->dcid_len))
        return -1;
    /* The sample starts 4 bytes after the packet number field. */
    if (umx_aes128_ecb(s->hp, pkt + h->pn_off + 4, mask))
        return -1;
    b0 = (uint8_t)(pkt[0] ^ (mask[0] & 0x0f));
    if (b0 & 0x0c)
        return -1; /* reserved bits must be zero once unmasked */
    pn_len = (size_t)(b0 & 3) + 1;
    if (plen < pn_len + 16 + 1)
        return -1;
    memcpy(nonce, s->iv, 12);
    for (size_t i = 0; i < pn_len; i++) {
        pn[i] = (uint8_t)(pkt[h->pn_off + i] ^ mask[1 + i]);
        /* The packet number is left-padded to the nonce size and XORed. */
        nonce[12 - pn_len + i] ^= pn[i];
    }
    ct_len = plen - pn_len - 16;
    if (ct_len > sizeof(s->plain))
        return -1;
    if (umx_aes128_gcm_open(s->key, nonce, &b0, 1, pkt + 1, h->pn_off - 1, pn, pn_len,
                            pkt + h->pn_off + pn_len, ct_len, pkt + h->pn_off + pn_len + ct_len,
                            s->plain))
        return -1;
    return (long)ct_len;
}

/* ---- CRYPTO reassembly -------------------------------------------------- */

static int cbuf_add(struct cbuf *b, uint64_t off, const uint8_t *p, size_t n)
{
    if (off >= QUIC_MAX_HELLO)
        return 0; /* beyond what we keep: irrelevant unless the hello is
                   * that large, which the length check refuses later */
    if (n > QUIC_MAX_HELLO - off)
        n = QUIC_MAX_HELLO - (size_t)off;
    for (size_t i = 0; i < n;) {
        size_t k = (size_t)off + i;
        uint8_t bit = (uint8_t)(1u << (k & 7));
        /* Fast path: 8 aligned bytes not seen before. */
        if ((k & 7) == 0 && n - i >= 8 && b->map[k >> 3] == 0) {
            memcpy(b->data + k, p + i, 8);
            b->map[k >> 3] = 0xff;
            i += 8;
            continue;
        }
        if (b->map[k >> 3] & bit) {
            if (b->data[k] != p[i])
                return -1; /* conflicting retransmission: refuse the flow */
        } else {
            b->map[k >> 3] |= bit;
            b->data[k] = p[i];
        }
        i++;
    }
    return 0;
}

/* Length of the contiguous prefix received, up to lim. */
static size_t cbuf_prefix(const struct cbuf *b, size_t lim)
{
    size_t k = 0;
    while (k < lim && (k & 7) == 0 && k + 8 <= lim && b->map[k >> 3] == 0xff)
        k += 8;
    while (k < lim && (b->map[k >> 3] >> (k & 7)) & 1)
        k++;
    return k;
}

/* Walks the frames of a decrypted Initial payload and feeds CRYPTO data
 * into b. Returns 0, or -1 for a malformed payload or a conflict. */
static int walk_frames(const uint8_t *p, size_t n, struct cbuf *b)
{
    struct umx_cur c = umx_cur_make(p, n);

    /* Each frame consumes at least one byte. */
    while (umx_cur_left(&c)) {
        uint64_t t, a, x, cnt, off, len;
        if (umx_cur_varint(&c, &t))
            return -1;
        switch (t) {
        case 0x00: /* PADDING: usually hundreds of them, skip the run */
            while (c.p < c.end && *c.p == 0)
                c.p++;
            break;
        case 0x01: /* PING */
            break;
        case 0x02:
        case 0x03: /* ACK: largest, delay, range count, first range, ranges */
            if (umx_cur_varint(&c, &a) || umx_cur_varint(&c, &a) || umx_cur_varint(&c, &cnt) ||
                umx_cur_varint(&c, &a) || cnt > umx_cur_left(&c))
                return -1;
            for (uint64_t i = 0; i < cnt; i++)
                if (umx_cur_varint(&c, &a) || umx_cur_varint(&c, &x))
                    return -1;
            if (t == 0x03 &&
                (umx_cur_varint(&c, &a) || umx_cur_varint(&c, &a) || umx_cur_varint(&c, &a)))
                return -1;
            break;
        case 0x06: /* CRYPTO */
            if (umx_cur_varint(&c, &off) || umx_cur_varint(&c, &len) || len > umx_cur_left(&c))
                return -1;
            if (cbuf_add(b, off, c.p, (size_t)len))
                return -1;
            umx_cur_skip(&c, (size_t)len);
            break;
        case 0x1c: /* CONNECTION_CLOSE: nothing after it matters */
            return 0;
        default:
            return -1; /* not allowed in an Initial packet */
        }
    }
    return 0;
}

/* ---- decision ------------------------------------------------------------ */

enum { DEC_NO = 0, DEC_YES = 1, DEC_UNKNOWN = 2 };

static int decide(const struct quic_params *qp, const struct cbuf *b)
{
    size_t have = cbuf_prefix(b, QUIC_MAX_HELLO), total;
    struct umx_hello h;
    int r, sni_ok = -1, alpn_ok = -1;

    if (have < 4)
        return DEC_UNKNOWN;
    if (b->data[0] != 1)
        return DEC_NO; /* the client's first CRYPTO message is a ClientHello */
    total = 4 + ((size_t)b->data[1] << 16 | (size_t)b->data[2] << 8 | b->data[3]);
    if (total > QUIC_MAX_HELLO)
        return DEC_NO;
    if (have > total)
        have = total;
    r = umx_tls_parse_hello(b->data + 4, have - 4, 0, have < total, &h);
    if (r < 0)
        return DEC_NO;
    if (qp->has_sni && h.sni)
        sni_ok = umx_name_pat_match(&qp->sni, h.sni, h.sni_len);
    if (qp->has_alpn && h.has_alpn)
        alpn_ok = umx_alpn_match(&qp->alpn, h.alpn, h.alpn_len);
    if (sni_ok == 0 || alpn_ok == 0)
        return DEC_NO;
    if (r == 0) {
        /* Complete: a missing extension is a definite no. */
        return ((!qp->has_sni || sni_ok == 1) && (!qp->has_alpn || alpn_ok == 1)) ? DEC_YES
                                                                                  : DEC_NO;
    }
    if ((!qp->has_sni || sni_ok == 1) && (!qp->has_alpn || alpn_ok == 1))
        return DEC_YES;
    return DEC_UNKNOWN;
}

static size_t peer_key(const struct sockaddr *sa, uint8_t out[18])
{
    /* Copy into the right type instead of casting the caller's pointer. */
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        memcpy(out, &sin.sin_port, 2);
        memcpy(out + 2, &sin.sin_addr, 4);
        return 6;
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(out, &sin6.sin6_port, 2);
        memcpy(out + 2, &sin6.sin6_addr, 16);
        return 18;
    }
    return 0;
}

static struct quic_pending *pending_find(struct umx_probe_state *st, const struct qhdr *h,
                                         const uint8_t *pk, size_t pkl, uint64_t now)
{
    for (unsigned i = 0; i < st->n; i++) {
        struct quic_pending *e = &st->pend[i];
        if (!e->used)
            continue;
        if (now - e->last_ns > QUIC_PENDING_NS) {
            e->used = 0;
            continue;
        }
        if (e->version == h->version && e->dcid_len == h->dcid_len &&
            memcmp(e->dcid, h->dcid, h->dcid_len) == 0 && e->peer_len == pkl &&
            memcmp(e->peer, pk, pkl) == 0)
            return e;
    }
    return NULL;
}

static struct quic_pending *pending_new(struct umx_probe_state *st, const struct qhdr *h,
                                        const uint8_t *pk, size_t pkl, uint64_t now)
{
    struct quic_pending *victim = NULL;

    /* A free slot, else the least recently used one: a flood of fake
     * Initials can evict real pending flows, but never grow memory. */
    for (unsigned i = 0; i < st->n; i++) {
        struct quic_pending *e = &st->pend[i];
        if (!e->used) {
            victim = e;
            break;
        }
        if (!victim || e->last_ns < victim->last_ns)
            victim = e;
    }
    if (!victim)
        return NULL;
    victim->used = 1;
    victim->version = h->version;
    victim->dcid_len = h->dcid_len;
    memcpy(victim->dcid, h->dcid, h->dcid_len);
    victim->peer_len = (uint8_t)pkl;
    memcpy(victim->peer, pk, pkl);
    victim->last_ns = now;
    return victim;
}

static int quic_keyed(const struct quic_params *qp, const struct umx_probe_in *in,
                      const struct qhdr *first)
{
    struct qscratch *s = umx_thread_scratch();
    struct quic_pending *e = NULL;
    struct cbuf *b;
    uint8_t pk[18];
    size_t pkl, off = 0;
    int d, any = 0;

    if (!s || first->type != PT_INITIAL || in->len < 1200 ||
        (first->version != QUIC_V1 && !is_v2(first->version)))
        return UMX_NOMATCH;
    pkl = peer_key(in->peer, pk);
    if (in->state)
        e = pending_find(in->state, first, pk, pkl, in->now_ns);
    if (e) {
        b = &e->buf;
    } else {
        b = &s->buf;
        memset(b->map, 0, sizeof(b->map));
    }
    /* Every Initial packet of the datagram (usually one). */
    for (int i = 0; i < 8 && off < in->len && (in->data[off] & 0x80); i++) {
        struct qhdr h;
        long pl;
        if (parse_long(in->data + off, in->len - off, in->len, &h))
            break;
        if (h.type == PT_INITIAL && h.version == first->version && h.dcid_len == first->dcid_len &&
            memcmp(h.dcid, first->dcid, h.dcid_len) == 0) {
            pl = open_initial(s, in->data + off, &h);
            if (pl < 0 || walk_frames(s->plain, (size_t)pl, b)) {
                if (e)
                    e->used = 0; /* a forged or conflicting packet: drop the flow */
                return UMX_NOMATCH;
            }
            any = 1;
        }
        off += h.pkt_len;
    }
    if (!any)
        return UMX_NOMATCH;
    d = decide(qp, b);
    if (d != DEC_UNKNOWN) {
        /* Keep a pending entry until it expires: other rules with other
         * parameters will ask about the same datagrams. */
        if (e)
            e->last_ns = in->now_ns;
        return d == DEC_YES ? UMX_MATCH : UMX_NOMATCH;
    }
    if (!in->state)
        return UMX_NOMATCH;
    if (!e) {
        e = pending_new(in->state, first, pk, pkl, in->now_ns);
        if (!e)
            return UMX_NOMATCH;
        memcpy(&e->buf, b, sizeof(*b));
    }
    e->last_ns = in->now_ns;
    return UMX_MORE;
}

static int quic_match(const void *params, const struct umx_probe_in *in)
{
    const struct quic_params *qp = params;
    struct qhdr first;

    if (!quic_struct(in->data, in->len, &first))
        return UMX_NOMATCH;
    if (!qp || (!qp->has_sni && !qp->has_alpn))
        return UMX_MATCH;
    return quic_keyed(qp, in, &first);
}

/* ---- state ------------------------------------------------------------- */

int umx_quic_state_new(struct umx_probe_state **out, unsigned max_pending);
void umx_quic_state_free(struct umx_probe_state *st);

int umx_quic_state_new(struct umx_probe_state **out, unsigned max_pending)
{
    struct umx_probe_state *st;

    if (!out || max_pending == 0 || max_pending > QUIC_MAX_PENDING)
        return -EINVAL;
    st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    st->pend = calloc(max_pending, sizeof(*st->pend));
    if (!st->pend) {
        free(st);
        return -ENOMEM;
    }
    st->n = max_pending;
    *out = st;
    return 0;
}

void umx_quic_state_free(struct umx_probe_state *st)
{
    if (!st)
        return;
    free(st->pend);
    free(st);
}

/* ---- parameters ---------------------------------------------------------- */

static void quic_params_free(void *params)
{
    struct quic_params *qp = params;
    if (!qp)
        return;
    umx_name_pat_free(&qp->sni);
    free(qp);
}

static int quic_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err,
                           size_t errlen)
{
    struct quic_params *qp = calloc(1, sizeof(*qp));
    int r;

    if (!qp)
        return -ENOMEM;
    for (size_t i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, "sni") == 0 && !qp->has_sni) {
            r = umx_name_pat_parse(&qp->sni, kv[i].val, err, errlen);
            if (r)
                goto fail;
            qp->has_sni = 1;
        } else if (strcmp(kv[i].key, "alpn") == 0 && !qp->has_alpn) {
            r = umx_alpn_parse(&qp->alpn, kv[i].val, err, errlen);
            if (r)
                goto fail;
            qp->has_alpn = 1;
        } else {
            umx_perr(err, errlen, "unknown or repeated parameter '%s'", kv[i].key);
            r = -EINVAL;
            goto fail;
        }
    }
    *out = qp;
    return 0;
fail:
    quic_params_free(qp);
    return r;
}

const struct umx_probe umx_probe_quic = {
    .name = "quic",
    .match = quic_match,
    .params_new = quic_params_new,
    .params_free = quic_params_free,
    .first = UMX_FIRST_PRED(FIRST),
    .roam = UMX_ROAM_P_QUIC,
};
