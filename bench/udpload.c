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
 * Multi-flow sending binds one UDP socket per source port and picks each
 * datagram's source address with IP_PKTINFO, so one sendmmsg carries
 * datagrams of many flows (-S 10.77.0.0/16 needs `ip route add local
 * 10.77.0.0/16 dev lo`). With -g each message is a UDP GSO train of -L
 * datagrams of one flow (one flow: -b datagrams per GSO send).
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
    unsigned train;
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
            "             [-S ADDR[/PREFIX]] [-p SPORT] [-L TRAIN]\n"
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
        prefix = (unsigned)strtoul(slash + 1, NULL, 10);
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
    int multi; /* flows > 1 or flows mode: sockets + IP_PKTINFO */
    int *fds;  /* single flow: fds[0] connected; multi: one per source port */
    unsigned nfds;
    unsigned train; /* datagrams per message: > 1 = one UDP GSO send of one flow */
    uint32_t src_base, src_n;
    uint64_t *seq; /* per flow */
    uint32_t next_flow;
    uint64_t sent, bytes, errors;
    uint8_t *buf; /* messages * train * size */
    struct mmsghdr *msgs;
    struct iovec *iov;
    uint8_t *cmsgs; /* per message: IP_PKTINFO + UDP_SEGMENT */
    unsigned *segs; /* datagrams in each pending message */
};

#define CMSG_ROOM (CMSG_SPACE(sizeof(struct in_pktinfo)) + CMSG_SPACE(sizeof(uint16_t)))

/* Flow f comes from address src_base + f % src_n, port sport + f / src_n:
 * consecutive flows share a source port, hence a socket. */
static void flow_addr(const struct sender *s, uint32_t flow, uint32_t *addr, unsigned *sock)
{
    *addr = s->src_base + flow % s->src_n;
    *sock = flow / s->src_n;
}

static int udp_socket(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0)
        die("socket");
    int sb = 4 << 20;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sb, sizeof(sb)) != 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sb, sizeof(sb));
    return fd;
}

static void sender_setup(struct sender *s, struct opts *o)
{
    memset(s, 0, sizeof(*s));
    s->o = o;
    if (!o->target || parse_hostport(o->target, &s->dst) != 0) {
        fprintf(stderr, "udpload: need -t HOST:PORT\n");
        exit(2);
    }
    s->src_base = INADDR_LOOPBACK;
    s->src_n = 1;
    if (o->src && parse_cidr(o->src, &s->src_base, &s->src_n) != 0) {
        fprintf(stderr, "udpload: bad -S %s\n", o->src);
        exit(2);
    }
    s->multi = o->mode == M_FLOWS || o->flows > 1;
    uint64_t nflows = o->mode == M_FLOWS ? (o->count ? o->count : MAX_FLOWS) : o->flows;
    if (nflows > MAX_FLOWS)
        nflows = MAX_FLOWS;
    s->nfds = s->multi ? (unsigned)((nflows - 1) / s->src_n + 1) : 1;
    if (s->multi && o->sport + s->nfds - 1 > 65535) {
        fprintf(stderr, "udpload: %" PRIu64 " flows do not fit in %u addresses from port %u\n",
                nflows, s->src_n, o->sport);
        exit(2);
    }
    unsigned maxseg = o->size ? MAX_PAYLOAD / (unsigned)o->size : 1;
    if (maxseg > GSO_MAX_SEGS)
        maxseg = GSO_MAX_SEGS;
    if (!o->gso || o->size == 0 || o->mode == M_FLOWS)
        s->train = 1;
    else if (s->multi)
        s->train = o->train < maxseg ? o->train : maxseg;
    else
        s->train = o->batch < maxseg ? o->batch : maxseg;
    /* messages per sendmmsg: single-flow GSO sends one message */
    unsigned nmsg = !s->multi && s->train > 1 ? 1 : o->batch;
    s->seq = calloc(o->mode == M_FLOWS ? 1 : o->flows, sizeof(*s->seq));
    s->buf = calloc((size_t)nmsg * s->train, o->size ? o->size : 1);
    s->msgs = calloc(nmsg, sizeof(*s->msgs));
    s->iov = calloc(nmsg, sizeof(*s->iov));
    s->cmsgs = calloc(nmsg, CMSG_ROOM);
    s->segs = calloc(nmsg, sizeof(unsigned));
    s->fds = calloc(s->nfds, sizeof(int));
    if (!s->seq || !s->buf || !s->msgs || !s->iov || !s->cmsgs || !s->segs || !s->fds)
        die("calloc");
    for (size_t i = 0; i < (size_t)nmsg * s->train * o->size; i++)
        s->buf[i] = (uint8_t)(0x41 + i % 26);
    raise_nofile(s->nfds);
    for (unsigned j = 0; j < s->nfds; j++) {
        int fd = udp_socket();
        if (s->multi) {
            /* bound to the port only: the source address of each datagram
             * is chosen with IP_PKTINFO (any local address, AnyIP too) */
            struct sockaddr_in sa = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)(o->sport + j)),
                                     .sin_addr.s_addr = htonl(INADDR_ANY)};
            int one = 1;
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
                die("bind source port");
        } else {
            if (o->src) {
                struct sockaddr_in sa = {.sin_family = AF_INET,
                                         .sin_addr.s_addr = htonl(s->src_base)};
                if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
                    die("bind source address");
            }
            if (connect(fd, (struct sockaddr *)&s->dst, sizeof(s->dst)) != 0)
                die("connect");
        }
        s->fds[j] = fd;
    }
    for (unsigned i = 0; i < nmsg; i++) {
        s->iov[i].iov_base = s->buf + (size_t)i * s->train * o->size;
        s->iov[i].iov_len = o->size;
        s->msgs[i].msg_hdr.msg_iov = &s->iov[i];
        s->msgs[i].msg_hdr.msg_iovlen = 1;
        if (s->multi) {
            s->msgs[i].msg_hdr.msg_name = &s->dst;
            s->msgs[i].msg_hdr.msg_namelen = sizeof(s->dst);
        }
    }
}

static void put_cmsgs(struct msghdr *mh, uint8_t *room, const uint32_t *src, unsigned segs,
                      size_t size)
{
    size_t len = 0;
    mh->msg_control = room;
    mh->msg_controllen = CMSG_ROOM;
    struct cmsghdr *c = CMSG_FIRSTHDR(mh);
    if (src) {
        struct in_pktinfo pi = {.ipi_spec_dst.s_addr = htonl(*src)};
        c->cmsg_level = IPPROTO_IP;
        c->cmsg_type = IP_PKTINFO;
        c->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(c), &pi, sizeof(pi));
        len += CMSG_SPACE(sizeof(pi));
        c = (struct cmsghdr *)(void *)(room + len);
    }
    if (segs > 1) {
        uint16_t seg = (uint16_t)size;
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(seg));
        memcpy(CMSG_DATA(c), &seg, sizeof(seg));
        len += CMSG_SPACE(sizeof(seg));
    }
    mh->msg_controllen = len;
    if (!len)
        mh->msg_control = NULL;
}

/* Sends the nmsg pending messages on fd, counting datagrams sent and lost. */
static void flush_msgs(struct sender *s, int fd, unsigned nmsg)
{
    uint64_t segs = 0, want = 0;
    for (unsigned i = 0; i < nmsg; i++)
        want += s->segs[i];
    unsigned done = 0;
    while (done < nmsg) {
        int r = sendmmsg(fd, s->msgs + done, nmsg - done, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (int i = 0; i < r; i++)
            segs += s->segs[done + (unsigned)i];
        done += (unsigned)r;
    }
    if (segs < want) {
        s->errors += want - segs;
        if (errno == EIO && s->train > 1) { /* the kernel refused GSO: fall back */
            fprintf(stderr, "udpload: UDP GSO rejected, one datagram per message now\n");
            s->train = 1;
        }
    }
    s->sent += segs;
    s->bytes += segs * s->o->size;
}

/* Sends n datagrams now (fewer on error); returns n. */
static unsigned send_burst(struct sender *s, unsigned n, uint64_t ts)
{
    struct opts *o = s->o;
    size_t sz = o->size;
    if (!s->multi && s->train > 1) { /* one flow: one GSO send */
        unsigned k = n < s->train ? n : s->train;
        for (unsigned i = 0; i < k; i++)
            put_hdr(s->buf + i * sz, sz, 0, s->seq[0]++, ts);
        s->iov[0].iov_len = k * sz;
        s->segs[0] = k;
        put_cmsgs(&s->msgs[0].msg_hdr, s->cmsgs, NULL, k, sz);
        flush_msgs(s, s->fds[0], 1);
        return k;
    }
    if (!s->multi) {
        for (unsigned i = 0; i < n; i++) {
            put_hdr(s->iov[i].iov_base, sz, 0, s->seq[0]++, ts);
            s->segs[i] = 1;
        }
        flush_msgs(s, s->fds[0], n);
        return n;
    }
    unsigned pkts = 0, nmsg = 0, cur = 0;
    while (pkts < n) {
        uint32_t flow, addr;
        unsigned sock;
        if (o->mode == M_FLOWS) {
            flow = s->next_flow++;
        } else {
            flow = s->next_flow;
            s->next_flow = s->next_flow + 1 == o->flows ? 0 : s->next_flow + 1;
        }
        flow_addr(s, flow, &addr, &sock);
        if (nmsg && sock != cur) {
            flush_msgs(s, s->fds[cur], nmsg);
            nmsg = 0;
        }
        cur = sock;
        unsigned k = s->train < n - pkts ? s->train : n - pkts;
        uint8_t *p = s->iov[nmsg].iov_base;
        for (unsigned i = 0; i < k; i++)
            put_hdr(p + i * sz, sz, flow, o->mode == M_FLOWS ? 0 : s->seq[flow]++, ts);
        s->iov[nmsg].iov_len = k * sz;
        s->segs[nmsg] = k;
        put_cmsgs(&s->msgs[nmsg].msg_hdr, s->cmsgs + (size_t)nmsg * CMSG_ROOM, &addr, k, sz);
        pkts += k;
        if (++nmsg == o->batch) {
            flush_msgs(s, s->fds[cur], nmsg);
            nmsg = 0;
        }
    }
    if (nmsg)
        flush_msgs(s, s->fds[cur], nmsg);
    return n;
}

static int run_send(struct opts *o)
{
    struct sender s;
    sender_setup(&s, o);
    uint64_t t0 = now_ns();
    uint64_t end = t0 + (uint64_t)(o->duration * 1e9);
    uint64_t limit = o->count ? o->count : UINT64_MAX;
    uint64_t attempted = 0;
    unsigned unit = s.multi ? o->batch * s.train : o->batch; /* datagrams per burst */
    while (!g_stop && attempted < limit) {
        uint64_t t = now_ns();
        if (t >= end)
            break;
        uint64_t left = limit - attempted;
        unsigned n = unit < left ? unit : (unsigned)left;
        if (o->rate > 0) {
            uint64_t due = (uint64_t)((double)(t - t0) * o->rate / 1e9);
            if (due <= attempted) {
                /* sleep until a whole burst is due (or less at the end) */
                uint64_t at = t0 + (uint64_t)((double)(attempted + n) * 1e9 / o->rate);
                sleep_until(at < end ? at : end);
                continue;
            }
            if (due - attempted < n)
                n = (unsigned)(due - attempted);
        }
        attempted += send_burst(&s, n, t); /* failures count too: no spinning */
    }
    double el = (double)(now_ns() - t0) / 1e9;
    printf("mode=%s%s%s sent=%" PRIu64 " bytes=%" PRIu64 " errors=%" PRIu64
           " elapsed=%.6f pps=%.0f size=%zu batch=%u train=%u flows=%" PRIu64 " rate=%.0f\n",
           o->mode == M_FLOWS ? "flows" : "send", o->tag ? " tag=" : "", o->tag ? o->tag : "",
           s.sent, s.bytes, s.errors, el, el > 0 ? (double)s.sent / el : 0.0, o->size, o->batch,
           s.train, o->mode == M_FLOWS ? (uint64_t)s.next_flow : (uint64_t)o->flows, o->rate);
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
    unsigned reports;
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
    printf("mode=%s%s%s report=%u received=%" PRIu64 " bytes=%" PRIu64
           " span=%.6f pps=%.0f flows=%" PRIu64 " gaps=%" PRIu64 " reordered=%" PRIu64
           " late=%" PRIu64 " duplicates=%" PRIu64 " short=%" PRIu64 " echoed=%" PRIu64
           " echo_errors=%" PRIu64 " rcvbuf_drops=%" PRIu64 "\n",
           o->echo ? "echo" : "sink", o->tag ? " tag=" : "", o->tag ? o->tag : "", ++st->reports,
           st->recv_n, st->bytes, span, span > 0 ? (double)(st->recv_n - 1) / span : 0.0,
           st->flows_seen, gaps, st->reord, st->late, st->dup, st->shortn, st->echoed, st->echo_err,
           drops - st->drops0);
    free(st->fs);
    *st = (struct sinkstats){.drops0 = drops, .reports = st->reports};
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
    socklen_t lalen = sizeof(la);
    getsockname(fd, (struct sockaddr *)&la, &lalen); /* the port when -l ADDR:0 */
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
                     .train = 8,
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
    static const struct option lo[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    optind = 2;
    while ((c = getopt_long(argc, argv, "t:l:S:d:n:r:s:b:gL:f:p:ew:T:i:B:k:h", lo, NULL)) != -1) {
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
        case 'L':
            o.train = (unsigned)strtoul(optarg, NULL, 10);
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
            o.rcvbuf = (int)strtol(optarg, NULL, 10);
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
        o.train == 0 || o.sport == 0 || o.sport > 65535 || o.timeout <= 0) {
        fprintf(stderr,
                "udpload: option out of range (-d 0..3600, -s 0..%d, -b 1..%d, "
                "-f 1..%u, -w >= 1)\n",
                MAX_PAYLOAD, MAX_BATCH, MAX_FLOWS);
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
