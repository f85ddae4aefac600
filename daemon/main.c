/*
 * main.c - udpmuxd: options, the start-up order, the main loop and the
 * teardown. Each step lives in its own file (startup.c, routeset.c, the
 * modules, worker.c); nothing calls back into this one.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "routeset.h"
#include "startup.h"
#include "udpmuxd.h"
#include "kdp/kdp.h"
#include "upgrade.h"

#ifndef UMXD_VERSION
#define UMXD_VERSION UDPMUX_VERSION_STRING
#endif

static const char *default_config = "/etc/udpmux/udpmux.conf";

struct options {
    const char *cfgpath;
    const char *qlisten[UMXD_MAX_LISTEN], *qroutes[UMXD_MAX_ROUTES];
    unsigned nql, nqr, qworkers;
    long qbusy;
    int check, print, verbose, takeover, upgrade, ready_fd;
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: udpmuxd [-c FILE] [-t | -T] [-v] [--takeover]\n"
            "       udpmuxd --upgrade [-c FILE] [--ready-fd N] [-v]\n"
            "       udpmuxd -l ADDR:PORT [-l ...] -r RULE=BACKEND[,BACKEND] [-r ...] [-w N]\n"
            "               [-b US] [-v]\n"
            "  -c, --config FILE      configuration file (default %s)\n"
            "  -t, --check            check the configuration and exit (0 ok, 78 bad)\n"
            "  -T, --print            check, then print the resolved configuration\n"
            "  -l, --listen ADDR:PORT quick mode: listen address (repeatable)\n"
            "  -r, --route R=B        quick mode: route PROBE|any|\"RULE\" to BACKEND,\n"
            "                         or =echo|stun|drop (repeatable)\n"
            "  -w, --workers N        quick mode: worker threads (default 1)\n"
            "  -b, --busy-poll US     quick mode: busy-poll budget in microseconds (default 0)\n"
            "  -v, --verbose          more verbose logging (repeatable)\n"
            "      --takeover         join the socket group of a program that already holds\n"
            "                         the listen address, instead of refusing\n"
            "      --upgrade          take over the running udpmuxd's sockets and flows\n"
            "                         (its control socket; udpmuxctl upgrade runs this)\n"
            "      --ready-fd N       with --upgrade: write \"ok PID\" to descriptor N when done\n"
            "  -V, --version          print the version and exit\n"
            "  -h, --help             print this help and exit\n",
            default_config);
}

/* 0 to go on, -1 when done (--help, --version: exit 0), or the exit status. */
static int parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"print", no_argument, NULL, 'T'},
        {"listen", required_argument, NULL, 'l'},
        {"route", required_argument, NULL, 'r'},
        {"workers", required_argument, NULL, 'w'},
        {"busy-poll", required_argument, NULL, 'b'},
        {"verbose", no_argument, NULL, 'v'},
        {"version", no_argument, NULL, 'V'},
        {"takeover", no_argument, NULL, 'K'},
        {"upgrade", no_argument, NULL, 'U'},
        {"ready-fd", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    memset(o, 0, sizeof(*o));
    o->qbusy = -1;
    o->ready_fd = -1;
    while ((opt = getopt_long(argc, argv, "c:tTl:r:w:b:vVh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c':
            o->cfgpath = optarg;
            break;
        case 't':
            o->check = 1;
            break;
        case 'T':
            o->check = o->print = 1;
            break;
        case 'l':
            if (o->nql >= UMXD_MAX_LISTEN) {
                fprintf(stderr, "udpmuxd: too many -l\n");
                return EX_USAGE;
            }
            o->qlisten[o->nql++] = optarg;
            break;
        case 'r':
            if (o->nqr >= UMXD_MAX_ROUTES) {
                fprintf(stderr, "udpmuxd: too many -r\n");
                return EX_USAGE;
            }
            o->qroutes[o->nqr++] = optarg;
            break;
        case 'w': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > UMXD_MAX_WORKERS) {
                fprintf(stderr, "udpmuxd: -w takes 1..%d\n", UMXD_MAX_WORKERS);
                return EX_USAGE;
            }
            o->qworkers = (unsigned)v;
            break;
        }
        case 'b': {
            char *end;
            o->qbusy = strtol(optarg, &end, 10);
            if (!*optarg || *end || o->qbusy < 0 || o->qbusy > UMXD_BUSY_POLL_MAX_US) {
                fprintf(stderr, "udpmuxd: -b takes 0..%d microseconds\n", UMXD_BUSY_POLL_MAX_US);
                return EX_USAGE;
            }
            break;
        }
        case 'v':
            o->verbose++;
            break;
        case 'K': /* long only */
            o->takeover = 1;
            break;
        case 'U': /* long only */
            o->upgrade = 1;
            break;
        case 'R': { /* long only: udpmuxctl upgrade learns the outcome here */
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 3 || v > 1024) {
                fprintf(stderr, "udpmuxd: --ready-fd takes a descriptor number\n");
                return EX_USAGE;
            }
            o->ready_fd = (int)v;
            break;
        }
        case 'V':
            if (strcmp(UMXD_VERSION, udpmux_version()))
                printf("udpmuxd %s (libudpmux %s)\n", UMXD_VERSION, udpmux_version());
            else
                printf("udpmuxd %s\n", UMXD_VERSION);
            return -1; /* done: exit 0 */
        case 'h':
            usage(stdout);
            return -1; /* done: exit 0 */
        default:
            usage(stderr);
            return EX_USAGE;
        }
    }
    if (o->upgrade && (o->nql || o->nqr || o->takeover)) {
        fprintf(stderr, "udpmuxd: --upgrade takes over a daemon that runs a configuration "
                        "file (-c), without --takeover\n");
        return EX_USAGE;
    }
    if (optind != argc || ((o->nql || o->nqr) && o->cfgpath)) {
        usage(stderr);
        return EX_USAGE;
    }
    if (o->qbusy >= 0 && !(o->nql || o->nqr)) {
        /* a flag silently overridden by (or overriding) the file would make
         * the resolved configuration lie */
        fprintf(stderr, "udpmuxd: -b is for quick mode; set busy-poll in [udpmux] of the "
                        "configuration file\n");
        return EX_USAGE;
    }
    return 0;
}

/* Loads the file or builds the quick-mode config into d->cfg. 0 or -errno
 * with the reason in err. */
static int load_config(struct umxd *d, const struct options *o, char *err, size_t errlen)
{
    if (o->nql || o->nqr) {
        int r;
        r = umxd_config_quick(o->qlisten, o->nql, o->qroutes, o->nqr, &d->cfg, err, errlen);
        if (r < 0)
            return r;
        d->cfg->workers = o->qworkers ? o->qworkers : 1;
        if (o->qbusy >= 0)
            d->cfg->busy_poll_us = (unsigned)o->qbusy;
        return 0;
    }
    d->config_path = o->cfgpath ? o->cfgpath : default_config;
    return umxd_config_load(d->config_path, &d->cfg, err, errlen);
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

/* SIGHUP, SIGTERM and SIGINT arrive through the loop, never as handlers. */
static int watch_signals(struct umxd *d)
{
    sigset_t mask;
    int sfd;
    sigemptyset(&mask);
    sigaddset(&mask, SIGHUP);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigprocmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);
    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (sfd < 0)
        return -errno;
    if (umxd_loop_add(d, sfd, EPOLLIN, on_signal, NULL) < 0) {
        close(sfd);
        return -ENOSPC;
    }
    return sfd;
}

/* Modules that bind their own sockets do it before privileges drop; each
 * one failing is logged and the daemon runs without it. */
static void init_modules(struct umxd *d)
{
    int r;
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
}

static void run(struct umxd *d)
{
    int wd_usec = umxd_watchdog_usec();
    uint64_t last_wd = 0;
    while (!d->stopping) {
        if (umxd_loop_once(d->loop, 1000) < 0)
            break;
        if (wd_usec > 0) {
            uint64_t now = umx_now_ns();
            if (now - last_wd >= (uint64_t)wd_usec * 1000u / 2) {
                umxd_notify("WATCHDOG=1");
                last_wd = now;
            }
        }
    }
}

int main(int argc, char **argv)
{
    struct options o;
    char err[1024];
    struct umxd *d;
    struct umxd_upgrade up = {.fd = -1};
    int r, sfd = -1, rc = EX_OK;

    r = parse_options(argc, argv, &o);
    if (r)
        return r < 0 ? EX_OK : r;
    d = calloc(1, sizeof(*d));
    if (!d)
        return EX_OSERR;
    for (unsigned k = 0; k < UMX_ARRAY_LEN(d->mod_lfd); k++)
        d->mod_lfd[k] = -1;
    d->kdp_fd = -1;
    if (load_config(d, &o, err, sizeof(err)) < 0) {
        fprintf(stderr, "udpmuxd: %s\n", err);
        free(d);
        return EX_CONFIG;
    }
    if (o.check) {
        if (o.print)
            umxd_config_print(d->cfg, stdout);
        else if (!d->cfg->nlisten)
            printf("configuration OK (no [listen] address: the sockets must come from systemd "
                   "socket activation, e.g. udpmuxd.socket)\n");
        else
            printf("configuration OK\n");
        umxd_config_free(d->cfg);
        free(d);
        return EX_OK;
    }
    umxd_log_init(d->cfg->log_level + o.verbose > LOG_DEBUG ? LOG_DEBUG
                                                            : d->cfg->log_level + o.verbose);
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
        rc = EX_OSERR;
        goto out;
    }
    if (o.upgrade) {
        /* our config loaded fine; now the running daemon's sockets */
        r = umxd_upgrade_join(d, &up, err, sizeof(err));
        if (r < 0) {
            umxd_log(LOG_ERR, "upgrade refused: %s", err);
            rc = r == -EINVAL ? EX_CONFIG : EX_UNAVAILABLE;
            goto out;
        }
    }
    umxd_fd_budget(d);
    d->loop = umxd_loop_new(d);
    if (!d->loop) {
        rc = EX_OSERR;
        goto out;
    }
    r = o.upgrade ? 0 : umxd_open_listeners(d, o.takeover);
    if (r < 0) {
        rc = r == -EADDRINUSE || r == -EACCES ? EX_UNAVAILABLE
             : r == -EDESTADDRREQ             ? EX_CONFIG
                                              : EX_OSERR;
        goto out;
    }
    if (umxd_routeset_start(d) < 0) {
        rc = EX_SOFTWARE;
        goto out;
    }
    sfd = watch_signals(d);
    if (sfd < 0) {
        rc = EX_OSERR;
        goto out;
    }
    init_modules(d);
    /* before privileges drop: the table and the queue need CAP_NET_ADMIN */
    r = umxd_kdp_init(d);
    if (r < 0 && (umxd_kdp_wanted(d->cfg) || o.upgrade)) {
        rc = EX_OSERR;
        goto out;
    }
    if (umxd_drop_privileges(d) < 0 || umxd_roam_init(d) < 0) {
        rc = EX_OSERR;
        goto out;
    }
    /* the workers' tables first: an upgrade's old process stops reading
     * only once everything but the threads exists */
    for (unsigned i = 0; i < d->nworkers; i++) {
        r = umxd_worker_new(d, (int)i);
        if (r < 0) {
            umxd_log(LOG_ERR, "worker %u: %s", i, strerror(-r));
            rc = EX_OSERR;
            goto out;
        }
    }
    if (o.upgrade && umxd_upgrade_flows(d, &up, err, sizeof(err)) < 0) {
        umxd_log(LOG_ERR, "upgrade: %s", err);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    for (unsigned i = 0; i < d->nworkers; i++) {
        r = umxd_worker_go(d, (int)i);
        if (r < 0) {
            umxd_log(LOG_ERR, "worker %u: %s", i, strerror(-r));
            rc = EX_OSERR;
            goto out;
        }
    }
    /* the old queue thread stopped at FREEZE: ours reads what waited */
    if (o.upgrade && umxd_kdp_go(d) < 0) {
        rc = EX_OSERR;
        goto out;
    }
    if (o.upgrade && umxd_upgrade_finish(d, &up, err, sizeof(err)) < 0) {
        umxd_log(LOG_ERR, "upgrade: %s", err);
        rc = EX_UNAVAILABLE;
        goto out;
    }
    if ((r = umxd_harden(d)) < 0) {
        umxd_log(LOG_ERR, "hardening failed: %s", strerror(-r));
        rc = EX_OSERR;
        goto out;
    }
    if (d->cfg->busy_poll_us)
        umxd_log(LOG_INFO,
                 "busy-poll %u us: workers keep polling that long after traffic before sleeping",
                 d->cfg->busy_poll_us);
    umxd_log(LOG_NOTICE, "udpmuxd %s ready: %u listener%s, %u route%s, %u worker%s", UMXD_VERSION,
             d->cfg->nlisten, d->cfg->nlisten == 1 ? "" : "s", d->cfg->nroutes,
             d->cfg->nroutes == 1 ? "" : "s", d->nworkers, d->nworkers == 1 ? "" : "s");
    umxd_notify("READY=1");
    if (o.ready_fd >= 0) {
        char line[32];
        int n = snprintf(line, sizeof(line), "ok %d\n", (int)getpid());
        if (write(o.ready_fd, line, (size_t)n) < 0) {
            /* udpmuxctl went away: the log says we are ready */
        }
        close(o.ready_fd);
    }
    run(d);
    umxd_notify("STOPPING=1");
out:
    if (up.fd >= 0 || (o.upgrade && rc != EX_OK)) {
        /* the old process keeps running (it restarts its workers if it had
         * stopped them); leave its sockets and socket files alone */
        umxd_kdp_leave(d);
        umxd_upgrade_abort(&up, "the new process failed to start (see its log)");
        _exit(rc);
    }
    umxd_kdp_fini(d);
    umxd_worker_stop_all(d);
    if (d->roam_ft)
        umxd_roam_fini(d);
    umxd_attach_fini(d);
    umxd_close_listeners(d);
    umxd_routeset_fini(d);
    if (sfd >= 0)
        close(sfd);
    umxd_loop_free(d->loop);
    free(d);
    if (rc == EX_OK)
        umxd_log(LOG_INFO, "stopped");
    return rc;
}
