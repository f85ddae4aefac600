/* sockfile.h - the files of udpmuxd's Unix sockets (control, attach):
 * created only where no live socket and no other file is, removed only
 * while they are still ours. Both sockets go through here so neither can
 * delete a file that is not its socket. */
#ifndef UMXD_SOCKFILE_H
#define UMXD_SOCKFILE_H

#include <sys/types.h>

struct umxd_sockfile {
    dev_t dev;
    ino_t ino; /* 0: nothing bound (yet) */
};

/* Makes room for a socket of `type` (SOCK_STREAM, SOCK_SEQPACKET) at path:
 * nothing there is fine; a socket file nobody listens on (connect fails
 * with ECONNREFUSED: a daemon that died) is removed. Anything else is left
 * alone and refused: -EADDRINUSE (something answers there), -EEXIST (not a
 * socket: a regular file, a FIFO, a directory...), or the connect error
 * (e.g. -EPROTOTYPE: a socket of another kind, such as the other one of
 * udpmuxd's sockets at the same path). */
int umxd_sockfile_clear(const char *path, int type);

/* Text for an error of umxd_sockfile_clear (or bind/listen) at path. */
const char *umxd_sockfile_strerror(int r);

/* Records which file bind() made at path (after bind). */
void umxd_sockfile_note(struct umxd_sockfile *sf, const char *path);

/* Removes path only if it is still the socket file noted (a file put in
 * its place since is left alone). */
void umxd_sockfile_unlink(const struct umxd_sockfile *sf, const char *path);

#endif
