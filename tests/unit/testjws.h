/* Compact JWS for the policy layer's unit tests (client assertions, attestation tokens):
 * base64url text, and a token signed with OpenSSL as an issuer signs it. */
#ifndef KV_TESTJWS_H
#define KV_TESTJWS_H

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv_buf.h"

static inline char *testjws_b64(const void *data, size_t len)
{
    char *out = NULL;
    if (kv_b64url_encode(data, len, &out) != KV_OK)
        abort();
    return out;
}

/* A compact JWS of @p header and @p claims signed with @p key under @p alg (RS, PS and ES
 * with 256, 384 or 512; "none" and the HS algorithms leave the signature a single byte). */
static inline char *testjws_sign(const char *header, const char *claims, EVP_PKEY *key,
                                 const char *alg)
{
    char *h = testjws_b64(header, strlen(header)), *c = testjws_b64(claims, strlen(claims));
    size_t n = strlen(h) + 1 + strlen(c);
    char *input = malloc(n + 1);
    snprintf(input, n + 1, "%s.%s", h, c);
    unsigned char sig[1024];
    size_t sig_len = sizeof(sig);
    if (strcmp(alg, "none") == 0 || alg[0] == 'H') {
        sig[0] = 0;
        sig_len = 1;
    } else {
        const EVP_MD *md = strstr(alg, "384")   ? EVP_sha384()
                           : strstr(alg, "512") ? EVP_sha512()
                                                : EVP_sha256();
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;
        EVP_DigestSignInit(m, &pctx, md, NULL, key);
        if (alg[0] == 'P') {
            EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
            EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST);
        }
        EVP_DigestSign(m, sig, &sig_len, (const unsigned char *)input, n);
        EVP_MD_CTX_free(m);
        if (alg[0] == 'E') { /* DER to JOSE's r||s */
            const unsigned char *p = sig;
            ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
            size_t coord = strcmp(alg, "ES256") == 0 ? 32 : strcmp(alg, "ES384") == 0 ? 48 : 66;
            BN_bn2binpad(ECDSA_SIG_get0_r(s), sig, (int)coord);
            BN_bn2binpad(ECDSA_SIG_get0_s(s), sig + coord, (int)coord);
            sig_len = 2 * coord;
            ECDSA_SIG_free(s);
        }
    }
    char *s = testjws_b64(sig, sig_len);
    size_t total = n + 1 + strlen(s);
    char *out = malloc(total + 1);
    snprintf(out, total + 1, "%s.%s", input, s);
    free(h);
    free(c);
    free(s);
    free(input);
    return out;
}

/* A self-signed certificate of @p key, named CN=@p cn, valid from @p from to @p to (Unix
 * seconds), as a client's or an attestation authority's own certificate; NULL when out of
 * memory. The caller frees it. */
static inline X509 *testjws_self_signed(EVP_PKEY *key, const char *cn, time_t from, time_t to)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int ok = x != NULL && name != NULL &&
             X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
                                        0) == 1 &&
             ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1 &&
             X509_time_adj_ex(X509_getm_notBefore(x), 0, 0, &from) != NULL &&
             X509_time_adj_ex(X509_getm_notAfter(x), 0, 0, &to) != NULL &&
             X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
             X509_set_pubkey(x, key) == 1 && X509_sign(x, key, EVP_sha256()) > 0;
    X509_NAME_free(name);
    if (!ok) {
        X509_free(x);
        return NULL;
    }
    return x;
}

#endif
