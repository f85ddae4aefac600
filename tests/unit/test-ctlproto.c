/*
 * test-ctlproto.c - the control protocol module (proto/ctlproto.c) that
 * udpmuxd, udpmuxctl and fuzz-ctl share: request parsing (every command,
 * every argument, every refusal), request formatting round trips, the
 * record writer (escapes, overflow, the end marker) and the record reader.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctlproto.h"

static int parse(const char *line, struct umx_ctl_req *req)
{
    return umx_ctl_req_parse(line, strlen(line), req);
}

static void test_commands(void **state)
{
    struct umx_ctl_req q;
    static const struct {
        const char *line;
        enum umx_ctl_cmd cmd;
    } ok[] = {
        {"status\n", UMX_CTL_STATUS},       {"stats", UMX_CTL_STATS},
        {"routes\r\n", UMX_CTL_ROUTES},     {"flows\n", UMX_CTL_FLOWS},
        {"reload\n", UMX_CTL_RELOAD},       {"drain dns\n", UMX_CTL_DRAIN},
        {"undrain dns\n", UMX_CTL_UNDRAIN},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        assert_int_equal(parse(ok[i].line, &q), 0);
        assert_int_equal(q.cmd, ok[i].cmd);
        {
            const char *name = umx_ctl_cmd_name(q.cmd);
            assert_memory_equal(ok[i].line, name, strlen(name));
        }
    }
    assert_int_equal(q.limit, UMX_CTL_FLOWS_DEFAULT);
    assert_null(umx_ctl_cmd_name(UMX_CTL_CMD_COUNT));
}

static void test_refusals(void **state)
{
    struct umx_ctl_req q;
    static const char *const bad[] = {
        "",                      /* empty */
        "\n",                    /* empty line */
        "STATUS\n",              /* commands are lower case */
        "statu\n",               /* unknown */
        "status extra\n",        /* operand on a command without one */
        "status \n",             /* trailing space */
        " status\n",             /* leading space */
        "flows  route=a\n",      /* two spaces */
        "flows route=\n",        /* empty value */
        "flows route=a route=b", /* repeated */
        "flows limit=0\n",       /* below 1 */
        "flows limit=10001\n",   /* above the cap */
        "flows limit=12x\n",     /* not a number */
        "flows colour=red\n",    /* unknown key */
        "flows route=%zz\n",     /* bad escape */
        "flows route=%4\n",      /* cut escape */
        "flows route=a%00b\n",   /* NUL in a name */
        "drain\n",               /* missing operand */
        "drain a b\n",           /* two operands */
        "drain route=a\n",       /* drain takes a bare word */
        "reload now\n",          /* operand */
        "stats\tx\n",            /* control byte */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = parse(bad[i], &q);
        if (r != -EINVAL)
            fail_msg("'%s' gave %d, want -EINVAL", bad[i], r);
    }
}

static void test_flows_args(void **state)
{
    struct umx_ctl_req q;
    (void)state;
    assert_int_equal(parse("flows route=dns peer=%5B::1%5D:53 limit=7\n", &q), 0);
    assert_string_equal(q.route, "dns");
    assert_string_equal(q.peer, "[::1]:53");
    assert_int_equal(q.limit, 7);
    assert_int_equal(parse("flows limit=10000", &q), 0);
    assert_int_equal(q.limit, UMX_CTL_FLOWS_MAX);
    /* an argument longer than its buffer is refused, not cut */
    {
        char line[400];
        memset(line, 0, sizeof(line));
        memcpy(line, "flows route=", 12);
        memset(line + 12, 'a', UMX_CTL_ARG_MAX);
        assert_int_equal(parse(line, &q), -E2BIG);
    }
    /* a line longer than the cap */
    {
        char *line = calloc(1, UMX_CTL_LINE_MAX + 2);
        memset(line, 'a', UMX_CTL_LINE_MAX + 1);
        assert_int_equal(umx_ctl_req_parse(line, UMX_CTL_LINE_MAX + 1, &q), -E2BIG);
        free(line);
    }
}

static void test_drain_targets(void **state)
{
    struct umx_ctl_req q;
    (void)state;
    assert_int_equal(parse("drain dns/127.0.0.1:5353\n", &q), 0);
    assert_string_equal(q.target, "dns/127.0.0.1:5353");
    assert_int_equal(parse("undrain [::1]:53", &q), 0);
    assert_string_equal(q.target, "[::1]:53");
    assert_int_equal(parse("drain a%20b", &q), 0);
    assert_string_equal(q.target, "a b");
}

static void test_format_roundtrip(void **state)
{
    struct umx_ctl_req a, b;
    char line[UMX_CTL_LINE_MAX + 1];
    int n;
    (void)state;
    memset(&a, 0, sizeof(a));
    a.cmd = UMX_CTL_FLOWS;
    snprintf(a.route, sizeof(a.route), "%s", "my route");
    snprintf(a.peer, sizeof(a.peer), "%s", "10.0.0.1%x=");
    a.limit = 42;
    n = umx_ctl_req_format(&a, line, sizeof(line));
    assert_true(n > 0);
    assert_string_equal(line, "flows route=my%20route peer=10.0.0.1%25x= limit=42\n");
    assert_int_equal(umx_ctl_req_parse(line, (size_t)n, &b), 0);
    assert_string_equal(b.route, a.route);
    assert_string_equal(b.peer, a.peer);
    assert_int_equal(b.limit, 42);

    memset(&a, 0, sizeof(a));
    a.cmd = UMX_CTL_DRAIN;
    snprintf(a.target, sizeof(a.target), "%s", "dns/[::1]:53");
    n = umx_ctl_req_format(&a, line, sizeof(line));
    assert_string_equal(line, "drain dns/[::1]:53\n");
    assert_int_equal(umx_ctl_req_parse(line, (size_t)n, &b), 0);
    assert_string_equal(b.target, a.target);

    /* a drain without target, or one that would read as KEY=VALUE */
    a.target[0] = '\0';
    assert_int_equal(umx_ctl_req_format(&a, line, sizeof(line)), -EINVAL);
    snprintf(a.target, sizeof(a.target), "%s", "a=b");
    assert_int_equal(umx_ctl_req_format(&a, line, sizeof(line)), -EINVAL);
    /* too small a buffer */
    a.cmd = UMX_CTL_STATUS;
    assert_int_equal(umx_ctl_req_format(&a, line, 4), -E2BIG);
    a.cmd = UMX_CTL_NONE;
    assert_int_equal(umx_ctl_req_format(&a, line, sizeof(line)), -EINVAL);
}

static void test_writer_reader(void **state)
{
    static struct umx_ctl_rec r;
    char buf[512];
    struct umx_ctl_out o;
    const char bin[] = {'a', ' ', '%', '=', '\n', '\0', 'z', (char)0xff};
    char *nl;
    uint64_t v;
    (void)state;
    umx_ctl_out_init(&o, buf, sizeof(buf));
    umx_ctl_rec(&o, "route");
    umx_ctl_str(&o, "name", "dns");
    umx_ctl_u64(&o, "rx.datagrams", 18446744073709551615ull);
    umx_ctl_i64(&o, "delta", -5);
    umx_ctl_mem(&o, "bin", bin, sizeof(bin));
    umx_ctl_str(&o, "empty", "");
    umx_ctl_rec_end(&o);
    umx_ctl_done(&o);
    assert_false(o.overflow);
    assert_string_equal(buf, "route name=dns rx.datagrams=18446744073709551615 delta=-5 "
                             "bin=a%20%25=%0A%00z%FF empty=\n.\n");
    nl = strchr(buf, '\n');
    assert_int_equal(umx_ctl_rec_parse(buf, (size_t)(nl - buf) + 1, &r), 0);
    assert_string_equal(r.type, "route");
    assert_int_equal(r.n, 5);
    assert_string_equal(umx_ctl_rec_get(&r, "name"), "dns");
    assert_int_equal(umx_ctl_rec_u64(&r, "rx.datagrams", &v), 0);
    assert_true(v == UINT64_MAX);
    assert_int_equal(umx_ctl_rec_u64(&r, "delta", &v), -EINVAL);
    assert_int_equal(umx_ctl_rec_u64(&r, "nope", &v), -ENOENT);
    assert_int_equal(r.vlen[3], sizeof(bin));
    assert_memory_equal(r.val[3], bin, sizeof(bin));
    assert_string_equal(umx_ctl_rec_get(&r, "empty"), "");
    assert_null(umx_ctl_rec_get(&r, "missing"));
    assert_int_equal(umx_ctl_rec_parse(nl + 1, 2, &r), 1);
}

static void test_reader_refusals(void **state)
{
    static struct umx_ctl_rec r;
    static const char *const bad[] = {
        "",          "route name",  "route =x",   "route name=a  b=c", "Route a=b",
        "route a=%", "route a=%g0", "route a=b ", "route a=\x01",      "route a b=c",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (umx_ctl_rec_parse(bad[i], strlen(bad[i]), &r) >= 0)
            fail_msg("record '%s' was accepted", bad[i]);
    /* too many fields */
    {
        char line[UMX_CTL_FIELDS_MAX * 8 + 16];
        size_t n = (size_t)snprintf(line, sizeof(line), "t");
        for (int i = 0; i <= UMX_CTL_FIELDS_MAX; i++)
            n += (size_t)snprintf(line + n, sizeof(line) - n, " k%d=1", i);
        assert_int_equal(umx_ctl_rec_parse(line, n, &r), -E2BIG);
    }
    /* a key at the length cap */
    {
        char line[128];
        memset(line, 0, sizeof(line));
        memcpy(line, "t ", 2);
        memset(line + 2, 'k', UMX_CTL_KEY_MAX);
        line[2 + UMX_CTL_KEY_MAX] = '=';
        assert_int_equal(umx_ctl_rec_parse(line, strlen(line), &r), -E2BIG);
    }
}

static void test_overflow(void **state)
{
    char buf[64];
    struct umx_ctl_out o;
    (void)state;
    umx_ctl_out_init(&o, buf, sizeof(buf));
    umx_ctl_rec(&o, "a");
    umx_ctl_u64(&o, "n", 1);
    umx_ctl_rec_end(&o);
    umx_ctl_rec(&o, "b");
    umx_ctl_str(&o, "long", "0123456789012345678901234567890123456789012345678901234567890");
    umx_ctl_rec_end(&o);
    assert_true(o.overflow);
    /* the half record is rolled back; later records are not written */
    umx_ctl_rec(&o, "c");
    umx_ctl_rec_end(&o);
    umx_ctl_done(&o);
    assert_string_equal(buf, "a n=1\n.\n");
    assert_true(o.len < sizeof(buf));
}

static void test_error_record(void **state)
{
    static struct umx_ctl_rec r;
    char buf[256];
    struct umx_ctl_out o;
    (void)state;
    umx_ctl_out_init(&o, buf, sizeof(buf));
    umx_ctl_error(&o, -ENOENT, "no such route");
    umx_ctl_done(&o);
    assert_string_equal(buf, "error code=ENOENT errno=2 message=no%20such%20route\n.\n");
    assert_int_equal(umx_ctl_rec_parse(buf, strchr(buf, '\n') - buf, &r), 0);
    assert_string_equal(umx_ctl_rec_get(&r, "message"), "no such route");
    assert_string_equal(umx_ctl_errname(-12345), "EUNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commands),         cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_flows_args),       cmocka_unit_test(test_drain_targets),
        cmocka_unit_test(test_format_roundtrip), cmocka_unit_test(test_writer_reader),
        cmocka_unit_test(test_reader_refusals),  cmocka_unit_test(test_overflow),
        cmocka_unit_test(test_error_record),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
