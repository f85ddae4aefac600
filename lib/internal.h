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

/* The roaming protocols (a set of enum umx_roam_proto, rules/roam.h) that
 * datagrams matching the rule can belong to: the protocols every positive
 * probe term of the rule shares; 0 for a rule without one (`any`,
 * `prefix ..`, `dns`, NULL). Pass it to umx_roam_key(). */
unsigned umx_rule_roam_protos(const struct udpmux_rule *rule);

/* Fast check of the pre-filter. */
static inline int umx_rule_may_match(const struct udpmux_rule *rule, const uint8_t *data,
                                     size_t len)
{
    if (len == 0)
        return umx_rule_match_empty(rule);
    return umx_first_has(umx_rule_first(rule), data[0]);
}

/*
 * Candidate lists over an ordered set of rules (the daemon's routes): per
 * first byte, the positions of the rules whose pre-filter admits that byte,
 * ascending, and one more list for empty datagrams. A classifier then tries
 * only the rules that can match instead of testing every rule's bitmap and
 * paying a call per rule; with 24 probe routes a datagram starting with
 * 0x31 has 7 candidates instead of 25. Built once per rule set (not on the
 * packet path); points into the rules (their probe parameters) but does not
 * own them, so it lives no longer than they do. Fixed size
 * (about 17 KiB at 64 rules): uint8 positions, 257 rows of UMX_RULE_INDEX_MAX.
 */
#define UMX_RULE_INDEX_MAX 64
#define UMX_RULE_INDEX_EMPTY 256 /* the row for zero-length datagrams */

struct umx_rule_index {
    unsigned nrules;
    /* How to evaluate rule r once its pre-filter passed: fn(arg[r], in).
     * A single-probe rule is its probe's match function and parameters, so
     * a candidate costs one indirect call and no loads through the rule. */
    int (*fn[UMX_RULE_INDEX_MAX])(const void *arg, const struct umx_probe_in *in);
    const void *arg[UMX_RULE_INDEX_MAX];
    uint8_t n[257];                        /* candidates per row */
    uint8_t list[257][UMX_RULE_INDEX_MAX]; /* positions into rule[], ascending */
};

/* Builds idx over rules[0..n). A NULL rule is never a candidate. -E2BIG if
 * n > UMX_RULE_INDEX_MAX. */
int umx_rule_index_build(struct umx_rule_index *idx, const struct udpmux_rule *const *rules,
                         size_t n);

/* The position of the first rule that matches (first match wins), or -1.
 * Same answer as calling umx_rule_eval() on every rule in order: when the
 * first rule that does not say UMX_NOMATCH says UMX_MORE, returns -1 and
 * sets *more to 1 (otherwise *more is 0). */
int umx_rule_index_eval(const struct umx_rule_index *idx, const struct umx_probe_in *in, int *more);

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
