/*
 * rule.c - rule text -> compiled rule -> match. Pure: no I/O, no clocks
 * (time comes in the match input), no allocation when matching.
 *
 * Grammar (see udpmux.h):  rule := term { ("and" | "&&") term }
 *                          term := ["not"] primary
 * A compiled rule is a flat array of terms plus a first-byte bitmap that is
 * the intersection of what every positive term can start with, so the
 * classifier rejects most non-matching rules with one bit test.
 */
#include <errno.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "internal.h"
#include "rules/probes/registry.h"

#define MAX_TERMS 16
#define MAX_BYTES 64
#define MAX_KV 8
#define MAX_TOKEN 512
/* Upper bound on PCRE2 backtracking per datagram: classification time must
 * stay bounded even for a hostile datagram against a careless pattern. */
#define REGEX_MATCH_LIMIT 100000

enum term_kind { T_ANY, T_BYTES, T_LEN, T_FROM, T_PORT, T_REGEX, T_PROBE };

struct term {
    enum term_kind kind;
    int negate;
    union {
        struct {
            uint32_t off;
            uint32_t n;
            uint8_t val[MAX_BYTES];
            uint8_t mask[MAX_BYTES];
        } bytes;
        struct {
            size_t min, max;
        } len;
        struct {
            int family;
            uint8_t addr[16];
            unsigned bits;
        } from;
        struct {
            uint16_t lo, hi;
        } port;
        struct {
            pcre2_code *code;
        } regex;
        struct {
            const struct umx_probe *probe;
            void *params;
        } probe;
    } u;
};

/* Rules that are one positive term skip the term loop: `any`, and a single
 * probe (`dns`, `quic sni=...`), which is how most routes are written. The
 * probe's own first-byte test is implied by the rule's pre-filter, so the
 * probe is called directly. */
enum rule_shape { SHAPE_TERMS, SHAPE_ANY, SHAPE_PROBE };

struct udpmux_rule {
    enum rule_shape shape;
    unsigned nterms;
    struct term terms[MAX_TERMS];
    uint8_t first[32];
    int match_empty;
    char *text;
};

/* One thread-local match block, created on first use by each thread and
 * reused: PCRE2 needs somewhere to write results, and allocating it per
 * datagram would put malloc on the packet path. */
static __thread pcre2_match_data *tls_md;
static pcre2_match_context *shared_mctx;
/* The key only exists for its destructor: without it every thread that
 * ever matched a regex leaked its match block when it exited. */
static pthread_key_t md_key;
static pthread_once_t md_key_once = PTHREAD_ONCE_INIT;
static int md_key_ok;

static void md_free(void *md)
{
    pcre2_match_data_free(md);
}

static void md_key_init(void)
{
    md_key_ok = pthread_key_create(&md_key, md_free) == 0;
}

static void set_err(char *err, size_t errlen, size_t col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void set_err(char *err, size_t errlen, size_t col, const char *fmt, ...)
{
    va_list ap;
    int n;
    /* The first error is the precise one (the tokenizer's "unterminated
     * quoted string" at the quote); a caller reporting "expected ..." after
     * a failed next_token() must not overwrite it. */
    if (!err || errlen == 0 || err[0] != '\0')
        return;
    n = snprintf(err, errlen, "column %zu: ", col + 1);
    if (n < 0 || (size_t)n >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Tokenizer ------------------------------------------------------------- */

struct lexer {
    const char *s;
    size_t pos;
};

struct token {
    char text[MAX_TOKEN];
    size_t col;
    int quoted;
};

static void skip_ws(struct lexer *lx)
{
    while (lx->s[lx->pos] == ' ' || lx->s[lx->pos] == '\t')
        lx->pos++;
}

/* Reads one token: a bare word (up to whitespace) that may contain a quoted
 * part after '=' (key="value with spaces"), or a quoted string. Inside
 * quotes, a backslash escapes the next character only as far as ending the
 * string is concerned: the text is kept verbatim, so `regex "\x00\""` hands
 * PCRE2 exactly \x00\" and NUL bytes survive. Returns 0, 1 at end, -1 on
 * error. */
static int next_token(struct lexer *lx, struct token *t, char *err, size_t errlen)
{
    size_t n = 0;
    int inq = 0;
    skip_ws(lx);
    t->col = lx->pos;
    t->quoted = 0;
    if (lx->s[lx->pos] == '\0')
        return 1;
    while (lx->s[lx->pos] != '\0') {
        char c = lx->s[lx->pos];
        if (!inq && (c == ' ' || c == '\t'))
            break;
        if (c == '"') {
            inq = !inq;
            t->quoted = 1;
            lx->pos++;
            continue;
        }
        if (inq && c == '\\' && lx->s[lx->pos + 1] != '\0') {
            if (n + 2 >= sizeof(t->text))
                goto toolong;
            t->text[n++] = c;
            t->text[n++] = lx->s[lx->pos + 1];
            lx->pos += 2;
            continue;
        }
        if (n + 1 >= sizeof(t->text))
            goto toolong;
        t->text[n++] = c;
        lx->pos++;
    }
    if (inq) {
        set_err(err, errlen, t->col, "unterminated quoted string");
        return -1;
    }
    t->text[n] = '\0';
    return 0;
toolong:
    set_err(err, errlen, t->col, "token longer than %d characters", MAX_TOKEN - 1);
    return -1;
}

static int peek_token(struct lexer *lx, struct token *t)
{
    struct lexer save = *lx;
    int r = next_token(lx, t, NULL, 0);
    *lx = save;
    return r;
}

/* Number parsing -------------------------------------------------------- */

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    unsigned long long v;
    int base = 10;
    /* Decimal, or hex with 0x. Not strtoull's base 0: that reads a leading
     * zero as octal, so "port 053" would be 43 and "/024" a /20. */
    if (*s < '0' || *s > '9')
        return -1;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        if (!((s[2] >= '0' && s[2] <= '9') || (s[2] >= 'a' && s[2] <= 'f') ||
              (s[2] >= 'A' && s[2] <= 'F')))
            return -1;
    }
    errno = 0;
    v = strtoull(s, &end, base);
    if (errno || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Parses hex bytes: optional 0x prefix, ':' ' ' '-' separators between
 * bytes. Returns the count or -1 (also for none at all). */
static int parse_hex(const char *s, uint8_t *out, size_t max)
{
    int n = umx_hex_decode(s, strlen(s), ":- ", UMX_HEX_0X, out, max);
    return n > 0 ? n : -1;
}

/* "A..B", "A..", "..B" or "A". */
static int parse_range(const char *s, uint64_t max, uint64_t *lo, uint64_t *hi)
{
    const char *dots = strstr(s, "..");
    char a[64], b[64];
    if (!dots) {
        if (parse_u64(s, max, lo) < 0)
            return -1;
        *hi = *lo;
        return 0;
    }
    if ((size_t)(dots - s) >= sizeof(a) || strlen(dots + 2) >= sizeof(b))
        return -1;
    memcpy(a, s, (size_t)(dots - s));
    a[dots - s] = '\0';
    memcpy(b, dots + 2, strlen(dots + 2) + 1);
    *lo = 0;
    *hi = max;
    if (a[0] && parse_u64(a, max, lo) < 0)
        return -1;
    if (b[0] && parse_u64(b, max, hi) < 0)
        return -1;
    if (!a[0] && !b[0])
        return -1;
    return *lo <= *hi ? 0 : -1;
}

static int parse_cidr(const char *s, struct term *t)
{
    char buf[INET6_ADDRSTRLEN + 8];
    char *slash;
    uint64_t bits;
    int maxbits;
    if (strlen(s) >= sizeof(buf))
        return -1;
    memcpy(buf, s, strlen(s) + 1);
    slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    if (inet_pton(AF_INET, buf, t->u.from.addr) == 1) {
        t->u.from.family = AF_INET;
        maxbits = 32;
    } else if (inet_pton(AF_INET6, buf, t->u.from.addr) == 1) {
        t->u.from.family = AF_INET6;
        maxbits = 128;
    } else {
        return -1;
    }
    bits = (uint64_t)maxbits;
    if (slash && parse_u64(slash + 1, (uint64_t)maxbits, &bits) < 0)
        return -1;
    t->u.from.bits = (unsigned)bits;
    return 0;
}

/* Bitmap helpers -------------------------------------------------------- */

static void first_all(uint8_t f[32])
{
    memset(f, 0xff, 32);
}

static void first_and(uint8_t dst[32], const uint8_t src[32])
{
    for (int i = 0; i < 32; i++)
        dst[i] &= src[i];
}

/* Term compilation ------------------------------------------------------ */

static void term_free(struct term *t)
{
    if (t->kind == T_REGEX && t->u.regex.code)
        pcre2_code_free(t->u.regex.code);
    if (t->kind == T_PROBE && t->u.probe.params && t->u.probe.probe->params_free)
        t->u.probe.probe->params_free(t->u.probe.params);
    memset(t, 0, sizeof(*t));
}

static int shared_mctx_init(void)
{
    /* Created once; a match context is read-only while matching, so all
     * threads share it. A benign race at first use only leaks one context. */
    pcre2_match_context *m;
    if (__atomic_load_n(&shared_mctx, __ATOMIC_ACQUIRE))
        return 0;
    m = pcre2_match_context_create(NULL);
    if (!m)
        return -ENOMEM;
    pcre2_set_match_limit(m, REGEX_MATCH_LIMIT);
    pcre2_set_depth_limit(m, 1000);
    pcre2_match_context *expected = NULL;
    if (!__atomic_compare_exchange_n(&shared_mctx, &expected, m, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE))
        pcre2_match_context_free(m);
    return 0;
}

static int compile_regex(struct term *t, const struct token *tok, char *err, size_t errlen)
{
    int ecode;
    PCRE2_SIZE eoff;
    int r = shared_mctx_init();
    if (r < 0)
        return r;
    if (!tok->quoted) {
        set_err(err, errlen, tok->col, "regex pattern must be quoted: regex \"...\"");
        return -EINVAL;
    }
    t->u.regex.code =
        pcre2_compile((PCRE2_SPTR)tok->text, strlen(tok->text), 0, &ecode, &eoff, NULL);
    if (!t->u.regex.code) {
        char msg[160];
        pcre2_get_error_message(ecode, (PCRE2_UCHAR *)msg, sizeof(msg));
        set_err(err, errlen, tok->col + 1 + eoff, "regex: %s", msg);
        return -EINVAL;
    }
    /* JIT is an optimisation: where it is unavailable the interpreter runs
     * the same pattern with the same limits. */
    (void)pcre2_jit_compile(t->u.regex.code, PCRE2_JIT_COMPLETE);
    return 0;
}

static int is_keyword_end(const char *w)
{
    return strcmp(w, "and") == 0 || strcmp(w, "&&") == 0;
}

/* Parses one primary term starting with word tok. */
static int parse_primary(struct lexer *lx, const struct token *tok, struct term *t,
                         uint8_t first[32], int *match_empty, char *err, size_t errlen)
{
    struct token a, b;
    uint64_t lo, hi;
    int r;
    const struct umx_probe *probe;

    first_all(first);
    *match_empty = 1;

    if (strcmp(tok->text, "any") == 0) {
        t->kind = T_ANY;
        return 0;
    }
    if (strcmp(tok->text, "bytes") == 0 || strcmp(tok->text, "prefix") == 0) {
        int is_prefix = tok->text[0] == 'p';
        uint64_t off = 0;
        t->kind = T_BYTES;
        if (!is_prefix) {
            if (next_token(lx, &a, err, errlen) != 0 || parse_u64(a.text, 65535, &off) < 0) {
                set_err(err, errlen, a.col, "bytes: expected an offset (0..65535)");
                return -EINVAL;
            }
        }
        if (next_token(lx, &b, err, errlen) != 0) {
            set_err(err, errlen, lx->pos, "%s: expected hex bytes", tok->text);
            return -EINVAL;
        }
        r = parse_hex(b.text, t->u.bytes.val, MAX_BYTES);
        if (r < 0) {
            set_err(err, errlen, b.col, "%s: bad hex bytes (at most %d)", tok->text, MAX_BYTES);
            return -EINVAL;
        }
        t->u.bytes.off = (uint32_t)off;
        t->u.bytes.n = (uint32_t)r;
        memset(t->u.bytes.mask, 0xff, sizeof(t->u.bytes.mask));
        if (peek_token(lx, &a) == 0 && strcmp(a.text, "mask") == 0) {
            next_token(lx, &a, err, errlen);
            if (next_token(lx, &b, err, errlen) != 0 ||
                parse_hex(b.text, t->u.bytes.mask, MAX_BYTES) != r) {
                set_err(err, errlen, b.col, "mask: expected %d hex bytes", r);
                return -EINVAL;
            }
        }
        for (uint32_t i = 0; i < t->u.bytes.n; i++)
            t->u.bytes.val[i] &= t->u.bytes.mask[i];
        *match_empty = 0;
        if (off == 0) {
            memset(first, 0, 32);
            for (int v = 0; v < 256; v++)
                if (((uint8_t)v & t->u.bytes.mask[0]) == t->u.bytes.val[0])
                    first[v >> 3] |= (uint8_t)(1u << (v & 7));
        }
        return 0;
    }
    if (strcmp(tok->text, "len") == 0) {
        t->kind = T_LEN;
        if (next_token(lx, &a, err, errlen) != 0 ||
            parse_range(a.text, UDPMUX_MAX_DGRAM_V6, &lo, &hi) < 0) {
            set_err(err, errlen, a.col, "len: expected N or MIN..MAX (0..%d)", UDPMUX_MAX_DGRAM_V6);
            return -EINVAL;
        }
        t->u.len.min = lo;
        t->u.len.max = hi;
        *match_empty = lo == 0;
        return 0;
    }
    if (strcmp(tok->text, "port") == 0) {
        t->kind = T_PORT;
        if (next_token(lx, &a, err, errlen) != 0 || parse_range(a.text, 65535, &lo, &hi) < 0) {
            set_err(err, errlen, a.col, "port: expected N or A..B (0..65535)");
            return -EINVAL;
        }
        t->u.port.lo = (uint16_t)lo;
        t->u.port.hi = (uint16_t)hi;
        return 0;
    }
    if (strcmp(tok->text, "from") == 0) {
        t->kind = T_FROM;
        if (next_token(lx, &a, err, errlen) != 0 || parse_cidr(a.text, t) < 0) {
            set_err(err, errlen, a.col, "from: expected an IPv4 or IPv6 address or CIDR");
            return -EINVAL;
        }
        return 0;
    }
    if (strcmp(tok->text, "regex") == 0) {
        t->kind = T_REGEX;
        if (next_token(lx, &a, err, errlen) != 0) {
            set_err(err, errlen, lx->pos, "regex: expected a quoted pattern");
            return -EINVAL;
        }
        return compile_regex(t, &a, err, errlen);
    }
    probe = umx_probe_find(tok->text);
    if (probe) {
        struct umx_kv kv[MAX_KV];
        char store[MAX_KV][MAX_TOKEN];
        size_t nkv = 0;
        t->kind = T_PROBE;
        t->u.probe.probe = probe;
        while (peek_token(lx, &a) == 0 && !is_keyword_end(a.text)) {
            char *eq;
            next_token(lx, &a, err, errlen);
            eq = strchr(a.text, '=');
            if (!eq || eq == a.text) {
                set_err(err, errlen, a.col, "%s: expected key=value, got '%s'", probe->name,
                        a.text);
                return -EINVAL;
            }
            if (nkv >= MAX_KV) {
                set_err(err, errlen, a.col, "%s: too many parameters", probe->name);
                return -E2BIG;
            }
            memcpy(store[nkv], a.text, sizeof(a.text));
            store[nkv][eq - a.text] = '\0';
            kv[nkv].key = store[nkv];
            kv[nkv].val = store[nkv] + (eq - a.text) + 1;
            nkv++;
        }
        if (nkv > 0) {
            char perr[256] = "";
            if (!probe->params_new) {
                set_err(err, errlen, tok->col, "probe '%s' takes no parameters", probe->name);
                return -EINVAL;
            }
            r = probe->params_new(&t->u.probe.params, kv, nkv, perr, sizeof(perr));
            if (r < 0) {
                set_err(err, errlen, tok->col, "%s: %s", probe->name, perr);
                return r;
            }
        }
        memcpy(first, probe->first, 32);
        *match_empty = probe->match_empty;
        return 0;
    }
    set_err(err, errlen, tok->col, "unknown rule word '%s'", tok->text);
    return -EINVAL;
}

UDPMUX_API int udpmux_rule_compile(struct udpmux_rule **out, const char *text, char *err,
                                   size_t errlen)
{
    struct udpmux_rule *rule;
    struct lexer lx = {text, 0};
    struct token tok;
    int r = 0;

    if (!out || !text)
        return -EINVAL;
    *out = NULL;
    if (err && errlen)
        err[0] = '\0';
    rule = calloc(1, sizeof(*rule));
    if (!rule)
        return -ENOMEM;
    rule->text = strdup(text);
    if (!rule->text) {
        free(rule);
        return -ENOMEM;
    }
    first_all(rule->first);
    rule->match_empty = 1;

    for (;;) {
        struct term *t;
        uint8_t tfirst[32];
        int tempty;
        r = next_token(&lx, &tok, err, errlen);
        if (r < 0) {
            r = -EINVAL;
            goto fail;
        }
        if (r == 1) {
            set_err(err, errlen, lx.pos, "expected a rule term");
            r = -EINVAL;
            goto fail;
        }
        if (rule->nterms >= MAX_TERMS) {
            set_err(err, errlen, tok.col, "too many terms (at most %d)", MAX_TERMS);
            r = -E2BIG;
            goto fail;
        }
        t = &rule->terms[rule->nterms];
        if (strcmp(tok.text, "not") == 0 || strcmp(tok.text, "!") == 0) {
            t->negate = 1;
            if (next_token(&lx, &tok, err, errlen) != 0) {
                set_err(err, errlen, lx.pos, "not: expected a term");
                r = -EINVAL;
                goto fail;
            }
        }
        r = parse_primary(&lx, &tok, t, tfirst, &tempty, err, errlen);
        rule->nterms++; /* count it even on failure so term_free() cleans up */
        if (r < 0)
            goto fail;
        if (!t->negate) {
            first_and(rule->first, tfirst);
            rule->match_empty &= tempty;
        }
        r = next_token(&lx, &tok, err, errlen);
        if (r == 1)
            break;
        if (r < 0 || !is_keyword_end(tok.text)) {
            if (r == 0)
                set_err(err, errlen, tok.col, "expected 'and' or end of rule, got '%s'", tok.text);
            r = -EINVAL;
            goto fail;
        }
    }
    if (rule->nterms == 1 && !rule->terms[0].negate) {
        if (rule->terms[0].kind == T_ANY)
            rule->shape = SHAPE_ANY;
        else if (rule->terms[0].kind == T_PROBE)
            rule->shape = SHAPE_PROBE;
    }
    *out = rule;
    return 0;
fail:
    udpmux_rule_free(rule);
    return r;
}

UDPMUX_API void udpmux_rule_free(struct udpmux_rule *rule)
{
    if (!rule)
        return;
    for (unsigned i = 0; i < rule->nterms; i++)
        term_free(&rule->terms[i]);
    free(rule->text);
    free(rule);
}

/* Matching -------------------------------------------------------------- */

static int match_from(const struct term *t, const struct sockaddr *sa)
{
    const uint8_t *a;
    unsigned bits = t->u.from.bits;
    uint8_t mapped[16];
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        memcpy(mapped, &sin.sin_addr, 4);
        if (t->u.from.family != AF_INET)
            return 0;
        a = mapped;
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        static const uint8_t v4pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(&sin6, sa, sizeof(sin6));
        memcpy(mapped, &sin6.sin6_addr, 16);
        if (t->u.from.family == AF_INET) {
            /* a v4-mapped peer on a dual-stack socket matches IPv4 CIDRs */
            if (memcmp(mapped, v4pfx, 12) != 0)
                return 0;
            a = mapped + 12;
        } else {
            a = mapped;
        }
    } else {
        return 0;
    }
    for (unsigned i = 0; i < bits / 8; i++)
        if (a[i] != t->u.from.addr[i])
            return 0;
    if (bits % 8) {
        uint8_t m = (uint8_t)(0xff << (8 - bits % 8));
        if ((a[bits / 8] & m) != (t->u.from.addr[bits / 8] & m))
            return 0;
    }
    return 1;
}

static int peer_port(const struct sockaddr *sa)
{
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in sin;
        memcpy(&sin, sa, sizeof(sin));
        return ntohs(sin.sin_port);
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 sin6;
        memcpy(&sin6, sa, sizeof(sin6));
        return ntohs(sin6.sin6_port);
    }
    return -1;
}

static int match_regex(const struct term *t, const struct umx_probe_in *in)
{
    int rc;
    static const uint8_t empty[1];
    if (!tls_md) {
        /* one pair is enough: we only need "did it match"; rc == 0 then
         * means the ovector was too small, which is still a match */
        tls_md = pcre2_match_data_create(1, NULL);
        if (!tls_md)
            return 0;
        pthread_once(&md_key_once, md_key_init);
        if (md_key_ok)
            (void)pthread_setspecific(md_key, tls_md);
    }
    rc = pcre2_match(t->u.regex.code, in->data ? in->data : empty, in->len, 0, 0, tls_md,
                     shared_mctx);
    return rc >= 0;
}

static int term_eval(const struct term *t, const struct umx_probe_in *in)
{
    int p;
    switch (t->kind) {
    case T_ANY:
        return UMX_MATCH;
    case T_BYTES:
        if (in->len < (size_t)t->u.bytes.off + t->u.bytes.n)
            return UMX_NOMATCH;
        for (uint32_t i = 0; i < t->u.bytes.n; i++)
            if ((in->data[t->u.bytes.off + i] & t->u.bytes.mask[i]) != t->u.bytes.val[i])
                return UMX_NOMATCH;
        return UMX_MATCH;
    case T_LEN:
        return in->len >= t->u.len.min && in->len <= t->u.len.max;
    case T_FROM:
        return match_from(t, in->peer);
    case T_PORT:
        p = peer_port(in->peer);
        return p >= t->u.port.lo && p <= t->u.port.hi;
    case T_REGEX:
        return match_regex(t, in);
    case T_PROBE:
        /* A positive term's bitmap is part of the rule's pre-filter (the
         * intersection), which the caller has passed; a negated one is not,
         * and a probe must never see a first byte outside its bitmap. */
        if (t->negate && (in->len == 0 ? !t->u.probe.probe->match_empty
                                       : !umx_first_has(t->u.probe.probe->first, in->data[0])))
            return UMX_NOMATCH;
        return t->u.probe.probe->match(t->u.probe.params, in);
    }
    return UMX_NOMATCH;
}

/* umx_rule_eval() for a datagram the rule's pre-filter admits. */
static inline int eval_admitted(const struct udpmux_rule *rule, const struct umx_probe_in *in)
{
    int more = 0;
    if (rule->shape == SHAPE_PROBE)
        return rule->terms[0].u.probe.probe->match(rule->terms[0].u.probe.params, in);
    if (rule->shape == SHAPE_ANY)
        return UMX_MATCH;
    for (unsigned i = 0; i < rule->nterms; i++) {
        const struct term *t = &rule->terms[i];
        int v = term_eval(t, in);
        if (t->negate) {
            /* "not X" with X undecided stays undecided only if X could still
             * match; treat MORE as not-yet-matching for negation */
            v = v == UMX_MATCH ? UMX_NOMATCH : UMX_MATCH;
        }
        if (v == UMX_NOMATCH)
            return UMX_NOMATCH;
        if (v == UMX_MORE)
            more = 1;
    }
    return more ? UMX_MORE : UMX_MATCH;
}

int umx_rule_eval(const struct udpmux_rule *rule, const struct umx_probe_in *in)
{
    if (!umx_rule_may_match(rule, in->data, in->len))
        return UMX_NOMATCH;
    return eval_admitted(rule, in);
}

/* Candidate lists ------------------------------------------------------- */

static int index_any(const void *arg, const struct umx_probe_in *in)
{
    (void)arg;
    (void)in;
    return UMX_MATCH;
}

static int index_terms(const void *arg, const struct umx_probe_in *in)
{
    return eval_admitted(arg, in);
}

int umx_rule_index_build(struct umx_rule_index *idx, const struct udpmux_rule *const *rules,
                         size_t n)
{
    if (n > UMX_RULE_INDEX_MAX)
        return -E2BIG;
    memset(idx, 0, sizeof(*idx));
    idx->nrules = (unsigned)n;
    for (size_t r = 0; r < n; r++) {
        const struct udpmux_rule *rule = rules[r];
        if (!rule)
            continue;
        if (rule->shape == SHAPE_PROBE) {
            idx->fn[r] = rule->terms[0].u.probe.probe->match;
            idx->arg[r] = rule->terms[0].u.probe.params;
        } else {
            idx->fn[r] = rule->shape == SHAPE_ANY ? index_any : index_terms;
            idx->arg[r] = rule;
        }
        /* Exactly umx_rule_may_match(): the bitmap holds only the positive
         * terms, so a rule like `not dns` is a candidate for every byte. */
        for (unsigned b = 0; b < 256; b++)
            if (umx_first_has(rule->first, (uint8_t)b))
                idx->list[b][idx->n[b]++] = (uint8_t)r;
        if (rule->match_empty)
            idx->list[UMX_RULE_INDEX_EMPTY][idx->n[UMX_RULE_INDEX_EMPTY]++] = (uint8_t)r;
    }
    return 0;
}

int umx_rule_index_eval(const struct umx_rule_index *idx, const struct umx_probe_in *in, int *more)
{
    unsigned row = in->len ? in->data[0] : UMX_RULE_INDEX_EMPTY;
    const uint8_t *l = idx->list[row];
    unsigned n = idx->n[row];
    *more = 0;
    for (unsigned k = 0; k < n; k++) {
        int v = idx->fn[l[k]](idx->arg[l[k]], in);
        if (v == UMX_MATCH)
            return l[k];
        if (v == UMX_MORE) {
            /* the full loop stops here too: a later rule must not take a
             * datagram an earlier one is still waiting to decide */
            *more = 1;
            return -1;
        }
    }
    return -1;
}

UDPMUX_API int udpmux_rule_match(const struct udpmux_rule *rule,
                                 const struct udpmux_match_input *in)
{
    struct umx_probe_in pin;
    if (!rule || !in || (in->len && !in->data))
        return 0;
    pin.data = in->data;
    pin.len = in->len;
    pin.peer = in->peer;
    pin.now_ns = in->now_ns;
    pin.state = NULL;
    return umx_rule_eval(rule, &pin) == UMX_MATCH;
}

const uint8_t *umx_rule_first(const struct udpmux_rule *rule)
{
    return rule->first;
}

int umx_rule_match_empty(const struct udpmux_rule *rule)
{
    return rule->match_empty;
}

const char *umx_rule_text(const struct udpmux_rule *rule)
{
    return rule->text;
}

unsigned umx_rule_roam_protos(const struct udpmux_rule *rule)
{
    /* Every positive probe term must match, so the rule carries at most
     * the protocols all of them share (`quic and wireguard` carries none).
     * Negated terms and the generic terms (any, bytes, len, regex...)
     * prove nothing about the protocol: without a positive probe term the
     * rule could be carrying anything, and "anything" must not learn keys
     * (a DNS reply starting with 0x80 is not a QUIC packet). */
    unsigned set = ~0u;
    int seen = 0;
    if (!rule)
        return 0;
    for (unsigned i = 0; i < rule->nterms; i++) {
        const struct term *t = &rule->terms[i];
        if (t->kind != T_PROBE || t->negate)
            continue;
        set &= t->u.probe.probe->roam;
        seen = 1;
    }
    return seen ? set : 0;
}

/* Built-in probe helpers (public) --------------------------------------- */

UDPMUX_API size_t udpmux_probe_count(void)
{
    return umx_nprobes;
}

UDPMUX_API const char *udpmux_probe_name(size_t i)
{
    return i < umx_nprobes ? umx_probes[i]->name : NULL;
}

UDPMUX_API int udpmux_probe_classify(const uint8_t *data, size_t len)
{
    /* Same answers as trying every probe in order behind its bitmap (the
     * candidate lists are built from those bitmaps; test-probes and
     * fuzz-classify compare against that loop), without testing 24 bitmaps
     * per datagram. */
    return umx_probe_classify_fast(data, len);
}
