/*
 * top.c - `udpmuxctl top`: a live view of the daemon, refreshed every
 * second, on one connection (see top.h).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "fmt.h"
#include "top.h"

#define TOP_MAX_ROUTES 256

/* top -------------------------------------------------------------------------------- */

struct rsample {
    char name[UMX_CTL_KEY_MAX * 2];
    uint64_t rx_d, rx_b, tx_d, tx_b, created, drops, active;
    int draining;
};

struct sample {
    uint64_t t_ns;
    struct umx_ctl_rec stats;
    int have_stats;
    struct rsample r[TOP_MAX_ROUTES];
    unsigned nr;
};

static volatile sig_atomic_t g_stop;
/* stdout is a terminal: redraw in place with escape codes; otherwise (a
 * pipe, a file, a log) plain lines, one block per refresh */
static int g_screen;
static struct termios g_saved_tio;
static int g_raw;

static void on_stop(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void tty_restore(void)
{
    if (g_raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &g_saved_tio);
        g_raw = 0;
        if (g_screen) {
            /* show the cursor again */
            fputs("\033[?25h", stdout);
            fflush(stdout);
        }
    }
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int take_sample(struct conn *c, struct sample *s)
{
    struct umx_ctl_req req;
    struct answer a;
    static struct umx_ctl_rec r;
    int rc;
    memset(&req, 0, sizeof(req));
    req.cmd = UMX_CTL_STATS;
    s->t_ns = now_ns();
    if ((rc = conn_call(c, &req, &a)) < 0)
        return rc;
    s->have_stats = 0;
    if (a.n > 0) {
        rec_at(&a, 0, &s->stats);
        s->have_stats = strcmp(s->stats.type, "stats") == 0;
    }
    answer_free(&a);
    req.cmd = UMX_CTL_ROUTES;
    if ((rc = conn_call(c, &req, &a)) < 0)
        return rc;
    s->nr = 0;
    for (size_t i = 0; i < a.n && s->nr < TOP_MAX_ROUTES; i++) {
        struct rsample *x;
        rec_at(&a, i, &r);
        if (strcmp(r.type, "route") != 0)
            continue;
        x = &s->r[s->nr++];
        snprintf(x->name, sizeof(x->name), "%s", rec_str(&r, "name"));
        x->rx_d = rec_u64(&r, "rx.datagrams");
        x->rx_b = rec_u64(&r, "rx.bytes");
        x->tx_d = rec_u64(&r, "tx.datagrams");
        x->tx_b = rec_u64(&r, "tx.bytes");
        x->created = rec_u64(&r, "flows.created");
        x->drops = rec_u64(&r, "drops");
        x->active = rec_u64(&r, "flows.active");
        x->draining = (int)rec_u64(&r, "draining");
    }
    answer_free(&a);
    return 0;
}

static double rate(uint64_t now, uint64_t before, double dt)
{
    return dt > 0 && now >= before ? (double)(now - before) / dt : 0.0;
}

static const struct rsample *find_route(const struct sample *s, const char *name)
{
    for (unsigned i = 0; i < s->nr; i++)
        if (strcmp(s->r[i].name, name) == 0)
            return &s->r[i];
    return NULL;
}

static uint64_t stat_of(const struct sample *s, const char *k)
{
    return s->have_stats ? rec_u64(&s->stats, k) : 0;
}

static void top_draw(const struct sample *cur, const struct sample *prev, unsigned iter)
{
    double dt = prev ? (double)(cur->t_ns - prev->t_ns) / 1e9 : 0;
    char up[32], a[16], b[16], c2[16], d2[16], e[16], f[16];
    /* raw input mode keeps output processing, but \r\n is explicit so the
     * screen stays right whatever the terminal's settings */
    const char *eol = g_screen ? "\r\n" : "\n";
    if (ctl_json) {
        /* one JSON object per refresh (NDJSON), rates per second */
        printf("{\"iteration\":%u,\"interval_s\":%.3f,\"routes\":[", iter, dt);
        for (unsigned i = 0; i < cur->nr; i++) {
            const struct rsample *x = &cur->r[i], *p = prev ? find_route(prev, x->name) : NULL;
            printf("%s{\"name\":", i ? "," : "");
            json_str(stdout, x->name, strlen(x->name));
            printf(",\"rx_datagrams_per_s\":%.1f,\"rx_bytes_per_s\":%.1f,"
                   "\"tx_datagrams_per_s\":%.1f,\"tx_bytes_per_s\":%.1f,"
                   "\"new_flows_per_s\":%.1f,\"drops_per_s\":%.1f,\"flows_active\":%llu,"
                   "\"draining\":%d}",
                   p ? rate(x->rx_d, p->rx_d, dt) : 0.0, p ? rate(x->rx_b, p->rx_b, dt) : 0.0,
                   p ? rate(x->tx_d, p->tx_d, dt) : 0.0, p ? rate(x->tx_b, p->tx_b, dt) : 0.0,
                   p ? rate(x->created, p->created, dt) : 0.0,
                   p ? rate(x->drops, p->drops, dt) : 0.0, (unsigned long long)x->active,
                   x->draining);
        }
        printf("]}\n");
        fflush(stdout);
        return;
    }
    fmt_duration(up, sizeof(up), stat_of(cur, "uptime_ms") / 1000u);
    if (g_screen)
        printf("\033[H\033[2J"); /* home, clear: redraw in place */
    else if (iter)
        printf("\n"); /* a blank line between refreshes */
    printf("udpmuxctl top  %s  up %s  refresh 1s  (q quits)%s", ctl_sock, up, eol);
    fmt_si(a, sizeof(a),
           prev ? rate(stat_of(cur, "rx.datagrams"), stat_of(prev, "rx.datagrams"), dt) : 0);
    fmt_si(b, sizeof(b), prev ? rate(stat_of(cur, "rx.bytes"), stat_of(prev, "rx.bytes"), dt) : 0);
    fmt_si(c2, sizeof(c2),
           prev ? rate(stat_of(cur, "tx.datagrams"), stat_of(prev, "tx.datagrams"), dt) : 0);
    fmt_si(d2, sizeof(d2),
           prev ? rate(stat_of(cur, "tx.bytes"), stat_of(prev, "tx.bytes"), dt) : 0);
    printf("total   in %s dg/s %sB/s   out %s dg/s %sB/s   flows %llu / %llu%s", a, b, c2, d2,
           (unsigned long long)stat_of(cur, "flows.active"),
           (unsigned long long)stat_of(cur, "flows.capacity"), eol);
    {
        /* drop reasons with a non-zero rate, then unmatched and kernel drops */
        static const char *const why[] = {
            "drop.action",        "drop.rate_limited", "drop.table_full", "drop.route_full",
            "drop.no_backend",    "drop.socket",       "drop.unclaimed",  "drop.stun_too_small",
            "classify.unmatched", "rx.kernel_drops",   "rx.truncated"};
        int any = 0;
        /* only the reasons that dropped something: the line fits 80 columns */
        printf("drops/s");
        for (size_t i = 0; i < sizeof(why) / sizeof(why[0]); i++) {
            double v = prev ? rate(stat_of(cur, why[i]), stat_of(prev, why[i]), dt) : 0;
            if (v <= 0)
                continue;
            fmt_si(a, sizeof(a), v);
            printf(" %s=%s", strchr(why[i], '.') + 1, a);
            any = 1;
        }
        printf("%s%s%s", any ? "" : " none", eol, eol);
    }
    printf("%-20s %10s %10s %10s %10s %8s %8s %9s  %s%s", "ROUTE", "IN DG/S", "IN B/S", "OUT DG/S",
           "OUT B/S", "NEW/S", "DROPS/S", "FLOWS", "STATE", eol);
    for (unsigned i = 0; i < cur->nr; i++) {
        const struct rsample *x = &cur->r[i], *p = prev ? find_route(prev, x->name) : NULL;
        fmt_si(a, sizeof(a), p ? rate(x->rx_d, p->rx_d, dt) : 0);
        fmt_si(b, sizeof(b), p ? rate(x->rx_b, p->rx_b, dt) : 0);
        fmt_si(c2, sizeof(c2), p ? rate(x->tx_d, p->tx_d, dt) : 0);
        fmt_si(d2, sizeof(d2), p ? rate(x->tx_b, p->tx_b, dt) : 0);
        fmt_si(e, sizeof(e), p ? rate(x->created, p->created, dt) : 0);
        fmt_si(f, sizeof(f), p ? rate(x->drops, p->drops, dt) : 0);
        printf("%-20.20s %10s %10s %10s %10s %8s %8s %9llu  %s%s", x->name, a, b, c2, d2, e, f,
               (unsigned long long)x->active, x->draining ? "draining" : "open", eol);
    }
    fflush(stdout);
}

int cmd_top(unsigned iterations)
{
    static struct sample s[2];
    struct conn c;
    struct sigaction sa;
    unsigned iter = 0;
    int cur = 0, have_prev = 0, tty = isatty(STDIN_FILENO) && !ctl_json;
    /* q is read from stdin, a terminal or a pipe, until it ends */
    int watch_in = 1;
    int r = conn_open(&c);
    g_screen = isatty(STDOUT_FILENO) && !ctl_json;
    if (r < 0)
        return EX_UNAVAILABLE_;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (tty && tcgetattr(STDIN_FILENO, &g_saved_tio) == 0) {
        struct termios t = g_saved_tio;
        /* keys arrive one by one, unechoed; output processing stays on */
        t.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        t.c_cc[VMIN] = 0;
        t.c_cc[VTIME] = 0;
        if (tcsetattr(STDIN_FILENO, TCSANOW, &t) == 0) {
            g_raw = 1;
            atexit(tty_restore);
            if (g_screen)
                fputs("\033[?25l", stdout);
        }
    }
    while (!g_stop) {
        uint64_t next;
        r = take_sample(&c, &s[cur]);
        if (r < 0) {
            tty_restore();
            conn_close(&c);
            return transport_exit(r);
        }
        top_draw(&s[cur], have_prev ? &s[cur ^ 1] : NULL, iter);
        have_prev = 1;
        cur ^= 1;
        if (iterations && ++iter >= iterations)
            break;
        if (!iterations)
            iter++;
        /* wait out the second, reacting to q at once */
        next = now_ns() + 1000000000ull;
        while (!g_stop) {
            uint64_t t = now_ns();
            struct pollfd p = {STDIN_FILENO, POLLIN, 0};
            int pr;
            if (t >= next)
                break;
            pr = poll(&p, watch_in ? 1 : 0, (int)((next - t) / 1000000u) + 1);
            if (pr > 0 && (p.revents & (POLLIN | POLLHUP | POLLNVAL))) {
                char ch[16];
                ssize_t n = p.revents & POLLNVAL ? 0 : read(STDIN_FILENO, ch, sizeof(ch));
                if (n <= 0) {
                    /* end of input, not a key: keep refreshing without it */
                    if (n == 0 || errno != EINTR)
                        watch_in = 0;
                    continue;
                }
                for (ssize_t i = 0; i < n; i++)
                    if (ch[i] == 'q' || ch[i] == 'Q')
                        g_stop = 1;
            }
        }
    }
    tty_restore();
    if (!ctl_json && g_screen)
        printf("\r\n");
    conn_close(&c);
    return EX_OK_;
}
