/* fmt.h - udpmuxctl's output: records of an answer as text or JSON. */
#ifndef UMXCTL_FMT_H
#define UMXCTL_FMT_H

#include <stdint.h>
#include <stdio.h>

#include "client.h"

extern int ctl_json; /* -j */

/* Parses record i; exits on a malformed one (the daemon and this tool share
 * the parser, so this is a bug or a different protocol version). */
void rec_at(const struct answer *a, size_t i, struct umx_ctl_rec *r);
/* A field as text ("" when absent) or as a number (0 when absent). */
const char *rec_str(const struct umx_ctl_rec *r, const char *k);
uint64_t rec_u64(const struct umx_ctl_rec *r, const char *k);

void json_str(FILE *f, const char *s, size_t len);
void json_obj(FILE *f, const struct umx_ctl_rec *r);
/* Generic JSON of an answer: records whose type is in `single` become one
 * object under that name, every other type an array under TYPE+"s".
 * Records of type `child` nest in the preceding `parent` record. */
void json_answer(const struct answer *a, const char *const *single, const char *parent,
                 const char *child);
/* Returns 1 (and prints it) when the answer is an error record. */
int answer_error(const struct answer *a);

void fmt_duration(char *buf, size_t len, uint64_t s);
void fmt_time(char *buf, size_t len, int64_t t);
/* 1234567 -> "1.2M" for rates and sizes in narrow columns. */
void fmt_si(char *buf, size_t len, double v);

/* One command's answer on stdout; each returns the exit status. */
int print_status(const struct answer *a);
int print_stats(const struct answer *a);
int print_routes(const struct answer *a);
int print_flows(const struct answer *a);
int print_simple(const struct answer *a, const char *single0);

#endif
