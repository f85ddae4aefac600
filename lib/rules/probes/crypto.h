/*
 * crypto.h - the few primitives the keyed probes need (quic sni=, wireguard
 * pubkey=, openvpn tls-auth=/tls-crypt=), on top of OpenSSL 3 libcrypto.
 *
 * OpenSSL contexts allocate when created, and the house rule is no malloc per
 * datagram, so every thread gets one set of contexts the first time it needs
 * them (freed by a pthread key destructor when the thread exits) and re-keys
 * them per datagram. All functions return 0 on success and -1 on failure
 * (including "could not allocate the thread's contexts": the probe then says
 * no match, which is the safe answer).
 */
#ifndef UMX_PROBES_CRYPTO_H
#define UMX_PROBES_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

enum umx_md { UMX_MD_SHA1, UMX_MD_SHA256, UMX_MD_SHA512, UMX_MD_COUNT };

/* Digest size in bytes. */
size_t umx_md_size(enum umx_md md);

/* HMAC over the concatenation of up to 4 pieces (NULL/0 pieces skipped). */
int umx_hmac(enum umx_md md, const uint8_t *key, size_t keylen, const uint8_t *p1, size_t n1,
             const uint8_t *p2, size_t n2, const uint8_t *p3, size_t n3, const uint8_t *p4,
             size_t n4, uint8_t *out);

/* HKDF-Extract with SHA-256 (RFC 5869), out is 32 bytes. */
int umx_hkdf_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                     uint8_t out[32]);
/* TLS 1.3 HKDF-Expand-Label with SHA-256 and an empty context (RFC 8446
 * section 7.1), outlen <= 32. */
int umx_hkdf_expand_label(const uint8_t secret[32], const char *label, uint8_t *out, size_t outlen);

/* One AES-128 block in ECB mode (QUIC header protection mask). */
int umx_aes128_ecb(const uint8_t key[16], const uint8_t in[16], uint8_t out[16]);
/* AES-128-GCM decrypt-and-verify; the additional data is the concatenation
 * of three pieces (QUIC: unmasked first byte, header, unmasked packet
 * number); out receives ctlen bytes. */
int umx_aes128_gcm_open(const uint8_t key[16], const uint8_t iv[12], const uint8_t *a1, size_t n1,
                        const uint8_t *a2, size_t n2, const uint8_t *a3, size_t n3,
                        const uint8_t *ct, size_t ctlen, const uint8_t tag[16], uint8_t *out);

/* A per-thread scratch buffer of UMX_SCRATCH_SIZE bytes, allocated on the
 * thread's first call and freed when the thread exits (NULL if that
 * allocation failed). Large buffers live here rather than on the stack or
 * in static TLS, which a dlopen()ed library cannot grow. */
#define UMX_SCRATCH_SIZE (96 * 1024)
void *umx_thread_scratch(void);
/* AES-256-CTR (encrypt == decrypt). */
int umx_aes256_ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n,
                   uint8_t *out);

/* BLAKE2s-256 (unkeyed) over two pieces. */
int umx_blake2s256(const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2, uint8_t out[32]);
/* Keyed BLAKE2s with a 16-byte output (WireGuard mac1). */
int umx_blake2s_mac16(const uint8_t key[32], const uint8_t *p, size_t n, uint8_t out[16]);

/* Constant-time comparison (1 if equal). */
int umx_ct_equal(const uint8_t *a, const uint8_t *b, size_t n);

#endif
