/*
 * nfttx.c - one nf_tables transaction on udpmuxd's own table (see
 * nfttx.h), and the dump of its ct timeout objects.
 */
#include <netinet/in.h> /* before the linux/ headers (uapi guards) */
#include <errno.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/common.h>
#include <libnftnl/object.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "kdp_int.h"
#include "nfttx.h"

#define NFT_BUF (512u * 1024u)
/* a dump's answers: the kernel fills messages up to the reader's buffer
 * size, at most 32 KiB (later libmnl's MNL_SOCKET_DUMP_SIZE) */
#define NFT_DUMP_BUF 32768u

int ntx_begin(struct nft_tx *t)
{
    memset(t, 0, sizeof(*t));
    t->buf = malloc(NFT_BUF);
    t->nl = mnl_socket_open(NETLINK_NETFILTER);
    if (!t->buf || !t->nl || mnl_socket_bind(t->nl, 0, MNL_SOCKET_AUTOPID) < 0) {
        int e = t->nl ? -errno : -ENOMEM;
        if (t->nl)
            mnl_socket_close(t->nl);
        free(t->buf);
        return e ? e : -ENOMEM;
    }
    t->seq = (uint32_t)time(NULL);
    t->b = mnl_nlmsg_batch_start(t->buf, NFT_BUF);
    nftnl_batch_begin(mnl_nlmsg_batch_current(t->b), t->seq++);
    mnl_nlmsg_batch_next(t->b);
    return 0;
}

void ntx_free(struct nft_tx *t)
{
    if (t->b)
        mnl_nlmsg_batch_stop(t->b);
    if (t->nl)
        mnl_socket_close(t->nl);
    free(t->buf);
}

/* Room for one more message (a rule is well under 4 KiB). */
static struct nlmsghdr *tx_msg(struct nft_tx *t, uint16_t type, uint16_t family, uint16_t flags)
{
    if (mnl_nlmsg_batch_size(t->b) + 8192 > NFT_BUF) {
        t->oom = 1;
        return NULL;
    }
    return nftnl_nlmsg_build_hdr(mnl_nlmsg_batch_current(t->b), type, family, flags | NLM_F_ACK,
                                 t->seq++);
}

/* Sends the transaction; the kernel has answered every message by the time
 * sendto returns, so the answers are read without blocking. */
int ntx_commit(struct nft_tx *t)
{
    char rbuf[KDP_NL_BUF];
    uint32_t portid = mnl_socket_get_portid(t->nl);
    int err = 0;
    ssize_t n;
    if (t->oom)
        return -E2BIG;
    nftnl_batch_end(mnl_nlmsg_batch_current(t->b), t->seq++);
    mnl_nlmsg_batch_next(t->b);
    if (mnl_socket_sendto(t->nl, mnl_nlmsg_batch_head(t->b), mnl_nlmsg_batch_size(t->b)) < 0)
        return -errno;
    while ((n = recv(mnl_socket_get_fd(t->nl), rbuf, sizeof(rbuf), MSG_DONTWAIT)) > 0) {
        if (mnl_cb_run(rbuf, (size_t)n, 0, portid, NULL, NULL) < 0 && !err)
            err = -errno;
    }
    return err;
}

void ntx_table(struct nft_tx *t, uint16_t fam, uint16_t type)
{
    struct nftnl_table *tb = nftnl_table_alloc();
    struct nlmsghdr *nlh;
    if (!tb) {
        t->oom = 1;
        return;
    }
    nftnl_table_set_str(tb, NFTNL_TABLE_NAME, UMXD_KDP_TABLE);
    nftnl_table_set_u32(tb, NFTNL_TABLE_FAMILY, fam);
    nlh = tx_msg(t, type, fam, type == NFT_MSG_NEWTABLE ? NLM_F_CREATE : 0);
    if (nlh) {
        nftnl_table_nlmsg_build_payload(nlh, tb);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_table_free(tb);
}

void ntx_chain(struct nft_tx *t, uint16_t fam, const char *name, const char *type, uint32_t hook,
               int prio)
{
    struct nftnl_chain *c = nftnl_chain_alloc();
    struct nlmsghdr *nlh;
    if (!c) {
        t->oom = 1;
        return;
    }
    nftnl_chain_set_str(c, NFTNL_CHAIN_TABLE, UMXD_KDP_TABLE);
    nftnl_chain_set_str(c, NFTNL_CHAIN_NAME, name);
    if (type && *type) {
        nftnl_chain_set_str(c, NFTNL_CHAIN_TYPE, type);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_HOOKNUM, hook);
        nftnl_chain_set_s32(c, NFTNL_CHAIN_PRIO, prio);
        nftnl_chain_set_u32(c, NFTNL_CHAIN_POLICY, NF_ACCEPT);
    }
    nlh =
        type ? tx_msg(t, NFT_MSG_NEWCHAIN, fam, NLM_F_CREATE) : tx_msg(t, NFT_MSG_DELCHAIN, fam, 0);
    if (nlh) {
        nftnl_chain_nlmsg_build_payload(nlh, c);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_chain_free(c);
}

void ntx_timeout_add(struct nft_tx *t, uint16_t fam, const char *name, uint32_t unreplied_s,
                     uint32_t replied_s)
{
    struct nftnl_obj *o = nftnl_obj_alloc();
    uint32_t tmo[NFTNL_CTTIMEOUT_UDP_MAX];
    struct nlmsghdr *nlh;
    if (!o) {
        t->oom = 1;
        return;
    }
    tmo[NFTNL_CTTIMEOUT_UDP_UNREPLIED] = unreplied_s;
    tmo[NFTNL_CTTIMEOUT_UDP_REPLIED] = replied_s;
    nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, UMXD_KDP_TABLE);
    nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
    nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_CT_TIMEOUT);
    nftnl_obj_set_u16(o, NFTNL_OBJ_CT_TIMEOUT_L3PROTO, fam == NFPROTO_IPV4 ? AF_INET : AF_INET6);
    nftnl_obj_set_u8(o, NFTNL_OBJ_CT_TIMEOUT_L4PROTO, IPPROTO_UDP);
    nftnl_obj_set_data(o, NFTNL_OBJ_CT_TIMEOUT_ARRAY, tmo, sizeof(tmo));
    nlh = tx_msg(t, NFT_MSG_NEWOBJ, fam, NLM_F_CREATE);
    if (nlh) {
        nftnl_obj_nlmsg_build_payload(nlh, o);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_obj_free(o);
}

void ntx_timeout_del(struct nft_tx *t, uint16_t fam, const char *name)
{
    struct nftnl_obj *o = nftnl_obj_alloc();
    struct nlmsghdr *nlh;
    if (!o) {
        t->oom = 1;
        return;
    }
    nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, UMXD_KDP_TABLE);
    nftnl_obj_set_str(o, NFTNL_OBJ_NAME, name);
    nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_CT_TIMEOUT);
    nlh = tx_msg(t, NFT_MSG_DELOBJ, fam, 0);
    if (nlh) {
        nftnl_obj_nlmsg_build_payload(nlh, o);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_obj_free(o);
}

/* Every rule of the table (a DELRULE naming no chain flushes them all). */
void ntx_flush_rules(struct nft_tx *t, uint16_t fam)
{
    struct nftnl_rule *r = nftnl_rule_alloc();
    struct nlmsghdr *nlh;
    if (!r) {
        t->oom = 1;
        return;
    }
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, UMXD_KDP_TABLE);
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, fam);
    nlh = tx_msg(t, NFT_MSG_DELRULE, fam, 0);
    if (nlh) {
        nftnl_rule_nlmsg_build_payload(nlh, r);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_rule_free(r);
}

/* The ct timeout objects a table holds ------------------------------------------ */

int ntx_tmo_has(const struct ntx_tmo_list *l, const char *name)
{
    for (unsigned i = 0; i < l->n; i++)
        if (strcmp(l->name[i], name) == 0)
            return 1;
    return 0;
}

static int tmo_cb(const struct nlmsghdr *nlh, void *arg)
{
    struct ntx_tmo_list *l = arg;
    struct nftnl_obj *o = nftnl_obj_alloc();
    const char *name, *table;
    if (!o) {
        errno = ENOMEM;
        return MNL_CB_ERROR;
    }
    if (nftnl_obj_nlmsg_parse(nlh, o) == 0 &&
        nftnl_obj_get_u32(o, NFTNL_OBJ_TYPE) == NFT_OBJECT_CT_TIMEOUT &&
        (table = nftnl_obj_get_str(o, NFTNL_OBJ_TABLE)) && strcmp(table, UMXD_KDP_TABLE) == 0 &&
        (name = nftnl_obj_get_str(o, NFTNL_OBJ_NAME)) && strlen(name) < TMO_NAME && l->n < TMO_MAX)
        snprintf(l->name[l->n++], TMO_NAME, "%s", name);
    nftnl_obj_free(o);
    return MNL_CB_OK;
}

/* One dump of the ct timeout objects of `table FAM udpmuxd` into l, on a
 * socket of its own: what is left of a dump cut short (an error, EINTR)
 * goes with it instead of reaching the next dump or the transaction's
 * answers. 0 or -errno. */
static int tmo_dump(uint16_t fam, struct ntx_tmo_list *l, char *buf)
{
    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETOBJ, fam, NLM_F_DUMP, 1);
    struct nftnl_obj *o = nftnl_obj_alloc();
    int cb = MNL_CB_ERROR, r;
    if (!o)
        errno = ENOMEM;
    else if (nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0) {
        /* the kernel filters the dump by table and type */
        nftnl_obj_set_str(o, NFTNL_OBJ_TABLE, UMXD_KDP_TABLE);
        nftnl_obj_set_u32(o, NFTNL_OBJ_TYPE, NFT_OBJECT_CT_TIMEOUT);
        nftnl_obj_nlmsg_build_payload(nlh, o);
        cb = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? MNL_CB_ERROR : MNL_CB_OK;
    }
    while (cb == MNL_CB_OK) {
        ssize_t n = mnl_socket_recvfrom(nl, buf, NFT_DUMP_BUF);
        cb = n < 0 ? MNL_CB_ERROR
                   : mnl_cb_run(buf, (size_t)n, 1, mnl_socket_get_portid(nl), tmo_cb, l);
    }
    r = cb == MNL_CB_STOP ? 0 : -errno;
    if (r == -ENOENT) { /* no such table: nothing in it */
        l->n = 0;
        r = 0;
    }
    if (o)
        nftnl_obj_free(o);
    if (nl)
        mnl_socket_close(nl);
    return r;
}

int ntx_tmo_list(uint16_t fam, struct ntx_tmo_list *l)
{
    char *buf = malloc(NFT_DUMP_BUF);
    int r = -EINTR;
    if (!buf)
        return -ENOMEM;
    for (int tries = 0; tries < 3 && r == -EINTR; tries++) {
        l->n = 0;
        r = tmo_dump(fam, l, buf);
    }
    free(buf);
    return r;
}

struct nftnl_rule *ntx_rule_new(uint16_t fam, const char *chain)
{
    struct nftnl_rule *r = nftnl_rule_alloc();
    if (!r)
        return NULL;
    nftnl_rule_set_str(r, NFTNL_RULE_TABLE, UMXD_KDP_TABLE);
    nftnl_rule_set_str(r, NFTNL_RULE_CHAIN, chain);
    nftnl_rule_set_u32(r, NFTNL_RULE_FAMILY, fam);
    return r;
}

void ntx_rule_add(struct nft_tx *t, struct nftnl_rule *r, int err)
{
    struct nlmsghdr *nlh;
    if (!r || err) {
        t->oom = 1;
        if (r)
            nftnl_rule_free(r);
        return;
    }
    nlh = tx_msg(t, NFT_MSG_NEWRULE, (uint16_t)nftnl_rule_get_u32(r, NFTNL_RULE_FAMILY),
                 NLM_F_APPEND | NLM_F_CREATE);
    if (nlh) {
        nftnl_rule_nlmsg_build_payload(nlh, r);
        mnl_nlmsg_batch_next(t->b);
    }
    nftnl_rule_free(r);
}

int ntx_table_exists(uint16_t fam)
{
    char buf[KDP_NL_BUF];
    struct nlmsghdr *nlh = nftnl_nlmsg_build_hdr(buf, NFT_MSG_GETTABLE, fam, NLM_F_ACK, 1);
    struct nftnl_table *tb = nftnl_table_alloc();
    struct mnl_socket *nl = mnl_socket_open(NETLINK_NETFILTER);
    int r = -ENOMEM;
    ssize_t n;
    if (tb && nl && mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) == 0) {
        nftnl_table_set_str(tb, NFTNL_TABLE_NAME, UMXD_KDP_TABLE);
        nftnl_table_nlmsg_build_payload(nlh, tb);
        r = mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0 ? -errno : 0;
        if (r == 0) {
            n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
            r = n < 0 ? -errno
                      : mnl_cb_run(buf, (size_t)n, 1, mnl_socket_get_portid(nl), NULL, NULL) >= 0;
        }
    } else if (nl) {
        r = -errno;
    }
    if (tb)
        nftnl_table_free(tb);
    if (nl)
        mnl_socket_close(nl);
    return r;
}
