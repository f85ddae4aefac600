/*
 * fuzz-ctl.c - the control protocol (proto/ctlproto.h), both directions.
 *
 * The input is [mode byte][line bytes...]. Every input is fed to the
 * request parser (what udpmuxd reads from a local user) and to the record
 * parser (what udpmuxctl reads from the daemon), each given a buffer of
 * exactly the input's size so ASan sees any over-read. Checked:
 *  - a request that parses formats back to a line that parses to the same
 *    request (the CLI and the daemon agree on every accepted request);
 *  - the record writer, fed the input as a value (mode bit 0) or split into
 *    many fields, produces lines the record parser accepts and decodes back
 *    to exactly the bytes written (percent-encoding round-trips, no field
 *    can smuggle a space, '=' or LF into the next one);
 *  - a writer with too small a buffer reports overflow and still ends its
 *    answer with the "." marker, never writing past the buffer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctlproto.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-ctl: invariant failed at line %d: %s\n", __LINE__, #c);          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct umx_ctl_rec g_rec; /* ~17 KiB: not on the stack */

static void check_request(const char *line, size_t len)
{
    struct umx_ctl_req a, b;
    char out[UMX_CTL_LINE_MAX + 1];
    int n;
    if (umx_ctl_req_parse(line, len, &a) != 0)
        return;
    CHECK(a.cmd > UMX_CTL_NONE && a.cmd < UMX_CTL_CMD_COUNT);
    CHECK(a.limit >= 1 && a.limit <= UMX_CTL_FLOWS_MAX);
    n = umx_ctl_req_format(&a, out, sizeof(out));
    if (n == -EINVAL) {
        /* only a drain target with '=' cannot be written back as a bare word */
        CHECK(strchr(a.target, '=') != NULL);
        return;
    }
    if (n == -E2BIG)
        return; /* escapes may make the line longer than the cap */
    CHECK(n > 0 && (size_t)n < sizeof(out) && out[n - 1] == '\n');
    CHECK(umx_ctl_req_parse(out, (size_t)n, &b) == 0);
    CHECK(a.cmd == b.cmd && a.limit == b.limit);
    CHECK(strcmp(a.route, b.route) == 0 && strcmp(a.peer, b.peer) == 0);
    CHECK(strcmp(a.target, b.target) == 0);
}

static void check_record(const char *line, size_t len)
{
    int r = umx_ctl_rec_parse(line, len, &g_rec);
    CHECK(r == 0 || r == 1 || r == -EINVAL || r == -E2BIG);
    if (r != 0)
        return;
    CHECK(g_rec.n <= UMX_CTL_FIELDS_MAX);
    for (unsigned i = 0; i < g_rec.n; i++) {
        CHECK(g_rec.key[i][0] != '\0');
        CHECK(g_rec.val[i][g_rec.vlen[i]] == '\0');
    }
}

/* Writes the input as values (whole, and cut in up to 8 fields), parses
 * the lines back and compares. */
static void check_writer(const uint8_t *v, size_t len, int split)
{
    static char buf[UMX_CTL_RESP_LINE_MAX * 2];
    struct umx_ctl_out o;
    size_t parts = split ? 8 : 1, step = len / parts + 1, off = 0;
    char *nl;
    umx_ctl_out_init(&o, buf, sizeof(buf));
    umx_ctl_rec(&o, "rec");
    for (unsigned i = 0; i < parts; i++) {
        char key[8];
        size_t n = off + step > len ? len - off : step;
        snprintf(key, sizeof(key), "k%u", i);
        umx_ctl_mem(&o, key, v + off, n);
        off += n;
    }
    umx_ctl_rec_end(&o);
    umx_ctl_done(&o);
    CHECK(o.len < sizeof(buf));
    if (o.overflow) {
        CHECK(o.len == 2 && memcmp(buf, ".\n", 2) == 0);
        return;
    }
    nl = memchr(buf, '\n', o.len);
    CHECK(nl != NULL);
    CHECK(umx_ctl_rec_parse(buf, (size_t)(nl - buf) + 1, &g_rec) == 0);
    CHECK(strcmp(g_rec.type, "rec") == 0 && g_rec.n == parts);
    off = 0;
    for (unsigned i = 0; i < parts; i++) {
        size_t n = off + step > len ? len - off : step;
        CHECK(g_rec.vlen[i] == n && memcmp(g_rec.val[i], v + off, n) == 0);
        off += n;
    }
    CHECK(umx_ctl_rec_parse(nl + 1, o.len - (size_t)(nl + 1 - buf), &g_rec) == 1);
}

/* A writer with a tiny buffer must flag overflow and still terminate. */
static void check_small(const uint8_t *v, size_t len, size_t cap)
{
    char *buf = malloc(cap);
    struct umx_ctl_out o;
    if (!buf)
        return;
    umx_ctl_out_init(&o, buf, cap);
    umx_ctl_rec(&o, "x");
    umx_ctl_mem(&o, "v", v, len);
    umx_ctl_rec_end(&o);
    umx_ctl_error(&o, -EINVAL, "m");
    umx_ctl_done(&o);
    CHECK(o.len <= cap - 1 && buf[o.len - 1] == '\n' && buf[o.len - 2] == '.');
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line;
    uint8_t mode;
    if (size < 1)
        return 0;
    mode = data[0];
    data++;
    size--;
    /* exactly size bytes: an over-read of one byte is an ASan report */
    line = malloc(size ? size : 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    check_request(line, size);
    check_record(line, size);
    free(line);
    if (size <= UMX_CTL_RESP_LINE_MAX / 4)
        check_writer(data, size, mode & 1);
    check_small(data, size, 3 + (size_t)(mode >> 1) % 64);
    return 0;
}
