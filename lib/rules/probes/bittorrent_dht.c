/*
 * bittorrent_dht.c - BitTorrent Mainline DHT (BEP 5) KRPC messages: one
 * bencoded dictionary that fills the datagram exactly, with a "t"
 * (transaction id) string and a "y" key whose value is "q" (query), "r"
 * (response) or "e" (error). The whole datagram is parsed as bencode with a
 * fixed nesting limit: integers i...e (no leading zeros, no -0), strings
 * N:bytes, lists l...e, dictionaries d...e with string keys.
 */
#include "common.h"

#define FIRST(b) ((b) == 'd')
#define MAX_DEPTH 16

/* Parses a string "N:..."; returns 0 and sets s/n. */
static int bstr(struct umx_cur *c, const uint8_t **s, size_t *n)
{
    size_t len = 0;
    int digits = 0;
    uint8_t b;

    for (;;) {
        if (umx_cur_u8(c, &b))
            return -1;
        if (b == ':')
            break;
        if (b < '0' || b > '9' || digits >= 6 || (digits == 1 && len == 0))
            return -1;
        len = len * 10 + (size_t)(b - '0');
        digits++;
    }
    if (!digits || umx_cur_left(c) < len)
        return -1;
    *s = c->p;
    *n = len;
    c->p += len;
    return 0;
}

static int bint(struct umx_cur *c)
{
    uint8_t b;
    int digits = 0, neg = 0, lead0 = 0;

    umx_cur_skip(c, 1); /* 'i' */
    for (;;) {
        if (umx_cur_u8(c, &b))
            return -1;
        if (b == 'e')
            break;
        if (b == '-' && digits == 0 && !neg) {
            neg = 1;
            continue;
        }
        if (b < '0' || b > '9' || digits >= 20 || lead0)
            return -1;
        if (digits == 0 && b == '0')
            lead0 = 1;
        digits++;
    }
    return (digits == 0 || (neg && lead0)) ? -1 : 0;
}

/*
 * Iterative parse with an explicit stack (no recursion on untrusted depth).
 * kind[d] is 'l' or 'd'; in a dictionary, want_key[d] alternates.
 */
static int dht_match(const void *params, const struct umx_probe_in *in)
{
    struct umx_cur c = umx_cur_make(in->data, in->len);
    char kind[MAX_DEPTH];
    int want_key[MAX_DEPTH];
    int depth = 0, have_t = 0, have_y = 0;
    const uint8_t *lastkey = NULL;
    size_t lastkey_len = 0;

    (void)params;
    if (in->len < 12 || in->data[0] != 'd' || in->data[in->len - 1] != 'e')
        return UMX_NOMATCH;
    umx_cur_skip(&c, 1);
    kind[0] = 'd';
    want_key[0] = 1;
    depth = 1;
    /* Every step consumes at least one byte. */
    while (depth > 0) {
        uint8_t b;
        const uint8_t *s;
        size_t n;
        if (!umx_cur_left(&c))
            return UMX_NOMATCH;
        b = c.p[0];
        if (b == 'e') {
            if (kind[depth - 1] == 'd' && !want_key[depth - 1])
                return UMX_NOMATCH; /* key without value */
            umx_cur_skip(&c, 1);
            depth--;
            if (depth > 0 && kind[depth - 1] == 'd')
                want_key[depth - 1] = 1;
            continue;
        }
        if (kind[depth - 1] == 'd' && want_key[depth - 1]) {
            if (bstr(&c, &s, &n))
                return UMX_NOMATCH;
            lastkey = depth == 1 ? s : NULL;
            lastkey_len = n;
            want_key[depth - 1] = 0;
            continue;
        }
        /* A value. */
        if (b == 'i') {
            if (bint(&c))
                return UMX_NOMATCH;
        } else if (b == 'l' || b == 'd') {
            if (depth >= MAX_DEPTH)
                return UMX_NOMATCH;
            umx_cur_skip(&c, 1);
            kind[depth] = (char)b;
            want_key[depth] = 1;
            depth++;
            if (lastkey && depth == 2)
                lastkey = NULL;
            continue;
        } else {
            if (bstr(&c, &s, &n))
                return UMX_NOMATCH;
            if (lastkey && lastkey_len == 1 && lastkey[0] == 't')
                have_t = 1;
            if (lastkey && lastkey_len == 1 && lastkey[0] == 'y' && n == 1 &&
                (s[0] == 'q' || s[0] == 'r' || s[0] == 'e'))
                have_y = 1;
        }
        lastkey = NULL;
        if (kind[depth - 1] == 'd')
            want_key[depth - 1] = 1;
    }
    return (umx_cur_left(&c) == 0 && have_t && have_y) ? UMX_MATCH : UMX_NOMATCH;
}

const struct umx_probe umx_probe_bittorrent_dht = {
    .name = "bittorrent-dht",
    .match = dht_match,
    .first = UMX_FIRST_PRED(FIRST),
};
