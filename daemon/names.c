/*
 * names.c - the words udpmuxd shows for its enums and states (names.h).
 */
#include "names.h"
#include "internal.h"
#include "udpmuxd.h"

const char *umxd_action_name(enum umxd_action a)
{
    static const char *const names[] = {
        [UMXD_FORWARD] = "forward", [UMXD_DROP] = "drop",     [UMXD_STUN] = "stun",
        [UMXD_ECHO] = "echo",       [UMXD_ATTACH] = "attach",
    };
    return (unsigned)a < UMX_ARRAY_LEN(names) && names[a] ? names[a] : "unknown";
}

const char *umxd_backend_state(struct umxd *d, unsigned slot, unsigned b, uint64_t now)
{
    struct umxd_health *h = &d->health[slot][b];
    if (__atomic_load_n(&h->draining, __ATOMIC_RELAXED))
        return "draining";
    if (__atomic_load_n(&h->active_down, __ATOMIC_RELAXED) ||
        __atomic_load_n(&h->down_until_ns, __ATOMIC_RELAXED) > now)
        return "down";
    return "up";
}
