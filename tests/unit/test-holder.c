/*
 * test-holder.c - udpmux_who_holds() and udpmux_holder_format()
 * (lib/holder.c): who holds a port, found through sock_diag and /proc, for
 * sockets of this process, of a child process with its own name, of another
 * uid, dual-stack IPv6 sockets, and the library's own -EADDRINUSE path.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "udpmux.h"

static char self_exe[4096];

static void read_comm(pid_t pid, char *buf, size_t len)
{
    char path[64];
    FILE *f;
    snprintf(path, sizeof(path), "/proc/%d/comm", (int)pid);
    f = fopen(path, "re");
    buf[0] = '\0';
    if (f) {
        if (fgets(buf, (int)len, f))
            buf[strcspn(buf, "\n")] = '\0';
        fclose(f);
    }
}

/* Binds a plain UDP socket; returns the fd, the port in *port. */
static int plain_bind(int family, const char *ip, int reuseaddr, int reuseport, int v6only,
                      uint16_t *port)
{
    struct sockaddr_storage ss;
    socklen_t sl;
    char text[80];
    int fd;
    snprintf(text, sizeof(text), family == AF_INET6 ? "[%s]:%u" : "%s:%u", ip, *port);
    if (udpmux_parse_addr(text, &ss, &sl) != 0)
        return -EINVAL;
    fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (reuseaddr)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuseaddr, sizeof(reuseaddr));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &reuseport, sizeof(reuseport));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, &ss, sizeof(s4));
        *port = ntohs(s4.sin_port);
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, &ss, sizeof(s6));
        *port = ntohs(s6.sin6_port);
    }
    return fd;
}

static struct sockaddr_storage v4(uint16_t port)
{
    struct sockaddr_storage ss;
    char text[32];
    snprintf(text, sizeof(text), "127.0.0.1:%u", port);
    assert_int_equal(udpmux_parse_addr(text, &ss, NULL), 0);
    return ss;
}

/* Whether this process may borrow sockets with pidfd_getfd() (Linux 5.6;
 * valgrind 3.19 does not know the syscall). Where it cannot, the library
 * reports the reuse flags as unknown (-1); where it can, they must be exact. */
static int flags_readable(void)
{
    static int cached = -1;
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    if (cached < 0) {
        int pfd = (int)syscall(SYS_pidfd_open, getpid(), 0), fd = -1;
        if (pfd >= 0) {
            fd = (int)syscall(SYS_pidfd_getfd, pfd, 0, 0);
            close(pfd);
        }
        cached = fd >= 0;
        if (fd >= 0)
            close(fd);
    }
#else
    cached = 0;
#endif
    return cached;
}

static void check_flag(int got, int want)
{
    if (flags_readable())
        assert_int_equal(got, want);
    else
        assert_true(got == want || got == -1);
}

/* Finds the holder with this pid among n results. */
static const struct udpmux_holder *find_pid(const struct udpmux_holder *h, int n, pid_t pid)
{
    for (int i = 0; i < n && i < 16; i++)
        if (h[i].pid == pid)
            return &h[i];
    return NULL;
}

/* A child that binds 127.0.0.1:0 (as nobody if asked), names itself, prints
 * its port, and holds it until its stdin closes. ----------------------------- */

static void holder_child(int as_nobody)
{
    uint16_t port = 0;
    char c;
    int fd;
    if (as_nobody && (setresgid(65534, 65534, 65534) != 0 || setresuid(65534, 65534, 65534) != 0))
        _exit(2);
    prctl(PR_SET_NAME, "umx-holder", 0, 0, 0);
    fd = plain_bind(AF_INET, "127.0.0.1", 0, 0, 0, &port);
    if (fd < 0)
        _exit(3);
    printf("%u\n", port);
    fflush(stdout);
    /* bounded: the parent closes our stdin when done, or we give up */
    {
        struct pollfd p = {0, POLLIN, 0};
        if (poll(&p, 1, 30000) == 1 && read(0, &c, 1) < 0)
            _exit(4);
    }
    _exit(0);
}

struct child {
    pid_t pid;
    int to, from;
    uint16_t port;
};

static void child_start(struct child *ch, int as_nobody)
{
    int in[2], out[2];
    char buf[32] = "";
    struct pollfd p;
    ssize_t n;
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    fflush(NULL);
    ch->pid = fork();
    assert_true(ch->pid >= 0);
    if (ch->pid == 0) {
        char *const argv[] = {
            self_exe, as_nobody ? (char[]){"--child-hold-nobody"} : (char[]){"--child-hold"}, NULL};
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execv(self_exe, argv);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    ch->to = in[1];
    ch->from = out[0];
    p.fd = ch->from;
    p.events = POLLIN;
    assert_int_equal(poll(&p, 1, 5000), 1);
    n = read(ch->from, buf, sizeof(buf) - 1);
    assert_true(n > 0);
    buf[n] = '\0';
    ch->port = (uint16_t)strtoul(buf, NULL, 10);
    assert_true(ch->port > 0);
}

static void child_stop(struct child *ch)
{
    int status;
    close(ch->to);
    close(ch->from);
    assert_int_equal(waitpid(ch->pid, &status, 0), ch->pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Tests ------------------------------------------------------------------- */

static void test_own_plain_socket(void **state)
{
    struct udpmux_holder h[16];
    const struct udpmux_holder *me;
    struct sockaddr_storage ss;
    char comm[64], line[256], want[128];
    uint16_t port = 0;
    int fd, n;
    (void)state;
    fd = plain_bind(AF_INET, "127.0.0.1", 0, 0, 0, &port);
    assert_true(fd >= 0);
    ss = v4(port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_true(n >= 1);
    me = find_pid(h, n, getpid());
    assert_non_null(me);
    read_comm(getpid(), comm, sizeof(comm));
    assert_string_equal(me->comm, comm);
    assert_int_equal(me->uid, geteuid());
    assert_int_equal(me->addr.ss_family, AF_INET);
    udpmux_format_addr((const struct sockaddr *)&me->addr, line, sizeof(line));
    snprintf(want, sizeof(want), "127.0.0.1:%u", port);
    assert_string_equal(line, want);
    /* the flags are read from the socket itself (we may: same process); -1
     * only where the kernel or a tool like valgrind refuses pidfd_getfd */
    check_flag(me->reuseaddr, 0);
    check_flag(me->reuseport, 0);
    if (!flags_readable())
        print_message("note: reuse flags unknown here (no pidfd_getfd)\n");
    /* the one-line message names pid and program */
    assert_true(udpmux_holder_format(me, line, sizeof(line)) > 0);
    snprintf(want, sizeof(want), "pid %d (%s)", (int)getpid(), comm);
    assert_non_null(strstr(line, want));
    snprintf(want, sizeof(want), "on 127.0.0.1:%u", port);
    assert_non_null(strstr(line, want));
    if (me->reuseaddr == 0)
        assert_non_null(strstr(line, "SO_REUSEADDR=no SO_REUSEPORT=no"));
    /* max 0: just the count, out may be NULL */
    assert_int_equal(udpmux_who_holds((struct sockaddr *)&ss, NULL, 0), n);
    close(fd);
    /* closed: nobody holds it */
    assert_int_equal(udpmux_who_holds((struct sockaddr *)&ss, h, 16), 0);
}

static void test_reuse_flags_and_max(void **state)
{
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    uint16_t port = 0;
    int a, b, n;
    (void)state;
    a = plain_bind(AF_INET, "127.0.0.1", 1, 1, 0, &port);
    assert_true(a >= 0);
    b = plain_bind(AF_INET, "127.0.0.1", 1, 1, 0, &port);
    assert_true(b >= 0);
    ss = v4(port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(h[i].pid, getpid());
        check_flag(h[i].reuseaddr, 1);
        check_flag(h[i].reuseport, 1);
    }
    if (h[0].reuseaddr == 1) {
        char line[256];
        udpmux_holder_format(&h[0], line, sizeof(line));
        assert_non_null(strstr(line, "SO_REUSEADDR=yes SO_REUSEPORT=yes"));
    }
    /* more holders than room: the count is complete, only max are written */
    memset(h, 0x5a, sizeof(h));
    assert_int_equal(udpmux_who_holds((struct sockaddr *)&ss, h, 1), 2);
    assert_int_equal(h[0].pid, getpid());
    assert_int_equal(h[1].pid, 0x5a5a5a5a);
    close(a);
    close(b);
}

static void test_dualstack_holds_v4(void **state)
{
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    uint16_t port = 0;
    int fd, n;
    (void)state;
    fd = plain_bind(AF_INET6, "::", 0, 0, 0, &port);
    if (fd == -EAFNOSUPPORT || fd == -EADDRNOTAVAIL)
        skip();
    assert_true(fd >= 0);
    /* asked about the IPv4 port, the dual-stack IPv6 socket is the holder */
    ss = v4(port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].pid, getpid());
    assert_int_equal(h[0].addr.ss_family, AF_INET6);
    close(fd);
}

static void test_v6only_not_a_v4_holder(void **state)
{
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    uint16_t port = 0;
    int f6, f4, n;
    (void)state;
    f6 = plain_bind(AF_INET6, "::1", 0, 0, 1, &port);
    if (f6 == -EAFNOSUPPORT || f6 == -EADDRNOTAVAIL)
        skip();
    assert_true(f6 >= 0);
    f4 = plain_bind(AF_INET, "127.0.0.1", 0, 0, 0, &port);
    assert_true(f4 >= 0);
    /* an IPv6-only socket on the same port number does not hold the IPv4
     * port: only the IPv4 socket is named */
    ss = v4(port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].addr.ss_family, AF_INET);
    close(f6);
    close(f4);
}

static void test_library_eaddrinuse_path(void **state)
{
    struct udpmux *m;
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    char text[64], line[256], want[160], comm[64];
    uint16_t port = 0;
    int fd, n, r;
    (void)state;
    fd = plain_bind(AF_INET, "0.0.0.0", 0, 0, 0, &port);
    assert_true(fd >= 0);
    assert_int_equal(udpmux_new(&m, NULL), 0);
    snprintf(text, sizeof(text), "127.0.0.1:%u", port);
    r = udpmux_bind(m, text, 0);
    assert_int_equal(r, -EADDRINUSE);
    assert_non_null(udpmux_strerror(r));
    /* what a program prints after -EADDRINUSE */
    assert_int_equal(udpmux_parse_addr(text, &ss, NULL), 0);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    udpmux_holder_format(&h[0], line, sizeof(line));
    read_comm(getpid(), comm, sizeof(comm));
    snprintf(want, sizeof(want), "pid %d (%s) uid %u on 0.0.0.0:%u", (int)getpid(), comm,
             (unsigned)geteuid(), port);
    assert_non_null(strstr(line, want));
    /* a mux endpoint is found the same way */
    close(fd);
    assert_int_equal(udpmux_bind(m, text, 0), 0);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].pid, getpid());
    check_flag(h[0].reuseaddr, 0);
    check_flag(h[0].reuseport, 0);
    udpmux_free(m);
}

static void test_child_process_holder(void **state)
{
    struct child ch;
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    char line[256], want[128];
    int n;
    (void)state;
    child_start(&ch, 0);
    ss = v4(ch.port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].pid, ch.pid);
    assert_string_equal(h[0].comm, "umx-holder");
    if (geteuid() == 0) {
        check_flag(h[0].reuseaddr, 0);
        check_flag(h[0].reuseport, 0);
    }
    udpmux_holder_format(&h[0], line, sizeof(line));
    snprintf(want, sizeof(want), "pid %d (umx-holder)", (int)ch.pid);
    assert_non_null(strstr(line, want));
    child_stop(&ch);
}

static void test_other_uid_holder(void **state)
{
    struct child ch;
    struct udpmux_holder h[16];
    struct sockaddr_storage ss;
    int n;
    (void)state;
    child_start(&ch, 1);
    ss = v4(ch.port);
    n = udpmux_who_holds((struct sockaddr *)&ss, h, 16);
    assert_int_equal(n, 1);
    assert_int_equal(h[0].uid, 65534);
    /* root sees every process */
    assert_int_equal(h[0].pid, ch.pid);
    assert_string_equal(h[0].comm, "umx-holder");
    child_stop(&ch);
}

static void test_errors_and_format(void **state)
{
    struct udpmux_holder h;
    struct sockaddr_storage ss = v4(53);
    struct {
        sa_family_t fam;
        char path[30];
    } un = {AF_UNIX, "x"};
    char line[256];
    int n;
    (void)state;
    assert_int_equal(udpmux_who_holds(NULL, &h, 1), -EINVAL);
    assert_int_equal(udpmux_who_holds((struct sockaddr *)&un, &h, 1), -EINVAL);
    assert_int_equal(udpmux_who_holds((struct sockaddr *)&ss, NULL, 1), -EINVAL);
    /* a holder whose process is not visible */
    memset(&h, 0, sizeof(h));
    memcpy(&h.addr, &ss, sizeof(ss));
    h.uid = 101;
    h.pid = -1;
    h.reuseaddr = h.reuseport = -1;
    n = udpmux_holder_format(&h, line, sizeof(line));
    assert_int_equal(n, (int)strlen(line));
    assert_non_null(strstr(line, "uid 101 on 127.0.0.1:53"));
    assert_non_null(strstr(line, "not visible"));
    assert_non_null(strstr(line, "SO_REUSEADDR=unknown SO_REUSEPORT=unknown"));
    /* a visible one */
    h.pid = 4242;
    snprintf(h.comm, sizeof(h.comm), "dnsmasq");
    h.reuseaddr = 0;
    h.reuseport = 1;
    n = udpmux_holder_format(&h, line, sizeof(line));
    assert_string_equal(
        line, "pid 4242 (dnsmasq) uid 101 on 127.0.0.1:53, SO_REUSEADDR=no SO_REUSEPORT=yes");
    /* snprintf semantics */
    assert_int_equal(udpmux_holder_format(&h, line, 8), n);
    assert_string_equal(line, "pid 424");
    assert_int_equal(udpmux_holder_format(&h, NULL, 0), n);
}

/* udpmux_holder_format() is defined for every input: NULL holder, NULL
 * buffer, reuse flags out of range, a comm without NUL, an unknown family. */
static void test_format_any_input(void **state)
{
    struct udpmux_holder h;
    char line[512], want[80];
    int n;
    (void)state;
    assert_int_equal(udpmux_holder_format(NULL, line, sizeof(line)), -EINVAL);
    assert_int_equal(udpmux_holder_format(NULL, NULL, 0), -EINVAL);
    memset(&h, 0, sizeof(h));
    h.addr.ss_family = AF_INET;
    h.pid = 42;
    h.reuseaddr = 7;
    h.reuseport = -12345;
    memset(h.comm, 'A', sizeof(h.comm));   /* no NUL */
    n = udpmux_holder_format(&h, NULL, 0); /* the length only */
    assert_true(n > 0);
    assert_int_equal(udpmux_holder_format(&h, NULL, 1), -EINVAL);
    assert_int_equal(udpmux_holder_format(&h, line, sizeof(line)), n);
    memset(want, 'A', 64);
    snprintf(want + 64, sizeof(want) - 64, ")");
    assert_non_null(strstr(line, want));
    assert_non_null(strstr(line, "SO_REUSEADDR=unknown SO_REUSEPORT=unknown"));
    h.addr.ss_family = 0x7777;
    h.pid = 0;
    h.reuseaddr = 1;
    h.reuseport = 0;
    assert_true(udpmux_holder_format(&h, line, sizeof(line)) > 0);
    assert_non_null(strstr(line, "SO_REUSEADDR=yes SO_REUSEPORT=no"));
}

int main(int argc, char **argv)
{
    ssize_t n = readlink("/proc/self/exe", self_exe, sizeof(self_exe) - 1);
    if (n > 0)
        self_exe[n] = '\0';
    else
        snprintf(self_exe, sizeof(self_exe), "%s", argv[0]);
    if (argc >= 2 && strcmp(argv[1], "--child-hold") == 0)
        holder_child(0);
    if (argc >= 2 && strcmp(argv[1], "--child-hold-nobody") == 0)
        holder_child(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_own_plain_socket),
        cmocka_unit_test(test_reuse_flags_and_max),
        cmocka_unit_test(test_dualstack_holds_v4),
        cmocka_unit_test(test_v6only_not_a_v4_holder),
        cmocka_unit_test(test_library_eaddrinuse_path),
        cmocka_unit_test(test_child_process_holder),
        cmocka_unit_test(test_errors_and_format),
        cmocka_unit_test(test_format_any_input),
    };
    /* the other-uid case needs root: its own meson test, 77 when not root */
    const struct CMUnitTest root_tests[] = {
        cmocka_unit_test(test_other_uid_holder),
    };
    if (argc >= 2 && strcmp(argv[1], "--root") == 0) {
        if (geteuid() != 0) {
            fprintf(stderr, "test-holder --root: not root, root-only cases skipped\n");
            return 77;
        }
        return cmocka_run_group_tests_name("root", root_tests, NULL, NULL);
    }
    return cmocka_run_group_tests(tests, NULL, NULL);
}
