/*
 * nftexpr.h - builders of nftables rule expressions (libnftnl) for
 * udpmuxd's own tables (nft.c). Loads go to register 1 and every e_ / m_
 * call appends to rule r; each returns 0 or -ENOMEM. Internal to daemon/kdp/.
 */
#ifndef UDPMUXD_KDP_NFTEXPR_H
#define UDPMUXD_KDP_NFTEXPR_H

#include <stdint.h>
#include <sys/socket.h>

#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

/* a new expression of kind name appended to r (NULL: no memory) */
struct nftnl_expr *ex(struct nftnl_rule *r, const char *name);
int e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len);
int e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len);
int e_meta(struct nftnl_rule *r, uint32_t key);
int e_ct(struct nftnl_rule *r, uint32_t key);
/* reg1 = (reg1 & mask) ^ xor, 32 bits */
int e_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor);
/* (meta mark | ct mark) & MASK == val */
int m_mark(struct nftnl_rule *r, int ct, uint32_t val);
/* ct mark set ct mark & ~MASK | val */
int s_ctmark(struct nftnl_rule *r, uint32_t val);
int m_udp(struct nftnl_rule *r);
/* meta mark set meta mark & ~MASK | val */
int s_metamark(struct nftnl_rule *r, uint32_t val);
/* ct KEY of one direction (packets: 8 bytes) */
int e_ct_dir(struct nftnl_rule *r, uint32_t key, uint8_t dir);
/* the first datagram of a flow the udpmuxd table has not marked yet */
int m_new_unmarked(struct nftnl_rule *r);
int m_local_daddr(struct nftnl_rule *r);
int s_nfqueue(struct nftnl_rule *r, uint16_t queue);
int s_imm(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len);
int s_dnat(struct nftnl_rule *r, uint16_t fam, const struct sockaddr_storage *to);
int s_timeout(struct nftnl_rule *r, const char *name);
int s_masq(struct nftnl_rule *r);
/* ct mark set ct mark | bits; an accept verdict */
int s_ctmark_or(struct nftnl_rule *r, uint32_t bits);
int s_accept(struct nftnl_rule *r);
/* goto the table's regular chain (its end returns to the base chain's caller) */
int s_goto(struct nftnl_rule *r, const char *chain);

#endif
