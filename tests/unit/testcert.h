/* A self-signed X.509 certificate of a key, DER, for the unit tests of what takes
 * certificates (a Managed HSM's security domain). */
#ifndef KV_TESTCERT_H
#define KV_TESTCERT_H

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "kv_buf.h"

/* The certificate of @p key with serial number @p serial (CN=sd, a day long) into @p out
 * (kv_buf_free()). @return 1, or 0 when OpenSSL or the allocation failed. */
static inline int testcert_make(EVP_PKEY *key, long serial, struct kv_buf *out)
{
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();
    int len = 0, ok = x != NULL && name != NULL &&
                      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                 (const unsigned char *)"sd", -1, -1, 0) == 1 &&
                      ASN1_INTEGER_set(X509_get_serialNumber(x), serial) == 1 &&
                      X509_gmtime_adj(X509_getm_notBefore(x), 0) != NULL &&
                      X509_gmtime_adj(X509_getm_notAfter(x), 86400) != NULL &&
                      X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1 &&
                      X509_set_pubkey(x, key) == 1 && X509_sign(x, key, EVP_sha256()) > 0 &&
                      (len = i2d_X509(x, NULL)) > 0 && kv_buf_alloc((size_t)len, out) == KV_OK;
    if (ok) {
        unsigned char *p = out->data;
        i2d_X509(x, &p);
    }
    X509_NAME_free(name);
    X509_free(x);
    return ok;
}

#endif
