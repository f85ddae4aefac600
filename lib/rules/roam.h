/*
 * roam.h - keys that let the daemon keep routing a session whose client
 * changed address (roaming, NAT rebinding, QUIC migration) or that was
 * running when the daemon restarted, when the datagram itself carries no
 * handshake to classify. Pure functions over datagram bytes.
 *
 * A key is only ever taken from a datagram that has the whole structure of
 * its protocol, in the direction it belongs to, and only for a protocol the
 * route can carry at all. Reading "top bit set" as "QUIC long header" let a
 * DNS reply with an ID >= 0x8000 teach a one-byte connection id, and the
 * next DNS query with that byte from anywhere took the flow over: every
 * byte sequence that starts with a byte >= 0x80 (DNS, RTP, ...) must yield
 * nothing.
 *
 * How the daemon uses them:
 *   1. When a backend's reply goes back to a client, call umx_roam_key()
 *      with UMX_ROAM_FROM_SERVER and the route's protocol set
 *      (umx_rule_roam_protos() of its rule). If it returns 1, remember
 *      (kind, key) -> that flow (a bounded table with expiry).
 *   2. When a datagram arrives from an address with no pinned flow, call
 *      umx_roam_key() with UMX_ROAM_FROM_CLIENT (and, for QUIC short
 *      headers, the connection id lengths learnt in step 1) and look
 *      (kind, key) up in that table; move or route the flow only if the
 *      table entry's route has the key's protocol in its set.
 *   3. OpenVPN only: the client's own session id is never echoed by the
 *      server at a fixed offset (it sits behind the ack list, behind an
 *      HMAC of unknown size with tls-auth, encrypted with tls-crypt), so
 *      it is learnt from the client's control packets on its pinned flow:
 *      UMX_ROAM_FROM_CLIENT on a datagram of an established flow gives the
 *      key to remember as well as the key to look up.
 *
 * What is extracted (UMX_ROAM_FROM_SERVER = datagram from the backend):
 *   WireGuard (kind UMX_ROAM_WG, 4 bytes):
 *     handshake initiation (type 1, exactly 148 B) and response (type 2,
 *     exactly 92 B), reserved bytes zero -> the sender index (bytes 4-7);
 *     the client puts it in the receiver field of everything it sends for
 *     that session.
 *   QUIC (kind UMX_ROAM_QUIC, 4..20 bytes):
 *     a long header a server sends (Initial, Handshake, Retry) with a known
 *     version (v1, v2, the v2 draft codepoint, drafts 29-34), connection id
 *     lengths <= 20 and a Length that fits the datagram -> the Source
 *     Connection ID (the client uses it as Destination Connection ID
 *     afterwards). Shorter ids than UMX_ROAM_MIN_CID give no key: a short
 *     id is guessable, and a zero-length id means the server does not
 *     route by connection id at all. Later connection ids travel
 *     encrypted in NEW_CONNECTION_ID frames and cannot be learnt: a client
 *     that migrates *and* switches to one of them is only routable with
 *     QUIC-LB style server ids (NAT rebinding, where the client keeps its
 *     id, is followed).
 *   OpenVPN (kind UMX_ROAM_OVPN_PEER, 3 bytes):
 *     P_DATA_V2 (opcode 9) -> its peer-id (bytes 1-3, not 0xffffff); the
 *     server sends the client's own peer-id in both directions.
 *
 * What is extracted (UMX_ROAM_FROM_CLIENT = datagram from a client):
 *   WireGuard: response (type 2, 92 B), cookie reply (type 3, 64 B) and
 *     transport data (type 4, 32 + 16k B), reserved bytes zero -> receiver
 *     index (bytes 4-7). An initiation (type 1) gives none: it starts a new
 *     session and is classified instead.
 *   QUIC: a long header a client sends (Initial, 0-RTT, Handshake) with the
 *     checks above -> the Destination Connection ID (>= UMX_ROAM_MIN_CID);
 *     a short header -> the first cid_len bytes after byte 0 (the length is
 *     not on the wire: it is the length the backend uses for its ids, as
 *     learnt from step 1; 0 or less than UMX_ROAM_MIN_CID gives no key). A
 *     short header is any first byte with the top bit clear: RFC 9287 lets
 *     a peer grease the fixed bit 0x40 (ngtcp2 does, per connection), so
 *     the only structure left is the length (header protection needs
 *     1 + cid_len + 4 + 16 bytes). Such a datagram can be anything, so
 *     short headers are read only when the route set says QUIC.
 *   OpenVPN (only when the set says OpenVPN):
 *     P_DATA_V2 -> kind UMX_ROAM_OVPN_PEER, the 3-byte peer-id;
 *     control packets a client sends (soft reset 3, control 4, ack 5, hard
 *     reset client 7 and 10, control with wrapped key 11; key_id any,
 *     session id not zero, at least op + session + ack count + packet id)
 *     -> kind UMX_ROAM_OVPN_SID, the 8-byte session id (bytes 1-8).
 *     Peer-ids are assigned by the server from 0 upwards: a peer-id is a
 *     hint for which backend owns a session (the client floats only after
 *     the server authenticated the packet), never proof that a datagram
 *     from a new address belongs to a live client's flow.
 *
 * Keys are at most UMX_ROAM_KEY_MAX bytes. The kinds are separate key
 * spaces (a WireGuard index never equals a QUIC id).
 *
 * Both return 1 and fill key/keylen/kind when a key was found, 0 when the
 * datagram carries none, -EINVAL for NULL outputs, NULL data with n > 0 or
 * cid_len > 20.
 */
#ifndef UMX_ROAM_H
#define UMX_ROAM_H

#include <stddef.h>
#include <stdint.h>

#define UMX_ROAM_KEY_MAX 20
/* Shortest QUIC connection id that is a key. */
#define UMX_ROAM_MIN_CID 4

enum umx_roam_kind {
    UMX_ROAM_NONE = 0,
    UMX_ROAM_WG = 1,        /* 4-byte WireGuard session index */
    UMX_ROAM_QUIC = 2,      /* QUIC connection id, 4..20 bytes */
    UMX_ROAM_OVPN_SID = 3,  /* OpenVPN client session id, 8 bytes */
    UMX_ROAM_OVPN_PEER = 4, /* OpenVPN P_DATA_V2 peer-id, 3 bytes */
};

/* The protocols a route can carry, as a set (a route's rule decides it:
 * umx_rule_roam_protos()). 0 = none: such a route learns nothing. */
enum umx_roam_proto {
    UMX_ROAM_P_QUIC = 1u << 0,
    UMX_ROAM_P_WG = 1u << 1,
    UMX_ROAM_P_OPENVPN = 1u << 2,
};
#define UMX_ROAM_P_ALL (UMX_ROAM_P_QUIC | UMX_ROAM_P_WG | UMX_ROAM_P_OPENVPN)

/* The protocol a key kind belongs to (0 for UMX_ROAM_NONE or unknown): a
 * looked-up key may move or route a flow only when its route's set has it. */
static inline unsigned umx_roam_kind_proto(int kind)
{
    switch (kind) {
    case UMX_ROAM_WG:
        return UMX_ROAM_P_WG;
    case UMX_ROAM_QUIC:
        return UMX_ROAM_P_QUIC;
    case UMX_ROAM_OVPN_SID:
    case UMX_ROAM_OVPN_PEER:
        return UMX_ROAM_P_OPENVPN;
    default:
        return 0;
    }
}

enum umx_roam_dir {
    UMX_ROAM_FROM_SERVER = 0, /* a backend's reply: keys to learn */
    UMX_ROAM_FROM_CLIENT = 1, /* a client's datagram: keys to look up */
};

/* The key of datagram p[0..n) for protocols in protos (a set of
 * enum umx_roam_proto), read in direction dir; cid_len is the QUIC short
 * header connection id length (client side only; ignored otherwise). */
int umx_roam_key(const uint8_t *p, size_t n, enum umx_roam_dir dir, unsigned protos, size_t cid_len,
                 uint8_t key[UMX_ROAM_KEY_MAX], size_t *keylen, int *kind);

/*
 * The interface the daemon used before route protocol sets, kept for it:
 *   umx_roam_key_server(p, n, ...) is umx_roam_key(FROM_SERVER, QUIC | WG).
 *   umx_roam_key_client(p, n, cid_len, ...) is umx_roam_key(FROM_CLIENT,
 *     QUIC | WG) except that a short header must have the fixed bit 0x40
 *     set: without the route's protocol, a greased short header cannot be
 *     told from any other datagram.
 * Neither yields OpenVPN keys.
 */
int umx_roam_key_client(const uint8_t *p, size_t n, size_t cid_len, uint8_t key[20], size_t *keylen,
                        int *kind);
int umx_roam_key_server(const uint8_t *p, size_t n, uint8_t key[20], size_t *keylen, int *kind);

#endif
