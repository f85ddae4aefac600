/*
 * load.c - loading: a file (regular files only, read whole, capped at
 * CONF_MAX_FILE) or a string goes through the INI reader (ini.c); sections
 * are entered in file order, each validated as a whole (check.c) when the
 * next one starts, and keys are handed to keys.c. So errors come out in
 * file order: the first one wins and reading stops there. A load builds a
 * complete new config and either returns it whole or fails.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "ini.h"

static void finish_section(struct ctx *c)
{
    if (c->cur < 0 || c->kind != SEC_ROUTE)
        return;
    conf_finish_route(c, (unsigned)c->route, c->sec, c->hdr.line);
}

static void begin_section(struct ctx *c)
{
    const struct header *hd = &c->hdr;
    const char *t = hd->text;
    struct umxd_config *cfg = c->cfg;

    c->cur = 0;
    c->kind = SEC_NONE;
    snprintf(c->sec, sizeof(c->sec), "[%.*s]", UMXD_NAME_MAX + 16, t);
    if (!strcmp(t, "listen") || !strcmp(t, "udpmux")) {
        int *seen = t[0] == 'l' ? &c->listen_hdr_line : &c->udpmux_hdr_line;
        if (*seen) {
            conf_errf(c, hd->line, c->sec, NULL, "section given twice (first at line %d)", *seen);
            return;
        }
        *seen = hd->line;
        c->kind = t[0] == 'l' ? SEC_LISTEN : SEC_UDPMUX;
        return;
    }
    if (!strncmp(t, "route", 5) && (t[5] == '\0' || conf_is_ws(t[5]))) {
        const char *name = t + 5;
        struct umxd_route *r;
        while (conf_is_ws(*name))
            name++;
        if (!*name) {
            conf_errf(c, hd->line, c->sec, NULL, "a route needs a name: [route NAME]");
            return;
        }
        if (hd->too_long || !conf_valid_name(name)) {
            conf_errf(c, hd->line, c->sec, NULL,
                      "bad route name (letters, digits, '-', '_', '.'; at most %d bytes)",
                      UMXD_NAME_MAX - 1);
            return;
        }
        snprintf(c->sec, sizeof(c->sec), "[route %s]", name);
        for (unsigned i = 0; i < cfg->nroutes; i++) {
            if (!strcmp(cfg->routes[i].name, name)) {
                conf_errf(c, hd->line, c->sec, NULL, "duplicate route name (first at line %d)",
                          cfg->routes[i].line);
                return;
            }
        }
        if (cfg->nroutes >= UMXD_MAX_ROUTES) {
            conf_errf(c, hd->line, c->sec, NULL, "too many routes (max %d)", UMXD_MAX_ROUTES);
            return;
        }
        r = &cfg->routes[cfg->nroutes];
        conf_route_defaults(r);
        snprintf(r->name, sizeof(r->name), "%s", name);
        r->line = hd->line;
        memset(&c->rs[cfg->nroutes], 0, sizeof(c->rs[0]));
        c->route = (int)cfg->nroutes++;
        c->kind = SEC_ROUTE;
        return;
    }
    conf_errf(c, hd->line, c->sec, NULL,
              "unknown section (expected [listen], [udpmux] or [route NAME])");
}

/* A section header: the section before it is complete (validated now),
 * then the new one starts. Returns nonzero to stop reading. */
static int on_section(void *arg, int line, const char *text, size_t len)
{
    struct ctx *c = arg;
    finish_section(c);
    if (c->ret)
        return 1;
    c->hdr.line = line;
    c->hdr.too_long = len >= sizeof(c->hdr.text);
    snprintf(c->hdr.text, sizeof(c->hdr.text), "%s", text);
    begin_section(c);
    return c->ret != 0;
}

static int on_key(void *arg, int line, const char *name, const char *value)
{
    struct ctx *c = arg;
    if (c->cur < 0 || c->kind == SEC_NONE) {
        conf_errf(c, line, NULL, name, "key outside of any section");
        return 1;
    }
    switch (c->kind) {
    case SEC_LISTEN:
        conf_listen_key(c, name, value, line);
        break;
    case SEC_UDPMUX:
        conf_udpmux_key(c, name, value, line);
        break;
    case SEC_ROUTE:
        conf_route_key(c, name, value, line);
        break;
    case SEC_NONE:
        break;
    }
    return c->ret != 0;
}

static int load_buffer(const char *buf, size_t len, const char *name, struct umxd_config **out,
                       char *err, size_t errlen)
{
    static const struct umxd_ini_cb cb = {on_section, on_key};
    struct umxd_ini_error ie;
    struct ctx *c;
    int ret = conf_ctx_new(&c, name, err, errlen);

    *out = NULL;
    if (ret < 0)
        return ret;
    snprintf(c->cfg->path, sizeof(c->cfg->path), "%s", name);
    c->name = name;

    umxd_ini_read(buf, len, &cb, c, &ie);
    if (!c->ret && ie.line) {
        /* A broken header ends the section before it, which is whole. */
        if (ie.header)
            finish_section(c);
        conf_errf(c, ie.line, NULL, NULL, "%s", ie.msg);
    }
    if (!c->ret)
        finish_section(c);
    if (!c->ret)
        conf_finish_config(c);
    return conf_ctx_done(c, c->ret, out);
}

int umxd_config_load_string(const char *text, const char *name, struct umxd_config **out, char *err,
                            size_t errlen)
{
    return load_buffer(text, strlen(text), name ? name : "(string)", out, err, errlen);
}

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m))
        return "a directory";
    if (S_ISFIFO(m))
        return "a FIFO";
    if (S_ISSOCK(m))
        return "a socket";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    return "a special file";
}

int umxd_config_load(const char *path, struct umxd_config **out, char *err, size_t errlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, ret;

    *out = NULL;
    /* O_NONBLOCK: opening a FIFO for reading waits for a writer, which
     * would hang `udpmuxd -t` and, on SIGHUP, the main thread (signals,
     * control socket, SIGTERM included). Only a regular file is read. */
    fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ret = -errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-ret));
        return ret;
    }
    if (fstat(fd, &st) < 0) {
        ret = -errno;
        if (err && errlen)
            snprintf(err, errlen, "%s: cannot stat: %s", path, strerror(-ret));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        ret = -EINVAL;
        if (err && errlen)
            snprintf(err, errlen, "%s: %s, not a configuration file (give a regular file)", path,
                     file_kind(st.st_mode));
        goto out;
    }
    if (st.st_size > CONF_MAX_FILE) {
        ret = -EFBIG;
        if (err && errlen)
            snprintf(err, errlen, "%s: file too large (max %d bytes)", path, CONF_MAX_FILE);
        goto out;
    }
    buf = malloc(CONF_MAX_FILE + 1);
    if (!buf) {
        ret = -ENOMEM;
        if (err && errlen)
            snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    /* the size may change while we read: read to EOF, up to the cap */
    while (len <= CONF_MAX_FILE) {
        ssize_t n = read(fd, buf + len, CONF_MAX_FILE + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            ret = -errno;
            if (err && errlen)
                snprintf(err, errlen, "%s: cannot read: %s", path, strerror(-ret));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (len > CONF_MAX_FILE) {
        ret = -EFBIG;
        if (err && errlen)
            snprintf(err, errlen, "%s: file too large (max %d bytes)", path, CONF_MAX_FILE);
        goto out;
    }
    ret = load_buffer(buf, len, path, out, err, errlen);
out:
    close(fd);
    free(buf);
    return ret;
}
