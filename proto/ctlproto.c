/*
 * ctlproto.c - parser and writer of the control protocol (see ctlproto.h).
 *
 * Every read goes through the bounded cursor (rules/cursor.h): a line that
 * is cut short, over-long or badly escaped is refused whole, never read past
 * its end. The daemon feeds it bytes from any local user allowed on the
 * socket, and the fuzzer (fuzz/fuzz-ctl.c) feeds it everything else.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctlproto.h"
#include "rules/cursor.h"

static const char *const cmd_names[UMX_CTL_CMD_COUNT] = {
    [UMX_CTL_STATUS] = "status",   [UMX_CTL_STATS] = "stats",   [UMX_CTL_ROUTES] = "routes",
    [UMX_CTL_FLOWS] = "flows",     [UMX_CTL_RELOAD] = "reload", [UMX_CTL_DRAIN] = "drain",
    [UMX_CTL_UNDRAIN] = "undrain",
};

const char *umx_ctl_cmd_name(enum umx_ctl_cmd cmd)
{
    if ((unsigned)cmd >= UMX_CTL_CMD_COUNT)
        return NULL;
    return cmd_names[cmd];
}

static int is_keych(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
}

/* Bytes sent as they are in a VALUE; everything else is %XX. */
static int is_plain(uint8_t c)
{
    return c > 0x20 && c < 0x7f && c != '%';
}

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Drops one trailing LF and one CR before it. */
static size_t strip_eol(const char *line, size_t len)
{
    if (len && line[len - 1] == '\n')
        len--;
    if (len && line[len - 1] == '\r')
        len--;
    return len;
}

/* Reads a TYPE/KEY token up to (not including) a stop byte or the end. */
static int read_key(struct umx_cur *c, char *out, size_t cap, uint8_t stop)
{
    size_t n = 0;
    while (umx_cur_left(c) && c->p[0] != stop && c->p[0] != ' ') {
        uint8_t ch;
        umx_cur_u8(c, &ch);
        if (!is_keych(ch))
            return -EINVAL;
        if (n + 1 >= cap)
            return -E2BIG;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return n ? 0 : -EINVAL;
}

/* Decodes a VALUE up to the next space or the end into out (cap includes
 * the NUL); *outlen gets the decoded length. */
static int read_value(struct umx_cur *c, char *out, size_t cap, size_t *outlen)
{
    size_t n = 0;
    while (umx_cur_left(c) && c->p[0] != ' ') {
        uint8_t ch;
        umx_cur_u8(c, &ch);
        if (ch == '%') {
            uint8_t h, l;
            int hv, lv;
            if (umx_cur_u8(c, &h) < 0 || umx_cur_u8(c, &l) < 0)
                return -EINVAL;
            hv = hexval(h);
            lv = hexval(l);
            if (hv < 0 || lv < 0)
                return -EINVAL;
            ch = (uint8_t)(hv << 4 | lv);
        } else if (!is_plain(ch)) {
            return -EINVAL;
        }
        if (n + 1 >= cap)
            return -E2BIG;
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    *outlen = n;
    return 0;
}

/* Exactly one space between tokens; none at the end. */
static int read_sep(struct umx_cur *c)
{
    uint8_t ch;
    if (umx_cur_u8(c, &ch) < 0 || ch != ' ' || umx_cur_left(c) == 0 || c->p[0] == ' ')
        return -EINVAL;
    return 0;
}

static int parse_uint(const char *s, unsigned max, unsigned *out)
{
    unsigned long v = 0;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(*s - '0');
        if (v > max)
            return -EINVAL;
    }
    *out = (unsigned)v;
    return 0;
}

int umx_ctl_req_parse(const char *line, size_t len, struct umx_ctl_req *out)
{
    struct umx_cur c;
    char word[UMX_CTL_KEY_MAX];
    int r, have_limit = 0;
    memset(out, 0, sizeof(*out));
    if (len > UMX_CTL_LINE_MAX)
        return -E2BIG;
    len = strip_eol(line, len);
    c = umx_cur_make((const uint8_t *)line, len);
    r = read_key(&c, word, sizeof(word), ' ');
    if (r < 0)
        return r == -E2BIG ? -EINVAL : r;
    for (unsigned i = 1; i < UMX_CTL_CMD_COUNT; i++)
        if (strcmp(word, cmd_names[i]) == 0)
            out->cmd = (enum umx_ctl_cmd)i;
    if (out->cmd == UMX_CTL_NONE)
        return -EINVAL;
    out->limit = UMX_CTL_FLOWS_DEFAULT;
    while (umx_cur_left(&c)) {
        char key[UMX_CTL_KEY_MAX], val[UMX_CTL_ARG_MAX];
        const uint8_t *eq;
        size_t vlen;
        if ((r = read_sep(&c)) < 0)
            return r;
        eq = memchr(c.p, '=', umx_cur_left(&c));
        {
            const uint8_t *sp = memchr(c.p, ' ', umx_cur_left(&c));
            if (sp && eq && sp < eq)
                eq = NULL;
        }
        if (!eq) {
            /* a bare operand: only drain and undrain take one */
            if (out->cmd != UMX_CTL_DRAIN && out->cmd != UMX_CTL_UNDRAIN)
                return -EINVAL;
            if (out->target[0])
                return -EINVAL;
            if ((r = read_value(&c, val, sizeof(val), &vlen)) < 0)
                return r;
            if (vlen == 0 || memchr(val, '\0', vlen))
                return -EINVAL;
            memcpy(out->target, val, vlen + 1);
            continue;
        }
        if ((r = read_key(&c, key, sizeof(key), '=')) < 0)
            return r == -E2BIG ? -EINVAL : r;
        if (umx_cur_skip(&c, 1) < 0) /* the '=' */
            return -EINVAL;
        if ((r = read_value(&c, val, sizeof(val), &vlen)) < 0)
            return r;
        if (memchr(val, '\0', vlen))
            return -EINVAL; /* names and addresses never hold NUL */
        if (out->cmd != UMX_CTL_FLOWS)
            return -EINVAL;
        if (strcmp(key, "route") == 0) {
            if (out->route[0] || !vlen)
                return -EINVAL;
            memcpy(out->route, val, vlen + 1);
        } else if (strcmp(key, "peer") == 0) {
            if (out->peer[0] || !vlen)
                return -EINVAL;
            memcpy(out->peer, val, vlen + 1);
        } else if (strcmp(key, "limit") == 0) {
            if (have_limit || parse_uint(val, UMX_CTL_FLOWS_MAX, &out->limit) < 0 ||
                out->limit == 0)
                return -EINVAL;
            have_limit = 1;
        } else {
            return -EINVAL;
        }
    }
    if ((out->cmd == UMX_CTL_DRAIN || out->cmd == UMX_CTL_UNDRAIN) && !out->target[0])
        return -EINVAL;
    return 0;
}

/* Appends a percent-encoded value; returns the new length or -E2BIG. */
static int put_enc(char *buf, size_t cap, size_t n, const void *val, size_t len)
{
    static const char hx[] = "0123456789ABCDEF";
    const uint8_t *v = val;
    for (size_t i = 0; i < len; i++) {
        if (is_plain(v[i])) {
            if (n + 1 >= cap)
                return -E2BIG;
            buf[n++] = (char)v[i];
        } else {
            if (n + 3 >= cap)
                return -E2BIG;
            buf[n++] = '%';
            buf[n++] = hx[v[i] >> 4];
            buf[n++] = hx[v[i] & 15];
        }
    }
    return (int)n;
}

static int put_raw(char *buf, size_t cap, size_t n, const char *s)
{
    size_t l = strlen(s);
    if (n + l >= cap)
        return -E2BIG;
    memcpy(buf + n, s, l);
    return (int)(n + l);
}

int umx_ctl_req_format(const struct umx_ctl_req *req, char *buf, size_t cap)
{
    const char *name = umx_ctl_cmd_name(req->cmd);
    int n;
    if (!name || req->cmd == UMX_CTL_NONE)
        return -EINVAL;
    if (cap > UMX_CTL_LINE_MAX)
        cap = UMX_CTL_LINE_MAX;
    n = put_raw(buf, cap, 0, name);
    if (n >= 0 && (req->cmd == UMX_CTL_DRAIN || req->cmd == UMX_CTL_UNDRAIN)) {
        if (!req->target[0] || strchr(req->target, '='))
            return -EINVAL; /* an operand with '=' would read as KEY=VALUE */
        n = put_raw(buf, cap, (size_t)n, " ");
        if (n >= 0)
            n = put_enc(buf, cap, (size_t)n, req->target, strnlen(req->target, UMX_CTL_ARG_MAX));
    }
    if (n >= 0 && req->cmd == UMX_CTL_FLOWS) {
        char lim[32];
        if (req->route[0]) {
            n = put_raw(buf, cap, (size_t)n, " route=");
            if (n >= 0)
                n = put_enc(buf, cap, (size_t)n, req->route, strnlen(req->route, UMX_CTL_ARG_MAX));
        }
        if (n >= 0 && req->peer[0]) {
            n = put_raw(buf, cap, (size_t)n, " peer=");
            if (n >= 0)
                n = put_enc(buf, cap, (size_t)n, req->peer, strnlen(req->peer, UMX_CTL_ARG_MAX));
        }
        if (n >= 0 && req->limit) {
            snprintf(lim, sizeof(lim), " limit=%u", req->limit);
            n = put_raw(buf, cap, (size_t)n, lim);
        }
    }
    if (n >= 0)
        n = put_raw(buf, cap, (size_t)n, "\n");
    if (n < 0)
        return -E2BIG;
    buf[n] = '\0';
    return n;
}

/* Writer ------------------------------------------------------------------------- */

/* Room always kept back for ".\n" and a NUL. */
#define DONE_RESERVE 3

void umx_ctl_out_init(struct umx_ctl_out *o, char *buf, size_t cap)
{
    o->buf = buf;
    o->len = 0;
    o->cap = cap > DONE_RESERVE ? cap - DONE_RESERVE : 0;
    o->rec_start = 0;
    o->overflow = 0;
}

static void out_fail(struct umx_ctl_out *o)
{
    o->overflow = 1;
    o->len = o->rec_start;
}

void umx_ctl_rec(struct umx_ctl_out *o, const char *type)
{
    int n;
    if (o->overflow)
        return;
    o->rec_start = o->len;
    n = put_raw(o->buf, o->cap, o->len, type);
    if (n < 0)
        out_fail(o);
    else
        o->len = (size_t)n;
}

void umx_ctl_mem(struct umx_ctl_out *o, const char *key, const void *val, size_t len)
{
    int n;
    if (o->overflow)
        return;
    n = put_raw(o->buf, o->cap, o->len, " ");
    if (n >= 0)
        n = put_raw(o->buf, o->cap, (size_t)n, key);
    if (n >= 0)
        n = put_raw(o->buf, o->cap, (size_t)n, "=");
    if (n >= 0)
        n = put_enc(o->buf, o->cap, (size_t)n, val, len);
    if (n < 0)
        out_fail(o);
    else
        o->len = (size_t)n;
}

void umx_ctl_str(struct umx_ctl_out *o, const char *key, const char *val)
{
    umx_ctl_mem(o, key, val ? val : "", val ? strlen(val) : 0);
}

void umx_ctl_u64(struct umx_ctl_out *o, const char *key, uint64_t v)
{
    char num[24];
    int l = snprintf(num, sizeof(num), "%llu", (unsigned long long)v);
    umx_ctl_mem(o, key, num, (size_t)l);
}

void umx_ctl_i64(struct umx_ctl_out *o, const char *key, int64_t v)
{
    char num[24];
    int l = snprintf(num, sizeof(num), "%lld", (long long)v);
    umx_ctl_mem(o, key, num, (size_t)l);
}

void umx_ctl_rec_end(struct umx_ctl_out *o)
{
    int n;
    if (o->overflow)
        return;
    n = put_raw(o->buf, o->cap, o->len, "\n");
    if (n < 0 || (size_t)n - o->rec_start > UMX_CTL_RESP_LINE_MAX)
        out_fail(o);
    else
        o->len = (size_t)n;
}

void umx_ctl_error(struct umx_ctl_out *o, int code, const char *message)
{
    umx_ctl_rec(o, "error");
    umx_ctl_str(o, "code", umx_ctl_errname(code));
    umx_ctl_i64(o, "errno", code < 0 ? -code : code);
    umx_ctl_str(o, "message", message);
    umx_ctl_rec_end(o);
}

void umx_ctl_done(struct umx_ctl_out *o)
{
    /* DONE_RESERVE guarantees the room */
    o->buf[o->len++] = '.';
    o->buf[o->len++] = '\n';
    o->buf[o->len] = '\0';
}

/* Reader ------------------------------------------------------------------------- */

int umx_ctl_rec_parse(const char *line, size_t len, struct umx_ctl_rec *out)
{
    struct umx_cur c;
    size_t used = 0;
    int r;
    out->n = 0;
    out->type[0] = '\0';
    if (len > UMX_CTL_RESP_LINE_MAX)
        return -E2BIG;
    len = strip_eol(line, len);
    if (len == 1 && line[0] == '.')
        return 1;
    c = umx_cur_make((const uint8_t *)line, len);
    if ((r = read_key(&c, out->type, sizeof(out->type), ' ')) < 0)
        return r;
    while (umx_cur_left(&c)) {
        unsigned i = out->n;
        size_t vlen;
        if (i >= UMX_CTL_FIELDS_MAX)
            return -E2BIG;
        if ((r = read_sep(&c)) < 0)
            return r;
        if ((r = read_key(&c, out->key[i], sizeof(out->key[i]), '=')) < 0)
            return r;
        if (umx_cur_left(&c) == 0 || c.p[0] != '=')
            return -EINVAL;
        umx_cur_skip(&c, 1);
        /* decoded values are never longer than their encoding, and the
         * encoding fits in the line, so store cannot run out */
        if ((r = read_value(&c, out->store + used, sizeof(out->store) - used, &vlen)) < 0)
            return r;
        out->val[i] = out->store + used;
        out->vlen[i] = vlen;
        used += vlen + 1;
        out->n++;
    }
    return 0;
}

const char *umx_ctl_rec_get(const struct umx_ctl_rec *r, const char *key)
{
    for (unsigned i = 0; i < r->n; i++)
        if (strcmp(r->key[i], key) == 0)
            return r->val[i];
    return NULL;
}

int umx_ctl_rec_u64(const struct umx_ctl_rec *r, const char *key, uint64_t *v)
{
    const char *s = umx_ctl_rec_get(r, key);
    uint64_t x = 0;
    if (!s)
        return -ENOENT;
    if (!*s)
        return -EINVAL;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        uint64_t dg = (uint64_t)(*s - '0');
        if (x > (UINT64_MAX - dg) / 10)
            return -EINVAL;
        x = x * 10 + dg;
    }
    *v = x;
    return 0;
}

const char *umx_ctl_errname(int code)
{
    switch (code < 0 ? -code : code) {
    case EINVAL:
        return "EINVAL";
    case ENOENT:
        return "ENOENT";
    case EACCES:
        return "EACCES";
    case EPERM:
        return "EPERM";
    case E2BIG:
        return "E2BIG";
    case ENOMEM:
        return "ENOMEM";
    case ENOSPC:
        return "ENOSPC";
    case EBUSY:
        return "EBUSY";
    case EEXIST:
        return "EEXIST";
    case EALREADY:
        return "EALREADY";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case EMSGSIZE:
        return "EMSGSIZE";
    case ENOTSUP:
        return "ENOTSUP";
    case EAGAIN:
        return "EAGAIN";
    default:
        return "EUNKNOWN";
    }
}
