/*
 * random.c - key material (hash keys, connection ids) from the kernel's
 * CSPRNG.
 */
#include <errno.h>
#include <sys/random.h>

#include "internal.h"

int umx_random(void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
