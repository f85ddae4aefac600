/*
 * test-rule.c - the rule engine (lib/rules/rule.c): every term, syntax
 * errors with columns, negation, and-chains, hex and masks, CIDR (v4, v6,
 * v4-mapped), ports, length ranges, PCRE2 regexes on binary data with the
 * backtracking limit, and the first-byte pre-filter.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "internal.h"
#include "rules/roam.h"

/* Helpers ---------------------------------------------------------------- */

static struct sockaddr_storage peer4(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in s4;
    memset(&ss, 0, sizeof(ss));
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    s4.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &s4.sin_addr), 1);
    memcpy(&ss, &s4, sizeof(s4));
    return ss;
}

static struct sockaddr_storage peer6(const char *ip, uint16_t port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 s6;
    memset(&ss, 0, sizeof(ss));
    memset(&s6, 0, sizeof(s6));
    s6.sin6_family = AF_INET6;
    s6.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &s6.sin6_addr), 1);
    memcpy(&ss, &s6, sizeof(s6));
    return ss;
}

static struct udpmux_rule *compile_ok(const char *text)
{
    struct udpmux_rule *r = NULL;
    char err[256] = "";
    int rc = udpmux_rule_compile(&r, text, err, sizeof(err));
    if (rc != 0)
        fail_msg("rule '%s' failed to compile: %d %s", text, rc, err);
    assert_non_null(r);
    return r;
}

/* Compiles text expecting failure rc and a message that names column col
 * (1-based) and contains want (may be NULL). */
static void compile_err(const char *text, int rc_want, size_t col, const char *want)
{
    struct udpmux_rule *r = (struct udpmux_rule *)(uintptr_t)1;
    char err[256] = "";
    char colstr[32];
    int rc = udpmux_rule_compile(&r, text, err, sizeof(err));
    if (rc != rc_want)
        fail_msg("rule '%s': rc %d, want %d (%s)", text, rc, rc_want, err);
    assert_null(r);
    snprintf(colstr, sizeof(colstr), "column %zu:", col);
    if (strncmp(err, colstr, strlen(colstr)) != 0)
        fail_msg("rule '%s': message '%s' does not start with '%s'", text, err, colstr);
    if (want && !strstr(err, want))
        fail_msg("rule '%s': message '%s' lacks '%s'", text, err, want);
}

static int match_full(const char *text, const void *data, size_t len,
                      const struct sockaddr_storage *peer)
{
    struct udpmux_rule *r = compile_ok(text);
    struct udpmux_match_input in;
    int m;
    memset(&in, 0, sizeof(in));
    in.data = data;
    in.len = len;
    in.peer = (const struct sockaddr *)peer;
    m = udpmux_rule_match(r, &in);
    udpmux_rule_free(r);
    return m;
}

static int match(const char *text, const void *data, size_t len)
{
    struct sockaddr_storage p = peer4("192.0.2.1", 4000);
    return match_full(text, data, len, &p);
}

static int match_from(const char *text, const struct sockaddr_storage *peer)
{
    return match_full(text, "x", 1, peer);
}

/* Terms ------------------------------------------------------------------ */

static void test_any(void **state)
{
    (void)state;
    assert_int_equal(match("any", "abc", 3), 1);
    assert_int_equal(match("any", "", 0), 1);
    assert_int_equal(match_full("any", "a", 1, NULL), 1);
    /* data may be NULL when len is 0 */
    assert_int_equal(match("any", NULL, 0), 1);
    assert_int_equal(match("not any", "abc", 3), 0);
}

static void test_prefix_and_bytes(void **state)
{
    static const uint8_t d[] = {0x16, 0x03, 0x01, 0x00, 0xff, 0x10};
    (void)state;
    assert_int_equal(match("prefix 16", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 1603", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 0x160301", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 1604", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 16:03:01", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 16-03-01", d, sizeof(d)), 1);
    assert_int_equal(match("prefix \"16 03 01 00\"", d, sizeof(d)), 1);
    assert_int_equal(match("prefix \"16 03 01 01\"", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 0X16", d, sizeof(d)), 1);
    assert_int_equal(match("prefix FF", d, sizeof(d)), 0);
    assert_int_equal(match("bytes 4 ff10", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 4 FF10", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 5 10", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 0x5 10", d, sizeof(d)), 1);
    /* reaching past the end never matches and never reads past it */
    assert_int_equal(match("bytes 5 1000", d, sizeof(d)), 0);
    assert_int_equal(match("bytes 6 00", d, sizeof(d)), 0);
    assert_int_equal(match("bytes 65535 00", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 16", d, 0), 0);
    assert_int_equal(match("prefix 16", NULL, 0), 0);
}

static void test_masks(void **state)
{
    static const uint8_t d[] = {0x45, 0xab, 0xcd};
    (void)state;
    /* high nibble 4: IPv4-header-like */
    assert_int_equal(match("bytes 0 40 mask f0", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 0 50 mask f0", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 40 mask f0", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 1 a0c0 mask f0f0", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 1 a0d0 mask f0f0", d, sizeof(d)), 0);
    /* value bits outside the mask are ignored (value is masked too) */
    assert_int_equal(match("bytes 0 4f mask f0", d, sizeof(d)), 1);
    /* zero mask matches anything long enough */
    assert_int_equal(match("bytes 2 ff mask 00", d, sizeof(d)), 1);
    assert_int_equal(match("bytes 3 ff mask 00", d, sizeof(d)), 0);
}

static void test_len(void **state)
{
    static uint8_t big[UDPMUX_MAX_DGRAM_V6];
    (void)state;
    assert_int_equal(match("len 3", "abc", 3), 1);
    assert_int_equal(match("len 3", "ab", 2), 0);
    assert_int_equal(match("len 2..4", "ab", 2), 1);
    assert_int_equal(match("len 2..4", "abcd", 4), 1);
    assert_int_equal(match("len 2..4", "abcde", 5), 0);
    assert_int_equal(match("len 2..4", "a", 1), 0);
    assert_int_equal(match("len ..1", "", 0), 1);
    assert_int_equal(match("len ..1", "a", 1), 1);
    assert_int_equal(match("len ..1", "ab", 2), 0);
    assert_int_equal(match("len 1..", "", 0), 0);
    assert_int_equal(match("len 1..", big, sizeof(big)), 1);
    assert_int_equal(match("len 0", "", 0), 1);
    assert_int_equal(match("len 0x10", "0123456789abcdef", 16), 1);
    /* a leading zero is still decimal, never octal */
    assert_int_equal(match("len 010", "0123456789", 10), 1);
    assert_int_equal(match("len 010", "01234567", 8), 0);
    assert_int_equal(match("len 08..09", "012345678", 9), 1);
    assert_int_equal(match("len 65527", big, sizeof(big)), 1);
    assert_int_equal(match("len 65507..", big, sizeof(big)), 1);
}

static void test_port(void **state)
{
    struct sockaddr_storage p = peer4("192.0.2.1", 53);
    struct sockaddr_storage p6 = peer6("2001:db8::1", 5353);
    (void)state;
    assert_int_equal(match_full("port 53", "x", 1, &p), 1);
    assert_int_equal(match_full("port 54", "x", 1, &p), 0);
    assert_int_equal(match_full("port 1..1023", "x", 1, &p), 1);
    assert_int_equal(match_full("port 1024..", "x", 1, &p), 0);
    assert_int_equal(match_full("port ..53", "x", 1, &p), 1);
    assert_int_equal(match_full("port 5353", "x", 1, &p6), 1);
    assert_int_equal(match_full("port 5000..6000", "x", 1, &p6), 1);
    assert_int_equal(match_full("port 0..65535", "x", 1, &p6), 1);
    assert_int_equal(match_full("port 053", "x", 1, &p), 1);
    assert_int_equal(match_full("port 0x35", "x", 1, &p), 1);
    /* no peer: address terms fail */
    assert_int_equal(match_full("port 0..65535", "x", 1, NULL), 0);
    assert_int_equal(match_full("not port 53", "x", 1, NULL), 1);
}

static void test_from_v4(void **state)
{
    struct sockaddr_storage a = peer4("10.1.2.3", 1);
    struct sockaddr_storage b = peer4("10.1.3.3", 1);
    (void)state;
    assert_int_equal(match_from("from 10.1.2.3", &a), 1);
    assert_int_equal(match_from("from 10.1.2.3/32", &a), 1);
    assert_int_equal(match_from("from 10.1.2.4", &a), 0);
    assert_int_equal(match_from("from 10.1.2.0/24", &a), 1);
    assert_int_equal(match_from("from 10.1.2.0/24", &b), 0);
    assert_int_equal(match_from("from 10.1.0.0/16", &b), 1);
    /* non-byte-aligned prefix: 10.1.2.0/23 covers 10.1.2.x and 10.1.3.x */
    assert_int_equal(match_from("from 10.1.2.0/23", &b), 1);
    assert_int_equal(match_from("from 10.1.4.0/23", &b), 0);
    assert_int_equal(match_from("from 10.1.2.3/31", &a), 1);
    assert_int_equal(match_from("from 0.0.0.0/0", &a), 1);
    /* host bits in the CIDR are ignored beyond the prefix */
    assert_int_equal(match_from("from 10.1.2.99/24", &a), 1);
    /* a /024 is a /24, not an octal /20 */
    assert_int_equal(match_from("from 10.1.2.0/024", &a), 1);
    assert_int_equal(match_from("from 10.1.2.0/024", &b), 0);
    /* IPv4 peer never matches an IPv6 CIDR */
    assert_int_equal(match_from("from ::/0", &a), 0);
}

static void test_from_v6_and_mapped(void **state)
{
    struct sockaddr_storage a = peer6("2001:db8:1::5", 1);
    struct sockaddr_storage m = peer6("::ffff:192.0.2.77", 1);
    struct sockaddr_storage ll = peer6("fe80::1", 1);
    (void)state;
    assert_int_equal(match_from("from 2001:db8:1::5", &a), 1);
    assert_int_equal(match_from("from 2001:db8:1::5/128", &a), 1);
    assert_int_equal(match_from("from 2001:db8:1::6", &a), 0);
    assert_int_equal(match_from("from 2001:db8::/32", &a), 1);
    assert_int_equal(match_from("from 2001:db8:1::/48", &a), 1);
    assert_int_equal(match_from("from 2001:db8:2::/48", &a), 0);
    assert_int_equal(match_from("from 2001:db8::/31", &a), 1);
    assert_int_equal(match_from("from 2001:db9::/32", &a), 0);
    assert_int_equal(match_from("from ::/0", &a), 1);
    assert_int_equal(match_from("from fe80::/10", &ll), 1);
    assert_int_equal(match_from("from fe80::/10", &a), 0);
    /* a v4-mapped peer (dual-stack socket) matches IPv4 CIDRs... */
    assert_int_equal(match_from("from 192.0.2.0/24", &m), 1);
    assert_int_equal(match_from("from 192.0.2.77", &m), 1);
    assert_int_equal(match_from("from 192.0.3.0/24", &m), 0);
    /* ...and its own IPv6 form */
    assert_int_equal(match_from("from ::ffff:192.0.2.77", &m), 1);
    assert_int_equal(match_from("from ::ffff:0:0/96", &m), 1);
    /* a real IPv6 peer does not match an IPv4 CIDR */
    assert_int_equal(match_from("from 0.0.0.0/0", &a), 0);
    /* no peer */
    assert_int_equal(match_full("from ::/0", "x", 1, NULL), 0);
}

static void test_regex_binary(void **state)
{
    static const uint8_t d1[] = {0x00, 0x01, 0x02, 'h', 'i'};
    static const uint8_t d2[] = {0x01, 0x00, 0x01};
    static const uint8_t d3[] = {'a', 'b', 0x00, 'c', 'd'};
    (void)state;
    assert_int_equal(match("regex \"^\\x00\\x01\"", d1, sizeof(d1)), 1);
    assert_int_equal(match("regex \"^\\x00\\x01\"", d2, sizeof(d2)), 0);
    /* NUL inside the data does not end the subject */
    assert_int_equal(match("regex \"\\x00cd$\"", d3, sizeof(d3)), 1);
    assert_int_equal(match("regex \"b\\x00c\"", d3, sizeof(d3)), 1);
    assert_int_equal(match("regex \"b\\0c\"", d3, sizeof(d3)), 1);
    assert_int_equal(match("regex \"hi$\"", d1, sizeof(d1)), 1);
    /* search, not anchored */
    assert_int_equal(match("regex \"PING [0-9]+\"", "xx PING 42", 10), 1);
    assert_int_equal(match("regex \"^PING [0-9]+$\"", "PING 42", 7), 1);
    assert_int_equal(match("regex \"^PING [0-9]+$\"", "PING x", 6), 0);
    /* escaped quote inside the pattern */
    assert_int_equal(match("regex \"say \\\"hi\\\"\"", "say \"hi\"", 8), 1);
    /* spaces inside quotes */
    assert_int_equal(match("regex \"a b c\"", "xa b cx", 7), 1);
    /* empty datagram */
    assert_int_equal(match("regex \"^$\"", "", 0), 1);
    assert_int_equal(match("regex \"^$\"", NULL, 0), 1);
    assert_int_equal(match("regex \"x\"", "", 0), 0);
    /* case-insensitive via an inline option */
    assert_int_equal(match("regex \"(?i)^get \"", "GET /", 5), 1);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_regex_match_limit(void **state)
{
    /* (a+)+$ against a long run of 'a' followed by a non-match is the
     * classic exponential backtracking case: without the match limit this
     * takes 2^40 steps. With it the match gives up: no match, quickly. */
    char subj[64];
    double t0, dt;
    struct udpmux_rule *r = compile_ok("regex \"^(a+)+$\"");
    struct udpmux_match_input in;
    (void)state;
    memset(subj, 'a', 40);
    subj[40] = '!';
    memset(&in, 0, sizeof(in));
    in.data = (const uint8_t *)subj;
    in.len = 41;
    t0 = now_s();
    assert_int_equal(udpmux_rule_match(r, &in), 0);
    dt = now_s() - t0;
    /* generous bound: valgrind and sanitizers are slow, unbounded is hours */
    assert_true(dt < 5.0);
    /* the same pattern still matches a good subject */
    in.len = 40;
    assert_int_equal(udpmux_rule_match(r, &in), 1);
    udpmux_rule_free(r);
}

static void test_negation_and_and(void **state)
{
    static const uint8_t d[] = {0x16, 0x03, 0x01};
    struct sockaddr_storage p = peer4("10.0.0.1", 443);
    (void)state;
    assert_int_equal(match("not prefix 17", d, sizeof(d)), 1);
    assert_int_equal(match("not prefix 16", d, sizeof(d)), 0);
    assert_int_equal(match("! prefix 16", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 16 and len 3", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 16 && len 3", d, sizeof(d)), 1);
    assert_int_equal(match("prefix 16 and len 4", d, sizeof(d)), 0);
    assert_int_equal(match("prefix 16 and not len 4", d, sizeof(d)), 1);
    assert_int_equal(match("not len 3 and prefix 16", d, sizeof(d)), 0);
    assert_int_equal(match_full("prefix 16 and from 10.0.0.0/8 and port 443", d, sizeof(d), &p), 1);
    assert_int_equal(match_full("prefix 16 and from 10.0.0.0/8 and port 444", d, sizeof(d), &p), 0);
    assert_int_equal(match_full("prefix 16 and not from 10.0.0.0/8", d, sizeof(d), &p), 0);
    assert_int_equal(match_full("not from 11.0.0.0/8 and not port 80", d, sizeof(d), &p), 1);
    assert_int_equal(match("not regex \"^\\x16\"", d, sizeof(d)), 0);
    assert_int_equal(match("not regex \"^\\x17\"", d, sizeof(d)), 1);
    /* negated terms and the empty datagram */
    assert_int_equal(match("not prefix 16", "", 0), 1);
    assert_int_equal(match("not len 0", "", 0), 0);
    /* extra whitespace and tabs */
    assert_int_equal(match("  prefix 16\tand   len 3  ", d, sizeof(d)), 1);
}

static void test_max_terms(void **state)
{
    char text[512] = "any";
    size_t n = 3;
    struct udpmux_rule *r;
    (void)state;
    for (int i = 1; i < 16; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, " and any");
    r = compile_ok(text);
    udpmux_rule_free(r);
    snprintf(text + n, sizeof(text) - n, " and any");
    /* the 17th term: "any" + 15 * " and any" is 123 characters, then
     * " and " puts it at offset 128, column 129 */
    compile_err(text, -E2BIG, 129, "too many terms");
}

/* Errors ----------------------------------------------------------------- */

static void test_errors_with_columns(void **state)
{
    (void)state;
    compile_err("", -EINVAL, 1, "expected a rule term");
    compile_err("   ", -EINVAL, 4, "expected a rule term");
    compile_err("frobnicate", -EINVAL, 1, "unknown rule word 'frobnicate'");
    compile_err("any and bogus", -EINVAL, 9, "unknown rule word 'bogus'");
    compile_err("any and", -EINVAL, 8, "expected a rule term");
    compile_err("any or any", -EINVAL, 5, "expected 'and'");
    compile_err("any any", -EINVAL, 5, "expected 'and'");
    compile_err("not", -EINVAL, 4, "not: expected a term");
    compile_err("prefix", -EINVAL, 7, "expected hex bytes");
    compile_err("prefix zz", -EINVAL, 8, "bad hex");
    compile_err("prefix 0x", -EINVAL, 8, "bad hex");
    compile_err("prefix abc", -EINVAL, 8, "bad hex");
    compile_err("prefix 16 mask", -EINVAL, 15, "mask");
    compile_err("prefix 1603 mask ff", -EINVAL, 18, "mask: expected 2 hex bytes");
    compile_err("bytes x 16", -EINVAL, 7, "expected an offset");
    compile_err("bytes 65536 16", -EINVAL, 7, "expected an offset");
    compile_err("bytes -1 16", -EINVAL, 7, "expected an offset");
    compile_err("bytes 2", -EINVAL, 8, "expected hex bytes");
    compile_err("len", -EINVAL, 4, "len: expected");
    compile_err("len 5..3", -EINVAL, 5, "len: expected");
    compile_err("len ..", -EINVAL, 5, "len: expected");
    compile_err("len 70000", -EINVAL, 5, "len: expected");
    compile_err("len 1..x", -EINVAL, 5, "len: expected");
    compile_err("len +3", -EINVAL, 5, "len: expected");
    compile_err("port 65536", -EINVAL, 6, "port: expected");
    compile_err("port 10..5", -EINVAL, 6, "port: expected");
    compile_err("port http", -EINVAL, 6, "port: expected");
    compile_err("port 0x", -EINVAL, 6, "port: expected");
    compile_err("port 0xg", -EINVAL, 6, "port: expected");
    compile_err("port \"\t53\"", -EINVAL, 6, "port: expected");
    compile_err("len 1..+2", -EINVAL, 5, "len: expected");
    compile_err("from 10.0.0.0/33", -EINVAL, 6, "from: expected");
    compile_err("from 10.0.0.0/", -EINVAL, 6, "from: expected");
    compile_err("from 10.0.0", -EINVAL, 6, "from: expected");
    compile_err("from ::/129", -EINVAL, 6, "from: expected");
    compile_err("from example.org", -EINVAL, 6, "from: expected");
    compile_err("from", -EINVAL, 5, "from: expected");
    compile_err("regex", -EINVAL, 6, "regex: expected a quoted pattern");
    compile_err("regex abc", -EINVAL, 7, "must be quoted");
    compile_err("regex \"abc", -EINVAL, 7, "unterminated");
    /* PCRE2's own error, with the column inside the pattern: the '(' at
     * offset 2 of the pattern, the pattern starting at column 8 */
    compile_err("regex \"ab(\"", -EINVAL, 11, "regex:");
    compile_err("any and prefix 16 trailing", -EINVAL, 19, "expected 'and'");
}

static void test_token_too_long(void **state)
{
    char text[1200];
    (void)state;
    memcpy(text, "prefix ", 7);
    memset(text + 7, 'a', 1000);
    text[1007] = '\0';
    compile_err(text, -EINVAL, 8, "token longer");
}

static void test_hex_limit(void **state)
{
    char text[256];
    struct udpmux_rule *r;
    uint8_t d[65];
    (void)state;
    memcpy(text, "prefix ", 7);
    memset(text + 7, 'a', 128); /* 64 bytes: the maximum */
    text[135] = '\0';
    r = compile_ok(text);
    memset(d, 0xaa, sizeof(d));
    {
        struct udpmux_match_input in = {d, 64, NULL, 0};
        assert_int_equal(udpmux_rule_match(r, &in), 1);
        in.len = 63;
        assert_int_equal(udpmux_rule_match(r, &in), 0);
    }
    udpmux_rule_free(r);
    text[135] = 'a';
    text[136] = 'a';
    text[137] = '\0';
    compile_err(text, -EINVAL, 8, "bad hex");
}

static void test_null_args(void **state)
{
    struct udpmux_rule *r = NULL;
    struct udpmux_match_input in = {(const uint8_t *)"x", 1, NULL, 0};
    char err[8];
    (void)state;
    assert_int_equal(udpmux_rule_compile(NULL, "any", NULL, 0), -EINVAL);
    assert_int_equal(udpmux_rule_compile(&r, NULL, NULL, 0), -EINVAL);
    /* no error buffer is fine */
    assert_int_equal(udpmux_rule_compile(&r, "bogus", NULL, 0), -EINVAL);
    assert_null(r);
    /* a tiny error buffer is truncated, still terminated */
    memset(err, 'z', sizeof(err));
    assert_int_equal(udpmux_rule_compile(&r, "bogus", err, sizeof(err)), -EINVAL);
    assert_true(memchr(err, '\0', sizeof(err)) != NULL);
    /* success clears the error buffer */
    memset(err, 'z', sizeof(err));
    assert_int_equal(udpmux_rule_compile(&r, "any", err, sizeof(err)), 0);
    assert_string_equal(err, "");
    assert_int_equal(udpmux_rule_match(NULL, &in), 0);
    assert_int_equal(udpmux_rule_match(r, NULL), 0);
    in.data = NULL;
    assert_int_equal(udpmux_rule_match(r, &in), 0); /* len 1 with NULL data */
    assert_string_equal(umx_rule_text(r), "any");
    udpmux_rule_free(r);
    udpmux_rule_free(NULL);
}

/* Pre-filter ------------------------------------------------------------- */

static int first_count(const struct udpmux_rule *r)
{
    const uint8_t *f = umx_rule_first(r);
    int n = 0;
    for (int b = 0; b < 256; b++)
        n += umx_first_has(f, (uint8_t)b);
    return n;
}

static void test_first_byte_prefilter(void **state)
{
    struct udpmux_rule *r;
    const uint8_t x16 = 0x16, x17 = 0x17;
    (void)state;

    r = compile_ok("prefix 16");
    assert_int_equal(first_count(r), 1);
    assert_true(umx_first_has(umx_rule_first(r), 0x16));
    assert_true(umx_rule_may_match(r, &x16, 1));
    assert_false(umx_rule_may_match(r, &x17, 1));
    assert_false(umx_rule_match_empty(r));
    assert_false(umx_rule_may_match(r, NULL, 0));
    udpmux_rule_free(r);

    r = compile_ok("bytes 0 10 mask f0");
    assert_int_equal(first_count(r), 16);
    for (int b = 0x10; b <= 0x1f; b++)
        assert_true(umx_first_has(umx_rule_first(r), (uint8_t)b));
    assert_false(umx_first_has(umx_rule_first(r), 0x20));
    udpmux_rule_free(r);

    /* a term at another offset says nothing about the first byte */
    r = compile_ok("bytes 1 16");
    assert_int_equal(first_count(r), 256);
    udpmux_rule_free(r);

    /* and-chains intersect */
    r = compile_ok("bytes 0 10 mask f0 and prefix 1703");
    assert_int_equal(first_count(r), 1);
    assert_true(umx_first_has(umx_rule_first(r), 0x17));
    udpmux_rule_free(r);
    r = compile_ok("prefix 16 and prefix 17");
    assert_int_equal(first_count(r), 0);
    udpmux_rule_free(r);

    /* negated terms do not narrow it */
    r = compile_ok("not prefix 16");
    assert_int_equal(first_count(r), 256);
    assert_true(umx_rule_match_empty(r));
    udpmux_rule_free(r);

    /* empty-datagram flag */
    r = compile_ok("len 0..10");
    assert_true(umx_rule_match_empty(r));
    udpmux_rule_free(r);
    r = compile_ok("len 1..10");
    assert_false(umx_rule_match_empty(r));
    udpmux_rule_free(r);
    r = compile_ok("any and prefix 00");
    assert_false(umx_rule_match_empty(r));
    udpmux_rule_free(r);
    r = compile_ok("regex \"^\"");
    assert_true(umx_rule_match_empty(r));
    assert_int_equal(first_count(r), 256);
    udpmux_rule_free(r);
}

/* The pre-filter must never reject what the full evaluation accepts. */
static void test_prefilter_consistent(void **state)
{
    static const char *rules[] = {
        "prefix 16",
        "bytes 0 40 mask f0",
        "not prefix 16",
        "len 0",
        "regex \"^\\x00\"",
        "prefix 00 and len 1..3",
        "any",
        "bytes 1 00",
        "not len 0..2",
        "bytes 0 80 mask 80 and bytes 1 00 mask 01",
    };
    (void)state;
    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        struct udpmux_rule *r = compile_ok(rules[i]);
        for (int b = 0; b < 256; b++) {
            for (size_t len = 0; len <= 3; len++) {
                uint8_t d[3] = {(uint8_t)b, 0, 0};
                struct umx_probe_in in = {d, len, NULL, 0, NULL};
                int full = umx_rule_eval(r, &in) == UMX_MATCH;
                struct udpmux_match_input pin = {d, len, NULL, 0};
                assert_int_equal(full, udpmux_rule_match(r, &pin));
                if (full)
                    assert_true(umx_rule_may_match(r, d, len));
            }
        }
        udpmux_rule_free(r);
    }
}

/* Probes: whatever probes are built in, each compiles as a bare term and
 * the registry is consistent. The probes' own tests check their parsing. */
static void test_probes_registry(void **state)
{
    size_t n = udpmux_probe_count();
    (void)state;
    assert_null(udpmux_probe_name(n));
    assert_null(udpmux_probe_name((size_t)-1));
    for (size_t i = 0; i < n; i++) {
        const char *name = udpmux_probe_name(i);
        char text[128];
        struct udpmux_rule *r;
        assert_non_null(name);
        r = compile_ok(name);
        udpmux_rule_free(r);
        snprintf(text, sizeof(text), "not %s and any", name);
        r = compile_ok(text);
        udpmux_rule_free(r);
    }
    assert_int_equal(udpmux_probe_classify(NULL, 3), -EINVAL);
    {
        int c = udpmux_probe_classify(NULL, 0);
        assert_true(c == -ENOENT || (c >= 0 && (size_t)c < n));
    }
}

/* util/hex.c: the one hex parser of rules and key files. */
static void test_hex_decode(void **state)
{
    uint8_t out[8];
    (void)state;
    assert_int_equal(umx_hex_decode("0x16fe", 6, ":- ", UMX_HEX_0X, out, sizeof(out)), 2);
    assert_int_equal(out[0], 0x16);
    assert_int_equal(out[1], 0xfe);
    assert_int_equal(umx_hex_decode("0A:0b-0C 0d", 11, ":- ", 0, out, sizeof(out)), 4);
    assert_int_equal(out[3], 0x0d);
    /* no prefix unless asked; separators only between bytes */
    assert_int_equal(umx_hex_decode("0x16", 4, NULL, 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(umx_hex_decode("1:6", 3, ":", 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(umx_hex_decode("abc", 3, NULL, 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(umx_hex_decode("zz", 2, NULL, 0, out, sizeof(out)), -EINVAL);
    /* len bounds the text: the odd digit past it is not read */
    assert_int_equal(umx_hex_decode("abcd", 3, NULL, 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(umx_hex_decode("abcd", 2, NULL, 0, out, sizeof(out)), 1);
    assert_int_equal(umx_hex_decode("", 0, NULL, 0, out, sizeof(out)), 0);
    assert_int_equal(umx_hex_decode("0x", 2, NULL, UMX_HEX_0X, out, sizeof(out)), 0);
    assert_int_equal(umx_hex_decode("000102030405060708", 18, NULL, 0, out, sizeof(out)), -E2BIG);
    assert_int_equal(umx_hex_decode("0001020304050607", 16, NULL, 0, out, sizeof(out)), 8);
    assert_int_equal(umx_hex_decode(NULL, 0, NULL, 0, out, sizeof(out)), -EINVAL);
    assert_int_equal(umx_hex_digit('f'), 15);
    assert_int_equal(umx_hex_digit('G'), -1);
    assert_int_equal(umx_hex_digit(-1), -1);
}

/* Which roaming protocol a route's rule can carry: only probe terms say,
 * `and` intersects, `not` and the generic terms say nothing. */
static unsigned roam_of(const char *text)
{
    struct udpmux_rule *r = compile_ok(text);
    unsigned p = umx_rule_roam_protos(r);
    udpmux_rule_free(r);
    return p;
}

static void test_roam_protos(void **state)
{
    (void)state;
    assert_int_equal(roam_of("quic"), UMX_ROAM_P_QUIC);
    assert_int_equal(roam_of("quic sni=*.example.org"), UMX_ROAM_P_QUIC);
    assert_int_equal(roam_of("quic and from 10.0.0.0/8"), UMX_ROAM_P_QUIC);
    assert_int_equal(roam_of("len 1200.. and quic alpn=h3"), UMX_ROAM_P_QUIC);
    assert_int_equal(roam_of("wireguard"), UMX_ROAM_P_WG);
    assert_int_equal(roam_of("wireguard types=1,2"), UMX_ROAM_P_WG);
    assert_int_equal(roam_of("openvpn"), UMX_ROAM_P_OPENVPN);
    assert_int_equal(roam_of("quic and wireguard"), 0);
    assert_int_equal(roam_of("any"), 0);
    assert_int_equal(roam_of("prefix c0"), 0);
    assert_int_equal(roam_of("bytes 1 00000001"), 0);
    assert_int_equal(roam_of("regex \"^\\x80\""), 0);
    assert_int_equal(roam_of("dns"), 0);
    assert_int_equal(roam_of("rtp"), 0);
    assert_int_equal(roam_of("not quic"), 0);
    assert_int_equal(roam_of("not dns and quic"), UMX_ROAM_P_QUIC);
    assert_int_equal(umx_rule_roam_protos(NULL), 0);
    for (size_t i = 0; i < udpmux_probe_count(); i++) {
        const char *name = udpmux_probe_name(i);
        unsigned want = strcmp(name, "quic") == 0        ? UMX_ROAM_P_QUIC
                        : strcmp(name, "wireguard") == 0 ? UMX_ROAM_P_WG
                        : strcmp(name, "openvpn") == 0   ? UMX_ROAM_P_OPENVPN
                                                         : 0;
        assert_int_equal(roam_of(name), want);
    }
}

/* Thread-safety contract: one compiled rule, matched concurrently. */
#include <pthread.h>
static void *match_thread(void *arg)
{
    const struct udpmux_rule *r = arg;
    static const uint8_t d[] = {0x00, 0x01, 'z'};
    struct udpmux_match_input in = {d, sizeof(d), NULL, 0};
    long bad = 0;
    for (int i = 0; i < 2000; i++)
        bad += udpmux_rule_match(r, &in) != 1;
    return (void *)bad;
}

static void test_concurrent_match(void **state)
{
    pthread_t th[4];
    struct udpmux_rule *r = compile_ok("prefix 00 and regex \"\\x01z$\"");
    (void)state;
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, match_thread, r), 0);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(th[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    udpmux_rule_free(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any),
        cmocka_unit_test(test_prefix_and_bytes),
        cmocka_unit_test(test_masks),
        cmocka_unit_test(test_len),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_from_v4),
        cmocka_unit_test(test_from_v6_and_mapped),
        cmocka_unit_test(test_regex_binary),
        cmocka_unit_test(test_regex_match_limit),
        cmocka_unit_test(test_negation_and_and),
        cmocka_unit_test(test_max_terms),
        cmocka_unit_test(test_errors_with_columns),
        cmocka_unit_test(test_token_too_long),
        cmocka_unit_test(test_hex_limit),
        cmocka_unit_test(test_null_args),
        cmocka_unit_test(test_first_byte_prefilter),
        cmocka_unit_test(test_prefilter_consistent),
        cmocka_unit_test(test_probes_registry),
        cmocka_unit_test(test_roam_protos),
        cmocka_unit_test(test_hex_decode),
        cmocka_unit_test(test_concurrent_match),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
