/*
 * syslog.c - syslog over UDP (RFC 3164, RFC 5424 with RFC 5426 transport).
 * "<" PRI ">" where PRI is 0..191 in 1-3 digits without a leading zero,
 * then either RFC 5424's VERSION SP ("1 ") or RFC 3164 text. The next
 * bytes (up to 32) must be text: printable ASCII, tab, or UTF-8 bytes >= 0x80.
 * '<' (0x3c) sits in the DTLS range; a DTLS record has fe ff/fe fd at byte
 * 1, which can never be a digit, so the two never both match.
 *
 * RFC 6587 octet counting ("131 <14>1 ...") is TCP framing, but util-linux
 * logger --octet-count sends it over UDP too (and sslh accepts it): a
 * decimal count without leading zero, a space, then a message of exactly
 * that many bytes.
 */
#include "common.h"

#define FIRST(b) ((b) == '<' || ((b) >= '1' && (b) <= '9'))

static int syslog_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len, i = 1;
    unsigned pri = 0;

    (void)params;
    if (n >= 7 && p[0] >= '1' && p[0] <= '9') {
        /* Octet count: 1-5 digits and a space, equal to what follows. */
        size_t k = 0, count = 0;
        while (k < 5 && k < n && p[k] >= '0' && p[k] <= '9')
            count = count * 10 + (size_t)(p[k++] - '0');
        if (k == n || p[k] != ' ' || count != n - k - 1)
            return UMX_NOMATCH;
        p += k + 1;
        n -= k + 1;
    }
    if (n < 5 || p[0] != '<')
        return UMX_NOMATCH;
    while (i < n && i <= 4 && p[i] >= '0' && p[i] <= '9') {
        pri = pri * 10 + (unsigned)(p[i] - '0');
        i++;
    }
    if (i == 1 || i > 4 || i >= n || p[i] != '>' || pri > 191 || (p[1] == '0' && i > 2))
        return UMX_NOMATCH;
    i++;
    if (i >= n)
        return UMX_NOMATCH;
    for (size_t k = i; k < n && k < i + 32; k++) {
        uint8_t b = p[k];
        if (b < 0x20 && b != '\t' && !(k + 1 == n && b == '\n') && b != 0)
            return UMX_NOMATCH;
        if (b == 0x7f || (b == 0 && k + 1 != n))
            return UMX_NOMATCH;
    }
    return UMX_MATCH;
}

const struct umx_probe umx_probe_syslog = {
    .name = "syslog",
    .match = syslog_match,
    .first = UMX_FIRST_PRED(FIRST),
};
