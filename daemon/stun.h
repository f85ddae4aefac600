/* stun.h - the built-in STUN binding responder (RFC 8489, and RFC 3489
 * clients). Pure: bytes in, bytes out. */
#ifndef UMXD_STUN_H
#define UMXD_STUN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Writes a Binding success response for request req (from peer) into out
 * (at most cap bytes). Returns its length, 0 when req is not a Binding
 * request, or -EMSGSIZE when the response would not fit in cap. The caller
 * passes cap = request length so a reply is never larger than the request
 * (no amplification). */
int umxd_stun_respond(const uint8_t *req, size_t len, const struct sockaddr *peer, uint8_t *out,
                      size_t cap);

#endif
