/*
 * metrics.c - Prometheus /metrics, a JSON status (/status.json) and a live
 * status page (/) on one HTTP listener (`metrics = ADDR:PORT` in
 * [udpmux]), served by libmicrohttpd rather than a hand-written HTTP
 * parser. Every metric is documented in docs/metrics.md.
 *
 * Threads: libmicrohttpd runs its own thread (MHD_USE_INTERNAL_POLLING_
 * THREAD). It never touches the daemon's state: the main thread renders the
 * three documents every tick (250 ms) from relaxed counter loads and its
 * own config, then swaps them in under a mutex that guards nothing but the
 * three pointers. A request copies the current document under that mutex
 * and is answered from the copy. Rejected alternative: reading counters
 * from the HTTP thread directly would be safe for the counters but not for
 * d->cfg, which a reload frees on the main thread.
 *
 * Labels are listener, route, backend, reason and probe: never a client
 * address (unbounded cardinality and personal data).
 */
#include <errno.h>
#include <linux/sock_diag.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "names.h"
#include "peeruid.h"
#include "procmetrics.h"
#include "textbuf.h"
#include "udpmuxd.h"
#include "kdp/kdp.h"

#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

#define M_CONNS 128u  /* HTTP connections (UMXD_FD_RESERVE holds them) */
#define M_PER_ADDR 8u /* of those, from one client address */
#define M_IDLE_S 10u  /* a connection silent this long is closed */
#define M_PER_UID 16u /* of those, from one local user other than root (sock_diag) */

/* Rates for the status page are computed here, over the last second,
 * rather than in the browser: the first paint already shows them, and a
 * page that fetches irregularly (background tab, slow phone) still shows
 * per-second values. RATE_TICKS samples of the 250 ms tick span 1 s. */
#define RATE_TICKS 5
#define RATE_VALS 5 /* rx datagrams, rx bytes, tx datagrams, tx bytes, drops */
struct rate_hist {
    uint64_t now_ns[RATE_TICKS];
    uint64_t total[RATE_TICKS][RATE_VALS];
    uint64_t slot[RATE_TICKS][UMXD_MAX_SLOTS][RATE_VALS];
    unsigned next, filled;
};

struct metrics {
    struct MHD_Daemon *mhd;
    struct rate_hist hist; /* main thread only */
    pthread_mutex_t mu;    /* guards the three documents below, nothing else */
    struct sb prom, json, html;
    struct umxd_ratelimit rl;
    /* HTTP thread only: connections per local uid (a local user can send
     * from any of 127.0.0.0/8, so the per-address limit alone does not
     * hold it) */
    int nl;
    struct umxd_uidcap uids;
    struct umxd_ratelimit rl_uid;
};

static struct metrics *g_m;

/* "rx.datagrams" -> "rx_datagrams" */
static void metric_suffix(char *out, size_t cap, const char *dotted)
{
    size_t i = 0;
    for (; dotted[i] && i + 1 < cap; i++)
        out[i] = dotted[i] == '.' ? '_' : dotted[i];
    out[i] = '\0';
}

/* The probe a route's rule starts with ("dns", "quic"...), "any", or
 * "custom" for generic rules: the `probe` label of classification counts. */
static void route_probe(const struct umxd_route *rt, char *out, size_t cap)
{
    char word[UMXD_NAME_MAX];
    size_t n = 0;
    const char *s = rt->match;
    while (*s == ' ' || *s == '\t' || *s == '(')
        s++;
    while (s[n] && s[n] != ' ' && s[n] != '\t' && s[n] != '(' && s[n] != ')' &&
           n + 1 < sizeof(word)) {
        word[n] = s[n];
        n++;
    }
    word[n] = '\0';
    snprintf(out, cap, "%s", strcmp(word, "any") == 0 ? "any" : "custom");
    for (size_t i = 0; i < udpmux_probe_count(); i++)
        if (strcmp(word, udpmux_probe_name(i)) == 0)
            snprintf(out, cap, "%s", word);
}

/* Kernel view of one listener over its workers' sockets: drops for a full
 * receive buffer and bytes queued now (SO_MEMINFO, Linux 4.6+). */
static void listener_meminfo(struct umxd *d, unsigned li, uint64_t *drops, uint64_t *queued)
{
    *drops = *queued = 0;
    for (unsigned w = 0; w < d->nworkers; w++) {
        uint32_t mi[SK_MEMINFO_VARS];
        socklen_t l = sizeof(mi);
        int fd = d->lfd[li][w];
        if (fd <= 0)
            continue;
        memset(mi, 0, sizeof(mi));
        if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mi, &l) < 0)
            continue;
        *drops += mi[SK_MEMINFO_DROPS];
        *queued += mi[SK_MEMINFO_RMEM_ALLOC];
    }
}

/* One sample of everything the documents show, taken on the main thread. */
struct sample {
    struct umxd_stats st;
    struct umxd_attach_stats att;
    struct umxd_route_stats rst[UMXD_MAX_ROUTES];
    uint64_t entries; /* flows in the tables, retired routes included */
    uint64_t now_ns;
    double rate[RATE_VALS];                        /* per second, whole daemon */
    double route_rate[UMXD_MAX_ROUTES][RATE_VALS]; /* per second, per route */
};

static uint64_t total_drops(const struct umxd_stats *st)
{
    uint64_t n = st->unmatched;
#define DR(f, n_, h)                                                                               \
    if (strncmp(n_, "drop.", 5) == 0)                                                              \
        n += st->f;
    UMXD_STATS(DR)
#undef DR
    return n;
}

/* Records this sample and derives per-second rates against the oldest one
 * kept (about a second ago; less right after start-up). */
static void update_rates(struct umxd *d, struct rate_hist *h, struct sample *s)
{
    unsigned cur = h->next, old = (h->next + RATE_TICKS - h->filled) % RATE_TICKS;
    const struct umxd_config *c = d->cfg;
    double dt;
    h->now_ns[cur] = s->now_ns;
    h->total[cur][0] = s->st.rx_datagrams;
    h->total[cur][1] = s->st.rx_bytes;
    h->total[cur][2] = s->st.tx_datagrams;
    h->total[cur][3] = s->st.tx_bytes;
    h->total[cur][4] = total_drops(&s->st);
    memset(h->slot[cur], 0, sizeof(h->slot[cur]));
    for (unsigned r = 0; r < c->nroutes; r++) {
        unsigned sl = d->rs->slot[r];
        h->slot[cur][sl][0] = s->rst[r].rx_datagrams;
        h->slot[cur][sl][1] = s->rst[r].rx_bytes;
        h->slot[cur][sl][2] = s->rst[r].tx_datagrams;
        h->slot[cur][sl][3] = s->rst[r].tx_bytes;
        h->slot[cur][sl][4] = s->rst[r].drops;
    }
    memset(s->rate, 0, sizeof(s->rate));
    memset(s->route_rate, 0, sizeof(s->route_rate));
    dt = h->filled ? (double)(s->now_ns - h->now_ns[old]) / 1e9 : 0;
    if (dt > 0.05) {
        for (unsigned v = 0; v < RATE_VALS; v++) {
            if (h->total[cur][v] >= h->total[old][v])
                s->rate[v] = (double)(h->total[cur][v] - h->total[old][v]) / dt;
            for (unsigned r = 0; r < c->nroutes; r++) {
                unsigned sl = d->rs->slot[r];
                if (h->slot[cur][sl][v] >= h->slot[old][sl][v])
                    s->route_rate[r][v] = (double)(h->slot[cur][sl][v] - h->slot[old][sl][v]) / dt;
            }
        }
    }
    h->next = (cur + 1) % RATE_TICKS;
    if (h->filled < RATE_TICKS - 1)
        h->filled++;
}

static void take_sample(struct umxd *d, struct sample *s)
{
    s->now_ns = umx_now_ns();
    umxd_stats_sum(d, &s->st);
    umxd_attach_stats(d, &s->att);
    for (unsigned r = 0; r < d->cfg->nroutes; r++)
        umxd_route_stats_sum(d, d->rs->slot[r], &s->rst[r]);
    s->entries = 0;
    for (unsigned sl = 0; sl < d->nslots; sl++) {
        struct umxd_route_stats x;
        umxd_route_stats_sum(d, sl, &x);
        s->entries += x.active_flows;
    }
}

/* route="R",backend="B" */
static void backend_labels(struct sb *b, const struct umxd_route *rt, unsigned k)
{
    sb_puts(b, "{route=\"");
    prom_label(b, rt->name);
    sb_puts(b, "\",backend=\"");
    prom_label(b, rt->backends[k].text);
    sb_puts(b, "\"}");
}

/* Per-backend traffic, flows and active checks (stats.h,
 * UMXD_BACKEND_STATS, and struct umxd_health). */
static void render_backends(struct umxd *d, struct sb *b)
{
    const struct umxd_config *c = d->cfg;
    static struct umxd_backend_stats bs[UMXD_MAX_ROUTES][UMXD_MAX_BACKENDS]; /* main thread */
    char name[128], suf[64];
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++)
            umxd_backend_stats_sum(d, d->rs->slot[r], k, &bs[r][k]);
#define BCTR(f, n, h)                                                                              \
    metric_suffix(suf, sizeof(suf), n);                                                            \
    snprintf(name, sizeof(name), "udpmux_backend_%s_total", suf);                                  \
    prom_family(b, name, "counter", h ".");                                                        \
    for (unsigned r = 0; r < c->nroutes; r++)                                                      \
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {                                    \
            sb_puts(b, name);                                                                      \
            backend_labels(b, &c->routes[r], k);                                                   \
            sb_printf(b, " %llu\n", (unsigned long long)bs[r][k].f);                               \
        }
    UMXD_BACKEND_STATS(BCTR)
#undef BCTR
    prom_family(b, "udpmux_backend_flows_active", "gauge", "Flows to this backend now.");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            sb_puts(b, "udpmux_backend_flows_active");
            backend_labels(b, &c->routes[r], k);
            sb_printf(b, " %llu\n", (unsigned long long)bs[r][k].active_flows);
        }
    prom_family(b, "udpmux_backend_health_checks_sent_total", "counter",
                "Active health checks sent to this backend.");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            sb_puts(b, "udpmux_backend_health_checks_sent_total");
            backend_labels(b, &c->routes[r], k);
            sb_printf(b, " %llu\n", (unsigned long long)d->health[d->rs->slot[r]][k].checks_sent);
        }
    prom_family(b, "udpmux_backend_health_checks_total", "counter",
                "Active health check results: ok (answered) or failed (no answer in time).");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            const struct umxd_health *h = &d->health[d->rs->slot[r]][k];
            for (int ok = 1; ok >= 0; ok--) {
                sb_puts(b, "udpmux_backend_health_checks_total{route=\"");
                prom_label(b, c->routes[r].name);
                sb_puts(b, "\",backend=\"");
                prom_label(b, c->routes[r].backends[k].text);
                sb_printf(b, "\",result=\"%s\"} %llu\n", ok ? "ok" : "failed",
                          (unsigned long long)(ok ? h->checks_ok : h->checks_failed));
            }
        }
    prom_family(b, "udpmux_backend_health_transitions_total", "counter",
                "Times active checks turned this backend down or up.");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            sb_puts(b, "udpmux_backend_health_transitions_total");
            backend_labels(b, &c->routes[r], k);
            sb_printf(b, " %llu\n", (unsigned long long)d->health[d->rs->slot[r]][k].transitions);
        }
}

/* datapath = kernel (daemon/kdp/): the queue's verdicts and the kernel
 * flows' conntrack counters (both directions) */
static void render_kernel(struct umxd *d, struct sb *b)
{
    struct umxd_kdp_stats k;
    if (umxd_kdp_stats(d, &k, 1) < 0)
        return;
    prom_family(b, "udpmux_kernel_queued_total", "counter",
                "First datagrams of new flows the kernel queued to udpmuxd.");
    sb_printf(b, "udpmux_kernel_queued_total %llu\n", (unsigned long long)k.queued);
    prom_family(b, "udpmux_kernel_verdicts_total", "counter", "Queue verdicts by outcome.");
    sb_printf(b, "udpmux_kernel_verdicts_total{verdict=\"kernel\"} %llu\n",
              (unsigned long long)k.to_kernel);
    sb_printf(b, "udpmux_kernel_verdicts_total{verdict=\"user\"} %llu\n",
              (unsigned long long)k.to_user);
    sb_printf(b, "udpmux_kernel_verdicts_total{verdict=\"drop\"} %llu\n",
              (unsigned long long)k.dropped);
    prom_family(b, "udpmux_kernel_queue_full_total", "counter",
                "New flows' datagrams the kernel dropped because the queue was full.");
    sb_printf(b, "udpmux_kernel_queue_full_total %llu\n", (unsigned long long)k.queue_full);
    prom_family(b, "udpmux_kernel_flows", "gauge", "Flows the kernel carries (conntrack entries).");
    sb_printf(b, "udpmux_kernel_flows %llu\n", (unsigned long long)k.flows);
    prom_family(b, "udpmux_kernel_flow_datagrams", "gauge",
                "Datagrams of the live kernel flows, both directions (conntrack accounting).");
    sb_printf(b, "udpmux_kernel_flow_datagrams %llu\n", (unsigned long long)k.pkts);
    prom_family(b, "udpmux_kernel_flow_bytes", "gauge",
                "IP bytes of the live kernel flows, both directions (conntrack accounting).");
    sb_printf(b, "udpmux_kernel_flow_bytes %llu\n", (unsigned long long)k.bytes);
}

static void render_prom(struct umxd *d, const struct sample *s, struct sb *b)
{
    const struct umxd_config *c = d->cfg;
    char name[128], suf[64], probe[UMXD_NAME_MAX];
    double start = (double)time(NULL) - (double)(s->now_ns - d->start_ns) / 1e9;

    prom_family(b, "udpmux_build_info", "gauge", "Build information; the value is always 1.");
    sb_puts(b, "udpmux_build_info{version=\"");
    prom_label(b, udpmux_version());
    sb_puts(b, "\"} 1\n");
    prom_family(b, "udpmux_start_time_seconds", "gauge", "When udpmuxd started (Unix time).");
    sb_printf(b, "udpmux_start_time_seconds %.3f\n", start);
    umxd_render_process(b, start);
    prom_family(b, "udpmux_config_loaded_timestamp_seconds", "gauge",
                "When the running configuration was loaded (Unix time).");
    sb_printf(b, "udpmux_config_loaded_timestamp_seconds %lld\n", (long long)d->loaded_at);
    prom_family(b, "udpmux_config_reloads_total", "counter", "Reload attempts by result.");
    sb_printf(b, "udpmux_config_reloads_total{result=\"ok\"} %llu\n",
              (unsigned long long)d->reloads_ok);
    sb_printf(b, "udpmux_config_reloads_total{result=\"failed\"} %llu\n",
              (unsigned long long)d->reloads_failed);
    prom_family(b, "udpmux_workers", "gauge", "Worker threads.");
    sb_printf(b, "udpmux_workers %u\n", d->nworkers);
    render_kernel(d, b);

    prom_family(b, "udpmux_listener_info", "gauge", "One series per listening address; always 1.");
    for (unsigned li = 0; li < c->nlisten; li++) {
        sb_puts(b, "udpmux_listener_info{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_puts(b, "\"} 1\n");
    }
    prom_family(b, "udpmux_listener_kernel_drops_total", "counter",
                "Datagrams the kernel dropped on this listener's sockets (full receive buffer).");
    for (unsigned li = 0; li < c->nlisten; li++) {
        uint64_t drops, q;
        listener_meminfo(d, li, &drops, &q);
        sb_puts(b, "udpmux_listener_kernel_drops_total{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_printf(b, "\"} %llu\n", (unsigned long long)drops);
    }
    prom_family(b, "udpmux_listener_receive_queue_bytes", "gauge",
                "Bytes waiting in this listener's receive buffers.");
    for (unsigned li = 0; li < c->nlisten; li++) {
        uint64_t drops, q;
        listener_meminfo(d, li, &drops, &q);
        sb_puts(b, "udpmux_listener_receive_queue_bytes{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_printf(b, "\"} %llu\n", (unsigned long long)q);
    }

    /* the listeners' SO_REUSEPORT groups (guard.c scans, startup.c steers) */
    prom_family(b, "udpmux_listener_reuseport_sockets", "gauge",
                "Sockets in this listener's SO_REUSEPORT group: the workers' and any that joined.");
    for (unsigned li = 0; li < c->nlisten; li++) {
        sb_puts(b, "udpmux_listener_reuseport_sockets{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_printf(b, "\"} %u\n", __atomic_load_n(&d->group_sockets[li], __ATOMIC_RELAXED));
    }
    prom_family(b, "udpmux_listener_reuseport_foreign_sockets", "gauge",
                "Sockets in this listener's SO_REUSEPORT group that udpmuxd did not create.");
    for (unsigned li = 0; li < c->nlisten; li++) {
        sb_puts(b, "udpmux_listener_reuseport_foreign_sockets{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_printf(b, "\"} %u\n", __atomic_load_n(&d->group_foreign[li], __ATOMIC_RELAXED));
    }
    prom_family(b, "udpmux_listener_steering_attached", "gauge",
                "1 when the steering program that keeps datagrams on the workers is attached.");
    for (unsigned li = 0; li < c->nlisten; li++) {
        sb_puts(b, "udpmux_listener_steering_attached{listener=\"");
        prom_label(b, c->listen_text[li]);
        sb_printf(b, "\"} %d\n", d->steered[li] != 0);
    }
    prom_family(b, "udpmux_guard_foreign_sockets", "gauge",
                "Sockets on a listen port that udpmuxd did not create, now.");
    sb_printf(b, "udpmux_guard_foreign_sockets %llu\n",
              (unsigned long long)__atomic_load_n(&d->foreign_sockets, __ATOMIC_RELAXED));

    /* the daemon's counters (stats.h); drop.* become one family by reason */
    prom_family(b, "udpmux_drops_total", "counter",
                "Datagrams or new flows dropped, by reason (see docs/metrics.md).");
#define DROP(f, n, h)                                                                              \
    if (strncmp(n, "drop.", 5) == 0)                                                               \
        sb_printf(b, "udpmux_drops_total{reason=\"%s\"} %llu\n", (n) + 5,                          \
                  (unsigned long long)s->st.f);
    UMXD_STATS(DROP)
#undef DROP
#define CTR(f, n, h)                                                                               \
    if (strncmp(n, "drop.", 5) != 0) {                                                             \
        metric_suffix(suf, sizeof(suf), n);                                                        \
        snprintf(name, sizeof(name), "udpmux_%s_total", suf);                                      \
        prom_family(b, name, "counter", h ".");                                                    \
        sb_printf(b, "%s %llu\n", name, (unsigned long long)s->st.f);                              \
    }
    UMXD_STATS(CTR)
#undef CTR

    /* attached programs (attach.c's own counts) */
    prom_family(b, "udpmux_attach_programs", "gauge", "Programs attached to a route now.");
    sb_printf(b, "udpmux_attach_programs %llu\n", (unsigned long long)s->att.programs);
    prom_family(b, "udpmux_attach_delivered_total", "counter",
                "Datagrams written to attached programs.");
    sb_printf(b, "udpmux_attach_delivered_total %llu\n", (unsigned long long)s->att.delivered);
    prom_family(b, "udpmux_attach_sent_total", "counter",
                "Datagrams attached programs sent out of the shared port.");
    sb_printf(b, "udpmux_attach_sent_total %llu\n", (unsigned long long)s->att.sent);
    prom_family(b, "udpmux_attach_refused_total", "counter",
                "Attach connections refused (full, per-user cap, no hello in time).");
    sb_printf(b, "udpmux_attach_refused_total %llu\n", (unsigned long long)s->att.refused);
    prom_family(b, "udpmux_attach_drops_total", "counter",
                "Datagrams to or from attached programs dropped by the attach socket, by reason.");
#define ADROP(f, n, h)                                                                             \
    sb_printf(b, "udpmux_attach_drops_total{reason=\"%s\"} %llu\n", n,                             \
              (unsigned long long)s->att.drop_##f);
    UMXD_ATTACH_DROPS(ADROP)
#undef ADROP

    prom_family(b, "udpmux_flow_table_capacity", "gauge", "Flow table slots over all workers.");
    sb_printf(b, "udpmux_flow_table_capacity %llu\n",
              (unsigned long long)c->max_flows * d->nworkers);
    prom_family(b, "udpmux_flow_table_entries", "gauge", "Flows in the tables now.");
    sb_printf(b, "udpmux_flow_table_entries %llu\n", (unsigned long long)s->entries);

    /* per route */
    prom_family(b, "udpmux_route_info", "gauge",
                "One series per configured route with its action and probe; always 1.");
    for (unsigned r = 0; r < c->nroutes; r++) {
        route_probe(&c->routes[r], probe, sizeof(probe));
        sb_puts(b, "udpmux_route_info{route=\"");
        prom_label(b, c->routes[r].name);
        sb_printf(b, "\",action=\"%s\",probe=\"", umxd_action_name(c->routes[r].action));
        prom_label(b, probe);
        sb_puts(b, "\"} 1\n");
    }
#define RCTR(f, n, h)                                                                              \
    if (strncmp(n, "drop.", 5) != 0) {                                                             \
        metric_suffix(suf, sizeof(suf), n);                                                        \
        snprintf(name, sizeof(name), "udpmux_route_%s_total", suf);                                \
        prom_family(b, name, "counter", h ".");                                                    \
        for (unsigned r = 0; r < c->nroutes; r++) {                                                \
            sb_printf(b, "%s{route=\"", name);                                                     \
            prom_label(b, c->routes[r].name);                                                      \
            if (strcmp(n, "classify.matched") == 0) {                                              \
                route_probe(&c->routes[r], probe, sizeof(probe));                                  \
                sb_puts(b, "\",probe=\"");                                                         \
                prom_label(b, probe);                                                              \
            }                                                                                      \
            sb_printf(b, "\"} %llu\n", (unsigned long long)s->rst[r].f);                           \
        }                                                                                          \
    }
    UMXD_ROUTE_STATS(RCTR)
#undef RCTR
    /* the route's drops split by reason: one family, reason as a label */
    prom_family(b, "udpmux_route_drops_by_reason_total", "counter",
                "Datagrams or new flows dropped on this route, by reason.");
#define RDROP(f, n, h)                                                                             \
    if (strncmp(n, "drop.", 5) == 0)                                                               \
        for (unsigned r = 0; r < c->nroutes; r++) {                                                \
            sb_puts(b, "udpmux_route_drops_by_reason_total{route=\"");                             \
            prom_label(b, c->routes[r].name);                                                      \
            sb_printf(b, "\",reason=\"%s\"} %llu\n", (n) + 5, (unsigned long long)s->rst[r].f);    \
        }
    UMXD_ROUTE_STATS(RDROP)
#undef RDROP
    prom_family(b, "udpmux_route_flows_active", "gauge", "Active flows of this route.");
    for (unsigned r = 0; r < c->nroutes; r++) {
        sb_puts(b, "udpmux_route_flows_active{route=\"");
        prom_label(b, c->routes[r].name);
        sb_printf(b, "\"} %llu\n", (unsigned long long)s->rst[r].active_flows);
    }
    prom_family(b, "udpmux_route_draining", "gauge",
                "1 while the route is drained (udpmuxctl drain): no new flows.");
    for (unsigned r = 0; r < c->nroutes; r++) {
        sb_puts(b, "udpmux_route_draining{route=\"");
        prom_label(b, c->routes[r].name);
        sb_printf(b, "\"} %d\n", __atomic_load_n(&d->drain[d->rs->slot[r]], __ATOMIC_RELAXED));
    }
    prom_family(b, "udpmux_backend_up", "gauge",
                "1 when the backend takes new flows (healthy and not draining), else 0.");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            sb_puts(b, "udpmux_backend_up{route=\"");
            prom_label(b, c->routes[r].name);
            sb_puts(b, "\",backend=\"");
            prom_label(b, c->routes[r].backends[k].text);
            sb_printf(b, "\"} %d\n",
                      strcmp(umxd_backend_state(d, d->rs->slot[r], k, s->now_ns), "up") == 0);
        }
    prom_family(b, "udpmux_backend_draining", "gauge", "1 while the backend is drained, else 0.");
    for (unsigned r = 0; r < c->nroutes; r++)
        for (unsigned k = 0; k < c->routes[r].nbackends; k++) {
            sb_puts(b, "udpmux_backend_draining{route=\"");
            prom_label(b, c->routes[r].name);
            sb_puts(b, "\",backend=\"");
            prom_label(b, c->routes[r].backends[k].text);
            sb_printf(b, "\"} %d\n",
                      __atomic_load_n(&d->health[d->rs->slot[r]][k].draining, __ATOMIC_RELAXED));
        }
    render_backends(d, b);
    prom_family(b, "udpmux_dropped_bytes_total", "counter",
                "Payload bytes of the datagrams counted in udpmux_drops_total and the other drop "
                "counters, by reason.");
    {
        static const char *const why[] = {
#define DN(e, g, r, n) n,
            UMXD_DROPS(DN)
#undef DN
        };
        struct umxd_drop_bytes db;
        umxd_drop_bytes_sum(d, &db);
        for (unsigned k = 0; k < UMXD_DROP_COUNT; k++)
            sb_printf(b, "udpmux_dropped_bytes_total{reason=\"%s\"} %llu\n", why[k],
                      (unsigned long long)db.bytes[k]);
    }
}

static void render_json(struct umxd *d, const struct sample *s, struct sb *b)
{
    const struct umxd_config *c = d->cfg;
    sb_puts(b, "{\"version\":");
    json_str(b, udpmux_version());
    sb_printf(b, ",\"uptime_ms\":%llu,\"workers\":%u,\"loaded_at\":%lld,\"config\":",
              (unsigned long long)((s->now_ns - d->start_ns) / 1000000u), d->nworkers,
              (long long)d->loaded_at);
    json_str(b, d->config_path ? d->config_path : "");
    sb_puts(b, ",\"listeners\":[");
    for (unsigned li = 0; li < c->nlisten; li++) {
        uint64_t drops, q;
        listener_meminfo(d, li, &drops, &q);
        sb_puts(b, li ? ",{\"addr\":" : "{\"addr\":");
        json_str(b, c->listen_text[li]);
        sb_printf(b, ",\"kernel_drops\":%llu}", (unsigned long long)drops);
    }
    sb_puts(b, "],\"stats\":{");
#define JS(f, n, h) sb_printf(b, "\"%s\":%llu,", n, (unsigned long long)s->st.f);
    UMXD_STATS(JS)
#undef JS
    sb_printf(b, "\"flows.active\":%llu,\"flows.capacity\":%llu},", (unsigned long long)s->entries,
              (unsigned long long)c->max_flows * d->nworkers);
    {
        /* datapath = kernel: the queue's verdicts and the kernel's flows */
        struct umxd_kdp_stats k;
        if (umxd_kdp_stats(d, &k, 1) == 0)
            sb_printf(b,
                      "\"kernel\":{\"queued\":%llu,\"to_kernel\":%llu,\"to_user\":%llu,"
                      "\"dropped\":%llu,\"roamed\":%llu,\"flows\":%llu,\"datagrams\":%llu,"
                      "\"bytes\":%llu},",
                      (unsigned long long)k.queued, (unsigned long long)k.to_kernel,
                      (unsigned long long)k.to_user, (unsigned long long)k.dropped,
                      (unsigned long long)k.roamed, (unsigned long long)k.flows,
                      (unsigned long long)k.pkts, (unsigned long long)k.bytes);
    }
    sb_printf(b,
              "\"rates\":{\"rx.datagrams\":%.1f,\"rx.bytes\":%.1f,\"tx.datagrams\":%.1f,"
              "\"tx.bytes\":%.1f,\"drops\":%.1f},\"routes\":[",
              s->rate[0], s->rate[1], s->rate[2], s->rate[3], s->rate[4]);
    for (unsigned r = 0; r < c->nroutes; r++) {
        const struct umxd_route *rt = &c->routes[r];
        unsigned slot = d->rs->slot[r];
        sb_puts(b, r ? ",{\"name\":" : "{\"name\":");
        json_str(b, rt->name);
        sb_printf(b, ",\"action\":\"%s\",\"rule\":", umxd_action_name(rt->action));
        json_str(b, rt->match);
        sb_printf(b, ",\"draining\":%d", __atomic_load_n(&d->drain[slot], __ATOMIC_RELAXED));
#define JR(f, n, h) sb_printf(b, ",\"%s\":%llu", n, (unsigned long long)s->rst[r].f);
        UMXD_ROUTE_STATS(JR)
#undef JR
        sb_printf(b,
                  ",\"rates\":{\"rx.datagrams\":%.1f,\"rx.bytes\":%.1f,\"tx.datagrams\":%.1f,"
                  "\"tx.bytes\":%.1f,\"drops\":%.1f}",
                  s->route_rate[r][0], s->route_rate[r][1], s->route_rate[r][2],
                  s->route_rate[r][3], s->route_rate[r][4]);
        sb_printf(b, ",\"flows.active\":%llu,\"backends\":[",
                  (unsigned long long)s->rst[r].active_flows);
        for (unsigned k = 0; k < rt->nbackends; k++) {
            sb_puts(b, k ? ",{\"addr\":" : "{\"addr\":");
            json_str(b, rt->backends[k].text);
            struct umxd_backend_stats bs;
            const struct umxd_health *h = &d->health[slot][k];
            umxd_backend_stats_sum(d, slot, k, &bs);
            sb_printf(b, ",\"health\":\"%s\"", umxd_backend_state(d, slot, k, s->now_ns));
#define BJ(f, n, h_) sb_printf(b, ",\"" n "\":%llu", (unsigned long long)bs.f);
            UMXD_BACKEND_STATS(BJ)
#undef BJ
            sb_printf(b,
                      ",\"flows.active\":%llu,\"checks.sent\":%llu,\"checks.ok\":%llu,"
                      "\"checks.failed\":%llu,\"checks.transitions\":%llu}",
                      (unsigned long long)bs.active_flows, (unsigned long long)h->checks_sent,
                      (unsigned long long)h->checks_ok, (unsigned long long)h->checks_failed,
                      (unsigned long long)h->transitions);
        }
        sb_puts(b, "]}");
    }
    sb_puts(b, "]}");
}

/* The status page: no external assets, readable on a phone, first drawn
 * from the embedded JSON (so it shows data without script timers), then
 * refreshed in place from /status.json every second. */
static const char page_head[] =
    "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
    "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
    "<title>udpmuxd status</title><style>"
    "body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1c1e21}"
    "header{background:#24292f;color:#fff;padding:10px 14px}"
    "header h1{font-size:18px;margin:0}header p{margin:2px 0 0;font-size:13px;opacity:.8}"
    "main{padding:10px 12px;max-width:1000px;margin:auto}"
    ".cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(140px,1fr));gap:8px}"
    ".card{background:#fff;border-radius:8px;padding:8px 10px;box-shadow:0 1px 2px #0002}"
    ".card b{display:block;font-size:20px}.card span{font-size:12px;color:#57606a}"
    "h2{font-size:16px;margin:16px 0 6px}"
    ".route{background:#fff;border-radius:8px;padding:8px 10px;margin-bottom:8px;"
    "box-shadow:0 1px 2px #0002}"
    ".route h3{margin:0 0 4px;font-size:15px}.rule{font:12px monospace;color:#57606a;"
    "word-break:break-all}"
    ".kv{display:grid;grid-template-columns:repeat(auto-fit,minmax(120px,1fr));gap:2px 10px;"
    "font-size:13px;margin:4px 0}"
    ".bs{font-size:12px;color:#57606a;margin:0 8px 0 4px}"
    ".b{display:inline-block;border-radius:10px;padding:0 8px;font-size:12px;color:#fff;"
    "margin:2px 4px 2px 0}"
    ".up{background:#1a7f37}.down{background:#cf222e}.draining{background:#9a6700}"
    "ul{margin:0;padding-left:18px}"
    "</style></head><body><header><h1>udpmuxd</h1><p id=\"hdr\"></p></header><main>"
    "<div class=\"cards\" id=\"cards\"></div><h2>Listeners</h2><ul id=\"listeners\"></ul>"
    "<h2>Routes</h2><div id=\"routes\"></div></main><script>\nvar initial=";

static const char page_tail[] =
    ";\nvar refreshes=0;"
    "function esc(s){return String(s).replace(/[&<>\"]/g,function(c){return{'&':'&amp;',"
    "'<':'&lt;','>':'&gt;','\"':'&quot;'}[c]})}"
    "function si(v){if(v>=1e9)return(v/1e9).toFixed(1)+'G';if(v>=1e6)return(v/1e6).toFixed(1)+"
    "'M';if(v>=1e4)return(v/1e3).toFixed(1)+'k';return(Math.round(v*10)/10).toString()}"
    "function dur(ms){var s=Math.floor(ms/1000),d=Math.floor(s/86400),h=Math.floor(s%86400/"
    "3600),m=Math.floor(s%3600/60);return(d?d+'d ':'')+(h?h+'h ':'')+m+'m '+(s%60)+'s'}"
    "function draw(s){"
    "document.getElementById('hdr').textContent='version '+s.version+' \\u00b7 up '+"
    "dur(s.uptime_ms)+' \\u00b7 '+s.workers+' workers'+(s.config?' \\u00b7 '+s.config:'');"
    "var st=s.stats,rt=s.rates;"
    "var cards=[['in datagrams/s',si(rt['rx.datagrams'])],['in bytes/s',si(rt['rx.bytes'])],"
    "['out datagrams/s',si(rt['tx.datagrams'])],['drops/s',si(rt.drops)],"
    "['active flows',si(st['flows.active'])+' / '+si(st['flows.capacity'])],"
    "['kernel drops',si(st['rx.kernel_drops'])]];"
    "document.getElementById('cards').innerHTML=cards.map(function(c){return'<div class=\"card\""
    "><b>'+esc(c[1])+'</b><span>'+esc(c[0])+'</span></div>'}).join('');"
    "document.getElementById('listeners').innerHTML=s.listeners.map(function(l){return'<li>'+"
    "esc(l.addr)+' <small>(kernel drops '+l.kernel_drops+')</small></li>'}).join('');"
    "document.getElementById('routes').innerHTML=s.routes.map(function(r){var q=r.rates;"
    "return'<div class=\"route\" data-route=\"'+esc(r.name)+'\"><h3>'+esc(r.name)+' <small>'+"
    "esc(r.action)+(r.draining?' \\u00b7 draining':'')+'</small></h3><div class=\"rule\">'+"
    "esc(r.rule)+'</div><div class=\"kv\"><span>in '+si(q['rx.datagrams'])+"
    "' dg/s</span><span>out '+si(q['tx.datagrams'])+' dg/s</span><span>drops '+"
    "si(q.drops)+'/s</span><span>flows '+r['flows.active']+'</span><span>total in '"
    "+si(r['rx.datagrams'])+'</span><span>total drops '+si(r.drops)+'</span></div>'+"
    "r.backends.map(function(b){return'<span class=\"b '+b.health+'\">'+esc(b.addr)+' '+"
    "b.health+'</span><span class=\"bs\">flows '+b['flows.active']+', to '+"
    "si(b['tx.datagrams'])+' dg/'+si(b['tx.bytes'])+' B, from '+si(b['rx.datagrams'])+' dg/'+"
    "si(b['rx.bytes'])+' B</span>'}).join('')+'</div>'}).join('')}"
    "draw(initial);"
    /* data-refreshes counts redraws from /status.json (tests read it) */
    "function tick(){fetch('/status.json',{cache:'no-store'}).then(function(r){return r.json()})"
    ".then(function(s){draw(s);refreshes++;document.body.setAttribute('data-refreshes',"
    "refreshes)}).catch(function(){document.getElementById('hdr').textContent='udpmuxd not "
    "answering'})}"
    "setInterval(tick,1000);\n</script></body></html>\n";

static void render(struct umxd *d, struct metrics *m)
{
    static struct sample s; /* large; main thread only */
    struct sb prom = {0}, json = {0}, html = {0};
    take_sample(d, &s);
    update_rates(d, &m->hist, &s);
    render_prom(d, &s, &prom);
    render_json(d, &s, &json);
    sb_puts(&html, page_head);
    if (json.p)
        sb_putn(&html, json.p, json.len);
    sb_puts(&html, page_tail);
    if (prom.oom || json.oom || html.oom) {
        umxd_log_rl(&m->rl, LOG_WARNING, "metrics: document too large or out of memory");
        sb_free(&prom);
        sb_free(&json);
        sb_free(&html);
        return;
    }
    pthread_mutex_lock(&m->mu);
    {
        struct sb t;
        t = m->prom, m->prom = prom, prom = t;
        t = m->json, m->json = json, json = t;
        t = m->html, m->html = html, html = t;
    }
    pthread_mutex_unlock(&m->mu);
    sb_free(&prom);
    sb_free(&json);
    sb_free(&html);
}

static void on_tick(struct umxd *d, uint64_t now, void *arg)
{
    (void)now;
    render(d, arg);
}

/* HTTP thread ---------------------------------------------------------------------- */

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code, const char *ctype,
                              const char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result r;
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    r = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    struct metrics *m = cls;
    const struct sb *doc = NULL;
    const char *ctype = NULL;
    enum MHD_Result r;
    (void)version;
    (void)upload_data;
    if (!*req_cls) {
        /* first call: headers only; answer on the second */
        *req_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* a body is ignored */
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain", "GET only\n", 9);
    if (strcmp(url, "/metrics") == 0) {
        doc = &m->prom;
        ctype = "text/plain; version=0.0.4; charset=utf-8";
    } else if (strcmp(url, "/status.json") == 0) {
        doc = &m->json;
        ctype = "application/json";
    } else if (strcmp(url, "/") == 0) {
        doc = &m->html;
        ctype = "text/html; charset=utf-8";
    } else {
        return answer(conn, MHD_HTTP_NOT_FOUND, "text/plain",
                      "not found: try /, /metrics or /status.json\n", 43);
    }
    pthread_mutex_lock(&m->mu);
    if (!doc->p)
        r = answer(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "text/plain", "starting\n", 9);
    else
        r = answer(conn, MHD_HTTP_OK, ctype, doc->p, doc->len);
    pthread_mutex_unlock(&m->mu);
    return r;
}

/* Counts each new connection against its local user, if it has one. A user
 * over M_PER_UID has the connection shut at once (libmicrohttpd then reads
 * the end and closes it). socket_context holds uid + 1 of counted ones. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct metrics *m = cls;
    const union MHD_ConnectionInfo *ci;
    int64_t uid;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (*socket_context)
            umxd_uidcap_put(&m->uids, (uint32_t)((uintptr_t)*socket_context - 1));
        *socket_context = NULL;
        return;
    }
    *socket_context = NULL;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    uid = ci ? umxd_peer_uid(m->nl, ci->connect_fd) : -1;
    if (uid <= 0)
        return; /* remote, unknown, or root */
    if (umxd_uidcap_take(&m->uids, (uint32_t)uid) < 0) {
        umxd_log_rl(&m->rl_uid, LOG_WARNING,
                    "metrics: uid %lld has %u connections open: refusing more", (long long)uid,
                    M_PER_UID);
        shutdown(ci->connect_fd, SHUT_RDWR);
        return;
    }
    *socket_context = (void *)(uintptr_t)(uid + 1);
}

/* Set-up ----------------------------------------------------------------------------- */

static void metrics_atexit(void)
{
    struct metrics *m = g_m;
    if (!m)
        return;
    g_m = NULL;
    if (m->mhd)
        MHD_stop_daemon(m->mhd);
    sb_free(&m->prom);
    sb_free(&m->json);
    sb_free(&m->html);
    if (m->nl >= 0)
        close(m->nl);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

int umxd_metrics_init(struct umxd *d)
{
    struct metrics *m;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    uint16_t port;
    int r;
    if (!d->cfg->metrics[0])
        return 0;
    r = udpmux_parse_addr(d->cfg->metrics, &ss, &sl);
    if (r < 0)
        return r;
    m = calloc(1, sizeof(*m));
    if (!m)
        return -ENOMEM;
    pthread_mutex_init(&m->mu, NULL);
    m->rl = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(60, 1);
    m->rl_uid = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 5);
    m->nl = umxd_peeruid_open();
    m->uids.max = M_PER_UID;
    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
        port = ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    } else {
        port = ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    }
    render(d, m); /* the first request finds documents */
    /* upgrade: the old process's listening socket (no window where the
     * port refuses, and no second bind while it still holds it) */
    int inh = d->mod_lfd[UMXD_MOD_METRICS];
    struct MHD_OptionItem where[] = {
        {inh >= 0 ? MHD_OPTION_LISTEN_SOCKET : MHD_OPTION_SOCK_ADDR, inh >= 0 ? inh : 0,
         inh >= 0 ? NULL : (void *)&ss},
        {MHD_OPTION_END, 0, NULL},
    };
    /* A few addresses that open connections and send half a request must
     * not take every slot: an address gets M_PER_ADDR of M_CONNS, so it
     * takes more than M_CONNS / M_PER_ADDR addresses to fill them, and a
     * local user (who has all of 127.0.0.0/8) gets M_PER_UID. */
    m->mhd = MHD_start_daemon(
        flags, port, NULL, NULL, on_request, m, MHD_OPTION_ARRAY, where,
        MHD_OPTION_CONNECTION_LIMIT, M_CONNS, MHD_OPTION_PER_IP_CONNECTION_LIMIT, M_PER_ADDR,
        MHD_OPTION_CONNECTION_TIMEOUT, M_IDLE_S, MHD_OPTION_NOTIFY_CONNECTION, on_connection, m,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)65536, MHD_OPTION_END);
    if (!m->mhd) {
        umxd_log(LOG_ERR, "metrics: cannot listen on %s", d->cfg->metrics);
        sb_free(&m->prom);
        sb_free(&m->json);
        sb_free(&m->html);
        if (m->nl >= 0)
            close(m->nl);
        free(m);
        return -EADDRNOTAVAIL;
    }
    d->metrics = m;
    g_m = m;
    {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(m->mhd, MHD_DAEMON_INFO_LISTEN_FD);
        d->mod_lfd[UMXD_MOD_METRICS] = di ? di->listen_fd : -1;
    }
    r = umxd_tick_add(d, on_tick, m);
    if (r < 0)
        return r;
    atexit(metrics_atexit);
    umxd_log(LOG_INFO, "metrics on http://%s/metrics, status page on http://%s/", d->cfg->metrics,
             d->cfg->metrics);
    return 0;
}
