/* client.h - udpmuxctl's connection to udpmuxd's control socket: one
 * request line out, the whole answer (record lines up to ".") in. */
#ifndef UMXCTL_CLIENT_H
#define UMXCTL_CLIENT_H

#include <stddef.h>

#include "ctlproto.h"

/* sysexits-style exit status of udpmuxctl */
#define EX_OK_ 0
#define EX_CMDERR_ 1
#define EX_USAGE_ 64
#define EX_UNAVAILABLE_ 69
#define EX_SOFTWARE_ 70

#define CTL_DEFAULT_SOCKET "/run/udpmux/control.sock"

extern const char *ctl_sock; /* -s, UDPMUX_CONTROL */
extern int ctl_timeout_ms;   /* -T */

/* A whole answer: its record lines, each NUL-terminated, kept raw and
 * parsed on use (a parsed record is ~20 KiB, a raw one ~200 bytes). */
struct answer {
    char *buf;
    size_t len, cap;
    size_t *off; /* start of each line in buf */
    size_t n, offcap;
};

void answer_free(struct answer *a);
const char *answer_line(const struct answer *a, size_t i);

struct conn {
    int fd;
    char rbuf[UMX_CTL_RESP_LINE_MAX + 1];
    size_t rlen;
};

/* Connects to ctl_sock (prints why not). 0 or -errno. */
int conn_open(struct conn *c);
void conn_close(struct conn *c);
/* Sends one request and reads its whole answer. Returns 0, -EPROTO for a
 * malformed answer, or another negative errno for transport trouble. */
int conn_call(struct conn *c, const struct umx_ctl_req *req, struct answer *a);
/* Prints a transport error of conn_call; returns the exit status for it. */
int transport_exit(int r);

#endif
