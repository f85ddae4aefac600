/*
 * internal.h - declarations shared inside libudpmux (and with the daemon and
 * tests, which link the internal static library). Nothing here is public API:
 * names start with umx_.
 */
#ifndef UMX_INTERNAL_H
#define UMX_INTERNAL_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/socket.h>

#include "udpmux.h"
#include "rules/probe.h"
#include "rules/rule.h" /* the rule engine's internals */

#define UMX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Single-writer counter bump: a relaxed load and store, no lock prefix. The
 * writer is the loop thread; readers on other threads see a whole value. */
#define UMX_CTR_ADD(field, n)                                                                      \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
/* Multi-writer counter (send path, any thread). */
#define UMX_CTR_ADD_MT(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define UMX_CTR_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* util/addr.c ------------------------------------------------------------ */

/* Length of a sockaddr of this family (0 if unknown). */
socklen_t umx_sa_len(const struct sockaddr *sa);
/* Turns an IPv4-mapped IPv6 address into plain IPv4 in place (in a
 * sockaddr_storage); returns 1 if it did. */
int umx_sa_unmap(struct sockaddr_storage *ss);
/* Compare addresses (family, address and port). */
int umx_sa_equal(const struct sockaddr *a, const struct sockaddr *b);

/* util/siphash.c --------------------------------------------------------- */
uint64_t umx_siphash24(const uint8_t key[16], const void *data, size_t len);

/* util/random.c: fills buf from getrandom(); returns 0 or -errno. */
int umx_random(void *buf, size_t len);

/* util/clock.c: monotonic clock in nanoseconds (I/O shell only; the core
 * takes time as a parameter). */
uint64_t umx_now_ns(void);

/* util/hex.c: umx_hex_digit(), umx_hex_decode() */
#include "util/hex.h"

#endif
