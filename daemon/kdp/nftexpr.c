/*
 * nftexpr.c - builders of nftables rule expressions (libnftnl): loads,
 * comparisons, the matches and statements udpmuxd's table is made of
 * (nft.c lays out the table). Every load writes register 1, so a match
 * must follow its own load (nft.c, order_rule, says what happened once).
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <stdlib.h>
#include <string.h>

#include "kdp_int.h"
#include "nftexpr.h"

struct nftnl_expr *ex(struct nftnl_rule *r, const char *name)
{
    struct nftnl_expr *e = nftnl_expr_alloc(name);
    if (e)
        nftnl_rule_add_expr(r, e);
    return e;
}

int e_payload(struct nftnl_rule *r, uint32_t base, uint32_t off, uint32_t len)
{
    struct nftnl_expr *e = ex(r, "payload");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_BASE, base);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_OFFSET, off);
    nftnl_expr_set_u32(e, NFTNL_EXPR_PAYLOAD_LEN, len);
    return 0;
}

int e_cmp(struct nftnl_rule *r, uint32_t op, const void *data, uint32_t len)
{
    struct nftnl_expr *e = ex(r, "cmp");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, op);
    nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, data, len);
    return 0;
}

int e_meta(struct nftnl_rule *r, uint32_t key)
{
    struct nftnl_expr *e = ex(r, "meta");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_DREG, NFT_REG_1);
    return 0;
}

int e_ct(struct nftnl_rule *r, uint32_t key)
{
    struct nftnl_expr *e = ex(r, "ct");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    return 0;
}

/* reg1 = (reg1 & mask) ^ xor, 32 bits */
int e_bitwise(struct nftnl_rule *r, uint32_t mask, uint32_t xor)
{
    struct nftnl_expr *e = ex(r, "bitwise");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));
    nftnl_expr_set(e, NFTNL_EXPR_BITWISE_XOR, &xor, sizeof(xor));
    return 0;
}

/* (meta mark | ct mark) & MASK == val */
int m_mark(struct nftnl_rule *r, int ct, uint32_t val)
{
    uint32_t m = UMXD_KDP_MARK_MASK;
    int e = ct ? e_ct(r, NFT_CT_MARK) : e_meta(r, NFT_META_MARK);
    if (e == 0)
        e = e_bitwise(r, m, 0);
    return e ? e : e_cmp(r, NFT_CMP_EQ, &val, sizeof(val));
}

/* ct mark set (ct mark & mask) ^ xor */
static int ct_mark_set(struct nftnl_rule *r, uint32_t mask, uint32_t xor)
{
    struct nftnl_expr *e;
    if (e_ct(r, NFT_CT_MARK) || e_bitwise(r, mask, xor))
        return -ENOMEM;
    e = ex(r, "ct");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, NFT_CT_MARK);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_SREG, NFT_REG_1);
    return 0;
}

/* ct mark set ct mark & ~MASK | val */
int s_ctmark(struct nftnl_rule *r, uint32_t val)
{
    return ct_mark_set(r, ~UMXD_KDP_MARK_MASK, val);
}

/* ct mark set ct mark | bits */
int s_ctmark_or(struct nftnl_rule *r, uint32_t bits)
{
    return ct_mark_set(r, ~bits, bits);
}

int s_accept(struct nftnl_rule *r)
{
    struct nftnl_expr *v = ex(r, "immediate");
    if (!v)
        return -ENOMEM;
    nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_VERDICT, NF_ACCEPT);
    return 0;
}

int s_goto(struct nftnl_rule *r, const char *chain)
{
    struct nftnl_expr *v = ex(r, "immediate");
    if (!v)
        return -ENOMEM;
    nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_DREG, NFT_REG_VERDICT);
    nftnl_expr_set_u32(v, NFTNL_EXPR_IMM_VERDICT, (uint32_t)NFT_GOTO);
    nftnl_expr_set_str(v, NFTNL_EXPR_IMM_CHAIN, chain);
    return 0;
}

int m_udp(struct nftnl_rule *r)
{
    uint8_t p = IPPROTO_UDP;
    return e_meta(r, NFT_META_L4PROTO) ? -ENOMEM : e_cmp(r, NFT_CMP_EQ, &p, 1);
}

/* meta mark set meta mark & ~MASK | val */
int s_metamark(struct nftnl_rule *r, uint32_t val)
{
    struct nftnl_expr *e;
    if (e_meta(r, NFT_META_MARK) || e_bitwise(r, ~UMXD_KDP_MARK_MASK, val))
        return -ENOMEM;
    e = ex(r, "meta");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_KEY, NFT_META_MARK);
    nftnl_expr_set_u32(e, NFTNL_EXPR_META_SREG, NFT_REG_1);
    return 0;
}

/* ct KEY of one direction (packets: 8 bytes) */
int e_ct_dir(struct nftnl_rule *r, uint32_t key, uint8_t dir)
{
    struct nftnl_expr *e = ex(r, "ct");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_KEY, key);
    nftnl_expr_set_u8(e, NFTNL_EXPR_CT_DIR, dir);
    nftnl_expr_set_u32(e, NFTNL_EXPR_CT_DREG, NFT_REG_1);
    return 0;
}

/* the first datagram of a flow the udpmuxd table has not marked yet */
int m_new_unmarked(struct nftnl_rule *r)
{
    uint32_t bit = NF_CT_STATE_BIT(IP_CT_NEW), zero = 0;
    /* the mark first: every datagram of a decided flow fails there */
    if (m_mark(r, 1, 0))
        return -ENOMEM;
    return e_ct(r, NFT_CT_STATE) || e_bitwise(r, bit, 0) || e_cmp(r, NFT_CMP_NEQ, &zero, 4)
               ? -ENOMEM
               : 0;
}

int m_local_daddr(struct nftnl_rule *r)
{
    struct nftnl_expr *e = ex(r, "fib");
    uint32_t local = RTN_LOCAL;
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_FLAGS, NFTA_FIB_F_DADDR);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_RESULT, NFT_FIB_RESULT_ADDRTYPE);
    nftnl_expr_set_u32(e, NFTNL_EXPR_FIB_DREG, NFT_REG_1);
    return e_cmp(r, NFT_CMP_EQ, &local, sizeof(local));
}

int s_nfqueue(struct nftnl_rule *r, uint16_t queue)
{
    struct nftnl_expr *e = ex(r, "target");
    struct xt_NFQ_info_v3 *info = calloc(1, sizeof(*info));
    if (!e || !info) {
        free(info);
        return -ENOMEM;
    }
    info->queuenum = queue;
    info->queues_total = 1;
    /* nobody on the queue (udpmuxd killed, its table left): pass to the
     * port; a full queue is the queue's own policy (nfq.c) */
    info->flags = NFQ_FLAG_BYPASS;
    nftnl_expr_set_str(e, NFTNL_EXPR_TG_NAME, "NFQUEUE");
    nftnl_expr_set_u32(e, NFTNL_EXPR_TG_REV, 3);
    /* libnftnl takes ownership of the info buffer */
    nftnl_expr_set(e, NFTNL_EXPR_TG_INFO, info, sizeof(*info));
    return 0;
}

int s_imm(struct nftnl_rule *r, uint32_t reg, const void *data, uint32_t len)
{
    struct nftnl_expr *e = ex(r, "immediate");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_IMM_DREG, reg);
    nftnl_expr_set(e, NFTNL_EXPR_IMM_DATA, data, len);
    return 0;
}

int s_dnat(struct nftnl_rule *r, uint16_t fam, const struct sockaddr_storage *to)
{
    struct nftnl_expr *e;
    uint16_t port;
    if (fam == NFPROTO_IPV4) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)to;
        port = a->sin_port;
        if (s_imm(r, NFT_REG_1, &a->sin_addr, 4))
            return -ENOMEM;
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)to;
        port = a->sin6_port;
        if (s_imm(r, NFT_REG_1, &a->sin6_addr, 16))
            return -ENOMEM;
    }
    if (s_imm(r, NFT_REG_2, &port, 2))
        return -ENOMEM;
    e = ex(r, "nat");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_TYPE, NFT_NAT_DNAT);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_FAMILY, fam);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_ADDR_MIN, NFT_REG_1);
    nftnl_expr_set_u32(e, NFTNL_EXPR_NAT_REG_PROTO_MIN, NFT_REG_2);
    return 0;
}

int s_timeout(struct nftnl_rule *r, const char *name)
{
    struct nftnl_expr *e = ex(r, "objref");
    if (!e)
        return -ENOMEM;
    nftnl_expr_set_u32(e, NFTNL_EXPR_OBJREF_IMM_TYPE, NFT_OBJECT_CT_TIMEOUT);
    nftnl_expr_set_str(e, NFTNL_EXPR_OBJREF_IMM_NAME, name);
    return 0;
}

int s_masq(struct nftnl_rule *r)
{
    return ex(r, "masq") ? 0 : -ENOMEM;
}
