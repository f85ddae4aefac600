/*
 * attach-peer.c - a program that shares udpmuxd's port through an attach
 * route, as server and client at once:
 *   - answers "<TAG> REQ n" from any peer with "<TAG> RSP n" (server role);
 *   - sends "<TAG> ASK n" to a peer given on the command line and counts the
 *     answers that come back (client role) — the answers start with "ANS",
 *     which matches no route: they reach us only because our own send
 *     created a flow pinned to this program.
 *
 * usage: attach-peer SOCKET ROUTE TAG PEER_ADDR:PORT COUNT SECONDS
 * Prints "served=N answered=M wrong=K" and exits 0 when served >= COUNT and
 * answered >= COUNT, 1 otherwise.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "udpmux.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    struct udpmux_attach *att;
    struct udpmux_attach_dgram d[16], out;
    static uint8_t bufs[16][2048];
    uint8_t obuf[128];
    struct sockaddr_storage peer;
    socklen_t plen;
    long count, secs, served = 0, answered = 0, wrong = 0, asked = 0;
    const char *tag;
    double end, next_ask = 0;
    int r;

    if (argc != 7) {
        fprintf(stderr, "usage: attach-peer SOCKET ROUTE TAG PEER COUNT SECONDS\n");
        return 64;
    }
    tag = argv[3];
    count = strtol(argv[5], NULL, 10);
    secs = strtol(argv[6], NULL, 10);
    if (udpmux_parse_addr(argv[4], &peer, &plen) < 0) {
        fprintf(stderr, "bad peer address %s\n", argv[4]);
        return 64;
    }
    r = udpmux_attach(&att, argv[1], argv[2]);
    if (r < 0) {
        fprintf(stderr, "attach %s: %s\n", argv[2], udpmux_strerror(r));
        return r == -EACCES ? 77 : 1;
    }
    printf("attached\n");
    fflush(stdout);
    end = now_s() + (double)secs;
    while (now_s() < end && (served < count || answered < count)) {
        struct pollfd p = {udpmux_attach_fd(att), POLLIN, 0};
        if (asked < count && now_s() >= next_ask) {
            int n = snprintf((char *)obuf, sizeof(obuf), "%s ASK %ld", tag, asked);
            memset(&out, 0, sizeof(out));
            out.data = obuf;
            out.len = (size_t)n;
            memcpy(&out.peer, &peer, sizeof(peer));
            if (udpmux_attach_send(att, &out, 1) == 1)
                asked++;
            next_ask = now_s() + 0.002;
        }
        poll(&p, 1, 5);
        for (int i = 0; i < 16; i++) {
            d[i].data = bufs[i];
            d[i].len = sizeof(bufs[i]) - 1;
        }
        r = udpmux_attach_recv(att, d, 16);
        if (r < 0) {
            fprintf(stderr, "recv: %s\n", udpmux_strerror(r));
            break;
        }
        for (int i = 0; i < r; i++) {
            char *s = (char *)d[i].data;
            size_t tl = strlen(tag);
            s[d[i].len] = '\0';
            if (strncmp(s, "ANS ", 4) == 0 && strncmp(s + 4, tag, tl) == 0) {
                answered++;
            } else if (strncmp(s, tag, tl) == 0 && strncmp(s + tl, " REQ ", 5) == 0) {
                struct udpmux_attach_dgram rep = d[i];
                int n = snprintf((char *)obuf, sizeof(obuf), "%s RSP %s", tag, s + tl + 5);
                rep.data = obuf;
                rep.len = (size_t)n;
                if (udpmux_attach_send(att, &rep, 1) == 1)
                    served++;
            } else {
                wrong++;
                fprintf(stderr, "wrong datagram: %.60s\n", s);
            }
        }
    }
    printf("served=%ld answered=%ld wrong=%ld\n", served, answered, wrong);
    udpmux_attach_close(att);
    return served >= count && answered >= count && wrong == 0 ? 0 : 1;
}
