/*
 * dtls.c - DTLS 1.0/1.2 records (RFC 6347) and DTLS 1.3 (RFC 9147).
 *
 * A DTLS datagram is one or more records that tile it exactly. A plaintext
 * record header is type(1) version(2) epoch(2) sequence(6) length(2). We
 * accept types 20-24 and 26 (25, tls12_cid, carries a connection id of a
 * length only the endpoints know) and versions fe ff / fe fd. In epoch 0 the
 * payload of a handshake record is readable, so its handshake header is
 * checked too: known message type, fragment inside the message, fragment
 * length equal to what is left of the record. These nested lengths are what
 * keep NTP, SNMP, syslog and OpenVPN (all in 0x14-0x3f) from matching.
 *
 * DTLS 1.3 ciphertext uses the unified header 001CSLEE. Only headers with
 * C=0 (no connection id: its length is not on the wire) and L=1 (explicit
 * length, so the record can be tiled) are accepted, i.e. first bytes 24-27
 * and 2c-2f, and only as a sequence of records that tiles the datagram.
 *
 * Parameters (they only ever match a ClientHello in one datagram, i.e. an
 * unfragmented first flight):
 *   sni=PATTERN   server name, exact or *.suffix, case-insensitive
 *   alpn=LIST     any of the comma-separated protocols
 *   hello=yes     only match a ClientHello (the start of a new flow)
 */
#include <stdlib.h>

#include "common.h"

#define FIRST(b) ((b) >= 20 && (b) <= 63)

struct dtls_params {
    struct umx_name_pat sni;
    int has_sni;
    struct umx_alpn_list alpn;
    int has_alpn;
    int hello_only;
};

static int hs_type_ok(uint8_t t)
{
    switch (t) {
    case 0:  /* hello_request */
    case 1:  /* client_hello */
    case 2:  /* server_hello */
    case 3:  /* hello_verify_request */
    case 4:  /* new_session_ticket */
    case 8:  /* encrypted_extensions (1.3) */
    case 11: /* certificate */
    case 12: /* server_key_exchange */
    case 13: /* certificate_request */
    case 14: /* server_hello_done */
    case 15: /* certificate_verify */
    case 16: /* client_key_exchange */
    case 20: /* finished */
        return 1;
    default:
        return 0;
    }
}

/* Returns 1 if the datagram is DTLS; sets *hello to the ClientHello body
 * (when the first record holds a whole unfragmented ClientHello). */
static int dtls_parse(const uint8_t *data, size_t len, const uint8_t **hello, size_t *hello_len)
{
    struct umx_cur c = umx_cur_make(data, len);
    unsigned n = 0;

    *hello = NULL;
    *hello_len = 0;
    /* Every record consumes at least 4 bytes, so the loop ends. */
    while (umx_cur_left(&c)) {
        uint8_t t = c.p[0];
        if (t >= 0x20 && t <= 0x3f) {
            /* DTLS 1.3 unified header: 001 C S L EE. */
            size_t hl = (t & 0x08) ? 5 : 4;
            struct umx_cur rec;
            if ((t & 0x10) || !(t & 0x04) || umx_cur_left(&c) < hl)
                return 0;
            umx_cur_skip(&c, hl - 2);
            {
                uint16_t rl = 0;
                umx_cur_u16(&c, &rl);
                /* At least a 16-byte AEAD tag and one byte of content. */
                if (rl < 17 || umx_cur_sub(&c, rl, &rec))
                    return 0;
            }
        } else {
            uint8_t type;
            uint16_t ver, epoch, rl;
            struct umx_cur rec;
            if (umx_cur_u8(&c, &type) || umx_cur_u16(&c, &ver) || umx_cur_u16(&c, &epoch) ||
                umx_cur_skip(&c, 6) || umx_cur_u16(&c, &rl))
                return 0;
            if (type < 20 || type > 26 || type == 25 || (ver != 0xfeff && ver != 0xfefd))
                return 0;
            if (rl == 0 || umx_cur_sub(&c, rl, &rec))
                return 0;
            if (type == 20 && epoch == 0 && (rl != 1 || rec.p[0] != 1))
                return 0;
            if (type == 21 && epoch == 0 && (rl != 2 || rec.p[0] < 1 || rec.p[0] > 2))
                return 0;
            if (type == 22 && epoch == 0) {
                /* msg_type(1) length(3) message_seq(2) frag_off(3) frag_len(3),
                 * possibly several handshake fragments in one record. */
                while (umx_cur_left(&rec)) {
                    uint8_t mt;
                    uint32_t mlen, foff, flen;
                    uint16_t mseq;
                    if (umx_cur_u8(&rec, &mt) || umx_cur_u24(&rec, &mlen) ||
                        umx_cur_u16(&rec, &mseq) || umx_cur_u24(&rec, &foff) ||
                        umx_cur_u24(&rec, &flen))
                        return 0;
                    if (!hs_type_ok(mt) || foff + flen > mlen || flen > umx_cur_left(&rec))
                        return 0;
                    if (n == 0 && mt == 1 && foff == 0 && flen == mlen && !*hello) {
                        *hello = rec.p;
                        *hello_len = flen;
                    }
                    umx_cur_skip(&rec, flen);
                }
            }
        }
        n++;
    }
    return n > 0;
}

static int dtls_match(const void *params, const struct umx_probe_in *in)
{
    const struct dtls_params *dp = params;
    const uint8_t *hello;
    size_t hello_len;
    struct umx_hello h;

    if (in->len < 13)
        return UMX_NOMATCH;
    /* The bitmap is RFC 9443's whole DTLS range (20-63), but dtls_parse()
     * only accepts a first record of type 20-24 or 26, or a unified header
     * with C=0 and L=1 (24-27, 2c-2f); testing that here costs a few
     * instructions instead of the parser's set-up for the other 31 bytes
     * (text protocols such as syslog's octet counts start there). */
    {
        uint8_t t = in->data[0];
        if (!((t >= 20 && t <= 26 && t != 25) || (t & 0xf4) == 0x24))
            return UMX_NOMATCH;
    }
    if (!dtls_parse(in->data, in->len, &hello, &hello_len))
        return UMX_NOMATCH;
    if (!dp)
        return UMX_MATCH;
    if (!hello)
        return (dp->hello_only || dp->has_sni || dp->has_alpn) ? UMX_NOMATCH : UMX_MATCH;
    if (umx_tls_parse_hello(hello, hello_len, 1, 0, &h))
        return UMX_NOMATCH;
    if (dp->has_sni && (!h.sni || !umx_name_pat_match(&dp->sni, h.sni, h.sni_len)))
        return UMX_NOMATCH;
    if (dp->has_alpn && (!h.has_alpn || !umx_alpn_match(&dp->alpn, h.alpn, h.alpn_len)))
        return UMX_NOMATCH;
    return UMX_MATCH;
}

static void dtls_params_free(void *params)
{
    struct dtls_params *dp = params;
    if (!dp)
        return;
    umx_name_pat_free(&dp->sni);
    free(dp);
}

static int dtls_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err,
                           size_t errlen)
{
    struct dtls_params *dp = calloc(1, sizeof(*dp));
    int r = -EINVAL;

    if (!dp)
        return -ENOMEM;
    for (size_t i = 0; i < nkv; i++) {
        if (strcmp(kv[i].key, "sni") == 0 && !dp->has_sni) {
            r = umx_name_pat_parse(&dp->sni, kv[i].val, err, errlen);
            if (r)
                goto fail;
            dp->has_sni = 1;
        } else if (strcmp(kv[i].key, "alpn") == 0 && !dp->has_alpn) {
            r = umx_alpn_parse(&dp->alpn, kv[i].val, err, errlen);
            if (r)
                goto fail;
            dp->has_alpn = 1;
        } else if (strcmp(kv[i].key, "hello") == 0 && strcmp(kv[i].val, "yes") == 0) {
            dp->hello_only = 1;
        } else {
            umx_perr(err, errlen, "unknown or repeated parameter '%s'", kv[i].key);
            r = -EINVAL;
            goto fail;
        }
    }
    *out = dp;
    return 0;
fail:
    dtls_params_free(dp);
    return r;
}

const struct umx_probe umx_probe_dtls = {
    .name = "dtls",
    .match = dtls_match,
    .params_new = dtls_params_new,
    .params_free = dtls_params_free,
    .first = UMX_FIRST_PRED(FIRST),
};
