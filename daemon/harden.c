/*
 * harden.c - least privilege once udpmuxd runs (claim C12 of
 * docs/security.md).
 *
 * main.c binds every listener, lets the modules bind theirs, switches to
 * `user =` (setresuid clears the capability sets of every thread), sets
 * NoNewPrivs and starts the workers; then it calls umxd_harden(), which
 *  1. drops every capability in every thread, for the case without
 *     `user =` (root that keeps uid 0 but can no longer do anything a plain
 *     user cannot: no CAP_NET_ADMIN, no CAP_DAC_OVERRIDE...);
 *  2. installs a seccomp allow-list on every thread (TSYNC).
 *
 * Capabilities are per thread in Linux and capset(2) only changes the
 * caller, so the drop is broadcast with a signal whose handler calls capset
 * for its own thread (what libpsx/glibc's setxid do); afterwards every
 * thread's /proc/self/task/TID/status is read back and any capability left
 * is a hard error: the daemon refuses to run half-hardened.
 *
 * The allow-list was measured with `strace -f -c` over the integration and
 * security suites (see docs/security.md) and then narrowed by argument where
 * that costs nothing: socket() only for UDP, UNIX and sock_diag/route
 * netlink; open() only read-only (config reload, /proc, NSS); clone() only
 * for threads; tgkill() only inside this process; prctl() and ioctl() only
 * for the few requests glibc and libmicrohttpd make. Not on the list, for
 * example: execve, fork, ptrace, mount, bpf, kexec, setuid, raw/packet
 * sockets, writing or creating files.
 *
 * A refused call fails with EPERM and logs one line (SIGSYS handler, the
 * default) or, with UMXD_SECCOMP_KILL, kills the process. EPERM was chosen
 * as the default so a call missing from the list (a new glibc, a rare path)
 * shows up in the log instead of taking the service down; the refusal is
 * still a refusal. `seccomp = no` in the config skips the filter (for
 * debugging under strace/gdb, which need ptrace).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/netlink.h>
#include <seccomp.h>
#include <linux/bpf.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <termios.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>
#include <valgrind/valgrind.h>

#include "harden.h"
#include "log.h"
#include "udpmuxd.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif
#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif
#ifndef CLONE_THREAD
#define CLONE_THREAD 0x00010000
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UMXD_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UMXD_ASAN 1
#endif
#endif

/* Capabilities ------------------------------------------------------------------ */

static volatile sig_atomic_t caps_done;
static volatile sig_atomic_t caps_failed;
/* Capabilities (bits 0-31) that survive the drop: CAP_NET_ADMIN when a route
 * has transparent = yes, because every new flow's upstream socket needs
 * IP_TRANSPARENT; nothing otherwise. Set by umxd_harden() before the drop. */
static uint32_t caps_keep;
/* The kernel datapath (daemon/kdp/) runs: netfilter netlink sockets for its
 * table and conntrack (reload, flows, exit). */
static int kdp_on;

static int capset_self_zero(void)
{
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof(data));
    data[0].effective = data[0].permitted = caps_keep;
    return (int)syscall(SYS_capset, &hdr, data);
}

static void caps_handler(int sig)
{
    int e = errno;
    (void)sig;
    if (capset_self_zero() < 0)
        __atomic_fetch_add(&caps_failed, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&caps_done, 1, __ATOMIC_RELEASE);
    errno = e;
}

/* Returns 1 when the thread's CapEff/CapPrm/CapInh/CapAmb are all zero, 0
 * when not, -1 when the file cannot be read (thread gone). */
static int task_caps_zero(const char *tid)
{
    char path[300], line[128];
    FILE *f;
    int zero = 1, seen = 0;
    snprintf(path, sizeof(path), "/proc/self/task/%s/status", tid);
    f = fopen(path, "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        unsigned long long v;
        if (strncmp(line, "CapInh:", 7) && strncmp(line, "CapPrm:", 7) &&
            strncmp(line, "CapEff:", 7) && strncmp(line, "CapAmb:", 7))
            continue;
        seen++;
        v = strtoull(line + 7, NULL, 16);
        if (v & ~(unsigned long long)caps_keep)
            zero = 0;
    }
    fclose(f);
    return seen ? zero : -1;
}

int umxd_caps_drop_all(void)
{
    struct sigaction sa, old;
    DIR *dir;
    struct dirent *de;
    int sig = SIGRTMIN + 6, sent = 0, bad = 0;
    pid_t self = (pid_t)syscall(SYS_gettid);
    struct timespec t0, now;

    /* The bounding set: needs CAP_SETPCAP, so it only works while we are
     * still root; after `user =` the permitted set is already empty and
     * NoNewPrivs keeps exec from refilling it, so EPERM here is fine. */
    for (int c = 0; c <= CAP_LAST_CAP; c++) {
        if (c < 32 && (caps_keep & (1u << c)))
            continue;
        if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0 && errno != EINVAL && errno != EPERM)
            return -errno;
    }
    (void)prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    if (capset_self_zero() < 0)
        return -errno;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = caps_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(sig, &sa, &old) < 0)
        return -errno;
    caps_done = 0;
    caps_failed = 0;
    dir = opendir("/proc/self/task");
    if (!dir) {
        sigaction(sig, &old, NULL);
        return -errno;
    }
    while ((de = readdir(dir)) != NULL) {
        char *end;
        long tid = strtol(de->d_name, &end, 10);
        if (de->d_name[0] == '.' || *end || tid <= 0 || tid == self)
            continue;
        if (syscall(SYS_tgkill, getpid(), (pid_t)tid, sig) == 0)
            sent++;
    }
    closedir(dir);
    /* wait (bounded) for every thread to run the handler */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (__atomic_load_n(&caps_done, __ATOMIC_ACQUIRE) < sent) {
        struct timespec ms = {0, 1000000};
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - t0.tv_sec >= 2)
            break;
        nanosleep(&ms, NULL);
    }
    sigaction(sig, &old, NULL);

    /* read back: a thread that blocked the signal, or was created in the
     * meantime by a library, would still hold capabilities */
    dir = opendir("/proc/self/task");
    if (!dir)
        return -errno;
    while ((de = readdir(dir)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (task_caps_zero(de->d_name) == 0) {
            umxd_log(LOG_ERR, "thread %s still holds capabilities after the drop", de->d_name);
            bad = 1;
        }
    }
    closedir(dir);
    if (bad || caps_failed)
        return -EPERM;
    return 0;
}

/* seccomp ----------------------------------------------------------------------- */

static unsigned long refused; /* calls refused so far: caps the log lines */

/* Async-signal-safe: formats with no stdio, writes with write(2) (on the
 * allow-list), and makes the refused call return -EPERM by setting the
 * return register in the saved context. At most 32 lines, then silence:
 * a refused call in a loop must not flood the log. */
static void sigsys_handler(int sig, siginfo_t *si, void *ctx)
{
    char buf[160], num[16];
    int e = errno, n = 0;
    unsigned long k = __atomic_fetch_add(&refused, 1, __ATOMIC_RELAXED);
    const char *pre = "udpmuxd: seccomp: refused system call ";
    const char *post = " (EPERM); add it to daemon/harden.c if udpmuxd needs it\n";
    unsigned v = (unsigned)si->si_syscall;
    (void)sig;
#if defined(__x86_64__)
    ((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RAX] = -EPERM;
#elif defined(__aarch64__)
    ((ucontext_t *)ctx)->uc_mcontext.regs[0] = (unsigned long long)-EPERM;
#else
    (void)ctx;
#endif
    if (k >= 32) {
        errno = e;
        return;
    }
    for (const char *p = pre; *p && n < (int)sizeof(buf); p++)
        buf[n++] = *p;
    {
        int d = 0;
        do {
            num[d++] = (char)('0' + v % 10);
            v /= 10;
        } while (v && d < (int)sizeof(num));
        while (d > 0 && n < (int)sizeof(buf))
            buf[n++] = num[--d];
    }
    for (const char *p = post; *p && n < (int)sizeof(buf); p++)
        buf[n++] = *p;
    if (write(2, buf, (size_t)n) < 0) {
        /* nowhere to report it */
    }
    errno = e;
}

/* Calls allowed without argument checks. */
static const char *const allow_plain[] = {
    /* event loops, timers, eventfds (workers, main loop, health checks) */
    "epoll_wait",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_ctl",
    "epoll_create1",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "timerfd_create",
    "timerfd_settime",
    "timerfd_gettime",
    "eventfd2",
    "pipe2",
    "read",
    "readv",
    "write",
    "writev",
    "pread64",
    "close",
    "close_range",
    "dup",
    "dup3",
    "fcntl",
    "lseek",
    /* the packet path and the control/attach/metrics sockets */
    "recvmmsg",
    "recvmsg",
    "recvfrom",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "sendfile",
    "connect",
    "bind",
    "listen",
    "accept",
    "accept4",
    "shutdown",
    "setsockopt",
    "getsockopt",
    "getsockname",
    "getpeername",
    "socketpair",
    /* memory, threads, clocks */
    "mmap",
    "munmap",
    "mremap",
    "mprotect",
    "madvise",
    "brk",
    "futex",
    "set_robust_list",
    "get_robust_list",
    "rseq",
    "sched_yield",
    "sched_getaffinity",
    "membarrier",
    "clock_gettime",
    "clock_getres",
    "clock_nanosleep",
    "nanosleep",
    "gettimeofday",
    "time",
    "getrandom",
    /* signals (signalfd reads are plain reads), exit */
    "rt_sigprocmask",
    "rt_sigreturn",
    "rt_sigaction",
    "sigaltstack",
    "restart_syscall",
    "exit",
    "exit_group",
    /* identity and process facts (logs, metrics, NSS during reload) */
    "getpid",
    "gettid",
    "getppid",
    "getuid",
    "geteuid",
    "getgid",
    "getegid",
    "getgroups",
    "getresuid",
    "getresgid",
    "uname",
    "sysinfo",
    "getrusage",
    "times",
    "getcwd",
    /* file metadata and directory reads (/proc for the foreign-socket
     * watch, config reload) */
    "fstat",
    "newfstatat",
    "stat",
    "lstat",
    "statx",
    "getdents64",
    "readlink",
    "readlinkat",
    "access",
    "faccessat",
    "faccessat2",
    "statfs",
    "fstatfs",
    /* removing our own control/attach socket files at exit */
    "unlink",
    "unlinkat",
    "umask",
};

static int add(scmp_filter_ctx ctx, const char *name, unsigned n, const struct scmp_arg_cmp *a)
{
    int nr = seccomp_syscall_resolve_name(name);
    int r;
    if (nr == __NR_SCMP_ERROR)
        return 0; /* not on this architecture */
    r = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, a);
    /* -EEXIST... none expected; an arch-specific alias resolving to the
     * same number as another entry is harmless */
    return r == -EEXIST ? 0 : r;
}

static int add_rules(scmp_filter_ctx ctx)
{
    int r = 0;
    for (size_t i = 0; i < sizeof(allow_plain) / sizeof(allow_plain[0]) && r == 0; i++)
        r = add(ctx, allow_plain[i], 0, NULL);
    if (r < 0)
        return r;

    /* socket(): UDP for upstreams and health checks, UNIX for sd_notify,
     * NSS and the control/attach sockets, netlink for sock_diag (the
     * foreign-socket watch) and route (if_nametoindex, getaddrinfo). Not:
     * raw, packet, TCP to the world. */
    {
        struct scmp_arg_cmp a[2];
        const int inet[] = {AF_INET, AF_INET6};
        for (int i = 0; i < 2 && r == 0; i++) {
            a[0] = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)inet[i]);
            a[1] = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xf, SOCK_DGRAM);
            r = add(ctx, "socket", 2, a);
        }
        if (r == 0) {
            a[0] = SCMP_A0(SCMP_CMP_EQ, AF_UNIX);
            r = add(ctx, "socket", 1, a);
        }
        if (r == 0) {
            a[0] = SCMP_A0(SCMP_CMP_EQ, AF_NETLINK);
            a[1] = SCMP_A2(SCMP_CMP_EQ, NETLINK_SOCK_DIAG);
            r = add(ctx, "socket", 2, a);
        }
        if (r == 0) {
            a[0] = SCMP_A0(SCMP_CMP_EQ, AF_NETLINK);
            a[1] = SCMP_A2(SCMP_CMP_EQ, NETLINK_ROUTE);
            r = add(ctx, "socket", 2, a);
        }
        if (r == 0 && kdp_on) {
            a[0] = SCMP_A0(SCMP_CMP_EQ, AF_NETLINK);
            a[1] = SCMP_A2(SCMP_CMP_EQ, NETLINK_NETFILTER);
            r = add(ctx, "socket", 2, a);
        }
    }
    /* bpf(): only reading and writing the reuseport program's maps
     * through descriptors udpmuxd already holds (steer/steer.c: a peer's
     * first and last flow, roaming hints, counters). Loading a program or
     * creating a map stays refused. */
    {
        const int cmds[] = {BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM, BPF_MAP_DELETE_ELEM};
        for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]) && r == 0; i++) {
            struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)cmds[i]);
            r = add(ctx, "bpf", 1, &a);
        }
    }
    /* open: read-only, never create or truncate */
    if (r == 0) {
        /* openat(dirfd, path, flags): the flags are argument 2, not 1 */
        struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, 0);
        r = add(ctx, "openat", 1, &a);
        if (r == 0) {
            a = SCMP_A1(SCMP_CMP_MASKED_EQ, O_ACCMODE | O_CREAT | O_TRUNC, 0);
            r = add(ctx, "open", 1, &a);
        }
    }
    /* clone: threads only (no fork, no new namespaces); clone3 passes its
     * flags in memory that seccomp cannot read, so it answers ENOSYS and
     * glibc falls back to clone */
    if (r == 0) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD);
        r = add(ctx, "clone", 1, &a);
    }
    if (r == 0) {
        int nr = seccomp_syscall_resolve_name("clone3");
        if (nr != __NR_SCMP_ERROR)
            r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
    }
    /* tgkill: only threads of this process (abort(), pthread_kill) */
    if (r == 0) {
        struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid());
        r = add(ctx, "tgkill", 1, &a);
    }
    /* prctl: thread names, glibc's VMA naming, capability reads */
    {
        const int ok[] = {PR_SET_NAME,     PR_GET_NAME,         PR_SET_VMA,
                          PR_CAPBSET_READ, PR_GET_NO_NEW_PRIVS, PR_GET_DUMPABLE};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) && r == 0; i++) {
            struct scmp_arg_cmp a = SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)ok[i]);
            r = add(ctx, "prctl", 1, &a);
        }
    }
    /* ioctl: non-blocking flag, queue size, isatty() from stdio */
    {
        const unsigned long ok[] = {FIONBIO, FIONREAD, TCGETS};
        for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]) && r == 0; i++) {
            struct scmp_arg_cmp a = SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)ok[i]);
            r = add(ctx, "ioctl", 1, &a);
        }
    }
    /* getrlimit only (prlimit64 with no new limit) */
    if (r == 0) {
        struct scmp_arg_cmp a = SCMP_A2(SCMP_CMP_EQ, 0);
        r = add(ctx, "prlimit64", 1, &a);
    }
#ifdef UMXD_ASAN
    /* LeakSanitizer stops the world at exit with a tracer process (clone
     * without CLONE_THREAD) that lists /proc/PID/task with the old getdents
     * and ptraces every thread: allow what it needs in sanitizer builds
     * only. A refused call kills the tracer (it blocks SIGSYS) while the
     * main thread waits for it in a sched_yield loop for ever. */
    if (r == 0) {
        const char *const lsan[] = {"ptrace",      "wait4",   "waitpid",          "kill",
                                    "prctl",       "clone",   "process_vm_readv", "sched_getparam",
                                    "getpriority", "getdents"};
        for (size_t i = 0; i < sizeof(lsan) / sizeof(lsan[0]) && r == 0; i++)
            r = add(ctx, lsan[i], 0, NULL);
    }
#endif
    return r;
}

int umxd_seccomp_install(enum umxd_seccomp_mode mode)
{
    scmp_filter_ctx ctx;
    uint32_t def = mode == UMXD_SECCOMP_KILL ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP;
    int r;
    if (mode == UMXD_SECCOMP_TRAP) {
        struct sigaction sa;
        memset(&sa, 0, sizeof(sa));
        sa.sa_sigaction = sigsys_handler;
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGSYS, &sa, NULL) < 0)
            return -errno;
    }
    ctx = seccomp_init(def);
    if (!ctx)
        return -ENOMEM;
    r = add_rules(ctx);
    /* every thread, atomically: the workers and libmicrohttpd's thread
     * already run; TSYNC fails (and we fail) if any thread cannot take it */
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
    if (r == 0)
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (r == 0)
        r = seccomp_load(ctx);
    seccomp_release(ctx);
    return r < 0 ? r : 0;
}

int umxd_harden(struct umxd *d)
{
    int r;
    const char *mode = getenv("UDPMUXD_SECCOMP"); /* "kill": stricter, for tests */
    caps_keep = 0;
    for (unsigned i = 0; i < d->cfg->nroutes; i++)
        if (d->cfg->routes[i].transparent)
            caps_keep = 1u << CAP_NET_ADMIN;
    /* the kernel datapath changes its table and conntrack entries on
     * reload, drain and exit: CAP_NET_ADMIN, only while it runs */
    kdp_on = d->kdp != NULL;
    if (kdp_on)
        caps_keep = 1u << CAP_NET_ADMIN;
    r = umxd_caps_drop_all();
    if (r < 0) {
        umxd_log(LOG_ERR, "cannot drop capabilities: %s", strerror(-r));
        return r;
    }
    if (!d->cfg->seccomp) {
        umxd_log(LOG_WARNING, "seccomp = no: running without a system call filter");
        return 0;
    }
    if (RUNNING_ON_VALGRIND) {
        /* valgrind runs every system call itself and does not emulate
         * seccomp: the filter cannot be installed there. A debugging run,
         * never production, so the daemon goes on without it. */
        umxd_log(LOG_WARNING, "running under valgrind: no seccomp filter");
        return 0;
    }
    r = umxd_seccomp_install(mode && strcmp(mode, "kill") == 0 ? UMXD_SECCOMP_KILL
                                                               : UMXD_SECCOMP_TRAP);
    if (r < 0) {
        umxd_log(LOG_ERR, "cannot install the seccomp filter: %s", strerror(-r));
        return r;
    }
    umxd_log(LOG_INFO, "hardened: %s, NoNewPrivs, seccomp allow-list (%s)",
             caps_keep ? (kdp_on ? "only CAP_NET_ADMIN (kernel datapath)"
                                 : "only CAP_NET_ADMIN (transparent routes)")
                       : "no capabilities",
             mode && strcmp(mode, "kill") == 0 ? "kill" : "EPERM and log");
    return 0;
}
