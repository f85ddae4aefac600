/*
 * tls.c - pieces shared by the probes that look inside a TLS ClientHello
 * (quic sni=/alpn=, dtls sni=/alpn=): the ClientHello walk and the name and
 * ALPN patterns. Parameters are parsed once at rule compile time; the walk
 * runs per datagram, allocates nothing and only reads through a cursor.
 */
#include <stdlib.h>

#include "common.h"

int umx_name_pat_parse(struct umx_name_pat *pat, const char *text, char *err, size_t errlen)
{
    size_t n;

    memset(pat, 0, sizeof(*pat));
    if (text[0] == '*') {
        /* Only a whole leftmost label may be a wildcard: "*.example.org". */
        if (text[1] != '.' || !text[2]) {
            umx_perr(err, errlen, "bad name pattern '%s' (use NAME or *.SUFFIX)", text);
            return -EINVAL;
        }
        pat->wildcard = 1;
        text += 2;
    }
    n = strlen(text);
    if (n == 0 || n > 253) {
        umx_perr(err, errlen, "bad name pattern length");
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c <= 0x20 || c >= 0x7f || c == '*') {
            umx_perr(err, errlen, "bad character in name pattern at %zu", i);
            return -EINVAL;
        }
    }
    pat->text = malloc(n + 1);
    if (!pat->text)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        pat->text[i] = (char)umx_lower((uint8_t)text[i]);
    pat->text[n] = 0;
    pat->len = n;
    return 0;
}

void umx_name_pat_free(struct umx_name_pat *pat)
{
    free(pat->text);
    pat->text = NULL;
}

int umx_name_pat_match(const struct umx_name_pat *pat, const uint8_t *name, size_t n)
{
    const uint8_t *suffix;

    if (!pat->wildcard)
        return n == pat->len && umx_memeq_nocase(name, (const uint8_t *)pat->text, n);
    /* At least one non-empty label, then a dot, then the suffix. */
    if (n < pat->len + 2)
        return 0;
    suffix = name + (n - pat->len);
    if (suffix[-1] != '.' || name[0] == '.')
        return 0;
    return umx_memeq_nocase(suffix, (const uint8_t *)pat->text, pat->len);
}

int umx_alpn_parse(struct umx_alpn_list *l, const char *text, char *err, size_t errlen)
{
    const char *s = text;

    l->len = 0;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || n > 255 || l->len + 1 + n > sizeof(l->buf)) {
            umx_perr(err, errlen, "bad ALPN list '%s'", text);
            return -EINVAL;
        }
        l->buf[l->len++] = (uint8_t)n;
        memcpy(l->buf + l->len, s, n);
        l->len += n;
        s = e ? e + 1 : s + n;
        if (e && !*s) {
            umx_perr(err, errlen, "trailing comma in ALPN list");
            return -EINVAL;
        }
    }
    if (l->len == 0) {
        umx_perr(err, errlen, "empty ALPN list");
        return -EINVAL;
    }
    return 0;
}

int umx_alpn_match(const struct umx_alpn_list *l, const uint8_t *offered, size_t n)
{
    struct umx_cur c = umx_cur_make(offered, n);

    /* Both lists hold at most a few entries; the loops are bounded by the
     * list lengths because every step consumes at least one byte. */
    while (umx_cur_left(&c)) {
        uint8_t k;
        struct umx_cur name;
        if (umx_cur_u8(&c, &k) || k == 0 || umx_cur_sub(&c, k, &name))
            return 0;
        for (size_t i = 0; i < l->len; i += 1u + l->buf[i])
            if (l->buf[i] == k && memcmp(l->buf + i + 1, name.p, k) == 0)
                return 1;
    }
    return 0;
}

static int parse_sni(struct umx_cur ext, struct umx_hello *out)
{
    uint16_t list_len, name_len;
    uint8_t type;
    struct umx_cur list;

    if (umx_cur_u16(&ext, &list_len) || umx_cur_sub(&ext, list_len, &list) || umx_cur_left(&ext))
        return -1;
    /* RFC 6066: at most one name per type; only host_name (0) exists. */
    while (umx_cur_left(&list)) {
        if (umx_cur_u8(&list, &type) || umx_cur_u16(&list, &name_len))
            return -1;
        if (umx_cur_left(&list) < name_len)
            return -1;
        if (type == 0 && !out->sni && name_len > 0) {
            out->sni = list.p;
            out->sni_len = name_len;
        }
        umx_cur_skip(&list, name_len);
    }
    return 0;
}

int umx_tls_parse_hello(const uint8_t *p, size_t n, int dtls, int partial, struct umx_hello *out)
{
    struct umx_cur c = umx_cur_make(p, n), exts;
    uint16_t ver, cs_len, ext_len;
    uint8_t sid_len, cookie_len, comp_len;
    /* Running out of bytes is "malformed" for a complete ClientHello and
     * "not yet known" (1) for a prefix of one. */
    const int shortr = partial ? 1 : -1;

    memset(out, 0, sizeof(*out));
    if (umx_cur_u16(&c, &ver))
        return shortr;
    /* legacy_version: TLS 1.0..1.2 (0301..0303) or DTLS 1.0/1.2 (feff/fefd). */
    if (dtls ? (ver != 0xfeff && ver != 0xfefd) : (ver < 0x0301 || ver > 0x0303))
        return -1;
    if (umx_cur_skip(&c, 32) || umx_cur_u8(&c, &sid_len))
        return shortr;
    if (sid_len > 32)
        return -1;
    if (umx_cur_skip(&c, sid_len))
        return shortr;
    if (dtls && (umx_cur_u8(&c, &cookie_len) || umx_cur_skip(&c, cookie_len)))
        return shortr;
    if (umx_cur_u16(&c, &cs_len))
        return shortr;
    if (cs_len < 2 || (cs_len & 1))
        return -1;
    if (umx_cur_skip(&c, cs_len) || umx_cur_u8(&c, &comp_len))
        return shortr;
    if (comp_len < 1)
        return -1;
    if (umx_cur_skip(&c, comp_len))
        return shortr;
    if (umx_cur_left(&c) == 0)
        return partial ? 1 : 0; /* no extensions at all (old clients) */
    if (umx_cur_u16(&c, &ext_len))
        return shortr;
    if (umx_cur_left(&c) < ext_len) {
        if (!partial)
            return -1;
        exts = c; /* walk what we have */
    } else {
        umx_cur_sub(&c, ext_len, &exts);
        if (umx_cur_left(&c))
            return -1;
        partial = 0; /* the extension block is complete */
    }
    while (umx_cur_left(&exts)) {
        uint16_t type, len;
        struct umx_cur body;
        if (umx_cur_u16(&exts, &type) || umx_cur_u16(&exts, &len) || umx_cur_sub(&exts, len, &body))
            return partial ? 1 : -1;
        if (type == 0) {
            if (parse_sni(body, out))
                return -1;
        } else if (type == 16) {
            uint16_t l;
            if (umx_cur_u16(&body, &l) || l != umx_cur_left(&body) || l == 0)
                return -1;
            out->alpn = body.p;
            out->alpn_len = l;
            out->has_alpn = 1;
        }
    }
    return partial ? 1 : 0;
}
