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

#define UMX_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* Single-writer counter bump: a relaxed load and store, no lock prefix. The
 * writer is the loop thread; readers on other threads see a whole value. */
#define UMX_CTR_ADD(field, n)                                                                      \
    __atomic_store_n(&(field), __atomic_load_n(&(field), __ATOMIC_RELAXED) + (n), __ATOMIC_RELAXED)
/* Multi-writer counter (send path, any thread). */
#define UMX_CTR_ADD_MT(field, n) __atomic_fetch_add(&(field), (n), __ATOMIC_RELAXED)
#define UMX_CTR_GET(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

/* rules/rule.c ---------------------------------------------------------- */

/* Verdict of a compiled rule with probe state (UMX_MATCH, UMX_NOMATCH, or
 * UMX_MORE when a probe needs more datagrams of this peer). */
int umx_rule_eval(const struct udpmux_rule *rule, const struct umx_probe_in *in);

/* The rule's first-byte pre-filter: a rule whose bitmap does not have the
 * datagram's first byte cannot match. */
const uint8_t *umx_rule_first(const struct udpmux_rule *rule);
int umx_rule_match_empty(const struct udpmux_rule *rule);

/* The original text of the rule (for printing). */
const char *umx_rule_text(const struct udpmux_rule *rule);

/* Fast check of the pre-filter. */
static inline int umx_rule_may_match(const struct udpmux_rule *rule, const uint8_t *data,
                                     size_t len)
{
    if (len == 0)
        return umx_rule_match_empty(rule);
    return umx_first_has(umx_rule_first(rule), data[0]);
}

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

/* Monotonic clock in nanoseconds (I/O shell only; the core takes time as a
 * parameter). */
uint64_t umx_now_ns(void);

#endif
