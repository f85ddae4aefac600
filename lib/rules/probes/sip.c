/*
 * sip.c - SIP over UDP (RFC 3261 and the method RFCs). A request line is
 * METHOD SP Request-URI SP "SIP/2.0" CRLF with a known method and a sip:,
 * sips:, tel: or urn: URI; a status line is "SIP/2.0" SP 3 digits SP reason
 * CRLF. The first line must end within 512 bytes and contain only visible
 * ASCII and spaces; a header line must follow. The " SIP/2.0" suffix is what
 * separates SIP from SSDP (NOTIFY * HTTP/1.1) in the same first bytes.
 * Keep-alives (CRLF CRLF) are not matched: they belong to a pinned flow.
 */
#include "common.h"

static const char *const methods[] = {
    "INVITE ",    "ACK ",    "BYE ",     "CANCEL ", "OPTIONS ", "REGISTER ", "PRACK ",
    "SUBSCRIBE ", "NOTIFY ", "PUBLISH ", "INFO ",   "REFER ",   "MESSAGE ",  "UPDATE ",
};

/* First letters of the methods and of "SIP/2.0". */
#define FIRST(b)                                                                                   \
    ((b) == 'I' || (b) == 'A' || (b) == 'B' || (b) == 'C' || (b) == 'O' || (b) == 'R' ||           \
     (b) == 'P' || (b) == 'S' || (b) == 'N' || (b) == 'M' || (b) == 'U')

static int sip_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len, eol = 0, lim = n < 512 ? n : 512;

    (void)params;
    if (n < 14)
        return UMX_NOMATCH;
    for (size_t i = 0; i + 1 < lim; i++) {
        if (p[i] == '\r' && p[i + 1] == '\n') {
            eol = i;
            break;
        }
        if (p[i] < 0x20 || p[i] > 0x7e)
            return UMX_NOMATCH;
    }
    /* Something (a header) must follow the first line. */
    if (eol < 12 || eol + 2 >= n)
        return UMX_NOMATCH;
    if (memcmp(p, "SIP/2.0 ", 8) == 0) {
        return (eol >= 12 && p[8] >= '1' && p[8] <= '6' && p[9] >= '0' && p[9] <= '9' &&
                p[10] >= '0' && p[10] <= '9' && p[11] == ' ')
                   ? UMX_MATCH
                   : UMX_NOMATCH;
    }
    if (memcmp(p + eol - 8, " SIP/2.0", 8) != 0)
        return UMX_NOMATCH;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        size_t ml = strlen(methods[i]);
        const uint8_t *u;
        if (memcmp(p, methods[i], ml) != 0)
            continue;
        u = p + ml;
        if (eol < ml + 8 + 4)
            return UMX_NOMATCH;
        if (umx_memeq_nocase(u, (const uint8_t *)"sip:", 4) ||
            umx_memeq_nocase(u, (const uint8_t *)"tel:", 4) ||
            umx_memeq_nocase(u, (const uint8_t *)"urn:", 4) ||
            (eol >= ml + 8 + 5 && umx_memeq_nocase(u, (const uint8_t *)"sips:", 5)))
            return UMX_MATCH;
        return UMX_NOMATCH;
    }
    return UMX_NOMATCH;
}

const struct umx_probe umx_probe_sip = {
    .name = "sip",
    .match = sip_match,
    .first = UMX_FIRST_PRED(FIRST),
};
