/*
 * fuzz-config.c - udpmuxd's config loader (daemon/conf/) on arbitrary
 * text, through umxd_config_load_string(), which runs the same INI reader
 * and validation as a file load.
 *
 * An input starting with "#!quick\n" is quick mode instead: its next line
 * is the -l argument and every further line one -r argument.
 *
 * Checked:
 *  - a failed load returns a negative errno, no config, and a message that
 *    starts with "fuzz.conf:LINE: " with LINE within the text (quick mode:
 *    "-l ", "-r " or "no ...");
 *  - a loaded config has at least one listen address and one route, and
 *    every route a compiled rule;
 *  - the printout (`udpmuxd -T`) loads again and prints the same text, so
 *    -T output is always a valid config.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define CHECK(c)                                                                                   \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "fuzz-config: invariant failed at line %d: %s\n", __LINE__, #c);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define QUICK_MAGIC "#!quick\n"
#define MAX_QUICK_ARGS 80

static char *print_config(const struct umxd_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    CHECK(f != NULL);
    umxd_config_print(cfg, f);
    CHECK(fclose(f) == 0);
    return text;
}

static void check_loaded(const struct umxd_config *cfg)
{
    struct umxd_config *again = NULL;
    char err[1024] = "";
    char *text, *text2;
    int rc;

    /* 0 listeners: a config for socket activation (no [listen] section) */
    CHECK(cfg->nlisten <= UMXD_MAX_LISTEN);
    CHECK(cfg->nroutes >= 1 && cfg->nroutes <= UMXD_MAX_ROUTES);
    for (unsigned i = 0; i < cfg->nroutes; i++) {
        const struct umxd_route *r = &cfg->routes[i];
        CHECK(r->rule != NULL);
        CHECK(r->nbackends <= UMXD_MAX_BACKENDS);
        CHECK((r->action == UMXD_FORWARD) == (r->nbackends > 0));
        CHECK(r->action != UMXD_ATTACH || r->nallow_uid + r->nallow_gid > 0);
        CHECK(umxd_config_route(cfg, r->name) == (int)i);
    }

    text = print_config(cfg);
    rc = umxd_config_load_string(text, "printed.conf", &again, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "fuzz-config: printout does not load: %s\n%s", err, text);
        abort();
    }
    text2 = print_config(again);
    /* the first line names the source */
    CHECK(strcmp(strchr(text, '\n'), strchr(text2, '\n')) == 0);
    umxd_config_free(again);
    free(text);
    free(text2);
}

static void run_quick(char *text)
{
    const char *args[MAX_QUICK_ARGS];
    const char *listen;
    struct umxd_config *cfg = NULL;
    char err[1024] = "";
    unsigned n = 0;
    char *p = text, *nl;
    int rc;

    listen = p;
    nl = strchr(p, '\n');
    if (!nl)
        return;
    *nl = '\0';
    p = nl + 1;
    while (*p && n < MAX_QUICK_ARGS) {
        args[n++] = p;
        nl = strchr(p, '\n');
        if (!nl)
            break;
        *nl = '\0';
        p = nl + 1;
    }
    rc = umxd_config_quick(&listen, 1, args, n, &cfg, err, sizeof(err));
    if (rc == 0) {
        CHECK(cfg != NULL);
        check_loaded(cfg);
        umxd_config_free(cfg);
        return;
    }
    CHECK(rc < 0 && cfg == NULL);
    CHECK(!strncmp(err, "-l ", 3) || !strncmp(err, "-r ", 3) || !strncmp(err, "no ", 3));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct umxd_config *cfg = NULL;
    char err[1024] = "";
    char *text;
    int rc;

    if (size > 256 * 1024)
        return 0;
    text = malloc(size + 1);
    CHECK(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';

    if (size >= strlen(QUICK_MAGIC) && !memcmp(text, QUICK_MAGIC, strlen(QUICK_MAGIC))) {
        run_quick(text + strlen(QUICK_MAGIC));
        free(text);
        return 0;
    }

    rc = umxd_config_load_string(text, "fuzz.conf", &cfg, err, sizeof(err));
    if (rc == 0) {
        CHECK(cfg != NULL);
        check_loaded(cfg);
        umxd_config_free(cfg);
    } else {
        unsigned long lines = 1, line;
        char *end;
        CHECK(rc < 0 && cfg == NULL);
        CHECK(!strncmp(err, "fuzz.conf:", 10));
        line = strtoul(err + 10, &end, 10);
        CHECK(end[0] == ':' && end[1] == ' ');
        for (const char *c = text; *c; c++)
            lines += *c == '\n';
        CHECK(line >= 1 && line <= lines);
    }
    free(text);
    return 0;
}
