/*
 * timers.c - one-shot timers in a fixed table (max_timers): added and
 * cancelled by id (slot + generation), fired earliest first at the end of
 * udpmux_process(), and the timeout udpmux_run() waits with.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "internal.h"
#include "mux/mux.h"

void umx__timers_run(struct udpmux *m)
{
    uint64_t now;
    if (!m->timers)
        return;
    now = umx_now_ns();
    /* Due timers fire earliest first, not in slot order: when the loop was
     * late and several are due at once, a 10 ms timer must not run after a
     * 30 ms one. One scan per fired timer; at most max_timers fire per call
     * (a timer a callback adds with delay 0 waits for the next call if the
     * pass is used up), so this stays bounded. */
    for (unsigned k = 0; k < m->cfg.max_timers; k++) {
        struct timer *t = NULL;
        for (unsigned i = 0; i < m->cfg.max_timers; i++) {
            struct timer *c = &m->timers[i];
            if (c->in_use && c->due_ns <= now && (!t || c->due_ns < t->due_ns))
                t = c;
        }
        if (!t)
            break;
        /* free the slot (and retire its id) before the call: the callback
         * may add a timer that takes this very slot */
        t->in_use = 0;
        t->gen = (t->gen + 1) & ID_GEN_MASK;
        t->fn(m, t->arg);
    }
}

UDPMUX_API int udpmux_next_timeout(const struct udpmux *m)
{
    uint64_t now, best = UINT64_MAX;
    if (!m || !m->timers)
        return -1;
    now = umx_now_ns();
    for (unsigned i = 0; i < m->cfg.max_timers; i++)
        if (m->timers[i].in_use && m->timers[i].due_ns < best)
            best = m->timers[i].due_ns;
    if (best == UINT64_MAX)
        return -1;
    if (best <= now)
        return 0;
    /* a timer 2^31 ms (25 days) away must not wrap to a negative "wait
     * forever": wait the longest we can, then look again */
    if ((best - now + 999999) / 1000000 > INT32_MAX)
        return INT32_MAX;
    return (int)((best - now + 999999) / 1000000);
}

UDPMUX_API int udpmux_timer_add(struct udpmux *m, unsigned delay_ms, udpmux_timer_fn *fn, void *arg)
{
    if (!m || !fn)
        return -EINVAL;
    for (unsigned i = 0; i < m->cfg.max_timers; i++) {
        struct timer *t = &m->timers[i];
        if (!t->in_use) {
            t->in_use = 1;
            t->due_ns = umx_now_ns() + (uint64_t)delay_ms * 1000000u;
            t->fn = fn;
            t->arg = arg;
            return id_make(i, t->gen);
        }
    }
    return -ENOSPC;
}

UDPMUX_API int udpmux_timer_cancel(struct udpmux *m, int id)
{
    struct timer *t;
    unsigned slot = (unsigned)id & ID_SLOT_MASK;
    if (!m || id < 0 || slot >= m->cfg.max_timers)
        return -ENOENT;
    t = &m->timers[slot];
    if (!t->in_use || t->gen != (unsigned)id >> ID_SLOT_BITS)
        return -ENOENT;
    t->in_use = 0;
    t->gen = (t->gen + 1) & ID_GEN_MASK;
    return 0;
}
