/* harden.h - least privilege after start-up (harden.c): capabilities
 * dropped in every thread, and a seccomp allow-list of the system calls
 * udpmuxd makes once it is running. Exposed for tests/security, which
 * installs the same filter in a child process and checks that forbidden
 * calls are refused. */
#ifndef UMXD_HARDEN_H
#define UMXD_HARDEN_H

enum umxd_seccomp_mode {
    /* A call outside the list fails with EPERM and one line is logged
     * (SIGSYS handler): the daemon keeps serving, the operator sees which
     * call is missing. The default. */
    UMXD_SECCOMP_TRAP = 0,
    /* A call outside the list kills the whole process (SIGSYS). */
    UMXD_SECCOMP_KILL = 1,
};

/* Installs the allow-list on every thread of the process (TSYNC).
 * Returns 0 or -errno. */
int umxd_seccomp_install(enum umxd_seccomp_mode mode);

/* Drops every capability (effective, permitted, inheritable, ambient) in
 * every thread, and the bounding set where allowed. Returns 0, or -EPERM
 * when some thread still holds a capability afterwards. */
int umxd_caps_drop_all(void);

#endif
