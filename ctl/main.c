/*
 * udpmuxctl - the operator's tool: talks to udpmuxd over its control socket
 * (protocol in proto/ctlproto.h) and prints status, counters, routes and
 * flows as text or JSON (-j); `top` is a live view refreshed every second.
 *
 * Exit status (sysexits): 0 ok, 1 the daemon refused the command (its
 * message is printed), 64 usage, 69 daemon unreachable (no socket, refused,
 * timed out, hung up mid-answer), 70 a malformed answer.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"
#include "client.h"
#include "fmt.h"
#include "top.h"
#include "upgrade.h"

/* One request on its own connection; prints a refusal. */
static int call_once(const struct umx_ctl_req *req, struct answer *a)
{
    struct conn c;
    int r;
    memset(a, 0, sizeof(*a));
    r = conn_open(&c);
    if (r < 0)
        return EX_UNAVAILABLE_;
    r = conn_call(&c, req, a);
    conn_close(&c);
    if (r < 0)
        return transport_exit(r);
    return answer_error(a) ? EX_CMDERR_ : EX_OK_;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: udpmuxctl [-s SOCKET] [-j] [-T SECONDS] COMMAND [ARGS]\n"
            "  -s, --socket SOCKET    control socket (default " CTL_DEFAULT_SOCKET ")\n"
            "  -j, --json             JSON output\n"
            "  -T, --timeout SECONDS  give up on an answer after this long (default 10)\n"
            "  -h, --help             this text\n"
            "  -V, --version          udpmuxctl's version and control protocol\n"
            "commands:\n"
            "  status                    version, uptime, listeners, workers, config\n"
            "  stats                     every counter, name=value\n"
            "  routes                    routes, backends and their health, traffic, drops\n"
            "  flows [-r ROUTE] [-p PEER] [-n LIMIT]\n"
            "                            active flows (default limit %d, at most %d)\n"
            "  reload                    reload the configuration file\n"
            "  drain ROUTE|BACKEND|ROUTE/BACKEND\n"
            "                            no new flows there; existing flows finish\n"
            "  undrain ROUTE|BACKEND|ROUTE/BACKEND\n"
            "                            accept new flows again\n"
            "  top [-n COUNT]            live view, refreshed every second (q quits)\n"
            "  classify ...              classify datagrams from a capture (see udpmuxctl(8))\n"
            "  upgrade [-c CONFIG] [-d UDPMUXD]\n"
            "                            start a new udpmuxd that takes over the running one's\n"
            "                            sockets and flows without losing datagrams (root)\n"
            "exit status: 0 ok, 1 refused by udpmuxd, 64 usage, 69 udpmuxd unreachable\n",
            UMX_CTL_FLOWS_DEFAULT, UMX_CTL_FLOWS_MAX);
}

static int parse_count(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi || s[0] == '-')
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

static int copy_arg(char *dst, size_t cap, const char *src)
{
    size_t l = strlen(src);
    if (l == 0 || l >= cap)
        return -EINVAL;
    memcpy(dst, src, l + 1);
    return 0;
}

int main(int argc, char **argv)
{
    struct umx_ctl_req req;
    struct answer a;
    const char *cmd;
    int opt, rc;
    unsigned secs;
    const char *env = getenv("UDPMUX_CONTROL");
    if (env && *env)
        ctl_sock = env;
    static const struct option longopts[] = {
        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 'T'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    /* options stop at the command: its own options follow it */
    while ((opt = getopt_long(argc, argv, "+s:jT:hV", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            ctl_sock = optarg;
            break;
        case 'j':
            ctl_json = 1;
            break;
        case 'T':
            if (parse_count(optarg, 1, 3600, &secs) < 0) {
                fprintf(stderr, "udpmuxctl: -T takes 1..3600 seconds\n");
                return EX_USAGE_;
            }
            ctl_timeout_ms = (int)secs * 1000;
            break;
        case 'h':
            usage(stdout);
            return EX_OK_;
        case 'V':
            printf("udpmuxctl %s (control protocol %d)\n", UDPMUXCTL_VERSION,
                   UMX_CTL_PROTO_VERSION);
            return EX_OK_;
        default:
            usage(stderr);
            return EX_USAGE_;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return EX_USAGE_;
    }
    cmd = argv[optind];
    if (strcmp(cmd, "classify") == 0)
        return ctl_classify_main(argc - optind, argv + optind);
    if (strcmp(cmd, "upgrade") == 0)
        return ctl_upgrade_main(argc - optind, argv + optind);
    memset(&req, 0, sizeof(req));
    for (int i = 1; i < UMX_CTL_CMD_COUNT; i++)
        if (strcmp(cmd, umx_ctl_cmd_name((enum umx_ctl_cmd)i)) == 0)
            req.cmd = (enum umx_ctl_cmd)i;
    if (strcmp(cmd, "top") == 0) {
        unsigned n = 0;
        optind++;
        while ((opt = getopt(argc, argv, "+n:")) != -1) {
            if (opt != 'n' || parse_count(optarg, 1, 1000000, &n) < 0) {
                fprintf(stderr, "udpmuxctl: top [-n COUNT]\n");
                return EX_USAGE_;
            }
        }
        if (optind != argc) {
            usage(stderr);
            return EX_USAGE_;
        }
        return cmd_top(n);
    }
    if (req.cmd == UMX_CTL_NONE) {
        fprintf(stderr, "udpmuxctl: unknown command '%s'\n", cmd);
        usage(stderr);
        return EX_USAGE_;
    }
    optind++;
    if (req.cmd == UMX_CTL_FLOWS) {
        req.limit = UMX_CTL_FLOWS_DEFAULT;
        while ((opt = getopt(argc, argv, "+r:p:n:")) != -1) {
            int bad = 0;
            if (opt == 'r')
                bad = copy_arg(req.route, sizeof(req.route), optarg);
            else if (opt == 'p')
                bad = copy_arg(req.peer, sizeof(req.peer), optarg);
            else if (opt == 'n')
                bad = parse_count(optarg, 1, UMX_CTL_FLOWS_MAX, &req.limit);
            else
                bad = -1;
            if (bad) {
                fprintf(stderr, "udpmuxctl: flows [-r ROUTE] [-p PEER] [-n 1..%d]\n",
                        UMX_CTL_FLOWS_MAX);
                return EX_USAGE_;
            }
        }
    } else if (req.cmd == UMX_CTL_DRAIN || req.cmd == UMX_CTL_UNDRAIN) {
        if (optind >= argc || copy_arg(req.target, sizeof(req.target), argv[optind]) < 0 ||
            strchr(req.target, '=')) {
            fprintf(stderr, "udpmuxctl: %s ROUTE|BACKEND|ROUTE/BACKEND\n", cmd);
            return EX_USAGE_;
        }
        optind++;
    }
    if (optind != argc) {
        fprintf(stderr, "udpmuxctl: %s: unexpected argument '%s'\n", cmd, argv[optind]);
        return EX_USAGE_;
    }
    rc = call_once(&req, &a);
    if (rc != EX_OK_) {
        answer_free(&a);
        return rc;
    }
    switch (req.cmd) {
    case UMX_CTL_STATUS:
        rc = print_status(&a);
        break;
    case UMX_CTL_STATS:
        rc = print_stats(&a);
        break;
    case UMX_CTL_ROUTES:
        rc = print_routes(&a);
        break;
    case UMX_CTL_FLOWS:
        rc = print_flows(&a);
        break;
    case UMX_CTL_RELOAD:
        rc = print_simple(&a, "reload");
        break;
    default:
        rc = print_simple(&a, NULL);
        break;
    }
    answer_free(&a);
    if (fflush(stdout) != 0)
        return EX_SOFTWARE_;
    return rc;
}
