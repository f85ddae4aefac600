/*
 * rule.h - the rule engine's internal interface (lib/rules/rule.c): rule
 * evaluation with probe state, the first-byte pre-filter, the candidate
 * index the daemon and lib/mux/dispatch.c classify with, and the roaming protocols
 * of a rule. The public side (compile, match, free) is in udpmux.h.
 */
#ifndef UMX_RULE_H
#define UMX_RULE_H

#include <stddef.h>
#include <stdint.h>

#include "udpmux.h"
#include "probe.h"

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

#endif
