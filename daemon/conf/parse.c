/*
 * parse.c - values: the parsers of durations, sizes, booleans, enums and
 * hex, the comma-separated list items (backends, listen addresses, allow
 * entries, with NSS lookups for users and groups), and conf_errf, which
 * writes the FILE:LINE messages.
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

void conf_errf(struct ctx *c, int line, const char *sec, const char *key, const char *fmt, ...)
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

int conf_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    int r = parse_u64(s, out, NULL);
    if (r)
        return r;
    if (*out < min || *out > max)
        return -ERANGE;
    return 0;
}

/* "250ms", "180s", "5m", "1h", "2d"; a bare number is seconds. */
int conf_parse_duration(const char *s, uint64_t *ns)
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
int conf_parse_size(const char *s, uint64_t max, uint64_t *out)
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

int conf_parse_bool(const char *s, int *out)
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

int conf_parse_enum(const char *s, const char *const *names, size_t n, int *out)
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
int conf_parse_hex(const char *s, uint8_t *out, size_t cap)
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

bool conf_valid_name(const char *s)
{
    if (!*s || strlen(s) >= UMXD_NAME_MAX)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    }
    return true;
}

bool conf_is_ws(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

/* Copies [b, e) trimmed into out (cap bytes); false if it does not fit. */
bool conf_copy_trimmed(const char *b, const char *e, char *out, size_t cap)
{
    while (b < e && conf_is_ws(*b))
        b++;
    while (e > b && conf_is_ws(e[-1]))
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

/* Adds one backend (already trimmed). Returns 0 or an error message. */
static const char *add_backend(struct umxd_route *r, const char *text, char *msg)
{
    struct umxd_backend *b;
    char addr[80];
    const char *sp;

    if (r->nbackends >= UMXD_MAX_BACKENDS) {
        snprintf(msg, MSG_LEN, "too many backends (max %d)", UMXD_MAX_BACKENDS);
        return msg;
    }
    b = &r->backends[r->nbackends];
    memset(b, 0, sizeof(*b));
    /* `ADDR:PORT server-id=HEX`: the backend's QUIC-LB server id (its
     * length is checked against the route's quic-lb once the route is
     * whole, since quic-lb may come later) */
    sp = strpbrk(text, " \t");
    if (sp) {
        const char *v = sp;
        int n;
        while (conf_is_ws(*v))
            v++;
        if (strncmp(v, "server-id=", 10) != 0) {
            snprintf(msg, MSG_LEN, "backend '%.80s': expected ADDR:PORT server-id=HEX", text);
            return msg;
        }
        v += 10;
        n = umx_hex_decode(v, strlen(v), ":", UMX_HEX_0X, b->sid, sizeof(b->sid));
        if (n <= 0) {
            snprintf(msg, MSG_LEN,
                     n == -E2BIG ? "backend '%.80s': server-id longer than %d bytes"
                                 : "backend '%.80s': server-id must be hex bytes like 0a1b2c",
                     text, UMXD_QLB_SID_MAX);
            return msg;
        }
        b->sid_len = (uint8_t)n;
        if ((size_t)(sp - text) >= sizeof(addr)) {
            snprintf(msg, MSG_LEN, "bad backend address '%.80s'", text);
            return msg;
        }
        memcpy(addr, text, (size_t)(sp - text));
        addr[sp - text] = '\0';
        text = addr;
    }
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
        if (b->sid_len && r->backends[i].sid_len == b->sid_len &&
            memcmp(r->backends[i].sid, b->sid, b->sid_len) == 0) {
            snprintf(msg, MSG_LEN, "backend '%.60s': server-id already given to '%.60s'", text,
                     r->backends[i].text);
            return msg;
        }
    }
    snprintf(b->text, sizeof(b->text), "%s", text);
    r->nbackends++;
    return NULL;
}

/* Calls fn for every comma-separated item of value (trimmed, non-empty).
 * Stops at the first message fn returns. */
const char *conf_for_each_item(const char *value, const char *(*fn)(void *, const char *, char *),
                               void *arg, char *msg)
{
    char item[256];
    const char *p = value;

    for (;;) {
        const char *comma = strchr(p, ',');
        const char *end = comma ? comma : p + strlen(p);
        const char *m;
        if (!conf_copy_trimmed(p, end, item, sizeof(item))) {
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

const char *conf_backend_item(void *arg, const char *item, char *msg)
{
    return add_backend(arg, item, msg);
}

const char *conf_listen_item(void *arg, const char *item, char *msg)
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

const char *conf_allow_item(void *arg, const char *item, char *msg)
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
        if (conf_parse_uint(v, 0, UINT32_MAX - 1, &id)) {
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

int conf_ctx_new(struct ctx **out, const char *who, char *err, size_t errlen)
{
    struct ctx *c = calloc(1, sizeof(*c));
    struct umxd_config *cfg = calloc(1, sizeof(*cfg));
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    if (!c || !cfg) {
        free(c);
        free(cfg);
        if (err && errlen)
            snprintf(err, errlen, "%s%sout of memory", who ? who : "", who ? ": " : "");
        return -ENOMEM;
    }
    umxd_config_defaults(cfg);
    c->cfg = cfg;
    c->err = err;
    c->errlen = errlen;
    c->cur = -1;
    *out = c;
    return 0;
}

int conf_ctx_done(struct ctx *c, int ret, struct umxd_config **out)
{
    if (ret == 0) {
        *out = c->cfg;
        c->cfg = NULL;
    }
    umxd_config_free(c->cfg);
    free(c);
    return ret;
}

/* quic-lb = config-id=N server-id-length=N nonce-length=N [key=HEX]: the
 * draft's limits (config id 0..6, 7 marks unroutable ids; server id at least
 * 1 byte, nonce at least 4, together at most 19 so the CID fits QUIC v1's
 * 20 bytes with its first octet). */
const char *conf_parse_quiclb(const char *value, struct umxd_quiclb *q, char *msg)
{
    char buf[256], *save = NULL, *tok;
    bool have[3] = {false, false, false};
    memset(q, 0, sizeof(*q));
    if (strlen(value) >= sizeof(buf)) {
        snprintf(msg, MSG_LEN, "too long");
        return msg;
    }
    snprintf(buf, sizeof(buf), "%s", value);
    for (tok = strtok_r(buf, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
        static const char *const names[3] = {"config-id=", "server-id-length=", "nonce-length="};
        static const uint64_t lo[3] = {0, 1, 4}, hi[3] = {6, UMXD_QLB_SID_MAX, 18};
        uint8_t *dst[3] = {&q->config_id, &q->sid_len, &q->nonce_len};
        unsigned i;
        uint64_t v;
        if (strncmp(tok, "key=", 4) == 0) {
            if (q->has_key || umx_hex_decode(tok + 4, strlen(tok + 4), ":", UMX_HEX_0X, q->key,
                                             sizeof(q->key)) != (int)sizeof(q->key)) {
                snprintf(msg, MSG_LEN,
                         q->has_key ? "key given twice"
                                    : "key: expected 128 bits as 32 hex digits (AES-128)");
                return msg;
            }
            q->has_key = 1;
            continue;
        }
        for (i = 0; i < 3 && strncmp(tok, names[i], strlen(names[i])); i++)
            ;
        if (i == 3 || have[i]) {
            snprintf(msg, MSG_LEN,
                     i == 3 ? "unknown item '%.40s' (expected config-id=N server-id-length=N "
                              "nonce-length=N [key=HEX])"
                            : "'%.40s' given twice",
                     tok);
            return msg;
        }
        if (conf_parse_uint(tok + strlen(names[i]), lo[i], hi[i], &v)) {
            snprintf(msg, MSG_LEN, "%.*s expected %" PRIu64 "..%" PRIu64 ", got '%.40s'",
                     (int)strlen(names[i]) - 1, names[i], lo[i], hi[i], tok + strlen(names[i]));
            return msg;
        }
        *dst[i] = (uint8_t)v;
        have[i] = true;
    }
    if (!have[0] || !have[1] || !have[2]) {
        snprintf(msg, MSG_LEN, "needs config-id=N server-id-length=N nonce-length=N");
        return msg;
    }
    if (q->sid_len + q->nonce_len > 19) {
        snprintf(msg, MSG_LEN,
                 "server-id-length + nonce-length must be at most 19 (a QUIC v1 connection id "
                 "is at most 20 bytes with its first octet), got %u",
                 q->sid_len + q->nonce_len);
        return msg;
    }
    q->on = 1;
    return NULL;
}
