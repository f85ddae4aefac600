/*
 * print.c - `udpmuxd -T`: the resolved config, every default explicit, in
 * the dialect the loader reads back.
 */
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

static void print_duration(FILE *out, const char *key, uint64_t ns)
{
    static const struct {
        const char *unit;
        uint64_t ns;
    } units[] = {{"d", 86400 * NS_PER_S},
                 {"h", 3600 * NS_PER_S},
                 {"m", 60 * NS_PER_S},
                 {"s", NS_PER_S},
                 {"ms", NS_PER_MS}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ns && ns % units[i].ns == 0) {
            fprintf(out, "%s = %" PRIu64 "%s\n", key, ns / units[i].ns, units[i].unit);
            return;
        }
    }
    /* Not representable in the input syntax (only set by code): round up
     * to whole milliseconds. */
    fprintf(out, "%s = %" PRIu64 "ms\n", key, (ns + NS_PER_MS - 1) / NS_PER_MS);
}

static void print_size(FILE *out, const char *key, int v)
{
    if (v && v % (1024 * 1024) == 0)
        fprintf(out, "%s = %dM\n", key, v / (1024 * 1024));
    else if (v && v % 1024 == 0)
        fprintf(out, "%s = %dK\n", key, v / 1024);
    else
        fprintf(out, "%s = %d\n", key, v);
}

static void print_hex(FILE *out, const char *key, const uint8_t *b, size_t n)
{
    fprintf(out, "%s = ", key);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%02x", b[i]);
    fputc('\n', out);
}

static const char *yesno(int v)
{
    return v ? "yes" : "no";
}

static const char *level_name(int level)
{
    switch (level) {
    case LOG_ERR:
        return "err";
    case LOG_WARNING:
        return "warning";
    case LOG_NOTICE:
        return "notice";
    case LOG_DEBUG:
        return "debug";
    default:
        return "info";
    }
}

void umxd_config_print(const struct umxd_config *cfg, FILE *out)
{
    fprintf(out, "# udpmuxd resolved configuration%s%s\n", cfg->path[0] ? " of " : "", cfg->path);
    /* no [listen] at all when the sockets come from systemd: an empty
     * section would not load back */
    if (cfg->nlisten) {
        fprintf(out, "[listen]\n");
        for (unsigned i = 0; i < cfg->nlisten; i++)
            fprintf(out, "address = %s\n", cfg->listen_text[i]);
        fprintf(out, "dual-stack = %s\n", yesno(cfg->dual_stack));
    }

    fprintf(out, "\n[udpmux]\n");
    fprintf(out, "user =%s%s\n", cfg->user[0] ? " " : "", cfg->user);
    fprintf(out, "group =%s%s\n", cfg->group[0] ? " " : "", cfg->group);
    if (cfg->workers)
        fprintf(out, "workers = %u\n", cfg->workers);
    else
        fprintf(out, "workers = auto\n");
    fprintf(out, "control = %s\n", cfg->control);
    fprintf(out, "attach = %s\n", cfg->attach);
    fprintf(out, "metrics = %s\n", cfg->metrics[0] ? cfg->metrics : "off");
    fprintf(out, "max-flows = %" PRIu32 "\n", cfg->max_flows);
    if (cfg->max_flows_per_prefix == UINT32_MAX)
        fprintf(out, "max-flows-per-prefix = auto\n");
    else
        fprintf(out, "max-flows-per-prefix = %" PRIu32 "\n", cfg->max_flows_per_prefix);
    if (cfg->has_fleet_key) {
        fprintf(out, "fleet-key = ");
        for (size_t i = 0; i < sizeof(cfg->fleet_key); i++)
            fprintf(out, "%02x", cfg->fleet_key[i]);
        fprintf(out, "\n");
    }
    print_size(out, "rcvbuf", cfg->rcvbuf);
    print_size(out, "sndbuf", cfg->sndbuf);
    fprintf(out, "batch = %u\n", cfg->batch);
    fprintf(out, "gso = %s\n", yesno(cfg->gso));
    fprintf(out, "busy-poll = %u\n", cfg->busy_poll_us);
    fprintf(out, "new-flow-rate = %" PRIu32 "\n", cfg->rate_new_flows);
    fprintf(out, "new-flow-burst = %" PRIu32 "\n", cfg->rate_burst);
    fprintf(out, "response-rate = %" PRIu32 "\n", cfg->rate_responses);
    fprintf(out, "seccomp = %s\n", yesno(cfg->seccomp));
    fprintf(out, "log-level = %s\n", level_name(cfg->log_level));

    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct umxd_route *r = &cfg->routes[i];
        bool fwd = r->action == UMXD_FORWARD, att = r->action == UMXD_ATTACH;

        fprintf(out, "\n[route %s]\n", r->name);
        fprintf(out, "match = %s\n", r->match);
        fprintf(out, "action = %s\n", conf_action_names[r->action]);
        for (unsigned b = 0; b < r->nbackends; b++) {
            fprintf(out, "forward = %s", r->backends[b].text);
            if (r->backends[b].sid_len) {
                fprintf(out, " server-id=");
                for (unsigned k = 0; k < r->backends[b].sid_len; k++)
                    fprintf(out, "%02x", r->backends[b].sid[k]);
            }
            fprintf(out, "\n");
        }
        if (r->qlb.on) {
            fprintf(out, "quic-lb = config-id=%u server-id-length=%u nonce-length=%u",
                    r->qlb.config_id, r->qlb.sid_len, r->qlb.nonce_len);
            if (r->qlb.has_key) {
                fprintf(out, " key=");
                for (size_t k = 0; k < sizeof(r->qlb.key); k++)
                    fprintf(out, "%02x", r->qlb.key[k]);
            }
            fprintf(out, "\n");
        }
        if (r->action == UMXD_STUN)
            fprintf(out, "reply-size = %s\n", r->stun_minimal ? "minimal" : "request");
        if (!fwd && !att)
            continue;
        print_duration(out, "idle-timeout", r->idle_timeout_ns);
        print_duration(out, "unanswered-timeout", r->unanswered_timeout_ns);
        fprintf(out, "classify = %s\n", r->classify_every ? "every" : "first");
        fprintf(out, "roaming = %s\n", yesno(r->roaming));
        fprintf(out, "max-flows = %" PRIu32 "\n", r->max_flows);
        if (att) {
            for (unsigned a = 0; a < r->nallow_uid; a++)
                fprintf(out, "allow = uid:%" PRIu32 "\n", r->allow_uid[a]);
            for (unsigned a = 0; a < r->nallow_gid; a++)
                fprintf(out, "allow = gid:%" PRIu32 "\n", r->allow_gid[a]);
            fprintf(out, "share = %s\n", conf_share_names[r->share]);
            continue;
        }
        fprintf(out, "upstream = %s\n",
                r->shared      ? "shared"
                : r->connected ? "connected"
                               : "unconnected");
        fprintf(out, "proxy-protocol = %s\n", r->proxy_v2 ? "v2" : "none");
        fprintf(out, "transparent = %s\n", yesno(r->transparent));
        fprintf(out, "datapath = %s\n", r->kernel ? "kernel" : "user");
        if (r->source.ss_family) {
            char a[INET6_ADDRSTRLEN] = "";
            if (r->source.ss_family == AF_INET)
                inet_ntop(AF_INET,
                          &((const struct sockaddr_in *)(const void *)&r->source)->sin_addr, a,
                          sizeof(a));
            else
                inet_ntop(AF_INET6,
                          &((const struct sockaddr_in6 *)(const void *)&r->source)->sin6_addr, a,
                          sizeof(a));
            fprintf(out, "source = %s/%u\n", a, r->source_bits);
        }
        fprintf(out, "health = %s\n", conf_health_names[r->health]);
        if (r->health == UMXD_HEALTH_PAYLOAD) {
            print_hex(out, "health-send", r->health_send, r->health_send_len);
            if (r->health_expect_len)
                print_hex(out, "health-expect", r->health_expect, r->health_expect_len);
        }
        print_duration(out, "health-interval", r->health_interval_ns);
        print_duration(out, "health-timeout", r->health_timeout_ns);
        fprintf(out, "health-fall = %u\n", r->health_fall);
        fprintf(out, "health-rise = %u\n", r->health_rise);
        print_duration(out, "down-time", r->down_time_ns);
    }
}
