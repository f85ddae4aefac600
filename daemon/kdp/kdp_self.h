/*
 * kdp_self.h - the queue thread's state, shared by the two files that touch
 * it: kdp.c (the thread, its engine, the table's life, the views) and
 * handover.c (its flows out to an upgrade's new process and in from the
 * old one). Internal to daemon/kdp/.
 */
#ifndef UMXD_KDP_SELF_H
#define UMXD_KDP_SELF_H

#include <pthread.h>
#include <stdint.h>
#include <sys/socket.h>

#include "kdp_int.h"
#include "path/path.h"
#include "udpmuxd.h"

#define KDP_FLOWS_MAX 65536u
#define KDP_HOLDS 64u
#define KDP_HOLD_NS (2000ull * 1000000ull)

struct kdp_hold {
    uint32_t id, host_mark;
    uint64_t since;
    struct sockaddr_storage peer;
};

struct kdp {
    struct umxd *d;
    struct kdp_nfq *q;
    pthread_t th;
    int started;
    int stop;            /* atomic */
    uint64_t seen_epoch; /* atomic */
    const struct umxd_routeset *rs;
    struct umx_ft *ft;
    struct umx_probe_state *pstate;
    struct umxd_rate_slot *rate_flows, *rate_replies;
    struct umxd_prefix_slot *prefix;
    struct umxd_session *sessions;
    struct umxd_engine eng;
    struct umxd_env env;
    uint64_t route_flows[UMXD_MAX_SLOTS];
    struct kdp_hold hold[KDP_HOLDS];
    unsigned nhold;
    uint64_t acct_checked; /* watch_accounting() */
    int acct_off;
    struct umxd_kdp_stats st; /* atomic adds */
};

#define KDP_ADD(x, n) __atomic_fetch_add(&(x), (n), __ATOMIC_RELAXED)

/* The engine's release callback for the queue thread's flows (arg: the kdp). */
void kdp_flow_release(struct umx_flow *f, void *arg, int reason);
/* The old process's queue-thread flows (UMXD_HO_KDP records of in) into
 * ours, before the thread's first read; logs how many. */
struct umxd_handoff_in;
void kdp_adopt_flows(struct kdp *k, const struct umxd_handoff_in *in);

#endif
