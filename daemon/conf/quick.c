/*
 * quick.c - quick mode: `-l ADDR` and `-r RULE=BACKEND` build a config
 * without a file; errors name the argument instead of FILE:LINE.
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

static bool quick_right_ok(const char *right, struct umxd_route *scratch)
{
    if (!strcmp(right, "echo") || !strcmp(right, "stun") || !strcmp(right, "drop"))
        return true;
    conf_route_defaults(scratch);
    char msg[MSG_LEN];
    return *right && !conf_for_each_item(right, conf_backend_item, scratch, msg);
}

static bool is_word(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
            return false;
    }
    return true;
}

static void quick_route(struct ctx *c, unsigned i, const char *spec)
{
    struct umxd_config *cfg = c->cfg;
    struct umxd_route *r, *scratch;
    char left[UMXD_RULE_MAX + 2], msg[MSG_LEN];
    const char *split = NULL, *m;
    size_t llen;
    int line = (int)i + 1;

    scratch = malloc(sizeof(*scratch));
    if (!scratch) {
        c->ret = -ENOMEM;
        c->err_line = line;
        if (c->err && c->errlen)
            snprintf(c->err, c->errlen, "out of memory");
        return;
    }
    /* The last '=' whose right side is a backend list or a built-in
     * action: rules may contain '=' (sni=..., pubkey=...), backends never. */
    for (const char *p = spec + strlen(spec); p > spec;) {
        p--;
        if (*p == '=' && quick_right_ok(p + 1, scratch)) {
            split = p;
            break;
        }
    }
    free(scratch);
    if (!split) {
        const char *eq = strrchr(spec, '=');
        if (!eq)
            conf_errf(c, line, NULL, NULL,
                      "expected NAME=ADDR:PORT[,ADDR:PORT...] or NAME=echo|stun|drop");
        else
            conf_errf(
                c, line, NULL, NULL,
                "bad right side '%.80s' (expected ADDR:PORT[,ADDR:PORT...], echo, stun or drop)",
                eq + 1);
        return;
    }
    if (!conf_copy_trimmed(spec, split, left, sizeof(left))) {
        conf_errf(c, line, NULL, NULL, "rule too long");
        return;
    }
    llen = strlen(left);
    if (llen >= 2 && (left[0] == '"' || left[0] == '\'') && left[llen - 1] == left[0]) {
        /* Inside "...", \" stands for a quote (rules quote regexes);
         * every other backslash is kept for the rule parser. */
        char q = left[0];
        size_t o = 0;
        for (size_t k = 1; k < llen - 1; k++) {
            if (q == '"' && left[k] == '\\' && left[k + 1] == '"' && k + 1 < llen - 1)
                k++;
            left[o++] = left[k];
        }
        left[o] = '\0';
    }
    if (!left[0]) {
        conf_errf(c, line, NULL, NULL, "empty rule before '='");
        return;
    }
    if (strlen(left) >= UMXD_RULE_MAX) {
        conf_errf(c, line, NULL, NULL, "rule too long (max %d bytes)", UMXD_RULE_MAX - 1);
        return;
    }
    if (cfg->nroutes >= UMXD_MAX_ROUTES) {
        conf_errf(c, line, NULL, NULL, "too many routes (max %d)", UMXD_MAX_ROUTES);
        return;
    }
    r = &cfg->routes[cfg->nroutes];
    conf_route_defaults(r);
    r->line = 0;
    /* A bare probe name (or `any`) names the route; a longer rule gets
     * routeN, N being the position of its -r. */
    if (is_word(left) && strlen(left) < UMXD_NAME_MAX)
        memcpy(r->name, left, strlen(left) + 1);
    else
        snprintf(r->name, sizeof(r->name), "route%u", i + 1);
    if (umxd_config_route(cfg, r->name) >= 0) {
        conf_errf(c, line, NULL, NULL, "duplicate route name '%s'", r->name);
        return;
    }
    memcpy(r->match, left, strlen(left) + 1); /* length checked above */
    memset(&c->rs[cfg->nroutes], 0, sizeof(c->rs[0]));
    c->rs[cfg->nroutes].key_line[R_MATCH] = line;
    cfg->nroutes++;
    if (!strcmp(split + 1, "echo"))
        r->action = UMXD_ECHO;
    else if (!strcmp(split + 1, "stun"))
        r->action = UMXD_STUN;
    else if (!strcmp(split + 1, "drop"))
        r->action = UMXD_DROP;
    else if ((m = conf_for_each_item(split + 1, conf_backend_item, r, msg)) != NULL)
        conf_errf(c, line, NULL, NULL, "%s", m); /* cannot happen: checked above */
    if (c->ret)
        return;
    snprintf(c->sec, sizeof(c->sec), "[route %s]", r->name);
    conf_finish_route(c, cfg->nroutes - 1, c->sec, line);
}

int umxd_config_quick(const char *const *listen, unsigned nlisten, const char *const *routes,
                      unsigned nroutes, struct umxd_config **out, char *err, size_t errlen)
{
    struct umxd_config *cfg;
    struct ctx *c;
    int ret = conf_ctx_new(&c, NULL, err, errlen);

    *out = NULL;
    if (ret < 0)
        return ret;
    cfg = c->cfg;

    for (unsigned i = 0; i < nlisten; i++) {
        char msg[MSG_LEN];
        const char *m = conf_for_each_item(listen[i], conf_listen_item, cfg, msg);
        if (m) {
            if (err && errlen)
                snprintf(err, errlen, "-l %s: %s", listen[i], m);
            ret = -EINVAL;
            goto out;
        }
    }
    if (!cfg->nlisten) {
        if (err && errlen)
            snprintf(err, errlen, "no listen address: give -l ADDR:PORT");
        ret = -EINVAL;
        goto out;
    }
    c->quick_args = routes;
    for (unsigned i = 0; i < nroutes && !c->ret; i++)
        quick_route(c, i, routes[i]);
    if (!c->ret && !cfg->nroutes) {
        if (err && errlen)
            snprintf(err, errlen, "no routes: give -r NAME=ADDR:PORT");
        c->ret = -EINVAL;
    }
    if (!c->ret)
        conf_check_loops(c);
    ret = c->ret;
out:
    return conf_ctx_done(c, ret, out);
}
