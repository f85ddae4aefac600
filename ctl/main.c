/*
 * udpmuxctl - the operator's tool: talks to udpmuxd over its control socket
 * (protocol in daemon/ctlproto.h) and prints status, counters, routes and
 * flows as text or JSON (-j); `top` is a live view refreshed every second.
 *
 * Exit status (sysexits): 0 ok, 1 the daemon refused the command (its
 * message is printed), 64 usage, 69 daemon unreachable (no socket, refused,
 * timed out, hung up mid-answer), 70 a malformed answer.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "classify.h"

#define EX_OK_ 0
#define EX_CMDERR_ 1
#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_ 70

#define DEFAULT_SOCKET "/run/udpmux/control.sock"
#define MAX_RECORDS 200000 /* answer size cap on the client side */
#define TOP_MAX_ROUTES 256

static const char *g_sock = DEFAULT_SOCKET;
static int g_json;
static int g_timeout_ms = 10000;

/* A whole answer: its record lines, each NUL-terminated, kept raw and
 * parsed on use (a parsed record is ~20 KiB, a raw one ~200 bytes). */
struct answer {
    char *buf;
    size_t len, cap;
    size_t *off; /* start of each line in buf */
    size_t n, offcap;
};

static void answer_free(struct answer *a)
{
    free(a->buf);
    free(a->off);
    memset(a, 0, sizeof(*a));
}

static void die_oom(void)
{
    fprintf(stderr, "udpmuxctl: out of memory\n");
    exit(EX_SOFTWARE_);
}

static int answer_add(struct answer *a, const char *line, size_t len)
{
    if (a->n >= MAX_RECORDS)
        return -E2BIG;
    if (a->len + len + 1 > a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 65536;
        while (nc < a->len + len + 1)
            nc *= 2;
        a->buf = realloc(a->buf, nc);
        if (!a->buf)
            die_oom();
        a->cap = nc;
    }
    if (a->n >= a->offcap) {
        a->offcap = a->offcap ? a->offcap * 2 : 256;
        a->off = realloc(a->off, a->offcap * sizeof(*a->off));
        if (!a->off)
            die_oom();
    }
    a->off[a->n++] = a->len;
    memcpy(a->buf + a->len, line, len);
    a->buf[a->len + len] = '\0';
    a->len += len + 1;
    return 0;
}

static const char *answer_line(const struct answer *a, size_t i)
{
    return a->buf + a->off[i];
}

/* Connection ------------------------------------------------------------------- */

struct conn {
    int fd;
    char rbuf[UMX_CTL_RESP_LINE_MAX + 1];
    size_t rlen;
};

static int conn_open(struct conn *c)
{
    struct sockaddr_un sa;
    size_t pl = strlen(g_sock);
    memset(c, 0, sizeof(*c));
    if (pl >= sizeof(sa.sun_path)) {
        fprintf(stderr, "udpmuxctl: socket path too long: %s\n", g_sock);
        return -ENAMETOOLONG;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, g_sock, pl);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        fprintf(stderr, "udpmuxctl: cannot connect to %s: %s (is udpmuxd running?)\n", g_sock,
                strerror(-e));
        close(c->fd);
        c->fd = -1;
        return e;
    }
    return 0;
}

static void conn_close(struct conn *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

/* Waits for fd to be ready until the deadline; -ETIMEDOUT otherwise. */
static int wait_fd(int fd, short ev, int ms)
{
    struct pollfd p = {fd, ev, 0};
    int r;
    do
        r = poll(&p, 1, ms);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return r == 0 ? -ETIMEDOUT : 0;
}

/* Sends one request and reads its whole answer. Returns 0, -EPROTO for a
 * malformed answer, or another negative errno for transport trouble. */
static int conn_call(struct conn *c, const struct umx_ctl_req *req, struct answer *a)
{
    char line[UMX_CTL_LINE_MAX + 1];
    int n = umx_ctl_req_format(req, line, sizeof(line)), r;
    size_t off = 0;
    memset(a, 0, sizeof(*a));
    if (n < 0)
        return n;
    while (off < (size_t)n) {
        ssize_t w;
        if ((r = wait_fd(c->fd, POLLOUT, g_timeout_ms)) < 0)
            return r;
        w = send(c->fd, line + off, (size_t)n - off, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EPIPE || errno == ECONNRESET))
            break; /* refused at accept: the daemon's error record may be waiting */
        if (w < 0)
            return -errno;
        off += (size_t)w;
    }
    for (;;) {
        char *nl = memchr(c->rbuf, '\n', c->rlen);
        ssize_t got;
        if (nl) {
            size_t ll = (size_t)(nl - c->rbuf);
            int done = ll == 1 && c->rbuf[0] == '.';
            if (!done && answer_add(a, c->rbuf, ll) < 0)
                return -EPROTO;
            memmove(c->rbuf, nl + 1, c->rlen - ll - 1);
            c->rlen -= ll + 1;
            if (done)
                return 0;
            continue;
        }
        if (c->rlen >= sizeof(c->rbuf) - 1)
            return -EPROTO; /* a line longer than the protocol allows */
        if ((r = wait_fd(c->fd, POLLIN, g_timeout_ms)) < 0)
            return r;
        got = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen, 0);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            return -ECONNRESET;
        c->rlen += (size_t)got;
    }
}

static int transport_exit(int r)
{
    if (r == -EPROTO) {
        fprintf(stderr, "udpmuxctl: malformed answer from udpmuxd\n");
        return EX_SOFTWARE_;
    }
    fprintf(stderr, "udpmuxctl: %s: %s\n", g_sock,
            r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
    return EX_UNAVAILABLE_;
}

/* Output helpers -------------------------------------------------------------------- */

/* Parses record i; exits on a malformed one (the daemon and this tool share
 * the parser, so this is a bug or a different protocol version). */
static void rec_at(const struct answer *a, size_t i, struct umx_ctl_rec *r)
{
    const char *l = answer_line(a, i);
    if (umx_ctl_rec_parse(l, strlen(l), r) != 0) {
        fprintf(stderr, "udpmuxctl: malformed record from udpmuxd: %.80s\n", l);
        exit(EX_SOFTWARE_);
    }
}

static const char *get(const struct umx_ctl_rec *r, const char *k)
{
    const char *v = umx_ctl_rec_get(r, k);
    return v ? v : "";
}

static uint64_t getu(const struct umx_ctl_rec *r, const char *k)
{
    uint64_t v = 0;
    umx_ctl_rec_u64(r, k, &v);
    return v;
}

static void json_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f); /* UTF-8 passes through; other bytes are the daemon's */
    }
    fputc('"', f);
}

/* A plain unsigned decimal (no sign, no leading zero) prints as a number. */
static int is_number(const char *s, size_t len)
{
    if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Numbers stay numbers except in fields that are names or text by nature
 * (a route named "42" is still a string). */
static int text_key(const char *k)
{
    static const char *const keys[] = {
        "name",    "route",  "rule",    "addr", "peer",    "local",   "backend",
        "version", "config", "message", "code", "control", "metrics", "last_reload_error",
        "health",  "state",  "action",  "kind", "result"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(k, keys[i]) == 0)
            return 1;
    return 0;
}

static void json_obj(FILE *f, const struct umx_ctl_rec *r)
{
    fputc('{', f);
    for (unsigned i = 0; i < r->n; i++) {
        if (i)
            fputc(',', f);
        json_str(f, r->key[i], strlen(r->key[i]));
        fputc(':', f);
        if (!text_key(r->key[i]) && is_number(r->val[i], r->vlen[i]))
            fwrite(r->val[i], 1, r->vlen[i], f);
        else
            json_str(f, r->val[i], r->vlen[i]);
    }
}

/* Generic JSON of an answer: records whose type is in `single` become one
 * object under that name, every other type an array under TYPE+"s".
 * Records of type `child` nest in the preceding `parent` record. */
static void json_answer(const struct answer *a, const char *const *single, const char *parent,
                        const char *child)
{
    static struct umx_ctl_rec r;
    char *types[16];
    unsigned nt = 0;
    /* record types in order of first appearance */
    for (size_t i = 0; i < a->n; i++) {
        int seen = 0;
        rec_at(a, i, &r);
        if (child && strcmp(r.type, child) == 0)
            continue;
        for (unsigned t = 0; t < nt; t++)
            if (strcmp(types[t], r.type) == 0)
                seen = 1;
        if (!seen && nt < 16)
            types[nt++] = strdup(r.type);
    }
    printf("{");
    for (unsigned t = 0; t < nt; t++) {
        int is_single = 0, first = 1;
        for (const char *const *s = single; s && *s; s++)
            if (strcmp(*s, types[t]) == 0)
                is_single = 1;
        if (t)
            printf(",");
        printf("\"%s%s\":", types[t], is_single ? "" : "s");
        if (!is_single)
            printf("[");
        for (size_t i = 0; i < a->n; i++) {
            rec_at(a, i, &r);
            if (strcmp(r.type, types[t]) != 0)
                continue;
            if (!first)
                printf(",");
            first = 0;
            json_obj(stdout, &r);
            if (parent && child && strcmp(r.type, parent) == 0) {
                int cf = 1;
                printf(",\"%ss\":[", child);
                for (size_t j = i + 1; j < a->n; j++) {
                    rec_at(a, j, &r);
                    if (strcmp(r.type, child) != 0)
                        break;
                    if (!cf)
                        printf(",");
                    cf = 0;
                    json_obj(stdout, &r);
                    printf("}");
                }
                printf("]");
            }
            printf("}");
            if (is_single)
                break;
        }
        if (!is_single)
            printf("]");
    }
    printf("}\n");
    for (unsigned t = 0; t < nt; t++)
        free(types[t]);
}

/* Returns 1 (and prints it) when the answer is an error record. */
static int answer_error(const struct answer *a)
{
    static struct umx_ctl_rec r;
    if (a->n == 0)
        return 0;
    rec_at(a, 0, &r);
    if (strcmp(r.type, "error") != 0)
        return 0;
    if (g_json) {
        printf("{\"error\":");
        json_obj(stdout, &r);
        printf("}}\n");
    }
    fprintf(stderr, "udpmuxctl: udpmuxd: %s (%s)\n", get(&r, "message"), get(&r, "code"));
    return 1;
}

static void fmt_duration(char *buf, size_t len, uint64_t s)
{
    if (s >= 86400)
        snprintf(buf, len, "%llud%02lluh%02llum", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600), (unsigned long long)(s % 3600 / 60));
    else if (s >= 3600)
        snprintf(buf, len, "%lluh%02llum%02llus", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60), (unsigned long long)(s % 60));
    else if (s >= 60)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(buf, len, "%llus", (unsigned long long)s);
}

static void fmt_time(char *buf, size_t len, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* 1234567 -> "1.2M" for rates and sizes in narrow columns. */
static void fmt_si(char *buf, size_t len, double v)
{
    if (v >= 1e9)
        snprintf(buf, len, "%.1fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.1fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f", v);
}

/* Commands ------------------------------------------------------------------------- */

static int call_once(const struct umx_ctl_req *req, struct answer *a)
{
    struct conn c;
    int r;
    memset(a, 0, sizeof(*a));
    r = conn_open(&c);
    if (r < 0)
        return EX_UNAVAILABLE_;
    r = conn_call(&c, req, a);
    conn_close(&c);
    if (r < 0)
        return transport_exit(r);
    return answer_error(a) ? EX_CMDERR_ : EX_OK_;
}

static int print_status(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"status", NULL};
    char up[32], loaded[40];
    int64_t now = (int64_t)time(NULL);
    if (g_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "status") == 0) {
            int64_t la = strtoll(get(&r, "loaded_at"), NULL, 10);
            fmt_duration(up, sizeof(up), getu(&r, "uptime_ms") / 1000u);
            fmt_time(loaded, sizeof(loaded), la);
            printf("udpmuxd %s (pid %s), up %s\n", get(&r, "version"), get(&r, "pid"), up);
            printf("config:     %s\n", *get(&r, "config") ? get(&r, "config") : "(quick mode)");
            printf("loaded:     %s (%llds ago)\n", loaded, (long long)(now - la));
            printf("reloads:    %s ok, %s failed\n", get(&r, "reloads_ok"),
                   get(&r, "reloads_failed"));
            if (*get(&r, "last_reload_error"))
                printf("last error: %s\n", get(&r, "last_reload_error"));
            printf("workers:    %s\n", get(&r, "workers"));
            printf("routes:     %s\n", get(&r, "routes"));
            printf("flow table: %s entries\n", get(&r, "flows_capacity"));
            printf("control:    %s\n", get(&r, "control"));
            printf("metrics:    %s\n", *get(&r, "metrics") ? get(&r, "metrics") : "off");
            printf("listeners:  %s\n", get(&r, "listeners"));
        } else if (strcmp(r.type, "listener") == 0) {
            printf("  %s\n", get(&r, "addr"));
        }
    }
    return EX_OK_;
}

static int print_stats(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"stats", NULL};
    if (g_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        for (unsigned k = 0; k < r.n; k++)
            printf("%s=%s\n", r.key[k], r.val[k]);
    }
    return EX_OK_;
}

static int print_routes(const struct answer *a)
{
    static struct umx_ctl_rec r;
    if (g_json) {
        json_answer(a, NULL, "route", "backend");
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "route") == 0) {
            printf("route %s%s: %s  match: %s\n", get(&r, "name"),
                   getu(&r, "draining") ? " (draining)" : "", get(&r, "action"), get(&r, "rule"));
            printf("  in:  %s datagrams, %s bytes   out: %s datagrams, %s bytes\n",
                   get(&r, "rx.datagrams"), get(&r, "rx.bytes"), get(&r, "tx.datagrams"),
                   get(&r, "tx.bytes"));
            printf("  flows: %s active, %s created   matched: %s   drops: %s\n",
                   get(&r, "flows.active"), get(&r, "flows.created"), get(&r, "classify.matched"),
                   get(&r, "drops"));
            if (getu(&r, "drops")) {
                /* the reasons that have counted anything */
                printf("  drops by reason:");
                for (unsigned k = 0; k < r.n; k++)
                    if (strncmp(r.key[k], "drop.", 5) == 0 && strcmp(r.val[k], "0") != 0)
                        printf(" %s=%s", r.key[k] + 5, r.val[k]);
                printf("\n");
            }
        } else if (strcmp(r.type, "backend") == 0) {
            printf("  backend %-40s %s%s\n", get(&r, "addr"), get(&r, "health"),
                   getu(&r, "passive_down_ms") ? " (passive, no replies)"
                   : getu(&r, "active_down")   ? " (health check)"
                                               : "");
        }
    }
    return EX_OK_;
}

static int print_flows(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"summary", NULL};
    int header = 0;
    if (g_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "flow") == 0) {
            char age[32], idle[32];
            if (!header++)
                printf("%-12s %-40s %-24s %-11s %9s %9s %10s %10s %10s %10s\n", "ROUTE", "PEER",
                       "BACKEND", "STATE", "AGE", "IDLE", "RX DGRAMS", "RX BYTES", "TX DGRAMS",
                       "TX BYTES");
            fmt_duration(age, sizeof(age), getu(&r, "age_ms") / 1000u);
            fmt_duration(idle, sizeof(idle), getu(&r, "idle_ms") / 1000u);
            printf("%-12s %-40s %-24s %-11s %9s %9s %10s %10s %10s %10s\n", get(&r, "route"),
                   get(&r, "peer"), *get(&r, "backend") ? get(&r, "backend") : "-",
                   get(&r, "state"), age, idle, get(&r, "rx.datagrams"), get(&r, "rx.bytes"),
                   get(&r, "tx.datagrams"), get(&r, "tx.bytes"));
        } else if (strcmp(r.type, "summary") == 0) {
            printf("%s of %s matching flows shown%s\n", get(&r, "shown"), get(&r, "matched"),
                   getu(&r, "truncated") ? " (truncated: use -n, -r or -p)" : "");
        }
    }
    return EX_OK_;
}

static int print_simple(const struct answer *a, const char *single0)
{
    static struct umx_ctl_rec r;
    const char *single[] = {single0, NULL};
    if (g_json) {
        json_answer(a, single0 ? single : NULL, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "reload") == 0) {
            printf("reloaded: %s routes\n", get(&r, "routes"));
        } else if (strcmp(r.type, "drain") == 0 || strcmp(r.type, "undrain") == 0) {
            int on = strcmp(r.type, "drain") == 0;
            if (strcmp(get(&r, "kind"), "route") == 0)
                printf("route %s: %s (%s active flows)\n", get(&r, "route"),
                       on ? "draining, no new flows; existing flows finish" : "accepting new flows",
                       get(&r, "flows.active"));
            else
                printf("backend %s of route %s: %s\n", get(&r, "backend"), get(&r, "route"),
                       on ? "draining, no new flows; existing flows finish"
                          : "accepting new flows");
        }
    }
    return EX_OK_;
}

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
        /* show the cursor again */
        fputs("\033[?25h", stdout);
        fflush(stdout);
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
        snprintf(x->name, sizeof(x->name), "%s", get(&r, "name"));
        x->rx_d = getu(&r, "rx.datagrams");
        x->rx_b = getu(&r, "rx.bytes");
        x->tx_d = getu(&r, "tx.datagrams");
        x->tx_b = getu(&r, "tx.bytes");
        x->created = getu(&r, "flows.created");
        x->drops = getu(&r, "drops");
        x->active = getu(&r, "flows.active");
        x->draining = (int)getu(&r, "draining");
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
    return s->have_stats ? getu(&s->stats, k) : 0;
}

static void top_draw(const struct sample *cur, const struct sample *prev, unsigned iter)
{
    double dt = prev ? (double)(cur->t_ns - prev->t_ns) / 1e9 : 0;
    char up[32], a[16], b[16], c2[16], d2[16], e[16], f[16];
    if (g_json) {
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
    /* home, clear: redraw in place */
    printf("\033[H\033[2J");
    printf("udpmuxctl top  %s  up %s  refresh 1s  (q quits)\r\n", g_sock, up);
    fmt_si(a, sizeof(a),
           prev ? rate(stat_of(cur, "rx.datagrams"), stat_of(prev, "rx.datagrams"), dt) : 0);
    fmt_si(b, sizeof(b), prev ? rate(stat_of(cur, "rx.bytes"), stat_of(prev, "rx.bytes"), dt) : 0);
    fmt_si(c2, sizeof(c2),
           prev ? rate(stat_of(cur, "tx.datagrams"), stat_of(prev, "tx.datagrams"), dt) : 0);
    fmt_si(d2, sizeof(d2),
           prev ? rate(stat_of(cur, "tx.bytes"), stat_of(prev, "tx.bytes"), dt) : 0);
    printf("total   in %s dg/s %sB/s   out %s dg/s %sB/s   flows %llu / %llu\r\n", a, b, c2, d2,
           (unsigned long long)stat_of(cur, "flows.active"),
           (unsigned long long)stat_of(cur, "flows.capacity"));
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
        printf("%s\r\n\r\n", any ? "" : " none");
    }
    printf("%-20s %10s %10s %10s %10s %8s %8s %9s  %s\r\n", "ROUTE", "IN DG/S", "IN B/S",
           "OUT DG/S", "OUT B/S", "NEW/S", "DROPS/S", "FLOWS", "STATE");
    for (unsigned i = 0; i < cur->nr; i++) {
        const struct rsample *x = &cur->r[i], *p = prev ? find_route(prev, x->name) : NULL;
        fmt_si(a, sizeof(a), p ? rate(x->rx_d, p->rx_d, dt) : 0);
        fmt_si(b, sizeof(b), p ? rate(x->rx_b, p->rx_b, dt) : 0);
        fmt_si(c2, sizeof(c2), p ? rate(x->tx_d, p->tx_d, dt) : 0);
        fmt_si(d2, sizeof(d2), p ? rate(x->tx_b, p->tx_b, dt) : 0);
        fmt_si(e, sizeof(e), p ? rate(x->created, p->created, dt) : 0);
        fmt_si(f, sizeof(f), p ? rate(x->drops, p->drops, dt) : 0);
        printf("%-20.20s %10s %10s %10s %10s %8s %8s %9llu  %s\r\n", x->name, a, b, c2, d2, e, f,
               (unsigned long long)x->active, x->draining ? "draining" : "open");
    }
    fflush(stdout);
}

static int cmd_top(unsigned iterations)
{
    static struct sample s[2];
    struct conn c;
    struct sigaction sa;
    unsigned iter = 0;
    int cur = 0, have_prev = 0, tty = isatty(STDIN_FILENO) && !g_json;
    /* q is read from stdin, a terminal or a pipe, until it ends */
    int watch_in = 1;
    int r = conn_open(&c);
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
    if (!g_json)
        printf("\r\n");
    conn_close(&c);
    return EX_OK_;
}

/* main ------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: udpmuxctl [-s SOCKET] [-j] [-T SECONDS] COMMAND [ARGS]\n"
            "  -s SOCKET   control socket (default " DEFAULT_SOCKET ")\n"
            "  -j          JSON output\n"
            "  -T SECONDS  give up on an answer after this long (default 10)\n"
            "commands:\n"
            "  status                    version, uptime, listeners, workers, config\n"
            "  stats                     every counter, name=value\n"
            "  routes                    routes, backends and their health, traffic, drops\n"
            "  flows [-r ROUTE] [-p PEER] [-n LIMIT]\n"
            "                            active flows (default limit %d, at most %d)\n"
            "  reload                    reload the configuration file\n"
            "  drain ROUTE|BACKEND|ROUTE/BACKEND\n"
            "                            no new flows there; existing flows finish\n"
            "  undrain ROUTE|BACKEND|ROUTE/BACKEND\n"
            "                            accept new flows again\n"
            "  top [-n COUNT]            live view, refreshed every second (q quits)\n"
            "  classify ...              classify datagrams from a capture (see udpmuxctl(8))\n"
            "exit status: 0 ok, 1 refused by udpmuxd, 64 usage, 69 udpmuxd unreachable\n",
            UMX_CTL_FLOWS_DEFAULT, UMX_CTL_FLOWS_MAX);
}

static int parse_count(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi || s[0] == '-')
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int copy_arg(char *dst, size_t cap, const char *src)
{
    size_t l = strlen(src);
    if (l == 0 || l >= cap)
        return -EINVAL;
    memcpy(dst, src, l + 1);
    return 0;
}

int main(int argc, char **argv)
{
    struct umx_ctl_req req;
    struct answer a;
    const char *cmd;
    int opt, rc;
    unsigned secs;
    const char *env = getenv("UDPMUX_CONTROL");
    if (env && *env)
        g_sock = env;
    /* options stop at the command: its own options follow it */
    while ((opt = getopt(argc, argv, "+s:jT:hV")) != -1) {
        switch (opt) {
        case 's':
            g_sock = optarg;
            break;
        case 'j':
            g_json = 1;
            break;
        case 'T':
            if (parse_count(optarg, 1, 3600, &secs) < 0) {
                fprintf(stderr, "udpmuxctl: -T takes 1..3600 seconds\n");
                return EX_USAGE_;
            }
            g_timeout_ms = (int)secs * 1000;
            break;
        case 'h':
            usage(stdout);
            return EX_OK_;
        case 'V':
            printf("udpmuxctl (protocol %d)\n", UMX_CTL_PROTO_VERSION);
            return EX_OK_;
        default:
            usage(stderr);
            return EX_USAGE_;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE_;
    }
    cmd = argv[optind];
    if (strcmp(cmd, "classify") == 0)
        return ctl_classify_main(argc - optind, argv + optind);
    memset(&req, 0, sizeof(req));
    for (int i = 1; i < UMX_CTL_CMD_COUNT; i++)
        if (strcmp(cmd, umx_ctl_cmd_name((enum umx_ctl_cmd)i)) == 0)
            req.cmd = (enum umx_ctl_cmd)i;
    if (strcmp(cmd, "top") == 0) {
        unsigned n = 0;
        optind++;
        while ((opt = getopt(argc, argv, "+n:")) != -1) {
            if (opt != 'n' || parse_count(optarg, 1, 1000000, &n) < 0) {
                fprintf(stderr, "udpmuxctl: top [-n COUNT]\n");
                return EX_USAGE_;
            }
        }
        if (optind != argc) {
            usage(stderr);
            return EX_USAGE_;
        }
        return cmd_top(n);
    }
    if (req.cmd == UMX_CTL_NONE) {
        fprintf(stderr, "udpmuxctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return EX_USAGE_;
    }
    optind++;
    if (req.cmd == UMX_CTL_FLOWS) {
        req.limit = UMX_CTL_FLOWS_DEFAULT;
        while ((opt = getopt(argc, argv, "+r:p:n:")) != -1) {
            int bad = 0;
            if (opt == 'r')
                bad = copy_arg(req.route, sizeof(req.route), optarg);
            else if (opt == 'p')
                bad = copy_arg(req.peer, sizeof(req.peer), optarg);
            else if (opt == 'n')
                bad = parse_count(optarg, 1, UMX_CTL_FLOWS_MAX, &req.limit);
            else
                bad = -1;
            if (bad) {
                fprintf(stderr, "udpmuxctl: flows [-r ROUTE] [-p PEER] [-n 1..%d]\n",
                        UMX_CTL_FLOWS_MAX);
                return EX_USAGE_;
            }
        }
    } else if (req.cmd == UMX_CTL_DRAIN || req.cmd == UMX_CTL_UNDRAIN) {
        if (optind >= argc || copy_arg(req.target, sizeof(req.target), argv[optind]) < 0 ||
            strchr(req.target, '=')) {
            fprintf(stderr, "udpmuxctl: %s ROUTE|BACKEND|ROUTE/BACKEND\n", cmd);
            return EX_USAGE_;
        }
        optind++;
    }
    if (optind != argc) {
        fprintf(stderr, "udpmuxctl: %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return EX_USAGE_;
    }
    rc = call_once(&req, &a);
    if (rc != EX_OK_) {
        answer_free(&a);
        return rc;
    }
    switch (req.cmd) {
    case UMX_CTL_STATUS:
        rc = print_status(&a);
        break;
    case UMX_CTL_STATS:
        rc = print_stats(&a);
        break;
    case UMX_CTL_ROUTES:
        rc = print_routes(&a);
        break;
    case UMX_CTL_FLOWS:
        rc = print_flows(&a);
        break;
    case UMX_CTL_RELOAD:
        rc = print_simple(&a, "reload");
        break;
    default:
        rc = print_simple(&a, NULL);
        break;
    }
    answer_free(&a);
    if (fflush(stdout) != 0)
        return EX_SOFTWARE_;
    return rc;
}
