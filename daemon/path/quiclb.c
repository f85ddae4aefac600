/*
 * quiclb.c - QUIC-LB server ids in connection ids (see quiclb.h). The
 * block cipher is OpenSSL's AES-128-ECB through EVP; the four-pass Feistel
 * and the nibble handling of odd lengths follow the draft's algorithm
 * description (its appendix test vectors are in tests/unit/test-quiclb.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "quiclb.h"

struct umxd_qlb_aes {
    EVP_CIPHER_CTX *enc, *dec;
    uint8_t enc_key[16], dec_key[16];
    int enc_keyed, dec_keyed;
};

int umxd_qlb_aes_new(struct umxd_qlb_aes **out)
{
    struct umxd_qlb_aes *a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->enc = EVP_CIPHER_CTX_new();
    a->dec = EVP_CIPHER_CTX_new();
    /* the cipher is fetched here, once; re-keying later reuses the
     * provider's context, so the packet path never allocates */
    if (!a->enc || !a->dec ||
        EVP_EncryptInit_ex2(a->enc, EVP_aes_128_ecb(), NULL, NULL, NULL) != 1 ||
        EVP_DecryptInit_ex2(a->dec, EVP_aes_128_ecb(), NULL, NULL, NULL) != 1) {
        umxd_qlb_aes_free(a);
        return -ENOMEM;
    }
    EVP_CIPHER_CTX_set_padding(a->enc, 0);
    EVP_CIPHER_CTX_set_padding(a->dec, 0);
    *out = a;
    return 0;
}

void umxd_qlb_aes_free(struct umxd_qlb_aes *a)
{
    if (!a)
        return;
    EVP_CIPHER_CTX_free(a->enc);
    EVP_CIPHER_CTX_free(a->dec);
    free(a);
}

/* One AES-128-ECB block under key, encrypting (dir 1) or decrypting (0). */
static int aes_block(struct umxd_qlb_aes *a, int dir, const uint8_t key[16], const uint8_t in[16],
                     uint8_t out[16])
{
    EVP_CIPHER_CTX *ctx = dir ? a->enc : a->dec;
    uint8_t *have = dir ? a->enc_key : a->dec_key;
    int *keyed = dir ? &a->enc_keyed : &a->dec_keyed;
    int outl = 0;
    if (!*keyed || memcmp(have, key, 16) != 0) {
        if (EVP_CipherInit_ex2(ctx, NULL, key, NULL, dir, NULL) != 1)
            return -EIO;
        EVP_CIPHER_CTX_set_padding(ctx, 0);
        memcpy(have, key, 16);
        *keyed = 1;
    }
    if (EVP_CipherUpdate(ctx, out, &outl, in, 16) != 1 || outl != 16)
        return -EIO;
    return 0;
}

/* x ^= truncate(AES(expand(len, pass, in)), half): one Feistel round. */
static int round_xor(struct umxd_qlb_aes *a, const uint8_t key[16], unsigned len, unsigned pass,
                     const uint8_t *in, unsigned half, uint8_t *x)
{
    uint8_t blk[16] = {0}, out[16];
    memcpy(blk, in, half);
    blk[14] = (uint8_t)len;
    blk[15] = (uint8_t)pass;
    if (aes_block(a, 1, key, blk, out) < 0)
        return -EIO;
    for (unsigned i = 0; i < half; i++)
        x[i] ^= out[i];
    return 0;
}

/* For odd lengths the middle byte is split: the left half keeps its high
 * nibble, the right half its low nibble. */
static void trim(uint8_t *l, uint8_t *r, unsigned half, int odd)
{
    if (!odd)
        return;
    if (l)
        l[half - 1] &= 0xf0;
    if (r)
        r[0] &= 0x0f;
}

static void split(const uint8_t *p, unsigned len, uint8_t *l, uint8_t *r)
{
    unsigned half = (len + 1) / 2;
    memcpy(l, p, half);
    memcpy(r, p + len - half, half);
    trim(l, r, half, len & 1);
}

static void join(const uint8_t *l, const uint8_t *r, unsigned len, uint8_t *p)
{
    unsigned half = (len + 1) / 2;
    memcpy(p + len - half, r, half);
    memcpy(p, l, len / 2);
    if (len & 1)
        p[half - 1] = (uint8_t)((l[half - 1] & 0xf0) | (r[0] & 0x0f));
}

int umxd_qlb_decode(struct umxd_qlb_aes *a, const struct umxd_quiclb *q, const uint8_t *cid,
                    size_t n, uint8_t *sid)
{
    unsigned len = (unsigned)q->sid_len + q->nonce_len, half = (len + 1) / 2;
    int odd = len & 1;
    uint8_t l[10], r[10], pt[19];
    if (!q->on || n < 1 + (size_t)len || (cid[0] >> 5) != q->config_id)
        return 0;
    if (!q->has_key) {
        memcpy(sid, cid + 1, q->sid_len);
        return 1;
    }
    if (!a)
        return -EIO;
    if (len == 16) {
        uint8_t out[16];
        if (aes_block(a, 0, q->key, cid + 1, out) < 0)
            return -EIO;
        memcpy(sid, out, q->sid_len);
        return 1;
    }
    split(cid + 1, len, l, r);                        /* left_2, right_2 */
    if (round_xor(a, q->key, len, 4, r, half, l) < 0) /* left_1 */
        return -EIO;
    trim(l, NULL, half, odd);
    if (round_xor(a, q->key, len, 3, l, half, r) < 0) /* right_1 */
        return -EIO;
    trim(NULL, r, half, odd);
    if (round_xor(a, q->key, len, 2, r, half, l) < 0) /* left_0 */
        return -EIO;
    trim(l, NULL, half, odd);
    /* the server id fits in left_0 when it is no longer than the nonce:
     * the fourth pass only recovers nonce bits the load balancer ignores */
    if (2u * q->sid_len > len) {
        if (round_xor(a, q->key, len, 1, l, half, r) < 0) /* right_0 */
            return -EIO;
        trim(NULL, r, half, odd);
    }
    join(l, r, len, pt);
    memcpy(sid, pt, q->sid_len);
    return 1;
}

int umxd_qlb_encode(struct umxd_qlb_aes *a, const struct umxd_quiclb *q, uint8_t len_bits,
                    const uint8_t *sid, const uint8_t *nonce, uint8_t *cid)
{
    unsigned len = (unsigned)q->sid_len + q->nonce_len, half = (len + 1) / 2;
    int odd = len & 1;
    uint8_t pt[19], l[10], r[10];
    cid[0] = (uint8_t)((q->config_id << 5) | (len_bits & 0x1f));
    memcpy(pt, sid, q->sid_len);
    memcpy(pt + q->sid_len, nonce, q->nonce_len);
    if (!q->has_key) {
        memcpy(cid + 1, pt, len);
        return 0;
    }
    if (!a)
        return -EIO;
    if (len == 16)
        return aes_block(a, 1, q->key, pt, cid + 1);
    split(pt, len, l, r);
    if (round_xor(a, q->key, len, 1, l, half, r) < 0)
        return -EIO;
    trim(NULL, r, half, odd);
    if (round_xor(a, q->key, len, 2, r, half, l) < 0)
        return -EIO;
    trim(l, NULL, half, odd);
    if (round_xor(a, q->key, len, 3, l, half, r) < 0)
        return -EIO;
    trim(NULL, r, half, odd);
    if (round_xor(a, q->key, len, 4, r, half, l) < 0)
        return -EIO;
    trim(l, NULL, half, odd);
    join(l, r, len, cid + 1);
    return 0;
}

/* QUIC versions whose Initial and 0-RTT packet types are known: v1 (RFC
 * 9000: types 0 and 1) and v2 (RFC 9369: types 1 and 2). */
#define QUIC_V1 0x00000001u
#define QUIC_V2 0x6b3343cfu

int umxd_qlb_dcid(const uint8_t *buf, size_t len, size_t cidlen, const uint8_t **cid, size_t *n)
{
    if (len < 1)
        return 0;
    if (buf[0] & 0x80) {
        uint32_t ver;
        unsigned type = (buf[0] >> 4) & 3;
        if (len < 6)
            return 0;
        ver = (uint32_t)buf[1] << 24 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 8 | buf[4];
        if (ver == 0 || len < 6u + buf[5])
            return 0; /* version negotiation comes from servers */
        if ((ver == QUIC_V1 && type <= 1) || (ver == QUIC_V2 && (type == 1 || type == 2)))
            return 0;
        *cid = buf + 6;
        *n = buf[5];
        return 1;
    }
    /* a short header has the fixed bit set (QUIC v1/v2), and room for the
     * header protection sample: 4 bytes past the packet number's start,
     * then 16 (RFC 9001 5.4.2) */
    if (!(buf[0] & 0x40) || len < 1 + cidlen + 20)
        return 0;
    *cid = buf + 1;
    *n = cidlen;
    return 1;
}
