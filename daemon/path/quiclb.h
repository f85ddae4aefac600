/*
 * quiclb.h - QUIC-LB connection ids (draft-ietf-quic-load-balancers, the
 * editor's copy after -21): the server id a backend encodes in the
 * connection ids it issues, decoded from a datagram's destination CID so
 * that any udpmuxd instance sends a migrated client to the backend that
 * holds its connection, with no shared state.
 *
 * Pure apart from the AES block function: the caller owns a umxd_qlb_aes
 * (one per worker, made at start-up) and passes it in. Nothing here
 * allocates after umxd_qlb_aes_new().
 */
#ifndef UMXD_QUICLB_H
#define UMXD_QUICLB_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

/* An AES-128-ECB context keyed on demand (re-keyed only when another
 * route's key is asked for, which is rare: usually one QUIC-LB route). */
struct umxd_qlb_aes;

/* 0 or -ENOMEM. */
int umxd_qlb_aes_new(struct umxd_qlb_aes **out);
void umxd_qlb_aes_free(struct umxd_qlb_aes *a);

/* The destination connection id of a QUIC datagram sent by a client, when
 * the client may have chosen a new address with it: a short header packet
 * (the CID has no length on the wire: the caller's cidlen, the route's
 * 1 + server id + nonce, is taken when the datagram is long enough), or a
 * long header packet other than a QUIC v1/v2 Initial or 0-RTT (whose DCID
 * the client picked at random before it heard from the server: decoding it
 * would pick a backend by chance, bypassing classification). Returns 1 and
 * points *cid at it (*len bytes), or 0. */
int umxd_qlb_dcid(const uint8_t *buf, size_t len, size_t cidlen, const uint8_t **cid, size_t *n);

/* The server id in cid (at least 1 + sid_len + nonce_len bytes, first
 * octet included) under configuration q: 1 and sid[0..q->sid_len), 0 if the
 * config id bits differ or the CID is too short, -EIO if the cipher failed.
 * The engine's path: at most 3 AES blocks (4 when the server id is longer
 * than the nonce), or 1 for the 16-byte single-pass case. */
int umxd_qlb_decode(struct umxd_qlb_aes *a, const struct umxd_quiclb *q, const uint8_t *cid,
                    size_t n, uint8_t *sid);

/* The server side, for tests and tools: writes 1 + sid_len + nonce_len
 * bytes to cid: the first octet (config id, then the length self-encoding
 * `len_bits`, the draft's recommended CID length - 1, in the low 5 bits),
 * then the server id and nonce, encrypted when q has a key. 0 or -EIO. */
int umxd_qlb_encode(struct umxd_qlb_aes *a, const struct umxd_quiclb *q, uint8_t len_bits,
                    const uint8_t *sid, const uint8_t *nonce, uint8_t *cid);

#endif
