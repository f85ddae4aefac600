/*
 * holder.c - "who holds this port?" for a helpful EADDRINUSE.
 *
 * sock_diag (NETLINK_SOCK_DIAG, UDP) lists the sockets bound to the port with
 * their uid and inode; /proc/<pid>/fd maps the inode to a process. The reuse
 * flags are not in sock_diag, so where we may (same user or root) we borrow
 * the socket with pidfd_getfd() and ask getsockopt(); otherwise they are
 * reported as unknown.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "internal.h"

static uint16_t port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        return ntohs(s4.sin_port);
    }
    struct sockaddr_in6 s6;
    memcpy(&s6, sa, sizeof(s6));
    return ntohs(s6.sin6_port);
}

/* Finds the pid holding socket inode ino; fills comm. Returns pid or -1 and
 * the fd number in *fdnum. */
static int find_pid(unsigned long ino, char *comm, size_t commlen, int *fdnum)
{
    DIR *proc = opendir("/proc");
    struct dirent *de;
    char want[64];
    int found = -1;
    if (!proc)
        return -1;
    snprintf(want, sizeof(want), "socket:[%lu]", ino);
    while (found < 0 && (de = readdir(proc)) != NULL) {
        char path[300], link[64];
        DIR *fds;
        struct dirent *fe;
        int pid = atoi(de->d_name); /* checksrc: d_name is digits or not a pid */
        if (pid <= 0)
            continue;
        snprintf(path, sizeof(path), "/proc/%d/fd", pid);
        fds = opendir(path);
        if (!fds)
            continue;
        while ((fe = readdir(fds)) != NULL) {
            ssize_t n;
            char fpath[600];
            snprintf(fpath, sizeof(fpath), "/proc/%d/fd/%s", pid, fe->d_name);
            n = readlink(fpath, link, sizeof(link) - 1);
            if (n <= 0)
                continue;
            link[n] = '\0';
            if (strcmp(link, want) == 0) {
                found = pid;
                *fdnum = atoi(fe->d_name); /* checksrc: fd names are digits */
                break;
            }
        }
        closedir(fds);
    }
    closedir(proc);
    if (found > 0) {
        char path[64];
        FILE *f;
        snprintf(path, sizeof(path), "/proc/%d/comm", found);
        f = fopen(path, "re");
        comm[0] = '\0';
        if (f) {
            if (fgets(comm, (int)commlen, f)) {
                size_t l = strlen(comm);
                if (l && comm[l - 1] == '\n')
                    comm[l - 1] = '\0';
            }
            fclose(f);
        }
    }
    return found;
}

static void probe_flags(struct udpmux_holder *h, int pid, int fdnum)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    int fd, v;
    socklen_t l = sizeof(v);
    if (pfd < 0)
        return;
    fd = (int)syscall(SYS_pidfd_getfd, pfd, fdnum, 0);
    close(pfd);
    if (fd < 0)
        return;
    if (getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &v, &l) == 0)
        h->reuseaddr = v != 0;
    l = sizeof(v);
    if (getsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &v, &l) == 0)
        h->reuseport = v != 0;
    close(fd);
#else
    (void)h;
    (void)pid;
    (void)fdnum;
#endif
}

/* Whether an IPv6 socket also holds the IPv4 port: it is dual-stack
 * (INET_DIAG_SKV6ONLY says 0) and bound to :: or a v4-mapped address. */
static int v6_holds_v4(struct nlmsghdr *h, const struct inet_diag_msg *d)
{
    struct rtattr *a = (struct rtattr *)(void *)((char *)NLMSG_DATA(h) + sizeof(*d));
    int len = (int)h->nlmsg_len - (int)NLMSG_LENGTH(sizeof(*d));
    int v6only = -1;
    struct in6_addr src;
    for (; RTA_OK(a, len); a = RTA_NEXT(a, len))
        if (a->rta_type == INET_DIAG_SKV6ONLY && RTA_PAYLOAD(a) >= 1)
            v6only = *(const uint8_t *)RTA_DATA(a);
    if (v6only == 1)
        return 0;
    memcpy(&src, d->id.idiag_src, sizeof(src));
    /* not told (old kernel): keep it, listing too much beats hiding one */
    return v6only == -1 || IN6_IS_ADDR_UNSPECIFIED(&src) || IN6_IS_ADDR_V4MAPPED(&src);
}

static int dump_family(int family, int query_family, uint16_t port, struct udpmux_holder *out,
                       unsigned max, unsigned *count)
{
    int nl, r = 0;
    struct {
        struct nlmsghdr nlh;
        struct inet_diag_req_v2 req;
    } msg;
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
    char buf[16384];

    nl = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (nl < 0)
        return -errno;
    memset(&msg, 0, sizeof(msg));
    msg.nlh.nlmsg_len = sizeof(msg);
    msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    msg.req.sdiag_family = (uint8_t)family;
    msg.req.sdiag_protocol = IPPROTO_UDP;
    msg.req.idiag_states = ~0u;
    if (sendto(nl, &msg, sizeof(msg), 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        goto out;
    }
    for (;;) {
        ssize_t n = recv(nl, buf, sizeof(buf), 0);
        struct nlmsghdr *h;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            r = -errno;
            goto out;
        }
        for (h = (struct nlmsghdr *)(void *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            struct inet_diag_msg *d;
            if (h->nlmsg_type == NLMSG_DONE)
                goto out;
            if (h->nlmsg_type == NLMSG_ERROR) {
                r = -EPROTO;
                goto out;
            }
            d = NLMSG_DATA(h);
            if (ntohs(d->id.idiag_sport) != port)
                continue;
            if (family == AF_INET6 && query_family == AF_INET && !v6_holds_v4(h, d))
                continue;
            if (*count < max) {
                struct udpmux_holder *o = &out[*count];
                int fdnum = -1;
                memset(o, 0, sizeof(*o));
                o->uid = d->idiag_uid;
                o->reuseaddr = o->reuseport = -1;
                if (family == AF_INET) {
                    struct sockaddr_in s4 = {.sin_family = AF_INET};
                    s4.sin_port = d->id.idiag_sport;
                    memcpy(&s4.sin_addr, d->id.idiag_src, 4);
                    memcpy(&o->addr, &s4, sizeof(s4));
                } else {
                    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
                    s6.sin6_port = d->id.idiag_sport;
                    memcpy(&s6.sin6_addr, d->id.idiag_src, 16);
                    memcpy(&o->addr, &s6, sizeof(s6));
                }
                o->pid = find_pid(d->idiag_inode, o->comm, sizeof(o->comm), &fdnum);
                if (o->pid > 0 && fdnum >= 0)
                    probe_flags(o, o->pid, fdnum);
            }
            (*count)++;
        }
    }
out:
    close(nl);
    return r;
}

UDPMUX_API int udpmux_who_holds(const struct sockaddr *sa, struct udpmux_holder *out, unsigned max)
{
    unsigned count = 0;
    uint16_t port;
    int r;
    if (!sa || (sa->sa_family != AF_INET && sa->sa_family != AF_INET6) || (max && !out))
        return -EINVAL;
    port = port_of(sa);
    /* Both families: a dual-stack IPv6 socket also holds the IPv4 port. */
    r = dump_family(AF_INET, sa->sa_family, port, out, max, &count);
    if (r < 0)
        return r;
    r = dump_family(AF_INET6, sa->sa_family, port, out, max, &count);
    if (r < 0)
        return r;
    return (int)count;
}

/* "yes", "no" or "unknown" for a tri-state field, whatever int it holds. */
static const char *tristate(int v)
{
    return v == 1 ? "yes" : v == 0 ? "no" : "unknown";
}

UDPMUX_API int udpmux_holder_format(const struct udpmux_holder *h, char *buf, size_t buflen)
{
    char addr[INET6_ADDRSTRLEN + 16];
    int comm_len;
    if (!h || (!buf && buflen))
        return -EINVAL;
    /* a caller-filled struct need not hold a known family or a terminated
     * comm: print what is there, never read past it */
    if (udpmux_format_addr((const struct sockaddr *)&h->addr, addr, sizeof(addr)) < 0)
        snprintf(addr, sizeof(addr), "?");
    comm_len = (int)strnlen(h->comm, sizeof(h->comm));
    if (h->pid > 0)
        return snprintf(buf, buflen, "pid %d (%.*s) uid %u on %s, SO_REUSEADDR=%s SO_REUSEPORT=%s",
                        h->pid, comm_len, h->comm, h->uid, addr, tristate(h->reuseaddr),
                        tristate(h->reuseport));
    return snprintf(buf, buflen,
                    "uid %u on %s (process not visible; run as root to see it), "
                    "SO_REUSEADDR=%s SO_REUSEPORT=%s",
                    h->uid, addr, tristate(h->reuseaddr), tristate(h->reuseport));
}
