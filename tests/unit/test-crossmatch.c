/*
 * test-crossmatch.c - every probe against every real (or documented crafted)
 * capture in tests/data/pcap.
 *
 * For each capture listed in tests/data/pcap/MANIFEST (directory from the
 * environment variable UMX_TESTDATA, i.e. tests/data), every UDP payload is
 * run through every built-in probe on its own (rule text = the probe name,
 * compiled with udpmux_rule_compile) and through udpmux_probe_classify()
 * (default order). Per datagram it asserts that:
 *   - it matches its own probe (unless the manifest marks it ~probe: an
 *     encrypted mid-flow packet that may or may not match);
 *   - it matches no other probe except the collisions the manifest names;
 *   - default-order classification returns the expected probe (or, for
 *     ~probe, that probe, none, or one of the named collisions).
 * A datagram marked !probe is a known probe miss: it is checked like probe
 * but reported as XFAIL instead of failing (and as XPASS once fixed), so
 * the list of open probe bugs lives in the MANIFEST and CI stays usable.
 * A listed collision that no longer happens is reported as STALE (not a
 * failure) so the MANIFEST can be kept accurate.
 * On any failure the whole probe x capture match matrix is printed, with a
 * list of every failing datagram, so the probe author sees everything at
 * once. Set UMX_CROSSMATCH_VERBOSE=1 to print the matrix on success too.
 * A last test checks that every *.pcap in the directory is in the manifest.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../ctl/classify.h"
#include "udpmux.h"

#define MAX_PROBES 64
#define MAX_TOKENS 64
#define MAX_FILES 64
#define MAX_COLL 8

enum want {
    WANT_PROBE = 0, /* must match probe, classify == probe */
    WANT_MAYBE,     /* ~probe */
    WANT_NONE,      /* - */
    WANT_XFAIL,     /* !probe: should match probe; a known probe bug, reported not failed */
};

struct token {
    unsigned long lo[16], hi[16];
    unsigned nranges;
    int collide; /* 0: expectation, 1: collision list */
    enum want want;
    int probe;          /* expectation: probe index, -1 for '-' */
    int coll[MAX_COLL]; /* collision probe indices */
    unsigned ncoll;
};

struct capfile {
    char name[128];
    char source[512];
    int line;
    struct token tok[MAX_TOKENS];
    unsigned ntok;
    int parse_error;
    char parse_msg[256];
    /* results */
    int ran;
    unsigned long datagrams;
    unsigned long matches[MAX_PROBES]; /* datagrams matched by each probe */
    unsigned long classified[MAX_PROBES + 1];
    unsigned long failures;
};

static struct {
    char dir[PATH_MAX];
    size_t nprobes;
    const char *names[MAX_PROBES];
    struct udpmux_rule *rules[MAX_PROBES];
    struct capfile files[MAX_FILES];
    unsigned nfiles;
    int manifest_ok;
    char manifest_msg[512];
    char *failures; /* accumulated failure lines */
    size_t failures_len, failures_cap;
    unsigned long nfail;
    char *notes; /* known probe bugs (xfail) and fixed ones (xpass) */
    size_t notes_len, notes_cap;
    unsigned long nnotes;
} G;

static void append(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    if (*len + n + 2 > *cap) {
        size_t c = *cap ? *cap * 2 : 8192;
        while (c < *len + n + 2)
            c *= 2;
        char *p = realloc(*buf, c);
        if (!p)
            return;
        *buf = p;
        *cap = c;
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[(*len)++] = '\n';
    (*buf)[*len] = '\0';
}

static void fail_line(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    G.nfail++;
    if (G.nfail > 400)
        return; /* keep the report readable */
    append(&G.failures, &G.failures_len, &G.failures_cap, buf, (size_t)n);
}

static void note_line(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof(buf))
        n = sizeof(buf) - 1;
    G.nnotes++;
    if (G.nnotes <= 200)
        append(&G.notes, &G.notes_len, &G.notes_cap, buf, (size_t)n);
}

static int probe_index(const char *name)
{
    for (size_t i = 0; i < G.nprobes; i++)
        if (strcmp(G.names[i], name) == 0)
            return (int)i;
    return -1;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* SEL: all | N | N-M | comma list of those. */
static int parse_sel(const char *sel, struct token *t)
{
    if (strcmp(sel, "all") == 0) {
        t->lo[0] = 1;
        t->hi[0] = ULONG_MAX;
        t->nranges = 1;
        return 0;
    }
    const char *p = sel;
    while (*p) {
        if (t->nranges >= 16)
            return -1;
        char *end;
        errno = 0;
        unsigned long lo = strtoul(p, &end, 10), hi = lo;
        if (end == p || errno || lo == 0)
            return -1;
        p = end;
        if (*p == '-') {
            p++;
            hi = strtoul(p, &end, 10);
            if (end == p || hi < lo)
                return -1;
            p = end;
        }
        t->lo[t->nranges] = lo;
        t->hi[t->nranges] = hi;
        t->nranges++;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return t->nranges ? 0 : -1;
}

static int parse_tokens(struct capfile *cf, char *field, int collide)
{
    char *save = NULL;
    for (char *w = strtok_r(field, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (cf->ntok >= MAX_TOKENS) {
            snprintf(cf->parse_msg, sizeof(cf->parse_msg), "too many tokens");
            return -1;
        }
        struct token *t = &cf->tok[cf->ntok];
        memset(t, 0, sizeof(*t));
        t->collide = collide;
        char *op = strchr(w, collide ? '+' : '=');
        if (!op) {
            snprintf(cf->parse_msg, sizeof(cf->parse_msg), "token '%s': expected SEL%cWHAT", w,
                     collide ? '+' : '=');
            return -1;
        }
        *op = '\0';
        char *what = op + 1;
        if (parse_sel(w, t) < 0) {
            snprintf(cf->parse_msg, sizeof(cf->parse_msg), "bad frame selector '%s'", w);
            return -1;
        }
        if (collide) {
            char *s2 = NULL;
            for (char *p = strtok_r(what, ",", &s2); p; p = strtok_r(NULL, ",", &s2)) {
                int idx = probe_index(p);
                if (idx < 0 || t->ncoll >= MAX_COLL) {
                    snprintf(cf->parse_msg, sizeof(cf->parse_msg), "unknown probe '%s'", p);
                    return -1;
                }
                t->coll[t->ncoll++] = idx;
            }
        } else if (strcmp(what, "-") == 0) {
            t->want = WANT_NONE;
            t->probe = -1;
        } else {
            t->want = WANT_PROBE;
            if (what[0] == '~') {
                t->want = WANT_MAYBE;
                what++;
            } else if (what[0] == '!') {
                t->want = WANT_XFAIL;
                what++;
            }
            t->probe = probe_index(what);
            if (t->probe < 0) {
                snprintf(cf->parse_msg, sizeof(cf->parse_msg), "unknown probe '%s'", what);
                return -1;
            }
        }
        cf->ntok++;
    }
    return 0;
}

static int sel_has(const struct token *t, unsigned long frame)
{
    for (unsigned i = 0; i < t->nranges; i++)
        if (frame >= t->lo[i] && frame <= t->hi[i])
            return 1;
    return 0;
}

static int load_manifest(void)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/MANIFEST", G.dir);
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(G.manifest_msg, sizeof(G.manifest_msg), "%.300s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0;
    while (fgets(line, sizeof(line), f)) {
        lineno++;
        char *s = trim(line);
        if (!*s || *s == '#')
            continue;
        if (G.nfiles >= MAX_FILES) {
            snprintf(G.manifest_msg, sizeof(G.manifest_msg), "line %d: too many files", lineno);
            fclose(f);
            return -1;
        }
        struct capfile *cf = &G.files[G.nfiles++];
        memset(cf, 0, sizeof(*cf));
        cf->line = lineno;
        char *fields[4] = {0};
        int nf = 0;
        char *p = s;
        while (nf < 4) {
            fields[nf++] = p;
            char *bar = strstr(p, " | ");
            if (!bar)
                break;
            *bar = '\0';
            p = bar + 3;
        }
        if (nf < 3) {
            cf->parse_error = 1;
            snprintf(cf->parse_msg, sizeof(cf->parse_msg), "expected FILE | SOURCE | EXPECT");
            snprintf(cf->name, sizeof(cf->name), "%.100s", trim(fields[0]));
            continue;
        }
        snprintf(cf->name, sizeof(cf->name), "%s", trim(fields[0]));
        snprintf(cf->source, sizeof(cf->source), "%s", trim(fields[1]));
        if (parse_tokens(cf, trim(fields[2]), 0) < 0 ||
            (nf > 3 && parse_tokens(cf, trim(fields[3]), 1) < 0))
            cf->parse_error = 1;
    }
    fclose(f);
    return 0;
}

static void print_matrix(void)
{
    fprintf(stderr, "\n=== crossmatch matrix: datagrams of each capture matched by each probe "
                    "(own probe in [brackets]) ===\n");
    fprintf(stderr, "probes:");
    for (size_t i = 0; i < G.nprobes; i++)
        fprintf(stderr, " %zu=%s", i, G.names[i]);
    fprintf(stderr, "\n%-24s %5s %5s |", "capture", "n", "fail");
    for (size_t i = 0; i < G.nprobes; i++)
        fprintf(stderr, "%5zu", i);
    fprintf(stderr, " | %5s\n", "none");
    for (unsigned f = 0; f < G.nfiles; f++) {
        struct capfile *cf = &G.files[f];
        if (!cf->ran)
            continue;
        /* own probe: the one of the first expectation token */
        int own = -1;
        for (unsigned t = 0; t < cf->ntok; t++)
            if (!cf->tok[t].collide && cf->tok[t].probe >= 0 && cf->tok[t].want == WANT_PROBE) {
                own = cf->tok[t].probe;
                break;
            }
        fprintf(stderr, "%-24.24s %5lu %5lu |", cf->name, cf->datagrams, cf->failures);
        for (size_t i = 0; i < G.nprobes; i++) {
            if ((int)i == own)
                fprintf(stderr, " [%2lu]", cf->matches[i]);
            else if (cf->matches[i])
                fprintf(stderr, "%5lu", cf->matches[i]);
            else
                fprintf(stderr, "    .");
        }
        fprintf(stderr, " | %5lu\n", cf->classified[G.nprobes]);
    }
    fprintf(stderr, "(columns: individual probe matches; 'none': datagrams that default-order "
                    "classification left unmatched)\n");
    if (G.nfail) {
        fprintf(stderr, "\n=== %lu failing checks%s ===\n%s", G.nfail,
                G.nfail > 400 ? " (first 400 shown)" : "", G.failures ? G.failures : "");
    }
}

static void print_notes(void)
{
    if (G.nnotes)
        fprintf(stderr,
                "\n=== %lu notes: known probe misses (XFAIL), fixed ones (XPASS), stale collisions "
                "(STALE) ===\n%s",
                G.nnotes, G.notes ? G.notes : "");
}

static const char *pname(int idx)
{
    return idx >= 0 && (size_t)idx < G.nprobes ? G.names[idx] : "-";
}

static void run_capture(void **state)
{
    struct capfile *cf = *state;
    assert_false(G.manifest_ok == 0);
    if (cf->parse_error) {
        fail_line("%s (MANIFEST line %d): %s", cf->name, cf->line, cf->parse_msg);
        fail_msg("MANIFEST line %d (%s): %s", cf->line, cf->name, cf->parse_msg);
    }
    char path[PATH_MAX + 200];
    snprintf(path, sizeof(path), "%s/%s", G.dir, cf->name);
    char errbuf[PCAP_ERRBUF_SIZE];
    pcap_t *pc = pcap_open_offline(path, errbuf);
    if (!pc) {
        fail_line("%s: cannot open: %s", cf->name, errbuf);
        fail_msg("%s: %s", path, errbuf);
    }
    int lt = pcap_datalink(pc);
    assert_true(ctl_link_supported(lt));
    cf->ran = 1;
    struct pcap_pkthdr *h;
    const u_char *pkt;
    unsigned long frame = 0;
    int rc;
    while ((rc = pcap_next_ex(pc, &h, &pkt)) == 1) {
        frame++;
        struct ctl_frame fr;
        size_t caplen = h->caplen < h->len ? h->caplen : h->len;
        enum ctl_frame_kind k = ctl_decode_frame(lt, pkt, caplen, &fr);
        if (k == CTL_FRAME_OTHER)
            continue;
        if (k != CTL_FRAME_UDP) {
            cf->failures++;
            fail_line("%s frame %lu: %s", cf->name, frame,
                      k == CTL_FRAME_FRAGMENT ? "IP fragment" : "truncated by the snap length");
            continue;
        }
        cf->datagrams++;
        /* expectation and collisions for this frame */
        enum want want = WANT_NONE;
        int exp = -1, have_exp = 0;
        int allowed[MAX_PROBES] = {0};
        for (unsigned t = 0; t < cf->ntok; t++) {
            const struct token *tk = &cf->tok[t];
            if (!sel_has(tk, frame))
                continue;
            if (tk->collide) {
                for (unsigned c = 0; c < tk->ncoll; c++)
                    allowed[tk->coll[c]] = 1;
            } else {
                want = tk->want;
                exp = tk->probe;
                have_exp = 1;
            }
        }
        if (!have_exp) {
            cf->failures++;
            fail_line("%s frame %lu: no expectation in MANIFEST", cf->name, frame);
            continue;
        }
        struct udpmux_match_input in = {
            .data = fr.payload,
            .len = fr.len,
            .peer = (const struct sockaddr *)&fr.src,
            .now_ns = (uint64_t)h->ts.tv_sec * 1000000000ull + (uint64_t)h->ts.tv_usec * 1000,
        };
        char matched[512] = "";
        size_t mlen = 0;
        int own_matched = 0, bad = 0;
        char problems[512] = "";
        size_t plen = 0;
        for (size_t i = 0; i < G.nprobes; i++) {
            if (!G.rules[i] || !udpmux_rule_match(G.rules[i], &in)) {
                if (allowed[i] && (int)i != exp)
                    note_line("STALE collision %s frame %lu: no longer matches %s: drop it from "
                              "MANIFEST",
                              cf->name, frame, G.names[i]);
                continue;
            }
            cf->matches[i]++;
            int n = snprintf(matched + mlen, sizeof(matched) - mlen, "%s%s", mlen ? "," : "",
                             G.names[i]);
            if (n > 0 && (size_t)n < sizeof(matched) - mlen)
                mlen += (size_t)n;
            if ((int)i == exp) {
                own_matched = 1;
            } else if (!allowed[i]) {
                bad = 1;
                n = snprintf(problems + plen, sizeof(problems) - plen, " also-matches:%s",
                             G.names[i]);
                if (n > 0 && (size_t)n < sizeof(problems) - plen)
                    plen += (size_t)n;
            }
        }
        if ((want == WANT_PROBE || want == WANT_XFAIL) && !own_matched) {
            bad = 1;
            int n = snprintf(problems + plen, sizeof(problems) - plen, " own-probe-missed:%s",
                             pname(exp));
            if (n > 0 && (size_t)n < sizeof(problems) - plen)
                plen += (size_t)n;
        }
        int cls = udpmux_probe_classify(fr.payload, fr.len);
        int cidx = cls >= 0 && (size_t)cls < G.nprobes ? cls : -1;
        cf->classified[cidx >= 0 ? (size_t)cidx : G.nprobes]++;
        int cls_ok;
        if (want == WANT_PROBE || want == WANT_XFAIL)
            cls_ok = cidx == exp;
        else if (want == WANT_MAYBE) /* unanchored: none, own, or a named collision */
            cls_ok = cidx < 0 || cidx == exp || allowed[cidx];
        else
            cls_ok = cidx < 0;
        if (!cls_ok) {
            bad = 1;
            int n = snprintf(problems + plen, sizeof(problems) - plen, " classified-as:%s",
                             pname(cidx));
            if (n > 0 && (size_t)n < sizeof(problems) - plen)
                plen += (size_t)n;
        }
        char hex[3 * 16 + 1] = "";
        for (size_t b = 0; b < fr.len && b < 16; b++)
            snprintf(hex + 2 * b, sizeof(hex) - 2 * b, "%02x", fr.payload[b]);
        if (want == WANT_XFAIL) {
            if (bad)
                note_line("XFAIL (known, MANIFEST !%s) %s frame %lu (len %zu, %s...): matched "
                          "{%s}:%s",
                          pname(exp), cf->name, frame, fr.len, hex, matched, problems);
            else
                note_line("XPASS %s frame %lu: now matches %s as it should: drop the '!' in "
                          "MANIFEST",
                          cf->name, frame, pname(exp));
        } else if (bad) {
            cf->failures++;
            fail_line("%s frame %lu (len %zu, %s...): expected %s%s, matched {%s}:%s", cf->name,
                      frame, fr.len, hex, want == WANT_MAYBE ? "~" : "",
                      want == WANT_NONE ? "-" : pname(exp), matched, problems);
        }
    }
    if (rc == -1)
        fail_line("%s: read error after frame %lu: %s", cf->name, frame, pcap_geterr(pc));
    pcap_close(pc);
    if (cf->datagrams == 0)
        fail_line("%s: no UDP datagram in the capture", cf->name);
    if (cf->failures || rc == -1 || cf->datagrams == 0)
        fail_msg("%s: %lu of %lu datagrams failed (see the matrix and list at the end)", cf->name,
                 cf->failures, cf->datagrams);
}

static void all_pcaps_listed(void **state)
{
    (void)state;
    assert_true(G.manifest_ok);
    DIR *d = opendir(G.dir);
    assert_non_null(d);
    struct dirent *e;
    int missing = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 6 || strcmp(e->d_name + n - 5, ".pcap") != 0)
            continue;
        if (strcmp(e->d_name, "mixed.pcap") == 0 || strcmp(e->d_name, "edge-cases.pcap") == 0)
            continue; /* decoder cases and the merge of all captures: checked by
                         tests/integration/test-classify.sh */
        int found = 0;
        for (unsigned f = 0; f < G.nfiles; f++)
            if (strcmp(G.files[f].name, e->d_name) == 0)
                found = 1;
        if (!found) {
            fail_line("%s is not listed in MANIFEST", e->d_name);
            missing++;
        }
    }
    closedir(d);
    assert_int_equal(missing, 0);
}

static void manifest_parses(void **state)
{
    (void)state;
    if (!G.manifest_ok)
        fail_msg("%s", G.manifest_msg);
    assert_true(G.nfiles > 0);
    for (unsigned f = 0; f < G.nfiles; f++)
        if (G.files[f].parse_error)
            fail_msg("MANIFEST line %d (%s): %s", G.files[f].line, G.files[f].name,
                     G.files[f].parse_msg);
}

static void every_probe_compiles(void **state)
{
    (void)state;
    assert_true(G.nprobes > 0);
    for (size_t i = 0; i < G.nprobes; i++)
        if (!G.rules[i])
            fail_msg("probe %s does not compile as a rule", G.names[i]);
}

int main(void)
{
    const char *td = getenv("UMX_TESTDATA");
    if (!td || !*td)
        td = "tests/data";
    snprintf(G.dir, sizeof(G.dir), "%s/pcap", td);

    G.nprobes = udpmux_probe_count();
    if (G.nprobes > MAX_PROBES)
        G.nprobes = MAX_PROBES;
    for (size_t i = 0; i < G.nprobes; i++) {
        G.names[i] = udpmux_probe_name(i);
        char err[256] = "";
        if (!G.names[i] || udpmux_rule_compile(&G.rules[i], G.names[i], err, sizeof(err)) < 0) {
            fprintf(stderr, "probe %zu (%s): %s\n", i, G.names[i] ? G.names[i] : "?", err);
            G.rules[i] = NULL;
        }
    }
    G.manifest_ok = load_manifest() == 0;

    size_t ntests = 3 + G.nfiles;
    struct CMUnitTest *tests = calloc(ntests, sizeof(*tests));
    if (!tests)
        return 1;
    size_t k = 0;
    tests[k++] = (struct CMUnitTest){"manifest_parses", manifest_parses, NULL, NULL, NULL};
    tests[k++] =
        (struct CMUnitTest){"every_probe_compiles", every_probe_compiles, NULL, NULL, NULL};
    static char testnames[MAX_FILES][160];
    for (unsigned f = 0; f < G.nfiles; f++) {
        snprintf(testnames[f], sizeof(testnames[f]), "crossmatch_%s", G.files[f].name);
        tests[k++] = (struct CMUnitTest){testnames[f], run_capture, NULL, NULL, &G.files[f]};
    }
    tests[k++] = (struct CMUnitTest){"all_pcaps_listed", all_pcaps_listed, NULL, NULL, NULL};

    int failed = _cmocka_run_group_tests("crossmatch", tests, k, NULL, NULL);
    const char *verbose = getenv("UMX_CROSSMATCH_VERBOSE");
    if (failed || G.nfail || (verbose && *verbose && strcmp(verbose, "0") != 0))
        print_matrix();
    print_notes();
    for (size_t i = 0; i < G.nprobes; i++)
        udpmux_rule_free(G.rules[i]);
    free(tests);
    free(G.failures);
    free(G.notes);
    return failed ? 1 : 0;
}
