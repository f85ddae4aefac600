/*
 * ct.c - udpmuxd's kernel flows are conntrack entries carrying its mark
 * (UMXD_KDP_MARK_MASK): listed with their packets and bytes (conntrack
 * accounting), and deleted when their route goes away, on exit, and at
 * start when a killed instance left them behind. libnetfilter_conntrack
 * does the netlink; the kernel filters the dump by mark.
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libnetfilter_conntrack/libnetfilter_conntrack.h>

#include "kdp_int.h"

/* entries deleted per call: bounded work on the main thread */
#define CT_DELETE_MAX 65536u

struct each_ctx {
    kdp_ct_fn *fn;
    void *arg;
    int stop;
};

static void ct_addr(const struct nf_conntrack *ct, int family, int repl,
                    struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = nfct_get_attr_u32(ct, repl ? ATTR_REPL_IPV4_SRC : ATTR_ORIG_IPV4_SRC);
        a->sin_port = nfct_get_attr_u16(ct, repl ? ATTR_REPL_PORT_SRC : ATTR_ORIG_PORT_SRC);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        const void *p = nfct_get_attr(ct, repl ? ATTR_REPL_IPV6_SRC : ATTR_ORIG_IPV6_SRC);
        a->sin6_family = AF_INET6;
        if (p)
            memcpy(&a->sin6_addr, p, 16);
        a->sin6_port = nfct_get_attr_u16(ct, repl ? ATTR_REPL_PORT_SRC : ATTR_ORIG_PORT_SRC);
    }
}

static void ct_local(const struct nf_conntrack *ct, int family, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = nfct_get_attr_u32(ct, ATTR_ORIG_IPV4_DST);
        a->sin_port = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        const void *p = nfct_get_attr(ct, ATTR_ORIG_IPV6_DST);
        a->sin6_family = AF_INET6;
        if (p)
            memcpy(&a->sin6_addr, p, 16);
        a->sin6_port = nfct_get_attr_u16(ct, ATTR_ORIG_PORT_DST);
    }
}

static int on_ct(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
    struct each_ctx *c = data;
    struct kdp_ct_flow f;
    int fam = nfct_get_attr_u8(ct, ATTR_L3PROTO);
    (void)type;
    if (c->stop || nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_UDP)
        return NFCT_CB_CONTINUE;
    memset(&f, 0, sizeof(f));
    f.mark = nfct_get_attr_u32(ct, ATTR_MARK) & UMXD_KDP_MARK_MASK;
    ct_addr(ct, fam, 0, &f.peer);
    ct_local(ct, fam, &f.local);
    ct_addr(ct, fam, 1, &f.backend);
    f.rx_pkts = nfct_get_attr_u64(ct, ATTR_ORIG_COUNTER_PACKETS);
    f.rx_bytes = nfct_get_attr_u64(ct, ATTR_ORIG_COUNTER_BYTES);
    f.tx_pkts = nfct_get_attr_u64(ct, ATTR_REPL_COUNTER_PACKETS);
    f.tx_bytes = nfct_get_attr_u64(ct, ATTR_REPL_COUNTER_BYTES);
    f.timeout_s = nfct_get_attr_u32(ct, ATTR_TIMEOUT);
    f.replied = (nfct_get_attr_u32(ct, ATTR_STATUS) & IPS_SEEN_REPLY) != 0;
    if (nfct_attr_is_set(ct, ATTR_TIMESTAMP_START)) {
        struct timespec ts;
        uint64_t start = nfct_get_attr_u64(ct, ATTR_TIMESTAMP_START);
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t now = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
        f.age_s = now > start ? (now - start) / 1000000000ull : 0;
    }
    if (c->fn(c->arg, &f))
        c->stop = 1;
    return NFCT_CB_CONTINUE;
}

static int dump(uint32_t val, uint32_t mask, kdp_ct_fn *fn, void *arg)
{
    struct nfct_handle *h = nfct_open(CONNTRACK, 0);
    struct each_ctx c = {fn, arg, 0};
    int r = 0;
    if (!h)
        return -errno;
    nfct_callback_register(h, NFCT_T_ALL, on_ct, &c);
    for (int i = 0; i < 2 && !c.stop; i++) {
        struct nfct_filter_dump *fd = nfct_filter_dump_create();
        struct nfct_filter_dump_mark m = {val, mask};
        if (!fd) {
            r = -ENOMEM;
            break;
        }
        nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_MARK, &m);
        nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, i ? AF_INET6 : AF_INET);
        /* EINTR: the conntrack table changed under the dump (the hash is
         * shared by every namespace); the caller starts again */
        if (nfct_query(h, NFCT_Q_DUMP_FILTER, fd) < 0 && errno != ENOENT)
            r = -errno;
        nfct_filter_dump_destroy(fd);
        if (r < 0)
            break;
    }
    nfct_close(h);
    return r;
}

int kdp_ct_each(int kernel_only, kdp_ct_fn *fn, void *arg)
{
    const uint32_t k = UMXD_KDP_F_KERNEL << UMXD_KDP_MARK_SHIFT;
    int r = dump(k, k, fn, arg);
    if (r == 0 && !kernel_only)
        r = dump(UMXD_KDP_MARK_USER, UMXD_KDP_MARK_USER, fn, arg);
    return r;
}

/* Deleting entries: a dump through one handle, each match destroyed
 * through a second one (the dump's socket is busy with the dump). Every
 * context below starts with a struct sweep, so the dump's callback gets it
 * as its data. */
struct sweep {
    struct nfct_handle *h;
    unsigned n;
    int err;
};

static void sweep_destroy(struct sweep *w, struct nf_conntrack *ct)
{
    if (w->n >= CT_DELETE_MAX)
        return;
    if (nfct_query(w->h, NFCT_Q_DESTROY, ct) == 0)
        w->n++;
    else if (errno != ENOENT && !w->err)
        w->err = -errno;
}

/* Dumps, in both families, the entries whose mark matches each of marks[]
 * and hands them to cb with w (the head of its context). Returns the
 * number cb destroyed or -errno. */
static int sweep(const struct nfct_filter_dump_mark *marks, unsigned nmarks,
                 int (*cb)(enum nf_conntrack_msg_type, struct nf_conntrack *, void *),
                 struct sweep *w)
{
    struct nfct_handle *h = nfct_open(CONNTRACK, 0);
    int r = 0;
    w->h = nfct_open(CONNTRACK, 0);
    w->n = 0;
    w->err = 0;
    if (!h || !w->h) {
        r = -errno;
        goto out;
    }
    nfct_callback_register(h, NFCT_T_ALL, cb, w);
    for (unsigned i = 0; i < 2 * nmarks; i++) {
        struct nfct_filter_dump *fd = nfct_filter_dump_create();
        if (!fd) {
            r = -ENOMEM;
            break;
        }
        nfct_filter_dump_set_attr(fd, NFCT_FILTER_DUMP_MARK, &marks[i % nmarks]);
        nfct_filter_dump_set_attr_u8(fd, NFCT_FILTER_DUMP_L3NUM, i < nmarks ? AF_INET : AF_INET6);
        if (nfct_query(h, NFCT_Q_DUMP_FILTER, fd) < 0 && errno != ENOENT && !r)
            r = -errno;
        nfct_filter_dump_destroy(fd);
    }
    if (!r && w->err)
        r = w->err;
out:
    if (h)
        nfct_close(h);
    if (w->h)
        nfct_close(w->h);
    return r < 0 ? r : (int)w->n;
}

struct del_ctx {
    struct sweep sw; /* first: the dump's data */
    const uint8_t *keep;
};

static int on_del(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
    struct del_ctx *c = data;
    uint32_t field = (nfct_get_attr_u32(ct, ATTR_MARK) & UMXD_KDP_MARK_MASK) >> UMXD_KDP_MARK_SHIFT;
    (void)type;
    if (!field)
        return NFCT_CB_CONTINUE;
    if (c->keep && (field & UMXD_KDP_F_KERNEL) && c->keep[field & 0xfffu])
        return NFCT_CB_CONTINUE;
    /* a workers' flow (USER alone; KERNEL|USER is a steady kernel flow) */
    if (c->keep && !(field & UMXD_KDP_F_KERNEL) && (field & UMXD_KDP_F_USER))
        return NFCT_CB_CONTINUE;
    sweep_destroy(&c->sw, ct);
    return NFCT_CB_CONTINUE;
}

int kdp_ct_delete(const uint8_t *keep)
{
    const uint32_t k = UMXD_KDP_F_KERNEL << UMXD_KDP_MARK_SHIFT;
    const struct nfct_filter_dump_mark marks[2] = {{k, k},
                                                   {UMXD_KDP_MARK_USER, UMXD_KDP_MARK_USER}};
    struct del_ctx c = {.keep = keep};
    return sweep(marks, 2, on_del, &c.sw);
}

struct unmarked_ctx {
    struct sweep sw; /* first: the dump's data */
    const struct sockaddr_storage *local;
    unsigned nlocal;
};

static int local_match(const struct sockaddr_storage *want, const struct sockaddr_storage *got)
{
    if (want->ss_family == AF_INET && got->ss_family == AF_INET) {
        struct sockaddr_in w, g;
        memcpy(&w, want, sizeof(w));
        memcpy(&g, got, sizeof(g));
        return w.sin_port == g.sin_port &&
               (w.sin_addr.s_addr == INADDR_ANY || w.sin_addr.s_addr == g.sin_addr.s_addr);
    }
    if (want->ss_family == AF_INET6) {
        struct sockaddr_in6 w;
        memcpy(&w, want, sizeof(w));
        if (got->ss_family == AF_INET6) {
            struct sockaddr_in6 g;
            memcpy(&g, got, sizeof(g));
            return w.sin6_port == g.sin6_port && (IN6_IS_ADDR_UNSPECIFIED(&w.sin6_addr) ||
                                                  IN6_ARE_ADDR_EQUAL(&w.sin6_addr, &g.sin6_addr));
        }
        if (got->ss_family == AF_INET) { /* a dual-stack wildcard takes IPv4 */
            struct sockaddr_in g;
            memcpy(&g, got, sizeof(g));
            return w.sin6_port == g.sin_port && IN6_IS_ADDR_UNSPECIFIED(&w.sin6_addr);
        }
    }
    return 0;
}

static int on_unmarked(enum nf_conntrack_msg_type type, struct nf_conntrack *ct, void *data)
{
    struct unmarked_ctx *c = data;
    struct sockaddr_storage local;
    (void)type;
    if (nfct_get_attr_u8(ct, ATTR_L4PROTO) != IPPROTO_UDP ||
        (nfct_get_attr_u32(ct, ATTR_MARK) & UMXD_KDP_MARK_MASK) != 0)
        return NFCT_CB_CONTINUE;
    ct_local(ct, nfct_get_attr_u8(ct, ATTR_L3PROTO), &local);
    for (unsigned i = 0; i < c->nlocal; i++)
        if (local_match(&c->local[i], &local)) {
            sweep_destroy(&c->sw, ct);
            break;
        }
    return NFCT_CB_CONTINUE;
}

int kdp_ct_delete_unmarked(const struct sockaddr_storage *local, unsigned n)
{
    const struct nfct_filter_dump_mark none = {0, UMXD_KDP_MARK_MASK};
    struct unmarked_ctx c = {.local = local, .nlocal = n};
    return sweep(&none, 1, on_unmarked, &c.sw);
}

static int write_sysctl(const char *path, const char *val)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return -errno;
    n = write(fd, val, strlen(val));
    close(fd);
    return n < 0 ? -errno : 0;
}

int kdp_ct_accounting_on(void)
{
    char c = 0;
    int fd = open("/proc/sys/net/netfilter/nf_conntrack_acct", O_RDONLY | O_CLOEXEC);
    ssize_t n;
    if (fd < 0)
        return -errno;
    n = read(fd, &c, 1);
    close(fd);
    return n == 1 ? c != '0' : -EIO;
}

int kdp_ct_accounting(void)
{
    /* per network namespace; flows created before this have no counters */
    int r = write_sysctl("/proc/sys/net/netfilter/nf_conntrack_acct", "1");
    write_sysctl("/proc/sys/net/netfilter/nf_conntrack_timestamp", "1");
    return r;
}
