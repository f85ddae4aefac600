/*
 * common.h - helpers shared by the built-in probes (not part of the probe
 * contract; only lib/rules/probes/ includes it).
 */
#ifndef UMX_PROBES_COMMON_H
#define UMX_PROBES_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "../cursor.h"
#include "../probe.h"

/*
 * First-byte bitmaps are built at compile time from a predicate macro P(b)
 * that yields 0 or 1 for a byte value b, so each probe states its first-byte
 * rule once, in the same words as its match function, instead of as 32
 * hand-computed bytes that nobody can review.
 */
#define UMX_FB_BIT(P, b, k) ((unsigned)((P((b) + (k))) ? 1u : 0u) << (k))
#define UMX_FB_BYTE(P, i)                                                                          \
    (uint8_t)(UMX_FB_BIT(P, (i)*8, 0) | UMX_FB_BIT(P, (i)*8, 1) | UMX_FB_BIT(P, (i)*8, 2) |        \
              UMX_FB_BIT(P, (i)*8, 3) | UMX_FB_BIT(P, (i)*8, 4) | UMX_FB_BIT(P, (i)*8, 5) |        \
              UMX_FB_BIT(P, (i)*8, 6) | UMX_FB_BIT(P, (i)*8, 7))
#define UMX_FIRST_PRED(P)                                                                          \
    {                                                                                              \
        UMX_FB_BYTE(P, 0), UMX_FB_BYTE(P, 1), UMX_FB_BYTE(P, 2), UMX_FB_BYTE(P, 3),                \
            UMX_FB_BYTE(P, 4), UMX_FB_BYTE(P, 5), UMX_FB_BYTE(P, 6), UMX_FB_BYTE(P, 7),            \
            UMX_FB_BYTE(P, 8), UMX_FB_BYTE(P, 9), UMX_FB_BYTE(P, 10), UMX_FB_BYTE(P, 11),          \
            UMX_FB_BYTE(P, 12), UMX_FB_BYTE(P, 13), UMX_FB_BYTE(P, 14), UMX_FB_BYTE(P, 15),        \
            UMX_FB_BYTE(P, 16), UMX_FB_BYTE(P, 17), UMX_FB_BYTE(P, 18), UMX_FB_BYTE(P, 19),        \
            UMX_FB_BYTE(P, 20), UMX_FB_BYTE(P, 21), UMX_FB_BYTE(P, 22), UMX_FB_BYTE(P, 23),        \
            UMX_FB_BYTE(P, 24), UMX_FB_BYTE(P, 25), UMX_FB_BYTE(P, 26), UMX_FB_BYTE(P, 27),        \
            UMX_FB_BYTE(P, 28), UMX_FB_BYTE(P, 29), UMX_FB_BYTE(P, 30), UMX_FB_BYTE(P, 31)         \
    }

/* The probe objects, defined one per file and listed by registry.c. */
extern const struct umx_probe umx_probe_stun, umx_probe_turn_channel, umx_probe_dtls,
    umx_probe_zrtp, umx_probe_rtp, umx_probe_rtcp, umx_probe_quic, umx_probe_wireguard,
    umx_probe_openvpn, umx_probe_dns, umx_probe_ntp, umx_probe_sip, umx_probe_syslog,
    umx_probe_snmp, umx_probe_tftp, umx_probe_coap, umx_probe_bittorrent_dht, umx_probe_utp,
    umx_probe_bittorrent_tracker, umx_probe_ike, umx_probe_radius, umx_probe_raknet, umx_probe_ssdp,
    umx_probe_teamspeak;

/* Writes a one-line parameter error (snprintf semantics, err may be NULL). */
static inline void umx_perr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static inline void umx_perr(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    if (!err || !errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

static inline uint8_t umx_lower(uint8_t c)
{
    return (c >= 'A' && c <= 'Z') ? (uint8_t)(c + 32) : c;
}

/* Compares n bytes ignoring ASCII case. */
static inline int umx_memeq_nocase(const uint8_t *a, const uint8_t *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (umx_lower(a[i]) != umx_lower(b[i]))
            return 0;
    return 1;
}

/* Does the datagram start with the string s? */
static inline int umx_has_prefix(const uint8_t *p, size_t n, const char *s)
{
    size_t k = strlen(s);
    return n >= k && memcmp(p, s, k) == 0;
}

/*
 * Host name pattern used by `quic sni=` and `dtls sni=`: an exact name, or
 * "*.suffix" which matches one or more labels in front of suffix (never the
 * bare suffix itself). Case-insensitive, ASCII only. Stored lower-case.
 */
struct umx_name_pat {
    char *text; /* lower-cased pattern without the "*." */
    size_t len;
    int wildcard;
};

int umx_name_pat_parse(struct umx_name_pat *pat, const char *text, char *err, size_t errlen);
void umx_name_pat_free(struct umx_name_pat *pat);
int umx_name_pat_match(const struct umx_name_pat *pat, const uint8_t *name, size_t n);

/*
 * What the TLS ClientHello parser extracts (tls.c). Pointers point into the
 * buffer given to the parser. alpn points at the ProtocolNameList body.
 */
struct umx_hello {
    const uint8_t *sni;
    size_t sni_len;
    const uint8_t *alpn;
    size_t alpn_len;
    int has_alpn;
};

/* Parses a TLS/DTLS ClientHello body (after the handshake header, which the
 * caller strips). With partial set, p..n is only a prefix of the body: the
 * parser reports what the prefix holds and returns 1. Returns 0 for a
 * complete well-formed body, 1 for a prefix, -1 if malformed. */
int umx_tls_parse_hello(const uint8_t *p, size_t n, int dtls, int partial, struct umx_hello *out);

/* Comma-separated ALPN list ("h3,h3-29"), stored as a TLS ProtocolNameList
 * (length-prefixed names) for direct comparison. */
struct umx_alpn_list {
    uint8_t buf[256];
    size_t len;
};
int umx_alpn_parse(struct umx_alpn_list *l, const char *text, char *err, size_t errlen);
/* 1 if any protocol offered by the client (ProtocolNameList body) is in l. */
int umx_alpn_match(const struct umx_alpn_list *l, const uint8_t *offered, size_t n);

#endif
