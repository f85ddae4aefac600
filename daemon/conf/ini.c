/*
 * ini.c - the INI reader (ini.h). One pass over the text; each line is
 * copied into a buffer of UMXD_INI_MAX_LINE + 1 bytes so that callbacks get
 * NUL-terminated strings without touching the caller's text.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "ini.h"

static bool ws(char ch)
{
    return isspace((unsigned char)ch) != 0;
}

static int bad(struct umxd_ini_error *err, int line, bool header, const char *msg)
{
    err->line = line;
    err->header = header;
    snprintf(err->msg, sizeof(err->msg), "%s", msg);
    return 1;
}

/* An indented "[route x]" after a key would silently become part of that
 * key's value (a continuation): refused instead. An indented "[::1]:7000"
 * is a continuation, as it should be. */
static bool looks_like_header(const char *s, const char *e)
{
    return *s == '[' && e[-1] == ']' &&
           (!strncmp(s, "[route", 6) || !strncmp(s, "[listen]", 8) || !strncmp(s, "[udpmux]", 8));
}

int umxd_ini_read(const char *buf, size_t len, const struct umxd_ini_cb *cb, void *arg,
                  struct umxd_ini_error *err)
{
    char line[UMXD_INI_MAX_LINE + 1], prev[UMXD_INI_MAX_LINE + 1];
    size_t pos = 0;
    int lineno = 0, r;

    err->line = 0;
    err->header = false;
    err->msg[0] = '\0';
    prev[0] = '\0'; /* the previous key's name: "" ends continuations */
    while (pos < len) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
        char *s, *e;

        lineno++;
        if (memchr(buf + pos, '\0', n))
            return bad(err, lineno, false, "NUL byte in line");
        if (n > UMXD_INI_MAX_LINE)
            return bad(err, lineno, false, "line too long (max 4096 bytes)");
        memcpy(line, buf + pos, n);
        line[n] = '\0';
        pos += n + (nl ? 1 : 0);
        s = line;
        e = line + n;
        if (lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
            s += 3;
        while (s < e && ws(*s))
            s++;
        while (e > s && ws(e[-1]))
            e--;
        *e = '\0';
        if (s == e || *s == ';' || *s == '#')
            continue;
        if (prev[0] && s > line) {
            if (looks_like_header(s, e))
                return bad(err, lineno, false,
                           "indented section header (a line starting with blanks continues the "
                           "previous key)");
            if ((r = cb->key(arg, lineno, prev, s)) != 0)
                return r;
            continue;
        }
        if (*s == '[') {
            char *rb = memchr(s + 1, ']', (size_t)(e - s - 1));
            char *t = s + 1;
            if (!rb)
                return bad(err, lineno, true, "missing ']' in section header");
            while (t < rb && ws(*t))
                t++;
            while (rb > t && ws(rb[-1]))
                rb--;
            *rb = '\0';
            prev[0] = '\0';
            if ((r = cb->section(arg, lineno, t, (size_t)(rb - t))) != 0)
                return r;
            continue;
        }
        {
            char *sep = s, *ne, *v;
            while (sep < e && *sep != '=' && *sep != ':')
                sep++;
            if (sep == e)
                return bad(err, lineno, false, "expected key = value or [section]");
            ne = sep;
            while (ne > s && ws(ne[-1]))
                ne--;
            *ne = '\0';
            v = sep + 1;
            while (v < e && ws(*v))
                v++;
            memcpy(prev, s, (size_t)(ne - s) + 1);
            if ((r = cb->key(arg, lineno, s, v)) != 0)
                return r;
        }
    }
    return 0;
}
