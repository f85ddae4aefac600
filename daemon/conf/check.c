/*
 * check.c - checks that need more than one key: a route once all its keys
 * are known (then its rule is compiled), and the whole file after the last
 * section (listeners, socket paths, backends that loop back to udpmuxd).
 */
#include <sys/socket.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "internal.h"

/* datapath = kernel: after the first datagram the flow never reaches
 * udpmuxd, so every option that needs udpmuxd on later datagrams, or its
 * own upstream sockets, is refused with the reason (daemon/kdp/). */
static void check_kernel(struct ctx *c, const struct umxd_route *r, const int *kl, const char *sec)
{
    int l = kl[R_DATAPATH];
    if (r->action != UMXD_FORWARD) {
        conf_errf(c, kl[R_ACTION] ? kl[R_ACTION] : l, sec, "datapath",
                  "datapath = kernel needs action = forward: action = %s is answered or delivered "
                  "by udpmuxd itself",
                  conf_action_names[r->action]);
        return;
    }
    if (r->proxy_v2)
        conf_errf(c, kl[R_PROXY], sec, "proxy-protocol",
                  "datapath = kernel: the kernel cannot put a PROXY header in front of datagrams");
    else if (r->classify_every)
        conf_errf(c, kl[R_CLASSIFY], sec, "classify",
                  "datapath = kernel: classify = every needs every datagram in udpmuxd; the "
                  "kernel carries a flow after its first datagram");
    else if (r->shared || !r->connected)
        conf_errf(c, kl[R_UPSTREAM], sec, "upstream",
                  "datapath = kernel: upstream = shared/unconnected are udpmuxd's own sockets; the "
                  "kernel NATs each flow to one backend address and port");
    else if (r->source.ss_family)
        conf_errf(c, kl[R_SOURCE], sec, "source",
                  "datapath = kernel: the kernel uses the host's address towards the backend "
                  "(masquerade) or the client's (transparent = yes), not a source prefix");
    if (c->ret < 0)
        return;
    for (unsigned b = 0; b < r->nbackends; b++) {
        const struct sockaddr_storage *a = &r->backends[b].addr;
        int lo = a->ss_family == AF_INET
                     ? (ntohl(((const struct sockaddr_in *)a)->sin_addr.s_addr) >> 24) == 127
                     : IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a)->sin6_addr);
        if (lo) {
            conf_errf(c, kl[R_FORWARD], sec, "forward",
                      "datapath = kernel: backend %s is a loopback address, which the kernel "
                      "does not route datagrams from other hosts to; use another address of "
                      "the host or the backend's",
                      r->backends[b].text);
            return;
        }
    }
}

/* Whole-route checks, run once every key of the route is known. Compiles
 * the rule last. */
void conf_finish_route(struct ctx *c, unsigned idx, const char *sec, int hdr_line)
{
    struct umxd_route *r = &c->cfg->routes[idx];
    const int *kl = c->rs[idx].key_line;
    char msg[256];
    int rc;

    if (!kl[R_MATCH])
        conf_errf(c, hdr_line, sec, "match", "missing: every route needs match = RULE");
    if (r->action == UMXD_FORWARD && r->nbackends == 0)
        conf_errf(c, hdr_line, sec, "forward",
                  "action = forward needs at least one backend (forward = ADDR:PORT)");
    if (r->action != UMXD_FORWARD && kl[R_FORWARD])
        conf_errf(c, kl[R_FORWARD], sec, "forward", "backends given but action = %s",
                  conf_action_names[r->action]);
    if (r->action == UMXD_ATTACH && r->nallow_uid + r->nallow_gid == 0)
        conf_errf(c, hdr_line, sec, "allow",
                  "action = attach needs at least one allow = user:NAME|group:NAME|uid:N|gid:N");
    for (unsigned k = 0; k < R_COUNT; k++) {
        if (k == R_FORWARD || !kl[k] || (conf_rkeys[k].actions & (1u << r->action)))
            continue;
        conf_errf(c, kl[k], sec, conf_rkeys[k].name, "has no effect with action = %s",
                  conf_action_names[r->action]);
    }
    if (r->health != UMXD_HEALTH_PAYLOAD) {
        if (kl[R_HEALTH_SEND])
            conf_errf(c, kl[R_HEALTH_SEND], sec, "health-send", "only valid with health = payload");
        if (kl[R_HEALTH_EXPECT])
            conf_errf(c, kl[R_HEALTH_EXPECT], sec, "health-expect",
                      "only valid with health = payload");
    } else if (!r->health_send_len) {
        conf_errf(c, kl[R_HEALTH], sec, "health", "health = payload needs health-send = HEX");
    }
    if (r->shared && r->action == UMXD_FORWARD) {
        /* one socket per worker for every flow of the route: flows differ
         * by their source address, so they need a prefix of local addresses
         * of the backends' family, and the client's own address
         * (transparent) cannot be one of them */
        if (!r->source.ss_family)
            conf_errf(
                c, kl[R_UPSTREAM], sec, "upstream",
                "upstream = shared needs source = PREFIX (local addresses, e.g. 127.77.0.0/16)");
        else if (r->source_bits + 2 > (r->source.ss_family == AF_INET ? 32u : 128u))
            conf_errf(c, kl[R_SOURCE], sec, "source",
                      "upstream = shared needs a prefix with at least 2 host bits");
        if (r->transparent)
            conf_errf(c, kl[R_TRANSPARENT], sec, "transparent",
                      "transparent = yes cannot be combined with upstream = shared");
        for (unsigned b = 0; b < r->nbackends && r->source.ss_family; b++)
            if (r->backends[b].addr.ss_family != r->source.ss_family) {
                conf_errf(
                    c, kl[R_FORWARD], sec, "forward",
                    "upstream = shared: backend %u is not of the source prefix's address family",
                    b + 1);
                break;
            }
    }
    if (r->kernel)
        check_kernel(c, r, kl, sec);
    if (r->action == UMXD_FORWARD) {
        /* QUIC-LB: every server id has the route's length; ids without
         * quic-lb, or quic-lb without ids, would silently do nothing */
        unsigned nsid = 0;
        for (unsigned b = 0; b < r->nbackends; b++) {
            const struct umxd_backend *be = &r->backends[b];
            if (!be->sid_len)
                continue;
            nsid++;
            if (!r->qlb.on)
                conf_errf(c, c->rs[idx].backend_line[b], sec, "forward",
                          "backend %s has a server-id but the route has no quic-lb = ...",
                          be->text);
            else if (be->sid_len != r->qlb.sid_len)
                conf_errf(c, c->rs[idx].backend_line[b], sec, "forward",
                          "backend %s: server-id is %u bytes, quic-lb says server-id-length=%u",
                          be->text, be->sid_len, r->qlb.sid_len);
        }
        if (r->qlb.on && !nsid)
            conf_errf(c, kl[R_QUIC_LB], sec, "quic-lb",
                      "no backend has a server-id (forward = ADDR:PORT server-id=HEX)");
    }
    if (r->health_timeout_ns > r->health_interval_ns) {
        int l = kl[R_HEALTH_TIMEOUT] ? kl[R_HEALTH_TIMEOUT] : kl[R_HEALTH_INTERVAL];
        conf_errf(c, l, sec, kl[R_HEALTH_TIMEOUT] ? "health-timeout" : "health-interval",
                  "health-timeout must not exceed health-interval");
    }
    if (!kl[R_MATCH])
        return;
    msg[0] = '\0';
    rc = udpmux_rule_compile(&r->rule, r->match, msg, sizeof(msg));
    if (rc < 0) {
        r->rule = NULL;
        conf_errf(c, kl[R_MATCH], sec, "match", "bad rule: %s", msg[0] ? msg : udpmux_strerror(rc));
        if (rc == -ENOMEM && c->err_line == kl[R_MATCH])
            c->ret = -ENOMEM;
    }
}

/* Whether a socket bound to this address would be on this host: loopback
 * and the wildcard are, any other address is asked of the kernel (bind()
 * to port 0 succeeds for a local address, including an AnyIP route's,
 * and fails with EADDRNOTAVAIL otherwise). */
static bool is_local_addr(const struct sockaddr_storage *ss)
{
    struct sockaddr_storage a;
    socklen_t len;
    int fd, rc;
    memcpy(&a, ss, sizeof(a));
    if (a.ss_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, &a, sizeof(s4));
        if ((ntohl(s4.sin_addr.s_addr) >> 24) == 127 || s4.sin_addr.s_addr == INADDR_ANY)
            return true;
        s4.sin_port = 0;
        memcpy(&a, &s4, sizeof(s4));
        len = sizeof(s4);
    } else {
        struct sockaddr_in6 s6;
        memcpy(&s6, &a, sizeof(s6));
        if (IN6_IS_ADDR_LOOPBACK(&s6.sin6_addr) || IN6_IS_ADDR_UNSPECIFIED(&s6.sin6_addr))
            return true;
        s6.sin6_port = 0;
        memcpy(&a, &s6, sizeof(s6));
        len = sizeof(s6);
    }
    fd = socket(a.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false; /* cannot tell */
    rc = bind(fd, (const struct sockaddr *)&a, len) == 0 ? 0 : errno;
    close(fd);
    return rc != EADDRNOTAVAIL;
}

/* Whether datagrams sent to backend b would arrive on listener l: the
 * same address and port, or the same port on a wildcard listener (an
 * IPv6 one with dual-stack takes IPv4 too) and an address of this host. */
static bool loops_back(const struct sockaddr_storage *l, int dual_stack,
                       const struct sockaddr_storage *b)
{
    struct sockaddr_in l4, b4;
    struct sockaddr_in6 l6, b6;
    bool wild;
    if (b->ss_family == AF_INET) {
        memcpy(&b4, b, sizeof(b4));
        if (l->ss_family == AF_INET) {
            memcpy(&l4, l, sizeof(l4));
            if (l4.sin_port != b4.sin_port)
                return false;
            if (l4.sin_addr.s_addr == b4.sin_addr.s_addr)
                return true;
            wild = l4.sin_addr.s_addr == INADDR_ANY;
        } else {
            memcpy(&l6, l, sizeof(l6));
            if (l6.sin6_port != b4.sin_port)
                return false;
            wild = dual_stack && IN6_IS_ADDR_UNSPECIFIED(&l6.sin6_addr);
        }
        return wild && is_local_addr(b);
    }
    if (l->ss_family != AF_INET6)
        return false;
    memcpy(&b6, b, sizeof(b6));
    memcpy(&l6, l, sizeof(l6));
    if (l6.sin6_port != b6.sin6_port)
        return false;
    if (IN6_ARE_ADDR_EQUAL(&l6.sin6_addr, &b6.sin6_addr))
        return true;
    return IN6_IS_ADDR_UNSPECIFIED(&l6.sin6_addr) && is_local_addr(b);
}

void conf_check_loops(struct ctx *c);

/* upstream = shared sends from addresses of the `source` prefix: they must
 * be local, or the backends' replies never come back. IPv4 can be asked
 * directly (bind() accepts a local address, including an AnyIP route's,
 * and refuses others); IPv6 bind() refuses AnyIP addresses too, so IPv6
 * prefixes are not checked here (udpmux.conf(5)). */
static void check_sources(struct ctx *c)
{
    const struct umxd_config *cfg = c->cfg;
    for (unsigned i = 0; i < cfg->nroutes && !c->ret; i++) {
        const struct umxd_route *r = &cfg->routes[i];
        struct sockaddr_in a;
        char txt[INET_ADDRSTRLEN], sec[UMXD_NAME_MAX + 16];
        int fd, rc;
        if (!r->shared || r->action != UMXD_FORWARD || r->source.ss_family != AF_INET)
            continue;
        memcpy(&a, &r->source, sizeof(a));
        /* the prefix's first host address */
        a.sin_addr.s_addr = htonl(
            (ntohl(a.sin_addr.s_addr) & (r->source_bits ? ~0u << (32 - r->source_bits) : 0)) | 1u);
        a.sin_port = 0;
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue; /* cannot tell; the counters will */
        rc = bind(fd, (const struct sockaddr *)&a, sizeof(a)) < 0 ? errno : 0;
        close(fd);
        if (rc != EADDRNOTAVAIL)
            continue;
        inet_ntop(AF_INET, &a.sin_addr, txt, sizeof(txt));
        snprintf(sec, sizeof(sec), "[route %s]", r->name);
        conf_errf(c, c->rs[i].key_line[R_SOURCE] ? c->rs[i].key_line[R_SOURCE] : r->line, sec,
                  "source",
                  "%s is not a local address, so backends' replies to it would never reach "
                  "udpmuxd (use 127.0.0.0/8 for backends on loopback, or `ip route add local "
                  "PREFIX dev lo`)",
                  txt);
    }
}

/* Whole-config checks after the last section. */
void conf_finish_config(struct ctx *c)
{
    struct umxd_config *cfg = c->cfg;
    int cl = c->gkey_line[G_CONTROL], al = c->gkey_line[G_ATTACH];

    /* No [listen] section at all: the sockets come from systemd
     * (udpmuxd.socket), and start-up refuses to run without them. A
     * [listen] section without an address is a mistake, not that. */
    if (!cfg->nlisten && c->listen_hdr_line) {
        conf_errf(c, c->listen_hdr_line, "[listen]", "address",
                  "no listen address (address = ADDR:PORT)");
        return;
    }
    if (!cfg->nroutes) {
        conf_errf(c, 1, "[route]", NULL, "no routes: every datagram would be dropped");
        return;
    }
    if (cfg->dual_stack) {
        /* A dual-stack [::]:P socket takes IPv4 port P too: binding
         * 0.0.0.0:P (or any IPv4 P) as well would fail with EADDRINUSE. */
        for (unsigned i = 0; i < cfg->nlisten; i++) {
            const struct sockaddr_in6 *s6 = (const void *)&cfg->listen[i];
            if (s6->sin6_family != AF_INET6 || !IN6_IS_ADDR_UNSPECIFIED(&s6->sin6_addr))
                continue;
            for (unsigned j = 0; j < cfg->nlisten; j++) {
                const struct sockaddr_in *s4 = (const void *)&cfg->listen[j];
                if (s4->sin_family == AF_INET && s4->sin_port == s6->sin6_port &&
                    s4->sin_port != 0) {
                    conf_errf(c, c->lkey_line[L_DUAL_STACK], "[listen]", "dual-stack",
                              "%s already receives IPv4 for %s; drop one of them",
                              cfg->listen_text[i], cfg->listen_text[j]);
                    return;
                }
            }
        }
    }
    /* The queue's verdicts and the table need CAP_NET_ADMIN for the whole
     * run, and changing user clears every capability. */
    if (cfg->user[0] && c->gkey_line[G_USER])
        for (unsigned i = 0; i < cfg->nroutes; i++)
            if (cfg->routes[i].kernel) {
                conf_errf(c, c->gkey_line[G_USER], "[udpmux]", "user",
                          "route %s has datapath = kernel, which needs CAP_NET_ADMIN while "
                          "udpmuxd runs (queue verdicts, its table); changing user drops it: "
                          "leave user = unset (udpmuxd keeps only CAP_NET_ADMIN)",
                          cfg->routes[i].name);
                return;
            }
    /* One UNIX socket path for two sockets: the second bind would unlink
     * the first one's socket, and clients of one would talk to the other. */
    if (cfg->control[0] && !strcmp(cfg->control, cfg->attach)) {
        bool ctl_last = cl > al;
        conf_errf(c, ctl_last ? cl : al, "[udpmux]", ctl_last ? "control" : "attach",
                  "same path as %s = %.100s: the control and attach sockets need a path each",
                  ctl_last ? "attach" : "control", cfg->control);
        return;
    }
    if (cfg->path[0] && (!strcmp(cfg->control, cfg->path) || !strcmp(cfg->attach, cfg->path))) {
        bool ctl = !strcmp(cfg->control, cfg->path);
        conf_errf(c, ctl ? cl : al, "[udpmux]", ctl ? "control" : "attach",
                  "is this configuration file: binding the socket would replace it");
        return;
    }
    conf_check_loops(c);
    check_sources(c);
}

/* A backend that is one of our own listeners: every datagram would come
 * back, be classified again and forwarded again (one datagram became 2048
 * forwards and 2048 flows before the flow table filled). In quick mode the
 * route's "line" is its -r argument. */
void conf_check_loops(struct ctx *c)
{
    const struct umxd_config *cfg = c->cfg;
    for (unsigned r = 0; r < cfg->nroutes; r++) {
        const struct umxd_route *rt = &cfg->routes[r];
        if (rt->action != UMXD_FORWARD)
            continue;
        for (unsigned b = 0; b < rt->nbackends; b++)
            for (unsigned i = 0; i < cfg->nlisten; i++) {
                char sec[UMXD_NAME_MAX + 16];
                if (!loops_back(&cfg->listen[i], cfg->dual_stack, &rt->backends[b].addr))
                    continue;
                snprintf(sec, sizeof(sec), "[route %s]", rt->name);
                conf_errf(
                    c, c->quick_args ? (int)r + 1 : c->rs[r].backend_line[b],
                    c->quick_args ? NULL : sec, c->quick_args ? NULL : "forward",
                    "%s is udpmuxd's own listen address %s: every datagram would be forwarded "
                    "back to udpmuxd",
                    rt->backends[b].text, cfg->listen_text[i]);
                return;
            }
    }
}
