/*
 * hex.h - hex text to bytes (lib/util/hex.c).
 */
#ifndef UMX_HEX_H
#define UMX_HEX_H

#include <stddef.h>
#include <stdint.h>

/* The value of hex digit c (either case), or -1. */
int umx_hex_digit(int c);

/* umx_hex_decode() flag: accept an optional 0x/0X prefix. */
#define UMX_HEX_0X 1u

/* Decodes the hex text s[0..len) (it may go on past len; a NUL inside
 * ends nothing and is an error) into out[0..cap). Characters of seps (may be
 * NULL) are skipped between bytes, never between the two digits of one.
 * Returns the number of bytes (0 for empty text), -EINVAL for a bad
 * character or an odd digit, -E2BIG when there are more than cap bytes. */
int umx_hex_decode(const char *s, size_t len, const char *seps, unsigned flags, uint8_t *out,
                   size_t cap);

#endif
