/* addr.c - address parsing and formatting shared by the library, the daemon
 * and the tools. */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <net/if.h>
#include <stdlib.h>

#include "internal.h"

socklen_t umx_sa_len(const struct sockaddr *sa)
{
    if (!sa)
        return 0;
    if (sa->sa_family == AF_INET)
        return sizeof(struct sockaddr_in);
    if (sa->sa_family == AF_INET6)
        return sizeof(struct sockaddr_in6);
    return 0;
}

int umx_sa_unmap(struct sockaddr_storage *ss)
{
    struct sockaddr_in6 s6;
    struct sockaddr_in s4;
    if (ss->ss_family != AF_INET6)
        return 0;
    memcpy(&s6, ss, sizeof(s6));
    if (!IN6_IS_ADDR_V4MAPPED(&s6.sin6_addr))
        return 0;
    memset(&s4, 0, sizeof(s4));
    s4.sin_family = AF_INET;
    s4.sin_port = s6.sin6_port;
    memcpy(&s4.sin_addr, s6.sin6_addr.s6_addr + 12, 4);
    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &s4, sizeof(s4));
    return 1;
}

int umx_sa_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return 0;
    if (a->sa_family == AF_INET) {
        struct sockaddr_in x, y;
        memcpy(&x, a, sizeof(x));
        memcpy(&y, b, sizeof(y));
        return x.sin_port == y.sin_port && x.sin_addr.s_addr == y.sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        struct sockaddr_in6 x, y;
        memcpy(&x, a, sizeof(x));
        memcpy(&y, b, sizeof(y));
        return x.sin6_port == y.sin6_port &&
               memcmp(&x.sin6_addr, &y.sin6_addr, sizeof(x.sin6_addr)) == 0 &&
               x.sin6_scope_id == y.sin6_scope_id;
    }
    return 0;
}

UDPMUX_API int udpmux_parse_addr(const char *text, struct sockaddr_storage *out, socklen_t *outlen)
{
    char host[INET6_ADDRSTRLEN + 1];
    const char *portstr;
    size_t hlen;
    char *end;
    unsigned long port;

    if (!text || !out)
        return -EINVAL;
    memset(out, 0, sizeof(*out));
    if (text[0] == '[') {
        const char *rb = strchr(text, ']');
        if (!rb || rb[1] != ':')
            return -EINVAL;
        hlen = (size_t)(rb - text - 1);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text + 1, hlen);
        portstr = rb + 2;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || strchr(text, ':') != colon)
            return -EINVAL;
        hlen = (size_t)(colon - text);
        if (hlen == 0 || hlen >= sizeof(host))
            return -EINVAL;
        memcpy(host, text, hlen);
        portstr = colon + 1;
    }
    host[hlen] = '\0';
    if (*portstr < '0' || *portstr > '9')
        return -EINVAL;
    errno = 0;
    port = strtoul(portstr, &end, 10);
    if (errno || *end != '\0' || port > 65535)
        return -EINVAL;
    if (text[0] == '[') {
        struct sockaddr_in6 s6;
        char *pct = strchr(host, '%');
        memset(&s6, 0, sizeof(s6));
        s6.sin6_family = AF_INET6;
        s6.sin6_port = htons((uint16_t)port);
        if (pct) {
            *pct = '\0';
            s6.sin6_scope_id = if_nametoindex(pct + 1);
            if (!s6.sin6_scope_id)
                return -EINVAL;
        }
        if (inet_pton(AF_INET6, host, &s6.sin6_addr) != 1)
            return -EINVAL;
        memcpy(out, &s6, sizeof(s6));
        if (outlen)
            *outlen = sizeof(s6);
    } else {
        struct sockaddr_in s4;
        memset(&s4, 0, sizeof(s4));
        s4.sin_family = AF_INET;
        s4.sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &s4.sin_addr) != 1)
            return -EINVAL;
        memcpy(out, &s4, sizeof(s4));
        if (outlen)
            *outlen = sizeof(s4);
    }
    return 0;
}

UDPMUX_API int udpmux_format_addr(const struct sockaddr *sa, char *buf, size_t buflen)
{
    char host[INET6_ADDRSTRLEN];
    if (!sa)
        return snprintf(buf, buflen, "-");
    if (sa->sa_family == AF_INET) {
        struct sockaddr_in s4;
        memcpy(&s4, sa, sizeof(s4));
        inet_ntop(AF_INET, &s4.sin_addr, host, sizeof(host));
        return snprintf(buf, buflen, "%s:%u", host, ntohs(s4.sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 s6;
        memcpy(&s6, sa, sizeof(s6));
        inet_ntop(AF_INET6, &s6.sin6_addr, host, sizeof(host));
        return snprintf(buf, buflen, "[%s]:%u", host, ntohs(s6.sin6_port));
    }
    return snprintf(buf, buflen, "(family %d)", sa->sa_family);
}

UDPMUX_API const char *udpmux_version(void)
{
    return UDPMUX_VERSION_STRING;
}

UDPMUX_API const char *udpmux_strerror(int err)
{
    /* -INT_MIN does not exist: negate in a wider type. strerrordesc_np()
     * (glibc 2.32) returns a constant string or NULL, where strerror()
     * formats unknown numbers into a buffer that other threads share. */
    long e = err < 0 ? -(long)err : (long)err;
    const char *s = e <= INT_MAX ? strerrordesc_np((int)e) : NULL;
    return s ? s : "Unknown error";
}
