/*
 * upgrade.h - a new udpmuxd takes over from the running one without losing
 * a datagram (upgrade.c; docs/internals/upgrade.md).
 */
#ifndef UMXD_UPGRADE_H
#define UMXD_UPGRADE_H

#include <stddef.h>

struct umxd;

/* The control socket's request line that starts a hand-over. */
#define UMXD_UPGRADE_REQUEST "upgrade-handoff"

/* Old process, main thread: serve a hand-over on a control connection
 * whose request line was UMXD_UPGRADE_REQUEST (fd is ours to close).
 * Returns only when the upgrade failed or was refused: on success the
 * process exits. */
void umxd_upgrade_serve(struct umxd *d, int fd);

/* New process. State of a hand-over in progress. */
struct umxd_upgrade {
    int fd;      /* connection to the old process */
    int old_pid; /* from SO_PEERCRED */
    unsigned flows_in, flows_skipped;
    unsigned long long t_freeze_ns; /* sent FREEZE: the old stops reading */
    unsigned long long t_end_ns;    /* every flow received */
};

/* Step 1, after the config loaded (d->cfg) and before anything binds:
 * connect to the control socket of d->cfg, check the peer's credentials,
 * receive the listeners, the control/attach/metrics sockets and the
 * hash key into d (d->nworkers, d->lfd, d->inherit_fd, d->hashkey).
 * 0, or -errno with the reason in err (the old process keeps running). */
int umxd_upgrade_join(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen);
/* Tells the old process why this one gives up (it keeps running). */
void umxd_upgrade_abort(struct umxd_upgrade *u, const char *why);
/* Step 2, privileges dropped, workers not started: the old process stops
 * reading and sends its flows; d->handoff_in holds them afterwards. */
int umxd_upgrade_flows(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen);
/* Step 3, workers started: wait until they adopted the flows, then tell
 * the old process to exit. */
int umxd_upgrade_finish(struct umxd *d, struct umxd_upgrade *u, char *err, size_t errlen);

#endif
