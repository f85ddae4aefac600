/*
 * test-probes.c - the built-in protocol probes (lib/rules/probes/) and the
 * roaming keys (lib/rules/roam.c).
 *
 * Samples live in tests/data/samples/PROBE/NAME.hex (hex, whitespace
 * ignored) or NAME.bin; the directory name is the probe that must win the default
 * classification. Files named ctx-* are mid-session packets kept for the
 * keyed tests (they must not match without keys). samples/negative/ must
 * match no probe at all. The data directory comes from argv[1] or the
 * environment variable UMX_TESTDATA (the tests/data directory).
 */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "udpmux.h"
#include "internal.h"
#include "rules/probe.h"
#include "rules/probes/crypto.h"
#include "rules/probes/registry.h"
#include "rules/roam.h"

#define MAX_SAMPLES 512
#define MAX_DGRAM 65536

struct sample {
    char probe[32];
    char name[96];
    uint8_t *data;
    size_t len;
    int ctx;
};

static char g_dir[1024];
static struct sample g_samples[MAX_SAMPLES];
static size_t g_nsamples;

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads a .hex or .bin file; returns the length or -1. */
static long load_file(const char *path, uint8_t *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n = 0, len = strlen(path);
    int c, hi = -1, bin = len > 4 && strcmp(path + len - 4, ".bin") == 0;

    if (!f)
        return -1;
    while ((c = fgetc(f)) != EOF && n < cap) {
        int v;
        if (bin) {
            out[n++] = (uint8_t)c;
            continue;
        }
        v = hexval(c);
        if (v < 0)
            continue;
        if (hi < 0) {
            hi = v;
        } else {
            out[n++] = (uint8_t)(hi << 4 | v);
            hi = -1;
        }
    }
    fclose(f);
    return (long)n;
}

static int name_cmp(const void *a, const void *b)
{
    const struct sample *x = a, *y = b;
    int r = strcmp(x->probe, y->probe);
    return r ? r : strcmp(x->name, y->name);
}

static void load_samples(void)
{
    char path[2048];
    DIR *top;
    struct dirent *de;
    static uint8_t buf[MAX_DGRAM];

    snprintf(path, sizeof(path), "%s/samples", g_dir);
    top = opendir(path);
    if (!top) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(1);
    }
    while ((de = readdir(top))) {
        DIR *d;
        struct dirent *fe;
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/samples/%s", g_dir, de->d_name);
        d = opendir(path);
        if (!d)
            continue;
        while ((fe = readdir(d)) && g_nsamples < MAX_SAMPLES) {
            size_t l = strlen(fe->d_name);
            struct sample *s;
            long n;
            if (l < 5 || (strcmp(fe->d_name + l - 4, ".hex") && strcmp(fe->d_name + l - 4, ".bin")))
                continue;
            snprintf(path, sizeof(path), "%s/samples/%s/%s", g_dir, de->d_name, fe->d_name);
            n = load_file(path, buf, sizeof(buf));
            if (n < 0)
                continue;
            s = &g_samples[g_nsamples++];
            snprintf(s->probe, sizeof(s->probe), "%.31s", de->d_name);
            snprintf(s->name, sizeof(s->name), "%.95s", fe->d_name);
            s->data = malloc((size_t)n + 1);
            memcpy(s->data, buf, (size_t)n);
            s->len = (size_t)n;
            s->ctx = strncmp(fe->d_name, "ctx-", 4) == 0;
        }
        closedir(d);
    }
    closedir(top);
    qsort(g_samples, g_nsamples, sizeof(g_samples[0]), name_cmp);
}

static const struct sample *find_sample(const char *probe, const char *name)
{
    for (size_t i = 0; i < g_nsamples; i++)
        if (strcmp(g_samples[i].probe, probe) == 0 && strcmp(g_samples[i].name, name) == 0)
            return &g_samples[i];
    fail_msg("sample %s/%s missing", probe, name);
    return NULL;
}

/* Runs probe p (with params, optional state). */
static int run(const struct umx_probe *p, const void *params, const uint8_t *d, size_t n,
               struct umx_probe_state *st, uint64_t now)
{
    struct umx_probe_in in = {d, n, NULL, now, st};
    return p->match(params, &in);
}

/* Default classification exactly as the engine does it. */
static int classify(const uint8_t *d, size_t n)
{
    for (size_t i = 0; i < umx_nprobes; i++) {
        const struct umx_probe *p = umx_probes[i];
        if (n == 0 ? !p->match_empty : !umx_first_has(p->first, d[0]))
            continue;
        if (run(p, NULL, d, n, NULL, 0) == UMX_MATCH)
            return (int)i;
    }
    return -1;
}

static void *params_of(const char *probe, const char *spec)
{
    const struct umx_probe *p = umx_probe_find(probe);
    char buf[1024], *save = NULL, *tok, err[256] = "";
    struct umx_kv kv[8];
    size_t nkv = 0;
    void *out = NULL;
    int r;

    assert_non_null(p);
    snprintf(buf, sizeof(buf), "%s", spec);
    for (tok = strtok_r(buf, " ", &save); tok && nkv < 8; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = 0;
        kv[nkv].key = tok;
        kv[nkv].val = eq + 1;
        nkv++;
    }
    r = p->params_new(&out, kv, nkv, err, sizeof(err));
    if (r)
        fail_msg("params '%s' for %s: %d %s", spec, probe, r, err);
    return out;
}

static int params_err(const char *probe, const char *key, const char *val)
{
    const struct umx_probe *p = umx_probe_find(probe);
    struct umx_kv kv = {key, val};
    char err[256] = "";
    void *out = NULL;
    int r = p->params_new(&out, &kv, 1, err, sizeof(err));
    if (r == 0)
        p->params_free(out);
    else
        assert_true(err[0] != 0); /* a failure always explains itself */
    return r;
}

/* ---- registry ------------------------------------------------------------ */

static void test_registry(void **unused)
{
    static const char *const names[] = {
        "stun",
        "turn-channel",
        "dtls",
        "zrtp",
        "rtp",
        "rtcp",
        "quic",
        "wireguard",
        "openvpn",
        "dns",
        "ntp",
        "sip",
        "syslog",
        "snmp",
        "tftp",
        "coap",
        "bittorrent-dht",
        "utp",
        "bittorrent-tracker",
        "ike",
        "radius",
        "raknet",
        "ssdp",
        "teamspeak",
    };
    (void)unused;
    assert_int_equal(umx_nprobes, 24);
    for (size_t i = 0; i < 24; i++) {
        const struct umx_probe *p = umx_probe_find(names[i]);
        assert_non_null(p);
        assert_string_equal(p->name, names[i]);
        assert_non_null(p->match);
        assert_true((p->params_new == NULL) == (p->params_free == NULL));
        assert_false(p->match_empty);
    }
    for (size_t i = 0; i < umx_nprobes; i++)
        for (size_t j = i + 1; j < umx_nprobes; j++)
            assert_string_not_equal(umx_probes[i]->name, umx_probes[j]->name);
    assert_null(umx_probe_find("nosuch"));
    assert_null(umx_probe_find(NULL));
    assert_null(umx_probe_find("STUN"));
    /* The public API sees the same table. */
    assert_int_equal(udpmux_probe_count(), umx_nprobes);
    assert_string_equal(udpmux_probe_name(0), umx_probes[0]->name);
    assert_null(udpmux_probe_name(umx_nprobes));
}

/* RFC 9443 ranges where the protocol is in its table. */
static void test_first_bitmaps(void **unused)
{
    (void)unused;
    for (unsigned b = 0; b < 256; b++) {
        assert_int_equal(umx_first_has(umx_probe_find("stun")->first, (uint8_t)b), b <= 3);
        assert_int_equal(umx_first_has(umx_probe_find("dtls")->first, (uint8_t)b),
                         b >= 20 && b <= 63);
        assert_int_equal(umx_first_has(umx_probe_find("rtp")->first, (uint8_t)b),
                         b >= 128 && b <= 191);
        assert_int_equal(umx_first_has(umx_probe_find("quic")->first, (uint8_t)b), b >= 128);
        assert_int_equal(umx_first_has(umx_probe_find("wireguard")->first, (uint8_t)b),
                         b >= 1 && b <= 4);
        /* '<', or the first digit of an RFC 6587 octet count */
        assert_int_equal(umx_first_has(umx_probe_find("syslog")->first, (uint8_t)b),
                         b == '<' || (b >= '1' && b <= '9'));
    }
    /* Every sample's first byte is in its own probe's bitmap (else the
     * pre-filter would hide a real match). */
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct umx_probe *p = umx_probe_find(g_samples[i].probe);
        if (!p || g_samples[i].len == 0)
            continue;
        if (!umx_first_has(p->first, g_samples[i].data[0]))
            fail_msg("%s/%s: first byte %02x not in bitmap", g_samples[i].probe, g_samples[i].name,
                     g_samples[i].data[0]);
    }
}

/* ---- positive samples ------------------------------------------------------ */

static void test_positive_samples(void **unused)
{
    size_t checked = 0;
    unsigned per_probe[64] = {0};

    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *s = &g_samples[i];
        const struct umx_probe *p = umx_probe_find(s->probe);
        int c;
        if (!p || s->ctx)
            continue;
        if (run(p, NULL, s->data, s->len, NULL, 0) != UMX_MATCH)
            fail_msg("%s/%s (%zu bytes) does not match its probe", s->probe, s->name, s->len);
        c = classify(s->data, s->len);
        if (c < 0 || umx_probes[c] != p)
            fail_msg("%s/%s classified as %s", s->probe, s->name,
                     c < 0 ? "nothing" : umx_probes[c]->name);
        assert_int_equal(udpmux_probe_classify(s->data, s->len), c);
        assert_int_equal(umx_probe_classify_fast(s->data, s->len), c);
        for (size_t k = 0; k < umx_nprobes; k++)
            if (umx_probes[k] == p)
                per_probe[k]++;
        checked++;
    }
    /* Every probe has samples. */
    for (size_t k = 0; k < umx_nprobes; k++)
        if (per_probe[k] == 0)
            fail_msg("probe %s has no positive sample", umx_probes[k]->name);
    assert_true(checked >= 100);
}

/* Mid-session packets and the negative directory match nothing. */
static void test_negative_samples(void **unused)
{
    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *s = &g_samples[i];
        int c;
        if (strcmp(s->probe, "negative") != 0 && !s->ctx)
            continue;
        c = classify(s->data, s->len);
        if (strcmp(s->probe, "negative") == 0 && c >= 0)
            fail_msg("negative/%s matched %s", s->name, umx_probes[c]->name);
        if (s->ctx && c >= 0 && strcmp(umx_probes[c]->name, s->probe) == 0)
            fail_msg("%s/%s (mid-session) matched without keys", s->probe, s->name);
    }
    assert_int_equal(udpmux_probe_classify(NULL, 0), -ENOENT);
    assert_int_equal(umx_probe_classify_fast(NULL, 0), -ENOENT);
}

/*
 * Each probe against every other probe's samples. A few overlaps are known
 * and resolved by the default order (docs/internals/probes.md); anything
 * else is a new collision and fails.
 */
static const char *const known_overlaps[][2] = {
    /* {probe that also matches, sample directory} */
    {"tftp", "stun"},     /* STUN 00 03.. (Allocate) read as TFTP DATA */
    {"utp", "stun"},      /* STUN 01 01.. (success) read as uTP DATA */
    {"utp", "wireguard"}, /* initiation 01 00 00 00 read as uTP DATA */
    {"utp", "raknet"},    /* unconnected ping 01 + time */
    {"rtp", "quic"},      /* greased long header 8a.. read as RTP */
};

static int overlap_known(const char *probe, const char *dir)
{
    for (size_t i = 0; i < sizeof(known_overlaps) / sizeof(known_overlaps[0]); i++)
        if (strcmp(known_overlaps[i][0], probe) == 0 && strcmp(known_overlaps[i][1], dir) == 0)
            return 1;
    return 0;
}

static void test_cross_matches(void **unused)
{
    unsigned unknown = 0;

    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *s = &g_samples[i];
        for (size_t k = 0; k < umx_nprobes; k++) {
            const struct umx_probe *p = umx_probes[k];
            if (strcmp(p->name, s->probe) == 0 || s->ctx)
                continue;
            if (run(p, NULL, s->data, s->len, NULL, 0) == UMX_MATCH &&
                !overlap_known(p->name, s->probe)) {
                fprintf(stderr, "unexpected overlap: %s matches %s/%s\n", p->name, s->probe,
                        s->name);
                unknown++;
            }
        }
    }
    assert_int_equal(unknown, 0);
}

/* Probes whose rules pin the datagram size exactly: no proper prefix of a
 * sample may match. For the others truncations only have to be safe (the
 * fuzz target and ASan cover that); they run here too. */
static int strict_length(const char *probe)
{
    static const char *const strict[] = {"stun",      "zrtp",           "dns", "snmp", "radius",
                                         "teamspeak", "bittorrent-dht", "ntp", "ike"};
    for (size_t i = 0; i < sizeof(strict) / sizeof(strict[0]); i++)
        if (strcmp(strict[i], probe) == 0)
            return 1;
    return 0;
}

static void test_truncations(void **unused)
{
    static uint8_t buf[MAX_DGRAM];

    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *s = &g_samples[i];
        const struct umx_probe *own = umx_probe_find(s->probe);
        for (size_t n = 0; n < s->len; n++) {
            /* A copy of exactly n bytes, so ASan/valgrind see over-reads. */
            uint8_t *d = malloc(n ? n : 1);
            memcpy(d, s->data, n);
            for (size_t k = 0; k < umx_nprobes; k++)
                (void)run(umx_probes[k], NULL, d, n, NULL, 0);
            if (own && strict_length(own->name) && !s->ctx &&
                run(own, NULL, d, n, NULL, 0) == UMX_MATCH)
                fail_msg("%s/%s truncated to %zu still matches", s->probe, s->name, n);
            free(d);
        }
        /* Trailing garbage breaks the exact-size probes too. */
        if (own && strict_length(own->name) && !s->ctx && s->len + 1 < sizeof(buf) &&
            strcmp(own->name, "ike") != 0) {
            memcpy(buf, s->data, s->len);
            buf[s->len] = 0x5a;
            if (run(own, NULL, buf, s->len + 1, NULL, 0) == UMX_MATCH)
                fail_msg("%s/%s with one extra byte still matches", s->probe, s->name);
        }
    }
}

/* Random datagrams: the strongly anchored probes never match. */
static void test_random(void **unused)
{
    static const char *const never[] = {
        "stun",      "zrtp",   "wireguard",      "quic",   "ike",     "raknet",
        "teamspeak", "dtls",   "snmp",           "radius", "openvpn", "sip",
        "ssdp",      "syslog", "bittorrent-dht", "dns",    "ntp"};
    unsigned hits[64] = {0};
    uint64_t x = 0x9e3779b97f4a7c15ull;
    static uint8_t buf[1500];

    (void)unused;
    for (int it = 0; it < 200000; it++) {
        size_t n;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        n = (size_t)(x % 1300);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        for (size_t k = 0; k < umx_nprobes; k++)
            if (run(umx_probes[k], NULL, buf, n, NULL, 0) == UMX_MATCH)
                hits[k]++;
        /* The candidate-list dispatch (also behind udpmux_probe_classify)
         * agrees with the loop over every probe's bitmap. */
        if (it % 16 == 0) {
            int want = classify(buf, n);
            assert_int_equal(umx_probe_classify_fast(buf, n), want < 0 ? -ENOENT : want);
            assert_int_equal(udpmux_probe_classify(buf, n), want < 0 ? -ENOENT : want);
        }
    }
    for (size_t k = 0; k < umx_nprobes; k++) {
        int strong = 0;
        for (size_t j = 0; j < sizeof(never) / sizeof(never[0]); j++)
            strong |= strcmp(never[j], umx_probes[k]->name) == 0;
        if (hits[k])
            fprintf(stderr, "# random: %-20s %u / 200000\n", umx_probes[k]->name, hits[k]);
        if (strong && hits[k])
            fail_msg("%s matched %u random datagrams", umx_probes[k]->name, hits[k]);
    }
}

/* ---- QUIC ----------------------------------------------------------------- */

static void test_quic_sni_vectors(void **unused)
{
    const struct umx_probe *q = umx_probe_find("quic");
    const struct sample *v1 = find_sample("quic", "rfc9001-a2-client-initial.hex");
    const struct sample *v2 = find_sample("quic", "rfc9369-a2-client-initial-v2.hex");
    const struct sample *srv = find_sample("quic", "rfc9001-a3-server-initial.hex");
    const struct sample *www = find_sample("quic", "ngtcp2-client-initial-www.hex");
    const struct sample *api = find_sample("quic", "ngtcp2-client-initial-api.hex");
    struct {
        const char *spec;
        int v1, www, api;
    } cases[] = {
        {"sni=example.com", 1, 0, 0},
        {"sni=EXAMPLE.com", 1, 0, 0},
        {"sni=*.com", 1, 0, 0},
        {"sni=*.example.com", 0, 0, 0}, /* never the bare suffix */
        {"sni=example.org", 0, 0, 0},
        {"sni=www.example.org", 0, 1, 0},
        {"sni=*.example.org", 0, 1, 0},
        {"sni=*.org", 0, 1, 0},
        {"sni=*.example.net", 0, 0, 1},
        {"alpn=alpn", 1, 0, 0}, /* the RFC sample offers the literal "alpn" */
        {"alpn=h3", 0, 1, 1},
        {"alpn=h3-29,h3", 0, 1, 1},
        {"alpn=hq-interop", 0, 0, 0},
        {"sni=*.example.org alpn=h3", 0, 1, 0},
        {"sni=example.com alpn=h3", 0, 0, 0},
    };
    static uint8_t buf[1500];

    (void)unused;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *pp = params_of("quic", cases[i].spec);
        assert_int_equal(run(q, pp, v1->data, v1->len, NULL, 0), cases[i].v1);
        assert_int_equal(run(q, pp, v2->data, v2->len, NULL, 0), cases[i].v1);
        assert_int_equal(run(q, pp, www->data, www->len, NULL, 0), cases[i].www);
        assert_int_equal(run(q, pp, api->data, api->len, NULL, 0), cases[i].api);
        /* A server Initial never matches keyed rules. */
        assert_int_equal(run(q, pp, srv->data, srv->len, NULL, 0), UMX_NOMATCH);
        q->params_free(pp);
    }
    {
        /* ngtcp2 0.12 speaking the v2 draft codepoint 0x709a50c4 (own salt) */
        const struct sample *v2d = find_sample("quic", "pcap-quic-v2draft-client-initial.hex");
        void *yes = params_of("quic", "sni=quic.example.test alpn=h3");
        void *no = params_of("quic", "sni=example.com");
        assert_int_equal(run(q, yes, v2d->data, v2d->len, NULL, 0), UMX_MATCH);
        assert_int_equal(run(q, no, v2d->data, v2d->len, NULL, 0), UMX_NOMATCH);
        q->params_free(yes);
        q->params_free(no);
    }
    {
        void *pp = params_of("quic", "sni=example.com");
        /* Any flipped bit after the header breaks the AEAD tag or the
         * header protection: no match, never a wrong answer. */
        for (size_t off = 18; off < v1->len; off += 37) {
            memcpy(buf, v1->data, v1->len);
            buf[off] ^= 0x01;
            assert_int_equal(run(q, pp, buf, v1->len, NULL, 0), UMX_NOMATCH);
        }
        /* Below 1200 bytes a client Initial is invalid (RFC 9000 14.1). */
        assert_int_equal(run(q, pp, v1->data, 1199, NULL, 0), UMX_NOMATCH);
        q->params_free(pp);
    }
    assert_int_equal(params_err("quic", "sni", "*"), -EINVAL);
    assert_int_equal(params_err("quic", "sni", "a*.example.org"), -EINVAL);
    assert_int_equal(params_err("quic", "alpn", ""), -EINVAL);
    assert_int_equal(params_err("quic", "alpn", "h3,"), -EINVAL);
    assert_int_equal(params_err("quic", "version", "1"), -EINVAL);
}

/* A QUIC v1 client Initial sealer for the split-ClientHello tests. */
struct initial_keys {
    uint8_t key[16], iv[12], hp[16];
};

static void derive(const uint8_t *dcid, size_t dl, struct initial_keys *k)
{
    static const uint8_t salt[20] = {0x38, 0x76, 0x2c, 0xf7, 0xf5, 0x59, 0x34, 0xb3, 0x4d, 0x17,
                                     0x9a, 0xe6, 0xa4, 0xc8, 0x0c, 0xad, 0xcc, 0xbb, 0x7f, 0x0a};
    uint8_t is[32], cs[32];
    assert_int_equal(umx_hkdf_extract(salt, 20, dcid, dl, is), 0);
    assert_int_equal(umx_hkdf_expand_label(is, "client in", cs, 32), 0);
    assert_int_equal(umx_hkdf_expand_label(cs, "quic key", k->key, 16), 0);
    assert_int_equal(umx_hkdf_expand_label(cs, "quic iv", k->iv, 12), 0);
    assert_int_equal(umx_hkdf_expand_label(cs, "quic hp", k->hp, 16), 0);
}

/* frames (flen bytes) -> a 1200-byte protected Initial in out. */
static size_t seal_initial(const uint8_t dcid[8], uint32_t pn, const uint8_t *frames, size_t flen,
                           uint8_t out[1200])
{
    struct initial_keys k;
    uint8_t plain[1162], nonce[12], mask[16];
    size_t hl = 0, pn_off;
    int l = 0;
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();

    assert_true(flen <= sizeof(plain));
    memset(plain, 0, sizeof(plain)); /* PADDING frames */
    memcpy(plain, frames, flen);
    derive(dcid, 8, &k);
    out[hl++] = 0xc3; /* Initial, 4-byte packet number */
    out[hl++] = 0, out[hl++] = 0, out[hl++] = 0, out[hl++] = 1;
    out[hl++] = 8;
    memcpy(out + hl, dcid, 8);
    hl += 8;
    out[hl++] = 0;    /* SCID length */
    out[hl++] = 0;    /* token length */
    out[hl++] = 0x44; /* Length 1182 = 4 + 1162 + 16 */
    out[hl++] = 0x9e;
    pn_off = hl;
    out[hl++] = (uint8_t)(pn >> 24), out[hl++] = (uint8_t)(pn >> 16);
    out[hl++] = (uint8_t)(pn >> 8), out[hl++] = (uint8_t)pn;
    memcpy(nonce, k.iv, 12);
    for (int i = 0; i < 4; i++)
        nonce[8 + i] ^= out[pn_off + (size_t)i];
    assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_gcm(), NULL, k.key, nonce), 1);
    assert_int_equal(EVP_EncryptUpdate(c, NULL, &l, out, (int)hl), 1);
    assert_int_equal(EVP_EncryptUpdate(c, out + hl, &l, plain, (int)sizeof(plain)), 1);
    assert_int_equal(EVP_EncryptFinal_ex(c, out + hl + sizeof(plain), &l), 1);
    assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, 16, out + hl + sizeof(plain)),
                     1);
    EVP_CIPHER_CTX_free(c);
    assert_int_equal(umx_aes128_ecb(k.hp, out + pn_off + 4, mask), 0);
    out[0] ^= mask[0] & 0x0f;
    for (int i = 0; i < 4; i++)
        out[pn_off + (size_t)i] ^= mask[1 + i];
    return hl + sizeof(plain) + 16;
}

/* A ClientHello with a padding extension of pad bytes BEFORE server_name,
 * so the name only arrives with the end of the message. */
static size_t make_hello(uint8_t *out, const char *sni, size_t pad)
{
    uint8_t ext[4096];
    size_t e = 0, n = 0, sl = strlen(sni), body;

    ext[e++] = 0, ext[e++] = 21, ext[e++] = (uint8_t)(pad >> 8), ext[e++] = (uint8_t)pad;
    memset(ext + e, 0, pad);
    e += pad;
    ext[e++] = 0, ext[e++] = 0, ext[e++] = 0, ext[e++] = (uint8_t)(sl + 5);
    ext[e++] = 0, ext[e++] = (uint8_t)(sl + 3), ext[e++] = 0, ext[e++] = 0;
    ext[e++] = (uint8_t)sl;
    memcpy(ext + e, sni, sl);
    e += sl;
    ext[e++] = 0, ext[e++] = 16, ext[e++] = 0, ext[e++] = 5, ext[e++] = 0, ext[e++] = 3;
    ext[e++] = 2, ext[e++] = 'h', ext[e++] = '3';
    body = 2 + 32 + 1 + 2 + 2 + 2 + 2 + e;
    out[n++] = 1;
    out[n++] = (uint8_t)(body >> 16), out[n++] = (uint8_t)(body >> 8), out[n++] = (uint8_t)body;
    out[n++] = 3, out[n++] = 3;
    memset(out + n, 0x42, 32);
    n += 32;
    out[n++] = 0;                                                 /* session id */
    out[n++] = 0, out[n++] = 2, out[n++] = 0x13, out[n++] = 0x01; /* TLS_AES_128_GCM_SHA256 */
    out[n++] = 1, out[n++] = 0;                                   /* null compression */
    out[n++] = (uint8_t)(e >> 8), out[n++] = (uint8_t)e;
    memcpy(out + n, ext, e);
    return n + e;
}

static size_t crypto_frame(uint8_t *out, size_t off, const uint8_t *d, size_t len)
{
    size_t n = 0;
    out[n++] = 0x06;
    out[n++] = (uint8_t)(0x80 | off >> 24), out[n++] = (uint8_t)(off >> 16);
    out[n++] = (uint8_t)(off >> 8), out[n++] = (uint8_t)off;
    out[n++] = (uint8_t)(0x40 | len >> 8), out[n++] = (uint8_t)len;
    memcpy(out + n, d, len);
    return n + len;
}

static void test_quic_split_hello(void **unused)
{
    const struct umx_probe *q = umx_probe_find("quic");
    void *want = params_of("quic", "sni=split.example.org alpn=h3");
    void *other = params_of("quic", "sni=*.other.org");
    struct umx_probe_state *st;
    uint8_t hello[4096], frames[1200], d1[1200], d2[1200], d3[1200];
    uint8_t dcid[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    size_t hl = make_hello(hello, "split.example.org", 1700), fl;
    const uint64_t s = 1000000000ull;

    (void)unused;
    assert_true(hl > 1700 && hl < 2100);
    /* Datagram 1 carries the second part, datagram 2 the first. */
    fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
    seal_initial(dcid, 0, frames, fl, d1);
    fl = crypto_frame(frames, 0, hello, 1000);
    seal_initial(dcid, 1, frames, fl, d2);
    /* Both parse as QUIC without parameters. */
    assert_int_equal(run(q, NULL, d1, 1200, NULL, 0), UMX_MATCH);

    assert_int_equal(umx_probe_state_new(&st, 0), -EINVAL);
    assert_int_equal(umx_probe_state_new(&st, 4), 0);
    /* With state: more, then a decision; the other rule shares the entry. */
    assert_int_equal(run(q, want, d1, 1200, st, 1 * s), UMX_MORE);
    assert_int_equal(run(q, other, d1, 1200, st, 1 * s), UMX_MORE);
    assert_int_equal(run(q, want, d2, 1200, st, 1 * s + 1000), UMX_MATCH);
    assert_int_equal(run(q, other, d2, 1200, st, 1 * s + 2000), UMX_NOMATCH);
    /* Replaying the held datagram after the decision still decides. */
    assert_int_equal(run(q, want, d1, 1200, st, 1 * s + 3000), UMX_MATCH);
    /* Without state neither datagram alone shows the SNI. */
    assert_int_equal(run(q, want, d1, 1200, NULL, 0), UMX_NOMATCH);
    assert_int_equal(run(q, want, d2, 1200, NULL, 0), UMX_NOMATCH);

    /* Expiry: a second half 10 s later starts over. */
    dcid[0] = 9;
    fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
    seal_initial(dcid, 0, frames, fl, d1);
    fl = crypto_frame(frames, 0, hello, 1000);
    seal_initial(dcid, 1, frames, fl, d2);
    assert_int_equal(run(q, want, d1, 1200, st, 20 * s), UMX_MORE);
    assert_int_equal(run(q, want, d2, 1200, st, 30 * s), UMX_MORE);

    /* Bounded: 4 slots; five new flows evict the oldest. */
    umx_probe_state_free(st);
    assert_int_equal(umx_probe_state_new(&st, 4), 0);
    for (uint8_t f = 0; f < 5; f++) {
        dcid[0] = (uint8_t)(100 + f);
        fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
        seal_initial(dcid, 0, frames, fl, d1);
        assert_int_equal(run(q, want, d1, 1200, st, 40 * s + f), UMX_MORE);
    }
    dcid[0] = 100; /* evicted */
    fl = crypto_frame(frames, 0, hello, 1000);
    seal_initial(dcid, 1, frames, fl, d2);
    assert_int_equal(run(q, want, d2, 1200, st, 41 * s), UMX_MORE);
    dcid[0] = 104; /* still there */
    seal_initial(dcid, 1, frames, fl, d2);
    assert_int_equal(run(q, want, d2, 1200, st, 41 * s), UMX_MATCH);
    umx_probe_state_free(st);
    umx_probe_state_free(NULL);

    /* Out of order inside one datagram, no state needed. */
    hl = make_hello(hello, "split.example.org", 200);
    fl = crypto_frame(frames, 150, hello + 150, hl - 150);
    fl += crypto_frame(frames + fl, 0, hello, 150);
    seal_initial(dcid, 0, frames, fl, d3);
    assert_int_equal(run(q, want, d3, 1200, NULL, 0), UMX_MATCH);
    assert_int_equal(run(q, other, d3, 1200, NULL, 0), UMX_NOMATCH);
    /* Overlapping copies that disagree: refused. */
    fl = crypto_frame(frames, 0, hello, hl);
    hello[60] ^= 0xff;
    fl += crypto_frame(frames + fl, 50, hello + 50, 20);
    seal_initial(dcid, 0, frames, fl, d3);
    assert_int_equal(run(q, want, d3, 1200, NULL, 0), UMX_NOMATCH);
    hello[60] ^= 0xff;
    /* Agreeing duplicates are fine. */
    fl = crypto_frame(frames, 0, hello, hl);
    fl += crypto_frame(frames + fl, 50, hello + 50, 20);
    seal_initial(dcid, 0, frames, fl, d3);
    assert_int_equal(run(q, want, d3, 1200, NULL, 0), UMX_MATCH);
    /* A first message that is not a ClientHello. */
    hello[0] = 2;
    fl = crypto_frame(frames, 0, hello, hl);
    seal_initial(dcid, 0, frames, fl, d3);
    assert_int_equal(run(q, want, d3, 1200, NULL, 0), UMX_NOMATCH);

    q->params_free(want);
    q->params_free(other);
}

/* ---- candidate lists over a rule set (daemon/worker.c classify()) ------- */

/* The reference: every rule in order behind its pre-filter, which is what
 * classify() did before umx_rule_index; -2 stands for UMX_MORE. */
static int rules_loop(struct udpmux_rule *const *rules, size_t n, const struct umx_probe_in *in)
{
    for (size_t r = 0; r < n; r++) {
        int v;
        if (!umx_rule_may_match(rules[r], in->data, in->len))
            continue;
        v = umx_rule_eval(rules[r], in);
        if (v == UMX_MATCH)
            return (int)r;
        if (v == UMX_MORE)
            return -2;
    }
    return -1;
}

static int rules_index(const struct umx_rule_index *idx, const struct umx_probe_in *in)
{
    int more = 7, r = umx_rule_index_eval(idx, in, &more);
    assert_true(more == 0 || more == 1);
    if (more) {
        assert_int_equal(r, -1);
        return -2;
    }
    return r;
}

struct rule_set {
    struct udpmux_rule *r[UMX_RULE_INDEX_MAX];
    size_t n;
    struct umx_rule_index idx;
};

static void set_build(struct rule_set *s, const char *const *texts, size_t n)
{
    char err[256];
    assert_true(n <= UMX_RULE_INDEX_MAX);
    s->n = n;
    for (size_t i = 0; i < n; i++)
        if (udpmux_rule_compile(&s->r[i], texts[i], err, sizeof(err)) < 0)
            fail_msg("%s: %s", texts[i], err);
    assert_int_equal(umx_rule_index_build(&s->idx, (const struct udpmux_rule *const *)s->r, n), 0);
}

static void set_free(struct rule_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        udpmux_rule_free(s->r[i]);
}

/* datagrams compared; how many went to a rule before the last one, and
 * how many to no rule (so the comparison is not all catch-all) */
static int g_index_checks, g_index_early, g_index_none;

/* One datagram, stateless, from a peer: both walks give the same route. */
static void index_same(const struct rule_set *s, const uint8_t *d, size_t n)
{
    struct sockaddr_in sin = {0};
    struct umx_probe_in in = {d, n, (const struct sockaddr *)&sin, 0, NULL};
    int want, got;
    sin.sin_family = AF_INET;
    sin.sin_port = htons(5000);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    want = rules_loop(s->r, s->n, &in);
    got = rules_index(&s->idx, &in);
    if (want != got)
        fail_msg("%zu-byte datagram (first byte %d): loop %d, candidate lists %d", n, n ? d[0] : -1,
                 want, got);
    g_index_checks++;
    g_index_early += want >= 0 && (size_t)want + 1 < s->n;
    g_index_none += want == -1;
}

static void index_corpus(const struct rule_set *s)
{
    static uint8_t buf[1500];
    static const uint8_t uld1[24] = {0x31, 0x44, 0x4c, 0x55, 1, 0, 0, 0, 0xe8, 3};
    uint64_t x = 0x9e3779b97f4a7c15ull;

    index_same(s, NULL, 0);
    index_same(s, uld1, sizeof(uld1));
    memcpy(buf, uld1, sizeof(uld1));
    memset(buf + sizeof(uld1), 0, 64 - sizeof(uld1));
    index_same(s, buf, 64);
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *p = &g_samples[i];
        index_same(s, p->data, p->len);
        index_same(s, p->data, p->len / 2);
        index_same(s, p->data, p->len ? 1 : 0);
    }
    /* every first byte, short and long, random rest */
    for (unsigned b = 0; b < 256; b++)
        for (size_t n = 1; n <= 1200; n = n * 4 + 3) {
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                buf[i] = (uint8_t)x;
            }
            buf[0] = (uint8_t)b;
            index_same(s, buf, n);
        }
}

static void test_rule_index(void **unused)
{
    /* what bench/run's muxp runs: one rule per probe, then any */
    const char *probes_any[UMX_RULE_INDEX_MAX];
    /* negations (not in the bitmap: candidates for every byte, and for
     * empty datagrams), mixed terms, prefixes with masks, and rules that
     * never match */
    static const char *const mixed[] = {
        "not any",
        "len 0",
        "prefix 31:44 and not syslog",
        "bytes 0 80 mask c0 and not quic",
        "stun and not len 0..19",
        "rtp and not rtcp",
        "not dns and prefix 17:fe",
        "regex \"^\\\\x16\\\\xfe[\\\\xfd\\\\xff]\"",
        "dns and from 127.0.0.0/8",
        "wireguard and port 1..1000",
        "not len 0 and not quic and not stun and len 3..40",
        "dtls and not dtls hello=yes",
        "not dns",
        "any",
    };
    /* only negations: every rule is a candidate everywhere */
    static const char *const negated[] = {
        "not len 1.. and not any",
        "not quic",
        "not dns and not rtp",
        "not len 0",
    };
    /* the empty datagram: match_empty differs rule by rule */
    static const char *const empty[] = {
        "stun", "len 1..10", "not len 0 and any", "len 0..2 and not dns", "port 5000",
    };
    struct rule_set *s = calloc(1, sizeof(*s));
    const char *too_many[UMX_RULE_INDEX_MAX];
    char err[256];
    size_t n = 0;

    (void)unused;
    assert_non_null(s);
    for (size_t i = 0; i < umx_nprobes; i++)
        probes_any[n++] = umx_probes[i]->name;
    probes_any[n++] = "any";
    set_build(s, probes_any, n);
    /* the benchmark's first byte has few candidates: ike, dtls, dns,
     * syslog, utp, bittorrent-tracker, any */
    assert_int_equal(s->idx.n[0x31], 7);
    assert_int_equal(s->idx.n[UMX_RULE_INDEX_EMPTY], 1);
    /* a one-probe rule calls its probe directly: same verdict as the probe
     * behind its own bitmap, independently of the rule engine's loop */
    for (size_t i = 0; i < g_nsamples; i++)
        for (size_t k = 0; k < umx_nprobes; k++) {
            const struct umx_probe *p = umx_probes[k];
            const struct sample *d = &g_samples[i];
            struct umx_probe_in in = {d->data, d->len, NULL, 0, NULL};
            int want = (d->len == 0 ? p->match_empty : umx_first_has(p->first, d->data[0]))
                           ? run(p, NULL, d->data, d->len, NULL, 0)
                           : UMX_NOMATCH;
            assert_int_equal(umx_rule_eval(s->r[k], &in), want);
        }
    index_corpus(s);
    set_free(s);
    /* the probes alone: most datagrams match nothing */
    set_build(s, probes_any, n - 1);
    index_corpus(s);
    set_free(s);

    set_build(s, mixed, sizeof(mixed) / sizeof(mixed[0]));
    /* `not any` and `not dns` have all-ones bitmaps despite naming a probe */
    for (unsigned b = 0; b <= UMX_RULE_INDEX_EMPTY; b++) {
        assert_true(s->idx.n[b] >= 3);
        assert_int_equal(s->idx.list[b][0], 0);
        for (unsigned k = 1; k < s->idx.n[b]; k++)
            assert_true(s->idx.list[b][k - 1] < s->idx.list[b][k]);
    }
    index_corpus(s);
    set_free(s);

    set_build(s, negated, sizeof(negated) / sizeof(negated[0]));
    for (unsigned b = 0; b <= UMX_RULE_INDEX_EMPTY; b++)
        assert_int_equal(s->idx.n[b], 4);
    index_corpus(s);
    set_free(s);

    set_build(s, empty, sizeof(empty) / sizeof(empty[0]));
    /* len 0..2, not len 0, port: the rest cannot match an empty datagram */
    assert_int_equal(s->idx.n[UMX_RULE_INDEX_EMPTY], 3);
    index_corpus(s);
    set_free(s);

    /* the maximum: 64 rules, positions up to 63 in uint8 lists */
    for (size_t i = 0; i < UMX_RULE_INDEX_MAX; i++)
        too_many[i] = i + 1 == UMX_RULE_INDEX_MAX ? "any" : umx_probes[i % umx_nprobes]->name;
    set_build(s, too_many, UMX_RULE_INDEX_MAX);
    assert_int_equal(s->idx.list[0x31][s->idx.n[0x31] - 1], UMX_RULE_INDEX_MAX - 1);
    index_corpus(s);
    /* one more is refused before anything is read */
    assert_int_equal(umx_rule_index_build(&s->idx, (const struct udpmux_rule *const *)s->r,
                                          UMX_RULE_INDEX_MAX + 1),
                     -E2BIG);
    set_free(s);

    /* a NULL rule is never a candidate */
    assert_int_equal(udpmux_rule_compile(&s->r[1], "any", err, sizeof(err)), 0);
    s->r[0] = NULL;
    assert_int_equal(umx_rule_index_build(&s->idx, (const struct udpmux_rule *const *)s->r, 2), 0);
    {
        struct umx_probe_in in = {(const uint8_t *)"x", 1, NULL, 0, NULL};
        assert_int_equal(rules_index(&s->idx, &in), 1);
        assert_int_equal(s->idx.n['x'], 1);
    }
    udpmux_rule_free(s->r[1]);

    fprintf(stderr, "# rule index: %d checks, %d to an early rule, %d to none\n", g_index_checks,
            g_index_early, g_index_none);
    assert_true(g_index_checks > 10000);
    assert_true(g_index_early > 1000);
    assert_true(g_index_none > 1000);
    free(s);
}

/* A QUIC ClientHello split over two Initials: the first datagram leaves the
 * quic rule undecided (UMX_MORE), which must stop the walk exactly as the
 * full loop stops, also when later rules (`any`) would match; a negated
 * quic term reads UMX_MORE as "not matched yet". Each walk has its own
 * probe state, fed the same datagrams. */
static void test_rule_index_more(void **unused)
{
    static const char *const sets[][4] = {
        {"dns", "quic sni=split.example.org", "any", NULL},
        {"any", "quic sni=split.example.org", NULL, NULL},
        {"quic sni=*.other.org", "quic sni=split.example.org", "not quic", "any"},
        {"not quic sni=split.example.org", "any", NULL, NULL},
        {"quic sni=split.example.org and len 1200", "rtp", NULL, NULL},
        {"not dns and quic sni=split.example.org", NULL, NULL, NULL},
    };
    uint8_t hello[4096], frames[1200], d1[1200], d2[1200];
    uint8_t dcid[8] = {7, 7, 7, 1, 2, 3, 4, 5};
    size_t hl = make_hello(hello, "split.example.org", 1700), fl;
    struct rule_set *s = calloc(1, sizeof(*s));
    int saw_more = 0;

    (void)unused;
    assert_non_null(s);
    fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
    seal_initial(dcid, 0, frames, fl, d1);
    fl = crypto_frame(frames, 0, hello, 1000);
    seal_initial(dcid, 1, frames, fl, d2);
    for (size_t k = 0; k < sizeof(sets) / sizeof(sets[0]); k++) {
        struct umx_probe_state *sa, *sb;
        const uint8_t *seq[] = {d1, d1, d2, d1};
        size_t n = 0;
        while (n < 4 && sets[k][n])
            n++;
        set_build(s, sets[k], n);
        assert_int_equal(umx_probe_state_new(&sa, 4), 0);
        assert_int_equal(umx_probe_state_new(&sb, 4), 0);
        for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
            struct umx_probe_in ia = {seq[i], 1200, NULL, 1000000000ull + i, sa};
            struct umx_probe_in ib = {seq[i], 1200, NULL, 1000000000ull + i, sb};
            int want = rules_loop(s->r, s->n, &ia), got = rules_index(&s->idx, &ib);
            if (want != got)
                fail_msg("set %zu datagram %zu: loop %d, candidate lists %d", k, i, want, got);
            saw_more += want == -2;
        }
        umx_probe_state_free(sa);
        umx_probe_state_free(sb);
        set_free(s);
    }
    /* sets 0, 2, 4, 5 hold the first half: UMX_MORE twice each */
    assert_int_equal(saw_more, 8);
    free(s);
}

/* ---- WireGuard ---------------------------------------------------------- */

static void read_line(const char *rel, char *out, size_t cap)
{
    char path[2048];
    FILE *f;
    snprintf(path, sizeof(path), "%s/samples/%s", g_dir, rel);
    f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)cap, f));
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
}

static void test_wireguard_pubkey(void **unused)
{
    const struct umx_probe *w = umx_probe_find("wireguard");
    char k1[64], k2[64], spec[128];
    void *p1, *p2, *p1t;
    const char *names[] = {"response.hex", "transport-80.hex", "transport-368.hex"};

    (void)unused;
    read_line("wireguard/s1.pub", k1, sizeof(k1));
    read_line("wireguard/s2.pub", k2, sizeof(k2));
    snprintf(spec, sizeof(spec), "pubkey=%s", k1);
    p1 = params_of("wireguard", spec);
    snprintf(spec, sizeof(spec), "pubkey=%s types=1", k1);
    p1t = params_of("wireguard", spec);
    snprintf(spec, sizeof(spec), "pubkey=%s", k2);
    p2 = params_of("wireguard", spec);
    {
        const struct sample *i1 = find_sample("wireguard", "s1-initiation.hex");
        const struct sample *i2 = find_sample("wireguard", "s2-initiation.hex");
        static uint8_t buf[148];
        assert_int_equal(run(w, p1, i1->data, i1->len, NULL, 0), UMX_MATCH);
        assert_int_equal(run(w, p2, i1->data, i1->len, NULL, 0), UMX_NOMATCH);
        assert_int_equal(run(w, p2, i2->data, i2->len, NULL, 0), UMX_MATCH);
        assert_int_equal(run(w, p1, i2->data, i2->len, NULL, 0), UMX_NOMATCH);
        /* Any change in the MAC'd bytes or the MAC itself: no match. */
        for (size_t off = 4; off < 132; off += 7) {
            memcpy(buf, i1->data, 148);
            buf[off] ^= 0x80;
            assert_int_equal(run(w, p1, buf, 148, NULL, 0), UMX_NOMATCH);
        }
        /* mac2 (132..147) is not covered by mac1. */
        memcpy(buf, i1->data, 148);
        buf[140] ^= 1;
        assert_int_equal(run(w, p1, buf, 148, NULL, 0), UMX_MATCH);
    }
    for (size_t i = 0; i < 3; i++) {
        char nm[64];
        const struct sample *s;
        snprintf(nm, sizeof(nm), "s1-%s", names[i]);
        s = find_sample("wireguard", nm);
        /* Responses and transport data carry nothing keyed to the server. */
        assert_int_equal(run(w, p1, s->data, s->len, NULL, 0), UMX_MATCH);
        assert_int_equal(run(w, p2, s->data, s->len, NULL, 0), UMX_MATCH);
        assert_int_equal(run(w, p1t, s->data, s->len, NULL, 0), UMX_NOMATCH);
    }
    w->params_free(p1);
    w->params_free(p1t);
    w->params_free(p2);
    assert_int_equal(params_err("wireguard", "pubkey", "abc"), -EINVAL);
    assert_int_equal(
        params_err("wireguard", "pubkey", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="), -EINVAL);
    assert_int_equal(params_err("wireguard", "types", "5"), -EINVAL);
    assert_int_equal(params_err("wireguard", "mac2", "1"), -EINVAL);
}

/* ---- OpenVPN ---------------------------------------------------------------- */

/* spec_fmt has one %s for the key file's path. */
static void ovpn_key(const char *spec_fmt, const char *file, char *out, size_t cap)
{
    char path[2048];
    const char *pct = strstr(spec_fmt, "%s");
    snprintf(path, sizeof(path), "%s/samples/openvpn/%s", g_dir, file);
    assert_non_null(pct);
    snprintf(out, cap, "%.*s%s%s", (int)(pct - spec_fmt), spec_fmt, path, pct + 2);
}

static void test_openvpn_keys(void **unused)
{
    const struct umx_probe *o = umx_probe_find("openvpn");
    struct {
        const char *fmt, *file, *match[4];
    } cases[] = {
        {"tls-auth=%s max-skew=0",
         "ta1.key",
         {"tlsauth-bidir-0.hex", "ctx-tlsauth-bidir-2.hex", NULL}},
        {"tls-auth=%s key-direction=0 max-skew=0",
         "ta1.key",
         {"tlsauth-sha1-0.hex", "ctx-tlsauth-sha1-2.hex", NULL}},
        {"tls-auth=%s key-direction=0 auth=SHA256 max-skew=0",
         "ta1.key",
         {"tlsauth-sha256-0.hex", "ctx-tlsauth-sha256-2.hex", NULL}},
        {"tls-crypt=%s max-skew=0", "ta1.key", {"tlscrypt-0.hex", "ctx-tlscrypt-2.hex", NULL}},
        {"tls-crypt=%s max-skew=0", "ta2.key", {"tlscrypt2-0.hex", "ctx-tlscrypt2-2.hex", NULL}},
        {"tls-crypt-v2=%s max-skew=0", "v2srv.key", {"tlscryptv2-0.hex", NULL}},
    };

    (void)unused;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        char spec[2300];
        void *pp;
        unsigned matched = 0;
        ovpn_key(cases[c].fmt, cases[c].file, spec, sizeof(spec));
        pp = params_of("openvpn", spec);
        for (size_t i = 0; i < g_nsamples; i++) {
            const struct sample *s = &g_samples[i];
            int want = 0, got;
            if (strcmp(s->probe, "openvpn") != 0)
                continue;
            for (size_t m = 0; cases[c].match[m]; m++)
                want |= strcmp(cases[c].match[m], s->name) == 0;
            /* The bidirectional key also verifies the server's own
             * packets (both directions use key 0). */
            if (c == 0 && (strcmp(s->name, "ctx-tlsauth-bidir-3.hex") == 0 ||
                           strcmp(s->name, "ctx-tlsauth-sha1-3.hex") == 0))
                want = 1;
            got = run(o, pp, s->data, s->len, NULL, 0);
            if (got != want)
                fail_msg("%s: %s gave %d, want %d", spec, s->name, got, want);
            matched += (unsigned)got;
        }
        assert_true(matched >= 1);
        /* The captured packets are hours old: the default window (60 s)
         * refuses them, which is the replay protection. */
        {
            char fmt[128], spec2[2300];
            const struct sample *s = find_sample("openvpn", cases[c].match[0]);
            void *dp;
            snprintf(fmt, sizeof(fmt), "%s", cases[c].fmt);
            *strstr(fmt, " max-skew=0") = 0;
            ovpn_key(fmt, cases[c].file, spec2, sizeof(spec2));
            dp = params_of("openvpn", spec2);
            assert_int_equal(run(o, dp, s->data, s->len, NULL, 0), UMX_NOMATCH);
            o->params_free(dp);
        }
        o->params_free(pp);
    }
    /* Keys that are not the file's: error paths. */
    {
        char spec[2300];
        ovpn_key("%s", "missing.key", spec, sizeof(spec));
        assert_int_equal(params_err("openvpn", "tls-auth", spec), -ENOENT);
        ovpn_key("%s", "ta1.key", spec, sizeof(spec));
        assert_int_equal(params_err("openvpn", "tls-crypt-v2", spec), -EINVAL);
        ovpn_key("%s", "v2srv.key", spec, sizeof(spec));
        assert_int_equal(params_err("openvpn", "tls-crypt", spec), -EINVAL);
        assert_int_equal(params_err("openvpn", "auth", "MD5"), -EINVAL);
        assert_int_equal(params_err("openvpn", "key-direction", "2"), -EINVAL);
        assert_int_equal(params_err("openvpn", "max-skew", "-1"), -EINVAL);
        assert_int_equal(params_err("openvpn", "tls-auth2", "x"), -EINVAL);
    }
}

/* Loads the HMAC key tls-auth uses for a bidirectional static key. */
static void static_key(const char *file, uint8_t key[256])
{
    char path[2048], line[256];
    size_t k = 0;
    int in = 0;
    FILE *f;
    snprintf(path, sizeof(path), "%s/samples/openvpn/%s", g_dir, file);
    f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        if (strstr(line, "BEGIN OpenVPN Static key")) {
            in = 1;
            continue;
        }
        if (strstr(line, "END OpenVPN Static key"))
            break;
        for (char *p = line; in && p[0] && p[1] && hexval(p[0]) >= 0; p += 2)
            key[k++] = (uint8_t)(hexval(p[0]) << 4 | hexval(p[1]));
    }
    fclose(f);
    assert_int_equal(k, 256);
}

/* A fresh tls-auth client reset with the given wall-clock time. */
static size_t make_tlsauth_reset(uint8_t out[42], const uint8_t key[256], uint32_t t)
{
    uint8_t tail[14 + 8];
    size_t n = 0;
    /* HMAC input: replay id | time | op | session | ack count | msg id */
    tail[n++] = 0, tail[n++] = 0, tail[n++] = 0, tail[n++] = 1;
    tail[n++] = (uint8_t)(t >> 24), tail[n++] = (uint8_t)(t >> 16);
    tail[n++] = (uint8_t)(t >> 8), tail[n++] = (uint8_t)t;
    tail[n++] = 0x38;
    for (int i = 0; i < 8; i++)
        tail[n++] = (uint8_t)(0xa0 + i);
    tail[n++] = 0;
    tail[n++] = 0, tail[n++] = 0, tail[n++] = 0, tail[n++] = 0;
    out[0] = 0x38;
    memcpy(out + 1, tail + 9, 8);
    assert_int_equal(
        umx_hmac(UMX_MD_SHA1, key + 64, 20, tail, n, NULL, 0, NULL, 0, NULL, 0, out + 9), 0);
    memcpy(out + 29, tail, 8);
    memcpy(out + 37, tail + 17, 5);
    return 42;
}

static void test_openvpn_replay_window(void **unused)
{
    const struct umx_probe *o = umx_probe_find("openvpn");
    uint8_t key[256], pkt[42];
    char spec[2300];
    void *def, *wide;
    uint32_t now = (uint32_t)time(NULL);

    (void)unused;
    static_key("ta1.key", key);
    ovpn_key("tls-auth=%s", "ta1.key", spec, sizeof(spec));
    def = params_of("openvpn", spec);
    ovpn_key("tls-auth=%s max-skew=7200", "ta1.key", spec, sizeof(spec));
    wide = params_of("openvpn", spec);
    make_tlsauth_reset(pkt, key, now);
    assert_int_equal(run(o, def, pkt, 42, NULL, 0), UMX_MATCH);
    assert_int_equal(run(o, NULL, pkt, 42, NULL, 0), UMX_MATCH); /* structure alone */
    make_tlsauth_reset(pkt, key, now - 3600);
    assert_int_equal(run(o, def, pkt, 42, NULL, 0), UMX_NOMATCH);
    assert_int_equal(run(o, wide, pkt, 42, NULL, 0), UMX_MATCH);
    make_tlsauth_reset(pkt, key, now + 3600);
    assert_int_equal(run(o, def, pkt, 42, NULL, 0), UMX_NOMATCH);
    make_tlsauth_reset(pkt, key, now);
    pkt[41] ^= 1;
    assert_int_equal(run(o, def, pkt, 42, NULL, 0), UMX_NOMATCH);
    o->params_free(def);
    o->params_free(wide);
}

/* ---- STUN, DTLS, TURN parameters ------------------------------------------ */

static void test_stun_params(void **unused)
{
    const struct umx_probe *p = umx_probe_find("stun");
    const struct sample *req = find_sample("stun", "rfc5769-request.hex");
    const struct sample *resp = find_sample("stun", "rfc5769-response-v4.hex");
    const struct sample *plain = find_sample("stun", "ndpi-binding-request.hex");
    struct {
        const char *spec;
        int req, resp, plain;
    } cases[] = {
        {"username=evtj:*", 1, 0, 0},  {"username=evtj:h6vY", 1, 0, 0},
        {"username=evtj", 0, 0, 0},    {"username=h6vY:*", 0, 0, 0},
        {"username=*", 1, 0, 0},       {"fingerprint=yes", 1, 1, 0},
        {"class=request", 1, 0, 1},    {"class=success,error", 0, 1, 0},
        {"class=indication", 0, 0, 0},
    };
    static uint8_t buf[256];

    (void)unused;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        void *pp = params_of("stun", cases[i].spec);
        assert_int_equal(run(p, pp, req->data, req->len, NULL, 0), cases[i].req);
        assert_int_equal(run(p, pp, resp->data, resp->len, NULL, 0), cases[i].resp);
        assert_int_equal(run(p, pp, plain->data, plain->len, NULL, 0), cases[i].plain);
        p->params_free(pp);
    }
    /* A wrong FINGERPRINT is refused even without parameters. */
    memcpy(buf, req->data, req->len);
    buf[req->len - 1] ^= 1;
    assert_int_equal(run(p, NULL, buf, req->len, NULL, 0), UMX_NOMATCH);
    assert_int_equal(params_err("stun", "username", "a*b"), -EINVAL);
    assert_int_equal(params_err("stun", "class", "reply"), -EINVAL);
    assert_int_equal(params_err("stun", "fingerprint", "maybe"), -EINVAL);
}

static void test_dtls_params(void **unused)
{
    const struct umx_probe *p = umx_probe_find("dtls");
    const struct sample *ch = find_sample("dtls", "openssl-0.hex");
    const struct sample *hvr = find_sample("dtls", "openssl-1.hex");
    void *sni = params_of("dtls", "sni=dtls.example.org");
    void *wild = params_of("dtls", "sni=*.example.org");
    void *other = params_of("dtls", "sni=other.example.org");
    void *hello = params_of("dtls", "hello=yes");

    (void)unused;
    assert_int_equal(run(p, sni, ch->data, ch->len, NULL, 0), UMX_MATCH);
    assert_int_equal(run(p, wild, ch->data, ch->len, NULL, 0), UMX_MATCH);
    assert_int_equal(run(p, other, ch->data, ch->len, NULL, 0), UMX_NOMATCH);
    assert_int_equal(run(p, hello, ch->data, ch->len, NULL, 0), UMX_MATCH);
    /* A HelloVerifyRequest is DTLS but not a ClientHello. */
    assert_int_equal(run(p, NULL, hvr->data, hvr->len, NULL, 0), UMX_MATCH);
    assert_int_equal(run(p, hello, hvr->data, hvr->len, NULL, 0), UMX_NOMATCH);
    assert_int_equal(run(p, sni, hvr->data, hvr->len, NULL, 0), UMX_NOMATCH);
    p->params_free(sni);
    p->params_free(wild);
    p->params_free(other);
    p->params_free(hello);
    assert_int_equal(params_err("dtls", "cookie", "1"), -EINVAL);
}

static void test_turn_params(void **unused)
{
    const struct umx_probe *p = umx_probe_find("turn-channel");
    void *strict = params_of("turn-channel", "rfc8656=yes");
    uint8_t d[8] = {0x40, 0x01, 0x00, 0x04, 1, 2, 3, 4};

    (void)unused;
    assert_int_equal(run(p, strict, d, 8, NULL, 0), UMX_MATCH);
    d[0] = 0x72; /* legacy RFC 5766 channel, as coturn's client uses */
    assert_int_equal(run(p, NULL, d, 8, NULL, 0), UMX_MATCH);
    assert_int_equal(run(p, strict, d, 8, NULL, 0), UMX_NOMATCH);
    d[3] = 5; /* length says 5: 9 to 12 bytes would be right */
    assert_int_equal(run(p, NULL, d, 8, NULL, 0), UMX_NOMATCH);
    p->params_free(strict);
    assert_int_equal(params_err("turn-channel", "rfc8656", "1"), -EINVAL);
    /* Probes without parameters refuse them in the engine (no hook). */
    assert_null(umx_probe_find("dns")->params_new);
}

/* ---- roaming keys ------------------------------------------------------------ */

static void test_roam(void **unused)
{
    uint8_t k1[20], k2[20];
    size_t l1, l2;
    int kind1, kind2;
    const struct sample *resp = find_sample("wireguard", "s1-response.hex");
    const struct sample *data = find_sample("wireguard", "s1-transport-80.hex");
    const struct sample *init = find_sample("wireguard", "s1-initiation.hex");
    const struct sample *qsrv = find_sample("quic", "ngtcp2-server-initial-greased.hex");
    const struct sample *qhs = find_sample("quic", "ngtcp2-client-handshake.hex");
    uint8_t sh[40];

    (void)unused;
    /* WireGuard: the responder's index comes back in transport data. */
    assert_int_equal(umx_roam_key_server(resp->data, resp->len, k1, &l1, &kind1), 1);
    assert_int_equal(umx_roam_key_client(data->data, data->len, 0, k2, &l2, &kind2), 1);
    assert_int_equal(kind1, UMX_ROAM_WG);
    assert_int_equal(kind2, UMX_ROAM_WG);
    assert_int_equal(l1, 4);
    assert_memory_equal(k1, k2, 4);
    /* A new handshake carries no session key. */
    assert_int_equal(umx_roam_key_client(init->data, init->len, 0, k2, &l2, &kind2), 0);
    assert_int_equal(kind2, UMX_ROAM_NONE);
    /* QUIC: the server's SCID is the client's next DCID. */
    assert_int_equal(umx_roam_key_server(qsrv->data, qsrv->len, k1, &l1, &kind1), 1);
    assert_int_equal(umx_roam_key_client(qhs->data, qhs->len, 0, k2, &l2, &kind2), 1);
    assert_int_equal(kind1, UMX_ROAM_QUIC);
    assert_int_equal(l1, l2);
    assert_memory_equal(k1, k2, l1);
    /* Short header with the configured CID length. */
    memset(sh, 0x33, sizeof(sh));
    sh[0] = 0x41;
    memcpy(sh + 1, k1, l1);
    assert_int_equal(umx_roam_key_client(sh, sizeof(sh), l1, k2, &l2, &kind2), 1);
    assert_memory_equal(k1, k2, l1);
    assert_int_equal(umx_roam_key_client(sh, sizeof(sh), 0, k2, &l2, &kind2), 0);
    assert_int_equal(umx_roam_key_client(sh, sizeof(sh), 21, k2, &l2, &kind2), -EINVAL);
    assert_int_equal(umx_roam_key_client(sh, sizeof(sh), 8, NULL, &l2, &kind2), -EINVAL);
    assert_int_equal(umx_roam_key_server(NULL, 0, k2, &l2, &kind2), 0);
    /* Every sample and every truncation: never more than 20 bytes. */
    for (size_t i = 0; i < g_nsamples; i++)
        for (size_t n = 0; n <= g_samples[i].len; n += 1 + n / 8) {
            int r = umx_roam_key_client(g_samples[i].data, n, 8, k2, &l2, &kind2);
            assert_true(r == 0 || (r == 1 && l2 <= 20));
            r = umx_roam_key_server(g_samples[i].data, n, k2, &l2, &kind2);
            assert_true(r == 0 || (r == 1 && l2 <= 20));
        }
}

/* Any datagram whose first byte has the top bit set used to be read as a
 * QUIC long header: a DNS reply with ID >= 0x8000 taught a one-byte
 * "connection id" and the next query with that byte from anywhere took the
 * flow over (issue 12). No DNS message, whatever its ID, yields a key in
 * either direction, through either interface, for any protocol set. */
static void test_roam_dns_never(void **unused)
{
    uint8_t k[20], d[MAX_DGRAM];
    size_t l;
    int kind, seen = 0;

    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        size_t n = g_samples[i].len;
        if (strcmp(g_samples[i].probe, "dns") != 0 || n < 12)
            continue;
        memcpy(d, g_samples[i].data, n);
        for (unsigned id = 0x8000; id <= 0xffff; id += 0x0101) {
            d[0] = (uint8_t)(id >> 8);
            d[1] = (uint8_t)id;
            for (int reply = 0; reply < 2; reply++) {
                d[2] = (uint8_t)(reply ? d[2] | 0x80 : d[2] & 0x7f);
                assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 0);
                assert_int_equal(umx_roam_key_client(d, n, 8, k, &l, &kind), 0);
                assert_int_equal(kind, UMX_ROAM_NONE);
                for (int dir = 0; dir < 2; dir++)
                    assert_int_equal(
                        umx_roam_key(d, n, (enum umx_roam_dir)dir, UMX_ROAM_P_ALL, 8, k, &l, &kind),
                        0);
            }
        }
        seen++;
    }
    assert_true(seen >= 8);
    /* the exact reply of the report: ID 0x8a2f, one question, 1-byte
     * "SCID" at offset 6 under the old reading */
    {
        static const uint8_t r[] = {0x8a, 0x2f, 0x81, 0x80, 0x00, 0x01, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 'a',  0x00, 0x00, 0x01, 0x00,
                                    0x01, 0xc0, 0x0c, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00,
                                    0x00, 0x3c, 0x00, 0x04, 0x7f, 0x00, 0x00, 0x01};
        assert_int_equal(umx_roam_key_server(r, sizeof(r), k, &l, &kind), 0);
        assert_int_equal(
            umx_roam_key(r, sizeof(r), UMX_ROAM_FROM_SERVER, UMX_ROAM_P_ALL, 0, k, &l, &kind), 0);
    }
}

/* RTP (first byte 0x80 for version 2) and every other sample that is not
 * QUIC, WireGuard or OpenVPN: no key from the server side, and none from
 * the client side through the old interface (which knows no route). */
static void test_roam_other_protocols(void **unused)
{
    uint8_t k[20];
    size_t l;
    int kind, rtp = 0;

    (void)unused;
    for (size_t i = 0; i < g_nsamples; i++) {
        const struct sample *s = &g_samples[i];
        if (strcmp(s->probe, "quic") == 0 || strcmp(s->probe, "wireguard") == 0 ||
            strcmp(s->probe, "openvpn") == 0)
            continue;
        if (strcmp(s->probe, "rtp") == 0) {
            rtp++;
            assert_true(s->len > 0 && (s->data[0] & 0xc0) == 0x80);
            assert_int_equal(umx_roam_key_client(s->data, s->len, 8, k, &l, &kind), 0);
            for (int dir = 0; dir < 2; dir++)
                assert_int_equal(umx_roam_key(s->data, s->len, (enum umx_roam_dir)dir,
                                              UMX_ROAM_P_ALL, 8, k, &l, &kind),
                                 0);
        }
        if (umx_roam_key_server(s->data, s->len, k, &l, &kind) != 0)
            fail_msg("%s/%s gave a server key", s->probe, s->name);
        /* (OpenVPN data packets have no structure past the opcode: "INVITE"
         * is P_DATA_V2 of peer-id "NVI", which is why only routes whose
         * rule is `openvpn` read them) */
        if (umx_roam_key(s->data, s->len, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_QUIC | UMX_ROAM_P_WG, 0,
                         k, &l, &kind))
            fail_msg("%s/%s gave a server key (QUIC or WireGuard route)", s->probe, s->name);
    }
    assert_true(rtp >= 6);
    {
        /* RTP v2, PT 0, seq 1, timestamp 0x00010203, SSRC: under the old
         * reading, "version" 0x00000100, a 1-byte DCID and a 3-byte SCID */
        static const uint8_t r[] = {0x80, 0x00, 0x00, 0x01, 0x00, 0x01, 0x02, 0x03,
                                    0xde, 0xad, 0xbe, 0xef, 0x11, 0x22, 0x33, 0x44};
        assert_int_equal(umx_roam_key_server(r, sizeof(r), k, &l, &kind), 0);
        assert_int_equal(umx_roam_key_client(r, sizeof(r), 0, k, &l, &kind), 0);
    }
}

/* QUIC long headers: real v1 packets give their ids in the direction they
 * belong to; ids shorter than 4 bytes, unknown versions and lengths that
 * do not fit give nothing. */
static void test_roam_quic_long(void **unused)
{
    static const uint8_t scid[8] = {0xf0, 0x67, 0xa5, 0x50, 0x2a, 0x42, 0x62, 0xb5};
    static const uint8_t dcid[8] = {0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08};
    const struct sample *si = find_sample("quic", "rfc9001-a3-server-initial.hex");
    const struct sample *ci = find_sample("quic", "rfc9001-a2-client-initial.hex");
    const struct sample *retry = find_sample("quic", "rfc9001-a4-retry.hex");
    const struct sample *v2 = find_sample("quic", "rfc9369-a2-client-initial-v2.hex");
    uint8_t k[20], d[64];
    size_t l;
    int kind;

    (void)unused;
    assert_int_equal(
        umx_roam_key(si->data, si->len, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_QUIC, 0, k, &l, &kind), 1);
    assert_int_equal(kind, UMX_ROAM_QUIC);
    assert_int_equal(l, 8);
    assert_memory_equal(k, scid, 8);
    /* the same through the old interface */
    assert_int_equal(umx_roam_key_server(si->data, si->len, k, &l, &kind), 1);
    assert_memory_equal(k, scid, 8);
    /* a Retry names the server's new id too */
    assert_int_equal(umx_roam_key_server(retry->data, retry->len, k, &l, &kind), 1);
    assert_memory_equal(k, scid, 8);
    /* a route that is not QUIC learns nothing from it */
    assert_int_equal(umx_roam_key(si->data, si->len, UMX_ROAM_FROM_SERVER,
                                  UMX_ROAM_P_WG | UMX_ROAM_P_OPENVPN, 0, k, &l, &kind),
                     0);
    /* client Initials (v1, v2): the DCID, only from the client side; the
     * client's Initial SCID is empty, so nothing to learn from it */
    assert_int_equal(
        umx_roam_key(ci->data, ci->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_QUIC, 0, k, &l, &kind), 1);
    assert_int_equal(l, 8);
    assert_memory_equal(k, dcid, 8);
    assert_int_equal(umx_roam_key_client(v2->data, v2->len, 0, k, &l, &kind), 1);
    assert_memory_equal(k, dcid, 8);
    assert_int_equal(umx_roam_key_server(ci->data, ci->len, k, &l, &kind), 0);
    /* a Retry never comes from a client */
    assert_int_equal(umx_roam_key_client(retry->data, retry->len, 0, k, &l, &kind), 0);

    /* Handshake v1 from a server: c0|e0, DCID 0, SCID of s bytes, Length 20 */
    for (unsigned s = 0; s <= 20; s++) {
        size_t n = 0;
        d[n++] = 0xe0;
        d[n++] = 0, d[n++] = 0, d[n++] = 0, d[n++] = 1;
        d[n++] = 0;
        d[n++] = (uint8_t)s;
        memset(d + n, 0x5a, s);
        n += s;
        d[n++] = 20;
        memset(d + n, 0x77, 20);
        n += 20;
        assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), s >= UMX_ROAM_MIN_CID);
        if (s >= UMX_ROAM_MIN_CID)
            assert_int_equal(l, s);
        /* one byte short: the Length runs past the datagram */
        assert_int_equal(umx_roam_key_server(d, n - 1, k, &l, &kind), 0);
        if (s == 8) {
            d[1] = 0x0a; /* 0x0a000001: no version we know */
            assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 0);
            d[1] = 0;
            d[n - 21] = 19; /* Length below pn + sample */
            assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 0);
            d[n - 21] = 20;
            d[5] = 21; /* DCID length beyond 20 */
            assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 0);
            d[5] = 0;
            d[0] = 0xd0; /* 0-RTT: never from a server */
            assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 0);
            d[0] = 0xa0; /* Handshake with the fixed bit greased (RFC 9287) */
            assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), 1);
        }
    }
}

/* Short headers: the fixed bit may be greased (RFC 9287, ngtcp2 does it
 * per connection); followed when the route is QUIC. */
static void test_roam_quic_short(void **unused)
{
    uint8_t k[20], d[64];
    size_t l;
    int kind;

    (void)unused;
    memset(d, 0x33, sizeof(d));
    for (unsigned i = 0; i < 8; i++)
        d[1 + i] = (uint8_t)(0xa0 + i);
    for (unsigned b0 = 0; b0 < 0x80; b0 += 0x0b) {
        d[0] = (uint8_t)b0;
        assert_int_equal(
            umx_roam_key(d, 29, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_QUIC, 8, k, &l, &kind), 1);
        assert_int_equal(kind, UMX_ROAM_QUIC);
        assert_int_equal(l, 8);
        assert_memory_equal(k, d + 1, 8);
        /* too short for header protection's sample */
        assert_int_equal(
            umx_roam_key(d, 28, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_QUIC, 8, k, &l, &kind), 0);
        /* not a QUIC route, or a server's datagram: nothing */
        assert_int_equal(umx_roam_key(d, 29, UMX_ROAM_FROM_CLIENT, 0, 8, k, &l, &kind), 0);
        assert_int_equal(
            umx_roam_key(d, 29, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_QUIC, 8, k, &l, &kind), 0);
        /* the old interface knows no route: only the ungreased form */
        assert_int_equal(umx_roam_key_client(d, 29, 8, k, &l, &kind), (b0 & 0x40) ? 1 : 0);
    }
    /* ids shorter than 4 bytes are no keys */
    d[0] = 0x41;
    for (size_t cl = 0; cl < UMX_ROAM_MIN_CID; cl++) {
        assert_int_equal(
            umx_roam_key(d, sizeof(d), UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_QUIC, cl, k, &l, &kind), 0);
        assert_int_equal(umx_roam_key_client(d, sizeof(d), cl, k, &l, &kind), 0);
    }
}

/* WireGuard: exact sizes, reserved bytes zero, right direction. */
static void test_roam_wireguard(void **unused)
{
    const struct sample *resp = find_sample("wireguard", "s1-response.hex");
    const struct sample *init = find_sample("wireguard", "s1-initiation.hex");
    const struct sample *data = find_sample("wireguard", "s1-transport-80.hex");
    const struct sample *cookie = find_sample("wireguard", "cookie-reply-synthetic.hex");
    uint8_t k[20], d[256];
    size_t l;
    int kind;

    (void)unused;
    assert_int_equal(resp->len, 92);
    memcpy(d, resp->data, 92);
    for (size_t n = 60; n < 130; n++) {
        assert_int_equal(umx_roam_key(d, n, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_WG, 0, k, &l, &kind),
                         n == 92);
        assert_int_equal(umx_roam_key_server(d, n, k, &l, &kind), n == 92);
    }
    assert_int_equal(umx_roam_key_server(init->data, init->len, k, &l, &kind), 1);
    assert_memory_equal(k, init->data + 4, 4);
    d[2] = 1; /* reserved byte */
    assert_int_equal(umx_roam_key_server(d, 92, k, &l, &kind), 0);
    /* client side: response, cookie reply, transport; not the initiation */
    assert_int_equal(
        umx_roam_key(data->data, data->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_WG, 0, k, &l, &kind),
        1);
    assert_int_equal(kind, UMX_ROAM_WG);
    assert_memory_equal(k, data->data + 4, 4);
    assert_int_equal(umx_roam_key_client(cookie->data, cookie->len, 0, k, &l, &kind), 1);
    assert_int_equal(umx_roam_key_client(init->data, init->len, 0, k, &l, &kind), 0);
    memcpy(d, data->data, data->len);
    assert_int_equal(umx_roam_key_client(d, data->len - 1, 0, k, &l, &kind), 0);
    assert_int_equal(umx_roam_key_client(d, 31, 0, k, &l, &kind), 0);
    /* transport data is not learnt from the server side (the index in it
     * is the client's) */
    assert_int_equal(umx_roam_key_server(d, data->len, k, &l, &kind), 0);
    /* a route that is not WireGuard */
    assert_int_equal(umx_roam_key(data->data, data->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN,
                                  0, k, &l, &kind),
                     0);
}

/* OpenVPN: client session ids and P_DATA_V2 peer-ids. */
static void test_roam_openvpn(void **unused)
{
    const struct sample *reset = find_sample("openvpn", "plain-0.hex");
    const struct sample *srv = find_sample("openvpn", "plain-1.hex");
    uint8_t k[20], d[64];
    size_t l;
    int kind;

    (void)unused;
    assert_int_equal(reset->data[0] >> 3, 7);
    assert_int_equal(umx_roam_key(reset->data, reset->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN,
                                  0, k, &l, &kind),
                     1);
    assert_int_equal(kind, UMX_ROAM_OVPN_SID);
    assert_int_equal(l, 8);
    assert_memory_equal(k, reset->data + 1, 8);
    /* the old interface gives no OpenVPN keys; nor does a non-OpenVPN route */
    assert_int_equal(umx_roam_key_client(reset->data, reset->len, 0, k, &l, &kind), 0);
    assert_int_equal(
        umx_roam_key(reset->data, reset->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_WG, 0, k, &l, &kind),
        0);
    /* the server's reset is not the client's session */
    assert_int_equal(srv->data[0] >> 3, 8);
    assert_int_equal(umx_roam_key(srv->data, srv->len, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN, 0,
                                  k, &l, &kind),
                     0);
    assert_int_equal(umx_roam_key(srv->data, srv->len, UMX_ROAM_FROM_SERVER, UMX_ROAM_P_OPENVPN, 0,
                                  k, &l, &kind),
                     0);
    /* P_DATA_V2, key id 1, peer-id 0x000102: both directions */
    memset(d, 0x5c, sizeof(d));
    d[0] = 9 << 3 | 1;
    d[1] = 0, d[2] = 1, d[3] = 2;
    for (int dir = 0; dir < 2; dir++) {
        assert_int_equal(
            umx_roam_key(d, 40, (enum umx_roam_dir)dir, UMX_ROAM_P_OPENVPN, 0, k, &l, &kind), 1);
        assert_int_equal(kind, UMX_ROAM_OVPN_PEER);
        assert_int_equal(l, 3);
        assert_memory_equal(k, d + 1, 3);
        assert_int_equal(
            umx_roam_key(d, 23, (enum umx_roam_dir)dir, UMX_ROAM_P_OPENVPN, 0, k, &l, &kind), 0);
    }
    d[1] = d[2] = d[3] = 0xff; /* no peer-id assigned */
    assert_int_equal(umx_roam_key(d, 40, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN, 0, k, &l, &kind),
                     0);
    /* a zero session id is no session */
    memset(d, 0, sizeof(d));
    d[0] = 4 << 3;
    assert_int_equal(umx_roam_key(d, 40, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_OPENVPN, 0, k, &l, &kind),
                     0);
    assert_int_equal(umx_roam_kind_proto(UMX_ROAM_OVPN_SID), UMX_ROAM_P_OPENVPN);
    assert_int_equal(umx_roam_kind_proto(UMX_ROAM_OVPN_PEER), UMX_ROAM_P_OPENVPN);
    assert_int_equal(umx_roam_kind_proto(UMX_ROAM_WG), UMX_ROAM_P_WG);
    assert_int_equal(umx_roam_kind_proto(UMX_ROAM_QUIC), UMX_ROAM_P_QUIC);
    assert_int_equal(umx_roam_kind_proto(UMX_ROAM_NONE), 0);
    assert_int_equal(umx_roam_kind_proto(99), 0);
    /* arguments */
    assert_int_equal(umx_roam_key(d, 40, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_ALL, 21, k, &l, &kind),
                     -EINVAL);
    assert_int_equal(umx_roam_key(NULL, 1, UMX_ROAM_FROM_CLIENT, UMX_ROAM_P_ALL, 0, k, &l, &kind),
                     -EINVAL);
    assert_int_equal(umx_roam_key(d, 40, (enum umx_roam_dir)7, UMX_ROAM_P_ALL, 0, k, &l, &kind), 0);
}

/* ---- the library's dispatch (lib/mux/dispatch.c) holds a split ClientHello ------- */

struct seen {
    unsigned n;
    int handler[8];
    size_t len[8];
    uint8_t tag[8];
};

static void on_seen(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct seen *s = arg;
    (void)m;
    if (s->n < 8) {
        s->handler[s->n] = d->handler;
        s->len[s->n] = d->len;
        s->tag[s->n] = d->len ? d->data[d->len - 1] : 0;
    }
    s->n++;
}

static void mux_pump(struct udpmux *m, const unsigned *count, unsigned want)
{
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do {
        struct pollfd p = {udpmux_fd(m), POLLIN, 0};
        poll(&p, 1, 20);
        assert_true(udpmux_process(m, 0) >= 0);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while (*count < want &&
             (t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 2000);
}

static int udp_client(void)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    return fd;
}

static void udp_send(int fd, const uint8_t *d, size_t n, const struct sockaddr_storage *to)
{
    assert_int_equal(sendto(fd, d, n, 0, (const struct sockaddr *)to, sizeof(struct sockaddr_in)),
                     (ssize_t)n);
}

static void test_mux_split_hello(void **unused)
{
    struct udpmux *m;
    struct seen other = {0}, want = {0}, def = {0};
    struct udpmux_stats st;
    struct sockaddr_storage to;
    uint8_t hello[4096], frames[1200], d1[1200], d2[1200];
    uint8_t dcid[8] = {7, 2, 3, 4, 5, 6, 7, 8};
    size_t hl = make_hello(hello, "split.example.org", 1700), fl;
    int hw, cl, cl2, fds[20];
    unsigned total;

    (void)unused;
    fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
    seal_initial(dcid, 0, frames, fl, d1);
    fl = crypto_frame(frames, 0, hello, 1000);
    seal_initial(dcid, 1, frames, fl, d2);

    assert_int_equal(udpmux_new(&m, NULL), 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    assert_int_equal(udpmux_endpoint_addr(m, 0, &to, NULL), 0);
    assert_true(udpmux_add_handler(m, "other", "quic sni=*.other.org", on_seen, &other, NULL, 0) >=
                0);
    hw = udpmux_add_handler(m, "split", "quic sni=split.example.org", on_seen, &want, NULL, 0);
    assert_true(hw >= 0);
    udpmux_set_default(m, on_seen, &def);

    /* the second half first: undecided, held; the first half decides, and
     * both go to the handler, in the order sent */
    cl = udp_client();
    udp_send(cl, d1, sizeof(d1), &to);
    mux_pump(m, &want.n, 1);
    assert_int_equal(want.n, 0);
    assert_int_equal(def.n, 0);
    udp_send(cl, d2, sizeof(d2), &to);
    mux_pump(m, &want.n, 2);
    assert_int_equal(want.n, 2);
    assert_int_equal(want.handler[0], hw);
    assert_int_equal(want.tag[0], d1[1199]);
    assert_int_equal(want.tag[1], d2[1199]);
    assert_int_equal(other.n, 0);
    assert_int_equal(def.n, 0);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_held, 1);
    assert_int_equal(st.rx_hold_dropped, 0);

    /* a held datagram of one peer never goes out with another peer's */
    dcid[0] = 50;
    fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
    seal_initial(dcid, 0, frames, fl, d1);
    udp_send(cl, d1, sizeof(d1), &to);
    cl2 = udp_client();
    udp_send(cl2, d2, sizeof(d2), &to); /* other peer: its own entry, undecided */
    mux_pump(m, &def.n, 1);
    assert_int_equal(want.n, 2);
    assert_int_equal(def.n, 0);

    /* the pool is bounded: 20 peers with a first half each, the oldest
     * are dropped and counted */
    for (int i = 0; i < 20; i++) {
        dcid[0] = (uint8_t)(100 + i);
        fl = crypto_frame(frames, 1000, hello + 1000, hl - 1000);
        seal_initial(dcid, 0, frames, fl, d1);
        fds[i] = udp_client();
        udp_send(fds[i], d1, sizeof(d1), &to);
    }
    total = 0;
    for (int i = 0; i < 50; i++) {
        mux_pump(m, &total, 1);
        udpmux_get_stats(m, &st);
        if (st.rx_held >= 1 + 2 + 20)
            break;
    }
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_held, 1 + 2 + 20);
    /* 22 undecided at once (the first one was delivered) in 16 slots */
    assert_int_equal(st.rx_hold_dropped, 2 + 20 - 16);
    /* after 3 s nothing can decide them any more: all 16 are dropped */
    {
        struct timespec ts = {3, 200000000};
        nanosleep(&ts, NULL);
    }
    assert_true(udpmux_process(m, 0) >= 0);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_hold_dropped, 2 + 20);
    for (int i = 0; i < 20; i++)
        close(fds[i]);
    close(cl);
    close(cl2);
    udpmux_free(m);
}

int main(int argc, char **argv)
{
    const char *d = argc > 1 ? argv[1] : getenv("UMX_TESTDATA");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),         cmocka_unit_test(test_first_bitmaps),
        cmocka_unit_test(test_positive_samples), cmocka_unit_test(test_negative_samples),
        cmocka_unit_test(test_cross_matches),    cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_random),           cmocka_unit_test(test_quic_sni_vectors),
        cmocka_unit_test(test_quic_split_hello), cmocka_unit_test(test_wireguard_pubkey),
        cmocka_unit_test(test_openvpn_keys),     cmocka_unit_test(test_openvpn_replay_window),
        cmocka_unit_test(test_stun_params),      cmocka_unit_test(test_dtls_params),
        cmocka_unit_test(test_turn_params),      cmocka_unit_test(test_roam),
        cmocka_unit_test(test_roam_dns_never),   cmocka_unit_test(test_roam_other_protocols),
        cmocka_unit_test(test_roam_quic_long),   cmocka_unit_test(test_roam_quic_short),
        cmocka_unit_test(test_roam_wireguard),   cmocka_unit_test(test_roam_openvpn),
        cmocka_unit_test(test_mux_split_hello),  cmocka_unit_test(test_rule_index),
        cmocka_unit_test(test_rule_index_more),
    };
    int r;

    if (!d) {
        fprintf(stderr, "usage: test-probes TESTDATA_DIR (or set UMX_TESTDATA)\n");
        return 2;
    }
    snprintf(g_dir, sizeof(g_dir), "%s", d);
    load_samples();
    r = cmocka_run_group_tests(tests, NULL, NULL);
    for (size_t i = 0; i < g_nsamples; i++)
        free(g_samples[i].data);
    return r;
}
