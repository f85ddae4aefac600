/*
 * main.c - udpmuxd: options, listeners (created once, before privileges
 * drop, never re-bound), workers, signals, reload, sd_notify, and the main
 * thread's small loop that the control, metrics, attach and health modules
 * hook into.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "udpmuxd.h"

#define EX_OK_ 0
#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_ 70
#define EX_OSERR_ 71
#define EX_CONFIG_ 78

#define MAX_LOOP_FDS 256
/* descriptors kept for everything but flows: listeners, control and attach
 * clients, metrics, health checks, epoll/timer/event fds */
#define UMXD_FD_RESERVE 512
#define MAX_TICKS 16

struct loopent {
    int fd;
    umxd_io_fn *fn;
    void *arg;
};

struct mainloop {
    int epfd;
    struct loopent ents[MAX_LOOP_FDS];
    umxd_tick_fn *ticks[MAX_TICKS];
    void *tickargs[MAX_TICKS];
    unsigned nticks;
};

static const char *default_config = "/etc/udpmux/udpmux.conf";

/* sd_notify, written by hand (no libsystemd): one datagram to
 * $NOTIFY_SOCKET, which may be an abstract socket ("@..."). */
static void sd_notify_msg(const char *msg)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    size_t len;
    int fd;
    if (!path || !*path)
        return;
    len = strlen(path);
    if (len >= sizeof(sa.sun_path))
        return;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, len);
    if (sa.sun_path[0] == '@')
        sa.sun_path[0] = '\0';
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0) {
        /* the service manager went away: nothing to tell */
    }
    close(fd);
}

int umxd_loop_add(struct umxd *d, int fd, uint32_t events, umxd_io_fn *fn, void *arg)
{
    struct mainloop *l = d->loop;
    struct epoll_event ev;
    for (unsigned i = 0; i < MAX_LOOP_FDS; i++) {
        if (l->ents[i].fn)
            continue;
        memset(&ev, 0, sizeof(ev));
        ev.events = events;
        ev.data.u32 = i;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno;
        l->ents[i].fd = fd;
        l->ents[i].fn = fn;
        l->ents[i].arg = arg;
        return 0;
    }
    return -ENOSPC;
}

int umxd_loop_del(struct umxd *d, int fd)
{
    struct mainloop *l = d->loop;
    for (unsigned i = 0; i < MAX_LOOP_FDS; i++) {
        if (l->ents[i].fn && l->ents[i].fd == fd) {
            epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
            l->ents[i].fn = NULL;
            return 0;
        }
    }
    return -ENOENT;
}

int umxd_tick_add(struct umxd *d, umxd_tick_fn *fn, void *arg)
{
    struct mainloop *l = d->loop;
    if (l->nticks >= MAX_TICKS)
        return -ENOSPC;
    l->ticks[l->nticks] = fn;
    l->tickargs[l->nticks] = arg;
    l->nticks++;
    return 0;
}

void umxd_shutdown(struct umxd *d)
{
    d->stopping = 1;
}

/* Route sets ------------------------------------------------------------------- */

static int build_routeset(struct umxd *d, struct umxd_config *cfg, struct umxd_routeset **out)
{
    struct umxd_routeset *rs = calloc(1, sizeof(*rs));
    if (!rs)
        return -ENOMEM;
    for (unsigned r = 0; r < cfg->nroutes; r++) {
        int s = umxd_slot(d, cfg->routes[r].name);
        if (s < 0) {
            free(rs);
            return -ENOSPC;
        }
        rs->slot[r] = (uint16_t)s;
    }
    if (umxd_config_index(cfg, &rs->idx) < 0) {
        free(rs);
        return -E2BIG;
    }
    rs->cfg = cfg;
    *out = rs;
    return 0;
}

static int same_listeners(const struct umxd_config *a, const struct umxd_config *b)
{
    if (a->nlisten != b->nlisten)
        return 0;
    for (unsigned i = 0; i < a->nlisten; i++)
        if (a->listen_len[i] != b->listen_len[i] ||
            memcmp(&a->listen[i], &b->listen[i], a->listen_len[i]) != 0)
            return 0;
    return 1;
}

/* upstream = shared sends from addresses of the `source` prefix: they must
 * be local, or the backends' replies never come back. IPv4 can be asked
 * directly (bind() accepts a local address, including an AnyIP route's,
 * and refuses others); IPv6 bind() refuses AnyIP addresses too, so IPv6
 * prefixes are not checked here (udpmux.conf(5)). Returns 0 or -EINVAL with
 * FILE:LINE in err. */
static int check_sources(const struct umxd_config *c, const char *path, char *err, size_t errlen)
{
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *r = &c->routes[i];
        struct sockaddr_in a;
        char txt[INET_ADDRSTRLEN];
        int fd, rc;
        if (!r->shared || r->action != UMXD_FORWARD || r->source.ss_family != AF_INET)
            continue;
        memcpy(&a, &r->source, sizeof(a));
        /* the prefix's first host address */
        a.sin_addr.s_addr = htonl(
            (ntohl(a.sin_addr.s_addr) & (r->source_bits ? ~0u << (32 - r->source_bits) : 0)) | 1u);
        a.sin_port = 0;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue; /* cannot tell; the counters will */
        rc = bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
        close(fd);
        if (rc != EADDRNOTAVAIL)
            continue;
        inet_ntop(AF_INET, &a.sin_addr, txt, sizeof(txt));
        snprintf(err, errlen,
                 "%s:%d: [route %s] source: %s is not a local address, so backends' replies "
                 "to it would never reach udpmuxd (use 127.0.0.0/8 for backends on loopback, "
                 "or `ip route add local PREFIX dev lo`)",
                 path ? path : "(quick mode)", r->line, r->name, txt);
        return -EINVAL;
    }
    return 0;
}

int umxd_reload(struct umxd *d, char *err, size_t errlen)
{
    struct umxd_config *nc;
    struct umxd_routeset *rs;
    int r;
    if (!d->config_path) {
        snprintf(err, errlen, "quick mode (no config file): nothing to reload");
        return -EINVAL;
    }
    sd_notify_msg("RELOADING=1");
    r = umxd_config_load(d->config_path, &nc, err, errlen);
    if (r < 0)
        goto fail;
    r = check_sources(nc, d->config_path, err, errlen);
    if (r < 0) {
        umxd_config_free(nc);
        goto fail;
    }
    if (!same_listeners(d->cfg, nc)) {
        snprintf(err, errlen,
                 "%s: [listen] addresses differ from the running ones; listening sockets are "
                 "never re-bound: restart udpmuxd to change them",
                 d->config_path);
        umxd_config_free(nc);
        r = -EINVAL;
        goto fail;
    }
    /* sizes fixed at start-up (buffers, tables, threads) keep their values */
    nc->workers = d->cfg->workers;
    nc->max_flows = d->cfg->max_flows;
    nc->batch = d->cfg->batch;
    memcpy(nc->control, d->cfg->control, sizeof(nc->control));
    memcpy(nc->attach, d->cfg->attach, sizeof(nc->attach));
    memcpy(nc->metrics, d->cfg->metrics, sizeof(nc->metrics));
    memcpy(nc->user, d->cfg->user, sizeof(nc->user));
    r = build_routeset(d, nc, &rs);
    if (r < 0) {
        snprintf(err, errlen, "too many distinct route names over the daemon's life");
        umxd_config_free(nc);
        goto fail;
    }
    /* busy-poll is read by each worker from its route set: it follows
     * the reload; say so, since it changes how much CPU idle gaps cost */
    if (nc->busy_poll_us != d->cfg->busy_poll_us)
        umxd_log(LOG_NOTICE, "busy-poll %u -> %u us", d->cfg->busy_poll_us, nc->busy_poll_us);
    d->cfg = nc;
    umxd_publish(d, rs);
    d->loaded_at = (int64_t)time(NULL);
    d->reloads_ok++;
    d->last_reload_error[0] = '\0';
    umxd_log_set_level(nc->log_level);
    umxd_log(LOG_NOTICE, "configuration reloaded from %s (%u routes)", d->config_path, nc->nroutes);
    sd_notify_msg("READY=1");
    return 0;
fail:
    d->reloads_failed++;
    snprintf(d->last_reload_error, sizeof(d->last_reload_error), "%s", err);
    umxd_log(LOG_ERR, "reload refused, still running the previous configuration: %s", err);
    sd_notify_msg("READY=1");
    return r;
}

/* Listeners ----------------------------------------------------------------------- */

static void explain_in_use(const struct sockaddr *sa, const char *text)
{
    struct udpmux_holder h[8];
    int n = udpmux_who_holds(sa, h, 8);
    umxd_log(LOG_ERR, "cannot bind %s: address already in use", text);
    /* one line per program socket set: a SO_REUSEPORT group (a socket per
     * worker) would repeat the same line */
    for (int i = 0; i < n && i < 8; i++) {
        char line[256], other[256];
        int same = 1, seen = 0;
        udpmux_holder_format(&h[i], line, sizeof(line));
        for (int j = 0; j < n && j < 8; j++) {
            if (j == i)
                continue;
            udpmux_holder_format(&h[j], other, sizeof(other));
            if (strcmp(line, other) == 0) {
                seen |= j < i;
                same++;
            }
        }
        if (seen)
            continue;
        if (same > 1)
            umxd_log(LOG_ERR, "  held by %s (%d sockets)", line, same);
        else
            umxd_log(LOG_ERR, "  held by %s", line);
    }
}

/* systemd socket activation: LISTEN_PID/LISTEN_FDS, fds from 3 on. */
static int activated_fds(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    char *end;
    long p, n;
    if (!pid || !fds)
        return 0;
    p = strtol(pid, &end, 10);
    if (*end || p != (long)getpid())
        return 0;
    n = strtol(fds, &end, 10);
    if (*end || n < 0 || n > UMXD_MAX_LISTEN)
        return 0;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    return (int)n;
}

static int open_listeners(struct umxd *d)
{
    struct umxd_config *c = d->cfg;
    int nact = activated_fds();
    if (nact > 0) {
        /* Adopt the sockets systemd bound; their addresses replace the
         * config's [listen] list. One worker: we cannot add SO_REUSEPORT
         * members to a socket we did not create safely. */
        d->nworkers = 1;
        c->nlisten = 0;
        for (int i = 0; i < nact; i++) {
            int fd = 3 + i, r;
            socklen_t sl = sizeof(c->listen[0]);
            r = umx_udp_setup(fd);
            if (r < 0) {
                umxd_log(LOG_ERR, "activated fd %d: %s", fd, strerror(-r));
                return r;
            }
            getsockname(fd, (struct sockaddr *)&c->listen[c->nlisten], &sl);
            c->listen_len[c->nlisten] = sl;
            udpmux_format_addr((struct sockaddr *)&c->listen[c->nlisten],
                               c->listen_text[c->nlisten], sizeof(c->listen_text[0]));
            d->lfd[c->nlisten][0] = fd;
            umxd_log(LOG_INFO, "using activated socket %s", c->listen_text[c->nlisten]);
            c->nlisten++;
        }
        return 0;
    }
    for (unsigned li = 0; li < c->nlisten; li++) {
        for (unsigned w = 0; w < d->nworkers; w++) {
            unsigned flags = d->nworkers > 1 ? UMX_SOCK_REUSEPORT : 0;
            int fd;
            if (c->listen[li].ss_family == AF_INET6 && c->dual_stack)
                flags |= UMX_SOCK_DUALSTACK;
            fd = umx_udp_open((struct sockaddr *)&c->listen[li], c->listen_len[li], flags,
                              c->rcvbuf, c->sndbuf);
            if (fd < 0) {
                if (fd == -EADDRINUSE)
                    explain_in_use((struct sockaddr *)&c->listen[li], c->listen_text[li]);
                else
                    umxd_log(LOG_ERR, "cannot bind %s: %s", c->listen_text[li], strerror(-fd));
                return fd;
            }
            d->lfd[li][w] = fd;
        }
        umxd_log(LOG_INFO, "listening on %s (%u socket%s)", c->listen_text[li], d->nworkers,
                 d->nworkers > 1 ? "s, SO_REUSEPORT group" : "");
    }
    return 0;
}

/* Privileges ----------------------------------------------------------------------- */

static int drop_privileges(struct umxd *d)
{
    const struct umxd_config *c = d->cfg;
    struct passwd *pw;
    gid_t gid;
    if (!c->user[0])
        goto nnp;
    pw = getpwnam(c->user);
    if (!pw) {
        umxd_log(LOG_ERR, "user '%s' does not exist", c->user);
        return -ENOENT;
    }
    gid = pw->pw_gid;
    if (c->group[0]) {
        struct group *gr = getgrnam(c->group);
        if (!gr) {
            umxd_log(LOG_ERR, "group '%s' does not exist", c->group);
            return -ENOENT;
        }
        gid = gr->gr_gid;
    }
    if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
        setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) < 0) {
        umxd_log(LOG_ERR, "cannot drop privileges to %s: %s", c->user, strerror(errno));
        return -errno;
    }
    /* must not be able to regain root */
    if (setuid(0) == 0) {
        umxd_log(LOG_ERR, "privilege drop did not stick");
        return -EPERM;
    }
    umxd_log(LOG_INFO, "running as %s (uid %u, gid %u)", c->user, (unsigned)pw->pw_uid,
             (unsigned)gid);
nnp:
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    return 0;
}

/* Main loop ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: udpmuxd [-c FILE] [-t | -T] [-v]\n"
            "       udpmuxd -l ADDR:PORT [-l ...] -r RULE=BACKEND[,BACKEND] [-r ...] [-w N]\n"
            "               [-b US]\n"
            "  -c FILE   configuration file (default %s)\n"
            "  -t        check the configuration and exit (0 ok, 78 bad)\n"
            "  -T        check, then print the resolved configuration\n"
            "  -l ADDR   quick mode: listen address (repeatable)\n"
            "  -r R=B    quick mode: route PROBE|any|\"RULE\" to BACKEND, or =echo|stun|drop\n"
            "  -w N      worker threads (quick mode; default 1)\n"
            "  -b US     busy-poll budget in microseconds (quick mode; default 0 = off)\n"
            "  -v        more verbose logging (repeatable)\n"
            "  -V        print the version\n",
            default_config);
}

static void on_tick_timer(struct umxd *d, int fd, uint32_t ev, void *arg)
{
    struct mainloop *l = d->loop;
    uint64_t v, now = umx_now_ns();
    (void)ev;
    (void)arg;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* spurious wake-up */
    }
    umxd_collect(d);
    for (unsigned i = 0; i < l->nticks; i++)
        l->ticks[i](d, now, l->tickargs[i]);
}

static int watchdog_usec(void)
{
    const char *w = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
    if (!w)
        return 0;
    if (p && atol(p) != (long)getpid()) /* checksrc: numeric env from systemd */
        return 0;
    return atoi(w); /* checksrc: numeric env from systemd */
}

static void on_signal(struct umxd *d, int fd, uint32_t ev, void *arg)
{
    struct signalfd_siginfo si;
    (void)ev;
    (void)arg;
    while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (si.ssi_signo == SIGHUP) {
            char err[512];
            umxd_reload(d, err, sizeof(err));
        } else if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT) {
            umxd_log(LOG_NOTICE, "signal %u: stopping", si.ssi_signo);
            d->stopping = 1;
        }
    }
}

int umxd_accept(struct umxd *d, int lfd)
{
    static struct umxd_ratelimit rl = UMXD_RATELIMIT_INIT(10, 1);
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno != EMFILE && errno != ENFILE)
        return -errno;
    if (d->spare_fd >= 0) {
        close(d->spare_fd);
        d->spare_fd = -1;
    }
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    /* take the spare back (any descriptor will do: the listener's own) */
    d->spare_fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
    umxd_log_rl(&rl, LOG_WARNING, "out of file descriptors: refused a local connection");
    return -EMFILE;
}

int main(int argc, char **argv)
{
    const char *cfgpath = NULL;
    const char *qlisten[UMXD_MAX_LISTEN], *qroutes[UMXD_MAX_ROUTES];
    unsigned nql = 0, nqr = 0, qworkers = 0;
    long qbusy = -1;
    int check = 0, print = 0, verbose = 0, opt, r, sfd = -1, tfd = -1, rc = 0;
    char err[1024];
    struct umxd *d;
    struct mainloop loop;
    struct umxd_routeset *rs;
    sigset_t mask;
    struct itimerspec its;
    int wd_usec;
    uint64_t last_wd = 0;

    memset(&loop, 0, sizeof(loop));
    loop.epfd = -1;

    while ((opt = getopt(argc, argv, "c:tTl:r:w:b:vVh")) != -1) {
        switch (opt) {
        case 'c':
            cfgpath = optarg;
            break;
        case 't':
            check = 1;
            break;
        case 'T':
            check = print = 1;
            break;
        case 'l':
            if (nql >= UMXD_MAX_LISTEN) {
                fprintf(stderr, "udpmuxd: too many -l\n");
                return EX_USAGE_;
            }
            qlisten[nql++] = optarg;
            break;
        case 'r':
            if (nqr >= UMXD_MAX_ROUTES) {
                fprintf(stderr, "udpmuxd: too many -r\n");
                return EX_USAGE_;
            }
            qroutes[nqr++] = optarg;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > UMXD_MAX_WORKERS) {
                fprintf(stderr, "udpmuxd: -w takes 1..%d\n", UMXD_MAX_WORKERS);
                return EX_USAGE_;
            }
            qworkers = (unsigned)v;
            break;
        }
        case 'b': {
            char *end;
            qbusy = strtol(optarg, &end, 10);
            if (!*optarg || *end || qbusy < 0 || qbusy > UMXD_BUSY_POLL_MAX_US) {
                fprintf(stderr, "udpmuxd: -b takes 0..%d microseconds\n", UMXD_BUSY_POLL_MAX_US);
                return EX_USAGE_;
            }
            break;
        }
        case 'v':
            verbose++;
            break;
        case 'V':
            printf("udpmuxd %s\n", udpmux_version());
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return EX_USAGE_;
        }
    }
    if (optind != argc || ((nql || nqr) && cfgpath)) {
        usage(stderr);
        return EX_USAGE_;
    }
    if (qbusy >= 0 && !(nql || nqr)) {
        /* a flag silently overridden by (or overriding) the file would make
         * the resolved configuration lie */
        fprintf(stderr, "udpmuxd: -b is for quick mode; set busy-poll in [udpmux] of the "
                        "configuration file\n");
        return EX_USAGE_;
    }
    d = calloc(1, sizeof(*d));
    if (!d)
        return EX_OSERR_;
    d->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nql || nqr) {
        r = umxd_config_quick(qlisten, nql, qroutes, nqr, &d->cfg, err, sizeof(err));
        if (r == 0 && qworkers)
            d->cfg->workers = qworkers;
        else if (r == 0)
            d->cfg->workers = 1;
        if (r == 0 && qbusy >= 0)
            d->cfg->busy_poll_us = (unsigned)qbusy;
    } else {
        d->config_path = cfgpath ? cfgpath : default_config;
        r = umxd_config_load(d->config_path, &d->cfg, err, sizeof(err));
        if (r == 0 && (r = check_sources(d->cfg, d->config_path, err, sizeof(err))) < 0)
            umxd_config_free(d->cfg);
    }
    if (r < 0) {
        fprintf(stderr, "udpmuxd: %s\n", err);
        free(d);
        return EX_CONFIG_;
    }
    if (check) {
        if (print)
            umxd_config_print(d->cfg, stdout);
        else
            printf("configuration OK\n");
        umxd_config_free(d->cfg);
        free(d);
        return 0;
    }
    umxd_log_init(d->cfg->log_level + verbose > LOG_DEBUG ? LOG_DEBUG
                                                          : d->cfg->log_level + verbose);
    d->nworkers = d->cfg->workers;
    if (d->nworkers == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        d->nworkers = n > 0 ? (unsigned)n : 1;
    }
    if (d->nworkers > UMXD_MAX_WORKERS)
        d->nworkers = UMXD_MAX_WORKERS;
    d->start_ns = umx_now_ns();
    d->loaded_at = (int64_t)time(NULL);
    if (umx_random(d->hashkey, sizeof(d->hashkey)) < 0) {
        rc = EX_OSERR_;
        goto out;
    }
    d->fd_budget = UINT32_MAX;
    {
        /* one upstream socket per flow: make room for max-flows of them */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
            rlim_t want = (rlim_t)d->cfg->max_flows * d->nworkers + UMXD_FD_RESERVE;
            if (rl.rlim_cur < want) {
                /* as root (CAP_SYS_RESOURCE) the hard limit can grow too */
                struct rlimit up = {want, want > rl.rlim_max ? want : rl.rlim_max};
                if (setrlimit(RLIMIT_NOFILE, &up) < 0) {
                    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
                    setrlimit(RLIMIT_NOFILE, &rl);
                }
                getrlimit(RLIMIT_NOFILE, &rl);
            }
            /* Every flow of a connected/unconnected route holds one
             * descriptor. If the limit cannot cover max-flows, cap the flow
             * tables instead of letting the descriptor table run full: then
             * the control and attach sockets would fail to accept (and
             * spin), and new flows would fail one by one with EMFILE.
             * Flows of upstream = shared routes hold none: when every
             * forward route is shared the tables keep their size, and the
             * per-worker descriptor budget still guards a route that a
             * reload turns into one socket per flow. */
            if (rl.rlim_cur < want) {
                rlim_t room = rl.rlim_cur > UMXD_FD_RESERVE * 2 ? rl.rlim_cur - UMXD_FD_RESERVE
                                                                : rl.rlim_cur / 2;
                uint32_t cap = (uint32_t)(room / d->nworkers);
                int per_flow_fd = 0;
                if (cap < 1)
                    cap = 1;
                d->fd_budget = cap;
                for (unsigned i = 0; i < d->cfg->nroutes; i++)
                    if (d->cfg->routes[i].action == UMXD_FORWARD && !d->cfg->routes[i].shared)
                        per_flow_fd = 1;
                if (per_flow_fd) {
                    umxd_log(LOG_WARNING,
                             "descriptor limit %llu is too low for max-flows = %u x %u workers: "
                             "flow tables capped at %u flows each (raise LimitNOFILE / ulimit -n, "
                             "or use upstream = shared)",
                             (unsigned long long)rl.rlim_cur, d->cfg->max_flows, d->nworkers, cap);
                    d->cfg->max_flows = cap;
                }
            }
        }
    }
    loop.epfd = epoll_create1(EPOLL_CLOEXEC);
    d->loop = &loop;

    r = open_listeners(d);
    if (r < 0) {
        rc = r == -EADDRINUSE || r == -EACCES ? EX_UNAVAILABLE_ : EX_OSERR_;
        goto out;
    }
    if (build_routeset(d, d->cfg, &rs) < 0) {
        rc = EX_SOFTWARE_;
        goto out;
    }
    umxd_publish(d, rs);

    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    umxd_loop_add(d, sfd, EPOLLIN, on_signal, NULL);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    memset(&its, 0, sizeof(its));
    its.it_value.tv_nsec = 250000000;
    its.it_interval.tv_nsec = 250000000;
    timerfd_settime(tfd, 0, &its, NULL);
    umxd_loop_add(d, tfd, EPOLLIN, on_tick_timer, NULL);

    /* modules that bind their own sockets do it before privileges drop */
    if ((r = umxd_control_init(d)) < 0)
        umxd_log(LOG_ERR, "control socket: %s", strerror(-r));
    if ((r = umxd_metrics_init(d)) < 0)
        umxd_log(LOG_ERR, "metrics: %s", strerror(-r));
    if ((r = umxd_attach_init(d)) < 0)
        umxd_log(LOG_ERR, "attach socket: %s", strerror(-r));
    if ((r = umxd_health_init(d)) < 0)
        umxd_log(LOG_ERR, "health checks: %s", strerror(-r));
    if ((r = umxd_guard_init(d)) < 0)
        umxd_log(LOG_ERR, "foreign-socket watch: %s", strerror(-r));

    if (drop_privileges(d) < 0) {
        rc = EX_OSERR_;
        goto out;
    }
    if (umxd_roam_init(d) < 0) {
        rc = EX_OSERR_;
        goto out;
    }
    for (unsigned i = 0; i < d->nworkers; i++) {
        r = umxd_worker_start(d, (int)i);
        if (r < 0) {
            umxd_log(LOG_ERR, "worker %u: %s", i, strerror(-r));
            rc = EX_OSERR_;
            goto out;
        }
    }
    if ((r = umxd_harden(d)) < 0) {
        umxd_log(LOG_ERR, "hardening failed: %s", strerror(-r));
        rc = EX_OSERR_;
        goto out;
    }
    if (d->cfg->busy_poll_us)
        umxd_log(LOG_INFO,
                 "busy-poll %u us: workers keep polling that long after traffic before sleeping",
                 d->cfg->busy_poll_us);
    umxd_log(LOG_NOTICE, "udpmuxd %s ready: %u listener%s, %u route%s, %u worker%s",
             udpmux_version(), d->cfg->nlisten, d->cfg->nlisten == 1 ? "" : "s", d->cfg->nroutes,
             d->cfg->nroutes == 1 ? "" : "s", d->nworkers, d->nworkers == 1 ? "" : "s");
    sd_notify_msg("READY=1");
    wd_usec = watchdog_usec();

    while (!d->stopping) {
        struct epoll_event evs[32];
        int n = epoll_wait(loop.epfd, evs, 32, 1000);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            struct loopent *e = &loop.ents[evs[i].data.u32];
            if (e->fn)
                e->fn(d, e->fd, evs[i].events, e->arg);
        }
        if (wd_usec > 0) {
            uint64_t now = umx_now_ns();
            if (now - last_wd >= (uint64_t)wd_usec * 1000u / 2) {
                sd_notify_msg("WATCHDOG=1");
                last_wd = now;
            }
        }
    }
    sd_notify_msg("STOPPING=1");
out:
    umxd_worker_stop_all(d);
    if (d->roam_ft)
        umxd_roam_fini(d);
    umxd_attach_fini(d);
    for (unsigned li = 0; li < d->cfg->nlisten; li++)
        for (unsigned w = 0; w < d->nworkers; w++)
            if (d->lfd[li][w] > 0)
                close(d->lfd[li][w]);
    /* free every route set (current and retired); before the first one
     * was published the config is still on its own */
    if (!d->rs)
        umxd_config_free(d->cfg);
    {
        struct umxd_routeset *cur = d->rs;
        while (cur) {
            struct umxd_routeset *next = cur->older;
            umxd_config_free(cur->cfg);
            free(cur);
            cur = next;
        }
    }
    if (sfd >= 0)
        close(sfd);
    if (tfd >= 0)
        close(tfd);
    if (loop.epfd >= 0)
        close(loop.epfd);
    if (d->spare_fd >= 0)
        close(d->spare_fd);
    free(d);
    if (rc == 0)
        umxd_log(LOG_INFO, "stopped");
    return rc;
}
