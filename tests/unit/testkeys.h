/* Known private keys for the fault-injection and wipe tests: made once with
 * OpenSSL, then imported, so the tests know every private byte. */
#ifndef KV_TESTKEYS_H
#define KV_TESTKEYS_H

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ks.h"
#include "kv_buf.h"

struct testkeys {
    struct ks_jwk rsa, ec, oct; /* owned buffers */
};

static inline int tk_bn(EVP_PKEY *pkey, const char *name, size_t pad, struct kv_buf *out)
{
    BIGNUM *bn = NULL;
    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1)
        return -1;
    size_t n = pad ? pad : (size_t)BN_num_bytes(bn);
    int ok = kv_buf_alloc(n, out) == KV_OK && BN_bn2binpad(bn, out->data, (int)n) == (int)n;
    BN_clear_free(bn);
    return ok ? 0 : -1;
}

static inline int tk_make(struct testkeys *t)
{
    memset(t, 0, sizeof(*t));
    EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    int bad = rsa == NULL || ec == NULL;
    t->rsa.kty = KS_KTY_RSA;
    bad = bad || tk_bn(rsa, OSSL_PKEY_PARAM_RSA_N, 0, &t->rsa.n) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_E, 0, &t->rsa.e) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_D, 0, &t->rsa.d) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_FACTOR1, 0, &t->rsa.p) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_FACTOR2, 0, &t->rsa.q) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_EXPONENT1, 0, &t->rsa.dp) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_EXPONENT2, 0, &t->rsa.dq) ||
          tk_bn(rsa, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0, &t->rsa.qi);
    t->ec.kty = KS_KTY_EC;
    t->ec.crv = KS_CRV_P256;
    bad = bad || tk_bn(ec, OSSL_PKEY_PARAM_PRIV_KEY, 32, &t->ec.d) ||
          tk_bn(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32, &t->ec.x) ||
          tk_bn(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32, &t->ec.y);
    t->oct.kty = KS_KTY_OCT;
    bad = bad || kv_buf_alloc(32, &t->oct.k) != KV_OK;
    if (!bad)
        randombytes_buf(t->oct.k.data, 32);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return bad ? -1 : 0;
}

static inline void tk_jwk_free(struct ks_jwk *j)
{
    struct kv_buf *b[] = {&j->n, &j->e, &j->d, &j->p, &j->q, &j->dp, &j->dq, &j->qi,
                          &j->x, &j->y, &j->k};
    for (size_t i = 0; i < sizeof(b) / sizeof(b[0]); i++)
        kv_buf_wipe(b[i]);
}

static inline void tk_free(struct testkeys *t)
{
    tk_jwk_free(&t->rsa);
    tk_jwk_free(&t->ec);
    tk_jwk_free(&t->oct);
}

/* The store both tests run on: opened in @p dir (a mkdtemp template), with the
 * known keys made and a vault @p vault without soft delete. @return 0 or -1. */
static inline int tk_store_open(char *dir, const char *vault, struct ks_env **env,
                                struct testkeys *tk)
{
    if (sodium_init() < 0 || mkdtemp(dir) == NULL)
        return -1;
    struct ks_open_opts o = {.data_dir = dir, .cache_entries = 8};
    if (ks_open(&o, env) != KV_OK || tk_make(tk) != 0)
        return -1;
    struct ks_vault v = {.soft_delete = 0, .retention_days = 7};
    snprintf(v.name, sizeof(v.name), "%s", vault);
    snprintf(v.tenant_id, sizeof(v.tenant_id), "t");
    return ks_vault_put(*env, &v) == KV_OK ? 0 : -1;
}

#endif
