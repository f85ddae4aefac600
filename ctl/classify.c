/*
 * classify.c - `udpmuxctl classify [-c CONFIG] [--per-datagram] FILE.pcap|-`
 * and `udpmuxctl classify [-c CONFIG] --hex HEX`: what udpmuxd would do with
 * each UDP datagram of a capture.
 *
 * By default every datagram goes through the daemon's own decision engine
 * (daemon/path/replay.c): flows, replies (a datagram from the local side of
 * a flow belongs to that flow), roaming keys, classify = first|every, held
 * datagrams of split QUIC ClientHellos, admission limits. Without -c the
 * config is one forward route per built-in probe in default order, so a
 * datagram gets the probe that matches it and, when none does, the
 * protocol of the flow it belongs to. --per-datagram keeps the stateless
 * mode: each datagram against the rules alone.
 *
 * Output: FRAME<TAB>NAME[<TAB>HOW] per UDP datagram (NAME: probe or route,
 * '-' for none; HOW, engine mode only: probe, flow, roamed, held, reply,
 * relay or the drop reason), then '# NAME COUNT' lines. See classify.h for
 * the frame decoder and exit codes.
 */
#include "classify.h"

#include <errno.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h" /* daemon/config.h: umxd_config_load */
#include "path/replay.h"
#include "util/hex.h"
#include "udpmux.h"

#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_NOINPUT_ 66

static void usage(FILE *f)
{
    fprintf(f, "usage: udpmuxctl classify [-c CONFIG] [--per-datagram] FILE.pcap|-\n"
               "       udpmuxctl classify [-c CONFIG] --hex HEX\n"
               "  Prints FRAME<TAB>NAME<TAB>HOW for every UDP datagram of the capture ('-':\n"
               "  standard input), as udpmuxd's decision engine sees it: flows, replies,\n"
               "  roaming, classify = every, held datagrams. NAME is the route (with -c) or\n"
               "  the probe (first built-in probe in default order, or the protocol of the\n"
               "  datagram's flow), '-' for none. HOW: probe, flow, roamed, held, reply,\n"
               "  relay, or the reason it was dropped. Then a per-name summary.\n"
               "  -c CONFIG       use the config's routes (first match wins)\n"
               "  --per-datagram  each datagram alone against the rules (FRAME<TAB>NAME)\n"
               "  --hex HEX       classify one datagram given in hex\n");
}

struct names {
    size_t n;
    const char **name; /* probe or route names, in order */
    unsigned long *count;
};

struct run {
    const struct umxd_config *cfg; /* -c, per-datagram mode */
    struct umxd_replay *rp;        /* engine mode */
    struct names nm;
    unsigned long unmatched;
};

/* The stateless answer for one datagram: a route or probe index, or -1. */
static long per_datagram(const struct run *rn, const uint8_t *p, size_t n,
                         const struct sockaddr *peer, uint64_t now)
{
    if (rn->cfg) {
        struct udpmux_match_input in = {.data = p, .len = n, .peer = peer, .now_ns = now};
        for (unsigned r = 0; r < rn->cfg->nroutes; r++)
            if (rn->cfg->routes[r].rule && udpmux_rule_match(rn->cfg->routes[r].rule, &in))
                return r;
        return -1;
    }
    int pi = udpmux_probe_classify(p, n);
    return pi >= 0 && (size_t)pi < rn->nm.n ? pi : -1;
}

static void one(struct run *rn, unsigned long frame, const uint8_t *p, size_t n,
                const struct sockaddr *src, const struct sockaddr *dst, uint64_t now)
{
    long idx;
    const char *how = NULL;
    if (rn->rp) {
        struct umxd_replay_out o;
        umxd_replay_datagram(rn->rp, src, dst, p, n, now, &o);
        idx = o.route;
        how = o.how;
    } else {
        idx = per_datagram(rn, p, n, src, now);
    }
    if (idx >= 0 && (size_t)idx < rn->nm.n) {
        rn->nm.count[idx]++;
        printf("%lu\t%s", frame, rn->nm.name[idx]);
    } else {
        rn->unmatched++;
        printf("%lu\t-", frame);
    }
    if (how)
        printf("\t%s", how);
    putchar('\n');
}

static void summary(const struct run *rn)
{
    for (size_t i = 0; i < rn->nm.n; i++)
        if (rn->nm.count[i])
            printf("# %s %lu\n", rn->nm.name[i], rn->nm.count[i]);
}

static int classify_file(pcap_t *pc, struct run *rn)
{
    int lt = pcap_datalink(pc);
    if (!ctl_link_supported(lt)) {
        fprintf(stderr, "udpmuxctl classify: unsupported link type %d (%s)\n", lt,
                pcap_datalink_val_to_name(lt) ? pcap_datalink_val_to_name(lt) : "?");
        return EX_DATAERR_;
    }
    unsigned long frame = 0, fragments = 0, truncated = 0;
    struct pcap_pkthdr *h;
    const u_char *pkt;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &pkt)) == 1) {
        frame++;
        struct ctl_frame fr;
        size_t caplen = h->caplen;
        if (caplen > h->len)
            caplen = h->len; /* never trust more than the wire length */
        enum ctl_frame_kind k = ctl_decode_frame(lt, pkt, caplen, &fr);
        if (k == CTL_FRAME_OTHER)
            continue;
        if (k == CTL_FRAME_FRAGMENT || k == CTL_FRAME_TRUNCATED) {
            if (k == CTL_FRAME_FRAGMENT)
                fragments++;
            else
                truncated++;
            rn->unmatched++;
            printf("%lu\t-%s\n", frame, rn->rp ? "\tunparsed" : "");
            continue;
        }
        one(rn, frame, fr.payload, fr.len, (const struct sockaddr *)&fr.src,
            (const struct sockaddr *)&fr.dst,
            (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec * 1000);
    }
    if (rc == -1) {
        fflush(stdout);
        fprintf(stderr, "udpmuxctl classify: frame %lu: %s\n", frame + 1, pcap_geterr(pc));
        return EX_DATAERR_;
    }
    summary(rn);
    printf("# - %lu\n# fragments %lu\n# truncated %lu\n", rn->unmatched, fragments, truncated);
    return EX_OK_;
}

static int classify_hex(struct run *rn, const char *hex)
{
    static uint8_t buf[65535];
    /* the library's hex reader: spaces, ':' and line ends between bytes */
    long n = umx_hex_decode(hex, strlen(hex), ": \t\n", UMX_HEX_0X, buf, sizeof(buf));
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(443)};
    if (n < 0) {
        fprintf(stderr, "udpmuxctl classify: --hex: not an even number of hex digits\n");
        return EX_USAGE_;
    }
    src.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1, documentation range */
    if (rn->cfg && rn->cfg->nlisten)
        memcpy(&dst, &rn->cfg->listen[0],
               rn->cfg->listen[0].ss_family == AF_INET ? sizeof(dst) : 0);
    one(rn, 1, buf, (size_t)n, (const struct sockaddr *)&src, (const struct sockaddr *)&dst, 1);
    summary(rn);
    return EX_OK_;
}

/* Without -c: one forward route per probe, default order, so the engine
 * gives each datagram its probe or its flow's. */
static int probe_config(struct umxd_config **out, char *err, size_t errlen)
{
    size_t n = udpmux_probe_count(), cap = 256 + n * 128, off;
    char *t = malloc(cap);
    int r;
    if (!t)
        return -ENOMEM;
    off = (size_t)snprintf(t, cap, "[listen]\naddress = 0.0.0.0:1\n");
    for (size_t i = 0; i < n && off < cap; i++)
        off +=
            (size_t)snprintf(t + off, cap - off, "[route %s]\nmatch = %s\nforward = 127.0.0.1:9\n",
                             udpmux_probe_name(i), udpmux_probe_name(i));
    r = umxd_config_load_string(t, "built-in probes", out, err, errlen);
    free(t);
    return r;
}

int ctl_classify_main(int argc, char **argv)
{
    const char *config = NULL, *hex = NULL;
    int stateless = 0;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"hex", required_argument, NULL, 'x'},
        {"per-datagram", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1; /* callable after the caller's own getopt */
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config = optarg;
            break;
        case 'x':
            hex = optarg;
            break;
        case 'p':
            stateless = 1;
            break;
        case 'h':
            usage(stdout);
            return EX_OK_;
        default:
            usage(stderr);
            return EX_USAGE_;
        }
    }
    if (hex ? optind != argc : optind + 1 != argc) {
        usage(stderr);
        return EX_USAGE_;
    }

    struct umxd_config *cfg = NULL;
    char err[512] = "";
    if (config) {
        int r = umxd_config_load(config, &cfg, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "udpmuxctl classify: %s\n", err[0] ? err : strerror(-r));
            return (r == -ENOENT || r == -EACCES) ? EX_NOINPUT_ : EX_USAGE_;
        }
    }

    struct run rn = {0};
    int rc = EX_OK_;
    if (stateless) {
        rn.cfg = cfg;
    } else {
        struct umxd_config *ec = cfg;
        int r = ec ? 0 : probe_config(&ec, err, sizeof(err));
        if (r == 0)
            r = umxd_replay_new(&rn.rp, ec);
        if (r < 0) {
            fprintf(stderr, "udpmuxctl classify: %s\n", err[0] ? err : strerror(-r));
            if (ec != cfg)
                umxd_config_free(ec);
            umxd_config_free(cfg);
            return 70;
        }
        cfg = NULL; /* the replay owns it now */
        rn.cfg = NULL;
    }
    const struct umxd_config *names = rn.rp ? umxd_replay_config(rn.rp) : rn.cfg;
    rn.nm.n = names ? names->nroutes : udpmux_probe_count();
    rn.nm.name = calloc(rn.nm.n ? rn.nm.n : 1, sizeof(*rn.nm.name));
    rn.nm.count = calloc(rn.nm.n ? rn.nm.n : 1, sizeof(*rn.nm.count));
    if (!rn.nm.name || !rn.nm.count) {
        fprintf(stderr, "udpmuxctl classify: out of memory\n");
        rc = 70;
        goto out;
    }
    for (size_t i = 0; i < rn.nm.n; i++)
        rn.nm.name[i] = names ? names->routes[i].name : udpmux_probe_name(i);

    if (hex) {
        rc = classify_hex(&rn, hex);
        goto out;
    }
    const char *file = argv[optind];
    FILE *f = strcmp(file, "-") == 0 ? stdin : fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "udpmuxctl classify: %s: %s\n", file, strerror(errno));
        rc = EX_NOINPUT_;
        goto out;
    }
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (!pc) {
        if (f != stdin)
            fclose(f);
        fprintf(stderr, "udpmuxctl classify: %s: %s\n", file, errbuf);
        rc = EX_DATAERR_;
        goto out;
    }
    rc = classify_file(pc, &rn);
    pcap_close(pc); /* closes f */
out:
    free(rn.nm.name);
    free(rn.nm.count);
    umxd_replay_free(rn.rp);
    umxd_config_free(cfg);
    if (fflush(stdout) != 0 && rc == EX_OK_)
        rc = 74;
    return rc;
}
