/*
 * stun.c - STUN (RFC 8489) and its TURN methods (RFC 8656) with the magic
 * cookie. Classic RFC 3489 STUN (no cookie) is deliberately not matched: its
 * only anchors are a length field and a TLV walk, which ordinary binary
 * protocols pass too often (see docs/internals/probes.md).
 *
 * Structure checked: top two bits zero, cookie 2112a442 at 4, body length a
 * multiple of 4 that equals the datagram size minus 20, attributes that tile
 * the body exactly, FINGERPRINT (if present) last and correct, nothing but
 * MESSAGE-INTEGRITY-SHA256/FINGERPRINT after MESSAGE-INTEGRITY.
 *
 * Parameters:
 *   username=PATTERN   USERNAME attribute equals PATTERN, or starts with it
 *                      when PATTERN ends in '*' (ICE: "localufrag:*")
 *   fingerprint=yes    require a (valid) FINGERPRINT attribute
 *   class=request|indication|success|error   (comma list, any-of)
 */
#include <stdlib.h>
#include <zlib.h>

#include "common.h"

#define STUN_COOKIE 0x2112a442u
#define ATTR_USERNAME 0x0006
#define ATTR_MI 0x0008
#define ATTR_MI_SHA256 0x001c
#define ATTR_FINGERPRINT 0x8028

struct stun_params {
    char *user;
    size_t user_len;
    int user_prefix;
    int need_fp;
    unsigned classes; /* bit (class index); 0 = any */
};

/* FINGERPRINT is CRC-32 (ISO-HDLC, as zlib's crc32) XOR 0x5354554e. zlib's
 * is table-driven over several bytes per step; a byte-at-a-time loop made
 * STUN the slowest probe (about 250 ns for a 100-byte ICE check). */
static uint32_t crc32_buf(const uint8_t *p, size_t n)
{
    return (uint32_t)crc32(0L, p, (uInt)n);
}

#define FIRST(b) ((b) <= 0x03)

static int stun_match(const void *params, const struct umx_probe_in *in)
{
    const struct stun_params *sp = params;
    struct umx_cur c = umx_cur_make(in->data, in->len);
    uint16_t type = 0, blen = 0;
    uint32_t cookie = 0;
    int seen_mi = 0, seen_fp = 0, user_ok = 0;
    const uint8_t *user = NULL;
    size_t user_len = 0;

    if (in->len < 20 || (in->data[0] & 0xc0))
        return UMX_NOMATCH;
    umx_cur_u16(&c, &type);
    umx_cur_u16(&c, &blen);
    umx_cur_u32(&c, &cookie);
    if (cookie != STUN_COOKIE || (blen & 3) || (size_t)blen + 20 != in->len)
        return UMX_NOMATCH;
    umx_cur_skip(&c, 12); /* transaction id */

    /* Each attribute consumes at least 4 bytes, so this ends. */
    while (umx_cur_left(&c)) {
        uint16_t at, al;
        size_t padded;
        const uint8_t *start = c.p;
        if (umx_cur_u16(&c, &at) || umx_cur_u16(&c, &al))
            return UMX_NOMATCH;
        padded = ((size_t)al + 3) & ~(size_t)3;
        if (umx_cur_left(&c) < padded || seen_fp)
            return UMX_NOMATCH;
        if (seen_mi && at != ATTR_MI_SHA256 && at != ATTR_FINGERPRINT)
            return UMX_NOMATCH;
        switch (at) {
        case ATTR_MI:
            if (al != 20)
                return UMX_NOMATCH;
            seen_mi = 1;
            break;
        case ATTR_MI_SHA256:
            if (al < 16 || al > 32 || (al & 3))
                return UMX_NOMATCH;
            seen_mi = 1;
            break;
        case ATTR_FINGERPRINT:
            /* The CRC covers the message up to this attribute, with the
             * header length already counting the FINGERPRINT itself. */
            if (al != 4 ||
                (crc32_buf(in->data, (size_t)(start - in->data)) ^ 0x5354554eu) != umx_be32(c.p))
                return UMX_NOMATCH;
            seen_fp = 1;
            break;
        case ATTR_USERNAME:
            if (al > 763)
                return UMX_NOMATCH;
            user = c.p;
            user_len = al;
            break;
        default:
            break;
        }
        umx_cur_skip(&c, padded);
    }
    if (!sp)
        return UMX_MATCH;
    if (sp->need_fp && !seen_fp)
        return UMX_NOMATCH;
    if (sp->classes) {
        unsigned cls = (unsigned)((type >> 4) & 1) | (unsigned)((type >> 7) & 2);
        if (!(sp->classes & (1u << cls)))
            return UMX_NOMATCH;
    }
    if (sp->user) {
        if (!user)
            return UMX_NOMATCH;
        if (sp->user_prefix)
            user_ok = user_len >= sp->user_len && memcmp(user, sp->user, sp->user_len) == 0;
        else
            user_ok = user_len == sp->user_len && memcmp(user, sp->user, user_len) == 0;
        if (!user_ok)
            return UMX_NOMATCH;
    }
    return UMX_MATCH;
}

static void stun_params_free(void *params)
{
    struct stun_params *sp = params;
    if (!sp)
        return;
    free(sp->user);
    free(sp);
}

static int parse_classes(const char *v, unsigned *out)
{
    static const char *const names[4] = {"request", "indication", "success", "error"};
    const char *s = v;

    *out = 0;
    while (*s) {
        size_t n = strcspn(s, ",");
        int found = 0;
        for (unsigned i = 0; i < 4; i++) {
            if (strlen(names[i]) == n && memcmp(names[i], s, n) == 0) {
                *out |= 1u << i;
                found = 1;
            }
        }
        if (!found)
            return -1;
        s += n;
        if (*s == ',')
            s++;
    }
    return *out ? 0 : -1;
}

static int stun_params_new(void **out, const struct umx_kv *kv, size_t nkv, char *err,
                           size_t errlen)
{
    struct stun_params *sp = calloc(1, sizeof(*sp));

    if (!sp)
        return -ENOMEM;
    for (size_t i = 0; i < nkv; i++) {
        const char *v = kv[i].val;
        if (strcmp(kv[i].key, "username") == 0) {
            size_t n = strlen(v);
            if (sp->user || n == 0 || n > 513) {
                umx_perr(err, errlen, "bad or repeated username");
                goto fail;
            }
            if (v[n - 1] == '*') {
                sp->user_prefix = 1;
                n--;
            }
            if (memchr(v, '*', n)) {
                umx_perr(err, errlen, "username: '*' only allowed at the end");
                goto fail;
            }
            sp->user = malloc(n + 1);
            if (!sp->user) {
                stun_params_free(sp);
                return -ENOMEM;
            }
            memcpy(sp->user, v, n);
            sp->user[n] = 0;
            sp->user_len = n;
        } else if (strcmp(kv[i].key, "fingerprint") == 0) {
            if (strcmp(v, "yes") == 0)
                sp->need_fp = 1;
            else if (strcmp(v, "no") == 0)
                sp->need_fp = 0;
            else {
                umx_perr(err, errlen, "fingerprint must be yes or no");
                goto fail;
            }
        } else if (strcmp(kv[i].key, "class") == 0) {
            if (parse_classes(v, &sp->classes)) {
                umx_perr(err, errlen, "class: expected request,indication,success,error");
                goto fail;
            }
        } else {
            umx_perr(err, errlen, "unknown parameter '%s'", kv[i].key);
            goto fail;
        }
    }
    *out = sp;
    return 0;
fail:
    stun_params_free(sp);
    return -EINVAL;
}

const struct umx_probe umx_probe_stun = {
    .name = "stun",
    .match = stun_match,
    .params_new = stun_params_new,
    .params_free = stun_params_free,
    .first = UMX_FIRST_PRED(FIRST),
};
