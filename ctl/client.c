/*
 * client.c - udpmuxctl's side of the control socket: connect, send one
 * request line, read the whole answer (see client.h; the protocol is in
 * proto/ctlproto.h).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client.h"

#define MAX_RECORDS 200000 /* answer size cap on the client side */

const char *ctl_sock = CTL_DEFAULT_SOCKET;
int ctl_timeout_ms = 10000;

void answer_free(struct answer *a)
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

const char *answer_line(const struct answer *a, size_t i)
{
    return a->buf + a->off[i];
}

/* Connection ------------------------------------------------------------------- */

int conn_open(struct conn *c)
{
    struct sockaddr_un sa;
    size_t pl = strlen(ctl_sock);
    memset(c, 0, sizeof(*c));
    if (pl >= sizeof(sa.sun_path)) {
        fprintf(stderr, "udpmuxctl: socket path too long: %s\n", ctl_sock);
        return -ENAMETOOLONG;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, ctl_sock, pl);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        return -errno;
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int e = -errno;
        fprintf(stderr, "udpmuxctl: cannot connect to %s: %s (is udpmuxd running?)\n", ctl_sock,
                strerror(-e));
        close(c->fd);
        c->fd = -1;
        return e;
    }
    return 0;
}

void conn_close(struct conn *c)
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
int conn_call(struct conn *c, const struct umx_ctl_req *req, struct answer *a)
{
    char line[UMX_CTL_LINE_MAX + 1];
    int n = umx_ctl_req_format(req, line, sizeof(line)), r;
    size_t off = 0;
    memset(a, 0, sizeof(*a));
    if (n < 0)
        return n;
    while (off < (size_t)n) {
        ssize_t w;
        if ((r = wait_fd(c->fd, POLLOUT, ctl_timeout_ms)) < 0)
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
        if ((r = wait_fd(c->fd, POLLIN, ctl_timeout_ms)) < 0)
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

int transport_exit(int r)
{
    if (r == -EPROTO) {
        fprintf(stderr, "udpmuxctl: malformed answer from udpmuxd\n");
        return EX_SOFTWARE_;
    }
    fprintf(stderr, "udpmuxctl: %s: %s\n", ctl_sock,
            r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
    return EX_UNAVAILABLE_;
}
