/* names.h - the words udpmuxd shows for its enums and states, one copy for
 * the control socket (control.c) and the metrics page (metrics.c), so the
 * two never disagree. (config.c still has its own table of action names for
 * parsing: to be folded in here by its owner.) */
#ifndef UMXD_NAMES_H
#define UMXD_NAMES_H

#include <stdint.h>

#include "config.h"

struct umxd;

/* "forward", "drop", "stun", "echo", "attach"; "unknown" out of range. */
const char *umxd_action_name(enum umxd_action a);

/* Health of backend b of the route in slot: "draining" (udpmuxctl drain),
 * "down" (health check, or passively: no replies) or "up". */
const char *umxd_backend_state(struct umxd *d, unsigned slot, unsigned b, uint64_t now);

#endif
