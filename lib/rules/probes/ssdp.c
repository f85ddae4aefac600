/*
 * ssdp.c - SSDP (UPnP Device Architecture 1.x/2.0): HTTP over UDP.
 * Requests: "M-SEARCH * HTTP/1.1" CRLF or "NOTIFY * HTTP/1.1" CRLF. Search
 * responses: "HTTP/1.1 200 OK" CRLF (or HTTP/1.0) with an ST: or USN:
 * header. Headers must end with an empty line inside the datagram. The
 * "*" request target is what separates SSDP NOTIFY from SIP NOTIFY.
 */
#include "common.h"

#define FIRST(b) ((b) == 'M' || (b) == 'N' || (b) == 'H')

/* Finds "\r\n\r\n"; returns the offset after it or 0. */
static size_t header_end(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' && p[i + 2] == '\r' && p[i + 3] == '\n')
            return i + 4;
    return 0;
}

/* Is there a header line starting with name (case-insensitive)? */
static int has_header(const uint8_t *p, size_t n, const char *name)
{
    size_t k = strlen(name);
    for (size_t i = 0; i + 2 + k <= n; i++)
        if (p[i] == '\r' && p[i + 1] == '\n' &&
            umx_memeq_nocase(p + i + 2, (const uint8_t *)name, k))
            return 1;
    return 0;
}

static int ssdp_match(const void *params, const struct umx_probe_in *in)
{
    const uint8_t *p = in->data;
    size_t n = in->len, end;

    (void)params;
    if (n < 20)
        return UMX_NOMATCH;
    if (!umx_has_prefix(p, n, "M-SEARCH * HTTP/1.1\r\n") &&
        !umx_has_prefix(p, n, "NOTIFY * HTTP/1.1\r\n") &&
        !((umx_has_prefix(p, n, "HTTP/1.1 200 OK\r\n") ||
           umx_has_prefix(p, n, "HTTP/1.0 200 OK\r\n"))))
        return UMX_NOMATCH;
    end = header_end(p, n < 4096 ? n : 4096);
    if (!end)
        return UMX_NOMATCH;
    if (p[0] == 'H' && !has_header(p, end, "ST:") && !has_header(p, end, "USN:"))
        return UMX_NOMATCH;
    return UMX_MATCH;
}

const struct umx_probe umx_probe_ssdp = {
    .name = "ssdp",
    .match = ssdp_match,
    .first = UMX_FIRST_PRED(FIRST),
};
