/*
 * nft.c - what udpmuxd's own nftables tables hold, sent in one transaction
 * each (nfttx.c: the kernel applies all of it or none).
 * `table ip udpmuxd` and `table ip6 udpmuxd` hold, per family:
 *
 *   ct timeout rSLOT_U_R
 *                       per kernel route: unreplied = unanswered-timeout
 *                       (U s), replied = idle-timeout (R s)
 *   chain queue         filter, prerouting, priority -150 (mangle)
 *       meta iiftype loopback accept   (queue-out saw those already)
 *   chain queue-out     filter, output, priority -150 (local clients)
 *       ct mark & KERNEL|USER == KERNEL|USER  accept   (a steady flow: one
 *       test for all its later datagrams)
 *       ct mark & KERNEL == KERNEL  goto kflow   (a kernel flow's datagram)
 *       [ip daddr LISTENER | fib daddr type local] udp dport PORT
 *       ct state new ct mark & MASK == 0  xt NFQUEUE num 4747 bypass
 *   chain kflow         regular: a kernel flow's datagrams, not steady yet
 *       (roaming routes) a kernel flow's 2nd/3rd datagram after the
 *       answer: meta mark tagged, NFQUEUE 4748 (the key it carries is
 *       learnt)
 *       a kernel flow's first 16 datagrams before the answer: tagged,
 *       NFQUEUE 4748 (kept in line behind the ones still queued)
 *       its 17th: ct mark set ct mark | USER  (steady from then on)
 *   chain dnat          nat, prerouting, priority -100 (dstnat)
 *   chain dnat-out      nat, output, priority -100
 *       meta mark & MASK == ID  ct mark set ct mark & ~MASK | ID
 *                               ct timeout set rSLOT_U_R  dnat to BACKEND
 *       meta mark & MASK == USER  ct mark set ct mark & ~MASK | USER
 *   chain snat          nat, postrouting, priority 100 (srcnat)
 *       ct mark & MASK == ID  masquerade     (routes without transparent)
 *   chain learn         filter, postrouting, priority 300 (after srcnat; only
 *                       while a roaming kernel route needs it)
 *       (roaming routes) a backend's handshake datagram to the peer (WireGuard
 *       type 1/2, QUIC long header) of a kernel flow: meta mark tagged,
 *       NFQUEUE 4748 (the new session key it names is learnt)
 *
 * The nft `queue` statement is not built into every kernel (CONFIG_NFT_QUEUE
 * is off on the development VM); the xtables NFQUEUE target through
 * nft_compat is what iptables-nft emits and works there, so the table uses
 * it.
 *
 * A table is updated in place, never replaced, because destroying a ct
 * timeout object makes the kernel detach it from every conntrack entry
 * that uses it (nf_ct_untimeout): a reload that replaced the table sent
 * every running kernel flow back to the kernel's default UDP timeouts. So
 * one transaction adds the table and chains (no-ops when they exist),
 * flushes the rules, adds the timeout objects it lacks, adds the rules and
 * deletes the objects no rule needs any more (last: the kernel refuses to
 * delete an object a rule still uses, and the flush drops the uses). The
 * kernel applies all of it or none, with no moment without rules.
 *
 * Objects cannot be changed in place (a NEWOBJ for an existing ct timeout
 * is accepted and ignored), so an object's name carries its values,
 * rSLOT_UNREPLIED_REPLIED: a route whose timeouts are unchanged keeps its
 * object and its flows keep their policy; a changed route gets a new
 * object, and its running flows, like those of a removed route, lose the
 * old one and fall back to the kernel's defaults (nothing moves an entry
 * to another policy). A table no longer needed is deleted after adding it,
 * so its absence is no error.
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_conntrack_common.h>
#include <linux/netfilter/nf_conntrack_tuple_common.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/xt_NFQUEUE.h>
#include <linux/rtnetlink.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libnftnl/common.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>

#include "kdp_int.h"
#include "nftexpr.h"
#include "nfttx.h"
#include "rules/roam.h"
#include "rules/rule.h"
#include "udpmuxd.h"

/* The ct timeout object of each kernel route ------------------------------------ */

/* The object of route i of rs: its name says its values, which is what
 * lets a reload keep it (see the top of the file). */
static void tmo_name(char *buf, size_t len, const struct umxd_routeset *rs, unsigned i)
{
    const struct umxd_route *rt = &rs->cfg->routes[i];
    snprintf(buf, len, "r%u_%u_%u", rs->slot[i],
             (uint32_t)(rt->unanswered_timeout_ns / 1000000000ull),
             (uint32_t)(rt->idle_timeout_ns / 1000000000ull));
}

static int tmo_wanted(const struct umxd_routeset *rs, const char *name)
{
    char want[TMO_NAME];
    for (unsigned i = 0; i < rs->cfg->nroutes; i++) {
        if (!rs->cfg->routes[i].kernel)
            continue;
        tmo_name(want, sizeof(want), rs, i);
        if (strcmp(want, name) == 0)
            return 1;
    }
    return 0;
}

/* Whether the list holds an object of route slot (with other values). */
static int tmo_slot_has(const struct ntx_tmo_list *l, unsigned slot)
{
    char pre[16];
    int len = snprintf(pre, sizeof(pre), "r%u_", slot);
    for (unsigned i = 0; i < l->n; i++)
        if (strncmp(l->name[i], pre, (size_t)len) == 0)
            return 1;
    return 0;
}

/* A kernel flow's datagram from the peer, the 2nd or 3rd of the flow,
 * after the backend answered: the one that proves the peer receives the
 * answers (return routability) and carries the session key the backend
 * gave (WireGuard receiver index, QUIC connection ID), which udpmuxd learns
 * for roaming. The count compares for equality: conntrack's counters are
 * host-order 64-bit values and nft_cmp orders bytes as memcmp does. */
static void proof_rule(struct nft_tx *t, uint16_t fam, unsigned slot, uint64_t nth)
{
    struct nftnl_rule *r = ntx_rule_new(fam, "kflow");
    uint32_t mask = UMXD_KDP_MARK_MASK & ~(0xfu << UMXD_KDP_MARK_SHIFT);
    uint32_t val = umxd_kdp_mark(slot, 0), seen = IPS_SEEN_REPLY;
    uint8_t dir8 = IP_CT_DIR_ORIGINAL;
    int e = r ? 0 : -ENOMEM;
    if (!e)
        e = e_ct(r, NFT_CT_MARK) || e_bitwise(r, mask, 0) || e_cmp(r, NFT_CMP_EQ, &val, 4) ||
            e_ct(r, NFT_CT_STATUS) || e_bitwise(r, seen, 0) || e_cmp(r, NFT_CMP_EQ, &seen, 4) ||
            e_ct_dir(r, NFT_CT_PKTS, IP_CT_DIR_ORIGINAL) || e_cmp(r, NFT_CMP_EQ, &nth, 8) ||
            m_udp(r) || e_ct(r, NFT_CT_DIRECTION) || e_cmp(r, NFT_CMP_EQ, &dir8, 1);
    /* the queue hands over the packet mark, not the ct mark: tag the
     * datagram with the route's kernel mark so udpmuxd tells it from a new
     * flow (the verdict takes the tag off again) */
    if (!e)
        e = s_metamark(r, val) || s_nfqueue(r, UMXD_KDP_QUEUE_ORDER);
    ntx_rule_add(t, r, e);
}

/* A backend's datagram to the peer that names a new session key (the
 * WireGuard handshake messages a backend sends, a QUIC server's long
 * headers), on a roaming route's kernel flow: queued after the NAT is
 * undone (postrouting, after srcnat: the datagram reads listener -> peer,
 * so udpmuxd finds its flow by address) and left unchanged, to learn the
 * key as the workers learn it from every reply (engine.c,
 * umxd_reply_check). Without it a key that appears after the flow's 3rd
 * datagram was never learnt: WireGuard rekeys every two minutes, and a
 * peer that moved after a rekey was a stranger. Only these first bytes
 * are queued, never the data: a WireGuard initiation (148 B) or response
 * (92 B) is udp length 156 or 100 with type 1 or 2 and zero reserved
 * bytes; a QUIC long header has its top bit set (a server sends them
 * during a handshake only). */
enum learn_what { LEARN_WG_INIT, LEARN_WG_RESP, LEARN_QUIC_LONG };
static void learn_rule(struct nft_tx *t, uint16_t fam, unsigned slot, enum learn_what what)
{
    struct nftnl_rule *r = ntx_rule_new(fam, "learn");
    /* any backend, in its ordering window or steady (see steady_rule) */
    uint32_t mask = UMXD_KDP_MARK_MASK & ~((0xfu | UMXD_KDP_F_USER) << UMXD_KDP_MARK_SHIFT);
    uint32_t val = umxd_kdp_mark(slot, 0);
    uint8_t dir8 = IP_CT_DIR_REPLY;
    int e = r ? 0 : -ENOMEM;
    if (!e)
        e = e_ct(r, NFT_CT_DIRECTION) || e_cmp(r, NFT_CMP_EQ, &dir8, 1) || e_ct(r, NFT_CT_MARK) ||
            e_bitwise(r, mask, 0) || e_cmp(r, NFT_CMP_EQ, &val, 4) || m_udp(r);
    if (!e && what == LEARN_QUIC_LONG) {
        const uint8_t top[4] = {0x80, 0, 0, 0};
        uint32_t tm;
        memcpy(&tm, top, sizeof(tm));
        e = e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 8, 4) || e_bitwise(r, tm, 0) ||
            e_cmp(r, NFT_CMP_EQ, &tm, 4);
    } else if (!e) {
        const uint8_t type[4] = {what == LEARN_WG_INIT ? 1 : 2, 0, 0, 0};
        uint16_t ulen = htons(what == LEARN_WG_INIT ? 8 + 148 : 8 + 92);
        e = e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 4, 2) || e_cmp(r, NFT_CMP_EQ, &ulen, 2) ||
            e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 8, 4) || e_cmp(r, NFT_CMP_EQ, type, 4);
    }
    /* tagged with the route's kernel mark like a proof datagram; udpmuxd
     * tells the two apart by the hook (postrouting) */
    if (!e)
        e = s_metamark(r, val) || s_nfqueue(r, UMXD_KDP_QUEUE_ORDER);
    ntx_rule_add(t, r, e);
}

/* Order: a kernel flow's datagrams that arrive while earlier ones of the
 * same flow may still wait in the queue (their entries were new as well)
 * must not overtake them: until the backend answers, the flow's first 16
 * datagrams from the peer go through the queue too (FIFO), tagged with
 * both udpmuxd bits, and leave unchanged. Measured without it: a 200-datagram
 * burst on a new flow had datagram 12 delivered before datagram 2 (the
 * first verdict confirmed the entry, 12 arrived established and took the
 * direct path while 2..11 were being re-injected). The counter is
 * converted to network order for the comparison (nft_cmp orders bytes). */
static void order_rule(struct nft_tx *t, uint16_t fam)
{
    struct nftnl_rule *r = ntx_rule_new(fam, "kflow");
    uint32_t seen = IPS_SEEN_REPLY, zero = 0;
    uint32_t tag = (UMXD_KDP_F_KERNEL | UMXD_KDP_F_USER) << UMXD_KDP_MARK_SHIFT;
    uint64_t lim = htobe64(17);
    struct nftnl_expr *bo;
    int e = r ? 0 : -ENOMEM;
    /* The counter last: every match loads register 1, so none may sit
     * between the counter's load and its comparison (the loopback test
     * once did: the interface type replaced the count, and every datagram
     * of an unanswered flow from another host was queued). No direction
     * test: conntrack sets seen-reply on the first reply before any chain
     * runs, so a reply never passes the status test (the counter's load
     * is the dearer one: ct mark, state and status have nf_tables' fast
     * path, nft_ct_get_fast_eval, the counters not). No ct mark test:
     * chain kflow holds only kernel flows not yet steady. */
    if (!e)
        e = e_ct(r, NFT_CT_STATUS) || e_bitwise(r, seen, 0) || e_cmp(r, NFT_CMP_EQ, &zero, 4) ||
            m_udp(r) || e_ct_dir(r, NFT_CT_PKTS, IP_CT_DIR_ORIGINAL);
    if (!e) {
        bo = ex(r, "byteorder");
        if (!bo) {
            e = -ENOMEM;
        } else {
            nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_SREG, NFT_REG_1);
            nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_DREG, NFT_REG_1);
            nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_OP, NFT_BYTEORDER_HTON);
            nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_LEN, 8);
            nftnl_expr_set_u32(bo, NFTNL_EXPR_BYTEORDER_SIZE, 8);
            e = e_cmp(r, NFT_CMP_LT, &lim, 8);
        }
    }
    if (!e)
        e = s_metamark(r, tag) || s_nfqueue(r, UMXD_KDP_QUEUE_ORDER);
    ntx_rule_add(t, r, e);
}

/* The first rule of chain queue: a datagram that arrives on loopback was
 * sent by this host, so chain queue-out saw it already (queued it when new,
 * kept it in line, took its proof) and, DNATed since, it would only be
 * queued a second time (bench/run, 18 000 flows: loss-free 120k -> 160k
 * datagrams/s without that). One cheap test ends the chain for all of them. */
static void loopback_rule(struct nft_tx *t, uint16_t fam)
{
    struct nftnl_rule *r = ntx_rule_new(fam, "queue");
    uint16_t lo = ARPHRD_LOOPBACK;
    ntx_rule_add(t, r,
                 !r || e_meta(r, NFT_META_IIFTYPE) || e_cmp(r, NFT_CMP_EQ, &lo, 2) || s_accept(r));
}

/* Kernel flows. Every datagram of the host meets the queue chains, and
 * most of them (the host's other traffic, a decided flow's later
 * datagrams) need nothing there. After the loopback test a steady kernel
 * flow's datagram meets one rule (steady_gate, below), a kernel flow's
 * other datagrams one more that sends them to the regular chain kflow with
 * the rules only they need (kflow_goto: proof, order, steady), and the
 * host's other traffic those two tests of the ct mark and the queue rules'
 * address. Before, with all of it in the base chains, a steady datagram
 * met two rules and the host's other traffic four.
 *
 * Steady kernel flows. Past its ordering window (its 17th datagram from
 * the peer, answered or not) a kernel flow's ct mark gets the USER bit
 * beside KERNEL (steady_rule), and from then on one test ends the chain
 * for its datagrams (steady_gate): a one-way flow (syslog, NetFlow,
 * statsd: never answered) used to run the order rule's status and
 * packet-counter loads on every datagram, 0.86x of a static DNAT without
 * GSO (230k against 267k datagrams/s, by hand). The USER bit alone still
 * means a flow of the workers; KERNEL|USER as a packet mark is the order
 * tag, a different namespace (the ct mark is never copied to the packet).
 * The proof rules need the window (datagrams 2 and 3), the learn rules
 * ignore the bit. */
#define KU ((UMXD_KDP_F_KERNEL | UMXD_KDP_F_USER) << UMXD_KDP_MARK_SHIFT)
static void steady_gate(struct nft_tx *t, uint16_t fam, const char *chain)
{
    struct nftnl_rule *r = ntx_rule_new(fam, chain);
    uint32_t ku = KU;
    ntx_rule_add(t, r,
                 !r || e_ct(r, NFT_CT_MARK) || e_bitwise(r, ku, 0) ||
                     e_cmp(r, NFT_CMP_EQ, &ku, 4) || s_accept(r));
}

/* after steady_gate: a kernel flow that is not steady yet */
static void kflow_goto(struct nft_tx *t, uint16_t fam, const char *chain)
{
    struct nftnl_rule *r = ntx_rule_new(fam, chain);
    uint32_t kbit = UMXD_KDP_F_KERNEL << UMXD_KDP_MARK_SHIFT;
    ntx_rule_add(t, r,
                 !r || e_ct(r, NFT_CT_MARK) || e_bitwise(r, kbit, 0) ||
                     e_cmp(r, NFT_CMP_EQ, &kbit, 4) || s_goto(r, "kflow"));
}

/* last in kflow */
static void steady_rule(struct nft_tx *t, uint16_t fam)
{
    struct nftnl_rule *r = ntx_rule_new(fam, "kflow");
    uint32_t ubit = UMXD_KDP_F_USER << UMXD_KDP_MARK_SHIFT;
    uint64_t nth = 17; /* host order: equality only (see proof_rule) */
    ntx_rule_add(t, r,
                 !r || e_ct_dir(r, NFT_CT_PKTS, IP_CT_DIR_ORIGINAL) ||
                     e_cmp(r, NFT_CMP_EQ, &nth, 8) || s_ctmark_or(r, ubit));
}

/* The queue rule for one listener, in one of the queue chains. */
static void queue_rule(struct nft_tx *t, uint16_t fam, const char *chain,
                       const struct sockaddr_storage *ls)
{
    struct nftnl_rule *r = ntx_rule_new(fam, chain);
    int e = r ? 0 : -ENOMEM;
    uint16_t port;
    int wild;
    /* Every datagram the host receives (or sends) runs this rule, so the
     * tests that fail most often and cost least come first: a listener's
     * address (the host's other traffic fails there), then the ct mark (set
     * on every flow udpmuxd decided: their datagrams fail there), the
     * state, the port; the FIB lookup of a wildcard listener last. */
    if (fam == NFPROTO_IPV4) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ls;
        port = a->sin_port;
        wild = a->sin_addr.s_addr == htonl(INADDR_ANY);
        if (!e && !wild)
            e = e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 16, 4) ||
                e_cmp(r, NFT_CMP_EQ, &a->sin_addr, 4);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ls;
        port = a->sin6_port;
        wild = IN6_IS_ADDR_UNSPECIFIED(&a->sin6_addr);
        if (!e && !wild)
            e = e_payload(r, NFT_PAYLOAD_NETWORK_HEADER, 24, 16) ||
                e_cmp(r, NFT_CMP_EQ, &a->sin6_addr, 16);
    }
    if (!e)
        e = m_new_unmarked(r) || m_udp(r) || e_payload(r, NFT_PAYLOAD_TRANSPORT_HEADER, 2, 2) ||
            e_cmp(r, NFT_CMP_EQ, &port, 2);
    /* a wildcard listener: only datagrams to this host, not forwarded ones */
    if (!e && wild)
        e = m_local_daddr(r);
    if (!e)
        e = s_nfqueue(r, UMXD_KDP_QUEUE);
    ntx_rule_add(t, r, e);
}

static int listener_family(const struct sockaddr_storage *ls, uint16_t fam)
{
    if (fam == NFPROTO_IPV4)
        return ls->ss_family == AF_INET;
    return ls->ss_family == AF_INET6;
}

/* Whether family fam gets a table for config c: it needs a kernel backend
 * and a listener of that family (a dual-stack [::]:PORT listener also takes
 * IPv4). */
static int family_wanted(const struct umxd_config *c, uint16_t fam)
{
    int any = 0;
    for (unsigned i = 0; i < c->nroutes; i++)
        if (c->routes[i].kernel)
            for (unsigned b = 0; b < c->routes[i].nbackends; b++)
                if (listener_family(&c->routes[i].backends[b].addr, fam))
                    any = 1;
    for (unsigned l = 0; l < c->nlisten; l++)
        if (listener_family(&c->listen[l], fam) ||
            (fam == NFPROTO_IPV4 && c->listen[l].ss_family == AF_INET6 &&
             IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&c->listen[l])->sin6_addr)))
            any |= 2;
    return any == 3;
}

/* The table of one family for route set rs (NULL: deleted), updated in
 * place (see the top of the file). 0 or -errno (nothing sent then). */
static int build_family(struct nft_tx *t, uint16_t fam, const struct umxd_routeset *rs,
                        uint8_t *changed)
{
    const struct umxd_config *c = rs ? rs->cfg : NULL;
    struct ntx_tmo_list *have;
    int err, learning = 0;
    if (!c || !family_wanted(c, fam)) {
        ntx_table(t, fam, NFT_MSG_NEWTABLE);
        ntx_table(t, fam, NFT_MSG_DELTABLE);
        return 0;
    }
    have = malloc(sizeof(*have));
    if (!have)
        return -ENOMEM;
    err = ntx_tmo_list(fam, have);
    if (err < 0) {
        free(have);
        return err;
    }
    ntx_table(t, fam, NFT_MSG_NEWTABLE);
    ntx_chain(t, fam, "queue", "filter", NF_INET_PRE_ROUTING, -150);
    ntx_chain(t, fam, "queue-out", "filter", NF_INET_LOCAL_OUT, -150);
    ntx_chain(t, fam, "dnat", "nat", NF_INET_PRE_ROUTING, -100);
    ntx_chain(t, fam, "dnat-out", "nat", NF_INET_LOCAL_OUT, -100);
    ntx_chain(t, fam, "snat", "nat", NF_INET_POST_ROUTING, 100);
    ntx_chain(t, fam, "learn", "filter", NF_INET_POST_ROUTING, 300);
    ntx_chain(t, fam, "kflow", "", 0, 0);
    ntx_flush_rules(t, fam);
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *rt = &c->routes[i];
        char name[TMO_NAME];
        if (!rt->kernel)
            continue;
        tmo_name(name, sizeof(name), rs, i);
        if (ntx_tmo_has(have, name))
            continue;
        ntx_timeout_add(t, fam, name, (uint32_t)(rt->unanswered_timeout_ns / 1000000000ull),
                        (uint32_t)(rt->idle_timeout_ns / 1000000000ull));
        if (tmo_slot_has(have, rs->slot[i]))
            changed[rs->slot[i]] = 1;
    }
    loopback_rule(t, fam);
    for (int out = 0; out < 2; out++) {
        steady_gate(t, fam, out ? "queue-out" : "queue");
        kflow_goto(t, fam, out ? "queue-out" : "queue");
    }
    for (unsigned l = 0; l < c->nlisten; l++) {
        struct sockaddr_storage ls = c->listen[l];
        if (!listener_family(&ls, fam)) {
            /* a dual-stack [::]:PORT listener also takes IPv4 */
            uint16_t port = ((const struct sockaddr_in6 *)&ls)->sin6_port;
            struct sockaddr_in *a = (struct sockaddr_in *)&ls;
            if (fam != NFPROTO_IPV4 || ls.ss_family != AF_INET6 ||
                !IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)&c->listen[l])->sin6_addr))
                continue;
            memset(&ls, 0, sizeof(ls));
            a->sin_family = AF_INET;
            a->sin_port = port;
        }
        queue_rule(t, fam, "queue", &ls);
        queue_rule(t, fam, "queue-out", &ls);
    }
    /* the peer's proof datagrams of routes that roam (roaming = yes and a
     * rule that can carry a protocol with session keys) */
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *rt = &c->routes[i];
        if (!rt->kernel || !rt->roaming || !rt->rule || !umx_rule_roam_protos(rt->rule))
            continue;
        proof_rule(t, fam, rs->slot[i], 2);
        proof_rule(t, fam, rs->slot[i], 3);
        if (umx_rule_roam_protos(rt->rule) & UMX_ROAM_P_WG) {
            learn_rule(t, fam, rs->slot[i], LEARN_WG_INIT);
            learn_rule(t, fam, rs->slot[i], LEARN_WG_RESP);
            learning = 1;
        }
        if (umx_rule_roam_protos(rt->rule) & UMX_ROAM_P_QUIC) {
            learn_rule(t, fam, rs->slot[i], LEARN_QUIC_LONG);
            learning = 1;
        }
    }
    /* an empty base chain still costs every forwarded datagram a hook
     * call: the learn chain exists only while a route needs it */
    if (!learning)
        ntx_chain(t, fam, "learn", NULL, 0, 0);
    order_rule(t, fam);
    steady_rule(t, fam);
    for (unsigned i = 0; i < c->nroutes; i++) {
        const struct umxd_route *rt = &c->routes[i];
        char name[TMO_NAME];
        if (!rt->kernel)
            continue;
        tmo_name(name, sizeof(name), rs, i);
        for (unsigned b = 0; b < rt->nbackends; b++) {
            uint32_t id = umxd_kdp_mark(rs->slot[i], b);
            struct nftnl_rule *r;
            if (!listener_family(&rt->backends[b].addr, fam))
                continue;
            for (int out = 0; out < 2; out++) {
                r = ntx_rule_new(fam, out ? "dnat-out" : "dnat");
                ntx_rule_add(t, r,
                             !r || m_udp(r) || m_mark(r, 0, id) || s_ctmark(r, id) ||
                                 s_timeout(r, name) || s_dnat(r, fam, &rt->backends[b].addr));
            }
            if (!rt->transparent) {
                r = ntx_rule_new(fam, "snat");
                ntx_rule_add(t, r, !r || m_mark(r, 1, id) || s_masq(r));
            }
        }
    }
    for (int out = 0; out < 2; out++) {
        struct nftnl_rule *r = ntx_rule_new(fam, out ? "dnat-out" : "dnat");
        ntx_rule_add(t, r,
                     !r || m_mark(r, 0, UMXD_KDP_MARK_USER) || s_ctmark(r, UMXD_KDP_MARK_USER));
    }
    /* after the flush: no rule uses these any more */
    for (unsigned i = 0; i < have->n; i++) {
        if (tmo_wanted(rs, have->name[i]))
            continue;
        ntx_timeout_del(t, fam, have->name[i]);
    }
    free(have);
    return 0;
}

int kdp_nft_apply(const struct umxd_routeset *rs)
{
    uint8_t changed[UMXD_MAX_SLOTS] = {0};
    struct nft_tx t;
    int r = ntx_begin(&t), n = 0;
    if (r < 0)
        return r;
    r = build_family(&t, NFPROTO_IPV4, rs, changed);
    if (r == 0)
        r = build_family(&t, NFPROTO_IPV6, rs, changed);
    if (r == 0)
        r = ntx_commit(&t);
    ntx_free(&t);
    for (unsigned s = 0; s < UMXD_MAX_SLOTS; s++)
        n += changed[s];
    return r < 0 ? r : n;
}

int kdp_nft_exists(void)
{
    return ntx_table_exists(NFPROTO_IPV4) > 0 || ntx_table_exists(NFPROTO_IPV6) > 0;
}
