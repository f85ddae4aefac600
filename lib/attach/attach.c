/*
 * attach.c - the client side of the attach protocol (see proto.h and
 * docs/internals/attach.md): a program claims a route of a running udpmuxd
 * and then receives and sends datagrams through the daemon's shared port.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "attach/proto.h"
#include "internal.h"

#define BATCH 64
#define HELLO_TIMEOUT_MS 5000

struct udpmux_attach {
    int fd;
    uint64_t truncated;
    uint8_t hdr[BATCH][UMX_ATT_DATA_HDR];
    struct mmsghdr mm[BATCH];
    struct iovec iov[BATCH][2];
};

/* A daemon that refuses a connection (full: EUSERS) answers and hangs up at
 * once, maybe before our hello got there. Its answer is still queued here,
 * behind the reset: the first read reports ECONNRESET (the pending socket
 * error comes first), the next one the answer. Returns the answer's
 * negative errno, or 0 when there is none. */
static int queued_refusal(int fd)
{
    uint8_t m[4 + 256];
    for (int tries = 0; tries < 3; tries++) {
        ssize_t n = recv(fd, m, sizeof(m), MSG_DONTWAIT);
        if (n >= 4 && m[0] == UMX_ATT_ERR && (m[2] << 8 | m[3]) > 0)
            return -(m[2] << 8 | m[3]);
        if (n >= 0 || (errno != ECONNRESET && errno != EINTR))
            break;
    }
    return 0;
}

UDPMUX_API int udpmux_attach(struct udpmux_attach **out, const char *path, const char *route)
{
    struct udpmux_attach *a;
    struct sockaddr_un sa;
    size_t pl, nl;
    uint8_t msg[4 + 256];
    struct pollfd pfd;
    ssize_t n;
    int r;

    if (!out || !path || !route)
        return -EINVAL;
    *out = NULL;
    pl = strlen(path);
    nl = strlen(route);
    if (pl == 0 || pl >= sizeof(sa.sun_path) || nl == 0 || nl > 255)
        return -EINVAL;
    a = calloc(1, sizeof(*a));
    if (!a)
        return -ENOMEM;
    a->fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    if (a->fd < 0) {
        r = -errno;
        goto fail;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, pl);
    if (connect(a->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto fail;
    }
    msg[0] = UMX_ATT_HELLO;
    msg[1] = UMX_ATT_VERSION;
    msg[2] = (uint8_t)(nl >> 8);
    msg[3] = (uint8_t)nl;
    memcpy(msg + 4, route, nl);
    if (send(a->fd, msg, 4 + nl, MSG_NOSIGNAL) < 0) {
        int q;
        r = -errno;
        q = queued_refusal(a->fd);
        r = q ? q : r;
        goto fail;
    }
    pfd.fd = a->fd;
    pfd.events = POLLIN;
    r = poll(&pfd, 1, HELLO_TIMEOUT_MS);
    if (r <= 0) {
        r = r == 0 ? -ETIMEDOUT : -errno;
        goto fail;
    }
    n = recv(a->fd, msg, sizeof(msg), 0);
    if (n < 0 && errno == ECONNRESET) {
        r = queued_refusal(a->fd);
        r = r ? r : -ECONNRESET;
        goto fail;
    }
    if (n < 4) {
        r = n < 0 ? -errno : -EPROTO;
        goto fail;
    }
    if (msg[0] == UMX_ATT_ERR) {
        int code = msg[2] << 8 | msg[3];
        r = code > 0 ? -code : -EPROTO;
        goto fail;
    }
    if (msg[0] != UMX_ATT_OK) {
        r = -EPROTO;
        goto fail;
    }
    {
        /* non-blocking from here on: the handle lives in event loops */
        int fl = fcntl(a->fd, F_GETFL);
        if (fl < 0 || fcntl(a->fd, F_SETFL, fl | O_NONBLOCK) < 0) {
            r = -errno;
            goto fail;
        }
    }
    *out = a;
    return 0;
fail:
    if (a->fd >= 0)
        close(a->fd);
    free(a);
    return r;
}

UDPMUX_API void udpmux_attach_close(struct udpmux_attach *a)
{
    if (!a)
        return;
    close(a->fd);
    free(a);
}

UDPMUX_API int udpmux_attach_fd(const struct udpmux_attach *a)
{
    return a ? a->fd : -EINVAL;
}

UDPMUX_API int udpmux_attach_recv(struct udpmux_attach *a, struct udpmux_attach_dgram *d,
                                  unsigned n)
{
    int r, out = 0;
    if (!a || (!d && n))
        return -EINVAL;
    if (n > BATCH)
        n = BATCH;
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *mh = &a->mm[i].msg_hdr;
        if (!d[i].data && d[i].len)
            return -EINVAL;
        a->iov[i][0].iov_base = a->hdr[i];
        a->iov[i][0].iov_len = UMX_ATT_DATA_HDR;
        a->iov[i][1].iov_base = d[i].data;
        a->iov[i][1].iov_len = d[i].len;
        memset(mh, 0, sizeof(*mh));
        mh->msg_iov = a->iov[i];
        mh->msg_iovlen = 2;
    }
    do {
        r = recvmmsg(a->fd, a->mm, n, MSG_DONTWAIT, NULL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return errno == EAGAIN ? 0 : -errno;
    if (r == 0)
        return -ECONNRESET;
    for (int i = 0; i < r; i++) {
        size_t len = a->mm[i].msg_len;
        const uint8_t *payload;
        size_t plen;
        int has_local;
        struct sockaddr_storage peer, local;
        uint8_t hdrcopy[UMX_ATT_DATA_HDR];
        if (len == 0)
            return out ? out : -ECONNRESET; /* the daemon closed */
        if ((a->mm[i].msg_hdr.msg_flags & MSG_TRUNC) || len < UMX_ATT_DATA_HDR) {
            /* larger than the caller's buffer: never hand over part of a
             * datagram as if it were whole */
            a->truncated++;
            continue;
        }
        memcpy(hdrcopy, a->hdr[i], UMX_ATT_DATA_HDR);
        if (umx_att_decode_data(hdrcopy, UMX_ATT_DATA_HDR, &peer, &local, &has_local, &payload,
                                &plen) < 0) {
            a->truncated++;
            continue;
        }
        plen = len - UMX_ATT_DATA_HDR;
        if (out != i) {
            /* an earlier slot was skipped: move this datagram down */
            if (d[out].len < plen) {
                a->truncated++;
                continue;
            }
            memmove(d[out].data, d[i].data, plen);
        }
        d[out].len = plen;
        d[out].peer = peer;
        if (has_local)
            d[out].local = local;
        else
            memset(&d[out].local, 0, sizeof(d[out].local));
        out++;
    }
    return out;
}

UDPMUX_API int udpmux_attach_send(struct udpmux_attach *a, const struct udpmux_attach_dgram *d,
                                  unsigned n)
{
    int r;
    if (!a || (!d && n))
        return -EINVAL;
    if (n > BATCH)
        n = BATCH;
    for (unsigned i = 0; i < n; i++) {
        struct msghdr *mh = &a->mm[i].msg_hdr;
        const struct sockaddr *peer = (const struct sockaddr *)&d[i].peer;
        const struct sockaddr *local = (const struct sockaddr *)&d[i].local;
        if (peer->sa_family != AF_INET && peer->sa_family != AF_INET6)
            return i ? (int)i : -EINVAL;
        umx_att_encode_hdr(a->hdr[i], peer, local->sa_family ? local : NULL);
        a->iov[i][0].iov_base = a->hdr[i];
        a->iov[i][0].iov_len = UMX_ATT_DATA_HDR;
        a->iov[i][1].iov_base = d[i].data;
        a->iov[i][1].iov_len = d[i].len;
        memset(mh, 0, sizeof(*mh));
        mh->msg_iov = a->iov[i];
        mh->msg_iovlen = 2;
    }
    do {
        r = sendmmsg(a->fd, a->mm, n, MSG_DONTWAIT | MSG_NOSIGNAL);
    } while (r < 0 && errno == EINTR);
    if (r < 0)
        return -errno;
    return r;
}
