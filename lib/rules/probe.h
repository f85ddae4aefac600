/*
 * probe.h - the contract between the rule engine (lib/rules/rule.c) and the
 * built-in protocol probes (lib/rules/probes/<protocol>.c).
 *
 * A probe is a pure, bounded parser: it reads the datagram with the cursor
 * reader (lib/rules/cursor.h), never through pointer casts, never past len,
 * allocates nothing per datagram, and answers match or no match. Parameters
 * (`quic sni=*.example.org`, `wireguard pubkey=...`) are parsed once when a
 * rule is compiled into an immutable object passed back to every match call.
 */
#ifndef UMX_PROBE_H
#define UMX_PROBE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "udpmux.h"

enum umx_verdict {
    UMX_NOMATCH = 0,
    UMX_MATCH = 1,
    /* The datagram is the start of something this probe would match with
     * more datagrams of the same peer (a QUIC ClientHello split across
     * Initial packets). Only returned when in->state is not NULL; the caller
     * holds the datagram and offers the next one from the same peer. */
    UMX_MORE = 2,
};

/* Caller-owned scratch for probes that need to see more than one datagram
 * (QUIC Initial reassembly). One per thread; bounded; see probes/quic.c.
 * May be NULL: such probes then decide on one datagram alone. */
struct umx_probe_state;

struct umx_probe_in {
    const uint8_t *data;
    size_t len;
    const struct sockaddr *peer; /* may be NULL */
    uint64_t now_ns;
    struct umx_probe_state *state; /* may be NULL */
};

/* One key=value parameter of a probe term. Values are unquoted already. */
struct umx_kv {
    const char *key;
    const char *val;
};

struct umx_probe {
    const char *name;
    /* Returns an enum umx_verdict. params is what params_new produced, or
     * NULL when the rule gave no parameters. */
    int (*match)(const void *params, const struct umx_probe_in *in);
    /* Parses parameters; NULL when the probe takes none (then any parameter
     * is a compile error). Writes a one-line message into err on failure
     * and returns -EINVAL / -ENOENT (missing key file) / -ENOMEM. */
    int (*params_new)(void **out, const struct umx_kv *kv, size_t nkv, char *err, size_t errlen);
    void (*params_free)(void *params);
    /* Bitmap of first bytes this probe can ever match (bit b of first[b/8]),
     * used to skip probes quickly; a zero-length datagram matches only if
     * match_empty is set. */
    uint8_t first[32];
    int match_empty;
    /* The roaming protocol (an enum umx_roam_proto of rules/roam.h) the
     * datagrams this probe matches belong to, 0 if none: a route learns
     * session keys only for the protocols its rule can match. */
    unsigned roam;
};

/* The built-in probes in the default order (the order resolves collisions;
 * see docs/internals/probes.md). */
extern const struct umx_probe *const umx_probes[];
extern const size_t umx_nprobes;

/* Finds a probe by name, NULL if unknown. */
const struct umx_probe *umx_probe_find(const char *name);

/* Per-thread probe state for multi-datagram probes. */
int umx_probe_state_new(struct umx_probe_state **out, unsigned max_pending);
void umx_probe_state_free(struct umx_probe_state *st);

/* Helpers for probes: set first-byte ranges in a bitmap at compile time. */
#define UMX_FIRST_ALL                                                                              \
    {                                                                                              \
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  \
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,    \
            0xff, 0xff, 0xff                                                                       \
    }

static inline int umx_first_has(const uint8_t first[32], uint8_t b)
{
    return (first[b >> 3] >> (b & 7)) & 1;
}

#endif
