/*
 * ini.h - the INI reader of udpmux.conf: yields, in file order, every
 * section header and every key = value (and continuation line) with its
 * line number, and stops at the first line it cannot read.
 *
 * Why not inih: its public API never reports a section header (an empty
 * [route x] would be invisible and whole-section errors could not name the
 * header's line), cuts section names at 49 bytes, and in Debian's build
 * its dialect is set through process-wide globals. Keeping inih meant a
 * pre-scan that re-implemented its line rules plus saving and restoring its
 * globals around each parse; this reader is that pre-scan, complete. The
 * dialect is inih r55's with multi-line values on and inline comments off
 * (udpmux.conf(5), SYNTAX).
 */
#ifndef UMXD_CONF_INI_H
#define UMXD_CONF_INI_H

#include <stdbool.h>
#include <stddef.h>

#define UMXD_INI_MAX_LINE 4096 /* bytes per line, without the newline */

struct umxd_ini_cb {
    /* [text]: text is what is between the brackets, blanks trimmed (len
     * bytes, NUL-terminated); anything after ']' is ignored */
    int (*section)(void *arg, int line, const char *text, size_t len);
    /* key = value (or key: value), both trimmed; a continuation line (it
     * starts with blanks and follows a key) repeats the previous key's
     * name with the line as its value */
    int (*key)(void *arg, int line, const char *name, const char *value);
};

struct umxd_ini_error {
    int line;    /* 0: none */
    bool header; /* the bad line is a broken [section] header */
    char msg[128];
};

/* Reads buf[0..len). Returns 0 at the end, the first nonzero value a
 * callback returned (reading stops there), or 1 with err filled at the
 * first bad line (NUL byte, too long, a header without ']', a line that is
 * neither a comment, a header nor key = value, an indented section header
 * after a key). */
int umxd_ini_read(const char *buf, size_t len, const struct umxd_ini_cb *cb, void *arg,
                  struct umxd_ini_error *err);

#endif
