/*
 * fuzz-classify.c - libFuzzer target for the built-in probes.
 *
 * Each input is used three ways:
 *   1. as a datagram, offered to every probe without parameters, to the
 *      parameterised probes (QUIC SNI/ALPN, WireGuard pubkey, OpenVPN
 *      tls-auth/tls-crypt/tls-crypt-v2, STUN, DTLS, TURN) with and without
 *      a probe state, to udpmux_probe_classify() and
 *      umx_probe_classify_fast() (which must agree with a plain loop over
 *      every probe behind its bitmap) and to the roaming-key extractors;
 *   2. split at a point chosen by its first byte into two datagrams offered
 *      one after the other with a state kept across inputs (the pending
 *      ClientHello table, its eviction and expiry);
 *   3. as the plaintext of a QUIC v1 client Initial that this file seals
 *      with the real Initial keys: random bytes never get past AES-GCM, so
 *      without this the CRYPTO frame and ClientHello parsers behind the
 *      decryption would not be fuzzed at all.
 * Key files for the keyed probes are written once into a private temporary
 * directory (fixed test keys, not secrets).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "udpmux.h"
#include "rules/probe.h"
#include "rules/probes/crypto.h"
#include "rules/probes/registry.h"
#include "rules/roam.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct variant {
    const char *probe;
    const char *spec; /* key=value ...; "%D" is replaced by the key directory */
    const struct umx_probe *p;
    void *params;
};

static struct variant variants[] = {
    {"quic", "sni=*.example.org alpn=h3", NULL, NULL},
    {"quic", "sni=example.com", NULL, NULL},
    {"quic", "alpn=h3,hq-interop", NULL, NULL},
    {"wireguard", "pubkey=ctFAgjcmmK0Ju2FANAtGIrL98Vbqyi4OkBT+PIv9TnA=", NULL, NULL},
    {"wireguard", "pubkey=ctFAgjcmmK0Ju2FANAtGIrL98Vbqyi4OkBT+PIv9TnA= types=1,4", NULL, NULL},
    {"openvpn", "tls-auth=%D/ta.key max-skew=0", NULL, NULL},
    {"openvpn", "tls-auth=%D/ta.key key-direction=0 auth=SHA256 max-skew=0", NULL, NULL},
    {"openvpn", "tls-auth=%D/ta.key key-direction=1 auth=SHA512", NULL, NULL},
    {"openvpn", "tls-crypt=%D/ta.key max-skew=0", NULL, NULL},
    {"openvpn", "tls-crypt-v2=%D/v2.key max-skew=0", NULL, NULL},
    {"stun", "username=evtj:* fingerprint=yes", NULL, NULL},
    {"stun", "class=success,error username=abc", NULL, NULL},
    {"dtls", "sni=*.example.org alpn=h3,webrtc", NULL, NULL},
    {"dtls", "hello=yes", NULL, NULL},
    {"turn-channel", "rfc8656=yes", NULL, NULL},
};
#define NVARIANTS (sizeof(variants) / sizeof(variants[0]))

static struct umx_probe_state *g_state;
static uint64_t g_now;
static int g_ready;

/* A 2048-bit OpenVPN static key and a tls-crypt-v2 server key (test keys). */
static void write_keys(const char *dir)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/ta.key", dir);
    f = fopen(path, "w");
    if (!f)
        abort();
    fputs("-----BEGIN OpenVPN Static key V1-----\n", f);
    for (int line = 0; line < 16; line++) {
        for (int i = 0; i < 16; i++)
            fprintf(f, "%02x", (unsigned)((line * 16 + i) * 37 + 11) & 0xff);
        fputc('\n', f);
    }
    fputs("-----END OpenVPN Static key V1-----\n", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/v2.key", dir);
    f = fopen(path, "w");
    if (!f)
        abort();
    fputs("-----BEGIN OpenVPN tls-crypt-v2 server key-----\n"
          "79TbSAjBI+tIGOP4Dpg034/7W8oOPksIgd59KJqaoxtJDwanfbkLaOoneDI2sJj0\n"
          "t+2xohP/vCtnuqk0thVTFnWKv7y+2hWl/jqlGhHnEV7dMT13UlCsyeG2T/Ud9z4I\n"
          "8Y9rPeM8r0tt1xutyjCQ9DGO8kn19xzIQAHyf0AQrDo=\n"
          "-----END OpenVPN tls-crypt-v2 server key-----\n",
          f);
    fclose(f);
}

static void setup(void)
{
    char dir[] = "/tmp/umx-fuzz-classify-XXXXXX";

    if (!mkdtemp(dir))
        abort();
    write_keys(dir);
    for (size_t i = 0; i < NVARIANTS; i++) {
        char spec[1024], *save = NULL, *tok, err[256];
        struct umx_kv kv[8];
        size_t nkv = 0;
        const char *s = variants[i].spec, *d = strstr(s, "%D");
        if (d)
            snprintf(spec, sizeof(spec), "%.*s%s%s", (int)(d - s), s, dir, d + 2);
        else
            snprintf(spec, sizeof(spec), "%s", s);
        variants[i].p = umx_probe_find(variants[i].probe);
        if (!variants[i].p)
            abort();
        for (tok = strtok_r(spec, " ", &save); tok && nkv < 8; tok = strtok_r(NULL, " ", &save)) {
            char *eq = strchr(tok, '=');
            if (!eq)
                abort();
            *eq = 0;
            kv[nkv].key = tok;
            kv[nkv].val = eq + 1;
            nkv++;
        }
        if (variants[i].p->params_new(&variants[i].params, kv, nkv, err, sizeof(err))) {
            fprintf(stderr, "fuzz-classify: %s %s: %s\n", variants[i].probe, variants[i].spec, err);
            abort();
        }
    }
    /* The keys are loaded: leave nothing behind in /tmp. */
    {
        char path[512];
        snprintf(path, sizeof(path), "%s/ta.key", dir);
        unlink(path);
        snprintf(path, sizeof(path), "%s/v2.key", dir);
        unlink(path);
        rmdir(dir);
    }
    if (umx_probe_state_new(&g_state, 8))
        abort();
    g_ready = 1;
}

static void offer(const uint8_t *d, size_t n, struct umx_probe_state *st)
{
    struct umx_probe_in in = {d, n, NULL, g_now, st};

    for (size_t i = 0; i < umx_nprobes; i++) {
        int r = umx_probes[i]->match(NULL, &in);
        if (r != UMX_MATCH && r != UMX_NOMATCH)
            abort(); /* only stateful, parameterised probes may say MORE */
    }
    for (size_t i = 0; i < NVARIANTS; i++) {
        int r = variants[i].p->match(variants[i].params, &in);
        if (r != UMX_MATCH && r != UMX_NOMATCH && !(r == UMX_MORE && st))
            abort();
    }
}

/* Seals payload (at most 1162 bytes, zero-padded) as a 1200-byte QUIC v1
 * client Initial for DCID dcid, as RFC 9001 section 5 describes. */
static int seal(const uint8_t dcid[8], uint8_t pn, const uint8_t *payload, size_t plen,
                uint8_t out[1200])
{
    static const uint8_t salt[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                     0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
    uint8_t is[32], cs[32], key[16], iv[16], hp[16], plain[1162], mask[16];
    const size_t hl = 22, pn_off = 18;
    EVP_CIPHER_CTX *c;
    int l = 0, ok;

    if (umx_hkdf_extract(salt, 20, dcid, 8, is) || umx_hkdf_expand_label(is, "client in", cs, 32) ||
        umx_hkdf_expand_label(cs, "quic key", key, 16) ||
        umx_hkdf_expand_label(cs, "quic iv", iv, 12) ||
        umx_hkdf_expand_label(cs, "quic hp", hp, 16))
        return -1;
    memset(plain, 0, sizeof(plain));
    memcpy(plain, payload, plen > sizeof(plain) ? sizeof(plain) : plen);
    /* c3 | version 1 | dcid len 8 | dcid | scid len 0 | token len 0 |
     * Length 1182 | packet number (4 bytes) */
    out[0] = 0xc3;
    out[1] = 0, out[2] = 0, out[3] = 0, out[4] = 1;
    out[5] = 8;
    memcpy(out + 6, dcid, 8);
    out[14] = 0, out[15] = 0, out[16] = 0x44, out[17] = 0x9e;
    out[18] = 0, out[19] = 0, out[20] = 0, out[21] = pn;
    iv[11] ^= pn;
    c = EVP_CIPHER_CTX_new();
    if (!c)
        return -1;
    ok = EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, key, iv) &&
         EVP_EncryptUpdate(c, NULL, &l, out, (int)hl) &&
         EVP_EncryptUpdate(c, out + hl, &l, plain, (int)sizeof(plain)) &&
         EVP_EncryptFinal_ex(c, out + hl + sizeof(plain), &l) &&
         EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + hl + sizeof(plain));
    EVP_CIPHER_CTX_free(c);
    if (!ok || umx_aes128_ecb(hp, out + pn_off + 4, mask))
        return -1;
    out[0] ^= mask[0] & 0x0f;
    for (int i = 0; i < 4; i++)
        out[pn_off + (size_t)i] ^= mask[1 + i];
    return 0;
}

/* The reference for the candidate lists: every probe in order, behind its
 * first-byte bitmap, as the engine did before it used the lists. */
static int classify_loop(const uint8_t *data, size_t size)
{
    struct umx_probe_in in = {data, size, NULL, 0, NULL};
    for (size_t i = 0; i < umx_nprobes; i++) {
        const struct umx_probe *p = umx_probes[i];
        if (size == 0 ? !p->match_empty : !umx_first_has(p->first, data[0]))
            continue;
        if (p->match(NULL, &in) == UMX_MATCH)
            return (int)i;
    }
    return -ENOENT;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[20], sealed[1200], dcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
    size_t kl;
    int kind;

    if (!g_ready)
        setup();
    g_now += 250000000ull; /* 250 ms per input: entries expire now and then */

    /* 1. the input as one datagram */
    offer(data, size, NULL);
    offer(data, size, g_state);
    /* the registry's candidate lists (behind udpmux_probe_classify too)
     * must give the answer of the loop over every probe */
    {
        int want = classify_loop(data, size);
        if (udpmux_probe_classify(data, size) != want ||
            umx_probe_classify_fast(data, size) != want)
            abort();
    }
    (void)umx_roam_key_client(data, size, size ? data[0] % 21 : 0, key, &kl, &kind);
    (void)umx_roam_key_server(data, size, key, &kl, &kind);
    /* every direction and protocol set: a key is never longer than 20
     * bytes, never shorter than its kind allows, and never of a protocol
     * the set excludes */
    for (unsigned dir = 0; dir < 2; dir++)
        for (unsigned protos = 0; protos <= UMX_ROAM_P_ALL; protos++) {
            size_t cl = size > 1 ? data[1] % 21 : 8;
            int r = umx_roam_key(data, size, (enum umx_roam_dir)dir, protos, cl, key, &kl, &kind);
            if (r < 0 || r > 1 || kl > UMX_ROAM_KEY_MAX)
                abort();
            if (r == 1 && !(umx_roam_kind_proto(kind) & protos))
                abort();
            if (r == 1 &&
                !((kind == UMX_ROAM_QUIC && (protos & UMX_ROAM_P_QUIC) && kl >= UMX_ROAM_MIN_CID) ||
                  (kind == UMX_ROAM_WG && (protos & UMX_ROAM_P_WG) && kl == 4) ||
                  (kind == UMX_ROAM_OVPN_SID && (protos & UMX_ROAM_P_OPENVPN) && kl == 8) ||
                  (kind == UMX_ROAM_OVPN_PEER && (protos & UMX_ROAM_P_OPENVPN) && kl == 3)))
                abort();
        }

    /* 2. two datagrams from one input */
    if (size >= 2) {
        size_t cut = 1 + (size_t)data[0] * (size - 1) / 256;
        offer(data, cut, g_state);
        offer(data + cut, size - cut, g_state);
    }

    /* 3. the input as a decrypted Initial payload; the DCID varies a little
     * so that several pending entries exist at once. */
    if (size > 0 && size <= 1162) {
        dcid[7] = (uint8_t)(data[size - 1] & 3);
        if (seal(dcid, (uint8_t)(size & 0xff), data, size, sealed) == 0) {
            offer(sealed, sizeof(sealed), NULL);
            offer(sealed, sizeof(sealed), g_state);
        }
    }
    return 0;
}
