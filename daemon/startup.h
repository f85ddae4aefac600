/*
 * startup.h - what udpmuxd does once, in order, before its workers run:
 * the descriptor budget, the listeners (bound here or adopted from socket
 * activation), the privilege drop, and the service manager's notify
 * protocol. Main thread only.
 */
#ifndef UMXD_STARTUP_H
#define UMXD_STARTUP_H

struct umxd;

/* Raises RLIMIT_NOFILE for max-flows upstream sockets per worker and, when
 * the limit cannot be raised enough, caps the flow tables (d->fd_budget,
 * d->cfg->max_flows) instead of letting the descriptor table run full. */
void umxd_fd_budget(struct umxd *d);

/* Binds every [listen] address once per worker (an SO_REUSEPORT group
 * when there are several, steered to the workers only: owner.h), or adopts
 * systemd's sockets (LISTEN_FDS). An address that another socket already
 * holds is refused unless takeover is set (then the group is joined on
 * purpose). 0, or -errno after logging why (-EADDRINUSE: the log names the
 * holder). */
int umxd_open_listeners(struct umxd *d, int takeover);
void umxd_close_listeners(struct umxd *d);

/* Switches to user = / group = (if set), checks that root cannot be
 * regained, and sets NoNewPrivs. 0 or -errno after logging why. */
int umxd_drop_privileges(struct umxd *d);

/* sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. */
void umxd_notify(const char *msg);
/* $WATCHDOG_USEC for this process, 0 when there is no watchdog. */
int umxd_watchdog_usec(void);

#endif
