/*
 * registry.c - the built-in probes in their default order, which is how
 * collisions are resolved when a datagram could be read as two protocols
 * (udpmux_probe_classify() returns the first match). The reasoning for the
 * order and every known collision is in docs/internals/probes.md; in short:
 *
 *   1. Exact anchors first: 32-bit magics or length fields that must equal
 *      the datagram size (stun, zrtp, wireguard, quic, ike, raknet,
 *      teamspeak, openvpn resets).
 *   2. ntp before dtls: NTP server replies (0x24) share first bytes with
 *      DTLS 1.3 unified headers; the NTP rule (mode, 48-byte size, stratum,
 *      poll, precision) is the more specific of the two for those bytes.
 *      dtls before snmp/syslog: a DTLS record needs fe fd/fe ff at byte 1,
 *      which neither can have, so the order between them never matters.
 *   3. Nested-length parsers (snmp, radius, dns).
 *   4. turn-channel before coap: ChannelData needs its 16-bit length to
 *      equal the datagram size, while CoAP's option walk accepts many
 *      random payloads, so a TURN datagram read as CoAP is the likelier
 *      mistake. QUIC short headers (0x40-0x7f) are never matched by quic;
 *      they belong to pinned flows.
 *   5. Text protocols (sip, ssdp, syslog), then bencode (dht).
 *   6. Weak ones last: tftp (DATA is two fixed bytes), utp, the tracker's
 *      responses, rtcp, and rtp, which has no anchor at all.
 *
 * Each probe's first-byte bitmap follows RFC 9443 where the protocol is in
 * its table (STUN 0-3, ZRTP 16-19, DTLS 20-63, TURN 64-79, RTP/RTCP
 * 128-191, QUIC long header 128-255), so the engine skips most probes
 * after one bit test.
 */
#include <pthread.h>

#include "common.h"
#include "registry.h"

const struct umx_probe *const umx_probes[] = {
    &umx_probe_stun,
    &umx_probe_zrtp,
    &umx_probe_wireguard,
    &umx_probe_quic,
    &umx_probe_ike,
    &umx_probe_raknet,
    &umx_probe_teamspeak,
    &umx_probe_openvpn,
    &umx_probe_ntp,
    &umx_probe_dtls,
    &umx_probe_snmp,
    &umx_probe_radius,
    &umx_probe_dns,
    &umx_probe_turn_channel,
    &umx_probe_coap,
    &umx_probe_sip,
    &umx_probe_ssdp,
    &umx_probe_syslog,
    &umx_probe_bittorrent_dht,
    &umx_probe_tftp,
    &umx_probe_utp,
    &umx_probe_bittorrent_tracker,
    &umx_probe_rtcp,
    &umx_probe_rtp,
};

const size_t umx_nprobes = sizeof(umx_probes) / sizeof(umx_probes[0]);

const struct umx_probe *umx_probe_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < umx_nprobes; i++)
        if (strcmp(umx_probes[i]->name, name) == 0)
            return umx_probes[i];
    return NULL;
}

/* Only quic keeps state across datagrams today; the state object is its
 * pending-ClientHello table (quic.c). */
int umx_quic_state_new(struct umx_probe_state **out, unsigned max_pending);
void umx_quic_state_free(struct umx_probe_state *st);

int umx_probe_state_new(struct umx_probe_state **out, unsigned max_pending)
{
    return umx_quic_state_new(out, max_pending);
}

void umx_probe_state_free(struct umx_probe_state *st)
{
    umx_quic_state_free(st);
}

/* Per first byte, the indices of the probes whose bitmap has it, in the
 * default order, ended by 0xff. Built once from the bitmaps (they are
 * compile-time constants, but C cannot turn them into lists at compile
 * time). */
static uint8_t cand[256][32];
static pthread_once_t cand_once = PTHREAD_ONCE_INIT;

static void cand_build(void)
{
    _Static_assert(sizeof(umx_probes) / sizeof(umx_probes[0]) < 31, "candidate list too short");
    for (unsigned b = 0; b < 256; b++) {
        unsigned k = 0;
        for (size_t i = 0; i < umx_nprobes; i++)
            if (umx_first_has(umx_probes[i]->first, (uint8_t)b))
                cand[b][k++] = (uint8_t)i;
        cand[b][k] = 0xff;
    }
}

int umx_probe_classify_fast(const uint8_t *data, size_t len)
{
    struct umx_probe_in in = {data, len, NULL, 0, NULL};

    if (len == 0) {
        for (size_t i = 0; i < umx_nprobes; i++)
            if (umx_probes[i]->match_empty && umx_probes[i]->match(NULL, &in) == UMX_MATCH)
                return (int)i;
        return -ENOENT;
    }
    if (!data)
        return -EINVAL;
    pthread_once(&cand_once, cand_build);
    for (const uint8_t *c = cand[data[0]]; *c != 0xff; c++)
        if (umx_probes[*c]->match(NULL, &in) == UMX_MATCH)
            return *c;
    return -ENOENT;
}
