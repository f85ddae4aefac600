/*
 * openvpn.c - OpenVPN over UDP, control channel (src/openvpn/ssl_pkt.h of
 * OpenVPN 2.x: byte 0 = opcode << 3 | key_id).
 *
 * Without parameters only the session-opening resets are matched, in both
 * directions: P_CONTROL_HARD_RESET_CLIENT_V2 (7), ..._SERVER_V2 (8) and
 * ..._CLIENT_V3 (10, tls-crypt-v2), key_id 0, in each of the three wire
 * layouts OpenVPN uses:
 *   plain:     op | session(8) | acks | message packet id(4) | payload
 *   tls-auth:  op | session(8) | HMAC(16/20/28/32/48/64) | replay id(4) |
 *              time(4) | acks | message packet id(4) | payload
 *   tls-crypt: op | session(8) | replay id(4) | time(4) | tag(32) |
 *              ciphertext, plus for V3 the wrapped client key ending in its
 *              own 16-bit length
 * acks = count(1) [count x id(4), remote session(8)]. The session id is
 * never zero, a client reset acknowledges nothing and a server reset
 * acknowledges exactly the client's packet, replay ids start at 1, and the
 * time is a plausible Unix time. Control and ack packets in mid-session have
 * no such anchors and data packets none at all: those belong to the pinned
 * flow (the daemon can also route by session id, bytes 1-8).
 *
 * Parameters make the match cryptographic, so OpenVPN servers with
 * different keys can share a port:
 *   tls-auth=FILE      static key file (-----BEGIN OpenVPN Static key V1-----)
 *   key-direction=0|1  the server's key-direction (default bidirectional)
 *   auth=SHA1|SHA256|SHA512   tls-auth HMAC digest (default SHA1, as OpenVPN)
 *   tls-crypt=FILE     static key file used with --tls-crypt
 *   tls-crypt-v2=FILE  the server key (-----BEGIN OpenVPN tls-crypt-v2
 *                      server key-----)
 *   max-skew=SECONDS   accepted distance of the packet time from the wall
 *                      clock (default 60; 0 disables the check)
 * With a key, every client-to-server control-channel packet whose HMAC/tag
 * verifies is matched (resets, control, ack; key_id 0-7), not only resets.
 * Verification:
 *   tls-auth: HMAC(in-key, replay id | time | op | session | rest), i.e.
 *     the packet with the HMAC removed and op|session moved behind the
 *     replay fields (OpenVPN computes it on the re-ordered buffer);
 *   tls-crypt: IV = tag[0:16], plaintext = AES-256-CTR(Ke, IV, ciphertext),
 *     tag == HMAC-SHA256(Ka, op | session | replay id | time | plaintext);
 *     the server decrypts with key 1 of the file (client key direction);
 *   tls-crypt-v2: WKc = T | AES-256-CTR(server Ke, T[0:16], Kc | metadata)
 *     | len16, with T == HMAC-SHA256(server Ka, len16 | Kc | metadata); the
 *     unwrapped Kc (a 2048-bit static key) then verifies the packet exactly
 *     like tls-crypt.
 * The wall-clock time comes from clock_gettime(CLOCK_REALTIME): the probe
 * input only carries a monotonic clock, and OpenVPN's time field is wall
 * clock seconds.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common.h"
#include "../../util/hex.h"
#include "../roam.h"
#include "crypto.h"

#define OP_HARD_RESET_CLIENT_V2 7
#define OP_HARD_RESET_SERVER_V2 8
#define OP_HARD_RESET_CLIENT_V3 10
#define OP_CONTROL_WKC_V1 11

#define FIRST(b) (((b) >> 3) >= 3 && ((b) >> 3) <= 11 && ((b) >> 3) != 6 && ((b) >> 3) != 9)

/* 2012-01-01: older packet times are not from a running OpenVPN. */
#define MIN_NET_TIME 0x4f000000u

enum ovpn_mode { M_NONE, M_AUTH, M_CRYPT, M_CRYPT2 };

struct ovpn_params {
    enum ovpn_mode mode;
    enum umx_md md;
    uint8_t hmac_key[64];   /* tls-auth: incoming HMAC key */
    uint8_t ke[32], ka[32]; /* tls-crypt: client->server keys; v2: server key */
    unsigned max_skew;
};

/* Replay packet ids start at 1; with OpenVPN 2.6 early negotiation (used
 * by tls-crypt-v2 capable peers) the id carries 0x0f in its top byte. */
static int small_pid(uint32_t pid)
{
    uint32_t lo = pid & 0x00ffffffu;
    return (pid >> 24 == 0 || pid >> 24 == 0x0f) && lo >= 1 && lo <= 256;
}

static int plausible_time(uint32_t t, unsigned skew)
{
    struct timespec ts;
    int64_t d;

    if (t < MIN_NET_TIME)
        return 0;
    if (!skew)
        return 1;
    clock_gettime(CLOCK_REALTIME, &ts);
    d = (int64_t)ts.tv_sec - (int64_t)t;
    return d <= (int64_t)skew && d >= -(int64_t)skew;
}

/* acks | message packet id | payload, for a reset. server: must ack. */
static int reset_tail_ok(const uint8_t *p, size_t n, int server)
{
    struct umx_cur c = umx_cur_make(p, n);
    uint8_t nack;
    uint32_t mpid;

    if (umx_cur_u8(&c, &nack) || nack > 8)
        return 0;
    if (server ? nack != 1 : nack != 0)
        return 0;
    if (nack && (umx_cur_skip(&c, 4 * (size_t)nack) || umx_cur_skip(&c, 8)))
        return 0;
    /* Message packet id 0, or OpenVPN 2.6's early-negotiation start. */
    if (umx_cur_u32(&c, &mpid) || (mpid != 0 && mpid != 0x0f000000u))
        return 0;
    /* Early-negotiation TLVs at most; resets carry no TLS data. */
    return umx_cur_left(&c) <= 64;
}

static int ovpn_struct(const uint8_t *p, size_t n)
{
    static const size_t hlens[] = {16, 20, 28, 32, 48, 64};
    unsigned op = p[0] >> 3;
    int server = op == OP_HARD_RESET_SERVER_V2;

    if ((p[0] & 7) || n < 14 || (umx_be32(p + 1) == 0 && umx_be32(p + 5) == 0))
        return 0;
    if (op == OP_HARD_RESET_CLIENT_V3) {
        /* tls-crypt-v2: replay fields, tag, encrypted reset, then WKc whose
         * last two bytes give its length (at least T + a 2048-bit Kc + len). */
        size_t wl, ct;
        if (n < 17 + 32 + 290 || n > 1400)
            return 0;
        wl = umx_be16(p + n - 2);
        /* WKc = tag 32 + Kc 256 + metadata (at most 733 bytes in OpenVPN)
         * + 2; what precedes it is the encrypted reset: a few bytes. */
        if (wl < 290 || wl > 290 + 733 || wl + 49 + 5 > n)
            return 0;
        ct = n - 49 - wl;
        return ct <= 80 && plausible_time(umx_be32(p + 13), 0);
    }
    if (op != OP_HARD_RESET_CLIENT_V2 && !server)
        return 0;
    if (n > 300)
        return 0;
    /* plain */
    if (reset_tail_ok(p + 9, n - 9, server))
        return 1;
    /* tls-crypt: replay id small, time plausible, ciphertext of a reset */
    if (n >= 49 + 5 && n <= 49 + 12 + 8 + 64 && small_pid(umx_be32(p + 9)) &&
        plausible_time(umx_be32(p + 13), 0))
        return 1;
    /* tls-auth with each HMAC size */
    for (size_t i = 0; i < sizeof(hlens) / sizeof(hlens[0]); i++) {
        size_t h = hlens[i];
        uint32_t pid;
        if (n < 9 + h + 8 + 5)
            continue;
        pid = umx_be32(p + 9 + h);
        if (small_pid(pid) && plausible_time(umx_be32(p + 13 + h), 0) &&
            reset_tail_ok(p + 17 + h, n - 17 - h, server))
            return 1;
    }
    return 0;
}

/* ---- keyed verification ------------------------------------------------- */

static int verify_auth(const struct ovpn_params *op, const uint8_t *p, size_t n)
{
    size_t h = umx_md_size(op->md);
    uint8_t mac[64];

    if (n < 9 + h + 8 + 1 + 4)
        return 0;
    if (!plausible_time(umx_be32(p + 13 + h), op->max_skew))
        return 0;
    if (umx_hmac(op->md, op->hmac_key, h, p + 9 + h, 8, p, 9, p + 17 + h, n - 17 - h, NULL, 0, mac))
        return 0;
    return umx_ct_equal(mac, p + 9, h);
}

/* tls-crypt unwrap of p[0..n) with keys ke/ka; the scratch holds the
 * plaintext. */
static int verify_crypt(const uint8_t ke[32], const uint8_t ka[32], const uint8_t *p, size_t n,
                        unsigned skew)
{
    uint8_t *plain = umx_thread_scratch();
    uint8_t tag[32];
    size_t ct_len;

    if (!plain || n < 49 + 1 || n - 49 > UMX_SCRATCH_SIZE)
        return 0;
    if (!plausible_time(umx_be32(p + 13), skew))
        return 0;
    ct_len = n - 49;
    if (umx_aes256_ctr(ke, p + 17, p + 49, ct_len, plain))
        return 0;
    if (umx_hmac(UMX_MD_SHA256, ka, 32, p, 17, plain, ct_len, NULL, 0, NULL, 0, tag))
        return 0;
    return umx_ct_equal(tag, p + 17, 32);
}

static int verify_crypt2(const struct ovpn_params *op, const uint8_t *p, size_t n)
{
    uint8_t *kc = umx_thread_scratch();
    uint8_t t[32], len16[2], ke[32], ka[32];
    size_t wl, body;
    int ok = 0;

    if (!kc || n < 2)
        return 0;
    wl = umx_be16(p + n - 2);
    if (wl < 32 + 256 + 2 || wl + 49 > n || wl - 34 > 4096)
        return 0;
    body = wl - 34; /* Kc (256) + metadata */
    {
        const uint8_t *w = p + n - wl;
        /* The scratch is shared with verify_crypt: keep Kc at its end. */
        uint8_t *dec = kc + UMX_SCRATCH_SIZE - 4096;
        if (umx_aes256_ctr(op->ke, w, w + 32, body, dec))
            return 0;
        len16[0] = p[n - 2];
        len16[1] = p[n - 1];
        if (umx_hmac(UMX_MD_SHA256, op->ka, 32, len16, 2, dec, body, NULL, 0, NULL, 0, t) ||
            !umx_ct_equal(t, w, 32) || body < 256)
            goto out;
        /* Kc is a 2048-bit static key; the client sends with key 1. */
        memcpy(ke, dec + 128, 32);
        memcpy(ka, dec + 192, 32);
        ok = verify_crypt(ke, ka, p, n - wl, op->max_skew);
        OPENSSL_cleanse(dec, body);
    }
out:
    OPENSSL_cleanse(ke, sizeof(ke));
    OPENSSL_cleanse(ka, sizeof(ka));
    return ok;
}

static int ovpn_match(const void *params, const struct umx_probe_in *in)
{
    const struct ovpn_params *op = params;
    const uint8_t *p = in->data;
    size_t n = in->len;
    unsigned opc;

    if (n < 14 || !FIRST(p[0]))
        return UMX_NOMATCH;
    if (!op || op->mode == M_NONE)
        return ovpn_struct(p, n) ? UMX_MATCH : UMX_NOMATCH;
    opc = p[0] >> 3;
    /* Client-to-server control channel: soft reset, control, ack, resets. */
    switch (op->mode) {
    case M_AUTH:
        if (opc != 3 && opc != 4 && opc != 5 && opc != OP_HARD_RESET_CLIENT_V2)
            return UMX_NOMATCH;
        return verify_auth(op, p, n) ? UMX_MATCH : UMX_NOMATCH;
    case M_CRYPT:
        if (opc != 3 && opc != 4 && opc != 5 && opc != OP_HARD_RESET_CLIENT_V2)
            return UMX_NOMATCH;
        return verify_crypt(op->ke, op->ka, p, n, op->max_skew) ? UMX_MATCH : UMX_NOMATCH;
    case M_CRYPT2:
        if (opc != OP_HARD_RESET_CLIENT_V3 && opc != OP_CONTROL_WKC_V1)
            return UMX_NOMATCH;
        return verify_crypt2(op, p, n) ? UMX_MATCH : UMX_NOMATCH;
    default:
        return UMX_NOMATCH;
    }
}

/* ---- key files ------------------------------------------------------------ */

/* Reads a whole small file (key files are < 4 KiB). */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
    FILE *f = fopen(path, "re");
    size_t n;

    if (!f)
        return -errno;
    n = fread(buf, 1, cap - 1, f);
    if (ferror(f) || !feof(f)) {
        fclose(f);
        return -EINVAL;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return 0;
}

/* Static key V1: 256 bytes of hex between the markers. */
static int load_static_key(const char *path, uint8_t key[256], char *err, size_t errlen)
{
    static const char begin[] = "-----BEGIN OpenVPN Static key V1-----";
    static const char end[] = "-----END OpenVPN Static key V1-----";
    char buf[8192];
    size_t len;
    const char *s, *e;
    int r = read_small(path, buf, sizeof(buf), &len);

    if (r) {
        umx_perr(err, errlen, "cannot read key file '%s'", path);
        return r == -ENOENT ? -ENOENT : -EINVAL;
    }
    s = strstr(buf, begin);
    e = s ? strstr(s, end) : NULL;
    if (!s || !e) {
        OPENSSL_cleanse(buf, sizeof(buf));
        umx_perr(err, errlen, "'%s' is not an OpenVPN static key file", path);
        return -EINVAL;
    }
    s += sizeof(begin) - 1;
    r = umx_hex_decode(s, (size_t)(e - s), " \t\r\n", 0, key, 256);
    OPENSSL_cleanse(buf, sizeof(buf));
    if (r == -E2BIG) {
        umx_perr(err, errlen, "key file '%s' is longer than 2048 bits", path);
        return -EINVAL;
    }
    if (r < 0) {
        umx_perr(err, errlen, "bad character in key file '%s'", path);
        return -EINVAL;
    }
    if (r != 256) {
        umx_perr(err, errlen, "key file '%s' is not 2048 bits", path);
        return -EINVAL;
    }
    return 0;
}

/* tls-crypt-v2 server key: base64 of 128 bytes (cipher 64 | hmac 64). */
static int load_v2_server_key(const char *path, uint8_t key[128], char *err, size_t errlen)
{
    static const char begin[] = "-----BEGIN OpenVPN tls-crypt-v2 server key-----";
    static const char end[] = "-----END OpenVPN tls-crypt-v2 server key-----";
    char buf[4096], b64[512];
    uint8_t raw[384];
    size_t len, k = 0;
    const char *s, *e;
    int r = read_small(path, buf, sizeof(buf), &len), outl;

    if (r) {
        umx_perr(err, errlen, "cannot read key file '%s'", path);
        return r == -ENOENT ? -ENOENT : -EINVAL;
    }
    s = strstr(buf, begin);
    e = s ? strstr(s, end) : NULL;
    if (!s || !e) {
        umx_perr(err, errlen, "'%s' is not a tls-crypt-v2 server key", path);
        return -EINVAL;
    }
    for (s += sizeof(begin) - 1; s < e; s++) {
        if (*s == '\n' || *s == '\r')
            continue;
        if (k + 1 >= sizeof(b64)) {
            umx_perr(err, errlen, "tls-crypt-v2 server key '%s' too long", path);
            return -EINVAL;
        }
        b64[k++] = *s;
    }
    b64[k] = 0;
    outl = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)k);
    /* 128 bytes encode as 172 characters ending in one '=' of padding. */
    if (outl != 129 || k != 172 || b64[170] == '=' || b64[171] != '=') {
        umx_perr(err, errlen, "tls-crypt-v2 server key '%s' is not 1024 bits", path);
        return -EINVAL;
    }
    memcpy(key, raw, 128);
    OPENSSL_cleanse(raw, sizeof(raw));
    OPENSSL_cleanse(buf, sizeof(buf));
    return 0;
}

static void ovpn_params_free(void *params)
{
    if (params)
        OPENSSL_cleanse(params, sizeof(struct ovpn_params));
    free(params);
}

static int ovpn_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err,
                           size_t errlen)
{
    struct ovpn_params *op = calloc(1, sizeof(*op));
    const char *file = NULL;
    int dir = -1, r = -EINVAL;
    uint8_t key[256];

    if (!op)
        return -ENOMEM;
    op->md = UMX_MD_SHA1;
    op->max_skew = 60;
    for (size_t i = 0; i < nkv; i++) {
        const char *k = kv[i].key, *v = kv[i].val;
        enum ovpn_mode m = M_NONE;
        if (strcmp(k, "tls-auth") == 0)
            m = M_AUTH;
        else if (strcmp(k, "tls-crypt") == 0)
            m = M_CRYPT;
        else if (strcmp(k, "tls-crypt-v2") == 0)
            m = M_CRYPT2;
        if (m != M_NONE) {
            if (op->mode != M_NONE) {
                umx_perr(err, errlen, "only one of tls-auth, tls-crypt, tls-crypt-v2");
                goto fail;
            }
            op->mode = m;
            file = v;
        } else if (strcmp(k, "key-direction") == 0) {
            if (strcmp(v, "0") && strcmp(v, "1")) {
                umx_perr(err, errlen, "key-direction must be 0 or 1");
                goto fail;
            }
            dir = v[0] - '0';
        } else if (strcmp(k, "auth") == 0) {
            if (strcasecmp(v, "SHA1") == 0)
                op->md = UMX_MD_SHA1;
            else if (strcasecmp(v, "SHA256") == 0)
                op->md = UMX_MD_SHA256;
            else if (strcasecmp(v, "SHA512") == 0)
                op->md = UMX_MD_SHA512;
            else {
                umx_perr(err, errlen, "auth must be SHA1, SHA256 or SHA512");
                goto fail;
            }
        } else if (strcmp(k, "max-skew") == 0) {
            char *endp;
            unsigned long s = strtoul(v, &endp, 10);
            if (!*v || *endp || s > 86400) {
                umx_perr(err, errlen, "max-skew must be 0..86400 seconds");
                goto fail;
            }
            op->max_skew = (unsigned)s;
        } else {
            umx_perr(err, errlen, "unknown parameter '%s'", k);
            goto fail;
        }
    }
    if (dir >= 0 && op->mode != M_AUTH) {
        umx_perr(err, errlen, "key-direction only applies to tls-auth");
        goto fail;
    }
    switch (op->mode) {
    case M_AUTH:
        r = load_static_key(file, key, err, errlen);
        if (r)
            goto fail;
        /* The server receives with key 1 when its key-direction is 0, key 0
         * when it is 1, and key 0 when bidirectional; HMAC keys are the
         * second 64 bytes of each 128-byte key, cut to the digest size. */
        memcpy(op->hmac_key, key + (dir == 0 ? 128 : 0) + 64, umx_md_size(op->md));
        break;
    case M_CRYPT:
        r = load_static_key(file, key, err, errlen);
        if (r)
            goto fail;
        /* A tls-crypt server uses the normal direction: it decrypts what
         * the client sent with key 1 (cipher @128, HMAC @192). */
        memcpy(op->ke, key + 128, 32);
        memcpy(op->ka, key + 192, 32);
        break;
    case M_CRYPT2:
        r = load_v2_server_key(file, key, err, errlen);
        if (r)
            goto fail;
        memcpy(op->ke, key, 32);
        memcpy(op->ka, key + 64, 32);
        break;
    default:
        break;
    }
    OPENSSL_cleanse(key, sizeof(key));
    *out = op;
    return 0;
fail:
    OPENSSL_cleanse(key, sizeof(key));
    ovpn_params_free(op);
    return r ? r : -EINVAL;
}

const struct umx_probe umx_probe_openvpn = {
    .name = "openvpn",
    .match = ovpn_match,
    .params_new = ovpn_params_new,
    .params_free = ovpn_params_free,
    .first = UMX_FIRST_PRED(FIRST),
    .roam = UMX_ROAM_P_OPENVPN,
};
