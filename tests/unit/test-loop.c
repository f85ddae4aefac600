/*
 * test-loop.c - the main thread's loop (daemon/loop.c) on its own: it links
 * nothing of the daemon but log.c, which is the point of it being a leaf.
 * Watches get their events with the owner pointer handed through, unwatch
 * stops them, ticks come every 250 ms in registration order, tables are
 * capped, and accept under a full descriptor table drops the pending
 * connection (the peer sees it closed) instead of leaving the listener
 * readable forever.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "loop.h"

static struct umxd *const OWNER = (struct umxd *)(uintptr_t)0x1234;

struct seen {
    int calls;
    struct umxd *owner;
    int fd;
    uint32_t events;
};

static void on_io(struct umxd *d, int fd, uint32_t events, void *arg)
{
    struct seen *s = arg;
    char buf[16];
    s->calls++;
    s->owner = d;
    s->fd = fd;
    s->events = events;
    if (read(fd, buf, sizeof(buf)) < 0) {
        /* drained or nothing: the count is what matters */
    }
}

static void test_watch_unwatch(void **state)
{
    struct umxd_loop *l = umxd_loop_new(OWNER);
    struct seen s = {0};
    int p[2];

    (void)state;
    assert_non_null(l);
    assert_int_equal(pipe(p), 0);
    assert_int_equal(umxd_loop_watch(l, p[0], EPOLLIN, on_io, &s), 0);
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_true(umxd_loop_once(l, 1000) >= 1);
    assert_int_equal(s.calls, 1);
    assert_ptr_equal(s.owner, OWNER);
    assert_int_equal(s.fd, p[0]);
    assert_true(s.events & EPOLLIN);
    assert_int_equal(umxd_loop_unwatch(l, p[0]), 0);
    assert_int_equal(umxd_loop_unwatch(l, p[0]), -ENOENT);
    assert_int_equal(write(p[1], "y", 1), 1);
    assert_true(umxd_loop_once(l, 50) >= 0);
    assert_int_equal(s.calls, 1);
    close(p[0]);
    close(p[1]);
    umxd_loop_free(l);
}

static int tick_order[8], nticks;

static void tick_a(struct umxd *d, uint64_t now, void *arg)
{
    (void)now;
    (void)arg;
    assert_ptr_equal(d, OWNER);
    if (nticks < 8)
        tick_order[nticks++] = 1;
}

static void tick_b(struct umxd *d, uint64_t now, void *arg)
{
    (void)d;
    (void)now;
    (void)arg;
    if (nticks < 8)
        tick_order[nticks++] = 2;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void test_ticks(void **state)
{
    struct umxd_loop *l = umxd_loop_new(OWNER);
    uint64_t t0 = now_ms(), t1;
    unsigned extra = 0;

    (void)state;
    assert_non_null(l);
    nticks = 0;
    assert_int_equal(umxd_loop_every(l, tick_a, NULL), 0);
    assert_int_equal(umxd_loop_every(l, tick_b, NULL), 0);
    while (nticks < 4 && now_ms() - t0 < 3000)
        umxd_loop_once(l, 1000);
    t1 = now_ms();
    assert_int_equal(nticks, 4);
    /* two ticks of 250 ms, each calling a then b */
    assert_int_equal(tick_order[0], 1);
    assert_int_equal(tick_order[1], 2);
    assert_int_equal(tick_order[2], 1);
    assert_int_equal(tick_order[3], 2);
    assert_true(t1 - t0 >= 450);
    assert_true(t1 - t0 < 2000);
    /* the tick table is capped */
    while (umxd_loop_every(l, tick_b, NULL) == 0)
        extra++;
    assert_int_equal(umxd_loop_every(l, tick_b, NULL), -ENOSPC);
    assert_true(extra >= 8 && extra < 64);
    umxd_loop_free(l);
}

static void test_accept_when_full(void **state)
{
    struct umxd_loop *l = umxd_loop_new(OWNER);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct rlimit old, low;
    int lfd, cfd, fill[64], nfill = 0, r;
    char buf[4];

    (void)state;
    assert_non_null(l);
    /* an abstract socket: nothing on disk */
    snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "umx-test-loop-%d", (int)getpid());
    lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(lfd >= 0);
    assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(lfd, 8), 0);
    cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(cfd >= 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);

    /* fill the descriptor table up to a low limit */
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    low = old;
    low.rlim_cur = (rlim_t)cfd + 8;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    while (nfill < 64) {
        int fd = dup(lfd);
        if (fd < 0)
            break;
        fill[nfill++] = fd;
    }
    assert_true(nfill < 64);
    r = umxd_loop_accept(l, lfd);
    assert_int_equal(r, -EMFILE);
    /* the pending connection was accepted and closed: the peer sees EOF */
    {
        struct pollfd pf = {.fd = cfd, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 1000), 1);
    }
    assert_int_equal(read(cfd, buf, sizeof(buf)), 0);
    /* nothing pending any more: the listener is not left readable */
    {
        struct pollfd pf = {.fd = lfd, .events = POLLIN};
        assert_int_equal(poll(&pf, 1, 0), 0);
    }
    for (int i = 0; i < nfill; i++)
        close(fill[i]);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    close(cfd);
    /* with room again, a new connection is accepted normally */
    cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_int_equal(connect(cfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    r = umxd_loop_accept(l, lfd);
    assert_true(r >= 0);
    close(r);
    close(cfd);
    close(lfd);
    umxd_loop_free(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_watch_unwatch),
        cmocka_unit_test(test_ticks),
        cmocka_unit_test(test_accept_when_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
