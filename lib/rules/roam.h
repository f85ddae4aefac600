/*
 * roam.h - keys that let the daemon keep routing a session whose client
 * changed address (roaming, NAT rebinding, QUIC migration) or that was
 * running when the daemon restarted, when the datagram itself carries no
 * handshake to classify. Pure functions over datagram bytes.
 *
 * How the daemon uses them:
 *   1. When a backend's reply goes back to a client, call
 *      umx_roam_key_server() on it. If it returns 1, remember
 *      (kind, key) -> that backend (a bounded table with expiry).
 *   2. When a datagram arrives from an address with no pinned flow and no
 *      probe matches, call umx_roam_key_client() on it and look
 *      (kind, key) up in that table.
 *
 * What is extracted:
 *   WireGuard (kind UMX_ROAM_WG):
 *     server side: handshake initiation (type 1, 148 B) and response
 *       (type 2, 92 B) from the backend -> its sender index (bytes 4-7);
 *       the client puts it in the receiver field of everything it sends
 *       for that session.
 *     client side: response (type 2), cookie reply (type 3, 64 B) and
 *       transport data (type 4, 32 + 16k B) -> receiver index (bytes 4-7).
 *   QUIC (kind UMX_ROAM_QUIC):
 *     server side: long header -> Source Connection ID (the client uses it
 *       as Destination Connection ID afterwards). Later connection ids
 *       travel encrypted in NEW_CONNECTION_ID frames and cannot be
 *       learned; a migrating client that switches to one of them is only
 *       routable with QUIC-LB style server ids.
 *     client side: long header -> Destination Connection ID; short header
 *       -> the first cid_len bytes after byte 0 (the length is not on the
 *       wire: it is the length the backend uses for its connection ids,
 *       configured per route; 0 means short headers yield no key).
 * Keys are at most 20 bytes. The kinds are separate key spaces.
 *
 * Both return 1 and fill key/keylen/kind when a key was found, 0 when the
 * datagram carries none, -EINVAL for NULL outputs or cid_len > 20.
 */
#ifndef UMX_ROAM_H
#define UMX_ROAM_H

#include <stddef.h>
#include <stdint.h>

enum umx_roam_kind {
    UMX_ROAM_NONE = 0,
    UMX_ROAM_WG = 1,   /* 4-byte WireGuard session index */
    UMX_ROAM_QUIC = 2, /* QUIC connection id, 0..20 bytes */
};

int umx_roam_key_client(const uint8_t *p, size_t n, size_t cid_len, uint8_t key[20], size_t *keylen,
                        int *kind);
int umx_roam_key_server(const uint8_t *p, size_t n, uint8_t key[20], size_t *keylen, int *kind);

#endif
