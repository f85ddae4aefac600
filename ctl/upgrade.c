/*
 * upgrade.c - `udpmuxctl upgrade [-c CONFIG] [-d UDPMUXD]` (upgrade.h).
 *
 * Runs `udpmuxd --upgrade` in its own session, with this command's stderr
 * as its log, and waits for its verdict on a pipe (--ready-fd): "ok PID"
 * once it serves and the old process is leaving, or the pipe closing
 * when it gave up (its reason, with file:line for a bad configuration, is
 * on stderr; the running daemon keeps serving). The new daemon finds the
 * running one through the control socket its configuration names; the
 * running one hands over only to root (SO_PEERCRED), so this command is
 * for root (or an ExecReload= line).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "upgrade.h"

#ifndef UMXCTL_DAEMON
#define UMXCTL_DAEMON "/usr/sbin/udpmuxd"
#endif
#define UPGRADE_WAIT_MS 60000

static void child(const char *daemon, const char *conf, int wfd)
{
    char fdarg[16];
    const char *args[8];
    int n = 0, nul;
    snprintf(fdarg, sizeof(fdarg), "%d", wfd);
    args[n++] = daemon;
    args[n++] = "--upgrade";
    args[n++] = "--ready-fd";
    args[n++] = fdarg;
    if (conf) {
        args[n++] = "-c";
        args[n++] = conf;
    }
    args[n] = NULL;
    /* its own session: a terminal hang-up or the end of this command (an
     * ExecReload= line) does not reach the new daemon */
    setsid();
    nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (nul >= 0)
        dup2(nul, 0);
    execv(daemon, (char *const *)(void *)args);
    fprintf(stderr, "udpmuxctl: cannot run %s: %s\n", daemon, strerror(errno));
    _exit(127);
}

int ctl_upgrade_main(int argc, char **argv)
{
    const char *conf = NULL, *daemon = UMXCTL_DAEMON;
    char buf[64];
    size_t got = 0;
    int p[2], opt, status;
    pid_t pid;
    optind = 1;
    while ((opt = getopt(argc, argv, "+c:d:")) != -1) {
        if (opt == 'c') {
            conf = optarg;
        } else if (opt == 'd') {
            daemon = optarg;
        } else {
            fprintf(stderr, "udpmuxctl: upgrade [-c CONFIG] [-d UDPMUXD]\n");
            return EX_USAGE_;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "udpmuxctl: upgrade: unexpected argument '%s'\n", argv[optind]);
        return EX_USAGE_;
    }
    if (pipe2(p, O_CLOEXEC) < 0) {
        perror("udpmuxctl: pipe");
        return EX_SOFTWARE_;
    }
    fflush(NULL);
    pid = fork();
    if (pid < 0) {
        perror("udpmuxctl: fork");
        return EX_SOFTWARE_;
    }
    if (pid == 0) {
        close(p[0]);
        /* the write end must survive exec */
        fcntl(p[1], F_SETFD, 0);
        child(daemon, conf, p[1]);
    }
    close(p[1]);
    for (;;) {
        struct pollfd pf = {p[0], POLLIN, 0};
        ssize_t n;
        int r = poll(&pf, 1, UPGRADE_WAIT_MS);
        if (r == 0) {
            fprintf(stderr,
                    "udpmuxctl: upgrade: no answer from the new udpmuxd (pid %d) within %d s\n",
                    (int)pid, UPGRADE_WAIT_MS / 1000);
            return EX_UNAVAILABLE_;
        }
        if (r < 0 && errno == EINTR)
            continue;
        n = read(p[0], buf + got, sizeof(buf) - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
        if (got >= sizeof(buf) - 1 || memchr(buf, '\n', got))
            break;
    }
    buf[got] = '\0';
    if (strncmp(buf, "ok ", 3) == 0) {
        printf("upgrade done: udpmuxd runs as pid %ld\n", strtol(buf + 3, NULL, 10));
        return EX_OK_;
    }
    /* it gave up: its reason is on stderr already */
    if (waitpid(pid, &status, 0) == pid && WIFEXITED(status))
        fprintf(stderr,
                "udpmuxctl: upgrade failed (the new udpmuxd exited with status %d); a running "
                "udpmuxd was left as it was\n",
                WEXITSTATUS(status));
    else
        fprintf(stderr, "udpmuxctl: upgrade failed; a running udpmuxd was left as it was\n");
    return EX_CMDERR_;
}
