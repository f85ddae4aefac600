/*
 * config.c - udpmuxd's configuration: INI file (inih), quick mode, printout.
 *
 * How a file is read:
 *
 * 1. The whole file is read into memory (capped at CONF_MAX_FILE) and
 *    pre-scanned line by line with the same classification inih uses
 *    (comment, continuation, [section], key = value). The pre-scan records
 *    every section header with its line and the first syntax error. We need
 *    it because inih (Debian's r55) never tells us about a section header:
 *    an empty [route x] would be invisible, whole-section errors could not
 *    name the header line, and inih truncates section names to 49 bytes.
 * 2. inih parses the text up to (not including) the first bad line and
 *    calls handler() for every key. handler() locates its section from the
 *    pre-scan by line number, so we never rely on inih's section string.
 * 3. Sections are "entered" in file order as keys arrive, and a section is
 *    validated as a whole (missing match, compiled rule, ...) when the next
 *    one starts. So errors come out in file order: the first one wins and
 *    parsing stops there.
 *
 * Nothing here prints or exits; messages go to the caller's buffer as
 * "FILE:LINE: [section] key: message".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#define INI_HANDLER_LINENO 1
#include <ini.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <syslog.h>
#include <netinet/in.h>

#include "config.h"
#include "internal.h"

#define CONF_MAX_FILE (1024 * 1024) /* bytes; a config is a few KiB */
#define CONF_MAX_LINE 4096          /* bytes per line, without the newline */
#define CONF_MAX_SECTIONS 256       /* headers of any kind */
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_S UINT64_C(1000000000)
#define MAX_DURATION_S (UINT64_C(365) * 86400)
#define MSG_LEN 200 /* item error messages */

/* ------------------------------------------------------------------------ */
/* Key tables                                                               */
/* ------------------------------------------------------------------------ */

enum lkey { L_ADDRESS, L_DUAL_STACK, L_COUNT };
static const char *const lkey_names[L_COUNT] = {"address", "dual-stack"};

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
    G_COUNT
};
static const char *const gkey_names[G_COUNT] = {
    "user",           "group",         "workers", "control",   "attach",    "metrics",
    "max-flows",      "rcvbuf",        "sndbuf",  "batch",     "gso",       "new-flow-rate",
    "new-flow-burst", "response-rate", "seccomp", "log-level", "busy-poll", "max-flows-per-prefix",
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
    R_COUNT
};

#define A_FWD (1u << UMXD_FORWARD)
#define A_ATT (1u << UMXD_ATTACH)
#define A_STUN (1u << UMXD_STUN)
#define A_ALL 0xffu

/* Which actions a route key means something for. A key that does nothing
 * with the route's action is an error rather than silently ignored: it is
 * almost always a typo in `action =` or a forgotten edit. */
static const struct {
    const char *name;
    unsigned actions;
    bool list; /* may repeat; values accumulate */
} rkeys[R_COUNT] = {
    [R_MATCH] = {"match", A_ALL, true},
    [R_FORWARD] = {"forward", A_FWD, true},
    [R_ACTION] = {"action", A_ALL, false},
    [R_IDLE] = {"idle-timeout", A_FWD | A_ATT, false},
    [R_UNANSWERED] = {"unanswered-timeout", A_FWD | A_ATT, false},
    [R_CLASSIFY] = {"classify", A_FWD | A_ATT, false},
    [R_UPSTREAM] = {"upstream", A_FWD, false},
    [R_PROXY] = {"proxy-protocol", A_FWD, false},
    [R_TRANSPARENT] = {"transparent", A_FWD, false},
    [R_ROAMING] = {"roaming", A_FWD | A_ATT, false},
    [R_MAX_FLOWS] = {"max-flows", A_FWD | A_ATT, false},
    [R_HEALTH] = {"health", A_FWD, false},
    [R_HEALTH_SEND] = {"health-send", A_FWD, false},
    [R_HEALTH_EXPECT] = {"health-expect", A_FWD, false},
    [R_HEALTH_INTERVAL] = {"health-interval", A_FWD, false},
    [R_HEALTH_TIMEOUT] = {"health-timeout", A_FWD, false},
    [R_HEALTH_FALL] = {"health-fall", A_FWD, false},
    [R_HEALTH_RISE] = {"health-rise", A_FWD, false},
    [R_DOWN_TIME] = {"down-time", A_FWD, false},
    [R_ALLOW] = {"allow", A_ATT, true},
    [R_SHARE] = {"share", A_ATT, false},
    [R_REPLY_SIZE] = {"reply-size", A_STUN, false},
    [R_SOURCE] = {"source", A_FWD, false},
};

static const char *const action_names[] = {
    [UMXD_FORWARD] = "forward", [UMXD_DROP] = "drop",     [UMXD_STUN] = "stun",
    [UMXD_ECHO] = "echo",       [UMXD_ATTACH] = "attach",
};
static const char *const share_names[] = {
    [UMXD_SHARE_EXCLUSIVE] = "exclusive",
    [UMXD_SHARE_FANOUT] = "fanout",
    [UMXD_SHARE_BALANCE] = "balance",
};
static const char *const health_names[] = {
    [UMXD_HEALTH_NONE] = "none",
    [UMXD_HEALTH_DNS] = "dns",
    [UMXD_HEALTH_STUN] = "stun",
    [UMXD_HEALTH_PAYLOAD] = "payload",
};
static const struct {
    const char *name;
    int level;
} log_levels[] = {
    {"err", LOG_ERR},       {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"warn", LOG_WARNING},
    {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
};

/* ------------------------------------------------------------------------ */
/* Parser state                                                             */
/* ------------------------------------------------------------------------ */

enum sec_kind { SEC_NONE, SEC_LISTEN, SEC_UDPMUX, SEC_ROUTE };

struct header {
    int line;
    char text[UMXD_NAME_MAX + 32]; /* between the brackets, trimmed (may be cut) */
    bool too_long;                 /* text did not fit */
};

struct route_state {
    int key_line[R_COUNT]; /* first line each key was given on, 0: not given */
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

    struct header *hdr;
    unsigned nhdr, next_hdr;
    int syntax_line;    /* first line the pre-scan rejected (0: none) */
    bool syntax_header; /* ... and it is a broken [section] header */
    char syntax_msg[128];

    int cur; /* index in hdr of the section being filled, -1: none yet */
    enum sec_kind kind;
    char sec[UMXD_NAME_MAX + 40]; /* "[route x]" for messages */
    int route;                    /* index in cfg->routes when kind == SEC_ROUTE */

    int listen_hdr_line, udpmux_hdr_line;
    int listen_line[UMXD_MAX_LISTEN];
    int lkey_line[L_COUNT];
    int gkey_line[G_COUNT];
    struct route_state rs[UMXD_MAX_ROUTES];
};

/* Records an error unless one is already recorded at an earlier or equal
 * line: within one validation pass the first error in file order wins. */
#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static void
errf(struct ctx *c, int line, const char *sec, const char *key, const char *fmt, ...)
{
    char msg[512], loc[PATH_MAX + 32];
    va_list ap;

    if (c->ret && c->err_line <= line)
        return;
    c->ret = -EINVAL;
    c->err_line = line;
    if (!c->err || !c->errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, MSG_LEN, fmt, ap);
    va_end(ap);
    if (c->quick_args) /* line is the 1-based index of the -r argument */
        snprintf(loc, sizeof(loc), "-r %s", c->quick_args[line - 1]);
    else
        snprintf(loc, sizeof(loc), "%s:%d", c->name, line);
    snprintf(c->err, c->errlen, "%s: %s%s%s%s%s", loc, sec ? sec : "",
             sec && key ? " " : (sec ? ": " : ""), key ? key : "", key ? ": " : "", msg);
}

/* ------------------------------------------------------------------------ */
/* Value parsers (pure; return 0 or -EINVAL / -ERANGE)                      */
/* ------------------------------------------------------------------------ */

static int parse_u64(const char *s, uint64_t *out, const char **end)
{
    char *e;
    unsigned long long v;

    if (!isdigit((unsigned char)*s))
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &e, 10);
    if (errno == ERANGE)
        return -ERANGE;
    *out = v;
    if (end)
        *end = e;
    else if (*e)
        return -EINVAL;
    return 0;
}

static int parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    int r = parse_u64(s, out, NULL);
    if (r)
        return r;
    if (*out < min || *out > max)
        return -ERANGE;
    return 0;
}

/* "250ms", "180s", "5m", "1h", "2d"; a bare number is seconds. */
static int parse_duration(const char *s, uint64_t *ns)
{
    const char *unit;
    uint64_t v, mul;
    int r = parse_u64(s, &v, &unit);

    if (r)
        return r;
    if (!*unit || !strcmp(unit, "s"))
        mul = NS_PER_S;
    else if (!strcmp(unit, "ms"))
        mul = NS_PER_MS;
    else if (!strcmp(unit, "m"))
        mul = 60 * NS_PER_S;
    else if (!strcmp(unit, "h"))
        mul = 3600 * NS_PER_S;
    else if (!strcmp(unit, "d"))
        mul = 86400 * NS_PER_S;
    else
        return -EINVAL;
    if (v > MAX_DURATION_S * NS_PER_S / mul)
        return -ERANGE;
    *ns = v * mul;
    return 0;
}

/* "4M", "512K", "1G" (powers of 1024, case-insensitive), or bytes. */
static int parse_size(const char *s, uint64_t max, uint64_t *out)
{
    const char *unit;
    uint64_t v, mul = 1;
    int r = parse_u64(s, &v, &unit);

    if (r)
        return r;
    if (*unit) {
        switch (tolower((unsigned char)*unit)) {
        case 'k':
            mul = 1024;
            break;
        case 'm':
            mul = 1024 * 1024;
            break;
        case 'g':
            mul = 1024 * 1024 * 1024;
            break;
        default:
            return -EINVAL;
        }
        if (unit[1])
            return -EINVAL;
    }
    if (v > max / mul)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

static int parse_bool(const char *s, int *out)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *out = 1;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *out = 0;
            return 0;
        }
    }
    return -EINVAL;
}

static int parse_enum(const char *s, const char *const *names, size_t n, int *out)
{
    for (size_t i = 0; i < n; i++) {
        if (names[i] && !strcmp(s, names[i])) {
            *out = (int)i;
            return 0;
        }
    }
    return -EINVAL;
}

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    ch = tolower(ch);
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1;
}

/* Hex bytes with an optional 0x prefix and ':' or ' ' separators between
 * bytes, as in rule syntax. Returns the length, -EINVAL or -E2BIG. */
static int parse_hex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;

    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    while (*s) {
        int hi, lo;
        if (*s == ':' || *s == ' ') {
            s++;
            continue;
        }
        hi = hexval((unsigned char)s[0]);
        lo = hi < 0 ? -1 : hexval((unsigned char)s[1]);
        if (hi < 0 || lo < 0)
            return -EINVAL;
        if (n == cap)
            return -E2BIG;
        out[n++] = (uint8_t)(hi << 4 | lo);
        s += 2;
    }
    return n ? (int)n : -EINVAL;
}

static bool valid_name(const char *s)
{
    if (!*s || strlen(s) >= UMXD_NAME_MAX)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    }
    return true;
}

static bool is_ws(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

/* Copies [b, e) trimmed into out (cap bytes); false if it does not fit. */
static bool copy_trimmed(const char *b, const char *e, char *out, size_t cap)
{
    while (b < e && is_ws(*b))
        b++;
    while (e > b && is_ws(e[-1]))
        e--;
    if ((size_t)(e - b) >= cap)
        return false;
    memcpy(out, b, (size_t)(e - b));
    out[e - b] = '\0';
    return true;
}

static bool port_is_zero(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_port == 0;
    return ((const struct sockaddr_in6 *)ss)->sin6_port == 0;
}

static bool addr_same(const struct sockaddr_storage *a, socklen_t alen,
                      const struct sockaddr_storage *b, socklen_t blen)
{
    return alen == blen && memcmp(a, b, alen) == 0;
}

/* ------------------------------------------------------------------------ */
/* Defaults                                                                 */
/* ------------------------------------------------------------------------ */

static void route_defaults(struct umxd_route *r)
{
    memset(r, 0, sizeof(*r));
    r->action = UMXD_FORWARD;
    r->idle_timeout_ns = 120 * NS_PER_S;
    r->unanswered_timeout_ns = 30 * NS_PER_S;
    r->classify_every = 0;
    r->connected = 1;
    r->shared = 0;
    r->proxy_v2 = 0;
    r->transparent = 0;
    r->roaming = 1;
    r->max_flows = 0;
    r->health = UMXD_HEALTH_NONE;
    r->health_interval_ns = 5 * NS_PER_S;
    r->health_timeout_ns = 1 * NS_PER_S;
    r->health_fall = 3;
    r->health_rise = 2;
    r->down_time_ns = 10 * NS_PER_S;
    r->share = UMXD_SHARE_EXCLUSIVE;
}

void umxd_config_defaults(struct umxd_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->workers = 0;
    snprintf(cfg->control, sizeof(cfg->control), "%s", "/run/udpmux/control.sock");
    snprintf(cfg->attach, sizeof(cfg->attach), "%s", "/run/udpmux/attach.sock");
    cfg->max_flows = 131072;
    cfg->max_flows_per_prefix = UINT32_MAX; /* auto */
    cfg->rcvbuf = 4 * 1024 * 1024;
    cfg->sndbuf = 4 * 1024 * 1024;
    cfg->batch = 64;
    cfg->gso = 1;
    cfg->rate_new_flows = 1000;
    cfg->rate_burst = 2000;
    cfg->rate_responses = 100;
    cfg->seccomp = 1;
    cfg->log_level = LOG_INFO;
    cfg->dual_stack = 0;
}

void umxd_config_free(struct umxd_config *cfg)
{
    if (!cfg)
        return;
    for (unsigned i = 0; i < cfg->nroutes && i < UMXD_MAX_ROUTES; i++)
        udpmux_rule_free(cfg->routes[i].rule);
    free(cfg);
}

_Static_assert(UMXD_MAX_ROUTES <= UMX_RULE_INDEX_MAX, "route positions must fit the index");

int umxd_config_index(const struct umxd_config *cfg, struct umx_rule_index *idx)
{
    const struct udpmux_rule *rules[UMXD_MAX_ROUTES];
    unsigned n = cfg->nroutes < UMXD_MAX_ROUTES ? cfg->nroutes : UMXD_MAX_ROUTES;
    for (unsigned r = 0; r < n; r++)
        rules[r] = cfg->routes[r].rule;
    return umx_rule_index_build(idx, rules, n);
}

int umxd_config_route(const struct umxd_config *cfg, const char *name)
{
    for (unsigned i = 0; cfg && name && i < cfg->nroutes; i++) {
        if (!strcmp(cfg->routes[i].name, name))
            return (int)i;
    }
    return -1;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers for [listen] and routes                                   */
/* ------------------------------------------------------------------------ */

/* Adds one backend (already trimmed). Returns 0 or an error message. */
static const char *add_backend(struct umxd_route *r, const char *text, char *msg)
{
    struct umxd_backend *b;

    if (r->nbackends >= UMXD_MAX_BACKENDS) {
        snprintf(msg, MSG_LEN, "too many backends (max %d)", UMXD_MAX_BACKENDS);
        return msg;
    }
    b = &r->backends[r->nbackends];
    memset(b, 0, sizeof(*b));
    if (strlen(text) >= sizeof(b->text) || udpmux_parse_addr(text, &b->addr, &b->addrlen) < 0) {
        snprintf(msg, MSG_LEN, "bad backend address '%.80s' (expected IPv4:PORT or [IPv6]:PORT)",
                 text);
        return msg;
    }
    if (port_is_zero(&b->addr)) {
        snprintf(msg, MSG_LEN, "backend '%.80s' has port 0", text);
        return msg;
    }
    for (unsigned i = 0; i < r->nbackends; i++) {
        if (addr_same(&r->backends[i].addr, r->backends[i].addrlen, &b->addr, b->addrlen)) {
            snprintf(msg, MSG_LEN, "backend '%.80s' listed twice", text);
            return msg;
        }
    }
    snprintf(b->text, sizeof(b->text), "%s", text);
    r->nbackends++;
    return NULL;
}

/* Calls fn for every comma-separated item of value (trimmed, non-empty).
 * Stops at the first message fn returns. */
static const char *for_each_item(const char *value, const char *(*fn)(void *, const char *, char *),
                                 void *arg, char *msg)
{
    char item[256];
    const char *p = value;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *m;
        if (!copy_trimmed(p, end, item, sizeof(item))) {
            snprintf(msg, MSG_LEN, "list item too long");
            return msg;
        }
        if (!item[0]) {
            snprintf(msg, MSG_LEN, "empty list item");
            return msg;
        }
        m = fn(arg, item, msg);
        if (m)
            return m;
        if (!comma)
            return NULL;
        p = comma + 1;
    }
}

static const char *backend_item(void *arg, const char *item, char *msg)
{
    return add_backend(arg, item, msg);
}

static const char *listen_item(void *arg, const char *item, char *msg)
{
    struct umxd_config *cfg = arg;
    struct sockaddr_storage ss;
    socklen_t len;

    if (cfg->nlisten >= UMXD_MAX_LISTEN) {
        snprintf(msg, MSG_LEN, "too many listen addresses (max %d)", UMXD_MAX_LISTEN);
        return msg;
    }
    if (strlen(item) >= sizeof(cfg->listen_text[0]) || udpmux_parse_addr(item, &ss, &len) < 0) {
        snprintf(msg, MSG_LEN, "bad address '%.80s' (expected IPv4:PORT or [IPv6]:PORT)", item);
        return msg;
    }
    for (unsigned i = 0; i < cfg->nlisten; i++) {
        if (addr_same(&cfg->listen[i], cfg->listen_len[i], &ss, len)) {
            snprintf(msg, MSG_LEN, "address '%.80s' listed twice", item);
            return msg;
        }
    }
    cfg->listen[cfg->nlisten] = ss;
    cfg->listen_len[cfg->nlisten] = len;
    snprintf(cfg->listen_text[cfg->nlisten], sizeof(cfg->listen_text[0]), "%s", item);
    cfg->nlisten++;
    return NULL;
}

static const char *allow_item(void *arg, const char *item, char *msg)
{
    struct umxd_route *r = arg;
    uint64_t id;
    bool is_user;
    const char *v;

    if (!strncmp(item, "user:", 5) || !strncmp(item, "uid:", 4)) {
        is_user = true;
    } else if (!strncmp(item, "group:", 6) || !strncmp(item, "gid:", 4)) {
        is_user = false;
    } else {
        snprintf(msg, MSG_LEN, "bad entry '%.80s' (expected user:NAME, group:NAME, uid:N or gid:N)",
                 item);
        return msg;
    }
    v = strchr(item, ':') + 1;
    if (item[1] == 'i') { /* uid: or gid: */
        if (parse_uint(v, 0, UINT32_MAX - 1, &id)) {
            snprintf(msg, MSG_LEN, "bad id in '%.80s'", item);
            return msg;
        }
    } else if (is_user) {
        struct passwd *pw = getpwnam(v);
        if (!pw) {
            snprintf(msg, MSG_LEN, "unknown user '%.64s'", v);
            return msg;
        }
        id = pw->pw_uid;
    } else {
        struct group *gr = getgrnam(v);
        if (!gr) {
            snprintf(msg, MSG_LEN, "unknown group '%.64s'", v);
            return msg;
        }
        id = gr->gr_gid;
    }
    uint32_t *list = is_user ? r->allow_uid : r->allow_gid;
    unsigned *n = is_user ? &r->nallow_uid : &r->nallow_gid;
    for (unsigned i = 0; i < *n; i++) {
        if (list[i] == id) {
            snprintf(msg, MSG_LEN, "'%.80s' listed twice", item);
            return msg;
        }
    }
    if (*n >= UMXD_MAX_ALLOW) {
        snprintf(msg, MSG_LEN, "too many %s entries (max %d)", is_user ? "user" : "group",
                 UMXD_MAX_ALLOW);
        return msg;
    }
    list[(*n)++] = (uint32_t)id;
    return NULL;
}

/* Whole-route checks, run once every key of the route is known. Compiles
 * the rule last. */
static void finish_route(struct ctx *c, unsigned idx, const char *sec, int hdr_line)
{
    struct umxd_route *r = &c->cfg->routes[idx];
    const int *kl = c->rs[idx].key_line;
    char msg[256];
    int rc;

    if (!kl[R_MATCH])
        errf(c, hdr_line, sec, "match", "missing: every route needs match = RULE");
    if (r->action == UMXD_FORWARD && r->nbackends == 0)
        errf(c, hdr_line, sec, "forward",
             "action = forward needs at least one backend (forward = ADDR:PORT)");
    if (r->action != UMXD_FORWARD && kl[R_FORWARD])
        errf(c, kl[R_FORWARD], sec, "forward", "backends given but action = %s",
             action_names[r->action]);
    if (r->action == UMXD_ATTACH && r->nallow_uid + r->nallow_gid == 0)
        errf(c, hdr_line, sec, "allow",
             "action = attach needs at least one allow = user:NAME|group:NAME|uid:N|gid:N");
    for (unsigned k = 0; k < R_COUNT; k++) {
        if (k == R_FORWARD || !kl[k] || (rkeys[k].actions & (1u << r->action)))
            continue;
        errf(c, kl[k], sec, rkeys[k].name, "has no effect with action = %s",
             action_names[r->action]);
    }
    if (r->health != UMXD_HEALTH_PAYLOAD) {
        if (kl[R_HEALTH_SEND])
            errf(c, kl[R_HEALTH_SEND], sec, "health-send", "only valid with health = payload");
        if (kl[R_HEALTH_EXPECT])
            errf(c, kl[R_HEALTH_EXPECT], sec, "health-expect", "only valid with health = payload");
    } else if (!r->health_send_len) {
        errf(c, kl[R_HEALTH], sec, "health", "health = payload needs health-send = HEX");
    }
    if (r->shared && r->action == UMXD_FORWARD) {
        /* one socket per worker for every flow of the route: flows differ
         * by their source address, so they need a prefix of local addresses
         * of the backends' family, and the client's own address
         * (transparent) cannot be one of them */
        if (!r->source.ss_family)
            errf(c, kl[R_UPSTREAM], sec, "upstream",
                 "upstream = shared needs source = PREFIX (local addresses, e.g. 127.77.0.0/16)");
        else if (r->source_bits + 2 > (r->source.ss_family == AF_INET ? 32u : 128u))
            errf(c, kl[R_SOURCE], sec, "source",
                 "upstream = shared needs a prefix with at least 2 host bits");
        if (r->transparent)
            errf(c, kl[R_TRANSPARENT], sec, "transparent",
                 "transparent = yes cannot be combined with upstream = shared");
        for (unsigned b = 0; b < r->nbackends && r->source.ss_family; b++)
            if (r->backends[b].addr.ss_family != r->source.ss_family) {
                errf(c, kl[R_FORWARD], sec, "forward",
                     "upstream = shared: backend %u is not of the source prefix's address family",
                     b + 1);
                break;
            }
    }
    if (r->health_timeout_ns > r->health_interval_ns) {
        int l = kl[R_HEALTH_TIMEOUT] ? kl[R_HEALTH_TIMEOUT] : kl[R_HEALTH_INTERVAL];
        errf(c, l, sec, kl[R_HEALTH_TIMEOUT] ? "health-timeout" : "health-interval",
             "health-timeout must not exceed health-interval");
    }
    if (!kl[R_MATCH])
        return;
    msg[0] = '\0';
    rc = udpmux_rule_compile(&r->rule, r->match, msg, sizeof(msg));
    if (rc < 0) {
        r->rule = NULL;
        errf(c, kl[R_MATCH], sec, "match", "bad rule: %s", msg[0] ? msg : udpmux_strerror(rc));
        if (rc == -ENOMEM && c->err_line == kl[R_MATCH])
            c->ret = -ENOMEM;
    }
}

/* ------------------------------------------------------------------------ */
/* Sections                                                                 */
/* ------------------------------------------------------------------------ */

static void finish_section(struct ctx *c)
{
    if (c->cur < 0 || c->kind != SEC_ROUTE)
        return;
    finish_route(c, (unsigned)c->route, c->sec, c->hdr[c->cur].line);
}

static void begin_section(struct ctx *c, unsigned h)
{
    const struct header *hd = &c->hdr[h];
    const char *t = hd->text;
    struct umxd_config *cfg = c->cfg;

    c->cur = (int)h;
    c->kind = SEC_NONE;
    snprintf(c->sec, sizeof(c->sec), "[%.*s]", UMXD_NAME_MAX + 16, t);
    if (!strcmp(t, "listen") || !strcmp(t, "udpmux")) {
        int *seen = t[0] == 'l' ? &c->listen_hdr_line : &c->udpmux_hdr_line;
        if (*seen) {
            errf(c, hd->line, c->sec, NULL, "section given twice (first at line %d)", *seen);
            return;
        }
        *seen = hd->line;
        c->kind = t[0] == 'l' ? SEC_LISTEN : SEC_UDPMUX;
        return;
    }
    if (!strncmp(t, "route", 5) && (t[5] == '\0' || is_ws(t[5]))) {
        const char *name = t + 5;
        struct umxd_route *r;
        while (is_ws(*name))
            name++;
        if (!*name) {
            errf(c, hd->line, c->sec, NULL, "a route needs a name: [route NAME]");
            return;
        }
        if (hd->too_long || !valid_name(name)) {
            errf(c, hd->line, c->sec, NULL,
                 "bad route name (letters, digits, '-', '_', '.'; at most %d bytes)",
                 UMXD_NAME_MAX - 1);
            return;
        }
        snprintf(c->sec, sizeof(c->sec), "[route %s]", name);
        for (unsigned i = 0; i < cfg->nroutes; i++) {
            if (!strcmp(cfg->routes[i].name, name)) {
                errf(c, hd->line, c->sec, NULL, "duplicate route name (first at line %d)",
                     cfg->routes[i].line);
                return;
            }
        }
        if (cfg->nroutes >= UMXD_MAX_ROUTES) {
            errf(c, hd->line, c->sec, NULL, "too many routes (max %d)", UMXD_MAX_ROUTES);
            return;
        }
        r = &cfg->routes[cfg->nroutes];
        route_defaults(r);
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->line = hd->line;
        memset(&c->rs[cfg->nroutes], 0, sizeof(c->rs[0]));
        c->route = (int)cfg->nroutes++;
        c->kind = SEC_ROUTE;
        return;
    }
    errf(c, hd->line, c->sec, NULL,
         "unknown section (expected [listen], [udpmux] or [route NAME])");
}

/* Enters, in order, every section whose header is before `line`,
 * validating the one left behind. */
static void enter_upto(struct ctx *c, int line)
{
    while (!c->ret && c->next_hdr < c->nhdr && c->hdr[c->next_hdr].line < line) {
        finish_section(c);
        if (c->ret)
            return;
        begin_section(c, c->next_hdr++);
    }
}

static int once(struct ctx *c, int *seen, int line, const char *key)
{
    if (*seen) {
        errf(c, line, c->sec, key, "given twice (first at line %d)", *seen);
        return -1;
    }
    *seen = line;
    return 0;
}

static void listen_key(struct ctx *c, const char *key, const char *value, int line)
{
    char msg[MSG_LEN];
    const char *m;
    int k;

    for (k = 0; k < L_COUNT && strcmp(key, lkey_names[k]); k++)
        ;
    if (k == L_COUNT) {
        errf(c, line, c->sec, key, "unknown key (expected address or dual-stack)");
        return;
    }
    if (k == L_ADDRESS) {
        m = for_each_item(value, listen_item, c->cfg, msg);
        if (m)
            errf(c, line, c->sec, key, "%s", m);
        if (!c->lkey_line[k])
            c->lkey_line[k] = line;
        return;
    }
    if (once(c, &c->lkey_line[k], line, key))
        return;
    if (parse_bool(value, &c->cfg->dual_stack))
        errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
}

static void path_value(struct ctx *c, int line, const char *key, const char *value, char *out,
                       size_t cap)
{
    struct sockaddr_un sun;
    if (!*value) {
        errf(c, line, c->sec, key, "empty path");
        return;
    }
    /* Both paths are UNIX socket paths: catch sun_path overflows here. */
    if (strlen(value) >= sizeof(sun.sun_path) || strlen(value) >= cap) {
        errf(c, line, c->sec, key, "path too long for a UNIX socket (max %zu bytes)",
             sizeof(sun.sun_path) - 1);
        return;
    }
    snprintf(out, cap, "%s", value);
}

static void udpmux_key(struct ctx *c, const char *key, const char *value, int line)
{
    struct umxd_config *cfg = c->cfg;
    uint64_t v;
    int k, r = 0;

    for (k = 0; k < G_COUNT && strcmp(key, gkey_names[k]); k++)
        ;
    if (k == G_COUNT) {
        errf(c, line, c->sec, key, "unknown key");
        return;
    }
    if (once(c, &c->gkey_line[k], line, key))
        return;
    switch (k) {
    case G_USER:
    case G_GROUP: {
        char *dst = k == G_USER ? cfg->user : cfg->group;
        size_t cap = k == G_USER ? sizeof(cfg->user) : sizeof(cfg->group);
        if (strlen(value) >= cap) {
            errf(c, line, c->sec, key, "name too long");
            return;
        }
        if (*value && k == G_USER && !getpwnam(value)) {
            errf(c, line, c->sec, key, "unknown user '%s'", value);
            return;
        }
        if (*value && k == G_GROUP && !getgrnam(value)) {
            errf(c, line, c->sec, key, "unknown group '%s'", value);
            return;
        }
        snprintf(dst, cap, "%s", value);
        return;
    }
    case G_WORKERS:
        if (!strcmp(value, "auto")) {
            cfg->workers = 0;
            return;
        }
        r = parse_uint(value, 1, 1024, &v);
        if (r) {
            errf(c, line, c->sec, key, "expected auto or 1..1024, got '%.64s'", value);
            return;
        }
        cfg->workers = (unsigned)v;
        return;
    case G_CONTROL:
        path_value(c, line, key, value, cfg->control, sizeof(cfg->control));
        return;
    case G_ATTACH:
        path_value(c, line, key, value, cfg->attach, sizeof(cfg->attach));
        return;
    case G_METRICS: {
        struct sockaddr_storage ss;
        socklen_t len;
        if (!*value || !strcmp(value, "off") || !strcmp(value, "no")) {
            cfg->metrics[0] = '\0';
            return;
        }
        if (strlen(value) >= sizeof(cfg->metrics) || udpmux_parse_addr(value, &ss, &len) < 0) {
            errf(c, line, c->sec, key,
                 "bad address '%.80s' (expected IPv4:PORT, [IPv6]:PORT or off)", value);
            return;
        }
        snprintf(cfg->metrics, sizeof(cfg->metrics), "%s", value);
        return;
    }
    case G_MAX_FLOWS:
        r = parse_uint(value, 1, UINT32_MAX, &v);
        if (!r)
            cfg->max_flows = (uint32_t)v;
        break;
    case G_RCVBUF:
    case G_SNDBUF:
        r = parse_size(value, INT_MAX, &v);
        if (r) {
            errf(c, line, c->sec, key,
                 "expected a size like 4M, 512K or bytes (max 2G-1), got "
                 "'%.64s'",
                 value);
            return;
        }
        *(k == G_RCVBUF ? &cfg->rcvbuf : &cfg->sndbuf) = (int)v;
        return;
    case G_BATCH:
        r = parse_uint(value, 1, 1024, &v);
        if (r) {
            errf(c, line, c->sec, key, "expected 1..1024, got '%.64s'", value);
            return;
        }
        cfg->batch = (unsigned)v;
        return;
    case G_BUSY_POLL:
        /* capped at 1 ms: the budget is CPU spun after every burst of
         * traffic, and a backend slower than that is not worth spinning for */
        r = parse_uint(value, 0, UMXD_BUSY_POLL_MAX_US, &v);
        if (r) {
            errf(c, line, c->sec, key, "expected microseconds 0..%u (0 = off), got '%.64s'",
                 UMXD_BUSY_POLL_MAX_US, value);
            return;
        }
        cfg->busy_poll_us = (unsigned)v;
        return;
    case G_PREFIX_FLOWS:
        /* `auto` (a quarter of each worker's table) or a number, 0 = no cap */
        if (strcmp(value, "auto") == 0) {
            cfg->max_flows_per_prefix = UINT32_MAX;
            return;
        }
        r = parse_uint(value, 0, UINT32_MAX - 1, &v);
        if (r) {
            errf(c, line, c->sec, key,
                 "expected auto or a number of flows (0 = no cap), got '%.64s'", value);
            return;
        }
        cfg->max_flows_per_prefix = (uint32_t)v;
        return;
    case G_GSO:
    case G_SECCOMP:
        if (parse_bool(value, k == G_GSO ? &cfg->gso : &cfg->seccomp))
            errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
        return;
    case G_RATE:
    case G_BURST:
    case G_RESPONSE_RATE:
        r = parse_uint(value, 0, UINT32_MAX, &v);
        if (!r)
            *(k == G_RATE    ? &cfg->rate_new_flows
              : k == G_BURST ? &cfg->rate_burst
                             : &cfg->rate_responses) = (uint32_t)v;
        break;
    case G_LOG_LEVEL:
        for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
            if (!strcmp(value, log_levels[i].name)) {
                cfg->log_level = log_levels[i].level;
                return;
            }
        }
        errf(c, line, c->sec, key, "expected err, warning, notice, info or debug, got '%.64s'",
             value);
        return;
    }
    if (r)
        errf(c, line, c->sec, key, "expected a number%s, got '%.64s'",
             k == G_MAX_FLOWS ? " (1..4294967295)" : " (0..4294967295)", value);
}

static void append_match(struct ctx *c, struct umxd_route *r, const char *value, int line)
{
    size_t have = strlen(r->match);
    const char *sep = "";

    if (!*value) {
        errf(c, line, c->sec, "match", "empty rule");
        return;
    }
    /* A repeated or continued match adds terms: all must match. */
    if (have)
        sep = (!strncmp(value, "and ", 4) || !strncmp(value, "&&", 2)) ? " " : " and ";
    if (have + strlen(sep) + strlen(value) >= sizeof(r->match)) {
        errf(c, line, c->sec, "match", "rule too long (max %d bytes)", UMXD_RULE_MAX - 1);
        return;
    }
    memcpy(r->match + have, sep, strlen(sep));
    memcpy(r->match + have + strlen(sep), value, strlen(value) + 1);
}

static void duration_key(struct ctx *c, int line, const char *key, const char *value, uint64_t *out)
{
    int r = parse_duration(value, out);
    if (r == -ERANGE)
        errf(c, line, c->sec, key, "duration out of range (max 365d): '%.64s'", value);
    else if (r)
        errf(c, line, c->sec, key,
             "expected a duration like 250ms, 30s, 5m, 1h (bare number: seconds), got '%.64s'",
             value);
    else if (*out == 0)
        errf(c, line, c->sec, key, "must be greater than 0");
}

static void route_key(struct ctx *c, const char *key, const char *value, int line)
{
    struct umxd_route *r = &c->cfg->routes[c->route];
    int *kl = c->rs[c->route].key_line;
    char msg[MSG_LEN];
    const char *m;
    uint64_t v;
    int k, e;

    for (k = 0; k < R_COUNT && strcmp(key, rkeys[k].name); k++)
        ;
    if (k == R_COUNT) {
        errf(c, line, c->sec, key, "unknown key");
        return;
    }
    if (rkeys[k].list) {
        if (!kl[k])
            kl[k] = line;
    } else if (once(c, &kl[k], line, key)) {
        return;
    }
    switch (k) {
    case R_MATCH:
        append_match(c, r, value, line);
        return;
    case R_FORWARD:
        m = for_each_item(value, backend_item, r, msg);
        if (m)
            errf(c, line, c->sec, key, "%s", m);
        return;
    case R_ALLOW:
        m = for_each_item(value, allow_item, r, msg);
        if (m)
            errf(c, line, c->sec, key, "%s", m);
        return;
    case R_ACTION:
        if (parse_enum(value, action_names, 5, &e))
            errf(c, line, c->sec, key, "expected forward, drop, stun, echo or attach, got '%.64s'",
                 value);
        else
            r->action = (enum umxd_action)e;
        return;
    case R_IDLE:
        duration_key(c, line, key, value, &r->idle_timeout_ns);
        return;
    case R_UNANSWERED:
        duration_key(c, line, key, value, &r->unanswered_timeout_ns);
        return;
    case R_HEALTH_INTERVAL:
        duration_key(c, line, key, value, &r->health_interval_ns);
        return;
    case R_HEALTH_TIMEOUT:
        duration_key(c, line, key, value, &r->health_timeout_ns);
        return;
    case R_DOWN_TIME:
        duration_key(c, line, key, value, &r->down_time_ns);
        return;
    case R_CLASSIFY:
        if (!strcmp(value, "first") || !strcmp(value, "every"))
            r->classify_every = value[0] == 'e';
        else
            errf(c, line, c->sec, key, "expected first or every, got '%.64s'", value);
        return;
    case R_UPSTREAM:
        if (!strcmp(value, "connected") || !strcmp(value, "unconnected") ||
            !strcmp(value, "shared")) {
            r->connected = value[0] == 'c';
            r->shared = value[0] == 's';
        } else {
            errf(c, line, c->sec, key, "expected connected, unconnected or shared, got '%.64s'",
                 value);
        }
        return;
    case R_PROXY:
        if (!strcmp(value, "v2") || !strcmp(value, "none"))
            r->proxy_v2 = value[0] == 'v';
        else
            errf(c, line, c->sec, key, "expected v2 or none, got '%.64s'", value);
        return;
    case R_TRANSPARENT:
    case R_ROAMING:
        if (parse_bool(value, k == R_TRANSPARENT ? &r->transparent : &r->roaming))
            errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
        return;
    case R_MAX_FLOWS:
        if (parse_uint(value, 0, UINT32_MAX, &v))
            errf(c, line, c->sec, key, "expected a number (0..4294967295), got '%.64s'", value);
        else
            r->max_flows = (uint32_t)v;
        return;
    case R_HEALTH:
        if (parse_enum(value, health_names, 4, &e))
            errf(c, line, c->sec, key, "expected none, dns, stun or payload, got '%.64s'", value);
        else
            r->health = (enum umxd_health_kind)e;
        return;
    case R_HEALTH_SEND:
    case R_HEALTH_EXPECT: {
        uint8_t *buf = k == R_HEALTH_SEND ? r->health_send : r->health_expect;
        size_t cap = k == R_HEALTH_SEND ? sizeof(r->health_send) : sizeof(r->health_expect);
        int n = parse_hex(value, buf, cap);
        if (n == -E2BIG)
            errf(c, line, c->sec, key, "too long (max %zu bytes)", cap);
        else if (n < 0)
            errf(c, line, c->sec, key, "expected hex bytes like 0x0102ab or 01:02:ab");
        else
            *(k == R_HEALTH_SEND ? &r->health_send_len : &r->health_expect_len) = (size_t)n;
        return;
    }
    case R_HEALTH_FALL:
    case R_HEALTH_RISE:
        if (parse_uint(value, 1, 1000, &v))
            errf(c, line, c->sec, key, "expected 1..1000, got '%.64s'", value);
        else
            *(k == R_HEALTH_FALL ? &r->health_fall : &r->health_rise) = (unsigned)v;
        return;
    case R_SHARE:
        if (parse_enum(value, share_names, 3, &e))
            errf(c, line, c->sec, key, "expected exclusive, fanout or balance, got '%.64s'", value);
        else
            r->share = (enum umxd_share)e;
        return;
    case R_SOURCE: {
        /* ADDR/BITS: upstream sockets bind to an address of this prefix,
         * chosen per flow, so more flows than one address has ephemeral
         * ports can reach one backend */
        char buf[INET6_ADDRSTRLEN + 8];
        char *slash;
        unsigned long bits;
        int ok;
        snprintf(buf, sizeof(buf), "%s", value);
        slash = strchr(buf, '/');
        if (slash)
            *slash++ = '\0';
        memset(&r->source, 0, sizeof(r->source));
        if (strchr(buf, ':')) {
            struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
            ok = inet_pton(AF_INET6, buf, &s6.sin6_addr) == 1;
            memcpy(&r->source, &s6, sizeof(s6));
            bits = 128;
        } else {
            struct sockaddr_in s4 = {.sin_family = AF_INET};
            ok = inet_pton(AF_INET, buf, &s4.sin_addr) == 1;
            memcpy(&r->source, &s4, sizeof(s4));
            bits = 32;
        }
        if (ok && slash) {
            char *end;
            unsigned long b = strtoul(slash, &end, 10);
            ok = *slash && !*end && b <= bits;
            bits = b;
        }
        if (!ok)
            errf(c, line, c->sec, key, "expected ADDRESS or ADDRESS/BITS, got '%.64s'", value);
        else
            r->source_bits = (unsigned)bits;
        return;
    }
    case R_REPLY_SIZE:
        if (strcmp(value, "request") == 0)
            r->stun_minimal = 0;
        else if (strcmp(value, "minimal") == 0)
            r->stun_minimal = 1;
        else
            errf(c, line, c->sec, key, "expected request or minimal, got '%.64s'", value);
        return;
    }
}

static int handler(void *user, const char *section, const char *name, const char *value, int lineno)
{
    struct ctx *c = user;

    (void)section; /* inih's copy is cut at 49 bytes; we use the pre-scan's */
    if (c->ret)
        return 0;
    enter_upto(c, lineno);
    if (c->ret)
        return 0;
    if (c->cur < 0 || c->kind == SEC_NONE) {
        errf(c, lineno, NULL, name, "key outside of any section");
        return 0;
    }
    if (!value)
        value = "";
    switch (c->kind) {
    case SEC_LISTEN:
        listen_key(c, name, value, lineno);
        break;
    case SEC_UDPMUX:
        udpmux_key(c, name, value, lineno);
        break;
    case SEC_ROUTE:
        route_key(c, name, value, lineno);
        break;
    case SEC_NONE:
        break;
    }
    return c->ret == 0;
}

/* Whole-config checks after the last section. */
static void finish_config(struct ctx *c)
{
    struct umxd_config *cfg = c->cfg;

    if (!cfg->nlisten) {
        errf(c, c->listen_hdr_line ? c->listen_hdr_line : 1, "[listen]", "address",
             "no listen address (address = ADDR:PORT)");
        return;
    }
    if (!cfg->nroutes) {
        errf(c, 1, "[route]", NULL, "no routes: every datagram would be dropped");
        return;
    }
    if (cfg->dual_stack) {
        /* A dual-stack [::]:P socket takes IPv4 port P too: binding
         * 0.0.0.0:P (or any IPv4 P) as well would fail with EADDRINUSE. */
        for (unsigned i = 0; i < cfg->nlisten; i++) {
            const struct sockaddr_in6 *s6 = (const void *)&cfg->listen[i];
            if (s6->sin6_family != AF_INET6 || !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
                continue;
            for (unsigned j = 0; j < cfg->nlisten; j++) {
                const struct sockaddr_in *s4 = (const void *)&cfg->listen[j];
                if (s4->sin_family == AF_INET && s4->sin_port == s6->sin6_port &&
                    s4->sin_port != 0) {
                    errf(c, c->lkey_line[L_DUAL_STACK], "[listen]", "dual-stack",
                         "%s already receives IPv4 for %s; drop one of them", cfg->listen_text[i],
                         cfg->listen_text[j]);
                    return;
                }
            }
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Pre-scan                                                                 */
/* ------------------------------------------------------------------------ */

static void syntax(struct ctx *c, int line, const char *msg)
{
    c->syntax_line = line;
    snprintf(c->syntax_msg, sizeof(c->syntax_msg), "%s", msg);
}

/* Classifies lines exactly like inih r55 (with inline comments off and
 * multi-line values on), recording section headers and the first bad line.
 * Returns the byte offset where inih must stop (the start of the first bad
 * line), or -ENOMEM. */
static long prescan(struct ctx *c, const char *buf, size_t len)
{
    size_t pos = 0;
    int lineno = 0;
    bool prev_name = false;
    unsigned cap = 0;

    while (pos < len) {
        const char *line = buf + pos, *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        const char *s = line, *e = line + n;
        size_t start = pos;

        pos += n + (nl ? 1 : 0);
        lineno++;
        if (memchr(line, '\0', n)) {
            syntax(c, lineno, "NUL byte in line");
            return (long)start;
        }
        if (n > CONF_MAX_LINE) {
            syntax(c, lineno, "line too long (max 4096 bytes)");
            return (long)start;
        }
        if (lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
            s += 3;
        while (s < e && is_ws(*s))
            s++;
        while (e > s && is_ws(e[-1]))
            e--;
        if (s == e || *s == ';' || *s == '#')
            continue;
        if (prev_name && s > line) {
            /* A continuation of the previous key's value. An indented
             * "[route x]" would silently become part of that value, so
             * call it out. */
            if (*s == '[' && e[-1] == ']' &&
                (!strncmp(s, "[route", 6) || !strncmp(s, "[listen]", 8) ||
                 !strncmp(s, "[udpmux]", 8))) {
                syntax(c, lineno,
                       "indented section header (a line starting with blanks continues the "
                       "previous key)");
                return (long)start;
            }
            continue;
        }
        if (*s == '[') {
            const char *rb = memchr(s + 1, ']', (size_t)(e - s - 1));
            struct header *h;
            if (!rb) {
                syntax(c, lineno, "missing ']' in section header");
                c->syntax_header = true;
                return (long)start;
            }
            if (c->nhdr >= CONF_MAX_SECTIONS) {
                syntax(c, lineno, "too many sections");
                return (long)start;
            }
            if (c->nhdr == cap) {
                unsigned ncap = cap ? cap * 2 : 16;
                struct header *nh = realloc(c->hdr, ncap * sizeof(*nh));
                if (!nh)
                    return -ENOMEM;
                c->hdr = nh;
                cap = ncap;
            }
            h = &c->hdr[c->nhdr++];
            h->line = lineno;
            h->too_long = !copy_trimmed(s + 1, rb, h->text, sizeof(h->text));
            if (h->too_long) {
                memcpy(h->text, s + 1, sizeof(h->text) - 1);
                h->text[sizeof(h->text) - 1] = '\0';
            }
            prev_name = false;
            continue;
        }
        {
            const char *sep = s;
            while (sep < e && *sep != '=' && *sep != ':')
                sep++;
            if (sep == e) {
                syntax(c, lineno, "expected key = value or [section]");
                return (long)start;
            }
            /* inih copies the trimmed name; an empty one ends continuations */
            {
                const char *ne = sep;
                while (ne > s && is_ws(ne[-1]))
                    ne--;
                prev_name = ne > s;
            }
        }
    }
    return (long)len;
}

/* inih's knobs are process globals in Debian's build; set ours for one
 * parse and put the previous values back. */
struct ini_knobs {
    bool multiline, inline_comments, use_stack, realloc_, stop_first, no_value;
    int max_line, initial_alloc;
};

static void knobs_set(struct ini_knobs *save)
{
    save->multiline = ini_allow_multiline;
    save->inline_comments = ini_allow_inline_comments;
    save->use_stack = ini_use_stack;
    save->realloc_ = ini_allow_realloc;
    save->stop_first = ini_stop_on_first_error;
    save->no_value = ini_allow_no_value;
    save->max_line = ini_max_line;
    save->initial_alloc = ini_initial_alloc;
    ini_allow_multiline = true;
    /* Off: ';' is common inside regexes and paths. Comments are whole lines
     * starting with '#' or ';'. */
    ini_allow_inline_comments = false;
    ini_use_stack = false;
    ini_allow_realloc = true;
    ini_stop_on_first_error = true;
    ini_allow_no_value = false;
    ini_max_line = CONF_MAX_LINE * 2;
    ini_initial_alloc = 512;
}

static void knobs_restore(const struct ini_knobs *save)
{
    ini_allow_multiline = save->multiline;
    ini_allow_inline_comments = save->inline_comments;
    ini_use_stack = save->use_stack;
    ini_allow_realloc = save->realloc_;
    ini_stop_on_first_error = save->stop_first;
    ini_allow_no_value = save->no_value;
    ini_max_line = save->max_line;
    ini_initial_alloc = save->initial_alloc;
}

static int load_buffer(const char *buf, size_t len, const char *name, struct umxd_config **out,
                       char *err, size_t errlen)
{
    struct ctx *c;
    struct umxd_config *cfg;
    struct ini_knobs knobs;
    char *text = NULL;
    long cut;
    int ret, r;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    c = calloc(1, sizeof(*c));
    cfg = calloc(1, sizeof(*cfg));
    if (!c || !cfg) {
        ret = -ENOMEM;
        goto nomem;
    }
    umxd_config_defaults(cfg);
    snprintf(cfg->path, sizeof(cfg->path), "%s", name);
    c->cfg = cfg;
    c->name = name;
    c->err = err;
    c->errlen = errlen;
    c->cur = -1;

    cut = prescan(c, buf, len);
    if (cut < 0) {
        ret = -ENOMEM;
        goto nomem;
    }
    text = malloc((size_t)cut + 1);
    if (!text) {
        ret = -ENOMEM;
        goto nomem;
    }
    memcpy(text, buf, (size_t)cut);
    text[cut] = '\0';

    knobs_set(&knobs);
    r = ini_parse_string(text, handler, c);
    knobs_restore(&knobs);

    if (r == -2 && !c->ret) {
        ret = -ENOMEM;
        goto nomem;
    }
    if (!c->ret && r > 0) {
        /* inih rejected a line the pre-scan accepted; should not happen */
        enter_upto(c, r);
        errf(c, r, NULL, NULL, "syntax error");
    }
    if (!c->ret && c->syntax_line) {
        enter_upto(c, c->syntax_line);
        /* A broken header ends the section before it, which is whole. */
        if (!c->ret && c->syntax_header)
            finish_section(c);
        errf(c, c->syntax_line, NULL, NULL, "%s", c->syntax_msg);
    }
    if (!c->ret) {
        enter_upto(c, INT_MAX);
        if (!c->ret)
            finish_section(c);
    }
    if (!c->ret)
        finish_config(c);
    ret = c->ret;
    if (ret == 0) {
        *out = cfg;
        cfg = NULL;
    }
    goto out;

nomem:
    if (err && errlen)
        snprintf(err, errlen, "%s: out of memory", name);
out:
    umxd_config_free(cfg);
    if (c)
        free(c->hdr);
    free(c);
    free(text);
    return ret;
}

int umxd_config_load_string(const char *text, const char *name, struct umxd_config **out, char *err,
                            size_t errlen)
{
    return load_buffer(text, strlen(text), name ? name : "(string)", out, err, errlen);
}

int umxd_config_load(const char *path, struct umxd_config **out, char *err, size_t errlen)
{
    FILE *f;
    char *buf = NULL;
    size_t len = 0;
    int ret;

    *out = NULL;
    f = fopen(path, "re");
    if (!f) {
        ret = -errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-ret));
        return ret;
    }
    buf = malloc(CONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        return -ENOMEM;
    }
    len = fread(buf, 1, CONF_MAX_FILE + 1, f);
    if (ferror(f)) {
        ret = errno ? -errno : -EIO;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
        goto out;
    }
    if (len > CONF_MAX_FILE) {
        ret = -EFBIG;
        if (err && errlen)
            snprintf(err, errlen, "%s: file too large (max %d bytes)", path, CONF_MAX_FILE);
        goto out;
    }
    ret = load_buffer(buf, len, path, out, err, errlen);
out:
    fclose(f);
    free(buf);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Quick mode                                                               */
/* ------------------------------------------------------------------------ */

static bool quick_right_ok(const char *right, struct umxd_route *scratch)
{
    if (!strcmp(right, "echo") || !strcmp(right, "stun") || !strcmp(right, "drop"))
        return true;
    route_defaults(scratch);
    char msg[MSG_LEN];
    return *right && !for_each_item(right, backend_item, scratch, msg);
}

static bool is_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    }
    return true;
}

static void quick_route(struct ctx *c, unsigned i, const char *spec)
{
    struct umxd_config *cfg = c->cfg;
    struct umxd_route *r, *scratch;
    char left[UMXD_RULE_MAX + 2], msg[MSG_LEN];
    const char *split = NULL, *m;
    size_t llen;
    int line = (int)i + 1;

    scratch = malloc(sizeof(*scratch));
    if (!scratch) {
        c->ret = -ENOMEM;
        c->err_line = line;
        if (c->err && c->errlen)
            snprintf(c->err, c->errlen, "out of memory");
        return;
    }
    /* The last '=' whose right side is a backend list or a built-in
     * action: rules may contain '=' (sni=..., pubkey=...), backends never. */
    for (const char *p = spec + strlen(spec); p > spec;) {
        p--;
        if (*p == '=' && quick_right_ok(p + 1, scratch)) {
            split = p;
            break;
        }
    }
    free(scratch);
    if (!split) {
        const char *eq = strrchr(spec, '=');
        if (!eq)
            errf(c, line, NULL, NULL,
                 "expected NAME=ADDR:PORT[,ADDR:PORT...] or NAME=echo|stun|drop");
        else
            errf(c, line, NULL, NULL,
                 "bad right side '%.80s' (expected ADDR:PORT[,ADDR:PORT...], echo, stun or drop)",
                 eq + 1);
        return;
    }
    if (!copy_trimmed(spec, split, left, sizeof(left))) {
        errf(c, line, NULL, NULL, "rule too long");
        return;
    }
    llen = strlen(left);
    if (llen >= 2 && (left[0] == '"' || left[0] == '\'') && left[llen - 1] == left[0]) {
        /* Inside "...", \" stands for a quote (rules quote regexes);
         * every other backslash is kept for the rule parser. */
        char q = left[0];
        size_t o = 0;
        for (size_t k = 1; k < llen - 1; k++) {
            if (q == '"' && left[k] == '\\' && left[k + 1] == '"' && k + 1 < llen - 1)
                k++;
            left[o++] = left[k];
        }
        left[o] = '\0';
    }
    if (!left[0]) {
        errf(c, line, NULL, NULL, "empty rule before '='");
        return;
    }
    if (strlen(left) >= UMXD_RULE_MAX) {
        errf(c, line, NULL, NULL, "rule too long (max %d bytes)", UMXD_RULE_MAX - 1);
        return;
    }
    if (cfg->nroutes >= UMXD_MAX_ROUTES) {
        errf(c, line, NULL, NULL, "too many routes (max %d)", UMXD_MAX_ROUTES);
        return;
    }
    r = &cfg->routes[cfg->nroutes];
    route_defaults(r);
    r->line = 0;
    /* A bare probe name (or `any`) names the route; a longer rule gets
     * routeN, N being the position of its -r. */
    if (is_word(left) && strlen(left) < UMXD_NAME_MAX)
        memcpy(r->name, left, strlen(left) + 1);
    else
        snprintf(r->name, sizeof(r->name), "route%u", i + 1);
    if (umxd_config_route(cfg, r->name) >= 0) {
        errf(c, line, NULL, NULL, "duplicate route name '%s'", r->name);
        return;
    }
    memcpy(r->match, left, strlen(left) + 1); /* length checked above */
    memset(&c->rs[cfg->nroutes], 0, sizeof(c->rs[0]));
    c->rs[cfg->nroutes].key_line[R_MATCH] = line;
    cfg->nroutes++;
    if (!strcmp(split + 1, "echo"))
        r->action = UMXD_ECHO;
    else if (!strcmp(split + 1, "stun"))
        r->action = UMXD_STUN;
    else if (!strcmp(split + 1, "drop"))
        r->action = UMXD_DROP;
    else if ((m = for_each_item(split + 1, backend_item, r, msg)) != NULL)
        errf(c, line, NULL, NULL, "%s", m); /* cannot happen: checked above */
    if (c->ret)
        return;
    snprintf(c->sec, sizeof(c->sec), "[route %s]", r->name);
    finish_route(c, cfg->nroutes - 1, c->sec, line);
}

int umxd_config_quick(const char *const *listen, unsigned nlisten, const char *const *routes,
                      unsigned nroutes, struct umxd_config **out, char *err, size_t errlen)
{
    struct umxd_config *cfg;
    struct ctx *c;
    int ret;

    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    c = calloc(1, sizeof(*c));
    cfg = calloc(1, sizeof(*cfg));
    if (!c || !cfg) {
        free(c);
        free(cfg);
        if (err && errlen)
            snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    umxd_config_defaults(cfg);
    c->cfg = cfg;
    c->err = err;
    c->errlen = errlen;
    c->cur = -1;

    for (unsigned i = 0; i < nlisten; i++) {
        char msg[MSG_LEN];
        const char *m = for_each_item(listen[i], listen_item, cfg, msg);
        if (m) {
            if (err && errlen)
                snprintf(err, errlen, "-l %s: %s", listen[i], m);
            ret = -EINVAL;
            goto out;
        }
    }
    if (!cfg->nlisten) {
        if (err && errlen)
            snprintf(err, errlen, "no listen address: give -l ADDR:PORT");
        ret = -EINVAL;
        goto out;
    }
    c->quick_args = routes;
    for (unsigned i = 0; i < nroutes && !c->ret; i++)
        quick_route(c, i, routes[i]);
    if (!c->ret && !cfg->nroutes) {
        if (err && errlen)
            snprintf(err, errlen, "no routes: give -r NAME=ADDR:PORT");
        c->ret = -EINVAL;
    }
    ret = c->ret;
out:
    if (ret == 0) {
        *out = cfg;
        cfg = NULL;
    }
    umxd_config_free(cfg);
    free(c);
    return ret;
}

/* ------------------------------------------------------------------------ */
/* Printing                                                                 */
/* ------------------------------------------------------------------------ */

static void print_duration(FILE *out, const char *key, uint64_t ns)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {{"d", 86400 * NS_PER_S},
                 {"h", 3600 * NS_PER_S},
                 {"m", 60 * NS_PER_S},
                 {"s", NS_PER_S},
                 {"ms", NS_PER_MS}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ns && ns % units[i].ns == 0) {
            fprintf(out, "%s = %" PRIu64 "%s\n", key, ns / units[i].ns, units[i].unit);
            return;
        }
    }
    /* Not representable in the input syntax (only set by code): round up
     * to whole milliseconds. */
    fprintf(out, "%s = %" PRIu64 "ms\n", key, (ns + NS_PER_MS - 1) / NS_PER_MS);
}

static void print_size(FILE *out, const char *key, int v)
{
    if (v && v % (1024 * 1024) == 0)
        fprintf(out, "%s = %dM\n", key, v / (1024 * 1024));
    else if (v && v % 1024 == 0)
        fprintf(out, "%s = %dK\n", key, v / 1024);
    else
        fprintf(out, "%s = %d\n", key, v);
}

static void print_hex(FILE *out, const char *key, const uint8_t *b, size_t n)
{
    fprintf(out, "%s = ", key);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", b[i]);
    fputc('\n', out);
}

static const char *yesno(int v)
{
    return v ? "yes" : "no";
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_ERR:
        return "err";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    case LOG_DEBUG:
        return "debug";
    default:
        return "info";
    }
}

void umxd_config_print(const struct umxd_config *cfg, FILE *out)
{
    fprintf(out, "# udpmuxd resolved configuration%s%s\n", cfg->path[0] ? " of " : "", cfg->path);
    fprintf(out, "[listen]\n");
    for (unsigned i = 0; i < cfg->nlisten; i++)
        fprintf(out, "address = %s\n", cfg->listen_text[i]);
    fprintf(out, "dual-stack = %s\n", yesno(cfg->dual_stack));

    fprintf(out, "\n[udpmux]\n");
    fprintf(out, "user =%s%s\n", cfg->user[0] ? " " : "", cfg->user);
    fprintf(out, "group =%s%s\n", cfg->group[0] ? " " : "", cfg->group);
    if (cfg->workers)
        fprintf(out, "workers = %u\n", cfg->workers);
    else
        fprintf(out, "workers = auto\n");
    fprintf(out, "control = %s\n", cfg->control);
    fprintf(out, "attach = %s\n", cfg->attach);
    fprintf(out, "metrics = %s\n", cfg->metrics[0] ? cfg->metrics : "off");
    fprintf(out, "max-flows = %" PRIu32 "\n", cfg->max_flows);
    if (cfg->max_flows_per_prefix == UINT32_MAX)
        fprintf(out, "max-flows-per-prefix = auto\n");
    else
        fprintf(out, "max-flows-per-prefix = %" PRIu32 "\n", cfg->max_flows_per_prefix);
    print_size(out, "rcvbuf", cfg->rcvbuf);
    print_size(out, "sndbuf", cfg->sndbuf);
    fprintf(out, "batch = %u\n", cfg->batch);
    fprintf(out, "gso = %s\n", yesno(cfg->gso));
    fprintf(out, "busy-poll = %u\n", cfg->busy_poll_us);
    fprintf(out, "new-flow-rate = %" PRIu32 "\n", cfg->rate_new_flows);
    fprintf(out, "new-flow-burst = %" PRIu32 "\n", cfg->rate_burst);
    fprintf(out, "response-rate = %" PRIu32 "\n", cfg->rate_responses);
    fprintf(out, "seccomp = %s\n", yesno(cfg->seccomp));
    fprintf(out, "log-level = %s\n", level_name(cfg->log_level));

    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct umxd_route *r = &cfg->routes[i];
        bool fwd = r->action == UMXD_FORWARD, att = r->action == UMXD_ATTACH;

        fprintf(out, "\n[route %s]\n", r->name);
        fprintf(out, "match = %s\n", r->match);
        fprintf(out, "action = %s\n", action_names[r->action]);
        for (unsigned b = 0; b < r->nbackends; b++)
            fprintf(out, "forward = %s\n", r->backends[b].text);
        if (r->action == UMXD_STUN)
            fprintf(out, "reply-size = %s\n", r->stun_minimal ? "minimal" : "request");
        if (!fwd && !att)
            continue;
        print_duration(out, "idle-timeout", r->idle_timeout_ns);
        print_duration(out, "unanswered-timeout", r->unanswered_timeout_ns);
        fprintf(out, "classify = %s\n", r->classify_every ? "every" : "first");
        fprintf(out, "roaming = %s\n", yesno(r->roaming));
        fprintf(out, "max-flows = %" PRIu32 "\n", r->max_flows);
        if (att) {
            for (unsigned a = 0; a < r->nallow_uid; a++)
                fprintf(out, "allow = uid:%" PRIu32 "\n", r->allow_uid[a]);
            for (unsigned a = 0; a < r->nallow_gid; a++)
                fprintf(out, "allow = gid:%" PRIu32 "\n", r->allow_gid[a]);
            fprintf(out, "share = %s\n", share_names[r->share]);
            continue;
        }
        fprintf(out, "upstream = %s\n",
                r->shared      ? "shared"
                : r->connected ? "connected"
                               : "unconnected");
        fprintf(out, "proxy-protocol = %s\n", r->proxy_v2 ? "v2" : "none");
        fprintf(out, "transparent = %s\n", yesno(r->transparent));
        if (r->source.ss_family) {
            char a[INET6_ADDRSTRLEN] = "";
            if (r->source.ss_family == AF_INET)
                inet_ntop(AF_INET,
                          &((const struct sockaddr_in *)(const void *)&r->source)->sin_addr, a,
                          sizeof(a));
            else
                inet_ntop(AF_INET6,
                          &((const struct sockaddr_in6 *)(const void *)&r->source)->sin6_addr, a,
                          sizeof(a));
            fprintf(out, "source = %s/%u\n", a, r->source_bits);
        }
        fprintf(out, "health = %s\n", health_names[r->health]);
        if (r->health == UMXD_HEALTH_PAYLOAD) {
            print_hex(out, "health-send", r->health_send, r->health_send_len);
            if (r->health_expect_len)
                print_hex(out, "health-expect", r->health_expect, r->health_expect_len);
        }
        print_duration(out, "health-interval", r->health_interval_ns);
        print_duration(out, "health-timeout", r->health_timeout_ns);
        fprintf(out, "health-fall = %u\n", r->health_fall);
        fprintf(out, "health-rise = %u\n", r->health_rise);
        print_duration(out, "down-time", r->down_time_ns);
    }
}
