/*
 * keys.c - what each key means: the key tables, the defaults, and the
 * handlers of [listen], [udpmux] and [route NAME] keys (one value at a
 * time, in file order; whole-route checks are in check.c). Also the small
 * public helpers of config.h that read a loaded config.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "internal.h"
#include "util/hex.h"

/* Which actions a route key means something for. A key that does nothing
 * with the route's action is an error rather than silently ignored: it is
 * almost always a typo in `action =` or a forgotten edit. */
const char *const conf_lkey_names[L_COUNT] = {"address", "dual-stack"};
const char *const conf_gkey_names[G_COUNT] = {
    "user",           "group",         "workers", "control",   "attach",    "metrics",
    "max-flows",      "rcvbuf",        "sndbuf",  "batch",     "gso",       "new-flow-rate",
    "new-flow-burst", "response-rate", "seccomp", "log-level", "busy-poll", "max-flows-per-prefix",
    "fleet-key",
};

const struct conf_rkey conf_rkeys[R_COUNT] = {
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
    [R_DATAPATH] = {"datapath", A_ALL, false},
    [R_QUIC_LB] = {"quic-lb", A_FWD, false},
};

const char *const conf_action_names[] = {
    [UMXD_FORWARD] = "forward", [UMXD_DROP] = "drop",     [UMXD_STUN] = "stun",
    [UMXD_ECHO] = "echo",       [UMXD_ATTACH] = "attach",
};
const char *const conf_share_names[] = {
    [UMXD_SHARE_EXCLUSIVE] = "exclusive",
    [UMXD_SHARE_FANOUT] = "fanout",
    [UMXD_SHARE_BALANCE] = "balance",
};
const char *const conf_health_names[] = {
    [UMXD_HEALTH_NONE] = "none",
    [UMXD_HEALTH_DNS] = "dns",
    [UMXD_HEALTH_STUN] = "stun",
    [UMXD_HEALTH_PAYLOAD] = "payload",
};
const struct conf_level conf_log_levels[CONF_NLEVELS] = {
    {"err", LOG_ERR},       {"error", LOG_ERR}, {"warning", LOG_WARNING}, {"warn", LOG_WARNING},
    {"notice", LOG_NOTICE}, {"info", LOG_INFO}, {"debug", LOG_DEBUG},
};

void conf_route_defaults(struct umxd_route *r)
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
    /* the smallest correct STUN answer (32 bytes, 44 for IPv6) even to
     * the 20-byte requests every common client sends, under response-rate */
    r->stun_minimal = 1;
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

static int once(struct ctx *c, int *seen, int line, const char *key)
{
    if (*seen) {
        conf_errf(c, line, c->sec, key, "given twice (first at line %d)", *seen);
        return -1;
    }
    *seen = line;
    return 0;
}

void conf_listen_key(struct ctx *c, const char *key, const char *value, int line)
{
    char msg[MSG_LEN];
    const char *m;
    int k;

    for (k = 0; k < L_COUNT && strcmp(key, conf_lkey_names[k]); k++)
        ;
    if (k == L_COUNT) {
        conf_errf(c, line, c->sec, key, "unknown key (expected address or dual-stack)");
        return;
    }
    if (k == L_ADDRESS) {
        m = conf_for_each_item(value, conf_listen_item, c->cfg, msg);
        if (m)
            conf_errf(c, line, c->sec, key, "%s", m);
        if (!c->lkey_line[k])
            c->lkey_line[k] = line;
        return;
    }
    if (once(c, &c->lkey_line[k], line, key))
        return;
    if (conf_parse_bool(value, &c->cfg->dual_stack))
        conf_errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
}

static void path_value(struct ctx *c, int line, const char *key, const char *value, char *out,
                       size_t cap)
{
    struct sockaddr_un sun;
    if (!*value) {
        conf_errf(c, line, c->sec, key, "empty path");
        return;
    }
    /* Both paths are UNIX socket paths: catch sun_path overflows here. */
    if (strlen(value) >= sizeof(sun.sun_path) || strlen(value) >= cap) {
        conf_errf(c, line, c->sec, key, "path too long for a UNIX socket (max %zu bytes)",
                  sizeof(sun.sun_path) - 1);
        return;
    }
    snprintf(out, cap, "%s", value);
}

void conf_udpmux_key(struct ctx *c, const char *key, const char *value, int line)
{
    struct umxd_config *cfg = c->cfg;
    uint64_t v;
    int k, r = 0;

    for (k = 0; k < G_COUNT && strcmp(key, conf_gkey_names[k]); k++)
        ;
    if (k == G_COUNT) {
        conf_errf(c, line, c->sec, key, "unknown key");
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
            conf_errf(c, line, c->sec, key, "name too long");
            return;
        }
        if (*value && k == G_USER && !getpwnam(value)) {
            conf_errf(c, line, c->sec, key, "unknown user '%s'", value);
            return;
        }
        if (*value && k == G_GROUP && !getgrnam(value)) {
            conf_errf(c, line, c->sec, key, "unknown group '%s'", value);
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
        r = conf_parse_uint(value, 1, 1024, &v);
        if (r) {
            conf_errf(c, line, c->sec, key, "expected auto or 1..1024, got '%.64s'", value);
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
            conf_errf(c, line, c->sec, key,
                      "bad address '%.80s' (expected IPv4:PORT, [IPv6]:PORT or off)", value);
            return;
        }
        snprintf(cfg->metrics, sizeof(cfg->metrics), "%s", value);
        return;
    }
    case G_MAX_FLOWS:
        r = conf_parse_uint(value, 1, UINT32_MAX, &v);
        if (!r)
            cfg->max_flows = (uint32_t)v;
        break;
    case G_RCVBUF:
    case G_SNDBUF:
        r = conf_parse_size(value, INT_MAX, &v);
        if (r) {
            conf_errf(c, line, c->sec, key,
                      "expected a size like 4M, 512K or bytes (max 2G-1), got "
                      "'%.64s'",
                      value);
            return;
        }
        *(k == G_RCVBUF ? &cfg->rcvbuf : &cfg->sndbuf) = (int)v;
        return;
    case G_BATCH:
        r = conf_parse_uint(value, 1, 1024, &v);
        if (r) {
            conf_errf(c, line, c->sec, key, "expected 1..1024, got '%.64s'", value);
            return;
        }
        cfg->batch = (unsigned)v;
        return;
    case G_BUSY_POLL:
        /* capped at 1 ms: the budget is CPU spun after every burst of
         * traffic, and a backend slower than that is not worth spinning for */
        r = conf_parse_uint(value, 0, UMXD_BUSY_POLL_MAX_US, &v);
        if (r) {
            conf_errf(c, line, c->sec, key, "expected microseconds 0..%u (0 = off), got '%.64s'",
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
        r = conf_parse_uint(value, 0, UINT32_MAX - 1, &v);
        if (r) {
            conf_errf(c, line, c->sec, key,
                      "expected auto or a number of flows (0 = no cap), got '%.64s'", value);
            return;
        }
        cfg->max_flows_per_prefix = (uint32_t)v;
        return;
    case G_FLEET_KEY:
        /* a shared secret of the fleet: 32 hex digits (':' or ' ' allowed
         * between bytes), e.g. from `openssl rand -hex 16` */
        if (umx_hex_decode(value, strlen(value), ": ", UMX_HEX_0X, cfg->fleet_key,
                           sizeof(cfg->fleet_key)) != (int)sizeof(cfg->fleet_key)) {
            conf_errf(c, line, c->sec, key, "expected 128 bits as 32 hex digits, got '%.64s'",
                      value);
            return;
        }
        cfg->has_fleet_key = 1;
        return;
    case G_GSO:
    case G_SECCOMP:
        if (conf_parse_bool(value, k == G_GSO ? &cfg->gso : &cfg->seccomp))
            conf_errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
        return;
    case G_RATE:
    case G_BURST:
    case G_RESPONSE_RATE:
        r = conf_parse_uint(value, 0, UINT32_MAX, &v);
        if (!r)
            *(k == G_RATE    ? &cfg->rate_new_flows
              : k == G_BURST ? &cfg->rate_burst
                             : &cfg->rate_responses) = (uint32_t)v;
        break;
    case G_LOG_LEVEL:
        for (size_t i = 0; i < sizeof(conf_log_levels) / sizeof(conf_log_levels[0]); i++) {
            if (!strcmp(value, conf_log_levels[i].name)) {
                cfg->log_level = conf_log_levels[i].level;
                return;
            }
        }
        conf_errf(c, line, c->sec, key, "expected err, warning, notice, info or debug, got '%.64s'",
                  value);
        return;
    }
    if (r)
        conf_errf(c, line, c->sec, key, "expected a number%s, got '%.64s'",
                  k == G_MAX_FLOWS ? " (1..4294967295)" : " (0..4294967295)", value);
}

void conf_append_match(struct ctx *c, struct umxd_route *r, const char *value, int line)
{
    size_t have = strlen(r->match);
    const char *sep = "";

    if (!*value) {
        conf_errf(c, line, c->sec, "match", "empty rule");
        return;
    }
    /* A repeated or continued match adds terms: all must match. */
    if (have)
        sep = (!strncmp(value, "and ", 4) || !strncmp(value, "&&", 2)) ? " " : " and ";
    if (have + strlen(sep) + strlen(value) >= sizeof(r->match)) {
        conf_errf(c, line, c->sec, "match", "rule too long (max %d bytes)", UMXD_RULE_MAX - 1);
        return;
    }
    memcpy(r->match + have, sep, strlen(sep));
    memcpy(r->match + have + strlen(sep), value, strlen(value) + 1);
}

static void duration_key(struct ctx *c, int line, const char *key, const char *value, uint64_t *out)
{
    int r = conf_parse_duration(value, out);
    if (r == -ERANGE)
        conf_errf(c, line, c->sec, key, "duration out of range (max 365d): '%.64s'", value);
    else if (r)
        conf_errf(c, line, c->sec, key,
                  "expected a duration like 250ms, 30s, 5m, 1h (bare number: seconds), got '%.64s'",
                  value);
    else if (*out == 0)
        conf_errf(c, line, c->sec, key, "must be greater than 0");
}

void conf_route_key(struct ctx *c, const char *key, const char *value, int line)
{
    struct umxd_route *r = &c->cfg->routes[c->route];
    int *kl = c->rs[c->route].key_line;
    char msg[MSG_LEN];
    const char *m;
    uint64_t v;
    int k, e;

    for (k = 0; k < R_COUNT && strcmp(key, conf_rkeys[k].name); k++)
        ;
    if (k == R_COUNT) {
        conf_errf(c, line, c->sec, key, "unknown key");
        return;
    }
    if (conf_rkeys[k].list) {
        if (!kl[k])
            kl[k] = line;
    } else if (once(c, &kl[k], line, key)) {
        return;
    }
    switch (k) {
    case R_MATCH:
        conf_append_match(c, r, value, line);
        return;
    case R_FORWARD: {
        unsigned first = r->nbackends;
        m = conf_for_each_item(value, conf_backend_item, r, msg);
        if (m)
            conf_errf(c, line, c->sec, key, "%s", m);
        for (unsigned b = first; b < r->nbackends; b++)
            c->rs[c->route].backend_line[b] = line;
        return;
    }
    case R_ALLOW:
        m = conf_for_each_item(value, conf_allow_item, r, msg);
        if (m)
            conf_errf(c, line, c->sec, key, "%s", m);
        return;
    case R_ACTION:
        if (conf_parse_enum(value, conf_action_names, 5, &e))
            conf_errf(c, line, c->sec, key,
                      "expected forward, drop, stun, echo or attach, got '%.64s'", value);
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
            conf_errf(c, line, c->sec, key, "expected first or every, got '%.64s'", value);
        return;
    case R_UPSTREAM:
        if (!strcmp(value, "connected") || !strcmp(value, "unconnected") ||
            !strcmp(value, "shared")) {
            r->connected = value[0] == 'c';
            r->shared = value[0] == 's';
        } else {
            conf_errf(c, line, c->sec, key,
                      "expected connected, unconnected or shared, got '%.64s'", value);
        }
        return;
    case R_PROXY:
        if (!strcmp(value, "v2") || !strcmp(value, "none"))
            r->proxy_v2 = value[0] == 'v';
        else
            conf_errf(c, line, c->sec, key, "expected v2 or none, got '%.64s'", value);
        return;
    case R_DATAPATH:
        if (!strcmp(value, "kernel") || !strcmp(value, "user"))
            r->kernel = value[0] == 'k';
        else
            conf_errf(c, line, c->sec, key, "expected user or kernel, got '%.64s'", value);
        return;
    case R_TRANSPARENT:
    case R_ROAMING:
        if (conf_parse_bool(value, k == R_TRANSPARENT ? &r->transparent : &r->roaming))
            conf_errf(c, line, c->sec, key, "expected yes or no, got '%.64s'", value);
        return;
    case R_MAX_FLOWS:
        if (conf_parse_uint(value, 0, UINT32_MAX, &v))
            conf_errf(c, line, c->sec, key, "expected a number (0..4294967295), got '%.64s'",
                      value);
        else
            r->max_flows = (uint32_t)v;
        return;
    case R_HEALTH:
        if (conf_parse_enum(value, conf_health_names, 4, &e))
            conf_errf(c, line, c->sec, key, "expected none, dns, stun or payload, got '%.64s'",
                      value);
        else
            r->health = (enum umxd_health_kind)e;
        return;
    case R_HEALTH_SEND:
    case R_HEALTH_EXPECT: {
        uint8_t *buf = k == R_HEALTH_SEND ? r->health_send : r->health_expect;
        size_t cap = k == R_HEALTH_SEND ? sizeof(r->health_send) : sizeof(r->health_expect);
        int n = conf_parse_hex(value, buf, cap);
        if (n == -E2BIG)
            conf_errf(c, line, c->sec, key, "too long (max %zu bytes)", cap);
        else if (n < 0)
            conf_errf(c, line, c->sec, key, "expected hex bytes like 0x0102ab or 01:02:ab");
        else
            *(k == R_HEALTH_SEND ? &r->health_send_len : &r->health_expect_len) = (size_t)n;
        return;
    }
    case R_HEALTH_FALL:
    case R_HEALTH_RISE:
        if (conf_parse_uint(value, 1, 1000, &v))
            conf_errf(c, line, c->sec, key, "expected 1..1000, got '%.64s'", value);
        else
            *(k == R_HEALTH_FALL ? &r->health_fall : &r->health_rise) = (unsigned)v;
        return;
    case R_SHARE:
        if (conf_parse_enum(value, conf_share_names, 3, &e))
            conf_errf(c, line, c->sec, key, "expected exclusive, fanout or balance, got '%.64s'",
                      value);
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
            conf_errf(c, line, c->sec, key, "expected ADDRESS or ADDRESS/BITS, got '%.64s'", value);
        else
            r->source_bits = (unsigned)bits;
        return;
    }
    case R_QUIC_LB:
        m = conf_parse_quiclb(value, &r->qlb, msg);
        if (m)
            conf_errf(c, line, c->sec, key, "%s", m);
        return;
    case R_REPLY_SIZE:
        if (strcmp(value, "request") == 0)
            r->stun_minimal = 0;
        else if (strcmp(value, "minimal") == 0)
            r->stun_minimal = 1;
        else
            conf_errf(c, line, c->sec, key, "expected request or minimal, got '%.64s'", value);
        return;
    }
}
