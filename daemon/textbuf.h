/*
 * textbuf.h - a growable text buffer for one rendered document, with the
 * Prometheus and JSON escaping the metrics module writes (textbuf.c).
 */
#ifndef UMXD_TEXTBUF_H
#define UMXD_TEXTBUF_H

#include <stddef.h>

#define SB_MAX (4u * 1024u * 1024u) /* a document larger than this is cut */

struct sb {
    char *p;
    size_t len, cap;
    int oom; /* out of memory or past SB_MAX: the document is incomplete */
};

void sb_putn(struct sb *b, const char *s, size_t n);
void sb_puts(struct sb *b, const char *s);
void sb_printf(struct sb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_free(struct sb *b);
/* A Prometheus label value, quoted and escaped. */
void prom_label(struct sb *b, const char *s);
/* A JSON string, quoted and escaped. */
void json_str(struct sb *b, const char *s);
/* The HELP and TYPE lines of a metric family. */
void prom_family(struct sb *b, const char *name, const char *type, const char *help);

#endif
