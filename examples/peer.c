/*
 * peer.c - one program that is a server and a client on one UDP port.
 *
 * It binds one address and registers two handlers on it:
 *
 *   "ping"  regex "^PING [0-9]{1,9}$"   answers "PONG n"            (server role)
 *   "echo"  prefix 00                    answers 0x01 + the same bytes (server role)
 *
 * and, with -p, sends its own "PING n" and 0x00-echo requests to another
 * peer from the same socket (client role). The answers come back to the
 * same port; no handler rule matches them ("PONG ..." and 0x01...), so they
 * reach the default handler, which counts them. Two instances pointed at
 * each other each serve the other's requests while getting answers to
 * their own, all on one port each:
 *
 *   peer -l 127.0.0.1:7001 -p 127.0.0.1:7002 -n 5 &
 *   peer -l 127.0.0.1:7002 -p 127.0.0.1:7001 -n 5
 *
 * Requests go out from a timer every 50 ms until answered (at most 40
 * tries each). The program exits 0 when all its requests were answered and
 * it has served all of the peer's, 1 on timeout, 2 when the address cannot
 * be bound (printing who holds the port).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <udpmux.h>

#include "report-holders.h"

#define MAX_REQ 1000
#define TICK_MS 50
#define MAX_TRIES 40
#define LINGER_MS 300

struct peer {
    const char *local_text;
    struct sockaddr_storage peer;
    socklen_t peer_len;
    char peer_text[64];
    int have_peer;
    unsigned n;
    unsigned tries[MAX_REQ];
    unsigned char pong[MAX_REQ], echoed[MAX_REQ];   /* answers to our requests */
    unsigned char s_ping[MAX_REQ], s_echo[MAX_REQ]; /* requests we served (from the peer) */
    unsigned npong, necho, nserved_ping, nserved_echo, served_others;
    int done, failed, quiet;
};

static int same_addr(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    char x[64], y[64];
    udpmux_format_addr(a, x, sizeof(x));
    udpmux_format_addr((const struct sockaddr *)b, y, sizeof(y));
    return strcmp(x, y) == 0;
}

/* Parses a decimal request number (1..n) from text of length len. */
static int parse_num(const uint8_t *p, size_t len, unsigned n)
{
    unsigned v = 0;
    if (len == 0 || len > 9)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (unsigned)(p[i] - '0');
    }
    return v >= 1 && v <= n ? (int)v : -1;
}

static void check_done(struct udpmux *mux, struct peer *pr);

/* Server role: "PING n" -> "PONG n". */
static void on_ping(struct udpmux *mux, const struct udpmux_dgram *d, void *arg)
{
    struct peer *pr = arg;
    char from[64], reply[32];
    int num;
    /* the rule guarantees the shape: "PING " and 1..9 digits */
    if (d->len > sizeof(reply))
        return;
    memcpy(reply, d->data, d->len);
    memcpy(reply, "PONG", 4);
    udpmux_reply(mux, d, reply, d->len);
    udpmux_format_addr(d->peer, from, sizeof(from));
    if (!pr->quiet)
        printf("served PING %.*s from %s\n", (int)d->len - 5, (const char *)d->data + 5, from);
    num = parse_num(d->data + 5, d->len - 5, pr->n);
    if (pr->have_peer && same_addr(d->peer, &pr->peer) && num > 0) {
        if (!pr->s_ping[num - 1]++)
            pr->nserved_ping++;
    } else {
        pr->served_others++;
    }
    check_done(mux, pr);
}

/* Server role: 0x00 + bytes -> 0x01 + the same bytes. */
static void on_echo(struct udpmux *mux, const struct udpmux_dgram *d, void *arg)
{
    struct peer *pr = arg;
    uint8_t reply[2048];
    char from[64];
    int num;
    if (d->len > sizeof(reply))
        return;
    memcpy(reply, d->data, d->len);
    reply[0] = 0x01;
    udpmux_reply(mux, d, reply, d->len);
    udpmux_format_addr(d->peer, from, sizeof(from));
    if (!pr->quiet)
        printf("served echo (%zu bytes) from %s\n", d->len, from);
    num = parse_num(d->data + 1, d->len - 1, pr->n);
    if (pr->have_peer && same_addr(d->peer, &pr->peer) && num > 0) {
        if (!pr->s_echo[num - 1]++)
            pr->nserved_echo++;
    } else {
        pr->served_others++;
    }
    check_done(mux, pr);
}

/* Client role: the answers to our own requests arrive on the same port. */
static void on_answer(struct udpmux *mux, const struct udpmux_dgram *d, void *arg)
{
    struct peer *pr = arg;
    char from[64];
    int num = -1;
    udpmux_format_addr(d->peer, from, sizeof(from));
    if (!pr->have_peer || !same_addr(d->peer, &pr->peer)) {
        if (!pr->quiet)
            printf("ignored %zu bytes from %s\n", d->len, from);
        return;
    }
    if (d->len > 5 && memcmp(d->data, "PONG ", 5) == 0) {
        num = parse_num(d->data + 5, d->len - 5, pr->n);
        if (num > 0 && !pr->pong[num - 1]++) {
            pr->npong++;
            if (!pr->quiet)
                printf("answer PONG %d from %s\n", num, from);
        }
    } else if (d->len > 1 && d->data[0] == 0x01) {
        num = parse_num(d->data + 1, d->len - 1, pr->n);
        if (num > 0 && !pr->echoed[num - 1]++) {
            pr->necho++;
            if (!pr->quiet)
                printf("answer echo %d from %s\n", num, from);
        }
    }
    if (num < 0 && !pr->quiet)
        printf("ignored %zu bytes from %s\n", d->len, from);
    check_done(mux, pr);
}

static void on_linger_end(struct udpmux *mux, void *arg)
{
    (void)arg;
    udpmux_stop(mux);
}

static void check_done(struct udpmux *mux, struct peer *pr)
{
    if (pr->done || !pr->have_peer || pr->n == 0)
        return;
    if (pr->npong < pr->n || pr->necho < pr->n || pr->nserved_ping < pr->n ||
        pr->nserved_echo < pr->n)
        return;
    pr->done = 1;
    printf("done: %u/%u PONG and %u/%u echo answers from %s; served %u PING and %u echo "
           "requests from %s (the peer's own port), all on %s\n",
           pr->npong, pr->n, pr->necho, pr->n, pr->peer_text, pr->nserved_ping, pr->nserved_echo,
           pr->peer_text, pr->local_text);
    fflush(stdout);
    /* stay a moment to answer the peer's retransmissions, if any */
    if (udpmux_timer_add(mux, LINGER_MS, on_linger_end, pr) < 0)
        udpmux_stop(mux);
}

static void send_req(struct udpmux *mux, struct peer *pr, const void *data, size_t len)
{
    struct udpmux_msg msg;
    int r;
    memset(&msg, 0, sizeof(msg));
    msg.data = data;
    msg.len = len;
    msg.peer = (const struct sockaddr *)&pr->peer;
    msg.peer_len = pr->peer_len;
    msg.endpoint = -1;
    r = udpmux_send(mux, &msg);
    if (r < 0 && r != -EAGAIN && !pr->quiet)
        fprintf(stderr, "peer: send to %s: %s\n", pr->peer_text, udpmux_strerror(r));
}

/* Client role: (re)send every unanswered request, then re-arm. */
static void on_tick(struct udpmux *mux, void *arg)
{
    struct peer *pr = arg;
    char buf[32];
    for (unsigned i = 0; i < pr->n; i++) {
        int len;
        if ((pr->pong[i] && pr->echoed[i]) || pr->tries[i] >= MAX_TRIES)
            continue;
        pr->tries[i]++;
        if (!pr->pong[i]) {
            len = snprintf(buf, sizeof(buf), "PING %u", i + 1);
            send_req(mux, pr, buf, (size_t)len);
        }
        if (!pr->echoed[i]) {
            buf[0] = 0x00;
            len = snprintf(buf + 1, sizeof(buf) - 1, "%u", i + 1);
            send_req(mux, pr, buf, (size_t)len + 1);
        }
    }
    if (!pr->done && udpmux_timer_add(mux, TICK_MS, on_tick, pr) < 0)
        udpmux_stop(mux);
}

static void on_deadline(struct udpmux *mux, void *arg)
{
    struct peer *pr = arg;
    if (pr->have_peer && pr->n > 0 && !pr->done) {
        pr->failed = 1;
        fprintf(stderr,
                "peer: timeout: %u/%u PONG, %u/%u echo answers; served %u/%u PING, %u/%u echo\n",
                pr->npong, pr->n, pr->necho, pr->n, pr->nserved_ping, pr->n, pr->nserved_echo,
                pr->n);
    }
    udpmux_stop(mux);
}

static void usage(void)
{
    fprintf(stderr, "usage: peer -l LOCAL [-p PEER] [-n COUNT] [-t TIMEOUT_MS] [-q]\n"
                    "  -l ADDR  address to bind, e.g. 127.0.0.1:7000 or [::1]:7000\n"
                    "  -p ADDR  the other peer: send it COUNT PING and COUNT echo requests\n"
                    "  -n N     requests of each kind (default 5, at most 1000)\n"
                    "  -t MS    give up after MS milliseconds (default 10000; 0: never)\n"
                    "  -q       quiet: only the summary\n");
    exit(64);
}

int main(int argc, char **argv)
{
    static struct peer pr;
    struct udpmux *mux = NULL;
    const char *peer_text = NULL;
    char err[256];
    long timeout_ms = 10000;
    int c, r, rc = 0;

    pr.n = 5;
    while ((c = getopt(argc, argv, "l:p:n:t:q")) != -1) {
        switch (c) {
        case 'l':
            pr.local_text = optarg;
            break;
        case 'p':
            peer_text = optarg;
            break;
        case 'n':
            pr.n = (unsigned)strtoul(optarg, NULL, 10);
            if (pr.n > MAX_REQ)
                usage();
            break;
        case 't':
            timeout_ms = strtol(optarg, NULL, 10);
            if (timeout_ms < 0)
                usage();
            break;
        case 'q':
            pr.quiet = 1;
            break;
        default:
            usage();
        }
    }
    if (!pr.local_text || optind != argc)
        usage();
    if (peer_text) {
        if (udpmux_parse_addr(peer_text, &pr.peer, &pr.peer_len) < 0) {
            fprintf(stderr, "peer: bad peer address %s\n", peer_text);
            return 64;
        }
        udpmux_format_addr((const struct sockaddr *)&pr.peer, pr.peer_text, sizeof(pr.peer_text));
        pr.have_peer = 1;
    }

    r = udpmux_new(&mux, NULL);
    if (r < 0) {
        fprintf(stderr, "peer: %s\n", udpmux_strerror(r));
        return 1;
    }
    /* One endpoint, exclusive: no other program can take the port. */
    r = udpmux_bind(mux, pr.local_text, 0);
    if (r < 0) {
        report_bind_error(stderr, "peer", pr.local_text, r);
        udpmux_free(mux);
        return 2;
    }
    /* The server role: two protocols of our own, told apart by content. */
    r = udpmux_add_handler(mux, "ping", "regex \"^PING [0-9]{1,9}$\"", on_ping, &pr, err,
                           sizeof(err));
    if (r >= 0)
        r = udpmux_add_handler(mux, "echo", "prefix 00", on_echo, &pr, err, sizeof(err));
    if (r < 0) {
        fprintf(stderr, "peer: rule: %s\n", err);
        udpmux_free(mux);
        return 1;
    }
    /* The client role: answers to our requests match neither rule. */
    udpmux_set_default(mux, on_answer, &pr);
    printf("peer %s: listening%s%s\n", pr.local_text, pr.have_peer ? ", requests to " : "",
           pr.have_peer ? pr.peer_text : "");
    fflush(stdout);

    if (pr.have_peer && pr.n > 0)
        udpmux_timer_add(mux, 0, on_tick, &pr);
    if (timeout_ms > 0)
        udpmux_timer_add(mux, (unsigned)timeout_ms, on_deadline, &pr);
    r = udpmux_run(mux);
    if (r < 0) {
        fprintf(stderr, "peer: loop: %s\n", udpmux_strerror(r));
        rc = 1;
    }
    if (pr.failed)
        rc = 1;
    {
        struct udpmux_stats st;
        udpmux_get_stats(mux, &st);
        if (!pr.quiet)
            printf("stats: rx %llu tx %llu unmatched %llu\n", (unsigned long long)st.rx_datagrams,
                   (unsigned long long)st.tx_datagrams, (unsigned long long)st.rx_unmatched);
    }
    udpmux_free(mux);
    return rc;
}
