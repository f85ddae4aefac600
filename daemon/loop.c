/*
 * loop.c - the main thread's event loop (see loop.h): one epoll set, a
 * timerfd for the 250 ms tick, and a spare descriptor for accept() under
 * EMFILE. The control socket, metrics, attach server, health checks and
 * the foreign-socket watch hook into it; it calls nothing but them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "log.h"
#include "loop.h"

#define LOOP_MAX_FDS 256 /* control and attach clients, listeners, health sockets */
#define LOOP_MAX_TICKS 16
#define LOOP_MAX_EVENTS 32

struct watch {
    int fd;
    umxd_io_fn *fn;
    void *arg;
};

struct umxd_loop {
    struct umxd *owner;
    int epfd;
    int tfd;
    int spare_fd;
    struct watch w[LOOP_MAX_FDS];
    umxd_tick_fn *ticks[LOOP_MAX_TICKS];
    void *tickargs[LOOP_MAX_TICKS];
    unsigned nticks;
    struct umxd_ratelimit rl;
};

static void on_tick_timer(struct umxd *d, int fd, uint32_t ev, void *arg)
{
    struct umxd_loop *l = arg;
    uint64_t v, now = umx_now_ns();
    (void)ev;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* spurious wake-up */
    }
    for (unsigned i = 0; i < l->nticks; i++)
        l->ticks[i](d, now, l->tickargs[i]);
}

struct umxd_loop *umxd_loop_new(struct umxd *owner)
{
    struct umxd_loop *l = calloc(1, sizeof(*l));
    struct itimerspec its;
    if (!l)
        return NULL;
    l->owner = owner;
    l->rl.interval_s = 10;
    l->rl.burst = 1;
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    l->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    /* any descriptor will do as the spare */
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (l->epfd < 0 || l->tfd < 0)
        goto fail;
    memset(&its, 0, sizeof(its));
    its.it_value.tv_nsec = UMXD_LOOP_TICK_MS * 1000000L;
    its.it_interval.tv_nsec = UMXD_LOOP_TICK_MS * 1000000L;
    if (timerfd_settime(l->tfd, 0, &its, NULL) < 0 ||
        umxd_loop_watch(l, l->tfd, EPOLLIN, on_tick_timer, l) < 0)
        goto fail;
    return l;
fail : {
    int e = errno;
    umxd_loop_free(l);
    errno = e;
    return NULL;
}
}

void umxd_loop_free(struct umxd_loop *l)
{
    if (!l)
        return;
    if (l->epfd >= 0)
        close(l->epfd);
    if (l->tfd >= 0)
        close(l->tfd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    free(l);
}

int umxd_loop_watch(struct umxd_loop *l, int fd, uint32_t events, umxd_io_fn *fn, void *arg)
{
    struct epoll_event ev;
    for (unsigned i = 0; i < LOOP_MAX_FDS; i++) {
        if (l->w[i].fn)
            continue;
        memset(&ev, 0, sizeof(ev));
        ev.events = events;
        ev.data.u32 = i;
        if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
            return -errno;
        l->w[i].fd = fd;
        l->w[i].fn = fn;
        l->w[i].arg = arg;
        return 0;
    }
    return -ENOSPC;
}

int umxd_loop_unwatch(struct umxd_loop *l, int fd)
{
    for (unsigned i = 0; i < LOOP_MAX_FDS; i++) {
        if (l->w[i].fn && l->w[i].fd == fd) {
            epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL);
            l->w[i].fn = NULL;
            return 0;
        }
    }
    return -ENOENT;
}

int umxd_loop_every(struct umxd_loop *l, umxd_tick_fn *fn, void *arg)
{
    if (l->nticks >= LOOP_MAX_TICKS)
        return -ENOSPC;
    l->ticks[l->nticks] = fn;
    l->tickargs[l->nticks] = arg;
    l->nticks++;
    return 0;
}

int umxd_loop_once(struct umxd_loop *l, int timeout_ms)
{
    struct epoll_event evs[LOOP_MAX_EVENTS];
    int n = epoll_wait(l->epfd, evs, LOOP_MAX_EVENTS, timeout_ms);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    for (int i = 0; i < n; i++) {
        /* a callback may unwatch a later entry of this batch: checked
         * again here, and a slot reused by a new watch in the same batch
         * only sees a spurious wake-up (all watched fds are nonblocking) */
        struct watch *e = &l->w[evs[i].data.u32];
        if (e->fn)
            e->fn(l->owner, e->fd, evs[i].events, e->arg);
    }
    return n;
}

int umxd_loop_accept(struct umxd_loop *l, int lfd)
{
    int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0)
        return fd;
    if (errno != EMFILE && errno != ENFILE)
        return -errno;
    if (l->spare_fd >= 0) {
        close(l->spare_fd);
        l->spare_fd = -1;
    }
    fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    /* take the spare back (any descriptor will do: the listener's own) */
    l->spare_fd = fcntl(lfd, F_DUPFD_CLOEXEC, 0);
    umxd_log_rl(&l->rl, LOG_WARNING, "out of file descriptors: refused a local connection");
    return -EMFILE;
}
