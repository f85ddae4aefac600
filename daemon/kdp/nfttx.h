/*
 * nfttx.h - one nf_tables transaction on udpmuxd's own table, built with
 * libnftnl into one libmnl batch (the kernel applies all of it or none),
 * and the dump of the table's ct timeout objects. What the table holds is
 * nft.c's; this is only how it gets there. Internal to daemon/kdp/.
 *
 * Adders never fail on their own: a message that does not fit or cannot
 * be built sets oom, and ntx_commit() then sends nothing (-E2BIG).
 */
#ifndef UDPMUXD_KDP_NFTTX_H
#define UDPMUXD_KDP_NFTTX_H

#include <stdint.h>

#include <libnftnl/rule.h>

#include "udpmuxd.h"

struct nft_tx {
    struct mnl_socket *nl;
    struct mnl_nlmsg_batch *b;
    char *buf;
    uint32_t seq;
    int oom;
};

/* 0 or -errno; on success ntx_free() must follow */
int ntx_begin(struct nft_tx *t);
void ntx_free(struct nft_tx *t);
/* sends the batch and reads every answer: 0 or the first -errno */
int ntx_commit(struct nft_tx *t);

/* `table FAM udpmuxd`: type NFT_MSG_NEWTABLE (added if missing) or
 * NFT_MSG_DELTABLE */
void ntx_table(struct nft_tx *t, uint16_t fam, uint16_t type);
/* A chain added if missing: a base chain (type "filter" or "nat") on hook
 * at prio, or a regular chain (type ""). With type NULL the chain is
 * deleted instead, which must be empty by then (ntx_flush_rules earlier in
 * the same transaction) and must exist (added earlier in it). */
void ntx_chain(struct nft_tx *t, uint16_t fam, const char *name, const char *type, uint32_t hook,
               int prio);
/* a UDP ct timeout object (seconds unreplied and replied) */
void ntx_timeout_add(struct nft_tx *t, uint16_t fam, const char *name, uint32_t unreplied_s,
                     uint32_t replied_s);
void ntx_timeout_del(struct nft_tx *t, uint16_t fam, const char *name);
/* every rule of the table */
void ntx_flush_rules(struct nft_tx *t, uint16_t fam);
/* a rule for chain of the table (NULL: no memory); expressions are added
 * with nftexpr.h, then ntx_rule_add() takes it */
struct nftnl_rule *ntx_rule_new(uint16_t fam, const char *chain);
/* appends rule r to the batch and frees it; with r NULL or err set it
 * only marks the transaction failed */
void ntx_rule_add(struct nft_tx *t, struct nftnl_rule *r, int err);

/* whether `table FAM udpmuxd` exists: 1, 0 (the kernel answered with an
 * error: no such table) or -errno (no answer) */
int ntx_table_exists(uint16_t fam);

/* Our names are short (rSLOT_U_R); a table holds one per kernel route once
 * a transaction went through. Longer names or more objects are not
 * udpmuxd's: they are left alone (the table goes at exit). */
#define TMO_NAME 40
#define TMO_MAX (2 * UMXD_MAX_ROUTES)

struct ntx_tmo_list {
    unsigned n;
    char name[TMO_MAX][TMO_NAME];
};

/* The ct timeout objects of `table FAM udpmuxd` (none when it is absent).
 * A dump that a ruleset change interrupted (anyone's: EINTR) is taken
 * again. 0 or -errno. */
int ntx_tmo_list(uint16_t fam, struct ntx_tmo_list *l);
int ntx_tmo_has(const struct ntx_tmo_list *l, const char *name);

#endif
