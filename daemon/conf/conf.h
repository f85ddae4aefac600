/*
 * conf.h - private to daemon/conf/: the key tables, the parser's state and
 * the functions the loader's files share. The public API is ../config.h.
 *
 * Who does what:
 *   ini.c    the INI reader: (line, section) and (line, key, value) events
 *   load.c   file -> sections -> keys, in file order; first error wins
 *   keys.c   key tables, defaults, and what each key means
 *   parse.c  value parsers, list items, and conf_errf (FILE:LINE messages)
 *   check.c  whole-route and whole-file checks
 *   quick.c  quick mode (-l/-r)
 *   print.c  the -T printer
 *
 * Nothing here prints or exits; messages go to the caller's buffer as
 * "FILE:LINE: [section] key: message".
 */
#ifndef UMXD_CONF_H
#define UMXD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <syslog.h>

#include "config.h"

#define CONF_MAX_FILE (1024 * 1024) /* bytes; a config is a few KiB */
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define MAX_DURATION_S (UINT64_C(365) * 86400)
#define MSG_LEN 200 /* item error messages */

/* Key tables (keys.c) ------------------------------------------------------ */

enum lkey { L_ADDRESS, L_DUAL_STACK, L_COUNT };

enum gkey {
    G_USER,
    G_GROUP,
    G_WORKERS,
    G_CONTROL,
    G_ATTACH,
    G_METRICS,
    G_MAX_FLOWS,
    G_RCVBUF,
    G_SNDBUF,
    G_BATCH,
    G_GSO,
    G_RATE,
    G_BURST,
    G_RESPONSE_RATE,
    G_SECCOMP,
    G_LOG_LEVEL,
    G_BUSY_POLL,
    G_PREFIX_FLOWS,
    G_FLEET_KEY,
    G_COUNT
};

enum rkey {
    R_MATCH,
    R_FORWARD,
    R_ACTION,
    R_IDLE,
    R_UNANSWERED,
    R_CLASSIFY,
    R_UPSTREAM,
    R_PROXY,
    R_TRANSPARENT,
    R_ROAMING,
    R_MAX_FLOWS,
    R_HEALTH,
    R_HEALTH_SEND,
    R_HEALTH_EXPECT,
    R_HEALTH_INTERVAL,
    R_HEALTH_TIMEOUT,
    R_HEALTH_FALL,
    R_HEALTH_RISE,
    R_DOWN_TIME,
    R_ALLOW,
    R_SHARE,
    R_REPLY_SIZE,
    R_SOURCE,
    R_DATAPATH,
    R_QUIC_LB,
    R_COUNT
};

#define A_FWD (1u << UMXD_FORWARD)
#define A_ATT (1u << UMXD_ATTACH)
#define A_STUN (1u << UMXD_STUN)
#define A_ALL 0xffu

/* Which actions a route key means something for. A key that does nothing
 * with the route's action is an error rather than silently ignored: it is
 * almost always a typo in `action =` or a forgotten edit. */
struct conf_rkey {
    const char *name;
    unsigned actions;
    bool list; /* may repeat; values accumulate */
};
struct conf_level {
    const char *name;
    int level;
};
#define CONF_NLEVELS 7
extern const struct conf_rkey conf_rkeys[R_COUNT];
extern const char *const conf_lkey_names[L_COUNT];
extern const char *const conf_gkey_names[G_COUNT];
extern const char *const conf_action_names[5];
extern const char *const conf_share_names[3];
extern const char *const conf_health_names[4];
extern const struct conf_level conf_log_levels[CONF_NLEVELS];

/* Parser state ------------------------------------------------------------- */

enum sec_kind { SEC_NONE, SEC_LISTEN, SEC_UDPMUX, SEC_ROUTE };

struct header {
    int line;
    char text[UMXD_NAME_MAX + 32]; /* between the brackets, trimmed (may be cut) */
    bool too_long;                 /* text did not fit */
};

struct route_state {
    int key_line[R_COUNT]; /* first line each key was given on, 0: not given */
    int backend_line[UMXD_MAX_BACKENDS];
};

struct ctx {
    struct umxd_config *cfg;
    const char *name; /* file name for messages */
    char *err;
    size_t errlen;
    int ret;      /* 0, or the negative errno of the recorded error */
    int err_line; /* line of the recorded error */

    /* quick mode: messages name the argument instead of FILE:LINE */
    const char *const *quick_args;

    struct header hdr; /* of the section being filled */
    int cur;           /* 0: a section is being filled, -1: none yet */
    enum sec_kind kind;
    char sec[UMXD_NAME_MAX + 40]; /* "[route x]" for messages */
    int route;                    /* index in cfg->routes when kind == SEC_ROUTE */

    int listen_hdr_line, udpmux_hdr_line;
    int listen_line[UMXD_MAX_LISTEN];
    int lkey_line[L_COUNT];
    int gkey_line[G_COUNT];
    struct route_state rs[UMXD_MAX_ROUTES];
};

/* parse.c: records an error unless one is already recorded at an earlier or
 * equal line: within one validation pass the first error in file order
 * wins. In quick mode, line is the 1-based index of the -r argument. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
void conf_errf(struct ctx *c, int line, const char *sec, const char *key, const char *fmt, ...);

/* parse.c: value parsers, 0 or -EINVAL / -ERANGE (-E2BIG for hex) */
int conf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out);
int conf_parse_duration(const char *s, uint64_t *ns);
int conf_parse_size(const char *s, uint64_t max, uint64_t *out);
int conf_parse_bool(const char *s, int *out);
int conf_parse_enum(const char *s, const char *const *names, size_t n, int *out);
int conf_parse_hex(const char *s, uint8_t *out, size_t cap);
bool conf_valid_name(const char *s);
bool conf_is_ws(char ch);
bool conf_copy_trimmed(const char *b, const char *e, char *out, size_t cap);
/* parse.c: comma-separated lists; each returns NULL or the message */
const char *conf_for_each_item(const char *value, const char *(*fn)(void *, const char *, char *),
                               void *arg, char *msg);
const char *conf_backend_item(void *arg, const char *item, char *msg); /* arg: umxd_route */
const char *conf_listen_item(void *arg, const char *item, char *msg);  /* arg: umxd_config */
const char *conf_allow_item(void *arg, const char *item, char *msg);   /* arg: umxd_route */
/* parse.c: quic-lb = config-id=N server-id-length=N nonce-length=N [key=HEX] */
const char *conf_parse_quiclb(const char *value, struct umxd_quiclb *q, char *msg);

/* keys.c */
void conf_route_defaults(struct umxd_route *r);
void conf_listen_key(struct ctx *c, const char *key, const char *value, int line);
void conf_udpmux_key(struct ctx *c, const char *key, const char *value, int line);
void conf_route_key(struct ctx *c, const char *key, const char *value, int line);
void conf_append_match(struct ctx *c, struct umxd_route *r, const char *value, int line);

/* check.c */
/* parse.c: the start and end of every load (file, string or quick mode).
 * conf_ctx_new makes a context holding a config of defaults (0, or
 * -ENOMEM with "WHO: out of memory", or without WHO, in err);
 * conf_ctx_done hands the config to *out when ret is 0, frees the rest,
 * and returns ret. */
int conf_ctx_new(struct ctx **out, const char *who, char *err, size_t errlen);
int conf_ctx_done(struct ctx *c, int ret, struct umxd_config **out);
void conf_finish_route(struct ctx *c, unsigned idx, const char *sec, int hdr_line);
void conf_finish_config(struct ctx *c);
void conf_check_loops(struct ctx *c);

#endif
