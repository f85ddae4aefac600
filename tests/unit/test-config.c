/*
 * test-config.c - udpmuxd's configuration loader (daemon/conf/): every
 * file in tests/data/config/good must load and survive a print -> load round
 * trip; every file in tests/data/config/bad must fail with the message named
 * on its first line ("# expect: FILE:LINE: substring"). Plus defaults,
 * durations and sizes, multi-line values, quick mode, and the bundled
 * conf/ files.
 *
 * UMX_TESTDATA points at tests/data (meson sets it); without it the test
 * looks for tests/data relative to the working directory.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "internal.h"

#define S (UINT64_C(1000000000))
#define MS (UINT64_C(1000000))

/* Helpers ---------------------------------------------------------------- */

static const char *testdata(void)
{
    const char *d = getenv("UMX_TESTDATA");
    return d && *d ? d : "tests/data";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted list of *.conf in dir; returns the count (fails the test if the
 * directory is missing or empty: an empty glob must not pass). */
static size_t list_conf(const char *dir, char ***out)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0;

    if (!d)
        fail_msg("cannot open %s: %s", dir, strerror(errno));
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".conf"))
            continue;
        names = realloc(names, (n + 1) * sizeof(*names));
        assert_non_null(names);
        names[n] = strdup(e->d_name);
        assert_non_null(names[n]);
        n++;
    }
    closedir(d);
    if (!n)
        fail_msg("no *.conf in %s", dir);
    qsort(names, n, sizeof(*names), cmp_str);
    *out = names;
    return n;
}

static void free_list(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static struct umxd_config *load_ok(const char *text)
{
    struct umxd_config *cfg = NULL;
    char err[1024] = "";
    int rc = umxd_config_load_string(text, "t.conf", &cfg, err, sizeof(err));
    if (rc != 0)
        fail_msg("load failed (%d): %s\n--- text ---\n%s", rc, err, text);
    assert_non_null(cfg);
    return cfg;
}

static void load_bad(const char *text, const char *expect)
{
    struct umxd_config *cfg = (struct umxd_config *)(uintptr_t)1;
    char err[1024] = "";
    int rc = umxd_config_load_string(text, "t.conf", &cfg, err, sizeof(err));
    assert_null(cfg);
    if (rc != -EINVAL)
        fail_msg("expected -EINVAL, got %d (%s)\n--- text ---\n%s", rc, err, text);
    if (!strstr(err, expect))
        fail_msg("message '%s' does not contain '%s'", err, expect);
}

/* The same as a config, field by field (rule pointers, lines and paths
 * aside): what the round trip must preserve. */
static void assert_same_config(const struct umxd_config *a, const struct umxd_config *b)
{
    assert_int_equal(a->nlisten, b->nlisten);
    for (unsigned i = 0; i < a->nlisten; i++) {
        assert_int_equal(a->listen_len[i], b->listen_len[i]);
        assert_memory_equal(&a->listen[i], &b->listen[i], a->listen_len[i]);
        assert_string_equal(a->listen_text[i], b->listen_text[i]);
    }
    assert_int_equal(a->dual_stack, b->dual_stack);
    assert_string_equal(a->user, b->user);
    assert_string_equal(a->group, b->group);
    assert_int_equal(a->workers, b->workers);
    assert_string_equal(a->control, b->control);
    assert_string_equal(a->attach, b->attach);
    assert_string_equal(a->metrics, b->metrics);
    assert_int_equal(a->max_flows, b->max_flows);
    assert_int_equal(a->rcvbuf, b->rcvbuf);
    assert_int_equal(a->sndbuf, b->sndbuf);
    assert_int_equal(a->batch, b->batch);
    assert_int_equal(a->gso, b->gso);
    assert_int_equal(a->busy_poll_us, b->busy_poll_us);
    assert_int_equal(a->rate_new_flows, b->rate_new_flows);
    assert_int_equal(a->rate_burst, b->rate_burst);
    assert_int_equal(a->rate_responses, b->rate_responses);
    assert_int_equal(a->seccomp, b->seccomp);
    assert_int_equal(a->log_level, b->log_level);
    assert_int_equal(a->nroutes, b->nroutes);
    for (unsigned i = 0; i < a->nroutes; i++) {
        const struct umxd_route *x = &a->routes[i], *y = &b->routes[i];
        assert_string_equal(x->name, y->name);
        assert_string_equal(x->match, y->match);
        assert_non_null(x->rule);
        assert_non_null(y->rule);
        assert_int_equal(x->action, y->action);
        assert_int_equal(x->kernel, y->kernel);
        assert_int_equal(x->nbackends, y->nbackends);
        for (unsigned k = 0; k < x->nbackends; k++) {
            assert_int_equal(x->backends[k].addrlen, y->backends[k].addrlen);
            assert_memory_equal(&x->backends[k].addr, &y->backends[k].addr, x->backends[k].addrlen);
            assert_string_equal(x->backends[k].text, y->backends[k].text);
            assert_int_equal(x->backends[k].sid_len, y->backends[k].sid_len);
            assert_memory_equal(x->backends[k].sid, y->backends[k].sid, x->backends[k].sid_len);
        }
        assert_memory_equal(&x->qlb, &y->qlb, sizeof(x->qlb));
        assert_true(x->idle_timeout_ns == y->idle_timeout_ns);
        assert_true(x->unanswered_timeout_ns == y->unanswered_timeout_ns);
        assert_int_equal(x->classify_every, y->classify_every);
        assert_int_equal(x->connected, y->connected);
        assert_int_equal(x->shared, y->shared);
        assert_int_equal(x->proxy_v2, y->proxy_v2);
        assert_int_equal(x->transparent, y->transparent);
        assert_int_equal(x->roaming, y->roaming);
        assert_int_equal(x->max_flows, y->max_flows);
        assert_int_equal(x->health, y->health);
        assert_int_equal(x->health_send_len, y->health_send_len);
        assert_memory_equal(x->health_send, y->health_send, x->health_send_len);
        assert_int_equal(x->health_expect_len, y->health_expect_len);
        assert_memory_equal(x->health_expect, y->health_expect, x->health_expect_len);
        assert_true(x->health_interval_ns == y->health_interval_ns);
        assert_true(x->health_timeout_ns == y->health_timeout_ns);
        assert_int_equal(x->health_fall, y->health_fall);
        assert_int_equal(x->health_rise, y->health_rise);
        assert_true(x->down_time_ns == y->down_time_ns);
        assert_int_equal(x->nallow_uid, y->nallow_uid);
        assert_memory_equal(x->allow_uid, y->allow_uid, x->nallow_uid * sizeof(uint32_t));
        assert_int_equal(x->nallow_gid, y->nallow_gid);
        assert_memory_equal(x->allow_gid, y->allow_gid, x->nallow_gid * sizeof(uint32_t));
        assert_int_equal(x->share, y->share);
    }
}

/* Prints cfg, loads the printout, and checks both are the same config;
 * then prints again and checks the printout is stable. */
static void round_trip(const struct umxd_config *cfg)
{
    char *text = NULL, *text2 = NULL;
    size_t len = 0, len2 = 0;
    FILE *f = open_memstream(&text, &len);
    struct umxd_config *again;
    char err[1024] = "";
    int rc;

    assert_non_null(f);
    umxd_config_print(cfg, f);
    fclose(f);
    rc = umxd_config_load_string(text, "printed.conf", &again, err, sizeof(err));
    if (rc != 0)
        fail_msg("printout does not load (%d): %s\n--- printout ---\n%s", rc, err, text);
    assert_same_config(cfg, again);
    f = open_memstream(&text2, &len2);
    assert_non_null(f);
    umxd_config_print(again, f);
    fclose(f);
    /* the first line names the source path, which differs */
    assert_string_equal(strchr(text, '\n'), strchr(text2, '\n'));
    umxd_config_free(again);
    free(text);
    free(text2);
}

static bool have_probes(void)
{
    return udpmux_probe_count() > 0;
}

/* Candidate lists (umxd_config_index, used by the workers' classify()):
 * for every first byte, a few lengths and the empty datagram, the same
 * route as trying every route in order, including negated terms, which
 * leave a rule's first-byte bitmap open. Returns how many datagrams went to
 * some route. */
static int route_loop(const struct umxd_config *cfg, const struct umx_probe_in *in)
{
    for (unsigned r = 0; r < cfg->nroutes; r++) {
        int v;
        if (!umx_rule_may_match(cfg->routes[r].rule, in->data, in->len))
            continue;
        v = umx_rule_eval(cfg->routes[r].rule, in);
        if (v == UMX_MATCH)
            return (int)r;
        if (v == UMX_MORE)
            return -2;
    }
    return -1;
}

static int check_index(const struct umxd_config *cfg)
{
    static const size_t lens[] = {0, 1, 2, 8, 20, 24, 48, 64, 148, 1200};
    static struct umx_rule_index idx;
    static uint8_t buf[1200];
    struct sockaddr_in sin;
    uint32_t x = 2463534242u;
    int matched = 0;

    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(5000);
    sin.sin_addr.s_addr = htonl(0x7f000001);
    assert_int_equal(umxd_config_index(cfg, &idx), 0);
    assert_int_equal(idx.nrules, cfg->nroutes);
    for (unsigned b = 0; b < 256; b++)
        for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
            struct umx_probe_in in = {buf, lens[k], (const struct sockaddr *)&sin, 0, NULL};
            int want, got, more;
            if (lens[k] == 0 && b > 0)
                continue;
            for (size_t i = 0; i < lens[k]; i++) {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                buf[i] = (uint8_t)x;
            }
            if (lens[k])
                buf[0] = (uint8_t)b;
            /* text and STUN-shaped variants reach the regex and prefix routes */
            if (k == 4 && b == 'p')
                memcpy(buf, "ping hello, world!!!", 20);
            if (k == 4 && b == 0)
                memcpy(buf, "\x00\x01\x00\x00\x21\x12\xa4\x42", 8);
            want = route_loop(cfg, &in);
            got = umx_rule_index_eval(&idx, &in, &more);
            if (more)
                got = -2;
            if (want != got)
                fail_msg("%s: %zu bytes, first byte %u: loop %d, candidate lists %d", cfg->path,
                         lens[k], b, want, got);
            matched += want >= 0;
        }
    return matched;
}

/* Data-driven files ------------------------------------------------------ */

static void test_good_files(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    char **names;
    size_t n;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/config/good", testdata());
    n = list_conf(dir, &names);
    for (size_t i = 0; i < n; i++) {
        struct umxd_config *cfg = NULL;
        char err[1024] = "";
        int rc;
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        rc = umxd_config_load(path, &cfg, err, sizeof(err));
        if (rc != 0)
            fail_msg("%s: expected success, got %d: %s", names[i], rc, err);
        assert_string_equal(cfg->path, path);
        round_trip(cfg);
        check_index(cfg);
        umxd_config_free(cfg);
    }
    free_list(names, n);
}

static void test_bad_files(void **state)
{
    char dir[PATH_MAX], path[PATH_MAX * 2];
    char **names;
    size_t n;

    (void)state;
    snprintf(dir, sizeof(dir), "%s/config/bad", testdata());
    n = list_conf(dir, &names);
    for (size_t i = 0; i < n; i++) {
        struct umxd_config *cfg = NULL;
        char err[1024] = "", first[1024], loc[PATH_MAX * 2 + 16];
        const char *sub, *colon;
        FILE *f;
        int rc, line;

        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        f = fopen(path, "r");
        assert_non_null(f);
        if (!fgets(first, sizeof(first), f))
            fail_msg("%s: empty", names[i]);
        fclose(f);
        first[strcspn(first, "\n")] = '\0';
        /* "# expect: NAME:LINE: substring" */
        if (strncmp(first, "# expect: ", 10))
            fail_msg("%s: first line must be '# expect: FILE:LINE: message'", names[i]);
        colon = strchr(first + 10, ':');
        if (!colon || sscanf(colon + 1, "%d", &line) != 1)
            fail_msg("%s: bad expect line '%s'", names[i], first);
        if ((size_t)(colon - (first + 10)) != strlen(names[i]) ||
            strncmp(first + 10, names[i], strlen(names[i])))
            fail_msg("%s: expect line names another file: '%s'", names[i], first);
        sub = strchr(colon + 1, ':');
        assert_non_null(sub);
        sub += 2;

        rc = umxd_config_load(path, &cfg, err, sizeof(err));
        if (rc == 0)
            fail_msg("%s: loaded but should fail with '%s'", names[i], sub);
        assert_null(cfg);
        assert_int_equal(rc, -EINVAL);
        snprintf(loc, sizeof(loc), "%s:%d: ", path, line);
        if (strncmp(err, loc, strlen(loc)))
            fail_msg("%s: message '%s' does not start with '%s'", names[i], err, loc);
        if (!strstr(err, sub))
            fail_msg("%s: message '%s' does not contain '%s'", names[i], err, sub);
    }
    free_list(names, n);
}

/* The bundled configs: conf/udpmux.conf (make run) and the full example. */
static void test_bundled_confs(void **state)
{
    static const char *const files[] = {"udpmux.conf", "example-full.conf"};
    char path[PATH_MAX * 2];

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct umxd_config *cfg = NULL;
        char err[1024] = "";
        int rc;
        snprintf(path, sizeof(path), "%s/../../conf/%s", testdata(), files[i]);
        rc = umxd_config_load(path, &cfg, err, sizeof(err));
        if (rc != 0 && !have_probes() && strstr(err, "unknown rule word")) {
            print_message("# skipping %s: library built without probes (%s)\n", files[i], err);
            continue;
        }
        if (rc != 0)
            fail_msg("%s: %d: %s", files[i], rc, err);
        round_trip(cfg);
        assert_true(check_index(cfg) > 0);
        umxd_config_free(cfg);
    }
    /* make run's contract: loopback 7000, routes stun, echo, rest; no root */
    {
        struct umxd_config *cfg = NULL;
        char err[1024] = "";
        snprintf(path, sizeof(path), "%s/../../conf/udpmux.conf", testdata());
        if (umxd_config_load(path, &cfg, err, sizeof(err)) != 0)
            return; /* reported (or skipped) above */
        assert_int_equal(cfg->nlisten, 2);
        assert_string_equal(cfg->listen_text[0], "127.0.0.1:7000");
        assert_string_equal(cfg->listen_text[1], "[::1]:7000");
        assert_int_equal(umxd_config_route(cfg, "stun"), 0);
        assert_int_equal(cfg->routes[0].action, UMXD_STUN);
        assert_int_equal(umxd_config_route(cfg, "echo"), 1);
        assert_int_equal(cfg->routes[1].action, UMXD_ECHO);
        assert_int_equal(umxd_config_route(cfg, "rest"), 2);
        assert_int_equal(cfg->routes[2].action, UMXD_DROP);
        assert_string_equal(cfg->user, "");
        assert_string_equal(cfg->control, "/tmp/udpmux-control.sock");
        {
            static const uint8_t ping[] = "ping hello";
            struct udpmux_match_input in = {ping, sizeof(ping) - 1, NULL, 0};
            assert_int_equal(udpmux_rule_match(cfg->routes[1].rule, &in), 1);
        }
        umxd_config_free(cfg);
    }
}

/* Defaults --------------------------------------------------------------- */

static void test_defaults(void **state)
{
    struct umxd_config d, *cfg;
    const struct umxd_route *r;

    (void)state;
    umxd_config_defaults(&d);
    assert_int_equal(d.nlisten, 0);
    assert_int_equal(d.nroutes, 0);
    assert_string_equal(d.user, "");
    assert_string_equal(d.group, "");
    assert_int_equal(d.workers, 0);
    assert_string_equal(d.control, "/run/udpmux/control.sock");
    assert_string_equal(d.attach, "/run/udpmux/attach.sock");
    assert_string_equal(d.metrics, "");
    assert_int_equal(d.max_flows, 131072);
    assert_int_equal(d.rcvbuf, 4 << 20);
    assert_int_equal(d.sndbuf, 4 << 20);
    assert_int_equal(d.batch, 64);
    assert_int_equal(d.gso, 1);
    assert_int_equal(d.busy_poll_us, 0);
    assert_int_equal(d.rate_new_flows, 1000);
    assert_int_equal(d.rate_burst, 2000);
    assert_int_equal(d.rate_responses, 100);
    assert_int_equal(d.seccomp, 1);
    assert_int_equal(d.log_level, LOG_INFO);
    assert_int_equal(d.dual_stack, 0);

    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n"
                  "[route a]\nmatch = any\nforward = 127.0.0.1:9000\n");
    assert_string_equal(cfg->path, "t.conf");
    assert_int_equal(cfg->max_flows, 131072);
    assert_int_equal(cfg->batch, 64);
    r = &cfg->routes[0];
    assert_string_equal(r->name, "a");
    assert_string_equal(r->match, "any");
    assert_non_null(r->rule);
    assert_int_equal(r->action, UMXD_FORWARD);
    assert_int_equal(r->nbackends, 1);
    assert_string_equal(r->backends[0].text, "127.0.0.1:9000");
    assert_int_equal(r->backends[0].addr.ss_family, AF_INET);
    assert_int_equal(r->backends[0].addrlen, sizeof(struct sockaddr_in));
    assert_true(r->idle_timeout_ns == 120 * S);
    assert_true(r->unanswered_timeout_ns == 30 * S);
    assert_int_equal(r->classify_every, 0);
    assert_int_equal(r->connected, 1);
    assert_int_equal(r->proxy_v2, 0);
    assert_int_equal(r->transparent, 0);
    assert_int_equal(r->roaming, 1);
    assert_int_equal(r->max_flows, 0);
    assert_int_equal(r->health, UMXD_HEALTH_NONE);
    assert_true(r->health_interval_ns == 5 * S);
    assert_true(r->health_timeout_ns == 1 * S);
    assert_int_equal(r->health_fall, 3);
    assert_int_equal(r->health_rise, 2);
    assert_true(r->down_time_ns == 10 * S);
    assert_int_equal(r->share, UMXD_SHARE_EXCLUSIVE);
    assert_int_equal(r->line, 3);
    umxd_config_free(cfg);

    /* action = stun answers the 20-byte binding requests of common clients
     * (turnutils_stunclient, browsers) out of the box: the smallest correct
     * answer, under response-rate; -T says so */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n"
                  "[route s]\nmatch = stun\naction = stun\n");
    assert_int_equal(cfg->routes[0].stun_minimal, 1);
    {
        char *text = NULL;
        size_t tlen = 0;
        FILE *f = open_memstream(&text, &tlen);
        assert_non_null(f);
        umxd_config_print(cfg, f);
        fclose(f);
        assert_non_null(strstr(text, "reply-size = minimal"));
        free(text);
    }
    umxd_config_free(cfg);
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n"
                  "[route s]\nmatch = stun\naction = stun\nreply-size = request\n");
    assert_int_equal(cfg->routes[0].stun_minimal, 0);
    umxd_config_free(cfg);
}

/* Value syntax ----------------------------------------------------------- */

static struct umxd_config *with_route_key(const char *key, const char *value)
{
    char text[2048];
    snprintf(text, sizeof(text),
             "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "forward = 127.0.0.1:9000\n%s = %s\n",
             key, value);
    return load_ok(text);
}

static void test_durations(void **state)
{
    static const struct {
        const char *text;
        uint64_t ns;
    } ok[] = {
        {"180s", 180 * S}, {"5m", 300 * S},   {"1h", 3600 * S}, {"250ms", 250 * MS},
        {"7", 7 * S},      {"1d", 86400 * S}, {"1ms", 1 * MS},  {"365d", 365 * 86400 * S},
        {"90", 90 * S},    {"0090s", 90 * S},
    };
    static const char *const bad[] = {
        "",   "s",     "5 s",  "5sec", "-1s", "1.5s", "0",   "0ms",
        "5S", "1h30m", "366d", "5 m",  "ms",  "0x10", "+5s", "99999999999999999999"};
    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct umxd_config *cfg = with_route_key("idle-timeout", ok[i].text);
        if (cfg->routes[0].idle_timeout_ns != ok[i].ns)
            fail_msg("'%s' gave %llu ns", ok[i].text,
                     (unsigned long long)cfg->routes[0].idle_timeout_ns);
        round_trip(cfg);
        umxd_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[512];
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                 "forward = 127.0.0.1:9000\ndown-time = %s\n",
                 bad[i]);
        load_bad(text, "t.conf:6: [route a] down-time: ");
    }
}

static void test_sizes_bools_numbers(void **state)
{
    static const struct {
        const char *text;
        int v;
    } sizes[] = {{"4M", 4 << 20}, {"512K", 512 << 10}, {"512k", 512 << 10},  {"1000", 1000},
                 {"0", 0},        {"1G", 1 << 30},     {"2047M", 2047 << 20}};
    static const char *const bad_sizes[] = {"4MB", "2G", "-1", "4 M", "M", "1.5M", "4T"};
    static const char *const yes[] = {"yes", "true", "on", "1", "YES", "On"};
    static const char *const no[] = {"no", "false", "off", "0", "No", "FALSE"};
    char text[512];
    struct umxd_config *cfg;

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nrcvbuf = %s\nsndbuf = %s\n"
                 "[route a]\nmatch = any\naction = drop\n",
                 sizes[i].text, sizes[i].text);
        cfg = load_ok(text);
        assert_int_equal(cfg->rcvbuf, sizes[i].v);
        assert_int_equal(cfg->sndbuf, sizes[i].v);
        round_trip(cfg);
        umxd_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad_sizes) / sizeof(bad_sizes[0]); i++) {
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nrcvbuf = %s\n"
                 "[route a]\nmatch = any\naction = drop\n",
                 bad_sizes[i]);
        load_bad(text, "t.conf:4: [udpmux] rcvbuf: expected a size");
    }
    for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
        cfg = with_route_key("transparent", yes[i]);
        assert_int_equal(cfg->routes[0].transparent, 1);
        umxd_config_free(cfg);
        cfg = with_route_key("roaming", no[i]);
        assert_int_equal(cfg->routes[0].roaming, 0);
        umxd_config_free(cfg);
    }
    cfg = with_route_key("max-flows", "4294967295");
    assert_true(cfg->routes[0].max_flows == UINT32_MAX);
    umxd_config_free(cfg);
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "forward = 127.0.0.1:9000\nmax-flows = 4294967296\n",
             "t.conf:6: [route a] max-flows: expected a number");

    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nworkers = 8\nbatch = 1\n"
                  "log-level = warning\nmetrics = 127.0.0.1:9433\nnew-flow-rate = 0\n"
                  "[route a]\nmatch = any\naction = drop\n");
    assert_int_equal(cfg->workers, 8);
    assert_int_equal(cfg->batch, 1);
    assert_int_equal(cfg->log_level, LOG_WARNING);
    assert_string_equal(cfg->metrics, "127.0.0.1:9433");
    assert_int_equal(cfg->rate_new_flows, 0);
    round_trip(cfg);
    umxd_config_free(cfg);
}

/* busy-poll = US: 0 (off) to UMXD_BUSY_POLL_MAX_US; anything else is an
 * error at the key's line, never a silent clamp. */
static void test_busy_poll(void **state)
{
    static const struct {
        const char *text;
        unsigned v;
    } good[] = {{"0", 0}, {"1", 1}, {"50", 50}, {"1000", 1000}, {"0050", 50}};
    static const char *const bad[] = {"1001", "4294967296", "-1",   "50us", "abc",
                                      "1e3",  "5 0",        "0x10", ""};
    char text[512];
    struct umxd_config *cfg;

    (void)state;
    assert_int_equal(UMXD_BUSY_POLL_MAX_US, 1000);
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nbusy-poll = %s\n"
                 "[route a]\nmatch = any\naction = drop\n",
                 good[i].text);
        cfg = load_ok(text);
        assert_int_equal(cfg->busy_poll_us, good[i].v);
        round_trip(cfg);
        umxd_config_free(cfg);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nworkers = 1\nbusy-poll = %s\n"
                 "[route a]\nmatch = any\naction = drop\n",
                 bad[i]);
        load_bad(text, "t.conf:5: [udpmux] busy-poll: expected microseconds 0..1000 (0 = off)");
    }
    /* in a route it means nothing: unknown key there */
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\naction = drop\n"
             "busy-poll = 50\n",
             "t.conf:6: [route a] busy-poll");
    /* repeated: an error like every other single-valued key */
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[udpmux]\nbusy-poll = 50\nbusy-poll = 60\n"
             "[route a]\nmatch = any\naction = drop\n",
             "t.conf:5: [udpmux] busy-poll");
}

static void test_health_and_hex(void **state)
{
    struct umxd_config *cfg;
    static const uint8_t send[] = {0xde, 0xad, 0xbe, 0xef, 0x00};

    (void)state;
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                  "forward = 127.0.0.1:9000\nhealth = payload\nhealth-send = 0xDEAD:be ef00\n"
                  "health-expect = 01\nhealth-interval = 2s\nhealth-timeout = 2s\n");
    assert_int_equal(cfg->routes[0].health, UMXD_HEALTH_PAYLOAD);
    assert_int_equal(cfg->routes[0].health_send_len, sizeof(send));
    assert_memory_equal(cfg->routes[0].health_send, send, sizeof(send));
    assert_int_equal(cfg->routes[0].health_expect_len, 1);
    assert_int_equal(cfg->routes[0].health_expect[0], 1);
    round_trip(cfg);
    umxd_config_free(cfg);

    /* 64 bytes of expect fit, 65 do not */
    {
        char hex[200], text[1024];
        memset(hex, 'a', 128);
        hex[128] = '\0';
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                 "forward = 127.0.0.1:9000\nhealth = payload\nhealth-send = 00\n"
                 "health-expect = %s\n",
                 hex);
        cfg = load_ok(text);
        assert_int_equal(cfg->routes[0].health_expect_len, 64);
        umxd_config_free(cfg);
        memcpy(hex + 128, "bb", 3);
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                 "forward = 127.0.0.1:9000\nhealth = payload\nhealth-send = 00\n"
                 "health-expect = %s\n",
                 hex);
        load_bad(text, "t.conf:8: [route a] health-expect: too long (max 64 bytes)");
    }
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "forward = 127.0.0.1:9000\nhealth = payload\nhealth-send = 0x\n",
             "health-send: expected hex bytes");
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "forward = 127.0.0.1:9000\nhealth = payload\nhealth-send = abc\n",
             "health-send: expected hex bytes");
}

/* Lists, continuation lines, order --------------------------------------- */

static void test_lists_and_order(void **state)
{
    struct umxd_config *cfg;

    (void)state;
    cfg = load_ok("[listen]\n"
                  "address = 127.0.0.1:7000, [::1]:7000\n"
                  "address = 127.0.0.2:7000\n"
                  "  127.0.0.3:7000\n"
                  "[route zeta]\n"
                  "match = len 1..100\n"
                  "  not prefix 0x00\n"
                  "match = and port 1..2\n"
                  "forward = 127.0.0.1:1, 127.0.0.1:2\n"
                  "forward = [::1]:3\n"
                  "    127.0.0.1:4\n"
                  "[route alpha]\n"
                  "match = any\n"
                  "action = echo\n");
    assert_int_equal(cfg->nlisten, 4);
    assert_string_equal(cfg->listen_text[1], "[::1]:7000");
    assert_string_equal(cfg->listen_text[3], "127.0.0.3:7000");
    assert_int_equal(cfg->nroutes, 2);
    /* file order, not name order */
    assert_string_equal(cfg->routes[0].name, "zeta");
    assert_string_equal(cfg->routes[1].name, "alpha");
    assert_int_equal(umxd_config_route(cfg, "alpha"), 1);
    assert_int_equal(umxd_config_route(cfg, "zeta"), 0);
    assert_int_equal(umxd_config_route(cfg, "nope"), -1);
    assert_string_equal(cfg->routes[0].match, "len 1..100 and not prefix 0x00 and port 1..2");
    assert_int_equal(cfg->routes[0].nbackends, 4);
    assert_string_equal(cfg->routes[0].backends[2].text, "[::1]:3");
    assert_int_equal(cfg->routes[0].backends[2].addr.ss_family, AF_INET6);
    assert_string_equal(cfg->routes[0].backends[3].text, "127.0.0.1:4");
    assert_int_equal(cfg->routes[0].line, 5);
    assert_int_equal(cfg->routes[1].line, 12);
    round_trip(cfg);
    umxd_config_free(cfg);

    /* forward implies action = forward; explicit forward is the same */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n[route a]\nforward = 127.0.0.1:9\n"
                  "action = forward\nmatch = any\n");
    assert_int_equal(cfg->routes[0].action, UMXD_FORWARD);
    umxd_config_free(cfg);
}

static void test_attach_allow(void **state)
{
    struct umxd_config *cfg;

    (void)state;
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                  "action = attach\nallow = user:root, uid:1000\nallow = group:root\n"
                  "allow = gid:50\nshare = fanout\n");
    assert_int_equal(cfg->routes[0].action, UMXD_ATTACH);
    assert_int_equal(cfg->routes[0].nallow_uid, 2);
    assert_int_equal(cfg->routes[0].allow_uid[0], 0);
    assert_int_equal(cfg->routes[0].allow_uid[1], 1000);
    assert_int_equal(cfg->routes[0].nallow_gid, 2);
    assert_int_equal(cfg->routes[0].allow_gid[0], 0);
    assert_int_equal(cfg->routes[0].allow_gid[1], 50);
    assert_int_equal(cfg->routes[0].share, UMXD_SHARE_FANOUT);
    round_trip(cfg);
    umxd_config_free(cfg);
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "action = attach\nallow = uid:7, user:root, uid:7\n",
             "t.conf:6: [route a] allow: 'uid:7' listed twice");
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "action = attach\nallow = group:no-such-group-udpmux\n",
             "t.conf:6: [route a] allow: unknown group 'no-such-group-udpmux'");
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
             "action = drop\nshare = fanout\n",
             "t.conf:6: [route a] share: has no effect with action = drop");
}

/* upstream = shared and what it needs */
static void test_upstream_shared(void **state)
{
    struct umxd_config *cfg;
    static const char head[] = "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n";
    char text[512];

    (void)state;
    snprintf(text, sizeof(text),
             "%sforward = 127.0.0.1:9000\nupstream = shared\n"
             "source = 127.77.0.0/16\n",
             head);
    cfg = load_ok(text);
    assert_int_equal(cfg->routes[0].shared, 1);
    assert_int_equal(cfg->routes[0].connected, 0);
    assert_int_equal(cfg->routes[0].source_bits, 16);
    round_trip(cfg);
    umxd_config_free(cfg);
    snprintf(text, sizeof(text),
             "%sforward = [::1]:9000\nupstream = shared\n"
             "source = fd00:77::/64\n",
             head);
    cfg = load_ok(text);
    assert_int_equal(cfg->routes[0].shared, 1);
    round_trip(cfg);
    umxd_config_free(cfg);
    snprintf(text, sizeof(text), "%sforward = 127.0.0.1:9000\nupstream = shared\n", head);
    load_bad(text, "t.conf:6: [route a] upstream: upstream = shared needs source = PREFIX");
    /* an IPv4 prefix that is not local (TEST-NET-1): replies could never
     * come back; refused by every load (-t, start, reload) with its line */
    snprintf(text, sizeof(text),
             "%sforward = 127.0.0.1:9000\nupstream = shared\nsource = 192.0.2.0/24\n", head);
    load_bad(text, "t.conf:7: [route a] source: 192.0.2.1 is not a local address");
    snprintf(text, sizeof(text),
             "%sforward = 127.0.0.1:9000\nupstream = shared\n"
             "source = 127.77.0.1/31\n",
             head);
    load_bad(text, "t.conf:7: [route a] source: upstream = shared needs a prefix with at least 2 "
                   "host bits");
    snprintf(text, sizeof(text),
             "%sforward = 127.0.0.1:9000\nupstream = shared\n"
             "source = 127.77.0.0/16\ntransparent = yes\n",
             head);
    load_bad(text, "t.conf:8: [route a] transparent: transparent = yes cannot be combined");
    snprintf(text, sizeof(text),
             "%sforward = 127.0.0.1:9000, [::1]:9000\nupstream = shared\n"
             "source = 127.77.0.0/16\n",
             head);
    load_bad(text, "t.conf:5: [route a] forward: upstream = shared: backend 2 is not of the source "
                   "prefix's address family");
    snprintf(text, sizeof(text), "%sforward = 127.0.0.1:9000\nupstream = sharde\n", head);
    load_bad(text, "t.conf:6: [route a] upstream: expected connected, unconnected or shared, got "
                   "'sharde'");
}

static void test_errors_misc(void **state)
{
    struct umxd_config *cfg = (struct umxd_config *)(uintptr_t)1;
    char err[256] = "";
    char small[24];

    (void)state;
    assert_int_equal(umxd_config_load("/nonexistent/udpmux.conf", &cfg, err, sizeof(err)), -ENOENT);
    assert_null(cfg);
    assert_non_null(strstr(err, "/nonexistent/udpmux.conf: cannot open"));
    /* a directory */
    cfg = (struct umxd_config *)(uintptr_t)1;
    assert_true(umxd_config_load("/", &cfg, err, sizeof(err)) < 0);
    assert_null(cfg);
    /* truncated message buffers and no buffer at all are fine */
    assert_int_equal(umxd_config_load_string("[nope]\n", "x", &cfg, small, sizeof(small)), -EINVAL);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_int_equal(umxd_config_load_string("[nope]\n", "x", &cfg, NULL, 0), -EINVAL);
    /* empty text */
    load_bad("", "t.conf:1: [route]: no routes");
    /* a rule that needs the route's whole text: continuation joins */
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = prefix\n  0x00\n"
             "action = drop\n",
             "t.conf:4: [route a] match: bad rule");
    umxd_config_free(NULL);
}

/* A FIFO (or any non-regular file) as the config path is refused at once:
 * opening a FIFO used to wait for a writer, hanging -t and, on SIGHUP, the
 * daemon's main thread. The alarm turns such a hang into a failure. */
static void test_not_regular(void **state)
{
    struct umxd_config *cfg = (struct umxd_config *)(uintptr_t)1;
    char dir[] = "/tmp/umx-conf-XXXXXX", path[64], err[512] = "";

    (void)state;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/fifo.conf", dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    alarm(5);
    assert_int_equal(umxd_config_load(path, &cfg, err, sizeof(err)), -EINVAL);
    alarm(0);
    assert_null(cfg);
    if (!strstr(err, "fifo.conf: a FIFO, not a configuration file"))
        fail_msg("message: %s", err);
    unlink(path);
    cfg = (struct umxd_config *)(uintptr_t)1;
    assert_int_equal(umxd_config_load(dir, &cfg, err, sizeof(err)), -EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(err, "a directory"));
    rmdir(dir);
}

/* Socket paths and backends that would turn on udpmuxd itself. */
static void test_self_reference(void **state)
{
    struct umxd_config *cfg;
    const char *head = "[listen]\naddress = 127.0.0.1:7000\n";
    char text[1024];

    (void)state;
    snprintf(text, sizeof(text),
             "%s[udpmux]\nattach = /run/a.sock\ncontrol = /run/a.sock\n"
             "[route a]\nmatch = any\naction = drop\n",
             head);
    load_bad(text, "t.conf:5: [udpmux] control: same path as attach = /run/a.sock");
    /* the name given to load_string is the file's path */
    snprintf(text, sizeof(text),
             "%s[udpmux]\ncontrol = t.conf\n[route a]\nmatch = any\naction = drop\n", head);
    load_bad(text, "t.conf:4: [udpmux] control: is this configuration file");
    /* the same port on another address, or a v6-only wildcard and an IPv4
     * backend, are other sockets */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\naddress = [::]:7000\n"
                  "[route a]\nmatch = any\nforward = 127.0.0.2:7000\nforward = 127.0.0.1:7001\n");
    umxd_config_free(cfg);
    load_bad("[listen]\naddress = [::1]:7000\n[route a]\nmatch = any\nforward = [::1]:7000\n",
             "t.conf:5: [route a] forward: [::1]:7000 is udpmuxd's own listen address");
    load_bad("[listen]\naddress = [::]:7000\n[route a]\nmatch = any\nforward = [::1]:7000\n",
             "t.conf:5: [route a] forward: [::1]:7000 is udpmuxd's own listen address [::]:7000");
    /* quick mode names the -r argument */
    {
        static const char *const l[] = {"127.0.0.1:7000"};
        static const char *const r[] = {"dns=127.0.0.1:5353", "any=127.0.0.1:7000"};
        char err[512] = "";
        cfg = NULL;
        assert_int_equal(umxd_config_quick(l, 1, r, 2, &cfg, err, sizeof(err)), -EINVAL);
        assert_null(cfg);
        if (!strstr(err, "-r any=127.0.0.1:7000: 127.0.0.1:7000 is udpmuxd's own listen address"))
            fail_msg("message: %s", err);
    }
}

/* The dialect's corner cases (conf/ini.c keeps inih r55's line rules with
 * multi-line values on and inline comments off). */
static void test_dialect(void **state)
{
    struct umxd_config *cfg;

    (void)state;
    /* an indented header right after a key would be a continuation value:
     * refused with a hint */
    load_bad("[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n  [route b]\n"
             "action = drop\n",
             "t.conf:5: indented section header");
    /* indented [::1]:7000 is a continuation, not a header */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n  [::1]:7000\n[route a]\n"
                  "match = any\naction = drop\n");
    assert_int_equal(cfg->nlisten, 2);
    umxd_config_free(cfg);
    /* with no key before it, an indented line is a header or a key */
    cfg = load_ok("  [listen]\naddress = 127.0.0.1:7000\n[route a]\n  match = any\n"
                  "action = drop\n");
    assert_string_equal(cfg->routes[0].match, "any");
    umxd_config_free(cfg);
    /* blanks inside the brackets and around the name */
    cfg = load_ok("[ listen ]\naddress = 127.0.0.1:7000\n[route   x ]\nmatch = any\n"
                  "action = drop\n");
    assert_string_equal(cfg->routes[0].name, "x");
    umxd_config_free(cfg);
    /* a route name longer than inih's 49-byte section buffer (the reader
     * has no such limit) */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n"
                  "[route abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-0123456]\n"
                  "match = any\naction = drop\n");
    assert_string_equal(cfg->routes[0].name,
                        "abcdefghijklmnopqrstuvwxyz-abcdefghijklmnopqrstuvwxyz-0123456");
    umxd_config_free(cfg);
    /* a section header with text after ']' (inih ignores it) */
    cfg = load_ok("[listen] trailing words\naddress = 127.0.0.1:7000\n[route a]\nmatch = any\n"
                  "action = drop\n");
    umxd_config_free(cfg);
    /* case matters */
    load_bad("[Listen]\naddress = 127.0.0.1:7000\n", "t.conf:1: [Listen]: unknown section");
    load_bad("[listen]\nAddress = 127.0.0.1:7000\n", "t.conf:2: [listen] Address: unknown key");
    /* a long line (inih's compiled-in limit is 200 bytes) */
    {
        char text[2048], re[501];
        memset(re, 'a', 500); /* the rule engine's token limit is 511 */
        re[500] = '\0';
        snprintf(text, sizeof(text),
                 "[listen]\naddress = 127.0.0.1:7000\n[route a]\nmatch = regex \"%s\"\n"
                 "action = drop\n",
                 re);
        cfg = load_ok(text);
        assert_int_equal(strlen(cfg->routes[0].match), 500 + 8);
        umxd_config_free(cfg);
    }
}

/* Quick mode ------------------------------------------------------------- */

static int quick(const char *const *l, unsigned nl, const char *const *r, unsigned nr,
                 struct umxd_config **out, char *err, size_t errlen)
{
    return umxd_config_quick(l, nl, r, nr, out, err, errlen);
}

static void test_route_index(void **state)
{
    struct umxd_config *cfg;
    int matched;

    (void)state;
    /* negations first, so they are tried on every byte before the rest */
    cfg = load_ok("[listen]\naddress = 127.0.0.1:7000\n"
                  "[route a]\nmatch = not dns and len 20 and not stun\naction = drop\n"
                  "[route b]\nmatch = prefix 0x0001 and len 20..\naction = stun\n"
                  "[route c]\nmatch = not len 1.. and port 5000\naction = echo\n"
                  "[route d]\nmatch = regex \"^ping\" and not prefix 0x70696e67ff\n"
                  "action = echo\n"
                  "[route e]\nmatch = bytes 0 0x80 mask 0xc0 and not rtcp\naction = drop\n"
                  "[route f]\nmatch = not any\naction = drop\n"
                  "[route g]\nmatch = dns\naction = drop\n"
                  "[route h]\nmatch = not quic and from 127.0.0.0/8 and len 48..64\n"
                  "action = drop\n");
    matched = check_index(cfg);
    /* the loop and the lists agree on a mix that matches and does not */
    assert_true(matched > 100 && matched < 2000);
    umxd_config_free(cfg);
}

static void test_quick(void **state)
{
    static const char *const l[] = {"127.0.0.1:7000", "[::1]:7000"};
    struct umxd_config *cfg = NULL;
    char err[512] = "";
    int rc;

    (void)state;
    {
        static const char *const r[] = {
            "any=127.0.0.1:9000,127.0.0.1:9001",
            "\"regex \\\"^ECHO\\\"\"=echo",
            "prefix 0x00=stun",
            "'len 5'=drop",
        };
        rc = quick(l, 2, r, 4, &cfg, err, sizeof(err));
        if (rc)
            fail_msg("quick: %d %s", rc, err);
        assert_string_equal(cfg->path, "");
        assert_int_equal(cfg->nlisten, 2);
        assert_int_equal(cfg->nroutes, 4);
        assert_string_equal(cfg->routes[0].name, "any");
        assert_int_equal(cfg->routes[0].action, UMXD_FORWARD);
        assert_int_equal(cfg->routes[0].nbackends, 2);
        assert_string_equal(cfg->routes[1].name, "route2");
        assert_string_equal(cfg->routes[1].match, "regex \"^ECHO\"");
        assert_int_equal(cfg->routes[1].action, UMXD_ECHO);
        assert_string_equal(cfg->routes[2].name, "route3");
        assert_string_equal(cfg->routes[2].match, "prefix 0x00");
        assert_int_equal(cfg->routes[2].action, UMXD_STUN);
        assert_string_equal(cfg->routes[3].match, "len 5");
        assert_int_equal(cfg->routes[3].action, UMXD_DROP);
        assert_string_equal(cfg->control, "/run/udpmux/control.sock");
        round_trip(cfg);
        umxd_config_free(cfg);
    }
    if (have_probes()) {
        /* the README one-liner; '=' inside the rule splits on the last '=' */
        static const char *const r[] = {"dns=127.0.0.1:5353", "wireguard=127.0.0.1:51820",
                                        "\"quic sni=a.example.org\"=127.0.0.1:443",
                                        "any=127.0.0.1:9000"};
        rc = quick(l, 1, r, 4, &cfg, err, sizeof(err));
        if (rc)
            fail_msg("quick: %d %s", rc, err);
        assert_string_equal(cfg->routes[0].name, "dns");
        assert_string_equal(cfg->routes[1].name, "wireguard");
        assert_string_equal(cfg->routes[2].name, "route3");
        assert_string_equal(cfg->routes[2].match, "quic sni=a.example.org");
        assert_string_equal(cfg->routes[3].name, "any");
        round_trip(cfg);
        umxd_config_free(cfg);
    }
    {
        /* errors name the argument */
        static const char *const r1[] = {"any=127.0.0.1"};
        static const char *const r2[] = {"any"};
        static const char *const r3[] = {"any=drop", "any=echo"};
        static const char *const r4[] = {"prefix zz=drop"};
        static const char *const r5[] = {"=drop"};
        static const char *const bad_l[] = {"localhost:7000"};

        cfg = (struct umxd_config *)(uintptr_t)1;
        assert_int_equal(quick(l, 1, r1, 1, &cfg, err, sizeof(err)), -EINVAL);
        assert_null(cfg);
        assert_non_null(strstr(err, "-r any=127.0.0.1: bad right side '127.0.0.1'"));
        assert_int_equal(quick(l, 1, r2, 1, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "-r any: expected NAME="));
        assert_int_equal(quick(l, 1, r3, 2, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "-r any=echo: duplicate route name 'any'"));
        assert_int_equal(quick(l, 1, r4, 1, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "-r prefix zz=drop: [route route1] match: bad rule"));
        assert_int_equal(quick(l, 1, r5, 1, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "empty rule"));
        assert_int_equal(quick(bad_l, 1, r2, 1, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "-l localhost:7000: bad address"));
        assert_int_equal(quick(l, 0, r1, 0, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "no listen address"));
        assert_int_equal(quick(l, 1, r1, 0, &cfg, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "no routes"));
        assert_null(cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_files),     cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_bundled_confs),  cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_durations),      cmocka_unit_test(test_sizes_bools_numbers),
        cmocka_unit_test(test_health_and_hex), cmocka_unit_test(test_lists_and_order),
        cmocka_unit_test(test_attach_allow),   cmocka_unit_test(test_upstream_shared),
        cmocka_unit_test(test_errors_misc),    cmocka_unit_test(test_dialect),
        cmocka_unit_test(test_quick),          cmocka_unit_test(test_busy_poll),
        cmocka_unit_test(test_route_index),    cmocka_unit_test(test_not_regular),
        cmocka_unit_test(test_self_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
