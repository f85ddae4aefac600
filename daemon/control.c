/*
 * control.c - the control socket: a Unix stream socket (mode 0660, default
 * /run/udpmux/control.sock, `control = PATH` in [udpmux]) that speaks the
 * line protocol of ctlproto.h to udpmuxctl.
 *
 * Everything runs on the main thread through umxd_loop_add: clients are
 * non-blocking, a request line is at most UMX_CTL_LINE_MAX bytes, at most
 * CTL_MAX_CLIENTS are connected, and a response is either written whole
 * (possibly over several wake-ups) or the client is dropped. The main
 * thread never waits on a slow reader.
 *
 * Who may connect: root, the daemon's own uid, and members of the socket
 * file's group (SO_PEERCRED and SO_PEERGROUPS). The file mode says the same
 * thing; the check here also holds when the socket is reached through a
 * directory with looser rights or handed over as an fd.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctlproto.h"
#include "internal.h"
#include "log.h"
#include "names.h"
#include "sockfile.h"
#include "udpmuxd.h"
#include "kdp/kdp.h"
#include "upgrade.h"

#define CTL_MAX_CLIENTS 16
/* Deadlines are on whole requests, not on any byte: a client that trickles
 * a byte now and then would otherwise hold its slot for ever. */
#define CTL_IDLE_NS (60ull * 1000000000ull) /* between requests */
#define CTL_REQ_NS (10ull * 1000000000ull)  /* first byte of a request to its LF */
#define CTL_STALL_NS (5ull * 1000000000ull) /* a reader that takes no bytes is dropped */
#define CTL_SNAP_MAX 16384                  /* flows looked at per `flows` request */
#define CTL_RESP_BASE (256u * 1024u)        /* response cap, except flows */
#define CTL_FLOW_REC 768u                   /* room per flow record */
#define CTL_DEFAULT_PATH "/run/udpmux/control.sock"

struct client {
    int fd;            /* -1: free slot */
    uint64_t since_ns; /* connect, last response sent, or a request's first byte */
    uint64_t write_ns; /* last progress writing a pending response */
    size_t inlen;
    char in[UMX_CTL_LINE_MAX];
    char *out;
    size_t outlen, outoff;
};

struct control {
    int lfd;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    struct umxd_sockfile file;
    gid_t gid; /* the socket file's group */
    uid_t owner_uid;
    struct client cl[CTL_MAX_CLIENTS];
    struct umxd_flow_info *snap; /* allocated on the first `flows` */
    struct umxd_ratelimit rl;
};

/* The control state outlives d (main() frees d before exit handlers run). */
static struct control *g_ctl;

static void client_close(struct umxd *d, struct client *c)
{
    if (c->fd < 0)
        return;
    umxd_loop_del(d, c->fd);
    close(c->fd);
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->outlen = c->outoff = c->inlen = 0;
}

/* Peer credentials ------------------------------------------------------------ */

static int peer_allowed(const struct control *ctl, int fd, struct ucred *uc)
{
    socklen_t l = sizeof(*uc);
    gid_t groups[64];
    socklen_t gl = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, uc, &l) < 0)
        return 0;
    if (uc->uid == 0 || uc->uid == geteuid() || uc->uid == ctl->owner_uid)
        return 1;
    if (uc->gid == ctl->gid)
        return 1;
    /* supplementary groups (Linux 4.13+); a peer in more than 64 groups is
     * judged on the first 64 */
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &gl) == 0 || errno == ERANGE) {
        unsigned n = gl / sizeof(gid_t);
        if (n > UMX_ARRAY_LEN(groups))
            n = UMX_ARRAY_LEN(groups);
        for (unsigned i = 0; i < n; i++)
            if (groups[i] == ctl->gid)
                return 1;
    }
    return 0;
}

/* Commands ---------------------------------------------------------------------- */

static uint64_t flow_capacity(const struct umxd *d)
{
    return (uint64_t)d->cfg->max_flows * d->nworkers;
}

static void cmd_status(struct umxd *d, struct umx_ctl_out *o)
{
    uint64_t now = umx_now_ns(), up_ms = (now - d->start_ns) / 1000000u;
    time_t wall = time(NULL);
    umx_ctl_rec(o, "status");
    umx_ctl_str(o, "version", udpmux_version());
    umx_ctl_u64(o, "proto", UMX_CTL_PROTO_VERSION);
    umx_ctl_u64(o, "pid", (uint64_t)getpid());
    umx_ctl_u64(o, "uptime_ms", up_ms);
    umx_ctl_i64(o, "started_at", (int64_t)wall - (int64_t)(up_ms / 1000u));
    umx_ctl_u64(o, "workers", d->nworkers);
    umx_ctl_u64(o, "listeners", d->cfg->nlisten);
    umx_ctl_u64(o, "routes", d->cfg->nroutes);
    {
        /* absolute, so the operator knows which file a reload will read */
        char abs[PATH_MAX];
        const char *cp = d->config_path ? d->config_path : "";
        if (*cp && *cp != '/' && realpath(cp, abs))
            cp = abs;
        umx_ctl_str(o, "config", cp);
    }
    umx_ctl_i64(o, "loaded_at", d->loaded_at);
    umx_ctl_u64(o, "reloads_ok", d->reloads_ok);
    umx_ctl_u64(o, "reloads_failed", d->reloads_failed);
    umx_ctl_str(o, "last_reload_error", d->last_reload_error);
    umx_ctl_u64(o, "epoch", d->epoch);
    umx_ctl_str(o, "control", g_ctl ? g_ctl->path : "");
    umx_ctl_str(o, "metrics", d->cfg->metrics);
    umx_ctl_u64(o, "flows_capacity", flow_capacity(d));
    umx_ctl_rec_end(o);
    for (unsigned i = 0; i < d->cfg->nlisten; i++) {
        umx_ctl_rec(o, "listener");
        umx_ctl_u64(o, "index", i);
        umx_ctl_str(o, "addr", d->cfg->listen_text[i]);
        umx_ctl_u64(o, "reuseport.sockets",
                    __atomic_load_n(&d->group_sockets[i], __ATOMIC_RELAXED));
        umx_ctl_u64(o, "reuseport.foreign",
                    __atomic_load_n(&d->group_foreign[i], __ATOMIC_RELAXED));
        umx_ctl_u64(o, "steering", d->steered[i] != 0);
        umx_ctl_str(o, "steering.program",
                    d->steered[i] == 2   ? "ebpf"
                    : d->steered[i] == 1 ? "classic"
                                         : "none");
        umx_ctl_rec_end(o);
    }
}

static void cmd_stats(struct umxd *d, struct umx_ctl_out *o)
{
    struct umxd_stats st;
    uint64_t active = 0;
    umxd_stats_sum(d, &st);
    for (unsigned r = 0; r < d->cfg->nroutes; r++) {
        struct umxd_route_stats rst;
        umxd_route_stats_sum(d, d->rs->slot[r], &rst);
        active += rst.active_flows;
    }
    umx_ctl_rec(o, "stats");
#define PUT(f, n, h) umx_ctl_u64(o, n, st.f);
    UMXD_STATS(PUT)
#undef PUT
    umx_ctl_u64(o, "flows.active", active);
    umx_ctl_u64(o, "flows.capacity", flow_capacity(d));
    umx_ctl_u64(o, "reload.ok", d->reloads_ok);
    umx_ctl_u64(o, "reload.failed", d->reloads_failed);
    umx_ctl_u64(o, "uptime_ms", (umx_now_ns() - d->start_ns) / 1000000u);
    {
        struct umxd_attach_stats as;
        umxd_attach_stats(d, &as);
        umx_ctl_u64(o, "attach.programs", as.programs);
        umx_ctl_u64(o, "attach.delivered", as.delivered);
        umx_ctl_u64(o, "attach.sent", as.sent);
        umx_ctl_u64(o, "attach.refused", as.refused);
#define PUT(f, n, h) umx_ctl_u64(o, "attach.drop." n, as.drop_##f);
        UMXD_ATTACH_DROPS(PUT)
#undef PUT
    }
    umx_ctl_rec_end(o);
    {
        /* a record of its own: the stats record is near the field cap */
        struct umxd_kdp_stats ks;
        if (umxd_kdp_stats(d, &ks, 1) == 0) {
            umx_ctl_rec(o, "kernel");
            umx_ctl_u64(o, "kernel.queued", ks.queued);
            umx_ctl_u64(o, "kernel.to_kernel", ks.to_kernel);
            umx_ctl_u64(o, "kernel.to_user", ks.to_user);
            umx_ctl_u64(o, "kernel.dropped", ks.dropped);
            umx_ctl_u64(o, "kernel.held", ks.held);
            umx_ctl_u64(o, "kernel.verdict_errors", ks.verdict_err);
            umx_ctl_u64(o, "kernel.replies", ks.replies);
            umx_ctl_u64(o, "kernel.keys_learnt", ks.keys);
            umx_ctl_u64(o, "kernel.handshakes", ks.handshakes);
            umx_ctl_u64(o, "kernel.reply_keys", ks.reply_keys);
            umx_ctl_u64(o, "kernel.roamed", ks.roamed);
            umx_ctl_u64(o, "kernel.ordered", ks.ordered);
            umx_ctl_u64(o, "kernel.queue_full", ks.queue_full);
            umx_ctl_u64(o, "kernel.flows", ks.flows);
            umx_ctl_u64(o, "kernel.datagrams", ks.pkts);
            umx_ctl_u64(o, "kernel.bytes", ks.bytes);
            umx_ctl_rec_end(o);
        }
    }
}

static void cmd_routes(struct umxd *d, struct umx_ctl_out *o)
{
    uint64_t now = umx_now_ns();
    const struct umxd_config *c = d->cfg;
    for (unsigned r = 0; r < c->nroutes; r++) {
        const struct umxd_route *rt = &c->routes[r];
        unsigned slot = d->rs->slot[r];
        struct umxd_route_stats rst;
        umxd_route_stats_sum(d, slot, &rst);
        umx_ctl_rec(o, "route");
        umx_ctl_str(o, "name", rt->name);
        umx_ctl_u64(o, "index", r);
        umx_ctl_str(o, "rule", rt->match);
        umx_ctl_str(o, "action", umxd_action_name(rt->action));
        umx_ctl_u64(o, "draining", (uint64_t)__atomic_load_n(&d->drain[slot], __ATOMIC_RELAXED));
#define PUT(f, n, h) umx_ctl_u64(o, n, rst.f);
        UMXD_ROUTE_STATS(PUT)
#undef PUT
        umx_ctl_u64(o, "flows.active", rst.active_flows);
        umx_ctl_u64(o, "nbackends", rt->nbackends);
        umx_ctl_rec_end(o);
        for (unsigned b = 0; b < rt->nbackends; b++) {
            struct umxd_health *h = &d->health[slot][b];
            uint64_t du = __atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED);
            umx_ctl_rec(o, "backend");
            umx_ctl_str(o, "route", rt->name);
            umx_ctl_u64(o, "index", b);
            umx_ctl_str(o, "addr", rt->backends[b].text);
            umx_ctl_str(o, "health", umxd_backend_state(d, slot, b, now));
            umx_ctl_u64(o, "active_down",
                        (uint64_t)__atomic_load_n(&h->active_down, __ATOMIC_RELAXED));
            umx_ctl_u64(o, "passive_down_ms", du > now ? (du - now) / 1000000u : 0);
            umx_ctl_u64(o, "draining", (uint64_t)__atomic_load_n(&h->draining, __ATOMIC_RELAXED));
            {
                struct umxd_backend_stats bs;
                umxd_backend_stats_sum(d, slot, b, &bs);
#define PUT(f, n, h_) umx_ctl_u64(o, n, bs.f);
                UMXD_BACKEND_STATS(PUT)
#undef PUT
                umx_ctl_u64(o, "flows.active", bs.active_flows);
            }
            umx_ctl_u64(o, "checks.sent", h->checks_sent);
            umx_ctl_u64(o, "checks.ok", h->checks_ok);
            umx_ctl_u64(o, "checks.failed", h->checks_failed);
            umx_ctl_u64(o, "checks.transitions", h->transitions);
            umx_ctl_rec_end(o);
        }
    }
}

/* A peer filter matches the full "addr:port" text or the address alone. */
static int peer_match(const struct sockaddr_in6 *peer, const char *filter, char *text,
                      size_t textlen)
{
    char host[INET6_ADDRSTRLEN + 2];
    udpmux_format_addr((const struct sockaddr *)peer, text, textlen);
    if (!filter[0] || strcmp(text, filter) == 0)
        return 1;
    /* strip ":port" and IPv6 brackets */
    {
        const char *colon = strrchr(text, ':');
        size_t hl = colon ? (size_t)(colon - text) : strlen(text);
        const char *h = text;
        if (hl >= sizeof(host))
            return 0;
        if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') {
            h++;
            hl -= 2;
        }
        memcpy(host, h, hl);
        host[hl] = '\0';
    }
    return strcmp(host, filter) == 0;
}

static void cmd_flows(struct umxd *d, struct umx_ctl_out *o, const struct umx_ctl_req *req)
{
    struct control *ctl = d->control;
    unsigned n, shown = 0, matched = 0;
    if (req->route[0] && umxd_config_route(d->cfg, req->route) < 0) {
        umx_ctl_error(o, -ENOENT, "no such route");
        return;
    }
    if (!ctl->snap) {
        ctl->snap = calloc(CTL_SNAP_MAX, sizeof(*ctl->snap));
        if (!ctl->snap) {
            umx_ctl_error(o, -ENOMEM, "no memory for the flow snapshot");
            return;
        }
    }
    n = umxd_flows_snapshot(d, req->route[0] ? req->route : NULL, ctl->snap, CTL_SNAP_MAX);
    if (n < CTL_SNAP_MAX)
        n += umxd_kdp_flows(d, req->route[0] ? req->route : NULL, ctl->snap + n, CTL_SNAP_MAX - n);
    for (unsigned i = 0; i < n; i++) {
        const struct umxd_flow_info *f = &ctl->snap[i];
        char peer[80], local[80];
        if (!peer_match(&f->peer, req->peer, peer, sizeof(peer)))
            continue;
        matched++;
        if (shown >= req->limit)
            continue;
        shown++;
        if (f->local.sin6_family)
            udpmux_format_addr((const struct sockaddr *)&f->local, local, sizeof(local));
        else
            local[0] = '\0';
        umx_ctl_rec(o, "flow");
        umx_ctl_str(o, "route", f->route);
        umx_ctl_str(o, "peer", peer);
        umx_ctl_str(o, "local", local);
        umx_ctl_str(o, "backend", f->backend);
        umx_ctl_u64(o, "worker", (uint64_t)f->worker);
        umx_ctl_str(o, "datapath", f->kernel ? "kernel" : "user");
        umx_ctl_str(o, "state", f->established ? "established" : "unanswered");
        umx_ctl_u64(o, "age_ms", f->age_ms);
        umx_ctl_u64(o, "idle_ms", f->idle_ms);
        umx_ctl_u64(o, "rx.datagrams", f->rx_datagrams);
        umx_ctl_u64(o, "rx.bytes", f->rx_bytes);
        umx_ctl_u64(o, "tx.datagrams", f->tx_datagrams);
        umx_ctl_u64(o, "tx.bytes", f->tx_bytes);
        umx_ctl_rec_end(o);
    }
    umx_ctl_rec(o, "summary");
    umx_ctl_u64(o, "matched", matched);
    umx_ctl_u64(o, "shown", shown);
    umx_ctl_u64(o, "scanned", n);
    /* scanned == the snapshot cap means flows beyond it were not looked at */
    umx_ctl_u64(o, "truncated", matched > shown || n >= CTL_SNAP_MAX);
    umx_ctl_rec_end(o);
}

static void cmd_reload(struct umxd *d, struct umx_ctl_out *o)
{
    char err[512];
    int r = umxd_reload(d, err, sizeof(err));
    if (r < 0) {
        umx_ctl_error(o, r, err);
        return;
    }
    umx_ctl_rec(o, "reload");
    umx_ctl_str(o, "result", "ok");
    umx_ctl_u64(o, "routes", d->cfg->nroutes);
    umx_ctl_i64(o, "loaded_at", d->loaded_at);
    umx_ctl_u64(o, "epoch", d->epoch);
    umx_ctl_rec_end(o);
}

static int backend_is(const struct umxd_backend *be, const char *text,
                      const struct sockaddr_storage *ss, int have_ss)
{
    if (strcmp(be->text, text) == 0)
        return 1;
    if (!have_ss || be->addr.ss_family != ss->ss_family)
        return 0;
    if (ss->ss_family == AF_INET)
        return memcmp(&be->addr, ss, sizeof(struct sockaddr_in)) == 0;
    {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)&be->addr;
        const struct sockaddr_in6 *b = (const struct sockaddr_in6 *)(const void *)ss;
        return a->sin6_port == b->sin6_port &&
               memcmp(&a->sin6_addr, &b->sin6_addr, sizeof(a->sin6_addr)) == 0;
    }
}

/* drain/undrain TARGET: a route name; else ROUTE/BACKEND; else a backend
 * address in every route that has it. Route names cannot hold '/'... but
 * are tried first anyway, so a route is never shadowed by a backend. */
static void cmd_drain(struct umxd *d, struct umx_ctl_out *o, const struct umx_ctl_req *req, int on)
{
    const struct umxd_config *c = d->cfg;
    const char *target = req->target, *be_text = target;
    char route[UMX_CTL_ARG_MAX] = "";
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int have_ss, r = umxd_config_route(c, target);
    unsigned hits = 0;
    uint64_t now = umx_now_ns();
    if (r >= 0) {
        unsigned slot = d->rs->slot[r];
        struct umxd_route_stats rst;
        __atomic_store_n(&d->drain[slot], on, __ATOMIC_RELAXED);
        umxd_route_stats_sum(d, slot, &rst);
        umxd_log(LOG_NOTICE, "control: route %s %s", c->routes[r].name,
                 on ? "draining (no new flows)" : "accepts new flows again");
        umx_ctl_rec(o, on ? "drain" : "undrain");
        umx_ctl_str(o, "kind", "route");
        umx_ctl_str(o, "route", c->routes[r].name);
        umx_ctl_u64(o, "flows.active", rst.active_flows);
        umx_ctl_rec_end(o);
        return;
    }
    {
        const char *slash = strchr(target, '/');
        if (slash && (size_t)(slash - target) < sizeof(route)) {
            memcpy(route, target, (size_t)(slash - target));
            route[slash - target] = '\0';
            be_text = slash + 1;
            if (umxd_config_route(c, route) < 0) {
                umx_ctl_error(o, -ENOENT, "no such route");
                return;
            }
        }
    }
    have_ss = udpmux_parse_addr(be_text, &ss, &sl) == 0;
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *rt = &c->routes[i];
        unsigned slot = d->rs->slot[i];
        if (route[0] && strcmp(route, rt->name) != 0)
            continue;
        for (unsigned b = 0; b < rt->nbackends; b++) {
            if (!backend_is(&rt->backends[b], be_text, &ss, have_ss))
                continue;
            __atomic_store_n(&d->health[slot][b].draining, on, __ATOMIC_RELAXED);
            hits++;
            umxd_log(LOG_NOTICE, "control: backend %s of route %s %s", rt->backends[b].text,
                     rt->name, on ? "draining (no new flows)" : "accepts new flows again");
            umx_ctl_rec(o, on ? "drain" : "undrain");
            umx_ctl_str(o, "kind", "backend");
            umx_ctl_str(o, "route", rt->name);
            umx_ctl_str(o, "backend", rt->backends[b].text);
            umx_ctl_str(o, "health", umxd_backend_state(d, slot, b, now));
            umx_ctl_rec_end(o);
        }
    }
    if (!hits)
        umx_ctl_error(o, -ENOENT, "no route or backend by that name");
}

/* Runs one request; returns a malloc'd response (NUL-terminated) and its
 * length in *len, or NULL when out of memory. */
static char *run_request(struct umxd *d, const char *line, size_t linelen, size_t *len)
{
    struct umx_ctl_req req;
    struct umx_ctl_out o;
    size_t cap = CTL_RESP_BASE;
    char *buf;
    int r = umx_ctl_req_parse(line, linelen, &req);
    if (r == 0 && req.cmd == UMX_CTL_FLOWS)
        cap += (size_t)req.limit * CTL_FLOW_REC;
    buf = malloc(cap);
    if (!buf)
        return NULL;
    umx_ctl_out_init(&o, buf, cap);
    if (r < 0) {
        umx_ctl_error(&o, r,
                      r == -E2BIG ? "request too long"
                                  : "bad request (commands: status stats routes flows reload "
                                    "drain undrain)");
    } else {
        switch (req.cmd) {
        case UMX_CTL_STATUS:
            cmd_status(d, &o);
            break;
        case UMX_CTL_STATS:
            cmd_stats(d, &o);
            break;
        case UMX_CTL_ROUTES:
            cmd_routes(d, &o);
            break;
        case UMX_CTL_FLOWS:
            cmd_flows(d, &o, &req);
            break;
        case UMX_CTL_RELOAD:
            cmd_reload(d, &o);
            break;
        case UMX_CTL_DRAIN:
        case UMX_CTL_UNDRAIN:
            cmd_drain(d, &o, &req, req.cmd == UMX_CTL_DRAIN);
            break;
        default:
            umx_ctl_error(&o, -EINVAL, "bad request");
            break;
        }
    }
    if (o.overflow) {
        /* never send half a listing: the caller would take it for all */
        umx_ctl_out_init(&o, buf, cap);
        umx_ctl_error(&o, -E2BIG, "response too large; narrow it (flows route= peer= limit=)");
    }
    umx_ctl_done(&o);
    *len = o.len;
    return buf;
}

/* I/O ---------------------------------------------------------------------------- */

static void on_client(struct umxd *d, int fd, uint32_t events, void *arg);
static void send_error(int fd, int code, const char *msg);

/* Switches the client between reading requests and writing a response. */
static int client_watch(struct umxd *d, struct client *c, uint32_t events)
{
    umxd_loop_del(d, c->fd);
    return umxd_loop_add(d, c->fd, events, on_client, c);
}

/* Writes what the socket takes. 1: all written; 0: more later; <0: error. */
static int client_flush(struct client *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -errno;
        }
        c->outoff += (size_t)n;
        c->write_ns = umx_now_ns();
    }
    free(c->out);
    c->out = NULL;
    c->outlen = c->outoff = 0;
    /* a response sent: the next deadline is the idle one (or, with part of
     * a request already buffered, that request's) */
    c->since_ns = umx_now_ns();
    return 1;
}

/* Handles complete request lines in the input buffer, one response at a
 * time: while a response is pending, further requests wait in the buffer. */
static void client_process(struct umxd *d, struct client *c)
{
    while (!c->out) {
        char *nl = memchr(c->in, '\n', c->inlen);
        size_t linelen;
        int r;
        if (!nl) {
            if (c->inlen >= sizeof(c->in)) {
                /* no LF within the cap: one error record, then hang up */
                umxd_log_rl(&g_ctl->rl, LOG_INFO,
                            "control: request line over %d bytes, client dropped",
                            UMX_CTL_LINE_MAX);
                send_error(c->fd, -E2BIG, "request too long");
                client_close(d, c);
            }
            return;
        }
        linelen = (size_t)(nl - c->in) + 1;
        if (linelen == sizeof(UMXD_UPGRADE_REQUEST) &&
            memcmp(c->in, UMXD_UPGRADE_REQUEST, linelen - 1) == 0) {
            /* a new udpmuxd asks to take over: the connection is upgrade.c's
             * now (it checks the peer is root); on success we never return */
            int fd = c->fd;
            umxd_loop_del(d, fd);
            c->fd = -1;
            c->inlen = 0;
            umxd_upgrade_serve(d, fd);
            return;
        }
        c->out = run_request(d, c->in, linelen, &c->outlen);
        memmove(c->in, c->in + linelen, c->inlen - linelen);
        c->inlen -= linelen;
        if (!c->out) {
            client_close(d, c);
            return;
        }
        c->outoff = 0;
        c->write_ns = umx_now_ns();
        r = client_flush(c);
        if (r < 0) {
            client_close(d, c);
            return;
        }
        if (r == 0) {
            /* wait for room; c->write_ns now measures the stall */
            if (client_watch(d, c, EPOLLOUT) < 0)
                client_close(d, c);
            return;
        }
    }
}

static void on_client(struct umxd *d, int fd, uint32_t events, void *arg)
{
    struct client *c = arg;
    (void)fd;
    if (c->out) {
        int r = client_flush(c);
        if (r < 0 || (events & (EPOLLERR | EPOLLHUP))) {
            client_close(d, c);
            return;
        }
        if (r == 0)
            return;
        if (client_watch(d, c, EPOLLIN) < 0) {
            client_close(d, c);
            return;
        }
        client_process(d, c); /* requests that arrived meanwhile */
        return;
    }
    if (events & EPOLLIN) {
        ssize_t n = recv(c->fd, c->in + c->inlen, sizeof(c->in) - c->inlen, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            client_close(d, c);
            return;
        }
        if (n > 0) {
            if (c->inlen == 0)
                c->since_ns = umx_now_ns(); /* a request starts */
            c->inlen += (size_t)n;
        }
        client_process(d, c);
    } else if (events & (EPOLLERR | EPOLLHUP)) {
        client_close(d, c);
    }
}

/* One error record, best effort: used where no response buffer exists. */
static void send_error(int fd, int code, const char *msg)
{
    char buf[256];
    struct umx_ctl_out o;
    umx_ctl_out_init(&o, buf, sizeof(buf));
    umx_ctl_error(&o, code, msg);
    umx_ctl_done(&o);
    if (send(fd, buf, o.len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        /* the peer is gone already: nothing to tell */
    }
}

static void refuse(int fd, int code, const char *msg)
{
    send_error(fd, code, msg);
    close(fd);
}

static void on_accept(struct umxd *d, int lfd, uint32_t events, void *arg)
{
    struct control *ctl = arg;
    (void)events;
    /* bounded: at most one backlog's worth per wake-up */
    for (int k = 0; k < 32; k++) {
        struct ucred uc;
        struct client *c = NULL;
        int fd = umxd_accept(d, lfd);
        if (fd < 0)
            return;
        if (!peer_allowed(ctl, fd, &uc)) {
            umxd_log_rl(&ctl->rl, LOG_WARNING, "control: refused uid %u gid %u pid %d",
                        (unsigned)uc.uid, (unsigned)uc.gid, (int)uc.pid);
            refuse(fd, -EACCES, "permission denied");
            continue;
        }
        for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
            if (ctl->cl[i].fd < 0) {
                c = &ctl->cl[i];
                break;
            }
        if (!c) {
            umxd_log_rl(&ctl->rl, LOG_WARNING, "control: %d clients already, refusing one",
                        CTL_MAX_CLIENTS);
            refuse(fd, -EBUSY, "too many control clients");
            continue;
        }
        c->fd = fd;
        c->inlen = 0;
        c->since_ns = umx_now_ns();
        if (umxd_loop_add(d, fd, EPOLLIN, on_client, c) < 0) {
            close(fd);
            c->fd = -1;
        }
    }
}

static void on_tick(struct umxd *d, uint64_t now, void *arg)
{
    struct control *ctl = arg;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
        struct client *c = &ctl->cl[i];
        if (c->fd < 0)
            continue;
        if (c->out ? now - c->write_ns > CTL_STALL_NS
                   : now - c->since_ns > (c->inlen ? CTL_REQ_NS : CTL_IDLE_NS))
            client_close(d, c);
    }
}

/* Set-up -------------------------------------------------------------------------- */

static void make_parent(const char *path)
{
    char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
    char *slash;
    snprintf(dir, sizeof(dir), "%s", path);
    slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = '\0';
    if (mkdir(dir, 0755) < 0 && errno != EEXIST)
        umxd_log(LOG_WARNING, "control: mkdir %s: %s", dir, strerror(errno));
}

static void control_atexit(void)
{
    struct control *ctl = g_ctl;
    if (!ctl)
        return;
    g_ctl = NULL;
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++) {
        if (ctl->cl[i].fd >= 0)
            close(ctl->cl[i].fd);
        free(ctl->cl[i].out);
    }
    if (ctl->lfd >= 0) {
        close(ctl->lfd);
        umxd_sockfile_unlink(&ctl->file, ctl->path);
    }
    free(ctl->snap);
    free(ctl);
}

int umxd_control_init(struct umxd *d)
{
    struct control *ctl;
    struct sockaddr_un sa;
    struct stat st;
    const char *path = d->cfg->control[0] ? d->cfg->control : CTL_DEFAULT_PATH;
    size_t pl = strlen(path);
    mode_t old;
    int r;
    if (strcmp(path, "none") == 0)
        return 0;
    if (pl >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    ctl = calloc(1, sizeof(*ctl));
    if (!ctl)
        return -ENOMEM;
    ctl->lfd = -1;
    ctl->rl = (struct umxd_ratelimit)UMXD_RATELIMIT_INIT(10, 5);
    for (unsigned i = 0; i < CTL_MAX_CLIENTS; i++)
        ctl->cl[i].fd = -1;
    memcpy(ctl->path, path, pl + 1);
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, pl);
    if (d->mod_lfd[UMXD_MOD_CONTROL] >= 0) {
        /* upgrade: the old process's socket, bound at the same path (the
         * new config must name it: upgrade.c), so connections queue in its
         * backlog during the switch instead of failing */
        ctl->lfd = d->mod_lfd[UMXD_MOD_CONTROL];
        umxd_sockfile_note(&ctl->file, path);
    } else {
        make_parent(path);
        r = umxd_sockfile_clear(path, SOCK_STREAM);
        if (r < 0)
            goto fail;
        ctl->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (ctl->lfd < 0) {
            r = -errno;
            goto fail;
        }
        /* the umask makes the file 0660 from birth: no window where another
         * user could connect before chmod */
        old = umask(0117);
        r = bind(ctl->lfd, (struct sockaddr *)&sa, sizeof(sa));
        umask(old);
        if (r == 0)
            umxd_sockfile_note(&ctl->file, path);
        if (r < 0 || listen(ctl->lfd, 16) < 0) {
            r = -errno;
            ctl->lfd = (close(ctl->lfd), -1);
            goto fail;
        }
    }
    chmod(path, 0660);
    ctl->owner_uid = geteuid();
    if (d->cfg->user[0]) {
        /* the daemon runs as this user after the drop: it owns the socket,
         * and the group (group = or the user's primary) may use it */
        struct passwd *pw = getpwnam(d->cfg->user);
        gid_t gid = pw ? pw->pw_gid : (gid_t)-1;
        if (d->cfg->group[0]) {
            struct group *gr = getgrnam(d->cfg->group);
            if (gr)
                gid = gr->gr_gid;
        }
        if (pw) {
            ctl->owner_uid = pw->pw_uid;
            if (chown(path, pw->pw_uid, gid) < 0)
                umxd_log(LOG_WARNING, "control: chown %s: %s", path, strerror(errno));
        }
    }
    if (stat(path, &st) == 0)
        ctl->gid = st.st_gid;
    d->control = ctl;
    d->mod_lfd[UMXD_MOD_CONTROL] = ctl->lfd;
    g_ctl = ctl;
    r = umxd_loop_add(d, ctl->lfd, EPOLLIN, on_accept, ctl);
    if (r == 0)
        r = umxd_tick_add(d, on_tick, ctl);
    if (r < 0) {
        umxd_loop_del(d, ctl->lfd);
        d->control = NULL;
        g_ctl = NULL;
        close(ctl->lfd);
        umxd_sockfile_unlink(&ctl->file, path);
        goto fail;
    }
    atexit(control_atexit);
    umxd_log(LOG_INFO, "control socket %s", path);
    return 0;
fail:
    umxd_log(LOG_ERR, "control: %s: %s", path, umxd_sockfile_strerror(r));
    free(ctl);
    return r;
}
