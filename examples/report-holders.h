/*
 * report-holders.h - what a program should print when udpmux_bind() fails
 * with -EADDRINUSE: who holds the port, one line per socket. Shared by the
 * examples; header-only so each example stays one file plus this.
 */
#ifndef UDPMUX_EXAMPLE_REPORT_HOLDERS_H
#define UDPMUX_EXAMPLE_REPORT_HOLDERS_H

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <udpmux.h>

/* Prints one line per holder; a SO_REUSEPORT group of one program (a daemon
 * with a socket per worker) would list the same line once per socket, so
 * each line is printed once, with the count. Holders with pid skip_pid are
 * left out. */
static inline void print_holders(FILE *out, const struct udpmux_holder *h, int n, int skip_pid)
{
    char line[256], other[256];
    for (int i = 0; i < n; i++) {
        int same = 1, seen = 0;
        if (h[i].pid == skip_pid)
            continue;
        udpmux_holder_format(&h[i], line, sizeof(line));
        for (int j = 0; j < i && !seen; j++) {
            udpmux_holder_format(&h[j], other, sizeof(other));
            seen = h[j].pid != skip_pid && strcmp(line, other) == 0;
        }
        if (seen)
            continue;
        for (int j = i + 1; j < n; j++) {
            udpmux_holder_format(&h[j], other, sizeof(other));
            same += strcmp(line, other) == 0;
        }
        if (same > 1)
            fprintf(out, "  %s (%d sockets)\n", line, same);
        else
            fprintf(out, "  %s\n", line);
    }
}

/* Prints "prog: cannot bind ADDR: why" and, for -EADDRINUSE, each holder. */
static inline void report_bind_error(FILE *out, const char *prog, const char *addr, int err)
{
    struct sockaddr_storage ss;
    struct udpmux_holder h[16];
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
    print_holders(out, h, n < 16 ? n : 16, -2);
    if (n > 16)
        fprintf(out, "  ... and %d more\n", n - 16);
}

/* After a UDPMUX_BIND_REUSEPORT bind of addr: prints the other programs'
 * sockets in the SO_REUSEPORT group it joined (the kernel now splits the
 * port's datagrams between them and us) and returns how many there are; 0
 * when the port is ours alone. */
static inline int report_joined_group(FILE *out, const char *prog, const char *addr)
{
    struct sockaddr_storage ss;
    struct udpmux_holder h[16];
    int n, others = 0;

    if (udpmux_parse_addr(addr, &ss, NULL) < 0)
        return 0;
    n = udpmux_who_holds((const struct sockaddr *)&ss, h, 16);
    if (n > 16)
        n = 16;
    for (int i = 0; i < n; i++)
        others += h[i].pid != (int)getpid();
    if (others == 0)
        return 0;
    fprintf(out,
            "%s: binding %s with SO_REUSEPORT joins another program's group: the kernel "
            "would split the port's datagrams between it and this program:\n",
            prog, addr);
    print_holders(out, h, n, (int)getpid());
    return others;
}

#endif
