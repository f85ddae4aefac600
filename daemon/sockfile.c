/*
 * sockfile.c - create and remove the files of udpmuxd's Unix sockets
 * without ever deleting something else (see sockfile.h).
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "sockfile.h"

int umxd_sockfile_clear(const char *path, int type)
{
    struct sockaddr_un sa;
    struct stat st;
    size_t pl = strlen(path);
    int fd, r, err;
    if (pl == 0 || pl >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    if (lstat(path, &st) < 0)
        return errno == ENOENT ? 0 : -errno;
    if (!S_ISSOCK(st.st_mode))
        return -EEXIST;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    memcpy(sa.sun_path, path, pl);
    fd = socket(AF_UNIX, type | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    r = connect(fd, (const struct sockaddr *)&sa, sizeof(sa));
    err = errno;
    close(fd);
    if (r == 0)
        return -EADDRINUSE;
    /* only a socket nobody listens on is stale; a refusal of another
     * kind (wrong socket type, no permission) means it is not ours */
    if (err != ECONNREFUSED)
        return -err;
    return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

const char *umxd_sockfile_strerror(int r)
{
    switch (r) {
    case -EEXIST:
        return "a file that is not a socket is in the way (left alone)";
    case -EADDRINUSE:
        return "in use by a live socket (another udpmuxd?)";
    case -EPROTOTYPE:
    case -ECONNRESET:
        return "a socket of another kind is there (left alone)";
    default:
        return strerror(-r);
    }
}

void umxd_sockfile_note(struct umxd_sockfile *sf, const char *path)
{
    struct stat st;
    memset(sf, 0, sizeof(*sf));
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
        sf->dev = st.st_dev;
        sf->ino = st.st_ino;
    }
}

void umxd_sockfile_unlink(const struct umxd_sockfile *sf, const char *path)
{
    struct stat st;
    if (!sf->ino || lstat(path, &st) < 0)
        return;
    if (!S_ISSOCK(st.st_mode) || st.st_dev != sf->dev || st.st_ino != sf->ino)
        return;
    /* may fail after the privilege drop (the directory is root's); the
     * next start clears the stale file */
    unlink(path);
}
