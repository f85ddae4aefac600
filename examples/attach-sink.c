/*
 * attach-sink.c - an attached program that counts what its route delivers
 * (for bench/attach-run): claims ROUTE on udpmuxd's attach socket, receives
 * in batches for SECONDS (or until IDLE_MS without a datagram after the
 * first), and prints "received=N bytes=B truncated=T" once.
 *
 * usage: attach-sink SOCKET ROUTE SECONDS IDLE_MS
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "udpmux.h"

#define BATCH 64

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static uint8_t bufs[BATCH][2048];
    struct udpmux_attach_dgram d[BATCH];
    struct udpmux_attach *att;
    unsigned long long received = 0, bytes = 0;
    double end, last = 0;
    long idle_ms;
    int r;

    if (argc != 5) {
        fprintf(stderr, "usage: attach-sink SOCKET ROUTE SECONDS IDLE_MS\n");
        return 64;
    }
    r = udpmux_attach(&att, argv[1], argv[2]);
    if (r < 0) {
        fprintf(stderr, "attach %s: %s\n", argv[2], udpmux_strerror(r));
        return 1;
    }
    printf("attached\n");
    fflush(stdout);
    end = now_s() + strtod(argv[3], NULL);
    idle_ms = strtol(argv[4], NULL, 10);
    while (now_s() < end) {
        struct pollfd p = {udpmux_attach_fd(att), POLLIN, 0};
        if (poll(&p, 1, 50) < 0)
            break;
        for (;;) {
            for (int i = 0; i < BATCH; i++) {
                d[i].data = bufs[i];
                d[i].len = sizeof(bufs[i]);
            }
            r = udpmux_attach_recv(att, d, BATCH);
            if (r <= 0)
                break;
            received += (unsigned long long)r;
            for (int i = 0; i < r; i++)
                bytes += d[i].len;
            last = now_s();
        }
        if (r < 0)
            break;
        if (received && idle_ms > 0 && now_s() - last > (double)idle_ms / 1000.0)
            break;
    }
    printf("received=%llu bytes=%llu\n", received, bytes);
    udpmux_attach_close(att);
    return 0;
}
