/* no_probes.c - an empty probe registry, linked only while
 * lib/rules/probes/ has no meson.build (bootstrap of the tree). */
#include <errno.h>
#include <string.h>

#include "rules/probe.h"

const struct umx_probe *const umx_probes[1] = {NULL};
const size_t umx_nprobes = 0;

const struct umx_probe *umx_probe_find(const char *name)
{
    (void)name;
    return NULL;
}

int umx_probe_state_new(struct umx_probe_state **out, unsigned max_pending)
{
    (void)max_pending;
    *out = NULL;
    return -ENOSYS;
}

void umx_probe_state_free(struct umx_probe_state *st)
{
    (void)st;
}
