/*
 * report-holders.h - what a program should print when udpmux_bind() fails
 * with -EADDRINUSE: who holds the port, one line per socket. Shared by the
 * examples; header-only so each example stays one file plus this.
 */
#ifndef UDPMUX_EXAMPLE_REPORT_HOLDERS_H
#define UDPMUX_EXAMPLE_REPORT_HOLDERS_H

#include <errno.h>
#include <stdio.h>
#include <sys/socket.h>

#include <udpmux.h>

/* Prints "prog: cannot bind ADDR: why" and, for -EADDRINUSE, each holder. */
static void report_bind_error(FILE *out, const char *prog, const char *addr, int err)
{
    struct sockaddr_storage ss;
    struct udpmux_holder h[16];
    char line[256];
    int n;

    fprintf(out, "%s: cannot bind %s: %s\n", prog, addr, udpmux_strerror(err));
    if (err != -EADDRINUSE || udpmux_parse_addr(addr, &ss, NULL) < 0)
        return;
    n = udpmux_who_holds((const struct sockaddr *)&ss, h, 16);
    if (n < 0) {
        fprintf(out, "%s: cannot tell who holds the port: %s\n", prog, udpmux_strerror(n));
        return;
    }
    if (n == 0) {
        fprintf(out, "%s: no socket holds the port any more; try again\n", prog);
        return;
    }
    fprintf(out, "%s: the port is held by:\n", prog);
    for (int i = 0; i < n && i < 16; i++) {
        udpmux_holder_format(&h[i], line, sizeof(line));
        fprintf(out, "  %s\n", line);
    }
    if (n > 16)
        fprintf(out, "  ... and %d more\n", n - 16);
}

#endif
