/*
 * ctlproto.h - the control socket's line protocol, shared by udpmuxd
 * (daemon/control.c), udpmuxctl (ctl/main.c) and the fuzzer
 * (fuzz/fuzz-ctl.c). Pure: no sockets, no allocation, every parse bounded.
 *
 * Wire format (documented for operators in udpmuxctl(8), section CONTROL
 * PROTOCOL):
 *
 *   request  = COMMAND *( SP ARG ) LF          at most UMX_CTL_LINE_MAX bytes
 *   ARG      = WORD | KEY "=" VALUE
 *   response = *( RECORD LF ) "." LF
 *   RECORD   = TYPE *( SP KEY "=" VALUE )
 *
 * TYPE and KEY are 1..31 characters of [a-z0-9._-]. VALUE is any byte
 * string, percent-encoded: bytes outside 0x21..0x7e and '%' itself are sent
 * as "%XX". A failed command answers with one record of type "error"
 * (keys code, errno, message) before the terminating ".". The client may
 * send any number of requests on one connection, one at a time.
 */
#ifndef UMX_CTLPROTO_H
#define UMX_CTLPROTO_H

#include <stddef.h>
#include <stdint.h>

#define UMX_CTL_PROTO_VERSION 1
#define UMX_CTL_LINE_MAX 1024       /* request line, LF included */
#define UMX_CTL_RESP_LINE_MAX 16384 /* response record, LF included */
#define UMX_CTL_FIELDS_MAX 64       /* KEY=VALUE pairs per record */
#define UMX_CTL_KEY_MAX 32          /* TYPE and KEY, NUL included */
#define UMX_CTL_ARG_MAX 128         /* decoded request argument, NUL included */
#define UMX_CTL_FLOWS_DEFAULT 100   /* flows shown when no limit= is given */
#define UMX_CTL_FLOWS_MAX 10000     /* largest limit= accepted */

enum umx_ctl_cmd {
    UMX_CTL_NONE = 0,
    UMX_CTL_STATUS,  /* status */
    UMX_CTL_STATS,   /* stats */
    UMX_CTL_ROUTES,  /* routes */
    UMX_CTL_FLOWS,   /* flows [route=NAME] [peer=ADDR] [limit=N] */
    UMX_CTL_RELOAD,  /* reload */
    UMX_CTL_DRAIN,   /* drain TARGET: a route name, a backend address or ROUTE/BACKEND */
    UMX_CTL_UNDRAIN, /* undrain TARGET: takes a drain back */
    UMX_CTL_CMD_COUNT
};

struct umx_ctl_req {
    enum umx_ctl_cmd cmd;
    char route[UMX_CTL_ARG_MAX];  /* flows: only this route ("" = all) */
    char peer[UMX_CTL_ARG_MAX];   /* flows: peer address or address:port ("" = all) */
    char target[UMX_CTL_ARG_MAX]; /* drain, undrain */
    unsigned limit;               /* flows: 1..UMX_CTL_FLOWS_MAX */
};

/* Name of a command ("status"...), NULL for an unknown value. */
const char *umx_ctl_cmd_name(enum umx_ctl_cmd cmd);

/* Parses one request line (the trailing LF, and a CR before it, are
 * optional). 0 on success; -EINVAL for an unknown command, unknown or
 * repeated argument, missing or extra operand, bad number or bad escape;
 * -E2BIG when the line or an argument is longer than its cap. */
int umx_ctl_req_parse(const char *line, size_t len, struct umx_ctl_req *out);

/* Writes req as a request line with its LF into buf. Returns the length,
 * or -E2BIG when it does not fit, -EINVAL for a bad command. */
int umx_ctl_req_format(const struct umx_ctl_req *req, char *buf, size_t cap);

/* Response writer over a caller-owned buffer. Once a record does not fit,
 * `overflow` is set and nothing more is written, so a caller checks once at
 * the end instead of after every field. */
struct umx_ctl_out {
    char *buf;
    size_t len, cap;
    size_t rec_start; /* where the open record starts (for rollback) */
    int overflow;
};

void umx_ctl_out_init(struct umx_ctl_out *o, char *buf, size_t cap);
/* Starts a record of the given type. */
void umx_ctl_rec(struct umx_ctl_out *o, const char *type);
void umx_ctl_str(struct umx_ctl_out *o, const char *key, const char *val);
void umx_ctl_mem(struct umx_ctl_out *o, const char *key, const void *val, size_t len);
void umx_ctl_u64(struct umx_ctl_out *o, const char *key, uint64_t v);
void umx_ctl_i64(struct umx_ctl_out *o, const char *key, int64_t v);
/* Ends the record (LF). A record longer than UMX_CTL_RESP_LINE_MAX is
 * rolled back and counts as an overflow. */
void umx_ctl_rec_end(struct umx_ctl_out *o);
/* Writes an error record: code is a negative errno. */
void umx_ctl_error(struct umx_ctl_out *o, int code, const char *message);
/* Writes the end-of-response marker. Room for it is always kept back, so
 * a response that overflowed can still be terminated. */
void umx_ctl_done(struct umx_ctl_out *o);

/* A parsed response record: values decoded into `store`. */
struct umx_ctl_rec {
    char type[UMX_CTL_KEY_MAX];
    unsigned n;
    char key[UMX_CTL_FIELDS_MAX][UMX_CTL_KEY_MAX];
    const char *val[UMX_CTL_FIELDS_MAX]; /* NUL-terminated, point into store */
    size_t vlen[UMX_CTL_FIELDS_MAX];     /* decoded length (values may hold NUL) */
    char store[UMX_CTL_RESP_LINE_MAX + UMX_CTL_FIELDS_MAX];
};

/* Parses one response line (LF optional). Returns 0 for a record, 1 for the
 * end marker ".", -EINVAL for malformed input, -E2BIG past a cap. */
int umx_ctl_rec_parse(const char *line, size_t len, struct umx_ctl_rec *out);
/* Value of key, or NULL. */
const char *umx_ctl_rec_get(const struct umx_ctl_rec *r, const char *key);
/* Value of key as an unsigned decimal: 0, -ENOENT, or -EINVAL. */
int umx_ctl_rec_u64(const struct umx_ctl_rec *r, const char *key, uint64_t *v);

/* errno name for a negative errno code ("ENOENT"), or "EUNKNOWN". */
const char *umx_ctl_errname(int code);

#endif
