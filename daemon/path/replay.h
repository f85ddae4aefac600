/*
 * replay.h - the decision engine without sockets: feeds captured datagrams
 * (both directions, as seen on the shared port) through umxd_decide() and
 * umxd_decide_reply() and keeps the flow state the daemon would keep, so
 * `udpmuxctl classify -c CONFIG` prints what udpmuxd would do. Time comes
 * from the capture.
 */
#ifndef UMXD_REPLAY_H
#define UMXD_REPLAY_H

#include <stdint.h>
#include <sys/socket.h>

#include "engine.h"

struct umxd_replay;

/* What happened to one datagram. */
struct umxd_replay_out {
    int route;       /* route index, -1 when none */
    int reply;       /* a backend's reply on the shared port (to a peer) */
    const char *how; /* "probe", "flow", "roamed", "held", "reply", "relay" or a drop reason */
};

/* cfg: the daemon's config (taken over: freed by umxd_replay_free). */
int umxd_replay_new(struct umxd_replay **out, struct umxd_config *cfg);
void umxd_replay_free(struct umxd_replay *r);
const struct umxd_config *umxd_replay_config(const struct umxd_replay *r);

/* One UDP datagram from src to dst at time now (ns). A datagram sent from
 * the local side of a known flow is that flow's reply; one sent to a
 * listener (or, when no listener matches either side, any other) is a
 * peer's datagram. */
void umxd_replay_datagram(struct umxd_replay *r, const struct sockaddr *src,
                          const struct sockaddr *dst, const uint8_t *buf, size_t len, uint64_t now,
                          struct umxd_replay_out *out);

/* The name of a drop reason (stats.h UMXD_DROPS). */
const char *umxd_drop_name(enum umxd_drop why);

#endif
