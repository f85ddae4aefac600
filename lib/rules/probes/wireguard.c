/*
 * wireguard.c - WireGuard (whitepaper section 5.4; sizes as in the reference
 * implementations). Byte 0 is the message type, bytes 1-3 are reserved zero,
 * integers are little-endian:
 *   1 handshake initiation  exactly 148 bytes
 *   2 handshake response    exactly 92 bytes
 *   3 cookie reply          exactly 64 bytes
 *   4 transport data        32 + 16k bytes (plaintext padded to 16; a
 *                           keepalive is 32), receiver index at 4
 *
 * Parameter pubkey=BASE64 (the server's static public key, 32 bytes): an
 * initiation then matches only if its mac1 is
 *   BLAKE2s-128(key = BLAKE2s-256("mac1----" || pubkey), msg[0:116])
 * so two WireGuard servers sharing a port are told apart with no false
 * matches (a wrong key fails with probability 1 - 2^-128). Responses, cookie
 * replies and transport data carry nothing keyed to the server, so with
 * pubkey they still match on structure only; the daemon routes those by the
 * receiver index it learned (see lib/rules/roam.h).
 *
 * Parameter types=1,2,3,4 restricts the message types accepted.
 */
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common.h"
#include "../roam.h"
#include "crypto.h"

#define FIRST(b) ((b) >= 1 && (b) <= 4)

struct wg_params {
    uint8_t mac1_key[32];
    int has_key;
    unsigned types; /* bit t set: type t accepted */
};

static int wg_match(const void *params, const struct umx_probe_in *in)
{
    const struct wg_params *wp = params;
    const uint8_t *p = in->data;
    unsigned t;
    uint8_t mac[16];

    if (in->len < 32 || p[1] || p[2] || p[3])
        return UMX_NOMATCH;
    t = p[0];
    switch (t) {
    case 1:
        if (in->len != 148)
            return UMX_NOMATCH;
        break;
    case 2:
        if (in->len != 92)
            return UMX_NOMATCH;
        break;
    case 3:
        if (in->len != 64)
            return UMX_NOMATCH;
        break;
    case 4:
        if ((in->len - 32) % 16)
            return UMX_NOMATCH;
        break;
    default:
        return UMX_NOMATCH;
    }
    if (!wp)
        return UMX_MATCH;
    if (wp->types && !(wp->types & (1u << t)))
        return UMX_NOMATCH;
    if (t == 1 && wp->has_key) {
        if (umx_blake2s_mac16(wp->mac1_key, p, 116, mac))
            return UMX_NOMATCH;
        if (!umx_ct_equal(mac, p + 116, 16))
            return UMX_NOMATCH;
    }
    return UMX_MATCH;
}

static void wg_params_free(void *params)
{
    if (params)
        OPENSSL_cleanse(params, sizeof(struct wg_params));
    free(params);
}

static int wg_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err, size_t errlen)
{
    struct wg_params *wp = calloc(1, sizeof(*wp));

    if (!wp)
        return -ENOMEM;
    for (size_t i = 0; i < nkv; i++) {
        const char *v = kv[i].val;
        if (strcmp(kv[i].key, "pubkey") == 0) {
            uint8_t raw[33];
            /* 32 bytes are 44 base64 characters with one '=' of padding. */
            if (strlen(v) != 44 || EVP_DecodeBlock(raw, (const unsigned char *)v, 44) != 33 ||
                v[43] != '=' || v[42] == '=') {
                umx_perr(err, errlen, "pubkey: expected 44 base64 characters (32 bytes)");
                goto fail;
            }
            if (umx_blake2s256((const uint8_t *)"mac1----", 8, raw, 32, wp->mac1_key)) {
                umx_perr(err, errlen, "pubkey: BLAKE2s not available in libcrypto");
                goto fail;
            }
            OPENSSL_cleanse(raw, sizeof(raw));
            wp->has_key = 1;
        } else if (strcmp(kv[i].key, "types") == 0) {
            const char *s = v;
            while (*s) {
                if (*s < '1' || *s > '4' || (s[1] && s[1] != ',')) {
                    umx_perr(err, errlen, "types: expected a list of 1,2,3,4");
                    goto fail;
                }
                wp->types |= 1u << (*s - '0');
                s += s[1] ? 2 : 1;
            }
            if (!wp->types) {
                umx_perr(err, errlen, "types: empty list");
                goto fail;
            }
        } else {
            umx_perr(err, errlen, "unknown parameter '%s'", kv[i].key);
            goto fail;
        }
    }
    *out = wp;
    return 0;
fail:
    wg_params_free(wp);
    return -EINVAL;
}

const struct umx_probe umx_probe_wireguard = {
    .name = "wireguard",
    .match = wg_match,
    .params_new = wg_params_new,
    .params_free = wg_params_free,
    .first = UMX_FIRST_PRED(FIRST),
    .roam = UMX_ROAM_P_WG,
};
