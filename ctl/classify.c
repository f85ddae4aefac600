/*
 * classify.c - `udpmuxctl classify [-c CONFIG] FILE.pcap`: runs every UDP
 * datagram of a capture through the built-in probes (default order) or
 * through a udpmuxd config's routes, and prints what each would match.
 * See classify.h for the output format and exit codes.
 */
#include "classify.h"

#include <errno.h>
#include <getopt.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h" /* daemon/config.h: umxd_config_load */
#include "udpmux.h"

#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_DATAERR_ 65
#define EX_NOINPUT_ 66

static void usage(FILE *f)
{
    fprintf(f, "usage: udpmuxctl classify [-c CONFIG] FILE.pcap\n"
               "  Prints FRAME<TAB>PROBE for every UDP datagram (first built-in probe\n"
               "  that matches in default order, or '-'), then a per-probe summary.\n"
               "  -c CONFIG  classify with the config's [route NAME] match rules instead\n"
               "             (first matching route wins) and print route names.\n");
}

struct names {
    size_t n;
    const char **name; /* probe or route names, in order */
    unsigned long *count;
};

static int classify_file(pcap_t *pc, const struct umxd_config *cfg, struct names *nm)
{
    int lt = pcap_datalink(pc);
    if (!ctl_link_supported(lt)) {
        fprintf(stderr, "udpmuxctl classify: unsupported link type %d (%s)\n", lt,
                pcap_datalink_val_to_name(lt) ? pcap_datalink_val_to_name(lt) : "?");
        return EX_DATAERR_;
    }
    unsigned long frame = 0, unmatched = 0, fragments = 0, truncated = 0;
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
            unmatched++;
            printf("%lu\t-\n", frame);
            continue;
        }
        long idx = -1;
        if (cfg) {
            struct udpmux_match_input in = {
                .data = fr.payload,
                .len = fr.len,
                .peer = (const struct sockaddr *)&fr.src,
                .now_ns = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec * 1000,
            };
            for (unsigned r = 0; r < cfg->nroutes; r++) {
                if (cfg->routes[r].rule && udpmux_rule_match(cfg->routes[r].rule, &in)) {
                    idx = r;
                    break;
                }
            }
        } else {
            int p = udpmux_probe_classify(fr.payload, fr.len);
            if (p >= 0 && (size_t)p < nm->n)
                idx = p;
        }
        if (idx >= 0) {
            nm->count[idx]++;
            printf("%lu\t%s\n", frame, nm->name[idx]);
        } else {
            unmatched++;
            printf("%lu\t-\n", frame);
        }
    }
    if (rc == -1) {
        fflush(stdout);
        fprintf(stderr, "udpmuxctl classify: frame %lu: %s\n", frame + 1, pcap_geterr(pc));
        return EX_DATAERR_;
    }
    for (size_t i = 0; i < nm->n; i++)
        if (nm->count[i])
            printf("# %s %lu\n", nm->name[i], nm->count[i]);
    printf("# - %lu\n# fragments %lu\n# truncated %lu\n", unmatched, fragments, truncated);
    return EX_OK_;
}

int ctl_classify_main(int argc, char **argv)
{
    const char *config = NULL;
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
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
        case 'h':
            usage(stdout);
            return EX_OK_;
        default:
            usage(stderr);
            return EX_USAGE_;
        }
    }
    if (optind + 1 != argc) {
        usage(stderr);
        return EX_USAGE_;
    }
    const char *file = argv[optind];

    struct umxd_config *cfg = NULL;
    if (config) {
        char err[512] = "";
        int r = umxd_config_load(config, &cfg, err, sizeof(err));
        if (r < 0) {
            fprintf(stderr, "udpmuxctl classify: %s\n", err[0] ? err : strerror(-r));
            return (r == -ENOENT || r == -EACCES) ? EX_NOINPUT_ : EX_USAGE_;
        }
    }

    FILE *f = fopen(file, "rb");
    if (!f) {
        fprintf(stderr, "udpmuxctl classify: %s: %s\n", file, strerror(errno));
        umxd_config_free(cfg);
        return EX_NOINPUT_;
    }
    char errbuf[PCAP_ERRBUF_SIZE] = "";
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, errbuf);
    if (!pc) {
        fclose(f);
        fprintf(stderr, "udpmuxctl classify: %s: %s\n", file, errbuf);
        umxd_config_free(cfg);
        return EX_DATAERR_;
    }

    struct names nm = {0};
    nm.n = cfg ? cfg->nroutes : udpmux_probe_count();
    nm.name = calloc(nm.n ? nm.n : 1, sizeof(*nm.name));
    nm.count = calloc(nm.n ? nm.n : 1, sizeof(*nm.count));
    int rc;
    if (!nm.name || !nm.count) {
        fprintf(stderr, "udpmuxctl classify: out of memory\n");
        rc = 70;
    } else {
        for (size_t i = 0; i < nm.n; i++)
            nm.name[i] = cfg ? cfg->routes[i].name : udpmux_probe_name(i);
        rc = classify_file(pc, cfg, &nm);
    }
    free(nm.name);
    free(nm.count);
    pcap_close(pc); /* closes f */
    umxd_config_free(cfg);
    if (fflush(stdout) != 0 && rc == EX_OK_)
        rc = 74;
    return rc;
}
