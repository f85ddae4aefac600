/*
 * classify-bench.c - cost of the built-in probes.
 *
 *   classify-bench [-d TESTDATA] [-i ITERS] [-p PASSES] [-q] [-r]
 *
 * 1. Per datagram: every sample of tests/data/samples (all 24 protocols,
 *    mid-session packets and the negative set: a mixed corpus) is run
 *    ITERS times (5 rounds, the fastest round counts) through
 *    udpmux_probe_classify(), the full default probe set; ns per call for
 *    each datagram, then the median, p90, p99 and mean over datagrams.
 *    Also per protocol directory (median).
 * 2. Mixed stream: PASSES passes over the corpus in a shuffled order (so
 *    branch predictors do not see one datagram many times in a row), in 5
 *    rounds, the fastest counts; ns per datagram overall.
 * 3. Keyed probes: microseconds per QUIC Initial decryption + ClientHello
 *    parse (quic sni=...), with and without the per-thread key cache;
 *    WireGuard mac1 and OpenVPN tls-auth verification.
 * -q runs only pass 2 once (for `valgrind --tool=callgrind`, which then
 *    gives instructions per datagram = Ir / datagrams printed).
 * -r runs only the route-set comparison, the daemon's classify() as bench/run
 *    sees it with muxa/muxp: one rule per built-in probe then `any`, against
 *    `any` alone, on bench/udpload's payload (which no probe matches), by
 *    trying every rule in order (may_match + umx_rule_eval, the loop
 *    classify() had) and through the candidate lists (umx_rule_index_eval);
 *    then both walks over the corpus, which must agree.
 * The data directory is -d, else $UMX_TESTDATA, else tests/data.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "udpmux.h"
#include "internal.h"
#include "rules/probe.h"
#include "rules/probes/registry.h"

#define MAXS 1024

struct dg {
    char dir[32];
    uint8_t *d;
    size_t n;
    double ns;
};

static struct dg g[MAXS];
static size_t ng;
static volatile int sink;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int hexv(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static void load(const char *root)
{
    char path[2048];
    DIR *top, *d;
    struct dirent *a, *b;
    static uint8_t buf[65536];

    snprintf(path, sizeof(path), "%s/samples", root);
    top = opendir(path);
    if (!top) {
        fprintf(stderr, "classify-bench: cannot open %s\n", path);
        exit(1);
    }
    while ((a = readdir(top))) {
        if (a->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/samples/%s", root, a->d_name);
        d = opendir(path);
        if (!d)
            continue;
        while ((b = readdir(d)) && ng < MAXS) {
            size_t l = strlen(b->d_name), n = 0;
            int c, hi = -1;
            FILE *f;
            if (l < 5 || strcmp(b->d_name + l - 4, ".hex"))
                continue;
            snprintf(path, sizeof(path), "%s/samples/%s/%s", root, a->d_name, b->d_name);
            f = fopen(path, "r");
            if (!f)
                continue;
            while ((c = fgetc(f)) != EOF && n < sizeof(buf)) {
                int v = hexv(c);
                if (v < 0)
                    continue;
                if (hi < 0) {
                    hi = v;
                } else {
                    buf[n++] = (uint8_t)(hi << 4 | v);
                    hi = -1;
                }
            }
            fclose(f);
            snprintf(g[ng].dir, sizeof(g[ng].dir), "%.31s", a->d_name);
            g[ng].d = malloc(n ? n : 1);
            memcpy(g[ng].d, buf, n);
            g[ng].n = n;
            ng++;
        }
        closedir(d);
    }
    closedir(top);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, size_t n, double p)
{
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return v[i];
}

static struct dg *by_name(const char *dir, size_t n)
{
    for (size_t i = 0; i < ng; i++)
        if (strcmp(g[i].dir, dir) == 0 && g[i].n == n)
            return &g[i];
    return NULL;
}

static void *mkparams(const char *probe, const char *key, const char *val, const char *key2,
                      const char *val2)
{
    const struct umx_probe *p = umx_probe_find(probe);
    struct umx_kv kv[2] = {{key, val}, {key2, val2}};
    char err[256];
    void *out = NULL;
    if (!p || p->params_new(&out, kv, key2 ? 2 : 1, err, sizeof(err))) {
        fprintf(stderr, "params %s %s=%s: %s\n", probe, key, val, err);
        exit(1);
    }
    return out;
}

/* us per call of probe p on datagrams a and b alternately; the verdicts
 * must be want_a and want_b every time. */
static double keyed_us(const struct umx_probe *p, void *params, struct dg *a, struct dg *b,
                       int iters, int want_a, int want_b)
{
    struct umx_probe_in ia = {a->d, a->n, NULL, 0, NULL}, ib = {b->d, b->n, NULL, 0, NULL};
    double best = 1e18;
    int ok = 0;

    /* best of 5 rounds, as for the per-datagram numbers */
    for (int round = 0; round < 5; round++) {
        uint64_t t0 = now_ns();
        for (int i = 0; i < iters / 5; i++) {
            ok += p->match(params, &ia) == want_a;
            ok += p->match(params, &ib) == want_b;
        }
        if ((double)(now_ns() - t0) < best)
            best = (double)(now_ns() - t0);
    }
    if (ok != 2 * (iters / 5) * 5)
        fprintf(stderr, "warning: %s gave unexpected verdicts\n", p->name);
    return best / 1000.0 / (2.0 * (iters / 5));
}

/* Every rule in order behind its pre-filter: classify() before the lists. */
static int loop_eval(struct udpmux_rule *const *rules, size_t n, const struct umx_probe_in *in)
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

static int index_eval(const struct umx_rule_index *idx, const struct umx_probe_in *in)
{
    int more, r = umx_rule_index_eval(idx, in, &more);
    return more ? -2 : r;
}

/* ns per datagram over the payloads, best of 5 rounds; lists or loop. */
static double route_ns(const struct umx_rule_index *idx, struct udpmux_rule *const *rules, size_t n,
                       uint8_t (*pl)[64], size_t npl, int iters)
{
    double best = 1e18;
    for (int round = 0; round < 5; round++) {
        uint64_t t0 = now_ns();
        for (int it = 0; it < iters / 5; it++)
            for (size_t i = 0; i < npl; i++) {
                struct umx_probe_in in = {pl[i], 64, NULL, 0, NULL};
                sink += idx ? index_eval(idx, &in) : loop_eval(rules, n, &in);
            }
        if ((double)(now_ns() - t0) < best)
            best = (double)(now_ns() - t0);
    }
    return best / ((double)(iters / 5) * (double)npl);
}

static int routes_bench(int iters)
{
    static struct umx_rule_index idx, idx_any;
    static uint8_t pl[256][64];
    struct udpmux_rule *rules[UMX_RULE_INDEX_MAX];
    size_t n = 0, bad = 0;
    char err[256];
    double loop_p, loop_a, list_p, list_a;

    for (size_t i = 0; i < umx_nprobes && n + 1 < UMX_RULE_INDEX_MAX; i++)
        if (udpmux_rule_compile(&rules[n++], umx_probes[i]->name, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s\n", umx_probes[i]->name, err);
            return 1;
        }
    if (udpmux_rule_compile(&rules[n++], "any", err, sizeof(err)) < 0)
        return 1;
    if (umx_rule_index_build(&idx, (const struct udpmux_rule *const *)rules, n) < 0 ||
        umx_rule_index_build(&idx_any, (const struct udpmux_rule *const *)&rules[n - 1], 1) < 0)
        return 1;
    /* bench/udpload's payload: magic 0x554c4431 (little-endian), flow id,
     * sequence, send time, zero filler; 256 sequence numbers */
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t magic = 0x554c4431u, flow = 1;
        uint64_t seq = 1000 + i, ts = 123456789000ull + 12500ull * i;
        memcpy(pl[i], &magic, 4);
        memcpy(pl[i] + 4, &flow, 4);
        memcpy(pl[i] + 8, &seq, 8);
        memcpy(pl[i] + 16, &ts, 8);
    }
    loop_a = route_ns(NULL, &rules[n - 1], 1, pl, 256, iters);
    loop_p = route_ns(NULL, rules, n, pl, 256, iters);
    list_a = route_ns(&idx_any, NULL, 0, pl, 256, iters);
    list_p = route_ns(&idx, NULL, 0, pl, 256, iters);
    printf("route set on udpload's payload (%zu rules: every probe, then any; %u candidates "
           "for 0x31), ns per datagram:\n",
           n, idx.n[0x31]);
    printf("  every rule in order:  any alone %.1f  probes+any %.1f  (+%.1f ns)\n", loop_a, loop_p,
           loop_p - loop_a);
    printf("  candidate lists:      any alone %.1f  probes+any %.1f  (+%.1f ns)\n", list_a, list_p,
           list_p - list_a);
    for (size_t i = 0; i < ng; i++) {
        struct umx_probe_in in = {g[i].d, g[i].n, NULL, 0, NULL};
        bad += loop_eval(rules, n, &in) != index_eval(&idx, &in);
    }
    printf("  corpus: %zu datagrams, %zu disagreements\n", ng, bad);
    for (size_t i = 0; i < n; i++)
        udpmux_rule_free(rules[i]);
    return bad != 0;
}

static int first_line(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f || !fgets(out, (int)cap, f)) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    out[strcspn(out, "\r\n")] = 0;
    return 0;
}

int main(int argc, char **argv)
{
    const char *root = getenv("UMX_TESTDATA");
    int iters = 2000, passes = 2000, quick = 0, routes = 0, opt;
    double *v;
    size_t *order;
    uint64_t t0, t1;

    while ((opt = getopt(argc, argv, "d:i:p:qr")) != -1) {
        switch (opt) {
        case 'd':
            root = optarg;
            break;
        case 'i':
            iters = (int)strtol(optarg, NULL, 10);
            break;
        case 'p':
            passes = (int)strtol(optarg, NULL, 10);
            break;
        case 'q':
            quick++;
            break;
        case 'r':
            routes = 1;
            break;
        default:
            fprintf(stderr,
                    "usage: classify-bench [-d TESTDATA] [-i ITERS] [-p PASSES] [-q] [-r]\n");
            return 2;
        }
    }
    load(root ? root : "tests/data");
    if (ng == 0) {
        fprintf(stderr, "no samples\n");
        return 1;
    }
    order = malloc(ng * sizeof(*order));
    v = malloc(ng * sizeof(*v));
    for (size_t i = 0; i < ng; i++)
        order[i] = i;
    srand(42);
    for (size_t i = ng - 1; i > 0; i--) {
        size_t j = (size_t)rand() % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    if (routes)
        return routes_bench(iters);
    if (quick) {
        /* -q: the engine's loop; -q -q (quick 2): the candidate lists */
        for (size_t i = 0; i < ng; i++)
            sink += quick > 1 ? umx_probe_classify_fast(g[order[i]].d, g[order[i]].n)
                              : udpmux_probe_classify(g[order[i]].d, g[order[i]].n);
        printf("datagrams classified: %zu\n", ng);
        return 0;
    }

    /* 1. per datagram: the best of 5 rounds, so that an interrupt or
     * another process on the core does not count as probe cost. */
    for (size_t i = 0; i < ng; i++) {
        double best = 1e18;
        for (int w = 0; w < 50; w++)
            sink += udpmux_probe_classify(g[i].d, g[i].n);
        for (int round = 0; round < 5; round++) {
            int calls = iters / 5 > 0 ? iters / 5 : 1;
            t0 = now_ns();
            for (int k = 0; k < calls; k++)
                sink += udpmux_probe_classify(g[i].d, g[i].n);
            t1 = now_ns();
            if ((double)(t1 - t0) / calls < best)
                best = (double)(t1 - t0) / calls;
        }
        g[i].ns = best;
        v[i] = g[i].ns;
    }
    qsort(v, ng, sizeof(*v), cmp_double);
    {
        double sum = 0;
        for (size_t i = 0; i < ng; i++)
            sum += v[i];
        printf("per-datagram (%zu datagrams, %d calls each, full default probe set):\n", ng, iters);
        printf("  median %.1f ns  p90 %.1f ns  p99 %.1f ns  max %.1f ns  mean %.1f ns\n",
               pct(v, ng, 0.5), pct(v, ng, 0.9), pct(v, ng, 0.99), v[ng - 1], sum / (double)ng);
    }
    /* per protocol directory */
    printf("  by sample directory (median ns):\n");
    for (size_t i = 0; i < ng; i++) {
        size_t k = 0, seen = 0;
        double dv[MAXS];
        for (size_t j = 0; j < i; j++)
            seen |= strcmp(g[j].dir, g[i].dir) == 0;
        if (seen)
            continue;
        for (size_t j = i; j < ng; j++)
            if (strcmp(g[j].dir, g[i].dir) == 0)
                dv[k++] = g[j].ns;
        qsort(dv, k, sizeof(*dv), cmp_double);
        printf("    %-20s %3zu samples  %7.1f ns\n", g[i].dir, k, pct(dv, k, 0.5));
    }

    /* the same with the registry's per-first-byte candidate lists */
    for (size_t i = 0; i < ng; i++) {
        double best = 1e18;
        for (int round = 0; round < 5; round++) {
            int calls = iters / 5 > 0 ? iters / 5 : 1;
            t0 = now_ns();
            for (int k = 0; k < calls; k++)
                sink += umx_probe_classify_fast(g[i].d, g[i].n);
            t1 = now_ns();
            if ((double)(t1 - t0) / calls < best)
                best = (double)(t1 - t0) / calls;
        }
        v[i] = best;
    }
    qsort(v, ng, sizeof(*v), cmp_double);
    printf("umx_probe_classify_fast (candidate lists): median %.1f ns  p90 %.1f ns  p99 %.1f "
           "ns\n",
           pct(v, ng, 0.5), pct(v, ng, 0.9), pct(v, ng, 0.99));

    /* 2. mixed stream (best of 5 rounds of PASSES/5 passes) */
    {
        double best = 1e18, bestf = 1e18;
        int pp = passes / 5 > 0 ? passes / 5 : 1;
        for (int round = 0; round < 5; round++) {
            t0 = now_ns();
            for (int p = 0; p < pp; p++)
                for (size_t i = 0; i < ng; i++)
                    sink += udpmux_probe_classify(g[order[i]].d, g[order[i]].n);
            t1 = now_ns();
            if ((double)(t1 - t0) < best)
                best = (double)(t1 - t0);
            t0 = now_ns();
            for (int p = 0; p < pp; p++)
                for (size_t i = 0; i < ng; i++)
                    sink += umx_probe_classify_fast(g[order[i]].d, g[order[i]].n);
            t1 = now_ns();
            if ((double)(t1 - t0) < bestf)
                bestf = (double)(t1 - t0);
        }
        printf("mixed stream: %zu datagrams x %d passes, %.1f ns per datagram "
               "(umx_probe_classify_fast: %.1f ns)\n",
               ng, pp, best / ((double)ng * pp), bestf / ((double)ng * pp));
    }

    /* 3. keyed probes */
    {
        const struct umx_probe *q = umx_probe_find("quic");
        void *sni = mkparams("quic", "sni", "www.example.org", NULL, NULL);
        struct dg *www = NULL, *api = NULL;
        for (size_t i = 0; i < ng; i++) {
            if (strcmp(g[i].dir, "quic") || g[i].n != 1200 || g[i].d[5] != 18 || (g[i].d[0] & 0x30))
                continue;
            /* the two ngtcp2 client Initials (18-byte DCIDs): www first */
            if (q->match(sni, &(struct umx_probe_in){g[i].d, g[i].n, NULL, 0, NULL}))
                www = &g[i];
            else
                api = &g[i];
        }
        if (www && api) {
            /* same flow twice: keys come from the per-thread cache */
            double hit = keyed_us(q, sni, www, www, 20000, UMX_MATCH, UMX_MATCH);
            /* two flows alternating: HKDF for every Initial */
            double miss = keyed_us(q, sni, www, api, 20000, UMX_MATCH, UMX_NOMATCH);
            printf("quic sni=: %.2f us per client Initial (header protection, AES-GCM open, "
                   "CRYPTO reassembly, ClientHello), %.2f us including key derivation\n",
                   hit, miss);
        }
        q->params_free(sni);
    }
    {
        const struct umx_probe *w = umx_probe_find("wireguard");
        char path[2048], key[128];
        struct dg *i1 = by_name("wireguard", 148);
        snprintf(path, sizeof(path), "%s/samples/wireguard/s1.pub", root ? root : "tests/data");
        if (i1 && first_line(path, key, sizeof(key)) == 0) {
            void *pk = mkparams("wireguard", "pubkey", key, NULL, NULL);
            int want = w->match(pk, &(struct umx_probe_in){i1->d, i1->n, NULL, 0, NULL});
            printf("wireguard pubkey=: %.2f us per handshake initiation (mac1)\n",
                   keyed_us(w, pk, i1, i1, 20000, want, want));
            w->params_free(pk);
        }
    }
    {
        const struct umx_probe *o = umx_probe_find("openvpn");
        char path[2048];
        struct dg *r = by_name("openvpn", 42);
        snprintf(path, sizeof(path), "%s/samples/openvpn/ta1.key", root ? root : "tests/data");
        if (r && access(path, R_OK) == 0) {
            void *ta = mkparams("openvpn", "tls-auth", path, "max-skew", "0");
            int want = o->match(ta, &(struct umx_probe_in){r->d, r->n, NULL, 0, NULL});
            printf("openvpn tls-auth=: %.2f us per reset (HMAC-SHA1)\n",
                   keyed_us(o, ta, r, r, 20000, want, want));
            o->params_free(ta);
        }
    }
    free(order);
    free(v);
    for (size_t i = 0; i < ng; i++)
        free(g[i].d);
    return sink == 0x7fffffff;
}
