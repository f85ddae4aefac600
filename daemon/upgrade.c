/*
 * upgrade.c - hand the running daemon's sockets and flows to a new process
 * (upgrade.h; the design and its reasons: docs/internals/upgrade.md).
 *
 * The sockets are kernel objects that keep their queues, so they are
 * handed over instead of re-bound. The new process (udpmuxd --upgrade,
 * started by `udpmuxctl upgrade` as root) loads and checks its own
 * configuration first: a bad file ends it there and the old process never
 * hears of it. Then, over the control socket:
 *
 *   new -> old  "upgrade-handoff" request line (root only, SO_PEERCRED)
 *   old -> new  HELLO (hash key, workers, paths) + control/attach/metrics
 *               listening sockets; LISTEN per listener + its socket per
 *               worker (SCM_RIGHTS); STEER (the eBPF program's maps); KDP
 *               (route slot names, the kernel datapath's queue socket)
 *   new         checks they fit its config (ABORT with the reason if not),
 *               sets up as a normal start does, drops privileges
 *   new -> old  FREEZE
 *   old         workers stop between batches (queues flushed), nothing
 *               closed; FLOWS (64 records + upstream sockets a frame), END
 *   new         workers adopt the flows, then read the same sockets
 *   new -> old  DONE; old tells systemd MAINPID=new and exits
 *
 * Between FREEZE and the new workers' first read nobody reads: datagrams
 * wait in the sockets' receive queues (listeners and upstream sockets
 * alike; new flows' first datagrams of kernel routes in the NFQUEUE),
 * which is why nothing is lost as long as the switch is shorter than what
 * rcvbuf holds. If the new process fails or goes away after
 * FREEZE, the old one restarts its workers on the state it kept.
 *
 * Frames: an 8-byte header (type, length) and the payload in one sendmsg,
 * descriptors attached; the reader takes the header with recvmsg (the
 * kernel gives a message's descriptors with its first byte and never
 * merges two messages' descriptors) and the payload with its exact length.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <pwd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "kdp/kdp.h"
#include "log.h"
#include "startup.h"
#include "routeset.h"
#include "steer/steer.h"
#include "udpmuxd.h"
#include "upgrade.h"

enum { F_HELLO = 1, F_LISTEN, F_ABORT, F_FREEZE, F_FLOWS, F_END, F_DONE, F_STEER, F_KDP };

/* F_STEER: the reuseport program's maps (steer.h), none without one */
struct steer_hdr {
    uint32_t mirror;
    uint32_t nmaps;
};

/* F_KDP: the route slots (a kernel flow's conntrack mark names its route
 * by slot, so the new process must number routes as the old one did) and
 * the kernel datapath's queue socket when it runs (nqueue 1, one fd) */
struct kdp_frame {
    uint32_t nqueue;
    uint32_t nslots;
    char slot[UMXD_MAX_SLOTS][UMXD_NAME_MAX];
};

#define UP_MAGIC 0x756d7875u /* "umxu" */
#define UP_TIMEOUT_S 10
#define UP_BATCH 64    /* flows (and descriptors) per frame */
#define UP_MAX_FDS 253 /* SCM_MAX_FD */
#define UP_MAX_FLOWS 2000000u

struct hello {
    uint32_t magic, version, pid, nworkers, nlisten, activated;
    uint32_t watchdog_usec; /* systemd's WatchdogSec=, which the new process inherits */
    uint32_t have[3];       /* control, attach, metrics sockets follow, in this order */
    uint8_t hashkey[16];
    char control[sizeof(((struct umxd_config *)0)->control)];
    char attach[sizeof(((struct umxd_config *)0)->attach)];
    char metrics[sizeof(((struct umxd_config *)0)->metrics)];
};

struct listen_hdr {
    uint32_t li, n;
};

struct end {
    uint32_t flows, skipped;
};

struct done {
    uint32_t pid, adopted;
};

/* Frames ---------------------------------------------------------------------------- */

static int send_frame(int fd, uint32_t type, const void *p, uint32_t len, const int *fds,
                      unsigned nfds)
{
    uint32_t hdr[2] = {type, len};
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {NULL, len}};
    union {
        char buf[CMSG_SPACE(sizeof(int) * UP_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr m;
    ssize_t n;
    size_t want = sizeof(hdr) + len;
    if (nfds > UP_MAX_FDS)
        return -E2BIG;
    memcpy(&iov[1].iov_base, &p, sizeof(p)); /* sendmsg does not write it */
    memset(&m, 0, sizeof(m));
    m.msg_iov = iov;
    m.msg_iovlen = len ? 2 : 1;
    if (nfds) {
        struct cmsghdr *c;
        memset(&u, 0, sizeof(u));
        m.msg_control = u.buf;
        m.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&m);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    n = sendmsg(fd, &m, MSG_NOSIGNAL);
    if (n < 0)
        return -errno;
    if ((size_t)n < want) {
        /* a stream may take part of it: the rest without descriptors */
        const uint8_t *rest = p;
        size_t off = (size_t)n > sizeof(hdr) ? (size_t)n - sizeof(hdr) : 0;
        if ((size_t)n < sizeof(hdr))
            return -EIO; /* header split: cannot happen with 8 bytes, refuse anyway */
        while (off < len) {
            ssize_t k = send(fd, rest + off, len - off, MSG_NOSIGNAL);
            if (k <= 0)
                return k < 0 ? -errno : -EIO;
            off += (size_t)k;
        }
    }
    return 0;
}

static int read_exact(int fd, void *p, size_t len)
{
    size_t off = 0;
    while (off < len) {
        ssize_t n = recv(fd, (uint8_t *)p + off, len - off, MSG_WAITALL);
        if (n == 0)
            return -ECONNRESET;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        off += (size_t)n;
    }
    return 0;
}

/* Reads one frame into p (at most cap bytes). Descriptors go to fds (up to
 * maxfds; any beyond are closed), their number to *nfds. */
static int recv_frame(int fd, uint32_t *type, void *p, uint32_t cap, uint32_t *len, int *fds,
                      unsigned maxfds, unsigned *nfds)
{
    uint32_t hdr[2];
    struct iovec iov = {hdr, sizeof(hdr)};
    union {
        char buf[CMSG_SPACE(sizeof(int) * UP_MAX_FDS)];
        struct cmsghdr align;
    } u;
    struct msghdr m;
    ssize_t n;
    int r;
    *nfds = 0;
    memset(&m, 0, sizeof(m));
    m.msg_iov = &iov;
    m.msg_iovlen = 1;
    m.msg_control = u.buf;
    m.msg_controllen = sizeof(u.buf);
    do
        n = recvmsg(fd, &m, MSG_WAITALL | MSG_CMSG_CLOEXEC);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        unsigned k = (unsigned)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        for (unsigned i = 0; i < k; i++) {
            int x;
            memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*nfds < maxfds)
                fds[(*nfds)++] = x;
            else
                close(x);
        }
    }
    if (n != (ssize_t)sizeof(hdr))
        return n == 0 ? -ECONNRESET : -EPROTO;
    if (hdr[1] > cap)
        return -EMSGSIZE;
    *type = hdr[0];
    *len = hdr[1];
    r = read_exact(fd, p, hdr[1]);
    return r;
}

static void close_all(int *fds, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static int set_blocking(int fd)
{
    struct timeval tv = {UP_TIMEOUT_S, 0};
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
        return -errno;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0)
        return -errno;
    return 0;
}

static uint64_t ms_since(uint64_t t)
{
    return (umx_now_ns() - t) / 1000000u;
}

/* Old process ------------------------------------------------------------------------ */

struct emit_state {
    int fd;
    unsigned n, nfds, total;
    struct umxd_handoff_rec rec[UP_BATCH];
    int fds[UP_BATCH]; /* of the records that carry one, in order */
};

static int emit_flush(struct emit_state *e)
{
    int r;
    if (!e->n)
        return 0;
    r = send_frame(e->fd, F_FLOWS, e->rec, (uint32_t)(e->n * sizeof(e->rec[0])), e->fds, e->nfds);
    e->n = e->nfds = 0;
    return r;
}

static int emit(void *arg, const struct umxd_handoff_rec *rec, int fd)
{
    struct emit_state *e = arg;
    e->rec[e->n++] = *rec;
    if (fd >= 0)
        e->fds[e->nfds++] = fd;
    if (rec->kind != UMXD_HO_SHRSOCK)
        e->total++;
    return e->n == UP_BATCH ? emit_flush(e) : 0;
}

/* Who may hand the port over: root, or (when udpmuxd never had root and
 * runs as its starter) that same user. A `user =` daemon's uid may not:
 * it could otherwise hand the port to a process of its choosing. */
static int may_upgrade(const struct umxd *d, const struct ucred *uc)
{
    return uc->uid == 0 || (!d->cfg->user[0] && uc->uid == geteuid());
}

void umxd_upgrade_serve(struct umxd *d, int fd)
{
    struct hello h;
    struct ucred uc;
    socklen_t ul = sizeof(uc);
    char msg[600];
    uint32_t type, len;
    unsigned nfds, skipped = 0;
    int fds[3], nf = 0, r;
    struct emit_state *e = NULL;
    uint64_t t0;
    int kdp_table = 1;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || !may_upgrade(d, &uc)) {
        umxd_log(LOG_WARNING, "upgrade: refused for uid %u pid %d (root only)", (unsigned)uc.uid,
                 (int)uc.pid);
        close(fd);
        return;
    }
    if (set_blocking(fd) < 0)
        goto fail;
    umxd_log(LOG_NOTICE, "upgrade: pid %d asks to take over", (int)uc.pid);
    memset(&h, 0, sizeof(h));
    h.magic = UP_MAGIC;
    h.version = UMXD_HANDOFF_VERSION;
    h.pid = (uint32_t)getpid();
    h.nworkers = d->nworkers;
    h.nlisten = d->cfg->nlisten;
    h.activated = (uint32_t)d->activated;
    h.watchdog_usec = umxd_watchdog_usec() > 0 ? (uint32_t)umxd_watchdog_usec() : 0;
    memcpy(h.hashkey, d->hashkey, sizeof(h.hashkey));
    snprintf(h.control, sizeof(h.control), "%s", d->cfg->control);
    snprintf(h.attach, sizeof(h.attach), "%s", d->cfg->attach);
    snprintf(h.metrics, sizeof(h.metrics), "%s", d->cfg->metrics);
    for (int k = 0; k < 3; k++) {
        int x = d->mod_lfd[k];
        if (x >= 0) {
            h.have[k] = 1;
            fds[nf++] = x;
        }
    }
    if (send_frame(fd, F_HELLO, &h, sizeof(h), fds, (unsigned)nf) < 0)
        goto fail;
    for (unsigned li = 0; li < d->cfg->nlisten; li++) {
        struct listen_hdr lh = {li, d->nworkers};
        int lf[UMXD_MAX_WORKERS];
        for (unsigned w = 0; w < d->nworkers; w++)
            lf[w] = d->lfd[li][w];
        if (send_frame(fd, F_LISTEN, &lh, sizeof(lh), lf, d->nworkers) < 0)
            goto fail;
    }
    {
        /* the program stays on the groups; its maps go with them, so the
         * new process keeps its peer map, hints and counters current */
        struct steer_hdr sh = {0, 0};
        int mf[UMXD_STEER_NFDS];
        int mirror = 0;
        if (d->steer) {
            umxd_steer_export(d->steer, mf, &mirror);
            sh.mirror = (uint32_t)mirror;
            sh.nmaps = UMXD_STEER_NFDS;
        }
        if (send_frame(fd, F_STEER, &sh, sizeof(sh), mf, sh.nmaps) < 0)
            goto fail;
    }
    {
        /* the queue socket goes while our queue thread still reads it: the
         * new process reads it only after FREEZE, when ours has stopped */
        struct kdp_frame *kf = calloc(1, sizeof(*kf));
        int qfd = umxd_kdp_handoff_fd(d);
        if (!kf)
            goto fail;
        kf->nqueue = qfd >= 0;
        kf->nslots = d->nslots;
        memcpy(kf->slot, d->slot_name, sizeof(kf->slot));
        r = send_frame(fd, F_KDP, kf, sizeof(*kf), &qfd, kf->nqueue);
        free(kf);
        if (r < 0)
            goto fail;
    }
    /* the new process sets up (config checks, modules, privileges) */
    r = recv_frame(fd, &type, msg, sizeof(msg) - 1, &len, NULL, 0, &nfds);
    if (r < 0 || type == F_ABORT) {
        if (r == 0) {
            msg[len] = '\0';
            umxd_log(LOG_ERR, "upgrade refused by pid %d, still running: %s", (int)uc.pid, msg);
        } else {
            umxd_log(LOG_ERR, "upgrade: pid %d went away (%s), still running", (int)uc.pid,
                     strerror(-r));
        }
        close(fd);
        /* it may have installed its own table already */
        umxd_kdp_resume(d, 1);
        return;
    }
    if (type != F_FREEZE) {
        umxd_kdp_resume(d, 1);
        goto fail;
    }
    {
        /* FREEZE says whether the new process installed its table (a
         * stand-in without one says 0); unsaid: assume it did */
        uint32_t installed = 1;
        if (len == sizeof(installed))
            memcpy(&installed, msg, sizeof(installed));
        kdp_table = installed != 0;
    }
    /* from here on nobody reads the sockets until the new workers do */
    t0 = umx_now_ns();
    umxd_path_freeze(d);
    /* new flows' first datagrams wait in the queue (the socket stays
     * open: the binding is its), kernel flows go on in the kernel */
    umxd_kdp_pause(d);
    /* The group's eBPF program (steer/) stays attached to the sockets and
     * its maps went to the new process with them (F_STEER), which has set
     * its own configuration's first-byte filter by now. */
    e = calloc(1, sizeof(*e));
    if (!e)
        goto thaw;
    e->fd = fd;
    if (umxd_path_export(d, emit, e, &skipped) < 0 || umxd_kdp_export(d, emit, e) < 0 ||
        emit_flush(e) < 0)
        goto thaw;
    {
        struct end en = {e->total, skipped};
        if (send_frame(fd, F_END, &en, sizeof(en), NULL, 0) < 0)
            goto thaw;
    }
    r = recv_frame(fd, &type, msg, sizeof(msg) - 1, &len, NULL, 0, &nfds);
    if (r < 0 || type != F_DONE) {
        if (r == 0 && type == F_ABORT) {
            msg[len] = '\0';
            umxd_log(LOG_ERR, "upgrade: pid %d gave up: %s", (int)uc.pid, msg);
        }
        goto thaw;
    }
    umxd_log(
        LOG_NOTICE, "upgrade: pid %d took over %u flow%s (%u not movable) after %llu ms; exiting",
        (int)uc.pid, e->total, e->total == 1 ? "" : "s", skipped, (unsigned long long)ms_since(t0));
    snprintf(msg, sizeof(msg), "MAINPID=%d", (int)uc.pid);
    umxd_notify(msg);
    /* No teardown: the control and attach socket files now belong to the
     * new process (the atexit handlers would unlink them), and every
     * socket stays open in it. The kernel datapath's table and kernel
     * flows are the new process's too (umxd_kdp_fini would delete them). */
    _exit(0);
thaw:
    umxd_log(LOG_ERR, "upgrade: hand-over to pid %d failed; resuming (nothing was closed)",
             (int)uc.pid);
    free(e);
    close(fd);
    if (umxd_path_thaw(d) < 0)
        umxd_log(LOG_ERR, "upgrade: cannot restart the workers");
    umxd_kdp_resume(d, kdp_table);
    /* the new process may have set its configuration's filter: ours again */
    umxd_routeset_steer(d);
    d->reloads_failed++;
    return;
fail:
    umxd_log(LOG_ERR, "upgrade: hand-over to pid %d failed before it started: %s", (int)uc.pid,
             strerror(errno));
    close(fd);
}

/* New process ------------------------------------------------------------------------ */

/* The old process must be udpmuxd's: root, or the user our own config
 * names (it dropped to it), or (no user =) ourselves. A socket file some
 * other user put at that path gets nothing from us and gives us nothing. */
static int trusted_old(const struct umxd *d, const struct ucred *uc)
{
    if (uc->uid == 0 || uc->uid == geteuid())
        return 1;
    if (d->cfg->user[0]) {
        struct passwd *pw = getpwnam(d->cfg->user);
        return pw && pw->pw_uid == uc->uid;
    }
    return 0;
}

static int same_addr(int fd, const struct sockaddr_storage *want)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) < 0 || ss.ss_family != want->ss_family)
        return 0;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in a, b;
        memcpy(&a, &ss, sizeof(a));
        memcpy(&b, want, sizeof(b));
        return a.sin_port == b.sin_port && a.sin_addr.s_addr == b.sin_addr.s_addr;
    }
    struct sockaddr_in6 a, b;
    memcpy(&a, &ss, sizeof(a));
    memcpy(&b, want, sizeof(b));
    return a.sin6_port == b.sin6_port && !memcmp(&a.sin6_addr, &b.sin6_addr, sizeof(a.sin6_addr));
}

/* F_KDP: our route slots numbered as the old process's, and its queue
 * socket (d->kdp_fd) when it runs a kernel datapath. 1 to go on, or the
 * join's result (-errno, err set, the old process told). */
static int join_kdp(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen)
{
    struct kdp_frame *kf = calloc(1, sizeof(*kf));
    uint32_t type, len;
    unsigned nfds;
    int fds[UP_MAX_FDS], r;
    if (!kf) {
        snprintf(err, errlen, "out of memory");
        umxd_upgrade_abort(u, err);
        return -ENOMEM;
    }
    r = recv_frame(u->fd, &type, kf, sizeof(*kf), &len, fds, UP_MAX_FDS, &nfds);
    if (r < 0 || type != F_KDP || len != sizeof(*kf) || kf->nqueue > 1 || nfds != kf->nqueue ||
        kf->nslots > UMXD_MAX_SLOTS) {
        close_all(fds, r == 0 ? nfds : 0);
        free(kf);
        snprintf(err, errlen, "hand-over from pid %d broke off: bad kernel datapath frame",
                 u->old_pid);
        return -EIO;
    }
    /* nothing has taken a slot yet (the route set starts after the join) */
    d->nslots = 0;
    for (unsigned i = 0; i < kf->nslots; i++) {
        kf->slot[i][UMXD_NAME_MAX - 1] = '\0';
        memcpy(d->slot_name[i], kf->slot[i], UMXD_NAME_MAX);
        d->nslots = i + 1;
    }
    free(kf);
    if (nfds) {
        d->kdp_fd = fds[0];
        return 1;
    }
    if (umxd_kdp_wanted(d->cfg)) {
        snprintf(err, errlen,
                 "the running udpmuxd (pid %d) has no kernel datapath: turning datapath = "
                 "kernel on needs a restart",
                 u->old_pid);
        umxd_upgrade_abort(u, err);
        return -EINVAL;
    }
    return 1;
}

int umxd_upgrade_join(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen)
{
    const char *path = d->cfg->control[0] ? d->cfg->control : "/run/udpmux/control.sock";
    struct sockaddr_un sa;
    struct ucred uc;
    socklen_t ul = sizeof(uc);
    struct hello h;
    uint32_t type, len;
    unsigned nfds;
    int fds[UP_MAX_FDS], r;
    char line[64];
    memset(u, 0, sizeof(*u));
    u->fd = -1;
    if (strcmp(path, "none") == 0 || strlen(path) >= sizeof(sa.sun_path)) {
        snprintf(err, errlen, "upgrade needs the control socket (control = none)");
        return -EINVAL;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, strlen(path));
    u->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (u->fd < 0 || connect(u->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        snprintf(err, errlen, "cannot reach the running udpmuxd at %s: %s", path, strerror(errno));
        return -ECONNREFUSED;
    }
    if (getsockopt(u->fd, SOL_SOCKET, SO_PEERCRED, &uc, &ul) < 0 || !trusted_old(d, &uc)) {
        snprintf(err, errlen, "%s is held by uid %u pid %d, not udpmuxd's user: refusing", path,
                 (unsigned)uc.uid, (int)uc.pid);
        return -EPERM;
    }
    /* SO_PEERCRED of a connect() names whoever called listen(): after an
     * earlier upgrade that is an older generation (the listening socket
     * moved), so only the uid is checked here and the pid comes in HELLO */
    u->old_pid = uc.pid;
    set_blocking(u->fd);
    snprintf(line, sizeof(line), "%s\n", UMXD_UPGRADE_REQUEST);
    if (send(u->fd, line, strlen(line), MSG_NOSIGNAL) < 0)
        goto io;
    memset(&h, 0, sizeof(h));
    r = recv_frame(u->fd, &type, &h, sizeof(h), &len, fds, 3, &nfds);
    if (r < 0 || type != F_HELLO || len != sizeof(h) || h.magic != UP_MAGIC) {
        close_all(fds, r == 0 ? nfds : 0);
        snprintf(err, errlen,
                 "pid %d refused the hand-over (not root, or an udpmuxd without upgrade "
                 "support)",
                 u->old_pid);
        return -EPROTO;
    }
    u->old_pid = (int)h.pid;
    {
        unsigned k = 0;
        for (int i = 0; i < 3; i++)
            d->mod_lfd[i] = h.have[i] && k < nfds ? fds[k++] : -1;
    }
    if (h.version != UMXD_HANDOFF_VERSION) {
        snprintf(err, errlen,
                 "pid %d speaks hand-over version %u, this udpmuxd %u: restart instead", u->old_pid,
                 h.version, UMXD_HANDOFF_VERSION);
        umxd_upgrade_abort(u, err);
        return -EPROTO;
    }
    if (h.nworkers < 1 || h.nworkers > UMXD_MAX_WORKERS || h.nlisten > UMXD_MAX_LISTEN)
        goto io;
    if (h.activated) {
        /* the sockets came from systemd: their addresses are the config */
        d->cfg->nlisten = 0;
    } else if (h.nlisten != d->cfg->nlisten) {
        snprintf(err, errlen,
                 "the running udpmuxd has %u listen address%s, this configuration %u: "
                 "changing [listen] needs a restart",
                 h.nlisten, h.nlisten == 1 ? "" : "es", d->cfg->nlisten);
        umxd_upgrade_abort(u, err);
        return -EINVAL;
    }
    /* an attach path or metrics address that changed: bind the new one,
     * let the old one go with the old process */
    if (d->mod_lfd[UMXD_MOD_ATTACH] >= 0 &&
        strncmp(h.attach, d->cfg->attach, sizeof(h.attach)) != 0) {
        close(d->mod_lfd[UMXD_MOD_ATTACH]);
        d->mod_lfd[UMXD_MOD_ATTACH] = -1;
    }
    if (d->mod_lfd[UMXD_MOD_METRICS] >= 0 &&
        strncmp(h.metrics, d->cfg->metrics, sizeof(h.metrics)) != 0) {
        close(d->mod_lfd[UMXD_MOD_METRICS]);
        d->mod_lfd[UMXD_MOD_METRICS] = -1;
    }
    if (d->nworkers != h.nworkers)
        umxd_log(LOG_NOTICE,
                 "upgrade: keeping the running %u worker%s (the listeners' socket groups "
                 "are sized for them; a restart applies workers = %u)",
                 h.nworkers, h.nworkers == 1 ? "" : "s", d->nworkers);
    d->nworkers = h.nworkers;
    d->activated = (int)h.activated;
    /* the sockets keep the group's steering program, classic or eBPF;
     * an eBPF program's maps follow below (F_STEER): the new workers
     * mirror their adopted peers into the same map, at the same worker
     * indexes (the worker count is kept). Our own program would hash
     * peers with another key, away from their flows. */
    if (h.watchdog_usec) {
        /* systemd gave WATCHDOG_USEC to the main process only: once
         * MAINPID= names us, the pings must come from here */
        char v[16];
        snprintf(v, sizeof(v), "%u", h.watchdog_usec);
        setenv("WATCHDOG_USEC", v, 1);
        snprintf(v, sizeof(v), "%d", (int)getpid());
        setenv("WATCHDOG_PID", v, 1);
    }
    /* the same key: rendezvous picks the same backends for new flows, and
     * flow-table hashing stays what the old tables used */
    memcpy(d->hashkey, h.hashkey, sizeof(d->hashkey));
    for (unsigned li = 0; li < h.nlisten; li++) {
        struct listen_hdr lh;
        r = recv_frame(u->fd, &type, &lh, sizeof(lh), &len, fds, UP_MAX_FDS, &nfds);
        if (r < 0 || type != F_LISTEN || lh.li != li || nfds != h.nworkers) {
            close_all(fds, r == 0 ? nfds : 0);
            goto io;
        }
        for (unsigned w = 0; w < nfds; w++)
            d->lfd[li][w] = fds[w];
        if (h.activated) {
            struct umxd_config *c = d->cfg;
            socklen_t sl = sizeof(c->listen[0]);
            getsockname(fds[0], (struct sockaddr *)&c->listen[li], &sl);
            c->listen_len[li] = sl;
            udpmux_format_addr((struct sockaddr *)&c->listen[li], c->listen_text[li],
                               sizeof(c->listen_text[0]));
            c->nlisten = li + 1;
        } else if (!same_addr(fds[0], &d->cfg->listen[li])) {
            snprintf(err, errlen,
                     "listen address %u (%s) is not what the running udpmuxd holds: changing "
                     "[listen] needs a restart",
                     li + 1, d->cfg->listen_text[li]);
            umxd_upgrade_abort(u, err);
            return -EINVAL;
        }
    }
    {
        struct steer_hdr sh;
        r = recv_frame(u->fd, &type, &sh, sizeof(sh), &len, fds, UP_MAX_FDS, &nfds);
        if (r < 0 || type != F_STEER || len != sizeof(sh) || nfds != sh.nmaps ||
            (nfds != 0 && nfds != UMXD_STEER_NFDS)) {
            close_all(fds, r == 0 ? nfds : 0);
            goto io;
        }
        if (nfds) {
            r = umxd_steer_adopt(&d->steer, fds, d->nworkers, (int)sh.mirror);
            if (r < 0) {
                close_all(fds, nfds);
                d->steer = NULL;
                umxd_log(LOG_WARNING,
                         "upgrade: cannot adopt the steering program's maps (%s): it keeps "
                         "steering known peers, with no filter and no new hints",
                         strerror(-r));
            }
        }
    }
    r = join_kdp(d, u, err, errlen);
    if (r != 1)
        return r;
    return 0;
io:
    snprintf(err, errlen, "hand-over from pid %d broke off: %s", u->old_pid,
             errno ? strerror(errno) : "bad frame");
    return -EIO;
}

void umxd_upgrade_abort(struct umxd_upgrade *u, const char *why)
{
    if (u->fd < 0)
        return;
    send_frame(u->fd, F_ABORT, why, (uint32_t)strlen(why), NULL, 0);
    close(u->fd);
    u->fd = -1;
}

int umxd_upgrade_flows(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen)
{
    struct umxd_handoff_in *in = calloc(1, sizeof(*in));
    unsigned cap = 0;
    struct umxd_handoff_rec *buf = malloc(sizeof(*buf) * UP_BATCH);
    int fds[UP_MAX_FDS];
    if (!in || !buf)
        goto oom;
    /* whether our table replaced the old process's: if we fail from
     * here on, it puts its own back */
    uint32_t installed = d->kdp != NULL;
    if (send_frame(u->fd, F_FREEZE, &installed, sizeof(installed), NULL, 0) < 0)
        goto io;
    u->t_freeze_ns = umx_now_ns();
    for (;;) {
        uint32_t type, len;
        unsigned nfds, n;
        int r =
            recv_frame(u->fd, &type, buf, sizeof(*buf) * UP_BATCH, &len, fds, UP_MAX_FDS, &nfds);
        if (r < 0)
            goto io;
        if (type == F_END) {
            struct end en;
            if (len != sizeof(en))
                goto io;
            memcpy(&en, buf, sizeof(en));
            u->flows_skipped = en.skipped;
            break;
        }
        n = len / sizeof(*buf);
        if (type != F_FLOWS || len % sizeof(*buf) || in->n + n > UP_MAX_FLOWS) {
            close_all(fds, nfds);
            goto io;
        }
        {
            /* descriptors belong to the records that carry one, in order */
            unsigned want = 0;
            for (unsigned i = 0; i < n; i++)
                want += umxd_handoff_has_fd(buf[i].kind);
            if (want != nfds) {
                close_all(fds, nfds);
                goto io;
            }
        }
        if (in->n + n > cap) {
            unsigned nc = cap ? cap * 2 : 1024;
            struct umxd_handoff_rec *nr = realloc(in->rec, sizeof(*nr) * nc);
            int *nfd = nr ? realloc(in->fd, sizeof(int) * nc) : NULL;
            if (nr)
                in->rec = nr;
            if (!nr || !nfd) {
                close_all(fds, nfds);
                goto oom;
            }
            in->fd = nfd;
            cap = nc;
        }
        memcpy(&in->rec[in->n], buf, len);
        for (unsigned i = 0, k = 0; i < n; i++)
            in->fd[in->n + i] = umxd_handoff_has_fd(buf[i].kind) ? fds[k++] : -1;
        in->n += n;
    }
    free(buf);
    u->t_end_ns = umx_now_ns();
    u->flows_in = in->n;
    umxd_path_import_sort(in);
    umxd_path_import_set(d, in);
    return 0;
oom:
    snprintf(err, errlen, "out of memory receiving flows");
    goto out;
io:
    snprintf(err, errlen, "hand-over from pid %d broke off while receiving flows", u->old_pid);
out:
    if (in) {
        close_all(in->fd, in->n);
        free(in->rec);
        free(in->fd);
        free(in);
    }
    free(buf);
    return -EIO;
}

int umxd_upgrade_finish(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen)
{
    struct umxd_handoff_in *in = d->handoff_in;
    struct done dn;
    uint64_t gap_ms;
    /* each worker adopts its flows before its first read; bounded wait */
    for (int i = 0; i < 5000; i++) {
        if (__atomic_load_n(&in->workers_done, __ATOMIC_ACQUIRE) >= d->nworkers)
            break;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    gap_ms = ms_since(u->t_freeze_ns);
    if (__atomic_load_n(&in->workers_done, __ATOMIC_ACQUIRE) < d->nworkers) {
        snprintf(err, errlen, "workers did not start within 5 s");
        return -ETIMEDOUT;
    }
    /* records for workers this process does not have */
    close_all(in->fd, in->n);
    dn.pid = (uint32_t)getpid();
    dn.adopted = in->adopted;
    if (send_frame(u->fd, F_DONE, &dn, sizeof(dn), NULL, 0) < 0) {
        snprintf(err, errlen, "pid %d went away before the hand-over ended", u->old_pid);
        return -EIO;
    }
    umxd_log(LOG_NOTICE,
             "upgrade: took over from pid %d: %u flow%s adopted, %u closed (route or backend "
             "gone), %u not movable; nobody read for %llu ms (%llu ms receiving the flows)",
             u->old_pid, in->adopted, in->adopted == 1 ? "" : "s", in->closed, u->flows_skipped,
             (unsigned long long)gap_ms,
             (unsigned long long)((u->t_end_ns - u->t_freeze_ns) / 1000000u));
    close(u->fd);
    u->fd = -1;
    d->handoff_in = NULL;
    free(in->rec);
    free(in->fd);
    free(in);
    return 0;
}
