/*
 * fmt.c - udpmuxctl's output: the daemon's answers as text for people or
 * as JSON (-j) for programs (see fmt.h).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fmt.h"

int ctl_json;

/* Output helpers -------------------------------------------------------------------- */

/* Parses record i; exits on a malformed one (the daemon and this tool share
 * the parser, so this is a bug or a different protocol version). */
void rec_at(const struct answer *a, size_t i, struct umx_ctl_rec *r)
{
    const char *l = answer_line(a, i);
    if (umx_ctl_rec_parse(l, strlen(l), r) != 0) {
        fprintf(stderr, "udpmuxctl: malformed record from udpmuxd: %.80s\n", l);
        exit(EX_SOFTWARE_);
    }
}

const char *rec_str(const struct umx_ctl_rec *r, const char *k)
{
    const char *v = umx_ctl_rec_get(r, k);
    return v ? v : "";
}

uint64_t rec_u64(const struct umx_ctl_rec *r, const char *k)
{
    uint64_t v = 0;
    umx_ctl_rec_u64(r, k, &v);
    return v;
}

void json_str(FILE *f, const char *s, size_t len)
{
    fputc('"', f);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f); /* UTF-8 passes through; other bytes are the daemon's */
    }
    fputc('"', f);
}

/* A plain unsigned decimal (no sign, no leading zero) prints as a number. */
static int is_number(const char *s, size_t len)
{
    if (len == 0 || len > 19 || (len > 1 && s[0] == '0'))
        return 0;
    for (size_t i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* Numbers stay numbers except in fields that are names or text by nature
 * (a route named "42" is still a string). */
static int text_key(const char *k)
{
    static const char *const keys[] = {
        "name",    "route",  "rule",    "addr", "peer",    "local",   "backend",
        "version", "config", "message", "code", "control", "metrics", "last_reload_error",
        "health",  "state",  "action",  "kind", "result"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strcmp(k, keys[i]) == 0)
            return 1;
    return 0;
}

void json_obj(FILE *f, const struct umx_ctl_rec *r)
{
    fputc('{', f);
    for (unsigned i = 0; i < r->n; i++) {
        if (i)
            fputc(',', f);
        json_str(f, r->key[i], strlen(r->key[i]));
        fputc(':', f);
        if (!text_key(r->key[i]) && is_number(r->val[i], r->vlen[i]))
            fwrite(r->val[i], 1, r->vlen[i], f);
        else
            json_str(f, r->val[i], r->vlen[i]);
    }
}

/* Generic JSON of an answer: records whose type is in `single` become one
 * object under that name, every other type an array under TYPE+"s".
 * Records of type `child` nest in the preceding `parent` record. */
void json_answer(const struct answer *a, const char *const *single, const char *parent,
                 const char *child)
{
    static struct umx_ctl_rec r;
    char *types[16];
    unsigned nt = 0;
    /* record types in order of first appearance */
    for (size_t i = 0; i < a->n; i++) {
        int seen = 0;
        rec_at(a, i, &r);
        if (child && strcmp(r.type, child) == 0)
            continue;
        for (unsigned t = 0; t < nt; t++)
            if (strcmp(types[t], r.type) == 0)
                seen = 1;
        if (!seen && nt < 16)
            types[nt++] = strdup(r.type);
    }
    printf("{");
    for (unsigned t = 0; t < nt; t++) {
        int is_single = 0, first = 1;
        for (const char *const *s = single; s && *s; s++)
            if (strcmp(*s, types[t]) == 0)
                is_single = 1;
        if (t)
            printf(",");
        printf("\"%s%s\":", types[t], is_single ? "" : "s");
        if (!is_single)
            printf("[");
        for (size_t i = 0; i < a->n; i++) {
            rec_at(a, i, &r);
            if (strcmp(r.type, types[t]) != 0)
                continue;
            if (!first)
                printf(",");
            first = 0;
            json_obj(stdout, &r);
            if (parent && child && strcmp(r.type, parent) == 0) {
                int cf = 1;
                printf(",\"%ss\":[", child);
                for (size_t j = i + 1; j < a->n; j++) {
                    rec_at(a, j, &r);
                    if (strcmp(r.type, child) != 0)
                        break;
                    if (!cf)
                        printf(",");
                    cf = 0;
                    json_obj(stdout, &r);
                    printf("}");
                }
                printf("]");
            }
            printf("}");
            if (is_single)
                break;
        }
        if (!is_single)
            printf("]");
    }
    printf("}\n");
    for (unsigned t = 0; t < nt; t++)
        free(types[t]);
}

/* Returns 1 (and prints it) when the answer is an error record. */
int answer_error(const struct answer *a)
{
    static struct umx_ctl_rec r;
    if (a->n == 0)
        return 0;
    rec_at(a, 0, &r);
    if (strcmp(r.type, "error") != 0)
        return 0;
    if (ctl_json) {
        printf("{\"error\":");
        json_obj(stdout, &r);
        printf("}}\n");
    }
    fprintf(stderr, "udpmuxctl: udpmuxd: %s (%s)\n", rec_str(&r, "message"), rec_str(&r, "code"));
    return 1;
}

void fmt_duration(char *buf, size_t len, uint64_t s)
{
    if (s >= 86400)
        snprintf(buf, len, "%llud%02lluh%02llum", (unsigned long long)(s / 86400),
                 (unsigned long long)(s % 86400 / 3600), (unsigned long long)(s % 3600 / 60));
    else if (s >= 3600)
        snprintf(buf, len, "%lluh%02llum%02llus", (unsigned long long)(s / 3600),
                 (unsigned long long)(s % 3600 / 60), (unsigned long long)(s % 60));
    else if (s >= 60)
        snprintf(buf, len, "%llum%02llus", (unsigned long long)(s / 60),
                 (unsigned long long)(s % 60));
    else
        snprintf(buf, len, "%llus", (unsigned long long)s);
}

void fmt_time(char *buf, size_t len, int64_t t)
{
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

/* 1234567 -> "1.2M" for rates and sizes in narrow columns. */
void fmt_si(char *buf, size_t len, double v)
{
    if (v >= 1e9)
        snprintf(buf, len, "%.1fG", v / 1e9);
    else if (v >= 1e6)
        snprintf(buf, len, "%.1fM", v / 1e6);
    else if (v >= 1e4)
        snprintf(buf, len, "%.1fk", v / 1e3);
    else if (v == (double)(uint64_t)v)
        snprintf(buf, len, "%llu", (unsigned long long)v);
    else
        snprintf(buf, len, "%.1f", v);
}

/* Answers as text or JSON -------------------------------------------------------------------------
 */

int print_status(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"status", NULL};
    char up[32], loaded[40];
    int64_t now = (int64_t)time(NULL);
    if (ctl_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "status") == 0) {
            int64_t la = strtoll(rec_str(&r, "loaded_at"), NULL, 10);
            fmt_duration(up, sizeof(up), rec_u64(&r, "uptime_ms") / 1000u);
            fmt_time(loaded, sizeof(loaded), la);
            printf("udpmuxd %s (pid %s), up %s\n", rec_str(&r, "version"), rec_str(&r, "pid"), up);
            printf("config:     %s\n",
                   *rec_str(&r, "config") ? rec_str(&r, "config") : "(quick mode)");
            printf("loaded:     %s (%llds ago)\n", loaded, (long long)(now - la));
            printf("reloads:    %s ok, %s failed\n", rec_str(&r, "reloads_ok"),
                   rec_str(&r, "reloads_failed"));
            if (*rec_str(&r, "last_reload_error"))
                printf("last error: %s\n", rec_str(&r, "last_reload_error"));
            printf("workers:    %s\n", rec_str(&r, "workers"));
            printf("routes:     %s\n", rec_str(&r, "routes"));
            printf("flow table: %s entries\n", rec_str(&r, "flows_capacity"));
            printf("control:    %s\n", rec_str(&r, "control"));
            printf("metrics:    %s\n", *rec_str(&r, "metrics") ? rec_str(&r, "metrics") : "off");
            printf("listeners:  %s\n", rec_str(&r, "listeners"));
        } else if (strcmp(r.type, "listener") == 0) {
            printf("  %s  (SO_REUSEPORT group: %s sockets, %s not ours; steering: %s)\n",
                   rec_str(&r, "addr"), rec_str(&r, "reuseport.sockets"),
                   rec_str(&r, "reuseport.foreign"), rec_str(&r, "steering.program"));
        }
    }
    return EX_OK_;
}

int print_stats(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"stats", NULL};
    if (ctl_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        for (unsigned k = 0; k < r.n; k++)
            printf("%s=%s\n", r.key[k], r.val[k]);
    }
    return EX_OK_;
}

int print_routes(const struct answer *a)
{
    static struct umx_ctl_rec r;
    if (ctl_json) {
        json_answer(a, NULL, "route", "backend");
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "route") == 0) {
            printf("route %s%s: %s  match: %s\n", rec_str(&r, "name"),
                   rec_u64(&r, "draining") ? " (draining)" : "", rec_str(&r, "action"),
                   rec_str(&r, "rule"));
            printf("  in:  %s datagrams, %s bytes   out: %s datagrams, %s bytes\n",
                   rec_str(&r, "rx.datagrams"), rec_str(&r, "rx.bytes"),
                   rec_str(&r, "tx.datagrams"), rec_str(&r, "tx.bytes"));
            printf("  flows: %s active, %s created   matched: %s   drops: %s\n",
                   rec_str(&r, "flows.active"), rec_str(&r, "flows.created"),
                   rec_str(&r, "classify.matched"), rec_str(&r, "drops"));
            if (rec_u64(&r, "drops")) {
                /* the reasons that have counted anything */
                printf("  drops by reason:");
                for (unsigned k = 0; k < r.n; k++)
                    if (strncmp(r.key[k], "drop.", 5) == 0 && strcmp(r.val[k], "0") != 0)
                        printf(" %s=%s", r.key[k] + 5, r.val[k]);
                printf("\n");
            }
        } else if (strcmp(r.type, "backend") == 0) {
            printf("  backend %-40s %s%s\n", rec_str(&r, "addr"), rec_str(&r, "health"),
                   rec_u64(&r, "passive_down_ms") ? " (passive, no replies)"
                   : rec_u64(&r, "active_down")   ? " (health check)"
                                                  : "");
            printf("    to:   %s datagrams, %s bytes (lost: %s datagrams, %s bytes)\n",
                   rec_str(&r, "tx.datagrams"), rec_str(&r, "tx.bytes"), rec_str(&r, "tx.dropped"),
                   rec_str(&r, "tx.dropped_bytes"));
            printf("    from: %s datagrams, %s bytes   flows: %s active, %s created\n",
                   rec_str(&r, "rx.datagrams"), rec_str(&r, "rx.bytes"),
                   rec_str(&r, "flows.active"), rec_str(&r, "flows.created"));
            if (rec_u64(&r, "checks.sent"))
                printf("    checks: %s sent, %s ok, %s failed, %s transitions\n",
                       rec_str(&r, "checks.sent"), rec_str(&r, "checks.ok"),
                       rec_str(&r, "checks.failed"), rec_str(&r, "checks.transitions"));
        }
    }
    return EX_OK_;
}

int print_flows(const struct answer *a)
{
    static struct umx_ctl_rec r;
    static const char *const single[] = {"summary", NULL};
    int header = 0;
    if (ctl_json) {
        json_answer(a, single, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "flow") == 0) {
            char age[32], idle[32];
            if (!header++)
                printf("%-12s %-40s %-24s %-11s %9s %9s %10s %10s %10s %10s %s\n", "ROUTE", "PEER",
                       "BACKEND", "STATE", "AGE", "IDLE", "RX DGRAMS", "RX BYTES", "TX DGRAMS",
                       "TX BYTES", "PATH");
            fmt_duration(age, sizeof(age), rec_u64(&r, "age_ms") / 1000u);
            fmt_duration(idle, sizeof(idle), rec_u64(&r, "idle_ms") / 1000u);
            printf("%-12s %-40s %-24s %-11s %9s %9s %10s %10s %10s %10s %s\n", rec_str(&r, "route"),
                   rec_str(&r, "peer"), *rec_str(&r, "backend") ? rec_str(&r, "backend") : "-",
                   rec_str(&r, "state"), age, idle, rec_str(&r, "rx.datagrams"),
                   rec_str(&r, "rx.bytes"), rec_str(&r, "tx.datagrams"), rec_str(&r, "tx.bytes"),
                   *rec_str(&r, "datapath") ? rec_str(&r, "datapath") : "user");
        } else if (strcmp(r.type, "summary") == 0) {
            printf("%s of %s matching flows shown%s\n", rec_str(&r, "shown"),
                   rec_str(&r, "matched"),
                   rec_u64(&r, "truncated") ? " (truncated: use -n, -r or -p)" : "");
        }
    }
    return EX_OK_;
}

int print_simple(const struct answer *a, const char *single0)
{
    static struct umx_ctl_rec r;
    const char *single[] = {single0, NULL};
    if (ctl_json) {
        json_answer(a, single0 ? single : NULL, NULL, NULL);
        return EX_OK_;
    }
    for (size_t i = 0; i < a->n; i++) {
        rec_at(a, i, &r);
        if (strcmp(r.type, "reload") == 0) {
            printf("reloaded: %s routes\n", rec_str(&r, "routes"));
        } else if (strcmp(r.type, "drain") == 0 || strcmp(r.type, "undrain") == 0) {
            int on = strcmp(r.type, "drain") == 0;
            if (strcmp(rec_str(&r, "kind"), "route") == 0)
                printf("route %s: %s (%s active flows)\n", rec_str(&r, "route"),
                       on ? "draining, no new flows; existing flows finish" : "accepting new flows",
                       rec_str(&r, "flows.active"));
            else
                printf("backend %s of route %s: %s\n", rec_str(&r, "backend"), rec_str(&r, "route"),
                       on ? "draining, no new flows; existing flows finish"
                          : "accepting new flows");
        }
    }
    return EX_OK_;
}
