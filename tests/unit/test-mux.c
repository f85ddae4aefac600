/*
 * test-mux.c - the mux on loopback (lib/mux.c + lib/io/udp.c): send and
 * receive, first-match-wins dispatch, default handler and unmatched counter,
 * IPv6, PKTINFO reply source on a wildcard bind (127.0.0.2 / 127.0.0.3),
 * truncation, zero-length and maximum-size datagrams, multicast sharing (in
 * a private network namespace), port exclusivity (also against another
 * uid), sending from another thread, timers, run/stop, and the error paths
 * of every public call.
 *
 * All traffic stays on loopback or inside a namespace this test creates.
 * Every wait is bounded (pump() gives up after its timeout).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "udpmux.h"

#define BIG_V4 UDPMUX_MAX_DGRAM_V4
#define BIG_V6 UDPMUX_MAX_DGRAM_V6

/* Helpers ----------------------------------------------------------------- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct sockaddr_storage addr_of(const char *text)
{
    struct sockaddr_storage ss;
    socklen_t len;
    assert_int_equal(udpmux_parse_addr(text, &ss, &len), 0);
    return ss;
}

static socklen_t sa_len(const struct sockaddr_storage *ss)
{
    return ss->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static uint16_t port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, ss, sizeof(s4));
        return ntohs(s4.sin_port);
    }
    struct sockaddr_in6 s6;
    memcpy(&s6, ss, sizeof(s6));
    return ntohs(s6.sin6_port);
}

static void set_port(struct sockaddr_storage *ss, uint16_t port)
{
    if (ss->ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, ss, sizeof(s4));
        s4.sin_port = htons(port);
        memcpy(ss, &s4, sizeof(s4));
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, ss, sizeof(s6));
        s6.sin6_port = htons(port);
        memcpy(ss, &s6, sizeof(s6));
    }
}

static const char *fmt(const struct sockaddr_storage *ss, char *buf, size_t len)
{
    udpmux_format_addr((const struct sockaddr *)ss, buf, len);
    return buf;
}

/* "IP:port" text of an endpoint's bound address with the port resolved. */
static uint16_t ep_port(struct udpmux *m, int ep)
{
    struct sockaddr_storage ss;
    socklen_t len = 0;
    assert_int_equal(udpmux_endpoint_addr(m, ep, &ss, &len), 0);
    assert_true(len > 0);
    return port_of(&ss);
}

static struct udpmux *new_mux(const struct udpmux_config *cfg)
{
    struct udpmux *m = NULL;
    assert_int_equal(udpmux_new(&m, cfg), 0);
    assert_non_null(m);
    return m;
}

/* A plain client socket bound to bind_text ("127.0.0.1:0"). */
static int cli_open(const char *bind_text)
{
    struct sockaddr_storage ss = addr_of(bind_text);
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int big = 4 << 20;
    assert_true(fd >= 0);
    if (ss.ss_family == AF_INET6) {
        int one = 1;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
    if (bind(fd, (struct sockaddr *)&ss, sa_len(&ss)) != 0)
        fail_msg("bind %s: %s", bind_text, strerror(errno));
    return fd;
}

static void cli_send(int fd, const void *data, size_t len, const char *dst_ip, uint16_t port)
{
    char text[80];
    struct sockaddr_storage ss;
    ssize_t n;
    snprintf(text, sizeof(text), strchr(dst_ip, ':') ? "[%s]:%u" : "%s:%u", dst_ip, port);
    ss = addr_of(text);
    n = sendto(fd, data, len, 0, (struct sockaddr *)&ss, sa_len(&ss));
    if (n != (ssize_t)len)
        fail_msg("sendto %s (%zu bytes): %s", text, len, strerror(errno));
}

/* Receives one datagram within timeout_ms; returns its length or -1. */
static ssize_t cli_recv(int fd, void *buf, size_t cap, struct sockaddr_storage *from,
                        int timeout_ms)
{
    struct pollfd p = {fd, POLLIN, 0};
    socklen_t fl = sizeof(*from);
    if (poll(&p, 1, timeout_ms) != 1)
        return -1;
    return recvfrom(fd, buf, cap, MSG_DONTWAIT, (struct sockaddr *)from, &fl);
}

/* Runs the mux until *count reaches want or timeout_ms passes. */
static void pump_until(struct udpmux *m, const unsigned *count, unsigned want, int timeout_ms)
{
    uint64_t end = now_ms() + (uint64_t)timeout_ms;
    while (*count < want && now_ms() < end) {
        struct pollfd p = {udpmux_fd(m), POLLIN, 0};
        int r;
        poll(&p, 1, 20);
        r = udpmux_process(m, 0);
        assert_true(r >= 0);
    }
}

/* Runs the mux for ms milliseconds whatever happens. */
static void pump_for(struct udpmux *m, int ms)
{
    unsigned never = 0;
    pump_until(m, &never, 1, ms);
}

static void nop_handler(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    (void)m;
    (void)d;
    (void)arg;
}

static void nop_timer(struct udpmux *m, void *arg)
{
    (void)m;
    (void)arg;
}

static void on_count_timer(struct udpmux *m, void *arg)
{
    (void)m;
    (*(unsigned *)arg)++;
}

static int have_ipv6_loopback(void)
{
    int fd = socket(AF_INET6, SOCK_DGRAM, 0);
    struct sockaddr_in6 s6;
    int ok;
    if (fd < 0)
        return 0;
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_addr = in6addr_loopback;
    ok = bind(fd, (struct sockaddr *)&s6, sizeof(s6)) == 0;
    close(fd);
    return ok;
}

/* What a handler saw. */
struct rec {
    unsigned count;
    int handler;
    int endpoint;
    size_t len;
    uint8_t *data; /* copy of the last datagram (BIG_V6 bytes) */
    struct sockaddr_storage peer, local;
    int data_nonnull;
    int reply; /* echo it back with udpmux_reply */
    int reply_rc;
    int tag;
    int seen[8]; /* per-endpoint counts */
};

static void rec_init(struct rec *r, int reply)
{
    memset(r, 0, sizeof(*r));
    r->data = calloc(1, BIG_V6);
    assert_non_null(r->data);
    r->reply = reply;
    r->handler = -2;
}

static void rec_free(struct rec *r)
{
    free(r->data);
}

static void on_dgram(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct rec *r = arg;
    r->count++;
    r->handler = d->handler;
    r->endpoint = d->endpoint;
    r->len = d->len;
    r->data_nonnull = d->data != NULL;
    if (d->endpoint >= 0 && d->endpoint < 8)
        r->seen[d->endpoint]++;
    if (d->len <= BIG_V6)
        memcpy(r->data, d->data, d->len);
    memset(&r->peer, 0, sizeof(r->peer));
    memset(&r->local, 0, sizeof(r->local));
    memcpy(&r->peer, d->peer, d->peer_len);
    memcpy(&r->local, d->local, d->local_len);
    if (r->reply)
        r->reply_rc = udpmux_reply(m, d, d->data, d->len);
}

/* Send and receive ---------------------------------------------------------- */

static void test_send_receive(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r;
    struct udpmux_stats st;
    struct sockaddr_storage from, cli;
    socklen_t cl = sizeof(cli);
    char buf[64], a[64];
    int ep, id, c;
    uint16_t port;
    (void)state;
    rec_init(&r, 1);
    ep = udpmux_bind(m, "127.0.0.1:0", 0);
    assert_int_equal(ep, 0);
    port = ep_port(m, ep);
    assert_true(port > 0);
    assert_true(udpmux_endpoint_fd(m, ep) >= 0);
    id = udpmux_add_handler(m, "echo", "any", on_dgram, &r, NULL, 0);
    assert_int_equal(id, 0);
    c = cli_open("127.0.0.1:0");
    getsockname(c, (struct sockaddr *)&cli, &cl);
    cli_send(c, "hello", 5, "127.0.0.1", port);
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.len, 5);
    assert_memory_equal(r.data, "hello", 5);
    assert_int_equal(r.handler, id);
    assert_int_equal(r.endpoint, ep);
    assert_int_equal(r.reply_rc, 0);
    /* peer is the client, local is the address it sent to */
    assert_string_equal(fmt(&r.peer, buf, sizeof(buf)), fmt(&cli, a, sizeof(a)));
    snprintf(a, sizeof(a), "127.0.0.1:%u", port);
    assert_string_equal(fmt(&r.local, buf, sizeof(buf)), a);
    assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(port_of(&from), port);
    /* client role: the mux sends first, from its own port */
    {
        struct udpmux_msg msg;
        memset(&msg, 0, sizeof(msg));
        msg.data = "req";
        msg.len = 3;
        msg.peer = (struct sockaddr *)&cli;
        msg.peer_len = cl;
        msg.endpoint = -1;
        assert_int_equal(udpmux_send(m, &msg), 0);
        assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 3);
        assert_memory_equal(buf, "req", 3);
        assert_int_equal(port_of(&from), port);
    }
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_datagrams, 1);
    assert_int_equal(st.rx_bytes, 5);
    assert_int_equal(st.tx_datagrams, 2);
    assert_int_equal(st.tx_bytes, 8);
    assert_int_equal(st.rx_unmatched, 0);
    assert_int_equal(udpmux_handler_count(m, id), 1);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

static void test_send_batch(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct udpmux_msg msgs[100];
    struct sockaddr_storage cli, from;
    socklen_t cl = sizeof(cli);
    char payload[100][8], buf[16];
    int c, got = 0;
    (void)state;
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    c = cli_open("127.0.0.1:0");
    getsockname(c, (struct sockaddr *)&cli, &cl);
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < 100; i++) {
        snprintf(payload[i], sizeof(payload[i]), "m%03d", i);
        msgs[i].data = payload[i];
        msgs[i].len = 4;
        msgs[i].peer = (struct sockaddr *)&cli;
        msgs[i].peer_len = cl;
        msgs[i].endpoint = -1;
    }
    /* more than one sendmmsg chunk */
    assert_int_equal(udpmux_send_batch(m, msgs, 100), 100);
    for (int i = 0; i < 100; i++) {
        if (cli_recv(c, buf, sizeof(buf), &from, 2000) != 4)
            break;
        assert_memory_equal(buf, payload[i], 4);
        got++;
    }
    assert_int_equal(got, 100);
    /* a bad message stops the batch: the good prefix is sent */
    msgs[2].peer = NULL;
    assert_int_equal(udpmux_send_batch(m, msgs, 5), 2);
    /* a bad first message is an error */
    assert_int_equal(udpmux_send_batch(m, &msgs[2], 3), -EINVAL);
    close(c);
    udpmux_free(m);
}

/* A batch whose messages go out of different endpoints (IPv4 and IPv6) is
 * split into one sendmmsg per run of the same endpoint, in order. */
static void test_send_batch_mixed_endpoints(void **state)
{
    struct udpmux *m;
    struct udpmux_msg msgs[6];
    struct sockaddr_storage c4a, c6a, from;
    socklen_t l4 = sizeof(c4a), l6 = sizeof(c6a);
    char buf[16];
    int c4, c6;
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    m = new_mux(NULL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    assert_int_equal(udpmux_bind(m, "[::1]:0", 0), 1);
    c4 = cli_open("127.0.0.1:0");
    c6 = cli_open("[::1]:0");
    getsockname(c4, (struct sockaddr *)&c4a, &l4);
    getsockname(c6, (struct sockaddr *)&c6a, &l6);
    memset(msgs, 0, sizeof(msgs));
    for (int i = 0; i < 6; i++) {
        static const char *txt[] = {"a0", "a1", "b2", "a3", "b4", "b5"};
        int six = txt[i][0] == 'b';
        msgs[i].data = txt[i];
        msgs[i].len = 2;
        msgs[i].peer = (struct sockaddr *)(six ? &c6a : &c4a);
        msgs[i].peer_len = six ? l6 : l4;
        msgs[i].endpoint = -1;
    }
    assert_int_equal(udpmux_send_batch(m, msgs, 6), 6);
    for (int i = 0; i < 3; i++) {
        static const char *want4[] = {"a0", "a1", "a3"}, *want6[] = {"b2", "b4", "b5"};
        assert_int_equal(cli_recv(c4, buf, sizeof(buf), &from, 2000), 2);
        assert_memory_equal(buf, want4[i], 2);
        assert_int_equal(port_of(&from), ep_port(m, 0));
        assert_int_equal(cli_recv(c6, buf, sizeof(buf), &from, 2000), 2);
        assert_memory_equal(buf, want6[i], 2);
        assert_int_equal(port_of(&from), ep_port(m, 1));
    }
    /* a source address of the wrong family for the endpoint */
    {
        struct sockaddr_storage src6 = addr_of("[::1]:0");
        msgs[0].local = (struct sockaddr *)&src6;
        msgs[0].local_len = sizeof(struct sockaddr_in6);
        msgs[0].endpoint = 0;
        assert_int_equal(udpmux_send(m, &msgs[0]), -EAFNOSUPPORT);
    }
    close(c4);
    close(c6);
    udpmux_free(m);
}

/* Datagrams the kernel dropped for a full receive buffer show up in
 * rx_kernel_drops (SO_RXQ_OVFL) once the loop reads again. */
static void test_kernel_drops_counted(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct rec r;
    struct udpmux_stats st;
    uint8_t d[1000];
    int c;
    uint16_t port;
    (void)state;
    udpmux_config_init(&cfg);
    cfg.rcvbuf = 4096; /* a few datagrams at most */
    m = new_mux(&cfg);
    rec_init(&r, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "all", "any", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    memset(d, 7, sizeof(d));
    for (int i = 0; i < 200; i++)
        cli_send(c, d, sizeof(d), "127.0.0.1", port);
    pump_for(m, 100);
    /* a datagram after the drops carries the new drop count */
    cli_send(c, d, 1, "127.0.0.1", port);
    pump_for(m, 100);
    udpmux_get_stats(m, &st);
    assert_true(r.count > 0 && r.count < 200);
    assert_true(st.rx_kernel_drops > 0);
    assert_int_equal(st.rx_kernel_drops + st.rx_datagrams, 201);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* Dispatch ------------------------------------------------------------------ */

struct order_rec {
    unsigned count;
    int last_tag;
    int last_handler;
};

static void on_tag(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    static struct order_rec *sink;
    (void)m;
    sink = arg;
    sink->count++;
    sink->last_handler = d->handler;
}

struct tagged {
    struct order_rec *rec;
    int tag;
};

static void on_tagged(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct tagged *t = arg;
    (void)m;
    t->rec->count++;
    t->rec->last_tag = t->tag;
    t->rec->last_handler = d->handler;
}

static void test_dispatch_first_match_wins(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct order_rec rec = {0, -1, -2};
    struct tagged t[4] = {{&rec, 0}, {&rec, 1}, {&rec, 2}, {&rec, 3}};
    struct udpmux_stats st;
    int h[4], c;
    uint16_t port;
    static const uint8_t d0102[] = {0x01, 0x02}, d02[] = {0x02}, d0103[] = {0x01, 0x03, 0x00};
    (void)state;
    (void)on_tag;
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    h[0] = udpmux_add_handler(m, "one", "prefix 01", on_tagged, &t[0], NULL, 0);
    h[1] = udpmux_add_handler(m, "one-two", "prefix 0102 and len 2", on_tagged, &t[1], NULL, 0);
    h[2] = udpmux_add_handler(m, "short", "len ..1", on_tagged, &t[2], NULL, 0);
    h[3] = udpmux_add_handler(m, "three", "bytes 1 03", on_tagged, &t[3], NULL, 0);
    assert_int_equal(h[0], 0);
    assert_int_equal(h[1], 1);
    assert_int_equal(h[2], 2);
    assert_int_equal(h[3], 3);
    c = cli_open("127.0.0.1:0");

    /* matches 0 and 1: the first registered wins */
    cli_send(c, d0102, sizeof(d0102), "127.0.0.1", port);
    pump_until(m, &rec.count, 1, 2000);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.last_tag, 0);
    assert_int_equal(rec.last_handler, h[0]);
    /* matches 0 and 3: 0 */
    cli_send(c, d0103, sizeof(d0103), "127.0.0.1", port);
    pump_until(m, &rec.count, 2, 2000);
    assert_int_equal(rec.last_tag, 0);
    /* matches only 2 */
    cli_send(c, d02, sizeof(d02), "127.0.0.1", port);
    pump_until(m, &rec.count, 3, 2000);
    assert_int_equal(rec.last_tag, 2);
    /* remove 0: now 1 wins for 0102, 3 for 010300 */
    assert_int_equal(udpmux_remove_handler(m, h[0]), 0);
    cli_send(c, d0102, sizeof(d0102), "127.0.0.1", port);
    pump_until(m, &rec.count, 4, 2000);
    assert_int_equal(rec.last_tag, 1);
    assert_int_equal(rec.last_handler, h[1]);
    cli_send(c, d0103, sizeof(d0103), "127.0.0.1", port);
    pump_until(m, &rec.count, 5, 2000);
    assert_int_equal(rec.last_tag, 3);
    /* a new handler goes last, after the existing ones */
    {
        int h4 = udpmux_add_handler(m, "again", "prefix 01", on_tagged, &t[0], NULL, 0);
        assert_true(h4 > h[3]);
        cli_send(c, d0102, sizeof(d0102), "127.0.0.1", port);
        pump_until(m, &rec.count, 6, 2000);
        assert_int_equal(rec.last_tag, 1);
    }
    assert_int_equal(udpmux_handler_count(m, h[1]), 2);
    assert_int_equal(udpmux_handler_count(m, h[2]), 1);
    assert_int_equal(udpmux_handler_count(m, h[3]), 1);
    assert_int_equal(udpmux_handler_count(m, h[0]), -ENOENT);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_datagrams, 6);
    assert_int_equal(st.rx_unmatched, 0);
    close(c);
    udpmux_free(m);
}

static void test_default_and_unmatched(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec hit, def;
    struct udpmux_stats st;
    int c, id;
    uint16_t port;
    (void)state;
    rec_init(&hit, 0);
    rec_init(&def, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    id = udpmux_add_handler(m, "a", "prefix 61", on_dgram, &hit, NULL, 0);
    c = cli_open("127.0.0.1:0");
    /* no default handler: dropped and counted */
    cli_send(c, "b1", 2, "127.0.0.1", port);
    cli_send(c, "b2", 2, "127.0.0.1", port);
    cli_send(c, "a1", 2, "127.0.0.1", port);
    pump_until(m, &hit.count, 1, 2000);
    pump_for(m, 50);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_datagrams, 3);
    assert_int_equal(st.rx_unmatched, 2);
    assert_int_equal(st.rx_default, 0);
    assert_int_equal(hit.count, 1);
    assert_int_equal(hit.handler, id);
    /* with a default handler */
    udpmux_set_default(m, on_dgram, &def);
    cli_send(c, "b3", 2, "127.0.0.1", port);
    pump_until(m, &def.count, 1, 2000);
    assert_int_equal(def.count, 1);
    assert_int_equal(def.handler, -1);
    assert_memory_equal(def.data, "b3", 2);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_default, 1);
    assert_int_equal(st.rx_unmatched, 2);
    /* back to dropping */
    udpmux_set_default(m, NULL, NULL);
    cli_send(c, "b4", 2, "127.0.0.1", port);
    pump_for(m, 100);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_unmatched, 3);
    assert_int_equal(def.count, 1);
    close(c);
    udpmux_free(m);
    rec_free(&hit);
    rec_free(&def);
}

/* A handler that removes itself and re-enters the loop. */
struct self_rm {
    unsigned count;
    int id;
    int process_rc;
    int remove_rc;
};

static void on_self_remove(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct self_rm *s = arg;
    (void)d;
    s->count++;
    s->process_rc = udpmux_process(m, 0);
    s->remove_rc = udpmux_remove_handler(m, s->id);
}

static void test_callback_reentry(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct self_rm s = {0, -1, 0, 0};
    struct rec def;
    int c;
    uint16_t port;
    (void)state;
    rec_init(&def, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    s.id = udpmux_add_handler(m, "once", "any", on_self_remove, &s, NULL, 0);
    udpmux_set_default(m, on_dgram, &def);
    c = cli_open("127.0.0.1:0");
    cli_send(c, "x", 1, "127.0.0.1", port);
    cli_send(c, "y", 1, "127.0.0.1", port);
    pump_until(m, &def.count, 1, 2000);
    assert_int_equal(s.count, 1);
    assert_int_equal(s.process_rc, -EBUSY);
    assert_int_equal(s.remove_rc, 0);
    assert_int_equal(def.count, 1);
    assert_memory_equal(def.data, "y", 1);
    close(c);
    udpmux_free(m);
    rec_free(&def);
}

/* IPv6 ---------------------------------------------------------------------- */

static void test_ipv6(void **state)
{
    struct udpmux *m;
    struct rec r;
    struct sockaddr_storage from;
    uint8_t *big, *back;
    char buf[64];
    int c, ep;
    uint16_t port;
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    m = new_mux(NULL);
    rec_init(&r, 1);
    ep = udpmux_bind(m, "[::1]:0", 0);
    assert_true(ep >= 0);
    port = ep_port(m, ep);
    udpmux_add_handler(m, "echo", "from ::1/128", on_dgram, &r, NULL, 0);
    c = cli_open("[::1]:0");
    cli_send(c, "six", 3, "::1", port);
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.peer.ss_family, AF_INET6);
    snprintf(buf, sizeof(buf), "[::1]:%u", port);
    {
        char l[64];
        assert_string_equal(fmt(&r.local, l, sizeof(l)), buf);
    }
    assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 3);
    assert_memory_equal(buf, "six", 3);
    assert_int_equal(from.ss_family, AF_INET6);
    assert_int_equal(port_of(&from), port);
    /* the largest IPv6 payload, byte-exact both ways */
    big = malloc(BIG_V6);
    back = malloc(BIG_V6 + 1);
    for (size_t i = 0; i < BIG_V6; i++)
        big[i] = (uint8_t)(i * 7 + 3);
    cli_send(c, big, BIG_V6, "::1", port);
    pump_until(m, &r.count, 2, 2000);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.len, BIG_V6);
    assert_memory_equal(r.data, big, BIG_V6);
    assert_int_equal(r.reply_rc, 0);
    assert_int_equal(cli_recv(c, back, BIG_V6 + 1, &from, 2000), BIG_V6);
    assert_memory_equal(back, big, BIG_V6);
    /* an IPv4 peer cannot be reached from a v6-only endpoint */
    {
        struct sockaddr_storage p4 = addr_of("127.0.0.1:9");
        struct udpmux_msg msg;
        memset(&msg, 0, sizeof(msg));
        msg.data = "x";
        msg.len = 1;
        msg.peer = (struct sockaddr *)&p4;
        msg.peer_len = sizeof(struct sockaddr_in);
        msg.endpoint = -1;
        assert_int_equal(udpmux_send(m, &msg), -EAFNOSUPPORT);
    }
    free(big);
    free(back);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* PKTINFO: replies leave from the address the request was sent to ---------- */

static void expect_reply_source(struct udpmux *m, struct rec *r, int c, const char *dst_ip,
                                uint16_t port, const char *want_local)
{
    struct sockaddr_storage from;
    char buf[64], want[64], got[64];
    unsigned before = r->count;
    cli_send(c, dst_ip, strlen(dst_ip), dst_ip, port);
    pump_until(m, &r->count, before + 1, 2000);
    assert_int_equal(r->count, before + 1);
    assert_int_equal(r->reply_rc, 0);
    snprintf(want, sizeof(want), strchr(want_local, ':') ? "[%s]:%u" : "%s:%u", want_local, port);
    /* the handler saw the destination address... */
    assert_string_equal(fmt(&r->local, got, sizeof(got)), want);
    /* ...and the reply came from it */
    assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), (ssize_t)strlen(dst_ip));
    snprintf(want, sizeof(want), "%s:%u", dst_ip, port);
    assert_string_equal(fmt(&from, got, sizeof(got)), want);
}

static void test_pktinfo_reply_source(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r;
    int c;
    uint16_t port;
    (void)state;
    rec_init(&r, 1);
    assert_int_equal(udpmux_bind(m, "0.0.0.0:0", 0), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "echo", "any", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    expect_reply_source(m, &r, c, "127.0.0.2", port, "127.0.0.2");
    expect_reply_source(m, &r, c, "127.0.0.3", port, "127.0.0.3");
    expect_reply_source(m, &r, c, "127.0.0.1", port, "127.0.0.1");
    expect_reply_source(m, &r, c, "127.0.0.2", port, "127.0.0.2");
    /* client role with a chosen source address */
    {
        struct sockaddr_storage cli, src = addr_of("127.0.0.3:0"), from;
        socklen_t cl = sizeof(cli);
        struct udpmux_msg msg;
        char buf[16], got[64], want[64];
        getsockname(c, (struct sockaddr *)&cli, &cl);
        memset(&msg, 0, sizeof(msg));
        msg.data = "src";
        msg.len = 3;
        msg.peer = (struct sockaddr *)&cli;
        msg.peer_len = cl;
        msg.local = (struct sockaddr *)&src;
        msg.local_len = sizeof(struct sockaddr_in);
        msg.endpoint = 0;
        assert_int_equal(udpmux_send(m, &msg), 0);
        assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 3);
        snprintf(want, sizeof(want), "127.0.0.3:%u", port);
        assert_string_equal(fmt(&from, got, sizeof(got)), want);
    }
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

static void test_pktinfo_dualstack(void **state)
{
    struct udpmux *m;
    struct rec r;
    int c;
    uint16_t port;
    (void)state;
    if (!have_ipv6_loopback())
        skip();
    m = new_mux(NULL);
    rec_init(&r, 1);
    assert_int_equal(udpmux_bind(m, "[::]:0", UDPMUX_BIND_DUALSTACK), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "echo", "from 127.0.0.0/8", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    /* IPv4 through a dual-stack socket: mapped addresses, right source */
    expect_reply_source(m, &r, c, "127.0.0.2", port, "::ffff:127.0.0.2");
    expect_reply_source(m, &r, c, "127.0.0.3", port, "::ffff:127.0.0.3");
    assert_int_equal(r.peer.ss_family, AF_INET6);
    /* sending to a plain IPv4 peer picks the dual-stack endpoint */
    {
        struct sockaddr_storage cli, from;
        socklen_t cl = sizeof(cli);
        struct udpmux_msg msg;
        char buf[8];
        getsockname(c, (struct sockaddr *)&cli, &cl);
        memset(&msg, 0, sizeof(msg));
        msg.data = "v4";
        msg.len = 2;
        msg.peer = (struct sockaddr *)&cli;
        msg.peer_len = cl;
        msg.endpoint = -1;
        assert_int_equal(udpmux_send(m, &msg), 0);
        assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 2);
        assert_int_equal(port_of(&from), port);
    }
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* Sizes --------------------------------------------------------------------- */

static void test_truncation(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct rec r;
    struct udpmux_stats st;
    uint8_t d[200];
    int c;
    uint16_t port;
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_dgram = 100;
    m = new_mux(&cfg);
    rec_init(&r, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "all", "any", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    memset(d, 0x42, sizeof(d));
    cli_send(c, d, 101, "127.0.0.1", port);
    cli_send(c, d, 200, "127.0.0.1", port);
    pump_for(m, 100);
    assert_int_equal(r.count, 0); /* never delivered, not even in part */
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_truncated, 2);
    assert_int_equal(st.rx_datagrams, 0);
    /* exactly max_dgram is whole */
    cli_send(c, d, 100, "127.0.0.1", port);
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.len, 100);
    assert_memory_equal(r.data, d, 100);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.rx_truncated, 2);
    assert_int_equal(st.rx_datagrams, 1);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

static void test_zero_length(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r, other;
    struct sockaddr_storage from;
    char buf[8];
    int c;
    uint16_t port;
    (void)state;
    rec_init(&r, 1);
    rec_init(&other, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    /* a rule that needs a first byte must not see the empty datagram */
    udpmux_add_handler(m, "needs-byte", "not prefix 00", on_dgram, &other, NULL, 0);
    udpmux_remove_handler(m, 0);
    udpmux_add_handler(m, "prefix", "prefix 00", on_dgram, &other, NULL, 0);
    udpmux_add_handler(m, "empty", "len 0", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    cli_send(c, "", 0, "127.0.0.1", port);
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.len, 0);
    assert_true(r.data_nonnull);
    assert_int_equal(other.count, 0);
    assert_int_equal(r.reply_rc, 0);
    assert_int_equal(cli_recv(c, buf, sizeof(buf), &from, 2000), 0);
    assert_int_equal(port_of(&from), port);
    close(c);
    udpmux_free(m);
    rec_free(&r);
    rec_free(&other);
}

static void test_max_ipv4_datagram(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r;
    struct sockaddr_storage from;
    struct udpmux_stats st;
    uint8_t *big = malloc(BIG_V4 + 1), *back = malloc(BIG_V4 + 1);
    int c;
    uint16_t port;
    (void)state;
    assert_non_null(big);
    assert_non_null(back);
    rec_init(&r, 1);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "echo", "len 65507", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    srand(42);
    for (size_t i = 0; i < BIG_V4 + 1; i++)
        big[i] = (uint8_t)rand();
    cli_send(c, big, BIG_V4, "127.0.0.1", port);
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    assert_int_equal(r.len, BIG_V4);
    assert_memory_equal(r.data, big, BIG_V4);
    assert_int_equal(r.reply_rc, 0);
    assert_int_equal(cli_recv(c, back, BIG_V4 + 1, &from, 2000), BIG_V4);
    assert_memory_equal(back, big, BIG_V4);
    /* one byte more cannot be sent over IPv4: -EMSGSIZE, counted */
    {
        struct sockaddr_storage cli;
        socklen_t cl = sizeof(cli);
        struct udpmux_msg msg;
        getsockname(c, (struct sockaddr *)&cli, &cl);
        memset(&msg, 0, sizeof(msg));
        msg.data = big;
        msg.len = BIG_V4 + 1;
        msg.peer = (struct sockaddr *)&cli;
        msg.peer_len = cl;
        assert_int_equal(udpmux_send(m, &msg), -EMSGSIZE);
        udpmux_get_stats(m, &st);
        assert_int_equal(st.tx_errors, 1);
    }
    free(big);
    free(back);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* Fair share of the budget across endpoints --------------------------------- */

static void test_budget_fairness(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r;
    int c, n;
    uint16_t p0, p1;
    (void)state;
    rec_init(&r, 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.2:0", 0), 1);
    p0 = ep_port(m, 0);
    p1 = ep_port(m, 1);
    udpmux_add_handler(m, "all", "any", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    for (int i = 0; i < 10; i++) {
        cli_send(c, "a", 1, "127.0.0.1", p0);
        cli_send(c, "b", 1, "127.0.0.2", p1);
    }
    usleep(50000);
    n = udpmux_process(m, 4);
    assert_int_equal(n, 4);
    assert_int_equal(r.seen[0], 2);
    assert_int_equal(r.seen[1], 2);
    pump_until(m, &r.count, 20, 2000);
    assert_int_equal(r.seen[0], 10);
    assert_int_equal(r.seen[1], 10);
    /* nothing pending: 0 */
    assert_int_equal(udpmux_process(m, 0), 0);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* Multicast sharing, in a private network namespace -------------------------- */

#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "child: %s:%d: check failed: %s (errno %s)\n", __FILE__, __LINE__,     \
                    #cond, strerror(errno));                                                       \
            _exit(1);                                                                              \
        }                                                                                          \
    } while (0)

static int netns_lo_multicast(void)
{
    struct ifreq ifr;
    struct rtentry rt;
    struct sockaddr_in *sin;
    int s;
    if (unshare(CLONE_NEWNET) != 0)
        return -errno;
    s = socket(AF_INET, SOCK_DGRAM, 0);
    if (s < 0)
        return -errno;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    if (ioctl(s, SIOCGIFFLAGS, &ifr) != 0)
        goto fail;
    ifr.ifr_flags |= IFF_UP | IFF_MULTICAST;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) != 0)
        goto fail;
    /* ip route add 224.0.0.0/4 dev lo */
    memset(&rt, 0, sizeof(rt));
    sin = (struct sockaddr_in *)(void *)&rt.rt_dst;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0xe0000000);
    sin = (struct sockaddr_in *)(void *)&rt.rt_genmask;
    sin->sin_family = AF_INET;
    sin->sin_addr.s_addr = htonl(0xf0000000);
    rt.rt_flags = RTF_UP;
    rt.rt_dev = (char *)"lo";
    if (ioctl(s, SIOCADDRT, &rt) != 0)
        goto fail;
    close(s);
    return 0;
fail:
    s = -errno + 0 * close(s);
    return s;
}

struct mrec {
    unsigned count;
    char local[64];
    char data[32];
};

static void on_mcast(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct mrec *r = arg;
    (void)m;
    r->count++;
    udpmux_format_addr(d->local, r->local, sizeof(r->local));
    memcpy(r->data, d->data, d->len < sizeof(r->data) - 1 ? d->len : sizeof(r->data) - 1);
}

static void mcast_pump(struct udpmux *a, struct udpmux *b, struct mrec *ra, struct mrec *rb,
                       unsigned want)
{
    uint64_t end = now_ms() + 3000;
    while ((ra->count < want || rb->count < want) && now_ms() < end) {
        struct pollfd p[2] = {{udpmux_fd(a), POLLIN, 0}, {udpmux_fd(b), POLLIN, 0}};
        poll(p, 2, 20);
        CHILD_CHECK(udpmux_process(a, 0) >= 0);
        CHILD_CHECK(udpmux_process(b, 0) >= 0);
    }
}

static void mcast_child(void)
{
    struct udpmux *a, *b, *x;
    struct mrec ra, rb, rx;
    struct sockaddr_storage grp;
    char text[64], want[64];
    uint16_t port;
    int s, ea, eb, r;

    r = netns_lo_multicast();
    if (r == -EPERM || r == -EACCES)
        _exit(78);
    errno = -r;
    CHILD_CHECK(r == 0);
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    memset(&rx, 0, sizeof(rx));
    CHILD_CHECK(udpmux_new(&a, NULL) == 0);
    CHILD_CHECK(udpmux_new(&b, NULL) == 0);
    CHILD_CHECK(udpmux_new(&x, NULL) == 0);
    /* two listeners share the port through UDPMUX_BIND_MULTICAST */
    ea = udpmux_bind(a, "0.0.0.0:0", UDPMUX_BIND_MULTICAST);
    CHILD_CHECK(ea == 0);
    port = ep_port(a, ea);
    snprintf(text, sizeof(text), "0.0.0.0:%u", port);
    eb = udpmux_bind(b, text, UDPMUX_BIND_MULTICAST);
    CHILD_CHECK(eb == 0);
    /* a listener that did not opt in still cannot take the port */
    CHILD_CHECK(udpmux_bind(x, text, 0) == -EADDRINUSE);
    CHILD_CHECK(udpmux_join(a, ea, "239.1.2.3", "lo") == 0);
    CHILD_CHECK(udpmux_join(b, eb, "239.1.2.3", NULL) == 0);
    CHILD_CHECK(udpmux_add_handler(a, "m", "any", on_mcast, &ra, NULL, 0) == 0);
    CHILD_CHECK(udpmux_add_handler(b, "m", "any", on_mcast, &rb, NULL, 0) == 0);
    /* a third mux binds the group address itself */
    snprintf(text, sizeof(text), "239.1.2.3:%u", port);
    CHILD_CHECK(udpmux_bind(x, text, UDPMUX_BIND_MULTICAST) == 0);
    CHILD_CHECK(udpmux_join(x, 0, "239.1.2.3", "lo") == 0);
    CHILD_CHECK(udpmux_add_handler(x, "m", "any", on_mcast, &rx, NULL, 0) == 0);

    s = socket(AF_INET, SOCK_DGRAM, 0);
    CHILD_CHECK(s >= 0);
    grp = addr_of(text);
    CHILD_CHECK(sendto(s, "to-group", 8, 0, (struct sockaddr *)&grp, sizeof(struct sockaddr_in)) ==
                8);
    mcast_pump(a, b, &ra, &rb, 1);
    CHILD_CHECK(ra.count == 1);
    CHILD_CHECK(rb.count == 1);
    CHILD_CHECK(memcmp(ra.data, "to-group", 8) == 0);
    CHILD_CHECK(memcmp(rb.data, "to-group", 8) == 0);
    /* PKTINFO reports the group as the local address */
    snprintf(want, sizeof(want), "239.1.2.3:%u", port);
    CHILD_CHECK(strcmp(ra.local, want) == 0);
    CHILD_CHECK(strcmp(rb.local, want) == 0);
    {
        uint64_t end = now_ms() + 2000;
        while (rx.count < 1 && now_ms() < end) {
            struct pollfd p = {udpmux_fd(x), POLLIN, 0};
            poll(&p, 1, 20);
            CHILD_CHECK(udpmux_process(x, 0) >= 0);
        }
        CHILD_CHECK(rx.count == 1);
    }
    /* a group nobody joined is not delivered (IP_MULTICAST_ALL=0) */
    grp = addr_of("239.9.9.9:0");
    set_port(&grp, port);
    CHILD_CHECK(sendto(s, "other", 5, 0, (struct sockaddr *)&grp, sizeof(struct sockaddr_in)) == 5);
    mcast_pump(a, b, &ra, &rb, 2);
    CHILD_CHECK(ra.count == 1);
    CHILD_CHECK(rb.count == 1);
    close(s);
    udpmux_free(a);
    udpmux_free(b);
    udpmux_free(x);
    _exit(0);
}

/* IPv6 reply source on a wildcard bind: two extra addresses on lo in a
 * private namespace (fd00::2 and fd00::3), a request to each, and the reply
 * must come from the address the request went to. */
struct in6_ifreq_compat {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

static void v6_child(void)
{
    struct udpmux *m;
    struct rec r;
    struct ifreq ifr;
    int s, c, one = 1;
    uint16_t port;
    static const char *addrs[] = {"fd00::2", "fd00::3"};

    if (unshare(CLONE_NEWNET) != 0)
        _exit(errno == EPERM ? 78 : 1);
    s = socket(AF_INET6, SOCK_DGRAM, 0);
    if (s < 0)
        _exit(77); /* no IPv6 in this kernel */
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
    CHILD_CHECK(ioctl(s, SIOCGIFFLAGS, &ifr) == 0);
    ifr.ifr_flags |= IFF_UP;
    CHILD_CHECK(ioctl(s, SIOCSIFFLAGS, &ifr) == 0);
    CHILD_CHECK(ioctl(s, SIOCGIFINDEX, &ifr) == 0);
    /* no duplicate address detection: the addresses are usable at once */
    for (int i = 0; i < 2; i++) {
        static const char *knobs[] = {"/proc/sys/net/ipv6/conf/lo/accept_dad",
                                      "/proc/sys/net/ipv6/conf/lo/dad_transmits"};
        FILE *f = fopen(knobs[i], "we");
        if (f) {
            fputs("0\n", f);
            fclose(f);
        }
    }
    for (int i = 0; i < 2; i++) {
        struct in6_ifreq_compat req;
        memset(&req, 0, sizeof(req));
        CHILD_CHECK(inet_pton(AF_INET6, addrs[i], &req.addr) == 1);
        req.prefixlen = 128;
        req.ifindex = ifr.ifr_ifindex;
        CHILD_CHECK(ioctl(s, SIOCSIFADDR, &req) == 0);
    }
    close(s);
    /* and in case DAD ran anyway: wait until neither is tentative (0x40) */
    for (uint64_t end = now_ms() + 3000; now_ms() < end; usleep(20000)) {
        char line[256];
        int tentative = 0, found = 0;
        FILE *f = fopen("/proc/net/if_inet6", "re");
        CHILD_CHECK(f != NULL);
        while (fgets(line, sizeof(line), f)) {
            unsigned flags = 0;
            char addr[40];
            if (sscanf(line, "%39s %*x %*x %*x %x", addr, &flags) != 2 ||
                strncmp(addr, "fd00", 4) != 0)
                continue;
            found++;
            tentative |= (flags & 0x40) != 0;
        }
        fclose(f);
        if (found == 2 && !tentative)
            break;
    }
    rec_init(&r, 1);
    CHILD_CHECK(udpmux_new(&m, NULL) == 0);
    CHILD_CHECK(udpmux_bind(m, "[::]:0", 0) == 0);
    port = ep_port(m, 0);
    CHILD_CHECK(udpmux_add_handler(m, "echo", "any", on_dgram, &r, NULL, 0) == 0);
    c = socket(AF_INET6, SOCK_DGRAM, 0);
    CHILD_CHECK(c >= 0);
    setsockopt(c, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    for (int i = 0; i < 4; i++) {
        char text[64], got[64], buf[16];
        struct sockaddr_storage dst, from;
        socklen_t fl = sizeof(from);
        struct pollfd p = {c, POLLIN, 0};
        uint64_t end = now_ms() + 2000;
        unsigned before = r.count;
        snprintf(text, sizeof(text), "[%s]:%u", addrs[i % 2], port);
        CHILD_CHECK(udpmux_parse_addr(text, &dst, NULL) == 0);
        CHILD_CHECK(sendto(c, "v6", 2, 0, (struct sockaddr *)&dst, sizeof(struct sockaddr_in6)) ==
                    2);
        while (r.count == before && now_ms() < end) {
            struct pollfd mp = {udpmux_fd(m), POLLIN, 0};
            poll(&mp, 1, 20);
            CHILD_CHECK(udpmux_process(m, 0) >= 0);
        }
        CHILD_CHECK(r.count == before + 1);
        CHILD_CHECK(r.reply_rc == 0);
        udpmux_format_addr((struct sockaddr *)&r.local, got, sizeof(got));
        CHILD_CHECK(strcmp(got, text) == 0);
        CHILD_CHECK(poll(&p, 1, 2000) == 1);
        CHILD_CHECK(recvfrom(c, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl) == 2);
        udpmux_format_addr((struct sockaddr *)&from, got, sizeof(got));
        if (strcmp(got, text) != 0) {
            fprintf(stderr, "child: reply from %s, want %s\n", got, text);
            _exit(1);
        }
    }
    close(c);
    udpmux_free(m);
    rec_free(&r);
    _exit(0);
}

/* Children re-execute this binary (fork + exec of /proc/self/exe with a
 * --child-* argument) rather than running in a forked copy: a fresh process
 * has no cmocka state, and under valgrind the child runs natively, so the
 * parent's outstanding allocations are not reported at the child's exit. */
static char self_exe[4096];

static int run_child(const char *what, const char *arg)
{
    pid_t pid;
    int status;
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char w[64], a[256];
        char *const argv[] = {self_exe, w, arg ? a : NULL, NULL};
        snprintf(w, sizeof(w), "%s", what);
        snprintf(a, sizeof(a), "%s", arg ? arg : "");
        execv(self_exe, argv);
        _exit(127);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static void test_multicast_sharing(void **state)
{
    int rc;
    (void)state;
    rc = run_child("--child-multicast", NULL);
    /* as root this must run: not being allowed a namespace is a failure */
    if (rc == 78)
        fail_msg("root, but unshare(CLONE_NEWNET) is not permitted here");
    assert_int_equal(rc, 0);
}

static void test_pktinfo_reply_source_v6(void **state)
{
    int rc;
    (void)state;
    rc = run_child("--child-v6-pktinfo", NULL);
    if (rc == 78)
        fail_msg("root, but unshare(CLONE_NEWNET) is not permitted here");
    if (rc == 77) {
        print_message("this kernel has no IPv6: skipped\n");
        skip();
    }
    assert_int_equal(rc, 0);
}

/* A handler added from inside a callback takes effect from the next
 * datagram, after the handlers that were there. */
struct adder {
    unsigned count;
    struct rec *late;
    int added;
};

static void on_adder(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct adder *a = arg;
    (void)d;
    a->count++;
    if (!a->added)
        a->added = udpmux_add_handler(m, "late", "prefix 6c", on_dgram, a->late, NULL, 0);
}

static void test_add_handler_in_callback(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec late;
    struct adder a;
    int c;
    uint16_t port;
    (void)state;
    rec_init(&late, 0);
    memset(&a, 0, sizeof(a));
    a.late = &late;
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    udpmux_add_handler(m, "adder", "prefix 61", on_adder, &a, NULL, 0);
    c = cli_open("127.0.0.1:0");
    cli_send(c, "a", 1, "127.0.0.1", port);
    cli_send(c, "l", 1, "127.0.0.1", port); /* same batch as "a" */
    pump_until(m, &late.count, 1, 2000);
    assert_int_equal(a.count, 1);
    assert_int_equal(a.added, 1);
    assert_int_equal(late.count, 1);
    assert_int_equal(late.handler, 1);
    close(c);
    udpmux_free(m);
    rec_free(&late);
}

/* Exclusivity --------------------------------------------------------------- */

static int plain_bind(const char *text, int reuseaddr, int reuseport)
{
    struct sockaddr_storage ss = addr_of(text);
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0), r;
    if (fd < 0)
        return -errno;
    if (reuseaddr)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuseaddr, sizeof(reuseaddr));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport));
    r = bind(fd, (struct sockaddr *)&ss, sa_len(&ss)) == 0 ? fd : -errno;
    if (r < 0)
        close(fd);
    return r;
}

/* In a child running as nobody: binding with both reuse options must fail. */
static void other_uid_child(const char *text)
{
    int fd;
    if (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0)
        _exit(2);
    fd = plain_bind(text, 1, 1);
    _exit(fd == -EADDRINUSE ? 0 : fd >= 0 ? 1 : 3);
}

static int other_uid_bind(const char *text)
{
    return run_child("--child-bind-as-nobody", text);
}

static void test_exclusivity(void **state)
{
    struct udpmux *a = new_mux(NULL), *b = new_mux(NULL), *c = new_mux(NULL);
    char text[64];
    uint16_t p, q;
    int fd;
    (void)state;
    /* a plain (exclusive) endpoint */
    assert_int_equal(udpmux_bind(a, "127.0.0.1:0", 0), 0);
    p = ep_port(a, 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", p);
    assert_int_equal(udpmux_bind(b, text, 0), -EADDRINUSE);
    /* opting in on one side only is not enough */
    assert_int_equal(udpmux_bind(b, text, UDPMUX_BIND_REUSEPORT), -EADDRINUSE);
    snprintf(text, sizeof(text), "0.0.0.0:%u", p);
    assert_int_equal(udpmux_bind(b, text, 0), -EADDRINUSE);
    /* a dual-stack wildcard also covers the IPv4 port */
    if (have_ipv6_loopback()) {
        snprintf(text, sizeof(text), "[::]:%u", p);
        assert_int_equal(udpmux_bind(b, text, UDPMUX_BIND_DUALSTACK), -EADDRINUSE);
    }
    /* SO_REUSEADDR from a plain program does not get in either */
    snprintf(text, sizeof(text), "127.0.0.1:%u", p);
    fd = plain_bind(text, 1, 0);
    assert_int_equal(fd, -EADDRINUSE);
    fd = plain_bind(text, 1, 1);
    assert_int_equal(fd, -EADDRINUSE);
    /* MULTICAST sharing is refused on a unicast address */
    assert_int_equal(udpmux_bind(b, text, UDPMUX_BIND_MULTICAST), -EINVAL);

    /* both opt in: a same-user SO_REUSEPORT group */
    assert_int_equal(udpmux_bind(a, "127.0.0.1:0", UDPMUX_BIND_REUSEPORT), 1);
    q = ep_port(a, 1);
    snprintf(text, sizeof(text), "127.0.0.1:%u", q);
    assert_int_equal(udpmux_bind(b, text, UDPMUX_BIND_REUSEPORT), 0);
    assert_int_equal(udpmux_bind(c, text, UDPMUX_BIND_REUSEPORT), 0);
    /* but not a socket that did not opt in */
    assert_int_equal(udpmux_bind(c, text, 0), -EADDRINUSE);

    /* after close the port is free again */
    udpmux_free(b);
    udpmux_free(c);
    b = new_mux(NULL);
    snprintf(text, sizeof(text), "127.0.0.1:%u", q);
    assert_int_equal(udpmux_bind(b, text, 0), -EADDRINUSE); /* a still holds it */
    udpmux_free(a);
    assert_int_equal(udpmux_bind(b, text, 0), 0);
    udpmux_free(b);
}

/* Another uid cannot join a same-user group or an exclusive endpoint, even
 * with SO_REUSEADDR + SO_REUSEPORT (root only: the child becomes nobody). */
static void test_exclusivity_other_uid(void **state)
{
    struct udpmux *a = new_mux(NULL);
    char text[64];
    (void)state;
    assert_int_equal(udpmux_bind(a, "127.0.0.1:0", 0), 0);
    assert_int_equal(udpmux_bind(a, "127.0.0.1:0", UDPMUX_BIND_REUSEPORT), 1);
    snprintf(text, sizeof(text), "127.0.0.1:%u", ep_port(a, 1));
    assert_int_equal(other_uid_bind(text), 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", ep_port(a, 0));
    assert_int_equal(other_uid_bind(text), 0);
    snprintf(text, sizeof(text), "0.0.0.0:%u", ep_port(a, 0));
    assert_int_equal(other_uid_bind(text), 0);
    udpmux_free(a);
}

/* Sending from another thread while the loop runs ---------------------------- */

enum { THREAD_N = 200 };

struct thr {
    struct udpmux *m;
    struct sockaddr_storage dst;
    int sent, again;
};

static void *sender(void *arg)
{
    struct thr *t = arg;
    for (int i = 0; i < THREAD_N; i++) {
        char buf[16];
        struct udpmux_msg msg;
        int n = snprintf(buf, sizeof(buf), "T%d", i), r, tries = 0;
        memset(&msg, 0, sizeof(msg));
        msg.data = buf;
        msg.len = (size_t)n;
        msg.peer = (struct sockaddr *)&t->dst;
        msg.peer_len = sizeof(struct sockaddr_in);
        msg.endpoint = -1;
        while ((r = udpmux_send(t->m, &msg)) == -EAGAIN && tries++ < 1000) {
            t->again++;
            usleep(1000);
        }
        if (r == 0)
            t->sent++;
        if (i % 20 == 0)
            usleep(1000);
    }
    return NULL;
}

struct thr_rec {
    unsigned count;
    int stopped_by_timer;
};

static void on_thread_dgram(struct udpmux *m, const struct udpmux_dgram *d, void *arg)
{
    struct thr_rec *r = arg;
    (void)d;
    if (++r->count == THREAD_N)
        udpmux_stop(m);
}

static void on_deadline(struct udpmux *m, void *arg)
{
    struct thr_rec *r = arg;
    r->stopped_by_timer = 1;
    udpmux_stop(m);
}

static void test_send_from_thread(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct thr t;
    struct thr_rec rec = {0, 0};
    struct udpmux_stats st;
    pthread_t th;
    (void)state;
    udpmux_config_init(&cfg);
    cfg.rcvbuf = 1 << 20;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    /* the mux sends to itself from the other thread; its own loop receives */
    memset(&t, 0, sizeof(t));
    t.m = m;
    t.dst = addr_of("127.0.0.1:0");
    set_port(&t.dst, ep_port(m, 0));
    udpmux_add_handler(m, "t", "prefix 54", on_thread_dgram, &rec, NULL, 0);
    assert_true(udpmux_timer_add(m, 10000, on_deadline, &rec) >= 0);
    assert_int_equal(pthread_create(&th, NULL, sender, &t), 0);
    assert_int_equal(udpmux_run(m), 0);
    pthread_join(th, NULL);
    assert_false(rec.stopped_by_timer);
    assert_int_equal(t.sent, THREAD_N);
    assert_int_equal(rec.count, THREAD_N);
    udpmux_get_stats(m, &st);
    assert_int_equal(st.tx_datagrams, THREAD_N);
    assert_int_equal(st.rx_datagrams, THREAD_N);
    udpmux_free(m);
}

/* Slots and ids ------------------------------------------------------------ */

/* A removed handler's slot is reused (the 65th add after 64 add/remove
 * pairs used to fail with -ENOSPC), the reused slot gets a new id so the
 * old id cannot remove or count the new handler, and match order stays
 * registration order, not slot order. */
static void test_handler_slots_reused(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m = new_mux(NULL);
    struct order_rec rec = {0, -1, -2};
    struct tagged t[2] = {{&rec, 0}, {&rec, 1}};
    int a, b, c, first = -1, c2;
    uint16_t port;
    static const uint8_t d01[] = {0x01};
    (void)state;
    for (int i = 0; i < 1000; i++) {
        int id = udpmux_add_handler(m, "h", "any", nop_handler, NULL, NULL, 0);
        if (id < 0)
            fail_msg("add %d after %d add/remove pairs: %s", i + 1, i, udpmux_strerror(id));
        if (i == 0)
            first = id;
        else
            assert_int_not_equal(id, first); /* same slot, new id */
        assert_int_equal(udpmux_remove_handler(m, id), 0);
        assert_int_equal(udpmux_remove_handler(m, id), -ENOENT);
    }
    udpmux_free(m);

    udpmux_config_init(&cfg);
    cfg.max_handlers = 2;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    a = udpmux_add_handler(m, "a", "any", nop_handler, NULL, NULL, 0);
    b = udpmux_add_handler(m, "b", "prefix 01", on_tagged, &t[0], NULL, 0);
    assert_true(a >= 0 && b >= 0);
    assert_int_equal(udpmux_add_handler(m, "x", "any", nop_handler, NULL, NULL, 0), -ENOSPC);
    assert_int_equal(udpmux_remove_handler(m, a), 0);
    c = udpmux_add_handler(m, "c", "any", on_tagged, &t[1], NULL, 0);
    assert_true(c >= 0);
    assert_int_not_equal(c, a);
    assert_int_not_equal(c, b);
    /* the stale id names nothing, the new handler is untouched */
    assert_int_equal(udpmux_remove_handler(m, a), -ENOENT);
    assert_int_equal(udpmux_handler_count(m, a), -ENOENT);
    assert_int_equal(udpmux_handler_count(m, c), 0);
    /* b was registered before c (which sits in the lower slot): b wins */
    {
        int cl = cli_open("127.0.0.1:0");
        cli_send(cl, d01, sizeof(d01), "127.0.0.1", port);
        pump_until(m, &rec.count, 1, 2000);
        assert_int_equal(rec.count, 1);
        assert_int_equal(rec.last_tag, 0);
        assert_int_equal(rec.last_handler, b);
        /* remove b: c takes it, and reports its own id */
        assert_int_equal(udpmux_remove_handler(m, b), 0);
        cli_send(cl, d01, sizeof(d01), "127.0.0.1", port);
        pump_until(m, &rec.count, 2, 2000);
        assert_int_equal(rec.last_tag, 1);
        assert_int_equal(rec.last_handler, c);
        assert_int_equal(udpmux_handler_count(m, c), 1);
        close(cl);
    }
    /* slot reuse from both ends: remove c, add again */
    assert_int_equal(udpmux_remove_handler(m, c), 0);
    c2 = udpmux_add_handler(m, "c2", "any", nop_handler, NULL, NULL, 0);
    assert_true(c2 >= 0 && c2 != c);
    assert_int_equal(udpmux_remove_handler(m, c), -ENOENT);
    assert_int_equal(udpmux_remove_handler(m, c2), 0);
    udpmux_free(m);
}

/* More handlers than the candidate index holds (64): the rule-by-rule path
 * gives the same first match. */
static void test_many_handlers(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct order_rec rec = {0, -1, -2};
    struct tagged t = {&rec, 7};
    int want = -1, cl;
    uint16_t port;
    static const uint8_t d[] = {0x45, 0x00};
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_handlers = 100;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    port = ep_port(m, 0);
    for (int i = 0; i < 90; i++) {
        char rule[32];
        snprintf(rule, sizeof(rule), "prefix %02x", i);
        if (i == 0x45)
            want = udpmux_add_handler(m, "w", rule, on_tagged, &t, NULL, 0);
        else
            assert_true(udpmux_add_handler(m, "n", rule, nop_handler, NULL, NULL, 0) >= 0);
    }
    assert_true(udpmux_add_handler(m, "late", "prefix 45", nop_handler, NULL, NULL, 0) >= 0);
    cl = cli_open("127.0.0.1:0");
    cli_send(cl, d, sizeof(d), "127.0.0.1", port);
    pump_until(m, &rec.count, 1, 2000);
    assert_int_equal(rec.count, 1);
    assert_int_equal(rec.last_handler, want);
    close(cl);
    udpmux_free(m);
}

/* A fired timer's id is spent: it must not cancel the timer that took its
 * slot. */
static void test_timer_stale_id(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    unsigned fired = 0;
    int a, b;
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_timers = 1;
    m = new_mux(&cfg);
    a = udpmux_timer_add(m, 0, on_count_timer, &fired);
    assert_true(a >= 0);
    pump_until(m, &fired, 1, 2000);
    assert_int_equal(fired, 1);
    b = udpmux_timer_add(m, 60000, on_count_timer, &fired);
    assert_true(b >= 0);
    assert_int_not_equal(a, b);
    assert_int_equal(udpmux_timer_cancel(m, a), -ENOENT);
    assert_true(udpmux_next_timeout(m) > 0); /* b still pending */
    /* a cancelled id is spent too */
    assert_int_equal(udpmux_timer_cancel(m, b), 0);
    a = udpmux_timer_add(m, 60000, on_count_timer, &fired);
    assert_int_equal(udpmux_timer_cancel(m, b), -ENOENT);
    assert_int_equal(udpmux_timer_cancel(m, a), 0);
    /* ids far out of range */
    assert_int_equal(udpmux_timer_cancel(m, INT_MAX), -ENOENT);
    assert_int_equal(udpmux_timer_cancel(m, 1 << 16), -ENOENT);
    udpmux_free(m);
}

/* udpmux_strerror() is defined for every int. */
static void test_strerror_any_int(void **state)
{
    static const int v[] = {INT_MIN, INT_MIN + 1, -INT_MAX, -4096, -1, 0, 1, 4096, INT_MAX};
    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_non_null(udpmux_strerror(v[i]));
    /* no number formatted into a buffer another thread may be using */
    assert_string_equal(udpmux_strerror(INT_MIN), "Unknown error");
    assert_string_equal(udpmux_strerror(-99999), "Unknown error");
    assert_string_equal(udpmux_strerror(-EINVAL), udpmux_strerror(EINVAL));
}

/* udpmux_send() on one thread while the loop thread binds new endpoints:
 * every send sees a whole endpoint (meant to run under TSan too:
 * meson setup build-tsan -Db_sanitize=thread). */
struct bindrace {
    struct udpmux *m;
    struct sockaddr_storage dst;
    int stop;
    unsigned iter; /* sends tried (atomic): the binds wait for it to move */
    int ok, again, other;
};

/* Waits (bounded) until the sender has tried a send after this point: on a
 * loaded machine the thread may otherwise not run before the binds end. */
static void bindrace_wait(struct bindrace *b)
{
    unsigned from = __atomic_load_n(&b->iter, __ATOMIC_ACQUIRE);
    uint64_t end = now_ms() + 30000;
    /* sleep, not sched_yield(): under valgrind (one thread runs at a time)
     * a yielding spin may keep the sender from ever being scheduled */
    while (__atomic_load_n(&b->iter, __ATOMIC_ACQUIRE) == from) {
        if (now_ms() > end)
            fail_msg("the sender thread did not run for 30 s");
        usleep(1000);
    }
}

static void *bindrace_sender(void *arg)
{
    struct bindrace *b = arg;
    static const char msg_text[] = "race";
    uint64_t end = now_ms() + 10000; /* bounded even if the main thread stalls */
    for (int i = 0; !__atomic_load_n(&b->stop, __ATOMIC_RELAXED) && now_ms() < end; i++) {
        struct udpmux_msg msg;
        int r;
        memset(&msg, 0, sizeof(msg));
        msg.data = msg_text;
        msg.len = sizeof(msg_text) - 1;
        msg.peer = (struct sockaddr *)&b->dst;
        msg.peer_len = sizeof(struct sockaddr_in);
        /* alternate: the first endpoint of the family, and the newest one
         * that may just have been published */
        msg.endpoint = (i & 1) ? -1 : i % 16;
        r = udpmux_send(b->m, &msg);
        __atomic_fetch_add(&b->iter, 1, __ATOMIC_RELEASE);
        if (r == 0)
            b->ok++;
        else if (r == -EAGAIN || r == -ENOBUFS)
            b->again++;
        else if (r != -EINVAL && r != -EAFNOSUPPORT)
            b->other++;
    }
    return NULL;
}

static void test_send_while_binding(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct bindrace b;
    /* a race test needs threads that run at once: valgrind runs one at a
     * time (its memory checks of this code come from the other tests;
     * TSan is the tool for this one) */
    if (getenv("UMX_UNDER_VALGRIND")) {
        skip();
        return;
    }
    pthread_t th;
    int sink = cli_open("127.0.0.1:0");
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_endpoints = 16;
    m = new_mux(&cfg);
    memset(&b, 0, sizeof(b));
    b.m = m;
    assert_int_equal(getsockname(sink, (struct sockaddr *)&ss, &sl), 0);
    b.dst = ss;
    for (int round = 0; round < 20; round++) {
        if (round) {
            udpmux_free(m);
            m = new_mux(&cfg);
            b.m = m;
        }
        b.stop = 0;
        assert_int_equal(pthread_create(&th, NULL, bindrace_sender, &b), 0);
        bindrace_wait(&b);
        for (int i = 0; i < 16; i++) {
            assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), i);
            if (i % 4 == 0)
                bindrace_wait(&b);
        }
        bindrace_wait(&b); /* at least one send with all 16 published */
        __atomic_store_n(&b.stop, 1, __ATOMIC_RELAXED);
        pthread_join(th, NULL);
        assert_int_equal(b.other, 0);
    }
    assert_true(b.ok > 0);
    udpmux_free(m);
    close(sink);
}

/* Timers and run/stop ----------------------------------------------------- */

struct tlog {
    int order[16];
    uint64_t at[16];
    int n;
    uint64_t t0;
    struct tlog *self;
};

struct tcb {
    struct tlog *log;
    int tag;
    int stop;
    int add_more;
};

static void on_timer(struct udpmux *m, void *arg)
{
    struct tcb *c = arg;
    struct tlog *l = c->log;
    if (l->n < 16) {
        l->order[l->n] = c->tag;
        l->at[l->n] = now_ms() - l->t0;
        l->n++;
    }
    if (c->add_more) {
        static struct tcb more;
        more = *c;
        more.tag = c->tag + 100;
        more.add_more = 0;
        udpmux_timer_add(m, 5, on_timer, &more);
    }
    if (c->stop)
        udpmux_stop(m);
}

static void test_timers_run_stop(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct tlog log;
    struct tcb t10, t30, t20, tstop, tcancel;
    int id, idc, to;
    (void)state;
    memset(&log, 0, sizeof(log));
    t10 = (struct tcb){&log, 10, 0, 0};
    t20 = (struct tcb){&log, 20, 0, 1};
    t30 = (struct tcb){&log, 30, 0, 0};
    tstop = (struct tcb){&log, 99, 1, 0};
    tcancel = (struct tcb){&log, 66, 0, 0};
    assert_int_equal(udpmux_next_timeout(m), -1);
    log.t0 = now_ms();
    assert_true(udpmux_timer_add(m, 30, on_timer, &t30) >= 0);
    assert_true(udpmux_timer_add(m, 10, on_timer, &t10) >= 0);
    id = udpmux_timer_add(m, 20, on_timer, &t20);
    assert_true(id >= 0);
    idc = udpmux_timer_add(m, 15, on_timer, &tcancel);
    assert_true(idc >= 0);
    assert_true(udpmux_timer_add(m, 200, on_timer, &tstop) >= 0);
    to = udpmux_next_timeout(m);
    assert_true(to >= 0 && to <= 10);
    assert_int_equal(udpmux_timer_cancel(m, idc), 0);
    assert_int_equal(udpmux_timer_cancel(m, idc), -ENOENT);
    /* the loop runs with no endpoint at all, on timers alone */
    assert_int_equal(udpmux_run(m), 0);
    assert_int_equal(log.n, 5);
    assert_int_equal(log.order[0], 10);
    assert_int_equal(log.order[1], 20);
    /* 120 was added by t20 for 5 ms later: normally before 30, but a late
     * loop may find 30 due in the same pass as 20 */
    assert_true((log.order[2] == 120 && log.order[3] == 30) ||
                (log.order[2] == 30 && log.order[3] == 120));
    assert_int_equal(log.order[4], 99);
    /* never early */
    for (int i = 0; i < 5; i++) {
        uint64_t want = log.order[i] == 120  ? 25
                        : log.order[i] == 99 ? 200
                                             : (uint64_t)log.order[i];
        assert_true(log.at[i] >= want);
    }
    assert_int_equal(udpmux_next_timeout(m), -1);
    /* a fired timer cannot be cancelled */
    assert_int_equal(udpmux_timer_cancel(m, id), -ENOENT);
    /* delay 0 is due at once and runs from udpmux_process() */
    log.n = 0;
    assert_true(udpmux_timer_add(m, 0, on_timer, &t10) >= 0);
    assert_int_equal(udpmux_next_timeout(m), 0);
    assert_int_equal(udpmux_process(m, 0), 0);
    assert_int_equal(log.n, 1);
    /* run again after a stop: stop applies to one run */
    log.n = 0;
    assert_true(udpmux_timer_add(m, 5, on_timer, &tstop) >= 0);
    assert_int_equal(udpmux_run(m), 0);
    assert_int_equal(log.n, 1);
    udpmux_free(m);
}

/* When the loop comes late, every due timer fires in due order. */
static void test_timers_due_order(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct tlog log;
    struct tcb t[4];
    static const unsigned delays[4] = {30, 10, 20, 15};
    (void)state;
    memset(&log, 0, sizeof(log));
    for (int i = 0; i < 4; i++) {
        t[i] = (struct tcb){&log, (int)delays[i], 0, 0};
        assert_int_equal(udpmux_timer_add(m, delays[i], on_timer, &t[i]), i);
    }
    usleep(60000); /* all four are due now */
    assert_int_equal(udpmux_process(m, 0), 0);
    assert_int_equal(log.n, 4);
    assert_int_equal(log.order[0], 10);
    assert_int_equal(log.order[1], 15);
    assert_int_equal(log.order[2], 20);
    assert_int_equal(log.order[3], 30);
    udpmux_free(m);
}

static void *stopper(void *arg)
{
    usleep(50000);
    udpmux_stop(arg);
    return NULL;
}

static void test_stop_from_thread(void **state)
{
    struct udpmux *m = new_mux(NULL);
    pthread_t th;
    uint64_t t0 = now_ms();
    (void)state;
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    assert_int_equal(pthread_create(&th, NULL, stopper, m), 0);
    /* no timer, no traffic: only the wake-up fd can end this */
    assert_int_equal(udpmux_run(m), 0);
    pthread_join(th, NULL);
    assert_true(now_ms() - t0 < 5000);
    udpmux_free(m);
}

static void test_timer_caps(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct tlog log;
    struct tcb t = {&log, 1, 0, 0};
    int a, b;
    (void)state;
    memset(&log, 0, sizeof(log));
    udpmux_config_init(&cfg);
    cfg.max_timers = 2;
    m = new_mux(&cfg);
    a = udpmux_timer_add(m, 1000, on_timer, &t);
    b = udpmux_timer_add(m, 1000, on_timer, &t);
    assert_true(a >= 0 && b >= 0 && a != b);
    assert_int_equal(udpmux_timer_add(m, 1000, on_timer, &t), -ENOSPC);
    assert_int_equal(udpmux_timer_cancel(m, a), 0);
    /* the slot is reusable */
    assert_true(udpmux_timer_add(m, 1000, on_timer, &t) >= 0);
    assert_int_equal(udpmux_timer_add(m, 10, NULL, &t), -EINVAL);
    assert_int_equal(udpmux_timer_add(NULL, 10, on_timer, &t), -EINVAL);
    assert_int_equal(udpmux_timer_cancel(m, -1), -ENOENT);
    assert_int_equal(udpmux_timer_cancel(m, 2), -ENOENT);
    assert_int_equal(udpmux_timer_cancel(NULL, 0), -ENOENT);
    udpmux_free(m);
    /* no timers at all */
    cfg.max_timers = 0;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_timer_add(m, 10, on_timer, &t), -ENOSPC);
    assert_int_equal(udpmux_timer_cancel(m, 0), -ENOENT);
    assert_int_equal(udpmux_next_timeout(m), -1);
    udpmux_free(m);
}

static void test_stop_before_run(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct tlog log;
    struct tcb guard, t20;
    uint64_t t0;
    int gid;
    (void)state;
    memset(&log, 0, sizeof(log));
    guard = (struct tcb){&log, 1, 1, 0};
    t20 = (struct tcb){&log, 20, 1, 0};
    /* a stop that comes before the loop starts (a signal during start-up)
     * is not lost: the next run returns at once */
    gid = udpmux_timer_add(m, 3000, on_timer, &guard);
    assert_true(gid >= 0);
    udpmux_stop(m);
    t0 = now_ms();
    assert_int_equal(udpmux_run(m), 0);
    assert_true(now_ms() - t0 < 1000);
    assert_int_equal(log.n, 0);
    /* and it is consumed: the run after that goes on until its own stop */
    log.t0 = now_ms();
    assert_true(udpmux_timer_add(m, 20, on_timer, &t20) >= 0);
    assert_int_equal(udpmux_run(m), 0);
    assert_int_equal(log.n, 1);
    assert_int_equal(log.order[0], 20);
    assert_int_equal(udpmux_timer_cancel(m, gid), 0);
    udpmux_free(m);
}

static void test_far_timer(void **state)
{
    struct udpmux *m = new_mux(NULL);
    int to;
    (void)state;
    /* 49 days: the timeout in ms does not fit an int's positive range
     * after rounding; it must not turn negative (= wait forever) */
    assert_true(udpmux_timer_add(m, UINT32_MAX, nop_timer, NULL) >= 0);
    to = udpmux_next_timeout(m);
    assert_true(to > 0);
    assert_true(udpmux_timer_add(m, 1000, nop_timer, NULL) >= 0);
    to = udpmux_next_timeout(m);
    assert_true(to > 0 && to <= 1000);
    udpmux_free(m);
}

/* An error the kernel reports on the socket (ICMP port unreachable after a
 * send to a closed port, seen on a connected socket) is counted and the
 * loop goes on. */
static void test_socket_error_counted(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct rec r;
    struct udpmux_stats st;
    struct sockaddr_storage closed = addr_of("127.0.0.1:0"), cli, me = addr_of("127.0.0.1:0");
    socklen_t sl = sizeof(closed);
    struct udpmux_msg msg;
    int tmp, fd, c;
    uint64_t end;
    (void)state;
    rec_init(&r, 0);
    /* a port that was free a moment ago */
    tmp = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(tmp, (struct sockaddr *)&closed, sizeof(struct sockaddr_in)), 0);
    getsockname(tmp, (struct sockaddr *)&closed, &sl);
    close(tmp);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&me, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&closed, sizeof(struct sockaddr_in)), 0);
    assert_int_equal(udpmux_adopt_fd(m, fd), 0);
    udpmux_add_handler(m, "all", "any", on_dgram, &r, NULL, 0);
    memset(&msg, 0, sizeof(msg));
    msg.data = "x";
    msg.len = 1;
    msg.peer = (struct sockaddr *)&closed;
    msg.peer_len = sizeof(struct sockaddr_in);
    assert_int_equal(udpmux_send(m, &msg), 0);
    end = now_ms() + 2000;
    do {
        struct pollfd p = {udpmux_fd(m), POLLIN, 0};
        poll(&p, 1, 20);
        assert_true(udpmux_process(m, 0) >= 0);
        udpmux_get_stats(m, &st);
    } while (st.rx_errors == 0 && now_ms() < end);
    assert_int_equal(st.rx_errors, 1);
    /* the endpoint still works: point it at a client and receive */
    c = cli_open("127.0.0.1:0");
    sl = sizeof(cli);
    getsockname(c, (struct sockaddr *)&cli, &sl);
    assert_int_equal(connect(fd, (struct sockaddr *)&cli, sizeof(struct sockaddr_in)), 0);
    sl = sizeof(me);
    getsockname(fd, (struct sockaddr *)&me, &sl);
    cli_send(c, "after", 5, "127.0.0.1", port_of(&me));
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    close(c);
    udpmux_free(m);
    rec_free(&r);
}

/* Adopting a socket ---------------------------------------------------------- */

static void test_adopt_fd(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct rec r;
    struct sockaddr_storage ss = addr_of("127.0.0.1:0");
    socklen_t sl = sizeof(ss);
    int fd, ep, c, fl, pfd[2];
    char want[64], got[64];
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_endpoints = 2;
    m = new_mux(&cfg);
    rec_init(&r, 1);
    /* error paths */
    assert_int_equal(udpmux_adopt_fd(NULL, 0), -EBADF);
    assert_int_equal(udpmux_adopt_fd(m, -1), -EBADF);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    close(fd);
    assert_int_equal(udpmux_adopt_fd(m, fd), -EBADF); /* closed */
    assert_int_equal(pipe(pfd), 0);
    assert_int_equal(udpmux_adopt_fd(m, pfd[0]), -ENOTSOCK);
    close(pfd[0]);
    close(pfd[1]);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(udpmux_adopt_fd(m, fd), -EPROTOTYPE);
    close(fd);
    /* a bound blocking socket: adopted, made non-blocking, receives */
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, sizeof(struct sockaddr_in)), 0);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    ep = udpmux_adopt_fd(m, fd);
    assert_int_equal(ep, 0);
    assert_int_equal(udpmux_endpoint_fd(m, ep), fd);
    fl = fcntl(fd, F_GETFL);
    assert_true(fl & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(ep_port(m, ep), port_of(&ss));
    udpmux_add_handler(m, "echo", "any", on_dgram, &r, NULL, 0);
    c = cli_open("127.0.0.1:0");
    cli_send(c, "adopted", 7, "127.0.0.1", port_of(&ss));
    pump_until(m, &r.count, 1, 2000);
    assert_int_equal(r.count, 1);
    /* PKTINFO was turned on: the local address is known */
    assert_string_equal(fmt(&r.local, got, sizeof(got)), fmt(&ss, want, sizeof(want)));
    /* caps */
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 1);
    fd = socket(AF_INET, SOCK_DGRAM, 0);
    assert_int_equal(udpmux_adopt_fd(m, fd), -ENOSPC);
    close(fd); /* not taken on failure */
    close(c);
    udpmux_free(m); /* closes the adopted fd */
    rec_free(&r);
}

/* Error paths of every public call ---------------------------------------- */

static void test_errors_new_and_config(void **state)
{
    struct udpmux_config cfg, bad;
    struct udpmux *m = (struct udpmux *)(uintptr_t)1;
    (void)state;
    udpmux_config_init(&cfg);
    assert_int_equal(cfg.batch, 32);
    assert_int_equal(cfg.max_dgram, 65535);
    assert_int_equal(cfg.max_handlers, 64);
    assert_int_equal(cfg.max_timers, 256);
    assert_int_equal(cfg.max_endpoints, 16);
    assert_int_equal(cfg.rcvbuf, 0);
    assert_int_equal(udpmux_new(NULL, NULL), -EINVAL);
#define BAD(field, value)                                                                          \
    do {                                                                                           \
        bad = cfg;                                                                                 \
        bad.field = value;                                                                         \
        m = (struct udpmux *)(uintptr_t)1;                                                         \
        assert_int_equal(udpmux_new(&m, &bad), -EINVAL);                                           \
        assert_null(m);                                                                            \
    } while (0)
    BAD(batch, 0);
    BAD(batch, 1025);
    BAD(max_dgram, 0);
    BAD(max_dgram, 65536);
    BAD(max_handlers, 0);
    BAD(max_endpoints, 0);
    BAD(max_endpoints, 1025);
#undef BAD
    /* extremes that are allowed */
    bad = cfg;
    bad.batch = 1;
    bad.max_dgram = 1;
    bad.max_timers = 0;
    assert_int_equal(udpmux_new(&m, &bad), 0);
    udpmux_free(m);
    bad = cfg;
    bad.batch = 1024;
    assert_int_equal(udpmux_new(&m, &bad), 0);
    udpmux_free(m);
    udpmux_free(NULL);
    assert_string_equal(udpmux_version(), UDPMUX_VERSION_STRING);
    assert_non_null(udpmux_strerror(-EADDRINUSE));
    assert_non_null(udpmux_strerror(0));
    assert_non_null(udpmux_strerror(-99999));
    assert_non_null(strstr(udpmux_strerror(-EADDRINUSE), "in use"));
}

static void test_errors_bind_and_endpoints(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct sockaddr_storage ss;
    socklen_t sl;
    struct sockaddr_un_like {
        sa_family_t fam;
        char path[20];
    } un = {AF_UNIX, "x"};
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_endpoints = 2;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_bind(NULL, "127.0.0.1:0", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, NULL, 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:65536", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:-1", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:1x", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "localhost:53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "::1:53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "[::1:53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "[::1]53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "[]:53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "[fe80::1%nosuchif0]:53", 0), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 1u << 7), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", UDPMUX_BIND_DUALSTACK), -EINVAL);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", UDPMUX_BIND_MULTICAST), -EINVAL);
    /* an address this host does not have */
    assert_int_equal(udpmux_bind(m, "192.0.2.1:0", 0), -EADDRNOTAVAIL);
    ss = addr_of("127.0.0.1:0");
    assert_int_equal(udpmux_bind_addr(NULL, (struct sockaddr *)&ss, sizeof(struct sockaddr_in), 0),
                     -EINVAL);
    assert_int_equal(udpmux_bind_addr(m, NULL, 16, 0), -EINVAL);
    assert_int_equal(udpmux_bind_addr(m, (struct sockaddr *)&ss, 4, 0), -EINVAL);
    assert_int_equal(udpmux_bind_addr(m, (struct sockaddr *)&un, sizeof(un), 0), -EINVAL);
    /* nothing failed above left an endpoint behind */
    assert_int_equal(udpmux_endpoint_fd(m, 0), -EINVAL);
    assert_int_equal(udpmux_bind_addr(m, (struct sockaddr *)&ss, sizeof(struct sockaddr_in), 0), 0);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 1);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), -ENOSPC);
    /* endpoint accessors */
    assert_int_equal(udpmux_endpoint_fd(NULL, 0), -EINVAL);
    assert_int_equal(udpmux_endpoint_fd(m, -1), -EINVAL);
    assert_int_equal(udpmux_endpoint_fd(m, 2), -EINVAL);
    assert_int_equal(udpmux_endpoint_addr(NULL, 0, &ss, &sl), -EINVAL);
    assert_int_equal(udpmux_endpoint_addr(m, 2, &ss, &sl), -EINVAL);
    assert_int_equal(udpmux_endpoint_addr(m, -1, &ss, &sl), -EINVAL);
    assert_int_equal(udpmux_endpoint_addr(m, 0, NULL, &sl), -EINVAL);
    assert_int_equal(udpmux_endpoint_addr(m, 0, &ss, NULL), 0);
    /* join */
    assert_int_equal(udpmux_join(NULL, 0, "239.1.1.1", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 5, "239.1.1.1", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, -1, "239.1.1.1", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 0, NULL, NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 0, "10.1.1.1", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 0, "not-an-address", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 0, "fe80::1", NULL), -EINVAL);
    assert_int_equal(udpmux_join(m, 0, "ff02::1:3", NULL), -EAFNOSUPPORT);
    assert_int_equal(udpmux_join(m, 0, "239.1.1.1", "nosuchif0"), -ENODEV);
    udpmux_free(m);
    if (have_ipv6_loopback()) {
        m = new_mux(NULL);
        assert_int_equal(udpmux_bind(m, "[::1]:0", 0), 0);
        assert_int_equal(udpmux_join(m, 0, "239.1.1.1", NULL), -EAFNOSUPPORT);
        udpmux_free(m);
    }
}

static void test_errors_handlers(void **state)
{
    struct udpmux_config cfg;
    struct udpmux *m;
    struct udpmux_rule *rule;
    char err[128];
    int a, b;
    (void)state;
    udpmux_config_init(&cfg);
    cfg.max_handlers = 2;
    m = new_mux(&cfg);
    assert_int_equal(udpmux_add_handler(NULL, "n", "any", nop_handler, NULL, NULL, 0), -EINVAL);
    assert_int_equal(udpmux_add_handler(m, "n", NULL, nop_handler, NULL, NULL, 0), -EINVAL);
    assert_int_equal(udpmux_add_handler(m, "n", "any", NULL, NULL, NULL, 0), -EINVAL);
    err[0] = '\0';
    assert_int_equal(udpmux_add_handler(m, "n", "prefix zz", nop_handler, NULL, err, sizeof(err)),
                     -EINVAL);
    assert_non_null(strstr(err, "column 8"));
    assert_int_equal(udpmux_add_handler(m, "n", "bogus", nop_handler, NULL, NULL, 0), -EINVAL);
    /* a NULL name is fine */
    a = udpmux_add_handler(m, NULL, "any", nop_handler, NULL, NULL, 0);
    assert_int_equal(a, 0);
    /* add_handler_rule */
    assert_int_equal(udpmux_rule_compile(&rule, "len 1", NULL, 0), 0);
    assert_int_equal(udpmux_add_handler_rule(NULL, "r", rule, nop_handler, NULL), -EINVAL);
    assert_int_equal(udpmux_add_handler_rule(m, "r", NULL, nop_handler, NULL), -EINVAL);
    assert_int_equal(udpmux_add_handler_rule(m, "r", rule, NULL, NULL), -EINVAL);
    b = udpmux_add_handler_rule(m, "r", rule, nop_handler, NULL); /* takes ownership */
    assert_int_equal(b, 1);
    /* caps: nothing is leaked on -ENOSPC */
    assert_int_equal(udpmux_add_handler(m, "n", "any", nop_handler, NULL, NULL, 0), -ENOSPC);
    assert_int_equal(udpmux_rule_compile(&rule, "len 2", NULL, 0), 0);
    assert_int_equal(udpmux_add_handler_rule(m, "r", rule, nop_handler, NULL), -ENOSPC);
    udpmux_rule_free(rule); /* still ours after a failure */
    /* remove */
    assert_int_equal(udpmux_remove_handler(NULL, 0), -ENOENT);
    assert_int_equal(udpmux_remove_handler(m, -1), -ENOENT);
    assert_int_equal(udpmux_remove_handler(m, 2), -ENOENT);
    assert_int_equal(udpmux_remove_handler(m, a), 0);
    assert_int_equal(udpmux_remove_handler(m, a), -ENOENT);
    assert_int_equal(udpmux_handler_count(m, a), -ENOENT);
    assert_int_equal(udpmux_handler_count(m, b), 0);
    assert_int_equal(udpmux_handler_count(NULL, b), -ENOENT);
    assert_int_equal(udpmux_handler_count(m, 99), -ENOENT);
    udpmux_set_default(NULL, nop_handler, NULL);
    udpmux_set_default(m, nop_handler, NULL);
    udpmux_free(m);
}

static void test_errors_send_and_loop(void **state)
{
    struct udpmux *m = new_mux(NULL);
    struct udpmux_msg msg;
    struct udpmux_stats st;
    struct sockaddr_storage p4 = addr_of("127.0.0.1:9"), p6 = addr_of("[::1]:9");
    struct udpmux_dgram d;
    (void)state;
    memset(&msg, 0, sizeof(msg));
    msg.data = "x";
    msg.len = 1;
    msg.peer = (struct sockaddr *)&p4;
    msg.peer_len = sizeof(struct sockaddr_in);
    msg.endpoint = -1;
    /* no endpoint yet */
    assert_int_equal(udpmux_send(m, &msg), -EAFNOSUPPORT);
    assert_int_equal(udpmux_bind(m, "127.0.0.1:0", 0), 0);
    assert_int_equal(udpmux_send(NULL, &msg), -EINVAL);
    assert_int_equal(udpmux_send(m, NULL), -EINVAL);
    msg.peer = NULL;
    assert_int_equal(udpmux_send(m, &msg), -EINVAL);
    msg.peer = (struct sockaddr *)&p4;
    msg.peer_len = 4;
    assert_int_equal(udpmux_send(m, &msg), -EINVAL);
    msg.peer_len = sizeof(struct sockaddr_in);
    msg.data = NULL;
    assert_int_equal(udpmux_send(m, &msg), -EINVAL);
    msg.data = "x";
    msg.endpoint = 1;
    assert_int_equal(udpmux_send(m, &msg), -EINVAL);
    msg.endpoint = -1;
    msg.peer = (struct sockaddr *)&p6;
    msg.peer_len = sizeof(struct sockaddr_in6);
    assert_int_equal(udpmux_send(m, &msg), -EAFNOSUPPORT);
    msg.endpoint = 0;
    assert_int_equal(udpmux_send(m, &msg), -EAFNOSUPPORT);
    /* a NULL payload of length 0 is fine */
    msg.peer = (struct sockaddr *)&p4;
    msg.peer_len = sizeof(struct sockaddr_in);
    msg.data = NULL;
    msg.len = 0;
    assert_int_equal(udpmux_send(m, &msg), 0);
    assert_int_equal(udpmux_send_batch(NULL, &msg, 1), -EINVAL);
    assert_int_equal(udpmux_send_batch(m, NULL, 1), -EINVAL);
    assert_int_equal(udpmux_send_batch(m, NULL, 0), 0);
    assert_int_equal(udpmux_reply(NULL, &d, "x", 1), -EINVAL);
    assert_int_equal(udpmux_reply(m, NULL, "x", 1), -EINVAL);
    udpmux_get_stats(m, &st);
    assert_true(st.tx_errors >= 6);
    udpmux_get_stats(NULL, &st);
    udpmux_get_stats(m, NULL);
    /* loop calls */
    assert_int_equal(udpmux_fd(NULL), -EINVAL);
    assert_true(udpmux_fd(m) >= 0);
    assert_int_equal(udpmux_process(NULL, 0), -EINVAL);
    assert_int_equal(udpmux_next_timeout(NULL), -1);
    assert_int_equal(udpmux_run(NULL), -EINVAL);
    udpmux_stop(NULL);
    assert_int_equal(udpmux_timer_add(m, 1, nop_timer, NULL) >= 0, 1);
    /* address helpers */
    {
        struct sockaddr_storage ss;
        socklen_t sl = 0;
        char buf[64];
        assert_int_equal(udpmux_parse_addr(NULL, &ss, &sl), -EINVAL);
        assert_int_equal(udpmux_parse_addr("1.2.3.4:5", NULL, &sl), -EINVAL);
        assert_int_equal(udpmux_parse_addr("1.2.3.4:5", &ss, NULL), 0);
        assert_int_equal(udpmux_parse_addr("[2001:db8::1]:443", &ss, &sl), 0);
        assert_int_equal(sl, sizeof(struct sockaddr_in6));
        assert_int_equal(udpmux_format_addr((struct sockaddr *)&ss, buf, sizeof(buf)),
                         (int)strlen("[2001:db8::1]:443"));
        assert_string_equal(buf, "[2001:db8::1]:443");
        assert_int_equal(udpmux_format_addr(NULL, buf, sizeof(buf)), 1);
        /* snprintf semantics: truncated, still terminated, full length returned */
        assert_int_equal(udpmux_format_addr((struct sockaddr *)&ss, buf, 4), 17);
        assert_string_equal(buf, "[20");
    }
    udpmux_free(m);
}

/* The attach client's error paths that need no daemon (the daemon's tests
 * cover the protocol). */
static void test_errors_attach(void **state)
{
    struct udpmux_attach *a = (struct udpmux_attach *)(uintptr_t)1;
    struct udpmux_attach_dgram d;
    char longpath[200];
    (void)state;
    memset(&d, 0, sizeof(d));
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    assert_int_equal(udpmux_attach(NULL, "/nonexistent", "r"), -EINVAL);
    assert_int_equal(udpmux_attach(&a, NULL, "r"), -EINVAL);
    assert_int_equal(udpmux_attach(&a, "/nonexistent", NULL), -EINVAL);
    assert_int_equal(udpmux_attach(&a, "", "r"), -EINVAL);
    assert_int_equal(udpmux_attach(&a, longpath, "r"), -EINVAL);
    assert_int_equal(udpmux_attach(&a, "/nonexistent/udpmux.sock", ""), -EINVAL);
    /* no daemon there */
    assert_int_equal(udpmux_attach(&a, "/nonexistent/udpmux.sock", "r"), -ENOENT);
    assert_null(a);
    udpmux_attach_close(NULL);
    assert_int_equal(udpmux_attach_fd(NULL), -EINVAL);
    assert_int_equal(udpmux_attach_recv(NULL, &d, 1), -EINVAL);
    assert_int_equal(udpmux_attach_send(NULL, &d, 1), -EINVAL);
}

int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n > 0)
        self_exe[n] = '\0';
    else
        snprintf(self_exe, sizeof(self_exe), "%s", argv[0]);
    if (argc >= 2 && strcmp(argv[1], "--child-multicast") == 0)
        mcast_child();
    if (argc >= 2 && strcmp(argv[1], "--child-v6-pktinfo") == 0)
        v6_child();
    if (argc >= 3 && strcmp(argv[1], "--child-bind-as-nobody") == 0)
        other_uid_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_receive),
        cmocka_unit_test(test_send_batch),
        cmocka_unit_test(test_send_batch_mixed_endpoints),
        cmocka_unit_test(test_kernel_drops_counted),
        cmocka_unit_test(test_dispatch_first_match_wins),
        cmocka_unit_test(test_default_and_unmatched),
        cmocka_unit_test(test_callback_reentry),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_pktinfo_reply_source),
        cmocka_unit_test(test_pktinfo_dualstack),
        cmocka_unit_test(test_add_handler_in_callback),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_zero_length),
        cmocka_unit_test(test_max_ipv4_datagram),
        cmocka_unit_test(test_budget_fairness),
        cmocka_unit_test(test_exclusivity),
        cmocka_unit_test(test_send_from_thread),
        cmocka_unit_test(test_timers_run_stop),
        cmocka_unit_test(test_timers_due_order),
        cmocka_unit_test(test_stop_from_thread),
        cmocka_unit_test(test_timer_caps),
        cmocka_unit_test(test_stop_before_run),
        cmocka_unit_test(test_far_timer),
        cmocka_unit_test(test_socket_error_counted),
        cmocka_unit_test(test_adopt_fd),
        cmocka_unit_test(test_errors_new_and_config),
        cmocka_unit_test(test_errors_bind_and_endpoints),
        cmocka_unit_test(test_errors_handlers),
        cmocka_unit_test(test_errors_send_and_loop),
        cmocka_unit_test(test_errors_attach),
        cmocka_unit_test(test_handler_slots_reused),
        cmocka_unit_test(test_many_handlers),
        cmocka_unit_test(test_timer_stale_id),
        cmocka_unit_test(test_strerror_any_int),
        cmocka_unit_test(test_send_while_binding),
    };
    /* cases that need root (network namespaces, another uid) are their own
     * meson test, which reports a skip (77) when not root */
    const struct CMUnitTest root_tests[] = {
        cmocka_unit_test(test_multicast_sharing),
        cmocka_unit_test(test_pktinfo_reply_source_v6),
        cmocka_unit_test(test_exclusivity_other_uid),
    };
    if (argc >= 2 && strcmp(argv[1], "--root") == 0) {
        if (geteuid() != 0) {
            fprintf(stderr, "test-mux --root: not root, root-only cases skipped\n");
            return 77;
        }
        return cmocka_run_group_tests_name("root", root_tests, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
