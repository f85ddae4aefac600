/*
 * seccomp-check.c - the daemon's seccomp allow-list (daemon/harden.c),
 * installed in child processes, against calls it must refuse and calls it
 * must allow (claim C12). The filter is the daemon's own code, not a copy.
 *
 * For each forbidden call: in TRAP mode (the default) the call fails with
 * EPERM and the process lives on; in KILL mode the process dies of SIGSYS.
 * Allowed calls (UDP socket + send, read-only open, thread creation, the
 * sock_diag netlink socket) work under the filter. Output is TAP-like with
 * a final "N passed, N failed" line.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "harden.h"

#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif
#ifdef SANITIZED
/* harden.c lets LeakSanitizer's tracer (fork + ptrace) through in
 * sanitizer builds: there they must be allowed, elsewhere refused */
#define LSAN_ONLY 1
#else
#define LSAN_ONLY 0
#endif

static int passed, failed;

static void *thread_fn(void *arg)
{
    return arg;
}

/* Each probe returns 0 when the call succeeded, else -errno. */
static int p_execve(void)
{
    char *argv[] = {"/bin/true", NULL};
    char *envp[] = {NULL};
    execve("/bin/true", argv, envp);
    return -errno;
}

static int p_packet_socket(void)
{
    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int p_raw_socket(void)
{
    int fd = socket(AF_INET, SOCK_RAW, IPPROTO_UDP);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int p_tcp_socket(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

static int p_open_write(void)
{
    int fd = open("/tmp/udpmux-seccomp-check", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    close(fd);
    unlink("/tmp/udpmux-seccomp-check");
    return 0;
}

static int p_fork(void)
{
    pid_t p = (pid_t)syscall(SYS_clone, SIGCHLD, 0, 0, 0, 0);
    if (p == 0)
        _exit(0);
    if (p < 0)
        return -errno;
    waitpid(p, NULL, 0);
    return 0;
}

static int p_ptrace(void)
{
    return ptrace(PTRACE_TRACEME, 0, 0, 0) < 0 ? -errno : 0;
}

static int p_mount(void)
{
    return mount("none", "/mnt", "tmpfs", 0, NULL) < 0 ? -errno : 0;
}

static int p_setuid(void)
{
    return syscall(SYS_setuid, 0) < 0 ? -errno : 0;
}

static int p_kill_other(void)
{
    /* tgkill outside our own process (init's pid 1, signal 0) */
    return syscall(SYS_tgkill, 1, 1, 0) < 0 ? -errno : 0;
}

static int p_udp(void)
{
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int r = 0;
    if (fd < 0)
        return -errno;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (sendto(fd, "x", 1, 0, (struct sockaddr *)&to, sizeof(to)) < 0 && errno != ECONNREFUSED)
        r = -errno;
    close(fd);
    return r;
}

static int p_open_read(void)
{
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    char b[64];
    if (fd < 0)
        return -errno;
    if (read(fd, b, sizeof(b)) < 0) {
        close(fd);
        return -errno;
    }
    close(fd);
    return 0;
}

/* The open rule checks the flags argument: paths at 64 different addresses
 * (so every low bit of the pointer varies) must all open read-only; a rule
 * that looked at the wrong argument would refuse some of them (a bug once:
 * the path pointer of openat was masked instead of its flags). */
static int p_open_read_many(void)
{
    static char buf[128];
    for (int i = 0; i < 64; i++) {
        int fd;
        memcpy(buf + i, "/proc/self/status", sizeof("/proc/self/status"));
        fd = open(buf + i, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            return -errno;
        close(fd);
    }
    return 0;
}

static int p_open_write_many(void)
{
    static char buf[128];
    for (int i = 0; i < 64; i++) {
        int fd;
        memcpy(buf + i, "/tmp/udpmux-seccomp-check", sizeof("/tmp/udpmux-seccomp-check"));
        fd = open(buf + i, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            close(fd);
            unlink(buf + i);
            return 0;
        }
        if (errno != EPERM)
            return -errno;
    }
    return -EPERM;
}

static int p_thread(void)
{
    pthread_t t;
    int r = pthread_create(&t, NULL, thread_fn, NULL);
    if (r)
        return -r;
    pthread_join(t, NULL);
    return 0;
}

static int p_sock_diag(void)
{
    int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    if (fd < 0)
        return -errno;
    close(fd);
    return 0;
}

struct probe {
    const char *name;
    int (*fn)(void);
    int allowed;
};

static const struct probe probes[] = {
    {"execve", p_execve, 0},
    {"socket(AF_PACKET)", p_packet_socket, 0},
    {"socket(AF_INET, SOCK_RAW)", p_raw_socket, 0},
    {"socket(AF_INET, SOCK_STREAM)", p_tcp_socket, 0},
    {"open(O_WRONLY|O_CREAT)", p_open_write, 0},
    {"open(O_WRONLY|O_CREAT) at 64 path addresses", p_open_write_many, 0},
    {"fork (clone without CLONE_THREAD)", p_fork, LSAN_ONLY},
    {"ptrace", p_ptrace, LSAN_ONLY},
    {"mount", p_mount, 0},
    {"setuid", p_setuid, 0},
    {"tgkill to another process", p_kill_other, 0},
    {"UDP socket + sendto", p_udp, 1},
    {"open(O_RDONLY) + read", p_open_read, 1},
    {"open(O_RDONLY) at 64 path addresses", p_open_read_many, 1},
    {"pthread_create", p_thread, 1},
    {"socket(AF_NETLINK, NETLINK_SOCK_DIAG)", p_sock_diag, 1},
};

static void result(int ok, const char *name, const char *claim, const char *what)
{
    printf("%s - %s %s (%s)\n", ok ? "ok" : "not ok", name, claim, what);
    if (ok)
        passed++;
    else
        failed++;
}

/* Runs one probe in a child under the filter; returns the child's wait
 * status and the probe's result through a pipe. */
static int run(const struct probe *p, enum umxd_seccomp_mode mode, int *res)
{
    int pfd[2], st = 0;
    pid_t c;
    if (pipe(pfd) < 0)
        return -1;
    fflush(stdout);
    c = fork();
    if (c == 0) {
        int r;
        close(pfd[0]);
        /* the daemon's order: no capabilities first, then the filter */
        if (umxd_caps_drop_all() < 0)
            _exit(90);
        if (umxd_seccomp_install(mode) < 0)
            _exit(91);
        r = p->fn();
        if (write(pfd[1], &r, sizeof(r)) != sizeof(r))
            _exit(92);
        _exit(0);
    }
    close(pfd[1]);
    *res = 1;
    if (read(pfd[0], res, sizeof(*res)) != sizeof(*res))
        *res = 1; /* nothing written: the child died in the call */
    close(pfd[0]);
    waitpid(c, &st, 0);
    return st;
}

int main(int argc, char **argv)
{
    /* valgrind does not emulate seccomp (installing a filter fails there),
     * and it does not follow execve without --trace-children: under
     * valgrind, run the checks natively in a fresh copy of ourselves */
    if (RUNNING_ON_VALGRIND && argc > 0) {
        execv(argv[0], argv);
        perror("seccomp-check: re-exec outside valgrind");
        return 1;
    }
    for (size_t i = 0; i < sizeof(probes) / sizeof(probes[0]); i++) {
        const struct probe *p = &probes[i];
        int res, st;
        char what[64];
        st = run(p, UMXD_SECCOMP_TRAP, &res);
        if (WIFEXITED(st) && WEXITSTATUS(st) >= 90) {
            snprintf(what, sizeof(what), "set-up failed (%d)", WEXITSTATUS(st));
            result(0, p->name, "set-up", what);
            continue;
        }
        if (p->allowed) {
            snprintf(what, sizeof(what), "result %d", res);
            result(WIFEXITED(st) && res == 0, p->name, "allowed under the filter", what);
        } else {
            snprintf(what, sizeof(what), "result %d, %s", res,
                     WIFSIGNALED(st) ? "killed" : "alive");
            result(WIFEXITED(st) && res == -EPERM, p->name, "refused with EPERM", what);
            st = run(p, UMXD_SECCOMP_KILL, &res);
            snprintf(what, sizeof(what), "%s %d", WIFSIGNALED(st) ? "signal" : "exit",
                     WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
            result(WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS, p->name, "kills in kill mode", what);
        }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
