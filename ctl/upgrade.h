/*
 * upgrade.h - `udpmuxctl upgrade`: start a new udpmuxd that takes over the
 * running one's sockets and flows (daemon/upgrade.c), and report how it went.
 */
#ifndef UMXCTL_UPGRADE_H
#define UMXCTL_UPGRADE_H

/* argv[0] is "upgrade". Returns the exit status. */
int ctl_upgrade_main(int argc, char **argv);

#endif
