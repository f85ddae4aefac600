/*
 * startup.c - udpmuxd's one-time steps (startup.h): the descriptor budget,
 * listeners created once, before privileges drop, and never re-bound (or
 * adopted from systemd), the privilege drop, and sd_notify.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "owner.h"
#include "steer/steer.h"
#include "startup.h"
#include "udpmuxd.h"

/* descriptors kept for everything but flows: listeners, control and attach
 * clients, metrics, health checks, epoll/timer/event fds */
#define UMXD_FD_RESERVE 512

/* Notify protocol ----------------------------------------------------------------- */

/* sd_notify, written by hand (no libsystemd): one datagram to
 * $NOTIFY_SOCKET, which may be an abstract socket ("@..."). */
void umxd_notify(const char *msg)
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

int umxd_watchdog_usec(void)
{
    const char *w = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
    if (!w)
        return 0;
    if (p && atol(p) != (long)getpid()) /* checksrc: numeric env from systemd */
        return 0;
    return atoi(w); /* checksrc: numeric env from systemd */
}

/* Descriptor budget ----------------------------------------------------------- */

void umxd_fd_budget(struct umxd *d)
{
    d->fd_budget = UINT32_MAX;
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
            rlim_t room =
                rl.rlim_cur > UMXD_FD_RESERVE * 2 ? rl.rlim_cur - UMXD_FD_RESERVE : rl.rlim_cur / 2;
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

/* The eBPF reuseport program for our listening groups (steer/steer.h),
 * loaded before binding: it needs CAP_BPF or CAP_SYS_ADMIN, which the
 * privilege drop takes away (its maps stay writable through their
 * descriptors), and the sockets join with SO_REUSEPORT only when it
 * exists. Without it the classic BPF program below steers, as before, and
 * nothing is filtered in the kernel: the log says so. */
static void steer_load(struct umxd *d, const uint8_t key[8])
{
    uint64_t want = (uint64_t)d->nworkers * d->cfg->max_flows;
    uint32_t k, cap = want > (1u << 22) ? (1u << 22) : (uint32_t)want;
    int r;
    memcpy(&k, key, sizeof(k));
    r = umxd_steer_load(&d->steer, d->cfg->nlisten, d->nworkers, cap, k);
    if (r < 0) {
        d->steer = NULL;
        umxd_log(LOG_NOTICE,
                 "reuseport eBPF program not loaded (%s): classic BPF steering, no kernel-side "
                 "first-byte filter, roaming peers may cross workers",
                 r == -ENOSYS ? "built without libbpf" : strerror(-r));
        return;
    }
    umxd_log(LOG_INFO, "reuseport eBPF program loaded (%u peers)", cap);
}

int umxd_open_listeners(struct umxd *d, int takeover)
{
    uint8_t key[8];
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
        d->activated = 1;
        return 0;
    }
    if (!c->nlisten) {
        umxd_log(LOG_ERR,
                 "no [listen] address in %s and no socket from systemd (LISTEN_FDS): "
                 "add [listen] address = ADDR:PORT, or start udpmuxd through its socket "
                 "unit (udpmuxd.socket)",
                 d->config_path ? d->config_path : "the configuration");
        return -EDESTADDRREQ;
    }
    if (umx_random(key, sizeof(key)) < 0)
        return -EIO;
    /* --takeover joins another program's group on purpose and leaves its
     * steering in place (the running instance keeps the traffic while it
     * lives): a program of ours would take every datagram at once */
    if (!takeover)
        steer_load(d, key);
    for (unsigned li = 0; li < c->nlisten; li++) {
        const struct sockaddr *sa = (const struct sockaddr *)&c->listen[li];
        int held = umxd_owner_holders(sa, c->dual_stack, c->listen_text[li],
                                      takeover ? LOG_NOTICE : LOG_ERR);
        if (held < 0)
            umxd_log(LOG_WARNING, "cannot tell who holds %s (sock_diag: %s): not checked",
                     c->listen_text[li], strerror(-held));
        if (held > 0 && !takeover) {
            umxd_log(LOG_ERR,
                     "refusing to share %s: stop the program above, or start udpmuxd with "
                     "--takeover to join its SO_REUSEPORT group on purpose",
                     c->listen_text[li]);
            return -EADDRINUSE;
        }
        if (held > 0)
            umxd_log(LOG_NOTICE, "--takeover: joining the socket group on %s", c->listen_text[li]);
        for (unsigned w = 0; w < d->nworkers; w++) {
            /* --takeover needs SO_REUSEPORT even with one worker: the
             * holder's group is what it joins */
            unsigned flags = d->nworkers > 1 || takeover || d->steer ? UMX_SOCK_REUSEPORT : 0;
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
        if (d->steer) {
            int r = 0;
            /* every worker socket is in the array before the program is
             * attached (w = 0 attaches), so it never picks an empty slot */
            for (unsigned w = d->nworkers; w-- > 0 && r == 0;)
                r = umxd_steer_socket(d->steer, li, w, d->lfd[li][w]);
            if (r < 0) {
                umxd_log(LOG_ERR, "%s: cannot attach the reuseport program: %s", c->listen_text[li],
                         strerror(-r));
                return r;
            }
            d->steered[li] = 2;
        } else if (d->nworkers > 1 || takeover) {
            int r = umxd_owner_steer(d->lfd[li][0], d->nworkers, key);
            d->steered[li] = r == 0;
            if (r < 0)
                umxd_log(LOG_WARNING,
                         "%s: cannot steer the SO_REUSEPORT group (SO_ATTACH_REUSEPORT_CBPF: %s): "
                         "a socket of the same user that joins it later would get a share of "
                         "the datagrams (the foreign-socket watch reports it)",
                         c->listen_text[li], strerror(-r));
        }
    }
    return 0;
}

void umxd_close_listeners(struct umxd *d)
{
    umxd_steer_free(d->steer);
    d->steer = NULL;
    for (unsigned li = 0; li < d->cfg->nlisten; li++)
        for (unsigned w = 0; w < d->nworkers; w++)
            if (d->lfd[li][w] > 0) {
                close(d->lfd[li][w]);
                d->lfd[li][w] = 0;
            }
}

/* Privileges ----------------------------------------------------------------------- */

int umxd_drop_privileges(struct umxd *d)
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
