/*
 * syslog.c - syslog over UDP (RFC 3164, RFC 5424 with RFC 5426 transport).
 * "<" PRI ">" where PRI is 0..191 in 1-3 digits without a leading zero,
 * then either RFC 5424's VERSION SP ("1 ") or RFC 3164 text. The next
 * bytes (up to 32) must be text: printable ASCII, tab, or UTF-8 bytes >= 0x80.
 * '<' (0x3c) sits in the DTLS range; a DTLS record has fe ff/fe fd at byte
 * 1, which can never be a digit, so the two never both match.
 */
#include "common.h"

#define FIRST(b) ((b) == '<')

static int syslog_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len, i = 1;
    unsigned pri = 0;

    (void)params;
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
