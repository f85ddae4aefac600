/*
 * udpload - UDP load generator, sink/echo backend and round-trip prober for
 * benchmarking udpmuxd and other UDP proxies. Standalone: no libudpmux.
 *
 * Modes (every run is bounded by -d SECONDS and -n COUNT):
 *   send      paced (-r PPS) or flat-out datagrams, sendmmsg batches (-b),
 *             optional UDP GSO (-g), N flows (-f) = N distinct source
 *             address/port pairs taken from -S ADDR[/PREFIX] and -p PORT.
 *   flows     like send, but every datagram comes from a new source
 *             address/port (new flows per second).
 *   sink      counts datagrams, checks sequence numbers per flow (gaps,
 *             reordering, duplicates); -e echoes every datagram back.
 *   echo      sink -e.
 *             SIGUSR1 makes sink/echo print the counts so far and reset them,
 *             so one long-lived backend can serve many measurements.
 *   pingpong  round trips: -n probes, -w window, -r probes/s; percentiles.
 *
 * Payload: 24-byte header {magic, flow id, sequence, send time} followed by
 * filler, or a truncated header when -s is below 24 (then only counted).
 * Output: key=value lines on stdout, one run per line.
 *
 * Multi-flow sending uses one raw socket (IPPROTO_RAW, needs CAP_NET_RAW) so
 * that one sendmmsg carries datagrams of many flows; --sockets uses one
 * connected UDP socket per flow instead (no privilege, one send per packet).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif

#define MAGIC 0x554c4431u /* "ULD1" */
#define HDR_LEN 24
#define MAX_PAYLOAD 65507
#define MAX_BATCH 1024
#define GSO_MAX_SEGS 64
#define MAX_FLOWS (16u << 20)
#define MAX_PROBES (10u << 20)

enum mode { M_SEND, M_FLOWS, M_SINK, M_PINGPONG };

struct opts {
    enum mode mode;
    const char *target;
    const char *listen;
    const char *src;
    double duration;
    uint64_t count;
    double rate;
    size_t size;
    unsigned batch;
    int gso;
    uint32_t flows;
    unsigned sport;
    int sockets;
    int echo;
    unsigned window;
    double timeout;
    unsigned idle_ms;
    int rcvbuf;
    const char *tag;
};

static volatile sig_atomic_t g_stop, g_report;

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_report = 1;
    else
        g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void sleep_until(uint64_t t)
{
    struct timespec ts = {.tv_sec = (time_t)(t / 1000000000ull),
                          .tv_nsec = (long)(t % 1000000000ull)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !g_stop)
        ;
}

static void die(const char *what)
{
    fprintf(stderr, "udpload: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void usage(int rc)
{
    fprintf(rc ? stderr : stdout,
            "usage: udpload MODE [options]\n"
            "  send|flows -t HOST:PORT [-r PPS] [-s SIZE] [-b BATCH] [-g] [-f FLOWS]\n"
            "             [-S ADDR[/PREFIX]] [-p SPORT] [--sockets]\n"
            "  sink|echo  -l HOST:PORT [-e] [-i IDLE_MS] [-B RCVBUF]\n"
            "  pingpong   -t HOST:PORT [-r PROBES_PER_S] [-w WINDOW] [-s SIZE] [-T TIMEOUT_S]\n"
            "common: -d SECONDS (default 5) -n COUNT (default unlimited) -k TAG\n");
    exit(rc);
}

static int parse_hostport(const char *s, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(s, ':');
    if (!colon || (size_t)(colon - s) >= sizeof(host))
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = 0;
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || port > 65535)
        return -1;
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    return inet_pton(AF_INET, host[0] ? host : "0.0.0.0", &sa->sin_addr) == 1 ? 0 : -1;
}

/* ADDR[/PREFIX] -> first usable host (network order) and number of hosts. */
static int parse_cidr(const char *s, uint32_t *base, uint32_t *n)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", s);
    unsigned prefix = 32;
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = 0;
        prefix = (unsigned)atoi(slash + 1);
        if (prefix < 8 || prefix > 32)
            return -1;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -1;
    uint32_t h = ntohl(a.s_addr);
    if (prefix >= 31) {
        *base = h;
        *n = prefix == 32 ? 1 : 2;
        return 0;
    }
    uint32_t mask = ~0u << (32 - prefix);
    *base = (h & mask) + 1;         /* skip the network address */
    *n = (1u << (32 - prefix)) - 2; /* and the broadcast address */
    return 0;
}

static void put_hdr(uint8_t *p, size_t size, uint32_t flow, uint64_t seq, uint64_t ts)
{
    uint8_t h[HDR_LEN];
    uint32_t m = MAGIC;
    memcpy(h, &m, 4);
    memcpy(h + 4, &flow, 4);
    memcpy(h + 8, &seq, 8);
    memcpy(h + 16, &ts, 8);
    memcpy(p, h, size < HDR_LEN ? size : HDR_LEN);
}

static int get_hdr(const uint8_t *p, size_t len, uint32_t *flow, uint64_t *seq, uint64_t *ts)
{
    uint32_t m;
    if (len < HDR_LEN)
        return -1;
    memcpy(&m, p, 4);
    if (m != MAGIC)
        return -1;
    memcpy(flow, p + 4, 4);
    memcpy(seq, p + 8, 8);
    memcpy(ts, p + 16, 8);
    return 0;
}

static void raise_nofile(uint64_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < need + 64) {
        rl.rlim_cur = need + 64;
        if (rl.rlim_max < rl.rlim_cur)
            rl.rlim_max = rl.rlim_cur;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            die("setrlimit(RLIMIT_NOFILE)");
    }
}

static void set_rcvbuf(int fd, int bytes)
{
    if (bytes <= 0)
        return;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(bytes)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes));
}

/* ------------------------------------------------------------------------ */
/* send / flows                                                             */
/* ------------------------------------------------------------------------ */

struct sender {
    struct opts *o;
    struct sockaddr_in dst;
    int fd;   /* single-flow UDP socket or raw socket */
    int *fds; /* --sockets: one per flow */
    int raw;  /* multi-flow through the raw socket */
    uint32_t src_base, src_n;
    uint64_t *seq; /* per flow */
    uint32_t next_flow;
    uint64_t sent, bytes, errors;
    uint8_t *buf; /* batch * stride */
    size_t stride;
    struct mmsghdr *msgs;
    struct iovec *iov;
};

static void flow_addr(const struct sender *s, uint32_t flow, uint32_t *addr, uint16_t *port)
{
    *addr = s->src_base + flow % s->src_n;
    *port = (uint16_t)(s->o->sport + flow / s->src_n);
}

static uint16_t ip_csum(const void *p, size_t len)
{
    const uint16_t *w = p;
    uint32_t sum = 0;
    for (size_t i = 0; i < len / 2; i++)
        sum += w[i];
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

static void sender_setup(struct sender *s, struct opts *o)
{
    memset(s, 0, sizeof(*s));
    s->o = o;
    if (!o->target || parse_hostport(o->target, &s->dst) != 0) {
        fprintf(stderr, "udpload: need -t HOST:PORT\n");
        exit(2);
    }
    s->src_base = ntohl(htonl(INADDR_LOOPBACK));
    s->src_n = 1;
    if (o->src && parse_cidr(o->src, &s->src_base, &s->src_n) != 0) {
        fprintf(stderr, "udpload: bad -S %s\n", o->src);
        exit(2);
    }
    uint64_t nflows = o->mode == M_FLOWS ? (o->count ? o->count : MAX_FLOWS) : o->flows;
    if (nflows > MAX_FLOWS)
        nflows = MAX_FLOWS;
    int multi = o->mode == M_FLOWS || o->flows > 1;
    if (multi && o->sport + (nflows - 1) / s->src_n > 65535) {
        fprintf(stderr, "udpload: %" PRIu64 " flows do not fit in %u addresses from port %u\n",
                nflows, s->src_n, o->sport);
        exit(2);
    }
    s->seq = calloc(o->mode == M_FLOWS ? 1 : o->flows, sizeof(*s->seq));
    s->raw = multi && !o->sockets;
    s->stride = s->raw ? o->size + sizeof(struct iphdr) + sizeof(struct udphdr) : o->size;
    if (o->gso && !s->raw && o->flows == 1 && o->size > 0)
        s->stride = o->size;
    unsigned nb = o->batch;
    s->buf = calloc(nb, s->stride ? s->stride : 1);
    s->msgs = calloc(nb, sizeof(*s->msgs));
    s->iov = calloc(nb, sizeof(*s->iov));
    if (!s->seq || !s->buf || !s->msgs || !s->iov)
        die("calloc");
    for (size_t i = 0; i < nb * s->stride; i++)
        s->buf[i] = (uint8_t)(0x41 + i % 26);

    if (s->raw) {
        s->fd = socket(AF_INET, SOCK_RAW, IPPROTO_RAW);
        if (s->fd < 0)
            die("socket(SOCK_RAW) (multi-flow needs CAP_NET_RAW; or use --sockets)");
        int sb = 4 << 20;
        setsockopt(s->fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb));
        for (unsigned i = 0; i < nb; i++) {
            uint8_t *p = s->buf + i * s->stride;
            struct iphdr ip = {0};
            ip.version = 4;
            ip.ihl = 5;
            ip.ttl = 64;
            ip.protocol = IPPROTO_UDP;
            ip.tot_len = htons((uint16_t)s->stride);
            ip.daddr = s->dst.sin_addr.s_addr;
            memcpy(p, &ip, sizeof(ip));
            struct udphdr uh = {0};
            uh.dest = s->dst.sin_port;
            uh.len = htons((uint16_t)(o->size + sizeof(uh)));
            memcpy(p + sizeof(ip), &uh, sizeof(uh));
            s->iov[i].iov_base = p;
            s->iov[i].iov_len = s->stride;
            s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
            s->msgs[i].msg_hdr.msg_iovlen = 1;
            s->msgs[i].msg_hdr.msg_name = &s->dst;
            s->msgs[i].msg_hdr.msg_namelen = sizeof(s->dst);
        }
        return;
    }
    unsigned nfd = multi ? o->flows : 1;
    s->fds = calloc(nfd, sizeof(int));
    if (!s->fds)
        die("calloc");
    raise_nofile(nfd);
    for (unsigned f = 0; f < nfd; f++) {
        int fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
            die("socket");
        int sb = 4 << 20;
        if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb)) != 0)
            setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
        if (o->src || multi) {
            uint32_t a;
            uint16_t port;
            flow_addr(s, f, &a, &port);
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons(o->src && !multi ? 0 : port),
                                     .sin_addr.s_addr = htonl(a)};
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
                die("bind source");
        }
        if (connect(fd, (struct sockaddr *)&s->dst, sizeof(s->dst)) != 0)
            die("connect");
        s->fds[f] = fd;
    }
    s->fd = s->fds[0];
    for (unsigned i = 0; i < nb; i++) {
        s->iov[i].iov_base = s->buf + i * s->stride;
        s->iov[i].iov_len = o->size;
        s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
        s->msgs[i].msg_hdr.msg_iovlen = 1;
    }
}

static void count_send_err(struct sender *s)
{
    if (errno == EINTR)
        return;
    s->errors++;
}

/* Sends up to n datagrams now; returns how many were sent (or attempted). */
static unsigned send_burst(struct sender *s, unsigned n, uint64_t ts)
{
    struct opts *o = s->o;
    size_t sz = o->size;
    if (s->raw) {
        for (unsigned i = 0; i < n; i++) {
            uint8_t *p = s->buf + i * s->stride;
            uint32_t flow, a;
            uint16_t port;
            uint64_t seq;
            if (o->mode == M_FLOWS) {
                flow = s->next_flow++;
                seq = 0;
            } else {
                flow = s->next_flow;
                s->next_flow = s->next_flow + 1 == o->flows ? 0 : s->next_flow + 1;
                seq = s->seq[flow]++;
            }
            flow_addr(s, flow, &a, &port);
            struct iphdr *ip = (struct iphdr *)(void *)p;
            ip->saddr = htonl(a);
            ip->id = 0;
            ip->check = 0;
            ip->check = ip_csum(ip, sizeof(*ip));
            struct udphdr *uh = (struct udphdr *)(void *)(p + sizeof(*ip));
            uh->source = htons(port);
            put_hdr(p + sizeof(*ip) + sizeof(*uh), sz, flow, seq, ts);
        }
        int r = sendmmsg(s->fd, s->msgs, n, 0);
        if (r < 0) {
            count_send_err(s);
            return 0;
        }
        s->sent += (unsigned)r;
        s->bytes += (uint64_t)r * sz;
        return (unsigned)r;
    }
    if (s->fds && o->flows > 1) { /* --sockets: one send per packet */
        unsigned done = 0;
        for (unsigned i = 0; i < n; i++) {
            uint32_t flow = s->next_flow;
            s->next_flow = s->next_flow + 1 == o->flows ? 0 : s->next_flow + 1;
            put_hdr(s->buf, sz, flow, s->seq[flow]++, ts);
            if (send(s->fds[flow], s->buf, sz, 0) < 0) {
                count_send_err(s);
                continue;
            }
            done++;
        }
        s->sent += done;
        s->bytes += (uint64_t)done * sz;
        return n;
    }
    if (o->gso && sz > 0) {
        unsigned max = MAX_PAYLOAD / sz;
        if (max > GSO_MAX_SEGS)
            max = GSO_MAX_SEGS;
        if (n > max)
            n = max;
        for (unsigned i = 0; i < n; i++)
            put_hdr(s->buf + i * sz, sz, 0, s->seq[0]++, ts);
        struct iovec iov = {.iov_base = s->buf, .iov_len = n * sz};
        union {
            char b[CMSG_SPACE(sizeof(uint16_t))];
            struct cmsghdr align;
        } cb;
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        if (n > 1) {
            mh.msg_control = cb.b;
            mh.msg_controllen = sizeof(cb.b);
            struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
            c->cmsg_level = SOL_UDP;
            c->cmsg_type = UDP_SEGMENT;
            c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            uint16_t seg = (uint16_t)sz;
            memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        }
        if (sendmsg(s->fd, &mh, 0) < 0) {
            s->seq[0] -= n;
            if (errno == EIO || errno == EINVAL) {
                fprintf(stderr, "udpload: UDP GSO rejected (%s), falling back to sendmmsg\n",
                        strerror(errno));
                o->gso = 0;
            } else {
                count_send_err(s);
            }
            return 0;
        }
        s->sent += n;
        s->bytes += (uint64_t)n * sz;
        return n;
    }
    for (unsigned i = 0; i < n; i++)
        put_hdr(s->buf + i * s->stride, sz, 0, s->seq[0]++, ts);
    int r =
        n == 1 ? (int)(send(s->fd, s->buf, sz, 0) < 0 ? -1 : 1) : sendmmsg(s->fd, s->msgs, n, 0);
    if (r < 0) {
        s->seq[0] -= n;
        count_send_err(s);
        return 0;
    }
    s->seq[0] -= n - (unsigned)r;
    s->sent += (unsigned)r;
    s->bytes += (uint64_t)r * sz;
    return (unsigned)r;
}

static int run_send(struct opts *o)
{
    struct sender s;
    sender_setup(&s, o);
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(o->duration * 1e9);
    uint64_t limit = o->count ? o->count : UINT64_MAX;
    uint64_t attempted = 0;
    uint64_t t = t0;
    while (!g_stop && attempted < limit) {
        t = now_ns();
        if (t >= end)
            break;
        uint64_t left = limit - attempted;
        unsigned n = o->batch;
        if (n > left)
            n = (unsigned)left;
        if (o->rate > 0) {
            uint64_t due = (uint64_t)((double)(t - t0) * o->rate / 1e9);
            if (due <= attempted) {
                /* sleep until a whole batch is due (or less at the end) */
                uint64_t at = t0 + (uint64_t)((double)(attempted + n) * 1e9 / o->rate);
                sleep_until(at < end ? at : end);
                continue;
            }
            if (due - attempted < n)
                n = (unsigned)(due - attempted);
        }
        unsigned k = send_burst(&s, n, t);
        if (k == 0) {
            /* count the failed attempt so that errors cannot spin forever */
            attempted += n;
            continue;
        }
        attempted += k;
    }
    uint64_t t1 = now_ns();
    double el = (double)(t1 - t0) / 1e9;
    printf("mode=%s%s%s sent=%" PRIu64 " bytes=%" PRIu64 " errors=%" PRIu64
           " elapsed=%.6f pps=%.0f size=%zu batch=%u gso=%d flows=%" PRIu64 " rate=%.0f raw=%d\n",
           o->mode == M_FLOWS ? "flows" : "send", o->tag ? " tag=" : "", o->tag ? o->tag : "",
           s.sent, s.bytes, s.errors, el, el > 0 ? (double)s.sent / el : 0.0, o->size, o->batch,
           o->gso, o->mode == M_FLOWS ? (uint64_t)s.next_flow : (uint64_t)o->flows, o->rate, s.raw);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* sink / echo                                                              */
/* ------------------------------------------------------------------------ */

struct flowstate {
    uint64_t next;   /* highest seq seen + 1 */
    uint64_t window; /* bit i: seq next-1-i seen */
    uint64_t uniq;
};

static uint64_t proc_udp_drops(uint16_t port)
{
    FILE *f = fopen("/proc/net/udp", "r");
    if (!f)
        return 0;
    char line[512];
    uint64_t drops = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned sl, la, lp;
        if (sscanf(line, " %u: %x:%x", &sl, &la, &lp) != 3 || lp != port)
            continue;
        /* the drops column is the last field on the line */
        const char *last = NULL;
        for (char *tok = strtok(line, " \n"); tok; tok = strtok(NULL, " \n"))
            last = tok;
        if (last)
            drops += strtoull(last, NULL, 10);
    }
    fclose(f);
    return drops;
}

struct sinkstats {
    struct flowstate *fs;
    uint32_t nfs;
    uint64_t recv_n, bytes, shortn, reord, dup, late, echoed, echo_err, flows_seen;
    uint64_t tfirst, tlast, drops0;
};

static void sink_account(struct sinkstats *st, const uint8_t *p, size_t len)
{
    uint32_t flow;
    uint64_t seq, ts;
    st->recv_n++;
    st->bytes += len;
    if (get_hdr(p, len, &flow, &seq, &ts) != 0 || flow >= MAX_FLOWS) {
        st->shortn++;
        return;
    }
    if (flow >= st->nfs) {
        uint32_t n = st->nfs ? st->nfs : 1024;
        while (n <= flow)
            n *= 2;
        struct flowstate *nf = realloc(st->fs, (size_t)n * sizeof(*nf));
        if (!nf)
            die("realloc");
        memset(nf + st->nfs, 0, (size_t)(n - st->nfs) * sizeof(*nf));
        st->fs = nf;
        st->nfs = n;
    }
    struct flowstate *f = &st->fs[flow];
    if (!f->uniq)
        st->flows_seen++;
    if (seq >= f->next) {
        uint64_t shift = seq - f->next + 1;
        f->window = shift >= 64 ? 0 : f->window << shift;
        f->window |= 1;
        f->next = seq + 1;
        f->uniq++;
        return;
    }
    uint64_t back = f->next - 1 - seq;
    if (back >= 64) { /* too old for the window: reordered or duplicate */
        st->late++;
        f->uniq++;
    } else if (f->window & (1ull << back)) {
        st->dup++;
    } else {
        f->window |= 1ull << back;
        st->reord++;
        f->uniq++;
    }
}

/* Prints one result line and starts counting afresh (SIGUSR1 and exit). */
static void sink_report(struct sinkstats *st, const struct opts *o, uint16_t port)
{
    uint64_t gaps = 0;
    for (uint32_t i = 0; i < st->nfs; i++)
        if (st->fs[i].next > st->fs[i].uniq)
            gaps += st->fs[i].next - st->fs[i].uniq;
    double span = st->tlast > st->tfirst ? (double)(st->tlast - st->tfirst) / 1e9 : 0;
    uint64_t drops = proc_udp_drops(port);
    printf("mode=%s%s%s received=%" PRIu64 " bytes=%" PRIu64 " span=%.6f pps=%.0f flows=%" PRIu64
           " gaps=%" PRIu64 " reordered=%" PRIu64 " late=%" PRIu64 " duplicates=%" PRIu64
           " short=%" PRIu64 " echoed=%" PRIu64 " echo_errors=%" PRIu64 " rcvbuf_drops=%" PRIu64
           "\n",
           o->echo ? "echo" : "sink", o->tag ? " tag=" : "", o->tag ? o->tag : "", st->recv_n,
           st->bytes, span, span > 0 ? (double)(st->recv_n - 1) / span : 0.0, st->flows_seen, gaps,
           st->reord, st->late, st->dup, st->shortn, st->echoed, st->echo_err, drops - st->drops0);
    free(st->fs);
    *st = (struct sinkstats){.drops0 = drops};
}

static int run_sink(struct opts *o)
{
    struct sockaddr_in la;
    if (!o->listen || parse_hostport(o->listen, &la) != 0) {
        fprintf(stderr, "udpload: need -l HOST:PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    set_rcvbuf(fd, o->rcvbuf);
    if (bind(fd, (struct sockaddr *)&la, sizeof(la)) != 0)
        die("bind");
    struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint16_t port = ntohs(la.sin_port);
    struct sinkstats st = {.drops0 = proc_udp_drops(port)};

    enum { B = 64 };
    size_t bufsz = MAX_PAYLOAD + 1;
    uint8_t *bufs = malloc((size_t)B * bufsz);
    struct mmsghdr msgs[B];
    struct iovec iov[B];
    struct sockaddr_in peers[B];
    if (!bufs)
        die("malloc");
    uint64_t end = now_ns() + (uint64_t)(o->duration * 1e9);
    uint64_t limit = o->count ? o->count : UINT64_MAX;
    printf("mode=sink ready=1 port=%u\n", port);
    while (!g_stop && st.recv_n < limit) {
        if (g_report) {
            g_report = 0;
            sink_report(&st, o, port);
        }
        uint64_t t = now_ns();
        if (t >= end)
            break;
        if (o->idle_ms && st.recv_n && t - st.tlast > (uint64_t)o->idle_ms * 1000000ull)
            break;
        for (int i = 0; i < B; i++) {
            iov[i].iov_base = bufs + (size_t)i * bufsz;
            iov[i].iov_len = bufsz;
            msgs[i].msg_hdr = (struct msghdr){.msg_name = &peers[i],
                                              .msg_namelen = sizeof(peers[i]),
                                              .msg_iov = &iov[i],
                                              .msg_iovlen = 1};
        }
        int r = recvmmsg(fd, msgs, B, MSG_WAITFORONE, NULL);
        if (r <= 0)
            continue;
        st.tlast = now_ns();
        if (!st.tfirst)
            st.tfirst = st.tlast;
        for (int i = 0; i < r; i++)
            sink_account(&st, iov[i].iov_base, msgs[i].msg_len);
        if (o->echo) {
            for (int i = 0; i < r; i++)
                iov[i].iov_len = msgs[i].msg_len;
            int done = 0;
            while (done < r) {
                int w = sendmmsg(fd, msgs + done, (unsigned)(r - done), 0);
                if (w <= 0) {
                    st.echo_err += (uint64_t)(r - done);
                    break;
                }
                done += w;
            }
            st.echoed += (uint64_t)done;
        }
    }
    sink_report(&st, o, port);
    free(bufs);
    close(fd);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* pingpong                                                                 */
/* ------------------------------------------------------------------------ */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)v[i] / 1000.0;
}

static int run_pingpong(struct opts *o)
{
    struct sockaddr_in dst;
    if (!o->target || parse_hostport(o->target, &dst) != 0) {
        fprintf(stderr, "udpload: need -t HOST:PORT\n");
        return 2;
    }
    uint64_t n = o->count ? o->count : 10000;
    if (n > MAX_PROBES)
        n = MAX_PROBES;
    size_t sz = o->size < HDR_LEN ? HDR_LEN : o->size;
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    set_rcvbuf(fd, 1 << 20);
    if (connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0)
        die("connect");
    uint64_t *sent_at = calloc(n, sizeof(uint64_t));
    uint64_t *rtt = calloc(n, sizeof(uint64_t));
    uint8_t *buf = calloc(1, MAX_PAYLOAD + 1);
    if (!sent_at || !rtt || !buf)
        die("calloc");
    memset(buf, 0x5a, sz);
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(o->duration * 1e9);
    uint64_t tmo = (uint64_t)(o->timeout * 1e9);
    uint64_t next_seq = 0, got = 0, outstanding = 0, stray = 0, errors = 0;
    uint64_t next_send = t0;
    uint64_t interval = o->rate > 0 ? (uint64_t)(1e9 / o->rate) : 0;
    uint64_t oldest = 0; /* lowest seq that may still be outstanding */
    uint64_t last_sent_t = t0;
    while (!g_stop) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        /* expire probes older than the timeout */
        while (oldest < next_seq && (rtt[oldest] || sent_at[oldest] + tmo <= t)) {
            if (!rtt[oldest] && outstanding)
                outstanding--;
            oldest++;
        }
        if (next_seq >= n && outstanding == 0)
            break;
        if (next_seq >= n && t - last_sent_t > tmo)
            break;
        if (next_seq < n && outstanding < o->window && t >= next_send) {
            put_hdr(buf, sz, 0, next_seq, t);
            if (send(fd, buf, sz, 0) < 0) {
                errors++;
                usleep(1000);
            }
            sent_at[next_seq] = t;
            last_sent_t = t;
            next_seq++;
            outstanding++;
            next_send = interval ? next_send + interval : t;
            if (next_send < t - 100 * interval) /* do not burst after a stall */
                next_send = t;
            continue;
        }
        uint64_t wake = t + 10000000ull;
        if (next_seq < n && outstanding < o->window && next_send < wake)
            wake = next_send;
        uint64_t dt = wake > t ? wake - t : 0;
        struct timespec wait = {.tv_sec = (time_t)(dt / 1000000000ull),
                                .tv_nsec = (long)(dt % 1000000000ull)};
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (ppoll(&pfd, 1, &wait, NULL) <= 0)
            continue;
        for (;;) {
            ssize_t r = recv(fd, buf, MAX_PAYLOAD + 1, MSG_DONTWAIT);
            if (r < 0)
                break;
            uint64_t tr = now_ns();
            uint32_t flow;
            uint64_t seq, ts;
            if (get_hdr(buf, (size_t)r, &flow, &seq, &ts) != 0 || seq >= next_seq || rtt[seq] ||
                tr - sent_at[seq] > tmo) {
                stray++;
                continue;
            }
            rtt[seq] = tr - sent_at[seq] ? tr - sent_at[seq] : 1;
            got++;
            if (outstanding)
                outstanding--;
        }
    }
    uint64_t *v = malloc((got ? got : 1) * sizeof(uint64_t));
    if (!v)
        die("malloc");
    size_t k = 0;
    double sum = 0;
    for (uint64_t i = 0; i < next_seq; i++)
        if (rtt[i]) {
            v[k++] = rtt[i];
            sum += (double)rtt[i];
        }
    qsort(v, k, sizeof(*v), cmp_u64);
    printf("mode=pingpong%s%s sent=%" PRIu64 " received=%" PRIu64 " lost=%" PRIu64 " stray=%" PRIu64
           " errors=%" PRIu64
           " size=%zu window=%u rate=%.0f min_us=%.1f p50_us=%.1f p90_us=%.1f p99_us=%.1f "
           "p999_us=%.1f max_us=%.1f mean_us=%.1f\n",
           o->tag ? " tag=" : "", o->tag ? o->tag : "", next_seq, got, next_seq - got, stray,
           errors, sz, o->window, o->rate, k ? (double)v[0] / 1000.0 : 0, pct(v, k, 0.5),
           pct(v, k, 0.9), pct(v, k, 0.99), pct(v, k, 0.999), k ? (double)v[k - 1] / 1000.0 : 0,
           k ? sum / (double)k / 1000.0 : 0);
    free(v);
    free(sent_at);
    free(rtt);
    free(buf);
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage(2);
    struct opts o = {.duration = 5,
                     .size = 64,
                     .batch = 32,
                     .flows = 1,
                     .sport = 10000,
                     .window = 1,
                     .timeout = 1,
                     .rcvbuf = 4 << 20};
    const char *m = argv[1];
    if (!strcmp(m, "send"))
        o.mode = M_SEND;
    else if (!strcmp(m, "flows"))
        o.mode = M_FLOWS;
    else if (!strcmp(m, "sink"))
        o.mode = M_SINK;
    else if (!strcmp(m, "echo")) {
        o.mode = M_SINK;
        o.echo = 1;
    } else if (!strcmp(m, "pingpong"))
        o.mode = M_PINGPONG;
    else if (!strcmp(m, "-h") || !strcmp(m, "--help"))
        usage(0);
    else
        usage(2);
    static const struct option lo[] = {
        {"sockets", no_argument, NULL, 'O'}, {"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "t:l:S:d:n:r:s:b:gf:p:ew:T:i:B:k:h", lo, NULL)) != -1) {
        switch (c) {
        case 't':
            o.target = optarg;
            break;
        case 'l':
            o.listen = optarg;
            break;
        case 'S':
            o.src = optarg;
            break;
        case 'd':
            o.duration = atof(optarg);
            break;
        case 'n':
            o.count = strtoull(optarg, NULL, 10);
            break;
        case 'r':
            o.rate = atof(optarg);
            break;
        case 's':
            o.size = strtoul(optarg, NULL, 10);
            break;
        case 'b':
            o.batch = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'g':
            o.gso = 1;
            break;
        case 'f':
            o.flows = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case 'p':
            o.sport = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'O':
            o.sockets = 1;
            break;
        case 'e':
            o.echo = 1;
            break;
        case 'w':
            o.window = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'T':
            o.timeout = atof(optarg);
            break;
        case 'i':
            o.idle_ms = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'B':
            o.rcvbuf = atoi(optarg);
            break;
        case 'k':
            o.tag = optarg;
            break;
        case 'h':
            usage(0);
            break;
        default:
            usage(2);
        }
    }
    if (o.duration <= 0 || o.duration > 3600 || o.size > MAX_PAYLOAD || o.batch == 0 ||
        o.batch > MAX_BATCH || o.flows == 0 || o.flows > MAX_FLOWS || o.window == 0 ||
        o.sport == 0 || o.sport > 65535 || o.timeout <= 0) {
        fprintf(stderr,
                "udpload: option out of range (-d 0..3600, -s 0..%d, -b 1..%d, "
                "-f 1..%u, -w >= 1)\n",
                MAX_PAYLOAD, MAX_BATCH, MAX_FLOWS);
        return 2;
    }
    if (o.sockets && o.flows > 65536) {
        fprintf(stderr, "udpload: --sockets supports at most 65536 flows\n");
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    setvbuf(stdout, NULL, _IOLBF, 0);
    switch (o.mode) {
    case M_SEND:
    case M_FLOWS:
        return run_send(&o);
    case M_SINK:
        return run_sink(&o);
    case M_PINGPONG:
        return run_pingpong(&o);
    }
    return 2;
}
