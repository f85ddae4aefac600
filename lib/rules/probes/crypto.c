/*
 * crypto.c - OpenSSL 3 glue for the keyed probes; see crypto.h for why the
 * contexts are per thread.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "crypto.h"

struct tctx {
    EVP_MAC_CTX *hmac[UMX_MD_COUNT];
    EVP_MAC_CTX *b2smac;
    /* One cipher context per algorithm: switching a context between
     * algorithms frees and re-creates the provider state (a malloc per
     * call, and most of the cost of a QUIC Initial); re-keying one that
     * already holds its algorithm does not. */
    EVP_CIPHER_CTX *ecb, *gcm, *ctr;
    int ecb_init, gcm_init, ctr_init;
    EVP_MD_CTX *md;
    void *scratch;
};

/* Fetched algorithm objects are immutable and shared by all threads. */
static struct {
    EVP_MAC *hmac;
    EVP_MAC *b2smac;
    EVP_CIPHER *aes128_ecb, *aes128_gcm, *aes256_ctr;
    EVP_MD *blake2s;
    int ok;
} g;

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static pthread_key_t g_key;

static char md_names[UMX_MD_COUNT][8] = {"SHA1", "SHA256", "SHA512"};

static void tctx_free(void *arg)
{
    struct tctx *t = arg;
    if (!t)
        return;
    for (int i = 0; i < UMX_MD_COUNT; i++)
        EVP_MAC_CTX_free(t->hmac[i]);
    EVP_MAC_CTX_free(t->b2smac);
    EVP_CIPHER_CTX_free(t->ecb);
    EVP_CIPHER_CTX_free(t->gcm);
    EVP_CIPHER_CTX_free(t->ctr);
    EVP_MD_CTX_free(t->md);
    free(t->scratch);
    free(t);
}

static void g_init(void)
{
    if (pthread_key_create(&g_key, tctx_free))
        return;
    g.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    g.b2smac = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
    g.aes128_ecb = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
    g.aes128_gcm = EVP_CIPHER_fetch(NULL, "AES-128-GCM", NULL);
    g.aes256_ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
    g.blake2s = EVP_MD_fetch(NULL, "BLAKE2S-256", NULL);
    g.ok = g.hmac && g.b2smac && g.aes128_ecb && g.aes128_gcm && g.aes256_ctr && g.blake2s;
}

static struct tctx *tctx_get(void)
{
    struct tctx *t;

    pthread_once(&g_once, g_init);
    if (!g.ok)
        return NULL;
    t = pthread_getspecific(g_key);
    if (t)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    for (int i = 0; i < UMX_MD_COUNT; i++) {
        OSSL_PARAM p[2];
        t->hmac[i] = EVP_MAC_CTX_new(g.hmac);
        if (!t->hmac[i])
            goto fail;
        p[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, md_names[i], 0);
        p[1] = OSSL_PARAM_construct_end();
        if (!EVP_MAC_CTX_set_params(t->hmac[i], p))
            goto fail;
    }
    t->b2smac = EVP_MAC_CTX_new(g.b2smac);
    t->ecb = EVP_CIPHER_CTX_new();
    t->gcm = EVP_CIPHER_CTX_new();
    t->ctr = EVP_CIPHER_CTX_new();
    t->md = EVP_MD_CTX_new();
    if (!t->b2smac || !t->ecb || !t->gcm || !t->ctr || !t->md)
        goto fail;
    {
        size_t sz = 16;
        OSSL_PARAM p[2];
        p[0] = OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &sz);
        p[1] = OSSL_PARAM_construct_end();
        if (!EVP_MAC_CTX_set_params(t->b2smac, p))
            goto fail;
    }
    if (pthread_setspecific(g_key, t))
        goto fail;
    return t;
fail:
    tctx_free(t);
    return NULL;
}

size_t umx_md_size(enum umx_md md)
{
    switch (md) {
    case UMX_MD_SHA1:
        return 20;
    case UMX_MD_SHA256:
        return 32;
    case UMX_MD_SHA512:
        return 64;
    default:
        return 0;
    }
}

int umx_hmac(enum umx_md md, const uint8_t *key, size_t keylen, const uint8_t *p1, size_t n1,
             const uint8_t *p2, size_t n2, const uint8_t *p3, size_t n3, const uint8_t *p4,
             size_t n4, uint8_t *out)
{
    struct tctx *t = tctx_get();
    EVP_MAC_CTX *c;
    size_t outl = 0;

    if (!t || md < 0 || md >= UMX_MD_COUNT)
        return -1;
    c = t->hmac[md];
    if (!EVP_MAC_init(c, key, keylen, NULL))
        return -1;
    if ((n1 && !EVP_MAC_update(c, p1, n1)) || (n2 && !EVP_MAC_update(c, p2, n2)) ||
        (n3 && !EVP_MAC_update(c, p3, n3)) || (n4 && !EVP_MAC_update(c, p4, n4)))
        return -1;
    if (!EVP_MAC_final(c, out, &outl, umx_md_size(md)) || outl != umx_md_size(md))
        return -1;
    return 0;
}

int umx_hkdf_extract(const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                     uint8_t out[32])
{
    /* PRK = HMAC-Hash(salt, IKM) */
    return umx_hmac(UMX_MD_SHA256, salt, saltlen, ikm, ikmlen, NULL, 0, NULL, 0, NULL, 0, out);
}

int umx_hkdf_expand_label(const uint8_t secret[32], const char *label, uint8_t *out, size_t outlen)
{
    /* HkdfLabel = length(2) | opaque label<7..255> = "tls13 " + label |
     * opaque context<0..255> = empty. One HKDF-Expand block suffices because
     * every QUIC Initial key is at most 32 bytes (T(1) = HMAC(PRK, info|01)). */
    uint8_t info[2 + 1 + 255 + 1 + 1], t1[32];
    size_t ll = strlen(label), n = 0;

    if (outlen > 32 || ll + 6 > 255)
        return -1;
    info[n++] = (uint8_t)(outlen >> 8);
    info[n++] = (uint8_t)outlen;
    info[n++] = (uint8_t)(ll + 6);
    memcpy(info + n, "tls13 ", 6);
    n += 6;
    memcpy(info + n, label, ll);
    n += ll;
    info[n++] = 0;    /* empty context */
    info[n++] = 0x01; /* block counter */
    if (umx_hmac(UMX_MD_SHA256, secret, 32, info, n, NULL, 0, NULL, 0, NULL, 0, t1))
        return -1;
    memcpy(out, t1, outlen);
    OPENSSL_cleanse(t1, sizeof(t1));
    return 0;
}

int umx_aes128_ecb(const uint8_t key[16], const uint8_t in[16], uint8_t out[16])
{
    struct tctx *t = tctx_get();
    int l1 = 0;

    if (!t || !EVP_EncryptInit_ex2(t->ecb, t->ecb_init ? NULL : g.aes128_ecb, key, NULL, NULL))
        return -1;
    t->ecb_init = 1;
    EVP_CIPHER_CTX_set_padding(t->ecb, 0);
    if (!EVP_EncryptUpdate(t->ecb, out, &l1, in, 16) || l1 != 16)
        return -1;
    return 0;
}

int umx_aes128_gcm_open(const uint8_t key[16], const uint8_t iv[12], const uint8_t *a1, size_t n1,
                        const uint8_t *a2, size_t n2, const uint8_t *a3, size_t n3,
                        const uint8_t *ct, size_t ctlen, const uint8_t tag[16], uint8_t *out)
{
    struct tctx *t = tctx_get();
    int l = 0, lf = 0;

    if (!t || ctlen > (size_t)INT32_MAX || n1 + n2 + n3 > (size_t)INT32_MAX)
        return -1;
    if (!EVP_DecryptInit_ex2(t->gcm, t->gcm_init ? NULL : g.aes128_gcm, key, iv, NULL))
        return -1;
    t->gcm_init = 1;
    if ((n1 && !EVP_DecryptUpdate(t->gcm, NULL, &l, a1, (int)n1)) ||
        (n2 && !EVP_DecryptUpdate(t->gcm, NULL, &l, a2, (int)n2)) ||
        (n3 && !EVP_DecryptUpdate(t->gcm, NULL, &l, a3, (int)n3)))
        return -1;
    if (!EVP_DecryptUpdate(t->gcm, out, &l, ct, (int)ctlen))
        return -1;
    if (!EVP_CIPHER_CTX_ctrl(t->gcm, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(uintptr_t)tag))
        return -1;
    if (EVP_DecryptFinal_ex(t->gcm, out + l, &lf) <= 0)
        return -1;
    return 0;
}

int umx_aes256_ctr(const uint8_t key[32], const uint8_t iv[16], const uint8_t *in, size_t n,
                   uint8_t *out)
{
    struct tctx *t = tctx_get();
    int l = 0;

    if (!t || n > (size_t)INT32_MAX)
        return -1;
    if (!EVP_EncryptInit_ex2(t->ctr, t->ctr_init ? NULL : g.aes256_ctr, key, iv, NULL))
        return -1;
    t->ctr_init = 1;
    if (n && (!EVP_EncryptUpdate(t->ctr, out, &l, in, (int)n) || (size_t)l != n))
        return -1;
    return 0;
}

int umx_blake2s256(const uint8_t *p1, size_t n1, const uint8_t *p2, size_t n2, uint8_t out[32])
{
    struct tctx *t = tctx_get();
    unsigned int l = 0;

    if (!t || !EVP_DigestInit_ex2(t->md, g.blake2s, NULL))
        return -1;
    if ((n1 && !EVP_DigestUpdate(t->md, p1, n1)) || (n2 && !EVP_DigestUpdate(t->md, p2, n2)))
        return -1;
    if (!EVP_DigestFinal_ex(t->md, out, &l) || l != 32)
        return -1;
    return 0;
}

int umx_blake2s_mac16(const uint8_t key[32], const uint8_t *p, size_t n, uint8_t out[16])
{
    struct tctx *t = tctx_get();
    size_t l = 0;

    if (!t || !EVP_MAC_init(t->b2smac, key, 32, NULL))
        return -1;
    if (!EVP_MAC_update(t->b2smac, p, n) || !EVP_MAC_final(t->b2smac, out, &l, 16) || l != 16)
        return -1;
    return 0;
}

void *umx_thread_scratch(void)
{
    struct tctx *t = tctx_get();

    if (!t)
        return NULL;
    if (!t->scratch)
        t->scratch = calloc(1, UMX_SCRATCH_SIZE); /* zeroed: users keep flags in it */
    return t->scratch;
}

int umx_ct_equal(const uint8_t *a, const uint8_t *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}
