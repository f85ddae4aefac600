/*
 * udpmux-bind-check.c - can this program bind ADDR? If not, who holds it?
 *
 *   udpmux-bind-check 0.0.0.0:53
 *   udpmux-bind-check: cannot bind 0.0.0.0:53: Address already in use
 *   udpmux-bind-check: the port is held by:
 *     pid 812 (dnsmasq) uid 0 on 0.0.0.0:53, SO_REUSEADDR=no SO_REUSEPORT=no
 *
 * Binds the way udpmux does (exclusive unless --reuseport), releases the
 * port at once, and exits 0 if the bind worked, 1 if it did not, 2 if it
 * worked only by joining another program's SO_REUSEPORT group (--reuseport:
 * the kernel would then split the port's datagrams between the two), 64 on
 * a usage error. Run it as root to see other users' processes.
 */
#include <stdio.h>
#include <string.h>

#include <udpmux.h>

#include "report-holders.h"

int main(int argc, char **argv)
{
    struct udpmux *mux;
    unsigned flags = 0;
    const char *addr = NULL;
    int r;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reuseport") == 0)
            flags |= UDPMUX_BIND_REUSEPORT;
        else if (!addr && argv[i][0] != '-')
            addr = argv[i];
        else
            addr = NULL, argc = 0;
    }
    if (!addr) {
        fprintf(stderr, "usage: udpmux-bind-check [--reuseport] ADDR:PORT\n");
        return 64;
    }
    r = udpmux_new(&mux, NULL);
    if (r < 0) {
        fprintf(stderr, "udpmux-bind-check: %s\n", udpmux_strerror(r));
        return 1;
    }
    r = udpmux_bind(mux, addr, flags);
    if (r < 0) {
        report_bind_error(stdout, "udpmux-bind-check", addr, r);
        udpmux_free(mux);
        return 1;
    }
    if ((flags & UDPMUX_BIND_REUSEPORT) && report_joined_group(stdout, "udpmux-bind-check", addr)) {
        udpmux_free(mux);
        return 2;
    }
    printf("udpmux-bind-check: %s is free\n", addr);
    udpmux_free(mux);
    return 0;
}
