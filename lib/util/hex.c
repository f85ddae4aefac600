/*
 * hex.c - hex text to bytes, for rule terms (`prefix 0x16fe`), key files
 * (OpenVPN static keys) and, later, the daemon's config and control
 * protocol: one parser instead of one per caller.
 */
#include <errno.h>
#include <string.h>

#include "hex.h"

int umx_hex_digit(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int umx_hex_decode(const char *s, size_t len, const char *seps, unsigned flags, uint8_t *out,
                   size_t cap)
{
    size_t i = 0, n = 0;

    if (!s || (!out && cap))
        return -EINVAL;
    if ((flags & UMX_HEX_0X) && len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        i = 2;
    while (i < len) {
        int hi, lo;
        /* separators only between bytes: "0a:0b" and "0a 0b", never "0 a" */
        if (seps && s[i] != '\0' && strchr(seps, s[i])) {
            i++;
            continue;
        }
        hi = umx_hex_digit((unsigned char)s[i]);
        lo = i + 1 < len ? umx_hex_digit((unsigned char)s[i + 1]) : -1;
        if (hi < 0 || lo < 0)
            return -EINVAL;
        if (n == cap)
            return -E2BIG;
        out[n++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return (int)n;
}
